/*
 * session.c — edge sessions: the life of each edge's Session stream
 * (open, hello, acks, close, backpressure), sending and pushing intents,
 * keepalives and the loop's timers, the API thread's notifications, and
 * the sessions object itself.
 *
 * The rest of the session layer is split by concern, all sharing
 * struct sessions (session_int.h, which also holds the invariants):
 *  - session_intent.c: intent versions, history, patches, recompiles;
 *  - session_rekey.c:  the SA epoch (rekey) state machine;
 *  - session_keys.c:   certificates and peers' epoch keys;
 *  - session_status.c: edges' status reports as the REST API's JSON.
 * This file is where a stream's events enter; it hands each to its file.
 */
#include "controller/session.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "controller/ca.h"
#include "controller/epochs.h"
#include "controller/intent.h"
#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/session_int.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define SESSION_METHOD "/meshwan.v1.Edge/Session"
#define SESSION_ACK_FLUSH_MS 100    /* acks reach the store this often */
#define SESSION_REKEY_SCAN_MS 5000
#define SESSION_RESYNC_SCAN_MS 1000 /* deferred resyncs are checked */

/*
 * What one enrolled edge may cost (controller/CONTROLLER.md, "One edge
 * cannot hurt the others").  Per site: streams that have not said hello
 * yet (each is cancelled after hello_timeout by the rpc layer), replaced
 * streams still closing (each ends within the rpc close deadline), and
 * token buckets for what makes the controller work for others or answer
 * with much more than was sent.
 */
#define SESSION_PREHELLO_MAX 4
#define SESSION_CLOSING_MAX 1
/* Snapshots to new hellos while all streams' queues hold less (default of
 * session_admit_bytes); the others get a Backoff of 1 to this many s. */
#define SESSION_ADMIT_BYTES (64ull << 20)
#define SESSION_ADMIT_RETRY_S 10
#define SESSION_LIMIT_LOG_MS 10000
/* Failed or wrong acks logged per edge per SESSION_LIMIT_LOG_MS. */
#define SESSION_ACK_LOG_BURST 5

struct session_limit {
	const char *what;           /* for the log line */
	uint32_t burst;
	uint32_t per_ms;            /* one more token this often */
};

/* A failed or wrong-hash ack is answered by a full snapshot (150-260x
 * the bytes of the ack): 4 at once, then one per 10 s; more wait. */
static const struct session_limit session_lim_resync = {
	"resyncs", 4, 10000 };
/* A key announcement costs a signature check and a PeerKeys plus an
 * intent version for every peer: 4 at once, then one a minute. */
static const struct session_limit session_lim_key = {
	"key announcements", 4, 60000 };
/* A status report costs its JSON and a store write: 5 at once, then one
 * every 2 s; of the rest only the latest is kept, and applied when a
 * token is back (session_resyncs). */
static const struct session_limit session_lim_status = {
	"status reports", 5, 2000 };
/* Only for the log line of refused streams. */
static const struct session_limit session_lim_streams = {
	"streams without hello", SESSION_PREHELLO_MAX, 1 };

/* ------------------------------------------------------------------ */
/* Edge table */

static size_t
session_slot(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 7) & (cap - 1);
}

struct edge *
session_edge_find(const struct sessions *s, uint64_t id)
{
	if (s->tab_cap == 0)
		return NULL;
	for (size_t i = session_slot(id, s->tab_cap);; i = (i + 1) &
	     (s->tab_cap - 1)) {
		if (s->tab[i].e == NULL)
			return NULL;
		if (s->tab[i].e->site_id == id)
			return s->tab[i].e;
	}
}

static int
session_tab_grow(struct sessions *s)
{
	size_t cap = s->tab_cap ? s->tab_cap * 2 : 64;
	struct edge_slot *t = calloc(cap, sizeof(*t));

	if (t == NULL)
		return -1;
	for (size_t i = 0; i < s->tab_cap; i++) {
		size_t j;

		if (s->tab[i].e == NULL)
			continue;
		for (j = session_slot(s->tab[i].e->site_id, cap); t[j].e != NULL;
		     j = (j + 1) & (cap - 1))
			;
		t[j] = s->tab[i];
	}
	free(s->tab);
	s->tab = t;
	s->tab_cap = cap;
	return 0;
}

struct edge *
session_edge_get(struct sessions *s, uint64_t id)
{
	struct edge *e = session_edge_find(s, id);
	size_t j;

	if (e != NULL)
		return e;
	if ((s->tab_used + 1) * 2 > s->tab_cap && session_tab_grow(s) == -1)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->site_id = id;
	for (j = session_slot(id, s->tab_cap); s->tab[j].e != NULL;
	     j = (j + 1) & (s->tab_cap - 1))
		;
	s->tab[j].e = e;
	s->tab_used++;
	return e;
}

static void
session_edge_free(struct edge *e)
{
	session_intent_hist_clear(e);
	free(e->hist);
	msg_intent_free(&e->cur);
	free(e->digests);
	msg_blob_free(&e->cert);
	free(e->dropped);
	free(e->status);
	free(e->status_wait);
	free(e->rq);
	free(e);
}

/* ------------------------------------------------------------------ */
/* Small helpers */

/* Wall-clock seconds, moved by the test-only clock offset (config
 * key test_clock_offset), so tests can age SA epochs without waiting. */
int64_t
session_now(const struct sessions *s)
{
	return (int64_t)time(NULL) + (int64_t)s->cfg.clock_offset_s;
}

