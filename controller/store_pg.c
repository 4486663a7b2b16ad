/*
 * store_pg.c — the PostgreSQL backend of the store (libpq), and the only
 * file that includes libpq-fe.h.
 *
 * The connection string is libpq's own, passed through unchanged: a URI
 * (postgresql://h1,h2/db?target_session_attrs=read-write) or key=value
 * pairs, so several hosts and "find the primary" are libpq's business.
 * We only add defaults the string may override: connect_timeout=2 (libpq's
 * smallest; a reconnect blocks its thread at most that long per host)
 * and application_name.
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
	bool leader;                /* holds the leader lock (this session) */
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
	char sql[96];
	PGresult *r;
	int ok;

	PQsetNoticeProcessor(c->pg, pg_notice, NULL);
	(void)snprintf(sql, sizeof(sql), "SET lock_timeout = %d", c->busy_ms);
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
	c->leader = false;          /* the session and its locks are gone */
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
	c->leader = false;
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
	 * anything it says overrides the defaults before it. */
	const char *const keys[] = { "connect_timeout", "application_name",
	    "dbname", NULL };
	const char *const vals[] = { "2", "meshwan-controller", conninfo,
	    NULL };
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
	c->leader = false;
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

/* The leader lock: a session-level advisory lock, so PostgreSQL itself
 * releases it when the holder's connection ends (its process killed,
 * its host gone: once the server sees the connection closed). */
#define PG_LEADER_KEY 0x6d657368776e4c31LL    /* "meshwnL1" */

static int
pg_leader(void *conn)
{
	struct pg_conn *c = conn;
	char sql[96];
	PGresult *r;
	int rc;

	if (pg_ensure(c) == -1)
		return -1;
	if (c->leader)
		return 1;
	if (c->in_tx)
		return 0;
	(void)snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%lld)",
	    (long long)PG_LEADER_KEY);
	r = PQexec(c->pg, sql);
	if (pg_result_ok(c, r) == -1) {
		PQclear(r);
		return -1;
	}
	rc = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	c->leader = rc == 1;
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
};
