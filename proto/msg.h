/*
 * msg.h — the daemons' own C view of the wire contract
 * (proto/meshwan/v1/meshwan.proto).
 *
 * Generated protobuf-c types never leave proto/pbconv.c; the controller and
 * the edge agent build and read these plain structs instead.  A struct that
 * came out of pbconv_decode_*() has passed every limit of the .proto (and
 * the msg_validate_*() checks below), so consumers may rely on the ranges
 * written next to each field.
 *
 * Design:
 *  - Bounded strings are fixed char arrays, always NUL-terminated, sized
 *    limit + 1.  Keys, hashes and signatures are uint8_t arrays (with a
 *    length where the size varies).  DER blobs are malloc'd (struct
 *    msg_blob).
 *  - Repeated fields with a small bound (links, peer keys, SAs, CA chain)
 *    are fixed arrays plus a count; large ones (tunnels, prefixes, status
 *    lists) are malloc'd arrays plus a count.
 *  - Addresses and prefixes are parsed (struct msg_addr / msg_prefix:
 *    family + network-order bytes + length), because the consumers (agent,
 *    overlay, FRR rendering) need them parsed and validated anyway;
 *    msg_addr_parse()/msg_addr_format() convert from and to text for the
 *    controller's REST side.  Formatting is canonical (inet_ntop), so text
 *    that went through a struct always encodes the same way.
 *  - Enums mirror the .proto values one to one.
 *  - Fields that mean "default" when 0 (ports, replay window, ...) keep the
 *    0: the convergence hash is computed over what was sent.  Use the
 *    msg_*_or_default() helpers when acting on them.
 *
 * Ownership: every pointer inside a msg struct is owned by that struct
 * (malloc'd, one allocation per array or blob).  msg_*_free() releases what
 * the struct owns and zeroes it; it does not free the struct itself (they
 * are usually on the stack or embedded), and msg_*_free(NULL) does nothing.
 * A producer that only encodes may point blobs/arrays at memory it owns
 * elsewhere, as long as it then never calls msg_*_free() on that struct.
 */
#ifndef MESHWAN_MSG_H
#define MESHWAN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits, as written in meshwan.proto. */
#define MSG_TOKEN_MAX		128	/* EnrollRequest.token */
#define MSG_DER_MAX		8192	/* one certificate or CSR */
#define MSG_CA_CHAIN_MAX	4	/* EnrollResponse.ca_chain_der entries */
#define MSG_INTENT_CA_MAX	16384	/* Intent.ca_chain_der bytes */
#define MSG_VERSION_STR_MAX	64	/* software_version */
#define MSG_NAME_MAX		63	/* site names [a-z0-9-] */
#define MSG_REGION_MAX		63
#define MSG_LINK_NAME_MAX	32	/* WanLink names [a-z0-9_-] */
#define MSG_CN_MAX		64	/* controller_name */
#define MSG_ERROR_MAX		256	/* error_message, TunnelStatus.error */
#define MSG_REASON_MAX		512	/* Ack.reason */
#define MSG_BACKOFF_REASON_MAX	256
#define MSG_HASH_LEN		32	/* SHA-256 */
#define MSG_KEY_LEN		32	/* X25519 public key */
#define MSG_SIG_MAX		128	/* DER ECDSA signature */
#define MSG_PREFIXES_MAX	1024	/* Site.lan_prefixes */
/* Peer.allowed_prefixes: a spoke's own (<= 1024) or a hub's own plus what
 * it carries for this edge; the controller keeps the first 65536 (its own
 * first) and logs the rest as cut. */
