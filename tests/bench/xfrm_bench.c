/*
 * xfrm_bench.c — SA installs per second through the xfrm backend:
 * N inbound and outbound SAs (default 1,000) added with sa_add on one
 * VXLAN tunnel, in a network namespace of its own.  Each add is one
 * acked XFRM_MSG_NEWSA, as the agent does it.  Needs a kernel with ESP
 * and rfc4106(gcm(aes)) (the kernel lab): on a kernel without, the first
 * add fails and the bench says so and exits 1 instead of reporting.
 *
 * -b adds them with one sa_add_batch call instead (the backend sends up
 * to 64 per sendmsg and matches the acks by sequence number).
 *
 * Then it deletes them the same way: one sa_del per SA, or with -b one
 * sa_del_batch of all of them, and prints that rate on a line of its
 * own ("SA deletes").
 *
 * -r B measures references instead: the very same N XFRM_MSG_NEWSA
 * messages (built by xfrm_nl_sa_msg) sent on a plain netlink socket, B to
 * a sendmsg (1..64), each acked, the acks read after each send.  B = 64 is
 * the kernel's own floor (no backend bookkeeping, no round trip per SA);
 * B = 1 is one round trip per SA without the backend, so the backend's
 * own cost is the difference.  The N XFRM_MSG_DELSA that remove them
 * follow the same way (B per send).  tests/bench/xfrm_bench.sh runs these, the
 * backend and `ip -batch` in the lab.
 *
 * Usage: xfrm_bench [-b | -r B] [N]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <netlink/msg.h>

#include "lib/log.h"
#include "overlay/overlay.h"
#include "overlay/xfrm/xfrm_nl.h"

#define RAW_BATCH 64u

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SA i of the run: alternately inbound and outbound, distinct keys. */
static void
bench_sa(unsigned i, struct overlay_sa_params *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->tunnel_id = 1;
	sp->dir = i % 2 == 0 ? OVERLAY_DIR_IN : OVERLAY_DIR_OUT;
	sp->spi = 0x10000 + i;
	sp->cipher = OVERLAY_AES_GCM_256;
	memcpy(sp->key, &i, sizeof(i));	/* distinct keys: nonce rule */
	sp->key[31] = 0xa5;
	sp->esn = true;
	sp->soft.seconds = 3000;
	sp->hard.seconds = 3600;
}

/* Read acks until `want` of them arrived; 0, or the first error. */
static int
raw_acks(int fd, unsigned want)
{
	static char buf[1 << 16];
	struct nlmsghdr *nlh;
	int n, err = 0;

	while (want > 0) {
		if ((n = (int)recv(fd, buf, sizeof(buf), 0)) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, n);
		    nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			want--;
			if (err == 0)
				err = ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
		}
	}
	return err;
}

/* Send queued requests and read their acks: 0 or the first error. */
static int
raw_flush(int fd, char *buf, size_t *off, unsigned *queued)
{
	int err;

	if (send(fd, buf, *off, 0) < 0)
		err = -errno;
	else
		err = raw_acks(fd, *queued);
	explicit_bzero(buf, *off);
	*off = 0;
	*queued = 0;
	return err;
}

/* The reference for deletes: N DELSA of raw_run's SAs, B per sendmsg. */
static int
raw_del(int fd, unsigned n, unsigned batch)
{
	static char buf[RAW_BATCH * 256];
	struct overlay_sa_params sp;
	struct overlay_addr dst;
	struct xfrm_usersa_id *id;
	struct nlmsghdr *h;
	size_t off = 0;
	unsigned i, queued = 0;
	int err = 0;

	for (i = 0; i < n && err == 0; i++) {
		bench_sa(i, &sp);
		overlay_addr_parse(sp.dir == OVERLAY_DIR_OUT ? "198.51.100.1" :
		    "192.0.2.1", &dst);
		h = (struct nlmsghdr *)(buf + off);
		memset(h, 0, NLMSG_SPACE(sizeof(*id)));
		h->nlmsg_len = NLMSG_LENGTH(sizeof(*id));
		h->nlmsg_type = XFRM_MSG_DELSA;
		h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		h->nlmsg_seq = n + i + 1;
		id = NLMSG_DATA(h);
		memcpy(&id->daddr, dst.bytes, 4);
		id->spi = htonl(sp.spi);
		id->family = AF_INET;
		id->proto = IPPROTO_ESP;
		off += NLMSG_SPACE(sizeof(*id));
		explicit_bzero(&sp, sizeof(sp));
		if (++queued == batch || i + 1 == n)
			err = raw_flush(fd, buf, &off, &queued);
	}
	return err;
}