const struct model_site *
session_site(const struct sessions *s, uint64_t id)
{
	size_t lo = 0, hi = s->n_sites;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->sites[mid].id == id)
			return &s->sites[mid];
		if (s->sites[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Append id unless it is there already (the lists stay short). */
static int
session_ids_add_once(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == id)
			return 0;
	return session_ids_add(v, n, cap, id);
}

void
session_mark_dirty(struct sessions *s, uint64_t id)
{
	if (session_ids_add_once(&s->dirty, &s->n_dirty, &s->cap_dirty, id) ==
	    -1)
		s->dirty_all = true; /* degrade to a full compile */
}

void
session_mark_rebuild(struct sessions *s, uint64_t id)
{
	if (session_ids_add_once(&s->rebuild, &s->n_rebuild, &s->cap_rebuild,
	    id) == -1)
		session_mark_dirty(s, id); /* recompiled instead */
}

void
session_arm_flush(struct sessions *s)
{
	if (s->flush_at == 0)
		s->flush_at = util_mono_ms() + s->cfg.coalesce_ms;
}

/* ------------------------------------------------------------------ */
/* Sending */

int
session_send(struct sessions *s, struct edge *e,
    const struct msg_controller_message *m, enum metrics_rpc what)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	if (e->stream == NULL)
		return -1;
	if (pbconv_encode_controller_message(m, &buf, &len) == -1) {
		log_warnx("session: site %" PRIu64 ": cannot encode a message "
		    "(kind %d)", e->site_id, (int)m->kind);
		return -1;
	}
	if (rpc_stream_send(e->stream, buf, len) == -1) {
		free(buf);
		if (errno == ENOBUFS) {
			/* Backpressure: whatever was queued is stale by the
			 * time it drains; start over with a snapshot. */
			log_warnx("session: site %" PRIu64 ": send queue full; "
			    "full resync when it drains", e->site_id);
			e->blocked = true;
			e->need_snapshot = true;
		}
		return -1;
	}
	free(buf);
	if (s->metrics) {
		metrics_bytes_sent(s->metrics, len);
		if (what != METRICS_RPC_MAX)
			metrics_rpc_inc(s->metrics, what);
	}
	return 0;
}

void
session_push(struct sessions *s, struct edge *e)
{
	struct msg_controller_message m;
	int r = 1;

	if (e->stream == NULL || !e->hello || e->blocked || !e->live ||
	    e->cur.version == 0)
		return;
	if (!e->need_snapshot && e->base == e->cur.version)
		return;
	memset(&m, 0, sizeof(m));
	if (!e->need_snapshot && e->base > 0 && e->base < e->cur.version) {
		r = session_intent_delta(e, &m.u.delta);
		if (r == 0) {
			m.kind = MSG_CONTROLLER_DELTA;
			if (session_send(s, e, &m, METRICS_RPC_DELTA_SENT) == 0) {
				log_debug("session", "site %" PRIu64 ": delta %"
				    PRIu64 " -> %" PRIu64 " (%zu up, %zu rm)",
				    e->site_id, e->base, e->cur.version,
				    m.u.delta.n_upsert, m.u.delta.n_remove);
				e->base = e->cur.version;
			}
			free(m.u.delta.upsert);
			free(m.u.delta.remove);
			return;
		}
		if (r == -1)
			return;
	}
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	m.u.snapshot = e->cur; /* shallow: encoded only */
	if (session_send(s, e, &m, METRICS_RPC_SNAPSHOT_SENT) == 0) {
		log_debug("session", "site %" PRIu64 ": snapshot %" PRIu64
		    " (%zu tunnels)", e->site_id, e->cur.version,
		    e->cur.n_tunnels);
		e->base = e->cur.version;
		e->need_snapshot = false;
	}
}

/* ------------------------------------------------------------------ */
/* Notifications from the API thread */

