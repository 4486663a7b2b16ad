/*
 * session_keys.c — certificates and peers' epoch keys: the certificate
 * issued to each site (peers' intents carry it), the X25519 epoch keys
 * edges announce, verified against that certificate, relayed to peers at
 * once (PeerKeys) and patched into their intents after the coalescing
 * delay.
 *
 * Persistence: issued certificates and announced epoch keys live in the
 * store's key/value table ("cert.<id>", "keys.<id>") so that intents
 * rebuilt after a restart equal the ones edges applied; the highest key
 * epoch a site ever announced too ("keyfloor.<id>"), so that numbering
 * goes on across re-enrollment (proto/README.md, "Keys").
 *
 * What is relayed is checked first, with the edges' own check
 * (proto/epochsig via ca_check_epoch_key): chain, CN, not_after, no
 * small-order point, signature.  Expired keys are dropped from the relay
 * set by session_keys_expire().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ca.h"
#include "controller/intent.h"
#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/session_int.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/epochsig.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/sakey.h"

#define SESSION_KV_MAX 4096

/* ------------------------------------------------------------------ */
/* Key/value persistence of certificates and epoch keys */

/* -1 only when the store could not be read (not for "none stored"). */
static int
session_load_cert(struct sessions *s, struct edge *e)
{
	struct model_error err = { 0 };
	char key[64], *val;
	uint8_t der[SESSION_KV_MAX / 2];
	size_t len;
	int rc = 0;

	if ((val = malloc(SESSION_KV_MAX + 1)) == NULL)
		return -1;
	snprintf(key, sizeof(key), "cert.%" PRIu64, e->site_id);
	if (store_kv_get(s->st, key, val, SESSION_KV_MAX + 1, &err) == 0) {
		if (util_unhex(val, der, sizeof(der), &len) == 0 && len > 0)
			(void)msg_blob_set(&e->cert, der, len); /* ENOMEM: none */
	} else if (err.code != MODEL_E_NOT_FOUND)
		rc = -1;
	free(val);
	return rc;
}

static int
session_load_keys(struct sessions *s, struct edge *e)
{
	struct model_error err = { 0 };
	char key[64], *val, *line, *save = NULL;

	if ((val = malloc(SESSION_KV_MAX + 1)) == NULL)
		return -1;
	snprintf(key, sizeof(key), "keys.%" PRIu64, e->site_id);
	if (store_kv_get(s->st, key, val, SESSION_KV_MAX + 1, &err) == -1) {
		free(val);
		return err.code == MODEL_E_NOT_FOUND ? 0 : -1;
	}
	for (line = strtok_r(val, "\n", &save); line != NULL &&
	     e->n_keys < SESSION_KEYS_MAX; line = strtok_r(NULL, "\n", &save)) {
		struct msg_peer_key *k = &e->keys[e->n_keys];
		char *f[4], *fsave = NULL;
		size_t pl, nf = 0;

		for (char *tok = strtok_r(line, " ", &fsave); tok != NULL &&
		     nf < 4; tok = strtok_r(NULL, " ", &fsave))
			f[nf++] = tok;
		memset(k, 0, sizeof(*k));
		if (nf != 4 || util_parse_u64(f[0], 1, UINT64_MAX,
		    &k->epoch) == -1 || util_parse_u64(f[1], 1, UINT64_MAX,
		    &k->not_after) == -1)
			continue;
		if (util_unhex(f[2], k->public_key, MSG_KEY_LEN, &pl) == -1 ||
		    pl != MSG_KEY_LEN ||
		    util_unhex(f[3], k->signature, MSG_SIG_MAX,
		    &k->signature_len) == -1 || k->signature_len == 0)
			continue;
		e->n_keys++;
	}
	free(val);
	return 0;
}

static void
session_load_floor(struct sessions *s, struct edge *e)
{
	char key[64], val[32];

	snprintf(key, sizeof(key), "keyfloor.%" PRIu64, e->site_id);
	if (store_kv_get(s->st, key, val, sizeof(val), NULL) == 0)
		(void)util_parse_u64(val, 0, UINT64_MAX, &e->key_floor);
	/* Older databases: the floor is at least what is stored. */
	for (size_t i = 0; i < e->n_keys; i++)
		if (e->keys[i].epoch > e->key_floor)
			e->key_floor = e->keys[i].epoch;
}

