/*
 * replica.h — follow the changes other controllers make to the same
 * PostgreSQL database.
 *
 * A thread with its own store connection LISTENs for the change log's
 * notifications, reads the log rows after the last one it saw (leaving
 * out this process's own: its session layer heard of those directly)
 * and hands the changed site ids to the session layer, which recompiles
 * them and updates its edges.  After a reconnect it reads everything it
 * missed from the table; a gap (rows pruned) means "everything".  No
 * polling of the table: the thread sleeps in poll() on the connection.
 * See controller/STORE.md, "Several controllers".
 */
#ifndef MESHWAN_REPLICA_H
#define MESHWAN_REPLICA_H

#include "controller/store.h"

struct replica;
struct sessions;

/*
 * opts: the store to follow (PostgreSQL); origin: this process's name in
 * the change log (store_set_origin on its other connections).  Reads the
 * log's head now, so call it before the session layer loads the model:
 * nothing committed in between is missed.  NULL on failure (logged).
 */
struct replica *replica_open(const struct store_opts *opts,
    const char *origin);
/* Start delivering to s (session_notify). */
int replica_start(struct replica *r, struct sessions *s);
/* Stop the thread (within ~250 ms) and close; NULL safe. */
void replica_free(struct replica *r);

#endif
