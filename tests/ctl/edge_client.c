/*
 * edge_client.c — a test edge for meshwan-controller, through proto/rpc
 * and proto/pbconv only (the same path the real agent takes).
 *
 *   edge_client enroll TARGET CA_PEM TOKEN CSR_DER CERT_DER_OUT
 *       Prints "enrolled site=N" or "refused code=C msg=...", exit 0 / 3.
 *   edge_client session TARGET[,TARGET...] CA_PEM CERT_PEM KEY_PEM SITE [options]
 *       Opens the Session stream (reconnecting), says hello for SITE,
 *       applies every snapshot/delta to its in-memory intent, acks with
 *       the convergence hash, and prints one line per event:
 *         open | snapshot v=V tunnels=N | delta from=F v=V up=U rm=R |
 *         ack v=V | peer_keys site=S n=N | rekey ... | closed code=C msg=M
 *       Options: -o (exit after the first close), -k EPOCH (announce a
 *       signed epoch key after each hello), -x (ack the first delta with
 *       a wrong convergence hash: the controller must resync), -X (fail
 *       the first delta's ack, reason "test: refused on purpose"),
 *       -R SECS
 *       (drop the first delta unapplied, leave, and come back after SECS,
 *       or 1 s after a SIGUSR2, with the old version: an edge that fell
 *       behind), -s (report a
 *       status after each snapshot: every tunnel up, one SA each), -n
 *       (never ack rekey orders: they stay due, repeated on each hello),
 *       -A VERSION (the first hello claims applied VERSION: an edge ahead
 *       of the controller), -S N (report N statuses in a row after the
 *       first snapshot, uptime_seconds 1..N),
 *       -t FILE (after each applied snapshot or delta, write the intent's
 *       tunnels to FILE, one "tunnel ID peer P inner A.B.C.D vni V
 *       allowed P1,P2|-" line each (allowed: Peer.allowed_prefixes),
 *       replaced atomically),
 *       -E / -Z (announce the -k key with not_after in the past / as the
 *       all-zero point: the controller must refuse it), -q TUNNEL,N
 *       (after the first intent, ask N times for a rekey of TUNNEL's
 *       outbound direction, reason soft byte limit), -H (statuses
 *       carry one health entry per tunnel, values from uptime_seconds),
 *       -Y TUNNEL (with -H, also a health entry for TUNNEL, which is not
 *       this edge's: the controller must not keep it),
 *       -r (renew the
 *       certificate at its renewal point, a third of its validity left:
 *       new key, Edge.Renew, switch the stream; CERT and KEY are
 *       replaced; prints "renewed serial=S not_after=T"; SIGUSR1:
 *       renew now, without waiting for the renewal point).
 *       -F MS (with several TARGETs, comma-separated: after MS, default
 *       3000, without a stream, a new session to the next one, resuming
 *       from the applied intent; prints "target T applied=V"),
 *       SIGTERM ends it cleanly.
 *   edge_client renew TARGET CA_PEM CERT_PEM KEY_PEM NEWKEY NEWCERT [-k]
 *       One renewal over Edge.Renew with CERT/KEY: a new key pair into
 *       NEWKEY (-k: NEWKEY is an existing key, e.g. the old one) and the
 *       new certificate (PEM) into NEWCERT.  Prints "renewed site=N
 *       serial=S not_after=T" or "refused code=C msg=...", exit 0 / 3.
 *
 *       Keys: -k makes real X25519 key pairs (proto/sakey) and signs them
 *       (proto/epochsig); every SA a rekey order or the intent names is
 *       derived with proto/sakey and printed as
 *         sa|intent_sa tunnel=T dir=in|out sa_epoch=E spi=S keys=KS/KR X
 *       where X is fp=<keyed fingerprint> (never the key), "nokey" (key
 *       epochs 0), "missing own|peer key" or "derive failed".  Peer keys
 *       are checked with epochsig_verify against Intent.ca_chain_der
 *       before use, as the agent does.
 *
 * The stream and enrollment are edge-agent's library (session.c,
 * enroll.c), as meshwan-edge uses them; what stays here is what only a
 * test does: printing and the flags above.
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
#include "proto/epochsig.h"
#include "proto/msg.h"
#include "proto/rpc.h"
#include "proto/sakey.h"

#define EDGE_KEYS 16                /* own key pairs kept, newest last */
#define EDGE_TARGETS 4              /* controller addresses */
#define EDGE_FAILOVER_MS 3000       /* -F default */

