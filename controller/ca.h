/*
 * ca.h — the controller's certificate authority.
 *
 * On first start the CA (ECDSA P-256 key + self-signed certificate) is
 * created in the CA folder: ca.key (mode 0600, optionally an encrypted PEM
 * wrapped with a passphrase the operator provides in a file) and ca.crt.
 * At every start a fresh controller server certificate is issued from it
 * for the configured names and addresses; its key lives only in memory.
 * Edge certificates are issued from CSRs with CN = "site-<id>", the
 * identity every Session is checked against.  OpenSSL stays inside ca.c.
 */
#ifndef MESHWAN_CONTROLLER_CA_H
#define MESHWAN_CONTROLLER_CA_H

#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

#define CA_CSR_MAX 8192
#define CA_CERT_MAX 8192
#define CA_SIG_MAX 128
#define CA_EPOCH_KEY_LEN 32
#define CA_REASON_MAX 128

struct ca;

struct ca_params {
	const char *dir;             /* created 0700 if missing */
	const char *passphrase_file; /* NULL or "" = ca.key not wrapped */
	const char *controller_name; /* CN and first SAN of the server cert */
	const char *const *names;    /* extra SANs: DNS names or addresses */
	unsigned n_names;
};

/*
 * Load the CA from p->dir, creating it when neither file exists (one file
 * without the other is an error: never overwrite a CA by accident), and
 * issue the server certificate.  NULL on error (logged).
 * Free with ca_free().
 */
struct ca *ca_open(const struct ca_params *p);
void ca_free(struct ca *ca);

/* PEM text owned by ca, valid until ca_free(); the key is wiped there. */
const char *ca_cert_pem(const struct ca *ca);
const char *ca_server_cert_pem(const struct ca *ca);
const char *ca_server_key_pem(const struct ca *ca);
/*
 * Issue another server certificate (1 year, serverAuth) for the HTTPS
 * listener: CN = names[0], SANs = names plus localhost and the loopback
 * addresses.  PEM text in *cert_pem and *key_pem (free both; wipe the
 * key's *key_len bytes first).  0 or -1 (logged); n must be > 0.
 */
int ca_issue_http(const struct ca *ca, const char *const *names, unsigned n,
    char **cert_pem, char **key_pem, size_t *key_len);
/* DER of the CA certificate (the chain sent to edges). */
const uint8_t *ca_cert_der(const struct ca *ca, size_t *len);

/*
 * Check a PKCS#10 request without issuing anything: size, one DER
 * object, ECDSA P-256 key, valid self-signature.  0, or -1 with reason.
 */
int ca_check_csr(const uint8_t *csr, size_t csr_len,
    char reason[CA_REASON_MAX]);

/*
 * Check a PKCS#10 request (size, signature, ECDSA P-256 key) and issue a
 * certificate for site_id valid lifetime_s seconds (notBefore is set a
 * minute back for clock skew).  On success *der (free
 * with free()) and *der_len are set and 0 is returned; on a bad CSR -1 is
 * returned with a human-readable reason (never secret) in reason.
 */
int ca_sign_csr(struct ca *ca, const uint8_t *csr, size_t csr_len,
    uint64_t site_id, uint64_t lifetime_s, uint8_t **der, size_t *der_len,
    char reason[CA_REASON_MAX]);

/* What binds a Session to one issued certificate. */
struct ca_cert_info {
	uint8_t sha256[32];          /* over the DER */
	char serial[41];             /* lower-case hex, no leading zeros */
	int64_t not_after;           /* unix seconds */
};

/* Read a DER certificate's fingerprint, serial and notAfter.  0 or -1. */
int ca_cert_info(const uint8_t *der, size_t der_len,
    struct ca_cert_info *out);

/*
 * Renewal asks for a new key pair: 1 when the CSR carries the same public
 * key as the certificate, 0 when not, -1 when either does not parse.
 */
int ca_csr_same_key(const uint8_t *csr, size_t csr_len,
    const uint8_t *cert_der, size_t cert_len);

/* Parse "site-<id>" (the certificate identity) into *site_id; 0 or -1. */
int ca_identity_site(const char *cn, uint64_t *site_id);

/*
 * Check an epoch key announcement with proto/epochsig.c (the edges run
 * the same check): cert_der must chain to this CA and be valid at now,
 * its CN must be "site-<site_id>", k->not_after must be after now, the
 * key must not be a point of small order, and k->signature must be the
 * certificate key's signature (byte layout in proto/epochsig.h).  0, or
 * -1 with the reason (never key bytes) in err (may be NULL).
 */
int ca_check_epoch_key(const struct ca *ca, const uint8_t *cert_der,
    size_t cert_len, uint64_t site_id, const struct msg_peer_key *k,
    int64_t now, char *err, size_t errlen);

/* The same, the key given field by field, at the current time. */
int ca_verify_epoch_key(const struct ca *ca, const uint8_t *cert_der,
    size_t cert_len, uint64_t site_id, uint64_t epoch, const uint8_t *pub,
    size_t pub_len, uint64_t not_after, const uint8_t *sig, size_t sig_len);

#endif
