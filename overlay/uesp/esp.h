/*
 * esp.h — ESP (RFC 4303) with AES-GCM (RFC 4106): the crypto core of the
 * userspace data plane.
 *
 * An esp_sa is one direction of one Security Association.  esp_seal turns
 * a next-header payload (GRE header + packet, or UDP header + VXLAN +
 * frame) into an ESP packet in place; esp_open does the reverse and
 * refuses replays, forgeries and malformed packets.  The bytes are those of
 * Linux esp4 in transport mode (see ESP.md next to this file), except the
 * explicit IV, which here is the 64-bit sequence number (unique per SA, as
 * RFC 4106 §3.1 requires; receivers never interpret it).
 *
 * Crypto is OpenSSL EVP AES-GCM only; one EVP_CIPHER_CTX per SA is keyed
 * once in esp_sa_new and per packet only gets its nonce.  Nothing is
 * allocated per packet.
 *
 * Threads: an esp_sa is used by one thread at a time; the caller
 * serialises (the uesp runtime pins each SA to one worker).  Different SAs
 * may be used concurrently.
 *
 * Key material: esp_sa_new copies the key into the EVP context only (the
 * caller wipes its own copy); esp_sa_free wipes the SA.  No function logs
 * or returns key bytes.
 */
#ifndef MESHWAN_ESP_H
#define MESHWAN_ESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ESP_HDR_LEN 16		/* SPI 4 + seq 4 + explicit IV 8 (RFC 4106) */
#define ESP_ICV_LEN 16
#define ESP_MAX_TRAILER (3 + 2 + ESP_ICV_LEN) /* pad to 4 + padlen + nh + ICV */
#define ESP_SALT_LEN 4
#define ESP_SPI_MIN 256		/* 1..255 are reserved (RFC 4303 §2.1) */

/* Next-header values the overlay carries (IANA protocol numbers). */
#define ESP_NH_UDP 17		/* UDP 4789 + VXLAN + Ethernet frame */
#define ESP_NH_GRE 47		/* GRE + IPv4/IPv6 packet */
#define ESP_NH_NONE 59		/* dummy packet (RFC 4303 §2.6): discard */

enum esp_cipher { ESP_AES_GCM_128 = 1, ESP_AES_GCM_256 = 2 };

struct esp_sa_params {
	uint32_t spi;		/* >= ESP_SPI_MIN */
	enum esp_cipher cipher;
	const uint8_t *key;	/* 16 or 32 bytes, + 4-byte salt separately */
	const uint8_t *salt;	/* 4 bytes (RFC 4106 nonce salt) */
	bool esn;		/* extended sequence numbers (RFC 4303 2.2.1) */
	uint32_t replay_window;	/* inbound only: 32..65536 packets, multiple of 32 */
	uint64_t seq_start;	/* outbound: first seq - 1, normally 0 */
};

struct esp_sa;			/* opaque; holds a reused EVP_CIPHER_CTX */

/*
 * Returns NULL on bad params (logged) or allocation failure.  Copies the
 * key into the EVP context only; the caller wipes its own copy.
 * The caller owns the result and frees it with esp_sa_free.
 */
struct esp_sa *esp_sa_new(const struct esp_sa_params *p, bool inbound);
void esp_sa_free(struct esp_sa *sa);	/* wipes; NULL ok */

/* Outbound: the last sequence number sealed (seq_start before the first). */
uint64_t esp_sa_seq(const struct esp_sa *sa);

/* Size of the ESP packet esp_seal makes from payload_len bytes. */
size_t esp_sealed_len(size_t payload_len);

/*
 * Outbound, in place: the payload (next-header payload: a GRE header+packet,
 * or a UDP header+VXLAN+frame) is at pkt + ESP_HDR_LEN, payload_len bytes;
 * cap is the buffer size.  Writes SPI, seq, IV=64-bit seq (never reused),
 * pads to a 4-byte boundary like Linux, trailer, ICV.  *pkt_len = ESP packet
 * length.  Returns 0, -ENOSPC (cap too small), -EOVERFLOW (sequence space
 * exhausted: SA must be rekeyed; never wraps), -EINVAL (inbound SA or a
 * crypto library failure, logged).
 */
int esp_seal(struct esp_sa *sa, uint8_t *pkt, size_t payload_len, size_t cap,
    uint8_t next_header, size_t *pkt_len);

/*
 * Inbound, in place: pkt/len is the ESP packet (after the UDP header and any
 * non-ESP-marker handling).  Checks length and SPI, the replay window
 * (before decrypting), the ICV, then the pad bytes (1, 2, 3, ... per
 * RFC 4303 §2.4); updates the window only after the ICV verified.  On
 * success *payload = pkt + ESP_HDR_LEN, *payload_len, *next_header, and
 * *seq (the full 64-bit sequence number).  The caller dispatches on
 * *next_header and drops what it does not carry (ESP_NH_NONE: dummy).
 * On failure the buffer content is undefined (it may hold unauthenticated
 * plaintext) and must not be delivered; the out parameters are untouched.
 * The result is counted in the SA's stats.
 */
enum esp_result {
	ESP_OK = 0,
	ESP_ERR_MALFORMED,	/* too short, wrong SPI, outbound SA */
	ESP_ERR_REPLAY,		/* duplicate or left of the window */
	ESP_ERR_AUTH,		/* ICV did not verify */
	ESP_ERR_PAD,		/* authenticated, but pad length/bytes wrong */
};
enum esp_result esp_open(struct esp_sa *sa, uint8_t *pkt, size_t len,
    uint8_t **payload, size_t *payload_len, uint8_t *next_header,
    uint64_t *seq);

/* The SPI of an ESP packet (host order); 0 if too short to be ESP. */
uint32_t esp_peek_spi(const uint8_t *pkt, size_t len);

/* Short name of a result, for logs and counters ("ok", "auth", ...). */
const char *esp_result_str(enum esp_result r);

struct esp_sa_stats {
	uint32_t spi;
	bool inbound;
	uint64_t packets;	/* sealed, or opened with ESP_OK */
	uint64_t bytes;		/* payload bytes of those packets */
	uint64_t seq;		/* outbound: last sent; inbound: highest accepted */
	uint64_t created_ms;	/* util_mono_ms() when the SA was made */
	/* inbound drops by reason */
	uint64_t malformed;
	uint64_t replay;
	uint64_t auth;
	uint64_t pad;
};

/* Counters/ages for status reports: packets, bytes, highest seq, created time. */
void esp_sa_stats(const struct esp_sa *sa, struct esp_sa_stats *out);

#endif
