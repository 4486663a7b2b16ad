/*
 * fuzz_uesp_rx.c — libFuzzer target for uesp's inbound path past ESP:
 * uesp_tunnel_rx (keepalive/IKE/SPI dispatch, next-header check, GRE and
 * UDP/VXLAN decapsulation) and the TCP coalescing of what it delivers
 * (uesp_gso_coalesce_*), plus the segmentation of TUN super-packets
 * (uesp_gso_split) on arbitrary virtio headers.
 *
 * Input: one mode byte, then the body.  Mode bit 0 picks the tunnel (GRE
 * or VXLAN).  Bits 1-2: 0 = the body is a datagram as received; 1 =
 * "authentic": byte 1 of the body is the next header and the rest the
 * plaintext, sealed with the tunnel's key first (forged packets never pass
 * the ICV, so this is how the decapsulation code gets fuzzed); 2 = the
 * body is a virtio_net_hdr followed by a packet read from a TUN.  Bodies
 * are copied to buffers of exactly their size so AddressSanitizer sees any
 * read past them.  With FUZZ_SEED_DIR set, seeds are written there.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "overlay/uesp/uesp_gso.h"
#include "overlay/uesp/uesp_tunnel.h"

#define FUZZ_SPI 0x1001

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct uesp_tunnel *fuzz_rx[2];
static struct esp_sa *fuzz_tx[2];
static struct uesp_gro fuzz_gro;
static uint8_t fuzz_buf[UESP_BUF_LEN];
static size_t fuzz_sink;

static struct uesp_tunnel *
fuzz_tunnel(enum overlay_encap encap, struct esp_sa **tx)
{
	struct overlay_tunnel_params p;
	struct overlay_sa_params s;
	struct esp_sa_params e;
	struct uesp_tunnel *t;

	memset(&p, 0, sizeof(p));
	p.id = 1;
	p.encap = encap;
	p.vni = encap == OVERLAY_ENCAP_VXLAN ? 42 : 0;
	p.mtu = 1400;
	overlay_addr_parse("192.0.2.2", &p.remote);
	/* Any inner source: these exercise decapsulation, not the filter. */
	overlay_prefix_parse("0.0.0.0/0", &p.allowed[0]);
	overlay_prefix_parse("::/0", &p.allowed[1]);
	p.nallowed = 2;
	t = uesp_tunnel_new(&p);
	memset(&s, 0, sizeof(s));
	s.tunnel_id = 1;
	s.dir = OVERLAY_DIR_IN;
	s.spi = FUZZ_SPI;
	s.cipher = OVERLAY_AES_GCM_128;
	memset(s.key, 0x42, 16);
	memcpy(s.salt, "salt", 4);
	s.esn = true;
	s.replay_window = 64;
	if (t == NULL || uesp_tunnel_sa_insert(t, uesp_tunnel_sa_new(&s, 0)) != 0)
		abort();
	memset(&e, 0, sizeof(e));
	e.spi = FUZZ_SPI;
	e.cipher = ESP_AES_GCM_128;
	e.key = s.key;
	e.salt = s.salt;
	e.esn = true;
	if ((*tx = esp_sa_new(&e, false)) == NULL)
		abort();
	return t;
}

static void
fuzz_seed(const char *dir, const char *name, const uint8_t *b, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-uesp-%s", dir, name);
	if ((f = fopen(path, "wb")) != NULL) {
		fwrite(b, 1, n, f);
		fclose(f);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_SEED_DIR");
	uint8_t s[128];

	log_init("fuzz_uesp_rx", true);
	log_setlevel(LOG_LVL_ERR);
	fuzz_rx[0] = fuzz_tunnel(OVERLAY_ENCAP_GRE, &fuzz_tx[0]);
	fuzz_rx[1] = fuzz_tunnel(OVERLAY_ENCAP_VXLAN, &fuzz_tx[1]);
	if (dir == NULL)
		return 0;
	/* Authentic GRE + IPv4/TCP, and UDP/VXLAN + Ethernet + IPv4. */
	memset(s, 0, sizeof(s));
	s[0] = 2;
	s[1] = 47;
	s[4] = 0x08;
	s[6] = 0x45;
	s[8] = 0;
	s[9] = 60;
	s[15] = 6;
	s[38] = 0x50;
	s[39] = 0x10;
	fuzz_seed(dir, "gre", s, 2 + 4 + 60);
	memset(s, 0, sizeof(s));
	s[0] = 3;
	s[1] = 17;
	s[4] = 0x12;
	s[5] = 0xb5;
	s[7] = 16 + 60;
	s[10] = 0x08;
	s[16] = 42;
	s[18 + 12] = 0x08;
	s[18 + 14] = 0x45;
	fuzz_seed(dir, "vxlan", s, 2 + 16 + 60);
	memset(s, 0, sizeof(s));
	s[0] = 4;
	s[2] = 3;		/* gso_type TCPV4 */
	s[5] = 100;		/* gso_size 100 */
	s[11] = 0x45;
	s[13] = 100;
	s[20] = 6;
	s[11 + 32] = 0x50;
	fuzz_seed(dir, "tso", s, 1 + 10 + 100);
	return 0;
}

static void
fuzz_emit(void *arg, const uint8_t *seg, size_t len)
{
	fuzz_sink += len + seg[0];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uesp_tunnel *t;
	struct virtio_net_hdr h;
	uint8_t *b, *inner;
	size_t n, ilen, plen;
	unsigned mode, sel;

	if (size < 1)
		return 0;
	sel = data[0] & 1;
	t = fuzz_rx[sel];
	mode = (data[0] >> 1) & 3;
	data++;
	size--;
	if (mode == 2) {
		if (size < sizeof(h) || size - sizeof(h) > UESP_GSO_MAX)
			return 0;
		memcpy(&h, data, sizeof(h));
		n = size - sizeof(h);
		if ((b = malloc(n ? n : 1)) == NULL)
			return 0;
		memcpy(b, data + sizeof(h), n);
		(void)uesp_gso_split(&h, b, n, sel ? UESP_GSO_L2 : 0, fuzz_emit,
		    NULL);
		free(b);
		return 0;
	}
	if (mode == 1) {
		if (size < 1 || size - 1 > UESP_INNER_MAX)
			return 0;
		memcpy(fuzz_buf + ESP_HDR_LEN, data + 1, size - 1);
		if (esp_seal(fuzz_tx[sel], fuzz_buf, size - 1,
		    sizeof(fuzz_buf), data[0], &plen) != 0)
			return 0;
		if ((b = malloc(plen)) == NULL)
			return 0;
		memcpy(b, fuzz_buf, plen);
	} else {
		if (size > UESP_BUF_LEN)
			return 0;
		plen = size;
		if ((b = malloc(plen ? plen : 1)) == NULL)
			return 0;
		memcpy(b, data, plen);
	}
	if (uesp_tunnel_rx(t, b, plen, &inner, &ilen) == 1) {
		if (inner < b || inner + ilen > b + plen)
			abort();	/* delivery must stay inside the packet */
		if (ilen <= sizeof(fuzz_gro.pkt) &&
		    (fuzz_gro.len == 0 ||
		    !uesp_gso_coalesce_add(&fuzz_gro, inner, ilen))) {
			if (fuzz_gro.len > 0)
				uesp_gso_coalesce_finish(&fuzz_gro);
			uesp_gso_coalesce_start(&fuzz_gro, sel ? UESP_GSO_L2 : 0,
			    inner, ilen);
		}
	}
	free(b);
	return 0;
}