void
session_notify(struct sessions *s, const uint64_t *ids, size_t n)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	if (n == 0) {
		s->pending_all = true;
	} else if (s->n_pending + n > s->cap_pending) {
		size_t cap = (s->n_pending + n) * 2;
		uint64_t *p = realloc(s->pending, cap * sizeof(*p));

		if (p == NULL) {
			s->pending_all = true;
		} else {
			s->pending = p;
			s->cap_pending = cap;
		}
	}
	if (n > 0 && s->n_pending + n <= s->cap_pending) {
		memcpy(s->pending + s->n_pending, ids, n * sizeof(*ids));
		s->n_pending += n;
	}
	pthread_mutex_unlock(&s->lock);
	if (write(s->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("session: wake");
}

/* Append n ids to a pending list under s->lock; false on ENOMEM. */
static bool
session_pending_add(uint64_t **v, size_t *n, size_t *cap, const uint64_t *ids,
    size_t k)
{
	if (*n + k > *cap) {
		size_t c = (*n + k) * 2;
		uint64_t *p = realloc(*v, c * sizeof(*p));

		if (p == NULL)
			return false;
		*v = p;
		*cap = c;
	}
	if (k > 0)
		memcpy(*v + *n, ids, k * sizeof(*ids));
	*n += k;
	return true;
}

void
session_notify_events(struct sessions *s, const uint64_t *creds,
    size_t n_creds, const uint64_t *tunnels, size_t n_tunnels)
{
	uint64_t one = 1;
	bool ok;

	if (n_creds == 0 && n_tunnels == 0)
		return;
	pthread_mutex_lock(&s->lock);
	ok = session_pending_add(&s->pending_creds, &s->n_pending_creds,
	    &s->cap_pending_creds, creds, n_creds) &&
	    session_pending_add(&s->pending_tunnels, &s->n_pending_tunnels,
	    &s->cap_pending_tunnels, tunnels, n_tunnels);
	if (!ok)
		s->pending_all = true;  /* a reload reads everything */
	pthread_mutex_unlock(&s->lock);
	if (write(s->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("session: wake");
}

void
session_notify_alloc(struct sessions *s)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	s->pending_alloc = true;
	pthread_mutex_unlock(&s->lock);
	if (write(s->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("session: wake");
}

void
session_set_leader(struct sessions *s, bool leader)
{
	atomic_store(&s->leader, leader);
}

bool
session_local(const struct sessions *s, const struct edge *e)
{
	return !s->replicated || (e->stream != NULL && e->hello);
}

int
session_wake_fd(const struct sessions *s)
{
	return s->efd;
}

void
session_wake(struct sessions *s)
{
	struct rekey_req *rk;
	uint64_t *creds, *tunnels;
	size_t nrk, ncreds, ntunnels;
	uint64_t v;
	bool alloc;

	if (read(s->efd, &v, sizeof(v)) == -1 && errno != EAGAIN)
		log_warn("session: eventfd");
	pthread_mutex_lock(&s->lock);
	if (s->pending_all)
		s->dirty_all = true;
	for (size_t i = 0; i < s->n_pending; i++)
		session_mark_dirty(s, s->pending[i]);
	s->n_pending = 0;
	s->pending_all = false;
	rk = s->pending_rekey;
	nrk = s->n_pending_rekey;
	s->pending_rekey = NULL;
	s->n_pending_rekey = s->cap_pending_rekey = 0;
	creds = s->pending_creds;
	ncreds = s->n_pending_creds;
	s->pending_creds = NULL;
	s->n_pending_creds = s->cap_pending_creds = 0;
	tunnels = s->pending_tunnels;
	ntunnels = s->n_pending_tunnels;
	s->pending_tunnels = NULL;
	s->n_pending_tunnels = s->cap_pending_tunnels = 0;
	alloc = s->pending_alloc;
	s->pending_alloc = false;
	pthread_mutex_unlock(&s->lock);
	/* Waiting for the leader's allocations: they are in. */
	if (alloc && (s->reload || s->n_dirty > 0 || s->dirty_all))
		s->flush_at = util_mono_ms();
	for (size_t i = 0; i < nrk; i++)
		session_rekey_requested(s, &rk[i]);
	free(rk);
	if (creds != NULL) {
		util_sort_unique_u64(creds, &ncreds);
		for (size_t i = 0; i < ncreds; i++)
			session_keys_follow(s, creds[i]);
		free(creds);
	}
	if (tunnels != NULL) {
		util_sort_unique_u64(tunnels, &ntunnels);
		for (size_t i = 0; i < ntunnels; i++)
			session_rekey_follow(s, tunnels[i]);
		free(tunnels);
	}
	if (s->dirty_all || s->n_dirty > 0)
		session_arm_flush(s);
}

/* ------------------------------------------------------------------ */
/* Limits */

static void
session_bucket_refill(struct session_bucket *b, const struct session_limit *l,
    uint64_t now)
{
	uint64_t add;

	if (!b->init) {
		b->init = true;
		b->tokens = l->burst;
		b->refill_ms = now;
		return;
	}
	if (b->tokens >= l->burst) {
		b->refill_ms = now;
		return;
	}
	add = (now - b->refill_ms) / l->per_ms;
	if (add >= l->burst - b->tokens) {
		b->tokens = l->burst;
		b->refill_ms = now;
	} else if (add > 0) {
		b->tokens += (uint32_t)add;
		b->refill_ms += add * l->per_ms;
	}
}

/* Counts a refusal; logs at most once per SESSION_LIMIT_LOG_MS. */
static void
session_limit_note(struct session_bucket *b, const struct session_limit *l,
    uint64_t site, uint64_t now)
{
	b->refused++;
	if (b->logged_ms != 0 && now - b->logged_ms < SESSION_LIMIT_LOG_MS)
		return;
	log_warnx("session: site %" PRIu64 ": %s over the limit (%u, then "
	    "one per %u ms): %" PRIu64 " refused in the last %u s", site,
	    l->what, l->burst, l->per_ms, b->refused,
	    SESSION_LIMIT_LOG_MS / 1000);
	b->refused = 0;
	b->logged_ms = now;
}

/* One token for what e asks; false (counted, logged) when none is left. */
static bool
session_limit_take(struct session_bucket *b, const struct session_limit *l,
    const struct edge *e)
{
	uint64_t now = util_mono_ms();

	session_bucket_refill(b, l, now);
	if (b->tokens > 0) {
		b->tokens--;
		return true;
	}
	session_limit_note(b, l, e->site_id, now);
	return false;
}

/* Keep a refused status report, superseding the one kept before. */
static void
session_status_keep(struct edge *e, const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (copy == NULL)
		return;             /* the next report supersedes anyway */
	memcpy(copy, buf, len);
	free(e->status_wait);
	e->status_wait = copy;
	e->status_wait_len = len;
}

/* Apply a kept status report once the edge has a token again. */
static void
session_status_kept(struct sessions *s, struct edge *e, uint64_t now)
{
	struct msg_edge_message m;
	char err[PBCONV_ERR_LEN];

	session_bucket_refill(&e->rl_status, &session_lim_status, now);
	if (e->rl_status.tokens == 0)
		return;
	e->rl_status.tokens--;
	if (pbconv_decode_edge_message(e->status_wait, e->status_wait_len,
	    &m, err, sizeof(err)) == 0) {
		if (m.kind == MSG_EDGE_STATUS)
			session_status_save(s, e, &m.u.status);
		msg_edge_message_free(&m);
	}
	free(e->status_wait);
	e->status_wait = NULL;
	e->status_wait_len = 0;
}

/* A full snapshot for e, now if its resync budget allows, else later
 * (session_resyncs). */
static void
session_resync(struct sessions *s, struct edge *e)
{
	e->need_snapshot = true;
	if (!session_limit_take(&e->rl_resync, &session_lim_resync, e)) {
		e->resync_wait = true;
		return;
	}
	e->resync_wait = false;
	session_push(s, e);
}

/* Deferred resyncs and kept status reports whose edge has a token
 * again. */
static void
session_resyncs(struct sessions *s)
{
	uint64_t now = util_mono_ms();

	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL)
			continue;
		if (e->status_wait != NULL)
			session_status_kept(s, e, now);
		if (!e->resync_wait)
			continue;
		if (e->stream == NULL || !e->hello || !e->need_snapshot) {
			e->resync_wait = false;
			continue;
		}
		session_bucket_refill(&e->rl_resync, &session_lim_resync, now);
		if (e->blocked || e->rl_resync.tokens == 0)
			continue;
		e->rl_resync.tokens--;
		e->resync_wait = false;
		session_push(s, e);
	}
}

/* ------------------------------------------------------------------ */
/* Timers */

/* Whether e has state waiting for the group commit. */
static bool
session_edge_pending(const struct edge *e)
{
	return e != NULL && (e->applied_dirty || e->conn_dirty ||
	    e->status != NULL || e->keys_dirty || e->failure_dirty);
}

/* e's waiting state into the open transaction. */
static int
session_flush_edge(struct sessions *s, struct edge *e, struct model_error *err)
{
	if (session_site(s, e->site_id) == NULL)
		return 0; /* deleted: its row went with it */
	if (e->applied_dirty && store_edge_set_applied(s->st, e->site_id,
	    e->applied, e->applied_hash, MSG_HASH_LEN, err) == -1)
		return -1;
	if (e->conn_dirty && store_edge_set_connected(s->st, e->site_id,
	    e->connected, e->connected_at, e->software_version, err) == -1)
		return -1;
	if (e->status != NULL && store_edge_set_status(s->st, e->site_id,
	    e->status, e->status_len, e->status_at, err) == -1)
		return -1;
	if (e->keys_dirty && session_keys_save(s, e) == -1)
		return -1;
	if (e->failure_dirty && store_edge_set_failure(s->st, e->site_id,
	    &e->failure, err) == -1)
		return -1;
	return 0;
}

/* e's waiting state was committed (stored) or given up (logged). */
static void
session_edge_flushed(struct sessions *s, struct edge *e, bool stored)
{
	bool keys = e->keys_dirty;

	e->applied_dirty = false;
	e->conn_dirty = false;
	e->keys_dirty = false;
	e->failure_dirty = false;
	free(e->status);
	e->status = NULL;
	e->status_len = 0;
	if (keys && stored)
		session_keys_relay(s, e);
}

/*
 * SAs move to the new keys relayed by this flush, after every edge's
 * PeerKeys went out and the peers' intents carrying the keys were
 * rebuilt and pushed (not waiting for the coalescing delay): a peer that
 * was not connected when a key was relayed learns it from its intent,
 * and a rekey order must never reach an edge before the key it names.
 */
static void
session_flush_rekeys(struct sessions *s)
{
	bool any = false;

	for (size_t i = 0; i < s->tab_cap && !any; i++)
		any = s->tab[i].e != NULL && s->tab[i].e->rekey_on_key;
	if (!any)
		return;
	session_intent_rebuild(s);
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL || !e->rekey_on_key)
			continue;
		e->rekey_on_key = false;
		session_rekey_site(s, e->site_id, MSG_REKEY_REASON_KEY);
	}
}

