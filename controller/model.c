/*
 * model.c — validation and text forms of the controller's model objects.
 *
 * Pure functions only: the REST API, the store and the compiler all call
 * these so that a name, CIDR or ASN means the same thing everywhere and an
 * error names the same field whichever layer found it.
 */
#include "controller/model.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "proto/msg.h"

struct model_name {
	int v;
	const char *s;
};

static const struct model_name model_errcodes[] = {
	{ MODEL_OK, "ok" },
	{ MODEL_E_INVALID, "invalid" },
	{ MODEL_E_DUPLICATE, "duplicate" },
	{ MODEL_E_OVERLAP, "overlap" },
	{ MODEL_E_NOT_FOUND, "not_found" },
	{ MODEL_E_EXHAUSTED, "exhausted" },
	{ MODEL_E_TOKEN, "token_invalid" },
	{ MODEL_E_CONFLICT, "conflict" },
	{ MODEL_E_INTERNAL, "internal" },
	{ MODEL_E_BUSY, "busy" },
};
static const struct model_name model_roles[] = {
	{ MODEL_ROLE_HUB, "hub" },
	{ MODEL_ROLE_SPOKE, "spoke" },
	{ MODEL_ROLE_EDGE, "edge" },
};
static const struct model_name model_backends[] = {
	{ MODEL_BACKEND_ANY, "any" },
	{ MODEL_BACKEND_XFRM, "xfrm" },
	{ MODEL_BACKEND_UESP, "uesp" },
	{ MODEL_BACKEND_NULL, "null" },
};
static const struct model_name model_topologies[] = {
	{ MODEL_TOPO_FULL_MESH, "full-mesh" },
	{ MODEL_TOPO_HUB_SPOKE, "hub-and-spoke" },
	{ MODEL_TOPO_REGIONAL, "regional-mesh" },
};
static const struct model_name model_pairings[] = {
	{ MODEL_PAIR_SAME, "same-colour" },
	{ MODEL_PAIR_LIST, "list" },
	{ MODEL_PAIR_ANY, "any" },
};
static const struct model_name model_encaps[] = {
	{ MODEL_ENCAP_GRE, "gre" },
	{ MODEL_ENCAP_VXLAN, "vxlan" },
};
static const struct model_name model_ciphers[] = {
	{ MODEL_CIPHER_AES_GCM_128, "aes-gcm-128" },
	{ MODEL_CIPHER_AES_GCM_256, "aes-gcm-256" },
};
static const struct model_name model_api_roles[] = {
	{ MODEL_API_ADMIN, "admin" },
	{ MODEL_API_OPERATOR, "operator" },
	{ MODEL_API_READONLY, "readonly" },
};
static const struct model_name model_epoch_states[] = {
	{ MODEL_EPOCH_INSTALLED, "installed" },
	{ MODEL_EPOCH_ACKED, "acked" },
	{ MODEL_EPOCH_ACTIVE, "active" },
	{ MODEL_EPOCH_DRAINING, "draining" },
};

static const char *
model_name_of(const struct model_name *t, size_t n, int v)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].v == v)
			return t[i].s;
	return "?";
}

static int
model_name_parse(const struct model_name *t, size_t n, const char *s,
    int *out)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i].s, s) == 0) {
			*out = t[i].v;
			return 0;
		}
	}
	return -1;
}

/* `type` is a type name and cannot be parenthesised. */
// NOLINTBEGIN(bugprone-macro-parentheses)
#define MODEL_ENUM_FUNCS(fn, type, table)                                      \
	const char *model_##fn##_str(type v)                                  \
	{                                                                      \
		return model_name_of(table, ARRAY_SIZE(table), (int)v);       \
	}                                                                      \
	int model_##fn##_parse(const char *s, type *out)                       \
	{                                                                      \
		int v;                                                         \
		if (model_name_parse(table, ARRAY_SIZE(table), s, &v) == -1)  \
			return -1;                                             \
		*out = (type)v;                                                \
		return 0;                                                      \
	}

