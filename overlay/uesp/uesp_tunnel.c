/*
 * uesp_tunnel.c — per-tunnel packet processing of the userspace ESP
 * backend: encapsulate + seal outbound, open + check + decapsulate inbound,
 * and count every drop by reason.  See uesp_tunnel.h.
 */
#include "overlay/uesp/uesp_tunnel.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

struct uesp_sa *
uesp_tunnel_sa_new(const struct overlay_sa_params *p, uint64_t now_ms)
{
	struct esp_sa_params ep;
	struct uesp_sa *sa;

	sa = calloc(1, sizeof(*sa));
	if (sa == NULL)
		return NULL;
	memset(&ep, 0, sizeof(ep));
	ep.spi = p->spi;
	ep.cipher = p->cipher == OVERLAY_AES_GCM_128 ? ESP_AES_GCM_128 :
	    ESP_AES_GCM_256;
	ep.key = p->key;
	ep.salt = p->salt;
	ep.esn = p->esn;
	ep.replay_window = p->replay_window ? p->replay_window :
	    OVERLAY_REPLAY_DEFAULT;
	ep.seq_start = p->seq_start;
	sa->esp = esp_sa_new(&ep, p->dir == OVERLAY_DIR_IN);
	if (sa->esp == NULL) {
		free(sa);
		return NULL;
	}
	sa->spi = p->spi;
	sa->dir = p->dir;
	sa->soft = p->soft;
	sa->hard = p->hard;
	sa->added_ms = now_ms;
	sa->cipher = p->cipher;
	sa->esn = p->esn;
	sa->replay_window = p->replay_window;
	return sa;
}

void
uesp_tunnel_sa_free(struct uesp_sa *sa)
{
	if (sa == NULL)
		return;
	uesp_seq_release(sa->res);
	esp_sa_free(sa->esp);
	util_wipe(sa, sizeof(*sa));
	free(sa);
}

void
uesp_tunnel_sa_stats(const struct uesp_sa *sa, bool active, uint64_t now_ms,
    struct overlay_sa_stats *out)
{
	struct esp_sa_stats es;

	esp_sa_stats(sa->esp, &es);
	memset(out, 0, sizeof(*out));
	out->spi = sa->spi;
	out->dir = sa->dir;
	out->active = active;
	out->soft_expired = sa->soft_expired;
	out->hard_expired = sa->hard_expired;
	out->packets = es.packets;
	out->bytes = es.bytes;
	out->seq = es.seq;
	out->age_s = now_ms > sa->added_ms ? (now_ms - sa->added_ms) / 1000 : 0;
	out->auth = es.auth;
	out->replay = es.replay;
	out->malformed = es.malformed + es.pad;
}

struct uesp_tunnel *
uesp_tunnel_new(const struct overlay_tunnel_params *p)
{
	struct uesp_tunnel *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->p = *p;
	t->src = p->local;
	t->dev_fd = -1;
	t->sock_fd = -1;
	uesp_tunnel_set_allowed(t);
	return t;
}

static uint32_t
uesp_tunnel_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
uesp_tunnel_get128(const uint8_t *p, uint64_t v[2])
{
	memcpy(&v[0], p, 8);
	memcpy(&v[1], p + 8, 8);
	v[0] = be64toh(v[0]);
	v[1] = be64toh(v[1]);
}

static void
uesp_tunnel_allow_add(struct uesp_allow *a, const struct overlay_prefix *p)
{
	unsigned len = p->len;

	if (p->addr.family == AF_INET) {
		a->m4[a->n4] = len == 0 ? 0 : ~(uint32_t)0 << (32 - len);
		a->a4[a->n4] = uesp_tunnel_get32(p->addr.bytes) & a->m4[a->n4];
		a->n4++;
	} else if (p->addr.family == AF_INET6) {
		uint64_t *m = a->m6[a->n6], *v = a->a6[a->n6];

		m[0] = len == 0 ? 0 : len >= 64 ? ~(uint64_t)0 :
		    ~(uint64_t)0 << (64 - len);
		m[1] = len <= 64 ? 0 : len == 128 ? ~(uint64_t)0 :
		    ~(uint64_t)0 << (128 - len);
		uesp_tunnel_get128(p->addr.bytes, v);
		v[0] &= m[0];
		v[1] &= m[1];
		a->n6++;
	}
}

