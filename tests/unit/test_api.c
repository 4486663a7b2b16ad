/*
 * test_api.c — the REST API over real HTTP: a server on 127.0.0.1 (any
 * free port) backed by a real sqlite store in a temporary folder, driven
 * through libcurl.  Covers CRUD round trips of every resource, the
 * bad-input list (each checking status, code, field and that the
 * database did not change), the role matrix, /healthz, /metrics, the
 * OpenAPI document, the audit trail and the daemon hook.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "controller/api.h"
#include "controller/auth.h"
#include "controller/metrics.h"
#include "controller/store.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"

#define HOOK_MAX 64

struct fixture {
	char dir[64];
	char db[128];
	struct store *st;	/* the API thread's connection */
	struct store *st2;	/* the "daemon's" connection */
	struct api *api;
	struct metrics metrics;
	char base[64];
	char admin[STORE_TOKEN_LEN + 1];
	char oper[STORE_TOKEN_LEN + 1];
	char ro[STORE_TOKEN_LEN + 1];
	/* Test double of the daemon's hook: what it was told. */
	size_t hook_calls;
	size_t hook_n[HOOK_MAX];
	uint64_t hook_first[HOOK_MAX];
};

struct reply {
	long status;
	char *body;
	size_t len;
	json_t *json;
	char allow[64];
	char ctype[96];
	bool challenge;		/* a WWW-Authenticate header came */
};

static struct fixture *fx;

static void
hook_record(void *arg, const uint64_t *ids, size_t n)
{
	struct fixture *f = arg;

	if (f->hook_calls < HOOK_MAX) {
		f->hook_n[f->hook_calls] = n;
		f->hook_first[f->hook_calls] = n > 0 ? ids[0] : 0;
	}
	f->hook_calls++;
}

static size_t
on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct reply *r = arg;
	char *nb = realloc(r->body, r->len + sz * nm + 1);

	assert_non_null(nb);
	r->body = nb;
	memcpy(r->body + r->len, p, sz * nm);
	r->len += sz * nm;
	r->body[r->len] = '\0';
	return sz * nm;
}

static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct reply *r = arg;
	size_t n = sz * nm;

	if (n > 7 && strncasecmp(p, "Allow: ", 7) == 0)
		snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(n - 9),
		    p + 7);
	if (n > 18 && strncasecmp(p, "WWW-Authenticate: ", 18) == 0)
		r->challenge = true;
	if (n > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
		snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)(n - 16),
		    p + 14);
	return n;
}

