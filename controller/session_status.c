/*
 * session_status.c — an edge's Status report kept as JSON text for
 * GET /api/v1/edges/{id}.  The only user of jansson in the session layer:
 * the REST representation stays out of the stream and intent code.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "controller/metrics.h"
#include "controller/model.h"
#include "controller/session_int.h"
#include "controller/store.h"
#include "lib/log.h"
#include "proto/msg.h"

/* The latest status as JSON text for GET /api/v1/edges/{id}. */
void
session_status_save(struct sessions *s, struct edge *e,
    const struct msg_status *m)
{
	struct model_error err = { 0 };
	json_t *j = json_object(), *tun = json_array(), *bgp = json_array(),
	    *hl = json_array();
	char *text;

	if (s->metrics)
		metrics_rpc_inc(s->metrics, METRICS_RPC_STATUS_RECEIVED);
	for (size_t i = 0; i < m->n_tunnels; i++) {
		const struct msg_tunnel_status *t = &m->tunnels[i];
		json_t *sas = json_array();

		for (size_t k = 0; k < t->n_sas; k++)
			json_array_append_new(sas, json_pack("{s:I,s:s,s:I,"
			    "s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
			    "spi", (json_int_t)t->sas[k].spi,
			    "direction", msg_direction_name(t->sas[k].direction),
			    "epoch", (json_int_t)t->sas[k].epoch,
			    "packets", (json_int_t)t->sas[k].packets,
			    "bytes", (json_int_t)t->sas[k].bytes,
			    "age_seconds", (json_int_t)t->sas[k].age_seconds,
			    "seq", (json_int_t)t->sas[k].seq,
			    "drops_auth", (json_int_t)t->sas[k].drops_auth,
			    "drops_replay", (json_int_t)t->sas[k].drops_replay,
			    "active", t->sas[k].active));
		json_array_append_new(tun, json_pack("{s:I,s:s,s:s,s:o,s:I,"
		    "s:I,s:I,s:I,s:I,s:I,s:I}",
		    "tunnel_id", (json_int_t)t->tunnel_id,
		    "state", msg_tunnel_state_name(t->state),
		    "error", t->error, "sas", sas,
		    "packets_in", (json_int_t)t->packets_in,
		    "packets_out", (json_int_t)t->packets_out,
		    "bytes_in", (json_int_t)t->bytes_in,
		    "bytes_out", (json_int_t)t->bytes_out,
		    "drops_no_sa", (json_int_t)t->drops_no_sa,
		    "drops_malformed", (json_int_t)t->drops_malformed,
		    "drops_unknown_spi", (json_int_t)t->drops_unknown_spi));
	}
	for (size_t i = 0; i < m->n_bgp; i++) {
		char addr[MSG_ADDR_STRLEN];

		msg_addr_format(&m->bgp[i].address, addr, sizeof(addr));
		json_array_append_new(bgp, json_pack("{s:s,s:I,s:s,s:I,s:I,"
		    "s:I}", "address", addr,
		    "remote_asn", (json_int_t)m->bgp[i].remote_asn,
		    "state", msg_bgp_state_name(m->bgp[i].state),
		    "uptime_seconds", (json_int_t)m->bgp[i].uptime_seconds,
		    "prefixes_received",
		    (json_int_t)m->bgp[i].prefixes_received,
		    "tunnel_id", (json_int_t)m->bgp[i].tunnel_id));
	}
	for (size_t i = 0; i < m->n_health; i++)
		json_array_append_new(hl, json_pack("{s:I,s:b,s:I,s:I,s:I}",
		    "tunnel_id", (json_int_t)m->health[i].tunnel_id,
		    "up", m->health[i].up,
		    "rtt_us", (json_int_t)m->health[i].rtt_us,
		    "loss_permille", (json_int_t)m->health[i].loss_permille,
		    "jitter_us", (json_int_t)m->health[i].jitter_us));
	json_object_set_new(j, "applied_version",
	    json_integer((json_int_t)m->applied_version));
	json_object_set_new(j, "uptime_seconds",
	    json_integer((json_int_t)m->uptime_seconds));
	json_object_set_new(j, "last_ack_error", e->last_error[0] ?
	    json_string(e->last_error) : json_null());
	json_object_set_new(j, "tunnels", tun);
	json_object_set_new(j, "bgp", bgp);
	json_object_set_new(j, "health", hl);
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return;
	if (strlen(text) > MODEL_STATUS_MAX)
		log_warnx("session: site %" PRIu64 ": status too large to keep",
		    e->site_id);
	else if (store_edge_set_status(s->st, e->site_id, text, strlen(text),
	    session_now(s), &err) == -1)
		log_warnx("session: site %" PRIu64 ": status: %s", e->site_id,
		    err.message);
	free(text);
}
