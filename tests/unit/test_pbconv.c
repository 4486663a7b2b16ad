/*
 * test_pbconv.c — unit tests of the conversion layer (proto/msg.c,
 * proto/pbconv.c): every message round-trips with every field set, every
 * limit of meshwan.proto is refused with the field named, hostile buffers
 * (truncated, random, oversized, memory-amplifying) are refused, and the
 * convergence hash is deterministic.
 *
 * Invalid wire messages are made by encoding a valid struct, unpacking it
 * with the generated protobuf-c code, breaking one field and packing it
 * again: the encoders refuse invalid structs, so this is the only way to get
 * such bytes, and it exercises the real decode path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "lib/util.h"
#include "meshwan/v1/meshwan.pb-c.h"
#include "proto/msg.h"
#include "proto/pbconv.h"

/* ------------------------------------------------------------------ */
/* Builders: structs with every field set */

static void
addr(struct msg_addr *a, const char *s)
{
	assert_int_equal(msg_addr_parse(s, a), 0);
}

static void
fill_site(struct msg_site *s, uint64_t id)
{
	static const char *const pfx[] = { "10.1.0.0/24", "10.2.0.0/16",
		"2001:db8:1::/48" };

	memset(s, 0, sizeof(*s));
	s->id = id;
	snprintf(s->name, sizeof(s->name), "site-%llu", (unsigned long long)id);
	s->asn = 65001;
	s->role = MSG_ROLE_HUB;
	strcpy(s->region, "eu-west 1");
	s->lan_prefixes = calloc(3, sizeof(*s->lan_prefixes));
	assert_non_null(s->lan_prefixes);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(msg_prefix_parse(pfx[i], true,
		    &s->lan_prefixes[i]), 0);
	s->n_lan_prefixes = 3;
	strcpy(s->links[0].name, "inet");
	addr(&s->links[0].address, "192.0.2.10");
	addr(&s->links[0].public_address, "198.51.100.10");
	s->links[0].public_port = 4501;
	strcpy(s->links[1].name, "mpls_1");
	addr(&s->links[1].address, "2001:db8::10");
	s->n_links = 2;
}

static void
fill_key(struct msg_peer_key *k, uint64_t epoch)
{
	k->epoch = epoch;
	for (size_t i = 0; i < MSG_KEY_LEN; i++)
		k->public_key[i] = (uint8_t)(i + epoch);
	k->signature_len = 71;
	for (size_t i = 0; i < k->signature_len; i++)
		k->signature[i] = (uint8_t)(0x30 + i);
	k->not_after = 1900000000 + epoch;
}

/* Tunnel id with the /31 10.255.x.y derived from it. */
static void
fill_tunnel(struct msg_tunnel *t, uint64_t id, bool vxlan)
{
	char buf[64];
	uint8_t cert[600];

	memset(t, 0, sizeof(*t));
	t->id = id;
	strcpy(t->local_link, "inet");
	strcpy(t->remote_link, "lte");
	addr(&t->remote_address, "203.0.113.7");
	t->remote_port = 4500;
	t->encap = vxlan ? MSG_ENCAP_VXLAN : MSG_ENCAP_GRE;
	t->vni = vxlan ? (uint32_t)(1000 + id) : 0;
	snprintf(buf, sizeof(buf), "10.%u.%u.%u/31", (unsigned)(id >> 16) & 255,
	    (unsigned)(id >> 8) & 255, (unsigned)(id * 2) & 255);
	assert_int_equal(msg_prefix_parse(buf, false, &t->inner_local), 0);
	t->inner_remote = t->inner_local.addr;
	t->inner_remote.bytes[3] ^= 1;
	t->mtu = 1400;
	t->crypto.cipher = MSG_CIPHER_AES_GCM_256;
	t->crypto.esn = true;
	t->crypto.replay_window = 2048;
	t->crypto.rekey_seconds = 1800;
	t->crypto.rekey_bytes = 1ull << 40;
	t->crypto.rekey_packets = 1ull << 32;
	t->peer.site_id = 1000 + id;
	strcpy(t->peer.name, "peer-site");
	memset(cert, 0xa5, sizeof(cert));
	assert_int_equal(msg_blob_set(&t->peer.certificate_der, cert,
	    sizeof(cert)), 0);
	fill_key(&t->peer.keys[0], 7);
	fill_key(&t->peer.keys[1], 8);
	t->peer.n_keys = 2;
	t->peer.allowed_prefixes = calloc(3, sizeof(*t->peer.allowed_prefixes));
	assert_non_null(t->peer.allowed_prefixes);
	assert_int_equal(msg_prefix_parse("10.200.0.0/24", true,
	    &t->peer.allowed_prefixes[0]), 0);
	assert_int_equal(msg_prefix_parse("fd00:c8::/64", true,
	    &t->peer.allowed_prefixes[1]), 0);
	assert_int_equal(msg_prefix_parse("0.0.0.0/0", true,
	    &t->peer.allowed_prefixes[2]), 0);
	t->peer.n_allowed_prefixes = 3;
	t->bgp.address = t->inner_remote;
	t->bgp.remote_asn = 4200000001u;
	t->bgp.hold_time = 9;
	t->bgp.keepalive = 3;
	t->bgp.bfd = true;
	t->bgp.route_server_client = true;
	if (vxlan) {
		/* Dual stack on the VXLAN tunnels, IPv4 only on GRE. */
		snprintf(buf, sizeof(buf), "fd00:64::%x/127",
		    (unsigned)(id * 2) & 0xffff);
		assert_int_equal(msg_prefix_parse(buf, false,
		    &t->inner_local6), 0);
		t->inner_remote6 = t->inner_local6.addr;
		t->inner_remote6.bytes[15] ^= 1;
		t->bgp.address6 = t->inner_remote6;
	}
	t->sa_in = (struct msg_sa_key_ref){ 0x1000 + (uint32_t)id, 7, 8, 3 };
	t->sa_out = (struct msg_sa_key_ref){ 0x2000 + (uint32_t)id, 9, 3, 8 };
}

static void
fill_intent(struct msg_intent *m, size_t n_tunnels)
{
	uint8_t ca[900];

	memset(m, 0, sizeof(*m));
	m->version = 42;
	fill_site(&m->site, 1);
	if (n_tunnels > 0) {
		m->tunnels = calloc(n_tunnels, sizeof(*m->tunnels));
		assert_non_null(m->tunnels);
	}
	for (size_t i = 0; i < n_tunnels; i++)
		fill_tunnel(&m->tunnels[i], i + 1, i % 2 == 1);
	m->n_tunnels = n_tunnels;
	memset(ca, 0x5a, sizeof(ca));
	assert_int_equal(msg_blob_set(&m->ca_chain_der, ca, sizeof(ca)), 0);
	m->keepalive_seconds = 15;
	m->headless_grace_seconds = 7200;
}

/* ------------------------------------------------------------------ */
/* Comparators: memcmp with owned pointers masked, then the blobs */

/* Blob bytes are shared between copies (msg_blob_share) and immutable:
 * a test that changes them first makes them its own. */
static void
blob_own(struct msg_blob *b)
{
	assert_int_equal(msg_blob_set(b, b->data, b->len), 0);
}

static void
assert_blob_equal(const struct msg_blob *a, const struct msg_blob *b)
{
	assert_int_equal(a->len, b->len);
	if (a->len > 0)
		assert_memory_equal(a->data, b->data, a->len);
}

static void
assert_site_equal(const struct msg_site *a, const struct msg_site *b)
{
	struct msg_site x = *a, y = *b;

	assert_int_equal(a->n_lan_prefixes, b->n_lan_prefixes);
	if (a->n_lan_prefixes > 0)
		assert_memory_equal(a->lan_prefixes, b->lan_prefixes,
		    a->n_lan_prefixes * sizeof(*a->lan_prefixes));
	x.lan_prefixes = y.lan_prefixes = NULL;
	assert_memory_equal(&x, &y, sizeof(x));
}

static void
assert_tunnel_equal(const struct msg_tunnel *a, const struct msg_tunnel *b)
{
	struct msg_tunnel x = *a, y = *b;

	assert_blob_equal(&a->peer.certificate_der, &b->peer.certificate_der);
	x.peer.certificate_der.data = y.peer.certificate_der.data = NULL;
	assert_int_equal(a->peer.n_allowed_prefixes,
	    b->peer.n_allowed_prefixes);
	if (a->peer.n_allowed_prefixes > 0)
		assert_memory_equal(a->peer.allowed_prefixes,
		    b->peer.allowed_prefixes, a->peer.n_allowed_prefixes *
		    sizeof(*a->peer.allowed_prefixes));
	x.peer.allowed_prefixes = y.peer.allowed_prefixes = NULL;
	assert_memory_equal(&x, &y, sizeof(x));
}

static void
assert_intent_equal(const struct msg_intent *a, const struct msg_intent *b)
{
	assert_int_equal(a->version, b->version);
	assert_site_equal(&a->site, &b->site);
	assert_int_equal(a->n_tunnels, b->n_tunnels);
	for (size_t i = 0; i < a->n_tunnels; i++)
		assert_tunnel_equal(&a->tunnels[i], &b->tunnels[i]);
	assert_blob_equal(&a->ca_chain_der, &b->ca_chain_der);
	assert_int_equal(a->keepalive_seconds, b->keepalive_seconds);
	assert_int_equal(a->headless_grace_seconds, b->headless_grace_seconds);
}

/* Encode, decode, re-encode: the bytes must match too. */
static void
roundtrip_controller(const struct msg_controller_message *m,
    struct msg_controller_message *out)
{
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[PBCONV_ERR_LEN] = "";

	assert_int_equal(pbconv_encode_controller_message(m, &buf, &len), 0);
	if (pbconv_decode_controller_message(buf, len, out, err,
	    sizeof(err)) != 0)
		fail_msg("decode: %s", err);
	assert_int_equal(out->kind, m->kind);
	assert_int_equal(pbconv_encode_controller_message(out, &buf2, &len2),
	    0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf);
	free(buf2);
}

static void
roundtrip_edge(const struct msg_edge_message *m, struct msg_edge_message *out)
{
	uint8_t *buf, *buf2;
	size_t len, len2;
	char err[PBCONV_ERR_LEN] = "";

	assert_int_equal(pbconv_encode_edge_message(m, &buf, &len), 0);
	if (pbconv_decode_edge_message(buf, len, out, err, sizeof(err)) != 0)
		fail_msg("decode: %s", err);
	assert_int_equal(out->kind, m->kind);
	assert_int_equal(pbconv_encode_edge_message(out, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf);
	free(buf2);
}

/* ------------------------------------------------------------------ */
/* Round trips */

static void
test_roundtrip_enroll(void **state)
{
	struct msg_enroll_request rq, rq2;
	struct msg_enroll_response rs, rs2;
	uint8_t csr[300], *buf;
	size_t len;
	char err[PBCONV_ERR_LEN];

	memset(&rq, 0, sizeof(rq));
	strcpy(rq.token, "tok_ABCdef-0123456789~!");
	memset(csr, 0x30, sizeof(csr));
	assert_int_equal(msg_blob_set(&rq.csr_der, csr, sizeof(csr)), 0);
	strcpy(rq.software_version, "meshwan-edge 0.1.0");
	assert_int_equal(pbconv_encode_enroll_request(&rq, &buf, &len), 0);
	assert_int_equal(pbconv_decode_enroll_request(buf, len, &rq2, err,
	    sizeof(err)), 0);
	free(buf);
	assert_string_equal(rq2.token, rq.token);
	assert_string_equal(rq2.software_version, rq.software_version);
	assert_blob_equal(&rq2.csr_der, &rq.csr_der);
	msg_enroll_request_free(&rq);
	msg_enroll_request_free(&rq2);
	{
		struct msg_renew_request rn, rn2;

		memset(&rn, 0, sizeof(rn));
		assert_int_equal(msg_blob_set(&rn.csr_der, csr, sizeof(csr)),
		    0);
		strcpy(rn.software_version, "meshwan-edge 0.1.0");
		assert_int_equal(pbconv_encode_renew_request(&rn, &buf, &len),
		    0);
		assert_int_equal(pbconv_decode_renew_request(buf, len, &rn2,
		    err, sizeof(err)), 0);
		free(buf);
		assert_string_equal(rn2.software_version, rn.software_version);
		assert_blob_equal(&rn2.csr_der, &rn.csr_der);
		msg_renew_request_free(&rn2);
		/* The CSR is required. */
		msg_blob_free(&rn.csr_der);
		assert_int_equal(pbconv_encode_renew_request(&rn, &buf, &len),
		    -1);
		msg_renew_request_free(&rn);
	}

	memset(&rs, 0, sizeof(rs));
	rs.site_id = 17;
	assert_int_equal(msg_blob_set(&rs.certificate_der, csr, 200), 0);
	assert_int_equal(msg_blob_set(&rs.ca_chain_der[0], csr, 100), 0);
	assert_int_equal(msg_blob_set(&rs.ca_chain_der[1], csr + 1, 150), 0);
	rs.n_ca_chain = 2;
	strcpy(rs.controller_name, "meshwan-controller");
	assert_int_equal(pbconv_encode_enroll_response(&rs, &buf, &len), 0);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &rs2, err,
	    sizeof(err)), 0);
	free(buf);
	assert_int_equal(rs2.error, MSG_ENROLL_ERROR_UNSPECIFIED);
	assert_int_equal(rs2.site_id, 17);
	assert_blob_equal(&rs2.certificate_der, &rs.certificate_der);
	assert_int_equal(rs2.n_ca_chain, 2);
	assert_blob_equal(&rs2.ca_chain_der[1], &rs.ca_chain_der[1]);
	assert_string_equal(rs2.controller_name, "meshwan-controller");
	msg_enroll_response_free(&rs);
	msg_enroll_response_free(&rs2);

	/* An error response needs none of the success fields. */
	memset(&rs, 0, sizeof(rs));
	rs.error = MSG_ENROLL_ERROR_TOKEN_EXPIRED;
	strcpy(rs.error_message, "token expired 5 minutes ago");
	assert_int_equal(pbconv_encode_enroll_response(&rs, &buf, &len), 0);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &rs2, err,
	    sizeof(err)), 0);
	free(buf);
	assert_int_equal(rs2.error, MSG_ENROLL_ERROR_TOKEN_EXPIRED);
	assert_string_equal(rs2.error_message, rs.error_message);
	msg_enroll_response_free(&rs2);
	msg_enroll_response_free(NULL);
	msg_enroll_request_free(NULL);
}

