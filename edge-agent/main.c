/*
 * main.c — meshwan-edge: options, logging, signals, privileges; the work
 * is agent.c's.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "edge-agent/agent.h"
#include "edge-agent/config.h"
#include "edge-agent/status.h"
#include "lib/log.h"

#define EDGE_DEFAULT_CONFIG "/etc/meshwan/edge.conf"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: meshwan-edge [-c FILE] [-f] [-d] [-n]\n"
	    "       meshwan-edge status [-c FILE | -s SOCKET] [--json]\n"
	    "       meshwan-edge -h | -V\n"
	    "\n"
	    "The meshwan edge agent: enrolls this site with the controller,\n"
	    "keeps its Session stream, turns the intent into tunnels, SAs\n"
	    "and BGP sessions (FRR), and keeps the site forwarding while the\n"
	    "controller is away.\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  -f, --foreground   stay in the foreground, log to stderr\n"
	    "  -d, --debug        foreground, debug logging of everything\n"
	    "  -n, --check        check the configuration, print its normal\n"
	    "                     form, exit (0 valid, 1 not)\n"
	    "  -V, --version      print the version\n"
	    "  -h, --help         this text\n"
	    "\n"
	    "status asks the running agent (root only) for its state over\n"
	    "the control socket of FILE (-c) or SOCKET (-s) and prints it\n"
	    "as tables, or as JSON with --json.\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop (uesp tunnels go with the process;\n"
	    "the cached intent rebuilds them on the next start), SIGHUP\n"
	    "reloads the configuration all or nothing (a bad file is refused\n"
	    "and the running one stays).\n"
	    "State (certificate, epoch keys, cached intent, sequence\n"
	    "reservations) lives in state_dir.  See edge-agent/README.md and\n"
	    "meshwan-edge(8).\n", EDGE_DEFAULT_CONFIG);
}

/*
 * After set-up, keep only what the running agent needs:
 *  - CAP_NET_ADMIN: TUN/TAP devices, addresses, MTUs (tunnel add/update);
 *  - CAP_NET_RAW: uesp's sockets options on new tunnel sockets;
 *  - CAP_DAC_OVERRIDE: FRR's vty sockets (owned by frr) through vtysh,
 *    and the state folder if it belongs to another user.
 * Everything else (CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SETUID, ...) goes
 * from the effective, permitted and bounding sets, so neither the agent
 * nor the vtysh it runs can get it back.  Best effort: a failure is
 * logged (an unprivileged test run has nothing to drop).
 */
static void
drop_caps(void)
{
	static const int keep[] = { CAP_NET_ADMIN, CAP_NET_RAW,
		CAP_DAC_OVERRIDE };
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint32_t mask[2] = { 0, 0 };

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		mask[keep[i] / 32] |= 1u << (keep[i] % 32);
	for (int c = 0; c <= CAP_LAST_CAP; c++) {
		if (mask[c / 32] & (1u << (c % 32)))
			continue;
		(void)prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
	}
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) == -1) {
		log_warn("capget");
		return;
	}
	for (int i = 0; i < 2; i++) {
		d[i].effective &= mask[i];
		d[i].permitted &= mask[i];
		/* vtysh is exec'd: it inherits the kept ones (ambient is
		 * not used; root keeps what the bounding set allows). */
		d[i].inheritable &= mask[i];
	}
	if (syscall(SYS_capset, &h, d) == -1)
		log_warn("capset");
	else
		log_debug("config", "capabilities: kept net_admin, net_raw, "
		    "dac_override");
}

/* meshwan-edge status [-c FILE | -s SOCKET] [--json] */
static int
status_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *sock = NULL;
	struct edge_config cfg;
	bool json = false;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:s:jh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (path != NULL && sock != NULL)) {
		usage(stderr);
		return 2;
	}
	log_init("meshwan-edge", true);
	if (sock != NULL)
		return status_client(sock, json, stdout) == 0 ? 0 : 1;
	if (edge_config_load(path != NULL ? path : EDGE_DEFAULT_CONFIG,
	    &cfg) == -1)
		return 1;
	rc = status_client(cfg.control_socket, json, stdout);
	edge_config_free(&cfg);
	return rc == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = EDGE_DEFAULT_CONFIG;
	bool foreground = false, debug = false, check = false;
	struct edge_config cfg;
	struct agent *a;
	sigset_t mask;
	struct status_srv *srv;
	int ch, rc;

	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	while ((ch = getopt_long(argc, argv, "c:fdnVh", longopts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'd':
			foreground = debug = true;
			break;
		case 'n':
			check = true;
			break;
		case 'V':
			printf("meshwan-edge %s\n", AGENT_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("meshwan-edge", foreground || check);
	if (edge_config_load(path, &cfg) == -1)
		return 1;
	if (check) {
		edge_config_print(&cfg, stdout);
		edge_config_free(&cfg);
		return 0;
	}
	log_setlevel(cfg.log_level);
	(void)log_setdebug(cfg.debug);
	if (debug)
		(void)log_setdebug("all");
	if (!foreground && daemon(0, 0) == -1) {
		log_warn("daemon");
		edge_config_free(&cfg);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("meshwan-edge %s starting (config %s, backend %s)",
	    AGENT_VERSION, path, edge_config_backend_name(cfg.backend));
	a = agent_new(&cfg, path);
	/* After agent_new (it makes state_dir) and daemon() (threads). */
	srv = a != NULL ? status_start(cfg.control_socket,
	    cfg.metrics_listen[0] != '\0' ? cfg.metrics_listen : NULL) : NULL;
	edge_config_free(&cfg);
	if (srv == NULL) {
		agent_free(a);
		return 1;
	}
	agent_set_status(a, srv);
	drop_caps();
	rc = agent_run(a);
	agent_free(a);
	status_stop(srv);
	log_info("meshwan-edge stopped");
	return rc;
}
