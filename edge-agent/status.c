/*
 * status.c — `meshwan-edge status` and /metrics: the agent's state for
 * the operator, never its secrets.
 *
 * Why it looks like this:
 * - One snapshot, many readers.  The agent publishes a JSON document; this
 *   file filters it through a whitelist (status_schema), serialises it
 *   once and swaps a reference-counted buffer under a mutex.  Readers
 *   take a reference and write from their own thread, so neither a slow
 *   client nor a scrape ever holds the agent's loop.
 * - The control socket is a UNIX stream socket, 0600, and every peer's
 *   SO_PEERCRED uid must be 0: file mode and credentials both have to
 *   let a caller in.  One thread polls the listener and at most
 *   STATUS_MAX_CLIENTS clients, each with a deadline from accept; one
 *   more is told "busy" and closed, so a stuck or hostile local client
 *   costs a slot for two seconds at most.
 * - Protocol: the client sends one line ("status\n"), the server answers
 *   the JSON document and a newline, or {"error":"..."}, and closes.
 * - /metrics goes through controller/http.c, the project's one
 *   libmicrohttpd wrapper, in its own thread.  It renders from the same
 *   filtered snapshot, so the numbers match `status --json`.
 */
#include "edge-agent/status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "controller/http.h"
#include "lib/log.h"
#include "lib/util.h"

/* ------------------------------------------------------------------ */
/* The schema: the only fields that leave the agent.                   */

enum status_kind { SK_STR, SK_UINT, SK_BOOL, SK_OBJ, SK_ARR };

struct status_field {
	const char *name;
	enum status_kind kind;
	const struct status_field *sub;	/* SK_OBJ, SK_ARR (of objects) */
	size_t max;			/* SK_ARR: entries kept */
};

