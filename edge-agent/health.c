/*
 * health.c — the agent's own probes inside each tunnel (ICMP echo over the
 * /31), the RTT/loss/jitter arithmetic, and the one "up" of a tunnel.
 *
 * Why ICMP echo and one raw socket: the far end's kernel answers, so a
 * peer needs nothing of ours and an old agent there still gets measured;
 * the same code serves the uesp and the kernel (xfrm) data paths, since
 * both give the tunnel a device with the /31 on it.  Each probe leaves on
 * the tunnel's device from its local address (IP_PKTINFO), so routing
 * changes (failover to the other tunnel) never carry it elsewhere.
 *
 * Receive times come from the kernel (SO_TIMESTAMPNS): a loop busy with a
 * vtysh call does not inflate the RTT.  The kernel stamp is wall clock;
 * only its distance to "now" is used, on the monotonic clock, so a clock
 * step cannot turn into a bogus RTT.
 *
 * See health.h for the numbers, the rule for "up" and the bounds.
 */
#include "edge-agent/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <linux/icmp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

enum {
	HEALTH_SLOT_EMPTY = 0,
	HEALTH_SLOT_WAITING,
	HEALTH_SLOT_ANSWERED,
	HEALTH_SLOT_LOST,
};

static const uint8_t health_magic[4] = { 'M', 'W', 'H', '1' };

/* ------------------------------------------------------------------ */
/* The arithmetic                                                      */

static void
health_track_lost(struct health_track *t, struct health_slot *s)
{
	s->state = HEALTH_SLOT_LOST;
	t->lost_in_row++;
}

void
health_track_sent(struct health_track *t, uint16_t seq, uint32_t nonce,
    uint64_t now_us)
{
	struct health_slot *s = &t->slot[seq % HEALTH_WINDOW];

	if (s->state == HEALTH_SLOT_WAITING)
		health_track_lost(t, s);
	memset(s, 0, sizeof(*s));
	s->sent_us = now_us;
	s->seq = seq;
	s->nonce = nonce;
	s->state = HEALTH_SLOT_WAITING;
}

int
health_track_reply(struct health_track *t, uint16_t seq, uint32_t nonce,
    uint64_t at_us)
{
	struct health_slot *s = &t->slot[seq % HEALTH_WINDOW];
	uint64_t rtt;

	if (s->state != HEALTH_SLOT_WAITING || s->seq != seq ||
	    s->nonce != nonce)
		return -1;
	/* Kernel stamps can be a little before our own send time stamp. */
	rtt = at_us > s->sent_us ? at_us - s->sent_us : 1;
	if (rtt > UINT32_MAX)
		rtt = UINT32_MAX;
	s->rtt_us = (uint32_t)rtt;
	s->state = HEALTH_SLOT_ANSWERED;
	/* RFC 3550 A.8, the RTT in place of the transit time. */
	if (t->have_last) {
		uint32_t d = s->rtt_us > t->last_rtt_us ?
		    s->rtt_us - t->last_rtt_us : t->last_rtt_us - s->rtt_us;
		int64_t j = (int64_t)t->jitter16 + d -
		    (((int64_t)t->jitter16 + 8) >> 4);

		t->jitter16 = j < 0 ? 0 : j > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)j;
	}
	t->last_rtt_us = s->rtt_us;
	t->have_last = true;
	t->lost_in_row = 0;
	t->ever_answered = true;
	return 0;
}

void
health_track_expire(struct health_track *t, uint64_t now_us,
    uint64_t timeout_us)
{
	/* Oldest first, so lost_in_row counts in sending order. */
	struct health_slot *w[HEALTH_WINDOW];
	size_t n = 0;

	for (size_t i = 0; i < HEALTH_WINDOW; i++)
		if (t->slot[i].state == HEALTH_SLOT_WAITING &&
		    now_us >= t->slot[i].sent_us &&
		    now_us - t->slot[i].sent_us >= timeout_us)
			w[n++] = &t->slot[i];
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && w[k - 1]->sent_us > w[k]->sent_us;
		     k--) {
			struct health_slot *x = w[k];

			w[k] = w[k - 1];
			w[k - 1] = x;
		}
	for (size_t i = 0; i < n; i++)
		health_track_lost(t, w[i]);
}

