/*
 * intent.c — from topo views to msg.h intents, and the diff of two
 * intents that the session layer turns into deltas.
 */
#include "controller/intent.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"

static enum msg_role
intent_role(enum model_role r)
{
	switch (r) {
	case MODEL_ROLE_HUB:
		return MSG_ROLE_HUB;
	case MODEL_ROLE_SPOKE:
		return MSG_ROLE_SPOKE;
	case MODEL_ROLE_EDGE:
		return MSG_ROLE_EDGE;
	}
	return MSG_ROLE_UNSPECIFIED;
}

static int
intent_prefix(const struct model_prefix *mp, struct msg_prefix *out)
{
	memset(out, 0, sizeof(*out));
	if (mp->family == 4) {
		out->addr.family = AF_INET;
		memcpy(out->addr.bytes, mp->addr, 4);
	} else if (mp->family == 6) {
		out->addr.family = AF_INET6;
		memcpy(out->addr.bytes, mp->addr, 16);
	} else {
		return -1;
	}
	out->len = mp->len;
	return 0;
}

static int
intent_site(const struct intent_params *p, const struct model_site *ms,
    struct msg_site *out, char *err, size_t errlen)
{
	const struct model_prefix *pfx = NULL;
	size_t npfx = 0;

	memset(out, 0, sizeof(*out));
	out->id = ms->id;
	snprintf(out->name, sizeof(out->name), "%s", ms->name);
	snprintf(out->region, sizeof(out->region), "%s", ms->region);
	out->asn = ms->asn;
	out->role = intent_role(ms->role);
	for (size_t i = 0; i < ms->n_links && i < MSG_LINKS_MAX; i++) {
		const struct model_link *l = &ms->links[i];
		struct msg_wan_link *w = &out->links[out->n_links];

		snprintf(w->name, sizeof(w->name), "%s", l->name);
		if (msg_addr_parse(l->address, &w->address) == -1 ||
		    (l->public_address[0] != '\0' &&
		    msg_addr_parse(l->public_address, &w->public_address) == -1)) {
			snprintf(err, errlen, "site %llu link %s: bad address",
			    (unsigned long long)ms->id, l->name);
			return -1;
		}
		w->public_port = l->public_port;
		out->n_links++;
	}
	p->lookup->prefixes(p->lookup->arg, ms->id, &pfx, &npfx);
	if (npfx > 0) {
		if ((out->lan_prefixes = calloc(npfx, sizeof(*out->lan_prefixes)))
		    == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < npfx; i++)
			if (intent_prefix(&pfx[i],
			    &out->lan_prefixes[out->n_lan_prefixes]) == 0)
				out->n_lan_prefixes++;
	}
	return 0;
}

/* One hub's carried sites (viewer none), their prefixes concatenated. */
struct memo_owner {
	uint64_t site_id;
	size_t raw;                 /* its prefixes, converted or not */
	size_t off, n;              /* its converted ones in pfx */
};

struct memo_hub {
	uint64_t hub_id;
	struct memo_owner *own;     /* by site id */
	size_t n_own;
	struct msg_prefix *pfx;
	size_t n_pfx, raw;
};

struct intent_memo {
	uint64_t stamp;             /* topo_stamp the entries come from */
	struct memo_hub *hubs;
	size_t n_hubs;
};

struct intent_memo *
intent_memo_new(void)
{
	return calloc(1, sizeof(struct intent_memo));
}

void
intent_memo_reset(struct intent_memo *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_hubs; i++) {
		free(m->hubs[i].own);
		free(m->hubs[i].pfx);
	}
	free(m->hubs);
	m->hubs = NULL;
	m->n_hubs = 0;
	m->stamp = 0;
}

void
intent_memo_free(struct intent_memo *m)
{
	intent_memo_reset(m);
	free(m);
}

/* The hub's entry, made on first use from the current topology.  NULL on
 * ENOMEM. */
