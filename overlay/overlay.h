/*
 * overlay.h — the one interface through which the edge agent drives tunnels.
 *
 * A backend is a versioned table of operations (struct overlay_ops) found by
 * name in a static registry.  Every operation takes a parameter struct, so a
 * new field never changes a signature: callers zero the struct first, and a
 * zero field always means "not set / the old behaviour".
 *
 * The model fits both data planes of design.md §5:
 *  - a tunnel is one peer link: outer addresses and UDP port (ESP-in-UDP,
 *    RFC 3948), an inner /31, an encapsulation (GRE carrying IP, or VXLAN
 *    carrying Ethernet) and an inner device (TUN/TAP for uesp, a GRE/VXLAN
 *    netdev for xfrm);
 *  - an SA is one direction of one ESP security association bound to a
 *    tunnel (a transport-mode XFRM state with `encap espinudp` for xfrm).
 *    A tunnel holds any number of inbound SAs at once (make-before-break
 *    rekeys drop nothing) and at most one *active* outbound SA, chosen with
 *    sa_switch_out.  Other outbound SAs may be installed but are not used.
 *
 * Fail closed: a tunnel with no usable outbound SA (none installed, none
 * active, or its hard lifetime reached) drops its traffic and counts it as
 * no_sa; nothing is ever sent in clear.
 *
 * Nonces (AES-GCM, RFC 4106 §3.1): the ESP IV is the sequence number, so a
 * (key, salt, sequence number) triple must never be sealed twice.  The
 * rule every caller and backend keeps:
 *  - an outbound SA's (key, salt) is used by at most one SA instance for
 *    its whole life.  Every backend refuses a second sa_add of an outbound
 *    (key, salt) it has seen in this instance (-EEXIST, logged without key
 *    bytes), even after the first SA was deleted or its tunnel re-made; it
 *    remembers a keyed digest of them, never the keys.  An agent runs one
 *    instance per process, so "this instance" is "this process";
 *  - changing only an SA's lifetimes is sa_update, in place: the sequence
 *    counter keeps running.  Re-creating an SA with the same key is
 *    exactly what the rule above refuses;
 *  - across restarts an outbound key is used again only above every
 *    sequence number it may already have used.  uesp guarantees it with a
 *    sequence reservation file (init's seq_file): before it sends beyond a
 *    mark it has written and fsynced a higher one, and a key it finds there
 *    starts above its last mark.  A backend that keeps SAs alive across a
 *    restart of its user (kernel XFRM) keeps the counter itself, and xfrm
 *    takes reservations in the same file for when the kernel's SAs are
 *    gone (a reboot).  Without either, the caller must bring fresh keys.
 *
 * What the receiver can and cannot check: its replay window refuses a
 * number it has seen or one below the window, for the life of one
 * inbound SA instance.  When only the sender restarts, the receiver's
 * window stays, and the sender resumes above its reservation mark, so
 * nothing it sends looks like a replay and no old packet passes.  When
 * the receiver restarts (or re-adds the inbound SA), its new window is
 * empty: packets captured before are accepted again until the sender's
 * fresh traffic moves the window past them.  The receiver cannot tell
 * those from fresh ones, since it keeps no state across the restart; the
 * remedy is new keys for its inbound SAs (a rekey after the restart).
 * What the receiver never sees is a repeated nonce: that rule lives at
 * the sender, and it is the one whose violation breaks AES-GCM.
 *
 * SPIs: an inbound SPI is unique per receiving site (one backend instance)
 * across all tunnels and across live and draining SAs, as the kernel's
 * (destination, SPI) lookup requires.  sa_add of an inbound SA whose SPI
 * another inbound SA of the instance holds answers -EEXIST (logged, naming
 * the tunnel that holds it).  Outbound SPIs are the peers' choice and only
 * unique per tunnel.
 *
 * Inner sources: a tunnel delivers only inner packets whose source address
 * the topology allows from that peer (overlay_tunnel_params.allowed plus
 * the peer's tunnel address); anything else is dropped and counted as
 * `source`, so an authenticated peer cannot inject other sources.
 *
 * Errors: every operation returns 0 or -errno (-EINVAL bad parameters,
 * -ENOENT unknown tunnel/SA, -EEXIST duplicate, -ENOSPC limits, or the
 * kernel's own error), and logs once with context.  Key bytes are never
 * logged, and backends wipe their copy when the SA is deleted; the caller
 * owns (and wipes) the overlay_sa_params it passed.
 *
 * Threads: the operations of one backend instance are called from one
 * thread at a time (the agent's reconcile loop); backends run their data
 * plane on their own threads.
 */
