/*
 * test_edge_frr.c — the edge agent's FRR driver without FRR: rendering
 * and diffing against golden files, the intent helper, validation, the
 * JSON parsers against output captured from FRR 8.4 (and broken copies of
 * it), and the vtysh runner against stand-in programs (timeout, output
 * bound, exit status, arguments).
 *
 * Golden files live in tests/unit/golden/edge_frr_*.txt, captures in
 * tests/unit/golden/frr/.  After an intended change of the output,
 * regenerate the golden files with
 *     UPDATE_GOLDEN=1 TEST_FILTER=test_edge_frr make test
 * and review the diff before committing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge-agent/frr.h"
#include "lib/util.h"

static char *
slurp_abs(const char *path, size_t *len)
{
	FILE *f;
	char *buf;
	long n;

	if (len != NULL)
		*len = 0;
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

static char *
slurp(const char *rel, size_t *len)
{
	const char *top = getenv("MESHWAN_TOP");
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/unit/golden/%s",
	    top != NULL ? top : ".", rel);
	return slurp_abs(path, len);
}

static void
golden_check(const char *name, const char *got)
{
	const char *top = getenv("MESHWAN_TOP");
	char path[512], rel[128];
	char *want;
	FILE *f;

	snprintf(rel, sizeof(rel), "%s.txt", name);
	snprintf(path, sizeof(path), "%s/tests/unit/golden/%s",
	    top != NULL ? top : ".", rel);
	if (getenv("UPDATE_GOLDEN") != NULL) {
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
		return;
	}
	if ((want = slurp(rel, NULL)) == NULL)
		fail_msg("missing golden file %s (UPDATE_GOLDEN=1 makes it)",
		    path);
	if (strcmp(want, got) != 0) {
		fprintf(stderr, "--- want %s\n%s--- got\n%s", path, want, got);
		fail_msg("output differs from %s", path);
	}
	free(want);
}

static struct msg_prefix
P(const char *s)
{
	struct msg_prefix p;

	if (msg_prefix_parse(s, true, &p) == -1)
		fail_msg("bad prefix %s", s);
	return p;
}

static struct msg_addr
A(const char *s)
{
	struct msg_addr a;

	if (msg_addr_parse(s, &a) == -1)
		fail_msg("bad address %s", s);
	return a;
}

static struct msg_prefix *
plist(size_t n, ...)
{
	struct msg_prefix *v = calloc(n + 1, sizeof(*v));
	va_list ap;

	assert_non_null(v);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		v[i] = P(va_arg(ap, const char *));
	va_end(ap);
	return v;
}

/*
 * Site A (AS 65001): LAN 10.1.0.0/24 and fd00:1::/64; tunnel 1 to site B
 * (100.64.0.1, AS 65002, BFD, tight timers) which may announce
 * 10.2.0.0/24 and fd00:2::/64; tunnel 2 to site C (100.64.0.3, AS 65003,
 * no BFD) which may announce 10.3.0.0/24.
 */
static void
site_a(struct frr_desired *d)
{
	memset(d, 0, sizeof(*d));
	d->asn = 65001;
	d->router_id = A("0.0.0.1");
	d->announce = plist(2, "fd00:1::/64", "10.1.0.0/24");
	d->n_announce = 2;
	d->bfd_interval_ms = 100;
	d->bfd_multiplier = 3;
	d->neighbors = calloc(4, sizeof(*d->neighbors));
	assert_non_null(d->neighbors);
	d->n_neighbors = 2;
	d->neighbors[0] = (struct frr_neighbor){
		.address = A("100.64.0.1"), .remote_asn = 65002,
		.tunnel_id = 1, .bfd = true, .keepalive = 1, .hold_time = 3,
		.connect_retry = 1,
		.allowed = plist(2, "10.2.0.0/24", "fd00:2::/64"),
		.n_allowed = 2,
	};
	d->neighbors[1] = (struct frr_neighbor){
		.address = A("100.64.0.3"), .remote_asn = 65003,
		.tunnel_id = 2, .allowed = plist(1, "10.3.0.0/24"),
		.n_allowed = 1,
	};
}

/* A running-config as vtysh prints it, around the driver's own text. */
static char *
as_running(const char *body)
{
	static const char head[] = "Building configuration...\n\n"
	    "Current configuration:\n!\nfrr version 8.4.4\n"
	    "frr defaults traditional\nhostname vm\n"
	    "service integrated-vtysh-config\n!\n";
	size_t n = strlen(head) + strlen(body) + 8;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "%s%send\n", head, body);
	return s;
}

static char *
render(const struct frr_desired *d)
{
	char err[256], *text = NULL;

	if (frr_render(d, &text, err, sizeof(err)) == -1)
		fail_msg("render: %s", err);
	assert_non_null(text);
	return text;
}

