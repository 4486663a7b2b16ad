/*
 * test_overlay_uesp.c — the userspace ESP data path without I/O: GRE and
 * VXLAN framing against hand-derived RFC 2784 / RFC 7348 layouts, inbound
 * SA lookup with several live SAs, and the inbound checks: tampered,
 * truncated, replayed and unknown-SPI packets are counted in the right
 * drop class and never returned for delivery.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "lib/log.h"
#include "overlay/overlay.h"
#include "overlay/uesp/uesp_encap.h"
#include "overlay/uesp/uesp_gso.h"
#include "overlay/uesp/uesp_tunnel.h"

/* ---- framing ------------------------------------------------------------ */

static void
test_gre_push_pull(void **state)
{
	uint8_t buf[4 + 40];
	uint8_t *ip;
	size_t len;

	memset(buf, 0, sizeof(buf));
	buf[4] = 0x45;		/* IPv4, IHL 5 */
	assert_int_equal(uesp_encap_gre_push(buf, buf + 4, 20), 0);
	/* RFC 2784: C=0, reserved0=0, version 0, protocol type = EtherType. */
	assert_memory_equal(buf, "\x00\x00\x08\x00", 4);
	assert_int_equal(uesp_encap_gre_pull(buf, 24, &ip, &len), 0);
	assert_ptr_equal(ip, buf + 4);
	assert_int_equal(len, 20);

	buf[4] = 0x60;		/* IPv6 */
	assert_int_equal(uesp_encap_gre_push(buf, buf + 4, 40), 0);
	assert_memory_equal(buf, "\x00\x00\x86\xdd", 4);
	assert_int_equal(uesp_encap_gre_pull(buf, 44, &ip, &len), 0);
	assert_int_equal(len, 40);

	/* Not IP, or too short to be: never framed. */
	buf[4] = 0x20;
	assert_int_equal(uesp_encap_gre_push(buf, buf + 4, 40), -1);
	buf[4] = 0x45;
	assert_int_equal(uesp_encap_gre_push(buf, buf + 4, 19), -1);

	/* Decoding refuses flags (checksum, key, sequence), version != 0,
	 * protocol that does not match the packet, and short input. */
	memcpy(buf, "\x00\x00\x08\x00", 4);
	buf[0] = 0x80;
	assert_int_equal(uesp_encap_gre_pull(buf, 24, &ip, &len), -1);
	buf[0] = 0x20;
	assert_int_equal(uesp_encap_gre_pull(buf, 24, &ip, &len), -1);
	buf[0] = 0;
	buf[1] = 0x01;
	assert_int_equal(uesp_encap_gre_pull(buf, 24, &ip, &len), -1);
	buf[1] = 0;
	buf[2] = 0x86;
	buf[3] = 0xdd;
	assert_int_equal(uesp_encap_gre_pull(buf, 24, &ip, &len), -1);
	assert_int_equal(uesp_encap_gre_pull(buf, 3, &ip, &len), -1);
}

