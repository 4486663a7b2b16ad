/*
 * rpc_test.c — end-to-end tests of proto/rpc with the real contract.
 *
 * One program, several modes (the tests/rpc/rpc_NAME.sh scripts pick one
 * and make the certificates).  The server runs on this thread through the
 * rpc layer's own event-loop API, exactly as a daemon would use it; clients
 * run in the same loop or in child processes (spawned with posix_spawn of
 * this same program) when a test needs to kill or freeze them, or to
 * measure the server's memory alone.  Messages are the protobuf-c types of
 * proto/meshwan/v1/meshwan.proto: this is the wire layer's own test, the
 * daemons themselves use proto/pbconv.
 *
 *   rpc_test roundtrip DIR        unary + stream round trips, refusals of
 *                                 the layer, backpressure, shutdown with
 *                                 streams open
 *   rpc_test mtls DIR             TLS refusals; handlers must never run
 *   rpc_test disconnect DIR       cancel / SIGKILL / SIGSTOP / deadline
 *   rpc_test streams DIR N        N streams from one child, broadcast
 *   rpc_test teardown DIR         a stream whose reader stalls is torn down
 *                                 within the close deadline, queue freed;
 *                                 a stream that never speaks is cancelled
 *                                 at the first-message deadline; an
 *                                 inbound message over max_inbound refused
 *   rpc_test comeback DIR         streams waiting to reopen while their
 *                                 server was away reopen as soon as their
 *                                 channel is connected again
 *   rpc_test serve DIR            server for the Node.js interop client
 *   rpc_test hold DIR PORT SITE   (child) one stream, then idle forever
 *   rpc_test many DIR PORT N      (child) N streams, wait for a broadcast
 *
 * Every wait polls with a deadline; a failed check prints why and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/backoff.h"
#include "lib/log.h"
#include "lib/util.h"
#include "meshwan/v1/meshwan.pb-c.h"
#include "proto/rpc.h"

#define M_ENROLL "/meshwan.v1.Enrollment/Enroll"
#define M_SESSION "/meshwan.v1.Edge/Session"
#define MAX_CLI 16

extern char **environ;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,          \
			    __LINE__, #c);                                     \
			exit(1);                                               \
		}                                                              \
	} while (0)

/* Runs the loop until cond holds; fails the test after ms. */
#define WAIT_FOR(t, cond, ms)                                                  \
	do {                                                                   \
		uint64_t dl_ = util_mono_ms() + (ms);                          \
		while (!(cond)) {                                              \
			if (util_mono_ms() > dl_) {                            \
				fprintf(stderr, "FAIL %s:%d: timed out "       \
				    "after %u ms waiting for %s\n", __FILE__,  \
				    __LINE__, (unsigned)(ms), #cond);          \
				exit(1);                                       \
			}                                                      \
			pump(t, 50);                                           \
		}                                                              \
	} while (0)

struct srv_stream {
	struct rpc_stream *s;
	uint64_t site;
	bool closed;
	enum rpc_close_reason why;
	uint64_t closed_ms;
	uint64_t hello_ms; /* the last hello arrived */
};

struct t {
	const char *dir;
	struct rpc_server *srv;
	struct rpc_client *cli[MAX_CLI];
	int ncli;
	/* server side */
	int enroll_calls, session_opens, hellos, acks, srv_closes;
	int closes_by_reason[5];
	struct rpc_unary *deferred;
	struct rpc_peer last_peer;
	int backpressure_ok, backpressure_enobufs, drained;
	size_t flood_bytes;
	bool flood_done;
	struct srv_stream *ss;  /* by site id */
	size_t nss;
	/* client side */
	int cli_opens, cli_msgs, cli_closes, cli_snapshots, cli_keepalives;
	int cli_last_code;
	enum rpc_close_reason cli_last_why;
	char cli_last_msg[128];
	int udone, ucode;
	char umsg[128];
	Meshwan__V1__EnrollResponse *uresp;
	uint64_t hello_site, hello_version;
	struct rpc_stream *cli_stream;
	uint64_t open_ms[8];
};

static volatile sig_atomic_t stop_flag;

static void
on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
pump(struct t *t, int ms)
{
	struct pollfd p[MAX_CLI + 1];
	int n = 0, i;

	if (t->srv != NULL) {
		p[n].fd = rpc_server_fd(t->srv);
		p[n++].events = POLLIN;
	}
	for (i = 0; i < t->ncli; i++) {
		if (t->cli[i] == NULL)
			continue;
		p[n].fd = rpc_client_fd(t->cli[i]);
		p[n++].events = POLLIN;
	}
	(void)poll(p, (nfds_t)n, ms);
	if (t->srv != NULL)
		rpc_server_dispatch(t->srv);
	for (i = 0; i < t->ncli; i++)
		if (t->cli[i] != NULL)
			rpc_client_dispatch(t->cli[i]);
}

static char *
path(const struct t *t, const char *file)
{
	static char buf[8][512];
	static int k;
	char *p = buf[k++ % 8];

	snprintf(p, 512, "%s/%s", t->dir, file);
	return p;
}

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	CHECK(buf != NULL);
	protobuf_c_message_pack(m, buf);
	return buf;
}

static size_t
rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;

	CHECK(f != NULL);
	CHECK(fscanf(f, "%lu %lu", &size, &res) == 2);
	fclose(f);
	return res * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* --- server under test ---------------------------------------------- */

static struct srv_stream *
srv_slot(struct t *t, uint64_t site)
{
	if (site >= t->nss) {
		size_t n = site + 64;

		t->ss = realloc(t->ss, n * sizeof(*t->ss));
		CHECK(t->ss != NULL);
		memset(t->ss + t->nss, 0, (n - t->nss) * sizeof(*t->ss));
		t->nss = n;
	}
	return &t->ss[site];
}

static void
enroll_answer(struct rpc_unary *call, const Meshwan__V1__EnrollRequest *rq)
{
	Meshwan__V1__EnrollResponse r = MESHWAN__V1__ENROLL_RESPONSE__INIT;
	ProtobufCBinaryData chain[2] = {
		{ 3, (uint8_t *)"ca1" }, { 3, (uint8_t *)"ca2" },
	};
	uint8_t *buf;
	size_t len;

	r.site_id = 1;
	r.certificate_der = rq->csr_der;
	r.n_ca_chain_der = 2;
	r.ca_chain_der = chain;
	r.controller_name = (char *)"controller";
	buf = pack(&r.base, &len);
	CHECK(rpc_unary_reply(call, buf, len) == 0);
	free(buf);
}

static void
srv_enroll(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg)
{
	struct t *t = arg;
	Meshwan__V1__EnrollRequest *rq;

	t->enroll_calls++;
	t->last_peer = *peer;
	rq = meshwan__v1__enroll_request__unpack(NULL, len, req);
	if (rq == NULL) {
		rpc_unary_fail(call, RPC_INVALID_ARGUMENT, "bad request");
		return;
	}
	if (strcmp(rq->token, "good-token") == 0)
		enroll_answer(call, rq);
	else if (strcmp(rq->token, "later") == 0) {
		/* Answered from the test's loop later, as after a DB write. */
		CHECK(t->deferred == NULL);
		t->deferred = call;
	} else
		rpc_unary_fail(call, RPC_UNAUTHENTICATED, "token unknown");
	meshwan__v1__enroll_request__free_unpacked(rq, NULL);
}

