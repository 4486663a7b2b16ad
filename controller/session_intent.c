/*
 * session_intent.c — each edge's intent: built from the compiled
 * topology, versioned in the store, with a short history of what changed
 * per version so that an edge gets a delta instead of a snapshot.  Also
 * the compiles: the whole mesh at start and on policy changes, one site's
 * change patched into only the edges and tunnels it touches, and the
 * in-place rebuilds after a peer's new key or SA epoch.
 *
 * Why a file of its own: everything here turns model changes into new
 * intent versions (e->cur, e->cur_hash, e->digests, e->hist); nothing
 * here touches a stream except through session_push().  See the
 * invariants in session_int.h.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A failed reload or a busy store: the next try (ms). */
#define SESSION_RELOAD_RETRY_MS 1000
/* A replica that is not the leader waits this long for the leader's
 * allocations before it reads them (session_apply_change). */
#define SESSION_FOLLOW_RETRY_MS SESSION_RELOAD_RETRY_MS /* or when the
                                       leader says so */

/* ------------------------------------------------------------------ */
/* Version history */

void
session_intent_hist_clear(struct edge *e)
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

static struct hist *
session_hist_at(struct edge *e, size_t i)
{
	return &e->hist[(e->hist_head + i) % e->hist_cap];
}

void
session_intent_hist_push(struct sessions *s, struct edge *e,
    struct intent_change *ch, size_t n, bool site_changed, bool unknown)
{
	struct hist *h;

