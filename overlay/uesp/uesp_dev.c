/*
 * uesp_dev.c — TUN/TAP devices and UDP sockets for the uesp backend.
 * See uesp_dev.h.
 */
#include "overlay/uesp/uesp_dev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet6.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define UESP_DEV_SOCKBUF (4 * 1024 * 1024)

static int
uesp_dev_ioctl(int s, unsigned long req, struct ifreq *ifr, const char *what)
{
	int err;

	if (ioctl(s, req, ifr) < 0) {
		err = errno;
		log_warn("uesp: %s: %s", ifr->ifr_name, what);
		return -err;
	}
	return 0;
}

/*
 * A route netlink socket for one change to ifname, and ifname's index:
 * NULL (logged) with *err the -errno to return.
 */
static struct nl_sock *
uesp_dev_nl_open(const char *ifname, unsigned *ifindex, int *err)
{
	struct nl_sock *sk;
	int rc;

	if ((*ifindex = if_nametoindex(ifname)) == 0) {
		*err = -errno;
		log_warn("uesp: %s: no such device", ifname);
		return NULL;
	}
	if ((sk = nl_socket_alloc()) == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	if ((rc = nl_connect(sk, NETLINK_ROUTE)) < 0) {
		log_warnx("uesp: %s: netlink: %s", ifname, nl_geterror(rc));
		nl_socket_free(sk);
		*err = -EIO;
		return NULL;
	}
	return sk;
}

/* A libnl error of a change to ifname, logged, as the -errno to return. */
static int
uesp_dev_nl_fail(const char *ifname, const char *what, int nlerr)
{
	log_warnx("uesp: %s: %s: %s", ifname, what, nl_geterror(nlerr));
	return nlerr == -NLE_NOMEM ? -ENOMEM : -EIO;
}

/*
 * Give ifname the address a/plen in one RTM_NEWADDR (libnl-route).  The
 * ioctl way (SIOCSIFADDR, then SIOCSIFNETMASK) adds a /32 and replaces it
 * with the /31 a moment later; FRR 8.4's zebra sometimes misses the
 * replacement and never learns the /31, so BGP on that tunnel stays down
 * (seen 2 runs of 2 in the three-site lab).  One message, one event.
 */
static int
uesp_dev_addr_change(const char *ifname, const struct overlay_addr *a,
    unsigned plen, bool add)
{
	struct nl_sock *sk;
	struct rtnl_addr *ra = NULL;
	struct nl_addr *na = NULL;
	unsigned ifindex;
	int err;

	if (a->family != AF_INET && a->family != AF_INET6)
		return -EINVAL;
	if ((sk = uesp_dev_nl_open(ifname, &ifindex, &err)) == NULL)
		return err;
	ra = rtnl_addr_alloc();
	na = nl_addr_build(a->family, a->bytes,
	    a->family == AF_INET ? 4 : 16);
	if (ra == NULL || na == NULL) {
		err = -ENOMEM;
		goto out;
	}
	nl_addr_set_prefixlen(na, (int)plen);
	rtnl_addr_set_ifindex(ra, (int)ifindex);
	/* A tunnel's /127 has one peer: no duplicate address detection. */
	if (a->family == AF_INET6)
		rtnl_addr_set_flags(ra, IFA_F_NODAD);
	if ((err = rtnl_addr_set_local(ra, na)) < 0 ||
	    (err = add ? rtnl_addr_add(sk, ra, NLM_F_REPLACE) :
	    rtnl_addr_delete(sk, ra, 0)) < 0) {
		/* Removing an address that is gone already is done. */
		if (!add && (err == -NLE_NOADDR || err == -NLE_OBJ_NOTFOUND)) {
			err = 0;
			goto out;
		}
		err = uesp_dev_nl_fail(ifname, add ? "set address" :
		    "remove address", err);
		goto out;
	}
	err = 0;
out:
	nl_addr_put(na);
	rtnl_addr_put(ra);
	nl_socket_free(sk);
	return err;
}

int
uesp_dev_set_mtu(const char *ifname, uint32_t mtu)
{
	struct ifreq ifr;
	int s, rc;

	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	(void)util_strcpy(ifr.ifr_name, sizeof(ifr.ifr_name), ifname);
	ifr.ifr_mtu = (int)mtu;
	rc = uesp_dev_ioctl(s, SIOCSIFMTU, &ifr, "set MTU");
	close(s);
	return rc;
}

int
uesp_dev_addr_add(const char *ifname, const struct overlay_addr *a,
    unsigned plen)
{
	return uesp_dev_addr_change(ifname, a, plen, true);
}

/*
 * Dual stack: inner_local6/127 on the device, without duplicate address
 * detection (the /127 has one other end, which the controller gave the
 * peer), so BGP can bind to it at once; and the device's link-local
 * address fe80::/64 + the /127 address's low 64 bits (distinct at the two
 * ends).  FRR 8.4's bgpd resets an IPv6 session over a global address
 * whose device has no link-local address in zebra's view ("nexthop_set
 * failed"); the kernel's own link-local address appears as the device
 * comes up, and zebra drops that event when it beats the link's (the
 * race of uesp_dev_addr_add), for good.  This one is ours, so
 * tunnel_update announces it again with the /127.
 */
int
uesp_dev_addr6(const char *ifname, const struct overlay_addr *a, bool add)
{
	struct overlay_addr ll;
	int rc;

	if (a->family != AF_INET6)
		return 0;
	memset(&ll, 0, sizeof(ll));
	ll.family = AF_INET6;
	ll.bytes[0] = 0xfe;
	ll.bytes[1] = 0x80;
	memcpy(ll.bytes + 8, a->bytes + 8, 8);
	if ((rc = uesp_dev_addr_change(ifname, a, 127, add)) < 0)
		return rc;
	return uesp_dev_addr_change(ifname, &ll, 64, add);
}

/*
 * No kernel-made link-local address on ifname (addrgenmode none): with a
 * /127, uesp_dev_addr6 sets the device's only one.  Before the link
 * comes up.
 */
static int
uesp_dev_no_ll(const char *ifname)
{
	struct nl_sock *sk;
	struct rtnl_link *orig = NULL, *chg = NULL;
	unsigned ifindex;
	int err;

	if ((sk = uesp_dev_nl_open(ifname, &ifindex, &err)) == NULL)
		return err;
	orig = rtnl_link_alloc();
	chg = rtnl_link_alloc();
	if (orig == NULL || chg == NULL) {
		err = -ENOMEM;
		goto out;
	}
	rtnl_link_set_ifindex(orig, (int)ifindex);
	if ((err = rtnl_link_inet6_set_addr_gen_mode(chg,
	    IN6_ADDR_GEN_MODE_NONE)) < 0 ||
	    (err = rtnl_link_change(sk, orig, chg, 0)) < 0) {
		err = uesp_dev_nl_fail(ifname, "addrgenmode none", err);
		goto out;
	}
	err = 0;
out:
	rtnl_link_put(chg);
	rtnl_link_put(orig);
	nl_socket_free(sk);
	return err;
}

int
uesp_dev_open(const struct overlay_tunnel_params *p)
{
	struct ifreq ifr;
	unsigned plen = p->inner_prefix_len ? p->inner_prefix_len : 31;
	int fd, s, rc, err;

	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		log_warn("uesp: open /dev/net/tun");
		return -err;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_NO_PI | IFF_VNET_HDR |
	    (p->encap == OVERLAY_ENCAP_GRE ? IFF_TUN : IFF_TAP);
	(void)util_strcpy(ifr.ifr_name, sizeof(ifr.ifr_name), p->ifname);
	if ((rc = uesp_dev_ioctl(fd, TUNSETIFF, &ifr, "create device")) < 0)
		goto close_fd;
	/* Without it the kernel segments itself: slower, still correct. */
	if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0)
		log_warn("uesp: %s: TUN offloads not available", p->ifname);
	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		rc = -errno;
		goto close_fd;
	}
	memset(&ifr, 0, sizeof(ifr));
	(void)util_strcpy(ifr.ifr_name, sizeof(ifr.ifr_name), p->ifname);
	ifr.ifr_mtu = (int)p->mtu;
	if ((rc = uesp_dev_ioctl(s, SIOCSIFMTU, &ifr, "set MTU")) < 0)
		goto close_s;
	if ((rc = uesp_dev_addr_add(p->ifname, &p->inner_local, plen)) < 0)
		goto close_s;
	if (p->inner_local6.family == AF_INET6 &&
	    (rc = uesp_dev_no_ll(p->ifname)) < 0)
		goto close_s;
	if ((rc = uesp_dev_ioctl(s, SIOCGIFFLAGS, &ifr, "get flags")) < 0)
		goto close_s;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if ((rc = uesp_dev_ioctl(s, SIOCSIFFLAGS, &ifr, "set up")) < 0)
		goto close_s;
	if ((rc = uesp_dev_addr6(p->ifname, &p->inner_local6, true)) < 0)
		goto close_s;
	close(s);
	return fd;
