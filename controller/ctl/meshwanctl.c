/*
 * meshwanctl.c — command-line client of the controller's REST API v1.
 *
 * Everything it does goes through the same REST API as the dashboard and
 * scripts, so it can never do more than the token it is given allows.
 * libcurl carries HTTP (this is its only user in the tree), jansson the
 * JSON.  Output is a table for people, or the API's JSON with --json for
 * scripts.  Exit status: 0 success, 1 the API refused the request (its
 * code and message are printed), 2 usage error, 3 the controller could not
 * be reached or answered something that is not the API.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "lib/util.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_API 1
#define CTL_EXIT_USAGE 2
#define CTL_EXIT_CONN 3

#define CTL_TOKEN_MAX 256
#define CTL_REPLY_MAX (64u << 20)

struct ctl {
	const char *url;
	char token[CTL_TOKEN_MAX];
	bool json;
	CURL *curl;
};

struct ctl_buf {
	char *data;
	size_t len;
};

static const char ctl_usage[] =
"usage: meshwanctl [--url URL] [--token TOKEN | --token-file PATH] [--json]\n"
"                  COMMAND [ARGS]\n"
"\n"
"Talks to meshwan-controller's REST API v1.\n"
"\n"
"Global options:\n"
"  --url URL          controller API base URL (env MESHWAN_URL;\n"
"                     default http://127.0.0.1:8080)\n"
"  --token TOKEN      API bearer token (env MESHWAN_TOKEN)\n"
"  --token-file PATH  read the token from a file (env MESHWAN_TOKEN_FILE)\n"
"  --json             print the API's JSON instead of a table\n"
"  -h, --help         this text\n"
"\n"
"Commands (SITE is a site id or name):\n"
"  site list\n"
"  site show SITE\n"
"  site add NAME --role hub|spoke|edge [--region R] [--asn N]\n"
"           [--prefix CIDR]... [--backend xfrm|uesp|null]\n"
"  site set SITE [--name N] [--region R] [--role R] [--asn N]\n"
"           [--backend B]\n"
"  site del SITE\n"
"  site rekey SITE             new SA keys for all of the site's tunnels\n"
"  link list SITE\n"
"  link add SITE NAME --address IP [--public-address IP]\n"
"           [--public-port PORT]\n"
"  link del SITE LINK          (LINK is the link's name/colour)\n"
"  prefix list SITE\n"
"  prefix add SITE CIDR\n"
"  prefix del SITE CIDR\n"
"  policy show\n"
"  policy set [--mode full-mesh|hub-and-spoke|regional-mesh]\n"
"           [--pair COLOUR:COLOUR]... [--pool CIDR] [--encap gre|vxlan]\n"
"           [--vni MIN-MAX]\n"
"  crypto show\n"
"  crypto set [--cipher aes-gcm-128|aes-gcm-256] [--rekey SECONDS]\n"
"           [--replay-window N]\n"
"  token create SITE           one-time enrollment token (shown once)\n"
"  apitoken list\n"
"  apitoken create NAME --role admin|operator|readonly   (shown once)\n"
"  apitoken del NAME\n"
"  tunnel list [--site SITE]\n"
"  tunnel rekey ID             new SA keys for one tunnel (make-before-break)\n"
"  edge list\n"
"  events [--limit N] [--after ID]   audit log, oldest first\n"
"\n"
"Exit status: 0 success, 1 the API refused the request, 2 usage error,\n"
"3 the controller could not be reached.\n";

static void
ctl_usage_exit(const char *why)
{
	if (why != NULL)
		fprintf(stderr, "meshwanctl: %s\n", why);
	fprintf(stderr, "Try 'meshwanctl --help'.\n");
	exit(CTL_EXIT_USAGE);
}

static size_t
ctl_on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct ctl_buf *b = arg;
	size_t n = size * nmemb;
	char *nd;

	if (b->len + n + 1 > CTL_REPLY_MAX)
		return 0;
	nd = realloc(b->data, b->len + n + 1);
	if (nd == NULL)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/*
 * One request.  body may be NULL.  Returns the HTTP status and the parsed
 * JSON reply in *out (NULL for an empty reply), or exits with
 * CTL_EXIT_CONN when there is no usable answer.
 */
