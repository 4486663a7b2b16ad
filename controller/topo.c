/*
 * topo.c — the intent compiler: which tunnels exist, with which stable
 * id, /31 and VNI, and what each edge sees of them.
 *
 * Pure (no I/O, clock or globals) so it can be tested exhaustively and
 * benchmarked alone.  The compiled state is kept in flat arrays indexed by
 * 32-bit slots plus open-addressing hash tables (tunnel key -> slot, tunnel
 * id -> slot, site id -> slot), so a full compile is linear in the number
 * of site pairs and a one-site change touches only that site's pairs.
 * Per-edge tunnel lists hold slots ordered by tunnel id; because new ids
 * are always the highest, appending keeps them ordered.
 */
#include "controller/topo.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define TOPO_NONE UINT32_MAX

struct topo_tun {
	struct model_tunnel t;  /* t.id == 0: free slot */
	uint32_t sa, sb;        /* site slots of the two ends */
	uint8_t la, lb;         /* link indices in those sites */
	uint32_t mark;          /* generation stamp used by site changes */
};

struct topo_list {
	uint32_t *v;            /* tunnel slots, ordered by tunnel id */
	uint32_t n, cap;
};

struct topo_site {
	struct model_site s;
	bool live;
	struct topo_list tl;
};

/* Open addressing, linear probing; entry = hash << 32 | (ref + 1), 0 empty. */
struct topo_htab {
	uint64_t *e;
	uint32_t cap;           /* power of two */
	uint32_t n;
};

struct topo_bitmap {
	uint64_t *w;
	uint64_t nbits;
	uint64_t used;
	uint64_t hint;          /* no free bit below this index */
};

struct topo_output {
	struct model_policy policy;
	struct model_crypto crypto;
	struct topo_site *sites;
	uint32_t n_sites, cap_sites;
	uint32_t *free_sites;
	uint32_t n_free_sites, cap_free_sites;
	uint32_t *order;        /* live site slots by site id */
	uint32_t n_order, cap_order;
	struct topo_htab site_map;
	struct topo_tun *tun;
	uint32_t n_tun, cap_tun;
	uint32_t *free_tun;
	uint32_t n_free_tun, cap_free_tun;
	size_t n_live_tun;
	struct topo_htab key_map;
	struct topo_htab id_map;
	struct topo_bitmap pool;
	struct topo_bitmap vni;
	uint32_t pool_base;
	uint64_t next_id;
	uint32_t gen;
	uint64_t stamp;         /* topo_stamp: new with every change */
};

/* Lookup key of a tunnel. */
struct topo_key {
	uint64_t a, b;
	const char *la, *lb;
};

typedef bool (*topo_eq_fn)(const void *ctx, uint32_t ref, const void *key);

/* ---- hashing ---------------------------------------------------------- */

static uint64_t
topo_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint32_t
topo_hash_id(uint64_t id)
{
	return (uint32_t)(topo_mix(id) >> 32);
}

