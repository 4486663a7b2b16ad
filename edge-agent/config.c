/*
 * config.c — parser of meshwan-edge's `key = value` file.
 *
 * One table names every key, its kind and whether it may repeat, and
 * fixes the order of the normalised -n output, so parsing and printing
 * cannot drift apart.  Each value is checked against explicit limits as
 * it is read; rules between keys (exactly one CA, at most one token, at
 * most one way to reach FRR, at least one controller and one link, no
 * overlapping LAN prefixes) are checked once the whole file is read.  The
 * first error stops the parse with "file:line: key: why", and the caller
 * keeps the configuration it had (all or nothing).
 */
#include "edge-agent/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

enum edge_key {
	EK_CONTROLLER,
	EK_ENROLL,
	EK_CA_FILE,
	EK_CA_PIN,
	EK_CONTROLLER_NAME,
	EK_TOKEN,
	EK_TOKEN_FILE,
	EK_ENROLL_TIMEOUT,
	EK_STATE_DIR,
	EK_BACKEND,
	EK_LINK,
	EK_FRR_INSTANCE,
	EK_FRR_VTY_SOCKET,
	EK_VTYSH,
	EK_FRR_TIMEOUT,
	EK_LAN_PREFIX,
	EK_CONTROL_SOCKET,
	EK_METRICS_LISTEN,
	EK_METRICS_ALLOW_REMOTE,
	EK_BFD_INTERVAL,
	EK_BFD_MULTIPLIER,
	EK_LOG_LEVEL,
	EK_DEBUG,
	EK_COUNT,
};

struct edge_key_desc {
	const char *name;
	bool repeat;		/* one entry per line, may appear again */
};

/* Canonical order of the -n output. */
static const struct edge_key_desc edge_keys[EK_COUNT] = {
	[EK_CONTROLLER] = { "controller", false },
	[EK_ENROLL] = { "enroll_controller", false },
	[EK_CA_FILE] = { "ca_file", false },
	[EK_CA_PIN] = { "ca_pin", false },
	[EK_CONTROLLER_NAME] = { "controller_name", false },
	[EK_TOKEN] = { "token", false },
	[EK_TOKEN_FILE] = { "token_file", false },
	[EK_ENROLL_TIMEOUT] = { "enroll_timeout_ms", false },
	[EK_STATE_DIR] = { "state_dir", false },
	[EK_BACKEND] = { "backend", false },
	[EK_LINK] = { "link", true },
	[EK_FRR_INSTANCE] = { "frr_instance", false },
	[EK_FRR_VTY_SOCKET] = { "frr_vty_socket", false },
	[EK_VTYSH] = { "vtysh", false },
	[EK_FRR_TIMEOUT] = { "frr_timeout_ms", false },
	[EK_LAN_PREFIX] = { "lan_prefix", true },
	[EK_CONTROL_SOCKET] = { "control_socket", false },
	[EK_METRICS_LISTEN] = { "metrics_listen", false },
	[EK_METRICS_ALLOW_REMOTE] = { "metrics_allow_remote", false },
	[EK_BFD_INTERVAL] = { "bfd_interval_ms", false },
	[EK_BFD_MULTIPLIER] = { "bfd_multiplier", false },
	[EK_LOG_LEVEL] = { "log_level", false },
	[EK_DEBUG] = { "debug", false },
};

static const char *const edge_backend_names[] = {
	[EDGE_BACKEND_UESP] = "uesp",
	[EDGE_BACKEND_XFRM] = "xfrm",
	[EDGE_BACKEND_NULL] = "null",
};

