/*
 * test_ctld_intent.c — from the compiler's views to wire intents: what an
 * edge is told about its site, its tunnels (addresses behind NAT, inner
 * /31s, BGP neighbour, peer certificate and epoch keys, SPIs) passes the wire contract's
 * limits; and the per-tunnel diff the session layer turns into deltas.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "controller/intent.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "proto/msg.h"
#include "proto/pbconv.h"

static const uint8_t fake_cert[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
static const struct model_prefix lan = { 4, 24, { 10, 1, 0, 0 } };

static void
lk_prefixes(void *arg, uint64_t site, const struct model_prefix **p,
    size_t *n)
{
	(void)arg;
	*p = site == 2 ? &lan : NULL;
	*n = site == 2 ? 1 : 0;
}

static struct msg_blob fake_blob;       /* fake_cert, shared */

static const struct msg_blob *
lk_cert(void *arg, uint64_t site)
{
	(void)arg;
	if (fake_blob.len == 0)
		assert_int_equal(msg_blob_set(&fake_blob, fake_cert,
		    sizeof(fake_cert)), 0);
	return site == 1 ? &fake_blob : NULL;
}

static void
lk_spis(void *arg, uint64_t tunnel, uint64_t site, struct intent_spis *out)
{
	(void)arg;
	(void)tunnel;
	/* Direction 1 -> 2: SA epoch 3, keys 5 (site 1) and 2 (site 2);
	 * direction 2 -> 1: SA epoch 6, keys 2 and 4. */
	struct msg_sa_key_ref up = { 2000, 3, 5, 2 }, down = { 1000, 6, 2, 4 };

	out->in = site == 1 ? down : up;
	out->out = site == 1 ? up : down;
}

/* Site 1 announced two epochs; site 2 none yet. */
static struct msg_peer_key hq_keys[2] = {
	{ .epoch = 4, .not_after = 1800000000, .signature_len = 3,
	  .public_key = { 4 }, .signature = { 9, 9, 4 } },
	{ .epoch = 5, .not_after = 1800003600, .signature_len = 2,
	  .public_key = { 5 }, .signature = { 9, 5 } },
};

static void
lk_keys(void *arg, uint64_t site, const struct msg_peer_key **k, size_t *n)
{
	(void)arg;
	*k = site == 1 ? hq_keys : NULL;
	*n = site == 1 ? 2 : 0;
}

static struct model_site
site(uint64_t id, const char *name, enum model_role role, const char *addr,
    const char *pub, uint16_t port)
{
	struct model_site s;

	memset(&s, 0, sizeof(s));
	s.id = id;
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.role = role;
	s.asn = (uint32_t)(64511 + id);
	s.n_links = 1;
	snprintf(s.links[0].name, sizeof(s.links[0].name), "inet");
	snprintf(s.links[0].address, sizeof(s.links[0].address), "%s", addr);
	snprintf(s.links[0].public_address, sizeof(s.links[0].public_address),
	    "%s", pub);
	s.links[0].public_port = port;
	return s;
}

