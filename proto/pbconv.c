/*
 * pbconv.c — the only code that touches the protobuf-c types generated from
 * meshwan.proto.
 *
 * Decoding is the boundary between the network and the daemons, so it is
 * deliberately suspicious: the buffer size is capped before parsing, the
 * memory protobuf-c may allocate while parsing is capped by a counting
 * allocator (a few bytes of input can declare thousands of empty
 * sub-messages), every string and blob is measured before it is copied into
 * the fixed arrays of msg.h, and the result is checked by msg_validate_*()
 * before the caller sees it.  On any failure nothing stays allocated.
 *
 * Encoding builds the generated structs on a small arena that points into
 * the msg structs wherever it can, so that a large intent costs one pass and
 * a few allocations.
 */
#include <arpa/inet.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/util.h"
#include "meshwan/v1/meshwan.pb-c.h"
#include "proto/msg.h"
#include "proto/fieldpath.h"
#include "proto/pbconv.h"

typedef Meshwan__V1__EnrollRequest PbEnrollRequest;
typedef Meshwan__V1__RenewRequest PbRenewRequest;
typedef Meshwan__V1__EnrollResponse PbEnrollResponse;
typedef Meshwan__V1__EdgeMessage PbEdgeMessage;
typedef Meshwan__V1__Hello PbHello;
typedef Meshwan__V1__SaStatus PbSaStatus;
typedef Meshwan__V1__TunnelStatus PbTunnelStatus;
typedef Meshwan__V1__BgpNeighborStatus PbBgpNeighborStatus;
typedef Meshwan__V1__HealthStatus PbHealthStatus;
typedef Meshwan__V1__Status PbStatus;
typedef Meshwan__V1__Ack PbAck;
typedef Meshwan__V1__KeyAnnouncement PbKeyAnnouncement;
typedef Meshwan__V1__ControllerMessage PbControllerMessage;
typedef Meshwan__V1__WanLink PbWanLink;
typedef Meshwan__V1__Site PbSite;
typedef Meshwan__V1__CryptoProfile PbCryptoProfile;
typedef Meshwan__V1__PeerKey PbPeerKey;
typedef Meshwan__V1__Peer PbPeer;
typedef Meshwan__V1__BgpNeighbor PbBgpNeighbor;
typedef Meshwan__V1__Tunnel PbTunnel;
typedef Meshwan__V1__SaKeyRef PbSaKeyRef;
typedef Meshwan__V1__RekeyRequest PbRekeyRequest;
typedef Meshwan__V1__Intent PbIntent;
typedef Meshwan__V1__IntentDelta PbIntentDelta;
typedef Meshwan__V1__RekeyOrder PbRekeyOrder;
typedef Meshwan__V1__PeerKeys PbPeerKeys;
typedef Meshwan__V1__Keepalive PbKeepalive;
typedef Meshwan__V1__Backoff PbBackoff;

/* ------------------------------------------------------------------ */
/* Decoding: a counting allocator for protobuf-c */

union pbconv_hdr {
	size_t size;
	max_align_t align;
};

struct pbconv_budget {
	size_t left;
	bool exceeded;
};

static void *
pbconv_budget_alloc(void *data, size_t size)
{
	struct pbconv_budget *b = data;
	union pbconv_hdr *h;
	size_t need = size + sizeof(*h);

	if (need < size || need > b->left) {
		b->exceeded = true;
		return NULL;
	}
	if ((h = malloc(need)) == NULL)
		return NULL;
	h->size = need;
	b->left -= need;
	return h + 1;
}

static void
pbconv_budget_free(void *data, void *p)
{
	struct pbconv_budget *b = data;
	union pbconv_hdr *h;

	if (p == NULL)
		return;
	h = (union pbconv_hdr *)p - 1;
	b->left += h->size;
	free(h);
}

/*
 * Unpack buf as a message of desc within the size limit max and under an
 * allocation budget (b, a: the caller's, kept until the message is freed
 * with protobuf_c_message_free_unpacked(m, a)).  NULL with err set,
 * naming the message by its short name.
 */
static ProtobufCMessage *
pbconv_unpack(const ProtobufCMessageDescriptor *desc, size_t max,
    const uint8_t *buf, size_t len, struct pbconv_budget *b,
    ProtobufCAllocator *a, char *err, size_t errlen)
{
	ProtobufCMessage *m;

	if (len > max) {
		fieldpath_fail(err, errlen, "%s: %zu bytes, limit %zu",
		    desc->short_name, len, max);
		return NULL;
	}
	b->left = len * PBCONV_ALLOC_FACTOR + (1u << 20);
	b->exceeded = false;
	a->alloc = pbconv_budget_alloc;
	a->free = pbconv_budget_free;
	a->allocator_data = b;
	if ((m = protobuf_c_message_unpack(desc, a, len, buf)) != NULL)
		return m;
	if (b->exceeded)
		fieldpath_fail(err, errlen, "%s: decoding would need more "
		    "memory than the message size allows", desc->short_name);
	else
		fieldpath_fail(err, errlen, "%s: not a valid encoding",
		    desc->short_name);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Decoding: field converters (protobuf-c -> msg) */

static int
pbconv_get_str(const struct fieldpath *path, const char *src, char *dst,
    size_t dstsz, char *err, size_t errlen)
{
	size_t n;

	if (src == NULL)
		src = "";
	n = strlen(src);
	if (n >= dstsz)
		return fieldpath_fail(err, errlen, "%s: %zu chars, limit %zu",
		    FIELDPATH_STR(path), n, dstsz - 1);
	memcpy(dst, src, n + 1);
	return 0;
}

/* An address field; empty is allowed only when optional. */
static int
pbconv_get_addr(const struct fieldpath *path, const char *src, bool optional,
    struct msg_addr *out, char *err, size_t errlen)
{
	char q[MSG_ADDR_STRLEN];

	memset(out, 0, sizeof(*out));
	if (src == NULL || src[0] == '\0') {
		if (optional)
			return 0;
		return fieldpath_fail(err, errlen, "%s: missing", FIELDPATH_STR(path));
	}
	if (strlen(src) >= MSG_ADDR_STRLEN || msg_addr_parse(src, out) == -1)
		return fieldpath_fail(err, errlen, "%s: \"%s\" is not an IPv4 "
		    "or IPv6 address", FIELDPATH_STR(path), util_printable(q,
		    sizeof(q), src));
	return 0;
}

static int
pbconv_get_prefix(const struct fieldpath *path, const char *src, bool network,
    struct msg_prefix *out, char *err, size_t errlen)
{
	char q[MSG_PREFIX_STRLEN];

	memset(out, 0, sizeof(*out));
	if (src == NULL || src[0] == '\0')
		return fieldpath_fail(err, errlen, "%s: missing", FIELDPATH_STR(path));
	if (strlen(src) >= MSG_PREFIX_STRLEN ||
	    msg_prefix_parse(src, network, out) == -1)
		return fieldpath_fail(err, errlen, "%s: \"%s\" is not %s",
		    FIELDPATH_STR(path), util_printable(q, sizeof(q), src),
		    network ? "a network in CIDR notation (host bits zero)" :
		    "an ADDRESS/LENGTH");
	return 0;
}

static int
pbconv_get_blob(const struct fieldpath *path, const ProtobufCBinaryData *src,
    size_t max, struct msg_blob *out, char *err, size_t errlen)
{
	if (src->len > max)
		return fieldpath_fail(err, errlen, "%s: %zu bytes, limit %zu",
		    FIELDPATH_STR(path), src->len, max);
	if (msg_blob_set(out, src->data, src->len) == -1)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(path));
	return 0;
}

/* Exactly `len` bytes, or (when optional) none: *has says which. */
static int
pbconv_get_fixed(const struct fieldpath *path, const ProtobufCBinaryData *src,
    uint8_t *out, size_t len, bool optional, bool *has, char *err,
    size_t errlen)
{
	if (src->len == 0 && optional) {
		*has = false;
		return 0;
	}
	if (src->len != len)
		return fieldpath_fail(err, errlen, "%s: %zu bytes, must be %s%zu",
		    FIELDPATH_STR(path), src->len, optional ? "0 or " : "", len);
	memcpy(out, src->data, len);
	*has = true;
	return 0;
}

static int
pbconv_get_port(const struct fieldpath *path, uint32_t v, uint16_t *out,
    char *err, size_t errlen)
{
	if (v > 65535)
		return fieldpath_fail(err, errlen, "%s: %u out of range 0..65535",
		    FIELDPATH_STR(path), v);
	*out = (uint16_t)v;
	return 0;
}

static int
pbconv_get_count(const struct fieldpath *path, size_t n, size_t max,
    char *err, size_t errlen)
{
	if (n > max)
		return fieldpath_fail(err, errlen, "%s: %zu entries, limit %zu",
		    FIELDPATH_STR(path), n, max);
	return 0;
}

/* Informational enums: unknown values read as UNSPECIFIED (0). */
static int
pbconv_info_enum(int v, int max)
{
	return v >= 0 && v <= max ? v : 0;
}

static int
pbconv_get_peer_keys(const struct fieldpath *parent, PbPeerKey *const *src,
    size_t n, struct msg_peer_key *out, size_t *n_out, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];
	bool has;

	if (pbconv_get_count(fieldpath_child(p, parent, "keys"), n,
	    MSG_PEER_KEYS_MAX, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const PbPeerKey *k = src[i];

		fieldpath_idx(p, parent, "keys", i);
		out[i].epoch = k->epoch;
		out[i].not_after = k->not_after;
		if (pbconv_get_fixed(fieldpath_child(f, p, "public_key"),
		    &k->public_key, out[i].public_key, MSG_KEY_LEN, false, &has,
		    err, errlen) == -1)
			return -1;
		if (k->signature.len > MSG_SIG_MAX)
			return fieldpath_fail(err, errlen, "%s: %zu bytes, limit "
			    "%d", FIELDPATH_STR(fieldpath_child(f, p, "signature")),
			    k->signature.len, MSG_SIG_MAX);
		if (k->signature.len > 0)
			memcpy(out[i].signature, k->signature.data,
			    k->signature.len);
		out[i].signature_len = k->signature.len;
	}
	*n_out = n;
	return 0;
}

/* A repeated CIDR (networks) into a malloc'd array; on failure *out may
 * hold part of it (*n_out entries), which the caller's free releases. */
