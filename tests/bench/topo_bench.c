/*
 * topo_bench.c — how fast and how big the intent compiler is at scale.
 *
 * Compiles an N-site full mesh (default 1,000 sites, one link each:
 * N(N-1)/2 tunnels), then adds, changes and removes one site
 * incrementally.  Prints each figure with its ratio to the target of
 * issue 3 (full compile <= 10 s and <= 2 GiB peak RSS, one-site change
 * <= 50 ms) and to references measured in the same run on the same
 * machine: the time merely to fill an array with as many tunnel structs,
 * and a 100-site compile scaled by the number of tunnels.
 *
 * Also measured, for information (no target): building every edge's
 * views (what the session layer reads to make intents), and persisting the
 * full tunnel set and then one site's change with store_tunnel_apply into
 * a temporary sqlite database.
 *
 * Usage: topo_bench [SITES]      (SITES 10..5000)
 * Exit status is 0 even when a target is missed: the figures are the
 * result; tests/bench/topo_bench.sh prints them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "controller/store.h"
#include "controller/topo.h"
#include "lib/util.h"

#define TARGET_FULL_S    10.0
#define TARGET_RSS_MIB   2048.0
#define TARGET_CHANGE_MS 50.0

static void
bench_site(struct model_site *s, uint64_t id)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	(void)snprintf(s->name, sizeof(s->name), "site-%llu",
	    (unsigned long long)id);
	(void)snprintf(s->region, sizeof(s->region), "r%llu",
	    (unsigned long long)id % 10);
	s->role = MODEL_ROLE_EDGE;
	s->asn = 64512 + (uint32_t)(id % 1000);
	s->n_links = 1;
	(void)snprintf(s->links[0].name, sizeof(s->links[0].name), "inet");
	(void)snprintf(s->links[0].address, sizeof(s->links[0].address),
	    "10.%llu.%llu.1", (unsigned long long)(id >> 8) & 0xff,
	    (unsigned long long)id & 0xff);
}

static double
bench_rss_mib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

static double
bench_ms(uint64_t t0)
{
	return (double)(util_mono_ns() - t0) / 1e6;
}

/* Compile n sites; returns milliseconds, the output in *out. */
static double
bench_compile(const struct model_policy *p, const struct model_crypto *c,
    const struct model_site *s, size_t n, struct topo_output **out)
{
	struct topo_input in = { p, c, s, n };
	struct topo_change chg;
	struct model_error err;
	uint64_t t0 = util_mono_ns();
	double ms;

	if (topo_compile(&in, NULL, out, &chg, &err) != 0) {
		fprintf(stderr, "topo_bench: compile failed: %s\n",
		    err.message);
		exit(1);
	}
	ms = bench_ms(t0);
	topo_change_free(&chg);
	return ms;
}

/* Read every view of every edge, as the session layer would. */
static double
bench_views(const struct topo_output *t, size_t *total)
{
	uint64_t t0 = util_mono_ns();
	uint64_t sum = 0;

	*total = 0;
	for (size_t e = 0; e < topo_edge_count(t); e++) {
		uint64_t id = topo_edge_site(t, e)->id;
		size_t n = topo_edge_tunnel_count(t, id);

		for (size_t i = 0; i < n; i++) {
			struct topo_view v;

			if (topo_edge_view(t, id, i, &v) == 0)
				sum += v.inner_local & 1;
		}
		*total += n;
	}
	if (sum == 0)
		*total += 0;
	return bench_ms(t0);
}

