/*
 * rpc_bench.c — throughput and memory of proto/rpc, each figure next to a
 * reference measured in the same run on the same machine, so the ratios
 * stay meaningful on a noisy shared host.
 *
 *   unary calls/s (blocking, one at a time)  vs  raw TCP ping-pong
 *   unary calls/s (64 in flight, async)      vs  the blocking figure
 *   streamed messages/s (one stream)         vs  raw TCP, one write each
 *   server memory per idle mTLS stream, and per mTLS connection
 *
 * The server runs in a child process (this program, "server" mode) so its
 * memory can be read alone; the raw TCP references fork before gRPC
 * starts in this process.  Usage: rpc_bench DIR (certificates from
 * tests/rpc/certs.sh); sizes can be scaled with RPC_BENCH_SCALE (percent).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "meshwan/v1/meshwan.pb-c.h"
#include "proto/rpc.h"

#define M_ENROLL "/meshwan.v1.Enrollment/Enroll"
#define M_SESSION "/meshwan.v1.Edge/Session"

extern char **environ;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "rpc_bench: FAIL %s:%d: %s\n",         \
			    __FILE__, __LINE__, #c);                           \
			exit(1);                                               \
		}                                                              \
	} while (0)

static const char *dir;
static unsigned scale = 100;

static unsigned
scaled(unsigned n)
{
	unsigned v = (unsigned)((uint64_t)n * scale / 100);

	return v ? v : 1;
}

static char *
cpath(const char *f)
{
	static char buf[8][512];
	static int k;
	char *p = buf[k++ % 8];

	snprintf(p, 512, "%s/%s", dir, f);
	return p;
}

static uint8_t *
pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *b;

	*len = protobuf_c_message_get_packed_size(m);
	CHECK((b = malloc(*len ? *len : 1)) != NULL);
	protobuf_c_message_pack(m, b);
	return b;
}

static size_t
rss_kib(pid_t pid)
{
	char p[64];
	unsigned long size = 0, res = 0;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/statm", (int)pid);
	CHECK((f = fopen(p, "r")) != NULL);
	CHECK(fscanf(f, "%lu %lu", &size, &res) == 2);
	fclose(f);
	return res * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

static double
secs_since(uint64_t t0)
{
	return (double)(util_mono_ns() - t0) / 1e9;
}

static uint8_t *
enroll_req(const char *token, size_t *len)
{
	Meshwan__V1__EnrollRequest rq = MESHWAN__V1__ENROLL_REQUEST__INIT;
	static uint8_t csr[300];

	rq.token = (char *)token;
	rq.csr_der.data = csr; /* about the size of a real P-256 CSR */
	rq.csr_der.len = sizeof(csr);
	rq.software_version = (char *)"meshwan-edge bench";
	return pack(&rq.base, len);
}

static uint8_t *
hello_msg(size_t *len)
{
	Meshwan__V1__EdgeMessage em = MESHWAN__V1__EDGE_MESSAGE__INIT;
	Meshwan__V1__Hello h = MESHWAN__V1__HELLO__INIT;

	h.site_id = 12345;
	h.applied_version = 0;
	h.software_version = (char *)"meshwan-edge bench";
	em.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_HELLO;
	em.hello = &h;
	return pack(&em.base, len);
}

/* --- raw TCP references (before gRPC exists in this process) -------- */