MODEL_ENUM_FUNCS(role, enum model_role, model_roles)
MODEL_ENUM_FUNCS(backend, enum model_backend, model_backends)
MODEL_ENUM_FUNCS(topology, enum model_topology, model_topologies)
MODEL_ENUM_FUNCS(pairing, enum model_pairing, model_pairings)
MODEL_ENUM_FUNCS(encap, enum model_encap, model_encaps)
MODEL_ENUM_FUNCS(cipher, enum model_cipher, model_ciphers)
MODEL_ENUM_FUNCS(api_role, enum model_api_role, model_api_roles)
// NOLINTEND(bugprone-macro-parentheses)

const char *
model_errcode_str(enum model_errcode code)
{
	return model_name_of(model_errcodes, ARRAY_SIZE(model_errcodes),
	    (int)code);
}

const char *
model_epoch_state_str(enum model_epoch_state s)
{
	return model_name_of(model_epoch_states, ARRAY_SIZE(model_epoch_states),
	    (int)s);
}

int
model_error_set(struct model_error *err, enum model_errcode code,
    const char *field, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = code;
	(void)util_strcpy(err->field, sizeof(err->field),
	    field != NULL ? field : "");
	va_start(ap, fmt);
	(void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- addresses and prefixes ---------------------------------------- */

int
model_prefix_parse(const char *s, bool allow_host_bits,
    struct model_prefix *out, const char *field, struct model_error *err)
{
	char buf[MODEL_CIDR_MAX + 1];
	const char *slash;
	struct model_prefix p;
	uint64_t len;
	size_t alen;

	if (s == NULL || strlen(s) > MODEL_CIDR_MAX)
		return model_error_set(err, MODEL_E_INVALID, field,
		    "not a CIDR prefix");
	slash = strchr(s, '/');
	if (slash == NULL)
		return model_error_set(err, MODEL_E_INVALID, field,
		    "'%s' is not a CIDR prefix (missing /length)", s);
	alen = (size_t)(slash - s);
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(&p, 0, sizeof(p));
	if (inet_pton(AF_INET, buf, p.addr) == 1)
		p.family = 4;
	else if (inet_pton(AF_INET6, buf, p.addr) == 1)
		p.family = 6;
	else
		return model_error_set(err, MODEL_E_INVALID, field,
		    "'%s' is not a CIDR prefix (bad address)", s);
	if (util_parse_u64(slash + 1, 0, p.family == 4 ? 32 : 128, &len) == -1)
		return model_error_set(err, MODEL_E_INVALID, field,
		    "'%s' is not a CIDR prefix (bad length)", s);
	p.len = (uint8_t)len;
	for (unsigned bit = p.len; bit < (p.family == 4 ? 32u : 128u); bit++) {
		if (p.addr[bit / 8] & (0x80 >> (bit % 8))) {
			if (!allow_host_bits)
				return model_error_set(err, MODEL_E_INVALID,
				    field, "'%s' has host bits set", s);
			p.addr[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		}
	}
	*out = p;
	return 0;
}

void
model_prefix_format(const struct model_prefix *p, char *buf, size_t bufsz)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, a,
	    sizeof(a)) == NULL)
		(void)util_strcpy(a, sizeof(a), "?");
	(void)snprintf(buf, bufsz, "%s/%u", a, (unsigned)p->len);
}

bool
model_prefix_overlap(const struct model_prefix *a, const struct model_prefix *b)
{
	unsigned len;

	if (a->family != b->family)
		return false;
	len = a->len < b->len ? a->len : b->len;
	for (unsigned bit = 0; bit < len; bit++) {
		uint8_t m = (uint8_t)(0x80 >> (bit % 8));

		if ((a->addr[bit / 8] & m) != (b->addr[bit / 8] & m))
			return false;
	}
	return true;
}

uint64_t
model_pool_slots(const struct model_prefix *pool)
{
	if (pool->family != 4 || pool->len > 31)
		return 0;
	return 1ull << (31 - pool->len);
}

