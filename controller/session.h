/*
 * session.h — the controller's side of every edge's Session stream, and
 * the state that feeds it: the compiled topology, each edge's current
 * intent with a short history of what changed per version, acks and
 * convergence hashes, peers' epoch keys, and the rekey (SA epoch)
 * bookkeeping.  See controller/CONTROLLER.md, "Sessions".
 * Implemented by session.c (streams, timers) with session_intent.c,
 * session_rekey.c, session_keys.c and session_status.c; session_int.h
 * says which holds what.
 *
 * Threads: everything here runs on the daemon's event-loop thread (the
 * rpc layer delivers its callbacks there), except session_notify(), which
 * the REST API thread calls after a committed change: it only queues the
 * site ids under a mutex and wakes the loop through session_wake_fd().
 */
#ifndef MESHWAN_CONTROLLER_SESSION_H
#define MESHWAN_CONTROLLER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"

struct store;
struct ca;
struct metrics;
struct rpc_server;
struct rpc_unary;
struct rpc_peer;

struct sessions;

/*
 * Largest message an edge may send on its Session (the rpc layer refuses
 * more before buffering it): a status whose JSON fits MODEL_STATUS_MAX
 * (1 MiB) is smaller than that as protobuf; everything else is tiny.
 */
#define SESSION_EDGE_MSG_MAX ((size_t)1 << 20)

/* The knobs of struct config that sessions use; copied, may change on
 * SIGHUP through session_reconfig(). */
struct session_config {
	uint32_t coalesce_ms;
	uint32_t keepalive_s;
	uint32_t headless_grace_s;
	uint32_t intent_history;   /* versions kept per edge for deltas */
	uint64_t admit_bytes;      /* snapshots to new hellos while all
				      streams' queues hold less; 0 = 64 MiB */
	uint64_t cert_lifetime_s;
	uint32_t clock_offset_s;   /* tests only: added to the wall clock */
	bool check_patch;          /* tests only: patched intents == rebuilds */
	struct model_prefix pool6; /* tunnel_pool6; family 0 = off */
	char controller_name[65];
};

struct session_params {
	struct session_config cfg;
	struct store *st;          /* the loop's own connection; borrowed */
	struct ca *ca;             /* borrowed */
	struct metrics *metrics;   /* borrowed, may be NULL */
	/* Several controllers share the store (PostgreSQL): an edge's
	 * version is moved only by the controller holding its stream, and
	 * a hello rebuilds the edge's intent from the store (CONTROLLER.md,
	 * "Two replicas on PostgreSQL"). */
	bool replicated;
};

/*
 * Load the model, compile it, persist any allocation change, and restore
 * every edge's version: an edge whose last acked hash matches the rebuilt
 * intent keeps its version (it gets nothing on reconnect); otherwise the
 * version is bumped.  NULL on error (logged).  Free with session_free().
 */
struct sessions *session_new(const struct session_params *p);
/* Close every stream (status UNAVAILABLE, "controller shutting down"),
 * flush pending acks to the store.  Call before rpc_server_free. */
void session_shutdown(struct sessions *s);
void session_free(struct sessions *s);

/* Register Edge.Session on srv (Enroll and Renew: enroll.h).  0 or -1. */
int session_register(struct sessions *s, struct rpc_server *srv);

void session_reconfig(struct sessions *s, const struct session_config *cfg);

/*
 * From any thread: the model changed for these sites (n == 0: everything,
 * e.g. policy or crypto profile).  The loop recompiles after the
 * coalescing delay.
 */
void session_notify(struct sessions *s, const uint64_t *site_ids, size_t n);
/*
 * From any thread (the REST API): start the make-before-break rekey,
 * reason OPERATOR, of both directions of tunnel id (site false) or of
 * every tunnel of site id (site true).  Queued like session_notify();
 * a direction already rekeying keeps its rekey.
 */
void session_rekey_request(struct sessions *s, bool site, uint64_t id);
/*
 * From any thread (the REST API): the last intent version site_id's edge
 * failed to apply, kept since the daemon started even after later ok
 * acks.  false when there is none.
 */
bool session_last_failure(struct sessions *s, uint64_t site_id,
    struct model_ack_failure *out);
/*
 * From the replica thread: another controller changed these sites'
 * certificates or epoch keys (creds) and these tunnels' SA epochs
 * (a rekey step).  The loop reads them from the store, relays keys to
 * the peers it holds, and sends the rekey steps due to the edges it
 * holds.  Queued like session_notify().
 */
void session_notify_events(struct sessions *s, const uint64_t *creds,
    size_t n_creds, const uint64_t *tunnels, size_t n_tunnels);
/* From the replica thread: the leader stored allocations; a replica
 * waiting for them reads them now. */
void session_notify_alloc(struct sessions *s);
/*
 * From the replica thread: whether this controller holds the database's
 * leader lock (replicated stores only).  Only the leader runs the
 * time-based rekey scan, so two replicas never start the same rekey.
 */
void session_set_leader(struct sessions *s, bool leader);
/* eventfd that becomes readable after session_notify(). */
int session_wake_fd(const struct sessions *s);
/* Loop side: take the queued notifications. */
void session_wake(struct sessions *s);

/* Milliseconds until session_tick() has work, or -1 for none. */
int session_timeout_ms(const struct sessions *s);
/* Run due timers: coalesced recompiles, keepalives, ack flushes,
 * resyncs after backpressure. */
void session_tick(struct sessions *s);

/*
 * A certificate was issued for site_id by enrollment (and stored): the
 * sessions relay it to peers (a recompile of the site is queued), forget
 * the site's epoch keys, and close every stream of the site opened with
 * another certificate.  0 / -1.
 */
int session_cert_issued(struct sessions *s, uint64_t site_id,
    const uint8_t *der, size_t len);

#endif
