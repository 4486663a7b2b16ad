/*
 * test_edge_config.c — meshwan-edge's configuration file: the normalised
 * print (-n) against a golden file and its stability, the defaults, every
 * kind of bad line refused with file, line and key, the limit of every
 * list, and that the enrollment token is never printed.
 *
 * After an intended change of the output, regenerate the golden file with
 *     UPDATE_GOLDEN=1 TEST_FILTER=test_edge_config make test
 * and review the diff before committing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "edge-agent/config.h"
#include "lib/log.h"

static const char *
top(void)
{
	const char *t = getenv("MESHWAN_TOP");

	return t != NULL ? t : ".";
}

/* Parse text; return the rc and capture stderr (where errors go). */
static int
parse_capture(const char *text, struct edge_config *cfg, char *err,
    size_t errsz)
{
	char path[] = "/tmp/edge-config-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), rc;
	ssize_t n;

	assert_true(fd >= 0);
	fflush(stderr);
	dup2(fd, 2);
	rc = edge_config_parse("t.conf", text, strlen(text), cfg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, err, errsz - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return rc;
}

static char *
print_to_string(const struct edge_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	edge_config_print(cfg, f);
	fclose(f);
	return buf;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static void
test_golden(void **state)
{
	struct edge_config c, again;
	char in[512], golden[512], err[512], *got, *want, *got2;

	(void)state;
	snprintf(in, sizeof(in), "%s/tests/unit/golden/edge_config.in", top());
	snprintf(golden, sizeof(golden),
	    "%s/tests/unit/golden/edge_config_print.txt", top());
	assert_int_equal(edge_config_load(in, &c), 0);
	got = print_to_string(&c);
	if (getenv("UPDATE_GOLDEN") != NULL) {
		FILE *f = fopen(golden, "w");

		assert_non_null(f);
		fputs(got, f);
		fclose(f);
	}
	want = slurp(golden);
	if (want == NULL)
		fail_msg("missing %s (UPDATE_GOLDEN=1 makes it)", golden);
	if (strcmp(want, got) != 0) {
		fprintf(stderr, "--- want\n%s--- got\n%s", want, got);
		fail_msg("output differs from %s", golden);
	}
	/* The normal form is itself a valid file that prints the same. */
	assert_int_equal(parse_capture(got, &again, err, sizeof(err)), 0);
	got2 = print_to_string(&again);
	assert_string_equal(got, got2);

	/* A few values, as the agent will use them. */
	assert_int_equal(c.n_controllers, 2);
	assert_string_equal(c.controllers[0], "ctl1.example.net:7443");
	assert_string_equal(c.controllers[1], "[2001:db8::10]:7443");
	assert_string_equal(c.enroll[1], "[2001:db8::10]:7444");
	assert_true(c.has_ca_pin);
	assert_int_equal(c.ca_pin[0], 0x00);
	assert_int_equal(c.ca_pin[31], 0xff);
	assert_int_equal(c.backend, EDGE_BACKEND_XFRM);
	assert_int_equal(c.bfd_interval_ms, 300);
	assert_int_equal(c.bfd_multiplier, 5);
	assert_int_equal(c.frr_timeout_ms, 45000);
	assert_int_equal(c.enroll_timeout_ms, 90000);
	assert_int_equal(c.n_links, 4);
	assert_int_equal(c.links[0].public_port, 4501);
	assert_int_equal(c.links[1].public_address.family, 0);
	assert_int_equal(c.links[3].public_port, 0);
	assert_int_equal(c.n_lan_prefixes, 3);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_string_equal(c.debug, "frr,reconcile,session");
	free(got);
	free(got2);
	free(want);
	edge_config_free(&c);
	edge_config_free(&again);
	edge_config_free(NULL);
}

static const char minimal[] =
    "controller = 192.0.2.1:7443\n"
    "ca_file = /etc/meshwan/ca.pem\n"
    "link = inet 192.0.2.10\n";

static void
test_defaults(void **state)
{
	struct edge_config c;
	char err[512], *out;

	(void)state;
	assert_int_equal(parse_capture(minimal, &c, err, sizeof(err)), 0);
	out = print_to_string(&c);
	assert_string_equal(out,
	    "controller = 192.0.2.1:7443\n"
	    "enroll_controller = 192.0.2.1:7444\n"
	    "ca_file = /etc/meshwan/ca.pem\n"
	    "controller_name = meshwan-controller\n"
	    "state_dir = /var/lib/meshwan-edge\n"
	    "backend = uesp\n"
	    "link = inet 192.0.2.10\n"
	    "vtysh = /usr/bin/vtysh\n"
	    "control_socket = /var/lib/meshwan-edge/control.sock\n"
	    "log_level = info\n");
	free(out);
	/* BFD timers: 0 = the FRR driver's own default (frr.h). */
	assert_int_equal(c.bfd_interval_ms, 0);
	assert_int_equal(c.bfd_multiplier, 0);
	assert_int_equal(c.frr_timeout_ms, 0);	/* FRR_TIMEOUT_MS */
	/* Not printed at its default, but set. */
	assert_int_equal(c.enroll_timeout_ms, EDGE_ENROLL_TIMEOUT_MS);
	assert_int_equal(c.enroll_timeout_ms, 30000);
	edge_config_free(&c);
	assert_int_equal(parse_capture("controller = 192.0.2.1:7443\n"
	    "ca_file = /etc/meshwan/ca.pem\nlink = inet 192.0.2.10\n"
	    "enroll_timeout_ms = 1000\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.enroll_timeout_ms, 1000);
	edge_config_free(&c);
	assert_int_equal(parse_capture("controller = 192.0.2.1:7443\n"
	    "ca_file = /etc/meshwan/ca.pem\nlink = inet 192.0.2.10\n"
	    "enroll_timeout_ms = 600000\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.enroll_timeout_ms, 600000);
	edge_config_free(&c);
}

/*
 * The control socket follows state_dir unless given; the metrics (no
 * authentication) stay on loopback unless remote serving is asked for.
 */
static void
test_control_metrics(void **state)
{
	struct edge_config c;
	char text[1024], err[512];

	(void)state;
	snprintf(text, sizeof(text), "%sstate_dir = /srv/edge\n", minimal);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.control_socket, "/srv/edge/control.sock");
	edge_config_free(&c);
	snprintf(text, sizeof(text), "%scontrol_socket = /run/mw.sock\n"
	    "metrics_listen = [::1]:9464\n", minimal);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.control_socket, "/run/mw.sock");
	assert_false(c.metrics_allow_remote);
	edge_config_free(&c);
	snprintf(text, sizeof(text), "%smetrics_listen = 127.0.0.53:9464\n",
	    minimal);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	edge_config_free(&c);
	snprintf(text, sizeof(text), "%smetrics_listen = 0.0.0.0:9464\n"
	    "metrics_allow_remote = yes\n", minimal);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_true(c.metrics_allow_remote);
	edge_config_free(&c);
	/* A state_dir too long for the default socket path. */
	snprintf(text, sizeof(text), "%sstate_dir = /%0100d\n", minimal, 0);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:4: control_socket: /0000"));
	assert_non_null(strstr(err, "set control_socket"));
	/* ... and the same with control_socket set is fine. */
	snprintf(text, sizeof(text), "%sstate_dir = /%0100d\n"
	    "control_socket = /run/mw.sock\n", minimal, 0);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	edge_config_free(&c);
}

/* The token is a credential: never printed, wiped on free. */
static void
test_token_hidden(void **state)
{
	struct edge_config c;
	char text[512], err[512], *out;

	(void)state;
	snprintf(text, sizeof(text), "%stoken = s3cret-Token_42\n", minimal);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.token, "s3cret-Token_42");
	out = print_to_string(&c);
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "# token = (set, not shown)\n"));
	free(out);
	edge_config_free(&c);
	assert_int_equal(c.token[0], '\0');
}

/* One bad line after the minimal file (lines 1-3): line 4 is named. */
static void
bad(const char *line, const char *want)
{
	struct edge_config c;
	char text[4096], err[512];

	snprintf(text, sizeof(text), "%s%s\n", minimal, line);
	if (parse_capture(text, &c, err, sizeof(err)) != -1)
		fail_msg("accepted: %s", line);
	if (strstr(err, want) == NULL)
		fail_msg("for '%s' expected '%s', got: %s", line, want, err);
	/* Nothing is left to free after a refused file. */
	assert_null(c.lan_prefixes);
	assert_int_equal(c.n_links, 0);
}

static void
test_bad_lines(void **state)
{
	char longsock[160];

	(void)state;
	bad("controller = 192.0.2.2:7443", "t.conf:4: controller: given more "
	    "than once (first on line 1)");
	bad("colour = blue", "t.conf:4: colour: unknown key");
	bad("just words", "t.conf:4: expected `key = value`");
	bad("state_dir =", "t.conf:4: state_dir: empty value");
	bad("state_dir = var/lib", "t.conf:4: state_dir: expected an absolute");
	bad("enroll_controller = 192.0.2.1", "t.conf:4: enroll_controller: "
	    "\"192.0.2.1\": expected host:port");
	bad("enroll_controller = 192.0.2.1:0", "expected host:port");
	bad("enroll_controller = 192.0.2.1:70000", "expected host:port");
	bad("enroll_controller = [192.0.2.1]:7444", "expected host:port");
	bad("enroll_controller = 2001:db8::1:7444", "expected host:port");
	bad("enroll_controller = a:1, a:1", "a:1 given twice");
	bad("enroll_controller = a:1,b:1,c:1,d:1,e:1", "more than 4");
	bad("ca_pin = sha256:0011", "t.conf:4: ca_pin: expected sha256:");
	bad("ca_pin = md5:00112233445566778899aabbccddeeff00112233445566778899"
	    "aabbccddeeff", "ca_pin: expected sha256:");
	bad("ca_pin = sha256:zz112233445566778899aabbccddeeff00112233445566778"
	    "899aabbccddeeff", "ca_pin: expected sha256:");
	bad("ca_pin = sha256:00112233445566778899aabbccddeeff00112233445566778"
	    "899aabbccddeeff", "t.conf:4: ca_file: give ca_file or ca_pin, not "
	    "both");
	bad("controller_name = ctl_1", "t.conf:4: controller_name: expected "
	    "a DNS name");
	bad("token = two words", "token: expected printable characters");
	bad("token = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaa", "token: longer than 128");
	bad("token = x\ntoken_file = /t", "t.conf:5: token: give token or "
	    "token_file, not both");
	bad("backend = kernel", "t.conf:4: backend: expected uesp, xfrm or null");
	bad("link = inet 192.0.2.11", "t.conf:4: link: name inet given twice");
	bad("link = mpls 192.0.2.10", "link: address 192.0.2.10 already used "
	    "by link inet");
	bad("link = MPLS 10.0.0.1", "link: name \"MPLS\": expected");
	bad("link = mpls", "link: expected NAME ADDRESS");
	bad("link = mpls 10.0.0.1 nat 1.2.3.4", "link: expected NAME ADDRESS");
	bad("link = mpls 10.0.0.300", "link: \"10.0.0.300\": not an IPv4");
	bad("link = mpls 10.0.0.1 public 1.2.3.4:0", "link: public \"1.2.3.4:0\"");
	bad("link = mpls 10.0.0.1 public host.example:4500", "link: public");
	bad("frr_instance = a/b", "frr_instance: expected letters");
	bad("frr_instance = -d", "frr_instance: must start with a letter");
	bad("frr_instance = a\nfrr_vty_socket = /run/frr", "t.conf:5: "
	    "frr_instance: give frr_instance or frr_vty_socket, not both");
	bad("vtysh = vtysh", "vtysh: expected an absolute path");
	bad("lan_prefix = 10.1.0.1/24", "t.conf:4: lan_prefix: \"10.1.0.1/24\": "
	    "expected a network");
	bad("lan_prefix = 10.1.0.0/33", "lan_prefix: \"10.1.0.0/33\"");
	bad("lan_prefix = 10.1.0.0/16\nlan_prefix = 10.1.2.0/24",
	    "t.conf:5: lan_prefix: 10.1.2.0/24 overlaps 10.1.0.0/16");
	bad("lan_prefix = fd00::/8\nlan_prefix = fd00::/8", "overlaps");
	bad("metrics_listen = localhost:9464", "metrics_listen: expected a "
	    "numeric address:port");
	bad("metrics_listen = 192.0.2.10:9464", "t.conf:4: metrics_listen: "
	    "192.0.2.10:9464 is not a loopback address");
	bad("metrics_listen = [::]:9464", "metrics_listen: [::]:9464 is not a "
	    "loopback");
	bad("metrics_listen = 0.0.0.0:9464\nmetrics_allow_remote = no",
	    "t.conf:4: metrics_listen: 0.0.0.0:9464 is not a loopback");
	bad("metrics_allow_remote = 1", "metrics_allow_remote: expected yes "
	    "or no");
	bad("bfd_interval_ms = 9", "t.conf:4: bfd_interval_ms: expected "
	    "10..60000 (milliseconds)");
	bad("bfd_interval_ms = 60001", "bfd_interval_ms: expected 10..60000");
	bad("frr_timeout_ms = 999", "t.conf:4: frr_timeout_ms: expected "
	    "1000..120000 (milliseconds)");
	bad("frr_timeout_ms = 120001", "frr_timeout_ms: expected 1000..120000");
	bad("frr_timeout_ms = 15s", "frr_timeout_ms: expected 1000..120000");
	bad("enroll_timeout_ms = 999", "t.conf:4: enroll_timeout_ms: expected "
	    "1000..600000 (milliseconds)");
	bad("enroll_timeout_ms = 600001", "enroll_timeout_ms: expected "
	    "1000..600000");
	bad("enroll_timeout_ms = 30s", "enroll_timeout_ms: expected "
	    "1000..600000");
	bad("enroll_timeout_ms = 0", "enroll_timeout_ms: expected 1000..600000");
	bad("enroll_timeout_ms = 30000\nenroll_timeout_ms = 30000",
	    "t.conf:5: enroll_timeout_ms");
	bad("bfd_multiplier = 1", "t.conf:4: bfd_multiplier: expected 2..255");
	bad("bfd_multiplier = 3x", "bfd_multiplier: expected 2..255");
	bad("control_socket = run/x", "control_socket: expected an absolute");
	snprintf(longsock, sizeof(longsock), "control_socket = /%0110d", 0);
	bad(longsock, "control_socket: longer than 107");
	bad("log_level = loud", "log_level: expected error, warn, info or debug");
	bad("debug = frr,bgp", "debug: unknown subsystem \"bgp\"");
}

/* Rules between keys, when a key is missing. */
static void
test_missing(void **state)
{
	struct edge_config c;
	char err[512];

	(void)state;
	assert_int_equal(parse_capture("ca_file = /ca\nlink = a 10.0.0.1\n",
	    &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:2: controller: missing"));
	assert_int_equal(parse_capture("controller = a:1\nlink = a 10.0.0.1\n",
	    &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "ca_file: missing"));
	assert_int_equal(parse_capture("controller = a:1\nca_file = /ca\n",
	    &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "link: missing"));
	assert_int_equal(parse_capture("", &c, err, sizeof(err)), -1);
}

/* The limit of every list and of the file. */
static void
test_limits(void **state)
{
	struct edge_config c;
	size_t cap = 128 * 1024, len;
	char *text = malloc(cap), err[512];

	(void)state;
	assert_non_null(text);
	/* 16 links pass, 17 do not. */
	len = (size_t)snprintf(text, cap, "controller = a:1\nca_file = /ca\n");
	for (int i = 0; i < 16; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "link = l%d 10.0.0.%d\n", i, i + 1);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	edge_config_free(&c);
	snprintf(text + len, cap - len, "link = l16 10.0.0.17\n");
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:19: link: more than 16 links"));

	/* 1024 prefixes pass, 1025 do not. */
	len = (size_t)snprintf(text, cap, "%s", minimal);
	for (int i = 0; i < 1024; i++)
		len += (size_t)snprintf(text + len, cap - len,
		    "lan_prefix = 10.%d.%d.0/24\n", i / 256, i % 256);
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_int_equal(c.n_lan_prefixes, 1024);
	edge_config_free(&c);
	snprintf(text + len, cap - len, "lan_prefix = 11.0.0.0/24\n");
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "lan_prefix: more than 1024 prefixes"));

	/* A line of 1024 characters, a file over 64 KiB, a NUL byte. */
	memset(text, 'x', 1024);
	text[1024] = '\0';
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:1: line longer than 1023"));
	memset(text, '#', 70000);
	text[70000] = '\0';
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "larger than 64 KiB"));
	assert_int_equal(edge_config_parse("t.conf", "a\0b", 3, &c), -1);
	free(text);
}

static void
test_load_errors(void **state)
{
	struct edge_config c;

	(void)state;
	log_init("test_edge_config", true);
	assert_int_equal(edge_config_load("/nonexistent/edge.conf", &c), -1);
	assert_int_equal(edge_config_load("/tmp", &c), -1);
	assert_null(c.lan_prefixes);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_control_metrics),
		cmocka_unit_test(test_token_hidden),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_load_errors),
	};

	log_init("test_edge_config", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
