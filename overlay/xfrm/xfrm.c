/*
 * xfrm.c — the kernel data plane: ESP transport-mode SAs with ESP-in-UDP,
 * policies that bind a tunnel's GRE or VXLAN traffic to them, and the
 * GRE/VXLAN devices, all through netlink (libnl).  See README.md in this
 * folder for the design: ownership tags, adoption on restart, the atomic
 * outbound switch, fail-closed policies and inner-source filtering.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/xfrm.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include <netlink/netlink.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/route/link/ipgre.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/xfrm/ae.h>
#include <netlink/xfrm/lifetime.h>
#include <netlink/xfrm/selector.h>
#include <netlink/xfrm/sp.h>
#include <netlink/xfrm/template.h>

#include "lib/log.h"
#include "overlay/overlay.h"
#include "lib/util.h"
#include "overlay/uesp/uesp_seq.h"
#include "overlay/xfrm/xfrm_ev.h"
#include "overlay/xfrm/xfrm_nl.h"

#ifndef UDP_ENCAP
#define UDP_ENCAP 100
#endif
#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif

#define XFRM_ROUTE_METRIC	7077	/* allowed-prefix routes: below BGP's */
#define XFRM_SA_MAX		65535	/* reqids per instance */
/*
 * Sequence numbers reserved per mark (README.md, "Sequence numbers across
 * reboots"): the kernel cannot be held at a limit, so the step is big and
 * the mark follows the kernel's counter at every stats read.  A restart
 * jumps by at most this, below 2^32 minus the replay window, so the
 * receiver's ESN inference (RFC 4303 Appendix A) still follows.
 */
#define XFRM_SEQ_STEP		((uint64_t)1 << 30)
/*
 * An outbound SA moved to a new peer address (XFRM_MSG_MIGRATE) skips this
 * many sequence numbers (README.md, "Peer address moves"): the kernel
 * copies the old state's counter without stopping it, so a packet already
 * inside the transmit path may take a number from the old state after
 * the copy; the skip is far above what can be in flight.
 */
#define XFRM_MIGRATE_SEQ_GAP	((uint64_t)1 << 16)

struct xfrm_sa {
	struct xfrm_sa *next;
	enum overlay_dir dir;
	uint32_t spi, reqid;
	struct overlay_sa_params p;	/* key kept for in-place updates; wiped */
	struct uesp_seq_res *res;	/* outbound with a seq file; else NULL */
	time_t added;
	bool soft_expired, hard_expired;
	bool seq_overrun;		/* logged: oseq passed the mark */
	bool deleting;			/* queued by sa_del_batch */
};

struct xfrm_tun {
	struct xfrm_tun *next;
	struct overlay_tunnel_params p;
	int ifindex;
	uint32_t active_spi;		/* 0 = none: the out policy blocks */
	uint32_t adopted_reqid;		/* reqid the adopted out policy named */
	struct xfrm_sa *sas;
	struct xfrm_moved moved;	/* the peer's NAT moves (mappings) */
};

/* An SA of ours found in the kernel at init, until sa_add claims it. */
struct xfrm_found {
	struct xfrm_found *next;
	struct overlay_addr dst;
	uint32_t spi, reqid;
	uint8_t digest[OVERLAY_KEY_DIGEST_LEN];
};

enum { XS_AUTH, XS_REPLAY, XS_NOSPI, XS_MALFORMED, XS_NOSA, XS_IO, XS_N };

struct xfrm_ctx {
	struct nl_sock *xs, *rs;
	struct xfrm_evmon *evmon;	/* event thread; NULL = none */
	int encap_fd;
	uint16_t port;
	struct overlay_keys *keys;
	struct uesp_seq *seq;		/* init's seq_file; NULL = none */
	struct xfrm_tun *tuns;
	struct xfrm_found *found;
	uint32_t next_reqid;
	bool keep;		/* init's keep_at_fini */
	struct xfrm_run *run;	/* sa_add_batch's queue, made at first use */
	uint64_t stat_base[XS_N];
	char why[256];
};

/* ---- small helpers ------------------------------------------------------ */

static struct nl_addr *
xfrm_naddr(const struct overlay_addr *a, int plen)
{
	struct nl_addr *n;

	n = nl_addr_build(a->family, a->bytes, a->family == AF_INET ? 4 : 16);
	if (n != NULL && plen >= 0)
		nl_addr_set_prefixlen(n, plen);
	return n;
}

static struct nl_addr *
xfrm_naddr_any(sa_family_t family)
{
	struct overlay_addr z;

	memset(&z, 0, sizeof(z));
	z.family = family;
	return xfrm_naddr(&z, 0);
}