/*
 * The reference: N NEWSA, B per sendmsg, acks read per batch; then, timed
 * apart (*del_s), N DELSA the same way.
 */
static int
raw_run(unsigned n, unsigned batch, double *del_s)
{
	static char buf[RAW_BATCH * 1024];
	struct overlay_sa_params sp;
	struct xfrm_sa_place pl;
	struct nl_msg *msg;
	struct nlmsghdr *h;
	size_t off = 0;
	unsigned i, queued = 0;
	int fd, one = 1, err = 0;

	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
	    NETLINK_XFRM)) < 0)
		return -errno;
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	memset(&pl, 0, sizeof(pl));
	for (i = 0; i < n && err == 0; i++) {
		bench_sa(i, &sp);
		if (sp.dir == OVERLAY_DIR_OUT) {
			overlay_addr_parse("192.0.2.1", &pl.src);
			overlay_addr_parse("198.51.100.1", &pl.dst);
		} else {
			overlay_addr_parse("198.51.100.1", &pl.src);
			overlay_addr_parse("192.0.2.1", &pl.dst);
		}
		pl.sport = pl.dport = OVERLAY_UDP_PORT;
		pl.reqid = XFRM_REQID_BASE | (i + 1);
		if ((err = xfrm_nl_sa_msg(XFRM_MSG_NEWSA, &sp, &pl, &msg)) < 0)
			break;
		h = nlmsg_hdr(msg);
		h->nlmsg_seq = i + 1;
		if (off + NLMSG_ALIGN(h->nlmsg_len) > sizeof(buf)) {
			xfrm_nl_free(msg);
			err = -EMSGSIZE;
			break;
		}
		memcpy(buf + off, h, h->nlmsg_len);
		off += NLMSG_ALIGN(h->nlmsg_len);
		xfrm_nl_free(msg);
		if (++queued == batch || i + 1 == n)
			err = raw_flush(fd, buf, &off, &queued);
	}
	if (err == 0) {
		double t0 = now();

		err = raw_del(fd, n, batch);
		*del_s = now() - t0;
	}
	close(fd);
	return err;
}