/*
 * Group commit: acks, connection state, status reports and announced
 * keys of every edge in one transaction (one fsync), instead of one per
 * message on the event loop.  Runs every SESSION_ACK_FLUSH_MS, before
 * any intent compile (so keys an intent carries are stored first) and at
 * shutdown.  When the store is busy everything waits for the next
 * round; when one edge's write fails the batch (say its site was just
 * deleted), each edge is written alone so the others' are kept.
 */
static void
session_flush(struct sessions *s)
{
	struct model_error err = { 0 };
	bool any = false;

	for (size_t i = 0; i < s->tab_cap; i++)
		any |= session_edge_pending(s->tab[i].e);
	if (!any || store_begin(s->st, &err) == -1)
		return;
	for (size_t i = 0; i < s->tab_cap; i++)
		if (session_edge_pending(s->tab[i].e))
			(void)session_flush_edge(s, s->tab[i].e, &err);
	if (store_commit(s->st, &err) == 0) {
		for (size_t i = 0; i < s->tab_cap; i++)
			if (session_edge_pending(s->tab[i].e))
				session_edge_flushed(s, s->tab[i].e, true);
		session_flush_rekeys(s);
		return;
	}
	log_warnx("session: group commit failed (%s); storing edge by edge",
	    err.message);
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;
		bool stored;

		if (!session_edge_pending(e))
			continue;
		memset(&err, 0, sizeof(err));
		if (store_begin(s->st, &err) == -1) {
			stored = false;
		} else {
			(void)session_flush_edge(s, e, &err);
			stored = store_commit(s->st, &err) == 0;
		}
		if (!stored)
			log_warnx("session: site %" PRIu64 ": state not stored: "
			    "%s", e->site_id, err.message);
		session_edge_flushed(s, e, stored);
	}
	session_flush_rekeys(s);
}

static void
session_keepalives(struct sessions *s)
{
	struct msg_controller_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_KEEPALIVE;
	m.u.keepalive.controller_time = (uint64_t)session_now(s);
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e != NULL && e->stream != NULL && e->hello && !e->blocked)
			session_send(s, e, &m, METRICS_RPC_MAX);
	}
}

/* ------------------------------------------------------------------ */
/* Streams and the certificates they were opened with */

static void
session_conn_end(struct conn *c, const char *why)
{
	if (c->ending)
		return;
	c->ending = true;
	rpc_stream_close(c->st, RPC_UNAUTHENTICATED, why);
}

void
session_conns_retire(struct sessions *s, uint64_t site_id,
    const uint8_t keep[RPC_CERT_FP_LEN], const char *why)
{
	for (struct conn *c = s->conns; c != NULL; c = c->next)
		if (c->cert_site == site_id && !c->ending &&
		    memcmp(c->cert_fp, keep, RPC_CERT_FP_LEN) != 0) {
			log_info("session: site %" PRIu64 ": closing a stream "
			    "on an old certificate (%s)", site_id, why);
			session_conn_end(c, why);
		}
}

/* Expiry on open streams: the TLS handshake checks it only once. */
static void
session_conns_expire(struct sessions *s)
{
	int64_t now = (int64_t)time(NULL), next = 0;

	for (struct conn *c = s->conns; c != NULL; c = c->next) {
		if (c->ending)
			continue;
		if (c->cert_not_after <= now) {
			log_info("session: site %" PRIu64 ": certificate expired "
			    "(notAfter %" PRId64 "); closing its stream",
			    c->cert_site, c->cert_not_after);
			session_conn_end(c, "certificate expired");
		} else if (next == 0 || c->cert_not_after < next)
			next = c->cert_not_after;
	}
	s->next_cert_expiry = next;
}

int
session_timeout_ms(const struct sessions *s)
{
	uint64_t now = util_mono_ms(), next = s->next_keepalive;

	if (s->next_cert_expiry != 0) {
		int64_t left = s->next_cert_expiry - (int64_t)time(NULL);
		uint64_t at = now + (left > 0 ? (uint64_t)left * 1000 : 0);

		if (at < next)
			next = at;
	}

	if (s->flush_at != 0 && s->flush_at < next)
		next = s->flush_at;
	if (s->next_ack_flush < next)
		next = s->next_ack_flush;
	if (s->next_rekey_scan < next)
		next = s->next_rekey_scan;
	if (s->next_resync_scan < next)
		next = s->next_resync_scan;
	return next <= now ? 0 : (int)(next - now);
}