/* Log a failed kernel call once, with the kernel's own words. */
static int
xfrm_fail(struct xfrm_ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int
xfrm_fail(struct xfrm_ctx *c, int err, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_warnx("xfrm: %s: %s%s%s", what, strerror(-err),
	    c->why[0] != '\0' ? ": " : "", c->why);
	return err;
}

static struct xfrm_tun *
xfrm_tun_find(struct xfrm_ctx *c, uint64_t id)
{
	struct xfrm_tun *t;

	for (t = c->tuns; t != NULL; t = t->next)
		if (t->p.id == id)
			return t;
	return NULL;
}

static struct xfrm_sa *
xfrm_sa_find(struct xfrm_tun *t, uint32_t spi, enum overlay_dir dir)
{
	struct xfrm_sa *s;

	for (s = t->sas; s != NULL; s = s->next)
		if (s->spi == spi && s->dir == dir)
			return s;
	return NULL;
}

static bool
xfrm_reqid_used(struct xfrm_ctx *c, uint32_t reqid)
{
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	struct xfrm_found *f;

	for (t = c->tuns; t != NULL; t = t->next)
		for (s = t->sas; s != NULL; s = s->next)
			if (s->reqid == reqid)
				return true;
	for (f = c->found; f != NULL; f = f->next)
		if (f->reqid == reqid)
			return true;
	return false;
}

static uint32_t
xfrm_reqid_new(struct xfrm_ctx *c)
{
	unsigned i;

	for (i = 0; i <= 0xffff; i++) {
		uint32_t r = XFRM_REQID_BASE | (c->next_reqid++ & 0xffff);

		if ((r & 0xffff) != 0 && !xfrm_reqid_used(c, r))
			return r;
	}
	return 0;
}

/* Where SA p of tunnel t lives: outbound local→remote, inbound the reverse. */
static void
xfrm_place(const struct xfrm_ctx *c, const struct xfrm_tun *t,
    enum overlay_dir dir, uint32_t reqid, struct xfrm_sa_place *pl)
{
	uint16_t rport = t->p.remote_port != 0 ? t->p.remote_port :
	    OVERLAY_UDP_PORT;

	memset(pl, 0, sizeof(*pl));
	pl->reqid = reqid;
	if (dir == OVERLAY_DIR_OUT) {
		pl->src = t->p.local;
		pl->dst = t->p.remote;
		pl->sport = c->port;
		pl->dport = rport;
	} else {
		pl->src = t->p.remote;
		pl->dst = t->p.local;
		pl->sport = rport;
		pl->dport = c->port;
	}
}

/* ---- policies ----------------------------------------------------------- */

/*
 * One policy of tunnel t.  Allow policies select exactly the tunnel's
 * encapsulated traffic between the two outer addresses; the block
 * policies, one priority lower, select it with the local side widened to
 * any address, so they are distinct policies for the kernel and catch the
 * same packets whenever the allow policy is missing.
 */
static int
xfrm_policy_msg(const struct xfrm_tun *t, int cmd, int dir, bool block_pol,
    bool allow, const uint32_t *reqids, size_t nreqids, struct nl_msg **msg)
{
	struct xfrmnl_sp *sp = NULL;
	struct xfrmnl_sel *sel = NULL;
	struct xfrmnl_ltime_cfg *lt = NULL;
	struct xfrmnl_user_tmpl *tm = NULL;
	struct nl_addr *loc = NULL, *rem = NULL, *tl = NULL, *tr = NULL;
	int fam = t->p.remote.family, err = -ENOMEM;
	int hostlen = fam == AF_INET ? 32 : 128;
	size_t i;

	*msg = NULL;
	sp = xfrmnl_sp_alloc();
	sel = xfrmnl_sel_alloc();
	lt = xfrmnl_ltime_cfg_alloc();
	loc = block_pol ? xfrm_naddr_any(fam) : xfrm_naddr(&t->p.local, hostlen);
	rem = xfrm_naddr(&t->p.remote, hostlen);
	if (sp == NULL || sel == NULL || lt == NULL || loc == NULL ||
	    rem == NULL)
		goto out;
	xfrmnl_sel_set_family(sel, fam);
	if (dir == XFRM_POLICY_OUT) {
		xfrmnl_sel_set_saddr(sel, loc);
		xfrmnl_sel_set_daddr(sel, rem);
		xfrmnl_sel_set_prefixlen_s(sel, block_pol ? 0 : hostlen);
		xfrmnl_sel_set_prefixlen_d(sel, hostlen);
	} else {
		xfrmnl_sel_set_saddr(sel, rem);
		xfrmnl_sel_set_daddr(sel, loc);
		xfrmnl_sel_set_prefixlen_s(sel, hostlen);
		xfrmnl_sel_set_prefixlen_d(sel, block_pol ? 0 : hostlen);
	}
	if (t->p.encap == OVERLAY_ENCAP_GRE) {
		xfrmnl_sel_set_proto(sel, IPPROTO_GRE);
	} else {
		xfrmnl_sel_set_proto(sel, IPPROTO_UDP);
		xfrmnl_sel_set_dport(sel, OVERLAY_VXLAN_PORT);
		xfrmnl_sel_set_dportmask(sel, 0xffff);
	}
	xfrmnl_ltime_cfg_set_soft_bytelimit(lt, XFRM_INF);
	xfrmnl_ltime_cfg_set_hard_bytelimit(lt, XFRM_INF);
	xfrmnl_ltime_cfg_set_soft_packetlimit(lt, XFRM_INF);
	xfrmnl_ltime_cfg_set_hard_packetlimit(lt, XFRM_INF);
	xfrmnl_sp_set_sel(sp, sel);
	xfrmnl_sp_set_lifetime_cfg(sp, lt);
	xfrmnl_sp_set_dir(sp, dir);
	xfrmnl_sp_set_priority(sp, block_pol ? XFRM_PRIO_BLOCK : XFRM_PRIO_ALLOW);
	xfrmnl_sp_set_action(sp, allow ? XFRM_POLICY_ALLOW : XFRM_POLICY_BLOCK);
	tl = xfrm_naddr(&t->p.local, -1);
	tr = xfrm_naddr(&t->p.remote, -1);
	if (tl == NULL || tr == NULL)
		goto out;
	/* One ESP transport template per reqid: one (the active outbound SA;
	 * inbound 0, any of our SAs), or several for a migration. */
	for (i = 0; allow && i < nreqids; i++) {
		if ((tm = xfrmnl_user_tmpl_alloc()) == NULL)
			goto out;
		xfrmnl_user_tmpl_set_family(tm, fam);
		xfrmnl_user_tmpl_set_proto(tm, IPPROTO_ESP);
		xfrmnl_user_tmpl_set_mode(tm, XFRM_MODE_TRANSPORT);
		xfrmnl_user_tmpl_set_saddr(tm, dir == XFRM_POLICY_OUT ? tl : tr);
		xfrmnl_user_tmpl_set_daddr(tm, dir == XFRM_POLICY_OUT ? tr : tl);
		xfrmnl_user_tmpl_set_reqid(tm, reqids[i]);
		xfrmnl_user_tmpl_set_aalgos(tm, ~0u);
		xfrmnl_user_tmpl_set_ealgos(tm, ~0u);
		xfrmnl_user_tmpl_set_calgos(tm, ~0u);
		xfrmnl_sp_add_usertemplate(sp, tm);
		tm = NULL;		/* owned by sp now */
	}
	if (cmd == XFRM_MSG_DELPOLICY)
		err = xfrmnl_sp_build_delete_request(sp, 0, msg);
	else if (cmd == XFRM_MSG_UPDPOLICY)
		err = xfrmnl_sp_build_update_request(sp, 0, msg);
	else
		err = xfrmnl_sp_build_add_request(sp, NLM_F_EXCL, msg);
	err = err < 0 ? -EINVAL : 0;
out:
	if (tm != NULL)
		xfrmnl_user_tmpl_free(tm);
	nl_addr_put(loc);
	nl_addr_put(rem);
	nl_addr_put(tl);
	nl_addr_put(tr);
	if (lt != NULL)
		xfrmnl_ltime_cfg_put(lt);
	if (sel != NULL)
		xfrmnl_sel_put(sel);
	if (sp != NULL)
		xfrmnl_sp_put(sp);
	return err;
}

static int
xfrm_policy(struct xfrm_ctx *c, const struct xfrm_tun *t, int cmd, int dir,
    bool block_pol, bool allow, uint32_t reqid)
{
	struct nl_msg *msg;
	int err;

	if ((err = xfrm_policy_msg(t, cmd, dir, block_pol, allow, &reqid, 1,
	    &msg)) < 0)
		return err;
	return xfrm_nl_talk(c->xs, msg, NULL, NULL, c->why, sizeof(c->why));
}

/* The out allow policy: to the active SA's reqid, or blocking. */
static int
xfrm_policy_out(struct xfrm_ctx *c, struct xfrm_tun *t, uint32_t reqid)
{
	return xfrm_policy(c, t, XFRM_MSG_UPDPOLICY, XFRM_POLICY_OUT, false,
	    reqid != 0, reqid);
}

static int
xfrm_policies_add(struct xfrm_ctx *c, struct xfrm_tun *t, bool keep_out)
{
	int err;

	/* Block first, so that no instant exists without a covering policy. */
	if ((err = xfrm_policy(c, t, XFRM_MSG_UPDPOLICY, XFRM_POLICY_OUT,
	    true, false, 0)) < 0 ||
	    (err = xfrm_policy(c, t, XFRM_MSG_UPDPOLICY, XFRM_POLICY_IN,
	    true, false, 0)) < 0 ||
	    (err = xfrm_policy(c, t, XFRM_MSG_UPDPOLICY, XFRM_POLICY_IN,
	    false, true, 0)) < 0)
		return err;
	if (keep_out)
		return 0;
	return xfrm_policy_out(c, t, 0);
}

static void
xfrm_policies_del(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	/* Allow policies first: the block ones cover the gap. */
	(void)xfrm_policy(c, t, XFRM_MSG_DELPOLICY, XFRM_POLICY_OUT, false,
	    false, 0);
	(void)xfrm_policy(c, t, XFRM_MSG_DELPOLICY, XFRM_POLICY_IN, false,
	    false, 0);
	(void)xfrm_policy(c, t, XFRM_MSG_DELPOLICY, XFRM_POLICY_OUT, true,
	    false, 0);
	(void)xfrm_policy(c, t, XFRM_MSG_DELPOLICY, XFRM_POLICY_IN, true,
	    false, 0);
}

/* ---- devices ------------------------------------------------------------ */

static int
xfrm_sysctl(const char *ifname, const char *key, const char *val)
{
	char path[128];
	int fd, err = 0;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", ifname,
	    key);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* Dual stack: inner_local6/127 on the device, no DAD (the /127's other
 * end is the peer's, given by the controller). */
static int
xfrm_addr6(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	struct rtnl_addr *a;
	struct nl_addr *na;
	struct nl_msg *msg = NULL;
	int err;

	if (t->p.inner_local6.family != AF_INET6)
		return 0;
	a = rtnl_addr_alloc();
	na = xfrm_naddr(&t->p.inner_local6, 127);
	if (a == NULL || na == NULL) {
		rtnl_addr_put(a);
		nl_addr_put(na);
		return -ENOMEM;
	}
	rtnl_addr_set_ifindex(a, t->ifindex);
	rtnl_addr_set_local(a, na);
	rtnl_addr_set_flags(a, IFA_F_NODAD);
	nl_addr_put(na);
	err = rtnl_addr_build_add_request(a, NLM_F_CREATE | NLM_F_REPLACE,
	    &msg);
	rtnl_addr_put(a);
	if (err < 0)
		return -ENOMEM;
	if ((err = xfrm_nl_talk(c->rs, msg, NULL, NULL, c->why,
	    sizeof(c->why))) < 0)
		return xfrm_fail(c, err, "tunnel %llu: inner IPv6 address",
		    (unsigned long long)t->p.id);
	return 0;
}

static int
xfrm_link_send(struct xfrm_ctx *c, struct rtnl_link *l, int flags)
{
	struct nl_msg *msg = NULL;

	if (rtnl_link_build_add_request(l, flags, &msg) < 0)
		return -ENOMEM;
	return xfrm_nl_talk(c->rs, msg, NULL, NULL, c->why, sizeof(c->why));
}

static int
xfrm_dev_add(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	struct rtnl_link *l;
	struct nl_addr *loc = NULL, *rem = NULL;
	int err = -ENOMEM;

	if (t->p.encap == OVERLAY_ENCAP_GRE) {
		uint32_t a, b;

		if (t->p.remote.family != AF_INET) {
			log_warnx("xfrm: tunnel %llu: GRE over IPv6 is not "
			    "supported yet", (unsigned long long)t->p.id);
			return -EAFNOSUPPORT;
		}
		l = rtnl_link_ipgre_alloc();
		if (l == NULL)
			return -ENOMEM;
		memcpy(&a, t->p.local.bytes, 4);
		memcpy(&b, t->p.remote.bytes, 4);
		rtnl_link_ipgre_set_local(l, a);
		rtnl_link_ipgre_set_remote(l, b);
		rtnl_link_ipgre_set_ttl(l, 64);
		/* The default pmtudisc: DF on every outer packet, which
		 * uesp's GRE tunnels set too (uesp_dev_tx_opts). */
	} else {
		l = rtnl_link_vxlan_alloc();
		loc = xfrm_naddr(&t->p.local, -1);
		rem = xfrm_naddr(&t->p.remote, -1);
		if (l == NULL || loc == NULL || rem == NULL)
			goto out;
		rtnl_link_vxlan_set_id(l, t->p.vni);
		rtnl_link_vxlan_set_local(l, loc);
		rtnl_link_vxlan_set_group(l, rem);	/* unicast: the remote */
		rtnl_link_vxlan_set_port(l, OVERLAY_VXLAN_PORT);
		/* RFC 7348 §5: the UDP checksum SHOULD be sent as zero over
		 * IPv4 (the kernel's own default is to compute it); over
		 * IPv6 it stays (RFC 8200).  uesp sends the same
		 * (uesp_encap_vxlan_push).  The outer DF stays the device's
		 * default, clear, and uesp's VXLAN tunnels clear it too. */
		rtnl_link_vxlan_set_udp_csum(l, 0);
		rtnl_link_vxlan_set_udp_zero_csum6_tx(l, 0);
		rtnl_link_vxlan_set_ttl(l, 64);
	}
	rtnl_link_set_name(l, t->p.ifname);
	rtnl_link_set_mtu(l, t->p.mtu);
	err = xfrm_link_send(c, l, NLM_F_CREATE | NLM_F_EXCL);
out:
	nl_addr_put(loc);
	nl_addr_put(rem);
	rtnl_link_put(l);
	if (err < 0)
		return xfrm_fail(c, err, "tunnel %llu: device %s",
		    (unsigned long long)t->p.id, t->p.ifname);
	return 0;
}

/*
 * Point t's device at t->p.remote in place (changelink): GRE takes its
 * whole parameter set again (unset ones would be zeroed), VXLAN only the
 * new default destination (the kernel refuses a change of its port or
 * checksum settings, and keeps what is not sent).
 */
static int
xfrm_dev_remote(struct xfrm_ctx *c, const struct xfrm_tun *t)
{
	struct rtnl_link *l;
	struct nl_addr *rem = NULL;
	int err = -ENOMEM;

	if (t->p.encap == OVERLAY_ENCAP_GRE) {
		uint32_t a, b;

		if ((l = rtnl_link_ipgre_alloc()) == NULL)
			return -ENOMEM;
		memcpy(&a, t->p.local.bytes, 4);
		memcpy(&b, t->p.remote.bytes, 4);
		rtnl_link_ipgre_set_local(l, a);
		rtnl_link_ipgre_set_remote(l, b);
		rtnl_link_ipgre_set_ttl(l, 64);
	} else {
		l = rtnl_link_vxlan_alloc();
		rem = xfrm_naddr(&t->p.remote, -1);
		if (l == NULL || rem == NULL)
			goto out;
		rtnl_link_vxlan_set_group(l, rem);
	}
	rtnl_link_set_ifindex(l, t->ifindex);
	err = xfrm_link_send(c, l, 0);
out:
	nl_addr_put(rem);
	rtnl_link_put(l);
	if (err < 0)
		return xfrm_fail(c, err, "tunnel %llu: remote of %s",
		    (unsigned long long)t->p.id, t->p.ifname);
	return 0;
}

/* The inner /31 on the device.  NLM_F_REPLACE: sent again for an address
 * the device holds, it changes nothing but is announced again
 * (RTM_NEWADDR), which is what the agent's zebra check asks for through
 * tunnel_update (FRR 8.4's zebra can miss an address that overtook its
 * device's link event). */
static int
xfrm_addr4(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	struct rtnl_addr *a;
	struct nl_addr *na;
	struct nl_msg *msg = NULL;
	int err;

	a = rtnl_addr_alloc();
	na = xfrm_naddr(&t->p.inner_local,
	    t->p.inner_prefix_len != 0 ? t->p.inner_prefix_len : 31);
	if (a == NULL || na == NULL) {
		rtnl_addr_put(a);
		nl_addr_put(na);
		return -ENOMEM;
	}
	rtnl_addr_set_ifindex(a, t->ifindex);
	rtnl_addr_set_local(a, na);
	nl_addr_put(na);
	err = rtnl_addr_build_add_request(a, NLM_F_CREATE | NLM_F_REPLACE,
	    &msg);
	rtnl_addr_put(a);
	if (err < 0)
		return -ENOMEM;
	if ((err = xfrm_nl_talk(c->rs, msg, NULL, NULL, c->why,
	    sizeof(c->why))) < 0)
		return xfrm_fail(c, err, "tunnel %llu: inner address",
		    (unsigned long long)t->p.id);
	return 0;
}

static int
xfrm_dev_up(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	struct rtnl_link *l;
	char alias[64];
	int err;

	t->ifindex = (int)if_nametoindex(t->p.ifname);
	if (t->ifindex == 0)
		return xfrm_fail(c, -ENODEV, "tunnel %llu: device %s",
		    (unsigned long long)t->p.id, t->p.ifname);
	/* Strict reverse-path filtering: see README.md, inner sources. */
	if ((err = xfrm_sysctl(t->p.ifname, "rp_filter", "1")) < 0)
		return xfrm_fail(c, err, "tunnel %llu: rp_filter on %s",
		    (unsigned long long)t->p.id, t->p.ifname);
	if ((err = xfrm_addr4(c, t)) < 0)
		return err;
	if ((err = xfrm_addr6(c, t)) < 0)
		return err;

	l = rtnl_link_alloc();
	if (l == NULL)
		return -ENOMEM;
	/* The ownership tag: the kernel takes an alias only on a change. */
	snprintf(alias, sizeof(alias), XFRM_ALIAS_PREFIX "%llu",
	    (unsigned long long)t->p.id);
	rtnl_link_set_ifindex(l, t->ifindex);
	rtnl_link_set_ifalias(l, alias);
	rtnl_link_set_flags(l, IFF_UP);
	rtnl_link_set_mtu(l, t->p.mtu);
	err = xfrm_link_send(c, l, 0);
	rtnl_link_put(l);
	if (err < 0)
		return xfrm_fail(c, err, "tunnel %llu: %s up",
		    (unsigned long long)t->p.id, t->p.ifname);
	return 0;
}

/* Routes for the allowed prefixes, through the tunnel, as a fallback. */
static int
xfrm_routes(struct xfrm_ctx *c, struct xfrm_tun *t, int cmd)
{
	unsigned i;
	int err = 0;

	for (i = 0; i < t->p.nallowed; i++) {
		struct rtnl_route *r = rtnl_route_alloc();
		struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
		struct nl_addr *dst = xfrm_naddr(&t->p.allowed[i].addr,
		    t->p.allowed[i].len);
		struct nl_addr *gw = NULL;
		struct nl_msg *msg = NULL;
		char pb[64];
		int e;

		if (r == NULL || nh == NULL || dst == NULL) {
			rtnl_route_put(r);
			if (nh != NULL)
				rtnl_route_nh_free(nh);
			nl_addr_put(dst);
			return -ENOMEM;
		}
		rtnl_route_set_family(r, t->p.allowed[i].addr.family);
		rtnl_route_set_dst(r, dst);
		rtnl_route_set_priority(r, XFRM_ROUTE_METRIC);
		rtnl_route_set_table(r, RT_TABLE_MAIN);
		/*
		 * Protocol "kernel": zebra does not import such routes.  One
		 * it imports (any other protocol) counts as a kernel route
		 * of distance 0 and beats BGP's (20) whatever the metric,
		 * so FRR would never install its own route to the prefix.
		 */
		rtnl_route_set_protocol(r, RTPROT_KERNEL);
		rtnl_route_nh_set_ifindex(nh, t->ifindex);
		if (t->p.allowed[i].addr.family == t->p.inner_peer.family) {
			gw = xfrm_naddr(&t->p.inner_peer, -1);
			if (gw != NULL)
				rtnl_route_nh_set_gateway(nh, gw);
		} else if (t->p.allowed[i].addr.family ==
		    t->p.inner_peer6.family) {
			gw = xfrm_naddr(&t->p.inner_peer6, -1);
			if (gw != NULL)
				rtnl_route_nh_set_gateway(nh, gw);
		}
		rtnl_route_add_nexthop(r, nh);
		if (cmd == RTM_NEWROUTE)
			e = rtnl_route_build_add_request(r,
			    NLM_F_CREATE | NLM_F_REPLACE, &msg);
		else
			e = rtnl_route_build_del_request(r, 0, &msg);
		nl_addr_put(gw);
		nl_addr_put(dst);
		rtnl_route_put(r);
		if (e < 0)
			return -ENOMEM;
		e = xfrm_nl_talk(c->rs, msg, NULL, NULL, c->why,
		    sizeof(c->why));
		if (e < 0 && cmd == RTM_NEWROUTE) {
			err = xfrm_fail(c, e, "tunnel %llu: route %s",
			    (unsigned long long)t->p.id,
			    overlay_prefix_str(&t->p.allowed[i], pb,
			    sizeof(pb)));
			break;
		}
	}
	return err;
}

static int
xfrm_dev_del(struct xfrm_ctx *c, const char *ifname)
{
	struct rtnl_link *l = rtnl_link_alloc();
	struct nl_msg *msg = NULL;

	if (l == NULL)
		return -ENOMEM;
	rtnl_link_set_name(l, ifname);
	if (rtnl_link_build_delete_request(l, &msg) < 0) {
		rtnl_link_put(l);
		return -ENOMEM;
	}
	rtnl_link_put(l);
	return xfrm_nl_talk(c->rs, msg, NULL, NULL, c->why, sizeof(c->why));
}

/* ---- SAs in the kernel -------------------------------------------------- */

static int
xfrm_sa_kernel(struct xfrm_ctx *c, int cmd, const struct overlay_sa_params *p,
    const struct xfrm_sa_place *pl)
{
	struct nl_msg *msg;
	int err;

	if ((err = xfrm_nl_sa_msg(cmd, p, pl, &msg)) < 0)
		return err;
	return xfrm_nl_talk(c->xs, msg, NULL, NULL, c->why, sizeof(c->why));
}

static struct nl_msg *
xfrm_sa_id_msg(int cmd, const struct overlay_addr *dst, uint32_t spi)
{
	struct xfrm_usersa_id id;
	struct nl_msg *msg;

	memset(&id, 0, sizeof(id));
	memcpy(&id.daddr, dst->bytes, dst->family == AF_INET ? 4 : 16);
	id.spi = htonl(spi);
	id.family = dst->family;
	id.proto = IPPROTO_ESP;
	msg = nlmsg_alloc_simple(cmd, NLM_F_REQUEST | NLM_F_ACK);
	if (msg != NULL && nlmsg_append(msg, &id, sizeof(id),
	    NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static int
xfrm_sa_kdel(struct xfrm_ctx *c, const struct overlay_addr *dst, uint32_t spi)
{
	struct nl_msg *msg = xfrm_sa_id_msg(XFRM_MSG_DELSA, dst, spi);

	if (msg == NULL)
		return -ENOMEM;
	return xfrm_nl_talk(c->xs, msg, NULL, NULL, c->why, sizeof(c->why));
}

struct xfrm_kstate {
	struct xfrm_usersa_info info;
	uint64_t oseq, seq;
	uint32_t window, bmp_len;	/* of the ESN replay state */
	bool have_esn;
};

static int
xfrm_getsa_cb(struct nlmsghdr *nlh, void *arg)
{
	struct xfrm_kstate *k = arg;
	struct nlattr *tb[XFRMA_MAX + 1];

	if (nlh->nlmsg_type != XFRM_MSG_NEWSA ||
	    nlmsg_parse(nlh, sizeof(k->info), tb, XFRMA_MAX, NULL) < 0)
		return -EPROTO;
	memcpy(&k->info, nlmsg_data(nlh), sizeof(k->info));
	if (tb[XFRMA_REPLAY_ESN_VAL] != NULL &&
	    nla_len(tb[XFRMA_REPLAY_ESN_VAL]) >=
	    (int)sizeof(struct xfrm_replay_state_esn)) {
		struct xfrm_replay_state_esn *e =
		    nla_data(tb[XFRMA_REPLAY_ESN_VAL]);

		k->oseq = (uint64_t)e->oseq_hi << 32 | e->oseq;
		k->seq = (uint64_t)e->seq_hi << 32 | e->seq;
		k->window = e->replay_window;
		k->bmp_len = e->bmp_len;
		k->have_esn = true;
	} else if (tb[XFRMA_REPLAY_VAL] != NULL &&
	    nla_len(tb[XFRMA_REPLAY_VAL]) >=
	    (int)sizeof(struct xfrm_replay_state)) {
		struct xfrm_replay_state *r = nla_data(tb[XFRMA_REPLAY_VAL]);

		k->oseq = r->oseq;
		k->seq = r->seq;
	}
	return 0;
}

static int
xfrm_sa_get(struct xfrm_ctx *c, const struct overlay_addr *dst, uint32_t spi,
    struct xfrm_kstate *k)
{
	struct nl_msg *msg = xfrm_sa_id_msg(XFRM_MSG_GETSA, dst, spi);

	memset(k, 0, sizeof(*k));
	if (msg == NULL)
		return -ENOMEM;
	return xfrm_nl_talk(c->xs, msg, xfrm_getsa_cb, k, c->why,
	    sizeof(c->why));
}

/* ---- events: soft expiry and NAT mappings ------------------------------- */

static struct xfrm_sa *
xfrm_sa_by_id(struct xfrm_ctx *c, const struct overlay_addr *daddr,
    uint32_t spi, struct xfrm_tun **tp)
{
	struct xfrm_tun *t;
	struct xfrm_sa *s;

	for (t = c->tuns; t != NULL; t = t->next)
		for (s = t->sas; s != NULL; s = s->next) {
			const struct overlay_addr *d = s->dir == OVERLAY_DIR_OUT ?
			    &t->p.remote : &t->p.local;

			if (s->spi == spi && overlay_addr_eq(daddr, d)) {
				*tp = t;
				return s;
			}
		}
	return NULL;
}

static uint16_t
xfrm_rport(const struct xfrm_tun *t)
{
	return t->p.remote_port != 0 ? t->p.remote_port : OVERLAY_UDP_PORT;
}

static void
xfrm_event(struct xfrm_ctx *c, const struct xfrm_ev *ev, uint64_t now)
{
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	char a[INET6_ADDRSTRLEN];

	if ((s = xfrm_sa_by_id(c, &ev->daddr, ev->spi, &t)) == NULL)
		return;
	if (ev->type == XFRM_MSG_EXPIRE) {
		if (ev->hard)
			s->hard_expired = true;
		else
			s->soft_expired = true;
		log_info("xfrm: tunnel %llu: %s SA %u reached its %s lifetime",
		    (unsigned long long)t->p.id, overlay_dir_str(s->dir),
		    s->spi, ev->hard ? "hard" : "soft");
		return;
	}
	/*
	 * XFRM_MSG_MAPPING: the kernel sends it from ESP input only for a
	 * datagram that decrypted and passed the replay check on one of our
	 * inbound SAs, from a source other than the SA's (README.md).
	 */
	if (s->dir != OVERLAY_DIR_IN ||
	    xfrm_moved_note(&t->moved, ev, &t->p.remote, xfrm_rport(t),
	    now) != 1)
		return;
	log_info("xfrm: tunnel %llu: peer's NAT mapping moved to %s port %u "
	    "(authenticated ESP on SA %u)", (unsigned long long)t->p.id,
	    overlay_addr_str(&t->moved.addr, a, sizeof(a)), t->moved.port,
	    s->spi);
	xfrm_evmon_signal(c->evmon);
}

/* Apply every queued event; never blocks. */
static void
xfrm_events_drain(struct xfrm_ctx *c)
{
	struct xfrm_ev ev[32];
	uint64_t now;
	size_t i, n;

	if (c->evmon == NULL)
		return;
	now = util_mono_ms();
	while ((n = xfrm_evmon_take(c->evmon, ev, 32)) > 0)
		for (i = 0; i < n; i++)
			xfrm_event(c, &ev[i], now);
}

/* ---- adoption ----------------------------------------------------------- */

static int
xfrm_found_cb(struct nlmsghdr *nlh, void *arg)
{
	struct xfrm_ctx *c = arg;
	struct nlattr *tb[XFRMA_MAX + 1];
	struct xfrm_usersa_info *info;
	struct xfrm_algo_aead *aead;
	struct overlay_sa_params p;
	struct xfrm_found *f;
	size_t klen;

	if (nlh->nlmsg_type != XFRM_MSG_NEWSA ||
	    nlmsg_parse(nlh, sizeof(*info), tb, XFRMA_MAX, NULL) < 0)
		return 0;
	info = nlmsg_data(nlh);
	if ((info->reqid & XFRM_REQID_MASK) != XFRM_REQID_BASE ||
	    info->id.proto != IPPROTO_ESP || tb[XFRMA_ALG_AEAD] == NULL ||
	    nla_len(tb[XFRMA_ALG_AEAD]) < (int)sizeof(*aead))
		return 0;
	aead = nla_data(tb[XFRMA_ALG_AEAD]);
	klen = aead->alg_key_len / 8;
	if ((size_t)nla_len(tb[XFRMA_ALG_AEAD]) < sizeof(*aead) + klen ||
	    (klen != 16 + OVERLAY_SALT_LEN && klen != 32 + OVERLAY_SALT_LEN))
		return 0;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	memset(&p, 0, sizeof(p));
	p.cipher = klen == 16 + OVERLAY_SALT_LEN ? OVERLAY_AES_GCM_128 :
	    OVERLAY_AES_GCM_256;
	memcpy(p.key, aead->alg_key, klen - OVERLAY_SALT_LEN);
	memcpy(p.salt, aead->alg_key + klen - OVERLAY_SALT_LEN,
	    OVERLAY_SALT_LEN);
	overlay_keys_digest(c->keys, &p, f->digest);
	explicit_bzero(&p, sizeof(p));
	f->dst.family = info->family;
	memcpy(f->dst.bytes, &info->id.daddr,
	    info->family == AF_INET ? 4 : 16);
	f->spi = ntohl(info->id.spi);
	f->reqid = info->reqid;
	f->next = c->found;
	c->found = f;
	return 0;
}

/* Our SAs already in the kernel (a previous run): kept for sa_add. */
static int
xfrm_adopt_scan(struct xfrm_ctx *c)
{
	struct nl_msg *msg;

	msg = nlmsg_alloc_simple(XFRM_MSG_GETSA, NLM_F_REQUEST | NLM_F_DUMP);
	if (msg == NULL)
		return -ENOMEM;
	return xfrm_nl_talk(c->xs, msg, xfrm_found_cb, c, c->why,
	    sizeof(c->why));
}

struct xfrm_pol_probe {
	const struct xfrm_tun *t;
	bool found;
	uint32_t reqid;
};

static int
xfrm_pol_cb(struct nlmsghdr *nlh, void *arg)
{
	struct xfrm_pol_probe *pp = arg;
	struct xfrm_userpolicy_info *pi;
	struct nlattr *tb[XFRMA_MAX + 1];
	const struct overlay_tunnel_params *tp = &pp->t->p;
	size_t al = tp->remote.family == AF_INET ? 4 : 16;

	if (nlh->nlmsg_type != XFRM_MSG_NEWPOLICY ||
	    nlmsg_parse(nlh, sizeof(*pi), tb, XFRMA_MAX, NULL) < 0)
		return 0;
	pi = nlmsg_data(nlh);
	if (pi->dir != XFRM_POLICY_OUT || pi->priority != XFRM_PRIO_ALLOW ||
	    pi->sel.family != tp->remote.family ||
	    memcmp(&pi->sel.daddr, tp->remote.bytes, al) != 0 ||
	    memcmp(&pi->sel.saddr, tp->local.bytes, al) != 0 ||
	    pi->sel.proto != (tp->encap == OVERLAY_ENCAP_GRE ? IPPROTO_GRE :
	    IPPROTO_UDP))
		return 0;
	pp->found = true;
	if (pi->action == XFRM_POLICY_ALLOW && tb[XFRMA_TMPL] != NULL &&
	    nla_len(tb[XFRMA_TMPL]) >= (int)sizeof(struct xfrm_user_tmpl))
		pp->reqid = ((struct xfrm_user_tmpl *)
		    nla_data(tb[XFRMA_TMPL]))->reqid;
	return 0;
}

/* Whether our out policy for t exists, and the reqid it sends to. */
static int
xfrm_adopt_policy(struct xfrm_ctx *c, struct xfrm_tun *t, bool *found)
{
	struct xfrm_pol_probe pp = { .t = t };
	struct nl_msg *msg;
	int err;

	msg = nlmsg_alloc_simple(XFRM_MSG_GETPOLICY, NLM_F_REQUEST |
	    NLM_F_DUMP);
	if (msg == NULL)
		return -ENOMEM;
	err = xfrm_nl_talk(c->xs, msg, xfrm_pol_cb, &pp, c->why,
	    sizeof(c->why));
	*found = pp.found;
	t->adopted_reqid = pp.reqid;
	return err;
}

/* The alias of device ifname if it is ours, else "" (or -ENODEV). */
struct xfrm_link_probe {
	const char *ifname;
	char alias[64];
	bool exists;
};

static int
xfrm_link_cb(struct nlmsghdr *nlh, void *arg)
{
	struct xfrm_link_probe *lp = arg;
	struct nlattr *tb[IFLA_MAX + 1];

	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    nlmsg_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) < 0)
		return 0;
	if (tb[IFLA_IFNAME] == NULL ||
	    strncmp(nla_data(tb[IFLA_IFNAME]), lp->ifname,
	    (size_t)nla_len(tb[IFLA_IFNAME])) != 0)
		return 0;
	lp->exists = true;
	if (tb[IFLA_IFALIAS] != NULL)
		nla_strlcpy(lp->alias, tb[IFLA_IFALIAS], sizeof(lp->alias));
	return 0;
}

static int
xfrm_link_probe(struct xfrm_ctx *c, struct xfrm_link_probe *lp)
{
	struct ifinfomsg ifi;
	struct nl_msg *msg;

	msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (msg == NULL)
		return -ENOMEM;
	memset(&ifi, 0, sizeof(ifi));
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
	    nla_put_string(msg, IFLA_IFNAME, lp->ifname) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return xfrm_nl_talk(c->rs, msg, xfrm_link_cb, lp, c->why,
	    sizeof(c->why));
}

/*
 * Device ifindex's counters (IFLA_STATS64), asked through xfrm_nl_talk
 * like every other request on c->rs.  Not libnl's rtnl_link_get_kernel:
 * it checks answers against a sequence number libnl keeps per socket,
 * which xfrm_nl_talk moves on without it, so on c->rs it failed at the
 * first answer and left the rest queued, one more per call.  A steady
 * mesh's status reads filled the socket, the kernel then dropped every
 * answer to it, and the next change waited for an ack that never came.
 */
static int
xfrm_link_stats_cb(struct nlmsghdr *nlh, void *arg)
{
	struct rtnl_link_stats64 *st = arg;
	struct nlattr *tb[IFLA_MAX + 1];

	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    nlmsg_parse(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX, NULL) < 0)
		return 0;
	if (tb[IFLA_STATS64] == NULL ||
	    nla_len(tb[IFLA_STATS64]) < (int)sizeof(*st))
		return -EPROTO;
	memcpy(st, nla_data(tb[IFLA_STATS64]), sizeof(*st));
	return 0;
}

static int
xfrm_link_stats(struct xfrm_ctx *c, int ifindex, struct rtnl_link_stats64 *st)
{
	struct ifinfomsg ifi;
	struct nl_msg *msg;

	memset(st, 0, sizeof(*st));
	msg = nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK);
	if (msg == NULL)
		return -ENOMEM;
	memset(&ifi, 0, sizeof(ifi));
	ifi.ifi_index = ifindex;
	if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	return xfrm_nl_talk(c->rs, msg, xfrm_link_stats_cb, st, c->why,
	    sizeof(c->why));
}

/* ---- /proc/net/xfrm_stat ------------------------------------------------ */

static void
xfrm_stat_read(uint64_t v[XS_N])
{
	static const struct { const char *name; int slot; } map[] = {
		{ "XfrmInStateProtoError", XS_AUTH },
		{ "XfrmInStateSeqError", XS_REPLAY },
		{ "XfrmInNoStates", XS_NOSPI },
		{ "XfrmInHdrError", XS_MALFORMED },
		{ "XfrmInStateMismatch", XS_MALFORMED },
		{ "XfrmInStateModeError", XS_MALFORMED },
		{ "XfrmInTmplMismatch", XS_MALFORMED },
		{ "XfrmOutNoStates", XS_NOSA },
		{ "XfrmOutPolBlock", XS_NOSA },
		{ "XfrmOutStateExpired", XS_NOSA },
		{ "XfrmInError", XS_IO },
		{ "XfrmInBufferError", XS_IO },
		{ "XfrmOutError", XS_IO },
	};
	char line[128], *val, *end;
	unsigned long long n;
	FILE *f;
	size_t i;

	memset(v, 0, sizeof(uint64_t) * XS_N);
	f = fopen("/proc/net/xfrm_stat", "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		/* "XfrmInError             	0" */
		val = line + strcspn(line, " \t");
		if (*val == '\0')
			continue;
		*val++ = '\0';
		errno = 0;
		n = strtoull(val, &end, 10);
		if (errno != 0 || end == val)
			continue;
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcmp(line, map[i].name) == 0)
				v[map[i].slot] += n;
	}
	fclose(f);
}

