/*
 * status.h — the agent's operator view: `meshwan-edge status` over a
 * root-only UNIX control socket, and Prometheus /metrics.
 *
 * The agent builds one JSON snapshot of its state (agent_status_json(),
 * schema in /work/coord/agent-plan.md and edge-agent/README.md) and hands
 * it to status_publish().  The server keeps only the last snapshot and
 * answers clients from its own threads: the agent's loop never waits for a
 * client, it only takes a mutex for the pointer swap.
 *
 * The schema is a whitelist.  status_publish() keeps the fields of the
 * schema with the expected type and drops everything else, so a field
 * added to the snapshot by mistake (a key, a nonce) never reaches the
 * socket, the table or /metrics.  A new field is shown once it is added
 * to the schema table in status.c.
 *
 * Bounds (written down, tested in tests/unit/test_edge_status.c):
 * STATUS_MAX_CLIENTS connections are served at once; one more is answered
 * `{"error":"busy"}` and closed.  A request is one line of at most
 * STATUS_REQUEST_MAX bytes.  A client has STATUS_CLIENT_DEADLINE_MS from
 * accept to the end of the reply, then it is closed.  The metrics server
 * holds at most STATUS_METRICS_CONNECTIONS connections, closes idle ones
 * after STATUS_METRICS_TIMEOUT_S and takes no request body.
 */
#ifndef MESHWAN_EDGE_STATUS_H
#define MESHWAN_EDGE_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define STATUS_MAX_CLIENTS		8
#define STATUS_REQUEST_MAX		64	/* bytes, newline included */
#define STATUS_CLIENT_DEADLINE_MS	2000
#define STATUS_SNAPSHOT_MAX		((size_t)16 << 20)	/* serialised */
#define STATUS_TUNNELS_MAX		4096	/* kept in a snapshot */
#define STATUS_SAS_MAX			16	/* kept per tunnel */
#define STATUS_STRING_MAX		255	/* longer strings are dropped */
#define STATUS_METRICS_CONNECTIONS	16
#define STATUS_METRICS_PER_ADDRESS	8
#define STATUS_METRICS_TIMEOUT_S	5

struct status_srv;

/*
 * Listens on the UNIX socket sock_path (mode 0600; a stale socket there
 * is replaced, anything else, or a socket another process serves, is an
 * error) and, unless metrics_listen is NULL or "", serves /metrics on that
 * numeric "address:port" or "[v6]:port" (port 0 picks a free one; which
 * addresses are allowed is config.c's rule).  Returns NULL, logged, on
 * failure.
 */
struct status_srv *status_start(const char *sock_path,
    const char *metrics_listen);

/*
 * Replaces the served snapshot.  Steals the reference to snapshot (also
 * when srv is NULL or the snapshot is refused).  Cheap: filters and
 * serialises in the caller's thread, then swaps a pointer under a mutex.
 */
void status_publish(struct status_srv *srv, json_t *snapshot);

/* Stops the threads, closes the sockets, removes sock_path; NULL is fine. */
void status_stop(struct status_srv *srv);

/* The bound port of /metrics, 0 when off. */
uint16_t status_metrics_port(const struct status_srv *srv);

/*
 * `meshwan-edge status`: asks the agent at sock_path for its snapshot and
 * prints it to out as tables, or as JSON when json is true.  Returns 0, or
 * -1 with the reason logged (agent not running, not root, agent still
 * starting, bad reply).
 */
int status_client(const char *sock_path, bool json, FILE *out);

#endif