#define MSG_ALLOWED_PREFIXES_MAX	65536
#define MSG_LINKS_MAX		16	/* Site.links */
#define MSG_PEER_KEYS_MAX	4	/* Peer.keys, PeerKeys.keys */
#define MSG_SAS_MAX		8	/* TunnelStatus.sas */
#define MSG_LIST_MAX		65536	/* tunnels, upsert, remove, status lists */
#define MSG_SPI_MIN		256	/* SPIs 1..255 are reserved (RFC 4303) */
#define MSG_VNI_MAX		16777215u
#define MSG_MTU_MIN		576
#define MSG_MTU_MAX		9216
#define MSG_REPLAY_MIN		32
#define MSG_REPLAY_MAX		65536
#define MSG_REKEY_SECONDS_MIN	60
#define MSG_REKEY_SECONDS_MAX	604800
#define MSG_KEEPALIVE_MAX	3600	/* Intent.keepalive_seconds */
#define MSG_GRACE_MIN		60	/* Intent.headless_grace_seconds */
#define MSG_GRACE_MAX		2592000
#define MSG_BACKOFF_MAX		3600
#define MSG_DRAIN_MAX		3600

/* Defaults of fields whose 0 means "default". */
#define MSG_DEFAULT_PORT		4500
#define MSG_DEFAULT_REPLAY_WINDOW	1024
#define MSG_DEFAULT_REKEY_SECONDS	3600
#define MSG_DEFAULT_KEEPALIVE_SECONDS	30
#define MSG_DEFAULT_GRACE_SECONDS	86400

/* Text forms: INET6_ADDRSTRLEN, plus "/128". */
#define MSG_ADDR_STRLEN		46
#define MSG_PREFIX_STRLEN	50

/* ------------------------------------------------------------------ */
/* Addresses */

/* family is 0 (unset), AF_INET or AF_INET6; bytes in network order (IPv4
 * uses the first 4, the rest stay zero so structs compare with memcmp). */
struct msg_addr {
	int family;
	uint8_t bytes[16];
};

struct msg_prefix {
	struct msg_addr addr;
	uint8_t len;		/* 0..32 or 0..128 */
};

/* Parse an IPv4/IPv6 address ("10.0.0.1", "2001:db8::1").  0 or -1. */
int msg_addr_parse(const char *s, struct msg_addr *out);
/* Canonical text into buf (>= MSG_ADDR_STRLEN); "" for family 0.  0/-1. */
int msg_addr_format(const struct msg_addr *a, char *buf, size_t len);
bool msg_addr_equal(const struct msg_addr *a, const struct msg_addr *b);
/*
 * Parse "ADDR/LEN".  With network set the bits after LEN must be zero
 * (a network, as in lan_prefixes); without it any address is accepted (an
 * interface address with its link's length, as in Tunnel.inner_local).
 */
int msg_prefix_parse(const char *s, bool network, struct msg_prefix *out);
/* "ADDR/LEN" into buf (>= MSG_PREFIX_STRLEN).  0 or -1. */
int msg_prefix_format(const struct msg_prefix *p, char *buf, size_t len);

/*
 * A byte string (DER certificates, CSR, CA chains).  The bytes made by
 * msg_blob_set are immutable and reference-counted: msg_blob_share gives
 * another owner of the same bytes, so a peer's certificate repeated in
 * every tunnel of every edge's intent is held once; msg_blob_free drops
 * one reference.  A blob whose data points at borrowed bytes (encode-only
 * requests) must not be freed.  References may be dropped from any thread.
 */
struct msg_blob {
	uint8_t *data;		/* NULL when len is 0; never written through */
	size_t len;
};

/* Replace *b with a copy of data[0..len); 0, or -1 on ENOMEM (b untouched). */
int msg_blob_set(struct msg_blob *b, const void *data, size_t len);
/* Replace *dst with another reference to src's bytes (no copy, cannot
 * fail; src must come from msg_blob_set or msg_blob_share). */
void msg_blob_share(struct msg_blob *dst, const struct msg_blob *src);
void msg_blob_free(struct msg_blob *b);

/* ------------------------------------------------------------------ */
/* Enums (values equal the .proto's) */

