/*
 * config.c — parser of meshwan-controller's `key = value` file.
 *
 * A table says, for each key, its type, its limits and where it lands in
 * struct config, so parsing, validation and the normalised -n output come
 * from one description and cannot drift apart.  Errors name the line and
 * the key; the first error stops the parse, and the caller keeps whatever
 * configuration it had before (all or nothing).
 */
#include "controller/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller/model.h"
#include "lib/log.h"
#include "lib/util.h"

enum config_type {
	CT_ADDR,      /* host:port */
	CT_ADDR_NUM,  /* numeric address:port (the HTTP server binds no names) */
	CT_PATH,      /* absolute or relative path */
	CT_CONNINFO,  /* libpq connection string or URI, without a password */
	CT_NAME,      /* DNS name or IP address */
	CT_NAMES,     /* comma-separated CT_NAME list */
	CT_YESNO,     /* yes or no, stored as 1 / 0 (uint32_t) */
	CT_SECONDS,   /* duration, stored in seconds (uint64_t) */
	CT_SECONDS32, /* duration, stored in seconds (uint32_t) */
	CT_MILLIS,    /* duration, stored in milliseconds (uint32_t) */
	CT_U32,       /* plain number */
	CT_POLICY,
	CT_ENCAP,
	CT_CIPHER,
	CT_CIDR4,
	CT_CIDR6,     /* IPv6 network within the length range, or "off" */
	CT_ASN_RANGE,
	CT_DEBUG,
};

struct config_key {
	const char *name;
	size_t off;
	size_t size;          /* of the destination, for strings */
	uint64_t min, max;    /* numbers and durations, in stored units */
	enum config_type type;
	bool optional;        /* may be left out of -n output when empty */
};

#define S(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define N(field) offsetof(struct config, field), 0

/* Canonical order of the -n output. */
static const struct config_key config_keys[] = {
	{ "grpc_listen", S(grpc_listen), 0, 0, CT_ADDR, false },
	{ "enroll_listen", S(enroll_listen), 0, 0, CT_ADDR, false },
	{ "http_listen", S(http_listen), 0, 0, CT_ADDR_NUM, false },
	{ "http_max_connections", N(http_max_connections), 1, 65536, CT_U32,
	    false },
	{ "http_max_connections_per_address", N(http_max_per_ip), 1, 65536,
	    CT_U32, false },
	{ "http_timeout", N(http_timeout_s), 1, 3600, CT_SECONDS32, false },
	{ "http_tls_cert", S(http_tls_cert), 0, 0, CT_PATH, true },
	{ "http_tls_key", S(http_tls_key), 0, 0, CT_PATH, true },
	{ "http_tls_names", N(http_tls_names), 0, 0, CT_NAMES, true },
	{ "http_plaintext", N(http_plaintext), 0, 1, CT_YESNO, true },
	{ "web_root", S(web_root), 0, 0, CT_PATH, true },
	{ "sse_max_streams", N(sse_max), 1, 4096, CT_U32, true },
	{ "sse_max_streams_per_client", N(sse_max_per_client), 1, 1024,
	    CT_U32, true },
	{ "database", S(database), 0, 0, CT_PATH, false },
	{ "store", S(store), 0, 0, CT_CONNINFO, true },
	{ "leader_lease", N(leader_lease_s), 2, 300, CT_SECONDS32, false },
	{ "ca_dir", S(ca_dir), 0, 0, CT_PATH, false },
	{ "ca_key_passphrase_file", S(ca_key_passphrase_file), 0, 0, CT_PATH,
	    true },
	{ "admin_token_file", S(admin_token_file), 0, 0, CT_PATH, false },
	{ "controller_name", S(controller_name), 0, 0, CT_NAME, false },
	{ "server_names", N(server_names), 0, 0, CT_NAMES, true },
	{ "token_lifetime", N(token_lifetime_s), 1, 7ull * 86400, CT_SECONDS, false },
	{ "cert_lifetime", N(cert_lifetime_s), 5, 825ull * 86400, CT_SECONDS,
	    false },
	{ "enroll_rate", N(enroll_rate), 0, 100000, CT_U32, false },
	{ "enroll_burst", N(enroll_burst), 1, 100000, CT_U32, false },
	{ "coalesce", N(coalesce_ms), 0, 5000, CT_MILLIS, false },
	{ "keepalive", N(keepalive_s), 1, 3600, CT_SECONDS32, false },
	{ "hello_timeout", N(hello_timeout_s), 1, 300, CT_SECONDS32, false },
	{ "handshake_timeout", N(handshake_timeout_s), 1, 120, CT_SECONDS32,
	    false },
	{ "headless_grace", N(headless_grace_s), 60, 30ull * 86400,
	    CT_SECONDS32, false },
	{ "intent_history", N(intent_history), 1, 1024, CT_U32, false },
	{ "session_admit_bytes", N(session_admit_bytes), 4096, UINT32_MAX,
	    CT_U32, false },
	{ "policy", N(policy), 0, 0, CT_POLICY, false },
	{ "tunnel_pool", S(tunnel_pool), 8, 30, CT_CIDR4, false },
	{ "tunnel_pool6", S(tunnel_pool6), 8, 95, CT_CIDR6, false },
	{ "asn_range", N(asn_min), 0, 0, CT_ASN_RANGE, false },
	{ "encap", N(encap), 0, 0, CT_ENCAP, false },
	{ "vni_base", N(vni_base), 1, 16000000, CT_U32, false },
	{ "cipher", N(cipher), 0, 0, CT_CIPHER, false },
	{ "rekey_interval", N(rekey_s), 60, 7ull * 86400, CT_SECONDS32, false },
	{ "replay_window", N(replay_window), 32, 65536, CT_U32, false },
	{ "mtu", N(mtu), 0, 9000, CT_U32, false },
	{ "debug", S(debug), 0, 0, CT_DEBUG, true },
	/* Tests only: age SA epochs without waiting (reloadable), a tiny
	 * per-stream send queue to exercise backpressure, and checking each
	 * patched intent against a whole rebuild. */
	{ "test_clock_offset", N(test_clock_offset_s), 0, 30ull * 86400,
	    CT_SECONDS32, true },
	{ "test_send_queue", N(test_send_queue), 0, 1024, CT_U32, true },
	{ "test_check_patch", N(test_check_patch), 0, 1, CT_U32, true },
	/* Tests only: the answers of the next N enrollments are withheld
	 * after their commit, as if the connection had dropped. */
	{ "test_enroll_lose", N(test_enroll_lose), 0, 100, CT_U32, true },
};