static long
ctl_request(struct ctl *c, const char *method, const char *path,
    json_t *body, json_t **out)
{
	struct ctl_buf b = { NULL, 0 };
	struct curl_slist *hdrs = NULL;
	char url[2048], auth[CTL_TOKEN_MAX + 32];
	char *payload = NULL;
	json_error_t jerr;
	long status = 0;
	CURLcode rc;

	*out = NULL;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->url, path) >=
	    sizeof(url)) {
		fprintf(stderr, "meshwanctl: URL too long\n");
		exit(CTL_EXIT_USAGE);
	}
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, ctl_on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	if (c->token[0] != '\0') {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    c->token);
		hdrs = curl_slist_append(hdrs, auth);
		util_wipe(auth, sizeof(auth));
	}
	if (body != NULL) {
		payload = json_dumps(body, JSON_COMPACT);
		if (payload == NULL) {
			fprintf(stderr, "meshwanctl: out of memory\n");
			exit(CTL_EXIT_CONN);
		}
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/json");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(payload));
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c->curl);
	curl_slist_free_all(hdrs);
	free(payload);
	if (rc != CURLE_OK) {
		fprintf(stderr, "meshwanctl: cannot reach %s: %s\n", c->url,
		    curl_easy_strerror(rc));
		free(b.data);
		exit(CTL_EXIT_CONN);
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (b.len > 0) {
		*out = json_loadb(b.data, b.len, 0, &jerr);
		if (*out == NULL) {
			fprintf(stderr, "meshwanctl: %s answered HTTP %ld with "
			    "something that is not JSON\n", c->url, status);
			free(b.data);
			exit(CTL_EXIT_CONN);
		}
	}
	free(b.data);
	return status;
}

/* Prints the API's error and exits 1. */
static void
ctl_fail(long status, json_t *reply)
{
	const char *code = json_string_value(json_object_get(reply, "code"));
	const char *msg = json_string_value(json_object_get(reply,
	    "message"));
	const char *field = json_string_value(json_object_get(reply,
	    "field"));

	fprintf(stderr, "meshwanctl: error: %s (HTTP %ld, code %s%s%s)\n",
	    msg != NULL ? msg : "request refused", status,
	    code != NULL ? code : "unknown", field != NULL ? ", field " : "",
	    field != NULL ? field : "");
	json_decref(reply);
	exit(CTL_EXIT_API);
}

/* A request that must succeed (2xx); returns the reply (may be NULL). */
static json_t *
ctl_call(struct ctl *c, const char *method, const char *path, json_t *body)
{
	json_t *reply;
	long status;

	status = ctl_request(c, method, path, body, &reply);
	json_decref(body);
	if (status < 200 || status > 299)
		ctl_fail(status, reply);
	return reply;
}

static void
ctl_print_json(const json_t *j)
{
	char *s;

	if (j == NULL)
		return;
	s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s != NULL) {
		puts(s);
		free(s);
	}
}

/*
 * A cell's text: strings as is ("-" when empty), numbers and booleans
 * printed, arrays of scalars joined with commas, objects as compact JSON,
 * null as "-".  Keys ending in "at" hold unix times: shown in UTC.
 */
static void
ctl_cell(const char *key, const json_t *v, char *out, size_t outsz)
{
	size_t i, used, klen = strlen(key);
	const json_t *e;
	char one[128], *s;
	struct tm tm;
	time_t t;

	out[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		util_strcpy(out, outsz, "-");
	} else if (json_is_string(v)) {
		util_strcpy(out, outsz, json_string_length(v) > 0 ?
		    json_string_value(v) : "-");
	} else if (json_is_integer(v) && klen >= 2 &&
	    strcmp(key + klen - 2, "at") == 0) {
		t = (time_t)json_integer_value(v);
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			snprintf(out, outsz, "%lld",
			    (long long)json_integer_value(v));
	} else if (json_is_integer(v)) {
		snprintf(out, outsz, "%lld", (long long)json_integer_value(v));
	} else if (json_is_real(v)) {
		snprintf(out, outsz, "%.3f", json_real_value(v));
	} else if (json_is_boolean(v)) {
		util_strcpy(out, outsz, json_is_true(v) ? "yes" : "no");
	} else if (json_is_array(v)) {
		used = 0;
		json_array_foreach(v, i, e) {
			ctl_cell("", e, one, sizeof(one));
			if (json_is_array(e)) {
				for (char *p = one; *p != '\0'; p++)
					if (*p == ',')
						*p = ':';
			}
			used += (size_t)snprintf(out + used,
			    used < outsz ? outsz - used : 0, "%s%s",
			    i > 0 ? "," : "", one);
			if (used >= outsz)
				break;
		}
		if (json_array_size(v) == 0)
			util_strcpy(out, outsz, "-");
	} else {
		s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		if (s == NULL || util_strcpy(out, outsz, s) == -1)
			util_strcpy(out + (outsz > 4 ? outsz - 4 : 0), 4, "...");
		free(s);
	}
}

#define CTL_CELL_MAX 96

