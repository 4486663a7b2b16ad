/*
 * store_pg.c — the PostgreSQL backend of the store (libpq), and the only
 * file that includes libpq-fe.h.
 *
 * The connection string is libpq's own, passed through unchanged: a URI
 * (postgresql://h1,h2/db?target_session_attrs=read-write) or key=value
 * pairs, so several hosts and "find the primary" are libpq's business.
 * We only add defaults the string may override: connect_timeout=2 (libpq's
 * smallest; a reconnect blocks its thread at most that long per host),
 * TCP keepalives and tcp_user_timeout, and application_name.
 *
 * What differs from sqlite stays here (STORE.md, "Engine differences"):
 * `?` placeholders become $1, $2 ...; the column type BLOB becomes BYTEA
 * in DDL; SQLSTATE class 23 (integrity) is STORE_STEP_CONSTRAINT; BEGIN
 * instead of BEGIN IMMEDIATE.  Statements are sent with PQexecParams
 * (parameters as text, blobs binary; results as text, bytea decoded on
 * read), so no server-side state has to be rebuilt after a reconnect.
 *
 * A lost connection: the first failing call records the cause and marks
 * the connection down; later calls outside a transaction try PQreset,
 * at once the first time and then after a growing pause (250 ms doubling
 * to 5 s), and answer "unavailable" with the cause meanwhile.  Inside a
 * transaction nothing reconnects (the rest of it would run outside).
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/store_backend.h"
#include "lib/log.h"
#include "lib/util.h"

#define PG_BACKOFF_MIN_MS 250
#define PG_BACKOFF_MAX_MS 5000
#define PG_PARAMS_MAX 64
/* The server ends a session idle in a transaction this long. */
#define PG_IDLE_TX_MS 60000

struct pg_conn {
	PGconn *pg;
	int busy_ms;
	int64_t changes;
	bool in_tx;
	bool busy;                  /* last failure: another writer's lock */
	bool down;                  /* lost; reconnect before the next use */
	unsigned backoff_ms;
	int64_t next_try_ms;        /* monotonic */
	char cause[256];            /* why it is down, for the 503 */
	char listen[64];            /* LISTEN channel, re-issued on reconnect */
	bool resync;                /* reconnected: listeners must catch up */
	/* The leader lease (the replica thread's connection only). */
	bool lease_ready;           /* the lease table exists */
	bool locked;                /* holds the leader lock (this session) */
	bool leader;                /* ... and claimed the lease with it */
	int64_t renew_at;           /* monotonic: the next renewal */
	int64_t renewed;            /* monotonic: the last good renewal */
	char err[256];              /* last error, for logs */
};

struct pg_stmt {
	struct pg_conn *c;
	char *sql;                  /* with $n placeholders */
	int nparams;
	char *vals[PG_PARAMS_MAX];
	int lens[PG_PARAMS_MAX];
	int fmts[PG_PARAMS_MAX];
	PGresult *res;
	int row, nrows;
	bool ran;
	unsigned char *blob;        /* decoded bytea of the last column read */
};

static int64_t
pg_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* First line of libpq's message, without its "ERROR:  " decoration. */
static void
pg_firstline(char *dst, size_t dstsz, const char *msg)
{
	size_t n;

	if (msg == NULL || *msg == '\0')
		msg = "unknown error";
	if (strncmp(msg, "ERROR:  ", 8) == 0 ||
	    strncmp(msg, "FATAL:  ", 8) == 0)
		msg += 8;
	n = strcspn(msg, "\n");
	if (n >= dstsz)
		n = dstsz - 1;
	memcpy(dst, msg, n);
	dst[n] = '\0';
}

static void
pg_notice(void *arg, const char *msg)
{
	char line[256];

	(void)arg;
	pg_firstline(line, sizeof(line), msg);
	log_debug("store", "postgresql: %s", line);
}

