/*
 * store.c — the controller's persistent state, independent of the
 * database engine.
 *
 * All SQL here is portable: `?` placeholders, BIGINT/INTEGER/TEXT/BLOB
 * columns, integer epoch times, no engine functions, ids allocated by
 * counters in the meta table rather than by autoincrement.  The engine is
 * reached only through struct store_backend (store_backend.h).  Every
 * write runs inside store_tx_begin/store_tx_end so that a failure
 * anywhere rolls the whole change back; callers may nest their own
 * transaction around several calls (see store.h).
 *
 * Tokens are random 32-byte values shown to the user once; only their
 * SHA-256 (hex) is stored, so the database never holds a usable token.
 */
#include "controller/store.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/store_backend.h"
#include "lib/log.h"
#include "lib/util.h"

#define STORE_HASH_HEX   65     /* SHA-256 as hex + NUL */
#define STORE_KV_KEY_MAX 64
#define STORE_KV_VAL_MAX 4096
#define STORE_TOKEN_TTL_MAX 2592000  /* 30 days */
#define STORE_AUDIT_LIMIT_MAX 10000

#define STORE_STMT_CACHE 64
/* Change-log rows kept (by sequence number) for controllers catching up
 * after a reconnect; one further behind reloads everything. */
#define STORE_CHANGES_KEEP 10000
#define STORE_CHANGES_CHANNEL "meshwan_changes"

/* A prepared statement kept for the next use of the same query text. */
struct store_stmt {
	const char *sql;        /* the caller's literal: compared by address */
	void *stmt;
	bool busy;
};

struct store {
	const struct store_backend *be;
	void *conn;
	int depth;              /* transaction nesting */
	bool failed;            /* an inner step failed: roll back at the end */
	uint64_t commits;       /* transactions committed (store_counters) */
	uint64_t statements;    /* statements run */
	int schema;
	bool created;           /* this open made the schema */
	char origin[33];        /* names this process in the change log */
	/* This transaction: the serializing lock is held; what changed
	 * (kind and id, logged at commit); all = policy or crypto changed. */
	bool tx_locked;
	bool tx_all;
	uint64_t *tx_sites;
	int *tx_kinds;          /* enum store_change_kind, per tx_sites[i] */
	size_t n_tx_sites, cap_tx_sites;
	struct store_stmt cache[STORE_STMT_CACHE];
	size_t n_cache;
};

/* ---- migrations ------------------------------------------------------- */

/*
 * Each migration is a list of portable statements, applied once, in
 * order, inside the start-up transaction; schema_version records how many
 * have run.  Never edit a released migration: append a new one.
 */
static const char *const store_mig1[] = {
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
	"CREATE TABLE sites ("
	" id BIGINT PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" region TEXT NOT NULL,"
	" role INTEGER NOT NULL,"
	" asn BIGINT NOT NULL UNIQUE,"
	" backend INTEGER NOT NULL,"
	" revoked INTEGER NOT NULL DEFAULT 0)",
	"CREATE TABLE links ("
	" site_id BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" address TEXT NOT NULL,"
	" public_address TEXT NOT NULL,"
	" public_port INTEGER NOT NULL,"
	" PRIMARY KEY (site_id, name))",
	"CREATE TABLE prefixes ("
	" site_id BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" family INTEGER NOT NULL,"
	" len INTEGER NOT NULL,"
	" addr BLOB NOT NULL,"
	" cidr TEXT NOT NULL,"
	" PRIMARY KEY (site_id, cidr))",
	"CREATE TABLE policy ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" topology INTEGER NOT NULL,"
	" pairing INTEGER NOT NULL,"
	" pairs TEXT NOT NULL,"
	" pool TEXT NOT NULL,"
	" encap INTEGER NOT NULL,"
	" vni_min BIGINT NOT NULL, vni_max BIGINT NOT NULL,"
	" asn_min BIGINT NOT NULL, asn_max BIGINT NOT NULL,"
	" mtu INTEGER NOT NULL,"
	" bgp_hold_time INTEGER NOT NULL, bgp_keepalive INTEGER NOT NULL,"
	" bgp_bfd INTEGER NOT NULL)",
	"CREATE TABLE crypto ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" cipher INTEGER NOT NULL,"
	" rekey_seconds BIGINT NOT NULL,"
	" replay_window BIGINT NOT NULL,"
	" rekey_bytes BIGINT NOT NULL,"
	" rekey_packets BIGINT NOT NULL)",
	"CREATE TABLE tunnels ("
	" id BIGINT PRIMARY KEY,"
	" site_a BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" link_a TEXT NOT NULL,"
	" site_b BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" link_b TEXT NOT NULL,"
	" inner_addr BIGINT NOT NULL UNIQUE,"
	" vni BIGINT NOT NULL,"
	" UNIQUE (site_a, link_a, site_b, link_b))",
	"CREATE TABLE edges ("
	" site_id BIGINT PRIMARY KEY REFERENCES sites(id) ON DELETE CASCADE,"
	" intent_version BIGINT NOT NULL DEFAULT 0,"
	" applied_version BIGINT NOT NULL DEFAULT 0,"
	" conv_hash BLOB,"
	" connected INTEGER NOT NULL DEFAULT 0,"
	" connected_at BIGINT NOT NULL DEFAULT 0,"
	" status BLOB,"
	" status_at BIGINT NOT NULL DEFAULT 0)",
	"CREATE TABLE enroll_tokens ("
	" hash TEXT PRIMARY KEY,"
	" site_id BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" created_at BIGINT NOT NULL,"
	" expires_at BIGINT NOT NULL,"
	" used_at BIGINT NOT NULL DEFAULT 0)",
	"CREATE TABLE api_tokens ("
	" name TEXT PRIMARY KEY,"
	" hash TEXT NOT NULL UNIQUE,"
	" role INTEGER NOT NULL,"
	" created_at BIGINT NOT NULL)",
	"CREATE TABLE audit ("
	" id BIGINT PRIMARY KEY,"
	" at BIGINT NOT NULL,"
	" who TEXT NOT NULL,"
	" what TEXT NOT NULL,"
	" detail TEXT)",
	"CREATE TABLE sa_epochs ("
	" tunnel_id BIGINT NOT NULL REFERENCES tunnels(id) ON DELETE CASCADE,"
	" sender_site BIGINT NOT NULL,"
	" epoch BIGINT NOT NULL,"
	" recv_address TEXT NOT NULL,"
	" spi BIGINT NOT NULL,"
	" state INTEGER NOT NULL,"
	" changed_at BIGINT NOT NULL,"
	" PRIMARY KEY (tunnel_id, sender_site, epoch),"
	" UNIQUE (recv_address, spi))",
	"CREATE INDEX links_site ON links (site_id)",
	"CREATE INDEX tunnels_b ON tunnels (site_b)",
	"CREATE INDEX enroll_site ON enroll_tokens (site_id)",
	NULL,
};

/* 2: why each epoch was started, so that steps repeated after a
 * reconnect or an overflow still say why (the wire's RekeyReason). */
static const char *const store_mig2[] = {
	"ALTER TABLE sa_epochs ADD COLUMN reason INTEGER NOT NULL DEFAULT 0",
	NULL,
};

/* 3: the X25519 key epochs each SA epoch's key is derived from, fixed
 * when it starts, so every order and intent names the same ones. */
static const char *const store_mig3[] = {
	"ALTER TABLE sa_epochs ADD COLUMN sender_key_epoch BIGINT NOT NULL "
	"DEFAULT 0",
	"ALTER TABLE sa_epochs ADD COLUMN receiver_key_epoch BIGINT NOT NULL "
	"DEFAULT 0",
	NULL,
};

/* 4: the certificates a site's Session may use, by SHA-256 fingerprint:
 * one ACTIVE (the one peers see) and, after a renewal, one NEXT. */
static const char *const store_mig4[] = {
	"CREATE TABLE certs ("
	" fingerprint TEXT PRIMARY KEY,"
	" site_id BIGINT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
	" serial TEXT NOT NULL,"
	" not_after BIGINT NOT NULL,"
	" issued_at BIGINT NOT NULL,"
	" state INTEGER NOT NULL,"
	" der BLOB NOT NULL)",
	"CREATE INDEX certs_site ON certs (site_id)",
	NULL,
};

/* 5: a LAN default route only on a hub that says so (issue 8 §4). */
static const char *const store_mig5[] = {
	"ALTER TABLE sites ADD COLUMN internet_breakout INTEGER NOT NULL "
	"DEFAULT 0",
	NULL,
};

/* 6: the change log other controllers on the same database follow
 * (one row per changed site per committed transaction, site 0 = policy
 * or crypto), and its sequence, whose row also serializes topology
 * writers (see store_serialize). */
static const char *const store_mig6[] = {
	"CREATE TABLE changes ("
	" seq BIGINT NOT NULL,"
	" site_id BIGINT NOT NULL,"
	" origin TEXT NOT NULL,"
	" PRIMARY KEY (seq, site_id))",
	"INSERT INTO meta (key, value) VALUES ('change_seq', '0')",
	/* Counters written by compare-and-set or under a lock exist from
	 * the start, so two controllers never race to insert them. */
	"INSERT INTO meta (key, value) SELECT 'tunnel_gen', '0' WHERE NOT "
	"EXISTS (SELECT 1 FROM meta WHERE key = 'tunnel_gen')",
	"INSERT INTO meta (key, value) SELECT 'next_tunnel_id', '1' WHERE NOT "
	"EXISTS (SELECT 1 FROM meta WHERE key = 'next_tunnel_id')",
	"INSERT INTO meta (key, value) SELECT 'next_site_id', '1' WHERE NOT "
	"EXISTS (SELECT 1 FROM meta WHERE key = 'next_site_id')",
	NULL,
};

/* 7: the software version each edge's agent named in its last hello,
 * for the dashboard's site page and GET /edges. */
static const char *const store_mig7[] = {
	"ALTER TABLE edges ADD COLUMN software_version TEXT NOT NULL "
	"DEFAULT ''",
	NULL,
};

/* 8: change log rows say what changed (kind): a site (0), a site's
 * certificate or epoch keys (1), a tunnel's SA epochs (2), the leader's
 * allocations (3: id is the new tunnel generation), so that
 * replicas pass on renewals, key announcements and rekeys of edges
 * connected to another replica.  Rebuilt (sqlite cannot change a
 * primary key); the rows so far are site changes. */
static const char *const store_mig8[] = {
	"CREATE TABLE changes8 ("
	" seq BIGINT NOT NULL,"
	" kind INTEGER NOT NULL,"
	" id BIGINT NOT NULL,"
	" origin TEXT NOT NULL,"
	" PRIMARY KEY (seq, kind, id))",
	"INSERT INTO changes8 (seq, kind, id, origin) SELECT seq, 0, site_id, "
	"origin FROM changes",
	"DROP TABLE changes",
	"ALTER TABLE changes8 RENAME TO changes",
	NULL,
};

/* 9: each edge's last failed ack (version, when, the edge's reason),
 * written by the controller holding its stream, so that every replica's
 * GET /edges shows it (last_failure). */
static const char *const store_mig9[] = {
	"ALTER TABLE edges ADD COLUMN failure_version BIGINT NOT NULL "
	"DEFAULT 0",
	"ALTER TABLE edges ADD COLUMN failure_at BIGINT NOT NULL DEFAULT 0",
	"ALTER TABLE edges ADD COLUMN failure_reason TEXT NOT NULL "
	"DEFAULT ''",
	NULL,
};

static const char *const *const store_migrations[] = {
	store_mig1,
	store_mig2,
	store_mig3,
	store_mig4,
	store_mig5,
	store_mig6,
	store_mig7,
	store_mig8,
	store_mig9,
};

int
store_schema_latest(void)
{
	return (int)ARRAY_SIZE(store_migrations);
}

/* ---- the SQL layer ------------------------------------------------------ */

/* A database failure: "busy" (503, with the cause) while the backend
 * cannot reach its server, "internal" otherwise. */
static int
store_internal(struct store *st, struct model_error *err, const char *what)
{
	const char *why = st->be->unavailable != NULL ?
	    st->be->unavailable(st->conn) : NULL;

	if (why != NULL)
		return model_error_set(err, MODEL_E_BUSY, "",
		    "database unavailable: %s", why);
	if (st->be->last_busy != NULL && st->be->last_busy(st->conn))
		return model_error_set(err, MODEL_E_BUSY, "",
		    "the database is busy with another change; retry shortly");
	return model_error_set(err, MODEL_E_INTERNAL, "",
	    "database error while %s", what);
}

/*
 * Bind parameters described by fmt: 'i' int64_t, 'u' uint64_t,
 * 't' const char *, 'b' const void * + size_t, 'n' NULL.
 */
static int
store_vbind(struct store *st, void *stmt, const char *fmt, va_list ap)
{
	int idx = 1, rc = 0;

	for (const char *f = fmt; *f != '\0' && rc == 0; f++, idx++) {
		switch (*f) {
		case 'i':
			rc = st->be->bind_int(stmt, idx, va_arg(ap, int64_t));
			break;
		case 'u':
			rc = st->be->bind_int(stmt, idx,
			    (int64_t)va_arg(ap, uint64_t));
			break;
		case 't':
			rc = st->be->bind_text(stmt, idx,
			    va_arg(ap, const char *));
			break;
		case 'b': {
			const void *p = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);

			rc = p != NULL ? st->be->bind_blob(stmt, idx, p, len) :
			    st->be->bind_null(stmt, idx);
			break;
		}
		case 'n':
			rc = st->be->bind_null(stmt, idx);
			break;
		default:
			rc = -1;
		}
	}
	return rc;
}

/*
 * Statements are prepared once per query text and kept: parsing the SQL
 * again for every row written was a fifth of a large recompile.  Queries
 * are string literals, so the text's address identifies them.  A
 * statement still in use (a query run while another of the same text is
 * open) gets a private one that is finalized when done.
 */
static int
store_stmt_get(struct store *st, const char *sql, void **stmt)
{
	struct store_stmt *c;

	st->statements++;
	for (size_t i = 0; i < st->n_cache; i++) {
		c = &st->cache[i];
		if (c->sql == sql && !c->busy) {
			c->busy = true;
			*stmt = c->stmt;
			return 0;
		}
	}
	if (st->be->prepare(st->conn, sql, stmt) == -1)
		return -1;
	if (st->n_cache < STORE_STMT_CACHE) {
		c = &st->cache[st->n_cache++];
		c->sql = sql;
		c->stmt = *stmt;
		c->busy = true;
	}
	return 0;
}

