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
 * Each edge does per delta what an agent should: apply it in place
 * (msg_intent_apply_delta) and rehash from kept per-tunnel digests
 * (pbconv_intent_hash_update), so the figures measure the controller and
 * the sessions, not a thousand full rehashes in this one process.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define LOAD_BATCH 100

struct sim {
	struct load *ld;
	struct rpc_client *cli;
	uint64_t site;
	struct msg_intent intent;
	bool have;
	uint8_t hash[MSG_HASH_LEN];
	struct pbconv_digest *dig;  /* per tunnel, as an agent would keep */
	size_t n_dig;
	uint64_t mark_version;      /* version before the change */
	uint64_t acked_ns;          /* ack of the next version; 0 = not yet */
	uint64_t bytes_after;       /* received after the change */
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

/* Key + CSR; key PEM written to keypath; CSR DER returned. */
static int
load_keygen(const char *keypath, uint8_t **csr, size_t *csr_len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	FILE *f;
	int len;

	if (k == NULL || req == NULL || X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) == 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0)
		return -1;
	*csr = der;
	*csr_len = (size_t)len;
	if ((f = fopen(keypath, "w")) == NULL ||
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	fclose(f);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return 0;
}

static void
load_send_ack(struct rpc_stream *s, struct sim *e)
{
	struct msg_edge_message m;
	uint8_t *buf;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.version = e->intent.version;
	m.u.ack.ok = true;
	m.u.ack.has_convergence_hash = true;
	memcpy(m.u.ack.convergence_hash, e->hash, MSG_HASH_LEN);
	if (pbconv_encode_edge_message(&m, &buf, &len) == 0) {
		rpc_stream_send(s, buf, len);
		free(buf);
	}
	if (e->ld->measuring && e->acked_ns == 0 &&
	    e->intent.version > e->mark_version)
		e->acked_ns = util_mono_ns();
}

static int
load_on_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct sim *e = arg;
	struct msg_edge_message m;
	uint8_t *buf;
	size_t len;

	(void)peer;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_HELLO;
	m.u.hello.site_id = e->site;
	m.u.hello.applied_version = e->have ? e->intent.version : 0;
	m.u.hello.has_convergence_hash = e->have;
	memcpy(m.u.hello.convergence_hash, e->hash, MSG_HASH_LEN);
	snprintf(m.u.hello.software_version,
	    sizeof(m.u.hello.software_version), "ctl_load");
	m.u.hello.backend = MSG_BACKEND_NULL;
	if (pbconv_encode_edge_message(&m, &buf, &len) == 0) {
		rpc_stream_send(s, buf, len);
		free(buf);
	}
	return 0;
}

static void
load_on_message(struct rpc_stream *s, const uint8_t *p, size_t len, void *arg)
{
	struct sim *e = arg;
	struct msg_controller_message m;
	char err[PBCONV_ERR_LEN];
	uint64_t t0 = util_mono_ns();

	if (e->ld->measuring)
		e->bytes_after += len;
	if (pbconv_decode_controller_message(p, len, &m, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "site %" PRIu64 ": bad message: %s\n", e->site,
		    err);
		return;
	}
	if (m.kind == MSG_CONTROLLER_SNAPSHOT) {
		msg_intent_free(&e->intent);
		e->intent = m.u.snapshot;
		memset(&m.u.snapshot, 0, sizeof(m.u.snapshot));
		e->have = true;
		pbconv_intent_hash_update(&e->intent, NULL, &e->dig,
		    &e->n_dig, e->hash);
		load_send_ack(s, e);
	} else if (m.kind == MSG_CONTROLLER_DELTA) {
		/* Only the delta's tunnels are digested; the rest of the
		 * hash comes from the digests kept since the snapshot. */
		if (e->have && msg_intent_apply_delta(&e->intent, &m.u.delta,
		    err, sizeof(err)) == 0) {
			if (pbconv_intent_hash_update(&e->intent, &m.u.delta,
			    &e->dig, &e->n_dig, e->hash) == -1)
				pbconv_intent_hash_update(&e->intent, NULL,
				    &e->dig, &e->n_dig, e->hash);
			load_send_ack(s, e);
		} else {
			fprintf(stderr, "site %" PRIu64 ": delta: %s\n",
			    e->site, err);
		}
	}
	msg_controller_message_free(&m);
	if (e->ld->measuring)
		e->work_ns += util_mono_ns() - t0;
}

static void
load_on_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
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

static const struct rpc_stream_handlers load_handlers = {
	.on_open = load_on_open,
	.on_message = load_on_message,
	.on_close = load_on_close,
};

/* Dispatch every client for up to ms milliseconds. */
static void
load_pump(struct load *ld, struct pollfd *pfd, int ms)
{
	if (poll(pfd, ld->n_open, ms) <= 0)
		return;
	for (size_t i = 0; i < ld->n_open; i++)
		if (pfd[i].revents & POLLIN)
			rpc_client_dispatch(ld->sims[i].cli);
}

