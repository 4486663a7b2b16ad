/*
 * enroll.c — Enrollment.Enroll and Edge.Renew: certificates for edges,
 * issued off the event loop.
 *
 * Why a worker thread: a CSR costs a DER parse and an ECDSA verification,
 * an enrollment a signature and an fsynced commit.  Done on the loop, a
 * flood of unauthenticated Enroll calls delayed every connected edge's
 * acks.  Now the loop only looks the caller's address up in a token
 * bucket table and queues the call (both bounded); the worker does the
 * rest on its own database connection and hands the encoded answer back.
 *
 * Order inside Enroll matters:
 *  - the token is looked up (one indexed read) before the CSR is touched,
 *    so an unknown, used or expired token costs no signature work and
 *    tells the edge which it is;
 *  - the CSR is checked before the token is consumed (a typo in the CSR
 *    must not burn the operator's token);
 *  - consuming the token and recording the certificate (certs table and
 *    the "cert.<id>" the sessions relay) happen in one transaction, so a
 *    failure leaves the token usable and never half a certificate.
 *
 * Enroll calls that wait together share one commit (enroll_do_batch):
 * each fsynced commit took ~10 ms here and the worker did them one after
 * another, so enrollment ran at 25-60 edges/s whatever the CPU.
 *
 * A used token presented again with the same key pair, inside the
 * token's lifetime and for a site not revoked, gets the certificate on
 * record again, byte for byte (enroll_replay): the edge lost our answer
 * after the commit (a dropped connection, its deadline) and, without
 * this, could only be refused until an operator made a new token.  The
 * CSR proves the caller holds the certificate's key, so it learns
 * nothing it could not use anyway; any other key is refused as before.
 *
 * Renew accepts only the site's ACTIVE certificate and a CSR with a new
 * key; the new certificate is recorded NEXT, and the first Session opened
 * with it retires the old one (controller/CONTROLLER.md, "Certificates").
 */
#include "controller/enroll.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "controller/ca.h"
#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/store.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define ENROLL_QUEUE_MAX 64      /* calls queued or in work, all sources */
#define ENROLL_BATCH 32          /* Enroll calls sharing one commit */
#define ENROLL_RL_PROBE 8        /* slots a source may take */
#define ENROLL_RL_ADDR 48
#define ENROLL_LOG_MS 10000      /* one "rate limited" line per interval */
#define ENROLL_LOG_REFUSED 10    /* refusals logged one by one per interval */

struct enroll_rl_slot {
	char addr[ENROLL_RL_ADDR];   /* "" = free */
	double tokens;
	uint64_t last_ms;
};

struct enroll_rl {
	struct enroll_rl_slot slot[ENROLL_RL_SLOTS];
};

struct enroll_job {
	struct enroll_job *next;
	struct rpc_unary *call;      /* answered on the loop only */
	bool renew;
	uint8_t *req;
	size_t len;
	char addr[64];
	char cn[65];                 /* renew: the caller's certificate */
	uint8_t fp[RPC_CERT_FP_LEN];
	/* The worker's answer. */
	int code;                    /* RPC_OK: out holds the reply */
	char msg[MSG_ERROR_MAX + 1];
	uint8_t *out;
	size_t out_len;
	uint64_t site_id;
	uint8_t *cert;               /* enroll: for the issued hook */
	size_t cert_len;
};

struct enroll {
	struct store *st;
	struct ca *ca;
	struct metrics *metrics;
	struct enroll_hooks hooks;
	struct enroll_rl *rl;
	int efd;
	uint64_t limited;            /* calls refused since the last log line */
	uint64_t limited_log_at;
	unsigned refused_logged;     /* refusals logged in this interval */
	uint64_t refused_quiet;      /* and those not logged */
	uint64_t refused_log_at;
	size_t in_flight;            /* loop side: queued, not yet answered */
	uint32_t lose_left;          /* test_enroll_lose: answers to withhold */
	struct rpc_unary *lost[4];   /* withheld calls, failed later */

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct enroll_config cfg;    /* under mu: the worker reads it */
	struct enroll_job *todo, **todo_tail;
	struct enroll_job *done, **done_tail;
	bool stop;
};

/* ------------------------------------------------------------------ */
/* Rate limit per source address */

struct enroll_rl *
enroll_rl_new(void)
{
	return calloc(1, sizeof(struct enroll_rl));
}

void
enroll_rl_free(struct enroll_rl *rl)
{
	free(rl);
}

/* "ipv4:10.0.0.1:5555" -> "ipv4:10.0.0.1", "ipv6:[::1]:5555" -> "ipv6:[::1]". */
static void
enroll_rl_key(const char *addr, char key[ENROLL_RL_ADDR])
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon != NULL && colon > addr && strchr(addr, ':') != colon ?
	    (size_t)(colon - addr) : strlen(addr);

	if (n >= ENROLL_RL_ADDR)
		n = ENROLL_RL_ADDR - 1;
	memcpy(key, addr, n);
	key[n] = '\0';
}

