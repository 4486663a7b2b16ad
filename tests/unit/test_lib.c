/*
 * test_lib.c — unit tests of lib/: number parsing limits, bounded copies
 * (plain and printable-only), debug subsystem matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/backoff.h"
#include "lib/log.h"
#include "lib/util.h"

static void
test_parse_u64(void **state)
{
	uint64_t v = 7;

	assert_int_equal(util_parse_u64("65000", 64512, 65534, &v), 0);
	assert_int_equal(v, 65000);
	v = 7;
	assert_int_equal(util_parse_u64("65535", 64512, 65534, &v), -1);
	assert_int_equal(util_parse_u64("12x", 0, 100, &v), -1);
	assert_int_equal(util_parse_u64("", 0, 100, &v), -1);
	assert_int_equal(util_parse_u64("-1", 0, 100, &v), -1);
	assert_int_equal(util_parse_u64(" 1", 0, 100, &v), -1);
	assert_int_equal(util_parse_u64("18446744073709551616", 0, UINT64_MAX,
	    &v), -1);
	assert_int_equal(v, 7);
}

static void
test_strcpy(void **state)
{
	char buf[4];

	assert_int_equal(util_strcpy(buf, sizeof(buf), "abc"), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(util_strcpy(buf, sizeof(buf), "abcd"), -1);
	assert_string_equal(buf, "abc");
}

static void
test_printable(void **state)
{
	char buf[8], one[1];

	/* Control bytes, DEL and bytes >= 0x80 (signed or not) become '?'. */
	assert_string_equal(util_printable(buf, sizeof(buf), "a\x1b[2J\x7f\xc3"),
	    "a?[2J??");
	assert_string_equal(util_printable(buf, sizeof(buf), " ~\t\n"), " ~??");
	/* Bounded by the destination, always terminated. */
	assert_string_equal(util_printable(buf, sizeof(buf), "0123456789"),
	    "0123456");
	assert_ptr_equal(util_printable(one, sizeof(one), "abc"), one);
	assert_string_equal(one, "");
	assert_string_equal(util_printable(buf, sizeof(buf), NULL), "");
}

static void
test_hex(void **state)
{
	const uint8_t b[] = { 0x00, 0xab, 0xff };
	char out[7];

	util_hex(b, sizeof(b), out);
	assert_string_equal(out, "00abff");
}

static void
test_grow(void **state)
{
	size_t cap = 0;
	int *v = NULL, *nv;

	nv = util_grow(v, &cap, 1, sizeof(*v), 4);
	assert_non_null(nv);
	assert_int_equal(cap, 4);
	v = nv;
	/* Enough room: the same array back, cap unchanged. */
	assert_ptr_equal(util_grow(v, &cap, 4, sizeof(*v), 4), v);
	assert_int_equal(cap, 4);
	nv = util_grow(v, &cap, 9, sizeof(*v), 4);
	assert_non_null(nv);
	assert_int_equal(cap, 16);
	v = nv;
	v[15] = 7;
	/* Overflowing sizes are refused and leave the array alone. */
	assert_null(util_grow(v, &cap, SIZE_MAX / 2, sizeof(*v), 4));
	assert_int_equal(cap, 16);
	assert_int_equal(v[15], 7);
	free(v);
}

static void
test_size_class(void **state)
{
	assert_int_equal(util_size_class(0), 0);
	assert_int_equal(util_size_class(15), 15);
	assert_int_equal(util_size_class(16), 16);
	assert_int_equal(util_size_class(17), 18);
	assert_int_equal(util_size_class(999), 1024);
	assert_int_equal(util_size_class(1024), 1024);
	assert_int_equal(util_size_class(1025), 1152);
	/* Never below n, never more than 1/8 above it. */
	for (size_t n = 16; n < 70000; n += 7) {
		size_t c = util_size_class(n);

		assert_true(c >= n && c - n <= n / 8);
		/* One step holds every n up to its end. */
		assert_int_equal(util_size_class(c), c);
	}
	assert_int_equal(util_size_class(SIZE_MAX - 1), SIZE_MAX - 1);
}

static void
test_sort_unique(void **state)
{
	uint64_t v[] = { 7, UINT64_MAX, 3, 7, 0, 3, 3, UINT64_MAX };
	const uint64_t want[] = { 0, 3, 7, UINT64_MAX };
	uint64_t one = 5, x = 1, y = UINT64_MAX;
	size_t n = sizeof(v) / sizeof(v[0]), n1 = 1, n0 = 0;

	(void)state;
	/* No overflow in the comparison at the ends of the range. */
	assert_true(util_cmp_u64(&x, &y) < 0);
	assert_true(util_cmp_u64(&y, &x) > 0);
	assert_int_equal(util_cmp_u64(&x, &x), 0);
	util_sort_unique_u64(v, &n);
	assert_int_equal(n, 4);
	assert_memory_equal(v, want, sizeof(want));
	util_sort_unique_u64(&one, &n1);
	assert_int_equal(n1, 1);
	assert_int_equal(one, 5);
	util_sort_unique_u64(NULL, &n0);
	assert_int_equal(n0, 0);
}

