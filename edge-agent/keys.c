/*
 * keys.c — own epoch keys on disk and peers' verified keys (see keys.h).
 *
 * File format of <dir>/epoch-<N>.key (binary, 0600):
 *   "MWEK1\0\0\0" (8) || epoch (8 BE) || not_after (8 BE) ||
 *   private key (32) || signature length (2 BE) || signature (<= 128)
 * The public key is recomputed from the private one on load.
 */
#include "edge-agent/keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge-agent/cache.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/epochsig.h"

#define KEYS_FILE_LEN	(8 + 8 + 8 + SAKEY_X25519_LEN + 2 + MSG_SIG_MAX)

static const uint8_t keys_magic[8] = { 'M', 'W', 'E', 'K', '1', 0, 0, 0 };

struct keys_own {
	uint64_t epoch;
	uint64_t not_after;
	uint8_t priv[SAKEY_X25519_LEN];
	uint8_t pub[SAKEY_X25519_LEN];
	uint8_t sig[MSG_SIG_MAX];
	size_t sig_len;
};

struct keys {
	char *dir;				/* NULL: memory only */
	struct keys_own own[KEYS_OWN_MAX];	/* ascending epochs */
	size_t n_own;
	struct msg_peer_keys *peers;		/* relays, one per site */
	size_t n_peers, cap_peers;
};

static void
keys_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
keys_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int
keys_path(const struct keys *k, uint64_t epoch, char *buf, size_t len)
{
	return snprintf(buf, len, "%s/epoch-%" PRIu64 ".key", k->dir, epoch) <
	    (int)len ? 0 : -1;
}

static int
keys_store(const struct keys *k, const struct keys_own *o)
{
	uint8_t b[KEYS_FILE_LEN];
	char path[PATH_MAX];
	size_t len;
	int rc;

	if (k->dir == NULL)
		return 0;
	if (keys_path(k, o->epoch, path, sizeof(path)) == -1)
		return -1;
	memcpy(b, keys_magic, sizeof(keys_magic));
	keys_put64(b + 8, o->epoch);
	keys_put64(b + 16, o->not_after);
	memcpy(b + 24, o->priv, SAKEY_X25519_LEN);
	b[24 + SAKEY_X25519_LEN] = (uint8_t)(o->sig_len >> 8);
	b[24 + SAKEY_X25519_LEN + 1] = (uint8_t)o->sig_len;
	memcpy(b + 24 + SAKEY_X25519_LEN + 2, o->sig, o->sig_len);
	len = 24 + SAKEY_X25519_LEN + 2 + o->sig_len;
	rc = cache_write_file(path, b, len, 0600);
	util_wipe(b, sizeof(b));
	return rc;
}

/* Load one key file; 0, or -1 (ignored by the caller, logged). */
static int
keys_load_one(const char *path, struct keys_own *o)
{
	uint8_t *b = NULL;
	size_t len = 0;
	int rc = -1;

	memset(o, 0, sizeof(*o));
	if (cache_read_file(path, &b, &len, KEYS_FILE_LEN) != 0)
		goto out;
	if (len < 24 + SAKEY_X25519_LEN + 2 ||
	    memcmp(b, keys_magic, sizeof(keys_magic)) != 0)
		goto out;
	o->epoch = keys_get64(b + 8);
	o->not_after = keys_get64(b + 16);
	memcpy(o->priv, b + 24, SAKEY_X25519_LEN);
	o->sig_len = (size_t)b[24 + SAKEY_X25519_LEN] << 8 |
	    b[24 + SAKEY_X25519_LEN + 1];
	if (o->epoch == 0 || o->sig_len == 0 || o->sig_len > MSG_SIG_MAX ||
	    len != 24 + SAKEY_X25519_LEN + 2 + o->sig_len)
		goto out;
	memcpy(o->sig, b + 24 + SAKEY_X25519_LEN + 2, o->sig_len);
	if (sakey_public(o->priv, o->pub) == -1)
		goto out;
	rc = 0;
out:
	if (b != NULL) {
		util_wipe(b, len);
		free(b);
	}
	if (rc == -1) {
		log_warnx("keys: %s: not a key file; ignored", path);
		util_wipe(o, sizeof(*o));
	}
	return rc;
}