void
health_track_result(const struct health_track *t, struct health_result *r)
{
	uint64_t sum = 0;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < HEALTH_WINDOW; i++) {
		switch (t->slot[i].state) {
		case HEALTH_SLOT_ANSWERED:
			r->answered++;
			sum += t->slot[i].rtt_us;
			break;
		case HEALTH_SLOT_LOST:
			r->lost++;
			break;
		case HEALTH_SLOT_WAITING:
			r->waiting++;
			break;
		default:
			break;
		}
	}
	if (r->answered > 0)
		r->rtt_us = (uint32_t)(sum / r->answered);
	if (r->answered + r->lost > 0)
		r->loss_permille = (uint32_t)((r->lost * 1000u +
		    (r->answered + r->lost) / 2) / (r->answered + r->lost));
	r->jitter_us = t->jitter16 >> 4;
	if (!t->ever_answered)
		r->probe = HEALTH_PROBE_UNKNOWN;
	else if (t->lost_in_row >= HEALTH_DOWN_AFTER)
		r->probe = HEALTH_PROBE_DOWN;
	else
		r->probe = HEALTH_PROBE_UP;
}

bool
health_up(bool sa_up, enum health_bfd bfd, const struct health_result *r)
{
	if (!sa_up || bfd == HEALTH_BFD_DOWN)
		return false;
	return r == NULL || r->probe != HEALTH_PROBE_DOWN;
}

int
health_parse_reply(const uint8_t *pkt, size_t len, struct health_reply *out)
{
	size_t ihl, tot;
	const uint8_t *icmp;

	memset(out, 0, sizeof(*out));
	if (len < 20 || (pkt[0] >> 4) != 4)
		return -1;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	tot = (size_t)pkt[2] << 8 | pkt[3];
	/* Raw sockets hand over whole datagrams: no fragments here. */
	if (ihl < 20 || tot < ihl + 8 || tot > len || pkt[9] != IPPROTO_ICMP ||
	    (((size_t)pkt[6] << 8 | pkt[7]) & 0x3fff) != 0)
		return -1;
	icmp = pkt + ihl;
	if (icmp[0] != ICMP_ECHOREPLY || icmp[1] != 0)
		return -1;
	memcpy(&out->src, pkt + 12, 4);
	out->ident = (uint16_t)(icmp[4] << 8 | icmp[5]);
	out->seq = (uint16_t)(icmp[6] << 8 | icmp[7]);
	out->payload = icmp + 8;
	out->payload_len = tot - ihl - 8;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The prober                                                          */

struct health_entry {
	struct health_tunnel cfg;
	struct health_track track;
	struct health_result last;	/* as of the last health_run */
	uint64_t next_ms;		/* next probe */
	unsigned ifindex;		/* 0: look it up before sending */
	uint16_t seq;
	bool send_failed_logged;
};

struct health {
	int fd;
	uint16_t ident;
	struct health_entry *t;		/* sorted by tunnel_id */
	size_t n;
	bool full_logged;
};

static uint64_t
health_now_us(void)
{
	return util_mono_ns() / 1000;
}

struct health *
health_new(void)
{
	struct health *h = calloc(1, sizeof(*h));
	struct icmp_filter filt;
	int on = 1;

	if (h == NULL)
		return NULL;
	h->fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    IPPROTO_ICMP);
	if (h->fd == -1) {
		log_warn("health: ICMP socket (tunnel probes off)");
		free(h);
		return NULL;
	}
	/* Only echo replies reach us. */
	filt.data = ~(1u << ICMP_ECHOREPLY);
	if (setsockopt(h->fd, SOL_RAW, ICMP_FILTER, &filt,
	    sizeof(filt)) == -1 ||
	    setsockopt(h->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on,
	    sizeof(on)) == -1) {
		log_warn("health: ICMP socket options (tunnel probes off)");
		close(h->fd);
		free(h);
		return NULL;
	}
	if (util_random(&h->ident, sizeof(h->ident)) != 0)
		h->ident = (uint16_t)getpid();
	return h;
}

void
health_free(struct health *h)
{
	if (h == NULL)
		return;
	if (h->fd != -1)
		close(h->fd);
	free(h->t);
	free(h);
}

int
health_fd(const struct health *h)
{
	return h != NULL ? h->fd : -1;
}

static unsigned
health_interval_ms(const struct health *h)
{
	uint64_t iv = (uint64_t)h->n * 1000 / HEALTH_PPS_MAX;

	return iv > HEALTH_INTERVAL_MS ? (unsigned)iv : HEALTH_INTERVAL_MS;
}

static bool
health_same_cfg(const struct health_tunnel *a, const struct health_tunnel *b)
{
	return a->tunnel_id == b->tunnel_id &&
	    strcmp(a->ifname, b->ifname) == 0 &&
	    memcmp(&a->local, &b->local, sizeof(a->local)) == 0 &&
	    memcmp(&a->peer, &b->peer, sizeof(a->peer)) == 0;
}

static int
health_entry_cmp(const void *a, const void *b)
{
	const struct health_entry *x = a, *y = b;

	return x->cfg.tunnel_id < y->cfg.tunnel_id ? -1 :
	    x->cfg.tunnel_id > y->cfg.tunnel_id;
}

