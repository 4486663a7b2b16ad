/*
 * model.h — the controller's topology model: sites, WAN links, LAN
 * prefixes, topology policy, crypto profile, tunnel allocations, edge
 * state, tokens, audit entries and SA epochs.
 *
 * These are plain C structs shared by the store (which persists them),
 * the intent compiler topo.c (which reads them) and the REST API (which
 * fills them from JSON).  The validation functions here are pure: they
 * check one object against the explicit limits below and say which field
 * is wrong, so the API can answer {code, message, field} without having
 * to know the rules itself.  Cross-object rules that need the whole model
 * (unique names, prefix overlaps across sites, ASN uniqueness, pool
 * exhaustion) are enforced by the store, which reports them through the
 * same struct model_error.
 */
#ifndef MESHWAN_MODEL_H
#define MESHWAN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits, shared with the wire contract (proto/meshwan/v1/meshwan.proto). */
#define MODEL_NAME_MAX      63     /* site name, [a-z0-9-], starts alnum */
#define MODEL_REGION_MAX    63     /* [a-z0-9-], may be empty */
#define MODEL_LINK_NAME_MAX 32     /* link colour, [a-z0-9_-] */
#define MODEL_ADDR_MAX      45     /* textual IPv4/IPv6 address */
#define MODEL_CIDR_MAX      49     /* textual address + "/128" */
#define MODEL_LINKS_MAX     16     /* WAN links per site */
#define MODEL_PREFIXES_MAX  1024   /* LAN prefixes per site */
#define MODEL_PAIRS_MAX     64     /* allowed colour pairs in a policy */
#define MODEL_TOKEN_NAME_MAX 63    /* API token name, [a-z0-9_-] */
#define MODEL_WHO_MAX       63     /* audit actor */
#define MODEL_WHAT_MAX      127    /* audit action, e.g. "site.create" */
#define MODEL_DETAIL_MAX    8192   /* audit JSON detail, bytes */
#define MODEL_STATUS_MAX    (1u << 20) /* last status blob per edge, bytes */
#define MODEL_HASH_MAX      64     /* convergence hash, bytes */
#define MODEL_VERSION_MAX   64     /* agent software version (= MSG_VERSION_STR_MAX) */
#define MODEL_ACK_REASON_MAX 512   /* failed ack's reason (= MSG_REASON_MAX) */

/*
 * The site ASN range: the private ASNs (RFC 6996) between asn_min and
 * asn_max.  A range from the 2-byte block (64512-65534) to the 4-byte one
 * (4200000000-4294967294) takes the private ASNs of both and skips the
 * public ones between; the default is both blocks whole.
 */
#define MODEL_ASN_MIN_DEFAULT   64512u
#define MODEL_ASN_MAX_DEFAULT   4294967294u
#define MODEL_ASN2_LAST         65534u
#define MODEL_ASN4_FIRST        4200000000u
#define MODEL_VNI_MIN_DEFAULT   1u
#define MODEL_VNI_MAX_DEFAULT   16777215u
#define MODEL_VNI_MAX           16777215u
#define MODEL_POOL_DEFAULT      "100.64.0.0/16"
#define MODEL_REKEY_DEFAULT     3600u
#define MODEL_REPLAY_DEFAULT    1024u
#define MODEL_PORT_DEFAULT      4500u

/*
 * Error classes.  The string forms (model_errcode_str) are the stable
 * codes the REST API returns; never renumber or rename them.
 */
enum model_errcode {
	MODEL_OK = 0,
	MODEL_E_INVALID,        /* "invalid": a field is malformed or out of range */
	MODEL_E_DUPLICATE,      /* "duplicate": a unique name/value already exists */
	MODEL_E_OVERLAP,        /* "overlap": a LAN prefix overlaps another one */
	MODEL_E_NOT_FOUND,      /* "not_found" */
	MODEL_E_EXHAUSTED,      /* "exhausted": tunnel pool, VNI or ASN range full */
	MODEL_E_TOKEN,          /* "token_invalid": unknown, used, expired or wrong site */
	MODEL_E_CONFLICT,       /* "conflict": the change contradicts other state */
	MODEL_E_INTERNAL,       /* "internal": database or memory failure */
	MODEL_E_BUSY,           /* "busy": another writer held the database
				   past the busy timeout; retry later */
};

/*
 * Why something was refused.  field names the offending input field
 * ("name", "prefix", "asn", "links[1].address", "pool", ...), empty when
 * the error is not about one field.  message is for humans, never
 * contains secrets.
 */
