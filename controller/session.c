/*
 * session.c — edge sessions: the compiled topology, each edge's intent
 * versions, snapshots and deltas, acks and convergence hashes, epoch-key
 * relay and the SA epoch (rekey) bookkeeping.
 *
 * Why one file: all of it is the same state machine seen from different
 * sides — a model change becomes new intent versions, which become
 * messages on streams, whose acks become stored versions.  Keeping it
 * together keeps the invariants in one place:
 *  - e->cur is the edge's intent at version e->cur.version, which is also
 *    the store's intent_version for that site;
 *  - e->base is the version the edge has, or will have once what we queued
 *    is applied; deltas are built from e->base to e->cur.version using the
 *    per-version change lists in e->hist;
 *  - a hash mismatch, a failed ack or a dropped message (backpressure)
 *    sets e->need_snapshot: the next push is a full snapshot.
 *
 * Persistence: versions, acks, connection state, status, tunnels and
 * epochs live in the store.  Issued certificates and announced epoch keys
 * live in the store's key/value table ("cert.<id>", "keys.<id>") so that
 * intents rebuilt after a restart equal the ones edges applied.
 */
#include "controller/session.h"

#include <assert.h>
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

#include <jansson.h>

#include "controller/ca.h"
#include "controller/enroll.h"
#include "controller/epochs.h"
#include "controller/intent.h"
#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define SESSION_METHOD "/meshwan.v1.Edge/Session"
#define ENROLL_METHOD "/meshwan.v1.Enrollment/Enroll"
#define SESSION_KEYS_MAX 2          /* current and next epoch per edge */
#define SESSION_ACK_FLUSH_MS 100    /* acks reach the store this often */
#define SESSION_REKEY_SCAN_MS 5000
#define SESSION_DRAIN_S 30          /* old inbound SA kept after a switch */
#define SESSION_KV_MAX 4096

/* One version's changes of one edge. */
struct hist {
	uint64_t version;
	uint8_t hash[MSG_HASH_LEN];
	bool unknown;               /* changes not known: no delta crosses it */
	bool site_changed;
	struct intent_change *ch;
	size_t n;
};

/* A rekey order the full send queue dropped, repeated after the drain. */
struct rekey_drop {
	uint64_t tunnel_id, epoch;
	enum msg_rekey_step step;
	enum msg_rekey_reason reason;
	uint32_t spi;
};

struct edge {
	uint64_t site_id;
	bool live;                  /* has intent (exists, not revoked) */
	struct msg_intent cur;      /* cur.version == 0: none built */
	uint8_t cur_hash[MSG_HASH_LEN];
	uint8_t *digests;           /* per tunnel of cur, same order (pbconv) */
	struct hist *hist;          /* ring of cfg.intent_history entries */
	size_t hist_cap, hist_len, hist_head; /* head = oldest */

	struct rpc_stream *stream;  /* NULL when not connected */
	bool hello;
	uint64_t base;
	bool need_snapshot;
	bool blocked;               /* queue was full; resync when drained */
	struct rekey_drop *dropped; /* rekey orders lost to the full queue */
	size_t n_dropped, cap_dropped;

	uint64_t applied;           /* last ok ack (or matching hello) */
	uint8_t applied_hash[MSG_HASH_LEN];
	bool applied_dirty;         /* not yet written to the store */
	char last_error[MSG_REASON_MAX + 1];

	uint8_t *cert;              /* issued certificate, DER */
	size_t cert_len;
	struct msg_peer_key keys[SESSION_KEYS_MAX];
	size_t n_keys;
};

/* A slot of the edge table. */
struct edge_slot {
	struct edge *e;             /* NULL = free */
};

/* An operator's rekey request, from the API thread. */
struct rekey_req {
	bool site;                  /* id is a site (all its tunnels) */
	uint64_t id;                /* else a tunnel */
};

/* Per-stream context. */
struct conn {
	struct sessions *s;
	uint64_t cert_site;         /* identity proven by the certificate */
	struct edge *e;             /* set by hello */
};

struct sessions {
	struct session_config cfg;
	struct store *st;
	struct ca *ca;
	struct metrics *metrics;

	struct topo_output *topo;
	struct model_policy policy;
	struct model_crypto crypto;
	struct model_site *sites;   /* all sites, sorted by id */
	size_t n_sites;
	uint64_t *pfx_site;         /* all LAN prefixes, sorted by site: */
	struct model_prefix *pfx;   /* pfx[i] belongs to pfx_site[i] */
	size_t n_pfx;
	struct epochs *epochs;      /* the store's sa_epochs, by tunnel */

	struct edge_slot *tab;      /* open addressing by site id */
	size_t tab_cap, tab_used;

	/* From the API thread. */
	pthread_mutex_t lock;
	uint64_t *pending;
	size_t n_pending, cap_pending;
	bool pending_all;
	struct rekey_req *pending_rekey;
	size_t n_pending_rekey, cap_pending_rekey;
	int efd;

	/* Loop side. */
	uint64_t *dirty;
	size_t n_dirty, cap_dirty;
	bool dirty_all;
	/* Edges whose intent changes without a topology change (a peer's
	 * new epoch key): rebuilt at the next flush, not recompiled. */
	uint64_t *rebuild;
	size_t n_rebuild, cap_rebuild;
	/* Tunnels whose content changed without a topology change (a new
	 * SA epoch went active): rebuilt in both ends' intents. */
	uint64_t *retunnel;
	size_t n_retunnel, cap_retunnel;
	uint64_t flush_at;          /* recompile due (mono ms), 0 = none */
	uint64_t next_keepalive;
	uint64_t next_ack_flush;
	uint64_t next_rekey_scan;
	bool shutting_down;
};

static void session_push(struct sessions *s, struct edge *e);

/* ------------------------------------------------------------------ */
/* Edge table */

static size_t
session_slot(uint64_t id, size_t cap)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 7) & (cap - 1);
}

static struct edge *
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

static struct edge *
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
session_hist_clear(struct edge *e)
{
	for (size_t i = 0; i < e->hist_cap; i++) {
		free(e->hist[i].ch);
		e->hist[i].ch = NULL;
	}
	e->hist_len = 0;
	e->hist_head = 0;
}

/* Forget e's current intent (its version stays in the store). */
static void
session_cur_drop(struct edge *e)
{
	msg_intent_free(&e->cur);
	free(e->digests);
	e->digests = NULL;
}

static void
session_edge_free(struct edge *e)
{
	session_hist_clear(e);
	free(e->hist);
	msg_intent_free(&e->cur);
	free(e->digests);
	free(e->cert);
	free(e->dropped);
	free(e);
}

/* ------------------------------------------------------------------ */
/* Small helpers */

/* Wall-clock seconds, moved by the test-only clock offset (config
 * key test_clock_offset), so tests can age SA epochs without waiting. */
static int64_t
session_now(const struct sessions *s)
{
	return (int64_t)time(NULL) + (int64_t)s->cfg.clock_offset_s;
}

static const struct model_site *
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

/* Append id to a grown array; -1 on ENOMEM. */
static int
session_ids_add(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	uint64_t *a;

	if (*v == NULL || *n >= *cap) {
		if ((a = util_grow(*v, cap, *n + 1, sizeof(*a), 64)) == NULL)
			return -1;
		*v = a;
	}
	(*v)[(*n)++] = id;
	return 0;
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

static void
session_mark_dirty(struct sessions *s, uint64_t id)
{
	if (session_ids_add_once(&s->dirty, &s->n_dirty, &s->cap_dirty, id) ==
	    -1)
		s->dirty_all = true; /* degrade to a full compile */
}

static void
session_mark_rebuild(struct sessions *s, uint64_t id)
{
	if (session_ids_add_once(&s->rebuild, &s->n_rebuild, &s->cap_rebuild,
	    id) == -1)
		session_mark_dirty(s, id); /* recompiled instead */
}

static void
session_arm_flush(struct sessions *s)
{
	if (s->flush_at == 0)
		s->flush_at = util_mono_ms() + s->cfg.coalesce_ms;
}

/* ------------------------------------------------------------------ */
/* Key/value persistence of certificates and epoch keys */

static void
session_load_cert(struct sessions *s, struct edge *e)
{
	char key[64], *val;
	uint8_t der[SESSION_KV_MAX / 2];
	size_t len;

	if ((val = malloc(SESSION_KV_MAX + 1)) == NULL)
		return;
	snprintf(key, sizeof(key), "cert.%" PRIu64, e->site_id);
	if (store_kv_get(s->st, key, val, SESSION_KV_MAX + 1, NULL) == 0 &&
	    util_unhex(val, der, sizeof(der), &len) == 0 && len > 0 &&
	    (e->cert = malloc(len)) != NULL) {
		memcpy(e->cert, der, len);
		e->cert_len = len;
	}
	free(val);
}

static void
session_load_keys(struct sessions *s, struct edge *e)
{
	char key[64], *val, *line, *save = NULL;

	if ((val = malloc(SESSION_KV_MAX + 1)) == NULL)
		return;
	snprintf(key, sizeof(key), "keys.%" PRIu64, e->site_id);
	if (store_kv_get(s->st, key, val, SESSION_KV_MAX + 1, NULL) == -1) {
		free(val);
		return;
	}
	for (line = strtok_r(val, "\n", &save); line != NULL &&
	     e->n_keys < SESSION_KEYS_MAX; line = strtok_r(NULL, "\n", &save)) {
		struct msg_peer_key *k = &e->keys[e->n_keys];
		char *f[4], *fsave = NULL;
		size_t pl, nf = 0;

		for (char *tok = strtok_r(line, " ", &fsave); tok != NULL &&
		     nf < 4; tok = strtok_r(NULL, " ", &fsave))
			f[nf++] = tok;
		memset(k, 0, sizeof(*k));
		if (nf != 4 || util_parse_u64(f[0], 1, UINT64_MAX,
		    &k->epoch) == -1 || util_parse_u64(f[1], 1, UINT64_MAX,
		    &k->not_after) == -1)
			continue;
		if (util_unhex(f[2], k->public_key, MSG_KEY_LEN, &pl) == -1 ||
		    pl != MSG_KEY_LEN ||
		    util_unhex(f[3], k->signature, MSG_SIG_MAX,
		    &k->signature_len) == -1 || k->signature_len == 0)
			continue;
		e->n_keys++;
	}
	free(val);
}

static int
session_save_keys(struct sessions *s, const struct edge *e)
{
	char key[64], *val;
	size_t off = 0;
	int rc;

	if ((val = calloc(1, SESSION_KV_MAX)) == NULL)
		return -1;
	for (size_t i = 0; i < e->n_keys; i++) {
		char pub[2 * MSG_KEY_LEN + 1], sig[2 * MSG_SIG_MAX + 1];

		util_hex(e->keys[i].public_key, MSG_KEY_LEN, pub);
		util_hex(e->keys[i].signature, e->keys[i].signature_len, sig);
		off += (size_t)snprintf(val + off, SESSION_KV_MAX - off,
		    "%" PRIu64 " %" PRIu64 " %s %s\n", e->keys[i].epoch,
		    e->keys[i].not_after, pub, sig);
	}
	snprintf(key, sizeof(key), "keys.%" PRIu64, e->site_id);
	rc = store_kv_set(s->st, key, val, NULL);
	free(val);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Intent lookups (struct intent_lookup) */

static void
session_lk_prefixes(void *arg, uint64_t site_id,
    const struct model_prefix **p, size_t *n)
{
	struct sessions *s = arg;
	size_t lo = 0, hi = s->n_pfx, end;

	*p = NULL;
	*n = 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->pfx_site[mid] < site_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < s->n_pfx && s->pfx_site[end] == site_id; end++)
		;
	if (end > lo) {
		*p = &s->pfx[lo];
		*n = end - lo;
	}
}

static const uint8_t *
session_lk_cert(void *arg, uint64_t site_id, size_t *len)
{
	struct edge *e = session_edge_find(arg, site_id);

	*len = e ? e->cert_len : 0;
	return e ? e->cert : NULL;
}

static void
session_lk_keys(void *arg, uint64_t site_id, const struct msg_peer_key **k,
    size_t *n)
{
	struct edge *e = session_edge_find(arg, site_id);

	*k = e ? e->keys : NULL;
	*n = e ? e->n_keys : 0;
}

/* The active epoch of one direction of a tunnel (the newest), or NULL. */
static struct model_epoch *
session_epoch_active(struct sessions *s, uint64_t tunnel_id, uint64_t sender)
{
	struct model_epoch *v, *best = NULL;
	size_t n;

	v = epochs_of(s->epochs, tunnel_id, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i].sender_site == sender &&
		    v[i].state == MODEL_EPOCH_ACTIVE)
			best = &v[i];
	return best;
}

