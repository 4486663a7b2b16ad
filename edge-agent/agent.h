/*
 * agent.h — meshwan-edge's daemon: one site's agent (issue 9).
 *
 * It links the tested pieces and owns nothing they do: enrollment and the
 * Session stream (enroll.c, session.c), the epoch keys (keys.c), the
 * reconciler on an overlay backend in-process (reconcile.c, overlay.h),
 * the FRR driver (frr.c) and the state-folder cache (cache.c).  What it
 * adds is the order of things and the timers:
 *
 *  - start: state folder (0700), backend (uesp with its sequence
 *    reservation file <state>/uesp.seq), epoch keys, then, when a
 *    certificate and a cached intent exist, the site is rebuilt from the
 *    cache before any controller is reached (headless start);
 *  - no certificate: key pair and CSR made here (<state>/edge.key, 0600,
 *    never sent), Enroll with the one-time token, certificate stored;
 *  - the Session stream (reconnecting with backoff, session.c); each
 *    snapshot/delta: reconcile_apply(), then FRR, then the cache; acked
 *    ok or failed with the reason;
 *  - rekey orders through reconcile_rekey_step(); RETIRE after its drain
 *    (a timer; acked then);
 *  - every second: SA soft byte/packet limits (RekeyRequest once per SA),
 *    RETIRE timers, status (on change, at most once a second; otherwise
 *    every AGENT_STATUS_PERIOD_S), certificate renewal when due;
 *  - SIGHUP: reload (all or nothing); SIGTERM/SIGINT: stop.
 *
 * Threads: one (the backend runs its data plane on its own threads).
 */
#ifndef MESHWAN_EDGE_AGENT_H
#define MESHWAN_EDGE_AGENT_H

#include <stdbool.h>

#include <jansson.h>

#include "edge-agent/config.h"

#define AGENT_VERSION		"0.1.0"
#define AGENT_STATUS_PERIOD_S	10	/* periodic status to the controller */
#define AGENT_STATUS_MIN_MS	1000	/* at most one status a second */
#define AGENT_BGP_READ_MS	3000	/* FRR's BGP/BFD state read at most */
#define AGENT_FRR_RETRY_S	5	/* FRR apply retried after a failure */
#define AGENT_ENROLL_BACKOFF_MAX_S 60

struct agent;

/*
 * Set up from cfg (copied; the caller keeps cfg) read from config_path
 * (kept for SIGHUP).  Signals SIGTERM, SIGINT, SIGHUP must be blocked by
 * the caller; the agent reads them from a signalfd.  NULL on error
 * (logged).
 */
struct agent *agent_new(const struct edge_config *cfg,
    const char *config_path);
/* Run until SIGTERM/SIGINT.  0 on a clean stop, 1 on a fatal error. */
int agent_run(struct agent *a);
/* Frees; tunnels go with the backend (uesp's devices die with the
 * process).  NULL ok. */
void agent_free(struct agent *a);

/* Where agent_run() publishes its status (status.h); NULL: nowhere. */
struct status_srv;
void agent_set_status(struct agent *a, struct status_srv *srv);

/*
 * The agent's state as one JSON document (agent-plan.md schema; new
 * reference).  Never a key byte; unknown fields are left out.
 */
json_t *agent_status_json(struct agent *a);


#endif
