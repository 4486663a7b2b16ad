/*
 * test_overlay_xfrm.c — the kernel backend on the host kernel, in a
 * network namespace of its own (root).  The host has XFRM netlink and
 * VXLAN but neither ESP nor GRE, so what runs here is what the host can
 * carry: the SA message mapping (built, parsed back, never installed),
 * policies and VXLAN devices for real, fail-closed blocking, adoption
 * after a crash, ownership (others' objects are left alone) and the
 * kernel's extended-ack text in the log.  The ESP data path itself is
 * tested in the kernel lab (tests/lab/).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <cmocka.h>

#include <poll.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/overlay.h"
#include "overlay/xfrm/xfrm_ev.h"
#include "overlay/xfrm/xfrm_nl.h"

/* ---- helpers ------------------------------------------------------------ */

static void
sh(const char *cmd)
{
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

/* The number of output lines of cmd that contain needle. */
static int
count(const char *cmd, const char *needle)
{
	char line[1024];
	FILE *f = popen(cmd, "r");
	int n = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	pclose(f);
	return n;
}

static void
addr(struct overlay_addr *a, const char *s)
{
	assert_int_equal(overlay_addr_parse(s, a), 0);
}

static void
vxlan_params(struct overlay_tunnel_params *p, uint64_t id, const char *name,
    const char *remote, uint32_t vni)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	addr(&p->local, "192.0.2.1");
	addr(&p->remote, remote);
	addr(&p->inner_local, "10.255.0.0");
	addr(&p->inner_peer, "10.255.0.1");
	p->encap = OVERLAY_ENCAP_VXLAN;
	p->vni = vni;
	p->mtu = 1400;
	snprintf(p->ifname, sizeof(p->ifname), "%s", name);
	p->nallowed = 1;
	assert_int_equal(overlay_prefix_parse("10.9.0.0/16", &p->allowed[0]),
	    0);
}

static void
sa_params(struct overlay_sa_params *p, uint64_t tid, enum overlay_dir dir,
    uint32_t spi)
{
	memset(p, 0, sizeof(*p));
	p->tunnel_id = tid;
	p->dir = dir;
	p->spi = spi;
	p->cipher = OVERLAY_AES_GCM_256;
	memset(p->key, 0x5a, sizeof(p->key));
	memcpy(p->salt, "\x01\x02\x03\x04", 4);
	p->esn = true;
}

/* Run fn with stderr (the log) captured into buf. */
static void
capture(char *buf, size_t len, void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/test_xfrm_log.XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	unlink(path);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* ---- the SA message, without a kernel ----------------------------------- */

static void
test_sa_msg(void **state)
{
	struct overlay_sa_params p;
	struct xfrm_sa_place pl;
	struct nl_msg *msg;
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_usersa_info *info;
	struct xfrm_algo_aead *aead;
	struct xfrm_encap_tmpl *enc;
	struct xfrm_replay_state_esn *esn;
	uint8_t want[36];

	sa_params(&p, 1, OVERLAY_DIR_OUT, 0x1234);
	p.seq_start = (1ull << 32) + 5;
	p.hard.packets = 1000;
	p.soft.seconds = 60;
	memset(&pl, 0, sizeof(pl));
	addr(&pl.src, "192.0.2.1");
	addr(&pl.dst, "198.51.100.7");
	pl.sport = 4500;
	pl.dport = 4501;
	pl.reqid = XFRM_REQID_BASE | 9;
	assert_int_equal(xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &p, &pl, &msg), 0);
	assert_int_equal(nlmsg_hdr(msg)->nlmsg_type, XFRM_MSG_NEWSA);
	assert_int_equal(nlmsg_parse(nlmsg_hdr(msg), sizeof(*info), tb,
	    XFRMA_MAX, NULL), 0);
	info = nlmsg_data(nlmsg_hdr(msg));
	assert_int_equal(ntohl(info->id.spi), 0x1234);
	assert_int_equal(info->id.proto, IPPROTO_ESP);
	assert_int_equal(info->mode, XFRM_MODE_TRANSPORT);
	assert_int_equal(info->family, AF_INET);
	assert_memory_equal(&info->id.daddr, pl.dst.bytes, 4);
	assert_memory_equal(&info->saddr, pl.src.bytes, 4);
	assert_int_equal(info->reqid, XFRM_REQID_BASE | 9);
	assert_int_equal(info->flags & XFRM_STATE_ESN, XFRM_STATE_ESN);
	assert_int_equal(info->replay_window, 0);
	assert_true(info->lft.hard_packet_limit == 1000);
	assert_true(info->lft.soft_packet_limit == XFRM_INF);
	assert_true(info->lft.hard_byte_limit == XFRM_INF);
	assert_true(info->lft.soft_add_expires_seconds == 60);
	assert_true(info->lft.hard_add_expires_seconds == 0);

	/* RFC 4106: key || salt, 288 bits for AES-256, 128-bit ICV. */
	assert_non_null(tb[XFRMA_ALG_AEAD]);
	aead = nla_data(tb[XFRMA_ALG_AEAD]);
	assert_string_equal(aead->alg_name, "rfc4106(gcm(aes))");
	assert_int_equal(aead->alg_key_len, 288);
	assert_int_equal(aead->alg_icv_len, 128);
	memset(want, 0x5a, 32);
	memcpy(want + 32, "\x01\x02\x03\x04", 4);
	assert_memory_equal(aead->alg_key, want, 36);

	assert_non_null(tb[XFRMA_ENCAP]);
	enc = nla_data(tb[XFRMA_ENCAP]);
	assert_int_equal(enc->encap_type, 2);	/* UDP_ENCAP_ESPINUDP */
	assert_int_equal(ntohs(enc->encap_sport), 4500);
	assert_int_equal(ntohs(enc->encap_dport), 4501);

	/* The first packet carries seq_start + 1: oseq is the last sent. */
	assert_non_null(tb[XFRMA_REPLAY_ESN_VAL]);
	esn = nla_data(tb[XFRMA_REPLAY_ESN_VAL]);
	assert_int_equal(esn->oseq, 5);
	assert_int_equal(esn->oseq_hi, 1);
	assert_int_equal(esn->replay_window, OVERLAY_REPLAY_DEFAULT);
	assert_int_equal(esn->bmp_len, OVERLAY_REPLAY_DEFAULT / 32);
	xfrm_nl_free(msg);

	/* AES-128: 160 bits; a window above the kernel's limit is clamped. */
	p.cipher = OVERLAY_AES_GCM_128;
	p.replay_window = 65536;
	assert_int_equal(xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &p, &pl, &msg), 0);
	assert_int_equal(nlmsg_parse(nlmsg_hdr(msg), sizeof(*info), tb,
	    XFRMA_MAX, NULL), 0);
	assert_int_equal(((struct xfrm_algo_aead *)
	    nla_data(tb[XFRMA_ALG_AEAD]))->alg_key_len, 160);
	assert_int_equal(((struct xfrm_replay_state_esn *)
	    nla_data(tb[XFRMA_REPLAY_ESN_VAL]))->replay_window,
	    XFRM_REPLAY_KERNEL_MAX);
	xfrm_nl_free(msg);

	/* Without ESN, a start beyond 32 bits cannot be expressed. */
	p.esn = false;
	assert_int_equal(xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &p, &pl, &msg),
	    -EINVAL);
	assert_null(msg);
}