close_s:
	close(s);
close_fd:
	close(fd);
	return rc;
}

static socklen_t
uesp_dev_sockaddr(const struct overlay_addr *a, sa_family_t family,
    uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		if (a != NULL && a->family == AF_INET)
			memcpy(&sin->sin_addr, a->bytes, 4);
		return sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (a != NULL && a->family == AF_INET6)
			memcpy(&sin6->sin6_addr, a->bytes, 16);
		return sizeof(*sin6);
	}
}

static void
uesp_dev_getsrc(int fd, sa_family_t family, struct overlay_addr *src)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(src, 0, sizeof(*src));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	src->family = family;
	if (family == AF_INET)
		memcpy(src->bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else
		memcpy(src->bytes, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
}

int
uesp_dev_tx_opts(int fd, bool df, bool want_csum)
{
	int domain, one = 1, pmtu = df ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT, err;
	socklen_t sl = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &sl) < 0) {
		err = errno;
		log_warn("uesp: UDP socket domain");
		return -err;
	}
	if (domain != AF_INET)
		return 0;
	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu,
	    sizeof(pmtu)) < 0 || (!want_csum &&
	    setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)) < 0)) {
		err = errno;
		log_warn("uesp: UDP socket DF/checksum options");
		return -err;
	}
	return want_csum ? 0 : 1;
}

