/*
 * session.h — an edge's side of the controller's Edge.Session stream:
 * hello, then every snapshot or delta applied to the intent kept here and
 * acked with its convergence hash (from per-tunnel digests kept across
 * deltas, so a delta costs only its own tunnels), rekey orders and peers'
 * keys handed to the owner, reconnection with backoff, and the
 * controller's Backoff hint honoured (no reconnect before it says).
 *
 * What to do with an intent (program SAs, FRR) is the owner's: it gets
 * callbacks.  Used by meshwan-edge and by the test edges in tests/.
 *
 * Threads: one owner thread.  Callbacks run inside session_dispatch().
 */
#ifndef MESHWAN_EDGE_SESSION_H
#define MESHWAN_EDGE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"
#include "proto/rpc.h"

struct session;

struct session_handlers {
	/* The stream opened and the hello went out, announcing applied
	 * (0: none).  May be NULL. */
	void (*on_open)(struct session *s, uint64_t applied, void *arg);
	/*
	 * A snapshot (d NULL) or delta d arrived for version; return false
	 * to drop it unapplied and unacked.  May be NULL (take every one).
	 */
	bool (*on_receive)(struct session *s, uint64_t version,
	    const struct msg_intent_delta *d, void *arg);
	/*
	 * The intent after a snapshot (d NULL) or delta d was applied, and
	 * its convergence hash, which the ack will carry (the callback may
	 * change it: tests send a wrong one).  Return 0 to ack it, -1 to
	 * ack it failed with reason: the intent is then forgotten and the
	 * controller resyncs with a snapshot.  May be NULL (ack).
	 */
	int (*on_intent)(struct session *s, const struct msg_intent *in,
	    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
	    char *reason, size_t reasonsz, void *arg);
	/*
	 * A rekey order.  0: ack it done; -1: ack it failed with reason;
	 * 1: leave it unanswered (the controller repeats it on the next
	 * hello).  May be NULL (every order unanswered).
	 */
	int (*on_rekey)(struct session *s, const struct msg_rekey_order *o,
	    char *reason, size_t reasonsz, void *arg);
	/* A peer announced new epoch keys.  May be NULL. */
	void (*on_peer_keys)(struct session *s, const struct msg_peer_keys *k,
	    void *arg);
	/* The stream closed; it reopens by itself unless session_leave()
	 * or a Backoff scheduled the reopen.  May be NULL. */
	void (*on_close)(struct session *s, enum rpc_close_reason why,
	    int code, const char *msg, void *arg);
};

struct session_opts {
	const char *target;          /* controller "host:port" */
	const char *ca_file;         /* PEM: the controller's CA */
	const char *cert_file;       /* PEM: this edge's certificate */
	const char *key_file;        /* PEM: its key */
	const char *server_name;     /* name in the controller's certificate */
	uint64_t site_id;
	const char *software_version;
	enum msg_backend backend;
	uint32_t features;           /* MSG_FEATURE_* */
	const struct session_handlers *h;
	void *arg;
	/* HTTP/2 keepalive of the connection (rpc_client_opts): a controller
	 * that vanished without closing it (frozen, blackholed) is noticed
	 * within keepalive_ms + keepalive_timeout_ms.  keepalive_ms must stay
	 * above the controller's min_ping_interval_ms (5 s).  0 = the rpc
	 * defaults (20 s + 10 s). */
	unsigned keepalive_ms;
	unsigned keepalive_timeout_ms;
	/* rpc_client_opts.idle_ms: 0 for an agent.  A load generator
	 * running thousands of idle sessions sets it, so their threads do
	 * not each wake ten times a second. */
	unsigned idle_ms;
	/* Tests only: the first hello claims this applied version (without
	 * a hash), as an edge ahead of its controller would; 0 = off. */
	uint64_t test_hello_version;
};

/* Connects and opens the stream (reconnecting).  NULL on error (logged).
 * opts' strings are used only during the call. */
struct session *session_new(const struct session_opts *o);
/* Closes the stream (on_close runs first) and frees.  NULL is fine. */
void session_free(struct session *s);

/* Poll this for POLLIN; then call session_dispatch(). */
int session_fd(const struct session *s);
/* Milliseconds until session_dispatch() has timed work, or -1. */
int session_timeout_ms(const struct session *s);
/* Runs callbacks and timers.  0, or -1 when a reopen failed. */
int session_dispatch(struct session *s);

/* Queue a message (status, key announcement) on the open stream.
 * 0, or -1 (not open, queue full, encoding failed). */
int session_send(struct session *s, const struct msg_edge_message *m);
/* Leave the stream now and reopen it after secs (what a Backoff does). */
void session_leave(struct session *s, unsigned secs);
/*
 * After a renewal: drop the connection made with the old certificate and
 * reopen the stream with cert_file/key_file, keeping the intent (the
 * hello carries its version: no snapshot).  session_fd() changes.  Not
 * from inside a callback.  0, or -1 (the old connection is kept).
 */
int session_switch_cert(struct session *s, const char *cert_file,
    const char *key_file);

/*
 * Start from an intent applied before this process (meshwan-edge's
 * cache, after a restart): the next hello carries its version and hash,
 * so the controller answers with a delta, or nothing when it is current.
 * Call before the first session_dispatch().  0, or -1 (nothing changed
 * but the intent is dropped: a snapshot follows).
 */
int session_resume(struct session *s, const struct msg_intent *in);

/* The intent applied last, or NULL when none. */
const struct msg_intent *session_intent(const struct session *s);
uint64_t session_site(const struct session *s);
/* The connection to the controller is up (its stream may still be
 * refused: on_close then follows). */
bool session_connected(const struct session *s);
/* Bytes of controller messages received so far. */
uint64_t session_bytes_received(const struct session *s);

#endif