	if (e->hist_cap != s->cfg.intent_history) {
		session_intent_hist_clear(e);
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
const uint8_t *
session_intent_hist_hash(struct edge *e, uint64_t v)
{
	if (e->cur.version == v && e->cur.version > 0)
		return e->cur_hash;
	for (size_t i = 0; i < e->hist_len; i++)
		if (session_hist_at(e, i)->version == v)
			return session_hist_at(e, i)->hash;
	return NULL;
}

/* Where site id is or would go in s->sites / s->pfx_site. */
static size_t
session_site_index(const struct sessions *s, uint64_t id)
{
	return util_lower_bound_u64(s->sites, s->n_sites, sizeof(*s->sites),
	    offsetof(struct model_site, id), id);
}

static size_t
session_pfx_index(const struct sessions *s, uint64_t id)
{
	return util_lower_bound_u64(s->pfx_site, s->n_pfx,
	    sizeof(*s->pfx_site), 0, id);
}

/* ------------------------------------------------------------------ */
/* Intent lookups (struct intent_lookup) */

static void
session_lk_prefixes(void *arg, uint64_t site_id,
    const struct model_prefix **p, size_t *n)
{
	struct sessions *s = arg;
	size_t lo = session_pfx_index(s, site_id), end;

	*p = NULL;
	*n = 0;
	for (end = lo; end < s->n_pfx && s->pfx_site[end] == site_id; end++)
		;
	if (end > lo) {
		*p = &s->pfx[lo];
		*n = end - lo;
	}
}

static const struct msg_blob *
session_lk_cert(void *arg, uint64_t site_id)
{
	struct edge *e = session_edge_find(arg, site_id);

	return e != NULL ? &e->cert : NULL;
}

/* Whether id is in the sorted set ids. */
static bool
session_id_in(const uint64_t *ids, size_t n, uint64_t id)
{
	return n > 0 && bsearch(&id, ids, n, sizeof(*ids),
	    util_cmp_u64) != NULL;
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
	in = session_rekey_epoch_active(s, tunnel_id, peer);
	o = session_rekey_epoch_active(s, tunnel_id, site_id);
	/* Each direction's own SA epoch and the key epochs it was started
	 * with: everything both ends derive its key from. */
	if (in != NULL)
		out->in = (struct msg_sa_key_ref){ in->spi, in->epoch,
		    in->sender_key_epoch, in->receiver_key_epoch };
	if (o != NULL)
		out->out = (struct msg_sa_key_ref){ o->spi, o->epoch,
		    o->sender_key_epoch, o->receiver_key_epoch };
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
		.keys = session_keys_lookup,
	};
	*p = (struct intent_params){
		.topo = s->topo,
		.memo = s->memo,
		.lookup = lk,
		.keepalive_s = s->cfg.keepalive_s,
		.headless_grace_s = s->cfg.headless_grace_s,
		.pool4 = s->policy.pool,
		.pool6 = s->cfg.pool6,
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
/* Model loading */

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
	uint64_t *ids = NULL, head = 0;
	size_t ns = 0, np = 0;

	/* The log's head first: a change committed while the lists are
	 * read is read again by the next batch (session_load_changes). */
	if (store_changes_head(s->st, &head, &err) == -1 ||
	    store_policy_get(s->st, &s->policy, &err) == -1 ||
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
	s->log_seq = head;
	intent_memo_reset(s->memo);     /* the prefixes may have changed */
	return 0;
}

/* Site id and its prefixes in s->sites and s->pfx as the store has them
 * now (gone when deleted).  Arrays are sized by util_size_class, so a
 * site added at the end rarely moves them. */
static int
session_model_site(struct sessions *s, uint64_t id)
{
	struct model_error err = { 0 };
	struct model_site ms;
	struct model_site_prefix *pfx = NULL;
	size_t np = 0, at = session_site_index(s, id), pa, pb;
	bool found = true, have = at < s->n_sites && s->sites[at].id == id;
	void *p;

	if (store_site_get(s->st, id, &ms, &err) == -1) {
		if (err.code != MODEL_E_NOT_FOUND)
			goto fail;
		found = false;
	}
	if (found && store_prefix_list(s->st, id, &pfx, &np, &err) == -1)
		goto fail;
	if (found && !have) {
		if ((p = realloc(s->sites, util_size_class(s->n_sites + 1) *
		    sizeof(*s->sites))) == NULL)
			goto oom;
		s->sites = p;
		memmove(&s->sites[at + 1], &s->sites[at],
		    (s->n_sites - at) * sizeof(*s->sites));
		s->n_sites++;
	} else if (!found && have) {
		memmove(&s->sites[at], &s->sites[at + 1],
		    (s->n_sites - at - 1) * sizeof(*s->sites));
		s->n_sites--;
	}
	if (found)
		s->sites[at] = ms;
	/* The site's prefixes: [pa, pb) replaced by the np read. */
	pa = session_pfx_index(s, id);
	for (pb = pa; pb < s->n_pfx && s->pfx_site[pb] == id; pb++)
		;
	if (np > pb - pa) {
		size_t need = util_size_class(s->n_pfx + np - (pb - pa));

		if ((p = realloc(s->pfx, need * sizeof(*s->pfx))) == NULL)
			goto oom;
		s->pfx = p;
		if ((p = realloc(s->pfx_site, need * sizeof(*s->pfx_site))) ==
		    NULL)
			goto oom;
		s->pfx_site = p;
	}
	if (np != pb - pa && s->n_pfx > pb) {
		memmove(&s->pfx[pa + np], &s->pfx[pb],
		    (s->n_pfx - pb) * sizeof(*s->pfx));
		memmove(&s->pfx_site[pa + np], &s->pfx_site[pb],
		    (s->n_pfx - pb) * sizeof(*s->pfx_site));
	}
	s->n_pfx = s->n_pfx - (pb - pa) + np;
	if (np > 1)
		qsort(pfx, np, sizeof(*pfx), session_pfx_cmp);
	for (size_t i = 0; i < np; i++) {
		s->pfx[pa + i] = pfx[i].prefix;
		s->pfx_site[pa + i] = id;
	}
	free(pfx);
	intent_memo_reset(s->memo);     /* the prefixes may have changed */
	return 0;
oom:
	model_error_set(&err, MODEL_E_INTERNAL, "", "out of memory");
fail:
	free(pfx);
	log_warnx("session: site %" PRIu64 ": loading: %s", id, err.message);
	return -1;
}

/*
 * Bring s->sites and s->pfx up to the store, in the open transaction,
 * reading only the sites the change log names after s->log_seq (every
 * controller's, this one's too); their ids join *dirty (sorted, unique
 * on return), and so do the dirty ones', which are read as well.  O(the
 * change) where reading every site was O(sites) per batch.  *all: policy
 * or crypto changed, or the log no longer reaches back (pruned): the
 * caller compiles everything.
 */
static int
session_load_changes(struct sessions *s, uint64_t **dirty, size_t *n,
    size_t *cap, bool *all)
{
	struct model_error err = { 0 };
	struct store_changes ch;

	*all = false;
	if (store_changes_since(s->st, s->log_seq, NULL, &ch, &err) == -1) {
		log_warnx("session: reading the change log: %s", err.message);
		return -1;
	}
	if (ch.all) {
		*all = true;
		store_changes_free(&ch);
		return 0;
	}
	for (size_t i = 0; i < ch.n; i++)
		if (session_ids_add(dirty, n, cap, ch.sites[i]) == -1) {
			store_changes_free(&ch);
			return -1;
		}
	if (*dirty != NULL)
		util_sort_unique_u64(*dirty, n);
	for (size_t i = 0; *dirty != NULL && i < *n; i++)
		if (session_model_site(s, (*dirty)[i]) == -1) {
			store_changes_free(&ch);
			return -1;
		}
	s->log_seq = ch.last;
	store_changes_free(&ch);
	return 0;
}

/*
 * Persist one compile's tunnel changes and keep the epoch bookkeeping in
 * line: new tunnels get epoch 1 both ways, re-allocated ones epochs above
 * all they had (session_rekey_epochs_renew).
 */
static int
session_apply_change(struct sessions *s, const struct topo_change *chg,
    uint64_t next_id)
{
	struct model_error err = { 0 };
	uint64_t old_next;

	if (chg->n_removed == 0 && chg->n_added == 0)
		return 0;
	/*
	 * Several controllers: only the leader stores allocations (tunnels,
	 * /31s, VNIs, first epochs).  The others give up this compile and
	 * read the leader's allocations a moment later (a reload), so two
	 * replicas never compile against each other's half-stored work.
	 * The first compile at start-up may store them (the compare-and-set
	 * on the generation still orders it with the leader).
	 */
	if (s->replicated && s->topo != NULL && !atomic_load(&s->leader)) {
		s->deferred = true;
		return -1;
	}
	/* The leader's allocations are fenced in this transaction: a
	 * leader that was stopped, and replaced, must not store them on
	 * resuming before it has heard that it lost the lease. */
	if (s->replicated && atomic_load(&s->leader) &&
	    store_leader_check(s->st, &err) == -1) {
		log_warnx("session: not storing allocations: %s", err.message);
		s->deferred = true;
		return -1;
	}
	/* Ids below the stored counter were allocated before: those in
	 * chg->added are re-allocations (a new /31, VNI or encap). */
	if (store_tunnel_next_id(s->st, &old_next, &err) == -1 ||
	    store_tunnel_apply(s->st, chg->removed, chg->n_removed, chg->added,
	    chg->n_added, next_id, &err) == -1) {
		log_warnx("session: storing tunnels: %s", err.message);
		return -1;
	}
	/* The other replicas read them once committed (session_alloc_log,
	 * last in the transaction: it takes the writers' lock). */
	s->alloc_log = s->replicated;
	/* Removed tunnels' epochs go with them (the store cascades). */
	session_rekey_epochs_drop(s, chg->removed, chg->n_removed);
	for (size_t i = 0; i < chg->n_added; i++)
		if ((chg->added[i].id < old_next ?
		    session_rekey_epochs_renew(s, &chg->added[i],
		    "re-allocated") :
		    session_rekey_epochs_init(s, &chg->added[i])) == -1)
			return -1;
	return 0;
}

/*
 * The links of a site whose own (local) address a change moves: old is
 * the compiled copy, new the model just read (either NULL: none).  Their
 * names go to moved[]; returns how many.
 */
static size_t
session_links_moved(const struct model_site *old, const struct model_site *new,
    char moved[MODEL_LINKS_MAX][MODEL_LINK_NAME_MAX + 1])
{
	size_t n = 0;

	if (old == NULL || new == NULL)
		return 0;
	for (size_t i = 0; i < old->n_links && n < MODEL_LINKS_MAX; i++) {
		int j = model_site_find_link(new, old->links[i].name);

		if (j >= 0 && strcmp(old->links[i].address,
		    new->links[j].address) != 0)
			snprintf(moved[n++], MODEL_LINK_NAME_MAX + 1, "%s",
			    old->links[i].name);
	}
	return n;
}

/* Is tunnel id in chg->added?  (Not sorted by id after a full compile;
 * asked only for the few tunnels of a moved link.) */
static bool
session_added(const struct topo_change *chg, uint64_t id)
{
	for (size_t i = 0; i < chg->n_added; i++)
		if (chg->added[i].id == id)
			return true;
	return false;
}

/*
 * A site's link moved to another local address: its edge makes the
 * tunnels on that link anew (the local address cannot change in place,
 * overlay.h tunnel_update) and would refuse their SAs again, as for a
 * re-allocated tunnel; so they start over the same way.  Tunnels the
 * compile re-allocated (chg->added) have been renewed already.  Each
 * renewal goes in the change log (as every epoch write) for the other
 * replicas.
 */
static int
session_renew_moved(struct sessions *s, const struct topo_output *topo,
    uint64_t site_id, char moved[MODEL_LINKS_MAX][MODEL_LINK_NAME_MAX + 1],
    size_t n_moved, const struct topo_change *chg)
{
	struct model_error err = { 0 };
	uint64_t *ids;
	size_t n;
	int rc = 0;

	if (n_moved == 0 || (n = topo_edge_tunnel_count(topo, site_id)) == 0)
		return 0;
	if ((ids = calloc(2 * n, sizeof(*ids))) == NULL)
		return -1;
	n = topo_edge_tunnels(topo, site_id, ids, ids + n, n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct model_tunnel *t = topo_tunnel_get(topo, ids[i]);
		const char *link;
		bool hit = false;

		if (t == NULL)
			continue;
		link = t->site_a == site_id ? t->link_a : t->link_b;
		for (size_t k = 0; k < n_moved && !hit; k++)
			hit = strcmp(moved[k], link) == 0;
		if (!hit || session_added(chg, t->id))
			continue;
		if (session_rekey_epochs_renew(s, t, "its link moved") == -1 ||
		    store_note_event(s->st, STORE_CHANGE_EPOCHS, t->id,
		    &err) == -1) {
			if (err.message[0] != '\0')
				log_warnx("session: tunnel %" PRIu64 ": %s",
				    t->id, err.message);
			rc = -1;
		}
	}
	free(ids);
	return rc;
}

/* The same for a full compile: every site against the topology it
 * replaces (none at start-up).  Only the leader writes epochs; the other
 * replicas read them (session_rekey_follow). */
static int
session_renew_all_moved(struct sessions *s, const struct topo_output *out,
    const struct topo_change *chg)
{
	char moved[MODEL_LINKS_MAX][MODEL_LINK_NAME_MAX + 1];

	if (s->replicated && !atomic_load(&s->leader))
		return 0;
	for (size_t i = 0; s->topo != NULL && i < s->n_sites; i++) {
		uint64_t id = s->sites[i].id;
		size_t n = session_links_moved(topo_site(s->topo, id),
		    &s->sites[i], moved);

		if (session_renew_moved(s, out, id, moved, n, chg) == -1)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Versions */

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
session_refresh_do(struct sessions *s, struct edge *e, bool *changed);

/*
 * With several controllers, an edge held by another one is left to it:
 * its version here is not moved (that controller moves it), and the next
 * hello here rebuilds it from the store (session_intent_resume).
 */
static bool
session_leave_stale(struct sessions *s, struct edge *e, bool *changed)
{
	if (changed != NULL)
		*changed = false;
	if (session_local(s, e))
		return false;
	e->stale = true;
	return true;
}

static int
session_refresh_edge(struct sessions *s, struct edge *e, bool *changed)
{
	if (session_leave_stale(s, e, changed))
		return 0;
	return session_refresh_do(s, e, changed);
}

static int
session_refresh_do(struct sessions *s, struct edge *e, bool *changed)
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
	session_intent_hist_push(s, e, ch, n, site_changed, unknown);
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
	if (session_leave_stale(s, e, changed))
		return 0;
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
	session_intent_hist_push(s, e, ch, nch, false, false);
	*changed = true;
	return 0;
fail:
	session_built_free(&chg, true);
	session_built_free(&add, true);
	free(ch);
	free(tid);
	return -1;
}

/*
 * After a restart: rebuild each edge at its stored version and keep that
 * version only when the edge's last acked hash proves the content is the
 * same; otherwise bump it (the edge then gets a snapshot).
 */
static int
session_restore_do(struct sessions *s, struct edge *e);

static int
session_restore_edge(struct sessions *s, struct edge *e)
{
	if (session_leave_stale(s, e, NULL))
		return 0;
	return session_restore_do(s, e);
}

static int
session_restore_do(struct sessions *s, struct edge *e)
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
			session_intent_hist_push(s, e, NULL, 0, false, true);
			model_edge_state_clear(&st);
			log_debug("session", "site %" PRIu64 ": version %" PRIu64
			    " still current", e->site_id, e->cur.version);
			return 0;
		}
	}
	model_edge_state_clear(&st);
	session_cur_drop(e);
	return session_refresh_do(s, e, &changed);
}

/*
 * A hello with several controllers on the store: while the edge was
 * held elsewhere its version may have moved there (or changes here were
 * left to that controller).  Rebuild it as after a restart: the stored
 * version is kept when the edge acked it with this very content, else a
 * new one is made (sent as a snapshot) — versions only grow.
 */
int
session_intent_resume(struct sessions *s, struct edge *e,
    uint64_t edge_version)
{
	struct model_edge_state st = { 0 };
	struct model_error err = { 0 };

	if (!e->stale) {
		if (store_edge_get(s->st, e->site_id, &st, &err) == -1) {
			/*
			 * The database is unreachable: memory serves an edge
			 * whose intent here is not stale (no other controller
			 * moved it: its changes would have marked it) and not
			 * behind the edge's.  Nothing else changes while the
			 * database is down, and sending it needs no write.
			 */
			if (err.code == MODEL_E_BUSY && e->cur.version > 0 &&
			    edge_version <= e->cur.version) {
				log_info("session: site %" PRIu64 ": %s; serving "
				    "version %" PRIu64 " from memory",
				    e->site_id, err.message, e->cur.version);
				return 0;
			}
			log_warnx("session: site %" PRIu64 ": %s", e->site_id,
			    err.message);
			return -1;
		}
		model_edge_state_clear(&st);
		if (e->cur.version > 0 && st.intent_version == e->cur.version)
			return 0;
	}
	session_cur_drop(e);
	session_intent_hist_clear(e);
	if (session_restore_do(s, e) == -1 || e->cur.version == 0)
		return -1;
	e->stale = false;
	log_debug("session", "site %" PRIu64 ": resumed at version %" PRIu64
	    " from the store", e->site_id, e->cur.version);
	return 0;
}

/*
 * Several controllers: the allocations this transaction stored go into
 * the change log (kind ALLOC), so that replicas waiting for them read
 * them at once.  Last before the commit: it takes the writers' lock.
 */
static int
session_alloc_log(struct sessions *s)
{
	struct model_error err = { 0 };
	uint64_t gen = 0;

	if (!s->alloc_log)
		return 0;
	s->alloc_log = false;
	if (store_tunnel_gen(s->st, &gen, &err) == -1 ||
	    store_note_event(s->st, STORE_CHANGE_ALLOC, gen, &err) == -1) {
		log_warnx("session: logging allocations: %s", err.message);
		return -1;
	}
	return 0;
}

/*
 * Full compile against the stored allocations.  The sites, policy and
 * tunnels are read in the transaction that writes the result, so the
 * compile cannot name a site another writer has just deleted, and memory
 * (the topology) is replaced only once that transaction committed; the
 * epochs are reloaded from the store either way.  Then every live edge's
 * intent is brought up to date (restoring: rebuilt at its stored version,
 * see session_restore_edge) in a second transaction, and only after it
 * committed are the changes sent.  -1: memory may be ahead of the store
 * (the caller reloads).
 */
int
session_intent_compile_all(struct sessions *s, bool restoring)
{
	struct model_tunnel *prev = NULL;
	struct topo_change chg = { 0 };
	struct topo_output *out = NULL;
	struct model_error err = { 0 };
	struct topo_input in;
	struct topo_prev tp;
	uint64_t next_id = 0, gen = 0, t0 = util_mono_ns();
	size_t nprev = 0;
	bool *changed = NULL;
	int rc = -1;

	if (store_begin(s->st, &err) == -1) {
		log_warnx("session: compiling: %s", err.message);
		return -1;
	}
	if (session_load_model(s) == -1)
		goto fail;
	if (store_tunnel_list(s->st, &prev, &nprev, &next_id, &err) == -1) {
		log_warnx("session: loading tunnels: %s", err.message);
		goto fail;
	}
	in = (struct topo_input){ &s->policy, &s->crypto, s->sites,
	    s->n_sites };
	tp = (struct topo_prev){ prev, nprev, next_id };
	if (topo_compile(&in, &tp, &out, &chg, &err) == -1) {
		log_warnx("session: compiling the topology: %s (%s)",
		    err.message, err.field);
		goto fail;
	}
	free(prev);
	prev = NULL;
	s->alloc_log = false;
	if (session_apply_change(s, &chg, topo_next_id(out)) == -1 ||
	    session_renew_all_moved(s, out, &chg) == -1 ||
	    store_tunnel_gen(s->st, &gen, &err) == -1 ||
	    session_alloc_log(s) == -1)
		goto fail;
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing tunnels: %s", err.message);
		session_rekey_epochs_load(s);
		goto out;
	}
	topo_free(s->topo);
	s->topo = out;
	out = NULL;
	s->tunnel_gen = gen;
	s->followed = false;
	if (session_rekey_epochs_load(s) == -1)
		goto out;
	if (s->metrics)
		metrics_compile_done(s->metrics, (util_mono_ns() - t0) / 1000);