/* ---- operations --------------------------------------------------------- */

static void xfrm_op_fini(void *ctx);

/*
 * A UDP socket on our port handed over by socket activation (systemd's
 * LISTEN_PID/LISTEN_FDS, first fd 3), or -1.  The kernel decapsulates
 * ESP-in-UDP only while some process holds such a socket: one held by
 * the service manager keeps inbound traffic flowing while the agent
 * restarts (README.md, "Ownership and restarts").
 */
static int
xfrm_encap_inherited(const struct xfrm_ctx *c)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int type = 0, fd = 3;
	socklen_t tl = sizeof(type);
	uint16_t port;

	memset(&ss, 0, sizeof(ss));
	if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != getpid() ||
	    strtol(fds, NULL, 10) < 1)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_DGRAM ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return -1;
	if (port != c->port) {
		log_warnx("xfrm: inherited socket is on port %u, not %u: "
		    "ignored", port, c->port);
		return -1;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	log_info("xfrm: using the inherited ESP-in-UDP socket on port %u",
	    port);
	return fd;
}

static int
xfrm_encap_socket(struct xfrm_ctx *c, const struct overlay_init_params *p)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fam = p->bind.family == AF_INET6 ? AF_INET6 : AF_INET;
	int one = 1, type = UDP_ENCAP_ESPINUDP;

	if ((c->encap_fd = xfrm_encap_inherited(c)) >= 0)
		goto encap;
	c->encap_fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->encap_fd < 0)
		return -errno;
	memset(&ss, 0, sizeof(ss));
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(c->port);
		if (p->bind.family == AF_INET)
			memcpy(&s4->sin_addr, p->bind.bytes, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(c->port);
		memcpy(&s6->sin6_addr, p->bind.bytes, 16);
		sl = sizeof(*s6);
	}
	(void)setsockopt(c->encap_fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one));
	if (bind(c->encap_fd, (struct sockaddr *)&ss, sl) < 0)
		return -errno;