static uint16_t
csum_fold(const uint8_t *p, size_t n, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void
test_vxlan_push_pull(void **state)
{
	uint8_t buf[16 + 34];
	uint8_t *frame;
	size_t len;
	struct overlay_addr s6, d6, s4, d4;
	uint8_t pseudo[40];
	uint32_t sum;
	size_t i;

	memset(buf, 0, sizeof(buf));
	for (i = 0; i < 34; i++)
		buf[16 + i] = (uint8_t)i;
	buf[16 + 12] = 0x08;	/* EtherType IPv4 */
	buf[16 + 13] = 0x00;
	assert_int_equal(overlay_addr_parse("192.0.2.1", &s4), 0);
	assert_int_equal(overlay_addr_parse("192.0.2.2", &d4), 0);
	uesp_encap_vxlan_push(buf, buf + 16, 34, 0x123456, 0xc000, &s4, &d4);
	/* UDP: sport, dport 4789 (0x12b5), length 8+8+34 = 50, csum 0 (IPv4,
	 * Linux's default); VXLAN: flags 0x08, 3 reserved, VNI, 1 reserved. */
	assert_memory_equal(buf,
	    "\xc0\x00\x12\xb5\x00\x32\x00\x00"
	    "\x08\x00\x00\x00\x12\x34\x56\x00", 16);
	assert_int_equal(uesp_encap_vxlan_pull(buf, 50, 0x123456, &frame,
	    &len), 0);
	assert_ptr_equal(frame, buf + 16);
	assert_int_equal(len, 34);

	/* Wrong VNI, wrong port, length mismatch, flag missing, short. */
	assert_int_equal(uesp_encap_vxlan_pull(buf, 50, 0x123457, &frame,
	    &len), -1);
	assert_int_equal(uesp_encap_vxlan_pull(buf, 49, 0x123456, &frame,
	    &len), -1);
	buf[8] = 0x00;
	assert_int_equal(uesp_encap_vxlan_pull(buf, 50, 0x123456, &frame,
	    &len), -1);
	buf[8] = 0x08;
	buf[3] = 0xb6;
	assert_int_equal(uesp_encap_vxlan_pull(buf, 50, 0x123456, &frame,
	    &len), -1);
	assert_int_equal(uesp_encap_vxlan_pull(buf, 29, 0x123456, &frame,
	    &len), -1);

	/* IPv6 outer: the checksum is set and verifies over the RFC 8200
	 * pseudo-header (src, dst, length, next header 17). */
	assert_int_equal(overlay_addr_parse("2001:db8::1", &s6), 0);
	assert_int_equal(overlay_addr_parse("2001:db8::2", &d6), 0);
	uesp_encap_vxlan_push(buf, buf + 16, 34, 7, 0xc000, &s6, &d6);
	assert_true(buf[6] != 0 || buf[7] != 0);
	memset(pseudo, 0, sizeof(pseudo));
	memcpy(pseudo, s6.bytes, 16);
	memcpy(pseudo + 16, d6.bytes, 16);
	pseudo[35] = 50;
	pseudo[39] = 17;
	sum = csum_fold(pseudo, sizeof(pseudo), 0);
	assert_int_equal(csum_fold(buf, 50, sum), 0xffff);
}

static void
test_vxlan_sport(void **state)
{
	uint8_t f[14 + 24];
	uint16_t a, b;

	memset(f, 0, sizeof(f));
	f[12] = 0x08;
	f[14] = 0x45;
	f[14 + 9] = 6;		/* TCP */
	f[14 + 20] = 0x12;	/* source port */
	a = uesp_encap_vxlan_sport(f, sizeof(f));
	assert_true(a >= 32768 && a < 61000);
	assert_int_equal(a, uesp_encap_vxlan_sport(f, sizeof(f)));
	f[14 + 20] = 0x13;	/* another flow, another port (for this pair) */
	b = uesp_encap_vxlan_sport(f, sizeof(f));
	assert_true(b >= 32768 && b < 61000);
	assert_int_not_equal(a, b);
}

/* ---- TUN offloads: segmentation and coalescing --------------------------- */

static uint32_t
sum16(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	return s;
}

static uint16_t
fold16(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static bool
tcp_ok(const uint8_t *ip, size_t len)
{
	uint32_t s = sum16(0, ip + 12, 8) + 6 + (uint32_t)(len - 20);

	return fold16(sum16(s, ip + 20, len - 20)) == 0xffff &&
	    fold16(sum16(0, ip, 20)) == 0xffff;
}

/* IPv4 + TCP (20 + 12 bytes of timestamp option) + pay bytes of payload. */
static size_t
mk_tcp(uint8_t *p, size_t pay, uint32_t seq, uint8_t flags)
{
	size_t len = 20 + 32 + pay, i;

	memset(p, 0, 52);
	p[0] = 0x45;
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[4] = 0x12;
	p[5] = 0x34;
	p[6] = 0x40;		/* DF */
	p[8] = 64;
	p[9] = 6;
	memcpy(p + 12, "\xa9\xfe\x00\x00\xa9\xfe\x00\x01", 8);
	p[20] = 0x9c; p[21] = 0x40; p[22] = 0x14; p[23] = 0x51;
	p[24] = (uint8_t)(seq >> 24); p[25] = (uint8_t)(seq >> 16);
	p[26] = (uint8_t)(seq >> 8); p[27] = (uint8_t)seq;
	p[28 + 3] = 7;		/* ack */
	p[32] = 0x80;		/* data offset 8 words */
	p[33] = flags;
	p[34] = 0x01;		/* window */
	memcpy(p + 40, "\x01\x01\x08\x0a\x00\x00\x00\x05\x00\x00\x00\x09", 12);
	for (i = 0; i < pay; i++)
		p[52 + i] = (uint8_t)(seq + i);
	return len;
}

/* A valid TCP checksum, as a sender's kernel would have put it. */
static void
fix_tcp(uint8_t *p, size_t len)
{
	uint32_t s = sum16(0, p + 12, 8) + 6 + (uint32_t)(len - 20);

	p[10] = p[11] = 0;
	s = (uint16_t)~fold16(sum16(0, p, 20));
	p[10] = (uint8_t)(s >> 8);
	p[11] = (uint8_t)s;
	p[36] = p[37] = 0;
	s = sum16(0, p + 12, 8) + 6 + (uint32_t)(len - 20);
	s = (uint16_t)~fold16(sum16(s, p + 20, len - 20));
	p[36] = (uint8_t)(s >> 8);
	p[37] = (uint8_t)s;
}

struct segs {
	uint8_t seg[8][2048];
	size_t len[8];
	unsigned n;
};

static void
collect(void *arg, const uint8_t *seg, size_t len)
{
	struct segs *s = arg;

	assert_true(s->n < 8 && len <= 2048);
	memcpy(s->seg[s->n], seg, len);
	s->len[s->n++] = len;
}

static void
test_gso_roundtrip(void **state)
{
	static uint8_t big[65536];
	static struct segs s;
	static struct uesp_gro g;
	struct virtio_net_hdr h;
	size_t len, i;
	uint32_t partial;

	/* A 5000-byte TSO super-packet with PSH, MSS 1400. */
	len = mk_tcp(big, 5000, 1000, 0x18);
	memset(&h, 0, sizeof(h));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.gso_size = 1400;
	h.hdr_len = 52;
	h.csum_start = 20;
	h.csum_offset = 16;
	memset(&s, 0, sizeof(s));
	assert_int_equal(uesp_gso_split(&h, big, len, 0, collect, &s), 4);
	for (i = 0; i < 4; i++) {
		const uint8_t *p = s.seg[i];
		size_t pay = i < 3 ? 1400 : 800;
		uint32_t seq = 1000 + (uint32_t)i * 1400;

		/* Ordinary MTU-sized packets: lengths, IP id, sequence,
		 * flags (PSH only on the last), checksums all valid. */
		assert_int_equal(s.len[i], 52 + pay);
		assert_int_equal(p[2] << 8 | p[3], 52 + pay);
		assert_int_equal(p[4] << 8 | p[5], 0x1234 + i);
		assert_int_equal((uint32_t)p[24] << 24 | (uint32_t)p[25] << 16 |
		    (uint32_t)p[26] << 8 | p[27], seq);
		assert_int_equal(p[33], i < 3 ? 0x10 : 0x18);
		assert_true(tcp_ok(p, s.len[i]));
		assert_memory_equal(p + 52, big + 52 + i * 1400, pay);
	}

	/* Received back in order: one super-packet again. */
	uesp_gso_coalesce_start(&g, 0, s.seg[0], s.len[0]);
	for (i = 1; i < 4; i++)
		assert_true(uesp_gso_coalesce_add(&g, s.seg[i], s.len[i]));
	uesp_gso_coalesce_finish(&g);
	assert_int_equal(g.len, len);
	assert_int_equal(g.nseg, 4);
	assert_int_equal(g.h.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
	assert_int_equal(g.h.gso_size, 1400);
	assert_int_equal(g.h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(g.h.csum_start, 20);
	assert_int_equal(g.h.csum_offset, 16);
	assert_int_equal(g.h.hdr_len, 52);
	assert_memory_equal(g.pkt + 52, big + 52, 5000);
	assert_int_equal(g.pkt[33], 0x18);
	assert_int_equal(fold16(sum16(0, g.pkt, 20)), 0xffff);
	/* The checksum field holds the pseudo-header sum (offload form). */
	partial = sum16(0, g.pkt + 12, 8) + 6 + (uint32_t)(len - 20);
	assert_int_equal(g.pkt[36] << 8 | g.pkt[37], fold16(partial));

	/* Out of order, another flow, a bad checksum, after PSH: no merge. */
	uesp_gso_coalesce_start(&g, 0, s.seg[0], s.len[0]);
	assert_false(uesp_gso_coalesce_add(&g, s.seg[2], s.len[2]));
	s.seg[1][36] ^= 1;
	assert_false(uesp_gso_coalesce_add(&g, s.seg[1], s.len[1]));
	s.seg[1][36] ^= 1;
	s.seg[1][23] ^= 1;	/* destination port */
	fix_tcp(s.seg[1], s.len[1]);
	assert_false(uesp_gso_coalesce_add(&g, s.seg[1], s.len[1]));
	uesp_gso_coalesce_start(&g, 0, s.seg[3], s.len[3]); /* has PSH */
	len = mk_tcp(big, 100, 1000 + 5000, 0x10);
	fix_tcp(big, len);
	assert_false(uesp_gso_coalesce_add(&g, big, len));
	uesp_gso_coalesce_finish(&g);
	assert_int_equal(g.h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	assert_int_equal(g.h.flags, 0);

	/* Not GSO, checksum to complete: emitted once, checksum valid. */
	len = mk_tcp(big, 301, 5, 0x10);	/* odd length */
	fix_tcp(big, len);
	partial = sum16(0, big + 12, 8) + 6 + (uint32_t)(len - 20);
	big[36] = (uint8_t)(fold16(partial) >> 8);
	big[37] = (uint8_t)fold16(partial);
	memset(&h, 0, sizeof(h));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.csum_start = 20;
	h.csum_offset = 16;
	memset(&s, 0, sizeof(s));
	assert_int_equal(uesp_gso_split(&h, big, len, 0, collect, &s), 1);
	assert_true(tcp_ok(s.seg[0], s.len[0]));

	/* GSO types not offered, and nonsense, are refused. */
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
	assert_int_equal(uesp_gso_split(&h, big, len, 0, collect, &s), -1);
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.gso_size = 0;
	assert_int_equal(uesp_gso_split(&h, big, len, 0, collect, &s), -1);
	h.gso_size = 1400;
	assert_int_equal(uesp_gso_split(&h, big, 30, 0, collect, &s), -1);
}

/* The same through a TAP: an Ethernet header before IP. */
static void
test_gso_tap(void **state)
{
	static uint8_t big[65536];
	static struct segs s;
	static struct uesp_gro g;
	struct virtio_net_hdr h;
	size_t len, i;

	memcpy(big, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
	    "\x08\x00", 14);
	len = 14 + mk_tcp(big + 14, 3000, 77, 0x10);
	memset(&h, 0, sizeof(h));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	h.gso_size = 1400;
	h.hdr_len = 14 + 52;
	h.csum_start = 34;
	h.csum_offset = 16;
	memset(&s, 0, sizeof(s));
	assert_int_equal(uesp_gso_split(&h, big, len, UESP_GSO_L2, collect,
	    &s), 3);
	for (i = 0; i < 3; i++) {
		assert_memory_equal(s.seg[i], big, 14);
		assert_true(tcp_ok(s.seg[i] + 14, s.len[i] - 14));
	}
	uesp_gso_coalesce_start(&g, UESP_GSO_L2, s.seg[0], s.len[0]);
	assert_true(uesp_gso_coalesce_add(&g, s.seg[1], s.len[1]));
	s.seg[2][5] ^= 1;	/* another destination MAC: not merged */
	assert_false(uesp_gso_coalesce_add(&g, s.seg[2], s.len[2]));
	s.seg[2][5] ^= 1;
	assert_true(uesp_gso_coalesce_add(&g, s.seg[2], s.len[2]));
	uesp_gso_coalesce_finish(&g);
	assert_int_equal(g.len, len);
	assert_memory_equal(g.pkt + 66, big + 66, 3000);
	assert_int_equal(g.h.csum_start, 34);
	assert_int_equal(g.h.hdr_len, 66);
	assert_int_equal(g.h.gso_size, 1400);

	/* An ARP frame (not IPv4) is not segmented as TCP. */
	big[13] = 0x06;
	assert_int_equal(uesp_gso_split(&h, big, len, UESP_GSO_L2, collect,
	    &s), -1);
}

/* ---- tunnels ------------------------------------------------------------ */

static const uint8_t key1[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
static const uint8_t key2[32] = { 0xa5, 0x5a, 0x11 };
static const uint8_t key3[32] = { 0x77 };

static struct uesp_tunnel *
mk_tunnel(enum overlay_encap encap)
{
	struct overlay_tunnel_params p;

	memset(&p, 0, sizeof(p));
	p.id = 1;
	overlay_addr_parse("192.0.2.2", &p.remote);
	overlay_addr_parse("169.254.0.0", &p.inner_local);
	overlay_addr_parse("169.254.0.1", &p.inner_peer);
	p.encap = encap;
	p.vni = encap == OVERLAY_ENCAP_VXLAN ? 42 : 0;
	p.mtu = 1400;
	strcpy(p.ifname, "t0");
	/* Any inner source: the filter has its own test. */
	overlay_prefix_parse("0.0.0.0/0", &p.allowed[0]);
	overlay_prefix_parse("::/0", &p.allowed[1]);
	p.nallowed = 2;
	return uesp_tunnel_new(&p);
}

static struct uesp_sa *
mk_sa(enum overlay_dir dir, uint32_t spi, const uint8_t *key)
{
	struct overlay_sa_params p;
	struct uesp_sa *sa;

	memset(&p, 0, sizeof(p));
	p.tunnel_id = 1;
	p.dir = dir;
	p.spi = spi;
	p.cipher = OVERLAY_AES_GCM_256;
	memcpy(p.key, key, 32);
	memcpy(p.salt, "salt", 4);
	p.esn = true;
	p.replay_window = 64;
	sa = uesp_tunnel_sa_new(&p, 0);
	assert_non_null(sa);
	return sa;
}

/* A sender with one active outbound SA. */
static struct uesp_tunnel *
mk_sender(enum overlay_encap encap, uint32_t spi, const uint8_t *key)
{
	struct uesp_tunnel *t = mk_tunnel(encap);

	assert_int_equal(uesp_tunnel_sa_insert(t, mk_sa(OVERLAY_DIR_OUT, spi,
	    key)), 0);
	assert_int_equal(uesp_tunnel_sa_switch(t, spi), 0);
	return t;
}

/* Seal a small inner packet (IPv4 for GRE, Ethernet+IPv4 for VXLAN) whose
 * payload starts with marker; the datagram is copied to out. */
static size_t
seal(struct uesp_tunnel *t, uint8_t marker, uint8_t *out)
{
	static uint8_t buf[UESP_BUF_LEN];
	uint8_t *in = buf + UESP_HEADROOM, *dg;
	size_t n, dlen;

	memset(buf, 0, sizeof(buf));
	if (t->p.encap == OVERLAY_ENCAP_GRE) {
		in[0] = 0x45;
		in[20] = marker;
		n = 60;
	} else {
		in[12] = 0x08;
		in[14] = 0x45;
		in[34] = marker;
		n = 74;
	}
	assert_int_equal(uesp_tunnel_tx(t, buf, n, &dg, &dlen), 0);
	memcpy(out, dg, dlen);
	return dlen;
}

static uint64_t
drops_total(const struct uesp_tunnel *t)
{
	const struct overlay_drops *d = &t->st.drops;

	return d->auth + d->replay + d->unknown_spi + d->malformed + d->no_sa +
	    d->io;
}

static void
test_spi_lookup_several(void **state)
{
	struct uesp_tunnel *rx = mk_tunnel(OVERLAY_ENCAP_GRE);
	struct uesp_tunnel *tx1 = mk_sender(OVERLAY_ENCAP_GRE, 0x1000, key1);
	struct uesp_tunnel *tx2 = mk_sender(OVERLAY_ENCAP_GRE, 0x2000, key2);
	struct uesp_tunnel *tx3 = mk_sender(OVERLAY_ENCAP_GRE, 0x3000, key3);
	uint8_t dg[UESP_BUF_LEN], *inner;
	size_t n, ilen;

	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x1000, key1)), 0);
	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x2000, key2)), 0);
	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x3000, key3)), 0);
	assert_non_null(uesp_tunnel_sa_find(rx, 0x2000, OVERLAY_DIR_IN));
	assert_null(uesp_tunnel_sa_find(rx, 0x2000, OVERLAY_DIR_OUT));
	assert_null(uesp_tunnel_sa_find(rx, 0x4000, OVERLAY_DIR_IN));

	/* Packets of all three live SAs, interleaved: all delivered. */
	n = seal(tx2, 0xb2, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 1);
	assert_int_equal(inner[20], 0xb2);
	n = seal(tx1, 0xb1, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 1);
	assert_int_equal(inner[20], 0xb1);
	assert_int_equal(ilen, 60);
	n = seal(tx3, 0xb3, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 1);
	assert_int_equal(inner[20], 0xb3);
	assert_int_equal(rx->st.rx_packets, 3);

	/* Removing one leaves the others working; its packets then count as
	 * unknown SPI. */
	uesp_tunnel_sa_free(uesp_tunnel_sa_remove(rx, 0x1000, OVERLAY_DIR_IN));
	n = seal(tx1, 0xc1, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.unknown_spi, 1);
	n = seal(tx3, 0xc3, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 1);

	/* Duplicates and the per-tunnel limit are refused. */
	{
		struct uesp_sa *dup = mk_sa(OVERLAY_DIR_IN, 0x2000, key1);

		assert_int_equal(uesp_tunnel_sa_insert(rx, dup), -EEXIST);
		uesp_tunnel_sa_free(dup);
	}
	for (n = 0; rx->nin < UESP_SA_MAX; n++)
		assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
		    0x5000 + (uint32_t)n, key1)), 0);
	{
		struct uesp_sa *more = mk_sa(OVERLAY_DIR_IN, 0x6000, key1);

		assert_int_equal(uesp_tunnel_sa_insert(rx, more), -ENOSPC);
		uesp_tunnel_sa_free(more);
	}
	uesp_tunnel_free(rx);
	uesp_tunnel_free(tx1);
	uesp_tunnel_free(tx2);
	uesp_tunnel_free(tx3);
}