#ifndef MESHWAN_OVERLAY_H
#define MESHWAN_OVERLAY_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bump when overlay_ops changes shape; a backend states what it implements. */
#define OVERLAY_API_VERSION 5

/* Feature bits: the same values as the wire contract's Feature enum. */
#define OVERLAY_F_GRE		0x01u
#define OVERLAY_F_VXLAN		0x02u
#define OVERLAY_F_AES_GCM_128	0x04u
#define OVERLAY_F_AES_GCM_256	0x08u
#define OVERLAY_F_ESN		0x10u
#define OVERLAY_F_NAT_T		0x20u

#define OVERLAY_UDP_PORT	4500	/* RFC 3948 NAT-T port, the default */
#define OVERLAY_VXLAN_PORT	4789	/* RFC 7348 */
#define OVERLAY_MTU_MIN		576
#define OVERLAY_MTU_MAX		9000
#define OVERLAY_VNI_MAX		0xffffffu
#define OVERLAY_SPI_MIN		256	/* 1..255 reserved (RFC 4303 §2.1) */
#define OVERLAY_REPLAY_MIN	32
#define OVERLAY_REPLAY_MAX	65536
#define OVERLAY_REPLAY_DEFAULT	1024
#define OVERLAY_KEY_MAX		32
#define OVERLAY_SALT_LEN	4
#define OVERLAY_ALLOWED_MAX	128	/* allowed source prefixes per tunnel */

/* An IPv4 or IPv6 address; family AF_UNSPEC means "not set". */
struct overlay_addr {
	sa_family_t family;	/* AF_INET, AF_INET6 or AF_UNSPEC */
	uint8_t bytes[16];	/* network order; 4 used for AF_INET */
};

/* An address prefix, e.g. 10.1.0.0/16; host bits must be zero. */
struct overlay_prefix {
	struct overlay_addr addr; /* AF_INET or AF_INET6 */
	uint8_t len;		/* 0..32 or 0..128 */
};

enum overlay_encap {
	OVERLAY_ENCAP_GRE = 1,	/* RFC 2784 GRE (4-byte header) carrying IPv4/IPv6 */
	OVERLAY_ENCAP_VXLAN = 2, /* RFC 7348 VXLAN over UDP 4789 carrying Ethernet */
};

enum overlay_dir {
	OVERLAY_DIR_IN = 1,
	OVERLAY_DIR_OUT = 2,
};

enum overlay_cipher {
	OVERLAY_AES_GCM_128 = 1, /* RFC 4106, 16-byte ICV, key 16 + salt 4 */
	OVERLAY_AES_GCM_256 = 2, /* RFC 4106, 16-byte ICV, key 32 + salt 4 */
};

/* Given to init: options of the backend instance. */
struct overlay_init_params {
	uint16_t udp_port;	/* local ESP-in-UDP port; 0 = OVERLAY_UDP_PORT */
	struct overlay_addr bind; /* local outer address to listen on; unset = any */
	unsigned workers;	/* data-plane threads; 0 = one per online CPU */
	unsigned keepalive_s;	/* NAT keepalive interval on idle tunnels; 0 = 20 */
	/*
	 * Send every datagram on its own even where the kernel could take a
	 * run of them in one segmentation-offload send (same bytes on the
	 * wire either way): for captures on the sending host, which would
	 * otherwise show the unsegmented run, and for paths that mishandle it.
	 */
	bool no_udp_gso;
	/*
	 * Send outer UDP checksums over IPv4 too (uesp).  By default the
	 * checksum is zero over IPv4, as RFC 3948 section 2.1 says it SHOULD
	 * be and as the kernel's own ESP-in-UDP sends it; IPv6 always carries
	 * one (RFC 8200).  The kernel refuses UDP_SEGMENT sends on a socket
	 * without checksums, so over IPv4 no_udp_gso is implied unless this
	 * is set: about twice the CPU per byte sent (overlay/uesp/README.md).
	 */
	bool udp_checksum;
	/*
	 * Sequence reservation file (uesp, xfrm): outbound sequence numbers are
	 * reserved ahead in steps, fsynced to this file, so that after a
	 * restart an SA re-added with the same key starts above anything it
	 * may have sent (see "Nonces" above; format in overlay/uesp/README.md;
	 * the kernel backend's bound in overlay/xfrm/README.md).
	 * The file is locked: one instance per file.  NULL = none, and then
	 * a restart needs fresh outbound keys.  The null backend ignores it.
	 */
	const char *seq_file;
	/*
	 * fini frees the instance but leaves the data plane it built in the
	 * kernel (tagged, see the backend's README) for the next instance to
	 * adopt, so that a restart of the caller interrupts no traffic and
	 * resets no sequence number (xfrm).  A backend whose data plane ends
	 * with its process (uesp, null) ignores it.
	 */
	bool keep_at_fini;
};

