/*
 * ctl_load.c — load generator for meshwan-controller's edge sessions:
 * many simulated edges with the "null" data plane idea (they apply intent
 * in memory and ack it, nothing else).
 *
 *   ctl_load URL ADMIN_TOKEN_FILE ENROLL_TARGET SESSION_TARGET CA_PEM DIR N
 *
 * Creates N sites through the REST API (2 hubs, the rest spokes; the
 * policy is whatever the controller runs), enrolls each with a fresh key
 * and CSR, opens N mutual-TLS Session streams (one connection per edge:
 * each has its own certificate), waits until every edge has acked its
 * first intent, then adds one hub site through REST and measures, per
 * edge, the time from the REST call to the edge's ack of its next
 * version.  Prints setup times, median/p99/max of that latency, bytes
 * received by all edges for the change, the time the edges spent handling
 * it, and the peak RSS of the edge processes.
 *
 * Processes: this one makes the REST calls and measures; the edges run
 * in worker processes of CTL_LOAD_PER_PROC (default 2000) edges each,
 * forked before anything touches gRPC.  An edge costs two descriptors
 * here (its connection and its rpc loop's eventfd) and one thread, so
 * 10,000 edges do not fit one process under a 20,000 descriptor limit.
 * The workers enroll their edges in parallel (the controller's enrollment
 * worker is the one queue they share), open their sessions in batches,
 * and publish each edge's applied version, ack time and bytes in memory
 * shared with this process (MAP_SHARED; CLOCK_MONOTONIC is one clock for
 * all of them).
 *
 * Each edge runs edge-agent's session library, as an agent does: a delta
 * is applied in place and rehashed from kept per-tunnel digests, so the
 * figures measure the controller and the sessions, not a thousand full
 * rehashes in these processes.  Enrollment is edge-agent's too.
 *
 * Scale runs (tests/bench/scale_bench.sh) set, in the environment:
 *   CTL_LOAD_HUBS=H       H hubs instead of 2
 *   CTL_LOAD_REST_ONLY=1  stop after creating the sites
 *   CTL_LOAD_CONNECT=M    enroll and connect only the first M sites
 *                         (the hubs first), the rest stay provisioned
 *   CTL_LOAD_REF=R        first connect R edges (spread over the workers,
 *                         the hubs among them) and measure the change
 *                         there, then connect all and measure again: the
 *                         ratios to the R-edge run are printed
 *   CTL_LOAD_CTLD_PID=P   also report the controller's RSS and CPU (from
 *                         /proc/P) before and after connecting (the RSS
 *                         per connected edge), and the CPU it spends per
 *                         edge status (one status from every edge,
 *                         against an idle window of the same length)
 *   CTL_LOAD_BATCH=B      sessions a worker opens at once (default 50;
 *                         the next batch once these have an intent)
 *   CTL_LOAD_RESTART_LIMIT=S  the restart below fails after S seconds
 *                         (default 900)
 *   CTL_LOAD_CLOSES=1     log every stream close during the restart
 *                         (otherwise only counted, by kind)
 *   CTL_LOAD_RESTART=CMD  with CTL_LOAD_CTLD_PID: at the end, stop the
 *                         controller (SIGTERM), start it again with
 *                         `sh -c CMD` (same ports, same database) and
 *                         time the reconnect storm: until every edge's
 *                         stream has reopened, and until the controller
 *                         reports every edge connected and converged;
 *                         the new controller is stopped at exit
 * and every run prints the median POST /sites time over the 50 requests
 * before 1,000, 5,000 and 10,000 sites (and before N).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "edge-agent/enroll.h"
#include "edge-agent/session.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/rpc.h"

#define LOAD_BATCH 50          /* sessions a worker opens at a time */
static size_t load_batch = LOAD_BATCH;
#define LOAD_PER_PROC 2000     /* edges per worker process */
#define LOAD_IDLE_MS 1000      /* rpc_client_opts.idle_ms of each edge */
#define LOAD_SWEEP_MS 100      /* reopen after Backoff, new descriptors */
#define LOAD_MAX_WORKERS 64
#define SEC 1000000000ull

/* One edge, in memory shared by the workers and the parent. */
struct edge_sh {
	uint64_t site;                  /* parent, before the fork */
	_Atomic uint64_t version;       /* applied last (worker) */
	_Atomic uint64_t mark_version;  /* before the change (parent) */
	_Atomic uint64_t acked_ns;      /* ack of a version > mark; 0 = not */
	_Atomic uint64_t bytes;         /* received so far (worker) */
	_Atomic uint64_t work_ns;       /* handling messages while measuring */
	_Atomic uint32_t opens;         /* streams opened (hello sent) */
};

/* Orders from the parent, reports from the workers. */
struct ctrl {
	_Atomic int stop;
	_Atomic int measuring;
	_Atomic int quiet;              /* closes expected: count, not log */
	_Atomic uint64_t connect_upto;  /* of n: each worker connects as many
					   of its slice, in proportion */
	_Atomic uint32_t status_round;  /* parent bumps: one status each */
	_Atomic uint32_t status_done;   /* workers done with the round */
	_Atomic uint64_t status_sent;
	_Atomic uint64_t enrolled;
	_Atomic uint64_t enroll_ns[3];  /* token POST, key+CSR, Enroll call */
	_Atomic uint64_t closes;
	/* Stream closes by kind (load_close_kind): what failed attempts
	 * were, printed after the restart. */
	_Atomic uint64_t close_kinds[6];
	_Atomic uint64_t rss_kib;       /* sum of the workers' peak RSS */
	_Atomic int failed;
};

