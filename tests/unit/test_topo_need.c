/*
 * test_topo_need.c — the incremental tunnel count (topo_need) gives the
 * same answers as the full compile: over random policies and random
 * sequences of site adds, changes, revocations and removals, the count
 * equals topo_compile's tunnel count, and with a pool (or VNI range) sized
 * around that count the check accepts and refuses exactly where the
 * compile does, with the same error.  Also the API's endpoint index
 * (api_index.h): its answers agree with a scan of every site.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controller/api_index.h"
#include "controller/topo.h"
#include "controller/topo_need.h"

static uint64_t rng_state;

static uint32_t
rng(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static const char *const colours[] = { "inet", "mpls", "lte", "sat" };
static const char *const regions[] = { "eu", "us", "ap" };

static struct model_site
random_site(uint64_t id)
{
	struct model_site s;
	uint32_t mask;

	memset(&s, 0, sizeof(s));
	s.id = id;
	snprintf(s.name, sizeof(s.name), "site-%llu", (unsigned long long)id);
	snprintf(s.region, sizeof(s.region), "%s", regions[rng(3)]);
	s.role = rng(4) == 0 ? MODEL_ROLE_HUB :
	    (rng(2) ? MODEL_ROLE_SPOKE : MODEL_ROLE_EDGE);
	s.asn = 64512 + (uint32_t)id;
	s.revoked = rng(10) == 0;
	mask = rng(16);         /* may be no link at all */
	for (int c = 3; c >= 0; c--) {  /* unsorted: must not matter */
		struct model_link *l;

		if (!(mask & (1u << c)))
			continue;
		l = &s.links[s.n_links++];
		snprintf(l->name, sizeof(l->name), "%s", colours[c]);
		/* Some "sat" links are IPv6: they pair only with IPv6. */
		if (c == 3 && id % 3 == 0)
			snprintf(l->address, sizeof(l->address),
			    "2001:db8:3::%x", (unsigned)id & 0xffff);
		else
			snprintf(l->address, sizeof(l->address),
			    "10.%u.%u.%u", c, (unsigned)(id >> 8) & 0xff,
			    (unsigned)id & 0xff);
	}
	return s;
}

static void
random_policy(struct model_policy *p)
{
	model_policy_default(p);
	p->topology = (enum model_topology)(1 + rng(3));
	p->pairing = (enum model_pairing)(1 + rng(3));
	if (p->pairing == MODEL_PAIR_LIST) {
		p->n_pairs = 2;
		snprintf(p->pairs[0].a, sizeof(p->pairs[0].a), "inet");
		snprintf(p->pairs[0].b, sizeof(p->pairs[0].b), "lte");
		snprintf(p->pairs[1].a, sizeof(p->pairs[1].a), "mpls");
		snprintf(p->pairs[1].b, sizeof(p->pairs[1].b), "mpls");
	}
	if (rng(2)) {
		p->encap = MODEL_ENCAP_VXLAN;
		p->vni_min = 100;
		p->vni_max = 100000;
	}
	/* 100.64.0.0/12: 2^19 /31s, far more than the tests need. */
	assert_int_equal(model_prefix_parse("100.64.0.0/12", false, &p->pool,
	    "pool", &(struct model_error){ 0 }), 0);
}

/* Tunnel count of a full compile, or -1 with *err when it fails. */
static int64_t
compile_count(const struct model_policy *p, const struct model_site *s,
    size_t n, struct model_error *err)
{
	struct model_crypto crypto;
	struct topo_output *out = NULL;
	struct topo_input in = { p, &crypto, s, n };
	struct topo_prev prev = { 0 };
	int64_t c;

	model_crypto_default(&crypto);
	if (topo_compile(&in, &prev, &out, NULL, err) == -1)
		return -1;
	c = (int64_t)topo_tunnel_count(out);
	topo_free(out);
	return c;
}

/* The smallest pool prefix holding `slots` /31s, and one too small. */
static void
pool_for(struct model_policy *p, uint64_t slots, bool fits)
{
	unsigned len = 31;

	while (len > 8 && (1ull << (31 - len)) < slots)
		len--;
	if (!fits && (1ull << (31 - len)) >= slots && len < 31 && slots > 0)
		len++;  /* one bit less: half the room */
	p->pool.len = (uint8_t)len;
	memset(p->pool.addr, 0, sizeof(p->pool.addr));
	p->pool.addr[0] = 100;
	p->pool.addr[1] = 64;
}

