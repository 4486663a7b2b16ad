/*
 * http.c — libmicrohttpd behind the small interface of http.h.
 *
 * Why a wrapper: libmicrohttpd's calling convention (an access handler
 * called several times per request while the body streams in) is easy to
 * get wrong, and keeping it in one file lets api.c see a request as a
 * whole: method, path, headers and a complete, size-checked body.
 *
 * Threading: MHD_USE_INTERNAL_POLLING_THREAD without a thread pool, so
 * all handler calls happen one after another in a single thread that
 * belongs to this server.  The daemon's own loop never waits for it.
 *
 * Event loop: poll(), not epoll.  With libmicrohttpd 0.9.75 (Debian 12)
 * in epoll mode, once the connection limit was reached the listening
 * socket left the epoll set, and connections accepted later from the
 * listen queue whose client had already sent its bytes and closed were
 * not processed until the idle timeout: 1,000 slow clients that left kept
 * the API dark for minutes (issue 8).  The same server on poll() drains
 * such a queue in milliseconds (tests/api/slowloris.sh checks it).
 * poll() costs O(connections) per wake-up, which is fine for the few
 * thousand connections the limits below allow.
 *
 * Limits (struct http_config): total and per-address connection limits
 * and an idle timeout.  libmicrohttpd 0.9.75 has no deadline for a whole
 * request header, so a client that dribbles a byte before each idle
 * timeout keeps its connection; the per-address limit is what bounds one
 * such client.
 *
 * Streams (server-sent events): a response whose body comes from a
 * reader callback.  When the reader has nothing to send, the connection
 * is suspended (MHD_suspend_connection, the pattern microhttpd.h gives
 * for "no data yet" in internal polling mode) and parked on a list;
 * http_wake() resumes every parked stream from any thread.  The list
 * and a wake counter share one mutex, so a wake that lands between the
 * reader's "nothing" and the suspension is not lost.  MHD asks the
 * reader only when the socket can take more, so a slow reader costs one
 * block (HTTP_STREAM_BLOCK) here, never a growing buffer.
 *
 * TLS: libmicrohttpd's own (GnuTLS), from PEM text in memory.
 */
#include "controller/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "lib/log.h"

struct http_server {
	struct MHD_Daemon *mhd;
	http_handler_fn handler;
	void *arg;
	size_t max_body;
	uint16_t port;
	/* Log flood guard (server thread only): messages in this second. */
	time_t log_second;
	unsigned log_count;
	/* Written by the server thread, read by anyone: atomics. */
	_Atomic uint64_t counts[HTTP_STATUS_MAX - HTTP_STATUS_MIN + 1];
	bool tls;
	/* Streams (any thread): the list, the wake counter, stopping. */
	pthread_mutex_t lock;
	struct http_stream *streams;
	uint64_t wake_gen;
	bool stopping;
};

/* One open stream response; lives until its connection ends. */
struct http_stream {
	struct http_server *srv;
	struct MHD_Connection *conn;
	long (*read)(void *arg, char *buf, size_t max);
	void (*free)(void *arg);
	void *arg;
	bool parked;			/* suspended, waiting for http_wake */
	struct http_stream *prev, *next;
};

/* Bytes asked of a stream reader at a time (the most MHD buffers). */
#define HTTP_STREAM_BLOCK ((size_t)16 * 1024)

/*
 * One per request: made when its request line has arrived (before any
 * decoding, to keep the raw target), freed when it completes.
 */
struct http_request {
	struct MHD_Connection *conn;
	const char *method;
	const char *path;
	char *target;		/* as sent: path and query, not decoded */
	char peer[INET6_ADDRSTRLEN];
	char *body;
	size_t body_len;
	size_t body_cap;
	bool started;		/* the handler's first call has been made */
	bool too_large;
};

static const char http_err_too_large[] =
    "{\"code\":\"body_too_large\",\"message\":\"request body exceeds the "
    "size limit\",\"field\":null}";
static const char http_err_nomem[] =
    "{\"code\":\"internal\",\"message\":\"out of memory\","
    "\"field\":null}";

static void
http_count_status(struct http_server *srv, int status)
{
	if (status >= HTTP_STATUS_MIN && status <= HTTP_STATUS_MAX)
		atomic_fetch_add(&srv->counts[status - HTTP_STATUS_MIN], 1);
}

/*
 * The dashboard loads its own script and style files only: no inline
 * script or style element, nothing from elsewhere, never framed.
 */
#define HTTP_CSP "default-src 'self'; script-src 'self'; " \
    "style-src 'self'; img-src 'self' data:; connect-src 'self'; " \
    "object-src 'none'; base-uri 'none'; form-action 'self'; " \
    "frame-ancestors 'none'"

