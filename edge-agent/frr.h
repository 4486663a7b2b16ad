/*
 * frr.h — the edge agent's FRR driver: the only code that talks to FRR.
 *
 * The agent describes the BGP state it wants for its site in plain C
 * (struct frr_desired: ASN, router-id, LAN prefixes, one eBGP neighbour
 * per tunnel with the prefixes that neighbour may announce).  The driver
 * renders that as FRR configuration, reads back what FRR holds
 * (`show running-config` of bgpd and bfdd), and applies only the
 * difference through vtysh, run with fork/exec (no shell), a timeout and a
 * bound on its output.  It reads state back as JSON (`show bgp summary
 * json`, the BGP table, zebra's routes, BFD peers, filtered routes) into
 * plain structs.  FRR syntax and FRR's JSON never leave frr.c.
 *
 * Policy, not `no bgp ebgp-requires-policy`: every neighbour gets an
 * inbound prefix-list built from the controller's topology (a spoke may
 * announce only its own LAN prefixes, a hub what it carries) and the
 * site's outbound list (its own prefixes, plus what it carries).  A list
 * with no entry is rendered as `deny any`, so a peer the controller gave
 * no prefixes announces nothing (fail closed).  Inbound soft
 * reconfiguration is on, so FRR keeps what a neighbour sent and filtered,
 * and frr_read_filtered() can report hijack attempts; `maximum-prefix N
 * force` bounds what one neighbour can make FRR store (see
 * frr_max_prefixes()).
 *
 * What the driver owns in FRR: the one `router bgp` instance, the prefix
 * lists named MW-*, and the BFD profile "meshwan".  Anything else in FRR
 * (interfaces, static routes, other lists) is left alone.
 *
 * Ownership: frr_desired and every result struct own their arrays; the
 * matching *_free() releases them and zeroes the struct (NULL is fine).
 */
#ifndef MESHWAN_EDGE_FRR_H
#define MESHWAN_EDGE_FRR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

/* Limits; a desired state beyond them is refused by frr_validate(). */
#define FRR_NEIGHBORS_MAX	1024	/* eBGP neighbours (tunnels) */
#define FRR_PREFIXES_MAX	4096	/* announce, carry, one allowed list */
#define FRR_TUNNEL_ID_MAX	UINT32_MAX /* names prefix-lists MW-IN-<id>-V4 */
#define FRR_STATUS_MAX		65536	/* entries parsed from one JSON reply */
#define FRR_OUTPUT_MAX		((size_t)32 << 20) /* bytes read from vtysh */
#define FRR_TIMEOUT_MS		15000	/* default per vtysh run */
#define FRR_PATH_MAX		256
#define FRR_NAME_MAX		64

/* Defaults frr_desired_from_intent() fills in. */
#define FRR_DEFAULT_CONNECT_S	5	/* FRR's own default is 120 s */
#define FRR_DEFAULT_BFD_MS	200	/* tx = rx interval */
#define FRR_DEFAULT_BFD_MULT	3	/* -> 600 ms detection */
#define FRR_MAXPREFIX_SLACK	256	/* over the allowed list, per family */

/* Where FRR is: which vtysh, and which instance. */
struct frr_target {
	char vtysh[FRR_PATH_MAX];	/* "" = /usr/bin/vtysh */
	char instance[FRR_NAME_MAX];	/* vtysh -N NAME; "" = none */
	char vty_socket[FRR_PATH_MAX];	/* vtysh --vty_socket DIR; "" = none */
	unsigned timeout_ms;		/* 0 = FRR_TIMEOUT_MS */
	size_t max_output;		/* 0 = FRR_OUTPUT_MAX */
};

struct frr_neighbor {
	struct msg_addr address;	/* the peer's tunnel address */
	/* The peer's tunnel IPv6 address (family 0 = none): a second
	 * session, same settings, carries ipv6 unicast instead of address,
	 * so IPv6 routes get a real IPv6 next hop. */
	struct msg_addr address6;
	uint32_t remote_asn;		/* private ASN */
	uint64_t tunnel_id;		/* 1..FRR_TUNNEL_ID_MAX, unique */
	bool bfd;
	bool route_server_client;
	uint32_t keepalive;		/* 0 = FRR default, else 1..21845 */
	uint32_t hold_time;		/* 0 = FRR default, else 3..65535 */
	uint32_t connect_retry;		/* 0 = FRR default, else 1..65535 */
	/* What this neighbour may announce to us (exact prefixes). */
	struct msg_prefix *allowed;	/* owned */
	size_t n_allowed;
};

