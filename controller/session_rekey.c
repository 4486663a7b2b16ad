/*
 * session_rekey.c — the SA epoch (rekey) state machine, make-before-break
 * and ack-gated (design.md §4): for one direction sender -> receiver of a
 * tunnel, a new epoch is INSTALLED (receiver told to install the inbound
 * SA), ACKED (receiver acked; sender told to switch its outbound SA),
 * ACTIVE (sender acked; the old epoch is DRAINING and the receiver is told
 * to retire it after SESSION_DRAIN_S), then gone (receiver acked the
 * retire).  Rekeys start on time (the crypto profile's rekey interval),
 * from the operator (REST API), when a peer is revoked, when an end
 * announces a new X25519 key epoch, or when an edge asks (RekeyRequest,
 * rate-limited per tunnel direction).
 *
 * Every new epoch is named with the key epochs of both ends it is keyed
 * with (the newest unexpired ones when it starts), fixed for its life:
 * both steps and both ends' intents say the same ones, so both ends
 * derive the same key (proto/README.md, "SA keys").
 *
 * Why a file of its own: every state change of an epoch is here, so the
 * whole machine reads in one place.  The epochs live in the store
 * (sa_epochs) and in its cache s->epochs; the intents carry the active
 * SPIs, which session_intent.c rebuilds when an epoch becomes active.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/epochs.h"
#include "controller/model.h"
#include "controller/session_int.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"

#define SESSION_DRAIN_S 30          /* old inbound SA kept after a switch */
/* Edge rekey requests: one accepted per tunnel direction per interval;
 * drops are logged once per interval per edge. */
#define SESSION_REKEY_REQ_INTERVAL_S 10

/* ------------------------------------------------------------------ */
/* SA epochs */

/* The active epoch of one direction of a tunnel (the newest), or NULL. */
struct model_epoch *
session_rekey_epoch_active(struct sessions *s, uint64_t tunnel_id,
    uint64_t sender)
{
	struct model_epoch *v, *best = NULL;
	size_t n;

	v = epochs_of(s->epochs, tunnel_id, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i].sender_site == sender &&
		    v[i].state == MODEL_EPOCH_ACTIVE)
			best = &v[i];
	return best;
}

/* Forget the epochs of removed tunnels (the store cascaded). */
void
session_rekey_epochs_drop(struct sessions *s, const uint64_t *removed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		epochs_drop_tunnel(s->epochs, removed[i]);
}

int
session_rekey_epochs_load(struct sessions *s)
{
	struct model_error err = { 0 };
	struct model_epoch *ep = NULL;
	size_t n = 0;

	if (store_epoch_list(s->st, 0, &ep, &n, &err) == -1) {
		log_warnx("session: loading SA epochs: %s", err.message);
		return -1;
	}
	if (epochs_load(s->epochs, ep, n) == -1) {
		log_warnx("session: loading SA epochs: out of memory");
		free(ep);
		return -1;
	}
	free(ep);
	return 0;
}

/* The receiver's outer address of tunnel t for traffic from sender. */
static void
session_recv_address(const struct sessions *s, const struct model_tunnel *t,
    uint64_t sender, char *out, size_t outsz)
{
	uint64_t recv = sender == t->site_a ? t->site_b : t->site_a;
	const char *link = sender == t->site_a ? t->link_b : t->link_a;
	const struct model_site *ms = session_site(s, recv);
	int li;

	out[0] = '\0';
	/* The stored site may have lost the link while a batch still
	 * compiles against its older copy (which the tunnel names). */
	if (ms == NULL || (li = model_site_find_link(ms, link)) < 0) {
		ms = topo_site(s->topo, recv);
		if (ms == NULL || (li = model_site_find_link(ms, link)) < 0)
			return;
	}
	snprintf(out, outsz, "%s", ms->links[li].public_address[0] ?
	    ms->links[li].public_address : ms->links[li].address);
}

/* The first epoch of direction i (0: a -> b) of tunnel t, active at once,
 * keyed with both ends' newest keys (key-less while one has none). */