/* ---- NAT mappings (XFRM_MSG_MAPPING) ------------------------------------ */

/* A mapping as the kernel's xfrm_send_mapping builds it, through libnl. */
static struct nl_msg *
mapping_msg(uint8_t proto, uint16_t family, size_t len)
{
	struct xfrm_user_mapping um;
	struct nl_msg *msg;

	memset(&um, 0, sizeof(um));
	um.id.family = family;
	um.id.proto = proto;
	um.id.spi = htonl(0x7001);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.2", &um.id.daddr), 1);
	um.reqid = XFRM_REQID_BASE | 3;
	assert_int_equal(inet_pton(AF_INET, "203.0.113.1", &um.old_saddr), 1);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.1", &um.new_saddr), 1);
	um.old_sport = htons(40000);
	um.new_sport = htons(40001);
	msg = nlmsg_alloc_simple(XFRM_MSG_MAPPING, 0);
	assert_non_null(msg);
	assert_int_equal(nlmsg_append(msg, &um, len, NLMSG_ALIGNTO), 0);
	return msg;
}

static void
test_mapping_parse(void **state)
{
	struct overlay_sa_params p;
	struct xfrm_sa_place pl;
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_user_expire ue;
	struct xfrm_ev ev;
	struct nl_msg *msg;
	char a[INET6_ADDRSTRLEN];

	msg = mapping_msg(IPPROTO_ESP, AF_INET,
	    sizeof(struct xfrm_user_mapping));
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), 1);
	assert_int_equal(ev.type, XFRM_MSG_MAPPING);
	assert_int_equal(ev.spi, 0x7001);
	assert_int_equal(ev.reqid, XFRM_REQID_BASE | 3);
	assert_string_equal(overlay_addr_str(&ev.daddr, a, sizeof(a)),
	    "203.0.113.2");
	assert_string_equal(overlay_addr_str(&ev.old_addr, a, sizeof(a)),
	    "203.0.113.1");
	assert_string_equal(overlay_addr_str(&ev.new_addr, a, sizeof(a)),
	    "203.0.113.1");
	assert_int_equal(ev.old_port, 40000);
	assert_int_equal(ev.new_port, 40001);
	nlmsg_free(msg);

	/* Truncated, or an unknown family: refused.  Not ESP: not ours. */
	msg = mapping_msg(IPPROTO_ESP, AF_INET,
	    sizeof(struct xfrm_user_mapping) - 4);
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), -EINVAL);
	nlmsg_free(msg);
	msg = mapping_msg(IPPROTO_ESP, AF_UNIX, sizeof(struct xfrm_user_mapping));
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), -EINVAL);
	nlmsg_free(msg);
	msg = mapping_msg(IPPROTO_AH, AF_INET, sizeof(struct xfrm_user_mapping));
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), 0);
	nlmsg_free(msg);

	/* Expiry: hard or soft, by destination and SPI. */
	memset(&ue, 0, sizeof(ue));
	ue.state.family = AF_INET;
	ue.state.id.proto = IPPROTO_ESP;
	ue.state.id.spi = htonl(0x7002);
	ue.hard = 1;
	msg = nlmsg_alloc_simple(XFRM_MSG_EXPIRE, 0);
	assert_int_equal(nlmsg_append(msg, &ue, sizeof(ue), NLMSG_ALIGNTO), 0);
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), 1);
	assert_int_equal(ev.type, XFRM_MSG_EXPIRE);
	assert_int_equal(ev.spi, 0x7002);
	assert_true(ev.hard);
	nlmsg_free(msg);

	/* Inbound SAs ask the kernel for one mapping per new port
	 * (XFRMA_MTIMER_THRESH); outbound SAs get none. */
	sa_params(&p, 1, OVERLAY_DIR_IN, 0x7001);
	memset(&pl, 0, sizeof(pl));
	addr(&pl.src, "203.0.113.1");
	addr(&pl.dst, "203.0.113.2");
	pl.sport = 40000;
	pl.dport = 4500;
	assert_int_equal(xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &p, &pl, &msg), 0);
	assert_int_equal(nlmsg_parse(nlmsg_hdr(msg),
	    sizeof(struct xfrm_usersa_info), tb, XFRMA_MAX, NULL), 0);
	assert_non_null(tb[XFRMA_MTIMER_THRESH]);
	assert_int_equal(nla_get_u32(tb[XFRMA_MTIMER_THRESH]),
	    XFRM_MAPPING_MAXAGE_S);
	xfrm_nl_free(msg);
	p.dir = OVERLAY_DIR_OUT;
	assert_int_equal(xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &p, &pl, &msg), 0);
	assert_int_equal(nlmsg_parse(nlmsg_hdr(msg),
	    sizeof(struct xfrm_usersa_info), tb, XFRMA_MAX, NULL), 0);
	assert_null(tb[XFRMA_MTIMER_THRESH]);
	xfrm_nl_free(msg);
}

