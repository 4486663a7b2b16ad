/*
 * metrics.c — Prometheus text exposition of the controller's health.
 *
 * Gauges that describe state (edges connected, versions behind, sites,
 * tunnels) are read from the store at scrape time so they can never drift
 * from the truth; counters of events that leave no trace in the store
 * (compiles, gRPC calls, HTTP answers) are atomics bumped where they
 * happen.
 */
#include "controller/metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/http.h"
#include "controller/store.h"
#include "lib/log.h"

static const char *const metrics_rpc_names[METRICS_RPC_MAX] = {
	[METRICS_RPC_ENROLL_OK] = "enroll_ok",
	[METRICS_RPC_ENROLL_REFUSED] = "enroll_refused",
	[METRICS_RPC_SESSION_OPENED] = "session_opened",
	[METRICS_RPC_SESSION_REFUSED] = "session_refused",
	[METRICS_RPC_SESSION_CLOSED] = "session_closed",
	[METRICS_RPC_SNAPSHOT_SENT] = "snapshot_sent",
	[METRICS_RPC_DELTA_SENT] = "delta_sent",
	[METRICS_RPC_ACK_RECEIVED] = "ack_received",
	[METRICS_RPC_STATUS_RECEIVED] = "status_received",
	[METRICS_RPC_KEY_RELAYED] = "key_relayed",
	[METRICS_RPC_BACKOFF_SENT] = "backoff_sent",
	[METRICS_RPC_ACCEPT_REFUSED] = "accept_refused",
};

void
metrics_compile_done(struct metrics *m, uint64_t elapsed_us)
{
	atomic_fetch_add(&m->compiles, 1);
	atomic_store(&m->compile_last_us, elapsed_us);
	atomic_fetch_add(&m->compile_sum_us, elapsed_us);
}

void
metrics_rpc_inc(struct metrics *m, enum metrics_rpc which)
{
	if ((unsigned)which < METRICS_RPC_MAX)
		atomic_fetch_add(&m->rpc[which], 1);
}

void
metrics_rpc_set(struct metrics *m, enum metrics_rpc which, uint64_t v)
{
	if ((unsigned)which < METRICS_RPC_MAX)
		atomic_store(&m->rpc[which], v);
}

void
metrics_bytes_sent(struct metrics *m, uint64_t bytes)
{
	atomic_fetch_add(&m->intent_bytes_sent, bytes);
}

void
metrics_loop_store(struct metrics *m, uint64_t commits, uint64_t statements)
{
	atomic_store(&m->loop_commits, commits);
	atomic_store(&m->loop_statements, statements);
}

static void
metrics_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Edge and model gauges from the store. */
static int
metrics_store(FILE *f, struct store *st)
{
	struct model_edge_state *edges = NULL;
	struct model_site *sites = NULL;
	struct model_error err;
	size_t n_edges = 0, n_tunnels = 0, n_sites = 0, i;
	uint64_t connected = 0, converged = 0, behind = 0, live = 0;

	if (store_site_list(st, &sites, &n_sites, &err) == -1 ||
	    store_edge_list(st, &edges, &n_edges, &err) == -1 ||
	    store_tunnel_count(st, &n_tunnels, &err) == -1) {
		log_warnx("metrics: %s", err.message);
		free(sites);
		free(edges);
		return -1;
	}
	for (i = 0; i < n_sites; i++)
		if (!sites[i].revoked)
			live++;
	for (i = 0; i < n_edges; i++) {
		if (edges[i].connected)
			connected++;
		if (edges[i].intent_version > 0 &&
		    edges[i].applied_version == edges[i].intent_version)
			converged++;
		if (edges[i].intent_version > edges[i].applied_version)
			behind += edges[i].intent_version -
			    edges[i].applied_version;
	}
	metrics_family(f, "meshwan_sites", "gauge",
	    "Sites that are not revoked.");
	fprintf(f, "meshwan_sites %" PRIu64 "\n", live);
	metrics_family(f, "meshwan_tunnels", "gauge",
	    "Tunnels in the compiled topology.");
	fprintf(f, "meshwan_tunnels %zu\n", n_tunnels);
	metrics_family(f, "meshwan_edges_connected", "gauge",
	    "Edges with an open session.");
	fprintf(f, "meshwan_edges_connected %" PRIu64 "\n", connected);
	metrics_family(f, "meshwan_edges_converged", "gauge",
	    "Edges whose applied intent version equals the newest one.");
	fprintf(f, "meshwan_edges_converged %" PRIu64 "\n", converged);
	metrics_family(f, "meshwan_intent_versions_behind", "gauge",
	    "Sum over edges of intent versions not yet applied.");
	fprintf(f, "meshwan_intent_versions_behind %" PRIu64 "\n", behind);
	metrics_family(f, "meshwan_edge_intent_versions_behind", "gauge",
	    "Intent versions one edge has not applied yet.");
	for (i = 0; i < n_edges; i++)
		fprintf(f, "meshwan_edge_intent_versions_behind{site_id=\"%"
		    PRIu64 "\"} %" PRIu64 "\n", edges[i].site_id,
		    edges[i].intent_version > edges[i].applied_version ?
		    edges[i].intent_version - edges[i].applied_version : 0);
	for (i = 0; i < n_edges; i++)
		model_edge_state_clear(&edges[i]);
	free(edges);
	free(sites);
	return 0;
}

