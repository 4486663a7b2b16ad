/*
 * hostile.c — an enrolled edge that misbehaves, for the controller's
 * "one edge cannot hurt the others" tests (tests/ctl/hostile.sh) and for
 * measuring what each attack costs.  It holds a valid certificate and
 * speaks the contract through proto/rpc and proto/pbconv, as a
 * compromised agent would.
 *
 *   hostile TARGET CA CERT KEY SITE MODE [N [M]]
 *
 *   stall N M     N times, on a fresh connection: a stream says hello, asks
 *                 for M resyncs (failed acks), reads the snapshot that
 *                 answers the hello and never reads again (the next hello
 *                 replaces it).  Once the last hello is answered (so every
 *                 replacement has happened, however far behind a loaded
 *                 controller is), it waits STALL_WAIT_S without reading,
 *                 reads, and prints "stalled closed=K of N-1 lag=MS":
 *                 replaced streams the controller tore down meanwhile, and
 *                 the longest wait for a hello's snapshot (" open=I,..."
 *                 names the streams still open).
 *   nohello N     N streams that never send a message; prints
 *                 "nohello closed=K of N after=MS" once all are closed or
 *                 after 30 s.
 *   bigstatus KB  a hello, then one Status of about KB KiB; prints
 *                 "bigstatus sent=BYTES" and the stream's end.
 *   status64      a hello, then one Status whose counters and epochs are
 *                 above 2^63 (2^64 - 1 - k, 2^63 + k).
 *   ackflood N    a hello, then N failed acks; prints "ackflood snapshots=K
 *                 bytes=B" (what came back in the next 3 s).
 *   hashflood N   the same with acks of the current version and a wrong
 *                 convergence hash.
 *   keyflood N    a hello, then N validly signed epoch keys (fresh epochs);
 *                 prints "keyflood sent=N closed=0|1".
 *   statusflood N a hello, then N small status reports.
 *   probe SECS    a well-behaved edge measuring the controller's answer
 *                 time: every 200 ms a new stream says hello (version 0)
 *                 and times the snapshot; prints "probe n=N p50=MS max=MS".
 *
 * Every wait has a deadline.  Exit 0 unless something local failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define METHOD "/meshwan.v1.Edge/Session"
#define STALL_WAIT_S 8 /* > the controller's 5 s close deadline */
#define MAXC 64

struct h {
	const char *target, *ca, *cert, *key;
	uint64_t site;
	/* per-run counters, filled by the callbacks */
	int opened, closed, snapshots, msgs;
	size_t bytes;
	int last_code;
	struct rpc_stream *s;
	uint64_t intent_version;
	uint8_t hash[MSG_HASH_LEN];
	bool have;
	uint64_t sent_ms, got_ms; /* probe */
	bool want_hello;          /* on_open says hello */
	unsigned resyncs;         /* failed acks sent right after the hello */
};

static struct rpc_client *
h_client(struct h *h, unsigned inbound_msgs)
{
	struct rpc_client_opts o;

	memset(&o, 0, sizeof(o));
	o.target = h->target;
	o.tls.ca_file = h->ca;
	o.tls.cert_file = h->cert;
	o.tls.key_file = h->key;
	o.server_name = "localhost";
	o.limits.max_message = 16u << 20;
	o.limits.queue_bytes = 32u << 20;
	o.limits.inbound_msgs = inbound_msgs;
	return rpc_client_new(&o);
}

static int
h_send(struct rpc_stream *s, const struct msg_edge_message *m)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (pbconv_encode_edge_message(m, &buf, &len) == -1) {
		fprintf(stderr, "hostile: encode failed\n");
		return -1;
	}
	rc = rpc_stream_send(s, buf, len);
	free(buf);
	return rc;
}