/* Done with a statement from store_stmt_get (NULL safe). */
static void
store_stmt_done(struct store *st, void *stmt)
{
	if (stmt == NULL)
		return;
	for (size_t i = 0; i < st->n_cache; i++)
		if (st->cache[i].stmt == stmt) {
			(void)st->be->reset(stmt);
			st->cache[i].busy = false;
			return;
		}
	st->be->finalize(stmt);
}

/* Prepare sql and bind; NULL (err set) on failure. */
static void *
store_prep(struct store *st, struct model_error *err, const char *sql,
    const char *fmt, ...)
{
	void *stmt = NULL;
	va_list ap;
	int rc;

	if (store_stmt_get(st, sql, &stmt) == -1) {
		store_internal(st, err, "preparing a query");
		return NULL;
	}
	va_start(ap, fmt);
	rc = store_vbind(st, stmt, fmt, ap);
	va_end(ap);
	if (rc == -1) {
		store_stmt_done(st, stmt);
		store_internal(st, err, "binding a query");
		return NULL;
	}
	return stmt;
}

/*
 * Run a statement without result rows.  0 done, 1 a constraint refused it
 * (err untouched: the caller knows which), -1 error (err set).
 */
static int
store_run(struct store *st, struct model_error *err, const char *sql,
    const char *fmt, ...)
{
	void *stmt = NULL;
	va_list ap;
	enum store_step r;
	int rc;

	if (store_stmt_get(st, sql, &stmt) == -1)
		return store_internal(st, err, "preparing a statement");
	va_start(ap, fmt);
	rc = store_vbind(st, stmt, fmt, ap);
	va_end(ap);
	if (rc == -1) {
		store_stmt_done(st, stmt);
		return store_internal(st, err, "binding a statement");
	}
	r = st->be->step(stmt);
	store_stmt_done(st, stmt);
	if (r == STORE_STEP_DONE)
		return 0;
	if (r == STORE_STEP_CONSTRAINT)
		return 1;
	return store_internal(st, err, "writing");
}

/* One integer from the first row; *found false (and 0) if no row. */
static int
store_get_int(struct store *st, struct model_error *err, int64_t *out,
    bool *found, const char *sql, const char *fmt, ...)
{
	void *stmt = NULL;
	va_list ap;
	enum store_step r;
	int rc;

	if (store_stmt_get(st, sql, &stmt) == -1)
		return store_internal(st, err, "preparing a query");
	va_start(ap, fmt);
	rc = store_vbind(st, stmt, fmt, ap);
	va_end(ap);
	if (rc == -1) {
		store_stmt_done(st, stmt);
		return store_internal(st, err, "binding a query");
	}
	r = st->be->step(stmt);
	*out = 0;
	if (found != NULL)
		*found = r == STORE_STEP_ROW;
	if (r == STORE_STEP_ROW)
		*out = st->be->column_is_null(stmt, 0) ? 0 :
		    st->be->column_int(stmt, 0);
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_ROW && r != STORE_STEP_DONE)
		return store_internal(st, err, "reading");
	return 0;
}

static int
store_text_col(struct store *st, void *stmt, int col, char *dst, size_t dstsz)
{
	return util_strcpy(dst, dstsz, st->be->column_text(stmt, col));
}

/* ---- transactions --------------------------------------------------------- */

static int
store_tx_begin(struct store *st, struct model_error *err)
{
	if (st->depth == 0) {
		int rc = st->be->begin(st->conn);

		if (rc == STORE_BE_BUSY)
			return model_error_set(err, MODEL_E_BUSY, "",
			    "the database is busy with another change; "
			    "retry shortly");
		if (rc == STORE_BE_UNAVAILABLE)
			return store_internal(st, err, "starting a transaction");
		if (rc != 0)
			return model_error_set(err, MODEL_E_INTERNAL, "",
			    "cannot start a transaction");
		st->failed = false;
		st->tx_locked = st->tx_all = false;
		st->n_tx_sites = 0;
	}
	st->depth++;
	return 0;
}

static int store_changes_log(struct store *st, struct model_error *err);

/* End one level; rc is the body's result.  Returns the final result. */
static int
store_tx_end(struct store *st, int rc, struct model_error *err)
{
	if (rc != 0)
		st->failed = true;
	if (--st->depth > 0)
		return rc != 0 ? -1 : 0;
	if (!st->failed && store_changes_log(st, err) == -1)
		st->failed = true;
	if (st->failed) {
		if (st->be->rollback(st->conn) == -1)
			log_warnx("store: rollback failed: %s",
			    st->be->errmsg(st->conn));
		st->failed = false;
		return -1;
	}
	if (st->be->commit(st->conn) == -1) {
		log_warnx("store: commit failed: %s",
		    st->be->errmsg(st->conn));
		(void)st->be->rollback(st->conn);
		return st->be->unavailable != NULL &&
		    st->be->unavailable(st->conn) != NULL ?
		    store_internal(st, err, "committing") :
		    model_error_set(err, MODEL_E_INTERNAL, "",
		    "cannot commit the change");
	}
	st->commits++;
	return 0;
}

void
store_counters(const struct store *st, uint64_t *commits,
    uint64_t *statements)
{
	*commits = st->commits;
	*statements = st->statements;
}

int
store_begin(struct store *st, struct model_error *err)
{
	return store_tx_begin(st, err);
}

int
store_commit(struct store *st, struct model_error *err)
{
	bool failed = st->failed;

	if (st->depth == 0)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "commit without a transaction");
	if (store_tx_end(st, 0, err) == -1) {
		if (failed && err != NULL && err->code == MODEL_OK)
			model_error_set(err, MODEL_E_CONFLICT, "",
			    "an earlier step failed; nothing was changed");
		return -1;
	}
	return 0;
}

void
store_rollback(struct store *st)
{
	if (st != NULL && st->depth > 0)
		(void)store_tx_end(st, -1, NULL);
}

/* ---- counters in meta -------------------------------------------------- */

static int
store_meta_get_u64(struct store *st, const char *key, uint64_t dflt,
    uint64_t *out, struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT value FROM meta WHERE key = ?",
	    "t", key);
	enum store_step r;

	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	*out = dflt;
	if (r == STORE_STEP_ROW &&
	    util_parse_u64(st->be->column_text(stmt, 0), 0, INT64_MAX,
	    out) == -1)
		r = STORE_STEP_ERROR;
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_ROW && r != STORE_STEP_DONE)
		return store_internal(st, err, "reading settings");
	return 0;
}

static int
store_meta_set(struct store *st, const char *key, const char *value,
    struct model_error *err)
{
	int rc = store_run(st, err, "UPDATE meta SET value = ? WHERE key = ?",
	    "tt", value, key);

	if (rc != 0)
		return -1;
	if (st->be->changes(st->conn) > 0)
		return 0;
	rc = store_run(st, err, "INSERT INTO meta (key, value) VALUES (?, ?)",
	    "tt", key, value);
	return rc == 0 ? 0 : store_internal(st, err, "writing settings");
}

static int
store_meta_set_u64(struct store *st, const char *key, uint64_t v,
    struct model_error *err)
{
	char buf[24];

	(void)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return store_meta_set(st, key, buf, err);
}

/* ---- topology writers and the change log ------------------------------------ */

/*
 * Take the row lock that orders every topology writer (and audit entry)
 * of every controller on the database, once per transaction: a no-op
 * write of meta.change_seq.  sqlite's writers hold the whole database
 * already (BEGIN IMMEDIATE); under PostgreSQL's READ COMMITTED this is
 * what makes the checks that follow (unique names, lowest free ASN, next
 * site id, prefix overlap, the audit id) see every earlier writer's
 * commit, and makes change-log sequence numbers commit in order.
 */
static int
store_serialize(struct store *st, struct model_error *err)
{
	if (st->tx_locked)
		return 0;
	if (store_run(st, err, "UPDATE meta SET value = value WHERE key = "
	    "'change_seq'", "") != 0)
		return store_internal(st, err, "ordering the change");
	st->tx_locked = true;
	return 0;
}

int
store_lock_writers(struct store *st, struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_serialize(st, err);
	return store_tx_end(st, rc, err);
}

/* Kind/id changed in this transaction (site 0: policy or crypto, i.e.
 * all); serializes the transaction and logs the change at commit. */
static int
store_note(struct store *st, int kind, uint64_t id, struct model_error *err)
{
	if (store_serialize(st, err) == -1)
		return -1;
	if (kind == STORE_CHANGE_SITE && id == 0) {
		st->tx_all = true;
		return 0;
	}
	for (size_t i = 0; i < st->n_tx_sites; i++)
		if (st->tx_sites[i] == id && st->tx_kinds[i] == kind)
			return 0;
	if (st->n_tx_sites == st->cap_tx_sites) {
		size_t cap = st->cap_tx_sites ? st->cap_tx_sites * 2 : 8;
		uint64_t *p = realloc(st->tx_sites, cap * sizeof(*p));
		int *k;

		if (p == NULL)
			return model_error_set(err, MODEL_E_INTERNAL, "",
			    "out of memory");
		st->tx_sites = p;
		if ((k = realloc(st->tx_kinds, cap * sizeof(*k))) == NULL)
			return model_error_set(err, MODEL_E_INTERNAL, "",
			    "out of memory");
		st->tx_kinds = k;
		st->cap_tx_sites = cap;
	}
	st->tx_kinds[st->n_tx_sites] = kind;
	st->tx_sites[st->n_tx_sites++] = id;
	return 0;
}

static int
store_note_change(struct store *st, uint64_t site_id, struct model_error *err)
{
	return store_note(st, STORE_CHANGE_SITE, site_id, err);
}

int
store_note_event(struct store *st, enum store_change_kind kind, uint64_t id,
    struct model_error *err)
{
	int rc;

	if ((kind != STORE_CHANGE_CREDS && kind != STORE_CHANGE_EPOCHS &&
	    kind != STORE_CHANGE_ALLOC) || id == 0)
		return model_error_set(err, MODEL_E_INVALID, "kind",
		    "not an event kind");
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note(st, (int)kind, id, err);
	return store_tx_end(st, rc, err);
}

/* At the outermost commit: one sequence number for the transaction, a
 * row per change, old rows pruned, listeners notified (delivered
 * by PostgreSQL when the transaction commits). */
static int
store_changes_log(struct store *st, struct model_error *err)
{
	uint64_t seq;

	if (!st->tx_all && st->n_tx_sites == 0)
		return 0;
	if (store_run(st, err, "UPDATE meta SET value = CAST(CAST(value AS "
	    "BIGINT) + 1 AS TEXT) WHERE key = 'change_seq'", "") != 0 ||
	    store_meta_get_u64(st, "change_seq", 0, &seq, err) == -1)
		return store_internal(st, err, "logging the change");
	if (st->tx_all && store_run(st, err, "INSERT INTO changes (seq, "
	    "kind, id, origin) VALUES (?, 0, 0, ?)", "ut", seq,
	    st->origin) != 0)
		return store_internal(st, err, "logging the change");
	for (size_t i = 0; i < st->n_tx_sites; i++)
		if (store_run(st, err, "INSERT INTO changes (seq, kind, id, "
		    "origin) VALUES (?, ?, ?, ?)", "uiut", seq,
		    (int64_t)st->tx_kinds[i], st->tx_sites[i],
		    st->origin) != 0)
			return store_internal(st, err, "logging the change");
	if (seq > STORE_CHANGES_KEEP && store_run(st, err, "DELETE FROM "
	    "changes WHERE seq <= ?", "u", seq - STORE_CHANGES_KEEP) != 0)
		return store_internal(st, err, "pruning the change log");
	if (st->be->notify != NULL &&
	    st->be->notify(st->conn, STORE_CHANGES_CHANNEL) == -1)
		return store_internal(st, err, "notifying the change");
	st->tx_all = false;
	st->n_tx_sites = 0;
	return 0;
}

const char *
store_origin(const struct store *st)
{
	return st->origin;
}

void
store_set_origin(struct store *st, const char *origin)
{
	(void)util_strcpy(st->origin, sizeof(st->origin), origin);
}

int
store_changes_listen(struct store *st, struct model_error *err)
{
	if (st->be->listen == NULL)
		return model_error_set(err, MODEL_E_INVALID, "backend",
		    "the %s store cannot notify other controllers",
		    st->be->name);
	if (st->be->listen(st->conn, STORE_CHANGES_CHANNEL) == -1)
		return store_internal(st, err, "listening for changes");
	return 0;
}

int
store_changes_wait(struct store *st, int timeout_ms)
{
	return st->be->wait != NULL ? st->be->wait(st->conn, timeout_ms) : -1;
}

int
store_leader(struct store *st, int lease_ms)
{
	struct store_lease lease = { st->origin, lease_ms };

	return st->be->leader != NULL ? st->be->leader(st->conn, &lease) : 1;
}

int
store_leader_check(struct store *st, struct model_error *err)
{
	int rc;

	if (st->be->leader_check == NULL)
		return 0;
	if (st->depth == 0)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "leader check outside a transaction");
	st->statements++;
	if ((rc = st->be->leader_check(st->conn, st->origin)) == 1)
		return 0;
	st->failed = true;
	if (rc == 0)
		return model_error_set(err, MODEL_E_CONFLICT, "leader",
		    "this controller no longer holds the leader lease");
	return store_internal(st, err, "checking the leader lease");
}

int
store_changes_head(struct store *st, uint64_t *seq, struct model_error *err)
{
	return store_meta_get_u64(st, "change_seq", 0, seq, err);
}

/* Append id to one of out's lists; false on ENOMEM. */
static bool
store_changes_add(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		uint64_t *p = realloc(*v, c * sizeof(*p));

		if (p == NULL)
			return false;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = id;
	return true;
}

void
store_changes_free(struct store_changes *ch)
{
	free(ch->sites);
	free(ch->creds);
	free(ch->tunnels);
	memset(ch, 0, sizeof(*ch));
}

int
store_changes_since(struct store *st, uint64_t after, const char *skip_origin,
    struct store_changes *out, struct model_error *err)
{
	int64_t oldest;
	bool found;
	void *stmt;
	enum store_step r;

