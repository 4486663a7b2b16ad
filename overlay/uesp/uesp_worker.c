/*
 * uesp_worker.c — epoll loop, batched I/O and the command channel of one
 * data-plane thread.  See uesp_worker.h for the threading rules.
 */
#include "overlay/uesp/uesp_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/udp.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/uesp/uesp_dev.h"
#include "overlay/uesp/uesp_gso.h"

#include <netinet/in.h>


struct uesp_cmd;
typedef int (*uesp_cmd_fn)(struct uesp_worker *, struct uesp_cmd *);

struct uesp_cmd {
	uesp_cmd_fn fn;
	struct uesp_tunnel *t;
	struct uesp_sa *sa;
	const struct overlay_tunnel_params *params;
	const struct overlay_sa_params *sap;
	const uint8_t *kd;
	uint64_t id;
	uint32_t spi;
	enum overlay_dir dir;
	void *out;
	int rc;
	bool done;
};

/* A datagram from a source no tunnel is connected to, with its source. */
struct uesp_stray {
	struct overlay_addr from;
	uint16_t port;
	size_t len;
	uint8_t buf[UESP_BUF_LEN];
};

struct uesp_worker {
	unsigned index;
	pthread_t thread;
	int ep;
	int evfd;
	int listen_fd;
	uint64_t keepalive_ms;
	bool stop;
	uesp_worker_route_fn route;	/* for listen_fd's datagrams */
	void *route_arg;
	int moved_fd;			/* eventfd: a moved peer was noted */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct uesp_cmd *cmd;	/* posted, not yet run */
	/* Datagrams from unexpected sources for this worker's tunnels,
	 * posted by the listening worker (under lock). */
	struct uesp_stray *stray;
	unsigned nstray;
	struct uesp_tunnel_ev ev_cmd, ev_listen;

	/* Worker-owned from here on. */
	struct uesp_tunnel **tunnels;
	unsigned ntunnels, cap;
	struct overlay_drops global;
	uint64_t now_ms, last_tick_ms;

	/* Batch buffers, allocated once. */
	uint8_t (*buf)[UESP_BUF_LEN];
	uint8_t *gsobuf;	/* one TUN super-packet with its vnet header */
	struct uesp_gro *gro;	/* inbound segments being merged */
	unsigned ntx;		/* messages prepared in msg[] (offload path) */
	/* UDP_SEGMENT sends: groups of iov[] with their control buffers. */
	struct mmsghdr smsg[UESP_BATCH];
	unsigned sfirst[UESP_BATCH];
	uint8_t scbuf[UESP_BATCH][CMSG_SPACE(sizeof(uint16_t))];
	/* UDP_GRO receives. */
	uint8_t (*big)[UESP_GRO_BUF];
	struct iovec giov[UESP_GRO_BATCH];
	struct mmsghdr gmsg[UESP_GRO_BATCH];
	uint8_t gcbuf[UESP_GRO_BATCH][CMSG_SPACE(sizeof(int))];
	struct uesp_tunnel *txt; /* their tunnel */
	struct iovec iov[UESP_BATCH];
	struct mmsghdr msg[UESP_BATCH];
	struct sockaddr_storage names[UESP_BATCH]; /* listen_fd's sources */
};

static struct uesp_tunnel *
uesp_worker_find(struct uesp_worker *w, uint64_t id, unsigned *idx)
{
	unsigned i;

	for (i = 0; i < w->ntunnels; i++) {
		if (w->tunnels[i]->p.id == id) {
			if (idx != NULL)
				*idx = i;
			return w->tunnels[i];
		}
	}
	return NULL;
}

/* Send prepared messages [off, n) one datagram each; failures counted. */
static void
uesp_worker_send_plain(struct uesp_worker *w, struct uesp_tunnel *t,
    unsigned off, unsigned n)
{
	int r;

	while (off < n) {
		r = sendmmsg(t->sock_fd, w->msg + off, n - off, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNREFUSED || errno == EMSGSIZE) {
				/* The peer's ICMP from an earlier packet (the
				 * error is reported once), or this datagram is
				 * over a path MTU learnt with DF set: count it,
				 * send the rest. */
				t->st.drops.io++;
				off++;
				continue;
			}
			t->st.drops.io += n - off;
			log_debug("uesp", "tunnel %llu: sendmmsg: %s",
			    (unsigned long long)t->p.id, strerror(errno));
			return;
		}
		off += (unsigned)r;
	}
}

