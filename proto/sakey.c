/*
 * sakey.c — SA key derivation (proto/README.md, "SA keys") with OpenSSL
 * 3: X25519 through EVP_PKEY_derive, HKDF-SHA256 through EVP_KDF.
 *
 * It lives in proto/ because it is part of the contract: the controller
 * never derives a key, but it must know exactly which inputs the edges
 * use (the fields of SaKeyRef and RekeyOrder), and every edge, whatever
 * its backend, must compute the same bytes.
 */
#include "proto/sakey.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#define SAKEY_LABEL	"meshwan-sa-v1"		/* 13 bytes, no NUL */
#define SAKEY_FP_LABEL	"meshwan-sa-fp"

static EVP_PKEY *
sakey_priv(const uint8_t priv[SAKEY_X25519_LEN])
{
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv,
	    SAKEY_X25519_LEN);
}

int
sakey_keypair(uint8_t priv[SAKEY_X25519_LEN], uint8_t pub[SAKEY_X25519_LEN])
{
	EVP_PKEY *k = NULL;
	size_t len = SAKEY_X25519_LEN, plen = SAKEY_X25519_LEN;
	int rc = -1;

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) != NULL &&
	    EVP_PKEY_get_raw_private_key(k, priv, &len) == 1 &&
	    len == SAKEY_X25519_LEN &&
	    EVP_PKEY_get_raw_public_key(k, pub, &plen) == 1 &&
	    plen == SAKEY_X25519_LEN)
		rc = 0;
	if (rc == -1)
		OPENSSL_cleanse(priv, SAKEY_X25519_LEN);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return rc;
}

int
sakey_public(const uint8_t priv[SAKEY_X25519_LEN],
    uint8_t pub[SAKEY_X25519_LEN])
{
	EVP_PKEY *k = sakey_priv(priv);
	size_t len = SAKEY_X25519_LEN;
	int rc = -1;

	if (k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 &&
	    len == SAKEY_X25519_LEN)
		rc = 0;
	EVP_PKEY_free(k);
	ERR_clear_error();
	return rc;
}

static bool
sakey_all_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

int
sakey_x25519(const uint8_t priv[SAKEY_X25519_LEN],
    const uint8_t pub[SAKEY_X25519_LEN], uint8_t shared[SAKEY_X25519_LEN])
{
	EVP_PKEY *own = sakey_priv(priv), *peer;
	EVP_PKEY_CTX *ctx = NULL;
	size_t len = SAKEY_X25519_LEN;
	int rc = -1;

	memset(shared, 0, SAKEY_X25519_LEN);
	peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub,
	    SAKEY_X25519_LEN);
	if (own == NULL || peer == NULL ||
	    (ctx = EVP_PKEY_CTX_new(own, NULL)) == NULL ||
	    EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
	    EVP_PKEY_derive(ctx, shared, &len) != 1 ||
	    len != SAKEY_X25519_LEN)
		goto out;
	/* OpenSSL refuses it too, but the contract must not depend on
	 * that: RFC 7748 section 6.1's check, done here. */
	if (sakey_all_zero(shared, SAKEY_X25519_LEN))
		goto out;
	rc = 0;
out:
	if (rc == -1)
		OPENSSL_cleanse(shared, SAKEY_X25519_LEN);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(own);
	ERR_clear_error();
	return rc;
}

bool
sakey_public_ok(const uint8_t pub[SAKEY_X25519_LEN])
{
	/* Any scalar will do (see sakey.h); this one is the RFC 7748
	 * section 5.2 scalar, nothing secret. */
	static const uint8_t probe[SAKEY_X25519_LEN] = {
		0xa5, 0x46, 0xe3, 0x6b, 0xf0, 0x52, 0x7c, 0x9d,
		0x3b, 0x16, 0x15, 0x4b, 0x82, 0x46, 0x5e, 0xdd,
		0x62, 0x14, 0x4c, 0x0a, 0xc1, 0xfc, 0x5a, 0x18,
		0x50, 0x6a, 0x22, 0x44, 0xba, 0x44, 0x9a, 0xc4,
	};
	uint8_t shared[SAKEY_X25519_LEN];
	bool ok = sakey_x25519(probe, pub, shared) == 0;

	OPENSSL_cleanse(shared, sizeof(shared));
	return ok;
}

int
sakey_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
    size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
    size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		goto out;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)ikm, ikm_len);
	/* No salt = HashLen zero bytes (RFC 5869 section 2.2). */
	if (salt_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, salt_len);
	if (info_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, out_len, params) == 1)
		rc = 0;
