/*
 * uesp_gso.c — segmentation of TUN super-packets and coalescing of
 * received TCP segments; see uesp_gso.h for why.
 */
#include "overlay/uesp/uesp_gso.h"

#include <string.h>

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_ECE 0x40
#define TCP_CWR 0x80

static uint16_t
gso_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
gso_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
gso_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
gso_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * RFC 1071 sum of p[0..n) as big-endian 16-bit words, added to s (not
 * folded).  It runs for every byte uesp segments or merges, so it sums
 * eight bytes at a time in host order and swaps once at the end (the
 * one's complement sum commutes with byte swapping, RFC 1071 §2(B)).
 */
static uint32_t
gso_sum(uint32_t s, const uint8_t *p, size_t n)
{
	uint64_t acc = 0, v8;
	uint16_t v2 = 0, r;

	while (n >= 8) {
		memcpy(&v8, p, 8);
		acc += v8;
		if (acc < v8)
			acc++;		/* end-around carry */
		p += 8;
		n -= 8;
	}
	while (n >= 2) {
		memcpy(&v2, p, 2);
		acc += v2;
		if (acc < v2)
			acc++;
		p += 2;
		n -= 2;
	}
	if (n == 1) {
		v2 = 0;
		memcpy(&v2, p, 1);	/* zero-padded, in memory order */
		acc += v2;
		if (acc < v2)
			acc++;
	}
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	r = (uint16_t)acc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	r = (uint16_t)(r << 8 | r >> 8);
#endif
	return s + r;
}

static uint16_t
gso_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* Sum of the IPv4 pseudo-header for a TCP segment of tcplen bytes. */
static uint32_t
gso_pseudo(const uint8_t *ip, size_t tcplen)
{
	uint32_t s = gso_sum(0, ip + 12, 8);

	return s + 6 + (uint32_t)tcplen;
}

static void
gso_ip_csum(uint8_t *ip)
{
	gso_put16(ip + 10, 0);
	gso_put16(ip + 10, (uint16_t)~gso_fold(gso_sum(0, ip, 20)));
}

static bool
gso_tcp_csum_ok(const uint8_t *ip, size_t ihl, size_t len)
{
	return gso_fold(gso_sum(gso_pseudo(ip, len - ihl), ip + ihl,
	    len - ihl)) == 0xffff;
}

/* Is the frame at pkt an IPv4 packet after l2 bytes of Ethernet header? */
static bool
gso_ipv4_at(const uint8_t *pkt, size_t len, size_t l2)
{
	if (len < l2 + 20)
		return false;
	if (l2 == 14 && gso_get16(pkt + 12) != 0x0800)
		return false;
	return (pkt[l2] >> 4) == 4;
}

int
uesp_gso_split(const struct virtio_net_hdr *h, uint8_t *pkt, size_t len,
    size_t l2, void (*emit)(void *arg, const uint8_t *seg, size_t seglen),
    void *arg)
{
	uint8_t seg[UESP_GSO_MAX];
	const uint8_t *ip = pkt + l2;
	size_t ihl, thl, hdr, pay, off, chunk, cs, co;
	uint32_t seq;
	uint16_t id, mss;
	int n = 0;

	if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
			cs = h->csum_start;
			co = h->csum_offset;
			if (cs + co + 2 > len)
				return -1;
			/* The field holds the pseudo-header sum already. */
			gso_put16(pkt + cs + co, (uint16_t)~gso_fold(
			    gso_sum(0, pkt + cs, len - cs)));
		}
		emit(arg, pkt, len);
		return 1;
	}
	if ((h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4)
		return -1;
	if (!gso_ipv4_at(pkt, len, l2) || len < l2 + 40 || ip[9] != 6)
		return -1;
	ihl = (size_t)(ip[0] & 0x0f) * 4;
	if (ihl < 20 || len < l2 + ihl + 20)
		return -1;
	thl = (size_t)(ip[ihl + 12] >> 4) * 4;
	hdr = l2 + ihl + thl;
	mss = h->gso_size;
	if (thl < 20 || len <= hdr || mss == 0 || hdr + mss > sizeof(seg))
		return -1;
	pay = len - hdr;
	seq = gso_get32(ip + ihl + 4);
	id = gso_get16(ip + 4);
	for (off = 0; off < pay; off += chunk, n++) {
		uint8_t *sip = seg + l2;
		uint8_t *tcp = sip + ihl;
		uint8_t flags = ip[ihl + 13];

		chunk = pay - off < mss ? pay - off : mss;
		memcpy(seg, pkt, hdr);
		memcpy(seg + hdr, pkt + hdr + off, chunk);
		gso_put16(sip + 2, (uint16_t)(ihl + thl + chunk));
		gso_put16(sip + 4, (uint16_t)(id + n));
		gso_ip_csum(sip);
		gso_put32(tcp + 4, seq + (uint32_t)off);
		if (off + chunk < pay)
			flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (off > 0)
			flags &= (uint8_t)~TCP_CWR;
		tcp[13] = flags;
		gso_put16(tcp + 16, 0);
		gso_put16(tcp + 16, (uint16_t)~gso_fold(gso_sum(
		    gso_pseudo(sip, thl + chunk), tcp, thl + chunk)));
		emit(arg, seg, hdr + chunk);
	}
	return n;
}