struct edge {
	struct session *sess;
	uint64_t site;
	bool once;
	bool done;
	bool corrupt;               /* -x: spoil the next delta ack's hash */
	bool refuse;                /* -X: fail the next delta's ack */
	unsigned rewind_s;          /* -R: leave on the first delta */
	bool status;                /* -s: report status after snapshots */
	bool no_rekey_ack;          /* -n: leave rekey orders unanswered */
	const char *tunnels_file;   /* -t: where the applied tunnels go */
	uint64_t hello_version;     /* -A */
	unsigned status_burst;      /* -S: statuses after the first snapshot */
	bool health;                /* -H: statuses carry tunnel health */
	uint64_t forge_health;      /* -Y ID: and health for tunnel ID too */
	uint64_t key_epoch;         /* -k: next epoch to announce */
	uint8_t *key_pem;           /* certificate key, PEM */
	size_t key_pem_len;
	bool renew;                 /* -r: renew at the renewal point */
	const char *target, *ca, *cert_path, *key_path;
	int64_t renew_at;           /* unix s */
	bool expired;               /* -E */
	bool zero;                  /* -Z */
	uint64_t rq_tunnel;         /* -q */
	unsigned rq_count;
	struct {
		uint64_t epoch;
		uint8_t priv[SAKEY_X25519_LEN];
	} own[EDGE_KEYS];           /* this edge's epoch keys */
	size_t n_own;
	struct msg_peer_keys relayed[EDGE_KEYS]; /* PeerKeys by peer */
	size_t n_relayed;
	/* TARGET "a,b,...": the next one after failover_ms without a
	 * stream (-F), the applied intent going along (resume by version),
	 * as meshwan-edge does with several `controller` lines. */
	char *targets[EDGE_TARGETS];
	size_t n_targets, target_idx;
	bool open;                  /* a stream was opened ... */
	uint64_t rx_at_open;        /* ... and is up once bytes arrive */
	uint64_t open_at_ms;        /* or once it stayed open a while */
	bool connect_failed;        /* the last close: no connection */
	uint64_t down_since_ms;     /* monotonic; last seen up */
	unsigned failover_ms;
};

static volatile sig_atomic_t edge_quit, edge_back, edge_renew_now;

