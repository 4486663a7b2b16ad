/*
 * store.h — the controller's persistent state behind one small interface.
 *
 * Everything the controller must remember across restarts goes through
 * these functions: the model (sites, links, prefixes, policy, crypto),
 * tunnel allocations, per-edge versions and status, hashed enrollment and
 * API tokens, the audit log, small key/value settings (CA material
 * references) and SA epoch bookkeeping.
 *
 * The database engine is hidden: store.c speaks portable SQL with `?`
 * placeholders through a backend vtable (controller/store_backend.h);
 * store_sqlite.c is the only sqlite user, store_pg.c the only libpq
 * user.  No engine type crosses this header.
 *
 * Transactions: every function that writes runs in a transaction and
 * leaves the database unchanged when it fails.  A caller may group several
 * calls with store_begin()/store_commit() (e.g. a site change plus its
 * audit entry); inner calls then join the outer transaction, and if any of
 * them fails the whole group is rolled back at store_commit(), which then
 * returns -1.  Always pair store_begin with store_commit or
 * store_rollback.  One exception, named where it applies: a *miss*
 * (MODEL_E_NOT_FOUND because another writer deleted the row first: the
 * edge row of a deleted site, the tunnel of a new SA epoch) writes nothing
 * and leaves the group usable, so one vanished site cannot undo a batch of
 * other edges' versions, acks or rekeys.
 *
 * Errors: functions return 0 or -1.  On -1 the optional err (may be NULL)
 * says why, with a code the REST API can map to a status
 * (MODEL_E_INVALID/DUPLICATE/OVERLAP/EXHAUSTED -> 4xx, NOT_FOUND -> 404,
 * TOKEN -> 401/403, INTERNAL -> 500, BUSY -> 503: another writer held
 * the database, or it cannot be reached and the message says why).
 *
 * Threads: a struct store is used by one thread at a time; open one per
 * thread if needed (sqlite WAL allows concurrent readers, busy handling
 * waits up to busy_timeout_ms for writers).
 *
 * Memory: arrays returned through `**out` are malloc'd and owned by the
 * caller; free them with free() unless a *_free function is named.
 */
#ifndef MESHWAN_STORE_H
#define MESHWAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"

struct store;

/* Random tokens are 32 bytes shown as 64 hex chars, with a type prefix. */
#define STORE_TOKEN_LEN 68              /* "mwe_" (enroll) or "mwa_" (API) + 64 hex */
#define STORE_ENROLL_TTL_DEFAULT 3600

struct store_opts {
	const char *backend;            /* "sqlite" (default when NULL) or
					   "postgresql" */
	const char *path;               /* sqlite: database file (":memory:"
					   ok); postgresql: a libpq connection
					   string or URI, passed unchanged */
	int busy_timeout_ms;            /* 0 = 5000 */
};

/*
 * Open (creating if needed) and migrate to the newest schema in one
 * transaction.  A database from a newer meshwan is refused.  On success
 * *out is owned by the caller (store_close).  The first open stores the
 * default policy and crypto profile.
 */
int store_open(const struct store_opts *opts, struct store **out,
    struct model_error *err);
void store_close(struct store *st);   /* NULL safe */
/* Schema version after migrations (number of migrations applied). */
int store_schema_version(struct store *st);
/* Number of migrations compiled into this binary. */
int store_schema_latest(void);
/* Did this store_open create the schema (a new, empty database)? */
bool store_created(const struct store *st);
/* "sqlite" or "postgresql". */
const char *store_engine(const struct store *st);

/*
 * The change log, for several controllers on one database.  Every
 * committed transaction that changed sites, links, prefixes, policy or
 * crypto gets the next sequence number (no holes; numbers commit in
 * order) and a row per changed site (0: policy or crypto); PostgreSQL
 * also sends NOTIFY on commit.  Topology writers of all controllers are
 * serialized by one row lock (STORE.md, "Several controllers").
 */
