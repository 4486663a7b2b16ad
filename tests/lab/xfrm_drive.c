/*
 * xfrm_drive.c — drives one xfrm backend instance from lines on stdin,
 * for the lab scenarios (one per namespace).  Each command answers one
 * line on stdout: "ok ..." or "err ERRNO".  Keys and salts are derived
 * from the SPI, so the two sides agree without passing keys around
 * (test-only; the agent gets keys from the controller).
 *
 *   tunnel ID gre|vxlan LOCAL REMOTE[:PORT] INNER_LOCAL INNER_PEER IFNAME[,VNI]
 *   sa in|out TID SPI          add an SA (AES-GCM-256, ESN, window 1024)
 *   switch TID SPI             make outbound SPI the active one
 *   del in|out TID SPI         delete an SA
 *   life in|out TID SPI SOFT_PKTS   sa_update: new soft packet limit
 *   stats in|out TID SPI       ok packets=N seq=N auth=N replay=N soft=0|1
 *   tdel TID                   delete a tunnel
 *   moved TID                  the peer's NAT move as tunnel_stats reports
 *                              it: ok addr=ADDR|- port=N rx=N
 *   follow TID MS              wait up to MS ms for a move (moved_fd, and
 *                              tunnel_stats every 100 ms, as the agent
 *                              does), then tunnel_update to it:
 *                              ok addr=ADDR port=N rx=N waited_ms=N
 *   aeset DST SPI OSEQ         set a kernel SA's output sequence number
 *                              (XFRM_MSG_NEWAE), as if it had sent OSEQ
 *   quit                       fini and exit 0 (with XFRM_DRIVE_KEEP in the
 *                              environment: init's keep_at_fini, so fini
 *                              leaves the kernel objects for the next
 *                              instance, as the agent does at a stop)
 *   crash                      exit 0 without fini (objects stay)
 *
 * XFRM_DRIVE_SEQ in the environment names the sequence reservation file
 * (overlay_init_params.seq_file).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <arpa/inet.h>
#include <linux/xfrm.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/overlay.h"
#include "overlay/xfrm/xfrm_nl.h"

/* The SA's identity and replay state, read back by aeset. */
struct ae_state {
	struct xfrm_usersa_info info;
	unsigned char esn[XFRM_REPLAY_KERNEL_MAX / 8 + 64];
	int esnlen;
};

static int
ae_get_cb(struct nlmsghdr *nlh, void *arg)
{
	struct ae_state *st = arg;
	struct nlattr *tb[XFRMA_MAX + 1];

	if (nlh->nlmsg_type != XFRM_MSG_NEWSA ||
	    nlmsg_parse(nlh, sizeof(st->info), tb, XFRMA_MAX, NULL) < 0 ||
	    tb[XFRMA_REPLAY_ESN_VAL] == NULL ||
	    nla_len(tb[XFRMA_REPLAY_ESN_VAL]) > (int)sizeof(st->esn))
		return -EPROTO;
	memcpy(&st->info, nlmsg_data(nlh), sizeof(st->info));
	st->esnlen = nla_len(tb[XFRMA_REPLAY_ESN_VAL]);
	memcpy(st->esn, nla_data(tb[XFRMA_REPLAY_ESN_VAL]), st->esnlen);
	return 0;
}

/* Move an SA's oseq as if it had sent that many packets: 0 or -errno. */
static int
ae_set(const char *dst, uint32_t spi, uint64_t oseq)
{
	struct xfrm_usersa_id id;
	struct xfrm_aevent_id ae;
	struct xfrm_replay_state_esn *e;
	struct overlay_addr a;
	struct ae_state st;
	struct nl_sock *sk;
	struct nl_msg *msg;
	int err;

	if (overlay_addr_parse(dst, &a) < 0)
		return -EINVAL;
	if ((sk = xfrm_nl_open(NETLINK_XFRM)) == NULL)
		return -ENOMEM;
	memset(&id, 0, sizeof(id));
	memcpy(&id.daddr, a.bytes, a.family == AF_INET ? 4 : 16);
	id.spi = htonl(spi);
	id.family = a.family;
	id.proto = IPPROTO_ESP;
	memset(&st, 0, sizeof(st));
	err = -ENOMEM;
	if ((msg = nlmsg_alloc_simple(XFRM_MSG_GETSA, NLM_F_REQUEST)) == NULL ||
	    nlmsg_append(msg, &id, sizeof(id), NLMSG_ALIGNTO) < 0)
		goto out;
	err = xfrm_nl_talk(sk, msg, ae_get_cb, &st, NULL, 0);
	msg = NULL;		/* consumed */
	if (err == 0 && st.esnlen < (int)sizeof(*e))
		err = -EPROTO;
	if (err < 0)
		goto out;
	e = (struct xfrm_replay_state_esn *)st.esn;
	e->oseq = (uint32_t)oseq;
	e->oseq_hi = (uint32_t)(oseq >> 32);
	memset(&ae, 0, sizeof(ae));
	ae.sa_id = id;
	ae.saddr = st.info.saddr;
	ae.reqid = st.info.reqid;
	err = -ENOMEM;
	if ((msg = nlmsg_alloc_simple(XFRM_MSG_NEWAE, NLM_F_REQUEST |
	    NLM_F_REPLACE)) == NULL ||
	    nlmsg_append(msg, &ae, sizeof(ae), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, XFRMA_REPLAY_ESN_VAL, st.esnlen, st.esn) < 0)
		goto out;
	err = xfrm_nl_talk(sk, msg, NULL, NULL, NULL, 0);
	msg = NULL;
out:
	if (msg != NULL)
		nlmsg_free(msg);
	nl_socket_free(sk);
	return err;
}

