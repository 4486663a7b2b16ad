/*
 * reconcile.c — the difference between the intent and what the overlay
 * backend holds, applied all or nothing (design in reconcile.h).
 *
 * The reconciler keeps its own record of what it installed (one heap
 * entry per tunnel, pointers sorted by id), so a diff costs no backend
 * query.  Every mutating call goes through a step function that updates
 * the record on success and appends the step to a journal; a failure
 * walks the journal backwards through the undo of each step.
 */
#include "edge-agent/reconcile.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/util.h"

/* One tunnel's record. */
struct rec {
	struct reconcile_tunnel pub;
	uint64_t out_hw;	/* highest outbound SA epoch ever installed */
	bool gone;		/* deleted during this apply (kept for undo) */
	/* NAT rebinding (reconcile_tunnel_move): pub.p's remote was
	 * learned from the peer's traffic and replaces the intent's
	 * endpoint intent_remote/intent_port while the intent names it. */
	bool moved;
	struct overlay_addr intent_remote;
	uint16_t intent_port;
};

/* Outbound high-water marks of tunnels no longer in the record. */
struct tomb {
	uint64_t id;
	uint64_t out_hw;
};

struct reconcile {
	struct reconcile_config cfg;
	char prefix[RECONCILE_PREFIX_MAX + 1];
	struct rec **recs;	/* sorted by id, except during an apply */
	size_t nrecs, caprecs;
	struct tomb *tombs;
	size_t ntombs, captombs;
	bool tombs_sorted;
	struct msg_intent cur;	/* last applied intent (a deep copy) */
	bool have_cur;
};

/* ------------------------------------------------------------------ */
/* Pure helpers */

/*
 * Inner MTU.  One inner packet of m bytes on the wire (design.md §4,
 * overlay/uesp/ESP.md):
 *   outer IP             20 (IPv4) / 40 (IPv6)
 *   UDP (NAT-T)           8   RFC 3948
 *   ESP header            8   SPI 4 + sequence number 4 (RFC 4303)
 *   IV                    8   RFC 4106 §3.1
 *   encrypted part:       E + m + 2 + pad, a multiple of 4:
 *     E = GRE 4 (RFC 2784), or VXLAN's UDP 8 + VXLAN 8 + Ethernet 14 = 30
 *     (the TAP device's MTU does not count the Ethernet header);
 *     2 = pad length + next header; pad 0..3 (so trailer 2..5)
 *   ICV                  16   GCM tag
 * The largest m with ip + 40 + roundup4(E + m + 2) <= M is
 *   m = floor4(M - ip - 40) - E - 2,
 * e.g. 1434 for GRE and 1408 for VXLAN over IPv4 with M = 1500.
 */
uint32_t
reconcile_inner_mtu(uint32_t outer_mtu, int family, enum overlay_encap encap)
{
	uint32_t ip = family == AF_INET6 ? 40 : 20;
	uint32_t e = encap == OVERLAY_ENCAP_VXLAN ? 30 : 4;
	uint32_t room;

	if (outer_mtu < ip + 40 + e + 2 + 4)
		return 0;
	room = (outer_mtu - ip - 40) & ~3u;
	return room - e - 2;
}

static const char b62[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

int
reconcile_ifname(const char *prefix, uint64_t id, char out[IFNAMSIZ])
{
	char digits[24];
	size_t np = strlen(prefix), nd = 0;
	int n;

	if (np == 0 || np > RECONCILE_PREFIX_MAX)
		return -1;
	n = snprintf(out, IFNAMSIZ, "%s%llu", prefix, (unsigned long long)id);
	if (n > 0 && n < IFNAMSIZ)
		return 0;
	/* Decimal would not fit: "-" + base 62 (<= 11 digits), unambiguous
	 * because a decimal name never holds '-'. */
	do {
		digits[nd++] = b62[id % 62];
		id /= 62;
	} while (id > 0);
	memcpy(out, prefix, np);
	out[np] = '-';
	for (size_t i = 0; i < nd; i++)
		out[np + 1 + i] = digits[nd - 1 - i];
	out[np + 1 + nd] = '\0';
	return 0;
}

static void
addr_from_msg(struct overlay_addr *o, const struct msg_addr *m)
{
	memset(o, 0, sizeof(*o));
	if (m->family != AF_INET && m->family != AF_INET6)
		return;
	o->family = (sa_family_t)m->family;
	memcpy(o->bytes, m->bytes, sizeof(o->bytes));
}

int
reconcile_allowed_from_intent(void *arg, const struct msg_tunnel *t,
    struct overlay_prefix *out, unsigned max, unsigned *n, char *err,
    size_t errlen)
{
	const struct msg_peer *p = &t->peer;

	(void)arg;
	*n = 0;
	if (p->n_allowed_prefixes > max) {
		snprintf(err, errlen, "tunnel %llu: peer %s may send from %zu "
		    "prefixes, the backend takes at most %u",
		    (unsigned long long)t->id, p->name, p->n_allowed_prefixes,
		    max);
		return -1;
	}
	for (size_t i = 0; i < p->n_allowed_prefixes; i++) {
		addr_from_msg(&out[i].addr, &p->allowed_prefixes[i].addr);
		out[i].len = p->allowed_prefixes[i].len;
	}
	*n = (unsigned)p->n_allowed_prefixes;
	return 0;
}

static const struct msg_wan_link *
site_link(const struct msg_site *s, const char *name)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (strcmp(s->links[i].name, name) == 0)
			return &s->links[i];
	return NULL;
}

int
reconcile_tunnel_params(const struct msg_site *site,
    const struct msg_tunnel *t, const char *ifprefix, uint32_t outer_mtu,
    struct overlay_tunnel_params *p, char *err, size_t errlen)
{
	const struct msg_wan_link *l;

	memset(p, 0, sizeof(*p));
	if ((l = site_link(site, t->local_link)) == NULL) {
		snprintf(err, errlen, "local link '%s' is not one of the "
		    "site's links", t->local_link);
		return -1;
	}
	if (l->address.family != t->remote_address.family) {
		snprintf(err, errlen, "link '%s' and the remote address are "
		    "of different families", t->local_link);
		return -1;
	}
	p->id = t->id;
	addr_from_msg(&p->local, &l->address);
	addr_from_msg(&p->remote, &t->remote_address);
	p->remote_port = msg_port_or_default(t->remote_port);
	addr_from_msg(&p->inner_local, &t->inner_local.addr);
	addr_from_msg(&p->inner_peer, &t->inner_remote);
	p->inner_prefix_len = t->inner_local.len;
	/* Dual stack: unset (family 0) when the tunnel has no /127. */
	addr_from_msg(&p->inner_local6, &t->inner_local6.addr);
	addr_from_msg(&p->inner_peer6, &t->inner_remote6);
	switch (t->encap) {
	case MSG_ENCAP_GRE:
		p->encap = OVERLAY_ENCAP_GRE;
		break;
	case MSG_ENCAP_VXLAN:
		p->encap = OVERLAY_ENCAP_VXLAN;
		break;
	default:
		snprintf(err, errlen, "unknown encapsulation");
		return -1;
	}
	p->vni = t->vni;
	if (t->mtu != 0) {
		p->mtu = t->mtu;
	} else {
		p->mtu = reconcile_inner_mtu(outer_mtu ? outer_mtu :
		    RECONCILE_OUTER_MTU, l->address.family, p->encap);
		if (p->mtu < OVERLAY_MTU_MIN) {
			snprintf(err, errlen, "outer MTU %u of link '%s' leaves "
			    "less than %u for the tunnel", outer_mtu,
			    t->local_link, (unsigned)OVERLAY_MTU_MIN);
			return -1;
		}
		if (p->mtu > OVERLAY_MTU_MAX)
			p->mtu = OVERLAY_MTU_MAX;
	}
	if (reconcile_ifname(ifprefix, t->id, p->ifname) < 0) {
		snprintf(err, errlen, "bad device name prefix");
		return -1;
	}
	if (overlay_tunnel_params_check(p) < 0) {
		snprintf(err, errlen, "parameters refused by the overlay "
		    "checks (addresses, /31, VNI or MTU)");
		return -1;
	}
	return 0;
}

/* The one place that reads the contract's SA fields of a Tunnel. */
void
reconcile_intent_sas(const struct msg_tunnel *t, struct reconcile_sa_ref *in,
    struct reconcile_sa_ref *out)
{
	memset(in, 0, sizeof(*in));
	memset(out, 0, sizeof(*out));
	in->dir = OVERLAY_DIR_IN;
	out->dir = OVERLAY_DIR_OUT;
	in->spi = t->sa_in.spi;
	in->sa_epoch = t->sa_in.sa_epoch;
	in->sender_key_epoch = t->sa_in.sender_key_epoch;
	in->receiver_key_epoch = t->sa_in.receiver_key_epoch;
	out->spi = t->sa_out.spi;
	out->sa_epoch = t->sa_out.sa_epoch;
	out->sender_key_epoch = t->sa_out.sender_key_epoch;
	out->receiver_key_epoch = t->sa_out.receiver_key_epoch;
	/* Key epochs 0: the keys are not known yet, install nothing
	 * (proto/README.md "SA keys"). */
	if (in->sender_key_epoch == 0 || in->receiver_key_epoch == 0)
		in->spi = 0;
	if (out->sender_key_epoch == 0 || out->receiver_key_epoch == 0)
		out->spi = 0;
}