static struct model_epoch
session_first_epoch(struct sessions *s, const struct model_tunnel *t, int i)
{
	const uint64_t senders[2] = { t->site_a, t->site_b };
	struct model_epoch e = {
		.tunnel_id = t->id,
		.sender_site = senders[i],
		.epoch = 1,
		.state = MODEL_EPOCH_ACTIVE,
		.changed_at = session_now(s),
	};

	e.sender_key_epoch = session_keys_newest(s, senders[i]);
	e.receiver_key_epoch = session_keys_newest(s, senders[1 - i]);
	if (e.sender_key_epoch == 0 || e.receiver_key_epoch == 0)
		e.sender_key_epoch = e.receiver_key_epoch = 0;
	session_recv_address(s, t, senders[i], e.recv_address,
	    sizeof(e.recv_address));
	return e;
}

/* Epoch 1 of both directions of a new tunnel, active at once. */
int
session_rekey_epochs_init(struct sessions *s, const struct model_tunnel *t)
{
	struct model_error err = { 0 };

	for (int i = 0; i < 2; i++) {
		struct model_epoch e;

		if (epochs_find(s->epochs, t->id, i == 0 ? t->site_a :
		    t->site_b, 1) != NULL)
			continue;
		e = session_first_epoch(s, t, i);
		if (store_epoch_add(s->st, &e, &err) == -1) {
			log_warnx("session: tunnel %" PRIu64 ": epoch: %s",
			    t->id, err.message);
			return -1;
		}
		if (epochs_insert(s->epochs, &e) == -1)
			return -1;
	}
	return 0;
}

/*
 * A re-allocated tunnel (same id, new /31, VNI or encapsulation), or one
 * whose end moved to another local address: an edge makes it anew and
 * installs its SAs again, and refuses an outbound SA epoch it has used
 * on that tunnel (its key must never be installed twice).  So both
 * directions start over, active at once, at an epoch above every one
 * the store recorded for the tunnel, with SPIs none of its old ones; the
 * old epochs (live, rekeying or draining) go, in the store and here
 * alike.  The store is asked, not this cache: it is what the edges'
 * earlier intents were built from.  why: for the log line.
 */