encap:
	if (setsockopt(c->encap_fd, IPPROTO_UDP, UDP_ENCAP, &type,
	    sizeof(type)) < 0)
		return -errno;
	return 0;
}

static int
xfrm_op_init(const struct overlay_init_params *p, void **ctx)
{
	struct xfrm_ctx *c;
	int err;

	*ctx = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->encap_fd = -1;
	c->port = p->udp_port != 0 ? p->udp_port : OVERLAY_UDP_PORT;
	c->next_reqid = 1;
	c->keep = p->keep_at_fini;
	c->keys = overlay_keys_new();
	c->xs = xfrm_nl_open(NETLINK_XFRM);
	c->rs = xfrm_nl_open(NETLINK_ROUTE);
	if (c->keys == NULL || c->xs == NULL || c->rs == NULL) {
		log_warnx("xfrm: cannot open netlink sockets");
		err = -ENOMEM;
		goto fail;
	}
	c->evmon = xfrm_evmon_start();	/* logs if it cannot */
	if (p->seq_file != NULL && (c->seq = uesp_seq_open_step(p->seq_file,
	    XFRM_SEQ_STEP)) == NULL) {
		err = -EIO;
		goto fail;
	}
	if ((err = xfrm_encap_socket(c, p)) < 0) {
		log_warnx("xfrm: ESP-in-UDP socket on port %u: %s", c->port,
		    strerror(-err));
		goto fail;
	}
	if ((err = xfrm_adopt_scan(c)) < 0) {
		xfrm_fail(c, err, "listing SAs");
		goto fail;
	}
	xfrm_stat_read(c->stat_base);
	*ctx = c;
	return 0;
fail:
	xfrm_op_fini(c);
	return err;
}

