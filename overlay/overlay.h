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
#include <stdint.h>
#include <sys/socket.h>

/* Bump when overlay_ops changes shape; a backend states what it implements. */
#define OVERLAY_API_VERSION 1

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

/* An IPv4 or IPv6 address; family AF_UNSPEC means "not set". */
struct overlay_addr {
	sa_family_t family;	/* AF_INET, AF_INET6 or AF_UNSPEC */
	uint8_t bytes[16];	/* network order; 4 used for AF_INET */
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
	uint32_t spi;		/* >= OVERLAY_SPI_MIN; unique per direction in a tunnel */
	enum overlay_cipher cipher;
	uint8_t key[OVERLAY_KEY_MAX]; /* 16 or 32 bytes used per cipher */
	uint8_t salt[OVERLAY_SALT_LEN];
	bool esn;		/* extended sequence numbers (RFC 4303 §2.2.1) */
	uint32_t replay_window;	/* inbound: packets, multiple of 32; 0 = default */
	struct overlay_lifetime soft; /* reached: reported, SA keeps working */
	struct overlay_lifetime hard; /* reached: SA stops (fail closed) */
};

/* Drops by reason.  A dropped packet is never delivered nor sent. */
struct overlay_drops {
	uint64_t auth;		/* ICV did not verify */
	uint64_t replay;	/* duplicate or older than the window */
	uint64_t unknown_spi;	/* no inbound SA with that SPI */
	uint64_t malformed;	/* too short/long, bad padding, wrong inner header */
	uint64_t no_sa;		/* outbound with no usable SA (fail closed) */
	uint64_t io;		/* send/receive/device errors */
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
	 * -EINVAL (delete and add).
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
};

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

/* Backends in the registry. */
extern const struct overlay_ops null_ops;
extern const struct overlay_ops uesp_ops;

/*
 * The null backend's record of calls, for tests and dry runs.  Each call
 * appends one line such as "sa_add tunnel=7 dir=in spi=4096 cipher=aes-gcm-256"
 * (never key bytes).  null_record returns the lines joined by '\n', valid
 * until the next call on ctx; null_calls the number of recorded calls.
 */
const char *null_record(void *ctx);
unsigned null_calls(void *ctx);

#endif
