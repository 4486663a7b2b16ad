/*
 * test_events.c — controller/events.c without a store or a server: the
 * event ring (ids, replay after Last-Event-ID, reset when an id is no
 * longer held, a slow stream cut when it falls out of the ring), the
 * stream limits, and the bounds of the tunnel health history (360
 * samples per tunnel end, one per 10 s slot, the last hour served, at
 * most EVENTS_HEALTH_TUNNELS tunnels).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "controller/events.h"

static unsigned wakes;

static void
count_wake(void *arg)
{
	(void)arg;
	wakes++;
}

static struct events *
hub(unsigned max, unsigned per)
{
	struct events_config c;
	struct events *ev;

	memset(&c, 0, sizeof(c));
	c.max_streams = max;
	c.max_streams_per_client = per;
	c.wake = count_wake;
	ev = events_new(&c);
	assert_non_null(ev);
	assert_int_equal(events_run(ev), 0);	/* no store: no thread */
	return ev;
}

/* Reads everything the stream has now into buf (NUL-terminated);
 * returns the reader's last result (0 = parked, -1 = ended). */
static long
drain(struct events_stream *s, char *buf, size_t sz)
{
	size_t used = 0;
	long n;

	while ((n = events_stream_read(s, buf + used, sz - used - 1 > 7 ?
	    7 : sz - used - 1)) > 0)	/* small reads: records split */
		used += (size_t)n;
	buf[used] = '\0';
	return n;
}

/* The ids and types of the records in text, as "ID TYPE;" pairs. */
static void
records(const char *text, char *out, size_t outsz)
{
	const char *p = text;
	char id[32] = "";

	out[0] = '\0';
	while ((p = strstr(p, "\n")) != NULL || text != NULL) {
		const char *line = text;

		if (line == NULL)
			break;
		if (strncmp(line, "id: ", 4) == 0)
			sscanf(line + 4, "%31s", id);
		else if (strncmp(line, "event: ", 7) == 0) {
			char t[16];

			sscanf(line + 7, "%15s", t);
			snprintf(out + strlen(out), outsz - strlen(out),
			    "%s %s;", id, t);
		}
		text = p != NULL ? p + 1 : NULL;
		if (p == NULL || *text == '\0')
			break;
		p = text;
	}
}

static uint64_t
first_id_of(const char *text)
{
	uint64_t id = 0;
	const char *p = strstr(text, "id: ");

	if (p != NULL)
		sscanf(p + 4, "%" SCNu64, &id);
	return id;
}

