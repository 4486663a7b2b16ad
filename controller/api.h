/*
 * api.h — the controller's REST API v1 (see controller/API.md and
 * controller/web/openapi.json for the routes).
 *
 * api_start() opens the HTTP listener; every request is then served from
 * the HTTP server's own thread (controller/http.c), never from the
 * daemon's event loop.  Thread-safety story: the API thread uses its own
 * struct store — a separate database connection, given to api_start and
 * used by no other thread until api_stop returns.  sqlite in WAL mode lets
 * that connection and the daemon's own connection work side by side (the
 * store's busy timeout serialises writers).
 *
 * Every change runs in one store transaction together with its audit
 * entry and with a dry-run compile of the topology (so "tunnel pool
 * exhausted" is refused before anything is written).  After the commit the
 * daemon is told through api_hooks, from the API thread: the hook must
 * only hand the news over to the daemon's loop (e.g. queue + eventfd),
 * never block or touch the daemon's state without its own lock.
 */
#ifndef MESHWAN_API_H
#define MESHWAN_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"

struct store;
struct metrics;
struct api;

struct api_hooks {
	void *arg;
	/*
	 * The model changed for these sites (created, updated, deleted,
	 * revoked, links or LAN prefixes changed): recompile what they touch
	 * and notify the affected edges.  n == 0 (site_ids NULL) means the
	 * whole network changed (topology policy or crypto profile): compile
	 * everything.  Called after the change is committed.  May be NULL.
	 */
	void (*topology_changed)(void *arg, const uint64_t *site_ids, size_t n);
	/*
	 * An operator asked for new SA keys: both directions of tunnel id
	 * (site false) or of every tunnel of site id (site true) start the
	 * make-before-break rekey with reason OPERATOR.  Called after the
	 * audit entry is committed.  May be NULL (the route then answers
	 * 503).
	 */
	void (*rekey)(void *arg, bool site, uint64_t id);
	/*
	 * The last intent site_id's edge failed to apply, for
	 * GET /api/v1/edges (last_failure): true and *out filled, or
	 * false when there is none.  Must only read under the daemon's
	 * lock.  May be NULL (last_failure is then always null).
	 */
	bool (*last_failure)(void *arg, uint64_t site_id,
	    struct model_ack_failure *out);
};

struct api_config {
	/* "127.0.0.1:8080", "[::1]:8080" or "0.0.0.0:8080"; numeric only. */
	const char *listen;
	size_t max_body;		/* bytes; 0 = API_MAX_BODY_DEFAULT */
	/*
	 * Connections held at once, in all and per client address, and the
	 * idle timeout; 0 = the defaults of controller/http.h.
	 */
	unsigned max_connections;
	unsigned max_per_ip;
	unsigned timeout_s;
	int64_t enroll_ttl_s;		/* 0 = STORE_ENROLL_TTL_DEFAULT */
	/*
	 * What an edge's configuration needs besides its token, returned
	 * with every enrollment token (`edge_config`): the gRPC ports,
	 * the name in the controller's certificate and the CA pin
	 * ("sha256:" + 64 hex).  NULL/0 = left out.
	 */
	uint16_t edge_session_port, edge_enroll_port;
	const char *edge_controller_name;
	const char *edge_ca_pin;
	struct api_hooks hooks;
	/* Counters the daemon updates (compile, RPC); NULL = not shown. */
	struct metrics *metrics;
	/*
	 * HTTPS: PEM certificate and key (kept by the caller until
	 * api_stop); both NULL = plain HTTP.  The caller decides when
	 * plaintext is allowed (controller/CONTROLLER.md).
	 */
	const char *tls_cert_pem;
	const char *tls_key_pem;
	/* The dashboard's folder, served at "/"; NULL = none (404). */
	const char *web_root;
	/*
	 * A second store connection, used only by the event watcher thread
	 * (GET /api/v1/events/stream, tunnel health history) until
	 * api_stop; NULL = no event stream (503).
	 */
	struct store *events_st;
	/* Event streams at once: in all, per token and per address;
	 * 0 = the defaults of controller/events.h. */
	unsigned sse_max;
	unsigned sse_max_per_client;
	/* tunnel_pool6 (family 0 = off): tunnels show their IPv6 pair. */
	struct model_prefix pool6;
};

#define API_MAX_BODY_DEFAULT ((size_t)256 * 1024)

/*
 * Starts serving.  st is borrowed and used only by the API thread until
 * api_stop() returns (the caller closes it afterwards).  Returns NULL
 * (logged) when the listen address is invalid or cannot be bound.
 */
struct api *api_start(const struct api_config *cfg, struct store *st);
/* Stops the listener and waits for the request being served; NULL ok. */
void api_stop(struct api *a);
/* The bound TCP port (tests listen on port 0). */
uint16_t api_port(const struct api *a);
/* The event hub (controller/events.h), or NULL without events_st. */
struct events *api_events(struct api *a);

#endif
