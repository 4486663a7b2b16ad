/*
 * test_overlay.c — the backend interface: registry lookup, the null
 * backend's record and state rules, parameter checks, and the static
 * tool's file parsing and reconcile order (make-before-break), driven
 * through the null backend.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/log.h"
#include "overlay/overlay.h"
#include "overlay/uesp/uesp_cfg.h"

static void
test_registry(void **state)
{
	const struct overlay_ops *o;
	const char *const *n;

	o = overlay_find("null");
	assert_non_null(o);
	assert_string_equal(o->name, "null");
	assert_int_equal(o->version, OVERLAY_API_VERSION);
	o = overlay_find("uesp");
	assert_non_null(o);
	assert_string_equal(o->name, "uesp");
	assert_true(o->features & OVERLAY_F_GRE);
	assert_true(o->features & OVERLAY_F_VXLAN);
	assert_true(o->features & OVERLAY_F_AES_GCM_256);
	assert_true(o->features & OVERLAY_F_ESN);
	/* Same values as the wire contract's Feature enum. */
	assert_int_equal(OVERLAY_F_NAT_T, 32);
	assert_int_equal(OVERLAY_F_AES_GCM_128, 4);
	assert_null(overlay_find("xfrm-not-yet"));
	assert_null(overlay_find(""));
	assert_null(overlay_find(NULL));
	for (n = overlay_names(); *n != NULL; n++)
		assert_non_null(overlay_find(*n));
}

static void
tunnel_params(struct overlay_tunnel_params *p, uint64_t id, const char *dev)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	assert_int_equal(overlay_addr_parse("192.0.2.2", &p->remote), 0);
	assert_int_equal(overlay_addr_parse("169.254.0.0", &p->inner_local), 0);
	assert_int_equal(overlay_addr_parse("169.254.0.1", &p->inner_peer), 0);
	p->encap = OVERLAY_ENCAP_GRE;
	p->mtu = 1400;
	strcpy(p->ifname, dev);
}

static void
test_null_records(void **state)
{
	const struct overlay_ops *o = overlay_find("null");
	struct overlay_init_params ip = { 0 };
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	struct overlay_tunnel_stats ts;
	struct overlay_sa_stats ss;
	void *ctx;

	assert_int_equal(o->init(&ip, &ctx), 0);
	tunnel_params(&tp, 7, "t7");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	assert_int_equal(o->tunnel_add(ctx, &tp), -EEXIST);

	memset(&sp, 0, sizeof(sp));
	sp.tunnel_id = 7;
	sp.dir = OVERLAY_DIR_OUT;
	sp.spi = 4096;
	sp.cipher = OVERLAY_AES_GCM_256;
	memset(sp.key, 0xab, sizeof(sp.key));
	sp.esn = true;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	sp.tunnel_id = 8;
	assert_int_equal(o->sa_add(ctx, &sp), -ENOENT);
	sp.tunnel_id = 7;
	sp.spi = 12;		/* reserved range */
	assert_int_equal(o->sa_add(ctx, &sp), -EINVAL);

	/* Fail closed until switched. */
	assert_int_equal(o->tunnel_stats(ctx, 7, &ts), 0);
	assert_int_equal(ts.spi_out, 0);
	assert_int_equal(ts.sa_out, 1);
	assert_int_equal(o->sa_switch_out(ctx, 7, 4097), -ENOENT);
	assert_int_equal(o->sa_switch_out(ctx, 7, 4096), 0);
	assert_int_equal(o->tunnel_stats(ctx, 7, &ts), 0);
	assert_int_equal(ts.spi_out, 4096);
	assert_int_equal(o->sa_stats(ctx, 7, 4096, OVERLAY_DIR_OUT, &ss), 0);
	assert_true(ss.active);
	assert_int_equal(o->sa_del(ctx, 7, 4096, OVERLAY_DIR_OUT), 0);
	assert_int_equal(o->tunnel_stats(ctx, 7, &ts), 0);
	assert_int_equal(ts.spi_out, 0);
	/* What needs a new device is refused in place (not recorded). */
	tp.encap = OVERLAY_ENCAP_VXLAN;
	tp.vni = 5;
	assert_int_equal(o->tunnel_update(ctx, &tp), -EINVAL);
	tp.encap = OVERLAY_ENCAP_GRE;
	tp.vni = 0;
	assert_int_equal(overlay_addr_parse("169.254.0.2", &tp.inner_local), 0);
	assert_int_equal(o->tunnel_update(ctx, &tp), -EINVAL);
	assert_int_equal(o->tunnel_update(ctx, &(struct overlay_tunnel_params){
	    .id = 99 }), -EINVAL);
	assert_int_equal(o->tunnel_del(ctx, 7), 0);
	assert_int_equal(o->tunnel_del(ctx, 7), -ENOENT);

	/* Every successful call is on record, in order, without key bytes. */
	assert_string_equal(null_record(ctx),
	    "init port=4500 workers=0\n"
	    "tunnel_add tunnel=7 dev=t7 encap=gre vni=0 remote=192.0.2.2:4500 "
	    "inner=169.254.0.0/31 peer=169.254.0.1 mtu=1400 allowed=0\n"
	    "sa_add tunnel=7 dir=out spi=4096 cipher=aes-gcm-256 esn=1 "
	    "window=1024\n"
	    "sa_switch_out tunnel=7 spi=4096\n"
	    "sa_del tunnel=7 dir=out spi=4096\n"
	    "tunnel_del tunnel=7");
	assert_int_equal(null_calls(ctx), 6);
	assert_null(strstr(null_record(ctx), "abab"));
	o->fini(ctx);
	o->fini(NULL);
}