/* An IPv4 TCP segment (at p) we may merge: header length, or false. */
static bool
gso_mergeable(const uint8_t *p, size_t len, size_t *thl)
{
	if (len < 40 || p[0] != 0x45 || p[9] != 6)
		return false;
	if ((gso_get16(p + 6) & 0x3fff) != 0)	/* MF or fragment offset */
		return false;
	if (gso_get16(p + 2) != len)
		return false;
	*thl = (size_t)(p[20 + 12] >> 4) * 4;
	if (*thl < 20 || len <= 20 + *thl)	/* header only: not merged */
		return false;
	if ((p[20 + 13] & ~(TCP_ACK | TCP_PSH)) != 0 ||
	    !(p[20 + 13] & TCP_ACK))
		return false;
	return gso_tcp_csum_ok(p, 20, len);
}

void
uesp_gso_coalesce_start(struct uesp_gro *g, size_t l2, const uint8_t *pkt,
    size_t len)
{
	size_t thl;

	memcpy(g->pkt, pkt, len);
	g->len = len;
	g->l2 = l2;
	g->nseg = 1;
	g->closed = true;
	if (len >= l2 && gso_ipv4_at(pkt, len, l2) &&
	    gso_mergeable(pkt + l2, len - l2, &thl)) {
		g->mss = (uint16_t)(len - l2 - 20 - thl);
		g->closed = (pkt[l2 + 20 + 13] & TCP_PSH) != 0;
	}
}

bool
uesp_gso_coalesce_add(struct uesp_gro *g, const uint8_t *frame, size_t len)
{
	const size_t l2 = g->l2;
	const uint8_t *p = g->pkt + l2, *q = frame + l2;
	size_t thl, pay, have;

	if (g->closed || len < l2 || !gso_ipv4_at(frame, len, l2) ||
	    memcmp(g->pkt, frame, l2) != 0 ||
	    !gso_mergeable(q, len - l2, &thl))
		return false;
	pay = len - l2 - 20 - thl;
	have = g->len - l2 - 20 - thl;
	/* Same flow and header: addresses, TOS, TTL, DF, ports, header
	 * length, ack, window, options; the next byte in sequence. */
	if (p[1] != q[1] || p[8] != q[8] || p[6] != q[6] ||
	    memcmp(p + 12, q + 12, 8) != 0 ||
	    (size_t)(p[20 + 12] >> 4) * 4 != thl ||
	    memcmp(p + 20, q + 20, 4) != 0 ||
	    memcmp(p + 20 + 8, q + 20 + 8, 4) != 0 ||
	    memcmp(p + 20 + 14, q + 20 + 14, 2) != 0 ||
	    memcmp(p + 20 + 20, q + 20 + 20, thl - 20) != 0)
		return false;
	if (gso_get32(q + 24) != gso_get32(p + 24) + (uint32_t)have)
		return false;
	if (pay > g->mss || g->len + pay > sizeof(g->pkt) ||
	    g->len - l2 + pay > UESP_GSO_MAX)
		return false;
	memcpy(g->pkt + g->len, q + 20 + thl, pay);
	g->len += pay;
	g->nseg++;
	if (q[20 + 13] & TCP_PSH) {
		g->pkt[l2 + 20 + 13] |= TCP_PSH;
		g->closed = true;
	}
	if (pay < g->mss)
		g->closed = true;
	return true;
}

void
uesp_gso_coalesce_finish(struct uesp_gro *g)
{
	uint8_t *ip = g->pkt + g->l2;
	size_t thl, iplen = g->len - g->l2;

	memset(&g->h, 0, sizeof(g->h));
	if (g->nseg < 2)
		return;		/* sent as it came, checksums as they were */
	thl = (size_t)(ip[20 + 12] >> 4) * 4;
	gso_put16(ip + 2, (uint16_t)iplen);
	gso_ip_csum(ip);
	/* Checksum offload: the field holds the pseudo-header sum; every
	 * merged segment's own checksum was verified in gso_mergeable. */
	gso_put16(ip + 20 + 16, gso_fold(gso_pseudo(ip, iplen - 20)));
	g->h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	g->h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	g->h.hdr_len = (uint16_t)(g->l2 + 20 + thl);
	g->h.gso_size = g->mss;
	g->h.csum_start = (uint16_t)(g->l2 + 20);
	g->h.csum_offset = 16;
}
