/*
 * store_sqlite.c — the embedded sqlite backend of the store, and the only
 * file that includes sqlite3.h.
 *
 * Each connection runs in WAL mode (readers never block the writer) with
 * foreign keys enforced and a busy timeout (sqlite_busy), so a second
 * controller process or a backup tool holding a lock makes us wait
 * instead of fail.
 * Writes take the lock up front (BEGIN IMMEDIATE) so a transaction never
 * fails half-way with SQLITE_BUSY after it has read.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "controller/store_backend.h"
#include "lib/log.h"

static int
sqlite_exec(void *conn, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_debug("store", "sqlite: %s", msg != NULL ? msg : "?");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/*
 * Waiting for a lock another connection holds: sqlite's own busy timeout
 * sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries, so a REST write
 * that meets the session loop's 3 ms recompile resumed after 8 ms, not
 * 3.  The controller's own connections hold the lock for milliseconds:
 * try every 100 us for the first 10 ms, every 500 us for the next 50 ms,
 * then every 5 ms, up to busy_ms (the handler's argument) in all.
 */
static int
sqlite_busy(void *arg, int count)
{
	int64_t limit_us = (int64_t)(intptr_t)arg * 1000, spent, step;
	struct timespec ts;

	if (count < 100) {
		spent = (int64_t)count * 100;
		step = 100;
	} else if (count < 200) {
		spent = 10000 + (int64_t)(count - 100) * 500;
		step = 500;
	} else {
		spent = 60000 + (int64_t)(count - 200) * 5000;
		step = 5000;
	}
	if (spent >= limit_us)
		return 0;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)step * 1000;
	(void)nanosleep(&ts, NULL);
	return 1;
}

static int
sqlite_open(const char *path, int busy_ms, void **conn)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_warnx("store: cannot open %s: %s", path,
		    db != NULL ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	/* The timeout travels as the handler's argument: no allocation
	 * to outlive with the connection. */
	// NOLINTNEXTLINE(performance-no-int-to-ptr)
	sqlite3_busy_handler(db, sqlite_busy, (void *)(intptr_t)busy_ms);
	(void)sqlite3_extended_result_codes(db, 0);
	/* journal_mode returns a row; "memory" for in-memory databases. */
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("store: %s: cannot enable WAL: %s", path,
		    sqlite3_errmsg(db));
		sqlite3_finalize(st);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_finalize(st);
	if (sqlite_exec(db, "PRAGMA foreign_keys=ON") == -1) {
		log_warnx("store: %s: cannot enable foreign keys", path);
		sqlite3_close(db);
		return -1;
	}
	*conn = db;
	return 0;
}

static void
sqlite_close(void *conn)
{
	sqlite3_close(conn);
}

static int
sqlite_prepare(void *conn, const char *sql, void **stmt)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK) {
		log_warnx("store: prepare failed: %s", sqlite3_errmsg(conn));
		return -1;
	}
	*stmt = st;
	return 0;
}

static void
sqlite_finalize(void *stmt)
{
	sqlite3_finalize(stmt);
}

static int
sqlite_reset(void *stmt)
{
	(void)sqlite3_reset(stmt);
	return sqlite3_clear_bindings(stmt) == SQLITE_OK ? 0 : -1;
}

static int
sqlite_bind_int(void *stmt, int idx, int64_t v)
{
	return sqlite3_bind_int64(stmt, idx, v) == SQLITE_OK ? 0 : -1;
}

static int
sqlite_bind_text(void *stmt, int idx, const char *v)
{
	return sqlite3_bind_text(stmt, idx, v, -1, SQLITE_TRANSIENT) ==
	    SQLITE_OK ? 0 : -1;
}

static int
sqlite_bind_blob(void *stmt, int idx, const void *v, size_t len)
{
	return sqlite3_bind_blob64(stmt, idx, v, len, SQLITE_TRANSIENT) ==
	    SQLITE_OK ? 0 : -1;
}

static int
sqlite_bind_null(void *stmt, int idx)
{
	return sqlite3_bind_null(stmt, idx) == SQLITE_OK ? 0 : -1;
}

static enum store_step
sqlite_step(void *stmt)
{
	int rc = sqlite3_step(stmt);

	switch (rc & 0xff) {
	case SQLITE_ROW:
		return STORE_STEP_ROW;
	case SQLITE_DONE:
		return STORE_STEP_DONE;
	case SQLITE_CONSTRAINT:
		return STORE_STEP_CONSTRAINT;
	default:
		log_warnx("store: sqlite: %s",
		    sqlite3_errmsg(sqlite3_db_handle(stmt)));
		return STORE_STEP_ERROR;
	}
}

static int64_t
sqlite_column_int(void *stmt, int col)
{
	return sqlite3_column_int64(stmt, col);
}

static const char *
sqlite_column_text(void *stmt, int col)
{
	const unsigned char *t = sqlite3_column_text(stmt, col);

	return t != NULL ? (const char *)t : "";
}

static const void *
sqlite_column_blob(void *stmt, int col, size_t *len)
{
	const void *b = sqlite3_column_blob(stmt, col);

	*len = (size_t)sqlite3_column_bytes(stmt, col);
	return b;
}

static int
sqlite_column_is_null(void *stmt, int col)
{
	return sqlite3_column_type(stmt, col) == SQLITE_NULL;
}

static int
sqlite_begin(void *conn)
{
	if (sqlite_exec(conn, "BEGIN IMMEDIATE") == -1)
		return sqlite3_errcode(conn) == SQLITE_BUSY ? STORE_BE_BUSY : -1;
	return 0;
}

static int
sqlite_commit(void *conn)
{
	return sqlite_exec(conn, "COMMIT");
}

static int
sqlite_rollback(void *conn)
{
	/* Nothing to undo if sqlite already rolled back on an error. */
	if (sqlite3_get_autocommit(conn))
		return 0;
	return sqlite_exec(conn, "ROLLBACK");
}

static int64_t
sqlite_changes(void *conn)
{
	return sqlite3_changes(conn);
}

static const char *
sqlite_errmsg(void *conn)
{
	return sqlite3_errmsg(conn);
}

const struct store_backend store_sqlite_backend = {
	.version = STORE_BACKEND_VERSION,
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.exec = sqlite_exec,
	.prepare = sqlite_prepare,
	.finalize = sqlite_finalize,
	.reset = sqlite_reset,
	.bind_int = sqlite_bind_int,
	.bind_text = sqlite_bind_text,
	.bind_blob = sqlite_bind_blob,
	.bind_null = sqlite_bind_null,
	.step = sqlite_step,
	.column_int = sqlite_column_int,
	.column_text = sqlite_column_text,
	.column_blob = sqlite_column_blob,
	.column_is_null = sqlite_column_is_null,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.changes = sqlite_changes,
	.errmsg = sqlite_errmsg,
};
