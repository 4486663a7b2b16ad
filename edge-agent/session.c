/*
 * session.c — the edge's end of the Session stream (see session.h): the
 * hello → snapshot/delta → apply → ack loop, the convergence hash kept
 * from per-tunnel digests, reconnection and the controller's Backoff.
 *
 * Why a library: meshwan-edge and the test edges must speak the stream
 * the same way, so what they do with an intent differs and nothing else.
 * Only proto/ (rpc, pbconv, msg) and lib/ are used here.
 */
#include "edge-agent/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/pbconv.h"

#define SESSION_METHOD "/meshwan.v1.Edge/Session"

struct session {
	struct rpc_client *cli;
	struct rpc_stream *st;       /* the open stream, NULL between */
	struct session_handlers h;
	void *arg;
	uint64_t site;
	char software[MSG_VERSION_STR_MAX + 1];
	enum msg_backend backend;
	uint32_t features;

	struct msg_intent intent;    /* valid when have */
	bool have;
	uint8_t hash[MSG_HASH_LEN];
	struct pbconv_digest *dig;   /* per tunnel of intent */
	size_t n_dig;

	uint64_t test_hello_version; /* opts' test knob; first hello only */
	uint64_t reopen_at;          /* mono ms; 0 = none pending */
	uint64_t bytes_in;
	uint64_t last_version;       /* of the last snapshot or delta */
	unsigned keepalive_ms, keepalive_timeout_ms, idle_ms; /* opts' */

	/* To connect again with another certificate. */
	char *target, *ca_file, *server_name;
};

static void
session_forget(struct session *s)
{
	msg_intent_free(&s->intent);
	free(s->dig);
	s->dig = NULL;
	s->n_dig = 0;
	s->have = false;
}

int
session_send(struct session *s, const struct msg_edge_message *m)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (s->st == NULL)
		return -1;
	if (pbconv_encode_edge_message(m, &buf, &len) == -1) {
		log_warnx("session: cannot encode a message (kind %d)",
		    (int)m->kind);
		return -1;
	}
	rc = rpc_stream_send(s->st, buf, len);
	free(buf);
	return rc;
}

static void
session_ack(struct session *s, uint64_t v, bool ok, const char *reason,
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
	session_send(s, &m);
}

/* Hand the applied intent to the owner and ack what it says. */
static void
session_applied(struct session *s, const struct msg_intent_delta *d)
{
	uint8_t hash[MSG_HASH_LEN];
	char reason[MSG_REASON_MAX + 1] = "";
	uint64_t v = s->intent.version;

	memcpy(hash, s->hash, sizeof(hash));
	if (s->h.on_intent != NULL && s->h.on_intent(s, &s->intent, d, hash,
	    reason, sizeof(reason), s->arg) == -1) {
		log_warnx("session: version %" PRIu64 " not applied: %s", v,
		    reason);
		session_forget(s);
		session_ack(s, v, false, reason[0] ? reason : "not applied",
		    NULL);
		return;
	}
	session_ack(s, v, true, NULL, hash);
}

static void
session_on_snapshot(struct session *s, struct msg_intent *in)
{
	s->last_version = in->version;
	if (s->h.on_receive != NULL &&
	    !s->h.on_receive(s, in->version, NULL, s->arg))
		return;
	session_forget(s);
	s->intent = *in;
	memset(in, 0, sizeof(*in));
	s->have = true;
	if (pbconv_intent_hash_update(&s->intent, NULL, &s->dig, &s->n_dig,
	    s->hash) == -1) {
		session_forget(s);
		session_ack(s, s->intent.version, false, "cannot hash the "
		    "intent", NULL);
		return;
	}
	session_applied(s, NULL);
}

