/*
 * uesp_worker.h — the data-plane threads of the uesp backend.
 *
 * Each worker runs one epoll loop over the devices and sockets of the
 * tunnels it owns: batches of packets read from a TUN/TAP go out with one
 * sendmmsg, batches of datagrams come in with one recvmmsg.  A tunnel and
 * its SAs belong to exactly one worker, so SA state (sequence numbers,
 * replay windows, EVP contexts) is never shared between threads and needs
 * no lock on the packet path.
 *
 * The control thread changes a worker's state only through the calls
 * below: each posts a command to the worker (an eventfd wakes it), the
 * worker runs it between two batches, and the call returns once it ran.
 * So a change is atomic with respect to packets (e.g. an outbound SA
 * switch happens between two packets) and the caller may free whatever
 * the worker handed back.  Calls for one worker must come from one thread
 * at a time (uesp.c serialises them).
 */
#ifndef MESHWAN_UESP_WORKER_H
#define MESHWAN_UESP_WORKER_H

#include <stdint.h>

#include "overlay/overlay.h"
#include "overlay/uesp/uesp_tunnel.h"

#define UESP_BATCH 64		/* packets per recvmmsg/sendmmsg */
#define UESP_GRO_BATCH 8	/* coalesced (UDP_GRO) receives per recvmmsg */
#define UESP_GRO_BUF 65536	/* one coalesced receive */

struct uesp_worker;

/*
 * Which worker owns the tunnel holding inbound SPI spi, or NULL; called
 * by the worker that has listen_fd, from its thread (so it must lock what
 * it reads).
 */
typedef struct uesp_worker *(*uesp_worker_route_fn)(void *arg, uint32_t spi);

/* Datagrams from unexpected sources waiting for their worker, at most. */
#define UESP_STRAY_MAX 16

/*
 * Start worker `index`.  listen_fd (or -1) is an unconnected socket on the
 * ESP port that catches datagrams from sources no tunnel is connected to.
 * One whose SPI belongs to a tunnel (route) goes to the worker owning it,
 * which runs every inbound check on it and, if it passes, delivers it and
 * notes its source (NAT rebinding, uesp_tunnel_rx_from); at most
 * UESP_STRAY_MAX wait per worker, more are dropped (io); a newly noted
 * source is signalled on the eventfd moved_fd (-1: none).  Others are
 * counted in this worker's global drops.  NULL on failure (logged).
 */
struct uesp_worker *uesp_worker_start(unsigned index, unsigned keepalive_s,
    int listen_fd, uesp_worker_route_fn route, void *route_arg, int moved_fd);
/* Stop and free; its tunnels must have been removed first.  NULL ok. */
void uesp_worker_stop(struct uesp_worker *w);
unsigned uesp_worker_ntunnels(const struct uesp_worker *w);

/* Hand a tunnel (fds open, SAs maybe) to the worker: 0 or -errno. */
int uesp_worker_add(struct uesp_worker *w, struct uesp_tunnel *t);
/* Take it back (the caller closes its fds and frees it); NULL if unknown. */
struct uesp_tunnel *uesp_worker_del(struct uesp_worker *w, uint64_t id);
/* Remote address/port, MTU and allowed sources of a running tunnel: 0 or
 * -errno. */
int uesp_worker_update(struct uesp_worker *w,
    const struct overlay_tunnel_params *p);
/* 0, -ENOENT, -EEXIST, -ENOSPC; on error the caller still owns sa. */
int uesp_worker_sa_add(struct uesp_worker *w, uint64_t id, struct uesp_sa *sa);
/* Lifetimes of an installed SA, in place: 0, -ENOENT, -EINVAL. */
int uesp_worker_sa_update(struct uesp_worker *w,
    const struct overlay_sa_params *p, const uint8_t *kd);
/* The removed SA for the caller to free, or NULL if unknown. */
struct uesp_sa *uesp_worker_sa_del(struct uesp_worker *w, uint64_t id,
    uint32_t spi, enum overlay_dir dir);
int uesp_worker_sa_switch(struct uesp_worker *w, uint64_t id, uint32_t spi);
int uesp_worker_tunnel_stats(struct uesp_worker *w, uint64_t id,
    struct overlay_tunnel_stats *out);
int uesp_worker_sa_stats(struct uesp_worker *w, uint64_t id, uint32_t spi,
    enum overlay_dir dir, struct overlay_sa_stats *out);
/* Adds this worker's global drops to *out. */
void uesp_worker_global_stats(struct uesp_worker *w, struct overlay_drops *out);

#endif
