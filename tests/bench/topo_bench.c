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
 * Usage: topo_bench [SITES]      (SITES 10..5000)
 * Exit status is 0 even when a target is missed: the figures are the
 * result; tests/bench/topo_bench.sh prints them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

static double
bench_change(struct topo_output *t, const struct model_policy *p,
    const struct model_crypto *c, const struct model_site *s, size_t n,
    uint64_t id, size_t *edges, size_t *added, size_t *removed)
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
	double scaled_ms;
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
	    &removed);
	printf("one-site add:    %8.3f ms  edges=%zu added=%zu removed=%zu  "
	    "target %.0f ms  ratio %.3f\n", add_ms, edges, added, removed,
	    TARGET_CHANGE_MS, add_ms / TARGET_CHANGE_MS);
	(void)snprintf(s[n / 2].links[0].address,
	    sizeof(s[n / 2].links[0].address), "192.0.2.77");
	mod_ms = bench_change(t, &p, &c, s, n + 1, s[n / 2].id, &edges, &added,
	    &removed);
	printf("one-site change: %8.3f ms  edges=%zu added=%zu removed=%zu  "
	    "target %.0f ms  ratio %.3f\n", mod_ms, edges, added, removed,
	    TARGET_CHANGE_MS, mod_ms / TARGET_CHANGE_MS);
	del_ms = bench_change(t, &p, &c, s, n, n + 1, &edges, &added,
	    &removed);
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
	free(s);
	return 0;
}