/* Per-session settings, after every (re)connect. */
static int
pg_setup(struct pg_conn *c)
{
	char sql[160];
	PGresult *r;
	int ok;

	PQsetNoticeProcessor(c->pg, pg_notice, NULL);
	/* A controller never idles inside a transaction for long: one that
	 * does is stopped or hung, and its row locks (the writers' lock,
	 * the leader lease) would hold up every other replica. */
	(void)snprintf(sql, sizeof(sql), "SET lock_timeout = %d; "
	    "SET idle_in_transaction_session_timeout = %d", c->busy_ms,
	    PG_IDLE_TX_MS);
	r = PQexec(c->pg, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		pg_firstline(c->err, sizeof(c->err), PQerrorMessage(c->pg));
	PQclear(r);
	return ok ? 0 : -1;
}

/* LISTEN again after a reconnect; the listener then reads the log. */
static int
pg_relisten(struct pg_conn *c)
{
	char sql[96];
	PGresult *r;
	int ok;

	if (c->listen[0] == '\0')
		return 0;
	(void)snprintf(sql, sizeof(sql), "LISTEN %s", c->listen);
	r = PQexec(c->pg, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	c->resync = true;
	return ok ? 0 : -1;
}

/* After a failed call: is the connection gone?  Then remember why. */
static void
pg_check_lost(struct pg_conn *c)
{
	if (c->down || PQstatus(c->pg) != CONNECTION_BAD)
		return;
	c->down = true;
	c->in_tx = false;
	c->locked = c->leader = false;  /* the session and its locks are gone */
	c->backoff_ms = 0;
	c->next_try_ms = pg_now_ms();
	pg_firstline(c->cause, sizeof(c->cause), PQerrorMessage(c->pg));
	log_warnx("store: database connection lost (%s); reconnecting",
	    c->cause);
}

/* Reconnect if down and due; 0 when the connection is usable. */
static int
pg_ensure(struct pg_conn *c)
{
	int64_t now;

	if (!c->down)
		return 0;
	if (c->in_tx)
		return -1;
	now = pg_now_ms();
	if (now < c->next_try_ms)
		return -1;
	PQreset(c->pg);
	c->locked = c->leader = false;
	if (PQstatus(c->pg) == CONNECTION_OK && pg_setup(c) == 0 &&
	    pg_relisten(c) == 0) {
		c->down = false;
		c->backoff_ms = 0;
		c->cause[0] = '\0';
		log_info("store: database connection restored");
		return 0;
	}
	pg_firstline(c->cause, sizeof(c->cause), PQerrorMessage(c->pg));
	c->backoff_ms = c->backoff_ms == 0 ? PG_BACKOFF_MIN_MS :
	    c->backoff_ms * 2;
	if (c->backoff_ms > PG_BACKOFF_MAX_MS)
		c->backoff_ms = PG_BACKOFF_MAX_MS;
	c->next_try_ms = now + c->backoff_ms;
	log_warnx("store: database still unreachable (%s); next try in %u ms",
	    c->cause, c->backoff_ms);
	return -1;
}

static int
pg_open(const char *conninfo, int busy_ms, void **conn)
{
	/* Later keywords win; dbname is expanded from the whole string, so
	 * anything it says overrides the defaults before it.  Over TCP, a
	 * server that vanished (host gone, network cut) is noticed in
	 * ~25 s idle, or 15 s into a call it does not answer, instead of
	 * the kernel's hours: a call blocks its thread until then. */
	const char *const keys[] = { "connect_timeout", "application_name",
	    "keepalives_idle", "keepalives_interval", "keepalives_count",
	    "tcp_user_timeout", "dbname", NULL };
	const char *const vals[] = { "2", "meshwan-controller", "10", "5",
	    "3", "15000", conninfo, NULL };
	struct pg_conn *c = calloc(1, sizeof(*c));
	char why[256];

	if (c == NULL)
		return -1;
	c->busy_ms = busy_ms;
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK ||
	    pg_setup(c) == -1) {
		pg_firstline(why, sizeof(why), c->pg != NULL ?
		    PQerrorMessage(c->pg) : "out of memory");
		log_warnx("store: cannot connect to PostgreSQL: %s", why);
		PQfinish(c->pg);
		free(c);
		return -1;
	}
	*conn = c;
	return 0;
}

static void
pg_close(void *conn)
{
	struct pg_conn *c = conn;

	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c);
}

static int
pg_result_ok(struct pg_conn *c, PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);

	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
		return 0;
	pg_firstline(c->err, sizeof(c->err), PQerrorMessage(c->pg));
	pg_check_lost(c);
	return -1;
}