struct load {
	const char *url;
	char token[128];
	CURL *curl;
	struct edge_sh *sh;
	struct ctrl *c;
	size_t n;
	size_t n_workers;
	pid_t workers[LOAD_MAX_WORKERS];
	long ctld_pid;
	pid_t ctld_child;               /* the restarted controller */
	char **argv;
};

/* A worker's edges. */
struct sim {
	struct load *ld;
	struct edge_sh *e;
	struct session *sess;
	int fd; /* registered with the worker's epoll; -1 none */
};

struct buf {
	char *p;
	size_t n;
};

static size_t
load_curl_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	char *np = realloc(b->p, b->n + size * nmemb + 1);

	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, ptr, size * nmemb);
	b->n += size * nmemb;
	b->p[b->n] = '\0';
	return size * nmemb;
}

/* POST path with an optional JSON body; returns the parsed reply. */
static json_t *
load_post(struct load *ld, const char *path, const char *body)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[512], auth[200];
	long code = 0;
	json_t *j = NULL;

	snprintf(url, sizeof(url), "%s%s", ld->url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ld->token);
	h = curl_slist_append(h, auth);
	if (body)
		h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_reset(ld->curl);
	curl_easy_setopt(ld->curl, CURLOPT_URL, url);
	curl_easy_setopt(ld->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ld->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(ld->curl, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(ld->curl, CURLOPT_WRITEFUNCTION, load_curl_write);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEDATA, &b);
	/* 503 busy: the controller is writing a large change; retry as a
	 * client should (at most 60 s). */
	for (int tries = 0; tries < 60; tries++) {
		free(b.p);
		b.p = NULL;
		b.n = 0;
		if (curl_easy_perform(ld->curl) != CURLE_OK)
			break;
		curl_easy_getinfo(ld->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code != 503)
			break;
		sleep(1);
	}
	if (code != 0) {
		if (code == 200 || code == 201)
			j = json_loads(b.p ? b.p : "", 0, NULL);
		else
			fprintf(stderr, "POST %s: %ld %s\n", path, code,
			    b.p ? b.p : "");
	}
	curl_slist_free_all(h);
	free(b.p);
	return j;
}

/* A gauge or counter "name value" (or "name{...} value" when name holds
 * the labels) from GET /metrics, or -1. */
static int64_t
load_metric(struct load *ld, const char *name)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char url[512], auth[200];
	const char *p;
	int64_t n = -1;
	size_t len = strlen(name);

	snprintf(url, sizeof(url), "%s/metrics", ld->url);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ld->token);
	h = curl_slist_append(h, auth);
	curl_easy_reset(ld->curl);
	curl_easy_setopt(ld->curl, CURLOPT_URL, url);
	curl_easy_setopt(ld->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEFUNCTION, load_curl_write);
	curl_easy_setopt(ld->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(ld->curl, CURLOPT_TIMEOUT, 10L);
	if (curl_easy_perform(ld->curl) == CURLE_OK && b.p != NULL)
		for (p = b.p; (p = strstr(p, name)) != NULL; p += len)
			if ((p == b.p || p[-1] == '\n') && p[len] == ' ') {
				n = strtoll(p + len + 1, NULL, 10);
				break;
			}
	curl_slist_free_all(h);
	free(b.p);
	return n;
}

/* --- worker processes ------------------------------------------------ */

/* The next version is about to be acked. */
static int
load_on_intent(struct session *s, const struct msg_intent *in,
    const struct msg_intent_delta *d, uint8_t hash[MSG_HASH_LEN],
    char *reason, size_t reasonsz, void *arg)
{
	struct sim *m = arg;
	struct edge_sh *e = m->e;

	(void)s;
	(void)d;
	(void)hash;
	(void)reason;
	(void)reasonsz;
	if (atomic_load(&m->ld->c->measuring) && atomic_load(&e->acked_ns) == 0 &&
	    in->version > atomic_load(&e->mark_version))
		atomic_store(&e->acked_ns, util_mono_ns());
	atomic_store(&e->version, in->version);
	return 0;
}

static void
load_on_open(struct session *s, uint64_t applied, void *arg)
{
	struct sim *m = arg;

	(void)s;
	(void)applied;
	atomic_fetch_add(&m->e->opens, 1);
}

/* The kinds of load_on_close's counts, by gRPC's status and message:
 * no connection (refused, or in the channel's connection backoff after
 * a refusal), the TLS handshake or the connection's deadline (also as
 * the last error of a channel in backoff), the controller's own
 * refusal or end, a connection lost after it was up, anything else. */
static const char *const load_close_kind_names[6] = {
	"no connection", "handshake or deadline", "refused by the controller",
	"connection lost", "other", "ended by the controller",
};

static size_t
load_close_kind(int code, const char *msg)
{
	if (msg == NULL)
		msg = "";
	/* gRPC's "failed to connect to all addresses; last error: ..."
	 * names the connection's last failure: refused, or its handshake
	 * or deadline. */
	if (strstr(msg, "andshake") || strstr(msg, "SSL") ||
	    strstr(msg, "TLS") || strstr(msg, "eadline") ||
	    strstr(msg, "imeout") || strstr(msg, "imed out"))
		return 1;
	if (code == RPC_DEADLINE_EXCEEDED)
		return 1;
	if (code == RPC_UNAVAILABLE && (strstr(msg, "failed to connect") ||
	    strstr(msg, "Connection refused")))
		return 0;
	if (code == RPC_RESOURCE_EXHAUSTED || code == RPC_PERMISSION_DENIED ||
	    code == RPC_UNAUTHENTICATED || code == RPC_FAILED_PRECONDITION)
		return 2;
	if (code == RPC_UNAVAILABLE && strstr(msg, "controller"))
		return 5;
	if (code == RPC_UNAVAILABLE || code == RPC_CANCELLED)
		return 3;
	return 4;
}

