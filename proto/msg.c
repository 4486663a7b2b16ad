/*
 * msg.c — helpers for the C structs of msg.h: addresses, ownership (free,
 * copy), validation against the .proto's limits, and applying a delta.
 *
 * Validation lives here rather than in pbconv.c so that producers can check
 * what they build with the same code that guards the receivers, and so that
 * the rules exist once: pbconv converts and then calls these.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "proto/fieldpath.h"
#include "proto/msg.h"

/* ------------------------------------------------------------------ */
/* Addresses */

static size_t
msg_addr_bits(int family)
{
	return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

int
msg_addr_parse(const char *s, struct msg_addr *out)
{
	struct msg_addr a;

	memset(&a, 0, sizeof(a));
	if (s == NULL)
		return -1;
	if (inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	else
		return -1;
	*out = a;
	return 0;
}

int
msg_addr_format(const struct msg_addr *a, char *buf, size_t len)
{
	if (len == 0)
		return -1;
	if (a->family == 0) {
		buf[0] = '\0';
		return 0;
	}
	if (a->family != AF_INET && a->family != AF_INET6)
		return -1;
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		return -1;
	return 0;
}

bool
msg_addr_equal(const struct msg_addr *a, const struct msg_addr *b)
{
	size_t n = msg_addr_bits(a->family) / 8;

	return a->family == b->family && memcmp(a->bytes, b->bytes, n) == 0;
}

/* True when every bit of a after the first len bits is zero. */
static bool
msg_host_bits_zero(const struct msg_addr *a, unsigned len)
{
	size_t bits = msg_addr_bits(a->family);

	for (size_t i = len; i < bits; i++)
		if (a->bytes[i / 8] & (0x80u >> (i % 8)))
			return false;
	return true;
}

int
msg_prefix_parse(const char *s, bool network, struct msg_prefix *out)
{
	char addr[MSG_ADDR_STRLEN];
	const char *slash;
	struct msg_prefix p;
	uint64_t len;
	size_t n;

	if (s == NULL || (slash = strchr(s, '/')) == NULL)
		return -1;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(addr))
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	memset(&p, 0, sizeof(p));
	if (msg_addr_parse(addr, &p.addr) == -1)
		return -1;
	if (util_parse_u64(slash + 1, 0, msg_addr_bits(p.addr.family),
	    &len) == -1)
		return -1;
	/* "10.0.0.0/024" would parse; insist on the canonical spelling. */
	if (slash[1] == '0' && slash[2] != '\0')
		return -1;
	p.len = (uint8_t)len;
	if (network && !msg_host_bits_zero(&p.addr, p.len))
		return -1;
	*out = p;
	return 0;
}

int
msg_prefix_format(const struct msg_prefix *p, char *buf, size_t len)
{
	char addr[MSG_ADDR_STRLEN];
	int n;

	if (p->addr.family == 0 ||
	    msg_addr_format(&p->addr, addr, sizeof(addr)) == -1)
		return -1;
	n = snprintf(buf, len, "%s/%u", addr, (unsigned)p->len);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Blobs */

int
msg_blob_set(struct msg_blob *b, const void *data, size_t len)
{
	uint8_t *p = NULL;

	if (len > 0) {
		if ((p = malloc(len)) == NULL)
			return -1;
		memcpy(p, data, len);
	}
	free(b->data);
	b->data = p;
	b->len = len;
	return 0;
}

void
msg_blob_free(struct msg_blob *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

/* ------------------------------------------------------------------ */
/* Enum names */

#define NAME_OF(table, v)                                                     \
	((size_t)(v) < ARRAY_SIZE(table) && (table)[(size_t)(v)] != NULL ?    \
	    (table)[(size_t)(v)] : "unspecified")

const char *
msg_encap_name(enum msg_encap e)
{
	static const char *const n[] = { NULL, "gre", "vxlan" };
	return NAME_OF(n, e);
}

const char *
msg_cipher_name(enum msg_cipher c)
{
	static const char *const n[] = { NULL, "aes-gcm-128", "aes-gcm-256" };
	return NAME_OF(n, c);
}

const char *
msg_role_name(enum msg_role r)
{
	static const char *const n[] = { NULL, "hub", "spoke", "edge" };
	return NAME_OF(n, r);
}

const char *
msg_backend_name(enum msg_backend b)
{
	static const char *const n[] = { NULL, "xfrm", "uesp", "null" };
	return NAME_OF(n, b);
}

const char *
msg_tunnel_state_name(enum msg_tunnel_state s)
{
	static const char *const n[] = { NULL, "down", "keying", "up",
		"failed" };
	return NAME_OF(n, s);
}

const char *
msg_direction_name(enum msg_direction d)
{
	static const char *const n[] = { NULL, "in", "out" };
	return NAME_OF(n, d);
}

const char *
msg_bgp_state_name(enum msg_bgp_state s)
{
	static const char *const n[] = { NULL, "idle", "connect", "active",
		"opensent", "openconfirm", "established" };
	return NAME_OF(n, s);
}

const char *
msg_rekey_step_name(enum msg_rekey_step s)
{
	static const char *const n[] = { NULL, "install-inbound",
		"switch-outbound", "retire" };
	return NAME_OF(n, s);
}

const char *
msg_rekey_reason_name(enum msg_rekey_reason r)
{
	static const char *const n[] = { NULL, "time", "volume", "operator",
		"peer-revoked", "key", "local-error" };
	return NAME_OF(n, r);
}

const char *
msg_rekey_request_reason_name(enum msg_rekey_request_reason r)
{
	static const char *const n[] = { NULL, "soft-bytes", "soft-packets",
		"local-error" };
	return NAME_OF(n, r);
}

const char *
msg_enroll_error_name(enum msg_enroll_error e)
{
	static const char *const n[] = { "ok", "token-unknown", "token-used",
		"token-expired", "csr-invalid", "site-revoked" };
	return (size_t)e < ARRAY_SIZE(n) ? n[e] : "unspecified";
}

/* ------------------------------------------------------------------ */
/* Free and copy */

void
msg_enroll_request_free(struct msg_enroll_request *m)
{
	if (m == NULL)
		return;
	msg_blob_free(&m->csr_der);
	memset(m, 0, sizeof(*m));
}

void
msg_renew_request_free(struct msg_renew_request *m)
{
	if (m == NULL)
		return;
	msg_blob_free(&m->csr_der);
	memset(m, 0, sizeof(*m));
}

void
msg_enroll_response_free(struct msg_enroll_response *m)
{
	if (m == NULL)
		return;
	msg_blob_free(&m->certificate_der);
	for (size_t i = 0; i < MSG_CA_CHAIN_MAX; i++)
		msg_blob_free(&m->ca_chain_der[i]);
	memset(m, 0, sizeof(*m));
}

void
msg_site_free(struct msg_site *m)
{
	if (m == NULL)
		return;
	free(m->lan_prefixes);
	memset(m, 0, sizeof(*m));
}

void
msg_peer_free(struct msg_peer *m)
{
	if (m == NULL)
		return;
	msg_blob_free(&m->certificate_der);
	free(m->allowed_prefixes);
	memset(m, 0, sizeof(*m));
}

void
msg_tunnel_free(struct msg_tunnel *m)
{
	if (m == NULL)
		return;
	msg_peer_free(&m->peer);
	memset(m, 0, sizeof(*m));
}

static void
msg_tunnels_free(struct msg_tunnel *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		msg_tunnel_free(&t[i]);
	free(t);
}

void
msg_intent_free(struct msg_intent *m)
{
	if (m == NULL)
		return;
	msg_site_free(&m->site);
	msg_tunnels_free(m->tunnels, m->n_tunnels);
	msg_blob_free(&m->ca_chain_der);
	memset(m, 0, sizeof(*m));
}

void
msg_intent_delta_free(struct msg_intent_delta *m)
{
	if (m == NULL)
		return;
	msg_site_free(&m->site);
	msg_tunnels_free(m->upsert, m->n_upsert);
	free(m->remove);
	memset(m, 0, sizeof(*m));
}

void
msg_controller_message_free(struct msg_controller_message *m)
{
	if (m == NULL)
		return;
	if (m->kind == MSG_CONTROLLER_SNAPSHOT)
		msg_intent_free(&m->u.snapshot);
	else if (m->kind == MSG_CONTROLLER_DELTA)
		msg_intent_delta_free(&m->u.delta);
	memset(m, 0, sizeof(*m));
}

void
msg_status_free(struct msg_status *m)
{
	if (m == NULL)
		return;
	free(m->tunnels);
	free(m->bgp);
	free(m->health);
	memset(m, 0, sizeof(*m));
}

void
msg_edge_message_free(struct msg_edge_message *m)
{
	if (m == NULL)
		return;
	if (m->kind == MSG_EDGE_STATUS)
		msg_status_free(&m->u.status);
	memset(m, 0, sizeof(*m));
}

int
msg_site_copy(struct msg_site *dst, const struct msg_site *src)
{
	struct msg_prefix *p = NULL;

	if (src->n_lan_prefixes > 0) {
		p = calloc(src->n_lan_prefixes, sizeof(*p));
		if (p == NULL) {
			memset(dst, 0, sizeof(*dst));
			return -1;
		}
		memcpy(p, src->lan_prefixes, src->n_lan_prefixes * sizeof(*p));
	}
	*dst = *src;
	dst->lan_prefixes = p;
	return 0;
}

int
msg_tunnel_copy(struct msg_tunnel *dst, const struct msg_tunnel *src)
{
	struct msg_prefix *a = NULL;
	size_t na = src->peer.n_allowed_prefixes;

	if (na > 0) {
		if ((a = calloc(na, sizeof(*a))) == NULL) {
			memset(dst, 0, sizeof(*dst));
			return -1;
		}
		memcpy(a, src->peer.allowed_prefixes, na * sizeof(*a));
	}
	*dst = *src;
	dst->peer.allowed_prefixes = a;
	dst->peer.certificate_der.data = NULL;
	dst->peer.certificate_der.len = 0;
	if (msg_blob_set(&dst->peer.certificate_der,
	    src->peer.certificate_der.data,
	    src->peer.certificate_der.len) == -1) {
		free(a);
		memset(dst, 0, sizeof(*dst));
		return -1;
	}
	return 0;
}

int
msg_intent_copy(struct msg_intent *dst, const struct msg_intent *src)
{
	struct msg_intent c;

	memset(&c, 0, sizeof(c));
	c.version = src->version;
	c.keepalive_seconds = src->keepalive_seconds;
	c.headless_grace_seconds = src->headless_grace_seconds;
	if (msg_site_copy(&c.site, &src->site) == -1)
		goto fail;
	if (msg_blob_set(&c.ca_chain_der, src->ca_chain_der.data,
	    src->ca_chain_der.len) == -1)
		goto fail;
	if (src->n_tunnels > 0) {
		/* Room to grow, as msg_intent_apply_delta() sizes it. */
		c.tunnels = calloc(util_size_class(src->n_tunnels),
		    sizeof(*c.tunnels));
		if (c.tunnels == NULL)
			goto fail;
		for (; c.n_tunnels < src->n_tunnels; c.n_tunnels++)
			if (msg_tunnel_copy(&c.tunnels[c.n_tunnels],
			    &src->tunnels[c.n_tunnels]) == -1)
				goto fail;
	}
	*dst = c;
	return 0;
fail:
	msg_intent_free(&c);
	memset(dst, 0, sizeof(*dst));
	return -1;
}

/* ------------------------------------------------------------------ */
/* Validation */

bool
msg_asn_is_private(uint32_t asn)
{
	return (asn >= 64512 && asn <= 65534) ||
	    (asn >= 4200000000u && asn <= 4294967294u);
}

uint16_t
msg_port_or_default(uint16_t port)
{
	return port == 0 ? MSG_DEFAULT_PORT : port;
}

uint32_t
msg_replay_window_or_default(uint32_t w)
{
	return w == 0 ? MSG_DEFAULT_REPLAY_WINDOW : w;
}

uint32_t
msg_rekey_seconds_or_default(uint32_t s)
{
	return s == 0 ? MSG_DEFAULT_REKEY_SECONDS : s;
}

void
msg_sa_hard_limits(const struct msg_crypto_profile *c, uint32_t grace_s,
    struct msg_sa_hard *out)
{
	out->seconds = (uint64_t)msg_rekey_seconds_or_default(c->rekey_seconds) +
	    (grace_s == 0 ? MSG_DEFAULT_GRACE_SECONDS : grace_s) +
	    MSG_SA_HARD_MARGIN;
	out->bytes = MSG_SA_HARD_BYTES;
	out->packets = MSG_SA_HARD_PACKETS;
}

/* A fixed array must hold a terminated string of at most max chars. */
static int
msg_check_len(const struct fieldpath *path, const char *s, size_t size,
    size_t min, size_t max, char *err, size_t errlen)
{
	size_t n = strnlen(s, size);

	if (n == size)
		return fieldpath_fail(err, errlen, "%s: not NUL-terminated",
		    FIELDPATH_STR(path));
	if (n < min || n > max)
		return fieldpath_fail(err, errlen, "%s: %zu chars, allowed %zu..%zu",
		    FIELDPATH_STR(path), n, min, max);
	return 0;
}

/* Names: [a-z0-9-], plus '_' when underscore. */
static int
msg_check_name(const struct fieldpath *path, const char *s, size_t size,
    size_t max, bool underscore, char *err, size_t errlen)
{
	if (msg_check_len(path, s, size, 1, max, err, errlen) == -1)
		return -1;
	for (const char *c = s; *c != '\0'; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		    *c == '-' || (underscore && *c == '_'))
			continue;
		return fieldpath_fail(err, errlen, "%s: character 0x%02x at %zu "
		    "not allowed (only %s)", FIELDPATH_STR(path),
		    (unsigned)(uint8_t)*c,
		    (size_t)(c - s), underscore ? "a-z 0-9 - _" : "a-z 0-9 -");
	}
	return 0;
}

/*
 * The code point of the UTF-8 sequence at s and its length (1..4), or 0
 * when the sequence is invalid (overlong, surrogate, beyond U+10FFFF,
 * truncated).  Stops at the terminating NUL, which is never a
 * continuation byte.
 */
static size_t
msg_utf8_next(const uint8_t *s, uint32_t *cp)
{
	uint32_t c;
	size_t n;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff))
	    || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/*
 * Text: valid UTF-8 (proto3 strings must be, protobuf-c does not check, and
 * the controller hands them to JSON) without control characters (C0, DEL,
 * C1), so that nothing from the wire can steer a terminal or split a log
 * line.
 */
static int
msg_check_text(const struct fieldpath *path, const char *s, size_t size,
    size_t min, size_t max, char *err, size_t errlen)
{
	const uint8_t *u = (const uint8_t *)s;

	if (msg_check_len(path, s, size, min, max, err, errlen) == -1)
		return -1;
	for (size_t i = 0; u[i] != '\0';) {
		uint32_t cp;
		size_t n = msg_utf8_next(u + i, &cp);

		if (n == 0)
			return fieldpath_fail(err, errlen, "%s: invalid UTF-8 at %zu",
			    FIELDPATH_STR(path), i);
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return fieldpath_fail(err, errlen, "%s: control character "
			    "0x%02x at %zu", FIELDPATH_STR(path), (unsigned)cp,
			    i);
		i += n;
	}
	return 0;
}

static int
msg_check_blob(const struct fieldpath *path, const struct msg_blob *b,
    size_t min, size_t max, char *err, size_t errlen)
{
	if (b->len > 0 && b->data == NULL)
		return fieldpath_fail(err, errlen, "%s: no data", FIELDPATH_STR(path));
	if (b->len < min || b->len > max)
		return fieldpath_fail(err, errlen, "%s: %zu bytes, allowed %zu..%zu",
		    FIELDPATH_STR(path), b->len, min, max);
	return 0;
}

static int
msg_check_addr(const struct fieldpath *path, const struct msg_addr *a, char *err,
    size_t errlen)
{
	if (a->family == 0)
		return fieldpath_fail(err, errlen, "%s: missing", FIELDPATH_STR(path));
	if (a->family != AF_INET && a->family != AF_INET6)
		return fieldpath_fail(err, errlen, "%s: unknown address family %d",
		    FIELDPATH_STR(path), a->family);
	return 0;
}

static int
msg_check_range(const struct fieldpath *path, uint64_t v, uint64_t min,
    uint64_t max, bool zero_ok, char *err, size_t errlen)
{
	if ((zero_ok && v == 0) || (v >= min && v <= max))
		return 0;
	if (zero_ok)
		return fieldpath_fail(err, errlen, "%s: %llu out of range 0 or "
		    "%llu..%llu", FIELDPATH_STR(path), (unsigned long long)v,
		    (unsigned long long)min, (unsigned long long)max);
	return fieldpath_fail(err, errlen, "%s: %llu out of range %llu..%llu",
	    FIELDPATH_STR(path), (unsigned long long)v, (unsigned long long)min,
	    (unsigned long long)max);
}

static int
msg_check_asn(const struct fieldpath *path, uint32_t asn, char *err,
    size_t errlen)
{
	if (msg_asn_is_private(asn))
		return 0;
	return fieldpath_fail(err, errlen, "%s: %u is not a private ASN "
	    "(64512..65534, 4200000000..4294967294)", FIELDPATH_STR(path), asn);
}

static int
msg_check_enum(const struct fieldpath *path, int v, int max, bool required,
    char *err, size_t errlen)
{
	if (v < 0 || v > max)
		return fieldpath_fail(err, errlen, "%s: unknown value %d",
		    FIELDPATH_STR(path), v);
	if (required && v == 0)
		return fieldpath_fail(err, errlen, "%s: not set", FIELDPATH_STR(path));
	return 0;
}

/*
 * Sort a copy of ids and report the first duplicate.  Returns 0, or -1
 * with err naming path and the id.
 */
static int
msg_check_unique(const struct fieldpath *path, const uint64_t *ids, size_t n,
    char *err, size_t errlen)
{
	uint64_t *s;
	int rc = 0;

	if (n < 2)
		return 0;
	if ((s = malloc(n * sizeof(*s))) == NULL)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(path));
	memcpy(s, ids, n * sizeof(*s));
	qsort(s, n, sizeof(*s), util_cmp_u64);
	for (size_t i = 1; i < n; i++) {
		if (s[i] == s[i - 1]) {
			rc = fieldpath_fail(err, errlen, "%s: id %llu appears more "
			    "than once", FIELDPATH_STR(path),
			    (unsigned long long)s[i]);
			break;
		}
	}
	free(s);
	return rc;
}