static int
full_io(int fd, void *buf, size_t len, bool wr)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Child side: framed messages in; "P" = echo each, "S" = count, 1 byte at end. */
static void
tcp_child(int lfd, char kind, unsigned n)
{
	uint8_t buf[4096];
	uint32_t len;
	unsigned i;
	int fd = accept(lfd, NULL, NULL);
	int one = 1;

	if (fd < 0)
		_exit(1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (i = 0; i < n; i++) {
		if (full_io(fd, &len, 4, false) == -1 ||
		    ntohl(len) > sizeof(buf) ||
		    full_io(fd, buf, ntohl(len), false) == -1)
			_exit(1);
		if (kind == 'P' && (full_io(fd, &len, 4, true) == -1 ||
		    full_io(fd, buf, ntohl(len), true) == -1))
			_exit(1);
	}
	if (kind == 'S' && full_io(fd, "k", 1, true) == -1)
		_exit(1);
	_exit(0);
}

static double
tcp_ref(char kind, unsigned n, const uint8_t *msg, size_t mlen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint8_t buf[4096];
	uint32_t len = htonl((uint32_t)mlen);
	int lfd, fd, one = 1, st;
	unsigned i;
	uint64_t t0;
	pid_t pid;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK((lfd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(lfd, 1) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
	CHECK((pid = fork()) >= 0);
	if (pid == 0)
		tcp_child(lfd, kind, n);
	close(lfd);
	CHECK((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t0 = util_mono_ns();
	for (i = 0; i < n; i++) {
		/* One message = one write, like one rpc_stream_send. */
		memcpy(buf, &len, 4);
		memcpy(buf + 4, msg, mlen);
		CHECK(full_io(fd, buf, mlen + 4, true) == 0);
		if (kind == 'P')
			CHECK(full_io(fd, buf, mlen + 4, false) == 0);
	}
	if (kind == 'S')
		CHECK(full_io(fd, buf, 1, false) == 0);
	double s = secs_since(t0);
	close(fd);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0);
	return n / s;
}

/* --- the server child ------------------------------------------------- */

struct srv {
	struct rpc_server *rs;
};

static void
srv_enroll(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg)
{
	struct srv *s = arg;
	Meshwan__V1__EnrollRequest *rq;
	Meshwan__V1__EnrollResponse r = MESHWAN__V1__ENROLL_RESPONSE__INIT;
	struct rpc_stats st;
	char rss[32];
	uint8_t *buf;
	size_t blen;

	(void)peer;
	if ((rq = meshwan__v1__enroll_request__unpack(NULL, len, req)) ==
	    NULL) {
		rpc_unary_fail(call, RPC_INVALID_ARGUMENT, "bad request");
		return;
	}
	/* token "stats": open streams and this process's RSS. */
	rpc_server_stats(s->rs, &st);
	snprintf(rss, sizeof(rss), "%zu", rss_kib(getpid()));
	r.site_id = strcmp(rq->token, "stats") == 0 ? st.streams : 1;
	r.controller_name = rss;
	r.certificate_der = rq->csr_der;
	buf = pack(&r.base, &blen);
	rpc_unary_reply(call, buf, blen);
	free(buf);
	meshwan__v1__enroll_request__free_unpacked(rq, NULL);
}

static int
srv_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	(void)peer;
	(void)arg;
	rpc_stream_set_user(s, (void *)(uintptr_t)0);
	return RPC_OK;
}

static void
srv_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	uintptr_t n = (uintptr_t)rpc_stream_user(s) + 1;
	Meshwan__V1__EdgeMessage *em;

	(void)arg;
	rpc_stream_set_user(s, (void *)n);
	/* Decoding is part of the cost a real controller pays. */
	CHECK((em = meshwan__v1__edge_message__unpack(NULL, len, buf)) !=
	    NULL);
	if (em->body_case == MESHWAN__V1__EDGE_MESSAGE__BODY_ACK) {
		Meshwan__V1__ControllerMessage cm =
		    MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
		Meshwan__V1__Keepalive ka = MESHWAN__V1__KEEPALIVE__INIT;
		uint8_t *b;
		size_t bl;

		ka.controller_time = n - 1; /* messages before the ack */
		cm.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_KEEPALIVE;
		cm.keepalive = &ka;
		b = pack(&cm.base, &bl);
		(void)rpc_stream_send(s, b, bl);
		free(b);
	}
	meshwan__v1__edge_message__free_unpacked(em, NULL);
}

static void
srv_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	(void)s, (void)why, (void)code, (void)msg, (void)arg;
}

static int
mode_server(void)
{
	static const struct rpc_stream_handlers h = {
		.on_open = srv_open, .on_message = srv_msg,
		.on_close = srv_close,
	};
	struct rpc_server_opts o;
	struct srv s;
	struct pollfd p;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(&o, 0, sizeof(o));
	o.listen = "127.0.0.1:0";
	o.tls.ca_file = cpath("ca.pem");
	o.tls.cert_file = cpath("server.pem");
	o.tls.key_file = cpath("server.key");
	CHECK((s.rs = rpc_server_new(&o)) != NULL);
	CHECK(rpc_server_add_unary(s.rs, M_ENROLL, RPC_AUTH_NONE, srv_enroll,
	    &s) == 0);
	CHECK(rpc_server_add_stream(s.rs, M_SESSION, RPC_AUTH_PEER, &h, &s) ==
	    0);
	CHECK(rpc_server_start(s.rs) == 0);
	printf("PORT %d\n", rpc_server_port(s.rs, false));
	fflush(stdout);
	p.fd = rpc_server_fd(s.rs);
	p.events = POLLIN;
	for (;;) {
		(void)poll(&p, 1, 1000);
		rpc_server_dispatch(s.rs);
		if (getppid() == 1)
			break;
	}
	rpc_server_free(s.rs);
	return 0;
}

/* --- the client side ---------------------------------------------------- */

struct bench {
	struct rpc_client *c;
	unsigned done, inflight, opened;
	uint64_t reply;
	bool replied, drained;
	struct rpc_stream *s;
	const uint8_t *req;
	size_t req_len;
};

static void
pump(struct rpc_client *c, int ms)
{
	struct pollfd p = { .fd = rpc_client_fd(c), .events = POLLIN };

	(void)poll(&p, 1, ms);
	rpc_client_dispatch(c);
}

static struct rpc_client *
client(int port)
{
	struct rpc_client_opts o;
	char target[64];
	struct rpc_client *c;

	memset(&o, 0, sizeof(o));
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	o.target = target;
	o.tls.ca_file = cpath("ca.pem");
	o.tls.cert_file = cpath("client.pem");
	o.tls.key_file = cpath("client.key");
	CHECK((c = rpc_client_new(&o)) != NULL);
	return c;
}

static void
udone(int code, const char *msg, const uint8_t *resp, size_t len, void *arg)
{
	struct bench *b = arg;

	(void)msg, (void)resp, (void)len;
	CHECK(code == RPC_OK);
	b->done++;
	b->inflight--;
}

static double
unary_async(struct bench *b, unsigned n, unsigned depth)
{
	unsigned started = 0;
	uint64_t t0 = util_mono_ns();

	b->done = 0;
	b->inflight = 0;
	while (b->done < n) {
		while (b->inflight < depth && started < n) {
			CHECK(rpc_client_unary_async(b->c, M_ENROLL, b->req,
			    b->req_len, 10000, udone, b) == 0);
			b->inflight++;
			started++;
		}
		pump(b->c, 100);
	}
	return n / secs_since(t0);
}

static Meshwan__V1__EnrollResponse *
stats(struct rpc_client *c)
{
	size_t len, rlen;
	uint8_t *rq = enroll_req("stats", &len), *resp;
	Meshwan__V1__EnrollResponse *r;
	int code;

	CHECK(rpc_client_unary(c, M_ENROLL, rq, len, 10000, &code, &resp,
	    &rlen, NULL, 0) == 0 && code == RPC_OK);
	CHECK((r = meshwan__v1__enroll_response__unpack(NULL, rlen, resp)) !=
	    NULL);
	free(resp);
	free(rq);
	return r;
}

static int
b_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct bench *b = arg;
	size_t len;
	uint8_t *h = hello_msg(&len);

	(void)peer;
	b->opened++;
	b->s = s;
	/* One hello so the server has really seen the stream. */
	CHECK(rpc_stream_send(s, h, len) == 0);
	free(h);
	return RPC_OK;
}

