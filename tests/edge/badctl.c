/*
 * badctl.c — a test controller that sends an edge bad intents
 * (tests/edge/bad_input.sh, issue 9 "Bad input").
 *
 * It sits between one meshwan-edge and the real controller: the edge's
 * Edge.Session stream ends here (mutual TLS, a server certificate signed
 * by the controller's CA), and every message is relayed unchanged to the
 * controller over a stream made with the edge's own certificate and key,
 * and back.  So the site runs as usual (keys, SAs, BGP), and the real
 * controller sees the edge's acks, failed ones included.  On a command it
 * also sends the edge a message of its own, built from the intent it has
 * relayed so far (snapshots and deltas followed with msg_intent_apply_delta):
 *
 *   garbage      bytes that are not protobuf
 *   inner30      a snapshot whose tunnels[0].inner_local is a /30
 *   tunnel0      ... whose tunnels[0].id is 0
 *   prefix33     ... whose tunnels[0].peer.allowed_prefixes[0] is a /33
 *   encap9       ... whose tunnels[0].encap is 9 (no such Encap)
 *   delta_far    a delta from a version the edge does not hold
 *   lan31        a snapshot whose tunnels[0] /31 lies in the site's LAN
 *   peer_own_lan ... whose tunnels[0] peer may send from half the site's LAN
 *   two_peers    ... with a second tunnel, to another peer, allowed a
 *                prefix that covers tunnels[0]'s peer's
 *   same31       ... with a second tunnel on tunnels[0]'s /31
 *   rekey_spi17  a RekeyOrder (INSTALL_INBOUND of tunnels[0]'s current
 *                inbound SA epoch) with the reserved SPI 17
 *
 * Injected intents take the next version after the relayed one.  The first
 * five are refused by the wire checks (proto/msg.c), the last four are
 * valid messages that only the edge's reconciler can refuse.
 *
 *   badctl LISTEN CTL_TARGET CTL_CA CERT KEY EDGE_CERT EDGE_KEY CMD_FIFO
 *
 * LISTEN is "host:0" (the bound port is printed as "badctl: listening
 * PORT"); the edge's certificate files are read when its stream opens (it
 * enrolls with the controller itself first).  Commands are lines on
 * CMD_FIFO.  Output (stdout, a line each): "inject NAME version=V",
 * "ack version=V ok=0|1 reason=TEXT" for every intent ack the edge sends,
 * "rekey-ack tunnel=T epoch=E step=S ok=0|1 reason=TEXT" for every rekey
 * ack,
 * "ctl snapshot version=V" / "ctl delta F->V" for what the controller
 * sends.  SIGTERM ends it.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "proto/msg.h"
#include "proto/pbconv.h"
#include "proto/rpc.h"
#include "meshwan/v1/meshwan.pb-c.h"

#define METHOD "/meshwan.v1.Edge/Session"
#define QMAX 256

struct buf {
	uint8_t *p;
	size_t len;
};

struct px {
	const char *ctl_target, *ctl_ca, *edge_cert, *edge_key;
	struct rpc_server *srv;
	struct rpc_client *up;
	struct rpc_stream *edge, *ups;
	bool ups_opening;
	struct buf q[QMAX];	/* edge -> controller before ups opens */
	size_t nq;
	struct msg_intent cur;
	bool have;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* ------------------------------------------------------------------ */
/* Relay */

static void
q_flush(struct px *p)
{
	for (size_t i = 0; i < p->nq; i++) {
		if (p->ups != NULL)
			(void)rpc_stream_send(p->ups, p->q[i].p, p->q[i].len);
		free(p->q[i].p);
	}
	p->nq = 0;
}