/* DDL: the one column type that differs.  Whole words only. */
static char *
pg_ddl(const char *sql)
{
	size_t len = strlen(sql), o = 0;
	char *out = malloc(len * 2 + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (strncmp(sql + i, "BLOB", 4) == 0 &&
		    (i == 0 || !(isalnum((unsigned char)sql[i - 1]) ||
		    sql[i - 1] == '_')) &&
		    !(isalnum((unsigned char)sql[i + 4]) || sql[i + 4] == '_')) {
			memcpy(out + o, "BYTEA", 5);
			o += 5;
			i += 3;
			continue;
		}
		out[o++] = sql[i];
	}
	out[o] = '\0';
	return out;
}

static int
pg_exec(void *conn, const char *sql)
{
	struct pg_conn *c = conn;
	char *q;
	PGresult *r;
	int rc;

	if (pg_ensure(c) == -1)
		return -1;
	if ((q = pg_ddl(sql)) == NULL)
		return -1;
	r = PQexec(c->pg, q);
	free(q);
	rc = pg_result_ok(c, r);
	if (rc == -1)
		log_debug("store", "postgresql: %s", c->err);
	PQclear(r);
	return rc;
}

/* `?` -> $1, $2 ... outside quoted strings. */
static int
pg_prepare(void *conn, const char *sql, void **stmt)
{
	struct pg_stmt *s = calloc(1, sizeof(*s));
	size_t len = strlen(sql), o = 0;
	bool quoted = false;

	if (s == NULL || (s->sql = malloc(len * 4 + 1)) == NULL) {
		free(s);
		return -1;
	}
	s->c = conn;
	for (size_t i = 0; i < len; i++) {
		if (sql[i] == '\'')
			quoted = !quoted;
		if (sql[i] != '?' || quoted) {
			s->sql[o++] = sql[i];
			continue;
		}
		if (s->nparams == PG_PARAMS_MAX) {
			log_warnx("store: more than %d parameters",
			    PG_PARAMS_MAX);
			free(s->sql);
			free(s);
			return -1;
		}
		o += (size_t)sprintf(s->sql + o, "$%d", ++s->nparams);
	}
	s->sql[o] = '\0';
	*stmt = s;
	return 0;
}

static void
pg_clear_result(struct pg_stmt *s)
{
	PQfreemem(s->blob);
	s->blob = NULL;
	PQclear(s->res);
	s->res = NULL;
	s->ran = false;
	s->row = s->nrows = 0;
}

static int
pg_reset(void *stmt)
{
	struct pg_stmt *s = stmt;

	pg_clear_result(s);
	for (int i = 0; i < s->nparams; i++) {
		free(s->vals[i]);
		s->vals[i] = NULL;
		s->lens[i] = s->fmts[i] = 0;
	}
	return 0;
}

static void
pg_finalize(void *stmt)
{
	struct pg_stmt *s = stmt;

	if (s == NULL)
		return;
	(void)pg_reset(s);
	free(s->sql);
	free(s);
}

static int
pg_bind(struct pg_stmt *s, int idx, const void *v, size_t len, int fmt)
{
	char *copy;

	if (idx < 1 || idx > s->nparams || len > INT32_MAX)
		return -1;
	if (s->ran)
		pg_clear_result(s);
	copy = malloc(len + 1);
	if (copy == NULL)
		return -1;
	if (len > 0)
		memcpy(copy, v, len);
	copy[len] = '\0';
	free(s->vals[idx - 1]);
	s->vals[idx - 1] = copy;
	s->lens[idx - 1] = (int)len;
	s->fmts[idx - 1] = fmt;
	return 0;
}

static int
pg_bind_int(void *stmt, int idx, int64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);

	return pg_bind(stmt, idx, buf, (size_t)n, 0);
}

static int
pg_bind_text(void *stmt, int idx, const char *v)
{
	return pg_bind(stmt, idx, v, strlen(v), 0);
}

static int
pg_bind_blob(void *stmt, int idx, const void *v, size_t len)
{
	return pg_bind(stmt, idx, v, len, 1);
}

static int
pg_bind_null(void *stmt, int idx)
{
	struct pg_stmt *s = stmt;

	if (idx < 1 || idx > s->nparams)
		return -1;
	if (s->ran)
		pg_clear_result(s);
	free(s->vals[idx - 1]);
	s->vals[idx - 1] = NULL;
	s->lens[idx - 1] = s->fmts[idx - 1] = 0;
	return 0;
}

