/*
 * test_sakey.c — proto/sakey.c and proto/epochsig.c: the SA key
 * derivation against RFC 7748 (X25519) and RFC 5869 (HKDF-SHA256)
 * vectors and against the fixed vectors written in proto/README.md;
 * small-order points refused; both ends of a tunnel derive the same key
 * while any other input (direction, either key epoch, SA epoch, SPI,
 * tunnel, sites, cipher, key pair) gives another; epoch-key signatures
 * accepted only with the right chain, CN, time and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/util.h"
#include "proto/epochsig.h"
#include "proto/sakey.h"

static void
hex(const char *h, uint8_t *out, size_t want)
{
	size_t len = 0;

	assert_int_equal(util_unhex(h, out, want, &len), 0);
	assert_int_equal(len, want);
}

static void
assert_hex(const uint8_t *b, size_t n, const char *want)
{
	char got[256];

	assert_true(2 * n < sizeof(got));
	util_hex(b, n, got);
	assert_string_equal(got, want);
}

/* RFC 7748 section 6.1 key pairs: site 1 is Alice, site 2 is Bob. */
#define ALICE_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define ALICE_PUB  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define BOB_PRIV   "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
#define BOB_PUB    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"

static void
test_rfc7748(void **state)
{
	static const char *const v[][3] = {	/* section 5.2 */
		{ "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		  "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
		  "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552" },
		{ "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
		  "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
		  "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957" },
	};
	uint8_t a[32], b[32], pub[32], out[32];

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		hex(v[i][0], a, 32);
		hex(v[i][1], b, 32);
		assert_int_equal(sakey_x25519(a, b, out), 0);
		assert_hex(out, 32, v[i][2]);
	}
	/* Section 6.1: public keys and the shared secret both ways. */
	hex(ALICE_PRIV, a, 32);
	hex(BOB_PRIV, b, 32);
	assert_int_equal(sakey_public(a, pub), 0);
	assert_hex(pub, 32, ALICE_PUB);
	assert_int_equal(sakey_x25519(b, pub, out), 0);
	assert_hex(out, 32,
	    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	assert_int_equal(sakey_public(b, pub), 0);
	assert_hex(pub, 32, BOB_PUB);
	assert_int_equal(sakey_x25519(a, pub, out), 0);
	assert_hex(out, 32,
	    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

static void
test_rfc5869(void **state)
{
	uint8_t ikm[80], salt[80], info[80], out[82];

	(void)state;
	/* Test case 1 */
	memset(ikm, 0x0b, 22);
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(sakey_hkdf(ikm, 22, salt, 13, info, 10, out, 42), 0);
	assert_hex(out, 42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c"
	    "5db02d56ecc4c5bf34007208d5b887185865");
	/* Test case 2 */
	for (int i = 0; i < 80; i++) {
		ikm[i] = (uint8_t)i;
		salt[i] = (uint8_t)(0x60 + i);
		info[i] = (uint8_t)(0xb0 + i);
	}
	assert_int_equal(sakey_hkdf(ikm, 80, salt, 80, info, 80, out, 82), 0);
	assert_hex(out, 82, "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8"
	    "a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8"
	    "367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
	/* Test case 3: no salt, no info */
	memset(ikm, 0x0b, 22);
	assert_int_equal(sakey_hkdf(ikm, 22, NULL, 0, NULL, 0, out, 42), 0);
	assert_hex(out, 42, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879e"
	    "c3454e5f3c738d2d9d201395faa4b61a96c8");
}

/* Points of small order (and their non-canonical encodings): X25519
 * gives all zero with any scalar, so they are refused everywhere. */
static void
test_small_order(void **state)
{
	static const char *const bad[] = {
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	};
	struct sakey_input in = { 7, 1, 2, 3, 5, 1, 0x1000,
		MSG_CIPHER_AES_GCM_256 };
	uint8_t a[32], p[32], out[32];
	struct sakey k;

	(void)state;
	hex(ALICE_PRIV, a, 32);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hex(bad[i], p, 32);
		assert_false(sakey_public_ok(p));
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(sakey_x25519(a, p, out), -1);
		for (size_t j = 0; j < sizeof(out); j++)
			assert_int_equal(out[j], 0);
		assert_int_equal(sakey_derive(a, p, &in, &k), -1);
		assert_int_equal(k.key_len, 0);
	}
	hex(BOB_PUB, p, 32);
	assert_true(sakey_public_ok(p));
}

/* The vectors printed in proto/README.md, "SA keys". */
static void
test_readme_vectors(void **state)
{
	uint8_t a[32], b[32], pa[32], pb[32], salt[SAKEY_HKDF_SALT_LEN];
	uint8_t info[SAKEY_HKDF_INFO_LEN];
	struct sakey_input v1 = { 7, 1, 2, 3, 5, 1, 0x1000,
		MSG_CIPHER_AES_GCM_256 };
	struct sakey_input v2 = { 7, 2, 1, 5, 3, 2, 0x2000,
		MSG_CIPHER_AES_GCM_128 };
	struct sakey k, k2;
	char fp[SAKEY_FP_LEN + 1];

	(void)state;
	hex(ALICE_PRIV, a, 32);
	hex(BOB_PRIV, b, 32);
	hex(ALICE_PUB, pa, 32);
	hex(BOB_PUB, pb, 32);

	assert_int_equal(sakey_hkdf_inputs(&v1, salt, info), 0);
	assert_hex(salt, sizeof(salt), "00000000000000030000000000000005");
	assert_hex(info, sizeof(info), "6d65736877616e2d73612d763100000000000000"
	    "0700000000000000010000000000000002000000000000000100001000"
	    "0102");
	assert_int_equal(sakey_derive(a, pb, &v1, &k), 0);	/* sender */
	assert_int_equal(k.key_len, 32);
	assert_hex(k.key, 32, "dc7d25556d93d8d0cf032323290dca5e"
	    "8ea4a70592f4eb0d84e0047fabaa67ab");
	assert_hex(k.salt, 4, "edf98685");
	sakey_fingerprint(&k, fp);
	assert_string_equal(fp, "f8726faa60f855b7");
	assert_int_equal(sakey_derive(b, pa, &v1, &k2), 0);	/* receiver */
	assert_memory_equal(&k, &k2, sizeof(k));

	assert_int_equal(sakey_hkdf_inputs(&v2, salt, info), 0);
	assert_hex(salt, sizeof(salt), "00000000000000050000000000000003");
	assert_hex(info, sizeof(info), "6d65736877616e2d73612d763100000000000000"
	    "0700000000000000020000000000000001000000000000000200002000"
	    "0201");
	assert_int_equal(sakey_derive(b, pa, &v2, &k), 0);
	assert_int_equal(k.key_len, 16);
	assert_hex(k.key, 16, "6a52e5b73a1e6c6a10a9902ddc8a2622");
	assert_hex(k.salt, 4, "c54a8205");
	sakey_fingerprint(&k, fp);
	assert_string_equal(fp, "6c591540221a2dba");
	assert_int_equal(sakey_derive(a, pb, &v2, &k2), 0);
	assert_memory_equal(&k, &k2, sizeof(k));
	sakey_clear(&k);
	sakey_clear(&k2);
	assert_int_equal(k.key_len, 0);
}

static void
test_bad_input(void **state)
{
	const struct sakey_input good = { 7, 1, 2, 3, 5, 1, 0x1000,
		MSG_CIPHER_AES_GCM_256 };
	struct sakey_input in;
	uint8_t a[32], pb[32];
	struct sakey k;

	(void)state;
	hex(ALICE_PRIV, a, 32);
	hex(BOB_PUB, pb, 32);
	assert_int_equal(sakey_derive(a, pb, &good, &k), 0);
#define BAD(field, val) do {						\
		in = good;						\
		in.field = val;						\
		assert_int_equal(sakey_derive(a, pb, &in, &k), -1);	\
		assert_int_equal(k.key_len, 0);				\
	} while (0)
	BAD(tunnel_id, 0);
	BAD(sender_site, 0);
	BAD(receiver_site, 0);
	BAD(sender_site, 2);		/* = receiver */
	BAD(sender_key_epoch, 0);
	BAD(receiver_key_epoch, 0);
	BAD(sa_epoch, 0);
	BAD(spi, 255);
	BAD(cipher, MSG_CIPHER_UNSPECIFIED);
	BAD(cipher, (enum msg_cipher)3);
#undef BAD
}

/*
 * Both ends agree; every other input differs.  Random key pairs per
 * (site, key epoch); for each random SA, the sender and the receiver
 * derive the same key, and changing any single input, or using another
 * key epoch's key pair, gives a key seen nowhere else.
 */
struct pair {
	uint8_t priv[32], pub[32];
};

static void
test_property(void **state)
{
	enum { SITES = 4, EPOCHS = 3, ROUNDS = 200, VARIANTS = 12 };
	static struct pair kp[SITES + 1][EPOCHS + 1];
	static uint8_t seen[ROUNDS * VARIANTS][SAKEY_KEY_MAX + SAKEY_SALT_LEN];
	size_t n_seen = 0;
	unsigned seed = 12345;

	(void)state;
	for (int s = 1; s <= SITES; s++)
		for (int e = 1; e <= EPOCHS; e++)
			assert_int_equal(sakey_keypair(kp[s][e].priv,
			    kp[s][e].pub), 0);
	for (int r = 0; r < ROUNDS; r++) {
		struct sakey_input in, v[VARIANTS];
		struct sakey ks, kr, kx;
		size_t nv = 0;

		in.tunnel_id = 1 + (uint64_t)(rand_r(&seed) % 1000);
		in.sender_site = 1 + (uint64_t)(rand_r(&seed) % SITES);
		do
			in.receiver_site = 1 + (uint64_t)(rand_r(&seed) % SITES);
		while (in.receiver_site == in.sender_site);
		in.sender_key_epoch = 1 + (uint64_t)(rand_r(&seed) % EPOCHS);
		in.receiver_key_epoch = 1 + (uint64_t)(rand_r(&seed) % EPOCHS);
		in.sa_epoch = 1 + (uint64_t)(rand_r(&seed) % 1000) +
		    1000 * (uint64_t)r;	/* unique per round */
		in.spi = 256 + (uint32_t)rand_r(&seed);
		in.cipher = rand_r(&seed) % 2 ? MSG_CIPHER_AES_GCM_128 :
		    MSG_CIPHER_AES_GCM_256;

		assert_int_equal(sakey_derive(
		    kp[in.sender_site][in.sender_key_epoch].priv,
		    kp[in.receiver_site][in.receiver_key_epoch].pub, &in,
		    &ks), 0);
		assert_int_equal(sakey_derive(
		    kp[in.receiver_site][in.receiver_key_epoch].priv,
		    kp[in.sender_site][in.sender_key_epoch].pub, &in,
		    &kr), 0);
		assert_memory_equal(&ks, &kr, sizeof(ks));

		/* Single-input variants, each keyed with the right pairs. */
		for (size_t i = 0; i < 7; i++)
			v[i] = in;
		v[0].sender_site = in.receiver_site;	/* other direction */
		v[0].receiver_site = in.sender_site;
		v[0].sender_key_epoch = in.receiver_key_epoch;
		v[0].receiver_key_epoch = in.sender_key_epoch;
		v[1].sa_epoch++;
		v[2].spi ^= 0x100;
		v[3].tunnel_id += 1000;
		v[4].cipher = in.cipher == MSG_CIPHER_AES_GCM_128 ?
		    MSG_CIPHER_AES_GCM_256 : MSG_CIPHER_AES_GCM_128;
		v[5].sender_key_epoch = in.sender_key_epoch % EPOCHS + 1;
		v[6].receiver_key_epoch = in.receiver_key_epoch % EPOCHS + 1;
		nv = 7;
		/* Another receiver site (with its own key). */
		v[nv] = in;
		do
			v[nv].receiver_site = v[nv].receiver_site % SITES + 1;
		while (v[nv].receiver_site == in.sender_site);
		nv++;
		for (size_t i = 0; i < nv; i++) {
			assert_int_equal(sakey_derive(
			    kp[v[i].sender_site][v[i].sender_key_epoch].priv,
			    kp[v[i].receiver_site][v[i].receiver_key_epoch].pub,
			    &v[i], &kx), 0);
			for (size_t j = 0; j < n_seen; j++)
				assert_memory_not_equal(kx.key, seen[j],
				    SAKEY_KEY_MAX);
			assert_memory_not_equal(kx.key, ks.key,
			    SAKEY_KEY_MAX);
			memcpy(seen[n_seen++], kx.key, SAKEY_KEY_MAX);
		}
		/* Same numbers, but the labels lie about the key pair: a
		 * sender using another epoch's private key disagrees with
		 * the receiver. */
		assert_int_equal(sakey_derive(
		    kp[in.sender_site][in.sender_key_epoch % EPOCHS + 1].priv,
		    kp[in.receiver_site][in.receiver_key_epoch].pub, &in,
		    &kx), 0);
		assert_memory_not_equal(kx.key, kr.key, SAKEY_KEY_MAX);
		for (size_t j = 0; j < n_seen; j++)
			assert_memory_not_equal(ks.key, seen[j], SAKEY_KEY_MAX);
		memcpy(seen[n_seen++], ks.key, SAKEY_KEY_MAX);
	}
}

/* ------------------------------------------------------------------ */
/* Epoch-key signatures */

static X509 *
mkcert(const char *cn, EVP_PKEY *subject, X509 *issuer, EVP_PKEY *ikey,
    long from, long to, bool ca)
{
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), rand());
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, subject);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) :
	    X509_get_subject_name(x));
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, ikey, EVP_sha256()) > 0);
	return x;
}