static void
log_edge_msg(const uint8_t *buf, size_t len)
{
	struct msg_edge_message m;
	char err[PBCONV_ERR_LEN];

	if (pbconv_decode_edge_message(buf, len, &m, err, sizeof(err)) == -1) {
		printf("edge bad message: %s\n", err);
		return;
	}
	if (m.kind == MSG_EDGE_ACK && m.u.ack.rekey_tunnel_id == 0)
		printf("ack version=%" PRIu64 " ok=%d reason=%s\n",
		    m.u.ack.version, m.u.ack.ok ? 1 : 0, m.u.ack.reason);
	else if (m.kind == MSG_EDGE_ACK)
		printf("rekey-ack tunnel=%" PRIu64 " epoch=%" PRIu64 " step=%s "
		    "ok=%d reason=%s\n", m.u.ack.rekey_tunnel_id,
		    m.u.ack.rekey_epoch, msg_rekey_step_name(m.u.ack.rekey_step),
		    m.u.ack.ok ? 1 : 0, m.u.ack.reason);
	msg_edge_message_free(&m);
}

static void
track_ctl_msg(struct px *p, const uint8_t *buf, size_t len)
{
	struct msg_controller_message m;
	char err[PBCONV_ERR_LEN];

	if (pbconv_decode_controller_message(buf, len, &m, err,
	    sizeof(err)) == -1) {
		printf("ctl bad message: %s\n", err);
		return;
	}
	if (m.kind == MSG_CONTROLLER_SNAPSHOT) {
		printf("ctl snapshot version=%" PRIu64 "\n",
		    m.u.snapshot.version);
		if (p->have)
			msg_intent_free(&p->cur);
		p->cur = m.u.snapshot;
		memset(&m.u.snapshot, 0, sizeof(m.u.snapshot));
		p->have = true;
	} else if (m.kind == MSG_CONTROLLER_DELTA) {
		printf("ctl delta %" PRIu64 "->%" PRIu64 "\n",
		    m.u.delta.from_version, m.u.delta.version);
		if (p->have && msg_intent_apply_delta(&p->cur, &m.u.delta, err,
		    sizeof(err)) == -1)
			printf("ctl delta does not apply here: %s\n", err);
	}
	msg_controller_message_free(&m);
}

static int
edge_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg);
static void
edge_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg);
static void
edge_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg);

static int
up_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct px *p = arg;

	(void)peer;
	p->ups = s;
	p->ups_opening = false;
	printf("upstream open\n");
	q_flush(p);
	return 0;
}

static void
up_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct px *p = arg;

	(void)s;
	track_ctl_msg(p, buf, len);
	if (p->edge != NULL)
		(void)rpc_stream_send(p->edge, buf, len);
}

static void
up_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct px *p = arg;

	printf("upstream closed: %s %d %s\n", rpc_close_reason_str(why), code,
	    msg ? msg : "");
	if (p->ups == s)
		p->ups = NULL;
	p->ups_opening = false;
	if (p->edge != NULL)
		rpc_stream_close(p->edge, RPC_UNAVAILABLE, "upstream closed");
}

static const struct rpc_stream_handlers up_h = {
	.on_open = up_open, .on_message = up_msg, .on_close = up_close,
};

static int
edge_open(struct rpc_stream *s, const struct rpc_peer *peer, void *arg)
{
	struct px *p = arg;
	struct rpc_stream_opts so = { .reconnect = false, .timeout_ms = 0 };

	printf("edge stream open (%s)\n", peer->cn);
	if (p->edge != NULL)
		rpc_stream_cancel(p->edge);
	p->edge = s;
	if (p->up == NULL) {
		struct rpc_client_opts o;

		memset(&o, 0, sizeof(o));
		o.target = p->ctl_target;
		o.tls.ca_file = p->ctl_ca;
		o.tls.cert_file = p->edge_cert;
		o.tls.key_file = p->edge_key;
		o.server_name = "meshwan-controller";
		o.limits.max_message = 16u << 20;
		if ((p->up = rpc_client_new(&o)) == NULL) {
			printf("cannot make the upstream client\n");
			return RPC_UNAVAILABLE;
		}
	}
	if (p->ups == NULL && !p->ups_opening) {
		if (rpc_client_stream_open(p->up, METHOD, &up_h, p, &so) == -1)
			return RPC_UNAVAILABLE;
		p->ups_opening = true;
	}
	return RPC_OK;
}

