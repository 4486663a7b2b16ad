/*
 * test_topo.c — the intent compiler: golden dumps per topology policy,
 * determinism, and property checks over random topologies (symmetry,
 * unique inner addresses inside the pool, policy rules, colour pairs, and
 * that a one-site change leaves every other tunnel untouched and equals a
 * full recompile).
 *
 * Golden files live in tests/unit/golden/topo_*.txt.  After an intended
 * change of the output, regenerate them with
 *     UPDATE_GOLDEN=1 TEST_FILTER=test_topo make test
 * and review the diff before committing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controller/topo.h"

/* Fixed-seed generator so every run checks the same cases. */
static uint64_t rng_state;

static uint32_t
rng(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

/* links: "inet=192.0.2.1,mpls=10.0.0.1@198.51.100.1:4501" */
static struct model_site
mksite(uint64_t id, const char *name, const char *region, enum model_role role,
    uint32_t asn, const char *links)
{
	struct model_site s;
	char buf[512], *save = NULL;

	memset(&s, 0, sizeof(s));
	s.id = id;
	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.region, sizeof(s.region), "%s", region);
	s.role = role;
	s.asn = asn;
	snprintf(buf, sizeof(buf), "%s", links);
	for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		struct model_link *l = &s.links[s.n_links++];
		char *eq = strchr(tok, '='), *at, *colon;

		*eq = '\0';
		snprintf(l->name, sizeof(l->name), "%s", tok);
		at = strchr(eq + 1, '@');
		if (at != NULL) {
			*at = '\0';
			colon = strchr(at + 1, ':');
			if (colon != NULL) {
				*colon = '\0';
				l->public_port = (uint16_t)atoi(colon + 1);
			}
			snprintf(l->public_address, sizeof(l->public_address),
			    "%s", at + 1);
		}
		snprintf(l->address, sizeof(l->address), "%s", eq + 1);
	}
	return s;
}

static char *
dump_str(const struct topo_output *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(topo_dump(t, f), 0);
	fclose(f);
	return buf;
}

/* The dump lines of one edge only. */
static char *
edge_str(const struct topo_output *t, uint64_t site_id)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	size_t n = topo_edge_tunnel_count(t, site_id);
	const struct model_site *s = topo_site(t, site_id);

	assert_non_null(f);
	if (s != NULL)
		fprintf(f, "%s %u %d %s\n", s->name, s->asn, s->role,
		    s->region);
	for (size_t i = 0; i < n; i++) {
		struct topo_view v;

		assert_int_equal(topo_edge_view(t, site_id, i, &v), 0);
		fprintf(f, "%llu %s %s %s %s %s %u %s %s %u %u %d\n",
		    (unsigned long long)v.tunnel_id, v.peer_name, v.local_link,
		    v.remote_link, v.local_address, v.remote_address,
		    v.remote_port, v.inner_local_cidr, v.inner_remote_addr,
		    v.remote_asn, v.vni, v.route_server_client);
	}
	fclose(f);
	return buf;
}