void
session_tick(struct sessions *s)
{
	uint64_t now = util_mono_ms();

	bool compile = s->flush_at != 0 && now >= s->flush_at;

	if (compile || now >= s->next_ack_flush) {
		session_flush(s);
		s->next_ack_flush = now + SESSION_ACK_FLUSH_MS;
	}
	if (compile) {
		s->flush_at = 0;        /* a recompile may arm its own retry */
		if (s->dirty_all || s->n_dirty > 0)
			session_intent_recompile(s);
		session_intent_rebuild(s);
		session_intent_retunnel(s);
	}
	if (now >= s->next_keepalive) {
		session_keepalives(s);
		s->next_keepalive = now + s->cfg.keepalive_s * 1000ull;
	}
	if (now >= s->next_rekey_scan) {
		session_keys_expire(s);
		/* Several controllers: only the leader starts time-based
		 * rekeys (the others learn them from the change log). */
		if (!s->replicated || atomic_load(&s->leader))
			session_rekey_scan(s);
		s->next_rekey_scan = now + SESSION_REKEY_SCAN_MS;
	}
	if (now >= s->next_resync_scan) {
		session_resyncs(s);
		s->next_resync_scan = now + SESSION_RESYNC_SCAN_MS;
	}
	if (s->metrics) {
		uint64_t commits, statements;

		store_counters(s->st, &commits, &statements);
		metrics_loop_store(s->metrics, commits, statements);
	}
	if (s->next_cert_expiry != 0 &&
	    (int64_t)time(NULL) >= s->next_cert_expiry)
		session_conns_expire(s);
}

/* ------------------------------------------------------------------ */
/* Stream handlers */

/*
 * The database is unreachable (err): a stream is accepted only when
 * memory proves what the store would: the site is live in the model as
 * last read, and the certificate is exactly the site's active one (its
 * DER is in memory, shared with its peers' intents), unexpired.  Anything
 * else needs the store (a renewed certificate's promotion is a write):
 * refused UNAVAILABLE, the edge retries with its backoff.
 */
static int
session_open_from_memory(struct sessions *s, const struct rpc_peer *peer,
    uint64_t id, const struct model_error *err)
{
	const struct model_site *ms = session_site(s, id);
	const struct edge *e = session_edge_find(s, id);
	struct ca_cert_info ci;

	if (ms == NULL || ms->revoked || e == NULL || !e->live ||
	    e->cert.len == 0 ||
	    ca_cert_info(e->cert.data, e->cert.len, &ci) == -1 ||
	    memcmp(ci.sha256, peer->cert_sha256, RPC_CERT_FP_LEN) != 0 ||
	    peer->not_after <= (int64_t)time(NULL)) {
		log_warnx("session: refused %s (%s) for now: %s, and memory "
		    "cannot vouch for this certificate", peer->addr, peer->cn,
		    err->message);
		return RPC_UNAVAILABLE;
	}
	log_info("session: %s (%s): %s; its certificate is the site's "
	    "active one in memory: accepted", peer->addr, peer->cn,
	    err->message);
	return RPC_OK;
}

static int
session_on_open(struct rpc_stream *st, const struct rpc_peer *peer, void *arg)
{
	struct sessions *s = arg;
	struct model_site ms;
	struct model_error err = { 0 };
	struct store_cert *rec;
	struct conn *c;
	struct edge *e;
	uint64_t id;
	int rc;
	bool down = false;

	if (s->shutting_down)
		return RPC_UNAVAILABLE;
	if (!peer->verified || ca_identity_site(peer->cn, &id) == -1) {
		log_warnx("session: refused %s: certificate identity \"%s\" is "
		    "not a site", peer->addr, peer->cn);
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		return RPC_PERMISSION_DENIED;
	}
	/* The store is the revocation list: checked on every open.  While
	 * the database is unreachable, memory stands in for it (below). */
	if (store_site_get(s->st, id, &ms, &err) == -1 &&
	    err.code == MODEL_E_BUSY) {
		rc = session_open_from_memory(s, peer, id, &err);
		if (rc != RPC_OK)
			return rc;
		down = true;
	} else if (err.code != MODEL_OK || ms.revoked) {
		log_warnx("session: refused %s (%s): site %s", peer->addr,
		    peer->cn, err.code == MODEL_E_NOT_FOUND ? "deleted" :
		    err.code != MODEL_OK ? err.message : "revoked");
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		return RPC_PERMISSION_DENIED;
	}
	/* Streams without a hello yet are bounded per identity: one
	 * certificate cannot fill max_streams (each also ends after
	 * hello_timeout). */
	if ((e = session_edge_get(s, id)) == NULL)
		return RPC_RESOURCE_EXHAUSTED;
	if (e->n_prehello >= SESSION_PREHELLO_MAX) {
		session_limit_note(&e->rl_streams, &session_lim_streams, id,
		    util_mono_ms());
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		return RPC_RESOURCE_EXHAUSTED;
	}
	/*
	 * The exact certificate issued last for the site (or its renewal),
	 * not any certificate with the right CN: re-enrollment and renewal
	 * retire the others.
	 */
	if (down)
		goto accept;
	if ((rec = malloc(sizeof(*rec))) == NULL)
		return RPC_RESOURCE_EXHAUSTED;
	rc = store_cert_get(s->st, peer->cert_sha256, rec, &err);
	if (rc == -1 && err.code == MODEL_E_BUSY) {
		free(rec);
		if ((rc = session_open_from_memory(s, peer, id, &err)) != RPC_OK)
			return rc;
		goto accept;
	}
	if (rc == -1 && err.code != MODEL_E_NOT_FOUND) {
		log_warnx("session: refused %s (%s) for now: %s", peer->addr,
		    peer->cn, err.message);
		free(rec);
		return RPC_UNAVAILABLE;
	}
	if (rc == -1 || rec->site_id != id ||
	    peer->not_after <= (int64_t)time(NULL)) {
		log_warnx("session: refused %s (%s): certificate serial %s is "
		    "%s", peer->addr, peer->cn, peer->serial,
		    rc == 0 && rec->site_id == id ? "expired" :
		    "retired (the site re-enrolled or renewed)");
		free(rec);
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		return RPC_PERMISSION_DENIED;
	}
	if (rec->state == STORE_CERT_NEXT &&
	    session_cert_promote(s, rec) == -1) {
		free(rec);
		return RPC_UNAVAILABLE;
	}
	free(rec);
accept:
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return RPC_RESOURCE_EXHAUSTED;
	c->s = s;
	c->st = st;
	c->cert_site = id;
	memcpy(c->cert_fp, peer->cert_sha256, sizeof(c->cert_fp));
	c->cert_not_after = peer->not_after;
	if ((c->next = s->conns) != NULL)
		c->next->prev = c;
	s->conns = c;
	if (s->next_cert_expiry == 0 || c->cert_not_after < s->next_cert_expiry)
		s->next_cert_expiry = c->cert_not_after;
	c->prehello = e;
	e->n_prehello++;
	rpc_stream_set_user(st, c);
	log_debug("session", "stream from %s (%s)", peer->addr, peer->cn);
	return RPC_OK;
}