/* What a tunnel notes from mappings: stale ones ignored, a hold per tunnel. */
static void
test_mapping_note(void **state)
{
	struct overlay_addr remote, other;
	struct xfrm_moved m;
	struct xfrm_ev ev;
	struct nl_msg *msg;

	addr(&remote, "203.0.113.1");
	addr(&other, "198.51.100.9");
	memset(&m, 0, sizeof(m));
	msg = mapping_msg(IPPROTO_ESP, AF_INET,
	    sizeof(struct xfrm_user_mapping));
	assert_int_equal(xfrm_ev_parse(nlmsg_hdr(msg), &ev), 1);
	nlmsg_free(msg);

	/* Stale: the SA's port in the event is not the tunnel's any more. */
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 39999, 5000), 0);
	assert_int_equal(m.addr.family, AF_UNSPEC);
	assert_int_equal(m.rx, 0);
	/* Another remote address: not this tunnel's SA state either. */
	assert_int_equal(xfrm_moved_note(&m, &ev, &other, 40000, 5000), 0);
	assert_int_equal(m.rx, 0);

	/* The move is noted at once; the same one again only counts. */
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40000, 5000), 1);
	assert_true(overlay_addr_eq(&m.addr, &remote));
	assert_int_equal(m.port, 40001);
	assert_int_equal(m.rx, 1);
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40000, 5100), 0);
	assert_int_equal(m.port, 40001);
	assert_int_equal(m.rx, 2);

	/* Another port within the hold waits, then is noted. */
	ev.new_port = 40002;
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40000, 5500), 0);
	assert_int_equal(m.port, 40001);
	assert_int_equal(xfrm_moved_tick(&m, 5999), 0);
	assert_int_equal(xfrm_moved_tick(&m, 6000), 1);
	assert_int_equal(m.port, 40002);
	assert_int_equal(xfrm_moved_tick(&m, 9000), 0);

	/* Followed: cleared, but the hold stays (no faster flapping). */
	xfrm_moved_clear(&m);
	assert_int_equal(m.addr.family, AF_UNSPEC);
	assert_int_equal(m.rx, 0);
	ev.old_port = 40002;
	ev.new_port = 40003;
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40002, 6500), 0);
	assert_int_equal(xfrm_moved_tick(&m, 7000), 1);
	assert_int_equal(m.port, 40003);

	/* A new public address is a move like a new port, under the same
	 * hold: noted once the hold from the last one has passed. */
	ev.old_port = 40002;
	ev.new_port = 40002;
	addr(&ev.new_addr, "203.0.113.3");
	memset(&m, 0, sizeof(m));
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40002, 7500), 1);
	assert_true(overlay_addr_eq(&m.addr, &ev.new_addr));
	assert_int_equal(m.port, 40002);
	addr(&ev.new_addr, "203.0.113.4");
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40002, 7600), 0);
	assert_int_equal(xfrm_moved_tick(&m, 8499), 0);
	assert_int_equal(xfrm_moved_tick(&m, 8500), 1);
	assert_true(overlay_addr_eq(&m.addr, &ev.new_addr));
	/* Stale once followed: its old address is not the tunnel's. */
	xfrm_moved_clear(&m);
	assert_int_equal(xfrm_moved_note(&m, &ev, &ev.new_addr, 40002, 9600),
	    0);
	assert_int_equal(m.rx, 0);

	/* An IPv6 source for an IPv4 tunnel is never noted. */
	memset(&m, 0, sizeof(m));
	ev.new_addr.family = AF_INET6;
	assert_int_equal(xfrm_moved_note(&m, &ev, &remote, 40002, 8000), 0);
	assert_int_equal(m.addr.family, AF_UNSPEC);
}

/*
 * moved_fd: there, quiet, and deaf to a mapping forged by a process (a
 * root process may send to the kernel's XFRM groups; only the kernel's
 * own messages count).
 */
static void
test_mapping_forged(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_tunnel_stats ts;
	struct nl_sock *sk;
	struct nl_msg *msg;
	struct pollfd pf;
	void *ctx;

	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_non_null(xfrm_ops.moved_fd);
	pf.fd = xfrm_ops.moved_fd(ctx);
	pf.events = POLLIN;
	assert_true(pf.fd >= 0);
	vxlan_params(&tp, 9, "mwx9", "203.0.113.1", 99);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);

	sk = nl_socket_alloc();
	assert_non_null(sk);
	assert_int_equal(nl_connect(sk, NETLINK_XFRM), 0);
	nl_socket_set_peer_groups(sk, 1u << (XFRMNLGRP_MAPPING - 1));
	msg = mapping_msg(IPPROTO_ESP, AF_INET,
	    sizeof(struct xfrm_user_mapping));
	assert_true(nl_send(sk, msg) > 0);
	nlmsg_free(msg);
	nl_socket_free(sk);

	assert_int_equal(poll(&pf, 1, 500), 0);
	assert_int_equal(xfrm_ops.tunnel_stats(ctx, 9, &ts), 0);
	assert_int_equal(ts.moved_addr.family, AF_UNSPEC);
	assert_int_equal(ts.moved_port, 0);
	assert_int_equal(xfrm_ops.tunnel_del(ctx, 9), 0);
	xfrm_ops.fini(ctx);
}

/* ---- on the host kernel ------------------------------------------------- */

static void
test_registry(void **state)
{
	const struct overlay_ops *o = overlay_find("xfrm");

	assert_ptr_equal(o, &xfrm_ops);
	assert_int_equal(o->version, OVERLAY_API_VERSION);
	assert_non_null(o->sa_update);
	assert_non_null(o->sa_add_batch);
}

#define POLS "ip -o xfrm policy"
#define PRIO_ALLOW "priority 7173888 "
#define PRIO_BLOCK "priority 7173889 "

static void
test_tunnel_policies(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	struct overlay_tunnel_stats ts;
	struct overlay_drops gd;
	void *ctx;
	int err;

	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 7, "mwx7", "198.51.100.7", 77);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);

	/* The device: VXLAN with our VNI and port, tagged, strict rp_filter. */
	assert_int_equal(count("ip -d link show mwx7", "vxlan id 77"), 1);
	assert_int_equal(count("ip -d link show mwx7", "dstport 4789"), 1);
	assert_int_equal(count("ip -d link show mwx7", "noudpcsum"), 1);
	assert_int_equal(count("ip -d link show mwx7",
	    "alias meshwan-xfrm:7"), 1);
	assert_int_equal(count("ip -d link show mwx7", "mtu 1400"), 1);
	assert_int_equal(count("cat /proc/sys/net/ipv4/conf/mwx7/rp_filter",
	    "1"), 1);
	assert_int_equal(count("ip -4 addr show dev mwx7",
	    "inet 10.255.0.0/31"), 1);
	assert_int_equal(count("ip route show 10.9.0.0/16", "dev mwx7"), 1);
	/* The fallback route is one FRR's zebra does not import: any other
	 * protocol would make it a distance-0 "kernel" route that beats BGP. */
	assert_int_equal(count("ip route show 10.9.0.0/16",
	    "proto kernel metric 7077"), 1);

	/* Four policies: allow in/out, block in/out.  No SA yet: out blocks. */
	assert_int_equal(count(POLS, PRIO_ALLOW), 2);
	assert_int_equal(count(POLS, PRIO_BLOCK), 2);
	assert_int_equal(count(POLS " list dir out", "action block"), 2);
	assert_int_equal(count(POLS " list dir in", "proto esp"), 1);
	assert_int_equal(count(POLS " list dir out", "dport 4789"), 2);

	/* No SA: no switch; an unknown tunnel is -ENOENT. */
	assert_int_equal(xfrm_ops.sa_switch_out(ctx, 7, 4096), -ENOENT);
	sa_params(&sp, 8, OVERLAY_DIR_OUT, 4096);
	assert_int_equal(xfrm_ops.sa_add(ctx, &sp), -ENOENT);

	/* The host kernel has no ESP: the add fails and leaves nothing. */
	sa_params(&sp, 7, OVERLAY_DIR_OUT, 4096);
	err = xfrm_ops.sa_add(ctx, &sp);
	assert_int_equal(xfrm_ops.tunnel_stats(ctx, 7, &ts), 0);
	assert_int_equal(ts.sa_out, err == 0 ? 1 : 0);
	assert_int_equal(ts.spi_out, 0);
	assert_int_equal(xfrm_ops.global_stats(ctx, &gd), 0);

	/* In-place MTU change. */
	tp.mtu = 1300;
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), 0);
	assert_int_equal(count("ip link show mwx7", "mtu 1300"), 1);
	tp.vni = 78;
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), -EINVAL);

	/* Delete: device and policies gone. */
	assert_int_equal(xfrm_ops.tunnel_del(ctx, 7), 0);
	assert_int_equal(xfrm_ops.tunnel_del(ctx, 7), -ENOENT);
	assert_int_equal(count("ip -o link show", "mwx7"), 0);
	assert_int_equal(count(POLS, "priority 717388"), 0);
	xfrm_ops.fini(ctx);
}

