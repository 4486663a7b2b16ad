/*
 * esp.c — ESP (RFC 4303) with AES-GCM (RFC 4106), in place, for the
 * userspace data plane.
 *
 * Packet layout (see ESP.md):
 *   SPI(4) | seq low 32 bits(4) | IV(8) | ciphertext: payload, pad 1..n,
 *   pad length(1), next header(1) | ICV(16)
 * Nonce = salt(4) | IV(8).  AAD = SPI | seq_lo, or SPI | seq_hi | seq_lo
 * with ESN (RFC 4106 §5).  The padding follows Linux esp4: AES-GCM has a
 * block size of 1, so the only constraint is RFC 4303's 4-byte alignment
 * of the ciphertext end, and the pad bytes are 1, 2, 3, ...
 *
 * The EVP context is keyed once; per packet only the nonce is set
 * (EVP_*Init_ex2 with a NULL cipher and key keeps the key schedule), so the
 * per-packet cost is the AES work itself.  OpenSSL 3.0 turns every
 * EVP_CIPHER_CTX_ctrl into an OSSL_PARAM array that the provider searches
 * by name, so the tag goes through one prebuilt parameter instead: read
 * with EVP_CIPHER_CTX_get_params after sealing, and handed to the
 * nonce-setting init when opening, which saves the separate SET_TAG call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/uesp/esp.h"
#include "overlay/uesp/replay.h"

#define ESP_IV_LEN 8
#define ESP_NONCE_LEN (ESP_SALT_LEN + ESP_IV_LEN)
#define ESP_ALIGN 4
/* Smallest packet: header, pad length, next header, ICV. */
#define ESP_MIN_LEN (ESP_HDR_LEN + 2 + ESP_ICV_LEN)
/* One EVP update handles an int length; packets are far smaller. */
#define ESP_MAX_CT ((size_t)64 * 1024)

struct esp_sa {
	EVP_CIPHER_CTX *ctx;
	/* The ICV as an OSSL_PARAM; data points into the packet per call. */
	OSSL_PARAM tag[2];
	uint32_t spi;
	bool inbound;
	bool esn;
	uint8_t salt[ESP_SALT_LEN];
	uint64_t seq;		/* outbound: last sent */
	uint64_t seq_max;	/* outbound: last usable */
	struct esp_sa_stats st;
	struct replay_window rw;	/* inbound only */
};

static void
esp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
esp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
esp_check_params(const struct esp_sa_params *p, bool inbound)
{
	if (p->spi < ESP_SPI_MIN) {
		log_warnx("esp: SPI %u is reserved (must be >= %u)", p->spi,
		    ESP_SPI_MIN);
		return -1;
	}
	if (p->cipher != ESP_AES_GCM_128 && p->cipher != ESP_AES_GCM_256) {
		log_warnx("esp: SPI 0x%08x: unknown cipher %d", p->spi,
		    (int)p->cipher);
		return -1;
	}
	if (p->key == NULL || p->salt == NULL) {
		log_warnx("esp: SPI 0x%08x: key or salt missing", p->spi);
		return -1;
	}
	if (inbound && (p->replay_window < REPLAY_WINDOW_MIN ||
	    p->replay_window > REPLAY_WINDOW_MAX || p->replay_window % 32)) {
		log_warnx("esp: SPI 0x%08x: replay window %u not in %u..%u "
		    "or not a multiple of 32", p->spi, p->replay_window,
		    REPLAY_WINDOW_MIN, REPLAY_WINDOW_MAX);
		return -1;
	}
	if (!inbound && p->seq_start >= (p->esn ? UINT64_MAX : UINT32_MAX)) {
		log_warnx("esp: SPI 0x%08x: start sequence %llu leaves no "
		    "sequence number", p->spi,
		    (unsigned long long)p->seq_start);
		return -1;
	}
	return 0;
}