static void
send_cm(struct rpc_stream *s, Meshwan__V1__ControllerMessage *cm)
{
	uint8_t *buf;
	size_t len;

	buf = pack(&cm->base, &len);
	CHECK(rpc_stream_send(s, buf, len) == 0);
	free(buf);
}

static int
srv_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct t *t = arg;

	t->session_opens++;
	t->last_peer = *peer;
	rpc_stream_set_user(s, NULL);
	return RPC_OK;
}

static void
send_snapshot(struct rpc_stream *s, uint64_t site_id, uint64_t version)
{
	Meshwan__V1__ControllerMessage cm = MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	Meshwan__V1__Intent in = MESHWAN__V1__INTENT__INIT;
	Meshwan__V1__Site site = MESHWAN__V1__SITE__INIT;
	char name[32];

	snprintf(name, sizeof(name), "site-%" PRIu64, site_id);
	site.id = site_id;
	site.name = name;
	site.asn = 65001;
	in.version = version;
	in.site = &site;
	in.keepalive_seconds = 15;
	cm.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT;
	cm.snapshot = &in;
	send_cm(s, &cm);
}

static void
srv_hello(struct t *t, struct rpc_stream *s, const Meshwan__V1__Hello *h)
{
	Meshwan__V1__ControllerMessage cm = MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	Meshwan__V1__Keepalive ka = MESHWAN__V1__KEEPALIVE__INIT;
	struct srv_stream *ss = srv_slot(t, h->site_id);
	int i;

	t->hellos++;
	ss->s = s;
	ss->site = h->site_id;
	ss->hello_ms = util_mono_ms();
	ss->closed = false;
	/* The slot array may move: the stream keeps the site id + 1. */
	rpc_stream_set_user(s, (void *)(uintptr_t)(h->site_id + 1));
	if (h->applied_version == 99) {
		rpc_stream_close(s, RPC_FAILED_PRECONDITION, "go away");
		return;
	}
	if (h->applied_version == 77) {
		/*
		 * Backpressure: far more than the queue holds, at once,
		 * stopping at the first ENOBUFS as a real owner does (it
		 * then waits for on_drained).  Sending on after a refusal
		 * would race the completion thread emptying the queue and
		 * could start a second refuse/drain round.
		 */
		cm.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE;
		cm.keepalive = &ka;
		for (i = 0; i < 1000; i++) {
			uint8_t *buf;
			size_t len;
			int rc;

			ka.controller_time = (uint64_t)i;
			buf = pack(&cm.base, &len);
			rc = rpc_stream_send(s, buf, len);
			free(buf);
			if (rc == 0) {
				t->backpressure_ok++;
			} else {
				CHECK(errno == ENOBUFS);
				t->backpressure_enobufs++;
				break;
			}
		}
		return;
	}
	if (h->applied_version == 55) {
		/* Teardown: fill the queue of a reader that stalled. */
		static uint8_t blob[16 * 1024];

		memset(blob, 0x5a, sizeof(blob));
		while (rpc_stream_send(s, blob, sizeof(blob)) == 0)
			t->flood_bytes += sizeof(blob);
		CHECK(errno == ENOBUFS);
		t->flood_done = true;
		return;
	}
	if (h->applied_version == 0)
		return; /* idle stream (disconnect and scale tests) */
	send_snapshot(s, h->site_id, h->applied_version + 1);
	ka.controller_time = 1700000000;
	cm.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE;
	cm.keepalive = &ka;
	send_cm(s, &cm);
}

static void
srv_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct t *t = arg;
	Meshwan__V1__EdgeMessage *em;

	em = meshwan__v1__edge_message__unpack(NULL, len, buf);
	CHECK(em != NULL);
	switch (em->body_case) {
	case MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO:
		t->hello_site = em->hello->site_id;
		t->hello_version = em->hello->applied_version;
		if (em->hello->applied_version == 41) {
			CHECK(strcmp(em->hello->software_version,
			    "meshwan-edge test") == 0);
			CHECK(em->hello->backend ==
			    MESHWAN__V1__BACKEND__BACKEND_UESP);
			CHECK(em->hello->features ==
			    (MESHWAN__V1__FEATURE__FEATURE_GRE |
			    MESHWAN__V1__FEATURE__FEATURE_VXLAN));
		}
		srv_hello(t, s, em->hello);
		break;
	case MESHWAN__V1__EDGE_MESSAGE__BODY_ACK:
		CHECK(em->ack->version == 42 && em->ack->ok);
		t->acks++;
		break;
	default:
		CHECK(!"unexpected edge message");
	}
	meshwan__v1__edge_message__free_unpacked(em, NULL);
}

static void
srv_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct t *t = arg;
	uintptr_t site1 = (uintptr_t)rpc_stream_user(s);
	struct srv_stream *ss = site1 ? srv_slot(t, site1 - 1) : NULL;

	t->srv_closes++;
	t->closes_by_reason[why]++;
	if (ss != NULL) {
		ss->closed = true;
		ss->why = why;
		ss->closed_ms = util_mono_ms();
		ss->s = NULL;
	}
	if (t->nss < 100)
		printf("server: stream closed: %s (code %d %s)\n",
		    rpc_close_reason_str(why), code, msg);
}

/* The queue emptied after ENOBUFS: resynchronise with a snapshot. */
static void
srv_drained(struct rpc_stream *s, void *arg)
{
	struct t *t = arg;
	uintptr_t site1 = (uintptr_t)rpc_stream_user(s);

	t->drained++;
	CHECK(site1 > 0);
	send_snapshot(s, site1 - 1, 78);
}

static const struct rpc_stream_handlers srv_handlers = {
	.on_open = srv_open,
	.on_message = srv_msg,
	.on_close = srv_close,
	.on_drained = srv_drained,
};

static void
server_up(struct t *t, const struct rpc_server_opts *extra)
{
	struct rpc_server_opts o;

	memset(&o, 0, sizeof(o));
	if (extra != NULL)
		o = *extra;
	if (o.listen == NULL)
		o.listen = "127.0.0.1:0";
	if (o.enroll_listen == NULL)
		o.enroll_listen = "127.0.0.1:0";
	o.tls.ca_file = path(t, "ca.pem");
	o.tls.cert_file = path(t, "server.pem");
	o.tls.key_file = path(t, "server.key");
	CHECK((t->srv = rpc_server_new(&o)) != NULL);
	CHECK(rpc_server_add_unary(t->srv, M_ENROLL, RPC_AUTH_NONE,
	    srv_enroll, t) == 0);
	CHECK(rpc_server_add_stream(t->srv, M_SESSION, RPC_AUTH_PEER,
	    &srv_handlers, t) == 0);
	CHECK(rpc_server_start(t->srv) == 0);
	CHECK(rpc_server_port(t->srv, false) > 0);
	CHECK(rpc_server_port(t->srv, true) > 0);
}

/* --- clients ---------------------------------------------------------- */

/* cert: NULL = no client certificate; "plain" = insecure. */
static struct rpc_client *
client_new(struct t *t, int port, const char *ca, const char *cert,
    unsigned keepalive_ms)
{
	struct rpc_client_opts o;
	struct rpc_client *c;
	char target[64], certf[64], keyf[64];

	memset(&o, 0, sizeof(o));
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	o.target = target;
	o.keepalive_ms = keepalive_ms;
	o.keepalive_timeout_ms = 3000;
	if (cert != NULL && strcmp(cert, "plain") == 0)
		o.insecure = true;
	else {
		o.tls.ca_file = path(t, ca);
		if (cert != NULL) {
			snprintf(certf, sizeof(certf), "%s.pem", cert);
			snprintf(keyf, sizeof(keyf), "%s.key", cert);
			o.tls.cert_file = path(t, certf);
			o.tls.key_file = path(t, keyf);
		}
	}
	CHECK((c = rpc_client_new(&o)) != NULL);
	CHECK(t->ncli < MAX_CLI);
	t->cli[t->ncli++] = c;
	return c;
}