enum store_change_kind {
	STORE_CHANGE_SITE = 0,    /* a site's topology (0: policy/crypto) */
	STORE_CHANGE_CREDS = 1,   /* a site's certificate or epoch keys */
	STORE_CHANGE_EPOCHS = 2,  /* a tunnel's SA epochs (a rekey step) */
	STORE_CHANGE_ALLOC = 3,   /* the leader stored allocations (id: the
	                             new tunnel generation) */
};
struct store_changes {
	uint64_t *sites;        /* changed site ids, in order (may repeat) */
	size_t n, cap;
	uint64_t *creds;        /* sites whose certificate or keys changed */
	size_t n_creds, cap_creds;
	uint64_t *tunnels;      /* tunnels whose SA epochs changed */
	size_t n_tunnels, cap_tunnels;
	bool all;               /* policy/crypto, or rows pruned: reload */
	bool alloc;             /* another controller stored allocations */
	uint64_t last;          /* the newest sequence number seen */
};
/* Log a change other than a topology write (those log themselves) in
 * the current transaction (or its own): kind CREDS (id: site), EPOCHS
 * (id: tunnel) or ALLOC (id: generation).  Takes the writers' lock, like every logged change. */
int store_note_event(struct store *st, enum store_change_kind kind,
    uint64_t id, struct model_error *err);
void store_changes_free(struct store_changes *ch);
/* Take the writers' lock (every topology write takes it) in the open
 * transaction, so that what it reads next is every earlier writer's
 * commit, on every engine (PostgreSQL: READ COMMITTED sees commits made
 * before each statement; the lock orders the writers).  0 / -1. */
int store_lock_writers(struct store *st, struct model_error *err);
/*
 * The leader lease among controllers on the database, held on this
 * connection in the name of store_origin(); call it again to renew it
 * (when due).  1 held (claimed now or kept since), 0 another controller
 * holds it, 2 another held it but had not renewed it for lease_ms and
 * was fenced just now, or nobody holds it yet (the fenced holder's
 * backend has not exited): ask again soon; -1 unreachable.  sqlite:
 * always 1.  See controller/STORE.md, "The leader lease".
 */
int store_leader(struct store *st, int lease_ms);
/*
 * In the open transaction, before storing allocations as the leader:
 * 0 when this process (store_origin) still holds the leader lease,
 * claimed before this transaction began; it then cannot pass to another
 * controller before this transaction ends.  -1 otherwise: MODEL_E_CONFLICT
 * when the lease is another's (this controller was fenced, or lost it),
 * a database error as usual.  sqlite: always 0.
 */
int store_leader_check(struct store *st, struct model_error *err);
/* Names this connection's writer in the change log: random per open;
 * a process gives all its connections the same (<= 32 characters). */
const char *store_origin(const struct store *st);
void store_set_origin(struct store *st, const char *origin);
/* Start receiving notifications on this connection (PostgreSQL only;
 * sqlite: MODEL_E_INVALID).  A reconnect re-issues it by itself. */
int store_changes_listen(struct store *st, struct model_error *err);
/* Block up to timeout_ms: 1 a change was notified (or the connection
 * came back: read the log), 0 nothing, -1 the database is unreachable
 * (it has waited; call again). */
int store_changes_wait(struct store *st, int timeout_ms);
/* The newest sequence number. */
int store_changes_head(struct store *st, uint64_t *seq,
    struct model_error *err);
/* Changes after sequence number after, leaving out those made by
 * skip_origin (NULL: none); store_changes_free(out). */
int store_changes_since(struct store *st, uint64_t after,
    const char *skip_origin, struct store_changes *out,
    struct model_error *err);

/* Group calls into one transaction (nestable; see top of file). */
int store_begin(struct store *st, struct model_error *err);
int store_commit(struct store *st, struct model_error *err);
/* Transactions committed and statements run on this connection so far
 * (each commit is one fsync with sqlite's defaults): for /metrics. */