struct esp_sa *
esp_sa_new(const struct esp_sa_params *p, bool inbound)
{
	const EVP_CIPHER *c;
	struct esp_sa *sa;
	int ok;

	if (esp_check_params(p, inbound) == -1)
		return NULL;
	if ((sa = calloc(1, sizeof(*sa))) == NULL) {
		log_warn("esp: SPI 0x%08x", p->spi);
		return NULL;
	}
	if ((sa->ctx = EVP_CIPHER_CTX_new()) == NULL) {
		log_warnx("esp: SPI 0x%08x: EVP_CIPHER_CTX_new failed", p->spi);
		goto free_sa;
	}
	c = p->cipher == ESP_AES_GCM_128 ? EVP_aes_128_gcm() :
	    EVP_aes_256_gcm();
	/* Cipher first, then the 12-byte nonce length, then the key. */
	if (inbound)
		ok = EVP_DecryptInit_ex(sa->ctx, c, NULL, NULL, NULL) == 1 &&
		    EVP_CIPHER_CTX_ctrl(sa->ctx, EVP_CTRL_GCM_SET_IVLEN,
		    ESP_NONCE_LEN, NULL) == 1 &&
		    EVP_DecryptInit_ex(sa->ctx, NULL, NULL, p->key, NULL) == 1;
	else
		ok = EVP_EncryptInit_ex(sa->ctx, c, NULL, NULL, NULL) == 1 &&
		    EVP_CIPHER_CTX_ctrl(sa->ctx, EVP_CTRL_GCM_SET_IVLEN,
		    ESP_NONCE_LEN, NULL) == 1 &&
		    EVP_EncryptInit_ex(sa->ctx, NULL, NULL, p->key, NULL) == 1;
	if (!ok) {
		log_warnx("esp: SPI 0x%08x: cannot set up AES-GCM", p->spi);
		goto free_ctx;
	}
	sa->tag[0] = OSSL_PARAM_construct_octet_string(
	    OSSL_CIPHER_PARAM_AEAD_TAG, NULL, ESP_ICV_LEN);
	sa->tag[1] = OSSL_PARAM_construct_end();
	sa->spi = p->spi;
	sa->inbound = inbound;
	sa->esn = p->esn;
	memcpy(sa->salt, p->salt, ESP_SALT_LEN);
	if (inbound) {
		/* Checked above, so this cannot fail. */
		(void)replay_init(&sa->rw, p->replay_window);
	} else {
		sa->seq = p->seq_start;
		sa->seq_max = p->esn ? UINT64_MAX : UINT32_MAX;
	}
	sa->st.spi = p->spi;
	sa->st.inbound = inbound;
	sa->st.seq = sa->seq;
	sa->st.created_ms = util_mono_ms();
	return sa;

free_ctx:
	EVP_CIPHER_CTX_free(sa->ctx);
free_sa:
	free(sa);
	return NULL;
}

void
esp_sa_free(struct esp_sa *sa)
{
	if (sa == NULL)
		return;
	/* EVP_CIPHER_CTX_free cleanses the key schedule. */
	EVP_CIPHER_CTX_free(sa->ctx);
	util_wipe(sa, sizeof(*sa));
	free(sa);
}

uint64_t
esp_sa_seq(const struct esp_sa *sa)
{
	return sa->seq;
}

size_t
esp_sealed_len(size_t payload_len)
{
	size_t ct = (payload_len + 2 + ESP_ALIGN - 1) & ~(size_t)(ESP_ALIGN - 1);

	return ESP_HDR_LEN + ct + ESP_ICV_LEN;
}

static void
esp_nonce(const struct esp_sa *sa, const uint8_t *iv, uint8_t *nonce)
{
	memcpy(nonce, sa->salt, ESP_SALT_LEN);
	memcpy(nonce + ESP_SALT_LEN, iv, ESP_IV_LEN);
}

/* AAD per RFC 4106 §5: SPI | seq, with the high 32 bits in between for ESN. */
static int
esp_aad(const struct esp_sa *sa, uint64_t seq, uint8_t *aad)
{
	esp_put32(aad, sa->spi);
	if (sa->esn) {
		esp_put32(aad + 4, (uint32_t)(seq >> 32));
		esp_put32(aad + 8, (uint32_t)seq);
		return 12;
	}
	esp_put32(aad + 4, (uint32_t)seq);
	return 8;
}

/*
 * Seal with sequence number seq and explicit IV iv.  Kept apart from
 * esp_seal only so that the known-answer tests can feed the published
 * vectors' IVs; everything else goes through esp_seal, whose IV is the
 * sequence number and therefore never repeats under one key.
 */
static int
esp_seal_iv(struct esp_sa *sa, uint8_t *pkt, size_t payload_len, size_t cap,
    uint8_t next_header, uint64_t seq, const uint8_t *iv, size_t *pkt_len)
{
	uint8_t nonce[ESP_NONCE_LEN], aad[12];
	uint8_t *ct = pkt + ESP_HDR_LEN;
	size_t total, ct_len, padlen, i;
	int aad_len, outl, finl;

	if (payload_len > ESP_MAX_CT - ESP_MAX_TRAILER)
		return -ENOSPC;
	total = esp_sealed_len(payload_len);
	if (total > cap)
		return -ENOSPC;

	ct_len = total - ESP_HDR_LEN - ESP_ICV_LEN;
	padlen = ct_len - payload_len - 2;
	for (i = 0; i < padlen; i++)
		ct[payload_len + i] = (uint8_t)(i + 1);
	ct[ct_len - 2] = (uint8_t)padlen;
	ct[ct_len - 1] = next_header;

	esp_put32(pkt, sa->spi);
	esp_put32(pkt + 4, (uint32_t)seq);
	memmove(pkt + 8, iv, ESP_IV_LEN);
	esp_nonce(sa, pkt + 8, nonce);
	aad_len = esp_aad(sa, seq, aad);

	sa->tag[0].data = ct + ct_len;
	if (EVP_EncryptInit_ex2(sa->ctx, NULL, NULL, nonce, NULL) != 1 ||
	    EVP_EncryptUpdate(sa->ctx, NULL, &outl, aad, aad_len) != 1 ||
	    EVP_EncryptUpdate(sa->ctx, ct, &outl, ct, (int)ct_len) != 1 ||
	    EVP_EncryptFinal_ex(sa->ctx, ct + outl, &finl) != 1 ||
	    EVP_CIPHER_CTX_get_params(sa->ctx, sa->tag) != 1) {
		log_warnx("esp: SPI 0x%08x: AES-GCM encryption failed", sa->spi);
		return -EINVAL;
	}
	sa->st.seq = seq;
	sa->st.packets++;
	sa->st.bytes += payload_len;
	*pkt_len = total;
	return 0;
}