/*
 * The XFRM_MSG_MIGRATE request of a peer address move, parsed back: the
 * policy selector and direction, one entry per SA (old and new addresses,
 * reqid, ESP transport), the new ESP-in-UDP ports; bad requests refused.
 */
static void
test_migrate_msg(void **state)
{
	struct xfrm_nl_move mv[XFRM_MIGRATE_MAX + 1];
	struct xfrm_selector sel;
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_userpolicy_id *pid;
	struct xfrm_user_migrate *um;
	struct xfrm_encap_tmpl *enc;
	struct nl_msg *msg;
	size_t i;

	(void)state;
	memset(mv, 0, sizeof(mv));
	for (i = 0; i < XFRM_MIGRATE_MAX + 1; i++) {
		addr(&mv[i].from.src, "192.0.2.1");
		addr(&mv[i].from.dst, "203.0.113.1");
		addr(&mv[i].to.src, "192.0.2.1");
		addr(&mv[i].to.dst, "203.0.113.3");
		mv[i].from.reqid = XFRM_REQID_BASE | (uint32_t)(i + 1);
	}
	memset(&sel, 0, sizeof(sel));
	sel.family = AF_INET;
	sel.proto = IPPROTO_GRE;
	sel.prefixlen_d = sel.prefixlen_s = 32;
	memcpy(&sel.saddr, mv[0].from.src.bytes, 4);
	memcpy(&sel.daddr, mv[0].from.dst.bytes, 4);

	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv, 2,
	    4500, 40001, &msg), 0);
	assert_int_equal(nlmsg_hdr(msg)->nlmsg_type, XFRM_MSG_MIGRATE);
	assert_true(nlmsg_hdr(msg)->nlmsg_flags & NLM_F_ACK);
	assert_int_equal(nlmsg_parse(nlmsg_hdr(msg), sizeof(*pid), tb,
	    XFRMA_MAX, NULL), 0);
	pid = nlmsg_data(nlmsg_hdr(msg));
	assert_memory_equal(&pid->sel, &sel, sizeof(sel));
	assert_int_equal(pid->dir, XFRM_POLICY_OUT);
	assert_non_null(tb[XFRMA_MIGRATE]);
	/* One attribute holding the array, as the kernel reads it. */
	assert_int_equal(nla_len(tb[XFRMA_MIGRATE]), 2 * sizeof(*um));
	um = nla_data(tb[XFRMA_MIGRATE]);
	for (i = 0; i < 2; i++) {
		assert_int_equal(um[i].proto, IPPROTO_ESP);
		assert_int_equal(um[i].mode, XFRM_MODE_TRANSPORT);
		assert_int_equal(um[i].reqid, XFRM_REQID_BASE | (i + 1));
		assert_int_equal(um[i].old_family, AF_INET);
		assert_int_equal(um[i].new_family, AF_INET);
		assert_memory_equal(&um[i].old_daddr, mv[0].from.dst.bytes, 4);
		assert_memory_equal(&um[i].old_saddr, mv[0].from.src.bytes, 4);
		assert_memory_equal(&um[i].new_daddr, mv[0].to.dst.bytes, 4);
		assert_memory_equal(&um[i].new_saddr, mv[0].to.src.bytes, 4);
	}
	assert_non_null(tb[XFRMA_ENCAP]);
	enc = nla_data(tb[XFRMA_ENCAP]);
	assert_int_equal(enc->encap_type, 2);	/* UDP_ENCAP_ESPINUDP */
	assert_int_equal(ntohs(enc->encap_sport), 4500);
	assert_int_equal(ntohs(enc->encap_dport), 40001);
	xfrm_nl_free(msg);

	/* None, more than a policy holds, no reqid, mixed families. */
	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv, 0,
	    4500, 4500, &msg), -EINVAL);
	assert_null(msg);
	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv,
	    XFRM_MIGRATE_MAX + 1, 4500, 4500, &msg), -EINVAL);
	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv,
	    XFRM_MIGRATE_MAX, 4500, 4500, &msg), 0);
	xfrm_nl_free(msg);
	mv[1].from.reqid = 0;
	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv, 2,
	    4500, 4500, &msg), -EINVAL);
	mv[1].from.reqid = XFRM_REQID_BASE | 2;
	addr(&mv[1].to.dst, "2001:db8::3");
	assert_int_equal(xfrm_nl_migrate_msg(&sel, XFRM_POLICY_OUT, mv, 2,
	    4500, 4500, &msg), -EINVAL);
	assert_null(msg);
}

/* The SA state of SPI spi in `ip -s xfrm state`, as one line. */
static int
state_has(const char *spi, const char *needle)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "ip -s xfrm state | awk '/^src/ { "
	    "if (l != \"\") print l; l = $0; next } { l = l \" \" $0 } "
	    "END { if (l != \"\") print l }' | grep -E 'spi %s[( ]'", spi);
	return count(cmd, needle);
}

/*
 * A peer address move (NAT rebinding to a new public address):
 * tunnel_update to a new remote moves the device and every policy to it,
 * none naming the old address stays, and the tunnel keeps blocking while
 * it has no active SA.  Where the kernel has ESP (the lab VM), the SAs
 * move too, keeping SPI and sequence number, the outbound one past the
 * skip (XFRM_MIGRATE_SEQ_GAP), with the new ESP-in-UDP port.
 */
