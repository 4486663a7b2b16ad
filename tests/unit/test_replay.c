/*
 * test_replay.c — the anti-replay window and ESN inference (RFC 4303
 * §3.4.3, Appendix A): window edges, duplicates, very old packets, big
 * jumps, the wrap of the low 32 bits, and window sizes 1024 and 4096.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "overlay/uesp/replay.h"

/* check + update, as the ESP path does for an authentic packet. */
static bool
accept(struct replay_window *w, uint32_t lo, bool esn, uint64_t *s)
{
	if (!replay_check(w, lo, esn, s))
		return false;
	replay_update(w, *s);
	return true;
}

static void
test_init_sizes(void **state)
{
	struct replay_window w;

	(void)state;
	assert_int_equal(replay_init(&w, 32), 0);
	assert_int_equal(replay_init(&w, 1024), 0);
	assert_int_equal(replay_init(&w, 65536), 0);
	assert_int_equal(replay_init(&w, 0), -1);
	assert_int_equal(replay_init(&w, 16), -1);
	assert_int_equal(replay_init(&w, 1000), -1);	/* not a multiple of 32 */
	assert_int_equal(replay_init(&w, 65568), -1);
}

static void
test_zero_and_duplicates(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	assert_int_equal(replay_init(&w, 1024), 0);
	assert_false(replay_check(&w, 0, false, &s));	/* seq 0 never valid */
	assert_true(accept(&w, 1, false, &s));
	assert_int_equal(s, 1);
	assert_false(replay_check(&w, 1, false, &s));	/* duplicate */
	assert_true(accept(&w, 3, false, &s));
	assert_true(accept(&w, 2, false, &s));		/* late, in window */
	assert_false(replay_check(&w, 2, false, &s));
	assert_false(replay_check(&w, 3, false, &s));
	assert_true(replay_check(&w, 4, false, &s));
	/* replay_check alone does not record anything. */
	assert_true(replay_check(&w, 4, false, &s));
}

static void
edges(uint32_t size)
{
	struct replay_window w;
	uint64_t s, top = 5000;

	assert_int_equal(replay_init(&w, size), 0);
	assert_true(accept(&w, (uint32_t)top, false, &s));
	/* The window holds top-size+1 .. top: the left edge is accepted... */
	assert_true(replay_check(&w, (uint32_t)(top - size + 1), false, &s));
	/* ...one past it is too old. */
	assert_false(replay_check(&w, (uint32_t)(top - size), false, &s));
	assert_true(accept(&w, (uint32_t)(top - size + 1), false, &s));
	assert_false(replay_check(&w, (uint32_t)(top - size + 1), false, &s));
	/* Very old. */
	assert_false(replay_check(&w, 1, false, &s));
	/* Moving by one drops the old left edge out. */
	assert_true(accept(&w, (uint32_t)(top + 1), false, &s));
	assert_false(replay_check(&w, (uint32_t)(top - size + 1), false, &s));
	assert_true(replay_check(&w, (uint32_t)(top - size + 2), false, &s));
}

static void
test_edges_1024(void **state)
{
	(void)state;
	edges(1024);
}

static void
test_edges_4096(void **state)
{
	(void)state;
	edges(4096);
}

static void
test_every_slot(void **state)
{
	struct replay_window w;
	uint64_t s, i;

	(void)state;
	/* Fill a 4096 window out of order, then every number is a duplicate. */
	assert_int_equal(replay_init(&w, 4096), 0);
	assert_true(accept(&w, 10000, false, &s));
	for (i = 10000 - 4095; i < 10000; i += 2)
		assert_true(accept(&w, (uint32_t)i, false, &s));
	for (i = 10000 - 4094; i < 10000; i += 2)
		assert_true(accept(&w, (uint32_t)i, false, &s));
	for (i = 10000 - 4095; i <= 10000; i++)
		assert_false(replay_check(&w, (uint32_t)i, false, &s));
}

