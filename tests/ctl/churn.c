/*
 * churn.c — the two halves of the store consistency property test
 * (tests/ctl/consistency.sh).
 *
 *   churn load URL TOKEN SEED CLIENTS SECONDS [KEEP_SITE...]
 *       CLIENTS threads hammer the REST API for SECONDS with random site
 *       creates, patches, deletes and revocations, link and prefix edits,
 *       policy switches and rekeys (seeded: the same SEED gives every
 *       thread the same choices).  KEEP sites (the ones with live test
 *       edges) are never deleted or revoked; policy switches happen in
 *       the first half only (a full recompile would hide drift made
 *       before it).  Prints one line of status
 *       counts; exits 1 if any reply was a 5xx other than 503 busy.
 *
 *   churn steal DB
 *       Plays a second controller on the same database: removes the
 *       newest stored tunnel through store_tunnel_apply (which moves the
 *       allocation generation on), so the running controller's memory no
 *       longer matches the store and it must notice and reload.
 *
 *   churn check DB [SITE:FILE...]
 *       Opens the database (read only use) and checks, from the stored
 *       sites, policy and tunnels alone, that the stored tunnels are a
 *       fixpoint of the compiler: a fresh compile with them as the previous
 *       allocations adds and removes nothing and reproduces every tunnel
 *       exactly; no tunnel names a missing or revoked site; no /31, VNI or
 *       (receiving address, SPI) is used twice; every tunnel has an SA
 *       epoch in both directions.  Each SITE:FILE is a live edge's applied
 *       intent as written by `edge_client session -t FILE`: its tunnels
 *       (id, peer, inner /31, VNI) must be exactly the stored tunnels of
 *       that site.  Prints what differs; exit 0 = consistent.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ */
/* load */

#define CHURN_MAX_SITES 24      /* live sites the workload grows to */
#define CHURN_IDS_MAX 4096

struct churn {
	const char *url;
	char auth[160];
	uint64_t deadline_ms;
	uint64_t policy_until_ms;       /* policy switches only before */
	unsigned seed;
	pthread_mutex_t lock;
	uint64_t ids[CHURN_IDS_MAX];    /* sites this run believes exist */
	size_t n_ids;
	uint64_t keep[16];
	size_t n_keep;
	unsigned serial;                /* unique names, addresses, prefixes */
	unsigned long n2xx, n4xx, n503, n5xx, nfail, ops;
};

struct worker {
	struct churn *c;
	unsigned idx;
	uint64_t rng;
	CURL *curl;
};

static uint32_t
churn_rand(struct worker *w)
{
	/* xorshift64*: small, seeded, the same sequence every run. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (uint32_t)((w->rng * 2685821657736338717ull) >> 32);
}

static size_t
churn_body(char *p, size_t sz, size_t nm, void *arg)
{
	char **buf = arg;
	size_t old = *buf ? strlen(*buf) : 0, add = sz * nm;
	char *n = realloc(*buf, old + add + 1);

	if (n == NULL)
		return 0;
	memcpy(n + old, p, add);
	n[old + add] = '\0';
	*buf = n;
	return add;
}

/* One request; returns the HTTP status (0: no reply), body in *out. */
static long
churn_req(struct worker *w, const char *method, const char *path,
    const char *body, char **out)
{
	struct curl_slist *h = NULL;
	char url[512];
	long status = 0;
	char *buf = NULL;

	snprintf(url, sizeof(url), "%s/api/v1%s", w->c->url, path);
	curl_easy_reset(w->curl);
	curl_easy_setopt(w->curl, CURLOPT_URL, url);
	curl_easy_setopt(w->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, churn_body);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 30L);
	h = curl_slist_append(h, w->c->auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (body != NULL)
		curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, h);
	if (curl_easy_perform(w->curl) == CURLE_OK)
		curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	pthread_mutex_lock(&w->c->lock);
	w->c->ops++;
	if (status >= 200 && status < 300)
		w->c->n2xx++;
	else if (status >= 400 && status < 500)
		w->c->n4xx++;
	else if (status == 503)
		w->c->n503++;
	else if (status >= 500) {
		w->c->n5xx++;
		fprintf(stderr, "churn: %s %s -> %ld %s\n", method, path,
		    status, buf ? buf : "");
	} else
		w->c->nfail++;
	pthread_mutex_unlock(&w->c->lock);
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return status;
}