/* A site's stored certificate and epoch keys, after a restart. */
void
session_keys_load(struct sessions *s, struct edge *e)
{
	(void)session_load_cert(s, e);
	(void)session_load_keys(s, e);
	session_load_floor(s, e);
}

int
session_keys_save(struct sessions *s, const struct edge *e)
{
	char key[64], *val;
	size_t off = 0;
	int rc;

	if ((val = calloc(1, SESSION_KV_MAX)) == NULL)
		return -1;
	for (size_t i = 0; i < e->n_keys; i++) {
		char pub[2 * MSG_KEY_LEN + 1], sig[2 * MSG_SIG_MAX + 1];

		util_hex(e->keys[i].public_key, MSG_KEY_LEN, pub);
		util_hex(e->keys[i].signature, e->keys[i].signature_len, sig);
		off += (size_t)snprintf(val + off, SESSION_KV_MAX - off,
		    "%" PRIu64 " %" PRIu64 " %s %s\n", e->keys[i].epoch,
		    e->keys[i].not_after, pub, sig);
	}
	if (store_begin(s->st, NULL) == -1) {
		free(val);
		return -1;
	}
	snprintf(key, sizeof(key), "keys.%" PRIu64, e->site_id);
	rc = store_kv_set(s->st, key, val, NULL);
	snprintf(val, SESSION_KV_MAX, "%" PRIu64, e->key_floor);
	snprintf(key, sizeof(key), "keyfloor.%" PRIu64, e->site_id);
	if (rc == 0)
		rc = store_kv_set(s->st, key, val, NULL);
	/* Other controllers relay them to the peers they hold. */
	if (rc == 0)
		rc = store_note_event(s->st, STORE_CHANGE_CREDS, e->site_id,
		    NULL);
	if (rc == -1)
		store_rollback(s->st);
	else
		rc = store_commit(s->st, NULL);
	free(val);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Peer keys in intents */

void
session_keys_lookup(void *arg, uint64_t site_id, const struct msg_peer_key **k,
    size_t *n)
{
	struct edge *e = session_edge_find(arg, site_id);

	*k = e ? e->keys : NULL;
	*n = e ? e->n_keys : 0;
}

static size_t session_peers(const struct edge *e, uint64_t **out);

uint64_t
session_keys_newest(struct sessions *s, uint64_t site_id)
{
	const struct edge *e = session_edge_find(s, site_id);
	int64_t now = session_now(s);

	for (size_t i = e != NULL ? e->n_keys : 0; i > 0; i--)
		if (e->keys[i - 1].not_after > (uint64_t)now)
			return e->keys[i - 1].epoch;
	return 0;
}

void
session_keys_expire(struct sessions *s)
{
	int64_t now = session_now(s);

	for (size_t i = 0; i < s->tab_cap; i++) {
		struct edge *e = s->tab[i].e;
		size_t k = 0, n;
		uint64_t *peers;

		if (e == NULL || e->n_keys == 0)
			continue;
		for (size_t j = 0; j < e->n_keys; j++)
			if (e->keys[j].not_after > (uint64_t)now)
				e->keys[k++] = e->keys[j];
		if (k == e->n_keys)
			continue;
		log_info("session: site %" PRIu64 ": %zu epoch key(s) expired; "
		    "no longer relayed", e->site_id, e->n_keys - k);
		e->n_keys = k;
		if (session_keys_save(s, e) == -1)
			log_warnx("session: site %" PRIu64 ": could not store "
			    "its epoch keys", e->site_id);
		n = session_peers(e, &peers);
		for (size_t j = 0; j < n; j++)
			session_mark_rebuild(s, peers[j]);
		free(peers);
		if (n > 0)
			session_arm_flush(s);
	}
}

static bool
session_keys_equal(const struct msg_peer_key *a, size_t na,
    const struct msg_peer_key *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].epoch != b[i].epoch ||
		    a[i].not_after != b[i].not_after ||
		    memcmp(a[i].public_key, b[i].public_key, MSG_KEY_LEN) != 0 ||
		    a[i].signature_len != b[i].signature_len ||
		    memcmp(a[i].signature, b[i].signature,
		    a[i].signature_len) != 0)
			return false;
	return true;
}