static void
reply_free(struct reply *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/* One request; token NULL sends no Authorization header. */
static void
req_raw(const char *method, const char *path, const char *auth,
    const char *body, size_t body_len, struct reply *r)
{
	struct curl_slist *h = NULL;
	char url[512], hdr[256];
	CURL *c = curl_easy_init();

	memset(r, 0, sizeof(*r));
	assert_non_null(c);
	snprintf(url, sizeof(url), "%s%s", fx->base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	if (auth != NULL) {
		snprintf(hdr, sizeof(hdr), "Authorization: %s", auth);
		h = curl_slist_append(h, hdr);
	}
	if (body != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->len > 0 && strncmp(r->ctype, "application/json", 16) == 0)
		r->json = json_loadb(r->body, r->len, 0, NULL);
}

static void
req(const char *method, const char *path, const char *token,
    const char *body, struct reply *r)
{
	char auth[128];

	if (token != NULL)
		snprintf(auth, sizeof(auth), "Bearer %s", token);
	req_raw(method, path, token != NULL ? auth : NULL, body,
	    body != NULL ? strlen(body) : 0, r);
}

/*
 * Sends request (len bytes, exactly as given: raw bytes in the path,
 * broken protocol) over a new connection and reads until the server
 * closes it; the request should say "Connection: close".  Fills r's
 * status, content type, body and JSON.
 */
static void
raw_req(const char *request, size_t len, struct reply *r)
{
	struct sockaddr_in sin;
	char *p, *hdr_end;
	char buf[65536];
	size_t got = 0;
	ssize_t n;
	int fd;

	memset(r, 0, sizeof(*r));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(api_port(fx->api));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
	while (got < sizeof(buf) - 1 &&
	    (n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	assert_true(got > 12 && strncmp(buf, "HTTP/1.", 7) == 0);
	r->status = strtol(buf + 9, NULL, 10);
	hdr_end = strstr(buf, "\r\n\r\n");
	assert_non_null(hdr_end);
	*hdr_end = '\0';
	if ((p = strcasestr(buf, "\r\nContent-Type: ")) != NULL)
		snprintf(r->ctype, sizeof(r->ctype), "%.*s",
		    (int)strcspn(p + 16, "\r"), p + 16);
	if ((p = strcasestr(buf, "\r\nAllow: ")) != NULL)
		snprintf(r->allow, sizeof(r->allow), "%.*s",
		    (int)strcspn(p + 9, "\r"), p + 9);
	r->len = got - (size_t)(hdr_end + 4 - buf);
	r->body = malloc(r->len + 1);
	assert_non_null(r->body);
	memcpy(r->body, hdr_end + 4, r->len);
	r->body[r->len] = '\0';
	if (r->len > 0 && strncmp(r->ctype, "application/json", 16) == 0)
		r->json = json_loadb(r->body, r->len, 0, NULL);
}

/* raw_req of "METHOD TARGET HTTP/1.1" with the admin token. */
static void
raw_get(const char *method, const char *target, struct reply *r)
{
	char rq[1024];
	int n = snprintf(rq, sizeof(rq), "%s %s HTTP/1.1\r\nHost: t\r\n"
	    "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", method,
	    target, fx->admin);

	assert_true(n > 0 && (size_t)n < sizeof(rq));
	raw_req(rq, (size_t)n, r);
}

/* Request that must answer `status`; returns the JSON (owned by r). */
static json_t *
req_ok(const char *method, const char *path, const char *token,
    const char *body, long status, struct reply *r)
{
	req(method, path, token, body, r);
	if (r->status != status)
		fprintf(stderr, "%s %s -> %ld %s\n", method, path, r->status,
		    r->body != NULL ? r->body : "");
	assert_int_equal(r->status, status);
	return r->json;
}

/* The error reply must carry this status, code and field (NULL = null). */
static void
assert_error(const struct reply *r, long status, const char *code,
    const char *field)
{
	const json_t *f;

	if (r->status != status || r->json == NULL ||
	    strcmp(json_string_value(json_object_get(r->json, "code")),
	    code) != 0)
		fprintf(stderr, "expected %ld %s (%s), got %ld %s\n", status,
		    code, field != NULL ? field : "null", r->status,
		    r->body != NULL ? r->body : "");
	assert_int_equal(r->status, status);
	assert_non_null(r->json);
	assert_string_equal(json_string_value(json_object_get(r->json,
	    "code")), code);
	assert_non_null(json_string_value(json_object_get(r->json,
	    "message")));
	f = json_object_get(r->json, "field");
	assert_non_null(f);
	if (field == NULL) {
		assert_true(json_is_null(f));
	} else {
		if (!json_is_string(f) || strcmp(json_string_value(f),
		    field) != 0)
			fprintf(stderr, "field: %s\n", r->body);
		assert_string_equal(json_string_value(f), field);
	}
}

/*
 * Everything a client can see of the database, as one string: a refused
 * request must leave it byte for byte the same.
 */
static char *
snapshot(void)
{
	static const char *const paths[] = {
		"/api/v1/sites", "/api/v1/policy", "/api/v1/crypto",
		"/api/v1/tunnels", "/api/v1/edges", "/api/v1/tokens",
		"/api/v1/events?limit=1000",
	};
	struct reply r;
	size_t i, len = 0;
	char *s = NULL;
	FILE *f = open_memstream(&s, &len);

	assert_non_null(f);
	for (i = 0; i < ARRAY_SIZE(paths); i++) {
		req_ok("GET", paths[i], fx->admin, NULL, 200, &r);
		fprintf(f, "%s\n%s\n", paths[i], r.body);
		reply_free(&r);
	}
	fclose(f);
	return s;
}

static void
assert_unchanged(const char *before)
{
	char *after = snapshot();

	if (strcmp(before, after) != 0)
		fprintf(stderr, "database changed:\n--- before\n%s\n--- after\n"
		    "%s\n", before, after);
	assert_string_equal(before, after);
	free(after);
}

static void
make_token(const char *name, const char *role, char *out)
{
	char body[128];
	struct reply r;
	json_t *j;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"role\":\"%s\"}", name,
	    role);
	j = req_ok("POST", "/api/v1/tokens", fx->admin, body, 201, &r);
	assert_int_equal(strlen(json_string_value(json_object_get(j,
	    "token"))), STORE_TOKEN_LEN);
	strcpy(out, json_string_value(json_object_get(j, "token")));
	reply_free(&r);
}

static int
setup(void **state)
{
	struct store_opts so = { 0 };
	struct api_config ac;
	struct model_error err;
	char tokfile[128];
	bool created;
	FILE *f;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_api.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->db, sizeof(fx->db), "%s/db.sqlite", fx->dir);
	so.path = fx->db;
	assert_int_equal(store_open(&so, &fx->st, &err), 0);
	assert_int_equal(store_open(&so, &fx->st2, &err), 0);

	/* First start: the bootstrap admin token lands in a 0600 file. */
	snprintf(tokfile, sizeof(tokfile), "%s/admin.token", fx->dir);
	assert_int_equal(auth_bootstrap(fx->st, tokfile, &created), 0);
	assert_true(created);
	{
		struct stat sb;
		assert_int_equal(stat(tokfile, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	f = fopen(tokfile, "r");
	assert_non_null(f);
	assert_non_null(fgets(fx->admin, sizeof(fx->admin), f));
	fclose(f);
	/* A second start keeps the existing token. */
	assert_int_equal(auth_bootstrap(fx->st, tokfile, &created), 0);
	assert_false(created);

	memset(&ac, 0, sizeof(ac));
	ac.listen = "127.0.0.1:0";
	ac.max_body = 16 * 1024;
	ac.hooks.topology_changed = hook_record;
	ac.hooks.arg = fx;
	ac.metrics = &fx->metrics;
	fx->api = api_start(&ac, fx->st);
	assert_non_null(fx->api);
	snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%u",
	    (unsigned)api_port(fx->api));
	make_token("ops", "operator", fx->oper);
	make_token("viewer", "readonly", fx->ro);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	api_stop(fx->api);
	store_close(fx->st);
	store_close(fx->st2);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	fx = NULL;
	return 0;
}

/* Creates a site through the API (operator) and returns its id. */
static uint64_t
site_add(const char *body)
{
	struct reply r;
	json_t *j = req_ok("POST", "/api/v1/sites", fx->oper, body, 201, &r);
	uint64_t id = (uint64_t)json_integer_value(json_object_get(j, "id"));

	reply_free(&r);
	return id;
}

static void
site_del(uint64_t id)
{
	char path[64];
	struct reply r;

	snprintf(path, sizeof(path), "/api/v1/sites/%llu",
	    (unsigned long long)id);
	req_ok("DELETE", path, fx->oper, NULL, 204, &r);
	reply_free(&r);
}

/* ------------------------------------------------------------------ */

static void
test_healthz_public(void **state)
{
	struct reply r;
	json_t *j;

	(void)state;
	j = req_ok("GET", "/healthz", NULL, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "status")),
	    "ok");
	reply_free(&r);
}

/* Every "$ref" of the document points at something inside it. */
static size_t
openapi_check_refs(const json_t *root, const json_t *j)
{
	const char *key, *ref;
	const json_t *v, *t;
	size_t n = 0, i;
	char part[64];

	if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			n += openapi_check_refs(root, v);
		return n;
	}
	if (!json_is_object(j))
		return 0;
	json_object_foreach((json_t *)j, key, v) {
		if (strcmp(key, "$ref") != 0) {
			n += openapi_check_refs(root, v);
			continue;
		}
		ref = json_string_value(v);
		assert_non_null(ref);
		assert_int_equal(strncmp(ref, "#/", 2), 0);
		t = root;
		for (ref += 2; *ref != '\0' && t != NULL;) {
			size_t l = strcspn(ref, "/");
			snprintf(part, sizeof(part), "%.*s", (int)l, ref);
			t = json_object_get(t, part);
			ref += l + (ref[l] == '/');
		}
		if (t == NULL)
			fprintf(stderr, "dangling $ref %s\n",
			    json_string_value(v));
		assert_non_null(t);
		n++;
	}
	return n;
}

static void
test_openapi_served(void **state)
{
	struct reply r;
	json_t *j, *paths;

	(void)state;
	j = req_ok("GET", "/api/v1/openapi.json", NULL, NULL, 200, &r);
	assert_non_null(j);
	assert_int_equal(strncmp(json_string_value(json_object_get(j,
	    "openapi")), "3.", 2), 0);
	paths = json_object_get(j, "paths");
	assert_non_null(json_object_get(paths, "/api/v1/sites"));
	assert_non_null(json_object_get(paths, "/api/v1/sites/{id}/token"));
	assert_non_null(json_object_get(paths, "/api/v1/tokens/{name}"));
	assert_non_null(json_object_get(paths, "/metrics"));
	assert_true(openapi_check_refs(j, j) > 20);
	reply_free(&r);
}

static void
test_sites_crud(void **state)
{
	struct reply r;
	json_t *j;
	uint64_t id;
	char path[96];
	size_t calls;

	(void)state;
	calls = fx->hook_calls;
	id = site_add("{\"name\":\"paris\",\"region\":\"eu\",\"role\":\"hub\","
	    "\"backend\":\"uesp\",\"links\":[{\"name\":\"inet\","
	    "\"address\":\"192.0.2.1\",\"public_address\":\"198.51.100.1\","
	    "\"public_port\":4501}],\"lan_prefixes\":[\"10.1.0.0/24\","
	    "\"10.1.1.0/24\"]}");
	assert_true(id > 0);
	assert_int_equal(fx->hook_calls, calls + 1);
	assert_int_equal(fx->hook_n[calls], 1);
	assert_int_equal(fx->hook_first[calls], id);

	snprintf(path, sizeof(path), "/api/v1/sites/%llu",
	    (unsigned long long)id);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
	    "paris");
	assert_string_equal(json_string_value(json_object_get(j, "role")),
	    "hub");
	assert_string_equal(json_string_value(json_object_get(j, "region")),
	    "eu");
	assert_string_equal(json_string_value(json_object_get(j, "backend")),
	    "uesp");
	/* ASN assigned from the policy's private range. */
	assert_true(json_integer_value(json_object_get(j, "asn")) >= 64512);
	assert_true(json_integer_value(json_object_get(j, "asn")) <= 65534);
	assert_int_equal(json_array_size(json_object_get(j, "lan_prefixes")),
	    2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    json_object_get(j, "links"), 0), "public_address")),
	    "198.51.100.1");
	reply_free(&r);

	j = req_ok("GET", "/api/v1/sites?name=paris", fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "sites")), 1);
	reply_free(&r);

	j = req_ok("PATCH", path, fx->oper, "{\"region\":\"eu-west\","
	    "\"asn\":65010,\"role\":\"spoke\"}", 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "region")),
	    "eu-west");
	reply_free(&r);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "region")),
	    "eu-west");
	assert_string_equal(json_string_value(json_object_get(j, "role")),
	    "spoke");
	assert_int_equal(json_integer_value(json_object_get(j, "asn")), 65010);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
	    "paris");
	reply_free(&r);

	/* Revocation is one way; a revoked site gets no enrollment token. */
	j = req_ok("PATCH", path, fx->oper, "{\"revoked\":true}", 200, &r);
	assert_true(json_is_true(json_object_get(j, "revoked")));
	reply_free(&r);
	{
		char *before = snapshot();
		char tpath[128];

		req("PATCH", path, fx->oper, "{\"revoked\":false}", &r);
		assert_error(&r, 409, "conflict", "revoked");
		reply_free(&r);
		snprintf(tpath, sizeof(tpath), "%s/token", path);
		req("POST", tpath, fx->oper, NULL, &r);
		assert_error(&r, 409, "conflict", NULL);
		reply_free(&r);
		assert_unchanged(before);
		free(before);
	}
	site_del(id);
	req("GET", path, fx->ro, NULL, &r);
	assert_error(&r, 404, "not_found", "site");
	reply_free(&r);
	j = req_ok("GET", "/api/v1/sites?name=paris", fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "sites")), 0);
	reply_free(&r);
}

static void
test_links_crud(void **state)
{
	struct reply r;
	json_t *j;
	uint64_t id;
	char path[128];

	(void)state;
	id = site_add("{\"name\":\"berlin\",\"role\":\"spoke\"}");
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
	    (unsigned long long)id);
	j = req_ok("POST", path, fx->oper, "{\"name\":\"mpls\","
	    "\"address\":\"203.0.113.7\"}", 201, &r);
	assert_string_equal(json_string_value(json_object_get(j, "name")),
	    "mpls");
	reply_free(&r);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "links")), 1);
	reply_free(&r);

	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links/mpls",
	    (unsigned long long)id);
	j = req_ok("PATCH", path, fx->oper, "{\"public_address\":"
	    "\"198.51.100.9\",\"public_port\":10000}", 200, &r);
	reply_free(&r);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "address")),
	    "203.0.113.7");
	assert_string_equal(json_string_value(json_object_get(j,
	    "public_address")), "198.51.100.9");
	assert_int_equal(json_integer_value(json_object_get(j,
	    "public_port")), 10000);
	reply_free(&r);
	req_ok("DELETE", path, fx->oper, NULL, 204, &r);
	reply_free(&r);
	req("GET", path, fx->ro, NULL, &r);
	assert_error(&r, 404, "not_found", "name");
	reply_free(&r);
	site_del(id);
}