void store_counters(const struct store *st, uint64_t *commits,
    uint64_t *statements);
void store_rollback(struct store *st);

/* ---- sites and links ---------------------------------------------- */

/*
 * Create a site with its links.  site->id is ignored and set on success;
 * site->asn == 0 assigns the lowest free ASN of policy [asn_min, asn_max]
 * (MODEL_E_EXHAUSTED when none left) and is set on success.  Refuses a
 * duplicate name or ASN (MODEL_E_DUPLICATE).
 */
int store_site_create(struct store *st, struct model_site *site,
    struct model_error *err);
/*
 * Replace name, region, role, asn (0 = keep), backend, revoked and the
 * whole link set of site->id.
 */
int store_site_update(struct store *st, const struct model_site *site,
    struct model_error *err);
/* Delete a site and everything hanging off it (links, prefixes, edge
 * state, tokens, its tunnels and their epochs). */
int store_site_delete(struct store *st, uint64_t id, struct model_error *err);
int store_site_get(struct store *st, uint64_t id, struct model_site *out,
    struct model_error *err);
int store_site_get_by_name(struct store *st, const char *name,
    struct model_site *out, struct model_error *err);
/* All sites sorted by id (revoked included). */
int store_site_list(struct store *st, struct model_site **out, size_t *n,
    struct model_error *err);

/* Add, replace (matched by link->name) or remove one link of a site. */
int store_link_add(struct store *st, uint64_t site_id,
    const struct model_link *link, struct model_error *err);
int store_link_update(struct store *st, uint64_t site_id,
    const struct model_link *link, struct model_error *err);
int store_link_delete(struct store *st, uint64_t site_id, const char *name,
    struct model_error *err);

/* ---- LAN prefixes -------------------------------------------------- */

/*
 * Add a LAN prefix (canonical, host bits zero) to a site.  Refused with
 * MODEL_E_OVERLAP when it overlaps any prefix of any site (field
 * "prefix"), MODEL_E_INVALID when the site already has MODEL_PREFIXES_MAX.
 */
int store_prefix_add(struct store *st, uint64_t site_id,
    const struct model_prefix *p, struct model_error *err);
int store_prefix_delete(struct store *st, uint64_t site_id,
    const struct model_prefix *p, struct model_error *err);
/* Prefixes of one site (site_id > 0) or of all sites (0), sorted. */
int store_prefix_list(struct store *st, uint64_t site_id,
    struct model_site_prefix **out, size_t *n, struct model_error *err);

/* ---- policy and crypto profile ------------------------------------- */

int store_policy_get(struct store *st, struct model_policy *out,
    struct model_error *err);
/* Validates first; refuses an ASN range that leaves existing sites out. */
int store_policy_set(struct store *st, const struct model_policy *p,
    struct model_error *err);
int store_crypto_get(struct store *st, struct model_crypto *out,
    struct model_error *err);
int store_crypto_set(struct store *st, const struct model_crypto *c,
    struct model_error *err);

/* ---- tunnel allocations (decided by topo, persisted here) ----------- */

/* All tunnels sorted by id, and the next tunnel id to hand out. */
int store_tunnel_list(struct store *st, struct model_tunnel **out, size_t *n,
    uint64_t *next_id, struct model_error *err);
/* The tunnels with site_id at either end, sorted by id, through the
 * indexes on both ends (no full scan); none for an unknown site. */
/* One tunnel by id (its primary key: no scan); MODEL_E_NOT_FOUND if none. */
int store_tunnel_get(struct store *st, uint64_t id, struct model_tunnel *out,
    struct model_error *err);
/* How many tunnels there are (metrics: without reading them all). */
int store_tunnel_count(struct store *st, size_t *n, struct model_error *err);
int store_tunnel_list_site(struct store *st, uint64_t site_id,
    struct model_tunnel **out, size_t *n, struct model_error *err);