static void
test_tunnel_move(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp, other;
	struct overlay_sa_params sp;
	struct overlay_tunnel_stats ts;
	void *ctx;
	int esp;

	(void)state;
	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 9, "mwx9", "198.51.100.9", 99);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	sa_params(&sp, 9, OVERLAY_DIR_OUT, 0x5001);
	esp = xfrm_ops.sa_add(ctx, &sp) == 0;
	if (esp) {
		sa_params(&sp, 9, OVERLAY_DIR_IN, 0x5002);
		assert_int_equal(xfrm_ops.sa_add(ctx, &sp), 0);
		assert_int_equal(xfrm_ops.sa_switch_out(ctx, 9, 0x5001), 0);
	}

	tp.remote_port = 40001;
	addr(&tp.remote, "198.51.100.10");
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), 0);
	assert_int_equal(count("ip -d link show mwx9", "remote 198.51.100.10"),
	    1);
	assert_int_equal(count("ip -d link show mwx9", "vxlan id 99"), 1);
	assert_int_equal(count(POLS, "198.51.100.10/32"), 4);
	assert_int_equal(count(POLS, "198.51.100.9/32"), 0);
	assert_int_equal(count(POLS " list dir out", PRIO_ALLOW), 1);
	assert_int_equal(count(POLS " list dir in", "proto esp"), 1);
	assert_int_equal(xfrm_ops.tunnel_stats(ctx, 9, &ts), 0);
	if (!esp) {
		assert_int_equal(count(POLS " list dir out", "action block"), 2);
	} else {
		/* Same SPIs, new addresses and port, counter past the skip. */
		assert_int_equal(ts.spi_out, 0x5001);
		assert_int_equal(ts.sa_in + ts.sa_out, 2);
		assert_int_equal(count(POLS " list dir out", "reqid"), 1);
		assert_int_equal(count("ip xfrm state", "198.51.100.9"), 0);
		assert_int_equal(state_has("0x00005001",
		    "dst 198.51.100.10"), 1);
		assert_int_equal(state_has("0x00005001",
		    "sport 4500 dport 40001"), 1);
		assert_int_equal(state_has("0x00005001", "oseq 0x10000 "), 1);
		assert_int_equal(state_has("0x00005002",
		    "src 198.51.100.10 dst 192.0.2.1"), 1);
		assert_int_equal(state_has("0x00005002",
		    "sport 40001 dport 4500"), 1);
	}

	/* Moved back; a remote another tunnel holds is refused. */
	tp.remote_port = 0;
	addr(&tp.remote, "198.51.100.9");
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), 0);
	assert_int_equal(count(POLS, "198.51.100.9/32"), 4);
	assert_int_equal(count(POLS, "198.51.100.10/32"), 0);
	vxlan_params(&other, 10, "mwx10", "198.51.100.11", 100);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &other), 0);
	addr(&tp.remote, "198.51.100.11");
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), -EEXIST);
	assert_int_equal(count("ip -d link show mwx9", "remote 198.51.100.9 "),
	    1);
	/* Another family cannot be moved to in place. */
	addr(&tp.remote, "2001:db8::9");
	assert_int_equal(xfrm_ops.tunnel_update(ctx, &tp), -EINVAL);
	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip -o link show", "mwx9"), 0);
	assert_int_equal(count(POLS, "priority 717388"), 0);
}

/* After a crash (no fini), the next instance adopts: same device. */
static void
test_adopt(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	void *ctx;
	pid_t pid;
	int st;
	unsigned idx;

	memset(&ip, 0, sizeof(ip));
	vxlan_params(&tp, 9, "mwx9", "198.51.100.9", 99);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (xfrm_ops.init(&ip, &ctx) != 0 ||
		    xfrm_ops.tunnel_add(ctx, &tp) != 0)
			_exit(1);
		_exit(0);	/* crash: nothing removed */
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	idx = if_nametoindex("mwx9");
	assert_true(idx != 0);
	assert_int_equal(count(POLS, PRIO_ALLOW), 2);

	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	assert_int_equal(if_nametoindex("mwx9"), idx);	/* not re-made */
	assert_int_equal(count(POLS, PRIO_ALLOW), 2);
	assert_int_equal(count(POLS, PRIO_BLOCK), 2);
	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip -o link show", "mwx9"), 0);
	assert_int_equal(count(POLS, "priority 717388"), 0);
}

/*
 * keep_at_fini (what meshwan-edge asks for): a clean fini leaves the
 * device and its policies, and the next instance adopts them; a fini
 * without it removes them.
 */
static void
test_keep_at_fini(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	void *ctx;
	unsigned idx;

	memset(&ip, 0, sizeof(ip));
	ip.keep_at_fini = true;
	vxlan_params(&tp, 8, "mwx8", "198.51.100.8", 98);
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	idx = if_nametoindex("mwx8");
	assert_true(idx != 0);
	xfrm_ops.fini(ctx);
	assert_int_equal(if_nametoindex("mwx8"), idx);
	assert_int_equal(count(POLS, PRIO_ALLOW), 2);
	assert_int_equal(count(POLS, PRIO_BLOCK), 2);

	ip.keep_at_fini = false;
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	assert_int_equal(if_nametoindex("mwx8"), idx);	/* adopted */
	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip -o link show", "mwx8"), 0);
	assert_int_equal(count(POLS, "priority 717388"), 0);
}

/* The mark of the only record of a sequence file (big-endian at 48). */
static uint64_t
seq_mark(const char *path)
{
	uint8_t b[8];
	uint64_t v = 0;
	int fd = open(path, O_RDONLY), i;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, sizeof(b), 48), (ssize_t)sizeof(b));
	close(fd);
	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/*
 * A seq file: locked to one instance; an outbound sa_add reserves (2^30)
 * before the install is tried, a failed install releases the reservation
 * (the same key is tried again, not refused as live), and the next
 * instance's reservation for that key starts above the mark.  The kernel
 * side (oseq at the mark after a "reboot") is in the lab: xfrm_backend.sh.
 */
static void
test_seq_file(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	char path[] = "/tmp/test_xfrm_seq.XXXXXX";
	void *ctx, *ctx2;
	int fd, err;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	memset(&ip, 0, sizeof(ip));
	ip.seq_file = path;
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_int_not_equal(xfrm_ops.init(&ip, &ctx2), 0);	/* locked */
	vxlan_params(&tp, 11, "mwx11", "198.51.100.11", 111);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	sa_params(&sp, 11, OVERLAY_DIR_OUT, 4097);
	err = xfrm_ops.sa_add(ctx, &sp);
	assert_int_equal(seq_mark(path), (uint64_t)1 << 30);
	if (err != 0) {
		/* No ESP here: released, so the retry is tried again. */
		assert_int_equal(xfrm_ops.sa_add(ctx, &sp), err);
		assert_int_equal(seq_mark(path), (uint64_t)2 << 30);
	}
	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip -o link show", "mwx11"), 0);

	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	err = xfrm_ops.sa_add(ctx, &sp);
	assert_int_equal(seq_mark(path), (uint64_t)(err != 0 ? 3 : 2) << 30);
	xfrm_ops.fini(ctx);
	unlink(path);
}

struct seq_batch_call {
	const char *path;
	unsigned adds;		/* batches of the same four SAs */
};

/* One instance, a batch of three outbound SAs and an inbound one, fini. */
static void
seq_batch_call(void *arg)
{
	struct seq_batch_call *sb = arg;
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params p[4];
	int res[4], i;
	void *ctx;

	memset(&ip, 0, sizeof(ip));
	ip.seq_file = sb->path;
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 23, "mwx23", "198.51.100.23", 123);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	for (i = 0; i < 3; i++) {
		sa_params(&p[i], 23, OVERLAY_DIR_OUT, 7000 + (uint32_t)i);
		p[i].key[0] = (uint8_t)(0x30 + i);
	}
	sa_params(&p[3], 23, OVERLAY_DIR_IN, 7100);
	(void)overlay_sa_add_batch(&xfrm_ops, ctx, p, 4, res);
	xfrm_ops.fini(ctx);
}