struct overlay_tunnel_params {
	uint64_t id;		/* != 0, unique within the instance */
	struct overlay_addr local;  /* outer source; unset = chosen by routing */
	struct overlay_addr remote; /* outer destination, required */
	uint16_t remote_port;	/* 0 = OVERLAY_UDP_PORT */
	struct overlay_addr inner_local; /* this side of the /31 (IPv4) */
	struct overlay_addr inner_peer;	 /* the other side */
	uint8_t inner_prefix_len;	 /* 31 (or 30/32); 0 = 31 */
	enum overlay_encap encap;
	uint32_t vni;		/* VXLAN only: 1..OVERLAY_VNI_MAX */
	uint32_t mtu;		/* inner device MTU: OVERLAY_MTU_MIN..MAX */
	char ifname[IFNAMSIZ];	/* inner device name, NUL-terminated */
	/*
	 * Inner source prefixes the peer may send from (its LAN prefixes, or
	 * for a hub the prefixes it carries), IPv4 and IPv6.  The peer's
	 * tunnel address (inner_peer) and IPv6 link-local sources (fe80::/10,
	 * never forwarded) are always allowed, so an empty list allows only
	 * the peer itself: fail closed.  GRE: the inner IP source is checked.
	 * VXLAN: the IP source of IPv4/IPv6 frames and the sender address of
	 * ARP (one 802.1Q tag allowed); other frames are dropped.  Drops
	 * count as `source`.  Changeable in place with tunnel_update.
	 */
	unsigned nallowed;
	struct overlay_prefix allowed[OVERLAY_ALLOWED_MAX];
	/*
	 * Dual stack: this side's and the peer's IPv6 address of the
	 * tunnel's /127 (AF_UNSPEC in both = no IPv6 address on the device,
	 * as before).  The backend puts inner_local6/127 on the device; the
	 * peer's (inner_peer6) is always an allowed inner source, like
	 * inner_peer.  Changeable in place with tunnel_update (the SAs stay:
	 * dual stack can be added to a running tunnel).
	 */
	struct overlay_addr inner_local6;
	struct overlay_addr inner_peer6;
};

/* Lifetime limits; a zero field is "no limit". */
struct overlay_lifetime {
	uint64_t bytes;
	uint64_t packets;
	uint64_t seconds;
};

struct overlay_sa_params {
	uint64_t tunnel_id;
	enum overlay_dir dir;
	uint32_t spi;		/* >= OVERLAY_SPI_MIN; inbound: unique in the
				 * instance, outbound: unique in the tunnel */
	enum overlay_cipher cipher;
	uint8_t key[OVERLAY_KEY_MAX]; /* 16 or 32 bytes used per cipher */
	uint8_t salt[OVERLAY_SALT_LEN];
	bool esn;		/* extended sequence numbers (RFC 4303 §2.2.1) */
	uint32_t replay_window;	/* inbound: packets, multiple of 32; 0 = default */
	struct overlay_lifetime soft; /* reached: reported, SA keeps working */
	struct overlay_lifetime hard; /* reached: SA stops (fail closed) */
	/*
	 * Outbound: the first packet carries a number above this one (a
	 * backend with a reservation file starts higher still if the file
	 * says so); for a caller that knows how far the key went.  0 = a
	 * fresh key.  Inbound: must be 0.
	 */
	uint64_t seq_start;
};

