/*
 * session_int.h — the session layer's private state, shared by its files
 * (session.c, session_intent.c, session_rekey.c, session_keys.c,
 * session_status.c) and by nothing else: the public interface is
 * session.h.  Each file's functions used by the others are declared here,
 * grouped by file; everything else stays static in its file.
 *
 * All of it is one state machine seen from different sides — a model
 * change becomes new intent versions, which become messages on streams,
 * whose acks become stored versions.  Its invariants:
 *  - e->cur is the edge's intent at version e->cur.version, which is also
 *    the store's intent_version for that site;
 *  - e->base is the version the edge has, or will have once what we queued
 *    is applied; deltas are built from e->base to e->cur.version using the
 *    per-version change lists in e->hist;
 *  - a hash mismatch, a failed ack or a dropped message (backpressure)
 *    sets e->need_snapshot: the next push is a full snapshot.
 *
 * Persistence: versions, acks, connection state, status, tunnels and
 * epochs live in the store.  Issued certificates and announced epoch keys
 * live in the store's key/value table (session_keys.c).  Intents
 * (versions), SA epochs and certificates are committed before anything
 * that depends on them leaves the controller.  Acks, connection state,
 * status reports and announced keys are group-committed: kept in struct
 * edge and written for all edges in one transaction every
 * SESSION_ACK_FLUSH_MS (session_flush), and before any intent compile;
 * an announced key is relayed only after it is stored.
 *
 * Threads: only session_notify() and session_rekey_request() run on the
 * API thread, and they touch only the fields under s->lock.
 */
#ifndef MESHWAN_CONTROLLER_SESSION_INT_H
#define MESHWAN_CONTROLLER_SESSION_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/session.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/rpc.h"

struct store_cert;

#define SESSION_KEYS_MAX 2          /* current and next epoch per edge */

struct intent_change;
struct intent_memo;
struct rpc_stream;
struct topo_output;
struct epochs;

/* One version's changes of one edge. */
struct hist {
	uint64_t version;
	uint8_t hash[MSG_HASH_LEN];
	bool unknown;               /* changes not known: no delta crosses it */
	bool site_changed;
	struct intent_change *ch;
	size_t n;
};

/* A rekey order the full send queue dropped, repeated after the drain. */
struct rekey_drop {
	uint64_t tunnel_id, epoch;
	enum msg_rekey_step step;
	enum msg_rekey_reason reason;
	uint32_t spi;
	uint64_t sender_key_epoch, receiver_key_epoch;
};

/* When an edge last had a rekey request of one tunnel direction
 * accepted (session_rekey_on_request's rate limit). */
struct rekey_rq {
	uint64_t tunnel_id;
	uint64_t sender;
	uint64_t at_ms;             /* monotonic */
};

/*
 * A token bucket (session.c): burst tokens, one more every per_ms.  What
 * it refuses is counted and logged once per SESSION_LIMIT_LOG_MS.
 */
struct session_bucket {
	uint32_t tokens;
	bool init;
	uint64_t refill_ms;         /* mono ms the last token was counted */
	uint64_t refused;           /* since the last log line */
	uint64_t logged_ms;         /* last log line, 0 = none yet */
};

/* One site's last failed ack (sessions.failures). */
struct session_failure {
	uint64_t site_id;
	struct model_ack_failure f;
};

struct edge {
	uint64_t site_id;
	bool live;                  /* has intent (exists, not revoked) */
	struct msg_intent cur;      /* cur.version == 0: none built */
	uint8_t cur_hash[MSG_HASH_LEN];
	uint8_t *digests;           /* per tunnel of cur, same order (pbconv) */
	struct hist *hist;          /* ring of cfg.intent_history entries */
	size_t hist_cap, hist_len, hist_head; /* head = oldest */

	struct rpc_stream *stream;  /* NULL when not connected */
	bool hello;
	uint64_t base;
	bool need_snapshot;
	bool blocked;               /* queue was full; resync when drained */
	struct rekey_drop *dropped; /* rekey orders lost to the full queue */
	size_t n_dropped, cap_dropped;

	uint64_t applied;           /* last ok ack (or matching hello) */
	uint8_t applied_hash[MSG_HASH_LEN];
	bool applied_dirty;         /* not yet written to the store */
	char last_error[MSG_REASON_MAX + 1];

