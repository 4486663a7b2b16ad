/*
 * overlay.c — the backend registry and the checks every backend shares.
 *
 * Backends are found by name in a static table (like iproute2's link_util
 * list); validation of parameter structs lives here once so that the null
 * backend refuses exactly what the real ones refuse.
 */
#include "overlay/overlay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "lib/log.h"
#include "lib/util.h"

static const struct overlay_ops *const overlay_table[] = {
	&uesp_ops,
	&xfrm_ops,
	&null_ops,
};

static const char *const overlay_table_names[] = { "uesp", "xfrm", "null", NULL };

const struct overlay_ops *
overlay_find(const char *name)
{
	size_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < ARRAY_SIZE(overlay_table); i++)
		if (strcmp(overlay_table[i]->name, name) == 0)
			return overlay_table[i];
	return NULL;
}

int
overlay_sa_add_batch(const struct overlay_ops *o, void *ctx,
    const struct overlay_sa_params *p, size_t n, int *results)
{
	size_t i;
	int ret = 0;

	if (o->version >= 4 && o->sa_add_batch != NULL)
		return o->sa_add_batch(ctx, p, n, results);
	for (i = 0; i < n; i++)
		if ((results[i] = o->sa_add(ctx, &p[i])) < 0 && ret == 0)
			ret = results[i];
	return ret;
}

int
overlay_sa_del_batch(const struct overlay_ops *o, void *ctx,
    const struct overlay_sa_ref *refs, size_t n, int *results)
{
	size_t i;
	int ret = 0;

	if (o->version >= 5 && o->sa_del_batch != NULL)
		return o->sa_del_batch(ctx, refs, n, results);
	for (i = 0; i < n; i++)
		if ((results[i] = o->sa_del(ctx, refs[i].tunnel_id, refs[i].spi,
		    refs[i].dir)) < 0 && ret == 0)
			ret = results[i];
	return ret;
}

const char *const *
overlay_names(void)
{
	return overlay_table_names;
}

const char *
overlay_encap_str(enum overlay_encap e)
{
	switch (e) {
	case OVERLAY_ENCAP_GRE:
		return "gre";
	case OVERLAY_ENCAP_VXLAN:
		return "vxlan";
	}
	return "?";
}

const char *
overlay_dir_str(enum overlay_dir d)
{
	switch (d) {
	case OVERLAY_DIR_IN:
		return "in";
	case OVERLAY_DIR_OUT:
		return "out";
	}
	return "?";
}

const char *
overlay_cipher_str(enum overlay_cipher c)
{
	switch (c) {
	case OVERLAY_AES_GCM_128:
		return "aes-gcm-128";
	case OVERLAY_AES_GCM_256:
		return "aes-gcm-256";
	}
	return "?";
}

size_t
overlay_cipher_keylen(enum overlay_cipher c)
{
	switch (c) {
	case OVERLAY_AES_GCM_128:
		return 16;
	case OVERLAY_AES_GCM_256:
		return 32;
	}
	return 0;
}

int
overlay_addr_parse(const char *s, struct overlay_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (s == NULL)
		return -1;
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->bytes) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	memset(a, 0, sizeof(*a));
	return -1;
}

