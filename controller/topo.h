/*
 * topo.h — the intent compiler: pure functions from the model (sites,
 * links, policy, crypto, existing tunnel allocations) to the set of
 * tunnels and each edge's view of them.
 *
 * Pure: no I/O, no clock, no database, no globals.  The caller loads the
 * model from the store, compiles, persists the tunnel changes
 * (store_tunnel_apply with the topo_change lists) and turns each affected
 * edge's views into wire messages.
 *
 * Deterministic: the same input (in any order) and the same previous
 * allocations give the same output; topo_dump() of two such outputs is
 * byte-identical.
 *
 * Stable: a tunnel is identified by (site_a, link_a, site_b, link_b) with
 * site_a < site_b.  Once it exists it keeps its id, /31 and VNI until one
 * end (site or link) disappears or the policy stops allowing it.  New
 * tunnels get ids from next_id upwards in key order and the lowest free
 * /31 and VNI.  Exceptions, only on a full compile: a previous allocation
 * whose /31 lies outside a changed pool (or whose VNI lies outside a
 * changed range, or collides) keeps its id but gets a new /31 (VNI).
 *
 * Incremental: topo_site_changed() recomputes only the pairs involving one
 * site; every tunnel not involving that site is untouched, and the
 * affected edges are that site plus every peer it had or now has.
 *
 * Cost: topo_compile is O(pairs allowed by policy × links²) time and
 * O(tunnels) memory (about 150 bytes per tunnel including both edges'
 * references); topo_site_changed is O(sites × links² + that site's
 * tunnels).
 */
#ifndef MESHWAN_TOPO_H
#define MESHWAN_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "controller/model.h"

/* The model to compile from.  Borrowed: only read during the call. */
struct topo_input {
	const struct model_policy *policy;
	const struct model_crypto *crypto;
	const struct model_site *sites;         /* any order; revoked sites are ignored */
	size_t n_sites;
};

/* Allocations already made (from store_tunnel_list); may be all zero. */
struct topo_prev {
	const struct model_tunnel *tunnels;     /* any order */
	size_t n_tunnels;
	uint64_t next_id;                       /* 0 = 1 + highest id seen */
};

/*
 * What one compile or site change did.  Arrays are owned by the struct:
 * release with topo_change_free.  All lists are sorted ascending.
 */
struct topo_change {
	uint64_t *edges;        /* site ids whose intent may have changed */
	size_t n_edges;
	uint64_t *removed;      /* tunnel ids that no longer exist */
	size_t n_removed;
	struct model_tunnel *added; /* tunnels that are new (or got a new /31 or VNI) */
	size_t n_added;
	uint64_t *removed_sites; /* sites that no longer have an intent (deleted or revoked) */
	size_t n_removed_sites;
};

/*
 * One tunnel as seen from one edge: everything the agent needs.  String
 * pointers point into the struct topo_output and stay valid until it is
 * next changed or freed.
 */
struct topo_view {
	uint64_t tunnel_id;
	uint64_t peer_site_id;
	const char *peer_name;
	const char *local_link;                 /* this site's link name */
	const char *remote_link;
	const char *local_address;              /* this site's link address */
	const char *remote_address;             /* peer public address if NATed, else address */
	uint16_t remote_port;                   /* peer public port; 0 = 4500 */
	uint32_t inner_local;                   /* host byte order */
	uint32_t inner_remote;
	char inner_local_cidr[20];              /* "A.B.C.D/31" */
	char inner_remote_addr[16];             /* "A.B.C.D" */
	enum model_encap encap;
	uint32_t vni;                           /* 0 for GRE */
	uint32_t mtu;                           /* 0 = agent computes */
	const struct model_crypto *crypto;
	/* BGP neighbor over this tunnel */
	uint32_t local_asn;
	uint32_t remote_asn;
	uint32_t hold_time;
	uint32_t keepalive;
	bool bfd;
	bool route_server_client;               /* we are a hub and the peer a spoke (hub-and-spoke) */
};

/* Compiled state; opaque.  Holds its own copy of sites, policy and crypto. */
struct topo_output;

/*
 * Compile the whole network.  On success *out is owned by the caller
 * (topo_free) and, when chg != NULL, *chg lists what differs from prev
 * (every live site is listed as affected).  Fails with MODEL_E_EXHAUSTED
 * (field "pool" or "vni") when allocations do not fit, MODEL_E_INVALID
 * for an invalid policy or duplicate site ids, MODEL_E_INTERNAL on memory
 * exhaustion; *out and *chg are then untouched.
 */
int topo_compile(const struct topo_input *in, const struct topo_prev *prev,
    struct topo_output **out, struct topo_change *chg,
    struct model_error *err);

/*
 * Apply an add, change, revoke or removal of one site: `in` is the whole
 * new model (site_id absent or revoked = removed) and must carry the same
 * policy and crypto as the compile that produced t (a policy change needs
 * topo_compile with the current tunnels as prev).  Only pairs involving
 * site_id are recomputed.  On failure t is unchanged.
 */