enum msg_enroll_error {
	MSG_ENROLL_ERROR_UNSPECIFIED = 0,	/* success */
	MSG_ENROLL_ERROR_TOKEN_UNKNOWN = 1,
	MSG_ENROLL_ERROR_TOKEN_USED = 2,
	MSG_ENROLL_ERROR_TOKEN_EXPIRED = 3,
	MSG_ENROLL_ERROR_CSR_INVALID = 4,
	MSG_ENROLL_ERROR_SITE_REVOKED = 5,
};

enum msg_backend {
	MSG_BACKEND_UNSPECIFIED = 0,
	MSG_BACKEND_XFRM = 1,
	MSG_BACKEND_UESP = 2,
	MSG_BACKEND_NULL = 3,
};

/* Bits of msg_hello.features. */
enum msg_feature {
	MSG_FEATURE_NONE = 0,
	MSG_FEATURE_GRE = 1,
	MSG_FEATURE_VXLAN = 2,
	MSG_FEATURE_AES_GCM_128 = 4,
	MSG_FEATURE_AES_GCM_256 = 8,
	MSG_FEATURE_ESN = 16,
	MSG_FEATURE_NAT_T = 32,
};

enum msg_tunnel_state {
	MSG_TUNNEL_STATE_UNSPECIFIED = 0,
	MSG_TUNNEL_STATE_DOWN = 1,
	MSG_TUNNEL_STATE_KEYING = 2,
	MSG_TUNNEL_STATE_UP = 3,
	MSG_TUNNEL_STATE_FAILED = 4,
};

enum msg_direction {
	MSG_DIRECTION_UNSPECIFIED = 0,
	MSG_DIRECTION_IN = 1,
	MSG_DIRECTION_OUT = 2,
};

enum msg_bgp_state {
	MSG_BGP_STATE_UNSPECIFIED = 0,
	MSG_BGP_STATE_IDLE = 1,
	MSG_BGP_STATE_CONNECT = 2,
	MSG_BGP_STATE_ACTIVE = 3,
	MSG_BGP_STATE_OPENSENT = 4,
	MSG_BGP_STATE_OPENCONFIRM = 5,
	MSG_BGP_STATE_ESTABLISHED = 6,
};

enum msg_encap {
	MSG_ENCAP_UNSPECIFIED = 0,
	MSG_ENCAP_GRE = 1,
	MSG_ENCAP_VXLAN = 2,
};

enum msg_cipher {
	MSG_CIPHER_UNSPECIFIED = 0,
	MSG_CIPHER_AES_GCM_128 = 1,
	MSG_CIPHER_AES_GCM_256 = 2,
};

enum msg_role {
	MSG_ROLE_UNSPECIFIED = 0,
	MSG_ROLE_HUB = 1,
	MSG_ROLE_SPOKE = 2,
	MSG_ROLE_EDGE = 3,
};

enum msg_rekey_reason {
	MSG_REKEY_REASON_UNSPECIFIED = 0,
	MSG_REKEY_REASON_TIME = 1,
	MSG_REKEY_REASON_VOLUME = 2,
	MSG_REKEY_REASON_OPERATOR = 3,
	MSG_REKEY_REASON_PEER_REVOKED = 4,
	MSG_REKEY_REASON_KEY = 5,		/* new X25519 key epoch */
	MSG_REKEY_REASON_LOCAL_ERROR = 6,	/* an edge asked: local error */
};

/* Why an edge asks for a rekey (RekeyRequest.reason; required). */
enum msg_rekey_request_reason {
	MSG_REKEY_REQUEST_REASON_UNSPECIFIED = 0,
	MSG_REKEY_REQUEST_REASON_SOFT_BYTES = 1,
	MSG_REKEY_REQUEST_REASON_SOFT_PACKETS = 2,
	MSG_REKEY_REQUEST_REASON_LOCAL_ERROR = 3,
};

enum msg_rekey_step {
	MSG_REKEY_STEP_UNSPECIFIED = 0,
	MSG_REKEY_STEP_INSTALL_INBOUND = 1,
	MSG_REKEY_STEP_SWITCH_OUTBOUND = 2,
	MSG_REKEY_STEP_RETIRE = 3,
};