/* Whether id is in the sorted set ids. */
static bool
session_id_in(const uint64_t *ids, size_t n, uint64_t id)
{
	return n > 0 && bsearch(&id, ids, n, sizeof(*ids),
	    util_cmp_u64) != NULL;
}

/* Forget the epochs of removed tunnels (the store cascaded). */
static void
session_epoch_drop(struct sessions *s, const uint64_t *removed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		epochs_drop_tunnel(s->epochs, removed[i]);
}

static void
session_lk_spis(void *arg, uint64_t tunnel_id, uint64_t site_id,
    struct intent_spis *out)
{
	struct sessions *s = arg;
	const struct model_tunnel *t = topo_tunnel_get(s->topo, tunnel_id);
	struct model_epoch *in, *o;
	uint64_t peer;

	memset(out, 0, sizeof(*out));
	if (t == NULL)
		return;
	peer = t->site_a == site_id ? t->site_b : t->site_a;
	in = session_epoch_active(s, tunnel_id, peer);
	o = session_epoch_active(s, tunnel_id, site_id);
	out->spi_in = in ? in->spi : 0;
	out->spi_out = o ? o->spi : 0;
	out->epoch = o ? o->epoch : in ? in->epoch : 0;
}

/* What intent_build needs from us; lk must outlive p. */
static void
session_params(struct sessions *s, struct intent_lookup *lk,
    struct intent_params *p)
{
	*lk = (struct intent_lookup){
		.arg = s,
		.prefixes = session_lk_prefixes,
		.cert = session_lk_cert,
		.spis = session_lk_spis,
		.keys = session_lk_keys,
	};
	*p = (struct intent_params){
		.topo = s->topo,
		.lookup = lk,
		.keepalive_s = s->cfg.keepalive_s,
		.headless_grace_s = s->cfg.headless_grace_s,
	};
	p->ca_der = ca_cert_der(s->ca, &p->ca_der_len);
}

static int
session_build(struct sessions *s, uint64_t site_id, uint64_t version,
    struct msg_intent *out)
{
	struct intent_lookup lk;
	struct intent_params p;
	char err[PBCONV_ERR_LEN];

