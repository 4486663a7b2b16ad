/*
 * test_reconcile.c — the reconciler against the null backend: mapping,
 * MTU, validation before any call, idempotence, untouched tunnels keeping
 * their SAs, rollback after a failure at every call, rekey steps, the
 * nonce rule and adopt.
 *
 * The fault wrapper forwards every mutating call to the null backend and
 * keeps its own model of what the backend holds (tunnel parameters, SAs,
 * active outbound SPI), built only from calls that succeeded, so the test
 * compares backend states without trusting the reconciler's record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "edge-agent/reconcile.h"
#include "lib/log.h"

/* ------------------------------------------------------------------ */
/* Shadow model and fault injection */

#define SH_MAX 32

struct sh_sa {
	uint64_t tid;
	enum overlay_dir dir;
	uint32_t spi;
};

struct shadow {
	struct overlay_tunnel_params t[SH_MAX];
	uint32_t active[SH_MAX];
	size_t nt;
	struct sh_sa sa[SH_MAX * 4];
	size_t nsa;
};

static struct shadow sh;
static const struct overlay_ops *target = &null_ops; /* what the wrapper drives */
static unsigned fault_at;	/* fail the fault_at-th mutating call; 0 = never */
static unsigned ncalls;		/* mutating calls seen */
static bool destroyed;		/* an outbound SA was deleted */
static bool destroyed_at_fault;	/* ... before the failed call */

static bool
fault(void)
{
	ncalls++;
	if (fault_at != 0 && ncalls == fault_at) {
		destroyed_at_fault = destroyed;
		return true;
	}
	return false;
}

static int
sh_tfind(uint64_t id)
{
	for (size_t i = 0; i < sh.nt; i++)
		if (sh.t[i].id == id)
			return (int)i;
	return -1;
}

static void
sh_sadel_tunnel(uint64_t id)
{
	for (size_t i = 0; i < sh.nsa;)
		if (sh.sa[i].tid == id)
			sh.sa[i] = sh.sa[--sh.nsa];
		else
			i++;
}

static int
w_tunnel_add(void *ctx, const struct overlay_tunnel_params *p)
{
	int rc;

	if (fault())
		return -EIO;
	if ((rc = target->tunnel_add(ctx, p)) == 0) {
		assert_true(sh.nt < SH_MAX);
		sh.active[sh.nt] = 0;
		sh.t[sh.nt++] = *p;
	}
	return rc;
}

static int
w_tunnel_update(void *ctx, const struct overlay_tunnel_params *p)
{
	int rc, i;

	if (fault())
		return -EIO;
	if ((rc = target->tunnel_update(ctx, p)) == 0) {
		i = sh_tfind(p->id);
		assert_true(i >= 0);
		sh.t[i] = *p;
	}
	return rc;
}

static int
w_tunnel_del(void *ctx, uint64_t id)
{
	int rc, i;

	if (fault())
		return -EIO;
	if ((rc = target->tunnel_del(ctx, id)) == 0) {
		for (size_t k = 0; k < sh.nsa; k++)
			if (sh.sa[k].tid == id &&
			    sh.sa[k].dir == OVERLAY_DIR_OUT)
				destroyed = true;
		i = sh_tfind(id);
		assert_true(i >= 0);
		sh.t[i] = sh.t[sh.nt - 1];
		sh.active[i] = sh.active[sh.nt - 1];
		sh.nt--;
		sh_sadel_tunnel(id);
	}
	return rc;
}

static int
w_sa_add(void *ctx, const struct overlay_sa_params *p)
{
	int rc;

	if (fault())
		return -EIO;
	if ((rc = target->sa_add(ctx, p)) == 0) {
		sh.sa[sh.nsa].tid = p->tunnel_id;
		sh.sa[sh.nsa].dir = p->dir;
		sh.sa[sh.nsa].spi = p->spi;
		sh.nsa++;
	}
	return rc;
}

static int
w_sa_del(void *ctx, uint64_t tid, uint32_t spi, enum overlay_dir dir)
{
	int rc;

	if (fault())
		return -EIO;
	if ((rc = target->sa_del(ctx, tid, spi, dir)) == 0) {
		if (dir == OVERLAY_DIR_OUT)
			destroyed = true;
		for (size_t i = 0; i < sh.nsa; i++)
			if (sh.sa[i].tid == tid && sh.sa[i].spi == spi &&
			    sh.sa[i].dir == dir) {
				sh.sa[i] = sh.sa[--sh.nsa];
				break;
			}
		int t = sh_tfind(tid);
		if (t >= 0 && dir == OVERLAY_DIR_OUT && sh.active[t] == spi)
			sh.active[t] = 0;
	}
	return rc;
}

static int
w_sa_switch_out(void *ctx, uint64_t tid, uint32_t spi)
{
	int rc;

	if (fault())
		return -EIO;
	if ((rc = target->sa_switch_out(ctx, tid, spi)) == 0)
		sh.active[sh_tfind(tid)] = spi;
	return rc;
}

static struct overlay_ops fault_ops;

/* Canonical comparison: each shadow tunnel matched by id in the other. */
static bool
sa_in_shadow(const struct shadow *s, const struct sh_sa *a)
{
	for (size_t i = 0; i < s->nsa; i++)
		if (s->sa[i].tid == a->tid && s->sa[i].dir == a->dir &&
		    s->sa[i].spi == a->spi)
			return true;
	return false;
}

/* a == b; with outbound_may_miss, b may lack outbound SAs a has. */
static void
assert_shadow_eq(const struct shadow *a, const struct shadow *b,
    bool outbound_may_miss)
{
	assert_int_equal(a->nt, b->nt);
	for (size_t i = 0; i < a->nt; i++) {
		bool found = false;

		for (size_t j = 0; j < b->nt; j++) {
			if (a->t[i].id != b->t[j].id)
				continue;
			found = true;
			assert_memory_equal(&a->t[i], &b->t[j],
			    sizeof(a->t[i]));
			if (!outbound_may_miss || b->active[j] != 0)
				assert_int_equal(a->active[i], b->active[j]);
		}
		assert_true(found);
	}
	for (size_t i = 0; i < b->nsa; i++)
		assert_true(sa_in_shadow(a, &b->sa[i]));
	for (size_t i = 0; i < a->nsa; i++)
		if (!outbound_may_miss || a->sa[i].dir == OVERLAY_DIR_IN)
			assert_true(sa_in_shadow(b, &a->sa[i]));
}

/* The reconciler's record says exactly what the backend holds. */
static void
assert_record_is_backend(const struct reconcile *r)
{
	size_t nsa = 0;

	assert_int_equal(reconcile_ntunnels(r), sh.nt);
	for (size_t i = 0; i < reconcile_ntunnels(r); i++) {
		const struct reconcile_tunnel *t = reconcile_tunnel_get(r, i);
		int k = sh_tfind(t->p.id);

		assert_true(k >= 0);
		assert_memory_equal(&t->p, &sh.t[k], sizeof(t->p));
		assert_int_equal(t->spi_out_active, sh.active[k]);
		for (unsigned j = 0; j < t->nsas; j++) {
			struct sh_sa a = { t->p.id, t->sas[j].dir,
			    t->sas[j].spi };

			assert_true(sa_in_shadow(&sh, &a));
		}
		nsa += t->nsas;
	}
	assert_int_equal(nsa, sh.nsa);
}

