/*
 * enroll.c — enrollment and renewal (see enroll.h): key pair and CSR
 * through OpenSSL, the Enroll and Renew calls through proto/rpc and
 * proto/pbconv.
 *
 * Why a file of its own: enrolling is the one step an edge takes without
 * a certificate, over a different port and channel than its Session.
 */
#include "edge-agent/enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define ENROLL_METHOD "/meshwan.v1.Enrollment/Enroll"
#define ENROLL_RENEW_METHOD "/meshwan.v1.Edge/Renew"

/*
 * The key as PEM into a new file only we can read: a temporary file
 * created 0600 (O_EXCL: never one that already exists, whose mode open()
 * would keep — a key written over a 0644 file stayed world-readable),
 * synced, then renamed over path.  A crash leaves the old key or the new
 * one, never half of one.
 */
static int
enroll_write_key(const char *path, EVP_PKEY *k)
{
	char tmp[PATH_MAX];
	FILE *f;
	int fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		log_warnx("enroll: %s: path too long", path);
		return -1;
	}
	(void)unlink(tmp);		/* left by a crash */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		log_warn("enroll: %s", tmp);
		return -1;
	}
	/* The umask may only take bits away; be explicit all the same. */
	if (fchmod(fd, 0600) == -1 || (f = fdopen(fd, "w")) == NULL) {
		log_warn("enroll: %s", tmp);
		close(fd);
		(void)unlink(tmp);
		return -1;
	}
	ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1 &&
	    fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok) {
		log_warnx("enroll: %s: cannot write the key", tmp);
		(void)unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) == -1) {
		log_warn("enroll: %s", path);
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

/* A CSR signed with k, DER, malloc'd into *csr.  0 or -1 (logged). */
static int
enroll_csr(EVP_PKEY *k, uint8_t **csr, size_t *csr_len)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	int len, rc = -1;

	*csr = NULL;
	*csr_len = 0;
	if (req == NULL || X509_REQ_set_pubkey(req, k) != 1 ||
	    X509_REQ_sign(req, k, EVP_sha256()) == 0 ||
	    (len = i2d_X509_REQ(req, &der)) <= 0) {
		log_warnx("enroll: cannot make a CSR");
		goto out;
	}
	if ((*csr = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(*csr, der, (size_t)len);
	*csr_len = (size_t)len;
	rc = 0;
out:
	OPENSSL_free(der);
	X509_REQ_free(req);
	return rc;
}

int
enroll_keygen(const char *key_path, uint8_t **csr, size_t *csr_len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	int rc = -1;

	*csr = NULL;
	*csr_len = 0;
	if (k == NULL) {
		log_warnx("enroll: cannot make a key pair");
		return -1;
	}
	if (enroll_write_key(key_path, k) == 0 &&
	    enroll_csr(k, csr, csr_len) == 0)
		rc = 0;
	EVP_PKEY_free(k);
	return rc;
}

/*
 * The P-256 private key in path, or NULL: 0 = read (*k set), 1 = there
 * is none (no file, or not a P-256 key: logged), -1 = unreadable.
 */
static int
enroll_read_key(const char *path, EVP_PKEY **k)
{
	struct stat sb;
	char group[32];
	size_t glen = 0;
	FILE *f;
	int fd;

	*k = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return 1;
		log_warn("enroll: %s", path);
		return -1;
	}
	/* A key an older agent left readable to others is ours alone now. */
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0 &&
	    fchmod(fd, 0600) == -1)
		log_warn("enroll: %s: chmod 0600", path);
	if ((f = fdopen(fd, "r")) == NULL) {
		log_warn("enroll: %s", path);
		close(fd);
		return -1;
	}
	*k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*k != NULL && EVP_PKEY_is_a(*k, "EC") &&
	    EVP_PKEY_get_utf8_string_param(*k, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) == 1 &&
	    strcmp(group, "prime256v1") == 0)
		return 0;
	ERR_clear_error();
	EVP_PKEY_free(*k);
	*k = NULL;
	log_warnx("enroll: %s holds no P-256 private key; making a new one",
	    path);
	return 1;
}

int
enroll_key_csr(const char *key_path, uint8_t **csr, size_t *csr_len)
{
	EVP_PKEY *k = NULL;
	int r, rc;

	*csr = NULL;
	*csr_len = 0;
	if ((r = enroll_read_key(key_path, &k)) == -1)
		return -1;
	if (r == 1)
		return enroll_keygen(key_path, csr, csr_len);
	log_debug("enroll", "%s: reusing the key pair of an earlier attempt",
	    key_path);
	rc = enroll_csr(k, csr, csr_len);
	EVP_PKEY_free(k);
	return rc;
}

struct rpc_client *
enroll_client(const char *target, const char *ca_file,
    const char *server_name)
{
	struct rpc_client_opts o;

	memset(&o, 0, sizeof(o));
	o.target = target;
	o.tls.ca_file = ca_file;
	o.server_name = server_name;
	return rpc_client_new(&o);
}