	session_params(s, &lk, &p);
	if (intent_build(&p, site_id, version, out, err, sizeof(err)) == -1) {
		log_warnx("session: site %" PRIu64 ": cannot build intent: %s",
		    site_id, err);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Model loading and compiling */

static int
session_pfx_cmp(const void *a, const void *b)
{
	const struct model_site_prefix *x = a, *y = b;

	if (x->site_id != y->site_id)
		return x->site_id < y->site_id ? -1 : 1;
	return memcmp(&x->prefix, &y->prefix, sizeof(x->prefix));
}

static int
session_load_model(struct sessions *s)
{
	struct model_error err = { 0 };
	struct model_site *sites = NULL;
	struct model_site_prefix *pfx = NULL;
	struct model_prefix *vals = NULL;
	uint64_t *ids = NULL;
	size_t ns = 0, np = 0;

	if (store_policy_get(s->st, &s->policy, &err) == -1 ||
	    store_crypto_get(s->st, &s->crypto, &err) == -1 ||
	    store_site_list(s->st, &sites, &ns, &err) == -1 ||
	    store_prefix_list(s->st, 0, &pfx, &np, &err) == -1) {
		log_warnx("session: loading the model: %s", err.message);
		free(sites);
		return -1;
	}
	if (np > 0 && ((vals = calloc(np, sizeof(*vals))) == NULL ||
	    (ids = calloc(np, sizeof(*ids))) == NULL)) {
		free(vals);
		free(sites);
		free(pfx);
		return -1;
	}
	if (np > 0)
		qsort(pfx, np, sizeof(*pfx), session_pfx_cmp);
	for (size_t i = 0; i < np; i++) {
		ids[i] = pfx[i].site_id;
		vals[i] = pfx[i].prefix;
	}
	free(pfx);
	free(s->sites);
	free(s->pfx);
	free(s->pfx_site);
	s->sites = sites;
	s->n_sites = ns;
	s->pfx = vals;
	s->pfx_site = ids;
	s->n_pfx = np;
	return 0;
}

static int
session_load_epochs(struct sessions *s)
{
	struct model_error err = { 0 };
	struct model_epoch *ep = NULL;
	size_t n = 0;

	if (store_epoch_list(s->st, 0, &ep, &n, &err) == -1) {
		log_warnx("session: loading SA epochs: %s", err.message);
		return -1;
	}
	if (epochs_load(s->epochs, ep, n) == -1) {
		log_warnx("session: loading SA epochs: out of memory");
		free(ep);
		return -1;
	}
	free(ep);
	return 0;
}

/* The receiver's outer address of tunnel t for traffic from sender. */
static void
session_recv_address(const struct sessions *s, const struct model_tunnel *t,
    uint64_t sender, char *out, size_t outsz)
{
	uint64_t recv = sender == t->site_a ? t->site_b : t->site_a;
	const char *link = sender == t->site_a ? t->link_b : t->link_a;
	const struct model_site *ms = session_site(s, recv);
	int li;

	out[0] = '\0';
	if (ms == NULL || (li = model_site_find_link(ms, link)) < 0)
		return;
	snprintf(out, outsz, "%s", ms->links[li].public_address[0] ?
	    ms->links[li].public_address : ms->links[li].address);
}

/* Epoch 1 of both directions of a new tunnel, active at once. */
static int
session_epochs_init(struct sessions *s, const struct model_tunnel *t)
{
	const uint64_t senders[2] = { t->site_a, t->site_b };
	struct model_error err = { 0 };

	for (int i = 0; i < 2; i++) {
		struct model_epoch e = {
			.tunnel_id = t->id,
			.sender_site = senders[i],
			.epoch = 1,
			.state = MODEL_EPOCH_ACTIVE,
			.changed_at = session_now(s),
		};

		if (epochs_find(s->epochs, t->id, senders[i], 1) != NULL)
			continue;
		session_recv_address(s, t, senders[i], e.recv_address,
		    sizeof(e.recv_address));
		if (store_epoch_add(s->st, &e, &err) == -1) {
			log_warnx("session: tunnel %" PRIu64 ": epoch: %s",
			    t->id, err.message);
			return -1;
		}
		if (epochs_insert(s->epochs, &e) == -1)
			return -1;
	}
	return 0;
}

/*
 * Persist one compile's tunnel changes and keep the epoch bookkeeping in
 * line: new tunnels get epoch 1 both ways.
 */
static int
session_apply_change(struct sessions *s, const struct topo_change *chg)
{
	struct model_error err = { 0 };

	if (chg->n_removed == 0 && chg->n_added == 0)
		return 0;
	if (store_tunnel_apply(s->st, chg->removed, chg->n_removed, chg->added,
	    chg->n_added, topo_next_id(s->topo), &err) == -1) {
		log_warnx("session: storing tunnels: %s", err.message);
		return -1;
	}
	/* Removed tunnels' epochs go with them (the store cascades). */
	session_epoch_drop(s, chg->removed, chg->n_removed);
	for (size_t i = 0; i < chg->n_added; i++)
		if (session_epochs_init(s, &chg->added[i]) == -1)
			return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Versions */

static struct hist *
session_hist_at(struct edge *e, size_t i)
{
	return &e->hist[(e->hist_head + i) % e->hist_cap];
}

static void
session_hist_push(struct sessions *s, struct edge *e, struct intent_change *ch,
    size_t n, bool site_changed, bool unknown)
{
	struct hist *h;

	if (e->hist_cap != s->cfg.intent_history) {
		session_hist_clear(e);
		free(e->hist);
		e->hist = calloc(s->cfg.intent_history, sizeof(*e->hist));
		e->hist_cap = e->hist ? s->cfg.intent_history : 0;
	}
	if (e->hist_cap == 0) {
		free(ch);
		return;
	}
	if (e->hist_len == e->hist_cap) {
		h = session_hist_at(e, 0);
		free(h->ch);
		h->ch = NULL;
		e->hist_head = (e->hist_head + 1) % e->hist_cap;
		e->hist_len--;
	}
	h = session_hist_at(e, e->hist_len++);
	h->version = e->cur.version;
	memcpy(h->hash, e->cur_hash, MSG_HASH_LEN);
	h->unknown = unknown;
	h->site_changed = site_changed;
	h->ch = ch;
	h->n = n;
}

/* The recorded hash of version v, if still in the history. */
static const uint8_t *
session_hist_hash(struct edge *e, uint64_t v)
{
	if (e->cur.version == v && e->cur.version > 0)
		return e->cur_hash;
	for (size_t i = 0; i < e->hist_len; i++)
		if (session_hist_at(e, i)->version == v)
			return session_hist_at(e, i)->hash;
	return NULL;
}

static bool
session_blob_equal(const struct msg_blob *a, const struct msg_blob *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/*
 * Per-tunnel digests of next (pbconv's two-level convergence hash) and
 * its hash.  A tunnel that the diff did not list keeps its digest from
 * e->cur; the others (all, when ch is NULL and old is false) are digested
 * now.  That keeps a one-site change on a large mesh from re-encoding
 * every tunnel of every edge.  On success *digests is malloc'd.
 */
static int
session_digest(const struct edge *e, const struct msg_intent *next,
    const struct intent_change *ch, size_t n, bool reuse, uint8_t **digests,
    uint8_t hash[MSG_HASH_LEN])
{
	uint8_t *d = NULL;
	size_t j = 0, k = 0;

	if (next->n_tunnels > 0 &&
	    (d = calloc(next->n_tunnels, MSG_HASH_LEN)) == NULL)
		return -1;
	for (size_t i = 0; i < next->n_tunnels; i++) {
		uint64_t id = next->tunnels[i].id;
		uint8_t *out = d + i * MSG_HASH_LEN;

		while (j < n && ch[j].tunnel_id < id)
			j++;
		while (reuse && k < e->cur.n_tunnels &&
		    e->cur.tunnels[k].id < id)
			k++;
		if (reuse && (j == n || ch[j].tunnel_id != id) &&
		    k < e->cur.n_tunnels && e->cur.tunnels[k].id == id &&
		    e->digests != NULL) {
			memcpy(out, e->digests + k * MSG_HASH_LEN,
			    MSG_HASH_LEN);
			continue;
		}
		if (pbconv_tunnel_digest(&next->tunnels[i], out) == -1)
			goto fail;
	}
	if (pbconv_intent_hash_digests(next, d, hash) == -1)
		goto fail;
	*digests = d;
	return 0;
fail:
	free(d);
	return -1;
}

/*
 * Rebuild an edge's intent; when it differs, give it a new version (in
 * the store) and record what changed.  *changed says whether a new version
 * was made.
 */
static int
session_refresh_edge(struct sessions *s, struct edge *e, bool *changed)
{
	struct model_error err = { 0 };
	struct msg_intent next;
	struct intent_change *ch = NULL;
	uint8_t hash[MSG_HASH_LEN], *digests = NULL;
	size_t n = 0;
	bool site_changed = false, unknown = e->cur.version == 0;
	uint64_t v;

	*changed = false;
	if (session_build(s, e->site_id, e->cur.version ? e->cur.version : 1,
	    &next) == -1)
		return -1;
	if (e->cur.version > 0) {
		if (intent_diff(&e->cur, &next, &ch, &n, &site_changed) == -1) {
			msg_intent_free(&next);
			return -1;
		}
		/* Timers and the CA chain cannot travel in a delta. */
		unknown = next.keepalive_seconds != e->cur.keepalive_seconds ||
		    next.headless_grace_seconds !=
		    e->cur.headless_grace_seconds ||
		    !session_blob_equal(&next.ca_chain_der,
		    &e->cur.ca_chain_der);
		if (n == 0 && !site_changed && !unknown) {
			msg_intent_free(&next);
			return 0;
		}
	}
	if (store_edge_bump_intent(s->st, e->site_id, &v, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": version: %s", e->site_id,
		    err.message);
		free(ch);
		msg_intent_free(&next);
		return -1;
	}
	next.version = v;
	if (session_digest(e, &next, ch, n, e->cur.version > 0, &digests,
	    hash) == -1) {
		char why[PBCONV_ERR_LEN] = "out of memory";

		msg_validate_intent(&next, why, sizeof(why));
		log_warnx("session: site %" PRIu64 ": intent refused by the "
		    "wire contract: %s", e->site_id, why);
		free(ch);
		msg_intent_free(&next);
		return -1;
	}
	session_cur_drop(e);
	e->cur = next;
	e->digests = digests;
	memcpy(e->cur_hash, hash, MSG_HASH_LEN);
	/* Without a previous intent the changes are unknown: the version
	 * is recorded (its hash answers hellos) but no delta crosses it. */
	session_hist_push(s, e, ch, n, site_changed, unknown);
	*changed = true;
	return 0;
}

/* Tunnels built by a patch, with their digests. */
struct built {
	struct msg_tunnel *t;
	uint8_t *dg;
	size_t n, cap, cap_dg;
};

static void
session_built_free(struct built *b, bool contents)
{
	for (size_t i = 0; contents && i < b->n; i++)
		msg_tunnel_free(&b->t[i]);
	free(b->t);
	free(b->dg);
}

/* Build the tunnel of view i of e into b; *same when it equals old. */
static int
session_built_add(struct sessions *s, const struct edge *e,
    const struct intent_params *p, size_t i, const struct msg_tunnel *old,
    struct built *b, bool *same)
{
	char err[PBCONV_ERR_LEN];
	struct topo_view v;
	void *np;

	*same = false;
	if (b->n == b->cap) {
		size_t c = b->cap;

		if ((np = util_grow(b->t, &c, b->n + 1, sizeof(*b->t), 16)) ==
		    NULL)
			return -1;
		b->t = np;
		if ((np = util_grow(b->dg, &b->cap_dg, c, MSG_HASH_LEN, c)) ==
		    NULL)
			return -1;
		b->dg = np;
		b->cap = c;
	}
	if (topo_edge_view(s->topo, e->site_id, i, &v) == -1 ||
	    intent_build_tunnel(p, e->site_id, &v, &b->t[b->n], err,
	    sizeof(err)) == -1) {
		log_warnx("session: site %" PRIu64 ": cannot build tunnel: %s",
		    e->site_id, err);
		return -1;
	}
	if (old != NULL && msg_tunnel_equal(old, &b->t[b->n])) {
		msg_tunnel_free(&b->t[b->n]);
		*same = true;
		return 0;
	}
	if (pbconv_tunnel_digest(&b->t[b->n], b->dg + b->n * MSG_HASH_LEN) ==
	    -1) {
		msg_tunnel_free(&b->t[b->n]);
		log_warnx("session: site %" PRIu64 ": tunnel %" PRIu64 " refused "
		    "by the wire contract", e->site_id, v.tunnel_id);
		return -1;
	}
	b->n++;
	return 0;
}

static int
session_change_add(struct intent_change **ch, size_t *n, size_t *cap,
    uint64_t id, enum intent_op op)
{
	struct intent_change *c;

	if (*n == *cap) {
		if ((c = util_grow(*ch, cap, *n + 1, sizeof(*c), 16)) == NULL)
			return -1;
		*ch = c;
	}
	(*ch)[(*n)++] = (struct intent_change){ id, op };
	return 0;
}

/*
 * A change elsewhere in the mesh: rebuild only the tunnels of e that it
 * can touch, those to a peer in peers[] (sites whose own data changed)
 * and those with an id in ids[] (new or re-addressed tunnels), and add
 * or drop the tunnels the compiler added or removed for e (both sets
 * sorted).  Every other tunnel of e->cur is built only from things that
 * did not change, so it stays as it is, with its digest.  Adding a site
 * to a 1,000-site mesh then builds one tunnel per peer instead of every
 * tunnel of every peer.  Needs e->cur and its digests, and e's own site
 * unchanged (the caller rebuilds a changed site whole).  *changed says
 * whether a version was made.  Called inside a store transaction.
 */
static int
session_patch_edge(struct sessions *s, struct edge *e, const uint64_t *peers,
    size_t n_peers, const uint64_t *ids, size_t n_ids, bool *changed)
{
	struct model_error err = { 0 };
	struct intent_lookup lk;
	struct intent_params p;
	struct built chg = { 0 }, add = { 0 };
	struct intent_change *ch = NULL;
	struct msg_tunnel *cur = e->cur.tunnels;
	size_t nt = topo_edge_tunnel_count(s->topo, e->site_id);
	size_t nc = e->cur.n_tunnels, nch = 0, cap_ch = 0, n_rem = 0;
	size_t i = 0, k = 0, x = 0, w, need;
	uint64_t *tid = NULL, v;
	uint8_t hash[MSG_HASH_LEN];

	*changed = false;
	session_params(s, &lk, &p);
	/* The edge's tunnels as compiled now: ids, then their peers. */
	if (nt > 0 && ((tid = calloc(nt, 2 * sizeof(*tid))) == NULL ||
	    topo_edge_tunnels(s->topo, e->site_id, tid, tid + nt, nt) != nt))
		goto fail;
	while (i < nt || k < nc) {
		uint64_t id = i < nt ? tid[i] : UINT64_MAX;
		uint64_t peer = i < nt ? tid[nt + i] : 0;
		bool is_new, same;

		if (k < nc && cur[k].id < id) {
			if (session_change_add(&ch, &nch, &cap_ch, cur[k].id,
			    INTENT_OP_REMOVE) == -1)
				goto fail;
			n_rem++;
			k++;
			continue;
		}
		is_new = k == nc || cur[k].id != id;
		/* ids and the edge's tunnels are both sorted: walk along. */
		while (x < n_ids && ids[x] < id)
			x++;
		if (is_new || (x < n_ids && ids[x] == id) ||
		    session_id_in(peers, n_peers, peer)) {
			if (session_built_add(s, e, &p, i,
			    is_new ? NULL : &cur[k], is_new ? &add : &chg,
			    &same) == -1)
				goto fail;
			if (!same && session_change_add(&ch, &nch, &cap_ch, id,
			    is_new ? INTENT_OP_ADD : INTENT_OP_CHANGE) == -1)
				goto fail;
		}
		i++;
		if (!is_new)
			k++;
	}
	free(tid);
	tid = NULL;
	if (nch == 0) {
		session_built_free(&chg, true);
		session_built_free(&add, true);
		return 0;
	}
	/* Room first, then the version: after it nothing can fail. */
	need = nc - n_rem + add.n;
	if (need > nc) {
		/* Sized by util_size_class, as intent_build allocates it: a
		 * realloc within the same class leaves the block in place,
		 * where growing a 1 MiB array by one tunnel per edge for
		 * every site added was copying a gigabyte. */
		void *np;

		if ((np = realloc(e->cur.tunnels, util_size_class(need) *
		    sizeof(*cur))) == NULL)
			goto fail;
		e->cur.tunnels = cur = np;
		if ((np = realloc(e->digests, need * MSG_HASH_LEN)) == NULL)
			goto fail;
		e->digests = np;
	}
	if (store_edge_bump_intent(s->st, e->site_id, &v, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": version: %s", e->site_id,
		    err.message);
		goto fail;
	}
	/* Changed tunnels replaced and removed ones dropped in one pass... */
	w = 0;
	for (size_t r = 0, j = 0, c = 0; r < nc; r++) {
		while (j < nch && (ch[j].op == INTENT_OP_ADD ||
		    ch[j].tunnel_id < cur[r].id))
			j++;
		if (j < nch && ch[j].tunnel_id == cur[r].id) {
			msg_tunnel_free(&cur[r]);
			if (ch[j].op == INTENT_OP_REMOVE)
				continue;
			assert(c < chg.n); /* one built tunnel per change */
			cur[r] = chg.t[c];
			memcpy(e->digests + r * MSG_HASH_LEN,
			    chg.dg + c++ * MSG_HASH_LEN, MSG_HASH_LEN);
		}
		if (w != r) {
			cur[w] = cur[r];
			memcpy(e->digests + w * MSG_HASH_LEN,
			    e->digests + r * MSG_HASH_LEN, MSG_HASH_LEN);
		}
		w++;
	}
	/* ...then the new ones merged in from the back, keeping id order. */
	for (ptrdiff_t a = (ptrdiff_t)add.n - 1, r = (ptrdiff_t)w - 1,
	    o = (ptrdiff_t)need - 1; a >= 0; o--) {
		if (r >= 0 && cur[r].id > add.t[a].id) {
			cur[o] = cur[r];
			memcpy(e->digests + o * MSG_HASH_LEN,
			    e->digests + r-- * MSG_HASH_LEN, MSG_HASH_LEN);
		} else {
			cur[o] = add.t[a];
			memcpy(e->digests + o * MSG_HASH_LEN,
			    add.dg + a-- * MSG_HASH_LEN, MSG_HASH_LEN);
		}
	}
	e->cur.n_tunnels = need;
	e->cur.version = v;
	session_built_free(&chg, false);
	session_built_free(&add, false);
	if (pbconv_intent_hash_digests(&e->cur, e->digests, hash) == -1) {
		/* Only memory can fail here: start over, the edge gets a
		 * snapshot of a whole rebuild. */
		free(ch);
		session_cur_drop(e);
		return session_refresh_edge(s, e, changed);
	}
	memcpy(e->cur_hash, hash, MSG_HASH_LEN);
	session_hist_push(s, e, ch, nch, false, false);
	*changed = true;
	return 0;
fail:
	session_built_free(&chg, true);
	session_built_free(&add, true);
	free(ch);
	free(tid);
	return -1;
}

static bool
session_keys_equal(const struct msg_peer_key *a, size_t na,
    const struct msg_peer_key *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].epoch != b[i].epoch ||
		    a[i].not_after != b[i].not_after ||
		    memcmp(a[i].public_key, b[i].public_key, MSG_KEY_LEN) != 0 ||
		    a[i].signature_len != b[i].signature_len ||
		    memcmp(a[i].signature, b[i].signature,
		    a[i].signature_len) != 0)
			return false;
	return true;
}

/*
 * A peer announced a key: only Tunnel.peer.keys of some tunnels of e
 * changed.  Rather than rebuilding the whole intent (milliseconds for a
 * 1,000-peer edge, times every peer, for every announcement), update
 * those tunnels in place, digest only them, and make one new version
 * whose recorded changes are exactly those tunnels.  *changed says
 * whether a version was made.  Called inside a store transaction.
 */
static int
session_refresh_keys(struct sessions *s, struct edge *e, bool *changed)
{
	struct model_error err = { 0 };
	struct intent_change *ch = NULL;
	struct msg_intent hdr;
	uint8_t *dg = NULL, *all = NULL, hash[MSG_HASH_LEN];
	size_t n = 0;
	uint64_t v;

	*changed = false;
	if (e->cur.version == 0 || e->digests == NULL)
		return 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		const struct msg_tunnel *t = &e->cur.tunnels[i];
		const struct msg_peer_key *k;
		size_t nk;

		session_lk_keys(s, t->peer.site_id, &k, &nk);
		if (!session_keys_equal(t->peer.keys, t->peer.n_keys, k, nk))
			n++;
	}
	if (n == 0)
		return 0;
	if ((ch = calloc(n, sizeof(*ch))) == NULL ||
	    (dg = calloc(n, MSG_HASH_LEN)) == NULL)
		goto fail;
	/* Digest the updated copies first: nothing changes on failure. */
	n = 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		struct msg_tunnel t = e->cur.tunnels[i]; /* shallow, read only */
		const struct msg_peer_key *k;
		size_t nk;

		session_lk_keys(s, t.peer.site_id, &k, &nk);
		if (session_keys_equal(t.peer.keys, t.peer.n_keys, k, nk))
			continue;
		if (nk > MSG_PEER_KEYS_MAX)
			nk = MSG_PEER_KEYS_MAX;
		memset(t.peer.keys, 0, sizeof(t.peer.keys));
		if (nk > 0)
			memcpy(t.peer.keys, k, nk * sizeof(*k));
		t.peer.n_keys = nk;
		if (pbconv_tunnel_digest(&t, dg + n * MSG_HASH_LEN) == -1)
			goto fail;
		ch[n++] = (struct intent_change){ t.id, INTENT_OP_CHANGE };
	}
	if (store_edge_bump_intent(s->st, e->site_id, &v, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": version: %s", e->site_id,
		    err.message);
		goto fail;
	}
	/* The new hash over all digests (the changed ones replaced), still
	 * without touching e: hashing reads only the ids of the tunnels. */
	if ((all = malloc(e->cur.n_tunnels * MSG_HASH_LEN)) == NULL)
		goto fail;
	memcpy(all, e->digests, e->cur.n_tunnels * MSG_HASH_LEN);
	for (size_t i = 0, j = 0; i < e->cur.n_tunnels && j < n; i++)
		if (e->cur.tunnels[i].id == ch[j].tunnel_id)
			memcpy(all + i * MSG_HASH_LEN, dg + j++ * MSG_HASH_LEN,
			    MSG_HASH_LEN);
	hdr = e->cur;
	hdr.version = v;
	if (pbconv_intent_hash_digests(&hdr, all, hash) == -1)
		goto fail;
	/* Commit: the keys into the tunnels, the digests, version, hash. */
	for (size_t i = 0, j = 0; i < e->cur.n_tunnels && j < n; i++) {
		struct msg_tunnel *t = &e->cur.tunnels[i];
		const struct msg_peer_key *k;
		size_t nk;

		if (t->id != ch[j].tunnel_id)
			continue;
		session_lk_keys(s, t->peer.site_id, &k, &nk);
		if (nk > MSG_PEER_KEYS_MAX)
			nk = MSG_PEER_KEYS_MAX;
		memset(t->peer.keys, 0, sizeof(t->peer.keys));
		if (nk > 0)
			memcpy(t->peer.keys, k, nk * sizeof(*k));
		t->peer.n_keys = nk;
		j++;
	}
	free(e->digests);
	e->digests = all;
	e->cur.version = v;
	memcpy(e->cur_hash, hash, MSG_HASH_LEN);
	free(dg);
	session_hist_push(s, e, ch, n, false, false);
	*changed = true;
	return 0;
fail:
	free(ch);
	free(dg);
	free(all);
	return -1;
}