static void
test_lower_bound(void **state)
{
	struct rec {
		char pad[3];
		uint64_t id;
	} r[] = { { "a", 2 }, { "b", 5 }, { "c", 5 }, { "d", 9 },
	    { "e", UINT64_MAX } };
	const size_t n = sizeof(r) / sizeof(r[0]), off = offsetof(struct rec, id);
	const uint64_t ids[] = { 0, 3, 7 };

	(void)state;
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 0), 0);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 2), 0);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 3), 1);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 5), 1);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 6), 3);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off, 9), 3);
	assert_int_equal(util_lower_bound_u64(r, n, sizeof(*r), off,
	    UINT64_MAX), 4);
	assert_int_equal(util_lower_bound_u64(r, 4, sizeof(*r), off,
	    UINT64_MAX), 4);
	assert_int_equal(util_lower_bound_u64(NULL, 0, sizeof(*r), off, 1), 0);
	/* A plain uint64_t array: size 8, offset 0. */
	assert_int_equal(util_lower_bound_u64(ids, 3, sizeof(*ids), 0, 4), 2);
	assert_int_equal(util_lower_bound_u64(ids, 3, sizeof(*ids), 0, 8), 3);
}

static void
test_debug_match(void **state)
{
	assert_false(log_debug_on("rpc"));
	assert_int_equal(log_setdebug("store,rpc"), 0);
	assert_true(log_debug_on("rpc"));
	assert_true(log_debug_on("store"));
	assert_false(log_debug_on("rp"));
	assert_false(log_debug_on("uesp"));
	assert_int_equal(log_setdebug("all"), 0);
	assert_true(log_debug_on("uesp"));
	assert_int_equal(log_setdebug(""), 0);
	assert_false(log_debug_on("uesp"));
}

/* Each delay lies in [floor, ceiling]; the ceiling doubles from 1 s to
 * the 30 s cap; a reset starts again from 1 s. */
static void
test_backoff_bounds(void **state)
{
	static const unsigned ceil[] = { 1000, 2000, 4000, 8000, 16000,
		30000, 30000, 30000 };
	struct backoff b = { 0 };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(ceil); i++) {
		struct backoff lo = b, hi = b;
		unsigned d = backoff_next(&b, 12345u * (unsigned)i);

		/* The whole window is reachable: full jitter. */
		assert_int_equal(backoff_next(&lo, 0), BACKOFF_FLOOR_MS);
		assert_int_equal(backoff_next(&hi,
		    ceil[i] - BACKOFF_FLOOR_MS), ceil[i]);
		assert_true(d >= BACKOFF_FLOOR_MS && d <= ceil[i]);
	}
	backoff_reset(&b);
	assert_true(backoff_next(&b, UINT32_MAX) <= 1000);
	assert_true(backoff_next(&b, UINT32_MAX) <= 2000);
}

/*
 * A crowd: 2,000 clients lose their server at the same moment and retry
 * for two minutes, each drawing its own delays.  From 10 s on, no second
 * sees more than a quarter of the crowd try at once: the herd spreads
 * out instead of staying in step (a +-20 % jitter around a doubling
 * base put 632 of the 2,000 in one second at 10 s, and 318 at 20 s).
 */
static void
test_backoff_crowd(void **state)
{
	enum { CROWD = 2000, SPAN_S = 120, FROM_S = 10 };
	static unsigned per_s[SPAN_S];
	uint64_t x = 0x9e3779b97f4a7c15ull;   /* xorshift64: reproducible */
	unsigned peak = 0, tries_min = UINT32_MAX;

	(void)state;
	memset(per_s, 0, sizeof(per_s));
	for (unsigned c = 0; c < CROWD; c++) {
		struct backoff b = { 0 };
		uint64_t t = 0;
		unsigned tries = 0;

		for (;;) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			t += backoff_next(&b, (uint32_t)(x >> 32));
			if (t >= SPAN_S * 1000ull)
				break;
			per_s[t / 1000]++;
			tries++;
		}
		tries_min = tries < tries_min ? tries : tries_min;
	}
	for (unsigned s = FROM_S; s < SPAN_S; s++)
		peak = per_s[s] > peak ? per_s[s] : peak;
	assert_true(peak <= CROWD / 4);
	/* Nobody gives up or waits past the cap: at least one attempt per
	 * 30 s after the first minute's doubling. */
	assert_true(tries_min >= 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_strcpy),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_size_class),
		cmocka_unit_test(test_sort_unique),
		cmocka_unit_test(test_lower_bound),
		cmocka_unit_test(test_debug_match),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_backoff_crowd),
	};

	log_init("test_lib", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
