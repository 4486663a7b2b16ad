/*
 * xfrm_nl.c — netlink transport with extended acks, and the SA messages.
 *
 * Every change asks for an ack (iproute2, WireGuard): NLM_F_ACK is set on
 * each request and the answer is read until that ack.  Acks are capped
 * (NETLINK_CAP_ACK) so the kernel never echoes a request that carried key
 * bytes, and NETLINK_EXT_ACK brings the kernel's own error text.  SA
 * messages are built here with libnl's message API instead of libnl-xfrm's
 * xfrmnl_sa object because that object keeps a private copy of the key it
 * frees without wiping; our buffers are wiped before they are freed.
 */
#include <errno.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <netlink/msg.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/socket.h>

#include "lib/log.h"
#include "overlay/xfrm/xfrm_nl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef UDP_ENCAP_ESPINUDP
#define UDP_ENCAP_ESPINUDP 2
#endif

static uint64_t
xfrm_nl_limit(uint64_t v)
{
	return v == 0 ? XFRM_INF : v;
}

static void
xfrm_nl_addr(xfrm_address_t *x, const struct overlay_addr *a)
{
	memset(x, 0, sizeof(*x));
	memcpy(x, a->bytes, a->family == AF_INET ? 4 : 16);
}

int
xfrm_nl_sa_msg(int cmd, const struct overlay_sa_params *p,
    const struct xfrm_sa_place *place, struct nl_msg **out)
{
	struct xfrm_usersa_info info;
	struct xfrm_encap_tmpl encap;
	struct nl_msg *msg;
	struct nlattr *a;
	struct xfrm_algo_aead *aead;
	struct xfrm_replay_state_esn *esn;
	size_t keylen = overlay_cipher_keylen(p->cipher);
	uint32_t window, bmp_len;

	*out = NULL;
	if (keylen == 0 || place->dst.family != place->src.family ||
	    (place->dst.family != AF_INET && place->dst.family != AF_INET6))
		return -EINVAL;
	if (!p->esn && p->seq_start > UINT32_MAX)
		return -EINVAL;		/* 32-bit numbers cannot start there */

	window = p->replay_window != 0 ? p->replay_window :
	    OVERLAY_REPLAY_DEFAULT;
	if (window > XFRM_REPLAY_KERNEL_MAX)
		window = XFRM_REPLAY_KERNEL_MAX;
	bmp_len = window / 32;

	memset(&info, 0, sizeof(info));
	info.family = place->dst.family;
	info.sel.family = place->dst.family;
	xfrm_nl_addr(&info.id.daddr, &place->dst);
	xfrm_nl_addr(&info.saddr, &place->src);
	info.id.spi = htonl(p->spi);
	info.id.proto = IPPROTO_ESP;
	info.mode = XFRM_MODE_TRANSPORT;
	info.reqid = place->reqid;
	info.replay_window = 0;	/* the ESN attribute carries the window */
	info.flags = p->esn ? XFRM_STATE_ESN : 0;
	info.lft.soft_byte_limit = xfrm_nl_limit(p->soft.bytes);
	info.lft.hard_byte_limit = xfrm_nl_limit(p->hard.bytes);
	info.lft.soft_packet_limit = xfrm_nl_limit(p->soft.packets);
	info.lft.hard_packet_limit = xfrm_nl_limit(p->hard.packets);
	info.lft.soft_add_expires_seconds = p->soft.seconds;
	info.lft.hard_add_expires_seconds = p->hard.seconds;

	msg = nlmsg_alloc_simple(cmd, NLM_F_REQUEST | NLM_F_ACK);
	if (msg == NULL)
		return -ENOMEM;
	if (nlmsg_append(msg, &info, sizeof(info), NLMSG_ALIGNTO) < 0)
		goto toolong;

	/* RFC 4106: the AEAD key is key || 4-byte salt, lengths in bits. */
	a = nla_reserve(msg, XFRMA_ALG_AEAD,
	    sizeof(*aead) + keylen + OVERLAY_SALT_LEN);
	if (a == NULL)
		goto toolong;
	aead = nla_data(a);
	memset(aead, 0, sizeof(*aead));
	strcpy(aead->alg_name, "rfc4106(gcm(aes))");
	aead->alg_key_len = (keylen + OVERLAY_SALT_LEN) * 8;
	aead->alg_icv_len = 128;
	memcpy(aead->alg_key, p->key, keylen);
	memcpy(aead->alg_key + keylen, p->salt, OVERLAY_SALT_LEN);

	/* RFC 3948 ESP-in-UDP; the original address is unused (transport). */
	memset(&encap, 0, sizeof(encap));
	encap.encap_type = UDP_ENCAP_ESPINUDP;
	encap.encap_sport = htons(place->sport);
	encap.encap_dport = htons(place->dport);
	if (nla_put(msg, XFRMA_ENCAP, sizeof(encap), &encap) < 0)
		goto toolong;
	/* Inbound: one XFRM_MSG_MAPPING per new peer port, not one per
	 * packet (without it the kernel sends one per packet). */
	if (p->dir == OVERLAY_DIR_IN && nla_put_u32(msg, XFRMA_MTIMER_THRESH,
	    XFRM_MAPPING_MAXAGE_S) < 0)
		goto toolong;

	a = nla_reserve(msg, XFRMA_REPLAY_ESN_VAL,
	    sizeof(*esn) + bmp_len * sizeof(uint32_t));
	if (a == NULL)
		goto toolong;
	esn = nla_data(a);
	memset(esn, 0, sizeof(*esn) + bmp_len * sizeof(uint32_t));
	esn->bmp_len = bmp_len;
	esn->replay_window = window;
	if (p->dir == OVERLAY_DIR_OUT) {
		/* The first packet carries seq_start + 1. */
		esn->oseq = (uint32_t)p->seq_start;
		esn->oseq_hi = (uint32_t)(p->seq_start >> 32);
	}
	*out = msg;
	return 0;

toolong:
	xfrm_nl_free(msg);
	return -EMSGSIZE;
}

