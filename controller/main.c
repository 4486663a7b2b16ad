/*
 * main.c — meshwan-controller: start-up, the event loop, signals, reload.
 *
 * One thread runs the loop: it polls the rpc layer's descriptor (every
 * gRPC callback runs here), a signalfd (no signal handlers at all: the
 * signals are blocked and read as events), the sessions' eventfd
 * (the REST API thread's "the model changed" news) and enrollment's
 * (answers its worker finished), with the sessions' timers as the poll
 * timeout.  The REST API and the enrollment worker run in their own
 * threads with their own database connections (controller/api.h,
 * controller/enroll.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "controller/api.h"
#include "controller/auth.h"
#include "controller/ca.h"
#include "controller/config.h"
#include "controller/enroll.h"
#include "controller/metrics.h"
#include "controller/replica.h"
#include "controller/session.h"
#include "controller/store.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"

#define CTLD_VERSION "0.1.0"

struct ctld {
	struct config cfg;
	const char *cfg_path;
	bool foreground;
	int sigfd;
	struct ca *ca;
	struct store *st;       /* the loop's connection */
	struct store *api_st;   /* the API thread's connection */
	struct store *enroll_st; /* the enrollment worker's connection */
	struct store *events_st; /* the API's event watcher's connection */
	/* HTTPS of the REST API: PEM text, NULL for plain HTTP. */
	char *http_cert_pem;
	char *http_key_pem;
	char ca_pin[7 + 2 * EVP_MAX_MD_SIZE + 1]; /* "sha256:" + hex of the
	                           CA's DER */
	size_t http_key_len;
	struct metrics metrics;
	struct sessions *sessions;
	struct replica *replica; /* PostgreSQL: other controllers' changes */
	struct enroll *enroll;
	struct rpc_server *rpc;
	struct api *api;
	bool quit;
};

static void
ctld_usage(FILE *f)
{
	fprintf(f,
	    "usage: meshwan-controller [-dhnV] [-f file]\n"
	    "  -d       stay in the foreground and log to stderr\n"
	    "  -f file  configuration file (default "
	    "/etc/meshwan/controller.conf)\n"
	    "  -n       check the configuration, print it normalised, exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       this help\n"
	    "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the "
	    "configuration\n(all or nothing: a bad file keeps the running "
	    "configuration).\n"
	    "See meshwan-controller(8) and controller/CONTROLLER.md.\n");
}

static void
ctld_session_cfg(const struct config *c, struct session_config *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->coalesce_ms = c->coalesce_ms;
	sc->keepalive_s = c->keepalive_s;
	sc->headless_grace_s = c->headless_grace_s;
	sc->intent_history = c->intent_history;
	sc->admit_bytes = c->session_admit_bytes;
	sc->cert_lifetime_s = c->cert_lifetime_s;
	sc->clock_offset_s = c->test_clock_offset_s;
	sc->check_patch = c->test_check_patch != 0;
	if (strcmp(c->tunnel_pool6, "off") != 0 &&
	    model_prefix_parse(c->tunnel_pool6, false, &sc->pool6, "pool6",
	    NULL) == -1)
		memset(&sc->pool6, 0, sizeof(sc->pool6)); /* checked by config */
	snprintf(sc->controller_name, sizeof(sc->controller_name), "%s",
	    c->controller_name);
}

static void
ctld_enroll_cfg(const struct config *c, struct enroll_config *ec)
{
	memset(ec, 0, sizeof(*ec));
	ec->cert_lifetime_s = c->cert_lifetime_s;
	ec->rate = c->enroll_rate;
	ec->burst = c->enroll_burst;
	ec->test_lose = c->test_enroll_lose;
	snprintf(ec->controller_name, sizeof(ec->controller_name), "%s",
	    c->controller_name);
	if (c->cert_lifetime_s < 3600)
		log_warnx("cert_lifetime is %llu s: edges renew every few "
		    "seconds (meant for tests)",
		    (unsigned long long)c->cert_lifetime_s);
}

