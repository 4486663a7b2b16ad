/*
 * store_backend.h — the vtable between the engine-neutral store.c and one
 * database engine (store_sqlite.c, store_pg.c).
 *
 * store.c writes portable SQL with `?` placeholders; a backend rewrites
 * them if its engine needs another form ($1, $2 for libpq).  Statements and
 * connections are opaque pointers so no engine type leaves the backend.
 * Only store.c includes this header.
 */
#ifndef MESHWAN_STORE_BACKEND_H
#define MESHWAN_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#define STORE_BACKEND_VERSION 2

/* begin()'s answer when the database stayed locked by another writer. */
#define STORE_BE_BUSY (-2)
/* begin()'s answer when the database cannot be reached (unavailable()
 * says why). */
#define STORE_BE_UNAVAILABLE (-3)

/* Result of store_backend.step. */
enum store_step {
	STORE_STEP_ROW = 1,     /* a row is available through the column getters */
	STORE_STEP_DONE,        /* statement finished */
	STORE_STEP_CONSTRAINT,  /* a UNIQUE / FOREIGN KEY / CHECK constraint failed */
	STORE_STEP_ERROR,       /* anything else; errmsg says what */
};

/* The leader lease among controllers sharing one database (leader()). */
struct store_lease {
	const char *holder;     /* this process's change-log origin */
	int timeout_ms;         /* a holder that renewed no later than this
				   is fenced by the others */
};

struct store_backend {
	int version;            /* STORE_BACKEND_VERSION */
	const char *name;

	/* Connect; *conn is the backend's handle.  busy_ms: how long to wait
	 * for a lock held by another connection. */
	int (*open)(const char *path, int busy_ms, void **conn);
	void (*close)(void *conn);
	/* Run SQL without parameters or results (DDL, BEGIN, ...). */
	int (*exec)(void *conn, const char *sql);
	int (*prepare)(void *conn, const char *sql, void **stmt);
	void (*finalize)(void *stmt);
	/* Make a stepped statement runnable again, keeping it prepared;
	 * bindings are cleared. */
	int (*reset)(void *stmt);
	/* Parameters are 1-based, in `?` order. */
	int (*bind_int)(void *stmt, int idx, int64_t v);
	int (*bind_text)(void *stmt, int idx, const char *v);
	int (*bind_blob)(void *stmt, int idx, const void *v, size_t len);
	int (*bind_null)(void *stmt, int idx);
	enum store_step (*step)(void *stmt);
	/* Columns are 0-based; valid until the next step or finalize. */
	int64_t (*column_int)(void *stmt, int col);
	const char *(*column_text)(void *stmt, int col); /* "" for NULL */
	const void *(*column_blob)(void *stmt, int col, size_t *len);
	int (*column_is_null)(void *stmt, int col);
	/* Starts a write transaction: 0, -1, or STORE_BE_BUSY when another
	 * writer still held the database after the busy timeout. */
	int (*begin)(void *conn);
	int (*commit)(void *conn);
	int (*rollback)(void *conn);
	/* Rows changed by the last INSERT/UPDATE/DELETE on conn. */
	int64_t (*changes)(void *conn);
	/* Last engine error, for logs (never contains bound values). */
	const char *(*errmsg)(void *conn);
	/* NULL while the database is reachable, else why not (for the 503
	 * the API answers meanwhile).  May be NULL: always reachable. */
	const char *(*unavailable)(void *conn);
	/* Did the last failure come from waiting for another writer (lock
	 * timeout, serialization failure, deadlock)?  May be NULL. */
	int (*last_busy)(void *conn);
	/* Notifications between connections (NULL where the engine has
	 * none).  notify is sent in the current transaction (delivered at
	 * commit); listen subscribes this connection (kept across
	 * reconnects); wait blocks up to timeout_ms: 1 notified or
	 * reconnected (the caller reads what it missed), 0 timeout, -1
	 * unreachable. */
	int (*notify)(void *conn, const char *channel);
	int (*listen)(void *conn, const char *channel);
	int (*wait)(void *conn, int timeout_ms);
	/* The leader lease among controllers sharing the database (NULL:
	 * one controller, always the leader), held on this connection and
	 * renewed by calling it again (the backend knows when it is due):
	 * 1 this connection holds it (claimed now or before, renewed in
	 * time, and the connection was not lost since), 0 another
	 * connection holds it, 2 another held it, had not renewed it in
	 * lease->timeout_ms and was fenced just now, or nobody holds it
	 * (fenced, its backend not gone yet): ask again soon; -1
	 * unreachable. */
	int (*leader)(void *conn, const struct store_lease *lease);
	/* In the open transaction, before storing what only the leader
	 * stores: 1 the lease still names holder, unfenced, claimed before
	 * this transaction began, and it cannot move to another controller
	 * until this transaction ends; 0 it does not; -1 error.  NULL:
	 * always 1. */
	int (*leader_check)(void *conn, const char *holder);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

#endif