static void
b_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct bench *b = arg;
	Meshwan__V1__ControllerMessage *cm;

	(void)s;
	CHECK((cm = meshwan__v1__controller_message__unpack(NULL, len, buf)) !=
	    NULL);
	b->reply = cm->keepalive->controller_time;
	b->replied = true;
	meshwan__v1__controller_message__free_unpacked(cm, NULL);
}

static void
b_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	(void)s, (void)arg;
	if (why != RPC_CLOSE_SHUTDOWN && why != RPC_CLOSE_LOCAL)
		fprintf(stderr, "rpc_bench: stream closed: %s %d %s\n",
		    rpc_close_reason_str(why), code, msg);
}

static void
b_drained(struct rpc_stream *s, void *arg)
{
	struct bench *b = arg;

	(void)s;
	b->drained = true;
}

static const struct rpc_stream_handlers bh = {
	.on_open = b_open, .on_message = b_msg, .on_close = b_close,
	.on_drained = b_drained,
};

static double
stream_rate(struct bench *b, unsigned n)
{
	Meshwan__V1__EdgeMessage em = MESHWAN__V1__EDGE_MESSAGE__INIT;
	Meshwan__V1__Ack ack = MESHWAN__V1__ACK__INIT;
	size_t len, alen;
	uint8_t *h = hello_msg(&len), *a;
	unsigned sent = 0;
	uint64_t t0;

	b->opened = 0;
	CHECK(rpc_client_stream_open(b->c, M_SESSION, &bh, b, NULL) == 0);
	while (b->opened == 0)
		pump(b->c, 100);
	t0 = util_mono_ns();
	while (sent < n) {
		if (rpc_stream_send(b->s, h, len) == 0)
			sent++;
		else {
			/* The queue is full: wait for on_drained, as a
			 * daemon would. */
			CHECK(errno == ENOBUFS);
			b->drained = false;
			while (!b->drained)
				pump(b->c, 100);
		}
	}
	ack.version = n;
	em.body_case = MESHWAN__V1__EDGE_MESSAGE__BODY_ACK;
	em.ack = &ack;
	a = pack(&em.base, &alen);
	while (rpc_stream_send(b->s, a, alen) == -1)
		pump(b->c, 1);
	while (!b->replied)
		pump(b->c, 100);
	double s = secs_since(t0);
	CHECK(b->reply == (uint64_t)n + 1); /* + the hello of b_open */
	free(h);
	free(a);
	rpc_stream_cancel(b->s);
	return n / s;
}

