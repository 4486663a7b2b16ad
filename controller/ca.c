/*
 * ca.c — CA creation/loading, server and edge certificate issuance, and
 * epoch-key signature checks, with OpenSSL 3.0's EVP and X509 APIs.
 *
 * The only OpenSSL user of the controller.  Everything is ECDSA P-256:
 * small certificates, fast handshakes for a thousand edges, and the same
 * key type the edges sign their epoch keys with.
 */
#include "controller/ca.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/util.h"
#include "proto/epochsig.h"

#define CA_PASS_MAX 1024
#define CA_VALID_DAYS 3650
#define CA_SERVER_VALID_S (365ull * 86400)

struct ca {
	EVP_PKEY *key;
	X509 *cert;
	char *cert_pem;
	char *server_cert_pem;
	char *server_key_pem;
	size_t server_key_len;
	uint8_t *cert_der;
	size_t cert_der_len;
};

static void
ca_log_ssl(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0) {
		log_warnx("ca: %s failed", what);
		return;
	}
	ERR_error_string_n(e, buf, sizeof(buf));
	log_warnx("ca: %s: %s", what, buf);
	ERR_clear_error();
}

static EVP_PKEY *
ca_new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL)
		ca_log_ssl("EC key generation");
	return k;
}

/* The passphrase is the file's first line; it is wiped after use. */
static int
ca_read_pass(const char *path, char *pass, size_t passsz)
{
	FILE *f;
	struct stat st;
	size_t n;

	if ((f = fopen(path, "re")) == NULL) {
		log_warn("ca: passphrase file %s", path);
		return -1;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
		log_warnx("ca: passphrase file %s is readable by group or "
		    "others", path);
	if (fgets(pass, (int)passsz, f) == NULL) {
		fclose(f);
		log_warnx("ca: passphrase file %s is empty", path);
		return -1;
	}
	fclose(f);
	n = strcspn(pass, "\r\n");
	pass[n] = '\0';
	if (n < 8) {
		util_wipe(pass, passsz);
		log_warnx("ca: passphrase in %s is shorter than 8 characters",
		    path);
		return -1;
	}
	return 0;
}

static int
ca_set_serial(X509 *x)
{
	uint8_t raw[16];
	BIGNUM *bn;
	int rc = -1;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] &= 0x7f; /* positive */
	raw[0] |= 0x01; /* never zero */
	if ((bn = BN_bin2bn(raw, sizeof(raw), NULL)) == NULL)
		return -1;
	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

static int
ca_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/*
 * A certificate skeleton: version 3, random serial, validity from one
 * minute ago (tolerates small clock skew; an eighth of a lifetime under
 * ten minutes, so that a test's short certificate is not mostly past)
 * until lifetime_s from now, subject CN.
 */
static X509 *
ca_new_cert(const char *cn, EVP_PKEY *pub, uint64_t lifetime_s)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (x == NULL)
		return NULL;
	if (X509_set_version(x, 2) != 1 || ca_set_serial(x) == -1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), lifetime_s < 600 ?
	    -(long)(lifetime_s / 8) : -60) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), (long)lifetime_s) == NULL ||
	    X509_set_pubkey(x, pub) != 1)
		goto fail;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"meshwan", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1)
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static char *
ca_pem_of(int (*wr)(BIO *, void *), void *obj, size_t *lenp)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b == NULL)
		return NULL;
	if (wr(b, obj) == 1 && (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
		if (lenp)
			*lenp = (size_t)n;
	}
	/* The memory BIO may have held a private key. */
	if (BIO_get_mem_data(b, &data) > 0)
		util_wipe(data, (size_t)BIO_get_mem_data(b, &data));
	BIO_free(b);
	return out;
}

static int
ca_wr_cert(BIO *b, void *x)
{
	return PEM_write_bio_X509(b, x);
}