/* Prints rows (array of objects) as a table of the named columns. */
static void
ctl_table(const json_t *rows, const char *const *cols, size_t ncols)
{
	size_t widths[16], i, c, n;
	char cell[CTL_CELL_MAX];
	const json_t *row;

	if (ncols > ARRAY_SIZE(widths))
		ncols = ARRAY_SIZE(widths);
	for (c = 0; c < ncols; c++)
		widths[c] = strlen(cols[c]);
	json_array_foreach(rows, i, row) {
		for (c = 0; c < ncols; c++) {
			ctl_cell(cols[c], json_object_get(row, cols[c]), cell,
			    sizeof(cell));
			n = strlen(cell);
			if (n > widths[c])
				widths[c] = n;
		}
	}
	for (c = 0; c < ncols; c++) {
		for (const char *p = cols[c]; *p != '\0'; p++)
			putchar(toupper((unsigned char)*p));
		printf("%*s", c + 1 < ncols ?
		    (int)(widths[c] - strlen(cols[c]) + 2) : 0, "");
	}
	putchar('\n');
	json_array_foreach(rows, i, row) {
		for (c = 0; c < ncols; c++) {
			ctl_cell(cols[c], json_object_get(row, cols[c]), cell,
			    sizeof(cell));
			/* Long cells are cut; --json shows everything. */
			if (strlen(cell) == sizeof(cell) - 1)
				util_strcpy(cell + sizeof(cell) - 4, 4, "...");
			if (c + 1 < ncols)
				printf("%-*s  ", (int)widths[c], cell);
			else
				printf("%s", cell);
		}
		putchar('\n');
	}
}

/* Prints one object as "key: value" lines, in the given order. */
static void
ctl_fields(const json_t *obj, const char *const *keys, size_t nkeys)
{
	char cell[4096];
	size_t i;

	for (i = 0; i < nkeys; i++) {
		ctl_cell(keys[i], json_object_get(obj, keys[i]), cell,
		    sizeof(cell));
		printf("%-18s %s\n", keys[i], cell);
	}
}

static void
ctl_show_list(struct ctl *c, json_t *reply, const char *key,
    const char *const *cols, size_t ncols)
{
	if (c->json)
		ctl_print_json(reply);
	else
		ctl_table(json_object_get(reply, key), cols, ncols);
	json_decref(reply);
}

static void
ctl_show_obj(struct ctl *c, json_t *reply, const char *const *keys,
    size_t nkeys)
{
	if (c->json)
		ctl_print_json(reply);
	else
		ctl_fields(reply, keys, nkeys);
	json_decref(reply);
}

/* Percent-encodes s into out for use in a query string. */
static void
ctl_urlenc(struct ctl *c, const char *s, char *out, size_t outsz)
{
	char *e = curl_easy_escape(c->curl, s, 0);

	if (e == NULL || util_strcpy(out, outsz, e) == -1)
		ctl_usage_exit("argument too long");
	curl_free(e);
}

static bool
ctl_is_number(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static uint64_t
ctl_number(const char *s, uint64_t min, uint64_t max, const char *what)
{
	uint64_t v;
	char msg[128];

	if (util_parse_u64(s, min, max, &v) == -1) {
		snprintf(msg, sizeof(msg), "%s must be a number in [%llu, %llu]",
		    what, (unsigned long long)min, (unsigned long long)max);
		ctl_usage_exit(msg);
	}
	return v;
}

/* Site id from an id or a name (looked up through ?name=). */
static uint64_t
ctl_site_id(struct ctl *c, const char *site)
{
	char path[512], enc[300];
	json_t *reply, *sites;
	uint64_t id;

	if (ctl_is_number(site))
		return ctl_number(site, 1, INT64_MAX, "site id");
	ctl_urlenc(c, site, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/sites?name=%s", enc);
	reply = ctl_call(c, "GET", path, NULL);
	sites = json_object_get(reply, "sites");
	if (json_array_size(sites) != 1) {
		fprintf(stderr, "meshwanctl: error: no site named '%s'\n",
		    site);
		json_decref(reply);
		exit(CTL_EXIT_API);
	}
	id = (uint64_t)json_integer_value(json_object_get(
	    json_array_get(sites, 0), "id"));
	json_decref(reply);
	return id;
}

/*
 * Subcommand options: getopt_long over the command's own arguments,
 * with positional arguments collected in order.
 */
struct ctl_args {
	const char *pos[4];
	size_t npos;
};

static const char *const ctl_site_cols[] = { "id", "name", "region", "role",
	"asn", "backend", "lan_prefixes" };
static const char *const ctl_site_keys[] = { "id", "name", "region", "role",
	"asn", "backend", "revoked", "lan_prefixes" };
static const char *const ctl_link_cols[] = { "name", "address",
	"public_address", "public_port" };
static const char *const ctl_policy_keys[] = { "mode", "pairing", "pairs",
	"pool", "encap", "vni_min", "vni_max", "asn_min", "asn_max", "mtu",
	"bgp_hold_time", "bgp_keepalive", "bgp_bfd" };
static const char *const ctl_crypto_keys[] = { "cipher", "rekey_seconds",
	"replay_window", "rekey_bytes", "rekey_packets" };
static const char *const ctl_tunnel_cols[] = { "id", "site_a", "link_a",
	"address_a", "site_b", "link_b", "address_b", "vni" };
static const char *const ctl_edge_cols[] = { "site_id", "site_name",
	"connected", "applied_version", "intent_version", "converged",
	"last_status_at" };
static const char *const ctl_event_cols[] = { "id", "at", "actor",
	"action", "detail" };
static const char *const ctl_token_cols[] = { "name", "role",
	"created_at" };

enum {
	OPT_REGION = 256, OPT_ROLE, OPT_ASN, OPT_PREFIX, OPT_BACKEND, OPT_NAME,
	OPT_ADDRESS, OPT_PUBADDR, OPT_PUBPORT, OPT_MODE, OPT_PAIR, OPT_POOL,
	OPT_ENCAP, OPT_VNI, OPT_CIPHER, OPT_REKEY, OPT_REPLAY, OPT_SITE,
	OPT_LIMIT, OPT_AFTER,
};

static const struct option ctl_sub_opts[] = {
	{ "region", required_argument, NULL, OPT_REGION },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "asn", required_argument, NULL, OPT_ASN },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "address", required_argument, NULL, OPT_ADDRESS },
	{ "public-address", required_argument, NULL, OPT_PUBADDR },
	{ "public-port", required_argument, NULL, OPT_PUBPORT },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "pair", required_argument, NULL, OPT_PAIR },
	{ "pool", required_argument, NULL, OPT_POOL },
	{ "encap", required_argument, NULL, OPT_ENCAP },
	{ "vni", required_argument, NULL, OPT_VNI },
	{ "cipher", required_argument, NULL, OPT_CIPHER },
	{ "rekey", required_argument, NULL, OPT_REKEY },
	{ "replay-window", required_argument, NULL, OPT_REPLAY },
	{ "site", required_argument, NULL, OPT_SITE },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "after", required_argument, NULL, OPT_AFTER },
	{ NULL, 0, NULL, 0 },
};

