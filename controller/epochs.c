/*
 * epochs.c — per-tunnel SA epoch lists behind an open-addressing table
 * (linear probing, backward-shift deletion, at most half full).
 */
#include "controller/epochs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct epochs_slot {
	uint64_t tunnel_id;
	struct model_epoch *v;      /* NULL: the slot is free */
	uint32_t n, cap;
};

struct epochs {
	struct epochs_slot *slot;
	size_t cap;                 /* a power of two */
	size_t used;                /* tunnels */
	size_t total;               /* epochs */
};

static size_t
epochs_home(const struct epochs *ep, uint64_t id)
{
	/* splitmix64's finalizer: tunnel ids are dense and sequential. */
	id ^= id >> 30;
	id *= 0xbf58476d1ce4e5b9ull;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebull;
	id ^= id >> 31;
	return (size_t)id & (ep->cap - 1);
}

static int
epochs_cmp(const struct model_epoch *a, const struct model_epoch *b)
{
	if (a->tunnel_id != b->tunnel_id)
		return a->tunnel_id < b->tunnel_id ? -1 : 1;
	if (a->sender_site != b->sender_site)
		return a->sender_site < b->sender_site ? -1 : 1;
	if (a->epoch != b->epoch)
		return a->epoch < b->epoch ? -1 : 1;
	return 0;
}

static int
epochs_qcmp(const void *a, const void *b)
{
	return epochs_cmp(a, b);
}

/* The slot of tunnel_id, or the free slot where it would go. */
static struct epochs_slot *
epochs_slot(const struct epochs *ep, uint64_t tunnel_id)
{
	size_t i = epochs_home(ep, tunnel_id);

	while (ep->slot[i].v != NULL && ep->slot[i].tunnel_id != tunnel_id)
		i = (i + 1) & (ep->cap - 1);
	return &ep->slot[i];
}

static int
epochs_rehash(struct epochs *ep, size_t cap)
{
	struct epochs_slot *old = ep->slot, *ns;
	size_t ocap = ep->cap;

	if ((ns = calloc(cap, sizeof(*ns))) == NULL)
		return -1;
	ep->slot = ns;
	ep->cap = cap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].v != NULL)
			*epochs_slot(ep, old[i].tunnel_id) = old[i];
	free(old);
	return 0;
}

struct epochs *
epochs_new(void)
{
	struct epochs *ep = calloc(1, sizeof(*ep));

	if (ep == NULL)
		return NULL;
	ep->cap = 64;
	if ((ep->slot = calloc(ep->cap, sizeof(*ep->slot))) == NULL) {
		free(ep);
		return NULL;
	}
	return ep;
}

static void
epochs_clear(struct epochs_slot *slot, size_t cap)
{
	for (size_t i = 0; i < cap; i++)
		free(slot[i].v);
	free(slot);
}

void
epochs_free(struct epochs *ep)
{
	if (ep == NULL)
		return;
	epochs_clear(ep->slot, ep->cap);
	free(ep);
}

int
epochs_load(struct epochs *ep, const struct model_epoch *v, size_t n)
{
	struct epochs tmp = { NULL, 64, 0, 0 };
	struct model_epoch *s = NULL;

	while (tmp.cap < 2 * n)
		tmp.cap *= 2;
	if ((tmp.slot = calloc(tmp.cap, sizeof(*tmp.slot))) == NULL)
		return -1;
	if (n > 0) {
		if ((s = malloc(n * sizeof(*s))) == NULL)
			goto fail;
		memcpy(s, v, n * sizeof(*s));
		qsort(s, n, sizeof(*s), epochs_qcmp);
	}
	for (size_t i = 0, j; i < n; i = j) {
		struct epochs_slot *sl;

		for (j = i + 1; j < n && s[j].tunnel_id == s[i].tunnel_id; j++)
			if (epochs_cmp(&s[j - 1], &s[j]) == 0)
				goto fail;      /* the same epoch twice */
		sl = epochs_slot(&tmp, s[i].tunnel_id);
		if ((sl->v = malloc((j - i) * sizeof(*sl->v))) == NULL)
			goto fail;
		memcpy(sl->v, &s[i], (j - i) * sizeof(*sl->v));
		sl->tunnel_id = s[i].tunnel_id;
		sl->n = sl->cap = (uint32_t)(j - i);
		tmp.used++;
	}
	free(s);
	tmp.total = n;
	epochs_clear(ep->slot, ep->cap);
	*ep = tmp;
	return 0;
fail:
	free(s);
	epochs_clear(tmp.slot, tmp.cap);
	return -1;
}