int
session_rekey_epochs_renew(struct sessions *s, const struct model_tunnel *t,
    const char *why)
{
	struct model_error err = { 0 };
	struct model_epoch e[2];

	e[0] = session_first_epoch(s, t, 0);
	e[1] = session_first_epoch(s, t, 1);
	if (store_epoch_renew(s->st, e, 2, &err) == -1) {
		log_warnx("session: tunnel %" PRIu64 ": new epochs: %s",
		    t->id, err.message);
		return -1;
	}
	epochs_drop_tunnel(s->epochs, t->id);
	if (epochs_insert(s->epochs, &e[0]) == -1 ||
	    epochs_insert(s->epochs, &e[1]) == -1)
		return -1;
	log_info("session: tunnel %" PRIu64 " %s: SA epochs start over at %"
	    PRIu64, t->id, why, e[0].epoch);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rekey orders */

/* ks, kr: the SA's key epochs (sender's, receiver's); 0 for RETIRE. */
static void
session_send_rekey(struct sessions *s, uint64_t to_site, uint64_t tunnel_id,
    uint64_t epoch, enum msg_rekey_step step, enum msg_rekey_reason reason,
    uint32_t spi, uint64_t ks, uint64_t kr)
{
	struct edge *e = session_edge_find(s, to_site);
	struct msg_controller_message m;

	if (e == NULL || e->stream == NULL || !e->hello)
		return; /* resent on its next hello */
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_REKEY;
	if (step == MSG_REKEY_STEP_RETIRE)
		ks = kr = 0;
	m.u.rekey = (struct msg_rekey_order){ tunnel_id, epoch, step, reason,
	    spi, step == MSG_REKEY_STEP_RETIRE ? SESSION_DRAIN_S : 0, ks, kr };
	if (session_send(s, e, &m, METRICS_RPC_MAX) == 0 || !e->blocked)
		return;
	/* Dropped by backpressure: remembered, sent again after the drain
	 * (only these, so a small queue still makes progress). */
	if (e->n_dropped == e->cap_dropped) {
		size_t cap = e->cap_dropped ? e->cap_dropped * 2 : 8;
		struct rekey_drop *d = realloc(e->dropped, cap * sizeof(*d));

		if (d == NULL)
			return; /* the next hello repeats it */
		e->dropped = d;
		e->cap_dropped = cap;
	}
	e->dropped[e->n_dropped++] = (struct rekey_drop){ tunnel_id, epoch,
	    step, reason, spi, ks, kr };
}

/* A stored reason as the wire's enum (anything unknown: unspecified). */
static enum msg_rekey_reason
session_reason(uint32_t r)
{
	switch (r) {
	case MSG_REKEY_REASON_TIME:
	case MSG_REKEY_REASON_VOLUME:
	case MSG_REKEY_REASON_OPERATOR:
	case MSG_REKEY_REASON_PEER_REVOKED:
	case MSG_REKEY_REASON_KEY:
	case MSG_REKEY_REASON_LOCAL_ERROR:
		return (enum msg_rekey_reason)r;
	default:
		return MSG_REKEY_REASON_UNSPECIFIED;
	}
}

/* Is a dropped order still the next step of its direction? */
static bool
session_drop_pending(struct sessions *s, const struct edge *e,
    const struct rekey_drop *d)
{
	const struct model_tunnel *t = topo_tunnel_get(s->topo, d->tunnel_id);
	const struct model_epoch *x;
	uint64_t peer, sender;

	if (t == NULL || (t->site_a != e->site_id && t->site_b != e->site_id))
		return false;
	peer = t->site_a == e->site_id ? t->site_b : t->site_a;
	sender = d->step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? e->site_id : peer;
	if (d->step == MSG_REKEY_STEP_RETIRE) {
		size_t n;
		const struct model_epoch *v = epochs_of(s->epochs, t->id, &n);

		for (size_t i = 0; i < n; i++)
			if (v[i].sender_site == sender &&
			    v[i].state == MODEL_EPOCH_DRAINING &&
			    v[i].epoch < d->epoch)
				return true;
		return false;
	}
	if ((x = epochs_find(s->epochs, t->id, sender, d->epoch)) == NULL)
		return false;
	return d->step == MSG_REKEY_STEP_INSTALL_INBOUND ?
	    x->state == MODEL_EPOCH_INSTALLED : x->state == MODEL_EPOCH_ACKED;
}

/*
 * After a drained queue: send again the rekey orders the overflow dropped
 * that are still due (one that fails again is kept for the next drain);
 * they would otherwise wait for the next hello.
 */
void
session_rekey_drained(struct sessions *s, struct edge *e)
{
	struct rekey_drop *d = e->dropped;
	size_t n = e->n_dropped;

	e->dropped = NULL;
	e->n_dropped = e->cap_dropped = 0;
	for (size_t i = 0; i < n; i++)
		if (session_drop_pending(s, e, &d[i]))
			session_send_rekey(s, e->site_id, d[i].tunnel_id,
			    d[i].epoch, d[i].step, d[i].reason, d[i].spi,
			    d[i].sender_key_epoch, d[i].receiver_key_epoch);
	free(d);
}

/* ------------------------------------------------------------------ */
/* Starting rekeys */

/*
 * Epoch writes go with a change-log entry in the same transaction, so
 * that other controllers on the store reload the tunnel's epochs and
 * send the steps due to the ends they hold:
 *   session_epoch_begin(); rc = store_epoch_...(); session_epoch_end(rc).
 * Inside a batch both join it.  A write that missed (its tunnel just
 * deleted) leaves the transaction usable, as without the entry.
 */
static int
session_epoch_begin(struct sessions *s, struct model_error *err)
{
	return store_begin(s->st, err);
}

static int
session_epoch_end(struct sessions *s, uint64_t tunnel_id, int rc,
    struct model_error *err)
{
	int crc;

	if (rc == 0)
		rc = store_note_event(s->st, STORE_CHANGE_EPOCHS, tunnel_id,
		    err);
	crc = store_commit(s->st, rc == 0 ? err : NULL);
	return rc == 0 ? crc : rc;
}

/* Start a new epoch for the direction sender -> receiver of tunnel t. */
static void
session_rekey_start(struct sessions *s, const struct model_tunnel *t,
    uint64_t sender, enum msg_rekey_reason reason)
{
	struct model_error err = { 0 };
	struct model_epoch ne = { 0 };
	uint64_t recv = sender == t->site_a ? t->site_b : t->site_a;
	uint64_t max = 0, ks, kr;
	bool keyed = false;
	const struct model_epoch *v;
	size_t n;

	v = epochs_of(s->epochs, t->id, &n);
	for (size_t i = 0; i < n; i++) {
		if (v[i].sender_site != sender)
			continue;
		if (v[i].state == MODEL_EPOCH_INSTALLED ||
		    v[i].state == MODEL_EPOCH_ACKED)
			return; /* one rekey at a time per direction */
		if (v[i].epoch > max)
			max = v[i].epoch;
		if (v[i].state == MODEL_EPOCH_ACTIVE &&
		    v[i].sender_key_epoch != 0)
			keyed = true;
	}
	/* Keyed with both ends' newest usable keys.  Without one of them
	 * the new SA has no key: fine for a direction that has none yet,
	 * never as a replacement of a keyed one (that would cut traffic
	 * the old key still carries). */
	ks = session_keys_newest(s, sender);
	kr = session_keys_newest(s, recv);
	if (ks == 0 || kr == 0) {
		if (keyed || reason == MSG_REKEY_REASON_KEY) {
			/* Debug only: a time scan repeats it every few
			 * seconds; the key's expiry was logged once. */
			if (keyed)
				log_debug("session", "tunnel %" PRIu64 " %"
				    PRIu64 "->%" PRIu64 ": no %s key; %s "
				    "rekey skipped", t->id, sender, recv,
				    ks == 0 ? "sender" : "receiver",
				    msg_rekey_reason_name(reason));
			return;
		}
		ks = kr = 0;
	}
	ne.tunnel_id = t->id;
	ne.sender_site = sender;
	ne.epoch = max + 1;
	ne.state = MODEL_EPOCH_INSTALLED;
	ne.changed_at = session_now(s);
	ne.reason = (uint32_t)reason;
	ne.sender_key_epoch = ks;
	ne.receiver_key_epoch = kr;
	session_recv_address(s, t, sender, ne.recv_address,
	    sizeof(ne.recv_address));
	if (session_epoch_begin(s, &err) == -1 ||
	    session_epoch_end(s, t->id, store_epoch_add(s->st, &ne, &err),
	    &err) == -1 || epochs_insert(s->epochs, &ne) == -1) {
		log_warnx("session: tunnel %" PRIu64 ": new epoch: %s", t->id,
		    err.message);
		return;
	}
	log_info("session: tunnel %" PRIu64 " %" PRIu64 "->%" PRIu64
	    ": rekey to epoch %" PRIu64 " (%s, keys %" PRIu64 "/%" PRIu64 ")",
	    t->id, sender, recv, ne.epoch, msg_rekey_reason_name(reason), ks,
	    kr);
	session_send_rekey(s, recv, t->id, ne.epoch,
	    MSG_REKEY_STEP_INSTALL_INBOUND, reason, ne.spi, ks, kr);
}

/*
 * Many new epochs at once (a site's tunnels, a time scan) go into the
 * store in one transaction, not one synced commit each: thousands of
 * rekeys on a large mesh would otherwise spend seconds in fsync.  If the
 * commit fails, the cache is reloaded from the store, so the epochs that
 * did not land are forgotten and start again at the next scan.
 */
static void
session_rekey_batch(struct sessions *s, bool begin)
{
	struct model_error err = { 0 };

	if (begin) {
		if (store_begin(s->st, &err) == -1)
			log_warnx("session: rekeys: %s", err.message);
		return;
	}
	if (store_commit(s->st, &err) == -1) {
		log_warnx("session: storing new SA epochs: %s", err.message);
		session_rekey_epochs_load(s);
	}
}

/* Rotate both directions of every tunnel of site_id. */
void
session_rekey_site(struct sessions *s, uint64_t site_id,
    enum msg_rekey_reason reason)
{
	struct edge *e = session_edge_find(s, site_id);

	uint64_t *tid = NULL, *peers = NULL;
	size_t nt;

	if (e == NULL || !e->live)
		return;
	/* The compiled tunnels, not e's intent: with several controllers
	 * the intent of an edge held by another one is not kept here. */
	nt = topo_edge_tunnel_count(s->topo, site_id);
	if (nt == 0 || (tid = calloc(nt, sizeof(*tid))) == NULL ||
	    (peers = calloc(nt, sizeof(*peers))) == NULL) {
		free(tid);
		return;
	}
	nt = topo_edge_tunnels(s->topo, site_id, tid, peers, nt);
	session_rekey_batch(s, true);
	for (size_t i = 0; i < nt; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo, tid[i]);

		if (t == NULL)
			continue;
		session_rekey_start(s, t, t->site_a, reason);
		session_rekey_start(s, t, t->site_b, reason);
	}
	session_rekey_batch(s, false);
	free(tid);
	free(peers);
}

