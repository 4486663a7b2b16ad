/*
 * api.c — the REST API v1: route table, authentication per route, JSON
 * validation and the handlers that call the store.
 *
 * Why it is built this way:
 *  - One route table says, for every method and path, the least role it
 *    needs; a route without one is refused (deny by default), and paths
 *    that exist with another method get 405, not 404.
 *  - Every body is checked field by field against an explicit list
 *    (unknown fields, wrong JSON types, missing fields, lengths) before
 *    the model's own validation runs, so every refusal names its field.
 *  - Every change is one store transaction holding the change, a dry-run
 *    compile of the topology (refusing an exhausted tunnel pool before
 *    anything is written) and the audit entry: a refused request leaves
 *    the database exactly as it was.
 *  - No reply carries key or token material, except the reply that
 *    creates a token (its only chance to be seen).
 */
#include "controller/api.h"
#include "controller/json_u64.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>

#include <jansson.h>

#include "controller/auth.h"
#include "controller/events.h"
#include "controller/http.h"
#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "controller/web.h"
#include "controller/topo_need.h"
#include "controller/api_index.h"
#include "lib/log.h"
#include "lib/util.h"

#include <unistd.h>

#define API_PREFIX "/api/v1"
#define API_EVENTS_DEFAULT 100
#define API_EVENTS_MAX 1000
#define API_PATH_SEGS 8
#define API_SEG_MAX 128

/* The OpenAPI document, linked in from controller/web/openapi.json. */
extern const char api_openapi_json[];
extern const uint64_t api_openapi_json_len;

struct api {
	struct store *st;
	struct http_server *http;
	struct api_hooks hooks;
	struct metrics *metrics;
	int64_t enroll_ttl;
	uint16_t edge_session_port, edge_enroll_port;
	char edge_controller_name[256];
	char edge_ca_pin[80];
	struct events *ev;	/* event stream and health history */
	int web_fd;		/* the web root, or -1 */
	/* The committed model's tunnel count and endpoints (api_index.h),
	 * or NULL until a change needs them; valid while the store's
	 * API_INDEX_GEN is index_gen. */
	struct api_index *index;
	uint64_t index_gen;
	bool index_txn;         /* holds changes of the open transaction */
	struct model_prefix pool6;
};

/* One request being served. */
struct api_call {
	struct api *api;
	const struct http_request *req;
	struct http_response *resp;
	struct auth_identity who;
	uint64_t id;				/* {id} of the path */
	char name[API_SEG_MAX];			/* {name} of the path */
	json_t *body;				/* object, or NULL */
};

struct api_route {
	const char *method;
	const char *pattern;	/* "{id}" = decimal > 0, "{name}" = a segment */
	const char *query;	/* allowed query arguments, space separated */
	void (*fn)(struct api_call *c);
	enum auth_need need;
	bool body;		/* expects a JSON object */
};

/* ------------------------------------------------------------------ */
/* Replies */

static void
api_reply_text(struct api_call *c, int status, const char *type, char *text,
    size_t len)
{
	free(c->resp->body);
	c->resp->status = status;
	c->resp->content_type = type;
	c->resp->body = text;
	c->resp->body_len = len;
}

/* Sends j (reference stolen); j == NULL sends an empty body. */
static void
api_reply(struct api_call *c, int status, json_t *j)
{
	char *s = NULL;

	if (j != NULL) {
		s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (s == NULL) {
			api_reply_text(c, 500, "application/json", NULL, 0);
			return;
		}
	}
	api_reply_text(c, status, "application/json", s, s != NULL ?
	    strlen(s) : 0);
}

/*
 * Length of the valid UTF-8 sequence at s (1-4 bytes), or 0 when s does
 * not start one (stray continuation byte, overlong form, surrogate,
 * beyond U+10FFFF, or cut short).  s is NUL-terminated; a NUL ends a
 * sequence early, so nothing past it is read.
 */
static size_t
api_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80 || (c == 0xf0 && s[1] < 0x90) ||
		    (c == 0xf4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Copies at most max characters of src into dst (dstsz bytes) as valid
 * UTF-8, so that json_string() always takes it: a byte that does not
 * start a valid sequence is written as the four characters \xNN, and the
 * copy stops before a character (or escape) that would not fit whole.
 * Returns dst, for use as a printf argument.
 */
static const char *
api_clip(char *dst, size_t dstsz, const char *src, size_t max)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, chars = 0, n;

	if (dstsz == 0)
		return dst;
	while (*s != '\0' && chars < max) {
		n = api_utf8_len(s);
		if (n == 0) {
			if (o + 4 >= dstsz)
				break;
			(void)snprintf(dst + o, dstsz - o, "\\x%02X", *s);
			o += 4;
			s++;
		} else {
			if (o + n >= dstsz)
				break;
			memcpy(dst + o, s, n);
			o += n;
			s += n;
		}
		chars++;
	}
	dst[o] = '\0';
	return dst;
}

/* Quoting a client's value in a message: at most this many characters. */
#define API_QUOTE_CHARS 40
#define API_QUOTE_BUF (4 * API_QUOTE_CHARS + 1)

/*
 * Drops an incomplete UTF-8 sequence at the end of s: what is left when
 * snprintf cut a character in two.
 */
static void
api_utf8_trim_end(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned char c;

	while (i > 0 && len - i < 4 &&
	    ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	c = (unsigned char)s[i - 1];
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	if (need > len - (i - 1))
		s[i - 1] = '\0';
}

/*
 * A field's name for replies: prefix ("links[2].") and the client's key,
 * clipped to API_QUOTE_CHARS characters of valid UTF-8.
 */
#define API_FIELD_BUF (32 + API_QUOTE_BUF)

static void
api_field_name(char *dst, size_t dstsz, const char *prefix, const char *key)
{
	char q[API_QUOTE_BUF];

	(void)snprintf(dst, dstsz, "%s%s", prefix,
	    api_clip(q, sizeof(q), key, API_QUOTE_CHARS));
}

/*
 * The error reply: always {"code", "message", "field"}, every string
 * valid UTF-8 whatever the client sent (a string json_string() refuses
 * would otherwise make its key vanish from the reply).
 */
static void __attribute__((format(printf, 5, 6)))
api_error(struct api_call *c, int status, const char *code, const char *field,
    const char *fmt, ...)
{
	char msg[256], clean[4 * sizeof(msg)], f[4 * 96];
	va_list ap;
	json_t *j, *m, *fj = NULL;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg))
		api_utf8_trim_end(msg);
	va_end(ap);
	api_clip(clean, sizeof(clean), msg, sizeof(msg));
	j = json_object();
	m = json_string(clean);
	json_object_set_new(j, "code", json_string(code));
	json_object_set_new(j, "message", m != NULL ? m :
	    json_string("error"));
	if (field != NULL && field[0] != '\0') {
		char tmp[96];

		if (util_strcpy(tmp, sizeof(tmp), field) == -1)
			api_utf8_trim_end(tmp);
		fj = json_string(api_clip(f, sizeof(f), tmp, sizeof(tmp)));
	}
	json_object_set_new(j, "field", fj != NULL ? fj : json_null());
	api_reply(c, status, j);
}

static int
api_model_status(enum model_errcode code)
{
	switch (code) {
	case MODEL_E_INVALID:
		return 400;
	case MODEL_E_NOT_FOUND:
		return 404;
	case MODEL_E_DUPLICATE:
	case MODEL_E_OVERLAP:
	case MODEL_E_EXHAUSTED:
	case MODEL_E_CONFLICT:
		return 409;
	case MODEL_E_TOKEN:
		return 403;
	case MODEL_E_BUSY:
		return 503;
	case MODEL_OK:
	case MODEL_E_INTERNAL:
		break;
	}
	return 500;
}

/* Answers a store or model refusal; internal details stay in the log. */
static void
api_model_error(struct api_call *c, const struct model_error *err)
{
	int status = api_model_status(err->code);

	if (status == 500) {
		log_warnx("api: %s %s: %s", http_request_method(c->req),
		    http_request_path(c->req), err->message);
		api_error(c, 500, "internal", NULL, "internal error");
		return;
	}
	api_error(c, status, model_errcode_str(err->code), err->field, "%s",
	    err->message);
}

/* ------------------------------------------------------------------ */
/* Body checks */

enum api_type { API_T_STRING = 1, API_T_INT, API_T_BOOL, API_T_ARRAY };

struct api_field {
	const char *name;
	enum api_type type;
	bool required;
};

static const char *
api_type_name(enum api_type t)
{
	switch (t) {
	case API_T_STRING: return "a string";
	case API_T_INT: return "an integer";
	case API_T_BOOL: return "a boolean";
	case API_T_ARRAY: return "an array";
	}
	return "?";
}

static bool
api_type_ok(const json_t *v, enum api_type t)
{
	switch (t) {
	case API_T_STRING: return json_is_string(v);
	case API_T_INT: return json_is_integer(v);
	case API_T_BOOL: return json_is_boolean(v);
	case API_T_ARRAY: return json_is_array(v);
	}
	return false;
}

/*
 * Refuses unknown fields, wrong types and missing required fields of obj;
 * prefix names the object within the body ("" or "links[2].").
 */
static int
api_check_fields(struct api_call *c, const json_t *obj, const char *prefix,
    const struct api_field *spec, size_t n)
{
	char field[API_FIELD_BUF];
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(obj)) {
		snprintf(field, sizeof(field), "%.*s", prefix[0] != '\0' ?
		    (int)strlen(prefix) - 1 : 0, prefix);
		api_error(c, 400, "wrong_type", field, "expected an object");
		return -1;
	}
	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; i < n; i++)
			if (strcmp(key, spec[i].name) == 0)
				break;
		api_field_name(field, sizeof(field), prefix, key);
		if (i == n) {
			api_error(c, 400, "unknown_field", field,
			    "unknown field '%s'", field + strlen(prefix));
			return -1;
		}
		if (!api_type_ok(v, spec[i].type)) {
			api_error(c, 400, "wrong_type", field,
			    "%s must be %s", field, api_type_name(spec[i].type));
			return -1;
		}
	}
	for (i = 0; i < n; i++) {
		if (spec[i].required && json_object_get(obj, spec[i].name) ==
		    NULL) {
			api_field_name(field, sizeof(field), prefix,
			    spec[i].name);
			api_error(c, 400, "missing_field", field,
			    "%s is required", field);
			return -1;
		}
	}
	return 0;
}

/* Copies a string field that must fit in dst; refuses one too long. */
static int
api_get_str(struct api_call *c, const json_t *obj, const char *prefix,
    const char *key, char *dst, size_t dstsz)
{
	const json_t *v = json_object_get(obj, key);
	char field[API_FIELD_BUF];

	if (v == NULL)
		return 0;
	if (util_strcpy(dst, dstsz, json_string_value(v)) == -1 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		api_field_name(field, sizeof(field), prefix, key);
		api_error(c, 400, "invalid", field,
		    "%s is too long (at most %zu characters) or holds a NUL",
		    field, dstsz - 1);
		return -1;
	}
	return 0;
}

/* An integer field within [min, max]; absent leaves *out untouched. */
static int
api_get_uint(struct api_call *c, const json_t *obj, const char *prefix,
    const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t i;
	char field[API_FIELD_BUF];

	if (v == NULL)
		return 0;
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
		api_field_name(field, sizeof(field), prefix, key);
		api_error(c, 400, "invalid", field, "%s must lie in [%" PRIu64
		    ", %" PRIu64 "]", field, min, max);
		return -1;
	}
	*out = (uint64_t)i;
	return 0;
}

/* An enum field through one of model's *_parse functions. */
static int
api_get_enum(struct api_call *c, const json_t *obj, const char *key,
    int (*parse)(const char *, int *), int *out, const char *choices)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (parse(json_string_value(v), out) == -1) {
		api_error(c, 400, "invalid", key, "%s must be one of %s", key,
		    choices);
		return -1;
	}
	return 0;
}

/*
 * model's parse functions take typed enums; api_get_enum takes an int
 * parser: each adapter converts one of them.
 */
#define API_ENUM_PARSER(name, type, parse)                                     \
	static int name(const char *s, int *o)                                 \
	{                                                                      \
		type v;                                                        \
                                                                               \
		if (parse(s, &v) == -1)                                        \
			return -1;                                             \
		*o = (int)v;                                                   \
		return 0;                                                      \
	}
