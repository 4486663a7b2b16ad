/*
 * uesp_gso.h — TCP segmentation and coalescing for TUN offloads.
 *
 * With IFF_VNET_HDR and TSO on a TUN device the kernel hands uesp TCP
 * "super-packets" of up to 64 KiB (one read instead of ~45) and accepts
 * them back (one write, one pass through the inner TCP stack).  The wire
 * format must not change: every ESP packet still carries one ordinary
 * MTU-sized IP packet with correct checksums, exactly as a kernel GRE
 * device would send it.  So uesp cuts super-packets into segments before
 * sealing (uesp_gso_split) and glues consecutive segments of one TCP flow
 * back together after opening (uesp_gso_coalesce_*), like the kernel's own
 * GSO/GRO and wireguard-go.  IPv4 only; anything else passes through one
 * packet at a time.  Pure functions on buffers, no I/O.
 */
#ifndef MESHWAN_UESP_GSO_H
#define MESHWAN_UESP_GSO_H

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UESP_GSO_MAX	65535	/* largest super-packet (IPv4 total length) */
#define UESP_GSO_L2	14	/* Ethernet header before IP on a TAP */

/*
 * Frames from a TAP carry an Ethernet header: `l2` is its length (0 for a
 * TUN, UESP_GSO_L2 for a TAP); the Ethernet header is copied unchanged to
 * every segment, and only frames with identical Ethernet headers merge.
 *
 * Segment the packet pkt/len described by h.  For each resulting IP packet
 * emit(arg, seg, seglen) is called with a temporary buffer the callee
 * copies from.  A packet that is not GSO but needs its checksum completed
 * (VIRTIO_NET_HDR_F_NEEDS_CSUM) is completed in place and emitted once.
 * Returns the number of segments emitted, or -1 if the packet is malformed
 * or of a GSO type this code does not offer (nothing emitted).
 */
int uesp_gso_split(const struct virtio_net_hdr *h, uint8_t *pkt, size_t len,
    size_t l2, void (*emit)(void *arg, const uint8_t *seg, size_t seglen),
    void *arg);

/* A super-packet being built from received segments. */
struct uesp_gro {
	struct virtio_net_hdr h;	/* must directly precede pkt */
	uint8_t pkt[UESP_GSO_L2 + UESP_GSO_MAX];
	size_t len;		/* 0 = empty */
	size_t l2;		/* Ethernet header length before IP */
	unsigned nseg;
	uint16_t mss;		/* payload size of the first segment */
	bool closed;		/* PSH or a short segment: no more appends */
};

/*
 * Add one received IP packet (or frame): appended to g when it continues g's TCP
 * flow, else g must be flushed first (returns false, g untouched).  Call
 * uesp_gso_coalesce_start on an empty g.
 */
bool uesp_gso_coalesce_add(struct uesp_gro *g, const uint8_t *pkt, size_t len);
void uesp_gso_coalesce_start(struct uesp_gro *g, size_t l2,
    const uint8_t *pkt, size_t len);
/*
 * Finish g for writing: fills g->h (and the IP/TCP headers when several
 * segments were merged).  The bytes to write start at &g->h and are
 * sizeof(g->h) + g->len long.
 */
void uesp_gso_coalesce_finish(struct uesp_gro *g);

#endif
