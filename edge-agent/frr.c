/*
 * frr.c — FRR driver of meshwan-edge (see frr.h for the contract).
 *
 * How a change reaches FRR: the desired state is rendered into a small
 * model of FRR's configuration (lines per context, prefix-list entries),
 * FRR's `show running-config` is parsed into the same model, and the two
 * are compared as sets.  Rendered lines are written exactly as FRR 8.4
 * prints them, so a configuration FRR already holds compares equal and
 * nothing is sent: applying the same state twice runs no command.  The
 * difference becomes a vtysh script (removals, then additions, then soft
 * clears so that changed filters take effect on routes already received).
 *
 * vtysh is the only way in: it is run with posix_spawn, no shell, its output
 * bounded and its run time limited.  FRR's JSON is read with jansson, and
 * every field is checked before use: a missing daemon, garbage or a
 * partial reply is an error with a reason, never a crash.
 */
#include "edge-agent/frr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define FRR_BFD_PROFILE		"meshwan"
#define FRR_LIST_PREFIX		"MW-"
#define FRR_DESC_PREFIX		"meshwan tunnel "
#define FRR_SEGMENT_LINES	2000	/* config lines per vtysh run */
#define FRR_LINE_MAX		256
#define FRR_STDERR_MAX		4096

/* FRR's defaults, which its running-config leaves out. */
#define FRR_BFD_DEF_MS		300
#define FRR_BFD_DEF_MULT	3

static int
frr_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
frr_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *
frr_addr_str(const struct msg_addr *a, char *buf, size_t len)
{
	if (msg_addr_format(a, buf, len) == -1)
		snprintf(buf, len, "?");
	return buf;
}

static const char *
frr_prefix_str(const struct msg_prefix *p, char *buf, size_t len)
{
	if (msg_prefix_format(p, buf, len) == -1)
		snprintf(buf, len, "?");
	return buf;
}

static int
frr_prefix_cmp(const void *a, const void *b)
{
	const struct msg_prefix *x = a, *y = b;
	int c;

	if (x->addr.family != y->addr.family)
		return x->addr.family < y->addr.family ? -1 : 1;
	if ((c = memcmp(x->addr.bytes, y->addr.bytes, 16)) != 0)
		return c;
	return (int)x->len - (int)y->len;
}

/* ------------------------------------------------------------------ */
/* Desired state: ownership and validation */

void
frr_desired_free(struct frr_desired *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n_neighbors; i++)
		free(d->neighbors[i].allowed);
	free(d->neighbors);
	free(d->announce);
	free(d->carry);
	memset(d, 0, sizeof(*d));
}

static bool
frr_prefix_is_network(const struct msg_prefix *p)
{
	char buf[MSG_PREFIX_STRLEN];
	struct msg_prefix q;

	if (p->addr.family != AF_INET && p->addr.family != AF_INET6)
		return false;
	if (msg_prefix_format(p, buf, sizeof(buf)) == -1)
		return false;
	return msg_prefix_parse(buf, true, &q) == 0 &&
	    frr_prefix_cmp(p, &q) == 0;
}

/* Every entry a network, no repeats. */
static int
frr_validate_prefixes(const char *what, const struct msg_prefix *v, size_t n,
    char *err, size_t errlen)
{
	struct msg_prefix *sorted;

	if (n > FRR_PREFIXES_MAX)
		return frr_err(err, errlen, "%s: %zu prefixes, at most %d", what,
		    n, FRR_PREFIXES_MAX);
	for (size_t i = 0; i < n; i++)
		if (!frr_prefix_is_network(&v[i]))
			return frr_err(err, errlen,
			    "%s[%zu]: not a network (host bits set or no "
			    "family)", what, i);
	if (n < 2)
		return 0;
	if ((sorted = malloc(n * sizeof(*sorted))) == NULL)
		return frr_err(err, errlen, "out of memory");
	memcpy(sorted, v, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), frr_prefix_cmp);
	for (size_t i = 1; i < n; i++) {
		if (frr_prefix_cmp(&sorted[i - 1], &sorted[i]) == 0) {
			char buf[MSG_PREFIX_STRLEN];

			frr_prefix_str(&sorted[i], buf, sizeof(buf));
			free(sorted);
			return frr_err(err, errlen, "%s: %s given twice", what,
			    buf);
		}
	}
	free(sorted);
	return 0;
}

int
frr_validate(const struct frr_desired *d, char *err, size_t errlen)
{
	static const uint8_t zero[4];

	if (!msg_asn_is_private(d->asn))
		return frr_err(err, errlen, "asn: %u is not a private ASN",
		    d->asn);
	if (d->router_id.family != AF_INET ||
	    memcmp(d->router_id.bytes, zero, 4) == 0)
		return frr_err(err, errlen,
		    "router_id: must be a non-zero IPv4 address");
	if (frr_validate_prefixes("announce", d->announce, d->n_announce, err,
	    errlen) == -1 ||
	    frr_validate_prefixes("carry", d->carry, d->n_carry, err,
	    errlen) == -1)
		return -1;
	if (d->n_neighbors > FRR_NEIGHBORS_MAX)
		return frr_err(err, errlen, "neighbors: %zu, at most %d",
		    d->n_neighbors, FRR_NEIGHBORS_MAX);
	if (d->n_neighbors > 0 && d->neighbors == NULL)
		return frr_err(err, errlen, "neighbors: missing array");
	for (size_t i = 0; i < d->n_neighbors; i++) {
		const struct frr_neighbor *n = &d->neighbors[i];
		char what[48];

		if (n->address.family != AF_INET &&
		    n->address.family != AF_INET6)
			return frr_err(err, errlen,
			    "neighbors[%zu].address: not set", i);
		if (!msg_asn_is_private(n->remote_asn))
			return frr_err(err, errlen, "neighbors[%zu].remote_asn: "
			    "%u is not a private ASN", i, n->remote_asn);
		if (n->tunnel_id == 0 || n->tunnel_id > FRR_TUNNEL_ID_MAX)
			return frr_err(err, errlen, "neighbors[%zu].tunnel_id: "
			    "out of range 1..%u", i, FRR_TUNNEL_ID_MAX);
		if (n->keepalive > 21845)
			return frr_err(err, errlen, "neighbors[%zu].keepalive: "
			    "%u out of range 1..21845", i, n->keepalive);
		if (n->hold_time != 0 && (n->hold_time < 3 ||
		    n->hold_time > 65535))
			return frr_err(err, errlen, "neighbors[%zu].hold_time: "
			    "%u out of range 3..65535", i, n->hold_time);
		if (n->keepalive != 0 && n->hold_time != 0 &&
		    n->hold_time < 3 * n->keepalive)
			return frr_err(err, errlen, "neighbors[%zu].hold_time: "
			    "%u is less than 3 x keepalive %u", i, n->hold_time,
			    n->keepalive);
		if (n->connect_retry > 65535)
			return frr_err(err, errlen,
			    "neighbors[%zu].connect_retry: %u out of range "
			    "1..65535", i, n->connect_retry);
		if (n->n_allowed > 0 && n->allowed == NULL)
			return frr_err(err, errlen,
			    "neighbors[%zu].allowed: missing array", i);
		snprintf(what, sizeof(what), "neighbors[%zu].allowed", i);
		if (frr_validate_prefixes(what, n->allowed, n->n_allowed, err,
		    errlen) == -1)
			return -1;
		if (n->bfd && (d->bfd_interval_ms < 10 ||
		    d->bfd_interval_ms > 60000 || d->bfd_multiplier < 2 ||
		    d->bfd_multiplier > 255))
			return frr_err(err, errlen, "bfd: interval %u ms "
			    "(10..60000) or multiplier %u (2..255) out of range",
			    d->bfd_interval_ms, d->bfd_multiplier);
		if (n->address6.family != 0 && (n->address6.family != AF_INET6 ||
		    msg_addr_equal(&n->address6, &n->address)))
			return frr_err(err, errlen,
			    "neighbors[%zu].address6: not an IPv6 address", i);
		for (size_t j = 0; j < i; j++) {
			const struct frr_neighbor *o = &d->neighbors[j];
			char buf[MSG_ADDR_STRLEN];

			if (n->address6.family != 0 &&
			    (msg_addr_equal(&o->address, &n->address6) ||
			    msg_addr_equal(&o->address6, &n->address6)))
				return frr_err(err, errlen,
				    "neighbors[%zu].address6: %s given twice", i,
				    frr_addr_str(&n->address6, buf,
				    sizeof(buf)));
			if (msg_addr_equal(&o->address6, &n->address) ||
			    msg_addr_equal(&d->neighbors[j].address,
			    &n->address))
				return frr_err(err, errlen,
				    "neighbors[%zu].address: %s given twice", i,
				    frr_addr_str(&n->address, buf,
				    sizeof(buf)));
			if (d->neighbors[j].tunnel_id == n->tunnel_id)
				return frr_err(err, errlen,
				    "neighbors[%zu].tunnel_id: %llu given "
				    "twice", i,
				    (unsigned long long)n->tunnel_id);
		}
	}
	return 0;
}

uint32_t
frr_max_prefixes(const struct frr_neighbor *n, int family)
{
	uint32_t c = 0;

	for (size_t i = 0; i < n->n_allowed; i++)
		c += n->allowed[i].addr.family == family;
	return c + FRR_MAXPREFIX_SLACK;
}

/* ------------------------------------------------------------------ */
/* From an intent */

static int
frr_dup_prefixes(struct msg_prefix **dst, size_t *n, const struct msg_prefix *src,
    size_t count)
{
	*dst = NULL;
	*n = 0;
	if (count == 0)
		return 0;
	if ((*dst = malloc(count * sizeof(**dst))) == NULL)
		return -1;
	memcpy(*dst, src, count * sizeof(**dst));
	*n = count;
	return 0;
}

/* Sort v[0..*n) and drop repeats. */
static void
frr_sort_unique(struct msg_prefix *v, size_t *n)
{
	size_t total = *n, w = 0;

	if (total == 0)
		return;
	qsort(v, total, sizeof(*v), frr_prefix_cmp);
	for (size_t i = 0; i < total; i++) {
		if (w > 0 && frr_prefix_cmp(&v[w - 1], &v[i]) == 0)
			continue;
		v[w++] = v[i];
	}
	*n = w;
}

int
frr_desired_from_intent(const struct msg_intent *in,
    const struct frr_peer_prefixes *peers, size_t n_peers,
    struct frr_desired *out, char *err, size_t errlen)
{
	struct frr_desired d;
	uint32_t rid;
	size_t total = 0;

	memset(&d, 0, sizeof(d));
	memset(out, 0, sizeof(*out));
	if (in->n_tunnels > FRR_NEIGHBORS_MAX)
		return frr_err(err, errlen, "intent has %zu tunnels, the FRR "
		    "driver takes at most %d", in->n_tunnels,
		    FRR_NEIGHBORS_MAX);
	d.asn = in->site.asn;
	/* Site ids are unique per controller: a stable, unique router-id. */
	rid = htonl((uint32_t)in->site.id);
	d.router_id.family = AF_INET;
	memcpy(d.router_id.bytes, &rid, 4);
	d.bfd_interval_ms = FRR_DEFAULT_BFD_MS;
	d.bfd_multiplier = FRR_DEFAULT_BFD_MULT;
	if (frr_dup_prefixes(&d.announce, &d.n_announce, in->site.lan_prefixes,
	    in->site.n_lan_prefixes) == -1)
		goto nomem;
	if (in->n_tunnels > 0 &&
	    (d.neighbors = calloc(in->n_tunnels, sizeof(*d.neighbors))) == NULL)
		goto nomem;
	for (size_t i = 0; i < in->n_tunnels; i++) {
		const struct msg_tunnel *t = &in->tunnels[i];
		struct frr_neighbor *n = &d.neighbors[d.n_neighbors++];

		n->address = t->bgp.address.family ? t->bgp.address :
		    t->inner_remote;
		n->remote_asn = t->bgp.remote_asn;
		n->tunnel_id = t->id;
		n->bfd = t->bgp.bfd;
		n->route_server_client = t->bgp.route_server_client;
		n->address6 = t->bgp.address6;
		n->keepalive = t->bgp.keepalive;
		n->hold_time = t->bgp.hold_time;
		/* FRR takes both or neither; derive the missing one. */
		if (n->keepalive != 0 && n->hold_time == 0)
			n->hold_time = n->keepalive * 3 < 65535 ?
			    n->keepalive * 3 : 65535;
		if (n->hold_time != 0 && n->keepalive == 0)
			n->keepalive = n->hold_time / 3;
		n->connect_retry = FRR_DEFAULT_CONNECT_S;
		size_t j = 0;

		while (j < n_peers && peers[j].site_id != t->peer.site_id)
			j++;
		if (j < n_peers) {
			if (frr_dup_prefixes(&n->allowed, &n->n_allowed,
			    peers[j].prefixes, peers[j].n_prefixes) == -1)
				goto nomem;
		} else {
			/* The controller's list (Peer.allowed_prefixes);
			 * a duplicate means nothing more. */
			if (frr_dup_prefixes(&n->allowed, &n->n_allowed,
			    t->peer.allowed_prefixes,
			    t->peer.n_allowed_prefixes) == -1)
				goto nomem;
			frr_sort_unique(n->allowed, &n->n_allowed);
		}
		total += n->n_allowed;
	}
	if (in->site.role == MSG_ROLE_HUB && total > 0) {
		/* A hub passes on what its neighbours may send it. */
		if ((d.carry = malloc(total * sizeof(*d.carry))) == NULL)
			goto nomem;
		for (size_t i = 0; i < d.n_neighbors; i++)
			for (size_t j = 0; j < d.neighbors[i].n_allowed; j++)
				d.carry[d.n_carry++] = d.neighbors[i].allowed[j];
		frr_sort_unique(d.carry, &d.n_carry);
	}
	if (frr_validate(&d, err, errlen) == -1) {
		frr_desired_free(&d);
		return -1;
	}
	*out = d;
	return 0;
nomem:
	frr_desired_free(&d);
	return frr_err(err, errlen, "out of memory");
}