static bool
churn_kept(const struct churn *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_keep; i++)
		if (c->keep[i] == id)
			return true;
	return false;
}

/* A random known site (any: 0 = none); mutable = not a kept one. */
static uint64_t
churn_pick(struct worker *w, bool mutable)
{
	struct churn *c = w->c;
	uint64_t id = 0;

	pthread_mutex_lock(&c->lock);
	for (int tries = 0; tries < 8 && c->n_ids > 0; tries++) {
		uint64_t cand = c->ids[churn_rand(w) % c->n_ids];

		if (!mutable || !churn_kept(c, cand)) {
			id = cand;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return id;
}

static void
churn_forget(struct churn *c, uint64_t id)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_ids; i++)
		if (c->ids[i] == id) {
			c->ids[i] = c->ids[--c->n_ids];
			break;
		}
	pthread_mutex_unlock(&c->lock);
}

static unsigned
churn_serial(struct churn *c)
{
	unsigned s;

	pthread_mutex_lock(&c->lock);
	s = ++c->serial;
	pthread_mutex_unlock(&c->lock);
	return s;
}

static void
churn_create(struct worker *w)
{
	static const char *roles[] = { "hub", "spoke", "spoke", "edge" };
	static const char *regions[] = { "eu", "us" };
	struct churn *c = w->c;
	unsigned s = churn_serial(c);
	char body[512], *out = NULL;
	json_t *j;

	snprintf(body, sizeof(body), "{\"name\":\"w%u-%u\",\"role\":\"%s\","
	    "\"region\":\"%s\",\"links\":[{\"name\":\"inet\",\"address\":"
	    "\"172.16.%u.%u\"}%s],\"lan_prefixes\":[\"10.%u.%u.0/24\"]}",
	    w->idx, s, roles[churn_rand(w) % 4], regions[churn_rand(w) % 2],
	    s / 250, s % 250 + 1, churn_rand(w) % 3 == 0 ?
	    ",{\"name\":\"mpls\",\"address\":\"172.17.0.1\"}" : "",
	    100 + s / 250, s % 250);
	/* mpls addresses need not be unique for the compiler; patches
	 * below give them their own. */
	if (churn_req(w, "POST", "/sites", body, &out) == 201 &&
	    (j = json_loads(out, 0, NULL)) != NULL) {
		json_int_t id = json_integer_value(json_object_get(j, "id"));

		pthread_mutex_lock(&c->lock);
		if (id > 0 && c->n_ids < CHURN_IDS_MAX)
			c->ids[c->n_ids++] = (uint64_t)id;
		pthread_mutex_unlock(&c->lock);
		json_decref(j);
	}
	free(out);
}