static void
h_hello(struct h *h, struct rpc_stream *s)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_HELLO;
	m.u.hello.site_id = h->site;
	snprintf(m.u.hello.software_version,
	    sizeof(m.u.hello.software_version), "hostile test");
	m.u.hello.backend = MSG_BACKEND_NULL;
	m.u.hello.features = MSG_FEATURE_GRE | MSG_FEATURE_AES_GCM_256 |
	    MSG_FEATURE_ESN | MSG_FEATURE_NAT_T;
	(void)h_send(s, &m);
}

static void
h_ack(struct rpc_stream *s, uint64_t v, bool ok, const uint8_t *hash)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.version = v;
	m.u.ack.ok = ok;
	if (!ok)
		snprintf(m.u.ack.reason, sizeof(m.u.ack.reason), "no");
	if (hash != NULL) {
		m.u.ack.has_convergence_hash = true;
		memcpy(m.u.ack.convergence_hash, hash, MSG_HASH_LEN);
	}
	(void)h_send(s, &m);
}

static int
h_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct h *h = arg;

	(void)peer;
	h->opened++;
	h->s = s;
	if (h->want_hello) {
		h_hello(h, s);
		h->sent_ms = util_mono_ms();
		for (unsigned i = 0; i < h->resyncs; i++)
			h_ack(s, 1, false, NULL);
	}
	return 0;
}

static void
h_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct h *h = arg;
	struct msg_controller_message m;
	char err[PBCONV_ERR_LEN];

	(void)s;
	h->msgs++;
	h->bytes += len;
	if (pbconv_decode_controller_message(buf, len, &m, err,
	    sizeof(err)) == -1)
		return;
	if (m.kind == MSG_CONTROLLER_SNAPSHOT) {
		h->snapshots++;
		h->got_ms = util_mono_ms();
		h->intent_version = m.u.snapshot.version;
		pbconv_intent_hash(&m.u.snapshot, h->hash);
		h->have = true;
	}
	msg_controller_message_free(&m);
}

static void
h_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct h *h = arg;

	(void)why;
	(void)msg;
	h->closed++;
	h->last_code = code;
	if (h->s == s)
		h->s = NULL;
}

static const struct rpc_stream_handlers handlers = {
	.on_open = h_open,
	.on_message = h_msg,
	.on_close = h_close,
};

/* Dispatches c until cond or ms passed. */
#define PUMP_UNTIL(c, cond, ms)                                                \
	do {                                                                   \
		uint64_t dl_ = util_mono_ms() + (ms);                          \
		while (!(cond) && util_mono_ms() < dl_) {                      \
			struct pollfd p_ = { .fd = rpc_client_fd(c),           \
				.events = POLLIN };                            \
			if (poll(&p_, 1, 20) > 0)                              \
				(void)rpc_client_dispatch(c);                  \
		}                                                              \
	} while (0)

/* A stream with a hello that got its snapshot; NULL on failure. */
static struct rpc_client *
h_connect(struct h *h)
{
	struct rpc_client *c = h_client(h, 0);

	if (c == NULL)
		return NULL;
	h->want_hello = true;
	if (rpc_client_stream_open(c, METHOD, &handlers, h, NULL) == -1)
		return NULL;
	PUMP_UNTIL(c, h->snapshots > 0 || h->closed > 0, 10000);
	if (h->snapshots == 0) {
		fprintf(stderr, "hostile: no snapshot after the hello\n");
		return NULL;
	}
	return c;
}

