/*
 * xfrm_ev.c — the kernel's XFRM events (expiry, NAT mappings): a monitor
 * thread that reads them into a bounded queue and wakes the caller
 * through an eventfd, the parser of the two messages, and the per-tunnel
 * rule that turns mappings into a noted peer endpoint.  Why a thread:
 * the caller waits on moved_fd, an eventfd it reads 8 bytes from, while
 * the events arrive on a netlink socket that must be read whole; the
 * thread bridges the two without sharing the backend's tunnel lists.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <linux/xfrm.h>

#include <netlink/netlink.h>
#include <netlink/msg.h>
#include <netlink/socket.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/xfrm/xfrm_ev.h"

struct xfrm_evmon {
	struct nl_sock *sk;
	int moved_fd;			/* eventfd handed to the caller */
	int stop_fd;			/* eventfd: the thread ends */
	pthread_t th;
	bool started;
	pthread_mutex_t mu;		/* guards q, head, n, dropped */
	struct xfrm_ev q[XFRM_EV_QUEUE];
	size_t head, n;
	uint64_t dropped;
};

/* ---- parsing ------------------------------------------------------------ */

static int
xfrm_ev_addr(struct overlay_addr *o, uint16_t family, const xfrm_address_t *x)
{
	memset(o, 0, sizeof(*o));
	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	o->family = family;
	memcpy(o->bytes, x, family == AF_INET ? 4 : 16);
	return 0;
}

int
xfrm_ev_parse(const struct nlmsghdr *nlh, struct xfrm_ev *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (nlh->nlmsg_type == XFRM_MSG_EXPIRE) {
		const struct xfrm_user_expire *e;

		if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
			return -EINVAL;
		e = NLMSG_DATA(nlh);
		if (e->state.id.proto != IPPROTO_ESP)
			return 0;
		ev->type = XFRM_MSG_EXPIRE;
		ev->spi = ntohl(e->state.id.spi);
		ev->reqid = e->state.reqid;
		ev->hard = e->hard != 0;
		return xfrm_ev_addr(&ev->daddr, e->state.family,
		    &e->state.id.daddr) < 0 ? -EINVAL : 1;
	}
	if (nlh->nlmsg_type == XFRM_MSG_MAPPING) {
		const struct xfrm_user_mapping *m;

		if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*m)))
			return -EINVAL;
		m = NLMSG_DATA(nlh);
		if (m->id.proto != IPPROTO_ESP)
			return 0;
		ev->type = XFRM_MSG_MAPPING;
		ev->spi = ntohl(m->id.spi);
		ev->reqid = m->reqid;
		ev->old_port = ntohs(m->old_sport);
		ev->new_port = ntohs(m->new_sport);
		if (xfrm_ev_addr(&ev->daddr, m->id.family, &m->id.daddr) < 0 ||
		    xfrm_ev_addr(&ev->old_addr, m->id.family,
		    &m->old_saddr) < 0 ||
		    xfrm_ev_addr(&ev->new_addr, m->id.family,
		    &m->new_saddr) < 0 || ev->new_port == 0)
			return -EINVAL;
		return 1;
	}
	return 0;
}

/* ---- a tunnel's noted endpoint ------------------------------------------ */

int
xfrm_moved_note(struct xfrm_moved *m, const struct xfrm_ev *ev,
    const struct overlay_addr *remote, uint16_t rport, uint64_t now_ms)
{
	if (ev->type != XFRM_MSG_MAPPING ||
	    ev->new_addr.family != remote->family ||
	    !overlay_addr_eq(&ev->old_addr, remote) || ev->old_port != rport)
		return 0;
	if (overlay_addr_eq(&ev->new_addr, remote) && ev->new_port == rport)
		return 0;
	m->rx++;
	if (overlay_addr_eq(&ev->new_addr, &m->addr) && ev->new_port == m->port) {
		/* Back to the noted one: nothing newer waits. */
		memset(&m->next_addr, 0, sizeof(m->next_addr));
		m->next_port = 0;
		return 0;
	}
	m->next_addr = ev->new_addr;
	m->next_port = ev->new_port;
	return xfrm_moved_tick(m, now_ms);
}

int
xfrm_moved_tick(struct xfrm_moved *m, uint64_t now_ms)
{
	if (m->next_addr.family == AF_UNSPEC ||
	    (m->at_ms != 0 && now_ms - m->at_ms < XFRM_MOVED_HOLD_MS))
		return 0;
	m->addr = m->next_addr;
	m->port = m->next_port;
	m->at_ms = now_ms != 0 ? now_ms : 1;
	memset(&m->next_addr, 0, sizeof(m->next_addr));
	m->next_port = 0;
	return 1;
}

void
xfrm_moved_clear(struct xfrm_moved *m)
{
	uint64_t at = m->at_ms;

	memset(m, 0, sizeof(*m));
	m->at_ms = at;
}

/* ---- the monitor thread ------------------------------------------------- */