const char *
overlay_addr_str(const struct overlay_addr *a, char *buf, size_t len)
{
	if (a->family != AF_INET && a->family != AF_INET6) {
		snprintf(buf, len, "unset");
		return buf;
	}
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

bool
overlay_addr_eq(const struct overlay_addr *a, const struct overlay_addr *b)
{
	size_t n;

	if (a->family != b->family)
		return false;
	n = a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
	return memcmp(a->bytes, b->bytes, n) == 0;
}

static bool
overlay_addr_set(const struct overlay_addr *a)
{
	return a->family == AF_INET || a->family == AF_INET6;
}

static unsigned
overlay_addr_bits(sa_family_t family)
{
	return family == AF_INET ? 32 : family == AF_INET6 ? 128 : 0;
}

bool
overlay_prefix_has(const struct overlay_prefix *p, sa_family_t family,
    const uint8_t *addr)
{
	unsigned full = p->len / 8, rest = p->len % 8;
	uint8_t mask;

	if (p->addr.family != family || p->len > overlay_addr_bits(family))
		return false;
	if (memcmp(p->addr.bytes, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (addr[full] & mask) == p->addr.bytes[full];
}

/* Host bits beyond len are zero. */
static bool
overlay_prefix_canonical(const struct overlay_prefix *p)
{
	unsigned bits = overlay_addr_bits(p->addr.family), i;

	if (bits == 0 || p->len > bits)
		return false;
	for (i = p->len; i < bits; i++)
		if (p->addr.bytes[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

int
overlay_prefix_parse(const char *s, struct overlay_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	unsigned long len;

	memset(p, 0, sizeof(*p));
	if (s == NULL || strlen(s) >= sizeof(buf))
		return -1;
	memcpy(buf, s, strlen(s) + 1);
	if ((slash = strchr(buf, '/')) == NULL)
		return -1;
	*slash = '\0';
	if (overlay_addr_parse(buf, &p->addr) < 0 || slash[1] < '0' ||
	    slash[1] > '9')
		return -1;
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || len > overlay_addr_bits(p->addr.family))
		goto bad;
	p->len = (uint8_t)len;
	if (!overlay_prefix_canonical(p))
		goto bad;
	return 0;
bad:
	memset(p, 0, sizeof(*p));
	return -1;
}

const char *
overlay_prefix_str(const struct overlay_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s/%u", overlay_addr_str(&p->addr, a, sizeof(a)),
	    p->len);
	return buf;
}

bool
overlay_tunnel_needs_remake(const struct overlay_tunnel_params *a,
    const struct overlay_tunnel_params *b)
{
	return strcmp(a->ifname, b->ifname) != 0 || a->encap != b->encap ||
	    a->vni != b->vni || !overlay_addr_eq(&a->local, &b->local) ||
	    !overlay_addr_eq(&a->inner_local, &b->inner_local) ||
	    !overlay_addr_eq(&a->inner_peer, &b->inner_peer) ||
	    a->inner_prefix_len != b->inner_prefix_len;
}

int
overlay_tunnel_params_check(const struct overlay_tunnel_params *p)
{
	const char *why = NULL;
	size_t n;
	unsigned i;

	n = strnlen(p->ifname, sizeof(p->ifname));
	if (p->id == 0)
		why = "id must not be 0";
	else if (!overlay_addr_set(&p->remote))
		why = "remote address missing";
	else if (overlay_addr_set(&p->local) &&
	    p->local.family != p->remote.family)
		why = "local and remote addresses of different families";
	else if (p->local.family != AF_UNSPEC && !overlay_addr_set(&p->local))
		why = "bad local address family";
	else if (p->inner_local.family != AF_INET ||
	    p->inner_peer.family != AF_INET)
		why = "inner addresses must be IPv4";
	else if (p->inner_prefix_len != 0 &&
	    (p->inner_prefix_len < 30 || p->inner_prefix_len > 32))
		why = "inner prefix length must be 30..32";
	else if ((p->inner_local6.family != AF_UNSPEC ||
	    p->inner_peer6.family != AF_UNSPEC) &&
	    (p->inner_local6.family != AF_INET6 ||
	    p->inner_peer6.family != AF_INET6 ||
	    memcmp(p->inner_local6.bytes, p->inner_peer6.bytes, 15) != 0 ||
	    (p->inner_local6.bytes[15] ^ p->inner_peer6.bytes[15]) != 1))
		why = "inner IPv6 addresses must be the two ends of a /127";
	else if (p->encap != OVERLAY_ENCAP_GRE && p->encap != OVERLAY_ENCAP_VXLAN)
		why = "unknown encapsulation";
	else if (p->encap == OVERLAY_ENCAP_VXLAN &&
	    (p->vni == 0 || p->vni > OVERLAY_VNI_MAX))
		why = "VNI must be 1..16777215";
	else if (p->encap == OVERLAY_ENCAP_GRE && p->vni != 0)
		why = "VNI given for GRE";
	else if (p->mtu < OVERLAY_MTU_MIN || p->mtu > OVERLAY_MTU_MAX)
		why = "MTU out of range";
	else if (n == 0 || n >= sizeof(p->ifname))
		why = "device name empty or too long";
	else if (strchr(p->ifname, '/') != NULL || strchr(p->ifname, ' ') != NULL)
		why = "device name has '/' or ' '";
	else if (p->nallowed > OVERLAY_ALLOWED_MAX)
		why = "more than 128 allowed source prefixes";
	for (i = 0; why == NULL && i < p->nallowed; i++)
		if (!overlay_prefix_canonical(&p->allowed[i]))
			why = "allowed source prefix with host bits set or bad length";
	if (why != NULL) {
		log_warnx("overlay: tunnel %llu: %s",
		    (unsigned long long)p->id, why);
		return -EINVAL;
	}
	return 0;
}

int
overlay_sa_params_check(const struct overlay_sa_params *p)
{
	const char *why = NULL;

	if (p->tunnel_id == 0)
		why = "tunnel id must not be 0";
	else if (p->dir != OVERLAY_DIR_IN && p->dir != OVERLAY_DIR_OUT)
		why = "unknown direction";
	else if (p->spi < OVERLAY_SPI_MIN)
		why = "SPI below 256";
	else if (overlay_cipher_keylen(p->cipher) == 0)
		why = "unknown cipher";
	else if (p->replay_window != 0 &&
	    (p->replay_window < OVERLAY_REPLAY_MIN ||
	    p->replay_window > OVERLAY_REPLAY_MAX || p->replay_window % 32 != 0))
		why = "replay window must be a multiple of 32 in 32..65536";
	else if (p->dir == OVERLAY_DIR_IN && p->seq_start != 0)
		why = "a start sequence number is for outbound SAs";
	else if (p->seq_start >= (p->esn ? UINT64_MAX : UINT32_MAX))
		why = "start sequence number leaves no sequence number";
	if (why != NULL) {
		log_warnx("overlay: tunnel %llu SA %u: %s",
		    (unsigned long long)p->tunnel_id, p->spi, why);
		return -EINVAL;
	}
	return 0;
}

/* ---- outbound keys seen ------------------------------------------------- */

/*
 * The HMAC context is made once, keyed once, and re-initialised per digest
 * (EVP_MAC_init with no key keeps the key): OpenSSL's one-shot HMAC()
 * fetches the algorithm and sets the key up again on every call, which
 * showed as a sixth of the xfrm backend's user-space cost per SA.
 *
 * The ring is indexed by an open-addressing hash table of ring positions
 * (linear probing, at most half full), so a check costs the same with
 * OVERLAY_KEYS_MAX digests as with none.  The digests are HMAC outputs
 * under a key no one outside knows, so their first bytes are a uniform
 * hash nobody can aim collisions at.
 */
struct overlay_keys {
	EVP_MAC_CTX *mac;	/* HMAC-SHA256 under a random key, this instance */
	uint8_t (*ring)[OVERLAY_KEY_DIGEST_LEN];
	size_t n, cap;		/* entries in use, allocated */
	size_t next;		/* ring position once n == OVERLAY_KEYS_MAX */
	uint32_t *idx;		/* ring position + 1, 0 = empty slot */
	size_t idxcap;		/* a power of two, >= 2 * n */
	bool wrapped_logged;
};

struct overlay_keys *
overlay_keys_new(void)
{
	struct overlay_keys *k;
	uint8_t hkey[32];
	EVP_MAC *m;
	OSSL_PARAM params[2];

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((m = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL) {
		k->mac = EVP_MAC_CTX_new(m);
		EVP_MAC_free(m);
	}
	if (k->mac == NULL || RAND_bytes(hkey, sizeof(hkey)) != 1 ||
	    EVP_MAC_init(k->mac, hkey, sizeof(hkey), params) != 1) {
		log_warnx("overlay: no HMAC-SHA256 or no random bytes for the "
		    "key digests");
		OPENSSL_cleanse(hkey, sizeof(hkey));
		EVP_MAC_CTX_free(k->mac);
		free(k);
		return NULL;
	}
	OPENSSL_cleanse(hkey, sizeof(hkey));
	return k;
}

void
overlay_keys_free(struct overlay_keys *k)
{
	if (k == NULL)
		return;
	EVP_MAC_CTX_free(k->mac);	/* cleanses its key */
	if (k->ring != NULL) {
		util_wipe(k->ring, k->cap * sizeof(*k->ring));
		free(k->ring);
	}
	free(k->idx);
	util_wipe(k, sizeof(*k));
	free(k);
}

void
overlay_keys_digest(const struct overlay_keys *k,
    const struct overlay_sa_params *p, uint8_t out[OVERLAY_KEY_DIGEST_LEN])
{
	uint8_t msg[1 + OVERLAY_KEY_MAX + OVERLAY_SALT_LEN];
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t kl = overlay_cipher_keylen(p->cipher), mdlen = 0;

	msg[0] = (uint8_t)p->cipher;
	memcpy(msg + 1, p->key, kl);
	memcpy(msg + 1 + kl, p->salt, OVERLAY_SALT_LEN);
	/* k->mac is the instance's own: one thread at a time (overlay.h). */
	if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(k->mac, msg, 1 + kl + OVERLAY_SALT_LEN) != 1 ||
	    EVP_MAC_final(k->mac, md, &mdlen, sizeof(md)) != 1 ||
	    mdlen < OVERLAY_KEY_DIGEST_LEN) {
		/* Cannot happen with a working libcrypto; never match. */
		log_warnx("overlay: HMAC-SHA256 failed");
		memset(md, 0, sizeof(md));
		RAND_bytes(md, OVERLAY_KEY_DIGEST_LEN);
	}
	memcpy(out, md, OVERLAY_KEY_DIGEST_LEN);
	OPENSSL_cleanse(msg, sizeof(msg));
	OPENSSL_cleanse(md, sizeof(md));
}

static size_t
overlay_keys_hash(const struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN])
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)h & (k->idxcap - 1);
}

/* The index slot holding ring position pos, or of d if pos is SIZE_MAX. */
static size_t
overlay_keys_slot(const struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN], size_t pos)
{
	size_t i = overlay_keys_hash(k, d);

	while (k->idx[i] != 0) {
		if (pos == SIZE_MAX ? memcmp(k->ring[k->idx[i] - 1], d,
		    OVERLAY_KEY_DIGEST_LEN) == 0 : k->idx[i] - 1 == pos)
			return i;
		i = (i + 1) & (k->idxcap - 1);
	}
	return pos == SIZE_MAX ? SIZE_MAX : i;
}