void
uesp_tunnel_set_allowed(struct uesp_tunnel *t)
{
	struct overlay_prefix peer, ll;
	unsigned i;

	memset(&t->allow, 0, sizeof(t->allow));
	/* The peer's tunnel address first: most packets come from it. */
	if (t->p.inner_peer.family == AF_INET) {
		memset(&peer, 0, sizeof(peer));
		peer.addr = t->p.inner_peer;
		peer.len = 32;
		uesp_tunnel_allow_add(&t->allow, &peer);
	}
	if (t->p.inner_peer6.family == AF_INET6) {
		memset(&peer, 0, sizeof(peer));
		peer.addr = t->p.inner_peer6;
		peer.len = 128;
		uesp_tunnel_allow_add(&t->allow, &peer);
	}
	/* IPv6 link-local: neighbour discovery; never forwarded. */
	memset(&ll, 0, sizeof(ll));
	ll.addr.family = AF_INET6;
	ll.addr.bytes[0] = 0xfe;
	ll.addr.bytes[1] = 0x80;
	ll.len = 10;
	uesp_tunnel_allow_add(&t->allow, &ll);
	for (i = 0; i < t->p.nallowed && i < OVERLAY_ALLOWED_MAX; i++)
		uesp_tunnel_allow_add(&t->allow, &t->p.allowed[i]);
}

static bool
uesp_tunnel_v4_ok(const struct uesp_allow *a, const uint8_t *src)
{
	uint32_t v = uesp_tunnel_get32(src);
	unsigned i;

	for (i = 0; i < a->n4; i++)
		if ((v & a->m4[i]) == a->a4[i])
			return true;
	return false;
}

static bool
uesp_tunnel_v6_ok(const struct uesp_allow *a, const uint8_t *src)
{
	uint64_t v[2];
	unsigned i;

	uesp_tunnel_get128(src, v);
	for (i = 0; i < a->n6; i++)
		if ((v[0] & a->m6[i][0]) == a->a6[i][0] &&
		    (v[1] & a->m6[i][1]) == a->a6[i][1])
			return true;
	return false;
}

/* An IP packet of the given version whose source is allowed. */
static bool
uesp_tunnel_ip_ok(const struct uesp_allow *a, const uint8_t *ip, size_t len,
    unsigned version)
{
	if (len < 1 || ip[0] >> 4 != version)
		return false;
	if (version == 4)
		return len >= 20 && uesp_tunnel_v4_ok(a, ip + 12);
	return len >= 40 && uesp_tunnel_v6_ok(a, ip + 8);
}

/*
 * The inner packet's source is one the peer may use.  GRE: the IP
 * source.  VXLAN: IPv4/IPv6 by their source, ARP by its sender address
 * (a forged one would poison our neighbour cache), behind at most one
 * 802.1Q tag; any other frame is refused.
 */
static bool
uesp_tunnel_src_ok(const struct uesp_tunnel *t, const uint8_t *in, size_t len)
{
	const struct uesp_allow *a = &t->allow;
	const uint8_t *pl;
	size_t off = 12;
	unsigned type;

	if (t->p.encap == OVERLAY_ENCAP_GRE)
		return len >= 1 && uesp_tunnel_ip_ok(a, in, len, in[0] >> 4);
	if (len < UESP_ETH_HLEN)
		return false;
	type = (unsigned)in[12] << 8 | in[13];
	if (type == 0x8100) {
		if (len < UESP_ETH_HLEN + 4)
			return false;
		off = 16;
		type = (unsigned)in[16] << 8 | in[17];
	}
	pl = in + off + 2;
	len -= off + 2;
	switch (type) {
	case 0x0800:
		return uesp_tunnel_ip_ok(a, pl, len, 4);
	case 0x86dd:
		return uesp_tunnel_ip_ok(a, pl, len, 6);
	case 0x0806:	/* Ethernet/IPv4 ARP: sender protocol address */
		return len >= 28 && pl[0] == 0 && pl[1] == 1 && pl[2] == 8 &&
		    pl[3] == 0 && pl[4] == 6 && pl[5] == 4 &&
		    uesp_tunnel_v4_ok(a, pl + 14);
	}
	return false;
}

