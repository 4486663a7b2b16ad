/*
 * session_status.c — an edge's Status report kept as JSON text for
 * GET /api/v1/edges/{id}.  The only user of jansson in the session layer:
 * the REST representation stays out of the stream and intent code.
 *
 * A report comes from an edge that may be hostile, so its cost is checked
 * before any work is done on it: the smallest JSON its counts can make is
 * computed first, and a report that could not fit MODEL_STATUS_MAX is
 * refused without building anything (the rpc layer already refused
 * messages over SESSION_EDGE_MSG_MAX unread; session.c rate-limits them).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/json_u64.h"
#include "controller/session_int.h"
#include "lib/log.h"
#include "proto/msg.h"

/*
 * The fewest bytes one entry takes in the JSON below (all numbers 0,
 * shortest names, empty strings), measured on what json_dumps writes:
 * a lower bound of the whole text from the counts alone.
 */
#define STATUS_JSON_TUNNEL 160
#define STATUS_JSON_SA 125
#define STATUS_JSON_BGP 117
#define STATUS_JSON_HEALTH 65

/* The smallest JSON text m can give; no allocation. */
static size_t
status_json_floor(const struct msg_status *m, size_t *n_sas)
{
	size_t sz = 0;

	*n_sas = 0;
	for (size_t i = 0; i < m->n_tunnels; i++) {
		*n_sas += m->tunnels[i].n_sas;
		sz += STATUS_JSON_TUNNEL + strlen(m->tunnels[i].error);
	}
	return sz + *n_sas * STATUS_JSON_SA + m->n_bgp * STATUS_JSON_BGP +
	    m->n_health * STATUS_JSON_HEALTH;
}

static json_t *
status_sa(const struct msg_sa_status *sa)
{
	json_t *j = json_object();

	json_object_set_new(j, "spi", json_integer(sa->spi));
	json_object_set_new(j, "direction", json_string(
	    msg_direction_name(sa->direction)));
	json_object_set_new(j, "epoch", json_u64(sa->epoch));
	json_object_set_new(j, "packets", json_u64(sa->packets));
	json_object_set_new(j, "bytes", json_u64(sa->bytes));
	json_object_set_new(j, "age_seconds", json_u64(sa->age_seconds));
	json_object_set_new(j, "seq", json_u64(sa->seq));
	json_object_set_new(j, "drops_auth", json_u64(sa->drops_auth));
	json_object_set_new(j, "drops_replay", json_u64(sa->drops_replay));
	json_object_set_new(j, "active", json_boolean(sa->active));
	return j;
}

static json_t *
status_tunnel(const struct msg_tunnel_status *t)
{
	json_t *j = json_object(), *sas = json_array();

	for (size_t k = 0; k < t->n_sas; k++)
		json_array_append_new(sas, status_sa(&t->sas[k]));
	json_object_set_new(j, "tunnel_id", json_u64(t->tunnel_id));
	json_object_set_new(j, "state", json_string(
	    msg_tunnel_state_name(t->state)));
	json_object_set_new(j, "error", json_string(t->error));
	json_object_set_new(j, "sas", sas);
	json_object_set_new(j, "packets_in", json_u64(t->packets_in));
	json_object_set_new(j, "packets_out", json_u64(t->packets_out));
	json_object_set_new(j, "bytes_in", json_u64(t->bytes_in));
	json_object_set_new(j, "bytes_out", json_u64(t->bytes_out));
	json_object_set_new(j, "drops_no_sa", json_u64(t->drops_no_sa));
	json_object_set_new(j, "drops_malformed",
	    json_u64(t->drops_malformed));
	json_object_set_new(j, "drops_unknown_spi",
	    json_u64(t->drops_unknown_spi));
	json_object_set_new(j, "peer_moves", json_u64(t->peer_moves));
	if (t->peer_address.family != 0) {
		char addr[MSG_ADDR_STRLEN];

		msg_addr_format(&t->peer_address, addr, sizeof(addr));
		json_object_set_new(j, "peer_address", json_string(addr));
		json_object_set_new(j, "peer_port", json_u64(t->peer_port));
	}
	return j;
}

static json_t *
status_bgp(const struct msg_bgp_neighbor_status *b)
{
	char addr[MSG_ADDR_STRLEN];
	json_t *j = json_object();

	msg_addr_format(&b->address, addr, sizeof(addr));
	json_object_set_new(j, "address", json_string(addr));
	json_object_set_new(j, "remote_asn", json_integer(b->remote_asn));
	json_object_set_new(j, "state", json_string(
	    msg_bgp_state_name(b->state)));
	json_object_set_new(j, "uptime_seconds",
	    json_u64(b->uptime_seconds));
	json_object_set_new(j, "prefixes_received",
	    json_integer(b->prefixes_received));
	json_object_set_new(j, "prefixes_filtered",
	    json_integer(b->prefixes_filtered));
	json_object_set_new(j, "tunnel_id", json_u64(b->tunnel_id));
	return j;
}

static json_t *
status_health(const struct msg_health_status *h)
{
	json_t *j = json_object();

	json_object_set_new(j, "tunnel_id", json_u64(h->tunnel_id));
	json_object_set_new(j, "up", json_boolean(h->up));
	json_object_set_new(j, "rtt_us", json_integer(h->rtt_us));
	json_object_set_new(j, "loss_permille",
	    json_integer(h->loss_permille));
	json_object_set_new(j, "jitter_us", json_integer(h->jitter_us));
	return j;
}

/* The latest status as JSON text for GET /api/v1/edges/{id}. */
void
session_status_save(struct sessions *s, struct edge *e,
    const struct msg_status *m)
{
	json_t *j, *tun, *bgp, *hl;
	size_t floor, n_sas;
	char *text;

	/* Cheap first: could this report fit at all? */
	if ((floor = status_json_floor(m, &n_sas)) > MODEL_STATUS_MAX) {
		log_warnx("session: site %" PRIu64 ": status of %zu tunnels, "
		    "%zu SAs, %zu BGP and %zu health entries needs at least "
		    "%zu bytes as JSON, over %u: refused", e->site_id,
		    m->n_tunnels, n_sas, m->n_bgp, m->n_health, floor,
		    MODEL_STATUS_MAX);
		return;
	}
	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_STATUS_RECEIVED);
	j = json_object();
	tun = json_array();
	bgp = json_array();
	hl = json_array();
	for (size_t i = 0; i < m->n_tunnels; i++)
		json_array_append_new(tun, status_tunnel(&m->tunnels[i]));
	for (size_t i = 0; i < m->n_bgp; i++)
		json_array_append_new(bgp, status_bgp(&m->bgp[i]));
	for (size_t i = 0; i < m->n_health; i++)
		json_array_append_new(hl, status_health(&m->health[i]));
	json_object_set_new(j, "applied_version",
	    json_u64(m->applied_version));
	json_object_set_new(j, "uptime_seconds",
	    json_u64(m->uptime_seconds));
	json_object_set_new(j, "last_ack_error", e->last_error[0] ?
	    json_string(e->last_error) : json_null());
	json_object_set_new(j, "tunnels", tun);
	json_object_set_new(j, "bgp", bgp);
	json_object_set_new(j, "health", hl);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return;
	if (strlen(text) > MODEL_STATUS_MAX) {
		log_warnx("session: site %" PRIu64 ": status too large to keep",
		    e->site_id);
		free(text);
		return;
	}
	/* Group commit: only the latest report waits for session_flush. */
	free(e->status);
	e->status = text;
	e->status_len = strlen(text);
	e->status_at = session_now(s);
}