static struct health_entry *
health_find(const struct health *h, uint64_t id)
{
	size_t lo = util_lower_bound_u64(h->t, h->n, sizeof(*h->t),
	    offsetof(struct health_entry, cfg.tunnel_id), id);

	return lo < h->n && h->t[lo].cfg.tunnel_id == id ? &h->t[lo] : NULL;
}

void
health_set(struct health *h, const struct health_tunnel *t, size_t n)
{
	struct health_entry *nt = NULL;
	uint64_t now = util_mono_ms();
	size_t k = 0;

	if (h == NULL)
		return;
	if (n > HEALTH_TUNNELS_MAX) {
		if (!h->full_logged)
			log_warnx("health: %zu tunnels, probing the first %d",
			    n, HEALTH_TUNNELS_MAX);
		h->full_logged = true;
		n = HEALTH_TUNNELS_MAX;
	}
	/* The same set as before: nothing to do (the usual case). */
	if (n == h->n) {
		size_t i;

		for (i = 0; i < n; i++) {
			const struct health_entry *e = health_find(h,
			    t[i].tunnel_id);

			if (e == NULL || !health_same_cfg(&e->cfg, &t[i]))
				break;
		}
		if (i == n)
			return;
	}
	if (n > 0 && (nt = calloc(n, sizeof(*nt))) == NULL) {
		log_warnx("health: out of memory; probes keep the old tunnels");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct health_entry *old;

		if (t[i].tunnel_id == 0 || t[i].local.family != AF_INET ||
		    t[i].peer.family != AF_INET || t[i].ifname[0] == '\0')
			continue;
		old = health_find(h, t[i].tunnel_id);
		if (old != NULL && health_same_cfg(&old->cfg, &t[i])) {
			nt[k++] = *old;
			continue;
		}
		nt[k].cfg = t[i];
		nt[k].cfg.ifname[sizeof(nt[k].cfg.ifname) - 1] = '\0';
		/* Spread the first probes over one interval. */
		nt[k].next_ms = now + (t[i].tunnel_id * 37) %
		    HEALTH_INTERVAL_MS;
		k++;
	}
	/* Ids are unique in an intent; a repeat is dropped. */
	if (k > 1) {
		size_t w = 1;

		qsort(nt, k, sizeof(*nt), health_entry_cmp);
		for (size_t i = 1; i < k; i++)
			if (nt[i].cfg.tunnel_id != nt[w - 1].cfg.tunnel_id)
				nt[w++] = nt[i];
		k = w;
	}
	free(h->t);
	h->t = nt;
	h->n = k;
}

int
health_timeout_ms(const struct health *h, uint64_t now_ms)
{
	uint64_t first = UINT64_MAX;

	if (h == NULL || h->n == 0)
		return -1;
	for (size_t i = 0; i < h->n; i++) {
		const struct health_entry *e = &h->t[i];

		if (e->next_ms < first)
			first = e->next_ms;
		for (size_t k = 0; k < HEALTH_WINDOW; k++)
			if (e->track.slot[k].state == HEALTH_SLOT_WAITING &&
			    e->track.slot[k].sent_us / 1000 +
			    HEALTH_TIMEOUT_MS < first)
				first = e->track.slot[k].sent_us / 1000 +
				    HEALTH_TIMEOUT_MS;
	}
	if (first <= now_ms)
		return 0;
	return first - now_ms > 60000 ? 60000 : (int)(first - now_ms);
}

static void
health_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
health_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint16_t
health_cksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
health_send(struct health *h, struct health_entry *e)
{
	uint8_t pkt[8 + HEALTH_PAYLOAD];
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} cb;
	struct sockaddr_in to;
	struct iovec iov = { pkt, sizeof(pkt) };
	struct msghdr mh;
	struct cmsghdr *c;
	struct in_pktinfo pi;
	uint32_t nonce;
	uint16_t ck;

	if (e->ifindex == 0 &&
	    (e->ifindex = if_nametoindex(e->cfg.ifname)) == 0)
		return;		/* device not there (yet): nothing sent */
	if (util_random(&nonce, sizeof(nonce)) != 0)
		return;
	e->seq++;
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = ICMP_ECHO;
	pkt[4] = (uint8_t)(h->ident >> 8);
	pkt[5] = (uint8_t)h->ident;
	pkt[6] = (uint8_t)(e->seq >> 8);
	pkt[7] = (uint8_t)e->seq;
	memcpy(pkt + 8, health_magic, sizeof(health_magic));
	health_put_u64(pkt + 12, e->cfg.tunnel_id);
	memcpy(pkt + 20, &nonce, sizeof(nonce));
	ck = health_cksum(pkt, sizeof(pkt));
	pkt[2] = (uint8_t)(ck >> 8);
	pkt[3] = (uint8_t)ck;

	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	memcpy(&to.sin_addr, e->cfg.peer.bytes, 4);
	memset(&pi, 0, sizeof(pi));
	pi.ipi_ifindex = (int)e->ifindex;
	memcpy(&pi.ipi_spec_dst, e->cfg.local.bytes, 4);
	memset(&cb, 0, sizeof(cb));
	memset(&mh, 0, sizeof(mh));
	mh.msg_name = &to;
	mh.msg_namelen = sizeof(to);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cb.buf;
	mh.msg_controllen = sizeof(cb.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = IPPROTO_IP;
	c->cmsg_type = IP_PKTINFO;
	c->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(c), &pi, sizeof(pi));
	/* Counted as sent either way: a probe that cannot leave is lost. */
	health_track_sent(&e->track, e->seq, nonce, health_now_us());
	if (sendmsg(h->fd, &mh, MSG_DONTWAIT) == -1) {
		if (errno == ENODEV || errno == ENXIO)
			e->ifindex = 0;	/* device remade: look it up again */
		if (!e->send_failed_logged)
			log_debug("health", "tunnel %" PRIu64 ": probe not "
			    "sent: %s", e->cfg.tunnel_id, strerror(errno));
		e->send_failed_logged = true;
	} else {
		e->send_failed_logged = false;
	}
}