/* Most datagrams UDP_SEGMENT takes in one send, and their total size. */
#define UESP_GSO_SEGS	64
#define UESP_GSO_BYTES	65000

/*
 * Send the first n prepared datagrams.  With UDP_SEGMENT, runs of equal
 * size (the last may be shorter) go out as one message each: the kernel
 * still puts the very same datagrams on the wire.
 */
static void
uesp_worker_send(struct uesp_worker *w, struct uesp_tunnel *t, unsigned n)
{
	struct cmsghdr *cm;
	struct msghdr *mh;
	unsigned g = 0, s = 0, j, off = 0;
	size_t size, total;
	uint16_t seg;
	int r;

	if (!t->udp_gso) {
		uesp_worker_send_plain(w, t, 0, n);
		return;
	}
	while (s < n) {
		size = w->iov[s].iov_len;
		total = size;
		for (j = s + 1; j < n && j - s < UESP_GSO_SEGS &&
		    w->iov[j].iov_len <= size &&
		    total + w->iov[j].iov_len <= UESP_GSO_BYTES; j++) {
			total += w->iov[j].iov_len;
			if (w->iov[j].iov_len < size) {
				j++;
				break;
			}
		}
		mh = &w->smsg[g].msg_hdr;
		memset(mh, 0, sizeof(*mh));
		mh->msg_iov = &w->iov[s];
		mh->msg_iovlen = j - s;
		if (j - s > 1) {
			mh->msg_control = w->scbuf[g];
			mh->msg_controllen = sizeof(w->scbuf[g]);
			cm = CMSG_FIRSTHDR(mh);
			cm->cmsg_level = SOL_UDP;
			cm->cmsg_type = UDP_SEGMENT;
			cm->cmsg_len = CMSG_LEN(sizeof(seg));
			seg = (uint16_t)size;
			memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
		}
		w->sfirst[g++] = s;
		s = j;
	}
	while (off < g) {
		r = sendmmsg(t->sock_fd, w->smsg + off, g - off, 0);
		if (r >= 0) {
			off += (unsigned)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP) {
			/* No segmentation offload on this path: say so once
			 * and send one datagram per message from now on. */
			log_warnx("uesp: tunnel %llu: UDP segmentation "
			    "refused (%s), sending datagrams one by one",
			    (unsigned long long)t->p.id, strerror(errno));
			t->udp_gso = false;
		} else if (errno != ECONNREFUSED) {
			log_debug("uesp", "tunnel %llu: sendmmsg: %s",
			    (unsigned long long)t->p.id, strerror(errno));
		}
		/* Whatever failed, the rest goes datagram by datagram. */
		uesp_worker_send_plain(w, t, w->sfirst[off], n);
		return;
	}
}

/* One segment of a super-packet: frame, seal, queue; send when full. */
static void
uesp_worker_tx_seg(void *arg, const uint8_t *seg, size_t len)
{
	struct uesp_worker *w = arg;
	struct uesp_tunnel *t = w->txt;
	uint8_t *dgram;
	size_t dlen;
	unsigned n = w->ntx;

	if (len > UESP_INNER_MAX) {
		t->st.drops.malformed++;
		return;
	}
	memcpy(w->buf[n] + UESP_HEADROOM, seg, len);
	if (uesp_tunnel_tx(t, w->buf[n], len, &dgram, &dlen) < 0)
		return;
	w->iov[n].iov_base = dgram;
	w->iov[n].iov_len = dlen;
	memset(&w->msg[n].msg_hdr, 0, sizeof(w->msg[n].msg_hdr));
	w->msg[n].msg_hdr.msg_iov = &w->iov[n];
	w->msg[n].msg_hdr.msg_iovlen = 1;
	if (++w->ntx == UESP_BATCH) {
		uesp_worker_send(w, t, w->ntx);
		w->ntx = 0;
	}
}

/*
 * Outbound: a few device reads per event, each a packet or a TCP
 * super-packet (TSO) that is cut into MTU-sized segments, each sealed;
 * the datagrams leave in batches (uesp_worker_send).
 */