static void
edge_msg(struct rpc_stream *s, const uint8_t *buf, size_t len, void *arg)
{
	struct px *p = arg;

	if (s != p->edge)
		return;
	log_edge_msg(buf, len);
	if (p->ups != NULL) {
		(void)rpc_stream_send(p->ups, buf, len);
	} else if (p->nq < QMAX && (p->q[p->nq].p = malloc(len ? len : 1))) {
		memcpy(p->q[p->nq].p, buf, len);
		p->q[p->nq++].len = len;
	}
}

static void
edge_close(struct rpc_stream *s, enum rpc_close_reason why, int code,
    const char *msg, void *arg)
{
	struct px *p = arg;

	printf("edge stream closed: %s %d %s\n", rpc_close_reason_str(why),
	    code, msg ? msg : "");
	if (p->edge != s)
		return;
	p->edge = NULL;
	if (p->ups != NULL)
		rpc_stream_close(p->ups, RPC_OK, NULL);
}

static const struct rpc_stream_handlers edge_h = {
	.on_open = edge_open, .on_message = edge_msg, .on_close = edge_close,
};

/* ------------------------------------------------------------------ */
/* Injection */

static int
send_edge(struct px *p, const char *name, uint64_t v, const uint8_t *buf,
    size_t len)
{
	if (p->edge == NULL) {
		printf("inject %s: no edge stream\n", name);
		return -1;
	}
	printf("inject %s version=%" PRIu64 " bytes=%zu\n", name, v, len);
	return rpc_stream_send(p->edge, buf, len);
}

/* The relayed intent as a snapshot of the next version, to change. */
static int
next_snapshot(struct px *p, struct msg_controller_message *m)
{
	memset(m, 0, sizeof(*m));
	if (!p->have || p->cur.n_tunnels == 0) {
		printf("inject: no intent with a tunnel relayed yet\n");
		return -1;
	}
	m->kind = MSG_CONTROLLER_SNAPSHOT;
	if (msg_intent_copy(&m->u.snapshot, &p->cur) == -1)
		return -1;
	m->u.snapshot.version = p->cur.version + 1;
	return 0;
}

static int
send_msg(struct px *p, const char *name, struct msg_controller_message *m)
{
	uint8_t *buf;
	size_t len;
	uint64_t v = m->kind == MSG_CONTROLLER_DELTA ? m->u.delta.version :
	    m->u.snapshot.version;
	int rc;

	if (pbconv_encode_controller_message(m, &buf, &len) == -1) {
		printf("inject %s: cannot encode\n", name);
		msg_controller_message_free(m);
		return -1;
	}
	msg_controller_message_free(m);
	rc = send_edge(p, name, v, buf, len);
	free(buf);
	return rc;
}

/* Field-level damage the encoder would refuse: change the generated
 * struct of a good snapshot and pack that. */
static int
inject_wire(struct px *p, const char *name)
{
	struct msg_controller_message m;
	Meshwan__V1__ControllerMessage *pb;
	Meshwan__V1__Tunnel *t;
	char *saved = NULL, **slot = NULL, text[64];
	uint8_t *buf, *out;
	size_t len, n;
	uint64_t v;
	int rc = -1;

	if (next_snapshot(p, &m) == -1)
		return -1;
	v = m.u.snapshot.version;
	if (pbconv_encode_controller_message(&m, &buf, &len) == -1) {
		msg_controller_message_free(&m);
		return -1;
	}
	msg_controller_message_free(&m);
	pb = meshwan__v1__controller_message__unpack(NULL, len, buf);
	free(buf);
	if (pb == NULL || pb->body_case !=
	    MESHWAN__V1__CONTROLLER_MESSAGE__BODY_SNAPSHOT ||
	    pb->snapshot->n_tunnels == 0)
		goto out;
	t = pb->snapshot->tunnels[0];
	if (strcmp(name, "inner30") == 0) {
		char *slash;

		snprintf(text, sizeof(text), "%s", t->inner_local);
		if ((slash = strchr(text, '/')) != NULL)
			snprintf(slash, sizeof(text) - (size_t)(slash - text),
			    "/30");
		slot = &t->inner_local;
	} else if (strcmp(name, "tunnel0") == 0) {
		t->id = 0;
	} else if (strcmp(name, "prefix33") == 0) {
		if (t->peer == NULL || t->peer->n_allowed_prefixes == 0)
			goto out;
		snprintf(text, sizeof(text), "%s", t->peer->allowed_prefixes[0]);
		if (strchr(text, '/') != NULL)
			snprintf(strchr(text, '/'), 4, "/33");
		slot = &t->peer->allowed_prefixes[0];
	} else if (strcmp(name, "encap9") == 0) {
		t->encap = (Meshwan__V1__Encap)9;
	} else {
		goto out;
	}
	if (slot != NULL) {
		saved = *slot;
		*slot = text;
	}
	n = meshwan__v1__controller_message__get_packed_size(pb);
	if ((out = malloc(n)) != NULL) {
		meshwan__v1__controller_message__pack(pb, out);
		rc = send_edge(p, name, v, out, n);
		free(out);
	}
	if (slot != NULL)
		*slot = saved;
out:
	if (pb != NULL)
		meshwan__v1__controller_message__free_unpacked(pb, NULL);
	if (rc == -1)
		printf("inject %s: failed\n", name);
	return rc;
}

