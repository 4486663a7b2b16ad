/*
 * agent.c — meshwan-edge's daemon loop (see agent.h).
 */
#include "edge-agent/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "edge-agent/cache.h"
#include "edge-agent/enroll.h"
#include "edge-agent/frr.h"
#include "edge-agent/health.h"
#include "edge-agent/keys.h"
#include "edge-agent/reconcile.h"
#include "edge-agent/pin.h"
#include "edge-agent/session.h"
#include "edge-agent/status.h"
#include "lib/log.h"
#include "lib/util.h"
#include "overlay/overlay.h"

#define AGENT_CERT		"edge.crt"
#define AGENT_KEY		"edge.key"
#define AGENT_CA		"ca.crt"	/* learned by ca_pin (pin.c) */
#define AGENT_SEQ		"uesp.seq"
#define AGENT_KEYDIR		"keys"
#define AGENT_RETIRE_MAX	1024	/* pending RETIRE steps */
#define AGENT_ASKED_MAX		4096	/* SAs a rekey was asked for */
#define AGENT_REASK_S		15	/* ask again for the same SA after */
/* Several controller endpoints (agent_failover): a session that ended
 * moves to the next one after AGENT_MOVE_MIN_MS doubling per move that did
 * not last AGENT_STABLE_S, up to AGENT_MOVE_MAX_MS, plus a random spread
 * of up to AGENT_MOVE_SPREAD times that (so 0.5-2.5 s the first time). */
#define AGENT_MOVE_MIN_MS	500
#define AGENT_MOVE_MAX_MS	6000
#define AGENT_MOVE_SPREAD	4
#define AGENT_STABLE_S		10
#define AGENT_QUIET_S		30	/* open, never heard: next after this */
#define AGENT_OPEN_SETTLE_MS	1000	/* a refused stream ends sooner */
/* HTTP/2 keepalive of the session's connection: a frozen or blackholed
 * controller is noticed within 6 + 4 s (the controller accepts a ping
 * every 5 s: rpc server's min_ping_interval_ms). */
#define AGENT_KEEPALIVE_MS	6000
#define AGENT_KEEPALIVE_TO_MS	4000
#define AGENT_PENDING_MAX	1024	/* rekey steps waiting for keys */
#define AGENT_PENDING_S		60	/* ... acked failed after this long */
#define AGENT_ROAM_POLL_MS	250	/* look for moved NAT peers this often */
#define AGENT_ROAM_HOLD_MS	1000	/* follow one tunnel's peer at most once per */
#define AGENT_FILTERED_S	5	/* read neighbours' filtered prefixes */
#define AGENT_FILTERED_READS	8	/* ... of at most this many a time */
#define AGENT_ZCHECK_MS		2000	/* zebra's addresses checked this often */
#define AGENT_ZCHECK_TRIES	8	/* ... at most this many times */

enum agent_ctl_state {
	AGENT_CTL_ENROLLING,
	AGENT_CTL_CONNECTING,
	AGENT_CTL_CONNECTED,
	AGENT_CTL_BACKOFF,
};

static const char *const agent_ctl_names[] = {
	[AGENT_CTL_ENROLLING] = "enrolling",
	[AGENT_CTL_CONNECTING] = "connecting",
	[AGENT_CTL_CONNECTED] = "connected",
	[AGENT_CTL_BACKOFF] = "backoff",
};

/* What a BGP neighbour announced and its inbound list dropped (a site
 * announcing a prefix that is not its own: agent_read_filtered()). */
struct agent_filtered {
	struct msg_addr neighbor;
	uint64_t tunnel_id;
	uint32_t n;			/* prefixes filtered, last read */
};

/* A RETIRE order waiting out its drain. */
struct agent_retire {
	struct msg_rekey_order o;
	uint64_t due_ms;
};

/* A rekey step that could not run yet (its peer's certificate or key,
 * or its tunnel, comes with a later intent version or PeerKeys). */
struct agent_pending {
	struct msg_rekey_order o;
	uint64_t since_ms;
};

/* NAT rebinding: a tunnel whose peer the agent followed (agent_roam). */
struct agent_roam {
	uint64_t tunnel_id;
	uint64_t moves;			/* times followed */
	uint64_t at_ms;			/* last time */
	char from[INET6_ADDRSTRLEN + 8]; /* last move, "ADDR:PORT" */
};
static void agent_roam_status(const struct agent *a,
    const struct reconcile_tunnel *rt, struct msg_tunnel_status *t);

/* An outbound SA a RekeyRequest was sent for, and when. */
struct agent_asked {
	uint64_t tunnel_id;
	uint64_t at_ms;
	uint32_t spi;
};

struct agent {
	struct edge_config cfg;
	struct status_srv *status;	/* meshwan-edge status; not owned */
	char *config_path;
	int sigfd;
	enum agent_ctl_state ctl;
	uint64_t start_ms;

	char cert_path[PATH_MAX], key_path[PATH_MAX], seq_path[PATH_MAX];
	char ca_path[PATH_MAX];     /* ca_file, or the one ca_pin learned */
	bool ca_pending;            /* ca_pin given, CA not learned yet */
	char key_dir[PATH_MAX];
	uint64_t site_id;		/* 0 until enrolled */
	char site_name[MSG_NAME_MAX + 1];
	int64_t renew_at;		/* unix s; 0 = unknown */

	const struct overlay_ops *ops;
	void *octx;
	struct reconcile *rec;
	struct keys *keys;
	struct frr_target frr;

	struct session *sess;
	uint64_t ctl_since_ms;
	uint64_t enroll_at_ms;		/* next enrollment attempt */
	unsigned enroll_backoff_s;

	/* The last intent applied (also cached); the one keys are derived
	 * against while an apply runs is `keys_in`. */
	struct msg_intent applied;
	const struct msg_intent *keys_in;
	uint64_t frr_retry_ms;

	struct {
		uint64_t version;
		char reason[MSG_REASON_MAX + 1];
		bool ok;
		bool set;
	} last_ack;

	struct agent_retire retire[AGENT_RETIRE_MAX];
	size_t n_retire;
	struct agent_asked asked[AGENT_ASKED_MAX];
	size_t n_asked;
	struct agent_pending pending[AGENT_PENDING_MAX];
	size_t n_pending;
	struct agent_roam *roam;	/* by tunnel, see agent_roam() */
	size_t n_roam, cap_roam;
	uint64_t roam_ms;		/* last look */

	uint64_t status_sent_ms;
	uint64_t bgp_read_ms;		/* last agent_read_bgp() */
	uint64_t tick_ms;
	/* When to check zebra's view of the tunnels' addresses (0 = not
	 * due), and how many checks are left; see agent_zebra_check(). */
	uint64_t zcheck_ms;
	unsigned zcheck_left;
	struct frr_bgp_status bgp;	/* last read, for status */
	struct frr_bfd_status bfd;	/* last read with bgp */
	struct health *health;		/* tunnel probes; NULL = off */
	struct agent_filtered *filtered; /* one per neighbour of bgp */
	size_t n_filtered;
	size_t filtered_next;		/* round robin over the neighbours */
	uint64_t filtered_ms;		/* next read */

	uint64_t key_check_ms;		/* next look at the key epoch */
	unsigned ctl_idx;		/* cfg.controllers[] in use */
	uint64_t sess_ms;		/* when sess was made */
	uint64_t move_at_ms;		/* next controller then; 0 = stay */
	unsigned move_fails;		/* moves since a stable session */
	uint64_t rx_at_open;		/* bytes received when it opened */
	uint64_t open_ms;		/* ... and when */

	bool quit;
	bool fatal;
	bool have_applied;
	bool frr_ok;			/* FRR holds `applied` */
	bool status_dirty;
	bool have_bgp;
	bool have_bfd;
	bool stream_open;		/* on_open .. on_close */
};

static void agent_pending_retry(struct agent *a);

static int64_t
agent_now(void)
{
	return (int64_t)time(NULL);
}

static void
agent_set_ctl(struct agent *a, enum agent_ctl_state s)
{
	if (a->ctl != s) {
		a->ctl = s;
		a->ctl_since_ms = util_mono_ms();
		a->status_dirty = true;
	}
}

/* ------------------------------------------------------------------ */
/* Certificate and identity */

/* The site id from the certificate's CN "site-<id>".  0 / -1. */
static int
agent_cert_site(const char *path, uint64_t *site)
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	char cn[MSG_CN_MAX + 1];
	int rc = -1;

	if (f != NULL)
		fclose(f);
	if (x != NULL && X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, sizeof(cn)) > 0 &&
	    strncmp(cn, "site-", 5) == 0 &&
	    util_parse_u64(cn + 5, 1, INT64_MAX, site) == 0)
		rc = 0;
	X509_free(x);
	return rc;
}

static int
agent_read_token(const struct agent *a, char *tok, size_t toksz)
{
	uint8_t *buf;
	size_t len, n;

	if (a->cfg.token[0] != '\0')
		return util_strcpy(tok, toksz, a->cfg.token);
	if (a->cfg.token_file[0] == '\0') {
		log_warnx("enroll: no certificate in %s and no token or "
		    "token_file in the configuration", a->cfg.state_dir);
		return -1;
	}
	if (cache_read_file(a->cfg.token_file, &buf, &len, 4096) != 0) {
		log_warnx("enroll: cannot read token_file %s",
		    a->cfg.token_file);
		return -1;
	}
	for (n = 0; n < len && buf[n] > 0x20 && buf[n] < 0x7f; n++)
		;
	if (n == 0 || n > MSG_TOKEN_MAX || n >= toksz) {
		log_warnx("enroll: token_file %s holds no token",
		    a->cfg.token_file);
		util_wipe(buf, len);
		free(buf);
		return -1;
	}
	memcpy(tok, buf, n);
	tok[n] = '\0';
	util_wipe(buf, len);
	free(buf);
	return 0;
}

/*
 * ca_pin without ca_file: the CA is learned once from the handshake of an
 * enrollment endpoint (it needs no client certificate) and kept in the
 * state folder; from then on it is the trust anchor like ca_file.
 * 0 when the CA is known, -1 to try again later.
 */
static int
agent_ca_ready(struct agent *a)
{
	char err[256];

	if (!a->ca_pending)
		return 0;
	for (unsigned i = 0; i < a->cfg.n_enroll; i++) {
		if (pin_fetch_ca(a->cfg.enroll[i], a->cfg.controller_name,
		    a->cfg.ca_pin, a->ca_path, err, sizeof(err)) == -1) {
			log_warnx("agent: controller CA from %s: %s",
			    a->cfg.enroll[i], err);
			continue;
		}
		log_info("agent: learned the controller CA from %s (it matches "
		    "ca_pin); kept in %s", a->cfg.enroll[i], a->ca_path);
		a->ca_pending = false;
		return 0;
	}
	return -1;
}

