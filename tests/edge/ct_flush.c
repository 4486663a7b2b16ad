/*
 * ct_flush.c — forget every conntrack entry of the current network
 * namespace (IPv4 and IPv6), as `conntrack -F` does, for the NAT tests:
 * a NAT box that loses its mappings mid-flow.  One ctnetlink
 * IPCTNL_MSG_CT_DELETE request without attributes per family, built and
 * acknowledged through libnl's message API (no conntrack tool here).
 * Exit 0 on success, 1 with the reason on stderr.
 */
#include <stdio.h>
#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

static int
flush_family(struct nl_sock *sk, unsigned char family)
{
	struct nfgenmsg nf = { .nfgen_family = family,
	    .version = NFNETLINK_V0 };
	struct nl_msg *m;
	int err;

	m = nlmsg_alloc_simple((NFNL_SUBSYS_CTNETLINK << 8) |
	    IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK);
	if (m == NULL) {
		fprintf(stderr, "ct_flush: out of memory\n");
		return -1;
	}
	if ((err = nlmsg_append(m, &nf, sizeof(nf), NLMSG_ALIGNTO)) < 0 ||
	    (err = nl_send_auto(sk, m)) < 0 ||
	    (err = nl_wait_for_ack(sk)) < 0) {
		nlmsg_free(m);
		/* Nothing to flush is fine. */
		if (err == -NLE_OBJ_NOTFOUND)
			return 0;
		fprintf(stderr, "ct_flush: family %u: %s\n", family,
		    nl_geterror(err));
		return -1;
	}
	nlmsg_free(m);
	return 0;
}

int
main(void)
{
	struct nl_sock *sk = nl_socket_alloc();
	int rc;

	if (sk == NULL || nl_connect(sk, NETLINK_NETFILTER) < 0) {
		fprintf(stderr, "ct_flush: cannot open a netfilter socket\n");
		nl_socket_free(sk);
		return 1;
	}
	rc = flush_family(sk, AF_INET) == 0 &&
	    flush_family(sk, AF_INET6) == 0 ? 0 : 1;
	nl_socket_free(sk);
	return rc;
}