static int
msg_validate_peer_keys(const struct fieldpath *parent,
    const struct msg_peer_key *k,
    size_t n, size_t min, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];
	uint64_t epochs[MSG_PEER_KEYS_MAX];

	if (n < min || n > MSG_PEER_KEYS_MAX)
		return fieldpath_fail(err, errlen, "%s: %zu entries, allowed "
		    "%zu..%d", FIELDPATH_STR(fieldpath_child(p, parent, "keys")), n,
		    min, MSG_PEER_KEYS_MAX);
	for (size_t i = 0; i < n; i++) {
		fieldpath_idx(p, parent, "keys", i);
		if (k[i].epoch == 0)
			return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
			    FIELDPATH_STR(fieldpath_child(f, p, "epoch")));
		if (k[i].signature_len < 1 || k[i].signature_len > MSG_SIG_MAX)
			return fieldpath_fail(err, errlen, "%s: %zu bytes, allowed "
			    "1..%d", FIELDPATH_STR(fieldpath_child(f, p, "signature")),
			    k[i].signature_len, MSG_SIG_MAX);
		if (k[i].not_after == 0)
			return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
			    FIELDPATH_STR(fieldpath_child(f, p, "not_after")));
		epochs[i] = k[i].epoch;
	}
	return msg_check_unique(fieldpath_child(p, parent, "keys"), epochs, n, err,
	    errlen);
}