/*
 * After a restart: rebuild each edge at its stored version and keep that
 * version only when the edge's last acked hash proves the content is the
 * same; otherwise bump it (the edge then gets a snapshot).
 */
static int
session_restore_edge(struct sessions *s, struct edge *e)
{
	struct model_edge_state st = { 0 };
	struct model_error err = { 0 };
	bool changed;

	if (store_edge_get(s->st, e->site_id, &st, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": %s", e->site_id,
		    err.message);
		return -1;
	}
	e->applied = st.applied_version;
	if (st.conv_hash_len == MSG_HASH_LEN)
		memcpy(e->applied_hash, st.conv_hash, MSG_HASH_LEN);
	if (st.intent_version > 0 && st.applied_version == st.intent_version &&
	    st.conv_hash_len == MSG_HASH_LEN &&
	    session_build(s, e->site_id, st.intent_version, &e->cur) == 0) {
		if (session_digest(e, &e->cur, NULL, 0, false, &e->digests,
		    e->cur_hash) == 0 &&
		    memcmp(e->cur_hash, st.conv_hash, MSG_HASH_LEN) == 0) {
			/* Remember the version's hash: deltas start here. */
			session_hist_push(s, e, NULL, 0, false, true);
			model_edge_state_clear(&st);
			log_debug("session", "site %" PRIu64 ": version %" PRIu64
			    " still current", e->site_id, e->cur.version);
			return 0;
		}
	}
	model_edge_state_clear(&st);
	session_cur_drop(e);
	return session_refresh_edge(s, e, &changed);
}

/* Initial full compile against the stored allocations. */
static int
session_compile_all(struct sessions *s, bool restoring)
{
	struct model_tunnel *prev = NULL;
	struct topo_change chg = { 0 };
	struct topo_output *out = NULL;
	struct model_error err = { 0 };
	struct topo_input in;
	struct topo_prev tp;
	uint64_t next_id = 0, t0 = util_mono_ns();
	size_t nprev = 0;
	int rc = -1;

	if (session_load_model(s) == -1)
		return -1;
	if (store_tunnel_list(s->st, &prev, &nprev, &next_id, &err) == -1) {
		log_warnx("session: loading tunnels: %s", err.message);
		return -1;
	}
	in = (struct topo_input){ &s->policy, &s->crypto, s->sites,
	    s->n_sites };
	tp = (struct topo_prev){ prev, nprev, next_id };
	if (topo_compile(&in, &tp, &out, &chg, &err) == -1) {
		log_warnx("session: compiling the topology: %s (%s)",
		    err.message, err.field);
		free(prev);
		return -1;
	}
	free(prev);
	topo_free(s->topo);
	s->topo = out;
	if (store_begin(s->st, &err) == -1)
		goto out;
	if (session_apply_change(s, &chg) == -1) {
		store_rollback(s->st);
		goto out;
	}
	if (store_commit(s->st, &err) == -1)
		goto out;
	if (session_load_epochs(s) == -1)
		goto out;
	if (s->metrics)
		metrics_compile_done(s->metrics, (util_mono_ns() - t0) / 1000);

	/* Every live site gets an edge record and an intent. */
	if (store_begin(s->st, &err) == -1)
		goto out;
	for (size_t i = 0; i < topo_edge_count(s->topo); i++) {
		const struct model_site *ms = topo_edge_site(s->topo, i);
		struct edge *e = session_edge_get(s, ms->id);
		bool changed;

		if (e == NULL)
			break;
		if (!e->live && restoring) {
			session_load_cert(s, e);
			session_load_keys(s, e);
		}
		e->live = true;
		if (restoring ? session_restore_edge(s, e) == -1 :
		    session_refresh_edge(s, e, &changed) == -1) {
			store_rollback(s->st);
			goto out;
		}
		if (!restoring && changed)
			session_push(s, e);
	}
	if (store_commit(s->st, &err) == -1)
		goto out;
	rc = 0;
out:
	topo_change_free(&chg);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sending */

static int
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

static int
session_change_cmp(const void *a, const void *b)
{
	const struct intent_change *x = a, *y = b;

	return x->tunnel_id < y->tunnel_id ? -1 : x->tunnel_id > y->tunnel_id;
}

static const struct msg_tunnel *
session_cur_tunnel(const struct edge *e, uint64_t id)
{
	size_t lo = 0, hi = e->cur.n_tunnels;

	/* intent_build emits tunnels in id order. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (e->cur.tunnels[mid].id == id)
			return &e->cur.tunnels[mid];
		if (e->cur.tunnels[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Delta from e->base to e->cur.version, composed from the history.
 * Tunnel ids are never reused, so an id's changes on the way are
 * ADD? CHANGE* REMOVE?: an ADD among them means the edge did not have the
 * tunnel at e->base; the current intent says whether it should have it
 * now.  Upserted tunnels point into e->cur (the delta is only encoded,
 * never freed with msg_*_free).  Returns 0, 1 when the history cannot
 * reach back to e->base, -1 on error.
 */
static int
session_make_delta(struct edge *e, struct msg_intent_delta *d)
{
	struct intent_change *all = NULL;
	size_t n = 0, nf = 0, first = SIZE_MAX;
	bool site = false;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < e->hist_len; i++)
		if (session_hist_at(e, i)->version == e->base + 1) {
			first = i;
			break;
		}
	if (first == SIZE_MAX ||
	    session_hist_at(e, e->hist_len - 1)->version != e->cur.version)
		return 1;
	for (size_t i = first; i < e->hist_len; i++) {
		if (session_hist_at(e, i)->unknown)
			return 1;
		n += session_hist_at(e, i)->n;
	}
	for (size_t i = first; i < e->hist_len; i++)
		site |= session_hist_at(e, i)->site_changed;
	if (n > 0) {
		size_t off = 0;

		if ((all = calloc(n, sizeof(*all))) == NULL)
			return -1;
		for (size_t i = first; i < e->hist_len; i++) {
			struct hist *h = session_hist_at(e, i);

			for (size_t j = 0; j < h->n; j++)
				all[off++] = h->ch[j];
		}
	}
	if (n > 0)
		qsort(all, n, sizeof(*all), session_change_cmp);
	for (size_t i = 0; i < n; i++) {
		if (nf > 0 && all[nf - 1].tunnel_id == all[i].tunnel_id) {
			if (all[i].op == INTENT_OP_ADD)
				all[nf - 1].op = INTENT_OP_ADD;
			continue;
		}
		all[nf++] = all[i];
	}
	d->from_version = e->base;
	d->version = e->cur.version;
	if (site) {
		d->has_site = true;
		d->site = e->cur.site;
	}
	if (nf > 0 && ((d->upsert = calloc(nf, sizeof(*d->upsert))) == NULL ||
	    (d->remove = calloc(nf, sizeof(*d->remove))) == NULL)) {
		free(d->upsert);
		d->upsert = NULL;
		free(all);
		return -1;
	}
	for (size_t i = 0; i < nf; i++) {
		const struct msg_tunnel *t = session_cur_tunnel(e,
		    all[i].tunnel_id);

		if (t != NULL)
			d->upsert[d->n_upsert++] = *t;
		else if (all[i].op != INTENT_OP_ADD)
			d->remove[d->n_remove++] = all[i].tunnel_id;
	}
	free(all);
	return 0;
}

static void
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
		r = session_make_delta(e, &m.u.delta);
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

/*
 * Peers of an edge: distinct peer site ids of its current tunnels, into a
 * malloc'd *out (caller frees).  Returns the count (0 when none or out of
 * memory).
 */
static size_t
session_peers(const struct edge *e, uint64_t **out)
{
	size_t n = 0;

	*out = NULL;
	if (e->cur.n_tunnels == 0 ||
	    (*out = calloc(e->cur.n_tunnels, sizeof(**out))) == NULL)
		return 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++)
		(*out)[n++] = e->cur.tunnels[i].peer.site_id;
	qsort(*out, n, sizeof(**out), util_cmp_u64);
	for (size_t i = 1, k = 1; i <= n; i++) {
		if (i == n) {
			n = k;
			break;
		}
		if ((*out)[i] != (*out)[k - 1])
			(*out)[k++] = (*out)[i];
	}
	return n;
}