static void
client_free(struct t *t, struct rpc_client *c)
{
	int i;

	for (i = 0; i < t->ncli; i++)
		if (t->cli[i] == c)
			t->cli[i] = NULL;
	rpc_client_free(c);
}

static void
udone(int code, const char *msg, const uint8_t *resp, size_t len, void *arg)
{
	struct t *t = arg;

	t->udone++;
	t->ucode = code;
	snprintf(t->umsg, sizeof(t->umsg), "%s", msg);
	if (t->uresp != NULL)
		meshwan__v1__enroll_response__free_unpacked(t->uresp, NULL);
	t->uresp = NULL;
	if (code == RPC_OK)
		t->uresp = meshwan__v1__enroll_response__unpack(NULL, len, resp);
}

static uint8_t *
enroll_req(const char *token, size_t *len)
{
	Meshwan__V1__EnrollRequest rq = MESHWAN__V1__ENROLL_REQUEST__INIT;

	rq.token = (char *)token;
	rq.csr_der.data = (uint8_t *)"\x30\x82\x01\x02csr";
	rq.csr_der.len = 7;
	rq.software_version = (char *)"meshwan-edge test";
	return pack(&rq.base, len);
}

/* Async Enroll from the test loop; returns the status code. */
static int
enroll(struct t *t, struct rpc_client *c, const char *token)
{
	size_t len;
	uint8_t *buf = enroll_req(token, &len);
	int before = t->udone;

	/* Wide deadlines: the first call includes the TLS handshake, which
	 * under ASan on a loaded 2-core machine took over 5 s. */
	CHECK(rpc_client_unary_async(c, M_ENROLL, buf, len, 15000, udone,
	    t) == 0);
	free(buf);
	WAIT_FOR(t, t->udone > before, 20000);
	if (t->ucode != RPC_OK)
		printf("enroll: code %d\n", t->ucode);
	return t->ucode;
}

static int
send_em(struct rpc_stream *s, Meshwan__V1__EdgeMessage *em)
{
	uint8_t *buf;
	size_t len;
	int rc;

	buf = pack(&em->base, &len);
	rc = rpc_stream_send(s, buf, len);
	free(buf);
	return rc;
}

/* Fails (EPIPE) only on a stream that ended before it was opened. */
static int
send_hello(struct rpc_stream *s, uint64_t site, uint64_t version)
{
	Meshwan__V1__EdgeMessage em = MESHWAN__V1__EDGE_MESSAGE__INIT;
	Meshwan__V1__Hello h = MESHWAN__V1__HELLO__INIT;

	h.site_id = site;
	h.applied_version = version;
	h.software_version = (char *)"meshwan-edge test";
	h.backend = MESHWAN__V1__BACKEND__BACKEND_UESP;
	h.features = MESHWAN__V1__FEATURE__FEATURE_GRE |
	    MESHWAN__V1__FEATURE__FEATURE_VXLAN;
	em.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO;
	em.hello = &h;
	return send_em(s, &em);
}

/* The client's hello is chosen by the test through these two fields. */
struct cli_plan {
	struct t *t;
	uint64_t site, version;
	bool ack_and_end; /* after the snapshot: Ack 42, then half-close */
	bool big;         /* a hello over the server's message size limit */
};

static int
cli_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct cli_plan *p = arg;

	CHECK(peer == NULL);
	p->t->open_ms[p->t->cli_opens % 8] = util_mono_ms();
	p->t->cli_opens++;
	p->t->cli_stream = s;
	if (p->big) {
		Meshwan__V1__EdgeMessage em = MESHWAN__V1__EDGE_MESSAGE__INIT;
		Meshwan__V1__Hello h = MESHWAN__V1__HELLO__INIT;
		char *v = malloc(100 * 1024);

		CHECK(v != NULL);
		memset(v, 'v', 100 * 1024 - 1);
		v[100 * 1024 - 1] = '\0';
		h.site_id = p->site;
		h.software_version = v;
		em.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO;
		em.hello = &h;
		CHECK(send_em(s, &em) == 0);
		free(v);
		return RPC_OK;
	}
	(void)send_hello(s, p->site, p->version);
	return RPC_OK;
}

static void
cli_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct cli_plan *p = arg;
	struct t *t = p->t;
	Meshwan__V1__ControllerMessage *cm;

	t->cli_msgs++;
	cm = meshwan__v1__controller_message__unpack(NULL, len, buf);
	CHECK(cm != NULL);
	if (cm->body_case == MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT) {
		CHECK(cm->snapshot->version == p->version + 1);
		CHECK(cm->snapshot->site != NULL);
		CHECK(cm->snapshot->site->id == p->site);
		CHECK(cm->snapshot->site->asn == 65001);
		CHECK(cm->snapshot->keepalive_seconds == 15);
		t->cli_snapshots++;
	} else if (cm->body_case ==
	    MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE) {
		t->cli_keepalives++;
		if (p->ack_and_end && cm->keepalive->controller_time ==
		    1700000000) {
			Meshwan__V1__EdgeMessage em =
			    MESHWAN__V1__EDGE_MESSAGE__INIT;
			Meshwan__V1__Ack ack = MESHWAN__V1__ACK__INIT;

			ack.version = 42;
			ack.ok = true;
			em.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_ACK;
			em.ack = &ack;
			CHECK(send_em(s, &em) == 0);
			rpc_stream_close(s, RPC_OK, NULL);
		}
	}
	meshwan__v1__controller_message__free_unpacked(cm, NULL);
}

static void
cli_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct cli_plan *p = arg;

	(void)s;
	p->t->cli_closes++;
	p->t->cli_last_code = code;
	p->t->cli_last_why = why;
	snprintf(p->t->cli_last_msg, sizeof(p->t->cli_last_msg), "%s", msg);
	if (p->t->cli_stream == s)
		p->t->cli_stream = NULL;
}

static const struct rpc_stream_handlers cli_handlers = {
	.on_open = cli_open,
	.on_message = cli_msg,
	.on_close = cli_close,
};

static void
open_session2(struct rpc_client *c, struct cli_plan *p, unsigned timeout_ms,
    bool reconnect)
{
	struct rpc_stream_opts so = { .reconnect = reconnect,
		.timeout_ms = timeout_ms };

	CHECK(rpc_client_stream_open(c, M_SESSION, &cli_handlers, p, &so) ==
	    0);
}

static void
open_session(struct rpc_client *c, struct cli_plan *p, unsigned timeout_ms)
{
	open_session2(c, p, timeout_ms, false);
}

/* --- modes ------------------------------------------------------------- */

