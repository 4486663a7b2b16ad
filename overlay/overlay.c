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
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"

static const struct overlay_ops *const overlay_table[] = {
	&uesp_ops,
	&null_ops,
};

static const char *const overlay_table_names[] = { "uesp", "null", NULL };

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
	if (why != NULL) {
		log_warnx("overlay: tunnel %llu SA %u: %s",
		    (unsigned long long)p->tunnel_id, p->spi, why);
		return -EINVAL;
	}
	return 0;
}
