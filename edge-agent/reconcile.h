/*
 * reconcile.h — turns the site's intent into tunnels and SAs, through
 * overlay.h only (issue 9 §4; style.md "Reconcile, don't patch").
 *
 * Desired state: a struct msg_intent (proto/msg.h) plus, per SA, key
 * material from a key-provider callback (the agent derives it with
 * proto/sakey; tests give fixed keys).  Each msg_tunnel maps to one
 * overlay_tunnel_params (reconcile_tunnel_params()) and to at most one
 * inbound and one outbound SA: the ones Tunnel.sa_in / sa_out name (an
 * SaKeyRef whose key epochs are 0 names no SA yet: nothing is installed
 * for it, and a RekeyOrder without key epochs is refused).
 *
 * The allowed inner sources of a tunnel come from a callback (the same
 * per-peer lists as the FRR filters; none = the peer's tunnel address
 * only).  SA lifetimes come from the crypto profile: soft =
 * rekey_seconds/bytes/packets (reported; the controller rekeys), hard time
 * = soft time + the headless grace, so a headless edge keeps forwarding
 * (design.md §4).  A lifetime change is an in-place sa_update.
 *
 * reconcile_apply() works in three stages:
 *  1. Validate everything before touching anything: the intent's limits,
 *     each tunnel's link, its parameters (overlay_*_params_check), device
 *     names and inbound SPIs unique across the site, and the key of every
 *     SA it must add (the provider is asked now; keys are held in the plan
 *     and wiped after).  Any error: nothing is touched, the result names
 *     the first problem.
 *  2. Plan the difference against the reconciler's own record of what it
 *     installed (no backend query): tunnels to add, to update in place
 *     (overlay_tunnel_needs_remake() false), to remake (delete and add),
 *     to remove; SAs to add, switch to, and delete.  An unchanged tunnel
 *     gets no call at all, so its SAs and counters keep running, and the
 *     same intent applied twice makes zero backend calls.
 *  3. Execute the plan step by step, journalled.  Steps that can be undone
 *     exactly run first (adds, in-place updates, outbound switches), the
 *     ones that destroy an outbound key last (SA deletions, tunnel
 *     deletions, remakes).  A failed step undoes every earlier step in
 *     reverse, so the backend is back at the last good state.  The one
 *     thing an undo cannot bring back is a deleted outbound SA: its key may
 *     never be installed twice (AES-GCM nonce rule, overlay.h "Nonces"),
 *     so such a tunnel is left without an outbound SA (failing closed) and
 *     the reason says "rollback incomplete"; it needs a rekey.  Only a
 *     failure during the last, destroying steps can cause it.
 *
 * SAs in steady state and during a rekey.  reconcile_apply() ensures the
 * intent's SAs; the controller's RekeyOrder steps go through
 * reconcile_rekey_step() (make-before-break, proto/README.md "Rekey"):
 *  - INSTALL_INBOUND adds the new inbound SA next to the current one;
 *  - SWITCH_OUTBOUND adds the new outbound SA, switches to it and deletes
 *    the old outbound SAs (an inactive outbound SA carries nothing);
 *  - RETIRE deletes an old inbound SA.  The drain is the caller's: call it
 *    once drain_seconds have passed, then ack.
 * Between a step and the intent version that names its result, apply must
 * not undo the step, so per direction it keeps SAs whose SA epoch is newer
 * than the intent's (installed by a rekey step, ahead of the intent) and,
 * inbound, the one of the epoch just before the intent's (draining, until
 * RETIRE).  Every other SA the intent does not name is deleted; an
 * outbound SA ahead of the intent stays the active one.
 *
 * Nonces: the reconciler remembers which outbound SAs (tunnel, SPI, SA
 * epoch, key epochs) it installed in this process and refuses to install
 * one of them again (validation error, nothing touched): the same inputs
 * derive the same key.  A change that needs a remake (local address,
 * encapsulation, VNI, inner addresses) therefore needs a new outbound SA
 * epoch from the controller.
 *
 * Device names: prefix + tunnel id in decimal ("mw17"); an id too long for
 * IFNAMSIZ gets prefix + "-" + the id in base 62 (at most 11 characters),
 * so names are unique per id and fit any id with a prefix of up to 3.
 *
 * Restart: reconcile_adopt() fills the record from an intent the backend
 * already holds (a kernel backend keeps its state across an agent
 * restart), checking each tunnel and its active outbound SPI with
 * tunnel_stats but installing nothing.  With uesp the backend restarts
 * with the agent, empty, and the agent calls reconcile_apply() with its
 * cached intent instead (the backend's sequence reservations make the
 * re-added outbound keys safe).
 *
 * Threads: one reconciler per backend instance, used from the agent's
 * reconcile loop only (as overlay.h requires).  Key bytes are never
 * logged nor put into a reason; the plan's copies are wiped.
 */
