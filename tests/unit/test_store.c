/*
 * test_store.c — the store on a real sqlite file: migrations (fresh,
 * repeated, newer schema refused), CRUD round trips, unique-name, ASN and
 * prefix-overlap refusals, ASN and tunnel-pool exhaustion, failed
 * transactions leaving the database unchanged, state surviving a reopen,
 * tokens stored only hashed (the file is searched for the plaintext),
 * single-use and expiry of enrollment tokens, the certificate a used
 * token finds again (a lost Enroll answer), edge versions, audit log,
 * settings and SA epochs with their SPI allocator; rows deleted by another
 * writer under a batch are misses that leave the batch usable; the
 * allocation generation; the leader lease (fencing a holder that stopped).
 *
 * With MESHWAN_TEST_PG set to a libpq connection string the same tests
 * run against PostgreSQL (tests/unit/test_store_pg.sh starts a throwaway
 * cluster): each test gets an empty schema, the token search reads a
 * pg_dump of the database, and the WAL check (sqlite only) is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <libpq-fe.h>
#include <cmocka.h>

#include "controller/store.h"
#include "controller/topo.h"
#include "lib/util.h"

struct fixture {
	char dir[64];
	char path[96];
	struct store *st;
};

/* MESHWAN_TEST_PG: run against this PostgreSQL database instead. */
static const char *pg_conninfo;

static struct store_opts
opts(const struct fixture *f, int busy_ms)
{
	if (pg_conninfo != NULL)
		return (struct store_opts){ "postgresql", pg_conninfo, busy_ms };
	return (struct store_opts){ busy_ms == 0 ? NULL : "sqlite", f->path,
	    busy_ms };
}