static const char *const edge_level_names[] = {
	[LOG_LVL_ERR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

/* Debug subsystems of the agent; anything else is a typo. */
static const char *const edge_debug_names[] = {
	"all", "config", "session", "enroll", "rpc", "keys", "reconcile",
	"frr", "overlay", "uesp", "xfrm", "health", "status",
};

const char *
edge_config_backend_name(enum edge_backend b)
{
	return (size_t)b < ARRAY_SIZE(edge_backend_names) ?
	    edge_backend_names[b] : "unknown";
}

void
edge_config_free(struct edge_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->lan_prefixes);
	util_wipe(cfg, sizeof(*cfg));
	memset(cfg, 0, sizeof(*cfg));
}

static void
edge_config_defaults(struct edge_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "/var/lib/meshwan-edge");
	snprintf(cfg->vtysh, sizeof(cfg->vtysh), "/usr/bin/vtysh");
	snprintf(cfg->controller_name, sizeof(cfg->controller_name),
	    "meshwan-controller");
	cfg->backend = EDGE_BACKEND_UESP;
	cfg->enroll_timeout_ms = EDGE_ENROLL_TIMEOUT_MS;
	cfg->log_level = LOG_LVL_INFO;
}

static int
edge_err(const char *name, unsigned line, const char *key, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static int
edge_err(const char *name, unsigned line, const char *key, const char *fmt,
    ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("%s:%u: %s%s%s", name, line, key ? key : "",
	    key ? ": " : "", why);
	return -1;
}

static char *
edge_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* A DNS name (letters, digits, '-', '.'). */
static bool
edge_valid_dns(const char *s, size_t len)
{
	if (len == 0 || len > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '-' && c != '.')
			return false;
	}
	return true;
}

/*
 * "host:port" or "[v6]:port" (port 1..65535) into its normal form: IPv6
 * in brackets and canonical, IPv4 canonical, names lower-case.  numeric:
 * refuse names.
 */
static int
edge_norm_addr(const char *v, bool numeric, char *out, size_t outlen)
{
	char host[EDGE_CONFIG_ADDR_MAX - 8];	/* room for "[]:65535" */
	const char *colon, *hs;
	struct msg_addr a;
	uint64_t port;
	size_t hl;

	if (v[0] == '[') {
		const char *end = strchr(v, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		hs = v + 1;
		hl = (size_t)(end - hs);
		colon = end + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL || memchr(v, ':', (size_t)(colon - v)))
			return -1;
		hs = v;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= sizeof(host) ||
	    util_parse_u64(colon + 1, 1, 65535, &port) == -1)
		return -1;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	if (msg_addr_parse(host, &a) == 0) {
		char t[MSG_ADDR_STRLEN];

		if (v[0] == '[' && a.family != AF_INET6)
			return -1;
		if (v[0] != '[' && a.family == AF_INET6)
			return -1;
		msg_addr_format(&a, t, sizeof(t));
		snprintf(out, outlen, a.family == AF_INET6 ? "[%s]:%u" :
		    "%s:%u", t, (unsigned)port);
		return 0;
	}
	if (numeric || v[0] == '[' || !edge_valid_dns(host, hl))
		return -1;
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	snprintf(out, outlen, "%s:%u", host, (unsigned)port);
	return 0;
}