/* The script as text: one command a line, segments marked. */
static char *
script_text(const struct frr_script *s)
{
	size_t cap = 64, len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	out[0] = '\0';
	for (size_t i = 0; i < s->n_cmds; i++) {
		char line[320];
		bool seg = false;

		for (size_t j = 0; j < s->n_segments; j++)
			seg |= s->segments[j] == i;
		snprintf(line, sizeof(line), "%s%s\n", seg ? "# vtysh\n" : "",
		    s->cmds[i]);
		while (len + strlen(line) + 1 > cap) {
			cap *= 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		memcpy(out + len, line, strlen(line) + 1);
		len += strlen(line);
	}
	return out;
}

static void
diff_ok(const struct frr_desired *d, const char *bgpd, const char *bfdd,
    struct frr_script *s)
{
	char err[256];

	if (frr_diff(d, bgpd, bfdd, s, err, sizeof(err)) == -1)
		fail_msg("diff: %s", err);
}

/* ------------------------------------------------------------------ */

static void
test_render_golden(void **state)
{
	struct frr_desired d;
	char *text;

	(void)state;
	site_a(&d);
	text = render(&d);
	golden_check("edge_frr_render", text);
	free(text);
	frr_desired_free(&d);
	frr_desired_free(NULL);
}

/* From a fresh FRR (as captured: no BGP at all), everything is added. */
static void
test_diff_fresh_golden(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *fresh = as_running(""), *text;

	(void)state;
	site_a(&d);
	diff_ok(&d, fresh, fresh, &s);
	text = script_text(&s);
	golden_check("edge_frr_script_fresh", text);
	assert_int_equal(s.n_segments, 1);
	assert_true(s.n_changes > 20);
	free(text);
	frr_script_free(&s);
	frr_desired_free(&d);
	free(fresh);
}

/* What FRR holds after the fresh script is what we rendered: no change. */
static void
test_diff_same_is_empty(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *text, *running;

	(void)state;
	site_a(&d);
	text = render(&d);
	running = as_running(text);
	diff_ok(&d, running, running, &s);
	assert_int_equal(s.n_changes, 0);
	assert_int_equal(s.n_cmds, 0);
	frr_script_free(&s);
	free(running);
	free(text);
	frr_desired_free(&d);
}

/*
 * A change: one more LAN prefix, tunnel 2 gone, tunnel 1's timers and
 * allowed list changed, tunnel 3 new.  Only the difference is sent.
 */
static void
test_diff_change_golden(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *text, *running, *script;

	(void)state;
	site_a(&d);
	text = render(&d);
	running = as_running(text);
	free(text);

	free(d.announce);
	d.announce = plist(3, "10.1.0.0/24", "10.1.1.0/24", "fd00:1::/64");
	d.n_announce = 3;
	free(d.neighbors[1].allowed);
	d.neighbors[0].keepalive = 2;
	d.neighbors[0].hold_time = 6;
	free(d.neighbors[0].allowed);
	d.neighbors[0].allowed = plist(2, "10.2.0.0/24", "10.2.1.0/24");
	d.neighbors[0].n_allowed = 2;
	d.neighbors[1] = (struct frr_neighbor){
		.address = A("100.64.0.5"), .remote_asn = 65004,
		.tunnel_id = 3, .bfd = true,
	};
	diff_ok(&d, running, running, &s);
	script = script_text(&s);
	golden_check("edge_frr_script_change", script);
	/* Nothing about lines both sides have. */
	assert_null(strstr(script, "network 10.1.0.0/24"));
	assert_null(strstr(script, "neighbor 100.64.0.1 remote-as"));
	assert_non_null(strstr(script, "no neighbor 100.64.0.3\n"));
	assert_non_null(strstr(script, "no ip prefix-list MW-IN-2-V4\n"));
	assert_non_null(strstr(script, "clear bgp ipv4 unicast * soft in"));
	free(script);
	frr_script_free(&s);
	free(running);
	frr_desired_free(&d);
}

/* A neighbour whose ASN changed is removed whole and added again. */
static void
test_diff_remote_as_change(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *text, *running, *script;

	(void)state;
	site_a(&d);
	text = render(&d);
	running = as_running(text);
	free(text);
	d.neighbors[1].remote_asn = 65099;
	diff_ok(&d, running, running, &s);
	script = script_text(&s);
	assert_non_null(strstr(script, "no neighbor 100.64.0.3\n"));
	assert_non_null(strstr(script,
	    "neighbor 100.64.0.3 remote-as 65099\n"));
	assert_non_null(strstr(script,
	    "neighbor 100.64.0.3 prefix-list MW-IN-2-V4 in\n"));
	/* Its individual lines are not removed one by one. */
	assert_null(strstr(script, "no neighbor 100.64.0.3 "));
	assert_null(strstr(script, "100.64.0.1"));
	free(script);
	frr_script_free(&s);
	free(running);
	frr_desired_free(&d);
}

/*
 * bfdd 8.4 has no `no transmit-interval 100`: a setting going back to
 * FRR's default is set to it, one that changes is just set again.
 */
static void
test_diff_bfd_profile(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *text, *running, *script;

	(void)state;
	site_a(&d);
	text = render(&d);
	running = as_running(text);
	free(text);
	d.bfd_interval_ms = 300;
	d.bfd_multiplier = 5;
	diff_ok(&d, running, running, &s);
	script = script_text(&s);
	assert_string_equal(script, "# vtysh\nconfigure terminal\nbfd\n"
	    "profile meshwan\nreceive-interval 300\ntransmit-interval 300\n"
	    "detect-multiplier 5\n");
	free(script);
	frr_script_free(&s);
	/* No neighbour wants BFD any more: the profile goes. */
	d.neighbors[0].bfd = false;
	diff_ok(&d, running, running, &s);
	script = script_text(&s);
	assert_non_null(strstr(script, "exit\nbfd\nno profile meshwan\n"));
	assert_non_null(strstr(script, "no neighbor 100.64.0.1 bfd\n"));
	free(script);
	frr_script_free(&s);
	free(running);
	frr_desired_free(&d);
}

/*
 * FRR adds `attribute-unchanged next-hop` to a route-server client; the
 * driver takes it back at once (the hub stays the next hop), so one apply
 * converges.
 */
static void
test_diff_route_server_client(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *fresh = as_running(""), *script, *text, *running, *with;

	(void)state;
	site_a(&d);
	d.neighbors[1].route_server_client = true;
	diff_ok(&d, fresh, NULL, &s);
	script = script_text(&s);
	assert_non_null(strstr(script, "neighbor 100.64.0.3 "
	    "route-server-client\nno neighbor 100.64.0.3 attribute-unchanged "
	    "next-hop\n"));
	free(script);
	frr_script_free(&s);
	/* What FRR then holds is in sync; the implied line, if back, goes. */
	text = render(&d);
	running = as_running(text);
	diff_ok(&d, running, running, &s);
	assert_int_equal(s.n_changes, 0);
	frr_script_free(&s);
	{
		const char *at = strstr(text,
		    "  neighbor 100.64.0.3 route-server-client");
		size_t n = strlen(text) + 128;

		assert_non_null(at);
		with = malloc(n);
		assert_non_null(with);
		snprintf(with, n, "%.*s  neighbor 100.64.0.3 "
		    "attribute-unchanged next-hop\n%s", (int)(at - text), text,
		    at);
	}
	free(running);
	running = as_running(with);
	diff_ok(&d, running, running, &s);
	assert_int_equal(s.n_changes, 1);
	script = script_text(&s);
	assert_non_null(strstr(script,
	    "no neighbor 100.64.0.3 attribute-unchanged next-hop\n"));
	free(script);
	frr_script_free(&s);
	free(with);
	free(running);
	free(text);
	free(fresh);
	frr_desired_free(&d);
}

/* An instance with another ASN goes first, whole. */
static void
test_diff_asn_change(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *text, *running;

	(void)state;
	site_a(&d);
	text = render(&d);
	running = as_running(text);
	free(text);
	d.asn = 65010;
	diff_ok(&d, running, running, &s);
	assert_true(s.n_cmds > 3);
	assert_string_equal(s.cmds[0], "configure terminal");
	assert_string_equal(s.cmds[1], "no router bgp 65001");
	assert_string_equal(s.cmds[2], "router bgp 65010");
	frr_script_free(&s);
	free(running);
	frr_desired_free(&d);
}

/* The running-config of a real FRR 8.4 (a hand-edited lab): golden. */
static void
test_diff_real_running(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *bgpd = slurp("frr/frr84_running_bgpd.txt", NULL);
	char *bfdd = slurp("frr/frr84_running_bfdd.txt", NULL);
	char *script;

	(void)state;
	assert_non_null(bgpd);
	assert_non_null(bfdd);
	memset(&d, 0, sizeof(d));
	d.asn = 65001;
	d.router_id = A("100.64.0.0");
	d.announce = plist(2, "10.1.0.0/24", "fd00:1::/64");
	d.n_announce = 2;
	d.bfd_interval_ms = 100;
	d.bfd_multiplier = 3;
	d.neighbors = calloc(1, sizeof(*d.neighbors));
	d.n_neighbors = 1;
	d.neighbors[0] = (struct frr_neighbor){
		.address = A("100.64.0.1"), .remote_asn = 65002,
		.tunnel_id = 1, .bfd = true, .keepalive = 1, .hold_time = 3,
		.connect_retry = 1,
		.allowed = plist(2, "10.2.0.0/24", "fd00:2::/64"),
		.n_allowed = 2,
	};
	diff_ok(&d, bgpd, bfdd, &s);
	script = script_text(&s);
	golden_check("edge_frr_script_real", script);
	/* The lab's hand-made maximum-prefix and hijack entry go. */
	assert_non_null(strstr(script,
	    "no neighbor 100.64.0.1 maximum-prefix 1000 force"));
	assert_non_null(strstr(script,
	    "no ip prefix-list MW-IN-1-V4 seq 10 permit 10.9.0.0/24"));
	free(script);
	frr_script_free(&s);
	free(bgpd);
	free(bfdd);
	frr_desired_free(&d);
}

/* A cut-off read must never look like a configuration to add to. */
static void
test_diff_incomplete_running(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *bgpd = slurp("frr/frr84_running_bgpd.txt", NULL), err[256];

	(void)state;
	site_a(&d);
	bgpd[strlen(bgpd) / 2] = '\0';
	assert_int_equal(frr_diff(&d, bgpd, NULL, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "incomplete"));
	assert_int_equal(frr_diff(&d, "", NULL, &s, err, sizeof(err)), -1);
	free(bgpd);
	frr_desired_free(&d);
}

/* A big site splits into several vtysh calls, each a whole session. */
static void
test_diff_segments(void **state)
{
	struct frr_desired d;
	struct frr_script s;
	char *fresh = as_running("");

	(void)state;
	memset(&d, 0, sizeof(d));
	d.asn = 65001;
	d.router_id = A("0.0.0.1");
	d.n_neighbors = 400;
	d.neighbors = calloc(d.n_neighbors, sizeof(*d.neighbors));
	for (size_t i = 0; i < d.n_neighbors; i++) {
		uint32_t a = htonl(0x64400000u + 2 * (uint32_t)i + 1);

		d.neighbors[i].address.family = AF_INET;
		memcpy(d.neighbors[i].address.bytes, &a, 4);
		d.neighbors[i].remote_asn = 65100 + (uint32_t)i;
		d.neighbors[i].tunnel_id = i + 1;
	}
	diff_ok(&d, fresh, NULL, &s);
	assert_true(s.n_segments > 1);
	for (size_t i = 0; i < s.n_segments; i++) {
		assert_string_equal(s.cmds[s.segments[i]],
		    "configure terminal");
		if (i > 0)
			assert_string_equal(s.cmds[s.segments[i] - 1], "end");
	}
	frr_script_free(&s);
	frr_desired_free(&d);
	free(fresh);
}

static void
expect_invalid(struct frr_desired *d, const char *what)
{
	char err[256];

	assert_int_equal(frr_validate(d, err, sizeof(err)), -1);
	if (strstr(err, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, what);
}

static void
test_validate(void **state)
{
	struct frr_desired d;
	char err[256];

	(void)state;
	site_a(&d);
	assert_int_equal(frr_validate(&d, err, sizeof(err)), 0);
	d.asn = 3320;
	expect_invalid(&d, "asn");
	d.asn = 65001;
	d.router_id = A("::1");
	expect_invalid(&d, "router_id");
	d.router_id = A("0.0.0.0");
	expect_invalid(&d, "router_id");
	d.router_id = A("0.0.0.1");
	d.announce[0].len = 8;	/* fd00:1::/8 has host bits */
	expect_invalid(&d, "announce[0]");
	d.announce[0] = P("10.1.0.0/24");
	expect_invalid(&d, "given twice");
	d.announce[0] = P("fd00:1::/64");
	d.neighbors[1].address = d.neighbors[0].address;
	expect_invalid(&d, "neighbors[1].address");
	d.neighbors[1].address = A("100.64.0.3");
	d.neighbors[1].tunnel_id = 1;
	expect_invalid(&d, "neighbors[1].tunnel_id");
	d.neighbors[1].tunnel_id = 0;
	expect_invalid(&d, "neighbors[1].tunnel_id");
	d.neighbors[1].tunnel_id = 2;
	d.neighbors[0].hold_time = 2;
	expect_invalid(&d, "hold_time");
	d.neighbors[0].hold_time = 3;
	d.neighbors[0].keepalive = 2;
	expect_invalid(&d, "3 x keepalive");
	d.neighbors[0].keepalive = 1;
	d.neighbors[1].remote_asn = 174;
	expect_invalid(&d, "remote_asn");
	d.neighbors[1].remote_asn = 65003;
	d.bfd_interval_ms = 1;
	expect_invalid(&d, "bfd");
	d.bfd_interval_ms = 100;
	d.n_neighbors = FRR_NEIGHBORS_MAX + 1;
	expect_invalid(&d, "at most");
	d.n_neighbors = 2;
	assert_int_equal(frr_validate(&d, err, sizeof(err)), 0);
	/* Nothing rendered or diffed from an invalid state. */
	d.asn = 1;
	{
		char *text = NULL;
		struct frr_script s;

		assert_int_equal(frr_render(&d, &text, err, sizeof(err)), -1);
		assert_null(text);
		assert_int_equal(frr_diff(&d, "end\n", NULL, &s, err,
		    sizeof(err)), -1);
	}
	frr_desired_free(&d);
}

static void
test_max_prefixes(void **state)
{
	struct frr_desired d;

	(void)state;
	site_a(&d);
	assert_int_equal(frr_max_prefixes(&d.neighbors[0], AF_INET),
	    1 + FRR_MAXPREFIX_SLACK);
	assert_int_equal(frr_max_prefixes(&d.neighbors[0], AF_INET6),
	    1 + FRR_MAXPREFIX_SLACK);
	assert_int_equal(frr_max_prefixes(&d.neighbors[1], AF_INET6),
	    FRR_MAXPREFIX_SLACK);
	frr_desired_free(&d);
}

/* The helper an agent feeds with an intent. */
static void
test_from_intent(void **state)
{
	struct msg_intent in;
	struct msg_tunnel t[3];
	struct msg_prefix lan[1], b_pfx[2], c_pfx[1];
	struct frr_peer_prefixes peers[2];
	struct frr_desired d;
	char err[256], *text;

	(void)state;
	memset(&in, 0, sizeof(in));
	memset(t, 0, sizeof(t));
	lan[0] = P("10.1.0.0/24");
	b_pfx[0] = P("10.2.0.0/24");
	b_pfx[1] = P("10.3.0.0/24");	/* overlaps c: the hub carries it once */
	c_pfx[0] = P("10.3.0.0/24");
	in.version = 1;
	in.site.id = 258;
	in.site.asn = 65001;
	in.site.role = MSG_ROLE_SPOKE;
	in.site.lan_prefixes = lan;
	in.site.n_lan_prefixes = 1;
	in.tunnels = t;
	in.n_tunnels = 3;
	for (int i = 0; i < 3; i++) {
		char a[16];

		t[i].id = 10 + (uint64_t)i;
		snprintf(a, sizeof(a), "100.64.0.%d", 2 * i + 1);
		t[i].inner_remote = A(a);
		t[i].bgp.address = A(a);
		t[i].bgp.remote_asn = 65002 + (uint32_t)i;
		t[i].peer.site_id = 2 + (uint64_t)i;
	}
	t[0].bgp.bfd = true;
	t[0].bgp.hold_time = 9;		/* keepalive derived: 3 */
	t[1].bgp.keepalive = 2;		/* hold derived: 6 */
	t[1].bgp.route_server_client = true;
	peers[0] = (struct frr_peer_prefixes){ 2, b_pfx, 2 };
	peers[1] = (struct frr_peer_prefixes){ 3, c_pfx, 1 };
	/* Site 4 (tunnel 12) has no entry: it may announce nothing. */

	if (frr_desired_from_intent(&in, peers, 2, &d, err, sizeof(err)) == -1)
		fail_msg("from_intent: %s", err);
	assert_int_equal(d.asn, 65001);
	assert_int_equal(d.router_id.family, AF_INET);
	assert_memory_equal(d.router_id.bytes, "\0\0\1\2", 4);
	assert_int_equal(d.n_announce, 1);
	assert_int_equal(d.n_carry, 0);		/* a spoke carries nothing */
	assert_int_equal(d.n_neighbors, 3);
	assert_int_equal(d.neighbors[0].tunnel_id, 10);
	assert_true(d.neighbors[0].bfd);
	assert_int_equal(d.neighbors[0].keepalive, 3);
	assert_int_equal(d.neighbors[0].hold_time, 9);
	assert_int_equal(d.neighbors[1].hold_time, 6);
	assert_true(d.neighbors[1].route_server_client);
	assert_int_equal(d.neighbors[0].connect_retry, FRR_DEFAULT_CONNECT_S);
	assert_int_equal(d.neighbors[0].n_allowed, 2);
	assert_int_equal(d.neighbors[1].n_allowed, 1);
	assert_int_equal(d.neighbors[2].n_allowed, 0);
	text = render(&d);
	assert_non_null(strstr(text,
	    "ip prefix-list MW-IN-12-V4 seq 5 deny any\n"));
	assert_null(strstr(text, "address-family ipv6"));
	free(text);
	frr_desired_free(&d);

	in.site.role = MSG_ROLE_HUB;
	if (frr_desired_from_intent(&in, peers, 2, &d, err, sizeof(err)) == -1)
		fail_msg("from_intent: %s", err);
	assert_int_equal(d.n_carry, 2);
	text = render(&d);
	assert_non_null(strstr(text,
	    "ip prefix-list MW-OUT-V4 seq 15 permit 10.3.0.0/24\n"));
	free(text);
	frr_desired_free(&d);

	in.site.asn = 100;	/* not private: refused, nothing allocated */
	assert_int_equal(frr_desired_from_intent(&in, peers, 2, &d, err,
	    sizeof(err)), -1);
	assert_null(d.neighbors);
}

/* Without overrides each neighbour's inbound list is its tunnel's
 * Peer.allowed_prefixes (sorted, repeats dropped); a hub carries them. */
static int
count_of(const char *s, const char *what)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, what)) != NULL; p++)
		n++;
	return n;
}