int topo_site_changed(struct topo_output *t, const struct topo_input *in,
    uint64_t site_id, struct topo_change *chg, struct model_error *err);

/*
 * Several controllers on one store: only one allocates (the leader); the
 * others follow its stored allocations, O(the change) like
 * topo_site_changed.  topo_site_follow applies site_id's change as
 * topo_site_changed would, except that each tunnel the site now wants
 * takes its id, /31 and VNI from `stored` (the site's stored tunnels,
 * sorted by topo_tunnel_key_sort); a kept tunnel whose stored allocation
 * differs is replaced by the stored one.  A wanted tunnel to a site in
 * `pending` (sorted ids: sites of the same batch still to come, or held
 * back) that is not stored is left as t has it: that site's own change
 * settles it.  Fails, leaving t unchanged, with MODEL_E_NOT_FOUND (field
 * "tunnels") when a wanted tunnel is not stored yet, MODEL_E_CONFLICT
 * when a stored /31, VNI or id is held by another tunnel of t (t missed a
 * change that freed it: compile the whole network instead).
 *
 * topo_follow_missing: how many tunnels the whole new model `in` wants
 * for site_id that `stored` (sorted the same way) lacks, without
 * compiling: 0 means the allocating controller has caught up with this
 * site.  Pure; O(sites × links²).
 */
void topo_tunnel_key_sort(struct model_tunnel *v, size_t n);
int topo_site_follow(struct topo_output *t, const struct topo_input *in,
    uint64_t site_id, const struct model_tunnel *stored, size_t n_stored,
    const uint64_t *pending, size_t n_pending, struct topo_change *chg,
    struct model_error *err);
size_t topo_follow_missing(const struct topo_input *in, uint64_t site_id,
    const struct model_tunnel *stored, size_t n_stored);

/*
 * How many tunnels the policy wants between two distinct live sites a and
 * b: what the compiler allocates for that pair (one /31, and one VNI with
 * VXLAN, each).  Used by topo_need to count without compiling.
 */
uint64_t topo_pair_count(const struct model_policy *p,
    const struct model_site *a, const struct model_site *b);

void topo_free(struct topo_output *t);          /* NULL safe */
void topo_change_free(struct topo_change *chg); /* NULL safe; zeroes it */

/* Next tunnel id to hand out (persist with store_tunnel_apply). */
uint64_t topo_next_id(const struct topo_output *t);
/* Changes with every topo_site_changed and differs between outputs (0 for
 * NULL): what was derived from one state (intent_memo) is still valid
 * while the stamp is the same. */
uint64_t topo_stamp(const struct topo_output *t);
size_t topo_tunnel_count(const struct topo_output *t);
/* All tunnels sorted by id into a malloc'd array (caller frees). */
int topo_tunnel_list(const struct topo_output *t, struct model_tunnel **out,
    size_t *n);
/* One tunnel by id, or NULL. */
const struct model_tunnel *topo_tunnel_get(const struct topo_output *t,
    uint64_t id);

/* Live (non-revoked) sites, sorted by id: the edges that get intent. */
size_t topo_edge_count(const struct topo_output *t);
const struct model_site *topo_edge_site(const struct topo_output *t,
    size_t i);
/* The site with this id, or NULL if it has no intent. */
const struct model_site *topo_site(const struct topo_output *t,
    uint64_t site_id);
/* Number of tunnels of one edge (0 for unknown sites). */
size_t topo_edge_tunnel_count(const struct topo_output *t, uint64_t site_id);
/* i-th tunnel of an edge, ordered by tunnel id; 0 or -1 if out of range. */
int topo_edge_view(const struct topo_output *t, uint64_t site_id, size_t i,
    struct topo_view *v);
/* The ids and peers of an edge's tunnels (at most max, in id order)
 * without building views: cheap enough to walk every tunnel of every
 * edge.  Returns how many were written. */
size_t topo_edge_tunnels(const struct topo_output *t, uint64_t site_id,
    uint64_t *tunnel_ids, uint64_t *peer_site_ids, size_t max);

/*
 * The sites whose LAN prefixes hub hub_id passes on to site viewer_id
 * (Peer.allowed_prefixes beyond the hub's own): every site reachable from
 * the hub through tunnels whose intermediate sites are all hubs, never
 * through the viewer, without the hub and the viewer themselves.  A
 * spoke or edge carries nothing: only hubs transit.  *ids is malloc'd
 * (NULL when *n is 0), sorted by id.  0, or -1 on ENOMEM; a hub_id that
 * is no live hub gives none.
 */
int topo_hub_carries(const struct topo_output *t, uint64_t hub_id,
    uint64_t viewer_id, uint64_t **ids, size_t *n);

/*
 * Normalised text dump: policy summary, then each edge (by id) with each
 * of its tunnels (by id), one line each.  Used by golden tests; the format
 * is stable.  Returns 0 or -1 on a write error.
 */
int topo_dump(const struct topo_output *t, FILE *f);

#endif