/*
 * Parses the options of one subcommand into a JSON object of
 * option-name → value (repeatable options become arrays), checking that
 * only the allowed ones appear.
 */
static json_t *
ctl_parse_sub(int argc, char **argv, const char *allowed, size_t minpos,
    size_t maxpos, struct ctl_args *a)
{
	json_t *o = json_object();
	const char *name;
	char msg[128];
	int ch, idx;

	memset(a, 0, sizeof(*a));
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "-", ctl_sub_opts, &idx)) != -1) {
		if (ch == 1) {
			if (a->npos == ARRAY_SIZE(a->pos) || a->npos >= maxpos)
				ctl_usage_exit("too many arguments");
			a->pos[a->npos++] = optarg;
			continue;
		}
		if (ch == '?' || ch == ':') {
			snprintf(msg, sizeof(msg), "bad option '%s'",
			    argv[optind - 1]);
			ctl_usage_exit(msg);
		}
		name = ctl_sub_opts[ch - OPT_REGION].name;
		if (strstr(allowed, name) == NULL) {
			snprintf(msg, sizeof(msg), "option --%s does not apply "
			    "here", name);
			ctl_usage_exit(msg);
		}
		if (ch == OPT_PREFIX || ch == OPT_PAIR) {
			json_t *arr = json_object_get(o, name);
			if (arr == NULL) {
				arr = json_array();
				json_object_set_new(o, name, arr);
			}
			json_array_append_new(arr, json_string(optarg));
		} else {
			json_object_set_new(o, name, json_string(optarg));
		}
	}
	if (a->npos < minpos)
		ctl_usage_exit("missing arguments");
	return o;
}