static void
test_prefixes(void **state)
{
	struct reply r;
	json_t *j;
	uint64_t id;
	char path[128];

	(void)state;
	id = site_add("{\"name\":\"rome\",\"role\":\"spoke\"}");
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/prefixes",
	    (unsigned long long)id);
	req_ok("POST", path, fx->oper, "{\"prefix\":\"10.9.0.0/16\"}", 201,
	    &r);
	reply_free(&r);
	req_ok("POST", path, fx->oper, "{\"prefix\":\"2001:db8:9::/48\"}", 201,
	    &r);
	reply_free(&r);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "prefixes")), 2);
	reply_free(&r);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/prefixes?prefix="
	    "10.9.0.0%%2F16", (unsigned long long)id);
	req_ok("DELETE", path, fx->oper, NULL, 200, &r);
	reply_free(&r);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/prefixes",
	    (unsigned long long)id);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "prefixes")), 1);
	assert_string_equal(json_string_value(json_array_get(json_object_get(j,
	    "prefixes"), 0)), "2001:db8:9::/48");
	reply_free(&r);
	site_del(id);
}

static void
test_policy_crypto(void **state)
{
	struct reply r;
	json_t *j;
	size_t calls = fx->hook_calls;

	(void)state;
	j = req_ok("GET", "/api/v1/policy", fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "mode")),
	    "full-mesh");
	reply_free(&r);
	j = req_ok("PUT", "/api/v1/policy", fx->admin, "{\"mode\":"
	    "\"hub-and-spoke\",\"encap\":\"vxlan\",\"vni_min\":1000,"
	    "\"vni_max\":2000,\"pairs\":[[\"inet\",\"inet\"],[\"mpls\","
	    "\"inet\"]]}", 200, &r);
	reply_free(&r);
	/* A whole-network change: the hook hears n == 0. */
	assert_int_equal(fx->hook_calls, calls + 1);
	assert_int_equal(fx->hook_n[calls], 0);
	j = req_ok("GET", "/api/v1/policy", fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "mode")),
	    "hub-and-spoke");
	assert_string_equal(json_string_value(json_object_get(j, "encap")),
	    "vxlan");
	assert_string_equal(json_string_value(json_object_get(j, "pairing")),
	    "list");
	assert_int_equal(json_array_size(json_object_get(j, "pairs")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "vni_min")),
	    1000);
	reply_free(&r);
	req_ok("PUT", "/api/v1/policy", fx->admin, "{\"mode\":\"full-mesh\","
	    "\"encap\":\"gre\",\"pairing\":\"same-colour\",\"pairs\":[]}", 200, &r);
	reply_free(&r);

	j = req_ok("PUT", "/api/v1/crypto", fx->admin, "{\"cipher\":"
	    "\"aes-gcm-128\",\"rekey_seconds\":7200,\"replay_window\":2048}",
	    200, &r);
	reply_free(&r);
	j = req_ok("GET", "/api/v1/crypto", fx->ro, NULL, 200, &r);
	assert_string_equal(json_string_value(json_object_get(j, "cipher")),
	    "aes-gcm-128");
	assert_int_equal(json_integer_value(json_object_get(j,
	    "rekey_seconds")), 7200);
	assert_int_equal(json_integer_value(json_object_get(j,
	    "replay_window")), 2048);
	reply_free(&r);
}

static void
test_enroll_token(void **state)
{
	struct model_error err;
	struct reply r;
	json_t *j;
	uint64_t id, bound = 0;
	char path[96], token[STORE_TOKEN_LEN + 1];
	char *events;

	(void)state;
	id = site_add("{\"name\":\"lyon\",\"role\":\"spoke\"}");
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/token",
	    (unsigned long long)id);
	j = req_ok("POST", path, fx->oper, NULL, 201, &r);
	assert_int_equal(json_integer_value(json_object_get(j, "site_id")),
	    (json_int_t)id);
	assert_true(json_integer_value(json_object_get(j, "expires_at")) >
	    (json_int_t)time(NULL));
	strcpy(token, json_string_value(json_object_get(j, "token")));
	assert_int_equal(strlen(token), STORE_TOKEN_LEN);
	reply_free(&r);

	/* The token appears nowhere else: not in the audit log... */
	events = snapshot();
	assert_null(strstr(events, token));
	assert_null(strstr(events, token + 4));
	free(events);
	/* ...and it works exactly once for the daemon's enrollment. */
	assert_int_equal(store_enroll_token_consume(fx->st2, token, id,
	    (int64_t)time(NULL), &bound, &err), 0);
	assert_int_equal(bound, id);
	assert_int_equal(store_enroll_token_consume(fx->st2, token, id,
	    (int64_t)time(NULL), &bound, &err), -1);
	site_del(id);
}

static void
test_api_tokens(void **state)
{
	struct reply r;
	json_t *j, *t;
	size_t i;
	char tok[STORE_TOKEN_LEN + 1];

	(void)state;
	make_token("script", "readonly", tok);
	j = req_ok("GET", "/api/v1/tokens", fx->admin, NULL, 200, &r);
	json_array_foreach(json_object_get(j, "tokens"), i, t) {
		/* Listing never shows secrets or their hashes. */
		assert_null(json_object_get(t, "token"));
		assert_null(json_object_get(t, "hash"));
	}
	assert_null(strstr(r.body, tok));
	assert_null(strstr(r.body, tok + 4));
	reply_free(&r);
	req_ok("GET", "/api/v1/sites", tok, NULL, 200, &r);
	reply_free(&r);
	req_ok("DELETE", "/api/v1/tokens/script", fx->admin, NULL, 204, &r);
	reply_free(&r);
	/* A deleted token no longer opens anything. */
	req("GET", "/api/v1/sites", tok, NULL, &r);
	assert_error(&r, 401, "unauthorized", NULL);
	reply_free(&r);
	/* The last admin token cannot be deleted. */
	{
		char *before = snapshot();
		req("DELETE", "/api/v1/tokens/admin", fx->admin, NULL, &r);
		assert_error(&r, 409, "conflict", NULL);
		reply_free(&r);
		assert_unchanged(before);
		free(before);
	}
}

/* Lets the "daemon" compile and persist tunnels, as ctld does. */
static void
daemon_compile(void)
{
	struct model_policy policy;
	struct model_crypto crypto;
	struct model_site *sites = NULL;
	struct model_tunnel *tunnels = NULL;
	struct topo_output *out = NULL;
	struct topo_change chg;
	struct model_error err;
	struct topo_input in;
	struct topo_prev prev;
	size_t ns = 0, nt = 0;
	uint64_t next = 0;

	assert_int_equal(store_policy_get(fx->st2, &policy, &err), 0);
	assert_int_equal(store_crypto_get(fx->st2, &crypto, &err), 0);
	assert_int_equal(store_site_list(fx->st2, &sites, &ns, &err), 0);
	assert_int_equal(store_tunnel_list(fx->st2, &tunnels, &nt, &next,
	    &err), 0);
	in.policy = &policy;
	in.crypto = &crypto;
	in.sites = sites;
	in.n_sites = ns;
	prev.tunnels = tunnels;
	prev.n_tunnels = nt;
	prev.next_id = next;
	memset(&chg, 0, sizeof(chg));
	assert_int_equal(topo_compile(&in, &prev, &out, &chg, &err), 0);
	assert_int_equal(store_tunnel_apply(fx->st2, chg.removed,
	    chg.n_removed, chg.added, chg.n_added, topo_next_id(out), &err), 0);
	topo_change_free(&chg);
	topo_free(out);
	free(sites);
	free(tunnels);
}

static void
test_tunnels_edges(void **state)
{
	struct model_error err;
	struct reply r;
	json_t *j, *e;
	uint64_t a, b, c, v;
	char path[96];
	size_t i;

	(void)state;
	a = site_add("{\"name\":\"t-a\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.10\"}]}");
	b = site_add("{\"name\":\"t-b\",\"role\":\"spoke\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.11\"}]}");
	c = site_add("{\"name\":\"t-c\",\"role\":\"spoke\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.12\"}]}");
	daemon_compile();
	j = req_ok("GET", "/api/v1/tunnels", fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "tunnels")), 3);
	reply_free(&r);
	snprintf(path, sizeof(path), "/api/v1/tunnels?site=%llu",
	    (unsigned long long)a);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "tunnels")), 2);
	e = json_array_get(json_object_get(j, "tunnels"), 0);
	assert_non_null(strstr(json_string_value(json_object_get(e, "inner")),
	    "/31"));
	reply_free(&r);

	/* The daemon records a session and an ack for b. */
	assert_int_equal(store_edge_bump_intent(fx->st2, b, &v, &err), 0);
	assert_int_equal(store_edge_set_connected(fx->st2, b, true,
	    (int64_t)time(NULL), "meshwan-edge 0.9", &err), 0);
	j = req_ok("GET", "/api/v1/edges", fx->ro, NULL, 200, &r);
	json_array_foreach(json_object_get(j, "edges"), i, e) {
		if ((uint64_t)json_integer_value(json_object_get(e,
		    "site_id")) != b)
			continue;
		assert_true(json_is_true(json_object_get(e, "connected")));
		assert_true(json_is_false(json_object_get(e, "converged")));
		assert_int_equal(json_integer_value(json_object_get(e,
		    "intent_version")), (json_int_t)v);
		assert_string_equal(json_string_value(json_object_get(e,
		    "software_version")), "meshwan-edge 0.9");
	}
	reply_free(&r);
	assert_int_equal(store_edge_set_applied(fx->st2, b, v, NULL, 0, &err),
	    0);
	assert_int_equal(store_edge_set_status(fx->st2, b, "{\"tunnels\":[]}",
	    14, (int64_t)time(NULL), &err), 0);
	snprintf(path, sizeof(path), "/api/v1/edges/%llu",
	    (unsigned long long)b);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_true(json_is_true(json_object_get(j, "converged")));
	assert_string_equal(json_string_value(json_object_get(j,
	    "software_version")), "meshwan-edge 0.9");
	assert_true(json_is_array(json_object_get(json_object_get(j,
	    "status"), "tunnels")));
	reply_free(&r);
	site_del(a);
	site_del(b);
	site_del(c);
	daemon_compile();
}