static void
session_on_delta(struct session *s, const struct msg_intent_delta *d)
{
	char err[PBCONV_ERR_LEN];

	if (s->h.on_receive != NULL &&
	    !s->h.on_receive(s, d->version, d, s->arg))
		return;
	s->last_version = d->version;
	if (!s->have || msg_intent_apply_delta(&s->intent, d, err,
	    sizeof(err)) == -1) {
		char reason[MSG_REASON_MAX + 1];

		if (!s->have)
			snprintf(reason, sizeof(reason), "delta from version %"
			    PRIu64 " to %" PRIu64 " refused: the edge holds no "
			    "intent", d->from_version, d->version);
		else if (d->from_version != s->intent.version)
			snprintf(reason, sizeof(reason), "delta from version %"
			    PRIu64 " to %" PRIu64 " refused: the edge holds "
			    "version %" PRIu64, d->from_version, d->version,
			    s->intent.version);
		else
			snprintf(reason, sizeof(reason), "delta from version %"
			    PRIu64 " to %" PRIu64 " refused: %s",
			    d->from_version, d->version, err);
		log_warnx("session: %s", reason);
		session_ack(s, d->version, false, reason, NULL);
		return;
	}
	/* Only the delta's tunnels are digested; the rest of the hash
	 * comes from the digests kept since the snapshot. */
	if (pbconv_intent_hash_update(&s->intent, d, &s->dig, &s->n_dig,
	    s->hash) == -1 && pbconv_intent_hash_update(&s->intent, NULL,
	    &s->dig, &s->n_dig, s->hash) == -1) {
		session_forget(s);
		session_ack(s, d->version, false, "cannot hash the intent",
		    NULL);
		return;
	}
	session_applied(s, d);
}

static void
session_on_rekey(struct session *s, const struct msg_rekey_order *o)
{
	struct msg_edge_message a;
	char reason[MSG_REASON_MAX + 1] = "";
	int r = s->h.on_rekey != NULL ? s->h.on_rekey(s, o, reason,
	    sizeof(reason), s->arg) : 1;

	if (r == 1)
		return;
	memset(&a, 0, sizeof(a));
	a.kind = MSG_EDGE_ACK;
	a.u.ack.ok = r == 0;
	if (r != 0)
		snprintf(a.u.ack.reason, sizeof(a.u.ack.reason), "%s",
		    reason[0] ? reason : "rekey failed");
	a.u.ack.rekey_tunnel_id = o->tunnel_id;
	a.u.ack.rekey_epoch = o->epoch;
	a.u.ack.rekey_step = o->step;
	session_send(s, &a);
}

/*
 * A controller message the wire checks refuse (not protobuf, a field out
 * of range, an unknown enum value): nothing of it is used, and it is
 * acked failed with the checks' reason, so the controller learns of it.
 * A RekeyOrder is refused as that rekey step (Ack.rekey_*, ok=false): the
 * old SAs stay, the intent is not involved, and the controller keeps the
 * step pending instead of resyncing the intent.  One whose tunnel, epoch
 * or step cannot name a step cannot be acked and is only logged.  Any
 * other message is acked against the version it carries when it has one,
 * else the last one the controller sent (an ack needs a version > 0;
 * with none yet there is nothing to ack and it is only logged).
 */
static void
session_on_bad(struct session *s, const uint8_t *buf, size_t len,
    const char *err)
{
	char reason[MSG_REASON_MAX + 1];
	uint64_t v = pbconv_controller_message_version(buf, len);
	uint64_t tid, epoch;
	enum msg_rekey_step step;

	if (pbconv_controller_message_rekey(buf, len, &tid, &epoch,
	    &step) == 0) {
		struct msg_edge_message a;

		snprintf(reason, sizeof(reason), "bad rekey order: %s", err);
		log_warnx("session: %s", reason);
		if (tid == 0 || epoch == 0 ||
		    step == MSG_REKEY_STEP_UNSPECIFIED)
			return;
		memset(&a, 0, sizeof(a));
		a.kind = MSG_EDGE_ACK;
		a.u.ack.ok = false;
		snprintf(a.u.ack.reason, sizeof(a.u.ack.reason), "%s", reason);
		a.u.ack.rekey_tunnel_id = tid;
		a.u.ack.rekey_epoch = epoch;
		a.u.ack.rekey_step = step;
		session_send(s, &a);
		return;
	}
	snprintf(reason, sizeof(reason), "bad controller message: %s", err);
	log_warnx("session: %s", reason);
	if (v == 0)
		v = s->last_version != 0 ? s->last_version :
		    s->have ? s->intent.version : 0;
	if (v != 0)
		session_ack(s, v, false, reason, NULL);
}