	/* Every live site gets an edge record and an intent. */
	if ((changed = calloc(topo_edge_count(s->topo) + 1,
	    sizeof(*changed))) == NULL)
		goto out;
	if (store_begin(s->st, &err) == -1) {
		log_warnx("session: storing versions: %s", err.message);
		goto out;
	}
	/* Certificates and keys first: every edge's intent carries its
	 * peers'. */
	for (size_t i = 0; i < topo_edge_count(s->topo); i++) {
		const struct model_site *ms = topo_edge_site(s->topo, i);
		struct edge *e = session_edge_get(s, ms->id);

		if (e == NULL)
			break;
		if (!e->live && restoring)
			session_keys_load(s, e);
		e->live = true;
	}
	for (size_t i = 0; i < topo_edge_count(s->topo); i++) {
		const struct model_site *ms = topo_edge_site(s->topo, i);
		struct edge *e = session_edge_find(s, ms->id);

		if (e == NULL)
			break;
		/* A failed edge keeps its intent (a site deleted since the
		 * compile is a miss, its news on the way); a failed store
		 * step spoils the commit below instead. */
		if (restoring)
			(void)session_restore_edge(s, e);
		else
			(void)session_refresh_edge(s, e, &changed[i]);
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing versions: %s", err.message);
		goto out;
	}
	for (size_t i = 0; i < topo_edge_count(s->topo); i++) {
		struct edge *e = session_edge_find(s,
		    topo_edge_site(s->topo, i)->id);

		if (changed[i] && e != NULL)
			session_push(s, e);
	}
	rc = 0;
	goto out;
fail:
	s->alloc_log = false;
	store_rollback(s->st);
	session_rekey_epochs_load(s);
out:
	free(changed);
	free(prev);
	topo_free(out);
	topo_change_free(&chg);
	return rc;
}