/*
 * Admission of snapshots (CONTROLLER.md, "Limits"): a hello that needs a
 * full snapshot (a new edge, one behind the kept history, a hub's 5.5 MB
 * at 10,000 sites) is served only while the outbound queues of all
 * streams together hold less than session_admit_bytes.  Otherwise the
 * edge gets a Backoff of 1-10 s, drawn per edge so the refused crowd
 * comes back spread out, and the stream ends; its current stream, if it
 * has one, is left alone.  A hello answered by a delta or by nothing
 * (an up-to-date edge after a restart) is always served.  Returns whether
 * e's hello h is served now.
 */
static bool
session_admit(struct sessions *s, struct rpc_stream *st, struct edge *e,
    const struct msg_hello *h)
{
	uint64_t cap = s->cfg.admit_bytes ? s->cfg.admit_bytes :
	    SESSION_ADMIT_BYTES, now;
	const uint8_t *want = NULL;
	struct msg_controller_message m;
	struct rpc_stats rs;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint32_t rnd = 0;

	if (s->srv == NULL)
		return true;
	if (h->applied_version > 0 && h->has_convergence_hash)
		want = session_intent_hist_hash(e, h->applied_version);
	if (want != NULL && memcmp(want, h->convergence_hash,
	    MSG_HASH_LEN) == 0)
		return true;
	rpc_server_stats(s->srv, &rs);
	if (rs.queued_bytes < cap)
		return true;
	if (util_random(&rnd, sizeof(rnd)) == -1)
		rnd = (uint32_t)util_mono_ns();
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_BACKOFF;
	m.u.backoff.retry_after_seconds = 1 + rnd % SESSION_ADMIT_RETRY_S;
	snprintf(m.u.backoff.reason, sizeof(m.u.backoff.reason),
	    "busy: snapshots to other edges are queued");
	if (pbconv_encode_controller_message(&m, &buf, &len) == 0 &&
	    rpc_stream_send(st, buf, len) == 0 && s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_BACKOFF_SENT);
	free(buf);
	rpc_stream_close(st, RPC_UNAVAILABLE,
	    "busy: come back after the Backoff");
	s->admit_refused++;
	now = util_mono_ms();
	if (now - s->admit_log_at >= SESSION_LIMIT_LOG_MS) {
		log_info("session: %" PRIu64 " hello(s) needing a snapshot "
		    "told to come back in 1-%u s (outbound queues %zu bytes, "
		    "session_admit_bytes %" PRIu64 ")", s->admit_refused,
		    SESSION_ADMIT_RETRY_S, rs.queued_bytes, cap);
		s->admit_log_at = now;
		s->admit_refused = 0;
	}
	return false;
}

static void
session_on_hello(struct sessions *s, struct rpc_stream *st, struct conn *c,
    const struct msg_hello *h)
{
	struct edge *e;

	if (h->site_id != c->cert_site) {
		log_warnx("session: hello for site %" PRIu64 " on a certificate "
		    "of site %" PRIu64 "; refused", h->site_id, c->cert_site);
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		rpc_stream_close(st, RPC_PERMISSION_DENIED,
		    "hello site_id does not match the certificate identity");
		return;
	}
	e = session_edge_find(s, h->site_id);
	/* Another controller may have moved this edge's version while it
	 * was connected there: start from the store's. */
	if (e != NULL && e->live && s->replicated &&
	    session_intent_resume(s, e, h->applied_version) == -1) {
		rpc_stream_close(st, RPC_UNAVAILABLE,
		    "cannot load this site's intent; try again");
		return;
	}
	/* An edge ahead of the controller: its version is moved past the
	 * edge's (a write) before anything is sent, or it waits. */
	if (e != NULL && e->live && e->cur.version > 0 &&
	    h->applied_version > e->cur.version &&
	    session_intent_skip_past(s, e, h->applied_version) == -1) {
		rpc_stream_close(st, RPC_UNAVAILABLE,
		    "the controller's database is unavailable; try again");
		return;
	}
	if (e == NULL || !e->live || e->cur.version == 0) {
		rpc_stream_close(st, RPC_FAILED_PRECONDITION,
		    "site has no intent (revoked or deleted)");
		return;
	}
	if (!session_admit(s, st, e, h))
		return;
	if (e->stream != NULL && e->stream != st) {
		struct conn *old = rpc_stream_user(e->stream);

		log_info("session: site %" PRIu64 ": a new session replaces the "
		    "old one", e->site_id);
		if (old != NULL)
			old->e = NULL;
		/* The rpc layer ends a closing stream within its close
		 * deadline whatever the peer does; beyond one per site
		 * (an edge saying hello again and again), cancel at once. */
		if (old != NULL && e->n_closing < SESSION_CLOSING_MAX) {
			old->closing = e;
			e->n_closing++;
			rpc_stream_close(e->stream, RPC_ABORTED,
			    "replaced by a newer session of the same site");
		} else
			rpc_stream_cancel(e->stream);
	}
	c->e = e;
	e->stream = st;
	e->hello = true;
	e->blocked = false;
	e->resync_wait = false;
	e->n_dropped = 0; /* the hello repeats every pending step */
	e->need_snapshot = true;
	e->base = 0;
	if (h->applied_version > 0 && h->has_convergence_hash) {
		const uint8_t *want = session_intent_hist_hash(e,
		    h->applied_version);

		if (want != NULL && memcmp(want, h->convergence_hash,
		    MSG_HASH_LEN) == 0) {
			e->base = h->applied_version;
			e->need_snapshot = false;
			if (h->applied_version > e->applied ||
			    memcmp(e->applied_hash, want, MSG_HASH_LEN) != 0) {
				e->applied = h->applied_version;
				memcpy(e->applied_hash, want, MSG_HASH_LEN);
				e->applied_dirty = true;
			}
		} else if (want != NULL) {
			log_info("session: site %" PRIu64 ": convergence hash "
			    "at version %" PRIu64 " differs; full resync",
			    e->site_id, h->applied_version);
		}
	}
	e->connected = true;
	e->connected_at = session_now(s);
	e->conn_dirty = true;
	/* The edge's own words: kept, logged and served only as printable
	 * ASCII, so no control byte reaches a terminal or the dashboard. */
	util_printable(e->software_version, sizeof(e->software_version),
	    h->software_version);
	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_SESSION_OPENED);
	log_info("session: site %" PRIu64 " connected (%s, applied %" PRIu64
	    ", current %" PRIu64 ", %s)", e->site_id, e->software_version,
	    h->applied_version, e->cur.version, e->need_snapshot ? "snapshot" :
	    e->base == e->cur.version ? "up to date" : "delta");
	/* The snapshot or delta carries every peer's current epoch keys
	 * (Tunnel.peer.keys): no PeerKeys replay is needed here. */
	session_push(s, e);
	session_rekey_resend(s, e);
}