int
xfrm_nl_migrate_msg(const struct xfrm_selector *sel, int dir,
    const struct xfrm_nl_move *mv, size_t n, uint16_t sport, uint16_t dport,
    struct nl_msg **out)
{
	struct xfrm_userpolicy_id pid;
	struct xfrm_user_migrate um[XFRM_MIGRATE_MAX];
	struct xfrm_encap_tmpl encap;
	struct nl_msg *msg;
	sa_family_t fam;
	size_t i;

	*out = NULL;
	if (n == 0 || n > XFRM_MIGRATE_MAX)
		return -EINVAL;
	fam = mv[0].from.dst.family;
	if (fam != AF_INET && fam != AF_INET6)
		return -EINVAL;
	memset(um, 0, sizeof(um));
	for (i = 0; i < n; i++) {
		const struct xfrm_nl_move *m = &mv[i];

		if (m->from.dst.family != fam || m->from.src.family != fam ||
		    m->to.dst.family != fam || m->to.src.family != fam ||
		    m->from.reqid == 0)
			return -EINVAL;
		xfrm_nl_addr(&um[i].old_daddr, &m->from.dst);
		xfrm_nl_addr(&um[i].old_saddr, &m->from.src);
		xfrm_nl_addr(&um[i].new_daddr, &m->to.dst);
		xfrm_nl_addr(&um[i].new_saddr, &m->to.src);
		um[i].proto = IPPROTO_ESP;
		um[i].mode = XFRM_MODE_TRANSPORT;
		um[i].reqid = m->from.reqid;
		um[i].old_family = fam;
		um[i].new_family = fam;
	}
	memset(&pid, 0, sizeof(pid));
	pid.sel = *sel;
	pid.dir = (uint8_t)dir;
	memset(&encap, 0, sizeof(encap));
	encap.encap_type = UDP_ENCAP_ESPINUDP;
	encap.encap_sport = htons(sport);
	encap.encap_dport = htons(dport);

	msg = nlmsg_alloc_simple(XFRM_MSG_MIGRATE, NLM_F_REQUEST | NLM_F_ACK);
	if (msg == NULL)
		return -ENOMEM;
	/* The kernel reads XFRMA_MIGRATE as one array of entries. */
	if (nlmsg_append(msg, &pid, sizeof(pid), NLMSG_ALIGNTO) < 0 ||
	    nla_put(msg, XFRMA_MIGRATE, (int)(n * sizeof(um[0])), um) < 0 ||
	    nla_put(msg, XFRMA_ENCAP, sizeof(encap), &encap) < 0) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	*out = msg;
	return 0;
}

void
xfrm_nl_free(struct nl_msg *msg)
{
	struct nlmsghdr *nlh;

	if (msg == NULL)
		return;
	nlh = nlmsg_hdr(msg);
	explicit_bzero(nlh, nlh->nlmsg_len);
	nlmsg_free(msg);
}