/*
 * An edge ahead of the controller (its database was restored from an
 * older backup): move the edge's version past the one it has, so that the
 * snapshot it gets is newer than what it runs and versions never go
 * backwards on the edge.  One UPDATE, however far ahead: the history has
 * no entry in between (no delta crosses the jump).  A version the store
 * cannot exceed (>= 2^63 - 1) is left alone (logged; only a broken edge
 * claims one).
 */
int
session_intent_skip_past(struct sessions *s, struct edge *e,
    uint64_t edge_version)
{
	struct model_error err = { 0 };
	uint64_t v = e->cur.version;

	log_warnx("session: site %" PRIu64 " runs version %" PRIu64 ", beyond "
	    "the controller's %" PRIu64 " (database restored from an older "
	    "backup?)", e->site_id, edge_version, v);
	if (store_edge_skip_intent(s->st, e->site_id, edge_version, &v,
	    &err) == -1 || v <= edge_version) {
		log_warnx("session: site %" PRIu64 ": cannot move its version: "
		    "%s", e->site_id, err.message);
		return err.code == MODEL_E_BUSY ? -1 : 0;
	}
	e->cur.version = v;
	if (pbconv_intent_hash_digests(&e->cur, e->digests, e->cur_hash) == -1)
		return 0;
	session_intent_hist_push(s, e, NULL, 0, false, true);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Deltas */

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
int
session_intent_delta(struct edge *e, struct msg_intent_delta *d)
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
	session_intent_hist_clear(e);
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
	else if ((full.n_tunnels > 0 && (e->digests == NULL ||
	    memcmp(dg, e->digests, full.n_tunnels * MSG_HASH_LEN) != 0)) ||
	    memcmp(hash, e->cur_hash, MSG_HASH_LEN) != 0)
		log_warnx("session: site %" PRIu64 ": patched intent's digests "
		    "differ from a whole rebuild's", e->site_id);
	free(ch);
	free(dg);
	msg_intent_free(&full);
}