/* Persist all tunnels, then one added site's tunnels; ms for each. */
static void
bench_store(const struct model_site *s, size_t n, struct topo_output *t,
    const struct topo_change *add, double *full_ms, double *one_ms)
{
	char dir[] = "/tmp/topo_bench.XXXXXX", path[64], cmd[96];
	struct store_opts o = { "sqlite", path, 0 };
	struct store *st;
	struct model_error err;
	struct model_tunnel *tl;
	size_t nt;
	uint64_t t0;

	*full_ms = *one_ms = -1;
	if (mkdtemp(dir) == NULL)
		return;
	(void)snprintf(path, sizeof(path), "%s/bench.db", dir);
	if (store_open(&o, &st, &err) == 0) {
		int ok = store_begin(st, &err) == 0;

		/* The sites must exist (foreign keys): same ids as the model. */
		for (size_t i = 0; ok && i < n; i++) {
			struct model_site c = s[i];

			c.asn = 0;      /* the store assigns; tunnels ignore it */
			ok = store_site_create(st, &c, &err) == 0 &&
			    c.id == s[i].id;
		}
		if (ok && store_commit(st, &err) == 0 &&
		    topo_tunnel_list(t, &tl, &nt) == 0) {
			/* Without the added site's tunnels first. */
			size_t base = nt - add->n_added;

			t0 = util_mono_ns();
			if (store_tunnel_apply(st, NULL, 0, tl, base, 1, &err) == 0)
				*full_ms = bench_ms(t0);
			t0 = util_mono_ns();
			if (store_tunnel_apply(st, NULL, 0, add->added,
			    add->n_added, topo_next_id(t), &err) == 0)
				*one_ms = bench_ms(t0);
			free(tl);
		}
		store_close(st);
	}
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "topo_bench: could not remove %s\n", dir);
}

static double
bench_change(struct topo_output *t, const struct model_policy *p,
    const struct model_crypto *c, const struct model_site *s, size_t n,
    uint64_t id, size_t *edges, size_t *added, size_t *removed,
    struct topo_change *keep)
{
	struct topo_input in = { p, c, s, n };
	struct topo_change chg;
	struct model_error err;
	uint64_t t0 = util_mono_ns();
	double ms;

	if (topo_site_changed(t, &in, id, &chg, &err) != 0) {
		fprintf(stderr, "topo_bench: change failed: %s\n", err.message);
		exit(1);
	}
	ms = bench_ms(t0);
	*edges = chg.n_edges;
	*added = chg.n_added;
	*removed = chg.n_removed;
	if (keep != NULL)
		*keep = chg;
	else
		topo_change_free(&chg);
	return ms;
}