/* One datagram from the socket; false when there was none. */
static bool
health_recv_one(struct health *h)
{
	uint8_t pkt[256];
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { pkt, sizeof(pkt) };
	struct msghdr mh;
	struct cmsghdr *c;
	struct health_reply r;
	struct health_entry *e;
	uint64_t at = health_now_us();
	uint32_t nonce;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cb.buf;
	mh.msg_controllen = sizeof(cb.buf);
	if ((n = recvmsg(h->fd, &mh, MSG_DONTWAIT)) < 0)
		return false;
	/* The kernel's receive stamp: how long it waited for us. */
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		struct timespec ts, now;

		if (c->cmsg_level != SOL_SOCKET ||
		    c->cmsg_type != SCM_TIMESTAMPNS ||
		    c->cmsg_len < CMSG_LEN(sizeof(ts)))
			continue;
		memcpy(&ts, CMSG_DATA(c), sizeof(ts));
		if (clock_gettime(CLOCK_REALTIME, &now) == 0) {
			int64_t waited = ((int64_t)now.tv_sec - ts.tv_sec) *
			    1000000 + (now.tv_nsec - ts.tv_nsec) / 1000;

			if (waited > 0 && waited < HEALTH_TIMEOUT_MS * 1000LL &&
			    (uint64_t)waited < at)
				at -= (uint64_t)waited;
		}
	}
	if ((mh.msg_flags & MSG_TRUNC) ||
	    health_parse_reply(pkt, (size_t)n, &r) == -1 ||
	    r.ident != h->ident || r.payload_len != HEALTH_PAYLOAD ||
	    memcmp(r.payload, health_magic, sizeof(health_magic)) != 0 ||
	    (e = health_find(h, health_get_u64(r.payload + 4))) == NULL ||
	    memcmp(&r.src, e->cfg.peer.bytes, 4) != 0)
		return true;
	memcpy(&nonce, r.payload + 12, sizeof(nonce));
	(void)health_track_reply(&e->track, r.seq, nonce, at);
	return true;
}

bool
health_run(struct health *h, uint64_t now_ms)
{
	uint64_t now_us;
	unsigned iv;
	bool changed = false;

	if (h == NULL)
		return false;
	for (int i = 0; i < HEALTH_RX_BURST && health_recv_one(h); i++)
		;
	iv = health_interval_ms(h);
	now_us = health_now_us();
	for (size_t i = 0; i < h->n; i++) {
		struct health_entry *e = &h->t[i];
		struct health_result r;

		if (now_ms >= e->next_ms) {
			health_send(h, e);
			e->next_ms = e->next_ms + iv > now_ms ?
			    e->next_ms + iv : now_ms + iv;
		}
		health_track_expire(&e->track, now_us,
		    HEALTH_TIMEOUT_MS * 1000ull);
		health_track_result(&e->track, &r);
		if (r.probe != e->last.probe ||
		    (r.loss_permille == 0) != (e->last.loss_permille == 0)) {
			if (r.probe != e->last.probe)
				log_debug("health", "tunnel %" PRIu64 ": probes "
				    "%s (loss %u permille, rtt %u us)", e->cfg.tunnel_id,
				    r.probe == HEALTH_PROBE_DOWN ? "down" :
				    r.probe == HEALTH_PROBE_UP ? "up" :
				    "unknown", r.loss_permille, r.rtt_us);
			changed = true;
		}
		e->last = r;
	}
	return changed;
}

int
health_get(const struct health *h, uint64_t tunnel_id,
    struct health_result *r)
{
	const struct health_entry *e = h != NULL ? health_find(h, tunnel_id) :
	    NULL;

	if (e == NULL) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	*r = e->last;
	return 0;
}
