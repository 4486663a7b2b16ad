/*
 * topo_need.c — the tunnel count of a model, per site class (see
 * topo_need.h).  A class is represented by one model_site holding only
 * what topo_pair_count reads (role, region, link names and address
 * families), so the count of
 * one pair of classes is exactly what the compiler allocates for one pair
 * of their sites.  Sites map to classes through an open-addressing table
 * (linear probing, backward-shift deletion).
 */
#include "controller/topo_need.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/topo.h"

#define NEED_EMPTY UINT32_MAX

struct need_class {
	struct model_site rep;          /* id 0, addresses of one family */
	uint64_t count;                 /* sites in the class */
};

struct need_slot {
	uint64_t id;                    /* 0 = empty */
	uint32_t cls;
};

struct topo_need {
	struct model_policy policy;
	struct need_class *cls;
	uint32_t n_cls, cap_cls;
	struct need_slot *tab;
	uint32_t n_tab, cap_tab;        /* cap a power of two */
	uint64_t tunnels;
};

struct topo_need *
topo_need_new(const struct model_policy *p)
{
	struct topo_need *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->policy = *p;
	return n;
}

void
topo_need_free(struct topo_need *n)
{
	if (n == NULL)
		return;
	free(n->cls);
	free(n->tab);
	free(n);
}

uint64_t
topo_need_tunnels(const struct topo_need *n)
{
	return n->tunnels;
}

static uint32_t
need_hash(uint64_t id, uint32_t cap)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (uint32_t)id & (cap - 1);
}

/* Slot holding id, or the empty slot where it would go. */
static uint32_t
need_find(const struct topo_need *n, uint64_t id)
{
	uint32_t i = need_hash(id, n->cap_tab);

	while (n->tab[i].id != 0 && n->tab[i].id != id)
		i = (i + 1) & (n->cap_tab - 1);
	return i;
}

static int
need_grow(struct topo_need *n)
{
	struct need_slot *old = n->tab;
	uint32_t oldcap = n->cap_tab, cap = oldcap ? oldcap * 2 : 64;

	if (cap == 0 || (n->tab = calloc(cap, sizeof(*n->tab))) == NULL) {
		n->tab = old;
		return -1;
	}
	n->cap_tab = cap;
	for (uint32_t i = 0; i < oldcap; i++)
		if (old[i].id != 0)
			n->tab[need_find(n, old[i].id)] = old[i];
	free(old);
	return 0;
}

static void
need_erase(struct topo_need *n, uint32_t i)
{
	uint32_t mask = n->cap_tab - 1, j = i;

	n->tab[i].id = 0;
	n->n_tab--;
	for (;;) {
		uint32_t h;

		j = (j + 1) & mask;
		if (n->tab[j].id == 0)
			return;
		h = need_hash(n->tab[j].id, n->cap_tab);
		/* Move j back into the hole unless its home lies in (i, j]. */
		if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
			n->tab[i] = n->tab[j];
			n->tab[j].id = 0;
			i = j;
		}
	}
}

/* What of s decides its tunnels, canonical so equal classes compare equal. */
static void
need_rep(const struct topo_need *n, const struct model_site *s,
    struct model_site *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->role = s->role == MODEL_ROLE_HUB ? MODEL_ROLE_HUB :
	    MODEL_ROLE_SPOKE;
	if (n->policy.topology == MODEL_TOPO_REGIONAL)
		memcpy(rep->region, s->region, sizeof(rep->region));
	rep->n_links = s->n_links <= MODEL_LINKS_MAX ? s->n_links :
	    MODEL_LINKS_MAX;
	for (size_t i = 0; i < rep->n_links; i++) {
		int f = model_link_family(&s->links[i]);

		memcpy(rep->links[i].name, s->links[i].name,
		    sizeof(rep->links[i].name));
		/* Only the family matters: one address stands for it. */
		snprintf(rep->links[i].address, sizeof(rep->links[i].address),
		    "%s", f == 4 ? "0.0.0.0" : f == 6 ? "::" : "");
	}
	model_site_sort_links(rep);
}

static bool
need_rep_equal(const struct model_site *a, const struct model_site *b)
{
	if (a->role != b->role || a->n_links != b->n_links ||
	    strcmp(a->region, b->region) != 0)
		return false;
	for (size_t i = 0; i < a->n_links; i++)
		if (strcmp(a->links[i].name, b->links[i].name) != 0 ||
		    strcmp(a->links[i].address, b->links[i].address) != 0)
			return false;
	return true;
}

/* Index of the class of rep, created empty if new; NEED_EMPTY on ENOMEM. */
static uint32_t
need_class(struct topo_need *n, const struct model_site *rep)
{
	for (uint32_t i = 0; i < n->n_cls; i++)
		if (need_rep_equal(&n->cls[i].rep, rep))
			return i;
	for (uint32_t i = 0; i < n->n_cls; i++)
		if (n->cls[i].count == 0) {
			n->cls[i].rep = *rep;
			return i;
		}
	if (n->n_cls == n->cap_cls) {
		uint32_t cap = n->cap_cls ? n->cap_cls * 2 : 8;
		struct need_class *c = realloc(n->cls, cap * sizeof(*c));

		if (c == NULL)
			return NEED_EMPTY;
		n->cls = c;
		n->cap_cls = cap;
	}
	n->cls[n->n_cls].rep = *rep;
	n->cls[n->n_cls].count = 0;
	return n->n_cls++;
}

/* Tunnels between one site of class c and every counted site. */
static uint64_t
need_with(const struct topo_need *n, uint32_t c)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < n->n_cls; i++)
		if (n->cls[i].count > 0)
			sum += n->cls[i].count * topo_pair_count(&n->policy,
			    &n->cls[c].rep, &n->cls[i].rep);
	return sum;
}

int
topo_need_set(struct topo_need *n, uint64_t id, const struct model_site *s)
{
	struct model_site rep;
	uint32_t i, c;

	if (id == 0)
		return 0;
	if (n->cap_tab == 0 && need_grow(n) == -1)
		return -1;
	i = need_find(n, id);
	if (n->tab[i].id == id) {
		c = n->tab[i].cls;
		n->cls[c].count--;
		n->tunnels -= need_with(n, c);
		need_erase(n, i);
	}
	if (s == NULL || s->revoked)
		return 0;
	need_rep(n, s, &rep);
	if ((c = need_class(n, &rep)) == NEED_EMPTY)
		return -1;
	if ((n->n_tab + 1) * 2 > n->cap_tab && need_grow(n) == -1)
		return -1;
	n->tunnels += need_with(n, c);
	n->cls[c].count++;
	i = need_find(n, id);
	n->tab[i].id = id;
	n->tab[i].cls = c;
	n->n_tab++;
	return 0;
}

int
topo_need_check(const struct topo_need *n, struct model_error *err)
{
	const struct model_policy *p = &n->policy;
	uint64_t slots = model_pool_slots(&p->pool), vnis;

	if (n->tunnels > slots)
		return model_error_set(err, MODEL_E_EXHAUSTED, "pool",
		    "%llu tunnels need more /31s than the pool has (%llu)",
		    (unsigned long long)n->tunnels, (unsigned long long)slots);
	vnis = p->vni_max >= p->vni_min ?
	    (uint64_t)p->vni_max - p->vni_min + 1 : 0;
	if (p->encap == MODEL_ENCAP_VXLAN && n->tunnels > vnis)
		return model_error_set(err, MODEL_E_EXHAUSTED, "vni",
		    "%llu tunnels need more VNIs than the range has (%llu)",
		    (unsigned long long)n->tunnels, (unsigned long long)vnis);
	return 0;
}