/*
 * A batch with a seq file: one fsync for the run's reservations, not one
 * per outbound SA, and still every key's mark is on disk before its SA
 * goes (a second instance finds all three keys above their marks).
 */
static void
test_seq_batch(void **state)
{
	char path[] = "/tmp/test_xfrm_seqb.XXXXXX";
	char log[16384];
	struct seq_batch_call sb;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	sb.path = path;
	/* Creating the file costs one fsync, the batch one. */
	capture(log, sizeof(log), seq_batch_call, &sb);
	if (strstr(log, ": 2 fsyncs") == NULL)
		fail_msg("not one fsync for the batch: %s", log);
	capture(log, sizeof(log), seq_batch_call, &sb);
	if (strstr(log, ": 1 fsyncs") == NULL)
		fail_msg("not one fsync for the batch: %s", log);
	assert_non_null(strstr(log, "SA out 7000: key seen before, starts "
	    "after 1073741824"));
	assert_non_null(strstr(log, "SA out 7001: key seen before, starts "
	    "after 1073741824"));
	assert_non_null(strstr(log, "SA out 7002: key seen before, starts "
	    "after 1073741824"));
	assert_int_equal(count("ip -o link show", "mwx23"), 0);
	unlink(path);
}

struct add_call {
	void *ctx;
	const struct overlay_tunnel_params *tp;
	int ret;
};

static void
add_call(void *arg)
{
	struct add_call *a = arg;

	a->ret = xfrm_ops.tunnel_add(a->ctx, a->tp);
}

/* Others' objects stay; the kernel's own error text reaches the log. */
static void
test_ownership_extack(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct add_call a;
	char log[4096];
	void *ctx;

	sh("ip link add other0 type vxlan id 55 dstport 4789 local 192.0.2.1 "
	    "remote 198.51.100.55");
	sh("ip xfrm policy add src 192.0.2.1/32 dst 203.0.113.1/32 proto gre "
	    "dir out priority 100 action block");
	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);

	/* A device of that name that is not ours is refused, not taken. */
	vxlan_params(&tp, 11, "other0", "198.51.100.11", 11);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), -EEXIST);
	assert_int_equal(count("ip -o link show", "other0"), 1);

	/* Same VNI, port and local as other0: the kernel says why. */
	vxlan_params(&tp, 12, "mwx12", "198.51.100.12", 55);
	a.ctx = ctx;
	a.tp = &tp;
	capture(log, sizeof(log), add_call, &a);
	assert_true(a.ret < 0);
	if (strstr(log, "already exists") == NULL)
		fail_msg("no extended ack in the log: %s", log);
	assert_int_equal(count("ip -o link show", "mwx12"), 0);

	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip -o link show", "other0"), 1);
	assert_int_equal(count(POLS, "priority 100 "), 1);
	sh("ip link del other0; ip xfrm policy flush");
}

/*
 * The bytes queued on, and the messages dropped by, this namespace's
 * route netlink sockets of this process (/proc/net/netlink: protocol 0,
 * a port id of ours).  The namespace is the test's own.
 */
static void
rtnl_queued(unsigned long *rmem, unsigned long *drops)
{
	char line[512];
	FILE *f = fopen("/proc/net/netlink", "r");
	unsigned long proto, r, d;
	unsigned int pid, groups;

	*rmem = *drops = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%*s %lu %u %x %lu %*u %*u %*u %lu", &proto,
		    &pid, &groups, &r, &d) == 5 && proto == 0 && pid != 0) {
			*rmem += r;
			*drops += d;
		}
	fclose(f);
}

/*
 * Status reads between changes (the agent reads each tunnel's counters
 * every few seconds, and a steady mesh makes no change for minutes) must
 * leave nothing behind on the backend's route socket.  They did: libnl's
 * rtnl_link_get_kernel counted sequence numbers that xfrm_nl_talk on the
 * same socket moved on without it, so each read stopped at a sequence
 * mismatch and left one more answer queued.  Once the queue filled, the
 * kernel dropped answers to that socket, and in the lab's switch from
 * VXLAN to GRE the deletion of a VXLAN device waited for an ack that
 * never came (since c8aec27: -ETIMEDOUT after XFRM_NL_ANSWER_S).
 */
static void
test_stats_then_del(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_tunnel_stats ts;
	unsigned long rmem, drops;
	uint64_t t0;
	void *ctx;
	int i;

	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 21, "mwx21", "198.51.100.21", 21);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	/* More than a 2 MiB receive buffer would hold of the leftovers. */
	for (i = 0; i < 3000; i++)
		assert_int_equal(xfrm_ops.tunnel_stats(ctx, 21, &ts), 0);
	rtnl_queued(&rmem, &drops);
	if (rmem != 0 || drops != 0)
		fail_msg("status reads left %lu bytes queued, %lu dropped",
		    rmem, drops);
	t0 = util_mono_ms();
	assert_int_equal(xfrm_ops.tunnel_del(ctx, 21), 0);
	assert_true(util_mono_ms() - t0 < 4000);	/* not XFRM_NL_ANSWER_S */
	assert_int_equal(count("ip -o link show", "mwx21"), 0);
	xfrm_ops.fini(ctx);
}

/*
 * The kernel's side of the stall above: once answers fill a netlink
 * socket, the kernel marks it congested and drops every answer to it
 * without a further error until a read empties the queue.  xfrm_nl_talk
 * empties it before it asks, so its ack gets through (and it says so).
 */
struct talk_call {
	struct nl_sock *sk;
	int ret;
};

static void
talk_call(void *arg)
{
	struct talk_call *t = arg;
	struct ifinfomsg ifi;
	struct nl_msg *msg;

	msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST);
	assert_non_null(msg);
	memset(&ifi, 0, sizeof(ifi));
	ifi.ifi_index = 1;		/* lo */
	assert_int_equal(nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO),
	    0);
	t->ret = xfrm_nl_talk(t->sk, msg, NULL, NULL, NULL, 0);
}

static void
test_talk_congested(void **state)
{
	struct talk_call t;
	struct nl_msg *msg;
	struct ifinfomsg ifi;
	char log[4096];
	uint64_t t0;
	int i, rcvbuf = 0;
	socklen_t len = sizeof(rcvbuf);

	t.sk = xfrm_nl_open(NETLINK_ROUTE);
	assert_non_null(t.sk);
	assert_int_equal(getsockopt(nl_socket_get_fd(t.sk), SOL_SOCKET,
	    SO_RCVBUF, &rcvbuf, &len), 0);
	/* Answers nobody reads: past the receive buffer, whatever its size. */
	for (i = 0; i < 2 * rcvbuf / 512 + 100; i++) {
		msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST);
		assert_non_null(msg);
		memset(&ifi, 0, sizeof(ifi));
		ifi.ifi_index = 1;
		assert_int_equal(nlmsg_append(msg, &ifi, sizeof(ifi),
		    NLMSG_ALIGNTO), 0);
		assert_true(nl_send_auto(t.sk, msg) > 0);
		nlmsg_free(msg);
	}
	t0 = util_mono_ms();
	capture(log, sizeof(log), talk_call, &t);
	assert_int_equal(t.ret, 0);
	assert_true(util_mono_ms() - t0 < 4000);	/* not XFRM_NL_ANSWER_S */
	if (strstr(log, "stale message") == NULL)
		fail_msg("the leftovers were not logged: %s", log);
	nl_socket_free(t.sk);
}