/* One unary call whose answer is an EnrollResponse. */
static int
enroll_unary(struct rpc_client *cli, const char *method, uint8_t *req,
    size_t req_len, unsigned timeout_ms, struct msg_enroll_response *rs,
    int *code, char *msg, size_t msgsz)
{
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	char err[PBCONV_ERR_LEN];
	int rc;

	rc = rpc_client_unary(cli, method, req, req_len, timeout_ms,
	    code, &resp, &resp_len, msg, msgsz);
	free(req);
	if (rc == -1) {
		log_warnx("enroll: the call failed locally");
		return -1;
	}
	if (*code == RPC_UNAVAILABLE || *code == RPC_DEADLINE_EXCEEDED) {
		/* Not the controller's answer: unreachable, or too slow. */
		log_warnx("enroll: no answer: %s (code %d)", msg, *code);
		free(resp);
		return -1;
	}
	if (*code != RPC_OK) {
		free(resp);
		return 1;
	}
	rc = pbconv_decode_enroll_response(resp, resp_len, rs, err,
	    sizeof(err));
	free(resp);
	if (rc == -1) {
		log_warnx("enroll: bad response: %s", err);
		return -1;
	}
	return 0;
}

int
enroll_call(struct rpc_client *cli, const char *token, const uint8_t *csr,
    size_t csr_len, const char *software_version, unsigned timeout_ms,
    struct msg_enroll_response *rs, int *code, char *msg, size_t msgsz)
{
	struct msg_enroll_request rq;
	uint8_t *req = NULL;
	size_t req_len = 0;

	memset(&rq, 0, sizeof(rq));
	snprintf(rq.token, sizeof(rq.token), "%s", token);
	rq.csr_der.data = (uint8_t *)csr; /* only encoded */
	rq.csr_der.len = csr_len;
	snprintf(rq.software_version, sizeof(rq.software_version), "%s",
	    software_version ? software_version : "");
	*code = -1;
	if (msgsz > 0)
		msg[0] = '\0';
	if (pbconv_encode_enroll_request(&rq, &req, &req_len) == -1)
		return -1;
	return enroll_unary(cli, ENROLL_METHOD, req, req_len, timeout_ms, rs,
	    code, msg, msgsz);
}

struct rpc_client *
enroll_renew_client(const char *target, const char *ca_file,
    const char *cert_file, const char *key_file, const char *server_name)
{
	struct rpc_client_opts o;

	memset(&o, 0, sizeof(o));
	o.target = target;
	o.tls.ca_file = ca_file;
	o.tls.cert_file = cert_file;
	o.tls.key_file = key_file;
	o.server_name = server_name;
	return rpc_client_new(&o);
}

int
enroll_renew_call(struct rpc_client *cli, const uint8_t *csr, size_t csr_len,
    const char *software_version, unsigned timeout_ms,
    struct msg_enroll_response *rs, int *code, char *msg, size_t msgsz)
{
	struct msg_renew_request rq;
	uint8_t *req = NULL;
	size_t req_len = 0;

	memset(&rq, 0, sizeof(rq));
	rq.csr_der.data = (uint8_t *)csr; /* only encoded */
	rq.csr_der.len = csr_len;
	snprintf(rq.software_version, sizeof(rq.software_version), "%s",
	    software_version ? software_version : "");
	*code = -1;
	if (msgsz > 0)
		msg[0] = '\0';
	if (pbconv_encode_renew_request(&rq, &req, &req_len) == -1)
		return -1;
	return enroll_unary(cli, ENROLL_RENEW_METHOD, req, req_len,
	    timeout_ms, rs, code, msg, msgsz);
}

int
enroll_renew_at(const char *cert_path, int64_t *at, int64_t *not_after)
{
	struct tm nb, na;
	FILE *f;
	X509 *x;
	int64_t b, a;
	int ok;

	if ((f = fopen(cert_path, "re")) == NULL) {
		log_warn("enroll: %s", cert_path);
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	memset(&nb, 0, sizeof(nb));
	memset(&na, 0, sizeof(na));
	ok = x != NULL &&
	    ASN1_TIME_to_tm(X509_get0_notBefore(x), &nb) == 1 &&
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &na) == 1;
	X509_free(x);
	if (!ok) {
		log_warnx("enroll: %s: not a PEM certificate", cert_path);
		return -1;
	}
	b = (int64_t)timegm(&nb);
	a = (int64_t)timegm(&na);
	if (a <= b)
		return -1;
	*at = a - (a - b) / 3;
	if (not_after != NULL)
		*not_after = a;
	return 0;
}

int
enroll_write_cert(const char *path, const struct msg_blob *der, bool pem)
{
	const unsigned char *p = der->data;
	X509 *x = NULL;
	FILE *f;
	int ok;

	if (pem && (x = d2i_X509(NULL, &p, (long)der->len)) == NULL) {
		log_warnx("enroll: the certificate is not DER X.509");
		return -1;
	}
	if ((f = fopen(path, "wb")) == NULL) {
		log_warn("enroll: %s", path);
		X509_free(x);
		return -1;
	}
	ok = pem ? PEM_write_X509(f, x) == 1 :
	    fwrite(der->data, 1, der->len, f) == der->len;
	X509_free(x);
	if (fclose(f) != 0 || !ok) {
		log_warnx("enroll: %s: cannot write the certificate", path);
		return -1;
	}
	return 0;
}