static void
golden_check(const char *name, const char *got)
{
	const char *top = getenv("MESHWAN_TOP");
	char path[512];
	FILE *f;
	char *want;
	long len;

	snprintf(path, sizeof(path), "%s/tests/unit/golden/%s.txt",
	    top != NULL ? top : ".", name);
	if (getenv("UPDATE_GOLDEN") != NULL) {
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
		return;
	}
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("missing golden file %s (UPDATE_GOLDEN=1 makes it)",
		    path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	want = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(want, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	if (strcmp(want, got) != 0) {
		fprintf(stderr, "--- want %s\n%s--- got\n%s", path, want, got);
		fail_msg("output differs from %s", path);
	}
	free(want);
}

static struct topo_output *
compile_ok(const struct model_policy *p, const struct model_crypto *c,
    const struct model_site *s, size_t n, const struct topo_prev *prev)
{
	struct topo_input in = { p, c, s, n };
	struct topo_output *t = NULL;
	struct model_error err;

	if (topo_compile(&in, prev, &t, NULL, &err) != 0)
		fail_msg("compile: %s: %s", err.field, err.message);
	return t;
}

static void
run_golden(const char *name, const struct model_policy *p,
    struct model_site *s, size_t n)
{
	struct model_crypto c;
	struct topo_output *t, *t2;
	char *d1, *d2;

	model_crypto_default(&c);
	t = compile_ok(p, &c, s, n, NULL);
	d1 = dump_str(t);
	golden_check(name, d1);
	/* Reversed input order gives the same bytes. */
	for (size_t i = 0; i < n / 2; i++) {
		struct model_site tmp = s[i];

		s[i] = s[n - 1 - i];
		s[n - 1 - i] = tmp;
	}
	t2 = compile_ok(p, &c, s, n, NULL);
	d2 = dump_str(t2);
	assert_string_equal(d1, d2);
	free(d1);
	free(d2);
	topo_free(t);
	topo_free(t2);
}

static void
test_golden_full_mesh(void **state)
{
	struct model_policy p;
	struct model_site s[] = {
		mksite(1, "paris", "eu", MODEL_ROLE_EDGE, 64512,
		    "inet=192.0.2.1,mpls=10.1.0.1"),
		mksite(2, "berlin", "eu", MODEL_ROLE_EDGE, 64513,
		    "inet=10.2.0.1@198.51.100.2:4501"),
		mksite(3, "madrid", "eu", MODEL_ROLE_EDGE, 64514,
		    "mpls=10.3.0.1,inet=192.0.2.3"),
		mksite(4, "oslo", "eu", MODEL_ROLE_EDGE, 64515,
		    "lte=100.100.0.4"),
	};

	model_policy_default(&p);
	run_golden("topo_full_mesh", &p, s, 4);
}

static void
test_golden_hub_spoke(void **state)
{
	struct model_policy p;
	struct model_site s[] = {
		mksite(10, "hub-east", "us", MODEL_ROLE_HUB, 65001,
		    "inet=203.0.113.10"),
		mksite(11, "hub-west", "us", MODEL_ROLE_HUB, 65002,
		    "inet=203.0.113.11"),
		mksite(20, "shop-1", "us", MODEL_ROLE_SPOKE, 65101,
		    "inet=10.20.0.1@198.51.100.20"),
		mksite(21, "shop-2", "us", MODEL_ROLE_SPOKE, 65102,
		    "inet=192.0.2.21"),
		mksite(22, "shop-3", "us", MODEL_ROLE_EDGE, 65103,
		    "inet=192.0.2.22"),
	};

	model_policy_default(&p);
	p.topology = MODEL_TOPO_HUB_SPOKE;
	p.encap = MODEL_ENCAP_VXLAN;
	p.vni_min = 5000;
	p.vni_max = 5999;
	run_golden("topo_hub_spoke", &p, s, 5);
}

static void
test_golden_regional(void **state)
{
	struct model_policy p;
	struct model_site s[] = {
		mksite(1, "eu-hub", "eu", MODEL_ROLE_HUB, 64600,
		    "inet=203.0.113.1,mpls=10.0.1.1"),
		mksite(2, "eu-a", "eu", MODEL_ROLE_SPOKE, 64601,
		    "inet=192.0.2.2"),
		mksite(3, "eu-b", "eu", MODEL_ROLE_SPOKE, 64602,
		    "lte=100.100.0.3"),
		mksite(4, "us-hub", "us", MODEL_ROLE_HUB, 64700,
		    "mpls=10.0.4.1"),
		mksite(5, "us-a", "us", MODEL_ROLE_SPOKE, 64701,
		    "inet=192.0.2.5"),
	};

	model_policy_default(&p);
	p.topology = MODEL_TOPO_REGIONAL;
	p.pairing = MODEL_PAIR_LIST;
	p.n_pairs = 3;
	snprintf(p.pairs[0].a, sizeof(p.pairs[0].a), "inet");
	snprintf(p.pairs[0].b, sizeof(p.pairs[0].b), "inet");
	snprintf(p.pairs[1].a, sizeof(p.pairs[1].a), "mpls");
	snprintf(p.pairs[1].b, sizeof(p.pairs[1].b), "mpls");
	snprintf(p.pairs[2].a, sizeof(p.pairs[2].a), "lte");
	snprintf(p.pairs[2].b, sizeof(p.pairs[2].b), "inet");
	model_prefix_parse("100.127.0.0/24", false, &p.pool, "pool", NULL);
	run_golden("topo_regional", &p, s, 5);
}

/* ---- random topologies ------------------------------------------------- */

static const char *const colours[] = { "inet", "mpls", "lte" };
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
	mask = 1 + rng(7);
	for (int c = 0; c < 3; c++) {
		struct model_link *l;
		bool v6;

		if (!(mask & (1u << c)))
			continue;
		l = &s.links[s.n_links++];
		snprintf(l->name, sizeof(l->name), "%s", colours[c]);
		/* Some "lte" links are IPv6: they pair only with IPv6
		 * (chosen by id, so the rng sequence stays the same). */
		v6 = c == 2 && id % 4 == 0;
		if (v6)
			snprintf(l->address, sizeof(l->address),
			    "2001:db8:2::%x", (unsigned)id & 0xffff);
		else
			snprintf(l->address, sizeof(l->address),
			    "10.%u.%u.%u", c, (unsigned)(id >> 8) & 0xff,
			    (unsigned)id & 0xff);
		if (rng(4) == 0) {
			if (v6)
				snprintf(l->public_address,
				    sizeof(l->public_address),
				    "2001:db8:102::%x", (unsigned)id & 0xffff);
			else
				snprintf(l->public_address,
				    sizeof(l->public_address), "198.51.%u.%u",
				    c, (unsigned)id & 0xff);
			l->public_port = (uint16_t)(4500 + rng(100));
		}
	}
	/* Shuffle link order: the compiler must not depend on it. */
	if (s.n_links == 3 && rng(2)) {
		struct model_link tmp = s.links[0];

		s.links[0] = s.links[2];
		s.links[2] = tmp;
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
}

static const struct model_site *
find_site(const struct model_site *s, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].id == id && !s[i].revoked)
			return &s[i];
	return NULL;
}