static int
session_rpc_open(struct rpc_stream *st, const struct rpc_peer *peer,
    void *arg)
{
	struct session *s = arg;
	struct msg_edge_message m;

	(void)peer;
	s->st = st;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_HELLO;
	m.u.hello.site_id = s->site;
	m.u.hello.applied_version = s->have ? s->intent.version : 0;
	m.u.hello.has_convergence_hash = s->have;
	if (s->have)
		memcpy(m.u.hello.convergence_hash, s->hash, MSG_HASH_LEN);
	if (!s->have && s->test_hello_version > 0) {
		m.u.hello.applied_version = s->test_hello_version;
		m.u.hello.has_convergence_hash = true; /* any: all zero */
	}
	s->test_hello_version = 0;
	snprintf(m.u.hello.software_version,
	    sizeof(m.u.hello.software_version), "%s", s->software);
	m.u.hello.backend = s->backend;
	m.u.hello.features = s->features;
	session_send(s, &m);
	if (s->h.on_open != NULL)
		s->h.on_open(s, m.u.hello.applied_version, s->arg);
	return 0;
}

static void
session_rpc_message(struct rpc_stream *st, const uint8_t *buf, size_t len,
    void *arg)
{
	struct session *s = arg;
	struct msg_controller_message m;
	char err[PBCONV_ERR_LEN];

	s->bytes_in += len;
	if (st != s->st)
		return;
	if (pbconv_decode_controller_message(buf, len, &m, err,
	    sizeof(err)) == -1) {
		session_on_bad(s, buf, len, err);
		return;
	}
	switch (m.kind) {
	case MSG_CONTROLLER_SNAPSHOT:
		session_on_snapshot(s, &m.u.snapshot);
		break;
	case MSG_CONTROLLER_DELTA:
		session_on_delta(s, &m.u.delta);
		break;
	case MSG_CONTROLLER_PEER_KEYS:
		if (s->h.on_peer_keys != NULL)
			s->h.on_peer_keys(s, &m.u.peer_keys, s->arg);
		break;
	case MSG_CONTROLLER_REKEY:
		session_on_rekey(s, &m.u.rekey);
		break;
	case MSG_CONTROLLER_BACKOFF:
		log_info("session: the controller asks to reconnect after %"
		    PRIu32 " s: %s", m.u.backoff.retry_after_seconds,
		    m.u.backoff.reason);
		session_leave(s, m.u.backoff.retry_after_seconds);
		break;
	case MSG_CONTROLLER_KEEPALIVE:
	case MSG_CONTROLLER_NONE:
		break;
	}
	msg_controller_message_free(&m);
}

static void
session_rpc_close(struct rpc_stream *st, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct session *s = arg;

	if (st == s->st)
		s->st = NULL;
	if (s->h.on_close != NULL)
		s->h.on_close(s, why, code, msg, s->arg);
}

static const struct rpc_stream_handlers session_rpc = {
	.on_open = session_rpc_open,
	.on_message = session_rpc_message,
	.on_close = session_rpc_close,
};

static int
session_open(struct session *s)
{
	struct rpc_stream_opts so = { .reconnect = true };

	return rpc_client_stream_open(s->cli, SESSION_METHOD, &session_rpc, s,
	    &so);
}

void
session_leave(struct session *s, unsigned secs)
{
	if (s->st != NULL)
		rpc_stream_cancel(s->st); /* also stops its reconnection */
	s->reopen_at = util_mono_ms() + (secs > 0 ? secs : 1) * 1000ull;
}

