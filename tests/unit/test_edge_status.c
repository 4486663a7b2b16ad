/*
 * test_edge_status.c — `meshwan-edge status` and /metrics (status.c).
 *
 * A snapshot is published and read back through the real control socket
 * (JSON and tables) and the real HTTP endpoint (every value of the
 * snapshot present in the Prometheus text, label values escaped).  The
 * bounds of status.h are exercised: a non-root peer is refused even when
 * the socket's mode would let it in, one client more than
 * STATUS_MAX_CLIENTS is told "busy", silent, dribbling and non-reading
 * clients are closed at the deadline while others are served, and a
 * publish never waits for them.  Fields outside the schema (a key, a
 * password) never reach any output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>

#include "edge-agent/status.h"
#include "lib/log.h"
#include "lib/util.h"

static char dir[64];
static char sock[100];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mw-status-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	chmod(dir, 0755);	/* the nobody child must reach the socket */
	snprintf(sock, sizeof(sock), "%.40s/control.sock", dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(sock);
	rmdir(dir);
	return 0;
}

/* A snapshot as agent.c builds it: every field of the schema. */
static json_t *
snapshot(size_t n_tunnels, const char *peer_name)
{
	json_t *tuns = json_array();
	json_t *s;

	for (size_t i = 0; i < n_tunnels; i++) {
		json_t *t = json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,"
		    "s:I,s:s,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},"
		    "s:[{s:s,s:I,s:I,s:I,s:I,s:I,s:b},"
		    "{s:s,s:I,s:I,s:I,s:I,s:I,s:b}],"
		    "s:{s:s,s:s,s:I,s:I},s:{s:s},s:{s:b,s:I,s:I,s:I}}",
		    "id", (json_int_t)(12 + i), "peer_site", (json_int_t)2,
		    "peer_name", peer_name, "device", "mw12",
		    "local_link", "inet", "remote", "198.51.100.2:4500",
		    "inner_local", "100.64.0.0/31", "encap", "vxlan",
		    "vni", (json_int_t)(10000 + i), "state", "up",
		    "packets_in", (json_int_t)1001, "packets_out",
		    (json_int_t)1002, "bytes_in", (json_int_t)120003,
		    "bytes_out", (json_int_t)120004,
		    "drops", "no_sa", (json_int_t)5, "auth", (json_int_t)6,
		    "replay", (json_int_t)7, "source", (json_int_t)8,
		    "sas",
		    "dir", "in", "spi", (json_int_t)0xc0010000 + (json_int_t)i,
		    "sa_epoch", (json_int_t)3, "age_s", (json_int_t)75,
		    "packets", (json_int_t)991, "bytes", (json_int_t)99001,
		    "active", 1,
		    "dir", "out", "spi", (json_int_t)0xd0020000 + (json_int_t)i,
		    "sa_epoch", (json_int_t)4, "age_s", (json_int_t)3700,
		    "packets", (json_int_t)992, "bytes", (json_int_t)99002,
		    "active", 0,
		    "bgp", "neighbor", "100.64.0.1", "state", "Established",
		    "uptime_s", (json_int_t)321, "prefixes_received",
		    (json_int_t)4,
		    "bfd", "state", "up",
		    "health", "up", 1, "rtt_us", (json_int_t)1250,
		    "loss_permille", (json_int_t)15, "jitter_us",
		    (json_int_t)40);

		assert_non_null(t);
		json_array_append_new(tuns, t);
	}
	s = json_pack("{s:I,s:s,s:s,s:s,s:I,s:{s:s,s:s,s:I,s:I,"
	    "s:{s:I,s:b,s:s}},s:o}",
	    "site_id", (json_int_t)1, "site_name", "site-a", "backend", "uesp",
	    "version", "meshwan-edge 0.1", "uptime_s", (json_int_t)3723,
	    "controller", "target", "192.0.2.1:7443", "state", "connected",
	    "since_s", (json_int_t)61, "intent_version", (json_int_t)9,
	    "last_ack", "version", (json_int_t)9, "ok", 1, "reason", "",
	    "tunnels", tuns);
	assert_non_null(s);
	return s;
}

/* status_client's output and return code. */
static int
client(bool json, char **out)
{
	size_t len = 0;
	FILE *f;
	int rc;

	*out = NULL;
	f = open_memstream(out, &len);
	assert_non_null(f);
	rc = status_client(sock, json, f);
	fclose(f);
	return rc;
}

