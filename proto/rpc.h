/*
 * rpc.h — meshwan's gRPC layer: unary calls and bidirectional streams over
 * mutual TLS, with messages as opaque byte buffers.
 *
 * Why it exists: gRPC's C core is a low-level library without API
 * stability, so proto/rpc.c is the only file that calls grpc_*; no gRPC type
 * crosses this header.  Messages are the protobuf encodings made and read by
 * proto/pbconv; this layer never looks inside them.
 *
 * Threading (see proto/RPC.md): each server and client runs one internal
 * completion-queue thread.  Callbacks never run on it: they run on the
 * OWNER's thread, inside rpc_server_dispatch()/rpc_client_dispatch(), which
 * the owner calls when the descriptor from rpc_server_fd()/rpc_client_fd()
 * becomes readable (poll for POLLIN).  Every other function of this header
 * must be called from that same owner thread.
 *
 * Ownership: the layer owns struct rpc_stream and struct rpc_unary; a stream
 * pointer is valid from its on_open until its on_close returns, a unary
 * call handle until rpc_unary_reply()/rpc_unary_fail().  Buffers passed to
 * callbacks belong to the layer and are valid only during the callback;
 * buffers passed to rpc_*_send/reply are copied.
 */
#ifndef MESHWAN_RPC_H
#define MESHWAN_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rpc_server;
struct rpc_client;
struct rpc_stream;
struct rpc_unary;

/* Status codes: the numbers are gRPC's, so they mean the same on the wire. */
enum rpc_code {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16,
};

/* Why a stream ended (on_close). */
enum rpc_close_reason {
	RPC_CLOSE_FINISHED = 0, /* ended with a status (code says which) */
	RPC_CLOSE_CANCELLED,    /* peer cancelled, or the connection died
				   (reset, keepalive timeout): gRPC core
				   reports both the same way to a server */
	RPC_CLOSE_DEADLINE,     /* the call's deadline passed */
	RPC_CLOSE_SHUTDOWN,     /* this server/client is being freed */
	RPC_CLOSE_LOCAL,        /* this side called rpc_stream_cancel(), or
				   rpc_stream_close() whose queue did not
				   go out within close_timeout_ms */
};
const char *rpc_close_reason_str(enum rpc_close_reason why);

#define RPC_CERT_FP_LEN 32   /* SHA-256 */
#define RPC_SERIAL_MAX 41    /* 20-octet serial as hex, + NUL */

/* Who is on the other side of a call, as the TLS handshake proved it. */
struct rpc_peer {
	bool verified;     /* a client certificate chained to our CA */
	char cn[65];       /* certificate subject CN, "" if none */
	char sans[256];    /* subjectAltNames, comma-separated, may be cut */
	char addr[64];     /* transport address, "ipv4:127.0.0.1:5555" */
	/*
	 * The exact certificate (set only when verified): SHA-256 over its
	 * DER, its serial number as lower-case hex without leading zeros,
	 * and its notAfter in unix seconds.  The controller binds a site's
	 * session to one issued certificate with these.
	 */
	uint8_t cert_sha256[RPC_CERT_FP_LEN];
	char serial[RPC_SERIAL_MAX];
	int64_t not_after;
};

/* Which callers a method accepts. */
enum rpc_auth {
	RPC_AUTH_PEER = 0, /* verified client certificate required (default) */
	RPC_AUTH_NONE,     /* any TLS client, e.g. Enroll: no cert yet */
};

struct rpc_tls {
	const char *ca_file;   /* PEM: CA that signs the peers' certificates */
	const char *cert_file; /* PEM: our certificate chain */
	const char *key_file;  /* PEM: our private key */
};

/* Zero in any numeric field means "default" (values in proto/RPC.md). */
struct rpc_limits {
	size_t max_message;  /* bytes per message, both directions; 4 MiB */
	size_t queue_msgs;   /* outbound queue per stream, messages; 1024 */
	size_t queue_bytes;  /* outbound queue per stream, bytes; 8 MiB */
	unsigned inbound_msgs; /* received, not yet dispatched, per stream; 64 */
	size_t max_inbound;  /* bytes per received message; max_message */
	unsigned close_timeout_ms; /* rpc_stream_close(): the queue must go
				      out within this, else the stream is
				      cancelled and its queue freed; 5000 */
};