int
enroll_rl_take(struct enroll_rl *rl, const char *addr, uint64_t now_ms,
    uint32_t rate, uint32_t burst)
{
	char key[ENROLL_RL_ADDR];
	struct enroll_rl_slot *hit = NULL, *victim = NULL;
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	double max = burst > 0 ? (double)burst : 1, vfull = -1;

	if (rate == 0)
		return 1; /* unlimited */
	enroll_rl_key(addr, key);
	for (const char *c = key; *c != '\0'; c++)
		h = (h ^ (uint8_t)*c) * 1099511628211ull;
	for (size_t i = 0; i < ENROLL_RL_PROBE; i++) {
		struct enroll_rl_slot *sl =
		    &rl->slot[(h + i) % ENROLL_RL_SLOTS];
		double full;

		if (strcmp(sl->addr, key) == 0) {
			hit = sl;
			break;
		}
		/* Refilled up to now: a full bucket loses nothing when its
		 * slot is taken (it would start full again); one in debt
		 * keeps its slot as long as a fuller one is in the window. */
		full = sl->addr[0] == '\0' ? max + 1 : sl->tokens +
		    (double)(now_ms > sl->last_ms ? now_ms - sl->last_ms : 0) *
		    rate / 1000.0;
		if (full > vfull) {
			vfull = full;
			victim = sl;
		}
	}
	if (hit == NULL) {
		hit = victim;
		memcpy(hit->addr, key, sizeof(key));
		hit->tokens = max;
		hit->last_ms = now_ms;
	}
	if (now_ms > hit->last_ms) {
		hit->tokens += (double)(now_ms - hit->last_ms) * rate / 1000.0;
		if (hit->tokens > max)
			hit->tokens = max;
	}
	hit->last_ms = now_ms;
	if (hit->tokens < 1.0)
		return 0;
	hit->tokens -= 1.0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Worker: everything that costs */

static void
enroll_job_fail(struct enroll_job *j, int code, enum msg_enroll_error why,
    const char *detail)
{
	j->code = code;
	if (why != MSG_ENROLL_ERROR_UNSPECIFIED)
		snprintf(j->msg, sizeof(j->msg), "%s: %.200s",
		    msg_enroll_error_name(why), detail);
	else
		snprintf(j->msg, sizeof(j->msg), "%.200s", detail);
}

/* A store error the edge did not cause.  Unreachable database: a write
 * is needed, so fail closed, with a reason the edge can act on (retry)
 * but not the cause's details (hosts, ports) that only operators see
 * (the log, REST 503). */
static void
enroll_job_fail_store(struct enroll_job *j, const struct model_error *err)
{
	if (err->code == MODEL_E_BUSY)
		enroll_job_fail(j, RPC_UNAVAILABLE,
		    MSG_ENROLL_ERROR_UNSPECIFIED, "the controller's database "
		    "is unavailable; try again later");
	else
		enroll_job_fail(j, RPC_INTERNAL, MSG_ENROLL_ERROR_UNSPECIFIED,
		    "internal error");
}

static int
enroll_reply(struct enroll *en, struct enroll_job *j, uint64_t site_id,
    const uint8_t *cert, size_t cert_len, const char *controller_name)
{
	struct msg_enroll_response rs;
	const uint8_t *ca_der;
	size_t ca_len;

	memset(&rs, 0, sizeof(rs));
	ca_der = ca_cert_der(en->ca, &ca_len);
	rs.error = MSG_ENROLL_ERROR_UNSPECIFIED;
	rs.site_id = site_id;
	rs.certificate_der.data = (uint8_t *)cert;
	rs.certificate_der.len = cert_len;
	rs.ca_chain_der[0].data = (uint8_t *)ca_der;
	rs.ca_chain_der[0].len = ca_len;
	rs.n_ca_chain = 1;
	snprintf(rs.controller_name, sizeof(rs.controller_name), "%s",
	    controller_name);
	if (pbconv_encode_enroll_response(&rs, &j->out, &j->out_len) == -1)
		return -1;
	j->code = RPC_OK;
	j->site_id = site_id;
	return 0;
}

/* A certificate just signed, as the store records it. */
static int
enroll_cert_record(uint64_t site_id, const uint8_t *der, size_t len,
    struct store_cert *c)
{
	struct ca_cert_info ci;

	if (len > sizeof(c->der) || ca_cert_info(der, len, &ci) == -1)
		return -1;
	memset(c, 0, sizeof(*c));
	c->site_id = site_id;
	memcpy(c->fp, ci.sha256, sizeof(c->fp));
	snprintf(c->serial, sizeof(c->serial), "%s", ci.serial);
	c->not_after = ci.not_after;
	c->issued_at = (int64_t)time(NULL);
	memcpy(c->der, der, len);
	c->der_len = len;
	return 0;
}

/* The certificate the sessions relay to peers ("cert.<id>", hex DER). */
static int
enroll_kv_cert(struct store *st, uint64_t site_id, const uint8_t *der,
    size_t len, struct model_error *err)
{
	char key[64], *hex;
	int rc;

	if ((hex = malloc(len * 2 + 1)) == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "certificate",
		    "out of memory");
	util_hex(der, len, hex);
	snprintf(key, sizeof(key), "cert.%" PRIu64, site_id);
	rc = store_kv_set(st, key, hex, err);
	free(hex);
	return rc;
}

/*
 * rq's token is used: is this the edge whose answer was lost?  0: yes,
 * answered with the certificate on record; 1: no (the caller refuses as
 * before; why is logged at debug level); -1: a store error in *err.
 */
static int
enroll_replay(struct enroll *en, struct enroll_job *j,
    const struct msg_enroll_request *rq, int64_t now,
    const struct enroll_config *cfg, struct model_error *err)
{
	struct store_cert *c;
	char reason[CA_REASON_MAX];
	int rc = 1;

	if ((c = malloc(sizeof(*c))) == NULL)
		return model_error_set(err, MODEL_E_INTERNAL, "certificate",
		    "out of memory");
	if (store_enroll_token_replay(en->st, rq->token, now, c, err) == -1) {
		if (err->code != MODEL_E_TOKEN &&
		    err->code != MODEL_E_NOT_FOUND) {
			rc = -1;
			goto out;
		}
		log_debug("enroll", "%s: used token, no replay: %s", j->addr,
		    err->message);
		memset(err, 0, sizeof(*err));
		goto out;
	}
	/* The CSR's signature first: it is what proves the key. */
	if (ca_check_csr(rq->csr_der.data, rq->csr_der.len, reason) == -1 ||
	    ca_csr_same_key(rq->csr_der.data, rq->csr_der.len, c->der,
	    c->der_len) != 1) {
		/* Refused as a used token, logged with the other refusals
		 * (bounded): a leaked token must not flood the log. */
		log_debug("enroll", "%s: used token for site %" PRIu64
		    " with another key (or a bad CSR): no replay", j->addr,
		    c->site_id);
		goto out;
	}
	if (enroll_reply(en, j, c->site_id, c->der, c->der_len,
	    cfg->controller_name) == -1) {
		rc = model_error_set(err, MODEL_E_INTERNAL, "certificate",
		    "cannot encode the answer");
		goto out;
	}
	log_info("enroll: enroll replay for site %" PRIu64 " from %s (%s): "
	    "same key, certificate re-sent (serial %s)", c->site_id, j->addr,
	    rq->software_version, c->serial);
	rc = 0;
out:
	free(c);
	return rc;
}

static void
enroll_do_enroll(struct enroll *en, struct enroll_job *j,
    const struct enroll_config *cfg)
{
	struct msg_enroll_request rq;
	struct model_error err = { 0 };
	struct model_site site;
	struct store_cert *rec = NULL;
	enum store_token_state state = STORE_TOKEN_UNKNOWN;
	char reason[CA_REASON_MAX], derr[PBCONV_ERR_LEN];
	uint8_t *cert = NULL;
	size_t cert_len = 0;
	uint64_t site_id = 0;
	int64_t now = (int64_t)time(NULL);

	if (pbconv_decode_enroll_request(j->req, j->len, &rq, derr,
	    sizeof(derr)) == -1) {
		enroll_job_fail(j, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, derr);
		return;
	}
	/* The token first: a bad one costs one indexed read, no crypto. */
	if (store_enroll_token_state(en->st, rq.token, 0, now, &state, NULL,
	    &err) == -1)
		goto internal;
	if (state == STORE_TOKEN_USED) {
		int r = enroll_replay(en, j, &rq, now, cfg, &err);

		if (r == -1)
			goto internal;
		if (r == 0)
			goto out;
	}
	if (state != STORE_TOKEN_VALID) {
		enroll_job_fail(j, RPC_UNAUTHENTICATED,
		    state == STORE_TOKEN_USED ? MSG_ENROLL_ERROR_TOKEN_USED :
		    state == STORE_TOKEN_EXPIRED ?
		    MSG_ENROLL_ERROR_TOKEN_EXPIRED :
		    MSG_ENROLL_ERROR_TOKEN_UNKNOWN,
		    state == STORE_TOKEN_USED ? "token already used" :
		    state == STORE_TOKEN_EXPIRED ? "token expired" :
		    "token unknown");
		goto out;
	}
	if (ca_check_csr(rq.csr_der.data, rq.csr_der.len, reason) == -1) {
		enroll_job_fail(j, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, reason);
		goto out;
	}
	if ((rec = malloc(sizeof(*rec))) == NULL)
		goto internal;
	if (store_begin(en->st, &err) == -1)
		goto internal;
	if (store_enroll_token_consume(en->st, rq.token, 0, now, &site_id,
	    &err) == -1) {
		store_rollback(en->st);
		if (err.code != MODEL_E_TOKEN)
			goto internal;
		/* Used or expired since the look-up above: a race, maybe
		 * with this edge's own earlier call. */
		memset(&err, 0, sizeof(err));
		switch (enroll_replay(en, j, &rq, now, cfg, &err)) {
		case -1:
			goto internal;
		case 0:
			goto out;
		default:
			break;
		}
		enroll_job_fail(j, RPC_UNAUTHENTICATED,
		    MSG_ENROLL_ERROR_TOKEN_USED, "token already used");
		goto out;
	}
	if (store_site_get(en->st, site_id, &site, &err) == -1 ||
	    site.revoked) {
		store_rollback(en->st);
		enroll_job_fail(j, RPC_PERMISSION_DENIED,
		    MSG_ENROLL_ERROR_SITE_REVOKED,
		    "the token's site is revoked or deleted");
		goto out;
	}
	if (ca_sign_csr(en->ca, rq.csr_der.data, rq.csr_der.len, site_id,
	    cfg->cert_lifetime_s, &cert, &cert_len, reason) == -1 ||
	    enroll_cert_record(site_id, cert, cert_len, rec) == -1 ||
	    store_cert_enroll(en->st, rec, &err) == -1 ||
	    enroll_kv_cert(en->st, site_id, cert, cert_len, &err) == -1) {
		store_rollback(en->st);
		goto internal;
	}
	if (store_commit(en->st, &err) == -1)
		goto internal;
	if (enroll_reply(en, j, site_id, cert, cert_len,
	    cfg->controller_name) == -1)
		goto internal;
	log_info("enroll: site %" PRIu64 " (%s) enrolled from %s (%s), "
	    "certificate serial %s", site_id, site.name, j->addr,
	    rq.software_version, rec->serial);
	j->cert = cert;
	j->cert_len = cert_len;
	cert = NULL;
	goto out;
internal:
	log_warnx("enroll: %s: internal error: %s", j->addr,
	    err.message[0] ? err.message : "see above");
	enroll_job_fail_store(j, &err);
out:
	free(rec);
	free(cert);
	msg_enroll_request_free(&rq);
}

/* One Enroll call of a batch, checked and signed, not yet stored. */
struct enroll_prep {
	struct enroll_job *j;
	struct msg_enroll_request rq;
	uint64_t site_id;
	struct store_cert *rec;
	uint8_t *cert;
	size_t cert_len;
	char name[MODEL_NAME_MAX + 1];
};

/*
 * Job j of a batch, up to its signature, with nothing written: 1 = ready
 * (p filled), 0 = answered (a refusal: the same checks, codes and
 * reasons as enroll_do_enroll), -1 = run it alone.
 */
static int
enroll_prepare(struct enroll *en, struct enroll_job *j,
    const struct enroll_config *cfg, int64_t now, struct enroll_prep *p)
{
	struct model_error err = { 0 };
	struct model_site site;
	enum store_token_state state = STORE_TOKEN_UNKNOWN;
	char reason[CA_REASON_MAX], derr[PBCONV_ERR_LEN];

	memset(p, 0, sizeof(*p));
	p->j = j;
	if (pbconv_decode_enroll_request(j->req, j->len, &p->rq, derr,
	    sizeof(derr)) == -1) {
		enroll_job_fail(j, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, derr);
		return 0;
	}
	if (store_enroll_token_state(en->st, p->rq.token, 0, now, &state,
	    &p->site_id, &err) == -1)
		return -1;
	if (state != STORE_TOKEN_VALID ||
	    ca_check_csr(p->rq.csr_der.data, p->rq.csr_der.len,
	    reason) == -1) {
		msg_enroll_request_free(&p->rq);
		return -1;    /* the single path words the refusal */
	}
	if (store_site_get(en->st, p->site_id, &site, &err) == -1 ||
	    site.revoked || (p->rec = malloc(sizeof(*p->rec))) == NULL ||
	    ca_sign_csr(en->ca, p->rq.csr_der.data, p->rq.csr_der.len,
	    p->site_id, cfg->cert_lifetime_s, &p->cert, &p->cert_len,
	    reason) == -1 ||
	    enroll_cert_record(p->site_id, p->cert, p->cert_len,
	    p->rec) == -1) {
		free(p->rec);
		free(p->cert);
		msg_enroll_request_free(&p->rq);
		memset(p, 0, sizeof(*p));
		return -1;
	}
	snprintf(p->name, sizeof(p->name), "%s", site.name);
	return 1;
}

static void
enroll_prep_free(struct enroll_prep *p)
{
	free(p->rec);
	free(p->cert);
	msg_enroll_request_free(&p->rq);
	memset(p, 0, sizeof(*p));
}

/*
 * Enroll calls that waited together (n >= 2): group commit.  Each is
 * checked and signed first (enroll_prepare); then one transaction burns
 * every token and records every certificate, reading each site again
 * inside it (a site revoked meanwhile is not enrolled).  Anything
 * unexpected in it (a token burnt meanwhile, the same token twice, a
 * store error) rolls the whole transaction back and every call of the
 * batch runs alone (enroll_do_enroll), so one call's outcome never
 * depends on another's, and a token is still burnt only with its
 * certificate recorded.
 */
static void
enroll_do_batch(struct enroll *en, struct enroll_job **jobs, size_t n,
    const struct enroll_config *cfg)
{
	struct enroll_prep *p = calloc(n, sizeof(*p));
	struct model_error err = { 0 };
	int64_t now = (int64_t)time(NULL);
	bool *alone = calloc(n, sizeof(*alone));
	size_t ready = 0;
	bool ok = true;

	if (p == NULL || alone == NULL) {
		free(p);
		free(alone);
		for (size_t i = 0; i < n; i++)
			enroll_do_enroll(en, jobs[i], cfg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int rc = enroll_prepare(en, jobs[i], cfg, now, &p[i]);

		alone[i] = rc == -1;
		ready += rc == 1;
	}
	if (ready > 0 && store_begin(en->st, &err) == -1)
		ok = false;
	for (size_t i = 0; ok && i < n; i++) {
		struct model_site site;
		uint64_t sid = 0;

		if (p[i].cert == NULL)
			continue;
		if (store_site_get(en->st, p[i].site_id, &site, &err) == -1 ||
		    site.revoked ||
		    store_enroll_token_consume(en->st, p[i].rq.token, 0, now,
		    &sid, &err) == -1 || sid != p[i].site_id ||
		    store_cert_enroll(en->st, p[i].rec, &err) == -1 ||
		    enroll_kv_cert(en->st, p[i].site_id, p[i].cert,
		    p[i].cert_len, &err) == -1)
			ok = false;
	}
	if (ready > 0) {
		if (!ok)
			store_rollback(en->st);
		else if (store_commit(en->st, &err) == -1)
			ok = false;
		if (ok)
			log_info("enroll: %zu Enroll calls in one commit",
			    ready);
	}
	for (size_t i = 0; i < n; i++) {
		struct enroll_job *j = jobs[i];

		if (p[i].cert != NULL && ok &&
		    enroll_reply(en, j, p[i].site_id, p[i].cert,
		    p[i].cert_len, cfg->controller_name) == 0) {
			log_info("enroll: site %" PRIu64 " (%s) enrolled from "
			    "%s (%s), certificate serial %s", p[i].site_id,
			    p[i].name, j->addr, p[i].rq.software_version,
			    p[i].rec->serial);
			j->cert = p[i].cert;
			j->cert_len = p[i].cert_len;
			p[i].cert = NULL;
		} else if (p[i].cert != NULL && ok) {
			/* Stored, but no answer could be encoded. */
			enroll_job_fail(j, RPC_INTERNAL,
			    MSG_ENROLL_ERROR_UNSPECIFIED, "internal error");
		} else if (p[i].cert != NULL || alone[i])
			enroll_do_enroll(en, j, cfg);
		enroll_prep_free(&p[i]);
	}
	free(p);
	free(alone);
}

static void
enroll_do_renew(struct enroll *en, struct enroll_job *j,
    const struct enroll_config *cfg)
{
	struct msg_renew_request rq;
	struct model_error err = { 0 };
	struct model_site site;
	struct store_cert *cur = NULL, *rec = NULL;
	char reason[CA_REASON_MAX], derr[PBCONV_ERR_LEN];
	uint8_t *cert = NULL;
	size_t cert_len = 0;
	uint64_t site_id = 0;
	int same;

	if (pbconv_decode_renew_request(j->req, j->len, &rq, derr,
	    sizeof(derr)) == -1) {
		enroll_job_fail(j, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, derr);
		return;
	}
	if ((cur = malloc(sizeof(*cur))) == NULL ||
	    (rec = malloc(sizeof(*rec))) == NULL)
		goto internal;
	/* Only the certificate we issued last may renew; a retired one,
	 * or another CA's, is refused before any CSR work. */
	if (ca_identity_site(j->cn, &site_id) == -1 ||
	    store_cert_get(en->st, j->fp, cur, &err) == -1 ||
	    cur->site_id != site_id) {
		if (err.code != MODEL_OK && err.code != MODEL_E_NOT_FOUND)
			goto internal;
		enroll_job_fail(j, RPC_PERMISSION_DENIED,
		    MSG_ENROLL_ERROR_UNSPECIFIED, "this certificate is retired "
		    "or not a site's: enroll again");
		goto out;
	}
	if (cur->state != STORE_CERT_ACTIVE) {
		enroll_job_fail(j, RPC_FAILED_PRECONDITION,
		    MSG_ENROLL_ERROR_UNSPECIFIED, "this certificate is already "
		    "the renewed one: open a Session with it first");
		goto out;
	}
	if (store_site_get(en->st, site_id, &site, &err) == -1 ||
	    site.revoked) {
		enroll_job_fail(j, RPC_PERMISSION_DENIED,
		    MSG_ENROLL_ERROR_SITE_REVOKED, "the site is revoked or "
		    "deleted");
		goto out;
	}
	if ((same = ca_csr_same_key(rq.csr_der.data, rq.csr_der.len,
	    cur->der, cur->der_len)) != 0) {
		if (same == 1)
			snprintf(reason, sizeof(reason), "a renewal needs a new "
			    "key pair");
		else if (ca_check_csr(rq.csr_der.data, rq.csr_der.len,
		    reason) == 0)
			goto internal;
		enroll_job_fail(j, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, reason);
		goto out;
	}
	if (ca_sign_csr(en->ca, rq.csr_der.data, rq.csr_der.len, site_id,
	    cfg->cert_lifetime_s, &cert, &cert_len, reason) == -1 ||
	    enroll_cert_record(site_id, cert, cert_len, rec) == -1)
		goto internal;
	if (store_cert_renew(en->st, j->fp, rec, &err) == -1) {
		if (err.code != MODEL_E_TOKEN)
			goto internal;
		enroll_job_fail(j, RPC_PERMISSION_DENIED,
		    MSG_ENROLL_ERROR_UNSPECIFIED, err.message);
		goto out;
	}
	if (enroll_reply(en, j, site_id, cert, cert_len,
	    cfg->controller_name) == -1)
		goto internal;
	log_info("enroll: site %" PRIu64 " renewed its certificate from %s "
	    "(serial %s -> %s, valid until %" PRId64 ")", site_id, j->addr,
	    cur->serial, rec->serial, rec->not_after);
	goto out;
internal:
	log_warnx("enroll: renew from %s: internal error: %s", j->addr,
	    err.message[0] ? err.message : "see above");
	enroll_job_fail_store(j, &err);
out:
	free(cur);
	free(rec);
	free(cert);
	msg_renew_request_free(&rq);
}

static void *
enroll_worker(void *arg)
{
	struct enroll *en = arg;
	const uint64_t one = 1;

	pthread_mutex_lock(&en->mu);
	for (;;) {
		struct enroll_job *jobs[ENROLL_BATCH];
		struct enroll_config cfg;
		size_t n = 0;

		while (en->todo == NULL && !en->stop)
			pthread_cond_wait(&en->cv, &en->mu);
		if (en->stop)
			break;
		/* A renewal alone; Enroll calls in a batch of those waiting
		 * (one commit for all). */
		do {
			struct enroll_job *j = en->todo;

			if (n > 0 && j->renew)
				break;
			if ((en->todo = j->next) == NULL)
				en->todo_tail = &en->todo;
			j->next = NULL;
			jobs[n++] = j;
		} while (en->todo != NULL && n < ENROLL_BATCH &&
		    !jobs[0]->renew);
		cfg = en->cfg;
		pthread_mutex_unlock(&en->mu);

		if (jobs[0]->renew)
			enroll_do_renew(en, jobs[0], &cfg);
		else if (n == 1)
			enroll_do_enroll(en, jobs[0], &cfg);
		else
			enroll_do_batch(en, jobs, n, &cfg);
		for (size_t i = 0; i < n; i++) {
			free(jobs[i]->req);
			jobs[i]->req = NULL;
		}

		pthread_mutex_lock(&en->mu);
		for (size_t i = 0; i < n; i++) {
			*en->done_tail = jobs[i];
			en->done_tail = &jobs[i]->next;
		}
		if (write(en->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			log_warn("enroll: eventfd");
	}
	pthread_mutex_unlock(&en->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Loop side */

static void
enroll_job_free(struct enroll_job *j)
{
	if (j == NULL)
		return;
	free(j->req);
	free(j->out);
	free(j->cert);
	free(j);
}

static void
enroll_count(struct enroll *en, bool ok)
{
	if (en->metrics != NULL)
		metrics_rpc_inc(en->metrics, ok ? METRICS_RPC_ENROLL_OK :
		    METRICS_RPC_ENROLL_REFUSED);
}

static void
enroll_limited(struct enroll *en, const char *addr)
{
	uint64_t now = util_mono_ms();

	en->limited++;
	if (now >= en->limited_log_at) {
		log_warnx("enroll: rate limit: refused %" PRIu64 " call(s) in "
		    "the last %u s (latest from %s)", en->limited,
		    ENROLL_LOG_MS / 1000, addr);
		en->limited = 0;
		en->limited_log_at = now + ENROLL_LOG_MS;
	}
}

/* Refusals one by one, up to ENROLL_LOG_REFUSED per interval; then a
 * count, so that a flood cannot flood the log. */
static void
enroll_log_refused(struct enroll *en, const struct enroll_job *j)
{
	uint64_t now = util_mono_ms();

	if (now >= en->refused_log_at) {
		if (en->refused_quiet > 0)
			log_warnx("enroll: %" PRIu64 " more refusal(s) in the "
			    "last %u s not logged one by one", en->refused_quiet,
			    ENROLL_LOG_MS / 1000);
		en->refused_logged = 0;
		en->refused_quiet = 0;
		en->refused_log_at = now + ENROLL_LOG_MS;
	}
	if (en->refused_logged++ < ENROLL_LOG_REFUSED)
		log_warnx("enroll: refused %s%s: %s", j->renew ?
		    "renewal from " : "", j->addr, j->msg);
	else
		en->refused_quiet++;
}

static void
enroll_queue(struct enroll *en, struct rpc_unary *call, const uint8_t *req,
    size_t len, const struct rpc_peer *peer, bool renew)
{
	struct enroll_job *j;
	uint32_t rate, burst;

	pthread_mutex_lock(&en->mu);
	rate = en->cfg.rate;
	burst = en->cfg.burst;
	pthread_mutex_unlock(&en->mu);
	if (!enroll_rl_take(en->rl, peer->addr, util_mono_ms(), rate, burst)) {
		enroll_limited(en, peer->addr);
		enroll_count(en, false);
		rpc_unary_fail(call, RPC_RESOURCE_EXHAUSTED, "rate limited: "
		    "too many enrollment calls from this address; retry later");
		return;
	}
	if (en->in_flight >= ENROLL_QUEUE_MAX) {
		enroll_limited(en, peer->addr);
		enroll_count(en, false);
		rpc_unary_fail(call, RPC_RESOURCE_EXHAUSTED, "enrollment is "
		    "busy; retry later");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (len > 0 && (j->req = malloc(len)) == NULL)) {
		enroll_job_free(j);
		rpc_unary_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (len > 0)
		memcpy(j->req, req, len);
	j->len = len;
	j->call = call;
	j->renew = renew;
	snprintf(j->addr, sizeof(j->addr), "%s", peer->addr);
	snprintf(j->cn, sizeof(j->cn), "%s", peer->cn);
	memcpy(j->fp, peer->cert_sha256, sizeof(j->fp));
	en->in_flight++;
	pthread_mutex_lock(&en->mu);
	*en->todo_tail = j;
	en->todo_tail = &j->next;
	pthread_cond_signal(&en->cv);
	pthread_mutex_unlock(&en->mu);
}

static void
enroll_on_enroll(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg)
{
	enroll_queue(arg, call, req, len, peer, false);
}

static void
enroll_on_renew(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg)
{
	/* RPC_AUTH_PEER: the rpc layer let only verified peers through. */
	if (!peer->verified) {
		rpc_unary_fail(call, RPC_UNAUTHENTICATED, "no certificate");
		return;
	}
	enroll_queue(arg, call, req, len, peer, true);
}

/* Tests only (test_enroll_lose): keep j's answer to ourselves. */
static bool
enroll_withhold(struct enroll *en, const struct enroll_job *j)
{
	for (size_t i = 0; i < ARRAY_SIZE(en->lost); i++)
		if (en->lost[i] == NULL) {
			en->lost[i] = j->call;
			en->lose_left--;
			log_warnx("enroll: test_enroll_lose: the answer to %s "
			    "(site %" PRIu64 ") is withheld after the commit",
			    j->addr, j->site_id);
			return true;
		}
	return false;
}

void
enroll_dispatch(struct enroll *en)
{
	struct enroll_job *j, *next;
	uint64_t v;

	if (read(en->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("enroll: eventfd read");
	pthread_mutex_lock(&en->mu);
	j = en->done;
	en->done = NULL;
	en->done_tail = &en->done;
	pthread_mutex_unlock(&en->mu);
	/* Withheld answers (tests): their callers gave up long ago. */
	for (size_t i = 0; j != NULL && i < ARRAY_SIZE(en->lost); i++)
		if (en->lost[i] != NULL) {
			rpc_unary_fail(en->lost[i], RPC_UNAVAILABLE,
			    "answer withheld (test_enroll_lose)");
			en->lost[i] = NULL;
		}
	for (; j != NULL; j = next) {
		next = j->next;
		en->in_flight--;
		/* Peers and open streams learn of a new certificate before
		 * the edge can use it. */
		if (j->code == RPC_OK && j->cert != NULL &&
		    en->hooks.issued != NULL &&
		    en->hooks.issued(en->hooks.arg, j->site_id, j->cert,
		    j->cert_len) == -1)
			log_warnx("enroll: site %" PRIu64 ": the sessions could "
			    "not take the new certificate", j->site_id);
		if (j->code == RPC_OK && !j->renew && en->lose_left > 0 &&
		    enroll_withhold(en, j)) {
			/* as if the connection had dropped after the commit */
		} else if (j->code == RPC_OK) {
			rpc_unary_reply(j->call, j->out, j->out_len);
		} else {
			enroll_log_refused(en, j);
			rpc_unary_fail(j->call, j->code, j->msg);
		}
		enroll_count(en, j->code == RPC_OK);
		enroll_job_free(j);
	}
}

int
enroll_fd(const struct enroll *en)
{
	return en->efd;
}

int
enroll_register(struct enroll *en, struct rpc_server *srv)
{
	if (rpc_server_add_unary(srv, ENROLL_METHOD, RPC_AUTH_NONE,
	    enroll_on_enroll, en) == -1 ||
	    rpc_server_add_unary(srv, ENROLL_RENEW_METHOD, RPC_AUTH_PEER,
	    enroll_on_renew, en) == -1)
		return -1;
	return 0;
}

void
enroll_reconfig(struct enroll *en, const struct enroll_config *cfg)
{
	pthread_mutex_lock(&en->mu);
	if (cfg->test_lose != en->cfg.test_lose)
		en->lose_left = cfg->test_lose;
	en->cfg = *cfg;
	pthread_mutex_unlock(&en->mu);
}

/*
 * A site enrolled by a controller without the certs table has its
 * certificate only as "cert.<id>": make it the ACTIVE one, so that its
 * edge can still open a Session.
 */
static void
enroll_adopt_old(struct enroll *en)
{
	struct model_error err = { 0 };
	struct model_site *sites = NULL;
	struct store_cert *c;
	char key[64], *val;
	uint8_t *der;
	size_t n = 0, len;

	if (store_site_list(en->st, &sites, &n, &err) == -1) {
		log_warnx("enroll: listing sites: %s", err.message);
		return;
	}
	c = malloc(sizeof(*c));
	val = malloc(2 * STORE_CERT_DER_MAX + 1);
	der = malloc(STORE_CERT_DER_MAX);
	for (size_t i = 0; c != NULL && val != NULL && der != NULL && i < n;
	    i++) {
		snprintf(key, sizeof(key), "cert.%" PRIu64, sites[i].id);
		if (store_cert_active(en->st, sites[i].id, c, NULL) == 0 ||
		    store_kv_get(en->st, key, val, 2 * STORE_CERT_DER_MAX + 1,
		    NULL) == -1 ||
		    util_unhex(val, der, STORE_CERT_DER_MAX, &len) == -1)
			continue;
		if (enroll_cert_record(sites[i].id, der, len, c) == -1 ||
		    store_cert_enroll(en->st, c, &err) == -1)
			log_warnx("enroll: site %" PRIu64 ": cannot record its "
			    "certificate: %s", sites[i].id, err.message);
		else
			log_info("enroll: site %" PRIu64 ": certificate serial "
			    "%s recorded as its active one", sites[i].id,
			    c->serial);
	}
	free(der);
	free(val);
	free(c);
	free(sites);
}

struct enroll *
enroll_new(const struct enroll_params *p)
{
	struct enroll *en = calloc(1, sizeof(*en));

	if (en == NULL)
		return NULL;
	en->st = p->st;
	en->ca = p->ca;
	en->metrics = p->metrics;
	en->hooks = p->hooks;
	en->cfg = p->cfg;
	en->lose_left = p->cfg.test_lose;
	en->efd = -1;
	en->todo_tail = &en->todo;
	en->done_tail = &en->done;
	pthread_mutex_init(&en->mu, NULL);
	pthread_cond_init(&en->cv, NULL);
	if ((en->rl = enroll_rl_new()) == NULL)
		goto fail;
	if ((en->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("enroll: eventfd");
		goto fail;
	}
	enroll_adopt_old(en);
	if (pthread_create(&en->thread, NULL, enroll_worker, en) != 0) {
		log_warnx("enroll: cannot start the worker thread");
		goto fail;
	}
	en->started = true;
	return en;
fail:
	enroll_free(en);
	return NULL;
}

void
enroll_shutdown(struct enroll *en)
{
	struct enroll_job *j, *next;

	if (en == NULL || !en->started)
		return;
	pthread_mutex_lock(&en->mu);
	en->stop = true;
	pthread_cond_signal(&en->cv);
	pthread_mutex_unlock(&en->mu);
	pthread_join(en->thread, NULL);
	en->started = false;
	/* The rpc layer answers these calls UNAVAILABLE when it is freed. */
	for (j = en->todo; j != NULL; j = next) {
		next = j->next;
		enroll_job_free(j);
	}
	for (j = en->done; j != NULL; j = next) {
		next = j->next;
		enroll_job_free(j);
	}
	en->todo = en->done = NULL;
	en->todo_tail = &en->todo;
	en->done_tail = &en->done;
	en->in_flight = 0;
}

void
enroll_free(struct enroll *en)
{
	if (en == NULL)
		return;
	enroll_shutdown(en);
	if (en->efd != -1)
		close(en->efd);
	enroll_rl_free(en->rl);
	pthread_cond_destroy(&en->cv);
	pthread_mutex_destroy(&en->mu);
	free(en);
}