/* Names for logs and JSON ("gre", "aes-gcm-256", "established", ...);
 * "unspecified" for 0 and out-of-range values. */
const char *msg_encap_name(enum msg_encap e);
const char *msg_cipher_name(enum msg_cipher c);
const char *msg_role_name(enum msg_role r);
const char *msg_backend_name(enum msg_backend b);
const char *msg_tunnel_state_name(enum msg_tunnel_state s);
const char *msg_direction_name(enum msg_direction d);
const char *msg_bgp_state_name(enum msg_bgp_state s);
const char *msg_rekey_step_name(enum msg_rekey_step s);
const char *msg_rekey_reason_name(enum msg_rekey_reason r);
const char *msg_rekey_request_reason_name(enum msg_rekey_request_reason r);
const char *msg_enroll_error_name(enum msg_enroll_error e);

/* ------------------------------------------------------------------ */
/* Enrollment */

struct msg_enroll_request {
	char token[MSG_TOKEN_MAX + 1];		/* 1..128, 0x21..0x7e */
	struct msg_blob csr_der;		/* 1..8192 bytes */
	char software_version[MSG_VERSION_STR_MAX + 1];
};

/* Edge.Renew: a new CSR, sent with the current certificate. */
struct msg_renew_request {
	struct msg_blob csr_der;		/* 1..8192 bytes */
	char software_version[MSG_VERSION_STR_MAX + 1];
};

struct msg_enroll_response {
	enum msg_enroll_error error;		/* UNSPECIFIED = success */
	char error_message[MSG_ERROR_MAX + 1];
	/* On success all set; on error all may be empty. */
	uint64_t site_id;
	struct msg_blob certificate_der;	/* 1..8192 bytes */
	struct msg_blob ca_chain_der[MSG_CA_CHAIN_MAX]; /* issuing CA first */
	size_t n_ca_chain;			/* 1..4 on success */
	char controller_name[MSG_CN_MAX + 1];
};

/* ------------------------------------------------------------------ */
/* Intent (controller -> edge) */

struct msg_wan_link {
	char name[MSG_LINK_NAME_MAX + 1];	/* 1..32 [a-z0-9_-] */
	struct msg_addr address;		/* always set */
	struct msg_addr public_address;		/* family 0 = same as address */
	uint16_t public_port;			/* 0 = 4500 */
};

struct msg_site {
	uint64_t id;				/* > 0 */
	char name[MSG_NAME_MAX + 1];		/* 1..63 [a-z0-9-] */
	uint32_t asn;				/* private range */
	enum msg_role role;
	char region[MSG_REGION_MAX + 1];	/* may be "" */
	struct msg_prefix *lan_prefixes;	/* malloc'd; networks */
	size_t n_lan_prefixes;			/* <= 1024 */
	struct msg_wan_link links[MSG_LINKS_MAX];	/* unique names */
	size_t n_links;				/* <= 16 */
};

struct msg_crypto_profile {
	enum msg_cipher cipher;			/* GCM-128 or GCM-256 */
	bool esn;				/* true in v1 */
	uint32_t replay_window;			/* 0 = 1024, else 32..65536 */
	uint32_t rekey_seconds;			/* 0 = 3600, else 60..604800 */
	uint64_t rekey_bytes;			/* 0 = no limit */
	uint64_t rekey_packets;			/* 0 = no limit */
};

struct msg_peer_key {
	uint64_t epoch;				/* > 0 */
	uint8_t public_key[MSG_KEY_LEN];
	uint8_t signature[MSG_SIG_MAX];
	size_t signature_len;			/* 1..128 */
	uint64_t not_after;			/* unix seconds, > 0 */
};