/*
 * Memory ran ahead of the store (a store step failed after the topology,
 * the epochs or an intent had moved on) or another writer changed the
 * allocations: forget what memory holds and start again from the store,
 * as a restart does: a full compile against the stored allocations, every
 * edge's intent rebuilt at its stored version (kept when it equals what
 * the edge acked, else a new version, sent as a snapshot: the history is
 * gone).  If that fails too, it is tried again at the next flush.
 */
static void
session_reload(struct sessions *s)
{
	bool quiet = s->deferred || (s->replicated &&
	    !atomic_load(&s->leader));

	s->reload = false;
	/* A follower reading the leader's allocations is routine. */
	if (quiet)
		log_debug("session", "reading the leader's allocations");
	else
		log_warnx("session: reloading the topology and every intent "
		    "from the store");
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL)
			continue;
		session_cur_drop(e);
		session_intent_hist_clear(e);
	}
	s->deferred = false;
	if (session_intent_compile_all(s, true) == -1) {
		if (s->deferred)
			log_debug("session", "waiting for the leader's "
			    "allocations; reading them again in %d ms",
			    SESSION_FOLLOW_RETRY_MS);
		else
			log_warnx("session: reload failed; trying again in %d "
			    "ms", SESSION_RELOAD_RETRY_MS);
		s->reload = true;
		s->dirty_all = true;
		/* Both waits are SESSION_RELOAD_RETRY_MS today. */
		s->flush_at = util_mono_ms() + SESSION_RELOAD_RETRY_MS;
		s->deferred = false;
		return;
	}
	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;

		if (e == NULL)
			continue;
		if (topo_site(s->topo, e->site_id) == NULL) {
			session_site_gone(s, e->site_id);
			continue;
		}
		if (e->base != e->cur.version)
			e->need_snapshot = true;
		session_push(s, e);
	}
}

/*
 * A replica that is not the leader does not compile incrementally (its
 * allocations could differ from the leader's): it compiles everything
 * against the stored allocations, replacing its topology only when that
 * needs no new ones, and brings the edges it holds up to date (deltas,
 * as after a policy change).  Until the leader has stored what the
 * changes need, memory stays as it was and the compile is tried again
 * when the leader logs its allocations (session_notify_alloc), or a
 * second later.
 */
static void
session_follow(struct sessions *s)
{
	s->deferred = false;
	if (session_intent_compile_all(s, false) == 0) {
		for (size_t i = 0; i < s->tab_cap; i++) {
			struct edge *e = s->tab[i].e;

			if (e != NULL && e->live &&
			    topo_site(s->topo, e->site_id) == NULL)
				session_site_gone(s, e->site_id);
		}
		return;
	}
	if (!s->deferred) {
		session_reload(s);
		return;
	}
	s->deferred = false;
	s->dirty_all = true;            /* compile again */
	s->flush_at = util_mono_ms() + SESSION_FOLLOW_RETRY_MS;
	log_debug("session", "waiting for the leader's allocations");
}

/*
 * Tests only (test_check_patch): inside the recompile's transaction, the
 * compiled tunnels must be the stored ones, allocation for allocation.
 * Logs what differs.
 */
static void
session_check_store(struct sessions *s)
{
	struct model_error err = { 0 };
	struct model_tunnel *st = NULL, *mem = NULL;
	size_t nst = 0, nmem = 0, i;
	uint64_t next;

	if (store_tunnel_list(s->st, &st, &nst, &next, &err) == -1 ||
	    topo_tunnel_list(s->topo, &mem, &nmem) == -1) {
		log_warnx("session: store check failed");
		goto out;
	}
	for (i = 0; i < nst && i < nmem; i++)
		if (st[i].id != mem[i].id || st[i].inner != mem[i].inner ||
		    st[i].vni != mem[i].vni || st[i].site_a != mem[i].site_a ||
		    st[i].site_b != mem[i].site_b ||
		    strcmp(st[i].link_a, mem[i].link_a) != 0 ||
		    strcmp(st[i].link_b, mem[i].link_b) != 0)
			break;
	if (i < nst || i < nmem)
		log_warnx("session: in-memory tunnels differ from the store "
		    "(%zu in memory, %zu stored, first difference at %zu)",
		    nmem, nst, i);
out:
	free(st);
	free(mem);
}

/*
 * The order to compile the dirty sites in (*dirty, sorted): first those
 * compiled here that the store no longer has live (deleted or revoked),
 * so that their tunnels, /31s and VNIs are gone before the others take
 * new ones, then the rest.  s->sites is the store as this transaction
 * read it (session_load_changes), so no new tunnel names a deleted site.
 */
static int
session_dirty_order(struct sessions *s, uint64_t **dirty, size_t *n)
{
	uint64_t *v;
	size_t nv = 0;

	if ((v = calloc(*n + 1, sizeof(*v))) == NULL)
		return -1;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; *dirty != NULL && i < *n; i++) {
			const struct model_site *ms = session_site(s,
			    (*dirty)[i]);
			bool gone = (ms == NULL || ms->revoked) &&
			    topo_site(s->topo, (*dirty)[i]) != NULL;

			if (gone == (pass == 0))
				v[nv++] = (*dirty)[i];
		}
	free(*dirty);
	*dirty = v;
	*n = nv;
	return 0;
}

/*
 * Whether a change of these sites can change what a hub carries
 * (Peer.allowed_prefixes of every tunnel to a hub): one of them holds or
 * held LAN prefixes, or is or was a hub.  Called before the compile, so
 * the old intent still tells what was.
 */
