/*
 * uesp_dev.h — the kernel objects of one userspace tunnel: its TUN/TAP
 * device (created, sized and brought up with ioctls, addressed with one
 * RTM_NEWADDR through libnl-route) and its UDP socket (bound to the
 * shared ESP-in-UDP port with SO_REUSEPORT and connected to the peer, so
 * the kernel hands each tunnel's datagrams to that tunnel's socket and so
 * to the one worker that owns its SAs).
 *
 * Functions return a file descriptor or -errno, and log once.
 */
#ifndef MESHWAN_UESP_DEV_H
#define MESHWAN_UESP_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "overlay/overlay.h"

/*
 * Create TUN (GRE) or TAP (VXLAN) p->ifname, non-blocking, with the inner
 * address/prefix and MTU set and the link up.  The device disappears when
 * the descriptor is closed.  The device gets IFF_VNET_HDR with checksum
 * and TCPv4 segmentation offload (every read and write then starts with a
 * struct virtio_net_hdr, see uesp_gso.h).
 */
int uesp_dev_open(const struct overlay_tunnel_params *p);
/* Set the MTU of an existing device: 0 or -errno. */
int uesp_dev_set_mtu(const char *ifname, uint32_t mtu);
/* Add (or replace) address a/plen (IPv4 or IPv6) on ifname in one
 * netlink request, so routing daemons see one event: 0 or -errno. */
int uesp_dev_addr_add(const char *ifname, const struct overlay_addr *a,
    unsigned plen);
/* Add (or remove) a/127 and the link-local address fe80::/64 + a's low
 * 64 bits on the device, without DAD; a family other than AF_INET6 does
 * nothing.  0 or -errno. */
int uesp_dev_addr6(const char *ifname, const struct overlay_addr *a,
    bool add);

/*
 * A UDP socket on port (SO_REUSEPORT), bound to local (or any) and, when
 * remote is set, connected to remote:rport.  *src receives the local
 * address the kernel chose (needed for the IPv6 VXLAN checksum).
 */
int uesp_dev_socket(const struct overlay_addr *local, uint16_t port,
    const struct overlay_addr *remote, uint16_t rport,
    struct overlay_addr *src);
/*
 * Outer-header choices of a tunnel's socket, so that uesp's datagrams carry
 * the header bits the kernel's ESP-in-UDP would (overlay/uesp/ESP.md):
 * - IPv4 only, unless want_csum: UDP checksum zero (SO_NO_CHECK; RFC 3948
 *   section 2.1).  IPv6 keeps its checksum (RFC 8200).
 * - IPv4 only: DF set on every datagram when df (IP_PMTUDISC_DO, what a
 *   kernel GRE device with its default pmtudisc sends), clear on every one
 *   otherwise (IP_PMTUDISC_DONT, a kernel VXLAN device's default) -- the
 *   same for single and UDP_SEGMENT sends, where the default
 *   IP_PMTUDISC_WANT sets it on single datagrams only.
 * 1 if the checksum is now zero (the kernel then refuses UDP_SEGMENT
 * sends), 0 if not, or -errno.
 */
int uesp_dev_tx_opts(int fd, bool df, bool want_csum);
/* Ask for UDP_GRO (coalesced receive): true if the kernel agreed. */
bool uesp_dev_udp_gro(int fd);
/* Re-point a connected socket at a new peer: 0 or -errno. */
int uesp_dev_reconnect(int fd, const struct overlay_addr *remote,
    uint16_t rport, struct overlay_addr *src);

#endif