struct batch_call {
	void *ctx;
	struct overlay_sa_params *p;
	size_t n;
	int *res;
	int ret;
};

static void
batch_call(void *arg)
{
	struct batch_call *b = arg;

	b->ret = overlay_sa_add_batch(&xfrm_ops, b->ctx, b->p, b->n, b->res);
}

/* The log line of SA spi (xfrm_fail's "tunnel T: DIR SA SPI: ..."), or NULL. */
static const char *
sa_line(const char *log, const char *dir, uint32_t spi, char *buf, size_t len)
{
	char key[64];
	const char *l, *e;

	snprintf(key, sizeof(key), ": %s SA %u: ", dir, spi);
	if ((l = strstr(log, key)) == NULL)
		return NULL;
	e = strchr(l, '\n');
	snprintf(buf, len, "%.*s", (int)(e != NULL ? e - l : (long)strlen(l)),
	    l);
	return buf;
}

/*
 * sa_add_batch: one batch with refusals in the middle, of both kinds.
 * Before the kernel: an unknown tunnel, an inbound SPI and an outbound
 * key that an earlier SA of the same batch holds.  By the kernel: an SPI
 * a foreign SA holds (the lab's kernel; the host has no ESP and refuses
 * every SA, with its extended-ack text).  Each SA's fate is its own: the
 * others are installed (where the kernel can), the record holds exactly
 * those, a key the kernel refused may come again, and one it took may not.
 */
static void
test_sa_batch(void **state)
{
	enum { N = 8 };
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_tunnel_stats ts;
	struct overlay_sa_stats ss;
	struct overlay_sa_params p[N], q;
	struct batch_call b;
	int res[N], i, err;
	bool esp;
	char log[16384], line[512];
	void *ctx;

	(void)state;
	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 21, "mwx21", "198.51.100.21", 121);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	/* A foreign SA on SPI 5004 (fails on the host: no ESP there). */
	(void)system("ip xfrm state add src 198.51.100.21 dst 192.0.2.1 proto "
	    "esp spi 5004 mode transport aead 'rfc4106(gcm(aes))' "
	    "0x0101010101010101010101010101010101010101 128 2>/dev/null");

	sa_params(&p[0], 21, OVERLAY_DIR_IN, 5000);
	sa_params(&p[1], 99, OVERLAY_DIR_IN, 5001);	/* no tunnel 99 */
	sa_params(&p[2], 21, OVERLAY_DIR_IN, 5002);
	sa_params(&p[3], 21, OVERLAY_DIR_IN, 5002);	/* SPI of p[2] */
	sa_params(&p[4], 21, OVERLAY_DIR_IN, 5004);	/* the foreign SPI */
	sa_params(&p[5], 21, OVERLAY_DIR_OUT, 6000);
	sa_params(&p[6], 21, OVERLAY_DIR_OUT, 6001);	/* key of p[5] */
	sa_params(&p[7], 21, OVERLAY_DIR_IN, 5007);
	p[5].key[0] = 0x77;
	p[6].key[0] = 0x77;
	for (i = 0; i < N; i++)
		res[i] = 12345;
	b.ctx = ctx;
	b.p = p;
	b.n = N;
	b.res = res;
	capture(log, sizeof(log), batch_call, &b);
	esp = res[0] == 0;
	print_message("sa_add_batch: %s\n", esp ? "the kernel has ESP: "
	    "installs checked" : "no ESP here: refusals checked");

	/* Refused before the kernel, whatever the kernel can do. */
	assert_int_equal(res[1], -ENOENT);
	assert_int_equal(res[3], -EEXIST);
	assert_int_equal(res[6], -EEXIST);
	assert_int_equal(b.ret, esp ? -ENOENT : res[0]);
	assert_int_equal(xfrm_ops.tunnel_stats(ctx, 21, &ts), 0);
	if (esp) {
		/* The lab's kernel: all but the foreign SPI are in. */
		assert_int_equal(res[2], 0);
		assert_int_equal(res[4], -EEXIST);
		assert_int_equal(res[5], 0);
		assert_int_equal(res[7], 0);
		assert_int_equal(ts.sa_in, 3);
		assert_int_equal(ts.sa_out, 1);
		/* 5000, 5002, 5007, 6000 and the foreign 5004. */
		assert_int_equal(count("ip xfrm state", "spi 0x00001388 "), 1);
		assert_int_equal(count("ip xfrm state", "spi 0x0000138a "), 1);
		assert_int_equal(count("ip xfrm state", "spi 0x0000138f "), 1);
		assert_int_equal(count("ip xfrm state", "spi 0x00001770 "), 1);
		assert_int_equal(count("ip xfrm state", "proto esp spi"), 5);
		assert_int_equal(xfrm_ops.sa_stats(ctx, 21, 5004,
		    OVERLAY_DIR_IN, &ss), -ENOENT);
		assert_int_equal(xfrm_ops.sa_stats(ctx, 21, 5007,
		    OVERLAY_DIR_IN, &ss), 0);
		assert_non_null(sa_line(log, "in", 5004, line, sizeof(line)));
		/* p[5]'s key was taken: never again, even on another SPI. */
		q = p[5];
		q.spi = 6002;
		assert_int_equal(xfrm_ops.sa_add(ctx, &q), -EEXIST);
		assert_int_equal(xfrm_ops.sa_add(ctx, &p[0]), -EEXIST);
	} else {
		/* The host: the kernel refused each one, saying why. */
		assert_true(res[0] < 0);
		assert_int_equal(res[2], res[0]);
		assert_int_equal(res[4], res[0]);
		assert_int_equal(res[5], res[0]);
		assert_int_equal(res[7], res[0]);
		assert_int_equal(ts.sa_in, 0);
		assert_int_equal(ts.sa_out, 0);
		assert_non_null(sa_line(log, "out", 6000, line, sizeof(line)));
		/* strerror, then ": " and the kernel's extended-ack text. */
		if (strstr(line, strerror(-res[0])) == NULL ||
		    strstr(strstr(line, strerror(-res[0])), ": ") == NULL)
			fail_msg("no extended ack for SA 6000: %s", line);
		assert_non_null(sa_line(log, "in", 5007, line, sizeof(line)));
		/* Nothing was sealed: p[5]'s key may come again. */
		q = p[5];
		q.spi = 6002;
		err = xfrm_ops.sa_add(ctx, &q);
		assert_int_equal(err, res[0]);
	}
	(void)system("ip xfrm state del src 198.51.100.21 dst 192.0.2.1 proto "
	    "esp spi 5004 2>/dev/null");
	xfrm_ops.fini(ctx);
	assert_int_equal(count("ip xfrm state", "proto esp"), 0);
	assert_int_equal(count("ip -o link show", "mwx21"), 0);
}

