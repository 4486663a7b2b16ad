/*
 * enroll.h — certificates for edges: Enrollment.Enroll (a one-time token
 * and a CSR in, a certificate for the token's site out) and Edge.Renew (a
 * new CSR, sent with the edge's current certificate, for a new
 * certificate of the same site).  See controller/CONTROLLER.md,
 * "Enrollment" and "Certificates".
 *
 * Threads: the rpc handlers run on the daemon's event loop and only
 * check the per-source rate limit and queue the call; CSR parsing,
 * signature checks, signing and SQL run on enroll's own worker thread with
 * its own store connection; the finished answers go back to the loop
 * through enroll_fd()/enroll_dispatch(), which run the hooks and reply.
 * So a flood of bad calls costs the loop a table look-up each, never a
 * signature check or a database round trip.
 */
#ifndef MESHWAN_CONTROLLER_ENROLL_H
#define MESHWAN_CONTROLLER_ENROLL_H

#include <stddef.h>
#include <stdint.h>

struct ca;
struct metrics;
struct rpc_server;
struct store;

struct enroll;

#define ENROLL_METHOD "/meshwan.v1.Enrollment/Enroll"
#define ENROLL_RENEW_METHOD "/meshwan.v1.Edge/Renew"

/* What may change on SIGHUP (enroll_reconfig). */
struct enroll_config {
	uint64_t cert_lifetime_s;  /* validity of issued certificates */
	uint32_t rate;             /* calls per second per source address */
	uint32_t burst;            /* bucket size per source address */
	/* Tests only (test_enroll_lose): withhold the answers of the next
	 * test_lose successful Enroll calls, committed as usual, as if the
	 * connection had dropped; counted again when the value changes. */
	uint32_t test_lose;
	char controller_name[65];
};

struct enroll_hooks {
	void *arg;
	/*
	 * Loop thread, after an enrollment committed and before the edge
	 * gets its answer: the site's only certificate is now der (peers
	 * must see it, streams with any other certificate end).  A failure
	 * is logged; the certificate stays issued.
	 */
	int (*issued)(void *arg, uint64_t site_id, const uint8_t *der,
	    size_t len);
};

struct enroll_params {
	struct enroll_config cfg;
	struct store *st;          /* the worker's own connection; borrowed,
				      used only by the worker thread */
	struct ca *ca;             /* borrowed */
	struct metrics *metrics;   /* borrowed, may be NULL */
	struct enroll_hooks hooks;
};

/*
 * Start the worker; before that, give every site that has a certificate
 * on record from an older controller (key/value "cert.<id>") its row in
 * the certs table.  NULL on error (logged).
 */
struct enroll *enroll_new(const struct enroll_params *p);
/* Register Enroll (RPC_AUTH_NONE) and Renew (RPC_AUTH_PEER).  0 or -1. */
int enroll_register(struct enroll *en, struct rpc_server *srv);
void enroll_reconfig(struct enroll *en, const struct enroll_config *cfg);
/* eventfd that becomes readable when answers are ready. */
int enroll_fd(const struct enroll *en);
/* Loop thread: run the hooks and answer the finished calls. */
void enroll_dispatch(struct enroll *en);
/*
 * Stop the worker and forget unanswered calls (rpc_server_free answers
 * them UNAVAILABLE): call before rpc_server_free.  Then enroll_free.
 */
void enroll_shutdown(struct enroll *en);
void enroll_free(struct enroll *en);

/*
 * Token-bucket rate limit per source, exposed for the unit test: a
 * bounded table (ENROLL_RL_SLOTS); a source that finds no slot in its
 * probe window of 8 takes the one whose bucket is fullest, so a source
 * in debt keeps its slot unless its whole window is in debt (many
 * addresses calling at once).  Returns 1 when a call
 * from addr ("ipv4:1.2.3.4:port"; the port is ignored) at now_ms may
 * go on, 0 when it is over the limit.
 */
#define ENROLL_RL_SLOTS 1024
struct enroll_rl;
struct enroll_rl *enroll_rl_new(void);
void enroll_rl_free(struct enroll_rl *rl);
int enroll_rl_take(struct enroll_rl *rl, const char *addr, uint64_t now_ms,
    uint32_t rate, uint32_t burst);

#endif