static void
test_big_jump(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	assert_int_equal(replay_init(&w, 1024), 0);
	assert_true(accept(&w, 100, false, &s));
	assert_true(accept(&w, 99, false, &s));
	/* Jump by more than the window: all old state is gone... */
	assert_true(accept(&w, 100 + 5000, false, &s));
	assert_false(replay_check(&w, 100, false, &s));
	/* ...and the new window has no stale bits from before. */
	assert_true(replay_check(&w, 5100 - 1023, false, &s));
	assert_true(replay_check(&w, 5099, false, &s));
	/* A jump shorter than the window keeps what is still inside. */
	assert_true(accept(&w, 5100 + 500, false, &s));
	assert_false(replay_check(&w, 5100, false, &s));
	assert_true(replay_check(&w, 5101, false, &s));
	/* A jump ending on the same ring slot clears it. */
	assert_true(accept(&w, 5600 + 1024, false, &s));
	assert_false(replay_check(&w, 5600, false, &s));
	assert_true(replay_check(&w, 5600 + 1, false, &s));
}

static void
test_no_esn_no_wrap(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	/* Without ESN the number is the 32-bit value: 1 after 0xffffffff is
	 * just very old. */
	assert_int_equal(replay_init(&w, 1024), 0);
	assert_true(accept(&w, 0xffffffffu, false, &s));
	assert_int_equal(s, 0xffffffffu);
	assert_false(replay_check(&w, 1, false, &s));
}

static void
test_esn_wrap(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	assert_int_equal(replay_init(&w, 1024), 0);
	w.top = 0xffffff00u;	/* as after a long run of packets */
	assert_true(accept(&w, 0xfffffff0u, true, &s));
	assert_int_equal(s, 0xfffffff0u);
	/* The low 32 bits wrap: 3 now means 2^32 + 3 (case A). */
	assert_true(replay_check(&w, 3, true, &s));
	assert_int_equal(s, 0x100000003ull);
	replay_update(&w, s);
	/* Now the window spans two blocks (case B): a late packet from
	 * before the wrap is inferred in the lower block and accepted. */
	assert_true(replay_check(&w, 0xfffffffeu, true, &s));
	assert_int_equal(s, 0xfffffffeull);
	replay_update(&w, s);
	assert_false(replay_check(&w, 0xfffffffeu, true, &s));
	assert_false(replay_check(&w, 0xfffffff0u, true, &s));
	assert_false(replay_check(&w, 3, true, &s));
	/* In the upper block going on. */
	assert_true(replay_check(&w, 4, true, &s));
	assert_int_equal(s, 0x100000004ull);
	/* A low value left of the window cannot be told from one far ahead:
	 * it is inferred forward (RFC 4303 A2.2) and the ICV, computed over
	 * the inferred high bits, rejects a real old packet. */
	assert_true(replay_check(&w, 0xfffff820u, true, &s));
	assert_int_equal(s, 0x1fffff820ull);
}

static void
test_esn_far_block(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	assert_int_equal(replay_init(&w, 1024), 0);
	w.top = 0xffffff00u;
	/* Top at 0x1_00000005; a low value left of the window is taken to
	 * be in the next block (RFC 4303 A2.2 case A) — authentication then
	 * decides. */
	assert_true(accept(&w, 0xfffffffau, true, &s));
	assert_true(accept(&w, 5, true, &s));
	assert_int_equal(s, 0x100000005ull);
	assert_true(accept(&w, 0x10000, true, &s));
	assert_int_equal(s, 0x100010000ull);
	assert_true(replay_check(&w, 2, true, &s));
	assert_int_equal(s, 0x200000002ull);
	/* Before anything was received, a number just below 2^32 cannot be
	 * in block -1. */
	assert_int_equal(replay_init(&w, 1024), 0);
	assert_false(replay_check(&w, 0xffffffffu, true, &s));
	assert_true(replay_check(&w, 1, true, &s));
	assert_int_equal(s, 1);
}

static void
test_esn_end_of_space(void **state)
{
	struct replay_window w;
	uint64_t s;

	(void)state;
	assert_int_equal(replay_init(&w, 1024), 0);
	w.top = UINT64_MAX - 1;		/* as after a long-lived SA */
	assert_true(accept(&w, 0xffffffffu, true, &s));
	assert_int_equal(s, UINT64_MAX);
	/* Nothing lies beyond 2^64 - 1. */
	assert_false(replay_check(&w, 1, true, &s));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_sizes),
		cmocka_unit_test(test_zero_and_duplicates),
		cmocka_unit_test(test_edges_1024),
		cmocka_unit_test(test_edges_4096),
		cmocka_unit_test(test_every_slot),
		cmocka_unit_test(test_big_jump),
		cmocka_unit_test(test_no_esn_no_wrap),
		cmocka_unit_test(test_esn_wrap),
		cmocka_unit_test(test_esn_far_block),
		cmocka_unit_test(test_esn_end_of_space),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