int
model_inner6(const struct model_prefix *pool4,
    const struct model_prefix *pool6, uint32_t inner, uint8_t out[16])
{
	uint32_t base;
	uint64_t lo = 0;

	if (pool4 == NULL || pool6 == NULL || pool4->family != 4 ||
	    pool6->family != 6 || pool6->len > 95)
		return -1;
	base = (uint32_t)pool4->addr[0] << 24 | (uint32_t)pool4->addr[1] << 16 |
	    (uint32_t)pool4->addr[2] << 8 | pool4->addr[3];
	if (inner < base || (pool4->len > 0 &&
	    (uint64_t)(inner - base) >> (32 - pool4->len) != 0))
		return -1;
	memcpy(out, pool6->addr, 16);
	for (int i = 8; i < 16; i++)
		lo = lo << 8 | out[i];
	/* At least 33 host bits: no carry into the prefix. */
	lo += inner - base;
	for (int i = 15; i >= 8; i--, lo >>= 8)
		out[i] = (uint8_t)lo;
	return 0;
}

/* By hand rather than snprintf: the compiler formats a million of these
 * when every edge's views are built. */
void
model_ipv4_format(uint32_t addr, char *buf, size_t bufsz)
{
	char tmp[16];
	size_t o = 0;

	for (int shift = 24; shift >= 0; shift -= 8) {
		unsigned b = (addr >> shift) & 0xff;

		if (b >= 100)
			tmp[o++] = (char)('0' + b / 100);
		if (b >= 10)
			tmp[o++] = (char)('0' + b / 10 % 10);
		tmp[o++] = (char)('0' + b % 10);
		if (shift > 0)
			tmp[o++] = '.';
	}
	tmp[o] = '\0';
	(void)util_strcpy(buf, bufsz, tmp);
}

bool
model_address_valid(const char *s)
{
	unsigned char b[16];

	if (s == NULL || strlen(s) > MODEL_ADDR_MAX)
		return false;
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

bool
model_address_equal(const char *a, const char *b)
{
	unsigned char x[16], y[16];

	memset(x, 0, sizeof(x));
	memset(y, 0, sizeof(y));
	if (inet_pton(AF_INET, a, x) == 1)
		return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1)
		return inet_pton(AF_INET6, b, y) == 1 &&
		    memcmp(x, y, 16) == 0;
	return false;
}

/* 4 or 6 for an IPv4 or IPv6 address in text form, else 0. */
static int
model_address_family(const char *s)
{
	unsigned char b[16];

	if (inet_pton(AF_INET, s, b) == 1)
		return 4;
	return inet_pton(AF_INET6, s, b) == 1 ? 6 : 0;
}

/* Address blocks with a reason, as prefixes in text form. */
struct model_special {
	const char *cidr;
	const char *why;
};

static const struct model_special model_special_blocks[] = {
	{ "0.0.0.0/8", "is in 'this network' (0.0.0.0/8)" },
	{ "127.0.0.0/8", "is loopback" },
	{ "169.254.0.0/16", "is link-local" },
	{ "224.0.0.0/4", "is multicast" },
	{ "240.0.0.0/4", "is reserved or broadcast (240.0.0.0/4)" },
	{ "::/128", "is the unspecified address" },
	{ "::1/128", "is loopback" },
	{ "::ffff:0:0/96", "is IPv4-mapped IPv6; use the IPv4 form" },
	{ "fe80::/10", "is link-local" },
	{ "ff00::/8", "is multicast" },
};

/* The reason of the first special block p overlaps, or NULL. */
static const char *
model_special_overlap(const struct model_prefix *p)
{
	struct model_prefix b;

	for (size_t i = 0; i < ARRAY_SIZE(model_special_blocks); i++) {
		memset(&b, 0, sizeof(b));
		if (model_prefix_parse(model_special_blocks[i].cidr, false, &b,
		    NULL, NULL) == 0 && model_prefix_overlap(p, &b))
			return model_special_blocks[i].why;
	}
	return NULL;
}

const char *
model_underlay_problem(const char *addr)
{
	struct model_prefix p;

	memset(&p, 0, sizeof(p));
	if (inet_pton(AF_INET, addr, p.addr) == 1) {
		p.family = 4;
		p.len = 32;
	} else if (inet_pton(AF_INET6, addr, p.addr) == 1) {
		p.family = 6;
		p.len = 128;
	} else {
		return "is not an IP address";
	}
	return model_special_overlap(&p);
}

int
model_lan_prefix_check(const struct model_prefix *p, const char *field,
    struct model_error *err)
{
	char buf[MODEL_CIDR_MAX + 1];
	const char *why;