static void
test_build(void **state)
{
	struct model_site sites[2] = {
		site(1, "hq", MODEL_ROLE_HUB, "192.0.2.1", "", 0),
		site(2, "br", MODEL_ROLE_SPOKE, "10.9.9.9", "198.51.100.7", 4501),
	};
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err;
	struct topo_input in;
	struct topo_output *t = NULL;
	const struct intent_lookup lk = { NULL, lk_prefixes, lk_cert, lk_spis,
	    lk_keys };
	const uint8_t ca[] = { 1, 2, 3 };
	struct intent_params p;
	struct msg_intent a, b;
	char txt[64], why[256];

	(void)state;
	model_policy_default(&pol);
	pol.topology = MODEL_TOPO_HUB_SPOKE;
	model_crypto_default(&cr);
	in = (struct topo_input){ &pol, &cr, sites, 2 };
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p = (struct intent_params){ .topo = t, .lookup = &lk, .ca_der = ca,
	    .ca_der_len = sizeof(ca), .keepalive_s = 15,
	    .headless_grace_s = 1800 };

	/* The spoke: peer hq, its certificate, reached at hq's address. */
	assert_int_equal(intent_build(&p, 2, 7, &b, why, sizeof(why)), 0);
	assert_int_equal(msg_validate_intent(&b, why, sizeof(why)), 0);
	assert_int_equal(b.version, 7);
	assert_int_equal(b.site.id, 2);
	assert_int_equal(b.site.role, MSG_ROLE_SPOKE);
	assert_int_equal(b.site.n_lan_prefixes, 1);
	assert_int_equal(b.n_tunnels, 1);
	assert_int_equal(b.tunnels[0].peer.site_id, 1);
	assert_int_equal(b.tunnels[0].peer.certificate_der.len,
	    sizeof(fake_cert));
	msg_addr_format(&b.tunnels[0].remote_address, txt, sizeof(txt));
	assert_string_equal(txt, "192.0.2.1");
	/* Each direction names its own SA epoch and both key epochs. */
	assert_int_equal(b.tunnels[0].sa_in.spi, 2000);
	assert_int_equal(b.tunnels[0].sa_in.sa_epoch, 3);
	assert_int_equal(b.tunnels[0].sa_in.sender_key_epoch, 5);
	assert_int_equal(b.tunnels[0].sa_in.receiver_key_epoch, 2);
	assert_int_equal(b.tunnels[0].sa_out.spi, 1000);
	assert_int_equal(b.tunnels[0].sa_out.sa_epoch, 6);
	assert_int_equal(b.tunnels[0].sa_out.sender_key_epoch, 2);
	assert_int_equal(b.tunnels[0].sa_out.receiver_key_epoch, 4);
	/* hq's signed epoch keys travel in the spoke's intent, in order. */
	assert_int_equal(b.tunnels[0].peer.n_keys, 2);
	assert_int_equal(b.tunnels[0].peer.keys[0].epoch, 4);
	assert_int_equal(b.tunnels[0].peer.keys[1].epoch, 5);
	assert_int_equal(b.tunnels[0].peer.keys[1].signature_len, 2);
	assert_int_equal(b.tunnels[0].peer.keys[1].public_key[0], 5);
	assert_int_equal(b.tunnels[0].bgp.remote_asn, 64512);
	assert_true(msg_addr_equal(&b.tunnels[0].bgp.address,
	    &b.tunnels[0].inner_remote));
	assert_int_equal(b.tunnels[0].inner_local.len, 31);
	assert_int_equal(b.keepalive_seconds, 15);

	/* The hub reaches the spoke at its NAT address and port. */
	assert_int_equal(intent_build(&p, 1, 3, &a, why, sizeof(why)), 0);
	msg_addr_format(&a.tunnels[0].remote_address, txt, sizeof(txt));
	assert_string_equal(txt, "198.51.100.7");
	assert_int_equal(a.tunnels[0].remote_port, 4501);
	assert_int_equal(a.tunnels[0].peer.certificate_der.len, 0);
	assert_int_equal(a.tunnels[0].peer.n_keys, 0);
	assert_true(a.tunnels[0].bgp.route_server_client);
	msg_intent_free(&a);
	msg_intent_free(&b);

	/* Dual stack: the /127 of tunnel_pool6 at the /31's offset in the
	 * IPv4 pool, the BGP neighbour's IPv6 address its other end. */
	assert_int_equal(intent_build(&p, 2, 8, &b, why, sizeof(why)), 0);
	assert_int_equal(b.tunnels[0].inner_local6.addr.family, 0);
	msg_intent_free(&b);
	p.pool4 = pol.pool;
	assert_int_equal(model_prefix_parse("fd00:64::/64", false, &p.pool6,
	    "pool6", NULL), 0);
	assert_int_equal(intent_build(&p, 2, 8, &b, why, sizeof(why)), 0);
	assert_int_equal(msg_validate_intent(&b, why, sizeof(why)), 0);
	msg_prefix_format(&b.tunnels[0].inner_local6, txt, sizeof(txt));
	{
		char want[64];
		const uint8_t *x = b.tunnels[0].inner_local.addr.bytes;
		unsigned off = (unsigned)(x[2] - pol.pool.addr[2]) * 256 + x[3];

		snprintf(want, sizeof(want), "fd00:64::%x/127", off);
		assert_string_equal(txt, want);
	}
	msg_addr_format(&b.tunnels[0].bgp.address6, txt, sizeof(txt));
	assert_true(msg_addr_equal(&b.tunnels[0].bgp.address6,
	    &b.tunnels[0].inner_remote6));
	assert_int_equal(b.tunnels[0].inner_remote6.bytes[15] ^
	    b.tunnels[0].inner_local6.addr.bytes[15], 1);
	msg_intent_free(&b);

	/* A site the compiler does not know has no intent. */
	assert_int_equal(intent_build(&p, 9, 1, &a, why, sizeof(why)), -1);
	topo_free(t);
}