static void
overlay_keys_index(struct overlay_keys *k, size_t pos)
{
	size_t i = overlay_keys_hash(k, k->ring[pos]);

	while (k->idx[i] != 0)
		i = (i + 1) & (k->idxcap - 1);
	k->idx[i] = (uint32_t)pos + 1;
}

/* Drop ring position pos from the index (backward-shift deletion). */
static void
overlay_keys_unindex(struct overlay_keys *k, size_t pos)
{
	size_t mask = k->idxcap - 1, i, j, h;

	i = overlay_keys_slot(k, k->ring[pos], pos);
	if (k->idx[i] == 0)
		return;
	for (j = (i + 1) & mask; k->idx[j] != 0; j = (j + 1) & mask) {
		h = overlay_keys_hash(k, k->ring[k->idx[j] - 1]);
		/* Entry j may move to i unless its home lies in (i, j]. */
		if (((j - h) & mask) >= ((j - i) & mask)) {
			k->idx[i] = k->idx[j];
			i = j;
		}
	}
	k->idx[i] = 0;
}

int
overlay_keys_check_digest(const struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN], const struct overlay_sa_params *p)
{
	if (k->n == 0 || overlay_keys_slot(k, d, SIZE_MAX) == SIZE_MAX)
		return 0;
	log_warnx("overlay: tunnel %llu SA out %u: this key and salt were "
	    "already used by an outbound SA here; an outbound key is used by "
	    "one SA only (new SA, new key)", (unsigned long long)p->tunnel_id,
	    p->spi);
	return -EEXIST;
}