static const struct memo_hub *
intent_memo_hub(const struct intent_params *p, uint64_t hub_id)
{
	const struct intent_lookup *lk = p->lookup;
	struct intent_memo *m = p->memo;
	struct memo_hub h = { .hub_id = hub_id }, *nh;
	uint64_t *ids = NULL;
	size_t nids = 0, cap = 0;

	if (m->stamp != topo_stamp(p->topo)) {
		intent_memo_reset(m);
		m->stamp = topo_stamp(p->topo);
	}
	for (size_t i = 0; i < m->n_hubs; i++)
		if (m->hubs[i].hub_id == hub_id)
			return &m->hubs[i];
	if (topo_hub_carries(p->topo, hub_id, 0, &ids, &nids) == -1 ||
	    (nids > 0 && (h.own = calloc(nids, sizeof(*h.own))) == NULL))
		goto fail;
	for (size_t i = 0; i < nids; i++) {
		const struct model_prefix *x;
		size_t nx;

		lk->prefixes(lk->arg, ids[i], &x, &nx);
		h.own[i].site_id = ids[i];
		h.own[i].raw = nx;
		h.own[i].off = h.n_pfx;
		h.raw += nx;
		for (size_t j = 0; j < nx; j++) {
			if (h.n_pfx == cap) {
				size_t nc = cap ? cap * 2 : 64;
				void *np = realloc(h.pfx, nc * sizeof(*h.pfx));

				if (np == NULL)
					goto fail;
				h.pfx = np;
				cap = nc;
			}
			if (intent_prefix(&x[j], &h.pfx[h.n_pfx]) == 0)
				h.n_pfx++;
		}
		h.own[i].n = h.n_pfx - h.own[i].off;
	}
	h.n_own = nids;
	free(ids);
	if ((nh = realloc(m->hubs, (m->n_hubs + 1) * sizeof(*nh))) == NULL)
		goto fail_h;
	m->hubs = nh;
	m->hubs[m->n_hubs] = h;
	return &m->hubs[m->n_hubs++];
fail:
	free(ids);
fail_h:
	free(h.own);
	free(h.pfx);
	return NULL;
}

/* Of the sites hub h carries, the one that is site_id, or NULL. */
static const struct memo_owner *
intent_memo_owner(const struct memo_hub *h, uint64_t site_id)
{
	size_t lo = util_lower_bound_u64(h->own, h->n_own, sizeof(*h->own),
	    offsetof(struct memo_owner, site_id), site_id);

	return lo < h->n_own && h->own[lo].site_id == site_id ?
	    &h->own[lo] : NULL;
}

static void
intent_allowed_cap(uint64_t site_id, const struct topo_view *v, size_t *total)
{
	if (*total > MSG_ALLOWED_PREFIXES_MAX) {
		log_warnx("intent: site %llu: hub %s carries %zu prefixes, "
		    "only the first %d are allowed",
		    (unsigned long long)site_id, v->peer_name, *total,
		    MSG_ALLOWED_PREFIXES_MAX);
		*total = MSG_ALLOWED_PREFIXES_MAX;
	}
}

/*
 * intent_allowed through the memo, for a viewer that is no hub: a spoke
 * never transits, so what the hub carries for it is what the hub carries
 * for nobody, less the viewer itself — the same prefixes in the same
 * order, without a walk over the hub's sites per tunnel (10,000 spokes
 * each with a tunnel to a hub of 10,000 made a recompile quadratic).
 * 1: not applicable (use the walk), 0 done, -1 ENOMEM.
 */
static int
intent_allowed_memo(const struct intent_params *p, uint64_t site_id,
    const struct topo_view *v, struct msg_peer *peer)
{
	const struct intent_lookup *lk = p->lookup;
	const struct model_site *viewer;
	const struct model_prefix *pfx;
	const struct memo_hub *h;
	const struct memo_owner *me;
	size_t npfx, total;

	if (p->memo == NULL ||
	    (viewer = topo_site(p->topo, site_id)) == NULL ||
	    viewer->role == MODEL_ROLE_HUB)
		return 1;
	if ((h = intent_memo_hub(p, v->peer_site_id)) == NULL)
		return -1;
	me = intent_memo_owner(h, site_id);
	lk->prefixes(lk->arg, v->peer_site_id, &pfx, &npfx);
	total = npfx + h->raw - (me != NULL ? me->raw : 0);
	intent_allowed_cap(site_id, v, &total);
	if (total == 0)
		return 0;
	if ((peer->allowed_prefixes = calloc(total,
	    sizeof(*peer->allowed_prefixes))) == NULL)
		return -1;
	for (size_t j = 0; j < npfx && peer->n_allowed_prefixes < total; j++)
		if (intent_prefix(&pfx[j], &peer->allowed_prefixes[
		    peer->n_allowed_prefixes]) == 0)
			peer->n_allowed_prefixes++;
	for (size_t i = 0; i < h->n_own &&
	    peer->n_allowed_prefixes < total; i++) {
		const struct memo_owner *o = &h->own[i];
		size_t k = o->n;

		if (o == me || k == 0)
			continue;
		if (k > total - peer->n_allowed_prefixes)
			k = total - peer->n_allowed_prefixes;
		memcpy(&peer->allowed_prefixes[peer->n_allowed_prefixes],
		    &h->pfx[o->off], k * sizeof(*h->pfx));
		peer->n_allowed_prefixes += k;
	}
	return 0;
}

