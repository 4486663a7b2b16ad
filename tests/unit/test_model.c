/*
 * test_model.c — validation of model objects: names, CIDRs, overlaps,
 * ASNs, policy and crypto limits, colour pairing, and that an error names
 * the offending field with a stable code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "controller/model.h"
#include "proto/msg.h"

static void
test_names(void **state)
{
	char long_name[MODEL_NAME_MAX + 2];

	assert_true(model_site_name_valid("paris-1"));
	assert_false(model_site_name_valid(""));
	assert_false(model_site_name_valid("-paris"));
	assert_false(model_site_name_valid("Paris"));
	assert_false(model_site_name_valid("par_is"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(model_site_name_valid(long_name));
	long_name[MODEL_NAME_MAX] = '\0';
	assert_true(model_site_name_valid(long_name));
	assert_true(model_link_name_valid("inet_2"));
	assert_true(model_link_name_valid("lte-backup"));
	assert_false(model_link_name_valid("a b"));
	assert_false(model_link_name_valid("abcdefghijabcdefghijabcdefghijabc"));
	assert_true(model_region_valid(""));
	assert_true(model_region_valid("eu-west"));
}

static void
test_prefixes(void **state)
{
	struct model_prefix a, b;
	struct model_error err;
	char buf[MODEL_CIDR_MAX + 1];

	assert_int_equal(model_prefix_parse("10.1.0.0/16", false, &a, "prefix",
	    &err), 0);
	model_prefix_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "10.1.0.0/16");
	assert_int_equal(model_prefix_parse("10.1.2.3/16", false, &b, "prefix",
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	assert_string_equal(err.field, "prefix");
	assert_int_equal(model_prefix_parse("10.1.2.3/16", true, &b, "prefix",
	    &err), 0);
	model_prefix_format(&b, buf, sizeof(buf));
	assert_string_equal(buf, "10.1.0.0/16");
	assert_int_equal(model_prefix_parse("10.1.0.0/33", false, &b, "p",
	    &err), -1);
	assert_int_equal(model_prefix_parse("10.1.0.0", false, &b, "p",
	    &err), -1);
	assert_int_equal(model_prefix_parse("10.1.0.0/", false, &b, "p",
	    &err), -1);
	assert_int_equal(model_prefix_parse("nonsense/8", false, &b, "p",
	    &err), -1);
	assert_int_equal(model_prefix_parse("2001:db8::/32", false, &b, "p",
	    &err), 0);
	model_prefix_format(&b, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::/32");

	/* overlaps */
	model_prefix_parse("10.1.128.0/17", false, &b, "p", NULL);
	assert_true(model_prefix_overlap(&a, &b));
	assert_true(model_prefix_overlap(&b, &a));
	model_prefix_parse("10.2.0.0/16", false, &b, "p", NULL);
	assert_false(model_prefix_overlap(&a, &b));
	model_prefix_parse("0.0.0.0/0", false, &b, "p", NULL);
	assert_true(model_prefix_overlap(&a, &b));
	model_prefix_parse("2001:db8::/32", false, &b, "p", NULL);
	assert_false(model_prefix_overlap(&a, &b));
}

static void
test_ipv4_format(void **state)
{
	char buf[16];

	model_ipv4_format(0x64400001u, buf, sizeof(buf));
	assert_string_equal(buf, "100.64.0.1");
	model_ipv4_format(0xffffffffu, buf, sizeof(buf));
	assert_string_equal(buf, "255.255.255.255");
	model_ipv4_format(0x0a00630au, buf, sizeof(buf));
	assert_string_equal(buf, "10.0.99.10");
	model_ipv4_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.0.0.0");
}

static void
test_asn(void **state)
{
	assert_true(model_asn_private(64512));
	assert_true(model_asn_private(65534));
	assert_false(model_asn_private(65535));
	assert_false(model_asn_private(64511));
	assert_true(model_asn_private(4200000000u));
	assert_false(model_asn_private(4294967295u));
}

static struct model_site
good_site(void)
{
	struct model_site s;

	memset(&s, 0, sizeof(s));
	s.id = 1;
	snprintf(s.name, sizeof(s.name), "paris");
	snprintf(s.region, sizeof(s.region), "eu");
	s.role = MODEL_ROLE_SPOKE;
	s.n_links = 2;
	snprintf(s.links[0].name, sizeof(s.links[0].name), "mpls");
	snprintf(s.links[0].address, sizeof(s.links[0].address), "10.0.0.1");
	snprintf(s.links[1].name, sizeof(s.links[1].name), "inet");
	snprintf(s.links[1].address, sizeof(s.links[1].address), "192.0.2.1");
	return s;
}