static int
keys_cmp_own(const void *a, const void *b)
{
	const struct keys_own *x = a, *y = b;

	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

/* Overwrite a key file with zeros, sync it, unlink it. */
static void
keys_unlink(const struct keys *k, uint64_t epoch)
{
	uint8_t zero[KEYS_FILE_LEN];
	char path[PATH_MAX];
	int fd;

	if (k->dir == NULL || keys_path(k, epoch, path, sizeof(path)) == -1)
		return;
	memset(zero, 0, sizeof(zero));
	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) != -1) {
		if (write(fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero) ||
		    fsync(fd) == -1)
			log_warn("keys: wiping %s", path);
		close(fd);
	}
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("keys: unlink %s", path);
}

/* Drop own[i] from memory (wiped). */
static void
keys_drop(struct keys *k, size_t i)
{
	util_wipe(&k->own[i], sizeof(k->own[i]));
	memmove(&k->own[i], &k->own[i + 1], (k->n_own - i - 1) *
	    sizeof(k->own[0]));
	k->n_own--;
	util_wipe(&k->own[k->n_own], sizeof(k->own[0]));
}

struct keys *
keys_open(const char *dir)
{
	struct keys *k = calloc(1, sizeof(*k));
	DIR *d;
	const struct dirent *de;

	if (k == NULL)
		return NULL;
	if (dir == NULL)
		return k;
	if ((k->dir = strdup(dir)) == NULL) {
		free(k);
		return NULL;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("keys: %s", dir);
		keys_free(k);
		return NULL;
	}
	(void)chmod(dir, 0700);
	if ((d = opendir(dir)) == NULL) {
		log_warn("keys: %s", dir);
		keys_free(k);
		return NULL;
	}
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct keys_own o;
		uint64_t e;
		const char *dot;
		char num[24];
		size_t nl;

		if (strncmp(de->d_name, "epoch-", 6) != 0 ||
		    (dot = strchr(de->d_name + 6, '.')) == NULL ||
		    strcmp(dot, ".key") != 0)
			continue;
		nl = (size_t)(dot - (de->d_name + 6));
		if (nl == 0 || nl >= sizeof(num))
			continue;
		memcpy(num, de->d_name + 6, nl);
		num[nl] = '\0';
		if (util_parse_u64(num, 1, UINT64_MAX, &e) == -1 ||
		    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    (int)sizeof(path))
			continue;
		if (keys_load_one(path, &o) == -1 || o.epoch != e)
			continue;
		if (k->n_own == KEYS_OWN_MAX) {
			/* Keep the newest: replace the oldest. */
			qsort(k->own, k->n_own, sizeof(k->own[0]), keys_cmp_own);
			if (o.epoch < k->own[0].epoch) {
				util_wipe(&o, sizeof(o));
				continue;
			}
			keys_drop(k, 0);
		}
		k->own[k->n_own++] = o;
		util_wipe(&o, sizeof(o));
	}
	closedir(d);
	qsort(k->own, k->n_own, sizeof(k->own[0]), keys_cmp_own);
	log_debug("keys", "%zu own key epoch(s) in %s, newest %" PRIu64,
	    k->n_own, dir, keys_newest(k));
	return k;
}

void
keys_free(struct keys *k)
{
	if (k == NULL)
		return;
	util_wipe(k->own, sizeof(k->own));
	free(k->peers);
	free(k->dir);
	free(k);
}

uint64_t
keys_newest(const struct keys *k)
{
	return k->n_own > 0 ? k->own[k->n_own - 1].epoch : 0;
}