static void
test_roundtrip_snapshot(void **state)
{
	struct msg_controller_message m, out;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&m.u.snapshot, 4);
	roundtrip_controller(&m, &out);
	assert_intent_equal(&m.u.snapshot, &out.u.snapshot);
	assert_int_equal(out.u.snapshot.tunnels[1].encap, MSG_ENCAP_VXLAN);
	assert_int_equal(out.u.snapshot.tunnels[1].vni, 1002);
	assert_int_equal(out.u.snapshot.site.links[0].public_port, 4501);
	msg_controller_message_free(&m);
	msg_controller_message_free(&out);
	msg_controller_message_free(NULL);
}

static void
test_roundtrip_delta(void **state)
{
	struct msg_controller_message m, out;
	struct msg_intent_delta *d = &m.u.delta;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_DELTA;
	d->from_version = 41;
	d->version = 42;
	d->has_site = true;
	fill_site(&d->site, 1);
	d->upsert = calloc(2, sizeof(*d->upsert));
	fill_tunnel(&d->upsert[0], 5, false);
	fill_tunnel(&d->upsert[1], 6, true);
	d->n_upsert = 2;
	d->remove = calloc(3, sizeof(*d->remove));
	d->remove[0] = 1;
	d->remove[1] = 2;
	d->remove[2] = 300000;
	d->n_remove = 3;
	roundtrip_controller(&m, &out);
	assert_int_equal(out.u.delta.from_version, 41);
	assert_int_equal(out.u.delta.version, 42);
	assert_true(out.u.delta.has_site);
	assert_site_equal(&out.u.delta.site, &d->site);
	assert_int_equal(out.u.delta.n_upsert, 2);
	assert_tunnel_equal(&out.u.delta.upsert[1], &d->upsert[1]);
	assert_int_equal(out.u.delta.n_remove, 3);
	assert_memory_equal(out.u.delta.remove, d->remove, 3 * sizeof(uint64_t));
	msg_controller_message_free(&out);

	/* Without the site. */
	msg_site_free(&d->site);
	d->has_site = false;
	roundtrip_controller(&m, &out);
	assert_false(out.u.delta.has_site);
	msg_controller_message_free(&out);
	msg_controller_message_free(&m);
}

static void
test_roundtrip_small_controller(void **state)
{
	struct msg_controller_message m, out;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_REKEY;
	m.u.rekey.tunnel_id = 9;
	m.u.rekey.epoch = 8;
	m.u.rekey.step = MSG_REKEY_STEP_RETIRE;
	m.u.rekey.reason = MSG_REKEY_REASON_PEER_REVOKED;
	m.u.rekey.spi = 0xdeadbeef;
	m.u.rekey.drain_seconds = 30;
	roundtrip_controller(&m, &out);
	assert_memory_equal(&out.u.rekey, &m.u.rekey, sizeof(m.u.rekey));
	m.u.rekey.step = MSG_REKEY_STEP_SWITCH_OUTBOUND;
	m.u.rekey.reason = MSG_REKEY_REASON_LOCAL_ERROR;
	m.u.rekey.drain_seconds = 0;
	m.u.rekey.sender_key_epoch = UINT64_MAX;
	m.u.rekey.receiver_key_epoch = 3;
	roundtrip_controller(&m, &out);
	assert_memory_equal(&out.u.rekey, &m.u.rekey, sizeof(m.u.rekey));
	m.u.rekey.reason = MSG_REKEY_REASON_KEY;
	roundtrip_controller(&m, &out);
	assert_int_equal(out.u.rekey.reason, MSG_REKEY_REASON_KEY);

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_KEEPALIVE;
	m.u.keepalive.controller_time = 1764300000;
	roundtrip_controller(&m, &out);
	assert_int_equal(out.u.keepalive.controller_time, 1764300000);

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_BACKOFF;
	m.u.backoff.retry_after_seconds = 3600;
	strcpy(m.u.backoff.reason, "controller overloaded, ünïcode ok");
	roundtrip_controller(&m, &out);
	assert_memory_equal(&out.u.backoff, &m.u.backoff, sizeof(m.u.backoff));

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_PEER_KEYS;
	m.u.peer_keys.peer_site_id = 77;
	for (size_t i = 0; i < MSG_PEER_KEYS_MAX; i++)
		fill_key(&m.u.peer_keys.keys[i], i + 1);
	m.u.peer_keys.n_keys = MSG_PEER_KEYS_MAX;
	roundtrip_controller(&m, &out);
	assert_memory_equal(&out.u.peer_keys, &m.u.peer_keys,
	    sizeof(m.u.peer_keys));
}

static void
fill_status(struct msg_status *s, size_t n)
{
	memset(s, 0, sizeof(*s));
	s->applied_version = 42;
	s->uptime_seconds = 123456;
	s->tunnels = calloc(n, sizeof(*s->tunnels));
	s->bgp = calloc(n, sizeof(*s->bgp));
	s->health = calloc(n, sizeof(*s->health));
	for (size_t i = 0; i < n; i++) {
		struct msg_tunnel_status *t = &s->tunnels[i];

		t->tunnel_id = i + 1;
		t->state = MSG_TUNNEL_STATE_FAILED;
		strcpy(t->error, "backend refused: no such device");
		for (size_t j = 0; j < MSG_SAS_MAX; j++) {
			struct msg_sa_status *a = &t->sas[j];

			a->spi = 0x100 + (uint32_t)j;
			a->direction = j % 2 ? MSG_DIRECTION_OUT :
			    MSG_DIRECTION_IN;
			a->epoch = j + 1;
			a->packets = 10 + j;
			a->bytes = 1000 + j;
			a->age_seconds = 60 + j;
			a->seq = (1ull << 33) + j;
			a->drops_auth = 1 + j;
			a->drops_replay = 2 + j;
			a->active = j == 0;
		}
		t->n_sas = MSG_SAS_MAX;
		t->packets_in = 1;
		t->packets_out = 2;
		t->bytes_in = 3;
		t->bytes_out = 4;
		t->drops_no_sa = 5;
		t->drops_malformed = 6;
		t->drops_unknown_spi = 7;
		if (i == 1) {		/* a peer followed through NAT */
			addr(&t->peer_address, "198.18.3.2");
			t->peer_port = 4502;
			t->peer_moves = 2;
		}
		addr(&s->bgp[i].address, i % 2 ? "10.255.0.1" : "fd00::1");
		s->bgp[i].remote_asn = 65002;
		s->bgp[i].state = MSG_BGP_STATE_ESTABLISHED;
		s->bgp[i].uptime_seconds = 99;
		s->bgp[i].prefixes_received = 12;
		s->bgp[i].prefixes_filtered = 3;
		s->bgp[i].tunnel_id = i + 1;
		s->health[i].tunnel_id = i + 1;
		s->health[i].up = true;
		s->health[i].rtt_us = 1500;
		s->health[i].loss_permille = 1000;
		s->health[i].jitter_us = 80;
	}
	s->n_tunnels = s->n_bgp = s->n_health = n;
}

static void
test_roundtrip_edge(void **state)
{
	struct msg_edge_message m, out;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_HELLO;
	m.u.hello.site_id = 3;
	m.u.hello.applied_version = 41;
	m.u.hello.has_convergence_hash = true;
	memset(m.u.hello.convergence_hash, 0xc3, MSG_HASH_LEN);
	strcpy(m.u.hello.software_version, "meshwan-edge 0.1.0");
	m.u.hello.backend = MSG_BACKEND_UESP;
	m.u.hello.features = MSG_FEATURE_GRE | MSG_FEATURE_VXLAN |
	    MSG_FEATURE_AES_GCM_256 | MSG_FEATURE_ESN | MSG_FEATURE_NAT_T;
	roundtrip_edge(&m, &out);
	assert_memory_equal(&out.u.hello, &m.u.hello, sizeof(m.u.hello));

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	fill_status(&m.u.status, 3);
	roundtrip_edge(&m, &out);
	assert_int_equal(out.u.status.n_tunnels, 3);
	assert_memory_equal(out.u.status.tunnels, m.u.status.tunnels,
	    3 * sizeof(*m.u.status.tunnels));
	assert_memory_equal(out.u.status.bgp, m.u.status.bgp,
	    3 * sizeof(*m.u.status.bgp));
	assert_memory_equal(out.u.status.health, m.u.status.health,
	    3 * sizeof(*m.u.status.health));
	assert_int_equal(out.u.status.uptime_seconds, 123456);
	msg_edge_message_free(&out);
	msg_edge_message_free(&m);

	/* An intent ack, a failed ack, and a rekey ack. */
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.version = 42;
	m.u.ack.ok = true;
	m.u.ack.has_convergence_hash = true;
	memset(m.u.ack.convergence_hash, 0x11, MSG_HASH_LEN);
	roundtrip_edge(&m, &out);
	assert_memory_equal(&out.u.ack, &m.u.ack, sizeof(m.u.ack));
	m.u.ack.ok = false;
	strcpy(m.u.ack.reason, "tunnels[2].encap: vxlan not supported here");
	roundtrip_edge(&m, &out);
	assert_memory_equal(&out.u.ack, &m.u.ack, sizeof(m.u.ack));
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.ok = true;
	m.u.ack.rekey_tunnel_id = 5;
	m.u.ack.rekey_epoch = 9;
	m.u.ack.rekey_step = MSG_REKEY_STEP_SWITCH_OUTBOUND;
	roundtrip_edge(&m, &out);
	assert_memory_equal(&out.u.ack, &m.u.ack, sizeof(m.u.ack));

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_KEY;
	m.u.key.epoch = 12;
	memset(m.u.key.public_key, 0x42, MSG_KEY_LEN);
	m.u.key.signature_len = MSG_SIG_MAX;
	memset(m.u.key.signature, 0x30, MSG_SIG_MAX);
	m.u.key.not_after = 1900000000;
	roundtrip_edge(&m, &out);
	assert_memory_equal(&out.u.key, &m.u.key, sizeof(m.u.key));

	for (int r = MSG_REKEY_REQUEST_REASON_SOFT_BYTES;
	     r <= MSG_REKEY_REQUEST_REASON_LOCAL_ERROR; r++) {
		memset(&m, 0, sizeof(m));
		m.kind = MSG_EDGE_REKEY_REQUEST;
		m.u.rekey_request.tunnel_id = UINT64_MAX - (uint64_t)r;
		m.u.rekey_request.direction = r % 2 ? MSG_DIRECTION_OUT :
		    MSG_DIRECTION_IN;
		m.u.rekey_request.reason = (enum msg_rekey_request_reason)r;
		roundtrip_edge(&m, &out);
		assert_memory_equal(&out.u.rekey_request, &m.u.rekey_request,
		    sizeof(m.u.rekey_request));
	}
	msg_edge_message_free(NULL);
}

static void
test_many_tunnels(void **state)
{
	struct msg_controller_message m, out;
	struct msg_edge_message e, eout;
	size_t n = 5000;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&m.u.snapshot, n);
	roundtrip_controller(&m, &out);
	assert_intent_equal(&m.u.snapshot, &out.u.snapshot);
	msg_controller_message_free(&out);

	/* The same tunnels as a delta's upserts. */
	{
		struct msg_controller_message d;

		memset(&d, 0, sizeof(d));
		d.kind = MSG_CONTROLLER_DELTA;
		d.u.delta.from_version = 1;
		d.u.delta.version = 2;
		d.u.delta.upsert = m.u.snapshot.tunnels;
		d.u.delta.n_upsert = n;
		roundtrip_controller(&d, &out);
		assert_int_equal(out.u.delta.n_upsert, n);
		assert_tunnel_equal(&out.u.delta.upsert[n - 1],
		    &m.u.snapshot.tunnels[n - 1]);
		msg_controller_message_free(&out);
	}
	msg_controller_message_free(&m);

	memset(&e, 0, sizeof(e));
	e.kind = MSG_EDGE_STATUS;
	fill_status(&e.u.status, n);
	roundtrip_edge(&e, &eout);
	assert_int_equal(eout.u.status.n_tunnels, n);
	msg_edge_message_free(&eout);
	msg_edge_message_free(&e);
}

/* ------------------------------------------------------------------ */
/* Wire-level mutations */

static void
pb_set_str(char **f, const char *v)
{
	if (*f != NULL && *f != protobuf_c_empty_string)
		free(*f);
	*f = strdup(v);
	assert_non_null(*f);
}

static void
pb_set_bytes(ProtobufCBinaryData *b, size_t len, uint8_t fill)
{
	free(b->data);
	b->data = malloc(len > 0 ? len : 1);
	assert_non_null(b->data);
	memset(b->data, fill, len);
	b->len = len;
}

typedef void (*ctl_mut)(Meshwan__V1__ControllerMessage *);

/* A valid snapshot, broken by mut, must be refused with want as the
 * error's start. */