static void
test_params_check(void **state)
{
	struct overlay_tunnel_params tp;

	tunnel_params(&tp, 1, "t1");
	assert_int_equal(overlay_tunnel_params_check(&tp), 0);
	tp.encap = OVERLAY_ENCAP_VXLAN;
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL); /* no VNI */
	tp.vni = 0x1000000;
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tp.vni = 42;
	assert_int_equal(overlay_tunnel_params_check(&tp), 0);
	tp.mtu = 100;
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tunnel_params(&tp, 0, "t1");
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tunnel_params(&tp, 1, "");
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tunnel_params(&tp, 1, "a/b");
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tunnel_params(&tp, 1, "t1");
	assert_int_equal(overlay_addr_parse("2001:db8::1", &tp.local), 0);
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL); /* mixed */
}

/* ---- static file and reconcile ----------------------------------------- */

#define K1 "0101010101010101010101010101010101010101010101010101010101010101"
#define K2 "0202020202020202020202020202020202020202020202020202020202020202"
#define K3 "0303030303030303030303030303030303030303030303030303030303030303"

static struct uesp_cfg *
load(const char *json)
{
	char path[] = "/tmp/test_overlay.XXXXXX";
	struct uesp_cfg *c;
	FILE *f;
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	c = uesp_cfg_load(path);
	unlink(path);
	return c;
}

#define TUN_HEAD "{\"tunnels\": [{\"id\": 5, \"device\": \"t5\", " \
	"\"remote\": \"192.0.2.2\", \"inner\": \"169.254.0.0/31\", " \
	"\"peer\": \"169.254.0.1\", \"mtu\": 1400, "
#define SA(dir, spi, key) "{\"dir\": \"" dir "\", \"spi\": " #spi \
	", \"key\": \"" key "\", \"salt\": \"0a0b0c0d\"}"

