/*
 * replay.c — ESP anti-replay window with extended sequence number
 * inference (RFC 4303 §3.4.3, Appendix A).
 *
 * The bitmap is a ring indexed by seq % size, like Linux's
 * xfrm_replay_*_esn: moving the window right only clears the bits that
 * newly enter it, word by word, so a jump costs at most size/32 stores.
 */
#include <string.h>

#include "overlay/uesp/replay.h"

int
replay_init(struct replay_window *w, uint32_t size)
{
	memset(w, 0, sizeof(*w));
	if (size < REPLAY_WINDOW_MIN || size > REPLAY_WINDOW_MAX || size % 32)
		return -1;
	w->size = size;
	return 0;
}

static bool
replay_bit(const struct replay_window *w, uint64_t seq)
{
	uint32_t i = (uint32_t)(seq % w->size);

	return (w->bitmap[i / 32] >> (i % 32)) & 1;
}

/*
 * RFC 4303 A2.2: with only the low 32 bits on the wire, pick the high
 * 32 bits that put the number inside or right of the window.
 */
static bool
replay_infer(const struct replay_window *w, uint32_t seq_lo, uint64_t *seq64)
{
	uint32_t tl = (uint32_t)w->top, th = (uint32_t)(w->top >> 32);
	uint32_t bottom = tl - (w->size - 1);	/* may wrap: intended */
	uint32_t sh;

	if (tl >= w->size - 1) {
		/* Case A: window lies within one 2^32 block. */
		if (seq_lo >= bottom)
			sh = th;
		else if (th == UINT32_MAX)
			return false;	/* would be past 2^64 */
		else
			sh = th + 1;
	} else {
		/* Case B: window spans two blocks. */
		if (seq_lo >= bottom) {
			if (th == 0)
				return false;	/* before sequence 1 */
			sh = th - 1;
		} else {
			sh = th;
		}
	}
	*seq64 = (uint64_t)sh << 32 | seq_lo;
	return true;
}

bool
replay_check(const struct replay_window *w, uint32_t seq_lo, bool esn,
    uint64_t *seq64)
{
	uint64_t s;

	if (esn) {
		if (!replay_infer(w, seq_lo, &s))
			return false;
	} else {
		s = seq_lo;
	}
	if (s == 0)
		return false;	/* the first packet of an SA carries 1 */
	if (s > w->top) {
		*seq64 = s;
		return true;
	}
	if (w->top - s >= w->size)
		return false;	/* left of the window */
	if (replay_bit(w, s))
		return false;	/* duplicate */
	*seq64 = s;
	return true;
}

/* Clear `count` ring bits starting at sequence number `from`. */
static void
replay_clear(struct replay_window *w, uint64_t from, uint32_t count)
{
	uint32_t i = (uint32_t)(from % w->size);

	while (count > 0) {
		uint32_t bit = i % 32;
		uint32_t n = 32 - bit;

		if (n > count)
			n = count;
		if (n == 32)
			w->bitmap[i / 32] = 0;
		else
			w->bitmap[i / 32] &= ~(((1u << n) - 1) << bit);
		count -= n;
		i += n;
		if (i == w->size)
			i = 0;
	}
}

void
replay_update(struct replay_window *w, uint64_t seq64)
{
	uint32_t i;

	if (seq64 > w->top) {
		uint64_t diff = seq64 - w->top;

		if (diff >= w->size)
			memset(w->bitmap, 0, w->size / 8);
		else
			replay_clear(w, w->top + 1, (uint32_t)diff);
		w->top = seq64;
	} else if (w->top - seq64 >= w->size) {
		return;		/* left of the window: its slot is another's */
	}
	i = (uint32_t)(seq64 % w->size);
	w->bitmap[i / 32] |= 1u << (i % 32);
}