/* A repeated CIDR field: at most max entries, each a network. */
static int
msg_check_prefixes(const struct fieldpath *parent, const char *name,
    const struct msg_prefix *v, size_t n, size_t max, char *err,
    size_t errlen)
{
	struct fieldpath p[1];

	if (n > max)
		return fieldpath_fail(err, errlen, "%s: %zu entries, limit %zu",
		    FIELDPATH_STR(fieldpath_child(p, parent, name)), n, max);
	if (n > 0 && v == NULL)
		return fieldpath_fail(err, errlen, "%s: no data",
		    FIELDPATH_STR(fieldpath_child(p, parent, name)));
	for (size_t i = 0; i < n; i++) {
		const struct msg_prefix *x = &v[i];

		fieldpath_idx(p, parent, name, i);
		if (msg_check_addr(p, &x->addr, err, errlen) == -1)
			return -1;
		if (x->len > msg_addr_bits(x->addr.family))
			return fieldpath_fail(err, errlen, "%s: length %u too long",
			    FIELDPATH_STR(p), (unsigned)x->len);
		if (!msg_host_bits_zero(&x->addr, x->len))
			return fieldpath_fail(err, errlen, "%s: host bits set after "
			    "/%u", FIELDPATH_STR(p), (unsigned)x->len);
	}
	return 0;
}

static int
msg_validate_site_at(const struct fieldpath *parent, const struct msg_site *m,
    char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];

	if (m->id == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
		    FIELDPATH_STR(fieldpath_child(f, parent, "id")));
	if (msg_check_name(fieldpath_child(f, parent, "name"), m->name,
	    sizeof(m->name), MSG_NAME_MAX, false, err, errlen) == -1 ||
	    msg_check_asn(fieldpath_child(f, parent, "asn"), m->asn, err,
	    errlen) == -1 ||
	    msg_check_enum(fieldpath_child(f, parent, "role"), (int)m->role,
	    MSG_ROLE_EDGE, false, err, errlen) == -1 ||
	    msg_check_text(fieldpath_child(f, parent, "region"), m->region,
	    sizeof(m->region), 0, MSG_REGION_MAX, err, errlen) == -1)
		return -1;
	if (msg_check_prefixes(parent, "lan_prefixes", m->lan_prefixes,
	    m->n_lan_prefixes, MSG_PREFIXES_MAX, err, errlen) == -1)
		return -1;
	if (m->n_links > MSG_LINKS_MAX)
		return fieldpath_fail(err, errlen, "%s: %zu entries, limit %d",
		    FIELDPATH_STR(fieldpath_child(f, parent, "links")), m->n_links,
		    MSG_LINKS_MAX);
	for (size_t i = 0; i < m->n_links; i++) {
		const struct msg_wan_link *l = &m->links[i];

		fieldpath_idx(p, parent, "links", i);
		if (msg_check_name(fieldpath_child(f, p, "name"), l->name,
		    sizeof(l->name), MSG_LINK_NAME_MAX, true, err,
		    errlen) == -1 ||
		    msg_check_addr(fieldpath_child(f, p, "address"), &l->address, err,
		    errlen) == -1)
			return -1;
		if (l->public_address.family != 0 &&
		    msg_check_addr(fieldpath_child(f, p, "public_address"),
		    &l->public_address, err, errlen) == -1)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->links[j].name, l->name) == 0)
				return fieldpath_fail(err, errlen, "%s: \"%s\" "
				    "already used by links[%zu]",
				    FIELDPATH_STR(fieldpath_child(f, p, "name")),
				    l->name, j);
	}
	return 0;
}

int
msg_validate_site(const struct msg_site *m, char *err, size_t errlen)
{
	return msg_validate_site_at(NULL, m, err, errlen);
}

/* An SaKeyRef: spi 0 = nothing else set; key epochs both 0 or both > 0. */
static int
msg_check_sa_ref(const struct fieldpath *path, const struct msg_sa_key_ref *r,
    char *err, size_t errlen)
{
	struct fieldpath f[1];

	if (msg_check_range(fieldpath_child(f, path, "spi"), r->spi,
	    MSG_SPI_MIN, UINT32_MAX, true, err, errlen) == -1)
		return -1;
	if (r->spi == 0) {
		if (r->sa_epoch != 0 || r->sender_key_epoch != 0 ||
		    r->receiver_key_epoch != 0)
			return fieldpath_fail(err, errlen, "%s: epochs set "
			    "without an spi", FIELDPATH_STR(path));
		return 0;
	}
	if (r->sa_epoch == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0 when spi "
		    "is set", FIELDPATH_STR(fieldpath_child(f, path,
		    "sa_epoch")));
	if ((r->sender_key_epoch == 0) != (r->receiver_key_epoch == 0))
		return fieldpath_fail(err, errlen, "%s: sender_key_epoch and "
		    "receiver_key_epoch must both be 0 or both > 0",
		    FIELDPATH_STR(path));
	return 0;
}