/* ------------------------------------------------------------------ */
/* Intents */

static void
addr(struct msg_addr *a, const char *s)
{
	assert_int_equal(msg_addr_parse(s, a), 0);
}

/* The one place the tests set a tunnel's SA fields. */
static void
set_sas(struct msg_tunnel *t, uint32_t spi_in, uint32_t spi_out,
    uint64_t epoch)
{
	t->sa_in.spi = spi_in;
	t->sa_in.sa_epoch = epoch;
	t->sa_in.sender_key_epoch = 3;		/* the peer's key epoch */
	t->sa_in.receiver_key_epoch = 5;	/* ours */
	t->sa_out.spi = spi_out;
	t->sa_out.sa_epoch = epoch;
	t->sa_out.sender_key_epoch = 5;
	t->sa_out.receiver_key_epoch = 3;
}

static void
fill_tunnel(struct msg_tunnel *t, uint64_t id)
{
	char buf[64];

	memset(t, 0, sizeof(*t));
	t->id = id;
	strcpy(t->local_link, "inet");
	strcpy(t->remote_link, "inet");
	snprintf(buf, sizeof(buf), "203.0.113.%u", (unsigned)id & 255);
	addr(&t->remote_address, buf);
	t->encap = id % 2 ? MSG_ENCAP_GRE : MSG_ENCAP_VXLAN;
	t->vni = id % 2 ? 0 : (uint32_t)(100 + id);
	snprintf(buf, sizeof(buf), "10.255.0.%u/31", (unsigned)(id * 2) & 255);
	assert_int_equal(msg_prefix_parse(buf, false, &t->inner_local), 0);
	t->inner_remote = t->inner_local.addr;
	t->inner_remote.bytes[3] ^= 1;
	t->crypto.cipher = MSG_CIPHER_AES_GCM_256;
	t->crypto.esn = true;
	t->peer.site_id = 100 + id;
	snprintf(t->peer.name, sizeof(t->peer.name), "peer-%u", (unsigned)id);
	t->bgp.address = t->inner_remote;
	t->bgp.remote_asn = 65100;
	set_sas(t, 0x1000 + (uint32_t)id, 0x2000 + (uint32_t)id, 1);
}

/* Intent `version` with tunnels ids[0..n). */
static void
fill_intent(struct msg_intent *m, uint64_t version, const uint64_t *ids,
    size_t n)
{
	memset(m, 0, sizeof(*m));
	m->version = version;
	m->site.id = 1;
	strcpy(m->site.name, "site-a");
	m->site.asn = 65001;
	m->site.role = MSG_ROLE_SPOKE;
	strcpy(m->site.links[0].name, "inet");
	addr(&m->site.links[0].address, "192.0.2.1");
	strcpy(m->site.links[1].name, "v6");
	addr(&m->site.links[1].address, "2001:db8::1");
	m->site.n_links = 2;
	m->tunnels = calloc(n ? n : 1, sizeof(*m->tunnels));
	assert_non_null(m->tunnels);
	for (size_t i = 0; i < n; i++)
		fill_tunnel(&m->tunnels[i], ids[i]);
	m->n_tunnels = n;
}

static struct msg_tunnel *
tun(struct msg_intent *m, uint64_t id)
{
	return (struct msg_tunnel *)msg_intent_find_tunnel(m, id);
}

/* Keys: fixed bytes from (tunnel, dir, spi, epoch). */
static int key_fail_spi;

static int
test_key(void *arg, const struct msg_tunnel *t,
    const struct reconcile_sa_ref *ref, struct overlay_sa_params *out,
    char *err, size_t errlen)
{
	(void)arg;
	if (key_fail_spi != 0 && ref->spi == (uint32_t)key_fail_spi) {
		snprintf(err, errlen, "peer key epoch unknown");
		return -1;
	}
	/* Distinct per (tunnel, SPI, epoch, direction), as HKDF's are. */
	memset(out->key, 0xc3, sizeof(out->key));
	memcpy(out->key, &t->id, 8);
	memcpy(out->key + 8, &ref->spi, 4);
	memcpy(out->key + 12, &ref->sa_epoch, 8);
	out->key[20] = (uint8_t)ref->dir;
	memset(out->salt, 0x5c, sizeof(out->salt));
	return 0;
}

struct fx {
	void *octx;
	struct reconcile *r;
	const struct overlay_ops *ops;
};

static void
fx_open(struct fx *f, const struct overlay_ops *ops)
{
	struct overlay_init_params ip = { 0 };
	struct reconcile_config c = { 0 };

	memset(&sh, 0, sizeof(sh));
	fault_at = 0;
	ncalls = 0;
	destroyed = destroyed_at_fault = false;
	key_fail_spi = 0;
	assert_int_equal(ops->init(&ip, &f->octx), 0);
	c.ops = ops;
	c.octx = f->octx;
	c.key = test_key;
	f->ops = ops;
	f->r = reconcile_new(&c);
	assert_non_null(f->r);
}

static void
fx_close(struct fx *f)
{
	reconcile_free(f->r);
	f->ops->fini(f->octx);
}

static void
apply_ok(struct fx *f, const struct msg_intent *m)
{
	struct reconcile_result res;

	if (reconcile_apply(f->r, m, &res) != 0)
		fail_msg("apply: %s", res.reason);
	assert_true(res.ok);
	assert_string_equal(res.reason, "");
}

/* ------------------------------------------------------------------ */
/* Tests */

/* Wire size of one inner packet of m bytes, written out independently. */
static uint32_t
wire(uint32_t m, int family, enum overlay_encap e)
{
	uint32_t inner = (e == OVERLAY_ENCAP_GRE ? 4 : 8 + 8 + 14) + m + 2;

	inner = (inner + 3) & ~3u;	/* pad to 4 */
	return (family == AF_INET ? 20 : 40) + 8 + 8 + 8 + inner + 16;
}

static void
test_inner_mtu(void **state)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	static const enum overlay_encap encs[] = { OVERLAY_ENCAP_GRE,
		OVERLAY_ENCAP_VXLAN };

	(void)state;
	assert_int_equal(reconcile_inner_mtu(1500, AF_INET, OVERLAY_ENCAP_GRE),
	    1434);
	assert_int_equal(reconcile_inner_mtu(1500, AF_INET,
	    OVERLAY_ENCAP_VXLAN), 1408);
	assert_int_equal(reconcile_inner_mtu(1500, AF_INET6,
	    OVERLAY_ENCAP_GRE), 1414);
	assert_int_equal(reconcile_inner_mtu(1500, AF_INET6,
	    OVERLAY_ENCAP_VXLAN), 1388);
	assert_int_equal(reconcile_inner_mtu(60, AF_INET, OVERLAY_ENCAP_GRE),
	    0);
	/* The largest m that fits, for every outer MTU and both paddings. */
	for (uint32_t mo = 576; mo <= 9216; mo++)
		for (size_t a = 0; a < 2; a++)
			for (size_t b = 0; b < 2; b++) {
				uint32_t m = reconcile_inner_mtu(mo, fams[a],
				    encs[b]);

				assert_true(wire(m, fams[a], encs[b]) <= mo);
				assert_true(wire(m + 1, fams[a], encs[b]) > mo);
			}
}

