/*
 * pbconv_bench.c — cost of the conversion layer on a large intent, next to
 * references measured in the same run: protobuf-c's own unpack of the same
 * bytes (what decoding would cost without conversion and validation) and
 * SHA-256 over the encoded bytes (the floor of a full-state hash).  Then
 * what an edge does per delta of a one-site change (one tunnel in, the
 * previous round's out): apply it in place, and rehash it in full or from
 * its kept per-tunnel digests (pbconv_intent_hash_update).
 *
 * Usage: pbconv_bench [TUNNELS [ROUNDS]]   (defaults 999 and 30: one edge
 * of a 1,000-site full mesh).  Prints medians; asserts nothing about speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/util.h"
#include "meshwan/v1/meshwan.pb-c.h"
#include "proto/msg.h"
#include "proto/pbconv.h"

#define MAX_ROUNDS 1000

static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp);
	return v[n / 2];
}

/* A tunnel as the controller would send it, with a 600-byte certificate. */
static int
bench_tunnel(struct msg_tunnel *t, uint64_t id)
{
	uint8_t cert[600];
	char buf[32];

	memset(t, 0, sizeof(*t));
	t->id = id;
	strcpy(t->local_link, "inet");
	strcpy(t->remote_link, "inet");
	t->encap = MSG_ENCAP_GRE;
	snprintf(buf, sizeof(buf), "100.%u.%u.%u/31", (unsigned)(id >> 15) & 63,
	    (unsigned)(id >> 7) & 255, (unsigned)(id << 1) & 255);
	if (msg_addr_parse("203.0.113.9", &t->remote_address) == -1 ||
	    msg_prefix_parse(buf, false, &t->inner_local) == -1)
		return -1;
	t->inner_remote = t->inner_local.addr;
	t->inner_remote.bytes[3] |= 1;
	t->crypto.cipher = MSG_CIPHER_AES_GCM_256;
	t->crypto.esn = true;
	t->peer.site_id = id + 1;
	snprintf(t->peer.name, sizeof(t->peer.name), "site-%llu",
	    (unsigned long long)id + 1);
	memset(cert, 0x30, sizeof(cert));
	if (msg_blob_set(&t->peer.certificate_der, cert, sizeof(cert)) == -1)
		return -1;
	for (size_t k = 0; k < 2; k++) {
		t->peer.keys[k].epoch = k + 1;
		memset(t->peer.keys[k].public_key, (int)k + 1, MSG_KEY_LEN);
		t->peer.keys[k].signature_len = 71;
		t->peer.keys[k].not_after = 1900000000;
	}
	t->peer.n_keys = 2;
	t->bgp.address = t->inner_remote;
	t->bgp.remote_asn = 65000 + (uint32_t)(id % 500);
	t->bgp.bfd = true;
	t->sa_in = (struct msg_sa_key_ref){ 0x10000 + (uint32_t)id, 1, 1, 1 };
	t->sa_out = (struct msg_sa_key_ref){ 0x20000 + (uint32_t)id, 1, 1, 1 };
	return 0;
}