/*
 * rekey_spi17: an INSTALL_INBOUND order for tunnels[0]'s current inbound
 * SA epoch (one the controller knows, so it logs the failed ack) with
 * SPI 17, which the wire checks refuse (SPIs 0..255 are reserved).
 */
static int
inject_rekey(struct px *p, const char *name)
{
	Meshwan__V1__ControllerMessage pb = MESHWAN__V1__CONTROLLER_MESSAGE__INIT;
	Meshwan__V1__RekeyOrder o = MESHWAN__V1__REKEY_ORDER__INIT;
	const struct msg_tunnel *t;
	uint8_t *out;
	size_t n;
	int rc = -1;

	if (!p->have || p->cur.n_tunnels == 0) {
		printf("inject %s: no intent with a tunnel relayed yet\n", name);
		return -1;
	}
	t = &p->cur.tunnels[0];
	o.tunnel_id = t->id;
	o.epoch = t->sa_in.sa_epoch != 0 ? t->sa_in.sa_epoch : 1;
	o.step = MESHWAN__V1__REKEY_STEP__REKEY_STEP_INSTALL_INBOUND;
	o.reason = MESHWAN__V1__REKEY_REASON__REKEY_REASON_OPERATOR;
	o.spi = 17;
	o.sender_key_epoch = t->sa_in.sender_key_epoch;
	o.receiver_key_epoch = t->sa_in.receiver_key_epoch;
	pb.body_case = MESHWAN__V1__CONTROLLER_MESSAGE__BODY_REKEY;
	pb.rekey = &o;
	n = meshwan__v1__controller_message__get_packed_size(&pb);
	if ((out = malloc(n)) != NULL) {
		meshwan__v1__controller_message__pack(&pb, out);
		printf("inject %s tunnel=%" PRIu64 " epoch=%" PRIu64 "\n", name,
		    o.tunnel_id, o.epoch);
		rc = send_edge(p, name, 0, out, n);
		free(out);
	}
	if (rc == -1)
		printf("inject %s: failed\n", name);
	return rc;
}

static int
prefix_set(struct msg_prefix *x, const char *s)
{
	return msg_prefix_parse(s, true, x);
}