/*
 * Peer.allowed_prefixes of the tunnel to v's peer, as site_id sees it: the
 * peer's own LAN prefixes, and for a hub those of every site it carries
 * for site_id (topo_hub_carries), in site id order; at most
 * MSG_ALLOWED_PREFIXES_MAX, the peer's own first.
 */
static int
intent_allowed(const struct intent_params *p, uint64_t site_id,
    const struct topo_view *v, struct msg_peer *peer, char *err,
    size_t errlen)
{
	const struct intent_lookup *lk = p->lookup;
	const struct model_prefix *pfx;
	uint64_t *ids = NULL;
	size_t nids = 0, total, npfx;
	int rc;

	if ((rc = intent_allowed_memo(p, site_id, v, peer)) == 0)
		return 0;
	if (rc == -1)
		goto nomem;
	lk->prefixes(lk->arg, v->peer_site_id, &pfx, &npfx);
	total = npfx;
	if (topo_hub_carries(p->topo, v->peer_site_id, site_id, &ids,
	    &nids) == -1)
		goto nomem;
	for (size_t i = 0; i < nids; i++) {
		const struct model_prefix *x;
		size_t nx;

		lk->prefixes(lk->arg, ids[i], &x, &nx);
		total += nx;
	}
	intent_allowed_cap(site_id, v, &total);
	if (total == 0) {
		free(ids);
		return 0;
	}
	if ((peer->allowed_prefixes = calloc(total,
	    sizeof(*peer->allowed_prefixes))) == NULL)
		goto nomem;
	for (size_t i = 0; i <= nids; i++) {
		if (i > 0)
			lk->prefixes(lk->arg, ids[i - 1], &pfx, &npfx);
		for (size_t j = 0; j < npfx &&
		    peer->n_allowed_prefixes < total; j++)
			if (intent_prefix(&pfx[j], &peer->allowed_prefixes[
			    peer->n_allowed_prefixes]) == 0)
				peer->n_allowed_prefixes++;
	}
	free(ids);
	return 0;
nomem:
	free(ids);
	snprintf(err, errlen, "out of memory");
	return -1;
}

int
intent_build_tunnel(const struct intent_params *p, uint64_t site_id,
    const struct topo_view *v, struct msg_tunnel *t, char *err, size_t errlen)
{
	const struct intent_lookup *lk = p->lookup;
	struct intent_spis spis;
	const struct msg_blob *cert;

	memset(t, 0, sizeof(*t));
	t->id = v->tunnel_id;
	snprintf(t->local_link, sizeof(t->local_link), "%s", v->local_link);
	snprintf(t->remote_link, sizeof(t->remote_link), "%s", v->remote_link);
	if (msg_addr_parse(v->remote_address, &t->remote_address) == -1 ||
	    msg_prefix_parse(v->inner_local_cidr, false, &t->inner_local) == -1 ||
	    msg_addr_parse(v->inner_remote_addr, &t->inner_remote) == -1) {
		snprintf(err, errlen, "tunnel %llu: bad address",
		    (unsigned long long)v->tunnel_id);
		return -1;
	}
	t->remote_port = v->remote_port;
	t->encap = v->encap == MODEL_ENCAP_VXLAN ? MSG_ENCAP_VXLAN :
	    MSG_ENCAP_GRE;
	t->vni = v->encap == MODEL_ENCAP_VXLAN ? v->vni : 0;
	t->mtu = v->mtu;
	t->crypto.cipher = v->crypto->cipher == MODEL_CIPHER_AES_GCM_128 ?
	    MSG_CIPHER_AES_GCM_128 : MSG_CIPHER_AES_GCM_256;
	t->crypto.esn = true;
	t->crypto.replay_window = v->crypto->replay_window;
	t->crypto.rekey_seconds = v->crypto->rekey_seconds;
	t->crypto.rekey_bytes = v->crypto->rekey_bytes;
	t->crypto.rekey_packets = v->crypto->rekey_packets;
	t->peer.site_id = v->peer_site_id;
	snprintf(t->peer.name, sizeof(t->peer.name), "%s", v->peer_name);
	cert = lk->cert(lk->arg, v->peer_site_id);
	if (cert != NULL)
		msg_blob_share(&t->peer.certificate_der, cert);
	if (lk->keys != NULL) {
		const struct msg_peer_key *k = NULL;
		size_t nk = 0;

		lk->keys(lk->arg, v->peer_site_id, &k, &nk);
		if (nk > MSG_PEER_KEYS_MAX)
			nk = MSG_PEER_KEYS_MAX;
		if (nk > 0)
			memcpy(t->peer.keys, k, nk * sizeof(*k));
		t->peer.n_keys = nk;
	}
	if (intent_allowed(p, site_id, v, &t->peer, err, errlen) == -1) {
		msg_tunnel_free(t);
		return -1;
	}
	t->bgp.address = t->inner_remote;
	if (p->pool6.family == 6) {
		uint8_t a6[16];

		if (model_inner6(&p->pool4, &p->pool6, v->inner_local,
		    a6) == -1) {
			snprintf(err, errlen, "tunnel %llu: no IPv6 address "
			    "for it in the pool", (unsigned long long)v->tunnel_id);
			msg_tunnel_free(t);
			return -1;
		}
		t->inner_local6.addr.family = AF_INET6;
		memcpy(t->inner_local6.addr.bytes, a6, 16);
		t->inner_local6.len = 127;
		t->inner_remote6 = t->inner_local6.addr;
		t->inner_remote6.bytes[15] ^= 1;
		t->bgp.address6 = t->inner_remote6;
	}
	t->bgp.remote_asn = v->remote_asn;
	t->bgp.hold_time = v->hold_time;
	t->bgp.keepalive = v->keepalive;
	t->bgp.bfd = v->bfd;
	t->bgp.route_server_client = v->route_server_client;
	memset(&spis, 0, sizeof(spis));
	lk->spis(lk->arg, v->tunnel_id, site_id, &spis);
	t->sa_in = spis.in;
	t->sa_out = spis.out;
	return 0;
}