static void
edge_sig(int sig)
{
	if (sig == SIGUSR2)
		edge_back = 1;  /* -R: come back now (the test's changes are in) */
	else if (sig == SIGUSR1)
		edge_renew_now = 1; /* -r: renew now, not at the renewal point */
	else
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

/* What a real agent does before using a peer key from its intent. */
static bool
edge_key_ok(const struct msg_intent *in, const struct msg_tunnel *t,
    const struct msg_peer_key *k)
{
	char err[EPOCHSIG_ERR_LEN];

	return epochsig_verify(in->ca_chain_der.data, in->ca_chain_der.len,
	    t->peer.certificate_der.data, t->peer.certificate_der.len,
	    t->peer.site_id, k, (int64_t)time(NULL), err, sizeof(err)) == 0;
}

static void
edge_announce(struct edge *e)
{
	struct msg_edge_message m;
	struct msg_peer_key k;
	uint8_t priv[SAKEY_X25519_LEN];
	uint64_t now = (uint64_t)time(NULL);

	memset(&k, 0, sizeof(k));
	k.epoch = e->key_epoch;
	k.not_after = e->expired ? now - 10 : now + 7200;
	if (sakey_keypair(priv, k.public_key) == -1) {
		fprintf(stderr, "no key pair\n");
		return;
	}
	if (e->zero)
		memset(k.public_key, 0, sizeof(k.public_key));
	if (epochsig_sign((const char *)e->key_pem, e->key_pem_len, e->site,
	    &k) == -1) {
		fprintf(stderr, "signing failed\n");
		return;
	}
	if (e->n_own == EDGE_KEYS) {
		memmove(&e->own[0], &e->own[1], sizeof(e->own[0]) *
		    (EDGE_KEYS - 1));
		e->n_own--;
	}
	e->own[e->n_own].epoch = k.epoch;
	memcpy(e->own[e->n_own].priv, priv, sizeof(priv));
	e->n_own++;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_KEY;
	m.u.key.epoch = k.epoch;
	memcpy(m.u.key.public_key, k.public_key, MSG_KEY_LEN);
	memcpy(m.u.key.signature, k.signature, k.signature_len);
	m.u.key.signature_len = k.signature_len;
	m.u.key.not_after = k.not_after;
	edge_send(e, &m);
	printf("announced epoch=%" PRIu64 "\n", k.epoch);
	e->key_epoch++;
}

/* The peer's public key of epoch: from the intent (verified), else from
 * a PeerKeys relay (verified against the intent's certificate too). */
static const uint8_t *
edge_peer_pub(struct edge *e, const struct msg_intent *in,
    const struct msg_tunnel *t, uint64_t epoch)
{
	for (size_t i = 0; i < t->peer.n_keys; i++)
		if (t->peer.keys[i].epoch == epoch &&
		    edge_key_ok(in, t, &t->peer.keys[i]))
			return t->peer.keys[i].public_key;
	for (size_t i = 0; i < e->n_relayed; i++) {
		const struct msg_peer_keys *r = &e->relayed[i];

		if (r->peer_site_id != t->peer.site_id)
			continue;
		for (size_t j = 0; j < r->n_keys; j++)
			if (r->keys[j].epoch == epoch &&
			    edge_key_ok(in, t, &r->keys[j]))
				return r->keys[j].public_key;
	}
	return NULL;
}

/*
 * Derive the SA r of tunnel t (inbound: sender = peer) and print its
 * fingerprint: what both ends of a tunnel must agree on.
 */
static void
edge_print_sa(struct edge *e, const char *what, const struct msg_intent *in,
    const struct msg_tunnel *t, bool inbound, const struct msg_sa_key_ref *r)
{
	struct sakey_input si;
	struct sakey k;
	const uint8_t *own = NULL, *peer;
	uint64_t own_epoch, peer_epoch;
	char fp[SAKEY_FP_LEN + 1];

	printf("%s tunnel=%" PRIu64 " dir=%s sa_epoch=%" PRIu64 " spi=%u "
	    "keys=%" PRIu64 "/%" PRIu64 " ", what, t->id, inbound ? "in" : "out",
	    r->sa_epoch, r->spi, r->sender_key_epoch, r->receiver_key_epoch);
	if (r->sender_key_epoch == 0) {
		printf("nokey\n");
		return;
	}
	own_epoch = inbound ? r->receiver_key_epoch : r->sender_key_epoch;
	peer_epoch = inbound ? r->sender_key_epoch : r->receiver_key_epoch;
	for (size_t i = 0; i < e->n_own; i++)
		if (e->own[i].epoch == own_epoch)
			own = e->own[i].priv;
	if (own == NULL) {
		printf("missing own key\n");
		return;
	}
	if ((peer = edge_peer_pub(e, in, t, peer_epoch)) == NULL) {
		printf("missing peer key\n");
		return;
	}
	si = (struct sakey_input){
		.tunnel_id = t->id,
		.sender_site = inbound ? t->peer.site_id : e->site,
		.receiver_site = inbound ? e->site : t->peer.site_id,
		.sender_key_epoch = r->sender_key_epoch,
		.receiver_key_epoch = r->receiver_key_epoch,
		.sa_epoch = r->sa_epoch,
		.spi = r->spi,
		.cipher = t->crypto.cipher,
	};
	if (sakey_derive(own, peer, &si, &k) == -1) {
		printf("derive failed\n");
		return;
	}
	sakey_fingerprint(&k, fp);
	sakey_clear(&k);
	printf("fp=%s\n", fp);
}

static void
edge_print_sas(struct edge *e, const struct msg_intent *in,
    const struct msg_tunnel *t)
{
	if (t->sa_in.spi != 0)
		edge_print_sa(e, "intent_sa", in, t, true, &t->sa_in);
	if (t->sa_out.spi != 0)
		edge_print_sa(e, "intent_sa", in, t, false, &t->sa_out);
}

static void
edge_status(struct edge *e, const struct msg_intent *in, uint64_t uptime)
{
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = in->version;
	st->uptime_seconds = uptime;
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
		t->sas[0].spi = in->tunnels[i].sa_in.spi;
		t->sas[0].direction = MSG_DIRECTION_IN;
		t->sas[0].epoch = in->tunnels[i].sa_in.sa_epoch;
		t->sas[0].active = true;
	}
	/* -H: health per tunnel, derived from uptime so a test can tell
	 * the reports apart: rtt = 1000 + uptime us, loss = uptime % 1000,
	 * jitter = 10 * uptime us. */
	if (e->health && st->n_tunnels > 0 &&
	    (st->health = calloc(st->n_tunnels + 1, sizeof(*st->health))) !=
	    NULL) {
		st->n_health = st->n_tunnels;
		/* -Y: a claim about a tunnel that is not ours. */
		if (e->forge_health != 0) {
			st->health[st->n_tunnels].tunnel_id = e->forge_health;
			st->health[st->n_tunnels].up = false;
			st->health[st->n_tunnels].rtt_us = 999999;
			st->n_health++;
		}
		for (size_t i = 0; i < st->n_tunnels; i++) {
			st->health[i].tunnel_id = in->tunnels[i].id;
			st->health[i].up = true;
			st->health[i].rtt_us = (uint32_t)(1000 + uptime);
			st->health[i].loss_permille = (uint32_t)(uptime % 1000);
			st->health[i].jitter_us = (uint32_t)(10 * uptime);
		}
	}
	edge_send(e, &m);
	msg_status_free(st);
	printf("status sent tunnels=%zu\n", in->n_tunnels);
}