static void
test_from_intent_allowed(void **state)
{
	struct msg_intent in;
	struct msg_tunnel t[2];
	struct msg_prefix lan[1], hub[4];
	struct frr_desired d;
	char err[256], *text;

	(void)state;
	memset(&in, 0, sizeof(in));
	memset(t, 0, sizeof(t));
	lan[0] = P("10.1.0.0/24");
	hub[0] = P("10.9.0.0/16");	/* the hub's own */
	hub[1] = P("fd00:9::/48");
	hub[2] = P("10.2.0.0/24");	/* a spoke it carries */
	hub[3] = P("10.2.0.0/24");	/* said twice: allowed once */
	in.version = 1;
	in.site.id = 1;
	in.site.asn = 65001;
	in.site.role = MSG_ROLE_SPOKE;
	in.site.lan_prefixes = lan;
	in.site.n_lan_prefixes = 1;
	in.tunnels = t;
	in.n_tunnels = 2;
	for (int i = 0; i < 2; i++) {
		char a[16];

		t[i].id = 10 + (uint64_t)i;
		snprintf(a, sizeof(a), "100.64.0.%d", 2 * i + 1);
		t[i].inner_remote = A(a);
		t[i].bgp.address = A(a);
		t[i].bgp.remote_asn = 65002 + (uint32_t)i;
		t[i].peer.site_id = 2 + (uint64_t)i;
	}
	t[0].peer.allowed_prefixes = hub;
	t[0].peer.n_allowed_prefixes = 4;
	/* t[1]'s peer has none: it may announce nothing. */

	if (frr_desired_from_intent(&in, NULL, 0, &d, err, sizeof(err)) == -1)
		fail_msg("from_intent: %s", err);
	assert_int_equal(d.neighbors[0].n_allowed, 3);
	assert_int_equal(d.neighbors[1].n_allowed, 0);
	text = render(&d);
	assert_non_null(strstr(text,
	    "ip prefix-list MW-IN-10-V4 seq 5 permit 10.2.0.0/24\n"));
	assert_non_null(strstr(text,
	    "ip prefix-list MW-IN-10-V4 seq 10 permit 10.9.0.0/16\n"));
	assert_non_null(strstr(text,
	    "ipv6 prefix-list MW-IN-10-V6 seq 5 permit fd00:9::/48\n"));
	assert_non_null(strstr(text,
	    "ip prefix-list MW-IN-11-V4 seq 5 deny any\n"));
	free(text);
	frr_desired_free(&d);

	in.site.role = MSG_ROLE_HUB;
	if (frr_desired_from_intent(&in, NULL, 0, &d, err, sizeof(err)) == -1)
		fail_msg("from_intent: %s", err);
	assert_int_equal(d.n_carry, 3);
	frr_desired_free(&d);

	/* Dual stack: a second session over the /127 carries ipv6 unicast;
	 * the IPv4 one carries only ipv4. */
	in.site.role = MSG_ROLE_SPOKE;
	t[0].bgp.bfd = true;
	t[0].bgp.address6 = A("fd00:64::1");
	if (frr_desired_from_intent(&in, NULL, 0, &d, err, sizeof(err)) == -1)
		fail_msg("from_intent: %s", err);
	assert_true(msg_addr_equal(&d.neighbors[0].address6,
	    &t[0].bgp.address6));
	text = render(&d);
	assert_non_null(strstr(text, " neighbor fd00:64::1 remote-as 65002\n"));
	assert_non_null(strstr(text, " neighbor fd00:64::1 bfd\n"));
	assert_non_null(strstr(text, "  neighbor fd00:64::1 activate\n"));
	assert_non_null(strstr(text,
	    "  neighbor fd00:64::1 prefix-list MW-IN-10-V6 in\n"));
	assert_non_null(strstr(text, "  neighbor 100.64.0.1 activate\n"));
	/* Each family on its own session only. */
	assert_int_equal(count_of(text, "neighbor 100.64.0.1 activate"), 1);
	assert_int_equal(count_of(text, "neighbor fd00:64::1 activate"), 1);
	free(text);
	frr_desired_free(&d);
	/* The same address twice is refused. */
	t[1].bgp.address6 = A("fd00:64::1");
	assert_int_equal(frr_desired_from_intent(&in, NULL, 0, &d, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "address6"));
}