struct frr_desired {
	uint32_t asn;			/* private ASN */
	struct msg_addr router_id;	/* IPv4, not 0.0.0.0 */
	struct msg_prefix *announce;	/* the site's own LAN prefixes; owned */
	size_t n_announce;
	struct msg_prefix *carry;	/* others' prefixes a hub passes on */
	size_t n_carry;
	struct frr_neighbor *neighbors;	/* owned; unique addresses */
	size_t n_neighbors;
	uint32_t bfd_interval_ms;	/* 10..60000 (used when any bfd) */
	uint32_t bfd_multiplier;	/* 2..255 */
};

/* Release what d owns and zero it; NULL is fine. */
void frr_desired_free(struct frr_desired *d);

/*
 * Check d against the limits above: ASN private, router-id IPv4, prefixes
 * are networks and unique per list, neighbours unique by address and
 * tunnel id, timers in range (hold >= 3 * keepalive when both set).
 * 0, or -1 with err holding "neighbors[2].hold_time: ..." .
 */
int frr_validate(const struct frr_desired *d, char *err, size_t errlen);

/*
 * An override of the inbound allowed prefixes of one peer site (tests;
 * the intent carries the controller's list in Peer.allowed_prefixes).
 */
struct frr_peer_prefixes {
	uint64_t site_id;		/* msg_tunnel.peer.site_id */
	const struct msg_prefix *prefixes;
	size_t n_prefixes;
};

/*
 * Build *out from an intent: ASN and LAN prefixes from in->site, the
 * router-id from the site id (stable while tunnels come and go; ids are
 * unique per controller), one neighbour per tunnel from its msg_bgp_neighbor
 * (tunnel id, timers, BFD, route-server-client), connect retry and BFD
 * timing from the FRR_DEFAULT_* values.  Each neighbour's allowed list is
 * its tunnel's peer.allowed_prefixes (sorted, repeats dropped), or the
 * entry of `peers` (may be NULL) whose site_id is the tunnel's peer when
 * there is one; an empty list lets it announce nothing.  A hub (site.role HUB)
 * carries the union of its neighbours' allowed prefixes; other roles carry
 * nothing.  The result passes frr_validate().  0, or -1 with err set and
 * *out zeroed.
 */
int frr_desired_from_intent(const struct msg_intent *in,
    const struct frr_peer_prefixes *peers, size_t n_peers,
    struct frr_desired *out, char *err, size_t errlen);

/*
 * The limit rendered as `maximum-prefix N force` for a neighbour in one
 * family: its allowed prefixes of that family plus FRR_MAXPREFIX_SLACK.
 * A neighbour that sends more (accepted or filtered) is cut off by FRR.
 */
uint32_t frr_max_prefixes(const struct frr_neighbor *n, int family);

/*
 * The configuration d stands for, as FRR prints it in `show
 * running-config` (prefix lists, BFD profile, router bgp), into a
 * malloc'd NUL-terminated *text.  For reading and golden tests.
 * 0, or -1 with err set (d invalid, or out of memory).
 */
int frr_render(const struct frr_desired *d, char **text, char *err,
    size_t errlen);

/* vtysh commands that turn the running configuration into the desired one. */
struct frr_script {
	char **cmds;		/* each one vtysh -c argument, owned */
	size_t n_cmds;
	/* The script runs as one vtysh call per segment (each starts with
	 * `configure terminal`), so that no call grows past the kernel's
	 * argument limits: segments[i] is the index of segment i's first
	 * command. */
	size_t *segments;
	size_t n_segments;
	size_t n_changes;	/* config lines added or removed (0 = in sync) */
};

void frr_script_free(struct frr_script *s);