static bool
pair_ok(const struct model_policy *p, const struct model_site *a,
    const struct model_site *b)
{
	bool ha = a->role == MODEL_ROLE_HUB, hb = b->role == MODEL_ROLE_HUB;

	switch (p->topology) {
	case MODEL_TOPO_HUB_SPOKE:
		return ha || hb;
	case MODEL_TOPO_REGIONAL:
		return strcmp(a->region, b->region) == 0 || (ha && hb);
	default:
		return true;
	}
}

/* Everything that must hold for any compiled output. */
static void
check_invariants(const struct topo_output *t, const struct model_policy *p,
    const struct model_site *s, size_t n)
{
	struct model_tunnel *tl;
	size_t nt, expect = 0;
	uint64_t pool_lo, pool_hi;
	uint8_t *seen, *vseen;

	assert_int_equal(topo_tunnel_list(t, &tl, &nt), 0);
	assert_int_equal(nt, topo_tunnel_count(t));
	/* Completeness: exactly the pairs the policy allows. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			if (s[i].revoked || s[j].revoked || s[i].id >= s[j].id ||
			    !pair_ok(p, &s[i], &s[j]))
				continue;
			for (size_t a = 0; a < s[i].n_links; a++)
				for (size_t b = 0; b < s[j].n_links; b++)
					if (model_policy_pair_allowed(p,
					    s[i].links[a].name,
					    s[j].links[b].name) &&
					    model_link_family(&s[i].links[a]) ==
					    model_link_family(&s[j].links[b]))
						expect++;
		}
	assert_int_equal(nt, expect);
	pool_lo = (uint64_t)p->pool.addr[0] << 24 | p->pool.addr[1] << 16 |
	    p->pool.addr[2] << 8 | p->pool.addr[3];
	pool_hi = pool_lo + (1ull << (32 - p->pool.len));
	seen = calloc(1, (size_t)(pool_hi - pool_lo) / 2);
	vseen = calloc(1, MODEL_VNI_MAX + 1);
	for (size_t i = 0; i < nt; i++) {
		const struct model_site *a = find_site(s, n, tl[i].site_a);
		const struct model_site *b = find_site(s, n, tl[i].site_b);

		assert_non_null(a);
		assert_non_null(b);
		assert_true(a->id < b->id);
		assert_true(pair_ok(p, a, b));
		/* hub-and-spoke never joins two spokes */
		if (p->topology == MODEL_TOPO_HUB_SPOKE)
			assert_true(a->role == MODEL_ROLE_HUB ||
			    b->role == MODEL_ROLE_HUB);
		if (p->topology == MODEL_TOPO_REGIONAL &&
		    strcmp(a->region, b->region) != 0)
			assert_true(a->role == MODEL_ROLE_HUB &&
			    b->role == MODEL_ROLE_HUB);
		assert_true(model_policy_pair_allowed(p, tl[i].link_a,
		    tl[i].link_b));
		/* one outer family per tunnel */
		assert_int_equal(model_link_family(&a->links[
		    model_site_find_link(a, tl[i].link_a)]),
		    model_link_family(&b->links[
		    model_site_find_link(b, tl[i].link_b)]));
		assert_true(tl[i].inner >= pool_lo && tl[i].inner + 1 < pool_hi);
		assert_int_equal(tl[i].inner & 1, 0);
		assert_int_equal(seen[(tl[i].inner - pool_lo) / 2], 0);
		seen[(tl[i].inner - pool_lo) / 2] = 1;
		if (p->encap == MODEL_ENCAP_VXLAN) {
			assert_true(tl[i].vni >= p->vni_min &&
			    tl[i].vni <= p->vni_max);
			assert_int_equal(vseen[tl[i].vni], 0);
			vseen[tl[i].vni] = 1;
		} else {
			assert_int_equal(tl[i].vni, 0);
		}
		if (i > 0)
			assert_true(tl[i - 1].id < tl[i].id);
	}
	free(seen);
	free(vseen);
	/* Symmetry: A's view of T mirrors B's view of T. */
	for (size_t e = 0; e < topo_edge_count(t); e++) {
		const struct model_site *me = topo_edge_site(t, e);

		for (size_t i = 0; i < topo_edge_tunnel_count(t, me->id); i++) {
			struct topo_view v, w;
			const struct model_tunnel *mt;
			const struct model_site *peer;
			bool found = false;

			assert_int_equal(topo_edge_view(t, me->id, i, &v), 0);
			mt = topo_tunnel_get(t, v.tunnel_id);
			assert_non_null(mt);
			peer = find_site(s, n, v.peer_site_id);
			assert_non_null(peer);
			assert_int_equal(v.remote_asn, peer->asn);
			{
				/* Views are ordered by tunnel id: bisect. */
				size_t lo = 0, hi = topo_edge_tunnel_count(t,
				    peer->id);

				while (lo < hi) {
					size_t mid = lo + (hi - lo) / 2;

					assert_int_equal(topo_edge_view(t,
					    peer->id, mid, &w), 0);
					if (w.tunnel_id < v.tunnel_id)
						lo = mid + 1;
					else
						hi = mid;
				}
				assert_int_equal(topo_edge_view(t, peer->id, lo,
				    &w), 0);
				found = w.tunnel_id == v.tunnel_id;
				assert_true(found);
				assert_int_equal(w.peer_site_id, me->id);
				assert_string_equal(w.local_link, v.remote_link);
				assert_string_equal(w.remote_link, v.local_link);
				assert_int_equal(w.inner_local, v.inner_remote);
				assert_int_equal(w.inner_remote, v.inner_local);
				assert_int_equal(w.vni, v.vni);
				assert_int_equal(w.remote_asn, me->asn);
				{
					int li = model_site_find_link(peer,
					    v.remote_link);
					const struct model_link *pl;

					assert_true(li >= 0);
					pl = &peer->links[li];
					assert_string_equal(v.remote_address,
					    pl->public_address[0] != '\0' ?
					    pl->public_address : pl->address);
					assert_int_equal(v.remote_port,
					    pl->public_port);
					assert_string_equal(w.local_address,
					    pl->address);
				}
				assert_false(v.route_server_client &&
				    w.route_server_client);
			}
			assert_true(found);
		}
	}
	free(tl);
}