static struct rpc_client *
session_client(const struct session *s, const char *cert_file,
    const char *key_file)
{
	struct rpc_client_opts co;

	memset(&co, 0, sizeof(co));
	co.target = s->target;
	co.tls.ca_file = s->ca_file;
	co.tls.cert_file = cert_file;
	co.tls.key_file = key_file;
	co.server_name = s->server_name;
	co.keepalive_ms = s->keepalive_ms;
	co.keepalive_timeout_ms = s->keepalive_timeout_ms;
	co.idle_ms = s->idle_ms;
	/* The contract's snapshot limit (a hub of a 10,000-site network gets
	 * ~5.5 MB), not the rpc default of 4 MiB. */
	co.limits.max_message = PBCONV_MAX_SESSION_MSG;
	return rpc_client_new(&co);
}

int
session_switch_cert(struct session *s, const char *cert_file,
    const char *key_file)
{
	struct rpc_client *cli = session_client(s, cert_file, key_file);

	if (cli == NULL) {
		log_warnx("session: cannot connect with %s", cert_file);
		return -1;
	}
	/* The old stream ends here (on_close, reason SHUTDOWN). */
	rpc_client_free(s->cli);
	s->cli = cli;
	s->st = NULL;
	s->reopen_at = 0;
	if (session_open(s) == -1) {
		log_warnx("session: cannot open a session with %s", cert_file);
		s->reopen_at = util_mono_ms() + 1000;
		return -1;
	}
	return 0;
}

struct session *
session_new(const struct session_opts *o)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (o->h != NULL)
		s->h = *o->h;
	s->arg = o->arg;
	s->site = o->site_id;
	snprintf(s->software, sizeof(s->software), "%s",
	    o->software_version ? o->software_version : "");
	s->backend = o->backend;
	s->features = o->features;
	s->test_hello_version = o->test_hello_version;
	s->keepalive_ms = o->keepalive_ms;
	s->keepalive_timeout_ms = o->keepalive_timeout_ms;
	s->idle_ms = o->idle_ms;
	if ((s->target = strdup(o->target)) == NULL ||
	    (s->ca_file = strdup(o->ca_file)) == NULL ||
	    (o->server_name != NULL &&
	    (s->server_name = strdup(o->server_name)) == NULL) ||
	    (s->cli = session_client(s, o->cert_file, o->key_file)) == NULL ||
	    session_open(s) == -1) {
		log_warnx("session: cannot open a session to %s", o->target);
		session_free(s);
		return NULL;
	}
	return s;
}

void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	rpc_client_free(s->cli);
	session_forget(s);
	free(s->target);
	free(s->ca_file);
	free(s->server_name);
	free(s);
}

int
session_fd(const struct session *s)
{
	return rpc_client_fd(s->cli);
}

int
session_timeout_ms(const struct session *s)
{
	uint64_t now = util_mono_ms();

	if (s->reopen_at == 0)
		return -1;
	return s->reopen_at <= now ? 0 : (int)(s->reopen_at - now);
}

int
session_dispatch(struct session *s)
{
	rpc_client_dispatch(s->cli);
	if (s->reopen_at != 0 && util_mono_ms() >= s->reopen_at) {
		s->reopen_at = 0;
		if (session_open(s) == -1) {
			log_warnx("session: cannot reopen the session");
			return -1;
		}
	}
	return 0;
}

int
session_resume(struct session *s, const struct msg_intent *in)
{
	struct msg_intent copy;

	if (msg_intent_copy(&copy, in) == -1)
		return -1;
	session_forget(s);
	s->intent = copy;
	s->have = true;
	if (pbconv_intent_hash_update(&s->intent, NULL, &s->dig, &s->n_dig,
	    s->hash) == -1) {
		session_forget(s);
		return -1;
	}
	return 0;
}

const struct msg_intent *
session_intent(const struct session *s)
{
	return s->have ? &s->intent : NULL;
}

uint64_t
session_site(const struct session *s)
{
	return s->site;
}

uint64_t
session_bytes_received(const struct session *s)
{
	return s->bytes_in;
}

bool
session_connected(const struct session *s)
{
	return s->st != NULL && rpc_client_ready(s->cli);
}
