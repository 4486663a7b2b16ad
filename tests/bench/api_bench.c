/*
 * api_bench.c — what a REST change costs on a large network: N sites (one
 * inet link each, full mesh, tunnels persisted as the daemon would), then
 * over real HTTP: adding a site (validation, dry-run compile, audit,
 * commit), changing one, reading the site list and one site's tunnels.
 * Reference measured in the same run: the bare full compile, so the
 * figures read as "REST overhead over one compile".
 *
 * usage: api_bench [SITES [LINKS [POOL]]]   (default 1000 1 100.64.0.0/10)
 * With one link per site and a roomy pool the API proves without
 * compiling that nothing can run out; two links per site (inet and mpls,
 * same-colour pairing) and a pool between the real need and the bound
 * L(L-1)/2 force the dry-run compile on every change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "controller/api.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"

#define BENCH_RUNS 5

struct bench {
	struct store *st;
	char base[64];
	char auth[128];
	CURL *curl;
};

static size_t
bench_sink(char *p, size_t sz, size_t nm, void *arg)
{
	size_t *total = arg;

	(void)p;
	*total += sz * nm;
	return sz * nm;
}

/* One request; returns its wall time in ms, exits unless status matches. */
static double
bench_req(struct bench *b, const char *method, const char *path,
    const char *body, long want, size_t *bytes)
{
	struct curl_slist *h = NULL;
	char url[256];
	uint64_t t0;
	long status = 0;
	size_t total = 0;

	snprintf(url, sizeof(url), "%s%s", b->base, path);
	curl_easy_reset(b->curl);
	curl_easy_setopt(b->curl, CURLOPT_URL, url);
	curl_easy_setopt(b->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, bench_sink);
	curl_easy_setopt(b->curl, CURLOPT_WRITEDATA, &total);
	h = curl_slist_append(h, b->auth);
	if (body != NULL)
		curl_easy_setopt(b->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, h);
	t0 = util_mono_ns();
	if (curl_easy_perform(b->curl) != CURLE_OK)
		fatalx("%s %s failed", method, path);
	curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	if (status != want)
		fatalx("%s %s: HTTP %ld, want %ld", method, path, status, want);
	if (bytes != NULL)
		*bytes = total;
	return (double)(util_mono_ns() - t0) / 1e6;
}

/* Compiles the whole model and persists the allocations; returns ms. */
static double
bench_compile(struct store *st)
{
	struct model_policy policy;
	struct model_crypto crypto;
	struct model_site *sites = NULL;
	struct model_tunnel *tunnels = NULL;
	struct topo_output *out = NULL;
	struct topo_change chg;
	struct model_error err;
	struct topo_input in;
	struct topo_prev prev;
	size_t ns = 0, nt = 0;
	uint64_t next = 0, t0;
	double ms;

	if (store_policy_get(st, &policy, &err) == -1 ||
	    store_crypto_get(st, &crypto, &err) == -1 ||
	    store_site_list(st, &sites, &ns, &err) == -1 ||
	    store_tunnel_list(st, &tunnels, &nt, &next, &err) == -1)
		fatalx("load: %s", err.message);
	in.policy = &policy;
	in.crypto = &crypto;
	in.sites = sites;
	in.n_sites = ns;
	prev.tunnels = tunnels;
	prev.n_tunnels = nt;
	prev.next_id = next;
	memset(&chg, 0, sizeof(chg));
	t0 = util_mono_ns();
	if (topo_compile(&in, &prev, &out, &chg, &err) == -1)
		fatalx("compile: %s", err.message);
	ms = (double)(util_mono_ns() - t0) / 1e6;
	if (store_tunnel_apply(st, chg.removed, chg.n_removed, chg.added,
	    chg.n_added, topo_next_id(out), &err) == -1)
		fatalx("apply: %s", err.message);
	topo_change_free(&chg);
	topo_free(out);
	free(sites);
	free(tunnels);
	return ms;
}