static const char *
ctl_opt(const json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/* The reply of a rekey request (202): what was asked, not yet done. */
static void
ctl_rekey_done(struct ctl *c, json_t *reply, const char *what,
    const char *name)
{
	if (c->json)
		ctl_print_json(reply);
	else
		printf("rekey of %s %s requested; the edges rotate their SA "
		    "keys make-before-break\n", what, name);
	json_decref(reply);
}

static int
ctl_cmd_site(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	char path[128];
	json_t *o, *body, *reply;
	const char *v;

	if (strcmp(sub, "list") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 0, 0, &a);
		json_decref(o);
		reply = ctl_call(c, "GET", "/api/v1/sites", NULL);
		ctl_show_list(c, reply, "sites", ctl_site_cols,
		    ARRAY_SIZE(ctl_site_cols));
		return 0;
	}
	if (strcmp(sub, "show") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu",
		    (unsigned long long)ctl_site_id(c, a.pos[0]));
		reply = ctl_call(c, "GET", path, NULL);
		if (!c->json) {
			ctl_fields(reply, ctl_site_keys,
			    ARRAY_SIZE(ctl_site_keys));
			printf("links:\n");
			ctl_table(json_object_get(reply, "links"),
			    ctl_link_cols, ARRAY_SIZE(ctl_link_cols));
			json_decref(reply);
		} else {
			ctl_show_obj(c, reply, NULL, 0);
		}
		return 0;
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "set") == 0) {
		bool add = strcmp(sub, "add") == 0;

		o = ctl_parse_sub(argc - 1, argv + 1, add ?
		    "region role asn prefix backend" :
		    "name region role asn backend", 1, 1, &a);
		body = json_object();
		if (add)
			json_object_set_new(body, "name",
			    json_string(a.pos[0]));
		else if ((v = ctl_opt(o, "name")) != NULL)
			json_object_set_new(body, "name", json_string(v));
		if ((v = ctl_opt(o, "region")) != NULL)
			json_object_set_new(body, "region", json_string(v));
		if ((v = ctl_opt(o, "role")) != NULL)
			json_object_set_new(body, "role", json_string(v));
		if ((v = ctl_opt(o, "backend")) != NULL)
			json_object_set_new(body, "backend", json_string(v));
		if ((v = ctl_opt(o, "asn")) != NULL)
			json_object_set_new(body, "asn", json_integer(
			    (json_int_t)ctl_number(v, 1, 4294967295u,
			    "--asn")));
		if (json_object_get(o, "prefix") != NULL)
			json_object_set(body, "lan_prefixes",
			    json_object_get(o, "prefix"));
		if (add) {
			reply = ctl_call(c, "POST", "/api/v1/sites", body);
		} else {
			snprintf(path, sizeof(path), "/api/v1/sites/%llu",
			    (unsigned long long)ctl_site_id(c, a.pos[0]));
			reply = ctl_call(c, "PATCH", path, body);
		}
		json_decref(o);
		ctl_show_obj(c, reply, ctl_site_keys,
		    ARRAY_SIZE(ctl_site_keys));
		return 0;
	}
	if (strcmp(sub, "del") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu",
		    (unsigned long long)ctl_site_id(c, a.pos[0]));
		json_decref(ctl_call(c, "DELETE", path, NULL));
		if (!c->json)
			printf("deleted site %s\n", a.pos[0]);
		return 0;
	}
	if (strcmp(sub, "rekey") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu/rekey",
		    (unsigned long long)ctl_site_id(c, a.pos[0]));
		ctl_rekey_done(c, ctl_call(c, "POST", path, NULL), "site",
		    a.pos[0]);
		return 0;
	}
	ctl_usage_exit("site: expected list, show, add, set, del or rekey");
	return CTL_EXIT_USAGE;
}

static int
ctl_cmd_link(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	char path[512], enc[300];
	json_t *o, *body, *reply;
	uint64_t site;
	const char *v;

	if (strcmp(sub, "list") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
		    (unsigned long long)ctl_site_id(c, a.pos[0]));
		reply = ctl_call(c, "GET", path, NULL);
		ctl_show_list(c, reply, "links", ctl_link_cols,
		    ARRAY_SIZE(ctl_link_cols));
		return 0;
	}
	if (strcmp(sub, "add") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1,
		    "address public-address public-port", 2, 2, &a);
		site = ctl_site_id(c, a.pos[0]);
		body = json_object();
		json_object_set_new(body, "name", json_string(a.pos[1]));
		if ((v = ctl_opt(o, "address")) != NULL)
			json_object_set_new(body, "address", json_string(v));
		if ((v = ctl_opt(o, "public-address")) != NULL)
			json_object_set_new(body, "public_address",
			    json_string(v));
		if ((v = ctl_opt(o, "public-port")) != NULL)
			json_object_set_new(body, "public_port", json_integer(
			    (json_int_t)ctl_number(v, 1, 65535,
			    "--public-port")));
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
		    (unsigned long long)site);
		reply = ctl_call(c, "POST", path, body);
		ctl_show_obj(c, reply, ctl_link_cols,
		    ARRAY_SIZE(ctl_link_cols));
		return 0;
	}
	if (strcmp(sub, "del") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 2, 2, &a);
		json_decref(o);
		site = ctl_site_id(c, a.pos[0]);
		ctl_urlenc(c, a.pos[1], enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/sites/%llu/links/%s",
		    (unsigned long long)site, enc);
		json_decref(ctl_call(c, "DELETE", path, NULL));
		if (!c->json)
			printf("deleted link %s of site %s\n", a.pos[1],
			    a.pos[0]);
		return 0;
	}
	ctl_usage_exit("link: expected list, add or del");
	return CTL_EXIT_USAGE;
}