/* The tunnels' parameters, for tunnel_update (follow). */
#define DRIVE_TUNNELS 16
static struct overlay_tunnel_params tunnels[DRIVE_TUNNELS];

static struct overlay_tunnel_params *
tunnel_get(uint64_t id)
{
	unsigned i;

	for (i = 0; i < DRIVE_TUNNELS; i++)
		if (tunnels[i].id == id)
			return &tunnels[i];
	return NULL;
}

static void
tunnel_keep(const struct overlay_tunnel_params *p)
{
	struct overlay_tunnel_params *t = tunnel_get(p->id);

	if (t == NULL)
		t = tunnel_get(0);
	if (t != NULL)
		*t = *p;
}

static void
moved_print(const struct overlay_tunnel_stats *ts, long waited)
{
	char a[INET6_ADDRSTRLEN] = "-";

	if (ts->moved_addr.family != AF_UNSPEC)
		overlay_addr_str(&ts->moved_addr, a, sizeof(a));
	printf("ok addr=%s port=%u rx=%llu", a, (unsigned)ts->moved_port,
	    (unsigned long long)ts->moved_rx);
	if (waited >= 0)
		printf(" waited_ms=%ld", waited);
	printf("\n");
}

/* follow: wait for a move of tunnel tid and follow it; 0 or -errno. */
static int
follow(void *ctx, uint64_t tid, long ms)
{
	struct overlay_tunnel_params *t = tunnel_get(tid), p;
	struct overlay_tunnel_stats ts;
	uint64_t t0 = util_mono_ms(), v;
	struct pollfd pf;
	int err;

	if (t == NULL || tid == 0)
		return -ENOENT;
	if (xfrm_ops.moved_fd == NULL || (pf.fd = xfrm_ops.moved_fd(ctx)) < 0)
		return -EOPNOTSUPP;
	pf.events = POLLIN;
	for (;;) {
		if ((err = xfrm_ops.tunnel_stats(ctx, tid, &ts)) < 0)
			return err;
		if (ts.moved_port != 0)
			break;
		if ((long)(util_mono_ms() - t0) >= ms)
			return -ETIMEDOUT;
		if (poll(&pf, 1, 100) > 0 && read(pf.fd, &v, sizeof(v)) < 0 &&
		    errno != EAGAIN)
			return -errno;
	}
	p = *t;
	p.remote = ts.moved_addr;
	p.remote_port = ts.moved_port;
	if ((err = xfrm_ops.tunnel_update(ctx, &p)) < 0)
		return err;
	*t = p;
	moved_print(&ts, (long)(util_mono_ms() - t0));
	return 0;
}

static void
sa_fill(struct overlay_sa_params *p, const char *dir, unsigned long long tid,
    unsigned long spi)
{
	unsigned i;

	memset(p, 0, sizeof(*p));
	p->tunnel_id = tid;
	p->dir = strcmp(dir, "out") == 0 ? OVERLAY_DIR_OUT : OVERLAY_DIR_IN;
	p->spi = (uint32_t)spi;
	p->cipher = OVERLAY_AES_GCM_256;
	for (i = 0; i < sizeof(p->key); i++)
		p->key[i] = (uint8_t)(spi * 7 + i);
	for (i = 0; i < sizeof(p->salt); i++)
		p->salt[i] = (uint8_t)(spi >> (8 * i));
	p->esn = true;
	p->replay_window = 1024;
}