struct msg_peer {
	uint64_t site_id;			/* > 0 */
	char name[MSG_NAME_MAX + 1];
	struct msg_blob certificate_der;	/* 0..8192 bytes; 0 = not enrolled */
	struct msg_peer_key keys[MSG_PEER_KEYS_MAX];	/* unique epochs */
	size_t n_keys;				/* <= 4 */
	/* What the peer may announce and send from (networks). */
	struct msg_prefix *allowed_prefixes;	/* malloc'd */
	size_t n_allowed_prefixes;		/* <= 65536; 0 = nothing */
};

struct msg_bgp_neighbor {
	struct msg_addr address;		/* = tunnel.inner_remote */
	uint32_t remote_asn;			/* private range */
	uint32_t hold_time;			/* 0 = FRR default, else 3..65535 */
	uint32_t keepalive;			/* 0 = FRR default, else 1..21845 */
	bool bfd;
	bool route_server_client;
	struct msg_addr address6;		/* = tunnel.inner_remote6; 0 = none */
};

/*
 * What names one SA's key besides the two X25519 key pairs (SaKeyRef;
 * proto/sakey.h derives the key).  spi 0: no SA yet, everything 0; key
 * epochs both 0 (keys not known yet: install nothing) or both > 0.
 */
struct msg_sa_key_ref {
	uint32_t spi;				/* 0, or >= 256 */
	uint64_t sa_epoch;			/* > 0 when spi is set */
	uint64_t sender_key_epoch;		/* X25519 key epochs */
	uint64_t receiver_key_epoch;
};

struct msg_tunnel {
	uint64_t id;				/* > 0, unique */
	char local_link[MSG_LINK_NAME_MAX + 1];	/* one of site.links (snapshot) */
	char remote_link[MSG_LINK_NAME_MAX + 1];
	struct msg_addr remote_address;		/* always set */
	uint16_t remote_port;			/* 0 = 4500 */
	enum msg_encap encap;			/* GRE or VXLAN */
	uint32_t vni;				/* VXLAN 1..16777215, GRE 0 */
	struct msg_prefix inner_local;		/* IPv4, len 31 */
	struct msg_addr inner_remote;		/* the other address of the /31 */
	uint32_t mtu;				/* 0 = computed, else 576..9216 */
	struct msg_crypto_profile crypto;
	struct msg_peer peer;
	struct msg_bgp_neighbor bgp;
	struct msg_sa_key_ref sa_in;		/* peer -> this edge */
	struct msg_sa_key_ref sa_out;		/* this edge -> peer */
	/* Dual stack: family 0 in both = no IPv6 on this tunnel. */
	struct msg_prefix inner_local6;		/* IPv6, len 127 */
	struct msg_addr inner_remote6;		/* the other address of the /127 */
};

struct msg_intent {
	uint64_t version;			/* > 0 */
	struct msg_site site;
	struct msg_tunnel *tunnels;		/* malloc'd; unique ids */
	size_t n_tunnels;			/* <= 65536 */
	struct msg_blob ca_chain_der;		/* <= 16 KiB */
	uint32_t keepalive_seconds;		/* 0 = 30, else 1..3600 */
	uint32_t headless_grace_seconds;	/* 0 = 86400, else 60..2592000 */
};

struct msg_intent_delta {
	uint64_t from_version;			/* > 0, < version */
	uint64_t version;
	bool has_site;				/* site replaces the old one */
	struct msg_site site;
	struct msg_tunnel *upsert;		/* malloc'd; unique ids */
	size_t n_upsert;			/* <= 65536 */
	uint64_t *remove;			/* malloc'd; unique, not in upsert */
	size_t n_remove;			/* <= 65536 */
};

struct msg_rekey_order {
	uint64_t tunnel_id;			/* > 0 */
	uint64_t epoch;				/* > 0 */
	enum msg_rekey_step step;		/* never UNSPECIFIED */
	enum msg_rekey_reason reason;
	uint32_t spi;				/* >= 256 */
	uint32_t drain_seconds;			/* <= 3600 */
	uint64_t sender_key_epoch;		/* both 0 or both > 0; */
	uint64_t receiver_key_epoch;		/* 0 in RETIRE */
};