static void
load_on_close(struct session *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct sim *m = arg;

	(void)s;
	(void)why;
	atomic_fetch_add(&m->ld->c->closes, 1);
	atomic_fetch_add(&m->ld->c->close_kinds[load_close_kind(code, msg)], 1);
	if (code != 0 && atomic_load(&m->ld->c->quiet) &&
	    getenv("CTL_LOAD_CLOSES") != NULL)
		fprintf(stderr, "site %" PRIu64 ": closed %d %s\n",
		    m->e->site, code, msg ? msg : "");
	if (code != 0 && !atomic_load(&m->ld->c->stop) &&
	    !atomic_load(&m->ld->c->quiet))
		fprintf(stderr, "site %" PRIu64 ": closed %d %s\n", m->e->site,
		    code, msg ? msg : "");
	/* The stream reconnects (with a new hello) on its own. */
}

static const struct session_handlers load_handlers = {
	.on_open = load_on_open,
	.on_intent = load_on_intent,
	.on_close = load_on_close,
};

/* One status from edge m: its applied version and (up to 16) tunnels up,
 * as an agent reports them. */
static int
load_send_status(struct sim *m)
{
	const struct msg_intent *in = session_intent(m->sess);
	struct msg_edge_message msg;
	struct msg_status *st = &msg.u.status;
	struct msg_tunnel_status ts[16];

	if (in == NULL)
		return -1;
	memset(&msg, 0, sizeof(msg));
	memset(ts, 0, sizeof(ts));
	msg.kind = MSG_EDGE_STATUS;
	st->applied_version = in->version;
	st->uptime_seconds = 60;
	st->n_tunnels = in->n_tunnels < 16 ? in->n_tunnels : 16;
	st->tunnels = ts;
	for (size_t i = 0; i < st->n_tunnels; i++) {
		ts[i].tunnel_id = in->tunnels[i].id;
		ts[i].state = MSG_TUNNEL_STATE_UP;
		ts[i].packets_in = ts[i].packets_out = 10;
	}
	return session_send(m->sess, &msg);
}

/* How many of the slice [lo, hi) are connected when upto of n are. */
static size_t
load_slice_upto(size_t lo, size_t hi, uint64_t upto, size_t n)
{
	return lo + (size_t)(((uint64_t)(hi - lo) * upto + n - 1) / n);
}

/* Enroll edges [lo, hi) of the shared table into DIR.  0 / -1. */
static int
load_enroll(struct load *ld, size_t lo, size_t hi)
{
	struct rpc_client *enroll;
	char **argv = ld->argv;

	if ((enroll = enroll_client(argv[3], argv[5], "localhost")) == NULL)
		return -1;
	for (size_t i = lo; i < hi; i++) {
		struct msg_enroll_response rs;
		char path[512], tokpath[64], token[MSG_TOKEN_MAX + 1], msg[256];
		uint8_t *csr;
		size_t csr_len;
		json_t *j;
		int code = 0;

		uint64_t t0 = util_mono_ns(), t1, t2;

		snprintf(tokpath, sizeof(tokpath), "/api/v1/sites/%" PRIu64
		    "/token", ld->sh[i].site);
		if ((j = load_post(ld, tokpath, NULL)) == NULL)
			return -1;
		snprintf(token, sizeof(token), "%s",
		    json_string_value(json_object_get(j, "token")));
		json_decref(j);
		snprintf(path, sizeof(path), "%s/%zu.key", argv[6], i);
		t1 = util_mono_ns();
		if (enroll_keygen(path, &csr, &csr_len) == -1)
			return -1;
		t2 = util_mono_ns();
		if (enroll_call(enroll, token, csr, csr_len, "ctl_load", 60000,
		    &rs, &code, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "enroll %zu: code %d %s\n", i, code, msg);
			free(csr);
			return -1;
		}
		free(csr);
		atomic_fetch_add(&ld->c->enroll_ns[0], t1 - t0);
		atomic_fetch_add(&ld->c->enroll_ns[1], t2 - t1);
		atomic_fetch_add(&ld->c->enroll_ns[2], util_mono_ns() - t2);
		snprintf(path, sizeof(path), "%s/%zu.crt", argv[6], i);
		if (enroll_write_cert(path, &rs.certificate_der, true) == -1)
			return -1;
		msg_enroll_response_free(&rs);
		atomic_fetch_add(&ld->c->enrolled, 1);
	}
	rpc_client_free(enroll);
	return 0;
}

static struct session *
load_open(struct load *ld, size_t i, struct sim *m)
{
	struct session_opts o;
	char crt[512], key[512];

	snprintf(crt, sizeof(crt), "%s/%zu.crt", ld->argv[6], i);
	snprintf(key, sizeof(key), "%s/%zu.key", ld->argv[6], i);
	memset(&o, 0, sizeof(o));
	o.target = ld->argv[4];
	o.ca_file = ld->argv[5];
	o.cert_file = crt;
	o.key_file = key;
	o.server_name = "localhost";
	o.site_id = ld->sh[i].site;
	o.software_version = "ctl_load";
	o.backend = MSG_BACKEND_NULL;
	o.h = &load_handlers;
	o.arg = m;
	/* 10,000 clients' threads waking every 100 ms for timers they do
	 * not have cost the shared cores ~100,000 wake-ups a second. */
	o.idle_ms = LOAD_IDLE_MS;
	return session_new(&o);
}

/*
 * A worker: edges [lo, hi).  Enrolls them, then opens their sessions in
 * batches (the next batch once the last has its first intents: a
 * thousand simultaneous handshakes on two cores would measure the
 * handshake storm, not the sessions) as far as ctrl.connect_upto says,
 * and dispatches them until told to stop.
 */
