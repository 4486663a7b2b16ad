/*
 * api_index.c — the API's per-process index of the committed model (see
 * api_index.h): a topo_need count plus two open-addressing tables (linear
 * probing, backward-shift deletion): endpoint hash -> (users, a site), and
 * site id -> its endpoint hashes (to take them out when it changes).
 */
#include "controller/api_index.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "controller/topo_need.h"

struct ix_ep {
	uint64_t key;                   /* endpoint hash; 0 = empty */
	uint64_t users;                 /* live links ending there */
	uint64_t site;                  /* one of their sites */
};

struct ix_site {
	uint64_t id;                    /* 0 = empty */
	uint64_t n;
	uint64_t keys[MODEL_LINKS_MAX];
};

struct api_index {
	struct topo_need *need;
	struct ix_ep *ep;
	uint32_t n_ep, cap_ep;          /* caps: powers of two */
	struct ix_site *site;
	uint32_t n_site, cap_site;
};

static uint32_t
ix_home(uint64_t k, uint32_t cap)
{
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return (uint32_t)k & (cap - 1);
}

/* Endpoint hash of (addr, port), or 0 for an address that is not an IP
 * (such never equal another: model_address_equal). */
static uint64_t
ix_key(const char *addr, uint16_t port)
{
	uint8_t b[1 + 16 + 2];
	size_t len;
	uint64_t h = 0xcbf29ce484222325ull;

	memset(b, 0, sizeof(b));
	if (inet_pton(AF_INET, addr, b + 1) == 1) {
		b[0] = 4;
		len = 1 + 4;
	} else if (inet_pton(AF_INET6, addr, b + 1) == 1) {
		b[0] = 6;
		len = 1 + 16;
	} else
		return 0;
	b[len] = (uint8_t)(port >> 8);
	b[len + 1] = (uint8_t)port;
	for (size_t i = 0; i < len + 2; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h != 0 ? h : 1;
}

static uint32_t
ix_ep_find(const struct api_index *x, uint64_t key)
{
	uint32_t i = ix_home(key, x->cap_ep);

	while (x->ep[i].key != 0 && x->ep[i].key != key)
		i = (i + 1) & (x->cap_ep - 1);
	return i;
}

static uint32_t
ix_site_find(const struct api_index *x, uint64_t id)
{
	uint32_t i = ix_home(id, x->cap_site);

	while (x->site[i].id != 0 && x->site[i].id != id)
		i = (i + 1) & (x->cap_site - 1);
	return i;
}

/* Both tables keep at least half their slots empty. */
static int
ix_grow(struct api_index *x)
{
	if ((x->n_ep + MODEL_LINKS_MAX) * 2 > x->cap_ep) {
		struct ix_ep *old = x->ep;
		uint32_t oc = x->cap_ep, c = oc ? oc * 2 : 256;

		while ((x->n_ep + MODEL_LINKS_MAX) * 2 > c)
			c *= 2;
		if ((x->ep = calloc(c, sizeof(*x->ep))) == NULL) {
			x->ep = old;
			return -1;
		}
		x->cap_ep = c;
		for (uint32_t i = 0; i < oc; i++)
			if (old[i].key != 0)
				x->ep[ix_ep_find(x, old[i].key)] = old[i];
		free(old);
	}
	if ((x->n_site + 1) * 2 > x->cap_site) {
		struct ix_site *old = x->site;
		uint32_t oc = x->cap_site, c = oc ? oc * 2 : 64;

		if ((x->site = calloc(c, sizeof(*x->site))) == NULL) {
			x->site = old;
			return -1;
		}
		x->cap_site = c;
		for (uint32_t i = 0; i < oc; i++)
			if (old[i].id != 0)
				x->site[ix_site_find(x, old[i].id)] = old[i];
		free(old);
	}
	return 0;
}

/* Backward-shift deletion of slot i; home(j) says where entry j belongs. */
#define IX_ERASE(tab, cap, field, i)                                        \
	do {                                                                \
		uint32_t h_, j_ = (i), m_ = (cap) - 1;                      \
		(tab)[i].field = 0;                                         \
		for (;;) {                                                  \
			j_ = (j_ + 1) & m_;                                 \
			if ((tab)[j_].field == 0)                           \
				break;                                      \
			h_ = ix_home((tab)[j_].field, (cap));               \
			if ((i) <= j_ ? (h_ <= (i) || h_ > j_) :            \
			    (h_ <= (i) && h_ > j_)) {                       \
				(tab)[i] = (tab)[j_];                       \
				(tab)[j_].field = 0;                        \
				(i) = j_;                                   \
			}                                                   \
		}                                                           \
	} while (0)

static void
ix_ep_drop(struct api_index *x, uint64_t key, uint64_t site)
{
	uint32_t i = ix_ep_find(x, key);

	if (x->ep[i].key != key)
		return;
	if (--x->ep[i].users == 0) {
		IX_ERASE(x->ep, x->cap_ep, key, i);
		x->n_ep--;
	} else if (x->ep[i].site == site)
		x->ep[i].site = 0;      /* the other users are unknown */
}

static void
ix_ep_add(struct api_index *x, uint64_t key, uint64_t site)
{
	uint32_t i = ix_ep_find(x, key);

	if (x->ep[i].key == key) {
		x->ep[i].users++;
		if (x->ep[i].site == 0)
			x->ep[i].site = site;
		return;
	}
	x->ep[i] = (struct ix_ep){ key, 1, site };
	x->n_ep++;
}

struct api_index *
api_index_new(const struct model_policy *p)
{
	struct api_index *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	if ((x->need = topo_need_new(p)) == NULL || ix_grow(x) == -1) {
		api_index_free(x);
		return NULL;
	}
	return x;
}

void
api_index_free(struct api_index *x)
{
	if (x == NULL)
		return;
	topo_need_free(x->need);
	free(x->ep);
	free(x->site);
	free(x);
}

const struct topo_need *
api_index_need(const struct api_index *x)
{
	return x->need;
}

int
api_index_set(struct api_index *x, uint64_t id, const struct model_site *s)
{
	uint32_t i;

	if (id == 0)
		return 0;
	if (ix_grow(x) == -1 || topo_need_set(x->need, id, s) == -1)
		return -1;
	i = ix_site_find(x, id);
	if (x->site[i].id == id) {
		for (uint64_t k = 0; k < x->site[i].n; k++)
			ix_ep_drop(x, x->site[i].keys[k], id);
		IX_ERASE(x->site, x->cap_site, id, i);
		x->n_site--;
	}
	if (s == NULL || s->revoked)
		return 0;
	i = ix_site_find(x, id);
	x->site[i].id = id;
	x->site[i].n = 0;
	for (size_t l = 0; l < s->n_links && l < MODEL_LINKS_MAX; l++) {
		const struct model_link *ln = &s->links[l];
		uint64_t key = ix_key(ln->public_address[0] != '\0' ?
		    ln->public_address : ln->address, ln->public_port != 0 ?
		    ln->public_port : (uint16_t)MODEL_PORT_DEFAULT);

		if (key == 0)
			continue;
		x->site[i].keys[x->site[i].n++] = key;
		ix_ep_add(x, key, id);
	}
	x->n_site++;
	return 0;
}

int
api_index_endpoint(const struct api_index *x, const char *addr,
    uint16_t port, uint64_t not_site, uint64_t *site)
{
	uint64_t key = ix_key(addr, port), mine = 0;
	uint32_t i, s;

	*site = 0;
	if (key == 0)
		return 0;
	i = ix_ep_find(x, key);
	if (x->ep[i].key != key)
		return 0;
	/* How many of the users are not_site itself. */
	s = ix_site_find(x, not_site);
	if (not_site != 0 && x->site[s].id == not_site)
		for (uint64_t k = 0; k < x->site[s].n; k++)
			mine += x->site[s].keys[k] == key;
	if (x->ep[i].users <= mine)
		return 0;
	if (x->ep[i].site != 0 && x->ep[i].site != not_site) {
		*site = x->ep[i].site;
		return 1;
	}
	return 2;
}