static void
test_tamper(void **state)
{
	struct uesp_tunnel *rx = mk_tunnel(OVERLAY_ENCAP_GRE);
	/* Two bits set in the SPI, so no single flip turns it into IKE's
	 * all-zero non-ESP marker. */
	struct uesp_tunnel *tx = mk_sender(OVERLAY_ENCAP_GRE, 0x1001, key1);
	struct uesp_tunnel *stranger = mk_sender(OVERLAY_ENCAP_GRE, 0x7777, key1);
	uint8_t dg[UESP_BUF_LEN], copy[UESP_BUF_LEN], *inner;
	size_t n, i, ilen;
	uint64_t before;

	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x1001, key1)), 0);

	/* Every single flipped bit past the SPI fails authentication (the
	 * ICV covers SPI, sequence number, IV, payload and trailer); a
	 * flipped SPI bit names an SA that does not exist. */
	n = seal(tx, 0xaa, dg);
	for (i = 0; i < n * 8; i++) {
		memcpy(copy, dg, n);
		copy[i / 8] ^= (uint8_t)(1u << (i % 8));
		before = drops_total(rx);
		assert_int_equal(uesp_tunnel_rx(rx, copy, n, &inner, &ilen), 0);
		assert_int_equal(drops_total(rx), before + 1);
	}
	assert_int_equal(rx->st.drops.unknown_spi, 32);
	assert_int_equal(rx->st.drops.auth + rx->st.drops.replay, (n - 4) * 8);
	/* Some flips land on a sequence number the window already refuses
	 * (replay is checked before the ICV); the rest are auth failures. */
	assert_true(rx->st.drops.auth >= (n - 8) * 8);
	assert_int_equal(rx->st.rx_packets, 0);

	/* The untouched packet is still good: forgeries did not move the
	 * window. */
	memcpy(copy, dg, n);
	assert_int_equal(uesp_tunnel_rx(rx, copy, n, &inner, &ilen), 1);
	assert_int_equal(inner[20], 0xaa);

	/* Replayed: the same datagram again, twice. */
	before = rx->st.drops.replay;
	memcpy(copy, dg, n);
	assert_int_equal(uesp_tunnel_rx(rx, copy, n, &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.replay, before + 1);
	before = rx->st.drops.replay;
	memcpy(copy, dg, n);
	assert_int_equal(uesp_tunnel_rx(rx, copy, n, &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.replay, before + 1);

	/* Truncated at every length: dropped as malformed (too short to be
	 * ESP) or as an authentication failure, never delivered. */
	n = seal(tx, 0xab, dg);
	for (i = 0; i < n; i++) {
		uint64_t m = rx->st.drops.malformed, a = rx->st.drops.auth;

		memcpy(copy, dg, n);
		assert_int_equal(uesp_tunnel_rx(rx, copy, i, &inner, &ilen), 0);
		assert_int_equal(rx->st.drops.malformed + rx->st.drops.auth,
		    m + a + 1);
	}
	assert_int_equal(rx->st.rx_packets, 1);

	/* Unknown SPI. */
	before = rx->st.drops.unknown_spi;
	n = seal(stranger, 0xac, dg);
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.unknown_spi, before + 1);

	/* NAT keepalive and IKE's non-ESP marker: consumed, not drops. */
	before = drops_total(rx);
	dg[0] = 0xff;
	assert_int_equal(uesp_tunnel_rx(rx, dg, 1, &inner, &ilen), 0);
	assert_int_equal(rx->st.keepalives_rx, 1);
	memset(dg, 0, 8);
	assert_int_equal(uesp_tunnel_rx(rx, dg, 40, &inner, &ilen), 0);
	assert_int_equal(rx->st.non_esp, 1);
	assert_int_equal(drops_total(rx), before);
	assert_int_equal(rx->st.rx_packets, 1);

	uesp_tunnel_free(rx);
	uesp_tunnel_free(tx);
	uesp_tunnel_free(stranger);
}