static void
expect_ctl_error(const struct msg_controller_message *base, ctl_mut mut,
    const char *want)
{
	Meshwan__V1__ControllerMessage *pb;
	struct msg_controller_message out;
	uint8_t *buf;
	size_t len;
	char err[PBCONV_ERR_LEN] = "";

	assert_int_equal(pbconv_encode_controller_message(base, &buf, &len),
	    0);
	pb = meshwan__v1__controller_message__unpack(NULL, len, buf);
	assert_non_null(pb);
	free(buf);
	mut(pb);
	len = meshwan__v1__controller_message__get_packed_size(pb);
	buf = malloc(len + 1);
	len = meshwan__v1__controller_message__pack(pb, buf);
	meshwan__v1__controller_message__free_unpacked(pb, NULL);
	memset(&out, 0x5c, sizeof(out));
	if (pbconv_decode_controller_message(buf, len, &out, err,
	    sizeof(err)) == 0)
		fail_msg("accepted; wanted \"%s\"", want);
	free(buf);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error \"%s\", wanted \"%s\"", err, want);
	/* Nothing left behind: the struct owns nothing. */
	assert_int_equal(out.kind, MSG_CONTROLLER_NONE);
}

#define T0(pb) ((pb)->snapshot->tunnels[0])
#define T3(pb) ((pb)->snapshot->tunnels[3])

static void m_version0(Meshwan__V1__ControllerMessage *p) { p->snapshot->version = 0; }
static void m_vni0(Meshwan__V1__ControllerMessage *p) { T3(p)->vni = 0; }
static void m_vni_big(Meshwan__V1__ControllerMessage *p) { T3(p)->vni = 16777216; }
static void m_vni_gre(Meshwan__V1__ControllerMessage *p) { T0(p)->vni = 5; }
static void m_spi(Meshwan__V1__ControllerMessage *p) { T0(p)->sa_in->spi = 255; }
static void m_spi_out(Meshwan__V1__ControllerMessage *p) { T3(p)->sa_out->spi = 1; }
static void m_sa_epoch0(Meshwan__V1__ControllerMessage *p) { T0(p)->sa_in->sa_epoch = 0; }
static void m_sa_half(Meshwan__V1__ControllerMessage *p) { T3(p)->sa_out->receiver_key_epoch = 0; }
static void m_sa_half2(Meshwan__V1__ControllerMessage *p) { T0(p)->sa_in->sender_key_epoch = 0; }
static void m_sa_nospi(Meshwan__V1__ControllerMessage *p) { T0(p)->sa_out->spi = 0; }
static void m_port(Meshwan__V1__ControllerMessage *p) { T0(p)->remote_port = 65536; }
static void m_link_port(Meshwan__V1__ControllerMessage *p) { p->snapshot->site->links[0]->public_port = 70000; }
static void m_asn(Meshwan__V1__ControllerMessage *p) { p->snapshot->site->asn = 65535; }
static void m_asn_public(Meshwan__V1__ControllerMessage *p) { p->snapshot->site->asn = 3320; }
static void m_bgp_asn(Meshwan__V1__ControllerMessage *p) { T0(p)->bgp->remote_asn = 4294967295u; }
static void m_encap(Meshwan__V1__ControllerMessage *p) { T0(p)->encap = 7; }
static void m_encap0(Meshwan__V1__ControllerMessage *p) { T0(p)->encap = 0; }
static void m_cipher(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->cipher = 3; }
static void m_esn(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->esn = 0; }
static void m_replay(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->replay_window = 31; }
static void m_rekey_s(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->rekey_seconds = 59; }
static void m_rekey_b(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->rekey_bytes = MSG_SA_SOFT_BYTES_MAX + 1; }
static void m_rekey_p(Meshwan__V1__ControllerMessage *p) { T0(p)->crypto->rekey_packets = MSG_SA_SOFT_PACKETS_MAX + 1; }
static void m_mtu(Meshwan__V1__ControllerMessage *p) { T0(p)->mtu = 575; }
static void m_hold(Meshwan__V1__ControllerMessage *p) { T0(p)->bgp->hold_time = 2; }
static void m_ka(Meshwan__V1__ControllerMessage *p) { T0(p)->bgp->keepalive = 21846; }
static void m_dup_id(Meshwan__V1__ControllerMessage *p) { T3(p)->id = 1; }
static void m_id0(Meshwan__V1__ControllerMessage *p) { T3(p)->id = 0; }
static void m_site_id0(Meshwan__V1__ControllerMessage *p) { p->snapshot->site->id = 0; }
static void m_name_upper(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->name, "Site-1"); }
static void m_name_empty(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->name, ""); }
static void m_name_long(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); }
static void m_region_ctl(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->region, "eu\nwest"); }
static void m_link_name(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->links[1]->name, "mpls 1"); }
static void m_link_dup(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->links[1]->name, "inet"); }
static void m_link_addr(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->links[0]->address, "192.0.2.256"); }
static void m_link_noaddr(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->links[0]->address, ""); }
static void m_pfx_host(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->lan_prefixes[1], "10.2.0.1/16"); }
static void m_pfx_len(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->lan_prefixes[0], "10.1.0.0/33"); }
static void m_pfx_nolen(Meshwan__V1__ControllerMessage *p) { pb_set_str(&p->snapshot->site->lan_prefixes[2], "2001:db8::"); }
static void m_remote_addr(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->remote_address, "example.com"); }
static void m_addr_ctl(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->remote_address, "10.0.0.1\n\033[2J"); }
static void m_inner_len(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->inner_local, "10.0.0.2/30"); }
static void m_inner_v6(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->inner_local, "fd00::/127"); }
static void m_inner_remote(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->inner_remote, "10.0.0.9"); }
static void m_inner6_len(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T3(p)->inner_local6, "fd00:64::8/64"); }
static void m_inner6_v4(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T3(p)->inner_local6, "10.9.9.8/127"); }
static void m_inner6_pair(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T3(p)->inner_remote6, "fd00:64::a"); }
static void m_inner6_half(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->inner_remote6, "fd00:64::1"); }
static void m_bgp_addr6(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T3(p)->bgp->address6, "fd00:64::8"); }
static void m_bgp_addr6_only(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->bgp->address6, "fd00:64::1"); }
static void m_inner_remote_len(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->inner_remote, "10.0.0.3/31"); }
static void m_bgp_addr(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T0(p)->bgp->address, "10.0.0.2"); }
static void m_local_link(Meshwan__V1__ControllerMessage *p) { pb_set_str(&T3(p)->local_link, "lte"); }
static void m_key_len(Meshwan__V1__ControllerMessage *p) { pb_set_bytes(&T0(p)->peer->keys[1]->public_key, 31, 1); }
static void m_sig_len(Meshwan__V1__ControllerMessage *p) { pb_set_bytes(&T0(p)->peer->keys[0]->signature, 129, 1); }
static void m_sig_empty(Meshwan__V1__ControllerMessage *p) { pb_set_bytes(&T0(p)->peer->keys[0]->signature, 0, 1); }
static void m_key_epoch(Meshwan__V1__ControllerMessage *p) { T0(p)->peer->keys[1]->epoch = 7; }
static void m_cert(Meshwan__V1__ControllerMessage *p) { pb_set_bytes(&T0(p)->peer->certificate_der, 8193, 1); }
static void m_ca(Meshwan__V1__ControllerMessage *p) { pb_set_bytes(&p->snapshot->ca_chain_der, 16385, 1); }
static void m_keepalive(Meshwan__V1__ControllerMessage *p) { p->snapshot->keepalive_seconds = 3601; }
static void m_grace(Meshwan__V1__ControllerMessage *p) { p->snapshot->headless_grace_seconds = 59; }
static void m_peer_id(Meshwan__V1__ControllerMessage *p) { T0(p)->peer->site_id = 0; }

static void
m_no_crypto(Meshwan__V1__ControllerMessage *p)
{
	protobuf_c_message_free_unpacked(&T3(p)->crypto->base, NULL);
	T3(p)->crypto = NULL;
}

static void
m_no_site(Meshwan__V1__ControllerMessage *p)
{
	protobuf_c_message_free_unpacked(&p->snapshot->site->base, NULL);
	p->snapshot->site = NULL;
}

static void
m_no_body(Meshwan__V1__ControllerMessage *p)
{
	protobuf_c_message_free_unpacked(&p->snapshot->base, NULL);
	p->snapshot = NULL;
	p->body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY__NOT_SET;
}

/* Five keys where four are allowed. */
static void
m_allowed_host(Meshwan__V1__ControllerMessage *p)
{
	free(T0(p)->peer->allowed_prefixes[1]);
	T0(p)->peer->allowed_prefixes[1] = strdup("fd00:c8::1/64");
}

static void
m_allowed_bad(Meshwan__V1__ControllerMessage *p)
{
	free(T0(p)->peer->allowed_prefixes[0]);
	T0(p)->peer->allowed_prefixes[0] = strdup("10.200.0.0");
}

/* One more than MSG_ALLOWED_PREFIXES_MAX. */
static void
m_allowed_many(Meshwan__V1__ControllerMessage *p)
{
	Meshwan__V1__Peer *peer = T0(p)->peer;
	size_t n = MSG_ALLOWED_PREFIXES_MAX + 1;
	char **v = realloc(peer->allowed_prefixes, n * sizeof(*v));

	assert_non_null(v);
	for (size_t i = peer->n_allowed_prefixes; i < n; i++) {
		char b[32];

		snprintf(b, sizeof(b), "10.%zu.%zu.0/24", (i >> 8) & 255,
		    i & 255);
		v[i] = strdup(b);
	}
	peer->allowed_prefixes = v;
	peer->n_allowed_prefixes = n;
}

static void
m_many_keys(Meshwan__V1__ControllerMessage *p)
{
	Meshwan__V1__Peer *peer = T0(p)->peer;
	Meshwan__V1__PeerKey **k = realloc(peer->keys, 5 * sizeof(*k));

	assert_non_null(k);
	for (size_t i = peer->n_keys; i < 5; i++) {
		k[i] = malloc(sizeof(**k));
		meshwan__v1__peer_key__init(k[i]);
		k[i]->epoch = 100 + i;
		pb_set_bytes(&k[i]->public_key, 32, 1);
		pb_set_bytes(&k[i]->signature, 8, 1);
		k[i]->not_after = 1;
	}
	peer->keys = k;
	peer->n_keys = 5;
}

/* 17 links where 16 are allowed. */
static void
m_many_links(Meshwan__V1__ControllerMessage *p)
{
	Meshwan__V1__Site *s = p->snapshot->site;
	Meshwan__V1__WanLink **l = realloc(s->links, 17 * sizeof(*l));
	char name[16];

	assert_non_null(l);
	for (size_t i = s->n_links; i < 17; i++) {
		l[i] = malloc(sizeof(**l));
		meshwan__v1__wan_link__init(l[i]);
		snprintf(name, sizeof(name), "l%zu", i);
		l[i]->name = strdup(name);
		l[i]->address = strdup("192.0.2.1");
	}
	s->links = l;
	s->n_links = 17;
}

