/*
 * edge_client.c — a test edge for meshwan-controller, through proto/rpc
 * and proto/pbconv only (the same path the real agent takes).
 *
 *   edge_client enroll TARGET CA_PEM TOKEN CSR_DER CERT_DER_OUT
 *       Prints "enrolled site=N" or "refused code=C msg=...", exit 0 / 3.
 *   edge_client session TARGET CA_PEM CERT_PEM KEY_PEM SITE [options]
 *       Opens the Session stream (reconnecting), says hello for SITE,
 *       applies every snapshot/delta to its in-memory intent, acks with
 *       the convergence hash, and prints one line per event:
 *         open | snapshot v=V tunnels=N | delta from=F v=V up=U rm=R |
 *         ack v=V | peer_keys site=S n=N | rekey ... | closed code=C msg=M
 *       Options: -o (exit after the first close), -k EPOCH (announce a
 *       signed epoch key after each hello), -x (ack the first delta with
 *       a wrong convergence hash: the controller must resync), -R SECS
 *       (drop the first delta unapplied, leave, and come back after SECS
 *       with the old version: an edge that fell behind), -s (report a
 *       status after each snapshot: every tunnel up, one SA each), -n
 *       (never ack rekey orders: they stay due, repeated on each hello).
 *       SIGTERM ends it cleanly.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

struct edge {
	struct rpc_client *cli;
	uint64_t site;
	struct msg_intent intent;   /* version 0 = none */
	bool have;
	uint8_t hash[MSG_HASH_LEN];
	bool once;
	bool done;
	bool corrupt;               /* -x: spoil the next delta ack's hash */
	unsigned rewind_s;          /* -R: leave on the first delta */
	bool status;                /* -s: report status after snapshots */
	bool no_rekey_ack;          /* -n: leave rekey orders unanswered */
	uint64_t reopen_at;         /* mono ms; 0 = no reopen pending */
	uint64_t key_epoch;
	EVP_PKEY *key;
};

static volatile sig_atomic_t edge_quit;

static void
edge_sig(int sig)
{
	(void)sig;
	edge_quit = 1;
}

static int
edge_read(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc((size_t)n + 1);
	if (*buf == NULL || fread(*buf, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return -1;
	}
	fclose(f);
	*len = (size_t)n;
	return 0;
}

static int
edge_send(struct rpc_stream *s, const struct msg_edge_message *m)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (pbconv_encode_edge_message(m, &buf, &len) == -1) {
		fprintf(stderr, "encode failed\n");
		return -1;
	}
	rc = rpc_stream_send(s, buf, len);
	free(buf);
	return rc;
}

#define EDGE_LABEL "meshwan-epoch-v1"
#define EDGE_SIGNED_LEN (sizeof(EDGE_LABEL) - 1 + 16 + MSG_KEY_LEN + 8)

/* The bytes an epoch key's signature covers (proto/README.md). */
static void
edge_signed_bytes(uint64_t site, uint64_t epoch, const uint8_t *pub,
    uint64_t not_after, uint8_t msg[EDGE_SIGNED_LEN])
{
	const size_t l = sizeof(EDGE_LABEL) - 1;

	memcpy(msg, EDGE_LABEL, l);
	for (int i = 0; i < 8; i++) {
		msg[l + i] = (uint8_t)(site >> (56 - 8 * i));
		msg[l + 8 + i] = (uint8_t)(epoch >> (56 - 8 * i));
		msg[l + 16 + MSG_KEY_LEN + i] =
		    (uint8_t)(not_after >> (56 - 8 * i));
	}
	memcpy(msg + l + 16, pub, MSG_KEY_LEN);
}

/* What a real agent does before using a peer key from its intent. */
static bool
edge_key_ok(const struct msg_tunnel *t, const struct msg_peer_key *k)
{
	const unsigned char *p = t->peer.certificate_der.data;
	uint8_t msg[EDGE_SIGNED_LEN];
	EVP_MD_CTX *md = NULL;
	X509 *x;
	bool ok = false;

	if (t->peer.certificate_der.len == 0 || (x = d2i_X509(NULL, &p,
	    (long)t->peer.certificate_der.len)) == NULL)
		return false;
	edge_signed_bytes(t->peer.site_id, k->epoch, k->public_key,
	    k->not_after, msg);
	if ((md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(x)) == 1 &&
	    EVP_DigestVerify(md, k->signature, k->signature_len, msg,
	    sizeof(msg)) == 1)
		ok = true;
	EVP_MD_CTX_free(md);
	X509_free(x);
	return ok;
}

