/*
 * enroll.c — Enrollment.Enroll: trade a one-time token and a CSR for an
 * edge certificate.
 *
 * Order matters: the CSR is checked before the token is consumed (a typo
 * in the CSR must not burn the operator's token), and consuming the token
 * and recording the certificate happen in one store transaction, so a
 * failure leaves the token usable.
 *
 * A refused token is classified afterwards (store_enroll_token_state),
 * so that the edge's operator learns whether to ask for a new token
 * (used, expired) or look for a typo (unknown).
 */
#include "controller/enroll.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/ca.h"
#include "controller/metrics.h"
#include "controller/session.h"
#include "controller/store.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

static void
enroll_refuse(struct sessions *s, struct rpc_unary *call, int code,
    enum msg_enroll_error why, const char *peer, const char *detail)
{
	char msg[MSG_ERROR_MAX + 1];

	snprintf(msg, sizeof(msg), "%s: %s", msg_enroll_error_name(why),
	    detail);
	log_warnx("enroll: refused %s: %s", peer, msg);
	if (session_metrics(s))
		metrics_rpc_inc(session_metrics(s),
		    METRICS_RPC_ENROLL_REFUSED);
	rpc_unary_fail(call, code, msg);
}

/* Why a token was refused. */
static enum msg_enroll_error
enroll_classify(struct store *st, const char *token)
{
	enum store_token_state state = STORE_TOKEN_UNKNOWN;

	if (store_enroll_token_state(st, token, 0, (int64_t)time(NULL), &state,
	    NULL, NULL) == -1)
		return MSG_ENROLL_ERROR_TOKEN_UNKNOWN;
	switch (state) {
	case STORE_TOKEN_USED:
		return MSG_ENROLL_ERROR_TOKEN_USED;
	case STORE_TOKEN_EXPIRED:
		return MSG_ENROLL_ERROR_TOKEN_EXPIRED;
	default:
		return MSG_ENROLL_ERROR_TOKEN_UNKNOWN;
	}
}

void
enroll_handle(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg)
{
	struct sessions *s = arg;
	struct store *st = session_store(s);
	struct msg_enroll_request rq;
	struct msg_enroll_response rs;
	struct model_error err = { 0 };
	struct model_site site;
	char reason[CA_REASON_MAX];
	char derr[PBCONV_ERR_LEN];
	uint8_t *cert = NULL, *out = NULL;
	const uint8_t *ca_der;
	size_t cert_len = 0, ca_len, out_len = 0;
	uint64_t site_id = 0;

	memset(&rs, 0, sizeof(rs));
	if (pbconv_decode_enroll_request(req, len, &rq, derr,
	    sizeof(derr)) == -1) {
		enroll_refuse(s, call, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, peer->addr, derr);
		return;
	}
	if (ca_check_csr(rq.csr_der.data, rq.csr_der.len, reason) == -1) {
		enroll_refuse(s, call, RPC_INVALID_ARGUMENT,
		    MSG_ENROLL_ERROR_CSR_INVALID, peer->addr, reason);
		goto out;
	}
	if (store_begin(st, &err) == -1)
		goto internal;
	if (store_enroll_token_consume(st, rq.token, 0, (int64_t)time(NULL),
	    &site_id, &err) == -1) {
		enum msg_enroll_error why;

		store_rollback(st);
		if (err.code != MODEL_E_TOKEN)
			goto internal;
		why = enroll_classify(st, rq.token);
		enroll_refuse(s, call, RPC_UNAUTHENTICATED, why, peer->addr,
		    why == MSG_ENROLL_ERROR_TOKEN_USED ? "token already used" :
		    why == MSG_ENROLL_ERROR_TOKEN_EXPIRED ? "token expired" :
		    "token unknown");
		goto out;
	}
	if (store_site_get(st, site_id, &site, &err) == -1 || site.revoked) {
		store_rollback(st);
		enroll_refuse(s, call, RPC_PERMISSION_DENIED,
		    MSG_ENROLL_ERROR_SITE_REVOKED, peer->addr,
		    "the token's site is revoked or deleted");
		goto out;
	}
	if (ca_sign_csr(session_ca(s), rq.csr_der.data, rq.csr_der.len,
	    site_id, session_cfg(s)->cert_lifetime_s, &cert, &cert_len,
	    reason) == -1) {
		store_rollback(st);
		goto internal;
	}
	if (session_cert_issued(s, site_id, cert, cert_len) == -1) {
		store_rollback(st);
		goto internal;
	}
	if (store_commit(st, &err) == -1)
		goto internal;

	ca_der = ca_cert_der(session_ca(s), &ca_len);
	rs.error = MSG_ENROLL_ERROR_UNSPECIFIED;
	rs.site_id = site_id;
	rs.certificate_der.data = cert;
	rs.certificate_der.len = cert_len;
	rs.ca_chain_der[0].data = (uint8_t *)ca_der;
	rs.ca_chain_der[0].len = ca_len;
	rs.n_ca_chain = 1;
	snprintf(rs.controller_name, sizeof(rs.controller_name), "%s",
	    session_cfg(s)->controller_name);
	if (pbconv_encode_enroll_response(&rs, &out, &out_len) == -1)
		goto internal;
	rpc_unary_reply(call, out, out_len);
	log_info("enroll: site %" PRIu64 " (%s) enrolled from %s (%s)",
	    site_id, site.name, peer->addr, rq.software_version);
	if (session_metrics(s))
		metrics_rpc_inc(session_metrics(s), METRICS_RPC_ENROLL_OK);
	goto out;
internal:
	log_warnx("enroll: %s: internal error: %s", peer->addr,
	    err.message[0] ? err.message : "see above");
	rpc_unary_fail(call, RPC_INTERNAL, "internal error");
out:
	free(out);
	free(cert);
	msg_enroll_request_free(&rq);
}