static void
test_replay_and_reset(void **state)
{
	struct events *ev = hub(0, 0);
	struct events_stream *a, *b, *c;
	static char buf[1 << 16];
	char rec[4096], want[4096];
	uint64_t base;
	long n;

	(void)state;
	assert_int_equal(events_stream_open(ev, "admin", "127.0.0.1", false, 0,
	    &a, NULL), EVENTS_OPEN_OK);
	assert_int_equal(drain(a, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "event: ready"));
	base = first_id_of(buf);	/* the id before the first event */
	wakes = 0;
	assert_int_equal(events_publish(ev, EVENTS_AUDIT, "{\"id\":1}"), 0);
	assert_int_equal(events_publish(ev, EVENTS_EDGE, "{\"site_id\":2}"), 0);
	assert_int_equal(events_publish(ev, EVENTS_SITE, "{\"id\":3}"), 0);
	assert_int_equal(wakes, 3);
	assert_int_equal(drain(a, buf, sizeof(buf)), 0);
	records(buf, rec, sizeof(rec));
	snprintf(want, sizeof(want), "%" PRIu64 " audit;%" PRIu64 " edge;%"
	    PRIu64 " site;", base + 1, base + 2, base + 3);
	assert_string_equal(rec, want);
	assert_non_null(strstr(buf, "data: {\"site_id\":2}\n\n"));

	/* Resume after the first: the other two, then ready comes first. */
	assert_int_equal(events_stream_open(ev, "admin", "127.0.0.1", true,
	    base + 1, &b, NULL), EVENTS_OPEN_OK);
	assert_int_equal(drain(b, buf, sizeof(buf)), 0);
	records(buf, rec, sizeof(rec));
	snprintf(want, sizeof(want), "%" PRIu64 " ready;%" PRIu64 " edge;%"
	    PRIu64 " site;", base + 1, base + 2, base + 3);
	assert_string_equal(rec, want);
	events_stream_free(b);

	/* An id below the ring, or one never given out: reset. */
	assert_int_equal(events_stream_open(ev, "admin", "127.0.0.1", true, 7,
	    &b, NULL), EVENTS_OPEN_OK);
	assert_int_equal(drain(b, buf, sizeof(buf)), 0);
	records(buf, rec, sizeof(rec));
	snprintf(want, sizeof(want), "%" PRIu64 " reset;", base + 3);
	assert_string_equal(rec, want);
	events_stream_free(b);
	assert_int_equal(events_stream_open(ev, "admin", "127.0.0.1", true,
	    base + 99, &b, NULL), EVENTS_OPEN_OK);
	assert_int_equal(drain(b, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "event: reset"));
	events_stream_free(b);

	/* Overflow the ring: the oldest ids go, a resume from them resets,
	 * and a stream that read nothing meanwhile is cut. */
	assert_int_equal(events_stream_open(ev, "ro", "127.0.0.2", true,
	    base + 3, &c, NULL), EVENTS_OPEN_OK);
	for (unsigned i = 0; i < EVENTS_RING + 10; i++)
		assert_int_equal(events_publish(ev, EVENTS_TUNNEL, "{}"), 0);
	n = drain(c, buf, sizeof(buf));
	assert_int_equal(n, -1);	/* ready, then cut */
	events_stream_free(c);
	assert_int_equal(events_stream_open(ev, "ro", "127.0.0.2", true,
	    base + 3, &c, NULL), EVENTS_OPEN_OK);
	assert_int_equal(drain(c, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "event: reset"));
	events_stream_free(c);
	/* The newest EVENTS_RING are all still there. */
	assert_int_equal(events_stream_open(ev, "ro", "127.0.0.2", true,
	    base + 3 + 10 + 1, &c, NULL), EVENTS_OPEN_OK);
	{
		unsigned got = 0;
		long r;
		char chunk[256];

		while ((r = events_stream_read(c, chunk, sizeof(chunk))) > 0)
			got += strstr(chunk, "event: tunnel") != NULL;
		assert_int_equal(r, 0);
		assert_int_equal(got, EVENTS_RING - 1);
	}
	events_stream_free(c);
	events_stream_free(a);
	events_free(ev);
}

static void
test_limits(void **state)
{
	struct events *ev = hub(3, 2);
	struct events_stream *s[4];
	const char *why = NULL;

	(void)state;
	assert_int_equal(events_stream_open(ev, "a", "10.0.0.1", false, 0, &s[0],
	    &why), EVENTS_OPEN_OK);
	assert_int_equal(events_stream_open(ev, "a", "10.0.0.2", false, 0, &s[1],
	    &why), EVENTS_OPEN_OK);
	assert_int_equal(events_stream_open(ev, "a", "10.0.0.3", false, 0, &s[2],
	    &why), EVENTS_OPEN_LIMIT);
	assert_string_equal(why, "this token's");
	assert_int_equal(events_stream_open(ev, "b", "10.0.0.1", false, 0, &s[2],
	    &why), EVENTS_OPEN_OK);
	assert_int_equal(events_stream_open(ev, "c", "10.0.0.9", false, 0, &s[3],
	    &why), EVENTS_OPEN_LIMIT);
	assert_string_equal(why, "the controller's");
	events_stream_free(s[1]);
	assert_int_equal(events_stream_open(ev, "c", "10.0.0.1", false, 0, &s[3],
	    &why), EVENTS_OPEN_LIMIT);
	assert_string_equal(why, "this address's");
	assert_int_equal(events_stream_open(ev, "c", "10.0.0.9", false, 0, &s[3],
	    &why), EVENTS_OPEN_OK);
	events_stream_free(s[0]);
	events_stream_free(s[2]);
	events_stream_free(s[3]);
	events_free(ev);
}