/* Drops by reason.  A dropped packet is never delivered nor sent. */
struct overlay_drops {
	uint64_t auth;		/* ICV did not verify */
	uint64_t replay;	/* duplicate or older than the window */
	uint64_t unknown_spi;	/* no inbound SA with that SPI */
	uint64_t malformed;	/* too short/long, bad padding, wrong inner header */
	uint64_t no_sa;		/* outbound with no usable SA (fail closed) */
	uint64_t io;		/* send/receive/device errors */
	uint64_t source;	/* inner source not allowed from that peer */
};

struct overlay_tunnel_stats {
	uint64_t tx_packets, tx_bytes; /* inner packets sent, inner bytes */
	uint64_t rx_packets, rx_bytes; /* inner packets delivered */
	uint64_t keepalives_tx, keepalives_rx; /* NAT-T 0xFF keepalives */
	uint64_t non_esp;	/* non-ESP-marker (IKE) datagrams: not ours, dropped */
	struct overlay_drops drops;
	uint32_t spi_out;	/* active outbound SPI, 0 = none */
	unsigned sa_in;		/* installed inbound SAs */
	unsigned sa_out;	/* installed outbound SAs */
	/*
	 * NAT rebinding: the peer's datagrams come from another outer
	 * address or port than remote/remote_port (its NAT mapping moved).
	 * moved_addr/moved_port is the outer source of the newest such
	 * datagram that passed every ESP check (ICV verified, replay window
	 * accepted) *and* carried the highest sequence number its SA has
	 * accepted so far; unauthenticated, replayed or older datagrams never
	 * set it.  moved_rx counts those datagrams.  AF_UNSPEC = none since
	 * the tunnel's remote last changed (tunnel_update clears it).  The
	 * backend only reports; following it (tunnel_update to the new
	 * endpoint) is the caller's decision.  Backends that cannot see it
	 * leave these zero (null).  xfrm learns it from the kernel's
	 * XFRM_MSG_MAPPING, sent only for datagrams that passed the ICV and
	 * replay checks but without their sequence number, so "highest" is
	 * not checked there; moved_rx counts mapping events
	 * (overlay/xfrm/README.md, "Events").
	 */
	struct overlay_addr moved_addr;
	uint16_t moved_port;
	uint64_t moved_rx;
};

/* An installed SA, by its tunnel, SPI and direction (sa_del_batch). */
struct overlay_sa_ref {
	uint64_t tunnel_id;
	uint32_t spi;
	enum overlay_dir dir;
};

struct overlay_sa_stats {
	uint32_t spi;
	enum overlay_dir dir;
	bool active;		/* outbound: the one in use */
	bool soft_expired;	/* soft lifetime reached: time to rekey */
	bool hard_expired;	/* hard lifetime reached: no longer used */
	uint64_t packets, bytes; /* processed with success (payload bytes) */
	uint64_t seq;		/* out: last sent; in: highest accepted */
	uint64_t age_s;		/* seconds since the SA was added */
	uint64_t auth, replay, malformed; /* inbound drops on this SA */
};

struct overlay_ops {
	unsigned version;	/* OVERLAY_API_VERSION the backend implements */
	const char *name;
	uint32_t features;	/* OVERLAY_F_* */

	/* Start an instance; *ctx is passed to every other operation. */
	int (*init)(const struct overlay_init_params *p, void **ctx);
	/* Remove every tunnel and SA (keys wiped) and free ctx; NULL ok. */
	void (*fini)(void *ctx);

	int (*tunnel_add)(void *ctx, const struct overlay_tunnel_params *p);
	/*
	 * Change a tunnel in place (remote address/port after NAT rebinding,
	 * MTU); SAs and counters stay.  The device name, local address,
	 * encapsulation, VNI and inner addresses cannot change in place:
	 * -EINVAL (delete and add).  Called with unchanged parameters it
	 * announces the device's addresses again (uesp), for routing daemons
	 * that missed the first announcement.
	 */
	int (*tunnel_update)(void *ctx, const struct overlay_tunnel_params *p);
	/* Deletes the tunnel, its device and all its SAs. */
	int (*tunnel_del)(void *ctx, uint64_t tunnel_id);

	int (*sa_add)(void *ctx, const struct overlay_sa_params *p);
	/* Deleting the active outbound SA leaves the tunnel failing closed. */
	int (*sa_del)(void *ctx, uint64_t tunnel_id, uint32_t spi,
	    enum overlay_dir dir);
	/*
	 * Make the installed outbound SA `spi` the one used from the next
	 * packet on: no packet is sent with a half-switched state.
	 */
	int (*sa_switch_out)(void *ctx, uint64_t tunnel_id, uint32_t spi);

