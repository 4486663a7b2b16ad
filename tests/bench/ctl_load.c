/*
 * ctl_load.c — load generator for meshwan-controller's edge sessions:
 * many simulated edges with the "null" data plane idea (they apply intent
 * in memory and ack it, nothing else) in one process.
 *
 *   ctl_load URL ADMIN_TOKEN_FILE ENROLL_TARGET SESSION_TARGET CA_PEM DIR N
 *
 * Creates N sites through the REST API (2 hubs, the rest spokes; the
 * policy is whatever the controller runs), enrolls each with a fresh key
 * and CSR, opens N mutual-TLS Session streams (one connection per edge:
 * each has its own certificate), waits until every edge has acked its
 * first intent, then adds one hub site through REST and measures, per
 * edge, the time from the REST call to the edge's ack of its next
 * version.  Prints setup times, median/p99/max of that latency, bytes
 * received by all edges for the change, the time the edges spent handling
 * it, and the process' peak RSS.
 *
 * Each edge runs edge-agent's session library, as an agent does: a delta
 * is applied in place and rehashed from kept per-tunnel digests, so the
 * figures measure the controller and the sessions, not a thousand full
 * rehashes in this one process.  Enrollment is edge-agent's too.
 *
 * Scale runs (tests/bench/scale_bench.sh) set, in the environment:
 *   CTL_LOAD_HUBS=H       H hubs instead of 2
 *   CTL_LOAD_REST_ONLY=1  stop after creating the sites
 *   CTL_LOAD_CONNECT=M    enroll and connect only the first M sites
 *                         (the hubs first), the rest stay provisioned
 *   CTL_LOAD_CTLD_PID=P   also report the controller's RSS and CPU (from
 *                         /proc/P) after connecting, and the CPU it spends
 *                         per edge status (one status from every edge,
 *                         against an idle window of the same length)
 * and every run prints the median POST /sites time over the 50 requests
 * before 1,000, 5,000 and 10,000 sites (and before N).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "edge-agent/enroll.h"
#include "edge-agent/session.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/rpc.h"

#define LOAD_BATCH 100

struct sim {
	struct load *ld;
	struct session *sess;
	uint64_t site;
	uint64_t mark_version;      /* version before the change */
	uint64_t mark_bytes;        /* bytes received before the change */
	uint64_t acked_ns;          /* ack of the next version; 0 = not yet */
	uint64_t work_ns;           /* handling messages after the change */
};

struct load {
	const char *url;
	char token[128];
	CURL *curl;
	struct sim *sims;
	size_t n;
	size_t n_open;              /* clients created so far */
	bool measuring;
	bool stopping;
	uint64_t t0;
};

struct buf {
	char *p;
	size_t n;
};

static size_t
load_curl_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->n + size * nmemb + 1);

	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, ptr, size * nmemb);
	b->n += size * nmemb;
	b->p[b->n] = '\0';
	return size * nmemb;
}

/* POST path with an optional JSON body; returns the parsed reply. */
static json_t *
load_post(struct load *ld, const char *path, const char *body)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[512], auth[200];
	long code = 0;
	json_t *j = NULL;

	snprintf(url, sizeof(url), "%s%s", ld->url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ld->token);
	h = curl_slist_append(h, auth);
	if (body)
		h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_reset(ld->curl);
	curl_easy_setopt(ld->curl, CURLOPT_URL, url);
	curl_easy_setopt(ld->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ld->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(ld->curl, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(ld->curl, CURLOPT_WRITEFUNCTION, load_curl_write);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEDATA, &b);
	/* 503 busy: the controller is writing a large change; retry as a
	 * client should (at most 60 s). */
	for (int tries = 0; tries < 60; tries++) {
		free(b.p);
		b.p = NULL;
		b.n = 0;
		if (curl_easy_perform(ld->curl) != CURLE_OK)
			break;
		curl_easy_getinfo(ld->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code != 503)
			break;
		sleep(1);
	}
	if (code != 0) {
		if (code == 200 || code == 201)
			j = json_loads(b.p ? b.p : "", 0, NULL);
		else
			fprintf(stderr, "POST %s: %ld %s\n", path, code,
			    b.p ? b.p : "");
	}
	curl_slist_free_all(h);
	free(b.p);
	return j;
}