static int
msg_validate_tunnel_at(const struct fieldpath *parent,
    const struct msg_tunnel *m, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];
	const struct msg_crypto_profile *c = &m->crypto;
	const struct msg_bgp_neighbor *b = &m->bgp;

	if (m->id == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
		    FIELDPATH_STR(fieldpath_child(f, parent, "id")));
	if (msg_check_name(fieldpath_child(f, parent, "local_link"), m->local_link,
	    sizeof(m->local_link), MSG_LINK_NAME_MAX, true, err,
	    errlen) == -1 ||
	    msg_check_name(fieldpath_child(f, parent, "remote_link"), m->remote_link,
	    sizeof(m->remote_link), MSG_LINK_NAME_MAX, true, err,
	    errlen) == -1 ||
	    msg_check_addr(fieldpath_child(f, parent, "remote_address"),
	    &m->remote_address, err, errlen) == -1 ||
	    msg_check_enum(fieldpath_child(f, parent, "encap"), (int)m->encap,
	    MSG_ENCAP_VXLAN, true, err, errlen) == -1)
		return -1;
	if (m->encap == MSG_ENCAP_VXLAN) {
		if (msg_check_range(fieldpath_child(f, parent, "vni"), m->vni, 1,
		    MSG_VNI_MAX, false, err, errlen) == -1)
			return -1;
	} else if (m->vni != 0) {
		return fieldpath_fail(err, errlen, "%s: %u set but encap is gre",
		    FIELDPATH_STR(fieldpath_child(f, parent, "vni")), m->vni);
	}
	fieldpath_child(f, parent, "inner_local");
	if (m->inner_local.addr.family != AF_INET)
		return fieldpath_fail(err, errlen, "%s: must be an IPv4 address/31",
		    FIELDPATH_STR(f));
	if (m->inner_local.len != 31)
		return fieldpath_fail(err, errlen, "%s: length %u, must be 31",
		    FIELDPATH_STR(f), (unsigned)m->inner_local.len);
	fieldpath_child(f, parent, "inner_remote");
	if (m->inner_remote.family != AF_INET)
		return fieldpath_fail(err, errlen, "%s: must be an IPv4 address",
		    FIELDPATH_STR(f));
	if (memcmp(m->inner_remote.bytes, m->inner_local.addr.bytes, 3) != 0 ||
	    (m->inner_remote.bytes[3] ^ m->inner_local.addr.bytes[3]) != 1)
		return fieldpath_fail(err, errlen, "%s: not the other address of "
		    "inner_local's /31", FIELDPATH_STR(f));
	if (msg_check_range(fieldpath_child(f, parent, "mtu"), m->mtu, MSG_MTU_MIN,
	    MSG_MTU_MAX, true, err, errlen) == -1)
		return -1;

	fieldpath_child(p, parent, "crypto");
	if (msg_check_enum(fieldpath_child(f, p, "cipher"), (int)c->cipher,
	    MSG_CIPHER_AES_GCM_256, true, err, errlen) == -1)
		return -1;
	if (!c->esn)
		return fieldpath_fail(err, errlen, "%s: must be true in v1",
		    FIELDPATH_STR(fieldpath_child(f, p, "esn")));
	if (msg_check_range(fieldpath_child(f, p, "replay_window"), c->replay_window,
	    MSG_REPLAY_MIN, MSG_REPLAY_MAX, true, err, errlen) == -1 ||
	    msg_check_range(fieldpath_child(f, p, "rekey_seconds"), c->rekey_seconds,
	    MSG_REKEY_SECONDS_MIN, MSG_REKEY_SECONDS_MAX, true, err,
	    errlen) == -1 ||
	    msg_check_range(fieldpath_child(f, p, "rekey_bytes"), c->rekey_bytes,
	    0, MSG_SA_SOFT_BYTES_MAX, true, err, errlen) == -1 ||
	    msg_check_range(fieldpath_child(f, p, "rekey_packets"),
	    c->rekey_packets, 0, MSG_SA_SOFT_PACKETS_MAX, true, err,
	    errlen) == -1)
		return -1;

	fieldpath_child(p, parent, "peer");
	if (m->peer.site_id == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
		    FIELDPATH_STR(fieldpath_child(f, p, "site_id")));
	if (msg_check_name(fieldpath_child(f, p, "name"), m->peer.name,
	    sizeof(m->peer.name), MSG_NAME_MAX, false, err, errlen) == -1 ||
	    msg_check_blob(fieldpath_child(f, p, "certificate_der"),
	    &m->peer.certificate_der, 0, MSG_DER_MAX, err, errlen) == -1 ||
	    msg_validate_peer_keys(p, m->peer.keys, m->peer.n_keys, 0, err,
	    errlen) == -1 ||
	    msg_check_prefixes(p, "allowed_prefixes", m->peer.allowed_prefixes,
	    m->peer.n_allowed_prefixes, MSG_ALLOWED_PREFIXES_MAX, err,
	    errlen) == -1)
		return -1;

	fieldpath_child(p, parent, "bgp");
	if (msg_check_addr(fieldpath_child(f, p, "address"), &b->address, err,
	    errlen) == -1)
		return -1;
	if (!msg_addr_equal(&b->address, &m->inner_remote))
		return fieldpath_fail(err, errlen, "%s: must equal inner_remote",
		    FIELDPATH_STR(f));
	if (msg_check_asn(fieldpath_child(f, p, "remote_asn"), b->remote_asn, err,
	    errlen) == -1 ||
	    msg_check_range(fieldpath_child(f, p, "hold_time"), b->hold_time, 3,
	    65535, true, err, errlen) == -1 ||
	    msg_check_range(fieldpath_child(f, p, "keepalive"), b->keepalive, 1,
	    21845, true, err, errlen) == -1)
		return -1;

	if (msg_check_sa_ref(fieldpath_child(f, parent, "sa_in"), &m->sa_in,
	    err, errlen) == -1 ||
	    msg_check_sa_ref(fieldpath_child(f, parent, "sa_out"), &m->sa_out,
	    err, errlen) == -1)
		return -1;
	return 0;
}

int
msg_validate_tunnel(const struct msg_tunnel *m, char *err, size_t errlen)
{
	return msg_validate_tunnel_at(NULL, m, err, errlen);
}

static bool
msg_site_has_link(const struct msg_site *s, const char *name)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (strcmp(s->links[i].name, name) == 0)
			return true;
	return false;
}

/* Tunnels: count, each one, unique ids, and local links of site. */
static int
msg_validate_tunnels(const struct fieldpath *parent, const char *name,
    const struct msg_tunnel *t, size_t n, const struct msg_site *site,
    char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];
	uint64_t *ids;
	int rc;

	if (n > MSG_LIST_MAX)
		return fieldpath_fail(err, errlen, "%s: %zu entries, limit %d",
		    FIELDPATH_STR(fieldpath_child(p, parent, name)), n, MSG_LIST_MAX);
	if (n > 0 && t == NULL)
		return fieldpath_fail(err, errlen, "%s: no data",
		    FIELDPATH_STR(fieldpath_child(p, parent, name)));
	for (size_t i = 0; i < n; i++) {
		fieldpath_idx(p, parent, name, i);
		if (msg_validate_tunnel_at(p, &t[i], err, errlen) == -1)
			return -1;
		if (site != NULL && !msg_site_has_link(site, t[i].local_link))
			return fieldpath_fail(err, errlen, "%s: \"%s\" is not a link "
			    "of the site", FIELDPATH_STR(fieldpath_child(f, p,
			    "local_link")), t[i].local_link);
	}
	if (n < 2)
		return 0;
	if ((ids = malloc(n * sizeof(*ids))) == NULL)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(fieldpath_child(p, parent, name)));
	for (size_t i = 0; i < n; i++)
		ids[i] = t[i].id;
	rc = msg_check_unique(fieldpath_child(p, parent, name), ids, n, err, errlen);
	free(ids);
	return rc;
}

