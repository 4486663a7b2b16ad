/*
 * backoff.h — the reconnect schedule of every meshwan client (the edge's
 * session and enrollment streams, through proto/rpc.c, and the load
 * generator, which runs the same code).
 *
 * "Full jitter": the n-th delay is drawn uniformly from
 * [BACKOFF_FLOOR_MS, ceiling], the ceiling doubling from BACKOFF_FIRST_MS
 * up to BACKOFF_CAP_MS.  A crowd that lost its controller at the same
 * moment (a restart) therefore spreads its attempts over the whole window
 * instead of arriving together, attempt after attempt, as it did with a
 * +-20 % jitter around a doubling base (2,000 edges stayed in lock-step
 * and overran the controller's handshakes for 150 s).  The mean delay is
 * about half the ceiling, as before; the floor keeps a refused client
 * from retrying in a tight loop.
 */
#ifndef MESHWAN_BACKOFF_H
#define MESHWAN_BACKOFF_H

#include <stdint.h>

#define BACKOFF_FLOOR_MS 250
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_CAP_MS 30000

struct backoff {
	unsigned ceil_ms; /* the next delay's ceiling; 0 = not started */
};

/* The next delay in ms, in [BACKOFF_FLOOR_MS, the ceiling], and doubles
 * the ceiling (up to the cap).  rnd is any random 32-bit value: a pure
 * function of b and rnd. */
unsigned backoff_next(struct backoff *b, uint32_t rnd);
/* After a success: the next delay starts from BACKOFF_FIRST_MS again. */
void backoff_reset(struct backoff *b);

#endif