static int
mode_stall(struct h *h, int n, int m)
{
	struct rpc_client *c[MAXC];
	struct h hs[MAXC];
	int closed = 0;
	uint64_t lag = 0;
	char open[4 * MAXC + 8] = "";

	if (n < 1 || n > MAXC)
		return 2;
	for (int i = 0; i < n; i++) {
		hs[i] = *h;
		hs[i].want_hello = true;
		hs[i].resyncs = (unsigned)m;
		/* One message taken off the wire, then never another. */
		if ((c[i] = h_client(&hs[i], 1)) == NULL ||
		    rpc_client_stream_open(c[i], METHOD, &handlers, &hs[i],
		    NULL) == -1)
			return 1;
		/* The controller has taken the hello (and replaced stream
		 * i - 1) when its snapshot is here. */
		PUMP_UNTIL(c[i], hs[i].snapshots > 0 || hs[i].closed > 0,
		    20000);
		if (hs[i].snapshots == 0) {
			fprintf(stderr, "hostile: stream %d: no snapshot\n", i);
			return 1;
		}
		if (hs[i].got_ms - hs[i].sent_ms > lag)
			lag = hs[i].got_ms - hs[i].sent_ms;
		/* Give the controller time to queue its answers. */
		usleep(300 * 1000);
	}
	sleep(STALL_WAIT_S);
	for (int i = 0; i < n; i++) {
		PUMP_UNTIL(c[i], hs[i].closed > 0, 200);
		if (i < n - 1 && hs[i].closed > 0)
			closed++;
		else if (i < n - 1)
			snprintf(open + strlen(open), sizeof(open) - strlen(open),
			    "%s%d", open[0] == '\0' ? " open=" : ",", i);
	}
	printf("stalled closed=%d of %d lag=%" PRIu64 "%s\n", closed, n - 1,
	    lag, open);
	for (int i = 0; i < n; i++)
		rpc_client_free(c[i]);
	return 0;
}

static int
mode_nohello(struct h *h, int n)
{
	struct rpc_client *c = h_client(h, 0);
	uint64_t t0 = util_mono_ms();

	if (c == NULL)
		return 1;
	h->want_hello = false;
	for (int i = 0; i < n; i++)
		if (rpc_client_stream_open(c, METHOD, &handlers, h, NULL) == -1)
			return 1;
	PUMP_UNTIL(c, h->closed >= n, 30000);
	printf("nohello closed=%d of %d after=%" PRIu64 " code=%d\n",
	    h->closed, n, util_mono_ms() - t0, h->last_code);
	rpc_client_free(c);
	return 0;
}

static int
mode_bigstatus(struct h *h, int kb)
{
	struct rpc_client *c = h_connect(h);
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;
	uint8_t *buf;
	size_t len;

	if (c == NULL)
		return 1;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = h->intent_version;
	/* ~330 bytes encoded per tunnel: an error text and two SAs. */
	st->n_tunnels = (size_t)kb * 1024 / 330;
	if (st->n_tunnels > MSG_LIST_MAX)
		st->n_tunnels = MSG_LIST_MAX;
	if ((st->tunnels = calloc(st->n_tunnels, sizeof(*st->tunnels))) ==
	    NULL)
		return 1;
	for (size_t i = 0; i < st->n_tunnels; i++) {
		struct msg_tunnel_status *t = &st->tunnels[i];

		t->tunnel_id = i + 1;
		t->state = MSG_TUNNEL_STATE_DOWN;
		memset(t->error, 'e', 240);
		t->n_sas = 2;
		for (int k = 0; k < 2; k++) {
			t->sas[k].spi = 256 + (uint32_t)k;
			t->sas[k].direction = k ? MSG_DIRECTION_OUT :
			    MSG_DIRECTION_IN;
			t->sas[k].epoch = 1;
			t->sas[k].packets = UINT64_MAX - i;
		}
	}
	if (pbconv_encode_edge_message(&m, &buf, &len) == -1)
		return 1;
	msg_status_free(st);
	if (rpc_stream_send(h->s, buf, len) == -1) {
		fprintf(stderr, "hostile: send: %s\n", strerror(errno));
		return 1;
	}
	free(buf);
	printf("bigstatus sent=%zu\n", len);
	PUMP_UNTIL(c, h->closed > 0, 5000);
	printf("bigstatus closed=%d code=%d\n", h->closed, h->last_code);
	rpc_client_free(c);
	return 0;
}

