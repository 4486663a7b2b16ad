/*
 * uesp_tunnel.h — one tunnel's data-path state and its per-packet work,
 * without any I/O: turn an inner packet into an ESP-in-UDP payload
 * (uesp_tunnel_tx) and a received UDP payload back into an inner packet or
 * a counted drop (uesp_tunnel_rx).  Keeping I/O out makes the inbound
 * checks testable byte by byte (tests/unit/test_overlay_uesp.c).
 *
 * Ownership and threads: a uesp_tunnel and the uesp_sa objects hung on it
 * belong to exactly one worker thread once added (uesp_worker.c); the
 * control thread only touches them before handing them over or after
 * taking them back.  Nothing here allocates per packet.
 */
#ifndef MESHWAN_UESP_TUNNEL_H
#define MESHWAN_UESP_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "overlay/overlay.h"
#include "overlay/uesp/esp.h"
#include "overlay/uesp/uesp_encap.h"
#include "overlay/uesp/uesp_seq.h"

#define UESP_SA_MAX	8	/* per direction per tunnel: live + draining */
/* Room before the inner packet for the ESP header and the largest encap. */
#define UESP_HEADROOM	(ESP_HDR_LEN + UESP_VXLAN_HLEN)
/* Largest inner packet/frame read from a device: MTU + Ethernet + VLAN. */
#define UESP_INNER_MAX	(OVERLAY_MTU_MAX + UESP_ETH_HLEN + 4)
/* One buffer holds any datagram we send or accept. */
#define UESP_BUF_LEN	(UESP_HEADROOM + UESP_INNER_MAX + ESP_MAX_TRAILER + 64)
#define UESP_KEEPALIVE	0xFF	/* RFC 3948 §2.3 NAT-keepalive payload */

struct uesp_sa {
	uint32_t spi;
	enum overlay_dir dir;
	struct esp_sa *esp;
	struct overlay_lifetime soft, hard;
	uint64_t added_ms;
	uint64_t packets, bytes; /* for lifetimes */
	bool soft_expired, hard_expired;
	/* What sa_update may not change; the key only as a keyed digest. */
	enum overlay_cipher cipher;
	bool esn;
	uint32_t replay_window;
	uint8_t kd[OVERLAY_KEY_DIGEST_LEN];
	/* Outbound with a reservation file: how far it may send (uesp_seq.h);
	 * released by uesp_tunnel_sa_free. */
	struct uesp_seq_res *res;
};

/* Allowed inner sources, as masks for the packet path (see overlay.h). */
struct uesp_allow {
	unsigned n4, n6;
	/* The list, plus the peer's tunnel addresses and fe80::/10. */
	uint32_t a4[OVERLAY_ALLOWED_MAX + 1], m4[OVERLAY_ALLOWED_MAX + 1];
	uint64_t a6[OVERLAY_ALLOWED_MAX + 2][2], m6[OVERLAY_ALLOWED_MAX + 2][2];
};

/* What an epoll event of a worker refers to. */
enum uesp_ev_kind { UESP_EV_CMD = 1, UESP_EV_LISTEN, UESP_EV_DEV, UESP_EV_SOCK };
struct uesp_tunnel;
struct uesp_tunnel_ev {
	enum uesp_ev_kind kind;
	struct uesp_tunnel *t;	/* for UESP_EV_DEV and UESP_EV_SOCK */
};

/* Per-tunnel drop/traffic counters live in st; st.spi_out etc. are kept up
 * to date by the insert/remove/switch functions below. */
struct uesp_tunnel {
	struct overlay_tunnel_params p;
	struct overlay_addr src; /* outer source actually used (for IPv6 csum) */
	int dev_fd;		/* TUN (GRE) or TAP (VXLAN), with a virtio_net_hdr
				 * before every packet (uesp_gso.h); -1 in tests */
	bool udp_gso;		/* sock_fd sends with UDP_SEGMENT */
	bool udp_gro;		/* sock_fd receives with UDP_GRO */
	int sock_fd;		/* UDP socket connected to the peer */
	struct uesp_sa *in[UESP_SA_MAX];
	struct uesp_sa *out[UESP_SA_MAX];
	unsigned nin, nout;
	struct uesp_sa *active;	/* one of out[], or NULL: fail closed */
	struct overlay_tunnel_stats st;
	struct uesp_allow allow;	/* from p: uesp_tunnel_set_allowed */
	uint64_t last_tx_ms;	/* for NAT keepalives on idle tunnels */
	unsigned worker;	/* index of the owning worker */
	struct uesp_tunnel_ev ev_dev, ev_sock;
};