static void
test_ifname(void **state)
{
	char a[IFNAMSIZ], b[IFNAMSIZ];

	(void)state;
	assert_int_equal(reconcile_ifname("mw", 17, a), 0);
	assert_string_equal(a, "mw17");
	assert_int_equal(reconcile_ifname("mwt", UINT64_MAX, a), 0);
	assert_true(strlen(a) < IFNAMSIZ);
	assert_int_equal(reconcile_ifname("mwt", UINT64_MAX - 1, b), 0);
	assert_string_not_equal(a, b);
	/* 12 digits fit after "mwt", 13 do not: different forms, no clash. */
	assert_int_equal(reconcile_ifname("mwt", 999999999999ull, a), 0);
	assert_string_equal(a, "mwt999999999999");
	assert_int_equal(reconcile_ifname("mwt", 1000000000000ull, b), 0);
	assert_non_null(strchr(b, '-'));
	assert_int_equal(reconcile_ifname("mwxy", 1, a), -1);
}

static void
test_params(void **state)
{
	struct msg_intent m;
	struct overlay_tunnel_params p;
	uint64_t ids[] = { 3, 4 };
	char err[256], buf[64];

	(void)state;
	fill_intent(&m, 1, ids, 2);
	assert_int_equal(reconcile_tunnel_params(&m.site, &m.tunnels[0], "mw",
	    0, &p, err, sizeof(err)), 0);
	assert_int_equal(p.id, 3);
	assert_string_equal(p.ifname, "mw3");
	assert_string_equal(overlay_addr_str(&p.local, buf, sizeof(buf)),
	    "192.0.2.1");
	assert_string_equal(overlay_addr_str(&p.remote, buf, sizeof(buf)),
	    "203.0.113.3");
	assert_int_equal(p.remote_port, 4500);
	assert_string_equal(overlay_addr_str(&p.inner_local, buf, sizeof(buf)),
	    "10.255.0.6");
	assert_string_equal(overlay_addr_str(&p.inner_peer, buf, sizeof(buf)),
	    "10.255.0.7");
	assert_int_equal(p.inner_prefix_len, 31);
	assert_int_equal(p.encap, OVERLAY_ENCAP_GRE);
	assert_int_equal(p.mtu, 1434);		/* computed: mtu 0 */
	assert_int_equal(reconcile_tunnel_params(&m.site, &m.tunnels[1], "mw",
	    9000, &p, err, sizeof(err)), 0);
	assert_int_equal(p.encap, OVERLAY_ENCAP_VXLAN);
	assert_int_equal(p.vni, 104);
	assert_int_equal(p.mtu, reconcile_inner_mtu(9000, AF_INET,
	    OVERLAY_ENCAP_VXLAN));
	m.tunnels[1].mtu = 1300;		/* given: used as is */
	assert_int_equal(reconcile_tunnel_params(&m.site, &m.tunnels[1], "mw",
	    0, &p, err, sizeof(err)), 0);
	assert_int_equal(p.mtu, 1300);
	strcpy(m.tunnels[1].local_link, "v6");	/* family mismatch */
	assert_int_equal(reconcile_tunnel_params(&m.site, &m.tunnels[1], "mw",
	    0, &p, err, sizeof(err)), -1);
	msg_intent_free(&m);
}

/* Same intent twice: zero calls; an unrelated change leaves tunnel 1. */
static void
test_idempotent_and_untouched(void **state)
{
	struct fx f;
	struct msg_intent a, b;
	struct reconcile_result res;
	uint64_t ids_a[] = { 1, 2 }, ids_b[] = { 1, 2, 3 };
	unsigned before;
	const char *rec;

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids_a, 2);
	apply_ok(&f, &a);
	before = null_calls(f.octx);
	assert_int_equal(reconcile_apply(f.r, &a, &res), 0);
	assert_int_equal(res.calls, 0);
	assert_int_equal(null_calls(f.octx), before);

	fill_intent(&b, 2, ids_b, 3);
	tun(&b, 2)->mtu = 1300;			/* in place */
	apply_ok(&f, &b);
	rec = null_record(f.octx);
	rec = strstr(rec, "tunnel_add tunnel=2 ");	/* first apply's */
	assert_non_null(rec);
	rec = strstr(rec, "tunnel_update");	/* second apply's first call */
	assert_non_null(rec);
	assert_null(strstr(rec, "tunnel=1 "));
	assert_non_null(strstr(rec, "tunnel_update tunnel=2 "));
	assert_null(strstr(rec, "tunnel_del"));
	assert_null(strstr(rec, "sa_del"));
	assert_non_null(strstr(rec, "tunnel_add tunnel=3 "));
	assert_int_equal(reconcile_tunnel_find(f.r, 1)->spi_out_active,
	    0x2001);
	/* And again: nothing. */
	before = null_calls(f.octx);
	assert_int_equal(reconcile_apply(f.r, &b, &res), 0);
	assert_int_equal(null_calls(f.octx), before);
	msg_intent_free(&a);
	msg_intent_free(&b);
	fx_close(&f);
}

static void
expect_refused(struct fx *f, const struct msg_intent *m, const char *what)
{
	struct reconcile_result res;
	unsigned before = null_calls(f->octx);

	assert_int_equal(reconcile_apply(f->r, m, &res), -1);
	assert_false(res.ok);
	if (strstr(res.reason, what) == NULL)
		fail_msg("reason '%s' lacks '%s'", res.reason, what);
	assert_true(strlen(res.reason) <= MSG_REASON_MAX);
	assert_int_equal(null_calls(f->octx), before);
	assert_int_equal(res.calls, 0);
}

/* Every kind of bad desired state is refused before any call. */
static void
test_validate_first(void **state)
{
	struct fx f;
	struct msg_intent a, b;
	uint64_t ids_a[] = { 1 }, ids_b[] = { 1, 2, 3 };

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids_a, 1);
	apply_ok(&f, &a);

	fill_intent(&b, 2, ids_b, 3);
	strcpy(tun(&b, 3)->local_link, "lte");
	expect_refused(&f, &b, "not a link of the site");
	msg_intent_free(&b);

	fill_intent(&b, 2, ids_b, 3);
	tun(&b, 3)->sa_in.spi = tun(&b, 2)->sa_in.spi;
	expect_refused(&f, &b, "inbound SPI");
	msg_intent_free(&b);

	fill_intent(&b, 2, ids_b, 3);
	tun(&b, 2)->sa_in.spi = tun(&b, 1)->sa_in.spi; /* a kept tunnel's */
	expect_refused(&f, &b, "inbound SPI");
	msg_intent_free(&b);

	fill_intent(&b, 2, ids_b, 3);
	key_fail_spi = (int)tun(&b, 3)->sa_out.spi;
	expect_refused(&f, &b, "tunnel 3: peer key epoch unknown");
	key_fail_spi = 0;
	msg_intent_free(&b);

	fill_intent(&b, 2, ids_b, 3);
	tun(&b, 2)->vni = 0;			/* VXLAN without VNI */
	expect_refused(&f, &b, "vni");
	msg_intent_free(&b);

	/* The backend still holds a, untouched. */
	assert_int_equal(reconcile_version(f.r), 1);
	assert_int_equal(reconcile_ntunnels(f.r), 1);
	msg_intent_free(&a);
	fx_close(&f);
}

/*
 * From A to B (add 5, remove 2, update 3's MTU, remake 4 with a new
 * outbound epoch, new inbound SA epoch on 1 with its SPI reused by 5's
 * ... ) with the k-th backend call failing, for every k.
 */