static int
mode_roundtrip(struct t *t)
{
	struct rpc_server_opts so;
	struct rpc_client *ce, *cm;
	struct cli_plan p = { .t = t, .site = 1, .version = 41,
		.ack_and_end = true };
	struct rpc_stats st;
	int port, eport, i, h0, closes, snaps;

	memset(&so, 0, sizeof(so));
	so.limits.queue_msgs = 16;
	so.limits.max_message = 64 * 1024;
	server_up(t, &so);
	port = rpc_server_port(t->srv, false);
	eport = rpc_server_port(t->srv, true);

	/* Unary over server-auth TLS (the enrollment port). */
	ce = client_new(t, eport, "ca.pem", NULL, 0);
	CHECK(enroll(t, ce, "good-token") == RPC_OK);
	CHECK(t->uresp != NULL);
	CHECK(t->uresp->site_id == 1);
	CHECK(t->uresp->certificate_der.len == 7);
	CHECK(memcmp(t->uresp->certificate_der.data, "\x30\x82\x01\x02csr",
	    7) == 0);
	CHECK(t->uresp->n_ca_chain_der == 2);
	CHECK(memcmp(t->uresp->ca_chain_der[1].data, "ca2", 3) == 0);
	CHECK(strcmp(t->uresp->controller_name, "controller") == 0);
	CHECK(!t->last_peer.verified && t->last_peer.cn[0] == '\0');
	printf("ok: Enroll round trip over server-auth TLS\n");

	CHECK(enroll(t, ce, "bad-token") == RPC_UNAUTHENTICATED);
	CHECK(strcmp(t->umsg, "token unknown") == 0);
	printf("ok: Enroll error status and message\n");

	/* A handler answering later, from the owner's loop. */
	{
		size_t len;
		uint8_t *buf = enroll_req("later", &len);
		int before = t->udone;
		uint64_t until;

		CHECK(rpc_client_unary_async(ce, M_ENROLL, buf, len, 5000,
		    udone, t) == 0);
		free(buf);
		WAIT_FOR(t, t->deferred != NULL, 5000);
		until = util_mono_ms() + 200;
		while (util_mono_ms() < until)
			pump(t, 20);
		CHECK(t->udone == before);
		rpc_server_stats(t->srv, &st);
		CHECK(st.unary_pending == 1);
		{
			Meshwan__V1__EnrollRequest rq =
			    MESHWAN__V1__ENROLL_REQUEST__INIT;

			rq.csr_der.data = (uint8_t *)"\x30\x82\x01\x02csr";
			rq.csr_der.len = 7;
			enroll_answer(t->deferred, &rq);
		}
		t->deferred = NULL;
		WAIT_FOR(t, t->udone > before, 5000);
		CHECK(t->ucode == RPC_OK && t->uresp->site_id == 1);
		printf("ok: deferred unary answer\n");
	}

	/* Unknown methods get UNIMPLEMENTED, not a hang. */
	{
		int before = t->udone;

		CHECK(rpc_client_unary_async(ce, "/meshwan.v1.Edge/Nope",
		    "x", 1, 5000, udone, t) == 0);
		WAIT_FOR(t, t->udone > before, 5000);
		CHECK(t->ucode == RPC_UNIMPLEMENTED);
		printf("ok: unknown method -> UNIMPLEMENTED\n");
	}

	/* Enroll also works on the mTLS port and sees the identity. */
	cm = client_new(t, port, "ca.pem", "client", 2000);
	CHECK(enroll(t, cm, "good-token") == RPC_OK);
	CHECK(t->last_peer.verified);
	CHECK(strcmp(t->last_peer.cn, "site-1") == 0);
	CHECK(strstr(t->last_peer.sans, "site-1.edge.test") != NULL);
	CHECK(strncmp(t->last_peer.addr, "ipv4:127.0.0.1:", 15) == 0);
	printf("ok: peer identity cn=%s sans=%s addr=%s\n", t->last_peer.cn,
	    t->last_peer.sans, t->last_peer.addr);
	/* ... and the exact certificate: fingerprint, serial, notAfter. */
	{
		uint8_t fp[32];
		unsigned fplen = 0;
		FILE *f = fopen(path(t, "client.pem"), "r");
		X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		BIGNUM *bn;
		char *hex;
		int days = 0, secs = 0;

		CHECK(x != NULL);
		fclose(f);
		CHECK(X509_digest(x, EVP_sha256(), fp, &fplen) == 1);
		CHECK(memcmp(fp, t->last_peer.cert_sha256, sizeof(fp)) == 0);
		bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		hex = BN_bn2hex(bn);
		CHECK(strcasecmp(hex, t->last_peer.serial) == 0);
		/* notAfter is two days out (certs.sh -days 2). */
		CHECK(ASN1_TIME_diff(&days, &secs, NULL,
		    X509_get0_notAfter(x)) == 1);
		{
			int64_t want = (int64_t)time(NULL) + days * 86400 +
			    secs;

			CHECK(t->last_peer.not_after > (int64_t)time(NULL) +
			    86400 && t->last_peer.not_after >= want - 2 &&
			    t->last_peer.not_after <= want + 2);
		}
		printf("ok: peer certificate serial=%s not_after=%" PRId64 "\n",
		    t->last_peer.serial, t->last_peer.not_after);
		OPENSSL_free(hex);
		BN_free(bn);
		X509_free(x);
	}

	/* Session: hello -> snapshot + keepalive -> ack -> half-close. */
	open_session(cm, &p, 0);
	WAIT_FOR(t, t->cli_closes == 1 && t->srv_closes == 1, 8000);
	CHECK(t->session_opens == 1 && t->hellos == 1 && t->acks == 1);
	CHECK(t->hello_site == 1 && t->hello_version == 41);
	CHECK(t->cli_snapshots == 1 && t->cli_keepalives == 1);
	CHECK(t->cli_last_why == RPC_CLOSE_FINISHED && t->cli_last_code == 0);
	CHECK(t->closes_by_reason[RPC_CLOSE_FINISHED] == 1);
	CHECK(strcmp(t->last_peer.cn, "site-1") == 0 && t->last_peer.verified);
	printf("ok: Session round trip (hello, snapshot v42, keepalive, ack, "
	    "orderly end)\n");

	/* The server ends a stream with its own status. */
	p.version = 99;
	p.ack_and_end = false;
	open_session(cm, &p, 0);
	WAIT_FOR(t, t->cli_closes == 2 && t->srv_closes == 2, 8000);
	CHECK(t->cli_last_code == RPC_FAILED_PRECONDITION);
	CHECK(strcmp(t->cli_last_msg, "go away") == 0);
	printf("ok: server-side close with status %d \"%s\"\n",
	    t->cli_last_code, t->cli_last_msg);

	/* Backpressure: the 17th queued message is refused with ENOBUFS. */
	p.version = 77;
	p.site = 2;
	i = t->cli_msgs;
	snaps = t->cli_snapshots;
	open_session(cm, &p, 0);
	WAIT_FOR(t, t->backpressure_enobufs == 1, 8000);
	/*
	 * At least the 16 the queue holds are taken (more if the completion
	 * thread sent some meanwhile) before one is refused, and exactly the
	 * accepted ones arrive.
	 */
	CHECK(t->backpressure_ok >= 16 && t->backpressure_enobufs == 1);
	/* ... then on_drained resends a snapshot (version 78). */
	WAIT_FOR(t, t->cli_msgs - i == t->backpressure_ok + 1, 8000);
	WAIT_FOR(t, t->cli_snapshots == snaps + 1, 8000);
	CHECK(t->drained == 1);
	printf("ok: backpressure (queue 16): %d queued, then ENOBUFS; all "
	    "delivered, then on_drained resync snapshot\n",
	    t->backpressure_ok);

	/* A client cancel reaches the server's on_close. */
	CHECK(t->cli_stream != NULL);
	rpc_stream_cancel(t->cli_stream);
	WAIT_FOR(t, t->cli_closes == 3 && t->srv_closes == 3, 8000);
	CHECK(t->cli_last_why == RPC_CLOSE_LOCAL);
	CHECK(t->closes_by_reason[RPC_CLOSE_CANCELLED] == 1);
	printf("ok: client cancel -> server on_close(cancelled)\n");

	/* Session is refused without a client certificate (enroll port). */
	p.version = 41;
	p.site = 3;
	open_session(ce, &p, 0);
	WAIT_FOR(t, t->cli_closes == 4, 8000);
	CHECK(t->cli_last_code == RPC_UNAUTHENTICATED);
	CHECK(t->session_opens == 3);
	printf("ok: Session without client certificate -> "
	    "UNAUTHENTICATED, handler not run\n");

	/* A message over the server's size limit ends the stream. */
	p.big = true;
	i = t->hellos;
	open_session(cm, &p, 0);
	WAIT_FOR(t, t->cli_closes == 5 && t->srv_closes == 4, 8000);
	CHECK(t->cli_last_code == RPC_RESOURCE_EXHAUSTED);
	CHECK(t->hellos == i);
	printf("ok: 100 KiB message over the 64 KiB limit: stream ended "
	    "(code %d), handler never saw it\n", t->cli_last_code);
	p.big = false;

	/*
	 * Reconnection: the server ends each attempt.  Full jitter
	 * (lib/backoff.h): the first delay is drawn from [0.25 s, 1 s], the
	 * second from [0.25 s, 2 s]; each gap adds one attempt's round trip.
	 */
	p.version = 99;
	i = t->cli_opens;
	open_session2(cm, &p, 0, true);
	WAIT_FOR(t, t->cli_opens == i + 3, 8000);
	{
		uint64_t g1 = t->open_ms[(i + 1) % 8] - t->open_ms[i % 8];
		uint64_t g2 = t->open_ms[(i + 2) % 8] - t->open_ms[(i + 1) % 8];

		printf("ok: automatic reconnection after %" PRIu64 " ms, then "
		    "%" PRIu64 " ms (drawn from 0.25-1 s and 0.25-2 s)\n",
		    g1, g2);
		CHECK(g1 >= BACKOFF_FLOOR_MS - 20 &&
		    g1 <= BACKOFF_FIRST_MS + 1000);
		CHECK(g2 >= BACKOFF_FLOOR_MS - 20 &&
		    g2 <= 2 * BACKOFF_FIRST_MS + 1000);
	}
	/* Cancelling stops the reconnection. */
	WAIT_FOR(t, t->cli_stream != NULL, 3000);
	rpc_stream_cancel(t->cli_stream);
	i = t->cli_opens;
	{
		uint64_t until = util_mono_ms() + 2000;

		while (util_mono_ms() < until)
			pump(t, 50);
	}
	CHECK(t->cli_opens == i);
	printf("ok: cancel stops reconnection\n");
	closes = t->cli_closes;

	/* Shutdown with streams open: every stream hears of it. */
	p.version = 0;
	h0 = t->hellos;
	for (i = 0; i < 5; i++) {
		p.site = 10;
		open_session(cm, &p, 0);
	}
	WAIT_FOR(t, t->hellos == h0 + 5, 8000);
	rpc_server_stats(t->srv, &st);
	CHECK(st.streams == 5);
	i = t->srv_closes;
	rpc_server_free(t->srv);
	t->srv = NULL;
	CHECK(t->srv_closes == i + 5);
	CHECK(t->closes_by_reason[RPC_CLOSE_SHUTDOWN] == 5);
	WAIT_FOR(t, t->cli_closes == closes + 5, 8000);
	printf("ok: server freed with 5 streams open: 5 x on_close(shutdown), "
	    "clients told (last code %d)\n", t->cli_last_code);
	client_free(t, ce);
	client_free(t, cm);
	if (t->uresp != NULL)
		meshwan__v1__enroll_response__free_unpacked(t->uresp, NULL);
	free(t->ss);
	return 0;
}