/* Where site_id's failure is or would go in s->failures (s->lock held). */
static size_t
session_failure_index(const struct sessions *s, uint64_t site_id)
{
	return util_lower_bound_u64(s->failures, s->n_failures,
	    sizeof(*s->failures), offsetof(struct session_failure, site_id),
	    site_id);
}

/* Keep a failed ack for GET /api/v1/edges (last_failure).  The reason is
 * the edge's text: anything but printable ASCII becomes '?'. */
static void
session_failure_note(struct sessions *s, struct edge *e,
    const struct msg_ack *a)
{
	struct session_failure *f;
	uint64_t site_id = e->site_id;
	size_t lo;

	pthread_mutex_lock(&s->lock);
	lo = session_failure_index(s, site_id);
	if (lo == s->n_failures || s->failures[lo].site_id != site_id) {
		if (s->n_failures == s->cap_failures) {
			size_t cap = s->cap_failures ? s->cap_failures * 2 : 8;

			f = realloc(s->failures, cap * sizeof(*f));
			if (f == NULL) {
				pthread_mutex_unlock(&s->lock);
				log_warnx("session: site %" PRIu64 ": failed ack "
				    "not kept: out of memory", site_id);
				return;
			}
			s->failures = f;
			s->cap_failures = cap;
		}
		memmove(s->failures + lo + 1, s->failures + lo,
		    (s->n_failures - lo) * sizeof(*s->failures));
		s->n_failures++;
		s->failures[lo].site_id = site_id;
	}
	f = &s->failures[lo];
	f->f.version = a->version;
	f->f.at = session_now(s);
	util_printable(f->f.reason, sizeof(f->f.reason), a->reason);
	/* Stored at the next group commit: the other controllers show it. */
	e->failure = f->f;
	e->failure_dirty = true;
	pthread_mutex_unlock(&s->lock);
}

bool
session_last_failure(struct sessions *s, uint64_t site_id,
    struct model_ack_failure *out)
{
	size_t lo;
	bool found = false;

	pthread_mutex_lock(&s->lock);
	lo = session_failure_index(s, site_id);
	if (lo < s->n_failures && s->failures[lo].site_id == site_id) {
		*out = s->failures[lo].f;
		found = true;
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* Logs how many of e's bad acks went unlogged since the last line. */
static void
session_ack_log_flush(struct edge *e)
{
	if (e->ack_unlogged == 0)
		return;
	log_warnx("session: site %" PRIu64 ": %" PRIu64 " more failed or "
	    "wrong acks not logged (at most %u lines per %u s)", e->site_id,
	    e->ack_unlogged, SESSION_ACK_LOG_BURST, SESSION_LIMIT_LOG_MS / 1000);
	e->ack_unlogged = 0;
}

/*
 * Whether a bad ack of e (failed, beyond the version, wrong hash) may be
 * logged: an edge sends as many as it likes, so the log gets the first
 * SESSION_ACK_LOG_BURST per SESSION_LIMIT_LOG_MS and then one line with
 * the count of the rest (at the next bad ack after the interval, or
 * when the stream closes).
 */
static bool
session_ack_log(struct edge *e)
{
	uint64_t now = util_mono_ms();

	if (e->ack_logged == 0 || now - e->ack_log_ms >= SESSION_LIMIT_LOG_MS) {
		session_ack_log_flush(e);
		e->ack_log_ms = now;
		e->ack_logged = 0;
	}
	if (e->ack_logged < SESSION_ACK_LOG_BURST) {
		e->ack_logged++;
		return true;
	}
	e->ack_unlogged++;
	return false;
}

static void
session_on_ack(struct sessions *s, struct edge *e, const struct msg_ack *a)
{
	const uint8_t *want;

	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_ACK_RECEIVED);
	if (a->rekey_tunnel_id != 0) {
		session_rekey_ack(s, e, a);
		return;
	}
	if (!a->ok) {
		snprintf(e->last_error, sizeof(e->last_error), "%s", a->reason);
		session_failure_note(s, e, a);
		if (session_ack_log(e))
			log_warnx("session: site %" PRIu64 " failed to apply "
			    "version %" PRIu64 ": %s", e->site_id, a->version,
			    a->reason);
		session_resync(s, e);
		return;
	}
	if (a->version > e->cur.version) {
		if (session_ack_log(e))
			log_warnx("session: site %" PRIu64 " acked version %"
			    PRIu64 " beyond %" PRIu64 "; full resync",
			    e->site_id, a->version, e->cur.version);
		session_resync(s, e);
		return;
	}
	want = session_intent_hist_hash(e, a->version);
	if (want != NULL && (!a->has_convergence_hash ||
	    memcmp(want, a->convergence_hash, MSG_HASH_LEN) != 0)) {
		if (session_ack_log(e))
			log_warnx("session: site %" PRIu64 ": convergence hash "
			    "mismatch at version %" PRIu64 "; full resync",
			    e->site_id, a->version);
		session_resync(s, e);
		return;
	}
	e->last_error[0] = '\0';
	if (want != NULL && a->version >= e->applied) {
		e->applied = a->version;
		memcpy(e->applied_hash, want, MSG_HASH_LEN);
		e->applied_dirty = true;
	}
	log_debug("session", "site %" PRIu64 " applied version %" PRIu64,
	    e->site_id, a->version);
}

static void
session_on_message(struct rpc_stream *st, const uint8_t *buf, size_t len,
    void *arg)
{
	struct sessions *s = arg;
	struct conn *c = rpc_stream_user(st);
	struct msg_edge_message m;
	char err[PBCONV_ERR_LEN];

	if (c == NULL)
		return;
	if (pbconv_decode_edge_message(buf, len, &m, err, sizeof(err)) == -1) {
		log_warnx("session: site %" PRIu64 ": bad message: %s",
		    c->cert_site, err);
		rpc_stream_close(st, RPC_INVALID_ARGUMENT, err);
		return;
	}
	if (c->prehello != NULL) {
		/* The first message: the stream no longer waits for hello. */
		c->prehello->n_prehello--;
		c->prehello = NULL;
	}
	if (c->e == NULL) {
		if (m.kind == MSG_EDGE_HELLO)
			session_on_hello(s, st, c, &m.u.hello);
		else
			rpc_stream_close(st, RPC_FAILED_PRECONDITION,
			    "the first message must be a hello");
		msg_edge_message_free(&m);
		return;
	}
	switch (m.kind) {
	case MSG_EDGE_HELLO:
		rpc_stream_close(st, RPC_FAILED_PRECONDITION,
		    "hello sent twice");
		break;
	case MSG_EDGE_ACK:
		session_on_ack(s, c->e, &m.u.ack);
		break;
	case MSG_EDGE_STATUS:
		if (session_limit_take(&c->e->rl_status, &session_lim_status,
		    c->e)) {
			free(c->e->status_wait);
			c->e->status_wait = NULL;
			session_status_save(s, c->e, &m.u.status);
		} else
			session_status_keep(c->e, buf, len);
		break;
	case MSG_EDGE_KEY:
		if (session_keys_cheap_ok(s, c->e, &m.u.key) &&
		    session_limit_take(&c->e->rl_key, &session_lim_key, c->e))
			session_keys_on_key(s, c->e, &m.u.key);
		break;
	case MSG_EDGE_REKEY_REQUEST:
		session_rekey_on_request(s, c->e, &m.u.rekey_request);
		break;
	case MSG_EDGE_NONE:
		break;
	}
	msg_edge_message_free(&m);
}

static void
session_on_close(struct rpc_stream *st, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct sessions *s = arg;
	struct conn *c = rpc_stream_user(st);

	if (c == NULL)
		return;
	if (c->e != NULL && c->e->stream == st) {
		struct edge *e = c->e;

		e->stream = NULL;
		e->hello = false;
		e->blocked = false;
		if (!s->shutting_down) {
			e->connected = false;
			e->conn_dirty = true;
		}
		session_ack_log_flush(e);
		log_info("session: site %" PRIu64 " disconnected (%s%s%s)",
		    e->site_id, rpc_close_reason_str(why), msg && *msg ?
		    ": " : "", msg ? msg : "");
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_CLOSED);
	}
	(void)code;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	if (c->prehello != NULL)
		c->prehello->n_prehello--;
	if (c->closing != NULL)
		c->closing->n_closing--;
	rpc_stream_set_user(st, NULL);
	free(c);
}