static void
churn_op(struct worker *w)
{
	static const char *modes[] = { "full-mesh", "hub-and-spoke",
	    "regional-mesh" };
	struct churn *c = w->c;
	uint32_t r = churn_rand(w) % 100;
	char path[128], body[256];
	uint64_t id;
	size_t live;
	unsigned s;

	pthread_mutex_lock(&c->lock);
	live = c->n_ids;
	pthread_mutex_unlock(&c->lock);
	if (r < 20) {
		if (live < CHURN_MAX_SITES)
			churn_create(w);
		else if ((id = churn_pick(w, true)) != 0) {
			snprintf(path, sizeof(path), "/sites/%" PRIu64, id);
			if (churn_req(w, "DELETE", path, NULL, NULL) == 204)
				churn_forget(c, id);
		}
	} else if (r < 32) {
		if ((id = churn_pick(w, true)) != 0) {
			snprintf(path, sizeof(path), "/sites/%" PRIu64, id);
			if (churn_req(w, "DELETE", path, NULL, NULL) == 204)
				churn_forget(c, id);
		}
	} else if (r < 44) {
		if ((id = churn_pick(w, false)) != 0) {
			snprintf(path, sizeof(path), "/sites/%" PRIu64, id);
			snprintf(body, sizeof(body), "{\"region\":\"%s\"%s}",
			    churn_rand(w) % 2 ? "eu" : "us",
			    churn_kept(c, id) ? "" : churn_rand(w) % 2 ?
			    ",\"role\":\"hub\"" : ",\"role\":\"spoke\"");
			churn_req(w, "PATCH", path, body, NULL);
		}
	} else if (r < 50) {
		if ((id = churn_pick(w, true)) != 0) {
			snprintf(path, sizeof(path), "/sites/%" PRIu64, id);
			churn_req(w, "PATCH", path, "{\"revoked\":true}", NULL);
		}
	} else if (r < 62) {
		if ((id = churn_pick(w, false)) == 0)
			return;
		s = churn_serial(c);
		switch (churn_rand(w) % 4) {
		case 0:
			snprintf(path, sizeof(path), "/sites/%" PRIu64
			    "/links", id);
			snprintf(body, sizeof(body), "{\"name\":\"mpls\","
			    "\"address\":\"172.18.%u.%u\"}", s / 250,
			    s % 250 + 1);
			churn_req(w, "POST", path, body, NULL);
			break;
		case 1:
			snprintf(path, sizeof(path), "/sites/%" PRIu64
			    "/links/mpls", id);
			churn_req(w, "DELETE", path, NULL, NULL);
			break;
		default:
			snprintf(path, sizeof(path), "/sites/%" PRIu64
			    "/links/inet", id);
			snprintf(body, sizeof(body), "{\"address\":"
			    "\"172.19.%u.%u\"}", s / 250, s % 250 + 1);
			churn_req(w, "PATCH", path, body, NULL);
			break;
		}
	} else if (r < 76) {
		if ((id = churn_pick(w, false)) == 0)
			return;
		s = churn_serial(c);
		snprintf(path, sizeof(path), "/sites/%" PRIu64 "/prefixes",
		    id);
		if (churn_rand(w) % 2) {
			snprintf(body, sizeof(body), "{\"prefix\":"
			    "\"10.%u.%u.0/24\"}", 150 + s / 250, s % 250);
			churn_req(w, "POST", path, body, NULL);
		} else {
			char *out = NULL;
			json_t *j, *arr;

			/* Remove one the site has (a /24 of our making). */
			if (churn_req(w, "GET", path, NULL, &out) == 200 &&
			    (j = json_loads(out, 0, NULL)) != NULL) {
				arr = json_object_get(j, "prefixes");
				if (json_is_array(arr) && json_array_size(arr)) {
					const char *p = json_string_value(
					    json_array_get(arr, churn_rand(w) %
					    json_array_size(arr)));

					snprintf(path, sizeof(path), "/sites/%"
					    PRIu64 "/prefixes?prefix=%s", id,
					    p ? p : "");
					churn_req(w, "DELETE", path, NULL, NULL);
				}
				json_decref(j);
			}
			free(out);
		}
	} else if (r < 80) {
		/* A policy switch recompiles everything from the store, which
		 * hides earlier drift: none in the second half, so drift made
		 * there is still there at the end. */
		if (util_mono_ms() >= c->policy_until_ms)
			return;
		snprintf(body, sizeof(body), "{\"mode\":\"%s\"}",
		    modes[churn_rand(w) % 3]);
		churn_req(w, "PUT", "/policy", body, NULL);
	} else if (r < 86) {
		if ((id = churn_pick(w, false)) != 0) {
			snprintf(path, sizeof(path), "/sites/%" PRIu64
			    "/rekey", id);
			churn_req(w, "POST", path, NULL, NULL);
		}
	} else if (r < 93) {
		churn_req(w, "GET", "/tunnels", NULL, NULL);
	} else {
		churn_req(w, "GET", "/sites", NULL, NULL);
	}
}

static void *
churn_worker(void *arg)
{
	struct worker *w = arg;

	while (util_mono_ms() < w->c->deadline_ms)
		churn_op(w);
	return NULL;
}