/*
 * A peer announced a key: only Tunnel.peer.keys of some tunnels of e
 * changed.  Rather than rebuilding the whole intent (milliseconds for a
 * 1,000-peer edge, times every peer, for every announcement), update
 * those tunnels in place, digest only them, and make one new version
 * whose recorded changes are exactly those tunnels.  *changed says
 * whether a version was made.  Called inside a store transaction.
 */
int
session_keys_refresh(struct sessions *s, struct edge *e, bool *changed)
{
	struct model_error err = { 0 };
	struct intent_change *ch = NULL;
	struct msg_intent hdr;
	uint8_t *dg = NULL, *all = NULL, hash[MSG_HASH_LEN];
	size_t n = 0;
	uint64_t v;

	*changed = false;
	if (!session_local(s, e)) {
		e->stale = true;        /* its controller moves its version */
		return 0;
	}
	if (e->cur.version == 0 || e->digests == NULL)
		return 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		const struct msg_tunnel *t = &e->cur.tunnels[i];
		const struct msg_peer_key *k;
		size_t nk;

		session_keys_lookup(s, t->peer.site_id, &k, &nk);
		if (!session_keys_equal(t->peer.keys, t->peer.n_keys, k, nk))
			n++;
	}
	if (n == 0)
		return 0;
	if ((ch = calloc(n, sizeof(*ch))) == NULL ||
	    (dg = calloc(n, MSG_HASH_LEN)) == NULL)
		goto fail;
	/* Digest the updated copies first: nothing changes on failure. */
	n = 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++) {
		struct msg_tunnel t = e->cur.tunnels[i]; /* shallow, read only */
		const struct msg_peer_key *k;
		size_t nk;

		session_keys_lookup(s, t.peer.site_id, &k, &nk);
		if (session_keys_equal(t.peer.keys, t.peer.n_keys, k, nk))
			continue;
		if (nk > MSG_PEER_KEYS_MAX)
			nk = MSG_PEER_KEYS_MAX;
		memset(t.peer.keys, 0, sizeof(t.peer.keys));
		if (nk > 0)
			memcpy(t.peer.keys, k, nk * sizeof(*k));
		t.peer.n_keys = nk;
		if (pbconv_tunnel_digest(&t, dg + n * MSG_HASH_LEN) == -1)
			goto fail;
		ch[n++] = (struct intent_change){ t.id, INTENT_OP_CHANGE };
	}
	if (store_edge_bump_intent(s->st, e->site_id, &v, &err) == -1) {
		log_warnx("session: site %" PRIu64 ": version: %s", e->site_id,
		    err.message);
		goto fail;
	}
	/* The new hash over all digests (the changed ones replaced), still
	 * without touching e: hashing reads only the ids of the tunnels. */
	if ((all = malloc(e->cur.n_tunnels * MSG_HASH_LEN)) == NULL)
		goto fail;
	memcpy(all, e->digests, e->cur.n_tunnels * MSG_HASH_LEN);
	for (size_t i = 0, j = 0; i < e->cur.n_tunnels && j < n; i++)
		if (e->cur.tunnels[i].id == ch[j].tunnel_id)
			memcpy(all + i * MSG_HASH_LEN, dg + j++ * MSG_HASH_LEN,
			    MSG_HASH_LEN);
	hdr = e->cur;
	hdr.version = v;
	if (pbconv_intent_hash_digests(&hdr, all, hash) == -1)
		goto fail;
	/* Commit: the keys into the tunnels, the digests, version, hash. */
	for (size_t i = 0, j = 0; i < e->cur.n_tunnels && j < n; i++) {
		struct msg_tunnel *t = &e->cur.tunnels[i];
		const struct msg_peer_key *k;
		size_t nk;

		if (t->id != ch[j].tunnel_id)
			continue;
		session_keys_lookup(s, t->peer.site_id, &k, &nk);
		if (nk > MSG_PEER_KEYS_MAX)
			nk = MSG_PEER_KEYS_MAX;
		memset(t->peer.keys, 0, sizeof(t->peer.keys));
		if (nk > 0)
			memcpy(t->peer.keys, k, nk * sizeof(*k));
		t->peer.n_keys = nk;
		j++;
	}
	free(e->digests);
	e->digests = all;
	e->cur.version = v;
	memcpy(e->cur_hash, hash, MSG_HASH_LEN);
	free(dg);
	session_intent_hist_push(s, e, ch, n, false, false);
	*changed = true;
	return 0;
