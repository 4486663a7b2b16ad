/*
 * epochs.h — the session layer's in-memory copy of the SA epoch table
 * (controller/store.h, sa_epochs): per tunnel, its epochs in (sender,
 * epoch) order, found by tunnel id in constant time.
 *
 * Why not one sorted array: a 1,000-site full mesh has a million epochs,
 * and every rekey adds one and later removes one in the middle; moving
 * half the array each time (tens of megabytes) for hundreds of rekeys a
 * second is more than the controller has.  Here each tunnel's few epochs
 * sit in their own small array, found through an open-addressing table.
 */
#ifndef MESHWAN_CONTROLLER_EPOCHS_H
#define MESHWAN_CONTROLLER_EPOCHS_H

#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"

struct epochs;

struct epochs *epochs_new(void);                /* NULL on ENOMEM */
void epochs_free(struct epochs *ep);            /* NULL safe */

/* Replace everything with v[0..n) (any order).  0, or -1 on ENOMEM with
 * ep unchanged. */
int epochs_load(struct epochs *ep, const struct model_epoch *v, size_t n);

/* Add one (its tunnel, sender and epoch not already present).  0 or -1
 * (ENOMEM, or already present). */
int epochs_insert(struct epochs *ep, const struct model_epoch *e);

/* Remove one; 0, or -1 when absent. */
int epochs_remove(struct epochs *ep, uint64_t tunnel_id, uint64_t sender,
    uint64_t epoch);

/* Forget every epoch of a tunnel (removed from the topology). */
void epochs_drop_tunnel(struct epochs *ep, uint64_t tunnel_id);

/*
 * The epochs of one tunnel, sorted by sender then epoch; *n of them (NULL
 * and 0 if none).  The pointer stays valid until the next insert, remove,
 * drop or load; fields other than the keys may be changed through it.
 */
struct model_epoch *epochs_of(struct epochs *ep, uint64_t tunnel_id,
    size_t *n);

/* One epoch, or NULL. */
struct model_epoch *epochs_find(struct epochs *ep, uint64_t tunnel_id,
    uint64_t sender, uint64_t epoch);

/*
 * Walk every tunnel that has epochs: start with *cursor = 0; each call
 * returns the next tunnel's epochs (as epochs_of) and advances *cursor,
 * NULL at the end.  Changing ep during a walk may skip or repeat tunnels.
 */
struct model_epoch *epochs_next(struct epochs *ep, size_t *cursor,
    size_t *n);

size_t epochs_count(const struct epochs *ep);   /* epochs in all */

#endif
