/*
 * events.h — the live event stream of the REST API
 * (GET /api/v1/events/stream) and the tunnels' health history
 * (GET /api/v1/tunnels/{id}/health).
 *
 * One thread of its own watches the store through its own connection
 * (so it sees what the API, the sessions and any other controller on the
 * same database write) and turns what changed into events: audit
 * entries, edges (connected, acked, reported status), sites and tunnels.
 * Events go into a bounded in-memory ring that every stream reads from;
 * a stream that falls out of the ring is cut, never buffered.  The same
 * thread keeps one bounded health ring per tunnel end, filled from the
 * edges' status reports.  Bounds: see controller/API.md, "Event stream".
 *
 * Ownership: events_new() borrows the store until events_free().
 * Threads: events_stream_* run in the HTTP server's thread; the rest may
 * be called from any thread.
 */
#ifndef MESHWAN_EVENTS_H
#define MESHWAN_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "controller/model.h"

struct store;
struct events;
struct events_stream;

/* Events kept for replay (Last-Event-ID), and their size in bytes. */
#define EVENTS_RING 4096u
#define EVENTS_RING_BYTES ((size_t)32 * 1024 * 1024)
/* Streams open at once: in all, and per token and per client address. */
#define EVENTS_MAX_STREAMS_DEFAULT 64u
#define EVENTS_MAX_STREAMS_PER_CLIENT_DEFAULT 4u
/* Seconds between heartbeat comments on an idle stream. */
#define EVENTS_HEARTBEAT_S 15
/* The watcher looks at the store this often (and no more than 4/s per
 * edge is what an edge's events can cost). */
#define EVENTS_SCAN_MS 250
/* Health history: one sample per slot, window, tunnels tracked. */
#define EVENTS_HEALTH_SLOT_S 10u
#define EVENTS_HEALTH_SAMPLES 360u
#define EVENTS_HEALTH_TUNNELS 4096u

enum events_type {
	EVENTS_AUDIT = 0,
	EVENTS_EDGE,
	EVENTS_SITE,
	EVENTS_TUNNEL,
};

/*
 * How objects look in the REST API (api.c): each returns malloc'd JSON
 * text, or NULL when out of memory.  An edge's status blob is shown when
 * loaded (e->status), as GET /api/v1/edges/{id} does.
 */
struct events_render {
	char *(*audit)(const struct model_audit *a);
	char *(*site)(const struct model_site *s,
	    const struct model_site_prefix *p, size_t np);
	char *(*tunnel)(const struct model_tunnel *t);
	char *(*edge)(const struct model_site *s,
	    const struct model_edge_state *e);
};

struct events_config {
	struct store *st;		/* borrowed; NULL = no watcher */
	unsigned max_streams;		/* 0 = default */
	unsigned max_streams_per_client; /* 0 = default */
	struct events_render render;
	/* New events (or a heartbeat is due): wake the parked streams. */
	void (*wake)(void *arg);
	void *wake_arg;
};

/* Makes the hub; no thread yet.  NULL when out of memory. */
struct events *events_new(const struct events_config *cfg);
/* Starts the watcher thread (after the HTTP server exists).  0 or -1. */
int events_run(struct events *ev);
/* Stops the watcher thread; streams still read (and end).  NULL ok. */
void events_stop(struct events *ev);
/* Frees everything; every stream must be freed before.  NULL ok. */
void events_free(struct events *ev);

/*
 * Appends one event (data: one line of JSON text) to the ring and wakes
 * the streams.  0, or -1 when out of memory.  The watcher is the normal
 * producer; exposed for tests.
 */
int events_publish(struct events *ev, enum events_type type,
    const char *data);

enum events_open_result {
	EVENTS_OPEN_OK = 0,
	EVENTS_OPEN_LIMIT,		/* too many streams (which one: why) */
	EVENTS_OPEN_NOMEM,
};

/*
 * Opens a stream for token name who from client address peer.  With
 * has_last, events after last_id are replayed first; an id no longer in
 * the ring (or never given out) starts the stream with a "reset" event.
 * why (may be NULL) says which limit refused it.
 */
enum events_open_result events_stream_open(struct events *ev,
    const char *who, const char *peer, bool has_last, uint64_t last_id,
    struct events_stream **out, const char **why);
/* The reader and destructor for http_response.stream_read/_free. */
long events_stream_read(void *arg, char *buf, size_t max);
void events_stream_free(void *arg);

/*
 * One health report of tunnel_id seen by site_id at unix time at;
 * kept per EVENTS_HEALTH_SLOT_S (the latest of a slot wins).  0, or -1
 * when the tunnel cannot be tracked (EVENTS_HEALTH_TUNNELS reached).
 */
int events_health_add(struct events *ev, uint64_t tunnel_id,
    uint64_t site_id, int64_t at, bool up, uint32_t rtt_us,
    uint32_t loss_permille, uint32_t jitter_us);
/* Forget the history of tunnels not in ids (sorted). */
void events_health_keep(struct events *ev, const uint64_t *ids, size_t n);
/*
 * The history of tunnel_id within the last hour before now as JSON text
 * (malloc'd; see API.md), or NULL when out of memory.
 */
char *events_health_json(struct events *ev, uint64_t tunnel_id, int64_t now);
/* Samples held for tunnel_id in all (tests). */
size_t events_health_count(struct events *ev, uint64_t tunnel_id);

#endif