	if (p->len == 0)
		return 0;
	if ((why = model_special_overlap(p)) != NULL) {
		model_prefix_format(p, buf, sizeof(buf));
		return model_error_set(err, MODEL_E_INVALID, field,
		    "LAN prefix %s covers an address that %s", buf, why);
	}
	return 0;
}

/* ---- names ---------------------------------------------------------- */

static bool
model_charset(const char *s, size_t max, const char *extra, bool empty_ok)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n > max || (n == 0 && !empty_ok))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (i > 0 && strchr(extra, c) != NULL)
			continue;
		return false;
	}
	return true;
}

bool
model_site_name_valid(const char *s)
{
	return model_charset(s, MODEL_NAME_MAX, "-", false);
}

bool
model_region_valid(const char *s)
{
	return model_charset(s, MODEL_REGION_MAX, "-", true);
}

bool
model_link_name_valid(const char *s)
{
	return model_charset(s, MODEL_LINK_NAME_MAX, "_-", false);
}

bool
model_token_name_valid(const char *s)
{
	return model_charset(s, MODEL_TOKEN_NAME_MAX, "_-", false);
}

bool
model_asn_private(uint32_t asn)
{
	return (asn >= 64512u && asn <= 65534u) ||
	    (asn >= 4200000000u && asn <= 4294967294u);
}

/* ---- defaults and validation ---------------------------------------- */

void
model_policy_default(struct model_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->topology = MODEL_TOPO_FULL_MESH;
	p->pairing = MODEL_PAIR_SAME;
	(void)model_prefix_parse(MODEL_POOL_DEFAULT, false, &p->pool, NULL,
	    NULL);
	p->encap = MODEL_ENCAP_GRE;
	p->vni_min = MODEL_VNI_MIN_DEFAULT;
	p->vni_max = MODEL_VNI_MAX_DEFAULT;
	p->asn_min = MODEL_ASN_MIN_DEFAULT;
	p->asn_max = MODEL_ASN_MAX_DEFAULT;
	p->bgp_bfd = true;
}

void
model_crypto_default(struct model_crypto *c)
{
	memset(c, 0, sizeof(*c));
	c->cipher = MODEL_CIPHER_AES_GCM_256;
	c->rekey_seconds = MODEL_REKEY_DEFAULT;
	c->replay_window = MODEL_REPLAY_DEFAULT;
}

int
model_link_validate(const struct model_link *l, struct model_error *err)
{
	if (!model_link_name_valid(l->name))
		return model_error_set(err, MODEL_E_INVALID, "name",
		    "link name must be 1-%d characters of [a-z0-9_-]",
		    MODEL_LINK_NAME_MAX);
	const char *why;

	if (!model_address_valid(l->address))
		return model_error_set(err, MODEL_E_INVALID, "address",
		    "link address is not an IP address");
	if ((why = model_underlay_problem(l->address)) != NULL)
		return model_error_set(err, MODEL_E_INVALID, "address",
		    "link address %s %s: no tunnel can use it", l->address,
		    why);
	if (l->public_address[0] != '\0' &&
	    !model_address_valid(l->public_address))
		return model_error_set(err, MODEL_E_INVALID, "public_address",
		    "public address is not an IP address");
	if (l->public_address[0] != '\0' &&
	    (why = model_underlay_problem(l->public_address)) != NULL)
		return model_error_set(err, MODEL_E_INVALID, "public_address",
		    "public address %s %s: no tunnel can use it",
		    l->public_address, why);
	/* The edge sends from address to peers that reach it at the
	 * public one: one family (no NAT64). */
	if (l->public_address[0] != '\0' &&
	    model_address_family(l->public_address) !=
	    model_address_family(l->address))
		return model_error_set(err, MODEL_E_INVALID, "public_address",
		    "public address %s and address %s are of different "
		    "families", l->public_address, l->address);
	return 0;
}

