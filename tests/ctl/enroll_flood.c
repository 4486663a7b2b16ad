/*
 * enroll_flood.c — does a flood of bad Enroll calls delay a connected
 * edge?  (tests/ctl/enroll_flood.sh runs it.)
 *
 *   enroll_flood URL ADMIN_TOKEN_FILE ENROLL_TARGET GRPC_TARGET CA_PEM
 *                CERT_PEM KEY_PEM SITE PEER_SITE CSR_DER
 *
 * One process, two threads:
 *  - the edge (main thread): a Session as SITE that applies and acks every
 *    snapshot and delta, and a probe: PATCH the address of PEER_SITE's
 *    link "inet" through REST, and time until SITE's delta arrives (it is
 *    acked at once).  That is the path an operator's change takes to an
 *    edge: REST thread, the controller's event loop, the stream.
 *  - the flood (second thread, its own gRPC client): Enroll calls at
 *    FLOOD_RATE per second (at most FLOOD_INFLIGHT in flight), each with
 *    an unknown token and a valid CSR.  2,000/s is more than the old
 *    controller could answer (~1,100-1,400/s, its event loop doing the
 *    CSR and SQL work), and far below what the rpc layer takes.
 *
 * Probes run alone (baseline) and under the flood, in turns.  Prints
 * "baseline p50=.. p95=.. max=.." and "flood ..." in ms, the flood's
 * calls/s and its answers by status code.  The shell decides pass/fail.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define ROUNDS 4                 /* baseline and flood take turns */
#define PROBES 10                /* per round and phase */
#define PROBE_GAP_MS 50
#define PROBE_TIMEOUT_MS 10000
#define FLOOD_INFLIGHT 256
#define FLOOD_RATE 2000          /* calls/s: above what the old loop took */
#define FLOOD_CODES 17

struct flood {
	const char *target, *ca;
	uint8_t *req;
	size_t req_len;
	atomic_bool stop;
	atomic_bool active;          /* firing; in-flight calls still end */
	atomic_uint_fast64_t calls;
	atomic_uint_fast64_t codes[FLOOD_CODES];
	struct rpc_client *cli;
	unsigned inflight;
	double credit;               /* calls the pace allows now */
};

struct edge {
	struct rpc_client *cli;
	uint64_t site;
	struct msg_intent intent;
	bool have;
	uint64_t deltas;            /* deltas applied */
	uint64_t delta_at_ms;       /* when the last one arrived */
	bool failed;
};

static int
slurp(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || (*buf = malloc((size_t)n + 1)) ==
	    NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	(*buf)[n] = 0;
	fclose(f);
	*len = (size_t)n;
	return 0;
}

/* ---- the flood ------------------------------------------------------ */

static void flood_fire(struct flood *fl);

static void
flood_done(int code, const char *msg, const uint8_t *resp, size_t len,
    void *arg)
{
	struct flood *fl = arg;

	(void)msg;
	(void)resp;
	(void)len;
	fl->inflight--;
	atomic_fetch_add(&fl->calls, 1);
	atomic_fetch_add(&fl->codes[code >= 0 && code < FLOOD_CODES ? code :
	    RPC_UNKNOWN], 1);
}

/* Start as many calls as the pace and the in-flight cap allow. */
static void
flood_fire(struct flood *fl)
{
	while (fl->credit >= 1 && fl->inflight < FLOOD_INFLIGHT &&
	    rpc_client_unary_async(fl->cli, "/meshwan.v1.Enrollment/Enroll",
	    fl->req, fl->req_len, 10000, flood_done, fl) == 0) {
		fl->inflight++;
		fl->credit -= 1;
	}
}

static void *
flood_main(void *arg)
{
	struct flood *fl = arg;
	struct rpc_client_opts o;
	uint64_t last;

	memset(&o, 0, sizeof(o));
	o.target = fl->target;
	o.tls.ca_file = fl->ca;
	o.server_name = "localhost";
	if ((fl->cli = rpc_client_new(&o)) == NULL)
		return NULL;
	last = util_mono_ns();
	while (!atomic_load(&fl->stop) || fl->inflight > 0) {
		struct pollfd p = { .fd = rpc_client_fd(fl->cli),
			.events = POLLIN };
		uint64_t now;

		if (poll(&p, 1, 2) > 0)
			rpc_client_dispatch(fl->cli);
		now = util_mono_ns();
		fl->credit += (double)(now - last) * FLOOD_RATE / 1e9;
		if (fl->credit > FLOOD_RATE / 50.0) /* no bursts after a stall */
			fl->credit = FLOOD_RATE / 50.0;
		last = now;
		if (atomic_load(&fl->active))
			flood_fire(fl);
		else
			fl->credit = 0;
	}
	rpc_client_free(fl->cli);
	return NULL;
}

/* ---- the edge ------------------------------------------------------- */

