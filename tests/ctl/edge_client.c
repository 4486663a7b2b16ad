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
 *       (never ack rekey orders: they stay due, repeated on each hello),
 *       -r (renew the certificate at its renewal point, a third of its
 *       validity left: new key, Edge.Renew, switch the stream; CERT and
 *       KEY are replaced; prints "renewed serial=S not_after=T").
 *       SIGTERM ends it cleanly.
 *   edge_client renew TARGET CA_PEM CERT_PEM KEY_PEM NEWKEY NEWCERT [-k]
 *       One renewal over Edge.Renew with CERT/KEY: a new key pair into
 *       NEWKEY (-k: NEWKEY is an existing key, e.g. the old one) and the
 *       new certificate (PEM) into NEWCERT.  Prints "renewed site=N
 *       serial=S not_after=T" or "refused code=C msg=...", exit 0 / 3.
 *
 * The stream and enrollment are edge-agent's library (session.c,
 * enroll.c), as meshwan-edge uses them; what stays here is what only a
 * test does: printing, the flags above, and the epoch-key signing that
 * the agent will get from proto/.
 */
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "edge-agent/enroll.h"
#include "edge-agent/session.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/rpc.h"

struct edge {
	struct session *sess;
	uint64_t site;
	bool once;
	bool done;
	bool corrupt;               /* -x: spoil the next delta ack's hash */
	unsigned rewind_s;          /* -R: leave on the first delta */
	bool status;                /* -s: report status after snapshots */
	bool no_rekey_ack;          /* -n: leave rekey orders unanswered */
	uint64_t key_epoch;
	EVP_PKEY *key;
	bool renew;                 /* -r: renew at the renewal point */
	const char *target, *ca, *cert_path, *key_path;
	int64_t renew_at;           /* unix s */
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
edge_send(struct edge *e, const struct msg_edge_message *m)
{
	return session_send(e->sess, m);
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
edge_announce(struct edge *e)
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
	edge_send(e, &m);
	printf("announced epoch=%" PRIu64 "\n", k->epoch);
	e->key_epoch++;
}

static void
edge_status(struct edge *e, const struct msg_intent *in)
{
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = in->version;
	st->uptime_seconds = 42;
	st->n_tunnels = in->n_tunnels;
	if (st->n_tunnels > 0 &&
	    (st->tunnels = calloc(st->n_tunnels, sizeof(*st->tunnels))) == NULL)
		return;
	for (size_t i = 0; i < st->n_tunnels; i++) {
		struct msg_tunnel_status *t = &st->tunnels[i];

		t->tunnel_id = in->tunnels[i].id;
		t->state = MSG_TUNNEL_STATE_UP;
		t->packets_in = t->packets_out = 10;
		t->n_sas = 1;
		t->sas[0].spi = in->tunnels[i].spi_in;
		t->sas[0].direction = MSG_DIRECTION_IN;
		t->sas[0].epoch = 1;
		t->sas[0].active = true;
	}
	edge_send(e, &m);
	msg_status_free(st);
	printf("status sent tunnels=%zu\n", in->n_tunnels);
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
edge_on_open(struct session *s, uint64_t applied, void *arg)
{
	struct edge *e = arg;

	(void)s;
	printf("open applied=%" PRIu64 "\n", applied);
	if (e->key != NULL && e->key_epoch > 0)
		edge_announce(e);
	fflush(stdout);
}

/* -R: the first delta is dropped, and the edge leaves for a while. */
static bool
edge_on_receive(struct session *s, uint64_t version,
    const struct msg_intent_delta *d, void *arg)
{
	struct edge *e = arg;

	if (d == NULL || e->rewind_s == 0)
		return true;
	printf("rewind: dropped delta v=%" PRIu64 ", back in %u s\n", version,
	    e->rewind_s);
	fflush(stdout);
	session_leave(s, e->rewind_s);
	e->rewind_s = 0;
	return false;
}

static int
edge_on_intent(struct session *s, const struct msg_intent *in,
    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
    char *reason, size_t reasonsz, void *arg)
{
	struct edge *e = arg;

	(void)s;
	(void)reason;
	(void)reasonsz;
	if (d == NULL) {
		printf("snapshot v=%" PRIu64 " tunnels=%zu\n", in->version,
		    in->n_tunnels);
		for (size_t i = 0; i < in->n_tunnels; i++)
			edge_print_tunnel("tunnel", &in->tunnels[i]);
		printf("ack v=%" PRIu64 "\n", in->version);
		if (e->status)
			edge_status(e, in);
		fflush(stdout);
		return 0;
	}
	printf("delta from=%" PRIu64 " v=%" PRIu64 " up=%zu rm=%zu\n",
	    d->from_version, d->version, d->n_upsert, d->n_remove);
	for (size_t i = 0; i < d->n_upsert; i++)
		edge_print_tunnel("upsert", &d->upsert[i]);
	if (d->has_site)
		printf("  site changed\n");
	if (e->corrupt) {
		hash[0] ^= 1;
		e->corrupt = false;
		printf("ack v=%" PRIu64 " with a wrong hash\n", in->version);
	} else {
		printf("ack v=%" PRIu64 "\n", in->version);
	}
	fflush(stdout);
	return 0;
}

static int
edge_on_rekey(struct session *s, const struct msg_rekey_order *o,
    char *reason, size_t reasonsz, void *arg)
{
	struct edge *e = arg;

	(void)s;
	(void)reason;
	(void)reasonsz;
	printf("rekey tunnel=%" PRIu64 " epoch=%" PRIu64 " step=%s "
	    "reason=%s\n", o->tunnel_id, o->epoch,
	    msg_rekey_step_name(o->step), msg_rekey_reason_name(o->reason));
	fflush(stdout);
	return e->no_rekey_ack ? 1 : 0;
}

static void
edge_on_peer_keys(struct session *s, const struct msg_peer_keys *k,
    void *arg)
{
	(void)s;
	(void)arg;
	printf("peer_keys site=%" PRIu64 " n=%zu epoch=%" PRIu64 "\n",
	    k->peer_site_id, k->n_keys, k->keys[k->n_keys - 1].epoch);
	fflush(stdout);
}

static void
edge_on_close(struct session *s, enum rpc_close_reason why, int code,
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

/* A CSR (DER) signed with the existing key in path. */
static int
edge_csr_of_key(const char *path, uint8_t **csr, size_t *csr_len)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	int len = -1;

	if (f != NULL)
		fclose(f);
	if (k != NULL && req != NULL && X509_REQ_set_pubkey(req, k) == 1 &&
	    X509_REQ_sign(req, k, EVP_sha256()) > 0 &&
	    (len = i2d_X509_REQ(req, &der)) > 0 &&
	    (*csr = malloc((size_t)len)) != NULL) {
		memcpy(*csr, der, (size_t)len);
		*csr_len = (size_t)len;
	} else
		len = -1;
	OPENSSL_free(der);
	X509_REQ_free(req);
	EVP_PKEY_free(k);
	return len > 0 ? 0 : -1;
}

/* "serial=S not_after=T" of a DER certificate, for the test's lines. */
static void
edge_cert_line(const struct msg_blob *der, char *buf, size_t bufsz)
{
	const unsigned char *p = der->data;
	X509 *x = d2i_X509(NULL, &p, (long)der->len);
	BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) :
	    NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (x != NULL)
		(void)ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
	snprintf(buf, bufsz, "serial=%s not_after=%lld", hex ? hex : "?",
	    x ? (long long)timegm(&tm) : 0LL);
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
}

/*
 * One renewal: a CSR for a new key in newkey (or for the key already
 * there, keep), Edge.Renew with cert/key, the certificate into newcert
 * (PEM).  0 renewed, 1 refused (*code, msg), -1 local error.
 */
static int
edge_renew_once(const char *target, const char *ca, const char *cert,
    const char *key, const char *newkey, const char *newcert, bool keep,
    int *code, char *msg, size_t msgsz, char *line, size_t linesz,
    uint64_t *site)
{
	struct rpc_client *cli;
	struct msg_enroll_response rs;
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	int r;

	if ((keep ? edge_csr_of_key(newkey, &csr, &csr_len) :
	    enroll_keygen(newkey, &csr, &csr_len)) == -1)
		return -1;
	if ((cli = enroll_renew_client(target, ca, cert, key, "localhost")) ==
	    NULL) {
		free(csr);
		return -1;
	}
	r = enroll_renew_call(cli, csr, csr_len, "edge_client test", 10000,
	    &rs, code, msg, msgsz);
	free(csr);
	rpc_client_free(cli);
	if (r != 0)
		return r;
	if (enroll_write_cert(newcert, &rs.certificate_der, true) == -1) {
		msg_enroll_response_free(&rs);
		return -1;
	}
	edge_cert_line(&rs.certificate_der, line, linesz);
	*site = rs.site_id;
	msg_enroll_response_free(&rs);
	return 0;
}

static int
edge_renew(int argc, char **argv)
{
	char msg[512], line[128];
	uint64_t site = 0;
	int code = -1, r;
	bool keep = argc == 9 && strcmp(argv[8], "-k") == 0;

	if (argc != 8 && !keep) {
		fprintf(stderr, "usage: renew TARGET CA CERT KEY NEWKEY NEWCERT "
		    "[-k]\n");
		return 2;
	}
	r = edge_renew_once(argv[2], argv[3], argv[4], argv[5], argv[6],
	    argv[7], keep, &code, msg, sizeof(msg), line, sizeof(line), &site);
	if (r == -1)
		return 1;
	if (r == 1) {
		printf("refused code=%d msg=%s\n", code, msg);
		return 3;
	}
	printf("renewed site=%" PRIu64 " %s\n", site, line);
	return 0;
}

/* -r: renew at the renewal point and move the stream to the new
 * certificate; on failure try again a second later. */
static void
edge_renew_due(struct edge *e)
{
	char newkey[512], newcert[512], msg[512], line[128];
	uint64_t site = 0;
	int code = -1, r;
	FILE *kf;

	if (!e->renew || (int64_t)time(NULL) < e->renew_at)
		return;
	snprintf(newkey, sizeof(newkey), "%s.next", e->key_path);
	snprintf(newcert, sizeof(newcert), "%s.next", e->cert_path);
	r = edge_renew_once(e->target, e->ca, e->cert_path, e->key_path,
	    newkey, newcert, false, &code, msg, sizeof(msg), line,
	    sizeof(line), &site);
	if (r != 0) {
		printf("renew failed code=%d msg=%s\n", code, r == 1 ? msg :
		    "local error");
		e->renew_at = (int64_t)time(NULL) + 1;
		return;
	}
	if (session_switch_cert(e->sess, newcert, newkey) == -1 ||
	    rename(newcert, e->cert_path) == -1 ||
	    rename(newkey, e->key_path) == -1 ||
	    enroll_renew_at(e->cert_path, &e->renew_at, NULL) == -1) {
		printf("renew: cannot switch to the new certificate\n");
		e->renew_at = (int64_t)time(NULL) + 1;
		return;
	}
	if (e->key != NULL && (kf = fopen(e->key_path, "r")) != NULL) {
		EVP_PKEY_free(e->key);
		e->key = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
		fclose(kf);
	}
	printf("renewed %s\n", line);
	fflush(stdout);
}

static int
edge_enroll(int argc, char **argv)
{
	struct rpc_client *cli;
	struct msg_enroll_response rs;
	uint8_t *csr;
	size_t csr_len;
	char msg[512];
	int code, r;

	if (argc != 7 || edge_read(argv[5], &csr, &csr_len) == -1) {
		fprintf(stderr, "usage: enroll TARGET CA TOKEN CSR OUT\n");
		return 2;
	}
	if ((cli = enroll_client(argv[2], argv[3], "localhost")) == NULL)
		return 1;
	r = enroll_call(cli, argv[4], csr, csr_len, "edge_client test", 10000,
	    &rs, &code, msg, sizeof(msg));
	free(csr);
	rpc_client_free(cli);
	if (r == -1)
		return 1;
	if (r == 1) {
		printf("refused code=%d msg=%s\n", code, msg);
		return 3;
	}
	if (enroll_write_cert(argv[6], &rs.certificate_der, false) == -1) {
		msg_enroll_response_free(&rs);
		return 1;
	}
	printf("enrolled site=%" PRIu64 " chain=%zu controller=%s\n",
	    rs.site_id, rs.n_ca_chain, rs.controller_name);
	msg_enroll_response_free(&rs);
	return 0;
}

static int
edge_session(int argc, char **argv)
{
	static const struct session_handlers h = {
		.on_open = edge_on_open,
		.on_receive = edge_on_receive,
		.on_intent = edge_on_intent,
		.on_rekey = edge_on_rekey,
		.on_peer_keys = edge_on_peer_keys,
		.on_close = edge_on_close,
	};
	struct session_opts o;
	struct edge e;
	uint64_t v;
	int opt;
	FILE *kf;

	memset(&e, 0, sizeof(e));
	optind = 7;
	while ((opt = getopt(argc, argv, "ok:xR:snr")) != -1) {
		switch (opt) {
		case 'o':
			e.once = true;
			break;
		case 'r':
			e.renew = true;
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
		    "[-o] [-k EPOCH] [-x] [-R SECS] [-s] [-n] [-r]\n");
		return 2;
	}
	e.target = argv[2];
	e.ca = argv[3];
	e.cert_path = argv[4];
	e.key_path = argv[5];
	if (e.renew && enroll_renew_at(e.cert_path, &e.renew_at, NULL) == -1)
		return 1;
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
	o.ca_file = argv[3];
	o.cert_file = argv[4];
	o.key_file = argv[5];
	o.server_name = "localhost";
	o.site_id = e.site;
	o.software_version = "edge_client test";
	o.backend = MSG_BACKEND_NULL;
	o.features = MSG_FEATURE_GRE | MSG_FEATURE_VXLAN |
	    MSG_FEATURE_AES_GCM_128 | MSG_FEATURE_AES_GCM_256 |
	    MSG_FEATURE_ESN | MSG_FEATURE_NAT_T;
	o.h = &h;
	o.arg = &e;
	if ((e.sess = session_new(&o)) == NULL)
		return 1;
	while (!edge_quit && !e.done) {
		struct pollfd p = { .fd = session_fd(e.sess),
			.events = POLLIN };
		int t = session_timeout_ms(e.sess);

		(void)poll(&p, 1, t >= 0 && t < 200 ? t : 200);
		if (session_dispatch(e.sess) == -1)
			return 1;
		edge_renew_due(&e);
	}
	session_free(e.sess);
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
	if (argc >= 2 && strcmp(argv[1], "renew") == 0)
		return edge_renew(argc, argv);
	fprintf(stderr, "usage: edge_client enroll|session|renew ...\n");
	return 2;
}