static void
metrics_counters(FILE *f, const struct metrics *m)
{
	size_t i;

	metrics_family(f, "meshwan_compiles_total", "counter",
	    "Topology compiles (full and incremental).");
	fprintf(f, "meshwan_compiles_total %" PRIu64 "\n",
	    atomic_load(&m->compiles));
	metrics_family(f, "meshwan_compile_last_seconds", "gauge",
	    "Duration of the latest topology compile.");
	fprintf(f, "meshwan_compile_last_seconds %.6f\n",
	    (double)atomic_load(&m->compile_last_us) / 1e6);
	metrics_family(f, "meshwan_compile_seconds_total", "counter",
	    "Time spent compiling the topology.");
	fprintf(f, "meshwan_compile_seconds_total %.6f\n",
	    (double)atomic_load(&m->compile_sum_us) / 1e6);
	metrics_family(f, "meshwan_intent_bytes_sent_total", "counter",
	    "Bytes of intent (snapshots and deltas) sent to edges.");
	fprintf(f, "meshwan_intent_bytes_sent_total %" PRIu64 "\n",
	    atomic_load(&m->intent_bytes_sent));
	metrics_family(f, "meshwan_rpc_events_total", "counter",
	    "gRPC events by kind.");
	for (i = 0; i < METRICS_RPC_MAX; i++)
		fprintf(f, "meshwan_rpc_events_total{event=\"%s\"} %" PRIu64
		    "\n", metrics_rpc_names[i], atomic_load(&m->rpc[i]));
	metrics_family(f, "meshwan_session_store_commits_total", "counter",
	    "Database transactions committed by the session event loop "
	    "(each one an fsync).");
	fprintf(f, "meshwan_session_store_commits_total %" PRIu64 "\n",
	    atomic_load(&m->loop_commits));
	metrics_family(f, "meshwan_session_store_statements_total", "counter",
	    "SQL statements run by the session event loop.");
	fprintf(f, "meshwan_session_store_statements_total %" PRIu64 "\n",
	    atomic_load(&m->loop_statements));
}

static void
metrics_http(FILE *f, const struct http_server *srv)
{
	uint64_t n;
	int code;

	metrics_family(f, "meshwan_http_requests_total", "counter",
	    "REST API requests answered, by status code.");
	for (code = HTTP_STATUS_MIN; code <= HTTP_STATUS_MAX; code++) {
		n = http_count(srv, code);
		if (n > 0)
			fprintf(f, "meshwan_http_requests_total{code=\"%d\"} %"
			    PRIu64 "\n", code, n);
	}
}

int
metrics_render(const struct metrics *m, struct store *st,
    const struct http_server *srv, char **out, size_t *len)
{
	FILE *f;
	int rc;

	*out = NULL;
	*len = 0;
	f = open_memstream(out, len);
	if (f == NULL)
		return -1;
	rc = metrics_store(f, st);
	if (m != NULL)
		metrics_counters(f, m);
	if (srv != NULL)
		metrics_http(f, srv);
	if (fclose(f) != 0 || rc == -1) {
		free(*out);
		*out = NULL;
		*len = 0;
		return -1;
	}
	return 0;
}