struct bad {
	const char *what;
	const char *method;
	const char *path;	/* "{id}" = the existing site's id */
	const char *body;
	long status;
	const char *code;
	const char *field;
};

/* Copies pattern into out with "{id}" replaced by id. */
static void
fill_id(char *out, size_t outsz, const char *pattern, uint64_t id)
{
	const char *p = strstr(pattern, "{id}");

	if (p == NULL) {
		snprintf(out, outsz, "%s", pattern);
		return;
	}
	snprintf(out, outsz, "%.*s%llu%s", (int)(p - pattern), pattern,
	    (unsigned long long)id, p + 4);
}

static void
test_bad_inputs(void **state)
{
	static const struct bad bad[] = {
		{ "malformed JSON", "POST", "/api/v1/sites", "{\"name\":",
		    400, "malformed_json", NULL },
		{ "duplicate key", "POST", "/api/v1/sites", "{\"name\":\"x\","
		    "\"name\":\"y\",\"role\":\"hub\"}", 400, "malformed_json",
		    NULL },
		{ "not an object", "POST", "/api/v1/sites", "[1,2]", 400,
		    "wrong_type", NULL },
		{ "empty body", "POST", "/api/v1/sites", "", 400,
		    "malformed_json", NULL },
		{ "wrong type", "POST", "/api/v1/sites", "{\"name\":5,"
		    "\"role\":\"hub\"}", 400, "wrong_type", "name" },
		{ "wrong type nested", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"links\":[{\"name\":\"inet\","
		    "\"address\":\"192.0.2.1\",\"public_port\":\"x\"}]}", 400,
		    "wrong_type", "links[0].public_port" },
		{ "unknown field", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"colour\":\"red\"}", 400,
		    "unknown_field", "colour" },
		{ "unknown nested field", "POST", "/api/v1/sites",
		    "{\"name\":\"n\",\"role\":\"hub\",\"links\":[{\"name\":"
		    "\"inet\",\"address\":\"192.0.2.1\",\"mtu\":1400}]}", 400,
		    "unknown_field", "links[0].mtu" },
		{ "missing field", "POST", "/api/v1/sites", "{\"region\":"
		    "\"eu\",\"role\":\"hub\"}", 400, "missing_field", "name" },
		{ "bad enum", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"king\"}", 400, "invalid", "role" },
		{ "bad name", "POST", "/api/v1/sites", "{\"name\":\"Bad Name\","
		    "\"role\":\"hub\"}", 400, "invalid", "name" },
		{ "invalid CIDR", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"lan_prefixes\":[\"10.0.0.300/24\"]}",
		    400, "invalid", "lan_prefixes[0]" },
		{ "CIDR host bits", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"lan_prefixes\":[\"10.7.0.0/16\","
		    "\"10.8.0.1/24\"]}", 400, "invalid", "lan_prefixes[1]" },
		{ "public ASN", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"asn\":3320}", 400, "invalid", "asn" },
		{ "ASN out of range", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"asn\":5000000000}", 400, "invalid",
		    "asn" },
		{ "negative ASN", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"asn\":-1}", 400, "invalid", "asn" },
		{ "bad link address", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"hub\",\"links\":[{\"name\":\"inet\","
		    "\"address\":\"nowhere\"}]}", 400, "invalid",
		    "links[0].address" },
		{ "port out of range", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"lte\",\"address\":\"192.0.2.9\","
		    "\"public_port\":70000}", 400, "invalid", "public_port" },
		{ "duplicate name", "POST", "/api/v1/sites", "{\"name\":"
		    "\"existing\",\"role\":\"hub\"}", 409, "duplicate", "name" },
		{ "overlapping prefix", "POST", "/api/v1/sites", "{\"name\":"
		    "\"n\",\"role\":\"hub\",\"lan_prefixes\":[\"10.50.1.0/24\"]}",
		    409, "overlap", "lan_prefixes[0]" },
		{ "overlapping prefix add", "POST",
		    "/api/v1/sites/{id}/prefixes", "{\"prefix\":"
		    "\"10.50.0.0/16\"}", 409, "overlap", "prefix" },
		{ "duplicate link", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"inet\",\"address\":\"192.0.2.99\"}", 409,
		    "duplicate", "name" },
		{ "duplicate token name", "POST", "/api/v1/tokens",
		    "{\"name\":\"ops\",\"role\":\"readonly\"}", 409,
		    "duplicate", "name" },
		{ "bad token role", "POST", "/api/v1/tokens", "{\"name\":"
		    "\"x\",\"role\":\"root\"}", 400, "invalid", "role" },
		{ "bad policy mode", "PUT", "/api/v1/policy", "{\"mode\":"
		    "\"star\"}", 400, "invalid", "mode" },
		{ "bad policy pool", "PUT", "/api/v1/policy", "{\"pool\":"
		    "\"100.64.0.0/99\"}", 400, "invalid", "pool" },
		{ "bad pair", "PUT", "/api/v1/policy", "{\"pairs\":[[\"inet\"]]}",
		    400, "wrong_type", "pairs[0]" },
		{ "bad VNI", "PUT", "/api/v1/policy", "{\"vni_max\":16777216}",
		    400, "invalid", "vni_max" },
		{ "bad cipher", "PUT", "/api/v1/crypto", "{\"cipher\":"
		    "\"des\"}", 400, "invalid", "cipher" },
		{ "crypto wrong type", "PUT", "/api/v1/crypto",
		    "{\"rekey_seconds\":\"1h\"}", 400, "wrong_type",
		    "rekey_seconds" },
		{ "unknown query", "GET", "/api/v1/sites?colour=red", NULL, 400,
		    "unknown_field", "colour" },
		{ "bad query value", "GET", "/api/v1/tunnels?site=abc", NULL,
		    400, "invalid", "site" },
		{ "bad events limit", "GET", "/api/v1/events?limit=0", NULL, 400,
		    "invalid", "limit" },
		{ "body where none belongs", "POST", "/api/v1/sites/{id}/token",
		    "{}", 400, "unexpected_body", NULL },
		{ "unknown route", "GET", "/api/v1/nothing", NULL, 404,
		    "no_route", NULL },
		{ "non-numeric id", "GET", "/api/v1/sites/abc", NULL, 404,
		    "no_route", NULL },
		{ "unknown site", "GET", "/api/v1/sites/999999", NULL, 404,
		    "not_found", "site" },
		{ "unknown site patch", "PATCH", "/api/v1/sites/999999",
		    "{\"region\":\"x\"}", 404, "not_found", "site" },
		{ "unknown link", "DELETE", "/api/v1/sites/{id}/links/lte",
		    NULL, 404, "not_found", "name" },
		{ "wrong method", "DELETE", "/api/v1/policy", NULL, 405,
		    "method_not_allowed", NULL },
		{ "wrong method 2", "PUT", "/api/v1/sites", "{}", 405,
		    "method_not_allowed", NULL },
	};
	struct reply r;
	char path[128], *before;
	uint64_t id;
	size_t i, calls;

	(void)state;
	id = site_add("{\"name\":\"existing\",\"role\":\"hub\",\"links\":"
	    "[{\"name\":\"inet\",\"address\":\"192.0.2.50\"}],"
	    "\"lan_prefixes\":[\"10.50.0.0/20\"]}");
	before = snapshot();
	calls = fx->hook_calls;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		fprintf(stderr, "bad input: %s\n", bad[i].what);
		fill_id(path, sizeof(path), bad[i].path, id);
		req(bad[i].method, path, fx->admin, bad[i].body, &r);
		assert_error(&r, bad[i].status, bad[i].code, bad[i].field);
		if (bad[i].status == 405)
			assert_true(r.allow[0] != '\0');
		reply_free(&r);
		assert_unchanged(before);
	}
	/* No refused request reached the daemon. */
	assert_int_equal(fx->hook_calls, calls);
	free(before);
	site_del(id);
}