static int
mode_bench(const char *self)
{
	size_t hlen, rlen;
	uint8_t *hello = hello_msg(&hlen);
	uint8_t *req = enroll_req("bench", &rlen);
	unsigned n_rt = scaled(5000), n_async = scaled(20000);
	unsigned n_msg = scaled(200000), n_idle = scaled(2000);
	unsigned n_conn = scaled(50);
	double ref_rt, ref_msg, sync_rate, async_rate, msg_rate;
	struct bench b;
	Meshwan__V1__EnrollResponse *r;
	size_t rss0, rss1, rss2;
	int pipefd[2], port, st;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	FILE *f;
	unsigned i;

	/* References first, while this process has no gRPC threads. */
	ref_rt = tcp_ref('P', n_rt, req, rlen);
	ref_msg = tcp_ref('S', n_msg, hello, hlen);

	CHECK(pipe(pipefd) == 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	{
		char *argv[] = { (char *)self, (char *)"server", (char *)dir,
			NULL };

		CHECK(posix_spawn(&pid, self, &fa, NULL, argv, environ) == 0);
	}
	close(pipefd[1]);
	CHECK((f = fdopen(pipefd[0], "r")) != NULL);
	CHECK(fscanf(f, "PORT %d", &port) == 1);

	memset(&b, 0, sizeof(b));
	b.c = client(port);
	b.req = req;
	b.req_len = rlen;
	/* Warm up: handshake and first allocations. */
	(void)unary_async(&b, 200, 16);

	uint64_t t0 = util_mono_ns();
	for (i = 0; i < n_rt; i++) {
		uint8_t *resp;
		size_t len;
		int code;

		CHECK(rpc_client_unary(b.c, M_ENROLL, req, rlen, 10000, &code,
		    &resp, &len, NULL, 0) == 0 && code == RPC_OK);
		free(resp);
	}
	sync_rate = n_rt / secs_since(t0);
	async_rate = unary_async(&b, n_async, 64);
	msg_rate = stream_rate(&b, n_msg);

	/* Memory: idle streams on one connection, then many connections. */
	for (i = 0; i < 20; i++)
		pump(b.c, 10);
	r = stats(b.c);
	rss0 = strtoull(r->controller_name, NULL, 10);
	meshwan__v1__enroll_response__free_unpacked(r, NULL);
	b.opened = 0;
	for (i = 0; i < n_idle; i++)
		CHECK(rpc_client_stream_open(b.c, M_SESSION, &bh, &b, NULL) ==
		    0);
	for (;;) {
		pump(b.c, 50);
		r = stats(b.c);
		bool all = r->site_id == n_idle;

		rss1 = strtoull(r->controller_name, NULL, 10);
		meshwan__v1__enroll_response__free_unpacked(r, NULL);
		if (all)
			break;
	}
	{
		struct bench *cb = calloc(n_conn, sizeof(*cb));

		CHECK(cb != NULL);
		for (i = 0; i < n_conn; i++) {
			cb[i].c = client(port);
			CHECK(rpc_client_stream_open(cb[i].c, M_SESSION, &bh,
			    &cb[i], NULL) == 0);
		}
		for (;;) {
			pump(b.c, 50);
			for (i = 0; i < n_conn; i++)
				rpc_client_dispatch(cb[i].c);
			r = stats(b.c);
			bool all = r->site_id == n_idle + n_conn;

			rss2 = strtoull(r->controller_name, NULL, 10);
			meshwan__v1__enroll_response__free_unpacked(r, NULL);
			if (all)
				break;
		}
		for (i = 0; i < n_conn; i++)
			rpc_client_free(cb[i].c);
		free(cb);
	}
	rpc_client_free(b.c);
	kill(pid, SIGTERM);
	(void)waitpid(pid, &st, 0);
	fclose(f);
	posix_spawn_file_actions_destroy(&fa);

	printf("rpc_bench: unary, blocking        %9.0f calls/s   raw TCP "
	    "ping-pong %9.0f/s   ratio %.2f\n", sync_rate, ref_rt,
	    sync_rate / ref_rt);
	printf("rpc_bench: unary, 64 in flight    %9.0f calls/s   vs "
	    "blocking %.2fx\n", async_rate, async_rate / sync_rate);
	printf("rpc_bench: stream, %zu-byte msgs   %9.0f msgs/s    raw TCP "
	    "(1 write/msg) %9.0f/s   ratio %.2f\n", hlen, msg_rate, ref_msg,
	    msg_rate / ref_msg);
	printf("rpc_bench: idle mTLS stream       %9.1f KiB/stream "
	    "(server RSS, %u streams on one connection)\n",
	    (double)(rss1 - rss0) / n_idle, n_idle);
	printf("rpc_bench: mTLS connection        %9.1f KiB/connection "
	    "(server RSS, %u connections, one stream each)\n",
	    (double)(rss2 - rss1) / n_conn, n_conn);
	free(hello);
	free(req);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *sc = getenv("RPC_BENCH_SCALE");

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("rpc_bench", true);
	log_setlevel(LOG_LVL_WARN);
	if (sc != NULL && atoi(sc) > 0)
		scale = (unsigned)atoi(sc);
	if (argc == 3 && strcmp(argv[1], "server") == 0) {
		dir = argv[2];
		return mode_server();
	}
	if (argc != 2) {
		fprintf(stderr, "usage: rpc_bench DIR\n");
		return 2;
	}
	dir = argv[1];
	return mode_bench(argv[0]);
}
