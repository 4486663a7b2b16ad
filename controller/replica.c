/*
 * replica.c — the change-log follower (replica.h).
 */
#include "controller/replica.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "controller/session.h"
#include "lib/log.h"
#include "lib/util.h"

/* How long one wait may block: bounds how late a stop is seen. */
#define REPLICA_WAIT_MS 250
/* How often a controller that is not the leader asks for the lease:
 * the longest a dead leader's duties (allocations, the time-based rekey
 * scan) wait for a successor, beyond the server noticing the dead
 * connection, or beyond the lease timeout of a stopped leader. */
#define REPLICA_LEADER_TRY_MS 1000
/* ... and how soon again after fencing a stopped leader (its lock goes
 * when its backend has exited) or while claiming the lease. */
#define REPLICA_LEADER_RETRY_MS 100

struct replica {
	struct store *st;
	struct sessions *sessions;
	char origin[33];
	int lease_ms;           /* leader lease timeout */
	uint64_t last;          /* newest change-log sequence number seen */
	pthread_t thread;
	bool started;
	bool leader;            /* last told to the session layer */
	uint64_t leader_try_ms; /* monotonic: next try for the lock */
	atomic_bool stop;
};

struct replica *
replica_open(const struct store_opts *opts, const char *origin,
    int lease_ms)
{
	struct replica *r = calloc(1, sizeof(*r));
	struct model_error err = { 0 };

	if (r == NULL)
		return NULL;
	atomic_init(&r->stop, false);
	(void)util_strcpy(r->origin, sizeof(r->origin), origin);
	r->lease_ms = lease_ms > 0 ? lease_ms : REPLICA_LEASE_DEFAULT_MS;
	if (store_open(opts, &r->st, &err) == -1 ||
	    store_changes_listen(r->st, &err) == -1 ||
	    store_changes_head(r->st, &r->last, &err) == -1) {
		log_warnx("replica: cannot follow the change log: %s",
		    err.message);
		store_close(r->st);
		free(r);
		return NULL;
	}
	store_set_origin(r->st, origin);
	return r;
}

/* Read what happened after r->last and tell the session layer. */
static void
replica_catch_up(struct replica *r)
{
	struct store_changes ch;
	struct model_error err = { 0 };

	if (store_changes_since(r->st, r->last, r->origin, &ch, &err) == -1) {
		log_debug("store", "replica: reading the change log: %s",
		    err.message);
		return;
	}
	if (ch.all) {
		log_info("replica: policy or crypto changed by another "
		    "controller (change %llu); recompiling everything",
		    (unsigned long long)ch.last);
		session_notify(r->sessions, NULL, 0);
	} else if (ch.n > 0) {
		util_sort_unique_u64(ch.sites, &ch.n);
		log_debug("session", "replica: %zu site(s) changed by another "
		    "controller, up to change %llu", ch.n,
		    (unsigned long long)ch.last);
		session_notify(r->sessions, ch.sites, ch.n);
	}
	if (ch.n_creds > 0 || ch.n_tunnels > 0) {
		log_debug("session", "replica: %zu site credential(s), %zu "
		    "tunnel epoch change(s) from another controller",
		    ch.n_creds, ch.n_tunnels);
		session_notify_events(r->sessions, ch.creds, ch.n_creds,
		    ch.tunnels, ch.n_tunnels);
	}
	if (ch.alloc)
		session_notify_alloc(r->sessions);
	r->last = ch.last;
	store_changes_free(&ch);
}

/*
 * Take, renew or keep the leader lease; tell the session layer when it
 * moves.  Losing it is told at once: the connection lost (a fenced
 * leader's backend was terminated) or the renewal refused.  The session
 * layer's allocations do not rely on hearing it in time: each one checks
 * the lease in its own transaction (store_leader_check).
 */
static void
replica_lead(struct replica *r, bool lost)
{
	uint64_t now = util_mono_ms();
	bool leader;
	int rc;

	if (lost) {
		leader = false;
	} else if (r->leader) {
		/* Renewed when due (the backend knows). */
		leader = store_leader(r->st, r->lease_ms) == 1;
	} else {
		if (now < r->leader_try_ms)
			return;
		rc = store_leader(r->st, r->lease_ms);
		r->leader_try_ms = now + (rc == 2 ? REPLICA_LEADER_RETRY_MS :
		    REPLICA_LEADER_TRY_MS);
		leader = rc == 1;
	}
	if (leader == r->leader)
		return;
	r->leader = leader;
	log_info("replica: this controller %s the leader (allocations, "
	    "time-based rekeys)", leader ? "is now" : "is no longer");
	session_set_leader(r->sessions, leader);
	/* Sites held back for the leader's allocations: ours now, at once
	 * (not at their next retry). */
	if (leader)
		session_notify_alloc(r->sessions);
}

static void *
replica_main(void *arg)
{
	struct replica *r = arg;

	while (!atomic_load(&r->stop)) {
		uint64_t now = util_mono_ms();
		int wait = REPLICA_WAIT_MS, rc;

		/* A retry due sooner (after fencing a stopped leader). */
		if (!r->leader && r->leader_try_ms > now &&
		    r->leader_try_ms - now < (uint64_t)wait)
			wait = (int)(r->leader_try_ms - now);
		rc = store_changes_wait(r->st, wait);

		if (rc == 1)
			replica_catch_up(r);
		replica_lead(r, rc == -1);
	}
	return NULL;
}

int
replica_start(struct replica *r, struct sessions *s)
{
	r->sessions = s;
	/* Anything committed since replica_open. */
	replica_catch_up(r);
	replica_lead(r, false);
	if (pthread_create(&r->thread, NULL, replica_main, r) != 0) {
		log_warnx("replica: cannot start the thread");
		return -1;
	}
	r->started = true;
	return 0;
}

void
replica_free(struct replica *r)
{
	if (r == NULL)
		return;
	atomic_store(&r->stop, true);
	if (r->started)
		(void)pthread_join(r->thread, NULL);
	store_close(r->st);
	free(r);
}