int
intent_build(const struct intent_params *p, uint64_t site_id,
    uint64_t version, struct msg_intent *out, char *err, size_t errlen)
{
	const struct model_site *ms = topo_site(p->topo, site_id);
	size_t n = topo_edge_tunnel_count(p->topo, site_id);

	memset(out, 0, sizeof(*out));
	if (ms == NULL) {
		snprintf(err, errlen, "site %llu has no intent",
		    (unsigned long long)site_id);
		return -1;
	}
	out->version = version;
	out->keepalive_seconds = p->keepalive_s;
	out->headless_grace_seconds = p->headless_grace_s;
	if (intent_site(p, ms, &out->site, err, errlen) == -1)
		goto fail;
	if (msg_blob_set(&out->ca_chain_der, p->ca_der, p->ca_der_len) == -1)
		goto nomem;
	if (n > 0 && (out->tunnels = calloc(util_size_class(n),
	    sizeof(*out->tunnels))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct topo_view v;

		if (topo_edge_view(p->topo, site_id, i, &v) == -1)
			break;
		if (intent_build_tunnel(p, site_id, &v,
		    &out->tunnels[out->n_tunnels], err, errlen) == -1)
			goto fail;
		out->n_tunnels++;
	}
	/* Not validated here: hashing and encoding validate anyway, and
	 * validation is the dominant cost of a large recompile. */
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	msg_intent_free(out);
	return -1;
}

/*
 * Both intents come from intent_build, which emits tunnels in id order
 * (the compiler's per-edge order); a merge walk finds the differences.
 */
static bool
intent_sorted(const struct msg_intent *m)
{
	for (size_t i = 1; i < m->n_tunnels; i++)
		if (m->tunnels[i - 1].id >= m->tunnels[i].id)
			return false;
	return true;
}

int
intent_diff(const struct msg_intent *old_i, const struct msg_intent *new_i,
    struct intent_change **changes, size_t *n, bool *site_changed)
{
	const struct msg_tunnel *a = old_i->tunnels, *b = new_i->tunnels;
	struct intent_change *c;
	size_t i = 0, j = 0, k = 0;

	*changes = NULL;
	*n = 0;
	*site_changed = !msg_site_equal(&old_i->site, &new_i->site);
	if (!intent_sorted(old_i) || !intent_sorted(new_i))
		return -1;
	if (old_i->n_tunnels + new_i->n_tunnels == 0)
		return 0;
	if ((c = calloc(old_i->n_tunnels + new_i->n_tunnels,
	    sizeof(*c))) == NULL)
		return -1;
	while (i < old_i->n_tunnels || j < new_i->n_tunnels) {
		if (j == new_i->n_tunnels ||
		    (i < old_i->n_tunnels && a[i].id < b[j].id)) {
			c[k++] = (struct intent_change){ a[i++].id,
			    INTENT_OP_REMOVE };
		} else if (i == old_i->n_tunnels || b[j].id < a[i].id) {
			c[k++] = (struct intent_change){ b[j++].id,
			    INTENT_OP_ADD };
		} else {
			if (!msg_tunnel_equal(&a[i], &b[j]))
				c[k++] = (struct intent_change){ b[j].id,
				    INTENT_OP_CHANGE };
			i++;
			j++;
		}
	}
	if (k == 0) {
		free(c);
		return 0;
	}
	*changes = c;
	*n = k;
	return 0;
}