struct msg_peer_keys {
	uint64_t peer_site_id;			/* > 0 */
	struct msg_peer_key keys[MSG_PEER_KEYS_MAX];	/* unique epochs */
	size_t n_keys;				/* 1..4 */
};

struct msg_keepalive {
	uint64_t controller_time;		/* unix seconds */
};

struct msg_backoff {
	uint32_t retry_after_seconds;		/* <= 3600 */
	char reason[MSG_BACKOFF_REASON_MAX + 1];
};

enum msg_controller_kind {
	MSG_CONTROLLER_NONE = 0,	/* never after a successful decode */
	MSG_CONTROLLER_SNAPSHOT = 1,
	MSG_CONTROLLER_DELTA = 2,
	MSG_CONTROLLER_REKEY = 3,
	MSG_CONTROLLER_KEEPALIVE = 4,
	MSG_CONTROLLER_BACKOFF = 5,
	MSG_CONTROLLER_PEER_KEYS = 6,
};

/* ControllerMessage: kind says which member of u is valid. */
struct msg_controller_message {
	enum msg_controller_kind kind;
	union {
		struct msg_intent snapshot;
		struct msg_intent_delta delta;
		struct msg_rekey_order rekey;
		struct msg_keepalive keepalive;
		struct msg_backoff backoff;
		struct msg_peer_keys peer_keys;
	} u;
};

/* ------------------------------------------------------------------ */
/* Edge -> controller */

struct msg_hello {
	uint64_t site_id;			/* > 0 */
	uint64_t applied_version;		/* 0 = none */
	bool has_convergence_hash;		/* false only when version is 0 */
	uint8_t convergence_hash[MSG_HASH_LEN];
	char software_version[MSG_VERSION_STR_MAX + 1];
	enum msg_backend backend;
	uint32_t features;			/* MSG_FEATURE_* bits */
};

struct msg_sa_status {
	uint32_t spi;				/* >= 256 */
	enum msg_direction direction;
	uint64_t epoch;
	uint64_t packets;
	uint64_t bytes;
	uint64_t age_seconds;
	uint64_t seq;
	uint64_t drops_auth;
	uint64_t drops_replay;
	bool active;
};

struct msg_tunnel_status {
	uint64_t tunnel_id;			/* > 0, unique in a status */
	enum msg_tunnel_state state;
	char error[MSG_ERROR_MAX + 1];
	struct msg_sa_status sas[MSG_SAS_MAX];
	size_t n_sas;				/* <= 8 */
	uint64_t packets_in;
	uint64_t packets_out;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t drops_no_sa;
	uint64_t drops_malformed;
	uint64_t drops_unknown_spi;
	/* NAT rebinding: the endpoint followed instead of the intent's
	 * (family 0 = none), and how often the edge followed one. */
	struct msg_addr peer_address;
	uint16_t peer_port;
	uint64_t peer_moves;
};

struct msg_bgp_neighbor_status {
	struct msg_addr address;		/* always set */
	uint32_t remote_asn;
	enum msg_bgp_state state;
	uint64_t uptime_seconds;
	uint32_t prefixes_received;
	uint64_t tunnel_id;			/* 0 = none */
	uint32_t prefixes_filtered;		/* by the inbound filter */
};

struct msg_health_status {
	uint64_t tunnel_id;			/* > 0 */
	bool up;
	uint32_t rtt_us;
	uint32_t loss_permille;			/* 0..1000 */
	uint32_t jitter_us;
};

struct msg_status {
	uint64_t applied_version;
	struct msg_tunnel_status *tunnels;	/* malloc'd */
	size_t n_tunnels;			/* <= 65536 */
	struct msg_bgp_neighbor_status *bgp;	/* malloc'd */
	size_t n_bgp;				/* <= 65536 */
	struct msg_health_status *health;	/* malloc'd */
	size_t n_health;			/* <= 65536 */
	uint64_t uptime_seconds;
};