static void
session_send_keys(struct sessions *s, struct edge *to, const struct edge *of)
{
	struct msg_controller_message m;

	if (of->n_keys == 0 || to->stream == NULL || !to->hello)
		return;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_PEER_KEYS;
	m.u.peer_keys.peer_site_id = of->site_id;
	memcpy(m.u.peer_keys.keys, of->keys, of->n_keys * sizeof(of->keys[0]));
	m.u.peer_keys.n_keys = of->n_keys;
	session_send(s, to, &m, METRICS_RPC_KEY_RELAYED);
}

/* ------------------------------------------------------------------ */
/* Rekey: make-before-break, ack-gated (design.md §4) */

static void
session_send_rekey(struct sessions *s, uint64_t to_site, uint64_t tunnel_id,
    uint64_t epoch, enum msg_rekey_step step, enum msg_rekey_reason reason,
    uint32_t spi)
{
	struct edge *e = session_edge_find(s, to_site);
	struct msg_controller_message m;

	if (e == NULL || e->stream == NULL || !e->hello)
		return; /* resent on its next hello */
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_REKEY;
	m.u.rekey = (struct msg_rekey_order){ tunnel_id, epoch, step, reason,
	    spi, step == MSG_REKEY_STEP_RETIRE ? SESSION_DRAIN_S : 0 };
	if (session_send(s, e, &m, METRICS_RPC_MAX) == 0 || !e->blocked)
		return;
	/* Dropped by backpressure: remembered, sent again after the drain
	 * (only these, so a small queue still makes progress). */
	if (e->n_dropped == e->cap_dropped) {
		size_t cap = e->cap_dropped ? e->cap_dropped * 2 : 8;
		struct rekey_drop *d = realloc(e->dropped, cap * sizeof(*d));

		if (d == NULL)
			return; /* the next hello repeats it */
		e->dropped = d;
		e->cap_dropped = cap;
	}
	e->dropped[e->n_dropped++] = (struct rekey_drop){ tunnel_id, epoch,
	    step, reason, spi };
}

/* A stored reason as the wire's enum (anything unknown: unspecified). */
static enum msg_rekey_reason
session_reason(uint32_t r)
{
	switch (r) {
	case MSG_REKEY_REASON_TIME:
	case MSG_REKEY_REASON_VOLUME:
	case MSG_REKEY_REASON_OPERATOR:
	case MSG_REKEY_REASON_PEER_REVOKED:
		return (enum msg_rekey_reason)r;
	default:
		return MSG_REKEY_REASON_UNSPECIFIED;
	}
}

/* Is a dropped order still the next step of its direction? */
static bool
session_drop_pending(struct sessions *s, const struct edge *e,
    const struct rekey_drop *d)
{
	const struct model_tunnel *t = topo_tunnel_get(s->topo, d->tunnel_id);
	const struct model_epoch *x;
	uint64_t peer, sender;

	if (t == NULL || (t->site_a != e->site_id && t->site_b != e->site_id))
		return false;
	peer = t->site_a == e->site_id ? t->site_b : t->site_a;
	sender = d->step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? e->site_id : peer;
	if (d->step == MSG_REKEY_STEP_RETIRE) {
		size_t n;
		const struct model_epoch *v = epochs_of(s->epochs, t->id, &n);

		for (size_t i = 0; i < n; i++)
			if (v[i].sender_site == sender &&
			    v[i].state == MODEL_EPOCH_DRAINING &&
			    v[i].epoch < d->epoch)
				return true;
		return false;
	}
	if ((x = epochs_find(s->epochs, t->id, sender, d->epoch)) == NULL)
		return false;
	return d->step == MSG_REKEY_STEP_INSTALL_INBOUND ?
	    x->state == MODEL_EPOCH_INSTALLED : x->state == MODEL_EPOCH_ACKED;
}

/* Start a new epoch for the direction sender -> receiver of tunnel t. */
static void
session_rekey_start(struct sessions *s, const struct model_tunnel *t,
    uint64_t sender, enum msg_rekey_reason reason)
{
	struct model_error err = { 0 };
	struct model_epoch ne = { 0 };
	uint64_t recv = sender == t->site_a ? t->site_b : t->site_a;
	uint64_t max = 0;
	const struct model_epoch *v;
	size_t n;

	v = epochs_of(s->epochs, t->id, &n);
	for (size_t i = 0; i < n; i++) {
		if (v[i].sender_site != sender)
			continue;
		if (v[i].state == MODEL_EPOCH_INSTALLED ||
		    v[i].state == MODEL_EPOCH_ACKED)
			return; /* one rekey at a time per direction */
		if (v[i].epoch > max)
			max = v[i].epoch;
	}
	ne.tunnel_id = t->id;
	ne.sender_site = sender;
	ne.epoch = max + 1;
	ne.state = MODEL_EPOCH_INSTALLED;
	ne.changed_at = session_now(s);
	ne.reason = (uint32_t)reason;
	session_recv_address(s, t, sender, ne.recv_address,
	    sizeof(ne.recv_address));
	if (store_epoch_add(s->st, &ne, &err) == -1 ||
	    epochs_insert(s->epochs, &ne) == -1) {
		log_warnx("session: tunnel %" PRIu64 ": new epoch: %s", t->id,
		    err.message);
		return;
	}
	log_info("session: tunnel %" PRIu64 " %" PRIu64 "->%" PRIu64
	    ": rekey to epoch %" PRIu64 " (%s)", t->id, sender, recv, ne.epoch,
	    msg_rekey_reason_name(reason));
	session_send_rekey(s, recv, t->id, ne.epoch,
	    MSG_REKEY_STEP_INSTALL_INBOUND, reason, ne.spi);
}

/*
 * Many new epochs at once (a site's tunnels, a time scan) go into the
 * store in one transaction, not one synced commit each: thousands of
 * rekeys on a large mesh would otherwise spend seconds in fsync.  If the
 * commit fails, the cache is reloaded from the store, so the epochs that
 * did not land are forgotten and start again at the next scan.
 */
static void
session_rekey_batch(struct sessions *s, bool begin)
{
	struct model_error err = { 0 };

	if (begin) {
		if (store_begin(s->st, &err) == -1)
			log_warnx("session: rekeys: %s", err.message);
		return;
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing new SA epochs: %s", err.message);
		session_load_epochs(s);
	}
}

/* Rotate both directions of every tunnel of site_id. */
static void
session_rekey_site(struct sessions *s, uint64_t site_id,
    enum msg_rekey_reason reason)
{
	struct edge *e = session_edge_find(s, site_id);

	if (e == NULL || !e->live)
		return;
	session_rekey_batch(s, true);
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo,
		    e->cur.tunnels[i].id);

		if (t == NULL)
			continue;
		session_rekey_start(s, t, t->site_a, reason);
		session_rekey_start(s, t, t->site_b, reason);
	}
	session_rekey_batch(s, false);
}

static void
session_rekey_ack(struct sessions *s, struct edge *e, const struct msg_ack *a)
{
	const struct model_tunnel *t = topo_tunnel_get(s->topo,
	    a->rekey_tunnel_id);
	struct model_error err = { 0 };
	struct model_epoch *ep, *old;
	uint64_t peer, sender;

	if (t == NULL || (t->site_a != e->site_id && t->site_b != e->site_id)) {
		log_warnx("session: site %" PRIu64 ": rekey ack for a tunnel "
		    "it does not have (%" PRIu64 ")", e->site_id,
		    a->rekey_tunnel_id);
		return;
	}
	peer = t->site_a == e->site_id ? t->site_b : t->site_a;
	/* INSTALL and RETIRE are acked by the receiver, SWITCH by the
	 * sender. */
	sender = a->rekey_step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? e->site_id :
	    peer;
	ep = epochs_find(s->epochs, t->id, sender, a->rekey_epoch);
	if (ep == NULL)
		return;
	if (!a->ok) {
		log_warnx("session: site %" PRIu64 ": rekey %s of tunnel %"
		    PRIu64 " epoch %" PRIu64 " failed: %s", e->site_id,
		    msg_rekey_step_name(a->rekey_step), t->id, ep->epoch,
		    a->reason);
		return;
	}
	switch (a->rekey_step) {
	case MSG_REKEY_STEP_INSTALL_INBOUND:
		if (ep->state != MODEL_EPOCH_INSTALLED)
			return;
		if (store_epoch_set_state(s->st, t->id, sender, ep->epoch,
		    MODEL_EPOCH_ACKED, session_now(s), &err) == -1)
			break;
		ep->state = MODEL_EPOCH_ACKED;
		session_send_rekey(s, sender, t->id, ep->epoch,
		    MSG_REKEY_STEP_SWITCH_OUTBOUND,
		    session_reason(ep->reason), ep->spi);
		return;
	case MSG_REKEY_STEP_SWITCH_OUTBOUND: {
		uint64_t ep_no = ep->epoch;
		enum msg_rekey_reason why = session_reason(ep->reason);
		uint32_t old_spi = 0;

		if (ep->state != MODEL_EPOCH_ACKED)
			return;
		old = session_epoch_active(s, t->id, sender);
		if (store_begin(s->st, &err) == -1)
			break;
		if (old != NULL) {
			old_spi = old->spi;
			store_epoch_set_state(s->st, t->id, sender, old->epoch,
			    MODEL_EPOCH_DRAINING, session_now(s), &err);
		}
		store_epoch_set_state(s->st, t->id, sender, ep_no,
		    MODEL_EPOCH_ACTIVE, session_now(s), &err);
		if (store_commit(s->st, &err) == -1)
			break;
		if (old != NULL)
			old->state = MODEL_EPOCH_DRAINING;
		ep->state = MODEL_EPOCH_ACTIVE;
		if (old_spi != 0)
			session_send_rekey(s, peer, t->id, ep_no,
			    MSG_REKEY_STEP_RETIRE, why, old_spi);
		/* Both ends' intents carry the active SPIs: that tunnel
		 * alone is rebuilt in each. */
		if (session_ids_add(&s->retunnel, &s->n_retunnel,
		    &s->cap_retunnel, t->id) == -1) {
			session_mark_dirty(s, t->site_a);
			session_mark_dirty(s, t->site_b);
		}
		session_arm_flush(s);
		return;
	}
	case MSG_REKEY_STEP_RETIRE:
		/* Forget every draining epoch of this direction older than
		 * the acked one. */
		for (;;) {
			size_t n;
			const struct model_epoch *v = epochs_of(s->epochs,
			    t->id, &n), *x = NULL;

			for (size_t i = 0; i < n && x == NULL; i++)
				if (v[i].sender_site == sender &&
				    v[i].state == MODEL_EPOCH_DRAINING &&
				    v[i].epoch < a->rekey_epoch)
					x = &v[i];
			if (x == NULL || store_epoch_delete(s->st, t->id,
			    sender, x->epoch, &err) == -1)
				break;
			(void)epochs_remove(s->epochs, t->id, sender,
			    x->epoch);
		}
		if (err.code == MODEL_OK)
			return;
		break;
	default:
		return;
	}
	log_warnx("session: tunnel %" PRIu64 ": epoch bookkeeping: %s", t->id,
	    err.message);
}

