/*
 * test_enroll_rl.c — the per-source rate limit in front of Enroll and
 * Renew (controller/enroll.c): a burst, then the refill rate; the port
 * does not make a new source; sources are independent; the table stays
 * bounded under many addresses and a busy source keeps its slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "controller/enroll.h"

static int
take_n(struct enroll_rl *rl, const char *addr, uint64_t now, int n)
{
	int ok = 0;

	for (int i = 0; i < n; i++)
		ok += enroll_rl_take(rl, addr, now, 5, 20);
	return ok;
}

static void
test_burst_and_rate(void **state)
{
	struct enroll_rl *rl = enroll_rl_new();

	(void)state;
	assert_non_null(rl);
	/* 20 at once, not 21; other ports of the same address share it. */
	assert_int_equal(take_n(rl, "ipv4:192.0.2.1:1000", 1000, 20), 20);
	assert_int_equal(enroll_rl_take(rl, "ipv4:192.0.2.1:2000", 1000, 5,
	    20), 0);
	/* Another address has its own bucket. */
	assert_int_equal(take_n(rl, "ipv6:[2001:db8::1]:1000", 1000, 25),
	    20);
	/* 5 per second come back: after 1 s five more, not six. */
	assert_int_equal(take_n(rl, "ipv4:192.0.2.1:3000", 2000, 6), 5);
	/* Never more than the burst after a long pause. */
	assert_int_equal(take_n(rl, "ipv4:192.0.2.1:3000", 100000, 30), 20);
	/* rate 0: no limit. */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(enroll_rl_take(rl, "ipv4:192.0.2.9:1", 5, 0,
		    20), 1);
	enroll_rl_free(rl);
}

static void
test_bounded(void **state)
{
	struct enroll_rl *rl = enroll_rl_new();
	char addr[64];
	uint64_t now = 1000;

	(void)state;
	assert_non_null(rl);
	/* A busy source used up its burst ... */
	assert_int_equal(take_n(rl, "ipv4:198.51.100.7:1", now, 20), 20);
	/* ... while 100,000 other addresses come and go (the table has
	 * ENROLL_RL_SLOTS slots): the busy one keeps calling and stays in
	 * debt, so it keeps its empty bucket instead of getting a fresh
	 * one (the one-shot addresses' buckets are fuller). */
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "ipv4:10.%u.%u.%u:9", i >> 16,
		    (i >> 8) & 255, i & 255);
		(void)enroll_rl_take(rl, addr, now, 5, 20);
		if (i % 64 == 0)
			assert_int_equal(enroll_rl_take(rl,
			    "ipv4:198.51.100.7:1", now, 5, 20), 0);
	}
	enroll_rl_free(rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_and_rate),
		cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