/*
 * Issue 8 §3: whatever bytes a client sends, an error reply keeps its
 * documented shape — code and message always, field where one applies,
 * every string valid UTF-8 (json_string() refuses anything else, and the
 * key used to vanish).
 */
static void
test_error_shape(void **state)
{
	struct reply r;
	char body[1024], path[512];
	const char *msg;
	uint64_t id;
	size_t i, o;

	(void)state;
	id = site_add("{\"name\":\"shape\",\"role\":\"hub\"}");

	/* A query key that is not UTF-8: named, escaped. */
	req("GET", "/api/v1/sites?%ff=1", fx->admin, NULL, &r);
	assert_error(&r, 400, "unknown_field", "\\xFF");
	assert_non_null(strstr(json_string_value(json_object_get(r.json,
	    "message")), "\\xFF"));
	reply_free(&r);

	/* Raw bytes that are not UTF-8 in a link name of the path. */
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links/a\xff\xc3",
	    (unsigned long long)id);
	raw_get("GET", path, &r);
	assert_error(&r, 404, "not_found", "name");
	msg = json_string_value(json_object_get(r.json, "message"));
	assert_non_null(strstr(msg, "a\\xFF\\xC3"));
	reply_free(&r);

	/* A long link name of two-byte characters: quoted whole
	 * characters only (the old %.40s cut one in two). */
	o = (size_t)snprintf(path, sizeof(path), "/api/v1/sites/%llu/links/",
	    (unsigned long long)id);
	for (i = 0; i < 45; i++)
		o += (size_t)snprintf(path + o, sizeof(path) - o, "\xc3\xa9");
	raw_get("GET", path, &r);
	assert_error(&r, 404, "not_found", "name");
	reply_free(&r);

	/* A long unknown body key of three-byte characters: cut at a
	 * character boundary in the field and the message. */
	o = (size_t)snprintf(body, sizeof(body), "{\"name\":\"n\",\"role\":"
	    "\"hub\",\"");
	for (i = 0; i < 70; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o,
		    "\xe2\x82\xac");
	snprintf(body + o, sizeof(body) - o, "\":1}");
	req("POST", "/api/v1/sites", fx->oper, body, &r);
	assert_int_equal(r.status, 400);
	assert_non_null(r.json);
	assert_string_equal(json_string_value(json_object_get(r.json, "code")),
	    "unknown_field");
	assert_non_null(json_string_value(json_object_get(r.json, "message")));
	assert_non_null(json_string_value(json_object_get(r.json, "field")));
	assert_true(strncmp(json_string_value(json_object_get(r.json,
	    "field")), "\xe2\x82\xac", 3) == 0);
	reply_free(&r);

	/* HEAD on a GET route: the GET's status and headers, no body. */
	raw_get("HEAD", "/api/v1/sites", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_string_equal(r.ctype, "application/json");
	reply_free(&r);
	raw_get("HEAD", "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	reply_free(&r);
	/* ... and the Allow header of a 405 says so. */
	req("PUT", "/api/v1/sites", fx->admin, "{}", &r);
	assert_error(&r, 405, "method_not_allowed", NULL);
	assert_string_equal(r.allow, "GET, HEAD, POST");
	reply_free(&r);
	site_del(id);
}

/* raw_get of the target head, id, tail. */
static void
raw_id(const char *method, const char *head, uint64_t id, const char *tail,
    struct reply *r)
{
	char target[512];

	snprintf(target, sizeof(target), "%s%llu%s", head,
	    (unsigned long long)id, tail);
	raw_get(method, target, r);
}

/*
 * Issue 8 §4, paths and queries: what decoding would hide is refused
 * with 400 before anything is looked up, so a proxy filtering by path
 * cannot be bypassed and a NUL cannot shorten a value.
 */
static void
test_refused_paths(void **state)
{
	struct reply r;
	char *before;
	uint64_t id;

	(void)state;
	id = site_add("{\"name\":\"paths\",\"role\":\"hub\","
	    "\"lan_prefixes\":[\"10.60.0.0/16\"]}");
	before = snapshot();
	raw_id("GET", "/api/v1/sites%2f", id, "", &r);
	assert_error(&r, 400, "bad_path", NULL);
	reply_free(&r);
	raw_id("GET", "/api/v1/sites%2F", id, "", &r);
	assert_error(&r, 400, "bad_path", NULL);
	reply_free(&r);
	raw_id("GET", "/api/v1/sites/", id, "%00abc", &r);
	assert_error(&r, 400, "bad_path", NULL);
	reply_free(&r);
	raw_id("DELETE", "/api/v1/site%73/", id, "", &r);
	assert_error(&r, 400, "bad_path", NULL);
	reply_free(&r);
	raw_id("GET", "/api/v1/sites/0", id, "", &r);
	assert_error(&r, 400, "invalid", "id");
	reply_free(&r);
	raw_id("DELETE", "/api/v1/sites/00", id, "", &r);
	assert_error(&r, 400, "invalid", "id");
	reply_free(&r);
	raw_get("GET", "/api/v1/sites/0", &r);
	assert_error(&r, 400, "invalid", "id");
	reply_free(&r);
	raw_id("GET", "/api/v1/tunnels?site=0", id, "", &r);
	assert_error(&r, 400, "invalid", "site");
	reply_free(&r);
	/* The NUL used to cut the value: this DELETE removed 10.60.0.0/16. */
	raw_id("DELETE", "/api/v1/sites/", id, "/prefixes?prefix=10.60.0.0/16"
	    "%00junk", &r);
	assert_error(&r, 400, "invalid", "prefix");
	reply_free(&r);
	assert_unchanged(before);
	free(before);
	/* An encoded '/' inside a query value is still fine. */
	raw_id("DELETE", "/api/v1/sites/", id, "/prefixes?prefix="
	    "10.60.0.0%2F16", &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	site_del(id);
}

/* Issue 8 §4, values: WAN addresses, LAN prefixes, internet breakout. */
static void
test_refused_values(void **state)
{
	static const struct bad bad[] = {
		{ "unspecified WAN", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"spoke\",\"links\":[{\"name\":\"inet\","
		    "\"address\":\"0.0.0.0\"}]}", 400, "invalid",
		    "links[0].address" },
		{ "loopback WAN", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"lte\",\"address\":\"127.0.0.1\"}", 400,
		    "invalid", "address" },
		{ "broadcast WAN", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"lte\",\"address\":\"255.255.255.255\"}", 400,
		    "invalid", "address" },
		{ "multicast WAN", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"lte\",\"address\":\"224.0.0.5\"}", 400,
		    "invalid", "address" },
		{ "IPv6 unspecified WAN", "POST", "/api/v1/sites/{id}/links",
		    "{\"name\":\"lte\",\"address\":\"::\"}", 400, "invalid",
		    "address" },
		{ "multicast public address", "PATCH",
		    "/api/v1/sites/{id}/links/inet", "{\"public_address\":"
		    "\"ff02::1\"}", 400, "invalid", "public_address" },
		{ "public address of the other family", "POST",
		    "/api/v1/sites/{id}/links", "{\"name\":\"lte\","
		    "\"address\":\"10.7.7.7\",\"public_address\":"
		    "\"2001:db8::7\"}", 400, "invalid", "public_address" },
		{ "shared WAN address", "POST", "/api/v1/sites", "{\"name\":"
		    "\"n\",\"role\":\"spoke\",\"links\":[{\"name\":\"mpls\","
		    "\"address\":\"10.9.9.9\"},{\"name\":\"inet\","
		    "\"address\":\"192.0.2.70\"}]}", 409, "duplicate",
		    "links[1].address" },
		{ "shared public endpoint", "POST", "/api/v1/sites",
		    "{\"name\":\"n\",\"role\":\"spoke\",\"links\":[{\"name\":"
		    "\"inet\",\"address\":\"10.1.1.1\",\"public_address\":"
		    "\"192.0.2.70\"}]}", 409, "duplicate",
		    "links[0].public_address" },
		{ "LAN in the tunnel pool", "POST", "/api/v1/sites/{id}/prefixes",
		    "{\"prefix\":\"100.64.1.0/24\"}", 409, "overlap", "prefix" },
		{ "LAN in the pool on create", "POST", "/api/v1/sites",
		    "{\"name\":\"n\",\"role\":\"spoke\",\"lan_prefixes\":"
		    "[\"10.71.0.0/16\",\"100.64.0.0/10\"]}", 409, "overlap",
		    "lan_prefixes[1]" },
		{ "pool over a LAN", "PUT", "/api/v1/policy", "{\"pool\":"
		    "\"10.70.128.0/17\"}", 409, "overlap", "pool" },
		{ "multicast LAN", "POST", "/api/v1/sites/{id}/prefixes",
		    "{\"prefix\":\"224.0.0.0/24\"}", 400, "invalid", "prefix" },
		{ "loopback LAN", "POST", "/api/v1/sites/{id}/prefixes",
		    "{\"prefix\":\"127.0.0.0/8\"}", 400, "invalid", "prefix" },
		{ "IPv4-mapped LAN", "POST", "/api/v1/sites/{id}/prefixes",
		    "{\"prefix\":\"::ffff:10.70.5.0/120\"}", 400, "invalid",
		    "prefix" },
		{ "default route, no flag", "POST",
		    "/api/v1/sites/{id}/prefixes", "{\"prefix\":\"0.0.0.0/0\"}",
		    400, "invalid", "prefix" },
		{ "default route on a spoke", "POST", "/api/v1/sites",
		    "{\"name\":\"n\",\"role\":\"spoke\",\"lan_prefixes\":"
		    "[\"::/0\"]}", 400, "invalid", "lan_prefixes[0]" },
		{ "breakout spoke", "POST", "/api/v1/sites", "{\"name\":\"n\","
		    "\"role\":\"spoke\",\"internet_breakout\":true}", 400,
		    "invalid", "internet_breakout" },
	};
	struct reply r;
	char path[128], *before;
	uint64_t id, hub2, nat1;
	json_t *j;
	size_t i;

	(void)state;
	id = site_add("{\"name\":\"values\",\"role\":\"hub\",\"links\":"
	    "[{\"name\":\"inet\",\"address\":\"192.0.2.70\"}],"
	    "\"lan_prefixes\":[\"10.70.0.0/16\"]}");
	before = snapshot();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		fprintf(stderr, "bad value: %s\n", bad[i].what);
		fill_id(path, sizeof(path), bad[i].path, id);
		req(bad[i].method, path, fx->admin, bad[i].body, &r);
		assert_error(&r, bad[i].status, bad[i].code, bad[i].field);
		reply_free(&r);
		assert_unchanged(before);
	}
	free(before);

	/* Private and CGNAT addresses are fine, and sites behind one NAT
	 * may share its public address on different ports. */
	nat1 = site_add("{\"name\":\"nat1\",\"role\":\"spoke\",\"links\":"
	    "[{\"name\":\"inet\",\"address\":\"192.168.1.2\","
	    "\"public_address\":\"100.64.7.7\",\"public_port\":4501}]}");
	site_del(site_add("{\"name\":\"nat2\",\"role\":\"spoke\",\"links\":"
	    "[{\"name\":\"inet\",\"address\":\"192.168.1.2\","
	    "\"public_address\":\"100.64.7.7\",\"public_port\":4502}]}"));
	site_del(nat1);

	/* Internet breakout: explicit on a hub, then default routes. */
	fill_id(path, sizeof(path), "/api/v1/sites/{id}", id);
	j = req_ok("PATCH", path, fx->oper, "{\"internet_breakout\":true}",
	    200, &r);
	assert_true(json_is_true(json_object_get(j, "internet_breakout")));
	reply_free(&r);
	fill_id(path, sizeof(path), "/api/v1/sites/{id}/prefixes", id);
	req_ok("POST", path, fx->oper, "{\"prefix\":\"0.0.0.0/0\"}", 201, &r);
	reply_free(&r);
	req_ok("POST", path, fx->oper, "{\"prefix\":\"::/0\"}", 201, &r);
	reply_free(&r);
	/* A second breakout hub may announce the default route too. */
	hub2 = site_add("{\"name\":\"hub2\",\"role\":\"hub\","
	    "\"internet_breakout\":true,\"lan_prefixes\":[\"0.0.0.0/0\","
	    "\"10.72.0.0/16\"]}");
	site_del(hub2);
	/* The flag stays while the default route does. */
	fill_id(path, sizeof(path), "/api/v1/sites/{id}", id);
	req("PATCH", path, fx->oper, "{\"internet_breakout\":false}", &r);
	assert_error(&r, 409, "conflict", "internet_breakout");
	reply_free(&r);
	req("PATCH", path, fx->oper, "{\"role\":\"spoke\"}", &r);
	assert_error(&r, 400, "invalid", "internet_breakout");
	reply_free(&r);
	site_del(id);
}

/*
 * Issue 8 §4, ASN range: it may grow from the 2-byte private block into
 * the 4-byte one (RFC 6996); assignment skips the public ASNs between.
 */
static void
test_asn_range(void **state)
{
	struct reply r;
	json_t *j;
	uint64_t ids[4];
	size_t i, n;
	char body[128];
	static const json_int_t want[] = { 65533, 65534, 4200000000LL,
	    4200000001LL };

	(void)state;
	j = req_ok("GET", "/api/v1/policy", fx->ro, NULL, 200, &r);
	assert_int_equal(json_integer_value(json_object_get(j, "asn_max")),
	    4294967294LL);
	reply_free(&r);
	/* Start from no sites, so the range can be anything. */
	j = req_ok("GET", "/api/v1/sites", fx->ro, NULL, 200, &r);
	n = json_array_size(json_object_get(j, "sites"));
	for (i = 0; i < n; i++)
		site_del((uint64_t)json_integer_value(json_object_get(
		    json_array_get(json_object_get(j, "sites"), i), "id")));
	reply_free(&r);

	req_ok("PUT", "/api/v1/policy", fx->admin, "{\"asn_min\":65533,"
	    "\"asn_max\":65534}", 200, &r);
	reply_free(&r);
	for (i = 0; i < 2; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"asn%zu\",\"role\":"
		    "\"spoke\"}", i);
		ids[i] = site_add(body);
	}
	req("POST", "/api/v1/sites", fx->oper, "{\"name\":\"asnx\",\"role\":"
	    "\"spoke\"}", &r);
	assert_error(&r, 409, "exhausted", "asn");
	reply_free(&r);
	/* Grow into the 4-byte block while sites hold 2-byte ASNs. */
	req_ok("PUT", "/api/v1/policy", fx->admin, "{\"asn_max\":4200000001}",
	    200, &r);
	reply_free(&r);
	for (i = 2; i < 4; i++) {
		snprintf(body, sizeof(body), "{\"name\":\"asn%zu\",\"role\":"
		    "\"spoke\"}", i);
		ids[i] = site_add(body);
	}
	req("POST", "/api/v1/sites", fx->oper, "{\"name\":\"asnx\",\"role\":"
	    "\"spoke\"}", &r);
	assert_error(&r, 409, "exhausted", "asn");
	reply_free(&r);
	for (i = 0; i < 4; i++) {
		snprintf(body, sizeof(body), "/api/v1/sites/%llu",
		    (unsigned long long)ids[i]);
		j = req_ok("GET", body, fx->ro, NULL, 200, &r);
		assert_int_equal(json_integer_value(json_object_get(j, "asn")),
		    want[i]);
		reply_free(&r);
		site_del(ids[i]);
	}
	req_ok("PUT", "/api/v1/policy", fx->admin, "{\"asn_min\":64512,"
	    "\"asn_max\":4294967294}", 200, &r);
	reply_free(&r);
}

