/*
 * test_edge_enroll.c — the agent's enrollment key pair (edge-agent/
 * enroll.c): made once and reused by every retry, so that a controller
 * that lost its answer sends the certificate again (it does so only to
 * the same key); and always mode 0600, even written over a key file an
 * older agent left 0644 (open(O_TRUNC) kept that mode), or under umask 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "edge-agent/enroll.h"

struct fixture {
	char dir[64];
	char key[96];
	char tmp[104];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_edge_enroll.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->key, sizeof(f->key), "%s/edge.key", f->dir);
	snprintf(f->tmp, sizeof(f->tmp), "%s.tmp", f->key);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->key);
	unlink(f->tmp);
	rmdir(f->dir);
	free(f);
	return 0;
}

static mode_t
mode_of(const char *path)
{
	struct stat sb;

	assert_int_equal(stat(path, &sb), 0);
	return sb.st_mode & 07777;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* The public key a DER CSR carries (caller frees). */
static EVP_PKEY *
csr_key(const uint8_t *csr, size_t len)
{
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
	EVP_PKEY *k;

	assert_non_null(req);
	assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
	k = X509_REQ_get_pubkey(req);
	assert_non_null(k);
	X509_REQ_free(req);
	return k;
}

/* The private key in path (caller frees). */
static EVP_PKEY *
file_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	assert_non_null(f);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(k);
	return k;
}

static void
test_reused_across_attempts(void **state)
{
	struct fixture *f = *state;
	uint8_t *c1 = NULL, *c2 = NULL;
	size_t l1 = 0, l2 = 0;
	EVP_PKEY *k1, *k2, *fk;

	/* First attempt: no key yet, one is made, 0600. */
	assert_int_equal(enroll_key_csr(f->key, &c1, &l1), 0);
	assert_int_equal(mode_of(f->key), 0600);
	assert_int_equal(access(f->tmp, F_OK), -1);
	/* The retry: a new CSR (new signature), the same key. */
	assert_int_equal(enroll_key_csr(f->key, &c2, &l2), 0);
	assert_false(l1 == l2 && memcmp(c1, c2, l1) == 0);
	k1 = csr_key(c1, l1);
	k2 = csr_key(c2, l2);
	fk = file_key(f->key);
	assert_int_equal(EVP_PKEY_eq(k1, k2), 1);
	assert_int_equal(EVP_PKEY_eq(k1, fk), 1);
	EVP_PKEY_free(fk);
	EVP_PKEY_free(k2);
	free(c2);
	/* enroll_keygen (renewal) always makes a new one. */
	assert_int_equal(enroll_keygen(f->key, &c2, &l2), 0);
	k2 = csr_key(c2, l2);
	assert_int_equal(EVP_PKEY_eq(k1, k2), 0);
	assert_int_equal(mode_of(f->key), 0600);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k1);
	free(c1);
	free(c2);
}

/* The old bug: a key written over a 0644 file stayed world-readable. */
static void
test_keygen_over_0644(void **state)
{
	struct fixture *f = *state;
	uint8_t *csr = NULL;
	size_t len = 0;
	mode_t old = umask(0);

	write_file(f->key, "old\n", 0644);
	assert_int_equal(enroll_keygen(f->key, &csr, &len), 0);
	umask(old);
	assert_int_equal(mode_of(f->key), 0600);
	assert_int_equal(access(f->tmp, F_OK), -1);
	EVP_PKEY_free(file_key(f->key));
	free(csr);
	/* A temporary file a crash left behind does not stop the next. */
	write_file(f->tmp, "junk\n", 0644);
	assert_int_equal(enroll_keygen(f->key, &csr, &len), 0);
	assert_int_equal(mode_of(f->key), 0600);
	assert_int_equal(access(f->tmp, F_OK), -1);
	free(csr);
}

/* An older agent's 0644 key is reused, and made 0600. */
static void
test_reused_key_made_private(void **state)
{
	struct fixture *f = *state;
	uint8_t *c1 = NULL, *c2 = NULL;
	size_t l1 = 0, l2 = 0;
	EVP_PKEY *k1, *k2;

	assert_int_equal(enroll_keygen(f->key, &c1, &l1), 0);
	assert_int_equal(chmod(f->key, 0644), 0);
	assert_int_equal(enroll_key_csr(f->key, &c2, &l2), 0);
	assert_int_equal(mode_of(f->key), 0600);
	k1 = csr_key(c1, l1);
	k2 = csr_key(c2, l2);
	assert_int_equal(EVP_PKEY_eq(k1, k2), 1);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	free(c1);
	free(c2);
}

/* A file that holds no P-256 private key is replaced by a new one. */
static void
test_unusable_file_replaced(void **state)
{
	struct fixture *f = *state;
	uint8_t *csr = NULL;
	size_t len = 0;
	EVP_PKEY *p384 = EVP_EC_gen("P-384"), *k, *fk;
	FILE *fp;

	write_file(f->key, "-----BEGIN PRIVATE KEY-----\nnot base64\n"
	    "-----END PRIVATE KEY-----\n", 0644);
	assert_int_equal(enroll_key_csr(f->key, &csr, &len), 0);
	assert_int_equal(mode_of(f->key), 0600);
	k = csr_key(csr, len);
	fk = file_key(f->key);
	assert_int_equal(EVP_PKEY_eq(k, fk), 1);
	EVP_PKEY_free(fk);
	EVP_PKEY_free(k);
	free(csr);

	/* Another curve: not what the controller signs, replaced. */
	assert_non_null(p384);
	fp = fopen(f->key, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, p384, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(fp);
	assert_int_equal(enroll_key_csr(f->key, &csr, &len), 0);
	k = csr_key(csr, len);
	assert_int_equal(EVP_PKEY_eq(k, p384), 0);
	assert_int_equal(EVP_PKEY_get_bits(k), 256);
	EVP_PKEY_free(k);
	EVP_PKEY_free(p384);
	free(csr);
}

/* No folder to write into: an error, not a crash. */
static void
test_unwritable(void **state)
{
	uint8_t *csr = (uint8_t *)"x";
	size_t len = 1;

	(void)state;
	assert_int_equal(enroll_key_csr("/nonexistent/dir/edge.key", &csr,
	    &len), -1);
	assert_null(csr);
	assert_int_equal(len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reused_across_attempts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_keygen_over_0644, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reused_key_made_private,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_unusable_file_replaced,
		    setup, teardown),
		cmocka_unit_test(test_unwritable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