/* Time-based rekey: directions whose active epoch outlived the profile. */
void
session_rekey_scan(struct sessions *s)
{
	struct rekey_due {
		uint64_t tunnel_id, sender;
	} *due = NULL, *nd;
	int64_t now = session_now(s);
	uint32_t life = s->crypto.rekey_seconds;
	const struct model_epoch *v;
	size_t cursor = 0, n, n_due = 0, cap = 0;

	if (life == 0)
		return;
	/* Collect first: starting a rekey adds to the cache being walked. */
	while ((v = epochs_next(s->epochs, &cursor, &n)) != NULL)
		for (size_t i = 0; i < n; i++) {
			if (v[i].state != MODEL_EPOCH_ACTIVE ||
			    v[i].changed_at == 0 ||
			    now - v[i].changed_at < (int64_t)life)
				continue;
			if (n_due == cap) {
				if ((nd = util_grow(due, &cap, n_due + 1,
				    sizeof(*due), 64)) == NULL)
					goto out;
				due = nd;
			}
			due[n_due++] = (struct rekey_due){ v[i].tunnel_id,
			    v[i].sender_site };
		}
	session_rekey_batch(s, true);
	for (size_t i = 0; i < n_due; i++) {
		const struct model_tunnel *t = topo_tunnel_get(s->topo,
		    due[i].tunnel_id);

		if (t != NULL)
			session_rekey_start(s, t, due[i].sender,
			    MSG_REKEY_REASON_TIME);
	}
	session_rekey_batch(s, false);
out:
	free(due);
}

