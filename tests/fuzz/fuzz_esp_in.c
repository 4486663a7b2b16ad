/*
 * fuzz_esp_in.c — libFuzzer target for the inbound ESP path: esp_peek_spi
 * and esp_open on arbitrary bytes, through a fresh inbound SA per input.
 *
 * Input: one config byte, then records of [2-byte big-endian length][bytes]
 * (a short last record is taken as it is).  Config bits: 0 ESN, 1 AES-256,
 * 2-3 replay window (32, 64, 1024, 4096), 4 "authentic" mode.  In the
 * normal mode each record is an ESP packet as received.  Forged packets
 * almost never pass the ICV, so in authentic mode each record is
 * [8-byte sequence number][plaintext with trailer] and the harness
 * encrypts it with the SA's key (OpenSSL, as a sender would): that drives
 * the code behind the ICV check (pad and length handling, the window).
 *
 * With FUZZ_SEED_DIR set, LLVMFuzzerInitialize writes seed inputs there:
 * packets sealed by esp_seal, and authentic-mode records with good and bad
 * trailers.  Each record is copied to a buffer of exactly its size so that
 * AddressSanitizer sees any read past the packet.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "overlay/uesp/esp.h"

#define FUZZ_SPI 0x0badf00du
#define FUZZ_MAX_REC 2048

static const uint8_t fuzz_key[32] = {
	0x6d, 0x65, 0x73, 0x68, 0x77, 0x61, 0x6e, 0x2d, 0x66, 0x75, 0x7a,
	0x7a, 0x2d, 0x6b, 0x65, 0x79, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
	0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t fuzz_salt[4] = { 0x01, 0x02, 0x03, 0x04 };
static const uint32_t fuzz_windows[4] = { 32, 64, 1024, 4096 };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_params(uint8_t cfg, struct esp_sa_params *p)
{
	memset(p, 0, sizeof(*p));
	p->spi = FUZZ_SPI;
	p->cipher = cfg & 2 ? ESP_AES_GCM_256 : ESP_AES_GCM_128;
	p->key = fuzz_key;
	p->salt = fuzz_salt;
	p->esn = cfg & 1;
	p->replay_window = fuzz_windows[(cfg >> 2) & 3];
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Encrypt rec = [seq64][plaintext] as the peer would; returns the length. */
static size_t
fuzz_authentic(uint8_t cfg, const uint8_t *rec, size_t n, uint8_t *pkt)
{
	uint8_t nonce[12], aad[12];
	uint32_t hi, lo;
	size_t ptlen, aadlen;
	EVP_CIPHER_CTX *c;
	int l, ok;

	if (n < 8)
		return 0;
	hi = (uint32_t)rec[0] << 24 | (uint32_t)rec[1] << 16 |
	    (uint32_t)rec[2] << 8 | rec[3];
	lo = (uint32_t)rec[4] << 24 | (uint32_t)rec[5] << 16 |
	    (uint32_t)rec[6] << 8 | rec[7];
	ptlen = n - 8;
	put32(pkt, FUZZ_SPI);
	put32(pkt + 4, lo);
	put32(pkt + 8, hi);
	put32(pkt + 12, lo);
	memcpy(nonce, fuzz_salt, 4);
	memcpy(nonce + 4, pkt + 8, 8);
	put32(aad, FUZZ_SPI);
	if (cfg & 1) {
		put32(aad + 4, hi);
		put32(aad + 8, lo);
		aadlen = 12;
	} else {
		put32(aad + 4, lo);
		aadlen = 8;
	}
	if ((c = EVP_CIPHER_CTX_new()) == NULL)
		abort();
	ok = EVP_EncryptInit_ex(c, cfg & 2 ? EVP_aes_256_gcm() :
	    EVP_aes_128_gcm(), NULL, fuzz_key, nonce) == 1 &&
	    EVP_EncryptUpdate(c, NULL, &l, aad, (int)aadlen) == 1 &&
	    EVP_EncryptUpdate(c, pkt + 16, &l, rec + 8, (int)ptlen) == 1 &&
	    EVP_EncryptFinal_ex(c, pkt + 16 + l, &l) == 1 &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
	    pkt + 16 + ptlen) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		abort();
	return 16 + ptlen + 16;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t tmp[FUZZ_MAX_REC + 64];
	struct esp_sa_params p;
	struct esp_sa *sa;
	uint8_t cfg, *payload, nh;
	size_t off, n, len, plen;
	uint64_t seq;

	if (size < 1)
		return 0;
	cfg = data[0];
	fuzz_params(cfg, &p);
	if ((sa = esp_sa_new(&p, true)) == NULL)
		abort();
	for (off = 1; off < size; off += n) {
		uint8_t *pkt;

		if (size - off >= 2) {
			n = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		} else {
			n = size - off;
		}
		if (n > size - off)
			n = size - off;
		if (n > FUZZ_MAX_REC)
			n = FUZZ_MAX_REC;
		if (cfg & 0x10) {
			len = fuzz_authentic(cfg, data + off, n, tmp);
			if (len == 0)
				continue;
		} else {
			len = n;
			memcpy(tmp, data + off, n);
		}
		/* Exactly-sized heap copy: ASan catches any overread. */
		if ((pkt = malloc(len ? len : 1)) == NULL)
			abort();
		memcpy(pkt, tmp, len);
		(void)esp_peek_spi(pkt, len);
		if (esp_open(sa, pkt, len, &payload, &plen, &nh, &seq) ==
		    ESP_OK) {
			volatile uint8_t sum = nh;
			size_t i;

			if (payload != pkt + ESP_HDR_LEN ||
			    plen + ESP_HDR_LEN + 2 + ESP_ICV_LEN > len || seq == 0)
				abort();
			for (i = 0; i < plen; i++)
				sum ^= payload[i];
		}
		free(pkt);
	}
	esp_sa_free(sa);
	return 0;
}