/* Comma-separated addresses into list (at most max). */
static int
edge_addr_list(const char *name, unsigned line, const char *key,
    const char *v, char list[][EDGE_CONFIG_ADDR_MAX], unsigned *n)
{
	char tmp[EDGE_CONFIG_CONTROLLERS_MAX * EDGE_CONFIG_ADDR_MAX];
	char *save = NULL, *tok;

	*n = 0;
	if (util_strcpy(tmp, sizeof(tmp), v) == -1)
		return edge_err(name, line, key, "too long");
	for (tok = strtok_r(tmp, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		tok = edge_trim(tok);
		if (*n == EDGE_CONFIG_CONTROLLERS_MAX)
			return edge_err(name, line, key, "more than %d "
			    "addresses", EDGE_CONFIG_CONTROLLERS_MAX);
		if (edge_norm_addr(tok, false, list[*n],
		    EDGE_CONFIG_ADDR_MAX) == -1)
			return edge_err(name, line, key, "\"%.64s\": expected "
			    "host:port or [v6]:port", tok);
		for (unsigned i = 0; i < *n; i++)
			if (strcmp(list[i], list[*n]) == 0)
				return edge_err(name, line, key,
				    "%s given twice", list[*n]);
		(*n)++;
	}
	if (*n == 0)
		return edge_err(name, line, key, "empty list");
	return 0;
}

/* Absolute path of printable characters, no spaces at the ends. */
static int
edge_path(const char *name, unsigned line, const char *key, const char *v,
    char *out, size_t outlen)
{
	if (v[0] != '/')
		return edge_err(name, line, key, "expected an absolute path");
	for (const char *p = v; *p != '\0'; p++)
		if (!isprint((unsigned char)*p))
			return edge_err(name, line, key,
			    "path has a control character");
	if (util_strcpy(out, outlen, v) == -1)
		return edge_err(name, line, key, "longer than %zu characters",
		    outlen - 1);
	return 0;
}

static int
edge_enum(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

static bool
edge_link_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MSG_LINK_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* "NAME ADDRESS [public ADDRESS | public ADDRESS:PORT | public [V6]:PORT]" */
static int
edge_link(const char *name, unsigned line, const char *v,
    struct edge_config *cfg)
{
	char tmp[256], *save = NULL, *w[5];
	struct edge_link l;
	size_t n = 0;

	if (cfg->n_links == EDGE_CONFIG_LINKS_MAX)
		return edge_err(name, line, "link", "more than %d links",
		    EDGE_CONFIG_LINKS_MAX);
	if (util_strcpy(tmp, sizeof(tmp), v) == -1)
		return edge_err(name, line, "link", "too long");
	for (char *t = strtok_r(tmp, " \t", &save); t != NULL;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == ARRAY_SIZE(w))
			return edge_err(name, line, "link", "too many words");
		w[n++] = t;
	}
	if (n != 2 && !(n == 4 && strcmp(w[2], "public") == 0))
		return edge_err(name, line, "link", "expected NAME ADDRESS "
		    "[public ADDRESS[:PORT]]");
	memset(&l, 0, sizeof(l));
	if (!edge_link_name_ok(w[0]))
		return edge_err(name, line, "link", "name \"%.40s\": expected "
		    "1..%d characters of a-z 0-9 _ -", w[0], MSG_LINK_NAME_MAX);
	snprintf(l.name, sizeof(l.name), "%s", w[0]);
	if (msg_addr_parse(w[1], &l.address) == -1)
		return edge_err(name, line, "link", "\"%.64s\": not an IPv4 "
		    "or IPv6 address", w[1]);
	if (n == 4) {
		char norm[EDGE_CONFIG_ADDR_MAX];

		if (msg_addr_parse(w[3], &l.public_address) == -1) {
			char host[MSG_ADDR_STRLEN + 2];
			const char *colon;
			uint64_t port;

			if (edge_norm_addr(w[3], true, norm, sizeof(norm)) ==
			    -1)
				return edge_err(name, line, "link", "public "
				    "\"%.64s\": expected ADDRESS, "
				    "ADDRESS:PORT or [V6]:PORT", w[3]);
			colon = strrchr(norm, ':');
			snprintf(host, sizeof(host), "%.*s",
			    (int)(colon - norm), norm);
			if (host[0] == '[') {
				memmove(host, host + 1, strlen(host));
				host[strlen(host) - 1] = '\0';
			}
			if (msg_addr_parse(host, &l.public_address) == -1 ||
			    util_parse_u64(colon + 1, 1, 65535, &port) == -1)
				return edge_err(name, line, "link",
				    "public: bad address");
			l.public_port = (uint16_t)port;
		}
	}
	for (unsigned i = 0; i < cfg->n_links; i++) {
		if (strcmp(cfg->links[i].name, l.name) == 0)
			return edge_err(name, line, "link", "name %s given "
			    "twice", l.name);
		if (msg_addr_equal(&cfg->links[i].address, &l.address))
			return edge_err(name, line, "link", "address %s "
			    "already used by link %s", w[1],
			    cfg->links[i].name);
	}
	cfg->links[cfg->n_links++] = l;
	return 0;
}

static int
edge_prefix(const char *name, unsigned line, const char *v,
    struct edge_config *cfg, size_t *cap)
{
	struct msg_prefix p;
	void *nv;

	if (cfg->n_lan_prefixes == EDGE_CONFIG_PREFIXES_MAX)
		return edge_err(name, line, "lan_prefix", "more than %d "
		    "prefixes", EDGE_CONFIG_PREFIXES_MAX);
	if (msg_prefix_parse(v, true, &p) == -1)
		return edge_err(name, line, "lan_prefix", "\"%.64s\": expected "
		    "a network ADDRESS/LEN without host bits", v);
	if ((nv = util_grow(cfg->lan_prefixes, cap, cfg->n_lan_prefixes + 1,
	    sizeof(*cfg->lan_prefixes), 8)) == NULL)
		return edge_err(name, line, "lan_prefix", "out of memory");
	cfg->lan_prefixes = nv;
	cfg->lan_prefixes[cfg->n_lan_prefixes++] = p;
	return 0;
}

/* True when a and b share addresses (one contains the other). */
static bool
edge_overlap(const struct msg_prefix *a, const struct msg_prefix *b)
{
	unsigned len = a->len < b->len ? a->len : b->len;

	if (a->addr.family != b->addr.family)
		return false;
	for (unsigned i = 0; i < len; i++) {
		unsigned m = 0x80u >> (i % 8);

		if ((a->addr.bytes[i / 8] & m) != (b->addr.bytes[i / 8] & m))
			return false;
	}
	return true;
}

static int
edge_set(const char *name, unsigned line, enum edge_key k, const char *v,
    struct edge_config *cfg, size_t *prefix_cap)
{
	const char *key = edge_keys[k].name;
	int e;

	switch (k) {
	case EK_CONTROLLER:
		return edge_addr_list(name, line, key, v, cfg->controllers,
		    &cfg->n_controllers);
	case EK_ENROLL:
		return edge_addr_list(name, line, key, v, cfg->enroll,
		    &cfg->n_enroll);
	case EK_CA_FILE:
		return edge_path(name, line, key, v, cfg->ca_file,
		    sizeof(cfg->ca_file));
	case EK_CA_PIN: {
		size_t n = 0;

		if (strncmp(v, "sha256:", 7) != 0 || strlen(v + 7) != 64 ||
		    util_unhex(v + 7, cfg->ca_pin, sizeof(cfg->ca_pin),
		    &n) == -1 || n != sizeof(cfg->ca_pin))
			return edge_err(name, line, key, "expected sha256: and "
			    "64 hex digits (the SHA-256 of the CA "
			    "certificate, DER)");
		cfg->has_ca_pin = true;
		return 0;
	}
	case EK_CONTROLLER_NAME: {
		size_t n = strlen(v);

		if (n > MSG_CN_MAX || !edge_valid_dns(v, n))
			return edge_err(name, line, key, "expected a DNS name "
			    "of at most %d characters", MSG_CN_MAX);
		for (size_t i = 0; i <= n; i++)
			cfg->controller_name[i] = (char)tolower(
			    (unsigned char)v[i]);
		return 0;
	}
	case EK_TOKEN:
		for (const char *p = v; *p != '\0'; p++)
			if (*p < 0x21 || *p > 0x7e)
				return edge_err(name, line, key, "expected "
				    "printable characters without spaces");
		if (util_strcpy(cfg->token, sizeof(cfg->token), v) == -1)
			return edge_err(name, line, key, "longer than %d "
			    "characters", MSG_TOKEN_MAX);
		return 0;
	case EK_TOKEN_FILE:
		return edge_path(name, line, key, v, cfg->token_file,
		    sizeof(cfg->token_file));
	case EK_STATE_DIR:
		return edge_path(name, line, key, v, cfg->state_dir,
		    sizeof(cfg->state_dir));
	case EK_BACKEND:
		if ((e = edge_enum(v, edge_backend_names,
		    ARRAY_SIZE(edge_backend_names))) == -1)
			return edge_err(name, line, key,
			    "expected uesp, xfrm or null");
		cfg->backend = (enum edge_backend)e;
		return 0;
	case EK_LINK:
		return edge_link(name, line, v, cfg);
	case EK_FRR_INSTANCE:
		if (!isalnum((unsigned char)v[0]))
			return edge_err(name, line, key, "must start with a "
			    "letter or digit");
		for (const char *p = v; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) && *p != '_' &&
			    *p != '-')
				return edge_err(name, line, key, "expected "
				    "letters, digits, _ and -");
		if (util_strcpy(cfg->frr_instance, sizeof(cfg->frr_instance),
		    v) == -1)
			return edge_err(name, line, key, "longer than %d "
			    "characters", EDGE_CONFIG_NAME_MAX);
		return 0;
	case EK_FRR_VTY_SOCKET:
		return edge_path(name, line, key, v, cfg->frr_vty_socket,
		    sizeof(cfg->frr_vty_socket));
	case EK_VTYSH:
		return edge_path(name, line, key, v, cfg->vtysh,
		    sizeof(cfg->vtysh));
	case EK_LAN_PREFIX:
		return edge_prefix(name, line, v, cfg, prefix_cap);
	case EK_CONTROL_SOCKET:
		return edge_path(name, line, key, v, cfg->control_socket,
		    sizeof(cfg->control_socket));
	case EK_METRICS_LISTEN:
		if (edge_norm_addr(v, true, cfg->metrics_listen,
		    sizeof(cfg->metrics_listen)) == -1)
			return edge_err(name, line, key,
			    "expected a numeric address:port or [v6]:port");
		return 0;
	case EK_METRICS_ALLOW_REMOTE:
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
			return edge_err(name, line, key, "expected yes or no");
		cfg->metrics_allow_remote = strcmp(v, "yes") == 0;
		return 0;
	case EK_ENROLL_TIMEOUT: {
		uint64_t n;

		if (util_parse_u64(v, EDGE_ENROLL_TIMEOUT_MIN_MS,
		    EDGE_ENROLL_TIMEOUT_MAX_MS, &n) == -1)
			return edge_err(name, line, key, "expected %u..%u "
			    "(milliseconds)", EDGE_ENROLL_TIMEOUT_MIN_MS,
			    EDGE_ENROLL_TIMEOUT_MAX_MS);
		cfg->enroll_timeout_ms = (unsigned)n;
		return 0;
	}
	case EK_FRR_TIMEOUT: {
		uint64_t n;

		if (util_parse_u64(v, EDGE_FRR_TIMEOUT_MIN_MS,
		    EDGE_FRR_TIMEOUT_MAX_MS, &n) == -1)
			return edge_err(name, line, key, "expected %u..%u "
			    "(milliseconds)", EDGE_FRR_TIMEOUT_MIN_MS,
			    EDGE_FRR_TIMEOUT_MAX_MS);
		cfg->frr_timeout_ms = (unsigned)n;
		return 0;
	}
	case EK_BFD_INTERVAL:
	case EK_BFD_MULTIPLIER: {
		bool ivl = k == EK_BFD_INTERVAL;
		uint64_t n;

		if (util_parse_u64(v, ivl ? 10 : 2, ivl ? 60000 : 255,
		    &n) == -1)
			return edge_err(name, line, key, "expected %s",
			    ivl ? "10..60000 (milliseconds)" : "2..255");
		if (ivl)
			cfg->bfd_interval_ms = (unsigned)n;
		else
			cfg->bfd_multiplier = (unsigned)n;
		return 0;
	}
	case EK_LOG_LEVEL:
		if ((e = edge_enum(v, edge_level_names,
		    ARRAY_SIZE(edge_level_names))) == -1)
			return edge_err(name, line, key,
			    "expected error, warn, info or debug");
		cfg->log_level = (enum log_level)e;
		return 0;
	case EK_DEBUG: {
		char tmp[EDGE_CONFIG_DEBUG_MAX], *save = NULL, *tok;

		if (util_strcpy(tmp, sizeof(tmp), v) == -1)
			return edge_err(name, line, key, "too long");
		for (tok = strtok_r(tmp, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			tok = edge_trim(tok);
			if (edge_enum(tok, edge_debug_names,
			    ARRAY_SIZE(edge_debug_names)) == -1)
				return edge_err(name, line, key, "unknown "
				    "subsystem \"%.32s\" (known: all, config, "
				    "session, enroll, rpc, keys, reconcile, "
				    "frr, overlay, uesp, xfrm, health, status)",
				    tok);
			/* Normal form: names joined by commas. */
			snprintf(cfg->debug + strlen(cfg->debug),
			    sizeof(cfg->debug) - strlen(cfg->debug), "%s%s",
			    cfg->debug[0] ? "," : "", tok);
		}
		return 0;
	}
	case EK_COUNT:
		break;
	}
	return edge_err(name, line, key, "unknown key");
}

/*
 * True when the normal-form "address:port" of metrics_listen is a
 * loopback address (127.0.0.0/8, ::1): the metrics have no
 * authentication, so anything else must be asked for explicitly.
 */
static bool
edge_loopback(const char *hostport)
{
	char host[EDGE_CONFIG_ADDR_MAX];
	const char *colon = strrchr(hostport, ':');
	struct msg_addr a;

	if (colon == NULL)
		return false;
	if (hostport[0] == '[')
		snprintf(host, sizeof(host), "%.*s",
		    (int)(colon - hostport) - 2, hostport + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport),
		    hostport);
	if (msg_addr_parse(host, &a) == -1)
		return false;
	if (a.family == AF_INET)
		return a.bytes[0] == 127;
	for (size_t i = 0; i < 15; i++)
		if (a.bytes[i] != 0)
			return false;
	return a.bytes[15] == 1;
}