/* Site N holds 10.N.0.0/24 and, for site 4, fd00:4::/64 too. */
static struct model_prefix site_pfx[8][2];

static void
lk_site_prefixes(void *arg, uint64_t site, const struct model_prefix **p,
    size_t *n)
{
	(void)arg;
	*p = site < 8 ? site_pfx[site] : NULL;
	*n = site < 8 ? (site == 4 ? 2 : 1) : 0;
}

/* The tunnel of `from` to `peer`'s allowed prefixes, as text joined by
 * spaces. */
static void
allowed_of(const struct intent_params *p, uint64_t from, uint64_t peer,
    char *out, size_t len)
{
	struct msg_intent m;
	char why[256], b[MSG_PREFIX_STRLEN];
	const struct msg_tunnel *t = NULL;

	assert_int_equal(intent_build(p, from, 1, &m, why, sizeof(why)), 0);
	assert_int_equal(msg_validate_intent(&m, why, sizeof(why)), 0);
	for (size_t i = 0; i < m.n_tunnels; i++)
		if (m.tunnels[i].peer.site_id == peer)
			t = &m.tunnels[i];
	assert_non_null(t);
	out[0] = '\0';
	for (size_t i = 0; i < t->peer.n_allowed_prefixes; i++) {
		assert_int_equal(msg_prefix_format(&t->peer.allowed_prefixes[i],
		    b, sizeof(b)), 0);
		snprintf(out + strlen(out), len - strlen(out), "%s%s",
		    i > 0 ? " " : "", b);
	}
	msg_intent_free(&m);
}

/*
 * Peer.allowed_prefixes: a spoke may announce its own LAN prefixes only;
 * a hub its own plus those of every site it reaches through hubs (never
 * the edge's own, never through the edge).
 */
