/*
 * test_ctld_config.c — meshwan-controller's config parser: defaults,
 * normal forms, and that every kind of bad line is refused with the file
 * name, the line number and the key in the message.
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

#include "controller/config.h"
#include "controller/model.h"
#include "lib/log.h"

/* Parse text; return the rc and capture stderr (where errors go). */
static int
parse_capture(const char *text, struct config *cfg, char *err, size_t errsz)
{
	char path[] = "/tmp/ctld-config-XXXXXX";
	int fd = mkstemp(path), saved = dup(2), rc;
	ssize_t n;

	assert_true(fd >= 0);
	dup2(fd, 2);
	rc = config_parse("t.conf", text, strlen(text), cfg);
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

static void
test_defaults_and_values(void **state)
{
	struct config c;
	char err[512];
	const char *text =
	    "# comment\n"
	    "\n"
	    "grpc_listen = [::1]:9443   # trailing comment\n"
	    "http_listen=127.0.0.1:18080\n"
	    "token_lifetime = 90m\n"
	    "coalesce = 1s\n"
	    "server_names = ctl.example.net , 192.0.2.1\n"
	    "asn_range = 4200000000-4200000100\n"
	    "policy = hub-and-spoke\n"
	    "debug = session,rpc\n";

	(void)state;
	assert_int_equal(parse_capture(text, &c, err, sizeof(err)), 0);
	assert_string_equal(c.grpc_listen, "[::1]:9443");
	assert_string_equal(c.http_listen, "127.0.0.1:18080");
	assert_int_equal(c.token_lifetime_s, 5400);
	assert_int_equal(c.coalesce_ms, 1000);
	assert_int_equal(c.n_server_names, 2);
	assert_string_equal(c.server_names[1], "192.0.2.1");
	assert_int_equal(c.asn_min, 4200000000u);
	assert_int_equal(c.policy, CONFIG_POLICY_HUB_SPOKE);
	assert_int_equal(c.cert_lifetime_s, 30 * 86400);
	assert_string_equal(c.debug, "session,rpc");
	/* An edge keeps forwarding a day without its controller. */
	assert_int_equal(c.headless_grace_s, 86400);
	assert_int_equal(c.rekey_s, 3600);
}

/*
 * Rekeying and headless operation do not fight: a time rekey is soft, an
 * SA's hard lifetime covers the grace (proto/README.md), so no rule ties
 * them; the crypto keys pass the check PUT /api/v1/crypto applies.
 */
static void
test_rekey_and_grace(void **state)
{
	struct config c;
	struct model_crypto cr;
	struct model_error merr;
	char err[512];

	(void)state;
	assert_int_equal(parse_capture("headless_grace = 24h\n"
	    "rekey_interval = 60s\n", &c, err, sizeof(err)), 0);
	assert_int_equal(c.headless_grace_s, 86400);
	assert_int_equal(c.rekey_s, 60);
	config_crypto(&c, &cr);
	assert_int_equal(model_crypto_validate(&cr, &merr), 0);
	assert_int_equal(cr.rekey_seconds, 60);
	assert_int_equal(parse_capture("headless_grace = 30d\n"
	    "rekey_interval = 7d\n", &c, err, sizeof(err)), 0);
	assert_int_equal(parse_capture("rekey_interval = 59s\n", &c, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:1: rekey_interval: out of range"));
}

static void
test_bad_lines(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "a = 1\n", "t.conf:1: a: unknown key" },
		{ "\n\nhttp_listen 127.0.0.1:1\n", "t.conf:3: expected" },
		{ "http_listen = 127.0.0.1\n", "t.conf:1: http_listen:" },
		{ "http_listen = 127.0.0.1:70000\n", "t.conf:1: http_listen:" },
		{ "http_listen = localhost:8080\n",
		    "t.conf:1: http_listen: expected a numeric address" },
		{ "coalesce = 10\n", "t.conf:1: coalesce:" },
		{ "coalesce = 6s\n", "t.conf:1: coalesce: out of range" },
		{ "token_lifetime = 1x\n", "t.conf:1: token_lifetime:" },
		{ "token_lifetime = 1h\ntoken_lifetime = 2h\n",
		    "t.conf:2: token_lifetime: given more than once" },
		{ "policy = star\n", "t.conf:1: policy:" },
		{ "tunnel_pool = 10.0.0.1/16\n", "t.conf:1: tunnel_pool:" },
		{ "asn_range = 100-200\n", "t.conf:1: asn_range:" },
		{ "asn_range = 65000-64600\n", "t.conf:1: asn_range:" },
		{ "replay_window = 16\n", "t.conf:1: replay_window:" },
		{ "debug = rpc,nonsense\n", "t.conf:1: debug: unknown subsystem" },
		{ "server_names = a b\n", "t.conf:1: server_names:" },
		{ "ca_dir =\n", "t.conf:1: ca_dir: empty value" },
	};
	struct config c;
	char err[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse_capture(cases[i].text, &c, err,
		    sizeof(err)), -1);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: \"%s\" not in \"%s\"", i,
			    cases[i].want, err);
	}
}

/* The -n output parses back to the same configuration. */
static void
test_print_roundtrip(void **state)
{
	struct config a, b;
	char err[512], *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse_capture("cert_lifetime = 48h\nmtu = 1400\n"
	    "server_names = x.example\n", &a, err, sizeof(err)), 0);
	f = open_memstream(&out, &outlen);
	config_print(&a, f);
	fclose(f);
	assert_non_null(strstr(out, "cert_lifetime = 2d\n"));
	assert_non_null(strstr(out, "coalesce = 50ms\n"));
	assert_int_equal(parse_capture(out, &b, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_rekey_and_grace),
		cmocka_unit_test(test_print_roundtrip),
	};

	log_init("test_ctld_config", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