	/* What one edge may cost (CONTROLLER.md, "One edge cannot hurt the
	 * others"): streams before hello and closing ones, and rates. */
	unsigned n_prehello;        /* open streams without a hello yet */
	unsigned n_closing;         /* replaced streams still closing */
	bool resync_wait;           /* a resync waits for a token */
	/* The latest status report refused by rl_status, encoded (<= the
	 * rpc layer's 1 MiB inbound limit): applied when a token is back,
	 * so the REST view lags by at most one refill period. */
	uint8_t *status_wait;
	size_t status_wait_len;
	struct session_bucket rl_resync, rl_key, rl_status, rl_streams;

	struct msg_blob cert;       /* issued certificate, DER; its bytes are
	                               shared with every peer's intent */
	struct msg_peer_key keys[SESSION_KEYS_MAX];
	size_t n_keys;

	/* Waiting for the next group commit (session_flush). */
	char *status;               /* latest status JSON, <= MODEL_STATUS_MAX */
	size_t status_len;
	int64_t status_at;
	bool conn_dirty;            /* connected, connected_at not stored */
	char software_version[MSG_VERSION_STR_MAX + 1]; /* last hello's,
	                               printable ASCII only */
	bool connected;
	int64_t connected_at;
	bool keys_dirty;            /* keys not stored, not relayed yet */
	/* The last failed ack, for the other controllers' GET /edges. */
	struct model_ack_failure failure;
	bool failure_dirty;
	bool rekey_on_key;          /* relayed a new key: rekey onto it */

	/* Highest key epoch the site ever announced (accepted), under any
	 * certificate: new ones must be above it (stored, "keyfloor.<id>"). */
	uint64_t key_floor;

	/* Edge rekey requests: accepted ones of the last interval (at
	 * most two per tunnel of the edge), and the drop log's state. */
	struct rekey_rq *rq;
	size_t n_rq, cap_rq;
	uint64_t rq_log_ms;         /* last "dropped" log line, monotonic */
	uint64_t rq_dropped;        /* dropped since that line */
	uint64_t rq_bad_log_ms;     /* the same for refused (foreign) ones */
	uint64_t rq_bad;
	/* Log lines for failed, beyond-version and wrong-hash acks: the
	 * first SESSION_ACK_LOG_BURST per SESSION_LIMIT_LOG_MS, then one
	 * count of the rest (session.c, session_ack_log). */
	uint64_t ack_log_ms;        /* this interval's start, monotonic */
	unsigned ack_logged;        /* lines in this interval */
	uint64_t ack_unlogged;      /* acks not logged in it */

	/* Replicated store: a version change was left to the controller
	 * holding the stream; the next hello here rebuilds from the store. */
	bool stale;
};

/* A slot of the edge table. */
struct edge_slot {
	struct edge *e;             /* NULL = free */
};

/* An operator's rekey request, from the API thread. */
struct rekey_req {
	bool site;                  /* id is a site (all its tunnels) */
	uint64_t id;                /* else a tunnel */
};

/* Per-stream context. */
struct conn {
	struct sessions *s;
	struct rpc_stream *st;
	struct conn *prev, *next;   /* sessions.conns */
	uint64_t cert_site;         /* identity proven by the certificate */
	uint8_t cert_fp[RPC_CERT_FP_LEN]; /* which certificate exactly */
	int64_t cert_not_after;     /* unix s: the stream ends then */
	bool ending;                /* closed by us, on_close to follow */
	struct edge *e;             /* set by hello */
	struct edge *prehello;      /* counted in its n_prehello until hello */
	struct edge *closing;       /* replaced: counted in its n_closing */
};

struct sessions {
	struct session_config cfg;
	struct store *st;
	struct ca *ca;
	struct metrics *metrics;
	struct rpc_server *srv;     /* session_register: its queue figures */
	uint64_t admit_log_at;      /* snapshots refused: one line per 10 s */
	uint64_t admit_refused;     /* ... and how many since */

	struct topo_output *topo;
	struct intent_memo *memo;   /* hubs' carried prefixes (intent.h) */
	struct model_policy policy;
	struct model_crypto crypto;
	struct model_site *sites;   /* all sites, sorted by id */
	size_t n_sites;
	uint64_t *pfx_site;         /* all LAN prefixes, sorted by site: */
	struct model_prefix *pfx;   /* pfx[i] belongs to pfx_site[i] */
	size_t n_pfx;
	struct epochs *epochs;      /* the store's sa_epochs, by tunnel */