static void
make_ab(struct msg_intent *a, struct msg_intent *b)
{
	uint64_t ids_a[] = { 1, 2, 3, 4 }, ids_b[] = { 1, 3, 4, 5 };

	fill_intent(a, 1, ids_a, 4);
	fill_intent(b, 2, ids_b, 4);
	set_sas(tun(b, 1), 0x1101, 0x2101, 2);	/* both SAs renewed */
	tun(b, 3)->mtu = 1280;
	tun(b, 4)->inner_local.addr.bytes[3] = 40;	/* remake */
	tun(b, 4)->inner_remote.bytes[3] = 41;
	tun(b, 4)->bgp.address = tun(b, 4)->inner_remote;
	set_sas(tun(b, 4), 0x1104, 0x2104, 2);
	set_sas(tun(b, 5), 0x1002, 0x2005, 1);	/* 2's old inbound SPI */
}

static void
test_rollback_every_k(void **state)
{
	struct msg_intent a, b;
	struct reconcile_result res;
	unsigned k, total = 0, nlost = 0;
	bool done = false;

	(void)state;
	make_ab(&a, &b);
	for (k = 1; !done; k++) {
		struct fx f;
		struct shadow s0;

		fx_open(&f, &fault_ops);
		apply_ok(&f, &a);
		s0 = sh;
		ncalls = 0;
		destroyed = false;
		fault_at = k;
		if (reconcile_apply(f.r, &b, &res) == 0) {
			done = true;
			total = ncalls;
		} else {
			assert_false(res.ok);
			assert_non_null(strstr(res.reason, "Input/output"));
			assert_true(strlen(res.reason) <= MSG_REASON_MAX);
			/* Exactly the previous state, unless an outbound SA
			 * was already deleted when the call failed. */
			assert_int_equal(res.rollback_incomplete,
			    destroyed_at_fault);
			assert_shadow_eq(&s0, &sh, res.rollback_incomplete);
			if (res.rollback_incomplete) {
				assert_non_null(strstr(res.reason, "rekey"));
				nlost++;
			}
			assert_int_equal(reconcile_version(f.r), 1);
		}
		assert_record_is_backend(f.r);
		/* A failed apply kept A: re-applying A is a no-op unless the
		 * rollback lost an outbound SA. */
		if (!done && !res.rollback_incomplete) {
			fault_at = 0;
			ncalls = 0;
			apply_ok(&f, &a);
			assert_int_equal(ncalls, 0);
		}
		fx_close(&f);
		assert_true(k < 200);
	}
	/* Every call of the successful run was failed once. */
	assert_int_equal(k - 1, total + 1);
	assert_true(total > 10);
	print_message("%u calls; a failure at %u of them loses an outbound "
	    "SA\n", total, nlost);
	assert_true(nlost * 2 < total);
	msg_intent_free(&a);
	msg_intent_free(&b);
}

/* The success path of the same change, checked against B. */
static void
test_apply_diff(void **state)
{
	struct fx f;
	struct msg_intent a, b;
	const struct reconcile_tunnel *t;

	(void)state;
	make_ab(&a, &b);
	fx_open(&f, &fault_ops);
	apply_ok(&f, &a);
	apply_ok(&f, &b);
	assert_record_is_backend(f.r);
	assert_int_equal(sh.nt, 4);
	assert_int_equal(sh_tfind(2), -1);
	t = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(t->spi_out_active, 0x2101);
	assert_int_equal(t->nsas, 3);	/* new in, new out, old in draining */
	t = reconcile_tunnel_find(f.r, 3);
	assert_int_equal(t->p.mtu, 1280);
	t = reconcile_tunnel_find(f.r, 4);
	assert_int_equal(t->p.inner_local.bytes[3], 40);
	assert_int_equal(t->spi_out_active, 0x2104);
	assert_int_equal(t->nsas, 2);
	t = reconcile_tunnel_find(f.r, 5);
	assert_int_equal(t->nsas, 2);
	msg_intent_free(&a);
	msg_intent_free(&b);
	fx_close(&f);
}

/* An SA whose key epochs are not known yet is not installed; once they
 * are, only that SA is added. */
static void
test_keyless(void **state)
{
	struct fx f;
	struct msg_intent a;
	uint64_t ids[] = { 1 };
	const struct reconcile_tunnel *t;
	unsigned before;

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 1);
	tun(&a, 1)->sa_out.sender_key_epoch = 0;
	tun(&a, 1)->sa_out.receiver_key_epoch = 0;
	apply_ok(&f, &a);
	t = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(t->nsas, 1);
	assert_int_equal(t->spi_out_active, 0);
	assert_null(strstr(null_record(f.octx), "dir=out"));
	tun(&a, 1)->sa_out.sender_key_epoch = 5;
	tun(&a, 1)->sa_out.receiver_key_epoch = 3;
	a.version = 2;
	before = null_calls(f.octx);
	apply_ok(&f, &a);
	assert_int_equal(null_calls(f.octx) - before, 2); /* sa_add, switch */
	assert_int_equal(reconcile_tunnel_find(f.r, 1)->spi_out_active, 0x2001);
	msg_intent_free(&a);
	fx_close(&f);
}

/* A remake cannot reinstall the outbound key it had. */
static void
test_nonce_rule(void **state)
{
	struct fx f;
	struct msg_intent a, b;
	uint64_t ids[] = { 1 };

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 1);
	apply_ok(&f, &a);
	fill_intent(&b, 2, ids, 1);
	tun(&b, 1)->encap = MSG_ENCAP_VXLAN;	/* needs a remake */
	tun(&b, 1)->vni = 77;
	expect_refused(&f, &b, "must not be installed again");
	set_sas(tun(&b, 1), 0x1001, 0x2011, 2);	/* a new outbound epoch */
	apply_ok(&f, &b);
	msg_intent_free(&a);
	msg_intent_free(&b);
	fx_close(&f);
}

/* The key epochs set_sas() uses, as the controller's order names them. */
static void
order_keys(struct msg_rekey_order *o)
{
	o->sender_key_epoch = o->step == MSG_REKEY_STEP_INSTALL_INBOUND ? 3 :
	    o->step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? 5 : 0;
	o->receiver_key_epoch = o->step == MSG_REKEY_STEP_INSTALL_INBOUND ? 5 :
	    o->step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? 3 : 0;
}

static void
step_ok(struct fx *f, uint64_t tid, enum msg_rekey_step st, uint32_t spi,
    uint64_t epoch, unsigned calls)
{
	struct msg_rekey_order o = { .tunnel_id = tid, .epoch = epoch,
		.step = st, .spi = spi, .drain_seconds = 0 };
	struct reconcile_result res;
	unsigned before = null_calls(f->octx);

	order_keys(&o);

	if (reconcile_rekey_step(f->r, &o, &res) != 0)
		fail_msg("%s: %s", msg_rekey_step_name(st), res.reason);
	assert_int_equal(null_calls(f->octx) - before, calls);
}

static void
apply_calls(struct fx *f, const struct msg_intent *m, unsigned calls)
{
	unsigned before = null_calls(f->octx);

	apply_ok(f, m);
	assert_int_equal(null_calls(f->octx) - before, calls);
}