/*
 * NAT rebinding (overlay.h): a source other than the remote is noted only
 * from a datagram that passes every check and is the newest its SA has
 * accepted; forged, replayed and older datagrams never move it.
 */
static void
test_moved_source(void **state)
{
	struct uesp_tunnel *rx = mk_tunnel(OVERLAY_ENCAP_GRE);
	struct uesp_tunnel *tx = mk_sender(OVERLAY_ENCAP_GRE, 0x1001, key1);
	uint8_t d1[UESP_BUF_LEN], d2[UESP_BUF_LEN], d3[UESP_BUF_LEN];
	uint8_t copy[UESP_BUF_LEN], *inner;
	struct overlay_addr nat, stale, remote;
	size_t n1, n2, n3, ilen;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x1001, key1)), 0);
	overlay_addr_parse("198.18.3.2", &nat);
	overlay_addr_parse("203.0.113.9", &stale);
	overlay_addr_parse("192.0.2.2", &remote);
	n1 = seal(tx, 0x01, d1);
	n2 = seal(tx, 0x02, d2);
	n3 = seal(tx, 0x03, d3);

	/* From the remote itself (address and default port): not a move. */
	memcpy(copy, d1, n1);
	assert_int_equal(uesp_tunnel_rx_from(rx, copy, n1, &remote, 4500,
	    &inner, &ilen), 1);
	assert_int_equal(rx->st.moved_addr.family, AF_UNSPEC);
	assert_int_equal(rx->st.moved_rx, 0);

	/* A forgery from the new source: dropped, nothing noted. */
	memcpy(copy, d3, n3);
	copy[n3 - 1] ^= 1;
	assert_int_equal(uesp_tunnel_rx_from(rx, copy, n3, &nat, 4502,
	    &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.auth, 1);
	assert_int_equal(rx->st.moved_addr.family, AF_UNSPEC);

	/* The newest authentic datagram from it: delivered and noted. */
	memcpy(copy, d3, n3);
	assert_int_equal(uesp_tunnel_rx_from(rx, copy, n3, &nat, 4502,
	    &inner, &ilen), 1);
	assert_int_equal(inner[20], 0x03);
	assert_string_equal(overlay_addr_str(&rx->st.moved_addr, buf,
	    sizeof(buf)), "198.18.3.2");
	assert_int_equal(rx->st.moved_port, 4502);
	assert_int_equal(rx->st.moved_rx, 1);

	/* An older authentic one (inside the window, not yet seen) from a
	 * stale source: delivered, but the noted source stays. */
	memcpy(copy, d2, n2);
	assert_int_equal(uesp_tunnel_rx_from(rx, copy, n2, &stale, 4501,
	    &inner, &ilen), 1);
	assert_string_equal(overlay_addr_str(&rx->st.moved_addr, buf,
	    sizeof(buf)), "198.18.3.2");
	assert_int_equal(rx->st.moved_port, 4502);
	assert_int_equal(rx->st.moved_rx, 1);

	/* A replay of the newest from the stale source: refused, no move. */
	memcpy(copy, d3, n3);
	assert_int_equal(uesp_tunnel_rx_from(rx, copy, n3, &stale, 4501,
	    &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.replay, 1);
	assert_int_equal(rx->st.moved_port, 4502);
	assert_int_equal(rx->st.moved_rx, 1);

	/* Through the connected socket (no source): never a move. */
	n1 = seal(tx, 0x04, d1);
	assert_int_equal(uesp_tunnel_rx(rx, d1, n1, &inner, &ilen), 1);
	assert_int_equal(rx->st.moved_rx, 1);
	uesp_tunnel_free(rx);
	uesp_tunnel_free(tx);
}

/* Authentic ESP whose inner part is not what the tunnel carries. */
static void
test_wrong_inner(void **state)
{
	struct uesp_tunnel *rx = mk_tunnel(OVERLAY_ENCAP_GRE);
	struct uesp_tunnel *vx = mk_sender(OVERLAY_ENCAP_VXLAN, 0x1000, key1);
	struct uesp_tunnel *vrx = mk_tunnel(OVERLAY_ENCAP_VXLAN);
	struct uesp_tunnel *vtx = mk_sender(OVERLAY_ENCAP_VXLAN, 0x2000, key2);
	uint8_t dg[UESP_BUF_LEN], *inner;
	size_t n, ilen;

	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x1000, key1)), 0);
	n = seal(vx, 0x01, dg);		/* next header 17 into a GRE tunnel */
	assert_int_equal(uesp_tunnel_rx(rx, dg, n, &inner, &ilen), 0);
	assert_int_equal(rx->st.drops.malformed, 1);

	/* VXLAN with the right VNI is delivered as an Ethernet frame; a VNI
	 * the tunnel does not have is malformed. */
	assert_int_equal(uesp_tunnel_sa_insert(vrx, mk_sa(OVERLAY_DIR_IN,
	    0x2000, key2)), 0);
	n = seal(vtx, 0x02, dg);
	assert_int_equal(uesp_tunnel_rx(vrx, dg, n, &inner, &ilen), 1);
	assert_int_equal(ilen, 74);
	assert_int_equal(inner[34], 0x02);
	vtx->p.vni = 43;
	n = seal(vtx, 0x03, dg);
	assert_int_equal(uesp_tunnel_rx(vrx, dg, n, &inner, &ilen), 0);
	assert_int_equal(vrx->st.drops.malformed, 1);
	assert_int_equal(vrx->st.rx_packets, 1);

	uesp_tunnel_free(rx);
	uesp_tunnel_free(vx);
	uesp_tunnel_free(vrx);
	uesp_tunnel_free(vtx);
}