/* A refused attempt: unary and stream, both must fail. */
static void
expect_refused(struct t *t, int port, const char *ca, const char *cert,
    const char *what)
{
	struct rpc_client *c = client_new(t, port, ca, cert, 0);
	struct cli_plan p = { .t = t, .site = 1, .version = 41 };
	int closes = t->cli_closes;
	int code = enroll(t, c, "good-token");

	CHECK(code != RPC_OK);
	open_session(c, &p, 5000);
	WAIT_FOR(t, t->cli_closes == closes + 1, 8000);
	CHECK(t->cli_last_code != RPC_OK);
	CHECK(t->enroll_calls == 0 && t->session_opens == 0);
	printf("ok: %s: refused (unary code %d \"%s\", stream code %d)\n",
	    what, code, t->umsg, t->cli_last_code);
	client_free(t, c);
}

static int
mode_mtls(struct t *t)
{
	struct rpc_client *c;
	struct cli_plan p = { .t = t, .site = 1, .version = 41 };
	struct rpc_stats st;
	int port, eport;

	server_up(t, NULL);
	port = rpc_server_port(t->srv, false);
	eport = rpc_server_port(t->srv, true);

	expect_refused(t, port, "ca.pem", NULL, "no client certificate");
	expect_refused(t, port, "ca.pem", "other", "certificate from another CA");
	expect_refused(t, port, "ca.pem", "expired", "expired certificate");
	expect_refused(t, port, "ca.pem", "plain", "plaintext to the TLS port");
	expect_refused(t, port, "ca2.pem", "client",
	    "client does not trust the server's CA");

	/* On the server-auth port, Session needs a verified identity. */
	c = client_new(t, eport, "ca.pem", NULL, 0);
	open_session(c, &p, 5000);
	WAIT_FOR(t, t->cli_closes == 6, 8000);
	CHECK(t->cli_last_code == RPC_UNAUTHENTICATED);
	CHECK(t->session_opens == 0);
	rpc_server_stats(t->srv, &st);
	CHECK(st.refused_auth == 1);
	printf("ok: Session on the enrollment port without a certificate: "
	    "UNAUTHENTICATED by the layer\n");
	client_free(t, c);
	CHECK(t->enroll_calls == 0 && t->session_opens == 0);
	printf("ok: handlers never ran (enroll_calls=0 session_opens=0)\n");

	/* Control: the same harness with the right certificate succeeds. */
	c = client_new(t, port, "ca.pem", "client", 0);
	CHECK(enroll(t, c, "good-token") == RPC_OK);
	p.ack_and_end = true;
	open_session(c, &p, 5000);
	WAIT_FOR(t, t->cli_closes == 7, 8000);
	CHECK(t->cli_last_code == RPC_OK && t->acks == 1);
	CHECK(t->enroll_calls == 1 && t->session_opens == 1);
	printf("ok: control: valid client certificate accepted\n");
	client_free(t, c);
	rpc_server_free(t->srv);
	if (t->uresp != NULL)
		meshwan__v1__enroll_response__free_unpacked(t->uresp, NULL);
	free(t->ss);
	return 0;
}

static pid_t
spawn_self(const char *self, char *const argv[])
{
	pid_t pid;
	int rc = posix_spawn(&pid, self, NULL, NULL, argv, environ);

	CHECK(rc == 0);
	return pid;
}