static void
test_cfg_errors(void **state)
{
	struct uesp_cfg *c;

	c = load(TUN_HEAD "\"sas\": [" SA("out", 4096, K1) "]}]}");
	assert_non_null(c);
	assert_int_equal(c->ntunnels, 1);
	assert_int_equal(c->tunnels[0].spi_out, 4096);
	assert_int_equal(c->tunnels[0].sa[0].key[31], 1);
	uesp_cfg_free(c);

	/* Refused: unknown field, short key, bad hex, reserved SPI, two
	 * outbound SAs without spi_out, spi_out naming nothing, duplicate
	 * SPI, VNI on GRE, not JSON. */
	assert_null(load(TUN_HEAD "\"colour\": 1, \"sas\": []}]}"));
	assert_null(load(TUN_HEAD "\"sas\": [" SA("out", 4096, "0102") "]}]}"));
	assert_null(load(TUN_HEAD "\"sas\": [" SA("out", 4096,
	    "zz02020202020202020202020202020202020202020202020202020202020202")
	    "]}]}"));
	assert_null(load(TUN_HEAD "\"sas\": [" SA("out", 255, K1) "]}]}"));
	assert_null(load(TUN_HEAD "\"sas\": [" SA("out", 4096, K1) ","
	    SA("out", 4097, K2) "]}]}"));
	assert_null(load(TUN_HEAD "\"spi_out\": 5000, \"sas\": ["
	    SA("out", 4096, K1) "]}]}"));
	assert_null(load(TUN_HEAD "\"sas\": [" SA("in", 4096, K1) ","
	    SA("in", 4096, K2) "]}]}"));
	assert_null(load(TUN_HEAD "\"vni\": 3, \"sas\": []}]}"));
	assert_null(load("{\"tunnels\": ["));
}

static void
test_cfg_print_redacts(void **state)
{
	struct uesp_cfg *c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	c = load(TUN_HEAD "\"sas\": [" SA("in", 4096, K3) "]}]}");
	assert_non_null(c);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(uesp_cfg_print(c, f), 0);
	fclose(f);
	assert_null(strstr(buf, "0303"));
	assert_null(strstr(buf, "0a0b0c0d"));
	assert_non_null(strstr(buf, "\"key\": \"(redacted)\""));
	assert_non_null(strstr(buf, "\"remote_port\": 4500"));
	assert_non_null(strstr(buf, "\"inner\": \"169.254.0.0/31\""));
	free(buf);
	uesp_cfg_free(c);
}

/* The lines of the record from line `from` on. */
static const char *
record_from(void *ctx, unsigned from)
{
	const char *r = null_record(ctx);

	while (from-- > 0 && (r = strchr(r, '\n')) != NULL)
		r++;
	return r != NULL ? r : "";
}

