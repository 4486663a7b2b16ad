/*
 * rpc.c — the only code in meshwan that calls grpc_*.
 *
 * gRPC's C core is a low-level library that promises no API stability, so
 * it is wrapped here once: proto/rpc.h exposes streams and unary calls
 * carrying opaque bytes, and nothing of gRPC leaks out.
 *
 * Shape (see proto/RPC.md for the why):
 *  - A server or client owns one "loop": a completion queue, one thread
 *    blocking on it, a mutex, an event list and an eventfd.  The thread
 *    turns completions into events; the owner's thread runs them (and the
 *    user's callbacks) in rpc_*_dispatch(), so the daemons stay single-
 *    threaded event loops.
 *  - Every call (stream, unary, a pending request for a new call) is one
 *    struct rpc_stream with a reference count: one reference for its life
 *    plus one per batch in flight and per queued event.
 *  - One SEND_MESSAGE in flight per call (a gRPC rule): sends go into a
 *    bounded per-stream queue, and each completion starts the next one.
 *  - Receiving is re-armed only while fewer than limits.inbound_msgs
 *    messages wait for the owner, so a slow owner pushes back through
 *    HTTP/2 flow control instead of growing memory.
 *  - RECV_CLOSE_ON_SERVER, posted when a stream starts, is the detector for
 *    cancellation and dead connections (keepalive).
 *  - Nothing waits on the peer without a deadline: a closing stream whose
 *    queue does not go out within close_timeout_ms, and a server stream
 *    whose first message does not come within first_message_ms, are
 *    cancelled by the layer's thread (loop.timed, checked every TICK_MS),
 *    so a peer that stops reading cannot pin its queue.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/backoff.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/rpc.h"

#define DEF_MAX_MESSAGE (4u << 20)
#define DEF_QUEUE_MSGS 1024
#define DEF_QUEUE_BYTES (8u << 20)
#define DEF_INBOUND_MSGS 64
#define DEF_MAX_STREAMS 100000
#define DEF_KEEPALIVE_MS 20000
#define DEF_KEEPALIVE_TIMEOUT_MS 10000
#define DEF_MIN_PING_MS 5000
#define DEF_CLOSE_TIMEOUT_MS 5000
#define DEF_HANDSHAKE_MS CONNECT_TIMEOUT_MS
#define MAX_MESSAGE_LIMIT (64u << 20)
#define PEM_MAX (1u << 20)
#define REQ_STREAM 32   /* outstanding requests per stream method */
#define REQ_UNARY 8
#define REQ_GENERIC 2
#define TICK_MS 100 /* timers: reopening streams, close and hello deadlines */
/*
 * How long one connection attempt (TCP and the TLS handshake) may take:
 * gRPC's GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, which despite its name is the
 * minimum connect timeout (doc/connection-backoff.md, MIN_CONNECT_TIMEOUT;
 * its default, 20 s).  Set to 500 ms it allowed ~0.5 s, so a
 * handshake slower than that (a far controller, a loaded machine, ASan)
 * failed the first call with UNAVAILABLE.  A peer that does not answer
 * still fails an attempt within this bound, or the call's deadline.
 */
#define CONNECT_TIMEOUT_MS 20000
#define REG_CACHE 16

enum call_kind {
	K_SRV_STREAM,
	K_SRV_UNARY,
	K_SRV_GENERIC, /* unknown method: answered UNIMPLEMENTED */
	K_CLI_STREAM,
	K_CLI_UNARY,
};

/*
 * Batch kinds.  A completion tag is the address of byte k of the call's
 * tags[] array, which holds k: the kind is read through the tag and the
 * call found by subtracting (no integer-to-pointer casts).
 */
enum tag_kind {
	T_NEW = 1,   /* a requested server call arrived */
	T_MD,        /* server's initial metadata sent */
	T_RECV,      /* a message (or end of messages) received */
	T_SEND,      /* one queued message sent */
	T_CLOSE,     /* server: RECV_CLOSE_ON_SERVER; client: status */
	T_FINAL,     /* server: status sent; client: half-close sent */
	T_SHUTDOWN,  /* server shutdown finished (no call) */
	T_CONN,      /* client: the channel's state changed (no call) */
};
#define N_TAGS (T_SHUTDOWN + 1) /* a call's tags; T_CONN is the client's */
#define TAG(s, k) ((void *)&(s)->tags[(k)])

/* What a call's deadline (loop.timed) is for. */
enum timer_kind {
	TM_NONE = 0,
	TM_CLOSE,     /* rpc_stream_close(): queue out and stream ended */
	TM_FIRST_MSG, /* server: the peer's first message */
};

enum ev_type { EV_OPEN, EV_MSG, EV_CLOSE, EV_UNARY, EV_UDONE, EV_DRAINED };

struct outmsg {
	struct outmsg *next;
	size_t len;
	uint8_t data[];
};

struct event {
	struct event *next;
	struct rpc_stream *s;
	uint8_t type;
	uint8_t why;
	int code;
	char *msg;
	size_t len;
	uint8_t data[];
};

struct method {
	struct method *next;
	char *path;
	enum rpc_auth auth;
	bool unary;
	rpc_unary_fn ufn;
	struct rpc_stream_handlers h;
	void *arg;
	void *handle; /* grpc_server_register_method's */
};

/* A client stream's identity across reconnections. */
struct session {
	struct session *next; /* in loop.pending while waiting to reopen */
	void *reg;
	struct rpc_stream_handlers h;
	void *arg;
	struct rpc_stream_opts o;
	struct backoff bo;
	uint64_t due_ms;
	bool stopped;
};

struct loop {
	grpc_completion_queue *cq;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	int efd;
	struct event *evh, **evt;
	struct rpc_stream *live; /* every call object */
	struct rpc_stream *timed; /* calls with a deadline (due_ms) */
	uint64_t next_due_ms;    /* no timer in timed is due before this
				    (a stopped one may have set it: then
				    one scan too many); 0 = none */
	unsigned first_msg_ms;   /* server: first message due; 0 = none */
	struct session *pending; /* client: sessions waiting to reopen */
	struct rpc_limits lim;
	unsigned idle_ms;        /* client: longest sleep without a timer
				    due (rpc_client_opts.idle_ms); 0 =
				    TICK_MS */
	bool insecure;
	bool is_client;
	bool shutting_down;
	struct rpc_stats st;
	struct rpc_server *srv;
};

struct rpc_stream {
	struct loop *lp;
	struct rpc_stream *prev, *next; /* loop.live */
	struct rpc_stream *tprev, *tnext; /* loop.timed, while timer != 0 */
	uint64_t due_ms;      /* the timer's deadline (mono ms) */
	uint8_t timer;        /* enum timer_kind */
	bool first_timeout;   /* cancelled: no first message in time */
	grpc_call *call;
	struct method *m;     /* server calls */
	struct session *sess; /* client streams */
	rpc_unary_done_fn done; /* client unary */
	void *user;
	unsigned refs;
	uint8_t kind;
	uint8_t why;
	bool accepted, refused, owner_knows, md_sent, md_recvd;
	bool recv_busy, send_busy, closing, final_sent, close_seen;
	bool close_pushed, local_cancel, peer_done, replied, got_msg, handed;
	bool want_drained; /* a send was refused: tell the owner when empty */
	uint16_t inbound;
	int cancelled; /* RECV_CLOSE_ON_SERVER result */
	int close_code;
	char *close_msg;
	gpr_timespec deadline;
	grpc_metadata_array md;
	grpc_metadata_array trailing;
	grpc_call_details *details; /* generic requests only */
	grpc_byte_buffer *recv_buf;
	grpc_byte_buffer *send_bb;
	size_t inflight_len;
	grpc_status_code status;
	grpc_slice status_slice;
	struct outmsg *qh, **qt;
	size_t q_msgs, q_bytes;
	struct rpc_peer *peer;
	uint8_t tags[N_TAGS];
};

struct rpc_unary {
	struct rpc_stream s;
};

struct rpc_server {
	struct loop lp;
	grpc_server *server;
	struct method *methods;
	char listen[256];
	char enroll_listen[256];
	struct rpc_tls tls;
	char ca[4096], cert[4096], key[4096];
	unsigned max_streams;
	int port, eport;
	bool started;
	bool shutdown_done;
	bool unary_swept;     /* srv_drained answered the held unary calls */
	uint8_t shutdown_tag; /* T_SHUTDOWN */
};

struct reg {
	char *method;
	void *handle;
};

struct rpc_client {
	struct loop lp;
	grpc_channel *ch;
	uint8_t conn_tag;       /* T_CONN */
	bool conn_watch;        /* a connectivity watch is armed */
	grpc_connectivity_state conn_state; /* as the last watch saw it */
	struct reg regs[REG_CACHE];
	size_t n_regs;
};

const char *
rpc_close_reason_str(enum rpc_close_reason why)
{
	switch (why) {
	case RPC_CLOSE_FINISHED: return "finished";
	case RPC_CLOSE_CANCELLED: return "cancelled or connection lost";
	case RPC_CLOSE_DEADLINE: return "deadline exceeded";
	case RPC_CLOSE_SHUTDOWN: return "shutdown";
	case RPC_CLOSE_LOCAL: return "cancelled locally";
	}
	return "?";
}

/* --- small helpers -------------------------------------------------- */

static void
limits_fill(struct rpc_limits *dst, const struct rpc_limits *src)
{
	*dst = *src;
	if (dst->max_message == 0)
		dst->max_message = DEF_MAX_MESSAGE;
	if (dst->max_message > MAX_MESSAGE_LIMIT)
		dst->max_message = MAX_MESSAGE_LIMIT;
	if (dst->queue_msgs == 0)
		dst->queue_msgs = DEF_QUEUE_MSGS;
	if (dst->queue_bytes == 0)
		dst->queue_bytes = DEF_QUEUE_BYTES;
	if (dst->inbound_msgs == 0)
		dst->inbound_msgs = DEF_INBOUND_MSGS;
	if (dst->inbound_msgs > UINT16_MAX)
		dst->inbound_msgs = UINT16_MAX;
	if (dst->max_inbound == 0 || dst->max_inbound > dst->max_message)
		dst->max_inbound = dst->max_message;
	if (dst->close_timeout_ms == 0)
		dst->close_timeout_ms = DEF_CLOSE_TIMEOUT_MS;
}