/* A second tunnel like tunnels[0], to peer site 9999, without SAs. */
static int
add_ghost(struct msg_intent *in, const char *inner, const char *remote,
    const char *allowed)
{
	struct msg_tunnel *nt, *g;
	uint64_t id = 0;

	for (size_t i = 0; i < in->n_tunnels; i++)
		if (in->tunnels[i].id > id)
			id = in->tunnels[i].id;
	nt = realloc(in->tunnels, (in->n_tunnels + 1) * sizeof(*nt));
	if (nt == NULL)
		return -1;
	in->tunnels = nt;
	g = &nt[in->n_tunnels];
	if (msg_tunnel_copy(g, &nt[0]) == -1)
		return -1;
	in->n_tunnels++;
	g->id = id + 1000;
	memset(&g->sa_in, 0, sizeof(g->sa_in));
	memset(&g->sa_out, 0, sizeof(g->sa_out));
	g->peer.site_id = 9999;
	snprintf(g->peer.name, sizeof(g->peer.name), "ghost");
	g->peer.n_keys = 0;
	memset(&g->inner_local6, 0, sizeof(g->inner_local6));
	memset(&g->inner_remote6, 0, sizeof(g->inner_remote6));
	memset(&g->bgp.address6, 0, sizeof(g->bgp.address6));
	if (prefix_set(&g->inner_local, inner) == -1 ||
	    msg_addr_parse(remote, &g->inner_remote) == -1)
		return -1;
	g->bgp.address = g->inner_remote;
	g->peer.n_allowed_prefixes = 0;
	if (allowed != NULL) {
		if (g->peer.allowed_prefixes == NULL &&
		    (g->peer.allowed_prefixes = calloc(1,
		    sizeof(struct msg_prefix))) == NULL)
			return -1;
		if (prefix_set(&g->peer.allowed_prefixes[0], allowed) == -1)
			return -1;
		g->peer.n_allowed_prefixes = 1;
	}
	return 0;
}

/* Overlaps the wire checks let through: valid messages. */
static int
inject_overlap(struct px *p, const char *name)
{
	struct msg_controller_message m;
	struct msg_intent *in = &m.u.snapshot;
	struct msg_tunnel *t;
	char a[INET6_ADDRSTRLEN + 8], b[INET6_ADDRSTRLEN + 8];
	int rc = 0;

	if (next_snapshot(p, &m) == -1)
		return -1;
	t = &in->tunnels[0];
	if (strcmp(name, "lan31") == 0 || strcmp(name, "peer_own_lan") == 0) {
		struct msg_prefix lan;

		if (in->site.n_lan_prefixes == 0 ||
		    in->site.lan_prefixes[0].addr.family != AF_INET ||
		    in->site.lan_prefixes[0].len > 28) {
			rc = -1;
			goto done;
		}
		lan = in->site.lan_prefixes[0];
		if (strcmp(name, "lan31") == 0) {
			/* X.Y.Z.4/31 and .5 inside the LAN */
			lan.addr.bytes[3] |= 4;
			msg_addr_format(&lan.addr, a, sizeof(a));
			lan.addr.bytes[3] |= 1;
			msg_addr_format(&lan.addr, b, sizeof(b));
			snprintf(a + strlen(a), sizeof(a) - strlen(a), "/31");
			if (prefix_set(&t->inner_local, a) == -1 ||
			    msg_addr_parse(b, &t->inner_remote) == -1)
				rc = -1;
			t->bgp.address = t->inner_remote;
		} else {
			struct msg_prefix *np = realloc(t->peer.allowed_prefixes,
			    (t->peer.n_allowed_prefixes + 1) * sizeof(*np));

			if (np == NULL) {
				rc = -1;
				goto done;
			}
			t->peer.allowed_prefixes = np;
			lan.len++;	/* the lower half of the LAN */
			np[t->peer.n_allowed_prefixes++] = lan;
		}
	} else if (strcmp(name, "two_peers") == 0) {
		struct msg_prefix wide;

		if (t->peer.n_allowed_prefixes == 0 ||
		    t->peer.allowed_prefixes[0].len < 8) {
			rc = -1;
			goto done;
		}
		wide = t->peer.allowed_prefixes[0];
		wide.len = 16;
		memset(wide.addr.bytes + 2, 0, sizeof(wide.addr.bytes) - 2);
		msg_prefix_format(&wide, a, sizeof(a));
		rc = add_ghost(in, "100.127.255.0/31", "100.127.255.1", a);
	} else if (strcmp(name, "same31") == 0) {
		msg_prefix_format(&t->inner_local, a, sizeof(a));
		msg_addr_format(&t->inner_remote, b, sizeof(b));
		rc = add_ghost(in, a, b, NULL);
	} else {
		rc = -1;
	}
done:
	if (rc == -1) {
		printf("inject %s: cannot build\n", name);
		msg_controller_message_free(&m);
		return -1;
	}
	return send_msg(p, name, &m);
}