/* ------------------------------------------------------------------ */
/* Acks */

void
session_rekey_ack(struct sessions *s, struct edge *e, const struct msg_ack *a)
{
	const struct model_tunnel *t = topo_tunnel_get(s->topo,
	    a->rekey_tunnel_id);
	struct model_error err = { 0 };
	struct model_epoch *ep, *old;
	uint64_t peer, sender;

	if (t == NULL || (t->site_a != e->site_id && t->site_b != e->site_id)) {
		log_warnx("session: site %" PRIu64 ": rekey ack for a tunnel "
		    "it does not have (%" PRIu64 ")", e->site_id,
		    a->rekey_tunnel_id);
		return;
	}
	peer = t->site_a == e->site_id ? t->site_b : t->site_a;
	/* INSTALL and RETIRE are acked by the receiver, SWITCH by the
	 * sender. */
	sender = a->rekey_step == MSG_REKEY_STEP_SWITCH_OUTBOUND ? e->site_id :
	    peer;
	ep = epochs_find(s->epochs, t->id, sender, a->rekey_epoch);
	if (ep == NULL)
		return;
	if (!a->ok) {
		log_warnx("session: site %" PRIu64 ": rekey %s of tunnel %"
		    PRIu64 " epoch %" PRIu64 " failed: %s", e->site_id,
		    msg_rekey_step_name(a->rekey_step), t->id, ep->epoch,
		    a->reason);
		return;
	}
	switch (a->rekey_step) {
	case MSG_REKEY_STEP_INSTALL_INBOUND:
		if (ep->state != MODEL_EPOCH_INSTALLED)
			return;
		if (session_epoch_begin(s, &err) == -1 ||
		    session_epoch_end(s, t->id, store_epoch_set_state(s->st,
		    t->id, sender, ep->epoch, MODEL_EPOCH_ACKED,
		    session_now(s), &err), &err) == -1)
			break;
		ep->state = MODEL_EPOCH_ACKED;
		session_send_rekey(s, sender, t->id, ep->epoch,
		    MSG_REKEY_STEP_SWITCH_OUTBOUND,
		    session_reason(ep->reason), ep->spi,
		    ep->sender_key_epoch, ep->receiver_key_epoch);
		return;
	case MSG_REKEY_STEP_SWITCH_OUTBOUND: {
		uint64_t ep_no = ep->epoch, ks = ep->sender_key_epoch;
		uint64_t kr = ep->receiver_key_epoch, nks, nkr;
		enum msg_rekey_reason why = session_reason(ep->reason);
		uint32_t old_spi = 0;

		if (ep->state != MODEL_EPOCH_ACKED)
			return;
		old = session_rekey_epoch_active(s, t->id, sender);
		if (store_begin(s->st, &err) == -1)
			break;
		if (old != NULL) {
			old_spi = old->spi;
			store_epoch_set_state(s->st, t->id, sender, old->epoch,
			    MODEL_EPOCH_DRAINING, session_now(s), &err);
		}
		store_epoch_set_state(s->st, t->id, sender, ep_no,
		    MODEL_EPOCH_ACTIVE, session_now(s), &err);
		(void)store_note_event(s->st, STORE_CHANGE_EPOCHS, t->id,
		    &err);
		if (store_commit(s->st, &err) == -1)
			break;
		if (old != NULL)
			old->state = MODEL_EPOCH_DRAINING;
		ep->state = MODEL_EPOCH_ACTIVE;
		if (old_spi != 0)
			session_send_rekey(s, peer, t->id, ep_no,
			    MSG_REKEY_STEP_RETIRE, why, old_spi, 0, 0);
		/* Both ends' intents carry the active SPIs: that tunnel
		 * alone is rebuilt in each. */
		if (session_ids_add(&s->retunnel, &s->n_retunnel,
		    &s->cap_retunnel, t->id) == -1) {
			session_mark_dirty(s, t->site_a);
			session_mark_dirty(s, t->site_b);
		}
		session_arm_flush(s);
		/* A key announced while this rekey ran (one at a time per
		 * direction): move on to it now, not at the next trigger. */
		nks = session_keys_newest(s, sender);
		nkr = session_keys_newest(s, peer);
		if (nks != 0 && nkr != 0 && (nks != ks || nkr != kr))
			session_rekey_start(s, t, sender, MSG_REKEY_REASON_KEY);
		return;
	}
	case MSG_REKEY_STEP_RETIRE:
		/* Forget every draining epoch of this direction older than
		 * the acked one. */
		for (;;) {
			size_t n;
			const struct model_epoch *v = epochs_of(s->epochs,
			    t->id, &n), *x = NULL;

			for (size_t i = 0; i < n && x == NULL; i++)
				if (v[i].sender_site == sender &&
				    v[i].state == MODEL_EPOCH_DRAINING &&
				    v[i].epoch < a->rekey_epoch)
					x = &v[i];
			if (x == NULL || session_epoch_begin(s, &err) == -1 ||
			    session_epoch_end(s, t->id, store_epoch_delete(
			    s->st, t->id, sender, x->epoch, &err), &err) == -1)
				break;
			(void)epochs_remove(s->epochs, t->id, sender,
			    x->epoch);
		}
		if (err.code == MODEL_OK)
			return;
		break;
	default:
		return;
	}
	log_warnx("session: tunnel %" PRIu64 ": epoch bookkeeping: %s", t->id,
	    err.message);
}