int
epochs_insert(struct epochs *ep, const struct model_epoch *e)
{
	struct epochs_slot *sl;
	uint32_t at;

	if (2 * (ep->used + 1) > ep->cap &&
	    epochs_rehash(ep, ep->cap * 2) == -1)
		return -1;
	sl = epochs_slot(ep, e->tunnel_id);
	if (sl->v == NULL) {
		if ((sl->v = malloc(4 * sizeof(*sl->v))) == NULL)
			return -1;
		sl->tunnel_id = e->tunnel_id;
		sl->n = 0;
		sl->cap = 4;
		ep->used++;
	}
	for (at = 0; at < sl->n && epochs_cmp(&sl->v[at], e) < 0; at++)
		;
	if (at < sl->n && epochs_cmp(&sl->v[at], e) == 0)
		return -1;
	if (sl->n == sl->cap) {
		size_t c = sl->cap;
		struct model_epoch *nv = util_grow(sl->v, &c, sl->n + 1,
		    sizeof(*nv), 4);

		if (nv == NULL || c > UINT32_MAX)
			return -1;
		sl->v = nv;
		sl->cap = (uint32_t)c;
	}
	memmove(&sl->v[at + 1], &sl->v[at], (sl->n - at) * sizeof(*sl->v));
	sl->v[at] = *e;
	sl->n++;
	ep->total++;
	return 0;
}

/* Free a tunnel's slot and shift later entries of its probe run back. */
static void
epochs_slot_delete(struct epochs *ep, struct epochs_slot *sl)
{
	size_t mask = ep->cap - 1, i = (size_t)(sl - ep->slot), j = i;

	ep->total -= sl->n;
	free(sl->v);
	ep->used--;
	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (ep->slot[j].v == NULL)
			break;
		k = epochs_home(ep, ep->slot[j].tunnel_id);
		/* Entry j may move to the hole at i unless its home lies
		 * cyclically in (i, j]. */
		if ((i <= j) ? (k > i && k <= j) : (k > i || k <= j))
			continue;
		ep->slot[i] = ep->slot[j];
		i = j;
	}
	memset(&ep->slot[i], 0, sizeof(ep->slot[i]));
}

int
epochs_remove(struct epochs *ep, uint64_t tunnel_id, uint64_t sender,
    uint64_t epoch)
{
	struct epochs_slot *sl = epochs_slot(ep, tunnel_id);

	for (uint32_t i = 0; sl->v != NULL && i < sl->n; i++) {
		if (sl->v[i].sender_site != sender || sl->v[i].epoch != epoch)
			continue;
		if (sl->n == 1) {
			epochs_slot_delete(ep, sl);
			return 0;
		}
		memmove(&sl->v[i], &sl->v[i + 1],
		    (sl->n - i - 1) * sizeof(*sl->v));
		sl->n--;
		ep->total--;
		return 0;
	}
	return -1;
}

void
epochs_drop_tunnel(struct epochs *ep, uint64_t tunnel_id)
{
	struct epochs_slot *sl = epochs_slot(ep, tunnel_id);

	if (sl->v != NULL)
		epochs_slot_delete(ep, sl);
}

struct model_epoch *
epochs_of(struct epochs *ep, uint64_t tunnel_id, size_t *n)
{
	struct epochs_slot *sl = epochs_slot(ep, tunnel_id);

	*n = sl->v != NULL ? sl->n : 0;
	return sl->v;
}

struct model_epoch *
epochs_find(struct epochs *ep, uint64_t tunnel_id, uint64_t sender,
    uint64_t epoch)
{
	size_t n;
	struct model_epoch *v = epochs_of(ep, tunnel_id, &n);

	for (size_t i = 0; i < n; i++)
		if (v[i].sender_site == sender && v[i].epoch == epoch)
			return &v[i];
	return NULL;
}

struct model_epoch *
epochs_next(struct epochs *ep, size_t *cursor, size_t *n)
{
	while (*cursor < ep->cap) {
		struct epochs_slot *sl = &ep->slot[(*cursor)++];

		if (sl->v != NULL) {
			*n = sl->n;
			return sl->v;
		}
	}
	*n = 0;
	return NULL;
}

size_t
epochs_count(const struct epochs *ep)
{
	return ep->total;
}