static void
edge_announce(struct edge *e, struct rpc_stream *s)
{
	uint8_t msg[EDGE_SIGNED_LEN];
	struct msg_edge_message m;
	struct msg_key_announcement *k = &m.u.key;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = MSG_SIG_MAX;
	uint64_t na = (uint64_t)time(NULL) + 7200;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_KEY;
	k->epoch = e->key_epoch;
	util_random(k->public_key, MSG_KEY_LEN);
	k->not_after = na;
	edge_signed_bytes(e->site, k->epoch, k->public_key, na, msg);
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    e->key) != 1 || EVP_DigestSign(md, k->signature, &siglen, msg,
	    sizeof(msg)) != 1) {
		fprintf(stderr, "signing failed\n");
		EVP_MD_CTX_free(md);
		return;
	}
	EVP_MD_CTX_free(md);
	k->signature_len = siglen;
	edge_send(s, &m);
	printf("announced epoch=%" PRIu64 "\n", k->epoch);
	e->key_epoch++;
}

static void
edge_status(struct edge *e, struct rpc_stream *s)
{
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = e->intent.version;
	st->uptime_seconds = 42;
	st->n_tunnels = e->intent.n_tunnels;
	if (st->n_tunnels > 0 &&
	    (st->tunnels = calloc(st->n_tunnels, sizeof(*st->tunnels))) == NULL)
		return;
	for (size_t i = 0; i < st->n_tunnels; i++) {
		struct msg_tunnel_status *t = &st->tunnels[i];

		t->tunnel_id = e->intent.tunnels[i].id;
		t->state = MSG_TUNNEL_STATE_UP;
		t->packets_in = t->packets_out = 10;
		t->n_sas = 1;
		t->sas[0].spi = e->intent.tunnels[i].spi_in;
		t->sas[0].direction = MSG_DIRECTION_IN;
		t->sas[0].epoch = 1;
		t->sas[0].active = true;
	}
	edge_send(s, &m);
	msg_status_free(st);
	printf("status sent tunnels=%zu\n", e->intent.n_tunnels);
}

/* One line per tunnel; keys as "epoch:signature length" (newest last),
 * after checking the key's signature against the peer's certificate. */
static void
edge_print_tunnel(const char *what, const struct msg_tunnel *t)
{
	printf("  %s tunnel=%" PRIu64 " peer=%" PRIu64 " cert=%zu spi_in=%u "
	    "spi_out=%u keys=", what, t->id, t->peer.site_id,
	    t->peer.certificate_der.len, t->spi_in, t->spi_out);
	for (size_t k = 0; k < t->peer.n_keys; k++)
		printf("%s%" PRIu64 ":%zu%s", k ? "," : "",
		    t->peer.keys[k].epoch, t->peer.keys[k].signature_len,
		    edge_key_ok(t, &t->peer.keys[k]) ? "" : "!bad");
	printf("\n");
}