static int
mode_status64(struct h *h)
{
	struct rpc_client *c = h_connect(h);
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;
	struct msg_tunnel_status t;

	if (c == NULL)
		return 1;
	memset(&m, 0, sizeof(m));
	memset(&t, 0, sizeof(t));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = h->intent_version;
	st->uptime_seconds = (1ull << 53) + 1;
	st->n_tunnels = 1;
	st->tunnels = &t;
	t.tunnel_id = 1;
	t.state = MSG_TUNNEL_STATE_UP;
	t.packets_in = UINT64_MAX;
	t.bytes_in = (1ull << 53) - 1;
	t.n_sas = 1;
	t.sas[0].spi = 4096;
	t.sas[0].direction = MSG_DIRECTION_IN;
	t.sas[0].epoch = (1ull << 63) + 5;
	t.sas[0].seq = UINT64_MAX - 1;
	t.sas[0].active = true;
	if (h_send(h->s, &m) == -1)
		return 1;
	PUMP_UNTIL(c, false, 500);
	printf("status64 sent closed=%d\n", h->closed);
	rpc_client_free(c);
	return 0;
}

static int
mode_ackflood(struct h *h, int n, bool wrong_hash)
{
	struct rpc_client *c = h_connect(h);
	int before;
	size_t bytes0;

	if (c == NULL)
		return 1;
	before = h->snapshots;
	bytes0 = h->bytes;
	for (int i = 0; i < n && h->s != NULL; i++) {
		uint8_t bad[MSG_HASH_LEN];

		memcpy(bad, h->hash, sizeof(bad));
		bad[0] ^= 1;
		if (wrong_hash)
			h_ack(h->s, h->intent_version, true, bad);
		else
			h_ack(h->s, h->intent_version, false, NULL);
		if (i % 64 == 63)
			PUMP_UNTIL(c, false, 5);
	}
	PUMP_UNTIL(c, false, 3000);
	printf("%s sent=%d snapshots=%d bytes=%zu closed=%d\n", wrong_hash ?
	    "hashflood" : "ackflood", n, h->snapshots - before,
	    h->bytes - bytes0, h->closed);
	rpc_client_free(c);
	return 0;
}

#define LABEL "meshwan-epoch-v1"
#define SIGNED_LEN (sizeof(LABEL) - 1 + 16 + MSG_KEY_LEN + 8)

static int
h_key(struct h *h, EVP_PKEY *pk, uint64_t epoch)
{
	struct msg_edge_message m;
	struct msg_key_announcement *k = &m.u.key;
	uint8_t msg[SIGNED_LEN];
	const size_t l = sizeof(LABEL) - 1;
	uint64_t na = (uint64_t)time(NULL) + 7200;
	size_t siglen = MSG_SIG_MAX;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -1;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_KEY;
	k->epoch = epoch;
	k->not_after = na;
	(void)util_random(k->public_key, MSG_KEY_LEN);
	k->public_key[31] &= 0x7f;
	memcpy(msg, LABEL, l);
	for (int i = 0; i < 8; i++) {
		msg[l + i] = (uint8_t)(h->site >> (56 - 8 * i));
		msg[l + 8 + i] = (uint8_t)(epoch >> (56 - 8 * i));
		msg[l + 16 + MSG_KEY_LEN + i] = (uint8_t)(na >> (56 - 8 * i));
	}
	memcpy(msg + l + 16, k->public_key, MSG_KEY_LEN);
	if (md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    pk) == 1 && EVP_DigestSign(md, k->signature, &siglen, msg,
	    sizeof(msg)) == 1) {
		k->signature_len = siglen;
		rc = h->s != NULL ? h_send(h->s, &m) : -1;
	}
	EVP_MD_CTX_free(md);
	return rc;
}

static int
mode_keyflood(struct h *h, int n)
{
	struct rpc_client *c;
	EVP_PKEY *pk;
	FILE *f = fopen(h->key, "r");
	int sent = 0;

	if (f == NULL)
		return 1;
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pk == NULL || (c = h_connect(h)) == NULL)
		return 1;
	for (int i = 0; i < n; i++) {
		if (h_key(h, pk, (uint64_t)time(NULL) * 1000 + (uint64_t)i) ==
		    0)
			sent++;
		if (i % 16 == 15)
			PUMP_UNTIL(c, false, 5);
	}
	PUMP_UNTIL(c, false, 1000);
	printf("keyflood sent=%d closed=%d\n", sent, h->closed);
	EVP_PKEY_free(pk);
	rpc_client_free(c);
	return 0;
}