fail:
	free(ch);
	free(dg);
	free(all);
	return -1;
}

/* ------------------------------------------------------------------ */
/* Announcements and relay */

/*
 * Peers of an edge: distinct peer site ids of its current tunnels, into a
 * malloc'd *out (caller frees).  Returns the count (0 when none or out of
 * memory).
 */
static size_t
session_peers(const struct edge *e, uint64_t **out)
{
	size_t n = 0;

	*out = NULL;
	if (e->cur.n_tunnels == 0 ||
	    (*out = calloc(e->cur.n_tunnels, sizeof(**out))) == NULL)
		return 0;
	for (size_t i = 0; i < e->cur.n_tunnels; i++)
		(*out)[n++] = e->cur.tunnels[i].peer.site_id;
	qsort(*out, n, sizeof(**out), util_cmp_u64);
	for (size_t i = 1, k = 1; i <= n; i++) {
		if (i == n) {
			n = k;
			break;
		}
		if ((*out)[i] != (*out)[k - 1])
			(*out)[k++] = (*out)[i];
	}
	return n;
}

static void
session_send_keys(struct sessions *s, struct edge *to, const struct edge *of)
{
	struct msg_controller_message m;
	int64_t now = session_now(s);

	if (of->n_keys == 0 || to->stream == NULL || !to->hello)
		return;
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_PEER_KEYS;
	m.u.peer_keys.peer_site_id = of->site_id;
	for (size_t i = 0; i < of->n_keys; i++)
		if (of->keys[i].not_after > (uint64_t)now)
			m.u.peer_keys.keys[m.u.peer_keys.n_keys++] =
			    of->keys[i];
	if (m.u.peer_keys.n_keys > 0)
		session_send(s, to, &m, METRICS_RPC_KEY_RELAYED);
}

/*
 * The checks that cost nothing (no signature work): done before the
 * announcement takes one of the edge's rate-limit tokens, so refused
 * keys (stale epoch, expired, small-order point) never use up the budget
 * meant for the signature checks and the fan-out of valid ones.
 */
bool
session_keys_cheap_ok(struct sessions *s, const struct edge *e,
    const struct msg_key_announcement *k)
{
	if (e->cert.len == 0) {
		log_warnx("session: site %" PRIu64 ": key announcement but no "
		    "certificate on record; ignored", e->site_id);
		return false;
	}
	if (k->epoch <= e->key_floor) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " not above %" PRIu64 "; ignored", e->site_id, k->epoch,
		    e->key_floor);
		return false;
	}
	if (k->not_after <= (uint64_t)session_now(s)) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " refused: epoch %" PRIu64 " expired (not_after %" PRIu64
		    ")", e->site_id, k->epoch, k->epoch, k->not_after);
		return false;
	}
	if (!sakey_public_ok(k->public_key)) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " refused: epoch %" PRIu64 ": public key is a point of "
		    "small order", e->site_id, k->epoch, k->epoch);
		return false;
	}
	return true;
}

void
session_keys_on_key(struct sessions *s, struct edge *e,
    const struct msg_key_announcement *k)
{
	struct msg_peer_key pk;
	char why[EPOCHSIG_ERR_LEN];

	if (e->cert.len == 0) {
		log_warnx("session: site %" PRIu64 ": key announcement but no "
		    "certificate on record; ignored", e->site_id);
		return;
	}
	/* Above every epoch the site ever announced, under any of its
	 * certificates: an epoch number names one key for good. */
	if (k->epoch <= e->key_floor) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " not above %" PRIu64 "; ignored", e->site_id, k->epoch,
		    e->key_floor);
		return;
	}
	memset(&pk, 0, sizeof(pk));
	pk.epoch = k->epoch;
	pk.not_after = k->not_after;
	memcpy(pk.public_key, k->public_key, MSG_KEY_LEN);
	memcpy(pk.signature, k->signature, k->signature_len);
	pk.signature_len = k->signature_len;
	if (ca_check_epoch_key(s->ca, e->cert.data, e->cert.len, e->site_id,
	    &pk, session_now(s), why, sizeof(why)) == -1) {
		log_warnx("session: site %" PRIu64 ": key epoch %" PRIu64
		    " refused: %s", e->site_id, k->epoch, why);
		return;
	}
	if (e->n_keys == SESSION_KEYS_MAX) {
		memmove(&e->keys[0], &e->keys[1],
		    (SESSION_KEYS_MAX - 1) * sizeof(e->keys[0]));
		e->n_keys--;
	}
	e->keys[e->n_keys++] = pk;
	e->key_floor = k->epoch;
	/* Stored with the next group commit (session_flush, within
	 * SESSION_ACK_FLUSH_MS), key floor included, then relayed: no key
	 * leaves before it is durable. */
	e->keys_dirty = true;
	log_debug("session", "site %" PRIu64 ": epoch %" PRIu64 " key "
	    "accepted", e->site_id, k->epoch);
}