/* The next version is about to be acked. */
static int
load_on_intent(struct session *s, const struct msg_intent *in,
    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
    char *reason, size_t reasonsz, void *arg)
{
	struct sim *e = arg;

	(void)s;
	(void)d;
	(void)hash;
	(void)reason;
	(void)reasonsz;
	if (e->ld->measuring && e->acked_ns == 0 &&
	    in->version > e->mark_version)
		e->acked_ns = util_mono_ns();
	return 0;
}

static void
load_on_close(struct session *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct sim *e = arg;

	(void)s;
	(void)why;
	if (code != 0 && !e->ld->stopping)
		fprintf(stderr, "site %" PRIu64 ": closed %d %s\n", e->site, code,
		    msg ? msg : "");
	/* The stream reconnects (with a new hello) on its own. */
}

static const struct session_handlers load_handlers = {
	.on_intent = load_on_intent,
	.on_close = load_on_close,
};

static uint64_t
load_version(const struct sim *e)
{
	const struct msg_intent *in = session_intent(e->sess);

	return in ? in->version : 0;
}

/* Median of the POST times v[from, to) in ms (v is reordered). */
static double
load_post_median(uint64_t *v, size_t from, size_t to)
{
	qsort(v + from, to - from, sizeof(*v), util_cmp_u64);
	return (double)v[from + (to - from) / 2] / 1e6;
}

/* The controller's resident set (KiB) and CPU time (utime + stime, in
 * clock ticks) from /proc/PID; 0 when unreadable. */
static void
load_proc(long pid, uint64_t *rss_kib, uint64_t *cpu_ticks)
{
	char path[64], line[512];
	FILE *f;

	*rss_kib = *cpu_ticks = 0;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "VmRSS: %" SCNu64, rss_kib) == 1)
				break;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			/* Fields 14 and 15, counted after the ")" of comm. */
			const char *p = strrchr(line, ')');
			unsigned long long ut = 0, st = 0;

			if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d "
			    "%*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
				*cpu_ticks = ut + st;
		}
		fclose(f);
	}
}

/* meshwan_rpc_total{event="status_received"} from GET /metrics, or -1. */
static int64_t
load_status_count(struct load *ld)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[512], auth[200];
	const char *p;
	int64_t n = -1;

	snprintf(url, sizeof(url), "%s/metrics", ld->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ld->token);
	h = curl_slist_append(h, auth);
	curl_easy_reset(ld->curl);
	curl_easy_setopt(ld->curl, CURLOPT_URL, url);
	curl_easy_setopt(ld->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEFUNCTION, load_curl_write);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(ld->curl) == CURLE_OK && b.p != NULL &&
	    (p = strstr(b.p, "\"status_received\"}")) != NULL)
		n = strtoll(p + strlen("\"status_received\"}"), NULL, 10);
	curl_slist_free_all(h);
	free(b.p);
	return n;
}

/* One status from edge e: its applied version and (up to 16) tunnels up,
 * as an agent reports them. */
static int
load_send_status(struct sim *e)
{
	const struct msg_intent *in = session_intent(e->sess);
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;
	struct msg_tunnel_status ts[16];
	int rc;

	if (in == NULL)
		return -1;
	memset(&m, 0, sizeof(m));
	memset(ts, 0, sizeof(ts));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = in->version;
	st->uptime_seconds = 60;
	st->n_tunnels = in->n_tunnels < 16 ? in->n_tunnels : 16;
	st->tunnels = ts;
	for (size_t i = 0; i < st->n_tunnels; i++) {
		ts[i].tunnel_id = in->tunnels[i].id;
		ts[i].state = MSG_TUNNEL_STATE_UP;
		ts[i].packets_in = ts[i].packets_out = 10;
	}
	rc = session_send(e->sess, &m);
	return rc;
}

/* Dispatch every client for up to ms milliseconds. */
static void
load_pump(struct load *ld, struct pollfd *pfd, int ms)
{
	if (poll(pfd, ld->n_open, ms) <= 0)
		return;
	for (size_t i = 0; i < ld->n_open; i++) {
		uint64_t t0;

		if (!(pfd[i].revents & POLLIN))
			continue;
		t0 = util_mono_ns();
		session_dispatch(ld->sims[i].sess);
		if (ld->measuring)
			ld->sims[i].work_ns += util_mono_ns() - t0;
	}
}