static int
mode_statusflood(struct h *h, int n)
{
	struct rpc_client *c = h_connect(h);
	struct msg_edge_message m;
	int sent = 0;

	if (c == NULL)
		return 1;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	m.u.status.applied_version = h->intent_version;
	for (int i = 0; i < n && h->s != NULL; i++) {
		m.u.status.uptime_seconds = (uint64_t)i;
		if (h_send(h->s, &m) == 0)
			sent++;
		if (i % 64 == 63)
			PUMP_UNTIL(c, false, 5);
	}
	PUMP_UNTIL(c, false, 1000);
	printf("statusflood sent=%d closed=%d\n", sent, h->closed);
	rpc_client_free(c);
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
mode_probe(struct h *h, int secs)
{
	struct rpc_client *c = h_client(h, 0);
	uint64_t *lat, end = util_mono_ms() + (uint64_t)secs * 1000;
	size_t n = 0, cap = (size_t)secs * 10 + 16, lost = 0;

	if (c == NULL || (lat = calloc(cap, sizeof(*lat))) == NULL)
		return 1;
	h->want_hello = true;
	while (util_mono_ms() < end && n < cap) {
		int snaps = h->snapshots, opened = h->opened;
		uint64_t next = util_mono_ms() + 200;

		if (rpc_client_stream_open(c, METHOD, &handlers, h, NULL) ==
		    -1)
			return 1;
		PUMP_UNTIL(c, h->opened > opened, 10000);
		PUMP_UNTIL(c, h->snapshots > snaps, 15000);
		if (h->snapshots > snaps)
			lat[n++] = h->got_ms - h->sent_ms;
		else
			lost++;
		if (h->s != NULL)
			rpc_stream_close(h->s, RPC_OK, NULL);
		PUMP_UNTIL(c, util_mono_ms() >= next, 1000);
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("probe n=%zu lost=%zu p50=%" PRIu64 " p99=%" PRIu64 " max=%"
	    PRIu64 "\n", n, lost, n ? lat[n / 2] : 0,
	    n ? lat[(n * 99) / 100] : 0, n ? lat[n - 1] : 0);
	free(lat);
	rpc_client_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	struct h h;
	int n, m;

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("hostile", true);
	if (argc < 7) {
		fprintf(stderr, "usage: hostile TARGET CA CERT KEY SITE MODE "
		    "[N [M]]\n");
		return 2;
	}
	memset(&h, 0, sizeof(h));
	h.target = argv[1];
	h.ca = argv[2];
	h.cert = argv[3];
	h.key = argv[4];
	h.site = strtoull(argv[5], NULL, 10);
	n = argc > 7 ? atoi(argv[7]) : 1;
	m = argc > 8 ? atoi(argv[8]) : 0;
	if (strcmp(argv[6], "stall") == 0)
		return mode_stall(&h, n, m);
	if (strcmp(argv[6], "nohello") == 0)
		return mode_nohello(&h, n);
	if (strcmp(argv[6], "bigstatus") == 0)
		return mode_bigstatus(&h, n);
	if (strcmp(argv[6], "status64") == 0)
		return mode_status64(&h);
	if (strcmp(argv[6], "ackflood") == 0)
		return mode_ackflood(&h, n, false);
	if (strcmp(argv[6], "hashflood") == 0)
		return mode_ackflood(&h, n, true);
	if (strcmp(argv[6], "keyflood") == 0)
		return mode_keyflood(&h, n);
	if (strcmp(argv[6], "statusflood") == 0)
		return mode_statusflood(&h, n);
	if (strcmp(argv[6], "probe") == 0)
		return mode_probe(&h, n);
	fprintf(stderr, "hostile: unknown mode %s\n", argv[6]);
	return 2;
}