/* An intent ack (rekey_tunnel_id 0) or a rekey ack (rekey_* set). */
struct msg_ack {
	uint64_t version;
	bool ok;
	char reason[MSG_REASON_MAX + 1];
	bool has_convergence_hash;
	uint8_t convergence_hash[MSG_HASH_LEN];
	uint64_t rekey_tunnel_id;
	uint64_t rekey_epoch;
	enum msg_rekey_step rekey_step;
};

struct msg_key_announcement {
	uint64_t epoch;				/* > 0 */
	uint8_t public_key[MSG_KEY_LEN];
	uint8_t signature[MSG_SIG_MAX];
	size_t signature_len;			/* 1..128 */
	uint64_t not_after;			/* > 0 */
};

/* Edge asks for a new SA epoch of one direction of one of its tunnels. */
struct msg_rekey_request {
	uint64_t tunnel_id;			/* > 0 */
	enum msg_direction direction;		/* IN or OUT (required) */
	enum msg_rekey_request_reason reason;	/* required */
};

enum msg_edge_kind {
	MSG_EDGE_NONE = 0,		/* never after a successful decode */
	MSG_EDGE_HELLO = 1,
	MSG_EDGE_STATUS = 2,
	MSG_EDGE_ACK = 3,
	MSG_EDGE_KEY = 4,
	MSG_EDGE_REKEY_REQUEST = 5,
};

/* EdgeMessage: kind says which member of u is valid. */
struct msg_edge_message {
	enum msg_edge_kind kind;
	union {
		struct msg_hello hello;
		struct msg_status status;
		struct msg_ack ack;
		struct msg_key_announcement key;
		struct msg_rekey_request rekey_request;
	} u;
};

/* ------------------------------------------------------------------ */
/* Release what a struct owns and zero it; NULL is fine. */

void msg_enroll_request_free(struct msg_enroll_request *m);
void msg_enroll_response_free(struct msg_enroll_response *m);
void msg_renew_request_free(struct msg_renew_request *m);
void msg_site_free(struct msg_site *m);
void msg_peer_free(struct msg_peer *m);
void msg_tunnel_free(struct msg_tunnel *m);
void msg_intent_free(struct msg_intent *m);
void msg_intent_delta_free(struct msg_intent_delta *m);
void msg_controller_message_free(struct msg_controller_message *m);
void msg_status_free(struct msg_status *m);
void msg_edge_message_free(struct msg_edge_message *m);

/* Deep copies into *dst (which is overwritten, not freed first).  0, or -1
 * on ENOMEM with *dst zeroed and nothing allocated. */
int msg_site_copy(struct msg_site *dst, const struct msg_site *src);
int msg_tunnel_copy(struct msg_tunnel *dst, const struct msg_tunnel *src);
int msg_intent_copy(struct msg_intent *dst, const struct msg_intent *src);

/* ------------------------------------------------------------------ */
/*
 * Validation against the limits of the .proto.  Decoding runs these on
 * every message; producers may call them to find their own mistakes early
 * (the encoders run them too).  Each returns 0, or -1 with err holding
 * "field.path: what is wrong" (e.g. "tunnels[3].vni: 0 out of range
 * 1..16777215").  err may be NULL when errlen is 0.
 */
int msg_validate_enroll_request(const struct msg_enroll_request *m,
    char *err, size_t errlen);
int msg_validate_renew_request(const struct msg_renew_request *m,
    char *err, size_t errlen);
int msg_validate_enroll_response(const struct msg_enroll_response *m,
    char *err, size_t errlen);
int msg_validate_site(const struct msg_site *m, char *err, size_t errlen);
int msg_validate_tunnel(const struct msg_tunnel *m, char *err,
    size_t errlen);
int msg_validate_intent(const struct msg_intent *m, char *err,
    size_t errlen);
int msg_validate_intent_delta(const struct msg_intent_delta *m, char *err,
    size_t errlen);
int msg_validate_controller_message(const struct msg_controller_message *m,
    char *err, size_t errlen);
int msg_validate_edge_message(const struct msg_edge_message *m, char *err,
    size_t errlen);