/* One line per tunnel; keys as "epoch:signature length" (newest last),
 * after checking the key's signature against the peer's certificate. */
static void
edge_print_tunnel(const char *what, const struct msg_intent *in,
    const struct msg_tunnel *t)
{
	printf("  %s tunnel=%" PRIu64 " peer=%" PRIu64 " cert=%zu spi_in=%u "
	    "spi_out=%u keys=", what, t->id, t->peer.site_id,
	    t->peer.certificate_der.len, t->sa_in.spi, t->sa_out.spi);
	for (size_t k = 0; k < t->peer.n_keys; k++)
		printf("%s%" PRIu64 ":%zu%s", k ? "," : "",
		    t->peer.keys[k].epoch, t->peer.keys[k].signature_len,
		    edge_key_ok(in, t, &t->peer.keys[k]) ? "" : "!bad");
	printf("\n");
}

/* -q: ask for rekeys once the first intent is in. */
static void
edge_rekey_requests(struct edge *e, const struct msg_intent *in)
{
	struct msg_edge_message m;
	unsigned n = 0;

	if (e->rq_count == 0)
		return;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_REKEY_REQUEST;
	m.u.rekey_request.tunnel_id = e->rq_tunnel != 0 ? e->rq_tunnel :
	    in->n_tunnels > 0 ? in->tunnels[0].id : 1;
	m.u.rekey_request.direction = MSG_DIRECTION_OUT;
	m.u.rekey_request.reason = MSG_REKEY_REQUEST_REASON_SOFT_BYTES;
	for (unsigned i = 0; i < e->rq_count; i++)
		if (edge_send(e, &m) == 0)
			n++;
	printf("rekey_request tunnel=%" PRIu64 " dir=out n=%u\n",
	    m.u.rekey_request.tunnel_id, n);
	e->rq_count = 0;
}

/* The stream is up: opened, and the controller said something or it
 * stayed open (a stream to a dead address opens and fails at once; an
 * edge that is up to date hears nothing until the next keepalive). */