static int
pbconv_get_prefixes(const struct fieldpath *parent, const char *name,
    char *const *src, size_t n, size_t max, struct msg_prefix **out,
    size_t *n_out, char *err, size_t errlen)
{
	struct fieldpath f[1];

	if (pbconv_get_count(fieldpath_child(f, parent, name), n, max, err,
	    errlen) == -1)
		return -1;
	if (n == 0)
		return 0;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(f));
	*n_out = n;
	for (size_t i = 0; i < n; i++)
		if (pbconv_get_prefix(fieldpath_idx(f, parent, name, i), src[i],
		    true, &(*out)[i], err, errlen) == -1)
			return -1;
	return 0;
}

static int
pbconv_get_site(const struct fieldpath *path, const PbSite *src,
    struct msg_site *out, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];

	if (src == NULL)
		return fieldpath_fail(err, errlen, "%s: not set", FIELDPATH_STR(path));
	out->id = src->id;
	out->asn = src->asn;
	out->role = (enum msg_role)pbconv_info_enum(src->role, MSG_ROLE_EDGE);
	if (pbconv_get_str(fieldpath_child(f, path, "name"), src->name, out->name,
	    sizeof(out->name), err, errlen) == -1 ||
	    pbconv_get_str(fieldpath_child(f, path, "region"), src->region,
	    out->region, sizeof(out->region), err, errlen) == -1 ||
	    pbconv_get_count(fieldpath_child(f, path, "links"), src->n_links,
	    MSG_LINKS_MAX, err, errlen) == -1 ||
	    pbconv_get_prefixes(path, "lan_prefixes", src->lan_prefixes,
	    src->n_lan_prefixes, MSG_PREFIXES_MAX, &out->lan_prefixes,
	    &out->n_lan_prefixes, err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < src->n_links; i++) {
		const PbWanLink *l = src->links[i];
		struct msg_wan_link *o = &out->links[i];

		fieldpath_idx(p, path, "links", i);
		if (pbconv_get_str(fieldpath_child(f, p, "name"), l->name, o->name,
		    sizeof(o->name), err, errlen) == -1 ||
		    pbconv_get_addr(fieldpath_child(f, p, "address"), l->address,
		    false, &o->address, err, errlen) == -1 ||
		    pbconv_get_addr(fieldpath_child(f, p, "public_address"),
		    l->public_address, true, &o->public_address, err,
		    errlen) == -1 ||
		    pbconv_get_port(fieldpath_child(f, p, "public_port"),
		    l->public_port, &o->public_port, err, errlen) == -1)
			return -1;
	}
	out->n_links = src->n_links;
	return 0;
}

/* An absent SaKeyRef reads as all zero (no SA yet). */
static void
pbconv_get_sa_ref(const PbSaKeyRef *src, struct msg_sa_key_ref *out)
{
	if (src == NULL)
		return;
	out->spi = src->spi;
	out->sa_epoch = src->sa_epoch;
	out->sender_key_epoch = src->sender_key_epoch;
	out->receiver_key_epoch = src->receiver_key_epoch;
}

static int
pbconv_get_tunnel(const struct fieldpath *path, const PbTunnel *src,
    struct msg_tunnel *out, char *err, size_t errlen)
{
	struct fieldpath p[1], f[1];

	out->id = src->id;
	out->encap = (enum msg_encap)src->encap;
	out->vni = src->vni;
	out->mtu = src->mtu;
	pbconv_get_sa_ref(src->sa_in, &out->sa_in);
	pbconv_get_sa_ref(src->sa_out, &out->sa_out);
	if (pbconv_get_str(fieldpath_child(f, path, "local_link"),
	    src->local_link, out->local_link, sizeof(out->local_link), err,
	    errlen) == -1 ||
	    pbconv_get_str(fieldpath_child(f, path, "remote_link"),
	    src->remote_link, out->remote_link, sizeof(out->remote_link), err,
	    errlen) == -1 ||
	    pbconv_get_addr(fieldpath_child(f, path, "remote_address"),
	    src->remote_address, false, &out->remote_address, err,
	    errlen) == -1 ||
	    pbconv_get_port(fieldpath_child(f, path, "remote_port"),
	    src->remote_port, &out->remote_port, err, errlen) == -1 ||
	    pbconv_get_prefix(fieldpath_child(f, path, "inner_local"),
	    src->inner_local, false, &out->inner_local, err, errlen) == -1 ||
	    pbconv_get_addr(fieldpath_child(f, path, "inner_remote"),
	    src->inner_remote, false, &out->inner_remote, err, errlen) == -1 ||
	    pbconv_get_addr(fieldpath_child(f, path, "inner_remote6"),
	    src->inner_remote6, true, &out->inner_remote6, err, errlen) == -1)
		return -1;
	if (src->inner_local6 != NULL && src->inner_local6[0] != '\0' &&
	    pbconv_get_prefix(fieldpath_child(f, path, "inner_local6"),
	    src->inner_local6, false, &out->inner_local6, err, errlen) == -1)
		return -1;

	if (src->crypto == NULL)
		return fieldpath_fail(err, errlen, "%s: not set",
		    FIELDPATH_STR(fieldpath_child(f, path, "crypto")));
	out->crypto.cipher = (enum msg_cipher)src->crypto->cipher;
	out->crypto.esn = src->crypto->esn;
	out->crypto.replay_window = src->crypto->replay_window;
	out->crypto.rekey_seconds = src->crypto->rekey_seconds;
	out->crypto.rekey_bytes = src->crypto->rekey_bytes;
	out->crypto.rekey_packets = src->crypto->rekey_packets;

	fieldpath_child(p, path, "peer");
	if (src->peer == NULL)
		return fieldpath_fail(err, errlen, "%s: not set", FIELDPATH_STR(p));
	out->peer.site_id = src->peer->site_id;
	if (pbconv_get_str(fieldpath_child(f, p, "name"), src->peer->name,
	    out->peer.name, sizeof(out->peer.name), err, errlen) == -1 ||
	    pbconv_get_peer_keys(p, src->peer->keys, src->peer->n_keys,
	    out->peer.keys, &out->peer.n_keys, err, errlen) == -1 ||
	    pbconv_get_blob(fieldpath_child(f, p, "certificate_der"),
	    &src->peer->certificate_der, MSG_DER_MAX,
	    &out->peer.certificate_der, err, errlen) == -1 ||
	    pbconv_get_prefixes(p, "allowed_prefixes",
	    src->peer->allowed_prefixes, src->peer->n_allowed_prefixes,
	    MSG_ALLOWED_PREFIXES_MAX, &out->peer.allowed_prefixes,
	    &out->peer.n_allowed_prefixes, err, errlen) == -1)
		return -1;

	fieldpath_child(p, path, "bgp");
	if (src->bgp == NULL)
		return fieldpath_fail(err, errlen, "%s: not set", FIELDPATH_STR(p));
	out->bgp.remote_asn = src->bgp->remote_asn;
	out->bgp.hold_time = src->bgp->hold_time;
	out->bgp.keepalive = src->bgp->keepalive;
	out->bgp.bfd = src->bgp->bfd;
	out->bgp.route_server_client = src->bgp->route_server_client;
	if (pbconv_get_addr(fieldpath_child(f, p, "address6"),
	    src->bgp->address6, true, &out->bgp.address6, err, errlen) == -1)
		return -1;
	return pbconv_get_addr(fieldpath_child(f, p, "address"), src->bgp->address,
	    false, &out->bgp.address, err, errlen);
}

/* A repeated Tunnel into a malloc'd array; on failure *out may hold part
 * of it (*n_out says how much), which the caller's free releases.  Sized
 * by util_size_class() like msg_intent_apply_delta() grows it, so that an
 * edge's first deltas after a snapshot do not move the whole array. */
static int
pbconv_get_tunnels(const struct fieldpath *parent, const char *name,
    PbTunnel *const *src, size_t n, struct msg_tunnel **out, size_t *n_out,
    char *err, size_t errlen)
{
	struct fieldpath p[1];

	if (pbconv_get_count(fieldpath_child(p, parent, name), n, MSG_LIST_MAX,
	    err, errlen) == -1)
		return -1;
	if (n == 0)
		return 0;
	if ((*out = calloc(util_size_class(n), sizeof(**out))) == NULL)
		return fieldpath_fail(err, errlen, "%s: out of memory",
		    FIELDPATH_STR(p));
	for (size_t i = 0; i < n; i++) {
		*n_out = i + 1;
		if (pbconv_get_tunnel(fieldpath_idx(p, parent, name, i),
		    src[i], &(*out)[i], err, errlen) == -1)
			return -1;
	}
	return 0;
}

static int
pbconv_get_intent(const struct fieldpath *path, const PbIntent *src,
    struct msg_intent *out, char *err, size_t errlen)
{
	struct fieldpath f[1];

	out->version = src->version;
	out->keepalive_seconds = src->keepalive_seconds;
	out->headless_grace_seconds = src->headless_grace_seconds;
	if (pbconv_get_site(fieldpath_child(f, path, "site"), src->site,
	    &out->site, err, errlen) == -1 ||
	    pbconv_get_blob(fieldpath_child(f, path, "ca_chain_der"),
	    &src->ca_chain_der, MSG_INTENT_CA_MAX, &out->ca_chain_der, err,
	    errlen) == -1)
		return -1;
	return pbconv_get_tunnels(path, "tunnels", src->tunnels,
	    src->n_tunnels, &out->tunnels, &out->n_tunnels, err, errlen);
}

static int
pbconv_get_delta(const struct fieldpath *path, const PbIntentDelta *src,
    struct msg_intent_delta *out, char *err, size_t errlen)
{
	struct fieldpath f[1];

	out->from_version = src->from_version;
	out->version = src->version;
	if (src->site != NULL) {
		out->has_site = true;
		if (pbconv_get_site(fieldpath_child(f, path, "site"), src->site,
		    &out->site, err, errlen) == -1)
			return -1;
	}
	if (pbconv_get_tunnels(path, "upsert", src->upsert, src->n_upsert,
	    &out->upsert, &out->n_upsert, err, errlen) == -1 ||
	    pbconv_get_count(fieldpath_child(f, path, "remove"), src->n_remove,
	    MSG_LIST_MAX, err, errlen) == -1)
		return -1;
	if (src->n_remove > 0) {
		out->remove = malloc(src->n_remove * sizeof(*out->remove));
		if (out->remove == NULL)
			return fieldpath_fail(err, errlen, "%s: out of memory",
			    FIELDPATH_STR(f));
		memcpy(out->remove, src->remove,
		    src->n_remove * sizeof(*out->remove));
		out->n_remove = src->n_remove;
	}
	return 0;
}

