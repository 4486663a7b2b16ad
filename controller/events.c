/*
 * events.c — the event ring, the streams that read it, the store watcher
 * that fills it, and the tunnels' health history (see events.h).
 *
 * Why a watcher that compares snapshots instead of hooks in every
 * writer: edges, sites and tunnels are written by several threads (the
 * API, the session loop, the enrollment worker) and possibly by another
 * controller on the same database.  Looking at the store every
 * EVENTS_SCAN_MS and publishing what differs from the last look catches
 * all of them, coalesces bursts by construction (an edge can cost at most
 * one event per scan), and needs no change in the session code.  Sites
 * and tunnels are only compared after an audit entry or a new tunnel
 * allocation generation (the only ways they change); edges every scan.
 * A scan that takes long stretches the period (at least 4 times its own
 * duration), so the watcher never takes more than a fifth of a core; and
 * an object is rendered again only when what it is rendered from changed
 * (events_key_*), so a scan of unchanged objects is a read and a hash.
 *
 * Event ids start at the start time in microseconds-of-a-second units
 * (unix seconds × 10^6) and grow by one: a Last-Event-ID from an earlier
 * run of the controller is then below the ring and gets "reset" instead
 * of the wrong events.  They stay below 2^53 (exact in JavaScript).
 */
#include "controller/events.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "controller/store.h"
#include "lib/log.h"
#include "lib/util.h"

struct ev_item {
	char *text;		/* the whole SSE record, "id: ...\n\n" */
	size_t len;
};

/* What the watcher last saw of one object. */
struct ev_seen {
	uint64_t id;
	uint64_t hash;		/* of the rendered JSON */
	uint64_t key;		/* of what it was rendered from (events_key_*) */
	int64_t status_at;	/* edges: when their status was stored */
	uint64_t site_a, site_b; /* tunnels: their two sites */
};

struct ev_seen_set {
	struct ev_seen *v;
	size_t n;
};

struct health_sample {
	uint32_t at;		/* unix seconds */
	uint32_t rtt_us;
	uint32_t jitter_us;
	uint16_t loss_permille;
	uint8_t up;
};

struct health_side {
	uint64_t site_id;	/* 0 = unused */
	struct health_sample *ring;	/* EVENTS_HEALTH_SAMPLES */
	unsigned head;		/* next write */
	unsigned count;
};

struct health_tunnel {
	uint64_t tunnel_id;
	struct health_side side[2];
};

struct events_stream {
	struct events *ev;
	struct events_stream *prev, *next;
	char who[MODEL_TOKEN_NAME_MAX + 1];
	char peer[64];
	uint64_t next_id;	/* the next event to send */
	bool reset_first;	/* open with "reset" */
	bool ready_sent;
	char *out;		/* what is being sent */
	size_t out_len, out_off;
	time_t last_write;
};

struct events {
	struct events_config cfg;
	unsigned max_streams, max_per_client;

	pthread_mutex_t lock;	/* everything below */
	pthread_cond_t cond;
	struct ev_item ring[EVENTS_RING];
	uint64_t first_id;	/* oldest id held */
	uint64_t next_id;	/* the id the next event gets */
	size_t bytes;
	struct events_stream *streams;
	unsigned n_streams;
	bool stop;
	struct health_tunnel *health;	/* sorted by tunnel_id */
	size_t n_health, cap_health;
	bool health_full_logged;

	/* Watcher thread only. */
	pthread_t thread;
	bool running;
	bool primed;
	uint64_t audit_last;
	uint64_t tunnel_gen;
	struct ev_seen_set sites, edges, tunnels;
};

static const char *const events_type_names[] = {
	[EVENTS_AUDIT] = "audit",
	[EVENTS_EDGE] = "edge",
	[EVENTS_SITE] = "site",
	[EVENTS_TUNNEL] = "tunnel",
};

/* ------------------------------------------------------------------ */
/* The ring */

static void
events_drop_oldest(struct events *ev)
{
	struct ev_item *it = &ev->ring[ev->first_id % EVENTS_RING];

	ev->bytes -= it->len;
	free(it->text);
	it->text = NULL;
	it->len = 0;
	ev->first_id++;
}