static int
msg_validate_intent_at(const struct fieldpath *parent,
    const struct msg_intent *m, char *err, size_t errlen)
{
	struct fieldpath p[1];

	if (m->version == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
		    FIELDPATH_STR(fieldpath_child(p, parent, "version")));
	if (msg_validate_site_at(fieldpath_child(p, parent, "site"), &m->site, err,
	    errlen) == -1 ||
	    msg_validate_tunnels(parent, "tunnels", m->tunnels, m->n_tunnels,
	    &m->site, err, errlen) == -1 ||
	    msg_check_blob(fieldpath_child(p, parent, "ca_chain_der"),
	    &m->ca_chain_der, 0, MSG_INTENT_CA_MAX, err, errlen) == -1 ||
	    msg_check_range(fieldpath_child(p, parent, "keepalive_seconds"),
	    m->keepalive_seconds, 1, MSG_KEEPALIVE_MAX, true, err,
	    errlen) == -1 ||
	    msg_check_range(fieldpath_child(p, parent, "headless_grace_seconds"),
	    m->headless_grace_seconds, MSG_GRACE_MIN, MSG_GRACE_MAX, true, err,
	    errlen) == -1)
		return -1;
	return 0;
}

int
msg_validate_intent(const struct msg_intent *m, char *err, size_t errlen)
{
	return msg_validate_intent_at(NULL, m, err, errlen);
}

static int
msg_validate_delta_at(const struct fieldpath *parent,
    const struct msg_intent_delta *m, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];
	uint64_t *ids;
	size_t n;
	int rc;

	if (m->from_version == 0)
		return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
		    FIELDPATH_STR(fieldpath_child(p, parent, "from_version")));
	if (m->version <= m->from_version)
		return fieldpath_fail(err, errlen, "%s: %llu must be > from_version "
		    "%llu", FIELDPATH_STR(fieldpath_child(p, parent, "version")),
		    (unsigned long long)m->version,
		    (unsigned long long)m->from_version);
	if (m->has_site && msg_validate_site_at(fieldpath_child(p, parent, "site"),
	    &m->site, err, errlen) == -1)
		return -1;
	if (msg_validate_tunnels(parent, "upsert", m->upsert, m->n_upsert,
	    m->has_site ? &m->site : NULL, err, errlen) == -1)
		return -1;
	fieldpath_child(p, parent, "remove");
	if (m->n_remove > MSG_LIST_MAX)
		return fieldpath_fail(err, errlen, "%s: %zu entries, limit %d",
		    FIELDPATH_STR(p), m->n_remove, MSG_LIST_MAX);
	if (m->n_remove > 0 && m->remove == NULL)
		return fieldpath_fail(err, errlen, "%s: no data", FIELDPATH_STR(p));
	for (size_t i = 0; i < m->n_remove; i++)
		if (m->remove[i] == 0)
			return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
			    FIELDPATH_STR(fieldpath_idx(f, parent, "remove", i)));
	/* Unique over remove ∪ upsert: catches both kinds of repeat. */
	n = m->n_remove + m->n_upsert;
	if (n < 2)
		return 0;
	if ((ids = malloc(n * sizeof(*ids))) == NULL)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(p));
	for (size_t i = 0; i < m->n_remove; i++)
		ids[i] = m->remove[i];
	for (size_t i = 0; i < m->n_upsert; i++)
		ids[m->n_remove + i] = m->upsert[i].id;
	rc = msg_check_unique(p, ids, n, err, errlen);
	free(ids);
	return rc;
}

int
msg_validate_intent_delta(const struct msg_intent_delta *m, char *err,
    size_t errlen)
{
	return msg_validate_delta_at(NULL, m, err, errlen);
}

int
msg_validate_controller_message(const struct msg_controller_message *m,
    char *err, size_t errlen)
{
	struct fieldpath f[1];

	switch (m->kind) {
	case MSG_CONTROLLER_SNAPSHOT:
		return msg_validate_intent_at(FIELDPATH_ROOT("snapshot"),
		    &m->u.snapshot, err, errlen);
	case MSG_CONTROLLER_DELTA:
		return msg_validate_delta_at(FIELDPATH_ROOT("delta"), &m->u.delta,
		    err, errlen);
	case MSG_CONTROLLER_REKEY: {
		const struct msg_rekey_order *r = &m->u.rekey;

		if (r->tunnel_id == 0)
			return fieldpath_fail(err, errlen,
			    "rekey.tunnel_id: 0 must be > 0");
		if (r->epoch == 0)
			return fieldpath_fail(err, errlen,
			    "rekey.epoch: 0 must be > 0");
		if (msg_check_enum(FIELDPATH_ROOT("rekey.step"), (int)r->step,
		    MSG_REKEY_STEP_RETIRE, true, err, errlen) == -1 ||
		    msg_check_enum(FIELDPATH_ROOT("rekey.reason"), (int)r->reason,
		    MSG_REKEY_REASON_LOCAL_ERROR, false, err, errlen) == -1 ||
		    msg_check_range(FIELDPATH_ROOT("rekey.spi"), r->spi, MSG_SPI_MIN,
		    UINT32_MAX, false, err, errlen) == -1 ||
		    msg_check_range(FIELDPATH_ROOT("rekey.drain_seconds"),
		    r->drain_seconds, 0,
		    MSG_DRAIN_MAX, false, err, errlen) == -1)
			return -1;
		if (r->step == MSG_REKEY_STEP_RETIRE) {
			if (r->sender_key_epoch != 0 ||
			    r->receiver_key_epoch != 0)
				return fieldpath_fail(err, errlen,
				    "rekey.sender_key_epoch: must be 0 in "
				    "RETIRE");
			return 0;
		}
		if ((r->sender_key_epoch == 0) != (r->receiver_key_epoch == 0))
			return fieldpath_fail(err, errlen, "rekey: "
			    "sender_key_epoch and receiver_key_epoch must both "
			    "be 0 or both > 0");
		return 0;
	}
	case MSG_CONTROLLER_KEEPALIVE:
		return 0;
	case MSG_CONTROLLER_BACKOFF:
		if (msg_check_range(FIELDPATH_ROOT("backoff.retry_after_seconds"),
		    m->u.backoff.retry_after_seconds, 0, MSG_BACKOFF_MAX,
		    false, err, errlen) == -1)
			return -1;
		return msg_check_text(FIELDPATH_ROOT("backoff.reason"),
		    m->u.backoff.reason,
		    sizeof(m->u.backoff.reason), 0, MSG_BACKOFF_REASON_MAX,
		    err, errlen);
	case MSG_CONTROLLER_PEER_KEYS:
		if (m->u.peer_keys.peer_site_id == 0)
			return fieldpath_fail(err, errlen,
			    "peer_keys.peer_site_id: 0 must be > 0");
		return msg_validate_peer_keys(fieldpath_child(f, NULL, "peer_keys"),
		    m->u.peer_keys.keys, m->u.peer_keys.n_keys, 1, err, errlen);
	default:
		return fieldpath_fail(err, errlen, "body: not set");
	}
}

int
msg_validate_enroll_request(const struct msg_enroll_request *m, char *err,
    size_t errlen)
{
	if (msg_check_len(FIELDPATH_ROOT("token"), m->token, sizeof(m->token), 1,
	    MSG_TOKEN_MAX, err, errlen) == -1)
		return -1;
	for (const char *c = m->token; *c != '\0'; c++)
		if (*c < 0x21 || *c > 0x7e)
			return fieldpath_fail(err, errlen, "token: character at %zu "
			    "not printable ASCII", (size_t)(c - m->token));
	if (msg_check_blob(FIELDPATH_ROOT("csr_der"), &m->csr_der, 1, MSG_DER_MAX,
	    err, errlen) == -1)
		return -1;
	return msg_check_text(FIELDPATH_ROOT("software_version"), m->software_version,
	    sizeof(m->software_version), 0, MSG_VERSION_STR_MAX, err, errlen);
}

int
msg_validate_renew_request(const struct msg_renew_request *m, char *err,
    size_t errlen)
{
	if (msg_check_blob(FIELDPATH_ROOT("csr_der"), &m->csr_der, 1, MSG_DER_MAX,
	    err, errlen) == -1)
		return -1;
	return msg_check_text(FIELDPATH_ROOT("software_version"), m->software_version,
	    sizeof(m->software_version), 0, MSG_VERSION_STR_MAX, err, errlen);
}