static int
ctl_cmd_prefix(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	char path[512], enc[300];
	json_t *o, *body, *reply;
	uint64_t site;

	if (strcmp(sub, "list") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/sites/%llu/prefixes",
		    (unsigned long long)ctl_site_id(c, a.pos[0]));
		reply = ctl_call(c, "GET", path, NULL);
		if (c->json) {
			ctl_print_json(reply);
		} else {
			const json_t *arr = json_object_get(reply, "prefixes");
			size_t i;

			for (i = 0; i < json_array_size(arr); i++)
				printf("%s\n", json_string_value(
				    json_array_get(arr, i)));
		}
		json_decref(reply);
		return 0;
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "del") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 2, 2, &a);
		json_decref(o);
		site = ctl_site_id(c, a.pos[0]);
		if (strcmp(sub, "add") == 0) {
			snprintf(path, sizeof(path),
			    "/api/v1/sites/%llu/prefixes",
			    (unsigned long long)site);
			body = json_pack("{s:s}", "prefix", a.pos[1]);
			reply = ctl_call(c, "POST", path, body);
		} else {
			ctl_urlenc(c, a.pos[1], enc, sizeof(enc));
			snprintf(path, sizeof(path),
			    "/api/v1/sites/%llu/prefixes?prefix=%s",
			    (unsigned long long)site, enc);
			reply = ctl_call(c, "DELETE", path, NULL);
		}
		if (c->json)
			ctl_print_json(reply);
		else
			printf("%s prefix %s %s site %s\n",
			    strcmp(sub, "add") == 0 ? "added" : "removed",
			    a.pos[1], strcmp(sub, "add") == 0 ? "to" : "from",
			    a.pos[0]);
		json_decref(reply);
		return 0;
	}
	ctl_usage_exit("prefix: expected list, add or del");
	return CTL_EXIT_USAGE;
}

/* "MIN-MAX" → two numbers. */
static void
ctl_range(const char *s, uint64_t *lo, uint64_t *hi)
{
	char buf[64], *dash;

	if (util_strcpy(buf, sizeof(buf), s) == -1 ||
	    (dash = strchr(buf, '-')) == NULL)
		ctl_usage_exit("--vni must look like MIN-MAX");
	*dash = '\0';
	*lo = ctl_number(buf, 1, 16777215, "--vni MIN");
	*hi = ctl_number(dash + 1, 1, 16777215, "--vni MAX");
}

static int
ctl_cmd_policy(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	json_t *o, *cur, *pairs, *p;
	const char *v;
	uint64_t lo, hi;
	size_t i;

	if (strcmp(sub, "show") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 0, 0, &a);
		json_decref(o);
		ctl_show_obj(c, ctl_call(c, "GET", "/api/v1/policy", NULL),
		    ctl_policy_keys, ARRAY_SIZE(ctl_policy_keys));
		return 0;
	}
	if (strcmp(sub, "set") != 0)
		ctl_usage_exit("policy: expected show or set");
	o = ctl_parse_sub(argc - 1, argv + 1, "mode pair pool encap vni", 0,
	    0, &a);
	/* PUT replaces the whole policy: start from the current one. */
	cur = ctl_call(c, "GET", "/api/v1/policy", NULL);
	if ((v = ctl_opt(o, "mode")) != NULL)
		json_object_set_new(cur, "mode", json_string(v));
	if ((v = ctl_opt(o, "pool")) != NULL)
		json_object_set_new(cur, "pool", json_string(v));
	if ((v = ctl_opt(o, "encap")) != NULL)
		json_object_set_new(cur, "encap", json_string(v));
	if ((v = ctl_opt(o, "vni")) != NULL) {
		ctl_range(v, &lo, &hi);
		json_object_set_new(cur, "vni_min", json_integer(
		    (json_int_t)lo));
		json_object_set_new(cur, "vni_max", json_integer(
		    (json_int_t)hi));
	}
	if (json_object_get(o, "pair") != NULL) {
		pairs = json_array();
		json_array_foreach(json_object_get(o, "pair"), i, p) {
			char buf[128], *colon;

			if (util_strcpy(buf, sizeof(buf),
			    json_string_value(p)) == -1 ||
			    (colon = strchr(buf, ':')) == NULL)
				ctl_usage_exit("--pair must look like "
				    "COLOUR:COLOUR");
			*colon = '\0';
			json_array_append_new(pairs, json_pack("[ss]", buf,
			    colon + 1));
		}
		json_object_set_new(cur, "pairs", pairs);
	}
	json_decref(o);
	ctl_show_obj(c, ctl_call(c, "PUT", "/api/v1/policy", cur),
	    ctl_policy_keys, ARRAY_SIZE(ctl_policy_keys));
	return 0;
}