/* Seal the inner packet/frame in[0..n) as sender t would. */
static size_t
seal_raw(struct uesp_tunnel *t, const uint8_t *in, size_t n, uint8_t *out)
{
	static uint8_t buf[UESP_BUF_LEN];
	uint8_t *dg;
	size_t dlen;

	memcpy(buf + UESP_HEADROOM, in, n);
	assert_int_equal(uesp_tunnel_tx(t, buf, n, &dg, &dlen), 0);
	memcpy(out, dg, dlen);
	return dlen;
}

/* Delivered (1) or dropped (0), and if dropped, counted as source. */
static int
rx_src(struct uesp_tunnel *rx, struct uesp_tunnel *tx, const uint8_t *in,
    size_t n)
{
	uint8_t dg[UESP_BUF_LEN], *inner;
	size_t dlen, ilen;
	uint64_t before = rx->st.drops.source;
	int r;

	dlen = seal_raw(tx, in, n, dg);
	r = uesp_tunnel_rx(rx, dg, dlen, &inner, &ilen);
	assert_int_equal(rx->st.drops.source, before + (r == 0));
	return r;
}

/*
 * Authentic packets from sources the tunnel does not allow are dropped
 * (counted as source), for GRE (IPv4, IPv6) and VXLAN (IPv4, IPv6, ARP,
 * a VLAN tag, other frames).  Allowed: the peer's tunnel address, the
 * listed prefixes, IPv6 link-local.
 */