static int
connect_sock(void)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Everything the server sends until it closes (or ms pass: -1). */
static ssize_t
read_until_close(int fd, char *buf, size_t len, int ms)
{
	uint64_t end = util_mono_ms() + (uint64_t)ms;
	size_t n = 0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t now = util_mono_ms();
		ssize_t r;

		if (now >= end)
			return -1;
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		r = recv(fd, buf + n, len - 1 - n, 0);
		if (r <= 0) {
			buf[n] = '\0';
			return r == 0 ? (ssize_t)n : -1;
		}
		n += (size_t)r;
		if (n == len - 1)
			return -1;
	}
}

/* Publish, read back as JSON (the same document) and as tables. */
static void
test_roundtrip(void **state)
{
	struct status_srv *srv;
	json_t *want, *got;
	struct stat st;
	char *out;

	(void)state;
	srv = status_start(sock, NULL);
	assert_non_null(srv);
	assert_int_equal(lstat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(status_metrics_port(srv), 0);

	/* Nothing published yet: the client says so. */
	assert_int_equal(client(true, &out), -1);
	free(out);

	want = snapshot(2, "site-b");
	json_incref(want);
	status_publish(srv, want);
	assert_int_equal(client(true, &out), 0);
	got = json_loads(out, 0, NULL);
	assert_non_null(got);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(out);

	assert_int_equal(client(false, &out), 0);
	printf("%s", out);
	assert_non_null(strstr(out, "site        1 (site-a)\n"));
	assert_non_null(strstr(out, "meshwan-edge 0.1, backend uesp, "
	    "up 1h02m03s"));
	assert_non_null(strstr(out, "192.0.2.1:7443 connected for 1m01s"));
	assert_non_null(strstr(out, "version 9, last ack 9 ok"));
	assert_non_null(strstr(out, "12      2 site-b  mw12    inet  "
	    "198.51.100.2:4500  100.64.0.0/31  up"));
	assert_non_null(strstr(out, "\n12      1001     1002      120003    "
	    "120004     5           6          7            8\n"));
	assert_non_null(strstr(out, "12      in   0xc0010000  3      1m15s     "
	    "991      99001  yes\n"));
	assert_non_null(strstr(out, "13      out  0xd0020001  4      1h01m40s  "
	    "992      99002  no\n"));
	assert_non_null(strstr(out, "12      100.64.0.1    Established  5m21s"
	    "   4         up   up      1.250ms  1.5%  0.040ms\n"));
	free(out);

	/* At most STATUS_SAS_MAX SAs a tunnel are kept. */
	want = snapshot(1, "site-b");
	{
		json_t *sas = json_object_get(json_array_get(json_object_get(
		    want, "tunnels"), 0), "sas");

		while (json_array_size(sas) < STATUS_SAS_MAX + 4)
			json_array_append(sas, json_array_get(sas, 0));
	}
	status_publish(srv, want);
	assert_int_equal(client(true, &out), 0);
	got = json_loads(out, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(json_array_get(
	    json_object_get(got, "tunnels"), 0), "sas")), STATUS_SAS_MAX);
	json_decref(got);
	free(out);

	/* A second publish replaces the first. */
	status_publish(srv, snapshot(0, "x"));
	assert_int_equal(client(false, &out), 0);
	assert_non_null(strstr(out, "no tunnels"));
	free(out);

	status_publish(NULL, snapshot(1, "y"));		/* stolen, freed */
	status_publish(srv, json_string("not an object"));
	status_stop(srv);
	assert_int_equal(lstat(sock, &st), -1);
	assert_int_equal(client(true, &out), -1);
	free(out);
}

/*
 * Root only.  With the file's mode 0600 a non-root process cannot
 * connect; with the mode opened by mistake, SO_PEERCRED still refuses it
 * before one byte of the snapshot is sent.
 */