/* Reads a PEM file into buf (NUL-terminated).  0 / -1 (logged). */
static int
pem_read(const char *path, char **out)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("rpc: %s", path);
		return -1;
	}
	if ((buf = malloc(PEM_MAX + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf + len, PEM_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (n < 0 || len == PEM_MAX || len == 0) {
		log_warnx("rpc: %s: unreadable, empty or larger than %u bytes",
		    path, PEM_MAX);
		util_wipe(buf, len);
		free(buf);
		return -1;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static void
pem_free(char *p)
{
	if (p != NULL) {
		util_wipe(p, strlen(p));
		free(p);
	}
}

struct argv {
	grpc_arg a[16];
	size_t n;
};

static void
argv_int(struct argv *v, const char *key, int val)
{
	grpc_arg *a = &v->a[v->n++];

	a->type = GRPC_ARG_INTEGER;
	a->key = (char *)key;
	a->value.integer = val;
}

static void
argv_str(struct argv *v, const char *key, const char *val)
{
	grpc_arg *a = &v->a[v->n++];

	a->type = GRPC_ARG_STRING;
	a->key = (char *)key;
	a->value.string = (char *)val;
}

static int
clamp_int(unsigned v)
{
	return v > INT32_MAX ? INT32_MAX : (int)v;
}

static gpr_timespec
deadline_after(unsigned ms)
{
	if (ms == 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Copies a received message; NULL on allocation failure. */
static struct event *
event_from_bb(grpc_byte_buffer *bb, uint8_t type)
{
	grpc_byte_buffer_reader r;
	grpc_slice sl;
	struct event *e;
	size_t len;

	if (!grpc_byte_buffer_reader_init(&r, bb))
		return NULL;
	sl = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	len = GRPC_SLICE_LENGTH(sl);
	if ((e = calloc(1, sizeof(*e) + len)) != NULL) {
		e->type = type;
		e->len = len;
		if (len > 0)
			memcpy(e->data, GRPC_SLICE_START_PTR(sl), len);
	}
	grpc_slice_unref(sl);
	return e;
}

static char *
slice_strdup(grpc_slice sl)
{
	size_t len = GRPC_SLICE_LENGTH(sl);
	char *s = malloc(len + 1);

	if (s != NULL) {
		if (len > 0)
			memcpy(s, GRPC_SLICE_START_PTR(sl), len);
		s[len] = '\0';
	}
	return s;
}

/* Bounded copy of a certificate property; false if it does not fit. */
static bool
prop_copy(char *dst, size_t dstsz, const grpc_auth_property *p)
{
	if (p->value == NULL || p->value_length >= dstsz ||
	    memchr(p->value, '\0', p->value_length) != NULL)
		return false;
	memcpy(dst, p->value, p->value_length);
	dst[p->value_length] = '\0';
	return true;
}

/*
 * The peer's leaf certificate (gRPC hands it over as PEM): its SHA-256
 * fingerprint, serial and notAfter.  -1 when absent or unreadable, and
 * then the identity is not trusted.
 */
static int
peer_cert_read(struct rpc_peer *p, const grpc_auth_property *prop)
{
	BIO *b = NULL;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	struct tm tm;
	unsigned fplen = 0;
	int rc = -1;

	if (prop->value == NULL || prop->value_length == 0 ||
	    prop->value_length > PEM_MAX ||
	    (b = BIO_new_mem_buf(prop->value, (int)prop->value_length)) ==
	    NULL ||
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL)
		goto out;
	if (X509_digest(x, EVP_sha256(), p->cert_sha256, &fplen) != 1 ||
	    fplen != RPC_CERT_FP_LEN)
		goto out;
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) ==
	    NULL || (hex = BN_bn2hex(bn)) == NULL ||
	    strlen(hex) >= sizeof(p->serial))
		goto out;
	for (size_t i = 0; hex[i] != '\0'; i++)
		p->serial[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ?
		    hex[i] - 'A' + 'a' : hex[i]);
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		goto out;
	p->not_after = (int64_t)timegm(&tm);
	rc = 0;
out:
	if (rc == -1) {
		memset(p->cert_sha256, 0, sizeof(p->cert_sha256));
		memset(p->serial, 0, sizeof(p->serial));
		p->not_after = 0;
	}
	ERR_clear_error();
	OPENSSL_free(hex);
	BN_free(bn);
	X509_free(x);
	BIO_free(b);
	return rc;
}

/* The TLS identity of a call's peer; NULL only when out of memory. */
static struct rpc_peer *
peer_read(grpc_call *call)
{
	struct rpc_peer *p = calloc(1, sizeof(*p));
	grpc_auth_property_iterator it;
	const grpc_auth_property *prop;
	grpc_auth_context *ac;
	char *addr;
	size_t used = 0;

	if (p == NULL)
		return NULL;
	if ((addr = grpc_call_get_peer(call)) != NULL) {
		(void)util_strcpy(p->addr, sizeof(p->addr), addr);
		gpr_free(addr);
	}
	if ((ac = grpc_call_auth_context(call)) == NULL)
		return p;
	it = grpc_auth_context_find_properties_by_name(ac,
	    GRPC_X509_CN_PROPERTY_NAME);
	bool cn_ok = true;
	if ((prop = grpc_auth_property_iterator_next(&it)) != NULL)
		cn_ok = prop_copy(p->cn, sizeof(p->cn), prop);
	it = grpc_auth_context_find_properties_by_name(ac,
	    GRPC_X509_SAN_PROPERTY_NAME);
	while ((prop = grpc_auth_property_iterator_next(&it)) != NULL) {
		char one[sizeof(p->sans)];

		if (!prop_copy(one, sizeof(one), prop))
			continue;
		size_t n = strlen(one);
		if (used + n + 2 > sizeof(p->sans))
			break;
		if (used > 0)
			p->sans[used++] = ',';
		memcpy(p->sans + used, one, n + 1);
		used += n;
	}
	it = grpc_auth_context_find_properties_by_name(ac,
	    GRPC_X509_PEM_CERT_PROPERTY_NAME);
	bool cert_ok = (prop = grpc_auth_property_iterator_next(&it)) !=
	    NULL && peer_cert_read(p, prop) == 0;
	/*
	 * gRPC sets a peer identity only from a certificate the handshake
	 * verified against our CA; an oversized or odd CN, or a certificate
	 * we cannot fingerprint, is not trusted.
	 */
	p->verified = grpc_auth_context_peer_is_authenticated(ac) && cn_ok &&
	    cert_ok;
	grpc_auth_context_release(ac);
	return p;
}

/*
 * gRPC's own log lines (handshake failures, GOAWAYs) go through lib/log
 * like everything else, instead of straight to stderr.  The hook is
 * process-wide in gRPC itself, hence the once-only set-up.
 */
static void
rpc_gpr_log(gpr_log_func_args *a)
{
	if (a->severity == GPR_LOG_SEVERITY_ERROR)
		log_warnx("grpc: %s", a->message);
	else
		log_debug("grpc", "%s:%d: %s", a->file, a->line, a->message);
}

/*
 * OpenSSL frees its per-thread state (the error queue, 904 bytes) from a
 * thread-exit hook, and by default its atexit handler deletes that hook.
 * gRPC's threads that did TLS work can still be ending when the process
 * exits; if OpenSSL's cleanup runs first, their state is lost, and
 * LeakSanitizer reports it (rarely, under load: seen in CI).  Every
 * program that links this file therefore tells OpenSSL, before anything
 * else initialises it, to skip that cleanup: the process is ending, and
 * the kernel takes its memory back anyway.  It has to run before main,
 * since any OpenSSL call made first would register the handler.
 */
__attribute__((constructor)) static void
rpc_openssl_no_atexit(void)
{
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

/*
 * Debian 12 builds abseil without NDEBUG, so every absl::Mutex that
 * gRPC locks also runs abseil's debug-only deadlock detector: a global
 * lock-order graph, updated on each lock and on each mutex's
 * destruction.  It is a diagnostic for abseil's developers, not a
 * safety net: at 10,000 connections it was the largest single cost in
 * the controller's shutdown and in the load generator's reconnects
 * (GraphCycles::GetId and its mallocs in perf), and it aborts the
 * process on the cycles it believes it saw (grpc/grpc#40390: a client
 * whose server stayed away).  Release builds of abseil have it off;
 * this turns it off the same way, through abseil's own switch
 * (absl::SetMutexDeadlockDetectionMode(kIgnore), kIgnore being 0).  The
 * function is C++, so it is found by its mangled name; any other
 * abseil has another inline namespace, and then nothing changes.
 */
#define ABSL_DEADLOCK_MODE_SYM \
	"_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE"

static void
rpc_absl_no_deadlock_graph(void)
{
	void *sym = dlsym(RTLD_DEFAULT, ABSL_DEADLOCK_MODE_SYM);
	void (*set_mode)(int);

	if (sym == NULL) {
		log_debug("grpc", "abseil's deadlock detector left as it is "
		    "(%s not found)", ABSL_DEADLOCK_MODE_SYM);
		return;
	}
	memcpy(&set_mode, &sym, sizeof(set_mode));
	set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
}

static void
rpc_log_hook(void)
{
	gpr_set_log_function(rpc_gpr_log);
	rpc_absl_no_deadlock_graph();
}

static void
rpc_grpc_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, rpc_log_hook);
	grpc_init();
}

/* --- the loop: call objects, events, the completion-queue thread ---- */

static void
loop_wake(struct loop *lp)
{
	uint64_t one = 1;

	if (write(lp->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("rpc: eventfd");
}

static void
outq_drop(struct rpc_stream *s)
{
	struct outmsg *m, *next;

	for (m = s->qh; m != NULL; m = next) {
		next = m->next;
		s->q_msgs--;
		s->q_bytes -= m->len;
		s->lp->st.queued_msgs--;
		s->lp->st.queued_bytes -= m->len;
		free(m);
	}
	s->qh = NULL;
	s->qt = &s->qh;
}

static void
timer_stop(struct rpc_stream *s)
{
	struct loop *lp = s->lp;

	if (s->timer == TM_NONE)
		return;
	if (s->tprev != NULL)
		s->tprev->tnext = s->tnext;
	else
		lp->timed = s->tnext;
	if (s->tnext != NULL)
		s->tnext->tprev = s->tprev;
	s->tprev = s->tnext = NULL;
	s->timer = TM_NONE;
}

/* Arms the call's one timer (replacing any other) ms from now. */
static void
timer_start(struct rpc_stream *s, enum timer_kind k, unsigned ms)
{
	struct loop *lp = s->lp;

	timer_stop(s);
	s->timer = (uint8_t)k;
	s->due_ms = util_mono_ms() + ms;
	if (lp->next_due_ms == 0 || s->due_ms < lp->next_due_ms)
		lp->next_due_ms = s->due_ms;
	s->tnext = lp->timed;
	if (lp->timed != NULL)
		lp->timed->tprev = s;
	lp->timed = s;
}

static struct rpc_stream *
call_new(struct loop *lp, enum call_kind kind)
{
	struct rpc_unary *u = NULL;
	struct rpc_stream *s;
	int k;

	/* A server unary call is handed out as struct rpc_unary. */
	if (kind == K_SRV_UNARY) {
		if ((u = calloc(1, sizeof(*u))) != NULL)
			s = &u->s;
		else
			s = NULL;
	} else
		s = calloc(1, sizeof(*s));
	if (s == NULL) {
		log_warn("rpc: call");
		return NULL;
	}
	for (k = 0; k < N_TAGS; k++)
		s->tags[k] = (uint8_t)k;
	s->lp = lp;
	s->kind = (uint8_t)kind;
	s->refs = 1; /* life */
	s->qt = &s->qh;
	s->status_slice = grpc_empty_slice();
	grpc_metadata_array_init(&s->md);
	grpc_metadata_array_init(&s->trailing);
	s->next = lp->live;
	if (lp->live != NULL)
		lp->live->prev = s;
	lp->live = s;
	lp->st.calls_live++;
	return s;
}

static void
call_free(struct rpc_stream *s)
{
	struct loop *lp = s->lp;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		lp->live = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	lp->st.calls_live--;
	timer_stop(s);
	outq_drop(s);
	if (s->call != NULL)
		grpc_call_unref(s->call);
	grpc_metadata_array_destroy(&s->md);
	grpc_metadata_array_destroy(&s->trailing);
	if (s->details != NULL) {
		grpc_call_details_destroy(s->details);
		free(s->details);
	}
	if (s->recv_buf != NULL)
		grpc_byte_buffer_destroy(s->recv_buf);
	if (s->send_bb != NULL)
		grpc_byte_buffer_destroy(s->send_bb);
	grpc_slice_unref(s->status_slice);
	free(s->close_msg);
	free(s->peer);
	free(s); /* also a struct rpc_unary: s is its first member */
	if (lp->shutting_down)
		loop_wake(lp);
}

static void
call_unref(struct rpc_stream *s)
{
	if (--s->refs == 0)
		call_free(s);
}

/* Starts a batch; takes a reference for it.  0 / -1 (logged). */
static int
call_batch(struct rpc_stream *s, const grpc_op *ops, size_t n,
    enum tag_kind k)
{
	grpc_call_error err;

	err = grpc_call_start_batch(s->call, ops, n, TAG(s, k), NULL);
	if (err != GRPC_CALL_OK) {
		log_warnx("rpc: start_batch (kind %d): error %d", (int)k,
		    (int)err);
		return -1;
	}
	s->refs++;
	return 0;
}

static void
ev_push(struct loop *lp, struct event *e, struct rpc_stream *s)
{
	bool was_empty = lp->evh == NULL;

	e->s = s;
	e->next = NULL;
	s->refs++;
	*lp->evt = e;
	lp->evt = &e->next;
	if (was_empty)
		loop_wake(lp);
}

static int
ev_push_simple(struct loop *lp, struct rpc_stream *s, uint8_t type)
{
	struct event *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return -1;
	e->type = type;
	ev_push(lp, e, s);
	return 0;
}

static void
arm_recv(struct rpc_stream *s)
{
	grpc_op ops[2];
	size_t n = 0;

	if (!s->accepted || s->recv_busy || s->close_seen || s->peer_done ||
	    s->local_cancel || s->inbound >= s->lp->lim.inbound_msgs)
		return;
	memset(ops, 0, sizeof(ops));
	if (s->kind == K_CLI_STREAM && !s->md_recvd) {
		/* The client reads the server's metadata before messages. */
		ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
		ops[n].data.recv_initial_metadata.recv_initial_metadata =
		    &s->md;
		n++;
		s->md_recvd = true;
	}
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &s->recv_buf;
	n++;
	if (call_batch(s, ops, n, T_RECV) == 0)
		s->recv_busy = true;
}

/* Server: send status; client: half-close. */
static void
start_final(struct rpc_stream *s)
{
	grpc_op ops[2];
	grpc_slice details;
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	s->final_sent = true;
	if (s->kind == K_CLI_STREAM) {
		ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		(void)call_batch(s, ops, 1, T_FINAL);
		return;
	}
	if (!s->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		s->md_sent = true;
	}
	details = grpc_slice_from_copied_string(s->close_msg ? s->close_msg :
	    "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status =
	    (grpc_status_code)s->close_code;
	ops[n].data.send_status_from_server.status_details = &details;
	n++;
	(void)call_batch(s, ops, n, T_FINAL);
	grpc_slice_unref(details);
}

static void
outmsg_free(void *p)
{
	free(p);
}

/* Starts the next queued send, or the final batch once drained. */
static void
kick_send(struct rpc_stream *s)
{
	struct outmsg *m;
	grpc_slice sl;
	grpc_op op;

	if (!s->accepted || s->send_busy || s->final_sent || s->close_seen)
		return;
	if ((m = s->qh) == NULL) {
		if (s->closing && !s->local_cancel)
			start_final(s);
		return;
	}
	s->qh = m->next;
	if (s->qh == NULL)
		s->qt = &s->qh;
	s->inflight_len = m->len;
	/* The slice frees the message once gRPC has written it. */
	sl = grpc_slice_new_with_user_data(m->data, m->len, outmsg_free, m);
	s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = s->send_bb;
	s->send_busy = true;
	if (call_batch(s, &op, 1, T_SEND) == -1) {
		s->send_busy = false;
		grpc_byte_buffer_destroy(s->send_bb);
		s->send_bb = NULL;
		s->q_msgs--;
		s->q_bytes -= s->inflight_len;
		s->lp->st.queued_msgs--;
		s->lp->st.queued_bytes -= s->inflight_len;
	}
}

static void
maybe_close_event(struct rpc_stream *s)
{
	struct event *e;

	if (!s->close_seen || s->recv_busy || s->close_pushed)
		return;
	s->close_pushed = true;
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_warn("rpc: close event");
		call_unref(s); /* life: the owner will not hear of it */
		return;
	}
	e->type = EV_CLOSE;
	e->why = s->why;
	e->code = s->close_code;
	e->msg = s->close_msg != NULL ? strdup(s->close_msg) : NULL;
	ev_push(s->lp, e, s);
}

static void
on_recv(struct rpc_stream *s, bool ok)
{
	struct event *e;

	s->recv_busy = false;
	if (!ok || s->recv_buf == NULL) {
		if (ok)
			s->peer_done = true;
		/*
		 * A client that ends its side is done with the stream: flush
		 * what is queued and finish with OK.
		 */
		if (ok && s->kind == K_SRV_STREAM && !s->closing &&
		    !s->close_seen) {
			s->closing = true;
			s->close_code = RPC_OK;
			timer_start(s, TM_CLOSE, s->lp->lim.close_timeout_ms);
			kick_send(s);
		}
		maybe_close_event(s);
		return;
	}
	e = event_from_bb(s->recv_buf, EV_MSG);
	grpc_byte_buffer_destroy(s->recv_buf);
	s->recv_buf = NULL;
	if (e == NULL)
		log_warnx("rpc: dropped a received message (out of memory)");
	else if (s->close_seen || s->local_cancel)
		free(e);
	else {
		if (s->timer == TM_FIRST_MSG)
			timer_stop(s);
		s->inbound++;
		s->got_msg = true;
		s->lp->st.msgs_in++;
		ev_push(s->lp, e, s);
	}
	arm_recv(s);
	maybe_close_event(s);
}

static void
on_send(struct rpc_stream *s, bool ok)
{
	struct loop *lp = s->lp;

	s->send_busy = false;
	grpc_byte_buffer_destroy(s->send_bb);
	s->send_bb = NULL;
	s->q_msgs--;
	s->q_bytes -= s->inflight_len;
	lp->st.queued_msgs--;
	lp->st.queued_bytes -= s->inflight_len;
	if (ok) {
		lp->st.msgs_out++;
		kick_send(s);
		if (s->q_msgs == 0 && s->want_drained && !s->closing) {
			s->want_drained = false;
			(void)ev_push_simple(lp, s, EV_DRAINED);
		}
	} else
		outq_drop(s);
}

static void
on_close(struct rpc_stream *s)
{
	struct loop *lp = s->lp;

	s->close_seen = true;
	timer_stop(s);
	outq_drop(s);
	if (s->kind == K_SRV_UNARY)
		return;
	if (s->kind == K_CLI_STREAM) {
		s->close_code = (int)s->status;
		free(s->close_msg);
		s->close_msg = slice_strdup(s->status_slice);
		if (lp->shutting_down)
			s->why = RPC_CLOSE_SHUTDOWN;
		else if (s->local_cancel)
			s->why = RPC_CLOSE_LOCAL;
		else if (s->status == GRPC_STATUS_DEADLINE_EXCEEDED)
			s->why = RPC_CLOSE_DEADLINE;
		else if (s->status == GRPC_STATUS_CANCELLED)
			s->why = RPC_CLOSE_CANCELLED;
		else
			s->why = RPC_CLOSE_FINISHED;
	} else if (!s->cancelled) {
		s->why = RPC_CLOSE_FINISHED;
	} else {
		/*
		 * The client's timer usually fires first and cancels just
		 * before our copy of the deadline: allow half a second.
		 */
		gpr_timespec now = gpr_time_add(gpr_now(s->deadline.clock_type),
		    gpr_time_from_millis(500, GPR_TIMESPAN));

		if (lp->shutting_down)
			s->why = RPC_CLOSE_SHUTDOWN;
		else if (s->local_cancel)
			s->why = RPC_CLOSE_LOCAL;
		else if (s->first_timeout ||
		    gpr_time_cmp(now, s->deadline) >= 0)
			s->why = RPC_CLOSE_DEADLINE;
		else
			s->why = RPC_CLOSE_CANCELLED;
		s->close_code = s->why == RPC_CLOSE_DEADLINE ?
		    RPC_DEADLINE_EXCEEDED : RPC_CANCELLED;
	}
	maybe_close_event(s);
}

static void
cli_unary_done(struct rpc_stream *s)
{
	struct event *e = NULL;

	if (s->status == GRPC_STATUS_OK && s->recv_buf != NULL)
		e = event_from_bb(s->recv_buf, EV_UDONE);
	else
		e = calloc(1, sizeof(*e));
	if (e == NULL) {
		log_warn("rpc: unary reply");
		call_unref(s);
		return;
	}
	e->type = EV_UDONE;
	e->code = (int)s->status;
	e->msg = slice_strdup(s->status_slice);
	ev_push(s->lp, e, s);
}

static void cli_conn_changed(struct rpc_client *cli);
static void cli_conn_watch(struct rpc_client *cli);
static void srv_on_new(struct rpc_server *srv, struct rpc_stream *s,
    bool ok);
static void cli_tick(struct loop *lp);

/*
 * A deadline passed: cancel the call.  gRPC then completes every batch
 * in flight (the send stuck behind the peer's flow control too), the
 * queue is freed, and the owner hears on_close as for any other end.
 */
static void
timer_fire(struct rpc_stream *s)
{
	enum timer_kind k = (enum timer_kind)s->timer;
	grpc_status_code code;
	const char *why;

	timer_stop(s);
	if (s->close_seen || s->call == NULL)
		return;
	if (k == TM_FIRST_MSG) {
		s->first_timeout = true;
		code = GRPC_STATUS_DEADLINE_EXCEEDED;
		why = "no message in time";
		log_debug("rpc", "stream: no first message within %u ms; "
		    "cancelled", s->lp->first_msg_ms);
	} else {
		s->local_cancel = true;
		code = s->close_code > RPC_OK &&
		    s->close_code <= RPC_UNAUTHENTICATED ?
		    (grpc_status_code)s->close_code : GRPC_STATUS_CANCELLED;
		why = s->close_msg != NULL && s->close_msg[0] != '\0' ?
		    s->close_msg : "closed";
		log_debug("rpc", "stream: queue (%zu bytes) not out within "
		    "%u ms of the close; cancelled", s->q_bytes,
		    s->lp->lim.close_timeout_ms);
	}
	s->closing = true;
	outq_drop(s);
	(void)grpc_call_cancel_with_status(s->call, code, why, NULL);
}

/* Fires the deadlines that passed (locked). */
/*
 * Fires the timers that are due.  Called after every completion, so it
 * must not walk the list each time: with 10,000 streams each holding a
 * first-message or close timer (a reconnect storm, a shutdown), a walk
 * per completion was quadratic, and a controller of 10,000 edges did not
 * stop within a minute of its SIGTERM.  The list is walked only once
 * next_due_ms has passed.
 */
static void
loop_tick(struct loop *lp)
{
	struct rpc_stream *s, *next;
	uint64_t now, due = 0;

	if (lp->timed == NULL) {
		lp->next_due_ms = 0;
		return;
	}
	now = util_mono_ms();
	if (now < lp->next_due_ms)
		return;
	for (s = lp->timed; s != NULL; s = next) {
		next = s->tnext;
		if (now >= s->due_ms)
			timer_fire(s);
	}
	/* timer_fire may have started or stopped others: look again. */
	for (s = lp->timed; s != NULL; s = s->tnext)
		if (due == 0 || s->due_ms < due)
			due = s->due_ms;
	lp->next_due_ms = due;
}

static void
loop_complete(struct loop *lp, void *tag, bool ok)
{
	const uint8_t *tp = tag;
	enum tag_kind k = (enum tag_kind)*tp;
	struct rpc_stream *s;

	if (k == T_SHUTDOWN) {
		lp->srv->shutdown_done = true;
		loop_wake(lp);
		return;
	}
	if (k == T_CONN) {
		cli_conn_changed((struct rpc_client *)lp); /* lp is first */
		return;
	}
	s = (struct rpc_stream *)(void *)(tp - k - offsetof(struct rpc_stream,
	    tags));
	switch (k) {
	case T_NEW:
		srv_on_new(lp->srv, s, ok);
		break;
	case T_RECV:
		on_recv(s, ok);
		break;
	case T_SEND:
		on_send(s, ok);
		break;
	case T_CLOSE:
		if (s->kind == K_CLI_UNARY)
			cli_unary_done(s);
		else
			on_close(s);
		break;
	case T_MD:
	case T_FINAL:
	case T_SHUTDOWN:
	case T_CONN:
		break;
	}
	call_unref(s); /* the batch's reference */
}

/*
 * lp->mu held.  How long the thread may wait for a completion: TICK_MS,
 * or with idle_ms (an opt-in for crowds of idle clients, such as a load
 * generator's thousands) until the next timer it knows of, at most
 * idle_ms.  A timer set from the owner's thread meanwhile (a stream to
 * reopen after its backoff, a close deadline) is then seen up to
 * idle_ms late: gRPC's C core has no call that wakes a completion
 * queue's waiter.
 */
static unsigned
loop_wait_ms(struct loop *lp)
{
	uint64_t now, next;
	struct rpc_stream *s;
	struct session *ss;

	if (lp->idle_ms <= TICK_MS)
		return TICK_MS;
	now = util_mono_ms();
	next = now + lp->idle_ms;
	for (s = lp->timed; s != NULL; s = s->tnext)
		if (s->due_ms < next)
			next = s->due_ms;
	for (ss = lp->pending; ss != NULL; ss = ss->next)
		if (ss->due_ms < next)
			next = ss->due_ms;
	return next > now ? (unsigned)(next - now) : 1;
}

static void *
loop_thread(void *arg)
{
	struct loop *lp = arg;
	grpc_event ev;
	unsigned wait = TICK_MS;

	for (;;) {
		/* Wakes up for the timers too (reopening streams, close
		 * and first-message deadlines): loop_wait_ms. */
		ev = grpc_completion_queue_next(lp->cq, deadline_after(wait),
		    NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		pthread_mutex_lock(&lp->mu);
		lp->st.wakeups++;
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			lp->st.ticks++;
		if (ev.type == GRPC_OP_COMPLETE)
			loop_complete(lp, ev.tag, ev.success != 0);
		loop_tick(lp);
		if (lp->is_client)
			cli_tick(lp);
		wait = loop_wait_ms(lp);
		pthread_mutex_unlock(&lp->mu);
	}
	return NULL;
}

static int
loop_init(struct loop *lp, bool is_client, const struct rpc_limits *lim)
{
	memset(lp, 0, sizeof(*lp));
	lp->efd = -1;
	lp->evt = &lp->evh;
	lp->is_client = is_client;
	limits_fill(&lp->lim, lim);
	pthread_mutex_init(&lp->mu, NULL);
	if ((lp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("rpc: eventfd");
		return -1;
	}
	lp->cq = grpc_completion_queue_create_for_next(NULL);
	lp->st.call_bytes = sizeof(struct rpc_stream);
	return 0;
}

static int
loop_start(struct loop *lp)
{
	int rc = pthread_create(&lp->thread, NULL, loop_thread, lp);

	if (rc != 0) {
		errno = rc;
		log_warn("rpc: thread");
		return -1;
	}
	lp->thread_started = true;
	return 0;
}

static void
loop_fini(struct loop *lp)
{
	struct event *e, *next;

	if (lp->cq != NULL) {
		grpc_completion_queue_shutdown(lp->cq);
		if (lp->thread_started)
			pthread_join(lp->thread, NULL);
		else
			while (grpc_completion_queue_next(lp->cq,
			    gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
			    GRPC_QUEUE_SHUTDOWN)
				;
		grpc_completion_queue_destroy(lp->cq);
	}
	for (e = lp->evh; e != NULL; e = next) {
		next = e->next;
		free(e->msg);
		free(e);
	}
	if (lp->efd != -1)
		close(lp->efd);
	pthread_mutex_destroy(&lp->mu);
}

static void unary_finish(struct rpc_stream *s, int code, const char *msg,
    const void *buf, size_t len);

/* Runs one event on the owner's thread, without the lock held. */
static void
ev_run(struct loop *lp, struct event *e)
{
	struct rpc_stream *s = e->s;
	static const struct rpc_stream_handlers none;
	struct session *ss = s->sess;
	const struct rpc_stream_handlers *h = ss ? &ss->h : s->m ? &s->m->h :
	    &none;
	void *arg = ss ? ss->arg : s->m ? s->m->arg : NULL;
	bool skip;
	int r;

	switch (e->type) {
	case EV_OPEN:
		pthread_mutex_lock(&lp->mu);
		/* A client hears of every attempt, even one that failed. */
		skip = lp->shutting_down ||
		    (s->close_seen && s->kind == K_SRV_STREAM);
		pthread_mutex_unlock(&lp->mu);
		if (skip)
			break;
		r = h->on_open ? h->on_open(s, s->peer, arg) : RPC_OK;
		pthread_mutex_lock(&lp->mu);
		free(s->peer);
		s->peer = NULL;
		if (s->kind == K_CLI_STREAM || r == RPC_OK) {
			s->owner_knows = true;
			lp->st.streams++;
			if (!s->close_seen && s->kind == K_SRV_STREAM) {
				grpc_op op;

				memset(&op, 0, sizeof(op));
				op.op = GRPC_OP_SEND_INITIAL_METADATA;
				s->md_sent = true;
				s->accepted = true;
				(void)call_batch(s, &op, 1, T_MD);
			}
			arm_recv(s);
			kick_send(s);
		} else if (!s->close_seen) {
			s->refused = true;
			s->closing = true;
			outq_drop(s);
			s->close_code = r > 0 && r <= RPC_UNAUTHENTICATED ? r :
			    RPC_PERMISSION_DENIED;
			free(s->close_msg);
			s->close_msg = strdup("stream refused");
			start_final(s);
		}
		pthread_mutex_unlock(&lp->mu);
		break;
	case EV_MSG:
		if (s->owner_knows && h->on_message)
			h->on_message(s, e->data, e->len, arg);
		pthread_mutex_lock(&lp->mu);
		s->inbound--;
		arm_recv(s);
		pthread_mutex_unlock(&lp->mu);
		break;
	case EV_CLOSE:
		if (s->owner_knows && h->on_close)
			h->on_close(s, (enum rpc_close_reason)e->why, e->code,
			    e->msg ? e->msg : "", arg);
		pthread_mutex_lock(&lp->mu);
		if (s->owner_knows)
			lp->st.streams--;
		s->owner_knows = false;
		if (ss != NULL) {
			uint32_t rnd = 0;

			s->sess = NULL;
			if (ss->o.reconnect && !ss->stopped &&
			    !lp->shutting_down) {
				(void)util_random(&rnd, sizeof(rnd));
				if (s->got_msg)
					backoff_reset(&ss->bo);
				ss->due_ms = util_mono_ms() +
				    backoff_next(&ss->bo, rnd);
				ss->next = lp->pending;
				lp->pending = ss;
			} else
				free(ss);
		}
		call_unref(s); /* life */
		pthread_mutex_unlock(&lp->mu);
		break;
	case EV_UNARY:
		if (lp->shutting_down) {
			pthread_mutex_lock(&lp->mu);
			unary_finish(s, RPC_UNAVAILABLE, "server shutting down",
			    NULL, 0);
			pthread_mutex_unlock(&lp->mu);
			break;
		}
		assert(s->m != NULL && s->m->ufn != NULL);
		s->handed = true;
		s->m->ufn((struct rpc_unary *)s, e->data, e->len, s->peer,
		    s->m->arg);
		pthread_mutex_lock(&lp->mu);
		free(s->peer);
		s->peer = NULL;
		pthread_mutex_unlock(&lp->mu);
		break;
	case EV_DRAINED:
		if (s->owner_knows && h->on_drained)
			h->on_drained(s, arg);
		break;
	case EV_UDONE:
		s->done(e->code, e->msg ? e->msg : "", e->data, e->len,
		    s->user);
		pthread_mutex_lock(&lp->mu);
		call_unref(s); /* life */
		pthread_mutex_unlock(&lp->mu);
		break;
	}
}

static int
loop_dispatch(struct loop *lp)
{
	struct event *e, *next;
	uint64_t v;
	int n = 0;

	if (read(lp->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("rpc: eventfd read");
	pthread_mutex_lock(&lp->mu);
	e = lp->evh;
	lp->evh = NULL;
	lp->evt = &lp->evh;
	pthread_mutex_unlock(&lp->mu);
	for (; e != NULL; e = next) {
		next = e->next;
		ev_run(lp, e);
		pthread_mutex_lock(&lp->mu);
		call_unref(e->s); /* the event's reference */
		pthread_mutex_unlock(&lp->mu);
		free(e->msg);
		free(e);
		n++;
	}
	return n;
}

static void
loop_stats(struct loop *lp, struct rpc_stats *st)
{
	pthread_mutex_lock(&lp->mu);
	*st = lp->st;
	pthread_mutex_unlock(&lp->mu);
}

/* Owner thread: run events until pred says everything is let go. */
static void
loop_drain(struct loop *lp, bool (*done)(struct loop *))
{
	struct pollfd pfd = { .fd = lp->efd, .events = POLLIN };

	for (;;) {
		bool fin;

		(void)loop_dispatch(lp);
		pthread_mutex_lock(&lp->mu);
		fin = done(lp) && lp->evh == NULL;
		pthread_mutex_unlock(&lp->mu);
		if (fin)
			break;
		(void)poll(&pfd, 1, 100);
	}
}

/* --- streams -------------------------------------------------------- */

int
rpc_stream_send(struct rpc_stream *s, const void *buf, size_t len)
{
	struct loop *lp = s->lp;
	struct outmsg *m;
	int rc = -1;

	pthread_mutex_lock(&lp->mu);
	if (s->closing || s->close_seen || s->refused) {
		errno = EPIPE;
		goto out;
	}
	if (len > lp->lim.max_message) {
		errno = EMSGSIZE;
		goto out;
	}
	if (s->q_msgs >= lp->lim.queue_msgs ||
	    s->q_bytes + len > lp->lim.queue_bytes) {
		s->want_drained = true;
		errno = ENOBUFS;
		goto out;
	}
	if ((m = malloc(sizeof(*m) + len)) == NULL)
		goto out;
	m->next = NULL;
	m->len = len;
	if (len > 0)
		memcpy(m->data, buf, len);
	*s->qt = m;
	s->qt = &m->next;
	s->q_msgs++;
	s->q_bytes += len;
	lp->st.queued_msgs++;
	lp->st.queued_bytes += len;
	kick_send(s);
	rc = 0;
out:
	pthread_mutex_unlock(&lp->mu);
	return rc;
}

void
rpc_stream_close(struct rpc_stream *s, int code, const char *msg)
{
	struct loop *lp = s->lp;

	pthread_mutex_lock(&lp->mu);
	if (s->sess != NULL)
		s->sess->stopped = true;
	if (!s->closing && !s->close_seen) {
		s->closing = true;
		timer_start(s, TM_CLOSE, lp->lim.close_timeout_ms);
		if (s->kind == K_CLI_STREAM && code != RPC_OK) {
			s->local_cancel = true;
			outq_drop(s);
			grpc_call_cancel(s->call, NULL);
		} else {
			s->close_code = code;
			free(s->close_msg);
			s->close_msg = strdup(msg ? msg : "");
			kick_send(s);
		}
	}
	pthread_mutex_unlock(&lp->mu);
}

void
rpc_stream_cancel(struct rpc_stream *s)
{
	struct loop *lp = s->lp;

	pthread_mutex_lock(&lp->mu);
	if (s->sess != NULL)
		s->sess->stopped = true;
	if (!s->close_seen && !s->local_cancel) {
		s->local_cancel = true;
		s->closing = true;
		outq_drop(s);
		grpc_call_cancel(s->call, NULL);
	}
	pthread_mutex_unlock(&lp->mu);
}

void
rpc_stream_set_user(struct rpc_stream *s, void *user)
{
	s->user = user;
}

void *
rpc_stream_user(const struct rpc_stream *s)
{
	return s->user;
}

void
rpc_stream_queued(const struct rpc_stream *s, size_t *msgs, size_t *bytes)
{
	struct loop *lp = s->lp;

	pthread_mutex_lock(&lp->mu);
	if (msgs != NULL)
		*msgs = s->q_msgs;
	if (bytes != NULL)
		*bytes = s->q_bytes;
	pthread_mutex_unlock(&lp->mu);
}

/* --- server --------------------------------------------------------- */

static void
unary_finish(struct rpc_stream *s, int code, const char *msg,
    const void *buf, size_t len)
{
	grpc_op ops[3];
	grpc_slice details, sl;
	size_t n = 0;

	if (s->replied)
		return;
	s->replied = true;
	s->lp->st.unary_pending--;
	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (code == RPC_OK) {
		sl = grpc_slice_from_copied_buffer(buf, len);
		s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
		grpc_slice_unref(sl);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = s->send_bb;
		n++;
	}
	details = grpc_slice_from_copied_string(msg ? msg : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	ops[n].data.send_status_from_server.status_details = &details;
	n++;
	(void)call_batch(s, ops, n, T_FINAL);
	grpc_slice_unref(details);
	call_unref(s); /* life: the handle is gone */
}

int
rpc_unary_reply(struct rpc_unary *call, const void *buf, size_t len)
{
	struct rpc_stream *s = &call->s;
	struct loop *lp = s->lp;
	int rc = 0;

	pthread_mutex_lock(&lp->mu);
	if (len > lp->lim.max_message) {
		log_warnx("rpc: unary reply of %zu bytes is over the limit",
		    len);
		unary_finish(s, RPC_INTERNAL, "reply too large", NULL, 0);
		errno = EMSGSIZE;
		rc = -1;
	} else
		unary_finish(s, RPC_OK, "", buf, len);
	pthread_mutex_unlock(&lp->mu);
	return rc;
}

int
rpc_unary_fail(struct rpc_unary *call, int code, const char *msg)
{
	struct rpc_stream *s = &call->s;
	struct loop *lp = s->lp;

	if (code <= RPC_OK || code > RPC_UNAUTHENTICATED)
		code = RPC_INTERNAL;
	pthread_mutex_lock(&lp->mu);
	unary_finish(s, code, msg, NULL, 0);
	pthread_mutex_unlock(&lp->mu);
	return 0;
}

/* Posts one request for a new call of method m (NULL: any other). */
static void
srv_request(struct rpc_server *srv, struct method *m)
{
	struct loop *lp = &srv->lp;
	struct rpc_stream *s;
	grpc_call_error err;

	s = call_new(lp, m == NULL ? K_SRV_GENERIC : m->unary ? K_SRV_UNARY :
	    K_SRV_STREAM);
	if (s == NULL)
		return;
	s->m = m;
	if (m == NULL) {
		if ((s->details = calloc(1, sizeof(*s->details))) == NULL) {
			call_unref(s);
			return;
		}
		grpc_call_details_init(s->details);
		err = grpc_server_request_call(srv->server, &s->call,
		    s->details, &s->md, lp->cq, lp->cq, TAG(s, T_NEW));
	} else
		err = grpc_server_request_registered_call(srv->server,
		    m->handle, &s->call, &s->deadline, &s->md,
		    m->unary ? &s->recv_buf : NULL, lp->cq, lp->cq,
		    TAG(s, T_NEW));
	if (err != GRPC_CALL_OK) {
		log_warnx("rpc: request_call: error %d", (int)err);
		call_unref(s);
		return;
	}
	s->refs++;
}

/* Answers a call without involving the owner; drops its life. */
static void
srv_refuse(struct rpc_stream *s, int code, const char *msg)
{
	s->refused = true;
	s->close_code = code;
	free(s->close_msg);
	s->close_msg = strdup(msg);
	start_final(s);
	call_unref(s);
}

static void
srv_on_new(struct rpc_server *srv, struct rpc_stream *s, bool ok)
{
	struct loop *lp = &srv->lp;
	struct method *m = s->m;
	grpc_op op;

	grpc_metadata_array_destroy(&s->md);
	grpc_metadata_array_init(&s->md);
	if (!ok || lp->shutting_down) {
		call_unref(s); /* life; dropping the call cancels it */
		return;
	}
	srv_request(srv, m);
	if (s->kind == K_SRV_GENERIC) {
		s->deadline = s->details->deadline;
		log_debug("rpc", "unknown method called");
		srv_refuse(s, RPC_UNIMPLEMENTED, "unknown method");
		return;
	}
	if ((s->peer = peer_read(s->call)) == NULL) {
		srv_refuse(s, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (m->auth == RPC_AUTH_PEER && !lp->insecure && !s->peer->verified) {
		lp->st.refused_auth++;
		log_info("rpc: %s from %s refused: no verified client "
		    "certificate", m->path, s->peer->addr);
		srv_refuse(s, RPC_UNAUTHENTICATED,
		    "client certificate required");
		return;
	}
	if (!m->unary && lp->st.streams >= srv->max_streams) {
		log_warnx("rpc: %s from %s refused: %u streams open",
		    m->path, s->peer->addr, lp->st.streams);
		srv_refuse(s, RPC_RESOURCE_EXHAUSTED, "too many streams");
		return;
	}
	/* Fires when the call ends for any reason: the disconnect detector. */
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &s->cancelled;
	if (call_batch(s, &op, 1, T_CLOSE) == -1) {
		call_unref(s);
		return;
	}
	if (!m->unary && lp->first_msg_ms > 0)
		timer_start(s, TM_FIRST_MSG, lp->first_msg_ms);
	if (m->unary) {
		struct event *e = NULL;

		if (s->recv_buf != NULL) {
			e = event_from_bb(s->recv_buf, EV_UNARY);
			grpc_byte_buffer_destroy(s->recv_buf);
			s->recv_buf = NULL;
		}
		lp->st.unary_pending++;
		if (e == NULL) {
			unary_finish(s, RPC_INVALID_ARGUMENT, "no request",
			    NULL, 0);
			return;
		}
		lp->st.msgs_in++;
		ev_push(lp, e, s);
		return;
	}
	if (ev_push_simple(lp, s, EV_OPEN) == -1) {
		s->refused = true;
		s->close_code = RPC_RESOURCE_EXHAUSTED;
		start_final(s);
		call_unref(s);
	}
}

static grpc_server_credentials *
srv_creds(const struct rpc_server *srv, bool enroll)
{
	grpc_server_credentials *c = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	char *ca = NULL, *cert = NULL, *key = NULL;

	if ((!enroll && pem_read(srv->tls.ca_file, &ca) == -1) ||
	    pem_read(srv->tls.cert_file, &cert) == -1 ||
	    pem_read(srv->tls.key_file, &key) == -1)
		goto out;
	if (cert == NULL || key == NULL || (!enroll && ca == NULL)) {
		log_warnx("rpc: TLS needs a CA, a certificate and a key "
		    "(or the explicit insecure option)");
		goto out;
	}
	pair.private_key = key;
	pair.cert_chain = cert;
	c = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, enroll ?
	    GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE :
	    GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
	if (c == NULL)
		log_warnx("rpc: cannot build TLS server credentials");
out:
	pem_free(ca);
	pem_free(cert);
	pem_free(key);
	return c;
}

/*
 * --- descriptors: gRPC's listeners never stop on EMFILE -------------
 *
 * gRPC 1.51's listener treats every accept4() error but EINTR and EAGAIN
 * as the end of that port: it logs "Failed accept4: Too many open
 * files" and never accepts there again, although the process lives on
 * (grpc/grpc#20418, src/core/lib/iomgr/tcp_server_posix.cc, on_read).
 * One moment without a free descriptor (a reconnect storm, a crowd of
 * connections that never finish their handshake) would leave the
 * controller serving its connected edges but deaf to every other one,
 * for good.  gRPC has no hook before accept (its socket mutator runs
 * after it, and an error there ends the listener too), so this file
 * defines accept4() itself: the executable's definition comes first in
 * symbol lookup, so libgrpc's calls land here.  Only gRPC's own
 * listening sockets (found by port once they are bound, fdg_watch) are
 * treated; any other accept4() passes straight through.  On those:
 *  - a connection accepted while fewer than `reserve` descriptors are
 *    left below the limit is closed at once (descriptors are handed out
 *    lowest first, so the number says how many are in use): the store,
 *    the REST API and gRPC's own eventfds keep some;
 *  - EMFILE/ENFILE/ENOBUFS/ENOMEM: a spare descriptor held for this is
 *    closed, the waiting connections are accepted and closed until the
 *    backlog is empty (gRPC waits for the next edge-triggered wake-up,
 *    so the backlog must not be left behind), the spare is reopened;
 *  - errors Linux passes on from the new connection (ECONNABORTED,
 *    EPROTO, network errors) skip that connection;
 * then EAGAIN, and gRPC waits for the next connection as usual.  The
 * refused edges see a reset and retry on their backoff.  Refusals are
 * counted (rpc_stats.accept_refused) and logged at most every
 * FDG_LOG_MS; the first connection accepted after FDG_CALM_MS without
 * a refusal is logged as the end of the shortage.
 */
#define FDG_MAX 16
#define FDG_LOG_MS 5000
#define FDG_CALM_MS 1000

static struct {
	pthread_mutex_t mu;       /* the slow path: the spare, the log */
	atomic_int fd1[FDG_MAX];  /* watched listener + 1; 0 = free slot */
	atomic_ulong cap;         /* a descriptor >= this is refused; 0: no
				     cap */
	unsigned long limit;
	unsigned long reserve;
	int spare;                /* /dev/null, -1 while given up */
	atomic_uint_fast64_t refused, refused_emfile;
	atomic_bool shortage;     /* refused, "free again" not logged yet */
	atomic_uint_fast64_t refused_ns; /* when the last one was refused */
	uint64_t logged_ns, logged_refused;
} fdg = { .mu = PTHREAD_MUTEX_INITIALIZER, .spare = -1 };

static bool
fdg_watched(int fd)
{
	for (int i = 0; i < FDG_MAX; i++)
		if (atomic_load_explicit(&fdg.fd1[i], memory_order_relaxed) ==
		    fd + 1)
			return true;
	return false;
}

/* fdg.mu held.  Logs the refusals so far, at most every FDG_LOG_MS. */
static void
fdg_log(bool force)
{
	uint64_t now = util_mono_ns(), n = atomic_load(&fdg.refused);

	if (n == fdg.logged_refused ||
	    (!force && now - fdg.logged_ns < FDG_LOG_MS * 1000000ull))
		return;
	log_warnx("rpc: short of descriptors (limit %lu, %lu kept in "
	    "reserve): %" PRIu64 " connection(s) refused so far, %" PRIu64
	    " of them at EMFILE/ENFILE; still accepting", fdg.limit,
	    fdg.reserve, n, (uint64_t)atomic_load(&fdg.refused_emfile));
	fdg.logged_ns = now;
	fdg.logged_refused = n;
}

static bool
fdg_conn_error(int e)
{
	switch (e) {
	case ECONNABORTED: case EPROTO: case ENOPROTOOPT: case EHOSTDOWN:
	case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETDOWN:
	case ENETUNREACH: case EPERM: case ETIMEDOUT: case EINTR:
		return true;
	default:
		return false;
	}
}

/* The slow path of a watched listener (see above).  c: accept4's
 * result, errno set when it is -1. */
static int
fdg_accept(int fd, int c, struct sockaddr *addr, socklen_t *alen,
    int flags)
{
	unsigned long cap = atomic_load(&fdg.cap);
	bool drain = false;
	int e = EAGAIN;

	if (c >= 0 && (cap == 0 || (unsigned long)c < cap)) {
		/* The end of a shortage: nothing refused for FDG_CALM_MS. */
		if (atomic_load(&fdg.shortage) && util_mono_ns() -
		    atomic_load(&fdg.refused_ns) >= FDG_CALM_MS * 1000000ull &&
		    atomic_exchange(&fdg.shortage, false)) {
			pthread_mutex_lock(&fdg.mu);
			fdg_log(true);
			log_info("rpc: descriptors free again: accepting");
			pthread_mutex_unlock(&fdg.mu);
		}
		return c;
	}
	if (c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return c;
	pthread_mutex_lock(&fdg.mu);
	for (;; c = (int)syscall(SYS_accept4, fd, addr, alen, flags)) {
		if (c >= 0) {
			if (!drain && (cap == 0 || (unsigned long)c < cap))
				break; /* room again: keep this one */
			close(c);
			atomic_fetch_add(&fdg.refused, 1);
			if (drain)
				atomic_fetch_add(&fdg.refused_emfile, 1);
			atomic_store(&fdg.refused_ns, util_mono_ns());
			atomic_store(&fdg.shortage, true);
			continue;
		}
		e = errno;
		if (fdg_conn_error(e))
			continue;
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
			drain = true;
			atomic_store(&fdg.shortage, true);
			if (fdg.spare >= 0) {
				close(fdg.spare);
				fdg.spare = -1;
				continue;
			}
			/* No spare to give: what waits stays for the next
			 * wake-up (the next connection). */
			c = -1;
			e = EAGAIN;
			break;
		}
		/* EAGAIN: the backlog is empty.  EBADF, EINVAL (the
		 * listener shut down): gRPC's own business. */
		break;
	}
	if (fdg.spare < 0)
		fdg.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fdg_log(false);
	pthread_mutex_unlock(&fdg.mu);
	if (c < 0)
		errno = e;
	return c;
}

int
accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	int c = (int)syscall(SYS_accept4, fd, addr, alen, flags);

	if (!fdg_watched(fd))
		return c;
	return fdg_accept(fd, c, addr, alen, flags);
}

/*
 * Watch the listening sockets bound to port (gRPC makes one or more per
 * port, and they are its own): every descriptor of this process that is
 * a listening TCP socket on that port.  Called once the ports are bound.
 */
static void
fdg_watch(int port)
{
	struct rlimit rl;
	struct dirent *de;
	DIR *dir;

	if (port <= 0 || (dir = opendir("/proc/self/fd")) == NULL)
		return;
	pthread_mutex_lock(&fdg.mu);
	while ((de = readdir(dir)) != NULL) {
		struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
		socklen_t sl = sizeof(ss);
		int fd, on = 0, i, port_of = -1;
		socklen_t ol = sizeof(on);
		long v;
		char *end;

		errno = 0;
		v = strtol(de->d_name, &end, 10);
		if (errno != 0 || *end != '\0' || v < 0 || v > INT32_MAX - 1 ||
		    (int)v == dirfd(dir))
			continue;
		fd = (int)v;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == -1 ||
		    !on || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
			continue;
		if (ss.ss_family == AF_INET)
			port_of = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port_of = ntohs(((struct sockaddr_in6 *)&ss)->
			    sin6_port);
		if (port_of != port || fdg_watched(fd))
			continue;
		for (i = 0; i < FDG_MAX; i++) {
			int zero = 0;

			if (atomic_compare_exchange_strong(&fdg.fd1[i], &zero,
			    fd + 1))
				break;
		}
		if (i == FDG_MAX)
			log_warnx("rpc: more than %d listening sockets: "
			    "descriptor %d not guarded against EMFILE",
			    FDG_MAX, fd);
	}
	closedir(dir);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		fdg.limit = (unsigned long)rl.rlim_cur;
		fdg.reserve = fdg.limit / 16;
		if (fdg.reserve < 16)
			fdg.reserve = 16;
		if (fdg.reserve > 1024)
			fdg.reserve = 1024;
		atomic_store(&fdg.cap, fdg.limit > fdg.reserve ?
		    fdg.limit - fdg.reserve : 0);
	}
	if (fdg.spare < 0)
		fdg.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_unlock(&fdg.mu);
}

/* The server's listeners are closing: their numbers may come back as
 * anything. */
static void
fdg_unwatch_all(void)
{
	for (int i = 0; i < FDG_MAX; i++)
		atomic_store(&fdg.fd1[i], 0);
}

struct rpc_server *
rpc_server_new(const struct rpc_server_opts *o)
{
	struct rpc_server *srv;
	struct argv av = { .n = 0 };
	grpc_channel_args args;
	unsigned ka, kto, minping;

	if (o->listen == NULL) {
		log_warnx("rpc: server needs a listen address");
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL) {
		log_warn("rpc: server");
		return NULL;
	}
	rpc_grpc_init();
	if (loop_init(&srv->lp, false, &o->limits) == -1)
		goto fail;
	srv->lp.srv = srv;
	srv->lp.insecure = o->insecure;
	srv->shutdown_tag = T_SHUTDOWN;
	srv->max_streams = o->max_streams ? o->max_streams : DEF_MAX_STREAMS;
	srv->lp.first_msg_ms = o->first_message_ms;
	if (util_strcpy(srv->listen, sizeof(srv->listen), o->listen) == -1 ||
	    (o->enroll_listen != NULL && util_strcpy(srv->enroll_listen,
	    sizeof(srv->enroll_listen), o->enroll_listen) == -1) ||
	    (o->tls.ca_file != NULL && util_strcpy(srv->ca, sizeof(srv->ca),
	    o->tls.ca_file) == -1) ||
	    (o->tls.cert_file != NULL && util_strcpy(srv->cert,
	    sizeof(srv->cert), o->tls.cert_file) == -1) ||
	    (o->tls.key_file != NULL && util_strcpy(srv->key,
	    sizeof(srv->key), o->tls.key_file) == -1)) {
		log_warnx("rpc: server address or file name too long");
		goto fail;
	}
	srv->tls.ca_file = srv->ca;
	srv->tls.cert_file = srv->cert;
	srv->tls.key_file = srv->key;

	ka = o->keepalive_ms ? o->keepalive_ms : DEF_KEEPALIVE_MS;
	kto = o->keepalive_timeout_ms ? o->keepalive_timeout_ms :
	    DEF_KEEPALIVE_TIMEOUT_MS;
	minping = o->min_ping_interval_ms ? o->min_ping_interval_ms :
	    DEF_MIN_PING_MS;
	/* gRPC checks a message's length prefix before it buffers it. */
	argv_int(&av, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    clamp_int((unsigned)srv->lp.lim.max_inbound));
	argv_int(&av, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
	    clamp_int((unsigned)srv->lp.lim.max_message));
	/* The server pings too: that is how a frozen client is noticed. */
	argv_int(&av, GRPC_ARG_KEEPALIVE_TIME_MS, clamp_int(ka));
	argv_int(&av, GRPC_ARG_KEEPALIVE_TIMEOUT_MS, clamp_int(kto));
	argv_int(&av, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
	argv_int(&av, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
	argv_int(&av, GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
	    clamp_int(minping));
	/*
	 * gRPC's own default is 120 s: a connection that never finishes
	 * its handshake would hold a descriptor that long.  A client gives
	 * up after CONNECT_TIMEOUT_MS anyway, so work past that is wasted.
	 */
	argv_int(&av, GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
	    clamp_int(o->handshake_ms ? o->handshake_ms : DEF_HANDSHAKE_MS));
	args.num_args = av.n;
	args.args = av.a;
	srv->server = grpc_server_create(&args, NULL);
	grpc_server_register_completion_queue(srv->server, srv->lp.cq, NULL);
	return srv;
fail:
	rpc_server_free(srv);
	return NULL;
}

static int
srv_add(struct rpc_server *srv, const char *path, enum rpc_auth auth,
    struct method *tmpl)
{
	struct method *m;

	if (srv->started || path == NULL || path[0] != '/') {
		log_warnx("rpc: bad method registration %s", path ? path : "");
		return -1;
	}
	if ((m = malloc(sizeof(*m))) == NULL ||
	    (tmpl->path = strdup(path)) == NULL) {
		free(m);
		log_warn("rpc: method");
		return -1;
	}
	*m = *tmpl;
	m->auth = auth;
	m->handle = grpc_server_register_method(srv->server, m->path, NULL,
	    m->unary ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER :
	    GRPC_SRM_PAYLOAD_NONE, 0);
	if (m->handle == NULL) {
		log_warnx("rpc: cannot register %s", path);
		free(m->path);
		free(m);
		return -1;
	}
	m->next = srv->methods;
	srv->methods = m;
	return 0;
}

int
rpc_server_add_unary(struct rpc_server *srv, const char *method,
    enum rpc_auth auth, rpc_unary_fn fn, void *arg)
{
	struct method t;

	memset(&t, 0, sizeof(t));
	t.unary = true;
	t.ufn = fn;
	t.arg = arg;
	return srv_add(srv, method, auth, &t);
}

int
rpc_server_add_stream(struct rpc_server *srv, const char *method,
    enum rpc_auth auth, const struct rpc_stream_handlers *h, void *arg)
{
	struct method t;

	memset(&t, 0, sizeof(t));
	t.h = *h;
	t.arg = arg;
	return srv_add(srv, method, auth, &t);
}

static int
srv_port(struct rpc_server *srv, const char *addr, bool enroll)
{
	grpc_server_credentials *c;
	int port;

	if (srv->lp.insecure) {
		log_warnx("rpc: INSECURE: plaintext gRPC on %s, no "
		    "encryption, no peer identity (tests only)", addr);
		c = grpc_insecure_server_credentials_create();
	} else if ((c = srv_creds(srv, enroll)) == NULL)
		return -1;
	port = grpc_server_add_http2_port(srv->server, addr, c);
	grpc_server_credentials_release(c);
	if (port <= 0) {
		log_warnx("rpc: cannot listen on %s", addr);
		return -1;
	}
	log_info("rpc: listening on %s (port %d, %s)", addr, port,
	    srv->lp.insecure ? "plaintext" : enroll ? "server-auth TLS" :
	    "mutual TLS");
	return port;
}

int
rpc_server_start(struct rpc_server *srv)
{
	struct method *m;
	int i;

	if (srv->started)
		return -1;
	if ((srv->port = srv_port(srv, srv->listen, false)) == -1)
		return -1;
	if (srv->enroll_listen[0] != '\0' &&
	    (srv->eport = srv_port(srv, srv->enroll_listen, true)) == -1)
		return -1;
	grpc_server_start(srv->server);
	srv->started = true;
	fdg_watch(srv->port);
	fdg_watch(srv->eport);
	pthread_mutex_lock(&srv->lp.mu);
	for (m = srv->methods; m != NULL; m = m->next)
		for (i = 0; i < (m->unary ? REQ_UNARY : REQ_STREAM); i++)
			srv_request(srv, m);
	for (i = 0; i < REQ_GENERIC; i++)
		srv_request(srv, NULL);
	pthread_mutex_unlock(&srv->lp.mu);
	return loop_start(&srv->lp);
}

int
rpc_server_port(const struct rpc_server *srv, bool enroll)
{
	return enroll ? srv->eport : srv->port;
}

int
rpc_server_fd(const struct rpc_server *srv)
{
	return srv->lp.efd;
}

int
rpc_server_dispatch(struct rpc_server *srv)
{
	return loop_dispatch(&srv->lp);
}

void
rpc_server_stats(const struct rpc_server *srv, struct rpc_stats *st)
{
	loop_stats((struct loop *)&srv->lp, st);
	st->accept_refused = atomic_load(&fdg.refused);
}

uint64_t
rpc_accept_refused(void)
{
	return atomic_load(&fdg.refused);
}

static bool
srv_drained(struct loop *lp)
{
	struct rpc_stream *s;

	/*
	 * Unary calls the owner still holds are answered for it, once: no
	 * call is handed out once shutting_down is set (ev_run answers it
	 * instead).  Walking every live call at each turn of loop_drain
	 * was quadratic in the calls a shutdown frees one by one (10,000
	 * sessions).
	 */
	if (!lp->srv->unary_swept) {
		for (s = lp->live; s != NULL; s = s->next)
			if (s->kind == K_SRV_UNARY && s->handed && !s->replied)
				unary_finish(s, RPC_UNAVAILABLE,
				    "server shutting down", NULL, 0);
		lp->srv->unary_swept = true;
	}
	return lp->st.calls_live == 0 && lp->srv->shutdown_done;
}

void
rpc_server_free(struct rpc_server *srv)
{
	struct method *m, *next;

	if (srv == NULL)
		return;
	if (srv->started) {
		fdg_unwatch_all();
		pthread_mutex_lock(&srv->lp.mu);
		srv->lp.shutting_down = true;
		pthread_mutex_unlock(&srv->lp.mu);
		grpc_server_shutdown_and_notify(srv->server, srv->lp.cq,
		    &srv->shutdown_tag);
		grpc_server_cancel_all_calls(srv->server);
		loop_drain(&srv->lp, srv_drained);
	} else if (srv->port > 0) {
		/* Start failed after the first port was bound: gRPC refuses
		 * to destroy a server with a listener that was not shut down,
		 * even one that never ran.  Nothing else is queued yet. */
		grpc_event ev;

		grpc_server_shutdown_and_notify(srv->server, srv->lp.cq,
		    &srv->shutdown_tag);
		do
			ev = grpc_completion_queue_next(srv->lp.cq,
			    gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
		while (ev.type == GRPC_OP_COMPLETE &&
		    ev.tag != &srv->shutdown_tag);
	}
	if (srv->server != NULL)
		grpc_server_destroy(srv->server);
	loop_fini(&srv->lp);
	for (m = srv->methods; m != NULL; m = next) {
		next = m->next;
		free(m->path);
		free(m);
	}
	free(srv);
	grpc_shutdown_blocking();
}

/* --- client --------------------------------------------------------- */

struct rpc_client *
rpc_client_new(const struct rpc_client_opts *o)
{
	struct rpc_client *cli;
	grpc_channel_credentials *c = NULL;
	grpc_ssl_pem_key_cert_pair pair;
	struct argv av = { .n = 0 };
	grpc_channel_args args;
	char *ca = NULL, *cert = NULL, *key = NULL;
	int lim;
	uint32_t rnd = 0;

	if (o->target == NULL) {
		log_warnx("rpc: client needs a target");
		return NULL;
	}
	if ((cli = calloc(1, sizeof(*cli))) == NULL) {
		log_warn("rpc: client");
		return NULL;
	}
	rpc_grpc_init();
	if (loop_init(&cli->lp, true, &o->limits) == -1)
		goto fail;
	cli->lp.insecure = o->insecure;
	cli->lp.idle_ms = o->idle_ms;
	if (o->insecure) {
		log_warnx("rpc: INSECURE: plaintext gRPC to %s, no encryption, "
		    "no server identity (tests only)", o->target);
		c = grpc_insecure_credentials_create();
	} else {
		if (pem_read(o->tls.ca_file, &ca) == -1 ||
		    pem_read(o->tls.cert_file, &cert) == -1 ||
		    pem_read(o->tls.key_file, &key) == -1)
			goto fail;
		if (ca == NULL || (cert == NULL) != (key == NULL)) {
			log_warnx("rpc: client TLS needs a CA, and a "
			    "certificate with its key or neither");
			goto fail;
		}
		pair.private_key = key;
		pair.cert_chain = cert;
		c = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL,
		    NULL);
		if (c == NULL) {
			log_warnx("rpc: cannot build TLS client credentials");
			goto fail;
		}
	}
	lim = clamp_int((unsigned)cli->lp.lim.max_message);
	argv_int(&av, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	    clamp_int((unsigned)cli->lp.lim.max_inbound));
	argv_int(&av, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, lim);
	argv_int(&av, GRPC_ARG_KEEPALIVE_TIME_MS, clamp_int(o->keepalive_ms ?
	    o->keepalive_ms : DEF_KEEPALIVE_MS));
	argv_int(&av, GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
	    clamp_int(o->keepalive_timeout_ms ? o->keepalive_timeout_ms :
	    DEF_KEEPALIVE_TIMEOUT_MS));
	argv_int(&av, GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
	argv_int(&av, GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
	/*
	 * gRPC's own connection backoff (1.6x per attempt, +-20 %) paces the
	 * connection attempts while a stream waits to reopen.  With the same
	 * start and cap in every client, a crowd that lost its controller
	 * together reconnects together; each client draws its start and cap
	 * from lib/backoff.h's windows instead, so the attempts drift apart.
	 */
	(void)util_random(&rnd, sizeof(rnd));
	argv_int(&av, GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, (int)(
	    BACKOFF_FLOOR_MS + (rnd & 0xffff) % (BACKOFF_FIRST_MS -
	    BACKOFF_FLOOR_MS + 1)));
	argv_int(&av, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, CONNECT_TIMEOUT_MS);
	argv_int(&av, GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, (int)(
	    BACKOFF_CAP_MS / 2 + (rnd >> 16) % (BACKOFF_CAP_MS / 2 + 1)));
	/* Our streams reconnect themselves; gRPC retries would buffer. */
	argv_int(&av, GRPC_ARG_ENABLE_RETRIES, 0);
	if (o->server_name != NULL)
		argv_str(&av, GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
		    o->server_name);
	args.num_args = av.n;
	args.args = av.a;
	cli->ch = grpc_channel_create(o->target, c, &args);
	grpc_channel_credentials_release(c);
	pem_free(ca);
	pem_free(cert);
	pem_free(key);
	if (loop_start(&cli->lp) == -1) {
		rpc_client_free(cli);
		return NULL;
	}
	pthread_mutex_lock(&cli->lp.mu);
	cli->conn_tag = T_CONN;
	cli->conn_state = grpc_channel_check_connectivity_state(cli->ch, 0);
	cli_conn_watch(cli);
	pthread_mutex_unlock(&cli->lp.mu);
	return cli;
fail:
	pem_free(ca);
	pem_free(cert);
	pem_free(key);
	rpc_client_free(cli);
	return NULL;
}

/*
 * Locked.  Streams waiting to reopen (loop.pending) wait out their
 * backoff, and gRPC's channel paces its own connection attempts with
 * another (see rpc_client_new).  Without a link between the two, a
 * stream whose attempts failed while the server was away reopened up
 * to a whole backoff after its channel was connected again: at a
 * controller restart, two jittered waits one after the other.  The
 * channel's state is watched instead, and when it becomes READY the
 * waiting streams are due at once.  Only the transition counts: a
 * server that is up but refuses or ends a stream leaves the channel
 * READY, and that stream keeps its backoff.
 */
static void
cli_conn_watch(struct rpc_client *cli)
{
	if (cli->lp.shutting_down || cli->conn_state == GRPC_CHANNEL_SHUTDOWN)
		return;
	grpc_channel_watch_connectivity_state(cli->ch, cli->conn_state,
	    gpr_inf_future(GPR_CLOCK_MONOTONIC), cli->lp.cq, &cli->conn_tag);
	cli->conn_watch = true;
}

/* Locked, on the layer's thread: the watch completed. */
static void
cli_conn_changed(struct rpc_client *cli)
{
	struct loop *lp = &cli->lp;
	grpc_connectivity_state was = cli->conn_state;
	uint64_t now;

	cli->conn_watch = false;
	/* rpc_client_free: the channel may be gone already. */
	if (lp->shutting_down) {
		loop_wake(lp);
		return;
	}
	cli->conn_state = grpc_channel_check_connectivity_state(cli->ch, 0);
	if (cli->conn_state == GRPC_CHANNEL_READY && was != GRPC_CHANNEL_READY) {
		now = util_mono_ms();
		for (struct session *ss = lp->pending; ss != NULL;
		    ss = ss->next)
			if (ss->due_ms > now)
				ss->due_ms = now;
	}
	cli_conn_watch(cli);
}

/* Owner thread only: registered-call handles, cached per method. */
static void *
cli_reg(struct rpc_client *cli, const char *method)
{
	size_t i;

	for (i = 0; i < cli->n_regs; i++)
		if (strcmp(cli->regs[i].method, method) == 0)
			return cli->regs[i].handle;
	if (cli->n_regs == REG_CACHE || method[0] != '/') {
		log_warnx("rpc: bad or too many methods (%s)", method);
		return NULL;
	}
	if ((cli->regs[i].method = strdup(method)) == NULL)
		return NULL;
	cli->regs[i].handle = grpc_channel_register_call(cli->ch, method, NULL,
	    NULL);
	cli->n_regs++;
	return cli->regs[i].handle;
}

int
rpc_client_fd(const struct rpc_client *cli)
{
	return cli->lp.efd;
}

bool
rpc_client_ready(const struct rpc_client *cli)
{
	/* try_to_connect 0: only looks (any thread may ask). */
	return grpc_channel_check_connectivity_state(cli->ch, 0) ==
	    GRPC_CHANNEL_READY;
}

int
rpc_client_dispatch(struct rpc_client *cli)
{
	return loop_dispatch(&cli->lp);
}

void
rpc_client_stats(const struct rpc_client *cli, struct rpc_stats *st)
{
	loop_stats((struct loop *)&cli->lp, st);
}

/* Fills the six ops of a whole unary call. */
static size_t
unary_ops(grpc_op *ops, grpc_byte_buffer *req, grpc_metadata_array *md,
    grpc_byte_buffer **resp, grpc_metadata_array *trailing,
    grpc_status_code *status, grpc_slice *details)
{
	memset(ops, 0, 6 * sizeof(*ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = trailing;
	ops[5].data.recv_status_on_client.status = status;
	ops[5].data.recv_status_on_client.status_details = details;
	return 6;
}

static grpc_byte_buffer *
bb_from(const void *buf, size_t len)
{
	grpc_slice sl = grpc_slice_from_copied_buffer(buf, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);

	grpc_slice_unref(sl);
	return bb;
}

int
rpc_client_unary(struct rpc_client *cli, const char *method,
    const void *req, size_t len, unsigned timeout_ms, int *code,
    uint8_t **resp, size_t *resp_len, char *msg, size_t msgsz)
{
	grpc_completion_queue *cq;
	grpc_metadata_array md, trailing;
	grpc_byte_buffer *bb, *rbb = NULL;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	grpc_call *call;
	grpc_event ev;
	void *reg;
	int tagv = 0, rc = -1;

	*resp = NULL;
	*resp_len = 0;
	if (msg != NULL && msgsz > 0)
		msg[0] = '\0';
	if (len > cli->lp.lim.max_message) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((reg = cli_reg(cli, method)) == NULL)
		return -1;
	/* A private queue: the caller waits here, callbacks do not run. */
	cq = grpc_completion_queue_create_for_pluck(NULL);
	call = grpc_channel_create_registered_call(cli->ch, NULL,
	    GRPC_PROPAGATE_DEFAULTS, cq, reg, deadline_after(timeout_ms ?
	    timeout_ms : 30000), NULL);
	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&trailing);
	bb = bb_from(req, len);
	if (grpc_call_start_batch(call, ops, unary_ops(ops, bb, &md, &rbb,
	    &trailing, &status, &details), &tagv, NULL) != GRPC_CALL_OK) {
		log_warnx("rpc: unary %s: cannot start", method);
		goto out;
	}
	ev = grpc_completion_queue_pluck(cq, &tagv,
	    gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
	if (ev.type != GRPC_OP_COMPLETE)
		goto out;
	*code = (int)status;
	if (msg != NULL && msgsz > 0) {
		size_t n = GRPC_SLICE_LENGTH(details);

		if (n >= msgsz)
			n = msgsz - 1;
		memcpy(msg, GRPC_SLICE_START_PTR(details), n);
		msg[n] = '\0';
	}
	if (status == GRPC_STATUS_OK && rbb != NULL) {
		struct event *e = event_from_bb(rbb, EV_UDONE);

		if (e == NULL)
			goto out;
		if ((*resp = malloc(e->len ? e->len : 1)) != NULL) {
			memcpy(*resp, e->data, e->len);
			*resp_len = e->len;
		}
		free(e);
		if (*resp == NULL)
			goto out;
	}
	rc = 0;
out:
	grpc_call_unref(call);
	grpc_byte_buffer_destroy(bb);
	if (rbb != NULL)
		grpc_byte_buffer_destroy(rbb);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&trailing);
	grpc_slice_unref(details);
	grpc_completion_queue_shutdown(cq);
	while (grpc_completion_queue_pluck(cq, NULL,
	    gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
	    GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(cq);
	return rc;
}

int
rpc_client_unary_async(struct rpc_client *cli, const char *method,
    const void *req, size_t len, unsigned timeout_ms, rpc_unary_done_fn done,
    void *arg)
{
	struct loop *lp = &cli->lp;
	struct rpc_stream *s;
	grpc_op ops[6];
	void *reg;
	int rc = -1;

	if (len > lp->lim.max_message) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((reg = cli_reg(cli, method)) == NULL)
		return -1;
	pthread_mutex_lock(&lp->mu);
	if (lp->shutting_down || (s = call_new(lp, K_CLI_UNARY)) == NULL)
		goto out;
	s->done = done;
	s->user = arg;
	s->call = grpc_channel_create_registered_call(cli->ch, NULL,
	    GRPC_PROPAGATE_DEFAULTS, lp->cq, reg, deadline_after(timeout_ms ?
	    timeout_ms : 30000), NULL);
	s->send_bb = bb_from(req, len);
	if (call_batch(s, ops, unary_ops(ops, s->send_bb, &s->md,
	    &s->recv_buf, &s->trailing, &s->status, &s->status_slice),
	    T_CLOSE) == -1) {
		call_unref(s);
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&lp->mu);
	return rc;
}

/* Creates one stream of a session (locked).  0 / -1. */
static int
cli_stream_start(struct rpc_client *cli, struct session *ss)
{
	struct loop *lp = &cli->lp;
	struct rpc_stream *s;
	grpc_op op;

	if ((s = call_new(lp, K_CLI_STREAM)) == NULL)
		return -1;
	s->sess = ss;
	s->accepted = true;
	s->call = grpc_channel_create_registered_call(cli->ch, NULL,
	    GRPC_PROPAGATE_DEFAULTS, lp->cq, ss->reg,
	    deadline_after(ss->o.timeout_ms), NULL);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_INITIAL_METADATA;
	s->md_sent = true;
	if (call_batch(s, &op, 1, T_MD) == -1)
		goto fail;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	op.data.recv_status_on_client.trailing_metadata = &s->trailing;
	op.data.recv_status_on_client.status = &s->status;
	op.data.recv_status_on_client.status_details = &s->status_slice;
	if (call_batch(s, &op, 1, T_CLOSE) == -1)
		goto fail;
	arm_recv(s);
	if (ev_push_simple(lp, s, EV_OPEN) == -1) {
		s->local_cancel = true;
		grpc_call_cancel(s->call, NULL);
	}
	return 0;
fail:
	s->sess = NULL;
	grpc_call_cancel(s->call, NULL);
	call_unref(s);
	return -1;
}

static void
cli_tick(struct loop *lp)
{
	struct rpc_client *cli = (struct rpc_client *)lp; /* lp is first */
	struct session **pp = &lp->pending, *ss;
	uint64_t now = util_mono_ms();

	while ((ss = *pp) != NULL) {
		if (ss->due_ms > now || lp->shutting_down) {
			pp = &ss->next;
			continue;
		}
		*pp = ss->next;
		ss->next = NULL;
		if (cli_stream_start(cli, ss) == -1) {
			ss->due_ms = now + backoff_next(&ss->bo,
			    (uint32_t)now);
			ss->next = lp->pending;
			lp->pending = ss;
			break;
		}
	}
}

int
rpc_client_stream_open(struct rpc_client *cli, const char *method,
    const struct rpc_stream_handlers *h, void *arg,
    const struct rpc_stream_opts *opts)
{
	struct loop *lp = &cli->lp;
	struct session *ss;
	int rc = -1;

	if ((ss = calloc(1, sizeof(*ss))) == NULL)
		return -1;
	ss->h = *h;
	ss->arg = arg;
	if (opts != NULL)
		ss->o = *opts;
	if ((ss->reg = cli_reg(cli, method)) == NULL) {
		free(ss);
		return -1;
	}
	pthread_mutex_lock(&lp->mu);
	if (!lp->shutting_down)
		rc = cli_stream_start(cli, ss);
	pthread_mutex_unlock(&lp->mu);
	if (rc == -1)
		free(ss);
	return rc;
}

static bool
cli_drained(struct loop *lp)
{
	return lp->st.calls_live == 0;
}

void
rpc_client_free(struct rpc_client *cli)
{
	struct loop *lp;
	struct rpc_stream *s;
	struct session *ss;
	size_t i;

	if (cli == NULL)
		return;
	lp = &cli->lp;
	if (lp->thread_started) {
		pthread_mutex_lock(&lp->mu);
		lp->shutting_down = true;
		for (s = lp->live; s != NULL; s = s->next)
			if (s->call != NULL)
				grpc_call_cancel(s->call, NULL);
		while ((ss = lp->pending) != NULL) {
			lp->pending = ss->next;
			free(ss);
		}
		pthread_mutex_unlock(&lp->mu);
		loop_drain(lp, cli_drained);
	}
	if (cli->ch != NULL)
		grpc_channel_destroy(cli->ch);
	loop_fini(lp);
	for (i = 0; i < cli->n_regs; i++)
		free(cli->regs[i].method);
	free(cli);
	grpc_shutdown_blocking();
}