static void
test_cfg_rekey_order(void **state)
{
	const struct overlay_ops *o = overlay_find("null");
	struct overlay_init_params ip = { 0 };
	struct uesp_cfg *cur, *want;
	unsigned mark;
	void *ctx;

	assert_int_equal(o->init(&ip, &ctx), 0);
	cur = uesp_cfg_empty();
	assert_non_null(cur);

	want = load(TUN_HEAD "\"sas\": [" SA("out", 4096, K1) ","
	    SA("in", 8192, K2) "]}]}");
	assert_non_null(want);
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_string_equal(record_from(ctx, 1),
	    "tunnel_add tunnel=5 dev=t5 encap=gre vni=0 remote=192.0.2.2:4500 "
	    "inner=169.254.0.0/31 peer=169.254.0.1 mtu=1400 allowed=0\n"
	    "sa_add tunnel=5 dir=in spi=8192 cipher=aes-gcm-256 esn=1 window=1024\n"
	    "sa_add tunnel=5 dir=out spi=4096 cipher=aes-gcm-256 esn=1 window=1024\n"
	    "sa_switch_out tunnel=5 spi=4096");

	/* The same file again: nothing to do. */
	mark = null_calls(ctx);
	want = load(TUN_HEAD "\"sas\": [" SA("in", 8192, K2) ","
	    SA("out", 4096, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_int_equal(null_calls(ctx), mark);

	/* A whole rekey in one file: new inbound first, then new outbound,
	 * the switch, and only then the removals. */
	want = load(TUN_HEAD "\"spi_out\": 4097, \"sas\": ["
	    SA("out", 4097, K3) "," SA("in", 8193, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_string_equal(record_from(ctx, mark),
	    "sa_add tunnel=5 dir=in spi=8193 cipher=aes-gcm-256 esn=1 window=1024\n"
	    "sa_add tunnel=5 dir=out spi=4097 cipher=aes-gcm-256 esn=1 window=1024\n"
	    "sa_switch_out tunnel=5 spi=4097\n"
	    "sa_del tunnel=5 dir=in spi=8192\n"
	    "sa_del tunnel=5 dir=out spi=4096");

	/* MTU changes in place; a new device name re-makes the tunnel. */
	mark = null_calls(ctx);
	want = load("{\"tunnels\": [{\"id\": 5, \"device\": \"t5\", "
	    "\"remote\": \"192.0.2.2\", \"inner\": \"169.254.0.0/31\", "
	    "\"peer\": \"169.254.0.1\", \"mtu\": 1300, \"sas\": []}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_non_null(strstr(record_from(ctx, mark),
	    "tunnel_update tunnel=5 dev=t5"));
	assert_null(strstr(record_from(ctx, mark), "tunnel_del"));
	mark = null_calls(ctx);
	want = load("{\"tunnels\": [{\"id\": 5, \"device\": \"t6\", "
	    "\"remote\": \"192.0.2.2\", \"inner\": \"169.254.0.0/31\", "
	    "\"peer\": \"169.254.0.1\", \"mtu\": 1300}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_string_equal(record_from(ctx, mark),
	    "tunnel_del tunnel=5\n"
	    "tunnel_add tunnel=5 dev=t6 encap=gre vni=0 remote=192.0.2.2:4500 "
	    "inner=169.254.0.0/31 peer=169.254.0.1 mtu=1300 allowed=0");

	/* Everything removed. */
	want = load("{\"tunnels\": []}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_int_equal(cur->ntunnels, 0);
	uesp_cfg_free(cur);
	o->fini(ctx);
}

/*
 * overlay.h's nonce and SPI rules, as the null backend keeps them: an
 * outbound key serves one SA in the instance's life, lifetimes change in
 * place, an inbound SPI is unique across the site's tunnels.
 */
static void
test_null_key_and_spi_rules(void **state)
{
	const struct overlay_ops *o = overlay_find("null");
	struct overlay_init_params ip = { 0 };
	struct overlay_tunnel_params tp;
	struct overlay_sa_params sp;
	void *ctx;

	assert_true(o->version >= 2);
	assert_non_null(o->sa_update);
	assert_int_equal(o->init(&ip, &ctx), 0);
	tunnel_params(&tp, 1, "t1");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	tunnel_params(&tp, 2, "t2");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);

	memset(&sp, 0, sizeof(sp));
	sp.tunnel_id = 1;
	sp.dir = OVERLAY_DIR_OUT;
	sp.spi = 4096;
	sp.cipher = OVERLAY_AES_GCM_256;
	memset(sp.key, 0x11, sizeof(sp.key));
	memset(sp.salt, 0x22, sizeof(sp.salt));
	sp.esn = true;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	/* Lifetimes in place; anything else is not an update. */
	sp.hard.seconds = 7200;
	assert_int_equal(o->sa_update(ctx, &sp), 0);
	assert_non_null(strstr(null_record(ctx),
	    "sa_update tunnel=1 dir=out spi=4096 soft=0/0/0 hard=0/0/7200"));
	sp.key[0] ^= 1;
	assert_int_equal(o->sa_update(ctx, &sp), -EINVAL);
	sp.key[0] ^= 1;
	sp.esn = false;
	assert_int_equal(o->sa_update(ctx, &sp), -EINVAL);
	sp.esn = true;
	/* The same key on another SPI, another tunnel, or after the first SA
	 * is gone: refused.  The same key with another salt is another
	 * nonce space, and fine. */
	sp.spi = 4097;
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	sp.tunnel_id = 2;
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	assert_int_equal(o->sa_del(ctx, 1, 4096, OVERLAY_DIR_OUT), 0);
	sp.tunnel_id = 1;
	sp.spi = 4096;
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	assert_int_equal(o->tunnel_del(ctx, 1), 0);
	tunnel_params(&tp, 1, "t1");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	sp.salt[0] ^= 1;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	/* Inbound keys may repeat (a peer's choice); start numbers are
	 * outbound only. */
	sp.dir = OVERLAY_DIR_IN;
	sp.spi = 8192;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	/* An inbound SPI is unique across the site, live or draining. */
	sp.tunnel_id = 2;
	memset(sp.key, 0x33, sizeof(sp.key));
	assert_int_equal(o->sa_add(ctx, &sp), -EEXIST);
	sp.spi = 8193;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	sp.seq_start = 5;
	sp.spi = 8194;
	assert_int_equal(o->sa_add(ctx, &sp), -EINVAL);
	/* Once its SA is deleted, the SPI is free again. */
	assert_int_equal(o->sa_del(ctx, 1, 8192, OVERLAY_DIR_IN), 0);
	sp.seq_start = 0;
	sp.spi = 8192;
	assert_int_equal(o->sa_add(ctx, &sp), 0);
	o->fini(ctx);
}

/* The allowed source prefixes: parsed, checked, printed. */
static void
test_cfg_allowed(void **state)
{
	struct overlay_tunnel_params tp;
	struct overlay_prefix pf;
	struct uesp_cfg *c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	uint8_t a[16];

	assert_int_equal(overlay_prefix_parse("10.1.0.0/16", &pf), 0);
	memcpy(a, (uint8_t[]){ 10, 1, 200, 3 }, 4);
	assert_true(overlay_prefix_has(&pf, AF_INET, a));
	a[1] = 2;
	assert_false(overlay_prefix_has(&pf, AF_INET, a));
	assert_int_equal(overlay_prefix_parse("2001:db8::/33", &pf), 0);
	assert_int_equal(overlay_prefix_parse("10.1.0.1/16", &pf), -1);
	assert_int_equal(overlay_prefix_parse("10.1.0.0/33", &pf), -1);
	assert_int_equal(overlay_prefix_parse("10.1.0.0", &pf), -1);
	assert_int_equal(overlay_prefix_parse("10.1.0.0/", &pf), -1);
	assert_int_equal(overlay_prefix_parse("::/129", &pf), -1);
	tunnel_params(&tp, 1, "t1");
	tp.nallowed = OVERLAY_ALLOWED_MAX + 1;
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tp.nallowed = 1;
	tp.allowed[0].addr.family = AF_INET;
	tp.allowed[0].addr.bytes[3] = 1;
	tp.allowed[0].len = 24;
	assert_int_equal(overlay_tunnel_params_check(&tp), -EINVAL);
	tp.allowed[0].len = 32;
	assert_int_equal(overlay_tunnel_params_check(&tp), 0);

	c = load(TUN_HEAD "\"allowed\": [\"10.1.0.0/16\", \"2001:db8:1::/48\"], "
	    "\"sas\": []}]}");
	assert_non_null(c);
	assert_int_equal(c->tunnels[0].p.nallowed, 2);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(uesp_cfg_print(c, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\"10.1.0.0/16\""));
	assert_non_null(strstr(buf, "\"2001:db8:1::/48\""));
	free(buf);
	uesp_cfg_free(c);
	assert_null(load(TUN_HEAD "\"allowed\": [\"10.1.0.1/16\"], \"sas\": []}]}"));
	assert_null(load(TUN_HEAD "\"allowed\": \"10.1.0.0/16\", \"sas\": []}]}"));
}

#define TUN1 "{\"id\": 5, \"device\": \"t5\", \"remote\": \"192.0.2.2\", " \
	"\"inner\": \"169.254.0.0/31\", \"peer\": \"169.254.0.1\", \"mtu\": 1400, "
#define TUN2 "{\"id\": 6, \"device\": \"t6\", \"remote\": \"192.0.2.3\", " \
	"\"inner\": \"169.254.0.2/31\", \"peer\": \"169.254.0.3\", \"mtu\": 1400, "

/*
 * meshwan-uesp's reconcile keeps the nonce rule: a lifetime edit is an
 * sa_update (the counter runs on), and a change that would put a running
 * outbound key on a new SA (a re-made tunnel) is refused before anything
 * is touched.  Across the file an outbound key and an inbound SPI appear
 * once.
 */
static void
test_cfg_nonce_rules(void **state)
{
	const struct overlay_ops *o = overlay_find("null");
	struct overlay_init_params ip = { 0 };
	struct uesp_cfg *cur, *want;
	unsigned mark;
	void *ctx;

	assert_null(load("{\"tunnels\": [" TUN1 "\"sas\": ["
	    SA("out", 4096, K1) "]}, " TUN2 "\"sas\": [" SA("out", 4096, K1)
	    "]}]}"));
	assert_null(load("{\"tunnels\": [" TUN1 "\"sas\": ["
	    SA("in", 4096, K1) "]}, " TUN2 "\"sas\": [" SA("in", 4096, K2)
	    "]}]}"));
	assert_null(load(TUN_HEAD "\"spi_out\": 4096, \"sas\": ["
	    SA("out", 4096, K1) "," SA("out", 4097, K1) "]}]}"));

	assert_int_equal(o->init(&ip, &ctx), 0);
	cur = uesp_cfg_empty();
	want = load(TUN_HEAD "\"sas\": [" SA("out", 4096, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);

	mark = null_calls(ctx);
	want = load(TUN_HEAD "\"sas\": [{\"dir\": \"out\", \"spi\": 4096, "
	    "\"key\": \"" K1 "\", \"salt\": \"0a0b0c0d\", "
	    "\"hard\": {\"seconds\": 3600}}]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	assert_string_equal(record_from(ctx, mark),
	    "sa_update tunnel=5 dir=out spi=4096 soft=0/0/0 hard=0/0/3600");

	/* A new device name re-makes the tunnel: with the same outbound key
	 * that is refused whole, nothing deleted. */
	mark = null_calls(ctx);
	want = load("{\"tunnels\": [{\"id\": 5, \"device\": \"t9\", "
	    "\"remote\": \"192.0.2.2\", \"inner\": \"169.254.0.0/31\", "
	    "\"peer\": \"169.254.0.1\", \"mtu\": 1400, \"sas\": ["
	    SA("out", 4096, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), -EEXIST);
	assert_int_equal(null_calls(ctx), mark);
	uesp_cfg_free(want);
	/* So is the same key moved to another SPI. */
	want = load(TUN_HEAD "\"sas\": [" SA("out", 4100, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), -EEXIST);
	assert_int_equal(null_calls(ctx), mark);
	uesp_cfg_free(want);
	/* With a new key the re-make goes through. */
	want = load("{\"tunnels\": [{\"id\": 5, \"device\": \"t9\", "
	    "\"remote\": \"192.0.2.2\", \"inner\": \"169.254.0.0/31\", "
	    "\"peer\": \"169.254.0.1\", \"mtu\": 1400, \"sas\": ["
	    SA("out", 4096, K2) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), 0);
	uesp_cfg_free(want);
	/* The old key, gone from the backend, is still refused by it. */
	want = load(TUN_HEAD "\"sas\": [" SA("out", 4096, K1) "]}]}");
	assert_int_equal(uesp_cfg_apply(o, ctx, cur, want), -EEXIST);
	uesp_cfg_free(want);
	uesp_cfg_free(cur);
	o->fini(ctx);
}

/*
 * The set of outbound keys seen: a digest is the same every time (one
 * HMAC context reused), every key kept is refused, and once the ring has
 * wrapped exactly the oldest are forgotten (the hash index drops them
 * with the ring and still finds everything else).
 */
static void
test_keys_set(void **state)
{
	const unsigned extra = 3000;
	struct overlay_keys *k = overlay_keys_new();
	struct overlay_sa_params p;
	uint8_t d1[OVERLAY_KEY_DIGEST_LEN], d2[OVERLAY_KEY_DIGEST_LEN];
	unsigned i, refused = 0;

	(void)state;
	assert_non_null(k);
	memset(&p, 0, sizeof(p));
	p.dir = OVERLAY_DIR_OUT;
	p.spi = 4096;
	p.cipher = OVERLAY_AES_GCM_256;
	overlay_keys_digest(k, &p, d1);
	overlay_keys_digest(k, &p, d2);
	assert_memory_equal(d1, d2, sizeof(d1));
	p.salt[3] = 1;
	overlay_keys_digest(k, &p, d2);
	assert_memory_not_equal(d1, d2, sizeof(d1));	/* salt counts */
	p.salt[3] = 0;
	p.cipher = OVERLAY_AES_GCM_128;
	overlay_keys_digest(k, &p, d2);
	assert_memory_not_equal(d1, d2, sizeof(d1));	/* cipher counts */
	p.cipher = OVERLAY_AES_GCM_256;

	for (i = 0; i < OVERLAY_KEYS_MAX + extra; i++) {
		memcpy(p.key, &i, sizeof(i));
		if (i < 300 || i % 4099 == 0)
			assert_int_equal(overlay_keys_check(k, &p), 0);
		assert_int_equal(overlay_keys_add(k, &p), 0);
		if (i < 300 || i % 4099 == 0)
			assert_int_equal(overlay_keys_check(k, &p), -EEXIST);
	}
	/* Sampled (each refusal is logged): the oldest `extra` went, the
	 * rest stays, around the boundary and across the whole ring. */
	for (i = 0; i < OVERLAY_KEYS_MAX + extra; i++) {
		if (!(i % 97 == 0 || (i >= extra - 50 && i < extra + 50) ||
		    i + 50 >= OVERLAY_KEYS_MAX + extra))
			continue;
		memcpy(p.key, &i, sizeof(i));
		assert_int_equal(overlay_keys_check(k, &p),
		    i < extra ? 0 : -EEXIST);
		refused += i >= extra;
	}
	assert_true(refused > 2700);
	memcpy(p.key, &i, sizeof(i));	/* never added */
	assert_int_equal(overlay_keys_check(k, &p), 0);
	overlay_keys_free(k);
	overlay_keys_free(NULL);
}

/*
 * overlay_sa_add_batch on a backend without sa_add_batch (null, like
 * uesp): one sa_add per SA in order, each SA's result its own, the ones
 * after a refused SA still added.
 */
static void
test_batch_fallback(void **state)
{
	const struct overlay_ops *o = overlay_find("null");
	struct overlay_init_params ip = { 0 };
	struct overlay_tunnel_params tp;
	struct overlay_sa_params p[4];
	int res[4], i;
	void *ctx;

	(void)state;
	assert_null(o->sa_add_batch);
	assert_int_equal(o->init(&ip, &ctx), 0);
	tunnel_params(&tp, 7, "t7");
	assert_int_equal(o->tunnel_add(ctx, &tp), 0);
	for (i = 0; i < 4; i++) {
		memset(&p[i], 0, sizeof(p[i]));
		p[i].tunnel_id = 7;
		p[i].dir = OVERLAY_DIR_IN;
		p[i].spi = 4096 + (uint32_t)i;
		p[i].cipher = OVERLAY_AES_GCM_256;
		p[i].key[0] = (uint8_t)i;
	}
	p[1].tunnel_id = 8;		/* no such tunnel */
	p[2].spi = 4096;		/* p[0]'s SPI */
	p[3].dir = OVERLAY_DIR_OUT;
	assert_int_equal(overlay_sa_add_batch(o, ctx, p, 4, res), -ENOENT);
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], -ENOENT);
	assert_int_equal(res[2], -EEXIST);
	assert_int_equal(res[3], 0);
	assert_non_null(strstr(null_record(ctx), "sa_add tunnel=7 dir=out "
	    "spi=4099"));
	assert_int_equal(overlay_sa_add_batch(o, ctx, p, 0, res), 0);
	o->fini(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_null_records),
		cmocka_unit_test(test_params_check),
		cmocka_unit_test(test_cfg_errors),
		cmocka_unit_test(test_cfg_print_redacts),
		cmocka_unit_test(test_cfg_rekey_order),
		cmocka_unit_test(test_null_key_and_spi_rules),
		cmocka_unit_test(test_cfg_allowed),
		cmocka_unit_test(test_cfg_nonce_rules),
		cmocka_unit_test(test_keys_set),
		cmocka_unit_test(test_batch_fallback),
	};

	log_init("test_overlay", true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