/*
 * Apply one compile's outcome: delete `removed` ids, insert `added`
 * tunnels, remember next_id, and move the allocation generation on by
 * one.  All or nothing.  An `added` tunnel that is stored already (a
 * re-allocation: same id, new /31 or VNI) is changed in place, so its
 * SA epochs stay recorded until store_epoch_renew() replaces them.
 */
int store_tunnel_apply(struct store *st, const uint64_t *removed,
    size_t n_removed, const struct model_tunnel *added, size_t n_added,
    uint64_t next_id, struct model_error *err);

/*
 * The allocation generation: 0 on a new database, one more after every
 * store_tunnel_apply (a deleted site's tunnels, removed by cascade, do not
 * count: every compiler knows them).  A compiler that keeps allocations
 * in memory reads it inside the transaction it writes in; a value other
 * than the one it left means another writer (a second controller on the
 * same database) changed them: reload before compiling on top.
 */
int store_tunnel_gen(struct store *st, uint64_t *gen,
    struct model_error *err);

/* The next tunnel id to hand out: ids below it were allocated before. */
int store_tunnel_next_id(struct store *st, uint64_t *next_id,
    struct model_error *err);

/* ---- per-edge state ------------------------------------------------- */

/* State of one edge; a site never seen yet reads as all zero.  Caller
 * releases out with model_edge_state_clear. */
int store_edge_get(struct store *st, uint64_t site_id,
    struct model_edge_state *out, struct model_error *err);
/* All edges' state (status blobs not loaded), sorted by site id. */
int store_edge_list(struct store *st, struct model_edge_state **out,
    size_t *n, struct model_error *err);
/*
 * The edge writers below (bump, applied, connected, status) answer a site
 * that no longer exists with a miss: MODEL_E_NOT_FOUND, nothing written,
 * a surrounding group still usable (see the top of this file).
 */
/* Increment the edge's intent version and return the new value. */
int store_edge_bump_intent(struct store *st, uint64_t site_id,
    uint64_t *version, struct model_error *err);
/* Move the edge's intent version to past + 1 when it is not above past
 * already (one statement, whatever the distance); *version is the
 * result.  past must be below INT64_MAX. */
int store_edge_skip_intent(struct store *st, uint64_t site_id,
    uint64_t past, uint64_t *version, struct model_error *err);
/* Record an ack: applied version (must be <= intent version) and hash. */
int store_edge_set_applied(struct store *st, uint64_t site_id,
    uint64_t version, const uint8_t *hash, size_t hash_len,
    struct model_error *err);
/* software_version (<= MODEL_VERSION_MAX, NULL = "") is kept only when
 * connected; a disconnect leaves the last one for the dashboard. */
int store_edge_set_connected(struct store *st, uint64_t site_id,
    bool connected, int64_t now, const char *software_version,
    struct model_error *err);
/* Keep the edge's last failed ack (f->reason printable ASCII). */
int store_edge_set_failure(struct store *st, uint64_t site_id,
    const struct model_ack_failure *f, struct model_error *err);
/* Keep the latest status blob (<= MODEL_STATUS_MAX bytes). */
int store_edge_set_status(struct store *st, uint64_t site_id,
    const void *blob, size_t len, int64_t now, struct model_error *err);

/* ---- enrollment tokens ---------------------------------------------- */

/*
 * Make a one-time enrollment token for site_id valid until now + ttl
 * seconds.  token receives the plaintext (shown once); only its SHA-256
 * is stored.
 */
int store_enroll_token_create(struct store *st, uint64_t site_id,
    int64_t now, int64_t ttl, char token[STORE_TOKEN_LEN + 1],
    struct model_error *err);
/*
 * Check and burn a token: it must exist, be unused, unexpired at now and
 * (when site_id != 0) bound to site_id.  On success *bound_site is the
 * site and the token can never be used again.  Any failure is
 * MODEL_E_TOKEN with a message that does not reveal which check failed.
 */