int
main(int argc, char **argv)
{
	struct load ld;
	struct rpc_client *enroll;
	struct pollfd *pfd;
	struct rusage ru;
	uint64_t n, t, *lat, bytes = 0, work = 0, hubs = 2, *post_ns;
	size_t done;
	long ctld_pid = 0;
	const char *env;
	FILE *f;

	if (argc != 8 || util_parse_u64(argv[7], 3, 100000, &n) == -1) {
		fprintf(stderr, "usage: ctl_load URL TOKEN_FILE ENROLL SESSION "
		    "CA DIR N\n");
		return 2;
	}
	log_init("ctl_load", true);
	setvbuf(stdout, NULL, _IOLBF, 0);      /* figures as they come */
	memset(&ld, 0, sizeof(ld));
	ld.url = argv[1];
	if ((f = fopen(argv[2], "r")) == NULL ||
	    fgets(ld.token, sizeof(ld.token), f) == NULL)
		return 1;
	fclose(f);
	ld.token[strcspn(ld.token, "\r\n")] = '\0';
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ld.curl = curl_easy_init();
	ld.n = (size_t)n;
	ld.sims = calloc(ld.n, sizeof(*ld.sims));
	pfd = calloc(ld.n, sizeof(*pfd));
	lat = calloc(ld.n, sizeof(*lat));
	if (ld.curl == NULL || ld.sims == NULL || pfd == NULL || lat == NULL)
		return 1;

	if ((env = getenv("CTL_LOAD_HUBS")) != NULL &&
	    util_parse_u64(env, 1, n, &hubs) == -1)
		return 2;
	if ((env = getenv("CTL_LOAD_CTLD_PID")) != NULL)
		ctld_pid = atol(env);
	if ((post_ns = calloc(ld.n, sizeof(*post_ns))) == NULL)
		return 1;

	/* Sites: the hubs, then spokes, each with one inet link. */
	t = util_mono_ns();
	for (size_t i = 0; i < ld.n; i++) {
		char body[512];
		json_t *j;
		uint64_t t1 = util_mono_ns();

		snprintf(body, sizeof(body), "{\"name\":\"s%zu\",\"role\":\"%s\","
		    "\"links\":[{\"name\":\"inet\",\"address\":\"10.%zu.%zu.1\"}]}",
		    i, i < hubs ? "hub" : "spoke", (i >> 8) & 255, i & 255);
		if ((j = load_post(&ld, "/api/v1/sites", body)) == NULL)
			return 1;
		post_ns[i] = util_mono_ns() - t1;
		ld.sims[i].site = (uint64_t)json_integer_value(json_object_get(j,
		    "id"));
		ld.sims[i].ld = &ld;
		json_decref(j);
	}
	printf("sites created: %zu in %.1f s\n", ld.n,
	    (double)(util_mono_ns() - t) / 1e9);
	{
		static const size_t marks[] = { 1000, 5000, 10000 };
		double ref = 0, m;

		for (size_t k = 0; k <= sizeof(marks) / sizeof(marks[0]); k++) {
			size_t at = k < sizeof(marks) / sizeof(marks[0]) ?
			    marks[k] : ld.n;

			if (at > ld.n || at < 100 ||
			    (k == sizeof(marks) / sizeof(marks[0]) &&
			    (at == 1000 || at == 5000 || at == 10000)))
				continue;
			m = load_post_median(post_ns, at - 50, at);
			if (ref == 0)
				ref = m;
			printf("POST /sites at %zu sites: median %.2f ms "
			    "(ratio to the first mark %.2f)\n", at, m, m / ref);
		}
	}
	free(post_ns);
	if ((env = getenv("CTL_LOAD_CONNECT")) != NULL) {
		uint64_t m;

		if (util_parse_u64(env, 3, 100000, &m) == -1)
			return 2;
		if (m > ld.n)
			m = ld.n;
		printf("connecting the first %" PRIu64 " of %zu sites\n", m,
		    ld.n);
		ld.n = (size_t)m;
	}
	if (getenv("CTL_LOAD_REST_ONLY") != NULL) {
		curl_easy_cleanup(ld.curl);
		curl_global_cleanup();
		free(ld.sims);
		free(pfd);
		free(lat);
		return 0;
	}

	/* Enrollment: one server-auth TLS channel for all the unary calls. */
	t = util_mono_ns();
	if ((enroll = enroll_client(argv[3], argv[5], "localhost")) == NULL)
		return 1;
	for (size_t i = 0; i < ld.n; i++) {
		struct msg_enroll_response rs;
		char path[512], tokpath[64], token[MSG_TOKEN_MAX + 1], msg[256];
		uint8_t *csr;
		size_t csr_len;
		json_t *j;
		int code = 0;

		snprintf(tokpath, sizeof(tokpath), "/api/v1/sites/%" PRIu64
		    "/token", ld.sims[i].site);
		if ((j = load_post(&ld, tokpath, NULL)) == NULL)
			return 1;
		snprintf(token, sizeof(token), "%s",
		    json_string_value(json_object_get(j, "token")));
		json_decref(j);
		snprintf(path, sizeof(path), "%s/%zu.key", argv[6], i);
		if (enroll_keygen(path, &csr, &csr_len) == -1)
			return 1;
		if (enroll_call(enroll, token, csr, csr_len, "ctl_load", 30000,
		    &rs, &code, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "enroll %zu: code %d %s\n", i, code, msg);
			return 1;
		}
		free(csr);
		snprintf(path, sizeof(path), "%s/%zu.crt", argv[6], i);
		if (enroll_write_cert(path, &rs.certificate_der, true) == -1)
			return 1;
		msg_enroll_response_free(&rs);
	}
	rpc_client_free(enroll);
	printf("enrolled: %zu in %.1f s\n", ld.n,
	    (double)(util_mono_ns() - t) / 1e9);

	/*
	 * Sessions: one mTLS connection per edge, opened in batches (a
	 * thousand simultaneous handshakes on two cores would measure the
	 * handshake storm, not the sessions); each batch waits for its first
	 * intents before the next one starts.
	 */
	t = util_mono_ns();
	for (size_t b = 0; b < ld.n; b += LOAD_BATCH) {
		size_t end = b + LOAD_BATCH < ld.n ? b + LOAD_BATCH : ld.n;

		for (size_t i = b; i < end; i++) {
			struct session_opts o;
			char crt[512], key[512];

			snprintf(crt, sizeof(crt), "%s/%zu.crt", argv[6], i);
			snprintf(key, sizeof(key), "%s/%zu.key", argv[6], i);
			memset(&o, 0, sizeof(o));
			o.target = argv[4];
			o.ca_file = argv[5];
			o.cert_file = crt;
			o.key_file = key;
			o.server_name = "localhost";
			o.site_id = ld.sims[i].site;
			o.software_version = "ctl_load";
			o.backend = MSG_BACKEND_NULL;
			o.h = &load_handlers;
			o.arg = &ld.sims[i];
			if ((ld.sims[i].sess = session_new(&o)) == NULL)
				return 1;
			pfd[i].fd = session_fd(ld.sims[i].sess);
			pfd[i].events = POLLIN;
		}
		ld.n_open = end;
		for (;;) {
			size_t ready = 0;

			load_pump(&ld, pfd, 100);
			for (size_t i = 0; i < end; i++)
				ready += session_intent(ld.sims[i].sess) !=
				    NULL;
			if (ready == end)
				break;
			if (util_mono_ns() - t > 600ull * 1000000000) {
				fprintf(stderr, "only %zu of %zu edges got an "
				    "intent\n", ready, end);
				return 1;
			}
		}
	}
	printf("sessions: %zu connected with their first intent in %.1f s\n",
	    ld.n, (double)(util_mono_ns() - t) / 1e9);
	/* Let the acks reach the store. */
	for (int k = 0; k < 10; k++)
		load_pump(&ld, pfd, 50);
	if (ctld_pid > 0) {
		uint64_t rss, cpu;

		load_proc(ctld_pid, &rss, &cpu);
		printf("controller with %zu edges connected: RSS %.1f MiB "
		    "(%.1f KiB per edge), CPU so far %.1f s\n", ld.n,
		    (double)rss / 1024, (double)rss / (double)ld.n,
		    (double)cpu / (double)sysconf(_SC_CLK_TCK));
	}

	/* The change: one more hub; every edge gets a new version. */
	for (size_t i = 0; i < ld.n; i++) {
		ld.sims[i].mark_version = load_version(&ld.sims[i]);
		ld.sims[i].mark_bytes = session_bytes_received(ld.sims[i].sess);
	}
	ld.measuring = true;
	ld.t0 = util_mono_ns();
	{
		json_t *j = load_post(&ld, "/api/v1/sites", "{\"name\":\"newhub\","
		    "\"role\":\"hub\",\"links\":[{\"name\":\"inet\","
		    "\"address\":\"172.16.0.1\"}]}");

		if (j == NULL)
			return 1;
		json_decref(j);
	}
	t = util_mono_ns();
	for (;;) {
		load_pump(&ld, pfd, 20);
		done = 0;
		for (size_t i = 0; i < ld.n; i++)
			done += ld.sims[i].acked_ns != 0;
		if (done == ld.n || util_mono_ns() - ld.t0 > 60ull * 1000000000)
			break;
	}
	for (size_t i = 0; i < ld.n; i++) {
		lat[i] = ld.sims[i].acked_ns ? ld.sims[i].acked_ns - ld.t0 :
		    UINT64_MAX;
		bytes += session_bytes_received(ld.sims[i].sess) -
		    ld.sims[i].mark_bytes;
		work += ld.sims[i].work_ns;
	}
	qsort(lat, ld.n, sizeof(*lat), util_cmp_u64);
	getrusage(RUSAGE_SELF, &ru);
	printf("change: %zu of %zu edges acked the new version; the REST call "
	    "itself took %.1f ms\n", done, ld.n, (double)(t - ld.t0) / 1e6);
	printf("ack latency from the REST call: median %.1f ms, p99 %.1f ms, "
	    "max %.1f ms\n", (double)lat[ld.n / 2] / 1e6,
	    (double)lat[(ld.n * 99 + 99) / 100 - 1] / 1e6,
	    (double)lat[ld.n - 1] / 1e6);
	printf("bytes received by all edges for the change: %" PRIu64
	    " (%.1f per edge)\n", bytes, (double)bytes / (double)ld.n);
	/* The edges' own share of the latency: all of them run here, one
	 * after the other. */
	printf("edge-side work for the change (decode, apply, hash, ack): "
	    "%.1f ms for all edges, %.3f ms per edge\n", (double)work / 1e6,
	    (double)work / 1e6 / (double)ld.n);
	printf("load generator peak RSS: %ld MiB\n", ru.ru_maxrss / 1024);

	/*
	 * Status reports: the controller's CPU for one status from every
	 * edge, against its CPU over an idle window as long (keepalives,
	 * timers: the reference measured in the same run).
	 */
	if (ctld_pid > 0) {
		uint64_t rss, c0, c1, c2, w0, w1, idle_ns;
		int64_t s0, s1 = -1;
		size_t sent = 0;
		double tick = (double)sysconf(_SC_CLK_TCK);

		ld.measuring = false;
		s0 = load_status_count(&ld);
		load_proc(ctld_pid, &rss, &c0);
		w0 = util_mono_ns();
		for (size_t i = 0; i < ld.n; i++) {
			sent += load_send_status(&ld.sims[i]) == 0;
			if (i % 500 == 499)
				load_pump(&ld, pfd, 0);
		}
		while (util_mono_ns() - w0 < 120ull * 1000000000) {
			load_pump(&ld, pfd, 50);
			if ((s1 = load_status_count(&ld)) >= 0 && s0 >= 0 &&
			    (size_t)(s1 - s0) >= sent)
				break;
		}
		w1 = util_mono_ns();
		load_proc(ctld_pid, &rss, &c1);
		idle_ns = w1 - w0;
		while (util_mono_ns() - w1 < idle_ns)
			load_pump(&ld, pfd, 50);
		load_proc(ctld_pid, &rss, &c2);
		printf("status: %zu sent, %" PRId64 " received by the controller "
		    "in %.1f s; controller CPU %.1f ms for them, %.3f ms per "
		    "status (idle window as long: %.1f ms)\n", sent, s1 - s0,
		    (double)idle_ns / 1e9, (double)(c1 - c0) / tick * 1e3,
		    sent > 0 ? ((double)(c1 - c0) - (double)(c2 - c1)) / tick *
		    1e3 / (double)sent : 0.0, (double)(c2 - c1) / tick * 1e3);
		printf("controller RSS at the end: %.1f MiB\n",
		    (double)rss / 1024);
	}

	ld.stopping = true;
	for (size_t i = 0; i < ld.n; i++)
		session_free(ld.sims[i].sess);
	free(ld.sims);
	free(pfd);
	free(lat);
	curl_easy_cleanup(ld.curl);
	curl_global_cleanup();
	return done == ld.n ? 0 : 1;
}