/* On hello: repeat the rekey steps this edge has not acked yet. */
static void
session_rekey_resend(struct sessions *s, struct edge *e)
{
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		uint64_t tid = e->cur.tunnels[i].id;
		uint64_t peer = e->cur.tunnels[i].peer.site_id;

		size_t n;
		const struct model_epoch *v = epochs_of(s->epochs, tid, &n);

		for (size_t j = 0; j < n; j++) {
			const struct model_epoch *x = &v[j];

			if (x->state == MODEL_EPOCH_INSTALLED &&
			    x->sender_site == peer)
				session_send_rekey(s, e->site_id, tid, x->epoch,
				    MSG_REKEY_STEP_INSTALL_INBOUND,
				    session_reason(x->reason), x->spi);
			else if (x->state == MODEL_EPOCH_ACKED &&
			    x->sender_site == e->site_id)
				session_send_rekey(s, e->site_id, tid, x->epoch,
				    MSG_REKEY_STEP_SWITCH_OUTBOUND,
				    session_reason(x->reason), x->spi);
			else if (x->state == MODEL_EPOCH_DRAINING &&
			    x->sender_site == peer) {
				const struct model_epoch *act =
				    session_epoch_active(s, tid, peer);

				if (act != NULL && act->epoch > x->epoch)
					session_send_rekey(s, e->site_id, tid,
					    act->epoch, MSG_REKEY_STEP_RETIRE,
					    session_reason(act->reason),
					    x->spi);
			}
		}
	}
}

/* Time-based rekey: directions whose active epoch outlived the profile. */
static void
session_rekey_scan(struct sessions *s)
{
	struct rekey_due {
		uint64_t tunnel_id, sender;
	} *due = NULL, *nd;
	int64_t now = session_now(s);
	uint32_t life = s->crypto.rekey_seconds;
	const struct model_epoch *v;
	size_t cursor = 0, n, n_due = 0, cap = 0;

	if (life == 0)
		return;
	/* Collect first: starting a rekey adds to the cache being walked. */
	while ((v = epochs_next(s->epochs, &cursor, &n)) != NULL)
		for (size_t i = 0; i < n; i++) {
			if (v[i].state != MODEL_EPOCH_ACTIVE ||
			    v[i].changed_at == 0 ||
			    now - v[i].changed_at < (int64_t)life)
				continue;
			if (n_due == cap) {
				if ((nd = util_grow(due, &cap, n_due + 1,
				    sizeof(*due), 64)) == NULL)
					goto out;
				due = nd;
			}
			due[n_due++] = (struct rekey_due){ v[i].tunnel_id,
			    v[i].sender_site };
		}
	session_rekey_batch(s, true);
	for (size_t i = 0; i < n_due; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo,
		    due[i].tunnel_id);

		if (t != NULL)
			session_rekey_start(s, t, due[i].sender,
			    MSG_REKEY_REASON_TIME);
	}
	session_rekey_batch(s, false);
out:
	free(due);
}

/* ------------------------------------------------------------------ */
/* Recompiling after model changes */

static void
session_site_gone(struct sessions *s, uint64_t id)
{
	struct edge *e = session_edge_find(s, id);
	const struct model_site *ms = session_site(s, id);

	if (e == NULL)
		return;
	e->live = false;
	if (e->stream != NULL) {
		log_info("session: site %" PRIu64 " %s: closing its session",
		    id, ms && ms->revoked ? "revoked" : "deleted");
		rpc_stream_close(e->stream, RPC_PERMISSION_DENIED,
		    ms && ms->revoked ? "site revoked" : "site deleted");
	}
	session_cur_drop(e);
	session_hist_clear(e);
	e->n_keys = 0;
}

/*
 * Tests only (test_check_patch): a patched intent must equal a whole
 * rebuild, tunnel for tunnel, digest for digest.  Logs what differs.
 */
static void
session_check_patch(struct sessions *s, struct edge *e)
{
	struct msg_intent full;
	struct intent_change *ch = NULL;
	uint8_t *dg = NULL, hash[MSG_HASH_LEN];
	size_t n = 0;
	bool site_changed = false;

	if (session_build(s, e->site_id, e->cur.version, &full) == -1)
		return;
	if (intent_diff(&e->cur, &full, &ch, &n, &site_changed) == -1 ||
	    session_digest(e, &full, NULL, 0, false, &dg, hash) == -1)
		log_warnx("session: site %" PRIu64 ": patch check failed",
		    e->site_id);
	else if (n > 0 || site_changed)
		log_warnx("session: site %" PRIu64 ": patched intent differs "
		    "from a whole rebuild (%zu tunnel(s), first %" PRIu64 ")",
		    e->site_id, n, n > 0 ? ch[0].tunnel_id : 0);
	else if (memcmp(dg, e->digests, full.n_tunnels * MSG_HASH_LEN) != 0 ||
	    memcmp(hash, e->cur_hash, MSG_HASH_LEN) != 0)
		log_warnx("session: site %" PRIu64 ": patched intent's digests "
		    "differ from a whole rebuild's", e->site_id);
	free(ch);
	free(dg);
	msg_intent_free(&full);
}

/*
 * Recompile the sites changed since the last flush (one topo_site_changed
 * each), then bring every edge they touch up to date: a changed site's
 * intent is rebuilt whole, every other touched edge is patched (only its
 * tunnels to changed sites, and new or removed ones).
 */
static void
session_recompile(struct sessions *s)
{
	struct model_error err = { 0 };
	struct topo_change chg = { 0 };
	uint64_t *dirty = s->dirty, t0 = util_mono_ns();
	size_t n_dirty = s->n_dirty;
	uint64_t *affected = NULL, *revoked = NULL, *added = NULL;
	size_t n_aff = 0, cap_aff = 0, n_rev = 0, cap_rev = 0;
	size_t n_added = 0, cap_added = 0, n_patched = 0;
	bool all = s->dirty_all, oom = false;

	s->dirty = NULL;
	s->n_dirty = s->cap_dirty = 0;
	s->dirty_all = false;
	s->flush_at = 0;

	if (all) {
		/* Policy or crypto changed: compile everything against the
		 * current allocations, then refresh every edge. */
		free(dirty);
		if (session_compile_all(s, false) == -1)
			log_warnx("session: full recompile failed; keeping "
			    "the previous intents");
		return;
	}
	if (session_load_model(s) == -1)
		goto out;
	{
		struct topo_input in = { &s->policy, &s->crypto, s->sites,
		    s->n_sites };

		if (store_begin(s->st, &err) == -1)
			goto out;
		for (size_t i = 0; i < n_dirty; i++) {
			struct edge *e;

			topo_change_free(&chg);
			if (topo_site_changed(s->topo, &in, dirty[i], &chg,
			    &err) == -1) {
				log_warnx("session: site %" PRIu64 ": compile: "
				    "%s (%s)", dirty[i], err.message,
				    err.field);
				continue;
			}
			if (session_apply_change(s, &chg) == -1)
				continue;
			for (size_t j = 0; j < chg.n_edges; j++)
				if (session_ids_add(&affected, &n_aff,
				    &cap_aff, chg.edges[j]) == -1)
					oom = true;
			if (session_ids_add(&affected, &n_aff, &cap_aff,
			    dirty[i]) == -1)
				oom = true;
			for (size_t j = 0; j < chg.n_added; j++)
				if (session_ids_add(&added, &n_added,
				    &cap_added, chg.added[j].id) == -1)
					oom = true;
			/* Revoked or deleted: either way its former peers
			 * rotate their keys. */
			for (size_t j = 0; j < chg.n_removed_sites; j++) {
				session_site_gone(s, chg.removed_sites[j]);
				if (session_ids_add(&revoked, &n_rev, &cap_rev,
				    chg.removed_sites[j]) == -1)
					oom = true;
			}
			if ((e = session_edge_find(s, dirty[i])) != NULL &&
			    topo_site(s->topo, dirty[i]) == NULL)
				e->live = false;
		}
		if (affected != NULL)
			util_sort_unique_u64(affected, &n_aff);
		if (added != NULL)
			util_sort_unique_u64(added, &n_added);
		qsort(dirty, n_dirty, sizeof(*dirty), util_cmp_u64);
		for (size_t i = 0; i < n_aff; i++) {
			struct edge *e;
			bool changed = false;
			int rc;

			if (topo_site(s->topo, affected[i]) == NULL)
				continue;
			if ((e = session_edge_get(s, affected[i])) == NULL)
				continue;
			e->live = true;
			/* Without memory for the sets a patch could miss a
			 * change: rebuild whole instead. */
			if (!oom && e->cur.version > 0 && e->digests != NULL &&
			    !session_id_in(dirty, n_dirty, e->site_id)) {
				rc = session_patch_edge(s, e, dirty, n_dirty,
				    added, n_added, &changed);
				n_patched++;
				if (rc == 0 && s->cfg.check_patch)
					session_check_patch(s, e);
			} else {
				rc = session_refresh_edge(s, e, &changed);
			}
			if (rc == -1)
				continue;
		}
		if (store_commit(s->st, &err) == -1) {
			log_warnx("session: storing versions: %s",
			    err.message);
			goto out;
		}
	}
	if (s->metrics)
		metrics_compile_done(s->metrics, (util_mono_ns() - t0) / 1000);
	log_debug("session", "recompiled %zu site(s), %zu edge(s) affected "
	    "(%zu patched) in %" PRIu64 " us", n_dirty, n_aff, n_patched,
	    (util_mono_ns() - t0) / 1000);
	for (size_t i = 0; i < n_aff; i++) {
		struct edge *e = session_edge_find(s, affected[i]);

		if (e != NULL)
			session_push(s, e);
	}
	/* A revoked or deleted site's former peers rotate their keys: they
	 * shared epochs (and SA keys) with it. */
	for (size_t i = 0; i < n_rev; i++)
		for (size_t j = 0; j < n_aff; j++)
			if (affected[j] != revoked[i])
				session_rekey_site(s, affected[j],
				    MSG_REKEY_REASON_PEER_REVOKED);
out:
	topo_change_free(&chg);
	free(dirty);
	free(affected);
	free(revoked);
	free(added);
}

/*
 * Rebuild the edges whose peers announced new epoch keys: the topology
 * did not change, so no recompile, only a new intent version for each
 * edge whose tunnels now carry different keys (a delta upserting them).
 */
static void
session_rebuild(struct sessions *s)
{
	struct model_error err = { 0 };
	uint64_t *ids = s->rebuild;
	size_t n = s->n_rebuild;
	bool *changed;

	s->rebuild = NULL;
	s->n_rebuild = s->cap_rebuild = 0;
	if (n == 0 || (changed = calloc(n, sizeof(*changed))) == NULL) {
		free(ids);
		return;
	}
	if (store_begin(s->st, &err) == -1) {
		log_warnx("session: rebuilding intents: %s", err.message);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct edge *e = session_edge_find(s, ids[i]);

		if (e == NULL || !e->live || e->cur.version == 0)
			continue;
		/* The in-place update failed (memory): a full rebuild. */
		if (session_refresh_keys(s, e, &changed[i]) == -1 &&
		    session_refresh_edge(s, e, &changed[i]) == -1)
			changed[i] = false;
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing versions: %s", err.message);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct edge *e = session_edge_find(s, ids[i]);

		if (changed[i] && e != NULL)
			session_push(s, e);
	}
out:
	free(changed);
	free(ids);
}