static void
http_secure_headers(const struct http_server *srv, struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", HTTP_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	if (srv->tls)
		MHD_add_response_header(r, "Strict-Transport-Security",
		    "max-age=31536000");
}

static enum MHD_Result
http_queue_static(struct http_server *srv, struct MHD_Connection *conn,
    int status, const char *json)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(json), (void *)json,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	http_secure_headers(srv, r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "application/json");
	ret = MHD_queue_response(conn, (unsigned int)status, r);
	MHD_destroy_response(r);
	http_count_status(srv, status);
	return ret;
}

/*
 * A parked connection is not polled, so a client that went away would
 * only be noticed at the next write: look for its FIN (or reset) before
 * parking.  Stream clients send nothing after the request, so a peek
 * that finds bytes changes nothing.
 */
static bool
http_peer_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	char b;
	ssize_t n;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return false;
	n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR);
}

/* MHD's content reader: see "Streams" at the top. */
static ssize_t
http_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_stream *hs = cls;
	struct http_server *srv = hs->srv;
	uint64_t gen;
	bool stopping;
	long n;

	(void)pos;
	pthread_mutex_lock(&srv->lock);
	gen = srv->wake_gen;
	stopping = srv->stopping;
	pthread_mutex_unlock(&srv->lock);
	if (stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	n = hs->read(hs->arg, buf, max);
	if (n > 0)
		return (ssize_t)n;
	if (n < 0 || http_peer_gone(hs->conn))
		return MHD_CONTENT_READER_END_OF_STREAM;
	pthread_mutex_lock(&srv->lock);
	if (srv->wake_gen == gen && !srv->stopping) {
		hs->parked = true;
		MHD_suspend_connection(hs->conn);
	}
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

/* MHD frees the response: the connection is gone. */
static void
http_stream_free(void *cls)
{
	struct http_stream *hs = cls;
	struct http_server *srv = hs->srv;

	pthread_mutex_lock(&srv->lock);
	if (hs->prev != NULL)
		hs->prev->next = hs->next;
	else
		srv->streams = hs->next;
	if (hs->next != NULL)
		hs->next->prev = hs->prev;
	pthread_mutex_unlock(&srv->lock);
	if (hs->free != NULL)
		hs->free(hs->arg);
	free(hs);
}

static struct MHD_Response *
http_stream_response(struct http_server *srv, struct http_request *req,
    struct http_response *resp)
{
	struct http_stream *hs;
	struct MHD_Response *r;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		if (resp->stream_free != NULL)
			resp->stream_free(resp->stream_arg);
		return NULL;
	}
	hs->srv = srv;
	hs->conn = req->conn;
	hs->read = resp->stream_read;
	hs->free = resp->stream_free;
	hs->arg = resp->stream_arg;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
	    HTTP_STREAM_BLOCK, http_stream_reader, hs, http_stream_free);
	if (r == NULL) {
		if (hs->free != NULL)
			hs->free(hs->arg);
		free(hs);
		return NULL;
	}
	pthread_mutex_lock(&srv->lock);
	hs->next = srv->streams;
	if (hs->next != NULL)
		hs->next->prev = hs;
	srv->streams = hs;
	pthread_mutex_unlock(&srv->lock);
	if (resp->stream_timeout_s != 0)
		MHD_set_connection_option(req->conn,
		    MHD_CONNECTION_OPTION_TIMEOUT, resp->stream_timeout_s);
	return r;
}

static enum MHD_Result
http_dispatch(struct http_server *srv, struct http_request *req)
{
	struct http_response resp;
	struct MHD_Response *r;
	enum MHD_Result ret;

	memset(&resp, 0, sizeof(resp));
	resp.status = 500;
	srv->handler(srv->arg, req, &resp);

	if (resp.stream_read != NULL) {
		free(resp.body);
		r = http_stream_response(srv, req, &resp);
	} else if (resp.has_fd) {
		free(resp.body);
		r = MHD_create_response_from_fd64(resp.file_size, resp.fd);
		if (r == NULL)
			close(resp.fd);
	} else {
		r = MHD_create_response_from_buffer(resp.body_len,
		    resp.body != NULL ? resp.body : (void *)"",
		    resp.body != NULL ? MHD_RESPMEM_MUST_FREE :
		    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			free(resp.body);
	}
	if (r == NULL)
		return MHD_NO;
	http_secure_headers(srv, r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    resp.content_type != NULL ? resp.content_type : "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
	    resp.cache_control != NULL ? resp.cache_control : "no-store");
	if (resp.allow[0] != '\0')
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp.allow);
	if (resp.auth_challenge)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    "Bearer realm=\"meshwan\"");
	ret = MHD_queue_response(req->conn, (unsigned int)resp.status, r);
	MHD_destroy_response(r);
	http_count_status(srv, resp.status);
	return ret;
}

