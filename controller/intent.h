/*
 * intent.h — turns the compiler's per-edge views (controller/topo.h) into
 * the wire structs of proto/msg.h, and computes what changed between two
 * intents of one edge.
 *
 * The compiler knows topology; the session layer knows what each edge has
 * been sent.  This file is the bridge: it adds what topo does not carry
 * (LAN prefixes, and from them each peer's allowed prefixes, peers'
 * certificates and epoch keys, SPIs of the current
 * SA epoch, the CA chain, session timers) through a small lookup
 * interface, so it stays free of the store and of sockets and can be
 * unit tested.
 */
#ifndef MESHWAN_CONTROLLER_INTENT_H
#define MESHWAN_CONTROLLER_INTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"
#include "proto/msg.h"

struct topo_output;
struct topo_view;

/*
 * The active SA of each direction of one tunnel as seen from one end:
 * in = peer -> this end, out = this end -> peer (Tunnel.sa_in/sa_out).
 * All zero = no SA yet.
 */
struct intent_spis {
	struct msg_sa_key_ref in;
	struct msg_sa_key_ref out;
};

/* What intent_build looks up beyond the compiler's output. */
struct intent_lookup {
	void *arg;
	/* LAN prefixes of a site (borrowed until the call returns). */
	void (*prefixes)(void *arg, uint64_t site_id,
	    const struct model_prefix **p, size_t *n);
	/* A site's edge certificate (DER), or NULL/len 0 if not enrolled;
	 * made by msg_blob_set, so each tunnel shares it, not copies it. */
	const struct msg_blob *(*cert)(void *arg, uint64_t site_id);
	/* The active SA of each direction of a tunnel from site_id's
	 * point of view (SPI, SA epoch, both key epochs). */
	void (*spis)(void *arg, uint64_t tunnel_id, uint64_t site_id,
	    struct intent_spis *out);
	/* A site's verified epoch public keys, oldest first, at most
	 * MSG_PEER_KEYS_MAX (borrowed until the call returns); NULL
	 * callback or *n == 0: none.  They go into Tunnel.peer.keys, so the
	 * intent alone lets an edge derive SA keys with each peer. */
	void (*keys)(void *arg, uint64_t site_id,
	    const struct msg_peer_key **k, size_t *n);
};

/*
 * A memo of what each hub carries (topo_hub_carries and those sites'
 * prefixes), for the tunnels of many spokes to one hub: without it each
 * such tunnel walks and sorts all the hub's sites, so rebuilding 10,000
 * spokes of a 10,000-site hub-and-spoke network is quadratic.  Entries
 * follow the topology's topo_stamp by themselves; call intent_memo_reset
 * when the sites' prefixes (intent_lookup.prefixes) change.  One thread.
 */
struct intent_memo;

struct intent_memo *intent_memo_new(void);   /* NULL on ENOMEM */
void intent_memo_reset(struct intent_memo *m);
void intent_memo_free(struct intent_memo *m);   /* NULL safe */

struct intent_params {
	const struct topo_output *topo;
	struct intent_memo *memo;       /* optional (NULL: none) */
	const struct intent_lookup *lookup;
	const uint8_t *ca_der;          /* CA chain sent to every edge */
	size_t ca_der_len;
	uint32_t keepalive_s;
	uint32_t headless_grace_s;
	/* Dual stack: each tunnel's /127 from pool6 at its /31's offset in
	 * pool4 (model_inner6); pool6.family 0 = IPv4 only. */
	struct model_prefix pool4;
	struct model_prefix pool6;
};

/*
 * Build the whole intent of site_id at version.  out is overwritten;
 * release with msg_intent_free.  The tunnel array has room for
 * util_size_class(n_tunnels), as proto/msg.c sizes the arrays it grows,
 * so a caller adding a few tunnels grows it in place.  0, or -1 with err set (site unknown to
 * the compiler, an address that does not parse, or no memory).  The
 * result is not validated against the wire contract's limits: the
 * caller's pbconv_intent_hash/encode do that (msg_validate_intent says
 * why when they fail).
 */
int intent_build(const struct intent_params *p, uint64_t site_id,
    uint64_t version, struct msg_intent *out, char *err, size_t errlen);

/*
 * Build one tunnel of site_id's intent from its view (topo_edge_view),
 * exactly as intent_build does for each: lets the session layer rebuild
 * only the tunnels a change can touch.  *out is overwritten; release with
 * msg_tunnel_free.  0, or -1 with err set.
 */
int intent_build_tunnel(const struct intent_params *p, uint64_t site_id,
    const struct topo_view *v, struct msg_tunnel *out, char *err,
    size_t errlen);

/* What happened to one tunnel id between two versions. */
enum intent_op {
	INTENT_OP_ADD = 1,     /* not in the old intent */
	INTENT_OP_CHANGE,      /* in both, content differs */
	INTENT_OP_REMOVE,      /* not in the new intent */
};

struct intent_change {
	uint64_t tunnel_id;
	enum intent_op op;
};

/*
 * Compare old and new intents of one edge (both from intent_build:
 * tunnels in id order).  *changes (malloc'd, caller frees; NULL when
 * none) lists every tunnel id that differs, sorted by id; *site_changed
 * says whether the site part differs.  Intent-level fields (CA chain,
 * timers) are not compared: the caller checks them.  0, or -1 on ENOMEM
 * or unsorted input.
 */
int intent_diff(const struct msg_intent *old_i, const struct msg_intent *new_i,
    struct intent_change **changes, size_t *n, bool *site_changed);

#endif
