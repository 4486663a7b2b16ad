/*
 * test_ctld_ca.c — the controller's CA: created once with a private key
 * file, reloaded unchanged, wrapped with a passphrase, never half-made;
 * CSRs checked (key type, signature, garbage) and edge certificates issued
 * for "site-<id>" and chained to the CA; epoch-key signatures checked
 * against the right certificate only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "controller/ca.h"
#include "lib/log.h"

struct fx {
	char dir[64];
	char pass[96];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ctld-ca-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pass, sizeof(f->pass), "%s.pass", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->dir, f->pass);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct ca *
open_ca(const struct fx *f, const char *pass)
{
	static const char *const names[] = { "ctl.example.net", "192.0.2.7" };
	struct ca_params p = { f->dir, pass, "meshwan-controller", names, 2 };

	return ca_open(&p);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = calloc(1, 65536);

	assert_non_null(fp);
	assert_true(fread(buf, 1, 65535, fp) > 0);
	fclose(fp);
	return buf;
}

/* A CSR (DER) for key k; caller frees. */
static uint8_t *
make_csr(EVP_PKEY *k, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	int n;

	assert_int_equal(X509_REQ_set_pubkey(req, k), 1);
	assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
	n = i2d_X509_REQ(req, &der);
	assert_true(n > 0);
	X509_REQ_free(req);
	*len = (size_t)n;
	return der;
}

static void
test_create_and_reload(void **state)
{
	struct fx *f = *state;
	char path[128], *first, *again;
	struct stat st;
	struct ca *ca = open_ca(f, NULL);

	assert_non_null(ca);
	snprintf(path, sizeof(path), "%s/ca.key", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	first = strdup(ca_cert_pem(ca));
	assert_non_null(strstr(ca_server_key_pem(ca), "PRIVATE KEY"));
	ca_free(ca);
	/* Same CA after a restart, new server certificate each time. */
	ca = open_ca(f, NULL);
	assert_non_null(ca);
	again = slurp((snprintf(path, sizeof(path), "%s/ca.crt", f->dir), path));
	assert_string_equal(first, ca_cert_pem(ca));
	assert_string_equal(first, again);
	ca_free(ca);
	free(first);
	free(again);

	/* A CA folder with the key but no certificate is refused. */
	snprintf(path, sizeof(path), "%s/ca.crt", f->dir);
	assert_int_equal(unlink(path), 0);
	assert_null(open_ca(f, NULL));
	/* A key readable by others is refused. */
	snprintf(path, sizeof(path), "%s/ca.key", f->dir);
	assert_int_equal(unlink(path), 0);
	ca = open_ca(f, NULL);
	assert_non_null(ca);
	ca_free(ca);
	assert_int_equal(chmod(path, 0644), 0);
	assert_null(open_ca(f, NULL));
}

static void
test_wrapped_key(void **state)
{
	struct fx *f = *state;
	char path[128], *key;
	FILE *fp = fopen(f->pass, "w");
	struct ca *ca;

	fprintf(fp, "correct horse battery staple\n");
	fclose(fp);
	chmod(f->pass, 0600);
	ca = open_ca(f, f->pass);
	assert_non_null(ca);
	ca_free(ca);
	snprintf(path, sizeof(path), "%s/ca.key", f->dir);
	key = slurp(path);
	assert_non_null(strstr(key, "ENCRYPTED PRIVATE KEY"));
	free(key);
	/* Without the passphrase, or with a wrong one: refused. */
	assert_null(open_ca(f, NULL));
	fp = fopen(f->pass, "w");
	fprintf(fp, "not the passphrase\n");
	fclose(fp);
	assert_null(open_ca(f, f->pass));
	/* Too short a passphrase is refused before anything is made. */
	fp = fopen(f->pass, "w");
	fprintf(fp, "short\n");
	fclose(fp);
	assert_null(open_ca(f, f->pass));
}

static void
test_sign_csr(void **state)
{
	struct fx *f = *state;
	struct ca *ca = open_ca(f, NULL);
	EVP_PKEY *k = EVP_EC_gen("P-256"), *rsa = EVP_RSA_gen(2048);
	char reason[CA_REASON_MAX], cn[64];
	uint8_t *csr, *der = NULL, junk[64];
	const unsigned char *pp;
	size_t csr_len, der_len = 0, ca_len;
	const uint8_t *ca_der;
	X509 *x, *cax;
	uint64_t id;

	assert_non_null(ca);
	csr = make_csr(k, &csr_len);
	assert_int_equal(ca_check_csr(csr, csr_len, reason), 0);
	assert_int_equal(ca_sign_csr(ca, csr, csr_len, 42, 86400, &der,
	    &der_len, reason), 0);
	pp = der;
	x = d2i_X509(NULL, &pp, (long)der_len);
	assert_non_null(x);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
	    sizeof(cn));
	assert_string_equal(cn, "site-42");
	assert_int_equal(ca_identity_site(cn, &id), 0);
	assert_int_equal(id, 42);
	ca_der = ca_cert_der(ca, &ca_len);
	pp = ca_der;
	cax = d2i_X509(NULL, &pp, (long)ca_len);
	assert_int_equal(X509_verify(x, X509_get0_pubkey(cax)), 1);
	X509_free(x);
	X509_free(cax);
	free(der);
	OPENSSL_free(csr);

	/* RSA keys, garbage, trailing bytes and a broken signature fail. */
	csr = make_csr(rsa, &csr_len);
	assert_int_equal(ca_check_csr(csr, csr_len, reason), -1);
	assert_non_null(strstr(reason, "P-256"));
	OPENSSL_free(csr);
	memset(junk, 0x30, sizeof(junk));
	assert_int_equal(ca_check_csr(junk, sizeof(junk), reason), -1);
	assert_int_equal(ca_check_csr(junk, 0, reason), -1);
	csr = make_csr(k, &csr_len);
	csr[csr_len - 5] ^= 0x55;
	assert_int_equal(ca_check_csr(csr, csr_len, reason), -1);
	OPENSSL_free(csr);
	assert_int_equal(ca_identity_site("site-", &id), -1);
	assert_int_equal(ca_identity_site("meshwan-controller", &id), -1);
	EVP_PKEY_free(k);
	EVP_PKEY_free(rsa);
	ca_free(ca);
}