static void
edge_ack(struct rpc_stream *s, uint64_t v, bool ok, const char *reason,
    const uint8_t *hash)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.version = v;
	m.u.ack.ok = ok;
	if (reason)
		snprintf(m.u.ack.reason, sizeof(m.u.ack.reason), "%s", reason);
	if (hash) {
		m.u.ack.has_convergence_hash = true;
		memcpy(m.u.ack.convergence_hash, hash, MSG_HASH_LEN);
	}
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
	m.u.hello.applied_version = e->have ? e->intent.version : 0;
	m.u.hello.has_convergence_hash = e->have;
	if (e->have)
		memcpy(m.u.hello.convergence_hash, e->hash, MSG_HASH_LEN);
	snprintf(m.u.hello.software_version,
	    sizeof(m.u.hello.software_version), "edge_client test");
	m.u.hello.backend = MSG_BACKEND_NULL;
	m.u.hello.features = MSG_FEATURE_GRE | MSG_FEATURE_VXLAN |
	    MSG_FEATURE_AES_GCM_128 | MSG_FEATURE_AES_GCM_256 |
	    MSG_FEATURE_ESN | MSG_FEATURE_NAT_T;
	printf("open applied=%" PRIu64 "\n", m.u.hello.applied_version);
	edge_send(s, &m);
	if (e->key != NULL && e->key_epoch > 0)
		edge_announce(e, s);
	fflush(stdout);
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
		printf("bad message: %s\n", err);
		fflush(stdout);
		return;
	}
	switch (m.kind) {
	case MSG_CONTROLLER_SNAPSHOT:
		msg_intent_free(&e->intent);
		e->intent = m.u.snapshot;
		memset(&m.u.snapshot, 0, sizeof(m.u.snapshot));
		e->have = true;
		pbconv_intent_hash(&e->intent, e->hash);
		printf("snapshot v=%" PRIu64 " tunnels=%zu\n",
		    e->intent.version, e->intent.n_tunnels);
		for (size_t i = 0; i < e->intent.n_tunnels; i++)
			edge_print_tunnel("tunnel", &e->intent.tunnels[i]);
		edge_ack(s, e->intent.version, true, NULL, e->hash);
		printf("ack v=%" PRIu64 "\n", e->intent.version);
		if (e->status)
			edge_status(e, s);
		break;
	case MSG_CONTROLLER_DELTA:
		if (e->rewind_s > 0) {
			printf("rewind: dropped delta v=%" PRIu64 ", back in %u s\n",
			    m.u.delta.version, e->rewind_s);
			e->reopen_at = util_mono_ms() + e->rewind_s * 1000ull;
			e->rewind_s = 0;
			rpc_stream_cancel(s);
			break;
		}
		if (!e->have || msg_intent_apply_delta(&e->intent, &m.u.delta,
		    err, sizeof(err)) == -1) {
			printf("delta refused: %s\n", e->have ? err :
			    "no intent");
			edge_ack(s, m.u.delta.version, false, "delta does not "
			    "apply", NULL);
			break;
		}
		pbconv_intent_hash(&e->intent, e->hash);
		printf("delta from=%" PRIu64 " v=%" PRIu64 " up=%zu rm=%zu\n",
		    m.u.delta.from_version, m.u.delta.version,
		    m.u.delta.n_upsert, m.u.delta.n_remove);
		for (size_t i = 0; i < m.u.delta.n_upsert; i++)
			edge_print_tunnel("upsert", &m.u.delta.upsert[i]);
		if (m.u.delta.has_site)
			printf("  site changed\n");
		if (e->corrupt) {
			uint8_t bad[MSG_HASH_LEN];

			memcpy(bad, e->hash, sizeof(bad));
			bad[0] ^= 1;
			e->corrupt = false;
			edge_ack(s, e->intent.version, true, NULL, bad);
			printf("ack v=%" PRIu64 " with a wrong hash\n",
			    e->intent.version);
			break;
		}
		edge_ack(s, e->intent.version, true, NULL, e->hash);
		printf("ack v=%" PRIu64 "\n", e->intent.version);
		break;
	case MSG_CONTROLLER_PEER_KEYS:
		printf("peer_keys site=%" PRIu64 " n=%zu epoch=%" PRIu64 "\n",
		    m.u.peer_keys.peer_site_id, m.u.peer_keys.n_keys,
		    m.u.peer_keys.keys[m.u.peer_keys.n_keys - 1].epoch);
		break;
	case MSG_CONTROLLER_REKEY: {
		struct msg_edge_message a;

		printf("rekey tunnel=%" PRIu64 " epoch=%" PRIu64 " step=%s "
		    "reason=%s\n", m.u.rekey.tunnel_id, m.u.rekey.epoch,
		    msg_rekey_step_name(m.u.rekey.step),
		    msg_rekey_reason_name(m.u.rekey.reason));
		if (e->no_rekey_ack)
			break;
		memset(&a, 0, sizeof(a));
		a.kind = MSG_EDGE_ACK;
		a.u.ack.ok = true;
		a.u.ack.rekey_tunnel_id = m.u.rekey.tunnel_id;
		a.u.ack.rekey_epoch = m.u.rekey.epoch;
		a.u.ack.rekey_step = m.u.rekey.step;
		edge_send(s, &a);
		break;
	}
	case MSG_CONTROLLER_KEEPALIVE:
		break;
	default:
		printf("message kind=%d\n", (int)m.kind);
		break;
	}
	fflush(stdout);
	msg_controller_message_free(&m);
}

static void
edge_on_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct edge *e = arg;

	(void)s;
	printf("closed code=%d why=%s msg=%s\n", code,
	    rpc_close_reason_str(why), msg ? msg : "");
	fflush(stdout);
	if (e->once)
		e->done = true;
}

