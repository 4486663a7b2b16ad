/*
 * uesp.c — the userspace ESP backend behind overlay_ops.
 *
 * The control side: validates parameters, creates the kernel objects of a
 * tunnel (uesp_dev.c), keys SAs (esp.c), and hands everything to the worker
 * that owns the tunnel (uesp_worker.c).  Tunnels go to the least loaded
 * worker; a tunnel never moves, so its SAs are only ever used by one
 * thread.  Works on kernels without ESP, which is why it exists.
 */
#include "overlay/overlay.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/uesp/uesp_dev.h"
#include "overlay/uesp/uesp_seq.h"
#include "overlay/uesp/uesp_tunnel.h"
#include "overlay/uesp/uesp_worker.h"

#define UESP_WORKERS_MAX 64

struct uesp_ref {
	uint64_t id;
	unsigned worker;
	char ifname[IFNAMSIZ];
	struct overlay_addr local, remote; /* the socket's 4-tuple */
	uint16_t remote_port;
};

/* An inbound SPI and the tunnel holding it: unique in the instance. */
struct uesp_spi {
	uint32_t spi;
	uint64_t tunnel_id;
};

struct uesp_ctx {
	struct overlay_init_params p;
	struct overlay_keys *keys; /* outbound keys seen (overlay.h "Nonces") */
	struct uesp_seq *seq;	/* reservation file, or NULL */
	struct uesp_spi *spis;	/* inbound SPIs in use */
	size_t nspis, capspis;
	int listen_fd;
	struct uesp_worker *workers[UESP_WORKERS_MAX];
	unsigned nworkers;
	struct uesp_ref *refs;	/* which worker owns which tunnel */
	size_t nrefs, caprefs;
	/*
	 * spis and refs are read by the listening worker too (uesp_route);
	 * the control thread holds route_lock while it changes them, and
	 * never while it waits for a worker.
	 */
	pthread_mutex_t route_lock;
	int moved_fd;		/* eventfd, overlay_ops.moved_fd */
};

static struct uesp_ref *
uesp_ref_find(struct uesp_ctx *c, uint64_t id)
{
	size_t i;

	for (i = 0; i < c->nrefs; i++)
		if (c->refs[i].id == id)
			return &c->refs[i];
	return NULL;
}

static void uesp_op_fini(void *ctx);

/* uesp_worker_route_fn: the worker owning inbound SPI spi, or NULL. */
static struct uesp_worker *
uesp_route(void *arg, uint32_t spi)
{
	struct uesp_ctx *c = arg;
	struct uesp_worker *w = NULL;
	uint64_t tid = 0;
	size_t i;

	pthread_mutex_lock(&c->route_lock);
	for (i = 0; i < c->nspis && tid == 0; i++)
		if (c->spis[i].spi == spi)
			tid = c->spis[i].tunnel_id;
	for (i = 0; tid != 0 && i < c->nrefs; i++)
		if (c->refs[i].id == tid) {
			w = c->workers[c->refs[i].worker];
			break;
		}
	pthread_mutex_unlock(&c->route_lock);
	return w;
}

/* The tunnel holding inbound SPI spi, or 0. */
static uint64_t
uesp_spi_holder(const struct uesp_ctx *c, uint32_t spi)
{
	size_t i;

	for (i = 0; i < c->nspis; i++)
		if (c->spis[i].spi == spi)
			return c->spis[i].tunnel_id;
	return 0;
}

/* Forget tunnel tid's inbound SPI spi, or all of them with spi 0. */
static void
uesp_spi_forget(struct uesp_ctx *c, uint64_t tid, uint32_t spi)
{
	size_t i;

	for (i = 0; i < c->nspis;) {
		if (c->spis[i].tunnel_id == tid &&
		    (spi == 0 || c->spis[i].spi == spi))
			c->spis[i] = c->spis[--c->nspis];
		else
			i++;
	}
}