static int
ctl_cmd_crypto(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	json_t *o, *cur;
	const char *v;

	if (strcmp(sub, "show") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 0, 0, &a);
		json_decref(o);
		ctl_show_obj(c, ctl_call(c, "GET", "/api/v1/crypto", NULL),
		    ctl_crypto_keys, ARRAY_SIZE(ctl_crypto_keys));
		return 0;
	}
	if (strcmp(sub, "set") != 0)
		ctl_usage_exit("crypto: expected show or set");
	o = ctl_parse_sub(argc - 1, argv + 1, "cipher rekey replay-window", 0,
	    0, &a);
	cur = ctl_call(c, "GET", "/api/v1/crypto", NULL);
	if ((v = ctl_opt(o, "cipher")) != NULL)
		json_object_set_new(cur, "cipher", json_string(v));
	if ((v = ctl_opt(o, "rekey")) != NULL)
		json_object_set_new(cur, "rekey_seconds", json_integer(
		    (json_int_t)ctl_number(v, 1, UINT32_MAX, "--rekey")));
	if ((v = ctl_opt(o, "replay-window")) != NULL)
		json_object_set_new(cur, "replay_window", json_integer(
		    (json_int_t)ctl_number(v, 1, UINT32_MAX,
		    "--replay-window")));
	json_decref(o);
	ctl_show_obj(c, ctl_call(c, "PUT", "/api/v1/crypto", cur),
	    ctl_crypto_keys, ARRAY_SIZE(ctl_crypto_keys));
	return 0;
}

static int
ctl_cmd_token(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	char path[128];
	json_t *o, *reply;

	if (strcmp(sub, "create") != 0)
		ctl_usage_exit("token: expected create");
	o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
	json_decref(o);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/token",
	    (unsigned long long)ctl_site_id(c, a.pos[0]));
	reply = ctl_call(c, "POST", path, NULL);
	if (c->json) {
		ctl_print_json(reply);
	} else {
		printf("%s\n", json_string_value(json_object_get(reply,
		    "token")));
		fprintf(stderr, "enrollment token for site %s, single use, "
		    "expires at %lld (shown only once)\n", a.pos[0],
		    (long long)json_integer_value(json_object_get(reply,
		    "expires_at")));
	}
	json_decref(reply);
	return 0;
}

static int
ctl_cmd_apitoken(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";
	struct ctl_args a;
	char path[512], enc[300];
	json_t *o, *reply;

	if (strcmp(sub, "list") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 0, 0, &a);
		json_decref(o);
		reply = ctl_call(c, "GET", "/api/v1/tokens", NULL);
		ctl_show_list(c, reply, "tokens", ctl_token_cols,
		    ARRAY_SIZE(ctl_token_cols));
		return 0;
	}
	if (strcmp(sub, "create") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "role", 1, 1, &a);
		if (ctl_opt(o, "role") == NULL)
			ctl_usage_exit("apitoken create: --role is required");
		reply = ctl_call(c, "POST", "/api/v1/tokens", json_pack(
		    "{s:s, s:s}", "name", a.pos[0], "role",
		    ctl_opt(o, "role")));
		json_decref(o);
		if (c->json) {
			ctl_print_json(reply);
		} else {
			printf("%s\n", json_string_value(json_object_get(reply,
			    "token")));
			fprintf(stderr, "API token '%s' (role %s), shown only "
			    "once\n", a.pos[0], json_string_value(
			    json_object_get(reply, "role")));
		}
		json_decref(reply);
		return 0;
	}
	if (strcmp(sub, "del") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		ctl_urlenc(c, a.pos[0], enc, sizeof(enc));
		snprintf(path, sizeof(path), "/api/v1/tokens/%s", enc);
		json_decref(ctl_call(c, "DELETE", path, NULL));
		if (!c->json)
			printf("deleted API token %s\n", a.pos[0]);
		return 0;
	}
	ctl_usage_exit("apitoken: expected list, create or del");
	return CTL_EXIT_USAGE;
}

static int
ctl_cmd_tunnel(struct ctl *c, int argc, char **argv)
{
	struct ctl_args a;
	char path[128];
	json_t *o;
	const char *site;

	if (argc >= 2 && strcmp(argv[1], "rekey") == 0) {
		o = ctl_parse_sub(argc - 1, argv + 1, "", 1, 1, &a);
		json_decref(o);
		snprintf(path, sizeof(path), "/api/v1/tunnels/%llu/rekey",
		    (unsigned long long)ctl_number(a.pos[0], 1, INT64_MAX,
		    "tunnel id"));
		ctl_rekey_done(c, ctl_call(c, "POST", path, NULL), "tunnel",
		    a.pos[0]);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "list") != 0)
		ctl_usage_exit("tunnel: expected list or rekey");
	o = ctl_parse_sub(argc - 1, argv + 1, "site", 0, 0, &a);
	site = ctl_opt(o, "site");
	if (site != NULL)
		snprintf(path, sizeof(path), "/api/v1/tunnels?site=%llu",
		    (unsigned long long)ctl_site_id(c, site));
	else
		snprintf(path, sizeof(path), "/api/v1/tunnels");
	json_decref(o);
	ctl_show_list(c, ctl_call(c, "GET", path, NULL), "tunnels",
	    ctl_tunnel_cols, ARRAY_SIZE(ctl_tunnel_cols));
	return 0;
}

