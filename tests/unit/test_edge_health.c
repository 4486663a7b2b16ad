/*
 * test_edge_health.c — the agent's tunnel health (edge-agent/health.c):
 * the RTT, loss and jitter arithmetic against hand-computed values (RFC
 * 3550 A.8 for the jitter), when the probe path counts as down, unknown
 * and up, which replies are refused (wrong nonce, repeat, late, unknown
 * sequence), the one "up" rule, the parser of what a raw ICMP socket
 * reads (every truncation of a good reply refused), and the prober itself
 * over loopback (root: a real raw socket, RTT > 0, loss 0).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "edge-agent/health.h"
#include "lib/util.h"

static void
reply_at(struct health_track *t, uint16_t seq, uint64_t sent, uint32_t rtt)
{
	health_track_sent(t, seq, 1000u + seq, sent);
	assert_int_equal(health_track_reply(t, seq, 1000u + seq, sent + rtt),
	    0);
}

static void
test_rtt_loss(void **state)
{
	struct health_track t;
	struct health_result r;

	(void)state;
	memset(&t, 0, sizeof(t));
	health_track_result(&t, &r);
	assert_int_equal(r.probe, HEALTH_PROBE_UNKNOWN);
	assert_int_equal(r.rtt_us, 0);
	assert_int_equal(r.loss_permille, 0);

	reply_at(&t, 1, 0, 1000);
	reply_at(&t, 2, 500000, 3000);
	health_track_sent(&t, 3, 7, 1000000);	/* still waiting */
	health_track_result(&t, &r);
	assert_int_equal(r.probe, HEALTH_PROBE_UP);
	assert_int_equal(r.rtt_us, 2000);
	assert_int_equal(r.answered, 2);
	assert_int_equal(r.waiting, 1);
	assert_int_equal(r.loss_permille, 0);	/* waiting is not lost */

	/* One second later it is. */
	health_track_expire(&t, 1999999, 1000000);
	health_track_result(&t, &r);
	assert_int_equal(r.lost, 0);
	health_track_expire(&t, 2000000, 1000000);
	health_track_result(&t, &r);
	assert_int_equal(r.lost, 1);
	assert_int_equal(r.loss_permille, 333);	/* 1 of 3, rounded */
	assert_int_equal(r.probe, HEALTH_PROBE_UP);
	/* A late answer does not undo the loss. */
	assert_int_equal(health_track_reply(&t, 3, 7, 2100000), -1);
	health_track_result(&t, &r);
	assert_int_equal(r.lost, 1);
}

static void
test_window(void **state)
{
	struct health_track t;
	struct health_result r;
	uint16_t seq = 0;

	(void)state;
	memset(&t, 0, sizeof(t));
	/* 5 lost, then 20 answered: the losses leave the window. */
	for (int i = 0; i < 5; i++) {
		seq++;
		health_track_sent(&t, seq, 0, (uint64_t)seq * 500000);
		health_track_expire(&t, (uint64_t)seq * 500000 + 1000000,
		    1000000);
	}
	health_track_result(&t, &r);
	assert_int_equal(r.loss_permille, 1000);
	assert_int_equal(r.probe, HEALTH_PROBE_UNKNOWN);
	for (int i = 0; i < HEALTH_WINDOW; i++) {
		seq++;
		reply_at(&t, seq, (uint64_t)seq * 500000, 800);
		health_track_result(&t, &r);
		assert_int_equal(r.probe, HEALTH_PROBE_UP);
		if (i == 9)	/* 5 lost of 15 */
			assert_int_equal(r.loss_permille, 333);
	}
	assert_int_equal(r.loss_permille, 0);
	assert_int_equal(r.answered, HEALTH_WINDOW);
	assert_int_equal(r.rtt_us, 800);
	assert_int_equal(r.jitter_us, 0);
	/* A slot reused while its probe still waits counts it lost in a
	 * row (it has left the window). */
	health_track_sent(&t, 100, 0, 0);
	health_track_sent(&t, 100 + HEALTH_WINDOW, 0, 1);
	assert_int_equal(t.lost_in_row, 1);
	health_track_result(&t, &r);
	assert_int_equal(r.waiting, 1);
}