struct model_error {
	enum model_errcode code;
	char field[48];
	char message[160];
};

enum model_role {
	MODEL_ROLE_HUB = 1,
	MODEL_ROLE_SPOKE,
	MODEL_ROLE_EDGE,        /* behaves as a spoke in hub-and-spoke */
};

/* Overlay backend the site prefers; ANY lets the edge choose. */
enum model_backend {
	MODEL_BACKEND_ANY = 0,
	MODEL_BACKEND_XFRM,
	MODEL_BACKEND_UESP,
	MODEL_BACKEND_NULL,
};

enum model_topology {
	MODEL_TOPO_FULL_MESH = 1,
	MODEL_TOPO_HUB_SPOKE,   /* spokes to every hub, hubs meshed */
	MODEL_TOPO_REGIONAL,    /* full mesh inside a region, hubs meshed across */
};

/* Which link colours may form a tunnel. */
enum model_pairing {
	MODEL_PAIR_SAME = 1,    /* inet<->inet, mpls<->mpls only (default) */
	MODEL_PAIR_LIST,        /* only the unordered pairs in policy.pairs */
	MODEL_PAIR_ANY,         /* every link of A with every link of B */
};

enum model_encap {
	MODEL_ENCAP_GRE = 1,
	MODEL_ENCAP_VXLAN,
};

enum model_cipher {
	MODEL_CIPHER_AES_GCM_128 = 1,
	MODEL_CIPHER_AES_GCM_256,
};

enum model_api_role {
	MODEL_API_ADMIN = 1,
	MODEL_API_OPERATOR,
	MODEL_API_READONLY,
};

/* SA epoch life cycle per tunnel direction (design.md §4, rekey). */
enum model_epoch_state {
	MODEL_EPOCH_INSTALLED = 1, /* receiver told to install inbound SA */
	MODEL_EPOCH_ACKED,         /* receiver acked the inbound SA */
	MODEL_EPOCH_ACTIVE,        /* sender switched its outbound SA to it */
	MODEL_EPOCH_DRAINING,      /* superseded; inbound kept until drain ends */
};

/* An IPv4 or IPv6 prefix, host bits zero after model_prefix_parse. */
struct model_prefix {
	uint8_t family;         /* 4 or 6 */
	uint8_t len;            /* 0..32 or 0..128 */
	uint8_t addr[16];       /* network order; IPv4 in addr[0..3] */
};

struct model_link {
	char name[MODEL_LINK_NAME_MAX + 1];     /* colour, unique per site */
	char address[MODEL_ADDR_MAX + 1];       /* local outer address */
	char public_address[MODEL_ADDR_MAX + 1]; /* "" = same as address */
	uint16_t public_port;                   /* 0 = 4500 */
};

/*
 * A site.  Links are kept inline (at most MODEL_LINKS_MAX) because the
 * compiler needs them for every pair; LAN prefixes are separate rows
 * (struct model_site_prefix) because they can be many and the compiler
 * never reads them.
 */
struct model_site {
	uint64_t id;                            /* > 0, assigned by the store */
	char name[MODEL_NAME_MAX + 1];
	char region[MODEL_REGION_MAX + 1];
	enum model_role role;
	uint32_t asn;                           /* 0 on create = assign from range */
	enum model_backend backend;
	bool revoked;                           /* revoked sites get no tunnels */
	bool internet_breakout;                 /* hub only: may hold a default
	                                           route (0.0.0.0/0, ::/0) */
	size_t n_links;
	struct model_link links[MODEL_LINKS_MAX]; /* sorted by name by the store */
};

struct model_site_prefix {
	uint64_t site_id;
	struct model_prefix prefix;
};

/* An unordered pair of link colours allowed to form tunnels. */
struct model_colour_pair {
	char a[MODEL_LINK_NAME_MAX + 1];
	char b[MODEL_LINK_NAME_MAX + 1];
};

/* The network-wide topology policy (one per controller). */
struct model_policy {
	enum model_topology topology;
	enum model_pairing pairing;
	size_t n_pairs;                         /* MODEL_PAIR_LIST only */
	struct model_colour_pair pairs[MODEL_PAIRS_MAX];
	struct model_prefix pool;               /* IPv4, len <= 31; a /31 per tunnel */
	enum model_encap encap;
	uint32_t vni_min, vni_max;              /* VXLAN: a VNI per tunnel */
	uint32_t asn_min, asn_max;              /* range for assigned site ASNs:
	                                           the private ones within */
	uint32_t mtu;                           /* inner MTU; 0 = agent computes */
	uint32_t bgp_hold_time;                 /* 0 = FRR default */
	uint32_t bgp_keepalive;
	bool bgp_bfd;
};