static void
test_site_validate(void **state)
{
	struct model_site s = good_site();
	struct model_error err;

	assert_int_equal(model_site_validate(&s, &err), 0);
	s.asn = 65000;
	assert_int_equal(model_site_validate(&s, &err), 0);
	s.asn = 3356;
	assert_int_equal(model_site_validate(&s, &err), -1);
	assert_string_equal(err.field, "asn");
	assert_string_equal(model_errcode_str(err.code), "invalid");

	s = good_site();
	snprintf(s.links[1].address, sizeof(s.links[1].address), "300.1.1.1");
	assert_int_equal(model_site_validate(&s, &err), -1);
	assert_string_equal(err.field, "links[1].address");

	s = good_site();
	snprintf(s.links[1].name, sizeof(s.links[1].name), "mpls");
	assert_int_equal(model_site_validate(&s, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	assert_string_equal(err.field, "links[1].name");

	s = good_site();
	s.role = 0;
	assert_int_equal(model_site_validate(&s, &err), -1);
	assert_string_equal(err.field, "role");

	s = good_site();
	model_site_sort_links(&s);
	assert_string_equal(s.links[0].name, "inet");
	assert_int_equal(model_site_find_link(&s, "mpls"), 1);
	assert_int_equal(model_site_find_link(&s, "lte"), -1);
}

static void
test_policy(void **state)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_error err;
	char buf[64];

	model_policy_default(&p);
	assert_int_equal(model_policy_validate(&p, &err), 0);
	model_prefix_format(&p.pool, buf, sizeof(buf));
	assert_string_equal(buf, "100.64.0.0/16");
	assert_int_equal(model_pool_slots(&p.pool), 32768);
	assert_int_equal(p.asn_min, 64512);
	assert_int_equal(p.asn_max, 65534);
	assert_true(model_policy_pair_allowed(&p, "inet", "inet"));
	assert_false(model_policy_pair_allowed(&p, "inet", "mpls"));

	p.pairing = MODEL_PAIR_LIST;
	assert_int_equal(model_policy_validate(&p, &err), -1);
	assert_string_equal(err.field, "pairs");
	p.n_pairs = 1;
	snprintf(p.pairs[0].a, sizeof(p.pairs[0].a), "inet");
	snprintf(p.pairs[0].b, sizeof(p.pairs[0].b), "lte");
	assert_int_equal(model_policy_validate(&p, &err), 0);
	assert_true(model_policy_pair_allowed(&p, "lte", "inet"));
	assert_false(model_policy_pair_allowed(&p, "inet", "inet"));
	p.pairing = MODEL_PAIR_ANY;
	assert_true(model_policy_pair_allowed(&p, "mpls", "lte"));

	model_policy_default(&p);
	model_prefix_parse("2001:db8::/64", false, &p.pool, "pool", NULL);
	assert_int_equal(model_policy_validate(&p, &err), -1);
	assert_string_equal(err.field, "pool");
	model_policy_default(&p);
	p.vni_min = 0;
	assert_int_equal(model_policy_validate(&p, &err), -1);
	assert_string_equal(err.field, "vni");
	model_policy_default(&p);
	p.asn_min = 65000;
	p.asn_max = 64999;
	assert_int_equal(model_policy_validate(&p, &err), -1);
	assert_string_equal(err.field, "asn_range");

	model_crypto_default(&c);
	assert_int_equal(model_crypto_validate(&c, &err), 0);
	assert_int_equal(c.rekey_seconds, 3600);
	assert_int_equal(c.replay_window, 1024);
	c.replay_window = 16;
	assert_int_equal(model_crypto_validate(&c, &err), -1);
	assert_string_equal(err.field, "replay_window");
	c.replay_window = 1024;
	c.cipher = 7;
	assert_int_equal(model_crypto_validate(&c, &err), -1);
	assert_string_equal(err.field, "cipher");
	/* Soft volume limits: at most half the SA's hard limit. */
	model_crypto_default(&c);
	c.rekey_seconds = 60;
	c.rekey_bytes = MSG_SA_SOFT_BYTES_MAX;
	c.rekey_packets = MSG_SA_SOFT_PACKETS_MAX;
	assert_int_equal(model_crypto_validate(&c, &err), 0);
	c.rekey_bytes++;
	assert_int_equal(model_crypto_validate(&c, &err), -1);
	assert_string_equal(err.field, "rekey_bytes");
	c.rekey_bytes = 0;
	c.rekey_packets++;
	assert_int_equal(model_crypto_validate(&c, &err), -1);
	assert_string_equal(err.field, "rekey_packets");
}

static void
test_enum_strings(void **state)
{
	enum model_topology t;
	enum model_role r;
	enum model_api_role a;

	assert_int_equal(model_topology_parse("hub-and-spoke", &t), 0);
	assert_int_equal(t, MODEL_TOPO_HUB_SPOKE);
	assert_string_equal(model_topology_str(MODEL_TOPO_REGIONAL),
	    "regional-mesh");
	assert_int_equal(model_role_parse("hub", &r), 0);
	assert_int_equal(model_role_parse("king", &r), -1);
	assert_int_equal(model_api_role_parse("readonly", &a), 0);
	assert_int_equal(a, MODEL_API_READONLY);
	assert_string_equal(model_errcode_str(MODEL_E_EXHAUSTED), "exhausted");
	assert_string_equal(model_errcode_str(MODEL_E_TOKEN), "token_invalid");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_ipv4_format),
		cmocka_unit_test(test_asn),
		cmocka_unit_test(test_site_validate),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_enum_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