#ifndef MESHWAN_RECONCILE_H
#define MESHWAN_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay/overlay.h"
#include "proto/msg.h"

#define RECONCILE_SAS_MAX	8	/* SAs per tunnel, both directions */
#define RECONCILE_PREFIX_MAX	3	/* device name prefix length */
#define RECONCILE_OUTER_MTU	1500	/* when the caller gives none */

/* What names one SA's key: its direction, SPI, SA epoch and the X25519
 * key epochs of sender and receiver (proto/README.md "SA keys"). */
struct reconcile_sa_ref {
	enum overlay_dir dir;
	uint32_t spi;
	uint64_t sa_epoch;
	uint64_t sender_key_epoch;
	uint64_t receiver_key_epoch;
};

/*
 * Key provider: fill out->key and out->salt (the reconciler has set every
 * other field from the tunnel's crypto profile and may not be changed but
 * for cipher, which must stay what the profile says).  Return 0, or -1
 * with a short reason in err (no key bytes) when the key is not available
 * (peer key unknown, signature bad, ...).
 */
typedef int (*reconcile_key_fn)(void *arg, const struct msg_tunnel *t,
    const struct reconcile_sa_ref *ref, struct overlay_sa_params *out,
    char *err, size_t errlen);

/* Outer MTU of a WAN link by name; 0 = RECONCILE_OUTER_MTU. */
typedef uint32_t (*reconcile_mtu_fn)(void *arg, const char *link);

/*
 * Inner source prefixes tunnel t's peer may send from (overlay.h "Inner
 * sources"): the same per-peer lists the FRR driver's inbound filters use
 * (its LAN prefixes, or what a hub carries).  Fill out[0..max) and *n;
 * 0, or -1 with a reason in err.  Without a callback every tunnel accepts
 * only its peer's tunnel address (fail closed).
 */
typedef int (*reconcile_allowed_fn)(void *arg, const struct msg_tunnel *t,
    struct overlay_prefix *out, unsigned max, unsigned *n, char *err,
    size_t errlen);

/*
 * The reconcile_allowed_fn of the agent: the tunnel's
 * peer.allowed_prefixes, as the controller sent them (arg unused).  A
 * list longer than max fails (the backend cannot hold it).
 */
int reconcile_allowed_from_intent(void *arg, const struct msg_tunnel *t,
    struct overlay_prefix *out, unsigned max, unsigned *n, char *err,
    size_t errlen);

struct reconcile_config {
	const struct overlay_ops *ops;	/* the backend; not owned */
	void *octx;			/* its instance; not owned */
	reconcile_key_fn key;		/* required */
	void *key_arg;
	reconcile_mtu_fn link_mtu;	/* NULL = RECONCILE_OUTER_MTU */
	void *mtu_arg;
	reconcile_allowed_fn allowed;	/* NULL = peer's tunnel address only */
	void *allowed_arg;
	const char *ifprefix;		/* [a-z0-9], 1..3 chars; NULL = "mw" */
};

