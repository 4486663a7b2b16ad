/*
 * uesp_encap.h — the inner encapsulations carried in ESP: GRE (RFC 2784)
 * and UDP + VXLAN (RFC 7348), byte for byte what a Linux GRE or VXLAN
 * device hands to a transport-mode ESP SA, so that a kernel edge and a
 * userspace edge interoperate.  Pure functions on buffers: no I/O, no
 * state, unit-tested against hand-derived layouts.
 */
#ifndef MESHWAN_UESP_ENCAP_H
#define MESHWAN_UESP_ENCAP_H

#include <stddef.h>
#include <stdint.h>

#include "overlay/overlay.h"

#define UESP_GRE_HLEN	4		/* flags/version 0 + protocol type */
#define UESP_VXLAN_HLEN	(8 + 8)		/* UDP header + VXLAN header */
#define UESP_ETH_HLEN	14
#define UESP_ETHERTYPE_IPV4 0x0800
#define UESP_ETHERTYPE_IPV6 0x86DD
#define UESP_VXLAN_FLAG_I 0x08		/* "VNI valid", the only flag set */

/*
 * GRE: write the 4-byte header at hdr for the IP packet ip/len that
 * follows it (protocol from the IP version nibble).  0, or -1 if the packet
 * is neither IPv4 nor IPv6 (it must be dropped).
 */
int uesp_encap_gre_push(uint8_t *hdr, const uint8_t *ip, size_t len);

/*
 * Check a received GRE header + packet: no flags, version 0, protocol
 * IPv4/IPv6 matching the packet's version nibble.  0 with *ip and *ip_len set
 * to the inner packet, or -1 (malformed).
 */
int uesp_encap_gre_pull(uint8_t *p, size_t len, uint8_t **ip, size_t *ip_len);

/*
 * The UDP source port Linux's VXLAN device would pick: a hash of the inner
 * flow, spread over the local port range [32768, 61000), so that ECMP and
 * RSS see one flow per inner flow.
 */
uint16_t uesp_encap_vxlan_sport(const uint8_t *frame, size_t len);

/*
 * VXLAN: write UDP (sport, dport 4789, length) and the VXLAN header
 * (flags 0x08, vni) at hdr for the Ethernet frame/len that follows.  The
 * UDP checksum is 0 over IPv4, as RFC 7348 section 5 recommends (a Linux
 * VXLAN device computes it by default, so the kernel backend creates its
 * devices with `noudpcsum`), and computed over IPv6 with the outer
 * addresses (RFC 8200 forbids 0 by default; Linux's `noudp6zerocsumtx`).
 */
void uesp_encap_vxlan_push(uint8_t *hdr, const uint8_t *frame, size_t len,
    uint32_t vni, uint16_t sport, const struct overlay_addr *src,
    const struct overlay_addr *dst);

/*
 * Check a received UDP + VXLAN header: dport 4789, UDP length equal to what
 * was received, I flag set, VNI equal to vni, frame at least an Ethernet
 * header.  0 with *frame and *frame_len set, or -1 (malformed).  The UDP
 * checksum is not verified: the ESP ICV already covers these bytes.
 */
int uesp_encap_vxlan_pull(uint8_t *p, size_t len, uint32_t vni,
    uint8_t **frame, size_t *frame_len);

#endif