static int
churn_load(int argc, char **argv)
{
	static struct churn c;
	struct worker *w;
	pthread_t *th;
	uint64_t v, clients, secs;
	int rc = 0;

	if (argc < 7 || util_parse_u64(argv[4], 0, UINT32_MAX, &v) == -1 ||
	    util_parse_u64(argv[5], 1, 64, &clients) == -1 ||
	    util_parse_u64(argv[6], 1, 600, &secs) == -1) {
		fprintf(stderr, "usage: churn load URL TOKEN SEED CLIENTS "
		    "SECONDS [KEEP_SITE...]\n");
		return 2;
	}
	c.url = argv[2];
	snprintf(c.auth, sizeof(c.auth), "Authorization: Bearer %s", argv[3]);
	c.seed = (unsigned)v;
	pthread_mutex_init(&c.lock, NULL);
	for (int i = 7; i < argc && c.n_keep < 16; i++) {
		if (util_parse_u64(argv[i], 1, INT64_MAX, &v) == -1)
			return 2;
		c.keep[c.n_keep++] = v;
		c.ids[c.n_ids++] = v;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	w = calloc(clients, sizeof(*w));
	th = calloc(clients, sizeof(*th));
	if (w == NULL || th == NULL)
		return 1;
	c.deadline_ms = util_mono_ms() + secs * 1000;
	c.policy_until_ms = util_mono_ms() + secs * 500;
	for (size_t i = 0; i < clients; i++) {
		w[i].c = &c;
		w[i].idx = (unsigned)i;
		w[i].rng = ((uint64_t)c.seed << 16 | i) * 0x9e3779b97f4a7c15ull
		    | 1;
		w[i].curl = curl_easy_init();
		if (w[i].curl == NULL ||
		    pthread_create(&th[i], NULL, churn_worker, &w[i]) != 0)
			return 1;
	}
	for (size_t i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		curl_easy_cleanup(w[i].curl);
	}
	printf("churn: seed=%u clients=%" PRIu64 " seconds=%" PRIu64
	    " requests=%lu 2xx=%lu 4xx=%lu 503=%lu 5xx=%lu failed=%lu "
	    "sites=%zu\n", c.seed, clients, secs, c.ops, c.n2xx, c.n4xx,
	    c.n503, c.n5xx, c.nfail, c.n_ids);
	if (c.n5xx > 0 || c.nfail > 0)
		rc = 1;
	free(w);
	free(th);
	curl_global_cleanup();
	return rc;
}

/* ------------------------------------------------------------------ */
/* check */

static int problems;

static void
churn_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
churn_bad(const char *fmt, ...)
{
	va_list ap;

	/* The first few of each run say enough; count the rest. */
	if (problems++ < 20) {
		va_start(ap, fmt);
		printf("check: ");
		vprintf(fmt, ap);
		printf("\n");
		va_end(ap);
	}
}

static int
churn_tcmp(const void *a, const void *b)
{
	const struct model_tunnel *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static const struct model_tunnel *
churn_tfind(const struct model_tunnel *t, size_t n, uint64_t id)
{
	struct model_tunnel key = { .id = id };

	return bsearch(&key, t, n, sizeof(*t), churn_tcmp);
}

static const struct model_site *
churn_site(const struct model_site *s, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (s[i].id == id)
			return &s[i];
	return NULL;
}

static bool
churn_same(const struct model_tunnel *a, const struct model_tunnel *b)
{
	return a->id == b->id && a->site_a == b->site_a &&
	    a->site_b == b->site_b && strcmp(a->link_a, b->link_a) == 0 &&
	    strcmp(a->link_b, b->link_b) == 0 && a->inner == b->inner &&
	    a->vni == b->vni;
}

static int
churn_u32cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
churn_check_store(const struct model_policy *pol,
    const struct model_crypto *crypto, const struct model_site *sites, size_t ns,
    const struct model_tunnel *t, size_t nt, uint64_t next_id,
    const struct model_epoch *ep, size_t ne)
{
	struct topo_input in = { pol, crypto, sites, ns };
	struct topo_prev prev = { t, nt, next_id };
	struct topo_output *out = NULL;
	struct topo_change chg = { 0 };
	struct model_tunnel *ct = NULL;
	struct model_error err = { 0 };
	uint32_t *v;
	size_t nct = 0;

	/* Every stored tunnel joins two live sites. */
	for (size_t i = 0; i < nt; i++) {
		const struct model_site *a = churn_site(sites, ns, t[i].site_a);
		const struct model_site *b = churn_site(sites, ns, t[i].site_b);

		if (a == NULL || b == NULL)
			churn_bad("tunnel %" PRIu64 " names a missing site "
			    "(%" PRIu64 "-%" PRIu64 ")", t[i].id, t[i].site_a,
			    t[i].site_b);
		else if (a->revoked || b->revoked)
			churn_bad("tunnel %" PRIu64 " names a revoked site",
			    t[i].id);
	}
	/* No /31 or VNI twice. */
	if ((v = calloc(nt + 1, sizeof(*v))) == NULL)
		fatalx("out of memory");
	for (int pass = 0; pass < 2; pass++) {
		size_t n = 0;

		for (size_t i = 0; i < nt; i++)
			if (pass == 0 || t[i].vni != 0)
				v[n++] = pass == 0 ? t[i].inner : t[i].vni;
		qsort(v, n, sizeof(*v), churn_u32cmp);
		for (size_t i = 1; i < n; i++)
			if (v[i] == v[i - 1])
				churn_bad("%s %u is used by two tunnels",
				    pass == 0 ? "/31" : "VNI", v[i]);
	}
	free(v);
	/* Epochs: no SPI twice per receiving address; both directions of
	 * every tunnel have one. */
	for (size_t i = 0; i < ne; i++) {
		for (size_t j = i + 1; j < ne; j++)
			if (ep[i].spi == ep[j].spi &&
			    strcmp(ep[i].recv_address, ep[j].recv_address) == 0)
				churn_bad("SPI %u at %s is used twice",
				    ep[i].spi, ep[i].recv_address);
		if (churn_tfind(t, nt, ep[i].tunnel_id) == NULL)
			churn_bad("epoch of missing tunnel %" PRIu64,
			    ep[i].tunnel_id);
	}
	for (size_t i = 0; i < nt; i++) {
		bool a = false, b = false;

		for (size_t j = 0; j < ne; j++)
			if (ep[j].tunnel_id == t[i].id) {
				a = a || ep[j].sender_site == t[i].site_a;
				b = b || ep[j].sender_site == t[i].site_b;
			}
		if (!a || !b)
			churn_bad("tunnel %" PRIu64 " has no SA epoch from "
			    "site %" PRIu64, t[i].id,
			    a ? t[i].site_b : t[i].site_a);
	}
	/* A fresh compile with the stored tunnels as the previous
	 * allocations must change nothing and give the same tunnels. */
	if (topo_compile(&in, &prev, &out, &chg, &err) == -1) {
		churn_bad("a fresh compile of the stored sites fails: %s",
		    err.message);
		return;
	}
	if (chg.n_added > 0 || chg.n_removed > 0)
		churn_bad("a fresh compile adds %zu tunnel(s) (first %" PRIu64
		    ") and removes %zu (first %" PRIu64 ")", chg.n_added,
		    chg.n_added ? chg.added[0].id : 0, chg.n_removed,
		    chg.n_removed ? chg.removed[0] : 0);
	if (topo_tunnel_list(out, &ct, &nct) == -1)
		fatalx("out of memory");
	if (nct != nt)
		churn_bad("%zu tunnels stored, a fresh compile has %zu", nt,
		    nct);
	for (size_t i = 0; i < nct && i < nt; i++)
		if (!churn_same(&ct[i], &t[i])) {
			churn_bad("stored tunnel %" PRIu64 " differs from the "
			    "fresh compile's %" PRIu64, t[i].id, ct[i].id);
			break;
		}
	printf("check: %zu sites, %zu tunnels, %zu SA epochs, policy %s\n",
	    ns, nt, ne, model_topology_str(pol->topology));
	free(ct);
	topo_change_free(&chg);
	topo_free(out);
}

/* One edge's applied intent (edge_client -t) against the store. */
static void
churn_check_edge(uint64_t site, const char *path,
    const struct model_tunnel *t, size_t nt)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t seen = 0, want = 0;

	if (f == NULL) {
		churn_bad("edge %" PRIu64 ": no intent file %s", site, path);
		return;
	}
	for (size_t i = 0; i < nt; i++)
		if (t[i].site_a == site || t[i].site_b == site)
			want++;
	while (fgets(line, sizeof(line), f) != NULL) {
		uint64_t id, peer;
		unsigned a, b, c, d, vni;
		const struct model_tunnel *st;
		uint32_t inner;

		if (sscanf(line, "tunnel %" SCNu64 " peer %" SCNu64
		    " inner %u.%u.%u.%u vni %u", &id, &peer, &a, &b, &c, &d,
		    &vni) != 7)
			continue;
		seen++;
		inner = (uint32_t)(a << 24 | b << 16 | c << 8 | d) & ~1u;
		if ((st = churn_tfind(t, nt, id)) == NULL)
			churn_bad("edge %" PRIu64 " holds tunnel %" PRIu64
			    " that is not stored", site, id);
		else if ((st->site_a != site || st->site_b != peer) &&
		    (st->site_b != site || st->site_a != peer))
			churn_bad("edge %" PRIu64 ": tunnel %" PRIu64 " has "
			    "peer %" PRIu64 ", stored %" PRIu64 "-%" PRIu64,
			    site, id, peer, st->site_a, st->site_b);
		else if (st->inner != inner || st->vni != vni)
			churn_bad("edge %" PRIu64 ": tunnel %" PRIu64 " /31 or "
			    "VNI differs from the store", site, id);
	}
	fclose(f);
	if (seen != want)
		churn_bad("edge %" PRIu64 " holds %zu tunnels, the store has "
		    "%zu for it", site, seen, want);
}

static int
churn_check(int argc, char **argv)
{
	struct store_opts o = { .path = argv[2] };
	struct model_policy pol;
	struct model_crypto cr;
	struct model_site *sites = NULL;
	struct model_tunnel *t = NULL;
	struct model_epoch *ep = NULL;
	struct model_error err = { 0 };
	struct store *st;
	size_t ns = 0, nt = 0, ne = 0;
	uint64_t next_id = 0;

	if (store_open(&o, &st, &err) == -1)
		fatalx("%s: %s", argv[2], err.message);
	/* One read transaction: a consistent snapshot of everything. */
	if (store_begin(st, &err) == -1 ||
	    store_policy_get(st, &pol, &err) == -1 ||
	    store_crypto_get(st, &cr, &err) == -1 ||
	    store_site_list(st, &sites, &ns, &err) == -1 ||
	    store_tunnel_list(st, &t, &nt, &next_id, &err) == -1 ||
	    store_epoch_list(st, 0, &ep, &ne, &err) == -1)
		fatalx("reading the store: %s", err.message);
	store_rollback(st);
	store_close(st);
	churn_check_store(&pol, &cr, sites, ns, t, nt, next_id, ep, ne);
	for (int i = 3; i < argc; i++) {
		char *colon = strchr(argv[i], ':');
		uint64_t site;

		if (colon == NULL)
			fatalx("SITE:FILE expected, not %s", argv[i]);
		*colon = '\0';
		if (util_parse_u64(argv[i], 1, INT64_MAX, &site) == -1)
			fatalx("bad site id %s", argv[i]);
		churn_check_edge(site, colon + 1, t, nt);
	}
	free(sites);
	free(t);
	free(ep);
	if (problems > 0) {
		printf("check: %d problem(s)\n", problems);
		return 1;
	}
	printf("check: consistent\n");
	return 0;
}

static int
churn_steal(char **argv)
{
	struct store_opts o = { .path = argv[2] };
	struct model_tunnel *t = NULL;
	struct model_error err = { 0 };
	struct store *st;
	uint64_t next_id = 0, id;
	size_t nt = 0;

	if (store_open(&o, &st, &err) == -1)
		fatalx("%s: %s", argv[2], err.message);
	if (store_begin(st, &err) == -1 ||
	    store_tunnel_list(st, &t, &nt, &next_id, &err) == -1 || nt == 0)
		fatalx("reading tunnels: %s", nt == 0 ? "none" : err.message);
	id = t[nt - 1].id;
	if (store_tunnel_apply(st, &id, 1, NULL, 0, next_id, &err) == -1 ||
	    store_commit(st, &err) == -1)
		fatalx("removing tunnel %" PRIu64 ": %s", id, err.message);
	store_close(st);
	free(t);
	printf("steal: removed tunnel %" PRIu64 "\n", id);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("churn", true);
	if (argc >= 3 && strcmp(argv[1], "load") == 0)
		return churn_load(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "check") == 0)
		return churn_check(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "steal") == 0)
		return churn_steal(argv);
	fprintf(stderr, "usage: churn load|steal|check ...\n");
	return 2;
}