int
main(int argc, char **argv)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	void *ctx;
	struct overlay_sa_params *all = NULL;
	int *res = NULL;
	bool raw = argc > 2 && strcmp(argv[1], "-r") == 0;
	bool use_batch = argc > 1 && strcmp(argv[1], "-b") == 0;
	unsigned i, n, batch = 0;
	struct overlay_sa_ref *refs = NULL;
	double t0, t1, t2, t3, del_s = 0;
	int err;

	if (raw) {
		batch = (unsigned)strtoul(argv[2], NULL, 10);
		if (batch == 0 || batch > RAW_BATCH) {
			fprintf(stderr, "xfrm_bench: -r takes 1..%u\n", RAW_BATCH);
			return 2;
		}
		argc -= 2;
		argv += 2;
	} else if (use_batch) {
		argc--;
		argv++;
	}
	n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
	log_init("xfrm_bench", true);
	if (n == 0 || n > 60000) {
		fprintf(stderr, "xfrm_bench: N must be 1..60000\n");
		return 2;
	}
	if (unshare(CLONE_NEWNET) != 0 ||
	    system("ip link set lo up && ip addr add 192.0.2.1/32 dev lo") != 0) {
		fprintf(stderr, "xfrm_bench: own network namespace: %s\n",
		    strerror(errno));
		return 1;
	}
	if (raw) {
		t0 = now();
		err = raw_run(n, batch, &del_s);
		t1 = now() - del_s;
		if (err != 0) {
			fprintf(stderr, "xfrm_bench: raw NEWSA/DELSA failed (%s)\n",
			    strerror(-err));
			return 1;
		}
		printf("xfrm_bench: raw netlink, %u per send: %u SA installs "
		    "in %.1f ms: %.0f SAs/s (%.1f us each)\n", batch, n,
		    (t1 - t0) * 1e3, n / (t1 - t0), (t1 - t0) * 1e6 / n);
		printf("xfrm_bench: raw netlink, %u per send: %u SA deletes "
		    "in %.1f ms: %.0f SAs/s (%.1f us each)\n", batch, n,
		    del_s * 1e3, n / del_s, del_s * 1e6 / n);
		return 0;
	}
	memset(&ip, 0, sizeof(ip));
	if ((err = xfrm_ops.init(&ip, &ctx)) != 0) {
		fprintf(stderr, "xfrm_bench: init: %s\n", strerror(-err));
		return 1;
	}
	memset(&tp, 0, sizeof(tp));
	tp.id = 1;
	overlay_addr_parse("192.0.2.1", &tp.local);
	overlay_addr_parse("198.51.100.1", &tp.remote);
	overlay_addr_parse("10.255.0.0", &tp.inner_local);
	overlay_addr_parse("10.255.0.1", &tp.inner_peer);
	tp.encap = OVERLAY_ENCAP_VXLAN;
	tp.vni = 1;
	tp.mtu = 1400;
	snprintf(tp.ifname, sizeof(tp.ifname), "mwbench");
	if ((err = xfrm_ops.tunnel_add(ctx, &tp)) != 0) {
		fprintf(stderr, "xfrm_bench: tunnel_add: %s\n", strerror(-err));
		return 1;
	}

	if (use_batch && ((all = calloc(n, sizeof(*all))) == NULL ||
	    (res = calloc(n, sizeof(*res))) == NULL)) {
		fprintf(stderr, "xfrm_bench: out of memory\n");
		free(all);
		return 1;
	}
	for (i = 0; use_batch && i < n; i++)
		bench_sa(i, &all[i]);
	t0 = now();
	if (use_batch && overlay_sa_add_batch(&xfrm_ops, ctx, all, n, res) != 0) {
		for (i = 0; i < n && res[i] == 0; i++)
			;
		fprintf(stderr, "xfrm_bench: sa_add_batch: SA %u failed (%s): "
		    "this kernel cannot hold ESP SAs; run the bench in the "
		    "kernel lab (tests/lab/)\n", i, strerror(-res[i]));
		xfrm_ops.fini(ctx);
		explicit_bzero(all, n * sizeof(*all));
		free(all);
		free(res);
		return 1;
	}
	for (i = 0; !use_batch && i < n; i++) {
		bench_sa(i, &sp);
		if ((err = xfrm_ops.sa_add(ctx, &sp)) != 0) {
			fprintf(stderr, "xfrm_bench: sa_add %u failed (%s): this "
			    "kernel cannot hold ESP SAs; run the bench in the "
			    "kernel lab (tests/lab/)\n", i, strerror(-err));
			xfrm_ops.fini(ctx);
			return 1;
		}
	}
	t1 = now();
	if (use_batch && (refs = calloc(n, sizeof(*refs))) == NULL) {
		fprintf(stderr, "xfrm_bench: out of memory\n");
		xfrm_ops.fini(ctx);
		free(all);
		free(res);
		return 1;
	}
	for (i = 0; i < n; i++) {
		bench_sa(i, &sp);
		if (use_batch) {
			refs[i].tunnel_id = 1;
			refs[i].spi = sp.spi;
			refs[i].dir = sp.dir;
		} else if ((err = xfrm_ops.sa_del(ctx, 1, sp.spi,
		    sp.dir)) != 0) {
			fprintf(stderr, "xfrm_bench: sa_del %u: %s\n", i,
			    strerror(-err));
			xfrm_ops.fini(ctx);
			return 1;
		}
	}
	explicit_bzero(&sp, sizeof(sp));
	if (use_batch && overlay_sa_del_batch(&xfrm_ops, ctx, refs, n,
	    res) != 0) {
		fprintf(stderr, "xfrm_bench: sa_del_batch failed\n");
		xfrm_ops.fini(ctx);
		return 1;
	}
	t2 = now();
	xfrm_ops.fini(ctx);
	t3 = now();
	if (all != NULL)
		explicit_bzero(all, n * sizeof(*all));
	free(all);
	free(res);
	free(refs);
	printf("xfrm_bench: %s: %u SA installs in %.1f ms: %.0f SAs/s "
	    "(%.1f us each)\n", use_batch ? "sa_add_batch" : "sa_add", n,
	    (t1 - t0) * 1e3, n / (t1 - t0), (t1 - t0) * 1e6 / n);
	printf("xfrm_bench: %s: %u SA deletes in %.1f ms: %.0f SAs/s "
	    "(%.1f us each); removing the tunnel: %.1f ms\n",
	    use_batch ? "sa_del_batch" : "sa_del", n, (t2 - t1) * 1e3,
	    n / (t2 - t1), (t2 - t1) * 1e6 / n, (t3 - t2) * 1e3);
	return 0;
}