static void
test_source_filter(void **state)
{
	struct uesp_tunnel *rx = mk_tunnel(OVERLAY_ENCAP_GRE);
	struct uesp_tunnel *tx = mk_sender(OVERLAY_ENCAP_GRE, 0x1000, key1);
	struct uesp_tunnel *vrx = mk_tunnel(OVERLAY_ENCAP_VXLAN);
	struct uesp_tunnel *vtx = mk_sender(OVERLAY_ENCAP_VXLAN, 0x2000, key2);
	uint8_t v4[60], v6[80], fr[100];

	assert_int_equal(uesp_tunnel_sa_insert(rx, mk_sa(OVERLAY_DIR_IN,
	    0x1000, key1)), 0);
	assert_int_equal(uesp_tunnel_sa_insert(vrx, mk_sa(OVERLAY_DIR_IN,
	    0x2000, key2)), 0);
	rx->p.nallowed = 2;
	assert_int_equal(overlay_prefix_parse("10.1.0.0/16", &rx->p.allowed[0]), 0);
	assert_int_equal(overlay_prefix_parse("2001:db8:1::/48",
	    &rx->p.allowed[1]), 0);
	uesp_tunnel_set_allowed(rx);
	vrx->p.nallowed = 2;
	vrx->p.allowed[0] = rx->p.allowed[0];
	vrx->p.allowed[1] = rx->p.allowed[1];
	uesp_tunnel_set_allowed(vrx);

	/* GRE, IPv4: peer, listed, and forged sources. */
	memset(v4, 0, sizeof(v4));
	v4[0] = 0x45;
	memcpy(v4 + 12, (uint8_t[]){ 169, 254, 0, 1 }, 4);
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 1);
	memcpy(v4 + 12, (uint8_t[]){ 10, 1, 77, 9 }, 4);
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 1);
	memcpy(v4 + 12, (uint8_t[]){ 10, 2, 77, 9 }, 4);
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 0);
	memcpy(v4 + 12, (uint8_t[]){ 169, 254, 0, 0 }, 4); /* our own */
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 0);
	/* GRE, IPv6: listed, link-local, forged. */
	memset(v6, 0, sizeof(v6));
	v6[0] = 0x60;
	memcpy(v6 + 8, (uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xff }, 7);
	assert_int_equal(rx_src(rx, tx, v6, sizeof(v6)), 1);
	memcpy(v6 + 8, (uint8_t[]){ 0xfe, 0x80 }, 2);
	assert_int_equal(rx_src(rx, tx, v6, sizeof(v6)), 1);
	memcpy(v6 + 8, (uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 2 }, 6);
	assert_int_equal(rx_src(rx, tx, v6, sizeof(v6)), 0);
	assert_int_equal(rx->st.drops.source, 3);
	assert_int_equal(rx->st.rx_packets, 4);
	/* The list is the tunnel's: changed in place, at once. */
	rx->p.nallowed = 0;
	uesp_tunnel_set_allowed(rx);
	memcpy(v4 + 12, (uint8_t[]){ 10, 1, 77, 9 }, 4);
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 0);
	memcpy(v4 + 12, (uint8_t[]){ 169, 254, 0, 1 }, 4);
	assert_int_equal(rx_src(rx, tx, v4, sizeof(v4)), 1);

	/* VXLAN: IPv4 in Ethernet, then behind a VLAN tag. */
	memset(fr, 0, sizeof(fr));
	fr[12] = 0x08;
	fr[14] = 0x45;
	memcpy(fr + 14 + 12, (uint8_t[]){ 10, 1, 0, 1 }, 4);
	assert_int_equal(rx_src(vrx, vtx, fr, 74), 1);
	memcpy(fr + 14 + 12, (uint8_t[]){ 10, 9, 0, 1 }, 4);
	assert_int_equal(rx_src(vrx, vtx, fr, 74), 0);
	memmove(fr + 18, fr + 14, 60);
	fr[12] = 0x81;
	fr[13] = 0x00;
	fr[16] = 0x08;
	fr[17] = 0x00;
	assert_int_equal(rx_src(vrx, vtx, fr, 78), 0);
	memcpy(fr + 18 + 12, (uint8_t[]){ 10, 1, 0, 1 }, 4);
	assert_int_equal(rx_src(vrx, vtx, fr, 78), 1);
	/* An IPv4 ethertype over an IPv6 header is not IPv4. */
	memset(fr, 0, sizeof(fr));
	fr[12] = 0x08;
	fr[14] = 0x60;
	assert_int_equal(rx_src(vrx, vtx, fr, 74), 0);
	/* ARP: the sender's protocol address counts. */
	memset(fr, 0, sizeof(fr));
	memcpy(fr + 12, (uint8_t[]){ 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1 },
	    10);
	memcpy(fr + 14 + 14, (uint8_t[]){ 169, 254, 0, 1 }, 4);
	assert_int_equal(rx_src(vrx, vtx, fr, 60), 1);
	memcpy(fr + 14 + 14, (uint8_t[]){ 169, 254, 0, 0 }, 4);
	assert_int_equal(rx_src(vrx, vtx, fr, 60), 0);
	/* IPv6 in Ethernet, and a frame of another kind (LLDP). */
	memset(fr, 0, sizeof(fr));
	fr[12] = 0x86;
	fr[13] = 0xdd;
	fr[14] = 0x60;
	memcpy(fr + 14 + 8, (uint8_t[]){ 0x20, 0x01, 0x0d, 0xb8, 0, 1 }, 6);
	assert_int_equal(rx_src(vrx, vtx, fr, 94), 1);
	fr[12] = 0x88;
	fr[13] = 0xcc;
	assert_int_equal(rx_src(vrx, vtx, fr, 94), 0);
	assert_int_equal(vrx->st.drops.source, 5);
	assert_int_equal(vrx->st.drops.malformed, 0);

	uesp_tunnel_free(rx);
	uesp_tunnel_free(tx);
	uesp_tunnel_free(vrx);
	uesp_tunnel_free(vtx);
}