/* Topology defaults from the config go into a database made just now. */
static int
ctld_seed_defaults(struct ctld *d)
{
	const struct config *c = &d->cfg;
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err = { 0 };
	static const enum model_topology topo[] = {
		[CONFIG_POLICY_FULL_MESH] = MODEL_TOPO_FULL_MESH,
		[CONFIG_POLICY_HUB_SPOKE] = MODEL_TOPO_HUB_SPOKE,
		[CONFIG_POLICY_REGIONAL] = MODEL_TOPO_REGIONAL,
	};

	if (store_policy_get(d->st, &pol, &err) == -1 ||
	    store_crypto_get(d->st, &cr, &err) == -1)
		goto fail;
	pol.topology = topo[c->policy];
	if (model_prefix_parse(c->tunnel_pool, false, &pol.pool, "pool",
	    &err) == -1)
		goto fail;
	pol.asn_min = c->asn_min;
	pol.asn_max = c->asn_max;
	pol.encap = c->encap == CONFIG_ENCAP_VXLAN ? MODEL_ENCAP_VXLAN :
	    MODEL_ENCAP_GRE;
	pol.vni_min = c->vni_base;
	pol.mtu = c->mtu;
	config_crypto(c, &cr);
	if (store_policy_set(d->st, &pol, &err) == -1 ||
	    store_crypto_set(d->st, &cr, &err) == -1)
		goto fail;
	log_info("new database: topology defaults from the configuration "
	    "stored");
	return 0;
fail:
	log_warnx("storing topology defaults: %s (%s)", err.message,
	    err.field);
	return -1;
}

/*
 * The server key exists only in memory: the rpc layer reads PEM files,
 * so hand it an anonymous memory file by its /proc path.
 */
static int
ctld_memfile(const char *name, const char *text, char *path, size_t pathsz)
{
	size_t len = strlen(text), off = 0;
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd == -1) {
		log_warn("memfd_create");
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n <= 0) {
			log_warn("memfd write");
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	snprintf(path, pathsz, "/proc/self/fd/%d", fd);
	return fd;
}

/*
 * Every edge holds one descriptor here (its connection), and a reconnect
 * storm holds one more per handshake in flight: the soft limit (1,024
 * on most systems) would cap the controller near a thousand edges.
 * Take the hard limit, whatever it is (the systemd unit sets
 * LimitNOFILE); the rpc layer keeps a reserve below it and refuses
 * connections beyond (proto/RPC.md, "Descriptors").
 */
static void
ctld_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			log_warn("setrlimit(RLIMIT_NOFILE)");
			(void)getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		log_info("fd limit unlimited");
	else
		log_info("fd limit %llu%s", (unsigned long long)rl.rlim_cur,
		    rl.rlim_cur < 16384 ? " (fewer than 16,384: a crowd of "
		    "edges may be refused; raise LimitNOFILE or ulimit -Hn)" :
		    "");
}

/* The pin an edge may be given instead of the CA file (ca_pin). */
static int
ctld_ca_pin(struct ctld *d)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned int mdlen = 0;
	size_t len;
	const uint8_t *der = ca_cert_der(d->ca, &len);

	if (EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -1;
	util_hex(md, mdlen, hex);
	snprintf(d->ca_pin, sizeof(d->ca_pin), "sha256:%s", hex);
	log_info("CA pin for edges (ca_pin): %s", d->ca_pin);
	return 0;
}