/* Every field a tunnel_add/tunnel_update takes. */
static bool
params_eq(const struct overlay_tunnel_params *a,
    const struct overlay_tunnel_params *b)
{
	if (a->id != b->id || !overlay_addr_eq(&a->local, &b->local) ||
	    !overlay_addr_eq(&a->remote, &b->remote) ||
	    a->remote_port != b->remote_port ||
	    !overlay_addr_eq(&a->inner_local, &b->inner_local) ||
	    !overlay_addr_eq(&a->inner_peer, &b->inner_peer) ||
	    a->inner_prefix_len != b->inner_prefix_len ||
	    !overlay_addr_eq(&a->inner_local6, &b->inner_local6) ||
	    !overlay_addr_eq(&a->inner_peer6, &b->inner_peer6) ||
	    a->encap != b->encap || a->vni != b->vni || a->mtu != b->mtu ||
	    strcmp(a->ifname, b->ifname) != 0)
		return false;
#if OVERLAY_API_VERSION >= 2
	if (a->nallowed != b->nallowed)
		return false;
	for (unsigned i = 0; i < a->nallowed; i++)
		if (a->allowed[i].len != b->allowed[i].len ||
		    !overlay_addr_eq(&a->allowed[i].addr, &b->allowed[i].addr))
			return false;
#endif
	return true;
}

static bool
ref_eq(const struct reconcile_sa_ref *a, const struct reconcile_sa_ref *b)
{
	return a->dir == b->dir && a->spi == b->spi &&
	    a->sa_epoch == b->sa_epoch &&
	    a->sender_key_epoch == b->sender_key_epoch &&
	    a->receiver_key_epoch == b->receiver_key_epoch;
}

static void
lifetimes(const struct msg_intent *in, const struct msg_tunnel *t,
    struct overlay_lifetime *soft, struct overlay_lifetime *hard)
{
	struct msg_sa_hard h;

	memset(soft, 0, sizeof(*soft));
	memset(hard, 0, sizeof(*hard));
	/* Soft limits only report (the controller rekeys); the hard ones end
	 * the SA, and cover the headless grace on top (proto/README.md, "SA
	 * lifetimes": the same on every edge). */
	soft->seconds = msg_rekey_seconds_or_default(t->crypto.rekey_seconds);
	soft->bytes = t->crypto.rekey_bytes;
	soft->packets = t->crypto.rekey_packets;
	msg_sa_hard_limits(&t->crypto, in->headless_grace_seconds, &h);
	hard->seconds = h.seconds;
	hard->bytes = h.bytes;
	hard->packets = h.packets;
}

/* SA parameters for ref on tunnel t, key from the provider. */
static int
sa_params(struct reconcile *r, const struct msg_intent *in,
    const struct msg_tunnel *t, const struct reconcile_sa_ref *ref,
    struct overlay_sa_params *p, char *err, size_t errlen)
{
	enum overlay_cipher c;