/* Rules between keys, once the whole file is read. */
static int
edge_check(const char *name, const unsigned *seen, unsigned last,
    struct edge_config *cfg)
{
	if (cfg->n_controllers == 0)
		return edge_err(name, last, "controller", "missing (the "
		    "controller's Session address, host:port)");
	if (seen[EK_CA_FILE] && seen[EK_CA_PIN])
		return edge_err(name, seen[EK_CA_FILE] > seen[EK_CA_PIN] ?
		    seen[EK_CA_FILE] : seen[EK_CA_PIN], "ca_file",
		    "give ca_file or ca_pin, not both");
	if (!seen[EK_CA_FILE] && !seen[EK_CA_PIN])
		return edge_err(name, last, "ca_file", "missing: give ca_file "
		    "or ca_pin (the controller is never trusted blindly)");
	if (seen[EK_TOKEN] && seen[EK_TOKEN_FILE])
		return edge_err(name, seen[EK_TOKEN] > seen[EK_TOKEN_FILE] ?
		    seen[EK_TOKEN] : seen[EK_TOKEN_FILE], "token",
		    "give token or token_file, not both");
	if (seen[EK_FRR_INSTANCE] && seen[EK_FRR_VTY_SOCKET])
		return edge_err(name, seen[EK_FRR_INSTANCE] >
		    seen[EK_FRR_VTY_SOCKET] ? seen[EK_FRR_INSTANCE] :
		    seen[EK_FRR_VTY_SOCKET], "frr_instance",
		    "give frr_instance or frr_vty_socket, not both");
	if (cfg->n_links == 0)
		return edge_err(name, last, "link", "missing: at least one WAN "
		    "link (link = NAME ADDRESS)");
	for (size_t i = 0; i < cfg->n_lan_prefixes; i++) {
		for (size_t j = 0; j < i; j++) {
			char a[MSG_PREFIX_STRLEN], b[MSG_PREFIX_STRLEN];

			if (!edge_overlap(&cfg->lan_prefixes[i],
			    &cfg->lan_prefixes[j]))
				continue;
			msg_prefix_format(&cfg->lan_prefixes[i], a, sizeof(a));
			msg_prefix_format(&cfg->lan_prefixes[j], b, sizeof(b));
			return edge_err(name, last, "lan_prefix", "%s overlaps "
			    "%s", a, b);
		}
	}
	if (cfg->metrics_listen[0] != '\0' && !cfg->metrics_allow_remote &&
	    !edge_loopback(cfg->metrics_listen))
		return edge_err(name, seen[EK_METRICS_LISTEN], "metrics_listen",
		    "%s is not a loopback address: the metrics have no "
		    "authentication (set metrics_allow_remote = yes to serve "
		    "them there)", cfg->metrics_listen);
	if (cfg->control_socket[0] == '\0' &&
	    snprintf(cfg->control_socket, sizeof(cfg->control_socket),
	    "%s/control.sock", cfg->state_dir) >=
	    (int)sizeof(cfg->control_socket))
		return edge_err(name, seen[EK_STATE_DIR], "control_socket",
		    "%s/control.sock is longer than %zu characters (a UNIX "
		    "socket path): set control_socket", cfg->state_dir,
		    sizeof(cfg->control_socket) - 1);
	if (cfg->n_enroll == 0) {
		/* The controller's hosts on the enrollment port. */
		for (unsigned i = 0; i < cfg->n_controllers; i++) {
			char host[EDGE_CONFIG_ADDR_MAX - 8];
			const char *c = cfg->controllers[i];
			size_t hl = (size_t)(strrchr(c, ':') - c);

			memcpy(host, c, hl);	/* normal form: it fits */
			host[hl] = '\0';
			snprintf(cfg->enroll[i], sizeof(cfg->enroll[i]),
			    "%s:%u", host, (unsigned)EDGE_CONFIG_ENROLL_PORT);
		}
		cfg->n_enroll = cfg->n_controllers;
	}
	return 0;
}