#undef S
#undef N

static const char *const config_policy_names[] = {
	[CONFIG_POLICY_FULL_MESH] = "full-mesh",
	[CONFIG_POLICY_HUB_SPOKE] = "hub-and-spoke",
	[CONFIG_POLICY_REGIONAL] = "regional-mesh",
};
static const char *const config_encap_names[] = {
	[CONFIG_ENCAP_GRE] = "gre",
	[CONFIG_ENCAP_VXLAN] = "vxlan",
};
static const char *const config_cipher_names[] = {
	[CONFIG_CIPHER_AES_GCM_128] = "aes-gcm-128",
	[CONFIG_CIPHER_AES_GCM_256] = "aes-gcm-256",
};

/* Debug subsystems the controller knows; anything else is a typo. */
static const char *const config_debug_names[] = {
	"all", "rpc", "session", "enroll", "ca", "store", "topo", "http",
	"api", "config",
};

const char *
config_policy_name(enum config_policy p)
{
	return config_policy_names[p];
}

const char *
config_encap_name(enum config_encap e)
{
	return config_encap_names[e];
}

const char *
config_cipher_name(enum config_cipher c)
{
	return config_cipher_names[c];
}

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->grpc_listen, sizeof(cfg->grpc_listen), "0.0.0.0:7443");
	snprintf(cfg->enroll_listen, sizeof(cfg->enroll_listen),
	    "0.0.0.0:7444");
	snprintf(cfg->http_listen, sizeof(cfg->http_listen), "127.0.0.1:8080");
	cfg->http_max_connections = 2048;
	cfg->http_max_per_ip = 64;
	cfg->http_timeout_s = 10;
	snprintf(cfg->database, sizeof(cfg->database),
	    "/var/lib/meshwan/controller.db");
	cfg->leader_lease_s = 10;
	snprintf(cfg->ca_dir, sizeof(cfg->ca_dir), "/var/lib/meshwan/ca");
	snprintf(cfg->admin_token_file, sizeof(cfg->admin_token_file),
	    "/var/lib/meshwan/admin.token");
	snprintf(cfg->controller_name, sizeof(cfg->controller_name),
	    "meshwan-controller");
	cfg->token_lifetime_s = 3600;
	cfg->cert_lifetime_s = 30ull * 86400;
	cfg->enroll_rate = 5;
	cfg->enroll_burst = 20;
	cfg->coalesce_ms = 50;
	cfg->keepalive_s = 15;
	cfg->hello_timeout_s = 10;
	cfg->handshake_timeout_s = 20;
	cfg->headless_grace_s = 86400;
	cfg->intent_history = 32;
	cfg->session_admit_bytes = 64u << 20;
	cfg->policy = CONFIG_POLICY_FULL_MESH;
	snprintf(cfg->tunnel_pool, sizeof(cfg->tunnel_pool), "100.64.0.0/16");
	snprintf(cfg->tunnel_pool6, sizeof(cfg->tunnel_pool6), "%s",
	    CONFIG_TUNNEL_POOL6_DEFAULT);
	/* Both RFC 6996 blocks: 1,023 two-byte ASNs, then four-byte ones. */
	cfg->asn_min = 64512;
	cfg->asn_max = 4294967294u;
	cfg->encap = CONFIG_ENCAP_GRE;
	cfg->vni_base = 10000;
	cfg->cipher = CONFIG_CIPHER_AES_GCM_256;
	cfg->rekey_s = 3600;
	cfg->replay_window = 1024;
	cfg->mtu = 0;
}

