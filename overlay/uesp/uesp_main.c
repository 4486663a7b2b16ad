/*
 * uesp_main.c — meshwan-uesp: run userspace ESP tunnels from a static
 * file, without the controller.  For tests, benchmarks, and for users
 * debugging a link.  The file format is in uesp_cfg.h and README.md.
 * Outbound sequence numbers are reserved ahead in CONFIG.seq (-S), so a
 * restart on the same keys never seals a nonce twice (README.md, "Nonces").
 *
 * Control: SIGHUP re-reads the file and reconciles the running tunnels to
 * it (so a rekey is: edit the file, SIGHUP); SIGUSR1 writes statistics as
 * JSON to the --stats file (atomically, by rename; also once at start, so
 * its appearance says the process is ready); SIGINT/SIGTERM stop.
 * Signals are taken from a signalfd on the main thread; the data plane
 * runs on the backend's worker threads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "overlay/overlay.h"
#include "overlay/uesp/uesp_cfg.h"

struct uesp_main {
	const char *config;
	const char *stats_path;
	const char *seq_path;	/* sequence reservation file */
	const struct overlay_ops *ops;
	void *ctx;
	struct uesp_cfg *cur;	/* what the backend holds */
	uint64_t generation;	/* successful applies */
	uint64_t reload_errors;
	uint64_t dumps;
};

static void
uesp_main_usage(FILE *f)
{
	fprintf(f,
"usage: meshwan-uesp [-n] [-s FILE] [-S FILE] [-d LIST] [-b BACKEND] CONFIG\n"
"\n"
"Runs the userspace ESP tunnels (ESP-in-UDP, GRE or VXLAN inside) that the\n"
"JSON file CONFIG describes, until SIGINT or SIGTERM.\n"
"\n"
"  -n, --check        parse CONFIG, print it normalised (keys redacted), exit\n"
"  -s, --stats FILE   write statistics as JSON to FILE once running (the\n"
"                     tunnels are up and signals handled) and on SIGUSR1\n"
"  -S, --seq-file FILE sequence reservation file (default CONFIG.seq): after\n"
"                     a restart an outbound key resumes above every sequence\n"
"                     number (= AES-GCM nonce) it may have used; keep it\n"
"                     with CONFIG, one running process per file\n"
"  -d, --debug LIST   debug logs for subsystems (e.g. uesp,null or all)\n"
"  -b, --backend NAME overlay backend (uesp or null; default uesp)\n"
"  -h, --help         this text\n"
"\n"
"Signals: SIGHUP re-reads CONFIG and applies the difference (new SAs first,\n"
"then outbound switches, then removals: a rekey drops nothing); SIGUSR1\n"
"writes --stats FILE.  See overlay/uesp/README.md for the file format.\n");
}

static json_t *
uesp_main_drops(const struct overlay_drops *d)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "auth", (json_int_t)d->auth, "replay", (json_int_t)d->replay,
	    "unknown_spi", (json_int_t)d->unknown_spi,
	    "malformed", (json_int_t)d->malformed,
	    "no_sa", (json_int_t)d->no_sa, "io", (json_int_t)d->io,
	    "source", (json_int_t)d->source);
}

static json_t *
uesp_main_tunnel(struct uesp_main *m, const struct uesp_cfg_tunnel *ct)
{
	struct overlay_tunnel_stats ts;
	struct overlay_sa_stats ss;
	json_t *t, *sas;
	unsigned i;

	if (m->ops->tunnel_stats(m->ctx, ct->p.id, &ts) < 0)
		return NULL;
	sas = json_array();
	for (i = 0; i < ct->nsa; i++) {
		if (m->ops->sa_stats(m->ctx, ct->p.id, ct->sa[i].spi,
		    ct->sa[i].dir, &ss) < 0)
			continue;
		json_array_append_new(sas, json_pack(
		    "{s:s,s:I,s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		    "dir", overlay_dir_str(ss.dir), "spi", (json_int_t)ss.spi,
		    "active", ss.active, "soft_expired", ss.soft_expired,
		    "hard_expired", ss.hard_expired,
		    "packets", (json_int_t)ss.packets,
		    "bytes", (json_int_t)ss.bytes, "seq", (json_int_t)ss.seq,
		    "age_s", (json_int_t)ss.age_s, "auth", (json_int_t)ss.auth,
		    "replay", (json_int_t)ss.replay,
		    "malformed", (json_int_t)ss.malformed));
	}
	t = json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o}",
	    "id", (json_int_t)ct->p.id, "device", ct->p.ifname,
	    "encap", overlay_encap_str(ct->p.encap),
	    "spi_out", (json_int_t)ts.spi_out,
	    "tx_packets", (json_int_t)ts.tx_packets,
	    "tx_bytes", (json_int_t)ts.tx_bytes,
	    "rx_packets", (json_int_t)ts.rx_packets,
	    "rx_bytes", (json_int_t)ts.rx_bytes,
	    "keepalives_tx", (json_int_t)ts.keepalives_tx,
	    "keepalives_rx", (json_int_t)ts.keepalives_rx,
	    "non_esp", (json_int_t)ts.non_esp,
	    "drops", uesp_main_drops(&ts.drops), "sas", sas);
	/* NAT rebinding: meshwan-uesp does not follow (the file is the
	 * truth); the note tells the operator which remote_port to set. */
	if (t != NULL && ts.moved_addr.family != AF_UNSPEC) {
		char a[INET6_ADDRSTRLEN], ep[INET6_ADDRSTRLEN + 8];

		overlay_addr_str(&ts.moved_addr, a, sizeof(a));
		snprintf(ep, sizeof(ep), ts.moved_addr.family == AF_INET6 ?
		    "[%s]:%u" : "%s:%u", a, (unsigned)ts.moved_port);
		json_object_set_new(t, "moved_from", json_string(ep));
	}
	if (t != NULL)
		json_object_set_new(t, "moved_rx",
		    json_integer((json_int_t)ts.moved_rx));
	return t;
}