enum change_kind { CH_ADD, CH_MODIFY, CH_REMOVE, CH_REVOKE };

static void
one_case(int ncase)
{
	struct model_policy p;
	struct model_crypto c;
	size_t n = 5 + rng(56), n2;
	struct model_site *s = calloc(n + 1, sizeof(*s));
	struct model_site *s2 = calloc(n + 1, sizeof(*s2));
	struct topo_output *t, *full;
	struct topo_change chg;
	struct model_error err;
	struct model_tunnel *before, *tl;
	size_t nbefore, ntl;
	char **edges_before;
	uint64_t xid, max_id = 0;
	enum change_kind kind = (enum change_kind)rng(4);
	struct topo_input in2;
	struct topo_prev prev;
	char *d1, *d2;

	random_policy(&p);
	model_crypto_default(&c);
	for (size_t i = 0; i < n; i++) {
		s[i] = random_site(1 + i * 3 + rng(3));
		if (s[i].id > max_id)
			max_id = s[i].id;
	}
	t = compile_ok(&p, &c, s, n, NULL);
	check_invariants(t, &p, s, n);
	assert_int_equal(topo_tunnel_list(t, &before, &nbefore), 0);
	edges_before = calloc(n + 1, sizeof(*edges_before));
	for (size_t i = 0; i < n; i++)
		edges_before[i] = edge_str(t, s[i].id);

	/* One change to one site. */
	memcpy(s2, s, n * sizeof(*s));
	n2 = n;
	if (kind == CH_ADD) {
		s2[n2] = random_site(max_id + 1);
		xid = s2[n2++].id;
	} else {
		size_t k = rng((uint32_t)n);

		xid = s2[k].id;
		if (kind == CH_REMOVE)
			s2[k] = s2[--n2];
		else if (kind == CH_REVOKE)
			s2[k].revoked = true;
		else {
			s2[k] = random_site(xid);
			snprintf(s2[k].name, sizeof(s2[k].name), "renamed-%d",
			    ncase);
		}
	}
	in2.policy = &p;
	in2.crypto = &c;
	in2.sites = s2;
	in2.n_sites = n2;
	if (topo_site_changed(t, &in2, xid, &chg, &err) != 0)
		fail_msg("site change: %s", err.message);
	check_invariants(t, &p, s2, n2);

	/* Every tunnel not involving x is untouched. */
	for (size_t i = 0; i < nbefore; i++) {
		const struct model_tunnel *mt = topo_tunnel_get(t, before[i].id);
		bool involves = before[i].site_a == xid || before[i].site_b == xid;

		if (!involves) {
			assert_non_null(mt);
			assert_memory_equal(mt, &before[i], sizeof(*mt));
		} else if (mt != NULL) {
			assert_int_equal(mt->inner, before[i].inner);
			assert_int_equal(mt->vni, before[i].vni);
		}
	}
	/* Edges not listed as affected see exactly what they saw before. */
	for (size_t i = 0; i < n; i++) {
		bool listed = false;
		char *now;

		if (s[i].id == xid)
			continue;
		for (size_t j = 0; j < chg.n_edges; j++)
			listed |= chg.edges[j] == s[i].id;
		now = edge_str(t, s[i].id);
		if (!listed)
			assert_string_equal(now, edges_before[i]);
		free(now);
	}
	/* The incremental result equals a full compile from the old tunnels. */
	prev.tunnels = before;
	prev.n_tunnels = nbefore;
	prev.next_id = 0;
	full = compile_ok(&p, &c, s2, n2, &prev);
	d1 = dump_str(t);
	d2 = dump_str(full);
	assert_string_equal(d1, d2);
	/* ... and the change lists agree with the tunnel sets. */
	assert_int_equal(topo_tunnel_list(t, &tl, &ntl), 0);
	assert_int_equal(ntl, nbefore - chg.n_removed + chg.n_added);
	for (size_t i = 0; i < chg.n_added; i++)
		assert_true(chg.added[i].site_a == xid ||
		    chg.added[i].site_b == xid);
	for (size_t i = 0; i < chg.n_removed; i++)
		assert_null(topo_tunnel_get(t, chg.removed[i]));

	free(tl);
	free(d1);
	free(d2);
	topo_free(full);
	topo_change_free(&chg);
	for (size_t i = 0; i < n; i++)
		free(edges_before[i]);
	free(edges_before);
	free(before);
	topo_free(t);
	free(s);
	free(s2);
}