	memset(out, 0, sizeof(*out));
	out->last = after;
	if (store_get_int(st, err, &oldest, &found, "SELECT MIN(seq) FROM "
	    "changes", "") == -1)
		return -1;
	/* Sequence numbers have no holes: a first one beyond after + 1
	 * means rows this reader needed were pruned. */
	if (found && oldest > 0 && (uint64_t)oldest > after + 1)
		out->all = true;
	stmt = store_prep(st, err, "SELECT seq, kind, id, origin FROM changes "
	    "WHERE seq > ? ORDER BY seq, kind, id", "u", after);
	if (stmt == NULL)
		return -1;
	while ((r = st->be->step(stmt)) == STORE_STEP_ROW) {
		uint64_t seq = (uint64_t)st->be->column_int(stmt, 0);
		int64_t kind = st->be->column_int(stmt, 1);
		uint64_t id = (uint64_t)st->be->column_int(stmt, 2);
		bool ok = true;

		if (seq > out->last)
			out->last = seq;
		if (skip_origin != NULL && strcmp(st->be->column_text(stmt, 3),
		    skip_origin) == 0)
			continue;
		if (kind == STORE_CHANGE_CREDS)
			ok = store_changes_add(&out->creds, &out->n_creds,
			    &out->cap_creds, id);
		else if (kind == STORE_CHANGE_EPOCHS)
			ok = store_changes_add(&out->tunnels, &out->n_tunnels,
			    &out->cap_tunnels, id);
		else if (kind == STORE_CHANGE_ALLOC)
			out->alloc = true;
		else if (id == 0)
			out->all = true;
		else
			ok = store_changes_add(&out->sites, &out->n,
			    &out->cap, id);
		/* Without memory for the list: everything (a reload). */
		if (!ok)
			out->all = true;
	}
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_DONE) {
		store_changes_free(out);
		out->last = after;
		return store_internal(st, err, "reading the change log");
	}
	return 0;
}

/* ---- open / close -------------------------------------------------------- */

static int store_policy_write(struct store *st, const struct model_policy *p,
    bool insert, struct model_error *err);
static int store_crypto_write(struct store *st, const struct model_crypto *c,
    bool insert, struct model_error *err);

static int
store_migrate(struct store *st, struct model_error *err)
{
	int64_t v;
	int latest = store_schema_latest();

	if (st->be->exec(st->conn, "CREATE TABLE IF NOT EXISTS schema_version "
	    "(version INTEGER NOT NULL)") == -1)
		return store_internal(st, err, "creating schema_version");
	if (store_get_int(st, err, &v, NULL,
	    "SELECT MAX(version) FROM schema_version", "") == -1)
		return -1;
	if (v > latest)
		return model_error_set(err, MODEL_E_CONFLICT, "",
		    "database schema %lld is newer than this controller "
		    "knows (%d)", (long long)v, latest);
	for (int m = (int)v; m < latest; m++) {
		for (const char *const *q = store_migrations[m]; *q != NULL;
		    q++)
			if (st->be->exec(st->conn, *q) == -1)
				return model_error_set(err, MODEL_E_INTERNAL,
				    "", "migration %d failed: %s", m + 1,
				    st->be->errmsg(st->conn));
		if (store_run(st, err, "INSERT INTO schema_version (version) "
		    "VALUES (?)", "i", (int64_t)m + 1) != 0)
			return store_internal(st, err, "recording the migration");
		log_info("store: applied migration %d", m + 1);
	}
	if (v == 0) {
		struct model_policy p;

		st->created = true;
		struct model_crypto c;

		model_policy_default(&p);
		model_crypto_default(&c);
		if (store_policy_write(st, &p, true, err) == -1 ||
		    store_crypto_write(st, &c, true, err) == -1)
			return -1;
	}
	st->schema = latest;
	return 0;
}

int
store_open(const struct store_opts *opts, struct store **out,
    struct model_error *err)
{
	const struct store_backend *be;
	struct store *st;

	if (opts == NULL || opts->path == NULL)
		return model_error_set(err, MODEL_E_INVALID, "path",
		    "no database path");
	if (opts->backend == NULL || strcmp(opts->backend, "sqlite") == 0)
		be = &store_sqlite_backend;
	else if (strcmp(opts->backend, "postgresql") == 0)
		be = &store_pg_backend;
	else
		return model_error_set(err, MODEL_E_INVALID, "backend",
		    "unknown store backend '%s'", opts->backend);
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	st->be = be;
	{
		uint8_t r[8];

		if (util_random(r, sizeof(r)) == -1) {
			free(st);
			return model_error_set(err, MODEL_E_INTERNAL, "",
			    "no randomness");
		}
		for (size_t i = 0; i < sizeof(r); i++)
			(void)snprintf(st->origin + 2 * i, 3, "%02x", r[i]);
	}
	if (st->be->open(opts->path, opts->busy_timeout_ms > 0 ?
	    opts->busy_timeout_ms : 5000, &st->conn) == -1) {
		free(st);
		/* A connection string is not echoed: it may name a file
		 * or user the log reader should not learn from us. */
		return model_error_set(err, MODEL_E_INTERNAL, "path",
		    "cannot open the %s database%s%s", be->name,
		    be == &store_sqlite_backend ? " " : "",
		    be == &store_sqlite_backend ? opts->path : "");
	}
	if (store_tx_begin(st, err) == -1 ||
	    store_tx_end(st, store_migrate(st, err), err) == -1) {
		st->be->close(st->conn);
		free(st);
		return -1;
	}
	*out = st;
	return 0;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	while (st->depth > 0)
		store_rollback(st);
	for (size_t i = 0; i < st->n_cache; i++)
		st->be->finalize(st->cache[i].stmt);
	st->be->close(st->conn);
	free(st->tx_sites);
	free(st->tx_kinds);
	free(st);
}

int
store_schema_version(struct store *st)
{
	return st->schema;
}

bool
store_created(const struct store *st)
{
	return st->created;
}

const char *
store_engine(const struct store *st)
{
	return st->be->name;
}

/* ---- policy and crypto ------------------------------------------------------ */

static void
store_pairs_format(const struct model_policy *p, char *buf, size_t bufsz)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n_pairs && i < MODEL_PAIRS_MAX; i++) {
		int n = snprintf(buf + off, bufsz - off, "%s%s:%s",
		    i > 0 ? "," : "", p->pairs[i].a, p->pairs[i].b);

		if (n < 0 || (size_t)n >= bufsz - off)
			break;
		off += (size_t)n;
	}
}

static int
store_pairs_parse(const char *s, struct model_policy *p)
{
	char buf[MODEL_PAIRS_MAX * (2 * MODEL_LINK_NAME_MAX + 2) + 1];
	char *save = NULL;

	p->n_pairs = 0;
	if (util_strcpy(buf, sizeof(buf), s) == -1)
		return -1;
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');

		if (colon == NULL || p->n_pairs == MODEL_PAIRS_MAX)
			return -1;
		*colon = '\0';
		if (util_strcpy(p->pairs[p->n_pairs].a,
		    sizeof(p->pairs[0].a), tok) == -1 ||
		    util_strcpy(p->pairs[p->n_pairs].b,
		    sizeof(p->pairs[0].b), colon + 1) == -1)
			return -1;
		p->n_pairs++;
	}
	return 0;
}

static int
store_policy_write(struct store *st, const struct model_policy *p,
    bool insert, struct model_error *err)
{
	char pairs[MODEL_PAIRS_MAX * (2 * MODEL_LINK_NAME_MAX + 2) + 1];
	char pool[MODEL_CIDR_MAX + 1];
	const char *sql = insert ?
	    "INSERT INTO policy (topology, pairing, pairs, pool, encap, "
	    "vni_min, vni_max, asn_min, asn_max, mtu, bgp_hold_time, "
	    "bgp_keepalive, bgp_bfd, id) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)" :
	    "UPDATE policy SET topology = ?, pairing = ?, pairs = ?, pool = ?, "
	    "encap = ?, vni_min = ?, vni_max = ?, asn_min = ?, asn_max = ?, "
	    "mtu = ?, bgp_hold_time = ?, bgp_keepalive = ?, bgp_bfd = ? "
	    "WHERE id = 1";

	store_pairs_format(p, pairs, sizeof(pairs));
	model_prefix_format(&p->pool, pool, sizeof(pool));
	if (store_run(st, err, sql, "iittiiiiiiiii", (int64_t)p->topology,
	    (int64_t)p->pairing, pairs, pool, (int64_t)p->encap,
	    (int64_t)p->vni_min, (int64_t)p->vni_max, (int64_t)p->asn_min,
	    (int64_t)p->asn_max, (int64_t)p->mtu, (int64_t)p->bgp_hold_time,
	    (int64_t)p->bgp_keepalive, (int64_t)p->bgp_bfd) != 0)
		return store_internal(st, err, "writing the policy");
	return 0;
}

int
store_policy_get(struct store *st, struct model_policy *out,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT topology, pairing, pairs, pool, "
	    "encap, vni_min, vni_max, asn_min, asn_max, mtu, bgp_hold_time, "
	    "bgp_keepalive, bgp_bfd FROM policy WHERE id = 1", "");
	struct model_policy p;
	int rc = -1;

	if (stmt == NULL)
		return -1;
	memset(&p, 0, sizeof(p));
	if (st->be->step(stmt) == STORE_STEP_ROW) {
		p.topology = (enum model_topology)st->be->column_int(stmt, 0);
		p.pairing = (enum model_pairing)st->be->column_int(stmt, 1);
		p.encap = (enum model_encap)st->be->column_int(stmt, 4);
		p.vni_min = (uint32_t)st->be->column_int(stmt, 5);
		p.vni_max = (uint32_t)st->be->column_int(stmt, 6);
		p.asn_min = (uint32_t)st->be->column_int(stmt, 7);
		p.asn_max = (uint32_t)st->be->column_int(stmt, 8);
		p.mtu = (uint32_t)st->be->column_int(stmt, 9);
		p.bgp_hold_time = (uint32_t)st->be->column_int(stmt, 10);
		p.bgp_keepalive = (uint32_t)st->be->column_int(stmt, 11);
		p.bgp_bfd = st->be->column_int(stmt, 12) != 0;
		if (store_pairs_parse(st->be->column_text(stmt, 2), &p) == 0 &&
		    model_prefix_parse(st->be->column_text(stmt, 3), false,
		    &p.pool, "pool", NULL) == 0)
			rc = 0;
	}
	store_stmt_done(st, stmt);
	if (rc == -1)
		return store_internal(st, err, "reading the policy");
	*out = p;
	return 0;
}

int
store_policy_set(struct store *st, const struct model_policy *p,
    struct model_error *err)
{
	int64_t outside;
	int rc;

	if (model_policy_validate(p, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note_change(st, 0, err);
	if (rc == 0)
		rc = store_get_int(st, err, &outside, NULL,
		    "SELECT COUNT(*) FROM sites WHERE asn < ? OR asn > ?", "ii",
	    (int64_t)p->asn_min, (int64_t)p->asn_max);
	if (rc == 0 && outside > 0)
		rc = model_error_set(err, MODEL_E_CONFLICT, "asn_range",
		    "%lld sites have an ASN outside the new range",
		    (long long)outside);
	if (rc == 0)
		rc = store_policy_write(st, p, false, err);
	return store_tx_end(st, rc, err);
}

static int
store_crypto_write(struct store *st, const struct model_crypto *c,
    bool insert, struct model_error *err)
{
	const char *sql = insert ?
	    "INSERT INTO crypto (cipher, rekey_seconds, replay_window, "
	    "rekey_bytes, rekey_packets, id) VALUES (?, ?, ?, ?, ?, 1)" :
	    "UPDATE crypto SET cipher = ?, rekey_seconds = ?, "
	    "replay_window = ?, rekey_bytes = ?, rekey_packets = ? "
	    "WHERE id = 1";

	if (store_run(st, err, sql, "iiiuu", (int64_t)c->cipher,
	    (int64_t)c->rekey_seconds, (int64_t)c->replay_window,
	    c->rekey_bytes, c->rekey_packets) != 0)
		return store_internal(st, err, "writing the crypto profile");
	return 0;
}

int
store_crypto_get(struct store *st, struct model_crypto *out,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT cipher, rekey_seconds, "
	    "replay_window, rekey_bytes, rekey_packets FROM crypto "
	    "WHERE id = 1", "");
	int rc = -1;

	if (stmt == NULL)
		return -1;
	if (st->be->step(stmt) == STORE_STEP_ROW) {
		memset(out, 0, sizeof(*out));
		out->cipher = (enum model_cipher)st->be->column_int(stmt, 0);
		out->rekey_seconds = (uint32_t)st->be->column_int(stmt, 1);
		out->replay_window = (uint32_t)st->be->column_int(stmt, 2);
		out->rekey_bytes = (uint64_t)st->be->column_int(stmt, 3);
		out->rekey_packets = (uint64_t)st->be->column_int(stmt, 4);
		rc = 0;
	}
	store_stmt_done(st, stmt);
	return rc == 0 ? 0 : store_internal(st, err, "reading the crypto profile");
}

int
store_crypto_set(struct store *st, const struct model_crypto *c,
    struct model_error *err)
{
	if (model_crypto_validate(c, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_note_change(st, 0, err) == -1 ? -1 :
	    store_crypto_write(st, c, false, err), err);
}

/* ---- sites and links --------------------------------------------------------- */

static int
store_site_exists(struct store *st, uint64_t id, struct model_error *err)
{
	int64_t v;
	bool found;

	if (store_get_int(st, err, &v, &found,
	    "SELECT id FROM sites WHERE id = ?", "u", id) == -1)
		return -1;
	if (!found)
		return model_error_set(err, MODEL_E_NOT_FOUND, "site",
		    "no site %llu", (unsigned long long)id);
	return 0;
}

static int
store_link_insert(struct store *st, uint64_t site_id,
    const struct model_link *l, struct model_error *err)
{
	int rc = store_run(st, err, "INSERT INTO links (site_id, name, address, "
	    "public_address, public_port) VALUES (?, ?, ?, ?, ?)", "uttti",
	    site_id, l->name, l->address, l->public_address,
	    (int64_t)l->public_port);

	if (rc == 1)
		return model_error_set(err, MODEL_E_DUPLICATE, "name",
		    "site %llu already has a link '%s'",
		    (unsigned long long)site_id, l->name);
	return rc;
}

/*
 * Lowest private ASN of the policy range no site uses (every stored ASN
 * is private, so the range's public middle never shows up here).
 */
static int
store_asn_assign(struct store *st, uint32_t *asn, struct model_error *err)
{
	struct model_policy p;
	void *stmt;
	uint64_t want;
	int64_t top;
	bool found;
	enum store_step r;

	memset(&p, 0, sizeof(p));
	if (store_policy_get(st, &p, err) == -1)
		return -1;
	/* Usually the one after the highest in the range: one look in the
	 * ASN index, so a POST /sites costs the same at 10 sites as at
	 * 10,000.  Only when the top of the range is taken are the gaps
	 * that deletions left searched, lowest first. */
	if (store_get_int(st, err, &top, &found, "SELECT MAX(asn) FROM sites "
	    "WHERE asn >= ? AND asn <= ?", "ii", (int64_t)p.asn_min,
	    (int64_t)p.asn_max) == -1)
		return -1;
	want = found && top > 0 ? (uint64_t)top + 1 : p.asn_min;
	if (want > MODEL_ASN2_LAST && want < MODEL_ASN4_FIRST)
		want = MODEL_ASN4_FIRST;
	if (want <= p.asn_max) {
		*asn = (uint32_t)want;
		return 0;
	}
	stmt = store_prep(st, err, "SELECT asn FROM sites WHERE asn >= ? AND "
	    "asn <= ? ORDER BY asn", "ii", (int64_t)p.asn_min,
	    (int64_t)p.asn_max);
	if (stmt == NULL)
		return -1;
	want = p.asn_min;
	while ((r = st->be->step(stmt)) == STORE_STEP_ROW) {
		uint64_t used = (uint64_t)st->be->column_int(stmt, 0);

		if (used > want)
			break;
		want = used + 1;
		/* A range across both private blocks skips the public ASNs. */
		if (want > MODEL_ASN2_LAST && want < MODEL_ASN4_FIRST)
			want = MODEL_ASN4_FIRST;
	}
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_ROW && r != STORE_STEP_DONE)
		return store_internal(st, err, "reading ASNs");
	if (want > p.asn_max)
		return model_error_set(err, MODEL_E_EXHAUSTED, "asn",
		    "no free ASN left in %u-%u", p.asn_min, p.asn_max);
	*asn = (uint32_t)want;
	return 0;
}

/* Name and ASN must be free (except for the site itself). */
static int
store_site_unique(struct store *st, const struct model_site *s,
    uint64_t self, struct model_error *err)
{
	int64_t v;
	bool found;

	if (store_get_int(st, err, &v, &found, "SELECT id FROM sites WHERE "
	    "name = ? AND id <> ?", "tu", s->name, self) == -1)
		return -1;
	if (found)
		return model_error_set(err, MODEL_E_DUPLICATE, "name",
		    "a site named '%s' already exists", s->name);
	if (s->asn == 0)
		return 0;
	if (store_get_int(st, err, &v, &found, "SELECT id FROM sites WHERE "
	    "asn = ? AND id <> ?", "iu", (int64_t)s->asn, self) == -1)
		return -1;
	if (found)
		return model_error_set(err, MODEL_E_DUPLICATE, "asn",
		    "ASN %u is already used by site %lld", s->asn,
		    (long long)v);
	return 0;
}

static int
store_site_create_tx(struct store *st, struct model_site *s,
    struct model_error *err)
{
	uint64_t id;