static void
measure_close(struct t *t, uint64_t site, uint64_t t0, uint64_t bound_ms,
    enum rpc_close_reason want, const char *what)
{
	struct srv_stream *ss = srv_slot(t, site);

	WAIT_FOR(t, ss->closed, bound_ms + 2000);
	CHECK(ss->why == want);
	printf("ok: %s: server on_close(%s) after %" PRIu64 " ms "
	    "(bound %" PRIu64 " ms)\n", what, rpc_close_reason_str(ss->why),
	    ss->closed_ms - t0, bound_ms);
	CHECK(ss->closed_ms - t0 <= bound_ms);
}

static int
mode_disconnect(struct t *t, const char *self)
{
	struct rpc_server_opts so;
	struct rpc_client *c;
	struct cli_plan idle = { .t = t, .site = 1, .version = 0 };
	struct cli_plan dl = { .t = t, .site = 2, .version = 0 };
	char portbuf[16];
	pid_t pid;
	int st;
	uint64_t t0, t_idle;

	/* Keepalive 2 s, 3 s timeout: a frozen peer is gone within ~5 s. */
	memset(&so, 0, sizeof(so));
	so.keepalive_ms = 2000;
	so.keepalive_timeout_ms = 3000;
	so.min_ping_interval_ms = 1000;
	server_up(t, &so);
	snprintf(portbuf, sizeof(portbuf), "%d", rpc_server_port(t->srv,
	    false));

	/* An idle in-process stream that must survive everything below. */
	c = client_new(t, rpc_server_port(t->srv, false), "ca.pem", "client",
	    2000);
	open_session(c, &idle, 0);
	WAIT_FOR(t, t->hellos == 1, 8000);
	t_idle = util_mono_ms();

	/* Cancel: bound 2 s. */
	{
		struct rpc_client *c2 = client_new(t, rpc_server_port(t->srv,
		    false), "ca.pem", "client", 0);
		struct cli_plan p = { .t = t, .site = 3, .version = 0 };

		open_session(c2, &p, 0);
		WAIT_FOR(t, srv_slot(t, 3)->s != NULL, 8000);
		t0 = util_mono_ms();
		rpc_stream_cancel(t->cli_stream);
		measure_close(t, 3, t0, 2000, RPC_CLOSE_CANCELLED,
		    "client cancelled");
		client_free(t, c2);
	}

	/* SIGKILL: the kernel closes the socket; bound 2 s. */
	{
		char *argv[] = { (char *)self, (char *)"hold", (char *)t->dir,
			portbuf, (char *)"4", NULL };

		pid = spawn_self(self, argv);
		WAIT_FOR(t, srv_slot(t, 4)->s != NULL, 15000);
		t0 = util_mono_ms();
		CHECK(kill(pid, SIGKILL) == 0);
		CHECK(waitpid(pid, &st, 0) == pid);
		measure_close(t, 4, t0, 2000, RPC_CLOSE_CANCELLED,
		    "client SIGKILLed");
	}

	/* SIGSTOP: only keepalive notices; bound 10 s (2 s + 3 s + slack). */
	{
		char *argv[] = { (char *)self, (char *)"hold", (char *)t->dir,
			portbuf, (char *)"5", NULL };

		pid = spawn_self(self, argv);
		WAIT_FOR(t, srv_slot(t, 5)->s != NULL, 15000);
		t0 = util_mono_ms();
		CHECK(kill(pid, SIGSTOP) == 0);
		measure_close(t, 5, t0, 10000, RPC_CLOSE_CANCELLED,
		    "client SIGSTOPped (keepalive)");
		CHECK(kill(pid, SIGKILL) == 0);
		(void)kill(pid, SIGCONT);
		CHECK(waitpid(pid, &st, 0) == pid);
	}

	/* Deadline: a stream opened with a 1 s deadline; bound 3 s. */
	t0 = util_mono_ms();
	open_session(c, &dl, 1000);
	measure_close(t, 2, t0, 3000, RPC_CLOSE_DEADLINE, "stream deadline");
	WAIT_FOR(t, t->cli_last_why == RPC_CLOSE_DEADLINE, 3000);

	/* The healthy idle stream outlived the keepalive checks. */
	CHECK(!srv_slot(t, 1)->closed);
	CHECK(t->srv_closes == 4);
	printf("ok: healthy idle stream still open after %" PRIu64 " ms of "
	    "keepalive (no false positives, no too_many_pings)\n",
	    util_mono_ms() - t_idle);
	client_free(t, c);
	WAIT_FOR(t, srv_slot(t, 1)->closed, 5000);
	rpc_server_free(t->srv);
	free(t->ss);
	return 0;
}

static int
mode_streams(struct t *t, const char *self, int n)
{
	Meshwan__V1__ControllerMessage cm = MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	Meshwan__V1__Keepalive ka = MESHWAN__V1__KEEPALIVE__INIT;
	struct rpc_server_opts so;
	struct rpc_stats st;
	char portbuf[16], nbuf[16];
	size_t rss0, rss1, len, i;
	uint8_t *buf;
	uint64_t t0;
	pid_t pid;
	int status, sent = 0;

	memset(&so, 0, sizeof(so));
	server_up(t, &so);
	snprintf(portbuf, sizeof(portbuf), "%d", rpc_server_port(t->srv,
	    false));
	snprintf(nbuf, sizeof(nbuf), "%d", n);
	/* Settle allocator and gRPC threads before the baseline. */
	for (i = 0; i < 10; i++)
		pump(t, 20);
	rss0 = rss_kib();
	{
		char *argv[] = { (char *)self, (char *)"many", (char *)t->dir,
			portbuf, nbuf, NULL };

		t0 = util_mono_ms();
		pid = spawn_self(self, argv);
	}
	WAIT_FOR(t, t->hellos == n, 60000);
	rpc_server_stats(t->srv, &st);
	CHECK(st.streams == (unsigned)n);
	rss1 = rss_kib();
	printf("ok: %d streams open from one client process in %" PRIu64
	    " ms\n", n, util_mono_ms() - t0);
	printf("server RSS: %zu KiB idle, %zu KiB with %d streams: %.1f KiB "
	    "per stream (one mTLS connection; call object %zu bytes)\n",
	    rss0, rss1, n, (double)(rss1 - rss0) / n, st.call_bytes);

	/* Broadcast one ControllerMessage to every open stream. */
	ka.controller_time = 424242;
	cm.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE;
	cm.keepalive = &ka;
	buf = pack(&cm.base, &len);
	t0 = util_mono_ms();
	for (i = 0; i < t->nss; i++)
		if (t->ss[i].s != NULL && rpc_stream_send(t->ss[i].s, buf,
		    len) == 0)
			sent++;
	free(buf);
	CHECK(sent == n);
	/* The child exits 0 once every one of its streams got it. */
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		CHECK(r != -1);
		if (r == pid)
			break;
		CHECK(util_mono_ms() - t0 < 60000);
		pump(t, 50);
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	printf("ok: broadcast to %d streams, all received it, in %" PRIu64
	    " ms\n", n, util_mono_ms() - t0);
	WAIT_FOR(t, t->srv_closes == n, 20000);
	rpc_server_stats(t->srv, &st);
	CHECK(st.streams == 0);
	printf("ok: all %d streams closed on the server after the client "
	    "left\n", n);
	rpc_server_free(t->srv);
	free(t->ss);
	return 0;
}

/* A client that opens streams and then never reads (not dispatched). */
struct stall {
	struct t *t;
	uint64_t site, version;
	int opened;
	bool speak;
};