static void
test_body_too_large(void **state)
{
	struct reply r;
	size_t n = 20 * 1024, i;
	char *big = malloc(n + 1), *before;

	(void)state;
	assert_non_null(big);
	/* Valid JSON, just too big: the size is what gets it refused. */
	big[0] = '{';
	big[1] = '"';
	for (i = 2; i < n - 2; i++)
		big[i] = 'a';
	big[n - 2] = '"';
	big[n - 1] = '}';
	big[n] = '\0';
	before = snapshot();
	req("POST", "/api/v1/sites", fx->oper, big, &r);
	assert_error(&r, 413, "body_too_large", NULL);
	reply_free(&r);
	assert_unchanged(before);
	free(before);
	free(big);
}

/*
 * Pool exhaustion is refused before anything is written.  Two links per
 * site (inet, mpls; same-colour pairing) make the L(L-1)/2 bound (6)
 * exceed the pool (2 slots) while the real need (2) fits, so the API
 * must compile to decide, both for the accepted and the refused change.
 */
static void
test_pool_exhausted(void **state)
{
	struct reply r;
	uint64_t a, b;
	char *before;

	(void)state;
	a = site_add("{\"name\":\"p-a\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.20\"},{\"name\":\"mpls\","
	    "\"address\":\"10.200.0.20\"}]}");
	b = site_add("{\"name\":\"p-b\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.21\"},{\"name\":\"mpls\","
	    "\"address\":\"10.200.0.21\"}]}");
	/* Two /31s: room for exactly a-b over inet and over mpls. */
	req_ok("PUT", "/api/v1/policy", fx->admin,
	    "{\"pool\":\"100.127.0.0/30\"}", 200, &r);
	reply_free(&r);
	/* A pool too small for what exists already is refused too. */
	before = snapshot();
	req("PUT", "/api/v1/policy", fx->admin,
	    "{\"pool\":\"100.127.0.0/31\"}", &r);
	assert_error(&r, 409, "exhausted", "pool");
	reply_free(&r);
	assert_unchanged(before);
	free(before);
	before = snapshot();
	req("POST", "/api/v1/sites", fx->oper, "{\"name\":\"p-c\",\"role\":"
	    "\"hub\",\"links\":[{\"name\":\"inet\",\"address\":"
	    "\"192.0.2.22\"}]}", &r);
	assert_error(&r, 409, "exhausted", "pool");
	reply_free(&r);
	assert_unchanged(before);
	/* The same through a link added to an existing site. */
	{
		char path[64];

		snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
		    (unsigned long long)a);
		req("POST", path, fx->oper, "{\"name\":\"lte\",\"address\":"
		    "\"203.0.113.20\"}", &r);
		/* lte pairs with nothing (same-colour): still fits. */
		assert_int_equal(r.status, 201);
		reply_free(&r);
	}
	free(before);
	req_ok("PUT", "/api/v1/policy", fx->admin,
	    "{\"pool\":\"100.64.0.0/16\"}", 200, &r);
	reply_free(&r);
	site_del(a);
	site_del(b);
}