static void
http_peer_text(struct MHD_Connection *conn, char *out, size_t outsz)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	out[0] = '\0';
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, out, (socklen_t)outsz);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, out, (socklen_t)outsz);
}

static int
http_body_append(struct http_request *req, const char *data, size_t len,
    size_t max)
{
	size_t cap;
	char *nb;

	if (req->too_large)
		return 0;
	if (len > max || req->body_len > max - len) {
		req->too_large = true;
		return 0;
	}
	if (req->body == NULL || req->body_len + len + 1 > req->body_cap) {
		cap = req->body_cap != 0 ? req->body_cap : 1024;
		while (cap < req->body_len + len + 1)
			cap *= 2;
		nb = realloc(req->body, cap);
		if (nb == NULL)
			return -1;
		req->body = nb;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
	return 0;
}

static enum MHD_Result
http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;
	const char *cl;
	uint64_t clen;
	char *end;

	(void)version;
	if (req == NULL)	/* http_on_uri could not allocate it */
		return MHD_NO;
	if (!req->started) {
		req->started = true;
		req->conn = conn;
		req->method = method;
		req->path = url;
		*con_cls = req;
		http_peer_text(conn, req->peer, sizeof(req->peer));
		/*
		 * Refuse a declared oversized body before reading it: the
		 * client then gets 413 instead of "100 Continue".
		 */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL) {
			errno = 0;
			clen = strtoull(cl, &end, 10);
			if (errno != 0 || *end != '\0' || clen > srv->max_body) {
				req->too_large = true;
				return http_queue_static(srv, conn, 413,
				    http_err_too_large);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		if (http_body_append(req, upload_data, *upload_data_size,
		    srv->max_body) == -1) {
			*upload_data_size = 0;
			return http_queue_static(srv, conn, 500,
			    http_err_nomem);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->too_large)
		return http_queue_static(srv, conn, 413, http_err_too_large);
	if (req->body == NULL && http_body_append(req, "", 0,
	    srv->max_body) == -1)
		return http_queue_static(srv, conn, 500, http_err_nomem);
	return http_dispatch(srv, req);
}

/*
 * Called with the request target as the client sent it, before
 * libmicrohttpd decodes it; what this returns is the request's *con_cls.
 */
static void *
http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_request *req;

	(void)cls;
	(void)conn;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->target = strdup(uri != NULL ? uri : "");
	if (req->target == NULL) {
		free(req);
		return NULL;
	}
	return req;
}

static void
http_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_request *req = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (req == NULL)
		return;
	free(req->target);
	free(req->body);
	free(req);
	*con_cls = NULL;
}

/*
 * libmicrohttpd logs a line per refused or broken connection: a flood of
 * hostile connections must not become a flood of log lines, so at most
 * HTTP_LOG_PER_S lines a second are kept and the rest counted.
 */
#define HTTP_LOG_PER_S 10

static void
http_on_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *srv = cls;
	time_t now = time(NULL);
	char line[512];
	size_t n;

	if (now != srv->log_second) {
		if (srv->log_count > HTTP_LOG_PER_S)
			log_warnx("http: %u more messages not shown (at most "
			    "%d a second)", srv->log_count - HTTP_LOG_PER_S,
			    HTTP_LOG_PER_S);
		srv->log_second = now;
		srv->log_count = 0;
	}
	if (++srv->log_count > HTTP_LOG_PER_S)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warnx("http: %s", line);
}

/*
 * Every connection is a file descriptor: make sure the process may open
 * that many (plus some for the store and the daemon's own sockets),
 * raising the soft limit up to the hard one; otherwise accept() would
 * fail with EMFILE and libmicrohttpd would stop accepting until a
 * connection closes.  Returns the connection limit that fits.
 */
static unsigned
http_fd_budget(unsigned want)
{
	const rlim_t spare = 128;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return want;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + spare) {
		rlim_t need = want + spare;

		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ||
		    rl.rlim_max >= need ? need : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return want;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want + spare) {
		unsigned fit = rl.rlim_cur > 2 * spare ?
		    (unsigned)(rl.rlim_cur - spare) : (unsigned)(rl.rlim_cur / 2);

		log_warnx("http: open-file limit %llu allows only %u "
		    "connections, not %u", (unsigned long long)rl.rlim_cur,
		    fit, want);
		return fit;
	}
	return want;
}