static int
pbconv_get_controller(const PbControllerMessage *src,
    struct msg_controller_message *out, char *err, size_t errlen)
{
	switch (src->body_case) {
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT:
		out->kind = MSG_CONTROLLER_SNAPSHOT;
		return pbconv_get_intent(FIELDPATH_ROOT("snapshot"), src->snapshot,
		    &out->u.snapshot, err, errlen);
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_DELTA:
		out->kind = MSG_CONTROLLER_DELTA;
		return pbconv_get_delta(FIELDPATH_ROOT("delta"), src->delta,
		    &out->u.delta, err, errlen);
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_REKEY: {
		struct msg_rekey_order *r = &out->u.rekey;

		out->kind = MSG_CONTROLLER_REKEY;
		r->tunnel_id = src->rekey->tunnel_id;
		r->epoch = src->rekey->epoch;
		r->step = (enum msg_rekey_step)src->rekey->step;
		r->reason = (enum msg_rekey_reason)pbconv_info_enum(
		    src->rekey->reason, MSG_REKEY_REASON_LOCAL_ERROR);
		r->spi = src->rekey->spi;
		r->drain_seconds = src->rekey->drain_seconds;
		r->sender_key_epoch = src->rekey->sender_key_epoch;
		r->receiver_key_epoch = src->rekey->receiver_key_epoch;
		return 0;
	}
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE:
		out->kind = MSG_CONTROLLER_KEEPALIVE;
		out->u.keepalive.controller_time =
		    src->keepalive->controller_time;
		return 0;
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_BACKOFF:
		out->kind = MSG_CONTROLLER_BACKOFF;
		out->u.backoff.retry_after_seconds =
		    src->backoff->retry_after_seconds;
		return pbconv_get_str(FIELDPATH_ROOT("backoff.reason"),
		    src->backoff->reason,
		    out->u.backoff.reason, sizeof(out->u.backoff.reason), err,
		    errlen);
	case MESHWAN__V1__CONTROLLER_MESSAGE__BODY_PEER_KEYS:
		out->kind = MSG_CONTROLLER_PEER_KEYS;
		out->u.peer_keys.peer_site_id = src->peer_keys->peer_site_id;
		return pbconv_get_peer_keys(FIELDPATH_ROOT("peer_keys"),
		    src->peer_keys->keys,
		    src->peer_keys->n_keys, out->u.peer_keys.keys,
		    &out->u.peer_keys.n_keys, err, errlen);
	default:
		return fieldpath_fail(err, errlen, "body: not set");
	}
}

static int
pbconv_get_status(const PbStatus *src, struct msg_status *out, char *err,
    size_t errlen)
{
	struct fieldpath p[1], f[1];

	out->applied_version = src->applied_version;
	out->uptime_seconds = src->uptime_seconds;
	if (pbconv_get_count(FIELDPATH_ROOT("status.tunnels"), src->n_tunnels,
	    MSG_LIST_MAX, err, errlen) == -1 ||
	    pbconv_get_count(FIELDPATH_ROOT("status.bgp"), src->n_bgp, MSG_LIST_MAX,
	    err, errlen) == -1 ||
	    pbconv_get_count(FIELDPATH_ROOT("status.health"), src->n_health,
	    MSG_LIST_MAX, err, errlen) == -1)
		return -1;
	if ((src->n_tunnels > 0 && (out->tunnels = calloc(src->n_tunnels,
	    sizeof(*out->tunnels))) == NULL) ||
	    (src->n_bgp > 0 && (out->bgp = calloc(src->n_bgp,
	    sizeof(*out->bgp))) == NULL) ||
	    (src->n_health > 0 && (out->health = calloc(src->n_health,
	    sizeof(*out->health))) == NULL))
		return fieldpath_fail(err, errlen, "status: out of memory");
	out->n_tunnels = src->n_tunnels;
	out->n_bgp = src->n_bgp;
	out->n_health = src->n_health;
	for (size_t i = 0; i < src->n_tunnels; i++) {
		const PbTunnelStatus *t = src->tunnels[i];
		struct msg_tunnel_status *o = &out->tunnels[i];

		fieldpath_idx(p, FIELDPATH_ROOT("status"), "tunnels", i);
		o->tunnel_id = t->tunnel_id;
		o->state = (enum msg_tunnel_state)pbconv_info_enum(t->state,
		    MSG_TUNNEL_STATE_FAILED);
		o->packets_in = t->packets_in;
		o->packets_out = t->packets_out;
		o->bytes_in = t->bytes_in;
		o->bytes_out = t->bytes_out;
		o->drops_no_sa = t->drops_no_sa;
		o->drops_malformed = t->drops_malformed;
		o->drops_unknown_spi = t->drops_unknown_spi;
		o->peer_moves = t->peer_moves;
		if (pbconv_get_str(fieldpath_child(f, p, "error"), t->error,
		    o->error, sizeof(o->error), err, errlen) == -1 ||
		    pbconv_get_addr(fieldpath_child(f, p, "peer_address"),
		    t->peer_address, true, &o->peer_address, err, errlen) == -1 ||
		    pbconv_get_port(fieldpath_child(f, p, "peer_port"),
		    t->peer_port, &o->peer_port, err, errlen) == -1 ||
		    pbconv_get_count(fieldpath_child(f, p, "sas"), t->n_sas,
		    MSG_SAS_MAX, err, errlen) == -1)
			return -1;
		for (size_t j = 0; j < t->n_sas; j++) {
			const PbSaStatus *s = t->sas[j];
			struct msg_sa_status *d = &o->sas[j];

			d->spi = s->spi;
			d->direction = (enum msg_direction)pbconv_info_enum(
			    s->direction, MSG_DIRECTION_OUT);
			d->epoch = s->epoch;
			d->packets = s->packets;
			d->bytes = s->bytes;
			d->age_seconds = s->age_seconds;
			d->seq = s->seq;
			d->drops_auth = s->drops_auth;
			d->drops_replay = s->drops_replay;
			d->active = s->active;
		}
		o->n_sas = t->n_sas;
	}
	for (size_t i = 0; i < src->n_bgp; i++) {
		const PbBgpNeighborStatus *b = src->bgp[i];
		struct msg_bgp_neighbor_status *o = &out->bgp[i];

		o->remote_asn = b->remote_asn;
		o->state = (enum msg_bgp_state)pbconv_info_enum(b->state,
		    MSG_BGP_STATE_ESTABLISHED);
		o->uptime_seconds = b->uptime_seconds;
		o->prefixes_received = b->prefixes_received;
		o->prefixes_filtered = b->prefixes_filtered;
		o->tunnel_id = b->tunnel_id;
		fieldpath_idx(p, FIELDPATH_ROOT("status"), "bgp", i);
		if (pbconv_get_addr(fieldpath_child(f, p, "address"), b->address,
		    false, &o->address, err, errlen) == -1)
			return -1;
	}
	for (size_t i = 0; i < src->n_health; i++) {
		const PbHealthStatus *h = src->health[i];

		out->health[i].tunnel_id = h->tunnel_id;
		out->health[i].up = h->up;
		out->health[i].rtt_us = h->rtt_us;
		out->health[i].loss_permille = h->loss_permille;
		out->health[i].jitter_us = h->jitter_us;
	}
	return 0;
}

static int
pbconv_get_edge(const PbEdgeMessage *src, struct msg_edge_message *out,
    char *err, size_t errlen)
{
	switch (src->body_case) {
	case MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO: {
		const PbHello *h = src->hello;
		struct msg_hello *o = &out->u.hello;

		out->kind = MSG_EDGE_HELLO;
		o->site_id = h->site_id;
		o->applied_version = h->applied_version;
		o->backend = (enum msg_backend)pbconv_info_enum(h->backend,
		    MSG_BACKEND_NULL);
		o->features = h->features;
		if (pbconv_get_fixed(FIELDPATH_ROOT("hello.convergence_hash"),
		    &h->convergence_hash, o->convergence_hash, MSG_HASH_LEN,
		    true, &o->has_convergence_hash, err, errlen) == -1)
			return -1;
		return pbconv_get_str(FIELDPATH_ROOT("hello.software_version"),
		    h->software_version, o->software_version,
		    sizeof(o->software_version), err, errlen);
	}
	case MESHWAN__V1__EDGE_MESSAGE__BODY_STATUS:
		out->kind = MSG_EDGE_STATUS;
		return pbconv_get_status(src->status, &out->u.status, err,
		    errlen);
	case MESHWAN__V1__EDGE_MESSAGE__BODY_ACK: {
		const PbAck *a = src->ack;
		struct msg_ack *o = &out->u.ack;

		out->kind = MSG_EDGE_ACK;
		o->version = a->version;
		o->ok = a->ok;
		o->rekey_tunnel_id = a->rekey_tunnel_id;
		o->rekey_epoch = a->rekey_epoch;
		o->rekey_step = (enum msg_rekey_step)a->rekey_step;
		if (pbconv_get_fixed(FIELDPATH_ROOT("ack.convergence_hash"),
		    &a->convergence_hash, o->convergence_hash, MSG_HASH_LEN,
		    true, &o->has_convergence_hash, err, errlen) == -1)
			return -1;
		return pbconv_get_str(FIELDPATH_ROOT("ack.reason"), a->reason,
		    o->reason, sizeof(o->reason), err, errlen);
	}
	case MESHWAN__V1__EDGE_MESSAGE__BODY_KEY: {
		const PbKeyAnnouncement *k = src->key;
		struct msg_key_announcement *o = &out->u.key;
		bool has;

		out->kind = MSG_EDGE_KEY;
		o->epoch = k->epoch;
		o->not_after = k->not_after;
		if (pbconv_get_fixed(FIELDPATH_ROOT("key.public_key"), &k->public_key,
		    o->public_key, MSG_KEY_LEN, false, &has, err, errlen) == -1)
			return -1;
		if (k->signature.len > MSG_SIG_MAX)
			return fieldpath_fail(err, errlen, "key.signature: %zu "
			    "bytes, limit %d", k->signature.len, MSG_SIG_MAX);
		if (k->signature.len > 0)
			memcpy(o->signature, k->signature.data,
			    k->signature.len);
		o->signature_len = k->signature.len;
		return 0;
	}
	case MESHWAN__V1__EDGE_MESSAGE__BODY_REKEY_REQUEST: {
		const PbRekeyRequest *q = src->rekey_request;
		struct msg_rekey_request *o = &out->u.rekey_request;

		/* Both enums are required here: unknown values are kept
		 * for msg_validate to refuse. */
		out->kind = MSG_EDGE_REKEY_REQUEST;
		o->tunnel_id = q->tunnel_id;
		o->direction = (enum msg_direction)q->direction;
		o->reason = (enum msg_rekey_request_reason)q->reason;
		return 0;
	}
	default:
		return fieldpath_fail(err, errlen, "body: not set");
	}
}

/* ------------------------------------------------------------------ */
/* Decoders */