/*
 * Apply a (validated) delta to an intent, all or nothing: fails with err
 * set and *intent untouched when d->from_version is not intent->version,
 * a removed id is absent, an upserted tunnel names a link the resulting
 * site lacks, or memory runs out.  Tunnels keep their order; new ones are
 * appended.  Both the controller (to know the hash it expects) and the
 * agent (to know its new state) use this, so they agree.  The tunnel array
 * is edited in place (and realloc'd when it grows): O(changes) allocations
 * and one pass over the tunnels, never a copy of them all.
 */
int msg_intent_apply_delta(struct msg_intent *intent,
    const struct msg_intent_delta *d, char *err, size_t errlen);

/*
 * The delta that turns `from` into `to` (both valid): from_version and
 * version from the two, the site when it differs, every tunnel of `to` that
 * is new or differs (in `to`'s order), and the ids only `from` has.  *out
 * owns copies.  Fails (-1, err set, *out zeroed) when memory runs out or
 * when a field a delta cannot carry differs (ca_chain_der,
 * keepalive_seconds, headless_grace_seconds): send a snapshot then.
 * Applying the result to `from` with msg_intent_apply_delta() gives a state
 * with the same convergence hash as `to`.
 */
int msg_intent_diff(const struct msg_intent *from, const struct msg_intent *to,
    struct msg_intent_delta *out, char *err, size_t errlen);

/* Field-by-field equality (blobs by content, strings up to their NUL). */
bool msg_site_equal(const struct msg_site *a, const struct msg_site *b);
bool msg_tunnel_equal(const struct msg_tunnel *a, const struct msg_tunnel *b);

/* Lookup by id in intent->tunnels; NULL when absent.  Linear. */
const struct msg_tunnel *msg_intent_find_tunnel(const struct msg_intent *m,
    uint64_t id);

/* Defaults for fields where 0 means "default". */
uint16_t msg_port_or_default(uint16_t port);
uint32_t msg_replay_window_or_default(uint32_t w);
uint32_t msg_rekey_seconds_or_default(uint32_t s);

/*
 * SA hard lifetimes (proto/README.md, "SA lifetimes").  The rekey limits
 * in CryptoProfile are soft: they start a rekey, which needs the
 * controller.  The hard limits end an SA (fail closed); every edge
 * derives them the same way, so an edge cut off from its controller
 * keeps its SAs for the whole headless grace:
 *   seconds = rekey_seconds + headless_grace_seconds + MSG_SA_HARD_MARGIN
 *   bytes   = MSG_SA_HARD_BYTES, packets = MSG_SA_HARD_PACKETS
 * The volume limits keep one AES-GCM key's use (plaintext blocks plus
 * invocations) under 2^48 blocks, an attacker advantage below 2^-33 —
 * far below the 2^64 nonces of the 64-bit ESN.  A soft volume limit is
 * at most half the hard one (MSG_SA_SOFT_*_MAX).
 */
#define MSG_SA_HARD_MARGIN	600			/* seconds */
#define MSG_SA_HARD_BYTES	(UINT64_C(1) << 51)	/* 2 PiB */
#define MSG_SA_HARD_PACKETS	(UINT64_C(1) << 46)
#define MSG_SA_SOFT_BYTES_MAX	(MSG_SA_HARD_BYTES / 2)
#define MSG_SA_SOFT_PACKETS_MAX	(MSG_SA_HARD_PACKETS / 2)

struct msg_sa_hard {
	uint64_t seconds, bytes, packets;
};

/* The hard lifetime of an SA of a tunnel with crypto profile c, in an
 * intent whose headless_grace_seconds is grace_s (0: the defaults). */
void msg_sa_hard_limits(const struct msg_crypto_profile *c, uint32_t grace_s,
    struct msg_sa_hard *out);

/* True for ASNs in 64512..65534 or 4200000000..4294967294 (RFC 6996). */
bool msg_asn_is_private(uint32_t asn);

#endif