int
msg_validate_enroll_response(const struct msg_enroll_response *m, char *err,
    size_t errlen)
{
	struct fieldpath p[1];
	bool ok = m->error == MSG_ENROLL_ERROR_UNSPECIFIED;

	if (msg_check_enum(FIELDPATH_ROOT("error"), (int)m->error,
	    MSG_ENROLL_ERROR_SITE_REVOKED, false, err, errlen) == -1 ||
	    msg_check_text(FIELDPATH_ROOT("error_message"), m->error_message,
	    sizeof(m->error_message), 0, MSG_ERROR_MAX, err, errlen) == -1)
		return -1;
	if (ok && m->site_id == 0)
		return fieldpath_fail(err, errlen, "site_id: 0 must be > 0");
	if (msg_check_blob(FIELDPATH_ROOT("certificate_der"), &m->certificate_der,
	    ok ? 1 : 0, MSG_DER_MAX, err, errlen) == -1)
		return -1;
	if (m->n_ca_chain > MSG_CA_CHAIN_MAX || (ok && m->n_ca_chain == 0))
		return fieldpath_fail(err, errlen, "ca_chain_der: %zu entries, "
		    "allowed %d..%d", m->n_ca_chain, ok ? 1 : 0,
		    MSG_CA_CHAIN_MAX);
	for (size_t i = 0; i < m->n_ca_chain; i++)
		if (msg_check_blob(fieldpath_idx(p, NULL, "ca_chain_der", i),
		    &m->ca_chain_der[i], 1, MSG_DER_MAX, err, errlen) == -1)
			return -1;
	return msg_check_text(FIELDPATH_ROOT("controller_name"), m->controller_name,
	    sizeof(m->controller_name), ok ? 1 : 0, MSG_CN_MAX, err, errlen);
}

static int
msg_validate_status(const struct msg_status *m, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1], s[1];
	uint64_t *ids;
	int rc;

	if (m->n_tunnels > MSG_LIST_MAX || m->n_bgp > MSG_LIST_MAX ||
	    m->n_health > MSG_LIST_MAX)
		return fieldpath_fail(err, errlen, "status.%s: more than %d entries",
		    m->n_tunnels > MSG_LIST_MAX ? "tunnels" :
		    m->n_bgp > MSG_LIST_MAX ? "bgp" : "health", MSG_LIST_MAX);
	if ((m->n_tunnels > 0 && m->tunnels == NULL) ||
	    (m->n_bgp > 0 && m->bgp == NULL) ||
	    (m->n_health > 0 && m->health == NULL))
		return fieldpath_fail(err, errlen, "status: list without data");
	for (size_t i = 0; i < m->n_tunnels; i++) {
		const struct msg_tunnel_status *t = &m->tunnels[i];

		fieldpath_idx(p, FIELDPATH_ROOT("status"), "tunnels", i);
		if (t->tunnel_id == 0)
			return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
			    FIELDPATH_STR(fieldpath_child(f, p, "tunnel_id")));
		if (msg_check_enum(fieldpath_child(f, p, "state"), (int)t->state,
		    MSG_TUNNEL_STATE_FAILED, false, err, errlen) == -1 ||
		    msg_check_text(fieldpath_child(f, p, "error"), t->error,
		    sizeof(t->error), 0, MSG_ERROR_MAX, err, errlen) == -1)
			return -1;
		if (t->n_sas > MSG_SAS_MAX)
			return fieldpath_fail(err, errlen, "%s: %zu entries, limit "
			    "%d", FIELDPATH_STR(fieldpath_child(f, p, "sas")), t->n_sas,
			    MSG_SAS_MAX);
		for (size_t j = 0; j < t->n_sas; j++) {
			fieldpath_idx(f, p, "sas", j);
			if (msg_check_range(fieldpath_child(s, f, "spi"),
			    t->sas[j].spi, MSG_SPI_MIN, UINT32_MAX, false, err,
			    errlen) == -1 ||
			    msg_check_enum(fieldpath_child(s, f, "direction"),
			    (int)t->sas[j].direction, MSG_DIRECTION_OUT, false,
			    err, errlen) == -1)
				return -1;
		}
	}
	for (size_t i = 0; i < m->n_bgp; i++) {
		fieldpath_idx(p, FIELDPATH_ROOT("status"), "bgp", i);
		if (msg_check_addr(fieldpath_child(f, p, "address"),
		    &m->bgp[i].address, err, errlen) == -1 ||
		    msg_check_enum(fieldpath_child(f, p, "state"),
		    (int)m->bgp[i].state, MSG_BGP_STATE_ESTABLISHED, false,
		    err, errlen) == -1)
			return -1;
	}
	for (size_t i = 0; i < m->n_health; i++) {
		fieldpath_idx(p, FIELDPATH_ROOT("status"), "health", i);
		if (m->health[i].tunnel_id == 0)
			return fieldpath_fail(err, errlen, "%s: 0 must be > 0",
			    FIELDPATH_STR(fieldpath_child(f, p, "tunnel_id")));
		if (msg_check_range(fieldpath_child(f, p, "loss_permille"),
		    m->health[i].loss_permille, 0, 1000, false, err,
		    errlen) == -1)
			return -1;
	}
	if (m->n_tunnels < 2)
		return 0;
	if ((ids = malloc(m->n_tunnels * sizeof(*ids))) == NULL)
		return fieldpath_fail(err, errlen, "status.tunnels: out of memory");
	for (size_t i = 0; i < m->n_tunnels; i++)
		ids[i] = m->tunnels[i].tunnel_id;
	rc = msg_check_unique(FIELDPATH_ROOT("status.tunnels"), ids, m->n_tunnels,
	    err, errlen);
	free(ids);
	return rc;
}

static int
msg_validate_ack(const struct msg_ack *m, char *err, size_t errlen)
{
	if (msg_check_text(FIELDPATH_ROOT("ack.reason"), m->reason, sizeof(m->reason),
	    0, MSG_REASON_MAX, err, errlen) == -1)
		return -1;
	if (m->rekey_tunnel_id != 0) {
		if (m->rekey_epoch == 0)
			return fieldpath_fail(err, errlen, "ack.rekey_epoch: 0 must "
			    "be > 0 in a rekey ack");
		return msg_check_enum(FIELDPATH_ROOT("ack.rekey_step"),
		    (int)m->rekey_step,
		    MSG_REKEY_STEP_RETIRE, true, err, errlen);
	}
	if (m->rekey_epoch != 0 || m->rekey_step != MSG_REKEY_STEP_UNSPECIFIED)
		return fieldpath_fail(err, errlen, "ack.rekey_tunnel_id: 0 but "
		    "rekey_epoch or rekey_step set");
	if (m->version == 0)
		return fieldpath_fail(err, errlen, "ack.version: 0 must be > 0");
	if (m->ok && !m->has_convergence_hash)
		return fieldpath_fail(err, errlen, "ack.convergence_hash: missing "
		    "in a successful intent ack");
	return 0;
}

int
msg_validate_edge_message(const struct msg_edge_message *m, char *err,
    size_t errlen)
{
	switch (m->kind) {
	case MSG_EDGE_HELLO: {
		const struct msg_hello *h = &m->u.hello;

		if (h->site_id == 0)
			return fieldpath_fail(err, errlen,
			    "hello.site_id: 0 must be > 0");
		if (h->has_convergence_hash != (h->applied_version != 0))
			return fieldpath_fail(err, errlen, "hello.convergence_hash: "
			    "must be set exactly when applied_version > 0");
		if (msg_check_text(FIELDPATH_ROOT("hello.software_version"),
		    h->software_version, sizeof(h->software_version), 0,
		    MSG_VERSION_STR_MAX, err, errlen) == -1)
			return -1;
		return msg_check_enum(FIELDPATH_ROOT("hello.backend"),
		    (int)h->backend, MSG_BACKEND_NULL, false, err, errlen);
	}
	case MSG_EDGE_STATUS:
		return msg_validate_status(&m->u.status, err, errlen);
	case MSG_EDGE_ACK:
		return msg_validate_ack(&m->u.ack, err, errlen);
	case MSG_EDGE_KEY:
		if (m->u.key.epoch == 0)
			return fieldpath_fail(err, errlen,
			    "key.epoch: 0 must be > 0");
		if (m->u.key.signature_len < 1 ||
		    m->u.key.signature_len > MSG_SIG_MAX)
			return fieldpath_fail(err, errlen,
			    "key.signature: %zu bytes, "
			    "allowed 1..%d", m->u.key.signature_len,
			    MSG_SIG_MAX);
		if (m->u.key.not_after == 0)
			return fieldpath_fail(err, errlen,
			    "key.not_after: 0 must be > 0");
		return 0;
	case MSG_EDGE_REKEY_REQUEST: {
		const struct msg_rekey_request *q = &m->u.rekey_request;

		if (q->tunnel_id == 0)
			return fieldpath_fail(err, errlen,
			    "rekey_request.tunnel_id: 0 must be > 0");
		if (msg_check_enum(FIELDPATH_ROOT("rekey_request.direction"),
		    (int)q->direction, MSG_DIRECTION_OUT, true, err,
		    errlen) == -1)
			return -1;
		return msg_check_enum(FIELDPATH_ROOT("rekey_request.reason"),
		    (int)q->reason, MSG_REKEY_REQUEST_REASON_LOCAL_ERROR, true,
		    err, errlen);
	}
	default:
		return fieldpath_fail(err, errlen, "body: not set");
	}
}