int
edge_config_parse(const char *name, const char *buf, size_t len,
    struct edge_config *cfg)
{
	unsigned seen[EK_COUNT] = { 0 };	/* line of each key, 0 = unseen */
	char line[1024];
	unsigned lineno = 0;
	size_t pos = 0, prefix_cap = 0;

	edge_config_defaults(cfg);
	if (len > EDGE_CONFIG_FILE_MAX)
		return edge_err(name, 0, NULL, "file larger than 64 KiB");
	if (memchr(buf, '\0', len) != NULL)
		return edge_err(name, 0, NULL, "file contains a NUL byte");
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		char *hash, *eq, *key, *val;
		int k = -1;

		lineno++;
		if (ll >= sizeof(line)) {
			edge_err(name, lineno, NULL,
			    "line longer than 1023 characters");
			goto fail;
		}
		memcpy(line, buf + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);

		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		key = edge_trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			edge_err(name, lineno, NULL, "expected `key = value`");
			goto fail;
		}
		*eq = '\0';
		key = edge_trim(key);
		val = edge_trim(eq + 1);
		for (int i = 0; i < EK_COUNT; i++)
			if (strcmp(key, edge_keys[i].name) == 0)
				k = i;
		if (k == -1) {
			edge_err(name, lineno, key, "unknown key");
			goto fail;
		}
		if (seen[k] && !edge_keys[k].repeat) {
			edge_err(name, lineno, key, "given more than once "
			    "(first on line %u)", seen[k]);
			goto fail;
		}
		seen[k] = lineno;
		if (*val == '\0') {
			edge_err(name, lineno, key, "empty value");
			goto fail;
		}
		if (edge_set(name, lineno, (enum edge_key)k, val, cfg,
		    &prefix_cap) == -1)
			goto fail;
	}
	if (edge_check(name, seen, lineno, cfg) == -1)
		goto fail;
	return 0;