static uint32_t
topo_hash_key(const struct topo_key *k)
{
	uint64_t h = topo_mix(k->a * 0x9e3779b97f4a7c15ull ^ k->b);

	for (const char *p = k->la; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = (h ^ 0xff) * 0x100000001b3ull;
	for (const char *p = k->lb; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	return (uint32_t)(topo_mix(h) >> 32);
}

static int
topo_htab_resize(struct topo_htab *h, uint32_t cap)
{
	uint64_t *e = calloc(cap, sizeof(*e));

	if (e == NULL)
		return -1;
	for (uint32_t i = 0; i < h->cap; i++) {
		uint32_t j;

		if (h->e[i] == 0)
			continue;
		j = (uint32_t)(h->e[i] >> 32) & (cap - 1);
		while (e[j] != 0)
			j = (j + 1) & (cap - 1);
		e[j] = h->e[i];
	}
	free(h->e);
	h->e = e;
	h->cap = cap;
	return 0;
}

/* Make room for `more` inserts at load <= 1/2. */
static int
topo_htab_reserve(struct topo_htab *h, size_t more)
{
	uint64_t need = ((uint64_t)h->n + more) * 2;
	uint64_t cap = h->cap != 0 ? h->cap : 16;

	while (cap < need)
		cap *= 2;
	if (cap > (1ull << 31))
		return -1;
	if (cap == h->cap)
		return 0;
	return topo_htab_resize(h, (uint32_t)cap);
}

static uint32_t
topo_htab_find(const struct topo_htab *h, uint32_t hash, topo_eq_fn eq,
    const void *ctx, const void *key)
{
	uint32_t i;

	if (h->cap == 0)
		return TOPO_NONE;
	for (i = hash & (h->cap - 1); h->e[i] != 0; i = (i + 1) & (h->cap - 1)) {
		uint32_t ref = (uint32_t)h->e[i] - 1;

		if ((uint32_t)(h->e[i] >> 32) == hash && eq(ctx, ref, key))
			return ref;
	}
	return TOPO_NONE;
}

/* Capacity must have been reserved. */
static void
topo_htab_insert(struct topo_htab *h, uint32_t hash, uint32_t ref)
{
	uint32_t i = hash & (h->cap - 1);

	while (h->e[i] != 0)
		i = (i + 1) & (h->cap - 1);
	h->e[i] = (uint64_t)hash << 32 | ((uint64_t)ref + 1);
	h->n++;
}

/* Remove the entry for ref (backward-shift deletion, no tombstones). */
static void
topo_htab_remove(struct topo_htab *h, uint32_t hash, uint32_t ref)
{
	uint32_t mask = h->cap - 1, i, j;
	uint64_t want = (uint64_t)hash << 32 | ((uint64_t)ref + 1);

	for (i = hash & mask; h->e[i] != want; i = (i + 1) & mask)
		if (h->e[i] == 0)
			return;
	h->e[i] = 0;
	h->n--;
	for (j = (i + 1) & mask; h->e[j] != 0; j = (j + 1) & mask) {
		uint32_t home = (uint32_t)(h->e[j] >> 32) & mask;

		/* Move e[j] into the hole if its home is not in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			h->e[i] = h->e[j];
			h->e[j] = 0;
			i = j;
		}
	}
}

static bool
topo_eq_tun_key(const void *ctx, uint32_t ref, const void *key)
{
	const struct topo_tun *t = &((const struct topo_tun *)ctx)[ref];
	const struct topo_key *k = key;

	return t->t.site_a == k->a && t->t.site_b == k->b &&
	    strcmp(t->t.link_a, k->la) == 0 && strcmp(t->t.link_b, k->lb) == 0;
}

static bool
topo_eq_prev_key(const void *ctx, uint32_t ref, const void *key)
{
	const struct model_tunnel *t = &((const struct model_tunnel *)ctx)[ref];
	const struct topo_key *k = key;

	return t->site_a == k->a && t->site_b == k->b &&
	    strcmp(t->link_a, k->la) == 0 && strcmp(t->link_b, k->lb) == 0;
}

static bool
topo_eq_tun_id(const void *ctx, uint32_t ref, const void *key)
{
	return ((const struct topo_tun *)ctx)[ref].t.id == *(const uint64_t *)key;
}

static bool
topo_eq_site_id(const void *ctx, uint32_t ref, const void *key)
{
	return ((const struct topo_site *)ctx)[ref].s.id ==
	    *(const uint64_t *)key;
}

static struct topo_key
topo_key_of(const struct model_tunnel *t)
{
	struct topo_key k = { t->site_a, t->site_b, t->link_a, t->link_b };

	return k;
}

/* ---- bitmaps (pool /31 slots, VNIs) ---------------------------------- */

static int
topo_bm_init(struct topo_bitmap *b, uint64_t nbits)
{
	uint64_t words = (nbits + 63) / 64;

	memset(b, 0, sizeof(*b));
	b->nbits = nbits;
	if (words == 0)
		return 0;
	b->w = calloc(words, sizeof(uint64_t));
	if (b->w == NULL)
		return -1;
	/* Bits past the end look used so the search never returns them. */
	if (nbits % 64 != 0)
		b->w[words - 1] = ~0ull << (nbits % 64);
	return 0;
}

static bool
topo_bm_test(const struct topo_bitmap *b, uint64_t i)
{
	return (b->w[i / 64] >> (i % 64)) & 1;
}

static void
topo_bm_set(struct topo_bitmap *b, uint64_t i)
{
	b->w[i / 64] |= 1ull << (i % 64);
	b->used++;
}

static void
topo_bm_clear(struct topo_bitmap *b, uint64_t i)
{
	b->w[i / 64] &= ~(1ull << (i % 64));
	b->used--;
	if (i < b->hint)
		b->hint = i;
}

/* Lowest free index, marked used; -1 when full. */
static int64_t
topo_bm_alloc(struct topo_bitmap *b)
{
	uint64_t words = (b->nbits + 63) / 64;

	for (uint64_t w = b->hint / 64; w < words; w++) {
		uint64_t i;

		if (b->w[w] == ~0ull)
			continue;
		i = w * 64 + (uint64_t)__builtin_ctzll(~b->w[w]);
		topo_bm_set(b, i);
		b->hint = i + 1;
		return (int64_t)i;
	}
	b->hint = b->nbits;
	return -1;
}

static uint64_t
topo_bm_free(const struct topo_bitmap *b)
{
	return b->nbits - b->used;
}

/* ---- small helpers ---------------------------------------------------- */

static int
topo_list_reserve(struct topo_list *l, uint32_t more)
{
	uint32_t cap;
	uint32_t *v;

	/* Callers pass lists inside live slots; the analyzer cannot see
	 * that t->sites is allocated whenever a slot exists. */
	if (l->n + more <= l->cap) // NOLINT(clang-analyzer-core.NullDereference)
		return 0;
	cap = l->cap != 0 ? l->cap : 8;
	while (cap < l->n + more)
		cap *= 2;
	v = realloc(l->v, (size_t)cap * sizeof(*v));
	if (v == NULL)
		return -1;
	l->v = v;
	l->cap = cap;
	return 0;
}

static int
topo_u32_reserve(uint32_t **v, uint32_t *cap, uint32_t need)
{
	uint32_t c;
	uint32_t *nv;

	if (need <= *cap)
		return 0;
	c = *cap != 0 ? *cap : 16;
	while (c < need)
		c *= 2;
	nv = realloc(*v, (size_t)c * sizeof(**v));
	if (nv == NULL)
		return -1;
	*v = nv;
	*cap = c;
	return 0;
}

static bool
topo_is_hub(const struct model_site *s)
{
	return s->role == MODEL_ROLE_HUB;
}

/* Does the topology policy want any tunnel between sites a and b? */
static bool
topo_pair_wanted(const struct model_policy *p, const struct model_site *a,
    const struct model_site *b)
{
	switch (p->topology) {
	case MODEL_TOPO_HUB_SPOKE:
		return topo_is_hub(a) || topo_is_hub(b);
	case MODEL_TOPO_REGIONAL:
		return strcmp(a->region, b->region) == 0 ||
		    (topo_is_hub(a) && topo_is_hub(b));
	case MODEL_TOPO_FULL_MESH:
	default:
		return true;
	}
}

static uint32_t
topo_inner_of(const struct topo_output *t, uint64_t slot)
{
	return t->pool_base + (uint32_t)(slot * 2);
}

/* Pool slot of a /31 base, or -1 if outside the pool or odd. */
static int64_t
topo_slot_of(const struct topo_output *t, uint32_t inner)
{
	uint64_t off;

	if (inner < t->pool_base || (inner & 1) != 0)
		return -1;
	off = (uint64_t)(inner - t->pool_base) / 2;
	return off < t->pool.nbits ? (int64_t)off : -1;
}

static bool
topo_vxlan(const struct topo_output *t)
{
	return t->policy.encap == MODEL_ENCAP_VXLAN;
}

static int
topo_alloc_inner(struct topo_output *t, struct model_tunnel *mt,
    struct model_error *err)
{
	int64_t s = topo_bm_alloc(&t->pool);

	if (s < 0)
		return model_error_set(err, MODEL_E_EXHAUSTED, "pool",
		    "tunnel address pool exhausted (%llu /31s)",
		    (unsigned long long)t->pool.nbits);
	mt->inner = topo_inner_of(t, (uint64_t)s);
	return 0;
}

static int
topo_alloc_vni(struct topo_output *t, struct model_tunnel *mt,
    struct model_error *err)
{
	int64_t s;

	if (!topo_vxlan(t)) {
		mt->vni = 0;
		return 0;
	}
	s = topo_bm_alloc(&t->vni);
	if (s < 0)
		return model_error_set(err, MODEL_E_EXHAUSTED, "vni",
		    "VNI range exhausted (%llu VNIs)",
		    (unsigned long long)t->vni.nbits);
	mt->vni = t->policy.vni_min + (uint32_t)s;
	return 0;
}

static void
topo_release(struct topo_output *t, const struct model_tunnel *mt)
{
	int64_t s = topo_slot_of(t, mt->inner);

	if (s >= 0 && topo_bm_test(&t->pool, (uint64_t)s))
		topo_bm_clear(&t->pool, (uint64_t)s);
	if (topo_vxlan(t) && mt->vni >= t->policy.vni_min &&
	    mt->vni <= t->policy.vni_max &&
	    topo_bm_test(&t->vni, mt->vni - t->policy.vni_min))
		topo_bm_clear(&t->vni, mt->vni - t->policy.vni_min);
}

static int
topo_site_cmp(const void *a, const void *b)
{
	const struct topo_site *x = a, *y = b;

	return (x->s.id > y->s.id) - (x->s.id < y->s.id);
}

static int
topo_slot_cmp(const void *a, const void *b, void *ctx)
{
	const struct topo_tun *tun = ctx;
	uint64_t x = tun[*(const uint32_t *)a].t.id;
	uint64_t y = tun[*(const uint32_t *)b].t.id;

	return (x > y) - (x < y);
}

static int
topo_prev_cmp(const void *a, const void *b, void *ctx)
{
	const struct model_tunnel *p = ctx;
	uint64_t x = p[*(const uint32_t *)a].id;
	uint64_t y = p[*(const uint32_t *)b].id;

	return (x > y) - (x < y);
}

static void
topo_fill_tunnel(struct topo_tun *tt, const struct topo_output *t,
    uint32_t sa, uint8_t la, uint32_t sb, uint8_t lb)
{
	memset(tt, 0, sizeof(*tt));
	tt->sa = sa;
	tt->sb = sb;
	tt->la = la;
	tt->lb = lb;
	tt->t.site_a = t->sites[sa].s.id;
	tt->t.site_b = t->sites[sb].s.id;
	memcpy(tt->t.link_a, t->sites[sa].s.links[la].name,
	    sizeof(tt->t.link_a));
	memcpy(tt->t.link_b, t->sites[sb].s.links[lb].name,
	    sizeof(tt->t.link_b));
}

/* ---- setup ------------------------------------------------------------ */

static int
topo_check_input(const struct topo_input *in, struct model_error *err)
{
	if (in == NULL || in->policy == NULL || in->crypto == NULL ||
	    (in->n_sites > 0 && in->sites == NULL))
		return model_error_set(err, MODEL_E_INVALID, "",
		    "incomplete compiler input");
	if (in->n_sites > (1u << 24))
		return model_error_set(err, MODEL_E_INVALID, "sites",
		    "too many sites");
	if (model_policy_validate(in->policy, err) == -1 ||
	    model_crypto_validate(in->crypto, err) == -1)
		return -1;
	return 0;
}

/* Copy and canonicalise one input site; -1 if it is invalid. */
static int
topo_copy_site(struct model_site *dst, const struct model_site *src,
    struct model_error *err)
{
	struct model_error e;

	if (src->id == 0)
		return model_error_set(err, MODEL_E_INVALID, "sites",
		    "site '%.63s' has no id", src->name);
	if (model_site_validate(src, &e) == -1)
		return model_error_set(err, e.code, "sites",
		    "site %llu: %s: %s", (unsigned long long)src->id, e.field,
		    e.message);
	*dst = *src;
	model_site_sort_links(dst);
	return 0;
}

/* Stamps are unique in the process, so an output freed and another
 * allocated at the same address never share one. */
static uint64_t
topo_next_stamp(void)
{
	static _Atomic uint64_t stamps;

	return atomic_fetch_add(&stamps, 1) + 1;
}

uint64_t
topo_stamp(const struct topo_output *t)
{
	return t != NULL ? t->stamp : 0;
}

static struct topo_output *
topo_new(const struct topo_input *in)
{
	struct topo_output *t = calloc(1, sizeof(*t));
	const uint8_t *a;

	if (t == NULL)
		return NULL;
	t->stamp = topo_next_stamp();
	t->policy = *in->policy;
	t->crypto = *in->crypto;
	a = t->policy.pool.addr;
	t->pool_base = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
	    (uint32_t)a[2] << 8 | a[3];
	if (topo_bm_init(&t->pool, model_pool_slots(&t->policy.pool)) == -1 ||
	    topo_bm_init(&t->vni, topo_vxlan(t) ?
	    (uint64_t)t->policy.vni_max - t->policy.vni_min + 1 : 0) == -1) {
		topo_free(t);
		return NULL;
	}
	return t;
}

/* Call fn for every tunnel the policy wants between site slots sa < sb. */
typedef int (*topo_pair_fn)(struct topo_output *t, uint32_t sa, uint8_t la,
    uint32_t sb, uint8_t lb, void *ctx);

static int
topo_pair_tunnels(struct topo_output *t, uint32_t sa, uint32_t sb,
    topo_pair_fn fn, void *ctx)
{
	const struct model_site *a = &t->sites[sa].s, *b = &t->sites[sb].s;

	if (!topo_pair_wanted(&t->policy, a, b))
		return 0;
	for (size_t la = 0; la < a->n_links; la++)
		for (size_t lb = 0; lb < b->n_links; lb++)
			if (model_links_pair_allowed(&t->policy,
			    &a->links[la], &b->links[lb]) &&
			    fn(t, sa, (uint8_t)la, sb, (uint8_t)lb, ctx) == -1)
				return -1;
	return 0;
}

uint64_t
topo_pair_count(const struct model_policy *p, const struct model_site *a,
    const struct model_site *b)
{
	uint64_t n = 0;

	if (!topo_pair_wanted(p, a, b))
		return 0;
	for (size_t la = 0; la < a->n_links; la++)
		for (size_t lb = 0; lb < b->n_links; lb++)
			if (model_links_pair_allowed(p, &a->links[la],
			    &b->links[lb]))
				n++;
	return n;
}

/* ---- full compile ------------------------------------------------------ */

struct topo_full {
	const struct model_tunnel *prev;
	struct topo_htab pmap;
	bool *pused;
	uint64_t count;
};

static int
topo_full_count(struct topo_output *t, uint32_t sa, uint8_t la, uint32_t sb,
    uint8_t lb, void *ctx)
{
	struct topo_full *f = ctx;

	f->count++;
	t->sites[sa].tl.cap++;
	t->sites[sb].tl.cap++;
	return 0;
}

#define TOPO_NEED_INNER 1u
#define TOPO_NEED_VNI   2u
#define TOPO_CHANGED    4u      /* kept, but its stored VNI must be cleared */

/* Place one wanted tunnel, reusing its previous allocation if any. */
static int
topo_full_fill(struct topo_output *t, uint32_t sa, uint8_t la, uint32_t sb,
    uint8_t lb, void *ctx)
{
	struct topo_full *f = ctx;
	uint32_t slot = t->n_tun++;
	struct topo_tun *tt = &t->tun[slot];
	struct topo_key k;
	uint32_t pref;

	topo_fill_tunnel(tt, t, sa, la, sb, lb);
	k = topo_key_of(&tt->t);
	tt->mark = TOPO_NEED_INNER | (topo_vxlan(t) ? TOPO_NEED_VNI : 0);
	pref = topo_htab_find(&f->pmap, topo_hash_key(&k), topo_eq_prev_key,
	    f->prev, &k);
	if (pref != TOPO_NONE && !f->pused[pref] &&
	    topo_htab_find(&t->id_map, topo_hash_id(f->prev[pref].id),
	    topo_eq_tun_id, t->tun, &f->prev[pref].id) == TOPO_NONE) {
		const struct model_tunnel *p = &f->prev[pref];
		int64_t s = topo_slot_of(t, p->inner);

		f->pused[pref] = true;
		tt->t.id = p->id;
		topo_htab_insert(&t->id_map, topo_hash_id(p->id), slot);
		if (s >= 0 && !topo_bm_test(&t->pool, (uint64_t)s)) {
			topo_bm_set(&t->pool, (uint64_t)s);
			tt->t.inner = p->inner;
			tt->mark &= ~TOPO_NEED_INNER;
		}
		if (!topo_vxlan(t) && p->vni != 0)
			tt->mark |= TOPO_CHANGED;
		if (topo_vxlan(t) && p->vni >= t->policy.vni_min &&
		    p->vni <= t->policy.vni_max &&
		    !topo_bm_test(&t->vni, p->vni - t->policy.vni_min)) {
			topo_bm_set(&t->vni, p->vni - t->policy.vni_min);
			tt->t.vni = p->vni;
			tt->mark &= ~TOPO_NEED_VNI;
		}
	}
	topo_htab_insert(&t->key_map, topo_hash_key(&k), slot);
	t->sites[sa].tl.v[t->sites[sa].tl.n++] = slot;
	t->sites[sb].tl.v[t->sites[sb].tl.n++] = slot;
	return 0;
}

static int
topo_load_sites(struct topo_output *t, const struct topo_input *in,
    struct model_error *err)
{
	uint32_t n = 0;

	for (size_t i = 0; i < in->n_sites; i++)
		if (!in->sites[i].revoked)
			n++;
	t->sites = calloc(n != 0 ? n : 1, sizeof(*t->sites));
	t->order = calloc(n != 0 ? n : 1, sizeof(*t->order));
	if (t->sites == NULL || t->order == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	t->cap_sites = t->cap_order = n != 0 ? n : 1;
	for (size_t i = 0; i < in->n_sites; i++) {
		if (in->sites[i].revoked)
			continue;
		if (topo_copy_site(&t->sites[t->n_sites].s, &in->sites[i],
		    err) == -1)
			return -1;
		t->sites[t->n_sites++].live = true;
	}
	qsort(t->sites, t->n_sites, sizeof(*t->sites), topo_site_cmp);
	if (topo_htab_reserve(&t->site_map, t->n_sites) == -1)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	for (uint32_t i = 0; i < t->n_sites; i++) {
		if (i > 0 && t->sites[i].s.id == t->sites[i - 1].s.id)
			return model_error_set(err, MODEL_E_INVALID, "sites",
			    "site id %llu appears twice",
			    (unsigned long long)t->sites[i].s.id);
		topo_htab_insert(&t->site_map, topo_hash_id(t->sites[i].s.id),
		    i);
		t->order[t->n_order++] = i;
	}
	return 0;
}

/* Index the previous allocations by key; the lowest id wins a duplicate. */
static int
topo_load_prev(struct topo_output *t, const struct topo_prev *prev,
    struct topo_full *f, uint32_t **pidx_out, struct model_error *err)
{
	size_t np = prev != NULL ? prev->n_tunnels : 0;
	uint32_t *pidx;
	uint64_t max_id = 0;

	t->next_id = prev != NULL ? prev->next_id : 0;
	*pidx_out = NULL;
	if (np == 0) {
		if (t->next_id == 0)
			t->next_id = 1;
		return 0;
	}
	if (prev->tunnels == NULL || np >= (1u << 31))
		return model_error_set(err, MODEL_E_INVALID, "prev",
		    "bad previous allocations");
	f->prev = prev->tunnels;
	pidx = malloc(np * sizeof(*pidx));
	f->pused = calloc(np, sizeof(*f->pused));
	if (pidx == NULL || f->pused == NULL ||
	    topo_htab_reserve(&f->pmap, np) == -1) {
		free(pidx);
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	}
	for (uint32_t i = 0; i < np; i++)
		pidx[i] = i;
	qsort_r(pidx, np, sizeof(*pidx), topo_prev_cmp, (void *)f->prev);
	for (size_t i = 0; i < np; i++) {
		const struct model_tunnel *p = &f->prev[pidx[i]];
		struct topo_key k = topo_key_of(p);
		uint32_t h = topo_hash_key(&k);

		if (p->id == 0)
			continue;
		if (p->id > max_id)
			max_id = p->id;
		if (topo_htab_find(&f->pmap, h, topo_eq_prev_key, f->prev,
		    &k) == TOPO_NONE)
			topo_htab_insert(&f->pmap, h, pidx[i]);
	}
	if (t->next_id <= max_id)
		t->next_id = max_id + 1;
	*pidx_out = pidx;
	return 0;
}

static int
topo_change_alloc(struct topo_change *c, size_t edges, size_t removed,
    size_t added, size_t removed_sites)
{
	memset(c, 0, sizeof(*c));
	c->edges = malloc((edges != 0 ? edges : 1) * sizeof(*c->edges));
	c->removed = malloc((removed != 0 ? removed : 1) * sizeof(*c->removed));
	c->added = malloc((added != 0 ? added : 1) * sizeof(*c->added));
	c->removed_sites = malloc((removed_sites != 0 ? removed_sites : 1) *
	    sizeof(*c->removed_sites));
	if (c->edges == NULL || c->removed == NULL || c->added == NULL ||
	    c->removed_sites == NULL) {
		topo_change_free(c);
		return -1;
	}
	return 0;
}

/* What the full compile changed against prev. */
static int
topo_full_change(struct topo_output *t, const struct topo_prev *prev,
    const struct topo_full *f, const uint32_t *pidx, struct topo_change *c)
{
	size_t np = prev != NULL ? prev->n_tunnels : 0;
	size_t n_added = 0;

	for (uint32_t s = 0; s < t->n_tun; s++)
		if (t->tun[s].mark != 0)
			n_added++;
	if (topo_change_alloc(c, t->n_order, np, n_added, 2 * np) == -1)
		return -1;
	for (uint32_t i = 0; i < t->n_order; i++)
		c->edges[c->n_edges++] = t->sites[t->order[i]].s.id;
	for (uint32_t s = 0; s < t->n_tun; s++)
		if (t->tun[s].mark != 0)
			c->added[c->n_added++] = t->tun[s].t;
	for (size_t i = 0; i < np; i++) {
		const struct model_tunnel *p = &f->prev[pidx[i]];
		uint64_t id = p->id;

		if (id != 0 && !f->pused[pidx[i]] &&
		    topo_htab_find(&t->id_map, topo_hash_id(id),
		    topo_eq_tun_id, t->tun, &id) == TOPO_NONE)
			c->removed[c->n_removed++] = id;
		if (topo_htab_find(&t->site_map, topo_hash_id(p->site_a),
		    topo_eq_site_id, t->sites, &p->site_a) == TOPO_NONE)
			c->removed_sites[c->n_removed_sites++] = p->site_a;
		if (topo_htab_find(&t->site_map, topo_hash_id(p->site_b),
		    topo_eq_site_id, t->sites, &p->site_b) == TOPO_NONE)
			c->removed_sites[c->n_removed_sites++] = p->site_b;
	}
	util_sort_unique_u64(c->removed, &c->n_removed);
	util_sort_unique_u64(c->removed_sites, &c->n_removed_sites);
	return 0;
}

static bool
topo_list_sorted(const struct topo_output *t, const struct topo_list *l)
{
	/* l->v[0..n) was filled by topo_full_fill. */
	for (uint32_t i = 1; i < l->n; i++)
		if (t->tun[l->v[i - 1]].t.id > t->tun[l->v[i]].t.id) // NOLINT(clang-analyzer-core.uninitialized.ArraySubscript)
			return false;
	return true;
}

int
topo_compile(const struct topo_input *in, const struct topo_prev *prev,
    struct topo_output **out, struct topo_change *chg,
    struct model_error *err)
{
	struct topo_output *t;
	struct topo_full f;
	uint32_t *pidx = NULL;
	struct topo_change c;

	if (topo_check_input(in, err) == -1)
		return -1;
	memset(&f, 0, sizeof(f));
	memset(&c, 0, sizeof(c));
	t = topo_new(in);
	if (t == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "",
		    "out of memory");
	if (topo_load_sites(t, in, err) == -1 ||
	    topo_load_prev(t, prev, &f, &pidx, err) == -1)
		goto fail;

	/* Size everything exactly before filling. */
	for (uint32_t i = 0; i < t->n_sites; i++)
		for (uint32_t j = i + 1; j < t->n_sites; j++)
			(void)topo_pair_tunnels(t, i, j, topo_full_count, &f);
	if (f.count > t->pool.nbits) {
		model_error_set(err, MODEL_E_EXHAUSTED, "pool",
		    "%llu tunnels need more /31s than the pool has (%llu)",
		    (unsigned long long)f.count,
		    (unsigned long long)t->pool.nbits);
		goto fail;
	}
	if (topo_vxlan(t) && f.count > t->vni.nbits) {
		model_error_set(err, MODEL_E_EXHAUSTED, "vni",
		    "%llu tunnels need more VNIs than the range has (%llu)",
		    (unsigned long long)f.count,
		    (unsigned long long)t->vni.nbits);
		goto fail;
	}
	t->tun = malloc((f.count != 0 ? f.count : 1) * sizeof(*t->tun));
	t->cap_tun = (uint32_t)(f.count != 0 ? f.count : 1);
	if (t->tun == NULL || topo_htab_reserve(&t->key_map, f.count) == -1 ||
	    topo_htab_reserve(&t->id_map, f.count) == -1)
		goto oom;
	for (uint32_t i = 0; i < t->n_sites; i++) {
		struct topo_list *l = &t->sites[i].tl;

		l->v = malloc((l->cap != 0 ? l->cap : 1) * sizeof(*l->v));
		if (l->v == NULL)
			goto oom;
	}
	for (uint32_t i = 0; i < t->n_sites; i++)
		for (uint32_t j = i + 1; j < t->n_sites; j++)
			(void)topo_pair_tunnels(t, i, j, topo_full_fill, &f);

	/* New tunnels and lost resources, in key order. */
	for (uint32_t s = 0; s < t->n_tun; s++) {
		struct topo_tun *tt = &t->tun[s];

		if (tt->t.id == 0) {
			tt->t.id = t->next_id++;
			topo_htab_insert(&t->id_map, topo_hash_id(tt->t.id), s);
		}
		if ((tt->mark & TOPO_NEED_INNER) &&
		    topo_alloc_inner(t, &tt->t, err) == -1)
			goto fail;
		if ((tt->mark & TOPO_NEED_VNI) &&
		    topo_alloc_vni(t, &tt->t, err) == -1)
			goto fail;
		if (!topo_vxlan(t))
			tt->t.vni = 0;
	}
	t->n_live_tun = t->n_tun;
	for (uint32_t i = 0; i < t->n_sites; i++)
		if (!topo_list_sorted(t, &t->sites[i].tl))
			qsort_r(t->sites[i].tl.v, t->sites[i].tl.n,
			    sizeof(uint32_t), topo_slot_cmp, t->tun);
	if (chg != NULL && topo_full_change(t, prev, &f, pidx, &c) == -1)
		goto oom;
	for (uint32_t s = 0; s < t->n_tun; s++)
		t->tun[s].mark = 0;
	free(pidx);
	free(f.pused);
	free(f.pmap.e);
	if (chg != NULL)
		*chg = c;
	*out = t;
	return 0;
oom:
	model_error_set(err, MODEL_E_INTERNAL, "", "out of memory");
fail:
	free(pidx);
	free(f.pused);
	free(f.pmap.e);
	topo_free(t);
	return -1;
}

/* ---- one-site change ---------------------------------------------------- */

struct topo_new {
	uint32_t peer;          /* site slot of the other end */
	uint8_t lx, ly;         /* link index at the changed site, at the peer */
	const struct model_tunnel *st; /* following: the stored allocation */
};

/* topo_site_follow's allocations and the sites still to come. */
struct topo_follow {
	const struct model_tunnel *stored;      /* sorted by key */
	size_t n_stored;
	const uint64_t *pending;                /* sorted */
	size_t n_pending;
};

struct topo_inc {
	const struct model_site *x;     /* the changed site's new copy */
	uint64_t xid;
	struct topo_new *nv;
	size_t n_new, cap_new;
	uint32_t n_kept;
	const struct topo_follow *f;    /* NULL: allocate */
	size_t n_missing;               /* following: wanted, not stored */
};

/* Key order of stored tunnels (topo_tunnel_key_sort). */
static int
topo_key_cmp(const struct topo_key *x, const struct topo_key *y)
{
	int c;

	if (x->a != y->a)
		return x->a < y->a ? -1 : 1;
	if (x->b != y->b)
		return x->b < y->b ? -1 : 1;
	if ((c = strcmp(x->la, y->la)) != 0)
		return c;
	return strcmp(x->lb, y->lb);
}

static int
topo_stored_cmp(const void *a, const void *b)
{
	struct topo_key x = topo_key_of(a), y = topo_key_of(b);

	return topo_key_cmp(&x, &y);
}

void
topo_tunnel_key_sort(struct model_tunnel *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), topo_stored_cmp);
}

/* The stored tunnel with key k, or NULL. */
static const struct model_tunnel *
topo_stored_find(const struct model_tunnel *v, size_t n,
    const struct topo_key *k)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct topo_key m = topo_key_of(&v[mid]);
		int c = topo_key_cmp(&m, k);

		if (c == 0)
			return &v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool
topo_id_in(const uint64_t *v, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] == id)
			return true;
		if (v[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Tunnel key between the changed site x (link lx) and peer y (link ly). */
static struct topo_key
topo_inc_key(const struct topo_output *t, const struct topo_inc *c,
    uint32_t y, uint8_t lx, uint8_t ly)
{
	const struct model_site *ys = &t->sites[y].s;
	struct topo_key k;

	if (c->xid < ys->id) {
		k.a = c->xid;
		k.la = c->x->links[lx].name;
		k.b = ys->id;
		k.lb = ys->links[ly].name;
	} else {
		k.a = ys->id;
		k.la = ys->links[ly].name;
		k.b = c->xid;
		k.lb = c->x->links[lx].name;
	}
	return k;
}

/* Find which wanted tunnels exist already (marked) and which are new. */
static int
topo_inc_plan(struct topo_output *t, struct topo_inc *c, uint32_t xslot)
{
	for (uint32_t o = 0; o < t->n_order; o++) {
		uint32_t y = t->order[o];
		const struct model_site *ys = &t->sites[y].s;
		const struct model_site *a = c->xid < ys->id ? c->x : ys;
		const struct model_site *b = c->xid < ys->id ? ys : c->x;

		if (y == xslot || !topo_pair_wanted(&t->policy, a, b))
			continue;
		for (size_t la = 0; la < a->n_links; la++) {
			for (size_t lb = 0; lb < b->n_links; lb++) {
				uint8_t lx, ly;
				struct topo_key k;
				uint32_t ref;
				const struct model_tunnel *st = NULL;

				if (!model_links_pair_allowed(&t->policy,
				    &a->links[la], &b->links[lb]))
					continue;
				lx = (uint8_t)(a == c->x ? la : lb);
				ly = (uint8_t)(a == c->x ? lb : la);
				k = topo_inc_key(t, c, y, lx, ly);
				ref = topo_htab_find(&t->key_map,
				    topo_hash_key(&k), topo_eq_tun_key, t->tun,
				    &k);
				if (c->f != NULL) {
					st = topo_stored_find(c->f->stored,
					    c->f->n_stored, &k);
					/* Not stored: the allocating replica
					 * has not got there, or it compiled
					 * a newer copy of a peer still to
					 * come in this batch (kept as is). */
					if (st == NULL && !topo_id_in(
					    c->f->pending, c->f->n_pending,
					    ys->id)) {
						c->n_missing++;
						continue;
					}
					if (st == NULL && ref == TOPO_NONE)
						continue;
					if (st != NULL && ref != TOPO_NONE &&
					    (t->tun[ref].t.id != st->id ||
					    t->tun[ref].t.inner != st->inner ||
					    t->tun[ref].t.vni != st->vni))
						ref = TOPO_NONE; /* re-made */
				}
				if (ref != TOPO_NONE) {
					t->tun[ref].mark = t->gen;
					c->n_kept++;
					continue;
				}
				if (c->n_new == c->cap_new) {
					size_t cap = c->cap_new ? c->cap_new * 2 : 64;
					struct topo_new *nv = realloc(c->nv,
					    cap * sizeof(*nv));

					if (nv == NULL)
						return -1;
					c->nv = nv;
					c->cap_new = cap;
				}
				c->nv[c->n_new].peer = y;
				c->nv[c->n_new].lx = lx;
				c->nv[c->n_new].ly = ly;
				c->nv[c->n_new].st = st;
				c->n_new++;
			}
		}
	}
	return 0;
}

/* Reserve every allocation the change will need, so applying it can't fail. */
static int
topo_inc_reserve(struct topo_output *t, const struct topo_inc *c,
    uint32_t xslot, uint32_t n_removed, bool x_live)
{
	for (size_t i = 0; i < c->n_new;) {
		size_t j = i;

		while (j < c->n_new && c->nv[j].peer == c->nv[i].peer)
			j++;
		if (topo_list_reserve(&t->sites[c->nv[i].peer].tl,
		    (uint32_t)(j - i)) == -1)
			return -1;
		i = j;
	}
	if (xslot != TOPO_NONE &&
	    topo_list_reserve(&t->sites[xslot].tl, (uint32_t)c->n_new) == -1)
		return -1;
	if (topo_htab_reserve(&t->key_map, c->n_new) == -1 ||
	    topo_htab_reserve(&t->id_map, c->n_new) == -1 ||
	    topo_htab_reserve(&t->site_map, 1) == -1 ||
	    topo_u32_reserve(&t->free_tun, &t->cap_free_tun,
	    t->n_free_tun + n_removed) == -1 ||
	    topo_u32_reserve(&t->free_sites, &t->cap_free_sites,
	    t->n_free_sites + 1) == -1 ||
	    topo_u32_reserve(&t->order, &t->cap_order, t->n_order + 1) == -1)
		return -1;
	if (t->n_tun + c->n_new > t->cap_tun) {
		uint64_t cap = t->cap_tun ? t->cap_tun : 16;
		struct topo_tun *nt;

		while (cap < t->n_tun + c->n_new)
			cap *= 2;
		if (cap >= TOPO_NONE)
			return -1;
		nt = realloc(t->tun, cap * sizeof(*nt));
		if (nt == NULL)
			return -1;
		t->tun = nt;
		t->cap_tun = (uint32_t)cap;
	}
	if (x_live && xslot == TOPO_NONE && t->n_free_sites == 0 &&
	    t->n_sites == t->cap_sites) {
		uint32_t cap = t->cap_sites ? t->cap_sites * 2 : 16;
		struct topo_site *ns = realloc(t->sites, cap * sizeof(*ns));

		if (ns == NULL)
			return -1;
		t->sites = ns;
		t->cap_sites = cap;
	}
	return 0;
}

static void
topo_list_remove(struct topo_output *t, struct topo_list *l, uint64_t id)
{
	uint32_t lo = 0, hi = l->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (t->tun[l->v[mid]].t.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < l->n && t->tun[l->v[lo]].t.id == id) {
		memmove(&l->v[lo], &l->v[lo + 1],
		    (l->n - lo - 1) * sizeof(l->v[0]));
		l->n--;
	}
}

static void
topo_order_insert(struct topo_output *t, uint32_t slot)
{
	uint64_t id = t->sites[slot].s.id;
	uint32_t i = t->n_order;

	while (i > 0 && t->sites[t->order[i - 1]].s.id > id) {
		t->order[i] = t->order[i - 1];
		i--;
	}
	t->order[i] = slot;
	t->n_order++;
}

static void
topo_order_remove(struct topo_output *t, uint32_t slot)
{
	for (uint32_t i = 0; i < t->n_order; i++) {
		if (t->order[i] == slot) {
			memmove(&t->order[i], &t->order[i + 1],
			    (t->n_order - i - 1) * sizeof(t->order[0]));
			t->n_order--;
			return;
		}
	}
}

/* Drop one tunnel of the changed site; slot becomes free. */
static void
topo_inc_drop(struct topo_output *t, uint32_t s, uint32_t xslot,
    struct topo_change *c)
{
	struct topo_tun *tt = &t->tun[s];
	uint32_t peer = tt->sa == xslot ? tt->sb : tt->sa;
	struct topo_key k = topo_key_of(&tt->t);

	c->removed[c->n_removed++] = tt->t.id;
	c->edges[c->n_edges++] = t->sites[peer].s.id;
	topo_list_remove(t, &t->sites[peer].tl, tt->t.id);
	topo_htab_remove(&t->key_map, topo_hash_key(&k), s);
	topo_htab_remove(&t->id_map, topo_hash_id(tt->t.id), s);
	topo_release(t, &tt->t);
	memset(tt, 0, sizeof(*tt));
	t->free_tun[t->n_free_tun++] = s;
	t->n_live_tun--;
}

/* Insert tunnel slot s into l, keeping id order (appending when its id
 * is the highest, as new allocations are). */
static void
topo_list_insert(struct topo_output *t, struct topo_list *l, uint32_t s)
{
	uint64_t id = t->tun[s].t.id;
	uint32_t i = l->n;

	while (i > 0 && t->tun[l->v[i - 1]].t.id > id) {
		l->v[i] = l->v[i - 1];
		i--;
	}
	l->v[i] = s;
	l->n++;
}

static int
topo_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int
topo_new_cmp(const void *a, const void *b)
{
	const struct topo_new *x = a, *y = b;

	return (x->st->id > y->st->id) - (x->st->id < y->st->id);
}

/*
 * Following: whether the stored allocations of the new tunnels are free
 * in t once the changed site's unmarked tunnels are dropped.  0 they
 * are, 1 one is held by another tunnel (t has not followed a change
 * that freed it), -1 ENOMEM.
 */
static int
topo_follow_fits(const struct topo_output *t, const struct topo_inc *c,
    const struct topo_list *xl)
{
	uint64_t *v = NULL, *ids, *inner, *vni;
	size_t nd = 0, n = xl != NULL ? xl->n : 0;
	int rc = 0;

	if (c->n_new == 0)
		return 0;
	if ((v = calloc(3 * n + 1, sizeof(*v))) == NULL)
		return -1;
	ids = v;
	inner = v + n;
	vni = v + 2 * n;
	for (uint32_t i = 0; i < n; i++) {
		const struct topo_tun *tt = &t->tun[xl->v[i]];

		if (tt->mark == t->gen)
			continue;
		ids[nd] = tt->t.id;
		inner[nd] = tt->t.inner;
		vni[nd++] = tt->t.vni;
	}
	qsort(ids, nd, sizeof(*ids), topo_u64_cmp);
	qsort(inner, nd, sizeof(*inner), topo_u64_cmp);
	qsort(vni, nd, sizeof(*vni), topo_u64_cmp);
	for (size_t i = 0; i < c->n_new && rc == 0; i++) {
		const struct model_tunnel *st = c->nv[i].st;
		int64_t slot = topo_slot_of(t, st->inner);

		bool id_held = st->id == 0 || (topo_htab_find(&t->id_map,
		    topo_hash_id(st->id), topo_eq_tun_id, t->tun, &st->id) !=
		    TOPO_NONE && !topo_id_in(ids, nd, st->id));
		bool inner_held = slot < 0 ||
		    (topo_bm_test(&t->pool, (uint64_t)slot) &&
		    !topo_id_in(inner, nd, st->inner));
		bool vni_held = topo_vxlan(t) && (st->vni < t->policy.vni_min ||
		    st->vni > t->policy.vni_max ||
		    (topo_bm_test(&t->vni, st->vni - t->policy.vni_min) &&
		    !topo_id_in(vni, nd, st->vni)));

		if (id_held || inner_held || vni_held)
			rc = 1;
	}
	free(v);
	return rc;
}

static int
topo_site_apply(struct topo_output *t, const struct topo_input *in,
    uint64_t site_id, const struct topo_follow *f, struct topo_change *chg,
    struct model_error *err)
{
	struct model_site xcopy;
	struct topo_inc c;
	struct topo_change ch;
	const struct model_site *nx = NULL;
	uint32_t xslot, n_removed = 0;
	struct topo_list *xl = NULL;
	struct topo_list newl;

	if (t == NULL || in == NULL || (in->n_sites > 0 && in->sites == NULL) ||
	    site_id == 0)
		return model_error_set(err, MODEL_E_INVALID, "",
		    "incomplete compiler input");
	for (size_t i = 0; i < in->n_sites; i++) {
		if (in->sites[i].id == site_id && !in->sites[i].revoked) {
			nx = &in->sites[i];
			break;
		}
	}
	memset(&xcopy, 0, sizeof(xcopy));
	if (nx != NULL && topo_copy_site(&xcopy, nx, err) == -1)
		return -1;
	memset(&c, 0, sizeof(c));
	c.x = &xcopy;
	c.xid = site_id;
	c.f = f;
	t->stamp = topo_next_stamp();
	if (++t->gen == 0) {
		for (uint32_t s = 0; s < t->n_tun; s++)
			t->tun[s].mark = 0;
		t->gen = 1;
	}
	xslot = topo_htab_find(&t->site_map, topo_hash_id(site_id),
	    topo_eq_site_id, t->sites, &site_id);
	if (xslot != TOPO_NONE)
		xl = &t->sites[xslot].tl;
	if (nx != NULL && topo_inc_plan(t, &c, xslot) == -1)
		goto oom;
	if (xl != NULL)
		n_removed = xl->n - c.n_kept;
	if (f != NULL) {
		int fits;

		if (c.n_missing > 0) {
			free(c.nv);
			return model_error_set(err, MODEL_E_NOT_FOUND, "tunnels",
			    "%zu tunnel(s) of site %llu not allocated yet",
			    c.n_missing, (unsigned long long)site_id);
		}
		if ((fits = topo_follow_fits(t, &c, xl)) == -1)
			goto oom;
		if (fits == 1) {
			free(c.nv);
			return model_error_set(err, MODEL_E_CONFLICT, "tunnels",
			    "a stored tunnel of site %llu clashes with one "
			    "compiled here", (unsigned long long)site_id);
		}
		/* In id order: each list then grows at its end. */
		if (c.n_new > 1)
			qsort(c.nv, c.n_new, sizeof(*c.nv), topo_new_cmp);
	} else if (c.n_new > topo_bm_free(&t->pool) + n_removed) {
		free(c.nv);
		return model_error_set(err, MODEL_E_EXHAUSTED, "pool",
		    "tunnel address pool exhausted (%llu /31s)",
		    (unsigned long long)t->pool.nbits);
	}
	if (f == NULL && topo_vxlan(t) &&
	    c.n_new > topo_bm_free(&t->vni) + n_removed) {
		free(c.nv);
		return model_error_set(err, MODEL_E_EXHAUSTED, "vni",
		    "VNI range exhausted (%llu VNIs)",
		    (unsigned long long)t->vni.nbits);
	}
	/* A site new to t gets its tunnel list here, before any change. */
	memset(&newl, 0, sizeof(newl));
	if (nx != NULL && xl == NULL &&
	    topo_list_reserve(&newl, (uint32_t)c.n_new) == -1)
		goto oom;
	if (topo_inc_reserve(t, &c, xslot, n_removed, nx != NULL) == -1 ||
	    topo_change_alloc(&ch, (xl != NULL ? xl->n : 0) + c.n_new + 1,
	    n_removed, c.n_new, 1) == -1) {
		free(newl.v);
		goto oom;
	}

	/* From here on nothing can fail. */
	if (xl != NULL) {
		uint32_t o = 0;

		for (uint32_t i = 0; i < xl->n; i++) {
			uint32_t s = xl->v[i];
			struct topo_tun *tt = &t->tun[s];

			if (tt->mark == t->gen) {
				uint32_t peer = tt->sa == xslot ? tt->sb : tt->sa;

				ch.edges[ch.n_edges++] = t->sites[peer].s.id;
				xl->v[o++] = s;
				continue;
			}
			topo_inc_drop(t, s, xslot, &ch);
		}
		xl->n = o;
	}
	if (nx == NULL) {
		if (xslot != TOPO_NONE) {
			topo_htab_remove(&t->site_map, topo_hash_id(site_id),
			    xslot);
			topo_order_remove(t, xslot);
			free(t->sites[xslot].tl.v);
			memset(&t->sites[xslot], 0, sizeof(t->sites[xslot]));
			t->free_sites[t->n_free_sites++] = xslot;
			ch.removed_sites[ch.n_removed_sites++] = site_id;
		}
	} else {
		if (xslot == TOPO_NONE) {
			xslot = t->n_free_sites > 0 ?
			    t->free_sites[--t->n_free_sites] : t->n_sites++;
			memset(&t->sites[xslot], 0, sizeof(t->sites[xslot]));
			t->sites[xslot].s = xcopy;
			t->sites[xslot].live = true;
			topo_htab_insert(&t->site_map, topo_hash_id(site_id),
			    xslot);
			topo_order_insert(t, xslot);
		} else {
			t->sites[xslot].s = xcopy;
		}
		if (xl == NULL)
			t->sites[xslot].tl = newl;
		xl = &t->sites[xslot].tl;
		/* Links may have moved within the site: refresh indices. */
		for (uint32_t i = 0; i < xl->n; i++) {
			struct topo_tun *tt = &t->tun[xl->v[i]];

			if (tt->sa == xslot)
				tt->la = (uint8_t)model_site_find_link(&xcopy,
				    tt->t.link_a);
			else
				tt->lb = (uint8_t)model_site_find_link(&xcopy,
				    tt->t.link_b);
		}
		ch.edges[ch.n_edges++] = site_id;
	}
	for (size_t i = 0; i < c.n_new; i++) {
		const struct topo_new *nw = &c.nv[i];
		bool x_is_a = site_id < t->sites[nw->peer].s.id;
		uint32_t s = t->n_free_tun > 0 ? t->free_tun[--t->n_free_tun] :
		    t->n_tun++;
		struct topo_tun *tt = &t->tun[s];
		struct topo_key k;

		if (x_is_a)
			topo_fill_tunnel(tt, t, xslot, nw->lx, nw->peer, nw->ly);
		else
			topo_fill_tunnel(tt, t, nw->peer, nw->ly, xslot, nw->lx);
		if (nw->st != NULL) {
			/* Following: the stored allocation (topo_follow_fits
			 * checked that it is free now). */
			uint64_t slot = (uint64_t)topo_slot_of(t, nw->st->inner);

			tt->t.id = nw->st->id;
			tt->t.inner = nw->st->inner;
			tt->t.vni = topo_vxlan(t) ? nw->st->vni : 0;
			if (!topo_bm_test(&t->pool, slot))
				topo_bm_set(&t->pool, slot);
			if (topo_vxlan(t) && !topo_bm_test(&t->vni,
			    tt->t.vni - t->policy.vni_min))
				topo_bm_set(&t->vni,
				    tt->t.vni - t->policy.vni_min);
			if (t->next_id <= tt->t.id)
				t->next_id = tt->t.id + 1;
		} else {
			tt->t.id = t->next_id++;
			(void)topo_alloc_inner(t, &tt->t, NULL);
			(void)topo_alloc_vni(t, &tt->t, NULL);
		}
		k = topo_key_of(&tt->t);
		topo_htab_insert(&t->key_map, topo_hash_key(&k), s);
		topo_htab_insert(&t->id_map, topo_hash_id(tt->t.id), s);
		topo_list_insert(t, xl, s);
		topo_list_insert(t, &t->sites[nw->peer].tl, s);
		t->n_live_tun++;
		ch.added[ch.n_added++] = tt->t;
		ch.edges[ch.n_edges++] = t->sites[nw->peer].s.id;
	}
	free(c.nv);
	util_sort_unique_u64(ch.edges, &ch.n_edges);
	util_sort_unique_u64(ch.removed, &ch.n_removed);
	if (chg != NULL)
		*chg = ch;
	else
		topo_change_free(&ch);
	return 0;
oom:
	free(c.nv);
	return model_error_set(err, MODEL_E_INTERNAL, "", "out of memory");
}

int
topo_site_changed(struct topo_output *t, const struct topo_input *in,
    uint64_t site_id, struct topo_change *chg, struct model_error *err)
{
	return topo_site_apply(t, in, site_id, NULL, chg, err);
}

int
topo_site_follow(struct topo_output *t, const struct topo_input *in,
    uint64_t site_id, const struct model_tunnel *stored, size_t n_stored,
    const uint64_t *pending, size_t n_pending, struct topo_change *chg,
    struct model_error *err)
{
	struct topo_follow f = { stored, n_stored, pending, n_pending };

	return topo_site_apply(t, in, site_id, &f, chg, err);
}

size_t
topo_follow_missing(const struct topo_input *in, uint64_t site_id,
    const struct model_tunnel *stored, size_t n_stored)
{
	const struct model_site *x = NULL;
	size_t missing = 0;

	for (size_t i = 0; i < in->n_sites; i++)
		if (in->sites[i].id == site_id && !in->sites[i].revoked)
			x = &in->sites[i];
	if (x == NULL)
		return 0;
	for (size_t i = 0; i < in->n_sites; i++) {
		const struct model_site *y = &in->sites[i];
		const struct model_site *a = x->id < y->id ? x : y;
		const struct model_site *b = x->id < y->id ? y : x;

		if (y == x || y->revoked || y->id == x->id ||
		    !topo_pair_wanted(in->policy, a, b))
			continue;
		for (size_t la = 0; la < a->n_links; la++)
			for (size_t lb = 0; lb < b->n_links; lb++) {
				struct topo_key k = { a->id, b->id,
				    a->links[la].name, b->links[lb].name };

				if (model_links_pair_allowed(in->policy,
				    &a->links[la], &b->links[lb]) &&
				    topo_stored_find(stored, n_stored,
				    &k) == NULL)
					missing++;
			}
	}
	return missing;
}

/* ---- reading the result --------------------------------------------------- */

void
topo_free(struct topo_output *t)
{
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->n_sites && t->sites != NULL; i++)
		free(t->sites[i].tl.v);
	free(t->sites);
	free(t->free_sites);
	free(t->order);
	free(t->site_map.e);
	free(t->tun);
	free(t->free_tun);
	free(t->key_map.e);
	free(t->id_map.e);
	free(t->pool.w);
	free(t->vni.w);
	free(t);
}

void
topo_change_free(struct topo_change *chg)
{
	if (chg == NULL)
		return;
	free(chg->edges);
	free(chg->removed);
	free(chg->added);
	free(chg->removed_sites);
	memset(chg, 0, sizeof(*chg));
}

uint64_t
topo_next_id(const struct topo_output *t)
{
	return t->next_id;
}

size_t
topo_tunnel_count(const struct topo_output *t)
{
	return t->n_live_tun;
}

static int
topo_tunnel_cmp(const void *a, const void *b)
{
	const struct model_tunnel *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

int
topo_tunnel_list(const struct topo_output *t, struct model_tunnel **out,
    size_t *n)
{
	struct model_tunnel *v;
	size_t k = 0;

	v = malloc((t->n_live_tun != 0 ? t->n_live_tun : 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	for (uint32_t s = 0; s < t->n_tun; s++)
		if (t->tun[s].t.id != 0)
			v[k++] = t->tun[s].t;
	qsort(v, k, sizeof(*v), topo_tunnel_cmp);
	*out = v;
	*n = k;
	return 0;
}

const struct model_tunnel *
topo_tunnel_get(const struct topo_output *t, uint64_t id)
{
	uint32_t s = topo_htab_find(&t->id_map, topo_hash_id(id),
	    topo_eq_tun_id, t->tun, &id);

	return s == TOPO_NONE ? NULL : &t->tun[s].t;
}

size_t
topo_edge_count(const struct topo_output *t)
{
	return t->n_order;
}

const struct model_site *
topo_edge_site(const struct topo_output *t, size_t i)
{
	return i < t->n_order ? &t->sites[t->order[i]].s : NULL;
}

static uint32_t
topo_site_slot(const struct topo_output *t, uint64_t site_id)
{
	return topo_htab_find(&t->site_map, topo_hash_id(site_id),
	    topo_eq_site_id, t->sites, &site_id);
}

const struct model_site *
topo_site(const struct topo_output *t, uint64_t site_id)
{
	uint32_t s = topo_site_slot(t, site_id);

	return s == TOPO_NONE ? NULL : &t->sites[s].s;
}

size_t
topo_edge_tunnel_count(const struct topo_output *t, uint64_t site_id)
{
	uint32_t s = topo_site_slot(t, site_id);

	return s == TOPO_NONE ? 0 : t->sites[s].tl.n;
}

size_t
topo_edge_tunnels(const struct topo_output *t, uint64_t site_id,
    uint64_t *tunnel_ids, uint64_t *peer_site_ids, size_t max)
{
	uint32_t s = topo_site_slot(t, site_id);
	size_t n;

	if (s == TOPO_NONE)
		return 0;
	n = t->sites[s].tl.n < max ? t->sites[s].tl.n : max;
	for (size_t i = 0; i < n; i++) {
		const struct topo_tun *tt = &t->tun[t->sites[s].tl.v[i]];

		tunnel_ids[i] = tt->t.id;
		peer_site_ids[i] = t->sites[tt->sa == s ? tt->sb : tt->sa].s.id;
	}
	return n;
}

int
topo_edge_view(const struct topo_output *t, uint64_t site_id, size_t i,
    struct topo_view *v)
{
	uint32_t s = topo_site_slot(t, site_id);
	const struct topo_tun *tt;
	const struct model_site *me, *peer;
	const struct model_link *ml, *pl;
	bool is_a;

	if (s == TOPO_NONE || i >= t->sites[s].tl.n)
		return -1;
	tt = &t->tun[t->sites[s].tl.v[i]];
	is_a = tt->sa == s;
	me = &t->sites[s].s;
	peer = &t->sites[is_a ? tt->sb : tt->sa].s;
	ml = &me->links[is_a ? tt->la : tt->lb];
	pl = &peer->links[is_a ? tt->lb : tt->la];
	memset(v, 0, sizeof(*v));
	v->tunnel_id = tt->t.id;
	v->peer_site_id = peer->id;
	v->peer_name = peer->name;
	v->local_link = ml->name;
	v->remote_link = pl->name;
	v->local_address = ml->address;
	v->remote_address = pl->public_address[0] != '\0' ?
	    pl->public_address : pl->address;
	v->remote_port = pl->public_port;
	v->inner_local = tt->t.inner + (is_a ? 0 : 1);
	v->inner_remote = tt->t.inner + (is_a ? 1 : 0);
	model_ipv4_format(v->inner_local, v->inner_local_cidr,
	    sizeof(v->inner_local_cidr));
	memcpy(v->inner_local_cidr + strlen(v->inner_local_cidr), "/31", 4);
	model_ipv4_format(v->inner_remote, v->inner_remote_addr,
	    sizeof(v->inner_remote_addr));
	v->encap = t->policy.encap;
	v->vni = tt->t.vni;
	v->mtu = t->policy.mtu;
	v->crypto = &t->crypto;
	v->local_asn = me->asn;
	v->remote_asn = peer->asn;
	v->hold_time = t->policy.bgp_hold_time;
	v->keepalive = t->policy.bgp_keepalive;
	v->bfd = t->policy.bgp_bfd;
	v->route_server_client = t->policy.topology == MODEL_TOPO_HUB_SPOKE &&
	    topo_is_hub(me) && !topo_is_hub(peer);
	return 0;
}

int
topo_hub_carries(const struct topo_output *t, uint64_t hub_id,
    uint64_t viewer_id, uint64_t **ids, size_t *n)
{
	uint32_t h = topo_site_slot(t, hub_id), v = topo_site_slot(t, viewer_id);
	uint32_t *queue = NULL, nq = 0;
	uint8_t *seen = NULL;
	uint64_t *out = NULL;
	size_t no = 0;

	*ids = NULL;
	*n = 0;
	if (h == TOPO_NONE || !topo_is_hub(&t->sites[h].s))
		return 0;
	/* Breadth first over hubs; a site is listed the first time seen. */
	if ((seen = calloc(t->n_sites, 1)) == NULL ||
	    (queue = calloc(t->n_sites, sizeof(*queue))) == NULL ||
	    (out = calloc(t->n_sites, sizeof(*out))) == NULL)
		goto fail;
	seen[h] = 1;
	if (v != TOPO_NONE)
		seen[v] = 1;
	queue[nq++] = h;
	for (uint32_t qi = 0; qi < nq; qi++) {
		const struct topo_list *tl = &t->sites[queue[qi]].tl;

		for (uint32_t i = 0; i < tl->n; i++) {
			const struct topo_tun *tt = &t->tun[tl->v[i]];
			uint32_t o = tt->sa == queue[qi] ? tt->sb : tt->sa;

			if (seen[o])
				continue;
			seen[o] = 1;
			out[no++] = t->sites[o].s.id;
			if (topo_is_hub(&t->sites[o].s))
				queue[nq++] = o;
		}
	}
	free(seen);
	free(queue);
	if (no == 0) {
		free(out);
		return 0;
	}
	qsort(out, no, sizeof(*out), util_cmp_u64);
	*ids = out;
	*n = no;
	return 0;
fail:
	free(seen);
	free(queue);
	free(out);
	return -1;
}

int
topo_dump(const struct topo_output *t, FILE *f)
{
	const struct model_policy *p = &t->policy;
	struct model_tunnel *tl = NULL;
	char pool[MODEL_CIDR_MAX + 1], inner[16];
	size_t n = 0;

	model_prefix_format(&p->pool, pool, sizeof(pool));
	fprintf(f, "policy topology=%s pairing=%s pool=%s encap=%s mtu=%u "
	    "bgp=%u/%u bfd=%d\n", model_topology_str(p->topology),
	    model_pairing_str(p->pairing), pool, model_encap_str(p->encap),
	    p->mtu, p->bgp_hold_time, p->bgp_keepalive, p->bgp_bfd ? 1 : 0);
	fprintf(f, "crypto cipher=%s rekey=%u replay=%u\n",
	    model_cipher_str(t->crypto.cipher), t->crypto.rekey_seconds,
	    t->crypto.replay_window);
	if (topo_tunnel_list(t, &tl, &n) == -1)
		return -1;
	fprintf(f, "tunnels %zu next_id %llu\n", n,
	    (unsigned long long)t->next_id);
	for (size_t i = 0; i < n; i++) {
		model_ipv4_format(tl[i].inner, inner, sizeof(inner));
		fprintf(f, "tunnel %llu %llu:%s %llu:%s inner=%s/31 vni=%u\n",
		    (unsigned long long)tl[i].id,
		    (unsigned long long)tl[i].site_a, tl[i].link_a,
		    (unsigned long long)tl[i].site_b, tl[i].link_b, inner,
		    tl[i].vni);
	}
	free(tl);
	for (size_t e = 0; e < t->n_order; e++) {
		const struct model_site *s = topo_edge_site(t, e);
		size_t nt = topo_edge_tunnel_count(t, s->id);

		fprintf(f, "edge %llu name=%s role=%s region=%s asn=%u "
		    "tunnels=%zu\n", (unsigned long long)s->id, s->name,
		    model_role_str(s->role), s->region, s->asn, nt);
		for (size_t i = 0; i < nt; i++) {
			struct topo_view v;

			if (topo_edge_view(t, s->id, i, &v) == -1)
				return -1;
			fprintf(f, "  tunnel %llu %s(%s) -> %s:%s %s:%u "
			    "inner=%s peer=%s asn=%u vni=%u rs-client=%d\n",
			    (unsigned long long)v.tunnel_id, v.local_link,
			    v.local_address, v.peer_name, v.remote_link,
			    v.remote_address,
			    v.remote_port != 0 ? v.remote_port :
			    MODEL_PORT_DEFAULT, v.inner_local_cidr,
			    v.inner_remote_addr, v.remote_asn, v.vni,
			    v.route_server_client ? 1 : 0);
		}
	}
	return ferror(f) ? -1 : 0;
}