int
config_split_addr(const char *addr, char *host, size_t hostsz, uint16_t *port)
{
	const char *colon, *hs;
	size_t hl;
	uint64_t p;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		hs = addr + 1;
		hl = (size_t)(end - hs);
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)))
			return -1;
		hs = addr;
		hl = (size_t)(colon - addr);
	}
	if (hl == 0 || hl >= hostsz)
		return -1;
	if (util_parse_u64(colon + 1, 0, 65535, &p) == -1)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

/* A DNS name (letters, digits, '-', '.') or an IP address. */
static bool
config_valid_name(const char *s)
{
	struct in6_addr a6;
	size_t n = strlen(s);

	if (n == 0 || n >= CONFIG_NAME_MAX)
		return false;
	if (inet_pton(AF_INET6, s, &a6) == 1)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '-' && c != '.')
			return false;
	}
	return s[0] != '-' && s[0] != '.';
}

static bool
config_valid_host(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	return inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1 || config_valid_name(host);
}

/*
 * "90", "90s", "15m", "1h", "30d", "100ms" -> value in unit_ms (1 for
 * milliseconds, 1000 for seconds).  Sub-unit values are refused.
 */
static int
config_parse_duration(const char *s, uint64_t unit_ms, uint64_t *out)
{
	static const struct { const char *sfx; uint64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 }, { "", 1000 },
	};
	char num[24];
	size_t digits = strspn(s, "0123456789");
	uint64_t v;

	if (digits == 0 || digits >= sizeof(num))
		return -1;
	memcpy(num, s, digits);
	num[digits] = '\0';
	if (util_parse_u64(num, 0, UINT32_MAX, &v) == -1)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(s + digits, units[i].sfx) != 0)
			continue;
		v *= units[i].ms;
		if (v % unit_ms != 0)
			return -1;
		*out = v / unit_ms;
		return 0;
	}
	return -1;
}

static void
config_print_duration(FILE *out, uint64_t v, uint64_t unit_ms)
{
	static const struct { const char *sfx; uint64_t ms; } units[] = {
		{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 },
		{ "s", 1000 }, { "ms", 1 },
	};
	uint64_t ms = v * unit_ms;

	if (ms == 0) {
		fprintf(out, "0%s", unit_ms == 1 ? "ms" : "s");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms % units[i].ms == 0) {
			fprintf(out, "%llu%s",
			    (unsigned long long)(ms / units[i].ms), units[i].sfx);
			return;
		}
	}
}

static int
config_enum(const char *v, const char *const *names, size_t n, int *out)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -1;
}