static void
edge_send(struct rpc_stream *s, const struct msg_edge_message *m)
{
	uint8_t *buf;
	size_t len;

	if (pbconv_encode_edge_message(m, &buf, &len) == 0) {
		(void)rpc_stream_send(s, buf, len);
		free(buf);
	}
}

static void
edge_ack(struct edge *e, struct rpc_stream *s)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.version = e->intent.version;
	m.u.ack.ok = true;
	m.u.ack.has_convergence_hash = true;
	pbconv_intent_hash(&e->intent, m.u.ack.convergence_hash);
	edge_send(s, &m);
}

static int
edge_on_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct edge *e = arg;
	struct msg_edge_message m;

	(void)peer;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_HELLO;
	m.u.hello.site_id = e->site;
	snprintf(m.u.hello.software_version,
	    sizeof(m.u.hello.software_version), "enroll_flood");
	m.u.hello.backend = MSG_BACKEND_NULL;
	m.u.hello.features = MSG_FEATURE_GRE | MSG_FEATURE_VXLAN |
	    MSG_FEATURE_AES_GCM_128 | MSG_FEATURE_AES_GCM_256 |
	    MSG_FEATURE_ESN | MSG_FEATURE_NAT_T;
	e->have = false;
	edge_send(s, &m);
	return 0;
}

static void
edge_on_message(struct rpc_stream *s, const uint8_t *buf, size_t len,
    void *arg)
{
	struct edge *e = arg;
	struct msg_controller_message m;
	char err[PBCONV_ERR_LEN];

	if (pbconv_decode_controller_message(buf, len, &m, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "bad message: %s\n", err);
		e->failed = true;
		return;
	}
	if (m.kind == MSG_CONTROLLER_SNAPSHOT) {
		msg_intent_free(&e->intent);
		e->intent = m.u.snapshot;
		memset(&m.u.snapshot, 0, sizeof(m.u.snapshot));
		e->have = true;
		edge_ack(e, s);
	} else if (m.kind == MSG_CONTROLLER_DELTA) {
		if (!e->have || msg_intent_apply_delta(&e->intent, &m.u.delta,
		    err, sizeof(err)) == -1) {
			fprintf(stderr, "delta refused: %s\n", err);
			e->failed = true;
		} else {
			e->deltas++;
			e->delta_at_ms = util_mono_ms();
			edge_ack(e, s);
		}
	}
	msg_controller_message_free(&m);
}

static void
edge_on_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	(void)s;
	(void)arg;
	fprintf(stderr, "session closed: %s code=%d %s\n",
	    rpc_close_reason_str(why), code, msg ? msg : "");
}

/* Run the edge's callbacks until pred holds or the deadline passes. */
static bool
edge_wait(struct edge *e, uint64_t until_ms, uint64_t want_deltas,
    bool want_intent)
{
	while (util_mono_ms() < until_ms && !e->failed) {
		struct pollfd p = { .fd = rpc_client_fd(e->cli),
			.events = POLLIN };

		if ((want_intent && e->have && want_deltas == 0) ||
		    (want_deltas > 0 && e->deltas >= want_deltas))
			return true;
		if (poll(&p, 1, 5) > 0)
			rpc_client_dispatch(e->cli);
	}
	return (want_intent && e->have && want_deltas == 0) ||
	    (want_deltas > 0 && e->deltas >= want_deltas);
}

static size_t
curl_sink(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

/* One probe: change the peer's link, time until the delta is here. */
static int
probe(struct edge *e, CURL *c, const char *url, struct curl_slist *h,
    unsigned i, double *ms)
{
	char body[96];
	uint64_t t0, want = e->deltas + 1;
	long status = 0;

	snprintf(body, sizeof(body), "{\"address\":\"198.51.100.%u\"}",
	    10 + i % 200);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
	t0 = util_mono_ns();
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) !=
	    CURLE_OK || status != 200) {
		fprintf(stderr, "PATCH failed: HTTP %ld\n", status);
		return -1;
	}
	if (!edge_wait(e, util_mono_ms() + PROBE_TIMEOUT_MS, want, false)) {
		fprintf(stderr, "no delta within %d ms\n", PROBE_TIMEOUT_MS);
		return -1;
	}
	*ms = (double)(e->delta_at_ms * 1000000ull - t0) / 1e6;
	if (*ms < 0)
		*ms = 0;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
report(const char *what, double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%s p50=%.1f p95=%.1f max=%.1f ms (%zu probes)\n", what,
	    v[n / 2], v[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1],
	    v[n - 1], n);
}

/* PROBES probes every PROBE_GAP_MS, the edge's callbacks running in
 * between. */
