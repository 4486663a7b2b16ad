/*
 * uesp_seq.h — the sequence reservation file of the uesp backend: how an
 * outbound key that comes back after a restart never reuses a nonce.
 *
 * AES-GCM's nonce here is the ESP sequence number (esp.h), so a key must
 * never seal the same number twice, not even across a crash.  Like
 * strongSwan's HA plugin, uesp does not write every number: before an SA
 * sends beyond its reservation `limit`, a higher mark (limit + step) is
 * written to the file and fsynced.  After a restart, a key found in the
 * file starts above its last mark, which is at least every number it may
 * have sent.  The cost is a jump of up to one step per restart and one
 * fsync per step of packets, done by this module's own thread well ahead
 * of need (at half a step left), never on a worker's packet path.  A
 * worker that catches up with its reservation (the disk is slower than
 * the link) drops, counted as no_sa, until the mark is on disk.
 *
 * The file holds no keys: records are indexed by SHA-256 over a
 * domain-separation label, the cipher, the key and the salt, truncated to
 * 128 bits.  Keys are 128 or 256 bits of HKDF output (or random), so the
 * digest reveals nothing that a search could use; it only lets someone who
 * already holds a key see that it was used.  It must be unkeyed (or keyed
 * by something that outlives the process) to be found again after a
 * restart.  Format and limits: overlay/uesp/README.md.
 *
 * Threads: uesp_seq_acquire/release/close are called by the control
 * thread; uesp_seq_allow by the worker owning the SA; the module's thread
 * writes marks.  A reservation's limit is an atomic, the only state the
 * three share without the module's lock.
 */
#ifndef MESHWAN_UESP_SEQ_H
#define MESHWAN_UESP_SEQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "overlay/overlay.h"

#define UESP_SEQ_STEP		((uint64_t)1 << 20)	/* numbers per fsync */
#define UESP_SEQ_SLOTS_MAX	(1u << 18)	/* keys the file remembers */

struct uesp_seq;

/* One live outbound SA's reservation. */
struct uesp_seq_res {
	_Atomic uint64_t limit;	/* highest number that may be sent */
	atomic_bool want;	/* the worker asked for more */
	uint64_t max;		/* the SA's last usable number */
	uint64_t step;		/* the file's step (uesp_seq_open_step) */
	uint32_t slot;		/* record index in the file */
	int evfd;		/* wakes the writer thread */
	struct uesp_seq *s;
};

/*
 * Open (creating, mode 0600) and lock the file, read its marks, start the
 * writer thread.  NULL on failure (logged): a file locked by another
 * process, unreadable, or of another format.
 */
struct uesp_seq *uesp_seq_open(const char *path);
/*
 * The same with numbers per mark `step` (> 1) instead of UESP_SEQ_STEP:
 * the kernel backend, which cannot be held at a limit, reserves in big
 * steps (overlay/xfrm/README.md, "Sequence numbers across reboots").
 */
struct uesp_seq *uesp_seq_open_step(const char *path, uint64_t step);
/* Stop the thread and close; reservations must have been released.  NULL ok. */
void uesp_seq_close(struct uesp_seq *s);

/*
 * A new outbound SA with p's key: its first number is above both
 * p->seq_start and the file's mark for that key; the first reservation is
 * on disk before this returns.  0 with *res and *start (the SA's seq_start);
 * -EOVERFLOW (the key's sequence space is used up), -EEXIST (a live SA of
 * this instance holds the key), -EIO (write or fsync failed; record
 * damaged), -ENOMEM.  Logged.
 */
int uesp_seq_acquire(struct uesp_seq *s, const struct overlay_sa_params *p,
    struct uesp_seq_res **res, uint64_t *start);
/*
 * The same without the fsync, for many SAs at once (xfrm's sa_add_batch):
 * the reservation is written but on disk only after uesp_seq_sync, which
 * the caller must call, and see succeed, before any SA reserved this way
 * sends.  If it fails, the caller releases those reservations.
 */
int uesp_seq_acquire_nosync(struct uesp_seq *s,
    const struct overlay_sa_params *p, struct uesp_seq_res **res,
    uint64_t *start);
/* One fsync for what uesp_seq_acquire_nosync wrote: 0 or -EIO (logged). */
int uesp_seq_sync(struct uesp_seq *s);
/* The SA is gone (its mark stays in the file).  NULL ok. */
void uesp_seq_release(struct uesp_seq_res *r);

/* Worker side: ask the writer for the next step (at most once in flight). */
void uesp_seq_ask(struct uesp_seq_res *r);

/*
 * Worker side, per packet: may number `seq` be sent?  Asks for the next
 * step once less than half a step is left.
 */
static inline bool
uesp_seq_allow(struct uesp_seq_res *r, uint64_t seq)
{
	uint64_t lim = atomic_load_explicit(&r->limit, memory_order_acquire);

	if (lim - (lim < seq ? lim : seq) < r->step / 2 && lim < r->max &&
	    !atomic_load_explicit(&r->want, memory_order_relaxed))
		uesp_seq_ask(r);
	return seq <= lim;
}

/* fsyncs done and their cost, for logs and tests. */
struct uesp_seq_stats {
	uint64_t fsyncs;
	uint64_t fsync_ns_total, fsync_ns_max;
	unsigned slots;		/* records in the file */
};
void uesp_seq_stats(struct uesp_seq *s, struct uesp_seq_stats *out);

#endif
