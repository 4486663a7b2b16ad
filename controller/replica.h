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
 * The same thread holds the leader lease on that connection (claims,
 * renews, or fences a leader that stopped renewing it).
 * See controller/STORE.md, "Several controllers" and "The leader lease".
 */
#ifndef MESHWAN_REPLICA_H
#define MESHWAN_REPLICA_H

#include "controller/store.h"

struct replica;
struct sessions;

/* The leader lease timeout when none is given (config leader_lease). */
#define REPLICA_LEASE_DEFAULT_MS 10000

/*
 * opts: the store to follow (PostgreSQL); origin: this process's name in
 * the change log (store_set_origin on its other connections); lease_ms:
 * a leader that has not renewed its lease for this long is fenced by the
 * others (0: REPLICA_LEASE_DEFAULT_MS).  Reads the log's head now, so
 * call it before the session layer loads the model: nothing committed in
 * between is missed.  NULL on failure (logged).
 */
struct replica *replica_open(const struct store_opts *opts,
    const char *origin, int lease_ms);
/* Start delivering to s (session_notify). */
int replica_start(struct replica *r, struct sessions *s);
/* Stop the thread (within ~250 ms) and close; NULL safe. */
void replica_free(struct replica *r);

#endif