int
main(int argc, char **argv)
{
	uint64_t n = 1000;
	struct model_policy p;
	struct model_crypto c;
	struct model_site *s;
	struct topo_output *t, *small;
	size_t tunnels, edges, added, removed;
	double full_ms, rss, add_ms, mod_ms, del_ms, small_ms, fill_ms;
	double scaled_ms, views_ms, store_full_ms, store_one_ms;
	size_t views;
	struct topo_change addchg;
	struct model_tunnel *ref;
	uint64_t t0, small_tunnels, sink = 0;

	if (argc > 1 && util_parse_u64(argv[1], 10, 5000, &n) == -1) {
		fprintf(stderr, "usage: topo_bench [SITES 10..5000]\n");
		return 2;
	}
	model_policy_default(&p);
	model_crypto_default(&c);
	/* A /10 holds 2M /31s: room for a 2,000-site full mesh. */
	(void)model_prefix_parse("100.64.0.0/10", false, &p.pool, "pool", NULL);
	s = calloc(n + 1, sizeof(*s));
	if (s == NULL)
		return 1;
	for (uint64_t i = 0; i < n + 1; i++)
		bench_site(&s[i], i + 1);

	full_ms = bench_compile(&p, &c, s, n, &t);
	rss = bench_rss_mib();
	tunnels = topo_tunnel_count(t);

	add_ms = bench_change(t, &p, &c, s, n + 1, n + 1, &edges, &added,
	    &removed, &addchg);
	printf("one-site add:    %8.3f ms  edges=%zu added=%zu removed=%zu  "
	    "target %.0f ms  ratio %.3f\n", add_ms, edges, added, removed,
	    TARGET_CHANGE_MS, add_ms / TARGET_CHANGE_MS);
	(void)snprintf(s[n / 2].links[0].address,
	    sizeof(s[n / 2].links[0].address), "192.0.2.77");
	views_ms = bench_views(t, &views);
	store_full_ms = store_one_ms = -1;
	if (getenv("TOPO_BENCH_NO_STORE") == NULL)
		bench_store(s, n + 1, t, &addchg, &store_full_ms,
		    &store_one_ms);
	topo_change_free(&addchg);
	mod_ms = bench_change(t, &p, &c, s, n + 1, s[n / 2].id, &edges, &added,
	    &removed, NULL);
	printf("one-site change: %8.3f ms  edges=%zu added=%zu removed=%zu  "
	    "target %.0f ms  ratio %.3f\n", mod_ms, edges, added, removed,
	    TARGET_CHANGE_MS, mod_ms / TARGET_CHANGE_MS);
	del_ms = bench_change(t, &p, &c, s, n, n + 1, &edges, &added,
	    &removed, NULL);
	printf("one-site remove: %8.3f ms  edges=%zu added=%zu removed=%zu  "
	    "target %.0f ms  ratio %.3f\n", del_ms, edges, added, removed,
	    TARGET_CHANGE_MS, del_ms / TARGET_CHANGE_MS);
	topo_free(t);

	/* Reference 1: just fill an array with the same number of tunnels. */
	t0 = util_mono_ns();
	ref = malloc(tunnels * sizeof(*ref));
	if (ref == NULL)
		return 1;
	for (size_t i = 0; i < tunnels; i++) {
		memset(&ref[i], 0, sizeof(ref[i]));
		ref[i].id = i + 1;
		ref[i].site_a = i % n;
		ref[i].site_b = i % n + 1;
		memcpy(ref[i].link_a, "inet", 5);
		memcpy(ref[i].link_b, "inet", 5);
		ref[i].inner = 0x64400000u + 2 * (uint32_t)i;
	}
	fill_ms = bench_ms(t0);
	/* Read the array back so the fill cannot be optimised away. */
	for (size_t i = 0; i < tunnels; i++)
		sink += ref[i].inner & 1;
	free(ref);

	/* Reference 2: a 100-site compile, scaled to the tunnel count. */
	small_ms = bench_compile(&p, &c, s, 100, &small);
	small_tunnels = topo_tunnel_count(small);
	topo_free(small);
	scaled_ms = small_ms * (double)tunnels / (double)small_tunnels;

	printf("full compile:    %8.1f ms  sites=%llu tunnels=%zu  "
	    "target %.0f ms  ratio %.3f\n", full_ms, (unsigned long long)n,
	    tunnels, TARGET_FULL_S * 1000, full_ms / (TARGET_FULL_S * 1000));
	printf("peak RSS:        %8.1f MiB  target %.0f MiB  ratio %.3f  "
	    "(%.0f bytes/tunnel)\n", rss, TARGET_RSS_MIB,
	    rss / TARGET_RSS_MIB, rss * 1048576.0 / (double)tunnels);
	printf("reference fill:  %8.1f ms  (%zu structs of %zu bytes)  "
	    "compile/fill %.1f%s\n", fill_ms, tunnels, sizeof(*ref),
	    full_ms / fill_ms, sink != 0 ? " (odd /31!)" : "");
	printf("reference 100:   %8.1f ms  (%llu tunnels) scaled x%.0f = "
	    "%.1f ms  compile/scaled %.2f\n", small_ms,
	    (unsigned long long)small_tunnels,
	    (double)tunnels / (double)small_tunnels, scaled_ms,
	    full_ms / scaled_ms);
	printf("all edge views:  %8.1f ms  (%zu views; information)\n",
	    views_ms, views);
	if (store_full_ms >= 0)
		printf("store apply:     %8.1f ms  all %zu tunnels; one site "
		    "%.1f ms  (sqlite, information)\n", store_full_ms,
		    tunnels, store_one_ms);
	free(s);
	return 0;
}