static enum store_step
pg_step(void *stmt)
{
	struct pg_stmt *s = stmt;
	struct pg_conn *c = s->c;
	const char *state;

	PQfreemem(s->blob);
	s->blob = NULL;
	if (s->ran)
		return ++s->row < s->nrows ? STORE_STEP_ROW : STORE_STEP_DONE;
	c->busy = false;
	if (pg_ensure(c) == -1)
		return STORE_STEP_ERROR;
	s->res = PQexecParams(c->pg, s->sql, s->nparams, NULL,
	    (const char *const *)s->vals, s->lens, s->fmts, 0);
	s->ran = true;
	switch (PQresultStatus(s->res)) {
	case PGRES_TUPLES_OK:
		s->nrows = PQntuples(s->res);
		s->row = 0;
		return s->nrows > 0 ? STORE_STEP_ROW : STORE_STEP_DONE;
	case PGRES_COMMAND_OK:
		c->changes = strtoll(PQcmdTuples(s->res), NULL, 10);
		return STORE_STEP_DONE;
	default:
		break;
	}
	pg_firstline(c->err, sizeof(c->err), PQresultErrorMessage(s->res));
	state = PQresultErrorField(s->res, PG_DIAG_SQLSTATE);
	/* lock_not_available (lock_timeout), serialization_failure,
	 * deadlock_detected: another writer, retry later. */
	c->busy = state != NULL && (strcmp(state, "55P03") == 0 ||
	    strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0);
	if (state != NULL && strncmp(state, "23", 2) == 0) {
		log_debug("store", "postgresql: %s", c->err);
		return STORE_STEP_CONSTRAINT;
	}
	pg_check_lost(c);
	if (!c->down)
		log_warnx("store: postgresql: %s", c->err);
	return STORE_STEP_ERROR;
}

static int64_t
pg_column_int(void *stmt, int col)
{
	struct pg_stmt *s = stmt;

	if (s->res == NULL || s->row >= s->nrows ||
	    PQgetisnull(s->res, s->row, col))
		return 0;
	return strtoll(PQgetvalue(s->res, s->row, col), NULL, 10);
}

static const char *
pg_column_text(void *stmt, int col)
{
	struct pg_stmt *s = stmt;

	if (s->res == NULL || s->row >= s->nrows)
		return "";
	return PQgetvalue(s->res, s->row, col);   /* "" for NULL */
}

static const void *
pg_column_blob(void *stmt, int col, size_t *len)
{
	struct pg_stmt *s = stmt;

	*len = 0;
	if (s->res == NULL || s->row >= s->nrows ||
	    PQgetisnull(s->res, s->row, col))
		return NULL;
	PQfreemem(s->blob);
	s->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res,
	    s->row, col), len);
	if (s->blob == NULL)
		*len = 0;
	return s->blob;
}

static int
pg_column_is_null(void *stmt, int col)
{
	struct pg_stmt *s = stmt;

	return s->res == NULL || s->row >= s->nrows ||
	    PQgetisnull(s->res, s->row, col);
}

static int
pg_simple(struct pg_conn *c, const char *sql)
{
	PGresult *r = PQexec(c->pg, sql);
	int rc = pg_result_ok(c, r);

	PQclear(r);
	return rc;
}

static int
pg_begin(void *conn)
{
	struct pg_conn *c = conn;

	if (pg_ensure(c) == -1)
		return STORE_BE_UNAVAILABLE;
	if (pg_simple(c, "BEGIN") == -1) {
		/* A connection that died since its last use: one more try
		 * right away (a restarted or promoted server is found). */
		if (!c->down || pg_ensure(c) == -1 ||
		    pg_simple(c, "BEGIN") == -1)
			return c->down ? STORE_BE_UNAVAILABLE : -1;
	}
	c->in_tx = true;
	return 0;
}

static int
pg_commit(void *conn)
{
	struct pg_conn *c = conn;
	PGresult *r = PQexec(c->pg, "COMMIT");
	int rc = pg_result_ok(c, r);

	/* COMMIT of a transaction that failed answers ROLLBACK. */
	if (rc == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		(void)util_strcpy(c->err, sizeof(c->err),
		    "the transaction was rolled back");
		rc = -1;
	}
	PQclear(r);
	c->in_tx = false;
	return rc;
}