	if (store_serialize(st, err) == -1 ||
	    store_site_unique(st, s, 0, err) == -1)
		return -1;
	if (s->asn == 0 && store_asn_assign(st, &s->asn, err) == -1)
		return -1;
	if (store_meta_get_u64(st, "next_site_id", 1, &id, err) == -1 ||
	    store_meta_set_u64(st, "next_site_id", id + 1, err) == -1)
		return -1;
	s->id = id;
	if (store_note_change(st, id, err) == -1)
		return -1;
	switch (store_run(st, err, "INSERT INTO sites (id, name, region, role, "
	    "asn, backend, revoked, internet_breakout) VALUES (?, ?, ?, ?, ?, "
	    "?, ?, ?)", "uttiiiii", id, s->name, s->region, (int64_t)s->role,
	    (int64_t)s->asn, (int64_t)s->backend, (int64_t)s->revoked,
	    (int64_t)s->internet_breakout)) {
	case 0:
		break;
	case 1:
		return model_error_set(err, MODEL_E_DUPLICATE, "name",
		    "site name or ASN already in use");
	default:
		return -1;
	}
	for (size_t i = 0; i < s->n_links; i++)
		if (store_link_insert(st, id, &s->links[i], err) != 0)
			return -1;
	if (store_run(st, err, "INSERT INTO edges (site_id) VALUES (?)", "u",
	    id) != 0)
		return store_internal(st, err, "creating the edge record");
	return 0;
}

int
store_site_create(struct store *st, struct model_site *site,
    struct model_error *err)
{
	struct model_site s;
	int rc;

	if (model_site_validate(site, err) == -1)
		return -1;
	s = *site;
	model_site_sort_links(&s);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_tx_end(st, store_site_create_tx(st, &s, err), err);
	if (rc == 0) {
		site->id = s.id;
		site->asn = s.asn;
	}
	return rc;
}

static int
store_site_update_tx(struct store *st, const struct model_site *s,
    struct model_error *err)
{
	struct model_site old;

	memset(&old, 0, sizeof(old));
	if (store_note_change(st, s->id, err) == -1 ||
	    store_site_get(st, s->id, &old, err) == -1 ||
	    store_site_unique(st, s, s->id, err) == -1)
		return -1;
	if (store_run(st, err, "UPDATE sites SET name = ?, region = ?, "
	    "role = ?, asn = ?, backend = ?, revoked = ?, "
	    "internet_breakout = ? WHERE id = ?", "ttiiiiiu", s->name,
	    s->region, (int64_t)s->role,
	    (int64_t)(s->asn != 0 ? s->asn : old.asn), (int64_t)s->backend,
	    (int64_t)s->revoked, (int64_t)s->internet_breakout, s->id) != 0)
		return store_internal(st, err, "updating the site");
	if (store_run(st, err, "DELETE FROM links WHERE site_id = ?", "u",
	    s->id) != 0)
		return store_internal(st, err, "replacing links");
	for (size_t i = 0; i < s->n_links; i++)
		if (store_link_insert(st, s->id, &s->links[i], err) != 0)
			return -1;
	return 0;
}

int
store_site_update(struct store *st, const struct model_site *site,
    struct model_error *err)
{
	if (model_site_validate(site, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_site_update_tx(st, site, err), err);
}

int
store_site_delete(struct store *st, uint64_t id, struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note_change(st, id, err);
	if (rc == 0)
		rc = store_run(st, err, "DELETE FROM sites WHERE id = ?", "u",
		    id);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "site",
		    "no site %llu", (unsigned long long)id);
	else if (rc == 1)
		rc = store_internal(st, err, "deleting the site");
	return store_tx_end(st, rc, err);
}

/* Fill a site from a row of SITE_COLS. */
#define STORE_SITE_COLS "id, name, region, role, asn, backend, revoked, " \
    "internet_breakout"

/* Reads one row of a list query into elem (one element of the list). */
typedef void store_row_fn(struct store *st, void *stmt, void *elem);

/*
 * Steps stmt to its end, one row() per row into a malloc'd array of
 * elem-byte elements (grown from `first`), then finalizes stmt.  0 with the
 * array stored in *(T **)outp and its length in *n (the caller frees it),
 * or -1 ("listing <what>") with nothing allocated.  Every list query of
 * the store collects its rows here.
 */
static int
store_collect(struct store *st, void *stmt, size_t elem, size_t first,
    store_row_fn *row, const char *what, void *outp, size_t *n,
    struct model_error *err)
{
	char *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	enum store_step r;

	while ((r = st->be->step(stmt)) == STORE_STEP_ROW) {
		if ((nv = util_grow(v, &cap, cnt + 1, elem, first)) == NULL) {
			r = STORE_STEP_ERROR;
			break;
		}
		v = nv;
		row(st, stmt, v + cnt++ * elem);
	}
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_DONE) {
		char doing[64];

		free(v);
		snprintf(doing, sizeof(doing), "listing %s", what);
		return store_internal(st, err, doing);
	}
	memcpy(outp, &v, sizeof(v));
	*n = cnt;
	return 0;
}

static void
store_site_row(struct store *st, void *stmt, void *elem)
{
	struct model_site *s = elem;

	memset(s, 0, sizeof(*s));
	s->id = (uint64_t)st->be->column_int(stmt, 0);
	(void)store_text_col(st, stmt, 1, s->name, sizeof(s->name));
	(void)store_text_col(st, stmt, 2, s->region, sizeof(s->region));
	s->role = (enum model_role)st->be->column_int(stmt, 3);
	s->asn = (uint32_t)st->be->column_int(stmt, 4);
	s->backend = (enum model_backend)st->be->column_int(stmt, 5);
	s->revoked = st->be->column_int(stmt, 6) != 0;
	s->internet_breakout = st->be->column_int(stmt, 7) != 0;
}

static void
store_link_row(struct store *st, void *stmt, int col, struct model_link *l)
{
	memset(l, 0, sizeof(*l));
	(void)store_text_col(st, stmt, col, l->name, sizeof(l->name));
	(void)store_text_col(st, stmt, col + 1, l->address, sizeof(l->address));
	(void)store_text_col(st, stmt, col + 2, l->public_address,
	    sizeof(l->public_address));
	l->public_port = (uint16_t)st->be->column_int(stmt, col + 3);
}

static int
store_site_links(struct store *st, struct model_site *s,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT name, address, public_address, "
	    "public_port FROM links WHERE site_id = ? ORDER BY name", "u",
	    s->id);
	enum store_step r;

	if (stmt == NULL)
		return -1;
	s->n_links = 0;
	while ((r = st->be->step(stmt)) == STORE_STEP_ROW &&
	    s->n_links < MODEL_LINKS_MAX)
		store_link_row(st, stmt, 0, &s->links[s->n_links++]);
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_DONE && r != STORE_STEP_ROW)
		return store_internal(st, err, "reading links");
	return 0;
}

static int
store_site_get_where(struct store *st, const char *sql, const char *fmt,
    uint64_t id, const char *name, struct model_site *out,
    struct model_error *err)
{
	void *stmt = name != NULL ? store_prep(st, err, sql, fmt, name) :
	    store_prep(st, err, sql, fmt, id);
	enum store_step r;

	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW)
		store_site_row(st, stmt, out);
	store_stmt_done(st, stmt);
	if (r == STORE_STEP_DONE) {
		if (name != NULL)
			return model_error_set(err, MODEL_E_NOT_FOUND, "site",
			    "no site named '%.63s'", name);
		return model_error_set(err, MODEL_E_NOT_FOUND, "site",
		    "no site %llu", (unsigned long long)id);
	}
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "reading a site");
	return store_site_links(st, out, err);
}

int
store_site_get(struct store *st, uint64_t id, struct model_site *out,
    struct model_error *err)
{
	return store_site_get_where(st, "SELECT " STORE_SITE_COLS
	    " FROM sites WHERE id = ?", "u", id, NULL, out, err);
}

int
store_site_get_by_name(struct store *st, const char *name,
    struct model_site *out, struct model_error *err)
{
	return store_site_get_where(st, "SELECT " STORE_SITE_COLS
	    " FROM sites WHERE name = ?", "t", 0, name, out, err);
}

static int
store_site_id_cmp(const void *key, const void *elem)
{
	uint64_t k = *(const uint64_t *)key;
	uint64_t e = ((const struct model_site *)elem)->id;

	return (k > e) - (k < e);
}

int
store_site_list(struct store *st, struct model_site **out, size_t *n,
    struct model_error *err)
{
	struct model_site *v = NULL;
	size_t cnt = 0;
	void *stmt;
	enum store_step r;

	stmt = store_prep(st, err, "SELECT " STORE_SITE_COLS
	    " FROM sites ORDER BY id", "");
	if (stmt == NULL || store_collect(st, stmt, sizeof(*v), 16,
	    store_site_row, "sites", &v, &cnt, err) == -1)
		return -1;
	stmt = store_prep(st, err, "SELECT site_id, name, address, "
	    "public_address, public_port FROM links ORDER BY site_id, name", "");
	if (stmt == NULL)
		goto fail;
	while ((r = st->be->step(stmt)) == STORE_STEP_ROW) {
		uint64_t sid = (uint64_t)st->be->column_int(stmt, 0);
		struct model_site *s = cnt > 0 ? bsearch(&sid, v, cnt,
		    sizeof(*v), store_site_id_cmp) : NULL;

		if (s != NULL && s->n_links < MODEL_LINKS_MAX)
			store_link_row(st, stmt, 1, &s->links[s->n_links++]);
	}
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_DONE)
		goto fail;
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(v);
	return store_internal(st, err, "listing sites");
}

static int
store_link_add_tx(struct store *st, uint64_t site_id,
    const struct model_link *link, struct model_error *err)
{
	int64_t cnt;

	if (store_note_change(st, site_id, err) == -1 ||
	    store_site_exists(st, site_id, err) == -1 ||
	    store_get_int(st, err, &cnt, NULL,
	    "SELECT COUNT(*) FROM links WHERE site_id = ?", "u", site_id) == -1)
		return -1;
	if (cnt >= MODEL_LINKS_MAX)
		return model_error_set(err, MODEL_E_INVALID, "links",
		    "a site has at most %d links", MODEL_LINKS_MAX);
	return store_link_insert(st, site_id, link, err) == 0 ? 0 : -1;
}

