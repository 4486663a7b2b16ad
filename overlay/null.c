/*
 * null.c — the backend that only records what it was asked to do.
 *
 * Used for dry runs of the agent (what would change?) and for controller
 * scale tests with thousands of simulated edges, where no device or socket
 * may be created.  It keeps the same state rules as a real backend
 * (unknown tunnel -> -ENOENT, duplicate SPI -> -EEXIST, an inbound SPI
 * unique in the instance, an outbound key used once, checks from
 * overlay.c) so a caller's mistakes show up here too.  It sends nothing,
 * so it needs no sequence reservation (seq_file is ignored).  Each call appends a
 * line to an in-memory record readable with null_record(); key bytes are
 * never recorded.
 */
#include "overlay/overlay.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

struct null_sa {
	uint64_t tunnel_id;
	uint32_t spi;
	enum overlay_dir dir;
	uint64_t added_ms;
	/* What sa_update may not change; the key only as a keyed digest. */
	enum overlay_cipher cipher;
	bool esn;
	uint32_t replay_window;
	uint8_t kd[OVERLAY_KEY_DIGEST_LEN];
};

struct null_tunnel {
	struct overlay_tunnel_params p;
	uint32_t spi_out;
};

struct null_ctx {
	struct null_tunnel *tunnels;
	size_t ntunnels, captunnels;
	struct null_sa *sas;
	size_t nsas, capsas;
	struct overlay_keys *keys; /* outbound keys seen */
	char *rec;		/* lines joined by '\n' */
	size_t reclen, reccap;
	unsigned calls;
};