static void
test_non_root(void **state)
{
	struct status_srv *srv;
	struct passwd *pw = getpwnam("nobody");
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(pw);
	srv = status_start(sock, NULL);
	assert_non_null(srv);
	status_publish(srv, snapshot(1, "secret-peer-name"));

	for (int round = 0; round < 2; round++) {
		if (round == 1)
			assert_int_equal(chmod(sock, 0666), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char buf[4096];
			ssize_t n;
			int fd;

			if (setgroups(0, NULL) == -1 ||
			    setgid(pw->pw_gid) == -1 ||
			    setuid(pw->pw_uid) == -1)
				_exit(10);
			fd = connect_sock();
			if (round == 0)
				_exit(fd == -1 && errno == EACCES ? 0 : 11);
			if (fd == -1)
				_exit(12);
			(void)send(fd, "status\n", 7, MSG_NOSIGNAL);
			n = read_until_close(fd, buf, sizeof(buf), 3000);
			if (n < 0)
				_exit(13);
			if (strstr(buf, "secret-peer-name") != NULL)
				_exit(14);
			if (strstr(buf, "root only") == NULL)
				_exit(15);
			/* The client reports it as a failure. */
			_exit(status_client(sock, true, stdout) == -1 ? 0 :
			    16);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	status_stop(srv);
}

/*
 * The bounds: STATUS_MAX_CLIENTS silent clients hold every slot; one more
 * is told "busy" at once, a publish does not wait, and the silent ones
 * are closed at the deadline, after which a client is served again.
 */
static void
test_bounds(void **state)
{
	struct status_srv *srv;
	int fds[STATUS_MAX_CLIENTS], fd, big;
	uint64_t t0, took;
	char buf[512];
	char *out;
	ssize_t n;

	(void)state;
	srv = status_start(sock, NULL);
	assert_non_null(srv);
	status_publish(srv, snapshot(1, "site-b"));

	/* A request longer than STATUS_REQUEST_MAX, an unknown one. */
	fd = connect_sock();
	memset(buf, 'a', STATUS_REQUEST_MAX);
	assert_int_equal(send(fd, buf, STATUS_REQUEST_MAX, 0),
	    STATUS_REQUEST_MAX);
	assert_true(read_until_close(fd, buf, sizeof(buf), 1000) > 0);
	assert_string_equal(buf, "{\"error\":\"request too long\"}\n");
	close(fd);
	fd = connect_sock();
	assert_int_equal(send(fd, "keys\n", 5, 0), 5);
	assert_true(read_until_close(fd, buf, sizeof(buf), 1000) > 0);
	assert_string_equal(buf, "{\"error\":\"unknown request\"}\n");
	close(fd);

	/* Fill every slot: one silent, one dribbling, the rest silent. */
	t0 = util_mono_ms();
	for (int i = 0; i < STATUS_MAX_CLIENTS; i++) {
		fds[i] = connect_sock();
		assert_true(fds[i] >= 0);
	}
	assert_int_equal(send(fds[1], "sta", 3, 0), 3);
	/* The next one is refused at once. */
	usleep(100 * 1000);	/* the server has accepted the eight */
	fd = connect_sock();
	assert_true(fd >= 0);
	n = read_until_close(fd, buf, sizeof(buf), 1000);
	assert_true(n > 0);
	assert_string_equal(buf, "{\"error\":\"busy\"}\n");
	close(fd);
	assert_int_equal(client(true, &out), -1);
	free(out);

	/* Publishing does not wait for the clients. */
	for (int i = 0; i < 20; i++) {
		json_t *snap = snapshot(4, "site-b");
		uint64_t p0 = util_mono_ms();

		status_publish(srv, snap);
		assert_true(util_mono_ms() - p0 < STATUS_CLIENT_DEADLINE_MS / 8);
	}
	assert_int_equal(send(fds[1], "t", 1, 0), 1);

	/* Closed at the deadline, not before, nothing sent. */
	for (int i = 0; i < STATUS_MAX_CLIENTS; i++) {
		n = read_until_close(fds[i], buf, sizeof(buf),
		    STATUS_CLIENT_DEADLINE_MS + 2000);
		assert_int_equal(n, 0);
		close(fds[i]);
	}
	took = util_mono_ms() - t0;
	printf("silent clients closed after %llu ms\n",
	    (unsigned long long)took);
	assert_true(took >= STATUS_CLIENT_DEADLINE_MS - 50);
	assert_true(took < STATUS_CLIENT_DEADLINE_MS + 2000);
	assert_int_equal(client(true, &out), 0);
	free(out);

	/*
	 * A client that asks for a large snapshot and never reads: the
	 * reply does not fit the socket buffers, the server does not block
	 * on it and serves others meanwhile; it goes at the deadline.
	 */
	status_publish(srv, snapshot(600, "site-b"));
	big = connect_sock();
	t0 = util_mono_ms();
	assert_int_equal(send(big, "status\n", 7, 0), 7);
	{
		json_t *j;

		assert_int_equal(client(true, &out), 0);
		j = json_loads(out, 0, NULL);
		assert_int_equal(json_array_size(json_object_get(j, "tunnels")),
		    600);
		json_decref(j);
		free(out);
	}
	took = util_mono_ms() - t0;
	printf("another client read 600 tunnels in %llu ms\n",
	    (unsigned long long)took);
	/* Before the stuck client's deadline: the server did not wait. */
	assert_true(took < STATUS_CLIENT_DEADLINE_MS);
	usleep((STATUS_CLIENT_DEADLINE_MS + 300) * 1000);
	{
		/* Whatever was buffered, then EOF (or a reset). */
		char *sink = malloc((size_t)64 << 20);
		ssize_t r;

		assert_non_null(sink);
		r = read_until_close(big, sink, (size_t)64 << 20, 2000);
		/* Closed, with the reply cut short. */
		assert_true(r > 0);
		assert_null(json_loadb(sink, (size_t)r, 0, NULL));
		free(sink);
	}
	close(big);
	status_stop(srv);
}

/* A stale socket is replaced; a live one or a plain file is not touched. */
static void
test_socket_path(void **state)
{
	struct sockaddr_un sun;
	struct status_srv *a, *b;
	struct stat st;
	int fd;

	(void)state;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);				/* left behind: stale */
	a = status_start(sock, NULL);
	assert_non_null(a);
	b = status_start(sock, NULL);		/* a serves it */
	assert_null(b);
	status_stop(a);
	assert_int_equal(lstat(sock, &st), -1);

	fd = open(sock, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_null(status_start(sock, NULL));
	assert_int_equal(lstat(sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(sock);
	assert_null(status_start("relative.sock", NULL));
	assert_null(status_start(sock, "localhost:9464"));
	assert_int_equal(lstat(sock, &st), -1);
}

struct body {
	char *buf;
	size_t len;
};

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	char *nb = realloc(b->buf, b->len + n + 1);

	assert_non_null(nb);
	b->buf = nb;
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

static long
http_get(uint16_t port, const char *method, const char *path, char **body)
{
	struct body b = { NULL, 0 };
	CURL *c = curl_easy_init();
	char url[128];
	long code = 0;

	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port,
	    path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (body != NULL)
		*body = b.buf != NULL ? b.buf : strdup("");
	else
		free(b.buf);
	return code;
}

/*
 * One sample line of the text format: name, {labels} with escaped
 * values, a space, a number.  Returns false when malformed; fills the
 * unescaped labels as "k=v,k=v" for matching.
 */
static bool
parse_sample(const char *line, char *name, size_t nlen, char *labels,
    size_t llen, double *value)
{
	const char *p = line;
	size_t n = 0, l = 0;
	char *end;

	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
	    *p == '_' || *p == ':' || (n > 0 && *p >= '0' && *p <= '9')) {
		if (n + 1 >= nlen)
			return false;
		name[n++] = *p++;
	}
	name[n] = '\0';
	labels[0] = '\0';
	if (n == 0)
		return false;
	if (*p == '{') {
		p++;
		while (*p != '}') {
			while ((*p >= 'a' && *p <= 'z') || *p == '_') {
				if (l + 2 >= llen)
					return false;
				labels[l++] = *p++;
			}
			if (p[0] != '=' || p[1] != '"')
				return false;
			labels[l++] = '=';
			p += 2;
			while (*p != '"') {
				char ch = *p++;

				if (ch == '\0' || ch == '\n')
					return false;
				if (ch == '\\') {
					ch = *p++;
					if (ch == 'n')
						ch = '\n';
					else if (ch != '\\' && ch != '"')
						return false;
				}
				if (l + 2 >= llen)
					return false;
				labels[l++] = ch;
			}
			p++;
			if (*p == ',') {
				labels[l++] = ',';
				p++;
			} else if (*p != '}')
				return false;
		}
		p++;
		labels[l] = '\0';
	}
	if (*p != ' ')
		return false;
	*value = strtod(p + 1, &end);
	return end != p + 1 && *end == '\0';
}

struct want {
	const char *name, *labels;
	double value;
};

/* Every line well formed; every wanted sample present with its value. */
static void
check_metrics(char *text, const struct want *w, size_t n_want)
{
	bool *seen = calloc(n_want, sizeof(bool));
	char *save = NULL;

	assert_non_null(seen);
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[128], labels[512];
		double v;

		if (strncmp(line, "# HELP ", 7) == 0 ||
		    strncmp(line, "# TYPE ", 7) == 0)
			continue;
		if (!parse_sample(line, name, sizeof(name), labels,
		    sizeof(labels), &v))
			fail_msg("malformed line: %s", line);
		for (size_t i = 0; i < n_want; i++)
			if (strcmp(name, w[i].name) == 0 &&
			    strcmp(labels, w[i].labels) == 0) {
				if (v < w[i].value - 1e-9 ||
				    v > w[i].value + 1e-9)
					fail_msg("%s{%s} = %g, want %g", name,
					    labels, v, w[i].value);
				seen[i] = true;
			}
	}
	for (size_t i = 0; i < n_want; i++)
		if (!seen[i])
			fail_msg("missing %s{%s}", w[i].name, w[i].labels);
	free(seen);
}

#define T12 "tunnel=12,peer=we\"ird\\pe\ner"
static const struct want metrics_want[] = {
	{ "meshwan_edge_info", "site_id=1,site_name=site-a,backend=uesp,"
	  "version=meshwan-edge 0.1", 1 },
	{ "meshwan_edge_uptime_seconds", "", 3723 },
	{ "meshwan_edge_controller_connected", "", 1 },
	{ "meshwan_edge_controller_state", "state=connected", 1 },
	{ "meshwan_edge_controller_state_seconds", "", 61 },
	{ "meshwan_edge_intent_version", "", 9 },
	{ "meshwan_edge_intent_ack_version", "", 9 },
	{ "meshwan_edge_intent_ack_ok", "", 1 },
	{ "meshwan_edge_tunnels", "", 1 },
	{ "meshwan_edge_tunnel_state", T12 ",state=up", 1 },
	{ "meshwan_edge_tunnel_up", T12, 1 },
	{ "meshwan_edge_tunnel_packets_total", T12 ",dir=in", 1001 },
	{ "meshwan_edge_tunnel_packets_total", T12 ",dir=out", 1002 },
	{ "meshwan_edge_tunnel_bytes_total", T12 ",dir=in", 120003 },
	{ "meshwan_edge_tunnel_bytes_total", T12 ",dir=out", 120004 },
	{ "meshwan_edge_tunnel_drops_total", T12 ",reason=no_sa", 5 },
	{ "meshwan_edge_tunnel_drops_total", T12 ",reason=auth", 6 },
	{ "meshwan_edge_tunnel_drops_total", T12 ",reason=replay", 7 },
	{ "meshwan_edge_tunnel_drops_total", T12 ",reason=source", 8 },
	{ "meshwan_edge_sa_packets_total", T12 ",dir=in,spi=0xc0010000", 991 },
	{ "meshwan_edge_sa_packets_total", T12 ",dir=out,spi=0xd0020000",
	  992 },
	{ "meshwan_edge_sa_bytes_total", T12 ",dir=in,spi=0xc0010000", 99001 },
	{ "meshwan_edge_sa_bytes_total", T12 ",dir=out,spi=0xd0020000",
	  99002 },
	{ "meshwan_edge_sa_age_seconds", T12 ",dir=in,spi=0xc0010000", 75 },
	{ "meshwan_edge_sa_age_seconds", T12 ",dir=out,spi=0xd0020000", 3700 },
	{ "meshwan_edge_sa_epoch", T12 ",dir=in,spi=0xc0010000", 3 },
	{ "meshwan_edge_sa_epoch", T12 ",dir=out,spi=0xd0020000", 4 },
	{ "meshwan_edge_sa_active", T12 ",dir=in,spi=0xc0010000", 1 },
	{ "meshwan_edge_sa_active", T12 ",dir=out,spi=0xd0020000", 0 },
	{ "meshwan_edge_bgp_established", T12, 1 },
	{ "meshwan_edge_bgp_uptime_seconds", T12, 321 },
	{ "meshwan_edge_bgp_prefixes_received", T12, 4 },
	{ "meshwan_edge_bfd_up", T12, 1 },
	{ "meshwan_edge_health_up", T12, 1 },
	{ "meshwan_edge_health_rtt_seconds", T12, 0.00125 },
	{ "meshwan_edge_health_loss_ratio", T12, 0.015 },
	{ "meshwan_edge_health_jitter_seconds", T12, 0.00004 },
};

static void
test_metrics(void **state)
{
	struct status_srv *srv;
	uint16_t port;
	char *body;

	(void)state;
	srv = status_start(sock, "127.0.0.1:0");
	assert_non_null(srv);
	port = status_metrics_port(srv);
	assert_true(port != 0);

	assert_int_equal(http_get(port, "GET", "/metrics", NULL), 503);
	/* A peer name that needs every escape of the text format. */
	status_publish(srv, snapshot(1, "we\"ird\\pe\ner"));
	assert_int_equal(http_get(port, "GET", "/metrics", &body), 200);
	printf("%s", body);
	assert_non_null(strstr(body, "peer=\"we\\\"ird\\\\pe\\ner\""));
	assert_non_null(strstr(body, "# TYPE meshwan_edge_sa_bytes_total "
	    "counter\n"));
	assert_non_null(strstr(body, "meshwan_edge_status_age_seconds "));
	check_metrics(body, metrics_want, sizeof(metrics_want) /
	    sizeof(metrics_want[0]));
	free(body);

	/* The table keeps the name on one line, control bytes replaced. */
	{
		char *out;

		assert_int_equal(client(false, &out), 0);
		assert_non_null(strstr(out, "2 we\"ird\\pe?er"));
		free(out);
	}

	/* msg.h spells BGP states in lower case, FRR capitalised: both. */
	{
		json_t *snap = snapshot(1, "b");

		json_object_set_new(json_object_get(json_array_get(
		    json_object_get(snap, "tunnels"), 0), "bgp"), "state",
		    json_string("established"));
		status_publish(srv, snap);
		assert_int_equal(http_get(port, "GET", "/metrics", &body),
		    200);
		assert_non_null(strstr(body, "meshwan_edge_bgp_established{"
		    "tunnel=\"12\",peer=\"b\"} 1\n"));
		free(body);
	}

	assert_int_equal(http_get(port, "HEAD", "/metrics", NULL), 200);
	assert_int_equal(http_get(port, "POST", "/metrics", NULL), 405);
	assert_int_equal(http_get(port, "GET", "/", NULL), 404);
	status_stop(srv);
}

/*
 * Fields outside the schema never leave: not in --json, the tables or
 * /metrics.  Wrongly typed values are dropped rather than shown.
 */
static void
test_no_leak(void **state)
{
	static const char *const secret[] = {
		"SECRETKEY", "private_key", "hunter2", "bgp_password",
		"deadbeefcafe", "key_hex", "nonce",
	};
	struct status_srv *srv;
	json_t *s, *t, *sa, *j;
	char *out[3];

	(void)state;
	srv = status_start(sock, "127.0.0.1:0");
	assert_non_null(srv);
	s = snapshot(1, "site-b");
	json_object_set_new(s, "private_key", json_string("SECRETKEY"));
	t = json_array_get(json_object_get(s, "tunnels"), 0);
	json_object_set_new(t, "key_hex", json_string("deadbeefcafe"));
	json_object_set_new(json_object_get(t, "bgp"), "bgp_password",
	    json_string("hunter2"));
	sa = json_array_get(json_object_get(t, "sas"), 0);
	json_object_set_new(sa, "nonce", json_integer(424242));
	json_object_set_new(sa, "key", json_string("SECRETKEY"));
	/* Wrong types: a string where a number goes, a negative count. */
	json_object_set_new(sa, "bytes", json_string("SECRETKEY"));
	json_object_set_new(t, "packets_in", json_integer(-5));
	json_object_set_new(t, "remote", json_integer(7));
	status_publish(srv, s);

	assert_int_equal(client(true, &out[0]), 0);
	assert_int_equal(client(false, &out[1]), 0);
	assert_int_equal(http_get(status_metrics_port(srv), "GET", "/metrics",
	    &out[2]), 200);
	for (size_t i = 0; i < 3; i++) {
		for (size_t k = 0; k < sizeof(secret) / sizeof(secret[0]); k++)
			if (strstr(out[i], secret[k]) != NULL)
				fail_msg("output %zu shows %s", i, secret[k]);
		assert_null(strstr(out[i], "424242"));
	}
	j = json_loads(out[0], 0, NULL);
	t = json_array_get(json_object_get(j, "tunnels"), 0);
	sa = json_array_get(json_object_get(t, "sas"), 0);
	assert_null(json_object_get(t, "packets_in"));
	assert_null(json_object_get(t, "remote"));
	assert_null(json_object_get(sa, "bytes"));
	assert_int_equal(json_integer_value(json_object_get(sa, "packets")),
	    991);
	json_decref(j);
	for (size_t i = 0; i < 3; i++)
		free(out[i]);
	status_stop(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_non_root, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_path, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_leak, setup,
		    teardown),
	};
	int rc;

	log_init("test_edge_status", true);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