/* ------------------------------------------------------------------ */
/* A model of FRR's configuration, as far as the driver owns it */

enum frr_ctx {
	FRR_CTX_BGP = 0,	/* router bgp ASN */
	FRR_CTX_BGP_V4,		/*  address-family ipv4 unicast */
	FRR_CTX_BGP_V6,		/*  address-family ipv6 unicast */
	FRR_CTX_BFD_PROFILE,	/* bfd / profile meshwan */
	FRR_CTX_BFD,		/* bfd */
	FRR_CTX_TOP,		/* configure terminal itself */
	FRR_CTX_OTHER,		/* parsed but not ours: ignored */
};

struct frr_line {
	enum frr_ctx ctx;
	size_t order;		/* position in render/running order */
	char text[FRR_LINE_MAX];
};

struct frr_plist_entry {
	bool v6;
	uint32_t seq;
	size_t order;
	char name[FRR_NAME_MAX];
	char rest[FRR_LINE_MAX];	/* "permit 10.1.0.0/24", "deny any" */
};

struct frr_model {
	uint32_t asn;			/* 0: no router bgp */
	bool bfd_profile;		/* profile meshwan exists */
	struct frr_line *lines;
	size_t n_lines, cap_lines;
	struct frr_plist_entry *plist;
	size_t n_plist, cap_plist;
};

static void
frr_model_free(struct frr_model *m)
{
	free(m->lines);
	free(m->plist);
	memset(m, 0, sizeof(*m));
}

static int
frr_model_line(struct frr_model *m, enum frr_ctx ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
frr_model_line(struct frr_model *m, enum frr_ctx ctx, const char *fmt, ...)
{
	struct frr_line *l;
	va_list ap;
	int n;
	void *nv;

	if ((nv = util_grow(m->lines, &m->cap_lines, m->n_lines + 1,
	    sizeof(*m->lines), 64)) == NULL)
		return -1;
	m->lines = nv;
	l = &m->lines[m->n_lines];
	l->ctx = ctx;
	l->order = m->n_lines;
	va_start(ap, fmt);
	n = vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(l->text))
		return -1;
	m->n_lines++;
	return 0;
}

static int
frr_model_plist(struct frr_model *m, bool v6, const char *name, uint32_t seq,
    const char *rest)
{
	struct frr_plist_entry *e;
	void *nv;

	if ((nv = util_grow(m->plist, &m->cap_plist, m->n_plist + 1,
	    sizeof(*m->plist), 64)) == NULL)
		return -1;
	m->plist = nv;
	e = &m->plist[m->n_plist];
	memset(e, 0, sizeof(*e));
	e->v6 = v6;
	e->seq = seq;
	e->order = m->n_plist;
	if (util_strcpy(e->name, sizeof(e->name), name) == -1 ||
	    util_strcpy(e->rest, sizeof(e->rest), rest) == -1)
		return -1;
	m->n_plist++;
	return 0;
}

/* One prefix list: the given prefixes of one family, or `deny any`. */
static int
frr_render_list(struct frr_model *m, bool v6, const char *name,
    const struct msg_prefix *v, size_t n)
{
	char buf[MSG_PREFIX_STRLEN + 8];
	uint32_t seq = 5;

	if (n == 0)
		return frr_model_plist(m, v6, name, seq, "deny any");
	for (size_t i = 0; i < n; i++, seq += 5) {
		char p[MSG_PREFIX_STRLEN];

		snprintf(buf, sizeof(buf), "permit %s",
		    frr_prefix_str(&v[i], p, sizeof(p)));
		if (frr_model_plist(m, v6, name, seq, buf) == -1)
			return -1;
	}
	return 0;
}

/* Copies of the prefixes of one family from up to two arrays, sorted,
 * without repeats; malloc'd (NULL when out of memory). */
static struct msg_prefix *
frr_pick(int family, const struct msg_prefix *a, size_t na,
    const struct msg_prefix *b, size_t nb, size_t *n)
{
	struct msg_prefix *v;
	size_t k = 0;

	*n = 0;
	if ((v = malloc((na + nb + 1) * sizeof(*v))) == NULL)
		return NULL;
	for (size_t i = 0; i < na; i++)
		if (a[i].addr.family == family)
			v[k++] = a[i];
	for (size_t i = 0; i < nb; i++)
		if (b[i].addr.family == family)
			v[k++] = b[i];
	qsort(v, k, sizeof(*v), frr_prefix_cmp);
	for (size_t i = 0; i < k; i++)
		if (*n == 0 || frr_prefix_cmp(&v[*n - 1], &v[i]) != 0)
			v[(*n)++] = v[i];
	return v;
}

static bool
frr_family_used(const struct frr_desired *d, int family)
{
	for (size_t i = 0; i < d->n_announce; i++)
		if (d->announce[i].addr.family == family)
			return true;
	for (size_t i = 0; i < d->n_carry; i++)
		if (d->carry[i].addr.family == family)
			return true;
	for (size_t i = 0; i < d->n_neighbors; i++)
		for (size_t j = 0; j < d->neighbors[i].n_allowed; j++)
			if (d->neighbors[i].allowed[j].addr.family == family)
				return true;
	return false;
}

static void
frr_list_name(char *buf, size_t len, const struct frr_neighbor *n, bool v6)
{
	if (n == NULL)
		snprintf(buf, len, FRR_LIST_PREFIX "OUT-V%c", v6 ? '6' : '4');
	else
		snprintf(buf, len, FRR_LIST_PREFIX "IN-%llu-V%c",
		    (unsigned long long)n->tunnel_id, v6 ? '6' : '4');
}

/* The address-family block of one family. */
static int
frr_render_af(const struct frr_desired *d, struct frr_model *m, bool v6)
{
	enum frr_ctx ctx = v6 ? FRR_CTX_BGP_V6 : FRR_CTX_BGP_V4;
	int family = v6 ? AF_INET6 : AF_INET;
	char out[FRR_NAME_MAX];

	for (size_t i = 0; i < d->n_announce; i++) {
		char p[MSG_PREFIX_STRLEN];

		if (d->announce[i].addr.family != family)
			continue;
		if (frr_model_line(m, ctx, "network %s",
		    frr_prefix_str(&d->announce[i], p, sizeof(p))) == -1)
			return -1;
	}
	frr_list_name(out, sizeof(out), NULL, v6);
	for (size_t i = 0; i < d->n_neighbors; i++) {
		const struct frr_neighbor *n = &d->neighbors[i];
		char a[MSG_ADDR_STRLEN], in[FRR_NAME_MAX];

		frr_addr_str(v6 && n->address6.family != 0 ? &n->address6 :
		    &n->address, a, sizeof(a));
		frr_list_name(in, sizeof(in), n, v6);
		if (frr_model_line(m, ctx, "neighbor %s activate", a) == -1 ||
		    (n->route_server_client &&
		    frr_model_line(m, ctx, "neighbor %s route-server-client",
		    a) == -1) ||
		    frr_model_line(m, ctx,
		    "neighbor %s soft-reconfiguration inbound", a) == -1 ||
		    frr_model_line(m, ctx, "neighbor %s maximum-prefix %u force",
		    a, frr_max_prefixes(n, family)) == -1 ||
		    frr_model_line(m, ctx, "neighbor %s prefix-list %s in", a,
		    in) == -1 ||
		    frr_model_line(m, ctx, "neighbor %s prefix-list %s out", a,
		    out) == -1)
			return -1;
	}
	return 0;
}

/* Lists of one family: the outbound one, then each neighbour's. */
static int
frr_render_lists(const struct frr_desired *d, struct frr_model *m, bool v6)
{
	int family = v6 ? AF_INET6 : AF_INET;
	struct msg_prefix *v;
	char name[FRR_NAME_MAX];
	size_t n;
	int rc;

	if ((v = frr_pick(family, d->announce, d->n_announce, d->carry,
	    d->n_carry, &n)) == NULL)
		return -1;
	frr_list_name(name, sizeof(name), NULL, v6);
	rc = frr_render_list(m, v6, name, v, n);
	free(v);
	for (size_t i = 0; rc == 0 && i < d->n_neighbors; i++) {
		const struct frr_neighbor *nb = &d->neighbors[i];

		if ((v = frr_pick(family, nb->allowed, nb->n_allowed, NULL, 0,
		    &n)) == NULL)
			return -1;
		frr_list_name(name, sizeof(name), nb, v6);
		rc = frr_render_list(m, v6, name, v, n);
		free(v);
	}
	return rc;
}