static int
uesp_op_init(const struct overlay_init_params *p, void **ctx)
{
	struct uesp_ctx *c;
	long ncpu;
	unsigned i;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->p = *p;
	c->p.seq_file = NULL;	/* the caller's string; used here only */
	pthread_mutex_init(&c->route_lock, NULL);
	if ((c->keys = overlay_keys_new()) == NULL) {
		free(c);
		return -ENOMEM;
	}
	if (p->seq_file != NULL && (c->seq = uesp_seq_open(p->seq_file)) ==
	    NULL) {
		overlay_keys_free(c->keys);
		free(c);
		return -EIO;
	}
	if (c->p.udp_port == 0)
		c->p.udp_port = OVERLAY_UDP_PORT;
	if (c->p.keepalive_s == 0)
		c->p.keepalive_s = 20;
	if (c->p.workers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		c->p.workers = ncpu > 0 ? (unsigned)ncpu : 1;
	}
	if (c->p.workers > UESP_WORKERS_MAX)
		c->p.workers = UESP_WORKERS_MAX;
	c->listen_fd = uesp_dev_socket(&c->p.bind, c->p.udp_port, NULL, 0,
	    NULL);
	if (c->listen_fd < 0) {
		rc = c->listen_fd;
		uesp_seq_close(c->seq);
		overlay_keys_free(c->keys);
		free(c);
		return rc;
	}
	/* Before any worker: fini closes it. */
	if ((c->moved_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = -errno;
		close(c->listen_fd);
		uesp_seq_close(c->seq);
		overlay_keys_free(c->keys);
		free(c);
		return rc;
	}
	for (i = 0; i < c->p.workers; i++) {
		c->workers[i] = uesp_worker_start(i, c->p.keepalive_s,
		    i == 0 ? c->listen_fd : -1, uesp_route, c, c->moved_fd);
		if (c->workers[i] == NULL) {
			uesp_op_fini(c);
			return -ENOMEM;
		}
		c->nworkers++;
	}
	log_info("uesp: UDP port %u, %u workers", c->p.udp_port, c->nworkers);
	*ctx = c;
	return 0;
}

static int
uesp_op_tunnel_del(void *ctx, uint64_t id)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;
	struct uesp_tunnel *t;

	if ((r = uesp_ref_find(c, id)) == NULL)
		return -ENOENT;
	t = uesp_worker_del(c->workers[r->worker], id);
	pthread_mutex_lock(&c->route_lock);
	*r = c->refs[--c->nrefs];
	uesp_spi_forget(c, id, 0);
	pthread_mutex_unlock(&c->route_lock);
	if (t == NULL)
		return -ENOENT;
	close(t->sock_fd);
	close(t->dev_fd);
	uesp_tunnel_free(t);	/* wipes the SAs' keys */
	log_info("uesp: tunnel %llu removed", (unsigned long long)id);
	return 0;
}

static void
uesp_op_fini(void *ctx)
{
	struct uesp_ctx *c = ctx;
	unsigned i;

	if (c == NULL)
		return;
	while (c->nrefs > 0)
		uesp_op_tunnel_del(c, c->refs[c->nrefs - 1].id);
	for (i = 0; i < c->nworkers; i++)
		uesp_worker_stop(c->workers[i]);
	close(c->listen_fd);
	close(c->moved_fd);
	uesp_seq_close(c->seq);	/* after the SAs released their reservations */
	overlay_keys_free(c->keys);
	free(c->spis);
	free(c->refs);
	pthread_mutex_destroy(&c->route_lock);
	free(c);
}