static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
bench_median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), bench_cmp);
	return v[n / 2];
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/api_bench.XXXXXX", db[128], body[256], path[96];
	char mpls[80];
	char token[STORE_TOKEN_LEN + 1], cmd[128];
	struct store_opts so = { 0 };
	struct api_config ac;
	struct model_error err;
	struct model_site s;
	struct bench b;
	struct api *api;
	uint64_t n = 1000, nl = 1, i, l;
	const char *pool = "100.64.0.0/10";
	static const char *const colours[] = { "inet", "mpls" };
	double add[BENCH_RUNS], patch[BENCH_RUNS], list, tun, compile_ms;
	size_t bytes = 0, tbytes = 0;

	log_init("api_bench", true);
	if ((argc > 1 && util_parse_u64(argv[1], 2, 4000, &n) == -1) ||
	    (argc > 2 && util_parse_u64(argv[2], 1, 2, &nl) == -1))
		fatalx("usage: api_bench [SITES 2..4000 [LINKS 1..2 [POOL]]]");
	if (argc > 3)
		pool = argv[3];
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	snprintf(db, sizeof(db), "%s/db.sqlite", dir);
	so.path = db;
	if (store_open(&so, &b.st, &err) == -1)
		fatalx("store: %s", err.message);
	{
		struct model_policy p;

		if (store_policy_get(b.st, &p, &err) == -1 ||
		    model_prefix_parse(pool, false, &p.pool, "pool",
		    &err) == -1 || store_policy_set(b.st, &p, &err) == -1)
			fatalx("policy: %s", err.message);
	}
	for (i = 0; i < n; i++) {
		memset(&s, 0, sizeof(s));
		snprintf(s.name, sizeof(s.name), "site-%llu",
		    (unsigned long long)i);
		s.role = MODEL_ROLE_SPOKE;
		s.n_links = (size_t)nl;
		for (l = 0; l < nl; l++) {
			snprintf(s.links[l].name, sizeof(s.links[l].name), "%s",
			    colours[l]);
			snprintf(s.links[l].address,
			    sizeof(s.links[l].address), "10.%llu.%llu.%llu",
			    (unsigned long long)(i / 256 % 256),
			    (unsigned long long)(i % 256),
			    (unsigned long long)l + 1);
		}
		if (store_site_create(b.st, &s, &err) == -1)
			fatalx("site: %s", err.message);
	}
	compile_ms = bench_compile(b.st);
	if (store_api_token_create(b.st, "bench", MODEL_API_ADMIN, 0, token,
	    &err) == -1)
		fatalx("token: %s", err.message);
	snprintf(b.auth, sizeof(b.auth), "Authorization: Bearer %s", token);

	memset(&ac, 0, sizeof(ac));
	ac.listen = "127.0.0.1:0";
	api = api_start(&ac, b.st);
	if (api == NULL)
		fatalx("api_start");
	snprintf(b.base, sizeof(b.base), "http://127.0.0.1:%u",
	    (unsigned)api_port(api));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	b.curl = curl_easy_init();

	for (i = 0; i < BENCH_RUNS; i++) {
		/* Every site its own addresses: a shared endpoint is 409. */
		snprintf(mpls, sizeof(mpls), ",{\"name\":\"mpls\",\"address\":"
		    "\"198.51.100.%llu\"}", (unsigned long long)i + 1);
		snprintf(body, sizeof(body), "{\"name\":\"new-%llu\",\"role\":"
		    "\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":"
		    "\"192.0.2.%llu\"}%s]}", (unsigned long long)i,
		    (unsigned long long)i + 1, nl == 2 ? mpls : "");
		add[i] = bench_req(&b, "POST", "/api/v1/sites", body, 201,
		    NULL);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu",
		    (unsigned long long)(n + i + 1));
		patch[i] = bench_req(&b, "PATCH", path,
		    "{\"region\":\"eu\"}", 200, NULL);
	}
	list = bench_req(&b, "GET", "/api/v1/sites", NULL, 200, &bytes);
	tun = bench_req(&b, "GET", "/api/v1/tunnels?site=1", NULL, 200,
	    &tbytes);

	printf("sites=%llu links/site=%llu pool=%s tunnels=%llu (persisted), "
	    "%d runs each\n", (unsigned long long)n, (unsigned long long)nl,
	    pool, (unsigned long long)(nl * n * (n - 1) / 2), BENCH_RUNS);
	printf("reference full compile:   %8.1f ms\n", compile_ms);
	printf("POST /sites (add one):    %8.1f ms median  ratio to compile %.2f\n",
	    bench_median(add, BENCH_RUNS),
	    bench_median(add, BENCH_RUNS) / compile_ms);
	printf("PATCH /sites/{id}:        %8.1f ms median  ratio to compile %.2f\n",
	    bench_median(patch, BENCH_RUNS),
	    bench_median(patch, BENCH_RUNS) / compile_ms);
	printf("GET /sites:               %8.1f ms (%zu bytes)\n", list, bytes);
	printf("GET /tunnels?site=1:      %8.1f ms (%zu bytes)\n", tun, tbytes);

	curl_easy_cleanup(b.curl);
	curl_global_cleanup();
	api_stop(api);
	store_close(b.st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : 1;
}