static int
ctl_cmd_edge(struct ctl *c, int argc, char **argv)
{
	struct ctl_args a;
	json_t *o;

	if (argc < 2 || strcmp(argv[1], "list") != 0)
		ctl_usage_exit("edge: expected list");
	o = ctl_parse_sub(argc - 1, argv + 1, "", 0, 0, &a);
	json_decref(o);
	ctl_show_list(c, ctl_call(c, "GET", "/api/v1/edges", NULL), "edges",
	    ctl_edge_cols, ARRAY_SIZE(ctl_edge_cols));
	return 0;
}

static int
ctl_cmd_events(struct ctl *c, int argc, char **argv)
{
	struct ctl_args a;
	char path[128];
	size_t used;
	json_t *o;
	const char *v;

	o = ctl_parse_sub(argc, argv, "limit after", 0, 0, &a);
	used = (size_t)snprintf(path, sizeof(path), "/api/v1/events?limit=%llu",
	    (unsigned long long)ctl_number(ctl_opt(o, "limit") != NULL ?
	    ctl_opt(o, "limit") : "50", 1, 1000, "--limit"));
	if ((v = ctl_opt(o, "after")) != NULL)
		snprintf(path + used, sizeof(path) - used, "&after=%llu",
		    (unsigned long long)ctl_number(v, 0, INT64_MAX,
		    "--after"));
	json_decref(o);
	ctl_show_list(c, ctl_call(c, "GET", path, NULL), "events",
	    ctl_event_cols, ARRAY_SIZE(ctl_event_cols));
	return 0;
}

static void
ctl_read_token_file(struct ctl *c, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "meshwanctl: cannot read token file %s: %s\n",
		    path, strerror(errno));
		exit(CTL_EXIT_USAGE);
	}
	if (fgets(c->token, sizeof(c->token), f) == NULL)
		c->token[0] = '\0';
	fclose(f);
	n = strcspn(c->token, "\r\n");
	c->token[n] = '\0';
	if (c->token[0] == '\0') {
		fprintf(stderr, "meshwanctl: token file %s is empty\n", path);
		exit(CTL_EXIT_USAGE);
	}
}

static const struct {
	const char *name;
	int (*fn)(struct ctl *, int, char **);
} ctl_cmds[] = {
	{ "site", ctl_cmd_site },
	{ "link", ctl_cmd_link },
	{ "prefix", ctl_cmd_prefix },
	{ "policy", ctl_cmd_policy },
	{ "crypto", ctl_cmd_crypto },
	{ "token", ctl_cmd_token },
	{ "apitoken", ctl_cmd_apitoken },
	{ "tunnel", ctl_cmd_tunnel },
	{ "edge", ctl_cmd_edge },
	{ "events", ctl_cmd_events },
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token", required_argument, NULL, 't' },
		{ "token-file", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c;
	const char *token = getenv("MESHWAN_TOKEN");
	const char *token_file = getenv("MESHWAN_TOKEN_FILE");
	size_t i, n;
	int ch, rc;

	const char *url = getenv("MESHWAN_URL");

	memset(&c, 0, sizeof(c));
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 't': token = optarg; token_file = NULL; break;
		case 'f': token_file = optarg; token = NULL; break;
		case 'j': c.json = true; break;
		case 'h': fputs(ctl_usage, stdout); return CTL_EXIT_OK;
		default: ctl_usage_exit(NULL);
		}
	}
	if (optind >= argc)
		ctl_usage_exit("missing command");
	if (token_file != NULL && token_file[0] != '\0')
		ctl_read_token_file(&c, token_file);
	else if (token != NULL && util_strcpy(c.token, sizeof(c.token),
	    token) == -1)
		ctl_usage_exit("token too long");
	if (url == NULL || url[0] == '\0')
		url = "http://127.0.0.1:8080";
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (c.curl = curl_easy_init()) == NULL) {
		fprintf(stderr, "meshwanctl: cannot initialise libcurl\n");
		return CTL_EXIT_CONN;
	}
	c.url = strndup(url, n);
	if (c.url == NULL) {
		curl_easy_cleanup(c.curl);
		return CTL_EXIT_CONN;
	}
	rc = -1;
	for (i = 0; i < ARRAY_SIZE(ctl_cmds); i++) {
		if (strcmp(argv[optind], ctl_cmds[i].name) == 0) {
			rc = ctl_cmds[i].fn(&c, argc - optind, argv + optind);
			break;
		}
	}
	if (rc == -1) {
		fprintf(stderr, "meshwanctl: unknown command '%s'\n",
		    argv[optind]);
		ctl_usage_exit(NULL);
	}
	util_wipe(c.token, sizeof(c.token));
	curl_easy_cleanup(c.curl);
	curl_global_cleanup();
	free((char *)c.url);
	return rc;
}