/*
 * NAT rebinding: a learned endpoint (reconcile_tunnel_move) is an in-place
 * tunnel_update that keeps the SAs, and later intents that still name the
 * old endpoint leave it alone; an intent that moves the endpoint itself
 * wins.
 */
static void
test_tunnel_move(void **state)
{
	struct fx f;
	struct msg_intent a, a2, a3;
	uint64_t ids[] = { 1, 2 };
	struct overlay_addr nat;
	const struct reconcile_tunnel *t;
	char buf[INET6_ADDRSTRLEN];
	unsigned before;

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 2);
	apply_ok(&f, &a);
	assert_int_equal(overlay_addr_parse("198.18.3.2", &nat), 0);
	assert_int_equal(reconcile_tunnel_move(f.r, 9, &nat, 4502), -ENOENT);
	before = null_calls(f.octx);
	assert_int_equal(reconcile_tunnel_move(f.r, 1, &nat, 4502), 0);
	assert_int_equal(null_calls(f.octx) - before, 1);
	assert_non_null(strstr(null_record(f.octx), "tunnel_update tunnel=1 "));
	assert_null(strstr(null_record(f.octx), "sa_del"));
	t = reconcile_tunnel_find(f.r, 1);
	assert_string_equal(overlay_addr_str(&t->p.remote, buf, sizeof(buf)),
	    "198.18.3.2");
	assert_int_equal(t->p.remote_port, 4502);

	/* A later version naming the old endpoint (another tunnel's MTU
	 * changed): tunnel 1 is not snapped back. */
	fill_intent(&a2, 2, ids, 2);
	tun(&a2, 2)->mtu = 1300;
	apply_calls(&f, &a2, 1);
	t = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(t->p.remote_port, 4502);
	apply_calls(&f, &a2, 0);

	/* The intent's own endpoint changes: it wins, and stays. */
	fill_intent(&a3, 3, ids, 2);
	tun(&a3, 2)->mtu = 1300;
	addr(&tun(&a3, 1)->remote_address, "203.0.113.77");
	apply_calls(&f, &a3, 1);
	t = reconcile_tunnel_find(f.r, 1);
	assert_string_equal(overlay_addr_str(&t->p.remote, buf, sizeof(buf)),
	    "203.0.113.77");
	assert_int_equal(t->p.remote_port, OVERLAY_UDP_PORT);
	apply_calls(&f, &a3, 0);
	/* And back to the endpoint the learned one replaced: the intent. */
	msg_intent_free(&a3);
	fill_intent(&a3, 4, ids, 2);
	tun(&a3, 2)->mtu = 1300;
	apply_calls(&f, &a3, 1);
	t = reconcile_tunnel_find(f.r, 1);
	assert_string_equal(overlay_addr_str(&t->p.remote, buf, sizeof(buf)),
	    "203.0.113.1");
	msg_intent_free(&a);
	msg_intent_free(&a2);
	msg_intent_free(&a3);
	fx_close(&f);
}

/*
 * A pass's SA deletes reach the backend in one sa_del_batch call per
 * stage, across tunnels (inbound ones, then outbound ones; the kernel
 * backend sends up to 64 per system call).
 */
static unsigned del_batches, del_batched;

static int
w_sa_del_batch(void *ctx, const struct overlay_sa_ref *refs, size_t n,
    int *res)
{
	del_batches++;
	del_batched += (unsigned)n;
	return overlay_sa_del_batch(&null_ops, ctx, refs, n, res);
}

static void
test_del_batch(void **state)
{
	struct overlay_ops bops = null_ops;
	struct fx f;
	struct msg_intent a, a2;
	uint64_t ids[] = { 1, 2, 3 };
	const struct reconcile_tunnel *t;

	(void)state;
	bops.sa_del_batch = w_sa_del_batch;
	fx_open(&f, &bops);
	fill_intent(&a, 1, ids, 3);
	apply_ok(&f, &a);
	/* Every tunnel's SAs replaced at once. */
	fill_intent(&a2, 2, ids, 3);
	for (size_t i = 0; i < 3; i++)
		set_sas(tun(&a2, ids[i]), 0x1100 + (uint32_t)ids[i],
		    0x2100 + (uint32_t)ids[i], 2);
	del_batches = del_batched = 0;
	apply_ok(&f, &a2);
	/* The old outbound SAs of the three tunnels: one call (the old
	 * inbound ones drain until their retire step). */
	assert_int_equal(del_batches, 1);
	assert_int_equal(del_batched, 3);
	for (size_t i = 0; i < 3; i++) {
		t = reconcile_tunnel_find(f.r, ids[i]);
		assert_int_equal(t->nsas, 3);	/* new in and out, old in */
		assert_int_equal(t->spi_out_active, 0x2100 + (uint32_t)ids[i]);
	}
	assert_non_null(strstr(null_record(f.octx),
	    "sa_del tunnel=3 dir=out spi=8195"));
	/* Nothing left to delete: no call. */
	apply_calls(&f, &a2, 0);
	assert_int_equal(del_batches, 1);
	msg_intent_free(&a);
	msg_intent_free(&a2);
	fx_close(&f);
}

/* Make-before-break through the steps, with applies in between. */
static void
test_rekey_steps(void **state)
{
	struct fx f;
	struct msg_intent a, a2;
	struct msg_rekey_order o = { .tunnel_id = 1, .epoch = 2,
		.step = MSG_REKEY_STEP_RETIRE, .spi = 0x1001 };
	struct reconcile_result res;
	uint64_t ids[] = { 1, 2 };
	const struct reconcile_tunnel *t;

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 2);
	apply_ok(&f, &a);

	/* Retiring the intent's current inbound SA is refused. */
	assert_int_equal(reconcile_rekey_step(f.r, &o, &res), -1);
	assert_non_null(strstr(res.reason, "current"));

	step_ok(&f, 1, MSG_REKEY_STEP_INSTALL_INBOUND, 0x1201, 2, 1);
	step_ok(&f, 1, MSG_REKEY_STEP_INSTALL_INBOUND, 0x1201, 2, 0);
	apply_calls(&f, &a, 0);			/* the new one stays */
	step_ok(&f, 1, MSG_REKEY_STEP_SWITCH_OUTBOUND, 0x2201, 2, 3);
	step_ok(&f, 1, MSG_REKEY_STEP_SWITCH_OUTBOUND, 0x2201, 2, 0);
	t = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(t->spi_out_active, 0x2201);
	assert_int_equal(t->nsas, 3);
	apply_calls(&f, &a, 0);			/* no switch back */
	assert_non_null(strstr(null_record(f.octx),
	    "sa_del tunnel=1 dir=out spi=8193"));

	/* The intent catches up: nothing to do; then the drain ends. */
	fill_intent(&a2, 2, ids, 2);
	set_sas(tun(&a2, 1), 0x1201, 0x2201, 2);
	apply_calls(&f, &a2, 0);
	step_ok(&f, 1, MSG_REKEY_STEP_RETIRE, 0x1001, 2, 1);
	step_ok(&f, 1, MSG_REKEY_STEP_RETIRE, 0x1001, 2, 0);
	t = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(t->nsas, 2);
	/* Tunnel 2 was never touched by any of it. */
	{
		const char *l = "sa_switch_out tunnel=2 spi=8194";
		const char *p = strstr(null_record(f.octx), l);

		assert_non_null(p);
		assert_null(strstr(p + strlen(l), "tunnel=2 "));
	}

	/* An outbound epoch already used is refused, no call made. */
	o.step = MSG_REKEY_STEP_SWITCH_OUTBOUND;
	o.spi = 0x2301;
	o.epoch = 2;
	order_keys(&o);
	assert_int_equal(reconcile_rekey_step(f.r, &o, &res), -1);
	assert_non_null(strstr(res.reason, "already used"));
	/* An order without key epochs installs nothing. */
	o.epoch = 3;
	o.sender_key_epoch = o.receiver_key_epoch = 0;
	assert_int_equal(reconcile_rekey_step(f.r, &o, &res), -1);
	assert_non_null(strstr(res.reason, "no key epochs"));
	order_keys(&o);
	o.tunnel_id = 99;
	assert_int_equal(reconcile_rekey_step(f.r, &o, &res), -1);
	msg_intent_free(&a);
	msg_intent_free(&a2);
	fx_close(&f);
}