/* Points req() at another API instance (base = NULL: back to fx->api). */
static void
use_api(struct api *a, char *saved)
{
	if (a != NULL) {
		snprintf(saved, 64, "%s", fx->base);
		snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%u",
		    (unsigned)api_port(a));
	} else
		snprintf(fx->base, sizeof(fx->base), "%s", saved);
}

/*
 * The pool check is kept incrementally per API process (topo_need.h), so
 * it must still refuse exactly at the boundary, and must notice changes
 * another writer committed to the same database (a second API instance
 * here, as a second replica would): a stale count would accept the link
 * below (it does not know of b's mpls link) or refuse the site after the
 * other writer's deletion.
 */
static void
test_pool_boundary_two_writers(void **state)
{
	struct api_config ac;
	struct api *b_api;
	struct reply r;
	uint64_t a, b, c, e;
	char saved[64], path[64];
	char *before;

	(void)state;
	memset(&ac, 0, sizeof(ac));
	ac.listen = "127.0.0.1:0";
	ac.max_body = 16 * 1024;
	b_api = api_start(&ac, fx->st2);
	assert_non_null(b_api);
	/* Two /31s. */
	req_ok("PUT", "/api/v1/policy", fx->admin,
	    "{\"pool\":\"100.127.0.0/30\"}", 200, &r);
	reply_free(&r);
	a = site_add("{\"name\":\"w-a\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.30\"},{\"name\":\"mpls\","
	    "\"address\":\"10.200.0.30\"}]}");
	b = site_add("{\"name\":\"w-b\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"inet\",\"address\":\"192.0.2.31\"}]}");
	/* The other writer: b's mpls link makes the need exactly the pool. */
	use_api(b_api, saved);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
	    (unsigned long long)b);
	req_ok("POST", path, fx->oper, "{\"name\":\"mpls\",\"address\":"
	    "\"10.200.0.31\"}", 201, &r);
	reply_free(&r);
	use_api(NULL, saved);
	/* lte pairs with nothing: still exactly full, accepted. */
	c = site_add("{\"name\":\"w-c\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"lte\",\"address\":\"203.0.113.32\"}]}");
	/* One more pair: over the boundary, refused, nothing written. */
	before = snapshot();
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
	    (unsigned long long)c);
	req("POST", path, fx->oper, "{\"name\":\"mpls\",\"address\":"
	    "\"10.200.0.32\"}", &r);
	assert_error(&r, 409, "exhausted", "pool");
	reply_free(&r);
	assert_unchanged(before);
	free(before);
	/* The other writer removes b: room for one pair again. */
	use_api(b_api, saved);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu",
	    (unsigned long long)b);
	req_ok("DELETE", path, fx->oper, NULL, 204, &r);
	reply_free(&r);
	use_api(NULL, saved);
	/* A create refused after the endpoint check (its LAN lies in the
	 * pool): the count rebuilt inside that transaction must not keep the
	 * rolled-back site, or c's inet link (which fits) would be refused
	 * below.  (A create would reuse the rolled-back id and hide it.) */
	req("POST", "/api/v1/sites", fx->oper, "{\"name\":\"w-p\",\"role\":"
	    "\"hub\",\"links\":[{\"name\":\"inet\",\"address\":"
	    "\"192.0.2.40\"}],\"lan_prefixes\":[\"100.127.0.0/31\"]}", &r);
	assert_error(&r, 409, "overlap", "lan_prefixes[0]");
	reply_free(&r);
	snprintf(path, sizeof(path), "/api/v1/sites/%llu/links",
	    (unsigned long long)c);
	req_ok("POST", path, fx->oper, "{\"name\":\"inet\",\"address\":"
	    "\"192.0.2.33\"}", 201, &r);
	reply_free(&r);
	/* And the first writer's own count stays right: a-e over mpls
	 * fills the pool exactly, f (inet, pairs with a and c) is refused. */
	e = site_add("{\"name\":\"w-e\",\"role\":\"hub\",\"links\":[{\"name\":"
	    "\"mpls\",\"address\":\"10.200.0.34\"}]}");
	req("POST", "/api/v1/sites", fx->oper, "{\"name\":\"w-f\",\"role\":"
	    "\"hub\",\"links\":[{\"name\":\"inet\",\"address\":"
	    "\"192.0.2.35\"}]}", &r);
	assert_error(&r, 409, "exhausted", "pool");
	reply_free(&r);
	req_ok("PUT", "/api/v1/policy", fx->admin,
	    "{\"pool\":\"100.64.0.0/16\"}", 200, &r);
	reply_free(&r);
	site_del(e);
	site_del(c);
	site_del(a);
	api_stop(b_api);
}

static void
test_role_matrix(void **state)
{
	static const struct {
		const char *method, *path, *body;
		int who;	/* 0 none, 1 garbage, 2 ro, 3 oper, 4 admin */
		long status;
	} m[] = {
		{ "GET", "/api/v1/sites", NULL, 0, 401 },
		{ "GET", "/api/v1/sites", NULL, 1, 401 },
		{ "GET", "/api/v1/sites", NULL, 2, 200 },
		{ "GET", "/metrics", NULL, 0, 401 },
		{ "GET", "/metrics", NULL, 2, 200 },
		{ "GET", "/api/v1/events", NULL, 0, 401 },
		{ "POST", "/api/v1/sites", "{\"name\":\"rm\",\"role\":\"hub\"}",
		    0, 401 },
		{ "POST", "/api/v1/sites", "{\"name\":\"rm\",\"role\":\"hub\"}",
		    1, 401 },
		{ "POST", "/api/v1/sites", "{\"name\":\"rm\",\"role\":\"hub\"}",
		    2, 403 },
		{ "PUT", "/api/v1/policy", "{\"mode\":\"full-mesh\"}", 2, 403 },
		{ "PUT", "/api/v1/policy", "{\"mode\":\"full-mesh\"}", 3, 403 },
		{ "PUT", "/api/v1/crypto", "{\"replay_window\":1024}", 3, 403 },
		{ "GET", "/api/v1/tokens", NULL, 3, 403 },
		{ "GET", "/api/v1/tokens", NULL, 2, 403 },
		{ "POST", "/api/v1/tokens", "{\"name\":\"x\",\"role\":\"admin\"}",
		    3, 403 },
		{ "DELETE", "/api/v1/tokens/viewer", NULL, 3, 403 },
		{ "PUT", "/api/v1/policy", "{\"mode\":\"full-mesh\"}", 4, 200 },
		{ "PUT", "/api/v1/crypto", "{\"replay_window\":1024}", 4, 200 },
		{ "GET", "/api/v1/tokens", NULL, 4, 200 },
	};
	const char *tok[5] = { NULL, NULL, fx->ro, fx->oper, fx->admin };
	char garbage[STORE_TOKEN_LEN + 1];
	struct reply r;
	size_t i;

	(void)state;
	/* Right shape, wrong secret. */
	memcpy(garbage, fx->admin, sizeof(garbage));
	garbage[STORE_TOKEN_LEN - 1] = garbage[STORE_TOKEN_LEN - 1] == 'a' ?
	    'b' : 'a';
	tok[1] = garbage;
	for (i = 0; i < ARRAY_SIZE(m); i++) {
		char *before = snapshot();

		req(m[i].method, m[i].path, tok[m[i].who], m[i].body, &r);
		if (r.status != m[i].status)
			fprintf(stderr, "role matrix %zu: %s %s as %d -> %ld\n",
			    i, m[i].method, m[i].path, m[i].who, r.status);
		assert_int_equal(r.status, m[i].status);
		if (m[i].status == 401) {
			assert_error(&r, 401, "unauthorized", NULL);
			assert_true(r.challenge);
		}
		if (m[i].status == 403)
			assert_error(&r, 403, "forbidden", NULL);
		reply_free(&r);
		if (m[i].status >= 400)
			assert_unchanged(before);
		free(before);
	}
	/* Other malformed Authorization headers. */
	req_raw("GET", "/api/v1/sites", "Basic YWRtaW46YWRtaW4=", NULL, 0, &r);
	assert_error(&r, 401, "unauthorized", NULL);
	reply_free(&r);
	req_raw("GET", "/api/v1/sites", "Bearer short", NULL, 0, &r);
	assert_error(&r, 401, "unauthorized", NULL);
	reply_free(&r);
}

