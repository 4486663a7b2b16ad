/*
 * pbconv.h — conversion between the wire encoding of meshwan.proto and the
 * C structs of proto/msg.h.
 *
 * This is the only module that touches generated protobuf-c types, and the
 * checkpoint every byte from the network passes: a decode either returns a
 * struct that satisfies every limit written in the .proto, or fails with a
 * message naming the field and leaves nothing allocated.  Encoders validate
 * too, so a producer's mistake is caught before it reaches the wire.
 *
 * Memory: encoders return a malloc'd buffer in *buf (caller frees; *buf is
 * NULL and *len 0 on failure).  Decoders fill *out (zeroed first), which
 * the caller releases with the matching msg_*_free().  On failure *out is
 * zeroed and owns nothing.
 */
#ifndef MESHWAN_PBCONV_H
#define MESHWAN_PBCONV_H

#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

/*
 * Largest encoded message each decoder accepts; bigger buffers are refused
 * before parsing.  The memory protobuf-c may allocate while parsing is also
 * capped (PBCONV_ALLOC_FACTOR times the input size plus 1 MiB), so a small
 * message declaring millions of empty entries cannot exhaust memory.  Build
 * with -DPBCONV_MAX_SESSION_MSG=... to change them.
 */
#ifndef PBCONV_MAX_ENROLL_MSG
#define PBCONV_MAX_ENROLL_MSG	((size_t)64 * 1024)
#endif
#ifndef PBCONV_MAX_SESSION_MSG
#define PBCONV_MAX_SESSION_MSG	((size_t)16 * 1024 * 1024)
#endif
#ifndef PBCONV_ALLOC_FACTOR
#define PBCONV_ALLOC_FACTOR	((size_t)64)
#endif

/* Length of the error strings the decoders write (enough for any). */
#define PBCONV_ERR_LEN		256

int pbconv_encode_enroll_request(const struct msg_enroll_request *m,
    uint8_t **buf, size_t *len);
int pbconv_decode_enroll_request(const uint8_t *buf, size_t len,
    struct msg_enroll_request *out, char *err, size_t errlen);

int pbconv_encode_renew_request(const struct msg_renew_request *m,
    uint8_t **buf, size_t *len);
int pbconv_decode_renew_request(const uint8_t *buf, size_t len,
    struct msg_renew_request *out, char *err, size_t errlen);

int pbconv_encode_enroll_response(const struct msg_enroll_response *m,
    uint8_t **buf, size_t *len);
int pbconv_decode_enroll_response(const uint8_t *buf, size_t len,
    struct msg_enroll_response *out, char *err, size_t errlen);

int pbconv_encode_edge_message(const struct msg_edge_message *m,
    uint8_t **buf, size_t *len);
int pbconv_decode_edge_message(const uint8_t *buf, size_t len,
    struct msg_edge_message *out, char *err, size_t errlen);

int pbconv_encode_controller_message(const struct msg_controller_message *m,
    uint8_t **buf, size_t *len);
int pbconv_decode_controller_message(const uint8_t *buf, size_t len,
    struct msg_controller_message *out, char *err, size_t errlen);
/* The version a snapshot or delta names, even one the decoder refuses
 * (for the edge's failed ack); 0 = not decodable or no intent. */
uint64_t pbconv_controller_message_version(const uint8_t *buf, size_t len);
/* Whether a controller message, even one the decoder refuses, is a
 * RekeyOrder: 0 with the ids it carries (for the edge's failed rekey
 * ack; step UNSPECIFIED when it holds no known step), -1 when it is not
 * one or cannot be unpacked. */
int pbconv_controller_message_rekey(const uint8_t *buf, size_t len,
    uint64_t *tunnel_id, uint64_t *epoch, enum msg_rekey_step *step);

/*
 * Convergence hash of an intent, defined in proto/README.md:
 *   H = SHA-256(D0 || D(t1) || D(t2) || ...)
 * with D0 the SHA-256 of the protobuf encoding of the intent without its
 * tunnels and D(t) that of each Tunnel, in ascending tunnel id order.
 * Independent of the order of m->tunnels; changes with any field.  The
 * intent must be valid (msg_validate_intent).  0, or -1 (invalid intent,
 * or out of memory; logged).
 */
int pbconv_intent_hash(const struct msg_intent *m,
    uint8_t out[MSG_HASH_LEN]);

/*
 * The same hash from digests the caller keeps, so that a controller with
 * thousands of tunnels per edge recomputes only the tunnels that changed:
 * digests holds m->n_tunnels * MSG_HASH_LEN bytes, the digest of
 * m->tunnels[i] (from pbconv_tunnel_digest) at digests + i * MSG_HASH_LEN.
 * Only the intent without its tunnels and the uniqueness of tunnel ids are
 * checked here; the digests are trusted.
 */
int pbconv_tunnel_digest(const struct msg_tunnel *t,
    uint8_t out[MSG_HASH_LEN]);
int pbconv_intent_hash_digests(const struct msg_intent *m,
    const uint8_t *digests, uint8_t out[MSG_HASH_LEN]);

/*
 * The convergence hash of an edge's intent state, kept up to date across
 * deltas from per-tunnel digests the edge holds, so that applying a delta
 * costs digesting the delta's tunnels rather than all of them (a full hash
 * of a 999-tunnel edge is ~3 ms; a thousand simulated edges in one process,
 * or an agent receiving a burst of deltas, pay that every time).
 *
 * *dig (malloc'd, owned by the caller: free() it) holds *n_dig digests, one
 * per tunnel of the state, by ascending id; start with NULL and 0.
 *  - d == NULL: m was received whole (a snapshot): every tunnel is
 *    digested and *dig rebuilt.
 *  - d != NULL: m is the state msg_intent_apply_delta(before, d) just made
 *    and *dig holds the digests of `before`: the removed ids' digests are
 *    dropped, d->upsert's tunnels (which apply_delta put into m as they
 *    are) digested and replace or join the others.  O(changes) digests and
 *    allocations, plus one pass over *dig and a binary search per tunnel
 *    (the id check below): ~0.05 ms for 999 tunnels against ~2 ms.
 * Either way out = pbconv_intent_hash(m).  The digests of tunnels the delta
 * did not touch are trusted, but their ids are checked against m's (count,
 * order, every tunnel of m present), so a list out of step with m fails
 * rather than giving a wrong hash.
 *
 * 0, or -1 (invalid intent header or upserted tunnel, m->version not
 * d->version, digests out of step, out of memory; logged) with *dig freed
 * and *n_dig 0: call again with d == NULL to start over.
 */
struct pbconv_digest {
	uint64_t id;				/* tunnel id */
	uint8_t digest[MSG_HASH_LEN];		/* pbconv_tunnel_digest() */
};

int pbconv_intent_hash_update(const struct msg_intent *m,
    const struct msg_intent_delta *d, struct pbconv_digest **dig,
    size_t *n_dig, uint8_t out[MSG_HASH_LEN]);

#endif