bool
keys_due(const struct keys *k, int64_t now)
{
	const struct keys_own *o;

	if (k->n_own == 0)
		return true;
	o = &k->own[k->n_own - 1];
	return (int64_t)o->not_after - now < (int64_t)KEYS_LIFETIME_S / 2;
}

static void
keys_fill(const struct keys_own *o, struct msg_key_announcement *out)
{
	memset(out, 0, sizeof(*out));
	out->epoch = o->epoch;
	memcpy(out->public_key, o->pub, MSG_KEY_LEN);
	memcpy(out->signature, o->sig, o->sig_len);
	out->signature_len = o->sig_len;
	out->not_after = o->not_after;
}

int
keys_make(struct keys *k, const char *key_pem, size_t key_pem_len,
    uint64_t site_id, int64_t now, struct msg_key_announcement *out)
{
	struct keys_own o;
	struct msg_peer_key pk;
	uint64_t e = keys_newest(k) + 1;

	if (now > 0 && (uint64_t)now > e)
		e = (uint64_t)now;
	memset(&o, 0, sizeof(o));
	memset(&pk, 0, sizeof(pk));
	o.epoch = e;
	o.not_after = (uint64_t)now + KEYS_LIFETIME_S;
	if (sakey_keypair(o.priv, o.pub) == -1) {
		log_warnx("keys: no key pair");
		return -1;
	}
	pk.epoch = o.epoch;
	pk.not_after = o.not_after;
	memcpy(pk.public_key, o.pub, MSG_KEY_LEN);
	if (epochsig_sign(key_pem, key_pem_len, site_id, &pk) == -1) {
		log_warnx("keys: cannot sign key epoch %" PRIu64, e);
		util_wipe(&o, sizeof(o));
		return -1;
	}
	memcpy(o.sig, pk.signature, pk.signature_len);
	o.sig_len = pk.signature_len;
	if (keys_store(k, &o) == -1) {
		util_wipe(&o, sizeof(o));
		return -1;
	}
	if (k->n_own == KEYS_OWN_MAX) {
		keys_unlink(k, k->own[0].epoch);
		keys_drop(k, 0);
	}
	k->own[k->n_own++] = o;
	keys_fill(&o, out);
	util_wipe(&o, sizeof(o));
	log_info("keys: new key epoch %" PRIu64 " (valid until %" PRIu64 ")",
	    e, k->own[k->n_own - 1].not_after);
	return 0;
}

int
keys_announcement(const struct keys *k, uint64_t epoch,
    struct msg_key_announcement *out)
{
	for (size_t i = 0; i < k->n_own; i++)
		if (k->own[i].epoch == epoch) {
			keys_fill(&k->own[i], out);
			return 0;
		}
	return -1;
}

unsigned
keys_retire(struct keys *k, const uint64_t *keep, size_t n)
{
	unsigned retired = 0;
	size_t i = 0;

	while (k->n_own > 2 && i < k->n_own - 2) {
		bool kept = false;

		for (size_t j = 0; j < n && !kept; j++)
			kept = keep[j] == k->own[i].epoch;
		if (kept) {
			i++;
			continue;
		}
		log_info("keys: key epoch %" PRIu64 " retired", k->own[i].epoch);
		keys_unlink(k, k->own[i].epoch);
		keys_drop(k, i);
		retired++;
	}
	return retired;
}

void
keys_peer_note(struct keys *k, const struct msg_peer_keys *pk)
{
	size_t i;

	for (i = 0; i < k->n_peers; i++)
		if (k->peers[i].peer_site_id == pk->peer_site_id) {
			k->peers[i] = *pk;
			return;
		}
	if (k->n_peers == KEYS_PEERS_MAX) {
		/* Bounded: the oldest relay goes (the intent has the keys). */
		memmove(&k->peers[0], &k->peers[1], (k->n_peers - 1) *
		    sizeof(k->peers[0]));
		k->n_peers--;
	}
	if (k->n_peers == k->cap_peers) {
		size_t cap = k->cap_peers ? k->cap_peers * 2 : 16;
		struct msg_peer_keys *p = realloc(k->peers, cap *
		    sizeof(*p));

		if (p == NULL)
			return;
		k->peers = p;
		k->cap_peers = cap;
	}
	k->peers[k->n_peers++] = *pk;
}

