/*
 * pin.c — trust on a pin: an edge configured with `ca_pin` (SHA-256 of the
 * controller CA certificate's DER) and no `ca_file` learns the CA from the
 * TLS handshake of the controller's gRPC port, and keeps it only when it
 * hashes to the pin and the server certificate chains to it for the
 * configured controller_name.  The same idea as kubeadm's
 * discovery-token-ca-cert-hash: the operator copies 32 bytes, not a file.
 *
 * Nothing is sent but a ClientHello (ALPN h2, as gRPC offers), and nothing
 * is read but the server's certificate chain: the connection is closed as
 * soon as the handshake ends.  Every step has a deadline (PIN_TIMEOUT_S),
 * so an unreachable controller costs the agent's loop at most that.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "edge-agent/cache.h"
#include "edge-agent/pin.h"
#include "lib/util.h"

#define PIN_TIMEOUT_S	5
#define PIN_CERT_MAX	65536L	/* a CA certificate, PEM */

static int
pin_fail(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160];

	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
	return -1;
}

/* The SHA-256 of x's DER equals pin. */
static bool
pin_matches(X509 *x, const uint8_t pin[PIN_LEN])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	return X509_digest(x, EVP_sha256(), md, &mdlen) == 1 &&
	    mdlen == PIN_LEN && CRYPTO_memcmp(md, pin, PIN_LEN) == 0;
}

int
pin_check_pem(const uint8_t *pem, size_t len, const uint8_t pin[PIN_LEN],
    char *err, size_t errlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int rc;

	BIO_free(b);
	if (x == NULL)
		return pin_fail(err, errlen, "not a PEM certificate");
	rc = pin_matches(x, pin) ? 0 : -1;
	if (rc == -1)
		snprintf(err, errlen, "its SHA-256 is not ca_pin");
	X509_free(x);
	return rc;
}

/* Wait until fd is ready for what SSL wants, before deadline. */
static int
pin_wait(int fd, int want, uint64_t deadline_ms)
{
	struct pollfd p = { .fd = fd };
	uint64_t now = util_mono_ms();

	if (now >= deadline_ms)
		return -1;
	p.events = want == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
	return poll(&p, 1, (int)(deadline_ms - now)) == 1 ? 0 : -1;
}

/* The certificate in the peer's chain that hashes to pin, after checking
 * that the server's certificate chains to it and names server_name. */
static X509 *
pin_verify(SSL *ssl, const char *server_name, const uint8_t pin[PIN_LEN],
    char *err, size_t errlen)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *leaf = SSL_get0_peer_certificate(ssl), *ca = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;

	if (leaf == NULL || chain == NULL) {
		snprintf(err, errlen, "the controller sent no certificate");
		return NULL;
	}
	for (int i = 0; i < sk_X509_num(chain) && ca == NULL; i++)
		if (pin_matches(sk_X509_value(chain, i), pin))
			ca = sk_X509_value(chain, i);
	if (ca == NULL) {
		snprintf(err, errlen, "no certificate the controller sent has "
		    "the SHA-256 of ca_pin (wrong pin, or not this "
		    "controller)");
		return NULL;
	}
	if (X509_check_ca(ca) == 0) {
		snprintf(err, errlen, "the pinned certificate is not a CA");
		return NULL;
	}
	if ((store = X509_STORE_new()) == NULL ||
	    X509_STORE_add_cert(store, ca) != 1 ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, leaf, chain) != 1 ||
	    X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx),
	    server_name, 0) != 1) {
		(void)pin_fail(err, errlen, "setting up the verification");
		ca = NULL;
	} else if (X509_verify_cert(ctx) != 1) {
		snprintf(err, errlen, "the controller's certificate does not "
		    "verify against the pinned CA for %s: %s", server_name,
		    X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
		ca = NULL;
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	if (ca != NULL && X509_up_ref(ca) != 1)
		ca = NULL;
	return ca;
}

int
pin_fetch_ca(const char *target, const char *server_name,
    const uint8_t pin[PIN_LEN], const char *path, char *err, size_t errlen)
{
	static const unsigned char alpn[] = "\x02h2";
	uint64_t deadline = util_mono_ms() + PIN_TIMEOUT_S * 1000ull;
	SSL_CTX *sctx = NULL;
	SSL *ssl = NULL;
	BIO *conn = NULL, *mem = NULL;
	X509 *ca = NULL;
	char *pem;
	long pemlen;
	int rc = -1, fd, r;

	ERR_clear_error();
	if ((sctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(sctx, alpn, sizeof(alpn) - 1) != 0) {
		(void)pin_fail(err, errlen, "TLS set-up");
		goto out;
	}
	/* Not verified by the handshake: pin_verify does it, afterwards,
	 * against the pinned CA only. */
	SSL_CTX_set_verify(sctx, SSL_VERIFY_NONE, NULL);
	if ((conn = BIO_new_connect(target)) == NULL ||
	    BIO_set_nbio(conn, 1) != 1) {
		(void)pin_fail(err, errlen, "connection set-up");
		goto out;
	}
	if (BIO_do_connect_retry(conn, PIN_TIMEOUT_S, 100) <= 0) {
		(void)pin_fail(err, errlen, "cannot connect");
		goto out;
	}
	if ((ssl = SSL_new(sctx)) == NULL ||
	    SSL_set_tlsext_host_name(ssl, server_name) != 1) {
		(void)pin_fail(err, errlen, "TLS set-up");
		goto out;
	}
	SSL_set_bio(ssl, conn, conn);
	conn = NULL;	/* owned by ssl */
	fd = SSL_get_fd(ssl);
	while ((r = SSL_connect(ssl)) != 1) {
		int e = SSL_get_error(ssl, r);

		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    pin_wait(fd, e, deadline) == -1) {
			(void)pin_fail(err, errlen, e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE ? "TLS handshake timed "
			    "out" : "TLS handshake");
			goto out;
		}
	}
	if ((ca = pin_verify(ssl, server_name, pin, err, errlen)) == NULL)
		goto out;
	if ((mem = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(mem, ca) != 1 ||
	    (pemlen = BIO_get_mem_data(mem, &pem)) <= 0 ||
	    pemlen > PIN_CERT_MAX) {
		(void)pin_fail(err, errlen, "encoding the CA certificate");
		goto out;
	}
	if (cache_write_file(path, pem, (size_t)pemlen, 0644) == -1) {
		snprintf(err, errlen, "cannot write %s", path);
		goto out;
	}
	rc = 0;
out:
	if (ssl != NULL)
		(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	BIO_free_all(conn);
	BIO_free(mem);
	X509_free(ca);
	SSL_CTX_free(sctx);
	ERR_clear_error();
	return rc;
}