/* Register the edge's descriptor with the worker's epoll.  It changes
 * only with session_switch_cert, which ctl_load never calls; the sweep
 * checks anyway (a new number is re-registered). */
static void
load_watch(int ep, struct sim *m, size_t k)
{
	int fd = session_fd(m->sess);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = k };

	if (fd == m->fd)
		return;
	if (m->fd >= 0)
		(void)epoll_ctl(ep, EPOLL_CTL_DEL, m->fd, NULL);
	m->fd = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0 ? fd : -1;
}

static int
load_worker(struct load *ld, size_t lo, size_t hi)
{
	struct ctrl *c = ld->c;
	struct sim *sims = calloc(hi - lo, sizeof(*sims));
	struct epoll_event *evs = calloc(hi - lo, sizeof(*evs));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct rusage ru;
	size_t open = 0;
	uint32_t round = 0;
	uint64_t swept = 0;

	if (sims == NULL || evs == NULL || ep == -1)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((ld->curl = curl_easy_init()) == NULL ||
	    load_enroll(ld, lo, hi) == -1) {
		atomic_store(&c->failed, 1);
		return 1;
	}
	while (!atomic_load(&c->stop) && !atomic_load(&c->failed)) {
		size_t want = load_slice_upto(lo, hi,
		    atomic_load(&c->connect_upto), ld->n) - lo;
		bool batch_done = true;
		uint32_t r;

		for (size_t k = open >= load_batch ? open - load_batch : 0;
		    k < open; k++)
			if (atomic_load(&sims[k].e->version) == 0)
				batch_done = false;
		if (open < want && batch_done) {
			size_t end = open + load_batch < want ?
			    open + load_batch : want;

			for (; open < end; open++) {
				sims[open].ld = ld;
				sims[open].e = &ld->sh[lo + open];
				sims[open].fd = -1;
				if ((sims[open].sess = load_open(ld, lo + open,
				    &sims[open])) == NULL) {
					atomic_store(&c->failed, 1);
					return 1;
				}
				load_watch(ep, &sims[open], open);
			}
		}
		/* Every LOAD_SWEEP_MS, not per wake-up: a pass over 2,000
		 * sessions fifty times a second was most of this loop. */
		if (util_mono_ms() - swept >= LOAD_SWEEP_MS) {
			swept = util_mono_ms();
			for (size_t k = 0; k < open; k++) {
				/* A controller's Backoff ran out: reopen, as
				 * the agent's loop does (session_timeout_ms). */
				if (session_timeout_ms(sims[k].sess) == 0)
					session_dispatch(sims[k].sess);
				load_watch(ep, &sims[k], k);
			}
		}
		int nev = epoll_wait(ep, evs, (int)(hi - lo), 20);
		if (nev > 0) {
			bool measuring = atomic_load(&c->measuring);

			for (int j = 0; j < nev; j++) {
				size_t k = (size_t)evs[j].data.u64;
				uint64_t t0;

				t0 = util_mono_ns();
				session_dispatch(sims[k].sess);
				if (measuring)
					atomic_fetch_add(&sims[k].e->work_ns,
					    util_mono_ns() - t0);
				atomic_store(&sims[k].e->bytes,
				    session_bytes_received(sims[k].sess));
			}
		}
		if ((r = atomic_load(&c->status_round)) != round) {
			uint64_t sent = 0;

			round = r;
			for (size_t k = 0; k < open; k++)
				sent += load_send_status(&sims[k]) == 0;
			atomic_fetch_add(&c->status_sent, sent);
			atomic_fetch_add(&c->status_done, 1);
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	atomic_fetch_add(&c->rss_kib, (uint64_t)ru.ru_maxrss);
	for (size_t k = 0; k < open; k++)
		session_free(sims[k].sess);
	close(ep);
	free(sims);
	free(evs);
	curl_easy_cleanup(ld->curl);
	return atomic_load(&c->failed) ? 1 : 0;
}

/* --- the parent: REST calls and measurements ------------------------ */

/* Median of the POST times v[from, to) in ms (v is reordered). */
static double
load_post_median(uint64_t *v, size_t from, size_t to)
{
	qsort(v + from, to - from, sizeof(*v), util_cmp_u64);
	return (double)v[from + (to - from) / 2] / 1e6;
}

/* The controller's resident set (KiB) and CPU time (utime + stime, in
 * clock ticks) from /proc/PID; 0 when unreadable. */
static void
load_proc(long pid, uint64_t *rss_kib, uint64_t *cpu_ticks)
{
	char path[64], line[512];
	FILE *f;

	*rss_kib = *cpu_ticks = 0;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "VmRSS: %" SCNu64, rss_kib) == 1)
				break;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			/* Fields 14 and 15, counted after the ")" of comm. */
			const char *p = strrchr(line, ')');
			unsigned long long ut = 0, st = 0;

			if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d "
			    "%*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
				*cpu_ticks = ut + st;
		}
		fclose(f);
	}
}

/* The process is gone or a zombie (its parent, the shell, reaps it). */
static bool
load_proc_dead(long pid)
{
	char path[64], line[512];
	const char *p;
	FILE *f;
	bool dead = true;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return true;
	if (fgets(line, sizeof(line), f) != NULL &&
	    (p = strrchr(line, ')')) != NULL && p[1] == ' ')
		dead = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return dead;
}