static int
probes(struct edge *e, CURL *c, const char *url, struct curl_slist *h,
    unsigned base, double *v)
{
	for (unsigned i = 0; i < PROBES; i++) {
		if (probe(e, c, url, h, base + i, &v[i]) == -1)
			return -1;
		(void)edge_wait(e, util_mono_ms() + PROBE_GAP_MS, UINT64_MAX,
		    false);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct rpc_stream_handlers eh = {
		.on_open = edge_on_open,
		.on_message = edge_on_message,
		.on_close = edge_on_close,
	};
	struct rpc_stream_opts so = { .reconnect = true };
	struct rpc_client_opts o;
	struct msg_enroll_request rq;
	struct flood fl;
	struct edge e;
	struct curl_slist *h = NULL;
	double base[ROUNDS * PROBES], under[ROUNDS * PROBES];
	uint64_t flood_calls = 0;
	unsigned done_rounds = 0;
	char url[512], auth[160], *tok = NULL;
	uint8_t *csr = NULL, *admin = NULL;
	size_t csr_len = 0, admin_len = 0;
	uint64_t peer, t0, secs;
	pthread_t th;
	CURL *c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("enroll_flood", true);
	if (argc != 11 || util_parse_u64(argv[9], 1, INT64_MAX, &peer) == -1 ||
	    slurp(argv[2], &admin, &admin_len) == -1 ||
	    slurp(argv[10], &csr, &csr_len) == -1) {
		fprintf(stderr, "usage: enroll_flood URL ADMIN_TOKEN_FILE "
		    "ENROLL_TARGET GRPC_TARGET CA CERT KEY SITE PEER_SITE "
		    "CSR_DER\n");
		return 2;
	}
	tok = (char *)admin;
	tok[strcspn(tok, "\r\n")] = '\0';
	memset(&e, 0, sizeof(e));
	if (util_parse_u64(argv[8], 1, INT64_MAX, &e.site) == -1)
		return 2;

	/* A well-formed request that no token on the controller matches. */
	memset(&rq, 0, sizeof(rq));
	snprintf(rq.token, sizeof(rq.token), "mwe_%064d", 0);
	rq.csr_der.data = csr;
	rq.csr_der.len = csr_len;
	snprintf(rq.software_version, sizeof(rq.software_version), "flood");
	memset(&fl, 0, sizeof(fl));
	fl.target = argv[3];
	fl.ca = argv[5];
	if (pbconv_encode_enroll_request(&rq, &fl.req, &fl.req_len) == -1)
		return 1;

	memset(&o, 0, sizeof(o));
	o.target = argv[4];
	o.tls.ca_file = argv[5];
	o.tls.cert_file = argv[6];
	o.tls.key_file = argv[7];
	o.server_name = "localhost";
	if ((e.cli = rpc_client_new(&o)) == NULL ||
	    rpc_client_stream_open(e.cli, "/meshwan.v1.Edge/Session", &eh, &e,
	    &so) == -1)
		return 1;
	if (!edge_wait(&e, util_mono_ms() + 10000, 0, true)) {
		fprintf(stderr, "no intent within 10 s\n");
		return 1;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((c = curl_easy_init()) == NULL)
		return 1;
	snprintf(url, sizeof(url), "%s/api/v1/sites/%" PRIu64 "/links/inet",
	    argv[1], peer);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");

	/*
	 * Baseline and flood take turns, so that whatever else loads the
	 * machine weighs on both alike.
	 */
	if (pthread_create(&th, NULL, flood_main, &fl) != 0)
		return 1;
	secs = 0;
	for (unsigned r = 0; r < ROUNDS; r++) {
		uint64_t calls0;

		if (probes(&e, c, url, h, r * 2 * PROBES,
		    &base[r * PROBES]) == -1)
			break;
		atomic_store(&fl.active, true);
		/* Let the flood reach its pace before measuring. */
		(void)edge_wait(&e, util_mono_ms() + 300, UINT64_MAX, false);
		calls0 = atomic_load(&fl.calls);
		t0 = util_mono_ms();
		if (probes(&e, c, url, h, r * 2 * PROBES + PROBES,
		    &under[r * PROBES]) == -1)
			break;
		atomic_store(&fl.active, false);
		secs += util_mono_ms() - t0;
		flood_calls += atomic_load(&fl.calls) - calls0;
		/* Let the calls in flight end. */
		(void)edge_wait(&e, util_mono_ms() + 300, UINT64_MAX, false);
		done_rounds++;
	}
	atomic_store(&fl.active, false);
	atomic_store(&fl.stop, true);
	pthread_join(th, NULL);
	if (done_rounds < ROUNDS)
		return 1;
	report("baseline", base, ROUNDS * PROBES);
	report("flood", under, ROUNDS * PROBES);
	printf("flood rate=%.0f calls/s over %.1f s;", (double)flood_calls *
	    1000.0 / (double)(secs ? secs : 1), (double)secs / 1000.0);
	for (int k = 0; k < FLOOD_CODES; k++)
		if (atomic_load(&fl.codes[k]) > 0)
			printf(" code%d=%" PRIuFAST64, k,
			    atomic_load(&fl.codes[k]));
	printf("\n");

	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	curl_global_cleanup();
	rpc_client_free(e.cli);
	msg_intent_free(&e.intent);
	free(fl.req);
	free(csr);
	free(admin);
	return e.failed ? 1 : 0;
}