static void
uesp_worker_tx(struct uesp_worker *w, struct uesp_tunnel *t)
{
	const size_t hl = sizeof(struct virtio_net_hdr);
	struct virtio_net_hdr h;
	ssize_t r;
	unsigned i;

	w->txt = t;
	w->ntx = 0;
	for (i = 0; i < 8; i++) {
		r = read(t->dev_fd, w->gsobuf, hl + UESP_GSO_L2 + UESP_GSO_MAX);
		if (r <= 0) {
			if (r < 0 && errno != EAGAIN && errno != EINTR)
				t->st.drops.io++;
			break;
		}
		if ((size_t)r <= hl) {
			t->st.drops.malformed++;
			continue;
		}
		memcpy(&h, w->gsobuf, hl);
		if (uesp_gso_split(&h, w->gsobuf + hl, (size_t)r - hl,
		    t->p.encap == OVERLAY_ENCAP_VXLAN ? UESP_GSO_L2 : 0,
		    uesp_worker_tx_seg, w) < 0)
			t->st.drops.malformed++;
	}
	if (w->ntx > 0)
		uesp_worker_send(w, t, w->ntx);
	if (i > 0)
		t->last_tx_ms = w->now_ms;
	w->ntx = 0;
}

static void
uesp_worker_rx_prepare(struct uesp_worker *w)
{
	unsigned i;

	for (i = 0; i < UESP_BATCH; i++) {
		w->iov[i].iov_base = w->buf[i];
		w->iov[i].iov_len = UESP_BUF_LEN;
		memset(&w->msg[i].msg_hdr, 0, sizeof(w->msg[i].msg_hdr));
		w->msg[i].msg_hdr.msg_iov = &w->iov[i];
		w->msg[i].msg_hdr.msg_iovlen = 1;
	}
}

static void
uesp_worker_gro_flush(struct uesp_worker *w, struct uesp_tunnel *t)
{
	struct uesp_gro *g = w->gro;

	if (g->len == 0)
		return;
	uesp_gso_coalesce_finish(g);
	if (write(t->dev_fd, &g->h, sizeof(g->h) + g->len) < 0)
		t->st.drops.io += g->nseg;
	g->len = 0;
}

/* Deliver one inner packet: merged with the previous ones when it
 * continues their TCP flow, else written on its own (after them). */
static void
uesp_worker_deliver(struct uesp_worker *w, struct uesp_tunnel *t,
    const uint8_t *inner, size_t ilen)
{
	if (w->gro->len > 0 && uesp_gso_coalesce_add(w->gro, inner, ilen))
		return;
	uesp_worker_gro_flush(w, t);
	if (ilen > sizeof(w->gro->pkt)) {
		t->st.drops.malformed++;
		return;
	}
	uesp_gso_coalesce_start(w->gro,
	    t->p.encap == OVERLAY_ENCAP_VXLAN ? UESP_GSO_L2 : 0, inner, ilen);
}

/* Inbound with UDP_GRO: each receive may hold several datagrams of
 * gso_size bytes (the last shorter); each is opened on its own. */
static void
uesp_worker_rx_gro(struct uesp_worker *w, struct uesp_tunnel *t)
{
	struct cmsghdr *cm;
	struct msghdr *mh;
	uint8_t *inner;
	size_t len, seg, off, slen, ilen;
	int i, n, gs;

	for (i = 0; i < UESP_GRO_BATCH; i++) {
		w->giov[i].iov_base = w->big[i];
		w->giov[i].iov_len = UESP_GRO_BUF;
		mh = &w->gmsg[i].msg_hdr;
		memset(mh, 0, sizeof(*mh));
		mh->msg_iov = &w->giov[i];
		mh->msg_iovlen = 1;
		mh->msg_control = w->gcbuf[i];
		mh->msg_controllen = sizeof(w->gcbuf[i]);
	}
	n = recvmmsg(t->sock_fd, w->gmsg, UESP_GRO_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
			t->st.drops.io++;
		return;
	}
	for (i = 0; i < n; i++) {
		mh = &w->gmsg[i].msg_hdr;
		len = w->gmsg[i].msg_len;
		if (mh->msg_flags & MSG_TRUNC) {
			t->st.drops.malformed++;
			continue;
		}
		if (len == 0) {
			t->st.drops.malformed++;	/* as on the plain path */
			continue;
		}
		seg = len;
		for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
			if (cm->cmsg_level == SOL_UDP &&
			    cm->cmsg_type == UDP_GRO &&
			    cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
				memcpy(&gs, CMSG_DATA(cm), sizeof(gs));
				if (gs > 0)
					seg = (size_t)gs;
			}
		}
		for (off = 0; off < len; off += slen) {
			slen = len - off < seg ? len - off : seg;
			if (uesp_tunnel_rx(t, w->big[i] + off, slen, &inner,
			    &ilen) == 1)
				uesp_worker_deliver(w, t, inner, ilen);
		}
	}
	uesp_worker_gro_flush(w, t);
}