static int
uesp_op_tunnel_add(void *ctx, const struct overlay_tunnel_params *p)
{
	struct uesp_ctx *c = ctx;
	struct uesp_tunnel *t;
	struct uesp_ref *r;
	unsigned i, best = 0;
	size_t k;
	int rc;

	if ((rc = overlay_tunnel_params_check(p)) < 0)
		return rc;
	if (uesp_ref_find(c, p->id) != NULL)
		return -EEXIST;
	for (k = 0; k < c->nrefs; k++) {
		if (strcmp(c->refs[k].ifname, p->ifname) == 0) {
			log_warnx("uesp: tunnel %llu: device %s already used",
			    (unsigned long long)p->id, p->ifname);
			return -EEXIST;
		}
		/* Connected sockets with the same 4-tuple would steal each
		 * other's datagrams. */
		if (overlay_addr_eq(&c->refs[k].remote, &p->remote) &&
		    c->refs[k].remote_port == p->remote_port &&
		    overlay_addr_eq(&c->refs[k].local, &p->local)) {
			log_warnx("uesp: tunnel %llu: same addresses and ports "
			    "as tunnel %llu", (unsigned long long)p->id,
			    (unsigned long long)c->refs[k].id);
			return -EEXIST;
		}
	}
	if (c->nrefs == c->caprefs) {
		size_t cap = c->caprefs ? c->caprefs * 2 : 16;

		pthread_mutex_lock(&c->route_lock);
		r = realloc(c->refs, cap * sizeof(*r));
		if (r != NULL) {
			c->refs = r;
			c->caprefs = cap;
		}
		pthread_mutex_unlock(&c->route_lock);
		if (r == NULL)
			return -ENOMEM;
	}
	if ((t = uesp_tunnel_new(p)) == NULL)
		return -ENOMEM;
	if ((t->dev_fd = uesp_dev_open(p)) < 0) {
		rc = t->dev_fd;
		goto free_t;
	}
	t->sock_fd = uesp_dev_socket(p->local.family != AF_UNSPEC ? &p->local :
	    &c->p.bind, c->p.udp_port, &p->remote,
	    p->remote_port ? p->remote_port : OVERLAY_UDP_PORT, &t->src);
	if (t->sock_fd < 0) {
		rc = t->sock_fd;
		goto close_dev;
	}
	/* The outer header as the kernel's ESP-in-UDP on a GRE or VXLAN
	 * device makes it: DF as that device sets it, no UDP checksum over
	 * IPv4 (uesp_dev.h). */
	if ((rc = uesp_dev_tx_opts(t->sock_fd, p->encap == OVERLAY_ENCAP_GRE,
	    c->p.udp_checksum)) < 0)
		goto close_sock;
	/* UDP segmentation/coalescing pair with the TUN offloads: one
	 * super-packet becomes one send and, at the peer, one receive.  The
	 * kernel segments only datagrams that carry a checksum. */
	t->udp_gso = !c->p.no_udp_gso && rc == 0;
	t->udp_gro = uesp_dev_udp_gro(t->sock_fd);
	for (i = 1; i < c->nworkers; i++)
		if (uesp_worker_ntunnels(c->workers[i]) <
		    uesp_worker_ntunnels(c->workers[best]))
			best = i;
	if ((rc = uesp_worker_add(c->workers[best], t)) < 0)
		goto close_sock;
	pthread_mutex_lock(&c->route_lock);
	r = &c->refs[c->nrefs++];
	r->id = p->id;
	r->worker = best;
	memcpy(r->ifname, p->ifname, sizeof(r->ifname));
	r->local = p->local;
	r->remote = p->remote;
	r->remote_port = p->remote_port;
	pthread_mutex_unlock(&c->route_lock);
	log_info("uesp: tunnel %llu (%s, %s) on worker %u",
	    (unsigned long long)p->id, p->ifname, overlay_encap_str(p->encap),
	    best);
	return 0;
close_sock:
	close(t->sock_fd);
close_dev:
	close(t->dev_fd);
free_t:
	uesp_tunnel_free(t);
	log_warnx("uesp: tunnel %llu not added: %s", (unsigned long long)p->id,
	    strerror(-rc));
	return rc;
}

static int
uesp_op_tunnel_update(void *ctx, const struct overlay_tunnel_params *p)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;
	int rc;

	if ((rc = overlay_tunnel_params_check(p)) < 0)
		return rc;
	if ((r = uesp_ref_find(c, p->id)) == NULL)
		return -ENOENT;
	if ((rc = uesp_worker_update(c->workers[r->worker], p)) < 0)
		return rc;
	r->remote = p->remote;
	r->remote_port = p->remote_port;
	/* Announce the device's addresses again (overlay.h tunnel_update):
	 * the same address with NLM_F_REPLACE changes nothing on the device
	 * and makes the kernel send a fresh RTM_NEWADDR. */
	if ((rc = uesp_dev_addr_add(p->ifname, &p->inner_local,
	    p->inner_prefix_len != 0 ? p->inner_prefix_len : 31)) < 0)
		return rc;
	if ((rc = uesp_dev_addr6(p->ifname, &p->inner_local6, true)) < 0)
		return rc;
	return 0;
}