static void
test_health_bounds(void **state)
{
	struct events *ev = hub(0, 0);
	const int64_t t0 = 1800000000;	/* a multiple of 10 */
	json_t *j, *s;
	char *text;

	(void)state;
	/* Two hours of reports every 5 s from both ends: one per slot. */
	for (int64_t t = t0; t < t0 + 7200; t += 5) {
		assert_int_equal(events_health_add(ev, 7, 1, t, true,
		    (uint32_t)(t - t0), 3, 40), 0);
		assert_int_equal(events_health_add(ev, 7, 2, t, false, 500,
		    2000, 1), 0);
	}
	assert_int_equal(events_health_count(ev, 7),
	    2 * EVENTS_HEALTH_SAMPLES);
	/* A third end of the same tunnel is not tracked. */
	assert_int_equal(events_health_add(ev, 7, 3, t0 + 7200, true, 1, 1, 1),
	    -1);
	/* Older than what is held: ignored. */
	assert_int_equal(events_health_add(ev, 7, 1, t0, true, 1, 1, 1), -1);

	text = events_health_json(ev, 7, t0 + 7200);
	assert_non_null(text);
	j = json_loads(text, 0, NULL);
	free(text);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "tunnel_id")), 7);
	assert_int_equal(json_array_size(json_object_get(j, "series")), 2);
	s = json_array_get(json_object_get(j, "series"), 0);
	assert_int_equal(json_integer_value(json_object_get(s, "site_id")), 1);
	/* The last hour before now, oldest first, the slot's latest value. */
	assert_int_equal(json_array_size(json_object_get(s, "at")), 360);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(s,
	    "at"), 0)), t0 + 3605);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(s,
	    "rtt_us"), 359)), 7195);
	assert_int_equal(json_array_size(json_object_get(s, "jitter_us")), 360);
	json_decref(j);
	/* Half an hour later only the last half hour is served. */
	text = events_health_json(ev, 7, t0 + 7200 + 1800);
	assert_non_null(text);
	j = json_loads(text, 0, NULL);
	free(text);
	s = json_array_get(json_object_get(j, "series"), 0);
	assert_int_equal(json_array_size(json_object_get(s, "at")), 180);
	json_decref(j);
	text = events_health_json(ev, 7, t0 + 7200);
	j = json_loads(text, 0, NULL);
	free(text);
	s = json_array_get(json_object_get(j, "series"), 1);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(s,
	    "loss_permille"), 0)), 1000);	/* clamped */
	assert_true(json_is_false(json_array_get(json_object_get(s, "up"), 0)));
	json_decref(j);

	/* At most EVENTS_HEALTH_TUNNELS tunnels. */
	for (uint64_t id = 100; id < 100 + EVENTS_HEALTH_TUNNELS - 1; id++)
		assert_int_equal(events_health_add(ev, id, 1, t0, true, 1, 1, 1),
		    0);
	assert_int_equal(events_health_add(ev, 999999, 1, t0, true, 1, 1, 1),
	    -1);
	assert_int_equal(events_health_count(ev, 999999), 0);
	/* Deleted tunnels are forgotten, and their place is free. */
	{
		const uint64_t keep[] = { 7 };

		events_health_keep(ev, keep, 1);
	}
	assert_int_equal(events_health_count(ev, 100), 0);
	assert_int_equal(events_health_count(ev, 7), 2 * EVENTS_HEALTH_SAMPLES);
	assert_int_equal(events_health_add(ev, 999999, 1, t0, true, 1, 1, 1),
	    0);
	/* An unknown tunnel: an empty series list. */
	text = events_health_json(ev, 5, t0);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"series\":[]"));
	free(text);
	events_free(ev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_and_reset),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_health_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