API_ENUM_PARSER(api_parse_role, enum model_role, model_role_parse)
API_ENUM_PARSER(api_parse_backend, enum model_backend, model_backend_parse)
API_ENUM_PARSER(api_parse_topology, enum model_topology, model_topology_parse)
API_ENUM_PARSER(api_parse_pairing, enum model_pairing, model_pairing_parse)
API_ENUM_PARSER(api_parse_encap, enum model_encap, model_encap_parse)
API_ENUM_PARSER(api_parse_cipher, enum model_cipher, model_cipher_parse)
API_ENUM_PARSER(api_parse_api_role, enum model_api_role, model_api_role_parse)

/* ------------------------------------------------------------------ */
/* JSON of model objects */

static json_t *
api_link_json(const struct model_link *l)
{
	json_t *j = json_object();

	json_object_set_new(j, "name", json_string(l->name));
	json_object_set_new(j, "address", json_string(l->address));
	json_object_set_new(j, "public_address", l->public_address[0] != '\0' ?
	    json_string(l->public_address) : json_null());
	json_object_set_new(j, "public_port", l->public_port != 0 ?
	    json_integer(l->public_port) : json_null());
	return j;
}

/* p may hold prefixes of several sites: only this site's are shown. */
static json_t *
api_site_json(const struct model_site *s, const struct model_site_prefix *p,
    size_t np)
{
	char buf[MODEL_CIDR_MAX + 1];
	json_t *j = json_object(), *links = json_array(), *pl;
	size_t i;

	json_object_set_new(j, "id", json_integer((json_int_t)s->id));
	json_object_set_new(j, "name", json_string(s->name));
	json_object_set_new(j, "region", json_string(s->region));
	json_object_set_new(j, "role", json_string(model_role_str(s->role)));
	json_object_set_new(j, "asn", json_integer(s->asn));
	json_object_set_new(j, "backend", json_string(
	    model_backend_str(s->backend)));
	json_object_set_new(j, "revoked", json_boolean(s->revoked));
	json_object_set_new(j, "internet_breakout",
	    json_boolean(s->internet_breakout));
	for (i = 0; i < s->n_links; i++)
		json_array_append_new(links, api_link_json(&s->links[i]));
	json_object_set_new(j, "links", links);
	pl = json_array();
	for (i = 0; i < np; i++) {
		if (p[i].site_id != s->id)
			continue;
		model_prefix_format(&p[i].prefix, buf, sizeof(buf));
		json_array_append_new(pl, json_string(buf));
	}
	json_object_set_new(j, "lan_prefixes", pl);
	return j;
}

static json_t *
api_policy_json(const struct model_policy *p)
{
	char buf[MODEL_CIDR_MAX + 1];
	json_t *j = json_object(), *pairs = json_array();
	size_t i;

	json_object_set_new(j, "mode", json_string(
	    model_topology_str(p->topology)));
	json_object_set_new(j, "pairing", json_string(
	    model_pairing_str(p->pairing)));
	for (i = 0; i < p->n_pairs; i++)
		json_array_append_new(pairs, json_pack("[ss]", p->pairs[i].a,
		    p->pairs[i].b));
	json_object_set_new(j, "pairs", pairs);
	model_prefix_format(&p->pool, buf, sizeof(buf));
	json_object_set_new(j, "pool", json_string(buf));
	json_object_set_new(j, "encap", json_string(model_encap_str(p->encap)));
	json_object_set_new(j, "vni_min", json_integer(p->vni_min));
	json_object_set_new(j, "vni_max", json_integer(p->vni_max));
	json_object_set_new(j, "asn_min", json_integer(p->asn_min));
	json_object_set_new(j, "asn_max", json_integer(p->asn_max));
	json_object_set_new(j, "mtu", json_integer(p->mtu));
	json_object_set_new(j, "bgp_hold_time", json_integer(p->bgp_hold_time));
	json_object_set_new(j, "bgp_keepalive", json_integer(p->bgp_keepalive));
	json_object_set_new(j, "bgp_bfd", json_boolean(p->bgp_bfd));
	return j;
}

static json_t *
api_crypto_json(const struct model_crypto *cr)
{
	json_t *j = json_object();

	json_object_set_new(j, "cipher", json_string(
	    model_cipher_str(cr->cipher)));
	json_object_set_new(j, "rekey_seconds", json_integer(cr->rekey_seconds));
	json_object_set_new(j, "replay_window", json_integer(cr->replay_window));
	json_object_set_new(j, "rekey_bytes", json_integer(
	    (json_int_t)cr->rekey_bytes));
	json_object_set_new(j, "rekey_packets", json_integer(
	    (json_int_t)cr->rekey_packets));
	return j;
}

static json_t *
api_tunnel_json(const struct model_tunnel *t, const struct model_prefix *pool4,
    const struct model_prefix *pool6)
{
	char a[16], b[16], cidr[24];
	json_t *j = json_object();
	uint8_t x[16];
	char a6[INET6_ADDRSTRLEN], b6[INET6_ADDRSTRLEN], c6[INET6_ADDRSTRLEN + 5];

	model_ipv4_format(t->inner, a, sizeof(a));
	model_ipv4_format(t->inner + 1, b, sizeof(b));
	snprintf(cidr, sizeof(cidr), "%s/31", a);
	json_object_set_new(j, "id", json_integer((json_int_t)t->id));
	json_object_set_new(j, "site_a", json_integer((json_int_t)t->site_a));
	json_object_set_new(j, "link_a", json_string(t->link_a));
	json_object_set_new(j, "site_b", json_integer((json_int_t)t->site_b));
	json_object_set_new(j, "link_b", json_string(t->link_b));
	json_object_set_new(j, "inner", json_string(cidr));
	json_object_set_new(j, "address_a", json_string(a));
	json_object_set_new(j, "address_b", json_string(b));
	json_object_set_new(j, "vni", t->vni != 0 ? json_integer(t->vni) :
	    json_null());
	/* Dual stack: the /127 paired with the /31 (tunnel_pool6). */
	if (pool6 != NULL && pool6->family == 6 &&
	    model_inner6(pool4, pool6, t->inner, x) == 0 &&
	    inet_ntop(AF_INET6, x, a6, sizeof(a6)) != NULL) {
		x[15] ^= 1;
		if (inet_ntop(AF_INET6, x, b6, sizeof(b6)) != NULL) {
			snprintf(c6, sizeof(c6), "%s/127", a6);
			json_object_set_new(j, "inner6", json_string(c6));
			json_object_set_new(j, "address6_a", json_string(a6));
			json_object_set_new(j, "address6_b", json_string(b6));
		}
	}
	return j;
}

static json_t *
api_token_json(const struct model_api_token_info *t)
{
	return json_pack("{s:s, s:s, s:I}", "name", t->name, "role",
	    model_api_role_str(t->role), "created_at", (json_int_t)t->created_at);
}

/* ------------------------------------------------------------------ */
/* Changes: one transaction with the dry-run compile and the audit entry */

static int
api_begin(struct api_call *c)
{
	struct model_error err;

	if (store_begin(c->api->st, &err) == -1) {
		api_model_error(c, &err);
		return -1;
	}
	c->api->index_txn = false;
	return 0;
}

/* Rolls back and answers err. */
static void
api_abort(struct api_call *c, const struct model_error *err)
{
	store_rollback(c->api->st);
	if (c->api->index_txn) {
		/* It holds what was just rolled back: rebuild when needed. */
		api_index_free(c->api->index);
		c->api->index = NULL;
	}
	api_model_error(c, err);
}

/*
 * Refuses a change that cannot be compiled (tunnel pool or VNI range
 * exhausted) before it is committed, judging the model as it stands inside
 * the open transaction.  Exhaustion depends only on how many tunnels the
 * topology needs (every tunnel takes one /31 and, with VXLAN, one VNI).
 *
 * A change of some sites (the common case: POST/PATCH of a site or link)
 * is judged by a->index, the count of the committed model kept up to date
 * one site at a time (topo_need.h): re-reading the changed sites costs
 * O(the change), not a compile over every pair of sites.  The index is
 * trusted only while the store's generation API_INDEX_GEN, moved on in the
 * same transaction as every topology change the API commits, is the one
 * it was built at; otherwise (first use, another writer, a failed commit)
 * it is rebuilt from the site list once.
 *
 * A policy change (no sites named) is judged as before the index: with
 * L links in all there are at most L(L-1)/2 tunnels (no two join the same
 * pair of links), and when that fits nothing can run out; otherwise the
 * whole model is compiled from scratch (no previous allocations: the
 * count, not the placement, decides) and the result thrown away.
 */
#define API_INDEX_GEN "api.topology_gen"

static void
api_index_drop(struct api *a)
{
	api_index_free(a->index);
	a->index = NULL;
}

static int
api_dry_compile_full(struct api *a, struct model_error *err)
{
	struct model_policy policy;
	struct model_crypto crypto;
	struct model_site *sites = NULL;
	struct topo_output *out = NULL;
	struct topo_input in;
	struct topo_prev prev;
	size_t n_sites = 0, i;
	uint64_t links = 0, bound, vnis;
	int rc = -1;

	if (store_policy_get(a->st, &policy, err) == -1 ||
	    store_crypto_get(a->st, &crypto, err) == -1 ||
	    store_site_list(a->st, &sites, &n_sites, err) == -1)
		goto out;
	for (i = 0; i < n_sites; i++)
		if (!sites[i].revoked)
			links += sites[i].n_links;
	bound = links * (links > 0 ? links - 1 : 0) / 2;
	vnis = policy.vni_max >= policy.vni_min ?
	    (uint64_t)policy.vni_max - policy.vni_min + 1 : 0;
	if (bound <= model_pool_slots(&policy.pool) &&
	    (policy.encap != MODEL_ENCAP_VXLAN || bound <= vnis)) {
		rc = 0;
		goto out;
	}
	in.policy = &policy;
	in.crypto = &crypto;
	in.sites = sites;
	in.n_sites = n_sites;
	memset(&prev, 0, sizeof(prev));
	if (topo_compile(&in, &prev, &out, NULL, err) == 0) {
		topo_free(out);
		rc = 0;
	}
out:
	free(sites);
	return rc;
}

/* The store's generation of the model inside the open transaction. */
static int
api_index_gen(struct api *a, uint64_t *gen, struct model_error *err)
{
	char buf[32];

	*gen = 0;
	if (store_kv_get(a->st, API_INDEX_GEN, buf, sizeof(buf), err) == 0) {
		if (util_parse_u64(buf, 0, UINT64_MAX - 1, gen) == -1)
			*gen = 0;
		return 0;
	}
	return err->code == MODEL_E_NOT_FOUND ? 0 : -1;
}

/*
 * Makes a->index describe the model inside the open transaction (as
 * committed at generation *gen, plus whatever this transaction changed so
 * far when it had to be rebuilt): kept if its generation is current, else
 * rebuilt from the site list.
 */
static int
api_index_current(struct api *a, uint64_t *gen, struct model_error *err)
{
	struct model_policy policy;
	struct model_site *sites = NULL;
	size_t n = 0, i;

	if (api_index_gen(a, gen, err) == -1)
		return -1;
	if (a->index != NULL && a->index_gen == *gen)
		return 0;
	api_index_drop(a);      /* someone else changed the model */
	a->index_txn = true;    /* built from inside this transaction */
	if (store_policy_get(a->st, &policy, err) == -1 ||
	    store_site_list(a->st, &sites, &n, err) == -1)
		return -1;
	if ((a->index = api_index_new(&policy)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		if (api_index_set(a->index, sites[i].id, &sites[i]) == -1)
			goto nomem;
	free(sites);
	a->index_gen = *gen;
	return 0;
nomem:
	free(sites);
	api_index_drop(a);
	return model_error_set(err, MODEL_E_INTERNAL, NULL, "out of memory");
}

/*
 * Brings a->index to the model inside the open transaction after a change
 * of sites[0..n) (n == 0: the whole network), refuses the change when
 * check is set and it does not fit, and moves the store's generation on.
 * *gen is the generation the index then stands for once committed.
 */
static int
api_need_change(struct api *a, bool check, const uint64_t *sites, size_t n,
    uint64_t *gen, struct model_error *err)
{
	char buf[32];
	uint64_t cur = 0;
	size_t i;

	/* The generation is read and moved under the writers' lock: with
	 * several controllers on PostgreSQL (READ COMMITTED), two changes
	 * that both read generation G would both write G + 1, and each
	 * index would then trust G + 1 without the other's change.  Every
	 * topology write holds the lock already; this makes it certain. */
	if (store_lock_writers(a->st, err) == -1)
		return -1;
	if (n == 0) {
		api_index_drop(a);      /* the policy: counts change */
		if (api_index_gen(a, &cur, err) == -1 ||
		    (check && api_dry_compile_full(a, err) == -1))
			return -1;
	} else {
		if (api_index_current(a, &cur, err) == -1)
			return -1;
		a->index_txn = true;
		for (i = 0; i < n; i++) {
			struct model_site s;
			int rc;

			if (store_site_get(a->st, sites[i], &s, err) == 0)
				rc = api_index_set(a->index, sites[i], &s);
			else if (err->code == MODEL_E_NOT_FOUND)
				rc = api_index_set(a->index, sites[i], NULL);
			else {
				api_index_drop(a);
				return -1;
			}
			if (rc == -1) {
				api_index_drop(a);
				return model_error_set(err, MODEL_E_INTERNAL,
				    NULL, "out of memory");
			}
		}
		if (check && topo_need_check(api_index_need(a->index),
		    err) == -1) {
			api_index_drop(a);      /* it counted the refused change */
			return -1;
		}
	}
	*gen = cur + 1;
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)*gen);
	if (store_kv_set(a->st, API_INDEX_GEN, buf, err) == -1) {
		api_index_drop(a);
		return -1;
	}
	return 0;
}