static int
frr_model_from_desired(const struct frr_desired *d, struct frr_model *m)
{
	bool v6 = frr_family_used(d, AF_INET6), any_bfd = false;
	char rid[MSG_ADDR_STRLEN];

	memset(m, 0, sizeof(*m));
	m->asn = d->asn;
	if (frr_render_lists(d, m, false) == -1 ||
	    (v6 && frr_render_lists(d, m, true) == -1))
		goto fail;
	if (frr_model_line(m, FRR_CTX_BGP, "bgp router-id %s",
	    frr_addr_str(&d->router_id, rid, sizeof(rid))) == -1 ||
	    frr_model_line(m, FRR_CTX_BGP, "bgp log-neighbor-changes") == -1 ||
	    frr_model_line(m, FRR_CTX_BGP, "no bgp default ipv4-unicast") == -1)
		goto fail;
	for (size_t k = 0; k < 2 * d->n_neighbors; k++) {
		const struct frr_neighbor *n = &d->neighbors[k / 2];
		const struct msg_addr *na = k % 2 ? &n->address6 : &n->address;
		char a[MSG_ADDR_STRLEN];

		/* Each neighbour's session, then its IPv6 one if any. */
		if (na->family == 0)
			continue;
		frr_addr_str(na, a, sizeof(a));
		if (frr_model_line(m, FRR_CTX_BGP, "neighbor %s remote-as %u", a,
		    n->remote_asn) == -1 ||
		    frr_model_line(m, FRR_CTX_BGP, "neighbor %s description "
		    FRR_DESC_PREFIX "%llu", a,
		    (unsigned long long)n->tunnel_id) == -1)
			goto fail;
		/*
		 * BFD with ebgp-multihop 2: FRR 8.4's bgpd sends bfdd a
		 * multihop BFD session only once it knows the local
		 * address, i.e. at Established.  A single-hop one is made
		 * at once, without address and device, and re-made at
		 * Established; when it was up already, that resets BGP
		 * ("Cease/BFD Down", FRR issue #17337; README).  Before
		 * `bfd`, unlike FRR's print order, so no single-hop
		 * session is ever sent to bfdd.
		 */
		if (n->bfd) {
			any_bfd = true;
			if (frr_model_line(m, FRR_CTX_BGP,
			    "neighbor %s ebgp-multihop 2", a) == -1 ||
			    frr_model_line(m, FRR_CTX_BGP, "neighbor %s bfd",
			    a) == -1 ||
			    frr_model_line(m, FRR_CTX_BGP,
			    "neighbor %s bfd profile " FRR_BFD_PROFILE, a) == -1)
				goto fail;
		}
		if (n->keepalive != 0 && frr_model_line(m, FRR_CTX_BGP,
		    "neighbor %s timers %u %u", a, n->keepalive,
		    n->hold_time) == -1)
			goto fail;
		if (n->connect_retry != 0 && frr_model_line(m, FRR_CTX_BGP,
		    "neighbor %s timers connect %u", a, n->connect_retry) == -1)
			goto fail;
	}
	if (frr_render_af(d, m, false) == -1 ||
	    (v6 && frr_render_af(d, m, true) == -1))
		goto fail;
	if (any_bfd) {
		/* FRR leaves defaults out of its running-config; so do we. */
		m->bfd_profile = true;
		if ((d->bfd_multiplier != FRR_BFD_DEF_MULT &&
		    frr_model_line(m, FRR_CTX_BFD_PROFILE,
		    "detect-multiplier %u", d->bfd_multiplier) == -1) ||
		    (d->bfd_interval_ms != FRR_BFD_DEF_MS &&
		    (frr_model_line(m, FRR_CTX_BFD_PROFILE,
		    "transmit-interval %u", d->bfd_interval_ms) == -1 ||
		    frr_model_line(m, FRR_CTX_BFD_PROFILE,
		    "receive-interval %u", d->bfd_interval_ms) == -1)))
			goto fail;
	}
	return 0;
fail:
	frr_model_free(m);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Rendering as FRR prints it */

struct frr_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void
frr_buf_add(struct frr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
frr_buf_add(struct frr_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		void *nv = util_grow(b->p, &b->cap, b->len + (size_t)n + 1, 1,
		    4096);
		if (nv == NULL) {
			b->failed = true;
			return;
		}
		b->p = nv;
	}
}

static void
frr_buf_ctx(struct frr_buf *b, const struct frr_model *m, enum frr_ctx ctx)
{
	for (size_t i = 0; i < m->n_lines; i++)
		if (m->lines[i].ctx == ctx)
			frr_buf_add(b, "%s%s\n", ctx == FRR_CTX_BGP ? " " : "  ",
			    m->lines[i].text);
}

static bool
frr_model_has(const struct frr_model *m, enum frr_ctx ctx)
{
	for (size_t i = 0; i < m->n_lines; i++)
		if (m->lines[i].ctx == ctx)
			return true;
	return false;
}

int
frr_render(const struct frr_desired *d, char **text, char *err, size_t errlen)
{
	struct frr_model m;
	struct frr_buf b = { NULL, 0, 0, false };

	*text = NULL;
	if (frr_validate(d, err, errlen) == -1)
		return -1;
	if (frr_model_from_desired(d, &m) == -1)
		return frr_err(err, errlen, "out of memory");
	frr_buf_add(&b, "router bgp %u\n", m.asn);
	frr_buf_ctx(&b, &m, FRR_CTX_BGP);
	for (int v6 = 0; v6 < 2; v6++) {
		enum frr_ctx ctx = v6 ? FRR_CTX_BGP_V6 : FRR_CTX_BGP_V4;

		if (!frr_model_has(&m, ctx))
			continue;
		frr_buf_add(&b, " !\n address-family ipv%c unicast\n",
		    v6 ? '6' : '4');
		frr_buf_ctx(&b, &m, ctx);
		frr_buf_add(&b, " exit-address-family\n");
	}
	frr_buf_add(&b, "exit\n");
	for (int v6 = 0; v6 < 2; v6++) {
		bool first = true;

		for (size_t i = 0; i < m.n_plist; i++) {
			const struct frr_plist_entry *e = &m.plist[i];

			if (e->v6 != (v6 == 1))
				continue;
			if (first)
				frr_buf_add(&b, "!\n");
			first = false;
			frr_buf_add(&b, "%s prefix-list %s seq %u %s\n",
			    e->v6 ? "ipv6" : "ip", e->name, e->seq, e->rest);
		}
	}
	if (m.bfd_profile) {
		frr_buf_add(&b, "!\nbfd\n profile " FRR_BFD_PROFILE "\n");
		frr_buf_ctx(&b, &m, FRR_CTX_BFD_PROFILE);
		frr_buf_add(&b, " exit\n !\nexit\n");
	}
	frr_buf_add(&b, "!\n");
	frr_model_free(&m);
	if (b.failed) {
		free(b.p);
		return frr_err(err, errlen, "out of memory");
	}
	*text = b.p;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing `show running-config` */

static bool
frr_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "ip prefix-list NAME seq N REST" of one of our lists; -1 when not. */
static int
frr_parse_plist_line(struct frr_model *m, const char *t)
{
	char name[FRR_NAME_MAX];
	const char *p;
	bool v6;
	size_t nl;
	uint64_t seq;
	char num[16];
	size_t dl;

	if (frr_starts(t, "ip prefix-list "))
		v6 = false, p = t + strlen("ip prefix-list ");
	else if (frr_starts(t, "ipv6 prefix-list "))
		v6 = true, p = t + strlen("ipv6 prefix-list ");
	else
		return 1;
	nl = strcspn(p, " ");
	if (nl == 0 || nl >= sizeof(name))
		return 1;
	memcpy(name, p, nl);
	name[nl] = '\0';
	if (!frr_starts(name, FRR_LIST_PREFIX))
		return 1;	/* not ours */
	p += nl;
	if (!frr_starts(p, " seq "))
		return 1;	/* `description` and the like */
	p += strlen(" seq ");
	dl = strspn(p, "0123456789");
	if (dl == 0 || dl >= sizeof(num) || p[dl] != ' ')
		return -1;
	memcpy(num, p, dl);
	num[dl] = '\0';
	if (util_parse_u64(num, 1, UINT32_MAX, &seq) == -1)
		return -1;
	return frr_model_plist(m, v6, name, (uint32_t)seq, p + dl + 1) == -1 ?
	    -1 : 0;
}

/*
 * Parse the parts of a running-config we own into m.  Text that is cut
 * short (no final `end`) is refused: a partial read must never look like
 * a configuration with parts missing, which the diff would then "add".
 */
static int
frr_model_from_running(const char *text, bool bgp, struct frr_model *m,
    char *err, size_t errlen)
{
	enum { TOP_NONE, TOP_BGP, TOP_BFD, TOP_OTHER } top = TOP_NONE;
	enum frr_ctx sub = FRR_CTX_BGP;
	bool sub_other = false, ended = false;
	const char *p = text;
	unsigned lineno = 0;

	memset(m, 0, sizeof(*m));
	while (*p != '\0' && !ended) {
		char line[FRR_LINE_MAX];
		size_t ll = strcspn(p, "\n"), indent;
		const char *t;

		lineno++;
		if (ll >= sizeof(line)) {
			frr_model_free(m);
			return frr_err(err, errlen, "running-config line %u "
			    "longer than %d characters", lineno,
			    FRR_LINE_MAX - 1);
		}
		memcpy(line, p, ll);
		line[ll] = '\0';
		p += ll + (p[ll] == '\n');
		while (ll > 0 && (line[ll - 1] == '\r' || line[ll - 1] == ' '))
			line[--ll] = '\0';
		indent = strspn(line, " ");
		t = line + indent;
		if (*t == '\0' || *t == '!')
			continue;
		if (indent == 0) {
			sub = FRR_CTX_BGP;
			sub_other = false;
			if (strcmp(t, "end") == 0) {
				ended = true;
			} else if (strcmp(t, "exit") == 0) {
				top = TOP_NONE;
			} else if (frr_starts(t, "router bgp ")) {
				uint64_t asn;

				top = TOP_OTHER;	/* a VRF instance */
				if (strchr(t + 11, ' ') == NULL &&
				    util_parse_u64(t + 11, 1, UINT32_MAX,
				    &asn) == 0) {
					top = TOP_BGP;
					m->asn = (uint32_t)asn;
				}
			} else if (strcmp(t, "bfd") == 0) {
				top = TOP_BFD;
			} else {
				int rc = frr_parse_plist_line(m, t);

				if (rc == -1) {
					frr_model_free(m);
					return frr_err(err, errlen,
					    "running-config line %u: cannot "
					    "read prefix-list entry", lineno);
				}
				top = rc == 0 ? TOP_NONE : TOP_OTHER;
			}
			continue;
		}
		if (top == TOP_BGP) {
			if (frr_starts(t, "address-family ")) {
				sub_other = false;
				if (strcmp(t, "address-family ipv4 unicast") == 0)
					sub = FRR_CTX_BGP_V4;
				else if (strcmp(t,
				    "address-family ipv6 unicast") == 0)
					sub = FRR_CTX_BGP_V6;
				else
					sub_other = true;
			} else if (strcmp(t, "exit-address-family") == 0) {
				sub = FRR_CTX_BGP;
				sub_other = false;
			} else if (!sub_other &&
			    frr_model_line(m, sub, "%s", t) == -1) {
				goto nomem;
			}
		} else if (top == TOP_BFD) {
			if (indent == 1) {
				sub_other = true;
				if (strcmp(t, "profile " FRR_BFD_PROFILE) == 0) {
					sub_other = false;
					m->bfd_profile = true;
				}
			} else if (!sub_other && strcmp(t, "exit") != 0 &&
			    frr_model_line(m, FRR_CTX_BFD_PROFILE, "%s",
			    t) == -1) {
				goto nomem;
			}
		}
	}
	if (!ended) {
		frr_model_free(m);
		return frr_err(err, errlen, "%s running-config is incomplete "
		    "(no final `end`)", bgp ? "bgpd" : "bfdd");
	}
	return 0;
nomem:
	frr_model_free(m);
	return frr_err(err, errlen, "out of memory");
}

/* ------------------------------------------------------------------ */
/* The difference, as a vtysh script */

void
frr_script_free(struct frr_script *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_cmds; i++)
		free(s->cmds[i]);
	free(s->cmds);
	free(s->segments);
	memset(s, 0, sizeof(*s));
}

struct frr_emit {
	struct frr_script *s;
	size_t cap_cmds, cap_segs;
	enum frr_ctx cur;
	uint32_t asn;		/* of the instance being entered */
	size_t seg_lines;
	bool failed;
};

static void
frr_emit_raw(struct frr_emit *e, const char *cmd)
{
	struct frr_script *s = e->s;
	void *nv;
	char *c;

	if (e->failed)
		return;
	if ((nv = util_grow(s->cmds, &e->cap_cmds, s->n_cmds + 1,
	    sizeof(*s->cmds), 64)) == NULL) {
		e->failed = true;
		return;
	}
	s->cmds = nv;
	if ((c = strdup(cmd)) == NULL) {
		e->failed = true;
		return;
	}
	s->cmds[s->n_cmds++] = c;
}

static void
frr_emit_segment(struct frr_emit *e)
{
	struct frr_script *s = e->s;
	void *nv;

	if (e->failed)
		return;
	if ((nv = util_grow(s->segments, &e->cap_segs, s->n_segments + 1,
	    sizeof(*s->segments), 4)) == NULL) {
		e->failed = true;
		return;
	}
	s->segments = nv;
	s->segments[s->n_segments++] = s->n_cmds;
	frr_emit_raw(e, "configure terminal");
	e->cur = FRR_CTX_TOP;
	e->seg_lines = 0;
}

/* The commands that enter ctx from the top, at most two. */
static size_t
frr_ctx_path(const struct frr_emit *e, enum frr_ctx ctx, char path[2][40])
{
	switch (ctx) {
	case FRR_CTX_BGP:
	case FRR_CTX_BGP_V4:
	case FRR_CTX_BGP_V6:
		snprintf(path[0], 40, "router bgp %u", e->asn);
		if (ctx == FRR_CTX_BGP)
			return 1;
		snprintf(path[1], 40, "address-family ipv%c unicast",
		    ctx == FRR_CTX_BGP_V6 ? '6' : '4');
		return 2;
	case FRR_CTX_BFD:
		snprintf(path[0], 40, "bfd");
		return 1;
	case FRR_CTX_BFD_PROFILE:
		snprintf(path[0], 40, "bfd");
		snprintf(path[1], 40, "profile " FRR_BFD_PROFILE);
		return 2;
	default:
		return 0;
	}
}

static void
frr_emit_ctx(struct frr_emit *e, enum frr_ctx ctx)
{
	char from[2][40], to[2][40];
	size_t nf, nt, common = 0;

	if (e->cur == ctx)
		return;
	nf = frr_ctx_path(e, e->cur, from);
	nt = frr_ctx_path(e, ctx, to);
	while (common < nf && common < nt &&
	    strcmp(from[common], to[common]) == 0)
		common++;
	for (size_t i = nf; i > common; i--)
		frr_emit_raw(e, i == 2 && (e->cur == FRR_CTX_BGP_V4 ||
		    e->cur == FRR_CTX_BGP_V6) ? "exit-address-family" : "exit");
	for (size_t i = common; i < nt; i++)
		frr_emit_raw(e, to[i]);
	e->cur = ctx;
}

/* One configuration line (counted as a change) in its context. */
static void
frr_emit_line(struct frr_emit *e, enum frr_ctx ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
frr_emit_line(struct frr_emit *e, enum frr_ctx ctx, const char *fmt, ...)
{
	char cmd[FRR_LINE_MAX + 8];
	va_list ap;
	int n;

	if (e->s->n_segments == 0 || e->seg_lines >= FRR_SEGMENT_LINES) {
		if (e->s->n_segments > 0)
			frr_emit_raw(e, "end");
		frr_emit_segment(e);
	}
	frr_emit_ctx(e, ctx);
	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd)) {
		e->failed = true;
		return;
	}
	frr_emit_raw(e, cmd);
	e->seg_lines++;
	e->s->n_changes++;
}