static void
xfrm_sa_free(struct xfrm_sa *s)
{
	uesp_seq_release(s->res);	/* the mark stays in the file */
	explicit_bzero(s, sizeof(*s));
	free(s);
}

static void
xfrm_tun_free(struct xfrm_tun *t)
{
	struct xfrm_sa *s;

	while ((s = t->sas) != NULL) {
		t->sas = s->next;
		xfrm_sa_free(s);
	}
	free(t);
}

/* Everything of t out of the kernel: policies, SAs, routes, device. */
static void
xfrm_tun_remove(struct xfrm_ctx *c, struct xfrm_tun *t)
{
	struct xfrm_sa *s;

	xfrm_policies_del(c, t);
	for (s = t->sas; s != NULL; s = s->next)
		(void)xfrm_sa_kdel(c, s->dir == OVERLAY_DIR_OUT ?
		    &t->p.remote : &t->p.local, s->spi);
	(void)xfrm_dev_del(c, t->p.ifname);	/* takes its routes along */
}

static void
xfrm_op_fini(void *ctx)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun *t;
	struct xfrm_found *f;

	if (c == NULL)
		return;
	/*
	 * keep: the kernel objects stay for the next instance to adopt
	 * (README.md, "Ownership and restarts"); only memory and keys go.
	 */
	while ((t = c->tuns) != NULL) {
		c->tuns = t->next;
		if (!c->keep)
			xfrm_tun_remove(c, t);
		xfrm_tun_free(t);
	}
	/* Ours from a previous run that nobody claimed. */
	while ((f = c->found) != NULL) {
		c->found = f->next;
		if (!c->keep)
			(void)xfrm_sa_kdel(c, &f->dst, f->spi);
		free(f);
	}
	if (c->encap_fd >= 0)
		close(c->encap_fd);
	xfrm_evmon_stop(c->evmon);
	if (c->xs != NULL)
		nl_socket_free(c->xs);
	if (c->rs != NULL)
		nl_socket_free(c->rs);
	uesp_seq_close(c->seq);		/* after every SA released its own */
	overlay_keys_free(c->keys);
	free(c->run);		/* no key bytes: requests are wiped when sent */
	free(c);
}

static int
xfrm_tun_check(struct xfrm_ctx *c, const struct overlay_tunnel_params *p)
{
	if (overlay_tunnel_params_check(p) < 0)
		return -EINVAL;
	if (p->local.family == AF_UNSPEC) {
		/* The policies select on both outer addresses. */
		log_warnx("xfrm: tunnel %llu: the local outer address is "
		    "required", (unsigned long long)p->id);
		return -EINVAL;
	}
	return 0;
}

static int
xfrm_op_tunnel_add(void *ctx, const struct overlay_tunnel_params *p)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_link_probe lp;
	struct xfrm_tun *t, *o;
	char want[64];
	bool adopt = false, have_out = false;
	int err;

	if ((err = xfrm_tun_check(c, p)) < 0)
		return err;
	if (xfrm_tun_find(c, p->id) != NULL) {
		log_warnx("xfrm: tunnel %llu exists", (unsigned long long)p->id);
		return -EEXIST;
	}
	for (o = c->tuns; o != NULL; o = o->next)
		if (strcmp(o->p.ifname, p->ifname) == 0 ||
		    (overlay_addr_eq(&o->p.remote, &p->remote) &&
		    o->p.encap == p->encap)) {
			log_warnx("xfrm: tunnel %llu: device or remote already "
			    "used by tunnel %llu", (unsigned long long)p->id,
			    (unsigned long long)o->p.id);
			return -EEXIST;
		}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->p = *p;

	/* A device of that name: ours from a previous run, or someone else's. */
	memset(&lp, 0, sizeof(lp));
	lp.ifname = p->ifname;
	err = xfrm_link_probe(c, &lp);
	if (err < 0 && err != -ENODEV) {
		xfrm_fail(c, err, "tunnel %llu: looking up %s",
		    (unsigned long long)p->id, p->ifname);
		goto fail;
	}
	snprintf(want, sizeof(want), XFRM_ALIAS_PREFIX "%llu",
	    (unsigned long long)p->id);
	if (lp.exists) {
		if (strcmp(lp.alias, want) != 0) {
			log_warnx("xfrm: tunnel %llu: device %s exists and is "
			    "not ours", (unsigned long long)p->id, p->ifname);
			err = -EEXIST;
			goto fail;
		}
		adopt = true;
	} else if ((err = xfrm_dev_add(c, t)) < 0) {
		goto fail;
	}
	if ((err = xfrm_dev_up(c, t)) < 0 ||
	    (err = xfrm_routes(c, t, RTM_NEWROUTE)) < 0)
		goto undo;
	if (adopt && (err = xfrm_adopt_policy(c, t, &have_out)) < 0) {
		xfrm_fail(c, err, "tunnel %llu: listing policies",
		    (unsigned long long)p->id);
		goto undo;
	}
	/* Adopted: keep the out policy as it is, traffic keeps flowing. */
	if ((err = xfrm_policies_add(c, t, have_out)) < 0) {
		xfrm_fail(c, err, "tunnel %llu: policies",
		    (unsigned long long)p->id);
		goto undo;
	}
	t->next = c->tuns;
	c->tuns = t;
	if (adopt)
		log_info("xfrm: tunnel %llu: adopted %s from a previous run",
		    (unsigned long long)p->id, p->ifname);
	return 0;
undo:
	if (!adopt) {
		xfrm_policies_del(c, t);
		(void)xfrm_dev_del(c, p->ifname);
	}
fail:
	xfrm_tun_free(t);
	return err;
}

/* ---- peer address moves ------------------------------------------------- */

/*
 * Move tunnel `from`'s SAs of direction dir to tunnel `to` (the same
 * tunnel and SAs at another remote address and port) with one
 * XFRM_MSG_MIGRATE: the kernel copies each state, counters and replay
 * state included, to its new addresses and ports, and deletes the old
 * one.  It moves only SAs named by a template of the policy the message
 * selects; `from`'s allow policy of dir, which no longer carries traffic
 * (the device sends to the new address), is rewritten to name them all.
 * 0 or -errno (logged).
 */
static int
xfrm_migrate_dir(struct xfrm_ctx *c, const struct xfrm_tun *from,
    const struct xfrm_tun *to, enum overlay_dir dir)
{
	struct xfrm_nl_move mv[XFRM_MIGRATE_MAX];
	uint32_t reqids[XFRM_MIGRATE_MAX];
	struct xfrm_selector sel;
	struct xfrm_sa *s;
	struct nl_msg *msg;
	size_t n = 0;
	int pdir = dir == OVERLAY_DIR_OUT ? XFRM_POLICY_OUT : XFRM_POLICY_IN;
	int err;

	for (s = from->sas; s != NULL; s = s->next) {
		if (s->dir != dir || s->hard_expired)
			continue;	/* the kernel removed it */
		if (n == XFRM_MIGRATE_MAX)
			return -ENOSPC;	/* xfrm_tun_move checked */
		xfrm_place(c, from, dir, s->reqid, &mv[n].from);
		xfrm_place(c, to, dir, s->reqid, &mv[n].to);
		reqids[n++] = s->reqid;
	}
	if (n == 0)
		return 0;
	if ((err = xfrm_policy_msg(from, XFRM_MSG_UPDPOLICY, pdir, false, true,
	    reqids, n, &msg)) < 0)
		return err;
	/* The message's selector, exactly as the kernel will hold it. */
	sel = ((struct xfrm_userpolicy_info *)nlmsg_data(nlmsg_hdr(msg)))->sel;
	if ((err = xfrm_nl_talk(c->xs, msg, NULL, NULL, c->why,
	    sizeof(c->why))) < 0)
		return xfrm_fail(c, err, "tunnel %llu: policy naming the %s SAs "
		    "to move", (unsigned long long)from->p.id,
		    overlay_dir_str(dir));
	if ((err = xfrm_nl_migrate_msg(&sel, pdir, mv, n, mv[0].to.sport,
	    mv[0].to.dport, &msg)) < 0)
		return err;
	if ((err = xfrm_nl_talk(c->xs, msg, NULL, NULL, c->why,
	    sizeof(c->why))) < 0)
		return xfrm_fail(c, err, "tunnel %llu: moving %zu %s SAs",
		    (unsigned long long)from->p.id, n, overlay_dir_str(dir));
	return 0;
}

/*
 * Outbound SA s of t, just moved, skips XFRM_MIGRATE_SEQ_GAP sequence
 * numbers (XFRM_MSG_NEWAE through libnl's xfrmnl_ae) before any packet
 * is routed to it.  libnl sends and waits for the ack itself, checking
 * sequence numbers it counts on its own socket: aes is one it alone
 * uses (c->xs is read by xfrm_nl_talk, which libnl does not see).  A 32-bit SA that has not that many left is set to
 * its last number: the kernel then refuses to send on it (fail closed)
 * and the agent rekeys.  0 or -errno (logged).
 */
static int
xfrm_seq_skip(struct xfrm_ctx *c, struct nl_sock *aes,
    const struct xfrm_tun *t, const struct xfrm_sa *s)
{
	uint32_t bmp[XFRM_REPLAY_KERNEL_MAX / 32];
	struct xfrm_kstate k;
	struct xfrmnl_ae *ae;
	struct nl_addr *d, *src;
	uint64_t oseq;
	int err;

	if ((err = xfrm_sa_get(c, &t->p.remote, s->spi, &k)) < 0)
		return xfrm_fail(c, err, "tunnel %llu: SA %u after the move",
		    (unsigned long long)t->p.id, s->spi);
	if (!k.have_esn || k.bmp_len > sizeof(bmp) / sizeof(bmp[0])) {
		log_warnx("xfrm: tunnel %llu: SA %u has no replay state we "
		    "made", (unsigned long long)t->p.id, s->spi);
		return -EPROTO;
	}
	oseq = k.oseq + XFRM_MIGRATE_SEQ_GAP;
	if (!s->p.esn && oseq > UINT32_MAX)
		oseq = UINT32_MAX;
	memset(bmp, 0, sizeof(bmp));	/* an outbound SA keeps no window */
	ae = xfrmnl_ae_alloc();
	d = xfrm_naddr(&t->p.remote, -1);
	src = xfrm_naddr(&t->p.local, -1);
	err = -ENOMEM;
	if (ae != NULL && d != NULL && src != NULL) {
		xfrmnl_ae_set_daddr(ae, d);
		xfrmnl_ae_set_saddr(ae, src);
		xfrmnl_ae_set_spi(ae, s->spi);
		xfrmnl_ae_set_proto(ae, IPPROTO_ESP);
		xfrmnl_ae_set_reqid(ae, s->reqid);
		if (xfrmnl_ae_set_replay_state_esn(ae, (uint32_t)oseq, 0,
		    (uint32_t)(oseq >> 32), 0, k.window, k.bmp_len, bmp) == 0 &&
		    (err = xfrmnl_ae_set(aes, ae, 0)) < 0) {
			log_warnx("xfrm: tunnel %llu: SA %u: setting its sequence "
			    "number: %s", (unsigned long long)t->p.id, s->spi,
			    nl_geterror(err));
			err = -EIO;
		}
	}
	nl_addr_put(d);
	nl_addr_put(src);
	if (ae != NULL)
		xfrmnl_ae_put(ae);
	return err;
}