static size_t
sign_epoch(EVP_PKEY *k, uint64_t site, uint64_t epoch, const uint8_t *pub,
    uint64_t na, uint8_t *sig)
{
	static const char label[] = "meshwan-epoch-v1";
	uint8_t msg[sizeof(label) - 1 + 16 + 32 + 8];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = CA_SIG_MAX;

	memcpy(msg, label, sizeof(label) - 1);
	for (int i = 0; i < 8; i++) {
		msg[16 + i] = (uint8_t)(site >> (56 - 8 * i));
		msg[24 + i] = (uint8_t)(epoch >> (56 - 8 * i));
		msg[64 + i] = (uint8_t)(na >> (56 - 8 * i));
	}
	memcpy(msg + 32, pub, 32);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(md);
	return siglen;
}

static void
test_epoch_keys(void **state)
{
	struct fx *f = *state;
	struct ca *ca = open_ca(f, NULL);
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	char reason[CA_REASON_MAX];
	uint8_t pub[32], sig[CA_SIG_MAX], *csr, *der = NULL;
	size_t csr_len, der_len = 0, sl;

	memset(pub, 7, sizeof(pub));
	csr = make_csr(k, &csr_len);
	assert_int_equal(ca_sign_csr(ca, csr, csr_len, 5, 3600, &der, &der_len,
	    reason), 0);
	sl = sign_epoch(k, 5, 3, pub, 1900000000, sig);
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 5, 3, pub, 32,
	    1900000000, sig, sl), 0);
	/* Another site, epoch, not_after or key: refused. */
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 6, 3, pub, 32,
	    1900000000, sig, sl), -1);
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 5, 4, pub, 32,
	    1900000000, sig, sl), -1);
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 5, 3, pub, 32,
	    1900000001, sig, sl), -1);
	pub[0] ^= 1;
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 5, 3, pub, 32,
	    1900000000, sig, sl), -1);
	pub[0] ^= 1;
	/* Expired at the time given, or a small-order point validly
	 * signed: refused before anything is relayed (issue 7 section 5). */
	{
		struct msg_peer_key pk = { .epoch = 3,
			.not_after = 1900000000 };
		char why[128];

		memcpy(pk.public_key, pub, 32);
		memcpy(pk.signature, sig, sl);
		pk.signature_len = sl;
		assert_int_equal(ca_check_epoch_key(ca, der, der_len, 5, &pk,
		    1899999999 - 3600 * 24 * 365, why, sizeof(why)), -1);
		assert_int_equal(ca_check_epoch_key(ca, der, der_len, 5, &pk,
		    (int64_t)time(NULL), why, sizeof(why)), 0);
		assert_int_equal(ca_check_epoch_key(ca, der, der_len, 5, &pk,
		    1900000000, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "expired"));
		memset(pk.public_key, 0, 32);
		pk.signature_len = sign_epoch(k, 5, 3, pk.public_key,
		    1900000000, pk.signature);
		assert_int_equal(ca_check_epoch_key(ca, der, der_len, 5, &pk,
		    (int64_t)time(NULL), why, sizeof(why)), -1);
		assert_non_null(strstr(why, "small order"));
	}
	/* Signed by a key that is not the certificate's: refused. */
	sl = sign_epoch(other, 5, 3, pub, 1900000000, sig);
	assert_int_equal(ca_verify_epoch_key(ca, der, der_len, 5, 3, pub, 32,
	    1900000000, sig, sl), -1);
	free(der);
	OPENSSL_free(csr);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	ca_free(ca);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_reload, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wrapped_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sign_csr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epoch_keys, setup,
		    teardown),
	};

	log_init("test_ctld_ca", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