/*
 * Rebuild the tunnels whose SA epochs changed in both of their ends'
 * intents (a patch of those tunnels only): one rekey on a large mesh
 * touches two edges and one tunnel each, not every peer of both.
 */
static void
session_retunnel(struct sessions *s)
{
	struct model_error err = { 0 };
	uint64_t *ids = s->retunnel, *ends = NULL;
	size_t n = s->n_retunnel, n_ends = 0, cap_ends = 0;
	bool *changed = NULL;

	s->retunnel = NULL;
	s->n_retunnel = s->cap_retunnel = 0;
	if (n == 0 || ids == NULL) {
		free(ids);
		return;
	}
	util_sort_unique_u64(ids, &n);
	for (size_t i = 0; i < n; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo, ids[i]);

		if (t != NULL &&
		    (session_ids_add(&ends, &n_ends, &cap_ends, t->site_a) == -1 ||
		    session_ids_add(&ends, &n_ends, &cap_ends, t->site_b) == -1))
			goto oom;
	}
	if (ends != NULL)
		util_sort_unique_u64(ends, &n_ends);
	if (n_ends == 0)
		goto out;
	if ((changed = calloc(n_ends, sizeof(*changed))) == NULL)
		goto oom;
	if (store_begin(s->st, &err) == -1) {
		log_warnx("session: rebuilding tunnels: %s", err.message);
		goto out;
	}
	for (size_t i = 0; i < n_ends; i++) {
		struct edge *e = session_edge_find(s, ends[i]);

		if (e == NULL || !e->live || e->cur.version == 0 ||
		    e->digests == NULL)
			continue;
		if (session_patch_edge(s, e, NULL, 0, ids, n,
		    &changed[i]) == -1 &&
		    session_refresh_edge(s, e, &changed[i]) == -1)
			changed[i] = false;
		else if (s->cfg.check_patch)
			session_check_patch(s, e);
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing versions: %s", err.message);
		goto out;
	}
	log_debug("session", "rebuilt %zu tunnel(s) in %zu edge(s)", n,
	    n_ends);
	for (size_t i = 0; i < n_ends; i++) {
		struct edge *e = session_edge_find(s, ends[i]);

		if (changed[i] && e != NULL)
			session_push(s, e);
	}
	goto out;
oom:
	/* Without memory for the sets: recompile the ends instead. */
	for (size_t i = 0; i < n; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo, ids[i]);

		if (t != NULL) {
			session_mark_dirty(s, t->site_a);
			session_mark_dirty(s, t->site_b);
		}
	}
	session_arm_flush(s);
out:
	free(changed);
	free(ends);
	free(ids);
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

void
session_rekey_request(struct sessions *s, bool site, uint64_t id)
{
	uint64_t one = 1;
	bool queued = false;

	pthread_mutex_lock(&s->lock);
	if (s->n_pending_rekey == s->cap_pending_rekey) {
		size_t cap = s->cap_pending_rekey ? s->cap_pending_rekey * 2 : 8;
		struct rekey_req *r = realloc(s->pending_rekey,
		    cap * sizeof(*r));

		if (r != NULL) {
			s->pending_rekey = r;
			s->cap_pending_rekey = cap;
		}
	}
	if (s->n_pending_rekey < s->cap_pending_rekey) {
		s->pending_rekey[s->n_pending_rekey++] =
		    (struct rekey_req){ site, id };
		queued = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (!queued) {
		log_warnx("session: out of memory; rekey of %s %" PRIu64
		    " dropped", site ? "site" : "tunnel", id);
		return;
	}
	if (write(s->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("session: wake");
}

/* Loop side of session_rekey_request. */
static void
session_rekey_requested(struct sessions *s, const struct rekey_req *r)
{
	const struct model_tunnel *t;

	if (r->site) {
		log_info("session: operator rekey of site %" PRIu64, r->id);
		session_rekey_site(s, r->id, MSG_REKEY_REASON_OPERATOR);
		return;
	}
	if ((t = topo_tunnel_get(s->topo, r->id)) == NULL) {
		log_warnx("session: operator rekey of tunnel %" PRIu64 ": no "
		    "such tunnel any more", r->id);
		return;
	}
	log_info("session: operator rekey of tunnel %" PRIu64, r->id);
	session_rekey_start(s, t, t->site_a, MSG_REKEY_REASON_OPERATOR);
	session_rekey_start(s, t, t->site_b, MSG_REKEY_REASON_OPERATOR);
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
	size_t nrk;
	uint64_t v;

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
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < nrk; i++)
		session_rekey_requested(s, &rk[i]);
	free(rk);
	if (s->dirty_all || s->n_dirty > 0)
		session_arm_flush(s);
}

/* ------------------------------------------------------------------ */
/* Timers */

static void
session_flush_acks(struct sessions *s)
{
	struct model_error err = { 0 };
	bool any = false;

	for (size_t i = 0; i < s->tab_cap; i++)
		any |= s->tab[i].e != NULL && s->tab[i].e->applied_dirty;
	if (!any)
		return;
	if (store_begin(s->st, &err) == -1)
		return;
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL || !e->applied_dirty)
			continue;
		if (store_edge_set_applied(s->st, e->site_id, e->applied,
		    e->applied_hash, MSG_HASH_LEN, &err) == -1)
			log_warnx("session: site %" PRIu64 ": ack: %s",
			    e->site_id, err.message);
		e->applied_dirty = false;
	}
	if (store_commit(s->st, &err) == -1)
		log_warnx("session: storing acks: %s", err.message);
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

int
session_timeout_ms(const struct sessions *s)
{
	uint64_t now = util_mono_ms(), next = s->next_keepalive;

	if (s->flush_at != 0 && s->flush_at < next)
		next = s->flush_at;
	if (s->next_ack_flush < next)
		next = s->next_ack_flush;
	if (s->next_rekey_scan < next)
		next = s->next_rekey_scan;
	return next <= now ? 0 : (int)(next - now);
}

void
session_tick(struct sessions *s)
{
	uint64_t now = util_mono_ms();

	if (s->flush_at != 0 && now >= s->flush_at) {
		if (s->dirty_all || s->n_dirty > 0)
			session_recompile(s);
		s->flush_at = 0;
		session_rebuild(s);
		session_retunnel(s);
	}
	if (now >= s->next_ack_flush) {
		session_flush_acks(s);
		s->next_ack_flush = now + SESSION_ACK_FLUSH_MS;
	}
	if (now >= s->next_keepalive) {
		session_keepalives(s);
		s->next_keepalive = now + s->cfg.keepalive_s * 1000ull;
	}
	if (now >= s->next_rekey_scan) {
		session_rekey_scan(s);
		s->next_rekey_scan = now + SESSION_REKEY_SCAN_MS;
	}
}

/* ------------------------------------------------------------------ */
/* Stream handlers */

static int
session_on_open(struct rpc_stream *st, const struct rpc_peer *peer, void *arg)
{
	struct sessions *s = arg;
	struct model_site ms;
	struct model_error err = { 0 };
	struct conn *c;
	uint64_t id;

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
	/* The store is the revocation list: checked on every open. */
	if (store_site_get(s->st, id, &ms, &err) == -1 || ms.revoked) {
		log_warnx("session: refused %s (%s): site %s", peer->addr,
		    peer->cn, err.code == MODEL_E_NOT_FOUND ? "deleted" :
		    err.code != MODEL_OK ? err.message : "revoked");
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_REFUSED);
		return RPC_PERMISSION_DENIED;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return RPC_RESOURCE_EXHAUSTED;
	c->s = s;
	c->cert_site = id;
	rpc_stream_set_user(st, c);
	log_debug("session", "stream from %s (%s)", peer->addr, peer->cn);
	return RPC_OK;
}

/*
 * An edge ahead of the controller (its database was restored from an
 * older backup): move the edge's version past the one it has, so that the
 * snapshot it gets is newer than what it runs.  Bounded: a version absurdly
 * far ahead is left alone (logged; the edge then refuses the snapshot).
 */
static void
session_skip_past(struct sessions *s, struct edge *e, uint64_t edge_version)
{
	struct model_error err = { 0 };
	uint64_t v = e->cur.version;

	log_warnx("session: site %" PRIu64 " runs version %" PRIu64 ", beyond "
	    "the controller's %" PRIu64 " (database restored from an older "
	    "backup?)", e->site_id, edge_version, v);
	if (edge_version - v > 100000 || store_begin(s->st, &err) == -1)
		return;
	while (v <= edge_version &&
	    store_edge_bump_intent(s->st, e->site_id, &v, &err) == 0)
		;
	if (store_commit(s->st, &err) == -1 || v <= edge_version) {
		log_warnx("session: site %" PRIu64 ": cannot move its version: "
		    "%s", e->site_id, err.message);
		return;
	}
	e->cur.version = v;
	if (pbconv_intent_hash_digests(&e->cur, e->digests, e->cur_hash) == -1)
		return;
	session_hist_push(s, e, NULL, 0, false, true);
}

static void
session_on_hello(struct sessions *s, struct rpc_stream *st, struct conn *c,
    const struct msg_hello *h)
{
	struct model_error err = { 0 };
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
	if (e == NULL || !e->live || e->cur.version == 0) {
		rpc_stream_close(st, RPC_FAILED_PRECONDITION,
		    "site has no intent (revoked or deleted)");
		return;
	}
	if (e->stream != NULL && e->stream != st) {
		struct conn *old = rpc_stream_user(e->stream);

		log_info("session: site %" PRIu64 ": a new session replaces the "
		    "old one", e->site_id);
		if (old != NULL)
			old->e = NULL;
		rpc_stream_close(e->stream, RPC_ABORTED,
		    "replaced by a newer session of the same site");
	}
	c->e = e;
	e->stream = st;
	e->hello = true;
	e->blocked = false;
	e->n_dropped = 0; /* the hello repeats every pending step */
	e->need_snapshot = true;
	e->base = 0;
	if (h->applied_version > e->cur.version)
		session_skip_past(s, e, h->applied_version);
	if (h->applied_version > 0 && h->has_convergence_hash) {
		const uint8_t *want = session_hist_hash(e, h->applied_version);

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
	store_edge_set_connected(s->st, e->site_id, true, session_now(s), &err);
	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_SESSION_OPENED);
	log_info("session: site %" PRIu64 " connected (%s, applied %" PRIu64
	    ", current %" PRIu64 ", %s)", e->site_id, h->software_version,
	    h->applied_version, e->cur.version, e->need_snapshot ? "snapshot" :
	    e->base == e->cur.version ? "up to date" : "delta");
	/* The snapshot or delta carries every peer's current epoch keys
	 * (Tunnel.peer.keys): no PeerKeys replay is needed here. */
	session_push(s, e);
	session_rekey_resend(s, e);
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
		log_warnx("session: site %" PRIu64 " failed to apply version %"
		    PRIu64 ": %s", e->site_id, a->version, a->reason);
		e->need_snapshot = true;
		session_push(s, e);
		return;
	}
	if (a->version > e->cur.version) {
		log_warnx("session: site %" PRIu64 " acked version %" PRIu64
		    " beyond %" PRIu64 "; full resync", e->site_id, a->version,
		    e->cur.version);
		e->need_snapshot = true;
		session_push(s, e);
		return;
	}
	want = session_hist_hash(e, a->version);
	if (want != NULL && (!a->has_convergence_hash ||
	    memcmp(want, a->convergence_hash, MSG_HASH_LEN) != 0)) {
		log_warnx("session: site %" PRIu64 ": convergence hash mismatch "
		    "at version %" PRIu64 "; full resync", e->site_id,
		    a->version);
		e->need_snapshot = true;
		session_push(s, e);
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
session_on_key(struct sessions *s, struct edge *e,
    const struct msg_key_announcement *k)
{
	uint64_t *peers;
	size_t np;

	if (e->cert == NULL) {
		log_warnx("session: site %" PRIu64 ": key announcement but no "
		    "certificate on record; ignored", e->site_id);
		return;
	}
	if (e->n_keys > 0 && k->epoch <= e->keys[e->n_keys - 1].epoch) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " not above %" PRIu64 "; ignored", e->site_id, k->epoch,
		    e->keys[e->n_keys - 1].epoch);
		return;
	}
	if (ca_verify_epoch_key(s->ca, e->cert, e->cert_len, e->site_id,
	    k->epoch, k->public_key, MSG_KEY_LEN, k->not_after, k->signature,
	    k->signature_len) == -1) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    ": bad signature; ignored", e->site_id, k->epoch);
		return;
	}
	if (e->n_keys == SESSION_KEYS_MAX) {
		memmove(&e->keys[0], &e->keys[1],
		    (SESSION_KEYS_MAX - 1) * sizeof(e->keys[0]));
		e->n_keys--;
	}
	e->keys[e->n_keys].epoch = k->epoch;
	memcpy(e->keys[e->n_keys].public_key, k->public_key, MSG_KEY_LEN);
	memcpy(e->keys[e->n_keys].signature, k->signature, k->signature_len);
	e->keys[e->n_keys].signature_len = k->signature_len;
	e->keys[e->n_keys].not_after = k->not_after;
	e->n_keys++;
	if (session_save_keys(s, e) == -1)
		log_warnx("session: site %" PRIu64 ": could not store its "
		    "epoch keys", e->site_id);
	/* PeerKeys now, for speed: connected peers can derive SAs at once.
	 * The versioned intent follows after the coalescing delay (a delta
	 * upserting each peer's tunnels to e with the new keys), so a
	 * peer's cached intent alone suffices for headless operation. */
	np = session_peers(e, &peers);
	for (size_t i = 0; i < np; i++) {
		struct edge *p = session_edge_find(s, peers[i]);

		if (p != NULL)
			session_send_keys(s, p, e);
		session_mark_rebuild(s, peers[i]);
	}
	free(peers);
	if (np > 0)
		session_arm_flush(s);
	log_debug("session", "site %" PRIu64 ": epoch %" PRIu64 " key relayed "
	    "to %zu peer(s)", e->site_id, k->epoch, np);
}