/* The queue that overflowed has emptied: one snapshot, not a backlog
 * (PeerKeys dropped with it are covered: the intent carries the keys). */
static void
session_on_drained(struct rpc_stream *st, void *arg)
{
	struct sessions *s = arg;
	struct conn *c = rpc_stream_user(st);
	struct edge *e = c ? c->e : NULL;

	if (e == NULL || e->stream != st || !e->blocked)
		return;
	e->blocked = false;
	e->need_snapshot = true;
	log_info("session: site %" PRIu64 ": queue drained, full resync",
	    e->site_id);
	session_push(s, e);
	session_rekey_drained(s, e);
}

static const struct rpc_stream_handlers session_handlers = {
	.on_open = session_on_open,
	.on_message = session_on_message,
	.on_close = session_on_close,
	.on_drained = session_on_drained,
};

int
session_register(struct sessions *s, struct rpc_server *srv)
{
	s->srv = srv;
	return rpc_server_add_stream(srv, SESSION_METHOD, RPC_AUTH_PEER,
	    &session_handlers, s);
}

/* ------------------------------------------------------------------ */
/* Life cycle */

void
session_reconfig(struct sessions *s, const struct session_config *cfg)
{
	bool timers = cfg->keepalive_s != s->cfg.keepalive_s ||
	    cfg->headless_grace_s != s->cfg.headless_grace_s;

	if (cfg->clock_offset_s != s->cfg.clock_offset_s)
		s->next_rekey_scan = 0; /* epochs aged: look at once */
	s->cfg = *cfg;
	s->next_keepalive = util_mono_ms() + s->cfg.keepalive_s * 1000ull;
	/* keepalive and grace are part of every intent. */
	if (timers) {
		s->dirty_all = true;
		session_arm_flush(s);
	}
}

struct sessions *
session_new(const struct session_params *p)
{
	struct sessions *s = calloc(1, sizeof(*s));
	uint64_t now = util_mono_ms();

	if (s == NULL)
		return NULL;
	if ((s->memo = intent_memo_new()) == NULL) {
		free(s);
		return NULL;
	}
	s->cfg = p->cfg;
	s->st = p->st;
	s->ca = p->ca;
	s->metrics = p->metrics;
	s->replicated = p->replicated;
	atomic_init(&s->leader, false);
	s->efd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("session: eventfd");
		goto fail;
	}
	if ((s->epochs = epochs_new()) == NULL)
		goto fail;
	if (session_intent_compile_all(s, true) == -1)
		goto fail;
	s->next_keepalive = now + s->cfg.keepalive_s * 1000ull;
	s->next_ack_flush = now + SESSION_ACK_FLUSH_MS;
	s->next_rekey_scan = now + SESSION_REKEY_SCAN_MS;
	log_info("session: %zu site(s), %zu tunnel(s) compiled",
	    topo_edge_count(s->topo), topo_tunnel_count(s->topo));
	return s;
fail:
	session_free(s);
	return NULL;
}

void
session_shutdown(struct sessions *s)
{

	if (s == NULL)
		return;
	s->shutting_down = true;
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL || e->stream == NULL)
			continue;
		rpc_stream_close(e->stream, RPC_UNAVAILABLE,
		    "controller shutting down");
		e->connected = false;
		e->conn_dirty = true;
	}
	session_flush(s);
}

void
session_free(struct sessions *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->tab_cap; i++)
		if (s->tab[i].e != NULL)
			session_edge_free(s->tab[i].e);
	free(s->tab);
	topo_free(s->topo);
	intent_memo_free(s->memo);
	free(s->sites);
	free(s->pfx);
	free(s->pfx_site);
	epochs_free(s->epochs);
	free(s->pending);
	free(s->pending_rekey);
	free(s->failures);
	free(s->pending_creds);
	free(s->pending_tunnels);
	free(s->dirty);
	free(s->rebuild);
	free(s->retunnel);
	if (s->efd != -1)
		close(s->efd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