static void
test_invalid_snapshot(void **state)
{
	static const struct {
		ctl_mut mut;
		const char *want;
	} cases[] = {
		{ m_version0, "snapshot.version: 0 must be > 0" },
		{ m_vni0, "snapshot.tunnels[3].vni: 0 out of range 1..16777215" },
		{ m_vni_big, "snapshot.tunnels[3].vni: 16777216 out of range" },
		{ m_vni_gre, "snapshot.tunnels[0].vni: 5 set but encap is gre" },
		{ m_spi, "snapshot.tunnels[0].sa_in.spi: 255 out of range 0 or 256.." },
		{ m_spi_out, "snapshot.tunnels[3].sa_out.spi: 1 out of range" },
		{ m_sa_epoch0, "snapshot.tunnels[0].sa_in.sa_epoch: 0 must be > 0 when spi is set" },
		{ m_sa_half, "snapshot.tunnels[3].sa_out: sender_key_epoch and receiver_key_epoch must both be 0 or both > 0" },
		{ m_sa_half2, "snapshot.tunnels[0].sa_in: sender_key_epoch and receiver_key_epoch must both be 0 or both > 0" },
		{ m_sa_nospi, "snapshot.tunnels[0].sa_out: epochs set without an spi" },
		{ m_port, "snapshot.tunnels[0].remote_port: 65536 out of range 0..65535" },
		{ m_link_port, "snapshot.site.links[0].public_port: 70000 out of range" },
		{ m_asn, "snapshot.site.asn: 65535 is not a private ASN" },
		{ m_asn_public, "snapshot.site.asn: 3320 is not a private ASN" },
		{ m_bgp_asn, "snapshot.tunnels[0].bgp.remote_asn: 4294967295 is not" },
		{ m_encap, "snapshot.tunnels[0].encap: unknown value 7" },
		{ m_encap0, "snapshot.tunnels[0].encap: not set" },
		{ m_cipher, "snapshot.tunnels[0].crypto.cipher: unknown value 3" },
		{ m_esn, "snapshot.tunnels[0].crypto.esn: must be true in v1" },
		{ m_replay, "snapshot.tunnels[0].crypto.replay_window: 31 out of range" },
		{ m_rekey_s, "snapshot.tunnels[0].crypto.rekey_seconds: 59 out of range" },
		{ m_rekey_b, "snapshot.tunnels[0].crypto.rekey_bytes: 1125899906842625 out of range" },
		{ m_rekey_p, "snapshot.tunnels[0].crypto.rekey_packets: 35184372088833 out of range" },
		{ m_mtu, "snapshot.tunnels[0].mtu: 575 out of range 0 or 576..9216" },
		{ m_hold, "snapshot.tunnels[0].bgp.hold_time: 2 out of range" },
		{ m_ka, "snapshot.tunnels[0].bgp.keepalive: 21846 out of range" },
		{ m_dup_id, "snapshot.tunnels: id 1 appears more than once" },
		{ m_id0, "snapshot.tunnels[3].id: 0 must be > 0" },
		{ m_site_id0, "snapshot.site.id: 0 must be > 0" },
		{ m_name_upper, "snapshot.site.name: character 0x53 at 0 not allowed" },
		{ m_name_empty, "snapshot.site.name: 0 chars, allowed 1..63" },
		{ m_name_long, "snapshot.site.name: 64 chars, limit 63" },
		{ m_region_ctl, "snapshot.site.region: control character 0x0a at 2" },
		{ m_link_name, "snapshot.site.links[1].name: character 0x20 at 4" },
		{ m_link_dup, "snapshot.site.links[1].name: \"inet\" already used" },
		{ m_link_addr, "snapshot.site.links[0].address: \"192.0.2.256\" is not" },
		{ m_link_noaddr, "snapshot.site.links[0].address: missing" },
		{ m_pfx_host, "snapshot.site.lan_prefixes[1]: \"10.2.0.1/16\" is not a network" },
		{ m_pfx_len, "snapshot.site.lan_prefixes[0]: \"10.1.0.0/33\" is not" },
		{ m_pfx_nolen, "snapshot.site.lan_prefixes[2]: \"2001:db8::\" is not" },
		{ m_remote_addr, "snapshot.tunnels[0].remote_address: \"example.com\" is not" },
		{ m_addr_ctl, "snapshot.tunnels[0].remote_address: \"10.0.0.1??[2J\" is not" },
		{ m_inner_len, "snapshot.tunnels[0].inner_local: length 30, must be 31" },
		{ m_inner_v6, "snapshot.tunnels[0].inner_local: must be an IPv4" },
		{ m_inner_remote, "snapshot.tunnels[0].inner_remote: not the other address" },
		{ m_inner6_len, "snapshot.tunnels[3].inner_local6: length 64, must be 127" },
		{ m_inner6_v4, "snapshot.tunnels[3].inner_local6: \"10.9.9.8/127\" is not" },
		{ m_inner6_pair, "snapshot.tunnels[3].inner_remote6: not the other address of inner_local6's /127" },
		{ m_inner6_half, "snapshot.tunnels[0].inner_local6: must be an IPv6 address/127 when inner_remote6 is set" },
		{ m_bgp_addr6, "snapshot.tunnels[3].bgp.address6: must equal inner_remote6" },
		{ m_bgp_addr6_only, "snapshot.tunnels[0].bgp.address6: must equal inner_remote6" },
		{ m_inner_remote_len, "snapshot.tunnels[0].inner_remote: \"10.0.0.3/31\" is not" },
		{ m_bgp_addr, "snapshot.tunnels[0].bgp.address: must equal inner_remote" },
		{ m_local_link, "snapshot.tunnels[3].local_link: \"lte\" is not a link" },
		{ m_key_len, "snapshot.tunnels[0].peer.keys[1].public_key: 31 bytes, must be 32" },
		{ m_sig_len, "snapshot.tunnels[0].peer.keys[0].signature: 129 bytes, limit 128" },
		{ m_sig_empty, "snapshot.tunnels[0].peer.keys[0].signature: 0 bytes, allowed 1..128" },
		{ m_key_epoch, "snapshot.tunnels[0].peer.keys: id 7 appears more than once" },
		{ m_cert, "snapshot.tunnels[0].peer.certificate_der: 8193 bytes, limit 8192" },
		{ m_ca, "snapshot.ca_chain_der: 16385 bytes, limit 16384" },
		{ m_keepalive, "snapshot.keepalive_seconds: 3601 out of range" },
		{ m_grace, "snapshot.headless_grace_seconds: 59 out of range" },
		{ m_peer_id, "snapshot.tunnels[0].peer.site_id: 0 must be > 0" },
		{ m_no_crypto, "snapshot.tunnels[3].crypto: not set" },
		{ m_no_site, "snapshot.site: not set" },
		{ m_no_body, "body: not set" },
		{ m_many_keys, "snapshot.tunnels[0].peer.keys: 5 entries, limit 4" },
		{ m_allowed_host, "snapshot.tunnels[0].peer.allowed_prefixes[1]: \"fd00:c8::1/64\" is not a network" },
		{ m_allowed_bad, "snapshot.tunnels[0].peer.allowed_prefixes[0]: \"10.200.0.0\" is not" },
		{ m_allowed_many, "snapshot.tunnels[0].peer.allowed_prefixes: 65537 entries, limit 65536" },
		{ m_many_links, "snapshot.site.links: 17 entries, limit 16" },
	};
	struct msg_controller_message base;

	memset(&base, 0, sizeof(base));
	base.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&base.u.snapshot, 4);
	/* Tunnel 0 is GRE on 10.0.0.2/31, tunnel 3 VXLAN. */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_ctl_error(&base, cases[i].mut, cases[i].want);
	msg_controller_message_free(&base);
}

static void md_from0(Meshwan__V1__ControllerMessage *p) { p->delta->from_version = 0; }
static void md_backwards(Meshwan__V1__ControllerMessage *p) { p->delta->version = 40; }
static void md_remove0(Meshwan__V1__ControllerMessage *p) { p->delta->remove[1] = 0; }
static void md_remove_dup(Meshwan__V1__ControllerMessage *p) { p->delta->remove[1] = 7; }
static void md_remove_upsert(Meshwan__V1__ControllerMessage *p) { p->delta->remove[0] = 5; }
static void md_upsert_dup(Meshwan__V1__ControllerMessage *p) { p->delta->upsert[1]->id = 5; }
static void md_upsert_vni(Meshwan__V1__ControllerMessage *p) { p->delta->upsert[1]->vni = 0; }

static void
test_invalid_delta(void **state)
{
	static const struct {
		ctl_mut mut;
		const char *want;
	} cases[] = {
		{ md_from0, "delta.from_version: 0 must be > 0" },
		{ md_backwards, "delta.version: 40 must be > from_version 41" },
		{ md_remove0, "delta.remove[1]: 0 must be > 0" },
		{ md_remove_dup, "delta.remove: id 7 appears more than once" },
		{ md_remove_upsert, "delta.remove: id 5 appears more than once" },
		{ md_upsert_dup, "delta.upsert: id 5 appears more than once" },
		{ md_upsert_vni, "delta.upsert[1].vni: 0 out of range" },
	};
	struct msg_controller_message base;
	struct msg_intent_delta *d = &base.u.delta;

	memset(&base, 0, sizeof(base));
	base.kind = MSG_CONTROLLER_DELTA;
	d->from_version = 41;
	d->version = 42;
	d->upsert = calloc(2, sizeof(*d->upsert));
	fill_tunnel(&d->upsert[0], 5, false);
	fill_tunnel(&d->upsert[1], 6, true);
	d->n_upsert = 2;
	d->remove = calloc(2, sizeof(*d->remove));
	d->remove[0] = 7;
	d->remove[1] = 8;
	d->n_remove = 2;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_ctl_error(&base, cases[i].mut, cases[i].want);
	msg_controller_message_free(&base);
}

static void mr_spi(Meshwan__V1__ControllerMessage *p) { p->rekey->spi = 0; }
static void mr_step(Meshwan__V1__ControllerMessage *p) { p->rekey->step = 0; }
static void mr_step_unknown(Meshwan__V1__ControllerMessage *p) { p->rekey->step = 4; }
static void mr_drain(Meshwan__V1__ControllerMessage *p) { p->rekey->drain_seconds = 3601; }
static void mr_epoch(Meshwan__V1__ControllerMessage *p) { p->rekey->epoch = 0; }
static void mr_skey0(Meshwan__V1__ControllerMessage *p) { p->rekey->sender_key_epoch = 0; }
static void mr_rkey0(Meshwan__V1__ControllerMessage *p) { p->rekey->receiver_key_epoch = 0; }
static void mr_retire_keys(Meshwan__V1__ControllerMessage *p) { p->rekey->step = MESHWAN__V1__REKEY_STEP__REKEY_STEP_RETIRE; }

/* A Tunnel without sa_in / sa_out (a sender that does not know them)
 * reads as "no SA yet": every field zero. */
static void
test_sa_ref_absent(void **state)
{
	struct msg_controller_message m, out;
	Meshwan__V1__ControllerMessage *pb;
	uint8_t *buf;
	size_t len;
	char err[PBCONV_ERR_LEN];

	(void)state;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&m.u.snapshot, 2);
	assert_int_equal(pbconv_encode_controller_message(&m, &buf, &len), 0);
	pb = meshwan__v1__controller_message__unpack(NULL, len, buf);
	assert_non_null(pb);
	free(buf);
	meshwan__v1__sa_key_ref__free_unpacked(pb->snapshot->tunnels[1]->sa_in,
	    NULL);
	pb->snapshot->tunnels[1]->sa_in = NULL;
	meshwan__v1__sa_key_ref__free_unpacked(pb->snapshot->tunnels[1]->sa_out,
	    NULL);
	pb->snapshot->tunnels[1]->sa_out = NULL;
	len = meshwan__v1__controller_message__get_packed_size(pb);
	buf = malloc(len);
	len = meshwan__v1__controller_message__pack(pb, buf);
	meshwan__v1__controller_message__free_unpacked(pb, NULL);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &out, err,
	    sizeof(err)), 0);
	free(buf);
	assert_int_equal(out.u.snapshot.tunnels[1].sa_in.spi, 0);
	assert_int_equal(out.u.snapshot.tunnels[1].sa_in.sa_epoch, 0);
	assert_int_equal(out.u.snapshot.tunnels[1].sa_out.sender_key_epoch, 0);
	assert_int_equal(out.u.snapshot.tunnels[1].sa_out.receiver_key_epoch,
	    0);
	assert_int_equal(out.u.snapshot.tunnels[0].sa_in.sender_key_epoch, 8);
	msg_controller_message_free(&m);
	msg_controller_message_free(&out);
}

static void
test_invalid_small_controller(void **state)
{
	static const struct {
		ctl_mut mut;
		const char *want;
	} cases[] = {
		{ mr_spi, "rekey.spi: 0 out of range 256..4294967295" },
		{ mr_step, "rekey.step: not set" },
		{ mr_step_unknown, "rekey.step: unknown value 4" },
		{ mr_drain, "rekey.drain_seconds: 3601 out of range 0..3600" },
		{ mr_epoch, "rekey.epoch: 0 must be > 0" },
		{ mr_skey0, "rekey: sender_key_epoch and receiver_key_epoch must both be 0 or both > 0" },
		{ mr_rkey0, "rekey: sender_key_epoch and receiver_key_epoch must both be 0 or both > 0" },
		{ mr_retire_keys, "rekey.sender_key_epoch: must be 0 in RETIRE" },
	};
	struct msg_controller_message m, out;
	Meshwan__V1__ControllerMessage pb = MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	Meshwan__V1__Backoff bo = MESHWAN__V1__BACKOFF__INIT;
	Meshwan__V1__RekeyOrder ro = MESHWAN__V1__REKEY_ORDER__INIT;
	uint8_t buf[512];
	size_t len;
	char err[PBCONV_ERR_LEN];

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_REKEY;
	m.u.rekey.tunnel_id = 9;
	m.u.rekey.epoch = 8;
	m.u.rekey.step = MSG_REKEY_STEP_INSTALL_INBOUND;
	m.u.rekey.spi = 4096;
	m.u.rekey.sender_key_epoch = 4;
	m.u.rekey.receiver_key_epoch = 6;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_ctl_error(&m, cases[i].mut, cases[i].want);

	/* Backoff limits, and an unknown rekey reason reads as unspecified. */
	pb.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_BACKOFF;
	pb.backoff = &bo;
	bo.retry_after_seconds = 3601;
	len = meshwan__v1__controller_message__pack(&pb, buf);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &out, err,
	    sizeof(err)), -1);
	assert_string_equal(err,
	    "backoff.retry_after_seconds: 3601 out of range 0..3600");
	bo.retry_after_seconds = 1;
	bo.reason = (char *)"a\001b";
	len = meshwan__v1__controller_message__pack(&pb, buf);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &out, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "backoff.reason: control character 0x01 at 1");
	{
		static const struct {
			const char *text, *want;
		} u8[] = {
			{ "ok \xff", "backoff.reason: invalid UTF-8 at 3" },
			{ "\xc0\xaf", "backoff.reason: invalid UTF-8 at 0" },
			{ "ab\xe0\x80\xaf", "backoff.reason: invalid UTF-8 at 2" },
			{ "\xed\xa0\x80", "backoff.reason: invalid UTF-8 at 0" },
			{ "\xf4\x90\x80\x80", "backoff.reason: invalid UTF-8 at 0" },
			{ "x\xe2\x82", "backoff.reason: invalid UTF-8 at 1" },
			{ "\xc2\x9b[2J", "backoff.reason: control character 0x9b at 0" },
			{ "\xe2\x82\xac \xf0\x9f\x98\x80 \xc3\xa9", NULL },
		};

		for (size_t i = 0; i < ARRAY_SIZE(u8); i++) {
			bo.reason = (char *)u8[i].text;
			len = meshwan__v1__controller_message__pack(&pb, buf);
			if (u8[i].want == NULL) {
				assert_int_equal(pbconv_decode_controller_message(
				    buf, len, &out, err, sizeof(err)), 0);
				assert_string_equal(out.u.backoff.reason,
				    u8[i].text);
				continue;
			}
			assert_int_equal(pbconv_decode_controller_message(buf,
			    len, &out, err, sizeof(err)), -1);
			assert_string_equal(err, u8[i].want);
		}
	}

	pb.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_REKEY;
	pb.rekey = &ro;
	ro.tunnel_id = 1;
	ro.epoch = 2;
	ro.step = MESHWAN__V1__REKEY_STEP__REKEY_STEP_RETIRE;
	ro.reason = 99;
	ro.spi = 300;
	len = meshwan__v1__controller_message__pack(&pb, buf);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &out, err,
	    sizeof(err)), 0);
	assert_int_equal(out.u.rekey.reason, MSG_REKEY_REASON_UNSPECIFIED);

	/* A refused RekeyOrder still names its step for the edge's failed
	 * rekey ack; an unknown step names none; other bodies are not one. */
	{
		uint64_t tid, ep;
		enum msg_rekey_step st;

		ro.spi = 17;
		ro.step = MESHWAN__V1__REKEY_STEP__REKEY_STEP_INSTALL_INBOUND;
		len = meshwan__v1__controller_message__pack(&pb, buf);
		assert_int_equal(pbconv_decode_controller_message(buf, len,
		    &out, err, sizeof(err)), -1);
		assert_int_equal(pbconv_controller_message_rekey(buf, len, &tid,
		    &ep, &st), 0);
		assert_int_equal(tid, 1);
		assert_int_equal(ep, 2);
		assert_int_equal(st, MSG_REKEY_STEP_INSTALL_INBOUND);
		assert_int_equal(pbconv_controller_message_version(buf, len), 0);
		ro.step = (Meshwan__V1__RekeyStep)7;
		len = meshwan__v1__controller_message__pack(&pb, buf);
		assert_int_equal(pbconv_controller_message_rekey(buf, len, &tid,
		    &ep, &st), 0);
		assert_int_equal(st, MSG_REKEY_STEP_UNSPECIFIED);
		pb.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_BACKOFF;
		len = meshwan__v1__controller_message__pack(&pb, buf);
		assert_int_equal(pbconv_controller_message_rekey(buf, len, &tid,
		    &ep, &st), -1);
		assert_int_equal(pbconv_controller_message_rekey(
		    (const uint8_t *)"\xff\xff", 2, &tid, &ep, &st), -1);
	}

	/* PeerKeys needs at least one key. */
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_PEER_KEYS;
	m.u.peer_keys.peer_site_id = 3;
	assert_int_equal(msg_validate_controller_message(&m, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "peer_keys.keys: 0 entries, allowed 1..4");
}