/* Set ca_path; with ca_pin, check a CA learned earlier against the pin. */
static int
agent_ca_init(struct agent *a)
{
	char err[256];
	uint8_t *pem;
	size_t len;
	int r;

	if (a->cfg.ca_file[0] != '\0')
		return util_strcpy(a->ca_path, sizeof(a->ca_path),
		    a->cfg.ca_file);
	if (snprintf(a->ca_path, sizeof(a->ca_path), "%s/" AGENT_CA,
	    a->cfg.state_dir) >= (int)sizeof(a->ca_path))
		return -1;
	if ((r = cache_read_file(a->ca_path, &pem, &len, 65536)) == 1) {
		a->ca_pending = true;
		return 0;
	}
	if (r == -1)
		return -1;
	r = pin_check_pem(pem, len, a->cfg.ca_pin, err, sizeof(err));
	free(pem);
	if (r == -1)
		log_warnx("agent: %s: %s; remove it to learn the CA again",
		    a->ca_path, err);
	return r;
}

/* One enrollment attempt over every enrollment endpoint: 0 enrolled,
 * 1 try again later, -1 refused for good (token used, unknown, ...). */
static int
agent_enroll_once(struct agent *a)
{
	char tok[MSG_TOKEN_MAX + 1], msg[512];
	uint8_t *csr = NULL;
	size_t csr_len = 0;
	int result = 1;

	if (agent_ca_ready(a) == -1)
		return 1;
	if (agent_read_token(a, tok, sizeof(tok)) == -1)
		return -1;
	/* The same key pair on every attempt: when an answer was lost the
	 * controller sends the certificate again, but only to that key. */
	if (enroll_key_csr(a->key_path, &csr, &csr_len) == -1) {
		util_wipe(tok, sizeof(tok));
		return 1;
	}
	for (unsigned i = 0; i < a->cfg.n_enroll && result == 1; i++) {
		struct msg_enroll_response rs;
		struct rpc_client *cli;
		int code = 0, r;

		cli = enroll_client(a->cfg.enroll[i], a->ca_path,
		    a->cfg.controller_name);
		if (cli == NULL)
			continue;
		r = enroll_call(cli, tok, csr, csr_len, "meshwan-edge "
		    AGENT_VERSION, a->cfg.enroll_timeout_ms, &rs, &code, msg,
		    sizeof(msg));
		rpc_client_free(cli);
		/* No connection or no answer in time (a loaded controller or
		 * path) is not a refusal: try again after the backoff. */
		if (r == 1 && (code == RPC_UNAVAILABLE ||
		    code == RPC_DEADLINE_EXCEEDED)) {
			log_warnx("enroll: %s unavailable: %s (code %d)",
			    a->cfg.enroll[i], msg, code);
			continue;
		}
		if (r == 1) {
			log_warnx("enroll: %s refused: %s (code %d)",
			    a->cfg.enroll[i], msg, code);
			result = -1;
			break;
		}
		if (r == -1) {
			log_warnx("enroll: %s: no answer", a->cfg.enroll[i]);
			continue;
		}
		if (enroll_write_cert(a->cert_path, &rs.certificate_der, true)
		    == -1) {
			msg_enroll_response_free(&rs);
			break;
		}
		(void)chmod(a->cert_path, 0644);
		log_info("enroll: enrolled as site %" PRIu64 " with %s",
		    rs.site_id, a->cfg.enroll[i]);
		msg_enroll_response_free(&rs);
		result = 0;
	}
	util_wipe(tok, sizeof(tok));
	free(csr);
	return result;
}

/* ------------------------------------------------------------------ */
/* Keys: the reconciler's providers */

static int
agent_key_fn(void *arg, const struct msg_tunnel *t,
    const struct reconcile_sa_ref *ref, struct overlay_sa_params *out,
    char *err, size_t errlen)
{
	struct agent *a = arg;
	const struct msg_intent *in = a->keys_in != NULL ? a->keys_in :
	    a->have_applied ? &a->applied : NULL;
	struct msg_sa_key_ref r = { ref->spi, ref->sa_epoch,
		ref->sender_key_epoch, ref->receiver_key_epoch };
	struct sakey k;

	if (in == NULL) {
		snprintf(err, errlen, "no intent to check keys against");
		return -1;
	}
	if (keys_sa_derive(a->keys, in, t, a->site_id,
	    ref->dir == OVERLAY_DIR_IN, &r, agent_now(), &k, err, errlen) == -1)
		return -1;
	if (k.key_len != overlay_cipher_keylen(out->cipher)) {
		sakey_clear(&k);
		snprintf(err, errlen, "SA %u: key length does not fit the "
		    "cipher", ref->spi);
		return -1;
	}
	memcpy(out->key, k.key, k.key_len);
	memcpy(out->salt, k.salt, SAKEY_SALT_LEN);
	sakey_clear(&k);
	return 0;
}

/* ------------------------------------------------------------------ */
/* FRR */

static void
agent_frr_target(struct agent *a)
{
	memset(&a->frr, 0, sizeof(a->frr));
	snprintf(a->frr.vtysh, sizeof(a->frr.vtysh), "%s", a->cfg.vtysh);
	snprintf(a->frr.instance, sizeof(a->frr.instance), "%s",
	    a->cfg.frr_instance);
	snprintf(a->frr.vty_socket, sizeof(a->frr.vty_socket), "%s",
	    a->cfg.frr_vty_socket);
	a->frr.timeout_ms = a->cfg.frr_timeout_ms;	/* 0: FRR_TIMEOUT_MS */
}

/* Keep only the announced prefixes the configuration allows (when it
 * names any): the edge never announces what its operator did not list. */
static void
agent_filter_announce(const struct agent *a, struct frr_desired *d)
{
	size_t j = 0;

	if (a->cfg.n_lan_prefixes == 0)
		return;
	for (size_t i = 0; i < d->n_announce; i++) {
		bool ok = false;

		for (size_t k = 0; k < a->cfg.n_lan_prefixes && !ok; k++)
			ok = a->cfg.lan_prefixes[k].len == d->announce[i].len &&
			    msg_addr_equal(&a->cfg.lan_prefixes[k].addr,
			    &d->announce[i].addr);
		if (ok) {
			d->announce[j++] = d->announce[i];
		} else {
			char buf[MSG_PREFIX_STRLEN];

			(void)msg_prefix_format(&d->announce[i], buf,
			    sizeof(buf));
			log_warnx("frr: %s is not a lan_prefix of this edge; "
			    "not announced", buf);
		}
	}
	d->n_announce = j;
}