static bool
keys_verify(const struct msg_intent *in, const struct msg_tunnel *t,
    const struct msg_peer_key *pk, int64_t now, char *err, size_t errlen)
{
	char why[EPOCHSIG_ERR_LEN];

	if (epochsig_verify(in->ca_chain_der.data, in->ca_chain_der.len,
	    t->peer.certificate_der.data, t->peer.certificate_der.len,
	    t->peer.site_id, pk, now, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "peer %" PRIu64 " key epoch %" PRIu64
		    ": %s", t->peer.site_id, pk->epoch, why);
		return false;
	}
	return true;
}

const uint8_t *
keys_peer_pub(struct keys *k, const struct msg_intent *in,
    const struct msg_tunnel *t, uint64_t epoch, int64_t now, char *err,
    size_t errlen)
{
	bool seen = false;

	for (size_t i = 0; i < t->peer.n_keys; i++)
		if (t->peer.keys[i].epoch == epoch) {
			seen = true;
			if (keys_verify(in, t, &t->peer.keys[i], now, err,
			    errlen))
				return t->peer.keys[i].public_key;
		}
	for (size_t i = 0; i < k->n_peers; i++) {
		const struct msg_peer_keys *r = &k->peers[i];

		if (r->peer_site_id != t->peer.site_id)
			continue;
		for (size_t j = 0; j < r->n_keys; j++)
			if (r->keys[j].epoch == epoch) {
				seen = true;
				if (keys_verify(in, t, &r->keys[j], now, err,
				    errlen))
					return r->keys[j].public_key;
			}
	}
	if (!seen)
		snprintf(err, errlen, "peer %" PRIu64 " key epoch %" PRIu64
		    " unknown", t->peer.site_id, epoch);
	return NULL;
}

int
keys_sa_derive(struct keys *k, const struct msg_intent *in,
    const struct msg_tunnel *t, uint64_t own_site, bool inbound,
    const struct msg_sa_key_ref *ref, int64_t now, struct sakey *out,
    char *err, size_t errlen)
{
	struct sakey_input si;
	const uint8_t *own = NULL, *peer;
	uint64_t own_epoch, peer_epoch;

	memset(out, 0, sizeof(*out));
	if (ref->sender_key_epoch == 0 || ref->receiver_key_epoch == 0) {
		snprintf(err, errlen, "SA %u has no key epochs", ref->spi);
		return -1;
	}
	own_epoch = inbound ? ref->receiver_key_epoch : ref->sender_key_epoch;
	peer_epoch = inbound ? ref->sender_key_epoch : ref->receiver_key_epoch;
	for (size_t i = 0; i < k->n_own; i++)
		if (k->own[i].epoch == own_epoch)
			own = k->own[i].priv;
	if (own == NULL) {
		snprintf(err, errlen, "own key epoch %" PRIu64 " missing",
		    own_epoch);
		return -1;
	}
	if ((peer = keys_peer_pub(k, in, t, peer_epoch, now, err, errlen)) ==
	    NULL)
		return -1;
	si = (struct sakey_input){
		.tunnel_id = t->id,
		.sender_site = inbound ? t->peer.site_id : own_site,
		.receiver_site = inbound ? own_site : t->peer.site_id,
		.sender_key_epoch = ref->sender_key_epoch,
		.receiver_key_epoch = ref->receiver_key_epoch,
		.sa_epoch = ref->sa_epoch,
		.spi = ref->spi,
		.cipher = t->crypto.cipher,
	};
	if (sakey_derive(own, peer, &si, out) == -1) {
		snprintf(err, errlen, "SA %u: key derivation failed", ref->spi);
		return -1;
	}
	return 0;
}