static void
test_metrics_format(void **state)
{
	struct reply r;
	char *line, *save = NULL, *copy;
	size_t samples = 0;

	(void)state;
	metrics_compile_done(&fx->metrics, 1500);
	metrics_rpc_inc(&fx->metrics, METRICS_RPC_ENROLL_OK);
	req_ok("GET", "/metrics", fx->ro, NULL, 200, &r);
	assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
	copy = strdup(r.body);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128], value[64];

		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP ", 7) == 0 ||
			    strncmp(line, "# TYPE ", 7) == 0);
			continue;
		}
		/* name{labels} value — value must be a number. */
		assert_int_equal(sscanf(line, "%127s %63s", name, value), 2);
		assert_int_equal(strncmp(name, "meshwan_", 8), 0);
		{
			char *end;
			strtod(value, &end);
			assert_true(*end == '\0');
		}
		samples++;
	}
	free(copy);
	assert_true(samples > 5);
	assert_non_null(strstr(r.body, "meshwan_edges_connected "));
	assert_non_null(strstr(r.body, "meshwan_intent_versions_behind "));
	assert_non_null(strstr(r.body, "meshwan_compile_last_seconds 0.0015"));
	assert_non_null(strstr(r.body,
	    "meshwan_rpc_events_total{event=\"enroll_ok\"} 1"));
	assert_non_null(strstr(r.body,
	    "meshwan_http_requests_total{code=\"200\"}"));
	assert_non_null(strstr(r.body,
	    "meshwan_http_requests_total{code=\"401\"}"));
	reply_free(&r);
}

static void
test_audit_events(void **state)
{
	struct reply r;
	json_t *j, *ev, *last = NULL;
	uint64_t id, after;
	size_t i;
	char path[96];

	(void)state;
	id = site_add("{\"name\":\"audited\",\"role\":\"edge\"}");
	site_del(id);
	j = req_ok("GET", "/api/v1/events?limit=1000", fx->ro, NULL, 200, &r);
	json_array_foreach(json_object_get(j, "events"), i, ev) {
		const char *what = json_string_value(json_object_get(ev,
		    "action"));
		if (strcmp(what, "site.create") == 0 &&
		    (uint64_t)json_integer_value(json_object_get(
		    json_object_get(ev, "detail"), "site_id")) == id) {
			assert_string_equal(json_string_value(json_object_get(
			    ev, "actor")), "ops");
			assert_true(json_integer_value(json_object_get(ev,
			    "at")) > 0);
			last = ev;
		}
	}
	assert_non_null(last);
	/* The bootstrap and the admin's token creation are there too. */
	ev = json_array_get(json_object_get(j, "events"), 0);
	assert_string_equal(json_string_value(json_object_get(ev, "actor")),
	    "system");
	assert_string_equal(json_string_value(json_object_get(ev, "action")),
	    "apitoken.bootstrap");
	ev = json_array_get(json_object_get(j, "events"), 1);
	assert_string_equal(json_string_value(json_object_get(ev, "actor")),
	    "admin");
	reply_free(&r);

	/* Pagination: one at a time, following next_after. */
	j = req_ok("GET", "/api/v1/events?limit=1", fx->ro, NULL, 200, &r);
	assert_int_equal(json_array_size(json_object_get(j, "events")), 1);
	after = (uint64_t)json_integer_value(json_object_get(j, "next_after"));
	reply_free(&r);
	snprintf(path, sizeof(path), "/api/v1/events?limit=1&after=%llu",
	    (unsigned long long)after);
	j = req_ok("GET", path, fx->ro, NULL, 200, &r);
	assert_true((uint64_t)json_integer_value(json_object_get(
	    json_array_get(json_object_get(j, "events"), 0), "id")) > after);
	reply_free(&r);
}

/*
 * Every route: documented in the OpenAPI file with the role the API
 * enforces, refused without a token (unless public), and refused to the
 * role just below the one it needs.
 */
static void
test_every_route(void **state)
{
	static const struct {
		const char *method, *path, *role;
	} routes[] = {
		{ "get", "/healthz", "none" },
		{ "get", "/metrics", "readonly" },
		{ "get", "/api/v1/openapi.json", "none" },
		{ "get", "/api/v1/sites", "readonly" },
		{ "post", "/api/v1/sites", "operator" },
		{ "get", "/api/v1/sites/{id}", "readonly" },
		{ "patch", "/api/v1/sites/{id}", "operator" },
		{ "delete", "/api/v1/sites/{id}", "operator" },
		{ "get", "/api/v1/sites/{id}/links", "readonly" },
		{ "post", "/api/v1/sites/{id}/links", "operator" },
		{ "get", "/api/v1/sites/{id}/links/{name}", "readonly" },
		{ "patch", "/api/v1/sites/{id}/links/{name}", "operator" },
		{ "delete", "/api/v1/sites/{id}/links/{name}", "operator" },
		{ "get", "/api/v1/sites/{id}/prefixes", "readonly" },
		{ "post", "/api/v1/sites/{id}/prefixes", "operator" },
		{ "delete", "/api/v1/sites/{id}/prefixes", "operator" },
		{ "post", "/api/v1/sites/{id}/token", "operator" },
		{ "post", "/api/v1/sites/{id}/rekey", "operator" },
		{ "get", "/api/v1/policy", "readonly" },
		{ "put", "/api/v1/policy", "admin" },
		{ "get", "/api/v1/crypto", "readonly" },
		{ "put", "/api/v1/crypto", "admin" },
		{ "get", "/api/v1/tunnels", "readonly" },
		{ "post", "/api/v1/tunnels/{id}/rekey", "operator" },
		{ "get", "/api/v1/tunnels/{id}/health", "readonly" },
		{ "get", "/api/v1/edges", "readonly" },
		{ "get", "/api/v1/edges/{id}", "readonly" },
		{ "get", "/api/v1/events", "readonly" },
		{ "get", "/api/v1/events/stream", "readonly" },
		{ "get", "/api/v1/tokens", "admin" },
		{ "post", "/api/v1/tokens", "admin" },
		{ "delete", "/api/v1/tokens/{name}", "admin" },
	};
	struct reply doc, r;
	json_t *paths, *op;
	size_t i, nops = 0;
	const char *key, *m;
	json_t *item;
	char method[8], path[128], *before;

	(void)state;
	req_ok("GET", "/api/v1/openapi.json", NULL, NULL, 200, &doc);
	paths = json_object_get(doc.json, "paths");
	/* The document lists exactly these operations. */
	json_object_foreach(paths, key, item) {
		json_object_foreach(item, m, op)
			if (strcmp(m, "parameters") != 0)
				nops++;
	}
	assert_int_equal(nops, ARRAY_SIZE(routes));
	before = snapshot();
	for (i = 0; i < ARRAY_SIZE(routes); i++) {
		const char *weaker = NULL;
		size_t k;

		op = json_object_get(json_object_get(paths, routes[i].path),
		    routes[i].method);
		if (op == NULL)
			fprintf(stderr, "not documented: %s %s\n",
			    routes[i].method, routes[i].path);
		assert_non_null(op);
		assert_string_equal(json_string_value(json_object_get(op,
		    "x-meshwan-role")), routes[i].role);
		for (k = 0; routes[i].method[k] != '\0'; k++)
			method[k] = (char)toupper((unsigned char)
			    routes[i].method[k]);
		method[k] = '\0';
		/* Concrete path: {id} 1, {name} "x". */
		fill_id(path, sizeof(path), routes[i].path, 1);
		if (strstr(path, "{name}") != NULL)
			strcpy(strstr(path, "{name}"), "x");
		if (strcmp(routes[i].role, "none") == 0)
			continue;
		req(method, path, NULL, NULL, &r);
		assert_error(&r, 401, "unauthorized", NULL);
		reply_free(&r);
		if (strcmp(routes[i].role, "operator") == 0)
			weaker = fx->ro;
		else if (strcmp(routes[i].role, "admin") == 0)
			weaker = fx->oper;
		if (weaker != NULL) {
			req(method, path, weaker, NULL, &r);
			assert_error(&r, 403, "forbidden", NULL);
			reply_free(&r);
		}
	}
	assert_unchanged(before);
	free(before);
	reply_free(&doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_healthz_public),
		cmocka_unit_test(test_openapi_served),
		cmocka_unit_test(test_sites_crud),
		cmocka_unit_test(test_links_crud),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_policy_crypto),
		cmocka_unit_test(test_enroll_token),
		cmocka_unit_test(test_api_tokens),
		cmocka_unit_test(test_tunnels_edges),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_error_shape),
		cmocka_unit_test(test_refused_paths),
		cmocka_unit_test(test_refused_values),
		cmocka_unit_test(test_asn_range),
		cmocka_unit_test(test_body_too_large),
		cmocka_unit_test(test_pool_exhausted),
		cmocka_unit_test(test_pool_boundary_two_writers),
		cmocka_unit_test(test_role_matrix),
		cmocka_unit_test(test_metrics_format),
		cmocka_unit_test(test_audit_events),
		cmocka_unit_test(test_every_route),
	};
	int rc;

	log_init("test_api", true);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
