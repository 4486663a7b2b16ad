/*
 * uesp_dev.c — TUN/TAP devices and UDP sockets for the uesp backend.
 * See uesp_dev.h.
 */
#include "overlay/uesp/uesp_dev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
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
 * The device's IPv4 address and prefix length in one RTM_NEWADDR.  With
 * ioctls (SIOCSIFADDR, then SIOCSIFNETMASK) the kernel first adds a /32,
 * deletes it and adds the /31: three events in ~100 us, and FRR 8.4's
 * zebra was seen to miss the last one now and then (the device then has
 * no address in zebra, and BGP over it never comes up).  Netlink gives
 * one event.  0 or -errno.
 */
static int
uesp_dev_addr4(const char *ifname, const uint8_t *addr, unsigned plen)
{
	struct {
		struct nlmsghdr n;
		struct ifaddrmsg ifa;
		char attrs[2 * RTA_SPACE(4)];
	} req;
	struct {
		struct nlmsghdr n;
		struct nlmsgerr e;
	} ack;
	struct sockaddr_nl sa;
	struct rtattr *rta;
	unsigned idx = if_nametoindex(ifname);
	ssize_t n;
	int fd, err;

	if (idx == 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifa));
	req.n.nlmsg_type = RTM_NEWADDR;
	req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE |
	    NLM_F_REPLACE;
	req.n.nlmsg_seq = 1;
	req.ifa.ifa_family = AF_INET;
	req.ifa.ifa_prefixlen = (unsigned char)plen;
	req.ifa.ifa_index = idx;
	for (int i = 0; i < 2; i++) {
		rta = (struct rtattr *)((char *)&req + NLMSG_ALIGN(
		    req.n.nlmsg_len));
		rta->rta_type = i == 0 ? IFA_LOCAL : IFA_ADDRESS;
		rta->rta_len = RTA_LENGTH(4);
		memcpy(RTA_DATA(rta), addr, 4);
		req.n.nlmsg_len = NLMSG_ALIGN(req.n.nlmsg_len) + RTA_SPACE(4);
	}
	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (sendto(fd, &req, req.n.nlmsg_len, 0, (struct sockaddr *)&sa,
	    sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	n = recv(fd, &ack, sizeof(ack), 0);
	err = n < 0 ? -errno : 0;
	close(fd);
	if (err == 0 && ((size_t)n < sizeof(ack) ||
	    ack.n.nlmsg_type != NLMSG_ERROR))
		err = -EIO;
	if (err == 0)
		err = ack.e.error;
	if (err != 0)
		log_warnx("uesp: %s: set address: %s", ifname, strerror(-err));
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
	if ((rc = uesp_dev_addr4(p->ifname, p->inner_local.bytes, plen)) < 0)
		goto close_s;
	if ((rc = uesp_dev_ioctl(s, SIOCGIFFLAGS, &ifr, "get flags")) < 0)
		goto close_s;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if ((rc = uesp_dev_ioctl(s, SIOCSIFFLAGS, &ifr, "set up")) < 0)
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
