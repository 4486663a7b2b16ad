/*
 * xfrm_ev.h — the kernel's XFRM events for the xfrm backend: soft/hard
 * expiry (XFRM_MSG_EXPIRE) and NAT mappings (XFRM_MSG_MAPPING).
 *
 * A monitor thread owns the event socket (XFRMNLGRP_EXPIRE and
 * XFRMNLGRP_MAPPING), parses what arrives into a bounded queue and makes
 * the backend's moved_fd readable when a mapping arrives; the backend's
 * own thread takes the queue at its next stats call and applies it to
 * its tunnels.  The thread touches nothing but the queue, so the
 * backend's tunnels and SAs need no lock.  Bounds are in README.md
 * ("Events: soft expiry and NAT mappings").  Only overlay/xfrm/
 * includes this.
 */
#ifndef MESHWAN_XFRM_EV_H
#define MESHWAN_XFRM_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/netlink.h>

#include "overlay/overlay.h"

#define XFRM_EV_QUEUE		256	/* events held for the stats calls */
#define XFRM_EV_SIGNAL_MS	100	/* moved_fd: at most one wake-up per */
#define XFRM_MOVED_HOLD_MS	1000	/* a tunnel notes a new endpoint at most
					 * once per (newer ones wait) */

/* One event, validated; addresses and ports as the kernel gave them. */
struct xfrm_ev {
	int type;			/* XFRM_MSG_EXPIRE or XFRM_MSG_MAPPING */
	struct overlay_addr daddr;	/* the SA's destination */
	uint32_t spi;			/* host order */
	uint32_t reqid;
	bool hard;			/* EXPIRE: hard (else soft) */
	/* MAPPING: the SA's peer endpoint, and where the packet came from */
	struct overlay_addr old_addr, new_addr;
	uint16_t old_port, new_port;	/* host order */
};

/*
 * Parse one netlink message: 1 and *ev filled for a well-formed EXPIRE or
 * MAPPING of an ESP SA, 0 for any other type, -EINVAL for a truncated
 * one or one with an unknown address family.
 */
int xfrm_ev_parse(const struct nlmsghdr *nlh, struct xfrm_ev *ev);

/*
 * A tunnel's view of its peer's moves (overlay_tunnel_stats.moved_*).
 * Zeroed = nothing noted.
 */
struct xfrm_moved {
	struct overlay_addr addr;	/* noted endpoint; AF_UNSPEC = none */
	uint16_t port;
	uint64_t rx;			/* mappings seen since the last clear */
	struct overlay_addr next_addr;	/* newer endpoint held back */
	uint16_t next_port;
	uint64_t at_ms;			/* when an endpoint was last noted */
};

/*
 * Apply MAPPING ev to a tunnel whose peer endpoint is remote:rport.
 * Ignored (0): another family, or a stale event (its old endpoint is not
 * remote:rport: the kernel sent it before the tunnel followed).  A new
 * endpoint is noted at once (1) unless the tunnel noted one less than
 * XFRM_MOVED_HOLD_MS ago; then it is held and xfrm_moved_tick notes it
 * later.  The same endpoint again only counts.
 */
int xfrm_moved_note(struct xfrm_moved *m, const struct xfrm_ev *ev,
    const struct overlay_addr *remote, uint16_t rport, uint64_t now_ms);
/* Note a held endpoint once the hold has passed: 1 if it did. */
int xfrm_moved_tick(struct xfrm_moved *m, uint64_t now_ms);
/* The tunnel's remote changed (tunnel_update): forget, keep the hold. */
void xfrm_moved_clear(struct xfrm_moved *m);

struct xfrm_evmon;
/* Open the event socket and start the thread; NULL (logged) on failure. */
struct xfrm_evmon *xfrm_evmon_start(void);
/* Stop the thread and close everything; NULL ok. */
void xfrm_evmon_stop(struct xfrm_evmon *m);
/* The moved eventfd (overlay_ops.moved_fd). */
int xfrm_evmon_fd(const struct xfrm_evmon *m);
/* Make the moved eventfd readable (a tunnel noted an endpoint). */
void xfrm_evmon_signal(struct xfrm_evmon *m);
/* Take up to n queued events, oldest first; returns how many. */
size_t xfrm_evmon_take(struct xfrm_evmon *m, struct xfrm_ev *out, size_t n);

#endif
