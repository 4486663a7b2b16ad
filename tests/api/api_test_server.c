/*
 * api_test_server.c — the REST API on its own (store + API, no gRPC), for
 * the shell tests of curl/jq and meshwanctl.
 *
 * usage: api_test_server -d DB -t ADMIN_TOKEN_FILE -p PORT_FILE
 *                        [-l LISTEN] [-k HOOK_LOG] [-c MAX_CONNECTIONS]
 *                        [-i MAX_PER_ADDRESS] [-T IDLE_TIMEOUT_S]
 * Listens on LISTEN (default 127.0.0.1:0), writes the bound port to
 * PORT_FILE once serving, and runs until SIGTERM or SIGINT.  The hook is a
 * test double: it appends one line per topology_changed call to HOOK_LOG.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/api.h"
#include "controller/auth.h"
#include "controller/metrics.h"
#include "controller/store.h"
#include "lib/log.h"

static volatile sig_atomic_t server_stop;

static void
server_on_signal(int sig)
{
	(void)sig;
	server_stop = 1;
}

static void
server_hook(void *arg, const uint64_t *ids, size_t n)
{
	const char *path = arg;
	FILE *f;
	size_t i;

	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return;
	fprintf(f, "topology_changed n=%zu", n);
	for (i = 0; i < n; i++)
		fprintf(f, " %llu", (unsigned long long)ids[i]);
	fputc('\n', f);
	fclose(f);
}

int
main(int argc, char **argv)
{
	const char *db = NULL, *tokfile = NULL, *portfile = NULL;
	const char *listen = "127.0.0.1:0", *hooklog = NULL;
	struct store_opts so = { 0 };
	struct api_config ac;
	struct metrics metrics;
	struct model_error err;
	struct sigaction sa;
	sigset_t block, old;
	struct store *st;
	struct api *api;
	bool created;
	FILE *f;
	int ch;

	memset(&ac, 0, sizeof(ac));
	while ((ch = getopt(argc, argv, "d:t:p:l:k:c:i:T:")) != -1) {
		switch (ch) {
		case 'd': db = optarg; break;
		case 't': tokfile = optarg; break;
		case 'p': portfile = optarg; break;
		case 'l': listen = optarg; break;
		case 'k': hooklog = optarg; break;
		case 'c': ac.max_connections = (unsigned)atoi(optarg); break;
		case 'i': ac.max_per_ip = (unsigned)atoi(optarg); break;
		case 'T': ac.timeout_s = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: api_test_server -d DB -t TOKEN_FILE "
			    "-p PORT_FILE [-l LISTEN] [-k HOOK_LOG]\n");
			return 2;
		}
	}
	if (db == NULL || tokfile == NULL || portfile == NULL) {
		fprintf(stderr, "api_test_server: -d, -t and -p are required\n");
		return 2;
	}
	log_init("api_test_server", true);
	log_setdebug(getenv("MESHWAN_DEBUG"));
	so.path = db;
	if (store_open(&so, &st, &err) == -1)
		fatalx("store: %s", err.message);
	if (auth_bootstrap(st, tokfile, &created) == -1)
		fatalx("cannot bootstrap the admin token");
	memset(&metrics, 0, sizeof(metrics));
	ac.listen = listen;
	ac.max_body = 64 * 1024;
	ac.hooks.topology_changed = server_hook;
	ac.hooks.arg = (void *)hooklog;
	ac.metrics = &metrics;
	/* Block the signals until sigsuspend so none slips between checks. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = server_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	api = api_start(&ac, st);
	if (api == NULL)
		fatalx("cannot start the API on %s", listen);
	f = fopen(portfile, "w");
	if (f == NULL)
		fatal("%s", portfile);
	fprintf(f, "%u\n", (unsigned)api_port(api));
	fclose(f);
	while (!server_stop)
		sigsuspend(&old);
	api_stop(api);
	store_close(st);
	return 0;
}