static int
uesp_op_sa_add(void *ctx, const struct overlay_sa_params *p)
{
	struct uesp_ctx *c = ctx;
	struct overlay_sa_params q;
	struct uesp_seq_res *res = NULL;
	struct uesp_ref *r;
	struct uesp_sa *sa;
	struct uesp_spi *v;
	uint64_t holder;
	int rc;

	if ((rc = overlay_sa_params_check(p)) < 0)
		return rc;
	if ((r = uesp_ref_find(c, p->tunnel_id)) == NULL)
		return -ENOENT;
	if (p->dir == OVERLAY_DIR_IN &&
	    (holder = uesp_spi_holder(c, p->spi)) != 0) {
		log_warnx("uesp: tunnel %llu: inbound SPI %u is held by tunnel "
		    "%llu: inbound SPIs are unique per site",
		    (unsigned long long)p->tunnel_id, p->spi,
		    (unsigned long long)holder);
		return -EEXIST;
	}
	if (p->dir == OVERLAY_DIR_OUT &&
	    (rc = overlay_keys_check(c->keys, p)) < 0)
		return rc;
	if (p->dir == OVERLAY_DIR_IN) {
		pthread_mutex_lock(&c->route_lock);
		v = util_grow(c->spis, &c->capspis, c->nspis + 1, sizeof(*v),
		    32);
		if (v != NULL)
			c->spis = v;
		pthread_mutex_unlock(&c->route_lock);
		if (v == NULL)
			return -ENOMEM;
	}
	q = *p;
	if (p->dir == OVERLAY_DIR_OUT && c->seq != NULL &&
	    (rc = uesp_seq_acquire(c->seq, p, &res, &q.seq_start)) < 0)
		goto wipe;
	if ((sa = uesp_tunnel_sa_new(&q, util_mono_ms())) == NULL) {
		uesp_seq_release(res);
		rc = -EINVAL;
		goto wipe;
	}
	sa->res = res;
	overlay_keys_digest(c->keys, p, sa->kd);
	if ((rc = uesp_worker_sa_add(c->workers[r->worker], p->tunnel_id,
	    sa)) < 0) {
		/* Nothing was sealed: the key may come again (its reservation
		 * moved on, which only starts it higher). */
		uesp_tunnel_sa_free(sa);
		goto wipe;
	}
	/* Recorded once installed; not yet active, so nothing was sealed
	 * if recording fails and the SA goes again. */
	if (p->dir == OVERLAY_DIR_OUT && (rc = overlay_keys_add(c->keys, p)) < 0) {
		uesp_tunnel_sa_free(uesp_worker_sa_del(c->workers[r->worker],
		    p->tunnel_id, p->spi, p->dir));
		goto wipe;
	}
	if (p->dir == OVERLAY_DIR_IN) {
		pthread_mutex_lock(&c->route_lock);
		c->spis[c->nspis].spi = p->spi;
		c->spis[c->nspis++].tunnel_id = p->tunnel_id;
		pthread_mutex_unlock(&c->route_lock);
	}
	log_info("uesp: tunnel %llu: SA %s spi %u (%s) added",
	    (unsigned long long)p->tunnel_id, overlay_dir_str(p->dir), p->spi,
	    overlay_cipher_str(p->cipher));
	if (q.seq_start != 0)
		log_info("uesp: tunnel %llu: SA out %u starts after sequence "
		    "number %llu", (unsigned long long)p->tunnel_id, p->spi,
		    (unsigned long long)q.seq_start);
	rc = 0;
wipe:
	util_wipe(&q, sizeof(q));
	return rc;
}