/*
 * What a change needs after its store calls: API_F_COMPILE runs the
 * dry-run compile (changes that can make the topology need more tunnels,
 * /31s or VNIs); API_F_NOTIFY tells the daemon after the commit.
 */
#define API_F_NOTIFY  0x1
#define API_F_COMPILE (0x2 | API_F_NOTIFY)

/*
 * Finishes a change: the dry-run compile if asked, the audit entry (actor
 * = token name), commit, then the daemon's hook and the reply.  detail
 * and reply are stolen.  sites/n name the sites whose intent may change
 * (n == 0: the whole network).
 */
static void
api_commit(struct api_call *c, const char *what, json_t *detail,
    unsigned flags, const uint64_t *sites, size_t n, int status, json_t *reply)
{
	struct model_error err;
	uint64_t gen = 0;
	char *d;

	if ((flags & API_F_NOTIFY) != 0 && api_need_change(c->api,
	    (flags & API_F_COMPILE) == API_F_COMPILE, sites, n, &gen,
	    &err) == -1)
		goto fail;
	d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	if (d != NULL && strlen(d) > MODEL_DETAIL_MAX) {
		/* Keep the entry, drop the bulky request copy. */
		free(d);
		json_object_del(detail, "request");
		json_object_set_new(detail, "request_truncated", json_true());
		d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
	}
	if (d == NULL) {
		model_error_set(&err, MODEL_E_INTERNAL, NULL, "out of memory");
		goto fail;
	}
	if (store_audit_add(c->api->st, (int64_t)time(NULL), c->who.name,
	    what, d, &err) == -1) {
		free(d);
		goto fail;
	}
	free(d);
	json_decref(detail);
	if (store_commit(c->api->st, &err) == -1) {
		api_index_drop(c->api);
		json_decref(reply);
		api_model_error(c, &err);
		return;
	}
	if ((flags & API_F_NOTIFY) != 0 && c->api->index != NULL)
		c->api->index_gen = gen;
	c->api->index_txn = false;
	log_info("api: %s by %s", what, c->who.name);
	if ((flags & API_F_NOTIFY) != 0 &&
	    c->api->hooks.topology_changed != NULL)
		c->api->hooks.topology_changed(c->api->hooks.arg,
		    n > 0 ? sites : NULL, n);
	api_reply(c, status, reply);
	return;
fail:
	api_index_drop(c->api); /* it may hold what is rolled back */
	json_decref(detail);
	json_decref(reply);
	api_abort(c, &err);
}

/* The audit detail of a request: {"id": ..., "request": body}. */
static json_t *
api_detail(struct api_call *c, const char *idkey, uint64_t id)
{
	json_t *d = json_object();

	if (idkey != NULL)
		json_object_set_new(d, idkey, json_integer((json_int_t)id));
	if (c->body != NULL)
		json_object_set(d, "request", c->body);
	return d;
}

/* ------------------------------------------------------------------ */
/* Sites */

static const struct api_field api_link_fields[] = {
	{ "name", API_T_STRING, true },
	{ "address", API_T_STRING, true },
	{ "public_address", API_T_STRING, false },
	{ "public_port", API_T_INT, false },
};

/* Fills l from obj; partial (PATCH) leaves absent fields and the name. */
static int
api_link_from_json(struct api_call *c, const json_t *obj, const char *prefix,
    struct model_link *l, bool partial)
{
	static const struct api_field patch[] = {
		{ "address", API_T_STRING, false },
		{ "public_address", API_T_STRING, false },
		{ "public_port", API_T_INT, false },
	};
	uint64_t port = l->public_port;

	if (api_check_fields(c, obj, prefix, partial ? patch : api_link_fields,
	    partial ? ARRAY_SIZE(patch) : ARRAY_SIZE(api_link_fields)) == -1 ||
	    api_get_str(c, obj, prefix, "name", l->name,
	    sizeof(l->name)) == -1 ||
	    api_get_str(c, obj, prefix, "address", l->address,
	    sizeof(l->address)) == -1 ||
	    api_get_str(c, obj, prefix, "public_address", l->public_address,
	    sizeof(l->public_address)) == -1 ||
	    api_get_uint(c, obj, prefix, "public_port", 1, 65535, &port) == -1)
		return -1;
	l->public_port = (uint16_t)port;
	return 0;
}

/* Answers a failed model validation (rc == -1) with its code and field. */
static int
api_validated(struct api_call *c, int rc, struct model_error *err)
{
	if (rc == 0)
		return 0;
	api_model_error(c, err);
	return -1;
}

static int
api_site_from_json(struct api_call *c, struct model_site *s, bool partial)
{
	static const struct api_field create[] = {
		{ "name", API_T_STRING, true },
		{ "region", API_T_STRING, false },
		{ "role", API_T_STRING, true },
		{ "asn", API_T_INT, false },
		{ "backend", API_T_STRING, false },
		{ "internet_breakout", API_T_BOOL, false },
		{ "links", API_T_ARRAY, false },
		{ "lan_prefixes", API_T_ARRAY, false },
	};
	static const struct api_field patch[] = {
		{ "name", API_T_STRING, false },
		{ "region", API_T_STRING, false },
		{ "role", API_T_STRING, false },
		{ "asn", API_T_INT, false },
		{ "backend", API_T_STRING, false },
		{ "revoked", API_T_BOOL, false },
		{ "internet_breakout", API_T_BOOL, false },
		{ "links", API_T_ARRAY, false },
	};
	struct model_error err;
	const json_t *links, *l, *v;
	char prefix[32];
	uint64_t asn = s->asn;
	int role = (int)s->role, backend = (int)s->backend;
	size_t i;

	if (api_check_fields(c, c->body, "", partial ? patch : create,
	    partial ? ARRAY_SIZE(patch) : ARRAY_SIZE(create)) == -1 ||
	    api_get_str(c, c->body, "", "name", s->name,
	    sizeof(s->name)) == -1 ||
	    api_get_str(c, c->body, "", "region", s->region,
	    sizeof(s->region)) == -1 ||
	    api_get_enum(c, c->body, "role", api_parse_role, &role,
	    "hub, spoke, edge") == -1 ||
	    api_get_enum(c, c->body, "backend", api_parse_backend, &backend,
	    "any, xfrm, uesp, null") == -1 ||
	    api_get_uint(c, c->body, "", "asn", 1, UINT32_MAX, &asn) == -1)
		return -1;
	s->role = (enum model_role)role;
	s->backend = (enum model_backend)backend;
	s->asn = (uint32_t)asn;
	if ((v = json_object_get(c->body, "revoked")) != NULL) {
		/*
		 * One way only: the edge's certificate stays valid until it
		 * expires, so lifting a revocation would let it back in.
		 */
		if (s->revoked && !json_is_true(v)) {
			api_error(c, 409, "conflict", "revoked", "a revocation "
			    "cannot be undone; delete the site and create it "
			    "again");
			return -1;
		}
		s->revoked = json_is_true(v);
	}
	if ((v = json_object_get(c->body, "internet_breakout")) != NULL)
		s->internet_breakout = json_is_true(v);
	links = json_object_get(c->body, "links");
	if (links != NULL) {
		if (json_array_size(links) > MODEL_LINKS_MAX) {
			api_error(c, 400, "invalid", "links", "at most %d links",
			    MODEL_LINKS_MAX);
			return -1;
		}
		s->n_links = 0;
		json_array_foreach(links, i, l) {
			snprintf(prefix, sizeof(prefix), "links[%zu].", i);
			memset(&s->links[i], 0, sizeof(s->links[i]));
			if (api_link_from_json(c, l, prefix, &s->links[i],
			    false) == -1)
				return -1;
			s->n_links++;
		}
	}
	return api_validated(c, model_site_validate(s, &err), &err);
}

/*
 * A LAN prefix the site s may hold: nothing no LAN can route, and a
 * default route only on an internet breakout hub (an explicit flag, so
 * that 0.0.0.0/0 is never an accident on a spoke).
 */
static int
api_lan_ok(struct api_call *c, const struct model_site *s,
    const struct model_prefix *p, const char *field)
{
	struct model_error err;

	if (model_lan_prefix_check(p, field, &err) == -1) {
		api_model_error(c, &err);
		return -1;
	}
	if (p->len == 0 && !s->internet_breakout) {
		api_error(c, 400, "invalid", field, "a default route as a LAN "
		    "prefix means internet breakout: only on a hub with "
		    "\"internet_breakout\": true");
		return -1;
	}
	return 0;
}

/*
 * LAN prefixes of a create request for site s, parsed before the
 * transaction.
 */