/* Run sql (several statements allowed) on the test's database. */
static void
sql_exec(const char *path, const char *sql)
{
	if (pg_conninfo != NULL) {
		PGconn *c = PQconnectdb(pg_conninfo);
		PGresult *r;

		assert_int_equal(PQstatus(c), CONNECTION_OK);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return;
	}
	{
		sqlite3 *db;

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
	}
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store_opts o;
	struct model_error err;

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/meshwan.db", f->dir);
	o = opts(f, 0);
	if (pg_conninfo != NULL)
		sql_exec(NULL, "SET client_min_messages = warning; "
		    "DROP SCHEMA public CASCADE; "
		    "CREATE SCHEMA public");
	if (store_open(&o, &f->st, &err) != 0) {
		fprintf(stderr, "open: %s\n", err.message);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
reopen(struct fixture *f)
{
	struct store_opts o = opts(f, 1000);
	struct model_error err;

	store_close(f->st);
	f->st = NULL;
	if (store_open(&o, &f->st, &err) != 0)
		fail_msg("reopen: %s", err.message);
}

static struct model_site
site(const char *name, const char *links)
{
	struct model_site s;
	char buf[256], *save = NULL;

	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", name);
	snprintf(s.region, sizeof(s.region), "eu");
	s.role = MODEL_ROLE_SPOKE;
	snprintf(buf, sizeof(buf), "%s", links);
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');

		*eq = '\0';
		snprintf(s.links[s.n_links].name, sizeof(s.links[0].name), "%s",
		    t);
		snprintf(s.links[s.n_links].address,
		    sizeof(s.links[0].address), "%s", eq + 1);
		s.n_links++;
	}
	return s;
}

static uint64_t
mksite(struct store *st, const char *name, const char *links)
{
	struct model_site s = site(name, links);
	struct model_error err;

	if (store_site_create(st, &s, &err) != 0)
		fail_msg("create %s: %s", name, err.message);
	return s.id;
}

static uint64_t
store_site_id_of(struct fixture *f, const char *name)
{
	struct model_site g;
	struct model_error err;

	if (store_site_get_by_name(f->st, name, &g, &err) != 0)
		fail_msg("no site %s: %s", name, err.message);
	return g.id;
}

/* Text dump of everything the model holds, to compare before/after. */
static char *
snapshot(struct store *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct model_site *s;
	struct model_site_prefix *p;
	struct model_tunnel *t;
	size_t n;
	uint64_t next;
	struct model_policy pol;

	assert_int_equal(store_site_list(st, &s, &n, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "site %llu %s %u %zu\n",
		    (unsigned long long)s[i].id, s[i].name, s[i].asn,
		    s[i].n_links);
		for (size_t j = 0; j < s[i].n_links; j++)
			fprintf(out, " link %s %s\n", s[i].links[j].name,
			    s[i].links[j].address);
	}
	free(s);
	assert_int_equal(store_prefix_list(st, 0, &p, &n, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		char c[64];

		model_prefix_format(&p[i].prefix, c, sizeof(c));
		fprintf(out, "prefix %llu %s\n",
		    (unsigned long long)p[i].site_id, c);
	}
	free(p);
	assert_int_equal(store_tunnel_list(st, &t, &n, &next, NULL), 0);
	fprintf(out, "tunnels %zu next %llu\n", n, (unsigned long long)next);
	free(t);
	assert_int_equal(store_policy_get(st, &pol, NULL), 0);
	fprintf(out, "policy %d %u-%u\n", pol.topology, pol.asn_min,
	    pol.asn_max);
	fclose(out);
	return buf;
}

static int64_t
sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int64_t v = -1;

	if (pg_conninfo != NULL) {
		PGconn *c = PQconnectdb(pg_conninfo);
		PGresult *r;

		assert_int_equal(PQstatus(c), CONNECTION_OK);
		r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			fail_msg("%s: %s", sql, PQerrorMessage(c));
		if (PQntuples(r) > 0)
			v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		PQfinish(c);
		return v;
	}
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

static void
test_migrations(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = opts(f, 0);
	struct store *st2;
	struct model_error err;
	struct model_policy p;
	struct model_crypto c;
	const char *has_reason = pg_conninfo != NULL ?
	    "SELECT COUNT(*) FROM information_schema.columns WHERE "
	    "table_schema = 'public' AND table_name = 'sa_epochs' AND "
	    "column_name = 'reason'" :
	    "SELECT COUNT(*) FROM pragma_table_info('sa_epochs') WHERE "
	    "name = 'reason'";

	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	assert_true(store_schema_latest() >= 1);
	/* Defaults stored on first open. */
	assert_int_equal(store_policy_get(f->st, &p, &err), 0);
	assert_int_equal(p.topology, MODEL_TOPO_FULL_MESH);
	assert_int_equal(p.asn_min, 64512);
	assert_int_equal(store_crypto_get(f->st, &c, &err), 0);
	assert_int_equal(c.rekey_seconds, 3600);
	assert_int_equal(c.replay_window, 1024);
	/* Opening an up-to-date database again applies nothing. */
	reopen(f);
	reopen(f);
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM schema_version"),
	    store_schema_latest());
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM policy"), 1);
	/* A version-1 database (no sa_epochs.reason) is brought up to date
	 * on open, its rows kept. */
	store_close(f->st);
	f->st = NULL;
	sql_exec(f->path, "ALTER TABLE sa_epochs DROP COLUMN "
	    "reason; ALTER TABLE sa_epochs DROP COLUMN sender_key_epoch; "
	    "ALTER TABLE sa_epochs DROP COLUMN receiver_key_epoch; "
	    "DROP TABLE certs; ALTER TABLE sites DROP COLUMN internet_breakout; "
	    "DROP TABLE changes; DELETE FROM meta WHERE key = 'change_seq'; "
	    "ALTER TABLE edges DROP COLUMN software_version; "
	    "ALTER TABLE edges DROP COLUMN failure_version; "
	    "ALTER TABLE edges DROP COLUMN failure_at; "
	    "ALTER TABLE edges DROP COLUMN failure_reason; "
	    "DELETE FROM schema_version WHERE version > 1");
	assert_int_equal(sql_int(f->path, has_reason), 0);
	reopen(f);
	assert_int_equal(store_schema_version(f->st), store_schema_latest());
	assert_int_equal(sql_int(f->path, has_reason), 1);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM policy"), 1);
	/* A database written by a newer controller is refused. */
	sql_exec(f->path, "INSERT INTO schema_version VALUES (999)");
	assert_int_equal(store_open(&o, &st2, &err), -1);
	assert_int_equal(err.code, MODEL_E_CONFLICT);
	assert_non_null(strstr(err.message, "newer"));
	/* Unknown backend. */
	o.backend = "oracle";
	assert_int_equal(store_open(&o, &st2, &err), -1);
	assert_string_equal(err.field, "backend");
}

static void
test_wal(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	sqlite3_stmt *q;

	if (pg_conninfo != NULL)
		skip();
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void
test_site_crud(void **state)
{
	struct fixture *f = *state;
	struct model_site s = site("paris", "mpls=10.0.0.1,inet=192.0.2.1");
	struct model_site g, *list;
	struct model_error err;
	struct model_link l;
	size_t n;

	s.links[1].public_port = 4501;
	snprintf(s.links[1].public_address, sizeof(s.links[1].public_address),
	    "198.51.100.1");
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	assert_true(s.id > 0);
	assert_int_equal(s.asn, 64512);
	assert_int_equal(store_site_get(f->st, s.id, &g, &err), 0);
	assert_string_equal(g.name, "paris");
	assert_string_equal(g.region, "eu");
	assert_int_equal(g.role, MODEL_ROLE_SPOKE);
	assert_int_equal(g.asn, 64512);
	assert_int_equal(g.n_links, 2);
	assert_string_equal(g.links[0].name, "inet"); /* sorted by name */
	assert_string_equal(g.links[0].public_address, "198.51.100.1");
	assert_int_equal(g.links[0].public_port, 4501);
	assert_string_equal(g.links[1].address, "10.0.0.1");

	/* next ASN, given ASN, get by name, list */
	assert_int_equal(mksite(f->st, "berlin", "inet=192.0.2.2"), s.id + 1);
	assert_int_equal(store_site_get_by_name(f->st, "berlin", &g, &err), 0);
	assert_int_equal(g.asn, 64513);
	g = site("oslo", "inet=192.0.2.3");
	g.asn = 65000;
	g.role = MODEL_ROLE_HUB;
	assert_int_equal(store_site_create(f->st, &g, &err), 0);
	assert_int_equal(g.asn, 65000);
	assert_int_equal(store_site_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[2].name, "oslo");
	assert_int_equal(list[2].role, MODEL_ROLE_HUB);
	assert_int_equal(list[0].n_links, 2);
	free(list);

	/* update: rename, revoke, replace links, keep ASN with asn = 0 */
	g = site("paris-2", "lte=100.64.9.9");
	g.id = s.id;
	g.revoked = true;
	assert_int_equal(store_site_update(f->st, &g, &err), 0);
	assert_int_equal(store_site_get(f->st, s.id, &g, &err), 0);
	assert_string_equal(g.name, "paris-2");
	assert_true(g.revoked);
	assert_int_equal(g.asn, 64512);
	assert_int_equal(g.n_links, 1);
	assert_string_equal(g.links[0].name, "lte");

	/* links */
	memset(&l, 0, sizeof(l));
	snprintf(l.name, sizeof(l.name), "inet");
	snprintf(l.address, sizeof(l.address), "192.0.2.9");
	assert_int_equal(store_link_add(f->st, s.id, &l, &err), 0);
	assert_int_equal(store_link_add(f->st, s.id, &l, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	snprintf(l.address, sizeof(l.address), "2001:db8::9");
	assert_int_equal(store_link_update(f->st, s.id, &l, &err), 0);
	assert_int_equal(store_site_get(f->st, s.id, &g, &err), 0);
	assert_string_equal(g.links[0].address, "2001:db8::9");
	assert_int_equal(store_link_delete(f->st, s.id, "lte", &err), 0);
	assert_int_equal(store_link_delete(f->st, s.id, "lte", &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	snprintf(l.address, sizeof(l.address), "not-an-ip");
	assert_int_equal(store_link_add(f->st, s.id, &l, &err), -1);
	assert_string_equal(err.field, "address");
	assert_int_equal(store_link_add(f->st, 999, &l, &err), -1);

	/* delete */
	assert_int_equal(store_site_delete(f->st, s.id, &err), 0);
	assert_int_equal(store_site_get(f->st, s.id, &g, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_site_delete(f->st, s.id, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM links"), 2);
	/* ids are never reused */
	assert_int_equal(mksite(f->st, "madrid", "inet=192.0.2.4"), s.id + 3);
}

static void
test_refusals(void **state)
{
	struct fixture *f = *state;
	uint64_t a = mksite(f->st, "a", "inet=192.0.2.1");
	uint64_t b = mksite(f->st, "b", "inet=192.0.2.2");
	struct model_site s = site("a", "inet=192.0.2.3");
	struct model_prefix p;
	struct model_error err;
	char *before, *after;

	before = snapshot(f->st);
	assert_int_equal(store_site_create(f->st, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	assert_string_equal(err.field, "name");
	s = site("c", "inet=192.0.2.3");
	s.asn = 64513;  /* b's */
	assert_int_equal(store_site_create(f->st, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	assert_string_equal(err.field, "asn");
	s = site("Bad Name", "inet=192.0.2.3");
	assert_int_equal(store_site_create(f->st, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	assert_string_equal(err.field, "name");
	/* renaming b to a */
	s = site("a", "inet=192.0.2.2");
	s.id = b;
	assert_int_equal(store_site_update(f->st, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	after = snapshot(f->st);
	assert_string_equal(before, after);
	free(after);

	/* prefix overlap across and within sites */
	model_prefix_parse("10.1.0.0/16", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_add(f->st, a, &p, &err), 0);
	free(before);
	before = snapshot(f->st);
	model_prefix_parse("10.1.2.0/24", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_add(f->st, b, &p, &err), -1);
	assert_int_equal(err.code, MODEL_E_OVERLAP);
	assert_string_equal(err.field, "prefix");
	assert_non_null(strstr(err.message, "10.1.0.0/16"));
	model_prefix_parse("10.0.0.0/8", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_add(f->st, a, &p, &err), -1);
	assert_int_equal(err.code, MODEL_E_OVERLAP);
	p.addr[3] = 1; /* host bits */
	assert_int_equal(store_prefix_add(f->st, a, &p, &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	after = snapshot(f->st);
	assert_string_equal(before, after);
	free(after);
	free(before);
	model_prefix_parse("10.2.0.0/16", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_add(f->st, b, &p, &err), 0);
	model_prefix_parse("2001:db8:1::/48", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_add(f->st, b, &p, &err), 0);
	{
		struct model_site_prefix *l;
		size_t n;
		char c[64];

		assert_int_equal(store_prefix_list(f->st, b, &l, &n, &err), 0);
		assert_int_equal(n, 2);
		model_prefix_format(&l[0].prefix, c, sizeof(c));
		assert_string_equal(c, "10.2.0.0/16");
		free(l);
	}
	model_prefix_parse("10.2.0.0/16", false, &p, "prefix", NULL);
	assert_int_equal(store_prefix_delete(f->st, b, &p, &err), 0);
	assert_int_equal(store_prefix_delete(f->st, b, &p, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
}

static void
test_asn_exhausted(void **state)
{
	struct fixture *f = *state;
	struct model_policy p;
	struct model_site s = site("c", "inet=192.0.2.3");
	struct model_error err;

	assert_int_equal(store_policy_get(f->st, &p, &err), 0);
	p.asn_min = 64512;
	p.asn_max = 64513;
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	assert_int_equal(store_site_create(f->st, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_EXHAUSTED);
	assert_string_equal(err.field, "asn");
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM sites"), 2);
	/* The top of the range taken: a gap a deletion left is found. */
	assert_int_equal(store_site_delete(f->st, store_site_id_of(f, "a"),
	    &err), 0);
	s = site("c", "inet=192.0.2.3");
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	assert_int_equal(s.asn, 64512);
	/* Otherwise the one after the highest (gaps are left for later). */
	p.asn_max = 64520;
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	assert_int_equal(store_site_delete(f->st, store_site_id_of(f, "c"),
	    &err), 0);
	s = site("d", "inet=192.0.2.4");
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	assert_int_equal(s.asn, 64514);
	/* A range leaving existing sites out is refused. */
	p.asn_min = 64600;
	p.asn_max = 64700;
	assert_int_equal(store_policy_set(f->st, &p, &err), -1);
	assert_int_equal(err.code, MODEL_E_CONFLICT);
	p.pool.len = 40;
	assert_int_equal(store_policy_set(f->st, &p, &err), -1);
	assert_string_equal(err.field, "pool");
}

/* Load the model, compile, persist the tunnels: what ctld will do. */
static int
compile_and_save(struct store *st, struct model_error *err)
{
	struct model_policy p;
	struct model_crypto c;
	struct model_site *s;
	struct model_tunnel *t;
	size_t ns, nt;
	uint64_t next;
	struct topo_prev prev;
	struct topo_input in;
	struct topo_output *out = NULL;
	struct topo_change chg;
	int rc;

	assert_int_equal(store_policy_get(st, &p, err), 0);
	assert_int_equal(store_crypto_get(st, &c, err), 0);
	assert_int_equal(store_site_list(st, &s, &ns, err), 0);
	assert_int_equal(store_tunnel_list(st, &t, &nt, &next, err), 0);
	prev.tunnels = t;
	prev.n_tunnels = nt;
	prev.next_id = next;
	in.policy = &p;
	in.crypto = &c;
	in.sites = s;
	in.n_sites = ns;
	rc = topo_compile(&in, &prev, &out, &chg, err);
	if (rc == 0) {
		rc = store_tunnel_apply(st, chg.removed, chg.n_removed,
		    chg.added, chg.n_added, topo_next_id(out), err);
		topo_change_free(&chg);
	}
	topo_free(out);
	free(s);
	free(t);
	return rc;
}

static void
test_tunnels_and_pool(void **state)
{
	struct fixture *f = *state;
	struct model_policy p;
	struct model_error err;
	struct model_tunnel *t;
	size_t n;
	uint64_t next;
	char *before, *after;

	assert_int_equal(store_policy_get(f->st, &p, &err), 0);
	model_prefix_parse("100.64.0.0/30", false, &p.pool, "pool", NULL);
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	assert_int_equal(compile_and_save(f->st, &err), 0);
	assert_int_equal(store_tunnel_list(f->st, &t, &n, &next, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(t[0].id, 1);
	assert_int_equal(t[0].inner, 0x64400000u);
	assert_int_equal(next, 2);
	free(t);
	/* Third site: 3 tunnels in a /30 (two /31s): pool exhausted,
	 * the stored tunnels are untouched. */
	mksite(f->st, "c", "inet=192.0.2.3");
	before = snapshot(f->st);
	assert_int_equal(compile_and_save(f->st, &err), -1);
	assert_int_equal(err.code, MODEL_E_EXHAUSTED);
	assert_string_equal(err.field, "pool");
	after = snapshot(f->st);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* Bigger pool: existing tunnel keeps id and /31. */
	model_prefix_parse("100.64.0.0/24", false, &p.pool, "pool", NULL);
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	assert_int_equal(compile_and_save(f->st, &err), 0);
	reopen(f);
	assert_int_equal(store_tunnel_list(f->st, &t, &n, &next, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(t[0].id, 1);
	assert_int_equal(t[0].inner, 0x64400000u);
	assert_int_equal(next, 4);
	free(t);
	/* Deleting a site drops its tunnels with it. */
	assert_int_equal(store_site_delete(f->st, 3, &err), 0);
	assert_int_equal(store_tunnel_list(f->st, &t, &n, &next, &err), 0);
	assert_int_equal(n, 1);
	free(t);
	/* Applying a clashing tunnel fails and changes nothing. */
	{
		struct model_tunnel bad = { 9, 1, "inet", 2, "inet", 0x64400000u,
		    0 };
		uint64_t rm = 1;

		bad.inner = 0x64400000u;
		assert_int_equal(store_tunnel_apply(f->st, NULL, 0, &bad, 1, 10,
		    &err), -1);
		assert_int_equal(err.code, MODEL_E_CONFLICT);
		assert_int_equal(store_tunnel_list(f->st, &t, &n, &next, &err),
		    0);
		assert_int_equal(n, 1);
		assert_int_equal(next, 4);
		free(t);
		assert_int_equal(store_tunnel_apply(f->st, &rm, 1, &bad, 1, 10,
		    &err), 0);
	}
}

/* One site's tunnels: exactly the stored ones with the site at either
 * end, in id order, whichever end it is; none for an unknown site. */
static void
test_tunnel_list_site(void **state)
{
	struct fixture *f = *state;
	struct model_policy p;
	struct model_error err;
	struct model_tunnel *all, *t;
	size_t nall, n, i, k;
	uint64_t next, site;

	assert_int_equal(store_policy_get(f->st, &p, &err), 0);
	model_prefix_parse("100.64.0.0/24", false, &p.pool, "pool", NULL);
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	mksite(f->st, "c", "inet=192.0.2.3");
	mksite(f->st, "d", "inet=192.0.2.4");
	assert_int_equal(compile_and_save(f->st, &err), 0);
	assert_int_equal(store_tunnel_list(f->st, &all, &nall, &next, &err), 0);
	assert_int_equal(nall, 6);
	for (site = 1; site <= 4; site++) {
		assert_int_equal(store_tunnel_list_site(f->st, site, &t, &n,
		    &err), 0);
		/* Full mesh of four: three tunnels per site. */
		assert_int_equal(n, 3);
		for (i = 0, k = 0; i < nall; i++) {
			if (all[i].site_a != site && all[i].site_b != site)
				continue;
			assert_true(k < n);
			assert_memory_equal(&t[k], &all[i], sizeof(t[k]));
			k++;
		}
		assert_int_equal(k, n);
		free(t);
	}
	free(all);
	t = NULL;
	assert_int_equal(store_tunnel_list_site(f->st, 99, &t, &n, &err), 0);
	assert_int_equal(n, 0);
	free(t);
	/* Once a site is gone, the others no longer list tunnels to it. */
	assert_int_equal(store_site_delete(f->st, 4, &err), 0);
	assert_int_equal(store_tunnel_list_site(f->st, 4, &t, &n, &err), 0);
	assert_int_equal(n, 0);
	free(t);
	assert_int_equal(store_tunnel_list_site(f->st, 1, &t, &n, &err), 0);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		assert_true(t[i].site_a != 4 && t[i].site_b != 4);
	free(t);
}

static void
test_failed_transaction(void **state)
{
	struct fixture *f = *state;
	struct model_site s = site("x", "inet=192.0.2.1");
	struct model_site dup = site("x", "inet=192.0.2.2");
	struct model_error err;
	char *before, *after;

	mksite(f->st, "base", "inet=192.0.2.9");
	before = snapshot(f->st);
	assert_int_equal(store_begin(f->st, &err), 0);
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	assert_int_equal(store_audit_add(f->st, 1, "alice", "site.create",
	    "{\"name\":\"x\"}", &err), 0);
	assert_int_equal(store_site_create(f->st, &dup, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	memset(&err, 0, sizeof(err));
	assert_int_equal(store_commit(f->st, &err), -1);
	assert_int_equal(err.code, MODEL_E_CONFLICT);
	after = snapshot(f->st);
	assert_string_equal(before, after);
	free(after);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM audit"), 0);
	/* Explicit rollback too. */
	assert_int_equal(store_begin(f->st, &err), 0);
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	store_rollback(f->st);
	after = snapshot(f->st);
	assert_string_equal(before, after);
	free(after);
	/* And a group that succeeds commits everything. */
	assert_int_equal(store_begin(f->st, &err), 0);
	assert_int_equal(store_site_create(f->st, &s, &err), 0);
	assert_int_equal(store_audit_add(f->st, 2, "alice", "site.create",
	    NULL, &err), 0);
	assert_int_equal(store_commit(f->st, &err), 0);
	reopen(f);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM sites"), 2);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM audit"), 1);
	free(before);
}

/* Does the file (or its WAL) contain needle? */
static bool
file_contains(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long len;
	bool found = false;
	size_t nl = strlen(needle);

	if (fp == NULL)
		return false;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	for (long i = 0; i + (long)nl <= len && !found; i++)
		found = memcmp(buf + i, needle, nl) == 0;
	free(buf);
	return found;
}

static void
test_tokens_hashed(void **state)
{
	struct fixture *f = *state;
	uint64_t a = mksite(f->st, "a", "inet=192.0.2.1");
	char et[STORE_TOKEN_LEN + 1], at[STORE_TOKEN_LEN + 1];
	char wal[128];
	struct model_error err;
	struct model_api_token_info info;

	assert_int_equal(store_enroll_token_create(f->st, a, 1000, 3600, et,
	    &err), 0);
	assert_int_equal(strlen(et), STORE_TOKEN_LEN);
	assert_int_equal(strncmp(et, "mwe_", 4), 0);
	assert_int_equal(store_api_token_create(f->st, "ops", MODEL_API_OPERATOR,
	    1000, at, &err), 0);
	assert_int_equal(strncmp(at, "mwa_", 4), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	/* While open (data in the WAL) and after close (checkpointed). */
	for (int round = 0; round < 2; round++) {
		if (pg_conninfo != NULL) {
			/* All the server holds, as text. */
			char cmd[512];

			snprintf(cmd, sizeof(cmd), "pg_dump --data-only "
			    "-f '%s' '%s'", f->path, pg_conninfo);
			assert_int_equal(system(cmd), 0);
		}
		assert_false(file_contains(f->path, et + 4));
		assert_false(file_contains(wal, et + 4));
		assert_false(file_contains(f->path, at + 4));
		assert_false(file_contains(wal, at + 4));
		/* the hash is there, so we searched the right files */
		assert_true(file_contains(f->path, "ops") ||
		    file_contains(wal, "ops"));
		reopen(f);
	}
	assert_int_equal(store_api_token_check(f->st, at, &info, &err), 0);
	assert_string_equal(info.name, "ops");
	assert_int_equal(info.role, MODEL_API_OPERATOR);
	at[10] = at[10] == 'a' ? 'b' : 'a';
	assert_int_equal(store_api_token_check(f->st, at, &info, &err), -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_int_equal(store_api_token_check(f->st, "Bearer x", &info, &err),
	    -1);
	assert_int_equal(store_api_token_create(f->st, "ops", MODEL_API_ADMIN,
	    1000, at, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	{
		struct model_api_token_info *l;
		size_t n;

		assert_int_equal(store_api_token_list(f->st, &l, &n, &err), 0);
		assert_int_equal(n, 1);
		free(l);
	}
	assert_int_equal(store_api_token_delete(f->st, "ops", &err), 0);
	assert_int_equal(store_api_token_delete(f->st, "ops", &err), -1);
}

static void
test_enroll_tokens(void **state)
{
	struct fixture *f = *state;
	uint64_t a = mksite(f->st, "a", "inet=192.0.2.1");
	uint64_t b = mksite(f->st, "b", "inet=192.0.2.2");
	char t1[STORE_TOKEN_LEN + 1], t2[STORE_TOKEN_LEN + 1];
	struct model_error err;
	uint64_t bound = 0;
	enum store_token_state ts;

	/* expiry: valid until created + ttl, exclusive */
	assert_int_equal(store_enroll_token_create(f->st, a, 1000, 3600, t1,
	    &err), 0);
	assert_int_equal(store_enroll_token_state(f->st, t1, a, 4599, &ts,
	    &bound, &err), 0);
	assert_int_equal(ts, STORE_TOKEN_VALID);
	assert_int_equal(bound, a);
	assert_int_equal(store_enroll_token_state(f->st, t1, b, 4599, &ts,
	    NULL, &err), 0);
	assert_int_equal(ts, STORE_TOKEN_OTHER_SITE);
	assert_int_equal(store_enroll_token_consume(f->st, t1, a, 4600, &bound,
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_int_equal(store_enroll_token_state(f->st, t1, a, 4600, &ts,
	    NULL, &err), 0);
	assert_int_equal(ts, STORE_TOKEN_EXPIRED);
	assert_int_equal(store_enroll_token_state(f->st, "mwe_nope", a, 1, &ts,
	    NULL, &err), 0);
	assert_int_equal(ts, STORE_TOKEN_UNKNOWN);
	/* bound to one site */
	assert_int_equal(store_enroll_token_create(f->st, a, 5000, 3600, t2,
	    &err), 0);
	assert_int_equal(store_enroll_token_consume(f->st, t2, b, 5001, &bound,
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	/* ... and single use: the refusal above did not burn it */
	assert_int_equal(store_enroll_token_consume(f->st, t2, a, 5001, &bound,
	    &err), 0);
	assert_int_equal(bound, a);
	assert_int_equal(store_enroll_token_consume(f->st, t2, 0, 5002, &bound,
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_int_equal(store_enroll_token_state(f->st, t2, a, 99999, &ts,
	    NULL, &err), 0);
	assert_int_equal(ts, STORE_TOKEN_USED);
	reopen(f);
	assert_int_equal(store_enroll_token_consume(f->st, t2, a, 5003, &bound,
	    &err), -1);
	/* site 0 = any: the token says which site */
	assert_int_equal(store_enroll_token_create(f->st, b, 6000, 60, t1,
	    &err), 0);
	assert_int_equal(store_enroll_token_consume(f->st, t1, 0, 6059, &bound,
	    &err), 0);
	assert_int_equal(bound, b);
	/* bad input */
	assert_int_equal(store_enroll_token_consume(f->st, "mwe_zz", 0, 1,
	    &bound, &err), -1);
	assert_int_equal(store_enroll_token_create(f->st, 999, 1, 60, t1, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_enroll_token_create(f->st, a, 1, 0, t1, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	/* deleting the site removes its tokens */
	assert_int_equal(store_enroll_token_create(f->st, a, 7000, 60, t1,
	    &err), 0);
	assert_int_equal(store_site_delete(f->st, a, &err), 0);
	assert_int_equal(store_enroll_token_consume(f->st, t1, 0, 7001, &bound,
	    &err), -1);
}

/* A certificate record with recognisable bytes (the store parses none). */
static struct store_cert *
mkcert(uint64_t site_id, uint8_t tag)
{
	struct store_cert *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->site_id = site_id;
	memset(c->fp, tag, sizeof(c->fp));
	snprintf(c->serial, sizeof(c->serial), "%02x", tag);
	c->not_after = 99999;
	c->issued_at = 1000;
	for (size_t i = 0; i < 300; i++)
		c->der[i] = (uint8_t)(tag + i);
	c->der_len = 300;
	return c;
}

/* An Enroll answer that was lost: the used token finds the certificate
 * to send again, inside its lifetime, for a site not revoked. */
static void
test_enroll_token_replay(void **state)
{
	struct fixture *f = *state;
	uint64_t a = mksite(f->st, "a", "inet=192.0.2.1");
	uint64_t b = mksite(f->st, "b", "inet=192.0.2.2");
	char t1[STORE_TOKEN_LEN + 1], t2[STORE_TOKEN_LEN + 1];
	struct store_cert *c1 = mkcert(a, 0x11), *c2 = mkcert(a, 0x22);
	struct store_cert *out = calloc(1, sizeof(*out));
	struct model_error err;
	struct model_site s;
	uint64_t bound = 0;

	assert_non_null(out);
	assert_int_equal(store_enroll_token_create(f->st, a, 1000, 3600, t1,
	    &err), 0);
	/* unused: nothing to send again (Enroll takes the normal path) */
	assert_int_equal(store_enroll_token_replay(f->st, t1, 1001, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	/* used, but its certificate not recorded: nothing either */
	assert_int_equal(store_enroll_token_consume(f->st, t1, 0, 1001, &bound,
	    &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 1002, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	/* the enrollment's certificate, byte for byte, until expiry */
	assert_int_equal(store_cert_enroll(f->st, c1, &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 1002, out, &err),
	    0);
	assert_int_equal(out->site_id, a);
	assert_int_equal(out->state, STORE_CERT_ACTIVE);
	assert_int_equal(out->der_len, c1->der_len);
	assert_memory_equal(out->der, c1->der, c1->der_len);
	assert_memory_equal(out->fp, c1->fp, sizeof(c1->fp));
	assert_string_equal(out->serial, c1->serial);
	reopen(f);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 4599, out, &err),
	    0);
	assert_memory_equal(out->der, c1->der, c1->der_len);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 4600, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_non_null(strstr(err.message, "expired"));
	/* a renewal in progress: the ACTIVE one still */
	assert_int_equal(store_cert_renew(f->st, c1->fp, c2, &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 2000, out, &err),
	    0);
	assert_memory_equal(out->fp, c1->fp, sizeof(c1->fp));
	/* promoted: the site's certificate is c2 (another key pair, so
	 * Enroll refuses a CSR of the old one) */
	assert_int_equal(store_cert_promote(f->st, a, c2->fp, &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 2000, out, &err),
	    0);
	assert_memory_equal(out->der, c2->der, c2->der_len);
	/* a revoked site: refused */
	assert_int_equal(store_site_get(f->st, a, &s, &err), 0);
	s.revoked = true;
	assert_int_equal(store_site_update(f->st, &s, &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 2000, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_non_null(strstr(err.message, "revoked"));
	/* unknown and malformed tokens */
	assert_int_equal(store_enroll_token_create(f->st, b, 1000, 3600, t2,
	    &err), 0);
	t2[10] = t2[10] == 'a' ? 'b' : 'a';
	assert_int_equal(store_enroll_token_replay(f->st, t2, 1001, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	assert_int_equal(store_enroll_token_replay(f->st, "mwe_zz", 1001, out,
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	/* a deleted site takes its tokens along */
	assert_int_equal(store_site_delete(f->st, a, &err), 0);
	assert_int_equal(store_enroll_token_replay(f->st, t1, 2000, out, &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_TOKEN);
	free(out);
	free(c2);
	free(c1);
}

static void
test_edge_state(void **state)
{
	struct fixture *f = *state;
	uint64_t a = mksite(f->st, "a", "inet=192.0.2.1");
	struct model_edge_state e, *l;
	struct model_error err;
	const uint8_t hash[32] = { 1, 2, 3, 4 };
	uint64_t v = 0;
	size_t n;

	assert_int_equal(store_edge_get(f->st, a, &e, &err), 0);
	assert_int_equal(e.intent_version, 0);
	model_edge_state_clear(&e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_edge_bump_intent(f->st, a, &v, &err), 0);
	assert_int_equal(v, 3);
	assert_int_equal(store_edge_set_applied(f->st, a, 2, hash, sizeof(hash),
	    &err), 0);
	assert_int_equal(store_edge_set_applied(f->st, a, 5, hash, sizeof(hash),
	    &err), -1);
	assert_int_equal(err.code, MODEL_E_INVALID);
	assert_int_equal(store_edge_set_connected(f->st, a, true, 1234,
	    "meshwan-edge 1.2", &err), 0);
	assert_int_equal(store_edge_set_status(f->st, a, "{\"up\":1}", 8, 1240,
	    &err), 0);
	assert_int_equal(store_edge_bump_intent(f->st, 999, &v, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	reopen(f);
	assert_int_equal(store_edge_get(f->st, a, &e, &err), 0);
	assert_int_equal(e.intent_version, 3);
	assert_int_equal(e.applied_version, 2);
	assert_int_equal(e.conv_hash_len, 32);
	assert_memory_equal(e.conv_hash, hash, 32);
	assert_true(e.connected);
	assert_int_equal(e.connected_at, 1234);
	assert_int_equal(e.status_len, 8);
	assert_memory_equal(e.status, "{\"up\":1}", 8);
	assert_int_equal(e.status_at, 1240);
	assert_string_equal(e.software_version, "meshwan-edge 1.2");
	model_edge_state_clear(&e);
	model_edge_state_clear(NULL);
	assert_int_equal(store_edge_set_connected(f->st, a, false, 1300, NULL,
	    &err), 0);
	assert_int_equal(store_edge_list(f->st, &l, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_false(l[0].connected);
	/* a disconnect keeps the last version the edge named */
	assert_string_equal(l[0].software_version, "meshwan-edge 1.2");
	assert_int_equal(l[0].intent_version, 3);
	assert_null(l[0].status);
	free(l);
	/* next bump continues from the stored version */
	assert_int_equal(store_edge_bump_intent(f->st, a, &v, &err), 0);
	assert_int_equal(v, 4);
}

static void
test_audit_and_kv(void **state)
{
	struct fixture *f = *state;
	struct model_audit *a;
	struct model_error err;
	char val[128];
	size_t n;

	assert_int_equal(store_audit_add(f->st, 10, "alice", "site.create",
	    "{\"id\":1}", &err), 0);
	assert_int_equal(store_audit_add(f->st, 11, "bob", "policy.set", NULL,
	    &err), 0);
	assert_int_equal(store_audit_add(f->st, 12, "", "x", NULL, &err), -1);
	assert_string_equal(err.field, "who");
	assert_int_equal(store_audit_list(f->st, 0, 100, &a, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(a[0].id, 1);
	assert_int_equal(a[0].at, 10);
	assert_string_equal(a[0].who, "alice");
	assert_string_equal(a[0].detail, "{\"id\":1}");
	assert_null(a[1].detail);
	model_audit_free_array(a, n);
	assert_int_equal(store_audit_list(f->st, 1, 1, &a, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(a[0].what, "policy.set");
	model_audit_free_array(a, n);

	assert_int_equal(store_kv_get(f->st, "ca.cert", val, sizeof(val), &err),
	    -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_kv_set(f->st, "ca.cert", "/var/lib/ca.pem",
	    &err), 0);
	assert_int_equal(store_kv_set(f->st, "ca.cert", "/var/lib/ca2.pem",
	    &err), 0);
	reopen(f);
	assert_int_equal(store_kv_get(f->st, "ca.cert", val, sizeof(val), &err),
	    0);
	assert_string_equal(val, "/var/lib/ca2.pem");
	assert_int_equal(store_kv_set(f->st, "Bad Key", "x", &err), -1);
}

static void
test_epochs(void **state)
{
	struct fixture *f = *state;
	struct model_error err;
	struct model_epoch e, e2, *l;
	size_t n;

	mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	assert_int_equal(compile_and_save(f->st, &err), 0);
	memset(&e, 0, sizeof(e));
	e.tunnel_id = 1;
	e.sender_site = 1;
	e.epoch = 1;
	snprintf(e.recv_address, sizeof(e.recv_address), "192.0.2.2");
	e.changed_at = 100;
	assert_int_equal(store_epoch_add(f->st, &e, &err), -1); /* no state */
	assert_int_equal(err.code, MODEL_E_INVALID);
	assert_string_equal(err.field, "state");
	e.state = MODEL_EPOCH_INSTALLED;
	assert_int_equal(store_epoch_add(f->st, &e, &err), 0);
	assert_true(e.spi >= 256);
	e2 = e;
	e2.epoch = 2;
	e2.reason = 3;          /* the wire's REKEY_REASON_OPERATOR */
	e2.sender_key_epoch = 1764300000;       /* X25519 key epochs */
	e2.receiver_key_epoch = UINT64_MAX - 1;
	assert_int_equal(store_epoch_add(f->st, &e2, &err), 0);
	assert_true(e2.spi >= 256);
	assert_int_not_equal(e.spi, e2.spi);
	assert_int_equal(store_epoch_add(f->st, &e2, &err), -1);
	assert_int_equal(err.code, MODEL_E_DUPLICATE);
	e2.tunnel_id = 77;
	assert_int_equal(store_epoch_add(f->st, &e2, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_epoch_set_state(f->st, 1, 1, 1,
	    MODEL_EPOCH_DRAINING, 200, &err), 0);
	assert_int_equal(store_epoch_set_state(f->st, 1, 1, 2,
	    MODEL_EPOCH_ACTIVE, 200, &err), 0);
	assert_int_equal(store_epoch_set_state(f->st, 1, 1, 3,
	    MODEL_EPOCH_ACTIVE, 200, &err), -1);
	assert_int_equal(store_epoch_list(f->st, 1, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(l[0].state, MODEL_EPOCH_DRAINING);
	assert_int_equal(l[1].state, MODEL_EPOCH_ACTIVE);
	assert_int_equal(l[1].spi, e2.spi);
	assert_string_equal(l[1].recv_address, "192.0.2.2");
	assert_int_equal(l[0].reason, 0);
	assert_int_equal(l[1].reason, 3);
	assert_int_equal(l[0].sender_key_epoch, 0);
	assert_int_equal(l[0].receiver_key_epoch, 0);
	assert_true(l[1].sender_key_epoch == 1764300000);
	assert_true(l[1].receiver_key_epoch == UINT64_MAX - 1);
	free(l);
	/* A new tunnel's first epoch goes in active, as stated. */
	e2 = e;
	e2.sender_site = 2;
	e2.state = MODEL_EPOCH_ACTIVE;
	e2.changed_at = 300;
	snprintf(e2.recv_address, sizeof(e2.recv_address), "192.0.2.1");
	assert_int_equal(store_epoch_add(f->st, &e2, &err), 0);
	assert_int_equal(store_epoch_list(f->st, 1, &l, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(l[2].sender_site, 2);
	assert_int_equal(l[2].state, MODEL_EPOCH_ACTIVE);
	assert_int_equal(l[2].changed_at, 300);
	assert_int_equal(l[2].spi, e2.spi);
	free(l);
	assert_int_equal(store_epoch_delete(f->st, 1, 1, 1, &err), 0);
	assert_int_equal(store_epoch_delete(f->st, 1, 1, 1, &err), -1);
	/* A site going away takes its tunnels' epochs with it. */
	assert_int_equal(store_site_delete(f->st, 2, &err), 0);
	assert_int_equal(store_epoch_list(f->st, 0, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	free(l);
}

/*
 * An encap switch re-allocates every tunnel (same id, a VNI now): the row
 * is changed in place, so its epochs survive the apply; store_epoch_renew
 * then starts both directions above every recorded epoch, with SPIs none
 * of the tunnel's, and forgets the old ones.
 */
static void
test_epochs_renew(void **state)
{
	struct fixture *f = *state;
	struct model_error err;
	struct model_policy p;
	struct model_tunnel *t;
	struct model_epoch e, r[2], *l;
	uint32_t old_spi[3];
	size_t n, nt;
	uint64_t next;

	mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	assert_int_equal(compile_and_save(f->st, &err), 0);
	memset(&e, 0, sizeof(e));
	e.tunnel_id = 1;
	e.state = MODEL_EPOCH_ACTIVE;
	for (int i = 0; i < 3; i++) {
		e.sender_site = i == 2 ? 2 : 1;
		e.epoch = i == 2 ? 1 : (uint64_t)i + 1;
		snprintf(e.recv_address, sizeof(e.recv_address),
		    i == 2 ? "192.0.2.1" : "192.0.2.2");
		assert_int_equal(store_epoch_add(f->st, &e, &err), 0);
		old_spi[i] = e.spi;
	}
	assert_int_equal(store_policy_get(f->st, &p, &err), 0);
	p.encap = MODEL_ENCAP_VXLAN;
	assert_int_equal(store_policy_set(f->st, &p, &err), 0);
	assert_int_equal(compile_and_save(f->st, &err), 0);
	assert_int_equal(store_tunnel_list(f->st, &t, &nt, &next, &err), 0);
	assert_int_equal(nt, 1);
	assert_int_equal(t[0].id, 1);
	assert_int_not_equal(t[0].vni, 0);
	free(t);
	assert_int_equal(store_tunnel_next_id(f->st, &next, &err), 0);
	assert_int_equal(next, 2);
	assert_int_equal(store_epoch_list(f->st, 1, &l, &n, &err), 0);
	assert_int_equal(n, 3);         /* not cascaded away */
	free(l);

	memset(r, 0, sizeof(r));
	for (int i = 0; i < 2; i++) {
		r[i].tunnel_id = 1;
		r[i].sender_site = (uint64_t)i + 1;
		r[i].state = MODEL_EPOCH_ACTIVE;
		snprintf(r[i].recv_address, sizeof(r[i].recv_address),
		    i == 0 ? "192.0.2.2" : "192.0.2.1");
	}
	assert_int_equal(store_epoch_renew(f->st, r, 2, &err), 0);
	assert_int_equal(store_epoch_list(f->st, 1, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(l[i].epoch, 3);
		assert_int_equal(l[i].state, MODEL_EPOCH_ACTIVE);
		assert_int_equal(l[i].spi, r[i].spi);
		for (int j = 0; j < 3; j++)
			assert_int_not_equal(l[i].spi, old_spi[j]);
	}
	free(l);
	r[0].tunnel_id = r[1].tunnel_id = 9;
	assert_int_equal(store_epoch_renew(f->st, r, 2, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
}

/*
 * Another writer deleted a site under a batch: the edge writes and the new
 * epochs that name it are misses (not_found, nothing written) and the
 * batch's other writes still commit.  Tunnels are found by id.
 */
static void
test_misses_keep_the_group(void **state)
{
	struct fixture *f = *state;
	struct model_error err;
	struct model_tunnel t;
	struct model_edge_state es;
	struct model_epoch e;
	const uint8_t hash[32] = { 7 };
	uint64_t a, c, v = 0, gen = 9;

	a = mksite(f->st, "a", "inet=192.0.2.1");
	mksite(f->st, "b", "inet=192.0.2.2");
	c = mksite(f->st, "c", "inet=192.0.2.3");
	assert_int_equal(store_tunnel_gen(f->st, &gen, &err), 0);
	assert_int_equal(gen, 0);
	assert_int_equal(compile_and_save(f->st, &err), 0);
	assert_int_equal(store_tunnel_gen(f->st, &gen, &err), 0);
	assert_int_equal(gen, 1);
	assert_int_equal(store_tunnel_apply(f->st, NULL, 0, NULL, 0, 4, &err),
	    0);
	assert_int_equal(store_tunnel_gen(f->st, &gen, &err), 0);
	assert_int_equal(gen, 2);
	assert_int_equal(store_tunnel_get(f->st, 3, &t, &err), 0);
	assert_int_equal(t.id, 3);
	assert_int_equal(t.site_a, 2);
	assert_int_equal(t.site_b, c);
	assert_string_equal(t.link_b, "inet");
	assert_int_equal(store_tunnel_get(f->st, 99, &t, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_edge_bump_intent(f->st, c, &v, &err), 0);
	assert_int_equal(store_site_delete(f->st, c, &err), 0);
	/* A cascade is no allocation change. */
	assert_int_equal(store_tunnel_gen(f->st, &gen, &err), 0);
	assert_int_equal(gen, 2);

	memset(&e, 0, sizeof(e));
	e.tunnel_id = 2;        /* a-c: gone with c */
	e.sender_site = a;
	e.epoch = 1;
	e.state = MODEL_EPOCH_ACTIVE;
	snprintf(e.recv_address, sizeof(e.recv_address), "192.0.2.3");
	assert_int_equal(store_begin(f->st, &err), 0);
	assert_int_equal(store_edge_bump_intent(f->st, a, &v, &err), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_edge_bump_intent(f->st, c, &v, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_edge_set_applied(f->st, c, 1, hash,
	    sizeof(hash), &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	assert_int_equal(store_edge_set_connected(f->st, c, true, 5, NULL, &err), -1);
	assert_int_equal(store_edge_set_status(f->st, c, "{}", 2, 5, &err), -1);
	assert_int_equal(store_epoch_add(f->st, &e, &err), -1);
	assert_int_equal(err.code, MODEL_E_NOT_FOUND);
	e.tunnel_id = 1;        /* a-b */
	snprintf(e.recv_address, sizeof(e.recv_address), "192.0.2.2");
	assert_int_equal(store_epoch_add(f->st, &e, &err), 0);
	assert_int_equal(store_edge_set_applied(f->st, a, 1, hash,
	    sizeof(hash), &err), 0);
	assert_int_equal(store_commit(f->st, &err), 0);

	assert_int_equal(store_edge_get(f->st, a, &es, &err), 0);
	assert_int_equal(es.intent_version, 1);
	assert_int_equal(es.applied_version, 1);
	model_edge_state_clear(&es);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM sa_epochs"), 1);
	assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM edges WHERE "
	    "site_id = 3"), 0);
}

/* A second connection waits for the writer, then fails cleanly; readers
 * are never blocked (WAL). */
static void
test_busy(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = opts(f, 200);
	struct store *st2;
	struct model_site s = site("waiting", "inet=192.0.2.2");
	struct model_site *l;
	struct model_error err;
	size_t n;

	assert_int_equal(store_open(&o, &st2, &err), 0);
	mksite(f->st, "first", "inet=192.0.2.1");
	assert_int_equal(store_begin(f->st, &err), 0);
	mksite(f->st, "second", "inet=192.0.2.3");
	/* reader: sees the committed state only */
	assert_int_equal(store_site_list(st2, &l, &n, &err), 0);
	assert_int_equal(n, 1);
	free(l);
	/* writer: gives up after the busy timeout, changes nothing, and
	 * says "busy" (REST: 503), not "internal" */
	assert_int_equal(store_site_create(st2, &s, &err), -1);
	assert_int_equal(err.code, MODEL_E_BUSY);
	assert_int_equal(store_commit(f->st, &err), 0);
	assert_int_equal(store_site_create(st2, &s, &err), 0);
	assert_int_equal(store_site_list(f->st, &l, &n, &err), 0);
	assert_int_equal(n, 3);
	free(l);
	store_close(st2);
}

/* The change log: one sequence number per committed topology change,
 * its sites, the writer's origin; a policy change means "all"; a
 * rolled-back change leaves no trace.  On PostgreSQL also: a listener
 * is woken by a commit, and after its connection is killed (the NOTIFY
 * for a change made meanwhile is lost) it reconnects by itself and the
 * log gives it what it missed. */
static void
test_changes(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = opts(f, 1000);
	struct store *other;
	struct store_changes ch;
	struct model_error err;
	struct model_policy pol;
	struct model_site bad = site("a", "inet=192.0.2.9");
	uint64_t head, a, b;

	assert_int_equal(store_open(&o, &other, &err), 0);
	store_set_origin(other, "other");
	assert_string_equal(store_origin(other), "other");
	assert_int_equal(store_changes_head(f->st, &head, &err), 0);
	a = mksite(f->st, "a", "inet=192.0.2.1");
	b = mksite(other, "b", "inet=192.0.2.2");
	assert_int_equal(store_site_create(other, &bad, &err), -1);
	assert_int_equal(store_changes_since(f->st, head, NULL, &ch, &err), 0);
	assert_int_equal(ch.n, 2);
	assert_int_equal(ch.sites[0], a);
	assert_int_equal(ch.sites[1], b);
	assert_false(ch.all);
	assert_int_equal(ch.last, head + 2);    /* the refusal left none */
	free(ch.sites);
	/* Leaving out one's own. */
	assert_int_equal(store_changes_since(f->st, head, "other", &ch, &err),
	    0);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.sites[0], a);
	assert_int_equal(ch.last, head + 2);
	free(ch.sites);
	/* A group is one change; policy means everything. */
	assert_int_equal(store_begin(other, &err), 0);
	assert_int_equal(store_prefix_add(other, b, &(struct model_prefix){
	    .family = 4, .len = 24, .addr = { 10, 2, 0, 0 } }, &err), 0);
	assert_int_equal(store_policy_get(other, &pol, &err), 0);
	assert_int_equal(store_policy_set(other, &pol, &err), 0);
	assert_int_equal(store_commit(other, &err), 0);
	assert_int_equal(store_changes_since(f->st, head + 2, NULL, &ch, &err),
	    0);
	assert_true(ch.all);
	assert_int_equal(ch.n, 1);
	assert_int_equal(ch.sites[0], b);
	assert_int_equal(ch.last, head + 3);
	free(ch.sites);
	/* Nothing new. */
	assert_int_equal(store_changes_since(f->st, head + 3, NULL, &ch, &err),
	    0);
	assert_int_equal(ch.n, 0);
	assert_false(ch.all);
	assert_int_equal(ch.last, head + 3);
	free(ch.sites);
	/* Events (a site's credentials, a tunnel's epochs) are their own
	 * kinds, in one transaction with what else it did. */
	assert_int_equal(store_begin(other, &err), 0);
	assert_int_equal(store_note_event(other, STORE_CHANGE_CREDS, b, &err),
	    0);
	assert_int_equal(store_note_event(other, STORE_CHANGE_EPOCHS, 77,
	    &err), 0);
	assert_int_equal(store_note_event(other, STORE_CHANGE_EPOCHS, 0,
	    &err), -1);
	assert_int_equal(store_commit(other, &err), 0);
	assert_int_equal(store_changes_since(f->st, head + 3, NULL, &ch, &err),
	    0);
	assert_int_equal(ch.n, 0);
	assert_int_equal(ch.n_creds, 1);
	assert_int_equal(ch.creds[0], b);
	assert_int_equal(ch.n_tunnels, 1);
	assert_int_equal(ch.tunnels[0], 77);
	assert_false(ch.all);
	assert_int_equal(ch.last, head + 4);
	store_changes_free(&ch);
	head++;

	if (pg_conninfo == NULL) {
		assert_int_equal(store_changes_listen(f->st, &err), -1);
		store_close(other);
		return;
	}
	{
		char kill_sql[256];
		int64_t pid;
		int rc = 0;

		assert_int_equal(store_changes_listen(f->st, &err), 0);
		assert_int_equal(store_changes_wait(f->st, 0), 0);
		mksite(other, "c", "inet=192.0.2.3");
		assert_int_equal(store_changes_wait(f->st, 2000), 1);
		assert_int_equal(store_changes_wait(f->st, 0), 0);
		/* The listener's connection is the one whose last query
		 * was the LISTEN. */
		pid = sql_int(NULL, "SELECT pid FROM pg_stat_activity WHERE "
		    "query LIKE 'LISTEN%'");
		assert_true(pid > 0);
		snprintf(kill_sql, sizeof(kill_sql),
		    "SELECT pg_terminate_backend(%lld)::int", (long long)pid);
		assert_int_equal(sql_int(NULL, kill_sql), 1);
		/* Made while nobody listens: its NOTIFY is lost. */
		mksite(other, "d", "inet=192.0.2.4");
		for (int i = 0; i < 40 && rc != 1; i++)
			rc = store_changes_wait(f->st, 100);
		assert_int_equal(rc, 1);        /* back, and told to read */
		assert_int_equal(store_changes_since(f->st, head + 3, NULL,
		    &ch, &err), 0);
		assert_int_equal(ch.n, 2);      /* c and d */
		assert_int_equal(ch.last, head + 5);
		free(ch.sites);
		/* And it listens again. */
		mksite(other, "e", "inet=192.0.2.5");
		assert_int_equal(store_changes_wait(f->st, 2000), 1);
	}
	store_close(other);
}

/*
 * The lease test's timeouts.  LEASE_MS is the holder's (it renews every
 * LEASE_MS / 5) and the one a challenger fences with once the holder is
 * known, on the database's clock, to have been silent for longer.  A
 * challenger that must find the holder live asks with LEASE_LIVE_MS:
 * the test renews the holder only when it calls it, and under load the
 * test itself may not run for LEASE_MS, so with LEASE_MS there the
 * answer would depend on the scheduler.  Whether each call renewed is
 * read from the row instead.  LEASE_WAIT_MS bounds every poll.
 */
#define LEASE_MS      500
#define LEASE_LIVE_MS 60000
#define LEASE_WAIT_MS 30000

/* Call store_leader until it answers something but "again soon" (2:
 * fenced or vacant, the old backend not gone yet) or "unreachable"
 * (-1, a connection being restored), within LEASE_WAIT_MS. */
static int
leader_settled(struct store *st, int lease_ms)
{
	uint64_t end = util_mono_ms() + LEASE_WAIT_MS;
	int rc;

	while ((rc = store_leader(st, lease_ms)) != 0 && rc != 1 &&
	    util_mono_ms() < end)
		usleep(50 * 1000);
	return rc;
}

/* The lease row's renewed_at and the database's clock, in µs. */
static int64_t
lease_renewed_us(void)
{
	return sql_int(NULL, "SELECT (extract(epoch FROM renewed_at) * "
	    "1000000)::bigint FROM meshwan_leader");
}

static int64_t
db_now_us(void)
{
	return sql_int(NULL, "SELECT (extract(epoch FROM clock_timestamp()) * "
	    "1000000)::bigint");
}

/* holder renews (it is due: LEASE_MS / 5 passed since its last call):
 * the call answers 1 and moves renewed_at to the database's now, in the
 * same term; other, asked as a challenger of a live holder, answers 0. */
static void
lease_renewed(struct store *holder, struct store *other, int64_t term)
{
	int64_t before;

	usleep(LEASE_MS / 5 * 1000);
	before = db_now_us();
	assert_int_equal(store_leader(holder, LEASE_MS), 1);
	assert_true(lease_renewed_us() >= before);
	assert_int_equal(store_leader(other, LEASE_LIVE_MS), 0);
	assert_int_equal(sql_int(NULL, "SELECT term FROM meshwan_leader"),
	    term);
}

/* Until the lease has not been renewed for over LEASE_MS, on the
 * database's clock (nobody renews it meanwhile). */
static void
lease_lapsed(void)
{
	char sql[160];
	uint64_t end = util_mono_ms() + LEASE_WAIT_MS;

	(void)snprintf(sql, sizeof(sql), "SELECT (renewed_at < "
	    "clock_timestamp() - interval '%d milliseconds')::int "
	    "FROM meshwan_leader", LEASE_MS);
	while (sql_int(NULL, sql) != 1) {
		assert_true(util_mono_ms() < end);
		usleep(LEASE_MS / 5 * 1000);
	}
}

/* The leader lease: one holder, kept while it renews; its allocating
 * transaction passes the check.  A holder that stops renewing (a
 * stopped process) is fenced once silent for the challenger's timeout,
 * not before: its lease backend ends, and so does its transaction idle
 * on the lease; another claims the lease; the old holder's checks fail
 * from then on, after it reconnected too, and its own tries do not take
 * the lease back.  No answer depends on how promptly the test runs (see
 * LEASE_MS).  sqlite: always the leader. */
static void
test_leader_lease(void **state)
{
	struct fixture *f = *state;
	struct store_opts o = opts(f, 1000);
	struct store *a, *a_tx, *b;
	struct model_error err;

	if (pg_conninfo == NULL) {
		assert_int_equal(store_leader(f->st, 1000), 1);
		assert_int_equal(store_begin(f->st, &err), 0);
		assert_int_equal(store_leader_check(f->st, &err), 0);
		store_rollback(f->st);
		return;
	}
	assert_int_equal(store_open(&o, &a, &err), 0);
	assert_int_equal(store_open(&o, &a_tx, &err), 0);
	assert_int_equal(store_open(&o, &b, &err), 0);
	store_set_origin(a, "a");
	store_set_origin(a_tx, "a");
	store_set_origin(b, "b");
	store_set_origin(f->st, "b");
	assert_int_equal(store_leader(a, LEASE_MS), 1);
	assert_int_equal(store_leader(b, LEASE_LIVE_MS), 0);
	/* Renewed: every call when due, the term kept. */
	for (int i = 0; i < 10; i++)
		lease_renewed(a, b, 1);
	/* A's allocating transaction; then A stops renewing.  Silent for
	 * over LEASE_MS but not LEASE_LIVE_MS: not fenced by a challenger
	 * with the longer timeout; fenced with LEASE_MS. */
	assert_int_equal(store_begin(a_tx, &err), 0);
	assert_int_equal(store_leader_check(a_tx, &err), 0);
	lease_lapsed();
	assert_int_equal(store_leader(b, LEASE_LIVE_MS), 0);
	assert_int_equal(sql_int(NULL, "SELECT term FROM meshwan_leader"), 1);
	assert_int_equal(store_leader(b, LEASE_MS), 2);         /* fenced */
	assert_int_equal(leader_settled(b, LEASE_MS), 1);       /* claimed */
	assert_int_equal(sql_int(NULL, "SELECT term FROM meshwan_leader"), 2);
	/* A's transaction was ended with its backend. */
	assert_int_equal(store_leader_check(a_tx, &err), -1);
	store_rollback(a_tx);
	/* A resumes: its lease connection is gone; reconnected, it is not
	 * the leader and does not become it. */
	assert_int_equal(leader_settled(a, LEASE_LIVE_MS), 0);
	assert_int_equal(store_begin(a_tx, &err), 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(store_leader_check(a_tx, &err), -1);
	assert_int_equal(err.code, MODEL_E_CONFLICT);
	store_rollback(a_tx);
	assert_int_equal(store_begin(f->st, &err), 0);
	assert_int_equal(store_leader_check(f->st, &err), 0);
	assert_int_equal(store_commit(f->st, &err), 0);
	for (int i = 0; i < 10; i++)
		lease_renewed(b, a, 2);
	/* One holder of the lock, the backend the lease names. */
	assert_int_equal(sql_int(NULL, "SELECT COUNT(*) FROM pg_locks k JOIN "
	    "meshwan_leader l ON k.pid = l.pid WHERE k.locktype = "
	    "'advisory' AND k.granted AND l.holder = 'b'"), 1);
	store_close(b);
	store_close(a_tx);
	store_close(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrations, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_site_crud, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_asn_exhausted, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tunnel_list_site, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tunnels_and_pool, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failed_transaction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tokens_hashed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_enroll_token_replay,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_enroll_tokens, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_edge_state, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_audit_and_kv, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_epochs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_epochs_renew, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_misses_keep_the_group,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leader_lease, setup,
		    teardown),
	};

	pg_conninfo = getenv("MESHWAN_TEST_PG");
	if (pg_conninfo != NULL && *pg_conninfo == '\0')
		pg_conninfo = NULL;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