int store_enroll_token_consume(struct store *st, const char *token,
    uint64_t site_id, int64_t now, uint64_t *bound_site,
    struct model_error *err);

/* What a presented enrollment token is, without using it up. */
enum store_token_state {
	STORE_TOKEN_UNKNOWN = 0,        /* never issued (or its site was deleted) */
	STORE_TOKEN_VALID,              /* would be accepted now */
	STORE_TOKEN_USED,
	STORE_TOKEN_EXPIRED,
	STORE_TOKEN_OTHER_SITE,         /* valid, but bound to another site */
};

/*
 * Classify a token (read only), e.g. to tell an enrolling edge why
 * store_enroll_token_consume refused it.  A used token reads as USED even
 * after expiry.  *bound_site (may be NULL) is set when the token exists.
 */
int store_enroll_token_state(struct store *st, const char *token,
    uint64_t site_id, int64_t now, enum store_token_state *state,
    uint64_t *bound_site, struct model_error *err);

/* ---- API tokens ------------------------------------------------------ */

/* Create a named API token (name unique); plaintext into token, hash stored. */
int store_api_token_create(struct store *st, const char *name,
    enum model_api_role role, int64_t now, char token[STORE_TOKEN_LEN + 1],
    struct model_error *err);
/* Look a presented bearer token up; MODEL_E_TOKEN if unknown. */
int store_api_token_check(struct store *st, const char *token,
    struct model_api_token_info *out, struct model_error *err);
int store_api_token_delete(struct store *st, const char *name,
    struct model_error *err);
int store_api_token_list(struct store *st, struct model_api_token_info **out,
    size_t *n, struct model_error *err);

/* ---- audit log ------------------------------------------------------- */

/* detail: JSON text (<= MODEL_DETAIL_MAX) or NULL. */
int store_audit_add(struct store *st, int64_t now, const char *who,
    const char *what, const char *detail, struct model_error *err);
/* Entries with id > after_id, oldest first, at most limit (<= 10000).
 * Free with model_audit_free_array. */
int store_audit_list(struct store *st, uint64_t after_id, size_t limit,
    struct model_audit **out, size_t *n, struct model_error *err);

/* ---- small settings (CA material references, ...) ------------------ */

/* value <= 4096 bytes of text.  get: MODEL_E_NOT_FOUND when unset. */
int store_kv_set(struct store *st, const char *key, const char *value,
    struct model_error *err);
int store_kv_get(struct store *st, const char *key, char *value,
    size_t valuesz, struct model_error *err);

/* ---- certificates a site's Session may use --------------------------- */

#define STORE_CERT_FP_LEN 32            /* SHA-256 of the DER */
#define STORE_CERT_DER_MAX 8192

enum store_cert_state {
	STORE_CERT_ACTIVE = 1,  /* the one peers see; at most one per site */
	STORE_CERT_NEXT = 2,    /* renewed, not yet used for a Session */
};

struct store_cert {
	uint64_t site_id;
	uint8_t fp[STORE_CERT_FP_LEN];
	char serial[41];                /* lower-case hex */
	int64_t not_after, issued_at;   /* unix seconds */
	enum store_cert_state state;    /* set by store_cert_get */
	uint8_t der[STORE_CERT_DER_MAX];
	size_t der_len;
};

/*
 * Enrollment: c becomes the site's only certificate (ACTIVE); every other
 * certificate of the site is retired (deleted) in the same transaction.
 */
int store_cert_enroll(struct store *st, const struct store_cert *c,
    struct model_error *err);
/*
 * Renewal: old_fp must be the ACTIVE certificate of c->site_id
 * (MODEL_E_TOKEN otherwise); c replaces any earlier NEXT one.  The ACTIVE
 * one stays valid until store_cert_promote().
 */
int store_cert_renew(struct store *st, const uint8_t old_fp[STORE_CERT_FP_LEN],
    const struct store_cert *c, struct model_error *err);
