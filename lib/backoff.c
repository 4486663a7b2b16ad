/*
 * backoff.c — full-jitter reconnect delays (see backoff.h).
 */
#include "lib/backoff.h"

unsigned
backoff_next(struct backoff *b, uint32_t rnd)
{
	unsigned ceil;

	if (b->ceil_ms < BACKOFF_FIRST_MS)
		b->ceil_ms = BACKOFF_FIRST_MS;
	ceil = b->ceil_ms;
	b->ceil_ms = ceil >= BACKOFF_CAP_MS / 2 ? BACKOFF_CAP_MS : ceil * 2;
	return BACKOFF_FLOOR_MS +
	    (unsigned)(rnd % (ceil - BACKOFF_FLOOR_MS + 1));
}

void
backoff_reset(struct backoff *b)
{
	b->ceil_ms = 0;
}