static int
stall_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct stall *st = arg;

	(void)peer;
	st->opened++;
	if (st->speak)
		(void)send_hello(s, st->site, st->version);
	return RPC_OK;
}

static void
stall_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	(void)s;
	(void)buf;
	(void)len;
	(void)arg;
}

static void
stall_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	(void)s;
	(void)why;
	(void)code;
	(void)msg;
	(void)arg;
}

static struct rpc_client *
stall_client(struct t *t, struct stall *st)
{
	static const struct rpc_stream_handlers h = {
		.on_open = stall_open,
		.on_message = stall_msg,
		.on_close = stall_close,
	};
	struct rpc_client_opts o;
	struct rpc_client *c;
	char target[64];
	uint64_t dl = util_mono_ms() + 8000;

	memset(&o, 0, sizeof(o));
	snprintf(target, sizeof(target), "127.0.0.1:%d",
	    rpc_server_port(t->srv, false));
	o.target = target;
	o.tls.ca_file = path(t, "ca.pem");
	o.tls.cert_file = path(t, "client.pem");
	o.tls.key_file = path(t, "client.key");
	CHECK((c = rpc_client_new(&o)) != NULL);
	CHECK(rpc_client_stream_open(c, M_SESSION, &h, st, NULL) == 0);
	/* Dispatch only until on_open ran (the hello is queued): from
	 * then on this client's owner never reads again. */
	while (st->opened == 0) {
		CHECK(util_mono_ms() < dl);
		(void)rpc_client_dispatch(c);
		pump(t, 20);
	}
	return c;
}

static int
mode_teardown(struct t *t)
{
	struct rpc_server_opts so;
	struct rpc_stats st;
	struct rpc_client *c, *c2;
	struct stall sa = { .t = t, .site = 1, .version = 55, .speak = true };
	struct stall mute = { .t = t, .site = 2 };
	struct cli_plan talk = { .t = t, .site = 3, .version = 0 };
	struct cli_plan big = { .t = t, .site = 4, .big = true };
	struct srv_stream *ss;
	uint64_t t0;
	size_t q, topped = 0;
	int held = 0;

	memset(&so, 0, sizeof(so));
	so.limits.close_timeout_ms = 1500;
	so.limits.max_inbound = 64 * 1024;
	so.limits.max_message = 1024 * 1024;
	so.first_message_ms = 1500;
	server_up(t, &so);

	/* 1. A replaced stream whose reader stalled. */
	c = stall_client(t, &sa);
	WAIT_FOR(t, t->flood_done, 8000);
	ss = srv_slot(t, 1);
	CHECK(ss->s != NULL);
	/* Top the queue up until flow control holds it: what gRPC and the
	 * client buffer is finite, the rest stays queued here.  Held means
	 * nothing left the queue for two rounds: crossing the size alone
	 * was not enough on a loaded machine, where the client's buffers
	 * were still filling and took the rest within the close deadline. */
	for (int round = 0; round < 40 && held < 2; round++) {
		static uint8_t blob[16 * 1024];
		uint64_t until = util_mono_ms() + 300;

		while (util_mono_ms() < until)
			pump(t, 50);
		rpc_stream_queued(ss->s, NULL, &q);
		held = q >= 6 * 1024 * 1024 && q == topped ? held + 1 : 0;
		while (rpc_stream_send(ss->s, blob, sizeof(blob)) == 0)
			t->flood_bytes += sizeof(blob);
		rpc_stream_queued(ss->s, NULL, &topped);
	}
	rpc_stream_queued(ss->s, NULL, &q);
	printf("stalled reader: %zu KiB queued on the stream (%zu KiB "
	    "offered)\n", q / 1024, t->flood_bytes / 1024);
	CHECK(q >= 6 * 1024 * 1024);
	t0 = util_mono_ms();
	rpc_stream_close(ss->s, RPC_ABORTED, "replaced by a newer session");
	measure_close(t, 1, t0, 1500 + 1500, RPC_CLOSE_LOCAL,
	    "close of a stalled stream (close deadline 1.5 s)");
	rpc_server_stats(t->srv, &st);
	CHECK(st.queued_bytes == 0 && st.queued_msgs == 0);
	CHECK(st.streams == 0);
	printf("ok: its queue freed (queued bytes %zu, streams %u)\n",
	    st.queued_bytes, st.streams);

	/* 2. A stream that never sends anything, next to one that does. */
	c2 = client_new(t, rpc_server_port(t->srv, false), "ca.pem", "client",
	    0);
	t0 = util_mono_ms();
	CHECK(rpc_client_stream_open(c, M_SESSION, &(struct
	    rpc_stream_handlers){ .on_open = stall_open, .on_message =
	    stall_msg, .on_close = stall_close }, &mute, NULL) == 0);
	(void)rpc_client_dispatch(c);
	open_session(c2, &talk, 0);
	WAIT_FOR(t, t->session_opens == 3 && srv_slot(t, 3)->s != NULL,
	    8000);
	WAIT_FOR(t, t->srv_closes == 2, 1500 + 2000);
	CHECK(t->closes_by_reason[RPC_CLOSE_DEADLINE] == 1);
	printf("ok: a stream without a first message: on_close(%s) after "
	    "%" PRIu64 " ms (deadline 1.5 s)\n",
	    rpc_close_reason_str(RPC_CLOSE_DEADLINE), util_mono_ms() - t0);
	CHECK(util_mono_ms() - t0 <= 1500 + 2000);
	CHECK(!srv_slot(t, 3)->closed);
	printf("ok: the stream that spoke is still open\n");

	/* 3. An inbound message over max_inbound (64 KiB) while the server
	 * may still send up to max_message (1 MiB). */
	open_session(c2, &big, 0);
	WAIT_FOR(t, t->cli_closes == 1, 8000);
	CHECK(t->cli_last_code == RPC_RESOURCE_EXHAUSTED);
	printf("ok: 100 KiB inbound message over max_inbound 64 KiB: refused "
	    "(code %d)\n", t->cli_last_code);

	rpc_client_free(c);
	client_free(t, c2);
	rpc_server_free(t->srv);
	free(t->ss);
	return 0;
}

/*
 * A stream that failed to reopen while its server was away waits out a
 * backoff that grew with each failure (up to 30 s), and its channel
 * paces its connection attempts with a backoff of its own.  Once the
 * channel is connected again the stream must reopen at once, not at the
 * end of its own wait.  COMEBACK_N clients (a channel each) lose their
 * server for COMEBACK_AWAY_MS, long enough for a few failed attempts
 * each; it returns on the same port, and for every client the time from
 * its channel being READY (rpc_client_ready, polled every 10 ms) to its
 * hello at the server is measured.  Without the channel watch the
 * reopen came up to a whole backoff window (several seconds here) after
 * READY: all COMEBACK_N within COMEBACK_MAX_MS then is unlikely to
 * happen by chance.
 */
#define COMEBACK_N 4
#define COMEBACK_AWAY_MS 9000
#define COMEBACK_MAX_MS 3000

