/*
 * xfrm_nl.h — the netlink side of the xfrm backend: one request/ack
 * transport with extended acks, and the builders of the messages the
 * backend sends.  Only overlay/xfrm/ includes this; libnl types stay here.
 *
 * The SA builders are pure (no socket): tests check the mapping from
 * overlay_sa_params to XFRM attributes on a host whose kernel has no ESP.
 */
#ifndef MESHWAN_XFRM_NL_H
#define MESHWAN_XFRM_NL_H

#include <stddef.h>
#include <stdint.h>

#include <linux/xfrm.h>

#include <netlink/netlink.h>

#include "overlay/overlay.h"

/* Ownership tags: every SA's reqid is in [XFRM_REQID_BASE, +0xffff]. */
#define XFRM_REQID_BASE		0x6d770000u	/* "mw" */
#define XFRM_REQID_MASK		0xffff0000u
#define XFRM_PRIO_ALLOW		0x6d7700u	/* our allow policies */
#define XFRM_PRIO_BLOCK		0x6d7701u	/* our fail-closed block policies */
#define XFRM_ALIAS_PREFIX	"meshwan-xfrm:"	/* IFLA_IFALIAS of our devices */
#define XFRM_REPLAY_KERNEL_MAX	4096	/* XFRMA_REPLAY_ESN_MAX bits */
/* Inbound SAs' XFRMA_MTIMER_THRESH: the kernel repeats a NAT mapping of
 * an unchanged port at most this often (README.md, NAT mappings). */
#define XFRM_MAPPING_MAXAGE_S	5

/* Where an SA goes: outer addresses and ESP-in-UDP ports, host order. */
struct xfrm_sa_place {
	struct overlay_addr src, dst;
	uint16_t sport, dport;
	uint32_t reqid;
};

/*
 * The XFRM_MSG_NEWSA (or UPDSA) request for p at place: transport mode,
 * rfc4106(gcm(aes)) with key||salt and a 128-bit ICV, espinudp, replay
 * state as XFRMA_REPLAY_ESN_VAL (window clamped to the kernel's maximum),
 * lifetimes.  The message holds key bytes: free it with xfrm_nl_free.
 */
int xfrm_nl_sa_msg(int cmd, const struct overlay_sa_params *p,
    const struct xfrm_sa_place *place, struct nl_msg **out);
/*
 * XFRM_MSG_MIGRATE (libnl has no object for it): move n ESP transport
 * SAs, each found by its old outer addresses and reqid, to new outer
 * addresses in the kernel, which copies each state (SPI, key, lifetimes,
 * counters, the replay state with the sequence numbers) to its new
 * identity and deletes the old one.  sel and dir name a policy that
 * carries a transport-mode ESP template of every reqid (the kernel
 * refuses the move otherwise); sport/dport (host order) become every
 * moved SA's ESP-in-UDP ports.  1 <= n <= XFRM_MIGRATE_MAX, one family
 * per message.  Pure: tests parse it back.
 */
#define XFRM_MIGRATE_MAX	6	/* XFRM_MAX_DEPTH: per message and policy */
struct xfrm_nl_move {
	struct xfrm_sa_place from, to;	/* reqid: from.reqid */
};
int xfrm_nl_migrate_msg(const struct xfrm_selector *sel, int dir,
    const struct xfrm_nl_move *mv, size_t n, uint16_t sport, uint16_t dport,
    struct nl_msg **out);
/* Wipe a message's bytes and free it; NULL ok. */
void xfrm_nl_free(struct nl_msg *msg);

/*
 * Send msg (which is consumed: wiped and freed) on sk and read until its
 * ack; every data message of the answer goes to cb (may be NULL).  Returns
 * 0 or -errno; the kernel's extended-ack text, if any, is copied to why.
 * Anything already queued on sk is dropped (and logged) first.  sk must
 * not be used by libnl calls that wait for answers themselves: they count
 * sequence numbers these calls move on without them (README.md, Netlink).
 */
typedef int (*xfrm_nl_cb)(struct nlmsghdr *nlh, void *arg);
int xfrm_nl_talk(struct nl_sock *sk, struct nl_msg *msg, xfrm_nl_cb cb,
    void *arg, char *why, size_t whylen);
/*
 * Many requests in one sendmsg (at most XFRM_NL_BATCH_MAX, which keeps the
 * acks far inside the socket's 1 MiB receive buffer): msgs[0..n) are
 * consumed (wiped and freed), each asks for an ack, and the acks are
 * matched by sequence number.  errs[i] gets request i's result (0 or
 * -errno) and why[i] the kernel's extended-ack text for it ("" if none).
 * The kernel handles the requests one by one, in order, and a failed one
 * does not stop the next.  If the send fails, nothing was handled and
 * every errs[i] is -ENOBUFS; a request whose ack cannot be read gets -EIO
 * (its fate is unknown, as with xfrm_nl_talk).  Returns 0 when all
 * succeeded, else the first error.
 */
#define XFRM_NL_BATCH_MAX	64
#define XFRM_NL_WHY_LEN		256
int xfrm_nl_batch(struct nl_sock *sk, struct nl_msg **msgs, size_t n,
    int *errs, char (*why)[XFRM_NL_WHY_LEN]);
/* A socket of that protocol with acks capped and extended acks on, and
 * reads that give up after XFRM_NL_ANSWER_S (an answer that has not come
 * by then never will: xfrm_nl_talk returns -ETIMEDOUT, xfrm_nl_batch -EIO
 * for the requests left, both logged). */
#define XFRM_NL_ANSWER_S	5
struct nl_sock *xfrm_nl_open(int protocol);

#endif