/* Lifetimes change in place; the sequence number runs on. */
static void
test_sa_update(void **state)
{
	struct uesp_tunnel *t = mk_sender(OVERLAY_ENCAP_GRE, 0x1000, key1);
	struct overlay_sa_params p;
	struct overlay_sa_stats ss;
	uint8_t dg[UESP_BUF_LEN], kd[OVERLAY_KEY_DIGEST_LEN] = { 0 };

	seal(t, 1, dg);
	seal(t, 2, dg);
	memset(&p, 0, sizeof(p));
	p.tunnel_id = 1;
	p.dir = OVERLAY_DIR_OUT;
	p.spi = 0x1000;
	p.cipher = OVERLAY_AES_GCM_256;
	p.esn = true;
	p.replay_window = 64;
	p.hard.packets = 2;
	/* mk_sa leaves the digest zero: the same "key". */
	assert_int_equal(uesp_tunnel_sa_update(t, &p, kd, 0), 0);
	uesp_tunnel_sa_stats(t->active, true, 0, &ss);
	assert_true(ss.hard_expired);
	assert_int_equal(ss.seq, 2);
	p.hard.packets = 10;
	assert_int_equal(uesp_tunnel_sa_update(t, &p, kd, 0), 0);
	seal(t, 3, dg);
	uesp_tunnel_sa_stats(t->active, true, 0, &ss);
	assert_false(ss.hard_expired);
	assert_int_equal(ss.seq, 3);
	kd[0] = 1;
	assert_int_equal(uesp_tunnel_sa_update(t, &p, kd, 0), -EINVAL);
	kd[0] = 0;
	p.esn = false;
	assert_int_equal(uesp_tunnel_sa_update(t, &p, kd, 0), -EINVAL);
	p.spi = 0x1001;
	assert_int_equal(uesp_tunnel_sa_update(t, &p, kd, 0), -ENOENT);
	uesp_tunnel_free(t);
}