static int
agent_frr_apply(struct agent *a, const struct msg_intent *in, char *err,
    size_t errlen)
{
	struct frr_desired d;
	struct frr_apply_result res;
	int rc;

	/* Each neighbour's inbound list: its Peer.allowed_prefixes. */
	if (frr_desired_from_intent(in, NULL, 0, &d, err, errlen) == -1)
		return -1;
	if (a->cfg.bfd_interval_ms != 0)
		d.bfd_interval_ms = a->cfg.bfd_interval_ms;
	if (a->cfg.bfd_multiplier != 0)
		d.bfd_multiplier = a->cfg.bfd_multiplier;
	agent_filter_announce(a, &d);
	rc = frr_apply(&a->frr, &d, &res, err, errlen);
	frr_desired_free(&d);
	if (rc == 0 && res.n_changes > 0)
		log_info("frr: %zu change(s), %zu command(s)", res.n_changes,
		    res.n_cmds);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Applying an intent */

/* Own key epochs the SAs of in name (kept from retirement). */
static void
agent_retire_keys(struct agent *a, const struct msg_intent *in)
{
	uint64_t *keep;
	size_t n = 0;

	if ((keep = calloc(2 * in->n_tunnels + 1, sizeof(*keep))) == NULL)
		return;
	for (size_t i = 0; i < in->n_tunnels; i++) {
		keep[n++] = in->tunnels[i].sa_in.receiver_key_epoch;
		keep[n++] = in->tunnels[i].sa_out.sender_key_epoch;
	}
	/* Those the reconciler holds ahead of the intent (rekey steps). */
	for (size_t i = 0; i < reconcile_ntunnels(a->rec); i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_get(a->rec,
		    i);

		for (unsigned j = 0; j < rt->nsas; j++) {
			uint64_t *nk = realloc(keep, (n + 1) * sizeof(*keep));

			if (nk == NULL) {
				free(keep);
				return;
			}
			keep = nk;
			keep[n++] = rt->sas[j].dir == OVERLAY_DIR_IN ?
			    rt->sas[j].receiver_key_epoch :
			    rt->sas[j].sender_key_epoch;
		}
	}
	(void)keys_retire(a->keys, keep, n);
	free(keep);
}

/* Reconcile, FRR, cache.  0, or -1 with reason (the backend is back at
 * its previous state when the reconciler failed). */
static int
agent_apply(struct agent *a, const struct msg_intent *in, char *reason,
    size_t reasonsz)
{
	struct reconcile_result res;
	char err[MSG_REASON_MAX + 1];
	uint64_t t0 = util_mono_ms();

	a->keys_in = in;
	(void)reconcile_apply(a->rec, in, &res);
	a->keys_in = NULL;
	if (!res.ok) {
		snprintf(reason, reasonsz, "%s", res.reason);
		return -1;
	}
	if (res.calls > 0) {
		a->zcheck_ms = t0 + AGENT_ZCHECK_MS;
		a->zcheck_left = AGENT_ZCHECK_TRIES;
	}
	if (in != &a->applied) {
		struct msg_intent copy;

		if (msg_intent_copy(&copy, in) == -1) {
			snprintf(reason, reasonsz, "out of memory");
			return -1;
		}
		msg_intent_free(&a->applied);
		a->applied = copy;
		a->have_applied = true;
	}
	snprintf(a->site_name, sizeof(a->site_name), "%s", in->site.name);
	a->status_dirty = true;
	if (agent_frr_apply(a, in, err, sizeof(err)) == -1) {
		a->frr_ok = false;
		a->frr_retry_ms = util_mono_ms() + AGENT_FRR_RETRY_S * 1000ull;
		snprintf(reason, reasonsz, "frr: %s", err);
		/* Tunnels are in place; what FRR lacks is retried. */
		(void)cache_write_intent(a->cfg.state_dir, in);
		return -1;
	}
	a->frr_ok = true;
	if (cache_write_intent(a->cfg.state_dir, in) == -1)
		log_warnx("agent: intent version %" PRIu64 " applied but not "
		    "cached", in->version);
	agent_retire_keys(a, in);
	log_info("agent: intent version %" PRIu64 " applied (%zu tunnels, "
	    "%u backend calls, %" PRIu64 " ms)", in->version, in->n_tunnels,
	    res.calls, util_mono_ms() - t0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Session callbacks */

static void
agent_announce(struct agent *a)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_KEY;
	if (keys_announcement(a->keys, keys_newest(a->keys), &m.u.key) == -1)
		return;
	if (session_send(a->sess, &m) == 0)
		log_debug("keys", "announced key epoch %" PRIu64, m.u.key.epoch);
}

static void
agent_on_open(struct session *s, uint64_t applied, void *arg)
{
	struct agent *a = arg;

	(void)s;
	log_debug("session", "stream open (applied version %" PRIu64 ")",
	    applied);
	/* A stream opens before its connection is made: "connected" waits
	 * for the controller's first message (agent_check_connected). */
	a->stream_open = true;
	a->open_ms = util_mono_ms();
	a->rx_at_open = session_bytes_received(s);
	agent_announce(a);
	a->status_dirty = true;
}

static int
agent_on_intent(struct session *s, const struct msg_intent *in,
    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
    char *reason, size_t reasonsz, void *arg)
{
	struct agent *a = arg;
	int rc;

	(void)s;
	(void)d;
	(void)hash;
	rc = agent_apply(a, in, reason, reasonsz);
	if (rc == 0)
		agent_pending_retry(a);
	a->last_ack.version = in->version;
	a->last_ack.ok = rc == 0;
	snprintf(a->last_ack.reason, sizeof(a->last_ack.reason), "%s",
	    rc == 0 ? "" : reason);
	a->last_ack.set = true;
	if (rc == -1) {
		log_warnx("agent: intent version %" PRIu64 " failed: %s",
		    in->version, reason);
		/* A status soon: the controller shows the failure with it. */
		a->status_dirty = true;
	}
	return rc;
}

static void
agent_rekey_ack(struct agent *a, const struct msg_rekey_order *o, bool ok,
    const char *reason)
{
	struct msg_edge_message m;

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_ACK;
	m.u.ack.ok = ok;
	m.u.ack.rekey_tunnel_id = o->tunnel_id;
	m.u.ack.rekey_epoch = o->epoch;
	m.u.ack.rekey_step = o->step;
	if (!ok)
		snprintf(m.u.ack.reason, sizeof(m.u.ack.reason), "%s", reason);
	if (session_send(a->sess, &m) == -1)
		log_warnx("agent: rekey ack (tunnel %" PRIu64 ") not sent",
		    o->tunnel_id);
}

static int
agent_on_rekey(struct session *s, const struct msg_rekey_order *o,
    char *reason, size_t reasonsz, void *arg)
{
	struct agent *a = arg;
	struct reconcile_result res;

	(void)s;
	log_info("rekey: tunnel %" PRIu64 " SA epoch %" PRIu64 " %s spi %u "
	    "(%s)", o->tunnel_id, o->epoch, msg_rekey_step_name(o->step),
	    o->spi, msg_rekey_reason_name(o->reason));
	if (o->step == MSG_REKEY_STEP_RETIRE) {
		for (size_t i = 0; i < a->n_retire; i++)
			if (a->retire[i].o.tunnel_id == o->tunnel_id &&
			    a->retire[i].o.spi == o->spi &&
			    a->retire[i].o.epoch == o->epoch)
				return 1;	/* already draining */
		if (a->n_retire == AGENT_RETIRE_MAX) {
			snprintf(reason, reasonsz, "too many SAs draining");
			return -1;
		}
		a->retire[a->n_retire].o = *o;
		a->retire[a->n_retire].due_ms = util_mono_ms() +
		    (uint64_t)o->drain_seconds * 1000;
		a->n_retire++;
		return 1;	/* acked after the drain */
	}
	for (size_t i = 0; i < a->n_pending; i++)
		if (a->pending[i].o.tunnel_id == o->tunnel_id &&
		    a->pending[i].o.epoch == o->epoch &&
		    a->pending[i].o.step == o->step)
			return 1;	/* waiting already */
	(void)reconcile_rekey_step(a->rec, o, &res);
	a->status_dirty = true;
	if (res.ok)
		return 0;
	/*
	 * The key (or the tunnel) may come with a later intent version:
	 * an order can overtake the version that carries a new peer's
	 * certificate.  Wait for it (retried on every intent, relay and
	 * second) rather than fail the step for good.
	 */
	if (a->n_pending < AGENT_PENDING_MAX) {
		a->pending[a->n_pending].o = *o;
		a->pending[a->n_pending].since_ms = util_mono_ms();
		a->n_pending++;
		log_info("rekey: tunnel %" PRIu64 " %s waits: %s",
		    o->tunnel_id, msg_rekey_step_name(o->step), res.reason);
		return 1;
	}
	snprintf(reason, reasonsz, "%s", res.reason);
	log_warnx("rekey: tunnel %" PRIu64 " %s failed: %s",
	    o->tunnel_id, msg_rekey_step_name(o->step), res.reason);
	return -1;
}

/* The waiting rekey steps again: done ones acked ok, ones older than
 * AGENT_PENDING_S acked failed with their last reason. */
static void
agent_pending_retry(struct agent *a)
{
	size_t i = 0;

	while (i < a->n_pending) {
		struct agent_pending p = a->pending[i];
		struct reconcile_result res;
		bool expired;

		(void)reconcile_rekey_step(a->rec, &p.o, &res);
		expired = util_mono_ms() - p.since_ms >=
		    AGENT_PENDING_S * 1000ull;
		if (!res.ok && !expired) {
			i++;
			continue;
		}
		memmove(&a->pending[i], &a->pending[i + 1], (a->n_pending -
		    i - 1) * sizeof(a->pending[0]));
		a->n_pending--;
		a->status_dirty = true;
		if (res.ok)
			log_info("rekey: tunnel %" PRIu64 " %s done after "
			    "waiting", p.o.tunnel_id,
			    msg_rekey_step_name(p.o.step));
		else
			log_warnx("rekey: tunnel %" PRIu64 " %s failed: %s",
			    p.o.tunnel_id, msg_rekey_step_name(p.o.step),
			    res.reason);
		agent_rekey_ack(a, &p.o, res.ok, res.reason);
	}
}

static void
agent_on_peer_keys(struct session *s, const struct msg_peer_keys *k,
    void *arg)
{
	struct agent *a = arg;

	(void)s;
	keys_peer_note(a->keys, k);
	log_debug("keys", "peer %" PRIu64 ": %zu key(s) relayed",
	    k->peer_site_id, k->n_keys);
	agent_pending_retry(a);
}

static void agent_move_plan(struct agent *a);

static void
agent_on_close(struct session *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct agent *a = arg;
	bool hint = session_timeout_ms(s) > 0;

	a->stream_open = false;
	/* A session that held a while: the next move starts from the
	 * shortest delay again. */
	if (a->ctl == AGENT_CTL_CONNECTED && util_mono_ms() -
	    a->ctl_since_ms >= AGENT_STABLE_S * 1000ull)
		a->move_fails = 0;
	if (a->ctl == AGENT_CTL_CONNECTED)
		log_info("session: closed (%s, code %d%s%s)",
		    rpc_close_reason_str(why), code, msg && *msg ? ": " : "",
		    msg ? msg : "");
	else
		log_debug("session", "closed (%s, code %d%s%s)",
		    rpc_close_reason_str(why), code, msg && *msg ? ": " : "",
		    msg ? msg : "");
	agent_set_ctl(a, hint ? AGENT_CTL_BACKOFF : AGENT_CTL_CONNECTING);
	/* Not when the agent itself ended it (a move, a renewal: SHUTDOWN)
	 * or the controller asked for a pause (its hint is honoured). */
	if (why != RPC_CLOSE_SHUTDOWN && !hint)
		agent_move_plan(a);
}

static int
agent_session_start(struct agent *a)
{
	static const struct session_handlers h = {
		.on_open = agent_on_open,
		.on_intent = agent_on_intent,
		.on_rekey = agent_on_rekey,
		.on_peer_keys = agent_on_peer_keys,
		.on_close = agent_on_close,
	};
	struct session_opts o;
	enum msg_backend backend = MSG_BACKEND_UESP;

	if (agent_ca_ready(a) == -1)
		return -1;
	if (a->cfg.backend == EDGE_BACKEND_XFRM)
		backend = MSG_BACKEND_XFRM;
	else if (a->cfg.backend == EDGE_BACKEND_NULL)
		backend = MSG_BACKEND_NULL;
	memset(&o, 0, sizeof(o));
	o.target = a->cfg.controllers[a->ctl_idx];
	o.ca_file = a->ca_path;
	o.cert_file = a->cert_path;
	o.key_file = a->key_path;
	o.server_name = a->cfg.controller_name;
	o.site_id = a->site_id;
	o.software_version = "meshwan-edge " AGENT_VERSION;
	o.backend = backend;
	o.features = a->ops->features;
	o.h = &h;
	o.arg = a;
	o.keepalive_ms = AGENT_KEEPALIVE_MS;
	o.keepalive_timeout_ms = AGENT_KEEPALIVE_TO_MS;
	agent_set_ctl(a, AGENT_CTL_CONNECTING);
	a->sess_ms = util_mono_ms();
	if ((a->sess = session_new(&o)) == NULL)
		return -1;
	/* Rebuilt from the cache: say so in the hello (resume by version). */
	if (a->have_applied && session_resume(a->sess, &a->applied) == -1)
		log_warnx("session: cannot resume from intent version %"
		    PRIu64 "; a snapshot follows", a->applied.version);
	return 0;
}

/* Identity known: keys, renewal point, the session. */
static int
agent_enrolled(struct agent *a)
{
	if (agent_cert_site(a->cert_path, &a->site_id) == -1) {
		log_warnx("agent: %s: no site-<id> certificate", a->cert_path);
		return -1;
	}
	if (enroll_renew_at(a->cert_path, &a->renew_at, NULL) == -1)
		a->renew_at = 0;
	if (keys_due(a->keys, agent_now())) {
		struct msg_key_announcement ann;
		uint8_t *pem;
		size_t len;

		if (cache_read_file(a->key_path, &pem, &len, 65536) != 0)
			return -1;
		if (keys_make(a->keys, (const char *)pem, len, a->site_id,
		    agent_now(), &ann) == -1) {
			util_wipe(pem, len);
			free(pem);
			return -1;
		}
		util_wipe(pem, len);
		free(pem);
	}
	if (agent_session_start(a) == -1)
		log_warnx("session: none yet; trying again in 5 s");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Certificate renewal */

static void
agent_renew(struct agent *a)
{
	char newkey[PATH_MAX + 8], newcert[PATH_MAX + 8], msg[512];
	struct msg_enroll_response rs;
	struct msg_key_announcement ann;
	struct rpc_client *cli;
	uint8_t *csr = NULL, *pem = NULL;
	size_t csr_len = 0, pem_len = 0;
	int code = 0, r;

	if (a->renew_at == 0 || agent_now() < a->renew_at || a->sess == NULL)
		return;
	a->renew_at = agent_now() + 60;		/* the retry, if this fails */
	snprintf(newkey, sizeof(newkey), "%s.next", a->key_path);
	snprintf(newcert, sizeof(newcert), "%s.next", a->cert_path);
	if (enroll_keygen(newkey, &csr, &csr_len) == -1)
		return;
	cli = enroll_renew_client(a->cfg.controllers[a->ctl_idx], a->ca_path,
	    a->cert_path, a->key_path, a->cfg.controller_name);
	if (cli == NULL) {
		free(csr);
		return;
	}
	r = enroll_renew_call(cli, csr, csr_len, "meshwan-edge "
	    AGENT_VERSION, 10000, &rs, &code, msg, sizeof(msg));
	free(csr);
	rpc_client_free(cli);
	if (r != 0) {
		log_warnx("renew: %s", r == 1 ? msg : "no answer");
		return;
	}
	r = enroll_write_cert(newcert, &rs.certificate_der, true);
	msg_enroll_response_free(&rs);
	if (r == -1)
		return;
	/* The next epoch key is signed with the new certificate's key. */
	if (cache_read_file(newkey, &pem, &pem_len, 65536) != 0 ||
	    keys_make(a->keys, (const char *)pem, pem_len, a->site_id,
	    agent_now(), &ann) == -1) {
		if (pem != NULL) {
			util_wipe(pem, pem_len);
			free(pem);
		}
		return;
	}
	util_wipe(pem, pem_len);
	free(pem);
	if (session_switch_cert(a->sess, newcert, newkey) == -1 ||
	    rename(newcert, a->cert_path) == -1 ||
	    rename(newkey, a->key_path) == -1) {
		log_warnx("renew: cannot switch to the new certificate");
		return;
	}
	if (enroll_renew_at(a->cert_path, &a->renew_at, NULL) == -1)
		a->renew_at = agent_now() + 60;
	log_info("renew: certificate renewed; next renewal at %" PRId64,
	    a->renew_at);
}

/* ------------------------------------------------------------------ */
/* Timers: drains, soft limits, status */

static void
agent_retire_due(struct agent *a)
{
	uint64_t now = util_mono_ms();
	size_t i = 0;

	while (i < a->n_retire) {
		struct agent_retire r = a->retire[i];
		struct reconcile_result res;

		if (r.due_ms > now) {
			i++;
			continue;
		}
		memmove(&a->retire[i], &a->retire[i + 1], (a->n_retire - i -
		    1) * sizeof(a->retire[0]));
		a->n_retire--;
		(void)reconcile_rekey_step(a->rec, &r.o, &res);
		if (!res.ok)
			log_warnx("rekey: tunnel %" PRIu64 " retire of spi %u "
			    "failed: %s", r.o.tunnel_id, r.o.spi, res.reason);
		else
			log_info("rekey: tunnel %" PRIu64 " spi %u retired",
			    r.o.tunnel_id, r.o.spi);
		a->status_dirty = true;
		agent_rekey_ack(a, &r.o, res.ok, res.reason);
	}
}

/* The entry of an SA asked for, or NULL. */
static struct agent_asked *
agent_asked_find(struct agent *a, uint64_t tunnel, uint32_t spi)
{
	for (size_t i = 0; i < a->n_asked; i++)
		if (a->asked[i].tunnel_id == tunnel && a->asked[i].spi == spi)
			return &a->asked[i];
	return NULL;
}

/* Drop the entries of SAs that are gone. */
static void
agent_prune_asked(struct agent *a)
{
	size_t j = 0;

	for (size_t i = 0; i < a->n_asked; i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_find(a->rec,
		    a->asked[i].tunnel_id);
		bool live = false;

		for (unsigned k = 0; rt != NULL && k < rt->nsas && !live; k++)
			live = rt->sas[k].dir == OVERLAY_DIR_OUT &&
			    rt->sas[k].spi == a->asked[i].spi;
		if (live)
			a->asked[j++] = a->asked[i];
	}
	a->n_asked = j;
}

/*
 * Soft byte/packet limits: the sender watches its active outbound SA and
 * asks once for it (the controller rekeys both directions' ends; time
 * limits are the controller's own cue).  Should that SA still be the
 * active one AGENT_REASK_S later (the request was lost or dropped by the
 * controller's rate limit), it asks again.
 */
static void
agent_soft_limits(struct agent *a)
{
	agent_prune_asked(a);
	for (size_t i = 0; i < reconcile_ntunnels(a->rec); i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_get(a->rec,
		    i);

		for (unsigned k = 0; k < rt->nsas; k++) {
			struct overlay_sa_stats st;
			struct msg_edge_message m;
			enum msg_rekey_request_reason why;

			struct agent_asked *prev;

			if (rt->sas[k].dir != OVERLAY_DIR_OUT ||
			    rt->sas[k].spi != rt->spi_out_active ||
			    (rt->soft[k].bytes == 0 && rt->soft[k].packets == 0))
				continue;
			prev = agent_asked_find(a, rt->p.id, rt->sas[k].spi);
			if (prev != NULL && util_mono_ms() - prev->at_ms <
			    AGENT_REASK_S * 1000ull)
				continue;
			if (a->ops->sa_stats(a->octx, rt->p.id, rt->sas[k].spi,
			    OVERLAY_DIR_OUT, &st) != 0)
				continue;
			if (rt->soft[k].bytes != 0 &&
			    st.bytes >= rt->soft[k].bytes)
				why = MSG_REKEY_REQUEST_REASON_SOFT_BYTES;
			else if (rt->soft[k].packets != 0 &&
			    st.packets >= rt->soft[k].packets)
				why = MSG_REKEY_REQUEST_REASON_SOFT_PACKETS;
			else
				continue;
			memset(&m, 0, sizeof(m));
			m.kind = MSG_EDGE_REKEY_REQUEST;
			m.u.rekey_request.tunnel_id = rt->p.id;
			m.u.rekey_request.direction = MSG_DIRECTION_OUT;
			m.u.rekey_request.reason = why;
			if (a->sess == NULL || session_send(a->sess, &m) == -1)
				continue;	/* asked again next second */
			log_info("rekey: tunnel %" PRIu64 " spi %u reached its "
			    "soft %s limit; rekey requested", rt->p.id,
			    rt->sas[k].spi,
			    why == MSG_REKEY_REQUEST_REASON_SOFT_BYTES ?
			    "byte" : "packet");
			if (prev != NULL) {
				prev->at_ms = util_mono_ms();
			} else if (a->n_asked < AGENT_ASKED_MAX) {
				a->asked[a->n_asked].tunnel_id = rt->p.id;
				a->asked[a->n_asked].spi = rt->sas[k].spi;
				a->asked[a->n_asked].at_ms = util_mono_ms();
				a->n_asked++;
			}
		}
	}
}

static const struct frr_neighbor_status *
agent_bgp_of(const struct agent *a, uint64_t tunnel)
{
	for (size_t i = 0; a->have_bgp && i < a->bgp.n_neighbors; i++)
		if (a->bgp.neighbors[i].tunnel_id == tunnel)
			return &a->bgp.neighbors[i];
	return NULL;
}

static enum msg_tunnel_state
agent_tunnel_state(const struct overlay_tunnel_stats *ts, bool stats_ok)
{
	if (!stats_ok)
		return MSG_TUNNEL_STATE_FAILED;
	if (ts->spi_out != 0 && ts->sa_in > 0)
		return MSG_TUNNEL_STATE_UP;
	return MSG_TUNNEL_STATE_KEYING;
}

/* The prefixes filtered from a tunnel's neighbours (0 when none read). */
static uint32_t
agent_filtered_of(const struct agent *a, uint64_t tunnel)
{
	uint32_t n = 0;

	for (size_t i = 0; i < a->n_filtered; i++)
		if (a->filtered[i].tunnel_id == tunnel)
			n += a->filtered[i].n;
	return n;
}

/*
 * Every AGENT_FILTERED_S, what up to AGENT_FILTERED_READS Established
 * neighbours (round robin, so a large site is covered over several
 * rounds at a bounded cost of one vtysh each) sent and their inbound
 * prefix-list dropped: a peer announcing a prefix the topology does not
 * give it (another site's LAN: a hijack) is filtered by FRR, and
 * reported here — a warning naming the first prefix when the count
 * changes, and `prefixes_filtered` in the status.
 */
static void
agent_read_filtered(struct agent *a)
{
	uint64_t now = util_mono_ms();
	size_t n = a->bgp.n_neighbors, reads = 0;
	struct agent_filtered *nf;
	/* The chosen neighbours, read in one vtysh run. */
	size_t pick[AGENT_FILTERED_READS];
	struct msg_addr addrs[AGENT_FILTERED_READS];
	int fams[AGENT_FILTERED_READS];
	struct frr_prefix_list pls[AGENT_FILTERED_READS];
	bool ok[AGENT_FILTERED_READS];
	char err[256];

	if (now < a->filtered_ms)
		return;
	a->filtered_ms = now + AGENT_FILTERED_S * 1000ull;
	if ((nf = calloc(n > 0 ? n : 1, sizeof(*nf))) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct frr_neighbor_status *nb = &a->bgp.neighbors[i];

		nf[i].neighbor = nb->address;
		nf[i].tunnel_id = nb->tunnel_id;
		for (size_t j = 0; j < a->n_filtered; j++)
			if (a->filtered[j].tunnel_id == nb->tunnel_id &&
			    msg_addr_equal(&a->filtered[j].neighbor,
			    &nb->address))
				nf[i].n = a->filtered[j].n;
	}
	for (size_t k = 0; k < n && reads < AGENT_FILTERED_READS; k++) {
		size_t i = (a->filtered_next + k) % n;
		const struct frr_neighbor_status *nb = &a->bgp.neighbors[i];

		if (nb->tunnel_id == 0 || nb->state != MSG_BGP_STATE_ESTABLISHED)
			continue;
		pick[reads] = i;
		addrs[reads] = nb->address;
		fams[reads] = nb->address.family == AF_INET6 ? AF_INET6 :
		    AF_INET;
		reads++;
	}
	if (reads > 0 && frr_read_filtered_many(&a->frr, addrs, fams, reads,
	    pls, ok, err, sizeof(err)) == -1)
		log_debug("frr", "filtered routes: %s", err);
	for (size_t r = 0; r < reads; r++) {
		size_t i = pick[r];
		const struct frr_neighbor_status *nb = &a->bgp.neighbors[i];
		const struct frr_prefix_list *pl = &pls[r];
		char na[MSG_ADDR_STRLEN], first[MSG_PREFIX_STRLEN];

		if (!ok[r])
			continue;	/* the last count stays */
		if (pl->n_prefixes != nf[i].n) {
			(void)msg_addr_format(&nb->address, na, sizeof(na));
			if (pl->n_prefixes > 0) {
				(void)msg_prefix_format(&pl->prefixes[0], first,
				    sizeof(first));
				log_warnx("frr: tunnel %" PRIu64 ": neighbour %s "
				    "announced %zu prefix(es) it may not (%s%s); "
				    "filtered", nb->tunnel_id, na, pl->n_prefixes,
				    first, pl->n_prefixes > 1 ? ", ..." : "");
			} else
				log_info("frr: tunnel %" PRIu64 ": neighbour %s "
				    "announces nothing filtered any more",
				    nb->tunnel_id, na);
			a->status_dirty = true;
		}
		nf[i].n = (uint32_t)pl->n_prefixes;
		frr_prefix_list_free(&pls[r]);
	}
	a->filtered_next = n > 0 ? (a->filtered_next + AGENT_FILTERED_READS) %
	    n : 0;
	free(a->filtered);
	a->filtered = nf;
	a->n_filtered = n;
}

static void
agent_read_bgp(struct agent *a)
{
	char err[256];

	frr_bgp_status_free(&a->bgp);
	frr_bfd_status_free(&a->bfd);
	a->have_bgp = a->have_bfd = false;
	if (!a->have_applied)
		return;
	/* Summary and BFD peers in one vtysh run. */
	if (frr_read_state(&a->frr, &a->bgp, &a->bfd, &a->have_bfd, err,
	    sizeof(err)) == 0) {
		a->have_bgp = true;
		agent_read_filtered(a);
	} else
		log_debug("frr", "status: %s", err);
}

/* ------------------------------------------------------------------ */
/* Tunnel health (health.c): SAs, BFD and the probes make one "up". */

/* The prober follows the tunnels (once a second, from agent_tick). */
static void
agent_health_sync(struct agent *a)
{
	size_t n = reconcile_ntunnels(a->rec);
	struct health_tunnel *v = NULL;

	if (a->health == NULL)
		return;
	if (n > HEALTH_TUNNELS_MAX)
		n = HEALTH_TUNNELS_MAX;
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_get(a->rec,
		    i);

		v[i].tunnel_id = rt->p.id;
		memcpy(v[i].ifname, rt->p.ifname, sizeof(v[i].ifname));
		v[i].local = rt->p.inner_local;
		v[i].peer = rt->p.inner_peer;
	}
	health_set(a->health, v, n);
	free(v);
}

static bool
agent_addr_is(const struct msg_addr *m, const struct overlay_addr *o)
{
	size_t len = o->family == AF_INET ? 4 : 16;

	return o->family != AF_UNSPEC && m->family == o->family &&
	    memcmp(m->bytes, o->bytes, len) == 0;
}

/* BFD's view of the tunnel: its sessions to the peer's tunnel addresses
 * (IPv4 and IPv6); one down is down. */
static enum health_bfd
agent_bfd_of(const struct agent *a, const struct reconcile_tunnel *rt)
{
	enum health_bfd b = HEALTH_BFD_NONE;

	for (size_t i = 0; a->have_bfd && i < a->bfd.n_peers; i++) {
		const struct frr_bfd_peer *p = &a->bfd.peers[i];

		if (!agent_addr_is(&p->peer, &rt->p.inner_peer) &&
		    !agent_addr_is(&p->peer, &rt->p.inner_peer6))
			continue;
		if (!p->up)
			return HEALTH_BFD_DOWN;
		b = HEALTH_BFD_UP;
	}
	return b;
}

/* HealthStatus of one tunnel; sa_up: its state from the SAs is UP. */
static void
agent_health_of(const struct agent *a, const struct reconcile_tunnel *rt,
    bool sa_up, struct msg_health_status *out, enum health_bfd *bfd)
{
	struct health_result r;
	bool probed = health_get(a->health, rt->p.id, &r) == 0;

	*bfd = agent_bfd_of(a, rt);
	memset(out, 0, sizeof(*out));
	out->tunnel_id = rt->p.id;
	out->up = health_up(sa_up, *bfd, probed ? &r : NULL);
	out->rtt_us = r.rtt_us;
	out->loss_permille = r.loss_permille;
	out->jitter_us = r.jitter_us;
}

static void
agent_send_status(struct agent *a)
{
	struct msg_edge_message m;
	struct msg_status *st = &m.u.status;
	size_t nt = reconcile_ntunnels(a->rec);

	memset(&m, 0, sizeof(m));
	m.kind = MSG_EDGE_STATUS;
	st->applied_version = a->have_applied ? a->applied.version : 0;
	st->uptime_seconds = (util_mono_ms() - a->start_ms) / 1000;
	if (nt > 0 && ((st->tunnels = calloc(nt, sizeof(*st->tunnels))) ==
	    NULL || (st->bgp = calloc(nt, sizeof(*st->bgp))) == NULL ||
	    (st->health = calloc(nt, sizeof(*st->health))) == NULL)) {
		msg_status_free(st);
		return;
	}
	for (size_t i = 0; i < nt; i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_get(a->rec,
		    i);
		struct msg_tunnel_status *t = &st->tunnels[st->n_tunnels++];
		struct overlay_tunnel_stats ts;
		const struct frr_neighbor_status *nb;
		enum health_bfd bfd;
		bool ok;

		memset(&ts, 0, sizeof(ts));
		ok = a->ops->tunnel_stats(a->octx, rt->p.id, &ts) == 0;
		t->tunnel_id = rt->p.id;
		t->state = agent_tunnel_state(&ts, ok);
		t->packets_in = ts.rx_packets;
		t->packets_out = ts.tx_packets;
		t->bytes_in = ts.rx_bytes;
		t->bytes_out = ts.tx_bytes;
		t->drops_no_sa = ts.drops.no_sa;
		t->drops_malformed = ts.drops.malformed;
		t->drops_unknown_spi = ts.drops.unknown_spi;
		agent_roam_status(a, rt, t);
		agent_health_of(a, rt, t->state == MSG_TUNNEL_STATE_UP,
		    &st->health[st->n_health++], &bfd);
		for (unsigned k = 0; k < rt->nsas && t->n_sas < MSG_SAS_MAX;
		     k++) {
			struct overlay_sa_stats ss;
			struct msg_sa_status *s = &t->sas[t->n_sas];

			if (a->ops->sa_stats(a->octx, rt->p.id, rt->sas[k].spi,
			    rt->sas[k].dir, &ss) != 0)
				continue;
			s->spi = rt->sas[k].spi;
			s->direction = rt->sas[k].dir == OVERLAY_DIR_IN ?
			    MSG_DIRECTION_IN : MSG_DIRECTION_OUT;
			s->epoch = rt->sas[k].sa_epoch;
			s->packets = ss.packets;
			s->bytes = ss.bytes;
			s->age_seconds = ss.age_s;
			s->seq = ss.seq;
			s->drops_auth = ss.auth;
			s->drops_replay = ss.replay;
			s->active = rt->sas[k].dir == OVERLAY_DIR_IN ||
			    ss.active;
			t->n_sas++;
		}
		if ((nb = agent_bgp_of(a, rt->p.id)) != NULL) {
			struct msg_bgp_neighbor_status *b =
			    &st->bgp[st->n_bgp++];

			b->address = nb->address;
			b->remote_asn = nb->remote_asn;
			b->state = nb->state;
			b->uptime_seconds = nb->uptime_s;
			b->prefixes_received = nb->prefixes_received;
			b->prefixes_filtered = agent_filtered_of(a, rt->p.id);
			b->tunnel_id = rt->p.id;
		}
	}
	if (session_send(a->sess, &m) == 0) {
		a->status_sent_ms = util_mono_ms();
		a->status_dirty = false;
	}
	msg_status_free(st);
}

/* Connected: the controller said something on this stream, or (an edge
 * that is up to date hears nothing until the next keepalive) the
 * connection is up and the stream has not been refused for a second. */
static void
agent_check_connected(struct agent *a)
{
	if (a->stream_open && a->ctl != AGENT_CTL_CONNECTED &&
	    (session_bytes_received(a->sess) > a->rx_at_open ||
	    (util_mono_ms() - a->open_ms >= AGENT_OPEN_SETTLE_MS &&
	    session_connected(a->sess)))) {
		log_info("session: connected to %s",
		    a->cfg.controllers[a->ctl_idx]);
		agent_set_ctl(a, AGENT_CTL_CONNECTED);
		a->move_at_ms = 0;	/* it answers: stay */
	}
}

/*
 * With several `controller` endpoints (replicas on one database): when
 * the session ends (the controller closed it, the connection was reset
 * or refused, or its HTTP/2 keepalive went unanswered), the agent moves
 * to the next endpoint after agent_move_delay(), resuming by version (the
 * applied intent goes along in the hello).  Meanwhile the session keeps
 * retrying its own endpoint, and an answer from it cancels the move.
 *
 * No flapping: a session that works is never left for another endpoint
 * (there is no preferred one to return to), and sessions that end before
 * AGENT_STABLE_S double the delay of the next move.  No herd: each edge
 * draws its own delay, spread over 4x its base.  The controller's
 * Backoff is honoured: no session anywhere before it says.
 */
static unsigned
agent_move_delay(const struct agent *a)
{
	unsigned base = AGENT_MOVE_MIN_MS;
	uint32_t rnd = 0;

	for (unsigned i = 0; i < a->move_fails && base < AGENT_MOVE_MAX_MS;
	    i++)
		base *= 2;
	if (base > AGENT_MOVE_MAX_MS)
		base = AGENT_MOVE_MAX_MS;
	if (util_random(&rnd, sizeof(rnd)) == -1)
		rnd = (uint32_t)util_mono_ms();
	return base + rnd % (AGENT_MOVE_SPREAD * base + 1);
}

static void
agent_move_plan(struct agent *a)
{
	unsigned d;

	if (a->cfg.n_controllers < 2 || a->move_at_ms != 0)
		return;
	d = agent_move_delay(a);
	a->move_at_ms = util_mono_ms() + d;
	log_info("session: %s lost; trying %s in %u ms",
	    a->cfg.controllers[a->ctl_idx],
	    a->cfg.controllers[(a->ctl_idx + 1) % a->cfg.n_controllers], d);
}

/* How long an open stream may stay silent before its endpoint is left:
 * two of the controller's keepalive periods and some, at least
 * AGENT_QUIET_S (a connect to a blackholed address hangs, it is not
 * refused). */
static uint64_t
agent_quiet_ms(const struct agent *a)
{
	uint64_t ka = a->have_applied && a->applied.keepalive_seconds > 0 ?
	    a->applied.keepalive_seconds : MSG_DEFAULT_KEEPALIVE_SECONDS;
	uint64_t q = (2 * ka + 5) * 1000;

	return q > AGENT_QUIET_S * 1000ull ? q : AGENT_QUIET_S * 1000ull;
}

static void
agent_failover(struct agent *a)
{
	uint64_t now = util_mono_ms();

	if (a->ctl == AGENT_CTL_ENROLLING)
		return;
	if (a->sess == NULL) {
		/* A session that could not even be made: again in 5 s. */
		if (now - a->ctl_since_ms < 5000)
			return;
	} else {
		if (a->cfg.n_controllers < 2)
			return;
		if (session_timeout_ms(a->sess) > 0) {
			/* The controller's Backoff hint runs. */
			a->move_at_ms = 0;
			a->sess_ms = now;
			return;
		}
		if (a->move_at_ms == 0 && a->ctl != AGENT_CTL_CONNECTED &&
		    now - a->sess_ms >= agent_quiet_ms(a)) {
			log_info("session: nothing from %s for %" PRIu64 " s",
			    a->cfg.controllers[a->ctl_idx],
			    (now - a->sess_ms) / 1000);
			agent_move_plan(a);
		}
		if (a->move_at_ms == 0 || now < a->move_at_ms)
			return;
		a->move_fails++;
	}
	a->move_at_ms = 0;
	session_free(a->sess);
	a->sess = NULL;
	a->ctl_idx = (a->ctl_idx + 1) % a->cfg.n_controllers;
	log_info("session: trying controller %s",
	    a->cfg.controllers[a->ctl_idx]);
	a->ctl_since_ms = now;
	if (agent_session_start(a) == -1)
		log_warnx("session: cannot start a session to %s",
		    a->cfg.controllers[a->ctl_idx]);
}

/*
 * A new key epoch when the newest key has less than half its lifetime
 * left (KEYS_LIFETIME_S), looked at once a minute.  It is announced at
 * once; the controller moves every tunnel onto it (rekey reason KEY).
 * Not while the controller is away: peers could not learn it, and the
 * keys in use stay valid for the other half of their lifetime.
 */
static void
agent_key_rotate(struct agent *a)
{
	struct msg_key_announcement ann;
	uint8_t *pem;
	size_t len;

	if (util_mono_ms() < a->key_check_ms || a->site_id == 0 ||
	    a->ctl != AGENT_CTL_CONNECTED)
		return;
	a->key_check_ms = util_mono_ms() + 60000;
	if (!keys_due(a->keys, agent_now()))
		return;
	if (cache_read_file(a->key_path, &pem, &len, 65536) != 0)
		return;
	if (keys_make(a->keys, (const char *)pem, len, a->site_id,
	    agent_now(), &ann) == 0)
		agent_announce(a);
	util_wipe(pem, len);
	free(pem);
}

/*
 * FRR 8.4's zebra reads address events on its dataplane thread and link
 * events on its main thread, so the address of a device made a moment
 * before can reach it first and be dropped ("can't find interface"): the
 * tunnel's /31 is then missing in zebra and BGP over it never comes up
 * (1 run in 3 of the three-site demo).  So after a change zebra's view is
 * read (`show interface json`, frr_read_interfaces()) 2 s later and then
 * every 2 s, until zebra holds every tunnel's /31 and /127 or 8 checks
 * were made.  A tunnel whose address zebra lacks gets its addresses
 * announced again: a tunnel_update with unchanged parameters (uesp:
 * RTM_NEWADDR with NLM_F_REPLACE, no change to the device or its SAs).
 */
static bool
agent_zebra_has(const struct frr_ifaces *zi, const char *ifname,
    const struct overlay_addr *o, unsigned len, char *what, size_t whatsz)
{
	struct msg_addr m;
	char t[INET6_ADDRSTRLEN];

	memset(&m, 0, sizeof(m));
	m.family = o->family;
	memcpy(m.bytes, o->bytes, sizeof(m.bytes));
	if (frr_iface_has(zi, ifname, &m, len))
		return true;
	if (msg_addr_format(&m, t, sizeof(t)) == -1)
		snprintf(t, sizeof(t), "?");
	snprintf(what, whatsz, "%s/%u", t, len);
	return false;
}

static void
agent_zebra_check(struct agent *a, uint64_t now)
{
	struct frr_ifaces zi;
	char err[MSG_REASON_MAX + 1], what[INET6_ADDRSTRLEN + 8];
	size_t missing = 0;

	if (a->zcheck_ms == 0 || now < a->zcheck_ms)
		return;
	if (frr_read_interfaces(&a->frr, &zi, err, sizeof(err)) == -1) {
		log_debug("frr", "zebra's interfaces not read: %s", err);
		missing = 1;
	} else {
		for (size_t i = 0; i < reconcile_ntunnels(a->rec); i++) {
			const struct overlay_tunnel_params *p =
			    &reconcile_tunnel_get(a->rec, i)->p;
			int rc;

			if (agent_zebra_has(&zi, p->ifname, &p->inner_local,
			    p->inner_prefix_len ? p->inner_prefix_len : 31,
			    what, sizeof(what)) &&
			    (p->inner_local6.family != AF_INET6 ||
			    agent_zebra_has(&zi, p->ifname, &p->inner_local6,
			    127, what, sizeof(what))))
				continue;
			missing++;
			rc = a->ops->tunnel_update(a->octx, p);
			log_warnx("agent: zebra lacks %s on %s; addresses "
			    "announced again%s%s", what, p->ifname,
			    rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
		}
		frr_ifaces_free(&zi);
	}
	if (missing > 0 && --a->zcheck_left > 0) {
		a->zcheck_ms = now + AGENT_ZCHECK_MS;
		return;
	}
	a->zcheck_ms = 0;
	if (missing > 0)
		log_warnx("agent: zebra's view of the tunnel addresses still "
		    "incomplete after %d checks", AGENT_ZCHECK_TRIES);
	else
		log_debug("frr", "zebra holds every tunnel address (%zu "
		    "tunnels)", reconcile_ntunnels(a->rec));
}

static void
agent_tick(struct agent *a)
{
	uint64_t now = util_mono_ms();

	agent_retire_due(a);
	if (now < a->tick_ms)
		return;
	a->tick_ms = now + 1000;
	agent_health_sync(a);
	agent_zebra_check(a, now);
	agent_pending_retry(a);
	agent_soft_limits(a);
	if (a->have_applied && !a->frr_ok && now >= a->frr_retry_ms) {
		char err[MSG_REASON_MAX + 1];

		if (agent_frr_apply(a, &a->applied, err, sizeof(err)) == 0) {
			a->frr_ok = true;
			log_info("frr: configuration applied after a failure");
		} else {
			a->frr_retry_ms = now + AGENT_FRR_RETRY_S * 1000ull;
			log_warnx("frr: %s (retrying in %d s)", err,
			    AGENT_FRR_RETRY_S);
		}
	}
	agent_renew(a);
	agent_key_rotate(a);
	if (a->stream_open && (a->status_dirty ||
	    now - a->status_sent_ms >= AGENT_STATUS_PERIOD_S * 1000ull) &&
	    now - a->status_sent_ms >= AGENT_STATUS_MIN_MS) {
		/*
		 * FRR's state costs vtysh runs per read (one for the BGP
		 * summary and BFD peers, one for filtered routes), so a burst
		 * of dirty statuses reuses a read younger than
		 * AGENT_BGP_READ_MS instead of running vtysh up to four times
		 * a second.
		 */
		if (now - a->bgp_read_ms >= AGENT_BGP_READ_MS) {
			agent_read_bgp(a);
			a->bgp_read_ms = now;
		}
		agent_send_status(a);
	} else if (!a->stream_open &&
	    now - a->bgp_read_ms >= AGENT_STATUS_PERIOD_S * 1000ull) {
		/* Controller away: BGP and BFD stay fresh for local status. */
		agent_read_bgp(a);
		a->bgp_read_ms = now;
	}
}

/* ------------------------------------------------------------------ */
/* NAT rebinding (issue 9 item 7) */

static void
agent_endpoint_str(const struct overlay_addr *a, uint16_t port, char *buf,
    size_t len)
{
	char addr[INET6_ADDRSTRLEN];

	overlay_addr_str(a, addr, sizeof(addr));
	snprintf(buf, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
	    (unsigned)(port != 0 ? port : OVERLAY_UDP_PORT));
}

static struct agent_roam *
agent_roam_find(const struct agent *a, uint64_t tunnel)
{
	for (size_t i = 0; i < a->n_roam; i++)
		if (a->roam[i].tunnel_id == tunnel)
			return &a->roam[i];
	return NULL;
}

/*
 * A peer behind NAT whose mapping moved (new public port or address)
 * sends from a new source; the backend notes it only from the newest
 * authenticated ESP (overlay_tunnel_stats.moved_*, overlay.h), never from
 * an unauthenticated datagram.  At once when the backend signals it
 * (overlay_ops.moved_fd), else within AGENT_ROAM_POLL_MS, the agent
 * re-points such a tunnel there (reconcile_tunnel_move: the SAs stay, and
 * the intent does not snap it back while it names the old endpoint), at
 * most once per AGENT_ROAM_HOLD_MS per tunnel, so that even a peer's
 * packets raced from two places cannot make it flap faster.  Logged,
 * counted, in the status and reported to the controller.
 */
static void
agent_roam(struct agent *a, uint64_t now, bool signalled)
{
	if (!signalled && now - a->roam_ms < AGENT_ROAM_POLL_MS)
		return;
	a->roam_ms = now;
	for (size_t i = 0; i < reconcile_ntunnels(a->rec); i++) {
		const struct reconcile_tunnel *rt = reconcile_tunnel_get(a->rec,
		    i);
		struct overlay_tunnel_stats ts;
		struct agent_roam *ro;
		char from[sizeof(ro->from)], to[sizeof(ro->from)];
		uint64_t id = rt->p.id;
		int rc;

		memset(&ts, 0, sizeof(ts));
		if (a->ops->tunnel_stats(a->octx, id, &ts) != 0 ||
		    ts.moved_addr.family != rt->p.remote.family ||
		    ts.moved_port == 0)
			continue;
		ro = agent_roam_find(a, id);
		if (ro != NULL && now - ro->at_ms < AGENT_ROAM_HOLD_MS)
			continue;
		if (ro == NULL) {
			struct agent_roam *v = util_grow(a->roam, &a->cap_roam,
			    a->n_roam + 1, sizeof(*v), 8);

			if (v == NULL)
				continue;
			a->roam = v;
			ro = &a->roam[a->n_roam++];
			memset(ro, 0, sizeof(*ro));
			ro->tunnel_id = id;
		}
		agent_endpoint_str(&rt->p.remote, rt->p.remote_port, from,
		    sizeof(from));
		agent_endpoint_str(&ts.moved_addr, ts.moved_port, to,
		    sizeof(to));
		ro->at_ms = now;
		if ((rc = reconcile_tunnel_move(a->rec, id, &ts.moved_addr,
		    ts.moved_port)) < 0) {
			log_warnx("agent: tunnel %" PRIu64 ": peer moved from %s "
			    "to %s, not followed: %s", id, from, to,
			    strerror(-rc));
			continue;
		}
		ro->moves++;
		snprintf(ro->from, sizeof(ro->from), "%s", from);
		a->status_dirty = true;
		log_info("agent: tunnel %" PRIu64 ": peer moved from %s to %s "
		    "(authenticated ESP, %" PRIu64 " packets)", id, from, to,
		    ts.moved_rx);
	}
	/* Forget tunnels that went away. */
	for (size_t i = 0; i < a->n_roam;)
		if (reconcile_tunnel_find(a->rec, a->roam[i].tunnel_id) == NULL)
			a->roam[i] = a->roam[--a->n_roam];
		else
			i++;
}

/* The endpoint followed and the moves, for the controller (TunnelStatus). */
static void
agent_roam_status(const struct agent *a, const struct reconcile_tunnel *rt,
    struct msg_tunnel_status *t)
{
	const struct agent_roam *ro = agent_roam_find(a, rt->p.id);

	if (ro == NULL || ro->moves == 0)
		return;
	t->peer_moves = ro->moves;
	t->peer_port = rt->p.remote_port != 0 ? rt->p.remote_port :
	    OVERLAY_UDP_PORT;
	memset(&t->peer_address, 0, sizeof(t->peer_address));
	t->peer_address.family = rt->p.remote.family;
	memcpy(t->peer_address.bytes, rt->p.remote.bytes,
	    rt->p.remote.family == AF_INET6 ? 16 : 4);
}

/* The backend's moved-peer descriptor, or -1 (agent_roam). */
static int
agent_roam_fd(const struct agent *a)
{
	if (a->ops->version < 3 || a->ops->moved_fd == NULL)
		return -1;
	return a->ops->moved_fd(a->octx);
}

/* ------------------------------------------------------------------ */
/* Status document */

static json_t *
agent_tunnel_json(struct agent *a, const struct reconcile_tunnel *rt)
{
	const struct msg_tunnel *t = a->have_applied ?
	    msg_intent_find_tunnel(&a->applied, rt->p.id) : NULL;
	const struct frr_neighbor_status *nb = agent_bgp_of(a, rt->p.id);
	struct overlay_tunnel_stats ts;
	struct msg_health_status hs;
	enum health_bfd bfd;
	char buf[64], addr[INET6_ADDRSTRLEN];
	json_t *j = json_object(), *sas = json_array();
	bool ok;

	memset(&ts, 0, sizeof(ts));
	ok = a->ops->tunnel_stats(a->octx, rt->p.id, &ts) == 0;
	json_object_set_new(j, "id", json_integer((json_int_t)rt->p.id));
	if (t != NULL) {
		json_object_set_new(j, "peer_site",
		    json_integer((json_int_t)t->peer.site_id));
		json_object_set_new(j, "peer_name", json_string(t->peer.name));
		json_object_set_new(j, "local_link",
		    json_string(t->local_link));
	}
	json_object_set_new(j, "device", json_string(rt->p.ifname));
	overlay_addr_str(&rt->p.remote, addr, sizeof(addr));
	snprintf(buf, sizeof(buf), rt->p.remote.family == AF_INET6 ?
	    "[%s]:%u" : "%s:%u", addr, (unsigned)(rt->p.remote_port ?
	    rt->p.remote_port : OVERLAY_UDP_PORT));
	json_object_set_new(j, "remote", json_string(buf));
	{
		const struct agent_roam *ro = agent_roam_find(a, rt->p.id);

		json_object_set_new(j, "peer_moves", json_integer(
		    (json_int_t)(ro != NULL ? ro->moves : 0)));
		if (ro != NULL && ro->moves > 0)
			json_object_set_new(j, "moved_from",
			    json_string(ro->from));
	}
	overlay_addr_str(&rt->p.inner_local, addr, sizeof(addr));
	snprintf(buf, sizeof(buf), "%s/%u", addr,
	    (unsigned)(rt->p.inner_prefix_len ? rt->p.inner_prefix_len : 31));
	json_object_set_new(j, "inner_local", json_string(buf));
	json_object_set_new(j, "encap",
	    json_string(overlay_encap_str(rt->p.encap)));
	json_object_set_new(j, "vni", json_integer((json_int_t)(
	    rt->p.encap == OVERLAY_ENCAP_VXLAN ? rt->p.vni : 0)));
	json_object_set_new(j, "state", json_string(
	    msg_tunnel_state_name(agent_tunnel_state(&ts, ok))));
	if (ok) {
		json_object_set_new(j, "packets_in",
		    json_integer((json_int_t)ts.rx_packets));
		json_object_set_new(j, "packets_out",
		    json_integer((json_int_t)ts.tx_packets));
		json_object_set_new(j, "bytes_in",
		    json_integer((json_int_t)ts.rx_bytes));
		json_object_set_new(j, "bytes_out",
		    json_integer((json_int_t)ts.tx_bytes));
		json_object_set_new(j, "drops", json_pack(
		    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		    "no_sa", (json_int_t)ts.drops.no_sa,
		    "auth", (json_int_t)ts.drops.auth,
		    "unknown_spi", (json_int_t)ts.drops.unknown_spi,
		    "replay", (json_int_t)ts.drops.replay,
		    "source", (json_int_t)ts.drops.source,
		    "malformed", (json_int_t)ts.drops.malformed,
		    "io", (json_int_t)ts.drops.io));
	}
	for (unsigned k = 0; k < rt->nsas; k++) {
		struct overlay_sa_stats ss;

		if (a->ops->sa_stats(a->octx, rt->p.id, rt->sas[k].spi,
		    rt->sas[k].dir, &ss) != 0)
			continue;
		json_array_append_new(sas, json_pack(
		    "{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:b,s:b}",
		    "dir", rt->sas[k].dir == OVERLAY_DIR_IN ? "in" : "out",
		    "spi", (json_int_t)rt->sas[k].spi,
		    "sa_epoch", (json_int_t)rt->sas[k].sa_epoch,
		    "age_s", (json_int_t)ss.age_s,
		    "packets", (json_int_t)ss.packets,
		    "bytes", (json_int_t)ss.bytes,
		    "seq", (json_int_t)ss.seq,
		    "active", rt->sas[k].dir == OVERLAY_DIR_IN || ss.active,
		    "soft_expired", ss.soft_expired,
		    "hard_expired", ss.hard_expired));
	}
	json_object_set_new(j, "sas", sas);
	if (nb != NULL) {
		char na[MSG_ADDR_STRLEN];

		(void)msg_addr_format(&nb->address, na, sizeof(na));
		json_object_set_new(j, "bgp", json_pack("{s:s,s:s,s:I,s:I,s:I}",
		    "neighbor", na, "state", msg_bgp_state_name(nb->state),
		    "uptime_s", (json_int_t)nb->uptime_s,
		    "prefixes_received", (json_int_t)nb->prefixes_received,
		    "prefixes_filtered",
		    (json_int_t)agent_filtered_of(a, rt->p.id)));
	}
	agent_health_of(a, rt, ok && agent_tunnel_state(&ts, ok) ==
	    MSG_TUNNEL_STATE_UP, &hs, &bfd);
	if (bfd != HEALTH_BFD_NONE)
		json_object_set_new(j, "bfd", json_pack("{s:s}", "state",
		    bfd == HEALTH_BFD_UP ? "up" : "down"));
	json_object_set_new(j, "health", json_pack("{s:b,s:I,s:I,s:I}",
	    "up", hs.up, "rtt_us", (json_int_t)hs.rtt_us,
	    "loss_permille", (json_int_t)hs.loss_permille,
	    "jitter_us", (json_int_t)hs.jitter_us));
	return j;
}

void
agent_set_status(struct agent *a, struct status_srv *srv)
{
	a->status = srv;
}

json_t *
agent_status_json(struct agent *a)
{
	json_t *j = json_object(), *ctl = json_object(), *tun = json_array();

	if (a->site_id != 0)
		json_object_set_new(j, "site_id",
		    json_integer((json_int_t)a->site_id));
	if (a->site_name[0] != '\0')
		json_object_set_new(j, "site_name", json_string(a->site_name));
	json_object_set_new(j, "backend",
	    json_string(edge_config_backend_name(a->cfg.backend)));
	json_object_set_new(j, "version",
	    json_string("meshwan-edge " AGENT_VERSION));
	json_object_set_new(j, "uptime_s",
	    json_integer((json_int_t)((util_mono_ms() - a->start_ms) / 1000)));
	json_object_set_new(ctl, "target",
	    json_string(a->cfg.controllers[a->ctl_idx]));
	json_object_set_new(ctl, "state", json_string(agent_ctl_names[a->ctl]));
	json_object_set_new(ctl, "since_s", json_integer((json_int_t)
	    ((util_mono_ms() - a->ctl_since_ms) / 1000)));
	if (a->have_applied)
		json_object_set_new(ctl, "intent_version",
		    json_integer((json_int_t)a->applied.version));
	if (a->last_ack.set)
		json_object_set_new(ctl, "last_ack", json_pack("{s:I,s:b,s:s}",
		    "version", (json_int_t)a->last_ack.version,
		    "ok", a->last_ack.ok, "reason", a->last_ack.reason));
	json_object_set_new(j, "controller", ctl);
	{
		struct overlay_drops gd;

		memset(&gd, 0, sizeof(gd));
		if (a->ops->global_stats(a->octx, &gd) == 0)
			json_object_set_new(j, "drops", json_pack(
			    "{s:I,s:I,s:I}",
			    "unknown_spi", (json_int_t)gd.unknown_spi,
			    "malformed", (json_int_t)gd.malformed,
			    "io", (json_int_t)gd.io));
	}
	for (size_t i = 0; i < reconcile_ntunnels(a->rec); i++)
		json_array_append_new(tun, agent_tunnel_json(a,
		    reconcile_tunnel_get(a->rec, i)));
	json_object_set_new(j, "tunnels", tun);
	return j;
}

/* The snapshot, once a second, to the control socket and to <state>/status.json
 * (tests, and an operator without the control socket). */
static void
agent_write_status(struct agent *a)
{
	char path[PATH_MAX];
	json_t *j;
	char *s;

	if (snprintf(path, sizeof(path), "%s/status.json", a->cfg.state_dir) >=
	    (int)sizeof(path))
		return;
	j = agent_status_json(a);
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (a->status != NULL)
		status_publish(a->status, j);	/* stolen */
	else
		json_decref(j);
	if (s == NULL)
		return;
	{
		/* Not worth an fsync a second: tmp + rename only. */
		char tmp[PATH_MAX + 8];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		if ((f = fopen(tmp, "w")) != NULL) {
			(void)fchmod(fileno(f), 0600);
			fputs(s, f);
			if (fclose(f) == 0)
				(void)rename(tmp, path);
		}
	}
	free(s);
}

/* ------------------------------------------------------------------ */
/* Reload, signals, set-up */

/* Keys that need a restart; everything else is taken on SIGHUP. */
static const char *
agent_restart_key(const struct edge_config *o, const struct edge_config *n)
{
	if (memcmp(o->controllers, n->controllers, sizeof(o->controllers))
	    != 0 ||
	    o->n_controllers != n->n_controllers)
		return "controller";
	if (memcmp(o->enroll, n->enroll, sizeof(o->enroll)) != 0 ||
	    o->n_enroll != n->n_enroll)
		return "enroll_controller";
	if (strcmp(o->ca_file, n->ca_file) != 0 ||
	    strcmp(o->controller_name, n->controller_name) != 0 ||
	    o->has_ca_pin != n->has_ca_pin ||
	    memcmp(o->ca_pin, n->ca_pin, sizeof(o->ca_pin)) != 0)
		return "ca_file/ca_pin/controller_name";
	if (strcmp(o->state_dir, n->state_dir) != 0)
		return "state_dir";
	if (o->backend != n->backend)
		return "backend";
	if (o->n_links != n->n_links)
		return "link";
	for (unsigned i = 0; i < o->n_links; i++)
		if (strcmp(o->links[i].name, n->links[i].name) != 0 ||
		    !msg_addr_equal(&o->links[i].address,
		    &n->links[i].address) ||
		    !msg_addr_equal(&o->links[i].public_address,
		    &n->links[i].public_address) ||
		    o->links[i].public_port != n->links[i].public_port)
			return "link";
	if (strcmp(o->metrics_listen, n->metrics_listen) != 0)
		return "metrics_listen";
	return NULL;
}

static void
agent_reload(struct agent *a)
{
	struct edge_config next;
	const char *why;

	log_info("reload: reading %s", a->config_path);
	if (edge_config_load(a->config_path, &next) == -1) {
		log_warnx("reload: %s refused; the running configuration "
		    "stays", a->config_path);
		return;
	}
	if ((why = agent_restart_key(&a->cfg, &next)) != NULL) {
		log_warnx("reload: %s changed, which needs a restart; the "
		    "running configuration stays", why);
		edge_config_free(&next);
		return;
	}
	edge_config_free(&a->cfg);
	a->cfg = next;
	log_setlevel(a->cfg.log_level);
	(void)log_setdebug(a->cfg.debug);
	agent_frr_target(a);
	/* FRR again with the new target and prefixes. */
	a->frr_ok = false;
	a->frr_retry_ms = 0;
	log_info("reload: configuration applied");
}

static void
agent_signals(struct agent *a)
{
	struct signalfd_siginfo si;

	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %u: stopping", si.ssi_signo);
			a->quit = true;
			break;
		case SIGHUP:
			agent_reload(a);
			break;
		default:
			break;
		}
	}
}

struct agent *
agent_new(const struct edge_config *cfg, const char *config_path)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct overlay_init_params ip;
	struct reconcile_config rc;
	sigset_t mask;
	const char *bname;
	int r;

	if (a == NULL)
		return NULL;
	a->sigfd = -1;
	a->start_ms = a->ctl_since_ms = util_mono_ms();
	/* A private copy of the configuration (lan_prefixes owned). */
	a->cfg = *cfg;
	a->cfg.lan_prefixes = NULL;
	if (cfg->n_lan_prefixes > 0) {
		if ((a->cfg.lan_prefixes = calloc(cfg->n_lan_prefixes,
		    sizeof(*cfg->lan_prefixes))) == NULL)
			goto fail;
		memcpy(a->cfg.lan_prefixes, cfg->lan_prefixes,
		    cfg->n_lan_prefixes * sizeof(*cfg->lan_prefixes));
	}
	if ((a->config_path = strdup(config_path)) == NULL)
		goto fail;
	if (mkdir(a->cfg.state_dir, 0700) == -1 && errno != EEXIST) {
		log_warn("agent: %s", a->cfg.state_dir);
		goto fail;
	}
	(void)chmod(a->cfg.state_dir, 0700);
	if (agent_ca_init(a) == -1)
		goto fail;
	if (snprintf(a->cert_path, sizeof(a->cert_path), "%s/" AGENT_CERT,
	    a->cfg.state_dir) >= (int)sizeof(a->cert_path) ||
	    snprintf(a->key_path, sizeof(a->key_path), "%s/" AGENT_KEY,
	    a->cfg.state_dir) >= (int)sizeof(a->key_path) ||
	    snprintf(a->seq_path, sizeof(a->seq_path), "%s/" AGENT_SEQ,
	    a->cfg.state_dir) >= (int)sizeof(a->seq_path) ||
	    snprintf(a->key_dir, sizeof(a->key_dir), "%s/" AGENT_KEYDIR,
	    a->cfg.state_dir) >= (int)sizeof(a->key_dir))
		goto fail;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if ((a->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		log_warn("agent: signalfd");
		goto fail;
	}

	bname = edge_config_backend_name(a->cfg.backend);
	if ((a->ops = overlay_find(bname)) == NULL) {
		log_warnx("agent: backend %s is not built in", bname);
		goto fail;
	}
	memset(&ip, 0, sizeof(ip));
	ip.seq_file = a->seq_path;
	/* A kernel data plane outlives a stop: the next start adopts it. */
	ip.keep_at_fini = true;
	if ((r = a->ops->init(&ip, &a->octx)) != 0) {
		log_warnx("agent: backend %s: %s", bname, strerror(-r));
		a->octx = NULL;
		goto fail;
	}
	memset(&rc, 0, sizeof(rc));
	rc.ops = a->ops;
	rc.octx = a->octx;
	rc.key = agent_key_fn;
	rc.key_arg = a;
	rc.allowed = reconcile_allowed_from_intent;
	rc.allowed_arg = NULL;
	if ((a->rec = reconcile_new(&rc)) == NULL)
		goto fail;
	if ((a->keys = keys_open(a->key_dir)) == NULL)
		goto fail;
	agent_frr_target(a);
	a->health = health_new();	/* NULL: no probes, logged */

	/* The status document of an earlier run is stale. */
	{
		char sp[PATH_MAX];

		if (snprintf(sp, sizeof(sp), "%s/status.json",
		    a->cfg.state_dir) < (int)sizeof(sp))
			(void)unlink(sp);
	}
	/* Headless start: the cached intent on the keys we have. */
	if (access(a->cert_path, R_OK) == 0 &&
	    agent_cert_site(a->cert_path, &a->site_id) == 0) {
		struct msg_intent in;
		char reason[MSG_REASON_MAX + 1];

		if (cache_read_intent(a->cfg.state_dir, &in) == 0) {
			if (in.site.id != a->site_id) {
				log_warnx("agent: cached intent is for site %"
				    PRIu64 ", not %" PRIu64 "; ignored",
				    in.site.id, a->site_id);
			} else if (agent_apply(a, &in, reason, sizeof(reason))
			    == 0) {
				log_info("agent: site rebuilt from the cached "
				    "intent version %" PRIu64, in.version);
			} else {
				log_warnx("agent: cached intent version %"
				    PRIu64 ": %s", in.version, reason);
			}
			msg_intent_free(&in);
		}
	}
	return a;
fail:
	agent_free(a);
	return NULL;
}

void
agent_free(struct agent *a)
{
	if (a == NULL)
		return;
	session_free(a->sess);
	reconcile_free(a->rec);
	if (a->ops != NULL && a->octx != NULL)
		a->ops->fini(a->octx);
	keys_free(a->keys);
	msg_intent_free(&a->applied);
	frr_bgp_status_free(&a->bgp);
	frr_bfd_status_free(&a->bfd);
	health_free(a->health);
	free(a->filtered);
	if (a->sigfd != -1)
		close(a->sigfd);
	edge_config_free(&a->cfg);
	free(a->config_path);
	free(a->roam);
	free(a);
}

int
agent_run(struct agent *a)
{
	uint64_t status_written = 0;
	bool status_was_dirty = false;

	if (access(a->cert_path, R_OK) != 0)
		agent_set_ctl(a, AGENT_CTL_ENROLLING);
	else if (agent_enrolled(a) == -1)
		return 1;
	while (!a->quit && !a->fatal) {
		struct pollfd p[4] = {
			{ .fd = a->sigfd, .events = POLLIN },
			{ .fd = a->sess ? session_fd(a->sess) : -1,
			  .events = POLLIN },
			{ .fd = agent_roam_fd(a), .events = POLLIN },
			{ .fd = health_fd(a->health), .events = POLLIN },
		};
		int t = a->sess ? session_timeout_ms(a->sess) : -1;
		int ht = health_timeout_ms(a->health, util_mono_ms());
		uint64_t now = util_mono_ms();
		int wait = 200;
		bool changed;

		if (t >= 0 && t < wait)
			wait = t;
		if (ht >= 0 && ht < wait)
			wait = ht;
		(void)poll(p, 4, wait);
		/* Probes out and answers in; a changed path is reported. */
		if (health_run(a->health, util_mono_ms()))
			a->status_dirty = true;
		if (p[0].revents & POLLIN)
			agent_signals(a);
		if (a->quit)
			break;
		if (a->ctl == AGENT_CTL_ENROLLING && a->sess == NULL &&
		    now >= a->enroll_at_ms) {
			int r = agent_enroll_once(a);

			if (r == -1)
				return 1;
			if (r == 0) {
				if (agent_enrolled(a) == -1)
					return 1;
			} else {
				a->enroll_backoff_s = a->enroll_backoff_s ?
				    a->enroll_backoff_s * 2 : 1;
				if (a->enroll_backoff_s >
				    AGENT_ENROLL_BACKOFF_MAX_S)
					a->enroll_backoff_s =
					    AGENT_ENROLL_BACKOFF_MAX_S;
				a->enroll_at_ms = util_mono_ms() +
				    a->enroll_backoff_s * 1000ull;
			}
		}
		if (a->sess != NULL && session_dispatch(a->sess) == -1)
			log_warnx("session: reopen failed; retrying");
		if (a->sess != NULL)
			agent_check_connected(a);
		agent_failover(a);
		if (p[2].revents & POLLIN) {
			uint64_t v;

			(void)read(p[2].fd, &v, sizeof(v));	/* rearm */
		}
		agent_roam(a, util_mono_ms(), (p[2].revents & POLLIN) != 0);
		/* Before agent_tick: sending to the controller clears it. */
		changed = a->status_dirty && !status_was_dirty;
		agent_tick(a);
		/* Every second, and at once when something changed. */
		if (now - status_written >= 1000 || changed) {
			agent_write_status(a);
			status_written = now;
		}
		status_was_dirty = a->status_dirty;
	}
	return a->fatal ? 1 : 0;
}
