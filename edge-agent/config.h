/*
 * config.h — meshwan-edge's configuration file.
 *
 * Plain `key = value` lines, '#' starts a comment, as in the controller's
 * file.  Keys `link` and `lan_prefix` may repeat (one entry a line); any
 * other key given twice, an unknown key, or a value outside its limits is
 * an error naming the file, the line and the key.  A file is parsed into a
 * fresh struct edge_config, so a reload either replaces the whole
 * configuration or leaves the old one untouched.  edge-agent/README.md has
 * the reference of every key.
 */
#ifndef MESHWAN_EDGE_CONFIG_H
#define MESHWAN_EDGE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/log.h"
#include "proto/msg.h"

#define EDGE_CONFIG_PATH_MAX		256
#define EDGE_CONFIG_ADDR_MAX		128	/* "host:port", "[v6]:port" */
#define EDGE_CONFIG_CONTROLLERS_MAX	4
#define EDGE_CONFIG_LINKS_MAX		MSG_LINKS_MAX		/* 16 */
#define EDGE_CONFIG_PREFIXES_MAX	MSG_PREFIXES_MAX	/* 1024 */
#define EDGE_CONFIG_NAME_MAX		63	/* frr_instance */
#define EDGE_CONFIG_DEBUG_MAX		200
#define EDGE_CONFIG_FILE_MAX		((size_t)64 * 1024)
#define EDGE_CONFIG_ENROLL_PORT		7444	/* default enrollment port */
#define EDGE_CONFIG_SOCK_MAX		108	/* sizeof(sun_path) */
#define EDGE_FRR_TIMEOUT_MIN_MS		1000	/* frr_timeout_ms range */
#define EDGE_FRR_TIMEOUT_MAX_MS		120000
#define EDGE_ENROLL_TIMEOUT_MIN_MS	1000	/* enroll_timeout_ms range */
#define EDGE_ENROLL_TIMEOUT_MAX_MS	600000
#define EDGE_ENROLL_TIMEOUT_MS		30000	/* its default */

enum edge_backend {
	EDGE_BACKEND_UESP = 0,
	EDGE_BACKEND_XFRM,
	EDGE_BACKEND_NULL,
};

struct edge_link {
	char name[MSG_LINK_NAME_MAX + 1];	/* [a-z0-9_-], 1..32, unique */
	struct msg_addr address;		/* local outer address */
	struct msg_addr public_address;		/* family 0: same as address */
	uint16_t public_port;			/* 0: 4500 */
};

struct edge_config {
	/* The controller: Session (mutual TLS) and Enrollment endpoints,
	 * tried in order. */
	char controllers[EDGE_CONFIG_CONTROLLERS_MAX][EDGE_CONFIG_ADDR_MAX];
	unsigned n_controllers;			/* >= 1 */
	char enroll[EDGE_CONFIG_CONTROLLERS_MAX][EDGE_CONFIG_ADDR_MAX];
	unsigned n_enroll;			/* >= 1 after parsing */

	/* Trust in the controller: a CA file or the SHA-256 of its CA
	 * certificate (DER), exactly one. */
	char ca_file[EDGE_CONFIG_PATH_MAX];
	bool has_ca_pin;
	uint8_t ca_pin[MSG_HASH_LEN];
	/* The name the controller's TLS certificate must carry (its
	 * controller_name); default "meshwan-controller". */
	char controller_name[MSG_CN_MAX + 1];

	/* One-time enrollment token: inline or in a file; neither once
	 * enrolled.  Never printed. */
	char token[MSG_TOKEN_MAX + 1];
	char token_file[EDGE_CONFIG_PATH_MAX];
	/* How long one Enroll call waits for the controller's answer; then
	 * it is retried (same token, same key pair) after a backoff.
	 * 1000..600000, default EDGE_ENROLL_TIMEOUT_MS (printed by -n only
	 * when it differs). */
	unsigned enroll_timeout_ms;

	char state_dir[EDGE_CONFIG_PATH_MAX];
	enum edge_backend backend;

	struct edge_link links[EDGE_CONFIG_LINKS_MAX];
	unsigned n_links;			/* >= 1 */

	/* FRR: vtysh -N instance, or vtysh --vty_socket dir (at most one). */
	char frr_instance[EDGE_CONFIG_NAME_MAX + 1];
	char frr_vty_socket[EDGE_CONFIG_PATH_MAX];
	char vtysh[EDGE_CONFIG_PATH_MAX];
	/* How long one vtysh run may take before it is killed (an apply
	 * or a status read fails then, and is retried): 0 = the FRR
	 * driver's default, FRR_TIMEOUT_MS (15 s).  A CPU-starved host (a
	 * VM under emulation) may need more. */
	unsigned frr_timeout_ms;

	/* What the site may announce: networks, no overlaps; owned. */
	struct msg_prefix *lan_prefixes;
	size_t n_lan_prefixes;

	/* `meshwan-edge status`: a UNIX socket path of at most 107 bytes;
	 * default <state_dir>/control.sock, always set after parsing. */
	char control_socket[EDGE_CONFIG_SOCK_MAX];
	char metrics_listen[EDGE_CONFIG_ADDR_MAX]; /* "" = off */
	/* A non-loopback metrics_listen is refused unless this is set. */
	bool metrics_allow_remote;
	/* BFD on every tunnel: tx = rx interval (10..60000 ms) and detect
	 * multiplier (2..255); 0 = the FRR driver's default (200 ms x 3,
	 * frr.h).  Detection takes interval x multiplier. */
	unsigned bfd_interval_ms;
	unsigned bfd_multiplier;
	enum log_level log_level;
	char debug[EDGE_CONFIG_DEBUG_MAX];	/* log_setdebug() list */
};

/*
 * Parse the file at path into *cfg (defaults first).  On error, logs
 * "path:line: key: why" for the first problem, returns -1 and leaves *cfg
 * zeroed (nothing to free).  On success *cfg owns memory: edge_config_free().
 */
int edge_config_load(const char *path, struct edge_config *cfg);

/* The same from a buffer of len bytes; name is used in messages. */
int edge_config_parse(const char *name, const char *buf, size_t len,
    struct edge_config *cfg);

/*
 * Every key in canonical order and normal form (the -n output).  The
 * token itself is never printed: a comment says whether one is set.
 */
void edge_config_print(const struct edge_config *cfg, FILE *out);

/* Release what cfg owns (wiping the token) and zero it; NULL is fine. */
void edge_config_free(struct edge_config *cfg);

const char *edge_config_backend_name(enum edge_backend b);

#endif