struct reconcile_result {
	uint64_t version;		/* the intent's (0 for a rekey step) */
	bool ok;
	char reason[MSG_REASON_MAX + 1]; /* "" when ok; for Ack.reason */
	unsigned calls;			/* mutating backend calls made, undo included */
	bool rollback_incomplete;	/* see stage 3 above */
};

/* What the reconciler installed for one tunnel (its record). */
struct reconcile_tunnel {
	struct overlay_tunnel_params p;
	struct reconcile_sa_ref sas[RECONCILE_SAS_MAX];
	struct overlay_lifetime soft[RECONCILE_SAS_MAX];
	struct overlay_lifetime hard[RECONCILE_SAS_MAX];
	unsigned nsas;
	uint32_t spi_out_active;	/* 0 = none */
};

struct reconcile;

/* NULL on bad config or ENOMEM (logged).  Owns nothing of cfg. */
struct reconcile *reconcile_new(const struct reconcile_config *cfg);
/* Frees the record; leaves the backend as it is.  NULL ok. */
void reconcile_free(struct reconcile *r);

/* Make the backend hold `in` (see above).  *res is always filled. */
int reconcile_apply(struct reconcile *r, const struct msg_intent *in,
    struct reconcile_result *res);

/*
 * One RekeyOrder step for a tunnel of the last applied intent (which
 * gives the crypto profile and the peer for the key).  Repeating a step
 * that already took effect is ok and makes no call.  0 / -1, *res filled.
 */
int reconcile_rekey_step(struct reconcile *r, const struct msg_rekey_order *o,
    struct reconcile_result *res);

/* Record an intent the backend already holds (restart); 0 or -1 + reason. */
int reconcile_adopt(struct reconcile *r, const struct msg_intent *in,
    struct reconcile_result *res);

/* The record, tunnels by ascending id; pointers valid until the next
 * apply, rekey step or adopt on r. */
size_t reconcile_ntunnels(const struct reconcile *r);
const struct reconcile_tunnel *reconcile_tunnel_get(const struct reconcile *r,
    size_t i);
const struct reconcile_tunnel *reconcile_tunnel_find(const struct reconcile *r,
    uint64_t id);
/*
 * NAT rebinding: re-point tunnel id at remote/port, the endpoint its
 * peer's authenticated traffic now comes from (overlay_tunnel_stats
 * moved_*; when to follow is the caller's decision), with tunnel_update:
 * SAs and counters stay.  The record keeps it, and later applies treat
 * it as the tunnel's remote for as long as the intent still names the
 * endpoint it replaced; once the intent's own endpoint changes, the
 * intent wins.  0, -ENOENT, -EINVAL, or the backend's error (then the
 * record is unchanged).
 */
int reconcile_tunnel_move(struct reconcile *r, uint64_t id,
    const struct overlay_addr *remote, uint16_t port);

/* Version of the last intent applied or adopted; 0 = none. */
uint64_t reconcile_version(const struct reconcile *r);

/*
 * Pure helpers, exposed for tests and the agent's status:
 * the inner MTU for an outer MTU (family AF_INET/AF_INET6), 0 if too
 * small; the device name of a tunnel id; a msg_tunnel's overlay
 * parameters (0, or -1 with err).
 */
uint32_t reconcile_inner_mtu(uint32_t outer_mtu, int family,
    enum overlay_encap encap);
int reconcile_ifname(const char *prefix, uint64_t id, char out[IFNAMSIZ]);
int reconcile_tunnel_params(const struct msg_site *site,
    const struct msg_tunnel *t, const char *ifprefix, uint32_t outer_mtu,
    struct overlay_tunnel_params *out, char *err, size_t errlen);
/* The SAs a tunnel's intent names (spi 0 = none in that direction). */
void reconcile_intent_sas(const struct msg_tunnel *t,
    struct reconcile_sa_ref *in, struct reconcile_sa_ref *out);

#endif