int
model_site_validate(const struct model_site *s, struct model_error *err)
{
	if (!model_site_name_valid(s->name))
		return model_error_set(err, MODEL_E_INVALID, "name",
		    "site name must be 1-%d characters of [a-z0-9-] "
		    "starting with a letter or digit", MODEL_NAME_MAX);
	if (!model_region_valid(s->region))
		return model_error_set(err, MODEL_E_INVALID, "region",
		    "region must be at most %d characters of [a-z0-9-]",
		    MODEL_REGION_MAX);
	if (s->role < MODEL_ROLE_HUB || s->role > MODEL_ROLE_EDGE)
		return model_error_set(err, MODEL_E_INVALID, "role",
		    "role must be hub, spoke or edge");
	if (s->internet_breakout && s->role != MODEL_ROLE_HUB)
		return model_error_set(err, MODEL_E_INVALID,
		    "internet_breakout", "only a hub may be an internet "
		    "breakout (hold a default route)");
	if (s->asn != 0 && !model_asn_private(s->asn))
		return model_error_set(err, MODEL_E_INVALID, "asn",
		    "ASN %u is not a private ASN", s->asn);
	if (s->backend < MODEL_BACKEND_ANY || s->backend > MODEL_BACKEND_NULL)
		return model_error_set(err, MODEL_E_INVALID, "backend",
		    "unknown overlay backend");
	if (s->n_links > MODEL_LINKS_MAX)
		return model_error_set(err, MODEL_E_INVALID, "links",
		    "at most %d links per site", MODEL_LINKS_MAX);
	for (size_t i = 0; i < s->n_links; i++) {
		struct model_error e;
		char f[sizeof(err->field)];

		if (model_link_validate(&s->links[i], &e) == -1) {
			(void)snprintf(f, sizeof(f), "links[%zu].%.20s", i % 100,
			    e.field);
			return model_error_set(err, e.code, f, "%s",
			    e.message);
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(s->links[i].name, s->links[j].name) == 0) {
				(void)snprintf(f, sizeof(f), "links[%zu].name",
				    i % 100);
				return model_error_set(err, MODEL_E_DUPLICATE,
				    f, "link '%s' appears twice",
				    s->links[i].name);
			}
		}
	}
	return 0;
}

int
model_policy_validate(const struct model_policy *p, struct model_error *err)
{
	if (p->topology < MODEL_TOPO_FULL_MESH ||
	    p->topology > MODEL_TOPO_REGIONAL)
		return model_error_set(err, MODEL_E_INVALID, "topology",
		    "topology must be full-mesh, hub-and-spoke or "
		    "regional-mesh");
	if (p->pairing < MODEL_PAIR_SAME || p->pairing > MODEL_PAIR_ANY)
		return model_error_set(err, MODEL_E_INVALID, "pairing",
		    "pairing must be same-colour, list or any");
	if (p->n_pairs > MODEL_PAIRS_MAX)
		return model_error_set(err, MODEL_E_INVALID, "pairs",
		    "at most %d colour pairs", MODEL_PAIRS_MAX);
	if (p->pairing == MODEL_PAIR_LIST && p->n_pairs == 0)
		return model_error_set(err, MODEL_E_INVALID, "pairs",
		    "pairing 'list' needs at least one colour pair");
	for (size_t i = 0; i < p->n_pairs; i++) {
		if (!model_link_name_valid(p->pairs[i].a) ||
		    !model_link_name_valid(p->pairs[i].b))
			return model_error_set(err, MODEL_E_INVALID, "pairs",
			    "colour pair %zu is not two link names", i);
	}
	if (model_pool_slots(&p->pool) == 0 || p->pool.len < 8)
		return model_error_set(err, MODEL_E_INVALID, "pool",
		    "tunnel pool must be an IPv4 prefix between /8 and /31");
	if (p->encap != MODEL_ENCAP_GRE && p->encap != MODEL_ENCAP_VXLAN)
		return model_error_set(err, MODEL_E_INVALID, "encap",
		    "encapsulation must be gre or vxlan");
	if (p->vni_min < 1 || p->vni_max > MODEL_VNI_MAX ||
	    p->vni_min > p->vni_max)
		return model_error_set(err, MODEL_E_INVALID, "vni",
		    "VNI range must lie within 1..%u", MODEL_VNI_MAX);
	if (!model_asn_private(p->asn_min) || !model_asn_private(p->asn_max) ||
	    p->asn_min > p->asn_max)
		return model_error_set(err, MODEL_E_INVALID, "asn_range",
		    "ASN range must start and end on private ASNs "
		    "(64512-65534, 4200000000-4294967294), first <= last");
	if (p->mtu != 0 && (p->mtu < 576 || p->mtu > 9000))
		return model_error_set(err, MODEL_E_INVALID, "mtu",
		    "MTU must be 0 (automatic) or 576..9000");
	if (p->bgp_hold_time != 0 &&
	    (p->bgp_hold_time < 3 || p->bgp_hold_time > 65535))
		return model_error_set(err, MODEL_E_INVALID, "bgp_hold_time",
		    "hold time must be 0 or 3..65535");
	if (p->bgp_keepalive > 65535 ||
	    (p->bgp_hold_time != 0 && p->bgp_keepalive >= p->bgp_hold_time))
		return model_error_set(err, MODEL_E_INVALID, "bgp_keepalive",
		    "keepalive must be below the hold time");
	return 0;
}