/*
 * The peer's outer address moved (NAT rebinding to a new public address,
 * or the intent): t follows to p's remote address and port, its SAs
 * keeping their keys, counters and sequence numbers (README.md, "Peer
 * address moves").  Nothing is ever sent in clear: the new address's
 * block and inbound policies exist before the device sends there, and
 * its outbound policy allows only once the SAs are there.  On a failure
 * before the SAs moved everything is put back; 0 or -errno (logged).
 */
static int
xfrm_tun_move(struct xfrm_ctx *c, struct xfrm_tun *t,
    const struct overlay_tunnel_params *p)
{
	struct xfrm_tun n = *t, *o;
	struct nl_sock *aes;
	struct xfrm_sa *s;
	unsigned nin = 0, nout = 0;
	uint32_t active = 0;
	int err;

	if (p->remote.family != t->p.remote.family) {
		log_warnx("xfrm: tunnel %llu: the remote cannot change its "
		    "address family in place", (unsigned long long)t->p.id);
		return -EAFNOSUPPORT;
	}
	for (s = t->sas; s != NULL; s = s->next) {
		if (s->hard_expired)
			continue;
		if (s->dir == OVERLAY_DIR_IN)
			nin++;
		else
			nout++;
		if (s->dir == OVERLAY_DIR_OUT && s->spi == t->active_spi)
			active = s->reqid;
	}
	if (nin > XFRM_MIGRATE_MAX || nout > XFRM_MIGRATE_MAX) {
		log_warnx("xfrm: tunnel %llu: more than %d SAs in one direction "
		    "cannot move to a new address (delete the drained ones)",
		    (unsigned long long)t->p.id, XFRM_MIGRATE_MAX);
		return -ENOSPC;
	}
	for (o = c->tuns; o != NULL; o = o->next)
		if (o != t && o->p.encap == t->p.encap &&
		    overlay_addr_eq(&o->p.remote, &p->remote)) {
			log_warnx("xfrm: tunnel %llu: remote already used by "
			    "tunnel %llu", (unsigned long long)t->p.id,
			    (unsigned long long)o->p.id);
			return -EEXIST;
		}
	n.p.remote = p->remote;
	n.p.remote_port = p->remote_port;
	/* 1. The new address's policies, the outbound one blocking. */
	if ((err = xfrm_policies_add(c, &n, false)) < 0) {
		xfrm_fail(c, err, "tunnel %llu: policies for the new address",
		    (unsigned long long)t->p.id);
		goto undo_pol;
	}
	/* 2. The device sends there: blocked until step 5. */
	if ((err = xfrm_dev_remote(c, &n)) < 0)
		goto undo_pol;
	/* 3. The SAs, one message per direction. */
	if ((err = xfrm_migrate_dir(c, t, &n, OVERLAY_DIR_OUT)) < 0)
		goto undo_dev;
	if ((err = xfrm_migrate_dir(c, t, &n, OVERLAY_DIR_IN)) < 0) {
		if (xfrm_migrate_dir(c, &n, t, OVERLAY_DIR_OUT) < 0)
			log_warnx("xfrm: tunnel %llu: outbound SAs not moved "
			    "back", (unsigned long long)t->p.id);
		goto undo_dev;
	}
	/* 4. No number the old states may still have used goes out again. */
	if ((aes = nout > 0 ? xfrm_nl_open(NETLINK_XFRM) : NULL) == NULL &&
	    nout > 0)
		log_warnx("xfrm: tunnel %llu: no socket to move the outbound "
		    "SAs' sequence numbers: they are deleted",
		    (unsigned long long)t->p.id);
	for (s = t->sas; s != NULL; s = s->next) {
		if (s->dir != OVERLAY_DIR_OUT || s->hard_expired ||
		    (aes != NULL && xfrm_seq_skip(c, aes, &n, s) == 0))
			continue;
		/* Unknown where it stands: it never sends again. */
		(void)xfrm_sa_kdel(c, &n.p.remote, s->spi);
		s->hard_expired = true;
		if (s->reqid == active)
			active = 0;
	}
	if (aes != NULL)
		nl_socket_free(aes);
	/* 5. Traffic to the new address flows; the old policies go. */
	t->active_spi = active != 0 ? t->active_spi : 0;
	if (active != 0 && (err = xfrm_policy_out(c, &n, active)) < 0) {
		xfrm_fail(c, err, "tunnel %llu: outbound policy after the move",
		    (unsigned long long)t->p.id);
		t->active_spi = 0;	/* blocks: fail closed */
	}
	xfrm_policies_del(c, t);
	t->p.remote = p->remote;
	t->p.remote_port = p->remote_port;
	return 0;

undo_dev:
	(void)xfrm_dev_remote(c, t);
	/* The rewritten policies as they were. */
	(void)xfrm_policy(c, t, XFRM_MSG_UPDPOLICY, XFRM_POLICY_IN, false, true,
	    0);
	(void)xfrm_policy_out(c, t, active);
undo_pol:
	xfrm_policies_del(c, &n);
	return err;
}

static int
xfrm_op_tunnel_update(void *ctx, const struct overlay_tunnel_params *p)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	struct rtnl_link *l;
	uint16_t oport, nport;
	int err;

	if ((err = xfrm_tun_check(c, p)) < 0)
		return err;
	if ((t = xfrm_tun_find(c, p->id)) == NULL)
		return -ENOENT;
	if (overlay_tunnel_needs_remake(&t->p, p)) {
		log_warnx("xfrm: tunnel %llu: change needs delete and add",
		    (unsigned long long)p->id);
		return -EINVAL;
	}
	if (p->mtu != t->p.mtu) {
		l = rtnl_link_alloc();
		if (l == NULL)
			return -ENOMEM;
		rtnl_link_set_ifindex(l, t->ifindex);
		rtnl_link_set_mtu(l, p->mtu);
		err = xfrm_link_send(c, l, 0);
		rtnl_link_put(l);
		if (err < 0)
			return xfrm_fail(c, err, "tunnel %llu: MTU",
			    (unsigned long long)p->id);
	}
	if (!overlay_addr_eq(&t->p.inner_local6, &p->inner_local6)) {
		/* Dual stack added or moved: the new /127 first (an old one
		 * stays until the next remake: harmless, never routed to). */
		struct overlay_addr old6 = t->p.inner_local6;

		t->p.inner_local6 = p->inner_local6;
		if ((err = xfrm_addr6(c, t)) < 0) {
			t->p.inner_local6 = old6;
			return err;
		}
		t->p.inner_peer6 = p->inner_peer6;
	}
	oport = t->p.remote_port ? t->p.remote_port : OVERLAY_UDP_PORT;
	nport = p->remote_port ? p->remote_port : OVERLAY_UDP_PORT;
	if (!overlay_addr_eq(&t->p.remote, &p->remote)) {
		/* An SA's addresses are its identity: XFRM_MSG_MIGRATE. */
		if ((err = xfrm_tun_move(c, t, p)) < 0)
			return err;
		xfrm_moved_clear(&t->moved);	/* followed (or moved back) */
	} else if (oport != nport) {
		/* UPDSA keeps a valid state's counters and takes the encap. */
		uint16_t was = t->p.remote_port;

		t->p.remote_port = p->remote_port;
		for (s = t->sas; s != NULL; s = s->next) {
			struct xfrm_sa_place pl;

			if (s->hard_expired)
				continue;	/* the kernel removed it */
			xfrm_place(c, t, s->dir, s->reqid, &pl);
			err = xfrm_sa_kernel(c, XFRM_MSG_UPDSA, &s->p, &pl);
			if (err == -ESRCH) {
				s->hard_expired = true;
				continue;
			}
			if (err < 0) {
				/* The old port stays ours, so that a retry
				 * (the agent's next follow) rewrites all. */
				t->p.remote_port = was;
				return xfrm_fail(c, err, "tunnel %llu: port "
				    "of SA %u", (unsigned long long)p->id,
				    s->spi);
			}
		}
	}
	if (oport != nport)
		xfrm_moved_clear(&t->moved);	/* followed (or moved back) */
	(void)xfrm_routes(c, t, RTM_DELROUTE);
	t->p = *p;
	/* The addresses announced again (unchanged: see xfrm_addr4). */
	if ((err = xfrm_addr4(c, t)) < 0 || (err = xfrm_addr6(c, t)) < 0) {
		(void)xfrm_routes(c, t, RTM_NEWROUTE);
		return err;
	}
	return xfrm_routes(c, t, RTM_NEWROUTE);
}

static int
xfrm_op_tunnel_del(void *ctx, uint64_t id)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun **tp, *t;

	for (tp = &c->tuns; (t = *tp) != NULL; tp = &t->next)
		if (t->p.id == id)
			break;
	if (t == NULL)
		return -ENOENT;
	*tp = t->next;
	xfrm_tun_remove(c, t);
	xfrm_tun_free(t);
	return 0;
}

/* An inbound SPI held by another inbound SA of this instance. */
static struct xfrm_tun *
xfrm_spi_holder(struct xfrm_ctx *c, uint32_t spi)
{
	struct xfrm_tun *t;

	for (t = c->tuns; t != NULL; t = t->next)
		if (xfrm_sa_find(t, spi, OVERLAY_DIR_IN) != NULL)
			return t;
	return NULL;
}

/*
 * An outbound SA's reservation in the seq file, taken before the SA sends:
 * a new SA starts above the key's mark (q->seq_start, the kernel's oseq),
 * an adopted one keeps its kernel counter and gets a mark above it.
 * 0 or -errno (logged); with no seq file, 0 and *res NULL.
 */
static int
xfrm_seq_reserve(struct xfrm_ctx *c, const struct xfrm_sa_place *pl,
    bool adopted, struct overlay_sa_params *q, struct uesp_seq_res **res)
{
	struct xfrm_kstate k;
	uint64_t start;
	int err;

	*res = NULL;
	if (c->seq == NULL || q->dir != OVERLAY_DIR_OUT)
		return 0;
	if (adopted) {
		if ((err = xfrm_sa_get(c, &pl->dst, q->spi, &k)) < 0)
			return xfrm_fail(c, err, "tunnel %llu: SA %u: reading "
			    "its sequence number",
			    (unsigned long long)q->tunnel_id, q->spi);
		if (k.oseq > q->seq_start)
			q->seq_start = k.oseq;
	}
	/* A new SA sends nothing before its request goes: the run's one
	 * fsync (xfrm_run_flush) is soon enough.  An adopted one sends now. */
	if ((err = adopted ? uesp_seq_acquire(c->seq, q, res, &start) :
	    uesp_seq_acquire_nosync(c->seq, q, res, &start)) < 0)
		return err;
	q->seq_start = start;
	return 0;
}

/* Whether an unclaimed SA of a previous run has key digest d. */
static bool
xfrm_found_key(const struct xfrm_ctx *c,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN])
{
	const struct xfrm_found *f;

	for (f = c->found; f != NULL; f = f->next)
		if (memcmp(f->digest, d, OVERLAY_KEY_DIGEST_LEN) == 0)
			return true;
	return false;
}

/* Claim an SA of a previous run: 1 adopted, 0 none, -errno. */
static int
xfrm_claim(struct xfrm_ctx *c, const struct overlay_sa_params *p,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN], const struct xfrm_sa_place *pl,
    uint32_t *reqid)
{
	struct xfrm_found **fp, *f;
	int same;

	for (fp = &c->found; (f = *fp) != NULL; fp = &f->next)
		if (f->spi == p->spi && overlay_addr_eq(&f->dst, &pl->dst))
			break;
	if (f == NULL)
		return 0;
	same = memcmp(d, f->digest, OVERLAY_KEY_DIGEST_LEN) == 0;
	*fp = f->next;
	*reqid = f->reqid;
	if (!same) {
		/* Same SPI, new key: the old state goes, the new one comes. */
		(void)xfrm_sa_kdel(c, &f->dst, f->spi);
		free(f);
		return 0;
	}
	free(f);
	return 1;
}