int
pbconv_decode_enroll_request(const uint8_t *buf, size_t len,
    struct msg_enroll_request *out, char *err, size_t errlen)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbEnrollRequest *pb;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((pb = (PbEnrollRequest *)pbconv_unpack(
	    &meshwan__v1__enroll_request__descriptor, PBCONV_MAX_ENROLL_MSG, buf, len, &b,
	    &a, err, errlen)) == NULL)
		return -1;
	rc = pbconv_get_str(FIELDPATH_ROOT("token"), pb->token, out->token,
	    sizeof(out->token), err, errlen);
	if (rc == 0)
		rc = pbconv_get_str(FIELDPATH_ROOT("software_version"),
		    pb->software_version,
		    out->software_version, sizeof(out->software_version), err,
		    errlen);
	if (rc == 0)
		rc = pbconv_get_blob(FIELDPATH_ROOT("csr_der"), &pb->csr_der,
		    MSG_DER_MAX, &out->csr_der, err, errlen);
	protobuf_c_message_free_unpacked(&pb->base, &a);
	if (rc == 0)
		rc = msg_validate_enroll_request(out, err, errlen);
	if (rc == -1)
		msg_enroll_request_free(out);
	return rc;
}

int
pbconv_decode_renew_request(const uint8_t *buf, size_t len,
    struct msg_renew_request *out, char *err, size_t errlen)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbRenewRequest *pb;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((pb = (PbRenewRequest *)pbconv_unpack(
	    &meshwan__v1__renew_request__descriptor, PBCONV_MAX_ENROLL_MSG, buf,
	    len, &b, &a, err, errlen)) == NULL)
		return -1;
	rc = pbconv_get_str(FIELDPATH_ROOT("software_version"),
	    pb->software_version, out->software_version,
	    sizeof(out->software_version), err, errlen);
	if (rc == 0)
		rc = pbconv_get_blob(FIELDPATH_ROOT("csr_der"), &pb->csr_der,
		    MSG_DER_MAX, &out->csr_der, err, errlen);
	protobuf_c_message_free_unpacked(&pb->base, &a);
	if (rc == 0)
		rc = msg_validate_renew_request(out, err, errlen);
	if (rc == -1)
		msg_renew_request_free(out);
	return rc;
}

int
pbconv_decode_enroll_response(const uint8_t *buf, size_t len,
    struct msg_enroll_response *out, char *err, size_t errlen)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbEnrollResponse *pb;
	struct fieldpath p[1];
	int rc;

	memset(out, 0, sizeof(*out));
	if ((pb = (PbEnrollResponse *)pbconv_unpack(
	    &meshwan__v1__enroll_response__descriptor, PBCONV_MAX_ENROLL_MSG, buf, len, &b,
	    &a, err, errlen)) == NULL)
		return -1;
	out->error = (enum msg_enroll_error)pb->error;
	out->site_id = pb->site_id;
	rc = pbconv_get_str(FIELDPATH_ROOT("error_message"), pb->error_message,
	    out->error_message, sizeof(out->error_message), err, errlen);
	if (rc == 0)
		rc = pbconv_get_str(FIELDPATH_ROOT("controller_name"),
		    pb->controller_name,
		    out->controller_name, sizeof(out->controller_name), err,
		    errlen);
	if (rc == 0)
		rc = pbconv_get_blob(FIELDPATH_ROOT("certificate_der"),
		    &pb->certificate_der,
		    MSG_DER_MAX, &out->certificate_der, err, errlen);
	if (rc == 0)
		rc = pbconv_get_count(FIELDPATH_ROOT("ca_chain_der"),
		    pb->n_ca_chain_der, MSG_CA_CHAIN_MAX, err, errlen);
	for (size_t i = 0; rc == 0 && i < pb->n_ca_chain_der; i++) {
		rc = pbconv_get_blob(fieldpath_idx(p, NULL, "ca_chain_der",
		    i),
		    &pb->ca_chain_der[i], MSG_DER_MAX, &out->ca_chain_der[i],
		    err, errlen);
		out->n_ca_chain = i + 1;
	}
	protobuf_c_message_free_unpacked(&pb->base, &a);
	if (rc == 0)
		rc = msg_validate_enroll_response(out, err, errlen);
	if (rc == -1)
		msg_enroll_response_free(out);
	return rc;
}

int
pbconv_decode_edge_message(const uint8_t *buf, size_t len,
    struct msg_edge_message *out, char *err, size_t errlen)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbEdgeMessage *pb;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((pb = (PbEdgeMessage *)pbconv_unpack(
	    &meshwan__v1__edge_message__descriptor, PBCONV_MAX_SESSION_MSG, buf, len, &b,
	    &a, err, errlen)) == NULL)
		return -1;
	rc = pbconv_get_edge(pb, out, err, errlen);
	protobuf_c_message_free_unpacked(&pb->base, &a);
	if (rc == 0)
		rc = msg_validate_edge_message(out, err, errlen);
	if (rc == -1)
		msg_edge_message_free(out);
	return rc;
}

int
pbconv_decode_controller_message(const uint8_t *buf, size_t len,
    struct msg_controller_message *out, char *err, size_t errlen)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbControllerMessage *pb;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((pb = (PbControllerMessage *)pbconv_unpack(
	    &meshwan__v1__controller_message__descriptor, PBCONV_MAX_SESSION_MSG, buf, len, &b,
	    &a, err, errlen)) == NULL)
		return -1;
	rc = pbconv_get_controller(pb, out, err, errlen);
	protobuf_c_message_free_unpacked(&pb->base, &a);
	if (rc == 0)
		rc = msg_validate_controller_message(out, err, errlen);
	if (rc == -1)
		msg_controller_message_free(out);
	return rc;
}

/*
 * The intent version a controller message names, read even when
 * pbconv_decode_controller_message() refuses the message, so that the edge
 * can ack that version failed.  0 when the bytes do not decode or name no
 * intent version.
 */
uint64_t
pbconv_controller_message_version(const uint8_t *buf, size_t len)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbControllerMessage *pb;
	char err[PBCONV_ERR_LEN];
	uint64_t v = 0;

	if ((pb = (PbControllerMessage *)pbconv_unpack(
	    &meshwan__v1__controller_message__descriptor,
	    PBCONV_MAX_SESSION_MSG, buf, len, &b, &a, err,
	    sizeof(err))) == NULL)
		return 0;
	if (pb->body_case == MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT &&
	    pb->snapshot != NULL)
		v = pb->snapshot->version;
	else if (pb->body_case == MESHWAN__V1__CONTROLLER_MESSAGE__BODY_DELTA &&
	    pb->delta != NULL)
		v = pb->delta->version;
	protobuf_c_message_free_unpacked(&pb->base, &a);
	return v;
}