/* A worker died (or failed): the run cannot go on. */
static bool
load_broken(struct load *ld)
{
	for (size_t w = 0; w < ld->n_workers; w++) {
		int st;

		if (ld->workers[w] > 0 &&
		    waitpid(ld->workers[w], &st, WNOHANG) == ld->workers[w]) {
			ld->workers[w] = 0;
			fprintf(stderr, "worker %zu exited early\n", w);
			atomic_store(&ld->c->failed, 1);
		}
	}
	return atomic_load(&ld->c->failed) != 0;
}

/* Is edge i among the first upto of n connected? */
static bool
load_in_set(const struct load *ld, size_t i, uint64_t upto)
{
	size_t per = (ld->n + ld->n_workers - 1) / ld->n_workers;
	size_t w = i / per, lo = w * per, hi = lo + per;

	if (hi > ld->n)
		hi = ld->n;
	return i < load_slice_upto(lo, hi, upto, ld->n);
}

/* Connect the first upto of n edges; wait until each has an intent.
 * Returns how many, or 0 on failure or after limit_s seconds. */
static size_t
load_connect(struct load *ld, uint64_t upto, unsigned limit_s)
{
	uint64_t t = util_mono_ns();

	atomic_store(&ld->c->connect_upto, upto);
	for (;;) {
		size_t ready = 0, want = 0;

		for (size_t i = 0; i < ld->n; i++)
			if (load_in_set(ld, i, upto)) {
				want++;
				ready += atomic_load(&ld->sh[i].version) != 0;
			}
		if (ready == want)
			return want;
		if (load_broken(ld))
			return 0;
		if (util_mono_ns() - t > limit_s * SEC) {
			fprintf(stderr, "only %zu of %zu edges got an intent\n",
			    ready, want);
			return 0;
		}
		usleep(50000);
	}
}

struct change {
	double p50_ms, p99_ms, max_ms, rest_ms, bytes_per_edge, work_ms;
	size_t acked, n;
};

/* Add one hub through REST; time until every connected edge (the first
 * upto) acked a newer version.  0 / -1. */
static int
load_change(struct load *ld, uint64_t upto, unsigned k, struct change *ch)
{
	uint64_t *lat, t0, t, bytes = 0, work = 0;
	size_t m = 0;
	char body[256];
	json_t *j;

	if ((lat = calloc(ld->n, sizeof(*lat))) == NULL)
		return -1;
	for (size_t i = 0; i < ld->n; i++) {
		struct edge_sh *e = &ld->sh[i];

		atomic_store(&e->acked_ns, 0);
		atomic_store(&e->work_ns, 0);
		atomic_store(&e->mark_version, atomic_load(&e->version));
	}
	/* Bytes before: read after the marks, so nothing is counted twice. */
	for (size_t i = 0; i < ld->n; i++)
		lat[i] = atomic_load(&ld->sh[i].bytes);
	atomic_store(&ld->c->measuring, 1);
	t0 = util_mono_ns();
	snprintf(body, sizeof(body), "{\"name\":\"newhub%u\",\"role\":\"hub\","
	    "\"links\":[{\"name\":\"inet\",\"address\":\"172.16.%u.1\"}]}", k,
	    k);
	if ((j = load_post(ld, "/api/v1/sites", body)) == NULL) {
		free(lat);
		return -1;
	}
	json_decref(j);
	t = util_mono_ns();
	for (;;) {
		size_t done = 0;

		m = 0;
		for (size_t i = 0; i < ld->n; i++)
			if (load_in_set(ld, i, upto)) {
				m++;
				done += atomic_load(&ld->sh[i].acked_ns) != 0;
			}
		if (done == m || util_mono_ns() - t0 > 60 * SEC ||
		    load_broken(ld)) {
			ch->acked = done;
			break;
		}
		usleep(5000);
	}
	usleep(100000);   /* the last bytes counted */
	atomic_store(&ld->c->measuring, 0);
	m = 0;
	for (size_t i = 0; i < ld->n; i++) {
		struct edge_sh *e = &ld->sh[i];
		uint64_t a = atomic_load(&e->acked_ns);

		if (!load_in_set(ld, i, upto))
			continue;
		bytes += atomic_load(&e->bytes) - lat[i];
		work += atomic_load(&e->work_ns);
		lat[m++] = a ? a - t0 : UINT64_MAX;
	}
	qsort(lat, m, sizeof(*lat), util_cmp_u64);
	ch->n = m;
	ch->rest_ms = (double)(t - t0) / 1e6;
	ch->p50_ms = (double)lat[m / 2] / 1e6;
	ch->p99_ms = (double)lat[(m * 99 + 99) / 100 - 1] / 1e6;
	ch->max_ms = (double)lat[m - 1] / 1e6;
	ch->bytes_per_edge = (double)bytes / (double)m;
	ch->work_ms = (double)work / 1e6;
	free(lat);
	printf("change with %zu edges connected: %zu acked the new version; "
	    "the REST call itself took %.1f ms\n", m, ch->acked, ch->rest_ms);
	printf("ack latency from the REST call (%zu edges): median %.1f ms, "
	    "p99 %.1f ms, max %.1f ms\n", m, ch->p50_ms, ch->p99_ms,
	    ch->max_ms);
	printf("bytes received by all edges for the change: %" PRIu64
	    " (%.1f per edge)\n", bytes, ch->bytes_per_edge);
	/* The edges' own share of the latency: they share two cores with
	 * the controller, one after the other in each worker. */
	printf("edge-side work for the change (decode, apply, hash, ack): "
	    "%.1f ms for all edges, %.3f ms per edge\n", ch->work_ms,
	    ch->work_ms / (double)m);
	return ch->acked == m ? 0 : -1;
}

/*
 * Status reports: the controller's CPU for one status from every edge,
 * against its CPU over an idle window as long (keepalives, timers: the
 * reference measured in the same run).
 */