int
store_link_add(struct store *st, uint64_t site_id,
    const struct model_link *link, struct model_error *err)
{
	if (model_link_validate(link, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_link_add_tx(st, site_id, link, err), err);
}

int
store_link_update(struct store *st, uint64_t site_id,
    const struct model_link *link, struct model_error *err)
{
	int rc;

	if (model_link_validate(link, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note_change(st, site_id, err);
	if (rc == 0)
		rc = store_run(st, err, "UPDATE links SET address = ?, "
	    "public_address = ?, public_port = ? WHERE site_id = ? AND "
	    "name = ?", "ttiut", link->address, link->public_address,
	    (int64_t)link->public_port, site_id, link->name);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "name",
		    "site %llu has no link '%s'", (unsigned long long)site_id,
		    link->name);
	else if (rc == 1)
		rc = store_internal(st, err, "updating a link");
	return store_tx_end(st, rc, err);
}

int
store_link_delete(struct store *st, uint64_t site_id, const char *name,
    struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note_change(st, site_id, err);
	if (rc == 0)
		rc = store_run(st, err, "DELETE FROM links WHERE site_id = ? AND "
	    "name = ?", "ut", site_id, name);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "name",
		    "site %llu has no link '%.32s'",
		    (unsigned long long)site_id, name);
	else if (rc == 1)
		rc = store_internal(st, err, "deleting a link");
	return store_tx_end(st, rc, err);
}

/* ---- LAN prefixes ------------------------------------------------------------- */

static int
store_prefix_canonical(const struct model_prefix *p, struct model_error *err)
{
	char buf[MODEL_CIDR_MAX + 1];
	struct model_prefix q;

	if ((p->family != 4 && p->family != 6) ||
	    p->len > (p->family == 4 ? 32 : 128))
		return model_error_set(err, MODEL_E_INVALID, "prefix",
		    "not a CIDR prefix");
	model_prefix_format(p, buf, sizeof(buf));
	return model_prefix_parse(buf, false, &q, "prefix", err);
}

static int
store_prefix_add_tx(struct store *st, uint64_t site_id,
    const struct model_prefix *p, struct model_error *err)
{
	char cidr[MODEL_CIDR_MAX + 1], other[MODEL_CIDR_MAX + 1];
	int64_t cnt;
	void *stmt;
	enum store_step r;
	int rc = 0;

	if (store_note_change(st, site_id, err) == -1 ||
	    store_site_exists(st, site_id, err) == -1 ||
	    store_get_int(st, err, &cnt, NULL,
	    "SELECT COUNT(*) FROM prefixes WHERE site_id = ?", "u",
	    site_id) == -1)
		return -1;
	if (cnt >= MODEL_PREFIXES_MAX)
		return model_error_set(err, MODEL_E_INVALID, "prefix",
		    "a site has at most %d LAN prefixes", MODEL_PREFIXES_MAX);
	/* Overlap is checked here, not in SQL, so no engine inet type is needed. */
	stmt = store_prep(st, err, "SELECT site_id, len, addr FROM prefixes "
	    "WHERE family = ?", "i", (int64_t)p->family);
	if (stmt == NULL)
		return -1;
	while (rc == 0 && (r = st->be->step(stmt)) == STORE_STEP_ROW) {
		struct model_prefix q;
		size_t len;
		const void *addr = st->be->column_blob(stmt, 2, &len);

		memset(&q, 0, sizeof(q));
		q.family = p->family;
		q.len = (uint8_t)st->be->column_int(stmt, 1);
		if (addr != NULL && len <= sizeof(q.addr))
			memcpy(q.addr, addr, len);
		/* Default routes (internet breakout hubs) overlap all. */
		if (p->len > 0 && q.len > 0 && model_prefix_overlap(p, &q)) {
			model_prefix_format(p, cidr, sizeof(cidr));
			model_prefix_format(&q, other, sizeof(other));
			rc = model_error_set(err, MODEL_E_OVERLAP, "prefix",
			    "%s overlaps %s of site %lld", cidr, other,
			    (long long)st->be->column_int(stmt, 0));
		}
	}
	store_stmt_done(st, stmt);
	if (rc != 0)
		return -1;
	if (r != STORE_STEP_DONE)
		return store_internal(st, err, "reading prefixes");
	model_prefix_format(p, cidr, sizeof(cidr));
	if (store_run(st, err, "INSERT INTO prefixes (site_id, family, len, "
	    "addr, cidr) VALUES (?, ?, ?, ?, ?)", "uiibt", site_id,
	    (int64_t)p->family, (int64_t)p->len, (const void *)p->addr,
	    (size_t)(p->family == 4 ? 4 : 16), cidr) != 0)
		return store_internal(st, err, "adding a prefix");
	return 0;
}

int
store_prefix_add(struct store *st, uint64_t site_id,
    const struct model_prefix *p, struct model_error *err)
{
	if (store_prefix_canonical(p, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_prefix_add_tx(st, site_id, p, err), err);
}

int
store_prefix_delete(struct store *st, uint64_t site_id,
    const struct model_prefix *p, struct model_error *err)
{
	char cidr[MODEL_CIDR_MAX + 1];
	int rc;

	if (store_prefix_canonical(p, err) == -1)
		return -1;
	model_prefix_format(p, cidr, sizeof(cidr));
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_note_change(st, site_id, err);
	if (rc == 0)
		rc = store_run(st, err, "DELETE FROM prefixes WHERE site_id = ? AND "
	    "cidr = ?", "ut", site_id, cidr);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "prefix",
		    "site %llu has no prefix %s", (unsigned long long)site_id,
		    cidr);
	else if (rc == 1)
		rc = store_internal(st, err, "deleting a prefix");
	return store_tx_end(st, rc, err);
}

static void
store_prefix_row(struct store *st, void *stmt, void *elem)
{
	struct model_site_prefix *sp = elem;
	const void *addr;
	size_t len;

	memset(sp, 0, sizeof(*sp));
	sp->site_id = (uint64_t)st->be->column_int(stmt, 0);
	sp->prefix.family = (uint8_t)st->be->column_int(stmt, 1);
	sp->prefix.len = (uint8_t)st->be->column_int(stmt, 2);
	addr = st->be->column_blob(stmt, 3, &len);
	if (addr != NULL && len <= sizeof(sp->prefix.addr))
		memcpy(sp->prefix.addr, addr, len);
}

int
store_prefix_list(struct store *st, uint64_t site_id,
    struct model_site_prefix **out, size_t *n, struct model_error *err)
{
	void *stmt = site_id != 0 ?
	    store_prep(st, err, "SELECT site_id, family, len, addr FROM "
	    "prefixes WHERE site_id = ? ORDER BY site_id, family, addr, len",
	    "u", site_id) :
	    store_prep(st, err, "SELECT site_id, family, len, addr FROM "
	    "prefixes ORDER BY site_id, family, addr, len", "");

	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 16, store_prefix_row,
	    "prefixes", out, n, err);
}

/* ---- tunnels --------------------------------------------------------------------- */

/* One row of a tunnel query (columns as in store_tunnel_list). */
static void
store_tunnel_row(struct store *st, void *stmt, void *elem)
{
	struct model_tunnel *t = elem;

	memset(t, 0, sizeof(*t));
	t->id = (uint64_t)st->be->column_int(stmt, 0);
	t->site_a = (uint64_t)st->be->column_int(stmt, 1);
	(void)store_text_col(st, stmt, 2, t->link_a, sizeof(t->link_a));
	t->site_b = (uint64_t)st->be->column_int(stmt, 3);
	(void)store_text_col(st, stmt, 4, t->link_b, sizeof(t->link_b));
	t->inner = (uint32_t)st->be->column_int(stmt, 5);
	t->vni = (uint32_t)st->be->column_int(stmt, 6);
}

int
store_tunnel_list(struct store *st, struct model_tunnel **out, size_t *n,
    uint64_t *next_id, struct model_error *err)
{
	void *stmt;

	if (store_meta_get_u64(st, "next_tunnel_id", 1, next_id, err) == -1)
		return -1;
	stmt = store_prep(st, err, "SELECT id, site_a, link_a, site_b, link_b, "
	    "inner_addr, vni FROM tunnels ORDER BY id", "");
	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 256, store_tunnel_row,
	    "tunnels", out, n, err);
}

int
store_tunnel_get(struct store *st, uint64_t id, struct model_tunnel *out,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT id, site_a, link_a, site_b, "
	    "link_b, inner_addr, vni FROM tunnels WHERE id = ?", "u", id);
	enum store_step r;

	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW)
		store_tunnel_row(st, stmt, out);
	store_stmt_done(st, stmt);
	if (r == STORE_STEP_DONE)
		return model_error_set(err, MODEL_E_NOT_FOUND, "id",
		    "no tunnel %llu", (unsigned long long)id);
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "reading a tunnel");
	return 0;
}

int
store_tunnel_count(struct store *st, size_t *n, struct model_error *err)
{
	int64_t cnt;

	if (store_get_int(st, err, &cnt, NULL, "SELECT COUNT(*) FROM tunnels",
	    "") == -1)
		return -1;
	*n = (size_t)cnt;
	return 0;
}

int
store_tunnel_list_site(struct store *st, uint64_t site_id,
    struct model_tunnel **out, size_t *n, struct model_error *err)
{
	void *stmt;

	/* Both ends are indexed (site_a leads the UNIQUE constraint's index,
	 * tunnels_b covers site_b), so this reads only the site's rows. */
	stmt = store_prep(st, err, "SELECT id, site_a, link_a, site_b, link_b, "
	    "inner_addr, vni FROM tunnels WHERE site_a = ? OR site_b = ? "
	    "ORDER BY id", "uu", site_id, site_id);
	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 256, store_tunnel_row,
	    "tunnels", out, n, err);
}

/* Run one prepared statement per element, re-binding an id each time. */
static int
store_each_id(struct store *st, void *stmt, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (st->be->reset(stmt) == -1 ||
		    st->be->bind_int(stmt, 1, (int64_t)ids[i]) == -1 ||
		    st->be->step(stmt) != STORE_STEP_DONE)
			return -1;
	}
	return 0;
}

/*
 * Move the allocation generation on by one: compare-and-set on the value
 * read, so that under PostgreSQL's READ COMMITTED a second controller that
 * committed its own allocations in between makes this apply fail
 * (conflict) instead of silently interleaving with it.
 */
static int
store_tunnel_gen_next(struct store *st, struct model_error *err)
{
	uint64_t gen;
	char old[24], next[24];

	/* Always compare-and-set: migration 6 made the row. */
	if (store_meta_get_u64(st, "tunnel_gen", 0, &gen, err) == -1)
		return -1;
	snprintf(old, sizeof(old), "%llu", (unsigned long long)gen);
	snprintf(next, sizeof(next), "%llu", (unsigned long long)gen + 1);
	if (store_run(st, err, "UPDATE meta SET value = ? WHERE key = ? AND "
	    "value = ?", "ttt", next, "tunnel_gen", old) != 0)
		return store_internal(st, err, "writing the allocation generation");
	if (st->be->changes(st->conn) != 1)
		return model_error_set(err, MODEL_E_CONFLICT, "tunnels",
		    "another writer changed the tunnel allocations");
	return 0;
}

int
store_tunnel_gen(struct store *st, uint64_t *gen, struct model_error *err)
{
	return store_meta_get_u64(st, "tunnel_gen", 0, gen, err);
}

/*
 * A re-allocated tunnel (its id is below the stored counter, so it may be
 * there) is changed in place: deleting and inserting it again would
 * cascade to its SA epochs, and the epochs its re-made tunnel starts with
 * must lie above every one it had (store_epoch_renew reads them).  Its
 * /31 is parked on a negative placeholder first, unique per id, so that
 * two re-allocated tunnels may trade addresses.  1: not stored (insert
 * it), 0 parked, -1 error.
 */
static int
store_tunnel_park(struct store *st, const struct model_tunnel *t,
    struct model_error *err)
{
	if (store_run(st, err, "UPDATE tunnels SET inner_addr = ? WHERE id = ?",
	    "iu", -(int64_t)t->id, t->id) != 0)
		return store_internal(st, err, "parking a tunnel");
	return st->be->changes(st->conn) == 0 ? 1 : 0;
}

static int
store_tunnel_apply_tx(struct store *st, const uint64_t *removed,
    size_t n_removed, const struct model_tunnel *added, size_t n_added,
    uint64_t next_id, struct model_error *err)
{
	void *del, *ins;
	uint64_t stored_next;
	bool *insert = NULL;
	int rc = 0;

	if (store_meta_get_u64(st, "next_tunnel_id", 1, &stored_next,
	    err) == -1 || store_tunnel_gen_next(st, err) == -1)
		return -1;
	del = store_prep(st, err, "DELETE FROM tunnels WHERE id = ?", "");
	if (del == NULL)
		return -1;
	/* Removed tunnels go out first so their addresses are free. */
	if (store_each_id(st, del, removed, n_removed) == -1)
		rc = -1;
	store_stmt_done(st, del);
	if (rc == -1)
		return store_internal(st, err, "removing tunnels");
	if (n_added > 0 && (insert = calloc(n_added, sizeof(*insert))) == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	/* Ids at or above the stored counter are new and cannot be there. */
	for (size_t i = 0; i < n_added; i++) {
		int r = added[i].id < stored_next ?
		    store_tunnel_park(st, &added[i], err) : 1;

		if (r == -1) {
			free(insert);
			return -1;
		}
		insert[i] = r == 1;
	}
	for (size_t i = 0; i < n_added; i++) {
		const struct model_tunnel *t = &added[i];

		if (insert[i])
			continue;
		rc = store_run(st, err, "UPDATE tunnels SET site_a = ?, "
		    "link_a = ?, site_b = ?, link_b = ?, inner_addr = ?, "
		    "vni = ? WHERE id = ?", "ututiiu", t->site_a, t->link_a,
		    t->site_b, t->link_b, (int64_t)t->inner, (int64_t)t->vni,
		    t->id);
		if (rc == 1)
			rc = model_error_set(err, MODEL_E_CONFLICT, "tunnels",
			    "tunnel %llu clashes with a stored tunnel",
			    (unsigned long long)t->id);
		if (rc != 0) {
			free(insert);
			return -1;
		}
	}
	ins = store_prep(st, err, "INSERT INTO tunnels (id, site_a, link_a, "
	    "site_b, link_b, inner_addr, vni) VALUES (?, ?, ?, ?, ?, ?, ?)", "");
	if (ins == NULL) {
		free(insert);
		return -1;
	}
	for (size_t i = 0; rc == 0 && i < n_added; i++) {
		const struct model_tunnel *t = &added[i];
		enum store_step r;

		if (!insert[i])
			continue;
		if (st->be->reset(ins) == -1 ||
		    st->be->bind_int(ins, 1, (int64_t)t->id) == -1 ||
		    st->be->bind_int(ins, 2, (int64_t)t->site_a) == -1 ||
		    st->be->bind_text(ins, 3, t->link_a) == -1 ||
		    st->be->bind_int(ins, 4, (int64_t)t->site_b) == -1 ||
		    st->be->bind_text(ins, 5, t->link_b) == -1 ||
		    st->be->bind_int(ins, 6, (int64_t)t->inner) == -1 ||
		    st->be->bind_int(ins, 7, (int64_t)t->vni) == -1) {
			rc = store_internal(st, err, "binding a tunnel");
			break;
		}
		r = st->be->step(ins);
		if (r == STORE_STEP_CONSTRAINT)
			rc = model_error_set(err, MODEL_E_CONFLICT, "tunnels",
			    "tunnel %llu clashes with a stored tunnel or "
			    "refers to a missing site",
			    (unsigned long long)t->id);
		else if (r != STORE_STEP_DONE)
			rc = store_internal(st, err, "adding tunnels");
	}
	store_stmt_done(st, ins);
	free(insert);
	if (rc != 0)
		return -1;
	return store_meta_set_u64(st, "next_tunnel_id", next_id, err);
}

int
store_tunnel_next_id(struct store *st, uint64_t *next_id,
    struct model_error *err)
{
	return store_meta_get_u64(st, "next_tunnel_id", 1, next_id, err);
}

int
store_tunnel_apply(struct store *st, const uint64_t *removed,
    size_t n_removed, const struct model_tunnel *added, size_t n_added,
    uint64_t next_id, struct model_error *err)
{
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_tunnel_apply_tx(st, removed, n_removed,
	    added, n_added, next_id, err), err);
}