static void
test_random_topologies(void **state)
{
	rng_state = 0x5eed5eed12345ull;
	for (int i = 0; i < 200; i++)
		one_case(i);
}

/* ---- following another compiler's allocations ------------------------- */

/* The stored tunnels of site id in t (what a follower reads), key-sorted. */
static struct model_tunnel *
stored_of(const struct topo_output *t, uint64_t id, size_t *n)
{
	struct model_tunnel *all, *v;
	size_t na, k = 0;

	assert_int_equal(topo_tunnel_list(t, &all, &na), 0);
	v = calloc(na + 1, sizeof(*v));
	for (size_t i = 0; i < na; i++)
		if (all[i].site_a == id || all[i].site_b == id)
			v[k++] = all[i];
	free(all);
	topo_tunnel_key_sort(v, k);
	*n = k;
	return v;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * A batch of site changes: the leader allocates them one after another;
 * a follower that started from the same state applies the same batch in
 * the reverse order with topo_site_follow, taking the leader's stored
 * tunnels.  Before the leader has stored them the follower is told what
 * is missing and keeps its state; afterwards both have the same tunnels
 * (ids, /31s, VNIs) and every edge sees the same views, in id order.
 */
static void
follow_case(int ncase)
{
	struct model_policy p;
	struct model_crypto c;
	size_t n = 4 + rng(16), n2, nb = 1 + rng(3);
	struct model_site *s = calloc(n + 8, sizeof(*s)), *s2;
	struct topo_output *lead, *fol;
	struct topo_change chg;
	struct model_error err;
	struct topo_input in2;
	uint64_t batch[4], max_id = 0;
	struct model_tunnel *tl, *tf;
	size_t ntl, ntf;

	random_policy(&p);
	model_crypto_default(&c);
	for (size_t i = 0; i < n; i++) {
		s[i] = random_site(1 + i * 3 + rng(3));
		if (s[i].id > max_id)
			max_id = s[i].id;
	}
	lead = compile_ok(&p, &c, s, n, NULL);
	fol = compile_ok(&p, &c, s, n, NULL);
	s2 = calloc(n + 8, sizeof(*s2));
	memcpy(s2, s, n * sizeof(*s));
	n2 = n;
	/* nb distinct sites change: added, removed, revoked or replaced. */
	for (size_t b = 0; b < nb; b++) {
		uint32_t kind = rng(4);

		if (kind == 0 || n2 < 3) {
			s2[n2] = random_site(++max_id);
			batch[b] = s2[n2++].id;
			continue;
		}
		for (;;) {
			size_t k = rng((uint32_t)n2);
			bool seen = false;

			for (size_t j = 0; j < b; j++)
				seen |= batch[j] == s2[k].id;
			if (seen)
				continue;
			batch[b] = s2[k].id;
			if (kind == 1)
				s2[k] = s2[--n2];
			else if (kind == 2)
				s2[k].revoked = true;
			else
				s2[k] = random_site(batch[b]);
			break;
		}
	}
	in2 = (struct topo_input){ &p, &c, s2, n2 };
	/* Before the leader stored anything: missing ones are told, and a
	 * follow attempt leaves the follower as it was. */
	for (size_t b = 0; b < nb; b++) {
		size_t ns;
		struct model_tunnel *st = stored_of(lead, batch[b], &ns);

		struct topo_output *tmp = compile_ok(&p, &c, s, n, NULL);
		char *before = dump_str(tmp), *after;

		/* Against what it has compiled, a follower may find nothing
		 * missing (the missing pairs are with sites it has yet to
		 * add); when it does find some, it refuses and changes
		 * nothing. */
		if (topo_site_follow(tmp, &in2, batch[b], st, ns, NULL, 0, &chg,
		    &err) == -1) {
			assert_int_equal(err.code, MODEL_E_NOT_FOUND);
			/* One site: its peers here are the final ones. */
			if (nb == 1)
				assert_true(topo_follow_missing(&in2, batch[b],
				    st, ns) > 0);
			after = dump_str(tmp);
			assert_string_equal(before, after);
			free(after);
		} else {
			if (nb == 1)
				assert_int_equal(topo_follow_missing(&in2,
				    batch[b], st, ns), 0);
			topo_change_free(&chg);
		}
		free(before);
		topo_free(tmp);
		free(st);
	}
	for (size_t b = 0; b < nb; b++) {
		if (topo_site_changed(lead, &in2, batch[b], &chg, &err) != 0)
			fail_msg("case %d: leader: %s", ncase, err.message);
		topo_change_free(&chg);
	}
	/* The follower, backwards; the sites still to come are pending.  A
	 * site whose stored /31 another site of the batch still holds here
	 * goes again after the others (as the session layer does). */
	for (size_t left = nb, round = 0; left > 0; round++) {
		size_t done = 0;

		assert_true(round < nb);
		for (size_t b = left; b-- > 0;) {
			uint64_t pend[4];
			size_t ns, np = 0;
			struct model_tunnel *st = stored_of(lead, batch[b], &ns);
			int rc;

			for (size_t j = 0; j < left; j++)
				if (j != b)
					pend[np++] = batch[j];
			qsort(pend, np, sizeof(*pend), u64_cmp);
			assert_int_equal(topo_follow_missing(&in2, batch[b], st,
			    ns), 0);
			rc = topo_site_follow(fol, &in2, batch[b], st, ns, pend,
			    np, &chg, &err);
			free(st);
			if (rc != 0 && err.code == MODEL_E_CONFLICT)
				continue;
			if (rc != 0)
				fail_msg("case %d: follower: %s", ncase,
				    err.message);
			for (size_t i = 0; i < chg.n_added; i++)
				assert_true(chg.added[i].site_a == batch[b] ||
				    chg.added[i].site_b == batch[b]);
			topo_change_free(&chg);
			batch[b] = batch[--left];
			done++;
		}
		assert_true(done > 0);
	}
	check_invariants(fol, &p, s2, n2);
	assert_int_equal(topo_tunnel_list(lead, &tl, &ntl), 0);
	assert_int_equal(topo_tunnel_list(fol, &tf, &ntf), 0);
	assert_int_equal(ntl, ntf);
	for (size_t i = 0; i < ntl; i++)
		assert_memory_equal(&tl[i], &tf[i], sizeof(tl[i]));
	for (size_t i = 0; i < n2; i++) {
		char *a = edge_str(lead, s2[i].id), *b = edge_str(fol, s2[i].id);

		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	assert_true(topo_next_id(fol) <= topo_next_id(lead));
	free(tl);
	free(tf);
	topo_free(lead);
	topo_free(fol);
	free(s);
	free(s2);
}

static void
test_follow(void **state)
{
	(void)state;
	rng_state = 0xf011035eedull;
	for (int i = 0; i < 300; i++)
		follow_case(i);
}

/* A stored /31 that the follower still gives another tunnel: refused
 * (the caller then compiles everything), nothing changed. */
static void
test_follow_conflict(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[3];
	struct topo_output *t;
	struct topo_change chg;
	struct model_error err;
	struct model_tunnel st[2];
	struct topo_input in;
	char *before, *after;

	(void)state;
	model_policy_default(&p);
	p.topology = MODEL_TOPO_FULL_MESH;
	model_crypto_default(&c);
	s[0] = mksite(1, "a", "eu", MODEL_ROLE_EDGE, 65001, "inet=192.0.2.1");
	s[1] = mksite(2, "b", "eu", MODEL_ROLE_EDGE, 65002, "inet=192.0.2.2");
	s[2] = mksite(3, "c", "eu", MODEL_ROLE_EDGE, 65003, "inet=192.0.2.3");
	t = compile_ok(&p, &c, s, 2, NULL);     /* tunnel 1: a-b */
	in = (struct topo_input){ &p, &c, s, 3 };
	memset(st, 0, sizeof(st));
	st[0] = *topo_tunnel_get(t, 1);         /* a-c with a-b's /31 */
	st[0].id = 7;
	st[0].site_b = 3;
	st[1] = st[0];                          /* b-c, a fresh /31 */
	st[1].id = 8;
	st[1].site_a = 2;
	st[1].inner += 2;
	topo_tunnel_key_sort(st, 2);
	assert_int_equal(topo_follow_missing(&in, 3, st, 2), 0);
	before = dump_str(t);
	assert_int_equal(topo_site_follow(t, &in, 3, st, 2, NULL, 0, &chg,
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_CONFLICT);
	after = dump_str(t);
	assert_string_equal(before, after);
	free(before);
	free(after);
	topo_free(t);
}

/* A compile with prev keeps every allocation, even for new input order. */
static void
test_stable_recompile(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[30];
	struct topo_output *t1, *t2;
	struct model_tunnel *tl;
	size_t n;
	struct topo_prev prev;
	struct topo_change chg;
	struct topo_input in;
	struct model_error err;
	char *d1, *d2;

	rng_state = 77;
	random_policy(&p);
	model_crypto_default(&c);
	for (size_t i = 0; i < 30; i++)
		s[i] = random_site(i + 1);
	t1 = compile_ok(&p, &c, s, 30, NULL);
	assert_int_equal(topo_tunnel_list(t1, &tl, &n), 0);
	prev.tunnels = tl;
	prev.n_tunnels = n;
	prev.next_id = topo_next_id(t1);
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = 30;
	assert_int_equal(topo_compile(&in, &prev, &t2, &chg, &err), 0);
	assert_int_equal(chg.n_added, 0);
	assert_int_equal(chg.n_removed, 0);
	assert_int_equal(chg.n_edges, 30);
	d1 = dump_str(t1);
	d2 = dump_str(t2);
	assert_string_equal(d1, d2);
	free(d1);
	free(d2);
	free(tl);
	topo_change_free(&chg);
	topo_free(t1);
	topo_free(t2);
}

/* Switching encapsulation keeps ids and /31s; VNIs come and go. */
static void
test_encap_switch(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[12];
	struct topo_input in;
	struct topo_prev prev;
	struct topo_output *t1, *t2, *t3;
	struct topo_change chg;
	struct model_tunnel *l1, *l2;
	struct model_error err;
	size_t n1, n2;

	rng_state = 99;
	model_policy_default(&p);
	model_crypto_default(&c);
	p.pairing = MODEL_PAIR_ANY;
	p.encap = MODEL_ENCAP_VXLAN;
	for (size_t i = 0; i < 12; i++)
		s[i] = random_site(i + 1);
	t1 = compile_ok(&p, &c, s, 12, NULL);
	assert_int_equal(topo_tunnel_list(t1, &l1, &n1), 0);
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = 12;
	prev.tunnels = l1;
	prev.n_tunnels = n1;
	prev.next_id = topo_next_id(t1);
	p.encap = MODEL_ENCAP_GRE;
	assert_int_equal(topo_compile(&in, &prev, &t2, &chg, &err), 0);
	assert_int_equal(chg.n_added, n1);     /* every stored VNI cleared */
	assert_int_equal(chg.n_removed, 0);
	assert_int_equal(topo_tunnel_list(t2, &l2, &n2), 0);
	assert_int_equal(n2, n1);
	for (size_t i = 0; i < n1; i++) {
		assert_int_equal(l2[i].id, l1[i].id);
		assert_int_equal(l2[i].inner, l1[i].inner);
		assert_int_equal(l2[i].vni, 0);
	}
	topo_change_free(&chg);
	prev.tunnels = l2;
	p.encap = MODEL_ENCAP_VXLAN;
	assert_int_equal(topo_compile(&in, &prev, &t3, &chg, &err), 0);
	assert_int_equal(chg.n_added, n1);
	for (size_t i = 0; i < chg.n_added; i++)
		assert_true(chg.added[i].vni >= 1);
	/* recompiling unchanged reports nothing */
	topo_change_free(&chg);
	topo_free(t2);
	free(l2);
	assert_int_equal(topo_tunnel_list(t3, &l2, &n2), 0);
	prev.tunnels = l2;
	assert_int_equal(topo_compile(&in, &prev, &t2, &chg, &err), 0);
	assert_int_equal(chg.n_added, 0);
	topo_change_free(&chg);
	free(l1);
	free(l2);
	topo_free(t1);
	topo_free(t2);
	topo_free(t3);
}

/* Moving the pool keeps ids; every /31 moves into the new pool. */
static void
test_pool_move(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[8];
	struct topo_input in;
	struct topo_prev prev;
	struct topo_output *t1, *t2;
	struct topo_change chg;
	struct model_tunnel *l1, *l2;
	struct model_error err;
	size_t n1, n2;

	rng_state = 5;
	model_policy_default(&p);
	model_crypto_default(&c);
	for (size_t i = 0; i < 8; i++)
		s[i] = random_site(i + 1);
	t1 = compile_ok(&p, &c, s, 8, NULL);
	assert_int_equal(topo_tunnel_list(t1, &l1, &n1), 0);
	assert_true(n1 > 0);
	model_prefix_parse("172.31.0.0/24", false, &p.pool, "pool", NULL);
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = 8;
	prev.tunnels = l1;
	prev.n_tunnels = n1;
	prev.next_id = topo_next_id(t1);
	assert_int_equal(topo_compile(&in, &prev, &t2, &chg, &err), 0);
	assert_int_equal(chg.n_added, n1);
	assert_int_equal(topo_tunnel_list(t2, &l2, &n2), 0);
	for (size_t i = 0; i < n2; i++) {
		assert_int_equal(l2[i].id, l1[i].id);
		assert_int_equal(l2[i].inner >> 8, 0xac1f00u);
	}
	topo_change_free(&chg);
	free(l1);
	free(l2);
	topo_free(t1);
	topo_free(t2);
}

static void
test_pool_exhausted(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[4];
	struct topo_input in;
	struct topo_output *t = NULL;
	struct model_error err;
	struct topo_change chg;
	char *d1, *d2;

	model_policy_default(&p);
	model_crypto_default(&c);
	model_prefix_parse("100.64.0.0/30", false, &p.pool, "pool", NULL);
	s[0] = mksite(1, "a", "", MODEL_ROLE_EDGE, 64512, "inet=192.0.2.1");
	s[1] = mksite(2, "b", "", MODEL_ROLE_EDGE, 64513, "inet=192.0.2.2");
	s[2] = mksite(3, "c", "", MODEL_ROLE_EDGE, 64514, "inet=192.0.2.3");
	s[3] = mksite(4, "d", "", MODEL_ROLE_EDGE, 64515, "inet=192.0.2.4");
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = 3;         /* 3 tunnels, only 2 /31s */
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), -1);
	assert_int_equal(err.code, MODEL_E_EXHAUSTED);
	assert_string_equal(err.field, "pool");
	assert_null(t);

	in.n_sites = 2;
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), 0);
	/* Adding c needs 2 more /31s; only 1 is left: refused, t unchanged. */
	d1 = dump_str(t);
	in.n_sites = 3;
	assert_int_equal(topo_site_changed(t, &in, 3, &chg, &err), -1);
	assert_int_equal(err.code, MODEL_E_EXHAUSTED);
	d2 = dump_str(t);
	assert_string_equal(d1, d2);
	free(d2);
	/* Revoking b frees its /31 (tunnel 1); then c fits and reuses it
	 * under a new id: ids are never reused. */
	s[1].revoked = true;
	assert_int_equal(topo_site_changed(t, &in, 2, &chg, &err), 0);
	assert_int_equal(chg.n_removed, 1);
	assert_int_equal(chg.n_removed_sites, 1);
	assert_int_equal(chg.removed_sites[0], 2);
	topo_change_free(&chg);
	assert_int_equal(topo_site_changed(t, &in, 3, &chg, &err), 0);
	assert_int_equal(chg.n_added, 1);
	assert_int_equal(chg.added[0].id, 2);
	assert_int_equal(chg.added[0].inner, 0x64400000u);
	assert_null(topo_tunnel_get(t, 1));
	assert_int_equal(topo_tunnel_count(t), 1);
	topo_change_free(&chg);
	free(d1);
	topo_free(t);
}

