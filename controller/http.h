/*
 * http.h — the controller's embedded HTTP server.
 *
 * The only user of libmicrohttpd; none of its types cross this header.
 * The server runs in one internal thread of its own (so it never blocks
 * the daemon's event loop): every request is answered by calling the
 * single handler given to http_start() from that thread, one request at a
 * time.  Request bodies are collected up to a fixed limit; a larger body
 * is answered with 413 by this file, before the handler sees it.  HEAD is
 * handed to the handler as HEAD; whatever body it answers with is left out
 * on the wire (the headers, Content-Length included, stay).
 *
 * Every reply carries the security headers of a web application that
 * loads nothing from elsewhere: a Content-Security-Policy without inline
 * script, X-Content-Type-Options, X-Frame-Options, Referrer-Policy, and
 * Strict-Transport-Security when the server speaks TLS.
 */
#ifndef MESHWAN_HTTP_H
#define MESHWAN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
/* Valid only during the handler call that received it. */
struct http_request;

struct http_response {
	int status;
	/* Static string; "application/json" when left NULL. */
	const char *content_type;
	/* malloc'd; http.c frees it after sending.  NULL = empty body. */
	char *body;
	size_t body_len;
	/* Value of an Allow header (for 405); empty = no header. */
	char allow[64];
	/* Adds "WWW-Authenticate: Bearer" (for 401, RFC 6750). */
	bool auth_challenge;
	/*
	 * A file instead of body: fd (owned, closed by http.c) of file_size
	 * bytes.  Used when has_fd is set.
	 */
	bool has_fd;
	int fd;
	uint64_t file_size;
	/* Cache-Control value; NULL = "no-store". */
	const char *cache_control;
	/*
	 * A stream instead of body (server-sent events): used when
	 * stream_read is set.  stream_read(stream_arg, buf, max) is called
	 * from the server thread whenever the socket can take more; it
	 * returns the bytes it wrote (> 0), 0 when it has nothing now (the
	 * connection is then parked until http_wake), or -1 to end the
	 * stream.  stream_free(stream_arg) is called once when the
	 * connection ends (also if the response could not be queued).
	 */
	long (*stream_read)(void *arg, char *buf, size_t max);
	void (*stream_free)(void *arg);
	void *stream_arg;
	/* Idle timeout of a stream's connection; 0 = the server's. */
	unsigned stream_timeout_s;
};

typedef void (*http_handler_fn)(void *arg, const struct http_request *req,
    struct http_response *resp);

struct http_config {
	const char *address;		/* numeric IPv4 or IPv6 address */
	uint16_t port;			/* 0 = any free port (tests) */
	size_t max_body;		/* bytes; larger bodies get 413 */
	/*
	 * Connections held open at once, in all and per client address
	 * (0 = HTTP_MAX_CONNECTIONS_DEFAULT / HTTP_MAX_PER_IP_DEFAULT).
	 * At the total limit new connections wait in the kernel's listen
	 * queue; over the per-address limit they are closed at once.
	 */
	unsigned max_connections;
	unsigned max_per_ip;
	/* A connection idle this long is closed; 0 = HTTP_TIMEOUT_DEFAULT. */
	unsigned timeout_s;
	/*
	 * HTTPS: PEM certificate (chain) and private key, kept in memory by
	 * the caller until http_stop.  Both NULL = plain HTTP (the caller
	 * decides when that is allowed; the log line says "plaintext").
	 */
	const char *tls_cert_pem;
	const char *tls_key_pem;
};

#define HTTP_MAX_CONNECTIONS_DEFAULT 2048u
#define HTTP_MAX_PER_IP_DEFAULT 64u
#define HTTP_TIMEOUT_DEFAULT 10u

/* Status codes counted per server, for /metrics. */
#define HTTP_STATUS_MIN 100
#define HTTP_STATUS_MAX 599

/*
 * Starts listening; handler(arg, ...) answers each request from the
 * server's thread.  Returns NULL (logged) if the address is not numeric
 * or the socket cannot be bound.
 */
struct http_server *http_start(const struct http_config *cfg,
    http_handler_fn handler, void *arg);
/* Stops the thread and closes the socket; NULL is accepted. */
void http_stop(struct http_server *srv);
/* The bound port (useful when cfg->port was 0). */
uint16_t http_port(const struct http_server *srv);
/* Requests answered so far with this status; 0 outside the range. */
uint64_t http_count(const struct http_server *srv, int status);

/*
 * Wakes every parked stream (see http_response.stream_read) so its
 * reader is asked again.  Safe from any thread; cheap when none is
 * parked.
 */
void http_wake(struct http_server *srv);
/* True when the server speaks TLS. */
bool http_tls(const struct http_server *srv);

/* Upper-case method, e.g. "GET". */
const char *http_request_method(const struct http_request *req);
/*
 * The path without the query string, e.g. "/api/v1/sites/3", after
 * percent-decoding (a decoded NUL ends it early).
 */
const char *http_request_path(const struct http_request *req);
/*
 * The request target exactly as the client sent it (path and query,
 * nothing decoded), so a caller can refuse what decoding would hide:
 * encoded separators, NULs.  "" if unknown.
 */
const char *http_request_target(const struct http_request *req);
/* The client's address as text ("192.0.2.7", "::1"); "" if unknown. */
const char *http_request_peer(const struct http_request *req);
/* A header's value (case-insensitive name), or NULL. */
const char *http_request_header(const struct http_request *req,
    const char *name);
/* A query-string argument's (decoded) value, or NULL. */
const char *http_request_query(const struct http_request *req,
    const char *name);
/*
 * Calls fn for every query-string argument; stops and returns -1 when fn
 * returns -1.  Lets a handler refuse arguments it does not know.
 */
int http_request_query_each(const struct http_request *req,
    int (*fn)(void *arg, const char *key, const char *value), void *arg);
/* The body (NUL-terminated for convenience) and its length. */
const char *http_request_body(const struct http_request *req, size_t *len);

#endif