/* ---- per-edge state ----------------------------------------------------------- */

/*
 * Make sure the site has an edge row (sites made before it existed).
 * Returns 1, having written nothing, when the site is gone.
 */
static int
store_edge_ensure(struct store *st, uint64_t site_id, struct model_error *err)
{
	int64_t v;
	bool found;

	if (store_get_int(st, err, &v, &found,
	    "SELECT site_id FROM edges WHERE site_id = ?", "u", site_id) == -1)
		return -1;
	if (found)
		return 0;
	if (store_get_int(st, err, &v, &found,
	    "SELECT id FROM sites WHERE id = ?", "u", site_id) == -1)
		return -1;
	if (!found)
		return 1;
	if (store_run(st, err, "INSERT INTO edges (site_id) VALUES (?)", "u",
	    site_id) != 0)
		return store_internal(st, err, "creating the edge record");
	return 0;
}

/*
 * End one level of an edge write whose body returned rc.  rc == 1: the
 * site is gone (another writer deleted it).  Nothing was written, so this
 * is a miss, not a failure: NOT_FOUND, and a surrounding store_begin group
 * stays usable; one deleted site must not undo a batch of other edges'
 * versions or acks.
 */
static int
store_edge_end(struct store *st, int rc, uint64_t site_id,
    struct model_error *err)
{
	if (rc != 1)
		return store_tx_end(st, rc, err);
	(void)store_tx_end(st, 0, NULL);
	return model_error_set(err, MODEL_E_NOT_FOUND, "site", "no site %llu",
	    (unsigned long long)site_id);
}

#define STORE_EDGE_COLS "site_id, intent_version, applied_version, " \
	"conv_hash, connected, connected_at, status_at, software_version, " \
	"failure_version, failure_at, failure_reason"

static void
store_edge_row(struct store *st, void *stmt, void *elem)
{
	struct model_edge_state *e = elem;
	const void *h;
	size_t len;

	memset(e, 0, sizeof(*e));
	e->site_id = (uint64_t)st->be->column_int(stmt, 0);
	e->intent_version = (uint64_t)st->be->column_int(stmt, 1);
	e->applied_version = (uint64_t)st->be->column_int(stmt, 2);
	h = st->be->column_blob(stmt, 3, &len);
	if (h != NULL && len <= sizeof(e->conv_hash)) {
		memcpy(e->conv_hash, h, len);
		e->conv_hash_len = len;
	}
	e->connected = st->be->column_int(stmt, 4) != 0;
	e->connected_at = st->be->column_int(stmt, 5);
	e->status_at = st->be->column_int(stmt, 6);
	(void)store_text_col(st, stmt, 7, e->software_version,
	    sizeof(e->software_version));
	e->failure.version = (uint64_t)st->be->column_int(stmt, 8);
	e->failure.at = st->be->column_int(stmt, 9);
	(void)store_text_col(st, stmt, 10, e->failure.reason,
	    sizeof(e->failure.reason));
	/* Written as printable ASCII; read back as such whatever is there. */
	for (char *c = e->failure.reason; *c != '\0'; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
}

int
store_edge_get(struct store *st, uint64_t site_id,
    struct model_edge_state *out, struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT " STORE_EDGE_COLS
	    ", status FROM edges WHERE site_id = ?", "u", site_id);
	enum store_step r;
	int rc = 0;

	if (stmt == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	out->site_id = site_id;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW) {
		const void *b;
		size_t len;

		store_edge_row(st, stmt, out);
		b = st->be->column_blob(stmt, 11, &len);
		if (b != NULL && len > 0) {
			out->status = malloc(len);
			if (out->status == NULL)
				rc = -1;
			else {
				memcpy(out->status, b, len);
				out->status_len = len;
			}
		}
	} else if (r != STORE_STEP_DONE) {
		rc = -1;
	}
	store_stmt_done(st, stmt);
	return rc == 0 ? 0 : store_internal(st, err, "reading edge state");
}

int
store_edge_list(struct store *st, struct model_edge_state **out, size_t *n,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT " STORE_EDGE_COLS
	    " FROM edges ORDER BY site_id", "");

	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 16, store_edge_row,
	    "edges", out, n, err);
}

static int
store_edge_bump_tx(struct store *st, uint64_t site_id, uint64_t *version,
    struct model_error *err)
{
	int64_t v;
	int rc;

	if ((rc = store_edge_ensure(st, site_id, err)) != 0)
		return rc;
	if (store_run(st, err, "UPDATE edges SET intent_version = "
	    "intent_version + 1 WHERE site_id = ?", "u", site_id) != 0 ||
	    store_get_int(st, err, &v, NULL, "SELECT intent_version FROM edges "
	    "WHERE site_id = ?", "u", site_id) == -1)
		return store_internal(st, err, "bumping the intent version");
	*version = (uint64_t)v;
	return 0;
}

int
store_edge_bump_intent(struct store *st, uint64_t site_id, uint64_t *version,
    struct model_error *err)
{
	uint64_t v = 0;
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_edge_end(st, store_edge_bump_tx(st, site_id, &v, err),
	    site_id, err);
	if (rc == 0)
		*version = v;
	return rc;
}

static int
store_edge_skip_tx(struct store *st, uint64_t site_id, uint64_t past,
    uint64_t *version, struct model_error *err)
{
	int64_t v;

	if (store_edge_ensure(st, site_id, err) == -1)
		return -1;
	if (store_run(st, err, "UPDATE edges SET intent_version = ? "
	    "WHERE site_id = ? AND intent_version <= ?", "uuu", past + 1,
	    site_id, past) != 0 ||
	    store_get_int(st, err, &v, NULL, "SELECT intent_version FROM edges "
	    "WHERE site_id = ?", "u", site_id) == -1)
		return store_internal(st, err, "moving the intent version");
	*version = (uint64_t)v;
	return 0;
}

int
store_edge_skip_intent(struct store *st, uint64_t site_id, uint64_t past,
    uint64_t *version, struct model_error *err)
{
	uint64_t v = 0;
	int rc;

	if (past >= (uint64_t)INT64_MAX)
		return model_error_set(err, MODEL_E_INVALID, "version",
		    "version %llu is beyond the largest one",
		    (unsigned long long)past);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_tx_end(st, store_edge_skip_tx(st, site_id, past, &v, err),
	    err);
	if (rc == 0)
		*version = v;
	return rc;
}

static int
store_edge_applied_tx(struct store *st, uint64_t site_id, uint64_t version,
    const uint8_t *hash, size_t hash_len, struct model_error *err)
{
	int64_t intent;
	int rc;

	if ((rc = store_edge_ensure(st, site_id, err)) != 0)
		return rc;
	if (store_get_int(st, err, &intent, NULL, "SELECT intent_version FROM "
	    "edges WHERE site_id = ?", "u", site_id) == -1)
		return -1;
	if (version > (uint64_t)intent)
		return model_error_set(err, MODEL_E_INVALID, "version",
		    "version %llu was never sent (latest %lld)",
		    (unsigned long long)version, (long long)intent);
	if (store_run(st, err, "UPDATE edges SET applied_version = ?, "
	    "conv_hash = ? WHERE site_id = ?", "ubu", version,
	    (const void *)hash, hash_len, site_id) != 0)
		return store_internal(st, err, "recording an ack");
	return 0;
}

int
store_edge_set_applied(struct store *st, uint64_t site_id, uint64_t version,
    const uint8_t *hash, size_t hash_len, struct model_error *err)
{
	if (hash_len > MODEL_HASH_MAX || (hash == NULL && hash_len > 0))
		return model_error_set(err, MODEL_E_INVALID, "hash",
		    "convergence hash longer than %d bytes", MODEL_HASH_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_edge_end(st, store_edge_applied_tx(st, site_id, version,
	    hash, hash_len, err), site_id, err);
}

int
store_edge_set_connected(struct store *st, uint64_t site_id, bool connected,
    int64_t now, const char *software_version, struct model_error *err)
{
	int rc;

	if (software_version == NULL)
		software_version = "";
	if (strlen(software_version) > MODEL_VERSION_MAX)
		return model_error_set(err, MODEL_E_INVALID, "software_version",
		    "longer than %d bytes", MODEL_VERSION_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_edge_ensure(st, site_id, err);
	if (rc == 0 && connected && store_run(st, err, "UPDATE edges SET "
	    "connected = 1, connected_at = ?, software_version = ? "
	    "WHERE site_id = ?", "itu", now, software_version, site_id) != 0)
		rc = store_internal(st, err, "recording the connection");
	if (rc == 0 && !connected && store_run(st, err, "UPDATE edges SET "
	    "connected = 0 WHERE site_id = ?", "u", site_id) != 0)
		rc = store_internal(st, err, "recording the disconnection");
	return store_edge_end(st, rc, site_id, err);
}

int
store_edge_set_status(struct store *st, uint64_t site_id, const void *blob,
    size_t len, int64_t now, struct model_error *err)
{
	int rc;

	if (len > MODEL_STATUS_MAX || (blob == NULL && len > 0))
		return model_error_set(err, MODEL_E_INVALID, "status",
		    "status larger than %d bytes", MODEL_STATUS_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_edge_ensure(st, site_id, err);
	if (rc == 0 && store_run(st, err, "UPDATE edges SET status = ?, "
	    "status_at = ? WHERE site_id = ?", "biu", blob, len, now,
	    site_id) != 0)
		rc = store_internal(st, err, "recording the status");
	return store_edge_end(st, rc, site_id, err);
}

int
store_edge_set_failure(struct store *st, uint64_t site_id,
    const struct model_ack_failure *f, struct model_error *err)
{
	int rc;

	if (strnlen(f->reason, sizeof(f->reason)) > MODEL_ACK_REASON_MAX)
		return model_error_set(err, MODEL_E_INVALID, "reason",
		    "longer than %d bytes", MODEL_ACK_REASON_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_edge_ensure(st, site_id, err);
	if (rc == 0 && store_run(st, err, "UPDATE edges SET failure_version "
	    "= ?, failure_at = ?, failure_reason = ? WHERE site_id = ?",
	    "uitu", f->version, f->at, f->reason, site_id) != 0)
		rc = store_internal(st, err, "recording a failed ack");
	return store_edge_end(st, rc, site_id, err);
}

/* ---- tokens ---------------------------------------------------------------------- */

/* SHA-256 of the token text, as hex. */
static int
store_token_hash(const char *token, char out[STORE_HASH_HEX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(token, strlen(token), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen != 32)
		return -1;
	util_hex(md, mdlen, out);
	return 0;
}

/* A fresh token "<prefix>" + 64 hex digits, and its hash. */
static int
store_token_make(const char *prefix, char token[STORE_TOKEN_LEN + 1],
    char hash[STORE_HASH_HEX], struct model_error *err)
{
	unsigned char raw[32];

	if (util_random(raw, sizeof(raw)) == -1)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "no randomness for a token");
	memcpy(token, prefix, 4);
	util_hex(raw, sizeof(raw), token + 4);
	util_wipe(raw, sizeof(raw));
	if (store_token_hash(token, hash) == -1) {
		util_wipe(token, STORE_TOKEN_LEN + 1);
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "cannot hash a token");
	}
	return 0;
}

/* Shape check before hashing, so junk never reaches the database. */
static bool
store_token_shape(const char *token, const char *prefix)
{
	if (token == NULL || strlen(token) != STORE_TOKEN_LEN ||
	    strncmp(token, prefix, 4) != 0)
		return false;
	for (size_t i = 4; i < STORE_TOKEN_LEN; i++)
		if (!((token[i] >= '0' && token[i] <= '9') ||
		    (token[i] >= 'a' && token[i] <= 'f')))
			return false;
	return true;
}

int
store_enroll_token_create(struct store *st, uint64_t site_id, int64_t now,
    int64_t ttl, char token[STORE_TOKEN_LEN + 1], struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	int rc;

	if (ttl <= 0 || ttl > STORE_TOKEN_TTL_MAX)
		return model_error_set(err, MODEL_E_INVALID, "ttl",
		    "token lifetime must be 1..%d seconds",
		    STORE_TOKEN_TTL_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_site_exists(st, site_id, err);
	if (rc == 0)
		rc = store_token_make("mwe_", token, hash, err);
	if (rc == 0 && store_run(st, err, "INSERT INTO enroll_tokens (hash, "
	    "site_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, 0)",
	    "tuii", hash, site_id, now, now + ttl) != 0)
		rc = store_internal(st, err, "storing the token");
	rc = store_tx_end(st, rc, err);
	if (rc != 0)
		util_wipe(token, STORE_TOKEN_LEN + 1);
	return rc;
}

/* An enrollment token's row, by hash. */
struct store_token_row {
	uint64_t site;
	int64_t expires, used;	/* unix seconds; used 0 = not used */
};

/* 1 found (*t filled), 0 no such token, -1 a database error (err set). */
static int
store_token_row(struct store *st, const char *hash, struct store_token_row *t,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT site_id, expires_at, used_at "
	    "FROM enroll_tokens WHERE hash = ?", "t", hash);
	enum store_step r;

	memset(t, 0, sizeof(*t));
	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW) {
		t->site = (uint64_t)st->be->column_int(stmt, 0);
		t->expires = st->be->column_int(stmt, 1);
		t->used = st->be->column_int(stmt, 2);
	}
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_ROW && r != STORE_STEP_DONE)
		return store_internal(st, err, "reading a token");
	return r == STORE_STEP_ROW;
}

static int
store_enroll_consume_tx(struct store *st, const char *hash, uint64_t site_id,
    int64_t now, uint64_t *bound_site, struct model_error *err)
{
	struct store_token_row t;
	int found = store_token_row(st, hash, &t, err);

	if (found == -1)
		return -1;
	if (!found || t.used != 0 || now >= t.expires ||
	    (site_id != 0 && site_id != t.site)) {
		log_debug("store", "enrollment token refused: %s",
		    !found ? "unknown" : t.used != 0 ? "used" :
		    now >= t.expires ? "expired" : "other site");
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "enrollment token is unknown, used, expired or for "
		    "another site");
	}
	if (store_run(st, err, "UPDATE enroll_tokens SET used_at = ? WHERE "
	    "hash = ? AND used_at = 0", "it", now, hash) != 0 ||
	    st->be->changes(st->conn) != 1)
		return store_internal(st, err, "burning a token");
	*bound_site = t.site;
	return 0;
}