/* Same answer as the compile, error included. */
static void
assert_same_check(const struct model_policy *p,
    const struct model_site *s, size_t n)
{
	struct topo_need *need = topo_need_new(p);
	struct model_error e1, e2;
	int64_t c;
	int rc;

	assert_non_null(need);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(topo_need_set(need, s[i].id, &s[i]), 0);
	memset(&e1, 0, sizeof(e1));
	memset(&e2, 0, sizeof(e2));
	c = compile_count(p, s, n, &e1);
	rc = topo_need_check(need, &e2);
	assert_int_equal(rc, c < 0 ? -1 : 0);
	if (c < 0) {
		assert_int_equal(e1.code, MODEL_E_EXHAUSTED);
		assert_int_equal(e2.code, e1.code);
		assert_string_equal(e2.field, e1.field);
		assert_string_equal(e2.message, e1.message);
	} else
		assert_int_equal(topo_need_tunnels(need), (uint64_t)c);
	topo_need_free(need);
}

static void
test_random_sequences(void **state)
{
	(void)state;
	rng_state = 0x9e3779b97f4a7c15ull;
	for (int round = 0; round < 60; round++) {
		struct model_policy p;
		struct model_site sites[40];
		struct model_error err;
		struct topo_need *need;
		size_t n = 0;
		uint64_t next_id = 1;

		random_policy(&p);
		need = topo_need_new(&p);
		assert_non_null(need);
		for (int step = 0; step < 80; step++) {
			uint32_t op = rng(10);
			int64_t c;

			if (n == 0 || (op < 5 && n < 40)) {
				sites[n] = random_site(next_id++);
				assert_int_equal(topo_need_set(need,
				    sites[n].id, &sites[n]), 0);
				n++;
			} else if (op < 8) {
				/* Change one: new role, region, links. */
				size_t i = rng((uint32_t)n);
				uint64_t id = sites[i].id;

				sites[i] = random_site(id);
				assert_int_equal(topo_need_set(need, id,
				    &sites[i]), 0);
			} else {
				size_t i = rng((uint32_t)n);

				assert_int_equal(topo_need_set(need,
				    sites[i].id, NULL), 0);
				sites[i] = sites[--n];
			}
			c = compile_count(&p, sites, n, &err);
			assert_true(c >= 0);
			assert_int_equal(topo_need_tunnels(need), (uint64_t)c);
			assert_int_equal(topo_need_check(need, &err), 0);
		}
		topo_need_free(need);
	}
}

/* At the boundary: a pool (or VNI range) of exactly the need fits, one
 * less does not, and the refusal reads as the compiler's. */
static void
test_boundary(void **state)
{
	(void)state;
	rng_state = 0x1234567887654321ull;
	for (int round = 0; round < 40; round++) {
		struct model_policy p;
		struct model_site sites[24];
		struct model_error err;
		size_t n = 4 + rng(20);
		int64_t need;

		random_policy(&p);
		for (size_t i = 0; i < n; i++)
			sites[i] = random_site(i + 1);
		need = compile_count(&p, sites, n, &err);
		assert_true(need >= 0);
		if (need < 2)
			continue;
		pool_for(&p, (uint64_t)need, true);
		assert_same_check(&p, sites, n);
		pool_for(&p, (uint64_t)need, false);
		assert_same_check(&p, sites, n);
		/* VNIs: exactly enough, then one short (roomy pool). */
		pool_for(&p, 1u << 20, true);
		p.encap = MODEL_ENCAP_VXLAN;
		p.vni_min = 5000;
		p.vni_max = 5000 + (uint32_t)need - 1;
		assert_same_check(&p, sites, n);
		p.vni_max--;
		assert_same_check(&p, sites, n);
	}
}