typedef void (*edge_mut)(Meshwan__V1__EdgeMessage *);

static void
expect_edge_error(const struct msg_edge_message *base, edge_mut mut,
    const char *want)
{
	Meshwan__V1__EdgeMessage *pb;
	struct msg_edge_message out;
	uint8_t *buf;
	size_t len;
	char err[PBCONV_ERR_LEN] = "";

	assert_int_equal(pbconv_encode_edge_message(base, &buf, &len), 0);
	pb = meshwan__v1__edge_message__unpack(NULL, len, buf);
	assert_non_null(pb);
	free(buf);
	mut(pb);
	len = meshwan__v1__edge_message__get_packed_size(pb);
	buf = malloc(len + 1);
	len = meshwan__v1__edge_message__pack(pb, buf);
	meshwan__v1__edge_message__free_unpacked(pb, NULL);
	if (pbconv_decode_edge_message(buf, len, &out, err, sizeof(err)) == 0)
		fail_msg("accepted; wanted \"%s\"", want);
	free(buf);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("error \"%s\", wanted \"%s\"", err, want);
	assert_int_equal(out.kind, MSG_EDGE_NONE);
}

static void me_hash(Meshwan__V1__EdgeMessage *p) { pb_set_bytes(&p->hello->convergence_hash, 31, 1); }
static void me_nohash(Meshwan__V1__EdgeMessage *p) { pb_set_bytes(&p->hello->convergence_hash, 0, 1); }
static void me_site0(Meshwan__V1__EdgeMessage *p) { p->hello->site_id = 0; }
static void me_ver(Meshwan__V1__EdgeMessage *p) { pb_set_str(&p->hello->software_version, "01234567890123456789012345678901234567890123456789012345678901234"); }
static void ms_spi(Meshwan__V1__EdgeMessage *p) { p->status->tunnels[1]->sas[2]->spi = 17; }
static void ms_dup(Meshwan__V1__EdgeMessage *p) { p->status->tunnels[1]->tunnel_id = 1; }
static void ms_err(Meshwan__V1__EdgeMessage *p) { pb_set_str(&p->status->tunnels[0]->error, "bad\x7f"); }
static void ms_bgp(Meshwan__V1__EdgeMessage *p) { pb_set_str(&p->status->bgp[1]->address, "10.0.0"); }
static void ms_loss(Meshwan__V1__EdgeMessage *p) { p->status->health[0]->loss_permille = 1001; }
static void ms_health0(Meshwan__V1__EdgeMessage *p) { p->status->health[1]->tunnel_id = 0; }

static void
ms_sas(Meshwan__V1__EdgeMessage *p)
{
	Meshwan__V1__TunnelStatus *t = p->status->tunnels[0];
	Meshwan__V1__SaStatus **s = realloc(t->sas, 9 * sizeof(*s));

	assert_non_null(s);
	s[8] = malloc(sizeof(**s));
	meshwan__v1__sa_status__init(s[8]);
	s[8]->spi = 9999;
	t->sas = s;
	t->n_sas = 9;
}

static void ma_hash(Meshwan__V1__EdgeMessage *p) { pb_set_bytes(&p->ack->convergence_hash, 0, 0); }
static void ma_ver(Meshwan__V1__EdgeMessage *p) { p->ack->version = 0; }
static void ma_reason(Meshwan__V1__EdgeMessage *p) { char r[514]; memset(r, 'x', 513); r[513] = 0; pb_set_str(&p->ack->reason, r); }
static void ma_rekey_step(Meshwan__V1__EdgeMessage *p) { p->ack->rekey_tunnel_id = 3; p->ack->rekey_epoch = 2; }
static void ma_rekey_epoch(Meshwan__V1__EdgeMessage *p) { p->ack->rekey_epoch = 2; }
static void mk_key(Meshwan__V1__EdgeMessage *p) { pb_set_bytes(&p->key->public_key, 33, 1); }
static void mk_epoch(Meshwan__V1__EdgeMessage *p) { p->key->epoch = 0; }
static void mk_after(Meshwan__V1__EdgeMessage *p) { p->key->not_after = 0; }
static void mq_tunnel0(Meshwan__V1__EdgeMessage *p) { p->rekey_request->tunnel_id = 0; }
static void mq_dir0(Meshwan__V1__EdgeMessage *p) { p->rekey_request->direction = 0; }
static void mq_dir3(Meshwan__V1__EdgeMessage *p) { p->rekey_request->direction = 3; }
static void mq_reason0(Meshwan__V1__EdgeMessage *p) { p->rekey_request->reason = 0; }
static void mq_reason4(Meshwan__V1__EdgeMessage *p) { p->rekey_request->reason = 4; }