int
model_crypto_validate(const struct model_crypto *c, struct model_error *err)
{
	if (c->cipher != MODEL_CIPHER_AES_GCM_128 &&
	    c->cipher != MODEL_CIPHER_AES_GCM_256)
		return model_error_set(err, MODEL_E_INVALID, "cipher",
		    "cipher must be aes-gcm-128 or aes-gcm-256");
	if (c->rekey_seconds < 60 || c->rekey_seconds > 7 * 86400)
		return model_error_set(err, MODEL_E_INVALID, "rekey_seconds",
		    "rekey interval must be 60..604800 seconds");
	if (c->replay_window < 32 || c->replay_window > 65536)
		return model_error_set(err, MODEL_E_INVALID, "replay_window",
		    "replay window must be 32..65536 packets");
	/* Soft volume limits: at most half the SA's hard limit, which every
	 * edge derives from the cipher (proto/README.md, "SA lifetimes"), so
	 * a rekey asked for at the soft limit has as much room again. */
	if (c->rekey_bytes > MSG_SA_SOFT_BYTES_MAX)
		return model_error_set(err, MODEL_E_INVALID, "rekey_bytes",
		    "rekey_bytes must be 0 (none) or at most %llu (half the "
		    "SA's hard limit)", (unsigned long long)MSG_SA_SOFT_BYTES_MAX);
	if (c->rekey_packets > MSG_SA_SOFT_PACKETS_MAX)
		return model_error_set(err, MODEL_E_INVALID, "rekey_packets",
		    "rekey_packets must be 0 (none) or at most %llu (half the "
		    "SA's hard limit)",
		    (unsigned long long)MSG_SA_SOFT_PACKETS_MAX);
	return 0;
}

static int
model_link_cmp(const void *a, const void *b)
{
	const struct model_link *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void
model_site_sort_links(struct model_site *s)
{
	if (s->n_links > 1 && s->n_links <= MODEL_LINKS_MAX)
		qsort(s->links, s->n_links, sizeof(s->links[0]),
		    model_link_cmp);
}

int
model_site_find_link(const struct model_site *s, const char *name)
{
	for (size_t i = 0; i < s->n_links && i < MODEL_LINKS_MAX; i++)
		if (strcmp(s->links[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
model_link_family(const struct model_link *l)
{
	return model_address_family(l->address);
}

bool
model_links_pair_allowed(const struct model_policy *p,
    const struct model_link *a, const struct model_link *b)
{
	return model_link_family(a) == model_link_family(b) &&
	    model_policy_pair_allowed(p, a->name, b->name);
}

bool
model_policy_pair_allowed(const struct model_policy *p, const char *a,
    const char *b)
{
	switch (p->pairing) {
	case MODEL_PAIR_ANY:
		return true;
	case MODEL_PAIR_LIST:
		for (size_t i = 0; i < p->n_pairs && i < MODEL_PAIRS_MAX; i++) {
			const struct model_colour_pair *cp = &p->pairs[i];

			if ((strcmp(cp->a, a) == 0 && strcmp(cp->b, b) == 0) ||
			    (strcmp(cp->a, b) == 0 && strcmp(cp->b, a) == 0))
				return true;
		}
		return false;
	case MODEL_PAIR_SAME:
	default:
		return strcmp(a, b) == 0;
	}
}

void
model_edge_state_clear(struct model_edge_state *e)
{
	if (e == NULL)
		return;
	free(e->status);
	memset(e, 0, sizeof(*e));
}

void
model_audit_free_array(struct model_audit *a, size_t n)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(a[i].detail);
	free(a);
}