/*
 * A Session opened with fp: when fp is the site's NEXT certificate it
 * becomes ACTIVE and every other certificate of the site is retired.
 * Harmless for the ACTIVE one.  MODEL_E_NOT_FOUND if fp is not the
 * site's.
 */
int store_cert_promote(struct store *st, uint64_t site_id,
    const uint8_t fp[STORE_CERT_FP_LEN], struct model_error *err);
/* The site's ACTIVE certificate; MODEL_E_NOT_FOUND when it has none. */
int store_cert_active(struct store *st, uint64_t site_id,
    struct store_cert *out, struct model_error *err);
/* Look a certificate up by fingerprint; MODEL_E_NOT_FOUND when retired. */
int store_cert_get(struct store *st, const uint8_t fp[STORE_CERT_FP_LEN],
    struct store_cert *out, struct model_error *err);

/*
 * A used token presented again, for an enrollment whose answer was lost
 * (the edge retries with the same token and key pair): the certificate
 * to send again.  0 with the site's ACTIVE certificate in *out when the
 * token exists, was used, has not expired at now and its site is not
 * revoked.  Refusals: MODEL_E_TOKEN ("unknown" for an unknown or unused
 * token, "expired", "revoked"; err->message says which, no secret),
 * MODEL_E_NOT_FOUND when the site has no ACTIVE certificate (retired by
 * a later enrollment or renewal).  Read only.  The caller still has to
 * check that the presenter holds the certificate's key (a CSR with the
 * same public key): the store does no signature work.
 */
int store_enroll_token_replay(struct store *st, const char *token,
    int64_t now, struct store_cert *out, struct model_error *err);

/* ---- SA epochs per tunnel direction ---------------------------------- */

/*
 * Record a new epoch for (tunnel_id, sender_site) in e->state (INSTALLED
 * for a rekey, ACTIVE for a new tunnel's first epoch) at e->changed_at,
 * and allocate its SPI: random, >= 256, unique per recv_address across
 * all recorded epochs (live and draining).  e->spi is set on success.
 * Errors: invalid (address, state), not_found (no such tunnel: a miss,
 * checked before writing, so a surrounding group stays usable), duplicate
 * (the epoch is recorded), exhausted (no free SPI).
 */
int store_epoch_add(struct store *st, struct model_epoch *e,
    struct model_error *err);
/*
 * Start the SAs of a re-made tunnel over (its /31, VNI or encapsulation
 * changed: the edges delete the tunnel and install its SAs again, and an
 * outbound key must never be installed twice, overlay.h "Nonces").  e[0..n)
 * (one per sender, epoch and spi ignored) are recorded as epoch M + 1,
 * M being the highest epoch the tunnel has recorded in any direction,
 * with SPIs that are free at their receiving address and none that the
 * tunnel holds; then every older epoch of the tunnel is forgotten.  All
 * or nothing.  e[i].epoch and e[i].spi are set on success.  Errors as
 * store_epoch_add.
 */
int store_epoch_renew(struct store *st, struct model_epoch *e, size_t n,
    struct model_error *err);
int store_epoch_set_state(struct store *st, uint64_t tunnel_id,
    uint64_t sender_site, uint64_t epoch, enum model_epoch_state state,
    int64_t now, struct model_error *err);
/* Forget an epoch (its drain ended); frees its SPI. */
int store_epoch_delete(struct store *st, uint64_t tunnel_id,
    uint64_t sender_site, uint64_t epoch, struct model_error *err);
/* Epochs of one tunnel (tunnel_id > 0) or of all (0), sorted. */
int store_epoch_list(struct store *st, uint64_t tunnel_id,
    struct model_epoch **out, size_t *n, struct model_error *err);
/* Epochs of every tunnel with site_id at either end, sorted. */
int store_epoch_list_site(struct store *st, uint64_t site_id,
    struct model_epoch **out, size_t *n, struct model_error *err);

#endif