	int (*tunnel_stats)(void *ctx, uint64_t tunnel_id,
	    struct overlay_tunnel_stats *out);
	int (*sa_stats)(void *ctx, uint64_t tunnel_id, uint32_t spi,
	    enum overlay_dir dir, struct overlay_sa_stats *out);
	/*
	 * Drops no tunnel can be charged with (a datagram from an unknown
	 * peer, or one too short to carry an SPI before its tunnel is known).
	 */
	int (*global_stats)(void *ctx, struct overlay_drops *out);
	/*
	 * Since version 2.  Change an installed SA's lifetimes in place: its
	 * counters and sequence number keep running.  Everything else in p
	 * (cipher, key, salt, ESN, replay window) must be what the SA has:
	 * -EINVAL otherwise (such a change is a new SA with a new key).
	 * Lifetimes already passed mark the SA expired at once; raised ones
	 * clear the mark.
	 */
	int (*sa_update)(void *ctx, const struct overlay_sa_params *p);
	/*
	 * Since version 3; NULL = not supported (null).  A file
	 * descriptor (owned by the backend, valid until fini) that becomes
	 * readable when a tunnel notes a new moved peer endpoint
	 * (overlay_tunnel_stats.moved_*), so the caller can follow at once
	 * instead of waiting for its next look at the statistics.  The
	 * caller reads it (8 bytes, non-blocking) to rearm it.  It fires
	 * once per new endpoint, not per packet.
	 */
	int (*moved_fd)(void *ctx);
	/*
	 * Since version 4; NULL = not supported (uesp, null): callers use
	 * overlay_sa_add_batch, which falls back to one sa_add per SA.
	 * Adds the n SAs of p with the outcome of n sa_add calls in that
	 * order: each SA is checked (against the instance and the SAs before
	 * it in the batch: a second use of an inbound SPI or an outbound key
	 * is -EEXIST), installed or refused on its own, logged on its own
	 * (with the kernel's extended-ack text), and results[i] is what
	 * sa_add would have answered for p[i].  Per SA, not all or nothing:
	 * an SA that fails changes nothing for the others, which stay
	 * installed; a caller that wants all or nothing removes those (the
	 * agent's reconciler does, through its journal).  Returns 0 when
	 * every SA was installed, else the first failing SA's error.  For
	 * the speed: xfrm sends up to 64 SAs per netlink system call and
	 * matches the kernel's acks by sequence number
	 * (overlay/xfrm/README.md, "Install rate").
	 */
	int (*sa_add_batch)(void *ctx, const struct overlay_sa_params *p,
	    size_t n, int *results);
	/*
	 * Since version 5; NULL = not supported (uesp, null): callers use
	 * overlay_sa_del_batch, which falls back to one sa_del per SA.
	 * Deletes the n SAs of refs with the outcome of n sa_del calls in
	 * that order: results[i] is what sa_del would have answered for
	 * refs[i] (an SA named twice is -ENOENT the second time); an SA that
	 * fails stays installed, the others go.  Returns 0 when every SA
	 * went, else the first failing SA's error.  xfrm sends up to 64
	 * deletes per netlink system call (overlay/xfrm/README.md, "Install
	 * rate").
	 */
	int (*sa_del_batch)(void *ctx, const struct overlay_sa_ref *refs,
	    size_t n, int *results);
};

/*
 * sa_add_batch of backend o where it has one (version >= 4, not NULL),
 * else n sa_add calls in order: the same results either way.
 */
int overlay_sa_add_batch(const struct overlay_ops *o, void *ctx,
    const struct overlay_sa_params *p, size_t n, int *results);

/*
 * sa_del_batch of backend o where it has one (version >= 5, not NULL),
 * else n sa_del calls in order: the same results either way.
 */
int overlay_sa_del_batch(const struct overlay_ops *o, void *ctx,
    const struct overlay_sa_ref *refs, size_t n, int *results);

/* The registry: NULL if no backend has that name. */
const struct overlay_ops *overlay_find(const char *name);
/* Names of the known backends, for --help texts; NULL-terminated. */
const char *const *overlay_names(void);

