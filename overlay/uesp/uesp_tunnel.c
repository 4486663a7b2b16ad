/*
 * uesp_tunnel.c — per-tunnel packet processing of the userspace ESP
 * backend: encapsulate + seal outbound, open + check + decapsulate inbound,
 * and count every drop by reason.  See uesp_tunnel.h.
 */
#include "overlay/uesp/uesp_tunnel.h"

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
	return sa;
}

void
uesp_tunnel_sa_free(struct uesp_sa *sa)
{
	if (sa == NULL)
		return;
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
	return t;
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

int
uesp_tunnel_rx(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    uint8_t **inner, size_t *inner_len)
{
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
	switch (esp_open(sa->esp, buf, len, &pl, &pllen, &nh, &seq)) {
	case ESP_OK:
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
	t->st.rx_packets++;
	t->st.rx_bytes += *inner_len;
	return 1;
}