void
uesp_tunnel_free(struct uesp_tunnel *t)
{
	unsigned i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nin; i++)
		uesp_tunnel_sa_free(t->in[i]);
	for (i = 0; i < t->nout; i++)
		uesp_tunnel_sa_free(t->out[i]);
	free(t);
}

struct uesp_sa *
uesp_tunnel_sa_find(struct uesp_tunnel *t, uint32_t spi, enum overlay_dir dir)
{
	struct uesp_sa **v = dir == OVERLAY_DIR_IN ? t->in : t->out;
	unsigned n = dir == OVERLAY_DIR_IN ? t->nin : t->nout;
	unsigned i;

	for (i = 0; i < n; i++)
		if (v[i]->spi == spi)
			return v[i];
	return NULL;
}

int
uesp_tunnel_sa_insert(struct uesp_tunnel *t, struct uesp_sa *sa)
{
	struct uesp_sa **v = sa->dir == OVERLAY_DIR_IN ? t->in : t->out;
	unsigned *n = sa->dir == OVERLAY_DIR_IN ? &t->nin : &t->nout;

	if (uesp_tunnel_sa_find(t, sa->spi, sa->dir) != NULL)
		return -EEXIST;
	if (*n >= UESP_SA_MAX)
		return -ENOSPC;
	v[(*n)++] = sa;
	return 0;
}

struct uesp_sa *
uesp_tunnel_sa_remove(struct uesp_tunnel *t, uint32_t spi, enum overlay_dir dir)
{
	struct uesp_sa **v = dir == OVERLAY_DIR_IN ? t->in : t->out;
	unsigned *n = dir == OVERLAY_DIR_IN ? &t->nin : &t->nout;
	struct uesp_sa *sa;
	unsigned i;

	for (i = 0; i < *n; i++) {
		if (v[i]->spi != spi)
			continue;
		sa = v[i];
		v[i] = v[--(*n)];
		v[*n] = NULL;
		if (t->active == sa)
			t->active = NULL;
		return sa;
	}
	return NULL;
}

int
uesp_tunnel_sa_switch(struct uesp_tunnel *t, uint32_t spi)
{
	struct uesp_sa *sa;

	if ((sa = uesp_tunnel_sa_find(t, spi, OVERLAY_DIR_OUT)) == NULL)
		return -ENOENT;
	t->active = sa;
	return 0;
}

static void uesp_tunnel_sa_tick(struct uesp_tunnel *t, struct uesp_sa *sa,
    uint64_t now_ms);

int
uesp_tunnel_sa_update(struct uesp_tunnel *t, const struct overlay_sa_params *p,
    const uint8_t *kd, uint64_t now_ms)
{
	struct uesp_sa *sa;

	if ((sa = uesp_tunnel_sa_find(t, p->spi, p->dir)) == NULL)
		return -ENOENT;
	if (sa->cipher != p->cipher || sa->esn != p->esn ||
	    sa->replay_window != p->replay_window ||
	    memcmp(sa->kd, kd, sizeof(sa->kd)) != 0) {
		log_warnx("uesp: tunnel %llu SA %s %u: only lifetimes change in "
		    "place (a new key is a new SA)", (unsigned long long)t->p.id,
		    overlay_dir_str(p->dir), p->spi);
		return -EINVAL;
	}
	sa->soft = p->soft;
	sa->hard = p->hard;
	/* Judged again against the new limits at once. */
	sa->soft_expired = sa->hard_expired = false;
	uesp_tunnel_sa_tick(t, sa, now_ms);
	return 0;
}

static bool
uesp_tunnel_over(const struct overlay_lifetime *l, const struct uesp_sa *sa)
{
	return (l->bytes != 0 && sa->bytes >= l->bytes) ||
	    (l->packets != 0 && sa->packets >= l->packets);
}

