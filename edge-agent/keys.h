/*
 * keys.h — an edge's X25519 epoch keys and its view of its peers' keys
 * (design.md §4, proto/README.md "Keys" and "SA keys").
 *
 * Own keys: one X25519 key pair per key epoch, made here from the
 * OpenSSL CSPRNG; the public half is signed with the certificate's key
 * (proto/epochsig) and announced.  Each private key lives in
 * <dir>/epoch-<N>.key (mode 0600, written atomically, with its not_after
 * and signature so it can be announced again) so that a headless restart
 * derives the keys it had; a retired key is overwritten with zeros,
 * synced and unlinked, and wiped in memory.  Epoch numbers strictly
 * increase: a new one is max(newest + 1, unix time now), so an edge that
 * lost its folder still numbers above what it announced before.
 *
 * Peer keys: from the intent (Tunnel.peer.keys) and from PeerKeys relays.
 * None is used before epochsig_verify() accepts it against the peer's
 * certificate from the intent, which must chain to Intent.ca_chain_der,
 * carry CN site-<peer>, and be valid now; its not_after must be ahead and
 * the point not of small order.
 *
 * SA keys: keys_sa_derive() is the agent's key provider (and the test
 * edge's): it picks the own private key of the own key epoch and the
 * verified peer public key of the peer's, and calls sakey_derive().
 *
 * Nothing here logs or returns key bytes other than into the caller's
 * struct sakey / overlay_sa_params; reasons name epochs, never keys.
 * Threads: one owner thread.
 */
#ifndef MESHWAN_EDGE_KEYS_H
#define MESHWAN_EDGE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "proto/sakey.h"

#define KEYS_OWN_MAX		16	/* own epochs kept (newest last) */
#define KEYS_PEERS_MAX		4096	/* peer sites with relayed keys */
#define KEYS_LIFETIME_S		(UINT64_C(30) * 86400)	/* own key's not_after */

struct keys;

/* Open (and create, 0700) dir and load the own keys found there.  With
 * dir NULL the keys live in memory only (tests).  NULL on error. */
struct keys *keys_open(const char *dir);
/* Wipes every private key in memory (files stay).  NULL ok. */
void keys_free(struct keys *k);

/* The newest own key epoch, 0 when none. */
uint64_t keys_newest(const struct keys *k);
/* Whether a new own key is due at now: none yet, or the newest has less
 * than half its lifetime left. */
bool keys_due(const struct keys *k, int64_t now);
/*
 * Make a new own key epoch, sign its public half for site_id with the
 * certificate key key_pem (PEM text), store it, and fill *out with the
 * announcement.  0 / -1 (logged).
 */
int keys_make(struct keys *k, const char *key_pem, size_t key_pem_len,
    uint64_t site_id, int64_t now, struct msg_key_announcement *out);
/* The stored announcement of own epoch e (to say it again).  0 / -1. */
int keys_announcement(const struct keys *k, uint64_t epoch,
    struct msg_key_announcement *out);
/*
 * Retire own keys: every epoch except the newest two and those in
 * keep[0..n) (the epochs live SAs name) is wiped from memory and disk.
 * Returns how many were retired.
 */
unsigned keys_retire(struct keys *k, const uint64_t *keep, size_t n);

/* Remember a PeerKeys relay (replaces that peer's earlier one). */
void keys_peer_note(struct keys *k, const struct msg_peer_keys *pk);

/*
 * The verified public key of tunnel t's peer for key epoch `epoch`, from
 * t->peer.keys or a relay, checked against in's CA chain and t's peer
 * certificate at now.  NULL with a reason in err when there is none.
 */
const uint8_t *keys_peer_pub(struct keys *k, const struct msg_intent *in,
    const struct msg_tunnel *t, uint64_t epoch, int64_t now, char *err,
    size_t errlen);

/*
 * The SA key of ref (inbound: the peer sends) on tunnel t of intent in,
 * for this site own_site.  0, or -1 with err ("own key epoch 7 missing",
 * "peer key epoch 9: signature ...") and *out zeroed.
 */
int keys_sa_derive(struct keys *k, const struct msg_intent *in,
    const struct msg_tunnel *t, uint64_t own_site, bool inbound,
    const struct msg_sa_key_ref *ref, int64_t now, struct sakey *out,
    char *err, size_t errlen);

#endif
