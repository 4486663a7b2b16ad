/*
 * replay.h — the ESP anti-replay window (RFC 4303 §3.4.3 and Appendix A).
 *
 * Inbound ESP must refuse a packet it has already accepted and packets too
 * old to tell apart from replays.  The window remembers which of the last
 * `size` sequence numbers below the highest authenticated one were seen, in
 * a fixed bitmap (no allocation per packet).  With extended sequence
 * numbers only the low 32 bits travel on the wire; replay_check infers the
 * high 32 bits from the window as RFC 4303 Appendix A2.2 describes, and
 * that inferred number goes into the ICV check (it is part of the AAD), so
 * a wrong guess simply fails authentication.
 *
 * Use: replay_check before decrypting (cheap rejection of replays), then
 * verify the ICV with the returned 64-bit number, and only after the ICV
 * verified call replay_update — an unauthenticated packet must never move
 * the window.  A window is used by one thread at a time (the caller
 * serialises, as for the SA that holds it).
 */
#ifndef MESHWAN_REPLAY_H
#define MESHWAN_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define REPLAY_WINDOW_MIN 32
#define REPLAY_WINDOW_MAX 65536	/* packets */

struct replay_window {
	uint64_t top;		/* highest authenticated seq; 0 = none yet */
	uint32_t size;		/* window in packets, multiple of 32 */
	/* Ring of `size` bits: seq s is bit (s % size). */
	uint32_t bitmap[REPLAY_WINDOW_MAX / 32];
};

/*
 * size: REPLAY_WINDOW_MIN..REPLAY_WINDOW_MAX packets, a multiple of 32.
 * Returns 0, or -1 on a bad size (the window is then unusable).
 */
int replay_init(struct replay_window *w, uint32_t size);

/*
 * Decide whether a packet carrying the low 32 bits seq_lo may be accepted:
 * not a duplicate, not left of the window, not sequence number 0.  Without
 * ESN the sequence number is seq_lo itself; with ESN the high bits are
 * inferred (RFC 4303 A2.2).  On acceptance *seq64 is the full number to
 * authenticate.  Returns true if the packet may proceed to the ICV check.
 * Does not change the window.
 */
bool replay_check(const struct replay_window *w, uint32_t seq_lo, bool esn,
    uint64_t *seq64);

/*
 * Record seq64 as received; call only after the packet authenticated and
 * replay_check accepted it.  Moves the window right when seq64 is the new
 * highest number.
 */
void replay_update(struct replay_window *w, uint64_t seq64);

#endif
