/*
 * frr_drive.c — drives one FRR instance through edge-agent/frr.c, for
 * tests/edge/frr_bgp.sh.  The desired state comes from a small text file
 * so the shell test can write and change it:
 *
 *     asn 65001
 *     router_id 0.0.0.1
 *     bfd_ms 100
 *     announce 10.1.0.0/24
 *     neighbor 100.64.0.1 65002 1 [addr6 A] [bfd] [rsc] [timers K H]
 *              [connect S] [allow P,P,...]
 *
 * Usage: frr_drive VTY_SOCKET_DIR COMMAND ...
 *     apply FILE                 apply; prints "changes N commands M"
 *     plan FILE                  prints the commands apply would run
 *     wait-established ADDR MS   poll until ADDR is Established; prints ms
 *     wait-route PREFIX MS       poll until zebra installed PREFIX from
 *                                BGP; prints ms
 *     bgp-has PREFIX             exit 0 when PREFIX is in the BGP table
 *     neighbor ADDR              prints "STATE UPTIME_S PREFIXES TUNNEL"
 *     bfd ADDR                   prints "up" or "down"
 *     filtered ADDR 4|6          prints what ADDR sent and was filtered
 * Errors go to stderr with FRR's reason; the exit status is then 1.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge-agent/frr.h"
#include "lib/log.h"
#include "lib/util.h"

static int
die(const char *what, const char *err)
{
	fprintf(stderr, "frr_drive: %s: %s\n", what, err);
	return 1;
}

static int
add_prefixes(struct msg_prefix **v, size_t *n, char *list)
{
	char *save = NULL;

	for (char *t = strtok_r(list, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		*v = realloc(*v, (*n + 1) * sizeof(**v));
		if (*v == NULL || msg_prefix_parse(t, true, &(*v)[*n]) == -1)
			return -1;
		(*n)++;
	}
	return 0;
}

static int
load_desired(const char *path, struct frr_desired *d)
{
	FILE *f = fopen(path, "r");
	char line[1024];

	memset(d, 0, sizeof(*d));
	if (f == NULL)
		return -1;
	d->bfd_interval_ms = FRR_DEFAULT_BFD_MS;
	d->bfd_multiplier = FRR_DEFAULT_BFD_MULT;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *w = strtok_r(line, " \t\n", &save);

		if (w == NULL || w[0] == '#')
			continue;
		if (strcmp(w, "asn") == 0) {
			d->asn = (uint32_t)strtoul(strtok_r(NULL, " \n", &save),
			    NULL, 10);
		} else if (strcmp(w, "router_id") == 0) {
			if (msg_addr_parse(strtok_r(NULL, " \n", &save),
			    &d->router_id) == -1)
				goto bad;
		} else if (strcmp(w, "bfd_ms") == 0) {
			d->bfd_interval_ms = (uint32_t)strtoul(strtok_r(NULL,
			    " \n", &save), NULL, 10);
		} else if (strcmp(w, "announce") == 0) {
			if (add_prefixes(&d->announce, &d->n_announce,
			    strtok_r(NULL, " \n", &save)) == -1)
				goto bad;
		} else if (strcmp(w, "neighbor") == 0) {
			struct frr_neighbor *n;
			char *a = strtok_r(NULL, " \n", &save);
			char *as = strtok_r(NULL, " \n", &save);
			char *id = strtok_r(NULL, " \n", &save);

			d->neighbors = realloc(d->neighbors,
			    (d->n_neighbors + 1) * sizeof(*d->neighbors));
			if (d->neighbors == NULL || a == NULL || as == NULL ||
			    id == NULL)
				goto bad;
			n = &d->neighbors[d->n_neighbors++];
			memset(n, 0, sizeof(*n));
			if (msg_addr_parse(a, &n->address) == -1)
				goto bad;
			n->remote_asn = (uint32_t)strtoul(as, NULL, 10);
			n->tunnel_id = strtoull(id, NULL, 10);
			while ((w = strtok_r(NULL, " \n", &save)) != NULL) {
				if (strcmp(w, "bfd") == 0) {
					n->bfd = true;
				} else if (strcmp(w, "addr6") == 0) {
					const char *x = strtok_r(NULL, " \n",
					    &save);

					if (x == NULL || msg_addr_parse(x,
					    &n->address6) == -1)
						goto bad;
				} else if (strcmp(w, "rsc") == 0) {
					n->route_server_client = true;
				} else if (strcmp(w, "timers") == 0) {
					n->keepalive = (uint32_t)strtoul(
					    strtok_r(NULL, " \n", &save), NULL,
					    10);
					n->hold_time = (uint32_t)strtoul(
					    strtok_r(NULL, " \n", &save), NULL,
					    10);
				} else if (strcmp(w, "connect") == 0) {
					n->connect_retry = (uint32_t)strtoul(
					    strtok_r(NULL, " \n", &save), NULL,
					    10);
				} else if (strcmp(w, "allow") == 0) {
					if (add_prefixes(&n->allowed,
					    &n->n_allowed, strtok_r(NULL, " \n",
					    &save)) == -1)
						goto bad;
				} else {
					goto bad;
				}
			}
		} else {
			goto bad;
		}
	}
	fclose(f);
	return 0;
bad:
	fclose(f);
	frr_desired_free(d);
	return -1;
}

static const struct frr_neighbor_status *
find_neighbor(const struct frr_bgp_status *st, const struct msg_addr *a)
{
	for (size_t i = 0; i < st->n_neighbors; i++)
		if (msg_addr_equal(&st->neighbors[i].address, a))
			return &st->neighbors[i];
	return NULL;
}

static void
nap(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	struct frr_target t;
	char err[512];
	const char *cmd;

	log_init("frr_drive", true);
	if (argc < 3) {
		fprintf(stderr, "usage: frr_drive VTY_SOCKET_DIR COMMAND ...\n");
		return 2;
	}
	memset(&t, 0, sizeof(t));
	snprintf(t.vty_socket, sizeof(t.vty_socket), "%s", argv[1]);
	t.timeout_ms = 10000;
	cmd = argv[2];

	if (strcmp(cmd, "apply") == 0 && argc == 4) {
		struct frr_desired d;
		struct frr_apply_result res;

		if (load_desired(argv[3], &d) == -1)
			return die("apply", "cannot read the desired state");
		if (frr_apply(&t, &d, &res, err, sizeof(err)) == -1) {
			frr_desired_free(&d);
			return die("apply", err);
		}
		printf("changes %zu commands %zu\n", res.n_changes, res.n_cmds);
		frr_desired_free(&d);
		return 0;
	}
	if (strcmp(cmd, "plan") == 0 && argc == 4) {
		static const char *const rc[] = { "show running-config" };
		struct frr_desired d;
		struct frr_script sc;
		char *bgpd, *bfdd;

		if (load_desired(argv[3], &d) == -1)
			return die("plan", "cannot read the desired state");
		if (frr_vtysh(&t, "bgpd", rc, 1, &bgpd, NULL, err,
		    sizeof(err)) == -1 || frr_vtysh(&t, "bfdd", rc, 1, &bfdd,
		    NULL, err, sizeof(err)) == -1)
			return die("plan", err);
		if (frr_diff(&d, bgpd, bfdd, &sc, err, sizeof(err)) == -1)
			return die("plan", err);
		for (size_t i = 0; i < sc.n_cmds; i++)
			printf("%s\n", sc.cmds[i]);
		frr_script_free(&sc);
		frr_desired_free(&d);
		free(bgpd);
		free(bfdd);
		return 0;
	}
	if (strcmp(cmd, "wait-established") == 0 && argc == 5) {
		struct msg_addr a;
		uint64_t t0 = util_mono_ms();
		uint64_t limit = strtoull(argv[4], NULL, 10);

		if (msg_addr_parse(argv[3], &a) == -1)
			return die(cmd, "bad address");
		for (;;) {
			struct frr_bgp_status st;
			const struct frr_neighbor_status *n;
			bool up;

			if (frr_read_summary(&t, &st, err, sizeof(err)) == -1)
				return die(cmd, err);
			n = find_neighbor(&st, &a);
			up = n != NULL && n->state == MSG_BGP_STATE_ESTABLISHED;
			frr_bgp_status_free(&st);
			if (up)
				break;
			if (util_mono_ms() - t0 > limit)
				return die(cmd, "not Established in time");
			nap();
		}
		printf("%llu\n", (unsigned long long)(util_mono_ms() - t0));
		return 0;
	}
	if (strcmp(cmd, "wait-route") == 0 && argc == 5) {
		struct msg_prefix p;
		uint64_t t0 = util_mono_ms();
		uint64_t limit = strtoull(argv[4], NULL, 10);

		if (msg_prefix_parse(argv[3], true, &p) == -1)
			return die(cmd, "bad prefix");
		for (;;) {
			struct frr_routes r;
			bool found = false;

			if (frr_read_rib(&t, p.addr.family, &r, err,
			    sizeof(err)) == -1)
				return die(cmd, err);
			for (size_t i = 0; i < r.n_routes; i++)
				found |= memcmp(&r.routes[i].prefix, &p,
				    sizeof(p)) == 0 && r.routes[i].installed &&
				    strcmp(r.routes[i].protocol, "bgp") == 0;
			frr_routes_free(&r);
			if (found)
				break;
			if (util_mono_ms() - t0 > limit)
				return die(cmd, "route not installed in time");
			nap();
		}
		printf("%llu\n", (unsigned long long)(util_mono_ms() - t0));
		return 0;
	}
	if (strcmp(cmd, "bgp-has") == 0 && argc == 4) {
		struct msg_prefix p;
		struct frr_routes r;
		bool found = false;

		if (msg_prefix_parse(argv[3], true, &p) == -1)
			return die(cmd, "bad prefix");
		if (frr_read_bgp_routes(&t, p.addr.family, &r, err,
		    sizeof(err)) == -1)
			return die(cmd, err);
		for (size_t i = 0; i < r.n_routes; i++)
			found |= memcmp(&r.routes[i].prefix, &p, sizeof(p)) == 0;
		frr_routes_free(&r);
		return found ? 0 : 1;
	}
	if (strcmp(cmd, "neighbor") == 0 && argc == 4) {
		struct frr_bgp_status st;
		const struct frr_neighbor_status *n;
		struct msg_addr a;

		if (msg_addr_parse(argv[3], &a) == -1)
			return die(cmd, "bad address");
		if (frr_read_summary(&t, &st, err, sizeof(err)) == -1)
			return die(cmd, err);
		if ((n = find_neighbor(&st, &a)) == NULL) {
			frr_bgp_status_free(&st);
			return die(cmd, "no such neighbour");
		}
		printf("%s %llu %u %llu\n", msg_bgp_state_name(n->state),
		    (unsigned long long)n->uptime_s, n->prefixes_received,
		    (unsigned long long)n->tunnel_id);
		frr_bgp_status_free(&st);
		return 0;
	}
	if (strcmp(cmd, "bfd") == 0 && argc == 4) {
		struct frr_bfd_status b;
		struct msg_addr a;
		const char *state = "absent";

		if (msg_addr_parse(argv[3], &a) == -1)
			return die(cmd, "bad address");
		if (frr_read_bfd(&t, &b, err, sizeof(err)) == -1)
			return die(cmd, err);
		for (size_t i = 0; i < b.n_peers; i++)
			if (msg_addr_equal(&b.peers[i].peer, &a))
				state = b.peers[i].up ? "up" : "down";
		printf("%s\n", state);
		frr_bfd_status_free(&b);
		return 0;
	}
	if (strcmp(cmd, "filtered") == 0 && argc == 5) {
		struct frr_prefix_list f;
		struct msg_addr a;

		if (msg_addr_parse(argv[3], &a) == -1)
			return die(cmd, "bad address");
		if (frr_read_filtered(&t, &a, argv[4][0] == '6' ? AF_INET6 :
		    AF_INET, &f, err, sizeof(err)) == -1)
			return die(cmd, err);
		for (size_t i = 0; i < f.n_prefixes; i++) {
			char buf[MSG_PREFIX_STRLEN];

			msg_prefix_format(&f.prefixes[i], buf, sizeof(buf));
			printf("%s\n", buf);
		}
		frr_prefix_list_free(&f);
		return 0;
	}
	fprintf(stderr, "frr_drive: unknown command or arguments\n");
	return 2;
}