static bool
session_hubs_touched(struct sessions *s, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct model_site *ms = session_site(s, ids[i]);
		const struct edge *e = session_edge_find(s, ids[i]);
		const struct model_prefix *p;
		size_t np = 0;

		session_lk_prefixes(s, ids[i], &p, &np);
		if (np > 0 || (ms != NULL && ms->role == MODEL_ROLE_HUB))
			return true;
		/* Held by another controller: its old intent is not here to
		 * say what it was. */
		if (s->replicated && (e == NULL || e->stale ||
		    e->cur.version == 0))
			return true;
		if (e != NULL && (e->cur.site.n_lan_prefixes > 0 ||
		    e->cur.site.role == MSG_ROLE_HUB))
			return true;
	}
	return false;
}

/*
 * After a compile that touched hubs: every hub goes into *peers (so a
 * patch rebuilds the tunnels to it) and every site with a tunnel to a hub
 * into *affected.  Both sets unsorted; -1 on ENOMEM.
 */
static int
session_hub_neighbours(struct sessions *s, uint64_t **peers, size_t *n_peers,
    size_t *cap_peers, uint64_t **affected, size_t *n_aff, size_t *cap_aff)
{
	for (size_t i = 0; i < topo_edge_count(s->topo); i++) {
		const struct model_site *ms = topo_edge_site(s->topo, i);
		size_t nt = topo_edge_tunnel_count(s->topo, ms->id);
		uint64_t *v;

		if (ms->role != MODEL_ROLE_HUB)
			continue;
		if (session_ids_add(peers, n_peers, cap_peers, ms->id) == -1 ||
		    (nt > 0 && (v = calloc(nt, 2 * sizeof(*v))) == NULL))
			return -1;
		if (nt == 0)
			continue;
		nt = topo_edge_tunnels(s->topo, ms->id, v, v + nt, nt);
		for (size_t j = 0; j < nt; j++)
			if (session_ids_add(affected, n_aff, cap_aff,
			    v[nt + j]) == -1) {
				free(v);
				return -1;
			}
		free(v);
	}
	return 0;
}

/* What one batch's site changes touch (session_intent_recompile). */
struct batch {
	uint64_t *affected, *added, *peers;
	size_t n_aff, cap_aff, n_added, cap_added, n_peers, cap_peers;
	bool oom;
};

/* Site id's change chg was applied to the topology: note what it
 * touches, and close the streams of a site that lost its intent. */
static void
session_batch_note(struct sessions *s, struct batch *b, uint64_t id,
    const struct topo_change *chg)
{
	struct edge *e;

	for (size_t j = 0; j < chg->n_edges; j++)
		if (session_ids_add(&b->affected, &b->n_aff, &b->cap_aff,
		    chg->edges[j]) == -1)
			b->oom = true;
	if (session_ids_add(&b->affected, &b->n_aff, &b->cap_aff, id) == -1 ||
	    session_ids_add(&b->peers, &b->n_peers, &b->cap_peers, id) == -1)
		b->oom = true;
	for (size_t j = 0; j < chg->n_added; j++)
		if (session_ids_add(&b->added, &b->n_added, &b->cap_added,
		    chg->added[j].id) == -1)
			b->oom = true;
	/* Revoked or deleted: its stream closes; its peers lose their
	 * tunnels to it (they are affected). */
	for (size_t j = 0; j < chg->n_removed_sites; j++)
		session_site_gone(s, chg->removed_sites[j]);
	if ((e = session_edge_find(s, id)) != NULL &&
	    topo_site(s->topo, id) == NULL)
		e->live = false;
}

/* One dirty site's stored tunnels, for a controller that follows. */
struct follow_site {
	uint64_t id;
	struct model_tunnel *st;        /* sorted by key */
	size_t n;
};

/*
 * Not the leader: read the stored tunnels of each dirty site and keep in
 * the batch only the sites whose every wanted tunnel the leader has
 * stored; the others go into *held (sorted), compiled again once the
 * leader logs its allocations (session_notify_alloc) or a second later.
 * O(the change): one indexed read per site, no compile.
 */