static void
allowed_cases(struct intent_memo *memo)
{
	struct model_site sites[5] = {
		site(1, "hub-a", MODEL_ROLE_HUB, "192.0.2.1", "", 0),
		site(2, "hub-b", MODEL_ROLE_HUB, "192.0.2.2", "", 0),
		site(3, "sa", MODEL_ROLE_SPOKE, "192.0.2.3", "", 0),
		site(4, "sb", MODEL_ROLE_SPOKE, "192.0.2.4", "", 0),
		site(5, "sc", MODEL_ROLE_EDGE, "192.0.2.5", "", 0),
	};
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err;
	struct topo_input in;
	struct topo_output *t = NULL;
	const struct intent_lookup lk = { NULL, lk_site_prefixes, lk_cert,
	    lk_spis, lk_keys };
	struct intent_params p;
	char got[256];

	for (uint8_t i = 1; i < 8; i++) {
		site_pfx[i][0] = (struct model_prefix){ 4, 24, { 10, i } };
		site_pfx[i][1] = (struct model_prefix){ 6, 64,
		    { 0xfd, 0, 0, i } };
	}
	model_policy_default(&pol);
	model_crypto_default(&cr);

	/* Hub and spoke: both hubs carry every other site. */
	pol.topology = MODEL_TOPO_HUB_SPOKE;
	in = (struct topo_input){ &pol, &cr, sites, 5 };
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p = (struct intent_params){ .topo = t, .memo = memo, .lookup = &lk };
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24 10.2.0.0/24 10.4.0.0/24 "
	    "fd00:4::/64 10.5.0.0/24");
	allowed_of(&p, 1, 3, got, sizeof(got));
	assert_string_equal(got, "10.3.0.0/24");
	allowed_of(&p, 1, 4, got, sizeof(got));
	assert_string_equal(got, "10.4.0.0/24 fd00:4::/64");
	allowed_of(&p, 1, 2, got, sizeof(got));
	assert_string_equal(got, "10.2.0.0/24 10.3.0.0/24 10.4.0.0/24 "
	    "fd00:4::/64 10.5.0.0/24");
	topo_free(t);

	/* Regional: hub-a carries region b through hub-b, not the other
	 * way round through the edge asking. */
	snprintf(sites[0].region, sizeof(sites[0].region), "a");
	snprintf(sites[2].region, sizeof(sites[2].region), "a");
	snprintf(sites[1].region, sizeof(sites[1].region), "b");
	snprintf(sites[3].region, sizeof(sites[3].region), "b");
	snprintf(sites[4].region, sizeof(sites[4].region), "b");
	pol.topology = MODEL_TOPO_REGIONAL;
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p.topo = t;
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24 10.2.0.0/24 10.4.0.0/24 "
	    "fd00:4::/64 10.5.0.0/24");
	/* A spoke never carries: sb sees sc's own prefix only. */
	allowed_of(&p, 4, 5, got, sizeof(got));
	assert_string_equal(got, "10.5.0.0/24");
	/* hub-b, seen from sb: its own first, then region a via hub-a
	 * and sc, by site id. */
	allowed_of(&p, 4, 2, got, sizeof(got));
	assert_string_equal(got, "10.2.0.0/24 10.1.0.0/24 10.3.0.0/24 "
	    "10.5.0.0/24");
	topo_free(t);

	/* Full mesh without hubs: each peer its own prefixes only. */
	for (size_t i = 0; i < 5; i++)
		sites[i].role = MODEL_ROLE_SPOKE;
	pol.topology = MODEL_TOPO_FULL_MESH;
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p.topo = t;
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24");
	allowed_of(&p, 3, 4, got, sizeof(got));
	assert_string_equal(got, "10.4.0.0/24 fd00:4::/64");
	topo_free(t);
}

static void
test_allowed(void **state)
{
	struct intent_memo *memo = intent_memo_new();

	(void)state;
	assert_non_null(memo);
	allowed_cases(NULL);
	/* The memo of what each hub carries gives the same prefixes in the
	 * same order, through every topology compiled one after another. */
	allowed_cases(memo);
	allowed_cases(memo);
	intent_memo_free(memo);
}

/*
 * The memo follows the topology: a spoke added by topo_site_changed is
 * carried by the hubs at once (no stale list from before), and after
 * intent_memo_reset a changed prefix is seen.
 */
static void
test_allowed_memo_follows(void **state)
{
	struct model_site sites[5] = {
		site(1, "hub-a", MODEL_ROLE_HUB, "192.0.2.1", "", 0),
		site(2, "hub-b", MODEL_ROLE_HUB, "192.0.2.2", "", 0),
		site(3, "sa", MODEL_ROLE_SPOKE, "192.0.2.3", "", 0),
		site(4, "sb", MODEL_ROLE_SPOKE, "192.0.2.4", "", 0),
		site(6, "sd", MODEL_ROLE_SPOKE, "192.0.2.6", "", 0),
	};
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err;
	struct topo_input in;
	struct topo_change chg = { 0 };
	struct topo_output *t = NULL;
	struct intent_memo *memo = intent_memo_new();
	const struct intent_lookup lk = { NULL, lk_site_prefixes, lk_cert,
	    lk_spis, lk_keys };
	struct intent_params p;
	char got[256];

	(void)state;
	assert_non_null(memo);
	for (uint8_t i = 1; i < 8; i++) {
		site_pfx[i][0] = (struct model_prefix){ 4, 24, { 10, i } };
		site_pfx[i][1] = (struct model_prefix){ 6, 64,
		    { 0xfd, 0, 0, i } };
	}
	model_policy_default(&pol);
	model_crypto_default(&cr);
	pol.topology = MODEL_TOPO_HUB_SPOKE;
	in = (struct topo_input){ &pol, &cr, sites, 4 };
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p = (struct intent_params){ .topo = t, .memo = memo, .lookup = &lk };
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24 10.2.0.0/24 10.4.0.0/24 "
	    "fd00:4::/64");
	/* Site 6 joins: hub-a now carries it for sa. */
	in.n_sites = 5;
	assert_int_equal(topo_site_changed(t, &in, 6, &chg, &err), 0);
	topo_change_free(&chg);
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24 10.2.0.0/24 10.4.0.0/24 "
	    "fd00:4::/64 10.6.0.0/24");
	/* sd sees everything but its own. */
	allowed_of(&p, 6, 2, got, sizeof(got));
	assert_string_equal(got, "10.2.0.0/24 10.1.0.0/24 10.3.0.0/24 "
	    "10.4.0.0/24 fd00:4::/64");
	/* sb's prefix changes (the store, not the topology): after the
	 * reset the hubs carry the new one. */
	site_pfx[4][0] = (struct model_prefix){ 4, 24, { 10, 44 } };
	intent_memo_reset(memo);
	allowed_of(&p, 3, 1, got, sizeof(got));
	assert_string_equal(got, "10.1.0.0/24 10.2.0.0/24 10.44.0.0/24 "
	    "fd00:4::/64 10.6.0.0/24");
	topo_free(t);
	intent_memo_free(memo);
}