fail:
	edge_config_free(cfg);
	return -1;
}

int
edge_config_load(const char *path, struct edge_config *cfg)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd, rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		log_warnx("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > EDGE_CONFIG_FILE_MAX) {
		log_warnx("%s: file larger than 64 KiB", path);
		close(fd);
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	rc = edge_config_parse(path, buf, got, cfg);
	util_wipe(buf, got);	/* it may hold the token */
	free(buf);
	return rc;
}

static void
edge_print_list(FILE *out, const char *key,
    const char list[][EDGE_CONFIG_ADDR_MAX], unsigned n)
{
	fprintf(out, "%s = ", key);
	for (unsigned i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? ", " : "", list[i]);
	fputc('\n', out);
}

void
edge_config_print(const struct edge_config *cfg, FILE *out)
{
	char a[MSG_ADDR_STRLEN], p[MSG_PREFIX_STRLEN], hex[2 * MSG_HASH_LEN + 1];

	edge_print_list(out, "controller", cfg->controllers,
	    cfg->n_controllers);
	edge_print_list(out, "enroll_controller", cfg->enroll, cfg->n_enroll);
	if (cfg->ca_file[0] != '\0')
		fprintf(out, "ca_file = %s\n", cfg->ca_file);
	if (cfg->has_ca_pin) {
		util_hex(cfg->ca_pin, sizeof(cfg->ca_pin), hex);
		fprintf(out, "ca_pin = sha256:%s\n", hex);
	}
	fprintf(out, "controller_name = %s\n", cfg->controller_name);
	if (cfg->token[0] != '\0')
		fprintf(out, "# token = (set, not shown)\n");
	if (cfg->token_file[0] != '\0')
		fprintf(out, "token_file = %s\n", cfg->token_file);
	if (cfg->enroll_timeout_ms != EDGE_ENROLL_TIMEOUT_MS)
		fprintf(out, "enroll_timeout_ms = %u\n", cfg->enroll_timeout_ms);
	fprintf(out, "state_dir = %s\n", cfg->state_dir);
	fprintf(out, "backend = %s\n", edge_config_backend_name(cfg->backend));
	for (unsigned i = 0; i < cfg->n_links; i++) {
		const struct edge_link *l = &cfg->links[i];

		msg_addr_format(&l->address, a, sizeof(a));
		fprintf(out, "link = %s %s", l->name, a);
		if (l->public_address.family != 0) {
			msg_addr_format(&l->public_address, a, sizeof(a));
			if (l->public_port == 0)
				fprintf(out, " public %s", a);
			else
				fprintf(out, l->public_address.family ==
				    AF_INET6 ? " public [%s]:%u" :
				    " public %s:%u", a, l->public_port);
		}
		fputc('\n', out);
	}
	if (cfg->frr_instance[0] != '\0')
		fprintf(out, "frr_instance = %s\n", cfg->frr_instance);
	if (cfg->frr_vty_socket[0] != '\0')
		fprintf(out, "frr_vty_socket = %s\n", cfg->frr_vty_socket);
	fprintf(out, "vtysh = %s\n", cfg->vtysh);
	if (cfg->frr_timeout_ms != 0)
		fprintf(out, "frr_timeout_ms = %u\n", cfg->frr_timeout_ms);
	for (size_t i = 0; i < cfg->n_lan_prefixes; i++) {
		msg_prefix_format(&cfg->lan_prefixes[i], p, sizeof(p));
		fprintf(out, "lan_prefix = %s\n", p);
	}
	fprintf(out, "control_socket = %s\n", cfg->control_socket);
	if (cfg->metrics_listen[0] != '\0')
		fprintf(out, "metrics_listen = %s\n", cfg->metrics_listen);
	if (cfg->metrics_allow_remote)
		fprintf(out, "metrics_allow_remote = yes\n");
	if (cfg->bfd_interval_ms != 0)
		fprintf(out, "bfd_interval_ms = %u\n", cfg->bfd_interval_ms);
	if (cfg->bfd_multiplier != 0)
		fprintf(out, "bfd_multiplier = %u\n", cfg->bfd_multiplier);
	fprintf(out, "log_level = %s\n", edge_level_names[cfg->log_level]);
	if (cfg->debug[0] != '\0')
		fprintf(out, "debug = %s\n", cfg->debug);
}