static int
mode_comeback(struct t *t)
{
	struct rpc_server_opts so;
	struct rpc_client *c[COMEBACK_N];
	struct cli_plan p[COMEBACK_N];
	uint64_t ready_ms[COMEBACK_N] = { 0 }, t0, worst = 0;
	char listen[32];
	int port, done = 0;

	memset(&so, 0, sizeof(so));
	server_up(t, &so);
	port = rpc_server_port(t->srv, false);
	for (int i = 0; i < COMEBACK_N; i++) {
		p[i] = (struct cli_plan){ .t = t, .site = 200 + (uint64_t)i,
			.version = 0 };
		c[i] = client_new(t, port, "ca.pem", "client", 0);
		open_session2(c[i], &p[i], 0, true);
	}
	WAIT_FOR(t, t->hellos == COMEBACK_N, 8000);
	printf("ok: %d clients connected\n", COMEBACK_N);

	rpc_server_free(t->srv);
	t->srv = NULL;
	t0 = util_mono_ms();
	while (util_mono_ms() - t0 < COMEBACK_AWAY_MS)
		pump(t, 50);
	for (int i = 0; i < COMEBACK_N; i++)
		CHECK(!rpc_client_ready(c[i]));
	printf("ok: server away %d s; every client's attempts failed (%d "
	    "closes)\n", COMEBACK_AWAY_MS / 1000, t->cli_closes);

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	so.listen = listen;
	server_up(t, &so);
	CHECK(rpc_server_port(t->srv, false) == port);
	t0 = util_mono_ms();
	/* gRPC's own connection backoff is up to 30 s by now. */
	while (done < COMEBACK_N && util_mono_ms() - t0 < 60000) {
		pump(t, 10);
		done = 0;
		for (int i = 0; i < COMEBACK_N; i++) {
			struct srv_stream *ss = srv_slot(t, p[i].site);

			if (ready_ms[i] == 0 && rpc_client_ready(c[i]))
				ready_ms[i] = util_mono_ms();
			done += ready_ms[i] != 0 && ss->hello_ms >= ready_ms[i];
		}
	}
	for (int i = 0; i < COMEBACK_N; i++) {
		struct srv_stream *ss = srv_slot(t, p[i].site);

		CHECK(ready_ms[i] != 0 && ss->hello_ms >= ready_ms[i]);
		printf("client %d: connected %" PRIu64 " ms after the server "
		    "returned, its stream reopened %" PRIu64 " ms later\n", i,
		    ready_ms[i] - t0, ss->hello_ms - ready_ms[i]);
		if (ss->hello_ms - ready_ms[i] > worst)
			worst = ss->hello_ms - ready_ms[i];
	}
	CHECK(worst <= COMEBACK_MAX_MS);
	printf("ok: every stream reopened within %" PRIu64 " ms of its "
	    "channel being connected (at most %d)\n", worst,
	    COMEBACK_MAX_MS);
	for (int i = 0; i < COMEBACK_N; i++)
		client_free(t, c[i]);
	rpc_server_free(t->srv);
	t->srv = NULL;
	free(t->ss);
	t->ss = NULL;
	t->nss = 0;
	return 0;
}

static int
mode_serve(struct t *t)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	server_up(t, NULL);
	printf("PORTS %d %d\n", rpc_server_port(t->srv, false),
	    rpc_server_port(t->srv, true));
	fflush(stdout);
	while (!stop_flag)
		pump(t, 100);
	rpc_server_free(t->srv);
	printf("COUNTS enroll=%d opens=%d hellos=%d acks=%d closes=%d "
	    "verified_cn=%s\n", t->enroll_calls, t->session_opens, t->hellos,
	    t->acks, t->srv_closes, t->last_peer.cn);
	free(t->ss);
	return 0;
}

/* Child: one stream, hello, then idle until killed. */
static int
mode_hold(struct t *t, int port, uint64_t site)
{
	struct cli_plan p = { .t = t, .site = site, .version = 0 };
	struct rpc_client *c = client_new(t, port, "ca.pem", "client", 2000);

	uint64_t until = util_mono_ms() + 120000;

	open_session(c, &p, 0);
	while (util_mono_ms() < until)
		pump(t, 1000);
	return 1; /* the parent should have killed us long ago */
}

struct many {
	struct t *t;
	int got, closed;
};

static int
many_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct many *m = arg;

	(void)peer;
	CHECK(send_hello(s, (uint64_t)(++m->t->cli_opens), 0) == 0);
	return RPC_OK;
}

static void
many_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct many *m = arg;
	Meshwan__V1__ControllerMessage *cm;

	(void)s;
	cm = meshwan__v1__controller_message__unpack(NULL, len, buf);
	CHECK(cm != NULL);
	CHECK(cm->body_case == MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE);
	CHECK(cm->keepalive->controller_time == 424242);
	m->got++;
	meshwan__v1__controller_message__free_unpacked(cm, NULL);
}

static void
many_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct many *m = arg;

	(void)s;
	if (why != RPC_CLOSE_SHUTDOWN)
		fprintf(stderr, "child: stream closed early: %s %d %s\n",
		    rpc_close_reason_str(why), code, msg);
	m->closed++;
}

/* Child: a blocking Enroll, then n streams; exit 0 when all got the
 * broadcast. */
static int
mode_many(struct t *t, int port, int n)
{
	static const struct rpc_stream_handlers h = {
		.on_open = many_open,
		.on_message = many_msg,
		.on_close = many_close,
	};
	struct many m = { .t = t };
	struct rpc_client *c = client_new(t, port, "ca.pem", "client", 0);
	uint8_t *buf, *resp;
	size_t len, rlen;
	int code, i;
	char msg[64];

	buf = enroll_req("good-token", &len);
	CHECK(rpc_client_unary(c, M_ENROLL, buf, len, 10000, &code, &resp,
	    &rlen, msg, sizeof(msg)) == 0);
	CHECK(code == RPC_OK && rlen > 0);
	free(resp);
	free(buf);
	for (i = 0; i < n; i++)
		CHECK(rpc_client_stream_open(c, M_SESSION, &h, &m, NULL) == 0);
	WAIT_FOR(t, m.got == n || m.closed > 0, 60000);
	CHECK(m.got == n && m.closed == 0);
	client_free(t, c);
	CHECK(m.closed == n);
	return 0;
}

int
main(int argc, char **argv)
{
	struct t t;

	memset(&t, 0, sizeof(t));
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("rpc_test", true);
	if (getenv("RPC_TEST_DEBUG") != NULL)
		log_setdebug("rpc");
	if (argc < 3) {
		fprintf(stderr, "usage: rpc_test MODE DIR [...]\n");
		return 2;
	}
	t.dir = argv[2];
	if (strcmp(argv[1], "roundtrip") == 0)
		return mode_roundtrip(&t);
	if (strcmp(argv[1], "mtls") == 0)
		return mode_mtls(&t);
	if (strcmp(argv[1], "disconnect") == 0)
		return mode_disconnect(&t, argv[0]);
	if (strcmp(argv[1], "streams") == 0 && argc == 4)
		return mode_streams(&t, argv[0], atoi(argv[3]));
	if (strcmp(argv[1], "serve") == 0)
		return mode_serve(&t);
	if (strcmp(argv[1], "teardown") == 0)
		return mode_teardown(&t);
	if (strcmp(argv[1], "comeback") == 0)
		return mode_comeback(&t);
	/* Children never outlive a test that failed half-way. */
	if (strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "many") == 0)
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (strcmp(argv[1], "hold") == 0 && argc == 5)
		return mode_hold(&t, atoi(argv[3]), strtoull(argv[4], NULL,
		    10));
	if (strcmp(argv[1], "many") == 0 && argc == 5)
		return mode_many(&t, atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "rpc_test: bad mode or arguments\n");
	return 2;
}
