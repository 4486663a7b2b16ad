/*
 * ct_flush.c — forget every conntrack entry of the current network
 * namespace (IPv4 and IPv6), as `conntrack -F` does, for the NAT tests:
 * a NAT box that loses its mappings mid-flow.  One ctnetlink
 * IPCTNL_MSG_CT_DELETE request without attributes per family; the kernel
 * answers with an ack.  Exit 0 on success, 1 with the reason on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

static int flush_family(int fd, unsigned char family, unsigned seq)
{
	struct {
		struct nlmsghdr nh;
		struct nfgenmsg nf;
	} req;
	char buf[4096];
	struct sockaddr_nl to = { .nl_family = AF_NETLINK };

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	req.nh.nlmsg_seq = seq;
	req.nf.nfgen_family = family;
	req.nf.version = NFNETLINK_V0;
	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&to,
	    sizeof(to)) < 0) {
		fprintf(stderr, "ct_flush: send: %s\n", strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nh = (struct nlmsghdr *)buf;

		if (n < 0) {
			fprintf(stderr, "ct_flush: recv: %s\n", strerror(errno));
			return -1;
		}
		for (; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_seq != seq || nh->nlmsg_type != NLMSG_ERROR)
				continue;
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			/* ENOENT: nothing to flush. */
			if (e->error == 0 || e->error == -ENOENT)
				return 0;
			fprintf(stderr, "ct_flush: family %u: %s\n", family,
			    strerror(-e->error));
			return -1;
		}
	}
}

int main(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	int rc;

	if (fd < 0) {
		fprintf(stderr, "ct_flush: socket: %s\n", strerror(errno));
		return 1;
	}
	rc = flush_family(fd, AF_INET, 1) == 0 &&
	    flush_family(fd, AF_INET6, 2) == 0 ? 0 : 1;
	close(fd);
	return rc;
}