/* The steps of tunnel tid (peer: its other end) that e has not acked. */
static void
session_rekey_resend_tunnel(struct sessions *s, struct edge *e, uint64_t tid,
    uint64_t peer)
{
	size_t n;
	const struct model_epoch *v = epochs_of(s->epochs, tid, &n);

	for (size_t j = 0; j < n; j++) {
		const struct model_epoch *x = &v[j];

		if (x->state == MODEL_EPOCH_INSTALLED &&
		    x->sender_site == peer)
			session_send_rekey(s, e->site_id, tid, x->epoch,
			    MSG_REKEY_STEP_INSTALL_INBOUND,
			    session_reason(x->reason), x->spi,
			    x->sender_key_epoch, x->receiver_key_epoch);
		else if (x->state == MODEL_EPOCH_ACKED &&
		    x->sender_site == e->site_id)
			session_send_rekey(s, e->site_id, tid, x->epoch,
			    MSG_REKEY_STEP_SWITCH_OUTBOUND,
			    session_reason(x->reason), x->spi,
			    x->sender_key_epoch, x->receiver_key_epoch);
		else if (x->state == MODEL_EPOCH_DRAINING &&
		    x->sender_site == peer) {
			const struct model_epoch *act =
			    session_rekey_epoch_active(s, tid, peer);

			if (act != NULL && act->epoch > x->epoch)
				session_send_rekey(s, e->site_id, tid,
				    act->epoch, MSG_REKEY_STEP_RETIRE,
				    session_reason(act->reason),
				    x->spi, 0, 0);
		}
	}
}