/*
 * SAs on their way into the kernel (sa_add_batch): prepared one by one
 * with every check sa_add makes, recorded in their tunnel at once (so the
 * SAs after them in the batch see their SPI and reqid), then sent as one
 * run of requests and kept or dropped by their own ack.
 */
struct xfrm_pend {
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	size_t idx;			/* in the caller's array */
	struct xfrm_sa_place pl;
	uint8_t digest[OVERLAY_KEY_DIGEST_LEN];
};

struct xfrm_run {
	struct xfrm_pend pend[XFRM_NL_BATCH_MAX];
	struct nl_msg *msgs[XFRM_NL_BATCH_MAX];
	int errs[XFRM_NL_BATCH_MAX];
	char why[XFRM_NL_BATCH_MAX][XFRM_NL_WHY_LEN];
	size_t n;
	bool unsynced;		/* reservations written, not yet fsynced */
};

static void
xfrm_sa_unlink(struct xfrm_tun *t, struct xfrm_sa *s)
{
	struct xfrm_sa **sp;

	for (sp = &t->sas; *sp != NULL; sp = &(*sp)->next)
		if (*sp == s) {
			*sp = s->next;
			return;
		}
}

/* Whether an outbound key of the run waiting for its ack has digest d. */
static bool
xfrm_run_has_key(const struct xfrm_run *r, const uint8_t *d)
{
	size_t j;

	for (j = 0; j < r->n; j++)
		if (r->pend[j].s->dir == OVERLAY_DIR_OUT &&
		    memcmp(r->pend[j].digest, d, OVERLAY_KEY_DIGEST_LEN) == 0)
			return true;
	return false;
}

/*
 * A new or adopted SA is kept: an outbound key counts as used from here
 * on.  0 or -ENOMEM (the key not recorded: the caller drops the SA).
 */
static int
xfrm_sa_keep(struct xfrm_ctx *c, struct xfrm_sa *s, const uint8_t *d)
{
	if (s->dir == OVERLAY_DIR_OUT && overlay_keys_add_digest(c->keys, d) < 0)
		return -ENOMEM;
	s->added = time(NULL);
	return 0;
}

/*
 * Everything sa_add does before the kernel, for p (index idx of the
 * caller's batch): 0 with the SA adopted and recorded, 1 with it queued
 * on r, or -errno (logged).
 */
static int
xfrm_sa_prepare(struct xfrm_ctx *c, struct xfrm_run *r,
    const struct overlay_sa_params *p, size_t idx)
{
	struct xfrm_pend *pe = &r->pend[r->n];
	struct xfrm_tun *t, *h;
	struct xfrm_sa *s;
	struct overlay_sa_params q;
	struct uesp_seq_res *res = NULL;
	uint8_t d[OVERLAY_KEY_DIGEST_LEN];
	uint32_t reqid = 0;
	int err, adopted;

	if (overlay_sa_params_check(p) < 0)
		return -EINVAL;
	if ((t = xfrm_tun_find(c, p->tunnel_id)) == NULL) {
		log_warnx("xfrm: SA %u: no tunnel %llu", p->spi,
		    (unsigned long long)p->tunnel_id);
		return -ENOENT;
	}
	if (xfrm_sa_find(t, p->spi, p->dir) != NULL) {
		log_warnx("xfrm: tunnel %llu: %s SA %u exists",
		    (unsigned long long)t->p.id, overlay_dir_str(p->dir), p->spi);
		return -EEXIST;
	}
	if (p->dir == OVERLAY_DIR_IN && (h = xfrm_spi_holder(c, p->spi)) != NULL) {
		log_warnx("xfrm: tunnel %llu: inbound SPI %u is held by tunnel "
		    "%llu", (unsigned long long)t->p.id, p->spi,
		    (unsigned long long)h->p.id);
		return -EEXIST;
	}
	/* One digest per SA: the key check, adoption and the record. */
	overlay_keys_digest(c->keys, p, d);
	if (p->dir == OVERLAY_DIR_OUT &&
	    (overlay_keys_check_digest(c->keys, d, p) < 0 ||
	    xfrm_run_has_key(r, d))) {
		if (xfrm_run_has_key(r, d))
			log_warnx("xfrm: tunnel %llu: SA out %u: its key and "
			    "salt come earlier in the same batch",
			    (unsigned long long)t->p.id, p->spi);
		return -EEXIST;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;

	xfrm_place(c, t, p->dir, 0, &pe->pl);
	adopted = xfrm_claim(c, p, d, &pe->pl, &reqid);
	if (adopted == 0 && p->dir == OVERLAY_DIR_OUT && xfrm_found_key(c, d)) {
		/*
		 * A previous run's SA under this key lives at another place
		 * (its peer had moved, README.md "Peer address moves"): its
		 * counter is not ours to restart.  Fresh keys (a rekey).
		 */
		log_warnx("xfrm: tunnel %llu: SA out %u: its key is in use by "
		    "an SA of a previous run at another address",
		    (unsigned long long)t->p.id, p->spi);
		free(s);
		return -EEXIST;
	}
	q = *p;
	if ((err = xfrm_seq_reserve(c, &pe->pl, adopted == 1, &q, &res)) < 0) {
		/* No mark above its counter: an adopted SA must not send. */
		if (adopted == 1)
			(void)xfrm_sa_kdel(c, &pe->pl.dst, p->spi);
		explicit_bzero(&q, sizeof(q));
		free(s);
		return err;
	}
	s->res = res;
	s->dir = p->dir;
	s->spi = p->spi;
	s->p = *p;
	if (adopted == 1) {
		explicit_bzero(&q, sizeof(q));
		s->reqid = reqid;
		if (xfrm_sa_keep(c, s, d) < 0) {
			(void)xfrm_sa_kdel(c, &pe->pl.dst, p->spi);
			xfrm_sa_free(s);
			return -ENOMEM;
		}
		s->next = t->sas;
		t->sas = s;
		/* The out policy of an adopted tunnel already sends to it. */
		if (p->dir == OVERLAY_DIR_OUT && t->adopted_reqid == reqid)
			t->active_spi = p->spi;
		log_info("xfrm: tunnel %llu: %s SA %u adopted, its sequence "
		    "number keeps running", (unsigned long long)t->p.id,
		    overlay_dir_str(p->dir), p->spi);
		return 0;
	}
	if (reqid == 0 && (reqid = xfrm_reqid_new(c)) == 0) {
		explicit_bzero(&q, sizeof(q));
		xfrm_sa_free(s);
		log_warnx("xfrm: no free reqid");
		return -ENOSPC;
	}
	pe->pl.reqid = reqid;
	err = xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &q, &pe->pl, &r->msgs[r->n]);
	explicit_bzero(&q, sizeof(q));
	if (err < 0) {
		xfrm_sa_free(s);
		return xfrm_fail(c, err, "tunnel %llu: %s SA %u",
		    (unsigned long long)t->p.id, overlay_dir_str(p->dir),
		    p->spi);
	}
	/* In the record now: later SAs of the batch see SPI and reqid. */
	s->reqid = reqid;
	s->next = t->sas;
	t->sas = s;
	pe->t = t;
	pe->s = s;
	pe->idx = idx;
	if (res != NULL)
		r->unsynced = true;
	memcpy(pe->digest, d, sizeof(d));
	r->n++;
	return 1;
}

/* Send the queued SAs, keep those the kernel took, drop the others. */
static void
xfrm_run_flush(struct xfrm_ctx *c, struct xfrm_run *r, int *results)
{
	size_t j;

	if (r->n == 0)
		return;
	/* Every reservation of the run on disk, with one fsync, before any
	 * of its SAs exists; without that, its outbound SAs must not go. */
	if (r->unsynced && uesp_seq_sync(c->seq) < 0) {
		size_t k = 0;

		for (j = 0; j < r->n; j++) {
			struct xfrm_pend *pe = &r->pend[j];

			if (pe->s->res == NULL) {
				r->pend[k] = *pe;
				r->msgs[k++] = r->msgs[j];
				continue;
			}
			xfrm_nl_free(r->msgs[j]);
			results[pe->idx] = -EIO;
			xfrm_sa_unlink(pe->t, pe->s);
			xfrm_sa_free(pe->s);	/* releases the reservation */
		}
		r->n = k;
	}
	r->unsynced = false;
	if (r->n == 0)
		return;
	(void)xfrm_nl_batch(c->xs, r->msgs, r->n, r->errs, r->why);
	for (j = 0; j < r->n; j++) {
		struct xfrm_pend *pe = &r->pend[j];
		int err = r->errs[j];

		r->msgs[j] = NULL;
		if (err == 0 && (err = xfrm_sa_keep(c, pe->s, pe->digest)) < 0)
			(void)xfrm_sa_kdel(c, &pe->pl.dst, pe->s->spi);
		if (err < 0) {
			snprintf(c->why, sizeof(c->why), "%s", r->why[j]);
			(void)xfrm_fail(c, err, "tunnel %llu: %s SA %u",
			    (unsigned long long)pe->t->p.id,
			    overlay_dir_str(pe->s->dir), pe->s->spi);
			xfrm_sa_unlink(pe->t, pe->s);
			xfrm_sa_free(pe->s);
		}
		results[pe->idx] = err;
	}
	r->n = 0;
	c->why[0] = '\0';
}

static int
xfrm_op_sa_add_batch(void *ctx, const struct overlay_sa_params *p, size_t n,
    int *results)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_run *r;
	size_t i;
	int rc, ret = 0;

	/* Kept for the instance: sa_add, a batch of one, allocates nothing. */
	if (c->run == NULL && (c->run = calloc(1, sizeof(*c->run))) == NULL) {
		for (i = 0; i < n; i++)
			results[i] = -ENOMEM;
		return n > 0 ? -ENOMEM : 0;
	}
	r = c->run;
	r->n = 0;
	r->unsynced = false;
	for (i = 0; i < n; i++) {
		if (r->n == XFRM_NL_BATCH_MAX)
			xfrm_run_flush(c, r, results);
		rc = xfrm_sa_prepare(c, r, &p[i], i);
		results[i] = rc <= 0 ? rc : -EINPROGRESS;	/* set by the flush */
	}
	xfrm_run_flush(c, r, results);
	for (i = 0; i < n; i++)
		if (results[i] < 0) {
			ret = results[i];
			break;
		}
	return ret;
}

static int
xfrm_op_sa_add(void *ctx, const struct overlay_sa_params *p)
{
	int res;

	return xfrm_op_sa_add_batch(ctx, p, 1, &res);
}

/*
 * sa_del_batch's step before the kernel, for ref (index idx of the
 * caller's batch): 1 with the DELSA queued on r, or -errno (logged).  An
 * active outbound SA first turns its tunnel's out policy to block (one
 * request of its own), so the tunnel fails closed before the state goes.
 */
static int
xfrm_del_prepare(struct xfrm_ctx *c, struct xfrm_run *r,
    const struct overlay_sa_ref *ref, size_t idx)
{
	struct xfrm_pend *pe = &r->pend[r->n];
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	int err;

	if ((t = xfrm_tun_find(c, ref->tunnel_id)) == NULL ||
	    (s = xfrm_sa_find(t, ref->spi, ref->dir)) == NULL || s->deleting)
		return -ENOENT;
	if (ref->dir == OVERLAY_DIR_OUT && t->active_spi == ref->spi) {
		if ((err = xfrm_policy_out(c, t, 0)) < 0)
			return xfrm_fail(c, err, "tunnel %llu: blocking",
			    (unsigned long long)t->p.id);
		t->active_spi = 0;
	}
	r->msgs[r->n] = xfrm_sa_id_msg(XFRM_MSG_DELSA, ref->dir ==
	    OVERLAY_DIR_OUT ? &t->p.remote : &t->p.local, ref->spi);
	if (r->msgs[r->n] == NULL)
		return -ENOMEM;
	s->deleting = true;
	pe->t = t;
	pe->s = s;
	pe->idx = idx;
	r->n++;
	return 1;
}

