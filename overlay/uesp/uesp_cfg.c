/*
 * uesp_cfg.c — static tunnel file: parse, print normalised, reconcile.
 * See uesp_cfg.h for the format and the reconcile order.
 */
#include "overlay/uesp/uesp_cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

#define CFG_FILE_MAX ((size_t)4 << 20)

/* Error context: which tunnel/SA a message is about. */
struct cfg_where {
	const char *path;
	int tunnel;		/* index or -1 */
	int sa;			/* index or -1 */
};

static void cfg_err(const struct cfg_where *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
cfg_err(const struct cfg_where *w, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->sa >= 0)
		log_warnx("%s: tunnels[%d].sas[%d]: %s", w->path, w->tunnel,
		    w->sa, msg);
	else if (w->tunnel >= 0)
		log_warnx("%s: tunnels[%d]: %s", w->path, w->tunnel, msg);
	else
		log_warnx("%s: %s", w->path, msg);
}

/* Refuse keys not in the NULL-terminated list. */
static int
cfg_keys(const struct cfg_where *w, json_t *o, const char *const *allowed)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL) {
			cfg_err(w, "unknown field \"%s\"", k);
			return -1;
		}
	}
	return 0;
}

static int
cfg_uint(const struct cfg_where *w, json_t *o, const char *key, bool required,
    uint64_t min, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		if (required) {
			cfg_err(w, "\"%s\" missing", key);
			return -1;
		}
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min ||
	    (uint64_t)json_integer_value(v) > max) {
		cfg_err(w, "\"%s\" must be an integer in %llu..%llu", key,
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static const char *
cfg_str(const struct cfg_where *w, json_t *o, const char *key, bool required)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL) {
		if (required)
			cfg_err(w, "\"%s\" missing", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		cfg_err(w, "\"%s\" must be a string", key);
		return NULL;
	}
	return json_string_value(v);
}

static int
cfg_addr(const struct cfg_where *w, json_t *o, const char *key, bool required,
    struct overlay_addr *a)
{
	const char *s = cfg_str(w, o, key, required);

	if (s == NULL)
		return json_object_get(o, key) == NULL && !required ? 0 : -1;
	if (overlay_addr_parse(s, a) < 0) {
		cfg_err(w, "\"%s\" is not an IP address", key);
		return -1;
	}
	return 0;
}

/* Exactly len bytes of hex (an optional "0x" first); never echoes input. */
static int
cfg_hex(const struct cfg_where *w, json_t *o, const char *key, uint8_t *out,
    size_t len)
{
	const char *s = cfg_str(w, o, key, true);
	size_t got;

	if (s == NULL)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (strlen(s) != 2 * len) {
		cfg_err(w, "\"%s\" must be %zu hex digits", key, 2 * len);
		return -1;
	}
	if (util_unhex(s, out, len, &got) == -1) {
		util_wipe(out, len);
		cfg_err(w, "\"%s\" is not hex", key);
		return -1;
	}
	return 0;
}

static int
cfg_lifetime(const struct cfg_where *w, json_t *o, const char *key,
    struct overlay_lifetime *l)
{
	static const char *const keys[] = { "bytes", "packets", "seconds", NULL };
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_object(v)) {
		cfg_err(w, "\"%s\" must be an object", key);
		return -1;
	}
	if (cfg_keys(w, v, keys) < 0 ||
	    cfg_uint(w, v, "bytes", false, 0, UINT64_MAX >> 1, &l->bytes) < 0 ||
	    cfg_uint(w, v, "packets", false, 0, UINT64_MAX >> 1, &l->packets) < 0 ||
	    cfg_uint(w, v, "seconds", false, 0, 10ull * 365 * 86400, &l->seconds) < 0)
		return -1;
	return 0;
}

static int
cfg_sa(const struct cfg_where *w, json_t *o, uint64_t tid,
    struct overlay_sa_params *sa)
{
	static const char *const keys[] = { "dir", "spi", "cipher", "key",
	    "salt", "esn", "replay_window", "soft", "hard", NULL };
	const char *s;
	uint64_t v;
	json_t *esn;

