/*
 * sakey.h — the one implementation of meshwan's SA key derivation
 * (proto/README.md, "SA keys"): X25519 between the two ends' epoch keys,
 * then HKDF-SHA256 over exactly the inputs the contract names, giving an
 * RFC 4106 key and its 4-byte salt.
 *
 * Both ends of a tunnel call sakey_derive() with their own private key
 * and the peer's public key and the same struct sakey_input, and get the
 * same bytes; any other input gives other bytes.  The controller uses
 * sakey_public_ok() to refuse small-order points before relaying them.
 * Nothing here logs key bytes; sakey_fingerprint() is the only view of a
 * derived key that may leave the process (tests, status).
 */
#ifndef MESHWAN_PROTO_SAKEY_H
#define MESHWAN_PROTO_SAKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

#define SAKEY_X25519_LEN	32	/* private, public and shared */
#define SAKEY_KEY_MAX		32	/* AES-256 */
#define SAKEY_SALT_LEN		4	/* RFC 4106 salt */
#define SAKEY_FP_LEN		16	/* hex chars of sakey_fingerprint */

/* SaKeyRef.direction byte of the info: from the lower site id to the
 * higher one, or back. */
#define SAKEY_DIR_UP		1
#define SAKEY_DIR_DOWN		2

/* Every input of one SA's key besides the two X25519 key pairs. */
struct sakey_input {
	uint64_t tunnel_id;		/* > 0 */
	uint64_t sender_site;		/* > 0, != receiver_site */
	uint64_t receiver_site;		/* > 0 */
	uint64_t sender_key_epoch;	/* > 0 */
	uint64_t receiver_key_epoch;	/* > 0 */
	uint64_t sa_epoch;		/* > 0 */
	uint32_t spi;			/* >= 256 */
	enum msg_cipher cipher;		/* GCM-128 or GCM-256 */
};

/* A derived SA key.  Clear it with sakey_clear() when done. */
struct sakey {
	uint8_t key[SAKEY_KEY_MAX];
	size_t key_len;			/* 16 or 32 */
	uint8_t salt[SAKEY_SALT_LEN];
};

/* A fresh X25519 key pair from the OpenSSL CSPRNG.  0 or -1. */
int sakey_keypair(uint8_t priv[SAKEY_X25519_LEN],
    uint8_t pub[SAKEY_X25519_LEN]);

/* The public key of priv.  0 or -1. */
int sakey_public(const uint8_t priv[SAKEY_X25519_LEN],
    uint8_t pub[SAKEY_X25519_LEN]);

/*
 * X25519(priv, pub) into shared.  -1 when OpenSSL fails or the result is
 * all zero (pub is a point of small order: RFC 7748 section 6.1); shared
 * is zeroed then.
 */
int sakey_x25519(const uint8_t priv[SAKEY_X25519_LEN],
    const uint8_t pub[SAKEY_X25519_LEN], uint8_t shared[SAKEY_X25519_LEN]);

/*
 * Whether pub may be used as a peer key: X25519 with any scalar does not
 * give the all-zero output.  (A clamped scalar is a multiple of the
 * cofactor 8, so every small-order point gives zero with every scalar.)
 */
bool sakey_public_ok(const uint8_t pub[SAKEY_X25519_LEN]);

/* HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF; salt and info may be
 * empty.  0 or -1. */
int sakey_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
    size_t salt_len, const uint8_t *info, size_t info_len, uint8_t *out,
    size_t out_len);

/* The HKDF salt and info of in (proto/README.md); for tests and docs.
 * 0, or -1 when in breaks its limits. */
#define SAKEY_HKDF_SALT_LEN	16
#define SAKEY_HKDF_INFO_LEN	(13 + 8 + 8 + 8 + 8 + 4 + 1 + 1)
int sakey_hkdf_inputs(const struct sakey_input *in,
    uint8_t salt[SAKEY_HKDF_SALT_LEN], uint8_t info[SAKEY_HKDF_INFO_LEN]);

/*
 * The SA key of in, from this end's private key of its own key epoch
 * and the peer's public key of the peer's key epoch.  0, or -1 (bad
 * input, small-order peer key, OpenSSL failure) with out zeroed.
 */
int sakey_derive(const uint8_t own_priv[SAKEY_X25519_LEN],
    const uint8_t peer_pub[SAKEY_X25519_LEN], const struct sakey_input *in,
    struct sakey *out);

/*
 * A keyed fingerprint that names a key without revealing it:
 * hex(HMAC-SHA256(key || salt, "meshwan-sa-fp")[0..8)).  out gets
 * SAKEY_FP_LEN chars and a NUL.
 */
void sakey_fingerprint(const struct sakey *k, char out[SAKEY_FP_LEN + 1]);

void sakey_clear(struct sakey *k);	/* NULL safe */

#endif