int
store_enroll_token_consume(struct store *st, const char *token,
    uint64_t site_id, int64_t now, uint64_t *bound_site,
    struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	uint64_t sid = 0;
	int rc;

	if (!store_token_shape(token, "mwe_") ||
	    store_token_hash(token, hash) == -1)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "enrollment token is unknown, used, expired or for "
		    "another site");
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_tx_end(st, store_enroll_consume_tx(st, hash, site_id, now,
	    &sid, err), err);
	if (rc == 0)
		*bound_site = sid;
	return rc;
}

int
store_enroll_token_state(struct store *st, const char *token,
    uint64_t site_id, int64_t now, enum store_token_state *state,
    uint64_t *bound_site, struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	struct store_token_row t;
	int found;

	*state = STORE_TOKEN_UNKNOWN;
	if (!store_token_shape(token, "mwe_") ||
	    store_token_hash(token, hash) == -1)
		return 0;
	if ((found = store_token_row(st, hash, &t, err)) <= 0)
		return found;
	if (bound_site != NULL)
		*bound_site = t.site;
	if (t.used != 0)
		*state = STORE_TOKEN_USED;
	else if (now >= t.expires)
		*state = STORE_TOKEN_EXPIRED;
	else if (site_id != 0 && site_id != t.site)
		*state = STORE_TOKEN_OTHER_SITE;
	else
		*state = STORE_TOKEN_VALID;
	return 0;
}

int
store_api_token_create(struct store *st, const char *name,
    enum model_api_role role, int64_t now, char token[STORE_TOKEN_LEN + 1],
    struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	int rc;

	if (!model_token_name_valid(name))
		return model_error_set(err, MODEL_E_INVALID, "name",
		    "token name must be 1-%d characters of [a-z0-9_-]",
		    MODEL_TOKEN_NAME_MAX);
	if (role < MODEL_API_ADMIN || role > MODEL_API_READONLY)
		return model_error_set(err, MODEL_E_INVALID, "role",
		    "role must be admin, operator or readonly");
	if (store_token_make("mwa_", token, hash, err) == -1)
		return -1;
	if (store_tx_begin(st, err) == -1) {
		util_wipe(token, STORE_TOKEN_LEN + 1);
		return -1;
	}
	rc = store_run(st, err, "INSERT INTO api_tokens (name, hash, role, "
	    "created_at) VALUES (?, ?, ?, ?)", "ttii", name, hash,
	    (int64_t)role, now);
	if (rc == 1)
		rc = model_error_set(err, MODEL_E_DUPLICATE, "name",
		    "an API token named '%s' already exists", name);
	rc = store_tx_end(st, rc, err);
	if (rc != 0)
		util_wipe(token, STORE_TOKEN_LEN + 1);
	return rc;
}

static void
store_api_token_row(struct store *st, void *stmt, void *elem)
{
	struct model_api_token_info *t = elem;

	memset(t, 0, sizeof(*t));
	(void)store_text_col(st, stmt, 0, t->name, sizeof(t->name));
	t->role = (enum model_api_role)st->be->column_int(stmt, 1);
	t->created_at = st->be->column_int(stmt, 2);
}

int
store_api_token_check(struct store *st, const char *token,
    struct model_api_token_info *out, struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	void *stmt;
	enum store_step r;

	if (!store_token_shape(token, "mwa_") ||
	    store_token_hash(token, hash) == -1)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "unknown API token");
	stmt = store_prep(st, err, "SELECT name, role, created_at FROM "
	    "api_tokens WHERE hash = ?", "t", hash);
	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW)
		store_api_token_row(st, stmt, out);
	store_stmt_done(st, stmt);
	if (r == STORE_STEP_DONE)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "unknown API token");
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "checking a token");
	return 0;
}

int
store_api_token_delete(struct store *st, const char *name,
    struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_run(st, err, "DELETE FROM api_tokens WHERE name = ?", "t",
	    name);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "name",
		    "no API token named '%.63s'", name);
	else if (rc == 1)
		rc = store_internal(st, err, "deleting a token");
	return store_tx_end(st, rc, err);
}

int
store_api_token_list(struct store *st, struct model_api_token_info **out,
    size_t *n, struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT name, role, created_at FROM "
	    "api_tokens ORDER BY name", "");

	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 8, store_api_token_row,
	    "tokens", out, n, err);
}

/* ---- audit log --------------------------------------------------------------------- */

int
store_audit_add(struct store *st, int64_t now, const char *who,
    const char *what, const char *detail, struct model_error *err)
{
	int rc;

	if (who == NULL || who[0] == '\0' || strlen(who) > MODEL_WHO_MAX)
		return model_error_set(err, MODEL_E_INVALID, "who",
		    "audit actor must be 1-%d characters", MODEL_WHO_MAX);
	if (what == NULL || what[0] == '\0' || strlen(what) > MODEL_WHAT_MAX)
		return model_error_set(err, MODEL_E_INVALID, "what",
		    "audit action must be 1-%d characters", MODEL_WHAT_MAX);
	if (detail != NULL && strlen(detail) > MODEL_DETAIL_MAX)
		return model_error_set(err, MODEL_E_INVALID, "detail",
		    "audit detail longer than %d bytes", MODEL_DETAIL_MAX);
	if (store_tx_begin(st, err) == -1)
		return -1;
	/* Ids come from the table itself: portable, and audit rows are
	 * never deleted, so they only grow; the serializing lock keeps two
	 * controllers from taking the same one. */
	if (store_serialize(st, err) == -1)
		return store_tx_end(st, -1, err);
	rc = detail != NULL ?
	    store_run(st, err, "INSERT INTO audit (id, at, who, what, detail) "
	    "SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ? FROM audit", "ittt",
	    now, who, what, detail) :
	    store_run(st, err, "INSERT INTO audit (id, at, who, what, detail) "
	    "SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, NULL FROM audit", "itt",
	    now, who, what);
	if (rc != 0)
		rc = store_internal(st, err, "writing the audit log");
	return store_tx_end(st, rc, err);
}

int
store_audit_list(struct store *st, uint64_t after_id, size_t limit,
    struct model_audit **out, size_t *n, struct model_error *err)
{
	struct model_audit *v;
	size_t cnt = 0;
	enum store_step r;
	void *stmt;

	if (limit == 0 || limit > STORE_AUDIT_LIMIT_MAX)
		return model_error_set(err, MODEL_E_INVALID, "limit",
		    "limit must be 1..%d", STORE_AUDIT_LIMIT_MAX);
	v = calloc(limit, sizeof(*v));
	if (v == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	stmt = store_prep(st, err, "SELECT id, at, who, what, detail FROM audit "
	    "WHERE id > ? ORDER BY id LIMIT ?", "ui", after_id,
	    (int64_t)limit);
	if (stmt == NULL) {
		free(v);
		return -1;
	}
	while (cnt < limit && (r = st->be->step(stmt)) == STORE_STEP_ROW) {
		struct model_audit *a = &v[cnt++];

		a->id = (uint64_t)st->be->column_int(stmt, 0);
		a->at = st->be->column_int(stmt, 1);
		(void)store_text_col(st, stmt, 2, a->who, sizeof(a->who));
		(void)store_text_col(st, stmt, 3, a->what, sizeof(a->what));
		if (!st->be->column_is_null(stmt, 4)) {
			a->detail = strdup(st->be->column_text(stmt, 4));
			if (a->detail == NULL) {
				r = STORE_STEP_ERROR;
				break;
			}
		}
	}
	if (cnt == limit)
		r = STORE_STEP_DONE;
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_DONE) {
		model_audit_free_array(v, cnt);
		return store_internal(st, err, "reading the audit log");
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- certificates ---------------------------------------------------------------------- */

static void
store_fp_hex(const uint8_t fp[STORE_CERT_FP_LEN], char hex[STORE_HASH_HEX])
{
	util_hex(fp, STORE_CERT_FP_LEN, hex);
}

static int
store_cert_insert(struct store *st, const struct store_cert *c,
    enum store_cert_state state, struct model_error *err)
{
	char hex[STORE_HASH_HEX];

	if (c->der_len == 0 || c->der_len > STORE_CERT_DER_MAX ||
	    strlen(c->serial) == 0 || strlen(c->serial) >= sizeof(c->serial))
		return model_error_set(err, MODEL_E_INVALID, "certificate",
		    "certificate record out of bounds");
	store_fp_hex(c->fp, hex);
	if (store_run(st, err, "INSERT INTO certs (fingerprint, site_id, "
	    "serial, not_after, issued_at, state, der) VALUES (?, ?, ?, ?, ?, "
	    "?, ?)", "tutiiib", hex, c->site_id, c->serial, c->not_after,
	    c->issued_at, (int64_t)state, c->der, c->der_len) != 0)
		return store_internal(st, err, "recording a certificate");
	return 0;
}

int
store_cert_enroll(struct store *st, const struct store_cert *c,
    struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_site_exists(st, c->site_id, err);
	if (rc == 0 && store_run(st, err, "DELETE FROM certs WHERE site_id = ?",
	    "u", c->site_id) != 0)
		rc = store_internal(st, err, "retiring certificates");
	if (rc == 0)
		rc = store_cert_insert(st, c, STORE_CERT_ACTIVE, err);
	return store_tx_end(st, rc, err);
}

static int
store_cert_get_tx(struct store *st, const char *hex, struct store_cert *out,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT site_id, serial, not_after, "
	    "issued_at, state, der FROM certs WHERE fingerprint = ?", "t", hex);
	enum store_step r;
	int rc = 0;

	out->site_id = 0;
	out->state = 0;
	out->der_len = 0;
	out->serial[0] = '\0';
	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW) {
		size_t len = 0;
		const void *der = st->be->column_blob(stmt, 5, &len);

		out->site_id = (uint64_t)st->be->column_int(stmt, 0);
		if (store_text_col(st, stmt, 1, out->serial,
		    sizeof(out->serial)) == -1 || der == NULL || len == 0 ||
		    len > STORE_CERT_DER_MAX)
			rc = store_internal(st, err, "a certificate record is "
			    "damaged");
		else {
			memcpy(out->der, der, len);
			out->der_len = len;
		}
		out->not_after = st->be->column_int(stmt, 2);
		out->issued_at = st->be->column_int(stmt, 3);
		out->state = (enum store_cert_state)st->be->column_int(stmt, 4);
	}
	store_stmt_done(st, stmt);
	if (rc != 0)
		return rc;
	if (r == STORE_STEP_DONE)
		return model_error_set(err, MODEL_E_NOT_FOUND, "certificate",
		    "no such certificate");
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "reading a certificate");
	return 0;
}

int
store_cert_get(struct store *st, const uint8_t fp[STORE_CERT_FP_LEN],
    struct store_cert *out, struct model_error *err)
{
	char hex[STORE_HASH_HEX];

	store_fp_hex(fp, hex);
	memcpy(out->fp, fp, STORE_CERT_FP_LEN);
	return store_cert_get_tx(st, hex, out, err);
}

int
store_cert_active(struct store *st, uint64_t site_id, struct store_cert *out,
    struct model_error *err)
{
	void *stmt = store_prep(st, err, "SELECT fingerprint FROM certs WHERE "
	    "site_id = ? AND state = ?", "ui", site_id,
	    (int64_t)STORE_CERT_ACTIVE);
	char hex[STORE_HASH_HEX];
	enum store_step r;
	int rc = 0;

	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW &&
	    store_text_col(st, stmt, 0, hex, sizeof(hex)) == -1)
		rc = store_internal(st, err, "a certificate record is damaged");
	store_stmt_done(st, stmt);
	if (rc != 0)
		return rc;
	if (r == STORE_STEP_DONE)
		return model_error_set(err, MODEL_E_NOT_FOUND, "certificate",
		    "the site has no certificate");
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "reading a certificate");
	{
		size_t n = 0;

		if (util_unhex(hex, out->fp, sizeof(out->fp), &n) == -1 ||
		    n != sizeof(out->fp))
			return store_internal(st, err, "a certificate record is "
			    "damaged");
	}
	return store_cert_get_tx(st, hex, out, err);
}

/*
 * Enroll presented with a used token: the edge may have lost our answer
 * after the commit (controller/STORE.md, "Tokens").  Only inside the
 * token's lifetime and for a site still in service; the certificate is
 * the one recorded, so the answer is the same bytes.
 */
int
store_enroll_token_replay(struct store *st, const char *token, int64_t now,
    struct store_cert *out, struct model_error *err)
{
	char hash[STORE_HASH_HEX];
	struct store_token_row t;
	void *stmt;
	enum store_step r;
	int64_t revoked = 0;
	int found;

	if (!store_token_shape(token, "mwe_") ||
	    store_token_hash(token, hash) == -1)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "unknown token");
	if ((found = store_token_row(st, hash, &t, err)) == -1)
		return -1;
	if (!found || t.used == 0)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "unknown or unused token");
	if (now >= t.expires)
		return model_error_set(err, MODEL_E_TOKEN, "token",
		    "token expired");
	stmt = store_prep(st, err, "SELECT revoked FROM sites WHERE id = ?",
	    "u", t.site);
	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW)
		revoked = st->be->column_int(stmt, 0);
	store_stmt_done(st, stmt);
	if (r != STORE_STEP_ROW && r != STORE_STEP_DONE)
		return store_internal(st, err, "reading a site");
	if (r == STORE_STEP_DONE || revoked != 0)
		return model_error_set(err, MODEL_E_TOKEN, "site",
		    "the token's site is revoked or deleted");
	return store_cert_active(st, t.site, out, err);
}

int
store_cert_renew(struct store *st, const uint8_t old_fp[STORE_CERT_FP_LEN],
    const struct store_cert *c, struct model_error *err)
{
	struct store_cert *cur;
	int rc;

	if ((cur = malloc(sizeof(*cur))) == NULL)
		return store_internal(st, err, "out of memory");
	if (store_tx_begin(st, err) == -1) {
		free(cur);
		return -1;
	}
	rc = store_cert_get(st, old_fp, cur, err);
	if (rc == 0 && (cur->site_id != c->site_id ||
	    cur->state != STORE_CERT_ACTIVE))
		rc = model_error_set(err, MODEL_E_TOKEN, "certificate",
		    "only the site's active certificate may renew");
	if (rc == 0 && store_run(st, err, "DELETE FROM certs WHERE site_id = ? "
	    "AND state = ?", "ui", c->site_id, (int64_t)STORE_CERT_NEXT) != 0)
		rc = store_internal(st, err, "replacing a renewed certificate");
	if (rc == 0)
		rc = store_cert_insert(st, c, STORE_CERT_NEXT, err);
	free(cur);
	return store_tx_end(st, rc, err);
}