/* Text helpers shared by backends and tools. */
const char *overlay_encap_str(enum overlay_encap e);
const char *overlay_dir_str(enum overlay_dir d);
const char *overlay_cipher_str(enum overlay_cipher c);
/* Key length in bytes of a cipher, 0 if unknown. */
size_t overlay_cipher_keylen(enum overlay_cipher c);
/* "192.0.2.1" / "2001:db8::1" into a; 0 or -1. */
int overlay_addr_parse(const char *s, struct overlay_addr *a);
/* Text form into buf (INET6_ADDRSTRLEN is enough); returns buf. */
const char *overlay_addr_str(const struct overlay_addr *a, char *buf,
    size_t len);
bool overlay_addr_eq(const struct overlay_addr *a, const struct overlay_addr *b);
/* "10.1.0.0/16" / "2001:db8::/48" into p (host bits must be 0); 0 or -1. */
int overlay_prefix_parse(const char *s, struct overlay_prefix *p);
/* Text form "ADDR/LEN" into buf (64 bytes is enough); returns buf. */
const char *overlay_prefix_str(const struct overlay_prefix *p, char *buf,
    size_t len);
/*
 * Check a parameter struct against the limits above (no backend state);
 * 0 or -EINVAL, logging which field was wrong.
 */
int overlay_tunnel_params_check(const struct overlay_tunnel_params *p);
int overlay_sa_params_check(const struct overlay_sa_params *p);

/*
 * Whether going from a to b changes what tunnel_update cannot change in
 * place (device name, local address, encapsulation, VNI, inner
 * addresses): such a change is a delete and an add.  Every backend's
 * tunnel_update answers -EINVAL exactly when this is true.
 */
bool overlay_tunnel_needs_remake(const struct overlay_tunnel_params *a,
    const struct overlay_tunnel_params *b);

/*
 * Outbound keys seen by one backend instance (see "Nonces" above): keyed
 * digests (HMAC-SHA256 under a random key made in overlay_keys_new,
 * truncated to 128 bits) of cipher, key and salt, never the keys.  The
 * newest OVERLAY_KEYS_MAX are kept (16 bytes each in a ring, plus a hash
 * index of 4 bytes per slot at most half full: at most 6 MiB), and a
 * check costs the same however many are kept.  A key older than that is
 * no longer refused by the set, which is why uesp also has its
 * reservation file.  A set belongs to one instance and is used from one
 * thread at a time (it keeps one HMAC context for all its digests).
 */
#define OVERLAY_KEYS_MAX	(1u << 18)
#define OVERLAY_KEY_DIGEST_LEN	16
struct overlay_keys;
struct overlay_keys *overlay_keys_new(void);	/* NULL on failure */
void overlay_keys_free(struct overlay_keys *k);	/* wipes; NULL ok */
/* The digest of p's cipher, key and salt under k's key. */
void overlay_keys_digest(const struct overlay_keys *k,
    const struct overlay_sa_params *p, uint8_t out[OVERLAY_KEY_DIGEST_LEN]);
/* -EEXIST (logged, no key bytes) if p's key was recorded, else 0. */
int overlay_keys_check(const struct overlay_keys *k,
    const struct overlay_sa_params *p);
/* Record p's key: 0 or -ENOMEM. */
int overlay_keys_add(struct overlay_keys *k, const struct overlay_sa_params *p);
/*
 * The same two with a digest made once by overlay_keys_digest, for a
 * caller that needs it more than once per SA (p only names the SA in
 * the log).
 */
int overlay_keys_check_digest(const struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN], const struct overlay_sa_params *p);
int overlay_keys_add_digest(struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN]);
/*
 * Whether a source address (4 or 16 bytes by family) lies in prefix p.
 * For the null backend and tests; uesp matches precomputed masks.
 */
bool overlay_prefix_has(const struct overlay_prefix *p, sa_family_t family,
    const uint8_t *addr);

/* Backends in the registry. */
extern const struct overlay_ops null_ops;
extern const struct overlay_ops uesp_ops;
extern const struct overlay_ops xfrm_ops;

/*
 * The null backend's record of calls, for tests and dry runs.  Each call
 * appends one line such as "sa_add tunnel=7 dir=in spi=4096 cipher=aes-gcm-256"
 * (never key bytes).  null_record returns the lines joined by '\n', valid
 * until the next call on ctx; null_calls the number of recorded calls.
 */
const char *null_record(void *ctx);
unsigned null_calls(void *ctx);

#endif