static void
uesp_worker_rx(struct uesp_worker *w, struct uesp_tunnel *t)
{
	uint8_t *inner;
	size_t ilen;
	int i, n;

	uesp_worker_rx_prepare(w);
	n = recvmmsg(t->sock_fd, w->msg, UESP_BATCH, MSG_DONTWAIT, NULL);
	if (n < 0) {
		/* ECONNREFUSED: an ICMP error for an earlier send. */
		if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
			t->st.drops.io++;
		return;
	}
	for (i = 0; i < n; i++) {
		if (w->msg[i].msg_hdr.msg_flags & MSG_TRUNC) {
			t->st.drops.malformed++;
			continue;
		}
		if (uesp_tunnel_rx(t, w->buf[i], w->msg[i].msg_len, &inner,
		    &ilen) != 1)
			continue;
		uesp_worker_deliver(w, t, inner, ilen);
	}
	uesp_worker_gro_flush(w, t);
}

/* A datagram's source as an address and port; -1 if not IPv4/IPv6. */
static int
uesp_worker_source(const struct sockaddr_storage *ss, socklen_t sl,
    struct overlay_addr *a, uint16_t *port)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET && sl >= sizeof(*s4)) {
		a->family = AF_INET;
		memcpy(a->bytes, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6 && sl >= sizeof(*s6)) {
		if (memcmp(s6->sin6_addr.s6_addr, v4mapped, 12) == 0) {
			a->family = AF_INET;
			memcpy(a->bytes, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->bytes, s6->sin6_addr.s6_addr, 16);
		}
		*port = ntohs(s6->sin6_port);
		return 0;
	}
	return -1;
}

/*
 * A datagram from an unexpected source for one of this worker's tunnels
 * (the owner of its inbound SPI): every inbound check, delivery, and the
 * source noted if it passes (uesp_tunnel_rx_from).
 */