int
main(int argc, char **argv)
{
	struct msg_controller_message m, out;
	double enc[MAX_ROUNDS], dec[MAX_ROUNDS], raw[MAX_ROUNDS],
	    full[MAX_ROUNDS], cached[MAX_ROUNDS], sha[MAX_ROUNDS],
	    apply[MAX_ROUNDS], rehash[MAX_ROUNDS], update[MAX_ROUNDS];
	struct pbconv_digest *kept = NULL;
	size_t n_kept = 0;
	uint8_t h2[MSG_HASH_LEN];
	uint64_t n = 999, rounds = 30, t0;
	uint8_t h[MSG_HASH_LEN], *dig, *buf = NULL;
	unsigned int hl;
	size_t len = 0;
	struct msg_intent *in = &m.u.snapshot;

	if ((argc > 1 && util_parse_u64(argv[1], 1, MSG_LIST_MAX, &n) == -1) ||
	    (argc > 2 && util_parse_u64(argv[2], 1, MAX_ROUNDS,
	    &rounds) == -1)) {
		fprintf(stderr, "usage: pbconv_bench [TUNNELS [ROUNDS]]\n");
		return 2;
	}
	memset(&m, 0, sizeof(m));
	m.kind = MSG_CONTROLLER_SNAPSHOT;
	in->version = 1;
	in->site.id = 1;
	strcpy(in->site.name, "hub");
	in->site.asn = 64512;
	strcpy(in->site.links[0].name, "inet");
	if (msg_addr_parse("192.0.2.1", &in->site.links[0].address) == -1)
		return 1;
	in->site.n_links = 1;
	if ((in->tunnels = calloc(n, sizeof(*in->tunnels))) == NULL ||
	    (dig = malloc(n * MSG_HASH_LEN)) == NULL)
		return 1;
	for (uint64_t i = 0; i < n; i++)
		if (bench_tunnel(&in->tunnels[i], i + 1) == -1)
			return 1;
	in->n_tunnels = n;
	for (uint64_t i = 0; i < n; i++)
		if (pbconv_tunnel_digest(&in->tunnels[i],
		    dig + i * MSG_HASH_LEN) == -1)
			return 1;

	for (uint64_t r = 0; r < rounds; r++) {
		Meshwan__V1__ControllerMessage *pb;

		free(buf);
		t0 = util_mono_ns();
		if (pbconv_encode_controller_message(&m, &buf, &len) == -1)
			return 1;
		enc[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (pbconv_decode_controller_message(buf, len, &out, NULL,
		    0) == -1)
			return 1;
		dec[r] = (double)(util_mono_ns() - t0) / 1e6;
		msg_controller_message_free(&out);

		t0 = util_mono_ns();
		pb = meshwan__v1__controller_message__unpack(NULL, len, buf);
		if (pb == NULL)
			return 1;
		meshwan__v1__controller_message__free_unpacked(pb, NULL);
		raw[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (pbconv_intent_hash(in, h) == -1)
			return 1;
		full[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (pbconv_intent_hash_digests(in, dig, h) == -1)
			return 1;
		cached[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (EVP_Digest(buf, len, h, &hl, EVP_sha256(), NULL) != 1)
			return 1;
		sha[r] = (double)(util_mono_ns() - t0) / 1e6;
	}

	/* An edge taking one-site deltas: tunnel n + r + 1 comes, the one
	 * the previous delta brought goes. */
	if (pbconv_intent_hash_update(in, NULL, &kept, &n_kept, h) == -1)
		return 1;
	for (uint64_t r = 0; r < rounds; r++) {
		struct msg_intent_delta d;
		uint64_t gone = n + r;

		memset(&d, 0, sizeof(d));
		d.from_version = in->version;
		d.version = in->version + 1;
		if ((d.upsert = calloc(1, sizeof(*d.upsert))) == NULL ||
		    bench_tunnel(&d.upsert[0], n + r + 1) == -1)
			return 1;
		d.n_upsert = 1;
		if (r > 0) {
			if ((d.remove = malloc(sizeof(*d.remove))) == NULL)
				return 1;
			d.remove[0] = gone;
			d.n_remove = 1;
		}

		t0 = util_mono_ns();
		if (msg_intent_apply_delta(in, &d, NULL, 0) == -1)
			return 1;
		apply[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (pbconv_intent_hash(in, h) == -1)
			return 1;
		rehash[r] = (double)(util_mono_ns() - t0) / 1e6;

		t0 = util_mono_ns();
		if (pbconv_intent_hash_update(in, &d, &kept, &n_kept, h2) == -1)
			return 1;
		update[r] = (double)(util_mono_ns() - t0) / 1e6;
		if (memcmp(h, h2, MSG_HASH_LEN) != 0) {
			fprintf(stderr, "pbconv_bench: incremental hash differs "
			    "from the full one\n");
			return 1;
		}
		msg_intent_delta_free(&d);
	}
	printf("pbconv: snapshot of %llu tunnels, %zu bytes, median of %llu "
	    "rounds\n", (unsigned long long)n, len,
	    (unsigned long long)rounds);
	{
		double e = bench_median(enc, (int)rounds);
		double d = bench_median(dec, (int)rounds);
		double u = bench_median(raw, (int)rounds);
		double f = bench_median(full, (int)rounds);
		double c = bench_median(cached, (int)rounds);
		double s = bench_median(sha, (int)rounds);

		printf("  encode                       %8.3f ms\n", e);
		printf("  decode + validate            %8.3f ms  (%.1fx protobuf-c "
		    "unpack alone: %.3f ms)\n", d, d / u, u);
		printf("  convergence hash, full       %8.3f ms  (%.1fx SHA-256 of "
		    "the encoding: %.3f ms)\n", f, f / s, s);
		printf("  convergence hash, cached     %8.3f ms  (%.0fx faster than "
		    "full)\n", c, f / c);
	}
	{
		double a = bench_median(apply, (int)rounds);
		double f = bench_median(rehash, (int)rounds);
		double u = bench_median(update, (int)rounds);

		printf("edge, per one-site delta (1 tunnel in, 1 out):\n");
		printf("  apply the delta              %8.3f ms\n", a);
		printf("  hash, full                   %8.3f ms\n", f);
		printf("  hash, from kept digests      %8.3f ms  (%.0fx faster than "
		    "full)\n", u, f / u);
	}
	free(kept);
	free(buf);
	free(dig);
	msg_controller_message_free(&m);
	return 0;
}
