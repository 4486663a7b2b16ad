/*
 * epochsig.h — the one implementation of epoch-key announcement signing
 * and verification (KeyAnnouncement, PeerKey; proto/README.md, "Keys").
 *
 * An edge signs each X25519 epoch public key with its certificate's key;
 * the controller verifies before storing and relaying, and every peer
 * verifies again before deriving an SA key from it.  Both sides call
 * this file, so the signed byte layout exists once:
 *
 *   "meshwan-epoch-v1" || site_id (BE64) || epoch (BE64) ||
 *   public_key (32) || not_after (BE64)
 *
 * signed with ECDSA P-256 / SHA-256 (DER signature).
 */
#ifndef MESHWAN_PROTO_EPOCHSIG_H
#define MESHWAN_PROTO_EPOCHSIG_H

#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

#define EPOCHSIG_LABEL		"meshwan-epoch-v1"
#define EPOCHSIG_MSG_LEN	(16 + 8 + 8 + MSG_KEY_LEN + 8)
#define EPOCHSIG_ERR_LEN	128

/* The signed bytes of one announcement. */
void epochsig_bytes(uint64_t site_id, uint64_t epoch,
    const uint8_t pub[MSG_KEY_LEN], uint64_t not_after,
    uint8_t out[EPOCHSIG_MSG_LEN]);

/*
 * Sign k->epoch, k->public_key and k->not_after for site_id with the
 * private key in key_pem (PEM text, as the edge stores it); fills
 * k->signature and k->signature_len.  0 or -1.
 */
int epochsig_sign(const char *key_pem, size_t key_pem_len, uint64_t site_id,
    struct msg_peer_key *k);

/*
 * Whether k may be used as site_id's epoch key at time now (unix
 * seconds):
 *  - cert_der parses and chains to a certificate of ca_der (one or more
 *    concatenated DER certificates, as Intent.ca_chain_der), and every
 *    certificate on the way is valid at now;
 *  - the certificate's CN is exactly "site-<site_id>";
 *  - k->not_after is after now;
 *  - k->public_key is not a point of small order (proto/sakey.h);
 *  - k->signature is the certificate key's signature of the bytes above.
 * 0, or -1 with a reason (no key bytes) in err.
 */
int epochsig_verify(const uint8_t *ca_der, size_t ca_len,
    const uint8_t *cert_der, size_t cert_len, uint64_t site_id,
    const struct msg_peer_key *k, int64_t now, char *err, size_t errlen);

#endif