static int
ca_wr_key(BIO *b, void *k)
{
	return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static int
ca_write_file(const char *path, mode_t mode, const char *data)
{
	char tmp[512];
	size_t len = strlen(data), off = 0;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1) {
		log_warn("ca: %s", tmp);
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("ca: write %s", tmp);
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) == -1 || fsync(fd) == -1 || close(fd) == -1 ||
	    rename(tmp, path) == -1) {
		log_warn("ca: %s", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
ca_create(struct ca *ca, const char *keypath, const char *certpath,
    const char *pass)
{
	BIO *b = NULL;
	char *keypem = NULL, *certpem = NULL, *data;
	long n;
	int rc = -1;

	if ((ca->key = ca_new_key()) == NULL)
		return -1;
	if ((ca->cert = ca_new_cert("meshwan CA", ca->key,
	    (uint64_t)CA_VALID_DAYS * 86400)) == NULL ||
	    X509_set_issuer_name(ca->cert,
	    X509_get_subject_name(ca->cert)) != 1 ||
	    ca_add_ext(ca->cert, ca->cert, NID_basic_constraints,
	    "critical,CA:TRUE,pathlen:0") == -1 ||
	    ca_add_ext(ca->cert, ca->cert, NID_key_usage,
	    "critical,keyCertSign,cRLSign") == -1 ||
	    ca_add_ext(ca->cert, ca->cert, NID_subject_key_identifier,
	    "hash") == -1 ||
	    X509_sign(ca->cert, ca->key, EVP_sha256()) == 0) {
		ca_log_ssl("creating the CA certificate");
		return -1;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (pass != NULL)
		n = PEM_write_bio_PKCS8PrivateKey(b, ca->key,
		    EVP_aes_256_cbc(), pass, (int)strlen(pass), NULL, NULL);
	else
		n = PEM_write_bio_PrivateKey(b, ca->key, NULL, NULL, 0, NULL,
		    NULL);
	if (n != 1 || (n = BIO_get_mem_data(b, &data)) <= 0 ||
	    (keypem = calloc(1, (size_t)n + 1)) == NULL) {
		ca_log_ssl("encoding the CA key");
		goto out;
	}
	memcpy(keypem, data, (size_t)n);
	util_wipe(data, (size_t)n);
	if ((certpem = ca_pem_of(ca_wr_cert, ca->cert, NULL)) == NULL)
		goto out;
	/* The key first: a certificate without its key is useless. */
	if (ca_write_file(keypath, 0600, keypem) == -1 ||
	    ca_write_file(certpath, 0644, certpem) == -1)
		goto out;
	log_info("ca: created a new CA in %s (key %s)", certpath,
	    pass ? "wrapped with the operator's passphrase" : "not wrapped");
	rc = 0;
out:
	if (keypem) {
		util_wipe(keypem, strlen(keypem));
		free(keypem);
	}
	free(certpem);
	BIO_free(b);
	return rc;
}

static int
ca_load(struct ca *ca, const char *keypath, const char *certpath,
    const char *pass)
{
	FILE *f;
	struct stat st;

	if (stat(keypath, &st) == 0 && (st.st_mode & 077) != 0) {
		log_warnx("ca: %s is accessible by group or others (mode "
		    "%03o); refusing to use it", keypath,
		    (unsigned)(st.st_mode & 0777));
		return -1;
	}
	if ((f = fopen(keypath, "re")) == NULL) {
		log_warn("ca: %s", keypath);
		return -1;
	}
	/* An empty passphrase makes a wrapped key fail instead of prompting. */
	ca->key = PEM_read_PrivateKey(f, NULL, NULL, (void *)(pass ? pass : ""));
	fclose(f);
	if (ca->key == NULL) {
		ca_log_ssl(pass ? "reading ca.key (wrong passphrase?)" :
		    "reading ca.key (wrapped? set ca_key_passphrase_file)");
		return -1;
	}
	if ((f = fopen(certpath, "re")) == NULL) {
		log_warn("ca: %s", certpath);
		return -1;
	}
	ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (ca->cert == NULL) {
		ca_log_ssl("reading ca.crt");
		return -1;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		log_warnx("ca: ca.key does not belong to ca.crt");
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(ca->cert)) <= 0) {
		log_warnx("ca: ca.crt has expired");
		return -1;
	}
	return 0;
}

/* Add a SAN entry: an address as IP, anything else as DNS. */
static int
ca_san_append(char *buf, size_t bufsz, const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;
	size_t used = strlen(buf);
	bool ip = inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1;
	int n;

	if (strstr(buf, name) != NULL)
		return 0;
	n = snprintf(buf + used, bufsz - used, "%s%s:%s", used ? "," : "",
	    ip ? "IP" : "DNS", name);
	return n < 0 || (size_t)n >= bufsz - used ? -1 : 0;
}

/*
 * A server certificate (1 year, serverAuth) for cn and names, plus
 * localhost and the loopback addresses; its key exists only in the PEM
 * text returned (the caller wipes *key_pem, *key_len bytes).
 */
static int
ca_issue_named(const struct ca *ca, const char *cn, const char *const *names,
    unsigned n_names, char **cert_pem, char **key_pem, size_t *key_len)
{
	static const char *const fixed[] = { "localhost", "127.0.0.1", "::1" };
	char san[2048] = "";
	EVP_PKEY *key;
	X509 *x = NULL;
	int rc = -1;

	*cert_pem = *key_pem = NULL;
	if ((key = ca_new_key()) == NULL)
		return -1;
	if (ca_san_append(san, sizeof(san), cn) == -1)
		goto out;
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if (ca_san_append(san, sizeof(san), fixed[i]) == -1)
			goto out;
	for (unsigned i = 0; i < n_names; i++)
		if (ca_san_append(san, sizeof(san), names[i]) == -1)
			goto out;
	if ((x = ca_new_cert(cn, key, CA_SERVER_VALID_S)) == NULL ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    ca_add_ext(x, ca->cert, NID_basic_constraints,
	    "critical,CA:FALSE") == -1 ||
	    ca_add_ext(x, ca->cert, NID_key_usage,
	    "critical,digitalSignature") == -1 ||
	    ca_add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") == -1 ||
	    ca_add_ext(x, ca->cert, NID_subject_alt_name, san) == -1 ||
	    ca_add_ext(x, ca->cert, NID_authority_key_identifier,
	    "keyid:always") == -1 ||
	    X509_sign(x, ca->key, EVP_sha256()) == 0) {
		ca_log_ssl("issuing a server certificate");
		goto out;
	}
	if ((*cert_pem = ca_pem_of(ca_wr_cert, x, NULL)) == NULL ||
	    (*key_pem = ca_pem_of(ca_wr_key, key, key_len)) == NULL) {
		free(*cert_pem);
		*cert_pem = NULL;
		goto out;
	}
	log_debug("ca", "server certificate for %s", san);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

static int
ca_issue_server(struct ca *ca, const struct ca_params *p)
{
	return ca_issue_named(ca, p->controller_name, p->names, p->n_names,
	    &ca->server_cert_pem, &ca->server_key_pem, &ca->server_key_len);
}

int
ca_issue_http(const struct ca *ca, const char *const *names, unsigned n,
    char **cert_pem, char **key_pem, size_t *key_len)
{
	if (n == 0)
		return -1;
	return ca_issue_named(ca, names[0], names, n, cert_pem, key_pem,
	    key_len);
}

struct ca *
ca_open(const struct ca_params *p)
{
	char keypath[512], certpath[512], pass[CA_PASS_MAX];
	bool have_pass = p->passphrase_file && *p->passphrase_file;
	bool key_exists, cert_exists;
	struct ca *ca;
	int len;

	if (snprintf(keypath, sizeof(keypath), "%s/ca.key", p->dir) >=
	    (int)sizeof(keypath) ||
	    snprintf(certpath, sizeof(certpath), "%s/ca.crt", p->dir) >=
	    (int)sizeof(certpath)) {
		log_warnx("ca: folder name too long");
		return NULL;
	}
	if (mkdir(p->dir, 0700) == -1 && errno != EEXIST) {
		log_warn("ca: %s", p->dir);
		return NULL;
	}
	if (have_pass && ca_read_pass(p->passphrase_file, pass,
	    sizeof(pass)) == -1)
		return NULL;
	if ((ca = calloc(1, sizeof(*ca))) == NULL)
		goto fail;
	key_exists = access(keypath, F_OK) == 0;
	cert_exists = access(certpath, F_OK) == 0;
	if (key_exists != cert_exists) {
		log_warnx("ca: %s has only one of ca.key and ca.crt; restore "
		    "the missing one or remove both to create a new CA",
		    p->dir);
		goto fail;
	}
	if (key_exists ? ca_load(ca, keypath, certpath,
	    have_pass ? pass : NULL) == -1 :
	    ca_create(ca, keypath, certpath, have_pass ? pass : NULL) == -1)
		goto fail;
	if ((ca->cert_pem = ca_pem_of(ca_wr_cert, ca->cert, NULL)) == NULL)
		goto fail;
	if ((len = i2d_X509(ca->cert, &ca->cert_der)) <= 0)
		goto fail;
	ca->cert_der_len = (size_t)len;
	if (ca_issue_server(ca, p) == -1)
		goto fail;
	util_wipe(pass, sizeof(pass));
	return ca;
fail:
	util_wipe(pass, sizeof(pass));
	ca_free(ca);
	return NULL;
}

void
ca_free(struct ca *ca)
{
	if (ca == NULL)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca->cert_pem);
	free(ca->server_cert_pem);
	if (ca->server_key_pem) {
		util_wipe(ca->server_key_pem, ca->server_key_len);
		free(ca->server_key_pem);
	}
	OPENSSL_free(ca->cert_der);
	free(ca);
}

const char *
ca_cert_pem(const struct ca *ca)
{
	return ca->cert_pem;
}

const char *
ca_server_cert_pem(const struct ca *ca)
{
	return ca->server_cert_pem;
}

const char *
ca_server_key_pem(const struct ca *ca)
{
	return ca->server_key_pem;
}

const uint8_t *
ca_cert_der(const struct ca *ca, size_t *len)
{
	*len = ca->cert_der_len;
	return ca->cert_der;
}

static bool
ca_key_is_p256(EVP_PKEY *k)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
		return false;
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* Parse and check a CSR; on success *reqp and *pubp are the caller's. */
static int
ca_parse_csr(const uint8_t *csr, size_t csr_len, X509_REQ **reqp,
    EVP_PKEY **pubp, char reason[CA_REASON_MAX])
{
	const unsigned char *pp = csr;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;

	reason[0] = '\0';
	if (csr_len == 0 || csr_len > CA_CSR_MAX) {
		snprintf(reason, CA_REASON_MAX, "CSR size %zu not in 1..%d",
		    csr_len, CA_CSR_MAX);
		return -1;
	}
	if ((req = d2i_X509_REQ(NULL, &pp, (long)csr_len)) == NULL ||
	    pp != csr + csr_len) {
		snprintf(reason, CA_REASON_MAX, "CSR is not one DER PKCS#10 "
		    "request");
		goto fail;
	}
	if ((pub = X509_REQ_get_pubkey(req)) == NULL ||
	    !ca_key_is_p256(pub)) {
		snprintf(reason, CA_REASON_MAX, "CSR key must be ECDSA P-256");
		goto fail;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		snprintf(reason, CA_REASON_MAX, "CSR signature does not verify");
		goto fail;
	}
	*reqp = req;
	*pubp = pub;
	return 0;
fail:
	ERR_clear_error();
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	return -1;
}

int
ca_check_csr(const uint8_t *csr, size_t csr_len, char reason[CA_REASON_MAX])
{
	X509_REQ *req;
	EVP_PKEY *pub;

	if (ca_parse_csr(csr, csr_len, &req, &pub, reason) == -1)
		return -1;
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	return 0;
}

int
ca_sign_csr(struct ca *ca, const uint8_t *csr, size_t csr_len,
    uint64_t site_id, uint64_t lifetime_s, uint8_t **der, size_t *der_len,
    char reason[CA_REASON_MAX])
{
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	char cn[32];
	unsigned char *out = NULL;
	int len, rc = -1;

	if (ca_parse_csr(csr, csr_len, &req, &pub, reason) == -1)
		return -1;
	snprintf(cn, sizeof(cn), "site-%llu", (unsigned long long)site_id);
	if ((x = ca_new_cert(cn, pub, lifetime_s)) == NULL ||
	    X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
	    ca_add_ext(x, ca->cert, NID_basic_constraints,
	    "critical,CA:FALSE") == -1 ||
	    ca_add_ext(x, ca->cert, NID_key_usage,
	    "critical,digitalSignature") == -1 ||
	    ca_add_ext(x, ca->cert, NID_ext_key_usage, "clientAuth") == -1 ||
	    ca_add_ext(x, ca->cert, NID_authority_key_identifier,
	    "keyid:always") == -1 ||
	    X509_sign(x, ca->key, EVP_sha256()) == 0 ||
	    (len = i2d_X509(x, &out)) <= 0) {
		ca_log_ssl("issuing an edge certificate");
		snprintf(reason, CA_REASON_MAX, "internal error");
		goto out;
	}
	if ((*der = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(*der, out, (size_t)len);
	*der_len = (size_t)len;
	log_debug("ca", "issued %s for %llu s", cn,
	    (unsigned long long)lifetime_s);
	rc = 0;
out:
	OPENSSL_free(out);
	X509_free(x);
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	return rc;
}

int
ca_cert_info(const uint8_t *der, size_t der_len, struct ca_cert_info *out)
{
	const unsigned char *pp = der;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	struct tm tm;
	unsigned fplen = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (der_len == 0 || der_len > CA_CERT_MAX ||
	    (x = d2i_X509(NULL, &pp, (long)der_len)) == NULL ||
	    pp != der + der_len)
		goto out;
	if (X509_digest(x, EVP_sha256(), out->sha256, &fplen) != 1 ||
	    fplen != sizeof(out->sha256))
		goto out;
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) ==
	    NULL || (hex = BN_bn2hex(bn)) == NULL ||
	    strlen(hex) >= sizeof(out->serial))
		goto out;
	for (size_t i = 0; hex[i] != '\0'; i++)
		out->serial[i] = (char)tolower((unsigned char)hex[i]);
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		goto out;
	out->not_after = (int64_t)timegm(&tm);
	rc = 0;
out:
	ERR_clear_error();
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	return rc;
}

int
ca_csr_same_key(const uint8_t *csr, size_t csr_len, const uint8_t *cert_der,
    size_t cert_len)
{
	char reason[CA_REASON_MAX];
	const unsigned char *pp = cert_der;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	int rc = -1;

	if (cert_len == 0 || cert_len > CA_CERT_MAX ||
	    ca_parse_csr(csr, csr_len, &req, &pub, reason) == -1)
		return -1;
	if ((x = d2i_X509(NULL, &pp, (long)cert_len)) != NULL &&
	    X509_get0_pubkey(x) != NULL)
		rc = EVP_PKEY_eq(pub, X509_get0_pubkey(x)) == 1 ? 1 : 0;
	ERR_clear_error();
	X509_free(x);
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	return rc;
}

int
ca_identity_site(const char *cn, uint64_t *site_id)
{
	if (cn == NULL || strncmp(cn, "site-", 5) != 0)
		return -1;
	return util_parse_u64(cn + 5, 1, INT64_MAX, site_id);
}

int
ca_check_epoch_key(const struct ca *ca, const uint8_t *cert_der,
    size_t cert_len, uint64_t site_id, const struct msg_peer_key *k,
    int64_t now, char *err, size_t errlen)
{
	size_t ca_len = 0;
	const uint8_t *ca_der = ca_cert_der(ca, &ca_len);

	return epochsig_verify(ca_der, ca_len, cert_der, cert_len, site_id, k,
	    now, err, errlen);
}

int
ca_verify_epoch_key(const struct ca *ca, const uint8_t *cert_der,
    size_t cert_len, uint64_t site_id, uint64_t epoch, const uint8_t *pub,
    size_t pub_len, uint64_t not_after, const uint8_t *sig, size_t sig_len)
{
	struct msg_peer_key k = { .epoch = epoch, .not_after = not_after };

	if (pub_len != CA_EPOCH_KEY_LEN || sig_len == 0 ||
	    sig_len > sizeof(k.signature))
		return -1;
	memcpy(k.public_key, pub, CA_EPOCH_KEY_LEN);
	memcpy(k.signature, sig, sig_len);
	k.signature_len = sig_len;
	return ca_check_epoch_key(ca, cert_der, cert_len, site_id, &k,
	    (int64_t)time(NULL), NULL, 0);
}