/* Removing what was never counted, or counting a site twice, is harmless. */
static void
test_idempotent(void **state)
{
	struct model_policy p;
	struct model_site a, b;
	struct topo_need *need;

	(void)state;
	rng_state = 42;
	model_policy_default(&p);
	p.topology = MODEL_TOPO_FULL_MESH;
	p.pairing = MODEL_PAIR_ANY;
	need = topo_need_new(&p);
	assert_non_null(need);
	a = random_site(1);
	b = random_site(2);
	a.revoked = b.revoked = false;
	a.n_links = 2;  /* inet, mpls: any pairing gives 4 per pair */
	snprintf(a.links[0].name, sizeof(a.links[0].name), "inet");
	snprintf(a.links[1].name, sizeof(a.links[1].name), "mpls");
	/* IPv4 like b's (links pair only within one family) */
	snprintf(a.links[0].address, sizeof(a.links[0].address), "10.0.0.1");
	snprintf(a.links[1].address, sizeof(a.links[1].address), "10.1.0.1");
	assert_int_equal(topo_need_set(need, 7, NULL), 0);
	assert_int_equal(topo_need_set(need, 1, &a), 0);
	assert_int_equal(topo_need_set(need, 1, &a), 0);
	assert_int_equal(topo_need_set(need, 2, &b), 0);
	assert_int_equal(topo_need_tunnels(need), a.n_links * b.n_links);
	b.revoked = true;
	assert_int_equal(topo_need_set(need, 2, &b), 0);
	assert_int_equal(topo_need_tunnels(need), 0);
	/* Many sites: the table grows and shrinks without losing any. */
	for (uint64_t id = 10; id < 5000; id++)
		assert_int_equal(topo_need_set(need, id, &a), 0);
	for (uint64_t id = 10; id < 5000; id += 2)
		assert_int_equal(topo_need_set(need, id, NULL), 0);
	assert_int_equal(topo_need_tunnels(need),
	    (uint64_t)a.n_links * a.n_links * 2496 * 2495 / 2);
	topo_need_free(need);
}

static bool
brute_user(const struct model_site *s, const bool *live, size_t n,
    const char *addr, uint16_t port, uint64_t not_site, uint64_t who)
{
	for (size_t i = 0; i < n; i++) {
		if (!live[i] || s[i].revoked || s[i].id == not_site ||
		    (who != 0 && s[i].id != who))
			continue;
		for (size_t l = 0; l < s[i].n_links; l++) {
			const struct model_link *ln = &s[i].links[l];
			const char *a = ln->public_address[0] != '\0' ?
			    ln->public_address : ln->address;
			uint16_t p = ln->public_port != 0 ? ln->public_port :
			    MODEL_PORT_DEFAULT;

			if (p == port && model_address_equal(a, addr))
				return true;
		}
	}
	return false;
}

/* Endpoints from a small set so that sites share them often; IPv6 in
 * two spellings of the same address. */
static void
random_endpoint(struct model_link *l)
{
	static const char *const addrs[] = { "192.0.2.1", "192.0.2.2",
	    "2001:db8::1", "2001:db8:0:0::1", "198.51.100.9" };

	memset(l->public_address, 0, sizeof(l->public_address));
	l->public_port = 0;
	snprintf(l->address, sizeof(l->address), "%s", addrs[rng(5)]);
	if (rng(3) == 0) {
		snprintf(l->public_address, sizeof(l->public_address), "%s",
		    addrs[rng(5)]);
		l->public_port = rng(2) ? 4500 : 4501;
	}
}

static void
test_endpoint_index(void **state)
{
	struct model_policy p;
	struct model_site sites[30];
	bool live[30];
	struct api_index *x;

	(void)state;
	rng_state = 0x5555aaaa12345678ull;
	model_policy_default(&p);
	x = api_index_new(&p);
	assert_non_null(x);
	memset(live, 0, sizeof(live));
	for (int step = 0; step < 3000; step++) {
		size_t i = rng(30);
		struct model_link q;
		uint64_t who = 0, not_site = 1 + rng(31);
		const char *qa;
		uint16_t qp;
		int r;

		if (rng(4) == 0) {
			live[i] = false;
			assert_int_equal(api_index_set(x, i + 1, NULL), 0);
		} else {
			sites[i] = random_site(i + 1);
			for (size_t l = 0; l < sites[i].n_links; l++)
				random_endpoint(&sites[i].links[l]);
			live[i] = true;
			assert_int_equal(api_index_set(x, i + 1, &sites[i]), 0);
		}
		memset(&q, 0, sizeof(q));
		random_endpoint(&q);
		qa = q.public_address[0] != '\0' ? q.public_address : q.address;
		qp = q.public_port != 0 ? q.public_port : MODEL_PORT_DEFAULT;
		r = api_index_endpoint(x, qa, qp, not_site, &who);
		if (r == 0)
			assert_false(brute_user(sites, live, 30, qa, qp,
			    not_site, 0));
		else if (r == 1)
			assert_true(who != not_site && brute_user(sites, live,
			    30, qa, qp, not_site, who));
		else
			assert_true(brute_user(sites, live, 30, qa, qp,
			    not_site, 0));
	}
	api_index_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_sequences),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_endpoint_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