/* Seeds: a file per input, written once into FUZZ_SEED_DIR. */
static void
fuzz_write(const char *dir, const char *name, const uint8_t *buf, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		return;
	fwrite(buf, 1, n, f);
	fclose(f);
}

static size_t
fuzz_seed_sealed(uint8_t cfg, uint64_t seq_start, const int *order,
    size_t count, uint8_t *out, size_t cap)
{
	uint8_t pkts[8][256];
	size_t lens[8], i, off = 1;
	struct esp_sa_params p;
	struct esp_sa *sa;

	fuzz_params(cfg, &p);
	p.seq_start = seq_start;
	if ((sa = esp_sa_new(&p, false)) == NULL)
		abort();
	for (i = 0; i < 8; i++) {
		memset(pkts[i] + ESP_HDR_LEN, 0x40 + (int)i, 200);
		if (esp_seal(sa, pkts[i], i * 25, sizeof(pkts[i]),
		    i & 1 ? ESP_NH_GRE : ESP_NH_UDP, &lens[i]) != 0)
			abort();
	}
	esp_sa_free(sa);
	out[0] = cfg;
	for (i = 0; i < count; i++) {
		const uint8_t *pk = pkts[order[i]];
		size_t n = lens[order[i]];

		if (off + 2 + n > cap)
			break;
		out[off] = (uint8_t)(n >> 8);
		out[off + 1] = (uint8_t)n;
		memcpy(out + off + 2, pk, n);
		off += 2 + n;
	}
	return off;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const int inorder[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	static const int shuffled[] = { 3, 1, 1, 7, 0, 2, 6, 6 };
	/* Authentic mode: seq 1 good trailer, seq 2 bad pad byte, seq 9
	 * pad length beyond the packet, seq 2 again. */
	static const uint8_t auth[] = {
		0x10,
		0, 14, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 'b', 1, 2, 2, 47,
		0, 14, 0, 0, 0, 0, 0, 0, 0, 2, 'a', 'b', 1, 3, 2, 47,
		0, 12, 0, 0, 0, 0, 0, 0, 0, 9, 'a', 'b', 200, 17,
		0, 10, 0, 0, 0, 0, 0, 0, 0, 2, 0, 59,
	};
	uint8_t buf[4096];
	const char *dir = getenv("FUZZ_SEED_DIR");
	size_t n;

	(void)argc;
	(void)argv;
	/* Refused SA parameters would be logged; the harness has none. */
	log_init("fuzz_esp_in", true);
	if (dir == NULL)
		return 0;
	n = fuzz_seed_sealed(0x08, 0, inorder, 8, buf, sizeof(buf));
	fuzz_write(dir, "sealed-128", buf, n);
	n = fuzz_seed_sealed(0x0b, 0, shuffled, 8, buf, sizeof(buf));
	fuzz_write(dir, "sealed-256-esn", buf, n);
	n = fuzz_seed_sealed(0x01, 0xfffffffdull, inorder, 8, buf, sizeof(buf));
	fuzz_write(dir, "sealed-esn-wrap", buf, n);
	fuzz_write(dir, "authentic-trailers", auth, sizeof(auth));
	return 0;
}