/* A failed switch leaves the old outbound SA active. */
static void
test_rekey_rollback(void **state)
{
	struct fx f;
	struct msg_intent a;
	struct msg_rekey_order o = { .tunnel_id = 1, .epoch = 2,
		.step = MSG_REKEY_STEP_SWITCH_OUTBOUND, .spi = 0x2201 };
	struct reconcile_result res;
	uint64_t ids[] = { 1 };
	struct shadow s0;

	(void)state;
	order_keys(&o);
	fx_open(&f, &fault_ops);
	fill_intent(&a, 1, ids, 1);
	apply_ok(&f, &a);
	s0 = sh;
	ncalls = 0;
	fault_at = 2;				/* the switch */
	assert_int_equal(reconcile_rekey_step(f.r, &o, &res), -1);
	assert_non_null(strstr(res.reason, "sa_switch_out"));
	assert_shadow_eq(&s0, &sh, false);
	assert_record_is_backend(f.r);
	msg_intent_free(&a);
	fx_close(&f);
}

/* A restart on a backend that kept its state: adopt, then no calls. */
static void
test_adopt(void **state)
{
	struct fx f;
	struct msg_intent a;
	struct reconcile_config c = { 0 };
	struct reconcile *r2;
	struct reconcile_result res;
	uint64_t ids[] = { 1, 2, 3 };
	unsigned before;

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 3);
	apply_ok(&f, &a);
	c.ops = &null_ops;
	c.octx = f.octx;
	c.key = test_key;
	r2 = reconcile_new(&c);
	assert_non_null(r2);
	before = null_calls(f.octx);
	assert_int_equal(reconcile_adopt(r2, &a, &res), 0);
	assert_int_equal(reconcile_ntunnels(r2), 3);
	assert_int_equal(reconcile_apply(r2, &a, &res), 0);
	assert_int_equal(null_calls(f.octx), before);
	reconcile_free(r2);

	/* A backend that lacks a tunnel is not adopted. */
	assert_int_equal(null_ops.tunnel_del(f.octx, 2), 0);
	r2 = reconcile_new(&c);
	assert_int_equal(reconcile_adopt(r2, &a, &res), -1);
	assert_non_null(strstr(res.reason, "tunnel 2"));
	assert_int_equal(reconcile_ntunnels(r2), 0);
	reconcile_free(r2);
	msg_intent_free(&a);
	fx_close(&f);
}

static uint32_t
dev_mtu(const char *name)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int rc;

	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	rc = ioctl(fd, SIOCGIFMTU, &ifr);
	close(fd);
	return rc == 0 ? (uint32_t)ifr.ifr_mtu : 0;
}

/*
 * The real userspace backend, in a network namespace of our own (this
 * test runs last: the process stays in it): devices appear with the
 * computed MTU, an MTU change is made in place with the SAs untouched,
 * the same intent twice makes no call, a removed tunnel's device goes.
 */
static void
test_uesp(void **state)
{
	struct fx f;
	struct msg_intent a, b;
	struct overlay_tunnel_stats st;
	struct overlay_sa_stats ss;
	struct overlay_ops uw;
	uint64_t ids_a[] = { 1, 2 }, ids_b[] = { 1 };

	(void)state;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0 ||
	    access("/dev/net/tun", R_OK | W_OK) != 0)
		skip();
	/* The link's address must be local: uesp binds to it. */
	assert_int_equal(system("ip link set lo up && "
	    "ip addr add 192.0.2.1/32 dev lo && "
	    "ip route add 203.0.113.0/24 dev lo"), 0);
	target = &uesp_ops;
	uw = fault_ops;		/* the wrapper's mutating ops, uesp's others */
	uw.init = uesp_ops.init;
	uw.fini = uesp_ops.fini;
	uw.tunnel_stats = uesp_ops.tunnel_stats;
	uw.sa_stats = uesp_ops.sa_stats;
	uw.global_stats = uesp_ops.global_stats;
	fx_open(&f, &uw);
	fill_intent(&a, 1, ids_a, 2);
	apply_ok(&f, &a);
	assert_int_equal(dev_mtu("mw1"), 1434);		/* GRE, computed */
	assert_int_equal(dev_mtu("mw2"), 1408);		/* VXLAN */
	assert_int_equal(uesp_ops.tunnel_stats(f.octx, 1, &st), 0);
	assert_int_equal(st.spi_out, 0x2001);
	assert_int_equal(st.sa_in, 1);
	assert_int_equal(st.sa_out, 1);

	ncalls = 0;
	apply_ok(&f, &a);
	assert_int_equal(ncalls, 0);

	fill_intent(&b, 2, ids_b, 1);
	tun(&b, 1)->mtu = 1300;
	ncalls = 0;
	apply_ok(&f, &b);
	assert_int_equal(ncalls, 2);		/* tunnel_update 1, tunnel_del 2 */
	assert_int_equal(dev_mtu("mw1"), 1300);
	assert_int_equal(dev_mtu("mw2"), 0);
	assert_int_equal(uesp_ops.sa_stats(f.octx, 1, 0x1001, OVERLAY_DIR_IN,
	    &ss), 0);
	assert_int_equal(uesp_ops.sa_stats(f.octx, 1, 0x2001, OVERLAY_DIR_OUT,
	    &ss), 0);
	assert_true(ss.active);
	assert_record_is_backend(f.r);
	msg_intent_free(&a);
	msg_intent_free(&b);
	fx_close(&f);
	target = &null_ops;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 2,000 tunnels: a full apply, a no-op re-apply, a one-tunnel change. */