static void null_log(struct null_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
null_log(struct null_ctx *c, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	c->calls++;
	log_debug("null", "%s", line);
	p = util_grow(c->rec, &c->reccap, c->reclen + (size_t)n + 2, 1, 4096);
	if (p == NULL)
		return;	/* the record is best effort; the call is not */
	c->rec = p;
	if (c->reclen > 0)
		c->rec[c->reclen++] = '\n';
	memcpy(c->rec + c->reclen, line, (size_t)n);
	c->reclen += (size_t)n;
	c->rec[c->reclen] = '\0';
}

static int
null_init(const struct overlay_init_params *p, void **ctx)
{
	struct null_ctx *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if ((c->keys = overlay_keys_new()) == NULL) {
		free(c);
		return -ENOMEM;
	}
	null_log(c, "init port=%u workers=%u", p->udp_port ? p->udp_port :
	    OVERLAY_UDP_PORT, p->workers);
	*ctx = c;
	return 0;
}

static void
null_fini(void *ctx)
{
	struct null_ctx *c = ctx;

	if (c == NULL)
		return;
	overlay_keys_free(c->keys);
	free(c->tunnels);
	free(c->sas);
	free(c->rec);
	free(c);
}

static struct null_tunnel *
null_tunnel_find(struct null_ctx *c, uint64_t id)
{
	size_t i;

	for (i = 0; i < c->ntunnels; i++)
		if (c->tunnels[i].p.id == id)
			return &c->tunnels[i];
	return NULL;
}

static struct null_sa *
null_sa_find(struct null_ctx *c, uint64_t tid, uint32_t spi,
    enum overlay_dir dir)
{
	size_t i;

	for (i = 0; i < c->nsas; i++)
		if (c->sas[i].tunnel_id == tid && c->sas[i].spi == spi &&
		    c->sas[i].dir == dir)
			return &c->sas[i];
	return NULL;
}

static void
null_tunnel_line(struct null_ctx *c, const char *op,
    const struct overlay_tunnel_params *p)
{
	char rem[64], il[64], ip[64];

	null_log(c, "%s tunnel=%llu dev=%s encap=%s vni=%u remote=%s:%u "
	    "inner=%s/%u peer=%s mtu=%u allowed=%u", op,
	    (unsigned long long)p->id,
	    p->ifname, overlay_encap_str(p->encap), p->vni,
	    overlay_addr_str(&p->remote, rem, sizeof(rem)),
	    p->remote_port ? p->remote_port : OVERLAY_UDP_PORT,
	    overlay_addr_str(&p->inner_local, il, sizeof(il)),
	    p->inner_prefix_len ? p->inner_prefix_len : 31,
	    overlay_addr_str(&p->inner_peer, ip, sizeof(ip)), p->mtu,
	    p->nallowed);
}

static int
null_tunnel_add(void *ctx, const struct overlay_tunnel_params *p)
{
	struct null_ctx *c = ctx;
	struct null_tunnel *t;

	if (overlay_tunnel_params_check(p) < 0)
		return -EINVAL;
	if (null_tunnel_find(c, p->id) != NULL)
		return -EEXIST;
	t = util_grow(c->tunnels, &c->captunnels, c->ntunnels + 1, sizeof(*t),
	    16);
	if (t == NULL)
		return -ENOMEM;
	c->tunnels = t;
	t = &c->tunnels[c->ntunnels++];
	memset(t, 0, sizeof(*t));
	t->p = *p;
	null_tunnel_line(c, "tunnel_add", p);
	return 0;
}

static int
null_tunnel_update(void *ctx, const struct overlay_tunnel_params *p)
{
	struct null_ctx *c = ctx;
	struct null_tunnel *t;

	if (overlay_tunnel_params_check(p) < 0)
		return -EINVAL;
	if ((t = null_tunnel_find(c, p->id)) == NULL)
		return -ENOENT;
	if (overlay_tunnel_needs_remake(&t->p, p))
		return -EINVAL;
	t->p = *p;
	null_tunnel_line(c, "tunnel_update", p);
	return 0;
}

static int
null_tunnel_del(void *ctx, uint64_t id)
{
	struct null_ctx *c = ctx;
	struct null_tunnel *t;
	size_t i;

	if ((t = null_tunnel_find(c, id)) == NULL)
		return -ENOENT;
	*t = c->tunnels[--c->ntunnels];
	for (i = 0; i < c->nsas;) {
		if (c->sas[i].tunnel_id == id)
			c->sas[i] = c->sas[--c->nsas];
		else
			i++;
	}
	null_log(c, "tunnel_del tunnel=%llu", (unsigned long long)id);
	return 0;
}

/* An inbound SPI is unique in the instance (overlay.h "SPIs"). */
static int
null_spi_taken(struct null_ctx *c, const struct overlay_sa_params *p)
{
	size_t i;

	for (i = 0; i < c->nsas; i++) {
		if (c->sas[i].dir == OVERLAY_DIR_IN && c->sas[i].spi == p->spi) {
			log_warnx("null: tunnel %llu: inbound SPI %u is held by "
			    "tunnel %llu: inbound SPIs are unique per site",
			    (unsigned long long)p->tunnel_id, p->spi,
			    (unsigned long long)c->sas[i].tunnel_id);
			return -EEXIST;
		}
	}
	return 0;
}

static int
null_sa_add(void *ctx, const struct overlay_sa_params *p)
{
	struct null_ctx *c = ctx;
	struct null_sa *s;

	if (overlay_sa_params_check(p) < 0)
		return -EINVAL;
	if (null_tunnel_find(c, p->tunnel_id) == NULL)
		return -ENOENT;
	if (null_sa_find(c, p->tunnel_id, p->spi, p->dir) != NULL)
		return -EEXIST;
	if (p->dir == OVERLAY_DIR_IN && null_spi_taken(c, p) < 0)
		return -EEXIST;
	if (p->dir == OVERLAY_DIR_OUT && overlay_keys_check(c->keys, p) < 0)
		return -EEXIST;
	s = util_grow(c->sas, &c->capsas, c->nsas + 1, sizeof(*s), 32);
	if (s == NULL)
		return -ENOMEM;
	c->sas = s;
	s = &c->sas[c->nsas++];
	s->tunnel_id = p->tunnel_id;
	s->spi = p->spi;
	s->dir = p->dir;
	s->added_ms = util_mono_ms();
	s->cipher = p->cipher;
	s->esn = p->esn;
	s->replay_window = p->replay_window;
	overlay_keys_digest(c->keys, p, s->kd);
	if (p->dir == OVERLAY_DIR_OUT && overlay_keys_add(c->keys, p) < 0) {
		c->nsas--;
		return -ENOMEM;
	}
	null_log(c, "sa_add tunnel=%llu dir=%s spi=%u cipher=%s esn=%d "
	    "window=%u", (unsigned long long)p->tunnel_id,
	    overlay_dir_str(p->dir), p->spi, overlay_cipher_str(p->cipher),
	    p->esn, p->replay_window ? p->replay_window :
	    OVERLAY_REPLAY_DEFAULT);
	return 0;
}

static int
null_sa_update(void *ctx, const struct overlay_sa_params *p)
{
	struct null_ctx *c = ctx;
	struct null_sa *s;
	uint8_t kd[OVERLAY_KEY_DIGEST_LEN];

	if (overlay_sa_params_check(p) < 0)
		return -EINVAL;
	if ((s = null_sa_find(c, p->tunnel_id, p->spi, p->dir)) == NULL)
		return -ENOENT;
	overlay_keys_digest(c->keys, p, kd);
	if (s->cipher != p->cipher || s->esn != p->esn ||
	    s->replay_window != p->replay_window ||
	    memcmp(s->kd, kd, sizeof(kd)) != 0) {
		log_warnx("null: tunnel %llu SA %s %u: only lifetimes change in "
		    "place", (unsigned long long)p->tunnel_id,
		    overlay_dir_str(p->dir), p->spi);
		return -EINVAL;
	}
	null_log(c, "sa_update tunnel=%llu dir=%s spi=%u soft=%llu/%llu/%llu "
	    "hard=%llu/%llu/%llu", (unsigned long long)p->tunnel_id,
	    overlay_dir_str(p->dir), p->spi,
	    (unsigned long long)p->soft.bytes,
	    (unsigned long long)p->soft.packets,
	    (unsigned long long)p->soft.seconds,
	    (unsigned long long)p->hard.bytes,
	    (unsigned long long)p->hard.packets,
	    (unsigned long long)p->hard.seconds);
	return 0;
}

static int
null_sa_del(void *ctx, uint64_t tid, uint32_t spi, enum overlay_dir dir)
{
	struct null_ctx *c = ctx;
	struct null_sa *s;
	struct null_tunnel *t;

	if ((s = null_sa_find(c, tid, spi, dir)) == NULL)
		return -ENOENT;
	*s = c->sas[--c->nsas];
	t = null_tunnel_find(c, tid);
	if (t != NULL && dir == OVERLAY_DIR_OUT && t->spi_out == spi)
		t->spi_out = 0;
	null_log(c, "sa_del tunnel=%llu dir=%s spi=%u",
	    (unsigned long long)tid, overlay_dir_str(dir), spi);
	return 0;
}

static int
null_sa_switch_out(void *ctx, uint64_t tid, uint32_t spi)
{
	struct null_ctx *c = ctx;
	struct null_tunnel *t;

	if ((t = null_tunnel_find(c, tid)) == NULL ||
	    null_sa_find(c, tid, spi, OVERLAY_DIR_OUT) == NULL)
		return -ENOENT;
	t->spi_out = spi;
	null_log(c, "sa_switch_out tunnel=%llu spi=%u",
	    (unsigned long long)tid, spi);
	return 0;
}

static int
null_tunnel_stats(void *ctx, uint64_t tid, struct overlay_tunnel_stats *out)
{
	struct null_ctx *c = ctx;
	struct null_tunnel *t;
	size_t i;

	if ((t = null_tunnel_find(c, tid)) == NULL)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->spi_out = t->spi_out;
	for (i = 0; i < c->nsas; i++) {
		if (c->sas[i].tunnel_id != tid)
			continue;
		if (c->sas[i].dir == OVERLAY_DIR_IN)
			out->sa_in++;
		else
			out->sa_out++;
	}
	return 0;
}

static int
null_sa_stats(void *ctx, uint64_t tid, uint32_t spi, enum overlay_dir dir,
    struct overlay_sa_stats *out)
{
	struct null_ctx *c = ctx;
	struct null_sa *s;
	struct null_tunnel *t;

	if ((s = null_sa_find(c, tid, spi, dir)) == NULL)
		return -ENOENT;
	t = null_tunnel_find(c, tid);
	memset(out, 0, sizeof(*out));
	out->spi = spi;
	out->dir = dir;
	out->active = dir == OVERLAY_DIR_OUT && t != NULL && t->spi_out == spi;
	out->age_s = (util_mono_ms() - s->added_ms) / 1000;
	return 0;
}

static int
null_global_stats(void *ctx, struct overlay_drops *out)
{
	memset(out, 0, sizeof(*out));
	return 0;
}

const char *
null_record(void *ctx)
{
	struct null_ctx *c = ctx;

	return c->rec != NULL ? c->rec : "";
}

unsigned
null_calls(void *ctx)
{
	struct null_ctx *c = ctx;

	return c->calls;
}

const struct overlay_ops null_ops = {
	.version = OVERLAY_API_VERSION,
	.name = "null",
	.features = OVERLAY_F_GRE | OVERLAY_F_VXLAN | OVERLAY_F_AES_GCM_128 |
	    OVERLAY_F_AES_GCM_256 | OVERLAY_F_ESN | OVERLAY_F_NAT_T,
	.init = null_init,
	.fini = null_fini,
	.tunnel_add = null_tunnel_add,
	.tunnel_update = null_tunnel_update,
	.tunnel_del = null_tunnel_del,
	.sa_add = null_sa_add,
	.sa_del = null_sa_del,
	.sa_switch_out = null_sa_switch_out,
	.tunnel_stats = null_tunnel_stats,
	.sa_stats = null_sa_stats,
	.global_stats = null_global_stats,
	.sa_update = null_sa_update,
};
