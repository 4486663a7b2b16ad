/*
 * fuzz_frr.c — libFuzzer target for what edge-agent/frr.c reads from FRR:
 * its JSON status replies and its running-config.  FRR is local, but what
 * it prints carries prefixes and names that came from BGP peers, and a
 * broken or partial reply must be an error, never a crash.
 *
 * The first byte, as a digit, picks the reader ('0' summary, '1' BGP
 * table, '2' zebra routes, '3' BFD peers, '4' filtered routes, '5'
 * running-config, '6' zebra's interfaces); the rest is its input, copied
 * to a buffer of exactly its size so AddressSanitizer sees any read past
 * it.  A running-config is diffed against a small fixed site, and the
 * script must then be well formed.  With FUZZ_SEED_DIR set, seeds are
 * written there.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge-agent/frr.h"
#include "lib/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

static const char *const seeds[] = {
	"0{\"ipv4Unicast\":{\"routerId\":\"100.64.0.0\",\"as\":65001,"
	"\"peers\":{\"100.64.0.1\":{\"remoteAs\":65002,\"peerUptimeMsec\":3000,"
	"\"pfxRcd\":1,\"pfxSnt\":1,\"state\":\"Established\","
	"\"desc\":\"meshwan tunnel 1\"}}}}",
	"1{\"routerId\":\"100.64.0.0\",\"routes\":{\"10.2.0.0/24\":[{\"valid\":"
	"true,\"bestpath\":true,\"peerId\":\"100.64.0.1\",\"nexthops\":[{\"ip\":"
	"\"100.64.0.1\",\"afi\":\"ipv4\",\"used\":true}]}]}}",
	"2{\"10.2.0.0/24\":[{\"prefix\":\"10.2.0.0/24\",\"protocol\":\"bgp\","
	"\"selected\":true,\"installed\":true,\"nexthops\":[{\"ip\":"
	"\"100.64.0.1\",\"interfaceName\":\"va\",\"active\":true}]}]}",
	"3[{\"peer\":\"100.64.0.1\",\"local\":\"100.64.0.0\",\"interface\":"
	"\"va\",\"status\":\"up\",\"uptime\":4,\"diagnostic\":\"ok\","
	"\"receive-interval\":100,\"transmit-interval\":100,"
	"\"detect-multiplier\":3}]",
	"4{\"bgpLocalRouterId\":\"100.64.0.0\",\"receivedRoutes\":"
	"{\"10.9.0.0/24\":{\"network\":\"10.9.0.0/24\"}}}",
	"5Current configuration:\n!\nrouter bgp 65001\n bgp router-id 0.0.0.1\n"
	" neighbor 100.64.0.1 remote-as 65002\n"
	" neighbor 100.64.0.3 remote-as 65003\n !\n"
	" address-family ipv4 unicast\n  network 10.1.0.0/24\n"
	"  neighbor 100.64.0.1 prefix-list MW-IN-1-V4 in\n"
	" exit-address-family\nexit\n!\n"
	"ip prefix-list MW-IN-1-V4 seq 5 permit 10.2.0.0/24\n"
	"ip prefix-list MW-IN-1-V4 seq 10 permit 10.9.0.0/24\n!\nbfd\n"
	" profile meshwan\n  transmit-interval 100\n exit\n !\nexit\n!\nend\n",
	"6{\"mw1\":{\"ipAddresses\":[{\"address\":\"100.64.0.0/31\"},"
	"{\"address\":\"fd6d::/127\"}]},\"lo\":{}}",
};

static struct frr_desired site;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_SEED_DIR");
	static struct msg_prefix announce[1], allowed[2];
	static struct frr_neighbor nb[1];

	(void)argc;
	(void)argv;
	log_init("fuzz_frr", true);
	log_setlevel(LOG_LVL_ERR);
	msg_prefix_parse("10.1.0.0/24", true, &announce[0]);
	msg_prefix_parse("10.2.0.0/24", true, &allowed[0]);
	msg_prefix_parse("fd00:2::/64", true, &allowed[1]);
	msg_addr_parse("100.64.0.1", &nb[0].address);
	nb[0].remote_asn = 65002;
	nb[0].tunnel_id = 1;
	nb[0].bfd = true;
	nb[0].allowed = allowed;
	nb[0].n_allowed = 2;
	site.asn = 65001;
	msg_addr_parse("0.0.0.1", &site.router_id);
	site.announce = announce;
	site.n_announce = 1;
	site.neighbors = nb;
	site.n_neighbors = 1;
	site.bfd_interval_ms = 100;
	site.bfd_multiplier = 3;
	if (dir == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/seed-frr-%zu", dir, i);
		if ((f = fopen(path, "w")) == NULL)
			continue;
		fwrite(seeds[i], 1, strlen(seeds[i]), f);
		fclose(f);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *in;
	size_t n;
	unsigned sel;

	if (size == 0)
		return 0;
	n = size - 1;
	/* Exactly n bytes (plus a NUL the text parser needs past them). */
	if ((in = malloc(n + 1)) == NULL)
		return 0;
	memcpy(in, data + 1, n);
	in[n] = '\0';
	sel = (uint8_t)(data[0] - '0') % 7;
	switch (sel) {
	case 0: {
		struct frr_bgp_status s;

		if (frr_parse_summary(in, n, &s, err, sizeof(err)) == 0)
			for (size_t i = 0; i < s.n_neighbors; i++)
				CHECK(s.neighbors[i].address.family != 0);
		else
			CHECK(s.neighbors == NULL && err[0] != '\0');
		frr_bgp_status_free(&s);
		break;
	}
	case 1:
	case 2: {
		struct frr_routes r;
		int rc = sel == 1 ?
		    frr_parse_bgp_routes(in, n, &r, err, sizeof(err)) :
		    frr_parse_rib(in, n, &r, err, sizeof(err));

		CHECK(rc == 0 || (r.routes == NULL && err[0] != '\0'));
		CHECK(r.n_routes <= FRR_STATUS_MAX);
		frr_routes_free(&r);
		break;
	}
	case 3: {
		struct frr_bfd_status b;

		if (frr_parse_bfd(in, n, &b, err, sizeof(err)) == -1)
			CHECK(b.peers == NULL && err[0] != '\0');
		frr_bfd_status_free(&b);
		break;
	}
	case 4: {
		struct frr_prefix_list f;

		if (frr_parse_filtered(in, n, &f, err, sizeof(err)) == -1)
			CHECK(f.prefixes == NULL && err[0] != '\0');
		frr_prefix_list_free(&f);
		break;
	}
	case 6: {
		struct frr_ifaces x;
		struct msg_addr a;

		if (frr_parse_interfaces(in, n, &x, err, sizeof(err)) == 0) {
			CHECK(x.n_ifs <= FRR_STATUS_MAX);
			for (size_t i = 0; i < x.n_ifs; i++) {
				CHECK(memchr(x.ifs[i].name, '\0',
				    sizeof(x.ifs[i].name)) != NULL);
				CHECK(x.ifs[i].n_addrs <= FRR_IFACE_ADDRS_MAX);
			}
			msg_addr_parse("100.64.0.0", &a);
			(void)frr_iface_has(&x, "mw1", &a, 31);
		} else {
			CHECK(x.ifs == NULL && x.n_ifs == 0 && err[0] != '\0');
		}
		frr_ifaces_free(&x);
		break;
	}
	default: {
		struct frr_script s;

		if (frr_diff(&site, in, in, &s, err, sizeof(err)) == 0) {
			/* Every segment opens a configuration session. */
			for (size_t i = 0; i < s.n_segments; i++)
				CHECK(strcmp(s.cmds[s.segments[i]],
				    "configure terminal") == 0);
			CHECK(s.n_changes == 0 || s.n_segments > 0);
			for (size_t i = 0; i < s.n_cmds; i++)
				CHECK(strchr(s.cmds[i], '\n') == NULL);
		} else {
			CHECK(s.n_cmds == 0 && err[0] != '\0');
		}
		frr_script_free(&s);
		break;
	}
	}
	free(in);
	return 0;
}