static void
load_status(struct load *ld)
{
	uint64_t rss, c0, c1, c2, w0, w1, idle_ns, sent;
	int64_t s0, s1 = -1;
	double tick = (double)sysconf(_SC_CLK_TCK);
	const char *name = "meshwan_rpc_events_total{event=\"status_received\"}";

	s0 = load_metric(ld, name);
	load_proc(ld->ctld_pid, &rss, &c0);
	w0 = util_mono_ns();
	atomic_store(&ld->c->status_done, 0);
	atomic_store(&ld->c->status_sent, 0);
	atomic_fetch_add(&ld->c->status_round, 1);
	while (atomic_load(&ld->c->status_done) < ld->n_workers &&
	    util_mono_ns() - w0 < 60 * SEC && !load_broken(ld))
		usleep(10000);
	sent = atomic_load(&ld->c->status_sent);
	while (util_mono_ns() - w0 < 120 * SEC) {
		/* Not faster: at 10,000 edges each /metrics is a read of
		 * every site and edge, counted in the CPU per status. */
		usleep(250000);
		if ((s1 = load_metric(ld, name)) >= 0 && s0 >= 0 &&
		    (uint64_t)(s1 - s0) >= sent)
			break;
	}
	w1 = util_mono_ns();
	load_proc(ld->ctld_pid, &rss, &c1);
	idle_ns = w1 - w0;
	while (util_mono_ns() - w1 < idle_ns)
		usleep(50000);
	load_proc(ld->ctld_pid, &rss, &c2);
	printf("status: %" PRIu64 " sent, %" PRId64 " received by the "
	    "controller in %.1f s; controller CPU %.1f ms for them, %.3f ms "
	    "per status (idle window as long: %.1f ms)\n", sent, s1 - s0,
	    (double)idle_ns / 1e9, (double)(c1 - c0) / tick * 1e3,
	    sent > 0 ? ((double)(c1 - c0) - (double)(c2 - c1)) / tick *
	    1e3 / (double)sent : 0.0, (double)(c2 - c1) / tick * 1e3);
	printf("controller RSS at the end: %.1f MiB\n", (double)rss / 1024);
}

/*
 * The reconnect storm: SIGTERM to the controller, start it again with
 * `sh -c cmd`, and time (from the SIGTERM) until every edge's stream has
 * reopened and until the controller reports all of them connected and
 * converged.  0 / -1.
 */
static int
load_restart(struct load *ld, const char *cmd, unsigned limit_s)
{
	uint32_t *opens = calloc(ld->n, sizeof(*opens));
	uint64_t t0, t_dead, t_up = 0, t_open = 0, t_conv = 0, closes0;
	uint64_t scraped = 0, rss = 0, cpu = 0;
	pid_t pid;

	if (opens == NULL)
		return -1;
	for (size_t i = 0; i < ld->n; i++)
		opens[i] = atomic_load(&ld->sh[i].opens);
	closes0 = atomic_load(&ld->c->closes);
	{
		char path[64], line[256];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%ld/status", ld->ctld_pid);
		if ((f = fopen(path, "r")) != NULL) {
			while (fgets(line, sizeof(line), f) != NULL)
				if (strncmp(line, "VmHWM:", 6) == 0)
					printf("controller peak RSS before the "
					    "restart:%s", line + 6);
			fclose(f);
		}
	}
	atomic_store(&ld->c->quiet, 1);
	for (size_t k = 0; k < 6; k++)
		atomic_store(&ld->c->close_kinds[k], 0);
	t0 = util_mono_ns();
	if (kill((pid_t)ld->ctld_pid, SIGTERM) == -1) {
		free(opens);
		return -1;
	}
	while (!load_proc_dead(ld->ctld_pid)) {
		if (util_mono_ns() - t0 > 120 * SEC) {
			fprintf(stderr, "controller did not stop in 120 s\n");
			free(opens);
			return -1;
		}
		usleep(10000);
	}
	t_dead = util_mono_ns();
	if ((pid = fork()) == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		free(opens);
		return -1;
	}
	ld->ctld_child = pid;
	ld->ctld_pid = pid;
	while (util_mono_ns() - t0 < limit_s * SEC && !load_broken(ld)) {
		uint64_t now;
		size_t reopened = 0;

		usleep(100000);
		now = util_mono_ns();
		for (size_t i = 0; i < ld->n; i++)
			reopened += atomic_load(&ld->sh[i].opens) != opens[i];
		if (t_open == 0 && reopened == ld->n)
			t_open = now;
		/* Once a second: each /metrics reads every site and edge
		 * from the store on the controller's API thread, and ten
		 * pairs a second at 10,000 edges were load of their own on
		 * the process being measured (the figure is +-1 s). */
		if (t_conv == 0 && now - scraped >= SEC) {
			int64_t conn = load_metric(ld, "meshwan_edges_connected");
			int64_t conv = conn >= (int64_t)ld->n ?
			    load_metric(ld, "meshwan_edges_converged") : -1;

			scraped = now;

			if (conn >= 0 && t_up == 0)
				t_up = now;
			if (conn >= (int64_t)ld->n && conv >= (int64_t)ld->n) {
				t_conv = util_mono_ns();
				load_proc(ld->ctld_pid, &rss, &cpu);
			}
		}
		if (t_open != 0 && t_conv != 0)
			break;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "restarted controller exited\n");
			ld->ctld_child = 0;
			break;
		}
	}
	atomic_store(&ld->c->quiet, 0);
	free(opens);
	printf("restart: controller stopped in %.1f s; from the SIGTERM, its "
	    "REST API answered after %.1f s, every edge had reopened its "
	    "stream (hello queued, not yet answered) after %.1f s, all %zu "
	    "edges connected and converged (controller metrics) after %.1f s "
	    "(%" PRIu64 " stream closes seen: failed connection attempts "
	    "included); the new controller's CPU until then %.1f s, RSS "
	    "%.1f MiB\n",
	    (double)(t_dead - t0) / 1e9,
	    t_up ? (double)(t_up - t0) / 1e9 : -1.0,
	    t_open ? (double)(t_open - t0) / 1e9 : -1.0, ld->n,
	    t_conv ? (double)(t_conv - t0) / 1e9 : -1.0,
	    atomic_load(&ld->c->closes) - closes0,
	    (double)cpu / (double)sysconf(_SC_CLK_TCK), (double)rss / 1024);
	printf("restart: stream closes by kind:");
	for (size_t k = 0; k < 6; k++)
		printf("%s %s %" PRIu64, k ? "," : "", load_close_kind_names[k],
		    (uint64_t)atomic_load(&ld->c->close_kinds[k]));
	printf("\n");
	return t_open != 0 && t_conv != 0 ? 0 : -1;
}