/* No active outbound SA, or its hard limit reached: nothing is sent. */
static void
test_fail_closed(void **state)
{
	struct uesp_tunnel *t = mk_tunnel(OVERLAY_ENCAP_GRE);
	static uint8_t buf[UESP_BUF_LEN];
	struct overlay_sa_params p;
	struct uesp_sa *sa;
	uint8_t *dg;
	size_t dlen;

	buf[UESP_HEADROOM] = 0x45;
	assert_int_equal(uesp_tunnel_tx(t, buf, 40, &dg, &dlen), -1);
	assert_int_equal(t->st.drops.no_sa, 1);

	/* Installed but not switched to: still closed. */
	memset(&p, 0, sizeof(p));
	p.tunnel_id = 1;
	p.dir = OVERLAY_DIR_OUT;
	p.spi = 0x1000;
	p.cipher = OVERLAY_AES_GCM_128;
	p.hard.packets = 2;
	sa = uesp_tunnel_sa_new(&p, 0);
	assert_non_null(sa);
	assert_int_equal(uesp_tunnel_sa_insert(t, sa), 0);
	assert_int_equal(uesp_tunnel_tx(t, buf, 40, &dg, &dlen), -1);
	assert_int_equal(t->st.drops.no_sa, 2);
	assert_int_equal(uesp_tunnel_sa_switch(t, 0x9999), -ENOENT);
	assert_int_equal(uesp_tunnel_sa_switch(t, 0x1000), 0);
	assert_int_equal(uesp_tunnel_tx(t, buf, 40, &dg, &dlen), 0);
	assert_int_equal(uesp_tunnel_tx(t, buf, 40, &dg, &dlen), 0);
	/* Hard lifetime of 2 packets reached. */
	assert_int_equal(uesp_tunnel_tx(t, buf, 40, &dg, &dlen), -1);
	assert_int_equal(t->st.drops.no_sa, 3);
	assert_true(sa->hard_expired);

	/* Removing the active SA closes the tunnel. */
	uesp_tunnel_sa_free(uesp_tunnel_sa_remove(t, 0x1000, OVERLAY_DIR_OUT));
	assert_null(t->active);
	assert_int_equal(t->st.tx_packets, 2);
	uesp_tunnel_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gre_push_pull),
		cmocka_unit_test(test_vxlan_push_pull),
		cmocka_unit_test(test_vxlan_sport),
		cmocka_unit_test(test_gso_roundtrip),
		cmocka_unit_test(test_gso_tap),
		cmocka_unit_test(test_spi_lookup_several),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_moved_source),
		cmocka_unit_test(test_wrong_inner),
		cmocka_unit_test(test_fail_closed),
		cmocka_unit_test(test_source_filter),
		cmocka_unit_test(test_sa_update),
	};

	log_init("test_overlay_uesp", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