struct model_crypto {
	enum model_cipher cipher;
	uint32_t rekey_seconds;                 /* >= 60 */
	uint32_t replay_window;                 /* 32..65536 */
	uint64_t rekey_bytes;                   /* 0 = no limit */
	uint64_t rekey_packets;                 /* 0 = no limit */
};

/*
 * A tunnel allocation: which link of which site joins which, and the
 * resources it holds.  site_a < site_b always; side A owns the even
 * address of the /31 (inner), side B the odd one.  Allocations are stable:
 * id, inner and vni never change while both ends exist.
 */
struct model_tunnel {
	uint64_t id;                            /* > 0, never reused */
	uint64_t site_a;
	char link_a[MODEL_LINK_NAME_MAX + 1];
	uint64_t site_b;
	char link_b[MODEL_LINK_NAME_MAX + 1];
	uint32_t inner;                         /* /31 base, host byte order */
	uint32_t vni;                           /* 0 when the encap is GRE */
};

/* What the controller keeps per edge (one per site). */
/* The last intent version an edge failed to apply (Ack ok = false):
 * in the memory of the controller holding its stream, and in the store
 * (group-committed) for the others.  version 0: none. */
struct model_ack_failure {
	uint64_t version;
	int64_t at;                             /* unix seconds */
	char reason[MODEL_ACK_REASON_MAX + 1];  /* printable ASCII only */
};

struct model_edge_state {
	uint64_t site_id;
	uint64_t intent_version;                /* last version generated, monotonic */
	uint64_t applied_version;               /* last version the edge acked */
	uint8_t conv_hash[MODEL_HASH_MAX];      /* edge's convergence hash */
	size_t conv_hash_len;
	bool connected;
	int64_t connected_at;                   /* unix seconds, 0 = never */
	int64_t status_at;                      /* when status was stored */
	unsigned char *status;                  /* last status blob; owned */
	size_t status_len;
	char software_version[MODEL_VERSION_MAX + 1]; /* last hello's; "" = never */
	struct model_ack_failure failure;       /* last failed ack, stored */
};


struct model_api_token_info {
	char name[MODEL_TOKEN_NAME_MAX + 1];
	enum model_api_role role;
	int64_t created_at;
};

struct model_audit {
	uint64_t id;                            /* increasing */
	int64_t at;                             /* unix seconds */
	char who[MODEL_WHO_MAX + 1];
	char what[MODEL_WHAT_MAX + 1];
	char *detail;                           /* JSON text; owned */
};

/* One SA epoch of one tunnel direction (sender -> receiver). */
struct model_epoch {
	uint64_t tunnel_id;
	uint64_t sender_site;
	uint64_t epoch;
	char recv_address[MODEL_ADDR_MAX + 1];  /* receiver's outer address */
	uint32_t spi;                           /* allocated by the store, >= 256 */
	enum model_epoch_state state;
	int64_t changed_at;
	uint32_t reason;        /* why it was started: the wire's RekeyReason
	                           value (0 = unspecified, e.g. epoch 1) */
	/* X25519 key epochs the SA's key is derived from (proto/README.md,
	 * "SA keys"): both 0 = no key known when it started, else both > 0.
	 * Fixed for the epoch's life: both steps and the intents say them. */
	uint64_t sender_key_epoch;
	uint64_t receiver_key_epoch;
};

/* Stable string of an error code ("invalid", "duplicate", ...). */
const char *model_errcode_str(enum model_errcode code);

