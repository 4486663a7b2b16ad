/*
 * uesp_cfg.h — the static tunnel file of meshwan-uesp: parse and validate
 * it (jansson), print it normalised with keys redacted (-n), and reconcile
 * a running backend to it through overlay_ops (used at start and on every
 * SIGHUP).  Reconciling goes through the generic interface, so it works
 * with the null backend too (tests/unit/test_overlay.c checks the order).
 *
 * The file (JSON; every field checked, unknown fields refused):
 *   { "port": 4500, "bind": "ADDR", "workers": 0, "keepalive": 20,
 *     "udp_gso": true,
 *     "tunnels": [ { "id": 1, "device": "uesp0", "encap": "gre"|"vxlan",
 *       "vni": 42, "local": "ADDR", "remote": "ADDR", "remote_port": 4500,
 *       "inner": "169.254.0.0/31", "peer": "169.254.0.1", "mtu": 1400,
 *       "allowed": ["10.1.0.0/16", "2001:db8:1::/48"],
 *       "spi_out": 4097,
 *       "sas": [ { "dir": "in"|"out", "spi": 4096,
 *                  "cipher": "aes-gcm-128"|"aes-gcm-256",
 *                  "key": "HEX", "salt": "HEX8", "esn": true,
 *                  "replay_window": 1024,
 *                  "soft": {"bytes":0,"packets":0,"seconds":0},
 *                  "hard": {...} } ] } ] }
 * The top-level options apply at start only (a reload keeps them).
 * Only remote and inner/peer/mtu/device/id/sas are required per tunnel
 * (and vni for VXLAN); spi_out may be left out when the tunnel has exactly
 * one outbound SA.  Across the file an inbound SPI appears once and an
 * outbound key and salt once (overlay.h).  "allowed" (default: none) lists
 * the inner source prefixes accepted from the peer besides its tunnel
 * address.  The key bytes stay in memory only while needed and are
 * wiped by uesp_cfg_free; they are never printed.
 */
#ifndef MESHWAN_UESP_CFG_H
#define MESHWAN_UESP_CFG_H

#include <stdio.h>

#include "overlay/overlay.h"

#define UESP_CFG_TUNNELS_MAX	1024
#define UESP_CFG_SAS_MAX	16	/* per tunnel, both directions */

struct uesp_cfg_tunnel {
	struct overlay_tunnel_params p;
	uint32_t spi_out;	/* 0 = none (fail closed) */
	unsigned nsa;
	struct overlay_sa_params sa[UESP_CFG_SAS_MAX];
};

struct uesp_cfg {
	struct overlay_init_params init;
	unsigned ntunnels;
	struct uesp_cfg_tunnel *tunnels;
};

/* Parse and validate path: a new config, or NULL (every error logged). */
struct uesp_cfg *uesp_cfg_load(const char *path);
/* Empty config (no tunnels), the state before the first apply: room for
 * UESP_CFG_TUNNELS_MAX tunnels, as uesp_cfg_apply's `cur` needs. */
struct uesp_cfg *uesp_cfg_empty(void);
/* Wipes keys and frees; NULL ok. */
void uesp_cfg_free(struct uesp_cfg *c);
/* The normalised form, keys redacted: 0 or -1. */
int uesp_cfg_print(const struct uesp_cfg *c, FILE *out);

/*
 * Make the backend hold `want`, given that it holds *cur.  First, with no
 * change made: refuse (-EEXIST) a `want` that would re-create a running
 * outbound SA's key on another SA (a re-made tunnel, another SPI): its
 * nonces would start again.  Then, so a rekey drops nothing: remove
 * tunnels that went away or must be re-made; add/update tunnels; add
 * inbound SAs, add outbound SAs (an SA whose lifetimes alone changed is
 * updated in place), switch outbound SAs; then remove the SAs no longer
 * wanted.  *cur is updated after every
 * successful step, so after a failure it still says exactly what the
 * backend holds and the next apply resumes from there.  0, or the first
 * -errno (logged).
 */
int uesp_cfg_apply(const struct overlay_ops *ops, void *ctx,
    struct uesp_cfg *cur, const struct uesp_cfg *want);

#endif