	struct edge_slot *tab;      /* open addressing by site id */
	size_t tab_cap, tab_used;

	/* From the API thread. */
	pthread_mutex_t lock;
	uint64_t *pending;
	size_t n_pending, cap_pending;
	bool pending_all;
	uint64_t *pending_creds, *pending_tunnels; /* session_notify_events */
	bool pending_alloc;         /* session_notify_alloc */
	size_t n_pending_creds, cap_pending_creds;
	size_t n_pending_tunnels, cap_pending_tunnels;
	struct rekey_req *pending_rekey;
	size_t n_pending_rekey, cap_pending_rekey;
	/* The last failed ack per site, sorted by site id (one entry per
	 * site that ever failed, ~540 bytes each); read by the API. */
	struct session_failure *failures;
	size_t n_failures, cap_failures;
	int efd;

	/* Loop side. */
	uint64_t *dirty;
	size_t n_dirty, cap_dirty;
	bool dirty_all;
	/* Edges whose intent changes without a topology change (a peer's
	 * new epoch key): rebuilt at the next flush, not recompiled. */
	uint64_t *rebuild;
	size_t n_rebuild, cap_rebuild;
	/* Tunnels whose content changed without a topology change (a new
	 * SA epoch went active): rebuilt in both ends' intents. */
	uint64_t *retunnel;
	size_t n_retunnel, cap_retunnel;
	uint64_t flush_at;          /* recompile due (mono ms), 0 = none */
	/* The allocation generation (store_tunnel_gen) memory matches. */
	uint64_t tunnel_gen;
	/* The change log's sequence number s->sites and s->pfx are read
	 * up to (session_load_changes). */
	uint64_t log_seq;
	/* Not the leader: batches followed the leader's allocations
	 * (topo_site_follow), which leaves tunnel_gen behind; the first
	 * batch as the leader reads them all again. */
	bool followed;
	/* A reload from the store failed: try again at the next flush. */
	bool reload;
	uint64_t next_keepalive;
	uint64_t next_ack_flush;
	uint64_t next_rekey_scan;
	uint64_t next_resync_scan;
	bool shutting_down;
	/* Several controllers on the store (session_params.replicated);
	 * this one holds the leader lock (set by the replica thread). */
	bool replicated;
	atomic_bool leader;
	/* A compile stopped because only the leader stores allocations. */
	bool deferred;
	/* This transaction stored allocations: log them (session_alloc_log). */
	bool alloc_log;

	/* Every open stream, to end those whose certificate was retired or
	 * expired; the earliest notAfter among them (unix s, 0 = none). */
	struct conn *conns;
	int64_t next_cert_expiry;
};

/* Append id to a grown array; -1 on ENOMEM.  Inline: the analyzer then
 * sees that *v is set whenever it returns 0. */
static inline int
session_ids_add(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	uint64_t *a;

	if (*v == NULL || *n >= *cap) {
		if ((a = util_grow(*v, cap, *n + 1, sizeof(*a), 64)) == NULL)
			return -1;
		*v = a;
	}
	(*v)[(*n)++] = id;
	return 0;
}

/* session.c: the edge table, helpers, sending. */
struct edge *session_edge_find(const struct sessions *s, uint64_t id);
/* Find or add (not live) the edge of site id; NULL on ENOMEM. */
struct edge *session_edge_get(struct sessions *s, uint64_t id);
int64_t session_now(const struct sessions *s);
const struct model_site *session_site(const struct sessions *s, uint64_t id);
/* Queue a recompile of site id / a rebuild of edge id at the next flush;
 * session_arm_flush() schedules the flush (after coalesce_ms). */
void session_mark_dirty(struct sessions *s, uint64_t id);
void session_mark_rebuild(struct sessions *s, uint64_t id);
void session_arm_flush(struct sessions *s);
/* Encode and queue m on e's stream; -1 when not sent (not connected,
 * or the queue is full: e->blocked and e->need_snapshot are then set).
 * what: the counter to bump, METRICS_RPC_MAX for none. */
int session_send(struct sessions *s, struct edge *e,
    const struct msg_controller_message *m, enum metrics_rpc what);
/* Send e what it lacks: a delta from e->base, or a snapshot. */
void session_push(struct sessions *s, struct edge *e);

/* session_intent.c: intents, versions, compiles. */
void session_intent_hist_clear(struct edge *e);
void session_intent_hist_push(struct sessions *s, struct edge *e,
    struct intent_change *ch, size_t n, bool site_changed, bool unknown);