static int
ctld_start_rpc(struct ctld *d)
{
	char ca_path[64], cert_path[64], key_path[64];
	int fds[3] = { -1, -1, -1 }, rc = -1;
	struct rpc_server_opts o;
	char *chain = NULL;

	/* The CA rides along after the server certificate, so that an edge
	 * given only ca_pin can learn it from the handshake (pin.c). */
	if (asprintf(&chain, "%s%s", ca_server_cert_pem(d->ca),
	    ca_cert_pem(d->ca)) == -1) {
		chain = NULL;
		goto out;
	}
	if ((fds[0] = ctld_memfile("ca.crt", ca_cert_pem(d->ca), ca_path,
	    sizeof(ca_path))) == -1 ||
	    (fds[1] = ctld_memfile("server.crt", chain,
	    cert_path, sizeof(cert_path))) == -1 ||
	    (fds[2] = ctld_memfile("server.key", ca_server_key_pem(d->ca),
	    key_path, sizeof(key_path))) == -1)
		goto out;
	memset(&o, 0, sizeof(o));
	o.listen = d->cfg.grpc_listen;
	o.enroll_listen = d->cfg.enroll_listen;
	o.tls.ca_file = ca_path;
	o.tls.cert_file = cert_path;
	o.tls.key_file = key_path;
	/*
	 * A snapshot may be as large as pbconv accepts (16 MiB): the rpc
	 * defaults (4 MiB per message, 8 MiB per queue) would refuse it.
	 */
	o.limits.max_message = PBCONV_MAX_SESSION_MSG;
	o.limits.queue_bytes = 2 * PBCONV_MAX_SESSION_MSG;
	o.limits.queue_msgs = d->cfg.test_send_queue; /* 0: rpc default */
	/* What an edge sends is small (the largest, a status, is kept only
	 * up to MODEL_STATUS_MAX as JSON): refuse more before buffering it. */
	o.limits.max_inbound = SESSION_EDGE_MSG_MAX;
	o.first_message_ms = d->cfg.hello_timeout_s * 1000u;
	o.handshake_ms = d->cfg.handshake_timeout_s * 1000u;
	if ((d->rpc = rpc_server_new(&o)) == NULL)
		goto out;
	if (session_register(d->sessions, d->rpc) == -1 ||
	    enroll_register(d->enroll, d->rpc) == -1 ||
	    rpc_server_start(d->rpc) == -1) {
		rpc_server_free(d->rpc);
		d->rpc = NULL;
		goto out;
	}
	log_info("sessions on %s (port %d), enrollment on %s (port %d)",
	    d->cfg.grpc_listen, rpc_server_port(d->rpc, false),
	    d->cfg.enroll_listen, rpc_server_port(d->rpc, true));
	rc = 0;
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] != -1) {
			/* Wipe the key's only copy outside ca.c. */
			if (i == 2 && ftruncate(fds[i], 0) == -1)
				log_warn("memfd truncate");
			close(fds[i]);
		}
	free(chain);
	return rc;
}

static void
ctld_hook_changed(void *arg, const uint64_t *ids, size_t n)
{
	session_notify(arg, ids, n);
}

static void
ctld_hook_rekey(void *arg, bool site, uint64_t id)
{
	session_rekey_request(arg, site, id);
}

static bool
ctld_hook_last_failure(void *arg, uint64_t site_id,
    struct model_ack_failure *out)
{
	return session_last_failure(arg, site_id, out);
}

static int
ctld_hook_issued(void *arg, uint64_t site_id, const uint8_t *der, size_t len)
{
	return session_cert_issued(arg, site_id, der, len);
}