int
overlay_keys_check(const struct overlay_keys *k,
    const struct overlay_sa_params *p)
{
	uint8_t d[OVERLAY_KEY_DIGEST_LEN];

	overlay_keys_digest(k, p, d);
	return overlay_keys_check_digest(k, d, p);
}

int
overlay_keys_add_digest(struct overlay_keys *k,
    const uint8_t d[OVERLAY_KEY_DIGEST_LEN])
{
	void *r;
	size_t i;

	if (k->n == OVERLAY_KEYS_MAX) {
		if (!k->wrapped_logged)
			log_warnx("overlay: %u outbound keys seen; the oldest are "
			    "forgotten from now on", OVERLAY_KEYS_MAX);
		k->wrapped_logged = true;
		overlay_keys_unindex(k, k->next);
		memcpy(k->ring[k->next], d, OVERLAY_KEY_DIGEST_LEN);
		overlay_keys_index(k, k->next);
		k->next = (k->next + 1) % OVERLAY_KEYS_MAX;
		return 0;
	}
	if (k->n == k->cap) {
		/* Digests are not secret, but keep no stale copies anyway. */
		size_t cap = k->cap ? k->cap * 2 : 64;

		if ((r = calloc(cap, sizeof(*k->ring))) == NULL)
			return -ENOMEM;
		if (k->ring != NULL) {
			memcpy(r, k->ring, k->n * sizeof(*k->ring));
			util_wipe(k->ring, k->cap * sizeof(*k->ring));
			free(k->ring);
		}
		k->ring = r;
		k->cap = cap;
	}
	if (2 * (k->n + 1) > k->idxcap) {
		size_t cap = k->idxcap ? k->idxcap * 2 : 128;

		if ((r = calloc(cap, sizeof(*k->idx))) == NULL)
			return -ENOMEM;
		free(k->idx);
		k->idx = r;
		k->idxcap = cap;
		for (i = 0; i < k->n; i++)
			overlay_keys_index(k, i);
	}
	memcpy(k->ring[k->n], d, OVERLAY_KEY_DIGEST_LEN);
	overlay_keys_index(k, k->n++);
	return 0;
}

int
overlay_keys_add(struct overlay_keys *k, const struct overlay_sa_params *p)
{
	uint8_t d[OVERLAY_KEY_DIGEST_LEN];

	overlay_keys_digest(k, p, d);
	return overlay_keys_add_digest(k, d);
}