static void
test_down_after(void **state)
{
	struct health_track t;
	struct health_result r;

	(void)state;
	memset(&t, 0, sizeof(t));
	/* Never answered: unknown, however many are lost (a peer that
	 * drops ICMP is not a dead tunnel). */
	for (uint16_t s = 1; s <= 5; s++) {
		health_track_sent(&t, s, 0, s * 500000ull);
		health_track_expire(&t, s * 500000ull + 1000000, 1000000);
	}
	health_track_result(&t, &r);
	assert_int_equal(r.probe, HEALTH_PROBE_UNKNOWN);
	memset(&t, 0, sizeof(t));
	reply_at(&t, 1, 0, 500);
	for (uint16_t s = 2; s < 2 + HEALTH_DOWN_AFTER; s++) {
		health_track_result(&t, &r);
		assert_int_equal(r.probe, HEALTH_PROBE_UP);
		health_track_sent(&t, s, 0, s * 500000ull);
		health_track_expire(&t, s * 500000ull + 1000000, 1000000);
	}
	health_track_result(&t, &r);
	assert_int_equal(r.probe, HEALTH_PROBE_DOWN);
	/* One answer brings it back. */
	reply_at(&t, 10, 10000000, 700);
	health_track_result(&t, &r);
	assert_int_equal(r.probe, HEALTH_PROBE_UP);

	/* Several expire at once: counted oldest first. */
	memset(&t, 0, sizeof(t));
	reply_at(&t, 1, 0, 500);
	health_track_sent(&t, 2, 0, 1000);
	health_track_sent(&t, 3, 0, 2000);
	reply_at(&t, 4, 3000, 100);
	health_track_expire(&t, 5000000, 1000000);
	health_track_result(&t, &r);
	assert_int_equal(r.lost, 2);
	assert_int_equal(r.probe, HEALTH_PROBE_UP);	/* 2 < 3 in a row */
}

static void
test_never_answered(void **state)
{
	struct health_track t;
	struct health_result r;

	(void)state;
	memset(&t, 0, sizeof(t));
	health_track_sent(&t, 1, 0, 0);
	health_track_sent(&t, 2, 0, 1);
	health_track_expire(&t, 2000000, 1000000);
	health_track_result(&t, &r);
	/* Two lost, never an answer: still unknown, loss reported. */
	assert_int_equal(r.probe, HEALTH_PROBE_UNKNOWN);
	assert_int_equal(r.loss_permille, 1000);
}

static void
test_jitter(void **state)
{
	static const uint32_t rtt[] = { 1000, 1200, 1100, 1100 };
	/* RFC 3550 A.8 in integers: 12.5 -> 12, 17.97 -> 17, 16.85 -> 16. */
	static const uint32_t want[] = { 0, 12, 17, 16 };
	struct health_track t;
	struct health_result r;

	(void)state;
	memset(&t, 0, sizeof(t));
	for (uint16_t i = 0; i < 4; i++) {
		reply_at(&t, i + 1, i * 500000ull, rtt[i]);
		health_track_result(&t, &r);
		assert_int_equal(r.jitter_us, want[i]);
	}
	/* RTT alternating 1 ms / 2 ms: the estimate converges on 1 ms. */
	for (uint16_t i = 10; i < 400; i++)
		reply_at(&t, i, i * 500000ull, i % 2 ? 1000 : 2000);
	health_track_result(&t, &r);
	assert_true(r.jitter_us >= 950 && r.jitter_us <= 1000);
	assert_int_equal(r.rtt_us, 1500);
}

static void
test_refused(void **state)
{
	struct health_track t;
	struct health_result r;

	(void)state;
	memset(&t, 0, sizeof(t));
	health_track_sent(&t, 5, 42, 1000);
	assert_int_equal(health_track_reply(&t, 6, 42, 2000), -1);
	assert_int_equal(health_track_reply(&t, 5, 43, 2000), -1);
	assert_int_equal(health_track_reply(&t, 5 + HEALTH_WINDOW, 42, 2000),
	    -1);
	assert_int_equal(health_track_reply(&t, 5, 42, 2000), 0);
	assert_int_equal(health_track_reply(&t, 5, 42, 2500), -1);
	health_track_result(&t, &r);
	assert_int_equal(r.answered, 1);
	assert_int_equal(r.rtt_us, 1000);
	/* A stamp before the send (kernel vs. our clock) is 1 us, not huge. */
	health_track_sent(&t, 6, 1, 5000);
	assert_int_equal(health_track_reply(&t, 6, 1, 4990), 0);
	assert_int_equal(t.slot[6 % HEALTH_WINDOW].rtt_us, 1);
}

static void
test_up_rule(void **state)
{
	struct health_result r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.probe = HEALTH_PROBE_UNKNOWN;
	assert_true(health_up(true, HEALTH_BFD_NONE, &r));
	assert_true(health_up(true, HEALTH_BFD_NONE, NULL));
	assert_true(health_up(true, HEALTH_BFD_UP, &r));
	assert_false(health_up(false, HEALTH_BFD_UP, &r));
	assert_false(health_up(true, HEALTH_BFD_DOWN, &r));
	r.probe = HEALTH_PROBE_UP;
	assert_true(health_up(true, HEALTH_BFD_UP, &r));
	assert_false(health_up(true, HEALTH_BFD_DOWN, &r));
	r.probe = HEALTH_PROBE_DOWN;
	assert_false(health_up(true, HEALTH_BFD_UP, &r));
	assert_false(health_up(true, HEALTH_BFD_NONE, &r));
}