/* Fill err (may be NULL) with code, field and a printf-style message; returns -1. */
int model_error_set(struct model_error *err, enum model_errcode code,
    const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Enum <-> string ("hub", "full-mesh", "vxlan", "aes-gcm-256", ...). */
const char *model_role_str(enum model_role r);
int model_role_parse(const char *s, enum model_role *out);
const char *model_backend_str(enum model_backend b);
int model_backend_parse(const char *s, enum model_backend *out);
const char *model_topology_str(enum model_topology t);
int model_topology_parse(const char *s, enum model_topology *out);
const char *model_pairing_str(enum model_pairing p);
int model_pairing_parse(const char *s, enum model_pairing *out);
const char *model_encap_str(enum model_encap e);
int model_encap_parse(const char *s, enum model_encap *out);
const char *model_cipher_str(enum model_cipher c);
int model_cipher_parse(const char *s, enum model_cipher *out);
const char *model_api_role_str(enum model_api_role r);
int model_api_role_parse(const char *s, enum model_api_role *out);
const char *model_epoch_state_str(enum model_epoch_state s);

/*
 * Parse "addr/len" (IPv4 or IPv6).  Host bits must be zero unless
 * allow_host_bits; returns 0 or -1 with err->field set to field.
 */
int model_prefix_parse(const char *s, bool allow_host_bits,
    struct model_prefix *out, const char *field, struct model_error *err);
/* Canonical text form into buf of size >= MODEL_CIDR_MAX + 1. */
void model_prefix_format(const struct model_prefix *p, char *buf, size_t bufsz);
/* True when a and b share at least one address. */
bool model_prefix_overlap(const struct model_prefix *a,
    const struct model_prefix *b);
/* Number of /31 slots in an IPv4 pool (0 if not IPv4 or len > 31). */
uint64_t model_pool_slots(const struct model_prefix *pool);
/*
 * Dual stack: the IPv6 address that pairs with the tunnel address inner
 * (host order) of the IPv4 pool pool4: pool6 plus inner's offset in
 * pool4, so a /31 maps to a /127 (the even address to the even one).
 * 0, or -1 when pool6 is not an IPv6 prefix of at most 95 bits or inner
 * is outside pool4.
 */
int model_inner6(const struct model_prefix *pool4,
    const struct model_prefix *pool6, uint32_t inner, uint8_t out[16]);

/* Format an IPv4 address in host byte order as dotted quad (buf >= 16). */
void model_ipv4_format(uint32_t addr, char *buf, size_t bufsz);
/* True for a valid textual IPv4 or IPv6 address (no prefix). */
bool model_address_valid(const char *s);

/* True when textual addresses a and b are the same address. */
bool model_address_equal(const char *a, const char *b);
/*
 * Why a valid address cannot be a WAN link's (underlay) address, or NULL
 * when it can: unspecified, loopback, link-local, multicast, broadcast or
 * reserved, IPv4-mapped IPv6.  Private and CGNAT (100.64/10) are fine:
 * sites behind NAT use them.
 */
const char *model_underlay_problem(const char *addr);
/*
 * Checks a LAN prefix: 0 or -1 with err naming field when it covers
 * addresses no LAN can route (loopback, link-local, multicast, reserved,
 * unspecified, IPv4-mapped IPv6).  A default route (length 0) passes:
 * whether the site may hold one is the caller's rule (internet_breakout).
 */
int model_lan_prefix_check(const struct model_prefix *p, const char *field,
    struct model_error *err);

/* Name checks: the character sets and lengths given at the limits above. */
bool model_site_name_valid(const char *s);
bool model_region_valid(const char *s);
bool model_link_name_valid(const char *s);
bool model_token_name_valid(const char *s);
/* Private ASN: 64512..65534 or 4200000000..4294967294. */
bool model_asn_private(uint32_t asn);

/* Defaults for a new controller. */
void model_policy_default(struct model_policy *p);
void model_crypto_default(struct model_crypto *c);

/*
 * Check one object in isolation; 0 or -1 with err naming the field.
 * model_site_validate accepts asn == 0 (meaning "assign") and checks that
 * link names are unique within the site.
 */
int model_link_validate(const struct model_link *l, struct model_error *err);
int model_site_validate(const struct model_site *s, struct model_error *err);
int model_policy_validate(const struct model_policy *p, struct model_error *err);
int model_crypto_validate(const struct model_crypto *c, struct model_error *err);

/* Sort a site's links by name (the canonical order). */
void model_site_sort_links(struct model_site *s);
/* Index of link name in s, or -1. */
int model_site_find_link(const struct model_site *s, const char *name);

/* True when policy allows a tunnel between link colours a and b. */
bool model_policy_pair_allowed(const struct model_policy *p, const char *a,
    const char *b);
/* A link's outer address family, 4 or 6 (0: not an address). */
int model_link_family(const struct model_link *l);
/* True when links a and b may form a tunnel: policy allows their colours
 * and their outer addresses are of one family (an edge refuses a tunnel
 * from an IPv4 link to an IPv6 peer, and with it the whole intent). */
bool model_links_pair_allowed(const struct model_policy *p,
    const struct model_link *a, const struct model_link *b);

void model_edge_state_clear(struct model_edge_state *e); /* frees status */
void model_audit_free_array(struct model_audit *a, size_t n);

#endif