int
store_cert_promote(struct store *st, uint64_t site_id,
    const uint8_t fp[STORE_CERT_FP_LEN], struct model_error *err)
{
	char hex[STORE_HASH_HEX];
	int rc = 0;

	store_fp_hex(fp, hex);
	if (store_tx_begin(st, err) == -1)
		return -1;
	if (store_run(st, err, "DELETE FROM certs WHERE site_id = ? AND "
	    "fingerprint <> ? AND EXISTS (SELECT 1 FROM certs WHERE "
	    "fingerprint = ? AND site_id = ? AND state = ?)", "uttui", site_id,
	    hex, hex, site_id, (int64_t)STORE_CERT_NEXT) != 0 ||
	    store_run(st, err, "UPDATE certs SET state = ? WHERE fingerprint = "
	    "? AND site_id = ?", "itu", (int64_t)STORE_CERT_ACTIVE, hex,
	    site_id) != 0)
		rc = store_internal(st, err, "promoting a renewed certificate");
	else if (st->be->changes(st->conn) != 1)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "certificate",
		    "no such certificate for the site");
	return store_tx_end(st, rc, err);
}

/* ---- settings ------------------------------------------------------------------------ */

static bool
store_kv_key_valid(const char *key)
{
	size_t n = key != NULL ? strlen(key) : 0;

	if (n == 0 || n > STORE_KV_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= '0' && key[i] <= '9') || key[i] == '_' ||
		    key[i] == '-' || key[i] == '.'))
			return false;
	return true;
}

int
store_kv_set(struct store *st, const char *key, const char *value,
    struct model_error *err)
{
	char k[STORE_KV_KEY_MAX + 4];

	if (!store_kv_key_valid(key))
		return model_error_set(err, MODEL_E_INVALID, "key",
		    "setting names are 1-%d characters of [a-z0-9._-]",
		    STORE_KV_KEY_MAX);
	if (value == NULL || strlen(value) > STORE_KV_VAL_MAX)
		return model_error_set(err, MODEL_E_INVALID, "value",
		    "setting values are at most %d bytes", STORE_KV_VAL_MAX);
	/* Own namespace, so callers can never touch the internal counters. */
	(void)snprintf(k, sizeof(k), "kv.%s", key);
	if (store_tx_begin(st, err) == -1)
		return -1;
	return store_tx_end(st, store_meta_set(st, k, value, err), err);
}

int
store_kv_get(struct store *st, const char *key, char *value, size_t valuesz,
    struct model_error *err)
{
	char k[STORE_KV_KEY_MAX + 4];
	void *stmt;
	enum store_step r;
	int rc = 0;

	if (!store_kv_key_valid(key))
		return model_error_set(err, MODEL_E_INVALID, "key",
		    "bad setting name");
	(void)snprintf(k, sizeof(k), "kv.%s", key);
	stmt = store_prep(st, err, "SELECT value FROM meta WHERE key = ?", "t",
	    k);
	if (stmt == NULL)
		return -1;
	r = st->be->step(stmt);
	if (r == STORE_STEP_ROW && store_text_col(st, stmt, 0, value,
	    valuesz) == -1)
		rc = model_error_set(err, MODEL_E_INVALID, "value",
		    "setting %s does not fit the buffer", key);
	store_stmt_done(st, stmt);
	if (rc != 0)
		return -1;
	if (r == STORE_STEP_DONE)
		return model_error_set(err, MODEL_E_NOT_FOUND, "key",
		    "setting %s is not set", key);
	if (r != STORE_STEP_ROW)
		return store_internal(st, err, "reading a setting");
	return 0;
}

/* ---- SA epochs ---------------------------------------------------------------------- */

/* Why an insert of e was refused: the caller found the tunnel in this
 * transaction, so the epoch is already recorded.  Nothing is queried
 * after the refusal: on PostgreSQL the transaction is aborted by then.
 * (On PostgreSQL, a tunnel deleted by another writer between the check
 * and the insert also ends here, as a foreign-key refusal.) */
static int
store_epoch_refused(const struct model_epoch *e, struct model_error *err)
{
	return model_error_set(err, MODEL_E_DUPLICATE, "epoch",
	    "epoch %llu of tunnel %llu is already recorded",
	    (unsigned long long)e->epoch, (unsigned long long)e->tunnel_id);
}

/* own_spis: also refuse any SPI the tunnel holds (store_epoch_renew). */
static int
store_epoch_add_tx(struct store *st, struct model_epoch *e, bool own_spis,
    struct model_error *err)
{
	/*
	 * Random SPIs >= 256, checked against every recorded epoch (live or
	 * draining) of the same receiving address before the insert rather
	 * than retried on the UNIQUE constraint: PostgreSQL aborts the whole
	 * transaction on a refused statement.  A refused insert is final
	 * (the epoch is recorded already), so the common case is two
	 * statements.
	 */
	for (int tries = 0; tries < 64; tries++) {
		uint32_t spi;
		int64_t v;
		bool found;
		int rc;

		if (util_random(&spi, sizeof(spi)) == -1)
			return model_error_set(err, MODEL_E_INTERNAL, "",
			    "no randomness for an SPI");
		if (spi < 256)
			continue;
		if (store_get_int(st, err, &v, &found, "SELECT spi FROM "
		    "sa_epochs WHERE recv_address = ? AND spi = ?", "ti",
		    e->recv_address, (int64_t)spi) == -1)
			return -1;
		if (!found && own_spis && store_get_int(st, err, &v, &found,
		    "SELECT spi FROM sa_epochs WHERE tunnel_id = ? AND "
		    "spi = ?", "ui", e->tunnel_id, (int64_t)spi) == -1)
			return -1;
		if (found)
			continue;
		rc = store_run(st, err, "INSERT INTO sa_epochs (tunnel_id, "
		    "sender_site, epoch, recv_address, spi, state, "
		    "changed_at, reason, sender_key_epoch, "
		    "receiver_key_epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		    "uuutiiiiuu", e->tunnel_id, e->sender_site, e->epoch,
		    e->recv_address, (int64_t)spi, (int64_t)e->state,
		    e->changed_at, (int64_t)e->reason, e->sender_key_epoch,
		    e->receiver_key_epoch);
		if (rc == 1)
			return store_epoch_refused(e, err);
		if (rc != 0)
			return -1;
		e->spi = spi;
		return 0;
	}
	return model_error_set(err, MODEL_E_EXHAUSTED, "spi",
	    "no free SPI found for %s", e->recv_address);
}

int
store_epoch_add(struct store *st, struct model_epoch *e,
    struct model_error *err)
{
	struct model_epoch tmp = *e;
	int64_t v;
	bool found;
	int rc;

	if (!model_address_valid(e->recv_address))
		return model_error_set(err, MODEL_E_INVALID, "recv_address",
		    "receiving address is not an IP address");
	if (e->state < MODEL_EPOCH_INSTALLED || e->state > MODEL_EPOCH_DRAINING)
		return model_error_set(err, MODEL_E_INVALID, "state",
		    "not an epoch state");
	if (store_tx_begin(st, err) == -1)
		return -1;
	/* A tunnel whose site another writer just deleted is a miss, not a
	 * failure: nothing is written and a surrounding group stays usable
	 * (a batch of rekeys must not be undone by one vanished tunnel). */
	if (store_get_int(st, err, &v, &found, "SELECT id FROM tunnels WHERE "
	    "id = ?", "u", e->tunnel_id) == -1)
		return store_tx_end(st, -1, err);
	if (!found) {
		(void)store_tx_end(st, 0, NULL);
		return model_error_set(err, MODEL_E_NOT_FOUND, "tunnel",
		    "no tunnel %llu", (unsigned long long)e->tunnel_id);
	}
	rc = store_tx_end(st, store_epoch_add_tx(st, &tmp, false, err), err);
	if (rc == 0)
		*e = tmp;
	return rc;
}

static int
store_epoch_renew_tx(struct store *st, struct model_epoch *e, size_t n,
    struct model_error *err)
{
	int64_t max;
	bool found;

	if (store_get_int(st, err, &max, &found, "SELECT MAX(epoch) FROM "
	    "sa_epochs WHERE tunnel_id = ?", "u", e[0].tunnel_id) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		e[i].epoch = (uint64_t)max + 1;
		if (store_epoch_add_tx(st, &e[i], true, err) == -1)
			return -1;
	}
	if (store_run(st, err, "DELETE FROM sa_epochs WHERE tunnel_id = ? AND "
	    "epoch <= ?", "ui", e[0].tunnel_id, max) != 0)
		return store_internal(st, err, "forgetting old epochs");
	return 0;
}

int
store_epoch_renew(struct store *st, struct model_epoch *e, size_t n,
    struct model_error *err)
{
	struct model_epoch tmp[2];
	int64_t v;
	bool found;

	if (n == 0 || n > 2)
		return model_error_set(err, MODEL_E_INVALID, "epochs",
		    "one or two directions");
	for (size_t i = 0; i < n; i++) {
		if (e[i].tunnel_id != e[0].tunnel_id)
			return model_error_set(err, MODEL_E_INVALID,
			    "tunnel_id", "epochs of several tunnels");
		if (!model_address_valid(e[i].recv_address))
			return model_error_set(err, MODEL_E_INVALID,
			    "recv_address",
			    "receiving address is not an IP address");
		if (e[i].state < MODEL_EPOCH_INSTALLED ||
		    e[i].state > MODEL_EPOCH_DRAINING)
			return model_error_set(err, MODEL_E_INVALID, "state",
			    "not an epoch state");
		tmp[i] = e[i];
	}
	if (store_tx_begin(st, err) == -1)
		return -1;
	if (store_get_int(st, err, &v, &found, "SELECT id FROM tunnels WHERE "
	    "id = ?", "u", e[0].tunnel_id) == -1)
		return store_tx_end(st, -1, err);
	if (!found) {
		(void)store_tx_end(st, 0, NULL);
		return model_error_set(err, MODEL_E_NOT_FOUND, "tunnel",
		    "no tunnel %llu", (unsigned long long)e[0].tunnel_id);
	}
	if (store_tx_end(st, store_epoch_renew_tx(st, tmp, n, err), err) == -1)
		return -1;
	memcpy(e, tmp, n * sizeof(*e));
	return 0;
}

int
store_epoch_set_state(struct store *st, uint64_t tunnel_id,
    uint64_t sender_site, uint64_t epoch, enum model_epoch_state state,
    int64_t now, struct model_error *err)
{
	int rc;

	if (state < MODEL_EPOCH_INSTALLED || state > MODEL_EPOCH_DRAINING)
		return model_error_set(err, MODEL_E_INVALID, "state",
		    "unknown epoch state");
	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_run(st, err, "UPDATE sa_epochs SET state = ?, changed_at = ? "
	    "WHERE tunnel_id = ? AND sender_site = ? AND epoch = ?", "iiuuu",
	    (int64_t)state, now, tunnel_id, sender_site, epoch);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "epoch",
		    "no epoch %llu for tunnel %llu from site %llu",
		    (unsigned long long)epoch, (unsigned long long)tunnel_id,
		    (unsigned long long)sender_site);
	else if (rc == 1)
		rc = store_internal(st, err, "updating an epoch");
	return store_tx_end(st, rc, err);
}

int
store_epoch_delete(struct store *st, uint64_t tunnel_id, uint64_t sender_site,
    uint64_t epoch, struct model_error *err)
{
	int rc;

	if (store_tx_begin(st, err) == -1)
		return -1;
	rc = store_run(st, err, "DELETE FROM sa_epochs WHERE tunnel_id = ? AND "
	    "sender_site = ? AND epoch = ?", "uuu", tunnel_id, sender_site,
	    epoch);
	if (rc == 0 && st->be->changes(st->conn) == 0)
		rc = model_error_set(err, MODEL_E_NOT_FOUND, "epoch",
		    "no epoch %llu for tunnel %llu from site %llu",
		    (unsigned long long)epoch, (unsigned long long)tunnel_id,
		    (unsigned long long)sender_site);
	else if (rc == 1)
		rc = store_internal(st, err, "deleting an epoch");
	return store_tx_end(st, rc, err);
}

static void
store_epoch_row(struct store *st, void *stmt, void *elem)
{
	struct model_epoch *e = elem;

	memset(e, 0, sizeof(*e));
	e->tunnel_id = (uint64_t)st->be->column_int(stmt, 0);
	e->sender_site = (uint64_t)st->be->column_int(stmt, 1);
	e->epoch = (uint64_t)st->be->column_int(stmt, 2);
	(void)store_text_col(st, stmt, 3, e->recv_address,
	    sizeof(e->recv_address));
	e->spi = (uint32_t)st->be->column_int(stmt, 4);
	e->state = (enum model_epoch_state)st->be->column_int(stmt, 5);
	e->changed_at = st->be->column_int(stmt, 6);
	e->reason = (uint32_t)st->be->column_int(stmt, 7);
	e->sender_key_epoch = (uint64_t)st->be->column_int(stmt, 8);
	e->receiver_key_epoch = (uint64_t)st->be->column_int(stmt, 9);
}

int
store_epoch_list(struct store *st, uint64_t tunnel_id,
    struct model_epoch **out, size_t *n, struct model_error *err)
{
	void *stmt = tunnel_id != 0 ?
	    store_prep(st, err, "SELECT tunnel_id, sender_site, epoch, "
	    "recv_address, spi, state, changed_at, reason, sender_key_epoch, "
	    "receiver_key_epoch FROM sa_epochs WHERE "
	    "tunnel_id = ? ORDER BY tunnel_id, sender_site, epoch", "u",
	    tunnel_id) :
	    store_prep(st, err, "SELECT tunnel_id, sender_site, epoch, "
	    "recv_address, spi, state, changed_at, reason, sender_key_epoch, "
	    "receiver_key_epoch FROM sa_epochs "
	    "ORDER BY tunnel_id, sender_site, epoch", "");

	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 16, store_epoch_row,
	    "epochs", out, n, err);
}

int
store_epoch_list_site(struct store *st, uint64_t site_id,
    struct model_epoch **out, size_t *n, struct model_error *err)
{
	/* Through the tunnels' indexes on both ends and the epochs'
	 * primary key: only the site's rows are read. */
	void *stmt = store_prep(st, err, "SELECT tunnel_id, sender_site, "
	    "epoch, recv_address, spi, state, changed_at, reason, "
	    "sender_key_epoch, receiver_key_epoch FROM sa_epochs WHERE "
	    "tunnel_id IN (SELECT id FROM tunnels WHERE site_a = ? OR "
	    "site_b = ?) ORDER BY tunnel_id, sender_site, epoch", "uu",
	    site_id, site_id);

	if (stmt == NULL)
		return -1;
	return store_collect(st, stmt, sizeof(**out), 16, store_epoch_row,
	    "epochs", out, n, err);
}