/*
 * After e's keys are committed: PeerKeys to its connected peers, for
 * speed (they can derive SAs at once), and the versioned intent after
 * the coalescing delay (a delta upserting each peer's tunnels to e with
 * the new keys), so a peer's cached intent alone suffices for headless
 * operation.  Then e's SAs move to the new key.
 */
void
session_keys_relay(struct sessions *s, struct edge *e)
{
	uint64_t *peers;
	size_t np;

	np = session_peers(e, &peers);
	for (size_t i = 0; i < np; i++) {
		struct edge *p = session_edge_find(s, peers[i]);

		if (p != NULL)
			session_send_keys(s, p, e);
		session_mark_rebuild(s, peers[i]);
	}
	free(peers);
	if (np > 0)
		session_arm_flush(s);
	log_debug("session", "site %" PRIu64 ": epoch %" PRIu64 " key relayed "
	    "to %zu peer(s)", e->site_id,
	    e->n_keys > 0 ? e->keys[e->n_keys - 1].epoch : 0, np);
	/* SAs move to the new key: every direction of e's tunnels whose
	 * other end has a key too (one rekey at a time per direction),
	 * once every key of this flush is relayed (session_flush). */
	e->rekey_on_key = true;
}

/*
 * The sessions' side of a new certificate for a site: peers' intents
 * carry it, and epoch keys signed with the old key are void.  The store
 * already has it (enrollment: the enroll worker's transaction; renewal:
 * session_cert_promote).
 */
static int
session_cert_adopt(struct sessions *s, uint64_t site_id, const uint8_t *der,
    size_t len)
{
	struct edge *e = session_edge_get(s, site_id);

	if (e == NULL || len == 0 || msg_blob_set(&e->cert, der, len) == -1)
		return -1;
	/* New certificate, new key pair: old epoch keys are void (their
	 * signatures are the old certificate's; stored at once, with the
	 * certificate; nothing to relay); key_floor stays, so the numbering
	 * goes on above them. */
	e->n_keys = 0;
	e->keys_dirty = false;
	session_keys_save(s, e);
	/* Peers' intents carry this certificate: recompiling the site
	 * patches their tunnels to it. */
	session_mark_dirty(s, site_id);
	session_arm_flush(s);
	return 0;
}

int
session_cert_issued(struct sessions *s, uint64_t site_id, const uint8_t *der,
    size_t len)
{
	struct ca_cert_info ci;

	if (ca_cert_info(der, len, &ci) == -1 ||
	    session_cert_adopt(s, site_id, der, len) == -1)
		return -1;
	/* Re-enrollment retires every other certificate of the site now. */
	session_conns_retire(s, site_id, ci.sha256,
	    "certificate retired by a re-enrollment of the site");
	return 0;
}