/* A PEM file for the HTTPS listener (at most 64 KiB). */
static char *
ctld_read_pem(const char *path, bool secret, size_t *lenp)
{
	struct stat sb;
	char *buf;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return NULL;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size > (off_t)64 * 1024 || sb.st_size == 0) {
		log_warnx("%s: not a PEM file of at most 64 KiB", path);
		close(fd);
		return NULL;
	}
	if (secret && (sb.st_mode & 077) != 0) {
		log_warnx("%s: a private key readable by group or others is "
		    "refused (chmod 600)", path);
		close(fd);
		return NULL;
	}
	if ((buf = calloc(1, (size_t)sb.st_size + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	n = read(fd, buf, (size_t)sb.st_size);
	close(fd);
	if (n != sb.st_size) {
		log_warnx("%s: short read", path);
		util_wipe(buf, (size_t)sb.st_size);
		free(buf);
		return NULL;
	}
	*lenp = (size_t)n;
	return buf;
}

/* 127.0.0.0/8 or ::1: nobody else can reach it. */
static bool
ctld_loopback(const char *listen)
{
	char host[CONFIG_ADDR_MAX];
	struct in6_addr a6;
	struct in_addr a4;
	uint16_t port;

	if (config_split_addr(listen, host, sizeof(host), &port) == -1)
		return false;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 &&
	    IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * How the REST API and the dashboard are served: HTTPS from the
 * configured files, or from a certificate the CA issues for
 * http_tls_names, or (a listener others can reach, nothing configured)
 * from the controller's own server certificate; plain HTTP only on
 * loopback or with http_plaintext = yes, and then said so in the log.
 */
static int
ctld_http_tls(struct ctld *d)
{
	const struct config *c = &d->cfg;
	const char *names[CONFIG_NAMES_MAX];
	size_t len = 0;

	if (c->http_tls_cert[0] != '\0') {
		if ((d->http_cert_pem = ctld_read_pem(c->http_tls_cert, false,
		    &len)) == NULL || (d->http_key_pem = ctld_read_pem(
		    c->http_tls_key, true, &d->http_key_len)) == NULL)
			return -1;
		log_info("REST API: HTTPS with the certificate of %s",
		    c->http_tls_cert);
		return 0;
	}
	if (c->n_http_tls_names > 0) {
		for (unsigned i = 0; i < c->n_http_tls_names; i++)
			names[i] = c->http_tls_names[i];
		if (ca_issue_http(d->ca, names, c->n_http_tls_names,
		    &d->http_cert_pem, &d->http_key_pem, &d->http_key_len) ==
		    -1)
			return -1;
		log_info("REST API: HTTPS with a certificate from the "
		    "controller's CA for %s and the loopback names",
		    c->http_tls_names[0]);
		return 0;
	}
	if (c->http_plaintext) {
		log_warnx("REST API: plaintext HTTP on %s (http_plaintext = "
		    "yes): tokens cross the network in the clear",
		    c->http_listen);
		return 0;
	}
	if (ctld_loopback(c->http_listen)) {
		log_info("REST API: plaintext HTTP on loopback %s",
		    c->http_listen);
		return 0;
	}
	if ((d->http_cert_pem = strdup(ca_server_cert_pem(d->ca))) == NULL ||
	    (d->http_key_pem = strdup(ca_server_key_pem(d->ca))) == NULL)
		return -1;
	d->http_key_len = strlen(d->http_key_pem);
	log_info("REST API: HTTPS with the controller's certificate (%s, "
	    "server_names)", c->controller_name);
	return 0;
}

static int
ctld_start(struct ctld *d)
{
	struct ca_params cp;
	bool pg = d->cfg.store[0] != '\0';
	struct store_opts so = { .backend = pg ? "postgresql" : "sqlite",
	    .path = pg ? d->cfg.store : d->cfg.database };
	struct model_error err = { 0 };
	struct session_params sp;
	struct enroll_params ep;
	struct api_config ac;
	const char *names[CONFIG_NAMES_MAX];
	bool created = false;

	for (unsigned i = 0; i < d->cfg.n_server_names; i++)
		names[i] = d->cfg.server_names[i];
	cp = (struct ca_params){ d->cfg.ca_dir, d->cfg.ca_key_passphrase_file,
	    d->cfg.controller_name, names, d->cfg.n_server_names };
	if ((d->ca = ca_open(&cp)) == NULL)
		return -1;
	if (store_open(&so, &d->st, &err) == -1 ||
	    store_open(&so, &d->api_st, &err) == -1 ||
	    store_open(&so, &d->enroll_st, &err) == -1 ||
	    store_open(&so, &d->events_st, &err) == -1) {
		log_warnx("database %s: %s", pg ? "(PostgreSQL)" :
		    d->cfg.database, err.message);
		return -1;
	}
	log_info("store: %s%s%s", store_engine(d->st), pg ? "" : " ",
	    pg ? "" : d->cfg.database);
	if (pg) {
		/* One name in the change log for the whole process; the
		 * follower reads the log's head before the session layer
		 * loads the model, so nothing in between is missed. */
		const char *origin = store_origin(d->st);

		store_set_origin(d->api_st, origin);
		store_set_origin(d->enroll_st, origin);
		store_set_origin(d->events_st, origin);
		if ((d->replica = replica_open(&so, origin,
		    (int)d->cfg.leader_lease_s * 1000)) == NULL)
			return -1;
	}
	if (store_created(d->st) && ctld_seed_defaults(d) == -1)
		return -1;
	if (auth_bootstrap(d->st, d->cfg.admin_token_file, &created) == -1)
		return -1;
	if (created)
		log_info("first start: admin API token written to %s",
		    d->cfg.admin_token_file);

	memset(&sp, 0, sizeof(sp));
	ctld_session_cfg(&d->cfg, &sp.cfg);
	sp.st = d->st;
	sp.ca = d->ca;
	sp.metrics = &d->metrics;
	sp.replicated = d->replica != NULL;
	if ((d->sessions = session_new(&sp)) == NULL)
		return -1;
	if (d->replica != NULL && replica_start(d->replica, d->sessions) == -1)
		return -1;
	memset(&ep, 0, sizeof(ep));
	ctld_enroll_cfg(&d->cfg, &ep.cfg);
	ep.st = d->enroll_st;
	ep.ca = d->ca;
	ep.metrics = &d->metrics;
	ep.hooks.arg = d->sessions;
	ep.hooks.issued = ctld_hook_issued;
	if ((d->enroll = enroll_new(&ep)) == NULL)
		return -1;
	if (ctld_ca_pin(d) == -1 || ctld_start_rpc(d) == -1)
		return -1;

	memset(&ac, 0, sizeof(ac));
	ac.listen = d->cfg.http_listen;
	ac.max_connections = d->cfg.http_max_connections;
	ac.max_per_ip = d->cfg.http_max_per_ip;
	ac.timeout_s = d->cfg.http_timeout_s;
	ac.enroll_ttl_s = (int64_t)d->cfg.token_lifetime_s;
	ac.edge_session_port = (uint16_t)rpc_server_port(d->rpc, false);
	ac.edge_enroll_port = (uint16_t)rpc_server_port(d->rpc, true);
	ac.edge_controller_name = d->cfg.controller_name;
	ac.edge_ca_pin = d->ca_pin;
	ac.hooks.arg = d->sessions;
	ac.hooks.topology_changed = ctld_hook_changed;
	ac.hooks.rekey = ctld_hook_rekey;
	ac.hooks.last_failure = ctld_hook_last_failure;
	ac.metrics = &d->metrics;
	if (ctld_http_tls(d) == -1)
		return -1;
	ac.tls_cert_pem = d->http_cert_pem;
	ac.tls_key_pem = d->http_key_pem;
	ac.web_root = d->cfg.web_root[0] != '\0' ? d->cfg.web_root :
	    CONFIG_WEB_ROOT_DEFAULT;
	ac.events_st = d->events_st;
	ac.sse_max = d->cfg.sse_max;
	ac.sse_max_per_client = d->cfg.sse_max_per_client;
	ac.pool6 = sp.cfg.pool6;
	if ((d->api = api_start(&ac, d->api_st)) == NULL)
		return -1;
	log_info("REST API on %s (port %u)", d->cfg.http_listen,
	    (unsigned)api_port(d->api));
	return 0;
}

static void
ctld_stop(struct ctld *d)
{
	/* Where a slow stop went (10,000 connections take seconds). */
	uint64_t t0 = util_mono_ms(), t_api, t_sess, t_rpc, t_store;

	/* The API first: it may still notify the sessions. */
	api_stop(d->api);
	d->api = NULL;
	replica_free(d->replica);
	d->replica = NULL;
	t_api = util_mono_ms();
	session_shutdown(d->sessions);
	/* The worker lets go of its calls before the rpc layer frees them. */
	enroll_shutdown(d->enroll);
	t_sess = util_mono_ms();
	/* Lets the closing statuses go out, then frees every call. */
	rpc_server_free(d->rpc);
	d->rpc = NULL;
	t_rpc = util_mono_ms();
	enroll_free(d->enroll);
	d->enroll = NULL;
	session_free(d->sessions);
	d->sessions = NULL;
	store_close(d->events_st);
	store_close(d->enroll_st);
	store_close(d->api_st);
	store_close(d->st);
	d->events_st = d->enroll_st = d->api_st = d->st = NULL;
	t_store = util_mono_ms();
	log_info("stop took %.1f s: API and replica %.1f s, closing sessions "
	    "%.1f s, gRPC %.1f s, memory and store %.1f s",
	    (double)(t_store - t0) / 1000, (double)(t_api - t0) / 1000,
	    (double)(t_sess - t_api) / 1000, (double)(t_rpc - t_sess) / 1000,
	    (double)(t_store - t_rpc) / 1000);
	free(d->http_cert_pem);
	if (d->http_key_pem != NULL)
		util_wipe(d->http_key_pem, d->http_key_len);
	free(d->http_key_pem);
	d->http_cert_pem = d->http_key_pem = NULL;
	ca_free(d->ca);
	d->ca = NULL;
}

/* The HTTPS, web root and stream keys: all need a restart. */
static bool
ctld_http_same(const struct config *a, const struct config *b)
{
	return strcmp(a->http_tls_cert, b->http_tls_cert) == 0 &&
	    strcmp(a->http_tls_key, b->http_tls_key) == 0 &&
	    a->n_http_tls_names == b->n_http_tls_names &&
	    memcmp(a->http_tls_names, b->http_tls_names,
	    sizeof(a->http_tls_names)) == 0 &&
	    a->http_plaintext == b->http_plaintext &&
	    strcmp(a->web_root, b->web_root) == 0 &&
	    a->sse_max == b->sse_max &&
	    a->sse_max_per_client == b->sse_max_per_client;
}

static void
ctld_http_keep(struct config *next, const struct config *cur)
{
	memcpy(next->http_tls_cert, cur->http_tls_cert,
	    sizeof(next->http_tls_cert));
	memcpy(next->http_tls_key, cur->http_tls_key,
	    sizeof(next->http_tls_key));
	memcpy(next->http_tls_names, cur->http_tls_names,
	    sizeof(next->http_tls_names));
	next->n_http_tls_names = cur->n_http_tls_names;
	next->http_plaintext = cur->http_plaintext;
	memcpy(next->web_root, cur->web_root, sizeof(next->web_root));
	next->sse_max = cur->sse_max;
	next->sse_max_per_client = cur->sse_max_per_client;
}

/*
 * SIGHUP: parse the whole file into a fresh struct; only a complete,
 * valid file replaces the running configuration.  Listeners, paths and
 * the CA's names need a restart: a change there is logged, not applied.
 */
static void
ctld_reload(struct ctld *d)
{
	struct config next;
	struct session_config sc;
	struct enroll_config ec;

	if (config_load(d->cfg_path, &next) == -1) {
		log_warnx("reload: %s refused; keeping the running "
		    "configuration", d->cfg_path);
		return;
	}
	if (strcmp(next.grpc_listen, d->cfg.grpc_listen) != 0 ||
	    strcmp(next.enroll_listen, d->cfg.enroll_listen) != 0 ||
	    strcmp(next.http_listen, d->cfg.http_listen) != 0 ||
	    next.http_max_connections != d->cfg.http_max_connections ||
	    next.http_max_per_ip != d->cfg.http_max_per_ip ||
	    next.http_timeout_s != d->cfg.http_timeout_s ||
	    strcmp(next.database, d->cfg.database) != 0 ||
	    strcmp(next.store, d->cfg.store) != 0 ||
	    strcmp(next.ca_dir, d->cfg.ca_dir) != 0 ||
	    strcmp(next.controller_name, d->cfg.controller_name) != 0 ||
	    next.n_server_names != d->cfg.n_server_names ||
	    memcmp(next.server_names, d->cfg.server_names,
	    sizeof(next.server_names)) != 0 ||
	    next.test_send_queue != d->cfg.test_send_queue ||
	    !ctld_http_same(&next, &d->cfg))
		log_warnx("reload: listeners, HTTP limits, paths, certificate "
		    "names and test_send_queue take effect at the next restart");
	/* Keep what needs a restart as it runs, take the rest. */
	memcpy(next.grpc_listen, d->cfg.grpc_listen, sizeof(next.grpc_listen));
	memcpy(next.enroll_listen, d->cfg.enroll_listen,
	    sizeof(next.enroll_listen));
	memcpy(next.http_listen, d->cfg.http_listen, sizeof(next.http_listen));
	next.http_max_connections = d->cfg.http_max_connections;
	next.http_max_per_ip = d->cfg.http_max_per_ip;
	next.http_timeout_s = d->cfg.http_timeout_s;
	memcpy(next.database, d->cfg.database, sizeof(next.database));
	memcpy(next.store, d->cfg.store, sizeof(next.store));
	memcpy(next.ca_dir, d->cfg.ca_dir, sizeof(next.ca_dir));
	memcpy(next.controller_name, d->cfg.controller_name,
	    sizeof(next.controller_name));
	memcpy(next.server_names, d->cfg.server_names,
	    sizeof(next.server_names));
	next.n_server_names = d->cfg.n_server_names;
	next.test_send_queue = d->cfg.test_send_queue;
	ctld_http_keep(&next, &d->cfg);
	d->cfg = next;
	log_setdebug(d->cfg.debug);
	if (d->cfg.debug[0] == '\0')
		log_setlevel(LOG_LVL_INFO);
	ctld_session_cfg(&d->cfg, &sc);
	session_reconfig(d->sessions, &sc);
	ctld_enroll_cfg(&d->cfg, &ec);
	enroll_reconfig(d->enroll, &ec);
	log_info("reload: configuration from %s applied", d->cfg_path);
}

static void
ctld_signal(struct ctld *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %u: stopping", si.ssi_signo);
			d->quit = true;
			break;
		case SIGHUP:
			ctld_reload(d);
			break;
		default:
			break;
		}
	}
}

static void
ctld_loop(struct ctld *d)
{
	while (!d->quit) {
		struct pollfd pfd[4] = {
			{ .fd = d->sigfd, .events = POLLIN },
			{ .fd = rpc_server_fd(d->rpc), .events = POLLIN },
			{ .fd = session_wake_fd(d->sessions), .events = POLLIN },
			{ .fd = enroll_fd(d->enroll), .events = POLLIN },
		};
		int n = poll(pfd, 4, session_timeout_ms(d->sessions));

		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			break;
		}
		if (pfd[0].revents & POLLIN)
			ctld_signal(d);
		if (pfd[1].revents & POLLIN)
			rpc_server_dispatch(d->rpc);
		if (pfd[2].revents & POLLIN)
			session_wake(d->sessions);
		if (pfd[3].revents & POLLIN)
			enroll_dispatch(d->enroll);
		session_tick(d->sessions);
		metrics_rpc_set(&d->metrics, METRICS_RPC_ACCEPT_REFUSED,
		    rpc_accept_refused());
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctld *d;
	sigset_t mask;
	bool check = false;
	int ch, rc = 1;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return 1;
	d->cfg_path = "/etc/meshwan/controller.conf";
	d->sigfd = -1;
	while ((ch = getopt_long(argc, argv, "df:hnV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			d->foreground = true;
			break;
		case 'f':
			d->cfg_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'V':
			printf("meshwan-controller %s\n", CTLD_VERSION);
			free(d);
			return 0;
		case 'h':
			ctld_usage(stdout);
			free(d);
			return 0;
		default:
			ctld_usage(stderr);
			free(d);
			return 2;
		}
	}
	if (optind != argc) {
		ctld_usage(stderr);
		free(d);
		return 2;
	}
	log_init("meshwan-controller", d->foreground || check);
	if (config_load(d->cfg_path, &d->cfg) == -1) {
		log_warnx("%s: configuration refused", d->cfg_path);
		free(d);
		return 1;
	}
	if (check) {
		config_print(&d->cfg, stdout);
		free(d);
		return 0;
	}
	if (log_setdebug(d->cfg.debug) == -1)
		log_warnx("debug list too long; ignored");
	if (!d->foreground && daemon(0, 0) == -1)
		fatal("daemon");

	/* Signals become events on the loop; none of them has a handler. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
	    (d->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	signal(SIGPIPE, SIG_IGN);
	umask(077);

	log_info("meshwan-controller %s starting (config %s)", CTLD_VERSION,
	    d->cfg_path);
	ctld_fd_limit();
	if (ctld_start(d) == 0) {
		log_info("ready");
		ctld_loop(d);
		rc = 0;
	} else {
		log_warnx("start-up failed");
	}
	ctld_stop(d);
	close(d->sigfd);
	log_info("stopped");
	free(d);
	return rc;
}