/* Send the queued deletes; forget the SAs the kernel no longer has. */
static void
xfrm_del_flush(struct xfrm_ctx *c, struct xfrm_run *r, int *results)
{
	size_t j;

	if (r->n == 0)
		return;
	(void)xfrm_nl_batch(c->xs, r->msgs, r->n, r->errs, r->why);
	for (j = 0; j < r->n; j++) {
		struct xfrm_pend *pe = &r->pend[j];
		int err = r->errs[j];

		r->msgs[j] = NULL;
		if (err == -ESRCH)
			err = 0;	/* hard expiry removed it already */
		if (err < 0) {
			snprintf(c->why, sizeof(c->why), "%s", r->why[j]);
			(void)xfrm_fail(c, err, "tunnel %llu: deleting SA %u",
			    (unsigned long long)pe->t->p.id, pe->s->spi);
			pe->s->deleting = false;
		} else {
			xfrm_sa_unlink(pe->t, pe->s);
			xfrm_sa_free(pe->s);
		}
		results[pe->idx] = err;
	}
	r->n = 0;
	c->why[0] = '\0';
}

static int
xfrm_op_sa_del_batch(void *ctx, const struct overlay_sa_ref *refs, size_t n,
    int *results)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_run *r;
	size_t i;
	int rc, ret = 0;

	if (c->run == NULL && (c->run = calloc(1, sizeof(*c->run))) == NULL) {
		for (i = 0; i < n; i++)
			results[i] = -ENOMEM;
		return n > 0 ? -ENOMEM : 0;
	}
	r = c->run;
	r->n = 0;
	for (i = 0; i < n; i++) {
		if (r->n == XFRM_NL_BATCH_MAX)
			xfrm_del_flush(c, r, results);
		rc = xfrm_del_prepare(c, r, &refs[i], i);
		results[i] = rc <= 0 ? rc : -EINPROGRESS;	/* set by the flush */
	}
	xfrm_del_flush(c, r, results);
	for (i = 0; i < n; i++)
		if (results[i] < 0) {
			ret = results[i];
			break;
		}
	return ret;
}

static int
xfrm_op_sa_del(void *ctx, uint64_t tid, uint32_t spi, enum overlay_dir dir)
{
	struct overlay_sa_ref ref = { .tunnel_id = tid, .spi = spi,
	    .dir = dir };
	int res;

	return xfrm_op_sa_del_batch(ctx, &ref, 1, &res);
}

static int
xfrm_op_sa_switch_out(void *ctx, uint64_t tid, uint32_t spi)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	int err;

	if ((t = xfrm_tun_find(c, tid)) == NULL ||
	    (s = xfrm_sa_find(t, spi, OVERLAY_DIR_OUT)) == NULL)
		return -ENOENT;
	/* One UPDPOLICY: the template names the new reqid, atomically. */
	if ((err = xfrm_policy_out(c, t, s->reqid)) < 0)
		return xfrm_fail(c, err, "tunnel %llu: switch to SA %u",
		    (unsigned long long)tid, spi);
	t->active_spi = spi;
	return 0;
}

static int
xfrm_op_sa_update(void *ctx, const struct overlay_sa_params *p)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_sa_place pl;
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	struct overlay_sa_params q;
	int err;

	if (overlay_sa_params_check(p) < 0)
		return -EINVAL;
	if ((t = xfrm_tun_find(c, p->tunnel_id)) == NULL ||
	    (s = xfrm_sa_find(t, p->spi, p->dir)) == NULL)
		return -ENOENT;
	if (p->cipher != s->p.cipher || p->esn != s->p.esn ||
	    p->replay_window != s->p.replay_window ||
	    memcmp(p->key, s->p.key, sizeof(p->key)) != 0 ||
	    memcmp(p->salt, s->p.salt, sizeof(p->salt)) != 0) {
		log_warnx("xfrm: tunnel %llu: SA %u: only lifetimes change in "
		    "place", (unsigned long long)t->p.id, p->spi);
		return -EINVAL;
	}
	if (s->hard_expired) {
		/* The kernel deleted it at its hard limit. */
		log_warnx("xfrm: tunnel %llu: SA %u is past its hard lifetime",
		    (unsigned long long)t->p.id, p->spi);
		return -ENOENT;
	}
	q = s->p;
	q.soft = p->soft;
	q.hard = p->hard;
	xfrm_place(c, t, s->dir, s->reqid, &pl);
	/* UPDSA on a valid state copies only lifetimes (and the encap). */
	err = xfrm_sa_kernel(c, XFRM_MSG_UPDSA, &q, &pl);
	if (err < 0) {
		explicit_bzero(&q, sizeof(q));
		return xfrm_fail(c, err, "tunnel %llu: lifetimes of SA %u",
		    (unsigned long long)t->p.id, p->spi);
	}
	s->p = q;
	explicit_bzero(&q, sizeof(q));
	s->soft_expired = false;
	return 0;
}

static int
xfrm_op_tunnel_stats(void *ctx, uint64_t tid, struct overlay_tunnel_stats *o)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	struct rtnl_link_stats64 st;

	memset(o, 0, sizeof(*o));
	xfrm_events_drain(c);
	if ((t = xfrm_tun_find(c, tid)) == NULL)
		return -ENOENT;
	if (xfrm_link_stats(c, t->ifindex, &st) == 0) {
		o->tx_packets = st.tx_packets;
		o->tx_bytes = st.tx_bytes;
		o->rx_packets = st.rx_packets;
		o->rx_bytes = st.rx_bytes;
		o->drops.io = st.tx_errors + st.rx_errors;
	}
	o->spi_out = t->active_spi;
	(void)xfrm_moved_tick(&t->moved, util_mono_ms());
	if (t->moved.addr.family != AF_UNSPEC) {
		o->moved_addr = t->moved.addr;
		o->moved_port = t->moved.port;
		o->moved_rx = t->moved.rx;
	}
	for (s = t->sas; s != NULL; s = s->next) {
		struct xfrm_kstate k;

		if (s->dir == OVERLAY_DIR_IN)
			o->sa_in++;
		else
			o->sa_out++;
		if (s->dir == OVERLAY_DIR_IN && xfrm_sa_get(c, &t->p.local,
		    s->spi, &k) == 0) {
			o->drops.auth += k.info.stats.integrity_failed;
			o->drops.replay += k.info.stats.replay;
		}
	}
	return 0;
}

static bool
xfrm_lifetime_hit(const struct overlay_lifetime *l, uint64_t bytes,
    uint64_t packets, uint64_t age)
{
	return (l->bytes != 0 && bytes >= l->bytes) ||
	    (l->packets != 0 && packets >= l->packets) ||
	    (l->seconds != 0 && age >= l->seconds);
}

static int
xfrm_op_sa_stats(void *ctx, uint64_t tid, uint32_t spi, enum overlay_dir dir,
    struct overlay_sa_stats *o)
{
	struct xfrm_ctx *c = ctx;
	struct xfrm_tun *t;
	struct xfrm_sa *s;
	struct xfrm_kstate k;
	time_t now = time(NULL);
	int err;

	memset(o, 0, sizeof(*o));
	xfrm_events_drain(c);
	if ((t = xfrm_tun_find(c, tid)) == NULL ||
	    (s = xfrm_sa_find(t, spi, dir)) == NULL)
		return -ENOENT;
	o->spi = spi;
	o->dir = dir;
	o->active = dir == OVERLAY_DIR_OUT && t->active_spi == spi;
	o->age_s = now > s->added ? (uint64_t)(now - s->added) : 0;
	err = xfrm_sa_get(c, dir == OVERLAY_DIR_OUT ? &t->p.remote :
	    &t->p.local, spi, &k);
	if (err == -ESRCH || err == -ENOENT) {
		s->hard_expired = true;		/* the kernel removed it */
	} else if (err < 0) {
		return xfrm_fail(c, err, "tunnel %llu: SA %u stats",
		    (unsigned long long)tid, spi);
	} else {
		o->packets = k.info.curlft.packets;
		o->bytes = k.info.curlft.bytes;
		o->seq = dir == OVERLAY_DIR_OUT ? k.oseq : k.seq;
		/* The mark follows the kernel: half a step left asks for the
		 * next one.  Past it means the bound in README.md was broken. */
		if (s->res != NULL && !uesp_seq_allow(s->res, k.oseq) &&
		    !s->seq_overrun) {
			s->seq_overrun = true;
			log_warnx("xfrm: tunnel %llu: SA %u sent past its "
			    "reserved sequence numbers: rekey",
			    (unsigned long long)tid, spi);
		}
		o->auth = k.info.stats.integrity_failed;
		o->replay = k.info.stats.replay;
		if (k.info.curlft.add_time != 0 &&
		    (uint64_t)now > k.info.curlft.add_time)
			o->age_s = (uint64_t)now - k.info.curlft.add_time;
		if (xfrm_lifetime_hit(&s->p.soft, o->bytes, o->packets,
		    o->age_s))
			s->soft_expired = true;
	}
	o->soft_expired = s->soft_expired || s->hard_expired;
	o->hard_expired = s->hard_expired;
	return 0;
}

static int
xfrm_op_global_stats(void *ctx, struct overlay_drops *o)
{
	struct xfrm_ctx *c = ctx;
	uint64_t v[XS_N];
	int i;

	memset(o, 0, sizeof(*o));
	xfrm_stat_read(v);
	for (i = 0; i < XS_N; i++)
		v[i] = v[i] >= c->stat_base[i] ? v[i] - c->stat_base[i] : 0;
	o->auth = v[XS_AUTH];
	o->replay = v[XS_REPLAY];
	o->unknown_spi = v[XS_NOSPI];
	o->malformed = v[XS_MALFORMED];
	o->no_sa = v[XS_NOSA];
	o->io = v[XS_IO];
	return 0;
}

/* The event thread's eventfd; -1 if it could not start (init logged). */
static int
xfrm_op_moved_fd(void *ctx)
{
	struct xfrm_ctx *c = ctx;

	return c->evmon != NULL ? xfrm_evmon_fd(c->evmon) : -1;
}

const struct overlay_ops xfrm_ops = {
	.version = OVERLAY_API_VERSION,
	.name = "xfrm",
	.features = OVERLAY_F_GRE | OVERLAY_F_VXLAN | OVERLAY_F_AES_GCM_128 |
	    OVERLAY_F_AES_GCM_256 | OVERLAY_F_ESN | OVERLAY_F_NAT_T,
	.init = xfrm_op_init,
	.fini = xfrm_op_fini,
	.tunnel_add = xfrm_op_tunnel_add,
	.tunnel_update = xfrm_op_tunnel_update,
	.tunnel_del = xfrm_op_tunnel_del,
	.sa_add = xfrm_op_sa_add,
	.sa_del = xfrm_op_sa_del,
	.sa_switch_out = xfrm_op_sa_switch_out,
	.tunnel_stats = xfrm_op_tunnel_stats,
	.sa_stats = xfrm_op_sa_stats,
	.global_stats = xfrm_op_global_stats,
	.sa_update = xfrm_op_sa_update,
	.moved_fd = xfrm_op_moved_fd,
	.sa_add_batch = xfrm_op_sa_add_batch,
	.sa_del_batch = xfrm_op_sa_del_batch,
};