static struct msg_intent
intent_with(const uint64_t *ids, size_t n)
{
	struct msg_intent m;

	memset(&m, 0, sizeof(m));
	m.version = 1;
	m.tunnels = calloc(n, sizeof(*m.tunnels));
	m.n_tunnels = n;
	for (size_t i = 0; i < n; i++) {
		m.tunnels[i].id = ids[i];
		m.tunnels[i].mtu = 1400;
	}
	return m;
}

static void
test_diff(void **state)
{
	const uint64_t ia[] = { 1, 2, 3 }, ib[] = { 2, 3, 4 }, bad[] = { 3, 2 };
	struct msg_intent a = intent_with(ia, 3), b = intent_with(ib, 3);
	struct msg_intent u = intent_with(bad, 2);
	struct intent_change *c;
	size_t n;
	bool site;

	(void)state;
	b.tunnels[0].mtu = 1380;        /* tunnel 2 changed */
	assert_int_equal(intent_diff(&a, &b, &c, &n, &site), 0);
	assert_false(site);
	assert_int_equal(n, 3);
	assert_int_equal(c[0].tunnel_id, 1);
	assert_int_equal(c[0].op, INTENT_OP_REMOVE);
	assert_int_equal(c[1].tunnel_id, 2);
	assert_int_equal(c[1].op, INTENT_OP_CHANGE);
	assert_int_equal(c[2].tunnel_id, 4);
	assert_int_equal(c[2].op, INTENT_OP_ADD);
	free(c);
	/* Same content: nothing; a site field: only the site. */
	assert_int_equal(intent_diff(&a, &a, &c, &n, &site), 0);
	assert_int_equal(n, 0);
	assert_null(c);
	snprintf(b.site.name, sizeof(b.site.name), "renamed");
	assert_int_equal(intent_diff(&b, &b, &c, &n, &site), 0);
	assert_false(site);
	assert_int_equal(intent_diff(&a, &b, &c, &n, &site), 0);
	assert_true(site);
	free(c);
	/* Unsorted input is refused, not misread. */
	assert_int_equal(intent_diff(&a, &u, &c, &n, &site), -1);
	msg_intent_free(&a);
	msg_intent_free(&b);
	msg_intent_free(&u);
}

/* Every site has a certificate of its own (a distinct byte at the end). */
static struct msg_blob mesh_certs[5];

static const struct msg_blob *
lk_cert_all(void *arg, uint64_t site)
{
	(void)arg;
	return site < 5 ? &mesh_certs[site] : NULL;
}

static void
encode_snapshot(const struct msg_intent *m, uint8_t **buf, size_t *len)
{
	struct msg_controller_message cm;

	memset(&cm, 0, sizeof(cm));
	cm.kind = MSG_CONTROLLER_SNAPSHOT;
	cm.u.snapshot = *m;     /* borrowed: not freed here */
	assert_int_equal(pbconv_encode_controller_message(&cm, buf, len), 0);
}

/*
 * Peer certificates are held once: every tunnel to a peer, in every
 * edge's intent (and in copies of it), points at that peer's one blob,
 * and the encoding is byte-identical to an intent holding private copies
 * (what the controller built before blobs were shared).
 */