	if (!json_is_object(o)) {
		cfg_err(w, "must be an object");
		return -1;
	}
	if (cfg_keys(w, o, keys) < 0)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->tunnel_id = tid;
	if ((s = cfg_str(w, o, "dir", true)) == NULL)
		return -1;
	if (strcmp(s, "in") == 0)
		sa->dir = OVERLAY_DIR_IN;
	else if (strcmp(s, "out") == 0)
		sa->dir = OVERLAY_DIR_OUT;
	else {
		cfg_err(w, "\"dir\" must be \"in\" or \"out\"");
		return -1;
	}
	if (cfg_uint(w, o, "spi", true, OVERLAY_SPI_MIN, UINT32_MAX, &v) < 0)
		return -1;
	sa->spi = (uint32_t)v;
	s = cfg_str(w, o, "cipher", false);
	if (s == NULL && json_object_get(o, "cipher") != NULL)
		return -1;
	if (s == NULL || strcmp(s, "aes-gcm-256") == 0)
		sa->cipher = OVERLAY_AES_GCM_256;
	else if (strcmp(s, "aes-gcm-128") == 0)
		sa->cipher = OVERLAY_AES_GCM_128;
	else {
		cfg_err(w, "\"cipher\" must be aes-gcm-128 or aes-gcm-256");
		return -1;
	}
	if (cfg_hex(w, o, "key", sa->key, overlay_cipher_keylen(sa->cipher)) < 0 ||
	    cfg_hex(w, o, "salt", sa->salt, OVERLAY_SALT_LEN) < 0)
		return -1;
	sa->esn = true;
	if ((esn = json_object_get(o, "esn")) != NULL) {
		if (!json_is_boolean(esn)) {
			cfg_err(w, "\"esn\" must be true or false");
			return -1;
		}
		sa->esn = json_is_true(esn);
	}
	v = OVERLAY_REPLAY_DEFAULT;
	if (cfg_uint(w, o, "replay_window", false, OVERLAY_REPLAY_MIN,
	    OVERLAY_REPLAY_MAX, &v) < 0)
		return -1;
	if (v % 32 != 0) {
		cfg_err(w, "\"replay_window\" must be a multiple of 32");
		return -1;
	}
	sa->replay_window = (uint32_t)v;
	if (cfg_lifetime(w, o, "soft", &sa->soft) < 0 ||
	    cfg_lifetime(w, o, "hard", &sa->hard) < 0)
		return -1;
	return 0;
}

/* "A.B.C.D/NN" into addr and prefix length. */
static int
cfg_prefix(const struct cfg_where *w, json_t *o, struct overlay_tunnel_params *p)
{
	const char *s = cfg_str(w, o, "inner", true);
	char buf[64];
	char *slash;
	uint64_t len;

	if (s == NULL)
		return -1;
	if (util_strcpy(buf, sizeof(buf), s) < 0 ||
	    (slash = strchr(buf, '/')) == NULL) {
		cfg_err(w, "\"inner\" must be ADDRESS/PREFIXLEN");
		return -1;
	}
	*slash = '\0';
	if (overlay_addr_parse(buf, &p->inner_local) < 0 ||
	    p->inner_local.family != AF_INET ||
	    util_parse_u64(slash + 1, 30, 32, &len) < 0) {
		cfg_err(w, "\"inner\" must be an IPv4 /30../32");
		return -1;
	}
	p->inner_prefix_len = (uint8_t)len;
	return 0;
}

/* "allowed": ["10.1.0.0/16", "2001:db8::/48"]: the peer's inner sources. */
static int
cfg_allowed(const struct cfg_where *w, json_t *o,
    struct overlay_tunnel_params *p)
{
	json_t *a = json_object_get(o, "allowed"), *v;
	size_t i;

	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > OVERLAY_ALLOWED_MAX) {
		cfg_err(w, "\"allowed\" must be an array of at most %d prefixes",
		    OVERLAY_ALLOWED_MAX);
		return -1;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || overlay_prefix_parse(json_string_value(v),
		    &p->allowed[i]) < 0) {
			cfg_err(w, "\"allowed\"[%zu] must be ADDRESS/PREFIXLEN "
			    "with no host bits set", i);
			return -1;
		}
	}
	p->nallowed = (unsigned)json_array_size(a);
	return 0;
}