static void
test_scale(void **state)
{
	enum { N = 2000 };
	struct fx f;
	struct msg_intent a;
	uint64_t *ids = calloc(N, sizeof(*ids));
	unsigned before;
	double t0, t1, t2, t3;
	char buf[64];

	(void)state;
	assert_non_null(ids);
	for (size_t i = 0; i < N; i++)
		ids[i] = i + 1;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, N);
	for (size_t i = 0; i < N; i++) {
		struct msg_tunnel *t = &a.tunnels[i];
		unsigned v = (unsigned)i * 2;

		snprintf(buf, sizeof(buf), "198.18.%u.%u", (unsigned)i >> 8,
		    (unsigned)i & 255);
		addr(&t->remote_address, buf);
		snprintf(buf, sizeof(buf), "10.%u.%u.%u/31", v >> 16,
		    (v >> 8) & 255, v & 255);
		assert_int_equal(msg_prefix_parse(buf, false,
		    &t->inner_local), 0);
		t->inner_remote = t->inner_local.addr;
		t->inner_remote.bytes[3] ^= 1;
		t->bgp.address = t->inner_remote;
		set_sas(t, 0x10000 + (uint32_t)i, 0x20000 + (uint32_t)i, 1);
	}
	t0 = now_ms();
	apply_ok(&f, &a);
	t1 = now_ms();
	before = null_calls(f.octx);
	apply_ok(&f, &a);
	t2 = now_ms();
	assert_int_equal(null_calls(f.octx), before);
	a.tunnels[N / 2].mtu = 1300;
	apply_ok(&f, &a);
	t3 = now_ms();
	assert_int_equal(null_calls(f.octx), before + 1);
	print_message("%d tunnels: apply %.1f ms, same again %.1f ms, one "
	    "changed %.1f ms\n", N, t1 - t0, t2 - t1, t3 - t2);
	msg_intent_free(&a);
	free(ids);
	fx_close(&f);
}

static int
test_allowed(void *arg, const struct msg_tunnel *t, struct overlay_prefix *out,
    unsigned max, unsigned *n, char *err, size_t errlen)
{
	const char *pfx = arg;

	(void)max;
	if (t->id == 9) {
		snprintf(err, errlen, "peer site %llu has no prefixes",
		    (unsigned long long)t->peer.site_id);
		return -1;
	}
	assert_int_equal(overlay_prefix_parse(pfx, &out[0]), 0);
	*n = 1;
	return 0;
}

/* Allowed sources reach the backend and change in place; lifetimes
 * change in place (sa_update), never by a new SA. */
static void
test_allowed_and_lifetimes(void **state)
{
	struct fx f;
	struct msg_intent a;
	struct reconcile_config c = { 0 };
	char pfx[32] = "10.1.0.0/24";
	uint64_t ids[] = { 1, 2 }, ids9[] = { 1, 9 };
	unsigned before;
	const char *rec;

	(void)state;
	fx_open(&f, &null_ops);
	reconcile_free(f.r);
	c.ops = &null_ops;
	c.octx = f.octx;
	c.key = test_key;
	c.allowed = test_allowed;
	c.allowed_arg = pfx;
	f.r = reconcile_new(&c);
	fill_intent(&a, 1, ids, 2);
	apply_ok(&f, &a);
	assert_int_equal(reconcile_tunnel_find(f.r, 1)->p.nallowed, 1);
	assert_non_null(strstr(null_record(f.octx), "allowed=1"));

	strcpy(pfx, "10.9.0.0/16");
	before = null_calls(f.octx);
	apply_ok(&f, &a);
	assert_int_equal(null_calls(f.octx) - before, 2);
	rec = strstr(null_record(f.octx), "tunnel_update tunnel=1 ");
	assert_non_null(rec);
	assert_null(strstr(rec, "sa_"));

	before = null_calls(f.octx);
	tun(&a, 2)->crypto.rekey_seconds = 600;
	apply_ok(&f, &a);
	assert_int_equal(null_calls(f.octx) - before, 2);
	rec = strstr(null_record(f.octx), "sa_update tunnel=2 dir=in spi=4098 "
	    "soft=0/0/600");
	assert_non_null(rec);
	assert_non_null(strstr(rec, "sa_update tunnel=2 dir=out spi=8194"));
	assert_null(strstr(rec, "sa_add"));
	assert_null(strstr(rec, "sa_del"));
	assert_null(strstr(rec, "tunnel=1 "));
	assert_int_equal(reconcile_tunnel_find(f.r, 2)->soft[0].seconds, 600);
	/* Hard limits: proto/README.md "SA lifetimes" (rekey + grace +
	 * margin; the AES-GCM volume bounds), whatever the soft ones. */
	assert_int_equal(reconcile_tunnel_find(f.r, 2)->hard[0].seconds,
	    600 + MSG_DEFAULT_GRACE_SECONDS + MSG_SA_HARD_MARGIN);
	assert_true(reconcile_tunnel_find(f.r, 2)->hard[0].bytes ==
	    MSG_SA_HARD_BYTES);
	assert_true(reconcile_tunnel_find(f.r, 2)->hard[1].packets ==
	    MSG_SA_HARD_PACKETS);
	msg_intent_free(&a);

	fill_intent(&a, 2, ids9, 2);
	expect_refused(&f, &a, "tunnel 9: peer site 109 has no prefixes");
	msg_intent_free(&a);
	fx_close(&f);
}

/* reconcile_allowed_from_intent: the controller's Peer.allowed_prefixes
 * are what the backend filters inner sources by; more than it can hold
 * refuse the intent. */
static void
test_allowed_from_intent(void **state)
{
	struct fx f;
	struct msg_intent a;
	struct reconcile_config c = { 0 };
	struct msg_peer *p;
	uint64_t ids[] = { 1, 2 };
	const struct reconcile_tunnel *rt;
	const char *rec;

	(void)state;
	fx_open(&f, &null_ops);
	reconcile_free(f.r);
	c.ops = &null_ops;
	c.octx = f.octx;
	c.key = test_key;
	c.allowed = reconcile_allowed_from_intent;
	f.r = reconcile_new(&c);
	fill_intent(&a, 1, ids, 2);
	p = &tun(&a, 1)->peer;
	p->allowed_prefixes = calloc(OVERLAY_ALLOWED_MAX + 1,
	    sizeof(*p->allowed_prefixes));
	assert_non_null(p->allowed_prefixes);
	assert_int_equal(msg_prefix_parse("10.7.0.0/16", true,
	    &p->allowed_prefixes[0]), 0);
	assert_int_equal(msg_prefix_parse("fd00:7::/48", true,
	    &p->allowed_prefixes[1]), 0);
	p->n_allowed_prefixes = 2;
	apply_ok(&f, &a);
	rt = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(rt->p.nallowed, 2);
	assert_int_equal(rt->p.inner_local6.family, AF_UNSPEC);
	assert_int_equal(rt->p.allowed[0].addr.family, AF_INET);
	assert_int_equal(rt->p.allowed[0].len, 16);
	assert_int_equal(rt->p.allowed[1].addr.family, AF_INET6);
	assert_int_equal(rt->p.allowed[1].len, 48);
	assert_memory_equal(rt->p.allowed[1].addr.bytes, "\xfd\0\0\x07", 4);
	/* Tunnel 2's peer may send from its tunnel address only. */
	assert_int_equal(reconcile_tunnel_find(f.r, 2)->p.nallowed, 0);

	for (unsigned i = 2; i <= OVERLAY_ALLOWED_MAX; i++)
		p->allowed_prefixes[i] = p->allowed_prefixes[0];
	p->n_allowed_prefixes = OVERLAY_ALLOWED_MAX + 1;
	a.version = 2;
	expect_refused(&f, &a, "tunnel 1: peer ");
	assert_int_equal(reconcile_tunnel_find(f.r, 1)->p.nallowed, 2);

	/* Dual stack: the /127 reaches the backend, in place (the SAs stay:
	 * an outbound SA's key is never installed twice), the other
	 * tunnel is untouched. */
	p->n_allowed_prefixes = 2;
	a.version = 3;
	assert_int_equal(msg_prefix_parse("fd00:64::2/127", false,
	    &tun(&a, 1)->inner_local6), 0);
	assert_int_equal(msg_addr_parse("fd00:64::3",
	    &tun(&a, 1)->inner_remote6), 0);
	tun(&a, 1)->bgp.address6 = tun(&a, 1)->inner_remote6;
	apply_ok(&f, &a);
	rt = reconcile_tunnel_find(f.r, 1);
	assert_int_equal(rt->p.inner_local6.family, AF_INET6);
	assert_int_equal(rt->p.inner_local6.bytes[15], 2);
	assert_int_equal(rt->p.inner_peer6.bytes[15], 3);
	rec = strstr(null_record(f.octx), "tunnel_update tunnel=1 ");
	assert_non_null(rec);
	assert_null(strstr(rec, "sa_"));
	assert_null(strstr(rec, "tunnel=2 "));
	assert_int_equal(reconcile_tunnel_find(f.r, 2)->p.inner_local6.family,
	    AF_UNSPEC);
	/* A /127 whose ends do not pair is refused before any call. */
	a.version = 4;
	tun(&a, 1)->inner_remote6.bytes[15] = 7;
	tun(&a, 1)->bgp.address6 = tun(&a, 1)->inner_remote6;
	expect_refused(&f, &a, "tunnels[0].inner_remote6");
	msg_intent_free(&a);
	fx_close(&f);
}