static const struct status_field status_ack[] = {
	{ "version", SK_UINT, NULL, 0 },
	{ "ok", SK_BOOL, NULL, 0 },
	{ "reason", SK_STR, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_controller[] = {
	{ "target", SK_STR, NULL, 0 },
	{ "state", SK_STR, NULL, 0 },
	{ "since_s", SK_UINT, NULL, 0 },
	{ "intent_version", SK_UINT, NULL, 0 },
	{ "last_ack", SK_OBJ, status_ack, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_drops[] = {
	{ "no_sa", SK_UINT, NULL, 0 },
	{ "auth", SK_UINT, NULL, 0 },
	{ "unknown_spi", SK_UINT, NULL, 0 },
	{ "replay", SK_UINT, NULL, 0 },
	{ "source", SK_UINT, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_sa[] = {
	{ "dir", SK_STR, NULL, 0 },
	{ "spi", SK_UINT, NULL, 0 },
	{ "sa_epoch", SK_UINT, NULL, 0 },
	{ "age_s", SK_UINT, NULL, 0 },
	{ "packets", SK_UINT, NULL, 0 },
	{ "bytes", SK_UINT, NULL, 0 },
	{ "active", SK_BOOL, NULL, 0 },
	{ "soft_expired", SK_BOOL, NULL, 0 },
	{ "hard_expired", SK_BOOL, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_bgp[] = {
	{ "neighbor", SK_STR, NULL, 0 },
	{ "state", SK_STR, NULL, 0 },
	{ "uptime_s", SK_UINT, NULL, 0 },
	{ "prefixes_received", SK_UINT, NULL, 0 },
	{ "prefixes_filtered", SK_UINT, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_bfd[] = {
	{ "state", SK_STR, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_health[] = {
	{ "up", SK_BOOL, NULL, 0 },
	{ "rtt_us", SK_UINT, NULL, 0 },
	{ "loss_permille", SK_UINT, NULL, 0 },
	{ "jitter_us", SK_UINT, NULL, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_tunnel[] = {
	{ "id", SK_UINT, NULL, 0 },
	{ "peer_site", SK_UINT, NULL, 0 },
	{ "peer_name", SK_STR, NULL, 0 },
	{ "device", SK_STR, NULL, 0 },
	{ "local_link", SK_STR, NULL, 0 },
	{ "remote", SK_STR, NULL, 0 },
	{ "peer_moves", SK_UINT, NULL, 0 },
	{ "moved_from", SK_STR, NULL, 0 },
	{ "inner_local", SK_STR, NULL, 0 },
	{ "encap", SK_STR, NULL, 0 },
	{ "vni", SK_UINT, NULL, 0 },
	{ "state", SK_STR, NULL, 0 },
	{ "packets_in", SK_UINT, NULL, 0 },
	{ "packets_out", SK_UINT, NULL, 0 },
	{ "bytes_in", SK_UINT, NULL, 0 },
	{ "bytes_out", SK_UINT, NULL, 0 },
	{ "drops", SK_OBJ, status_drops, 0 },
	{ "sas", SK_ARR, status_sa, STATUS_SAS_MAX },
	{ "bgp", SK_OBJ, status_bgp, 0 },
	{ "bfd", SK_OBJ, status_bfd, 0 },
	{ "health", SK_OBJ, status_health, 0 },
	{ NULL, SK_STR, NULL, 0 },
};

static const struct status_field status_schema[] = {
	{ "site_id", SK_UINT, NULL, 0 },
	{ "site_name", SK_STR, NULL, 0 },
	{ "backend", SK_STR, NULL, 0 },
	{ "version", SK_STR, NULL, 0 },
	{ "uptime_s", SK_UINT, NULL, 0 },
	{ "controller", SK_OBJ, status_controller, 0 },
	{ "tunnels", SK_ARR, status_tunnel, STATUS_TUNNELS_MAX },
	{ NULL, SK_STR, NULL, 0 },
};

static json_t *status_filter(const json_t *in, const struct status_field *f);

/* A copy of v when it has the field's kind and fits its limits, or NULL. */
static json_t *
status_filter_value(const json_t *v, const struct status_field *f)
{
	json_t *arr;
	size_t i;

	switch (f->kind) {
	case SK_STR:
		if (!json_is_string(v) ||
		    json_string_length(v) > STATUS_STRING_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return NULL;
		return json_string(json_string_value(v));
	case SK_UINT:
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return NULL;
		return json_integer(json_integer_value(v));
	case SK_BOOL:
		return json_is_boolean(v) ? json_boolean(json_is_true(v)) :
		    NULL;
	case SK_OBJ:
		return json_is_object(v) ? status_filter(v, f->sub) : NULL;
	case SK_ARR:
		if (!json_is_array(v) || (arr = json_array()) == NULL)
			return NULL;
		for (i = 0; i < json_array_size(v) && i < f->max; i++) {
			json_t *e = json_array_get(v, i);

			if (json_is_object(e))
				json_array_append_new(arr,
				    status_filter(e, f->sub));
		}
		return arr;
	}
	return NULL;
}

/* The schema's fields of in, in schema order; never NULL unless no memory. */
static json_t *
status_filter(const json_t *in, const struct status_field *f)
{
	json_t *out = json_object();

	if (out == NULL)
		return NULL;
	for (; f->name != NULL; f++) {
		const json_t *v = json_object_get(in, f->name);
		json_t *c;

		if (v != NULL && (c = status_filter_value(v, f)) != NULL)
			json_object_set_new(out, f->name, c);
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* The published snapshot.                                             */

struct status_blob {
	unsigned refs;			/* under status_srv.mu */
	uint64_t published_ms;		/* util_mono_ms() */
	size_t len;
	char data[];			/* JSON and '\n' */
};

struct status_conn {
	int fd;
	uint64_t deadline_ms;
	char req[STATUS_REQUEST_MAX];
	size_t req_len;
	struct status_blob *blob;	/* the reply, or NULL: err */
	char err[96];
	const char *out;
	size_t out_len, out_off;
	bool writing;
};

struct status_srv {
	pthread_mutex_t mu;
	struct status_blob *blob;	/* last snapshot; under mu */

	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;
	ino_t sock_ino;
	int lfd;
	int wake[2];
	pthread_t thread;
	bool thread_started;
	struct status_conn conns[STATUS_MAX_CLIENTS];

	struct http_server *http;

	/* Refusal log flood guard (server thread only). */
	uint64_t log_second;
	unsigned log_count;
};

static struct status_blob *
status_blob_get(struct status_srv *srv)
{
	struct status_blob *b;

	pthread_mutex_lock(&srv->mu);
	if ((b = srv->blob) != NULL)
		b->refs++;
	pthread_mutex_unlock(&srv->mu);
	return b;
}

static void
status_blob_put(struct status_srv *srv, struct status_blob *b)
{
	bool last;

	if (b == NULL)
		return;
	pthread_mutex_lock(&srv->mu);
	last = --b->refs == 0;
	pthread_mutex_unlock(&srv->mu);
	if (last)
		free(b);
}

void
status_publish(struct status_srv *srv, json_t *snapshot)
{
	struct status_blob *b, *old;
	json_t *f;
	char *s;
	size_t len;

	if (srv == NULL || !json_is_object(snapshot)) {
		json_decref(snapshot);
		return;
	}
	f = status_filter(snapshot, status_schema);
	json_decref(snapshot);
	s = f != NULL ? json_dumps(f, JSON_COMPACT) : NULL;
	json_decref(f);
	if (s == NULL)
		return;
	len = strlen(s);
	if (len > STATUS_SNAPSHOT_MAX) {
		log_warnx("status: snapshot of %zu bytes over the %zu limit, "
		    "not published", len, STATUS_SNAPSHOT_MAX);
		free(s);
		return;
	}
	if ((b = malloc(sizeof(*b) + len + 1)) == NULL) {
		free(s);
		return;
	}
	b->refs = 1;
	b->published_ms = util_mono_ms();
	b->len = len + 1;
	memcpy(b->data, s, len);
	b->data[len] = '\n';
	free(s);

	pthread_mutex_lock(&srv->mu);
	old = srv->blob;
	srv->blob = b;
	pthread_mutex_unlock(&srv->mu);
	status_blob_put(srv, old);
}

/* ------------------------------------------------------------------ */
/* The control socket's thread.                                        */

static bool
status_log_ok(struct status_srv *srv)
{
	uint64_t s = util_mono_ms() / 1000;

	if (s != srv->log_second) {
		srv->log_second = s;
		srv->log_count = 0;
	}
	return ++srv->log_count <= 5;
}

/*
 * Best effort: one short line to a client about to be closed.  What the
 * client already sent is read first (a request line at most): closing a
 * socket with unread bytes resets it, and the client would lose the line.
 */
static void
status_refuse(int fd, const char *why)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "{\"error\":\"%s\"}\n", why);

	(void)recv(fd, line + n + 1, sizeof(line) - (size_t)n - 1,
	    MSG_DONTWAIT);
	(void)send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void
status_conn_close(struct status_srv *srv, struct status_conn *c)
{
	close(c->fd);
	status_blob_put(srv, c->blob);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void
status_conn_error(struct status_conn *c, const char *why)
{
	snprintf(c->err, sizeof(c->err), "{\"error\":\"%s\"}\n", why);
	c->out = c->err;
	c->out_len = strlen(c->err);
	c->out_off = 0;
	c->writing = true;
}

static void
status_accept(struct status_srv *srv)
{
	for (;;) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		struct status_conn *c = NULL;
		int fd;

		fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED &&
			    status_log_ok(srv))
				log_warn("status: accept");
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) ==
		    -1 || cl != sizeof(cred) || cred.uid != 0) {
			if (status_log_ok(srv))
				log_warnx("status: refused a client with uid "
				    "%ld pid %ld (root only)", cl ==
				    sizeof(cred) ? (long)cred.uid : -1L,
				    cl == sizeof(cred) ? (long)cred.pid : -1L);
			status_refuse(fd, "permission denied: root only");
			continue;
		}
		for (size_t i = 0; i < STATUS_MAX_CLIENTS; i++)
			if (srv->conns[i].fd == -1) {
				c = &srv->conns[i];
				break;
			}
		if (c == NULL) {
			log_debug("status", "busy: %d clients already",
			    STATUS_MAX_CLIENTS);
			status_refuse(fd, "busy");
			continue;
		}
		c->fd = fd;
		c->deadline_ms = util_mono_ms() + STATUS_CLIENT_DEADLINE_MS;
	}
}

/* A request line is complete: choose the reply. */
static void
status_answer(struct status_srv *srv, struct status_conn *c, size_t linelen)
{
	c->req[linelen] = '\0';
	if (linelen > 0 && c->req[linelen - 1] == '\r')
		c->req[linelen - 1] = '\0';
	if (strcmp(c->req, "status") != 0) {
		status_conn_error(c, "unknown request");
		return;
	}
	if ((c->blob = status_blob_get(srv)) == NULL) {
		status_conn_error(c, "no status yet: the agent is starting");
		return;
	}
	c->out = c->blob->data;
	c->out_len = c->blob->len;
	c->out_off = 0;
	c->writing = true;
}

static void
status_conn_read(struct status_srv *srv, struct status_conn *c)
{
	ssize_t n;
	char *nl;

	n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - c->req_len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		status_conn_close(srv, c);
		return;
	}
	c->req_len += (size_t)n;
	if ((nl = memchr(c->req, '\n', c->req_len)) != NULL)
		status_answer(srv, c, (size_t)(nl - c->req));
	else if (c->req_len == sizeof(c->req))
		status_conn_error(c, "request too long");
}

static void
status_conn_write(struct status_srv *srv, struct status_conn *c)
{
	ssize_t n;

	n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		status_conn_close(srv, c);
		return;
	}
	c->out_off += (size_t)n;
	if (c->out_off == c->out_len)
		status_conn_close(srv, c);
}

static void *
status_thread(void *arg)
{
	struct status_srv *srv = arg;
	struct pollfd pfd[2 + STATUS_MAX_CLIENTS];
	struct status_conn *who[2 + STATUS_MAX_CLIENTS];

	for (;;) {
		uint64_t now = util_mono_ms(), next = UINT64_MAX;
		nfds_t n = 0;
		int timeout, rc;

		for (size_t i = 0; i < STATUS_MAX_CLIENTS; i++) {
			struct status_conn *c = &srv->conns[i];

			if (c->fd == -1)
				continue;
			if (c->deadline_ms <= now) {
				log_debug("status", "client closed at its %d "
				    "ms deadline", STATUS_CLIENT_DEADLINE_MS);
				status_conn_close(srv, c);
				continue;
			}
			if (c->deadline_ms < next)
				next = c->deadline_ms;
		}
		pfd[n].fd = srv->wake[0];
		pfd[n].events = POLLIN;
		who[n++] = NULL;
		pfd[n].fd = srv->lfd;
		pfd[n].events = POLLIN;
		who[n++] = NULL;
		for (size_t i = 0; i < STATUS_MAX_CLIENTS; i++) {
			struct status_conn *c = &srv->conns[i];

			if (c->fd == -1)
				continue;
			pfd[n].fd = c->fd;
			pfd[n].events = c->writing ? POLLOUT : POLLIN;
			who[n++] = c;
		}
		timeout = next == UINT64_MAX ? -1 : (int)(next - now);
		rc = poll(pfd, n, timeout);
		if (rc == -1 && errno != EINTR) {
			log_warn("status: poll");
			return NULL;
		}
		if (rc <= 0)
			continue;
		if (pfd[0].revents != 0)
			return NULL;
		for (nfds_t i = 2; i < n; i++) {
			struct status_conn *c = who[i];

			if (pfd[i].revents == 0 || c->fd != pfd[i].fd)
				continue;
			if (c->writing)
				status_conn_write(srv, c);
			else
				status_conn_read(srv, c);
		}
		if (pfd[1].revents != 0)
			status_accept(srv);
	}
}

/* ------------------------------------------------------------------ */
/* Prometheus text exposition.                                         */

static long long
status_num(const json_t *o, const char *key, bool *ok)
{
	const json_t *v = json_object_get(o, key);

	*ok = json_is_integer(v);
	return *ok ? (long long)json_integer_value(v) : 0;
}

/* A label value: backslash, double quote and newline escaped. */
static void
status_prom_escape(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '"')
			fputs("\\\"", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void
status_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* tunnel="ID",peer="NAME or site id" */
static void
status_tunnel_labels(FILE *f, const json_t *t)
{
	const char *peer = json_string_value(json_object_get(t, "peer_name"));
	bool ok;
	long long id = status_num(t, "id", &ok);

	fprintf(f, "tunnel=\"%lld\",peer=\"", id);
	if (peer != NULL)
		status_prom_escape(f, peer);
	else if (json_is_integer(json_object_get(t, "peer_site")))
		fprintf(f, "%lld", status_num(t, "peer_site", &ok));
	fputc('"', f);
}

enum status_conv {
	SC_INT,		/* as is */
	SC_US,		/* microseconds -> seconds */
	SC_PERMILLE,	/* per mille -> ratio */
	SC_BOOL,	/* true -> 1 */
	SC_EQ,		/* string equal to arg -> 1, other string -> 0 */
};

/* One number per tunnel, from t[obj][field] (obj NULL: t[field]). */
struct status_tmetric {
	const char *name, *type, *help;
	const char *obj, *field;
	enum status_conv conv;
	const char *arg;		/* SC_EQ: the value that means 1 */
	const char *label, *value;	/* an extra label, or NULL */
};

static const struct status_tmetric status_tmetrics[] = {
	{ "meshwan_edge_tunnel_up", "gauge", "1 when the tunnel's state is up.",
	  NULL, "state", SC_EQ, "up", NULL, NULL },
	{ "meshwan_edge_tunnel_packets_total", "counter",
	  "Packets through the tunnel, by direction.",
	  NULL, "packets_in", SC_INT, NULL, "dir", "in" },
	{ "meshwan_edge_tunnel_packets_total", NULL, NULL,
	  NULL, "packets_out", SC_INT, NULL, "dir", "out" },
	{ "meshwan_edge_tunnel_bytes_total", "counter",
	  "Bytes through the tunnel, by direction.",
	  NULL, "bytes_in", SC_INT, NULL, "dir", "in" },
	{ "meshwan_edge_tunnel_bytes_total", NULL, NULL,
	  NULL, "bytes_out", SC_INT, NULL, "dir", "out" },
	{ "meshwan_edge_tunnel_peer_moves_total", "counter",
	  "Times the peer's NAT endpoint moved and was followed.",
	  NULL, "peer_moves", SC_INT, NULL, NULL, NULL },
	{ "meshwan_edge_tunnel_drops_total", "counter",
	  "Inbound packets dropped, by reason.",
	  "drops", "no_sa", SC_INT, NULL, "reason", "no_sa" },
	{ "meshwan_edge_tunnel_drops_total", NULL, NULL,
	  "drops", "auth", SC_INT, NULL, "reason", "auth" },
	{ "meshwan_edge_tunnel_drops_total", NULL, NULL,
	  "drops", "unknown_spi", SC_INT, NULL, "reason", "unknown_spi" },
	{ "meshwan_edge_tunnel_drops_total", NULL, NULL,
	  "drops", "replay", SC_INT, NULL, "reason", "replay" },
	{ "meshwan_edge_tunnel_drops_total", NULL, NULL,
	  "drops", "source", SC_INT, NULL, "reason", "source" },
	{ "meshwan_edge_bgp_established", "gauge",
	  "1 when the tunnel's BGP session is Established.",
	  "bgp", "state", SC_EQ, "Established", NULL, NULL },
	{ "meshwan_edge_bgp_uptime_seconds", "gauge",
	  "Time since the BGP session was established.",
	  "bgp", "uptime_s", SC_INT, NULL, NULL, NULL },
	{ "meshwan_edge_bgp_prefixes_received", "gauge",
	  "Prefixes accepted from the tunnel's BGP neighbour.",
	  "bgp", "prefixes_received", SC_INT, NULL, NULL, NULL },
	{ "meshwan_edge_bgp_prefixes_filtered", "gauge",
	  "Prefixes the tunnel's BGP neighbour announced that its inbound "
	  "list dropped (not its own: a hijack).",
	  "bgp", "prefixes_filtered", SC_INT, NULL, NULL, NULL },
	{ "meshwan_edge_bfd_up", "gauge", "1 when the BFD session is up.",
	  "bfd", "state", SC_EQ, "up", NULL, NULL },
	{ "meshwan_edge_health_up", "gauge",
	  "1 when the tunnel's path answers.",
	  "health", "up", SC_BOOL, NULL, NULL, NULL },
	{ "meshwan_edge_health_rtt_seconds", "gauge",
	  "Round-trip time through the tunnel.",
	  "health", "rtt_us", SC_US, NULL, NULL, NULL },
	{ "meshwan_edge_health_loss_ratio", "gauge",
	  "Share of probes lost (0 to 1).",
	  "health", "loss_permille", SC_PERMILLE, NULL, NULL, NULL },
	{ "meshwan_edge_health_jitter_seconds", "gauge",
	  "Variation of the round-trip time.",
	  "health", "jitter_us", SC_US, NULL, NULL, NULL },
};

/* The value line of m for tunnel t, when t has the field. */
static void
status_tmetric_line(FILE *f, const struct status_tmetric *m, const json_t *t)
{
	const json_t *o = m->obj != NULL ? json_object_get(t, m->obj) : t;
	const json_t *v = json_object_get(o, m->field);

	if (v == NULL)
		return;
	fprintf(f, "%s{", m->name);
	status_tunnel_labels(f, t);
	if (m->label != NULL)
		fprintf(f, ",%s=\"%s\"", m->label, m->value);
	fputs("} ", f);
	switch (m->conv) {
	case SC_INT:
		fprintf(f, "%lld\n", (long long)json_integer_value(v));
		break;
	case SC_US:
		fprintf(f, "%.6f\n", (double)json_integer_value(v) / 1e6);
		break;
	case SC_PERMILLE:
		fprintf(f, "%.3f\n", (double)json_integer_value(v) / 1e3);
		break;
	case SC_BOOL:
		fprintf(f, "%d\n", json_is_true(v) ? 1 : 0);
		break;
	case SC_EQ:
		/* FRR says "Established", msg.h "established". */
		fprintf(f, "%d\n", strcasecmp(json_string_value(v), m->arg) ==
		    0);
		break;
	}
}

/* One number per SA. */
struct status_smetric {
	const char *name, *type, *help, *field;
	bool boolean;
};

static const struct status_smetric status_smetrics[] = {
	{ "meshwan_edge_sa_packets_total", "counter",
	  "Packets through the SA.", "packets", false },
	{ "meshwan_edge_sa_bytes_total", "counter",
	  "Bytes through the SA.", "bytes", false },
	{ "meshwan_edge_sa_age_seconds", "gauge",
	  "Time since the SA was installed.", "age_s", false },
	{ "meshwan_edge_sa_epoch", "gauge",
	  "Key epoch the SA's key was derived in.", "sa_epoch", false },
	{ "meshwan_edge_sa_active", "gauge",
	  "1 for the SA in use (outbound) or accepted (inbound).", "active",
	  true },
};

static void
status_render_site(FILE *f, const json_t *s, uint64_t age_ms)
{
	const json_t *ctl = json_object_get(s, "controller");
	const json_t *ack = json_object_get(ctl, "last_ack");
	const char *str;
	long long v;
	bool ok;

	status_family(f, "meshwan_edge_info", "gauge",
	    "The agent's identity (labels); always 1.");
	fputs("meshwan_edge_info{site_id=\"", f);
	if (json_is_integer(json_object_get(s, "site_id")))
		fprintf(f, "%lld", status_num(s, "site_id", &ok));
	fputs("\",site_name=\"", f);
	if ((str = json_string_value(json_object_get(s, "site_name"))) != NULL)
		status_prom_escape(f, str);
	fputs("\",backend=\"", f);
	if ((str = json_string_value(json_object_get(s, "backend"))) != NULL)
		status_prom_escape(f, str);
	fputs("\",version=\"", f);
	if ((str = json_string_value(json_object_get(s, "version"))) != NULL)
		status_prom_escape(f, str);
	fputs("\"} 1\n", f);

	status_family(f, "meshwan_edge_status_age_seconds", "gauge",
	    "Time since the agent last published its status.");
	fprintf(f, "meshwan_edge_status_age_seconds %.3f\n",
	    (double)age_ms / 1e3);
	if ((v = status_num(s, "uptime_s", &ok)), ok) {
		status_family(f, "meshwan_edge_uptime_seconds", "gauge",
		    "Time since the agent started.");
		fprintf(f, "meshwan_edge_uptime_seconds %lld\n", v);
	}
	if ((str = json_string_value(json_object_get(ctl, "state"))) != NULL) {
		status_family(f, "meshwan_edge_controller_connected", "gauge",
		    "1 while the Session stream to the controller is up.");
		fprintf(f, "meshwan_edge_controller_connected %d\n",
		    strcmp(str, "connected") == 0);
		status_family(f, "meshwan_edge_controller_state", "gauge",
		    "The controller connection's state (label); always 1.");
		fputs("meshwan_edge_controller_state{state=\"", f);
		status_prom_escape(f, str);
		fputs("\"} 1\n", f);
	}
	if ((v = status_num(ctl, "since_s", &ok)), ok) {
		status_family(f, "meshwan_edge_controller_state_seconds",
		    "gauge", "Time the controller connection has been in its "
		    "state.");
		fprintf(f, "meshwan_edge_controller_state_seconds %lld\n", v);
	}
	if ((v = status_num(ctl, "intent_version", &ok)), ok) {
		status_family(f, "meshwan_edge_intent_version", "gauge",
		    "Newest intent version received.");
		fprintf(f, "meshwan_edge_intent_version %lld\n", v);
	}
	if ((v = status_num(ack, "version", &ok)), ok) {
		status_family(f, "meshwan_edge_intent_ack_version", "gauge",
		    "Intent version of the last acknowledgement.");
		fprintf(f, "meshwan_edge_intent_ack_version %lld\n", v);
	}
	if (json_is_boolean(json_object_get(ack, "ok"))) {
		status_family(f, "meshwan_edge_intent_ack_ok", "gauge",
		    "1 when the last intent was applied, 0 when it failed.");
		fprintf(f, "meshwan_edge_intent_ack_ok %d\n",
		    json_is_true(json_object_get(ack, "ok")) ? 1 : 0);
	}
	status_family(f, "meshwan_edge_tunnels", "gauge",
	    "Tunnels in the applied intent.");
	fprintf(f, "meshwan_edge_tunnels %zu\n",
	    json_array_size(json_object_get(s, "tunnels")));
}

static void
status_render(FILE *f, const json_t *s, uint64_t age_ms)
{
	const json_t *tuns = json_object_get(s, "tunnels");
	const char *last = NULL;
	size_t i, j, k;

	status_render_site(f, s, age_ms);

	status_family(f, "meshwan_edge_tunnel_state", "gauge",
	    "The tunnel's state (label); always 1.");
	for (i = 0; i < json_array_size(tuns); i++) {
		const json_t *t = json_array_get(tuns, i);
		const char *st = json_string_value(json_object_get(t, "state"));

		if (st == NULL)
			continue;
		fputs("meshwan_edge_tunnel_state{", f);
		status_tunnel_labels(f, t);
		fputs(",state=\"", f);
		status_prom_escape(f, st);
		fputs("\"} 1\n", f);
	}
	for (k = 0; k < ARRAY_SIZE(status_tmetrics); k++) {
		const struct status_tmetric *m = &status_tmetrics[k];

		if (last == NULL || strcmp(last, m->name) != 0)
			status_family(f, m->name, m->type, m->help);
		last = m->name;
		for (i = 0; i < json_array_size(tuns); i++)
			status_tmetric_line(f, m, json_array_get(tuns, i));
	}
	for (k = 0; k < ARRAY_SIZE(status_smetrics); k++) {
		const struct status_smetric *m = &status_smetrics[k];

		status_family(f, m->name, m->type, m->help);
		for (i = 0; i < json_array_size(tuns); i++) {
			const json_t *t = json_array_get(tuns, i);
			const json_t *sas = json_object_get(t, "sas");

			for (j = 0; j < json_array_size(sas); j++) {
				const json_t *sa = json_array_get(sas, j);
				const json_t *v = json_object_get(sa, m->field);
				const char *dir = json_string_value(
				    json_object_get(sa, "dir"));
				bool ok;
				long long spi = status_num(sa, "spi", &ok);

				if (v == NULL || dir == NULL || !ok)
					continue;
				fprintf(f, "%s{", m->name);
				status_tunnel_labels(f, t);
				fputs(",dir=\"", f);
				status_prom_escape(f, dir);
				fprintf(f, "\",spi=\"0x%08llx\"} %lld\n",
				    (unsigned long long)spi, m->boolean ?
				    (long long)json_is_true(v) :
				    (long long)json_integer_value(v));
			}
		}
	}
}

static void
status_http(void *arg, const struct http_request *req,
    struct http_response *resp)
{
	struct status_srv *srv = arg;
	const char *method = http_request_method(req);
	struct status_blob *b;
	json_t *s;
	FILE *f;

	resp->content_type = "text/plain; charset=utf-8";
	if (strcmp(http_request_path(req), "/metrics") != 0) {
		resp->status = 404;
		resp->body = strdup("not found: try /metrics\n");
		resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
		return;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		resp->status = 405;
		snprintf(resp->allow, sizeof(resp->allow), "GET, HEAD");
		return;
	}
	if ((b = status_blob_get(srv)) == NULL) {
		resp->status = 503;
		resp->body = strdup("no status yet: the agent is starting\n");
		resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
		return;
	}
	s = json_loadb(b->data, b->len, 0, NULL);
	if (s == NULL || (f = open_memstream(&resp->body,
	    &resp->body_len)) == NULL) {
		json_decref(s);
		status_blob_put(srv, b);
		resp->status = 500;
		return;
	}
	status_render(f, s, util_mono_ms() - b->published_ms);
	json_decref(s);
	status_blob_put(srv, b);
	if (fclose(f) != 0) {
		free(resp->body);
		resp->body = NULL;
		resp->body_len = 0;
		resp->status = 500;
		return;
	}
	resp->status = 200;
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* "a.b.c.d:port" or "[v6]:port" into host and port. */
static int
status_split_addr(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s;
	size_t hl;
	uint64_t p;

	if (colon == NULL || util_parse_u64(colon + 1, 0, 65535, &p) == -1)
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 2 || colon[-1] != ']')
			return -1;
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Start and stop.                                                     */

/*
 * A socket file left by an agent that died is replaced; a live one (it
 * accepts a connection) or anything that is not a socket is not touched.
 */
static int
status_clear_path(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : (log_warn("status: %s", path), -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("status: %s exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0) {
		close(fd);
		log_warnx("status: %s is served by another process (is "
		    "meshwan-edge already running?)", path);
		return -1;
	}
	close(fd);
	if (unlink(path) == -1 && errno != ENOENT) {
		log_warn("status: unlink %s", path);
		return -1;
	}
	return 0;
}

static int
status_listen(struct status_srv *srv, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (util_strcpy(sun.sun_path, sizeof(sun.sun_path), path) == -1 ||
	    path[0] != '/') {
		log_warnx("status: control socket %s: expected an absolute "
		    "path of at most %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	if (status_clear_path(path, &sun) == -1)
		return -1;
	srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (srv->lfd == -1) {
		log_warn("status: socket");
		return -1;
	}
	if (bind(srv->lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("status: bind %s", path);
		return -1;
	}
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	/* Mode before listen(): nobody can connect in between. */
	if (chmod(path, 0600) == -1 || lstat(path, &st) == -1) {
		log_warn("status: chmod %s", path);
		return -1;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	if (listen(srv->lfd, 16) == -1) {
		log_warn("status: listen %s", path);
		return -1;
	}
	return 0;
}

static int
status_start_metrics(struct status_srv *srv, const char *listen_addr)
{
	struct http_config hc;
	char host[64];

	memset(&hc, 0, sizeof(hc));
	if (status_split_addr(listen_addr, host, sizeof(host), &hc.port) ==
	    -1) {
		log_warnx("status: metrics_listen %s: expected a numeric "
		    "address:port or [v6]:port", listen_addr);
		return -1;
	}
	hc.address = host;
	hc.max_body = 0;
	hc.max_connections = STATUS_METRICS_CONNECTIONS;
	hc.max_per_ip = STATUS_METRICS_PER_ADDRESS;
	hc.timeout_s = STATUS_METRICS_TIMEOUT_S;
	if ((srv->http = http_start(&hc, status_http, srv)) == NULL)
		return -1;
	return 0;
}

struct status_srv *
status_start(const char *sock_path, const char *metrics_listen)
{
	struct status_srv *srv;
	sigset_t all, old;
	int err;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->lfd = srv->wake[0] = srv->wake[1] = -1;
	for (size_t i = 0; i < STATUS_MAX_CLIENTS; i++)
		srv->conns[i].fd = -1;
	pthread_mutex_init(&srv->mu, NULL);
	if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_warn("status: pipe");
		goto fail;
	}
	if (status_listen(srv, sock_path) == -1)
		goto fail;
	/* The threads take no signals: the agent's loop handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&srv->thread, NULL, status_thread, srv);
	srv->thread_started = err == 0;
	if (err == 0 && metrics_listen != NULL && metrics_listen[0] != '\0' &&
	    status_start_metrics(srv, metrics_listen) == -1)
		err = -1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		if (err > 0)
			log_warnx("status: pthread_create: %s", strerror(err));
		goto fail;
	}
	log_info("status: control socket %s", srv->path);
	if (srv->http != NULL)
		log_info("status: /metrics on %s (port %u)", metrics_listen,
		    (unsigned)http_port(srv->http));
	return srv;
fail:
	status_stop(srv);
	return NULL;
}

uint16_t
status_metrics_port(const struct status_srv *srv)
{
	return srv != NULL && srv->http != NULL ? http_port(srv->http) : 0;
}

void
status_stop(struct status_srv *srv)
{
	struct stat st;

	if (srv == NULL)
		return;
	http_stop(srv->http);
	if (srv->thread_started) {
		(void)write(srv->wake[1], "x", 1);
		pthread_join(srv->thread, NULL);
	}
	for (size_t i = 0; i < STATUS_MAX_CLIENTS; i++)
		if (srv->conns[i].fd != -1)
			status_conn_close(srv, &srv->conns[i]);
	if (srv->lfd != -1) {
		close(srv->lfd);
		/* Only our own socket: another agent may have replaced it. */
		if (srv->path[0] != '\0' && lstat(srv->path, &st) == 0 &&
		    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
			unlink(srv->path);
	}
	if (srv->wake[0] != -1)
		close(srv->wake[0]);
	if (srv->wake[1] != -1)
		close(srv->wake[1]);
	status_blob_put(srv, srv->blob);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
}

/* ------------------------------------------------------------------ */
/* The client: `meshwan-edge status`.                                  */

#define STATUS_REPLY_MAX	(STATUS_SNAPSHOT_MAX + 1024)
#define STATUS_CLIENT_TIMEOUT_S	5

/* Cells of a table, row after row; printed with aligned columns. */
struct status_table {
	size_t ncols;
	size_t n, cap;
	char **cell;
	bool failed;
};

/*
 * Terminal safety: what the agent reports (names come from the
 * controller) is printed without control characters.
 */
static void
status_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void
status_cell(struct status_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
status_cell(struct status_table *t, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	void *nv;

	if (t->failed)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	if (s == NULL || (nv = util_grow(t->cell, &t->cap, t->n + 1,
	    sizeof(*t->cell), 64)) == NULL) {
		free(s);
		t->failed = true;
		return;
	}
	t->cell = nv;
	status_sanitize(s);
	t->cell[t->n++] = s;
}

/* A string field, or "-" when it is not there. */
static void
status_cell_str(struct status_table *t, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	status_cell(t, "%s", s != NULL && s[0] != '\0' ? s : "-");
}

static void
status_cell_num(struct status_table *t, const json_t *o, const char *key)
{
	bool ok;
	long long v = status_num(o, key, &ok);

	if (ok)
		status_cell(t, "%lld", v);
	else
		status_cell(t, "-");
}

/* 59s, 5m03s, 2h05m03s, 3d04h05m */
static void
status_fmt_dur(char *buf, size_t len, long long s)
{
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm%02llds", s / 3600,
		    s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lldd%02lldh%02lldm", s / 86400,
		    s / 3600 % 24, s / 60 % 60);
}

static void
status_cell_dur(struct status_table *t, const json_t *o, const char *key)
{
	char buf[32];
	bool ok;
	long long v = status_num(o, key, &ok);

	if (!ok) {
		status_cell(t, "-");
		return;
	}
	status_fmt_dur(buf, sizeof(buf), v);
	status_cell(t, "%s", buf);
}

/* Microseconds as milliseconds with three decimals. */
static void
status_cell_us(struct status_table *t, const json_t *o, const char *key)
{
	bool ok;
	long long v = status_num(o, key, &ok);

	if (ok)
		status_cell(t, "%lld.%03lldms", v / 1000, v % 1000);
	else
		status_cell(t, "-");
}

static void
status_table_print(struct status_table *t, FILE *out)
{
	size_t w[16] = { 0 }, c;

	if (t->ncols == 0 || t->ncols > ARRAY_SIZE(w))
		return;
	for (size_t i = 0; i < t->n; i++) {
		size_t l = strlen(t->cell[i]);

		if (l > w[i % t->ncols])
			w[i % t->ncols] = l;
	}
	for (size_t i = 0; i < t->n; i++) {
		c = i % t->ncols;
		if (c + 1 == t->ncols)
			fprintf(out, "%s\n", t->cell[i]);
		else
			fprintf(out, "%-*s  ", (int)w[c], t->cell[i]);
	}
}

static void
status_table_free(struct status_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cell[i]);
	free(t->cell);
	memset(t, 0, sizeof(*t));
}

static void
status_header(struct status_table *t, const char *const *names, size_t n)
{
	t->ncols = n;
	for (size_t i = 0; i < n; i++)
		status_cell(t, "%s", names[i]);
}

static const char *const status_tun_cols[] = {
	"TUNNEL", "PEER", "DEVICE", "LINK", "REMOTE", "INNER", "STATE",
};
static const char *const status_traffic_cols[] = {
	"TUNNEL", "PKTS-IN", "PKTS-OUT", "BYTES-IN", "BYTES-OUT",
	"DROP-NO-SA", "DROP-AUTH", "DROP-REPLAY", "DROP-SOURCE",
};
static const char *const status_sa_cols[] = {
	"TUNNEL", "DIR", "SPI", "EPOCH", "AGE", "PACKETS", "BYTES", "ACTIVE",
};
static const char *const status_route_cols[] = {
	"TUNNEL", "BGP-NEIGHBOR", "BGP", "BGP-UP", "PREFIXES", "BFD",
	"HEALTH", "RTT", "LOSS", "JITTER",
};

static void
status_tables(const json_t *tuns, struct status_table tb[4])
{
	status_header(&tb[0], status_tun_cols, ARRAY_SIZE(status_tun_cols));
	status_header(&tb[1], status_traffic_cols,
	    ARRAY_SIZE(status_traffic_cols));
	status_header(&tb[2], status_sa_cols, ARRAY_SIZE(status_sa_cols));
	status_header(&tb[3], status_route_cols,
	    ARRAY_SIZE(status_route_cols));
	for (size_t i = 0; i < json_array_size(tuns); i++) {
		const json_t *t = json_array_get(tuns, i);
		const json_t *d = json_object_get(t, "drops");
		const json_t *bgp = json_object_get(t, "bgp");
		const json_t *h = json_object_get(t, "health");
		const json_t *sas = json_object_get(t, "sas");
		const char *pn = json_string_value(json_object_get(t,
		    "peer_name"));
		bool ok;
		long long id = status_num(t, "id", &ok);
		long long ps = status_num(t, "peer_site", &ok);
		long long v;

		status_cell(&tb[0], "%lld", id);
		if (ok)
			status_cell(&tb[0], "%lld%s%s", ps, pn ? " " : "",
			    pn ? pn : "");
		else
			status_cell(&tb[0], "%s", pn ? pn : "-");
		status_cell_str(&tb[0], t, "device");
		status_cell_str(&tb[0], t, "local_link");
		/* A peer followed through NAT: where it is now, and how often. */
		if ((v = status_num(t, "peer_moves", &ok)), ok && v > 0 &&
		    json_string_value(json_object_get(t, "remote")) != NULL)
			status_cell(&tb[0], "%s (moved %lldx)", json_string_value(
			    json_object_get(t, "remote")), v);
		else
			status_cell_str(&tb[0], t, "remote");
		status_cell_str(&tb[0], t, "inner_local");
		status_cell_str(&tb[0], t, "state");

		status_cell(&tb[1], "%lld", id);
		status_cell_num(&tb[1], t, "packets_in");
		status_cell_num(&tb[1], t, "packets_out");
		status_cell_num(&tb[1], t, "bytes_in");
		status_cell_num(&tb[1], t, "bytes_out");
		status_cell_num(&tb[1], d, "no_sa");
		status_cell_num(&tb[1], d, "auth");
		status_cell_num(&tb[1], d, "replay");
		status_cell_num(&tb[1], d, "source");

		for (size_t j = 0; j < json_array_size(sas); j++) {
			const json_t *sa = json_array_get(sas, j);
			const json_t *act = json_object_get(sa, "active");

			status_cell(&tb[2], "%lld", id);
			status_cell_str(&tb[2], sa, "dir");
			if ((v = status_num(sa, "spi", &ok)), ok)
				status_cell(&tb[2], "0x%08llx",
				    (unsigned long long)v);
			else
				status_cell(&tb[2], "-");
			status_cell_num(&tb[2], sa, "sa_epoch");
			status_cell_dur(&tb[2], sa, "age_s");
			status_cell_num(&tb[2], sa, "packets");
			status_cell_num(&tb[2], sa, "bytes");
			status_cell(&tb[2], "%s", act == NULL ? "-" :
			    json_is_true(act) ? "yes" : "no");
		}

		status_cell(&tb[3], "%lld", id);
		status_cell_str(&tb[3], bgp, "neighbor");
		status_cell_str(&tb[3], bgp, "state");
		status_cell_dur(&tb[3], bgp, "uptime_s");
		status_cell_num(&tb[3], bgp, "prefixes_received");
		status_cell_str(&tb[3], json_object_get(t, "bfd"), "state");
		if (json_object_get(h, "up") == NULL)
			status_cell(&tb[3], "-");
		else
			status_cell(&tb[3], "%s", json_is_true(
			    json_object_get(h, "up")) ? "up" : "down");
		status_cell_us(&tb[3], h, "rtt_us");
		if ((v = status_num(h, "loss_permille", &ok)), ok)
			status_cell(&tb[3], "%lld.%lld%%", v / 10, v % 10);
		else
			status_cell(&tb[3], "-");
		status_cell_us(&tb[3], h, "jitter_us");
	}
}

/* A string field or dflt. */
static const char *
status_str(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : dflt;
}

/* The site, controller and intent lines above the tables. */
static void
status_print_head(const json_t *s, FILE *out)
{
	const json_t *ctl = json_object_get(s, "controller");
	const json_t *ack = json_object_get(ctl, "last_ack");
	const char *name = status_str(s, "site_name", NULL);
	struct status_table t = { .ncols = 2 };
	char dur[32];
	bool ok;
	long long v;

	status_cell(&t, "site");
	if ((v = status_num(s, "site_id", &ok)), ok)
		status_cell(&t, "%lld%s%s%s", v, name ? " (" : "",
		    name ? name : "", name ? ")" : "");
	else
		status_cell(&t, "- (not enrolled)");

	status_cell(&t, "agent");
	v = status_num(s, "uptime_s", &ok);
	status_fmt_dur(dur, sizeof(dur), v);
	status_cell(&t, "%s, backend %s, up %s", status_str(s, "version", "-"),
	    status_str(s, "backend", "-"), ok ? dur : "-");

	status_cell(&t, "controller");
	v = status_num(ctl, "since_s", &ok);
	status_fmt_dur(dur, sizeof(dur), v);
	status_cell(&t, "%s %s%s%s", status_str(ctl, "target", "-"),
	    status_str(ctl, "state", "unknown"), ok ? " for " : "",
	    ok ? dur : "");

	status_cell(&t, "intent");
	v = status_num(ctl, "intent_version", &ok);
	if (!ok)
		status_cell(&t, "none yet");
	else if (ack == NULL)
		status_cell(&t, "version %lld, not acknowledged yet", v);
	else {
		const char *why = status_str(ack, "reason", "");
		char av[24] = "-";
		bool aok;
		long long a = status_num(ack, "version", &aok);

		if (aok)
			snprintf(av, sizeof(av), "%lld", a);
		status_cell(&t, "version %lld, last ack %s %s%s%s", v, av,
		    json_is_true(json_object_get(ack, "ok")) ? "ok" : "failed",
		    why[0] != '\0' ? ": " : "", why);
	}
	status_table_print(&t, out);
	status_table_free(&t);
}

static int
status_print(const json_t *s, FILE *out)
{
	const json_t *tuns = json_object_get(s, "tunnels");
	struct status_table tb[4];
	int rc = 0;

	memset(tb, 0, sizeof(tb));
	status_print_head(s, out);
	if (json_array_size(tuns) == 0) {
		fprintf(out, "\nno tunnels\n");
		return 0;
	}
	status_tables(tuns, tb);
	for (size_t i = 0; i < ARRAY_SIZE(tb); i++) {
		if (tb[i].failed)
			rc = -1;
		else if (tb[i].n > tb[i].ncols) {
			fputc('\n', out);
			status_table_print(&tb[i], out);
		}
		status_table_free(&tb[i]);
	}
	return rc;
}

/* The whole reply, up to STATUS_REPLY_MAX bytes and EOF; malloc'd. */
static char *
status_read_all(int fd, size_t *len)
{
	size_t cap = 0, n = 0;
	char *buf = NULL;

	for (;;) {
		void *nb;
		ssize_t r;

		if (n == STATUS_REPLY_MAX) {
			log_warnx("status: reply larger than %zu bytes",
			    (size_t)STATUS_REPLY_MAX);
			break;
		}
		if ((nb = util_grow(buf, &cap, n + 4096, 1, 65536)) == NULL)
			break;
		buf = nb;
		r = recv(fd, buf + n, (cap < STATUS_REPLY_MAX ? cap :
		    STATUS_REPLY_MAX) - n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		/* A refusal may end in a reset: keep what came before it. */
		if (r == 0 || (r < 0 && errno == ECONNRESET && n > 0)) {
			*len = n;
			return buf;
		}
		if (r < 0) {
			log_warn("status: reading the reply");
			break;
		}
		n += (size_t)r;
	}
	free(buf);
	return NULL;
}

int
status_client(const char *sock_path, bool json, FILE *out)
{
	struct timeval tv = { STATUS_CLIENT_TIMEOUT_S, 0 };
	struct sockaddr_un sun;
	json_t *reply = NULL, *s = NULL;
	json_error_t jerr;
	const char *err;
	char *buf = NULL;
	size_t len = 0;
	int fd = -1, rc = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (util_strcpy(sun.sun_path, sizeof(sun.sun_path), sock_path) ==
	    -1) {
		log_warnx("status: %s: path too long for a socket", sock_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("status: socket");
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("status: cannot reach the agent at %s%s", sock_path,
		    errno == EACCES ? " (root only)" :
		    errno == ENOENT || errno == ECONNREFUSED ?
		    " (is meshwan-edge running?)" : "");
		goto out;
	}
	/*
	 * A refused client may find the socket closed before it sends: the
	 * reason is still there to read, so a failed send is not the end.
	 */
	(void)send(fd, "status\n", 7, MSG_NOSIGNAL);
	if ((buf = status_read_all(fd, &len)) == NULL)
		goto out;
	if ((reply = json_loadb(buf, len, 0, &jerr)) == NULL ||
	    !json_is_object(reply)) {
		log_warnx("status: the agent's reply is not a JSON object");
		goto out;
	}
	if ((err = json_string_value(json_object_get(reply, "error"))) !=
	    NULL) {
		char why[128];

		snprintf(why, sizeof(why), "%s", err);
		status_sanitize(why);
		log_warnx("status: the agent refused: %s", why);
		goto out;
	}
	/* The client filters too: an older agent cannot make it leak. */
	if ((s = status_filter(reply, status_schema)) == NULL)
		goto out;
	if (json) {
		if (json_dumpf(s, out, JSON_INDENT(2)) == -1)
			goto out;
		fputc('\n', out);
		rc = 0;
	} else
		rc = status_print(s, out);
out:
	json_decref(s);
	json_decref(reply);
	free(buf);
	close(fd);
	return rc;
}