static int
cfg_tunnel(struct cfg_where *w, json_t *o, struct uesp_cfg_tunnel *t)
{
	static const char *const keys[] = { "id", "device", "encap", "vni",
	    "local", "remote", "remote_port", "inner", "peer", "mtu",
	    "allowed", "spi_out", "sas", NULL };
	struct overlay_tunnel_params *p = &t->p;
	const char *s;
	json_t *sas, *v;
	uint64_t n;
	size_t i, j;
	unsigned nout = 0;

	if (!json_is_object(o)) {
		cfg_err(w, "must be an object");
		return -1;
	}
	if (cfg_keys(w, o, keys) < 0)
		return -1;
	if (cfg_uint(w, o, "id", true, 1, UINT64_MAX >> 1, &n) < 0)
		return -1;
	p->id = n;
	if ((s = cfg_str(w, o, "device", true)) == NULL)
		return -1;
	if (util_strcpy(p->ifname, sizeof(p->ifname), s) < 0) {
		cfg_err(w, "\"device\" longer than %d characters", IFNAMSIZ - 1);
		return -1;
	}
	s = cfg_str(w, o, "encap", false);
	if (s == NULL && json_object_get(o, "encap") != NULL)
		return -1;
	if (s == NULL || strcmp(s, "gre") == 0)
		p->encap = OVERLAY_ENCAP_GRE;
	else if (strcmp(s, "vxlan") == 0)
		p->encap = OVERLAY_ENCAP_VXLAN;
	else {
		cfg_err(w, "\"encap\" must be \"gre\" or \"vxlan\"");
		return -1;
	}
	if (cfg_uint(w, o, "vni", p->encap == OVERLAY_ENCAP_VXLAN, 1,
	    OVERLAY_VNI_MAX, &n) < 0)
		return -1;
	if (json_object_get(o, "vni") != NULL) {
		if (p->encap != OVERLAY_ENCAP_VXLAN) {
			cfg_err(w, "\"vni\" is for VXLAN only");
			return -1;
		}
		p->vni = (uint32_t)n;
	}
	if (cfg_addr(w, o, "local", false, &p->local) < 0 ||
	    cfg_addr(w, o, "remote", true, &p->remote) < 0 ||
	    cfg_prefix(w, o, p) < 0 ||
	    cfg_addr(w, o, "peer", true, &p->inner_peer) < 0)
		return -1;
	n = OVERLAY_UDP_PORT;
	if (cfg_uint(w, o, "remote_port", false, 1, 65535, &n) < 0)
		return -1;
	p->remote_port = (uint16_t)n;
	if (cfg_uint(w, o, "mtu", true, OVERLAY_MTU_MIN, OVERLAY_MTU_MAX, &n) < 0)
		return -1;
	p->mtu = (uint32_t)n;
	if (cfg_allowed(w, o, p) < 0)
		return -1;
	if (overlay_tunnel_params_check(p) < 0) {
		cfg_err(w, "invalid tunnel");
		return -1;
	}
	sas = json_object_get(o, "sas");
	if (sas != NULL && !json_is_array(sas)) {
		cfg_err(w, "\"sas\" must be an array");
		return -1;
	}
	if (json_array_size(sas) > UESP_CFG_SAS_MAX) {
		cfg_err(w, "more than %d SAs", UESP_CFG_SAS_MAX);
		return -1;
	}
	json_array_foreach(sas, i, v) {
		w->sa = (int)i;
		if (cfg_sa(w, v, p->id, &t->sa[i]) < 0)
			return -1;
		for (j = 0; j < i; j++) {
			if (t->sa[j].spi == t->sa[i].spi &&
			    t->sa[j].dir == t->sa[i].dir) {
				cfg_err(w, "duplicate SPI %u", t->sa[i].spi);
				return -1;
			}
		}
		if (t->sa[i].dir == OVERLAY_DIR_OUT) {
			nout++;
			t->spi_out = t->sa[i].spi;
		}
		t->nsa++;
	}
	w->sa = -1;
	if (cfg_uint(w, o, "spi_out", false, OVERLAY_SPI_MIN, UINT32_MAX, &n) < 0)
		return -1;
	if (json_object_get(o, "spi_out") != NULL) {
		t->spi_out = (uint32_t)n;
		for (i = 0; i < t->nsa; i++)
			if (t->sa[i].dir == OVERLAY_DIR_OUT &&
			    t->sa[i].spi == t->spi_out)
				break;
		if (i == t->nsa) {
			cfg_err(w, "\"spi_out\" names no outbound SA");
			return -1;
		}
	} else if (nout > 1) {
		cfg_err(w, "several outbound SAs: say which with \"spi_out\"");
		return -1;
	}
	return 0;
}