int
main(int argc, char **argv)
{
	struct load ld;
	struct rpc_client_opts eo;
	struct rpc_client *enroll;
	struct pollfd *pfd;
	struct rusage ru;
	uint64_t n, t, *lat, bytes = 0, work = 0;
	size_t done;
	FILE *f;

	if (argc != 8 || util_parse_u64(argv[7], 3, 100000, &n) == -1) {
		fprintf(stderr, "usage: ctl_load URL TOKEN_FILE ENROLL SESSION "
		    "CA DIR N\n");
		return 2;
	}
	log_init("ctl_load", true);
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

	/* Sites: 2 hubs, then spokes, each with one inet link. */
	t = util_mono_ns();
	for (size_t i = 0; i < ld.n; i++) {
		char body[512];
		json_t *j;

		snprintf(body, sizeof(body), "{\"name\":\"s%zu\",\"role\":\"%s\","
		    "\"links\":[{\"name\":\"inet\",\"address\":\"10.%zu.%zu.1\"}]}",
		    i, i < 2 ? "hub" : "spoke", (i >> 8) & 255, i & 255);
		if ((j = load_post(&ld, "/api/v1/sites", body)) == NULL)
			return 1;
		ld.sims[i].site = (uint64_t)json_integer_value(json_object_get(j,
		    "id"));
		ld.sims[i].ld = &ld;
		json_decref(j);
	}
	printf("sites created: %zu in %.1f s\n", ld.n,
	    (double)(util_mono_ns() - t) / 1e9);

	/* Enrollment: one server-auth TLS channel for all the unary calls. */
	t = util_mono_ns();
	memset(&eo, 0, sizeof(eo));
	eo.target = argv[3];
	eo.tls.ca_file = argv[5];
	eo.server_name = "localhost";
	if ((enroll = rpc_client_new(&eo)) == NULL)
		return 1;
	for (size_t i = 0; i < ld.n; i++) {
		struct msg_enroll_request rq;
		struct msg_enroll_response rs;
		char path[512], tokpath[64], err[PBCONV_ERR_LEN], msg[256];
		uint8_t *csr, *req, *resp = NULL;
		size_t csr_len, req_len, resp_len = 0;
		json_t *j;
		int code = 0;
		FILE *cf;
		X509 *x;
		const unsigned char *pp;

		snprintf(tokpath, sizeof(tokpath), "/api/v1/sites/%" PRIu64
		    "/token", ld.sims[i].site);
		if ((j = load_post(&ld, tokpath, NULL)) == NULL)
			return 1;
		memset(&rq, 0, sizeof(rq));
		snprintf(rq.token, sizeof(rq.token), "%s",
		    json_string_value(json_object_get(j, "token")));
		json_decref(j);
		snprintf(path, sizeof(path), "%s/%zu.key", argv[6], i);
		if (load_keygen(path, &csr, &csr_len) == -1)
			return 1;
		rq.csr_der.data = csr;
		rq.csr_der.len = csr_len;
		snprintf(rq.software_version, sizeof(rq.software_version),
		    "ctl_load");
		if (pbconv_encode_enroll_request(&rq, &req, &req_len) == -1 ||
		    rpc_client_unary(enroll, "/meshwan.v1.Enrollment/Enroll",
		    req, req_len, 30000, &code, &resp, &resp_len, msg,
		    sizeof(msg)) == -1 || code != 0 ||
		    pbconv_decode_enroll_response(resp, resp_len, &rs, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "enroll %zu: code %d %s\n", i, code, msg);
			return 1;
		}
		OPENSSL_free(csr);
		free(req);
		free(resp);
		pp = rs.certificate_der.data;
		x = d2i_X509(NULL, &pp, (long)rs.certificate_der.len);
		snprintf(path, sizeof(path), "%s/%zu.crt", argv[6], i);
		if (x == NULL || (cf = fopen(path, "w")) == NULL ||
		    PEM_write_X509(cf, x) != 1)
			return 1;
		fclose(cf);
		X509_free(x);
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
			struct rpc_client_opts o;
			struct rpc_stream_opts so = { .reconnect = true };
			char crt[512], key[512];

			snprintf(crt, sizeof(crt), "%s/%zu.crt", argv[6], i);
			snprintf(key, sizeof(key), "%s/%zu.key", argv[6], i);
			memset(&o, 0, sizeof(o));
			o.target = argv[4];
			o.tls.ca_file = argv[5];
			o.tls.cert_file = crt;
			o.tls.key_file = key;
			o.server_name = "localhost";
			if ((ld.sims[i].cli = rpc_client_new(&o)) == NULL ||
			    rpc_client_stream_open(ld.sims[i].cli,
			    "/meshwan.v1.Edge/Session", &load_handlers,
			    &ld.sims[i], &so) == -1)
				return 1;
			pfd[i].fd = rpc_client_fd(ld.sims[i].cli);
			pfd[i].events = POLLIN;
		}
		ld.n_open = end;
		for (;;) {
			size_t ready = 0;

			load_pump(&ld, pfd, 100);
			for (size_t i = 0; i < end; i++)
				ready += ld.sims[i].have;
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

	/* The change: one more hub; every edge gets a new version. */
	for (size_t i = 0; i < ld.n; i++)
		ld.sims[i].mark_version = ld.sims[i].intent.version;
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
		bytes += ld.sims[i].bytes_after;
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

	ld.stopping = true;
	for (size_t i = 0; i < ld.n; i++) {
		rpc_client_free(ld.sims[i].cli);
		msg_intent_free(&ld.sims[i].intent);
		free(ld.sims[i].dig);
	}
	free(ld.sims);
	free(pfd);
	free(lat);
	curl_easy_cleanup(ld.curl);
	curl_global_cleanup();
	return done == ld.n ? 0 : 1;
}