static int
pg_rollback(void *conn)
{
	struct pg_conn *c = conn;

	c->in_tx = false;
	if (c->down || PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		return 0;
	return pg_simple(c, "ROLLBACK");
}

static int64_t
pg_changes(void *conn)
{
	return ((struct pg_conn *)conn)->changes;
}

static const char *
pg_errmsg(void *conn)
{
	return ((struct pg_conn *)conn)->err;
}

/* Channel names are ours (identifiers, no quoting needed); checked. */
static bool
pg_channel_ok(const char *ch)
{
	size_t n = strlen(ch);

	if (n == 0 || n >= sizeof(((struct pg_conn *)0)->listen))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)ch[i]) || ch[i] == '_'))
			return false;
	return true;
}

static int
pg_notify(void *conn, const char *channel)
{
	struct pg_conn *c = conn;
	char sql[96];

	if (!pg_channel_ok(channel))
		return -1;
	(void)snprintf(sql, sizeof(sql), "NOTIFY %s", channel);
	return pg_simple(c, sql);
}

static int
pg_listen(void *conn, const char *channel)
{
	struct pg_conn *c = conn;

	if (!pg_channel_ok(channel))
		return -1;
	(void)util_strcpy(c->listen, sizeof(c->listen), channel);
	if (pg_ensure(c) == -1)
		return -1;
	if (pg_relisten(c) == -1) {
		pg_check_lost(c);
		return -1;
	}
	c->resync = false;      /* the caller reads the log's head next */
	return 0;
}

/* Drain delivered notifications: how many. */
static int
pg_drain(struct pg_conn *c)
{
	PGnotify *n;
	int got = 0;

	while ((n = PQnotifies(c->pg)) != NULL) {
		PQfreemem(n);
		got++;
	}
	return got;
}

static int
pg_wait(void *conn, int timeout_ms)
{
	struct pg_conn *c = conn;
	struct pollfd pfd;
	int64_t now;

	if (c->down && pg_ensure(c) == -1) {
		/* Sleep until the next try is due (or the timeout). */
		now = pg_now_ms();
		if (c->next_try_ms > now)
			(void)poll(NULL, 0, (int)(c->next_try_ms - now <
			    timeout_ms ? c->next_try_ms - now : timeout_ms));
		return -1;
	}
	if (c->resync) {
		c->resync = false;
		(void)pg_drain(c);
		return 1;
	}
	if (PQconsumeInput(c->pg) == 0)
		goto lost;
	if (pg_drain(c) > 0)
		return 1;
	pfd.fd = PQsocket(c->pg);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		goto lost;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	if (PQconsumeInput(c->pg) == 0)
		goto lost;
	return pg_drain(c) > 0 ? 1 : 0;
lost:
	c->locked = c->leader = false;
	pg_firstline(c->err, sizeof(c->err), PQerrorMessage(c->pg));
	pg_check_lost(c);
	if (!c->down) {
		/* libpq saw an error but kept the connection: start over. */
		c->down = true;
		c->next_try_ms = pg_now_ms();
		pg_firstline(c->cause, sizeof(c->cause), c->err);
	}
	return -1;
}

/*
 * The leader lease (STORE.md, "The leader lease").  One controller, the
 * leader, stores allocations; it is elected with a session-level
 * advisory lock, which PostgreSQL releases when the holder's connection
 * ends (its process died), and it holds a lease row next to it:
 * meshwan_leader names the holder (its change-log origin), the backend
 * that holds the lock (pid), a term, and when it was claimed and last
 * renewed, both on the database's clock.  A holder that is alive but
 * silent (stopped, hung, its VM paused) keeps its connection and the
 * lock, but not the lease: once renewed_at is older than the timeout,
 * another controller fences it: in one statement, which only one of
 * them wins, it marks the lease fenced (pid 0) and terminates that
 * backend, which releases the lock; its own next try takes the lock and
 * claims the lease.
 *
 * What makes an allocation safe is the check in the allocating
 * transaction (pg_leader_check): the lease still names this process,
 * unfenced, claimed before the transaction began, and FOR KEY SHARE
 * keeps it so (a claim takes FOR UPDATE, so it waits for the
 * transaction; renewals and fences change no key and do not).  A
 * stopped leader that resumes finds its lease connection gone and its
 * allocations refused, whatever its memory says.  A leader stopped in
 * the middle of such a transaction would hold up the claim: the fence
 * (and a claim that waited in vain) also ends the backend whose
 * transaction holds the lease row (its xmax) when it sits idle in it.
 */
