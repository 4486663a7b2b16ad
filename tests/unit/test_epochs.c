/*
 * test_epochs.c — the epoch cache against a plain sorted array: random
 * inserts, removals, tunnel drops and reloads must leave the same epochs
 * (per tunnel, in (sender, epoch) order), and the walk must visit each
 * tunnel once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "controller/epochs.h"

#define REF_MAX 20000

struct ref {
	struct model_epoch v[REF_MAX];
	size_t n;
};

static int
ref_cmp(const void *a, const void *b)
{
	const struct model_epoch *x = a, *y = b;

	if (x->tunnel_id != y->tunnel_id)
		return x->tunnel_id < y->tunnel_id ? -1 : 1;
	if (x->sender_site != y->sender_site)
		return x->sender_site < y->sender_site ? -1 : 1;
	if (x->epoch != y->epoch)
		return x->epoch < y->epoch ? -1 : 1;
	return 0;
}

static struct model_epoch *
ref_find(struct ref *r, uint64_t t, uint64_t s, uint64_t e)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].tunnel_id == t && r->v[i].sender_site == s &&
		    r->v[i].epoch == e)
			return &r->v[i];
	return NULL;
}

/* Every tunnel's list equals the reference's, and nothing else is there. */
static void
check_same(struct epochs *ep, struct ref *r)
{
	size_t i = 0, cursor = 0, n, seen = 0, tunnels = 0;
	struct model_epoch *v;

	qsort(r->v, r->n, sizeof(r->v[0]), ref_cmp);
	assert_int_equal(epochs_count(ep), r->n);
	while (i < r->n) {
		size_t j = i;

		while (j < r->n && r->v[j].tunnel_id == r->v[i].tunnel_id)
			j++;
		v = epochs_of(ep, r->v[i].tunnel_id, &n);
		assert_non_null(v);
		assert_int_equal(n, j - i);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(ref_cmp(&v[k], &r->v[i + k]), 0);
		tunnels++;
		i = j;
	}
	while ((v = epochs_next(ep, &cursor, &n)) != NULL) {
		assert_true(n > 0);
		seen++;
	}
	assert_int_equal(seen, tunnels);
}

static void
test_random_ops(void **state)
{
	struct ref *r = calloc(1, sizeof(*r));
	struct epochs *ep = epochs_new();
	unsigned seed = 7;

	(void)state;
	assert_non_null(r);
	assert_non_null(ep);
	for (int round = 0; round < 40000; round++) {
		int op = rand_r(&seed) % 10;
		struct model_epoch e = { 0 };

		e.tunnel_id = 1 + (uint64_t)(rand_r(&seed) % 3000);
		e.sender_site = 1 + (uint64_t)(rand_r(&seed) % 2);
		e.epoch = 1 + (uint64_t)(rand_r(&seed) % 4);
		e.spi = (uint32_t)round;
		if (op < 6) {
			bool had = ref_find(r, e.tunnel_id, e.sender_site,
			    e.epoch) != NULL;

			assert_int_equal(epochs_insert(ep, &e), had ? -1 : 0);
			if (!had && r->n < REF_MAX)
				r->v[r->n++] = e;
			else if (!had)
				assert_int_equal(epochs_remove(ep, e.tunnel_id,
				    e.sender_site, e.epoch), 0);
		} else if (op < 9) {
			struct model_epoch *x = ref_find(r, e.tunnel_id,
			    e.sender_site, e.epoch);

			assert_int_equal(epochs_remove(ep, e.tunnel_id,
			    e.sender_site, e.epoch), x != NULL ? 0 : -1);
			if (x != NULL)
				*x = r->v[--r->n];
		} else {
			size_t w = 0;

			epochs_drop_tunnel(ep, e.tunnel_id);
			for (size_t i = 0; i < r->n; i++)
				if (r->v[i].tunnel_id != e.tunnel_id)
					r->v[w++] = r->v[i];
			r->n = w;
		}
		if (round % 5000 == 0)
			check_same(ep, r);
	}
	check_same(ep, r);
	/* A found epoch's fields can be changed in place. */
	if (r->n > 0) {
		struct model_epoch *x = epochs_find(ep, r->v[0].tunnel_id,
		    r->v[0].sender_site, r->v[0].epoch);

		assert_non_null(x);
		x->state = MODEL_EPOCH_DRAINING;
		r->v[0].state = MODEL_EPOCH_DRAINING;
		check_same(ep, r);
	}
	/* A reload from an unordered copy gives the same cache. */
	{
		size_t n = r->n;
		struct model_epoch *copy = malloc(n * sizeof(*copy) + 1);

		assert_non_null(copy);
		for (size_t i = 0; i < n; i++)
			copy[i] = r->v[n - 1 - i];
		assert_int_equal(epochs_load(ep, copy, n), 0);
		check_same(ep, r);
		/* The same epoch twice is refused and changes nothing. */
		if (n > 1) {
			copy[1] = copy[0];
			assert_int_equal(epochs_load(ep, copy, n), -1);
			check_same(ep, r);
		}
		free(copy);
	}
	assert_int_equal(epochs_load(ep, NULL, 0), 0);
	assert_int_equal(epochs_count(ep), 0);
	assert_null(epochs_find(ep, 1, 1, 1));
	epochs_free(ep);
	epochs_free(NULL);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_ops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