/*
 * The difference between d and the running configuration (the text of
 * `show running-config` from bgpd, and from bfdd or NULL when bfdd is not
 * there), as vtysh commands: removals first (a neighbour whose ASN changed
 * or that is gone is removed whole; an instance with another ASN is
 * removed whole), then additions, then `clear bgp ... soft` for the
 * neighbours whose filters changed.  Only the parts the driver owns are
 * compared.  Pure: no FRR needed.  An empty script (n_changes 0) means FRR
 * already holds d.  0, or -1 with err set.
 */
int frr_diff(const struct frr_desired *d, const char *running_bgpd,
    const char *running_bfdd, struct frr_script *out, char *err,
    size_t errlen);

/* What frr_apply() did. */
struct frr_apply_result {
	size_t n_changes;	/* config lines added or removed */
	size_t n_cmds;		/* vtysh commands run */
};

/*
 * Make FRR hold d: validate d, read the running configuration, compute the
 * difference and run it.  Nothing is run when d is invalid or when FRR
 * cannot be read (bgpd not running, bfdd not running while a neighbour
 * wants BFD).  vtysh stops at the first command FRR refuses; the error
 * then names it, and the next frr_apply() starts again from what FRR
 * holds.  0, or -1 with err holding the reason.
 */
int frr_apply(const struct frr_target *t, const struct frr_desired *d,
    struct frr_apply_result *res, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* State read back */

struct frr_neighbor_status {
	struct msg_addr address;
	uint32_t remote_asn;
	enum msg_bgp_state state;
	uint64_t uptime_s;		/* time Established; 0 otherwise */
	uint32_t prefixes_received;	/* accepted, all families */
	uint32_t prefixes_sent;
	uint64_t tunnel_id;		/* from the description; 0 = not ours */
};

struct frr_bgp_status {
	uint32_t local_asn;		/* 0 when no instance */
	struct msg_addr router_id;
	struct frr_neighbor_status *neighbors;	/* owned */
	size_t n_neighbors;
};

struct frr_route {
	struct msg_prefix prefix;
	struct msg_addr nexthop;	/* family 0: none (connected, local) */
	struct msg_addr peer;		/* BGP table: learnt from; 0 = local */
	char protocol[16];		/* zebra: "bgp", "connected", ... */
	char ifname[FRR_NAME_MAX];	/* zebra: outgoing interface */
	bool best;			/* BGP: best path; zebra: selected */
	bool installed;			/* zebra: in the kernel (FIB) */
};

struct frr_routes {
	struct frr_route *routes;	/* owned */
	size_t n_routes;
};

struct frr_bfd_peer {
	struct msg_addr peer;
	struct msg_addr local;		/* family 0 when FRR gives none */
	char ifname[FRR_NAME_MAX];
	bool up;
	uint64_t uptime_s;		/* up: time up; down: time down */
	uint32_t rx_ms, tx_ms;		/* negotiated local intervals */
	uint32_t multiplier;
	char diagnostic[64];
};

struct frr_bfd_status {
	struct frr_bfd_peer *peers;	/* owned */
	size_t n_peers;
};

struct frr_prefix_list {
	struct msg_prefix *prefixes;	/* owned */
	size_t n_prefixes;
};

void frr_bgp_status_free(struct frr_bgp_status *s);
void frr_routes_free(struct frr_routes *r);
void frr_bfd_status_free(struct frr_bfd_status *s);
void frr_prefix_list_free(struct frr_prefix_list *p);

/*
 * Parsers of FRR 8.4's JSON, pure so that captured and malformed output
 * can be tested.  Each takes len bytes (no NUL needed), refuses output
 * that is not JSON, lacks a required field, has a field of the wrong type
 * or more than FRR_STATUS_MAX entries, and returns 0, or -1 with err
 * saying what and where; *out is then zeroed.
 */
/* `show bgp summary json` (all families; one entry per neighbour). */
int frr_parse_summary(const char *json, size_t len, struct frr_bgp_status *out,
    char *err, size_t errlen);
/* `show bgp ipv4|ipv6 unicast json`: every path of every prefix. */
int frr_parse_bgp_routes(const char *json, size_t len, struct frr_routes *out,
    char *err, size_t errlen);
/* `show ip route json` / `show ipv6 route json`: one entry per route. */
int frr_parse_rib(const char *json, size_t len, struct frr_routes *out,
    char *err, size_t errlen);
/* `show bfd peers json`. */
int frr_parse_bfd(const char *json, size_t len, struct frr_bfd_status *out,
    char *err, size_t errlen);
/* `show bgp ... neighbors A filtered-routes json`: the prefixes. */
int frr_parse_filtered(const char *json, size_t len,
    struct frr_prefix_list *out, char *err, size_t errlen);

/* The same, run through vtysh against t.  family: AF_INET or AF_INET6. */
int frr_read_summary(const struct frr_target *t, struct frr_bgp_status *out,
    char *err, size_t errlen);
int frr_read_bgp_routes(const struct frr_target *t, int family,
    struct frr_routes *out, char *err, size_t errlen);
int frr_read_rib(const struct frr_target *t, int family,
    struct frr_routes *out, char *err, size_t errlen);
int frr_read_bfd(const struct frr_target *t, struct frr_bfd_status *out,
    char *err, size_t errlen);
/* What neighbour `neighbor` sent in `family` and its inbound list dropped. */
int frr_read_filtered(const struct frr_target *t,
    const struct msg_addr *neighbor, int family, struct frr_prefix_list *out,
    char *err, size_t errlen);

/*
 * The readers above cost one vtysh run each, and a vtysh start costs far
 * more than the command (seconds on a CPU-starved host).  These read
 * several things in one run:
 *
 * frr_read_state: the BGP summary and the BFD peers.  When the one run
 * fails (bfdd not running makes vtysh exit 1) each is read on its own,
 * so the summary is still read; *have_bfd says whether bfd was (it may
 * be when the summary was not).  0 when the summary was read, else -1
 * with err and *bgp zeroed.
 *
 * frr_read_filtered_many: frr_read_filtered() for n (at most
 * FRR_FILTERED_READS_MAX) neighbours, outs[i] for neighbors[i] in
 * families[i]; ok[i] says whether it was read.  When the one run fails
 * each is read on its own; 0 when all were read, else -1 with err naming
 * the last failure (each outs[i] that failed is empty, ok[i] false).
 */
#define FRR_FILTERED_READS_MAX	64
int frr_read_state(const struct frr_target *t, struct frr_bgp_status *bgp,
    struct frr_bfd_status *bfd, bool *have_bfd, char *err, size_t errlen);
int frr_read_filtered_many(const struct frr_target *t,
    const struct msg_addr *neighbors, const int *families, size_t n,
    struct frr_prefix_list *outs, bool *ok, char *err, size_t errlen);

/*
 * Run vtysh against t with the given -c commands (and `-d daemon` when
 * daemon is not NULL), no shell.  *out gets its standard output
 * (malloc'd, NUL-terminated, at most t->max_output bytes), *outlen its
 * length.  Fails when vtysh cannot start, runs past the timeout (it is
 * killed), prints more than the bound, or exits non-zero; err then holds
 * the reason with vtysh's own message.  0 or -1 (*out NULL).
 */
int frr_vtysh(const struct frr_target *t, const char *daemon,
    const char *const *cmds, size_t n_cmds, char **out, size_t *outlen,
    char *err, size_t errlen);

/*
 * Zebra's view of the interfaces (`show interface json`, asked of zebra
 * only): per device its name and the addresses zebra holds on it.  The
 * agent checks with it that zebra learnt each tunnel's /31 and /127
 * (FRR 8.4 can drop an address event that overtakes its link event).
 * More than FRR_STATUS_MAX devices or FRR_IFACE_ADDRS_MAX addresses on
 * one device is refused like any other bad output.
 */
#define FRR_IFACE_ADDRS_MAX	256

struct frr_iface {
	char name[FRR_NAME_MAX];
	struct msg_prefix *addrs;	/* owned; address and its length */
	size_t n_addrs;
};

struct frr_ifaces {
	struct frr_iface *ifs;		/* owned */
	size_t n_ifs;
};

void frr_ifaces_free(struct frr_ifaces *x);
int frr_parse_interfaces(const char *json, size_t len,
    struct frr_ifaces *out, char *err, size_t errlen);
int frr_read_interfaces(const struct frr_target *t, struct frr_ifaces *out,
    char *err, size_t errlen);
/* Zebra holds address a with length len on device name. */
bool frr_iface_has(const struct frr_ifaces *x, const char *name,
    const struct msg_addr *a, unsigned len);

#endif