struct rpc_server_opts {
	const char *listen;        /* "host:port", mutual TLS; port 0 = pick */
	const char *enroll_listen; /* optional second port, server-auth TLS
				      only: serves RPC_AUTH_NONE methods to
				      clients without a certificate */
	struct rpc_tls tls;        /* cert+key required; ca_file required */
	bool insecure;             /* plaintext, no identity, RPC_AUTH_PEER
				      not enforced: tests only */
	struct rpc_limits limits;
	unsigned max_streams;      /* open streams, all methods; 100000 */
	unsigned keepalive_ms;     /* ping an idle connection; 20000 */
	unsigned keepalive_timeout_ms; /* no ping ack -> drop it; 10000 */
	unsigned min_ping_interval_ms; /* accept client pings this often;
					  5000 */
	unsigned handshake_ms;     /* a connection must finish TCP, TLS and
				      HTTP/2 settings within this, else it
				      is closed (its descriptor freed);
				      20000, the clients' connect timeout */
	unsigned first_message_ms; /* a stream whose first message has not
				      arrived this long after it opened is
				      cancelled (DEADLINE_EXCEEDED,
				      on_close(RPC_CLOSE_DEADLINE)); 0 = no
				      limit */
};

struct rpc_stream_handlers {
	/*
	 * A new stream.  Server: peer is the caller (valid during the call
	 * only); return RPC_OK (0) to accept or an rpc_code to refuse
	 * (on_close is then not called).
	 * Client: peer is NULL, the return value is ignored; called again for
	 * every reconnection, with a new stream.  May call rpc_stream_send.
	 */
	int (*on_open)(struct rpc_stream *s, const struct rpc_peer *peer,
	    void *arg);
	void (*on_message)(struct rpc_stream *s, const uint8_t *buf,
	    size_t len, void *arg);
	/* Last callback of a stream; code/msg are the final status. */
	void (*on_close)(struct rpc_stream *s, enum rpc_close_reason why,
	    int code, const char *msg, void *arg);
	/*
	 * Optional: after rpc_stream_send failed with ENOBUFS, called once
	 * when the outbound queue has emptied (time to resynchronise).
	 */
	void (*on_drained)(struct rpc_stream *s, void *arg);
};

/*
 * Unary handler: answer with exactly one rpc_unary_reply/rpc_unary_fail,
 * now or later (e.g. after a database write) from the owner thread.  req
 * and peer are valid during the call only: copy what a later answer needs.
 */
typedef void (*rpc_unary_fn)(struct rpc_unary *call, const uint8_t *req,
    size_t len, const struct rpc_peer *peer, void *arg);

struct rpc_stats {
	unsigned streams;       /* open streams (accepted, not closed) */
	unsigned unary_pending; /* unary calls not answered yet */
	unsigned calls_live;    /* every call object the layer holds */
	size_t queued_msgs;     /* outbound messages waiting, all streams */
	size_t queued_bytes;
	uint64_t msgs_in, msgs_out;
	uint64_t refused_auth;  /* calls refused for want of a verified peer */
	size_t call_bytes;      /* size of one call object (memory hint) */
	uint64_t wakeups;       /* the layer's thread woke up (completions
				   and timeouts) */
	uint64_t ticks;         /* ... of which timeouts, nothing to do */
	uint64_t accept_refused; /* server: connections closed unserved for
				    want of descriptors (process-wide;
				    proto/RPC.md, "Descriptors") */
};

/* --- server --------------------------------------------------------- */

/* NULL on error (logged).  Register methods, then rpc_server_start. */
struct rpc_server *rpc_server_new(const struct rpc_server_opts *opts);
/* method is the full path, "/meshwan.v1.Edge/Session"; copied. 0 / -1. */
int rpc_server_add_unary(struct rpc_server *srv, const char *method,
    enum rpc_auth auth, rpc_unary_fn fn, void *arg);
int rpc_server_add_stream(struct rpc_server *srv, const char *method,
    enum rpc_auth auth, const struct rpc_stream_handlers *h, void *arg);
int rpc_server_start(struct rpc_server *srv);
/* Bound port of the main (enroll = false) or enrollment listener; 0 if none. */
int rpc_server_port(const struct rpc_server *srv, bool enroll);
int rpc_server_fd(const struct rpc_server *srv);
/* Runs pending callbacks; never blocks.  Returns how many it ran. */
int rpc_server_dispatch(struct rpc_server *srv);
void rpc_server_stats(const struct rpc_server *srv, struct rpc_stats *st);
/* rpc_stats.accept_refused alone, without a lock (the controller's
 * metrics read it on every turn of its loop). */
uint64_t rpc_accept_refused(void);
/*
 * Cancels every call, runs on_close(RPC_CLOSE_SHUTDOWN) for each open
 * stream, fails unanswered unary calls with UNAVAILABLE, frees everything.
 * Blocks until gRPC has let go (normally milliseconds).  NULL is fine.
 * Not from inside one of this server's callbacks.
 */