static void
uesp_worker_stray_rx(struct uesp_worker *w, uint8_t *buf, size_t len,
    const struct overlay_addr *from, uint16_t port)
{
	uint32_t spi = esp_peek_spi(buf, len);
	struct uesp_tunnel *t = NULL;
	uint8_t *inner;
	size_t ilen;
	unsigned i;

	for (i = 0; i < w->ntunnels && t == NULL; i++)
		if (uesp_tunnel_sa_find(w->tunnels[i], spi,
		    OVERLAY_DIR_IN) != NULL)
			t = w->tunnels[i];
	if (t == NULL) {
		w->global.unknown_spi++;	/* gone in the meantime */
		return;
	}
	struct overlay_addr was = t->st.moved_addr;
	uint16_t was_port = t->st.moved_port;
	int r;

	r = uesp_tunnel_rx_from(t, buf, len, from, port, &inner, &ilen);
	if (w->moved_fd >= 0 && (t->st.moved_port != was_port ||
	    !overlay_addr_eq(&t->st.moved_addr, &was))) {
		static const uint64_t one = 1;

		if (write(w->moved_fd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			t->st.drops.io++;
	}
	if (r != 1)
		return;
	uesp_worker_deliver(w, t, inner, ilen);
	uesp_worker_gro_flush(w, t);
}

/* Run the datagrams other workers posted for this one's tunnels. */
static void
uesp_worker_strays(struct uesp_worker *w)
{
	struct uesp_stray *s;
	unsigned i, n;

	pthread_mutex_lock(&w->lock);
	n = w->nstray;
	pthread_mutex_unlock(&w->lock);
	if (n == 0)
		return;
	/* Slots [0, n) are ours until nstray goes down below: the poster
	 * only appends after them. */
	for (i = 0; i < n; i++) {
		s = &w->stray[i];
		uesp_worker_stray_rx(w, s->buf, s->len, &s->from, s->port);
	}
	pthread_mutex_lock(&w->lock);
	/* Keep what was posted while these ran. */
	memmove(w->stray, w->stray + n, (w->nstray - n) * sizeof(*w->stray));
	w->nstray -= n;
	pthread_mutex_unlock(&w->lock);
}

/* Hand a datagram to worker to (never this one): copied; dropped (io)
 * when UESP_STRAY_MAX are already waiting there. */
static void
uesp_worker_post(struct uesp_worker *w, struct uesp_worker *to,
    const uint8_t *buf, size_t len, const struct overlay_addr *from,
    uint16_t port)
{
	static const uint64_t one = 1;
	struct uesp_stray *s = NULL;

	pthread_mutex_lock(&to->lock);
	if (to->nstray < UESP_STRAY_MAX) {
		s = &to->stray[to->nstray++];
		s->from = *from;
		s->port = port;
		s->len = len;
		memcpy(s->buf, buf, len);
	}
	pthread_mutex_unlock(&to->lock);
	if (s == NULL) {
		w->global.io++;
		return;
	}
	if (write(to->evfd, &one, sizeof(one)) < 0)
		log_warn("uesp: worker %u: wake", to->index);
}

/*
 * Datagrams on the shared port from a source no tunnel is connected to:
 * an unknown peer, or a known one whose NAT mapping moved.  Those with a
 * tunnel's inbound SPI go to the tunnel's worker for the full checks.
 */
static void
uesp_worker_listen(struct uesp_worker *w)
{
	struct overlay_addr from;
	struct uesp_worker *to;
	uint16_t port;
	int i, n;

	uesp_worker_rx_prepare(w);
	for (i = 0; i < UESP_BATCH; i++) {
		w->msg[i].msg_hdr.msg_name = &w->names[i];
		w->msg[i].msg_hdr.msg_namelen = sizeof(w->names[i]);
	}
	n = recvmmsg(w->listen_fd, w->msg, UESP_BATCH, MSG_DONTWAIT, NULL);
	for (i = 0; i < n; i++) {
		uint8_t *b = w->buf[i];
		unsigned len = w->msg[i].msg_len;

		if (len == 1 && b[0] == UESP_KEEPALIVE)
			continue;	/* harmless, nothing to charge */
		if (len >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 &&
		    b[3] == 0)
			continue;	/* IKE; not ours */
		if (esp_peek_spi(b, len) == 0 ||
		    (w->msg[i].msg_hdr.msg_flags & MSG_TRUNC)) {
			w->global.malformed++;
			continue;
		}
		to = w->route != NULL ? w->route(w->route_arg,
		    esp_peek_spi(b, len)) : NULL;
		if (to == NULL || uesp_worker_source(&w->names[i],
		    w->msg[i].msg_hdr.msg_namelen, &from, &port) < 0) {
			w->global.unknown_spi++;
			continue;
		}
		if (to == w)
			uesp_worker_stray_rx(w, b, len, &from, port);
		else
			uesp_worker_post(w, to, b, len, &from, port);
	}
}

static void
uesp_worker_tick(struct uesp_worker *w)
{
	static const uint8_t ka = UESP_KEEPALIVE;
	struct uesp_tunnel *t;
	unsigned i;

	for (i = 0; i < w->ntunnels; i++) {
		t = w->tunnels[i];
		uesp_tunnel_tick(t, w->now_ms);
		if (w->now_ms - t->last_tx_ms < w->keepalive_ms)
			continue;
		if (send(t->sock_fd, &ka, 1, MSG_DONTWAIT) == 1)
			t->st.keepalives_tx++;
		t->last_tx_ms = w->now_ms;
	}
}

static int
uesp_worker_epoll(struct uesp_worker *w, int op, int fd,
    struct uesp_tunnel_ev *tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	if (epoll_ctl(w->ep, op, fd, op == EPOLL_CTL_DEL ? NULL : &ev) < 0)
		return -errno;
	return 0;
}

static int
uesp_worker_do_add(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t = c->t, **v;
	int rc;

	if (uesp_worker_find(w, t->p.id, NULL) != NULL)
		return -EEXIST;
	if (w->ntunnels == w->cap) {
		unsigned cap = w->cap ? w->cap * 2 : 16;

		v = realloc(w->tunnels, cap * sizeof(struct uesp_tunnel *));
		if (v == NULL)
			return -ENOMEM;
		w->tunnels = v;
		w->cap = cap;
	}
	t->ev_dev.kind = UESP_EV_DEV;
	t->ev_dev.t = t;
	t->ev_sock.kind = UESP_EV_SOCK;
	t->ev_sock.t = t;
	if ((rc = uesp_worker_epoll(w, EPOLL_CTL_ADD, t->dev_fd,
	    &t->ev_dev)) < 0)
		return rc;
	if ((rc = uesp_worker_epoll(w, EPOLL_CTL_ADD, t->sock_fd,
	    &t->ev_sock)) < 0) {
		uesp_worker_epoll(w, EPOLL_CTL_DEL, t->dev_fd, NULL);
		return rc;
	}
	t->worker = w->index;
	t->last_tx_ms = w->now_ms;
	w->tunnels[w->ntunnels++] = t;
	return 0;
}

static int
uesp_worker_do_del(struct uesp_worker *w, struct uesp_cmd *c)
{
	unsigned i;

	if ((c->t = uesp_worker_find(w, c->id, &i)) == NULL)
		return -ENOENT;
	uesp_worker_epoll(w, EPOLL_CTL_DEL, c->t->dev_fd, NULL);
	uesp_worker_epoll(w, EPOLL_CTL_DEL, c->t->sock_fd, NULL);
	w->tunnels[i] = w->tunnels[--w->ntunnels];
	return 0;
}

static int
uesp_worker_do_update(struct uesp_worker *w, struct uesp_cmd *c)
{
	const struct overlay_tunnel_params *p = c->params;
	struct uesp_tunnel *t;
	int rc;

	if ((t = uesp_worker_find(w, p->id, NULL)) == NULL)
		return -ENOENT;
	/* What the device or its addresses embody needs a new tunnel. */
	if (overlay_tunnel_needs_remake(&t->p, p))
		return -EINVAL;
	if (!overlay_addr_eq(&t->p.remote, &p->remote) ||
	    t->p.remote_port != p->remote_port) {
		rc = uesp_dev_reconnect(t->sock_fd, &p->remote,
		    p->remote_port ? p->remote_port : OVERLAY_UDP_PORT, &t->src);
		if (rc < 0)
			return rc;
		/* A moved source is relative to the remote (overlay.h). */
		memset(&t->st.moved_addr, 0, sizeof(t->st.moved_addr));
		t->st.moved_port = 0;
	}
	if (t->p.mtu != p->mtu &&
	    (rc = uesp_dev_set_mtu(t->p.ifname, p->mtu)) < 0)
		return rc;
	/* Dual stack added, moved or dropped: the device's /127. */
	if (!overlay_addr_eq(&t->p.inner_local6, &p->inner_local6)) {
		if ((rc = uesp_dev_addr6(t->p.ifname, &p->inner_local6,
		    true)) < 0)
			return rc;
		(void)uesp_dev_addr6(t->p.ifname, &t->p.inner_local6, false);
	}
	t->p = *p;
	uesp_tunnel_set_allowed(t);
	return 0;
}

static int
uesp_worker_do_sa_add(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL)
		return -ENOENT;
	return uesp_tunnel_sa_insert(t, c->sa);
}

static int
uesp_worker_do_sa_update(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL)
		return -ENOENT;
	return uesp_tunnel_sa_update(t, c->sap, c->kd, w->now_ms);
}