int
session_cert_promote(struct sessions *s, const struct store_cert *rec)
{
	struct model_error err = { 0 };
	char key[64], *hex;
	int rc = -1;

	if (rec->der_len * 2 + 1 > SESSION_KV_MAX ||
	    (hex = malloc(rec->der_len * 2 + 1)) == NULL)
		return -1;
	util_hex(rec->der, rec->der_len, hex);
	snprintf(key, sizeof(key), "cert.%" PRIu64, rec->site_id);
	/* One transaction: the certificate the sessions accept and the one
	 * they relay to peers never disagree. */
	if (store_begin(s->st, &err) == 0) {
		if (store_cert_promote(s->st, rec->site_id, rec->fp, &err) ==
		    -1 || store_kv_set(s->st, key, hex, &err) == -1 ||
		    store_note_event(s->st, STORE_CHANGE_CREDS, rec->site_id,
		    &err) == -1)
			store_rollback(s->st);
		else if (store_commit(s->st, &err) == 0)
			rc = 0;
	}
	free(hex);
	if (rc == -1) {
		log_warnx("session: site %" PRIu64 ": cannot switch to its "
		    "renewed certificate: %s", rec->site_id, err.message);
		return -1;
	}
	log_info("session: site %" PRIu64 ": now on its renewed certificate "
	    "(serial %s)", rec->site_id, rec->serial);
	if (session_cert_adopt(s, rec->site_id, rec->der, rec->der_len) == -1)
		log_warnx("session: site %" PRIu64 ": the sessions could not "
		    "take its renewed certificate", rec->site_id);
	session_conns_retire(s, rec->site_id, rec->fp,
	    "certificate replaced by its renewal");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Another controller's certificates and keys */

/*
 * Another controller stored a new certificate (enrollment, renewal) or
 * new epoch keys for site_id: take them from the store.  A new
 * certificate reaches the peers' intents through a recompile of the site
 * and ends this controller's streams of the site on another one; new
 * keys are relayed at once (PeerKeys) to the peers held here, whose
 * intents carry them after the coalescing delay.  No rekey starts here:
 * the controller that took the announcement starts those.
 */
void
session_keys_follow(struct sessions *s, uint64_t site_id)
{
	struct edge *e = session_edge_find(s, site_id);
	struct edge *tmp;
	struct ca_cert_info ci;
	uint64_t *tid = NULL, *peers = NULL;
	size_t nt;

	if (e == NULL || (tmp = calloc(1, sizeof(*tmp))) == NULL)
		return;
	tmp->site_id = site_id;
	if (session_load_cert(s, tmp) == -1 ||
	    session_load_keys(s, tmp) == -1) {
		log_warnx("session: site %" PRIu64 ": cannot read its "
		    "certificate and keys from the store", site_id);
		goto out;
	}
	session_load_floor(s, tmp);
	if (tmp->cert.len > 0 && !(e->cert.len == tmp->cert.len &&
	    memcmp(e->cert.data, tmp->cert.data, tmp->cert.len) == 0)) {
		if (msg_blob_set(&e->cert, tmp->cert.data, tmp->cert.len) ==
		    -1)
			goto out;
		log_info("session: site %" PRIu64 ": new certificate from "
		    "another controller", site_id);
		session_mark_dirty(s, site_id);
		session_arm_flush(s);
		if (ca_cert_info(e->cert.data, e->cert.len, &ci) == 0)
			session_conns_retire(s, site_id, ci.sha256,
			    "certificate replaced through another controller");
	}
	if (tmp->key_floor > e->key_floor)
		e->key_floor = tmp->key_floor;
	if (session_keys_equal(e->keys, e->n_keys, tmp->keys, tmp->n_keys))
		goto out;
	memcpy(e->keys, tmp->keys, sizeof(e->keys));
	e->n_keys = tmp->n_keys;
	e->keys_dirty = false;
	nt = topo_edge_tunnel_count(s->topo, site_id);
	if (nt > 0 && ((tid = calloc(nt, sizeof(*tid))) == NULL ||
	    (peers = calloc(nt, sizeof(*peers))) == NULL))
		goto out;
	nt = nt > 0 && peers != NULL ?
	    topo_edge_tunnels(s->topo, site_id, tid, peers, nt) : 0;
	for (size_t i = 0; i < nt; i++) {
		struct edge *p = session_edge_find(s, peers[i]);

		if (p != NULL)
			session_send_keys(s, p, e);
		session_mark_rebuild(s, peers[i]);
	}
	if (nt > 0)
		session_arm_flush(s);
	log_debug("session", "site %" PRIu64 ": keys from another controller "
	    "relayed to %zu tunnel peer(s)", site_id, nt);
out:
	free(tid);
	free(peers);
	msg_blob_free(&tmp->cert);
	free(tmp);
}
