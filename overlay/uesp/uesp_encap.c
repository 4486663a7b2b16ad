/*
 * uesp_encap.c — GRE and VXLAN framing for the userspace ESP data plane.
 * See uesp_encap.h for why the exact bytes matter.
 */
#include "overlay/uesp/uesp_encap.h"

#include <string.h>
#include <sys/socket.h>

static void
uesp_encap_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t
uesp_encap_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int
uesp_encap_ethertype(const uint8_t *ip, size_t len, uint16_t *type)
{
	if (len < 1)
		return -1;
	switch (ip[0] >> 4) {
	case 4:
		*type = UESP_ETHERTYPE_IPV4;
		return len >= 20 ? 0 : -1;
	case 6:
		*type = UESP_ETHERTYPE_IPV6;
		return len >= 40 ? 0 : -1;
	}
	return -1;
}

int
uesp_encap_gre_push(uint8_t *hdr, const uint8_t *ip, size_t len)
{
	uint16_t type;

	if (uesp_encap_ethertype(ip, len, &type) < 0)
		return -1;
	hdr[0] = 0;		/* C, R, K, S, s, Recur = 0 */
	hdr[1] = 0;		/* flags 0, version 0 */
	uesp_encap_put16(hdr + 2, type);
	return 0;
}

int
uesp_encap_gre_pull(uint8_t *p, size_t len, uint8_t **ip, size_t *ip_len)
{
	uint16_t type;

	if (len < UESP_GRE_HLEN || p[0] != 0 || p[1] != 0)
		return -1;
	if (uesp_encap_ethertype(p + UESP_GRE_HLEN, len - UESP_GRE_HLEN,
	    &type) < 0 || type != uesp_encap_get16(p + 2))
		return -1;
	*ip = p + UESP_GRE_HLEN;
	*ip_len = len - UESP_GRE_HLEN;
	return 0;
}

/* FNV-1a: cheap, and any stable spread over flows will do. */
static uint32_t
uesp_encap_fnv(uint32_t h, const uint8_t *p, size_t n)
{
	while (n-- > 0) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

uint16_t
uesp_encap_vxlan_sport(const uint8_t *frame, size_t len)
{
	uint32_t h = 2166136261u;
	const uint8_t *ip;
	size_t iplen, ihl;
	uint16_t type;
	uint8_t proto = 0;

	if (len < UESP_ETH_HLEN)
		return 32768;
	type = uesp_encap_get16(frame + 12);
	ip = frame + UESP_ETH_HLEN;
	iplen = len - UESP_ETH_HLEN;
	if (type == UESP_ETHERTYPE_IPV4 && iplen >= 20) {
		ihl = (size_t)(ip[0] & 0x0f) * 4;
		proto = ip[9];
		h = uesp_encap_fnv(h, ip + 12, 8);	/* src, dst */
		h = uesp_encap_fnv(h, &proto, 1);
		if ((proto == 6 || proto == 17) && ihl >= 20 && iplen >= ihl + 4)
			h = uesp_encap_fnv(h, ip + ihl, 4); /* ports */
	} else if (type == UESP_ETHERTYPE_IPV6 && iplen >= 40) {
		proto = ip[6];
		h = uesp_encap_fnv(h, ip + 8, 32);
		h = uesp_encap_fnv(h, &proto, 1);
		if ((proto == 6 || proto == 17) && iplen >= 44)
			h = uesp_encap_fnv(h, ip + 40, 4);
	} else {
		h = uesp_encap_fnv(h, frame, 12);	/* MAC addresses */
	}
	return (uint16_t)((((uint64_t)h * (61000 - 32768)) >> 32) + 32768);
}

/* RFC 1071 sum of 16-bit words, not yet folded. */
static uint32_t
uesp_encap_sum(uint32_t s, const uint8_t *p, size_t n)
{
	while (n > 1) {
		s += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		n -= 2;
	}
	if (n == 1)
		s += (uint32_t)(p[0] << 8);
	return s;
}

static uint16_t
uesp_encap_udp6_csum(const uint8_t *udp, size_t len,
    const struct overlay_addr *src, const struct overlay_addr *dst)
{
	uint8_t tail[8] = { 0 };
	uint32_t s;

	tail[0] = (uint8_t)(len >> 24);
	tail[1] = (uint8_t)(len >> 16);
	tail[2] = (uint8_t)(len >> 8);
	tail[3] = (uint8_t)len;
	tail[7] = 17;
	s = uesp_encap_sum(0, src->bytes, 16);
	s = uesp_encap_sum(s, dst->bytes, 16);
	s = uesp_encap_sum(s, tail, sizeof(tail));
	s = uesp_encap_sum(s, udp, len);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	s = ~s & 0xffff;
	return s == 0 ? 0xffff : (uint16_t)s;
}

void
uesp_encap_vxlan_push(uint8_t *hdr, const uint8_t *frame, size_t len,
    uint32_t vni, uint16_t sport, const struct overlay_addr *src,
    const struct overlay_addr *dst)
{
	size_t ulen = UESP_VXLAN_HLEN + len;

	uesp_encap_put16(hdr, sport);
	uesp_encap_put16(hdr + 2, OVERLAY_VXLAN_PORT);
	uesp_encap_put16(hdr + 4, (uint16_t)ulen);
	uesp_encap_put16(hdr + 6, 0);
	hdr[8] = UESP_VXLAN_FLAG_I;
	hdr[9] = hdr[10] = hdr[11] = 0;
	hdr[12] = (uint8_t)(vni >> 16);
	hdr[13] = (uint8_t)(vni >> 8);
	hdr[14] = (uint8_t)vni;
	hdr[15] = 0;
	/* The frame follows hdr in the same buffer, so one sum covers it. */
	if (src != NULL && dst != NULL && src->family == AF_INET6 &&
	    dst->family == AF_INET6 && frame == hdr + UESP_VXLAN_HLEN)
		uesp_encap_put16(hdr + 6, uesp_encap_udp6_csum(hdr, ulen, src,
		    dst));
}

int
uesp_encap_vxlan_pull(uint8_t *p, size_t len, uint32_t vni,
    uint8_t **frame, size_t *frame_len)
{
	uint32_t got;

	if (len < UESP_VXLAN_HLEN + UESP_ETH_HLEN)
		return -1;
	if (uesp_encap_get16(p + 2) != OVERLAY_VXLAN_PORT ||
	    uesp_encap_get16(p + 4) != len)
		return -1;
	if (p[8] != UESP_VXLAN_FLAG_I)
		return -1;
	got = (uint32_t)p[12] << 16 | (uint32_t)p[13] << 8 | p[14];
	if (got != vni)
		return -1;
	*frame = p + UESP_VXLAN_HLEN;
	*frame_len = len - UESP_VXLAN_HLEN;
	return 0;
}