static void
uesp_tunnel_sa_tick(struct uesp_tunnel *t, struct uesp_sa *sa, uint64_t now_ms)
{
	uint64_t age_s = (now_ms - sa->added_ms) / 1000;

	if (!sa->soft_expired && (uesp_tunnel_over(&sa->soft, sa) ||
	    (sa->soft.seconds != 0 && age_s >= sa->soft.seconds))) {
		sa->soft_expired = true;
		log_info("uesp: tunnel %llu SA %s %u: soft lifetime reached",
		    (unsigned long long)t->p.id, overlay_dir_str(sa->dir),
		    sa->spi);
	}
	if (!sa->hard_expired && (uesp_tunnel_over(&sa->hard, sa) ||
	    (sa->hard.seconds != 0 && age_s >= sa->hard.seconds))) {
		sa->hard_expired = true;
		log_warnx("uesp: tunnel %llu SA %s %u: hard lifetime reached, "
		    "SA no longer used", (unsigned long long)t->p.id,
		    overlay_dir_str(sa->dir), sa->spi);
	}
}

void
uesp_tunnel_tick(struct uesp_tunnel *t, uint64_t now_ms)
{
	unsigned i;

	for (i = 0; i < t->nin; i++)
		uesp_tunnel_sa_tick(t, t->in[i], now_ms);
	for (i = 0; i < t->nout; i++)
		uesp_tunnel_sa_tick(t, t->out[i], now_ms);
}

void
uesp_tunnel_stats(const struct uesp_tunnel *t, struct overlay_tunnel_stats *out)
{
	*out = t->st;
	out->spi_out = t->active != NULL ? t->active->spi : 0;
	out->sa_in = t->nin;
	out->sa_out = t->nout;
}

/* Counting and the hard limit by volume, checked per packet. */
static void
uesp_tunnel_sa_account(struct uesp_sa *sa, size_t len)
{
	sa->packets++;
	sa->bytes += len;
	if (!sa->hard_expired && uesp_tunnel_over(&sa->hard, sa))
		sa->hard_expired = true;
	if (!sa->soft_expired && uesp_tunnel_over(&sa->soft, sa))
		sa->soft_expired = true;
}

int
uesp_tunnel_tx(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    uint8_t **dgram, size_t *dlen)
{
	struct uesp_sa *sa = t->active;
	uint8_t *inner = buf + UESP_HEADROOM;
	uint8_t *pl;
	size_t pllen;
	uint8_t nh;
	int rc;

	if (sa == NULL || sa->hard_expired) {
		t->st.drops.no_sa++;
		return -1;
	}
	/* The next number must be reserved on disk (uesp_seq.h). */
	if (sa->res != NULL &&
	    !uesp_seq_allow(sa->res, esp_sa_seq(sa->esp) + 1)) {
		t->st.drops.no_sa++;
		return -1;
	}
	if (t->p.encap == OVERLAY_ENCAP_GRE) {
		pl = inner - UESP_GRE_HLEN;
		if (uesp_encap_gre_push(pl, inner, len) < 0) {
			t->st.drops.malformed++;
			return -1;
		}
		pllen = len + UESP_GRE_HLEN;
		nh = ESP_NH_GRE;
	} else {
		if (len < UESP_ETH_HLEN) {
			t->st.drops.malformed++;
			return -1;
		}
		pl = inner - UESP_VXLAN_HLEN;
		uesp_encap_vxlan_push(pl, inner, len, t->p.vni,
		    uesp_encap_vxlan_sport(inner, len), &t->src, &t->p.remote);
		pllen = len + UESP_VXLAN_HLEN;
		nh = ESP_NH_UDP;
	}
	rc = esp_seal(sa->esp, pl - ESP_HDR_LEN, pllen,
	    UESP_BUF_LEN - (size_t)(pl - ESP_HDR_LEN - buf), nh, dlen);
	if (rc != 0) {
		/* -EOVERFLOW: sequence space used up; never wrap, fail closed. */
		if (rc == -EOVERFLOW)
			sa->hard_expired = true;
		t->st.drops.no_sa++;
		return -1;
	}
	uesp_tunnel_sa_account(sa, pllen);
	*dgram = pl - ESP_HDR_LEN;
	t->st.tx_packets++;
	t->st.tx_bytes += len;
	return 0;
}