static void
test_shared_certs(void **state)
{
	struct model_site sites[4] = {
		site(1, "a", MODEL_ROLE_HUB, "192.0.2.1", "", 0),
		site(2, "b", MODEL_ROLE_SPOKE, "192.0.2.2", "", 0),
		site(3, "c", MODEL_ROLE_SPOKE, "192.0.2.3", "", 0),
		site(4, "d", MODEL_ROLE_SPOKE, "192.0.2.4", "", 0),
	};
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err;
	struct topo_input in;
	struct topo_output *t = NULL;
	const struct intent_lookup lk = { NULL, lk_prefixes, lk_cert_all,
	    lk_spis, lk_keys };
	const uint8_t ca[] = { 1, 2, 3 };
	struct intent_params p;
	struct msg_intent it[5], copy, deep;
	uint8_t der[600], *e1, *e2;
	size_t l1, l2;
	char why[256];

	(void)state;
	memset(der, 0x42, sizeof(der));
	der[0] = 0x30;
	for (uint64_t i = 1; i < 5; i++) {
		der[sizeof(der) - 1] = (uint8_t)i;
		assert_int_equal(msg_blob_set(&mesh_certs[i], der,
		    sizeof(der)), 0);
	}
	model_policy_default(&pol);
	pol.topology = MODEL_TOPO_FULL_MESH;
	model_crypto_default(&cr);
	in = (struct topo_input){ &pol, &cr, sites, 4 };
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	p = (struct intent_params){ .topo = t, .lookup = &lk, .ca_der = ca,
	    .ca_der_len = sizeof(ca), .keepalive_s = 15, .headless_grace_s = 1800 };
	for (uint64_t i = 1; i < 5; i++) {
		assert_int_equal(intent_build(&p, i, 1, &it[i], why,
		    sizeof(why)), 0);
		assert_int_equal(it[i].n_tunnels, 3);
		for (size_t k = 0; k < 3; k++) {
			const struct msg_peer *pe = &it[i].tunnels[k].peer;

			assert_ptr_equal(pe->certificate_der.data,
			    mesh_certs[pe->site_id].data);
			assert_int_equal(pe->certificate_der.len, sizeof(der));
		}
	}
	/* Copies share too; dropping the originals leaves them intact. */
	assert_int_equal(msg_intent_copy(&copy, &it[2]), 0);
	assert_ptr_equal(copy.tunnels[0].peer.certificate_der.data,
	    it[2].tunnels[0].peer.certificate_der.data);
	assert_ptr_equal(copy.ca_chain_der.data, it[2].ca_chain_der.data);
	/* The same intent with private copies of every blob. */
	assert_int_equal(msg_intent_copy(&deep, &it[2]), 0);
	for (size_t k = 0; k < deep.n_tunnels; k++) {
		struct msg_blob *b = &deep.tunnels[k].peer.certificate_der;
		struct msg_blob priv = { NULL, 0 };

		assert_int_equal(msg_blob_set(&priv, b->data, b->len), 0);
		msg_blob_free(b);
		*b = priv;
		assert_ptr_not_equal(b->data, it[2].tunnels[k].
		    peer.certificate_der.data);
	}
	encode_snapshot(&it[2], &e1, &l1);
	encode_snapshot(&deep, &e2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(e1, e2, l1);
	free(e1);
	free(e2);
	for (uint64_t i = 1; i < 5; i++) {
		msg_intent_free(&it[i]);
		msg_blob_free(&mesh_certs[i]);
	}
	/* The last references: still readable (ASan would see a use after
	 * free), then released by these frees (or it would see a leak). */
	assert_int_equal(copy.tunnels[2].peer.certificate_der.data[0], 0x30);
	encode_snapshot(&copy, &e1, &l1);
	assert_int_equal(l1, l2);
	free(e1);
	msg_intent_free(&copy);
	msg_intent_free(&deep);
	topo_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_allowed_memo_follows),
		cmocka_unit_test(test_shared_certs),
	};

	int rc;

	log_init("test_ctld_intent", true);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	msg_blob_free(&fake_blob);
	return rc;
}