static void
command(struct px *p, char *line)
{
	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, "garbage") == 0) {
		static const uint8_t junk[] = "this is not protobuf \xff\xff\xff";

		(void)send_edge(p, line, 0, junk, sizeof(junk) - 1);
	} else if (strcmp(line, "delta_far") == 0) {
		struct msg_controller_message m;

		memset(&m, 0, sizeof(m));
		if (!p->have) {
			printf("inject delta_far: no intent yet\n");
			return;
		}
		m.kind = MSG_CONTROLLER_DELTA;
		m.u.delta.from_version = p->cur.version + 50;
		m.u.delta.version = p->cur.version + 51;
		(void)send_msg(p, line, &m);
	} else if (strcmp(line, "inner30") == 0 ||
	    strcmp(line, "tunnel0") == 0 || strcmp(line, "prefix33") == 0 ||
	    strcmp(line, "encap9") == 0) {
		(void)inject_wire(p, line);
	} else if (strcmp(line, "rekey_spi17") == 0) {
		(void)inject_rekey(p, line);
	} else if (line[0] != '\0') {
		(void)inject_overlap(p, line);
	}
}

int
main(int argc, char **argv)
{
	struct px p;
	struct rpc_server_opts so;
	struct sigaction sa;
	char line[256];
	size_t have = 0;
	int fd;

	if (argc != 9) {
		fprintf(stderr, "usage: badctl LISTEN CTL_TARGET CTL_CA CERT KEY "
		    "EDGE_CERT EDGE_KEY CMD_FIFO\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("badctl", true);
	memset(&p, 0, sizeof(p));
	p.ctl_target = argv[2];
	p.ctl_ca = argv[3];
	p.edge_cert = argv[6];
	p.edge_key = argv[7];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((fd = open(argv[8], O_RDWR | O_NONBLOCK | O_CLOEXEC)) == -1) {
		perror(argv[8]);
		return 1;
	}
	memset(&so, 0, sizeof(so));
	so.listen = argv[1];
	so.tls.ca_file = argv[3];
	so.tls.cert_file = argv[4];
	so.tls.key_file = argv[5];
	so.limits.max_message = 16u << 20;
	if ((p.srv = rpc_server_new(&so)) == NULL ||
	    rpc_server_add_stream(p.srv, METHOD, RPC_AUTH_PEER, &edge_h,
	    &p) == -1 || rpc_server_start(p.srv) == -1) {
		fprintf(stderr, "badctl: cannot serve %s\n", argv[1]);
		return 1;
	}
	printf("badctl: listening %d\n", rpc_server_port(p.srv, false));
	while (!stop) {
		struct pollfd pf[3];
		int n = 0;

		pf[n++] = (struct pollfd){ rpc_server_fd(p.srv), POLLIN, 0 };
		pf[n++] = (struct pollfd){ fd, POLLIN, 0 };
		if (p.up != NULL)
			pf[n++] = (struct pollfd){ rpc_client_fd(p.up), POLLIN,
			    0 };
		if (poll(pf, (nfds_t)n, 200) == -1 && errno != EINTR)
			break;
		(void)rpc_server_dispatch(p.srv);
		if (p.up != NULL)
			(void)rpc_client_dispatch(p.up);
		if (pf[1].revents & POLLIN) {
			ssize_t r = read(fd, line + have,
			    sizeof(line) - 1 - have);
			char *nl;

			if (r > 0)
				have += (size_t)r;
			line[have] = '\0';
			while ((nl = strchr(line, '\n')) != NULL) {
				*nl = '\0';
				command(&p, line);
				memmove(line, nl + 1, strlen(nl + 1) + 1);
				have = strlen(line);
			}
			if (have == sizeof(line) - 1)
				have = 0;
		}
	}
	rpc_client_free(p.up);
	rpc_server_free(p.srv);
	for (size_t i = 0; i < p.nq; i++)
		free(p.q[i].p);
	if (p.have)
		msg_intent_free(&p.cur);
	close(fd);
	printf("badctl: stopped\n");
	return 0;
}