/* IPv4 network in CIDR form with no host bits, prefix within [min, max]. */
static int
config_parse_cidr4(const char *v, uint64_t min, uint64_t max)
{
	char addr[INET_ADDRSTRLEN];
	const char *slash = strchr(v, '/');
	struct in_addr a;
	uint64_t len;
	uint32_t mask;

	if (slash == NULL || (size_t)(slash - v) >= sizeof(addr))
		return -1;
	memcpy(addr, v, (size_t)(slash - v));
	addr[slash - v] = '\0';
	if (inet_pton(AF_INET, addr, &a) != 1)
		return -1;
	if (util_parse_u64(slash + 1, min, max, &len) == -1)
		return -1;
	mask = len == 0 ? 0 : ~0u << (32 - len);
	if ((ntohl(a.s_addr) & ~mask) != 0)
		return -1;
	return 0;
}

/* "off", or an IPv6 network of length min..max without host bits. */
static int
config_parse_cidr6(const char *v, uint64_t min, uint64_t max)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(v, '/');
	uint8_t a[16];
	uint64_t len;

	if (strcmp(v, "off") == 0)
		return 0;
	if (slash == NULL || (size_t)(slash - v) >= sizeof(addr))
		return -1;
	memcpy(addr, v, (size_t)(slash - v));
	addr[slash - v] = '\0';
	if (inet_pton(AF_INET6, addr, a) != 1 ||
	    util_parse_u64(slash + 1, min, max, &len) == -1)
		return -1;
	for (unsigned i = (unsigned)len; i < 128; i++)
		if (a[i / 8] & (0x80 >> (i % 8)))
			return -1;
	return 0;
}

static bool
config_asn_private(uint64_t a)
{
	return (a >= 64512 && a <= 65534) ||
	    (a >= 4200000000ull && a <= 4294967294ull);
}

/*
 * A password in the connection string would be printed by -n and sit in
 * a file that is often world-readable: refuse `password=` anywhere (a
 * keyword or a URI parameter) and a URI's user:password@.
 */
static bool
config_conninfo_has_password(const char *v)
{
	const char *at, *colon;

	for (const char *p = v; (p = strcasestr(p, "password")) != NULL;
	    p += 8) {
		const char *q = p + 8;

		while (*q == ' ')
			q++;
		if (*q == '=' && (p == v || p[-1] == ' ' || p[-1] == '?' ||
		    p[-1] == '&'))
			return true;
	}
	if (strncmp(v, "postgres", 8) != 0 || (v = strstr(v, "://")) == NULL)
		return false;
	v += 3;
	at = strchr(v, '@');
	colon = strchr(v, ':');
	return at != NULL && colon != NULL && colon < at &&
	    strcspn(v, "/?") > (size_t)(at - v);
}

/* Error reporting: one line naming where and what. */
/* The list a CT_NAMES key fills. */
static void
config_names_of(struct config *cfg, const struct config_key *k,
    char (**names)[CONFIG_NAME_MAX], unsigned **n)
{
	if (strcmp(k->name, "http_tls_names") == 0) {
		*names = cfg->http_tls_names;
		*n = &cfg->n_http_tls_names;
	} else {
		*names = cfg->server_names;
		*n = &cfg->n_server_names;
	}
}

static int
config_err(const char *name, unsigned line, const char *key, const char *why)
{
	log_warnx("%s:%u: %s%s%s", name, line, key ? key : "",
	    key ? ": " : "", why);
	return -1;
}