void rpc_server_free(struct rpc_server *srv);

/* Both copy buf; the handle is gone afterwards.  0, or -1 (EMSGSIZE). */
int rpc_unary_reply(struct rpc_unary *call, const void *buf, size_t len);
int rpc_unary_fail(struct rpc_unary *call, int code, const char *msg);

/* --- streams (both sides) ------------------------------------------- */

/*
 * Queue one message; returns at once.  -1 with errno ENOBUFS when the
 * stream's outbound queue is full (the owner decides: drop and resync
 * from on_drained, or close), EMSGSIZE when too large, EPIPE once closing.
 */
int rpc_stream_send(struct rpc_stream *s, const void *buf, size_t len);
/*
 * Orderly end after the queued messages went out.  Server: sends status
 * code/msg.  Client: half-closes (code RPC_OK) or cancels (other codes).
 * Stops a client stream's reconnection.  on_close follows.  Bounded
 * whatever the peer does: if the queue has not gone out (and the stream
 * ended) within limits.close_timeout_ms, the stream is cancelled with
 * code/msg, its queue freed, and on_close(RPC_CLOSE_LOCAL) follows.
 */
void rpc_stream_close(struct rpc_stream *s, int code, const char *msg);
/* Abort now, dropping the queue; on_close(RPC_CLOSE_LOCAL) follows. */
void rpc_stream_cancel(struct rpc_stream *s);
void rpc_stream_set_user(struct rpc_stream *s, void *user);
void *rpc_stream_user(const struct rpc_stream *s);
void rpc_stream_queued(const struct rpc_stream *s, size_t *msgs,
    size_t *bytes);

/* --- client --------------------------------------------------------- */

struct rpc_client_opts {
	const char *target;        /* "host:port" */
	struct rpc_tls tls;        /* ca_file required; cert+key optional
				      (without them: server-auth only) */
	const char *server_name;   /* name to check in the server's
				      certificate instead of the host */
	bool insecure;             /* plaintext: tests only */
	struct rpc_limits limits;
	unsigned keepalive_ms;     /* >= server's min ping interval; 20000 */
	unsigned keepalive_timeout_ms; /* 10000 */
	unsigned idle_ms;          /* 0: the layer's thread wakes every
				      100 ms for its timers.  Else it sleeps
				      until the next timer it knows of, at
				      most idle_ms; a reopen or close timer
				      set meanwhile may fire up to idle_ms
				      late.  For crowds of idle clients
				      (load generators), not agents. */
};

struct rpc_stream_opts {
	bool reconnect;      /* reopen after close, with lib/backoff.h delays */
	unsigned timeout_ms; /* deadline of each stream; 0 = none */
};

/* Completion of an asynchronous unary call (owner thread). */
typedef void (*rpc_unary_done_fn)(int code, const char *msg,
    const uint8_t *resp, size_t len, void *arg);

struct rpc_client *rpc_client_new(const struct rpc_client_opts *opts);
int rpc_client_fd(const struct rpc_client *cli);
/* The connection is up (TCP, TLS and HTTP/2 done): the server lives,
 * although it may still refuse a stream. */
bool rpc_client_ready(const struct rpc_client *cli);
int rpc_client_dispatch(struct rpc_client *cli);
void rpc_client_stats(const struct rpc_client *cli, struct rpc_stats *st);
/*
 * Blocking unary call with a deadline.  Returns -1 on a local error,
 * else 0 with *code the call's status; on RPC_OK *resp holds the reply
 * (malloc'd, caller frees) and *resp_len its size.  msg (may be NULL)
 * receives the status message.  Callbacks are not run meanwhile.
 */
int rpc_client_unary(struct rpc_client *cli, const char *method,
    const void *req, size_t len, unsigned timeout_ms, int *code,
    uint8_t **resp, size_t *resp_len, char *msg, size_t msgsz);
/* Asynchronous unary call; done runs from rpc_client_dispatch. 0 / -1. */
int rpc_client_unary_async(struct rpc_client *cli, const char *method,
    const void *req, size_t len, unsigned timeout_ms, rpc_unary_done_fn done,
    void *arg);
/* Open a stream; its on_open follows from rpc_client_dispatch.  0 / -1. */
int rpc_client_stream_open(struct rpc_client *cli, const char *method,
    const struct rpc_stream_handlers *h, void *arg,
    const struct rpc_stream_opts *opts);
/*
 * Cancels streams (on_close(RPC_CLOSE_SHUTDOWN)), frees.  NULL is fine.
 * Not from inside one of this client's callbacks.
 */
void rpc_client_free(struct rpc_client *cli);

#endif