/* ------------------------------------------------------------------ */
/* Parsers against captured FRR 8.4 output */

static void
test_parse_summary(void **state)
{
	struct frr_bgp_status st;
	char err[256], *j;
	size_t len;

	(void)state;
	j = slurp("frr/frr84_summary.json", &len);
	assert_non_null(j);
	if (frr_parse_summary(j, len, &st, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(st.local_asn, 65001);
	assert_int_equal(st.n_neighbors, 1);
	assert_true(msg_addr_equal(&st.neighbors[0].address,
	    &(struct msg_addr){ 0 }) == false);
	assert_int_equal(st.neighbors[0].remote_asn, 65002);
	assert_int_equal(st.neighbors[0].state, MSG_BGP_STATE_ESTABLISHED);
	assert_int_equal(st.neighbors[0].uptime_s, 43);
	/* Two IPv4 (one the lab's hand-allowed hijack) and one IPv6. */
	assert_int_equal(st.neighbors[0].prefixes_received, 3);
	assert_int_equal(st.neighbors[0].tunnel_id, 1);
	frr_bgp_status_free(&st);
	free(j);

	j = slurp("frr/frr84_summary_down.json", &len);
	if (frr_parse_summary(j, len, &st, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(st.neighbors[0].state, MSG_BGP_STATE_ACTIVE);
	assert_int_equal(st.neighbors[0].uptime_s, 0);
	assert_int_equal(st.neighbors[0].prefixes_received, 0);
	frr_bgp_status_free(&st);
	free(j);
}

static void
test_parse_routes(void **state)
{
	struct frr_routes r;
	char err[256], *j;
	size_t len;
	bool seen = false;

	(void)state;
	j = slurp("frr/frr84_bgp4.json", &len);
	if (frr_parse_bgp_routes(j, len, &r, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(r.n_routes, 2);
	for (size_t i = 0; i < r.n_routes; i++) {
		struct msg_prefix want = P("10.2.0.0/24");

		if (memcmp(&r.routes[i].prefix, &want, sizeof(want)) != 0) {
			assert_int_equal(r.routes[i].peer.family, 0);
			assert_int_equal(r.routes[i].nexthop.family, 0);
			continue;
		}
		seen = true;
		assert_true(r.routes[i].best);
		assert_true(msg_addr_equal(&r.routes[i].peer,
		    &(struct msg_addr){ 0 }) == false);
		assert_true(msg_addr_equal(&r.routes[i].nexthop,
		    &r.routes[i].peer));
	}
	assert_true(seen);
	frr_routes_free(&r);
	free(j);

	j = slurp("frr/frr84_bgp6.json", &len);
	if (frr_parse_bgp_routes(j, len, &r, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(r.n_routes, 2);
	frr_routes_free(&r);
	free(j);

	j = slurp("frr/frr84_route4.json", &len);
	if (frr_parse_rib(j, len, &r, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	seen = false;
	for (size_t i = 0; i < r.n_routes; i++) {
		if (strcmp(r.routes[i].protocol, "bgp") != 0)
			continue;
		seen = true;
		assert_true(r.routes[i].installed);
		assert_true(r.routes[i].best);
		assert_string_equal(r.routes[i].ifname, "va");
		assert_true(msg_addr_equal(&r.routes[i].nexthop,
		    &(struct msg_addr){ AF_INET, { 100, 64, 0, 1 } }));
	}
	assert_true(seen);
	frr_routes_free(&r);
	free(j);

	j = slurp("frr/frr84_route6.json", &len);
	if (frr_parse_rib(j, len, &r, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(r.n_routes, 4);	/* fe80::/64 on two links */
	frr_routes_free(&r);
	free(j);
}

static void
test_parse_bfd_filtered(void **state)
{
	struct frr_bfd_status b;
	struct frr_prefix_list f;
	struct msg_prefix hijack = P("10.9.0.0/24");
	char err[256], *j;
	size_t len;

	(void)state;
	j = slurp("frr/frr84_bfd.json", &len);
	if (frr_parse_bfd(j, len, &b, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(b.n_peers, 1);
	assert_true(b.peers[0].up);
	assert_int_equal(b.peers[0].rx_ms, 100);
	assert_int_equal(b.peers[0].multiplier, 3);
	assert_string_equal(b.peers[0].ifname, "va");
	frr_bfd_status_free(&b);
	free(j);

	j = slurp("frr/frr84_bfd_down.json", &len);
	if (frr_parse_bfd(j, len, &b, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_false(b.peers[0].up);
	assert_string_equal(b.peers[0].diagnostic,
	    "neighbor signaled session down");
	frr_bfd_status_free(&b);
	free(j);

	j = slurp("frr/frr84_filtered4.json", &len);
	if (frr_parse_filtered(j, len, &f, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(f.n_prefixes, 1);
	assert_memory_equal(&f.prefixes[0], &hijack, sizeof(hijack));
	frr_prefix_list_free(&f);
	free(j);
	assert_int_equal(frr_parse_filtered("{}", 2, &f, err, sizeof(err)), 0);
	assert_int_equal(f.n_prefixes, 0);
}

/* Each parser over its input; -1 expected, err must name the problem. */
static void
expect_bad(int which, const char *json, const char *what)
{
	char err[256] = "";
	int rc;

	switch (which) {
	case 0: {
		struct frr_bgp_status s;

		rc = frr_parse_summary(json, strlen(json), &s, err,
		    sizeof(err));
		assert_null(s.neighbors);
		break;
	}
	case 1: {
		struct frr_routes r;

		rc = frr_parse_bgp_routes(json, strlen(json), &r, err,
		    sizeof(err));
		assert_null(r.routes);
		break;
	}
	case 2: {
		struct frr_routes r;

		rc = frr_parse_rib(json, strlen(json), &r, err, sizeof(err));
		assert_null(r.routes);
		break;
	}
	case 3: {
		struct frr_bfd_status b;

		rc = frr_parse_bfd(json, strlen(json), &b, err, sizeof(err));
		assert_null(b.peers);
		break;
	}
	default: {
		struct frr_prefix_list f;

		rc = frr_parse_filtered(json, strlen(json), &f, err,
		    sizeof(err));
		assert_null(f.prefixes);
		break;
	}
	}
	if (rc != -1)
		fail_msg("parser %d accepted %s", which, json);
	if (strstr(err, what) == NULL)
		fail_msg("parser %d: error \"%s\" lacks \"%s\"", which, err,
		    what);
}

static void
test_parse_malformed(void **state)
{
	(void)state;
	for (int p = 0; p < 5; p++) {
		expect_bad(p, "", "empty");
		expect_bad(p, "bgpd is not running", "not JSON");
		expect_bad(p, "{\"a\":", "not JSON");
	}
	expect_bad(0, "[]", "not a JSON object");
	expect_bad(0, "{\"ipv4Unicast\":{\"peers\":{}}}", "as: missing");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":\"x\"}}", "not an integer");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":-1}}", "not an integer");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1,\"peers\":[]}}",
	    "not an object");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1,\"peers\":{\"10.0.0.1\":"
	    "{\"remoteAs\":2}}}}", "state: missing");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1,\"peers\":{\"10.0.0.1\":"
	    "{\"state\":\"Established\"}}}}", "remoteAs: missing");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1,\"peers\":{\"10.0.0.1\":"
	    "{\"state\":\"Dancing\",\"remoteAs\":2}}}}", "unknown state");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1,\"peers\":{\"10.0.0.1\":"
	    "{\"state\":\"Idle\",\"remoteAs\":2,\"pfxRcd\":\"many\"}}}}",
	    "pfxRcd");
	expect_bad(0, "{\"ipv4Unicast\":{\"as\":1},\"ipv6Unicast\":{\"as\":2}}",
	    "differs");
	expect_bad(1, "{\"vrfId\":0}", "routes: missing");
	expect_bad(1, "{\"routes\":{\"10.0.0.0/8\":{}}}", "not an array");
	expect_bad(1, "{\"routes\":{\"banana\":[]}}", "not a prefix");
	expect_bad(1, "{\"routes\":{\"10.0.0.0/8\":[{\"peerId\":\"x\"}]}}",
	    "peerId");
	expect_bad(1, "{\"routes\":{\"10.0.0.0/8\":[{\"nexthops\":{}}]}}",
	    "nexthops");
	expect_bad(2, "{\"10.0.0.0/8\":[{\"selected\":true}]}",
	    "protocol: missing");
	expect_bad(2, "{\"10.0.0.0/8\":[{\"protocol\":\"bgp\",\"nexthops\":"
	    "[{\"ip\":\"garbage\"}]}]}", "not an address");
	expect_bad(2, "{\"10.0.0.0/8\":[{\"protocol\":\"bgp\","
	    "\"installed\":1}]}", "not a boolean");
	expect_bad(3, "{}", "not a JSON array");
	expect_bad(3, "[{\"status\":\"up\"}]", "peer");
	expect_bad(3, "[{\"peer\":\"10.0.0.1\"}]", "status: missing");
	expect_bad(3, "[{\"peer\":\"10.0.0.1\",\"status\":\"sideways\"}]",
	    "unknown");
	expect_bad(3, "[{\"peer\":\"10.0.0.1\",\"status\":\"up\","
	    "\"detect-multiplier\":1000}]", "detect-multiplier");
	expect_bad(4, "[]", "not a JSON object");
	expect_bad(4, "{\"receivedRoutes\":[]}", "not an object");
	expect_bad(4, "{\"receivedRoutes\":{\"x\":{}}}", "not a prefix");
	expect_bad(4, "{\"warning\":\"x\"}", "not a filtered-routes reply");
}

/* Every truncation of real output: an error or (whole) success, no crash. */
static void
test_parse_truncated(void **state)
{
	static const struct { const char *file; int which; } caps[] = {
		{ "frr/frr84_summary.json", 0 },
		{ "frr/frr84_bgp4.json", 1 },
		{ "frr/frr84_route4.json", 2 },
		{ "frr/frr84_bfd.json", 3 },
		{ "frr/frr84_filtered4.json", 4 },
	};
	char err[256];

	(void)state;
	for (size_t c = 0; c < ARRAY_SIZE(caps); c++) {
		size_t len;
		char *j = slurp(caps[c].file, &len);

		assert_non_null(j);
		for (size_t n = 0; n + 2 < len; n++) {
			int rc;

			switch (caps[c].which) {
			case 0: {
				struct frr_bgp_status s;

				rc = frr_parse_summary(j, n, &s, err,
				    sizeof(err));
				frr_bgp_status_free(&s);
				break;
			}
			case 1:
			case 2: {
				struct frr_routes r;

				rc = caps[c].which == 1 ?
				    frr_parse_bgp_routes(j, n, &r, err,
				    sizeof(err)) :
				    frr_parse_rib(j, n, &r, err, sizeof(err));
				frr_routes_free(&r);
				break;
			}
			case 3: {
				struct frr_bfd_status b;

				rc = frr_parse_bfd(j, n, &b, err, sizeof(err));
				frr_bfd_status_free(&b);
				break;
			}
			default: {
				struct frr_prefix_list f;

				rc = frr_parse_filtered(j, n, &f, err,
				    sizeof(err));
				frr_prefix_list_free(&f);
				break;
			}
			}
			if (rc != -1)
				fail_msg("%s cut at %zu bytes was accepted",
				    caps[c].file, n);
		}
		free(j);
	}
}

/* Too many entries for one reply. */
static void
test_parse_limits(void **state)
{
	size_t n = FRR_STATUS_MAX + 1, len = 0;
	char *j = malloc(n * 40 + 16), err[256];
	struct frr_bfd_status b;

	(void)state;
	assert_non_null(j);
	j[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(j + len, "%s{\"peer\":\"10.0.0.1\","
		    "\"status\":\"up\"}", i ? "," : "");
	j[len++] = ']';
	assert_int_equal(frr_parse_bfd(j, len, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
	free(j);
}

/* ------------------------------------------------------------------ */
/* The vtysh runner, against stand-in programs */

static char tmpdir[64];

static const char *
stand_in(const char *name, const char *body)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(path, 0700), 0);
	return path;
}

static int
setup_tmp(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_edge_frr.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmp(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_vtysh_args_and_output(void **state)
{
	struct frr_target t;
	const char *cmds[] = { "show running-config", "with spaces; $(no)" };
	char err[256], *out;
	size_t len;

	(void)state;
	memset(&t, 0, sizeof(t));
	snprintf(t.vtysh, sizeof(t.vtysh), "%s",
	    stand_in("echo", "for a; do echo \"[$a]\"; done"));
	snprintf(t.vty_socket, sizeof(t.vty_socket), "/run/x");
	snprintf(t.instance, sizeof(t.instance), "site1");
	if (frr_vtysh(&t, "bgpd", cmds, 2, &out, &len, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(out, "[-N]\n[site1]\n[--vty_socket]\n[/run/x]\n"
	    "[-d]\n[bgpd]\n[-c]\n[show running-config]\n[-c]\n"
	    "[with spaces; $(no)]\n");
	assert_int_equal(len, strlen(out));
	free(out);
}

static void
test_vtysh_failures(void **state)
{
	struct frr_target t;
	const char *cmds[] = { "show bgp summary json" };
	char err[256], *out = (char *)1;
	uint64_t t0;

	(void)state;
	memset(&t, 0, sizeof(t));
	/* Not running: exit status and FRR's own words. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("down",
	    "echo 'Exiting: failed to connect to any daemons.' >&2; exit 1"));
	assert_int_equal(frr_vtysh(&t, NULL, cmds, 1, &out, NULL, err,
	    sizeof(err)), -1);
	assert_null(out);
	assert_non_null(strstr(err, "exited with 1"));
	assert_non_null(strstr(err, "failed to connect to any daemons"));

	/* Hangs: killed at the deadline. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("hang",
	    "exec sleep 30"));
	t.timeout_ms = 300;
	t0 = util_mono_ms();
	assert_int_equal(frr_vtysh(&t, NULL, cmds, 1, &out, NULL, err,
	    sizeof(err)), -1);
	assert_true(util_mono_ms() - t0 < 3000);
	assert_non_null(strstr(err, "did not finish within 300 ms"));

	/* Floods: cut at the bound. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("flood",
	    "exec yes garbage"));
	t.timeout_ms = 5000;
	t.max_output = 100000;
	assert_int_equal(frr_vtysh(&t, NULL, cmds, 1, &out, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 100000 bytes"));

	/* A name that vtysh would read as an option: refused, not run. */
	snprintf(t.instance, sizeof(t.instance), "-d");
	assert_int_equal(frr_vtysh(&t, NULL, cmds, 1, &out, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "bad FRR instance"));
	t.instance[0] = '\0';

	/* Missing program. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s/none", tmpdir);
	assert_int_equal(frr_vtysh(&t, NULL, cmds, 1, &out, NULL, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot run"));
}

/* frr_apply and the readers fail with a reason, running nothing. */
static void
test_apply_errors(void **state)
{
	struct frr_target t;
	struct frr_desired d;
	struct frr_apply_result res;
	struct frr_bgp_status st;
	char err[256], log[160];

	(void)state;
	site_a(&d);
	memset(&t, 0, sizeof(t));
	snprintf(log, sizeof(log), "%s/calls", tmpdir);
	/* bgpd down. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("nobgpd",
	    "echo \"$*\" >> $(dirname $0)/calls\n"
	    "echo 'Exiting: failed to connect to any daemons.' >&2; exit 1"));
	assert_int_equal(frr_apply(&t, &d, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bgpd not reachable"));
	/* Garbage for a running-config: refused, nothing configured. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("garbage",
	    "echo \"$*\" >> $(dirname $0)/calls\n"
	    "for d in bgpd bfdd; do echo 'Building configuration...'\n"
	    "echo 'frr version 8.4.4'; echo 'router bgp 65001'; "
	    "echo ' neighbor'; done"));
	assert_int_equal(frr_apply(&t, &d, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "incomplete"));
	{
		char *calls = NULL;
		FILE *f = fopen(log, "r");
		char line[512];

		assert_non_null(f);
		while (fgets(line, sizeof(line), f) != NULL)
			if (strstr(line, "configure terminal") != NULL)
				calls = line;
		fclose(f);
		assert_null(calls);
	}
	/* Garbage for JSON. */
	assert_int_equal(frr_read_summary(&t, &st, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not JSON"));
	assert_null(st.neighbors);
	frr_desired_free(&d);
}

/*
 * One vtysh run reads bgpd's and bfdd's configuration (`show
 * running-config bgpd` and `... bfdd`; each vtysh start costs seconds on
 * a starved host); FRR in sync means no second run.  A daemon vtysh
 * prints nothing from (8.4 does that for one not running, and exits 0)
 * counts as not reachable: bgpd always, bfdd when a neighbour wants BFD.
 */
static void
test_apply_one_read(void **state)
{
	struct frr_target t;
	struct frr_desired d;
	struct frr_apply_result res;
	char err[256], path[160], *text, *run, *calls;
	size_t n;
	FILE *f;

	(void)state;
	site_a(&d);
	text = render(&d);
	run = as_running(text);
	snprintf(path, sizeof(path), "%s/running.txt", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(run, f);		/* bgpd's section */
	fputs(run, f);		/* bfdd's (its BFD profile is in it too) */
	fclose(f);
	memset(&t, 0, sizeof(t));
	snprintf(t.vty_socket, sizeof(t.vty_socket), "/x");
	snprintf(path, sizeof(path), "%s/calls1", tmpdir);
	unlink(path);
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("insync",
	    "echo \"$*\" >> $(dirname $0)/calls1\n"
	    "cat $(dirname $0)/running.txt"));
	if (frr_apply(&t, &d, &res, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_int_equal(res.n_changes, 0);
	assert_int_equal(res.n_cmds, 0);
	calls = slurp_abs(path, &n);
	assert_non_null(calls);
	assert_string_equal(calls, "--vty_socket /x -c show running-config bgpd "
	    "-c show running-config bfdd\n");
	free(calls);

	/* bfdd not running: only vtysh's own lines in its section. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("nobfdd",
	    "cat $(dirname $0)/running.txt | sed -n '1,/^end$/p'\n"
	    "printf 'Building configuration...\\n\\nCurrent configuration:"
	    "\\n!\\nhostname vm\\n!\\nend\\n'"));
	assert_int_equal(frr_apply(&t, &d, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bfdd not reachable"));
	/* ... which is fine when no neighbour wants BFD. */
	d.neighbors[0].bfd = false;
	if (frr_apply(&t, &d, &res, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	d.neighbors[0].bfd = true;

	/* bgpd not running: the same for its section. */
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("nobgpd2",
	    "printf 'Building configuration...\\n\\nCurrent configuration:"
	    "\\n!\\nhostname vm\\n!\\nend\\n'\n"
	    "cat $(dirname $0)/running.txt | sed -n '1,/^end$/p'"));
	assert_int_equal(frr_apply(&t, &d, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "bgpd not reachable"));
	free(run);
	free(text);
	frr_desired_free(&d);
}

/*
 * Status in one vtysh run: the BGP summary and the BFD peers, and the
 * filtered routes of several neighbours, as vtysh prints the replies of
 * several -c one after the other (captured 8.4 output).  When the one
 * run fails (bfdd down: vtysh exits 1) each is read on its own.
 */
static void
test_read_batched(void **state)
{
	struct frr_target t;
	struct frr_bgp_status st;
	struct frr_bfd_status b;
	struct frr_prefix_list pl[2];
	struct msg_addr nb[2] = { A("100.64.0.1"), A("100.64.0.3") };
	int fam[2] = { AF_INET, AF_INET };
	bool have_bfd, ok[2];
	char err[256], *calls, path[160], body[1024];
	const char *top = getenv("MESHWAN_TOP");
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "%s/calls2", tmpdir);
	memset(&t, 0, sizeof(t));
	snprintf(body, sizeof(body), "echo \"$*\" >> %s\n"
	    "g=%s/tests/unit/golden/frr\n"
	    "case \"$*\" in\n"
	    "*summary*bfd*) cat $g/frr84_summary.json $g/frr84_bfd.json ;;\n"
	    "*filtered*filtered*) cat $g/frr84_filtered4.json; "
	    "echo '{ }' ;;\n"
	    "*) exit 1 ;;\n"
	    "esac", path, top != NULL ? top : ".");
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("batch", body));
	if (frr_read_state(&t, &st, &b, &have_bfd, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_true(have_bfd);
	assert_int_equal(st.n_neighbors, 1);
	assert_int_equal(st.neighbors[0].tunnel_id, 1);
	assert_int_equal(b.n_peers, 1);
	frr_bgp_status_free(&st);
	frr_bfd_status_free(&b);
	if (frr_read_filtered_many(&t, nb, fam, 2, pl, ok, err,
	    sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_true(ok[0] && ok[1]);
	assert_int_equal(pl[0].n_prefixes, 1);
	assert_int_equal(pl[1].n_prefixes, 0);
	frr_prefix_list_free(&pl[0]);
	frr_prefix_list_free(&pl[1]);
	calls = slurp_abs(path, &n);
	assert_non_null(calls);
	assert_string_equal(calls,
	    "-c show bgp summary json -c show bfd peers json\n"
	    "-c show bgp ipv4 unicast neighbors 100.64.0.1 filtered-routes "
	    "json -c show bgp ipv4 unicast neighbors 100.64.0.3 "
	    "filtered-routes json\n");
	free(calls);

	/* bfdd down: the batch fails, the summary alone is read. */
	unlink(path);
	snprintf(body, sizeof(body), "echo \"$*\" >> %s\n"
	    "g=%s/tests/unit/golden/frr\n"
	    "case \"$*\" in\n"
	    "*bfd*) echo 'bfdd is not running' >&2; exit 1 ;;\n"
	    "*summary*) cat $g/frr84_summary.json ;;\n"
	    "*100.64.0.3*filtered-routes*) exit 1 ;;\n"
	    "*filtered-routes*) cat $g/frr84_filtered4.json ;;\n"
	    "esac", path, top != NULL ? top : ".");
	snprintf(t.vtysh, sizeof(t.vtysh), "%s", stand_in("nobfd", body));
	if (frr_read_state(&t, &st, &b, &have_bfd, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_false(have_bfd);
	assert_int_equal(st.n_neighbors, 1);
	assert_int_equal(b.n_peers, 0);
	frr_bgp_status_free(&st);
	/* One neighbour's read fails: the other is still read. */
	assert_int_equal(frr_read_filtered_many(&t, nb, fam, 2, pl, ok, err,
	    sizeof(err)), -1);
	assert_true(ok[0]);
	assert_false(ok[1]);
	assert_int_equal(pl[0].n_prefixes, 1);
	assert_int_equal(pl[1].n_prefixes, 0);
	frr_prefix_list_free(&pl[0]);
}

/* Zebra's interfaces: captured 8.4 output (mw2 as zebra shows a tunnel
 * whose /31 event it dropped), and bad output refused with a reason. */
static void
test_parse_interfaces(void **state)
{
	static const struct { const char *json, *what; } bad[] = {
		{ "[]", "not a JSON object" },
		{ "{\"mw1\":1}", "mw1: not an object" },
		{ "{\"mw1\":{\"ipAddresses\":{}}}", "mw1.ipAddresses: not an "
		    "array" },
		{ "{\"mw1\":{\"ipAddresses\":[{}]}}",
		    "mw1.ipAddresses[0].address: missing" },
		{ "{\"mw1\":{\"ipAddresses\":[{\"address\":7}]}}",
		    "mw1.ipAddresses[0].address: not a string" },
		{ "{\"mw1\":{\"ipAddresses\":[{\"address\":\"10.0.0.0/24\"},"
		    "{\"address\":\"100.64.0.0/33\"}]}}",
		    "mw1.ipAddresses[1].address: \"100.64.0.0/33\"" },
		{ "{\"mw1\":{\"ipAddresses\":[", "interfaces" },
	};
	struct frr_ifaces z;
	struct msg_prefix p31 = P("100.64.0.0/31");
	struct msg_addr a;
	char err[256], *j;
	size_t len;

	(void)state;
	j = slurp("frr/frr84_interfaces.json", &len);
	if (frr_parse_interfaces(j, len, &z, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	free(j);
	assert_int_equal(z.n_ifs, 4);
	assert_true(frr_iface_has(&z, "mw1", &p31.addr, 31));
	assert_false(frr_iface_has(&z, "mw1", &p31.addr, 32));
	assert_false(frr_iface_has(&z, "mw2", &p31.addr, 31));
	assert_false(frr_iface_has(&z, "mw9", &p31.addr, 31));
	assert_int_equal(msg_addr_parse("fd6d:6573:6877::", &a), 0);
	assert_true(frr_iface_has(&z, "mw1", &a, 127));
	assert_int_equal(msg_addr_parse("10.1.0.1", &a), 0);
	assert_true(frr_iface_has(&z, "l0", &a, 24));
	assert_false(frr_iface_has(&z, "lo", &a, 24));
	frr_ifaces_free(&z);
	assert_int_equal(frr_parse_interfaces("{}", 2, &z, err, sizeof(err)),
	    0);
	assert_int_equal(z.n_ifs, 0);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (frr_parse_interfaces(bad[i].json, strlen(bad[i].json), &z,
		    err, sizeof(err)) != -1)
			fail_msg("accepted %s", bad[i].json);
		assert_null(z.ifs);
		if (strstr(err, bad[i].what) == NULL)
			fail_msg("error \"%s\" lacks \"%s\"", err, bad[i].what);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_golden),
		cmocka_unit_test(test_diff_fresh_golden),
		cmocka_unit_test(test_diff_same_is_empty),
		cmocka_unit_test(test_diff_change_golden),
		cmocka_unit_test(test_diff_remote_as_change),
		cmocka_unit_test(test_diff_bfd_profile),
		cmocka_unit_test(test_diff_route_server_client),
		cmocka_unit_test(test_diff_asn_change),
		cmocka_unit_test(test_diff_real_running),
		cmocka_unit_test(test_diff_incomplete_running),
		cmocka_unit_test(test_diff_segments),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_max_prefixes),
		cmocka_unit_test(test_from_intent),
		cmocka_unit_test(test_from_intent_allowed),
		cmocka_unit_test(test_parse_summary),
		cmocka_unit_test(test_parse_routes),
		cmocka_unit_test(test_parse_bfd_filtered),
		cmocka_unit_test(test_parse_interfaces),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_vtysh_args_and_output),
		cmocka_unit_test(test_vtysh_failures),
		cmocka_unit_test(test_apply_errors),
		cmocka_unit_test(test_apply_one_read),
		cmocka_unit_test(test_read_batched),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