int
main(void)
{
	struct overlay_init_params ip;
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	struct overlay_sa_stats ss;
	struct overlay_tunnel_stats ts;
	char line[512], a[8][64];
	unsigned long long tid;
	unsigned long spi, soft;
	void *ctx;
	int err, n;

	log_init("xfrm_drive", true);
	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&ip, 0, sizeof(ip));
	ip.keep_at_fini = getenv("XFRM_DRIVE_KEEP") != NULL;
	ip.seq_file = getenv("XFRM_DRIVE_SEQ");
	if ((err = xfrm_ops.init(&ip, &ctx)) != 0) {
		printf("err %d init\n", err);
		return 1;
	}
	printf("ok ready\n");
	while (fgets(line, sizeof(line), stdin) != NULL) {
		n = sscanf(line, "%63s %63s %63s %63s %63s %63s %63s %63s",
		    a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
		err = -EINVAL;
		if (n >= 7 && strcmp(a[0], "tunnel") == 0) {
			memset(&tp, 0, sizeof(tp));
			tp.id = strtoull(a[1], NULL, 10);
			tp.encap = strcmp(a[2], "gre") == 0 ?
			    OVERLAY_ENCAP_GRE : OVERLAY_ENCAP_VXLAN;
			char *port = strchr(a[4], ':');

			if (port != NULL && strchr(port + 1, ':') == NULL) {
				*port++ = '\0';
				tp.remote_port = (uint16_t)strtoul(port, NULL,
				    10);
			}
			if (overlay_addr_parse(a[3], &tp.local) == 0 &&
			    overlay_addr_parse(a[4], &tp.remote) == 0 &&
			    overlay_addr_parse(a[5], &tp.inner_local) == 0 &&
			    overlay_addr_parse(a[6], &tp.inner_peer) == 0 &&
			    n == 8) {
				char *sp2 = strchr(a[7], ',');

				if (sp2 != NULL)
					*sp2++ = '\0';
				snprintf(tp.ifname, sizeof(tp.ifname), "%.*s",
				    IFNAMSIZ - 1, a[7]);
				tp.vni = sp2 != NULL ? (uint32_t)strtoul(sp2, NULL, 10) : 0;
				tp.mtu = 1400;
				err = xfrm_ops.tunnel_add(ctx, &tp);
				if (err == 0)
					tunnel_keep(&tp);
			}
		} else if (n == 4 && strcmp(a[0], "sa") == 0) {
			sa_fill(&sp, a[1], strtoull(a[2], NULL, 10),
			    strtoul(a[3], NULL, 0));
			err = xfrm_ops.sa_add(ctx, &sp);
		} else if (n == 3 && strcmp(a[0], "switch") == 0) {
			err = xfrm_ops.sa_switch_out(ctx,
			    strtoull(a[1], NULL, 10), strtoul(a[2], NULL, 0));
		} else if (n == 4 && strcmp(a[0], "del") == 0) {
			sa_fill(&sp, a[1], 0, 0);
			err = xfrm_ops.sa_del(ctx, strtoull(a[2], NULL, 10),
			    strtoul(a[3], NULL, 0), sp.dir);
		} else if (n == 5 && strcmp(a[0], "life") == 0) {
			tid = strtoull(a[2], NULL, 10);
			spi = strtoul(a[3], NULL, 0);
			soft = strtoul(a[4], NULL, 10);
			sa_fill(&sp, a[1], tid, spi);
			sp.soft.packets = soft;
			err = xfrm_ops.sa_update(ctx, &sp);
		} else if (n == 4 && strcmp(a[0], "stats") == 0) {
			sa_fill(&sp, a[1], 0, 0);
			err = xfrm_ops.sa_stats(ctx, strtoull(a[2], NULL, 10),
			    (uint32_t)strtoul(a[3], NULL, 0), sp.dir, &ss);
			if (err == 0) {
				printf("ok packets=%llu seq=%llu auth=%llu "
				    "replay=%llu soft=%d hard=%d active=%d\n",
				    (unsigned long long)ss.packets,
				    (unsigned long long)ss.seq,
				    (unsigned long long)ss.auth,
				    (unsigned long long)ss.replay,
				    ss.soft_expired, ss.hard_expired,
				    ss.active);
				explicit_bzero(&sp, sizeof(sp));
				continue;
			}
		} else if (n == 4 && strcmp(a[0], "aeset") == 0) {
			err = ae_set(a[1], (uint32_t)strtoul(a[2], NULL, 0),
			    strtoull(a[3], NULL, 0));
		} else if (n == 2 && strcmp(a[0], "moved") == 0) {
			err = xfrm_ops.tunnel_stats(ctx,
			    strtoull(a[1], NULL, 10), &ts);
			if (err == 0) {
				moved_print(&ts, -1);
				continue;
			}
		} else if (n == 3 && strcmp(a[0], "follow") == 0) {
			err = follow(ctx, strtoull(a[1], NULL, 10),
			    strtol(a[2], NULL, 10));
			if (err == 0)
				continue;
		} else if (n == 2 && strcmp(a[0], "tdel") == 0) {
			err = xfrm_ops.tunnel_del(ctx, strtoull(a[1], NULL, 10));
		} else if (n == 1 && strcmp(a[0], "quit") == 0) {
			xfrm_ops.fini(ctx);
			printf("ok bye\n");
			return 0;
		} else if (n == 1 && strcmp(a[0], "crash") == 0) {
			printf("ok crash\n");
			_exit(0);
		}
		explicit_bzero(&sp, sizeof(sp));
		if (err == 0)
			printf("ok\n");
		else
			printf("err %d\n", err);
	}
	xfrm_ops.fini(ctx);
	return 0;
}
