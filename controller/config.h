/*
 * config.h — meshwan-controller's configuration file.
 *
 * The file is plain `key = value` lines ('#' starts a comment).  Every key
 * is optional and has a default; an unknown key, a repeated key or a value
 * outside its limits is an error that names the file, the line and the
 * key.  A file is parsed into a fresh struct config, so a reload either
 * replaces the whole configuration or leaves the old one untouched.
 * See controller/CONTROLLER.md for the reference of every key.
 */
#ifndef MESHWAN_CONTROLLER_CONFIG_H
#define MESHWAN_CONTROLLER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define CONFIG_PATH_MAX 256
#define CONFIG_STORE_MAX 1024  /* a libpq connection string */
#define CONFIG_ADDR_MAX 128  /* "host:port", "[v6]:port" */
#define CONFIG_NAME_MAX 64   /* a DNS name or address in the server cert */
#define CONFIG_NAMES_MAX 8
#define CONFIG_DEBUG_MAX 200
#define CONFIG_FILE_MAX ((size_t)64 * 1024)
/* Where `make install` puts controller/web. */
#define CONFIG_WEB_ROOT_DEFAULT "/usr/share/meshwan/web"

enum config_policy {
	CONFIG_POLICY_FULL_MESH = 0,
	CONFIG_POLICY_HUB_SPOKE,
	CONFIG_POLICY_REGIONAL,
};

enum config_encap {
	CONFIG_ENCAP_GRE = 0,
	CONFIG_ENCAP_VXLAN,
};

enum config_cipher {
	CONFIG_CIPHER_AES_GCM_128 = 0,
	CONFIG_CIPHER_AES_GCM_256,
};

/* A ULA /64 (RFC 4193), "meshwn" in its global id. */
#define CONFIG_TUNNEL_POOL6_DEFAULT "fd6d:6573:6877::/64"

struct config {
	/* Listeners. */
	char grpc_listen[CONFIG_ADDR_MAX];   /* Edge.Session, mutual TLS */
	char enroll_listen[CONFIG_ADDR_MAX]; /* Enrollment.Enroll, server TLS */
	char http_listen[CONFIG_ADDR_MAX];   /* REST API, /metrics, /healthz */
	uint32_t http_max_connections;       /* REST connections held at once */
	uint32_t http_max_per_ip;            /* ... per client address */
	uint32_t http_timeout_s;             /* idle REST connection closed */
	/* HTTPS of the REST API and dashboard (CONTROLLER.md, "HTTPS"). */
	char http_tls_cert[CONFIG_PATH_MAX]; /* PEM files; "" = none */
	char http_tls_key[CONFIG_PATH_MAX];
	char http_tls_names[CONFIG_NAMES_MAX][CONFIG_NAME_MAX]; /* CA-issued */
	unsigned n_http_tls_names;
	uint32_t http_plaintext;             /* 1: plain HTTP, said so */
	char web_root[CONFIG_PATH_MAX];      /* "" = CONFIG_WEB_ROOT_DEFAULT */
	uint32_t sse_max;                    /* event streams; 0 = default */
	uint32_t sse_max_per_client;         /* ... per token / address */

	/* State. */
	char database[CONFIG_PATH_MAX];
	/* "" = sqlite at database; else a PostgreSQL connection string or
	 * URI, passed to libpq unchanged (never with a password in it). */
	char store[CONFIG_STORE_MAX];
	/* PostgreSQL, several controllers: a leader that has not renewed
	 * its lease for this long is fenced by another. */
	uint32_t leader_lease_s;
	char ca_dir[CONFIG_PATH_MAX];
	char ca_key_passphrase_file[CONFIG_PATH_MAX]; /* "" = key not wrapped */
	char admin_token_file[CONFIG_PATH_MAX]; /* first admin token goes here */

	/* Identity of the controller's own TLS certificate. */
	char controller_name[CONFIG_NAME_MAX];
	char server_names[CONFIG_NAMES_MAX][CONFIG_NAME_MAX];
	unsigned n_server_names;

	/* Enrollment. */
	uint64_t token_lifetime_s;
	uint64_t cert_lifetime_s;     /* edges renew at 2/3 of it */
	uint32_t enroll_rate;         /* Enroll/Renew calls/s per source; 0 = off */
	uint32_t enroll_burst;

	/* Sessions. */
	uint32_t coalesce_ms;       /* collect changes this long per version */
	uint32_t keepalive_s;
	uint32_t hello_timeout_s;   /* a new stream's hello is due within */
	uint32_t handshake_timeout_s; /* a connection's TLS + HTTP/2 set-up
				       is due within */
	uint32_t headless_grace_s;
	uint32_t intent_history;    /* versions kept per edge for deltas */
	uint32_t session_admit_bytes; /* snapshots to new hellos while all
				       streams' queues hold less */

	/* Topology defaults, applied when the database is created. */
	enum config_policy policy;
	char tunnel_pool[48];       /* IPv4 CIDR, /31 per tunnel */
	/* IPv6 pool, a /127 per tunnel (the one at the tunnel's /31 offset);
	 * "off" = IPv4 only.  Read at start, not stored. */
	char tunnel_pool6[48];
	uint32_t asn_min, asn_max;
	enum config_encap encap;
	uint32_t vni_base;
	enum config_cipher cipher;
	uint32_t rekey_s;
	uint32_t replay_window;
	uint32_t mtu;               /* 0 = agents compute it */

	char debug[CONFIG_DEBUG_MAX]; /* log_setdebug() list */

	/* Tests only (0 = off; left out of -n output when 0). */
	uint32_t test_clock_offset_s; /* added to the session clock */
	uint32_t test_send_queue;     /* per-stream queue, messages */
	uint32_t test_enroll_lose;    /* withhold the next N Enroll answers */
	uint32_t test_check_patch;    /* 1: compare every patched intent
	                                 with a whole rebuild */
};

/* Fill cfg with the built-in defaults. */
void config_defaults(struct config *cfg);

/*
 * Parse path into cfg (defaults first, then the file).  On error, logs
 * "path:line: key: why" for the first problem and returns -1; cfg is then
 * undefined and must not be used.
 */
int config_load(const char *path, struct config *cfg);

/* Same, from a buffer of len bytes; name is used in messages. */
int config_parse(const char *name, const char *buf, size_t len,
    struct config *cfg);

/*
 * The crypto profile the file's keys (cipher, rekey_interval,
 * replay_window) describe, for seeding a new database; no volume limits.
 * config_parse() checks it with model_crypto_validate(), the check PUT
 * /api/v1/crypto applies, so both paths accept the same profiles.
 */
struct model_crypto;
void config_crypto(const struct config *cfg, struct model_crypto *out);

/* Write every key in canonical order and normal form (the -n output). */
void config_print(const struct config *cfg, FILE *out);

/* Names for enums, as written in the file. */
const char *config_policy_name(enum config_policy p);
const char *config_encap_name(enum config_encap e);
const char *config_cipher_name(enum config_cipher c);

/*
 * Split "host:port" / "[v6]:port" into host (without brackets) and port.
 * Returns 0 or -1.
 */
int config_split_addr(const char *addr, char *host, size_t hostsz,
    uint16_t *port);

#endif