struct nl_sock *
xfrm_nl_open(int protocol)
{
	struct timeval tmo = { .tv_sec = XFRM_NL_ANSWER_S };
	struct nl_sock *sk;
	int one = 1;

	sk = nl_socket_alloc();
	if (sk == NULL)
		return NULL;
	if (nl_connect(sk, protocol) < 0) {
		nl_socket_free(sk);
		return NULL;
	}
	nl_socket_set_buffer_size(sk, 1 << 20, 1 << 20);
	/*
	 * One recvmsg per answer instead of a peek and a read: a 64 KiB
	 * buffer holds any message the kernel sends us (dump chunks are at
	 * most 32 KiB).
	 */
	nl_socket_disable_msg_peek(sk);
	(void)nl_socket_set_msg_buf_size(sk, 1 << 16);
	/*
	 * The kernel answers a request within the sendmsg() that carries it
	 * (and a dump's parts within the recvmsg() that asks for them), so
	 * waiting means the answer will never come.  Bound the wait: the
	 * agent's event loop turns it into a failed call that is retried,
	 * instead of blocking for good.
	 */
	(void)setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVTIMEO, &tmo,
	    sizeof(tmo));
	/* Both are best effort: old kernels answer without them. */
	(void)setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_CAP_ACK,
	    &one, sizeof(one));
	(void)setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK,
	    &one, sizeof(one));
	return sk;
}

/* The NLMSGERR_ATTR_MSG text of an error message, or NULL. */
static const char *
xfrm_nl_extack(struct nlmsghdr *nlh)
{
	struct nlmsgerr *e = nlmsg_data(nlh);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	size_t off;
	int len;

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NULL;
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	len = (int)nlmsg_datalen(nlh) - (int)off;
	if (len <= 0)
		return NULL;
	if (nla_parse(tb, NLMSGERR_ATTR_MAX,
	    (struct nlattr *)((char *)e + NLMSG_ALIGN(off)), len, NULL) < 0)
		return NULL;
	if (tb[NLMSGERR_ATTR_MSG] == NULL || nla_len(tb[NLMSGERR_ATTR_MSG]) < 1)
		return NULL;
	/* The kernel NUL-terminates; refuse anything that is not. */
	if (((char *)nla_data(tb[NLMSGERR_ATTR_MSG]))
	    [nla_len(tb[NLMSGERR_ATTR_MSG]) - 1] != '\0')
		return NULL;
	return nla_data(tb[NLMSGERR_ATTR_MSG]);
}

/*
 * Drop whatever waits on sk before a request: nothing should (each call
 * reads up to its own ack), but an answer left behind, as libnl's own
 * readers left them on a socket they shared with us, piles up until the
 * kernel drops every answer to the socket, acks included, silently once
 * congested.  Emptying the queue also clears that congestion.  Logged:
 * a leftover means a reader that does not read up to its ack.
 */
static void
xfrm_nl_drain(struct nl_sock *sk, unsigned type)
{
	unsigned char b[64];
	unsigned n = 0, lost = 0;
	ssize_t r;

	for (;;) {
		r = recv(nl_socket_get_fd(sk), b, sizeof(b), MSG_DONTWAIT);
		if (r < 0 && errno == ENOBUFS) {
			lost++;		/* the kernel dropped some: go on */
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n++;
	}
	explicit_bzero(b, sizeof(b));	/* could be the start of an SA */
	if (n > 0 || lost > 0)
		log_warnx("xfrm: netlink: %u stale message(s)%s dropped before "
		    "message type %u", n, lost > 0 ? " (and an overrun)" : "",
		    type);
}

int
xfrm_nl_talk(struct nl_sock *sk, struct nl_msg *msg, xfrm_nl_cb cb,
    void *arg, char *why, size_t whylen)
{
	struct nlmsghdr *nlh;
	struct sockaddr_nl peer;
	unsigned char *buf = NULL;
	uint32_t seq;
	unsigned type;
	int n, total, ret = 0, done = 0;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	nl_complete_msg(sk, msg);
	seq = nlmsg_hdr(msg)->nlmsg_seq;
	type = nlmsg_hdr(msg)->nlmsg_type;
	xfrm_nl_drain(sk, type);
	n = nl_send(sk, msg);
	xfrm_nl_free(msg);
	if (n < 0)
		return -ENOBUFS;

	while (!done) {
		n = nl_recv(sk, &peer, &buf, NULL);
		if (n <= 0) {
			free(buf);
			if (n == -NLE_AGAIN) {
				log_warnx("xfrm: netlink: no answer to message "
				    "type %u (seq %u) in %d s", type, seq,
				    XFRM_NL_ANSWER_S);
				return -ETIMEDOUT;
			}
			return -EIO;
		}
		total = n;
		for (nlh = (struct nlmsghdr *)buf; nlmsg_ok(nlh, n);
		    nlh = nlmsg_next(nlh, &n)) {
			if (nlh->nlmsg_seq != seq)
				continue;	/* a late answer to an old request */
			if (nlh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				continue;
			}
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = nlmsg_data(nlh);
				const char *t = xfrm_nl_extack(nlh);

				if (e->error != 0 && ret == 0)
					ret = e->error;
				if (t != NULL && why != NULL)
					snprintf(why, whylen, "%s", t);
				done = 1;
				continue;
			}
			/* A GET answer is followed by its ack, a dump by DONE. */
			if (cb != NULL && ret == 0)
				ret = cb(nlh, arg);
		}
		/* The buffer may hold key bytes (SA dumps): wipe it. */
		explicit_bzero(buf, (size_t)total);
		free(buf);
		buf = NULL;
	}
	return ret;
}