#define PG_LEADER_KEY 0x6d657368776e4c31LL    /* "meshwnL1": the lock */
#define PG_LEASE_DDL_KEY 0x6d657368776e4c32LL /* "meshwnL2": making the table */
/* The lease connection waits this long for a row lock: it also follows
 * the change log, which must not stall behind a stopped holder. */
#define PG_LEASE_LOCK_MS 200

static const char pg_lease_claim_sql[] =
    "WITH l AS (SELECT id FROM meshwan_leader WHERE id = 1 FOR UPDATE) "
    "UPDATE meshwan_leader m SET holder = $1, pid = pg_backend_pid(), "
    "term = m.term + 1, claimed_at = clock_timestamp(), "
    "renewed_at = clock_timestamp(), fenced = 0 FROM l WHERE m.id = l.id "
    "RETURNING m.term";
static const char pg_lease_renew_sql[] =
    "UPDATE meshwan_leader SET renewed_at = clock_timestamp() "
    "WHERE id = 1 AND holder = $1 AND pid = pg_backend_pid()";
/* Only a holder that still has the lock and let the lease lapse; the
 * row lock makes a second fencer find pid 0 and do nothing. */
static const char pg_lease_fence_sql[] =
    "UPDATE meshwan_leader l SET fenced = l.pid, pid = 0 "
    "WHERE l.id = 1 AND l.pid <> 0 AND l.pid <> pg_backend_pid() "
    "AND l.renewed_at < clock_timestamp() - $1::integer * "
    "interval '1 millisecond' "
    "AND EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' "
    "AND k.granted AND k.pid = l.pid AND k.objsubid = 1 "
    "AND k.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) "
    "AND ((k.classid::bigint << 32) | k.objid::bigint) = $2::bigint) "
    "RETURNING l.holder, l.fenced, "
    "(extract(epoch FROM clock_timestamp() - l.renewed_at) * 1000)::bigint, "
    "pg_terminate_backend(l.fenced)";
/* The transaction that holds the lease row (FOR KEY SHARE: an
 * allocation of the holder's), when it sits idle: the holder stopped
 * in it.  Plain xids only (one locker); anything else waits. */
static const char pg_lease_unblock_sql[] =
    "SELECT a.pid, pg_terminate_backend(a.pid) FROM meshwan_leader l "
    "JOIN pg_stat_activity a ON a.backend_xid = l.xmax "
    "WHERE l.id = 1 AND a.pid <> pg_backend_pid() "
    "AND a.state LIKE 'idle in transaction%'";
/* Nobody holds the lease (fenced, its backend not gone yet, or a claim
 * on its way): whoever has the lock gives it up or claims it soon. */
static const char pg_lease_vacant_sql[] =
    "SELECT 1 FROM meshwan_leader WHERE id = 1 AND pid = 0";
static const char pg_lease_check_sql[] =
    "SELECT 1 FROM meshwan_leader WHERE id = 1 AND holder = $1 "
    "AND pid <> 0 AND claimed_at < transaction_timestamp() FOR KEY SHARE";

/* One statement outside a transaction; NULL on failure (logged). */
static PGresult *
pg_lease_run(struct pg_conn *c, const char *what, const char *sql,
    int n, const char *const *vals)
{
	PGresult *r = PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	c->busy = state != NULL && strcmp(state, "55P03") == 0;
	if (pg_result_ok(c, r) == 0)
		return r;
	PQclear(r);
	if (c->busy)
		log_debug("store", "leader lease: %s: %s", what, c->err);
	else if (!c->down)
		log_warnx("store: leader lease: %s: %s", what, c->err);
	return NULL;
}