static void
test_invalid_edge(void **state)
{
	struct msg_edge_message hello, status, ack, key, rq, out;
	Meshwan__V1__EdgeMessage pb = MESHWAN__V1__EDGE_MESSAGE__INIT;
	Meshwan__V1__Hello h = MESHWAN__V1__HELLO__INIT;
	uint8_t buf[256];
	size_t len;
	char err[PBCONV_ERR_LEN];

	memset(&hello, 0, sizeof(hello));
	hello.kind = MSG_EDGE_HELLO;
	hello.u.hello.site_id = 4;
	hello.u.hello.applied_version = 3;
	hello.u.hello.has_convergence_hash = true;
	expect_edge_error(&hello, me_hash,
	    "hello.convergence_hash: 31 bytes, must be 0 or 32");
	expect_edge_error(&hello, me_nohash, "hello.convergence_hash: must be "
	    "set exactly when applied_version > 0");
	expect_edge_error(&hello, me_site0, "hello.site_id: 0 must be > 0");
	expect_edge_error(&hello, me_ver,
	    "hello.software_version: 65 chars, limit 64");

	memset(&status, 0, sizeof(status));
	status.kind = MSG_EDGE_STATUS;
	fill_status(&status.u.status, 2);
	expect_edge_error(&status, ms_spi,
	    "status.tunnels[1].sas[2].spi: 17 out of range 256..");
	expect_edge_error(&status, ms_dup,
	    "status.tunnels: id 1 appears more than once");
	expect_edge_error(&status, ms_err,
	    "status.tunnels[0].error: control character 0x7f at 3");
	expect_edge_error(&status, ms_bgp,
	    "status.bgp[1].address: \"10.0.0\" is not an IPv4 or IPv6");
	expect_edge_error(&status, ms_loss,
	    "status.health[0].loss_permille: 1001 out of range 0..1000");
	expect_edge_error(&status, ms_health0,
	    "status.health[1].tunnel_id: 0 must be > 0");
	expect_edge_error(&status, ms_sas,
	    "status.tunnels[0].sas: 9 entries, limit 8");
	msg_edge_message_free(&status);

	memset(&ack, 0, sizeof(ack));
	ack.kind = MSG_EDGE_ACK;
	ack.u.ack.version = 5;
	ack.u.ack.ok = true;
	ack.u.ack.has_convergence_hash = true;
	expect_edge_error(&ack, ma_hash, "ack.convergence_hash: missing");
	expect_edge_error(&ack, ma_ver, "ack.version: 0 must be > 0");
	expect_edge_error(&ack, ma_reason, "ack.reason: 513 chars, limit 512");
	expect_edge_error(&ack, ma_rekey_step, "ack.rekey_step: not set");
	expect_edge_error(&ack, ma_rekey_epoch, "ack.rekey_tunnel_id: 0 but");

	memset(&key, 0, sizeof(key));
	key.kind = MSG_EDGE_KEY;
	key.u.key.epoch = 2;
	key.u.key.signature_len = 70;
	key.u.key.not_after = 10;
	expect_edge_error(&key, mk_key, "key.public_key: 33 bytes, must be 32");
	expect_edge_error(&key, mk_epoch, "key.epoch: 0 must be > 0");
	expect_edge_error(&key, mk_after, "key.not_after: 0 must be > 0");

	/* RekeyRequest: both enums are required, unknown values refused. */
	memset(&rq, 0, sizeof(rq));
	rq.kind = MSG_EDGE_REKEY_REQUEST;
	rq.u.rekey_request.tunnel_id = 7;
	rq.u.rekey_request.direction = MSG_DIRECTION_OUT;
	rq.u.rekey_request.reason = MSG_REKEY_REQUEST_REASON_SOFT_BYTES;
	expect_edge_error(&rq, mq_tunnel0,
	    "rekey_request.tunnel_id: 0 must be > 0");
	expect_edge_error(&rq, mq_dir0, "rekey_request.direction: not set");
	expect_edge_error(&rq, mq_dir3,
	    "rekey_request.direction: unknown value 3");
	expect_edge_error(&rq, mq_reason0, "rekey_request.reason: not set");
	expect_edge_error(&rq, mq_reason4,
	    "rekey_request.reason: unknown value 4");

	/* Informational enums: unknown values read as unspecified. */
	pb.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO;
	pb.hello = &h;
	h.site_id = 1;
	h.backend = 42;
	h.features = 0xffffffffu;
	len = meshwan__v1__edge_message__pack(&pb, buf);
	assert_int_equal(pbconv_decode_edge_message(buf, len, &out, err,
	    sizeof(err)), 0);
	assert_int_equal(out.u.hello.backend, MSG_BACKEND_UNSPECIFIED);
	assert_int_equal(out.u.hello.features, 0xffffffffu);
	/* An empty message has no body. */
	assert_int_equal(pbconv_decode_edge_message(buf, 0, &out, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "body: not set");
}

static void
test_invalid_enroll(void **state)
{
	Meshwan__V1__EnrollRequest rq = MESHWAN__V1__ENROLL_REQUEST__INIT;
	Meshwan__V1__EnrollResponse rs = MESHWAN__V1__ENROLL_RESPONSE__INIT;
	struct msg_enroll_request q;
	struct msg_enroll_response r;
	uint8_t csr[9000], *buf = malloc(32768);
	ProtobufCBinaryData chain[5];
	size_t len;
	char err[PBCONV_ERR_LEN];

	memset(csr, 1, sizeof(csr));
	rq.token = (char *)"abc def";
	rq.csr_der.data = csr;
	rq.csr_der.len = 100;
	len = meshwan__v1__enroll_request__pack(&rq, buf);
	assert_int_equal(pbconv_decode_enroll_request(buf, len, &q, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "token: character at 3 not printable ASCII");
	rq.token = (char *)"";
	len = meshwan__v1__enroll_request__pack(&rq, buf);
	assert_int_equal(pbconv_decode_enroll_request(buf, len, &q, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "token: 0 chars, allowed 1..128");
	rq.token = (char *)"t";
	rq.csr_der.len = 8193;
	len = meshwan__v1__enroll_request__pack(&rq, buf);
	assert_int_equal(pbconv_decode_enroll_request(buf, len, &q, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "csr_der: 8193 bytes, limit 8192");
	rq.csr_der.len = 0;
	len = meshwan__v1__enroll_request__pack(&rq, buf);
	assert_int_equal(pbconv_decode_enroll_request(buf, len, &q, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "csr_der: 0 bytes, allowed 1..8192");

	/* Success needs the certificate, a chain and the name. */
	rs.site_id = 5;
	rs.certificate_der.data = csr;
	rs.certificate_der.len = 10;
	rs.controller_name = (char *)"ctl";
	len = meshwan__v1__enroll_response__pack(&rs, buf);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &r, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "ca_chain_der: 0 entries, allowed 1..4");
	for (size_t i = 0; i < 5; i++) {
		chain[i].data = csr;
		chain[i].len = 10;
	}
	rs.ca_chain_der = chain;
	rs.n_ca_chain_der = 5;
	len = meshwan__v1__enroll_response__pack(&rs, buf);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &r, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "ca_chain_der: 5 entries, limit 4");
	rs.n_ca_chain_der = 2;
	chain[1].len = 0;
	len = meshwan__v1__enroll_response__pack(&rs, buf);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &r, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "ca_chain_der[1]: 0 bytes, allowed 1..8192");
	/* An unknown error code is never read as success. */
	chain[1].len = 10;
	rs.error = 6;
	len = meshwan__v1__enroll_response__pack(&rs, buf);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &r, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "error: unknown value 6");
	rs.error = 0;
	len = meshwan__v1__enroll_response__pack(&rs, buf);
	assert_int_equal(pbconv_decode_enroll_response(buf, len, &r, err,
	    sizeof(err)), 0);
	msg_enroll_response_free(&r);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Hostile buffers */

static void
test_size_limits(void **state)
{
	struct msg_controller_message out;
	struct msg_enroll_request q;
	uint8_t *big;
	size_t n = PBCONV_MAX_SESSION_MSG + 1;
	char err[PBCONV_ERR_LEN];

	big = calloc(1, n);
	assert_non_null(big);
	assert_int_equal(pbconv_decode_controller_message(big, n, &out, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "ControllerMessage: 16777217 bytes, limit "
	    "16777216");
	assert_int_equal(pbconv_decode_enroll_request(big,
	    PBCONV_MAX_ENROLL_MSG + 1, &q, err, sizeof(err)), -1);
	assert_string_equal(err, "EnrollRequest: 65537 bytes, limit 65536");

	/*
	 * Memory amplification: a snapshot of 1 MiB made of empty tunnels
	 * (2 bytes each) would make protobuf-c allocate ~100 bytes per byte.
	 * snapshot = field 1, LEN; tunnels = field 3, LEN 0.
	 */
	{
		size_t body = 1u << 20, i = 0;
		uint8_t *p = big;

		*p++ = 0x0a;		/* ControllerMessage.snapshot */
		for (size_t v = body; ; v >>= 7) {	/* varint length */
			*p++ = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		for (i = 0; i < body / 2; i++) {
			*p++ = 0x1a;	/* Intent.tunnels */
			*p++ = 0x00;
		}
		assert_int_equal(pbconv_decode_controller_message(big,
		    (size_t)(p - big), &out, err, sizeof(err)), -1);
		assert_string_equal(err, "ControllerMessage: decoding would "
		    "need more memory than the message size allows");
	}
	free(big);
}

static void
test_truncated_and_random(void **state)
{
	struct msg_controller_message m, out;
	struct msg_edge_message e, eout;
	struct msg_enroll_request q;
	struct msg_enroll_response r;
	uint8_t *buf, rnd[512];
	size_t len, accepted = 0;
	char err[PBCONV_ERR_LEN];
	uint32_t seed = 12345;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&m.u.snapshot, 3);
	assert_int_equal(pbconv_encode_controller_message(&m, &buf, &len), 0);
	/* Every prefix: refused, or (at a field boundary) a valid message
	 * that is released normally.  Either way nothing leaks (ASan). */
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n + 1);

		memcpy(copy, buf, n);
		if (pbconv_decode_controller_message(copy, n, &out, err,
		    sizeof(err)) == 0) {
			accepted++;
			msg_controller_message_free(&out);
		} else {
			assert_int_equal(out.kind, MSG_CONTROLLER_NONE);
			assert_true(strlen(err) > 0);
		}
		free(copy);
	}
	assert_true(accepted < 5);
	/* Flipped bytes. */
	for (size_t n = 0; n < len; n += 7) {
		buf[n] ^= 0xff;
		if (pbconv_decode_controller_message(buf, len, &out, err,
		    sizeof(err)) == 0)
			msg_controller_message_free(&out);
		buf[n] ^= 0xff;
	}
	free(buf);
	msg_controller_message_free(&m);

	for (int i = 0; i < 20000; i++) {
		size_t n = 0;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % sizeof(rnd);
		for (size_t j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			rnd[j] = (uint8_t)(seed >> 16);
		}
		if (pbconv_decode_controller_message(rnd, n, &out, err,
		    sizeof(err)) == 0)
			msg_controller_message_free(&out);
		if (pbconv_decode_edge_message(rnd, n, &eout, err,
		    sizeof(err)) == 0)
			msg_edge_message_free(&eout);
		if (pbconv_decode_enroll_request(rnd, n, &q, err,
		    sizeof(err)) == 0)
			msg_enroll_request_free(&q);
		if (pbconv_decode_enroll_response(rnd, n, &r, err,
		    sizeof(err)) == 0)
			msg_enroll_response_free(&r);
	}

	/* Unknown fields (a future version's) are ignored. */
	memset(&e, 0, sizeof(e));
	e.kind = MSG_EDGE_KEY;
	e.u.key.epoch = 1;
	e.u.key.signature_len = 1;
	e.u.key.not_after = 1;
	assert_int_equal(pbconv_encode_edge_message(&e, &buf, &len), 0);
	buf = realloc(buf, len + 3);
	buf[len] = 0xf8;	/* field 31, varint */
	buf[len + 1] = 0x01;
	buf[len + 2] = 0x05;
	assert_int_equal(pbconv_decode_edge_message(buf, len + 3, &eout, err,
	    sizeof(err)), 0);
	assert_int_equal(eout.kind, MSG_EDGE_KEY);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Hash, delta application, encoder refusals, helpers */

static void
hash_of(const struct msg_intent *m, uint8_t out[MSG_HASH_LEN])
{
	assert_int_equal(pbconv_intent_hash(m, out), 0);
}

static void
test_hash(void **state)
{
	struct msg_intent m, c;
	struct msg_controller_message msg, dec;
	uint8_t h0[MSG_HASH_LEN], h1[MSG_HASH_LEN], h2[MSG_HASH_LEN];
	struct msg_tunnel tmp;
	uint8_t *buf;
	size_t len;

	fill_intent(&m, 6);
	hash_of(&m, h0);
	hash_of(&m, h1);
	assert_memory_equal(h0, h1, MSG_HASH_LEN);

	/* Independent of tunnel order. */
	tmp = m.tunnels[0];
	m.tunnels[0] = m.tunnels[5];
	m.tunnels[5] = tmp;
	tmp = m.tunnels[1];
	m.tunnels[1] = m.tunnels[3];
	m.tunnels[3] = tmp;
	hash_of(&m, h1);
	assert_memory_equal(h0, h1, MSG_HASH_LEN);

	/* The receiver's decoded copy hashes the same as the sender's. */
	memset(&msg, 0, sizeof(msg));
	msg.kind = MSG_CONTROLLER_SNAPSHOT;
	msg.u.snapshot = m;
	assert_int_equal(pbconv_encode_controller_message(&msg, &buf, &len),
	    0);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &dec, NULL,
	    0), 0);
	free(buf);
	hash_of(&dec.u.snapshot, h1);
	assert_memory_equal(h0, h1, MSG_HASH_LEN);
	msg_controller_message_free(&dec);

	/* Any change changes it. */
#define CHANGES(stmt)                                                          \
	do {                                                                   \
		assert_int_equal(msg_intent_copy(&c, &m), 0);                  \
		stmt;                                                          \
		hash_of(&c, h2);                                               \
		if (memcmp(h0, h2, MSG_HASH_LEN) == 0)                         \
			fail_msg("hash unchanged by %s", #stmt);               \
		msg_intent_free(&c);                                           \
	} while (0)
	CHANGES(c.version++);
	CHANGES(c.site.asn++);
	CHANGES(c.site.role = MSG_ROLE_SPOKE);
	CHANGES(c.site.region[0] = 'x');
	CHANGES(c.site.lan_prefixes[2].len = 64);
	CHANGES(c.site.n_lan_prefixes--);
	CHANGES(c.site.links[0].public_port = 0);
	CHANGES(c.tunnels[2].sa_in.spi++);
	CHANGES(c.tunnels[2].sa_out.spi++);
	CHANGES(c.tunnels[2].sa_in.sa_epoch++);
	CHANGES(c.tunnels[2].sa_out.sa_epoch++);
	CHANGES(c.tunnels[2].sa_in.sender_key_epoch++);
	CHANGES(c.tunnels[2].sa_in.receiver_key_epoch++);
	CHANGES(c.tunnels[2].sa_out.sender_key_epoch++);
	CHANGES(c.tunnels[2].sa_out.receiver_key_epoch++);
	CHANGES(c.tunnels[2].mtu++);
	CHANGES(c.tunnels[2].remote_port++);
	CHANGES(c.tunnels[2].remote_address.bytes[3]++);
	CHANGES(c.tunnels[2].crypto.cipher = MSG_CIPHER_AES_GCM_128);
	CHANGES(c.tunnels[2].crypto.replay_window++);
	CHANGES(c.tunnels[2].crypto.rekey_bytes++);
	CHANGES(c.tunnels[2].peer.keys[1].public_key[5]++);
	CHANGES((blob_own(&c.tunnels[2].peer.certificate_der),
	    c.tunnels[2].peer.certificate_der.data[9]++));
	CHANGES(c.tunnels[2].peer.allowed_prefixes[0].len = 16);
	CHANGES(c.tunnels[2].peer.n_allowed_prefixes--);
	CHANGES(c.tunnels[1].inner_local6.addr.bytes[15] ^= 2;
	    c.tunnels[1].inner_remote6.bytes[15] ^= 2;
	    c.tunnels[1].bgp.address6 = c.tunnels[1].inner_remote6);
	CHANGES(c.tunnels[2].bgp.bfd = false);
	CHANGES(c.tunnels[2].bgp.hold_time++);
	CHANGES(c.tunnels[2].remote_link[0] = 'x');
	CHANGES((blob_own(&c.ca_chain_der), c.ca_chain_der.data[0]++));
	CHANGES(c.keepalive_seconds++);
	CHANGES(c.headless_grace_seconds++);
	CHANGES(msg_tunnel_free(&c.tunnels[--c.n_tunnels]));
#undef CHANGES

	/* The same from per-tunnel digests a controller would cache. */
	{
		uint8_t dig[6 * MSG_HASH_LEN];

		for (size_t i = 0; i < m.n_tunnels; i++)
			assert_int_equal(pbconv_tunnel_digest(&m.tunnels[i],
			    dig + i * MSG_HASH_LEN), 0);
		assert_int_equal(pbconv_intent_hash_digests(&m, dig, h1), 0);
		assert_memory_equal(h0, h1, MSG_HASH_LEN);
		/* A changed digest changes the hash; ids must be unique. */
		dig[2 * MSG_HASH_LEN] ^= 1;
		assert_int_equal(pbconv_intent_hash_digests(&m, dig, h1), 0);
		assert_memory_not_equal(h0, h1, MSG_HASH_LEN);
		m.tunnels[4].id = m.tunnels[1].id;
		assert_int_equal(pbconv_intent_hash_digests(&m, dig, h1), -1);
		assert_int_equal(pbconv_intent_hash(&m, h1), -1);
		m.tunnels[4].id = 5;	/* its own id again */
		assert_int_equal(pbconv_intent_hash(&m, h1), 0);
		assert_memory_equal(h0, h1, MSG_HASH_LEN);
		assert_int_equal(pbconv_intent_hash_digests(&m, NULL, h1), -1);
		m.tunnels[0].vni = 0;	/* a VXLAN tunnel without VNI */
		assert_int_equal(pbconv_tunnel_digest(&m.tunnels[0], dig), -1);
		m.tunnels[0].vni = 1006;
	}

	/* Invalid intents have no hash. */
	m.version = 0;
	assert_int_equal(pbconv_intent_hash(&m, h1), -1);
	assert_int_equal(pbconv_intent_hash_digests(&m, NULL, h1), -1);
	m.version = 42;
	msg_intent_free(&m);
}

static void
test_apply_delta(void **state)
{
	struct msg_intent m, want, before;
	struct msg_intent_delta d;
	uint8_t h1[MSG_HASH_LEN], h2[MSG_HASH_LEN];
	char err[PBCONV_ERR_LEN];

	fill_intent(&m, 4);	/* tunnels 1..4 */
	memset(&d, 0, sizeof(d));
	d.from_version = 42;
	d.version = 43;
	d.upsert = calloc(2, sizeof(*d.upsert));
	fill_tunnel(&d.upsert[0], 3, false);	/* replaces 3 (was VXLAN) */
	d.upsert[0].mtu = 1300;
	fill_tunnel(&d.upsert[1], 9, true);	/* new */
	d.n_upsert = 2;
	d.remove = calloc(1, sizeof(*d.remove));
	d.remove[0] = 2;
	d.n_remove = 1;
	assert_int_equal(msg_validate_intent_delta(&d, err, sizeof(err)), 0);

	/* Refusals leave the intent as it was. */
	assert_int_equal(msg_intent_copy(&before, &m), 0);
	d.from_version = 41;
	assert_int_equal(msg_intent_apply_delta(&m, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "from_version: 41 but the applied version is "
	    "42");
	d.from_version = 42;
	d.remove[0] = 77;
	assert_int_equal(msg_intent_apply_delta(&m, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "remove[0]: tunnel 77 is not in the intent");
	d.remove[0] = 2;
	strcpy(d.upsert[1].local_link, "lte");
	assert_int_equal(msg_intent_apply_delta(&m, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "upsert[1].local_link: \"lte\" is not a link "
	    "of the site");
	/* A new site without "inet", which tunnel 1 keeps using. */
	d.has_site = true;
	fill_site(&d.site, 1);
	strcpy(d.site.links[0].name, "inet2");
	strcpy(d.upsert[0].local_link, "mpls_1");
	strcpy(d.upsert[1].local_link, "mpls_1");
	assert_int_equal(msg_intent_apply_delta(&m, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "site.links: tunnel 1 still uses link "
	    "\"inet\"");
	assert_intent_equal(&m, &before);
	/* 4 + 65536 new tunnels would exceed the intent's limit. */
	{
		struct msg_intent_delta big;

		memset(&big, 0, sizeof(big));
		big.from_version = 42;
		big.version = 43;
		big.n_upsert = MSG_LIST_MAX;
		big.upsert = calloc(big.n_upsert, sizeof(*big.upsert));
		assert_non_null(big.upsert);
		for (size_t i = 0; i < big.n_upsert; i++) {
			big.upsert[i].id = 100 + i;
			strcpy(big.upsert[i].local_link, "inet");
		}
		assert_int_equal(msg_intent_apply_delta(&m, &big, err,
		    sizeof(err)), -1);
		assert_string_equal(err, "upsert: the intent would hold 65540 "
		    "tunnels, limit 65536");
		msg_intent_delta_free(&big);
	}
	assert_intent_equal(&m, &before);
	msg_intent_free(&before);
	strcpy(d.site.links[0].name, "inet");
	strcpy(d.upsert[0].local_link, "inet");
	strcpy(d.upsert[1].local_link, "inet");
	d.site.asn = 65010;

	assert_int_equal(msg_intent_apply_delta(&m, &d, err, sizeof(err)), 0);
	assert_int_equal(m.version, 43);
	assert_int_equal(m.site.asn, 65010);
	assert_int_equal(m.n_tunnels, 4);
	assert_int_equal(m.tunnels[0].id, 1);
	assert_int_equal(m.tunnels[1].id, 3);
	assert_int_equal(m.tunnels[1].mtu, 1300);
	assert_int_equal(m.tunnels[1].encap, MSG_ENCAP_GRE);
	assert_int_equal(m.tunnels[2].id, 4);
	assert_int_equal(m.tunnels[3].id, 9);
	assert_null(msg_intent_find_tunnel(&m, 2));
	assert_non_null(msg_intent_find_tunnel(&m, 9));

	/* Same state as a snapshot built directly: same hash. */
	fill_intent(&want, 4);
	want.version = 43;
	want.site.asn = 65010;
	msg_tunnel_free(&want.tunnels[1]);
	fill_tunnel(&want.tunnels[1], 9, true);
	msg_tunnel_free(&want.tunnels[2]);
	fill_tunnel(&want.tunnels[2], 3, false);
	want.tunnels[2].mtu = 1300;
	hash_of(&m, h1);
	hash_of(&want, h2);
	assert_memory_equal(h1, h2, MSG_HASH_LEN);
	msg_intent_free(&want);
	msg_intent_delta_free(&d);
	msg_intent_free(&m);
}

/* A delta from version 42 to 43 with copies of the given tunnels. */
static void
make_delta(struct msg_intent_delta *d, const uint64_t *rm, size_t n_rm,
    const uint64_t *up, size_t n_up)
{
	memset(d, 0, sizeof(*d));
	d->from_version = 42;
	d->version = 43;
	if (n_rm > 0) {
		d->remove = calloc(n_rm, sizeof(*d->remove));
		assert_non_null(d->remove);
		memcpy(d->remove, rm, n_rm * sizeof(*rm));
		d->n_remove = n_rm;
	}
	if (n_up > 0) {
		d->upsert = calloc(n_up, sizeof(*d->upsert));
		assert_non_null(d->upsert);
		for (size_t i = 0; i < n_up; i++) {
			fill_tunnel(&d->upsert[i], up[i], true);
			d->upsert[i].mtu = 1280;	/* differs from fill */
		}
		d->n_upsert = n_up;
	}
}

/*
 * What applying d to m must give, built the obvious way: old tunnels in
 * their order (removed ones left out, upserted ones replaced), then the new
 * upserts in the delta's order.
 */
static void
expected_apply(const struct msg_intent *m, const struct msg_intent_delta *d,
    struct msg_intent *out)
{
	size_t n = 0;

	assert_int_equal(msg_intent_copy(out, m), 0);
	for (size_t i = 0; i < out->n_tunnels; i++)
		msg_tunnel_free(&out->tunnels[i]);
	free(out->tunnels);
	out->tunnels = calloc(m->n_tunnels + d->n_upsert + 1,
	    sizeof(*out->tunnels));
	assert_non_null(out->tunnels);
	for (size_t i = 0; i < m->n_tunnels; i++) {
		const struct msg_tunnel *src = &m->tunnels[i];
		bool removed = false;

		for (size_t k = 0; k < d->n_remove; k++)
			removed |= d->remove[k] == src->id;
		for (size_t j = 0; j < d->n_upsert; j++)
			if (d->upsert[j].id == src->id)
				src = &d->upsert[j];
		if (!removed)
			assert_int_equal(msg_tunnel_copy(&out->tunnels[n++],
			    src), 0);
	}
	for (size_t j = 0; j < d->n_upsert; j++)
		if (msg_intent_find_tunnel(m, d->upsert[j].id) == NULL)
			assert_int_equal(msg_tunnel_copy(&out->tunnels[n++],
			    &d->upsert[j]), 0);
	out->n_tunnels = n;
	if (d->has_site) {
		msg_site_free(&out->site);
		assert_int_equal(msg_site_copy(&out->site, &d->site), 0);
	}
	out->version = d->version;
}

/* Apply must succeed and give what expected_apply() builds. */
static void
assert_applies(struct msg_intent *m, const struct msg_intent_delta *d)
{
	struct msg_intent want;
	char err[PBCONV_ERR_LEN];

	expected_apply(m, d, &want);
	if (msg_intent_apply_delta(m, d, err, sizeof(err)) != 0)
		fail_msg("apply: %s", err);
	assert_intent_equal(m, &want);
	msg_intent_free(&want);
}

/* The intent's own bytes and its tunnel array's, pointers included. */
struct raw_intent {
	struct msg_intent m;
	struct msg_tunnel *t;
};

static void
raw_save(struct raw_intent *r, const struct msg_intent *m)
{
	r->m = *m;
	r->t = calloc(m->n_tunnels + 1, sizeof(*r->t));
	assert_non_null(r->t);
	memcpy(r->t, m->tunnels, m->n_tunnels * sizeof(*r->t));
}

/* A refused delta: err as expected, *m byte for byte as before. */
static void
assert_refused(struct msg_intent *m, const struct msg_intent_delta *d,
    const char *want_err)
{
	struct raw_intent r;
	char err[PBCONV_ERR_LEN];

	raw_save(&r, m);
	assert_int_equal(msg_intent_apply_delta(m, d, err, sizeof(err)), -1);
	assert_string_equal(err, want_err);
	assert_memory_equal(m, &r.m, sizeof(*m));
	assert_memory_equal(m->tunnels, r.t, m->n_tunnels * sizeof(*r.t));
	free(r.t);
}

static void
test_apply_delta_cases(void **state)
{
	static const uint64_t rm25[] = { 2, 5 }, up3_10_11[] = { 3, 10, 11 };
	static const uint64_t all[] = { 1, 2, 3, 4, 5, 6 }, id20[] = { 20 };
	static const uint64_t id2[] = { 2 }, id1_2[] = { 1, 2 };
	struct msg_intent m, want;
	struct msg_intent_delta d;
	uint8_t h1[MSG_HASH_LEN], h2[MSG_HASH_LEN];

	/* Remove and upsert in one delta: order kept, new ones last. */
	fill_intent(&m, 6);
	make_delta(&d, rm25, 2, up3_10_11, 3);
	assert_applies(&m, &d);
	assert_int_equal(m.n_tunnels, 6);
	assert_int_equal(m.tunnels[0].id, 1);
	assert_int_equal(m.tunnels[1].id, 3);
	assert_int_equal(m.tunnels[1].mtu, 1280);
	assert_int_equal(m.tunnels[2].id, 4);
	assert_int_equal(m.tunnels[3].id, 6);
	assert_int_equal(m.tunnels[4].id, 10);
	assert_int_equal(m.tunnels[5].id, 11);
	msg_intent_delta_free(&d);
	msg_intent_free(&m);

	/* Remove every tunnel: an intent with none, hashed like one. */
	fill_intent(&m, 6);
	make_delta(&d, all, 6, NULL, 0);
	assert_applies(&m, &d);
	assert_int_equal(m.n_tunnels, 0);
	fill_intent(&want, 0);
	want.version = 43;
	hash_of(&m, h1);
	hash_of(&want, h2);
	assert_memory_equal(h1, h2, MSG_HASH_LEN);
	msg_intent_free(&want);
	msg_intent_delta_free(&d);
	/* ... and from none to one again. */
	make_delta(&d, NULL, 0, id20, 1);
	d.from_version = 43;
	d.version = 44;
	assert_applies(&m, &d);
	assert_int_equal(m.n_tunnels, 1);
	assert_int_equal(m.tunnels[0].id, 20);
	msg_intent_delta_free(&d);
	msg_intent_free(&m);

	/* Remove all and add one in the same delta. */
	fill_intent(&m, 6);
	make_delta(&d, all, 6, id20, 1);
	assert_applies(&m, &d);
	assert_int_equal(m.n_tunnels, 1);
	msg_intent_delta_free(&d);
	msg_intent_free(&m);

	/* A delta that changes nothing but the version. */
	fill_intent(&m, 3);
	make_delta(&d, NULL, 0, NULL, 0);
	assert_applies(&m, &d);
	assert_int_equal(m.version, 43);
	msg_intent_delta_free(&d);
	msg_intent_free(&m);

	/*
	 * A new site without "inet": the tunnels on it are upserted onto
	 * links the new site has (mpls_1, and "inet2", the renamed inet), so
	 * nothing unchanged is left on the dropped link.
	 */
	fill_intent(&m, 3);
	make_delta(&d, (const uint64_t[]){ 3 }, 1, id1_2, 2);
	d.has_site = true;
	fill_site(&d.site, 1);
	strcpy(d.site.links[0].name, "inet2");
	strcpy(d.upsert[0].local_link, "mpls_1");
	strcpy(d.upsert[1].local_link, "inet2");
	assert_applies(&m, &d);
	assert_string_equal(m.site.links[0].name, "inet2");
	assert_string_equal(m.tunnels[0].local_link, "mpls_1");
	assert_string_equal(m.tunnels[1].local_link, "inet2");
	msg_intent_delta_free(&d);
	msg_intent_free(&m);

	/* Refusals leave every byte of the intent as it was. */
	fill_intent(&m, 6);
	make_delta(&d, rm25, 2, up3_10_11, 3);
	d.from_version = 40;
	assert_refused(&m, &d, "from_version: 40 but the applied version "
	    "is 42");
	d.from_version = 42;
	d.remove[1] = 99;
	assert_refused(&m, &d, "remove[1]: tunnel 99 is not in the intent");
	d.remove[1] = 5;
	strcpy(d.upsert[2].local_link, "lte");
	assert_refused(&m, &d, "upsert[2].local_link: \"lte\" is not a link "
	    "of the site");
	strcpy(d.upsert[2].local_link, "inet");
	d.has_site = true;
	fill_site(&d.site, 1);
	strcpy(d.site.links[0].name, "inet2");
	strcpy(d.upsert[0].local_link, "mpls_1");
	strcpy(d.upsert[1].local_link, "mpls_1");
	strcpy(d.upsert[2].local_link, "mpls_1");
	assert_refused(&m, &d, "site.links: tunnel 1 still uses link "
	    "\"inet\"");
	msg_intent_delta_free(&d);
	/* Ids named twice (an unvalidated delta) are refused, not guessed. */
	make_delta(&d, id2, 1, id2, 1);
	assert_refused(&m, &d, "upsert, remove: tunnel 2 named twice");
	msg_intent_delta_free(&d);
	msg_intent_free(&m);
}

static uint32_t
rnd(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/* A random valid delta for m: removes, changed and new tunnels, and now
 * and then a changed site. */
static void
random_delta(const struct msg_intent *m, uint32_t *seed, uint64_t *next_id,
    struct msg_intent_delta *d)
{
	size_t n_rm = 0, n_ch = 0, n_add;
	bool *taken;

	memset(d, 0, sizeof(*d));
	d->from_version = m->version;
	d->version = m->version + 1 + rnd(seed) % 3;
	taken = calloc(m->n_tunnels + 1, sizeof(*taken));
	d->remove = calloc(m->n_tunnels + 1, sizeof(*d->remove));
	d->upsert = calloc(m->n_tunnels + 8, sizeof(*d->upsert));
	assert_true(taken != NULL && d->remove != NULL && d->upsert != NULL);
	if (m->n_tunnels > 0) {
		/* Sometimes everything goes. */
		if (rnd(seed) % 60 == 0)
			n_rm = m->n_tunnels;
		else
			n_rm = rnd(seed) % 4;
		n_ch = rnd(seed) % 4;
	}
	for (size_t k = 0; k < n_rm; k++) {
		size_t i = n_rm == m->n_tunnels ? k : rnd(seed) % m->n_tunnels;

		if (taken[i])
			continue;
		taken[i] = true;
		d->remove[d->n_remove++] = m->tunnels[i].id;
	}
	for (size_t k = 0; k < n_ch; k++) {
		size_t i = rnd(seed) % m->n_tunnels;
		struct msg_tunnel *t = &d->upsert[d->n_upsert];

		if (taken[i])
			continue;
		taken[i] = true;
		assert_int_equal(msg_tunnel_copy(t, &m->tunnels[i]), 0);
		switch (rnd(seed) % 4) {
		case 0:
			t->sa_in.spi += 1;
			break;
		case 1:
			t->peer.keys[0].epoch += 10;
			t->sa_out.sa_epoch++;
			t->sa_out.receiver_key_epoch++;
			break;
		case 2:
			t->mtu = 1300 + rnd(seed) % 100;
			break;
		default:
			t->peer.certificate_der.data[5] ^= 0x10;
			break;
		}
		d->n_upsert++;
	}
	n_add = rnd(seed) % 5;
	for (size_t k = 0; k < n_add; k++)
		fill_tunnel(&d->upsert[d->n_upsert++], (*next_id)++,
		    rnd(seed) % 2);
	if (rnd(seed) % 6 == 0) {
		d->has_site = true;
		assert_int_equal(msg_site_copy(&d->site, &m->site), 0);
		d->site.asn = 64512 + rnd(seed) % 1000;
		d->site.links[0].public_port++;
	}
	free(taken);
}

static void
test_hash_update(void **state)
{
	struct msg_intent m;
	struct msg_intent_delta d;
	struct pbconv_digest *dig = NULL;
	size_t n_dig = 0;
	uint8_t h1[MSG_HASH_LEN], h2[MSG_HASH_LEN];
	char err[PBCONV_ERR_LEN];
	uint32_t seed = 7;
	uint64_t next_id = 100;

	/* A snapshot: every tunnel digested. */
	fill_intent(&m, 20);
	assert_int_equal(pbconv_intent_hash_update(&m, NULL, &dig, &n_dig,
	    h1), 0);
	assert_int_equal(n_dig, 20);
	hash_of(&m, h2);
	assert_memory_equal(h1, h2, MSG_HASH_LEN);

	/* Random deltas: the kept digests give the full hash every time. */
	for (int round = 0; round < 300; round++) {
		random_delta(&m, &seed, &next_id, &d);
		if (msg_validate_intent_delta(&d, err, sizeof(err)) != 0)
			fail_msg("round %d: delta: %s", round, err);
		assert_applies(&m, &d);
		if (pbconv_intent_hash_update(&m, &d, &dig, &n_dig, h1) != 0)
			fail_msg("round %d: update failed", round);
		hash_of(&m, h2);
		assert_memory_equal(h1, h2, MSG_HASH_LEN);
		assert_int_equal(n_dig, m.n_tunnels);
		msg_intent_delta_free(&d);
	}

	/*
	 * Digests out of step with the state are refused and dropped: a
	 * delta applied without updating them (its new tunnel has no digest
	 * when the next delta comes), and a state whose version is not the
	 * delta's.  A snapshot-style call starts over.
	 */
	make_delta(&d, NULL, 0, (const uint64_t[]){ next_id++ }, 1);
	d.from_version = m.version;
	d.version = m.version + 1;
	assert_applies(&m, &d);
	msg_intent_delta_free(&d);
	make_delta(&d, NULL, 0, NULL, 0);
	d.from_version = m.version;
	d.version = m.version + 1;
	assert_applies(&m, &d);
	assert_int_equal(pbconv_intent_hash_update(&m, &d, &dig, &n_dig, h1),
	    -1);
	assert_null(dig);
	assert_int_equal(n_dig, 0);
	assert_int_equal(pbconv_intent_hash_update(&m, NULL, &dig, &n_dig,
	    h1), 0);
	hash_of(&m, h2);
	assert_memory_equal(h1, h2, MSG_HASH_LEN);
	d.version = m.version + 1;
	assert_int_equal(pbconv_intent_hash_update(&m, &d, &dig, &n_dig, h1),
	    -1);
	assert_null(dig);
	msg_intent_delta_free(&d);

	/* A removed id without a digest; an invalid intent. */
	assert_int_equal(pbconv_intent_hash_update(&m, NULL, &dig, &n_dig,
	    h1), 0);
	make_delta(&d, (const uint64_t[]){ 999999 }, 1, NULL, 0);
	d.from_version = m.version;
	d.version = m.version;
	assert_int_equal(pbconv_intent_hash_update(&m, &d, &dig, &n_dig, h1),
	    -1);
	assert_null(dig);
	msg_intent_delta_free(&d);
	m.version = 0;
	assert_int_equal(pbconv_intent_hash_update(&m, NULL, &dig, &n_dig,
	    h1), -1);
	assert_null(dig);
	msg_intent_free(&m);
}

/* Remove tunnels[i] from an intent, keeping the order. */
static void
drop_tunnel(struct msg_intent *m, size_t i)
{
	msg_tunnel_free(&m->tunnels[i]);
	memmove(&m->tunnels[i], &m->tunnels[i + 1],
	    (m->n_tunnels - i - 1) * sizeof(*m->tunnels));
	m->n_tunnels--;
}

/* diff(from, to) applied to from must hash like to, and survive the wire. */
static void
assert_diff_applies(const struct msg_intent *from, const struct msg_intent *to,
    struct msg_intent_delta *d)
{
	struct msg_controller_message w, r;
	struct msg_intent s;
	uint8_t h1[MSG_HASH_LEN], h2[MSG_HASH_LEN], *buf;
	size_t len;
	char err[PBCONV_ERR_LEN];

	if (msg_intent_diff(from, to, d, err, sizeof(err)) != 0)
		fail_msg("diff: %s", err);
	memset(&w, 0, sizeof(w));
	w.kind = MSG_CONTROLLER_DELTA;
	w.u.delta = *d;
	assert_int_equal(pbconv_encode_controller_message(&w, &buf, &len), 0);
	assert_int_equal(pbconv_decode_controller_message(buf, len, &r, err,
	    sizeof(err)), 0);
	free(buf);
	assert_int_equal(msg_intent_copy(&s, from), 0);
	if (msg_intent_apply_delta(&s, &r.u.delta, err, sizeof(err)) != 0)
		fail_msg("apply: %s", err);
	hash_of(&s, h1);
	hash_of(to, h2);
	assert_memory_equal(h1, h2, MSG_HASH_LEN);
	msg_intent_free(&s);
	msg_controller_message_free(&r);
}

static void
test_diff(void **state)
{
	struct msg_intent from, to;
	struct msg_intent_delta d;
	char err[PBCONV_ERR_LEN];
	uint32_t seed = 99;

	fill_intent(&from, 6);
	assert_int_equal(msg_intent_copy(&to, &from), 0);
	to.version = 43;
	assert_diff_applies(&from, &to, &d);
	assert_false(d.has_site);
	assert_int_equal(d.n_upsert, 0);
	assert_int_equal(d.n_remove, 0);
	msg_intent_delta_free(&d);

	to.site.asn = 65100;
	to.tunnels[2].mtu = 1280;
	drop_tunnel(&to, 4);			/* id 5 */
	to.tunnels = realloc(to.tunnels, 6 * sizeof(*to.tunnels));
	fill_tunnel(&to.tunnels[5], 50, true);
	to.n_tunnels = 6;
	assert_diff_applies(&from, &to, &d);
	assert_true(d.has_site);
	assert_int_equal(d.n_upsert, 2);
	assert_int_equal(d.upsert[0].id, 3);
	assert_int_equal(d.upsert[1].id, 50);
	assert_int_equal(d.n_remove, 1);
	assert_int_equal(d.remove[0], 5);
	msg_intent_delta_free(&d);

	/* Random edits, many rounds, each diffed from the previous state. */
	for (int round = 0; round < 200; round++) {
		struct msg_intent next;

		assert_int_equal(msg_intent_copy(&next, &to), 0);
		next.version++;
		for (int k = 0; k < 3; k++) {
			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 16) % 4) {
			case 0:
				if (next.n_tunnels > 0)
					drop_tunnel(&next, (seed >> 4) %
					    next.n_tunnels);
				break;
			case 1:
				next.tunnels = realloc(next.tunnels,
				    (next.n_tunnels + 1) * sizeof(*next.tunnels));
				fill_tunnel(&next.tunnels[next.n_tunnels],
				    1000 + (uint64_t)round * 4 + (uint64_t)k,
				    seed & 1);
				next.n_tunnels++;
				break;
			case 2:
				if (next.n_tunnels > 0)
					next.tunnels[(seed >> 4) %
					    next.n_tunnels].sa_in.spi += 1;
				break;
			default:
				next.site.links[0].public_port++;
				break;
			}
		}
		assert_diff_applies(&to, &next, &d);
		msg_intent_delta_free(&d);
		msg_intent_free(&to);
		to = next;
	}

	/* What a delta cannot carry. */
	to.keepalive_seconds = 20;
	assert_int_equal(msg_intent_diff(&from, &to, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "keepalive_seconds or headless_grace_seconds "
	    "changed: a delta cannot carry them, send a snapshot");
	blob_own(&to.ca_chain_der);
	to.ca_chain_der.data[0] ^= 1;
	assert_int_equal(msg_intent_diff(&from, &to, &d, err, sizeof(err)), -1);
	assert_string_equal(err, "ca_chain_der changed: a delta cannot carry "
	    "it, send a snapshot");
	msg_intent_free(&to);
	msg_intent_free(&from);
}

static void
test_encode_refuses(void **state)
{
	struct msg_controller_message m;
	struct msg_edge_message e;
	uint8_t *buf = (uint8_t *)&m;
	size_t len = 5;

	memset(&m, 0, sizeof(m));
	assert_int_equal(pbconv_encode_controller_message(&m, &buf, &len), -1);
	assert_null(buf);
	assert_int_equal(len, 0);
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	fill_intent(&m.u.snapshot, 2);
	m.u.snapshot.tunnels[1].vni = 0;
	assert_int_equal(pbconv_encode_controller_message(&m, &buf, &len), -1);
	msg_controller_message_free(&m);
	memset(&e, 0, sizeof(e));
	e.kind = MSG_EDGE_HELLO;
	assert_int_equal(pbconv_encode_edge_message(&e, &buf, &len), -1);
	/* A field without its terminating NUL is refused, not overread. */
	e.u.hello.site_id = 1;
	memset(e.u.hello.software_version, 'a',
	    sizeof(e.u.hello.software_version));
	assert_int_equal(pbconv_encode_edge_message(&e, &buf, &len), -1);
}

/* SA hard lifetimes as every edge derives them (proto/README.md). */
static void
test_sa_hard_limits(void **state)
{
	struct msg_crypto_profile c = { .cipher = MSG_CIPHER_AES_GCM_256,
		.esn = true };
	struct msg_sa_hard h;

	(void)state;
	/* Defaults: rekey 1 h, grace 24 h. */
	msg_sa_hard_limits(&c, 0, &h);
	assert_int_equal(h.seconds, 3600 + 86400 + MSG_SA_HARD_MARGIN);
	/* A 60 s rekey with a 24 h grace: the SA outlives the grace. */
	c.rekey_seconds = 60;
	msg_sa_hard_limits(&c, 86400, &h);
	assert_true(h.seconds >= 60 + 86400);
	/* The largest of both still fits. */
	c.rekey_seconds = MSG_REKEY_SECONDS_MAX;
	msg_sa_hard_limits(&c, MSG_GRACE_MAX, &h);
	assert_int_equal(h.seconds, (uint64_t)MSG_REKEY_SECONDS_MAX +
	    MSG_GRACE_MAX + MSG_SA_HARD_MARGIN);
	/* Volume: under 2^48 AES blocks in all (payload + one per packet
	 * for rounding + one per packet for the tag), far below 2^64. */
	assert_int_equal(h.bytes, MSG_SA_HARD_BYTES);
	assert_int_equal(h.packets, MSG_SA_HARD_PACKETS);
	assert_true(h.bytes / 16 + 2 * h.packets <= (UINT64_C(1) << 48));
	/* Soft limits leave half the hard one to finish a rekey. */
	assert_true(MSG_SA_SOFT_BYTES_MAX * 2 <= h.bytes);
	assert_true(MSG_SA_SOFT_PACKETS_MAX * 2 <= h.packets);
}

static void
test_addr_helpers(void **state)
{
	struct msg_addr a;
	struct msg_prefix p;
	char buf[MSG_PREFIX_STRLEN];

	assert_int_equal(msg_addr_parse("2001:DB8:0:0::1", &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(msg_addr_format(&a, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2001:db8::1");
	assert_int_equal(msg_addr_parse("10.0.0.01x", &a), -1);
	assert_int_equal(msg_addr_parse("", &a), -1);
	assert_int_equal(msg_prefix_parse("10.0.0.0/8", true, &p), 0);
	assert_int_equal(msg_prefix_format(&p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.0.0.0/8");
	assert_int_equal(msg_prefix_parse("10.0.0.1/8", true, &p), -1);
	assert_int_equal(msg_prefix_parse("10.0.0.1/8", false, &p), 0);
	assert_int_equal(msg_prefix_parse("10.0.0.0/08", true, &p), -1);
	assert_int_equal(msg_prefix_parse("10.0.0.0/", true, &p), -1);
	assert_int_equal(msg_prefix_parse("/8", true, &p), -1);
	assert_int_equal(msg_prefix_parse("0.0.0.0/0", true, &p), 0);
	assert_int_equal(msg_prefix_parse("::/0", true, &p), 0);
	assert_int_equal(msg_prefix_parse("fd00::/129", true, &p), -1);
	assert_int_equal(msg_prefix_parse("fd00::1/128", true, &p), 0);
	assert_true(msg_asn_is_private(64512));
	assert_true(msg_asn_is_private(4294967294u));
	assert_false(msg_asn_is_private(65535));
	assert_false(msg_asn_is_private(4294967295u));
	assert_string_equal(msg_encap_name(MSG_ENCAP_VXLAN), "vxlan");
	assert_string_equal(msg_cipher_name((enum msg_cipher)9), "unspecified");
	assert_string_equal(msg_enroll_error_name(MSG_ENROLL_ERROR_TOKEN_USED),
	    "token-used");
	assert_int_equal(msg_port_or_default(0), 4500);
	assert_int_equal(msg_replay_window_or_default(0), 1024);
	assert_int_equal(msg_rekey_seconds_or_default(60), 60);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_enroll),
		cmocka_unit_test(test_roundtrip_snapshot),
		cmocka_unit_test(test_roundtrip_delta),
		cmocka_unit_test(test_roundtrip_small_controller),
		cmocka_unit_test(test_roundtrip_edge),
		cmocka_unit_test(test_many_tunnels),
		cmocka_unit_test(test_invalid_snapshot),
		cmocka_unit_test(test_invalid_delta),
		cmocka_unit_test(test_sa_ref_absent),
		cmocka_unit_test(test_invalid_small_controller),
		cmocka_unit_test(test_invalid_edge),
		cmocka_unit_test(test_invalid_enroll),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_truncated_and_random),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_apply_delta),
		cmocka_unit_test(test_apply_delta_cases),
		cmocka_unit_test(test_hash_update),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_addr_helpers),
		cmocka_unit_test(test_sa_hard_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
