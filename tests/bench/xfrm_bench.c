/*
 * xfrm_bench.c — SA installs per second through the xfrm backend:
 * N inbound and outbound SAs (default 1,000) added with sa_add on one
 * VXLAN tunnel, in a network namespace of its own.  Each add is one
 * acked XFRM_MSG_NEWSA, as the agent does it.  Needs a kernel with ESP
 * and rfc4106(gcm(aes)) (the kernel lab): on a kernel without, the first
 * add fails and the bench says so and exits 1 instead of reporting.
 * Usage: xfrm_bench [N]
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "overlay/overlay.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	void *ctx;
	unsigned i, n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000;
	double t0, t1, t2;
	int err;

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

	t0 = now();
	for (i = 0; i < n; i++) {
		memset(&sp, 0, sizeof(sp));
		sp.tunnel_id = 1;
		sp.dir = i % 2 == 0 ? OVERLAY_DIR_IN : OVERLAY_DIR_OUT;
		sp.spi = 0x10000 + i;
		sp.cipher = OVERLAY_AES_GCM_256;
		memcpy(sp.key, &i, sizeof(i));	/* distinct keys: nonce rule */
		sp.key[31] = 0xa5;
		sp.esn = true;
		sp.soft.seconds = 3000;
		sp.hard.seconds = 3600;
		if ((err = xfrm_ops.sa_add(ctx, &sp)) != 0) {
			fprintf(stderr, "xfrm_bench: sa_add %u failed (%s): this "
			    "kernel cannot hold ESP SAs; run the bench in the "
			    "kernel lab (tests/lab/)\n", i, strerror(-err));
			xfrm_ops.fini(ctx);
			return 1;
		}
	}
	t1 = now();
	xfrm_ops.fini(ctx);
	t2 = now();
	printf("xfrm_bench: %u SA installs in %.1f ms: %.0f SAs/s "
	    "(%.1f us each); removing them and the tunnel: %.1f ms\n",
	    n, (t1 - t0) * 1e3, n / (t1 - t0), (t1 - t0) * 1e6 / n,
	    (t2 - t1) * 1e3);
	return 0;
}