/*
 * The inbound path; from/from_port is the outer source of a datagram that
 * did not come from the tunnel's remote (NULL: it did).  Such a source is
 * recorded (overlay.h "NAT rebinding") only once the datagram passed the
 * replay window and the ICV, and only when its sequence number is the
 * highest the SA has accepted: a replayed or delayed packet, or one
 * forged from a stale address, cannot move it.
 */
static int
uesp_tunnel_rx_core(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    const struct overlay_addr *from, uint16_t from_port,
    uint8_t **inner, size_t *inner_len)
{
	struct esp_sa_stats before;
	struct uesp_sa *sa;
	uint8_t *pl;
	size_t pllen;
	uint8_t nh;
	uint64_t seq;
	uint32_t spi;
	int rc;

	if (len == 1 && buf[0] == UESP_KEEPALIVE) {
		t->st.keepalives_rx++;
		return 0;
	}
	if (len >= 4 && buf[0] == 0 && buf[1] == 0 && buf[2] == 0 &&
	    buf[3] == 0) {
		t->st.non_esp++;	/* IKE (RFC 3948 non-ESP marker) */
		return 0;
	}
	spi = esp_peek_spi(buf, len);
	if (spi == 0) {
		t->st.drops.malformed++;
		return 0;
	}
	sa = uesp_tunnel_sa_find(t, spi, OVERLAY_DIR_IN);
	if (sa == NULL) {
		t->st.drops.unknown_spi++;
		return 0;
	}
	if (sa->hard_expired) {
		t->st.drops.no_sa++;
		return 0;
	}
	if (from != NULL)
		esp_sa_stats(sa->esp, &before);
	switch (esp_open(sa->esp, buf, len, &pl, &pllen, &nh, &seq)) {
	case ESP_OK:
		if (from != NULL && seq > before.seq) {
			t->st.moved_addr = *from;
			t->st.moved_port = from_port;
			t->st.moved_rx++;
		}
		break;
	case ESP_ERR_REPLAY:
		t->st.drops.replay++;
		return 0;
	case ESP_ERR_AUTH:
		t->st.drops.auth++;
		return 0;
	case ESP_ERR_MALFORMED:
	case ESP_ERR_PAD:
	default:
		t->st.drops.malformed++;
		return 0;
	}
	uesp_tunnel_sa_account(sa, pllen);
	if (nh == ESP_NH_NONE)
		return 0;	/* dummy packet (RFC 4303 §2.6) */
	if (t->p.encap == OVERLAY_ENCAP_GRE)
		rc = nh == ESP_NH_GRE ?
		    uesp_encap_gre_pull(pl, pllen, inner, inner_len) : -1;
	else
		rc = nh == ESP_NH_UDP ? uesp_encap_vxlan_pull(pl, pllen,
		    t->p.vni, inner, inner_len) : -1;
	if (rc < 0) {
		t->st.drops.malformed++;
		return 0;
	}
	if (!uesp_tunnel_src_ok(t, *inner, *inner_len)) {
		t->st.drops.source++;
		return 0;
	}
	t->st.rx_packets++;
	t->st.rx_bytes += *inner_len;
	return 1;
}

int
uesp_tunnel_rx(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    uint8_t **inner, size_t *inner_len)
{
	return uesp_tunnel_rx_core(t, buf, len, NULL, 0, inner, inner_len);
}

int
uesp_tunnel_rx_from(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    const struct overlay_addr *from, uint16_t from_port,
    uint8_t **inner, size_t *inner_len)
{
	if (overlay_addr_eq(from, &t->p.remote) && from_port ==
	    (t->p.remote_port != 0 ? t->p.remote_port : OVERLAY_UDP_PORT))
		from = NULL;
	return uesp_tunnel_rx_core(t, buf, len, from, from_port, inner,
	    inner_len);
}
