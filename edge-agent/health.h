/*
 * health.h — per-tunnel health for the edge agent: RTT, loss and jitter
 * measured by the agent's own probes inside each tunnel, and the rule that
 * turns SAs, BFD and probes into one "up".
 *
 * Probes are ICMP echo requests from this side of the tunnel's /31 to the
 * other side, sent on the tunnel's device (one raw ICMP socket per agent,
 * so the peer's kernel answers: no agent code is needed at the far end,
 * and it works the same over the uesp and the kernel data paths).  BFD
 * (FRR's bfdd) tells up/down in well under a second but gives no RTT;
 * the probes give RTT, loss and jitter, and a "down" when BFD is not
 * configured.
 *
 * The numbers, per tunnel, over the last HEALTH_WINDOW probes:
 *   rtt_us        mean RTT of the answered probes;
 *   loss_permille lost / (answered + lost) x 1000, probes still waiting
 *                 (younger than HEALTH_TIMEOUT_MS) not counted;
 *   jitter_us     RFC 3550 §6.4.1 interarrival jitter with the RTT in
 *                 place of the one-way transit time: J += (|D| - J) / 16,
 *                 D the RTT difference of two answers in arrival order.
 * The probe path is "down" after HEALTH_DOWN_AFTER lost probes in a row,
 * "unknown" until a probe was ever answered (a peer that drops ICMP then
 * does not make its tunnel look dead), "up" otherwise.
 *
 * Bounds (what one tunnel or one peer can cost): probes go every
 * HEALTH_INTERVAL_MS per tunnel, and never more than HEALTH_PPS_MAX a
 * second in all (the interval stretches with many tunnels); each is
 * HEALTH_PAYLOAD bytes of ICMP payload.  HEALTH_TUNNELS_MAX tunnels are
 * tracked.  A wake-up reads at most HEALTH_RX_BURST datagrams; a reply
 * counts only when it comes from the tunnel's peer address with this
 * agent's identifier, the sequence number of a probe still waiting, and
 * the payload that probe carried.
 *
 * Threads: none; everything runs on the agent's loop.  Ownership: the
 * struct health owns its socket and table; health_free(NULL) is fine.
 */
#ifndef MESHWAN_EDGE_HEALTH_H
#define MESHWAN_EDGE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <net/if.h>

#include "overlay/overlay.h"

#define HEALTH_INTERVAL_MS	500	/* per tunnel, at most this often */
#define HEALTH_PPS_MAX		200	/* probes a second, all tunnels */
#define HEALTH_TIMEOUT_MS	1000	/* unanswered after this: lost */
#define HEALTH_WINDOW		20	/* probes the numbers cover */
#define HEALTH_DOWN_AFTER	3	/* lost in a row: probe path down */
#define HEALTH_TUNNELS_MAX	4096
#define HEALTH_RX_BURST		64	/* datagrams read per wake-up */
#define HEALTH_PAYLOAD		24	/* magic, tunnel id, seq, nonce */

/* ------------------------------------------------------------------ */
/* The arithmetic, pure (tests/unit/test_edge_health.c).               */

enum health_probe_state {
	HEALTH_PROBE_UNKNOWN = 0,	/* never answered */
	HEALTH_PROBE_UP,
	HEALTH_PROBE_DOWN,		/* HEALTH_DOWN_AFTER lost in a row */
};

struct health_slot {
	uint64_t sent_us;		/* monotonic */
	uint32_t rtt_us;
	uint32_t nonce;			/* random, echoed in the payload */
	uint16_t seq;
	uint8_t state;			/* HEALTH_SLOT_* in health.c */
};

/* One tunnel's probes: a ring of the last HEALTH_WINDOW. */
struct health_track {
	struct health_slot slot[HEALTH_WINDOW];
	uint32_t jitter16;		/* jitter x 16 (RFC 3550 A.8) */
	uint32_t last_rtt_us;
	unsigned lost_in_row;
	bool have_last;
	bool ever_answered;
};

struct health_result {
	enum health_probe_state probe;
	uint32_t rtt_us;		/* 0 when nothing answered */
	uint32_t loss_permille;		/* 0..1000 */
	uint32_t jitter_us;
	unsigned answered, lost, waiting;	/* in the window */
};

/* Probe seq carrying nonce was sent at now_us (its slot's older probe,
 * still waiting, counts as lost first). */
void health_track_sent(struct health_track *t, uint16_t seq, uint32_t nonce,
    uint64_t now_us);
/* The answer to seq with nonce arrived at at_us: 0 when counted, -1 when
 * no such probe is waiting (unknown, answered already, counted lost, or
 * the wrong nonce). */
int health_track_reply(struct health_track *t, uint16_t seq, uint32_t nonce,
    uint64_t at_us);
/* Probes waiting longer than timeout_us by now_us count as lost. */
void health_track_expire(struct health_track *t, uint64_t now_us,
    uint64_t timeout_us);
void health_track_result(const struct health_track *t,
    struct health_result *r);

/* BFD's view of a tunnel, from FRR. */
enum health_bfd {
	HEALTH_BFD_NONE = 0,		/* no BFD session for it (or no FRR) */
	HEALTH_BFD_UP,
	HEALTH_BFD_DOWN,
};

/*
 * The tunnel's one "up" (HealthStatus.up): its SAs are in place
 * (sa_up), BFD does not say down, and the probes do not say down.
 */
bool health_up(bool sa_up, enum health_bfd bfd, const struct health_result *r);

/*
 * An echo reply as read from a raw IPv4 ICMP socket (IP header first):
 * its source, identifier, sequence number and payload.  -1 for anything
 * else (short, not IPv4, fragment, not an echo reply, bad lengths).
 */
struct health_reply {
	uint32_t src;			/* network byte order */
	uint16_t ident, seq;
	const uint8_t *payload;		/* into the packet */
	size_t payload_len;
};
int health_parse_reply(const uint8_t *pkt, size_t len,
    struct health_reply *out);

/* ------------------------------------------------------------------ */
/* The prober.                                                         */

struct health;

/* A tunnel to probe: its device and both ends of its IPv4 /31. */
struct health_tunnel {
	uint64_t tunnel_id;
	char ifname[IFNAMSIZ];
	struct overlay_addr local, peer;
};

/* Opens the raw ICMP socket (needs CAP_NET_RAW).  NULL, logged, when it
 * cannot: the agent then reports health from SAs and BFD alone. */
struct health *health_new(void);
void health_free(struct health *h);

/* The socket to poll for input (POLLIN), -1 when none. */
int health_fd(const struct health *h);

/*
 * The tunnels to probe from now on (n <= HEALTH_TUNNELS_MAX; more are
 * ignored, logged once).  A tunnel kept with the same addresses and
 * device keeps its history; a changed or new one starts afresh.
 */
void health_set(struct health *h, const struct health_tunnel *t, size_t n);

/* Milliseconds until health_run() has something to do (-1: nothing). */
int health_timeout_ms(const struct health *h, uint64_t now_ms);

/*
 * Sends the probes that are due, counts the late ones as lost, and reads
 * what arrived (call it when the socket is readable, or after the
 * timeout).  True when a tunnel's probe state changed or its loss went
 * from zero to some or back: worth a status report.
 */
bool health_run(struct health *h, uint64_t now_ms);

/* The numbers of tunnel_id; -1 when it is not probed (zeroed *r). */
int health_get(const struct health *h, uint64_t tunnel_id,
    struct health_result *r);

#endif