static int
session_follow_prepare(struct sessions *s, const uint64_t *dirty, size_t n,
    struct follow_site **fs, size_t *n_fs, uint64_t **held, size_t *n_held,
    size_t *cap_held)
{
	struct topo_input in = { &s->policy, &s->crypto, s->sites,
	    s->n_sites };
	struct model_error err = { 0 };

	*n_fs = 0;
	if ((*fs = calloc(n + 1, sizeof(**fs))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct model_site *ms = session_site(s, dirty[i]);
		struct follow_site *f = &(*fs)[*n_fs];

		f->id = dirty[i];
		if (ms != NULL && !ms->revoked) {
			if (store_tunnel_list_site(s->st, f->id, &f->st, &f->n,
			    &err) == -1) {
				log_warnx("session: site %" PRIu64 ": reading "
				    "its tunnels: %s", f->id, err.message);
				return -1;
			}
			topo_tunnel_key_sort(f->st, f->n);
			if (topo_follow_missing(&in, f->id, f->st, f->n) > 0) {
				free(f->st);
				f->st = NULL;
				if (session_ids_add(held, n_held, cap_held,
				    f->id) == -1)
					return -1;
				continue;
			}
		}
		(*n_fs)++;
	}
	if (*held != NULL)
		util_sort_unique_u64(*held, n_held);
	return 0;
}

static void
session_follow_free(struct follow_site *fs, size_t n)
{
	for (size_t i = 0; fs != NULL && i < n; i++)
		free(fs[i].st);
	free(fs);
}

/* Followed a site's change: its removed tunnels' epochs go, its new
 * tunnels' epochs are the leader's, read from the store. */
static int
session_follow_epochs(struct sessions *s, uint64_t id,
    const struct topo_change *chg)
{
	struct model_error err = { 0 };
	struct model_epoch *ep = NULL;
	size_t n = 0;

	session_rekey_epochs_drop(s, chg->removed, chg->n_removed);
	if (chg->n_added == 0)
		return 0;
	if (store_epoch_list_site(s->st, id, &ep, &n, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": reading SA epochs: %s",
		    id, err.message);
		return -1;
	}
	for (size_t i = 0; i < chg->n_added; i++)
		epochs_drop_tunnel(s->epochs, chg->added[i].id);
	for (size_t i = 0; i < n; i++) {
		/* chg->added is sorted by id. */
		size_t at = util_lower_bound_u64(chg->added, chg->n_added,
		    sizeof(*chg->added), offsetof(struct model_tunnel, id),
		    ep[i].tunnel_id);
		bool added = at < chg->n_added &&
		    chg->added[at].id == ep[i].tunnel_id;

		if (added && epochs_insert(s->epochs, &ep[i]) == -1) {
			free(ep);
			return -1;
		}
	}
	free(ep);
	return 0;
}

/*
 * Not the leader: apply the batch's changes with the leader's stored
 * allocations (topo_site_follow).  A site whose stored /31, VNI or id a
 * site still to come holds here goes after the others; when a round
 * makes no progress memory missed a change (-1: the caller reloads).  A
 * site the leader has not caught up with after all joins *held.
 */
static int
session_follow_batch(struct sessions *s, struct follow_site *fs, size_t n,
    uint64_t **held, size_t *n_held, size_t *cap_held, struct batch *b)
{
	struct topo_input in = { &s->policy, &s->crypto, s->sites,
	    s->n_sites };
	struct model_error err = { 0 };
	struct topo_change chg = { 0 };
	uint64_t *pend;
	size_t left = n;

	if ((pend = calloc(n + *n_held + 1, sizeof(*pend))) == NULL)
		return -1;
	while (left > 0) {
		size_t done = 0;

		for (size_t i = 0; i < left;) {
			struct follow_site f = fs[i];
			size_t np = 0;
			int rc;

			/* Pending: the sites still to come, and the held. */
			for (size_t j = 0; j < left; j++)
				if (j != i)
					pend[np++] = fs[j].id;
			for (size_t j = 0; j < *n_held; j++)
				pend[np++] = (*held)[j];
			if (np > 1)
				qsort(pend, np, sizeof(*pend), util_cmp_u64);
			topo_change_free(&chg);
			rc = topo_site_follow(s->topo, &in, f.id, f.st, f.n,
			    pend, np, &chg, &err);
			if (rc == -1 && err.code == MODEL_E_CONFLICT) {
				i++;
				continue;
			}
			/* Done with it, one way or another. */
			fs[i] = fs[--left];
			fs[left] = f;
			if (rc == -1 && err.code == MODEL_E_NOT_FOUND) {
				if (session_ids_add(held, n_held, cap_held,
				    f.id) == -1)
					goto fail;
				util_sort_unique_u64(*held, n_held);
				continue;
			}
			if (rc == -1) {
				log_warnx("session: site %" PRIu64 ": compile: "
				    "%s (%s)", f.id, err.message, err.field);
				continue;
			}
			if (session_follow_epochs(s, f.id, &chg) == -1)
				goto fail;
			session_batch_note(s, b, f.id, &chg);
			done++;
		}
		if (done == 0 && left > 0) {
			log_warnx("session: the leader's allocations clash with "
			    "this controller's (%s); reading them all",
			    err.message);
			goto fail;
		}
	}
	topo_change_free(&chg);
	free(pend);
	return 0;
fail:
	topo_change_free(&chg);
	free(pend);
	return -1;
}

/* Every site against the current allocations: the leader's stored ones
 * when following (session_follow), else this controller's compile, and a
 * reload from the store when that fails. */
static void
session_recompile_everything(struct sessions *s, bool follow)
{
	if (follow)
		session_follow(s);
	else if (session_intent_compile_all(s, false) == -1)
		session_reload(s);
}

/*
 * Recompile the sites changed since the last flush (one topo_site_changed
 * each), then bring every edge they touch up to date: a changed site's
 * intent is rebuilt whole, every other touched edge is patched (only its
 * tunnels to changed sites, and new or removed ones).
 *
 * The model is read inside the transaction that stores the result (the
 * sites the change log names since the last batch, session_load_changes),
 * and the allocation generation checked there: memory and store agree
 * when it starts, and any failed step makes it roll back and reload from
 * the store (session_reload), so they agree again when it ends.
 *
 * A replica that is not the leader allocates nothing: it applies the
 * same changes with the leader's stored allocations (topo_site_follow),
 * as incremental as the leader's compile, and holds back a site the
 * leader has not caught up with until the leader logs its allocations.
 */
void
session_intent_recompile(struct sessions *s)
{
	struct model_error err = { 0 };
	struct topo_change chg = { 0 };
	struct batch b = { 0 };
	struct follow_site *fs = NULL;
	uint64_t *dirty = s->dirty, *held = NULL, t0 = util_mono_ns(), gen = 0;
	size_t n_dirty = s->n_dirty, cap_dirty = s->cap_dirty, n_fs = 0;
	size_t n_held = 0, cap_held = 0, n_patched = 0;
	bool all = s->dirty_all, failed = false, hubs, logall = false;
	bool follow = s->replicated && !atomic_load(&s->leader);

	s->dirty = NULL;
	s->n_dirty = s->cap_dirty = 0;
	s->dirty_all = false;
	s->flush_at = 0;

	if (s->reload) {
		free(dirty);
		session_reload(s);
		return;
	}
	if (all) {
		/* Policy or crypto changed: compile everything against the
		 * current allocations, then refresh every edge. */
		free(dirty);
		session_recompile_everything(s, follow);
		return;
	}
	if (store_begin(s->st, &err) == -1) {
		/* Nothing changed anywhere: the same sites, a moment later. */
		log_warnx("session: recompiling: %s", err.message);
		for (size_t i = 0; i < n_dirty; i++)
			session_mark_dirty(s, dirty[i]);
		s->flush_at = util_mono_ms() + SESSION_RELOAD_RETRY_MS;
		goto out;
	}
	if (store_tunnel_gen(s->st, &gen, &err) == -1 ||
	    session_load_changes(s, &dirty, &n_dirty, &cap_dirty,
	    &logall) == -1) {
		failed = true;
		goto done;
	}
	if (logall) {
		/* Policy, crypto, or a log pruned past this batch. */
		store_rollback(s->st);
		free(dirty);
		session_recompile_everything(s, follow);
		return;
	}
	if (!follow && gen != s->tunnel_gen) {
		if (s->followed)
			log_info("session: now the leader: reading the stored "
			    "allocations once");
		else
			log_warnx("session: the stored tunnels changed under "
			    "this controller (generation %" PRIu64 ", expected "
			    "%" PRIu64 ")", gen, s->tunnel_gen);
		failed = true;
		goto done;
	}
	if (session_dirty_order(s, &dirty, &n_dirty) == -1) {
		failed = true;
		goto done;
	}
	if (follow && session_follow_prepare(s, dirty, n_dirty, &fs, &n_fs,
	    &held, &n_held, &cap_held) == -1) {
		failed = true;
		goto done;
	}
	/* Hubs pass the changed sites' prefixes on (allowed_prefixes). */
	hubs = session_hubs_touched(s, dirty, n_dirty);
	if (follow) {
		s->followed = true;
		if (session_follow_batch(s, fs, n_fs, &held, &n_held, &cap_held,
		    &b) == -1) {
			failed = true;
			goto done;
		}
	} else {
		struct topo_input in = { &s->policy, &s->crypto, s->sites,
		    s->n_sites };

		for (size_t i = 0; i < n_dirty; i++) {
			char moved[MODEL_LINKS_MAX][MODEL_LINK_NAME_MAX + 1];
			size_t n_moved;

			topo_change_free(&chg);
			n_moved = session_links_moved(topo_site(s->topo,
			    dirty[i]), session_site(s, dirty[i]), moved);
			if (topo_site_changed(s->topo, &in, dirty[i], &chg,
			    &err) == -1) {
				log_warnx("session: site %" PRIu64 ": compile: "
				    "%s (%s)", dirty[i], err.message,
				    err.field);
				continue;
			}
			if (session_apply_change(s, &chg,
			    topo_next_id(s->topo)) == -1 ||
			    session_renew_moved(s, s->topo, dirty[i], moved,
			    n_moved, &chg) == -1) {
				failed = true;
				goto done;
			}
			session_batch_note(s, &b, dirty[i], &chg);
		}
	}
	if (hubs && session_hub_neighbours(s, &b.peers, &b.n_peers,
	    &b.cap_peers, &b.affected, &b.n_aff, &b.cap_aff) == -1)
		b.oom = true;
	if (b.peers != NULL)
		util_sort_unique_u64(b.peers, &b.n_peers);
	if (b.affected != NULL)
		util_sort_unique_u64(b.affected, &b.n_aff);
	if (b.added != NULL)
		util_sort_unique_u64(b.added, &b.n_added);
	/* The dirty sites' own edges are rebuilt whole (session_id_in). */
	qsort(dirty, n_dirty, sizeof(*dirty), util_cmp_u64);
	for (size_t i = 0; b.affected != NULL && i < b.n_aff; i++) {
		struct edge *e;
		bool changed = false;

		if (topo_site(s->topo, b.affected[i]) == NULL)
			continue;
		if ((e = session_edge_get(s, b.affected[i])) == NULL)
			continue;
		e->live = true;
		/* Without memory for the sets a patch could miss a change:
		 * rebuild whole instead. */
		if (!b.oom && e->cur.version > 0 && e->digests != NULL &&
		    !session_id_in(dirty, n_dirty, e->site_id)) {
			int rc = session_patch_edge(s, e, b.peers, b.n_peers,
			    b.added, b.n_added, &changed);

			n_patched++;
			if (rc == 0 && s->cfg.check_patch)
				session_check_patch(s, e);
		} else {
			(void)session_refresh_edge(s, e, &changed);
		}
	}
	if (store_tunnel_gen(s->st, &gen, &err) == -1)
		failed = true;
	else if (s->cfg.check_patch && n_held == 0)
		session_check_store(s);
done:
	if (!failed && session_alloc_log(s) == -1)
		failed = true;
	s->alloc_log = false;
	if (failed) {
		store_rollback(s->st);
		session_reload(s);
		goto out;
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing the recompile: %s", err.message);
		session_reload(s);
		goto out;
	}
	if (!follow)
		s->tunnel_gen = gen;
	if (s->metrics)
		metrics_compile_done(s->metrics, (util_mono_ns() - t0) / 1000);
	if (follow)
		log_debug("session", "followed the leader's allocations for %zu "
		    "site(s) incrementally (%zu held back), %zu edge(s) "
		    "affected (%zu patched) in %" PRIu64 " us; %zu of %zu "
		    "site(s) read from the store", n_fs, n_held, b.n_aff,
		    n_patched, (util_mono_ns() - t0) / 1000, n_dirty,
		    s->n_sites);
	else
		log_debug("session", "recompiled %zu site(s), %zu edge(s) "
		    "affected (%zu patched) in %" PRIu64 " us; %zu of %zu "
		    "site(s) read from the store", n_dirty, b.n_aff, n_patched,
		    (util_mono_ns() - t0) / 1000, n_dirty, s->n_sites);
	for (size_t i = 0; i < b.n_aff; i++) {
		struct edge *e = session_edge_find(s, b.affected[i]);

		if (e != NULL)
			session_push(s, e);
	}
	/* Held back: compiled again when the leader has stored them. */
	if (n_held > 0) {
		for (size_t i = 0; i < n_held; i++)
			session_mark_dirty(s, held[i]);
		s->flush_at = util_mono_ms() + SESSION_FOLLOW_RETRY_MS;
		log_debug("session", "waiting for the leader's allocations of "
		    "%zu site(s)", n_held);
	}
	/* Nothing is rekeyed: the revoked site's tunnels are gone (their
	 * SAs with them), and it never could derive the keys of tunnels
	 * between other sites (X25519 between the two ends; CONTROLLER.md,
	 * "Revocation"). */
out:
	topo_change_free(&chg);
	session_follow_free(fs, n_fs);
	free(held);
	free(dirty);
	free(b.affected);
	free(b.added);
	free(b.peers);
}

/*
 * Rebuild the edges whose peers announced new epoch keys: the topology
 * did not change, so no recompile, only a new intent version for each
 * edge whose tunnels now carry different keys (a delta upserting them).
 */
void
session_intent_rebuild(struct sessions *s)
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
		if (session_keys_refresh(s, e, &changed[i]) == -1 &&
		    session_refresh_edge(s, e, &changed[i]) == -1)
			changed[i] = false;
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing versions: %s", err.message);
		session_reload(s);
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
void
session_intent_retunnel(struct sessions *s)
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
		session_reload(s);
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