/* Links pair only within one outer family, whatever the policy allows:
 * an edge refuses a tunnel from an IPv4 link to an IPv6 peer. */
static void
test_link_families(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[2];
	struct model_tunnel *tl;
	size_t nt;
	struct topo_output *t;

	(void)state;
	model_policy_default(&p);
	model_crypto_default(&c);
	p.pairing = MODEL_PAIR_ANY;
	memset(s, 0, sizeof(s));
	for (size_t i = 0; i < 2; i++) {
		s[i].id = i + 1;
		snprintf(s[i].name, sizeof(s[i].name), "s%zu", i + 1);
		s[i].role = MODEL_ROLE_SPOKE;
		s[i].asn = 64512 + (uint32_t)i;
		s[i].n_links = 2;
		snprintf(s[i].links[0].name, sizeof(s[i].links[0].name),
		    "inet");
		snprintf(s[i].links[0].address,
		    sizeof(s[i].links[0].address), "192.0.2.%zu", i + 1);
		snprintf(s[i].links[1].name, sizeof(s[i].links[1].name), "v6");
		snprintf(s[i].links[1].address,
		    sizeof(s[i].links[1].address), "2001:db8::%zu", i + 1);
	}
	t = compile_ok(&p, &c, s, 2, NULL);
	assert_int_equal(topo_tunnel_list(t, &tl, &nt), 0);
	assert_int_equal(nt, 2);        /* inet-inet, v6-v6; not 4 */
	for (size_t i = 0; i < nt; i++)
		assert_string_equal(tl[i].link_a, tl[i].link_b);
	assert_int_equal(topo_pair_count(&p, &s[0], &s[1]), 2);
	free(tl);
	topo_free(t);
	/* The same colour, different families: no tunnel. */
	p.pairing = MODEL_PAIR_SAME;
	s[1].n_links = 1;
	snprintf(s[1].links[0].address, sizeof(s[1].links[0].address),
	    "2001:db8::9");
	t = compile_ok(&p, &c, s, 2, NULL);
	assert_int_equal(topo_tunnel_count(t), 0);
	topo_free(t);
}

static void
test_bad_input(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site s[2];
	struct topo_input in;
	struct topo_output *t = NULL;
	struct model_error err;

	model_policy_default(&p);
	model_crypto_default(&c);
	s[0] = mksite(1, "a", "", MODEL_ROLE_EDGE, 64512, "inet=192.0.2.1");
	s[1] = mksite(1, "b", "", MODEL_ROLE_EDGE, 64513, "inet=192.0.2.2");
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = 2;
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	s[1].id = 2;
	snprintf(s[1].links[0].address, sizeof(s[1].links[0].address), "x");
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	p.pool.len = 32;
	assert_int_equal(topo_compile(&in, NULL, &t, NULL, &err), -1);
	assert_string_equal(err.field, "pool");
	assert_null(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_full_mesh),
		cmocka_unit_test(test_golden_hub_spoke),
		cmocka_unit_test(test_golden_regional),
		cmocka_unit_test(test_stable_recompile),
		cmocka_unit_test(test_encap_switch),
		cmocka_unit_test(test_pool_move),
		cmocka_unit_test(test_pool_exhausted),
		cmocka_unit_test(test_link_families),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_random_topologies),
		cmocka_unit_test(test_follow),
		cmocka_unit_test(test_follow_conflict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