static bool
edge_up(const struct edge *e)
{
	if (!e->open)
		return false;
	if (e->sess != NULL && session_bytes_received(e->sess) > e->rx_at_open)
		return true;
	/* Silent but open: up, unless connecting is what failed last (a
	 * call to a dead address can wait in gRPC's backoff a while). */
	return !e->connect_failed &&
	    util_mono_ms() - e->open_at_ms >= e->failover_ms;
}

static void
edge_on_open(struct session *s, uint64_t applied, void *arg)
{
	struct edge *e = arg;

	e->open = true;
	e->rx_at_open = session_bytes_received(s);
	e->open_at_ms = util_mono_ms();
	printf("open applied=%" PRIu64 "\n", applied);
	if (e->key_pem != NULL && e->key_epoch > 0)
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

/* -t: the applied intent's tunnels, for a test to compare with the
 * controller's database. */
static void
edge_write_tunnels(const struct edge *e, const struct msg_intent *in)
{
	char tmp[4096];
	FILE *f;

	if (e->tunnels_file == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", e->tunnels_file);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "version %" PRIu64 "\n", in->version);
	for (size_t i = 0; i < in->n_tunnels; i++) {
		const struct msg_tunnel *t = &in->tunnels[i];
		const uint8_t *a = t->inner_local.addr.bytes;

		char pfx[MSG_PREFIX_STRLEN];

		fprintf(f, "tunnel %" PRIu64 " peer %" PRIu64 " inner "
		    "%u.%u.%u.%u vni %u allowed ", t->id, t->peer.site_id, a[0],
		    a[1], a[2], a[3], t->vni);
		for (size_t j = 0; j < t->peer.n_allowed_prefixes; j++)
			if (msg_prefix_format(&t->peer.allowed_prefixes[j], pfx,
			    sizeof(pfx)) == 0)
				fprintf(f, "%s%s", j > 0 ? "," : "", pfx);
		fprintf(f, "%s\n", t->peer.n_allowed_prefixes == 0 ? "-" : "");
	}
	if (fclose(f) == 0)
		rename(tmp, e->tunnels_file);
}

static int
edge_on_intent(struct session *s, const struct msg_intent *in,
    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
    char *reason, size_t reasonsz, void *arg)
{
	struct edge *e = arg;

	(void)s;
	edge_write_tunnels(e, in);
	if (d == NULL) {
		printf("snapshot v=%" PRIu64 " tunnels=%zu\n", in->version,
		    in->n_tunnels);
		printf("  timers keepalive=%u grace=%u\n", in->keepalive_seconds,
		    in->headless_grace_seconds);
		for (size_t i = 0; i < in->n_tunnels; i++)
			edge_print_tunnel("tunnel", in, &in->tunnels[i]);
		for (size_t i = 0; i < in->n_tunnels; i++)
			edge_print_sas(e, in, &in->tunnels[i]);
		printf("ack v=%" PRIu64 "\n", in->version);
		if (e->status)
			edge_status(e, in, 42);
		for (unsigned i = 1; i <= e->status_burst; i++)
			edge_status(e, in, i);
		e->status_burst = 0;
		edge_rekey_requests(e, in);
		fflush(stdout);
		return 0;
	}
	printf("delta from=%" PRIu64 " v=%" PRIu64 " up=%zu rm=%zu\n",
	    d->from_version, d->version, d->n_upsert, d->n_remove);
	if (e->refuse) {
		e->refuse = false;
		snprintf(reason, reasonsz, "test: refused on purpose");
		printf("ack v=%" PRIu64 " failed\n", in->version);
		fflush(stdout);
		return -1;
	}
	for (size_t i = 0; i < d->n_upsert; i++)
		edge_print_tunnel("upsert", in, &d->upsert[i]);
	for (size_t i = 0; i < d->n_upsert; i++)
		edge_print_sas(e, in, &d->upsert[i]);
	if (d->has_site)
		printf("  site changed\n");
	if (e->corrupt) {
		hash[0] ^= 1;
		e->corrupt = false;
		printf("ack v=%" PRIu64 " with a wrong hash\n", in->version);
	} else {
		printf("ack v=%" PRIu64 "\n", in->version);
	}
	edge_rekey_requests(e, in);
	fflush(stdout);
	return 0;
}

static int
edge_on_rekey(struct session *s, const struct msg_rekey_order *o,
    char *reason, size_t reasonsz, void *arg)
{
	struct edge *e = arg;
	const struct msg_intent *in = session_intent(s);

	(void)reason;
	(void)reasonsz;
	printf("rekey tunnel=%" PRIu64 " epoch=%" PRIu64 " step=%s "
	    "reason=%s\n", o->tunnel_id, o->epoch,
	    msg_rekey_step_name(o->step), msg_rekey_reason_name(o->reason));
	/* What the SA of an install or switch step is keyed with. */
	for (size_t i = 0; in != NULL && i < in->n_tunnels &&
	     o->step != MSG_REKEY_STEP_RETIRE; i++) {
		const struct msg_sa_key_ref r = { o->spi, o->epoch,
			o->sender_key_epoch, o->receiver_key_epoch };

		if (in->tunnels[i].id == o->tunnel_id)
			edge_print_sa(e, "sa", in, &in->tunnels[i],
			    o->step == MSG_REKEY_STEP_INSTALL_INBOUND, &r);
	}
	fflush(stdout);
	return e->no_rekey_ack ? 1 : 0;
}

static void
edge_on_peer_keys(struct session *s, const struct msg_peer_keys *k,
    void *arg)
{
	struct edge *e = arg;
	size_t i;

	(void)s;
	printf("peer_keys site=%" PRIu64 " n=%zu epoch=%" PRIu64 "\n",
	    k->peer_site_id, k->n_keys, k->keys[k->n_keys - 1].epoch);
	for (i = 0; i < e->n_relayed; i++)
		if (e->relayed[i].peer_site_id == k->peer_site_id)
			break;
	if (i < EDGE_KEYS) {
		e->relayed[i] = *k;
		if (i == e->n_relayed)
			e->n_relayed++;
	}
	fflush(stdout);
}

static void
edge_on_close(struct session *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct edge *e = arg;

	if (edge_up(e))
		e->down_since_ms = util_mono_ms();
	e->open = false;
	e->connect_failed = msg != NULL && (strstr(msg, "failed to connect") !=
	    NULL || strstr(msg, "Connection refused") != NULL);
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

	if (e->renew && edge_renew_now) {
		edge_renew_now = 0;
		e->renew_at = 0;
	}
	if (!e->renew || (int64_t)time(NULL) < e->renew_at)
		return;
	snprintf(newkey, sizeof(newkey), "%s.next", e->key_path);
	snprintf(newcert, sizeof(newcert), "%s.next", e->cert_path);
	r = edge_renew_once(e->targets[e->target_idx], e->ca, e->cert_path, e->key_path,
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
	/* Epoch keys are signed with the certificate's key: the new one. */
	if (e->key_pem != NULL) {
		free(e->key_pem);
		e->key_pem = NULL;
		if (edge_read(e->key_path, &e->key_pem, &e->key_pem_len) == -1)
			printf("renew: cannot read the new key\n");
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

/*
 * No stream for failover_ms with several targets: a new session to the
 * next one, resuming from the applied intent (its hello carries the
 * version and hash), as meshwan-edge's failover does.
 */
static int
edge_failover(struct edge *e, struct session_opts *o)
{
	const struct msg_intent *in;
	struct msg_intent keep;
	bool have = false;

	/* Up: opened, and the controller said something (a stream to a
	 * dead address opens and closes again at once). */
	if (edge_up(e))
		e->down_since_ms = util_mono_ms();
	if (e->n_targets < 2 ||
	    util_mono_ms() - e->down_since_ms < e->failover_ms)
		return 0;
	if ((in = session_intent(e->sess)) != NULL &&
	    msg_intent_copy(&keep, in) == 0)
		have = true;
	session_free(e->sess);
	e->target_idx = (e->target_idx + 1) % e->n_targets;
	o->target = e->targets[e->target_idx];
	printf("target %s applied=%" PRIu64 "\n", o->target,
	    have ? keep.version : 0);
	fflush(stdout);
	e->down_since_ms = util_mono_ms();
	e->open = false;
	e->connect_failed = false;      /* another address */
	e->sess = session_new(o);
	if (have) {
		if (e->sess != NULL)
			(void)session_resume(e->sess, &keep);
		msg_intent_free(&keep);
	}
	return e->sess != NULL ? 0 : -1;
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

	memset(&e, 0, sizeof(e));
	optind = 7;
	e.failover_ms = EDGE_FAILOVER_MS;
	while ((opt = getopt(argc, argv, "ok:xXR:snA:S:t:EZq:rHF:Y:")) != -1) {
		switch (opt) {
		case 'Y':
			if (util_parse_u64(optarg, 1, INT64_MAX, &v) == -1)
				return 2;
			e.forge_health = v;
			break;
		case 'F':
			if (util_parse_u64(optarg, 100, 600000, &v) == -1)
				return 2;
			e.failover_ms = (unsigned)v;
			break;
		case 'H':
			e.health = true;
			break;
		case 'o':
			e.once = true;
			break;
		case 'r':
			e.renew = true;
			break;
		case 'x':
			e.corrupt = true;
			break;
		case 'X':
			e.refuse = true;
			break;
		case 's':
			e.status = true;
			break;
		case 'n':
			e.no_rekey_ack = true;
			break;
		case 'A':
			if (util_parse_u64(optarg, 1, UINT64_MAX,
			    &e.hello_version) == -1)
				return 2;
			break;
		case 'S':
			if (util_parse_u64(optarg, 1, 1000, &v) == -1)
				return 2;
			e.status_burst = (unsigned)v;
			break;
		case 't':
			e.tunnels_file = optarg;
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
		case 'E':
			e.expired = true;
			break;
		case 'Z':
			e.zero = true;
			break;
		case 'q': {
			char *comma = strchr(optarg, ',');

			if (comma == NULL)
				return 2;
			*comma = '\0';
			if (util_parse_u64(optarg, 0, INT64_MAX, &e.rq_tunnel)
			    == -1 || util_parse_u64(comma + 1, 1, 1000, &v) ==
			    -1)
				return 2;
			e.rq_count = (unsigned)v;
			break;
		}
		default:
			return 2;
		}
	}
	if (argc < 7 || util_parse_u64(argv[6], 1, INT64_MAX, &e.site) == -1) {
		fprintf(stderr, "usage: session TARGET CA CERT KEY SITE "
		    "[-o] [-k EPOCH [-E] [-Z]] [-x] [-R SECS] [-s] [-n] "
		    "[-A VERSION] [-S N] [-t FILE] [-q TUNNEL,N] [-r] [-H] "
		    "[-F MS]\n");
		return 2;
	}
	for (char *save = NULL, *t = strtok_r(argv[2], ",", &save);
	     t != NULL && e.n_targets < EDGE_TARGETS;
	     t = strtok_r(NULL, ",", &save))
		e.targets[e.n_targets++] = t;
	if (e.n_targets == 0)
		return 2;
	e.target = e.targets[0];
	e.down_since_ms = util_mono_ms();
	e.ca = argv[3];
	e.cert_path = argv[4];
	e.key_path = argv[5];
	if (e.renew && enroll_renew_at(e.cert_path, &e.renew_at, NULL) == -1)
		return 1;
	if (e.key_epoch > 0 && edge_read(argv[5], &e.key_pem,
	    &e.key_pem_len) == -1)
		return 1;
	memset(&o, 0, sizeof(o));
	o.target = e.targets[0];
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
	o.test_hello_version = e.hello_version;
	if ((e.sess = session_new(&o)) == NULL)
		return 1;
	while (!edge_quit && !e.done) {
		struct pollfd p = { .fd = session_fd(e.sess),
			.events = POLLIN };
		int t = session_timeout_ms(e.sess);

		(void)poll(&p, 1, t >= 0 && t < 200 ? t : 200);
		if (session_dispatch(e.sess) == -1)
			return 1;
		if (edge_back) {
			edge_back = 0;
			session_leave(e.sess, 1);
		}
		edge_renew_due(&e);
		if (edge_failover(&e, &o) == -1)
			return 1;
	}
	session_free(e.sess);
	free(e.key_pem);
	memset(e.own, 0, sizeof(e.own));
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
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
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