bool
uesp_dev_udp_gro(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
}

int
uesp_dev_reconnect(int fd, const struct overlay_addr *remote, uint16_t rport,
    struct overlay_addr *src)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int err;

	sl = uesp_dev_sockaddr(remote, remote->family, rport, &ss);
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		err = errno;
		log_warn("uesp: connect UDP socket to peer");
		return -err;
	}
	uesp_dev_getsrc(fd, remote->family, src);
	return 0;
}

int
uesp_dev_socket(const struct overlay_addr *local, uint16_t port,
    const struct overlay_addr *remote, uint16_t rport,
    struct overlay_addr *src)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	sa_family_t family;
	int fd, one = 1, buf = UESP_DEV_SOCKBUF, err;

	family = remote != NULL && remote->family != AF_UNSPEC ?
	    remote->family : local != NULL && local->family != AF_UNSPEC ?
	    local->family : AF_INET;
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0) {
		err = errno;
		log_warn("uesp: UDP socket");
		return -err;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
	    &one, sizeof(one)) < 0)) {
		err = errno;
		log_warn("uesp: UDP socket options");
		close(fd);
		return -err;
	}
	/* Bigger buffers absorb bursts between two batches; the kernel caps
	 * them at net.core.[rw]mem_max, which is fine. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	sl = uesp_dev_sockaddr(local, family, port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		err = errno;
		log_warn("uesp: bind UDP port %u", port);
		close(fd);
		return -err;
	}
	if (remote != NULL && remote->family != AF_UNSPEC) {
		if ((err = uesp_dev_reconnect(fd, remote, rport, src)) < 0) {
			close(fd);
			return err;
		}
	} else if (src != NULL) {
		uesp_dev_getsrc(fd, family, src);
	}
	return fd;
}
