/*
 * api_index.h — what the REST API keeps of the committed model so that
 * checking one change costs O(the change), not a read of every site:
 * the tunnel count (topo_need.h) and which live site uses which tunnel
 * endpoint (public address and port).
 *
 * Endpoints are kept as 64-bit hashes of the address bytes and port with
 * how many live links use each and one of their sites: a hit names a
 * candidate the caller confirms against the store (hashes can collide, a
 * candidate can be stale), so the index never decides a refusal alone.
 *
 * Pure: no I/O, no globals.  One owner (the API thread).
 */
#ifndef MESHWAN_API_INDEX_H
#define MESHWAN_API_INDEX_H

#include <stdint.h>

#include "controller/model.h"

struct api_index;

/* Empty, for this policy; NULL on ENOMEM. */
struct api_index *api_index_new(const struct model_policy *p);
void api_index_free(struct api_index *x);       /* NULL safe */

/* Site id is now s (NULL or revoked: gone).  0, or -1 on ENOMEM (then
 * the index is unusable: free it). */
int api_index_set(struct api_index *x, uint64_t id,
    const struct model_site *s);

/* The tunnel count of the indexed sites. */
const struct topo_need *api_index_need(const struct api_index *x);

/*
 * Does a live site other than not_site have a link ending at (addr, port)?
 * 0: certainly not.  1: *site is a candidate to confirm (its links in the
 * store).  2: maybe, with no usable candidate (several users, one of them
 * not_site): the caller must look at every site.
 */
int api_index_endpoint(const struct api_index *x, const char *addr,
    uint16_t port, uint64_t not_site, uint64_t *site);

#endif