static int
api_prefixes_from_json(struct api_call *c, const struct model_site *s,
    const json_t *arr, struct model_prefix **out, size_t *n)
{
	struct model_error err;
	char field[48];
	const json_t *v;
	size_t i;

	*out = NULL;
	*n = 0;
	if (arr == NULL)
		return 0;
	if (json_array_size(arr) > MODEL_PREFIXES_MAX) {
		api_error(c, 400, "invalid", "lan_prefixes",
		    "at most %d prefixes", MODEL_PREFIXES_MAX);
		return -1;
	}
	*out = calloc(json_array_size(arr) + 1, sizeof(**out));
	if (*out == NULL) {
		api_error(c, 500, "internal", NULL, "out of memory");
		return -1;
	}
	json_array_foreach(arr, i, v) {
		snprintf(field, sizeof(field), "lan_prefixes[%zu]", i);
		if (!json_is_string(v)) {
			api_error(c, 400, "wrong_type", field,
			    "%s must be a string", field);
			goto fail;
		}
		if (json_string_length(v) > MODEL_CIDR_MAX) {
			api_error(c, 400, "invalid", field,
			    "%s is not a CIDR prefix", field);
			goto fail;
		}
		if (model_prefix_parse(json_string_value(v), false,
		    &(*out)[i], field, &err) == -1) {
			api_model_error(c, &err);
			goto fail;
		}
		if (api_lan_ok(c, s, &(*out)[i], field) == -1)
			goto fail;
	}
	*n = json_array_size(arr);
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

/*
 * Inside a change's transaction: refuses (rolled back, answered) a LAN
 * prefix inside the tunnel pool, whose /31s the compiler hands out.
 */
static int
api_pool_clear(struct api_call *c, const struct model_prefix *p,
    const char *field)
{
	struct model_policy pol;
	struct model_error err;
	char a[MODEL_CIDR_MAX + 1], b[MODEL_CIDR_MAX + 1];

	if (store_policy_get(c->api->st, &pol, &err) == -1) {
		api_abort(c, &err);
		return -1;
	}
	if (p->len > 0 && model_prefix_overlap(p, &pol.pool)) {
		model_prefix_format(p, a, sizeof(a));
		model_prefix_format(&pol.pool, b, sizeof(b));
		model_error_set(&err, MODEL_E_OVERLAP, field, "%s overlaps "
		    "the tunnel pool %s", a, b);
		api_abort(c, &err);
		return -1;
	}
	return 0;
}

/* Where a link's tunnels end: its public address and port. */
static void
api_endpoint(const struct model_link *l, const char **addr, uint16_t *port)
{
	*addr = l->public_address[0] != '\0' ? l->public_address : l->address;
	*port = l->public_port != 0 ? l->public_port :
	    (uint16_t)MODEL_PORT_DEFAULT;
}

/*
 * Inside a change's transaction: refuses (rolled back, answered) links of
 * site site_id whose endpoint (public address and port) another site
 * already uses: a tunnel between the two would run from one address to
 * itself.  array: the links came as the request's "links" array (the
 * field is then "links[i].address"), else as one link ("address").
 */
/* Does a live site other than site_id, among sites[0..ns), end a link at
 * (addr, port)?  Its index and link, or false. */
static bool
api_endpoint_user(const struct model_site *sites, size_t ns, uint64_t site_id,
    const char *a, uint16_t pa, size_t *k, size_t *l)
{
	const char *b;
	uint16_t pb;

	for (*k = 0; *k < ns; (*k)++) {
		/* A revoked site has no tunnels left to clash. */
		if (sites[*k].id == site_id || sites[*k].revoked)
			continue;
		for (*l = 0; *l < sites[*k].n_links; (*l)++) {
			api_endpoint(&sites[*k].links[*l], &b, &pb);
			if (pa == pb && model_address_equal(a, b))
				return true;
		}
	}
	return false;
}

/*
 * The index (api_index_endpoint) answers most links without reading other
 * sites: no user, or one candidate confirmed from the store.  Only an
 * unconfirmed hit reads every site, as the check did before the index.
 */
static int
api_endpoints_free(struct api_call *c, uint64_t site_id,
    const struct model_link *links, size_t n, bool array)
{
	struct model_site *sites = NULL, cand;
	struct model_error err;
	const char *a, *which;
	uint16_t pa;
	uint64_t gen, who;
	size_t ns = 0, i, k, l;
	char field[64];
	bool listed = false;

	if (api_index_current(c->api, &gen, &err) == -1) {
		api_abort(c, &err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const struct model_site *hit = NULL;

		api_endpoint(&links[i], &a, &pa);
		switch (api_index_endpoint(c->api->index, a, pa, site_id,
		    &who)) {
		case 0:
			continue;
		case 1:
			if (store_site_get(c->api->st, who, &cand,
			    &err) == 0 && api_endpoint_user(&cand, 1, site_id,
			    a, pa, &k, &l)) {
				hit = &cand;
				break;
			}
			/* FALLTHROUGH */
		default:
			if (!listed && store_site_list(c->api->st, &sites, &ns,
			    &err) == -1) {
				api_abort(c, &err);
				return -1;
			}
			listed = true;
			if (api_endpoint_user(sites, ns, site_id, a, pa, &k,
			    &l))
				hit = &sites[k];
			break;
		}
		if (hit == NULL)
			continue;
		which = links[i].public_address[0] != '\0' ?
		    "public_address" : "address";
		if (array)
			snprintf(field, sizeof(field), "links[%zu].%s", i,
			    which);
		else
			snprintf(field, sizeof(field), "%s", which);
		model_error_set(&err, MODEL_E_DUPLICATE, field,
		    "%s port %u is already the endpoint of link %s of site %"
		    PRIu64, a, pa, hit->links[l].name, hit->id);
		free(sites);
		api_abort(c, &err);
		return -1;
	}
	free(sites);
	return 0;
}

/* Does site id hold a default route (internet breakout)? -1: answered. */
static int
api_site_has_default(struct api_call *c, uint64_t id, bool *has)
{
	struct model_site_prefix *p = NULL;
	struct model_error err;
	size_t n = 0, i;

	*has = false;
	if (store_prefix_list(c->api->st, id, &p, &n, &err) == -1) {
		api_model_error(c, &err);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (p[i].prefix.len == 0)
			*has = true;
	free(p);
	return 0;
}

static int
api_site_load(struct api_call *c, uint64_t id, struct model_site *s)
{
	struct model_error err;

	if (store_site_get(c->api->st, id, s, &err) == -1) {
		api_model_error(c, &err);
		return -1;
	}
	return 0;
}

static void
api_sites_list(struct api_call *c)
{
	struct model_site *sites = NULL;
	struct model_site_prefix *pfx = NULL;
	struct model_error err;
	const char *name = http_request_query(c->req, "name");
	size_t n = 0, np = 0, i;
	json_t *arr;

	if (store_site_list(c->api->st, &sites, &n, &err) == -1 ||
	    store_prefix_list(c->api->st, 0, &pfx, &np, &err) == -1) {
		free(sites);
		api_model_error(c, &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++) {
		if (name != NULL && strcmp(name, sites[i].name) != 0)
			continue;
		json_array_append_new(arr, api_site_json(&sites[i], pfx, np));
	}
	free(sites);
	free(pfx);
	api_reply(c, 200, json_pack("{s:o}", "sites", arr));
}

static void
api_site_reply(struct api_call *c, int status, uint64_t id)
{
	struct model_site s;
	struct model_site_prefix *pfx = NULL;
	struct model_error err;
	size_t np = 0;

	if (api_site_load(c, id, &s) == -1)
		return;
	if (store_prefix_list(c->api->st, id, &pfx, &np, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	api_reply(c, status, api_site_json(&s, pfx, np));
	free(pfx);
}

static void
api_site_get(struct api_call *c)
{
	api_site_reply(c, 200, c->id);
}

static void
api_site_create(struct api_call *c)
{
	struct model_site s;
	struct model_prefix *pfx = NULL;
	struct model_site_prefix *sp = NULL;
	struct model_error err;
	size_t np = 0, i;
	json_t *reply;

	memset(&s, 0, sizeof(s));
	s.backend = MODEL_BACKEND_ANY;
	if (api_site_from_json(c, &s, false) == -1 ||
	    api_prefixes_from_json(c, &s, json_object_get(c->body,
	    "lan_prefixes"), &pfx, &np) == -1)
		return;
	if (api_begin(c) == -1)
		goto out;
	if (store_site_create(c->api->st, &s, &err) == -1) {
		api_abort(c, &err);
		goto out;
	}
	if (api_endpoints_free(c, s.id, s.links, s.n_links, true) == -1)
		goto out;
	for (i = 0; i < np; i++) {
		char field[48];

		snprintf(field, sizeof(field), "lan_prefixes[%zu]", i);
		if (api_pool_clear(c, &pfx[i], field) == -1)
			goto out;
		if (store_prefix_add(c->api->st, s.id, &pfx[i], &err) == -1) {
			/* Name the element of the request that clashed. */
			if (strcmp(err.field, "prefix") == 0 ||
			    err.field[0] == '\0')
				snprintf(err.field, sizeof(err.field),
				    "lan_prefixes[%zu]", i);
			api_abort(c, &err);
			goto out;
		}
	}
	/* Re-read: the store assigned the id and maybe the ASN. */
	if (store_prefix_list(c->api->st, s.id, &sp, &np, &err) == -1) {
		api_abort(c, &err);
		goto out;
	}
	reply = api_site_json(&s, sp, np);
	free(sp);
	api_commit(c, "site.create", api_detail(c, "site_id", s.id),
	    API_F_COMPILE, &s.id, 1, 201, reply);
out:
	free(pfx);
}

static void
api_site_patch(struct api_call *c)
{
	struct model_site s;
	struct model_site_prefix *sp = NULL;
	struct model_error err;
	size_t np = 0;
	json_t *reply;

	bool had_breakout, has_default;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	had_breakout = s.internet_breakout;
	if (api_site_from_json(c, &s, true) == -1)
		return;
	if (api_begin(c) == -1)
		return;
	/* A breakout hub keeps the flag while it holds a default route. */
	if (had_breakout && !s.internet_breakout) {
		if (api_site_has_default(c, c->id, &has_default) == -1) {
			store_rollback(c->api->st);
			return;
		}
		if (has_default) {
			store_rollback(c->api->st);
			api_error(c, 409, "conflict", "internet_breakout",
			    "site %" PRIu64 " holds a default route: delete it "
			    "first", c->id);
			return;
		}
	}
	if (json_object_get(c->body, "links") != NULL &&
	    api_endpoints_free(c, c->id, s.links, s.n_links, true) == -1)
		return;
	if (store_site_update(c->api->st, &s, &err) == -1 ||
	    store_site_get(c->api->st, c->id, &s, &err) == -1 ||
	    store_prefix_list(c->api->st, c->id, &sp, &np, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	reply = api_site_json(&s, sp, np);
	free(sp);
	api_commit(c, "site.update", api_detail(c, "site_id", c->id),
	    API_F_COMPILE, &c->id, 1, 200, reply);
}

static void
api_site_delete(struct api_call *c)
{
	struct model_site s;
	struct model_error err;
	json_t *d;

	if (api_site_load(c, c->id, &s) == -1 || api_begin(c) == -1)
		return;
	if (store_site_delete(c->api->st, c->id, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	d = api_detail(c, "site_id", c->id);
	json_object_set_new(d, "name", json_string(s.name));
	api_commit(c, "site.delete", d, API_F_NOTIFY, &c->id, 1, 204, NULL);
}

/* ------------------------------------------------------------------ */
/* Links */

static void
api_links_list(struct api_call *c)
{
	struct model_site s;
	json_t *arr;
	size_t i;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	arr = json_array();
	for (i = 0; i < s.n_links; i++)
		json_array_append_new(arr, api_link_json(&s.links[i]));
	api_reply(c, 200, json_pack("{s:o}", "links", arr));
}

/* The link {name} of site {id}, or a 404 reply. */
static int
api_link_load(struct api_call *c, struct model_site *s, struct model_link *l)
{
	int i;

	if (api_site_load(c, c->id, s) == -1)
		return -1;
	i = model_site_find_link(s, c->name);
	if (i < 0) {
		char q[API_QUOTE_BUF];

		api_error(c, 404, "not_found", "name", "site %" PRIu64
		    " has no link named '%s'", c->id,
		    api_clip(q, sizeof(q), c->name, API_QUOTE_CHARS));
		return -1;
	}
	*l = s->links[i];
	return 0;
}

static void
api_link_get(struct api_call *c)
{
	struct model_site s;
	struct model_link l;

	if (api_link_load(c, &s, &l) == 0)
		api_reply(c, 200, api_link_json(&l));
}

static void
api_link_write(struct api_call *c, struct model_link *l, bool add)
{
	struct model_error err;
	int rc;

	if (api_validated(c, model_link_validate(l, &err), &err) == -1 ||
	    api_begin(c) == -1 ||
	    api_endpoints_free(c, c->id, l, 1, false) == -1)
		return;
	rc = add ? store_link_add(c->api->st, c->id, l, &err) :
	    store_link_update(c->api->st, c->id, l, &err);
	if (rc == -1) {
		api_abort(c, &err);
		return;
	}
	api_commit(c, add ? "link.create" : "link.update",
	    api_detail(c, "site_id", c->id), API_F_COMPILE, &c->id, 1,
	    add ? 201 : 200, api_link_json(l));
}

static void
api_link_create(struct api_call *c)
{
	struct model_site s;
	struct model_link l;

	memset(&l, 0, sizeof(l));
	if (api_site_load(c, c->id, &s) == -1 ||
	    api_link_from_json(c, c->body, "", &l, false) == -1)
		return;
	api_link_write(c, &l, true);
}

static void
api_link_patch(struct api_call *c)
{
	struct model_site s;
	struct model_link l;

	if (api_link_load(c, &s, &l) == -1 ||
	    api_link_from_json(c, c->body, "", &l, true) == -1)
		return;
	api_link_write(c, &l, false);
}

static void
api_link_delete(struct api_call *c)
{
	struct model_site s;
	struct model_link l;
	struct model_error err;
	json_t *d;

	if (api_link_load(c, &s, &l) == -1 || api_begin(c) == -1)
		return;
	if (store_link_delete(c->api->st, c->id, l.name, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	d = api_detail(c, "site_id", c->id);
	json_object_set_new(d, "link", json_string(l.name));
	api_commit(c, "link.delete", d, API_F_NOTIFY, &c->id, 1, 204, NULL);
}

/* ------------------------------------------------------------------ */
/* LAN prefixes */

static void
api_prefixes_list(struct api_call *c)
{
	struct model_site s;
	struct model_site_prefix *p = NULL;
	struct model_error err;
	char buf[MODEL_CIDR_MAX + 1];
	size_t n = 0, i;
	json_t *arr;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	if (store_prefix_list(c->api->st, c->id, &p, &n, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++) {
		model_prefix_format(&p[i].prefix, buf, sizeof(buf));
		json_array_append_new(arr, json_string(buf));
	}
	free(p);
	api_reply(c, 200, json_pack("{s:o}", "prefixes", arr));
}

static int
api_prefix_arg(struct api_call *c, const char *text, const char *field,
    struct model_prefix *p)
{
	struct model_error err;

	if (strlen(text) > MODEL_CIDR_MAX) {
		api_error(c, 400, "invalid", field, "%s is not a CIDR prefix",
		    field);
		return -1;
	}
	return api_validated(c, model_prefix_parse(text, false, p, field,
	    &err), &err);
}

static void
api_prefix_change(struct api_call *c, const char *text, bool add)
{
	struct model_prefix p;
	struct model_site s;
	struct model_error err;
	char buf[MODEL_CIDR_MAX + 1];
	json_t *d;
	int rc;

	if (api_site_load(c, c->id, &s) == -1 ||
	    api_prefix_arg(c, text, "prefix", &p) == -1 ||
	    (add && api_lan_ok(c, &s, &p, "prefix") == -1) ||
	    api_begin(c) == -1 ||
	    (add && api_pool_clear(c, &p, "prefix") == -1))
		return;
	rc = add ? store_prefix_add(c->api->st, c->id, &p, &err) :
	    store_prefix_delete(c->api->st, c->id, &p, &err);
	if (rc == -1) {
		api_abort(c, &err);
		return;
	}
	model_prefix_format(&p, buf, sizeof(buf));
	d = api_detail(c, "site_id", c->id);
	json_object_set_new(d, "prefix", json_string(buf));
	api_commit(c, add ? "prefix.add" : "prefix.delete", d, API_F_NOTIFY,
	    &c->id, 1, add ? 201 : 200, json_pack("{s:I, s:s}", "site_id",
	    (json_int_t)c->id, "prefix", buf));
}

static void
api_prefix_add(struct api_call *c)
{
	static const struct api_field spec[] = {
		{ "prefix", API_T_STRING, true },
	};

	if (api_check_fields(c, c->body, "", spec, ARRAY_SIZE(spec)) == -1)
		return;
	api_prefix_change(c, json_string_value(json_object_get(c->body,
	    "prefix")), true);
}

static void
api_prefix_delete(struct api_call *c)
{
	const char *p = http_request_query(c->req, "prefix");

	if (p == NULL) {
		api_error(c, 400, "missing_field", "prefix",
		    "query argument prefix is required");
		return;
	}
	api_prefix_change(c, p, false);
}

/* ------------------------------------------------------------------ */
/* Enrollment tokens */

/* The rest of an edge's configuration, for the enrollment dialog. */
static json_t *
api_edge_config(const struct api *a)
{
	json_t *j = json_object();

	if (a->edge_session_port != 0)
		json_object_set_new(j, "controller_port",
		    json_integer(a->edge_session_port));
	if (a->edge_enroll_port != 0)
		json_object_set_new(j, "enroll_port",
		    json_integer(a->edge_enroll_port));
	if (a->edge_controller_name[0] != '\0')
		json_object_set_new(j, "controller_name",
		    json_string(a->edge_controller_name));
	if (a->edge_ca_pin[0] != '\0')
		json_object_set_new(j, "ca_pin", json_string(a->edge_ca_pin));
	return j;
}

static void
api_site_token(struct api_call *c)
{
	struct model_site s;
	struct model_error err;
	char token[STORE_TOKEN_LEN + 1];
	int64_t now = (int64_t)time(NULL), expires;
	json_t *reply;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	if (s.revoked) {
		api_error(c, 409, "conflict", NULL, "site %" PRIu64
		    " is revoked", c->id);
		return;
	}
	if (api_begin(c) == -1)
		return;
	if (store_enroll_token_create(c->api->st, c->id, now,
	    c->api->enroll_ttl, token, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	expires = now + c->api->enroll_ttl;
	reply = json_pack("{s:I, s:s, s:I, s:o}", "site_id", (json_int_t)c->id,
	    "token", token, "expires_at", (json_int_t)expires,
	    "edge_config", api_edge_config(c->api));
	util_wipe(token, sizeof(token));
	/* The token is only in the reply; the audit entry never holds it. */
	api_commit(c, "site.token", api_detail(c, "site_id", c->id), 0,
	    NULL, 0, 201, reply);
}

/* ------------------------------------------------------------------ */
/* Policy and crypto profile */

static void
api_policy_get(struct api_call *c)
{
	struct model_policy p;
	struct model_error err;

	if (store_policy_get(c->api->st, &p, &err) == -1)
		api_model_error(c, &err);
	else
		api_reply(c, 200, api_policy_json(&p));
}

static int
api_policy_pairs(struct api_call *c, const json_t *arr, struct model_policy *p)
{
	char field[48];
	const json_t *pair;
	size_t i;

	if (json_array_size(arr) > MODEL_PAIRS_MAX) {
		api_error(c, 400, "invalid", "pairs", "at most %d pairs",
		    MODEL_PAIRS_MAX);
		return -1;
	}
	p->n_pairs = 0;
	json_array_foreach(arr, i, pair) {
		snprintf(field, sizeof(field), "pairs[%zu]", i);
		if (!json_is_array(pair) || json_array_size(pair) != 2 ||
		    !json_is_string(json_array_get(pair, 0)) ||
		    !json_is_string(json_array_get(pair, 1))) {
			api_error(c, 400, "wrong_type", field,
			    "%s must be an array of two colour names", field);
			return -1;
		}
		if (util_strcpy(p->pairs[i].a, sizeof(p->pairs[i].a),
		    json_string_value(json_array_get(pair, 0))) == -1 ||
		    util_strcpy(p->pairs[i].b, sizeof(p->pairs[i].b),
		    json_string_value(json_array_get(pair, 1))) == -1 ||
		    !model_link_name_valid(p->pairs[i].a) ||
		    !model_link_name_valid(p->pairs[i].b)) {
			api_error(c, 400, "invalid", field,
			    "%s must name two link colours", field);
			return -1;
		}
		p->n_pairs++;
	}
	return 0;
}

/* The model names some policy fields differently from the API's JSON. */
static void
api_policy_field(struct model_error *err)
{
	static const char *const map[][2] = {
		{ "topology", "mode" },
		{ "vni", "vni_min" },
		{ "asn_range", "asn_min" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(map); i++)
		if (strcmp(err->field, map[i][0]) == 0)
			util_strcpy(err->field, sizeof(err->field), map[i][1]);
}

/*
 * Inside the policy change's transaction: refuses (rolled back,
 * answered) a tunnel pool that overlaps a site's LAN prefix.
 */
static int
api_pool_free_of_lans(struct api_call *c, const struct model_prefix *pool)
{
	struct model_site_prefix *p = NULL;
	struct model_error err;
	char a[MODEL_CIDR_MAX + 1], b[MODEL_CIDR_MAX + 1];
	size_t n = 0, i;

	if (store_prefix_list(c->api->st, 0, &p, &n, &err) == -1) {
		api_abort(c, &err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (p[i].prefix.len == 0 ||
		    !model_prefix_overlap(&p[i].prefix, pool))
			continue;
		model_prefix_format(pool, a, sizeof(a));
		model_prefix_format(&p[i].prefix, b, sizeof(b));
		model_error_set(&err, MODEL_E_OVERLAP, "pool", "pool %s "
		    "overlaps LAN prefix %s of site %" PRIu64, a, b,
		    p[i].site_id);
		free(p);
		api_abort(c, &err);
		return -1;
	}
	free(p);
	return 0;
}

static void
api_policy_put(struct api_call *c)
{
	static const struct api_field spec[] = {
		{ "mode", API_T_STRING, false },
		{ "pairing", API_T_STRING, false },
		{ "pairs", API_T_ARRAY, false },
		{ "pool", API_T_STRING, false },
		{ "encap", API_T_STRING, false },
		{ "vni_min", API_T_INT, false },
		{ "vni_max", API_T_INT, false },
		{ "asn_min", API_T_INT, false },
		{ "asn_max", API_T_INT, false },
		{ "mtu", API_T_INT, false },
		{ "bgp_hold_time", API_T_INT, false },
		{ "bgp_keepalive", API_T_INT, false },
		{ "bgp_bfd", API_T_BOOL, false },
	};
	struct model_policy p;
	struct model_prefix old_pool;
	struct model_error err;
	const json_t *v;
	uint64_t vmin, vmax, amin, amax, mtu, hold, ka;
	int mode, pairing, encap;

	if (api_check_fields(c, c->body, "", spec, ARRAY_SIZE(spec)) == -1)
		return;
	if (store_policy_get(c->api->st, &p, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	old_pool = p.pool;
	mode = (int)p.topology;
	pairing = (int)p.pairing;
	encap = (int)p.encap;
	vmin = p.vni_min;
	vmax = p.vni_max;
	amin = p.asn_min;
	amax = p.asn_max;
	mtu = p.mtu;
	hold = p.bgp_hold_time;
	ka = p.bgp_keepalive;
	if (api_get_enum(c, c->body, "mode", api_parse_topology, &mode,
	    "full-mesh, hub-and-spoke, regional-mesh") == -1 ||
	    api_get_enum(c, c->body, "pairing", api_parse_pairing, &pairing,
	    "same-colour, list, any") == -1 ||
	    api_get_enum(c, c->body, "encap", api_parse_encap, &encap,
	    "gre, vxlan") == -1 ||
	    api_get_uint(c, c->body, "", "vni_min", 1, MODEL_VNI_MAX,
	    &vmin) == -1 ||
	    api_get_uint(c, c->body, "", "vni_max", 1, MODEL_VNI_MAX,
	    &vmax) == -1 ||
	    api_get_uint(c, c->body, "", "asn_min", 1, UINT32_MAX,
	    &amin) == -1 ||
	    api_get_uint(c, c->body, "", "asn_max", 1, UINT32_MAX,
	    &amax) == -1 ||
	    api_get_uint(c, c->body, "", "mtu", 0, 65535, &mtu) == -1 ||
	    api_get_uint(c, c->body, "", "bgp_hold_time", 0, 65535,
	    &hold) == -1 ||
	    api_get_uint(c, c->body, "", "bgp_keepalive", 0, 65535,
	    &ka) == -1)
		return;
	p.topology = (enum model_topology)mode;
	p.encap = (enum model_encap)encap;
	p.vni_min = (uint32_t)vmin;
	p.vni_max = (uint32_t)vmax;
	p.asn_min = (uint32_t)amin;
	p.asn_max = (uint32_t)amax;
	p.mtu = (uint32_t)mtu;
	p.bgp_hold_time = (uint32_t)hold;
	p.bgp_keepalive = (uint32_t)ka;
	if ((v = json_object_get(c->body, "bgp_bfd")) != NULL)
		p.bgp_bfd = json_is_true(v);
	if ((v = json_object_get(c->body, "pairs")) != NULL) {
		if (api_policy_pairs(c, v, &p) == -1)
			return;
		/* Pairs without an explicit pairing mean "only these". */
		if (json_object_get(c->body, "pairing") == NULL)
			pairing = MODEL_PAIR_LIST;
	}
	p.pairing = (enum model_pairing)pairing;
	if ((v = json_object_get(c->body, "pool")) != NULL &&
	    api_prefix_arg(c, json_string_value(v), "pool", &p.pool) == -1)
		return;
	if (model_policy_validate(&p, &err) == -1) {
		api_policy_field(&err);
		api_model_error(c, &err);
		return;
	}
	/* Only a moved pool is checked: older data stays editable. */
	if (api_begin(c) == -1 ||
	    (memcmp(&old_pool, &p.pool, sizeof(p.pool)) != 0 &&
	    api_pool_free_of_lans(c, &p.pool) == -1))
		return;
	if (store_policy_set(c->api->st, &p, &err) == -1) {
		api_policy_field(&err);
		api_abort(c, &err);
		return;
	}
	api_commit(c, "policy.update", api_detail(c, NULL, 0), API_F_COMPILE,
	    NULL, 0, 200, api_policy_json(&p));
}

static void
api_crypto_get(struct api_call *c)
{
	struct model_crypto cr;
	struct model_error err;

	if (store_crypto_get(c->api->st, &cr, &err) == -1)
		api_model_error(c, &err);
	else
		api_reply(c, 200, api_crypto_json(&cr));
}

static void
api_crypto_put(struct api_call *c)
{
	static const struct api_field spec[] = {
		{ "cipher", API_T_STRING, false },
		{ "rekey_seconds", API_T_INT, false },
		{ "replay_window", API_T_INT, false },
		{ "rekey_bytes", API_T_INT, false },
		{ "rekey_packets", API_T_INT, false },
	};
	struct model_crypto cr;
	struct model_error err;
	uint64_t rekey, replay, bytes, packets;
	int cipher;

	if (api_check_fields(c, c->body, "", spec, ARRAY_SIZE(spec)) == -1)
		return;
	if (store_crypto_get(c->api->st, &cr, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	cipher = (int)cr.cipher;
	rekey = cr.rekey_seconds;
	replay = cr.replay_window;
	bytes = cr.rekey_bytes;
	packets = cr.rekey_packets;
	if (api_get_enum(c, c->body, "cipher", api_parse_cipher, &cipher,
	    "aes-gcm-128, aes-gcm-256") == -1 ||
	    api_get_uint(c, c->body, "", "rekey_seconds", 1, UINT32_MAX,
	    &rekey) == -1 ||
	    api_get_uint(c, c->body, "", "replay_window", 1, UINT32_MAX,
	    &replay) == -1 ||
	    api_get_uint(c, c->body, "", "rekey_bytes", 0, INT64_MAX,
	    &bytes) == -1 ||
	    api_get_uint(c, c->body, "", "rekey_packets", 0, INT64_MAX,
	    &packets) == -1)
		return;
	cr.cipher = (enum model_cipher)cipher;
	cr.rekey_seconds = (uint32_t)rekey;
	cr.replay_window = (uint32_t)replay;
	cr.rekey_bytes = bytes;
	cr.rekey_packets = packets;
	if (api_validated(c, model_crypto_validate(&cr, &err), &err) == -1 ||
	    api_begin(c) == -1)
		return;
	if (store_crypto_set(c->api->st, &cr, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	api_commit(c, "crypto.update", api_detail(c, NULL, 0), API_F_NOTIFY,
	    NULL, 0, 200, api_crypto_json(&cr));
}

/* ------------------------------------------------------------------ */
/* Tunnels, edges, events (read-only) */

static int
api_query_id(struct api_call *c, const char *name, uint64_t *out)
{
	const char *v = http_request_query(c->req, name);

	if (v == NULL)
		return 0;
	if (v[0] == '0' || util_parse_u64(v, 1, INT64_MAX, out) == -1) {
		api_error(c, 400, "invalid", name, "%s must be a positive "
		    "integer", name);
		return -1;
	}
	return 0;
}

static void
api_tunnels_list(struct api_call *c)
{
	struct model_tunnel *t = NULL;
	struct model_error err;
	struct model_policy pol;
	uint64_t site = 0, next;
	size_t n = 0, i;
	json_t *arr;

	memset(&pol, 0, sizeof(pol));

	if (api_query_id(c, "site", &site) == -1)
		return;
	if ((site == 0 ? store_tunnel_list(c->api->st, &t, &n, &next, &err) :
	    store_tunnel_list_site(c->api->st, site, &t, &n, &err)) == -1) {
		api_model_error(c, &err);
		return;
	}
	if (c->api->pool6.family == 6 &&
	    store_policy_get(c->api->st, &pol, &err) == -1)
		pol.pool.family = 0;	/* no IPv6 pairs shown */
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, api_tunnel_json(&t[i], &pol.pool,
		    &c->api->pool6));
	free(t);
	api_reply(c, 200, json_pack("{s:o}", "tunnels", arr));
}

/*
 * Operator-requested rekey.  Nothing in the model changes: the audit
 * entry is the only write, then the daemon's loop starts the rekey with
 * its own epoch bookkeeping (a direction already rekeying keeps going).
 */
static void
api_rekey_finish(struct api_call *c, bool site, uint64_t a, uint64_t b)
{
	json_t *reply;

	if (c->api->hooks.rekey == NULL) {
		api_error(c, 503, "unavailable", NULL, "no session layer to "
		    "order a rekey");
		return;
	}
	if (api_begin(c) == -1)
		return;
	reply = site ? json_pack("{s:I, s:s}", "site_id", (json_int_t)c->id,
	    "status", "rekey requested") :
	    json_pack("{s:I, s:[I,I], s:s}", "tunnel_id", (json_int_t)c->id,
	    "sites", (json_int_t)a, (json_int_t)b, "status", "rekey requested");
	api_commit(c, site ? "site.rekey" : "tunnel.rekey",
	    api_detail(c, site ? "site_id" : "tunnel_id", c->id), 0, NULL, 0,
	    202, reply);
	if (c->resp->status == 202)
		c->api->hooks.rekey(c->api->hooks.arg, site, c->id);
}

static void
api_tunnel_rekey(struct api_call *c)
{
	struct model_tunnel t;
	struct model_error err;

	/* By primary key: one row, not every tunnel of the network. */
	if (store_tunnel_get(c->api->st, c->id, &t, &err) == -1) {
		if (err.code == MODEL_E_NOT_FOUND)
			api_error(c, 404, "not_found", NULL, "no tunnel %"
			    PRIu64, c->id);
		else
			api_model_error(c, &err);
		return;
	}
	api_rekey_finish(c, false, t.site_a, t.site_b);
}

static void
api_site_rekey(struct api_call *c)
{
	struct model_site s;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	if (s.revoked) {
		api_error(c, 409, "conflict", NULL, "site %" PRIu64
		    " is revoked", c->id);
		return;
	}
	api_rekey_finish(c, true, 0, 0);
}

/* a NULL (the event stream): last_failure is left out. */
static json_t *
api_edge_json(const struct api *a, const struct model_site *s,
    const struct model_edge_state *e)
{
	char hash[2 * MODEL_HASH_MAX + 1];
	struct model_ack_failure f;
	json_t *j = json_object();

	json_object_set_new(j, "site_id", json_integer((json_int_t)s->id));
	json_object_set_new(j, "site_name", json_string(s->name));
	json_object_set_new(j, "revoked", json_boolean(s->revoked));
	json_object_set_new(j, "connected", json_boolean(e->connected));
	json_object_set_new(j, "connected_at", e->connected_at != 0 ?
	    json_integer(e->connected_at) : json_null());
	json_object_set_new(j, "software_version",
	    e->software_version[0] != '\0' ?
	    json_string(e->software_version) : json_null());
	json_object_set_new(j, "intent_version",
	    json_u64(e->intent_version));
	json_object_set_new(j, "applied_version",
	    json_u64(e->applied_version));
	json_object_set_new(j, "converged", json_boolean(
	    e->intent_version > 0 &&
	    e->applied_version == e->intent_version));
	util_hex(e->conv_hash, e->conv_hash_len <= MODEL_HASH_MAX ?
	    e->conv_hash_len : MODEL_HASH_MAX, hash);
	json_object_set_new(j, "convergence_hash", e->conv_hash_len > 0 ?
	    json_string(hash) : json_null());
	json_object_set_new(j, "last_status_at", e->status_at != 0 ?
	    json_integer(e->status_at) : json_null());
	if (a != NULL) {
		/* This controller's memory when it has the edge's failure,
		 * else (or when the stored one is newer: the edge failed
		 * again on another controller) the stored one. */
		bool mem = a->hooks.last_failure != NULL &&
		    a->hooks.last_failure(a->hooks.arg, s->id, &f);

		if (e->failure.version > 0 && (!mem || e->failure.at > f.at ||
		    (e->failure.at == f.at && e->failure.version > f.version))) {
			f = e->failure;
			mem = true;
		}
		json_object_set_new(j, "last_failure", mem ?
		    json_pack("{s:o,s:s,s:I}", "version", json_u64(f.version),
		    "reason", f.reason, "at", (json_int_t)f.at) : json_null());
	}
	return j;
}

static void
api_edges_list(struct api_call *c)
{
	struct model_site *sites = NULL;
	struct model_edge_state *edges = NULL, zero;
	struct model_error err;
	size_t ns = 0, ne = 0, i, k = 0;
	json_t *arr;

	if (store_site_list(c->api->st, &sites, &ns, &err) == -1 ||
	    store_edge_list(c->api->st, &edges, &ne, &err) == -1) {
		free(sites);
		api_model_error(c, &err);
		return;
	}
	memset(&zero, 0, sizeof(zero));
	arr = json_array();
	/* Both lists are sorted by site id: merge them. */
	for (i = 0; i < ns; i++) {
		while (k < ne && edges[k].site_id < sites[i].id)
			k++;
		json_array_append_new(arr, api_edge_json(c->api, &sites[i],
		    k < ne && edges[k].site_id == sites[i].id ? &edges[k] :
		    &zero));
	}
	for (i = 0; i < ne; i++)
		model_edge_state_clear(&edges[i]);
	free(edges);
	free(sites);
	api_reply(c, 200, json_pack("{s:o}", "edges", arr));
}

/* GET /api/v1/edges/{id}: the list's fields and the latest status. */
static json_t *
api_edge_full_json(const struct api *a, const struct model_site *s,
    const struct model_edge_state *e)
{
	json_t *j = api_edge_json(a, s, e), *status = NULL;

	/* The daemon stores the latest status as JSON text; show it. */
	if (e->status != NULL && e->status_len > 0)
		status = json_loadb((const char *)e->status, e->status_len, 0,
		    NULL);
	json_object_set_new(j, "status", status != NULL ? status : json_null());
	return j;
}

static void
api_edge_get(struct api_call *c)
{
	struct model_site s;
	struct model_edge_state e;
	struct model_error err;
	json_t *j;

	if (api_site_load(c, c->id, &s) == -1)
		return;
	if (store_edge_get(c->api->st, c->id, &e, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	j = api_edge_full_json(c->api, &s, &e);
	model_edge_state_clear(&e);
	api_reply(c, 200, j);
}

/* One audit entry as GET /api/v1/events shows it. */
static json_t *
api_audit_json(const struct model_audit *ev)
{
	json_t *d = ev->detail != NULL ? json_loads(ev->detail, 0, NULL) : NULL;

	return json_pack("{s:I, s:I, s:s, s:s, s:o}", "id", (json_int_t)ev->id,
	    "at", (json_int_t)ev->at, "actor", ev->who, "action", ev->what,
	    "detail", d != NULL ? d : json_null());
}

static void
api_events_list(struct api_call *c)
{
	struct model_audit *ev = NULL;
	struct model_error err;
	uint64_t after = 0, limit = API_EVENTS_DEFAULT;
	const char *v;
	size_t n = 0, i;
	json_t *arr;

	if ((v = http_request_query(c->req, "after")) != NULL &&
	    util_parse_u64(v, 0, INT64_MAX, &after) == -1) {
		api_error(c, 400, "invalid", "after", "after must be an event "
		    "id");
		return;
	}
	if ((v = http_request_query(c->req, "limit")) != NULL &&
	    util_parse_u64(v, 1, API_EVENTS_MAX, &limit) == -1) {
		api_error(c, 400, "invalid", "limit", "limit must lie in "
		    "[1, %d]", API_EVENTS_MAX);
		return;
	}
	if (store_audit_list(c->api->st, after, (size_t)limit, &ev, &n,
	    &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, api_audit_json(&ev[i]));
	api_reply(c, 200, json_pack("{s:o, s:o}", "events", arr,
	    "next_after", n == (size_t)limit ?
	    json_integer((json_int_t)ev[n - 1].id) : json_null()));
	model_audit_free_array(ev, n);
}

/*
 * GET /api/v1/events/stream: server-sent events (controller/events.c).
 * The token is checked once, when the stream opens; a revoked token's
 * stream ends at the latest with its connection.
 */
static void
api_events_stream(struct api_call *c)
{
	struct events_stream *s = NULL;
	const char *v, *why = "";
	uint64_t last = 0;
	bool has_last = false;

	if (c->api->ev == NULL) {
		api_error(c, 503, "unavailable", NULL, "the event stream is "
		    "not available");
		return;
	}
	if ((v = http_request_header(c->req, "Last-Event-ID")) == NULL)
		v = http_request_query(c->req, "last_event_id");
	if (v != NULL && v[0] != '\0') {
		if (util_parse_u64(v, 0, JSON_U64_EXACT_MAX, &last) == -1) {
			api_error(c, 400, "invalid", "Last-Event-ID",
			    "Last-Event-ID must be an event id");
			return;
		}
		has_last = true;
	}
	switch (events_stream_open(c->api->ev, c->who.name,
	    http_request_peer(c->req), has_last, last, &s, &why)) {
	case EVENTS_OPEN_OK:
		break;
	case EVENTS_OPEN_LIMIT:
		api_error(c, 429, "too_many_streams", NULL, "%s limit of "
		    "event streams is reached", why);
		return;
	case EVENTS_OPEN_NOMEM:
		api_error(c, 500, "internal", NULL, "out of memory");
		return;
	}
	c->resp->status = 200;
	c->resp->content_type = "text/event-stream";
	c->resp->stream_read = events_stream_read;
	c->resp->stream_free = events_stream_free;
	c->resp->stream_arg = s;
	/* A client that takes nothing for this long is cut. */
	c->resp->stream_timeout_s = 3 * EVENTS_HEARTBEAT_S;
}

/* GET /api/v1/tunnels/{id}/health: the last hour of RTT, loss, jitter. */
static void
api_tunnel_health(struct api_call *c)
{
	struct model_tunnel t;
	struct model_error err;
	char *text;

	if (c->api->ev == NULL) {
		api_error(c, 503, "unavailable", NULL, "health history is not "
		    "available");
		return;
	}
	if (store_tunnel_get(c->api->st, c->id, &t, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	if ((text = events_health_json(c->api->ev, c->id,
	    (int64_t)time(NULL))) == NULL) {
		api_error(c, 500, "internal", NULL, "out of memory");
		return;
	}
	api_reply_text(c, 200, "application/json", text, strlen(text));
}

/* ------------------------------------------------------------------ */
/* API tokens */

static void
api_tokens_list(struct api_call *c)
{
	struct model_api_token_info *t = NULL;
	struct model_error err;
	size_t n = 0, i;
	json_t *arr;

	if (store_api_token_list(c->api->st, &t, &n, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	arr = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(arr, api_token_json(&t[i]));
	free(t);
	api_reply(c, 200, json_pack("{s:o}", "tokens", arr));
}

static void
api_token_create(struct api_call *c)
{
	static const struct api_field spec[] = {
		{ "name", API_T_STRING, true },
		{ "role", API_T_STRING, true },
	};
	struct model_api_token_info info;
	struct model_error err;
	char token[STORE_TOKEN_LEN + 1];
	int role = 0;
	json_t *reply, *d;

	memset(&info, 0, sizeof(info));
	if (api_check_fields(c, c->body, "", spec, ARRAY_SIZE(spec)) == -1 ||
	    api_get_str(c, c->body, "", "name", info.name,
	    sizeof(info.name)) == -1 ||
	    api_get_enum(c, c->body, "role", api_parse_api_role, &role,
	    "admin, operator, readonly") == -1)
		return;
	if (!model_token_name_valid(info.name)) {
		api_error(c, 400, "invalid", "name", "name must be 1-%d "
		    "characters of a-z, 0-9, '_' and '-'",
		    MODEL_TOKEN_NAME_MAX);
		return;
	}
	info.role = (enum model_api_role)role;
	info.created_at = (int64_t)time(NULL);
	if (api_begin(c) == -1)
		return;
	if (store_api_token_create(c->api->st, info.name, info.role,
	    info.created_at, token, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	reply = api_token_json(&info);
	json_object_set_new(reply, "token", json_string(token));
	util_wipe(token, sizeof(token));
	d = json_pack("{s:s, s:s}", "name", info.name, "role",
	    model_api_role_str(info.role));
	api_commit(c, "apitoken.create", d, 0, NULL, 0, 201, reply);
}

static void
api_token_delete(struct api_call *c)
{
	struct model_api_token_info *t = NULL;
	struct model_error err;
	char q[API_QUOTE_BUF];
	size_t n = 0, i, admins = 0;
	bool found = false, is_admin = false;

	if (store_api_token_list(c->api->st, &t, &n, &err) == -1) {
		api_model_error(c, &err);
		return;
	}
	for (i = 0; i < n; i++) {
		if (t[i].role == MODEL_API_ADMIN)
			admins++;
		if (strcmp(t[i].name, c->name) == 0) {
			found = true;
			is_admin = t[i].role == MODEL_API_ADMIN;
		}
	}
	free(t);
	api_clip(q, sizeof(q), c->name, API_QUOTE_CHARS);
	if (!found) {
		api_error(c, 404, "not_found", "name", "no API token named "
		    "'%s'", q);
		return;
	}
	/* Never lock everyone out of admin work. */
	if (is_admin && admins == 1) {
		api_error(c, 409, "conflict", NULL, "'%s' is the last admin "
		    "token", q);
		return;
	}
	if (api_begin(c) == -1)
		return;
	if (store_api_token_delete(c->api->st, c->name, &err) == -1) {
		api_abort(c, &err);
		return;
	}
	api_commit(c, "apitoken.delete", json_pack("{s:s}", "name", c->name),
	    0, NULL, 0, 204, NULL);
}

/* ------------------------------------------------------------------ */
/* Health, metrics, OpenAPI */

static void
api_healthz(struct api_call *c)
{
	if (store_schema_version(c->api->st) < 1) {
		api_reply(c, 503, json_pack("{s:s}", "status", "unavailable"));
		return;
	}
	api_reply(c, 200, json_pack("{s:s}", "status", "ok"));
}

static void
api_metrics(struct api_call *c)
{
	char *text;
	size_t len;

	if (metrics_render(c->api->metrics, c->api->st, c->api->http, &text,
	    &len) == -1) {
		api_error(c, 500, "internal", NULL, "internal error");
		return;
	}
	api_reply_text(c, 200, "text/plain; version=0.0.4; charset=utf-8",
	    text, len);
}

static void
api_openapi(struct api_call *c)
{
	size_t len = (size_t)api_openapi_json_len;
	char *s = malloc(len);

	if (s == NULL) {
		api_error(c, 500, "internal", NULL, "out of memory");
		return;
	}
	memcpy(s, api_openapi_json, len);
	api_reply_text(c, 200, "application/json", s, len);
}

/* ------------------------------------------------------------------ */
/* Route table and dispatch */

#define R API_PREFIX
static const struct api_route api_routes[] = {
	{ "GET", "/healthz", NULL, api_healthz,
	    AUTH_NEED_NONE, false },
	{ "GET", "/metrics", NULL, api_metrics,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/openapi.json", NULL, api_openapi,
	    AUTH_NEED_NONE, false },
	{ "GET", R "/sites", "name", api_sites_list,
	    AUTH_NEED_READONLY, false },
	{ "POST", R "/sites", NULL, api_site_create,
	    AUTH_NEED_OPERATOR, true },
	{ "GET", R "/sites/{id}", NULL, api_site_get,
	    AUTH_NEED_READONLY, false },
	{ "PATCH", R "/sites/{id}", NULL, api_site_patch,
	    AUTH_NEED_OPERATOR, true },
	{ "DELETE", R "/sites/{id}", NULL, api_site_delete,
	    AUTH_NEED_OPERATOR, false },
	{ "GET", R "/sites/{id}/links", NULL, api_links_list,
	    AUTH_NEED_READONLY, false },
	{ "POST", R "/sites/{id}/links", NULL, api_link_create,
	    AUTH_NEED_OPERATOR, true },
	{ "GET", R "/sites/{id}/links/{name}", NULL, api_link_get,
	    AUTH_NEED_READONLY, false },
	{ "PATCH", R "/sites/{id}/links/{name}", NULL, api_link_patch,
	    AUTH_NEED_OPERATOR, true },
	{ "DELETE", R "/sites/{id}/links/{name}", NULL, api_link_delete,
	    AUTH_NEED_OPERATOR, false },
	{ "GET", R "/sites/{id}/prefixes", NULL, api_prefixes_list,
	    AUTH_NEED_READONLY, false },
	{ "POST", R "/sites/{id}/prefixes", NULL, api_prefix_add,
	    AUTH_NEED_OPERATOR, true },
	{ "DELETE", R "/sites/{id}/prefixes", "prefix", api_prefix_delete,
	    AUTH_NEED_OPERATOR, false },
	{ "POST", R "/sites/{id}/token", NULL, api_site_token,
	    AUTH_NEED_OPERATOR, false },
	{ "POST", R "/sites/{id}/rekey", NULL, api_site_rekey,
	    AUTH_NEED_OPERATOR, false },
	{ "GET", R "/policy", NULL, api_policy_get,
	    AUTH_NEED_READONLY, false },
	{ "PUT", R "/policy", NULL, api_policy_put,
	    AUTH_NEED_ADMIN, true },
	{ "GET", R "/crypto", NULL, api_crypto_get,
	    AUTH_NEED_READONLY, false },
	{ "PUT", R "/crypto", NULL, api_crypto_put,
	    AUTH_NEED_ADMIN, true },
	{ "GET", R "/tunnels", "site", api_tunnels_list,
	    AUTH_NEED_READONLY, false },
	{ "POST", R "/tunnels/{id}/rekey", NULL, api_tunnel_rekey,
	    AUTH_NEED_OPERATOR, false },
	{ "GET", R "/tunnels/{id}/health", NULL, api_tunnel_health,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/edges", NULL, api_edges_list,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/edges/{id}", NULL, api_edge_get,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/events", "after limit", api_events_list,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/events/stream", "last_event_id", api_events_stream,
	    AUTH_NEED_READONLY, false },
	{ "GET", R "/tokens", NULL, api_tokens_list,
	    AUTH_NEED_ADMIN, false },
	{ "POST", R "/tokens", NULL, api_token_create,
	    AUTH_NEED_ADMIN, true },
	{ "DELETE", R "/tokens/{name}", NULL, api_token_delete,
	    AUTH_NEED_ADMIN, false },
};
#undef R

enum api_match_result {
	API_NO_MATCH = 0,
	API_MATCH,
	API_MATCH_BAD_ID,	/* {id} is digits, but not a canonical id */
};

/*
 * Matches path against a pattern, capturing {id} and {name}.  An {id}
 * segment must be digits to match at all ("/sites/abc" is no route); it
 * is then a canonical id only without leading zeros and within
 * [1, INT64_MAX], so that "/sites/01" cannot name site 1.
 */
static enum api_match_result
api_match(const char *pattern, const char *path, uint64_t *id, char *name,
    size_t namesz)
{
	bool bad_id = false;
	const char *p = pattern, *s = path;
	char seg[API_SEG_MAX];
	size_t pl, sl;

	while (*p != '\0' && *s != '\0') {
		if (*p != '/' || *s != '/')
			return API_NO_MATCH;
		p++;
		s++;
		pl = strcspn(p, "/");
		sl = strcspn(s, "/");
		if (pl == 4 && strncmp(p, "{id}", 4) == 0) {
			if (sl == 0 || sl >= sizeof(seg))
				return API_NO_MATCH;
			memcpy(seg, s, sl);
			seg[sl] = '\0';
			if (strspn(seg, "0123456789") != sl)
				return API_NO_MATCH;
			if (seg[0] == '0' ||
			    util_parse_u64(seg, 1, INT64_MAX, id) == -1)
				bad_id = true;
		} else if (pl == 6 && strncmp(p, "{name}", 6) == 0) {
			if (sl == 0 || sl >= namesz)
				return API_NO_MATCH;
			memcpy(name, s, sl);
			name[sl] = '\0';
		} else if (pl != sl || strncmp(p, s, pl) != 0) {
			return API_NO_MATCH;
		}
		p += pl;
		s += sl;
	}
	if (*p != '\0' || *s != '\0')
		return API_NO_MATCH;
	return bad_id ? API_MATCH_BAD_ID : API_MATCH;
}

/*
 * Looks at the request target as the client sent it, before decoding
 * hid anything: a percent-escape in the path (%2F would turn
 * "/sites%2f1" into "/sites/1" after a proxy had judged the path, %00
 * would cut it) or an encoded NUL in the query (which ends the decoded
 * value early: "prefix=10.0.0.0/16%00junk") is refused.  The API's paths
 * never need an escape: ids are digits, names [a-z0-9_-].
 */
static int
api_target_ok(struct api_call *c)
{
	const char *t = http_request_target(c->req), *q, *pair, *nul;
	size_t pl = strcspn(t, "?"), kl;
	char key[API_QUOTE_BUF], raw[API_SEG_MAX];

	if (memchr(t, '%', pl) != NULL) {
		api_error(c, 400, "bad_path", NULL, "the path holds a "
		    "percent-escape; API paths never need one");
		return -1;
	}
	if (t[pl] != '?')
		return 0;
	q = t + pl + 1;
	if ((nul = strstr(q, "%00")) == NULL)
		return 0;
	for (pair = nul; pair > q && pair[-1] != '&'; pair--)
		;
	kl = strcspn(pair, "=&");
	snprintf(raw, sizeof(raw), "%.*s", (int)(kl < sizeof(raw) ? kl :
	    sizeof(raw) - 1), pair);
	api_clip(key, sizeof(key), raw, API_QUOTE_CHARS);
	api_error(c, 400, "invalid", key, "query argument '%s' holds an "
	    "encoded NUL (%%00)", key);
	return -1;
}

struct api_query_check {
	struct api_call *c;
	const char *allowed;
};

static int
api_query_known(void *arg, const char *key, const char *value)
{
	struct api_query_check *q = arg;
	char quoted[API_QUOTE_BUF];
	size_t kl = strlen(key);
	const char *a = q->allowed;

	(void)value;
	if (a == NULL)
		a = "";
	while (*a != '\0') {
		size_t l = strcspn(a, " ");
		if (l == kl && strncmp(a, key, l) == 0)
			return 0;
		a += l;
		while (*a == ' ')
			a++;
	}
	api_error(q->c, 400, "unknown_field", key,
	    "unknown query argument '%s'", api_clip(quoted, sizeof(quoted),
	    key, API_QUOTE_CHARS));
	return -1;
}

/* Parses the body of routes that take one: a JSON object. */
static int
api_parse_body(struct api_call *c, const struct api_route *r)
{
	json_error_t jerr;
	const char *body;
	size_t len;

	body = http_request_body(c->req, &len);
	if (!r->body) {
		if (len > 0) {
			api_error(c, 400, "unexpected_body", NULL,
			    "this request takes no body");
			return -1;
		}
		return 0;
	}
	if (len == 0) {
		api_error(c, 400, "malformed_json", NULL,
		    "a JSON object body is required");
		return -1;
	}
	c->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (c->body == NULL) {
		char q[4 * sizeof(jerr.text)];

		api_error(c, 400, "malformed_json", NULL,
		    "malformed JSON at line %d column %d: %s", jerr.line,
		    jerr.column, api_clip(q, sizeof(q), jerr.text, 100));
		return -1;
	}
	if (!json_is_object(c->body)) {
		api_error(c, 400, "wrong_type", NULL,
		    "the body must be a JSON object");
		return -1;
	}
	return 0;
}

static void api_static(struct api_call *c, const char *method,
    const char *path);

static void
api_handle(void *arg, const struct http_request *req,
    struct http_response *resp)
{
	struct api *a = arg;
	struct api_call c;
	struct api_query_check qc;
	const struct api_route *r = NULL;
	const char *method = http_request_method(req);
	const char *path = http_request_path(req);
	size_t i, used = 0;
	bool path_known = false, get, bad_id = false;

	memset(&c, 0, sizeof(c));
	c.api = a;
	c.req = req;
	c.resp = resp;
	if (api_target_ok(&c) == -1)
		return;
	/* A token in a URL ends up in logs, histories and Referer. */
	if (http_request_query(req, "token") != NULL ||
	    http_request_query(req, "access_token") != NULL) {
		api_error(&c, 400, "token_in_url", NULL, "tokens are never "
		    "accepted in a URL; send the Authorization header");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(api_routes); i++) {
		enum api_match_result m = api_match(api_routes[i].pattern, path,
		    &c.id, c.name, sizeof(c.name));

		if (m == API_NO_MATCH)
			continue;
		path_known = true;
		/*
		 * Collect the Allow header while looking for the method.
		 * HEAD is served by the GET route; http.c leaves the body out.
		 */
		get = strcmp(api_routes[i].method, "GET") == 0;
		used += (size_t)snprintf(resp->allow + used,
		    used < sizeof(resp->allow) ? sizeof(resp->allow) - used : 0,
		    "%s%s%s", used > 0 ? ", " : "", api_routes[i].method,
		    get ? ", HEAD" : "");
		if (strcmp(api_routes[i].method, method) == 0 ||
		    (get && strcmp(method, "HEAD") == 0)) {
			r = &api_routes[i];
			bad_id = m == API_MATCH_BAD_ID;
		}
	}
	if (!path_known) {
		resp->allow[0] = '\0';
		if (strncmp(path, API_PREFIX "/", strlen(API_PREFIX) + 1) != 0 &&
		    strcmp(path, API_PREFIX) != 0) {
			api_static(&c, method, path);
			return;
		}
		api_error(&c, 404, "no_route", NULL, "no such resource");
		return;
	}
	if (r == NULL) {
		char q[API_QUOTE_BUF];

		api_error(&c, 405, "method_not_allowed", NULL,
		    "method %s is not allowed here",
		    api_clip(q, sizeof(q), method, 10));
		return;
	}
	resp->allow[0] = '\0';
	switch (auth_check(a->st, http_request_header(req, "Authorization"),
	    r->need, &c.who)) {
	case AUTH_OK:
		break;
	case AUTH_UNAUTHENTICATED:
		resp->auth_challenge = true;
		api_error(&c, 401, "unauthorized", NULL,
		    "a valid bearer token is required");
		return;
	case AUTH_FORBIDDEN:
		api_error(&c, 403, "forbidden", NULL,
		    "this token's role may not do this");
		return;
	case AUTH_ERROR:
		api_error(&c, 500, "internal", NULL, "internal error");
		return;
	case AUTH_UNAVAILABLE:
		api_error(&c, 503, "busy", NULL, "%s", c.who.unavailable);
		return;
	}
	if (bad_id) {
		api_error(&c, 400, "invalid", "id", "an id is a decimal number "
		    "from 1 without leading zeros");
		return;
	}
	qc.c = &c;
	qc.allowed = r->query;
	if (http_request_query_each(req, api_query_known, &qc) == -1)
		return;
	if (api_parse_body(&c, r) == 0)
		r->fn(&c);
	json_decref(c.body);
	log_debug("api", "%s %s -> %d (%s)", method, path, resp->status,
	    c.who.name[0] != '\0' ? c.who.name : "-");
}

/*
 * The dashboard's files (controller/web.c resolves them safely): GET and
 * HEAD only, no token needed.
 */
static void
api_static(struct api_call *c, const char *method, const char *path)
{
	const char *type = NULL;
	uint64_t size = 0;
	int fd = -1, rc;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		snprintf(c->resp->allow, sizeof(c->resp->allow), "GET, HEAD");
		api_error(c, 405, "method_not_allowed", NULL, "static files "
		    "are read with GET or HEAD");
		return;
	}
	if (c->api->web_fd == -1) {
		api_error(c, 404, "no_route", NULL, "no such resource");
		return;
	}
	switch ((rc = web_resolve(c->api->web_fd, path, &fd, &size, &type))) {
	case 0:
		break;
	case 400:
		api_error(c, 400, "bad_path", NULL, "this path is not allowed");
		return;
	case 404:
		api_error(c, 404, "no_route", NULL, "no such resource");
		return;
	case 413:
		api_error(c, 413, "too_large", NULL, "file too large to serve");
		return;
	default:
		api_error(c, rc, "internal", NULL, "internal error");
		return;
	}
	free(c->resp->body);
	c->resp->body = NULL;
	c->resp->body_len = 0;
	c->resp->status = 200;
	c->resp->content_type = type;
	c->resp->cache_control = "no-cache";
	c->resp->has_fd = true;
	c->resp->fd = fd;
	c->resp->file_size = size;
}

/* ------------------------------------------------------------------ */
/* Event rendering (controller/events.c shows objects as the API does) */

static char *
api_dump(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

static char *
api_render_audit(const struct model_audit *a)
{
	return api_dump(api_audit_json(a));
}

static char *
api_render_site(const struct model_site *s, const struct model_site_prefix *p,
    size_t np)
{
	return api_dump(api_site_json(s, p, np));
}

/* The event stream's tunnel: as GET /tunnels shows it, but without the
 * IPv6 pair (it needs the policy's pool, which the watcher does not
 * read; API.md says so). */
static char *
api_render_tunnel(const struct model_tunnel *t)
{
	return api_dump(api_tunnel_json(t, NULL, NULL));
}

static char *
api_render_edge(const struct model_site *s, const struct model_edge_state *e)
{
	return api_dump(api_edge_full_json(NULL, s, e));
}

static void
api_wake_streams(void *arg)
{
	struct api *a = arg;

	http_wake(a->http);
}

/* Splits "host:port" / "[v6]:port" into its parts. */
static int
api_parse_listen(const char *listen, char *host, size_t hostsz,
    uint16_t *port)
{
	const char *colon, *h = listen;
	size_t hl;
	uint64_t p;

	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');
		if (end == NULL || end[1] != ':')
			return -1;
		h = listen + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - listen);
	}
	if (hl == 0 || hl >= hostsz ||
	    util_parse_u64(colon + 1, 0, 65535, &p) == -1)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

struct api *
api_start(const struct api_config *cfg, struct store *st)
{
	struct http_config hc;
	char host[64];
	struct api *a;

	memset(&hc, 0, sizeof(hc));
	if (api_parse_listen(cfg->listen, host, sizeof(host), &hc.port) == -1) {
		log_warnx("api: listen address '%s' is not host:port",
		    cfg->listen);
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->st = st;
	a->hooks = cfg->hooks;
	a->metrics = cfg->metrics;
	a->pool6 = cfg->pool6;
	a->enroll_ttl = cfg->enroll_ttl_s > 0 ? cfg->enroll_ttl_s :
	    STORE_ENROLL_TTL_DEFAULT;
	a->edge_session_port = cfg->edge_session_port;
	a->edge_enroll_port = cfg->edge_enroll_port;
	if (cfg->edge_controller_name != NULL)
		(void)util_strcpy(a->edge_controller_name,
		    sizeof(a->edge_controller_name), cfg->edge_controller_name);
	if (cfg->edge_ca_pin != NULL)
		(void)util_strcpy(a->edge_ca_pin, sizeof(a->edge_ca_pin),
		    cfg->edge_ca_pin);
	hc.address = host;
	hc.max_body = cfg->max_body != 0 ? cfg->max_body :
	    API_MAX_BODY_DEFAULT;
	hc.max_connections = cfg->max_connections;
	hc.max_per_ip = cfg->max_per_ip;
	hc.timeout_s = cfg->timeout_s;
	hc.tls_cert_pem = cfg->tls_cert_pem;
	hc.tls_key_pem = cfg->tls_key_pem;
	a->web_fd = -1;
	if (cfg->web_root != NULL && cfg->web_root[0] != '\0' &&
	    (a->web_fd = web_open_root(cfg->web_root)) == -1)
		log_warnx("api: dashboard not served (web root %s)",
		    cfg->web_root);
	if (cfg->events_st != NULL) {
		struct events_config ec = {
			.st = cfg->events_st,
			.max_streams = cfg->sse_max,
			.max_streams_per_client = cfg->sse_max_per_client,
			.render = { api_render_audit, api_render_site,
			    api_render_tunnel, api_render_edge },
			.wake = api_wake_streams,
			.wake_arg = a,
		};

		if ((a->ev = events_new(&ec)) == NULL)
			goto fail;
	}
	a->http = http_start(&hc, api_handle, a);
	if (a->http == NULL)
		goto fail;
	if (a->ev != NULL && events_run(a->ev) == -1) {
		http_stop(a->http);
		goto fail;
	}
	return a;
fail:
	events_free(a->ev);
	if (a->web_fd != -1)
		close(a->web_fd);
	free(a);
	return NULL;
}

void
api_stop(struct api *a)
{
	if (a == NULL)
		return;
	/* The watcher first (it wakes the server); streams end with it. */
	events_stop(a->ev);
	http_stop(a->http);
	events_free(a->ev);
	if (a->web_fd != -1)
		close(a->web_fd);
	api_index_free(a->index);
	free(a);
}

struct events *
api_events(struct api *a)
{
	return a->ev;
}

uint16_t
api_port(const struct api *a)
{
	return http_port(a->http);
}