/* The table, once per connection (made by the first controller). */
static int
pg_lease_setup(struct pg_conn *c)
{
	char sql[640];
	PGresult *r;

	if (c->lease_ready)
		return 0;
	/* One implicit transaction; the lock orders two first starts. */
	(void)snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld); "
	    "CREATE TABLE IF NOT EXISTS meshwan_leader ("
	    " id INTEGER PRIMARY KEY CHECK (id = 1),"
	    " holder TEXT NOT NULL,"
	    " pid INTEGER NOT NULL,"
	    " term BIGINT NOT NULL,"
	    " claimed_at TIMESTAMPTZ NOT NULL,"
	    " renewed_at TIMESTAMPTZ NOT NULL,"
	    " fenced INTEGER NOT NULL); "
	    "INSERT INTO meshwan_leader VALUES (1, '', 0, 0, '-infinity', "
	    "'-infinity', 0) ON CONFLICT (id) DO NOTHING; "
	    "SET lock_timeout = %d", (long long)PG_LEASE_DDL_KEY,
	    PG_LEASE_LOCK_MS);
	r = PQexec(c->pg, sql);
	if (pg_result_ok(c, r) == -1) {
		PQclear(r);
		if (!c->down)
			log_warnx("store: leader lease: making the table: %s",
			    c->err);
		return -1;
	}
	PQclear(r);
	/* Kept across reconnects (pg_setup). */
	c->busy_ms = PG_LEASE_LOCK_MS;
	c->lease_ready = true;
	return 0;
}

/* The holder's idle transaction on the lease row, if any, ended. */
static void
pg_lease_unblock(struct pg_conn *c)
{
	PGresult *r = pg_lease_run(c, "ending a stopped holder's transaction",
	    pg_lease_unblock_sql, 0, NULL);

	if (r == NULL)
		return;
	for (int i = 0; i < PQntuples(r); i++)
		log_warnx("store: leader lease: ended backend %s, idle in a "
		    "transaction on the lease (terminated: %s)",
		    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
	PQclear(r);
}

/* Give the lock back (the lease was lost while the connection lives). */
static void
pg_lease_drop(struct pg_conn *c)
{
	char sql[96];
	PGresult *r;

	c->leader = false;
	if (!c->locked || c->down)
		return;
	c->locked = false;
	(void)snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%lld)",
	    (long long)PG_LEADER_KEY);
	if ((r = pg_lease_run(c, "releasing the lock", sql, 0, NULL)) != NULL)
		PQclear(r);
}

/* Holding the lock: claim the lease.  1 claimed, 0 not (yet), -1. */
static int
pg_lease_claim(struct pg_conn *c, const struct store_lease *lease)
{
	const char *vals[1] = { lease->holder };
	PGresult *r = pg_lease_run(c, "claiming", pg_lease_claim_sql, 1, vals);

	if (r == NULL) {
		/* Waited for a transaction on the lease row: the last
		 * holder's allocation, its process perhaps stopped in it. */
		if (c->busy)
			pg_lease_unblock(c);
		return c->down ? -1 : 0;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		log_warnx("store: leader lease: the lease row is missing");
		return 0;
	}
	log_info("store: leader lease claimed (term %s, timeout %d ms)",
	    PQgetvalue(r, 0, 0), lease->timeout_ms);
	PQclear(r);
	return 1;
}

/* Not holding the lock: fence a holder that let the lease lapse.
 * 2 fenced now or the lease is vacant (ask again soon), 0 another
 * holds it, -1.  Vacant: the fenced backend has not exited yet (it is
 * ended with a signal, and under load it may not run for a while), so
 * its lock is still held; "another holds it" would put the next try
 * off by the follower's whole interval. */
static int
pg_lease_fence(struct pg_conn *c, const struct store_lease *lease)
{
	char ms[16], key[24];
	const char *vals[2] = { ms, key };
	PGresult *r;
	int rc = 0;

	(void)snprintf(ms, sizeof(ms), "%d", lease->timeout_ms);
	(void)snprintf(key, sizeof(key), "%lld", (long long)PG_LEADER_KEY);
	if ((r = pg_lease_run(c, "fencing", pg_lease_fence_sql, 2,
	    vals)) == NULL)
		return c->down ? -1 : 0;
	if (PQntuples(r) == 1) {
		log_warnx("store: leader lease: fenced the leader %s (backend "
		    "%s, lease not renewed for %s ms, over %d; terminated: "
		    "%s)", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
		    PQgetvalue(r, 0, 2), lease->timeout_ms,
		    PQgetvalue(r, 0, 3));
		rc = 2;
	}
	PQclear(r);
	if (rc == 2) {
		pg_lease_unblock(c);
		return 2;
	}
	if ((r = pg_lease_run(c, "reading the lease", pg_lease_vacant_sql, 0,
	    NULL)) == NULL)
		return c->down ? -1 : 0;
	if (PQntuples(r) == 1)
		rc = 2;
	PQclear(r);
	return rc;
}