/* Set a prefix list from text (the old list is freed). */
static void
set_prefixes(struct msg_prefix **v, size_t *n, const char *const *text,
    size_t count)
{
	free(*v);
	*v = calloc(count ? count : 1, sizeof(**v));
	assert_non_null(*v);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(msg_prefix_parse(text[i], true, &(*v)[i]), 0);
	*n = count;
}

/*
 * Overlapping prefixes (site LAN, tunnel /31s, peers' allowed prefixes)
 * are refused before any call, naming both; the same allowed prefix from
 * two tunnels (two hubs carrying one site) and default routes are not
 * overlaps.
 */
static void
test_overlaps(void **state)
{
	static const char *const lan[] = { "10.1.0.0/24", "0.0.0.0/0" };
	static const char *const p1[] = { "10.2.0.0/24", "0.0.0.0/0" };
	static const char *const p2[] = { "10.2.0.0/24" };
	static const char *const p3[] = { "10.3.0.0/24" };
	static const char *const wide[] = { "10.2.0.0/16" };
	static const char *const ours[] = { "10.3.0.0/24", "10.1.0.128/25" };
	static const char *const lan2[] = { "10.1.0.0/24", "10.3.0.0/16" };
	struct fx f;
	struct msg_intent a;
	struct msg_peer *p;
	struct msg_prefix keep;
	uint64_t ids[] = { 1, 2, 3 };

	(void)state;
	fx_open(&f, &null_ops);
	fill_intent(&a, 1, ids, 3);
	set_prefixes(&a.site.lan_prefixes, &a.site.n_lan_prefixes, lan, 2);
	p = &tun(&a, 1)->peer;
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, p1, 2);
	p = &tun(&a, 2)->peer;
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, p2, 1);
	p = &tun(&a, 3)->peer;
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, p3, 1);
	apply_ok(&f, &a);

	a.version = 2;
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, wide, 1);
	expect_refused(&f, &a, "overlapping prefixes: tunnel 3's peer prefix "
	    "10.2.0.0/16 and tunnel 1's peer prefix 10.2.0.0/24");
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, ours, 2);
	expect_refused(&f, &a, "overlapping prefixes: site LAN prefix "
	    "10.1.0.0/24 and tunnel 3's peer prefix 10.1.0.128/25");
	set_prefixes(&p->allowed_prefixes, &p->n_allowed_prefixes, p3, 1);

	keep = tun(&a, 2)->inner_local;
	tun(&a, 2)->inner_local = tun(&a, 1)->inner_local;
	tun(&a, 2)->inner_remote = tun(&a, 1)->inner_remote;
	tun(&a, 2)->bgp.address = tun(&a, 1)->inner_remote;
	expect_refused(&f, &a, "overlapping prefixes: tunnel ");
	expect_refused(&f, &a, "'s link 10.255.0.2/31");
	tun(&a, 2)->inner_local = keep;
	tun(&a, 2)->inner_remote = keep.addr;
	tun(&a, 2)->inner_remote.bytes[3] ^= 1;
	tun(&a, 2)->bgp.address = tun(&a, 2)->inner_remote;

	keep = tun(&a, 3)->inner_local;
	assert_int_equal(msg_prefix_parse("10.1.0.5/31", false,
	    &tun(&a, 3)->inner_local), 0);
	tun(&a, 3)->inner_remote = tun(&a, 3)->inner_local.addr;
	tun(&a, 3)->inner_remote.bytes[3] ^= 1;
	tun(&a, 3)->bgp.address = tun(&a, 3)->inner_remote;
	expect_refused(&f, &a, "overlapping prefixes: site LAN prefix "
	    "10.1.0.0/24 and tunnel 3's link 10.1.0.4/31");
	tun(&a, 3)->inner_local = keep;
	tun(&a, 3)->inner_remote = keep.addr;
	tun(&a, 3)->inner_remote.bytes[3] ^= 1;
	tun(&a, 3)->bgp.address = tun(&a, 3)->inner_remote;

	set_prefixes(&a.site.lan_prefixes, &a.site.n_lan_prefixes, lan2, 2);
	expect_refused(&f, &a, "overlapping prefixes: site LAN prefix "
	    "10.3.0.0/16 and tunnel 3's peer prefix 10.3.0.0/24");

	/* Nothing was touched: the backend still holds version 1. */
	assert_int_equal(reconcile_version(f.r), 1);
	assert_int_equal(reconcile_ntunnels(f.r), 3);
	set_prefixes(&a.site.lan_prefixes, &a.site.n_lan_prefixes, lan, 2);
	apply_ok(&f, &a);
	assert_int_equal(reconcile_version(f.r), 2);
	msg_intent_free(&a);
	fx_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inner_mtu),
		cmocka_unit_test(test_allowed_from_intent),
		cmocka_unit_test(test_ifname),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_idempotent_and_untouched),
		cmocka_unit_test(test_validate_first),
		cmocka_unit_test(test_overlaps),
		cmocka_unit_test(test_apply_diff),
		cmocka_unit_test(test_rollback_every_k),
		cmocka_unit_test(test_nonce_rule),
		cmocka_unit_test(test_keyless),
		cmocka_unit_test(test_rekey_steps),
		cmocka_unit_test(test_rekey_rollback),
		cmocka_unit_test(test_adopt),
		cmocka_unit_test(test_allowed_and_lifetimes),
		cmocka_unit_test(test_scale),
		cmocka_unit_test(test_tunnel_move),
		cmocka_unit_test(test_del_batch),
		cmocka_unit_test(test_uesp),	/* last: leaves the netns */
	};

	log_init("test_reconcile", true);
	log_setlevel(LOG_LVL_ERR);
	fault_ops = null_ops;
	fault_ops.tunnel_add = w_tunnel_add;
	fault_ops.tunnel_update = w_tunnel_update;
	fault_ops.tunnel_del = w_tunnel_del;
	fault_ops.sa_add = w_sa_add;
	fault_ops.sa_del = w_sa_del;
	fault_ops.sa_switch_out = w_sa_switch_out;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
