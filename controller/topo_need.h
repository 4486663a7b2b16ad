/*
 * topo_need.h — how many tunnels (so /31s, and VNIs with VXLAN) a model
 * needs, kept up to date one site at a time without compiling.
 *
 * Whether a change can be compiled depends only on that count (the full
 * compile fails exactly when it exceeds the pool or the VNI range), and the
 * count only on each site's class: hub or not, its region (regional
 * policy), and its link names.  So sites are counted per class, and adding
 * or removing one site costs O(classes × links²), whatever the number of
 * sites: O(the change) for the few classes of a real network (a regional
 * network with a region per site degrades to O(sites), the cost of
 * topo_site_changed).
 *
 * Pure: no I/O, no globals.  Not thread-safe; one owner.
 */
#ifndef MESHWAN_TOPO_NEED_H
#define MESHWAN_TOPO_NEED_H

#include <stdint.h>

#include "controller/model.h"

struct topo_need;

/* An empty count for this policy (copied); NULL on ENOMEM. */
struct topo_need *topo_need_new(const struct model_policy *p);
void topo_need_free(struct topo_need *n);               /* NULL safe */

/*
 * Site `id` is now s (NULL or s->revoked: it has no tunnels).  Replaces
 * whatever was counted for id before.  0, or -1 on ENOMEM (then the count
 * is unusable: free it).
 */
int topo_need_set(struct topo_need *n, uint64_t id,
    const struct model_site *s);

/* Tunnels the counted sites need, as topo_compile would allocate. */
uint64_t topo_need_tunnels(const struct topo_need *n);

/*
 * 0 when topo_compile of the counted sites would find room, else -1 with
 * the error the full compile gives (MODEL_E_EXHAUSTED, "pool" or "vni",
 * same text).
 */
int topo_need_check(const struct topo_need *n, struct model_error *err);

#endif