static void
xfrm_evmon_push(struct xfrm_evmon *m, const struct xfrm_ev *ev)
{
	pthread_mutex_lock(&m->mu);
	if (m->n == XFRM_EV_QUEUE) {
		/* Full: the newest is dropped.  Expiry is also read from the
		 * counters, and the kernel repeats a mapping while it lasts. */
		if (m->dropped++ == 0)
			log_warnx("xfrm: event queue full, events dropped");
	} else {
		m->q[(m->head + m->n) % XFRM_EV_QUEUE] = *ev;
		m->n++;
	}
	pthread_mutex_unlock(&m->mu);
}

/* Read what is pending; true if a mapping was among it. */
static bool
xfrm_evmon_read(struct xfrm_evmon *m)
{
	unsigned char *buf = NULL;
	struct sockaddr_nl peer;
	struct nlmsghdr *nlh;
	struct xfrm_ev ev;
	bool mapping = false;
	int n, total;

	for (;;) {
		n = nl_recv(m->sk, &peer, &buf, NULL);
		if (n <= 0) {
			/* Would block, or an overflow (-ENOBUFS) reported
			 * once: the next poll goes on reading. */
			free(buf);
			return mapping;
		}
		total = n;
		if (peer.nl_pid != 0)
			goto next;	/* only the kernel's word counts */
		for (nlh = (struct nlmsghdr *)buf; nlmsg_ok(nlh, n);
		    nlh = nlmsg_next(nlh, &n))
			if (xfrm_ev_parse(nlh, &ev) == 1) {
				xfrm_evmon_push(m, &ev);
				if (ev.type == XFRM_MSG_MAPPING)
					mapping = true;
			}
next:
		explicit_bzero(buf, (size_t)total);
		free(buf);
		buf = NULL;
	}
}

void
xfrm_evmon_signal(struct xfrm_evmon *m)
{
	uint64_t one = 1;

	if (m != NULL && write(m->moved_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warnx("xfrm: moved_fd: %s", strerror(errno));
}

static void *
xfrm_evmon_main(void *arg)
{
	struct xfrm_evmon *m = arg;
	uint64_t last = 0;
	bool pending = false;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = nl_socket_get_fd(m->sk), .events = POLLIN },
			{ .fd = m->stop_fd, .events = POLLIN },
		};
		uint64_t now = util_mono_ms();
		int wait = -1;

		if (pending)
			wait = now - last >= XFRM_EV_SIGNAL_MS ? 0 :
			    (int)(XFRM_EV_SIGNAL_MS - (now - last));
		if (poll(p, 2, wait) < 0 && errno != EINTR) {
			log_warnx("xfrm: event thread: poll: %s",
			    strerror(errno));
			return NULL;
		}
		if (p[1].revents & POLLIN)
			return NULL;
		if ((p[0].revents & (POLLIN | POLLERR)) && xfrm_evmon_read(m))
			pending = true;
		/* One wake-up per XFRM_EV_SIGNAL_MS at most: a peer whose
		 * packets race from many ports cannot spin the caller. */
		now = util_mono_ms();
		if (pending && (last == 0 || now - last >= XFRM_EV_SIGNAL_MS)) {
			xfrm_evmon_signal(m);
			last = now;
			pending = false;
		}
	}
}

struct xfrm_evmon *
xfrm_evmon_start(void)
{
	struct xfrm_evmon *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->moved_fd = m->stop_fd = -1;
	pthread_mutex_init(&m->mu, NULL);
	m->moved_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->sk = nl_socket_alloc();
	if (m->moved_fd < 0 || m->stop_fd < 0 || m->sk == NULL)
		goto fail;
	nl_socket_disable_seq_check(m->sk);
	if (nl_connect(m->sk, NETLINK_XFRM) < 0 ||
	    nl_socket_add_memberships(m->sk, XFRMNLGRP_EXPIRE,
	    XFRMNLGRP_MAPPING, 0) < 0 ||
	    nl_socket_set_nonblocking(m->sk) < 0)
		goto fail;
	if (pthread_create(&m->th, NULL, xfrm_evmon_main, m) != 0)
		goto fail;
	m->started = true;
	return m;
fail:
	log_warnx("xfrm: no event socket or thread: soft expiry is read from "
	    "the counters only, NAT mappings are not seen");
	xfrm_evmon_stop(m);
	return NULL;
}

void
xfrm_evmon_stop(struct xfrm_evmon *m)
{
	uint64_t one = 1;

	if (m == NULL)
		return;
	if (m->started) {
		if (write(m->stop_fd, &one, sizeof(one)) < 0)
			log_warnx("xfrm: stopping the event thread: %s",
			    strerror(errno));
		pthread_join(m->th, NULL);
	}
	if (m->sk != NULL)
		nl_socket_free(m->sk);
	if (m->moved_fd >= 0)
		close(m->moved_fd);
	if (m->stop_fd >= 0)
		close(m->stop_fd);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

int
xfrm_evmon_fd(const struct xfrm_evmon *m)
{
	return m->moved_fd;
}

size_t
xfrm_evmon_take(struct xfrm_evmon *m, struct xfrm_ev *out, size_t n)
{
	size_t i;

	pthread_mutex_lock(&m->mu);
	for (i = 0; i < n && m->n > 0; i++) {
		out[i] = m->q[m->head];
		m->head = (m->head + 1) % XFRM_EV_QUEUE;
		m->n--;
	}
	pthread_mutex_unlock(&m->mu);
	return i;
}
