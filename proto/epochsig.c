/*
 * epochsig.c — signing and verifying epoch-key announcements with
 * OpenSSL 3 (see epochsig.h for the byte layout and the checks).
 */
#include "proto/epochsig.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "proto/sakey.h"

static int
epochsig_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
epochsig_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error();
	return -1;
}

void
epochsig_bytes(uint64_t site_id, uint64_t epoch,
    const uint8_t pub[MSG_KEY_LEN], uint64_t not_after,
    uint8_t out[EPOCHSIG_MSG_LEN])
{
	const size_t l = sizeof(EPOCHSIG_LABEL) - 1;

	memcpy(out, EPOCHSIG_LABEL, l);
	for (int i = 0; i < 8; i++) {
		out[l + i] = (uint8_t)(site_id >> (56 - 8 * i));
		out[l + 8 + i] = (uint8_t)(epoch >> (56 - 8 * i));
		out[l + 16 + MSG_KEY_LEN + i] =
		    (uint8_t)(not_after >> (56 - 8 * i));
	}
	memcpy(out + l + 16, pub, MSG_KEY_LEN);
}

int
epochsig_sign(const char *key_pem, size_t key_pem_len, uint64_t site_id,
    struct msg_peer_key *k)
{
	uint8_t msg[EPOCHSIG_MSG_LEN];
	EVP_MD_CTX *md = NULL;
	EVP_PKEY *key = NULL;
	BIO *b;
	size_t siglen = MSG_SIG_MAX;
	int rc = -1;

	if (key_pem_len > INT32_MAX ||
	    (b = BIO_new_mem_buf(key_pem, (int)key_pem_len)) == NULL)
		return -1;
	key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	if (key == NULL)
		goto out;
	epochsig_bytes(site_id, k->epoch, k->public_key, k->not_after, msg);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, msg, sizeof(msg)) != 1 ||
	    siglen > MSG_SIG_MAX ||
	    EVP_DigestSign(md, k->signature, &siglen, msg, sizeof(msg)) != 1)
		goto out;
	k->signature_len = siglen;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* Every DER certificate of a concatenation into st; -1 if any is bad. */
static int
epochsig_load_chain(X509_STORE *st, const uint8_t *der, size_t len)
{
	const unsigned char *p = der, *end = der + len;
	int n = 0;

	while (p < end) {
		X509 *x = d2i_X509(NULL, &p, (long)(end - p));
		int ok;

		if (x == NULL)
			return -1;
		ok = X509_STORE_add_cert(st, x);
		X509_free(x);
		if (ok != 1)
			return -1;
		n++;
	}
	return n > 0 ? 0 : -1;
}

int
epochsig_verify(const uint8_t *ca_der, size_t ca_len,
    const uint8_t *cert_der, size_t cert_len, uint64_t site_id,
    const struct msg_peer_key *k, int64_t now, char *err, size_t errlen)
{
	const unsigned char *p = cert_der;
	uint8_t msg[EPOCHSIG_MSG_LEN];
	X509_STORE *st = NULL;
	X509_STORE_CTX *vctx = NULL;
	EVP_MD_CTX *md = NULL;
	X509 *x = NULL;
	char cn[64], want[32];
	int rc = -1;

	if (cert_len == 0 || cert_len > MSG_DER_MAX || ca_len == 0 ||
	    ca_len > MSG_INTENT_CA_MAX)
		return epochsig_fail(err, errlen, "no certificate or CA");
	if (k->signature_len == 0 || k->signature_len > MSG_SIG_MAX)
		return epochsig_fail(err, errlen, "bad signature length");
	if (now < 0 || k->not_after <= (uint64_t)now)
		return epochsig_fail(err, errlen, "epoch %" PRIu64 " expired "
		    "(not_after %" PRIu64 ")", k->epoch, k->not_after);
	if (!sakey_public_ok(k->public_key))
		return epochsig_fail(err, errlen, "epoch %" PRIu64 ": public "
		    "key is a point of small order", k->epoch);
	if ((x = d2i_X509(NULL, &p, (long)cert_len)) == NULL ||
	    p != cert_der + cert_len) {
		epochsig_fail(err, errlen, "certificate does not parse");
		goto out;
	}
	/* Chain to the CA, at the time given. */
	if ((st = X509_STORE_new()) == NULL ||
	    epochsig_load_chain(st, ca_der, ca_len) == -1 ||
	    (vctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(vctx, st, x, NULL) != 1) {
		epochsig_fail(err, errlen, "CA chain does not load");
		goto out;
	}
	X509_STORE_CTX_set_time(vctx, 0, (time_t)now);
	X509_STORE_CTX_set_flags(vctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_verify_cert(vctx) != 1) {
		epochsig_fail(err, errlen, "certificate: %s",
		    X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(vctx)));
		goto out;
	}
	snprintf(want, sizeof(want), "site-%" PRIu64, site_id);
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
	    NID_commonName, cn, sizeof(cn)) <= 0 || strcmp(cn, want) != 0) {
		epochsig_fail(err, errlen, "certificate is not %s's", want);
		goto out;
	}
	epochsig_bytes(site_id, k->epoch, k->public_key, k->not_after, msg);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    X509_get0_pubkey(x)) != 1 ||
	    EVP_DigestVerify(md, k->signature, k->signature_len, msg,
	    sizeof(msg)) != 1) {
		epochsig_fail(err, errlen, "epoch %" PRIu64 ": bad signature",
		    k->epoch);
		goto out;
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(st);
	X509_free(x);
	return rc;
}