static int
uesp_worker_do_sa_del(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL)
		return -ENOENT;
	c->sa = uesp_tunnel_sa_remove(t, c->spi, c->dir);
	return c->sa != NULL ? 0 : -ENOENT;
}

static int
uesp_worker_do_switch(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL)
		return -ENOENT;
	return uesp_tunnel_sa_switch(t, c->spi);
}

static int
uesp_worker_do_tstats(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL)
		return -ENOENT;
	uesp_tunnel_stats(t, c->out);
	return 0;
}

static int
uesp_worker_do_sstats(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct uesp_tunnel *t;
	struct uesp_sa *sa;

	if ((t = uesp_worker_find(w, c->id, NULL)) == NULL ||
	    (sa = uesp_tunnel_sa_find(t, c->spi, c->dir)) == NULL)
		return -ENOENT;
	uesp_tunnel_sa_stats(sa, sa == t->active, w->now_ms, c->out);
	return 0;
}

static int
uesp_worker_do_global(struct uesp_worker *w, struct uesp_cmd *c)
{
	struct overlay_drops *o = c->out;

	o->auth += w->global.auth;
	o->replay += w->global.replay;
	o->unknown_spi += w->global.unknown_spi;
	o->malformed += w->global.malformed;
	o->no_sa += w->global.no_sa;
	o->io += w->global.io;
	o->source += w->global.source;
	return 0;
}