/*
 * A new SA from validated params (overlay_sa_params_check), keyed, its
 * outbound numbers starting above p->seq_start; NULL on failure (logged).
 * The caller wipes its params and sets kd and res.  uesp_tunnel_sa_free
 * releases the reservation, wipes and frees; NULL ok.
 */
struct uesp_sa *uesp_tunnel_sa_new(const struct overlay_sa_params *p, uint64_t now_ms);
void uesp_tunnel_sa_free(struct uesp_sa *sa);
void uesp_tunnel_sa_stats(const struct uesp_sa *sa, bool active, uint64_t now_ms,
    struct overlay_sa_stats *out);

/*
 * Change an SA's lifetimes in place (overlay_ops.sa_update): 0, -ENOENT,
 * or -EINVAL when anything but the lifetimes differs (kd is the keyed
 * digest of p's key, made with the same overlay_keys as sa->kd).
 */
int uesp_tunnel_sa_update(struct uesp_tunnel *t,
    const struct overlay_sa_params *p, const uint8_t *kd, uint64_t now_ms);
/* Recompute t->allow from t->p (after tunnel_new does it, and on update). */
void uesp_tunnel_set_allowed(struct uesp_tunnel *t);

/* A tunnel with no SA; fds -1.  Frees with uesp_tunnel_free (its SAs too;
 * fds are closed by whoever opened them). */
struct uesp_tunnel *uesp_tunnel_new(const struct overlay_tunnel_params *p);
void uesp_tunnel_free(struct uesp_tunnel *t);

struct uesp_sa *uesp_tunnel_sa_find(struct uesp_tunnel *t, uint32_t spi,
    enum overlay_dir dir);
/* 0, -EEXIST (same SPI and direction), -ENOSPC (UESP_SA_MAX reached). */
int uesp_tunnel_sa_insert(struct uesp_tunnel *t, struct uesp_sa *sa);
/* Unhooks and returns the SA (the caller frees it), NULL if unknown.
 * Removing the active outbound SA leaves the tunnel failing closed. */
struct uesp_sa *uesp_tunnel_sa_remove(struct uesp_tunnel *t, uint32_t spi,
    enum overlay_dir dir);
/* 0 or -ENOENT. */
int uesp_tunnel_sa_switch(struct uesp_tunnel *t, uint32_t spi);
/* Marks SAs whose time lifetimes ran out; called about once a second. */
void uesp_tunnel_tick(struct uesp_tunnel *t, uint64_t now_ms);
/* Fill out from st plus the SA counts. */
void uesp_tunnel_stats(const struct uesp_tunnel *t,
    struct overlay_tunnel_stats *out);

/*
 * Outbound: the inner packet (GRE: IP packet; VXLAN: Ethernet frame) is at
 * buf + UESP_HEADROOM, len bytes; buf holds UESP_BUF_LEN bytes.  On 0,
 * *dgram and *dlen is the UDP payload to send (ESP packet).  -1: dropped and
 * counted (no_sa, malformed, or sequence space exhausted or not yet
 * reserved on disk as no_sa).
 */
int uesp_tunnel_tx(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    uint8_t **dgram, size_t *dlen);

/*
 * Inbound: one received UDP payload buf/len (modified in place).  Returns
 * 1 with *inner and *inner_len to deliver to the device, or 0 when the
 * datagram was consumed or dropped (counted in t->st: keepalive, non-ESP
 * marker, unknown SPI, replay, auth, malformed, no_sa, and source: an
 * inner source address the tunnel does not allow from its peer).  Nothing that fails
 * a check is ever returned for delivery.
 */
int uesp_tunnel_rx(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    uint8_t **inner, size_t *inner_len);

/*
 * The same for a datagram that reached the instance from outer source
 * from/from_port rather than through the tunnel's connected socket (the
 * peer's NAT mapping may have moved).  Every check is the same; if the
 * datagram passes them, is the newest its SA accepted and its source is
 * not the tunnel's remote, the source goes into t->st.moved_* (overlay.h
 * "NAT rebinding").
 */
int uesp_tunnel_rx_from(struct uesp_tunnel *t, uint8_t *buf, size_t len,
    const struct overlay_addr *from, uint16_t from_port,
    uint8_t **inner, size_t *inner_len);

#endif