int
events_publish(struct events *ev, enum events_type type, const char *data)
{
	struct ev_item *it;
	size_t dl = strlen(data), cap = dl + 64;
	char *text = malloc(cap);
	int n;

	if (text == NULL)
		return -1;
	pthread_mutex_lock(&ev->lock);
	n = snprintf(text, cap, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n",
	    ev->next_id, events_type_names[type], data);
	if (n < 0 || (size_t)n >= cap) {
		pthread_mutex_unlock(&ev->lock);
		free(text);
		return -1;
	}
	while (ev->next_id > ev->first_id && (ev->next_id - ev->first_id >=
	    EVENTS_RING || ev->bytes + (size_t)n > EVENTS_RING_BYTES))
		events_drop_oldest(ev);
	it = &ev->ring[ev->next_id % EVENTS_RING];
	it->text = text;
	it->len = (size_t)n;
	ev->bytes += it->len;
	ev->next_id++;
	pthread_mutex_unlock(&ev->lock);
	if (ev->cfg.wake != NULL)
		ev->cfg.wake(ev->cfg.wake_arg);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Streams */

enum events_open_result
events_stream_open(struct events *ev, const char *who, const char *peer,
    bool has_last, uint64_t last_id, struct events_stream **out,
    const char **why)
{
	struct events_stream *s, *o;
	unsigned by_who = 0, by_peer = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return EVENTS_OPEN_NOMEM;
	s->ev = ev;
	snprintf(s->who, sizeof(s->who), "%s", who);
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	s->last_write = time(NULL);
	pthread_mutex_lock(&ev->lock);
	for (o = ev->streams; o != NULL; o = o->next) {
		by_who += strcmp(o->who, s->who) == 0;
		by_peer += strcmp(o->peer, s->peer) == 0;
	}
	if (ev->n_streams >= ev->max_streams || by_who >= ev->max_per_client ||
	    by_peer >= ev->max_per_client) {
		if (why != NULL)
			*why = ev->n_streams >= ev->max_streams ?
			    "the controller's" : by_who >= ev->max_per_client ?
			    "this token's" : "this address's";
		pthread_mutex_unlock(&ev->lock);
		free(s);
		return EVENTS_OPEN_LIMIT;
	}
	if (!has_last) {
		s->next_id = ev->next_id;
	} else if (last_id + 1 < ev->first_id || last_id >= ev->next_id) {
		s->reset_first = true;
		s->next_id = ev->next_id;
	} else {
		s->next_id = last_id + 1;
	}
	s->next = ev->streams;
	if (s->next != NULL)
		s->next->prev = s;
	ev->streams = s;
	ev->n_streams++;
	pthread_mutex_unlock(&ev->lock);
	*out = s;
	return EVENTS_OPEN_OK;
}

/* Under ev->lock: the next record for s into s->out, or 0 for nothing;
 * -1 when s must end. */
static int
events_stream_next(struct events_stream *s, time_t now)
{
	struct events *ev = s->ev;
	char buf[160];
	const char *src = NULL;
	size_t len = 0;
	int n;

	if (ev->stop)
		return -1;
	if (s->reset_first) {
		n = snprintf(buf, sizeof(buf), "id: %" PRIu64 "\nevent: reset\n"
		    "data: {\"reason\":\"the events after Last-Event-ID are no "
		    "longer held: reload\"}\n\n", s->next_id - 1);
		s->reset_first = false;
		s->ready_sent = true;
		src = buf;
		len = (size_t)n;
	} else if (!s->ready_sent) {
		/* Gives the client an id to resume from even if no event
		 * comes before its connection drops. */
		n = snprintf(buf, sizeof(buf), "retry: 2000\nid: %" PRIu64
		    "\nevent: ready\ndata: {\"last_event_id\":%" PRIu64
		    "}\n\n", s->next_id - 1, s->next_id - 1);
		s->ready_sent = true;
		src = buf;
		len = (size_t)n;
	} else if (s->next_id < ev->first_id) {
		/* Fell out of the ring while reading slowly: cut. */
		log_info("events: stream of %s from %s fell %" PRIu64
		    " events behind: closed", s->who, s->peer,
		    ev->next_id - s->next_id);
		return -1;
	} else if (s->next_id < ev->next_id) {
		const struct ev_item *it = &ev->ring[s->next_id % EVENTS_RING];

		src = it->text;
		len = it->len;
		s->next_id++;
	} else if (now - s->last_write >= EVENTS_HEARTBEAT_S) {
		src = ": hb\n\n";
		len = strlen(src);
	} else {
		return 0;
	}
	free(s->out);
	if ((s->out = malloc(len)) == NULL)
		return -1;
	memcpy(s->out, src, len);
	s->out_len = len;
	s->out_off = 0;
	return 1;
}

long
events_stream_read(void *arg, char *buf, size_t max)
{
	struct events_stream *s = arg;
	time_t now = time(NULL);
	size_t k;
	int rc;

	if (s->out_off == s->out_len) {
		pthread_mutex_lock(&s->ev->lock);
		rc = events_stream_next(s, now);
		pthread_mutex_unlock(&s->ev->lock);
		if (rc <= 0)
			return rc;
	}
	k = s->out_len - s->out_off;
	if (k > max)
		k = max;
	memcpy(buf, s->out + s->out_off, k);
	s->out_off += k;
	s->last_write = now;
	return (long)k;
}

void
events_stream_free(void *arg)
{
	struct events_stream *s = arg;
	struct events *ev;

	if (s == NULL)
		return;
	ev = s->ev;
	pthread_mutex_lock(&ev->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		ev->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	ev->n_streams--;
	pthread_mutex_unlock(&ev->lock);
	free(s->out);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Health history */

/* Under ev->lock: the index of tunnel_id, or where it would go. */
static size_t
events_health_find(const struct events *ev, uint64_t tunnel_id, bool *found)
{
	size_t lo = util_lower_bound_u64(ev->health, ev->n_health,
	    sizeof(*ev->health), offsetof(struct health_tunnel, tunnel_id),
	    tunnel_id);

	*found = lo < ev->n_health && ev->health[lo].tunnel_id == tunnel_id;
	return lo;
}

int
events_health_add(struct events *ev, uint64_t tunnel_id, uint64_t site_id,
    int64_t at, bool up, uint32_t rtt_us, uint32_t loss_permille,
    uint32_t jitter_us)
{
	struct health_tunnel *t;
	struct health_side *sd = NULL;
	struct health_sample *last, smp;
	bool found;
	size_t i;
	int rc = -1;

	if (tunnel_id == 0 || site_id == 0 || at <= 0 || at > UINT32_MAX)
		return -1;
	smp = (struct health_sample){ (uint32_t)at, rtt_us, jitter_us,
	    (uint16_t)(loss_permille > 1000 ? 1000 : loss_permille), up };
	pthread_mutex_lock(&ev->lock);
	i = events_health_find(ev, tunnel_id, &found);
	if (!found) {
		if (ev->n_health >= EVENTS_HEALTH_TUNNELS) {
			if (!ev->health_full_logged)
				log_warnx("events: health history kept for "
				    "%u tunnels at most; tunnel %" PRIu64
				    " and later ones have none",
				    EVENTS_HEALTH_TUNNELS, tunnel_id);
			ev->health_full_logged = true;
			goto out;
		}
		if (ev->n_health == ev->cap_health) {
			size_t cap = ev->cap_health == 0 ? 16 :
			    2 * ev->cap_health;
			struct health_tunnel *nh = realloc(ev->health,
			    cap * sizeof(*nh));

			if (nh == NULL)
				goto out;
			ev->health = nh;
			ev->cap_health = cap;
		}
		memmove(&ev->health[i + 1], &ev->health[i],
		    (ev->n_health - i) * sizeof(*ev->health));
		memset(&ev->health[i], 0, sizeof(ev->health[i]));
		ev->health[i].tunnel_id = tunnel_id;
		ev->n_health++;
	}
	t = &ev->health[i];
	for (int k = 0; k < 2 && sd == NULL; k++)
		if (t->side[k].site_id == site_id)
			sd = &t->side[k];
	for (int k = 0; k < 2 && sd == NULL; k++)
		if (t->side[k].site_id == 0) {
			sd = &t->side[k];
			sd->site_id = site_id;
		}
	if (sd == NULL)		/* a third site reporting one tunnel */
		goto out;
	if (sd->ring == NULL && (sd->ring = calloc(EVENTS_HEALTH_SAMPLES,
	    sizeof(*sd->ring))) == NULL)
		goto out;
	if (sd->count > 0) {
		last = &sd->ring[(sd->head + EVENTS_HEALTH_SAMPLES - 1) %
		    EVENTS_HEALTH_SAMPLES];
		if (smp.at < last->at)
			goto out;	/* older than what we hold */
		if (smp.at / EVENTS_HEALTH_SLOT_S ==
		    last->at / EVENTS_HEALTH_SLOT_S) {
			*last = smp;
			rc = 0;
			goto out;
		}
	}
	sd->ring[sd->head] = smp;
	sd->head = (sd->head + 1) % EVENTS_HEALTH_SAMPLES;
	if (sd->count < EVENTS_HEALTH_SAMPLES)
		sd->count++;
	rc = 0;
out:
	pthread_mutex_unlock(&ev->lock);
	return rc;
}

static void
events_health_tunnel_free(struct health_tunnel *t)
{
	free(t->side[0].ring);
	free(t->side[1].ring);
}

void
events_health_keep(struct events *ev, const uint64_t *ids, size_t n)
{
	size_t i, k = 0, w = 0;

	pthread_mutex_lock(&ev->lock);
	for (i = 0; i < ev->n_health; i++) {
		while (k < n && ids[k] < ev->health[i].tunnel_id)
			k++;
		if (k < n && ids[k] == ev->health[i].tunnel_id)
			ev->health[w++] = ev->health[i];
		else
			events_health_tunnel_free(&ev->health[i]);
	}
	ev->n_health = w;
	pthread_mutex_unlock(&ev->lock);
}

size_t
events_health_count(struct events *ev, uint64_t tunnel_id)
{
	bool found;
	size_t i, n = 0;

	pthread_mutex_lock(&ev->lock);
	i = events_health_find(ev, tunnel_id, &found);
	if (found)
		n = ev->health[i].side[0].count + ev->health[i].side[1].count;
	pthread_mutex_unlock(&ev->lock);
	return n;
}

char *
events_health_json(struct events *ev, uint64_t tunnel_id, int64_t now)
{
	json_t *j, *series;
	bool found;
	size_t i;
	char *text;

	series = json_array();
	pthread_mutex_lock(&ev->lock);
	i = events_health_find(ev, tunnel_id, &found);
	for (int k = 0; found && k < 2; k++) {
		const struct health_side *sd = &ev->health[i].side[k];
		json_t *at, *rtt, *loss, *jit, *up;

		if (sd->site_id == 0 || sd->count == 0)
			continue;
		at = json_array();
		rtt = json_array();
		loss = json_array();
		jit = json_array();
		up = json_array();
		for (unsigned q = 0; q < sd->count; q++) {
			const struct health_sample *h = &sd->ring[(sd->head +
			    EVENTS_HEALTH_SAMPLES - sd->count + q) %
			    EVENTS_HEALTH_SAMPLES];

			if ((int64_t)h->at <= now - (int64_t)EVENTS_HEALTH_SLOT_S *
			    EVENTS_HEALTH_SAMPLES)
				continue;
			json_array_append_new(at, json_integer(h->at));
			json_array_append_new(rtt, json_integer(h->rtt_us));
			json_array_append_new(loss,
			    json_integer(h->loss_permille));
			json_array_append_new(jit, json_integer(h->jitter_us));
			json_array_append_new(up, json_boolean(h->up));
		}
		json_array_append_new(series, json_pack("{s:I, s:o, s:o, s:o, "
		    "s:o, s:o}", "site_id", (json_int_t)sd->site_id, "at", at,
		    "rtt_us", rtt, "loss_permille", loss, "jitter_us", jit,
		    "up", up));
	}
	pthread_mutex_unlock(&ev->lock);
	j = json_pack("{s:I, s:i, s:i, s:o}", "tunnel_id",
	    (json_int_t)tunnel_id, "interval_seconds", EVENTS_HEALTH_SLOT_S,
	    "window_seconds", EVENTS_HEALTH_SLOT_S * EVENTS_HEALTH_SAMPLES,
	    "series", series);
	if (j == NULL)
		return NULL;
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return text;
}

/* The health entries of one edge's status JSON (as session_status.c
 * writes it: {"health":[{"tunnel_id":..,"up":..,...}]}). */
static const struct ev_seen *events_seen_find(const struct ev_seen_set *set,
    uint64_t id);

static void
events_health_from_status(struct events *ev, uint64_t site_id,
    const unsigned char *status, size_t len, int64_t at)
{
	json_t *j, *hl, *h;
	size_t i;

	if (status == NULL || len == 0 ||
	    (j = json_loadb((const char *)status, len, 0, NULL)) == NULL)
		return;
	hl = json_object_get(j, "health");
	json_array_foreach(hl, i, h) {
		json_int_t tid = json_integer_value(json_object_get(h,
		    "tunnel_id"));
		json_int_t rtt = json_integer_value(json_object_get(h,
		    "rtt_us"));
		json_int_t loss = json_integer_value(json_object_get(h,
		    "loss_permille"));
		json_int_t jit = json_integer_value(json_object_get(h,
		    "jitter_us"));

		const struct ev_seen *tun;

		if (tid <= 0 || rtt < 0 || rtt > UINT32_MAX || loss < 0 ||
		    loss > 1000 || jit < 0 || jit > UINT32_MAX)
			continue;
		/* Only an end of the tunnel speaks for it: an edge's report
		 * about another site's tunnel must not take its history. */
		tun = events_seen_find(&ev->tunnels, (uint64_t)tid);
		if (tun == NULL || (tun->site_a != site_id &&
		    tun->site_b != site_id))
			continue;
		(void)events_health_add(ev, (uint64_t)tid, site_id, at,
		    json_is_true(json_object_get(h, "up")), (uint32_t)rtt,
		    (uint32_t)loss, (uint32_t)jit);
	}
	json_decref(j);
}

/* ------------------------------------------------------------------ */
/* The watcher */

#define EVENTS_FNV_SEED 1469598103934665603ull	/* FNV-1a */

static uint64_t
events_hash(const char *s)
{
	uint64_t h = EVENTS_FNV_SEED;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/*
 * Fingerprints of what an object is rendered from, field by field (no
 * padding bytes, strings up to their NUL).  The renderers are pure
 * functions of these inputs, so an object whose fingerprint is the one
 * of the last scan renders to the same text: it is neither rendered nor
 * hashed again.  A scan of 10,000 edges while a change fans out then
 * renders the few hundred that moved, not all of them every period (it
 * took a third of the controller's CPU during the fan-out).  Every field
 * of the inputs is in, even those a renderer leaves out: a change there
 * costs one render whose text hash then says "same".
 */
static uint64_t
events_mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t
events_mix_u64(uint64_t h, uint64_t v)
{
	return events_mix(h, &v, sizeof(v));
}

/* The string and its terminator: "ab" + "c" differs from "a" + "bc". */
static uint64_t
events_mix_str(uint64_t h, const char *str, size_t max)
{
	return events_mix(h, str, strnlen(str, max) + 1);
}

static uint64_t
events_key_site(uint64_t h, const struct model_site *s)
{
	h = events_mix_u64(h, s->id);
	h = events_mix_str(h, s->name, sizeof(s->name));
	h = events_mix_str(h, s->region, sizeof(s->region));
	h = events_mix_u64(h, (uint64_t)s->role);
	h = events_mix_u64(h, s->asn);
	h = events_mix_u64(h, (uint64_t)s->backend);
	h = events_mix_u64(h, (uint64_t)s->revoked << 1 |
	    (uint64_t)s->internet_breakout);
	h = events_mix_u64(h, s->n_links);
	for (size_t i = 0; i < s->n_links && i < MODEL_LINKS_MAX; i++) {
		const struct model_link *l = &s->links[i];

		h = events_mix_str(h, l->name, sizeof(l->name));
		h = events_mix_str(h, l->address, sizeof(l->address));
		h = events_mix_str(h, l->public_address,
		    sizeof(l->public_address));
		h = events_mix_u64(h, l->public_port);
	}
	return h;
}

/* An edge as the list shows it (no status blob: status_at stands for
 * it) and its site. */
static uint64_t
events_key_edge(const struct model_site *s, const struct model_edge_state *e)
{
	uint64_t h = events_key_site(EVENTS_FNV_SEED, s);
	size_t hl = e->conv_hash_len <= MODEL_HASH_MAX ? e->conv_hash_len :
	    MODEL_HASH_MAX;

	h = events_mix_u64(h, e->site_id);
	h = events_mix_u64(h, e->intent_version);
	h = events_mix_u64(h, e->applied_version);
	h = events_mix_u64(h, hl);
	h = events_mix(h, e->conv_hash, hl);
	h = events_mix_u64(h, (uint64_t)e->connected);
	h = events_mix_u64(h, (uint64_t)e->connected_at);
	h = events_mix_u64(h, (uint64_t)e->status_at);
	h = events_mix_str(h, e->software_version,
	    sizeof(e->software_version));
	h = events_mix_u64(h, e->failure.version);
	h = events_mix_u64(h, (uint64_t)e->failure.at);
	return events_mix_str(h, e->failure.reason,
	    sizeof(e->failure.reason));
}

static uint64_t
events_key_tunnel(const struct model_tunnel *t)
{
	uint64_t h = events_mix_u64(EVENTS_FNV_SEED, t->id);

	h = events_mix_u64(h, t->site_a);
	h = events_mix_str(h, t->link_a, sizeof(t->link_a));
	h = events_mix_u64(h, t->site_b);
	h = events_mix_str(h, t->link_b, sizeof(t->link_b));
	h = events_mix_u64(h, t->inner);
	return events_mix_u64(h, t->vni);
}

static const struct ev_seen *
events_seen_find(const struct ev_seen_set *set, uint64_t id)
{
	size_t lo = util_lower_bound_u64(set->v, set->n, sizeof(*set->v),
	    offsetof(struct ev_seen, id), id);

	return lo < set->n && set->v[lo].id == id ? &set->v[lo] : NULL;
}

/* Publishes {"<idkey>":id,"deleted":true} for what old has and now not. */
static void
events_seen_gone(struct events *ev, const struct ev_seen_set *old,
    const struct ev_seen_set *now, enum events_type type, const char *idkey)
{
	char buf[96];

	for (size_t i = 0; i < old->n; i++) {
		if (events_seen_find(now, old->v[i].id) != NULL)
			continue;
		snprintf(buf, sizeof(buf), "{\"%s\":%" PRIu64 ",\"deleted\":"
		    "true}", idkey, old->v[i].id);
		(void)events_publish(ev, type, buf);
	}
}

static void
events_seen_replace(struct ev_seen_set *dst, struct ev_seen_set *src)
{
	free(dst->v);
	*dst = *src;
	src->v = NULL;
	src->n = 0;
}

static int
events_scan_audit(struct events *ev, bool publish, bool *changed)
{
	struct model_audit *a = NULL;
	struct model_error err;
	size_t n = 0;
	char *text;

	do {
		if (store_audit_list(ev->cfg.st, ev->audit_last, 1000, &a, &n,
		    &err) == -1) {
			log_warnx("events: audit: %s", err.message);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (publish && (text = ev->cfg.render.audit(&a[i])) !=
			    NULL) {
				(void)events_publish(ev, EVENTS_AUDIT, text);
				free(text);
			}
			ev->audit_last = a[i].id;
		}
		if (n > 0)
			*changed = true;
		model_audit_free_array(a, n);
		a = NULL;
	} while (n == 1000);
	return 0;
}

static int
events_scan_sites(struct events *ev, const struct model_site *sites,
    size_t ns, bool publish)
{
	struct model_site_prefix *pfx = NULL;
	struct model_error err;
	struct ev_seen_set now = { NULL, 0 };
	const struct ev_seen *old;
	size_t np = 0;
	char *text;

	if (store_prefix_list(ev->cfg.st, 0, &pfx, &np, &err) == -1) {
		log_warnx("events: prefixes: %s", err.message);
		return -1;
	}
	if (ns > 0 && (now.v = calloc(ns, sizeof(*now.v))) == NULL) {
		free(pfx);
		return -1;
	}
	for (size_t i = 0, lo, hi; i < ns; i++) {
		uint64_t key = events_key_site(EVENTS_FNV_SEED,
		    &sites[i]);

		/* The site's own prefixes (the list is sorted by site): the
		 * renderer shows only those. */
		lo = util_lower_bound_u64(pfx, np, sizeof(*pfx),
		    offsetof(struct model_site_prefix, site_id), sites[i].id);
		for (hi = lo; hi < np && pfx[hi].site_id == sites[i].id; hi++) {
			key = events_mix_u64(key, pfx[hi].prefix.family);
			key = events_mix_u64(key, pfx[hi].prefix.len);
			key = events_mix(key, pfx[hi].prefix.addr,
			    sizeof(pfx[hi].prefix.addr));
		}
		old = events_seen_find(&ev->sites, sites[i].id);
		if (old != NULL && old->key == key) {
			now.v[now.n++] = *old;     /* renders the same */
			continue;
		}
		if ((text = ev->cfg.render.site(&sites[i],
		    hi > lo ? pfx + lo : NULL, hi - lo)) == NULL)
			continue;
		now.v[now.n].id = sites[i].id;
		now.v[now.n].hash = events_hash(text);
		now.v[now.n].key = key;
		if (publish && (old == NULL || old->hash != now.v[now.n].hash))
			(void)events_publish(ev, EVENTS_SITE, text);
		now.n++;
		free(text);
	}
	free(pfx);
	if (publish)
		events_seen_gone(ev, &ev->sites, &now, EVENTS_SITE, "id");
	events_seen_replace(&ev->sites, &now);
	return 0;
}

static int
events_scan_tunnels(struct events *ev, bool publish)
{
	struct model_tunnel *t = NULL;
	struct model_error err;
	struct ev_seen_set now = { NULL, 0 };
	const struct ev_seen *old;
	uint64_t next, *ids;
	size_t n = 0;
	char *text;

	if (store_tunnel_list(ev->cfg.st, &t, &n, &next, &err) == -1) {
		log_warnx("events: tunnels: %s", err.message);
		return -1;
	}
	if (n > 0 && (now.v = calloc(n, sizeof(*now.v))) == NULL) {
		free(t);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t key = events_key_tunnel(&t[i]);

		old = events_seen_find(&ev->tunnels, t[i].id);
		if (old != NULL && old->key == key) {
			now.v[now.n++] = *old;     /* renders the same */
			continue;
		}
		if ((text = ev->cfg.render.tunnel(&t[i])) == NULL)
			continue;
		now.v[now.n].id = t[i].id;
		now.v[now.n].hash = events_hash(text);
		now.v[now.n].key = key;
		now.v[now.n].site_a = t[i].site_a;
		now.v[now.n].site_b = t[i].site_b;
		if (publish && (old == NULL || old->hash != now.v[now.n].hash))
			(void)events_publish(ev, EVENTS_TUNNEL, text);
		now.n++;
		free(text);
	}
	free(t);
	if (publish)
		events_seen_gone(ev, &ev->tunnels, &now, EVENTS_TUNNEL, "id");
	/* now.v is sorted by id (the store lists tunnels by id). */
	if ((ids = calloc(now.n + 1, sizeof(*ids))) != NULL) {
		for (size_t i = 0; i < now.n; i++)
			ids[i] = now.v[i].id;
		events_health_keep(ev, ids, now.n);
		free(ids);
	}
	events_seen_replace(&ev->tunnels, &now);
	return 0;
}

static int
events_scan_edges(struct events *ev, const struct model_site *sites,
    size_t ns, bool publish)
{
	struct model_edge_state *edges = NULL, zero, full;
	struct model_error err;
	struct ev_seen_set now = { NULL, 0 };
	const struct ev_seen *old;
	size_t ne = 0, k = 0;
	uint64_t key;
	char *text;

	if (store_edge_list(ev->cfg.st, &edges, &ne, &err) == -1) {
		log_warnx("events: edges: %s", err.message);
		return -1;
	}
	if (ns > 0 && (now.v = calloc(ns, sizeof(*now.v))) == NULL)
		goto out;
	memset(&zero, 0, sizeof(zero));
	for (size_t i = 0; i < ns; i++) {
		const struct model_edge_state *e;

		while (k < ne && edges[k].site_id < sites[i].id)
			k++;
		e = k < ne && edges[k].site_id == sites[i].id ? &edges[k] :
		    &zero;
		key = events_key_edge(&sites[i], e);
		old = events_seen_find(&ev->edges, sites[i].id);
		if (old != NULL && old->key == key) {
			now.v[now.n++] = *old;     /* renders the same */
			continue;
		}
		if ((text = ev->cfg.render.edge(&sites[i], e)) == NULL)
			continue;
		now.v[now.n].id = sites[i].id;
		now.v[now.n].hash = events_hash(text);
		now.v[now.n].key = key;
		now.v[now.n].status_at = e->status_at;
		free(text);
		if (old != NULL && old->hash == now.v[now.n].hash) {
			now.n++;
			continue;
		}
		/* Changed (or new): the full object, status included. */
		if (store_edge_get(ev->cfg.st, sites[i].id, &full, &err) ==
		    0) {
			if (full.status_at != 0 && (old == NULL ||
			    old->status_at != full.status_at))
				events_health_from_status(ev, sites[i].id,
				    full.status, full.status_len,
				    full.status_at);
			if (publish && (text = ev->cfg.render.edge(&sites[i],
			    &full)) != NULL) {
				(void)events_publish(ev, EVENTS_EDGE, text);
				free(text);
			}
			model_edge_state_clear(&full);
		}
		now.n++;
	}
	if (publish)
		events_seen_gone(ev, &ev->edges, &now, EVENTS_EDGE, "site_id");
	events_seen_replace(&ev->edges, &now);
out:
	for (size_t i = 0; i < ne; i++)
		model_edge_state_clear(&edges[i]);
	free(edges);
	return 0;
}

/* One look at the store; the first one only learns what is there. */
static void
events_scan(struct events *ev)
{
	struct model_site *sites = NULL;
	struct model_error err;
	bool publish = ev->primed, topo = !ev->primed;
	uint64_t gen = 0;
	size_t ns = 0;

	if (events_scan_audit(ev, publish, &topo) == -1)
		return;
	if (store_tunnel_gen(ev->cfg.st, &gen, &err) == 0 &&
	    gen != ev->tunnel_gen) {
		ev->tunnel_gen = gen;
		topo = true;
	}
	if (store_site_list(ev->cfg.st, &sites, &ns, &err) == -1) {
		log_warnx("events: sites: %s", err.message);
		return;
	}
	if (topo) {
		(void)events_scan_sites(ev, sites, ns, publish);
		(void)events_scan_tunnels(ev, publish);
	}
	(void)events_scan_edges(ev, sites, ns, publish);
	free(sites);
	ev->primed = true;
}

static int64_t
events_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *
events_main(void *arg)
{
	struct events *ev = arg;
	int64_t t0, took, period = EVENTS_SCAN_MS, last_wake = 0;
	struct timespec until;

	for (;;) {
		t0 = events_now_ms();
		events_scan(ev);
		took = events_now_ms() - t0;
		period = 4 * took > EVENTS_SCAN_MS ? 4 * took : EVENTS_SCAN_MS;
		/* Heartbeats: let parked streams look at the clock. */
		if (events_now_ms() - last_wake >= 1000 &&
		    ev->cfg.wake != NULL) {
			ev->cfg.wake(ev->cfg.wake_arg);
			last_wake = events_now_ms();
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += period / 1000;
		until.tv_nsec += (period % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&ev->lock);
		while (!ev->stop && pthread_cond_timedwait(&ev->cond,
		    &ev->lock, &until) != ETIMEDOUT)
			;
		if (ev->stop) {
			pthread_mutex_unlock(&ev->lock);
			break;
		}
		pthread_mutex_unlock(&ev->lock);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Life cycle */

struct events *
events_new(const struct events_config *cfg)
{
	struct events *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return NULL;
	ev->cfg = *cfg;
	ev->max_streams = cfg->max_streams != 0 ? cfg->max_streams :
	    EVENTS_MAX_STREAMS_DEFAULT;
	ev->max_per_client = cfg->max_streams_per_client != 0 ?
	    cfg->max_streams_per_client : EVENTS_MAX_STREAMS_PER_CLIENT_DEFAULT;
	ev->first_id = ev->next_id = (uint64_t)time(NULL) * 1000000u;
	if (pthread_mutex_init(&ev->lock, NULL) != 0) {
		free(ev);
		return NULL;
	}
	if (pthread_cond_init(&ev->cond, NULL) != 0) {
		pthread_mutex_destroy(&ev->lock);
		free(ev);
		return NULL;
	}
	return ev;
}

int
events_run(struct events *ev)
{
	if (ev->cfg.st == NULL || ev->cfg.render.edge == NULL)
		return 0;
	/* Learn what is there before the first stream can ask. */
	events_scan(ev);
	if (pthread_create(&ev->thread, NULL, events_main, ev) != 0) {
		log_warnx("events: cannot start the watcher thread");
		return -1;
	}
	ev->running = true;
	return 0;
}

void
events_stop(struct events *ev)
{
	if (ev == NULL)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->stop = true;
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
	if (ev->running)
		pthread_join(ev->thread, NULL);
	ev->running = false;
}

void
events_free(struct events *ev)
{
	if (ev == NULL)
		return;
	events_stop(ev);
	while (ev->first_id < ev->next_id)
		events_drop_oldest(ev);
	for (size_t i = 0; i < ev->n_health; i++)
		events_health_tunnel_free(&ev->health[i]);
	free(ev->health);
	free(ev->sites.v);
	free(ev->edges.v);
	free(ev->tunnels.v);
	pthread_cond_destroy(&ev->cond);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}