static int
uesp_worker_do_stop(struct uesp_worker *w, struct uesp_cmd *c)
{
	w->stop = true;
	return 0;
}

static void
uesp_worker_run_cmd(struct uesp_worker *w)
{
	uint64_t v;

	if (read(w->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("uesp: worker %u: eventfd", w->index);
	uesp_worker_strays(w);
	pthread_mutex_lock(&w->lock);
	if (w->cmd != NULL) {
		w->now_ms = util_mono_ms();
		w->cmd->rc = w->cmd->fn(w, w->cmd);
		w->cmd->done = true;
		w->cmd = NULL;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
}

static void *
uesp_worker_main(void *arg)
{
	struct uesp_worker *w = arg;
	struct epoll_event ev[32];
	bool cmd;
	int i, n;

	while (!w->stop) {
		n = epoll_wait(w->ep, ev, (int)ARRAY_SIZE(ev), 1000);
		if (n < 0 && errno != EINTR) {
			log_warn("uesp: worker %u: epoll_wait", w->index);
			continue;
		}
		w->now_ms = util_mono_ms();
		cmd = false;
		for (i = 0; i < n; i++) {
			const struct uesp_tunnel_ev *e = ev[i].data.ptr;

			switch (e->kind) {
			case UESP_EV_CMD:
				cmd = true;
				break;
			case UESP_EV_LISTEN:
				uesp_worker_listen(w);
				break;
			case UESP_EV_DEV:
				uesp_worker_tx(w, e->t);
				break;
			case UESP_EV_SOCK:
				if (e->t->udp_gro)
					uesp_worker_rx_gro(w, e->t);
				else
					uesp_worker_rx(w, e->t);
				break;
			}
		}
		if (w->now_ms - w->last_tick_ms >= 1000) {
			uesp_worker_tick(w);
			w->last_tick_ms = w->now_ms;
		}
		/* Last: a command may free a tunnel named in this batch. */
		if (cmd)
			uesp_worker_run_cmd(w);
	}
	return NULL;
}

static int
uesp_worker_call(struct uesp_worker *w, struct uesp_cmd *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	w->cmd = c;
	pthread_mutex_unlock(&w->lock);
	if (write(w->evfd, &one, sizeof(one)) < 0)
		log_warn("uesp: worker %u: wake", w->index);
	pthread_mutex_lock(&w->lock);
	while (!c->done)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return c->rc;
}

struct uesp_worker *
uesp_worker_start(unsigned index, unsigned keepalive_s, int listen_fd,
    uesp_worker_route_fn route, void *route_arg, int moved_fd)
{
	struct uesp_worker *w;
	int rc;

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->index = index;
	w->listen_fd = listen_fd;
	w->route = route;
	w->route_arg = route_arg;
	w->moved_fd = moved_fd;
	w->keepalive_ms = (uint64_t)keepalive_s * 1000;
	w->now_ms = w->last_tick_ms = util_mono_ms();
	w->evfd = -1;
	w->buf = calloc(UESP_BATCH, sizeof(*w->buf));
	w->gsobuf = malloc(sizeof(struct virtio_net_hdr) + UESP_GSO_L2 +
	    UESP_GSO_MAX);
	w->gro = calloc(1, sizeof(*w->gro));
	w->big = calloc(UESP_GRO_BATCH, sizeof(*w->big));
	w->stray = calloc(UESP_STRAY_MAX, sizeof(*w->stray));
	if (w->buf == NULL || w->gsobuf == NULL || w->gro == NULL ||
	    w->big == NULL || w->stray == NULL)
		goto free_buf;
	if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		goto free_buf;
	if ((w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto close_ep;
	w->ev_cmd.kind = UESP_EV_CMD;
	w->ev_listen.kind = UESP_EV_LISTEN;
	if (uesp_worker_epoll(w, EPOLL_CTL_ADD, w->evfd, &w->ev_cmd) < 0)
		goto close_ev;
	if (listen_fd >= 0 &&
	    uesp_worker_epoll(w, EPOLL_CTL_ADD, listen_fd, &w->ev_listen) < 0)
		goto close_ev;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if ((rc = pthread_create(&w->thread, NULL, uesp_worker_main, w)) != 0) {
		errno = rc;
		goto destroy;
	}
	return w;
destroy:
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
close_ev:
	close(w->evfd);
close_ep:
	close(w->ep);
free_buf:
	free(w->stray);
	free(w->big);
	free(w->gro);
	free(w->gsobuf);
	free(w->buf);
	log_warn("uesp: worker %u: start", index);
	free(w);
	return NULL;
}

void
uesp_worker_stop(struct uesp_worker *w)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_stop };

	if (w == NULL)
		return;
	uesp_worker_call(w, &c);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	close(w->evfd);
	close(w->ep);
	free(w->tunnels);
	/* They held plaintext. */
	util_wipe(w->buf, UESP_BATCH * sizeof(*w->buf));
	util_wipe(w->gsobuf, sizeof(struct virtio_net_hdr) + UESP_GSO_L2 +
	    UESP_GSO_MAX);
	util_wipe(w->gro, sizeof(*w->gro));
	util_wipe(w->big, UESP_GRO_BATCH * sizeof(*w->big));
	util_wipe(w->stray, UESP_STRAY_MAX * sizeof(*w->stray));
	free(w->stray);
	free(w->big);
	free(w->gro);
	free(w->gsobuf);
	free(w->buf);
	free(w);
}

unsigned
uesp_worker_ntunnels(const struct uesp_worker *w)
{
	return w->ntunnels;	/* changed only by commands this thread posts */
}

int
uesp_worker_add(struct uesp_worker *w, struct uesp_tunnel *t)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_add, .t = t };

	return uesp_worker_call(w, &c);
}

struct uesp_tunnel *
uesp_worker_del(struct uesp_worker *w, uint64_t id)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_del, .id = id };

	return uesp_worker_call(w, &c) == 0 ? c.t : NULL;
}