out:
	if (rc == -1)
		OPENSSL_cleanse(out, out_len);
	EVP_KDF_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

static void
sakey_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static size_t
sakey_key_len(enum msg_cipher c)
{
	switch (c) {
	case MSG_CIPHER_AES_GCM_128:
		return 16;
	case MSG_CIPHER_AES_GCM_256:
		return 32;
	default:
		return 0;
	}
}

int
sakey_hkdf_inputs(const struct sakey_input *in,
    uint8_t salt[SAKEY_HKDF_SALT_LEN], uint8_t info[SAKEY_HKDF_INFO_LEN])
{
	uint8_t *p = info;

	if (in->tunnel_id == 0 || in->sender_site == 0 ||
	    in->receiver_site == 0 || in->sender_site == in->receiver_site ||
	    in->sender_key_epoch == 0 || in->receiver_key_epoch == 0 ||
	    in->sa_epoch == 0 || in->spi < MSG_SPI_MIN ||
	    sakey_key_len(in->cipher) == 0)
		return -1;
	sakey_be64(salt, in->sender_key_epoch);
	sakey_be64(salt + 8, in->receiver_key_epoch);
	memcpy(p, SAKEY_LABEL, sizeof(SAKEY_LABEL) - 1);
	p += sizeof(SAKEY_LABEL) - 1;
	sakey_be64(p, in->tunnel_id);
	sakey_be64(p + 8, in->sender_site);
	sakey_be64(p + 16, in->receiver_site);
	sakey_be64(p + 24, in->sa_epoch);
	p += 32;
	*p++ = (uint8_t)(in->spi >> 24);
	*p++ = (uint8_t)(in->spi >> 16);
	*p++ = (uint8_t)(in->spi >> 8);
	*p++ = (uint8_t)in->spi;
	*p++ = in->sender_site < in->receiver_site ? SAKEY_DIR_UP :
	    SAKEY_DIR_DOWN;
	*p++ = (uint8_t)in->cipher;
	return 0;
}

int
sakey_derive(const uint8_t own_priv[SAKEY_X25519_LEN],
    const uint8_t peer_pub[SAKEY_X25519_LEN], const struct sakey_input *in,
    struct sakey *out)
{
	uint8_t shared[SAKEY_X25519_LEN], salt[SAKEY_HKDF_SALT_LEN];
	uint8_t info[SAKEY_HKDF_INFO_LEN], okm[SAKEY_KEY_MAX + SAKEY_SALT_LEN];
	size_t klen = sakey_key_len(in->cipher);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (sakey_hkdf_inputs(in, salt, info) == -1 ||
	    sakey_x25519(own_priv, peer_pub, shared) == -1)
		return -1;
	if (sakey_hkdf(shared, sizeof(shared), salt, sizeof(salt), info,
	    sizeof(info), okm, klen + SAKEY_SALT_LEN) == 0) {
		memcpy(out->key, okm, klen);
		out->key_len = klen;
		memcpy(out->salt, okm + klen, SAKEY_SALT_LEN);
		rc = 0;
	}
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(okm, sizeof(okm));
	return rc;
}

void
sakey_fingerprint(const struct sakey *k, char out[SAKEY_FP_LEN + 1])
{
	uint8_t km[SAKEY_KEY_MAX + SAKEY_SALT_LEN], mac[EVP_MAX_MD_SIZE];
	size_t mlen = 0;

	memcpy(km, k->key, k->key_len);
	memcpy(km + k->key_len, k->salt, SAKEY_SALT_LEN);
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, km,
	    k->key_len + SAKEY_SALT_LEN, (const unsigned char *)SAKEY_FP_LABEL,
	    sizeof(SAKEY_FP_LABEL) - 1, mac, sizeof(mac), &mlen) == NULL ||
	    mlen < SAKEY_FP_LEN / 2) {
		snprintf(out, SAKEY_FP_LEN + 1, "%s", "error");
		ERR_clear_error();
	} else {
		for (size_t i = 0; i < SAKEY_FP_LEN / 2; i++)
			snprintf(out + 2 * i, 3, "%02x", mac[i]);
	}
	OPENSSL_cleanse(km, sizeof(km));
	OPENSSL_cleanse(mac, sizeof(mac));
}

void
sakey_clear(struct sakey *k)
{
	if (k != NULL)
		OPENSSL_cleanse(k, sizeof(*k));
}