static void
uesp_main_stats(struct uesp_main *m)
{
	struct overlay_drops g;
	json_t *root, *tunnels, *t;
	char tmp[4096];
	unsigned i;

	if (m->stats_path == NULL) {
		log_warnx("SIGUSR1 but no --stats FILE given");
		return;
	}
	tunnels = json_array();
	for (i = 0; i < m->cur->ntunnels; i++)
		if ((t = uesp_main_tunnel(m, &m->cur->tunnels[i])) != NULL)
			json_array_append_new(tunnels, t);
	m->ops->global_stats(m->ctx, &g);
	m->dumps++;
	root = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}",
	    "backend", m->ops->name, "generation", (json_int_t)m->generation,
	    "reload_errors", (json_int_t)m->reload_errors,
	    "dumps", (json_int_t)m->dumps,
	    "global_drops", uesp_main_drops(&g), "tunnels", tunnels);
	if (root == NULL)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", m->stats_path);
	if (json_dump_file(root, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
	    rename(tmp, m->stats_path) < 0)
		log_warn("write %s", m->stats_path);
	json_decref(root);
}

static void
uesp_main_reload(struct uesp_main *m)
{
	struct uesp_cfg *want;

	if ((want = uesp_cfg_load(m->config)) == NULL) {
		m->reload_errors++;
		log_warnx("reload: %s refused, keeping the running state",
		    m->config);
		return;
	}
	if (uesp_cfg_apply(m->ops, m->ctx, m->cur, want) < 0) {
		m->reload_errors++;
		log_warnx("reload: applied in part; the next SIGHUP resumes");
	} else {
		m->generation++;
		log_info("reload: %s applied (generation %llu)", m->config,
		    (unsigned long long)m->generation);
	}
	uesp_cfg_free(want);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'n' },
		{ "stats", required_argument, NULL, 's' },
		{ "seq-file", required_argument, NULL, 'S' },
		{ "debug", required_argument, NULL, 'd' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct uesp_main m;
	struct uesp_cfg *cfg;
	struct signalfd_siginfo si;
	const char *backend = "uesp";
	char seq_default[4096];
	sigset_t set;
	bool check = false, running = true;
	int ch, sfd, rc;

	/* Blocked first thing (so a SIGUSR1 during start-up waits instead of
	 * killing us) and before the workers start, so only the signalfd
	 * sees them; they are read once the first apply is done. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return 1;
	memset(&m, 0, sizeof(m));
	log_init("meshwan-uesp", true);
	while ((ch = getopt_long(argc, argv, "ns:S:d:b:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			check = true;
			break;
		case 's':
			m.stats_path = optarg;
			break;
		case 'S':
			m.seq_path = optarg;
			break;
		case 'd':
			if (log_setdebug(optarg) < 0)
				fatalx("debug list too long");
			break;
		case 'b':
			backend = optarg;
			break;
		case 'h':
			uesp_main_usage(stdout);
			return 0;
		default:
			uesp_main_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		uesp_main_usage(stderr);
		return 2;
	}
	m.config = argv[optind];
	if ((cfg = uesp_cfg_load(m.config)) == NULL)
		return 1;
	if (check) {
		rc = uesp_cfg_print(cfg, stdout) < 0 ? 1 : 0;
		uesp_cfg_free(cfg);
		return rc;
	}
	if ((m.ops = overlay_find(backend)) == NULL)
		fatalx("unknown backend %s", backend);

	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		fatal("signalfd");
	signal(SIGPIPE, SIG_IGN);

	if (m.seq_path == NULL) {
		if (snprintf(seq_default, sizeof(seq_default), "%s.seq",
		    m.config) >= (int)sizeof(seq_default))
			fatalx("%s: name too long for a sequence file", m.config);
		m.seq_path = seq_default;
	}
	cfg->init.seq_file = m.seq_path;
	if ((rc = m.ops->init(&cfg->init, &m.ctx)) < 0)
		fatalx("backend %s: %s", backend, strerror(-rc));
	if ((m.cur = uesp_cfg_empty()) == NULL)
		fatalx("out of memory");
	if (uesp_cfg_apply(m.ops, m.ctx, m.cur, cfg) < 0)
		fatalx("%s: could not be applied", m.config);
	m.generation = 1;
	uesp_cfg_free(cfg);
	log_info("running %u tunnels from %s", m.cur->ntunnels, m.config);
	/* A first dump says "started, signals are handled" to whoever waits. */
	if (m.stats_path != NULL)
		uesp_main_stats(&m);

	while (running) {
		ssize_t r = read(sfd, &si, sizeof(si));

		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(si))
			fatal("signalfd read");
		switch (si.ssi_signo) {
		case SIGHUP:
			uesp_main_reload(&m);
			break;
		case SIGUSR1:
			uesp_main_stats(&m);
			break;
		default:
			running = false;
			break;
		}
	}
	log_info("stopping");
	m.ops->fini(m.ctx);
	uesp_cfg_free(m.cur);
	close(sfd);
	return 0;
}