static int
uesp_op_sa_update(void *ctx, const struct overlay_sa_params *p)
{
	struct uesp_ctx *c = ctx;
	uint8_t kd[OVERLAY_KEY_DIGEST_LEN];
	struct uesp_ref *r;
	int rc;

	if ((rc = overlay_sa_params_check(p)) < 0)
		return rc;
	if ((r = uesp_ref_find(c, p->tunnel_id)) == NULL)
		return -ENOENT;
	overlay_keys_digest(c->keys, p, kd);
	rc = uesp_worker_sa_update(c->workers[r->worker], p, kd);
	if (rc == 0)
		log_info("uesp: tunnel %llu: SA %s spi %u lifetimes updated",
		    (unsigned long long)p->tunnel_id, overlay_dir_str(p->dir),
		    p->spi);
	return rc;
}

static int
uesp_op_sa_del(void *ctx, uint64_t id, uint32_t spi, enum overlay_dir dir)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;
	struct uesp_sa *sa;

	if ((r = uesp_ref_find(c, id)) == NULL)
		return -ENOENT;
	sa = uesp_worker_sa_del(c->workers[r->worker], id, spi, dir);
	if (sa == NULL)
		return -ENOENT;
	if (dir == OVERLAY_DIR_IN) {
		pthread_mutex_lock(&c->route_lock);
		uesp_spi_forget(c, id, spi);
		pthread_mutex_unlock(&c->route_lock);
	}
	uesp_tunnel_sa_free(sa);
	log_info("uesp: tunnel %llu: SA %s spi %u removed",
	    (unsigned long long)id, overlay_dir_str(dir), spi);
	return 0;
}

static int
uesp_op_sa_switch_out(void *ctx, uint64_t id, uint32_t spi)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;
	int rc;

	if ((r = uesp_ref_find(c, id)) == NULL)
		return -ENOENT;
	rc = uesp_worker_sa_switch(c->workers[r->worker], id, spi);
	if (rc == 0)
		log_info("uesp: tunnel %llu: sending with SA %u",
		    (unsigned long long)id, spi);
	return rc;
}

static int
uesp_op_tunnel_stats(void *ctx, uint64_t id, struct overlay_tunnel_stats *out)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;

	if ((r = uesp_ref_find(c, id)) == NULL)
		return -ENOENT;
	return uesp_worker_tunnel_stats(c->workers[r->worker], id, out);
}

static int
uesp_op_sa_stats(void *ctx, uint64_t id, uint32_t spi, enum overlay_dir dir,
    struct overlay_sa_stats *out)
{
	struct uesp_ctx *c = ctx;
	struct uesp_ref *r;

	if ((r = uesp_ref_find(c, id)) == NULL)
		return -ENOENT;
	return uesp_worker_sa_stats(c->workers[r->worker], id, spi, dir, out);
}

static int
uesp_op_global_stats(void *ctx, struct overlay_drops *out)
{
	struct uesp_ctx *c = ctx;
	unsigned i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < c->nworkers; i++)
		uesp_worker_global_stats(c->workers[i], out);
	return 0;
}

static int
uesp_op_moved_fd(void *ctx)
{
	const struct uesp_ctx *c = ctx;

	return c->moved_fd;
}

const struct overlay_ops uesp_ops = {
	.version = OVERLAY_API_VERSION,
	.name = "uesp",
	.features = OVERLAY_F_GRE | OVERLAY_F_VXLAN | OVERLAY_F_AES_GCM_128 |
	    OVERLAY_F_AES_GCM_256 | OVERLAY_F_ESN | OVERLAY_F_NAT_T,
	.init = uesp_op_init,
	.fini = uesp_op_fini,
	.tunnel_add = uesp_op_tunnel_add,
	.tunnel_update = uesp_op_tunnel_update,
	.tunnel_del = uesp_op_tunnel_del,
	.sa_add = uesp_op_sa_add,
	.sa_del = uesp_op_sa_del,
	.sa_switch_out = uesp_op_sa_switch_out,
	.tunnel_stats = uesp_op_tunnel_stats,
	.sa_stats = uesp_op_sa_stats,
	.global_stats = uesp_op_global_stats,
	.sa_update = uesp_op_sa_update,
	.moved_fd = uesp_op_moved_fd,
};
