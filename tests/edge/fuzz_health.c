/*
 * fuzz_health.c — libFuzzer target for what edge-agent/health.c reads
 * from the network: the echo replies of its raw ICMP socket (anyone who
 * can route a packet to the edge can put one there), and the arithmetic
 * those replies drive.
 *
 * The first byte picks the case.  0: the input is a datagram, parsed with
 * health_parse_reply() from a buffer of exactly its size (so
 * AddressSanitizer sees any read past it); what it yields must lie inside
 * the input.  1: the input is a script of probe events (sent, reply,
 * expire) with arbitrary sequence numbers, nonces and times against one
 * tracker; the result must stay within its bounds after every step.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge-agent/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

static uint64_t
take(const uint8_t **p, size_t *n, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes && *n > 0; i++, (*p)++, (*n)--)
		v = v << 8 | **p;
	return v;
}

static void
check_result(const struct health_track *t)
{
	struct health_result r;

	health_track_result(t, &r);
	CHECK(r.loss_permille <= 1000);
	CHECK(r.answered + r.lost + r.waiting <= HEALTH_WINDOW);
	CHECK(r.probe == HEALTH_PROBE_UNKNOWN || r.probe == HEALTH_PROBE_UP ||
	    r.probe == HEALTH_PROBE_DOWN);
	CHECK(r.answered > 0 || r.rtt_us == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct health_track t;
	struct health_reply r;
	uint8_t *buf;

	if (size < 1)
		return 0;
	if (data[0] % 2 == 0) {
		if ((buf = malloc(size - 1 ? size - 1 : 1)) == NULL)
			return 0;
		memcpy(buf, data + 1, size - 1);
		if (health_parse_reply(buf, size - 1, &r) == 0) {
			CHECK(r.payload >= buf + 28);
			CHECK(r.payload + r.payload_len <= buf + size - 1);
		}
		free(buf);
		return 0;
	}
	memset(&t, 0, sizeof(t));
	data++, size--;
	while (size > 0) {
		uint8_t op = (uint8_t)take(&data, &size, 1);
		uint16_t seq = (uint16_t)take(&data, &size, 2);
		uint32_t nonce = (uint32_t)take(&data, &size, 1);
		uint64_t at = take(&data, &size, 4);

		switch (op % 3) {
		case 0:
			health_track_sent(&t, seq, nonce, at);
			break;
		case 1:
			(void)health_track_reply(&t, seq, nonce, at);
			break;
		default:
			health_track_expire(&t, at, 1000000);
			break;
		}
		check_result(&t);
	}
	return 0;
}