static size_t
der(X509 *x, uint8_t *out, size_t max)
{
	unsigned char *p = NULL;
	int len = i2d_X509(x, &p);

	assert_true(len > 0 && (size_t)len <= max);
	memcpy(out, p, (size_t)len);
	OPENSSL_free(p);
	return (size_t)len;
}

static char *
pem_key(EVP_PKEY *k, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n);
	memcpy(out, data, (size_t)n);
	*len = (size_t)n;
	BIO_free(b);
	return out;
}

static void
test_epochsig(void **state)
{
	EVP_PKEY *cak = EVP_EC_gen("P-256"), *otherk = EVP_EC_gen("P-256");
	EVP_PKEY *ek = EVP_EC_gen("P-256");
	X509 *ca = mkcert("meshwan-ca", cak, NULL, cak, -60, 86400, true);
	X509 *other = mkcert("other-ca", otherk, NULL, otherk, -60, 86400, true);
	X509 *cert = mkcert("site-5", ek, ca, cak, -60, 3600, false);
	X509 *wrongcn = mkcert("site-6", ek, ca, cak, -60, 3600, false);
	X509 *foreign = mkcert("site-5", ek, other, otherk, -60, 3600, false);
	uint8_t cad[4096], chain[8192], cd[4096], wd[4096], fd[4096];
	size_t cal, chl, cl, wl, fl, pl;
	char *pem = pem_key(ek, &pl), err[EPOCHSIG_ERR_LEN];
	struct msg_peer_key k = { .epoch = 3 }, t;
	int64_t now = (int64_t)time(NULL);
	uint8_t priv[32];

	(void)state;
	cal = der(ca, cad, sizeof(cad));
	chl = der(other, chain, sizeof(chain));	/* chain: other CA, then ours */
	memcpy(chain + chl, cad, cal);
	chl += cal;
	cl = der(cert, cd, sizeof(cd));
	wl = der(wrongcn, wd, sizeof(wd));
	fl = der(foreign, fd, sizeof(fd));
	assert_int_equal(sakey_keypair(priv, k.public_key), 0);
	k.not_after = (uint64_t)now + 600;
	assert_int_equal(epochsig_sign(pem, pl, 5, &k), 0);
	assert_true(k.signature_len > 0 && k.signature_len <= MSG_SIG_MAX);

	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &k, now, err,
	    sizeof(err)), 0);
	assert_int_equal(epochsig_verify(chain, chl, cd, cl, 5, &k, now, err,
	    sizeof(err)), 0);
	/* Another site's identity: the CN must match the announcer. */
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 6, &k, now, err,
	    sizeof(err)), -1);
	assert_int_equal(epochsig_verify(cad, cal, wd, wl, 5, &k, now, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "site-5"));
	/* A certificate of another CA. */
	assert_int_equal(epochsig_verify(cad, cal, fd, fl, 5, &k, now, err,
	    sizeof(err)), -1);
	/* Expired key: at not_after and after. */
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &k,
	    (int64_t)k.not_after, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "expired"));
	/* Certificate no longer valid at that time (3600 s lifetime). */
	t = k;
	t.not_after = (uint64_t)now + 7200;
	assert_int_equal(epochsig_sign(pem, pl, 5, &t), 0);
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &t, now + 3700,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "certificate"));
	/* Each signed field matters. */
	t = k;
	t.epoch = 4;
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &t, now, err,
	    sizeof(err)), -1);
	t = k;
	t.not_after++;
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &t, now, err,
	    sizeof(err)), -1);
	t = k;
	t.public_key[5] ^= 1;
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &t, now, err,
	    sizeof(err)), -1);
	/* A small-order key, even validly signed. */
	t = k;
	memset(t.public_key, 0, sizeof(t.public_key));
	assert_int_equal(epochsig_sign(pem, pl, 5, &t), 0);
	assert_int_equal(epochsig_verify(cad, cal, cd, cl, 5, &t, now, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "small order"));
	/* Garbage certificate / CA. */
	assert_int_equal(epochsig_verify(cad, cal, cd, cl - 1, 5, &k, now, err,
	    sizeof(err)), -1);
	assert_int_equal(epochsig_verify(cd + 1, cl - 1, cd, cl, 5, &k, now,
	    err, sizeof(err)), -1);
	/* The signed layout itself (proto/README.md). */
	{
		uint8_t m[EPOCHSIG_MSG_LEN], pub[MSG_KEY_LEN];

		memset(pub, 0xab, sizeof(pub));
		epochsig_bytes(0x0102030405060708ull, 9, pub, 0x1122334455667788ull,
		    m);
		assert_int_equal(sizeof(m), 72);
		assert_memory_equal(m, "meshwan-epoch-v1", 16);
		assert_hex(m + 16, 16, "01020304050607080000000000000009");
		assert_int_equal(m[32], 0xab);
		assert_int_equal(m[63], 0xab);
		assert_hex(m + 64, 8, "1122334455667788");
	}
	free(pem);
	X509_free(ca);
	X509_free(other);
	X509_free(cert);
	X509_free(wrongcn);
	X509_free(foreign);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(otherk);
	EVP_PKEY_free(ek);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7748),
		cmocka_unit_test(test_rfc5869),
		cmocka_unit_test(test_small_order),
		cmocka_unit_test(test_readme_vectors),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_property),
		cmocka_unit_test(test_epochsig),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