static void
load_finish(struct load *ld)
{
	atomic_store(&ld->c->stop, 1);
	for (size_t w = 0; w < ld->n_workers; w++)
		if (ld->workers[w] > 0)
			waitpid(ld->workers[w], NULL, 0);
	if (ld->ctld_child > 0) {
		kill(ld->ctld_child, SIGTERM);
		waitpid(ld->ctld_child, NULL, 0);
	}
}

int
main(int argc, char **argv)
{
	struct load ld;
	struct change ch, ref;
	uint64_t n, t, hubs = 2, *post_ns, per = LOAD_PER_PROC, upto_ref = 0;
	uint64_t rss0 = 0, rss_ref = 0, rss = 0, cpu, restart_limit = 900;
	const char *env, *restart;
	int rc = 0;
	FILE *f;

	if (argc != 8 || util_parse_u64(argv[7], 3, 100000, &n) == -1) {
		fprintf(stderr, "usage: ctl_load URL TOKEN_FILE ENROLL SESSION "
		    "CA DIR N\n");
		return 2;
	}
	log_init("ctl_load", true);
	setvbuf(stdout, NULL, _IOLBF, 0);      /* figures as they come */
	memset(&ld, 0, sizeof(ld));
	ld.url = argv[1];
	ld.argv = argv;
	if ((f = fopen(argv[2], "r")) == NULL ||
	    fgets(ld.token, sizeof(ld.token), f) == NULL)
		return 1;
	fclose(f);
	ld.token[strcspn(ld.token, "\r\n")] = '\0';
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ld.curl = curl_easy_init();
	ld.n = (size_t)n;
	ld.sh = mmap(NULL, ld.n * sizeof(*ld.sh), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ld.c = mmap(NULL, sizeof(*ld.c), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ld.curl == NULL || ld.sh == MAP_FAILED || ld.c == MAP_FAILED)
		return 1;

	if ((env = getenv("CTL_LOAD_HUBS")) != NULL &&
	    util_parse_u64(env, 1, n, &hubs) == -1)
		return 2;
	if ((env = getenv("CTL_LOAD_PER_PROC")) != NULL &&
	    util_parse_u64(env, 1, 100000, &per) == -1)
		return 2;
	if ((env = getenv("CTL_LOAD_BATCH")) != NULL) {
		uint64_t b;

		if (util_parse_u64(env, 1, 100000, &b) == -1)
			return 2;
		load_batch = (size_t)b;
	}
	if ((env = getenv("CTL_LOAD_RESTART_LIMIT")) != NULL &&
	    util_parse_u64(env, 1, 3600, &restart_limit) == -1)
		return 2;
	if ((env = getenv("CTL_LOAD_CTLD_PID")) != NULL)
		ld.ctld_pid = atol(env);
	restart = getenv("CTL_LOAD_RESTART");
	if ((post_ns = calloc(ld.n, sizeof(*post_ns))) == NULL)
		return 1;

	/* Sites: the hubs, then spokes, each with one inet link. */
	t = util_mono_ns();
	for (size_t i = 0; i < ld.n; i++) {
		char body[512];
		json_t *j;
		uint64_t t1 = util_mono_ns();

		snprintf(body, sizeof(body), "{\"name\":\"s%zu\",\"role\":\"%s\","
		    "\"links\":[{\"name\":\"inet\",\"address\":\"10.%zu.%zu.1\"}]}",
		    i, i < hubs ? "hub" : "spoke", (i >> 8) & 255, i & 255);
		if ((j = load_post(&ld, "/api/v1/sites", body)) == NULL)
			return 1;
		post_ns[i] = util_mono_ns() - t1;
		ld.sh[i].site = (uint64_t)json_integer_value(json_object_get(j,
		    "id"));
		json_decref(j);
	}
	printf("sites created: %zu in %.1f s\n", ld.n,
	    (double)(util_mono_ns() - t) / 1e9);
	{
		static const size_t marks[] = { 1000, 5000, 10000 };
		double r = 0, m;

		for (size_t k = 0; k <= sizeof(marks) / sizeof(marks[0]); k++) {
			size_t at = k < sizeof(marks) / sizeof(marks[0]) ?
			    marks[k] : ld.n;

			if (at > ld.n || at < 100 ||
			    (k == sizeof(marks) / sizeof(marks[0]) &&
			    (at == 1000 || at == 5000 || at == 10000)))
				continue;
			m = load_post_median(post_ns, at - 50, at);
			if (r == 0)
				r = m;
			printf("POST /sites at %zu sites: median %.2f ms "
			    "(ratio to the first mark %.2f)\n", at, m, m / r);
		}
	}
	free(post_ns);
	if ((env = getenv("CTL_LOAD_CONNECT")) != NULL) {
		uint64_t m;

		if (util_parse_u64(env, 3, 100000, &m) == -1)
			return 2;
		if (m > ld.n)
			m = ld.n;
		printf("connecting the first %" PRIu64 " of %zu sites\n", m,
		    ld.n);
		ld.n = (size_t)m;
	}
	if (getenv("CTL_LOAD_REST_ONLY") != NULL) {
		curl_easy_cleanup(ld.curl);
		curl_global_cleanup();
		return 0;
	}
	if ((env = getenv("CTL_LOAD_REF")) != NULL &&
	    (util_parse_u64(env, 1, 100000, &upto_ref) == -1 ||
	    upto_ref >= ld.n))
		upto_ref = 0;

	/* The workers; nothing here has touched gRPC yet. */
	ld.n_workers = (ld.n + per - 1) / per;
	if (ld.n_workers > LOAD_MAX_WORKERS)
		ld.n_workers = LOAD_MAX_WORKERS;
	if (ld.ctld_pid > 0)
		load_proc(ld.ctld_pid, &rss0, &cpu);
	t = util_mono_ns();
	{
		size_t slice = (ld.n + ld.n_workers - 1) / ld.n_workers;

		for (size_t w = 0; w < ld.n_workers; w++) {
			size_t lo = w * slice, hi = lo + slice < ld.n ?
			    lo + slice : ld.n;
			pid_t pid = fork();

			if (pid == 0) {
				/* Gone with this process (a timeout). */
				prctl(PR_SET_PDEATHSIG, SIGTERM);
				if (getppid() == 1)
					_exit(1);
				_exit(load_worker(&ld, lo, hi));
			}
			if (pid < 0) {
				atomic_store(&ld.c->failed, 1);
				load_finish(&ld);
				return 1;
			}
			ld.workers[w] = pid;
		}
	}
	while (atomic_load(&ld.c->enrolled) < ld.n) {
		if (load_broken(&ld)) {
			load_finish(&ld);
			return 1;
		}
		usleep(50000);
	}
	printf("enrolled: %zu in %.1f s (%zu worker processes, %.0f edges/s); "
	    "per edge: token POST %.1f ms, key and CSR %.1f ms, Enroll call "
	    "%.1f ms\n", ld.n, (double)(util_mono_ns() - t) / 1e9,
	    ld.n_workers, (double)ld.n * 1e9 / (double)(util_mono_ns() - t),
	    (double)atomic_load(&ld.c->enroll_ns[0]) / 1e6 / (double)ld.n,
	    (double)atomic_load(&ld.c->enroll_ns[1]) / 1e6 / (double)ld.n,
	    (double)atomic_load(&ld.c->enroll_ns[2]) / 1e6 / (double)ld.n);

	if (upto_ref > 0) {
		size_t m;

		t = util_mono_ns();
		if ((m = load_connect(&ld, upto_ref, 900)) == 0) {
			load_finish(&ld);
			return 1;
		}
		printf("sessions: %zu connected with their first intent in "
		    "%.1f s\n", m, (double)(util_mono_ns() - t) / 1e9);
		usleep(500000);          /* let the acks reach the store */
		if (ld.ctld_pid > 0) {
			load_proc(ld.ctld_pid, &rss_ref, &cpu);
			printf("controller with %zu edges connected: RSS %.1f "
			    "MiB\n", m, (double)rss_ref / 1024);
		}
		if (load_change(&ld, upto_ref, 0, &ref) == -1)
			rc = 1;
	}
	t = util_mono_ns();
	if (load_connect(&ld, ld.n, 1800) == 0) {
		load_finish(&ld);
		return 1;
	}
	printf("sessions: %zu connected with their first intent in %.1f s%s\n",
	    ld.n, (double)(util_mono_ns() - t) / 1e9,
	    upto_ref ? " (the rest)" : "");
	usleep(500000);
	if (ld.ctld_pid > 0) {
		load_proc(ld.ctld_pid, &rss, &cpu);
		printf("controller with %zu edges connected: RSS %.1f MiB, "
		    "%.1f MiB before any connected: %.1f KiB per connected "
		    "edge; CPU so far %.1f s\n", ld.n, (double)rss / 1024,
		    (double)rss0 / 1024, ((double)rss - (double)rss0) /
		    (double)ld.n, (double)cpu / (double)sysconf(_SC_CLK_TCK));
		if (upto_ref > 0 && rss_ref > 0)
			printf("controller RSS per connected edge from %zu to "
			    "%zu edges: %.1f KiB\n", (size_t)upto_ref, ld.n,
			    ((double)rss - (double)rss_ref) /
			    (double)(ld.n - upto_ref));
	}
	if (load_change(&ld, ld.n, 1, &ch) == -1)
		rc = 1;
	if (upto_ref > 0)
		printf("ack latency, %zu edges / %zu edges: median %.2fx, p99 "
		    "%.2fx\n", ld.n, ref.n, ch.p50_ms / ref.p50_ms,
		    ch.p99_ms / ref.p99_ms);
	if (ld.ctld_pid > 0) {
		load_status(&ld);
		if (restart != NULL && load_restart(&ld, restart,
		    (unsigned)restart_limit) == -1)
			rc = 1;
	}
	load_finish(&ld);
	printf("load generator peak RSS: %.1f MiB in %zu processes\n",
	    (double)atomic_load(&ld.c->rss_kib) / 1024, ld.n_workers);
	curl_easy_cleanup(ld.curl);
	curl_global_cleanup();
	return rc;
}