static int
edge_enroll(int argc, char **argv)
{
	struct rpc_client_opts o;
	struct rpc_client *cli;
	struct msg_enroll_request rq;
	struct msg_enroll_response rs;
	uint8_t *csr, *req, *resp = NULL;
	size_t csr_len, req_len, resp_len = 0;
	char msg[512], err[PBCONV_ERR_LEN];
	int code = -1;
	FILE *f;

	if (argc != 7 || edge_read(argv[5], &csr, &csr_len) == -1) {
		fprintf(stderr, "usage: enroll TARGET CA TOKEN CSR OUT\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.target = argv[2];
	o.tls.ca_file = argv[3];
	o.server_name = "localhost";
	if ((cli = rpc_client_new(&o)) == NULL)
		return 1;
	memset(&rq, 0, sizeof(rq));
	snprintf(rq.token, sizeof(rq.token), "%s", argv[4]);
	rq.csr_der.data = csr;
	rq.csr_der.len = csr_len;
	snprintf(rq.software_version, sizeof(rq.software_version),
	    "edge_client test");
	if (pbconv_encode_enroll_request(&rq, &req, &req_len) == -1)
		return 1;
	if (rpc_client_unary(cli, "/meshwan.v1.Enrollment/Enroll", req,
	    req_len, 10000, &code, &resp, &resp_len, msg, sizeof(msg)) == -1) {
		fprintf(stderr, "unary call failed locally\n");
		return 1;
	}
	free(req);
	free(csr);
	rpc_client_free(cli);
	if (code != RPC_OK) {
		printf("refused code=%d msg=%s\n", code, msg);
		return 3;
	}
	if (pbconv_decode_enroll_response(resp, resp_len, &rs, err,
	    sizeof(err)) == -1) {
		printf("bad response: %s\n", err);
		return 1;
	}
	free(resp);
	if ((f = fopen(argv[6], "wb")) == NULL ||
	    fwrite(rs.certificate_der.data, 1, rs.certificate_der.len, f) !=
	    rs.certificate_der.len || fclose(f) != 0)
		return 1;
	printf("enrolled site=%" PRIu64 " chain=%zu controller=%s\n",
	    rs.site_id, rs.n_ca_chain, rs.controller_name);
	msg_enroll_response_free(&rs);
	return 0;
}

static int
edge_session(int argc, char **argv)
{
	static const struct rpc_stream_handlers h = {
		.on_open = edge_on_open,
		.on_message = edge_on_message,
		.on_close = edge_on_close,
	};
	struct rpc_client_opts o;
	struct rpc_stream_opts so = { .reconnect = true };
	struct edge e;
	uint64_t v;
	int opt;
	FILE *kf;

	memset(&e, 0, sizeof(e));
	optind = 7;
	while ((opt = getopt(argc, argv, "ok:xR:sn")) != -1) {
		switch (opt) {
		case 'o':
			e.once = true;
			break;
		case 'x':
			e.corrupt = true;
			break;
		case 's':
			e.status = true;
			break;
		case 'n':
			e.no_rekey_ack = true;
			break;
		case 'R':
			if (util_parse_u64(optarg, 1, 60, &v) == -1)
				return 2;
			e.rewind_s = (unsigned)v;
			break;
		case 'k':
			if (util_parse_u64(optarg, 1, UINT32_MAX, &v) == -1)
				return 2;
			e.key_epoch = v;
			break;
		default:
			return 2;
		}
	}
	if (argc < 7 || util_parse_u64(argv[6], 1, INT64_MAX, &e.site) == -1) {
		fprintf(stderr, "usage: session TARGET CA CERT KEY SITE "
		    "[-o] [-k EPOCH] [-x] [-R SECS] [-s] [-n]\n");
		return 2;
	}
	if (e.key_epoch > 0) {
		if ((kf = fopen(argv[5], "r")) == NULL)
			return 1;
		e.key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
		fclose(kf);
		if (e.key == NULL)
			return 1;
	}
	memset(&o, 0, sizeof(o));
	o.target = argv[2];
	o.tls.ca_file = argv[3];
	o.tls.cert_file = argv[4];
	o.tls.key_file = argv[5];
	o.server_name = "localhost";
	if ((e.cli = rpc_client_new(&o)) == NULL)
		return 1;
	if (rpc_client_stream_open(e.cli, "/meshwan.v1.Edge/Session", &h, &e,
	    &so) == -1)
		return 1;
	while (!edge_quit && !e.done) {
		struct pollfd p = { .fd = rpc_client_fd(e.cli),
			.events = POLLIN };

		if (poll(&p, 1, 200) > 0)
			rpc_client_dispatch(e.cli);
		if (e.reopen_at != 0 && util_mono_ms() >= e.reopen_at) {
			e.reopen_at = 0;
			if (rpc_client_stream_open(e.cli,
			    "/meshwan.v1.Edge/Session", &h, &e, &so) == -1)
				return 1;
		}
	}
	rpc_client_free(e.cli);
	msg_intent_free(&e.intent);
	EVP_PKEY_free(e.key);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = edge_sig;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("edge_client", true);
	if (argc >= 2 && strcmp(argv[1], "enroll") == 0)
		return edge_enroll(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "session") == 0)
		return edge_session(argc, argv);
	fprintf(stderr, "usage: edge_client enroll|session ...\n");
	return 2;
}