int
xfrm_nl_batch(struct nl_sock *sk, struct nl_msg **msgs, size_t n, int *errs,
    char (*why)[XFRM_NL_WHY_LEN])
{
	struct nlmsghdr *nlh;
	struct sockaddr_nl peer;
	unsigned char *buf = NULL, *out;
	uint32_t seq[XFRM_NL_BATCH_MAX];
	size_t i, len = 0, off = 0, left = n;
	int r, total, ret = 0;

	if (n == 0 || n > XFRM_NL_BATCH_MAX) {
		for (i = 0; i < n; i++) {
			xfrm_nl_free(msgs[i]);
			errs[i] = -EINVAL;
		}
		return n == 0 ? 0 : -EINVAL;
	}
	for (i = 0; i < n; i++) {
		nlmsg_hdr(msgs[i])->nlmsg_flags |= NLM_F_ACK;
		nl_complete_msg(sk, msgs[i]);
		seq[i] = nlmsg_hdr(msgs[i])->nlmsg_seq;
		len += NLMSG_ALIGN(nlmsg_hdr(msgs[i])->nlmsg_len);
		errs[i] = 1;		/* no ack yet */
		why[i][0] = '\0';
	}
	if ((out = calloc(1, len)) != NULL)
		for (i = 0; i < n; i++) {
			nlh = nlmsg_hdr(msgs[i]);
			memcpy(out + off, nlh, nlh->nlmsg_len);
			off += NLMSG_ALIGN(nlh->nlmsg_len);
		}
	xfrm_nl_drain(sk, nlmsg_hdr(msgs[0])->nlmsg_type);
	for (i = 0; i < n; i++)
		xfrm_nl_free(msgs[i]);
	r = out != NULL ? nl_sendto(sk, out, len) : -NLE_NOMEM;
	if (out != NULL) {
		explicit_bzero(out, len);	/* key bytes */
		free(out);
	}
	if (r < 0) {
		for (i = 0; i < n; i++)
			errs[i] = -ENOBUFS;
		return -ENOBUFS;
	}

	while (left > 0) {
		if ((r = nl_recv(sk, &peer, &buf, NULL)) <= 0) {
			free(buf);
			if (r == -NLE_AGAIN)
				log_warnx("xfrm: netlink: %zu of %zu answers to "
				    "a batch (seq %u..) missing after %d s", left,
				    n, seq[0], XFRM_NL_ANSWER_S);
			break;
		}
		total = r;
		for (nlh = (struct nlmsghdr *)buf; nlmsg_ok(nlh, r);
		    nlh = nlmsg_next(nlh, &r)) {
			struct nlmsgerr *e;
			const char *t;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			/* Sequence numbers run on from seq[0]; anything
			 * else is a late answer to an old request. */
			i = nlh->nlmsg_seq - seq[0];
			if (i >= n || seq[i] != nlh->nlmsg_seq || errs[i] != 1)
				continue;
			e = nlmsg_data(nlh);
			errs[i] = e->error;
			if (e->error != 0 && (t = xfrm_nl_extack(nlh)) != NULL)
				snprintf(why[i], XFRM_NL_WHY_LEN, "%s", t);
			left--;
		}
		explicit_bzero(buf, (size_t)total);
		free(buf);
		buf = NULL;
	}
	for (i = 0; i < n; i++) {
		if (errs[i] == 1)
			errs[i] = -EIO;
		if (errs[i] != 0 && ret == 0)
			ret = errs[i];
	}
	return ret;
}