static int
frr_line_cmp(const void *a, const void *b)
{
	const struct frr_line *x = *(const struct frr_line *const *)a;
	const struct frr_line *y = *(const struct frr_line *const *)b;

	if (x->ctx != y->ctx)
		return x->ctx < y->ctx ? -1 : 1;
	return strcmp(x->text, y->text);
}

static int
frr_plist_cmp(const void *a, const void *b)
{
	const struct frr_plist_entry *x =
	    *(const struct frr_plist_entry *const *)a;
	const struct frr_plist_entry *y =
	    *(const struct frr_plist_entry *const *)b;
	int c;

	if (x->v6 != y->v6)
		return x->v6 ? 1 : -1;
	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return strcmp(x->rest, y->rest);
}

/* Sorted pointer index over an array, for set lookups. */
static void *
frr_index(void *base, size_t n, size_t elem,
    int (*cmp)(const void *, const void *))
{
	void **v = malloc((n + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (char *)base + i * elem;
	qsort(v, n, sizeof(*v), cmp);
	return v;
}

static bool
frr_in(void *index, size_t n, const void *key,
    int (*cmp)(const void *, const void *))
{
	return bsearch(&key, index, n, sizeof(void *), cmp) != NULL;
}

/* "neighbor A remote-as N" -> A and N (0 for remote-as internal/external). */
static bool
frr_remote_as_line(const char *t, char *addr, size_t addrlen, uint32_t *asn)
{
	const char *sp, *ra;
	uint64_t v;

	if (!frr_starts(t, "neighbor "))
		return false;
	t += strlen("neighbor ");
	sp = strchr(t, ' ');
	if (sp == NULL || (size_t)(sp - t) >= addrlen ||
	    !frr_starts(sp, " remote-as "))
		return false;
	memcpy(addr, t, (size_t)(sp - t));
	addr[sp - t] = '\0';
	ra = sp + strlen(" remote-as ");
	*asn = util_parse_u64(ra, 1, UINT32_MAX, &v) == 0 ? (uint32_t)v : 0;
	return true;
}

static bool
frr_line_of(const char *t, const char *addr)
{
	size_t n = strlen(addr);

	return frr_starts(t, "neighbor ") && strncmp(t + 9, addr, n) == 0 &&
	    t[9 + n] == ' ';
}

/* The command that removes running line t. */
static void
frr_emit_removal(struct frr_emit *e, enum frr_ctx ctx, const char *t)
{
	if (frr_starts(t, "no "))
		frr_emit_line(e, ctx, "%s", t + 3);
	else
		frr_emit_line(e, ctx, "no %s", t);
}

/*
 * A BFD profile setting we no longer want.  bfdd 8.4 has no `no` form
 * that takes the value: a setting the new state changes is simply set
 * again (among the additions), one it leaves at FRR's default is set to
 * that default, which FRR then leaves out of its running-config.
 */
static void
frr_emit_bfd_removal(struct frr_emit *e, const struct frr_model *want,
    const char *t)
{
	static const struct { const char *key; unsigned def; } defs[] = {
		{ "detect-multiplier", FRR_BFD_DEF_MULT },
		{ "transmit-interval", FRR_BFD_DEF_MS },
		{ "receive-interval", FRR_BFD_DEF_MS },
	};
	size_t kl = strcspn(t, " ");

	for (size_t i = 0; i < want->n_lines; i++)
		if (want->lines[i].ctx == FRR_CTX_BFD_PROFILE &&
		    strncmp(want->lines[i].text, t, kl) == 0 &&
		    want->lines[i].text[kl] == ' ')
			return;
	for (size_t i = 0; i < ARRAY_SIZE(defs); i++) {
		if (strlen(defs[i].key) == kl &&
		    strncmp(defs[i].key, t, kl) == 0) {
			frr_emit_line(e, FRR_CTX_BFD_PROFILE, "%s %u",
			    defs[i].key, defs[i].def);
			return;
		}
	}
	frr_emit_removal(e, FRR_CTX_BFD_PROFILE, t);
}

/*
 * FRR makes a route-server client's next hop unchanged, which it prints
 * as `neighbor A attribute-unchanged next-hop`.  Over meshwan tunnels the
 * clients reach each other only through the hub, so the hub keeps the AS
 * path transparent but stays the next hop: the implied line is taken
 * back right after it appears.
 */
static void
frr_emit_rsc_nexthop(struct frr_emit *e, const char *t)
{
	static const char sfx[] = " route-server-client";
	size_t tl = strlen(t), sl = sizeof(sfx) - 1;
	char cmd[FRR_LINE_MAX + 64];

	if (!frr_starts(t, "neighbor ") || tl <= sl ||
	    strcmp(t + tl - sl, sfx) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "no %.*s attribute-unchanged next-hop",
	    (int)(tl - sl), t);
	frr_emit_raw(e, cmd);
}

static int
frr_diff_models(const struct frr_model *want, const struct frr_model *have,
    const struct frr_model *have_bfd, struct frr_script *out)
{
	struct frr_emit e;
	struct frr_line **wi = NULL, **hi = NULL;
	struct frr_plist_entry **wp = NULL, **hp = NULL;
	bool *gone = NULL;
	bool same_instance = have->asn == want->asn;
	bool soft_in[2] = { false, false }, soft_out[2] = { false, false };
	uint32_t *next_seq = NULL;
	int rc = -1;

	memset(&e, 0, sizeof(e));
	memset(out, 0, sizeof(*out));
	e.s = out;
	e.cur = FRR_CTX_TOP;
	if ((gone = calloc(have->n_lines + 1, sizeof(*gone))) == NULL ||
	    (wi = frr_index(want->lines, want->n_lines, sizeof(*want->lines),
	    frr_line_cmp)) == NULL ||
	    (hi = frr_index(have->lines, have->n_lines, sizeof(*have->lines),
	    frr_line_cmp)) == NULL ||
	    (wp = frr_index(want->plist, want->n_plist, sizeof(*want->plist),
	    frr_plist_cmp)) == NULL ||
	    (hp = frr_index(have->plist, have->n_plist, sizeof(*have->plist),
	    frr_plist_cmp)) == NULL ||
	    (next_seq = calloc(want->n_plist + 1, sizeof(*next_seq))) == NULL)
		goto done;

	/* 1. Another instance: remove it whole. */
	if (have->asn != 0 && !same_instance) {
		e.asn = have->asn;
		frr_emit_line(&e, FRR_CTX_TOP, "no router bgp %u", have->asn);
		for (size_t i = 0; i < have->n_lines; i++)
			gone[i] = have->lines[i].ctx <= FRR_CTX_BGP_V6;
	}
	e.asn = want->asn;

	/* 2. Neighbours gone or with another ASN: remove them whole. */
	for (size_t i = 0; same_instance && i < have->n_lines; i++) {
		const struct frr_line *l = &have->lines[i];
		char addr[MSG_ADDR_STRLEN];
		uint32_t asn;

		if (l->ctx != FRR_CTX_BGP ||
		    !frr_remote_as_line(l->text, addr, sizeof(addr), &asn) ||
		    frr_in(wi, want->n_lines, l, frr_line_cmp))
			continue;
		frr_emit_line(&e, FRR_CTX_BGP, "no neighbor %s", addr);
		for (size_t j = 0; j < have->n_lines; j++)
			if (have->lines[j].ctx <= FRR_CTX_BGP_V6 &&
			    frr_line_of(have->lines[j].text, addr))
				gone[j] = true;
	}

	/* 3. Other lines FRR has and we do not want, last first. */
	for (size_t i = have->n_lines; i-- > 0;) {
		const struct frr_line *l = &have->lines[i];

		if (gone[i] || frr_in(wi, want->n_lines, l, frr_line_cmp))
			continue;
		if (l->ctx <= FRR_CTX_BGP_V6) {
			if (l->ctx != FRR_CTX_BGP && strstr(l->text,
			    " prefix-list ") != NULL)
				soft_in[l->ctx == FRR_CTX_BGP_V6] = true;
			frr_emit_removal(&e, l->ctx, l->text);
		}
	}
	if (have_bfd != NULL) {
		for (size_t i = have_bfd->n_lines; i-- > 0;) {
			const struct frr_line *l = &have_bfd->lines[i];

			if (!want->bfd_profile)
				break;
			if (l->ctx == FRR_CTX_BFD_PROFILE &&
			    !frr_in(wi, want->n_lines, l, frr_line_cmp))
				frr_emit_bfd_removal(&e, want, l->text);
		}
		if (have_bfd->bfd_profile && !want->bfd_profile)
			frr_emit_line(&e, FRR_CTX_BFD,
			    "no profile " FRR_BFD_PROFILE);
	}

	/* 4. Prefix-list entries: whole lists we no longer want, then
	 * entries.  An emptied list denies everything until refilled. */
	for (size_t i = 0; i < have->n_plist; i++) {
		const struct frr_plist_entry *h = &have->plist[i];
		bool list_wanted = false, again = false;

		if (frr_in(wp, want->n_plist, h, frr_plist_cmp))
			continue;
		for (size_t j = 0; j < want->n_plist && !list_wanted; j++)
			list_wanted = want->plist[j].v6 == h->v6 &&
			    strcmp(want->plist[j].name, h->name) == 0;
		for (size_t j = 0; j < i && !again; j++)
			again = have->plist[j].v6 == h->v6 &&
			    strcmp(have->plist[j].name, h->name) == 0;
		if (list_wanted)
			frr_emit_line(&e, FRR_CTX_TOP,
			    "no %s prefix-list %s seq %u %s",
			    h->v6 ? "ipv6" : "ip", h->name, h->seq, h->rest);
		else if (!again)	/* the whole list, once */
			frr_emit_line(&e, FRR_CTX_TOP, "no %s prefix-list %s",
			    h->v6 ? "ipv6" : "ip", h->name);
		if (strstr(h->name, "-OUT-") != NULL)
			soft_out[h->v6] = true;
		else
			soft_in[h->v6] = true;
	}
	for (size_t i = 0; i < want->n_plist; i++) {
		const struct frr_plist_entry *w = &want->plist[i];
		uint32_t seq = 0;

		if (frr_in(hp, have->n_plist, w, frr_plist_cmp))
			continue;
		/* After every entry of the list FRR keeps or we add. */
		for (size_t j = 0; j < have->n_plist; j++)
			if (have->plist[j].v6 == w->v6 &&
			    strcmp(have->plist[j].name, w->name) == 0 &&
			    frr_in(wp, want->n_plist, &have->plist[j],
			    frr_plist_cmp) && have->plist[j].seq > seq)
				seq = have->plist[j].seq;
		for (size_t j = 0; j < i; j++)
			if (want->plist[j].v6 == w->v6 &&
			    strcmp(want->plist[j].name, w->name) == 0 &&
			    next_seq[j] > seq)
				seq = next_seq[j];
		if (seq > UINT32_MAX - 5) {
			e.failed = true;
			break;
		}
		next_seq[i] = seq = seq + 5;
		frr_emit_line(&e, FRR_CTX_TOP, "%s prefix-list %s seq %u %s",
		    w->v6 ? "ipv6" : "ip", w->name, seq, w->rest);
		if (strstr(w->name, "-OUT-") != NULL)
			soft_out[w->v6] = true;
		else
			soft_in[w->v6] = true;
	}

	/* 5. The BFD profile, then the instance, in rendering order. */
	if (want->bfd_profile && (have_bfd == NULL || !have_bfd->bfd_profile)
	    && !frr_model_has(want, FRR_CTX_BFD_PROFILE))
		frr_emit_line(&e, FRR_CTX_BFD, "profile " FRR_BFD_PROFILE);
	for (size_t i = 0; i < want->n_lines; i++) {
		const struct frr_line *l = &want->lines[i];
		bool found = false;

		if (l->ctx != FRR_CTX_BFD_PROFILE)
			continue;
		for (size_t j = 0; have_bfd != NULL && j < have_bfd->n_lines &&
		    !found; j++)
			found = have_bfd->lines[j].ctx == l->ctx &&
			    strcmp(have_bfd->lines[j].text, l->text) == 0;
		if (!found)
			frr_emit_line(&e, l->ctx, "%s", l->text);
	}
	for (size_t i = 0; i < want->n_lines; i++) {
		const struct frr_line *l = &want->lines[i];
		bool have_it = false;

		if (l->ctx > FRR_CTX_BGP_V6)
			continue;
		if (same_instance) {
			/* Present and not removed with its neighbour. */
			struct frr_line **hit = bsearch(&l, hi, have->n_lines,
			    sizeof(void *), frr_line_cmp);

			have_it = hit != NULL &&
			    !gone[(size_t)(*hit - have->lines)];
		}
		if (have_it)
			continue;
		if (l->ctx != FRR_CTX_BGP && strstr(l->text, " prefix-list ")) {
			size_t tl = strlen(l->text);

			if (tl > 3 && strcmp(l->text + tl - 3, " in") == 0)
				soft_in[l->ctx == FRR_CTX_BGP_V6] = true;
			else
				soft_out[l->ctx == FRR_CTX_BGP_V6] = true;
		}
		frr_emit_line(&e, l->ctx, "%s", l->text);
		frr_emit_rsc_nexthop(&e, l->text);
	}

	/* 6. Filters changed under routes already received or sent. */
	if (same_instance && out->n_changes > 0 &&
	    (soft_in[0] || soft_in[1] || soft_out[0] || soft_out[1])) {
		frr_emit_raw(&e, "end");
		for (int v6 = 0; v6 < 2; v6++) {
			if (soft_in[v6])
				frr_emit_raw(&e, v6 ?
				    "clear bgp ipv6 unicast * soft in" :
				    "clear bgp ipv4 unicast * soft in");
			if (soft_out[v6])
				frr_emit_raw(&e, v6 ?
				    "clear bgp ipv6 unicast * soft out" :
				    "clear bgp ipv4 unicast * soft out");
		}
	}
	rc = e.failed ? -1 : 0;
done:
	free(gone);
	free(wi);
	free(hi);
	free(wp);
	free(hp);
	free(next_seq);
	if (rc == -1)
		frr_script_free(out);
	return rc;
}

int
frr_diff(const struct frr_desired *d, const char *running_bgpd,
    const char *running_bfdd, struct frr_script *out, char *err,
    size_t errlen)
{
	struct frr_model want, have, have_bfd;
	int rc;

	memset(out, 0, sizeof(*out));
	if (frr_validate(d, err, errlen) == -1)
		return -1;
	if (frr_model_from_desired(d, &want) == -1)
		return frr_err(err, errlen, "out of memory");
	if (frr_model_from_running(running_bgpd, true, &have, err,
	    errlen) == -1) {
		frr_model_free(&want);
		return -1;
	}
	memset(&have_bfd, 0, sizeof(have_bfd));
	if (running_bfdd != NULL && frr_model_from_running(running_bfdd,
	    false, &have_bfd, err, errlen) == -1) {
		frr_model_free(&want);
		frr_model_free(&have);
		return -1;
	}
	rc = frr_diff_models(&want, &have, running_bfdd ? &have_bfd : NULL,
	    out);
	frr_model_free(&want);
	frr_model_free(&have);
	frr_model_free(&have_bfd);
	if (rc == -1)
		return frr_err(err, errlen, "out of memory");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Running vtysh: posix_spawn, no shell, bounded in time and output */

static const char *
frr_vtysh_path(const struct frr_target *t)
{
	return t->vtysh[0] != '\0' ? t->vtysh : "/usr/bin/vtysh";
}

/* Printable, one line, at most len-1 bytes: FRR's words for a reason. */
static void
frr_reason(const char *a, const char *b, char *out, size_t len)
{
	size_t o = 0;
	bool space = false;

	for (int k = 0; k < 2; k++) {
		const char *s = k == 0 ? a : b;

		for (; s != NULL && *s != '\0' && o + 1 < len; s++) {
			unsigned char c = (unsigned char)*s;

			if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
				space = o > 0;
				continue;
			}
			if (space && o + 2 < len) {
				out[o++] = ' ';
				space = false;
			}
			out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
		}
		space = o > 0;
	}
	out[o] = '\0';
}

static int
frr_read_fd(int fd, char **buf, size_t *len, size_t *cap, size_t max,
    bool *over)
{
	char tmp[16384];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n == -1)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (n == 0)
		return 0;
	if (*len + (size_t)n > max) {
		*over = true;
		n = (ssize_t)(max - *len);
	}
	if (n > 0) {
		void *nv = util_grow(*buf, cap, *len + (size_t)n + 1, 1, 4096);

		if (nv == NULL)
			return -1;
		*buf = nv;
		memcpy(*buf + *len, tmp, (size_t)n);
		*len += (size_t)n;
		(*buf)[*len] = '\0';
	}
	return 1;
}

static void
frr_reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) == -1 && errno == EINTR)
		;
}