/* On hello: repeat the rekey steps this edge has not acked yet. */
void
session_rekey_resend(struct sessions *s, struct edge *e)
{
	for (size_t i = 0; i < e->cur.n_tunnels; i++)
		session_rekey_resend_tunnel(s, e, e->cur.tunnels[i].id,
		    e->cur.tunnels[i].peer.site_id);
}

/*
 * Another controller changed tunnel_id's SA epochs (started a rekey, or
 * took an end's ack of a step): the store has them.  Replace this
 * tunnel's epochs in memory, send each end held here the step now due to
 * it (so a rekey ordered through one controller runs between edges held
 * by others), and rebuild the tunnel in both ends' intents (the active
 * SPIs may have moved).
 */
void
session_rekey_follow(struct sessions *s, uint64_t tunnel_id)
{
	struct model_error err = { 0 };
	const struct model_tunnel *t = topo_tunnel_get(s->topo, tunnel_id);
	struct model_epoch *ep = NULL;
	size_t n = 0;

	if (store_epoch_list(s->st, tunnel_id, &ep, &n, &err) == -1) {
		/* Reloaded whole at the next reload or restart. */
		log_warnx("session: tunnel %" PRIu64 ": reading SA epochs: %s",
		    tunnel_id, err.message);
		return;
	}
	epochs_drop_tunnel(s->epochs, tunnel_id);
	for (size_t i = 0; i < n; i++)
		if (epochs_insert(s->epochs, &ep[i]) == -1) {
			s->reload = true;       /* memory: start over */
			s->dirty_all = true;
		}
	free(ep);
	if (t == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		uint64_t end = i == 0 ? t->site_a : t->site_b;
		struct edge *e = session_edge_find(s, end);

		if (e != NULL && e->stream != NULL && e->hello)
			session_rekey_resend_tunnel(s, e, tunnel_id,
			    i == 0 ? t->site_b : t->site_a);
	}
	if (session_ids_add(&s->retunnel, &s->n_retunnel, &s->cap_retunnel,
	    tunnel_id) == -1) {
		session_mark_dirty(s, t->site_a);
		session_mark_dirty(s, t->site_b);
	}
	session_arm_flush(s);
}

/* ------------------------------------------------------------------ */
/* Operator requests from the API thread */