const uint8_t *session_intent_hist_hash(struct edge *e, uint64_t v);
int session_intent_delta(struct edge *e, struct msg_intent_delta *d);
int session_intent_compile_all(struct sessions *s, bool restoring);
/* 0, or -1 when the store could not move the version (unreachable). */
int session_intent_skip_past(struct sessions *s, struct edge *e,
    uint64_t edge_version);
void session_intent_recompile(struct sessions *s);
void session_intent_rebuild(struct sessions *s);
void session_intent_retunnel(struct sessions *s);

/* session_rekey.c: SA epochs and the rekey state machine. */
struct model_epoch *session_rekey_epoch_active(struct sessions *s,
    uint64_t tunnel_id, uint64_t sender);
void session_rekey_epochs_drop(struct sessions *s, const uint64_t *removed,
    size_t n);
int session_rekey_epochs_load(struct sessions *s);
int session_rekey_epochs_init(struct sessions *s,
    const struct model_tunnel *t);
int session_rekey_epochs_renew(struct sessions *s,
    const struct model_tunnel *t, const char *why);
void session_rekey_site(struct sessions *s, uint64_t site_id,
    enum msg_rekey_reason reason);
void session_rekey_scan(struct sessions *s);
void session_rekey_ack(struct sessions *s, struct edge *e,
    const struct msg_ack *a);
void session_rekey_resend(struct sessions *s, struct edge *e);
void session_rekey_drained(struct sessions *s, struct edge *e);
void session_rekey_requested(struct sessions *s, const struct rekey_req *r);
/* An edge's RekeyRequest: checked (its tunnel), rate-limited, started. */
void session_rekey_on_request(struct sessions *s, struct edge *e,
    const struct msg_rekey_request *q);

/* session.c: whether e's version is this controller's to move: always
 * with one controller; with several, only while e's stream is here. */
bool session_local(const struct sessions *s, const struct edge *e);

/* session_rekey.c: another controller changed tunnel_id's SA epochs:
 * reload them, send the steps due to the ends held here. */
void session_rekey_follow(struct sessions *s, uint64_t tunnel_id);
/* session_keys.c: another controller changed site_id's certificate or
 * epoch keys: reload them, relay to the peers held here. */
void session_keys_follow(struct sessions *s, uint64_t site_id);
/* session_intent.c: a hello on a replicated store: bring e's intent to
 * the store's version (another controller may have moved it); with the
 * store unreachable, memory serves when e is not stale and edge_version
 * (the hello's) is not beyond it.  0 / -1. */
int session_intent_resume(struct sessions *s, struct edge *e,
    uint64_t edge_version);

/* session.c: end every stream of site_id whose certificate is not keep. */
void session_conns_retire(struct sessions *s, uint64_t site_id,
    const uint8_t keep[RPC_CERT_FP_LEN], const char *why);

/* session_keys.c: certificates and peers' epoch keys. */
/* A Session opened with the site's NEXT certificate (rec): it becomes the
 * site's only one, the sessions relay it, other streams end.  0 / -1. */
int session_cert_promote(struct sessions *s, const struct store_cert *rec);
void session_keys_load(struct sessions *s, struct edge *e);
/* struct intent_lookup's keys callback; arg is the sessions. */
void session_keys_lookup(void *arg, uint64_t site_id,
    const struct msg_peer_key **k, size_t *n);
int session_keys_refresh(struct sessions *s, struct edge *e, bool *changed);
/* Checks without signature work, before the rate limit. */
bool session_keys_cheap_ok(struct sessions *s, const struct edge *e,
    const struct msg_key_announcement *k);
void session_keys_on_key(struct sessions *s, struct edge *e,
    const struct msg_key_announcement *k);
/* Group commit: write e's keys (inside the flush's transaction), then,
 * once committed, relay them to e's peers. */
int session_keys_save(struct sessions *s, const struct edge *e);
void session_keys_relay(struct sessions *s, struct edge *e);
/* The newest key epoch of site_id that has not expired, 0 if none: what
 * a new SA epoch is keyed with. */
uint64_t session_keys_newest(struct sessions *s, uint64_t site_id);
/* Forget expired keys (never relayed again); peers get a new version. */
void session_keys_expire(struct sessions *s);

/* session_status.c */
void session_status_save(struct sessions *s, struct edge *e,
    const struct msg_status *m);

#endif