/* Holding the lease: renew it when due.  1 held, 0 lost, -1. */
static int
pg_lease_renew(struct pg_conn *c, const struct store_lease *lease)
{
	const char *vals[1] = { lease->holder };
	int64_t now = pg_now_ms(), every = lease->timeout_ms / 5;
	PGresult *r;
	bool kept;

	if (now < c->renew_at)
		return 1;
	if ((r = pg_lease_run(c, "renewing", pg_lease_renew_sql, 1,
	    vals)) == NULL) {
		if (c->down)
			return -1;
		/* Tried again at the next call; a holder that cannot renew
		 * for a whole timeout is fenced by now: give it up. */
		if (now - c->renewed < lease->timeout_ms)
			return 1;
		log_warnx("store: leader lease: not renewed for %lld ms; "
		    "giving it up", (long long)(now - c->renewed));
		pg_lease_drop(c);
		return 0;
	}
	kept = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!kept) {
		log_warnx("store: leader lease: lost (another controller "
		    "fenced this one or took over)");
		pg_lease_drop(c);
		return 0;
	}
	c->renewed = now;
	c->renew_at = now + (every > 0 ? every : 1);
	return 1;
}

static int
pg_leader(void *conn, const struct store_lease *lease)
{
	struct pg_conn *c = conn;
	char sql[96];
	PGresult *r;
	int rc;

	if (pg_ensure(c) == -1)
		return -1;
	if (c->in_tx)
		return c->leader ? 1 : 0;
	if (pg_lease_setup(c) == -1)
		return c->down ? -1 : 0;
	if (c->leader)
		return pg_lease_renew(c, lease);
	if (!c->locked) {
		(void)snprintf(sql, sizeof(sql),
		    "SELECT pg_try_advisory_lock(%lld)",
		    (long long)PG_LEADER_KEY);
		if ((r = pg_lease_run(c, "taking the lock", sql, 0,
		    NULL)) == NULL)
			return c->down ? -1 : 0;
		c->locked = PQntuples(r) == 1 &&
		    strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (!c->locked)
			return pg_lease_fence(c, lease);
	}
	if ((rc = pg_lease_claim(c, lease)) != 1)
		return rc == 0 ? 2 : rc;        /* again soon: we hold the lock */
	c->leader = true;
	c->renewed = pg_now_ms();
	c->renew_at = c->renewed + (lease->timeout_ms / 5 > 0 ?
	    lease->timeout_ms / 5 : 1);
	return 1;
}

static int
pg_leader_check(void *conn, const char *holder)
{
	struct pg_conn *c = conn;
	const char *vals[1] = { holder };
	PGresult *r;
	int rc;

	if (c->down)
		return -1;
	r = PQexecParams(c->pg, pg_lease_check_sql, 1, NULL, vals, NULL, NULL,
	    0);
	if (pg_result_ok(c, r) == -1) {
		if (!c->down)
			log_warnx("store: leader lease: checking: %s", c->err);
		PQclear(r);
		return -1;
	}
	rc = PQntuples(r) == 1 ? 1 : 0;
	PQclear(r);
	return rc;
}

static int
pg_last_busy(void *conn)
{
	return ((struct pg_conn *)conn)->busy;
}

static const char *
pg_unavailable(void *conn)
{
	struct pg_conn *c = conn;

	return c->down ? c->cause : NULL;
}

const struct store_backend store_pg_backend = {
	.version = STORE_BACKEND_VERSION,
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.reset = pg_reset,
	.bind_int = pg_bind_int,
	.bind_text = pg_bind_text,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.column_int = pg_column_int,
	.column_text = pg_column_text,
	.column_blob = pg_column_blob,
	.column_is_null = pg_column_is_null,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.changes = pg_changes,
	.errmsg = pg_errmsg,
	.unavailable = pg_unavailable,
	.last_busy = pg_last_busy,
	.notify = pg_notify,
	.listen = pg_listen,
	.wait = pg_wait,
	.leader = pg_leader,
	.leader_check = pg_leader_check,
};