	memset(p, 0, sizeof(*p));
	c = t->crypto.cipher == MSG_CIPHER_AES_GCM_128 ? OVERLAY_AES_GCM_128 :
	    OVERLAY_AES_GCM_256;
	p->tunnel_id = t->id;
	p->dir = ref->dir;
	p->spi = ref->spi;
	p->cipher = c;
	p->esn = t->crypto.esn;
	p->replay_window = ref->dir == OVERLAY_DIR_IN ?
	    msg_replay_window_or_default(t->crypto.replay_window) : 0;
	lifetimes(in, t, &p->soft, &p->hard);
	err[0] = '\0';
	if (r->cfg.key(r->cfg.key_arg, t, ref, p, err, errlen) < 0) {
		util_wipe(p, sizeof(*p));
		if (err[0] == '\0')
			snprintf(err, errlen, "key not available");
		return -1;
	}
	if (p->cipher != c || p->spi != ref->spi || p->dir != ref->dir ||
	    p->tunnel_id != t->id) {
		util_wipe(p, sizeof(*p));
		snprintf(err, errlen, "key provider changed the SA");
		return -1;
	}
	if (overlay_sa_params_check(p) < 0) {
		util_wipe(p, sizeof(*p));
		snprintf(err, errlen, "SA parameters refused");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Record */

static int
rec_cmp(const void *a, const void *b)
{
	const struct rec *x = *(struct rec *const *)a;
	const struct rec *y = *(struct rec *const *)b;

	return x->pub.p.id < y->pub.p.id ? -1 : x->pub.p.id > y->pub.p.id;
}

static struct rec *
rec_find(const struct reconcile *r, uint64_t id)
{
	size_t lo = 0, hi = r->nrecs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v = r->recs[mid]->pub.p.id;

		if (v == id)
			return r->recs[mid];
		if (v < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
tomb_cmp(const void *a, const void *b)
{
	const struct tomb *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static uint64_t
tomb_hw(struct reconcile *r, uint64_t id)
{
	const struct tomb *t;
	struct tomb key = { .id = id };

	if (!r->tombs_sorted && r->ntombs > 0) {
		qsort(r->tombs, r->ntombs, sizeof(*r->tombs), tomb_cmp);
		r->tombs_sorted = true;
	}
	t = r->ntombs ? bsearch(&key, r->tombs, r->ntombs, sizeof(*r->tombs),
	    tomb_cmp) : NULL;
	return t != NULL ? t->out_hw : 0;
}

/*
 * Forget a freed tunnel but not its outbound high-water mark: 16 bytes
 * per tunnel id this process ever held an outbound SA on.
 */
static void
tomb_keep(struct reconcile *r, uint64_t id, uint64_t hw)
{
	struct tomb *t;

	if (hw == 0)
		return;
	if (r->tombs_sorted) {
		struct tomb key = { .id = id };

		t = r->ntombs ? bsearch(&key, r->tombs, r->ntombs,
		    sizeof(*r->tombs), tomb_cmp) : NULL;
		if (t != NULL) {
			if (hw > t->out_hw)
				t->out_hw = hw;
			return;
		}
	}
	t = util_grow(r->tombs, &r->captombs, r->ntombs + 1, sizeof(*t), 64);
	if (t == NULL) {
		log_warnx("reconcile: out of memory keeping tunnel %llu's "
		    "outbound mark", (unsigned long long)id);
		return;
	}
	r->tombs = t;
	r->tombs[r->ntombs].id = id;
	r->tombs[r->ntombs].out_hw = hw;
	r->ntombs++;
	r->tombs_sorted = false;
}

static int
sa_index(const struct reconcile_tunnel *t, enum overlay_dir dir,
    uint32_t spi)
{
	for (unsigned i = 0; i < t->nsas; i++)
		if (t->sas[i].dir == dir && t->sas[i].spi == spi)
			return (int)i;
	return -1;
}

static void
sa_forget(struct reconcile_tunnel *t, int i)
{
	if (t->sas[i].dir == OVERLAY_DIR_OUT &&
	    t->spi_out_active == t->sas[i].spi)
		t->spi_out_active = 0;
	t->nsas--;
	t->sas[i] = t->sas[t->nsas];
	t->soft[i] = t->soft[t->nsas];
	t->hard[i] = t->hard[t->nsas];
}

/* After an apply: drop gone entries, sort the rest. */
static void
rec_compact(struct reconcile *r)
{
	size_t j = 0;

	for (size_t i = 0; i < r->nrecs; i++) {
		struct rec *e = r->recs[i];

		if (e->gone) {
			tomb_keep(r, e->pub.p.id, e->out_hw);
			free(e);
		} else {
			r->recs[j++] = e;
		}
	}
	r->nrecs = j;
	if (r->nrecs > 1)	/* qsort(NULL, 0, ...) is undefined */
		qsort(r->recs, r->nrecs, sizeof(struct rec *), rec_cmp);
}

/* ------------------------------------------------------------------ */
/* Journalled steps */

enum step_kind {
	ST_TUN_ADD, ST_TUN_UPD, ST_TUN_DEL, ST_SA_ADD, ST_SA_DEL, ST_SA_UPD,
	ST_SWITCH,
};

struct step {
	enum step_kind kind;
	struct rec *e;
	struct overlay_tunnel_params *oldp;	/* ST_TUN_UPD (heap) */
	struct rec *olde;			/* ST_TUN_DEL: copy (heap) */
	struct reconcile_sa_ref ref;		/* SA steps */
	struct overlay_lifetime soft, hard;	/* ST_SA_DEL/UPD: the old ones */
	bool was_active;			/* ST_SA_DEL */
	uint32_t old_active;			/* ST_SWITCH */
};

struct run {
	struct reconcile *r;
	struct reconcile_result *res;
	struct step *steps;
	size_t nsteps, capsteps;
	const struct msg_intent *in;	/* the intent being applied */
	const struct msg_intent *undo_in; /* intent the undo derives keys from */
};

static void
res_fail(struct reconcile_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
res_fail(struct reconcile_result *res, const char *fmt, ...)
{
	va_list ap;

	if (!res->ok)
		return;	/* the first reason wins */
	res->ok = false;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

static struct step *
journal(struct run *u, enum step_kind k, struct rec *e)
{
	struct step *s;

	s = util_grow(u->steps, &u->capsteps, u->nsteps + 1, sizeof(*s), 32);
	if (s == NULL)
		return NULL;
	u->steps = s;
	s = &u->steps[u->nsteps++];
	memset(s, 0, sizeof(*s));
	s->kind = k;
	s->e = e;
	return s;
}

/* Reserve journal room before a call, so a call never goes unrecorded. */
static int
journal_room(struct run *u)
{
	struct step *s;

	s = util_grow(u->steps, &u->capsteps, u->nsteps + 1, sizeof(*s), 32);
	if (s == NULL) {
		res_fail(u->res, "out of memory");
		return -1;
	}
	u->steps = s;
	return 0;
}

static int
call_fail(struct run *u, uint64_t id, const char *what, int rc)
{
	res_fail(u->res, "tunnel %llu: %s failed: %s", (unsigned long long)id,
	    what, strerror(-rc));
	return -1;
}

static int
do_tun_add(struct run *u, const struct overlay_tunnel_params *p, uint64_t hw,
    struct rec **out)
{
	struct reconcile *r = u->r;
	struct rec *e, **v;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	e = calloc(1, sizeof(*e));
	v = util_grow(r->recs, &r->caprecs, r->nrecs + 1, sizeof(struct rec *),
	    16);
	if (e == NULL || v == NULL) {
		free(e);
		res_fail(u->res, "out of memory");
		return -1;
	}
	r->recs = v;
	u->res->calls++;
	if ((rc = r->cfg.ops->tunnel_add(r->cfg.octx, p)) < 0) {
		free(e);
		return call_fail(u, p->id, "tunnel_add", rc);
	}
	e->pub.p = *p;
	e->out_hw = hw;
	r->recs[r->nrecs++] = e;
	journal(u, ST_TUN_ADD, e);
	*out = e;
	return 0;
}

static int
do_tun_upd(struct run *u, struct rec *e, const struct overlay_tunnel_params *p)
{
	struct reconcile *r = u->r;
	struct overlay_tunnel_params *old;
	struct step *s;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	if ((old = malloc(sizeof(*old))) == NULL) {
		res_fail(u->res, "out of memory");
		return -1;
	}
	u->res->calls++;
	if ((rc = r->cfg.ops->tunnel_update(r->cfg.octx, p)) < 0) {
		free(old);
		return call_fail(u, p->id, "tunnel_update", rc);
	}
	*old = e->pub.p;
	e->pub.p = *p;
	/* The intent moved the endpoint itself: it wins over a learned one. */
	if (!overlay_addr_eq(&old->remote, &p->remote) ||
	    old->remote_port != p->remote_port)
		e->moved = false;
	s = journal(u, ST_TUN_UPD, e);
	s->oldp = old;
	return 0;
}

static int
do_tun_del(struct run *u, struct rec *e)
{
	struct reconcile *r = u->r;
	struct rec *copy;
	struct step *s;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	if ((copy = malloc(sizeof(*copy))) == NULL) {
		res_fail(u->res, "out of memory");
		return -1;
	}
	u->res->calls++;
	rc = r->cfg.ops->tunnel_del(r->cfg.octx, e->pub.p.id);
	if (rc < 0 && rc != -ENOENT) {
		free(copy);
		return call_fail(u, e->pub.p.id, "tunnel_del", rc);
	}
	*copy = *e;
	e->gone = true;
	e->pub.nsas = 0;
	e->pub.spi_out_active = 0;
	s = journal(u, ST_TUN_DEL, e);
	s->olde = copy;
	return 0;
}

static int
do_sa_add(struct run *u, struct rec *e, const struct reconcile_sa_ref *ref,
    const struct overlay_sa_params *p)
{
	struct reconcile *r = u->r;
	struct reconcile_tunnel *t = &e->pub;
	struct step *s;
	int rc;

	if (t->nsas >= RECONCILE_SAS_MAX) {
		res_fail(u->res, "tunnel %llu: more than %d SAs",
		    (unsigned long long)t->p.id, RECONCILE_SAS_MAX);
		return -1;
	}
	if (journal_room(u) < 0)
		return -1;
	u->res->calls++;
	if ((rc = r->cfg.ops->sa_add(r->cfg.octx, p)) < 0) {
		if (ref->dir == OVERLAY_DIR_OUT && rc == -EEXIST &&
		    ref->sa_epoch > e->out_hw)
			e->out_hw = ref->sa_epoch; /* the backend saw it */
		return call_fail(u, t->p.id, ref->dir == OVERLAY_DIR_IN ?
		    "sa_add (inbound)" : "sa_add (outbound)", rc);
	}
	t->sas[t->nsas] = *ref;
	t->soft[t->nsas] = p->soft;
	t->hard[t->nsas] = p->hard;
	t->nsas++;
	if (ref->dir == OVERLAY_DIR_OUT && ref->sa_epoch > e->out_hw)
		e->out_hw = ref->sa_epoch;	/* that key is used now */
	s = journal(u, ST_SA_ADD, e);
	s->ref = *ref;
	return 0;
}

/*
 * A tunnel's new SAs in one backend call (overlay_sa_add_batch: the
 * kernel backend sends them in one system call; others fall back to
 * sa_add).  Each SA the backend took is recorded and journaled as
 * do_sa_add does, also after a refused one, so the undo removes them all;
 * the first refusal fails the apply.
 */
static int
do_sa_adds(struct run *u, struct rec *e, const struct reconcile_sa_ref *refs,
    const struct overlay_sa_params *ps, unsigned n)
{
	struct reconcile *r = u->r;
	struct reconcile_tunnel *t = &e->pub;
	struct step *s;
	int res[2], first = -1;

	if (n == 0)
		return 0;
	if (n > ARRAY_SIZE(res)) {	/* a want has two at most */
		for (unsigned i = 0; i < n; i++)
			if (do_sa_add(u, e, &refs[i], &ps[i]) < 0)
				return -1;
		return 0;
	}
	if (t->nsas + n > RECONCILE_SAS_MAX) {
		res_fail(u->res, "tunnel %llu: more than %d SAs",
		    (unsigned long long)t->p.id, RECONCILE_SAS_MAX);
		return -1;
	}
	s = util_grow(u->steps, &u->capsteps, u->nsteps + n, sizeof(*s), 32);
	if (s == NULL) {
		res_fail(u->res, "out of memory");
		return -1;
	}
	u->steps = s;
	u->res->calls += n;
	(void)overlay_sa_add_batch(r->cfg.ops, r->cfg.octx, ps, n, res);
	for (unsigned i = 0; i < n; i++) {
		if (res[i] < 0) {
			if (refs[i].dir == OVERLAY_DIR_OUT && res[i] == -EEXIST &&
			    refs[i].sa_epoch > e->out_hw)
				e->out_hw = refs[i].sa_epoch; /* the backend saw it */
			if (first < 0)
				first = (int)i;
			continue;
		}
		t->sas[t->nsas] = refs[i];
		t->soft[t->nsas] = ps[i].soft;
		t->hard[t->nsas] = ps[i].hard;
		t->nsas++;
		if (refs[i].dir == OVERLAY_DIR_OUT && refs[i].sa_epoch > e->out_hw)
			e->out_hw = refs[i].sa_epoch;	/* that key is used now */
		s = journal(u, ST_SA_ADD, e);
		s->ref = refs[i];
	}
	if (first >= 0)
		return call_fail(u, t->p.id, refs[first].dir == OVERLAY_DIR_IN ?
		    "sa_add (inbound)" : "sa_add (outbound)", res[first]);
	return 0;
}

static int
do_sa_del(struct run *u, struct rec *e, int i)
{
	struct reconcile *r = u->r;
	struct reconcile_tunnel *t = &e->pub;
	struct reconcile_sa_ref ref = t->sas[i];
	struct step *s;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	u->res->calls++;
	rc = r->cfg.ops->sa_del(r->cfg.octx, t->p.id, ref.spi, ref.dir);
	if (rc < 0 && rc != -ENOENT)
		return call_fail(u, t->p.id, "sa_del", rc);
	s = journal(u, ST_SA_DEL, e);
	s->ref = ref;
	s->soft = t->soft[i];
	s->hard = t->hard[i];
	s->was_active = ref.dir == OVERLAY_DIR_OUT &&
	    t->spi_out_active == ref.spi;
	sa_forget(t, i);
	return 0;
}

static int
do_switch(struct run *u, struct rec *e, uint32_t spi)
{
	struct reconcile *r = u->r;
	struct step *s;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	u->res->calls++;
	if ((rc = r->cfg.ops->sa_switch_out(r->cfg.octx, e->pub.p.id, spi)) < 0)
		return call_fail(u, e->pub.p.id, "sa_switch_out", rc);
	s = journal(u, ST_SWITCH, e);
	s->old_active = e->pub.spi_out_active;
	e->pub.spi_out_active = spi;
	return 0;
}

#if OVERLAY_API_VERSION >= 2
static int
do_sa_upd(struct run *u, struct rec *e, int i,
    const struct overlay_sa_params *p)
{
	struct reconcile *r = u->r;
	struct step *s;
	int rc;

	if (journal_room(u) < 0)
		return -1;
	u->res->calls++;
	if ((rc = r->cfg.ops->sa_update(r->cfg.octx, p)) < 0)
		return call_fail(u, e->pub.p.id, "sa_update", rc);
	s = journal(u, ST_SA_UPD, e);
	s->ref = e->pub.sas[i];
	s->soft = e->pub.soft[i];
	s->hard = e->pub.hard[i];
	e->pub.soft[i] = p->soft;
	e->pub.hard[i] = p->hard;
	return 0;
}
#endif

/*
 * Undo: each inverse is one backend call (or a few for a deleted tunnel).
 * A failing inverse is logged and the record follows what the backend
 * holds as far as it is known.
 */
static void
undo_readd_sa(struct run *u, struct rec *e, const struct reconcile_sa_ref *ref,
    const struct overlay_lifetime *soft, const struct overlay_lifetime *hard,
    bool active)
{
	struct reconcile *r = u->r;
	struct reconcile_tunnel *t = &e->pub;
	const struct msg_tunnel *mt = NULL;
	struct overlay_sa_params p;
	char err[128];
	int rc;

	if (u->undo_in != NULL)
		mt = msg_intent_find_tunnel(u->undo_in, t->p.id);
	if (ref->dir == OVERLAY_DIR_OUT) {
		/* Never again under this key (overlay.h "Nonces"). */
		log_warnx("reconcile: tunnel %llu: outbound SA %u cannot be "
		    "restored (its key is used); the tunnel fails closed until "
		    "a rekey", (unsigned long long)t->p.id, ref->spi);
		u->res->rollback_incomplete = true;
		return;
	}
	if (mt == NULL || t->nsas >= RECONCILE_SAS_MAX ||
	    sa_params(r, u->undo_in, mt, ref, &p, err, sizeof(err)) < 0) {
		log_warnx("reconcile: tunnel %llu: inbound SA %u not restored",
		    (unsigned long long)t->p.id, ref->spi);
		u->res->rollback_incomplete = true;
		return;
	}
	p.soft = *soft;
	p.hard = *hard;
	u->res->calls++;
	rc = r->cfg.ops->sa_add(r->cfg.octx, &p);
	util_wipe(&p, sizeof(p));
	if (rc < 0) {
		log_warnx("reconcile: tunnel %llu: restoring inbound SA %u: %s",
		    (unsigned long long)t->p.id, ref->spi, strerror(-rc));
		u->res->rollback_incomplete = true;
		return;
	}
	t->sas[t->nsas] = *ref;
	t->soft[t->nsas] = *soft;
	t->hard[t->nsas] = *hard;
	t->nsas++;
	(void)active;
}

static void
undo_step(struct run *u, struct step *s)
{
	struct reconcile *r = u->r;
	const struct overlay_ops *o = r->cfg.ops;
	struct reconcile_tunnel *t = &s->e->pub;
	int rc = 0, i;

	switch (s->kind) {
	case ST_TUN_ADD:
		u->res->calls++;
		rc = o->tunnel_del(r->cfg.octx, t->p.id);
		s->e->gone = true;
		t->nsas = 0;
		break;
	case ST_TUN_UPD:
		u->res->calls++;
		rc = o->tunnel_update(r->cfg.octx, s->oldp);
		if (rc == 0)
			t->p = *s->oldp;
		break;
	case ST_TUN_DEL:
		u->res->calls++;
		rc = o->tunnel_add(r->cfg.octx, &s->olde->pub.p);
		if (rc < 0)
			break;
		s->e->gone = false;
		for (unsigned k = 0; k < s->olde->pub.nsas; k++) {
			const struct reconcile_sa_ref *ref =
			    &s->olde->pub.sas[k];

			undo_readd_sa(u, s->e, ref, &s->olde->pub.soft[k],
			    &s->olde->pub.hard[k], false);
		}
		break;
	case ST_SA_ADD:
		if ((i = sa_index(t, s->ref.dir, s->ref.spi)) < 0)
			break;
		u->res->calls++;
		rc = o->sa_del(r->cfg.octx, t->p.id, s->ref.spi, s->ref.dir);
		if (rc == 0 || rc == -ENOENT) {
			sa_forget(t, i);
			rc = 0;
		}
		break;
	case ST_SA_DEL:
		undo_readd_sa(u, s->e, &s->ref, &s->soft, &s->hard,
		    s->was_active);
		if (s->was_active && sa_index(t, OVERLAY_DIR_OUT,
		    s->ref.spi) >= 0) {
			u->res->calls++;
			if ((rc = o->sa_switch_out(r->cfg.octx, t->p.id,
			    s->ref.spi)) == 0)
				t->spi_out_active = s->ref.spi;
		}
		break;
	case ST_SA_UPD:
#if OVERLAY_API_VERSION >= 2
		/* Lifetimes only: the key is not needed to name them back,
		 * but sa_update takes whole parameters. */
		if ((i = sa_index(t, s->ref.dir, s->ref.spi)) >= 0 &&
		    u->undo_in != NULL) {
			const struct msg_tunnel *mt =
			    msg_intent_find_tunnel(u->undo_in, t->p.id);
			struct overlay_sa_params p;
			char err[128];

			if (mt == NULL || sa_params(r, u->undo_in, mt, &s->ref,
			    &p, err, sizeof(err)) < 0) {
				u->res->rollback_incomplete = true;
				break;
			}
			p.soft = s->soft;
			p.hard = s->hard;
			u->res->calls++;
			rc = o->sa_update(r->cfg.octx, &p);
			util_wipe(&p, sizeof(p));
			if (rc == 0) {
				t->soft[i] = s->soft;
				t->hard[i] = s->hard;
			}
		}
#endif
		break;
	case ST_SWITCH:
		if (s->old_active == 0 ||
		    sa_index(t, OVERLAY_DIR_OUT, s->old_active) < 0)
			break;
		u->res->calls++;
		if ((rc = o->sa_switch_out(r->cfg.octx, t->p.id,
		    s->old_active)) == 0)
			t->spi_out_active = s->old_active;
		break;
	}
	if (rc < 0) {
		log_warnx("reconcile: tunnel %llu: undo failed: %s",
		    (unsigned long long)t->p.id, strerror(-rc));
		u->res->rollback_incomplete = true;
	}
}

static void
run_undo(struct run *u)
{
	while (u->nsteps > 0) {
		struct step *s = &u->steps[--u->nsteps];

		undo_step(u, s);
		free(s->oldp);
		free(s->olde);
	}
}

static void
run_free(struct run *u)
{
	for (size_t i = 0; i < u->nsteps; i++) {
		free(u->steps[i].oldp);
		free(u->steps[i].olde);
	}
	free(u->steps);
	u->steps = NULL;
	u->nsteps = u->capsteps = 0;
}

/* ------------------------------------------------------------------ */
/* Planning */

enum action { A_NONE, A_ADD, A_UPDATE, A_REMAKE };

struct want {
	const struct msg_tunnel *t;
	struct rec *e;			/* current record, NULL if new */
	enum action action;
	enum { LATE_NO, LATE_IN, LATE_OUT } late; /* adds wait for deletes */
	struct overlay_tunnel_params p;
	/* SAs to add (keys inside: wiped after), then SAs to delete. */
	struct overlay_sa_params add[2];
	struct reconcile_sa_ref addref[2];
	unsigned nadd;
	struct reconcile_sa_ref del[RECONCILE_SAS_MAX];
	unsigned ndel;
	/* Kept SAs whose lifetimes change (v2: sa_update). */
	struct reconcile_sa_ref upd[2];
	unsigned nupd;
	uint32_t active;		/* outbound SPI to be active, 0 = none */
	uint64_t hw;			/* outbound high-water mark */
};

static int
want_cmp(const void *a, const void *b)
{
	const struct want *x = a, *y = b;

	return x->t->id < y->t->id ? -1 : x->t->id > y->t->id;
}

struct spi_use {
	uint32_t spi;
	uint64_t tunnel;
	bool deleted;		/* an installed SA this apply deletes */
	struct want *adder;	/* an SA this apply adds */
};

static int
spi_cmp(const void *a, const void *b)
{
	const struct spi_use *x = a, *y = b;

	return x->spi < y->spi ? -1 : x->spi > y->spi;
}

static bool
ref_in(const struct reconcile_sa_ref *set, unsigned n,
    const struct reconcile_sa_ref *ref)
{
	for (unsigned i = 0; i < n; i++)
		if (ref_eq(&set[i], ref))
			return true;
	return false;
}

static bool
lifetime_eq(const struct overlay_lifetime *a, const struct overlay_lifetime *b)
{
	return a->bytes == b->bytes && a->packets == b->packets &&
	    a->seconds == b->seconds;
}

/*
 * The SAs of one tunnel: which to keep, add and delete (reconcile.h,
 * "SAs in steady state and during a rekey").
 */
static int
plan_sas(struct reconcile *r, const struct msg_intent *in, struct want *w,
    char *err, size_t errlen)
{
	struct reconcile_sa_ref win, wout;
	const struct reconcile_tunnel *cur = NULL;
	const struct reconcile_sa_ref *ahead = NULL;
	struct overlay_lifetime soft, hard;
	bool have_in = false, have_out = false;
	uint64_t hw;

	reconcile_intent_sas(w->t, &win, &wout);
	lifetimes(in, w->t, &soft, &hard);
	if (w->e != NULL && w->action != A_REMAKE)
		cur = &w->e->pub;
	hw = w->e != NULL ? w->e->out_hw : tomb_hw(r, w->t->id);
	w->hw = hw;

	for (unsigned i = 0; cur != NULL && i < cur->nsas; i++) {
		const struct reconcile_sa_ref *s = &cur->sas[i];
		bool keep;

		if (s->dir == OVERLAY_DIR_IN) {
			keep = ref_eq(s, &win) || s->sa_epoch > win.sa_epoch ||
			    (win.spi != 0 && s->sa_epoch + 1 == win.sa_epoch);
			if (ref_eq(s, &win)) {
				have_in = true;
				if (!lifetime_eq(&cur->soft[i], &soft) ||
				    !lifetime_eq(&cur->hard[i], &hard))
					w->upd[w->nupd++] = *s;
			}
		} else {
			/* The active outbound SA, switched to by a rekey step
			 * the intent does not name yet, stays. */
			if (s->spi == cur->spi_out_active &&
			    s->sa_epoch > wout.sa_epoch)
				ahead = s;
			continue;
		}
		if (!keep)
			w->del[w->ndel++] = *s;
	}
	/* Outbound: a rekey ahead of the intent wins, else the intent's. */
	for (unsigned i = 0; cur != NULL && i < cur->nsas; i++) {
		const struct reconcile_sa_ref *s = &cur->sas[i];

		if (s->dir != OVERLAY_DIR_OUT)
			continue;
		if (ahead != NULL ? s == ahead : ref_eq(s, &wout)) {
			have_out = true;
			if (ahead == NULL && (!lifetime_eq(&cur->soft[i], &soft) ||
			    !lifetime_eq(&cur->hard[i], &hard)))
				w->upd[w->nupd++] = *s;
			continue;
		}
		w->del[w->ndel++] = *s;
	}
	w->active = ahead != NULL ? ahead->spi : wout.spi;
	if (win.spi != 0 && !have_in)
		w->addref[w->nadd++] = win;
	if (ahead == NULL && wout.spi != 0 && !have_out) {
		if (wout.sa_epoch <= hw) {
			snprintf(err, errlen, "outbound SA epoch %llu (SPI %u) "
			    "is not above epoch %llu already used on this "
			    "tunnel: its key must not be installed again; "
			    "needs a new outbound SA epoch",
			    (unsigned long long)wout.sa_epoch, wout.spi,
			    (unsigned long long)hw);
			return -1;
		}
		w->addref[w->nadd++] = wout;
	}
	/* Same (dir, SPI) deleted and added on one tunnel: delete first. */
	for (unsigned a = 0; a < w->nadd; a++)
		for (unsigned d = 0; d < w->ndel; d++)
			if (w->del[d].dir == w->addref[a].dir &&
			    w->del[d].spi == w->addref[a].spi)
				w->late = w->del[d].dir == OVERLAY_DIR_OUT ?
				    LATE_OUT : w->late == LATE_OUT ? LATE_OUT :
				    LATE_IN;
	if (w->ndel + w->nadd > RECONCILE_SAS_MAX * 2) {
		snprintf(err, errlen, "too many SAs");
		return -1;
	}
	for (unsigned a = 0; a < w->nadd; a++)
		if (sa_params(r, in, w->t, &w->addref[a], &w->add[a], err,
		    errlen) < 0)
			return -1;
	return 0;
}

static struct want *
want_find(struct want *ws, size_t n, uint64_t id)
{
	struct want key = { 0 };
	struct msg_tunnel kt;

	if (n == 0)
		return NULL;
	memset(&kt, 0, sizeof(kt));
	kt.id = id;
	key.t = &kt;
	return bsearch(&key, ws, n, sizeof(*ws), want_cmp);
}

/* Inbound SPIs unique in the instance after the apply; a new SA whose
 * SPI another tunnel frees in this apply waits for that deletion. */
static int
check_spis(struct reconcile *r, struct want *ws, size_t n, char *err,
    size_t errlen)
{
	struct spi_use *v = NULL;
	size_t nv = 0, cap = 0;
	int rc = -1;

	for (size_t i = 0; i < r->nrecs; i++) {
		const struct reconcile_tunnel *t = &r->recs[i]->pub;
		const struct want *w = want_find(ws, n, t->p.id);
		for (unsigned k = 0; k < t->nsas; k++) {
			struct spi_use *x;

			if (t->sas[k].dir != OVERLAY_DIR_IN)
				continue;
			if ((x = util_grow(v, &cap, nv + 1, sizeof(*v), 256)) ==
			    NULL)
				goto oom;
			v = x;
			v[nv].spi = t->sas[k].spi;
			v[nv].tunnel = t->p.id;
			v[nv].adder = NULL;
			v[nv].deleted = w == NULL || w->action == A_REMAKE ||
			    ref_in(w->del, w->ndel, &t->sas[k]);
			nv++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		for (unsigned a = 0; a < ws[i].nadd; a++) {
			struct spi_use *x;

			if (ws[i].addref[a].dir != OVERLAY_DIR_IN)
				continue;
			if ((x = util_grow(v, &cap, nv + 1, sizeof(*v), 256)) ==
			    NULL)
				goto oom;
			v = x;
			v[nv].spi = ws[i].addref[a].spi;
			v[nv].tunnel = ws[i].t->id;
			v[nv].adder = &ws[i];
			v[nv].deleted = false;
			nv++;
		}
	}
	if (nv > 0)
		qsort(v, nv, sizeof(*v), spi_cmp);
	for (size_t i = 0; i < nv;) {
		size_t j = i, live = 0, dead = 0;
		uint64_t a = 0, b = 0;

		for (; j < nv && v[j].spi == v[i].spi; j++) {
			if (v[j].deleted) {
				dead++;
				continue;
			}
			if (live++ == 0)
				a = v[j].tunnel;
			else
				b = v[j].tunnel;
		}
		if (live > 1) {
			snprintf(err, errlen, "inbound SPI %u is wanted by "
			    "tunnels %llu and %llu: inbound SPIs are unique "
			    "per site", v[i].spi, (unsigned long long)a,
			    (unsigned long long)b);
			goto out;
		}
		for (size_t k = i; dead > 0 && k < j; k++)
			if (v[k].adder != NULL &&
			    v[k].adder->late == LATE_NO)
				v[k].adder->late = LATE_IN;
		i = j;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(v);
	return rc;
}

static void
wants_wipe(struct want *ws, size_t n)
{
	for (size_t i = 0; ws != NULL && i < n; i++)
		util_wipe(ws[i].add, sizeof(ws[i].add));
	free(ws);
}

/* Adds (and in-place updates) of one tunnel's SAs, then its switch. */
static int
exec_sa_adds(struct run *u, struct want *w)
{
	struct rec *e = w->e;

	if (do_sa_adds(u, e, w->addref, w->add, w->nadd) < 0)
		return -1;
#if OVERLAY_API_VERSION >= 2
	for (unsigned k = 0; k < w->nupd; k++) {
		int i = sa_index(&e->pub, w->upd[k].dir, w->upd[k].spi);
		struct overlay_sa_params p;
		char err[128];
		int rc;

		if (i < 0)
			continue;
		if (sa_params(u->r, u->in, w->t, &w->upd[k], &p, err,
		    sizeof(err)) < 0) {
			res_fail(u->res, "tunnel %llu: %s",
			    (unsigned long long)w->t->id, err);
			return -1;
		}
		rc = do_sa_upd(u, e, i, &p);
		util_wipe(&p, sizeof(p));
		if (rc < 0)
			return -1;
	}
#endif
	if (w->active != 0 && e->pub.spi_out_active != w->active &&
	    do_switch(u, e, w->active) < 0)
		return -1;
	return 0;
}

/* SA deletes of one stage, across tunnels, for one backend call. */
struct dels {
	struct rec **e;
	struct overlay_sa_ref *refs;
	int *res;
	size_t n, cap;
};

/* Queue the SAs of one direction that w (or, gone, its record) drops. */
static int
queue_sa_dels(struct run *u, struct dels *d, struct want *w, struct rec *e,
    enum overlay_dir dir)
{
	for (unsigned k = 0; k < e->pub.nsas; k++) {
		const struct reconcile_sa_ref *s = &e->pub.sas[k];

		if (s->dir != dir || (w != NULL && w->action != A_REMAKE &&
		    !ref_in(w->del, w->ndel, s)))
			continue;
		if (d->n == d->cap) {
			size_t cap = d->cap != 0 ? d->cap * 2 : 32;
			struct rec **ne = realloc(d->e, cap * sizeof(struct rec *));
			struct overlay_sa_ref *nr;
			int *nres;

			if (ne != NULL)
				d->e = ne;
			nr = ne != NULL ? realloc(d->refs, cap * sizeof(*nr)) :
			    NULL;
			if (nr != NULL)
				d->refs = nr;
			nres = nr != NULL ? realloc(d->res, cap * sizeof(*nres)) :
			    NULL;
			if (nres == NULL) {
				res_fail(u->res, "out of memory");
				return -1;
			}
			d->res = nres;
			d->cap = cap;
		}
		d->e[d->n] = e;
		d->refs[d->n].tunnel_id = e->pub.p.id;
		d->refs[d->n].spi = s->spi;
		d->refs[d->n].dir = s->dir;
		d->n++;
	}
	return 0;
}

/*
 * The queued deletes in one backend call (overlay_sa_del_batch: the
 * kernel backend sends up to 64 per system call; others fall back to
 * sa_del).  Each SA the backend removed (or no longer had) is journaled
 * and forgotten as do_sa_del does, also after a refused one; the first
 * refusal fails the apply.  Empties d.
 */
static int
do_sa_dels(struct run *u, struct dels *d)
{
	struct reconcile *r = u->r;
	struct step *s;
	size_t first = d->n, n;

	if (d->n == 0)
		return 0;
	s = util_grow(u->steps, &u->capsteps, u->nsteps + d->n, sizeof(*s), 32);
	if (s == NULL) {
		res_fail(u->res, "out of memory");
		d->n = 0;
		return -1;
	}
	u->steps = s;
	u->res->calls += d->n;
	(void)overlay_sa_del_batch(r->cfg.ops, r->cfg.octx, d->refs, d->n,
	    d->res);
	for (size_t j = 0; j < d->n; j++) {
		struct reconcile_tunnel *t = &d->e[j]->pub;
		int i = sa_index(t, d->refs[j].dir, d->refs[j].spi);

		if (d->res[j] < 0 && d->res[j] != -ENOENT) {
			if (first == d->n)
				first = j;
			continue;
		}
		if (i < 0)
			continue;
		s = journal(u, ST_SA_DEL, d->e[j]);
		s->ref = t->sas[i];
		s->soft = t->soft[i];
		s->hard = t->hard[i];
		s->was_active = s->ref.dir == OVERLAY_DIR_OUT &&
		    t->spi_out_active == s->ref.spi;
		sa_forget(t, i);
	}
	n = d->n;
	d->n = 0;
	if (first < n)
		return call_fail(u, d->refs[first].tunnel_id, "sa_del",
		    d->res[first]);
	return 0;
}

static void
dels_free(struct dels *d)
{
	free(d->e);
	free(d->refs);
	free(d->res);
	memset(d, 0, sizeof(*d));
}

static int
exec_want(struct run *u, struct want *w)
{
	if ((w->action == A_ADD || w->action == A_REMAKE) &&
	    do_tun_add(u, &w->p, w->hw, &w->e) < 0)
		return -1;
	if (w->action == A_UPDATE && do_tun_upd(u, w->e, &w->p) < 0)
		return -1;
	return exec_sa_adds(u, w);
}

/*
 * The order keeps every step before the last stage exactly undoable; only
 * the last stage destroys outbound SAs (whose keys cannot come back).
 */
static int
exec_plan(struct run *u, struct want *ws, size_t n)
{
	struct reconcile *r = u->r;
	struct dels d = { 0 };
	size_t nold = r->nrecs;
	bool free_spis = false;

	/* 1. Adds, in-place updates, switches to new outbound SAs. */
	for (size_t i = 0; i < n; i++)
		if (ws[i].action != A_REMAKE && ws[i].late == LATE_NO &&
		    exec_want(u, &ws[i]) < 0)
			return -1;
	/* 2. Inbound SAs going away: re-addable, and they free inbound SPIs
	 *    for stage 3 (on tunnels removed or remade too, when stage 3
	 *    needs that; else the tunnel's deletion takes them). */
	for (size_t i = 0; i < n; i++)
		if (ws[i].late == LATE_IN)
			free_spis = true;
	for (size_t i = 0; i < nold; i++) {
		struct want *w = want_find(ws, n, r->recs[i]->pub.p.id);

		if (w != NULL && w->action == A_ADD)
			continue;
		if ((w == NULL || w->action == A_REMAKE) && !free_spis)
			continue;
		if (queue_sa_dels(u, &d, w, r->recs[i], OVERLAY_DIR_IN) < 0)
			goto fail;
	}
	if (do_sa_dels(u, &d) < 0)
		goto fail;
	dels_free(&d);
	/* 3. What waited for an inbound SPI. */
	for (size_t i = 0; i < n; i++)
		if (ws[i].action != A_REMAKE && ws[i].late == LATE_IN &&
		    exec_want(u, &ws[i]) < 0)
			return -1;
	/* 4. Destroying outbound SAs: dropped ones, removed tunnels, then
	 *    remakes and what waited for an outbound SPI. */
	for (size_t i = 0; i < nold; i++) {
		struct rec *e = r->recs[i];
		struct want *w = want_find(ws, n, e->pub.p.id);

		if (w == NULL || w->action == A_REMAKE)
			continue;
		if (queue_sa_dels(u, &d, w, e, OVERLAY_DIR_OUT) < 0)
			goto fail;
	}
	if (do_sa_dels(u, &d) < 0)
		goto fail;
	dels_free(&d);
	for (size_t i = 0; i < nold; i++) {
		struct rec *e = r->recs[i];

		if (!e->gone && want_find(ws, n, e->pub.p.id) == NULL &&
		    do_tun_del(u, e) < 0)
			return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct want *w = &ws[i];

		if (w->action == A_REMAKE && (do_tun_del(u, w->e) < 0 ||
		    exec_want(u, w) < 0))
			return -1;
		if (w->action != A_REMAKE && w->late == LATE_OUT &&
		    exec_want(u, w) < 0)
			return -1;
	}
	return 0;
fail:
	dels_free(&d);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Entry points */

struct reconcile *
reconcile_new(const struct reconcile_config *cfg)
{
	struct reconcile *r;
	const char *pfx = cfg->ifprefix != NULL ? cfg->ifprefix : "mw";
	size_t n = strlen(pfx);

	if (cfg->ops == NULL || cfg->key == NULL || n == 0 ||
	    n > RECONCILE_PREFIX_MAX ||
	    strspn(pfx, "abcdefghijklmnopqrstuvwxyz0123456789") != n) {
		log_warnx("reconcile: bad configuration (backend, key "
		    "provider or device prefix)");
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->cfg = *cfg;
	memcpy(r->prefix, pfx, n + 1);
	r->cfg.ifprefix = r->prefix;
	return r;
}

void
reconcile_free(struct reconcile *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nrecs; i++)
		free(r->recs[i]);
	free(r->recs);
	free(r->tombs);
	msg_intent_free(&r->cur);
	free(r);
}

static void
res_init(struct reconcile_result *res, uint64_t version)
{
	memset(res, 0, sizeof(*res));
	res->version = version;
	res->ok = true;
}

static void
res_note_rollback(struct reconcile_result *res)
{
	size_t len = strlen(res->reason);

	if (res->rollback_incomplete)
		snprintf(res->reason + len, sizeof(res->reason) - len,
		    "; rollback incomplete: an outbound SA could not be "
		    "restored (key used), its tunnel needs a rekey");
}

static int
tunnel_allowed(struct reconcile *r, struct want *w, char *err, size_t errlen)
{
	unsigned n = 0;

	if (r->cfg.allowed == NULL)
		return 0;
	err[0] = '\0';
	if (r->cfg.allowed(r->cfg.allowed_arg, w->t, w->p.allowed,
	    OVERLAY_ALLOWED_MAX, &n, err, errlen) < 0 ||
	    n > OVERLAY_ALLOWED_MAX) {
		if (err[0] == '\0')
			snprintf(err, errlen, "allowed sources not available");
		return -1;
	}
	w->p.nallowed = n;
	if (overlay_tunnel_params_check(&w->p) < 0) {
		snprintf(err, errlen, "allowed source prefixes refused by the "
		    "overlay checks");
		return -1;
	}
	return 0;
}

/*
 * NAT rebinding: while the intent names the endpoint a learned one
 * replaced (reconcile_tunnel_move), the learned one is the tunnel's
 * remote, so the intent does not snap the tunnel back to a mapping the
 * peer's NAT has dropped.  Not across a remake (the new tunnel starts
 * at the intent's endpoint and the backend notices the move again).
 */
static void
plan_moved(struct want *w)
{
	struct overlay_tunnel_params q;

	if (w->e == NULL || !w->e->moved ||
	    !overlay_addr_eq(&w->p.remote, &w->e->intent_remote) ||
	    w->p.remote_port != w->e->intent_port)
		return;
	q = w->p;
	q.remote = w->e->pub.p.remote;
	q.remote_port = w->e->pub.p.remote_port;
	if (!overlay_tunnel_needs_remake(&w->e->pub.p, &q))
		w->p = q;
}

/* Intent tunnels as wants, sorted by id, with their parameters. */
static int
plan_tunnels(struct reconcile *r, const struct msg_intent *in,
    struct want *ws, char *err, size_t errlen)
{
	size_t n = in->n_tunnels;
	char why[256];

	for (size_t i = 0; i < n; i++)
		ws[i].t = &in->tunnels[i];
	if (n > 0)
		qsort(ws, n, sizeof(*ws), want_cmp);
	for (size_t i = 0; i < n; i++) {
		struct want *w = &ws[i];
		uint32_t mtu = 0;

		if (i > 0 && ws[i - 1].t->id == w->t->id) {
			snprintf(err, errlen, "tunnel %llu listed twice",
			    (unsigned long long)w->t->id);
			return -1;
		}
		if (r->cfg.link_mtu != NULL)
			mtu = r->cfg.link_mtu(r->cfg.mtu_arg,
			    w->t->local_link);
		if (reconcile_tunnel_params(&in->site, w->t, r->prefix, mtu,
		    &w->p, why, sizeof(why)) < 0 ||
		    tunnel_allowed(r, w, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "tunnel %llu: %s",
			    (unsigned long long)w->t->id, why);
			return -1;
		}
		/* Device names follow from ids one to one (reconcile_ifname),
		 * so unique ids give unique names; checked anyway, cheaply,
		 * against the neighbour in id order. */
		if (i > 0 && strcmp(ws[i - 1].p.ifname, w->p.ifname) == 0) {
			snprintf(err, errlen, "tunnels %llu and %llu: same "
			    "device name %s",
			    (unsigned long long)ws[i - 1].t->id,
			    (unsigned long long)w->t->id, w->p.ifname);
			return -1;
		}
		w->e = rec_find(r, w->t->id);
		plan_moved(w);
		if (w->e == NULL)
			w->action = A_ADD;
		else if (params_eq(&w->e->pub.p, &w->p))
			w->action = A_NONE;
		else if (overlay_tunnel_needs_remake(&w->e->pub.p, &w->p))
			w->action = A_REMAKE;
		else
			w->action = A_UPDATE;
		if (plan_sas(r, in, w, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "tunnel %llu: %s",
			    (unsigned long long)w->t->id, why);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Overlapping prefixes */

/*
 * The controller never makes two sites' LAN prefixes overlap, nor the
 * tunnel pools a LAN prefix (controller/API.md, 409 overlap), and a peer's
 * allowed prefixes are LAN prefixes of sites: its own, or of the sites a
 * hub carries, never this site's (proto/README.md "Allowed prefixes").
 * So in a good intent the site's LAN prefixes, every tunnel's inner /31
 * and /127 and every peer's allowed prefixes are pairwise disjoint, with
 * two exceptions: the same allowed prefix may come from several tunnels
 * (two links to one peer, two hubs carrying one site), and a default
 * route (length 0, an internet breakout hub) covers everything.  Anything
 * else is refused before a call is made: a /31 inside a LAN would take
 * that LAN's addresses, and a peer allowed a prefix of this site's LAN,
 * or one that covers another peer's, could draw their traffic.
 */
enum pfx_kind { PK_LAN, PK_INNER, PK_ALLOWED };

struct pfx {
	struct msg_prefix p;	/* host bits cleared */
	enum pfx_kind kind;
	uint64_t tunnel;	/* 0 for PK_LAN */
};

static size_t
pfx_bytes(int family)
{
	return family == AF_INET ? 4 : 16;
}

static void
pfx_mask(struct msg_prefix *p, unsigned len)
{
	size_t nb = pfx_bytes(p->addr.family);

	p->len = (uint8_t)len;
	for (size_t i = 0; i < nb; i++) {
		unsigned bits = len > 8 * i ? len - 8 * (unsigned)i : 0;

		if (bits < 8)
			p->addr.bytes[i] &= (uint8_t)(0xff00u >> bits);
	}
}

static int
pfx_cmp(const void *a, const void *b)
{
	const struct pfx *x = a, *y = b;
	int c;

	if (x->p.addr.family != y->p.addr.family)
		return x->p.addr.family < y->p.addr.family ? -1 : 1;
	if ((c = memcmp(x->p.addr.bytes, y->p.addr.bytes,
	    pfx_bytes(x->p.addr.family))) != 0)
		return c;
	return (x->p.len > y->p.len) - (x->p.len < y->p.len);
}

/* a covers b (b equal to a or inside it). */
static bool
pfx_covers(const struct pfx *a, const struct pfx *b)
{
	struct msg_prefix m = b->p;

	if (a->p.addr.family != b->p.addr.family || a->p.len > b->p.len)
		return false;
	pfx_mask(&m, a->p.len);
	return memcmp(m.addr.bytes, a->p.addr.bytes,
	    pfx_bytes(a->p.addr.family)) == 0;
}

static void
pfx_name(const struct pfx *x, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN + 8];

	if (msg_prefix_format(&x->p, t, sizeof(t)) == -1)
		snprintf(t, sizeof(t), "?");
	if (x->kind == PK_LAN)
		snprintf(buf, len, "site LAN prefix %s", t);
	else if (x->kind == PK_INNER)
		snprintf(buf, len, "tunnel %llu's link %s",
		    (unsigned long long)x->tunnel, t);
	else
		snprintf(buf, len, "tunnel %llu's peer prefix %s",
		    (unsigned long long)x->tunnel, t);
}

static void
pfx_add(struct pfx *v, size_t *n, const struct msg_prefix *p, unsigned len,
    enum pfx_kind kind, uint64_t tunnel)
{
	if (len == 0 || (p->addr.family != AF_INET &&
	    p->addr.family != AF_INET6))
		return;	/* a default route overlaps everything by design */
	v[*n].p = *p;
	pfx_mask(&v[*n].p, len);
	v[*n].kind = kind;
	v[*n].tunnel = tunnel;
	(*n)++;
}

/* 0, or -1 with the first two overlapping prefixes in err.  In address
 * order a prefix that covers another comes first, and everything between
 * them lies inside it too, so comparing neighbours finds every overlap
 * (the first check that fails stops the walk). */
static int
check_overlaps(const struct msg_intent *in, char *err, size_t errlen)
{
	size_t cap = in->site.n_lan_prefixes, n = 0;
	struct pfx *v;
	int rc = 0;

	for (size_t i = 0; i < in->n_tunnels; i++)
		cap += 2 + in->tunnels[i].peer.n_allowed_prefixes;
	if ((v = calloc(cap ? cap : 1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < in->site.n_lan_prefixes; i++)
		pfx_add(v, &n, &in->site.lan_prefixes[i],
		    in->site.lan_prefixes[i].len, PK_LAN, 0);
	for (size_t i = 0; i < in->n_tunnels; i++) {
		const struct msg_tunnel *t = &in->tunnels[i];

		pfx_add(v, &n, &t->inner_local, t->inner_local.len, PK_INNER,
		    t->id);
		if (t->inner_local6.addr.family == AF_INET6)
			pfx_add(v, &n, &t->inner_local6, t->inner_local6.len,
			    PK_INNER, t->id);
		for (size_t j = 0; j < t->peer.n_allowed_prefixes; j++)
			pfx_add(v, &n, &t->peer.allowed_prefixes[j],
			    t->peer.allowed_prefixes[j].len, PK_ALLOWED, t->id);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), pfx_cmp);
	for (size_t i = 1; i < n && rc == 0; i++) {
		const struct pfx *a = &v[i - 1], *b = &v[i];
		char x[96], y[96];

		if (!pfx_covers(a, b))
			continue;
		if (a->p.len == b->p.len && a->kind == b->kind &&
		    (a->kind == PK_ALLOWED || a->kind == PK_LAN))
			continue;	/* the same prefix again */
		pfx_name(a, x, sizeof(x));
		pfx_name(b, y, sizeof(y));
		snprintf(err, errlen, "overlapping prefixes: %s and %s", x, y);
		rc = -1;
	}
	free(v);
	return rc;
}

int
reconcile_apply(struct reconcile *r, const struct msg_intent *in,
    struct reconcile_result *res)
{
	char err[400];
	struct want *ws;
	struct msg_intent copy;
	struct run u;
	size_t n = in->n_tunnels;
	int rc = -1;

	res_init(res, in->version);
	if (msg_validate_intent(in, err, sizeof(err)) < 0) {
		res_fail(res, "intent: %s", err);
		return -1;
	}
	if ((ws = calloc(n ? n : 1, sizeof(*ws))) == NULL) {
		res_fail(res, "out of memory");
		return -1;
	}
	if (check_overlaps(in, err, sizeof(err)) < 0 ||
	    plan_tunnels(r, in, ws, err, sizeof(err)) < 0 ||
	    check_spis(r, ws, n, err, sizeof(err)) < 0) {
		res_fail(res, "%s", err);
		goto out;
	}
	if (msg_intent_copy(&copy, in) < 0) {
		res_fail(res, "out of memory");
		goto out;
	}

	memset(&u, 0, sizeof(u));
	u.r = r;
	u.res = res;
	u.in = in;
	u.undo_in = r->have_cur ? &r->cur : NULL;
	if (exec_plan(&u, ws, n) < 0) {
		log_warnx("reconcile: version %llu: %s; rolling back",
		    (unsigned long long)in->version, res->reason);
		run_undo(&u);
		res_note_rollback(res);
		rec_compact(r);
		run_free(&u);
		msg_intent_free(&copy);
		goto out;
	}
	rec_compact(r);
	run_free(&u);
	msg_intent_free(&r->cur);
	r->cur = copy;
	r->have_cur = true;
	log_info("reconcile: version %llu applied: %zu tunnels, %u backend "
	    "calls", (unsigned long long)in->version, n, res->calls);
	rc = 0;
out:
	wants_wipe(ws, n);
	return rc;
}

/* The one place that reads a RekeyOrder's key inputs. */
static void
order_ref(const struct msg_rekey_order *o, enum overlay_dir dir,
    struct reconcile_sa_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	ref->dir = dir;
	ref->spi = o->spi;
	ref->sa_epoch = o->epoch;
	ref->sender_key_epoch = o->sender_key_epoch;
	ref->receiver_key_epoch = o->receiver_key_epoch;
}

static bool
spi_in_elsewhere(const struct reconcile *r, uint64_t tid, uint32_t spi)
{
	for (size_t i = 0; i < r->nrecs; i++) {
		const struct reconcile_tunnel *t = &r->recs[i]->pub;

		if (t->p.id != tid && sa_index(t, OVERLAY_DIR_IN, spi) >= 0)
			return true;
	}
	return false;
}

static int
rekey_install_inbound(struct run *u, struct rec *e,
    const struct msg_tunnel *t, const struct msg_rekey_order *o)
{
	struct reconcile *r = u->r;
	struct reconcile_sa_ref ref;
	struct overlay_sa_params p;
	char err[256];
	int i, rc;

	order_ref(o, OVERLAY_DIR_IN, &ref);
	if (ref.sender_key_epoch == 0 || ref.receiver_key_epoch == 0) {
		res_fail(u->res, "tunnel %llu: the order names no key epochs",
		    (unsigned long long)t->id);
		return -1;
	}
	if ((i = sa_index(&e->pub, OVERLAY_DIR_IN, o->spi)) >= 0) {
		if (ref_eq(&e->pub.sas[i], &ref))
			return 0;	/* a repeated order */
		res_fail(u->res, "inbound SPI %u is held by another SA of "
		    "tunnel %llu", o->spi, (unsigned long long)t->id);
		return -1;
	}
	if (spi_in_elsewhere(r, t->id, o->spi)) {
		res_fail(u->res, "inbound SPI %u is held by another tunnel",
		    o->spi);
		return -1;
	}
	if (sa_params(r, &r->cur, t, &ref, &p, err, sizeof(err)) < 0) {
		res_fail(u->res, "tunnel %llu: %s", (unsigned long long)t->id,
		    err);
		return -1;
	}
	rc = do_sa_add(u, e, &ref, &p);
	util_wipe(&p, sizeof(p));
	return rc;
}

static int
rekey_switch_outbound(struct run *u, struct rec *e,
    const struct msg_tunnel *t, const struct msg_rekey_order *o)
{
	struct reconcile *r = u->r;
	struct reconcile_sa_ref ref;
	struct overlay_sa_params p;
	char err[256];
	int i, rc;

	order_ref(o, OVERLAY_DIR_OUT, &ref);
	if (ref.sender_key_epoch == 0 || ref.receiver_key_epoch == 0) {
		res_fail(u->res, "tunnel %llu: the order names no key epochs",
		    (unsigned long long)t->id);
		return -1;
	}
	if ((i = sa_index(&e->pub, OVERLAY_DIR_OUT, o->spi)) >= 0) {
		if (!ref_eq(&e->pub.sas[i], &ref)) {
			res_fail(u->res, "outbound SPI %u is held by another "
			    "SA of tunnel %llu", o->spi,
			    (unsigned long long)t->id);
			return -1;
		}
		if (e->pub.spi_out_active != o->spi &&
		    do_switch(u, e, o->spi) < 0)
			return -1;
	} else {
		if (ref.sa_epoch <= e->out_hw) {
			res_fail(u->res, "tunnel %llu: outbound SA epoch %llu "
			    "is not above epoch %llu already used: its key "
			    "must not be installed again",
			    (unsigned long long)t->id,
			    (unsigned long long)ref.sa_epoch,
			    (unsigned long long)e->out_hw);
			return -1;
		}
		if (sa_params(r, &r->cur, t, &ref, &p, err, sizeof(err)) < 0) {
			res_fail(u->res, "tunnel %llu: %s",
			    (unsigned long long)t->id, err);
			return -1;
		}
		rc = do_sa_add(u, e, &ref, &p);
		util_wipe(&p, sizeof(p));
		if (rc < 0 || do_switch(u, e, o->spi) < 0)
			return -1;
	}
	/* The switch is done: older outbound SAs carry nothing any more.
	 * A failed delete leaves one inactive SA that the next apply
	 * deletes; it does not fail the step. */
	for (unsigned k = 0; k < e->pub.nsas;) {
		const struct reconcile_sa_ref *s = &e->pub.sas[k];
		struct reconcile_result tmp;
		struct run d;

		if (s->dir != OVERLAY_DIR_OUT || s->spi == o->spi) {
			k++;
			continue;
		}
		res_init(&tmp, 0);
		memset(&d, 0, sizeof(d));
		d.r = r;
		d.res = &tmp;
		if (do_sa_del(&d, e, (int)k) < 0) {
			log_warnx("reconcile: %s (left in place)", tmp.reason);
			k++;
		}
		u->res->calls += tmp.calls;
		run_free(&d);
	}
	return 0;
}

static int
rekey_retire(struct run *u, struct rec *e, const struct msg_tunnel *t,
    const struct msg_rekey_order *o)
{
	struct reconcile_sa_ref win, wout;
	int i;

	if ((i = sa_index(&e->pub, OVERLAY_DIR_IN, o->spi)) < 0)
		return 0;	/* already gone: a repeated order */
	reconcile_intent_sas(t, &win, &wout);
	if (ref_eq(&e->pub.sas[i], &win)) {
		res_fail(u->res, "tunnel %llu: inbound SPI %u is the intent's "
		    "current SA, not retired", (unsigned long long)t->id,
		    o->spi);
		return -1;
	}
	return do_sa_del(u, e, i);
}

int
reconcile_rekey_step(struct reconcile *r, const struct msg_rekey_order *o,
    struct reconcile_result *res)
{
	const struct msg_tunnel *t;
	struct rec *e;
	struct run u;
	int rc;

	res_init(res, 0);
	t = r->have_cur ? msg_intent_find_tunnel(&r->cur, o->tunnel_id) : NULL;
	e = rec_find(r, o->tunnel_id);
	if (t == NULL || e == NULL) {
		res_fail(res, "tunnel %llu is not in the applied intent",
		    (unsigned long long)o->tunnel_id);
		return -1;
	}
	if (o->spi < OVERLAY_SPI_MIN || o->epoch == 0) {
		res_fail(res, "tunnel %llu: bad SPI or epoch in the order",
		    (unsigned long long)o->tunnel_id);
		return -1;
	}
	memset(&u, 0, sizeof(u));
	u.r = r;
	u.res = res;
	u.in = &r->cur;
	u.undo_in = &r->cur;
	switch (o->step) {
	case MSG_REKEY_STEP_INSTALL_INBOUND:
		rc = rekey_install_inbound(&u, e, t, o);
		break;
	case MSG_REKEY_STEP_SWITCH_OUTBOUND:
		rc = rekey_switch_outbound(&u, e, t, o);
		break;
	case MSG_REKEY_STEP_RETIRE:
		rc = rekey_retire(&u, e, t, o);
		break;
	default:
		res_fail(res, "unknown rekey step %d", (int)o->step);
		rc = -1;
		break;
	}
	if (rc < 0) {
		run_undo(&u);
		res_note_rollback(res);
		log_warnx("reconcile: tunnel %llu %s: %s",
		    (unsigned long long)o->tunnel_id,
		    msg_rekey_step_name(o->step), res->reason);
	}
	run_free(&u);
	return rc;
}

int
reconcile_adopt(struct reconcile *r, const struct msg_intent *in,
    struct reconcile_result *res)
{
	char err[400];
	struct want *ws;
	struct msg_intent copy;
	size_t n = in->n_tunnels;
	int rc = -1;

	res_init(res, in->version);
	if (r->nrecs != 0 || r->have_cur) {
		res_fail(res, "adopt needs a reconciler that holds nothing");
		return -1;
	}
	if (msg_validate_intent(in, err, sizeof(err)) < 0) {
		res_fail(res, "intent: %s", err);
		return -1;
	}
	if ((ws = calloc(n ? n : 1, sizeof(*ws))) == NULL) {
		res_fail(res, "out of memory");
		return -1;
	}
	if (plan_tunnels(r, in, ws, err, sizeof(err)) < 0) {
		res_fail(res, "%s", err);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct overlay_tunnel_stats st;
		struct reconcile_sa_ref win, wout;
		struct rec *e, **v;
		int orc;

		orc = r->cfg.ops->tunnel_stats(r->cfg.octx, ws[i].t->id, &st);
		reconcile_intent_sas(ws[i].t, &win, &wout);
		if (orc < 0 || (wout.spi != 0 && st.spi_out != wout.spi)) {
			res_fail(res, "tunnel %llu: the backend does not hold "
			    "it as the intent says", (unsigned long long)
			    ws[i].t->id);
			goto undo;
		}
		e = calloc(1, sizeof(*e));
		v = util_grow(r->recs, &r->caprecs, r->nrecs + 1,
		    sizeof(struct rec *), 16);
		if (e == NULL || v == NULL) {
			free(e);
			res_fail(res, "out of memory");
			goto undo;
		}
		r->recs = v;
		e->pub.p = ws[i].p;
		if (win.spi != 0)
			e->pub.sas[e->pub.nsas++] = win;
		if (wout.spi != 0) {
			e->pub.sas[e->pub.nsas++] = wout;
			e->pub.spi_out_active = wout.spi;
			e->out_hw = wout.sa_epoch;
		}
		for (unsigned k = 0; k < e->pub.nsas; k++)
			lifetimes(in, ws[i].t, &e->pub.soft[k],
			    &e->pub.hard[k]);
		r->recs[r->nrecs++] = e;
	}
	if (msg_intent_copy(&copy, in) < 0) {
		res_fail(res, "out of memory");
		goto undo;
	}
	rec_compact(r);
	r->cur = copy;
	r->have_cur = true;
	rc = 0;
	goto out;
undo:
	for (size_t i = 0; i < r->nrecs; i++)
		free(r->recs[i]);
	r->nrecs = 0;
out:
	wants_wipe(ws, n);
	return rc;
}

size_t
reconcile_ntunnels(const struct reconcile *r)
{
	return r->nrecs;
}

const struct reconcile_tunnel *
reconcile_tunnel_get(const struct reconcile *r, size_t i)
{
	return i < r->nrecs ? &r->recs[i]->pub : NULL;
}

const struct reconcile_tunnel *
reconcile_tunnel_find(const struct reconcile *r, uint64_t id)
{
	const struct rec *e = rec_find(r, id);

	return e != NULL ? &e->pub : NULL;
}

uint64_t
reconcile_version(const struct reconcile *r)
{
	return r->have_cur ? r->cur.version : 0;
}

int
reconcile_tunnel_move(struct reconcile *r, uint64_t id,
    const struct overlay_addr *remote, uint16_t port)
{
	struct overlay_tunnel_params p;
	struct rec *e = rec_find(r, id);
	int rc;

	if (e == NULL || e->gone)
		return -ENOENT;
	p = e->pub.p;
	p.remote = *remote;
	p.remote_port = port;
	if ((rc = overlay_tunnel_params_check(&p)) < 0)
		return rc;
	if ((rc = r->cfg.ops->tunnel_update(r->cfg.octx, &p)) < 0)
		return rc;
	if (!e->moved) {
		e->intent_remote = e->pub.p.remote;
		e->intent_port = e->pub.p.remote_port;
		e->moved = true;
	}
	e->pub.p = p;
	return 0;
}