/* An IPv4 echo reply from 10.0.0.1, ident 0x1234, seq 7, 24 bytes. */
static size_t
make_reply(uint8_t *p)
{
	memset(p, 0, 52);
	p[0] = 0x45;
	p[3] = 52;
	p[8] = 64;
	p[9] = 1;			/* ICMP */
	p[12] = 10, p[15] = 1;
	p[16] = 10, p[19] = 2;
	p[20] = 0;			/* echo reply */
	p[24] = 0x12, p[25] = 0x34;
	p[27] = 7;
	memcpy(p + 28, "MWH1", 4);
	return 52;
}

static void
test_parse(void **state)
{
	uint8_t p[64], q[64];
	struct health_reply r;
	size_t n = make_reply(p);

	(void)state;
	assert_int_equal(health_parse_reply(p, n, &r), 0);
	assert_int_equal(r.ident, 0x1234);
	assert_int_equal(r.seq, 7);
	assert_int_equal(r.payload_len, HEALTH_PAYLOAD);
	assert_memory_equal(r.payload, "MWH1", 4);
	assert_int_equal(ntohl(r.src), 0x0a000001);
	/* Every truncation is refused. */
	for (size_t k = 0; k < n; k++)
		assert_int_equal(health_parse_reply(p, k, &r), -1);
	/* Bytes after the datagram (total length) are not payload. */
	assert_int_equal(health_parse_reply(p, sizeof(p), &r), 0);
	assert_int_equal(r.payload_len, HEALTH_PAYLOAD);

	memcpy(q, p, n);
	q[20] = 8;			/* echo request */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[21] = 1;			/* code */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[0] = 0x65;			/* version 6 */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[0] = 0x44;			/* IHL 16 bytes */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[0] = 0x4f;			/* IHL 60 > datagram */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[9] = 17;			/* UDP */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[6] = 0x20;			/* more fragments */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[7] = 1;			/* fragment offset */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[6] = 0x40;			/* DF is fine */
	assert_int_equal(health_parse_reply(q, n, &r), 0);
	memcpy(q, p, n);
	q[2] = 1;			/* total length beyond what was read */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
	memcpy(q, p, n);
	q[3] = 27;			/* shorter than an ICMP header */
	assert_int_equal(health_parse_reply(q, n, &r), -1);
}

/* The prober over loopback: the kernel answers our echo requests. */
static void
test_prober_loopback(void **state)
{
	struct health *h;
	struct health_tunnel t;
	struct health_result r;
	uint64_t end;

	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "test_prober_loopback needs root (raw socket)\n");
		fail();
	}
	h = health_new();
	assert_non_null(h);
	assert_true(health_fd(h) >= 0);
	assert_int_equal(health_timeout_ms(h, util_mono_ms()), -1);
	memset(&t, 0, sizeof(t));
	t.tunnel_id = 9;
	strcpy(t.ifname, "lo");
	t.local.family = t.peer.family = AF_INET;
	t.local.bytes[0] = t.peer.bytes[0] = 127;
	t.local.bytes[3] = t.peer.bytes[3] = 1;
	health_set(h, &t, 1);
	assert_int_equal(health_get(h, 8, &r), -1);
	/* Three probes, 0.5 s apart: all answered, measured. */
	end = util_mono_ms() + 1600;
	while (util_mono_ms() < end) {
		int w = health_timeout_ms(h, util_mono_ms());

		assert_true(w >= 0 && w <= HEALTH_TIMEOUT_MS);
		usleep(10000);
		(void)health_run(h, util_mono_ms());
	}
	assert_int_equal(health_get(h, 9, &r), 0);
	assert_int_equal(r.probe, HEALTH_PROBE_UP);
	assert_true(r.answered >= 3);
	assert_int_equal(r.lost, 0);
	assert_int_equal(r.loss_permille, 0);
	assert_true(r.rtt_us > 0 && r.rtt_us < 20000);

	/* Same set: history kept; a changed peer starts afresh. */
	health_set(h, &t, 1);
	assert_int_equal(health_get(h, 9, &r), 0);
	assert_true(r.answered >= 3);
	t.peer.bytes[3] = 2;
	health_set(h, &t, 1);
	assert_int_equal(health_get(h, 9, &r), 0);
	assert_int_equal(r.answered, 0);
	/* Not IPv4, no device: not probed. */
	t.local.family = AF_INET6;
	health_set(h, &t, 1);
	assert_int_equal(health_get(h, 9, &r), -1);
	health_set(h, NULL, 0);
	assert_int_equal(health_timeout_ms(h, util_mono_ms()), -1);
	health_free(h);
	health_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtt_loss),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_down_after),
		cmocka_unit_test(test_never_answered),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_up_rule),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_prober_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