int
pbconv_controller_message_rekey(const uint8_t *buf, size_t len,
    uint64_t *tunnel_id, uint64_t *epoch, enum msg_rekey_step *step)
{
	struct pbconv_budget b = { 0, false };
	ProtobufCAllocator a;
	PbControllerMessage *pb;
	char err[PBCONV_ERR_LEN];
	int rc = -1;

	*tunnel_id = *epoch = 0;
	*step = MSG_REKEY_STEP_UNSPECIFIED;
	if ((pb = (PbControllerMessage *)pbconv_unpack(
	    &meshwan__v1__controller_message__descriptor,
	    PBCONV_MAX_SESSION_MSG, buf, len, &b, &a, err,
	    sizeof(err))) == NULL)
		return -1;
	if (pb->body_case == MESHWAN__V1__CONTROLLER_MESSAGE__BODY_REKEY &&
	    pb->rekey != NULL) {
		*tunnel_id = pb->rekey->tunnel_id;
		*epoch = pb->rekey->epoch;
		/* Only a known step names one: else UNSPECIFIED. */
		if ((int)pb->rekey->step >= (int)MSG_REKEY_STEP_INSTALL_INBOUND &&
		    (int)pb->rekey->step <= (int)MSG_REKEY_STEP_RETIRE)
			*step = (enum msg_rekey_step)pb->rekey->step;
		rc = 0;
	}
	protobuf_c_message_free_unpacked(&pb->base, &a);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encoding: an arena for the generated structs */

struct pbconv_chunk {
	struct pbconv_chunk *next;
	size_t used;
	size_t size;
	max_align_t data[];
};

struct pbconv_arena {
	struct pbconv_chunk *head;
};

#define PBCONV_CHUNK ((size_t)64 * 1024)

/* Zeroed memory that lives until pbconv_arena_free; NULL on ENOMEM. */
static void *
pbconv_arena_alloc(struct pbconv_arena *ar, size_t size)
{
	struct pbconv_chunk *c = ar->head;
	size_t al = alignof(max_align_t);
	void *p;

	size = (size + al - 1) / al * al;
	if (c == NULL || c->size - c->used < size) {
		size_t cap = size > PBCONV_CHUNK ? size : PBCONV_CHUNK;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->next = ar->head;
		c->used = 0;
		c->size = cap;
		ar->head = c;
	}
	p = (uint8_t *)c->data + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

static void
pbconv_arena_free(struct pbconv_arena *ar)
{
	struct pbconv_chunk *c, *n;

	for (c = ar->head; c != NULL; c = n) {
		n = c->next;
		free(c);
	}
	ar->head = NULL;
}

/* Array of n pointers to fresh structs of `size` bytes, each initialised
 * by copying `init` (the generated *__INIT value). */
static void **
pbconv_arena_ptrs(struct pbconv_arena *ar, size_t n, size_t size,
    const void *init)
{
	void **v;

	if (n == 0)
		return NULL;
	if ((v = pbconv_arena_alloc(ar, n * sizeof(*v))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((v[i] = pbconv_arena_alloc(ar, size)) == NULL)
			return NULL;
		memcpy(v[i], init, size);
	}
	return v;
}

#define PB_NEW(ar, T, init) pbconv_arena_new((ar), sizeof(T), &(init))

static void *
pbconv_arena_new(struct pbconv_arena *ar, size_t size, const void *init)
{
	void *p = pbconv_arena_alloc(ar, size);

	if (p != NULL)
		memcpy(p, init, size);
	return p;
}

/* The generated structs take non-const pointers but packing only reads. */
static char *
pbconv_str(const char *s)
{
	union {
		const char *c;
		char *m;
	} u;

	u.c = s;
	return u.m;
}

static ProtobufCBinaryData
pbconv_bin(const uint8_t *data, size_t len)
{
	ProtobufCBinaryData d;
	union {
		const uint8_t *c;
		uint8_t *m;
	} u;

	u.c = data;
	d.data = u.m;
	d.len = len;
	return d;
}

static char *
pbconv_put_addr(struct pbconv_arena *ar, const struct msg_addr *a)
{
	char *s;

	if (a->family == 0)
		return pbconv_str("");
	if ((s = pbconv_arena_alloc(ar, MSG_ADDR_STRLEN)) == NULL ||
	    msg_addr_format(a, s, MSG_ADDR_STRLEN) == -1)
		return NULL;
	return s;
}

static char *
pbconv_put_prefix(struct pbconv_arena *ar, const struct msg_prefix *p)
{
	char *s;

	if ((s = pbconv_arena_alloc(ar, MSG_PREFIX_STRLEN)) == NULL ||
	    msg_prefix_format(p, s, MSG_PREFIX_STRLEN) == -1)
		return NULL;
	return s;
}

/* n (> 0) prefixes as CIDR text; NULL on ENOMEM. */
static char **
pbconv_put_prefixes(struct pbconv_arena *ar, const struct msg_prefix *p,
    size_t n)
{
	char **v;

	if ((v = pbconv_arena_alloc(ar, n * sizeof(char *))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((v[i] = pbconv_put_prefix(ar, &p[i])) == NULL)
			return NULL;
	return v;
}

static PbPeerKey **
pbconv_put_peer_keys(struct pbconv_arena *ar, const struct msg_peer_key *k,
    size_t n)
{
	static const PbPeerKey init = MESHWAN__V1__PEER_KEY__INIT;
	PbPeerKey **v;

	if (n == 0)
		return NULL;
	if ((v = (PbPeerKey **)pbconv_arena_ptrs(ar, n, sizeof(PbPeerKey),
	    &init)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		v[i]->epoch = k[i].epoch;
		v[i]->public_key = pbconv_bin(k[i].public_key, MSG_KEY_LEN);
		v[i]->signature = pbconv_bin(k[i].signature,
		    k[i].signature_len);
		v[i]->not_after = k[i].not_after;
	}
	return v;
}

static PbSite *
pbconv_put_site(struct pbconv_arena *ar, const struct msg_site *m)
{
	static const PbSite init = MESHWAN__V1__SITE__INIT;
	static const PbWanLink linit = MESHWAN__V1__WAN_LINK__INIT;
	PbSite *s;

	if ((s = PB_NEW(ar, PbSite, init)) == NULL)
		return NULL;
	s->id = m->id;
	s->name = pbconv_str(m->name);
	s->asn = m->asn;
	s->role = (Meshwan__V1__Role)m->role;
	s->region = pbconv_str(m->region);
	if (m->n_lan_prefixes > 0) {
		s->lan_prefixes = pbconv_put_prefixes(ar, m->lan_prefixes,
		    m->n_lan_prefixes);
		if (s->lan_prefixes == NULL)
			return NULL;
		s->n_lan_prefixes = m->n_lan_prefixes;
	}
	if (m->n_links > 0) {
		s->links = (PbWanLink **)pbconv_arena_ptrs(ar, m->n_links,
		    sizeof(PbWanLink), &linit);
		if (s->links == NULL)
			return NULL;
		for (size_t i = 0; i < m->n_links; i++) {
			const struct msg_wan_link *l = &m->links[i];
			PbWanLink *o = s->links[i];

			o->name = pbconv_str(l->name);
			o->public_port = l->public_port;
			if ((o->address = pbconv_put_addr(ar, &l->address)) ==
			    NULL || (o->public_address = pbconv_put_addr(ar,
			    &l->public_address)) == NULL)
				return NULL;
		}
		s->n_links = m->n_links;
	}
	return s;
}

static PbSaKeyRef *
pbconv_put_sa_ref(struct pbconv_arena *ar, const struct msg_sa_key_ref *m)
{
	static const PbSaKeyRef init = MESHWAN__V1__SA_KEY_REF__INIT;
	PbSaKeyRef *r;

	if ((r = PB_NEW(ar, PbSaKeyRef, init)) == NULL)
		return NULL;
	r->spi = m->spi;
	r->sa_epoch = m->sa_epoch;
	r->sender_key_epoch = m->sender_key_epoch;
	r->receiver_key_epoch = m->receiver_key_epoch;
	return r;
}

static int
pbconv_put_tunnel(struct pbconv_arena *ar, const struct msg_tunnel *m,
    PbTunnel *t)
{
	static const PbCryptoProfile cinit = MESHWAN__V1__CRYPTO_PROFILE__INIT;
	static const PbPeer pinit = MESHWAN__V1__PEER__INIT;
	static const PbBgpNeighbor binit = MESHWAN__V1__BGP_NEIGHBOR__INIT;

	t->id = m->id;
	t->local_link = pbconv_str(m->local_link);
	t->remote_link = pbconv_str(m->remote_link);
	t->remote_port = m->remote_port;
	t->encap = (Meshwan__V1__Encap)m->encap;
	t->vni = m->vni;
	t->mtu = m->mtu;
	if ((t->sa_in = pbconv_put_sa_ref(ar, &m->sa_in)) == NULL ||
	    (t->sa_out = pbconv_put_sa_ref(ar, &m->sa_out)) == NULL)
		return -1;
	if ((t->remote_address = pbconv_put_addr(ar, &m->remote_address)) ==
	    NULL ||
	    (t->inner_local = pbconv_put_prefix(ar, &m->inner_local)) == NULL ||
	    (t->inner_remote = pbconv_put_addr(ar, &m->inner_remote)) == NULL ||
	    (t->crypto = PB_NEW(ar, PbCryptoProfile, cinit)) == NULL ||
	    (t->peer = PB_NEW(ar, PbPeer, pinit)) == NULL ||
	    (t->bgp = PB_NEW(ar, PbBgpNeighbor, binit)) == NULL)
		return -1;
	t->crypto->cipher = (Meshwan__V1__Cipher)m->crypto.cipher;
	t->crypto->esn = m->crypto.esn;
	t->crypto->replay_window = m->crypto.replay_window;
	t->crypto->rekey_seconds = m->crypto.rekey_seconds;
	t->crypto->rekey_bytes = m->crypto.rekey_bytes;
	t->crypto->rekey_packets = m->crypto.rekey_packets;
	t->peer->site_id = m->peer.site_id;
	t->peer->name = pbconv_str(m->peer.name);
	t->peer->certificate_der = pbconv_bin(m->peer.certificate_der.data,
	    m->peer.certificate_der.len);
	if (m->peer.n_keys > 0) {
		t->peer->keys = pbconv_put_peer_keys(ar, m->peer.keys,
		    m->peer.n_keys);
		if (t->peer->keys == NULL)
			return -1;
		t->peer->n_keys = m->peer.n_keys;
	}
	if (m->peer.n_allowed_prefixes > 0) {
		if ((t->peer->allowed_prefixes = pbconv_put_prefixes(ar,
		    m->peer.allowed_prefixes, m->peer.n_allowed_prefixes)) ==
		    NULL)
			return -1;
		t->peer->n_allowed_prefixes = m->peer.n_allowed_prefixes;
	}
	if ((t->bgp->address = pbconv_put_addr(ar, &m->bgp.address)) == NULL)
		return -1;
	/* Dual stack only when set: an IPv4-only tunnel encodes as before. */
	if (m->inner_local6.addr.family != 0 &&
	    (t->inner_local6 = pbconv_put_prefix(ar, &m->inner_local6)) == NULL)
		return -1;
	if (m->inner_remote6.family != 0 &&
	    (t->inner_remote6 = pbconv_put_addr(ar, &m->inner_remote6)) == NULL)
		return -1;
	if (m->bgp.address6.family != 0 &&
	    (t->bgp->address6 = pbconv_put_addr(ar, &m->bgp.address6)) == NULL)
		return -1;
	t->bgp->remote_asn = m->bgp.remote_asn;
	t->bgp->hold_time = m->bgp.hold_time;
	t->bgp->keepalive = m->bgp.keepalive;
	t->bgp->bfd = m->bgp.bfd;
	t->bgp->route_server_client = m->bgp.route_server_client;
	return 0;
}

static PbTunnel **
pbconv_put_tunnels(struct pbconv_arena *ar, const struct msg_tunnel *m,
    size_t n)
{
	static const PbTunnel init = MESHWAN__V1__TUNNEL__INIT;
	PbTunnel **v;

	if (n == 0)
		return NULL;
	v = (PbTunnel **)pbconv_arena_ptrs(ar, n, sizeof(PbTunnel), &init);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (pbconv_put_tunnel(ar, &m[i], v[i]) == -1)
			return NULL;
	return v;
}

static PbIntent *
pbconv_put_intent(struct pbconv_arena *ar, const struct msg_intent *m)
{
	static const PbIntent init = MESHWAN__V1__INTENT__INIT;
	PbIntent *pb;

	if ((pb = PB_NEW(ar, PbIntent, init)) == NULL)
		return NULL;
	pb->version = m->version;
	pb->ca_chain_der = pbconv_bin(m->ca_chain_der.data,
	    m->ca_chain_der.len);
	pb->keepalive_seconds = m->keepalive_seconds;
	pb->headless_grace_seconds = m->headless_grace_seconds;
	if ((pb->site = pbconv_put_site(ar, &m->site)) == NULL)
		return NULL;
	if (m->n_tunnels > 0) {
		pb->tunnels = pbconv_put_tunnels(ar, m->tunnels, m->n_tunnels);
		if (pb->tunnels == NULL)
			return NULL;
		pb->n_tunnels = m->n_tunnels;
	}
	return pb;
}

static PbIntentDelta *
pbconv_put_delta(struct pbconv_arena *ar, const struct msg_intent_delta *m)
{
	static const PbIntentDelta init = MESHWAN__V1__INTENT_DELTA__INIT;
	PbIntentDelta *pb;

	if ((pb = PB_NEW(ar, PbIntentDelta, init)) == NULL)
		return NULL;
	pb->from_version = m->from_version;
	pb->version = m->version;
	if (m->has_site && (pb->site = pbconv_put_site(ar, &m->site)) == NULL)
		return NULL;
	if (m->n_upsert > 0) {
		pb->upsert = pbconv_put_tunnels(ar, m->upsert, m->n_upsert);
		if (pb->upsert == NULL)
			return NULL;
		pb->n_upsert = m->n_upsert;
	}
	pb->remove = m->remove;
	pb->n_remove = m->n_remove;
	return pb;
}

/* Pack into a malloc'd buffer. */
static int
pbconv_pack(const ProtobufCMessage *pb, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(pb);

	/* malloc(0) may return NULL: an empty message is one spare byte. */
	if ((*buf = malloc(n > 0 ? n : 1)) == NULL)
		return -1;
	*len = protobuf_c_message_pack(pb, *buf);
	return 0;
}

/* Shared tail of every encoder: log a refused struct, pack, clean up. */
static int
pbconv_encode_finish(const char *what, int valid, const char *verr,
    const ProtobufCMessage *pb, struct pbconv_arena *ar, uint8_t **buf,
    size_t *len)
{
	int rc = -1;

	if (valid == -1)
		log_warnx("pbconv: refusing to encode %s: %s", what, verr);
	else if (pb == NULL)
		log_warnx("pbconv: out of memory encoding %s", what);
	else if (pbconv_pack(pb, buf, len) == -1)
		log_warnx("pbconv: out of memory packing %s", what);
	else
		rc = 0;
	pbconv_arena_free(ar);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encoders */

int
pbconv_encode_enroll_request(const struct msg_enroll_request *m,
    uint8_t **buf, size_t *len)
{
	PbEnrollRequest pb = MESHWAN__V1__ENROLL_REQUEST__INIT;
	struct pbconv_arena ar = { NULL };
	char verr[PBCONV_ERR_LEN];
	int valid;

	*buf = NULL;
	*len = 0;
	valid = msg_validate_enroll_request(m, verr, sizeof(verr));
	pb.token = pbconv_str(m->token);
	pb.csr_der = pbconv_bin(m->csr_der.data, m->csr_der.len);
	pb.software_version = pbconv_str(m->software_version);
	return pbconv_encode_finish("EnrollRequest", valid, verr, &pb.base,
	    &ar, buf, len);
}

int
pbconv_encode_renew_request(const struct msg_renew_request *m,
    uint8_t **buf, size_t *len)
{
	PbRenewRequest pb = MESHWAN__V1__RENEW_REQUEST__INIT;
	struct pbconv_arena ar = { NULL };
	char verr[PBCONV_ERR_LEN];
	int valid;

	*buf = NULL;
	*len = 0;
	valid = msg_validate_renew_request(m, verr, sizeof(verr));
	pb.csr_der = pbconv_bin(m->csr_der.data, m->csr_der.len);
	pb.software_version = pbconv_str(m->software_version);
	return pbconv_encode_finish("RenewRequest", valid, verr, &pb.base,
	    &ar, buf, len);
}

int
pbconv_encode_enroll_response(const struct msg_enroll_response *m,
    uint8_t **buf, size_t *len)
{
	PbEnrollResponse pb = MESHWAN__V1__ENROLL_RESPONSE__INIT;
	ProtobufCBinaryData chain[MSG_CA_CHAIN_MAX];
	struct pbconv_arena ar = { NULL };
	char verr[PBCONV_ERR_LEN];
	int valid;

	*buf = NULL;
	*len = 0;
	valid = msg_validate_enroll_response(m, verr, sizeof(verr));
	pb.error = (Meshwan__V1__EnrollError)m->error;
	pb.error_message = pbconv_str(m->error_message);
	pb.site_id = m->site_id;
	pb.certificate_der = pbconv_bin(m->certificate_der.data,
	    m->certificate_der.len);
	for (size_t i = 0; valid == 0 && i < m->n_ca_chain; i++)
		chain[i] = pbconv_bin(m->ca_chain_der[i].data,
		    m->ca_chain_der[i].len);
	pb.n_ca_chain_der = valid == 0 ? m->n_ca_chain : 0;
	pb.ca_chain_der = chain;
	pb.controller_name = pbconv_str(m->controller_name);
	return pbconv_encode_finish("EnrollResponse", valid, verr, &pb.base,
	    &ar, buf, len);
}

static PbStatus *
pbconv_put_status(struct pbconv_arena *ar, const struct msg_status *m)
{
	static const PbStatus init = MESHWAN__V1__STATUS__INIT;
	static const PbTunnelStatus tinit = MESHWAN__V1__TUNNEL_STATUS__INIT;
	static const PbSaStatus sinit = MESHWAN__V1__SA_STATUS__INIT;
	static const PbBgpNeighborStatus binit =
	    MESHWAN__V1__BGP_NEIGHBOR_STATUS__INIT;
	static const PbHealthStatus hinit = MESHWAN__V1__HEALTH_STATUS__INIT;
	PbStatus *pb;

	if ((pb = PB_NEW(ar, PbStatus, init)) == NULL)
		return NULL;
	pb->applied_version = m->applied_version;
	pb->uptime_seconds = m->uptime_seconds;
	if (m->n_tunnels > 0 && (pb->tunnels = (PbTunnelStatus **)
	    pbconv_arena_ptrs(ar, m->n_tunnels, sizeof(PbTunnelStatus),
	    &tinit)) == NULL)
		return NULL;
	pb->n_tunnels = m->n_tunnels;
	for (size_t i = 0; i < m->n_tunnels; i++) {
		const struct msg_tunnel_status *t = &m->tunnels[i];
		PbTunnelStatus *o = pb->tunnels[i];

		o->tunnel_id = t->tunnel_id;
		o->state = (Meshwan__V1__TunnelState)t->state;
		o->error = pbconv_str(t->error);
		o->packets_in = t->packets_in;
		o->packets_out = t->packets_out;
		o->bytes_in = t->bytes_in;
		o->bytes_out = t->bytes_out;
		o->drops_no_sa = t->drops_no_sa;
		o->drops_malformed = t->drops_malformed;
		o->drops_unknown_spi = t->drops_unknown_spi;
		if ((o->peer_address = pbconv_put_addr(ar,
		    &t->peer_address)) == NULL)
			return NULL;
		o->peer_port = t->peer_port;
		o->peer_moves = t->peer_moves;
		if (t->n_sas > 0 && (o->sas = (PbSaStatus **)pbconv_arena_ptrs(
		    ar, t->n_sas, sizeof(PbSaStatus), &sinit)) == NULL)
			return NULL;
		o->n_sas = t->n_sas;
		for (size_t j = 0; j < t->n_sas; j++) {
			const struct msg_sa_status *s = &t->sas[j];
			PbSaStatus *d = o->sas[j];

			d->spi = s->spi;
			d->direction = (Meshwan__V1__Direction)s->direction;
			d->epoch = s->epoch;
			d->packets = s->packets;
			d->bytes = s->bytes;
			d->age_seconds = s->age_seconds;
			d->seq = s->seq;
			d->drops_auth = s->drops_auth;
			d->drops_replay = s->drops_replay;
			d->active = s->active;
		}
	}
	if (m->n_bgp > 0 && (pb->bgp = (PbBgpNeighborStatus **)
	    pbconv_arena_ptrs(ar, m->n_bgp, sizeof(PbBgpNeighborStatus),
	    &binit)) == NULL)
		return NULL;
	pb->n_bgp = m->n_bgp;
	for (size_t i = 0; i < m->n_bgp; i++) {
		const struct msg_bgp_neighbor_status *b = &m->bgp[i];
		PbBgpNeighborStatus *o = pb->bgp[i];

		if ((o->address = pbconv_put_addr(ar, &b->address)) == NULL)
			return NULL;
		o->remote_asn = b->remote_asn;
		o->state = (Meshwan__V1__BgpState)b->state;
		o->uptime_seconds = b->uptime_seconds;
		o->prefixes_received = b->prefixes_received;
		o->prefixes_filtered = b->prefixes_filtered;
		o->tunnel_id = b->tunnel_id;
	}
	if (m->n_health > 0 && (pb->health = (PbHealthStatus **)
	    pbconv_arena_ptrs(ar, m->n_health, sizeof(PbHealthStatus),
	    &hinit)) == NULL)
		return NULL;
	pb->n_health = m->n_health;
	for (size_t i = 0; i < m->n_health; i++) {
		const struct msg_health_status *h = &m->health[i];
		PbHealthStatus *o = pb->health[i];

		o->tunnel_id = h->tunnel_id;
		o->up = h->up;
		o->rtt_us = h->rtt_us;
		o->loss_permille = h->loss_permille;
		o->jitter_us = h->jitter_us;
	}
	return pb;
}

/* The body of an EdgeMessage; NULL on ENOMEM. */
static PbEdgeMessage *
pbconv_put_edge(struct pbconv_arena *ar, const struct msg_edge_message *m)
{
	static const PbEdgeMessage init = MESHWAN__V1__EDGE_MESSAGE__INIT;
	static const PbHello hinit = MESHWAN__V1__HELLO__INIT;
	static const PbAck ainit = MESHWAN__V1__ACK__INIT;
	static const PbKeyAnnouncement kinit =
	    MESHWAN__V1__KEY_ANNOUNCEMENT__INIT;
	static const PbRekeyRequest qinit = MESHWAN__V1__REKEY_REQUEST__INIT;
	PbEdgeMessage *pb;

	if ((pb = PB_NEW(ar, PbEdgeMessage, init)) == NULL)
		return NULL;
	switch (m->kind) {
	case MSG_EDGE_HELLO: {
		const struct msg_hello *h = &m->u.hello;

		pb->body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO;
		if ((pb->hello = PB_NEW(ar, PbHello, hinit)) == NULL)
			return NULL;
		pb->hello->site_id = h->site_id;
		pb->hello->applied_version = h->applied_version;
		pb->hello->convergence_hash = pbconv_bin(h->convergence_hash,
		    h->has_convergence_hash ? MSG_HASH_LEN : 0);
		pb->hello->software_version = pbconv_str(h->software_version);
		pb->hello->backend = (Meshwan__V1__Backend)h->backend;
		pb->hello->features = h->features;
		break;
	}
	case MSG_EDGE_STATUS:
		pb->body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_STATUS;
		if ((pb->status = pbconv_put_status(ar, &m->u.status)) == NULL)
			return NULL;
		break;
	case MSG_EDGE_ACK: {
		const struct msg_ack *a = &m->u.ack;

		pb->body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_ACK;
		if ((pb->ack = PB_NEW(ar, PbAck, ainit)) == NULL)
			return NULL;
		pb->ack->version = a->version;
		pb->ack->ok = a->ok;
		pb->ack->reason = pbconv_str(a->reason);
		pb->ack->convergence_hash = pbconv_bin(a->convergence_hash,
		    a->has_convergence_hash ? MSG_HASH_LEN : 0);
		pb->ack->rekey_tunnel_id = a->rekey_tunnel_id;
		pb->ack->rekey_epoch = a->rekey_epoch;
		pb->ack->rekey_step = (Meshwan__V1__RekeyStep)a->rekey_step;
		break;
	}
	case MSG_EDGE_KEY: {
		const struct msg_key_announcement *k = &m->u.key;

		pb->body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_KEY;
		if ((pb->key = PB_NEW(ar, PbKeyAnnouncement, kinit)) == NULL)
			return NULL;
		pb->key->epoch = k->epoch;
		pb->key->public_key = pbconv_bin(k->public_key, MSG_KEY_LEN);
		pb->key->signature = pbconv_bin(k->signature,
		    k->signature_len);
		pb->key->not_after = k->not_after;
		break;
	}
	case MSG_EDGE_REKEY_REQUEST: {
		const struct msg_rekey_request *q = &m->u.rekey_request;

		pb->body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_REKEY_REQUEST;
		if ((pb->rekey_request = PB_NEW(ar, PbRekeyRequest, qinit)) ==
		    NULL)
			return NULL;
		pb->rekey_request->tunnel_id = q->tunnel_id;
		pb->rekey_request->direction = (Meshwan__V1__Direction)
		    q->direction;
		pb->rekey_request->reason = (Meshwan__V1__RekeyRequestReason)
		    q->reason;
		break;
	}
	default:
		return NULL;	/* refused by validation before we get here */
	}
	return pb;
}

int
pbconv_encode_edge_message(const struct msg_edge_message *m, uint8_t **buf,
    size_t *len)
{
	struct pbconv_arena ar = { NULL };
	char verr[PBCONV_ERR_LEN];
	PbEdgeMessage *pb = NULL;
	int valid;

	*buf = NULL;
	*len = 0;
	valid = msg_validate_edge_message(m, verr, sizeof(verr));
	if (valid == 0)
		pb = pbconv_put_edge(&ar, m);
	return pbconv_encode_finish("EdgeMessage", valid, verr,
	    pb != NULL ? &pb->base : NULL, &ar, buf, len);
}

static PbControllerMessage *
pbconv_put_controller(struct pbconv_arena *ar,
    const struct msg_controller_message *m)
{
	static const PbControllerMessage init =
	    MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	static const PbRekeyOrder rinit = MESHWAN__V1__REKEY_ORDER__INIT;
	static const PbKeepalive kinit = MESHWAN__V1__KEEPALIVE__INIT;
	static const PbBackoff binit = MESHWAN__V1__BACKOFF__INIT;
	static const PbPeerKeys pinit = MESHWAN__V1__PEER_KEYS__INIT;
	PbControllerMessage *pb;

	if ((pb = PB_NEW(ar, PbControllerMessage, init)) == NULL)
		return NULL;
	switch (m->kind) {
	case MSG_CONTROLLER_SNAPSHOT:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT;
		pb->snapshot = pbconv_put_intent(ar, &m->u.snapshot);
		return pb->snapshot != NULL ? pb : NULL;
	case MSG_CONTROLLER_DELTA:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_DELTA;
		pb->delta = pbconv_put_delta(ar, &m->u.delta);
		return pb->delta != NULL ? pb : NULL;
	case MSG_CONTROLLER_REKEY:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_REKEY;
		if ((pb->rekey = PB_NEW(ar, PbRekeyOrder, rinit)) == NULL)
			return NULL;
		pb->rekey->tunnel_id = m->u.rekey.tunnel_id;
		pb->rekey->epoch = m->u.rekey.epoch;
		pb->rekey->step = (Meshwan__V1__RekeyStep)m->u.rekey.step;
		pb->rekey->reason =
		    (Meshwan__V1__RekeyReason)m->u.rekey.reason;
		pb->rekey->spi = m->u.rekey.spi;
		pb->rekey->drain_seconds = m->u.rekey.drain_seconds;
		pb->rekey->sender_key_epoch = m->u.rekey.sender_key_epoch;
		pb->rekey->receiver_key_epoch = m->u.rekey.receiver_key_epoch;
		return pb;
	case MSG_CONTROLLER_KEEPALIVE:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE;
		if ((pb->keepalive = PB_NEW(ar, PbKeepalive, kinit)) == NULL)
			return NULL;
		pb->keepalive->controller_time =
		    m->u.keepalive.controller_time;
		return pb;
	case MSG_CONTROLLER_BACKOFF:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_BACKOFF;
		if ((pb->backoff = PB_NEW(ar, PbBackoff, binit)) == NULL)
			return NULL;
		pb->backoff->retry_after_seconds =
		    m->u.backoff.retry_after_seconds;
		pb->backoff->reason = pbconv_str(m->u.backoff.reason);
		return pb;
	case MSG_CONTROLLER_PEER_KEYS:
		pb->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_PEER_KEYS;
		if ((pb->peer_keys = PB_NEW(ar, PbPeerKeys, pinit)) == NULL)
			return NULL;
		pb->peer_keys->peer_site_id = m->u.peer_keys.peer_site_id;
		pb->peer_keys->keys = pbconv_put_peer_keys(ar,
		    m->u.peer_keys.keys, m->u.peer_keys.n_keys);
		if (pb->peer_keys->keys == NULL)
			return NULL;
		pb->peer_keys->n_keys = m->u.peer_keys.n_keys;
		return pb;
	default:
		return NULL;	/* refused by validation before we get here */
	}
}

int
pbconv_encode_controller_message(const struct msg_controller_message *m,
    uint8_t **buf, size_t *len)
{
	struct pbconv_arena ar = { NULL };
	char verr[PBCONV_ERR_LEN];
	PbControllerMessage *pb = NULL;
	int valid;

	*buf = NULL;
	*len = 0;
	valid = msg_validate_controller_message(m, verr, sizeof(verr));
	if (valid == 0)
		pb = pbconv_put_controller(&ar, m);
	return pbconv_encode_finish("ControllerMessage", valid, verr,
	    pb != NULL ? &pb->base : NULL, &ar, buf, len);
}

/* ------------------------------------------------------------------ */
/* Convergence hash (definition in proto/README.md) */

/* A reusable output buffer for packing one message after another. */
struct pbconv_scratch {
	uint8_t *buf;
	size_t cap;
};

/* SHA-256 of a message's protobuf encoding. */
static int
pbconv_digest(EVP_MD_CTX *ctx, struct pbconv_scratch *sc,
    const ProtobufCMessage *pb, uint8_t out[MSG_HASH_LEN])
{
	size_t len = protobuf_c_message_get_packed_size(pb);
	unsigned int n = 0;

	if (len > sc->cap) {
		uint8_t *p = realloc(sc->buf, len);

		if (p == NULL)
			return -1;
		sc->buf = p;
		sc->cap = len;
	}
	if (len > 0)
		len = protobuf_c_message_pack(pb, sc->buf);
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, sc->buf, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != MSG_HASH_LEN)
		return -1;
	return 0;
}

/* Make the arena's memory reusable, keeping its newest chunk. */
static void
pbconv_arena_reset(struct pbconv_arena *ar)
{
	struct pbconv_chunk *keep = ar->head;

	if (keep == NULL)
		return;
	ar->head = keep->next;
	pbconv_arena_free(ar);
	keep->next = NULL;
	keep->used = 0;
	ar->head = keep;
}

static int
pbconv_tunnel_digest_ctx(EVP_MD_CTX *ctx, struct pbconv_arena *ar,
    struct pbconv_scratch *sc, const struct msg_tunnel *t,
    uint8_t out[MSG_HASH_LEN])
{
	static const PbTunnel init = MESHWAN__V1__TUNNEL__INIT;
	PbTunnel pb = init;
	int rc = -1;

	if (pbconv_put_tunnel(ar, t, &pb) == 0)
		rc = pbconv_digest(ctx, sc, &pb.base, out);
	pbconv_arena_reset(ar);
	return rc;
}

struct pbconv_order {
	uint64_t id;
	size_t pos;
};

static int
pbconv_cmp_order(const void *a, const void *b)
{
	const struct pbconv_order *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* D0: the digest of the intent without its tunnels. */
static int
pbconv_intent_d0(EVP_MD_CTX *ctx, const struct msg_intent *m,
    uint8_t d0[MSG_HASH_LEN])
{
	struct pbconv_arena ar = { NULL };
	struct pbconv_scratch sc = { NULL, 0 };
	struct msg_intent hdr = *m;
	PbIntent *pb;
	int rc = -1;

	hdr.tunnels = NULL;
	hdr.n_tunnels = 0;
	if ((pb = pbconv_put_intent(&ar, &hdr)) != NULL)
		rc = pbconv_digest(ctx, &sc, &pb->base, d0);
	free(sc.buf);
	pbconv_arena_free(&ar);
	return rc;
}

/*
 * H = SHA-256(D0 || D(t) for each tunnel by ascending id), where D0 is the
 * digest of the intent without its tunnels and dig + 32 * i that of
 * m->tunnels[i].
 */
static int
pbconv_hash_combine(EVP_MD_CTX *ctx, const struct msg_intent *m,
    const uint8_t *dig, uint8_t out[MSG_HASH_LEN])
{
	struct pbconv_order *order = NULL;
	uint8_t d0[MSG_HASH_LEN];
	unsigned int n = 0;
	int rc = -1;
	bool sorted = true;

	if (pbconv_intent_d0(ctx, m, d0) == -1)
		goto out;
	/* Intents are usually in id order already (the controller builds
	 * them so): then the digests go in as one block, no sort. */
	for (size_t i = 1; i < m->n_tunnels && sorted; i++)
		sorted = m->tunnels[i - 1].id < m->tunnels[i].id;
	if (!sorted) {
		if ((order = calloc(m->n_tunnels, sizeof(*order))) == NULL)
			goto out;
		for (size_t i = 0; i < m->n_tunnels; i++) {
			order[i].id = m->tunnels[i].id;
			order[i].pos = i;
		}
		qsort(order, m->n_tunnels, sizeof(*order), pbconv_cmp_order);
		for (size_t i = 1; i < m->n_tunnels; i++) {
			if (order[i].id == order[i - 1].id) {
				log_warnx("pbconv: no hash for an intent with "
				    "tunnel id %llu twice",
				    (unsigned long long)order[i].id);
				goto out;
			}
		}
	}
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, d0, sizeof(d0)) != 1)
		goto out;
	if (sorted && m->n_tunnels > 0 && EVP_DigestUpdate(ctx, dig,
	    m->n_tunnels * MSG_HASH_LEN) != 1)
		goto out;
	for (size_t i = 0; !sorted && i < m->n_tunnels; i++)
		if (EVP_DigestUpdate(ctx, dig + order[i].pos * MSG_HASH_LEN,
		    MSG_HASH_LEN) != 1)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != MSG_HASH_LEN)
		goto out;
	rc = 0;
out:
	free(order);
	return rc;
}

int
pbconv_tunnel_digest(const struct msg_tunnel *t, uint8_t out[MSG_HASH_LEN])
{
	struct pbconv_arena ar = { NULL };
	struct pbconv_scratch sc = { NULL, 0 };
	char verr[PBCONV_ERR_LEN];
	EVP_MD_CTX *ctx;
	int rc = -1;

	if (msg_validate_tunnel(t, verr, sizeof(verr)) == -1) {
		log_warnx("pbconv: no digest for an invalid tunnel: %s", verr);
		return -1;
	}
	if ((ctx = EVP_MD_CTX_new()) != NULL)
		rc = pbconv_tunnel_digest_ctx(ctx, &ar, &sc, t, out);
	EVP_MD_CTX_free(ctx);
	pbconv_arena_free(&ar);
	free(sc.buf);
	if (rc == -1)
		log_warnx("pbconv: cannot digest tunnel %llu",
		    (unsigned long long)t->id);
	return rc;
}

int
pbconv_intent_hash(const struct msg_intent *m, uint8_t out[MSG_HASH_LEN])
{
	struct pbconv_arena ar = { NULL };
	struct pbconv_scratch sc = { NULL, 0 };
	char verr[PBCONV_ERR_LEN];
	EVP_MD_CTX *ctx = NULL;
	uint8_t *dig = NULL;
	int rc = -1;

	if (msg_validate_intent(m, verr, sizeof(verr)) == -1) {
		log_warnx("pbconv: no hash for an invalid intent: %s", verr);
		return -1;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (m->n_tunnels > 0 &&
	    (dig = malloc(m->n_tunnels * MSG_HASH_LEN)) == NULL)
		goto out;
	for (size_t i = 0; i < m->n_tunnels; i++)
		if (pbconv_tunnel_digest_ctx(ctx, &ar, &sc, &m->tunnels[i],
		    dig + i * MSG_HASH_LEN) == -1)
			goto out;
	rc = pbconv_hash_combine(ctx, m, dig, out);
out:
	pbconv_arena_free(&ar);
	free(sc.buf);
	if (rc == -1)
		log_warnx("pbconv: cannot compute the intent hash of version "
		    "%llu", (unsigned long long)m->version);
	free(dig);
	EVP_MD_CTX_free(ctx);
	return rc;
}

int
pbconv_intent_hash_digests(const struct msg_intent *m, const uint8_t *digests,
    uint8_t out[MSG_HASH_LEN])
{
	struct msg_intent hdr = *m;
	char verr[PBCONV_ERR_LEN];
	EVP_MD_CTX *ctx;
	int rc = -1;

	hdr.tunnels = NULL;
	hdr.n_tunnels = 0;
	if (msg_validate_intent(&hdr, verr, sizeof(verr)) == -1) {
		log_warnx("pbconv: no hash for an invalid intent: %s", verr);
		return -1;
	}
	if (m->n_tunnels > MSG_LIST_MAX || (m->n_tunnels > 0 &&
	    (m->tunnels == NULL || digests == NULL))) {
		log_warnx("pbconv: no hash for an intent of %zu tunnels "
		    "without them or their digests", m->n_tunnels);
		return -1;
	}
	if ((ctx = EVP_MD_CTX_new()) != NULL)
		rc = pbconv_hash_combine(ctx, m, digests, out);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Digests an edge keeps across deltas */

static int
pbconv_cmp_digest(const void *a, const void *b)
{
	const struct pbconv_digest *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct pbconv_digest *
pbconv_digest_find(struct pbconv_digest *v, size_t n, uint64_t id)
{
	struct pbconv_digest key = { .id = id };

	if (n == 0)
		return NULL;
	return bsearch(&key, v, n, sizeof(*v), pbconv_cmp_digest);
}

/* Digests of t[0..n) (valid tunnels) into v, then v sorted by id; -1 when
 * an id repeats. */
static int
pbconv_digest_sorted(EVP_MD_CTX *ctx, const struct msg_tunnel *t, size_t n,
    struct pbconv_digest *v)
{
	struct pbconv_arena ar = { NULL };
	struct pbconv_scratch sc = { NULL, 0 };
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		v[i].id = t[i].id;
		rc = pbconv_tunnel_digest_ctx(ctx, &ar, &sc, &t[i], v[i].digest);
	}
	free(sc.buf);
	pbconv_arena_free(&ar);
	if (rc == -1)
		return -1;
	if (n > 1)
		qsort(v, n, sizeof(*v), pbconv_cmp_digest);
	for (size_t i = 1; i < n; i++) {
		if (v[i].id == v[i - 1].id) {
			log_warnx("pbconv: tunnel id %llu twice",
			    (unsigned long long)v[i].id);
			return -1;
		}
	}
	return 0;
}

/*
 * The delta's changes to v (n_old digests by ascending id): drop the
 * removed ids, replace the upserted ones that exist, merge in the new ones.
 * In place but for one realloc, so an edge's cost is the delta's, not its
 * tunnel count's.  *vp and *np follow every step so the caller can free.
 */
static int
pbconv_digests_apply(EVP_MD_CTX *ctx, const struct msg_intent_delta *d,
    struct pbconv_digest **vp, size_t *np)
{
	struct pbconv_digest *v = *vp, *up = NULL, *nv;
	uint64_t *rm = NULL;
	size_t n_old = *np, n_new = 0, nn, w = 0, r = 0;
	char verr[PBCONV_ERR_LEN];
	int rc = -1;

	for (size_t j = 0; j < d->n_upsert; j++) {
		if (msg_validate_tunnel(&d->upsert[j], verr,
		    sizeof(verr)) == -1) {
			log_warnx("pbconv: no digest for upsert[%zu]: %s", j,
			    verr);
			return -1;
		}
	}
	if ((d->n_upsert > 0 &&
	    (up = calloc(d->n_upsert, sizeof(*up))) == NULL) ||
	    (d->n_remove > 0 &&
	    (rm = malloc(d->n_remove * sizeof(*rm))) == NULL))
		goto out;
	if (pbconv_digest_sorted(ctx, d->upsert, d->n_upsert, up) == -1)
		goto out;
	/* Replace in place, or keep up[] ascending for the merge. */
	for (size_t j = 0; j < d->n_upsert; j++) {
		struct pbconv_digest *x = pbconv_digest_find(v, n_old,
		    up[j].id);

		if (x != NULL)
			memcpy(x->digest, up[j].digest, MSG_HASH_LEN);
		else
			up[n_new++] = up[j];
	}
	if (d->n_remove > n_old) {
		log_warnx("pbconv: delta removes %zu of %zu tunnels",
		    d->n_remove, n_old);
		goto out;
	}
	nn = n_old - d->n_remove + n_new;
	if (nn > n_old) {
		if ((nv = realloc(v, util_size_class(nn) * sizeof(*v))) == NULL)
			goto out;
		*vp = v = nv;
	}
	/* Compact out the removed ids, walking both lists by ascending id;
	 * an id to remove that is not there is a digest list out of step. */
	if (d->n_remove > 0) {
		memcpy(rm, d->remove, d->n_remove * sizeof(*rm));
		qsort(rm, d->n_remove, sizeof(*rm), util_cmp_u64);
	}
	for (size_t i = 0; i < n_old; i++) {
		if (r < d->n_remove && rm[r] < v[i].id)
			break;
		if (r < d->n_remove && rm[r] == v[i].id) {
			r++;
			continue;
		}
		v[w++] = v[i];
	}
	if (r < d->n_remove) {
		log_warnx("pbconv: removed tunnel %llu has no digest",
		    (unsigned long long)rm[r]);
		goto out;
	}
	/* Merge the new ones in from the back. */
	for (size_t k = nn, i = w, j = n_new; j > 0;) {
		if (i > 0 && v[i - 1].id > up[j - 1].id)
			v[--k] = v[--i];
		else
			v[--k] = up[--j];
	}
	*np = nn;
	/* Sizes by util_size_class(), as msg_intent_apply_delta does. */
	if (nn > 0 && util_size_class(nn) < n_old &&
	    (nv = realloc(v, util_size_class(nn) * sizeof(*v))) != NULL)
		*vp = nv;	/* shrinking may fail harmlessly */
	rc = 0;
out:
	free(rm);
	free(up);
	return rc;
}

int
pbconv_intent_hash_update(const struct msg_intent *m,
    const struct msg_intent_delta *d, struct pbconv_digest **dig,
    size_t *n_dig, uint8_t out[MSG_HASH_LEN])
{
	struct msg_intent hdr = *m;
	char verr[PBCONV_ERR_LEN];
	EVP_MD_CTX *ctx = NULL;
	uint8_t d0[MSG_HASH_LEN];
	struct pbconv_digest *v;
	unsigned int hn = 0;
	size_t n;
	int rc = -1;

	hdr.tunnels = NULL;
	hdr.n_tunnels = 0;
	if (msg_validate_intent(d == NULL ? m : &hdr, verr,
	    sizeof(verr)) == -1) {
		log_warnx("pbconv: no hash for an invalid intent: %s", verr);
		goto out;
	}
	if (d != NULL && d->version != m->version) {
		log_warnx("pbconv: intent version %llu is not the delta's %llu",
		    (unsigned long long)m->version,
		    (unsigned long long)d->version);
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (d == NULL) {
		free(*dig);
		*dig = NULL;
		*n_dig = 0;
		if (m->n_tunnels > 0 &&
		    (*dig = calloc(m->n_tunnels, sizeof(**dig))) == NULL)
			goto out;
		*n_dig = m->n_tunnels;
		if (pbconv_digest_sorted(ctx, m->tunnels, m->n_tunnels,
		    *dig) == -1)
			goto out;
	} else if (pbconv_digests_apply(ctx, d, dig, n_dig) == -1) {
		goto out;
	}
	v = *dig;
	n = *n_dig;
	/* The digests must be those of m's tunnels: same count, ascending
	 * (so unique), and every tunnel of m among them. */
	if (n != m->n_tunnels) {
		log_warnx("pbconv: %zu digests for %zu tunnels", n,
		    m->n_tunnels);
		goto out;
	}
	for (size_t i = 1; i < n; i++) {
		if (v[i].id <= v[i - 1].id) {
			log_warnx("pbconv: digests out of order at %zu", i);
			goto out;
		}
	}
	for (size_t i = 0; i < m->n_tunnels; i++) {
		if (pbconv_digest_find(v, n, m->tunnels[i].id) == NULL) {
			log_warnx("pbconv: tunnel %llu has no digest",
			    (unsigned long long)m->tunnels[i].id);
			goto out;
		}
	}
	if (pbconv_intent_d0(ctx, m, d0) == -1 ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, d0, sizeof(d0)) != 1)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (EVP_DigestUpdate(ctx, v[i].digest, MSG_HASH_LEN) != 1)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, &hn) != 1 || hn != MSG_HASH_LEN)
		goto out;
	rc = 0;
out:
	if (rc == -1) {
		log_warnx("pbconv: cannot update the intent hash of version "
		    "%llu; the digests are dropped", (unsigned long long)m->version);
		free(*dig);
		*dig = NULL;
		*n_dig = 0;
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}