/* The latest status as JSON text for GET /api/v1/edges/{id}. */
static void
session_on_status(struct sessions *s, struct edge *e,
    const struct msg_status *m)
{
	struct model_error err = { 0 };
	json_t *j = json_object(), *tun = json_array(), *bgp = json_array(),
	    *hl = json_array();
	char *text;

	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_STATUS_RECEIVED);
	for (size_t i = 0; i < m->n_tunnels; i++) {
		const struct msg_tunnel_status *t = &m->tunnels[i];
		json_t *sas = json_array();

		for (size_t k = 0; k < t->n_sas; k++)
			json_array_append_new(sas, json_pack("{s:I,s:s,s:I,"
			    "s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
			    "spi", (json_int_t)t->sas[k].spi,
			    "direction", msg_direction_name(t->sas[k].direction),
			    "epoch", (json_int_t)t->sas[k].epoch,
			    "packets", (json_int_t)t->sas[k].packets,
			    "bytes", (json_int_t)t->sas[k].bytes,
			    "age_seconds", (json_int_t)t->sas[k].age_seconds,
			    "seq", (json_int_t)t->sas[k].seq,
			    "drops_auth", (json_int_t)t->sas[k].drops_auth,
			    "drops_replay", (json_int_t)t->sas[k].drops_replay,
			    "active", t->sas[k].active));
		json_array_append_new(tun, json_pack("{s:I,s:s,s:s,s:o,s:I,"
		    "s:I,s:I,s:I,s:I,s:I,s:I}",
		    "tunnel_id", (json_int_t)t->tunnel_id,
		    "state", msg_tunnel_state_name(t->state),
		    "error", t->error, "sas", sas,
		    "packets_in", (json_int_t)t->packets_in,
		    "packets_out", (json_int_t)t->packets_out,
		    "bytes_in", (json_int_t)t->bytes_in,
		    "bytes_out", (json_int_t)t->bytes_out,
		    "drops_no_sa", (json_int_t)t->drops_no_sa,
		    "drops_malformed", (json_int_t)t->drops_malformed,
		    "drops_unknown_spi", (json_int_t)t->drops_unknown_spi));
	}
	for (size_t i = 0; i < m->n_bgp; i++) {
		char addr[MSG_ADDR_STRLEN];

		msg_addr_format(&m->bgp[i].address, addr, sizeof(addr));
		json_array_append_new(bgp, json_pack("{s:s,s:I,s:s,s:I,s:I,"
		    "s:I}", "address", addr,
		    "remote_asn", (json_int_t)m->bgp[i].remote_asn,
		    "state", msg_bgp_state_name(m->bgp[i].state),
		    "uptime_seconds", (json_int_t)m->bgp[i].uptime_seconds,
		    "prefixes_received",
		    (json_int_t)m->bgp[i].prefixes_received,
		    "tunnel_id", (json_int_t)m->bgp[i].tunnel_id));
	}
	for (size_t i = 0; i < m->n_health; i++)
		json_array_append_new(hl, json_pack("{s:I,s:b,s:I,s:I,s:I}",
		    "tunnel_id", (json_int_t)m->health[i].tunnel_id,
		    "up", m->health[i].up,
		    "rtt_us", (json_int_t)m->health[i].rtt_us,
		    "loss_permille", (json_int_t)m->health[i].loss_permille,
		    "jitter_us", (json_int_t)m->health[i].jitter_us));
	json_object_set_new(j, "applied_version",
	    json_integer((json_int_t)m->applied_version));
	json_object_set_new(j, "uptime_seconds",
	    json_integer((json_int_t)m->uptime_seconds));
	json_object_set_new(j, "last_ack_error", e->last_error[0] ?
	    json_string(e->last_error) : json_null());
	json_object_set_new(j, "tunnels", tun);
	json_object_set_new(j, "bgp", bgp);
	json_object_set_new(j, "health", hl);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return;
	if (strlen(text) > MODEL_STATUS_MAX)
		log_warnx("session: site %" PRIu64 ": status too large to keep",
		    e->site_id);
	else if (store_edge_set_status(s->st, e->site_id, text, strlen(text),
	    session_now(s), &err) == -1)
		log_warnx("session: site %" PRIu64 ": status: %s", e->site_id,
		    err.message);
	free(text);
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
		session_on_status(s, c->e, &m.u.status);
		break;
	case MSG_EDGE_KEY:
		session_on_key(s, c->e, &m.u.key);
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
	struct model_error err = { 0 };

	if (c == NULL)
		return;
	if (c->e != NULL && c->e->stream == st) {
		struct edge *e = c->e;

		e->stream = NULL;
		e->hello = false;
		e->blocked = false;
		if (!s->shutting_down)
			store_edge_set_connected(s->st, e->site_id, false,
			    session_now(s), &err);
		log_info("session: site %" PRIu64 " disconnected (%s%s%s)",
		    e->site_id, rpc_close_reason_str(why), msg && *msg ?
		    ": " : "", msg ? msg : "");
		if (s->metrics)
			metrics_rpc_inc(s->metrics,
			    METRICS_RPC_SESSION_CLOSED);
	}
	(void)code;
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
	/* Rekey orders dropped with the overflow would otherwise wait for
	 * the next hello: send those that are still due (one that fails
	 * again is kept for the next drain). */
	{
		struct rekey_drop *d = e->dropped;
		size_t n = e->n_dropped;

		e->dropped = NULL;
		e->n_dropped = e->cap_dropped = 0;
		for (size_t i = 0; i < n; i++)
			if (session_drop_pending(s, e, &d[i]))
				session_send_rekey(s, e->site_id,
				    d[i].tunnel_id, d[i].epoch, d[i].step,
				    d[i].reason, d[i].spi);
		free(d);
	}
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
	if (rpc_server_add_stream(srv, SESSION_METHOD, RPC_AUTH_PEER,
	    &session_handlers, s) == -1 ||
	    rpc_server_add_unary(srv, ENROLL_METHOD, RPC_AUTH_NONE,
	    enroll_handle, s) == -1)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Life cycle */

int
session_cert_issued(struct sessions *s, uint64_t site_id, const uint8_t *der,
    size_t len)
{
	struct model_error err = { 0 };
	struct edge *e = session_edge_get(s, site_id);
	char key[64], *hex;
	uint8_t *copy;

	if (e == NULL || len == 0 || len * 2 + 1 > SESSION_KV_MAX)
		return -1;
	if ((hex = malloc(len * 2 + 1)) == NULL)
		return -1;
	util_hex(der, len, hex);
	snprintf(key, sizeof(key), "cert.%" PRIu64, site_id);
	if (store_kv_set(s->st, key, hex, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": storing its certificate: "
		    "%s", site_id, err.message);
		free(hex);
		return -1;
	}
	free(hex);
	if ((copy = malloc(len)) == NULL)
		return -1;
	memcpy(copy, der, len);
	free(e->cert);
	e->cert = copy;
	e->cert_len = len;
	/* New certificate, new key pair: old epoch keys are void. */
	e->n_keys = 0;
	session_save_keys(s, e);
	/* Peers' intents carry this certificate: recompiling the site
	 * patches their tunnels to it. */
	session_mark_dirty(s, site_id);
	session_arm_flush(s);
	return 0;
}

struct store *
session_store(struct sessions *s)
{
	return s->st;
}

struct ca *
session_ca(struct sessions *s)
{
	return s->ca;
}

struct metrics *
session_metrics(struct sessions *s)
{
	return s->metrics;
}

const struct session_config *
session_cfg(const struct sessions *s)
{
	return &s->cfg;
}

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
	s->cfg = p->cfg;
	s->st = p->st;
	s->ca = p->ca;
	s->metrics = p->metrics;
	s->efd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if ((s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("session: eventfd");
		goto fail;
	}
	if ((s->epochs = epochs_new()) == NULL)
		goto fail;
	if (session_compile_all(s, true) == -1)
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
	struct model_error err = { 0 };

	if (s == NULL)
		return;
	s->shutting_down = true;
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL || e->stream == NULL)
			continue;
		rpc_stream_close(e->stream, RPC_UNAVAILABLE,
		    "controller shutting down");
		store_edge_set_connected(s->st, e->site_id, false,
		    session_now(s), &err);
	}
	session_flush_acks(s);
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
	free(s->sites);
	free(s->pfx);
	free(s->pfx_site);
	epochs_free(s->epochs);
	free(s->pending);
	free(s->pending_rekey);
	free(s->dirty);
	free(s->rebuild);
	free(s->retunnel);
	if (s->efd != -1)
		close(s->efd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