int
esp_seal(struct esp_sa *sa, uint8_t *pkt, size_t payload_len, size_t cap,
    uint8_t next_header, size_t *pkt_len)
{
	uint8_t iv[ESP_IV_LEN];
	uint64_t seq;
	int rc;

	if (sa->inbound) {
		log_warnx("esp: SPI 0x%08x: seal on an inbound SA", sa->spi);
		return -EINVAL;
	}
	if (sa->seq >= sa->seq_max)
		return -EOVERFLOW;
	seq = sa->seq + 1;
	/* IV = the full 64-bit sequence number: unique for the SA's life. */
	esp_put32(iv, (uint32_t)(seq >> 32));
	esp_put32(iv + 4, (uint32_t)seq);
	rc = esp_seal_iv(sa, pkt, payload_len, cap, next_header, seq, iv,
	    pkt_len);
	/* Consume the number once it was used, so it is never reused. */
	if (rc == 0)
		sa->seq = seq;
	return rc;
}

static enum esp_result
esp_fail(struct esp_sa *sa, enum esp_result r)
{
	switch (r) {
	case ESP_ERR_MALFORMED:
		sa->st.malformed++;
		break;
	case ESP_ERR_REPLAY:
		sa->st.replay++;
		break;
	case ESP_ERR_AUTH:
		sa->st.auth++;
		break;
	case ESP_ERR_PAD:
		sa->st.pad++;
		break;
	case ESP_OK:
		break;
	}
	return r;
}

enum esp_result
esp_open(struct esp_sa *sa, uint8_t *pkt, size_t len, uint8_t **payload,
    size_t *payload_len, uint8_t *next_header, uint64_t *seq)
{
	uint8_t nonce[ESP_NONCE_LEN], aad[12];
	uint8_t *ct = pkt + ESP_HDR_LEN;
	size_t ct_len, padlen, i;
	int aad_len, outl, finl;
	uint64_t s;

	if (!sa->inbound || len < ESP_MIN_LEN || len > ESP_MAX_CT ||
	    esp_get32(pkt) != sa->spi)
		return esp_fail(sa, ESP_ERR_MALFORMED);
	ct_len = len - ESP_HDR_LEN - ESP_ICV_LEN;
	/* Cheap rejection of replays before any crypto work. */
	if (!replay_check(&sa->rw, esp_get32(pkt + 4), sa->esn, &s))
		return esp_fail(sa, ESP_ERR_REPLAY);

	esp_nonce(sa, pkt + 8, nonce);
	aad_len = esp_aad(sa, s, aad);
	/* The expected tag is copied in with the nonce, before the
	 * in-place decryption, which never touches the ICV bytes. */
	sa->tag[0].data = ct + ct_len;
	if (EVP_DecryptInit_ex2(sa->ctx, NULL, NULL, nonce, sa->tag) != 1 ||
	    EVP_DecryptUpdate(sa->ctx, NULL, &outl, aad, aad_len) != 1 ||
	    EVP_DecryptUpdate(sa->ctx, ct, &outl, ct, (int)ct_len) != 1 ||
	    EVP_DecryptFinal_ex(sa->ctx, ct + outl, &finl) != 1)
		return esp_fail(sa, ESP_ERR_AUTH);

	/* Authenticated: the sender really used this number. */
	replay_update(&sa->rw, s);
	sa->st.seq = sa->rw.top;

	padlen = ct[ct_len - 2];
	if (padlen + 2 > ct_len)
		return esp_fail(sa, ESP_ERR_PAD);
	for (i = 0; i < padlen; i++)
		if (ct[ct_len - 2 - padlen + i] != (uint8_t)(i + 1))
			return esp_fail(sa, ESP_ERR_PAD);

	sa->st.packets++;
	sa->st.bytes += ct_len - 2 - padlen;
	*payload = ct;
	*payload_len = ct_len - 2 - padlen;
	*next_header = ct[ct_len - 1];
	*seq = s;
	return ESP_OK;
}

uint32_t
esp_peek_spi(const uint8_t *pkt, size_t len)
{
	if (len < ESP_MIN_LEN)
		return 0;
	return esp_get32(pkt);
}

const char *
esp_result_str(enum esp_result r)
{
	switch (r) {
	case ESP_OK:
		return "ok";
	case ESP_ERR_MALFORMED:
		return "malformed";
	case ESP_ERR_REPLAY:
		return "replay";
	case ESP_ERR_AUTH:
		return "auth";
	case ESP_ERR_PAD:
		return "pad";
	}
	return "unknown";
}

void
esp_sa_stats(const struct esp_sa *sa, struct esp_sa_stats *out)
{
	*out = sa->st;
}
