/*
 * enroll.h — an edge's enrollment: make its key pair and CSR, present the
 * one-time token over Enrollment.Enroll, keep the certificate the
 * controller issues, and renew it over Edge.Renew before it expires.  Used by meshwan-edge and by the test edges in
 * tests/.  The private key never leaves key_path; only the CSR travels.
 */
#ifndef MESHWAN_EDGE_ENROLL_H
#define MESHWAN_EDGE_ENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

struct rpc_client;

/*
 * A new P-256 key pair: the private key written as PEM to key_path
 * (created or replaced, mode 0600) and a CSR signed with it, DER, in
 * *csr (malloc'd, caller frees).  0 or -1 (logged).
 */
int enroll_keygen(const char *key_path, uint8_t **csr, size_t *csr_len);
/*
 * Enrollment's key pair: the P-256 private key already in key_path when
 * there is one (an earlier attempt's, whose answer may have been lost:
 * the controller sends the certificate again only to the same key; the
 * file is made 0600 if it was not), else a new one as enroll_keygen
 * makes it; and a new CSR signed with it in *csr (malloc'd, caller
 * frees).  A file that holds no P-256 private key is replaced (logged).
 * 0 or -1 (logged).
 */
int enroll_key_csr(const char *key_path, uint8_t **csr, size_t *csr_len);

/* A server-auth TLS client for the controller's enrollment port (the
 * edge has no certificate yet).  NULL on error.  rpc_client_free(). */
struct rpc_client *enroll_client(const char *target, const char *ca_file,
    const char *server_name);

/*
 * Enroll with token and csr over cli.  0: enrolled, *rs filled (free it
 * with msg_enroll_response_free); 1: the controller refused, *code and
 * msg say why; -1: a local error, no answer (UNAVAILABLE or
 * DEADLINE_EXCEEDED: try again later) or a reply that does not decode
 * (logged).
 */
int enroll_call(struct rpc_client *cli, const char *token, const uint8_t *csr,
    size_t csr_len, const char *software_version, unsigned timeout_ms,
    struct msg_enroll_response *rs, int *code, char *msg, size_t msgsz);

/* Write an issued certificate to path: DER as it came, or PEM.  0 / -1. */
int enroll_write_cert(const char *path, const struct msg_blob *der, bool pem);

/*
 * Renewal (proto/README.md, "Certificate renewal"): before its
 * certificate expires the edge makes a new key pair (enroll_keygen to a
 * new file), calls Edge.Renew on the session port with its current
 * certificate, then moves its Session to the new certificate
 * (session_switch_cert) and re-announces its epoch keys signed with the
 * new key.  The controller retires the old certificate at that switch.
 */

/* A mutual-TLS client with the edge's current certificate.  NULL on
 * error.  rpc_client_free(). */
struct rpc_client *enroll_renew_client(const char *target,
    const char *ca_file, const char *cert_file, const char *key_file,
    const char *server_name);
/* Edge.Renew with csr over cli; returns as enroll_call does. */
int enroll_renew_call(struct rpc_client *cli, const uint8_t *csr,
    size_t csr_len, const char *software_version, unsigned timeout_ms,
    struct msg_enroll_response *rs, int *code, char *msg, size_t msgsz);
/*
 * The renewal point of the PEM certificate in cert_path: when a third of
 * its validity is left, notAfter - (notAfter - notBefore) / 3, in unix
 * seconds (day 20 of a 30-day certificate).  *not_after may be NULL.
 * 0 / -1.
 */
int enroll_renew_at(const char *cert_path, int64_t *at, int64_t *not_after);

#endif