int
frr_vtysh(const struct frr_target *t, const char *daemon,
    const char *const *cmds, size_t n_cmds, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	size_t max = t->max_output ? t->max_output : FRR_OUTPUT_MAX;
	unsigned timeout = t->timeout_ms ? t->timeout_ms : FRR_TIMEOUT_MS;
	const char **argv;
	char *obuf = NULL, *ebuf = NULL;
	size_t olen = 0, ocap = 0, elen = 0, ecap = 0, ac = 0;
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, status = 0;
	bool over = false, eover = false, timed_out = false;
	uint64_t deadline = util_mono_ms() + timeout;
	struct pollfd pfd[2];
	pid_t pid;
	int rc = -1;

	*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	if (n_cmds > 100000)
		return frr_err(err, errlen, "vtysh: too many commands");
	/* Never let a name read as one of vtysh's options. */
	if (t->instance[0] == '-' || (t->vty_socket[0] != '\0' &&
	    t->vty_socket[0] != '/'))
		return frr_err(err, errlen, "vtysh: bad FRR instance or vty "
		    "socket folder");
	if ((argv = calloc(8 + 2 * n_cmds, sizeof(*argv))) == NULL)
		return frr_err(err, errlen, "out of memory");
	argv[ac++] = "vtysh";
	if (t->instance[0] != '\0') {
		argv[ac++] = "-N";
		argv[ac++] = t->instance;
	}
	if (t->vty_socket[0] != '\0') {
		argv[ac++] = "--vty_socket";
		argv[ac++] = t->vty_socket;
	}
	if (daemon != NULL) {
		argv[ac++] = "-d";
		argv[ac++] = daemon;
	}
	for (size_t i = 0; i < n_cmds; i++) {
		argv[ac++] = "-c";
		argv[ac++] = cmds[i];
	}
	argv[ac] = NULL;

	if (pipe2(opipe, O_CLOEXEC) == -1 || pipe2(epipe, O_CLOEXEC) == -1) {
		frr_err(err, errlen, "vtysh: pipe: %s", strerror(errno));
		goto done;
	}
	/*
	 * posix_spawn, not fork: glibc spawns with CLONE_VM|CLONE_VFORK, so
	 * the agent's page tables are not copied.  A fork of a process with
	 * uesp's data plane (and its buffers) stalls the data-plane threads
	 * while it runs; seen as lost datagrams at every vtysh call.
	 */
	{
		posix_spawn_file_actions_t fa;
		posix_spawnattr_t sa;
		sigset_t none, def;
		int sr;

		sigemptyset(&none);
		sigemptyset(&def);
		sigaddset(&def, SIGPIPE);
		if (posix_spawn_file_actions_init(&fa) != 0) {
			frr_err(err, errlen, "vtysh: out of memory");
			goto done;
		}
		if (posix_spawnattr_init(&sa) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			frr_err(err, errlen, "vtysh: out of memory");
			goto done;
		}
		sr = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
		    O_RDONLY, 0);
		if (sr == 0)
			sr = posix_spawn_file_actions_adddup2(&fa, opipe[1], 1);
		if (sr == 0)
			sr = posix_spawn_file_actions_adddup2(&fa, epipe[1], 2);
		if (sr == 0)
			sr = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
		if (sr == 0)
			sr = posix_spawnattr_setsigmask(&sa, &none);
		if (sr == 0)
			sr = posix_spawnattr_setsigdefault(&sa, &def);
		if (sr == 0)
			sr = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK |
			    POSIX_SPAWN_SETSIGDEF);
		if (sr == 0)
			sr = posix_spawn(&pid, frr_vtysh_path(t), &fa, &sa,
			    (char *const *)argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&sa);
		if (sr != 0) {
			frr_err(err, errlen, "cannot run %s: %s",
			    frr_vtysh_path(t), strerror(sr));
			goto done;
		}
	}
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	fcntl(opipe[0], F_SETFL, O_NONBLOCK);
	fcntl(epipe[0], F_SETFL, O_NONBLOCK);
	while (opipe[0] != -1 || epipe[0] != -1) {
		uint64_t now = util_mono_ms();
		int n, r;

		if (now >= deadline) {
			timed_out = true;
			break;
		}
		pfd[0].fd = opipe[0];
		pfd[1].fd = epipe[0];
		pfd[0].events = pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		n = poll(pfd, 2, (int)(deadline - now));
		if (n == -1 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (pfd[0].revents != 0) {
			r = frr_read_fd(opipe[0], &obuf, &olen, &ocap, max,
			    &over);
			if (r <= 0 || over) {
				close(opipe[0]);
				opipe[0] = -1;
			}
			if (r == -1 || over)
				break;
		}
		if (pfd[1].revents != 0) {
			r = frr_read_fd(epipe[0], &ebuf, &elen, &ecap,
			    FRR_STDERR_MAX, &eover);
			if (r <= 0) {
				close(epipe[0]);
				epipe[0] = -1;
			}
		}
	}
	/* Wait for the exit, still within the deadline. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w == -1 && errno != EINTR) {
			status = -1;
			break;
		}
		if (timed_out || over || util_mono_ms() >= deadline) {
			timed_out = !over;
			kill(pid, SIGKILL);
			frr_reap(pid, &status);
			break;
		}
		poll(NULL, 0, 5);
	}
	if (timed_out) {
		frr_err(err, errlen, "vtysh did not finish within %u ms "
		    "(killed)", timeout);
		goto done;
	}
	if (over) {
		frr_err(err, errlen, "vtysh printed more than %zu bytes", max);
		goto done;
	}
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char why[512];

		frr_reason(ebuf, obuf, why, sizeof(why));
		if (status != -1 && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 127)
			frr_err(err, errlen, "cannot run %s",
			    frr_vtysh_path(t));
		else if (status != -1 && WIFEXITED(status))
			frr_err(err, errlen, "vtysh exited with %d: %s",
			    WEXITSTATUS(status), why[0] ? why : "no message");
		else
			frr_err(err, errlen, "vtysh was killed: %s",
			    why[0] ? why : "no message");
		goto done;
	}
	if (obuf == NULL && (obuf = calloc(1, 1)) == NULL) {
		frr_err(err, errlen, "out of memory");
		goto done;
	}
	*out = obuf;
	obuf = NULL;
	if (outlen != NULL)
		*outlen = olen;
	rc = 0;
done:
	for (int i = 0; i < 2; i++) {
		if (opipe[i] != -1)
			close(opipe[i]);
		if (epipe[i] != -1)
			close(epipe[i]);
	}
	free(obuf);
	free(ebuf);
	free(argv);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Applying */

static bool
frr_wants_bfd(const struct frr_desired *d)
{
	for (size_t i = 0; i < d->n_neighbors; i++)
		if (d->neighbors[i].bfd)
			return true;
	return false;
}

/*
 * What a daemon prints first in its `show running-config` (lib/command.c:
 * "frr version X"); vtysh prints its own header lines around it.  Asked
 * for a daemon that is not running, vtysh 8.4 prints only its own lines
 * and still exits 0, so a section without this line means "not there".
 */
#define FRR_CONFIG_MARK "\nfrr version "
#define FRR_CONFIG_HEAD "Building configuration..."

/*
 * The running configuration of bgpd and of bfdd from one vtysh run
 * (`show running-config bgpd` and `... bfdd`: each vtysh start costs far
 * more than the command, seconds on a starved host).  *bgpd and *bfdd are
 * malloc'd sections of the output; a daemon that answered nothing leaves
 * its pointer NULL.  -1 only when vtysh itself fails (err) or out of
 * memory.
 */
static int
frr_running(const struct frr_target *t, char **bgpd, char **bfdd,
    char *err, size_t errlen)
{
	static const char *const cmd[] = { "show running-config bgpd",
	    "show running-config bfdd" };
	char *text = NULL, *second;
	size_t len = 0, seclen[2];
	const char *sec[2];
	char vwhy[384];

	*bgpd = *bfdd = NULL;
	if (frr_vtysh(t, NULL, cmd, 2, &text, &len, vwhy, sizeof(vwhy)) == -1)
		return frr_err(err, errlen, "bgpd not reachable: %s", vwhy);
	/* The second section starts at vtysh's second header line. */
	second = strstr(text, "\n" FRR_CONFIG_HEAD);
	sec[0] = text;
	seclen[0] = len;
	sec[1] = NULL;
	seclen[1] = 0;
	if (second != NULL) {
		second++;
		seclen[0] = (size_t)(second - text);
		sec[1] = second;
		seclen[1] = len - seclen[0];
	}
	for (int i = 0; i < 2; i++) {
		char **dst = i == 0 ? bgpd : bfdd;

		if (sec[i] == NULL || memmem(sec[i], seclen[i],
		    FRR_CONFIG_MARK, strlen(FRR_CONFIG_MARK)) == NULL)
			continue;
		if ((*dst = strndup(sec[i], seclen[i])) == NULL) {
			free(text);
			free(*bgpd);
			*bgpd = NULL;
			return frr_err(err, errlen, "out of memory");
		}
	}
	free(text);
	return 0;
}

int
frr_apply(const struct frr_target *t, const struct frr_desired *d,
    struct frr_apply_result *res, char *err, size_t errlen)
{
	struct frr_script s;
	char *bgpd = NULL, *bfdd = NULL;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	if (frr_validate(d, err, errlen) == -1)
		return -1;
	if (frr_running(t, &bgpd, &bfdd, err, errlen) == -1)
		return -1;
	if (bgpd == NULL || (bfdd == NULL && frr_wants_bfd(d))) {
		frr_err(err, errlen, "%s not reachable: vtysh shows no "
		    "configuration from it (not running?)", bgpd == NULL ?
		    "bgpd" : "bfdd");
		goto done;
	}
	if (frr_diff(d, bgpd, bfdd, &s, err, errlen) == -1)
		goto done;
	for (size_t i = 0; i < s.n_segments; i++) {
		size_t first = s.segments[i];
		size_t end = i + 1 < s.n_segments ? s.segments[i + 1] :
		    s.n_cmds;
		char *o = NULL, why[512];

		if (frr_vtysh(t, NULL, (const char *const *)s.cmds + first,
		    end - first, &o, NULL, why, sizeof(why)) == -1) {
			frr_err(err, errlen, "FRR refused the change: %s", why);
			goto done;
		}
		free(o);
		res->n_cmds += end - first;
	}
	res->n_changes = s.n_changes;
	if (s.n_changes > 0)
		log_debug("frr", "applied %zu changes in %zu commands",
		    s.n_changes, s.n_cmds);
	rc = 0;
done:
	frr_script_free(&s);
	free(bgpd);
	free(bfdd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading FRR's JSON */

void
frr_bgp_status_free(struct frr_bgp_status *s)
{
	if (s == NULL)
		return;
	free(s->neighbors);
	memset(s, 0, sizeof(*s));
}

void
frr_routes_free(struct frr_routes *r)
{
	if (r == NULL)
		return;
	free(r->routes);
	memset(r, 0, sizeof(*r));
}

void
frr_bfd_status_free(struct frr_bfd_status *s)
{
	if (s == NULL)
		return;
	free(s->peers);
	memset(s, 0, sizeof(*s));
}

void
frr_prefix_list_free(struct frr_prefix_list *p)
{
	if (p == NULL)
		return;
	free(p->prefixes);
	memset(p, 0, sizeof(*p));
}

static json_t *
frr_json_load(const char *json, size_t len, const char *what, char *err,
    size_t errlen)
{
	json_error_t je;
	json_t *root;

	if (json == NULL || len == 0) {
		frr_err(err, errlen, "%s: empty reply from FRR", what);
		return NULL;
	}
	if ((root = json_loadb(json, len, 0, &je)) == NULL)
		frr_err(err, errlen, "%s: not JSON (line %d: %s)", what,
		    je.line, je.text);
	return root;
}

/* Optional unsigned integer field within [0, max]; absent leaves *v. */
static int
frr_json_uint(json_t *obj, const char *key, uint64_t max, uint64_t *v,
    const char *where, char *err, size_t errlen)
{
	json_t *j = json_object_get(obj, key);
	json_int_t x;

	if (j == NULL)
		return 0;
	if (!json_is_integer(j) || (x = json_integer_value(j)) < 0 ||
	    (uint64_t)x > max)
		return frr_err(err, errlen, "%s.%s: not an integer in 0..%llu",
		    where, key, (unsigned long long)max);
	*v = (uint64_t)x;
	return 0;
}

/* Optional string field; absent gives NULL. */
static int
frr_json_str(json_t *obj, const char *key, const char **v, const char *where,
    char *err, size_t errlen)
{
	json_t *j = json_object_get(obj, key);

	*v = NULL;
	if (j == NULL)
		return 0;
	if (!json_is_string(j))
		return frr_err(err, errlen, "%s.%s: not a string", where, key);
	*v = json_string_value(j);
	return 0;
}

static int
frr_json_bool(json_t *obj, const char *key, bool *v, const char *where,
    char *err, size_t errlen)
{
	json_t *j = json_object_get(obj, key);

	*v = false;
	if (j == NULL)
		return 0;
	if (!json_is_boolean(j))
		return frr_err(err, errlen, "%s.%s: not a boolean", where, key);
	*v = json_is_true(j);
	return 0;
}

static int
frr_bgp_state(const char *s, enum msg_bgp_state *out)
{
	static const struct { const char *name; enum msg_bgp_state st; } m[] = {
		{ "Idle", MSG_BGP_STATE_IDLE },
		{ "Connect", MSG_BGP_STATE_CONNECT },
		{ "Active", MSG_BGP_STATE_ACTIVE },
		{ "OpenSent", MSG_BGP_STATE_OPENSENT },
		{ "OpenConfirm", MSG_BGP_STATE_OPENCONFIRM },
		{ "Established", MSG_BGP_STATE_ESTABLISHED },
		{ "Clearing", MSG_BGP_STATE_IDLE },
		{ "Deleted", MSG_BGP_STATE_IDLE },
	};

	/* "Idle (Admin)", "Idle (PfxCt)": the first word is the state. */
	for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
		size_t n = strlen(m[i].name);

		if (strncmp(s, m[i].name, n) == 0 &&
		    (s[n] == '\0' || s[n] == ' ')) {
			*out = m[i].st;
			return 0;
		}
	}
	return -1;
}

static uint64_t
frr_tunnel_from_desc(const char *desc)
{
	uint64_t id;

	if (desc == NULL || !frr_starts(desc, FRR_DESC_PREFIX) ||
	    util_parse_u64(desc + strlen(FRR_DESC_PREFIX), 1,
	    FRR_TUNNEL_ID_MAX, &id) == -1)
		return 0;
	return id;
}

static int
frr_summary_peer(struct frr_bgp_status *st, size_t *cap, const char *key,
    json_t *p, const char *where, char *err, size_t errlen)
{
	struct frr_neighbor_status *n = NULL, tmp;
	uint64_t ras = 0, rcd = 0, snt = 0, up = 0;
	const char *state, *desc;
	char w[128];

	snprintf(w, sizeof(w), "%s.peers[%s]", where, key);
	memset(&tmp, 0, sizeof(tmp));
	if (msg_addr_parse(key, &tmp.address) == -1)
		return 0;	/* an unnumbered (interface) peer: not ours */
	if (!json_is_object(p))
		return frr_err(err, errlen, "%s: not an object", w);
	if (frr_json_str(p, "state", &state, w, err, errlen) == -1 ||
	    frr_json_str(p, "desc", &desc, w, err, errlen) == -1 ||
	    frr_json_uint(p, "remoteAs", UINT32_MAX, &ras, w, err,
	    errlen) == -1 ||
	    frr_json_uint(p, "pfxRcd", UINT32_MAX, &rcd, w, err, errlen) == -1 ||
	    frr_json_uint(p, "pfxSnt", UINT32_MAX, &snt, w, err, errlen) == -1 ||
	    frr_json_uint(p, "peerUptimeMsec", UINT64_MAX / 2, &up, w, err,
	    errlen) == -1)
		return -1;
	if (state == NULL)
		return frr_err(err, errlen, "%s.state: missing", w);
	if (json_object_get(p, "remoteAs") == NULL)
		return frr_err(err, errlen, "%s.remoteAs: missing", w);
	if (frr_bgp_state(state, &tmp.state) == -1)
		return frr_err(err, errlen, "%s.state: unknown state \"%.32s\"",
		    w, state);
	for (size_t i = 0; i < st->n_neighbors; i++)
		if (msg_addr_equal(&st->neighbors[i].address, &tmp.address))
			n = &st->neighbors[i];
	if (n == NULL) {
		void *nv;

		if (st->n_neighbors >= FRR_STATUS_MAX)
			return frr_err(err, errlen, "%s: more than %d "
			    "neighbours", where, FRR_STATUS_MAX);
		if ((nv = util_grow(st->neighbors, cap, st->n_neighbors + 1,
		    sizeof(*st->neighbors), 16)) == NULL)
			return frr_err(err, errlen, "out of memory");
		st->neighbors = nv;
		n = &st->neighbors[st->n_neighbors++];
		*n = tmp;
		n->remote_asn = (uint32_t)ras;
		n->uptime_s = tmp.state == MSG_BGP_STATE_ESTABLISHED ?
		    up / 1000 : 0;
		n->tunnel_id = frr_tunnel_from_desc(desc);
	}
	/* Counts add up over the families; saturate rather than wrap. */
	n->prefixes_received = n->prefixes_received + rcd > UINT32_MAX ?
	    UINT32_MAX : n->prefixes_received + (uint32_t)rcd;
	n->prefixes_sent = n->prefixes_sent + snt > UINT32_MAX ?
	    UINT32_MAX : n->prefixes_sent + (uint32_t)snt;
	return 0;
}

int
frr_parse_summary(const char *json, size_t len, struct frr_bgp_status *out,
    char *err, size_t errlen)
{
	struct frr_bgp_status st;
	json_t *root, *af;
	const char *key;
	size_t cap = 0;

	memset(out, 0, sizeof(*out));
	memset(&st, 0, sizeof(st));
	if ((root = frr_json_load(json, len, "bgp summary", err,
	    errlen)) == NULL)
		return -1;
	if (!json_is_object(root)) {
		frr_err(err, errlen, "bgp summary: not a JSON object");
		goto fail;
	}
	json_object_foreach(root, key, af) {
		json_t *peers, *p;
		const char *pk, *rid;
		uint64_t as = 0;
		char where[64];

		snprintf(where, sizeof(where), "%.48s", key);
		if (json_is_string(af))
			continue;	/* a message, e.g. no neighbours */
		if (!json_is_object(af)) {
			frr_err(err, errlen, "%s: not an object", where);
			goto fail;
		}
		if (json_object_get(af, "as") == NULL) {
			frr_err(err, errlen, "%s.as: missing", where);
			goto fail;
		}
		if (frr_json_uint(af, "as", UINT32_MAX, &as, where, err,
		    errlen) == -1 ||
		    frr_json_str(af, "routerId", &rid, where, err,
		    errlen) == -1)
			goto fail;
		if (st.local_asn != 0 && st.local_asn != as) {
			frr_err(err, errlen, "%s.as: %llu differs from %u",
			    where, (unsigned long long)as, st.local_asn);
			goto fail;
		}
		st.local_asn = (uint32_t)as;
		if (rid != NULL && msg_addr_parse(rid, &st.router_id) == -1) {
			frr_err(err, errlen, "%s.routerId: not an address",
			    where);
			goto fail;
		}
		if ((peers = json_object_get(af, "peers")) == NULL)
			continue;
		if (!json_is_object(peers)) {
			frr_err(err, errlen, "%s.peers: not an object", where);
			goto fail;
		}
		json_object_foreach(peers, pk, p) {
			if (frr_summary_peer(&st, &cap, pk, p, where, err,
			    errlen) == -1)
				goto fail;
		}
	}
	json_decref(root);
	*out = st;
	return 0;
fail:
	json_decref(root);
	frr_bgp_status_free(&st);
	return -1;
}

/* A new zeroed entry at the end of r, or NULL with err set. */
static struct frr_route *
frr_routes_add(struct frr_routes *r, size_t *cap, char *err, size_t errlen)
{
	struct frr_route *rt;
	void *nv;

	if (r->n_routes >= FRR_STATUS_MAX) {
		frr_err(err, errlen, "more than %d routes", FRR_STATUS_MAX);
		return NULL;
	}
	if ((nv = util_grow(r->routes, cap, r->n_routes + 1,
	    sizeof(*r->routes), 64)) == NULL) {
		frr_err(err, errlen, "out of memory");
		return NULL;
	}
	r->routes = nv;
	rt = &r->routes[r->n_routes++];
	memset(rt, 0, sizeof(*rt));
	return rt;
}

/* "0.0.0.0" and "::" stand for "no next hop" in FRR's output. */
static int
frr_nexthop(const char *s, struct msg_addr *a)
{
	static const uint8_t zero[16];

	if (msg_addr_parse(s, a) == -1)
		return -1;
	if (memcmp(a->bytes, zero, sizeof(zero)) == 0)
		memset(a, 0, sizeof(*a));
	return 0;
}

static int
frr_route_nexthops(json_t *path, struct frr_route *rt, bool bgp,
    const char *where, char *err, size_t errlen)
{
	json_t *nhs = json_object_get(path, "nexthops"), *nh;
	size_t i;

	if (nhs == NULL)
		return 0;
	if (!json_is_array(nhs))
		return frr_err(err, errlen, "%s.nexthops: not an array", where);
	json_array_foreach(nhs, i, nh) {
		const char *ip, *ifn;

		if (!json_is_object(nh))
			return frr_err(err, errlen,
			    "%s.nexthops[%zu]: not an object", where, i);
		if (frr_json_str(nh, "ip", &ip, where, err, errlen) == -1 ||
		    frr_json_str(nh, "interfaceName", &ifn, where, err,
		    errlen) == -1)
			return -1;
		if (ip != NULL && rt->nexthop.family == 0 &&
		    frr_nexthop(ip, &rt->nexthop) == -1)
			return frr_err(err, errlen,
			    "%s.nexthops[%zu].ip: not an address", where, i);
		if (ifn != NULL && rt->ifname[0] == '\0')
			snprintf(rt->ifname, sizeof(rt->ifname), "%s", ifn);
		if (bgp)
			break;	/* the first is the one used */
	}
	return 0;
}

/* Shared walk of { "PREFIX": [ path, ... ], ... }. */
static int
frr_parse_prefix_map(json_t *map, bool bgp, struct frr_routes *r,
    char *err, size_t errlen)
{
	const char *key;
	json_t *paths;
	size_t cap = 0;

	json_object_foreach(map, key, paths) {
		struct msg_prefix pfx;
		json_t *path;
		char where[80];
		size_t i;

		snprintf(where, sizeof(where), "routes[%.60s]", key);
		if (msg_prefix_parse(key, false, &pfx) == -1)
			return frr_err(err, errlen, "%s: not a prefix", where);
		if (!json_is_array(paths))
			return frr_err(err, errlen, "%s: not an array", where);
		json_array_foreach(paths, i, path) {
			struct frr_route *rt;
			const char *proto = NULL, *peer = NULL;
			bool a = false, b = false;

			if (!json_is_object(path))
				return frr_err(err, errlen,
				    "%s[%zu]: not an object", where, i);
			if ((rt = frr_routes_add(r, &cap, err, errlen)) == NULL)
				return -1;
			rt->prefix = pfx;
			if (bgp) {
				if (frr_json_bool(path, "bestpath", &b, where,
				    err, errlen) == -1 ||
				    frr_json_bool(path, "valid", &a, where, err,
				    errlen) == -1 ||
				    frr_json_str(path, "peerId", &peer, where,
				    err, errlen) == -1)
					return -1;
				rt->best = b && a;
				rt->installed = false;
				snprintf(rt->protocol, sizeof(rt->protocol),
				    "bgp");
				/* "(unspec)": originated here. */
				if (peer != NULL && peer[0] != '(' &&
				    msg_addr_parse(peer, &rt->peer) == -1)
					return frr_err(err, errlen,
					    "%s[%zu].peerId: not an address",
					    where, i);
			} else {
				if (frr_json_str(path, "protocol", &proto,
				    where, err, errlen) == -1 ||
				    frr_json_bool(path, "selected", &b, where,
				    err, errlen) == -1 ||
				    frr_json_bool(path, "installed", &a, where,
				    err, errlen) == -1)
					return -1;
				if (proto == NULL)
					return frr_err(err, errlen,
					    "%s[%zu].protocol: missing", where,
					    i);
				snprintf(rt->protocol, sizeof(rt->protocol),
				    "%s", proto);
				rt->best = b;
				rt->installed = a;
			}
			if (frr_route_nexthops(path, rt, bgp, where, err,
			    errlen) == -1)
				return -1;
		}
	}
	return 0;
}

int
frr_parse_bgp_routes(const char *json, size_t len, struct frr_routes *out,
    char *err, size_t errlen)
{
	json_t *root, *routes;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((root = frr_json_load(json, len, "bgp routes", err,
	    errlen)) == NULL)
		return -1;
	if (!json_is_object(root)) {
		frr_err(err, errlen, "bgp routes: not a JSON object");
	} else if ((routes = json_object_get(root, "routes")) == NULL) {
		/* `{}` is what FRR prints without a BGP instance. */
		if (json_object_size(root) == 0)
			rc = 0;
		else
			frr_err(err, errlen, "bgp routes: routes: missing");
	} else if (!json_is_object(routes)) {
		frr_err(err, errlen, "bgp routes: routes: not an object");
	} else {
		rc = frr_parse_prefix_map(routes, true, out, err, errlen);
	}
	json_decref(root);
	if (rc == -1)
		frr_routes_free(out);
	return rc;
}

int
frr_parse_rib(const char *json, size_t len, struct frr_routes *out,
    char *err, size_t errlen)
{
	json_t *root;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((root = frr_json_load(json, len, "routes", err, errlen)) == NULL)
		return -1;
	if (!json_is_object(root))
		frr_err(err, errlen, "routes: not a JSON object");
	else
		rc = frr_parse_prefix_map(root, false, out, err, errlen);
	json_decref(root);
	if (rc == -1)
		frr_routes_free(out);
	return rc;
}

static int
frr_bfd_entry(json_t *p, size_t i, struct frr_bfd_peer *bp, char *err,
    size_t errlen)
{
	const char *peer, *local, *ifn, *status, *diag;
	uint64_t up = 0, down = 0, rx = 0, tx = 0, mult = 0;
	char w[32];

	snprintf(w, sizeof(w), "bfd peers[%zu]", i);
	memset(bp, 0, sizeof(*bp));
	if (!json_is_object(p))
		return frr_err(err, errlen, "%s: not an object", w);
	if (frr_json_str(p, "peer", &peer, w, err, errlen) == -1 ||
	    frr_json_str(p, "local", &local, w, err, errlen) == -1 ||
	    frr_json_str(p, "interface", &ifn, w, err, errlen) == -1 ||
	    frr_json_str(p, "status", &status, w, err, errlen) == -1 ||
	    frr_json_str(p, "diagnostic", &diag, w, err, errlen) == -1 ||
	    frr_json_uint(p, "uptime", UINT64_MAX / 2, &up, w, err,
	    errlen) == -1 ||
	    frr_json_uint(p, "downtime", UINT64_MAX / 2, &down, w, err,
	    errlen) == -1 ||
	    frr_json_uint(p, "receive-interval", UINT32_MAX, &rx, w, err,
	    errlen) == -1 ||
	    frr_json_uint(p, "transmit-interval", UINT32_MAX, &tx, w, err,
	    errlen) == -1 ||
	    frr_json_uint(p, "detect-multiplier", 255, &mult, w, err,
	    errlen) == -1)
		return -1;
	if (peer == NULL || msg_addr_parse(peer, &bp->peer) == -1)
		return frr_err(err, errlen, "%s.peer: missing or not an "
		    "address", w);
	if (status == NULL)
		return frr_err(err, errlen, "%s.status: missing", w);
	if (strcmp(status, "up") == 0)
		bp->up = true;
	else if (strcmp(status, "down") != 0 && strcmp(status, "init") != 0 &&
	    strcmp(status, "shutdown") != 0 &&
	    strcmp(status, "adm-down") != 0)
		return frr_err(err, errlen, "%s.status: unknown \"%.16s\"", w,
		    status);
	if (local != NULL && msg_addr_parse(local, &bp->local) == -1)
		return frr_err(err, errlen, "%s.local: not an address", w);
	if (ifn != NULL)
		snprintf(bp->ifname, sizeof(bp->ifname), "%s", ifn);
	if (diag != NULL)
		snprintf(bp->diagnostic, sizeof(bp->diagnostic), "%s", diag);
	bp->uptime_s = bp->up ? up : down;
	bp->rx_ms = (uint32_t)rx;
	bp->tx_ms = (uint32_t)tx;
	bp->multiplier = (uint32_t)mult;
	return 0;
}

int
frr_parse_bfd(const char *json, size_t len, struct frr_bfd_status *out,
    char *err, size_t errlen)
{
	json_t *root, *p;
	size_t i;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((root = frr_json_load(json, len, "bfd peers", err,
	    errlen)) == NULL)
		return -1;
	if (!json_is_array(root)) {
		frr_err(err, errlen, "bfd peers: not a JSON array");
		goto done;
	}
	if (json_array_size(root) > FRR_STATUS_MAX) {
		frr_err(err, errlen, "bfd peers: more than %d", FRR_STATUS_MAX);
		goto done;
	}
	if (json_array_size(root) > 0 && (out->peers = calloc(
	    json_array_size(root), sizeof(*out->peers))) == NULL) {
		frr_err(err, errlen, "out of memory");
		goto done;
	}
	json_array_foreach(root, i, p) {
		if (frr_bfd_entry(p, i, &out->peers[i], err, errlen) == -1)
			goto done;
		out->n_peers++;
	}
	rc = 0;
done:
	json_decref(root);
	if (rc == -1)
		frr_bfd_status_free(out);
	return rc;
}

int
frr_parse_filtered(const char *json, size_t len, struct frr_prefix_list *out,
    char *err, size_t errlen)
{
	json_t *root, *routes, *v;
	const char *key;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((root = frr_json_load(json, len, "filtered routes", err,
	    errlen)) == NULL)
		return -1;
	if (!json_is_object(root)) {
		frr_err(err, errlen, "filtered routes: not a JSON object");
		goto done;
	}
	if ((routes = json_object_get(root, "receivedRoutes")) == NULL) {
		/* FRR leaves the key out when nothing was filtered, but a
		 * reply with neither it nor the table header is not one. */
		if (json_object_get(root, "bgpLocalRouterId") == NULL &&
		    json_object_size(root) != 0)
			frr_err(err, errlen, "filtered routes: not a "
			    "filtered-routes reply");
		else
			rc = 0;
		goto done;
	}
	if (!json_is_object(routes)) {
		frr_err(err, errlen,
		    "filtered routes: receivedRoutes: not an object");
		goto done;
	}
	if (json_object_size(routes) > FRR_STATUS_MAX) {
		frr_err(err, errlen, "filtered routes: more than %d",
		    FRR_STATUS_MAX);
		goto done;
	}
	if (json_object_size(routes) > 0 && (out->prefixes = calloc(
	    json_object_size(routes), sizeof(*out->prefixes))) == NULL) {
		frr_err(err, errlen, "out of memory");
		goto done;
	}
	json_object_foreach(routes, key, v) {
		if (msg_prefix_parse(key, false,
		    &out->prefixes[out->n_prefixes]) == -1) {
			frr_err(err, errlen, "filtered routes: \"%.60s\": not "
			    "a prefix", key);
			goto done;
		}
		out->n_prefixes++;
	}
	rc = 0;
done:
	json_decref(root);
	if (rc == -1)
		frr_prefix_list_free(out);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Readers: vtysh + parser */

typedef int (*frr_parser)(const char *, size_t, void *, char *, size_t);

static int
frr_read(const struct frr_target *t, const char *cmd, frr_parser parse,
    void *out, char *err, size_t errlen)
{
	const char *cmds[1] = { cmd };
	char *text;
	size_t len;
	int rc;

	if (frr_vtysh(t, NULL, cmds, 1, &text, &len, err, errlen) == -1)
		return -1;
	rc = parse(text, len, out, err, errlen);
	free(text);
	return rc;
}

static int
frr_parse_summary_v(const char *j, size_t l, void *o, char *e, size_t el)
{
	return frr_parse_summary(j, l, o, e, el);
}

static int
frr_parse_bgp_routes_v(const char *j, size_t l, void *o, char *e, size_t el)
{
	return frr_parse_bgp_routes(j, l, o, e, el);
}

static int
frr_parse_rib_v(const char *j, size_t l, void *o, char *e, size_t el)
{
	return frr_parse_rib(j, l, o, e, el);
}

static int
frr_parse_bfd_v(const char *j, size_t l, void *o, char *e, size_t el)
{
	return frr_parse_bfd(j, l, o, e, el);
}

static int
frr_parse_filtered_v(const char *j, size_t l, void *o, char *e, size_t el)
{
	return frr_parse_filtered(j, l, o, e, el);
}

int
frr_read_summary(const struct frr_target *t, struct frr_bgp_status *out,
    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	return frr_read(t, "show bgp summary json", frr_parse_summary_v, out,
	    err, errlen);
}

static int
frr_family_check(int family, char *err, size_t errlen)
{
	if (family != AF_INET && family != AF_INET6)
		return frr_err(err, errlen, "family must be IPv4 or IPv6");
	return 0;
}

int
frr_read_bgp_routes(const struct frr_target *t, int family,
    struct frr_routes *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (frr_family_check(family, err, errlen) == -1)
		return -1;
	return frr_read(t, family == AF_INET ? "show bgp ipv4 unicast json" :
	    "show bgp ipv6 unicast json", frr_parse_bgp_routes_v, out, err,
	    errlen);
}

int
frr_read_rib(const struct frr_target *t, int family, struct frr_routes *out,
    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (frr_family_check(family, err, errlen) == -1)
		return -1;
	return frr_read(t, family == AF_INET ? "show ip route json" :
	    "show ipv6 route json", frr_parse_rib_v, out, err, errlen);
}

int
frr_read_bfd(const struct frr_target *t, struct frr_bfd_status *out,
    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	return frr_read(t, "show bfd peers json", frr_parse_bfd_v, out, err,
	    errlen);
}

int
frr_read_filtered(const struct frr_target *t, const struct msg_addr *neighbor,
    int family, struct frr_prefix_list *out, char *err, size_t errlen)
{
	char cmd[128], a[MSG_ADDR_STRLEN];

	memset(out, 0, sizeof(*out));
	if (frr_family_check(family, err, errlen) == -1)
		return -1;
	if (msg_addr_format(neighbor, a, sizeof(a)) == -1 ||
	    neighbor->family == 0)
		return frr_err(err, errlen, "neighbour address not set");
	snprintf(cmd, sizeof(cmd), "show bgp %s unicast neighbors %s "
	    "filtered-routes json", family == AF_INET ? "ipv4" : "ipv6", a);
	return frr_read(t, cmd, frr_parse_filtered_v, out, err, errlen);
}

/*
 * Several JSON replies of one vtysh run (one -c each, printed one after
 * the other): the value starting at json[*off], parsed by parse into out;
 * *off then points past it.  jansson's JSON_DISABLE_EOF_CHECK stops at
 * the value's end and tells where that is.
 */
static int
frr_read_next(const char *json, size_t len, size_t *off, frr_parser parse,
    void *out, const char *what, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v;
	size_t o = *off, used;

	while (o < len && strchr(" \t\r\n", json[o]) != NULL)
		o++;
	if (o >= len)
		return frr_err(err, errlen, "%s: no reply", what);
	v = json_loadb(json + o, len - o, JSON_DISABLE_EOF_CHECK, &je);
	if (v == NULL)
		return frr_err(err, errlen, "%s: not JSON (line %d: %s)",
		    what, je.line, je.text);
	json_decref(v);
	used = (size_t)je.position;
	if (used == 0 || used > len - o)
		return frr_err(err, errlen, "%s: no reply", what);
	if (parse(json + o, used, out, err, errlen) == -1)
		return -1;
	*off = o + used;
	return 0;
}

int
frr_read_state(const struct frr_target *t, struct frr_bgp_status *bgp,
    struct frr_bfd_status *bfd, bool *have_bfd, char *err, size_t errlen)
{
	static const char *const cmds[] = { "show bgp summary json",
	    "show bfd peers json" };
	char *text = NULL, why[256];
	size_t len = 0, off = 0;

	memset(bgp, 0, sizeof(*bgp));
	memset(bfd, 0, sizeof(*bfd));
	*have_bfd = false;
	if (frr_vtysh(t, NULL, cmds, 2, &text, &len, why, sizeof(why)) == 0) {
		if (frr_read_next(text, len, &off, frr_parse_summary_v, bgp,
		    "bgp summary", why, sizeof(why)) == 0 &&
		    frr_read_next(text, len, &off, frr_parse_bfd_v, bfd,
		    "bfd peers", why, sizeof(why)) == 0) {
			free(text);
			*have_bfd = true;
			return 0;
		}
		frr_bgp_status_free(bgp);
		frr_bfd_status_free(bfd);
	}
	free(text);
	/* One of the two failed (bfdd not running makes vtysh exit 1):
	 * each on its own, so that the other is still read. */
	log_debug("frr", "state in one run: %s; reading one by one", why);
	if (frr_read_bfd(t, bfd, why, sizeof(why)) == 0)
		*have_bfd = true;
	return frr_read_summary(t, bgp, err, errlen);
}

int
frr_read_filtered_many(const struct frr_target *t,
    const struct msg_addr *neighbors, const int *families, size_t n,
    struct frr_prefix_list *outs, bool *ok, char *err, size_t errlen)
{
	char (*cmdbuf)[128] = NULL, a[MSG_ADDR_STRLEN], why[256];
	const char **cmds = NULL;
	char *text = NULL;
	size_t len = 0, off = 0, i;
	int rc = -1;

	for (i = 0; i < n; i++) {
		memset(&outs[i], 0, sizeof(outs[i]));
		ok[i] = false;
	}
	if (n == 0)
		return 0;
	if (n > FRR_FILTERED_READS_MAX)
		return frr_err(err, errlen, "more than %d neighbours in one "
		    "read", FRR_FILTERED_READS_MAX);
	for (i = 0; i < n; i++) {
		if (frr_family_check(families[i], err, errlen) == -1)
			return -1;
		if (neighbors[i].family == 0 ||
		    msg_addr_format(&neighbors[i], a, sizeof(a)) == -1)
			return frr_err(err, errlen, "neighbour address not "
			    "set");
	}
	cmdbuf = calloc(n, sizeof(*cmdbuf));
	cmds = calloc(n, sizeof(*cmds));
	if (cmdbuf == NULL || cmds == NULL) {
		frr_err(err, errlen, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		(void)msg_addr_format(&neighbors[i], a, sizeof(a));
		snprintf(cmdbuf[i], sizeof(cmdbuf[i]), "show bgp %s unicast "
		    "neighbors %s filtered-routes json", families[i] ==
		    AF_INET ? "ipv4" : "ipv6", a);
		cmds[i] = cmdbuf[i];
	}
	if (frr_vtysh(t, NULL, cmds, n, &text, &len, why, sizeof(why)) == 0) {
		for (i = 0; i < n; i++)
			if (frr_read_next(text, len, &off,
			    frr_parse_filtered_v, &outs[i], "filtered routes",
			    why, sizeof(why)) == -1)
				break;
		if (i == n) {
			for (i = 0; i < n; i++)
				ok[i] = true;
			rc = 0;
			goto done;
		}
		while (i-- > 0)
			frr_prefix_list_free(&outs[i]);
	}
	/* Something in the batch failed: one by one, each its own answer. */
	log_debug("frr", "filtered routes in one run: %s; reading one by "
	    "one", why);
	rc = 0;
	for (i = 0; i < n; i++) {
		ok[i] = frr_read_filtered(t, &neighbors[i], families[i],
		    &outs[i], why, sizeof(why)) == 0;
		if (!ok[i]) {
			frr_err(err, errlen, "%s", why);
			rc = -1;
		}
	}
done:
	free(text);
	free(cmds);
	free(cmdbuf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Zebra's interfaces */

void
frr_ifaces_free(struct frr_ifaces *x)
{
	for (size_t i = 0; i < x->n_ifs; i++)
		free(x->ifs[i].addrs);
	free(x->ifs);
	memset(x, 0, sizeof(*x));
}

static int
frr_iface_entry(const char *name, json_t *v, struct frr_iface *out,
    char *err, size_t errlen)
{
	json_t *addrs, *a;
	size_t i;
	char where[96];

	snprintf(where, sizeof(where), "%.48s", name);
	if (!json_is_object(v))
		return frr_err(err, errlen, "%s: not an object", where);
	if (strlen(name) >= sizeof(out->name))
		return frr_err(err, errlen, "%s: name too long", where);
	snprintf(out->name, sizeof(out->name), "%s", name);
	if ((addrs = json_object_get(v, "ipAddresses")) == NULL)
		return 0;
	if (!json_is_array(addrs))
		return frr_err(err, errlen, "%s.ipAddresses: not an array",
		    where);
	if (json_array_size(addrs) > FRR_IFACE_ADDRS_MAX)
		return frr_err(err, errlen, "%s.ipAddresses: more than %d",
		    where, FRR_IFACE_ADDRS_MAX);
	if (json_array_size(addrs) > 0 && (out->addrs = calloc(
	    json_array_size(addrs), sizeof(*out->addrs))) == NULL)
		return frr_err(err, errlen, "out of memory");
	json_array_foreach(addrs, i, a) {
		const char *s;
		char w[160];

		snprintf(w, sizeof(w), "%s.ipAddresses[%zu]", where, i);
		if (!json_is_object(a))
			return frr_err(err, errlen, "%s: not an object", w);
		if (frr_json_str(a, "address", &s, w, err, errlen) == -1)
			return -1;
		if (s == NULL)
			return frr_err(err, errlen, "%s.address: missing", w);
		if (msg_prefix_parse(s, false, &out->addrs[i]) == -1)
			return frr_err(err, errlen, "%s.address: \"%.64s\" is "
			    "not an address/length", w, s);
		out->n_addrs++;
	}
	return 0;
}

int
frr_parse_interfaces(const char *json, size_t len, struct frr_ifaces *out,
    char *err, size_t errlen)
{
	json_t *root, *v;
	const char *key;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if ((root = frr_json_load(json, len, "interfaces", err,
	    errlen)) == NULL)
		return -1;
	if (!json_is_object(root)) {
		frr_err(err, errlen, "interfaces: not a JSON object");
		goto done;
	}
	if (json_object_size(root) > FRR_STATUS_MAX) {
		frr_err(err, errlen, "interfaces: more than %d",
		    FRR_STATUS_MAX);
		goto done;
	}
	if (json_object_size(root) > 0 && (out->ifs = calloc(
	    json_object_size(root), sizeof(*out->ifs))) == NULL) {
		frr_err(err, errlen, "out of memory");
		goto done;
	}
	json_object_foreach(root, key, v) {
		/* Counted first, so a failed entry's addresses are freed. */
		out->n_ifs++;
		if (frr_iface_entry(key, v, &out->ifs[out->n_ifs - 1], err,
		    errlen) == -1)
			goto done;
	}
	rc = 0;
done:
	json_decref(root);
	if (rc == -1)
		frr_ifaces_free(out);
	return rc;
}

int
frr_read_interfaces(const struct frr_target *t, struct frr_ifaces *out,
    char *err, size_t errlen)
{
	const char *cmds[1] = { "show interface json" };
	char *text;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (frr_vtysh(t, "zebra", cmds, 1, &text, &len, err, errlen) == -1)
		return -1;
	rc = frr_parse_interfaces(text, len, out, err, errlen);
	free(text);
	return rc;
}

bool
frr_iface_has(const struct frr_ifaces *x, const char *name,
    const struct msg_addr *a, unsigned len)
{
	for (size_t i = 0; i < x->n_ifs; i++) {
		if (strcmp(x->ifs[i].name, name) != 0)
			continue;
		for (size_t j = 0; j < x->ifs[i].n_addrs; j++)
			if (x->ifs[i].addrs[j].len == len &&
			    msg_addr_equal(&x->ifs[i].addrs[j].addr, a))
				return true;
		return false;
	}
	return false;
}