/* ------------------------------------------------------------------ */
/* Deltas */

const struct msg_tunnel *
msg_intent_find_tunnel(const struct msg_intent *m, uint64_t id)
{
	for (size_t i = 0; i < m->n_tunnels; i++)
		if (m->tunnels[i].id == id)
			return &m->tunnels[i];
	return NULL;
}

struct msg_idx {
	uint64_t id;
	size_t pos;
};

static int
msg_cmp_idx(const void *a, const void *b)
{
	const struct msg_idx *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct msg_idx *
msg_idx_find(struct msg_idx *idx, size_t n, uint64_t id)
{
	struct msg_idx key = { .id = id };

	if (n == 0)
		return NULL;
	return bsearch(&key, idx, n, sizeof(*idx), msg_cmp_idx);
}

/* One id a delta names: which list it is from, and where the intent holds
 * it. */
struct msg_change {
	uint64_t id;
	size_t upsert;		/* index in d->upsert; SIZE_MAX for a remove */
	size_t pos;		/* index in intent->tunnels; SIZE_MAX if absent */
};

static int
msg_cmp_change(const void *a, const void *b)
{
	const struct msg_change *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct msg_change *
msg_change_find(struct msg_change *ch, size_t n, uint64_t id)
{
	struct msg_change key = { .id = id };

	if (n == 0)
		return NULL;
	return bsearch(&key, ch, n, sizeof(*ch), msg_cmp_change);
}

static int
msg_cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Edits the tunnel array in place rather than building a new one: an edge
 * of a 1,000-site full mesh holds ~1 MiB of tunnels, and a fresh copy per
 * delta (times every simulated edge of a load test, or every delta of a
 * busy agent) was mostly page faults.  So every check and every allocation
 * that can fail comes first — the delta's ids sorted (O(changes)), copies of
 * the upserted tunnels and of the site, the positions of removed tunnels,
 * and last a realloc of the array to its final size (which keeps the old
 * contents valid) — and only then the array is changed: upserted tunnels
 * replaced where they are, removed ones compacted out with one memmove per
 * run, new ones appended.  Cost: O(n log changes) lookups, one O(n) move.
 * Sizes are rounded with util_size_class(): the capacity is not stored, and
 * a realloc by one tunnel per delta would otherwise move (copy into fresh,
 * page-faulting memory) the whole array nearly every time.
 */
int
msg_intent_apply_delta(struct msg_intent *intent,
    const struct msg_intent_delta *d, char *err, size_t errlen)
{
	const size_t NONE = SIZE_MAX;
	struct msg_change *ch = NULL, *c;
	struct msg_tunnel *up = NULL, *t;
	struct msg_site site;
	size_t *gone = NULL;
	size_t n_old = intent->n_tunnels, n_ch = d->n_remove + d->n_upsert;
	size_t n_up = 0, n_new = 0, bad = NONE, nn, w;
	const struct msg_site *rs = d->has_site ? &d->site : &intent->site;
	int rc = -1;

	memset(&site, 0, sizeof(site));
	if (d->from_version != intent->version)
		return fieldpath_fail(err, errlen, "from_version: %llu but the "
		    "applied version is %llu",
		    (unsigned long long)d->from_version,
		    (unsigned long long)intent->version);
	for (size_t i = 0; i < d->n_upsert; i++)
		if (!msg_site_has_link(rs, d->upsert[i].local_link))
			return fieldpath_fail(err, errlen, "upsert[%zu].local_link: "
			    "\"%s\" is not a link of the site", i,
			    d->upsert[i].local_link);

	if (n_ch > 0) {
		if ((ch = calloc(n_ch, sizeof(*ch))) == NULL)
			goto nomem;
		for (size_t i = 0; i < d->n_remove; i++)
			ch[i] = (struct msg_change){ d->remove[i], NONE, NONE };
		for (size_t j = 0; j < d->n_upsert; j++)
			ch[d->n_remove + j] = (struct msg_change){
				d->upsert[j].id, j, NONE };
		qsort(ch, n_ch, sizeof(*ch), msg_cmp_change);
		/* A validated delta has none; without this check the
		 * lookups below would quietly pick one of the two. */
		for (size_t i = 1; i < n_ch; i++) {
			if (ch[i].id == ch[i - 1].id) {
				fieldpath_fail(err, errlen, "upsert, remove: "
				    "tunnel %llu named twice",
				    (unsigned long long)ch[i].id);
				goto out;
			}
		}
	}
	/* Where the intent holds each named id; and the first unchanged
	 * tunnel whose link a replaced site lacks. */
	for (size_t i = 0; i < n_old; i++) {
		t = &intent->tunnels[i];
		if ((c = msg_change_find(ch, n_ch, t->id)) != NULL)
			c->pos = i;
		else if (bad == NONE && d->has_site &&
		    !msg_site_has_link(rs, t->local_link))
			bad = i;
	}
	for (size_t i = 0; i < d->n_remove; i++) {
		c = msg_change_find(ch, n_ch, d->remove[i]);
		if (c == NULL || c->pos == NONE) {
			fieldpath_fail(err, errlen, "remove[%zu]: tunnel %llu is not "
			    "in the intent", i,
			    (unsigned long long)d->remove[i]);
			goto out;
		}
	}
	if (bad != NONE) {
		t = &intent->tunnels[bad];
		fieldpath_fail(err, errlen, "site.links: tunnel %llu still uses "
		    "link \"%s\"", (unsigned long long)t->id, t->local_link);
		goto out;
	}
	/* The result must still be a valid intent. */
	for (size_t i = 0; i < n_ch; i++)
		if (ch[i].upsert != NONE && ch[i].pos == NONE)
			n_new++;
	nn = n_old - d->n_remove + n_new;
	if (nn > MSG_LIST_MAX) {
		fieldpath_fail(err, errlen, "upsert: the intent would hold %zu "
		    "tunnels, limit %d", nn, MSG_LIST_MAX);
		goto out;
	}

	if (d->n_upsert > 0) {
		if ((up = calloc(d->n_upsert, sizeof(*up))) == NULL)
			goto nomem;
		for (; n_up < d->n_upsert; n_up++)
			if (msg_tunnel_copy(&up[n_up], &d->upsert[n_up]) == -1)
				goto nomem;
	}
	if (d->has_site && msg_site_copy(&site, &d->site) == -1)
		goto nomem;
	if (d->n_remove > 0) {
		if ((gone = calloc(d->n_remove, sizeof(*gone))) == NULL)
			goto nomem;
		for (size_t i = 0, k = 0; i < n_ch; i++)
			if (ch[i].upsert == NONE)
				gone[k++] = ch[i].pos;
		qsort(gone, d->n_remove, sizeof(*gone), msg_cmp_size);
	}
	if (nn > n_old) {
		t = realloc(intent->tunnels, util_size_class(nn) * sizeof(*t));
		if (t == NULL)
			goto nomem;
		intent->tunnels = t;
	}

	/* Nothing can fail from here on. */
	t = intent->tunnels;
	for (size_t i = 0; up != NULL && i < n_ch; i++) {
		if (ch[i].upsert == NONE || ch[i].pos == NONE)
			continue;
		msg_tunnel_free(&t[ch[i].pos]);
		t[ch[i].pos] = up[ch[i].upsert];
	}
	w = d->n_remove > 0 ? gone[0] : n_old;
	for (size_t k = 0; k < d->n_remove; k++) {
		size_t from = gone[k] + 1;
		size_t to = k + 1 < d->n_remove ? gone[k + 1] : n_old;

		msg_tunnel_free(&t[gone[k]]);
		memmove(&t[w], &t[from], (to - from) * sizeof(*t));
		w += to - from;
	}
	for (size_t j = 0; j < d->n_upsert; j++)
		if ((c = msg_change_find(ch, n_ch, d->upsert[j].id)) != NULL &&
		    c->pos == NONE)
			t[w++] = up[j];
	intent->n_tunnels = nn;
	if (nn == 0) {
		free(intent->tunnels);
		intent->tunnels = NULL;
	} else if (util_size_class(nn) < n_old && (t = realloc(intent->tunnels,
	    util_size_class(nn) * sizeof(*t))) != NULL) {
		/* Shrinking may fail harmlessly: the larger block stays. */
		intent->tunnels = t;
	}
	free(up);
	up = NULL;
	n_up = 0;
	if (d->has_site) {
		msg_site_free(&intent->site);
		intent->site = site;
		memset(&site, 0, sizeof(site));
	}
	intent->version = d->version;
	rc = 0;
	goto out;
nomem:
	fieldpath_fail(err, errlen, "out of memory applying delta %llu",
	    (unsigned long long)d->version);
out:
	msg_site_free(&site);
	msg_tunnels_free(up, n_up);
	free(gone);
	free(ch);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Equality and diff */

static bool
msg_blob_equal(const struct msg_blob *a, const struct msg_blob *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool
msg_prefix_equal(const struct msg_prefix *a, const struct msg_prefix *b)
{
	return a->len == b->len && msg_addr_equal(&a->addr, &b->addr);
}

bool
msg_site_equal(const struct msg_site *a, const struct msg_site *b)
{
	if (a->id != b->id || strcmp(a->name, b->name) != 0 ||
	    a->asn != b->asn || a->role != b->role ||
	    strcmp(a->region, b->region) != 0 ||
	    a->n_lan_prefixes != b->n_lan_prefixes || a->n_links != b->n_links)
		return false;
	for (size_t i = 0; i < a->n_lan_prefixes; i++)
		if (!msg_prefix_equal(&a->lan_prefixes[i], &b->lan_prefixes[i]))
			return false;
	for (size_t i = 0; i < a->n_links; i++) {
		const struct msg_wan_link *x = &a->links[i], *y = &b->links[i];

		if (strcmp(x->name, y->name) != 0 ||
		    !msg_addr_equal(&x->address, &y->address) ||
		    !msg_addr_equal(&x->public_address, &y->public_address) ||
		    x->public_port != y->public_port)
			return false;
	}
	return true;
}

static bool
msg_peer_key_equal(const struct msg_peer_key *a, const struct msg_peer_key *b)
{
	return a->epoch == b->epoch && a->not_after == b->not_after &&
	    memcmp(a->public_key, b->public_key, MSG_KEY_LEN) == 0 &&
	    a->signature_len == b->signature_len &&
	    memcmp(a->signature, b->signature, a->signature_len) == 0;
}

static bool
msg_sa_ref_equal(const struct msg_sa_key_ref *a, const struct msg_sa_key_ref *b)
{
	return a->spi == b->spi && a->sa_epoch == b->sa_epoch &&
	    a->sender_key_epoch == b->sender_key_epoch &&
	    a->receiver_key_epoch == b->receiver_key_epoch;
}

bool
msg_tunnel_equal(const struct msg_tunnel *a, const struct msg_tunnel *b)
{
	const struct msg_crypto_profile *c = &a->crypto, *d = &b->crypto;
	const struct msg_bgp_neighbor *x = &a->bgp, *y = &b->bgp;

	if (a->id != b->id || strcmp(a->local_link, b->local_link) != 0 ||
	    strcmp(a->remote_link, b->remote_link) != 0 ||
	    !msg_addr_equal(&a->remote_address, &b->remote_address) ||
	    a->remote_port != b->remote_port || a->encap != b->encap ||
	    a->vni != b->vni ||
	    !msg_prefix_equal(&a->inner_local, &b->inner_local) ||
	    !msg_addr_equal(&a->inner_remote, &b->inner_remote) ||
	    a->mtu != b->mtu || !msg_sa_ref_equal(&a->sa_in, &b->sa_in) ||
	    !msg_sa_ref_equal(&a->sa_out, &b->sa_out))
		return false;
	if (c->cipher != d->cipher || c->esn != d->esn ||
	    c->replay_window != d->replay_window ||
	    c->rekey_seconds != d->rekey_seconds ||
	    c->rekey_bytes != d->rekey_bytes ||
	    c->rekey_packets != d->rekey_packets)
		return false;
	if (a->peer.site_id != b->peer.site_id ||
	    strcmp(a->peer.name, b->peer.name) != 0 ||
	    !msg_blob_equal(&a->peer.certificate_der,
	    &b->peer.certificate_der) || a->peer.n_keys != b->peer.n_keys)
		return false;
	for (size_t i = 0; i < a->peer.n_keys; i++)
		if (!msg_peer_key_equal(&a->peer.keys[i], &b->peer.keys[i]))
			return false;
	if (a->peer.n_allowed_prefixes != b->peer.n_allowed_prefixes)
		return false;
	for (size_t i = 0; i < a->peer.n_allowed_prefixes; i++)
		if (!msg_prefix_equal(&a->peer.allowed_prefixes[i],
		    &b->peer.allowed_prefixes[i]))
			return false;
	return msg_addr_equal(&x->address, &y->address) &&
	    x->remote_asn == y->remote_asn && x->hold_time == y->hold_time &&
	    x->keepalive == y->keepalive && x->bfd == y->bfd &&
	    x->route_server_client == y->route_server_client;
}

int
msg_intent_diff(const struct msg_intent *from, const struct msg_intent *to,
    struct msg_intent_delta *out, char *err, size_t errlen)
{
	struct msg_idx *fi = NULL, *ti = NULL;
	size_t nf = from->n_tunnels, nt = to->n_tunnels;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (!msg_blob_equal(&from->ca_chain_der, &to->ca_chain_der))
		return fieldpath_fail(err, errlen, "ca_chain_der changed: a delta "
		    "cannot carry it, send a snapshot");
	if (from->keepalive_seconds != to->keepalive_seconds ||
	    from->headless_grace_seconds != to->headless_grace_seconds)
		return fieldpath_fail(err, errlen, "keepalive_seconds or "
		    "headless_grace_seconds changed: a delta cannot carry "
		    "them, send a snapshot");
	out->from_version = from->version;
	out->version = to->version;
	if (!msg_site_equal(&from->site, &to->site)) {
		if (msg_site_copy(&out->site, &to->site) == -1)
			goto nomem;
		out->has_site = true;
	}
	if ((nf > 0 && (fi = calloc(nf, sizeof(*fi))) == NULL) ||
	    (nt > 0 && (ti = calloc(nt, sizeof(*ti))) == NULL))
		goto nomem;
	for (size_t i = 0; i < nf; i++) {
		fi[i].id = from->tunnels[i].id;
		fi[i].pos = i;
	}
	for (size_t i = 0; i < nt; i++) {
		ti[i].id = to->tunnels[i].id;
		ti[i].pos = i;
	}
	if (nf > 0)
		qsort(fi, nf, sizeof(*fi), msg_cmp_idx);
	if (nt > 0) {
		qsort(ti, nt, sizeof(*ti), msg_cmp_idx);
		if ((out->upsert = calloc(nt, sizeof(*out->upsert))) == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < nt; i++) {
		const struct msg_tunnel *t = &to->tunnels[i];
		const struct msg_idx *x = msg_idx_find(fi, nf, t->id);

		if (x != NULL && msg_tunnel_equal(&from->tunnels[x->pos], t))
			continue;
		if (msg_tunnel_copy(&out->upsert[out->n_upsert], t) == -1)
			goto nomem;
		out->n_upsert++;
	}
	for (size_t i = 0; i < nf; i++) {
		if (msg_idx_find(ti, nt, from->tunnels[i].id) != NULL)
			continue;
		if (out->remove == NULL &&
		    (out->remove = calloc(nf, sizeof(*out->remove))) == NULL)
			goto nomem;
		out->remove[out->n_remove++] = from->tunnels[i].id;
	}
	if (out->n_upsert == 0) {
		free(out->upsert);
		out->upsert = NULL;
	}
	rc = 0;
	goto done;
nomem:
	fieldpath_fail(err, errlen, "out of memory computing delta %llu -> %llu",
	    (unsigned long long)from->version,
	    (unsigned long long)to->version);
	msg_intent_delta_free(out);
done:
	free(fi);
	free(ti);
	return rc;
}