int
uesp_worker_update(struct uesp_worker *w, const struct overlay_tunnel_params *p)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_update, .params = p };

	return uesp_worker_call(w, &c);
}

int
uesp_worker_sa_add(struct uesp_worker *w, uint64_t id, struct uesp_sa *sa)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_sa_add, .id = id, .sa = sa };

	return uesp_worker_call(w, &c);
}

int
uesp_worker_sa_update(struct uesp_worker *w, const struct overlay_sa_params *p,
    const uint8_t *kd)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_sa_update,
	    .id = p->tunnel_id, .sap = p, .kd = kd };

	return uesp_worker_call(w, &c);
}

struct uesp_sa *
uesp_worker_sa_del(struct uesp_worker *w, uint64_t id, uint32_t spi,
    enum overlay_dir dir)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_sa_del, .id = id,
	    .spi = spi, .dir = dir };

	return uesp_worker_call(w, &c) == 0 ? c.sa : NULL;
}

int
uesp_worker_sa_switch(struct uesp_worker *w, uint64_t id, uint32_t spi)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_switch, .id = id,
	    .spi = spi };

	return uesp_worker_call(w, &c);
}

int
uesp_worker_tunnel_stats(struct uesp_worker *w, uint64_t id,
    struct overlay_tunnel_stats *out)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_tstats, .id = id,
	    .out = out };

	return uesp_worker_call(w, &c);
}

int
uesp_worker_sa_stats(struct uesp_worker *w, uint64_t id, uint32_t spi,
    enum overlay_dir dir, struct overlay_sa_stats *out)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_sstats, .id = id,
	    .spi = spi, .dir = dir, .out = out };

	return uesp_worker_call(w, &c);
}

void
uesp_worker_global_stats(struct uesp_worker *w, struct overlay_drops *out)
{
	struct uesp_cmd c = { .fn = uesp_worker_do_global, .out = out };

	uesp_worker_call(w, &c);
}