static int
config_set(const char *name, unsigned line, const struct config_key *k,
    const char *v, struct config *cfg)
{
	char *base = (char *)cfg;
	uint64_t n;
	int e;

	switch (k->type) {
	case CT_ADDR:
	case CT_ADDR_NUM: {
		char host[CONFIG_ADDR_MAX];
		struct in6_addr a6;
		struct in_addr a4;
		uint16_t port;

		if (config_split_addr(v, host, sizeof(host), &port) == -1 ||
		    !config_valid_host(host))
			return config_err(name, line, k->name,
			    "expected host:port or [v6]:port");
		if (k->type == CT_ADDR_NUM &&
		    inet_pton(AF_INET, host, &a4) != 1 &&
		    inet_pton(AF_INET6, host, &a6) != 1)
			return config_err(name, line, k->name,
			    "expected a numeric address:port");
		break;
	}
	case CT_PATH:
		for (const char *p = v; *p; p++)
			if (!isprint((unsigned char)*p))
				return config_err(name, line, k->name,
				    "path has a control character");
		break;
	case CT_CONNINFO:
		for (const char *p = v; *p; p++)
			if (!isprint((unsigned char)*p))
				return config_err(name, line, k->name,
				    "control character");
		if (strncmp(v, "postgresql://", 13) != 0 &&
		    strncmp(v, "postgres://", 11) != 0 && strchr(v, '=') == NULL)
			return config_err(name, line, k->name,
			    "expected postgresql://... or key=value pairs");
		if (config_conninfo_has_password(v))
			return config_err(name, line, k->name,
			    "no password here: use a passfile "
			    "(passfile=... or ~/.pgpass) or a certificate");
		break;
	case CT_NAME:
		if (!config_valid_name(v))
			return config_err(name, line, k->name,
			    "expected a DNS name or an IP address");
		break;
	case CT_YESNO:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return config_err(name, line, k->name,
			    "expected yes or no");
		*(uint32_t *)(base + k->off) = strcmp(v, "yes") == 0;
		return 0;
	case CT_NAMES: {
		char tmp[CONFIG_NAMES_MAX * CONFIG_NAME_MAX];
		char *save = NULL, *tok;
		char (*names)[CONFIG_NAME_MAX];
		unsigned *nn;

		config_names_of(cfg, k, &names, &nn);
		if (util_strcpy(tmp, sizeof(tmp), v) == -1)
			return config_err(name, line, k->name, "too long");
		*nn = 0;
		for (tok = strtok_r(tmp, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ' || *tok == '\t')
				tok++;
			for (char *e2 = tok + strlen(tok); e2 > tok &&
			     (e2[-1] == ' ' || e2[-1] == '\t'); e2--)
				e2[-1] = '\0';
			if (!config_valid_name(tok))
				return config_err(name, line, k->name,
				    "expected DNS names or IP addresses, "
				    "comma-separated");
			if (*nn == CONFIG_NAMES_MAX)
				return config_err(name, line, k->name,
				    "more than 8 names");
			snprintf(names[(*nn)++], CONFIG_NAME_MAX, "%s", tok);
		}
		if (*nn == 0)
			return config_err(name, line, k->name, "empty list");
		return 0;
	}
	case CT_SECONDS:
	case CT_SECONDS32:
	case CT_MILLIS:
		if (config_parse_duration(v, k->type == CT_MILLIS ? 1 : 1000,
		    &n) == -1)
			return config_err(name, line, k->name,
			    k->type == CT_MILLIS ?
			    "expected a duration such as 50ms or 1s" :
			    "expected a duration such as 90s, 15m, 1h or 30d");
		if (n < k->min || n > k->max) {
			char why[128];

			snprintf(why, sizeof(why), "out of range [%llu, %llu] %s",
			    (unsigned long long)k->min,
			    (unsigned long long)k->max,
			    k->type == CT_MILLIS ? "ms" : "s");
			return config_err(name, line, k->name, why);
		}
		if (k->type == CT_SECONDS)
			*(uint64_t *)(base + k->off) = n;
		else
			*(uint32_t *)(base + k->off) = (uint32_t)n;
		return 0;
	case CT_U32:
		if (util_parse_u64(v, k->min, k->max, &n) == -1) {
			char why[128];

			snprintf(why, sizeof(why),
			    "expected a number in [%llu, %llu]",
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
			return config_err(name, line, k->name, why);
		}
		*(uint32_t *)(base + k->off) = (uint32_t)n;
		return 0;
	case CT_POLICY:
		if (config_enum(v, config_policy_names,
		    ARRAY_SIZE(config_policy_names), &e) == -1)
			return config_err(name, line, k->name, "expected "
			    "full-mesh, hub-and-spoke or regional-mesh");
		cfg->policy = (enum config_policy)e;
		return 0;
	case CT_ENCAP:
		if (config_enum(v, config_encap_names,
		    ARRAY_SIZE(config_encap_names), &e) == -1)
			return config_err(name, line, k->name,
			    "expected gre or vxlan");
		cfg->encap = (enum config_encap)e;
		return 0;
	case CT_CIPHER:
		if (config_enum(v, config_cipher_names,
		    ARRAY_SIZE(config_cipher_names), &e) == -1)
			return config_err(name, line, k->name,
			    "expected aes-gcm-128 or aes-gcm-256");
		cfg->cipher = (enum config_cipher)e;
		return 0;
	case CT_CIDR4:
		if (config_parse_cidr4(v, k->min, k->max) == -1)
			return config_err(name, line, k->name,
			    "expected an IPv4 network A.B.C.D/8..30 "
			    "without host bits");
		break;
	case CT_CIDR6:
		if (config_parse_cidr6(v, k->min, k->max) == -1)
			return config_err(name, line, k->name,
			    "expected off or an IPv6 network ADDR/8..95 "
			    "without host bits");
		break;
	case CT_ASN_RANGE: {
		char lo[16];
		const char *dash = strchr(v, '-');
		uint64_t a, b;

		if (dash == NULL || (size_t)(dash - v) >= sizeof(lo))
			return config_err(name, line, k->name,
			    "expected FIRST-LAST");
		memcpy(lo, v, (size_t)(dash - v));
		lo[dash - v] = '\0';
		if (util_parse_u64(lo, 1, UINT32_MAX, &a) == -1 ||
		    util_parse_u64(dash + 1, 1, UINT32_MAX, &b) == -1 ||
		    a > b || !config_asn_private(a) || !config_asn_private(b))
			return config_err(name, line, k->name,
			    "expected a private ASN range FIRST-LAST: both "
			    "ends in 64512-65534 or 4200000000-4294967294 "
			    "(a range from one block to the other takes the "
			    "private ASNs of both)");
		cfg->asn_min = (uint32_t)a;
		cfg->asn_max = (uint32_t)b;
		return 0;
	}
	case CT_DEBUG: {
		char tmp[CONFIG_DEBUG_MAX];
		char *save = NULL, *tok;

		if (util_strcpy(tmp, sizeof(tmp), v) == -1)
			return config_err(name, line, k->name, "too long");
		for (tok = strtok_r(tmp, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			bool known = false;

			for (size_t i = 0; i < ARRAY_SIZE(config_debug_names);
			     i++)
				known |= strcmp(tok, config_debug_names[i]) == 0;
			if (!known)
				return config_err(name, line, k->name,
				    "unknown subsystem (known: all, rpc, "
				    "session, enroll, ca, store, topo, http, "
				    "api, config)");
		}
		break;
	}
	}
	/* String types land here after validation. */
	if (util_strcpy(base + k->off, k->size, v) == -1)
		return config_err(name, line, k->name, "value too long");
	return 0;
}

static char *
config_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

void
config_crypto(const struct config *cfg, struct model_crypto *out)
{
	*out = (struct model_crypto){
		.cipher = cfg->cipher == CONFIG_CIPHER_AES_GCM_128 ?
		    MODEL_CIPHER_AES_GCM_128 : MODEL_CIPHER_AES_GCM_256,
		.rekey_seconds = cfg->rekey_s,
		.replay_window = cfg->replay_window,
	};
}

int
config_parse(const char *name, const char *buf, size_t len,
    struct config *cfg)
{
	bool seen[ARRAY_SIZE(config_keys)] = { false };
	struct model_crypto cr;
	struct model_error err = { 0 };
	char line[1024];
	unsigned lineno = 0;
	size_t pos = 0;

	config_defaults(cfg);
	if (len > CONFIG_FILE_MAX)
		return config_err(name, 0, NULL, "file larger than 64 KiB");
	if (memchr(buf, '\0', len) != NULL)
		return config_err(name, 0, NULL, "file contains a NUL byte");
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		const struct config_key *k = NULL;
		char *hash, *eq, *key, *val;
		size_t i;

		lineno++;
		if (ll >= sizeof(line))
			return config_err(name, lineno, NULL,
			    "line longer than 1023 characters");
		memcpy(line, buf + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);

		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		key = config_trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL)
			return config_err(name, lineno, NULL,
			    "expected `key = value`");
		*eq = '\0';
		key = config_trim(key);
		val = config_trim(eq + 1);
		for (i = 0; i < ARRAY_SIZE(config_keys); i++) {
			if (strcmp(key, config_keys[i].name) == 0) {
				k = &config_keys[i];
				break;
			}
		}
		if (k == NULL)
			return config_err(name, lineno, key, "unknown key");
		if (seen[i])
			return config_err(name, lineno, key,
			    "given more than once");
		seen[i] = true;
		if (*val == '\0')
			return config_err(name, lineno, key, "empty value");
		if (config_set(name, lineno, k, val, cfg) == -1)
			return -1;
	}
	/* The crypto keys as a profile, checked as PUT /crypto checks one;
	 * reported at the end of the file.  (No rule ties rekey_interval to
	 * headless_grace: an SA's hard lifetime covers both, proto/README.md
	 * "SA lifetimes".) */
	/* HTTPS: one source of certificate, and never both TLS and not. */
	if ((cfg->http_tls_cert[0] == '\0') != (cfg->http_tls_key[0] == '\0'))
		return config_err(name, lineno, cfg->http_tls_cert[0] == '\0' ?
		    "http_tls_cert" : "http_tls_key", "http_tls_cert and "
		    "http_tls_key go together");
	if (cfg->http_tls_cert[0] != '\0' && cfg->n_http_tls_names > 0)
		return config_err(name, lineno, "http_tls_names", "either "
		    "certificate files or names for the CA to issue one for");
	if (cfg->http_plaintext && (cfg->http_tls_cert[0] != '\0' ||
	    cfg->n_http_tls_names > 0))
		return config_err(name, lineno, "http_plaintext", "yes "
		    "contradicts http_tls_cert / http_tls_names");
	config_crypto(cfg, &cr);
	if (model_crypto_validate(&cr, &err) == -1)
		return config_err(name, lineno, strcmp(err.field,
		    "rekey_seconds") == 0 ? "rekey_interval" : err.field,
		    err.message);
	return 0;
}

int
config_load(const char *path, struct config *cfg)
{
	char *buf;
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		log_warnx("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > CONFIG_FILE_MAX) {
		log_warnx("%s: file larger than 64 KiB", path);
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	rc = config_parse(path, buf, got, cfg);
	free(buf);
	return rc;
}

void
config_print(const struct config *cfg, FILE *out)
{
	const char *base = (const char *)cfg;

	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		switch (k->type) {
		case CT_ADDR:
		case CT_ADDR_NUM:
		case CT_PATH:
		case CT_CONNINFO:
		case CT_NAME:
		case CT_CIDR4:
		case CT_CIDR6:
		case CT_DEBUG:
			if (k->optional && base[k->off] == '\0')
				break;
			fprintf(out, "%s = %s\n", k->name, base + k->off);
			break;
		case CT_NAMES: {
			const char (*names)[CONFIG_NAME_MAX] =
			    strcmp(k->name, "http_tls_names") == 0 ?
			    cfg->http_tls_names : cfg->server_names;
			const unsigned *nn =
			    strcmp(k->name, "http_tls_names") == 0 ?
			    &cfg->n_http_tls_names : &cfg->n_server_names;

			if (*nn == 0)
				break;
			fprintf(out, "%s = ", k->name);
			for (unsigned j = 0; j < *nn; j++)
				fprintf(out, "%s%s", j ? ", " : "", names[j]);
			fputc('\n', out);
			break;
		}
		case CT_YESNO:
			if (k->optional && *(const uint32_t *)(base + k->off)
			    == 0)
				break;
			fprintf(out, "%s = %s\n", k->name,
			    *(const uint32_t *)(base + k->off) ? "yes" : "no");
			break;
		case CT_SECONDS:
			fprintf(out, "%s = ", k->name);
			config_print_duration(out,
			    *(const uint64_t *)(base + k->off), 1000);
			fputc('\n', out);
			break;
		case CT_SECONDS32:
		case CT_MILLIS:
			if (k->optional && *(const uint32_t *)(base + k->off)
			    == 0)
				break;
			fprintf(out, "%s = ", k->name);
			config_print_duration(out,
			    *(const uint32_t *)(base + k->off),
			    k->type == CT_MILLIS ? 1 : 1000);
			fputc('\n', out);
			break;
		case CT_U32:
			if (k->optional && *(const uint32_t *)(base + k->off)
			    == 0)
				break;
			fprintf(out, "%s = %u\n", k->name,
			    *(const uint32_t *)(base + k->off));
			break;
		case CT_POLICY:
			fprintf(out, "%s = %s\n", k->name,
			    config_policy_name(cfg->policy));
			break;
		case CT_ENCAP:
			fprintf(out, "%s = %s\n", k->name,
			    config_encap_name(cfg->encap));
			break;
		case CT_CIPHER:
			fprintf(out, "%s = %s\n", k->name,
			    config_cipher_name(cfg->cipher));
			break;
		case CT_ASN_RANGE:
			fprintf(out, "%s = %u-%u\n", k->name, cfg->asn_min,
			    cfg->asn_max);
			break;
		}
	}
}