/*
 * sa_del_batch: each SA the outcome of its own sa_del, in order (an
 * unknown tunnel or SA, or one named twice, is -ENOENT; one the kernel
 * already dropped goes quietly); deleting the active outbound SA leaves
 * the tunnel blocking.  On the host (no ESP) only the refusals can be
 * seen; in the lab VM (xfrm_unit) the kernel's SAs go with them.  And
 * overlay_sa_del_batch on a backend without it (null): n sa_del calls.
 */
static void
test_sa_del_batch(void **state)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_tunnel_stats ts;
	struct overlay_sa_params sp;
	struct overlay_sa_ref refs[7];
	int res[7], i;
	bool esp;
	void *ctx;

	(void)state;
	memset(&ip, 0, sizeof(ip));
	assert_int_equal(xfrm_ops.init(&ip, &ctx), 0);
	vxlan_params(&tp, 23, "mwx23", "198.51.100.23", 123);
	assert_int_equal(xfrm_ops.tunnel_add(ctx, &tp), 0);
	sa_params(&sp, 23, OVERLAY_DIR_IN, 5100);
	esp = xfrm_ops.sa_add(ctx, &sp) == 0;
	if (esp) {
		sa_params(&sp, 23, OVERLAY_DIR_IN, 5101);
		assert_int_equal(xfrm_ops.sa_add(ctx, &sp), 0);
		sa_params(&sp, 23, OVERLAY_DIR_IN, 5102);
		assert_int_equal(xfrm_ops.sa_add(ctx, &sp), 0);
		sa_params(&sp, 23, OVERLAY_DIR_OUT, 6100);
		assert_int_equal(xfrm_ops.sa_add(ctx, &sp), 0);
		assert_int_equal(xfrm_ops.sa_switch_out(ctx, 23, 6100), 0);
		/* 5102 removed by hand: the kernel's answer is ESRCH. */
		sh("ip xfrm state del src 198.51.100.23 dst 192.0.2.1 proto esp "
		    "spi 5102");
	}
	memset(refs, 0, sizeof(refs));
	refs[0] = (struct overlay_sa_ref){ 23, 5100, OVERLAY_DIR_IN };
	refs[1] = (struct overlay_sa_ref){ 99, 5101, OVERLAY_DIR_IN };
	refs[2] = (struct overlay_sa_ref){ 23, 6100, OVERLAY_DIR_OUT };
	refs[3] = (struct overlay_sa_ref){ 23, 5100, OVERLAY_DIR_IN };
	refs[4] = (struct overlay_sa_ref){ 23, 5102, OVERLAY_DIR_IN };
	refs[5] = (struct overlay_sa_ref){ 23, 7777, OVERLAY_DIR_OUT };
	refs[6] = (struct overlay_sa_ref){ 23, 5100, OVERLAY_DIR_OUT };
	for (i = 0; i < 7; i++)
		res[i] = 12345;
	/* The first failure: tunnel 99 (the host: 5100, never installed). */
	assert_int_equal(overlay_sa_del_batch(&xfrm_ops, ctx, refs, 7, res),
	    -ENOENT);
	assert_int_equal(res[1], -ENOENT);	/* no tunnel 99 */
	assert_int_equal(res[5], -ENOENT);	/* no such SA */
	assert_int_equal(res[6], -ENOENT);	/* 5100 is inbound */
	assert_int_equal(xfrm_ops.tunnel_stats(ctx, 23, &ts), 0);
	if (esp) {
		assert_int_equal(res[0], 0);
		assert_int_equal(res[2], 0);
		assert_int_equal(res[3], -ENOENT);	/* named twice */
		assert_int_equal(res[4], 0);	/* gone already */
		assert_int_equal(ts.sa_in, 1);
		assert_int_equal(ts.sa_out, 0);
		assert_int_equal(ts.spi_out, 0);
		assert_int_equal(count("ip xfrm state", "proto esp spi"), 1);
		assert_int_equal(count("ip xfrm state", "spi 0x000013ed "), 1);
		assert_int_equal(count(POLS " list dir out", "action block"), 2);
	} else {
		assert_int_equal(res[0], -ENOENT);	/* never installed */
		assert_int_equal(res[2], -ENOENT);
		assert_int_equal(ts.sa_in + ts.sa_out, 0);
	}
	xfrm_ops.fini(ctx);

	/* The fallback: one sa_del per SA, in order, the same results. */
	assert_int_equal(null_ops.init(&ip, &ctx), 0);
	tp.id = 5;
	assert_int_equal(null_ops.tunnel_add(ctx, &tp), 0);
	sa_params(&sp, 5, OVERLAY_DIR_IN, 5100);
	assert_int_equal(null_ops.sa_add(ctx, &sp), 0);
	refs[0] = (struct overlay_sa_ref){ 5, 5100, OVERLAY_DIR_IN };
	refs[1] = (struct overlay_sa_ref){ 5, 5100, OVERLAY_DIR_IN };
	assert_null(null_ops.sa_del_batch);
	assert_int_equal(overlay_sa_del_batch(&null_ops, ctx, refs, 2, res),
	    -ENOENT);
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], -ENOENT);
	assert_non_null(strstr(null_record(ctx),
	    "sa_del tunnel=5 dir=in spi=5100"));
	null_ops.fini(ctx);
}

/* The test owns its network namespace: nothing leaks to the host. */
static int
setup(void **state)
{
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s (needs root)\n",
		    strerror(errno));
		return -1;
	}
	sh("ip link set lo up && ip addr add 192.0.2.1/32 dev lo");
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sa_msg),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_tunnel_policies),
		cmocka_unit_test(test_migrate_msg),
		cmocka_unit_test(test_tunnel_move),
		cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_keep_at_fini),
		cmocka_unit_test(test_seq_file),
		cmocka_unit_test(test_ownership_extack),
		cmocka_unit_test(test_stats_then_del),
		cmocka_unit_test(test_talk_congested),
		cmocka_unit_test(test_mapping_parse),
		cmocka_unit_test(test_mapping_note),
		cmocka_unit_test(test_mapping_forged),
		cmocka_unit_test(test_sa_batch),
		cmocka_unit_test(test_seq_batch),
		cmocka_unit_test(test_sa_del_batch),
	};

	log_init("test_overlay_xfrm", true);
	return cmocka_run_group_tests(tests, setup, NULL);
}