struct uesp_cfg *
uesp_cfg_empty(void)
{
	struct uesp_cfg *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	/* Full size once: growing by realloc would leave key copies behind. */
	c->tunnels = calloc(UESP_CFG_TUNNELS_MAX, sizeof(*c->tunnels));
	if (c->tunnels == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

void
uesp_cfg_free(struct uesp_cfg *c)
{
	if (c == NULL)
		return;
	if (c->tunnels != NULL) {
		util_wipe(c->tunnels, c->ntunnels * sizeof(*c->tunnels));
		free(c->tunnels);
	}
	free(c);
}

static bool
cfg_same_key(const struct overlay_sa_params *a, const struct overlay_sa_params *b)
{
	return a->cipher == b->cipher &&
	    memcmp(a->key, b->key, sizeof(a->key)) == 0 &&
	    memcmp(a->salt, b->salt, sizeof(a->salt)) == 0;
}

/*
 * Across the file, as overlay.h requires: an inbound SPI belongs to one
 * SA of the site, an outbound key and salt to one SA.  Tunnel i against
 * tunnels 0..i (itself included: the per-tunnel SPI check is in
 * cfg_tunnel, this adds the key check).
 */
static int
cfg_unique(struct cfg_where *w, const struct uesp_cfg *c, size_t i)
{
	const struct uesp_cfg_tunnel *t = &c->tunnels[i], *u;
	unsigned a, b;
	size_t j;

	for (a = 0; a < t->nsa; a++) {
		const struct overlay_sa_params *s = &t->sa[a];

		for (j = 0; j <= i; j++) {
			u = &c->tunnels[j];
			for (b = 0; b < u->nsa; b++) {
				const struct overlay_sa_params *r = &u->sa[b];

				if (j == i && b >= a)
					break;
				if (s->dir != r->dir)
					continue;
				w->sa = (int)a;
				if (s->dir == OVERLAY_DIR_IN && s->spi == r->spi &&
				    j != i) {
					cfg_err(w, "inbound SPI %u also in "
					    "tunnels[%zu]: inbound SPIs are unique "
					    "per site", s->spi, j);
					return -1;
				}
				if (s->dir == OVERLAY_DIR_OUT &&
				    cfg_same_key(s, r)) {
					cfg_err(w, "same key and salt as "
					    "tunnels[%zu].sas[%u]: an outbound "
					    "key is used by one SA only", j, b);
					return -1;
				}
				w->sa = -1;
			}
		}
	}
	return 0;
}

static int
cfg_top(struct cfg_where *w, json_t *root, struct uesp_cfg *c)
{
	static const char *const keys[] = { "port", "bind", "workers",
	    "keepalive", "udp_gso", "udp_checksum", "tunnels", NULL };
	json_t *tunnels, *v;
	uint64_t n;
	size_t i, j;

	if (!json_is_object(root)) {
		cfg_err(w, "top level must be an object");
		return -1;
	}
	if (cfg_keys(w, root, keys) < 0)
		return -1;
	n = OVERLAY_UDP_PORT;
	if (cfg_uint(w, root, "port", false, 1, 65535, &n) < 0)
		return -1;
	c->init.udp_port = (uint16_t)n;
	if (cfg_addr(w, root, "bind", false, &c->init.bind) < 0)
		return -1;
	n = 0;
	if (cfg_uint(w, root, "workers", false, 0, 64, &n) < 0)
		return -1;
	c->init.workers = (unsigned)n;
	n = 20;
	if (cfg_uint(w, root, "keepalive", false, 1, 3600, &n) < 0)
		return -1;
	c->init.keepalive_s = (unsigned)n;
	if ((v = json_object_get(root, "udp_gso")) != NULL) {
		if (!json_is_boolean(v)) {
			cfg_err(w, "\"udp_gso\" must be true or false");
			return -1;
		}
		c->init.no_udp_gso = !json_is_true(v);
	}
	if ((v = json_object_get(root, "udp_checksum")) != NULL) {
		if (!json_is_boolean(v)) {
			cfg_err(w, "\"udp_checksum\" must be true or false");
			return -1;
		}
		c->init.udp_checksum = json_is_true(v);
	}
	tunnels = json_object_get(root, "tunnels");
	if (tunnels == NULL || !json_is_array(tunnels)) {
		cfg_err(w, "\"tunnels\" must be an array");
		return -1;
	}
	if (json_array_size(tunnels) > UESP_CFG_TUNNELS_MAX) {
		cfg_err(w, "more than %d tunnels", UESP_CFG_TUNNELS_MAX);
		return -1;
	}
	c->tunnels = calloc(json_array_size(tunnels) + 1, sizeof(*c->tunnels));
	if (c->tunnels == NULL)
		return -1;
	json_array_foreach(tunnels, i, v) {
		w->tunnel = (int)i;
		if (cfg_tunnel(w, v, &c->tunnels[i]) < 0)
			return -1;
		c->ntunnels++;
		for (j = 0; j < i; j++) {
			if (c->tunnels[j].p.id == c->tunnels[i].p.id) {
				cfg_err(w, "duplicate id");
				return -1;
			}
			if (strcmp(c->tunnels[j].p.ifname,
			    c->tunnels[i].p.ifname) == 0) {
				cfg_err(w, "duplicate device");
				return -1;
			}
		}
		if (cfg_unique(w, c, i) < 0)
			return -1;
	}
	return 0;
}

/*
 * jansson keeps copies of the key text in its own allocations: hand it
 * an allocator whose free wipes, so no key outlives the parse.
 */
static void
cfg_json_free(void *p)
{
	if (p != NULL)
		util_wipe(p, malloc_usable_size(p));
	free(p);
}

struct uesp_cfg *
uesp_cfg_load(const char *path)
{
	struct cfg_where w = { path, -1, -1 };
	struct uesp_cfg *c = NULL;
	json_error_t err;
	json_t *root;
	char *buf;
	ssize_t r;
	size_t len = 0;
	int fd;

	/* Read the file ourselves so that its bytes can be wiped too. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		log_warn("%s", path);
		return NULL;
	}
	if ((buf = malloc(CFG_FILE_MAX)) == NULL) {
		close(fd);
		return NULL;
	}
	while (len < CFG_FILE_MAX &&
	    (r = read(fd, buf + len, CFG_FILE_MAX - len)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_warn("%s", path);
			goto wipe;
		}
		len += (size_t)r;
	}
	if (len == CFG_FILE_MAX) {
		log_warnx("%s: larger than %zu bytes", path, CFG_FILE_MAX);
		goto wipe;
	}
	json_set_alloc_funcs(malloc, cfg_json_free);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		log_warnx("%s:%d: %s", path, err.line, err.text);
		goto wipe;
	}
	if ((c = calloc(1, sizeof(*c))) != NULL && cfg_top(&w, root, c) < 0) {
		uesp_cfg_free(c);
		c = NULL;
	}
	json_decref(root);
wipe:
	util_wipe(buf, len);
	free(buf);
	close(fd);
	return c;
}

static json_t *
cfg_lifetime_json(const struct overlay_lifetime *l)
{
	return json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)l->bytes,
	    "packets", (json_int_t)l->packets, "seconds",
	    (json_int_t)l->seconds);
}

int
uesp_cfg_print(const struct uesp_cfg *c, FILE *out)
{
	json_t *root, *tunnels, *t, *sas, *al;
	char a[64], b[64], d[64];
	unsigned i, j;
	int rc;

	tunnels = json_array();
	for (i = 0; i < c->ntunnels; i++) {
		const struct uesp_cfg_tunnel *ct = &c->tunnels[i];
		const struct overlay_tunnel_params *p = &ct->p;

		sas = json_array();
		for (j = 0; j < ct->nsa; j++) {
			const struct overlay_sa_params *s = &ct->sa[j];

			json_array_append_new(sas, json_pack(
			    "{s:s,s:I,s:s,s:s,s:s,s:b,s:I,s:o,s:o}",
			    "dir", overlay_dir_str(s->dir),
			    "spi", (json_int_t)s->spi,
			    "cipher", overlay_cipher_str(s->cipher),
			    "key", "(redacted)", "salt", "(redacted)",
			    "esn", s->esn,
			    "replay_window", (json_int_t)s->replay_window,
			    "soft", cfg_lifetime_json(&s->soft),
			    "hard", cfg_lifetime_json(&s->hard)));
		}
		snprintf(d, sizeof(d), "%s/%u",
		    overlay_addr_str(&p->inner_local, a, sizeof(a)),
		    p->inner_prefix_len);
		t = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:I}",
		    "id", (json_int_t)p->id, "device", p->ifname,
		    "encap", overlay_encap_str(p->encap),
		    "local", overlay_addr_str(&p->local, a, sizeof(a)),
		    "remote", overlay_addr_str(&p->remote, b, sizeof(b)),
		    "remote_port", (json_int_t)p->remote_port,
		    "inner", d,
		    "peer", overlay_addr_str(&p->inner_peer, a, sizeof(a)),
		    "mtu", (json_int_t)p->mtu);
		if (p->encap == OVERLAY_ENCAP_VXLAN)
			json_object_set_new(t, "vni", json_integer(p->vni));
		al = json_array();
		for (j = 0; j < p->nallowed; j++)
			json_array_append_new(al, json_string(overlay_prefix_str(
			    &p->allowed[j], d, sizeof(d))));
		json_object_set_new(t, "allowed", al);
		json_object_set_new(t, "spi_out", json_integer(ct->spi_out));
		json_object_set_new(t, "sas", sas);
		json_array_append_new(tunnels, t);
	}
	root = json_pack("{s:I,s:s,s:I,s:I,s:b,s:b,s:o}",
	    "port", (json_int_t)c->init.udp_port,
	    "bind", overlay_addr_str(&c->init.bind, a, sizeof(a)),
	    "workers", (json_int_t)c->init.workers,
	    "keepalive", (json_int_t)c->init.keepalive_s,
	    "udp_gso", !c->init.no_udp_gso,
	    "udp_checksum", c->init.udp_checksum,
	    "tunnels", tunnels);
	if (root == NULL)
		return -1;
	rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
	return rc;
}

/* ---- reconcile ---------------------------------------------------------- */

static struct uesp_cfg_tunnel *
cfg_find(const struct uesp_cfg *c, uint64_t id)
{
	unsigned i;

	for (i = 0; i < c->ntunnels; i++)
		if (c->tunnels[i].p.id == id)
			return &c->tunnels[i];
	return NULL;
}

static const struct overlay_sa_params *
cfg_find_sa(const struct uesp_cfg_tunnel *t, uint32_t spi, enum overlay_dir dir)
{
	unsigned i;

	for (i = 0; i < t->nsa; i++)
		if (t->sa[i].spi == spi && t->sa[i].dir == dir)
			return &t->sa[i];
	return NULL;
}

static bool
cfg_lifetime_eq(const struct overlay_lifetime *a, const struct overlay_lifetime *b)
{
	return a->bytes == b->bytes && a->packets == b->packets &&
	    a->seconds == b->seconds;
}

/* The same SA except perhaps its lifetimes: updated in place. */
static bool
cfg_sa_same(const struct overlay_sa_params *a, const struct overlay_sa_params *b)
{
	return cfg_same_key(a, b) && a->esn == b->esn &&
	    a->replay_window == b->replay_window;
}

static bool
cfg_sa_eq(const struct overlay_sa_params *a, const struct overlay_sa_params *b)
{
	return cfg_sa_same(a, b) && cfg_lifetime_eq(&a->soft, &b->soft) &&
	    cfg_lifetime_eq(&a->hard, &b->hard);
}

static void
cfg_cur_del_tunnel(struct uesp_cfg *cur, struct uesp_cfg_tunnel *t)
{
	struct uesp_cfg_tunnel *last = &cur->tunnels[--cur->ntunnels];

	if (t != last)
		*t = *last;
	util_wipe(last, sizeof(*last));
}

static void
cfg_cur_del_sa(struct uesp_cfg_tunnel *t, unsigned i)
{
	if (t->sa[i].dir == OVERLAY_DIR_OUT && t->sa[i].spi == t->spi_out)
		t->spi_out = 0;
	t->sa[i] = t->sa[--t->nsa];
	util_wipe(&t->sa[t->nsa], sizeof(t->sa[t->nsa]));
}

static int
cfg_fail(const char *what, uint64_t id, uint32_t spi, int rc)
{
	log_warnx("reconcile: tunnel %llu: %s %u: %s", (unsigned long long)id,
	    what, spi, strerror(-rc));
	return rc;
}

static int
cfg_add_sas(const struct overlay_ops *ops, void *ctx,
    struct uesp_cfg_tunnel *ct, const struct uesp_cfg_tunnel *wt,
    enum overlay_dir dir)
{
	const struct overlay_sa_params *have;
	unsigned i, j;
	int rc;

	for (i = 0; i < wt->nsa; i++) {
		const struct overlay_sa_params *s = &wt->sa[i];

		if (s->dir != dir)
			continue;
		have = cfg_find_sa(ct, s->spi, s->dir);
		if (have != NULL && cfg_sa_eq(have, s))
			continue;
		if (have != NULL && cfg_sa_same(have, s)) {
			/* Only lifetimes: in place, the counter runs on. */
			if ((rc = ops->sa_update(ctx, s)) < 0)
				return cfg_fail("update SA", ct->p.id, s->spi, rc);
			for (j = 0; j < ct->nsa; j++)
				if (&ct->sa[j] == have)
					ct->sa[j] = *s;
			continue;
		}
		if (have != NULL) {
			/* Same SPI, new keys or limits: replace it. */
			if ((rc = ops->sa_del(ctx, ct->p.id, s->spi, dir)) < 0)
				return cfg_fail("delete SA", ct->p.id, s->spi, rc);
			for (j = 0; j < ct->nsa; j++)
				if (&ct->sa[j] == have)
					cfg_cur_del_sa(ct, j);
		}
		if (ct->nsa >= UESP_CFG_SAS_MAX)
			return cfg_fail("add SA", ct->p.id, s->spi, -ENOSPC);
		if ((rc = ops->sa_add(ctx, s)) < 0)
			return cfg_fail("add SA", ct->p.id, s->spi, rc);
		ct->sa[ct->nsa++] = *s;
	}
	return 0;
}

static int
cfg_apply_tunnel(const struct overlay_ops *ops, void *ctx,
    struct uesp_cfg_tunnel *ct, const struct uesp_cfg_tunnel *wt)
{
	unsigned i;
	int rc;

	if ((rc = cfg_add_sas(ops, ctx, ct, wt, OVERLAY_DIR_IN)) < 0 ||
	    (rc = cfg_add_sas(ops, ctx, ct, wt, OVERLAY_DIR_OUT)) < 0)
		return rc;
	if (wt->spi_out != 0 && wt->spi_out != ct->spi_out) {
		if ((rc = ops->sa_switch_out(ctx, ct->p.id, wt->spi_out)) < 0)
			return cfg_fail("switch to SA", ct->p.id, wt->spi_out, rc);
		ct->spi_out = wt->spi_out;
	}
	for (i = 0; i < ct->nsa;) {
		const struct overlay_sa_params *s = &ct->sa[i];

		if (cfg_find_sa(wt, s->spi, s->dir) != NULL) {
			i++;
			continue;
		}
		if ((rc = ops->sa_del(ctx, ct->p.id, s->spi, s->dir)) < 0)
			return cfg_fail("delete SA", ct->p.id, s->spi, rc);
		cfg_cur_del_sa(ct, i);
	}
	return 0;
}

/*
 * An outbound key running now may stay only on the same SA of the same
 * tunnel, kept as it is or with new lifetimes.  Anything else (the tunnel
 * re-made, another SPI, another tunnel, other ESN or window) would add a
 * second SA with that key, starting its nonces again: refused whole.
 */
static int
cfg_reuse(const struct uesp_cfg *cur, const struct uesp_cfg *want)
{
	const struct uesp_cfg_tunnel *ct, *wt;
	const struct overlay_sa_params *cs, *ws;
	unsigned i, j, k, l;

	for (i = 0; i < want->ntunnels; i++) {
		wt = &want->tunnels[i];
		for (j = 0; j < wt->nsa; j++) {
			ws = &wt->sa[j];
			if (ws->dir != OVERLAY_DIR_OUT)
				continue;
			for (k = 0; k < cur->ntunnels; k++) {
				ct = &cur->tunnels[k];
				for (l = 0; l < ct->nsa; l++) {
					cs = &ct->sa[l];
					if (cs->dir != OVERLAY_DIR_OUT ||
					    !cfg_same_key(cs, ws))
						continue;
					if (ct->p.id == wt->p.id &&
					    cs->spi == ws->spi &&
					    cfg_sa_same(cs, ws) &&
					    !overlay_tunnel_needs_remake(&ct->p,
					    &wt->p))
						continue;
					log_warnx("reconcile: tunnel %llu SA out "
					    "%u: its key and salt are in use by "
					    "SA out %u of tunnel %llu, which this "
					    "change would re-create or copy; an "
					    "outbound key serves one SA only: "
					    "give it a new key",
					    (unsigned long long)wt->p.id,
					    ws->spi, cs->spi,
					    (unsigned long long)ct->p.id);
					return -1;
				}
			}
		}
	}
	return 0;
}

int
uesp_cfg_apply(const struct overlay_ops *ops, void *ctx, struct uesp_cfg *cur,
    const struct uesp_cfg *want)
{
	struct uesp_cfg_tunnel *ct;
	const struct uesp_cfg_tunnel *wt;
	unsigned i;
	int rc;

	/* 0. Refuse, before any change, what would seal with a key again. */
	if (cfg_reuse(cur, want) < 0)
		return -EEXIST;
	/* 1. Tunnels that went away, or whose device must be re-made. */
	for (i = 0; i < cur->ntunnels;) {
		ct = &cur->tunnels[i];
		wt = cfg_find(want, ct->p.id);
		if (wt != NULL && !overlay_tunnel_needs_remake(&ct->p, &wt->p)) {
			i++;
			continue;
		}
		if ((rc = ops->tunnel_del(ctx, ct->p.id)) < 0)
			return cfg_fail("delete tunnel", ct->p.id, 0, rc);
		cfg_cur_del_tunnel(cur, ct);
	}
	/* 2. New tunnels, changed tunnels, then their SAs in rekey order. */
	for (i = 0; i < want->ntunnels; i++) {
		wt = &want->tunnels[i];
		ct = cfg_find(cur, wt->p.id);
		if (ct == NULL) {
			if (cur->ntunnels >= UESP_CFG_TUNNELS_MAX)
				return cfg_fail("add tunnel", wt->p.id, 0,
				    -ENOSPC);
			if ((rc = ops->tunnel_add(ctx, &wt->p)) < 0)
				return cfg_fail("add tunnel", wt->p.id, 0, rc);
			ct = &cur->tunnels[cur->ntunnels++];
			memset(ct, 0, sizeof(*ct));
			ct->p = wt->p;
		} else if (!overlay_addr_eq(&ct->p.remote, &wt->p.remote) ||
		    ct->p.remote_port != wt->p.remote_port ||
		    ct->p.mtu != wt->p.mtu ||
		    ct->p.nallowed != wt->p.nallowed ||
		    memcmp(ct->p.allowed, wt->p.allowed,
		    wt->p.nallowed * sizeof(wt->p.allowed[0])) != 0) {
			if ((rc = ops->tunnel_update(ctx, &wt->p)) < 0)
				return cfg_fail("update tunnel", wt->p.id, 0, rc);
			ct->p = wt->p;
		}
		if ((rc = cfg_apply_tunnel(ops, ctx, ct, wt)) < 0)
			return rc;
	}
	cur->init = want->init;
	return 0;
}