void
session_rekey_request(struct sessions *s, bool site, uint64_t id)
{
	uint64_t one = 1;
	bool queued = false;

	pthread_mutex_lock(&s->lock);
	if (s->n_pending_rekey == s->cap_pending_rekey) {
		size_t cap = s->cap_pending_rekey ? s->cap_pending_rekey * 2 : 8;
		struct rekey_req *r = realloc(s->pending_rekey,
		    cap * sizeof(*r));

		if (r != NULL) {
			s->pending_rekey = r;
			s->cap_pending_rekey = cap;
		}
	}
	if (s->n_pending_rekey < s->cap_pending_rekey) {
		s->pending_rekey[s->n_pending_rekey++] =
		    (struct rekey_req){ site, id };
		queued = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (!queued) {
		log_warnx("session: out of memory; rekey of %s %" PRIu64
		    " dropped", site ? "site" : "tunnel", id);
		return;
	}
	if (write(s->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_warn("session: wake");
}

/* Loop side of session_rekey_request. */
void
session_rekey_requested(struct sessions *s, const struct rekey_req *r)
{
	const struct model_tunnel *t;

	if (r->site) {
		log_info("session: operator rekey of site %" PRIu64, r->id);
		session_rekey_site(s, r->id, MSG_REKEY_REASON_OPERATOR);
		return;
	}
	if ((t = topo_tunnel_get(s->topo, r->id)) == NULL) {
		log_warnx("session: operator rekey of tunnel %" PRIu64 ": no "
		    "such tunnel any more", r->id);
		return;
	}
	log_info("session: operator rekey of tunnel %" PRIu64, r->id);
	session_rekey_start(s, t, t->site_a, MSG_REKEY_REASON_OPERATOR);
	session_rekey_start(s, t, t->site_b, MSG_REKEY_REASON_OPERATOR);
}

/* ------------------------------------------------------------------ */
/* Edge requests (RekeyRequest) */

/*
 * Whether e may have a rekey of tunnel_id's direction from sender now:
 * at most one accepted per direction per SESSION_REKEY_REQ_INTERVAL_S.
 * Entries older than the interval are reused, so the table holds at most
 * two per tunnel of the edge.
 */
static bool
session_rq_allow(struct edge *e, uint64_t tunnel_id, uint64_t sender,
    uint64_t now)
{
	const uint64_t ivl = SESSION_REKEY_REQ_INTERVAL_S * 1000ull;
	struct rekey_rq *free_slot = NULL;

	for (size_t i = 0; i < e->n_rq; i++) {
		struct rekey_rq *r = &e->rq[i];

		if (now - r->at_ms >= ivl) {
			if (free_slot == NULL)
				free_slot = r;
			continue;
		}
		if (r->tunnel_id == tunnel_id && r->sender == sender)
			return false;
	}
	if (free_slot == NULL) {
		if (e->n_rq == e->cap_rq) {
			struct rekey_rq *v = util_grow(e->rq, &e->cap_rq,
			    e->n_rq + 1, sizeof(*v), 8);

			if (v == NULL)
				return false;
			e->rq = v;
		}
		free_slot = &e->rq[e->n_rq++];
	}
	*free_slot = (struct rekey_rq){ tunnel_id, sender, now };
	return true;
}

/* Requests refused (bad) or over the limit: one log line per kind and
 * interval, with the count since the last one. */
static void
session_rq_drop(struct edge *e, uint64_t now, bool bad, const char *why)
{
	uint64_t *at = bad ? &e->rq_bad_log_ms : &e->rq_log_ms;
	uint64_t *count = bad ? &e->rq_bad : &e->rq_dropped;

	(*count)++;
	if (*at != 0 && now - *at < SESSION_REKEY_REQ_INTERVAL_S * 1000ull)
		return;
	log_warnx("session: site %" PRIu64 ": %s (%" PRIu64 " in the last "
	    "%d s)", e->site_id, why, *count, SESSION_REKEY_REQ_INTERVAL_S);
	*at = now;
	*count = 0;
}

void
session_rekey_on_request(struct sessions *s, struct edge *e,
    const struct msg_rekey_request *q)
{
	const struct model_tunnel *t = topo_tunnel_get(s->topo, q->tunnel_id);
	uint64_t now = util_mono_ms(), peer, sender;
	enum msg_rekey_reason why;
	char msg[128];

	if (t == NULL || (t->site_a != e->site_id && t->site_b != e->site_id)) {
		snprintf(msg, sizeof(msg), "rekey request for tunnel %" PRIu64
		    " refused: not its tunnel", q->tunnel_id);
		session_rq_drop(e, now, true, msg);
		return;
	}
	peer = t->site_a == e->site_id ? t->site_b : t->site_a;
	sender = q->direction == MSG_DIRECTION_OUT ? e->site_id : peer;
	if (!session_rq_allow(e, t->id, sender, now)) {
		session_rq_drop(e, now, false, "rekey requests dropped "
		    "(limit: one per tunnel direction per 10 s)");
		return;
	}
	why = q->reason == MSG_REKEY_REQUEST_REASON_LOCAL_ERROR ?
	    MSG_REKEY_REASON_LOCAL_ERROR : MSG_REKEY_REASON_VOLUME;
	log_info("session: site %" PRIu64 " asked for a rekey of tunnel %"
	    PRIu64 " %" PRIu64 "->%" PRIu64 " (%s)", e->site_id, t->id, sender,
	    sender == t->site_a ? t->site_b : t->site_a,
	    msg_rekey_request_reason_name(q->reason));
	session_rekey_start(s, t, sender, why);
}