struct http_server *
http_start(const struct http_config *cfg, http_handler_fn handler, void *arg)
{
	struct http_server *srv;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
	    MHD_ALLOW_SUSPEND_RESUME;
	bool tls = cfg->tls_cert_pem != NULL && cfg->tls_key_pem != NULL;
	const union MHD_DaemonInfo *info;
	unsigned max_conn, per_ip;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, cfg->address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(cfg->port);
	} else if (inet_pton(AF_INET6, cfg->address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(cfg->port);
		flags |= MHD_USE_IPv6;
	} else {
		log_warnx("http: listen address %s is not a numeric IP address",
		    cfg->address);
		return NULL;
	}
	if (tls) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			log_warnx("http: this libmicrohttpd has no TLS support");
			return NULL;
		}
		flags |= MHD_USE_TLS;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return NULL;
	if (pthread_mutex_init(&srv->lock, NULL) != 0) {
		free(srv);
		return NULL;
	}
	srv->tls = tls;
	srv->handler = handler;
	srv->arg = arg;
	srv->max_body = cfg->max_body;
	max_conn = http_fd_budget(cfg->max_connections != 0 ?
	    cfg->max_connections : HTTP_MAX_CONNECTIONS_DEFAULT);
	per_ip = cfg->max_per_ip != 0 ? cfg->max_per_ip :
	    HTTP_MAX_PER_IP_DEFAULT;
	srv->mhd = MHD_start_daemon(flags, cfg->port, NULL, NULL,
	    http_on_request, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, http_on_log, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_URI_LOG_CALLBACK, http_on_uri, srv,
	    MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, srv,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(cfg->timeout_s != 0 ?
	    cfg->timeout_s : HTTP_TIMEOUT_DEFAULT),
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)max_conn,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)per_ip,
	    /* Only meaningful with MHD_USE_TLS; ignored otherwise. */
	    tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, cfg->tls_key_pem,
	    MHD_OPTION_HTTPS_MEM_CERT, cfg->tls_cert_pem,
	    MHD_OPTION_HTTPS_PRIORITIES,
	    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_END);
	if (srv->mhd == NULL) {
		log_warnx("http: cannot listen on %s port %u%s", cfg->address,
		    (unsigned)cfg->port, tls ? " (or the TLS certificate or "
		    "key was refused)" : "");
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		return NULL;
	}
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : cfg->port;
	log_info("http: listening on %s port %u, %s (at most %u connections, "
	    "%u per address)", cfg->address, (unsigned)srv->port, tls ?
	    "HTTPS" : "plaintext HTTP", max_conn, per_ip);
	return srv;
}

void
http_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	/* Parked streams must be resumed to be closed: they end at once. */
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	for (struct http_stream *hs = srv->streams; hs != NULL; hs = hs->next)
		if (hs->parked) {
			hs->parked = false;
			MHD_resume_connection(hs->conn);
		}
	pthread_mutex_unlock(&srv->lock);
	MHD_stop_daemon(srv->mhd);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

void
http_wake(struct http_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->wake_gen++;
	for (struct http_stream *hs = srv->streams; hs != NULL; hs = hs->next)
		if (hs->parked) {
			hs->parked = false;
			MHD_resume_connection(hs->conn);
		}
	pthread_mutex_unlock(&srv->lock);
}

bool
http_tls(const struct http_server *srv)
{
	return srv->tls;
}

const char *
http_request_peer(const struct http_request *req)
{
	return req->peer;
}

uint16_t
http_port(const struct http_server *srv)
{
	return srv->port;
}

uint64_t
http_count(const struct http_server *srv, int status)
{
	if (status < HTTP_STATUS_MIN || status > HTTP_STATUS_MAX)
		return 0;
	return atomic_load(&srv->counts[status - HTTP_STATUS_MIN]);
}

const char *
http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *
http_request_target(const struct http_request *req)
{
	return req->target != NULL ? req->target : "";
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_request_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
	    name);
}

struct http_query_walk {
	int (*fn)(void *, const char *, const char *);
	void *arg;
	int rc;
};

static enum MHD_Result
http_query_visit(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct http_query_walk *w = cls;

	(void)kind;
	if (w->fn(w->arg, key, value != NULL ? value : "") == -1) {
		w->rc = -1;
		return MHD_NO;
	}
	return MHD_YES;
}

int
http_request_query_each(const struct http_request *req,
    int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
	struct http_query_walk w = { fn, arg, 0 };

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND,
	    http_query_visit, &w);
	return w.rc;
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
	*len = req->body_len;
	return req->body != NULL ? req->body : "";
}
