/*
 * metrics.h — counters the daemon keeps for Prometheus, and the /metrics
 * text.
 *
 * The daemon's threads update the counters (compile times, gRPC calls)
 * with the functions below — lock-free atomics, safe from any thread;
 * the API thread renders them together with figures read from the store
 * (edges connected, versions behind) and the HTTP server's status counts.
 */
#ifndef MESHWAN_METRICS_H
#define MESHWAN_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct http_server;

/* gRPC events the daemon counts; names are the "event" label. */
enum metrics_rpc {
	METRICS_RPC_ENROLL_OK = 0,	/* "enroll_ok" */
	METRICS_RPC_ENROLL_REFUSED,	/* "enroll_refused" */
	METRICS_RPC_SESSION_OPENED,	/* "session_opened" */
	METRICS_RPC_SESSION_REFUSED,	/* "session_refused" */
	METRICS_RPC_SESSION_CLOSED,	/* "session_closed" */
	METRICS_RPC_SNAPSHOT_SENT,	/* "snapshot_sent" */
	METRICS_RPC_DELTA_SENT,		/* "delta_sent" */
	METRICS_RPC_ACK_RECEIVED,	/* "ack_received" */
	METRICS_RPC_STATUS_RECEIVED,	/* "status_received" */
	METRICS_RPC_KEY_RELAYED,	/* "key_relayed" */
	METRICS_RPC_BACKOFF_SENT,	/* "backoff_sent" */
	METRICS_RPC_ACCEPT_REFUSED,	/* "accept_refused" (set, from
					   rpc_accept_refused) */
	METRICS_RPC_MAX,
};

/* Zero-initialise (e.g. memset or = {0}); no resources to free. */
struct metrics {
	_Atomic uint64_t compiles;		/* full or incremental */
	_Atomic uint64_t compile_last_us;
	_Atomic uint64_t compile_sum_us;
	_Atomic uint64_t intent_bytes_sent;
	_Atomic uint64_t rpc[METRICS_RPC_MAX];
	/* The session loop's store connection (store_counters). */
	_Atomic uint64_t loop_commits;
	_Atomic uint64_t loop_statements;
};

void metrics_compile_done(struct metrics *m, uint64_t elapsed_us);
void metrics_rpc_inc(struct metrics *m, enum metrics_rpc which);
/* A counter kept elsewhere (the rpc layer's), as it stands now. */
void metrics_rpc_set(struct metrics *m, enum metrics_rpc which, uint64_t v);
void metrics_bytes_sent(struct metrics *m, uint64_t bytes);
/* The session loop's store counters, as they stand now. */
void metrics_loop_store(struct metrics *m, uint64_t commits,
    uint64_t statements);

/*
 * Prometheus text exposition (version 0.0.4) into a malloc'd *out
 * (caller frees).  m and srv may be NULL (their families are omitted).
 * Returns 0 or -1 (store failure or out of memory).
 */
int metrics_render(const struct metrics *m, struct store *st,
    const struct http_server *srv, char **out, size_t *len);

#endif
