/*
 * intent_mem_bench.c — what the controller's kept intents cost in memory:
 * every edge's intent of an N-site full mesh (default 1,000 sites, a
 * 600-byte certificate each, as a P-256 edge certificate), built as the
 * session layer builds them (intent_build), with peer certificates shared
 * (one blob per site), against the same intents holding a private copy of
 * the peer's certificate in every tunnel (how they were held before):
 * the reference measured in the same run.  Heap bytes in use are read
 * from mallinfo2; the encodings of both are compared (byte-identical).
 *
 * usage: intent_mem_bench [SITES]   (2..2000, default 1000)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/intent.h"
#include "controller/topo.h"
#include "lib/log.h"
#include "lib/util.h"
#include "proto/msg.h"
#include "proto/pbconv.h"

#define BENCH_CERT_LEN 600

static struct msg_blob *bench_certs;

static void
bench_prefixes(void *arg, uint64_t site, const struct model_prefix **p,
    size_t *n)
{
	(void)arg;
	(void)site;
	*p = NULL;
	*n = 0;
}

static const struct msg_blob *
bench_cert(void *arg, uint64_t site)
{
	(void)arg;
	return &bench_certs[site];
}

static void
bench_spis(void *arg, uint64_t tunnel, uint64_t site, struct intent_spis *out)
{
	(void)arg;
	memset(out, 0, sizeof(*out));
	out->in.spi = (uint32_t)(0x1000 + tunnel * 2 + (site & 1));
	out->in.sa_epoch = 1;
	out->out.spi = (uint32_t)(0x1000 + tunnel * 2 + !(site & 1));
	out->out.sa_epoch = 1;
}

static size_t
bench_heap(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Encoded snapshot of m (borrowed into the message). */
static uint8_t *
bench_encode(const struct msg_intent *m, size_t *len)
{
	struct msg_controller_message cm;
	uint8_t *buf = NULL;

	memset(&cm, 0, sizeof(cm));
	cm.kind = MSG_CONTROLLER_SNAPSHOT;
	cm.u.snapshot = *m;
	if (pbconv_encode_controller_message(&cm, &buf, len) == -1)
		fatalx("encode");
	return buf;
}

int
main(int argc, char **argv)
{
	struct model_site *sites;
	struct model_policy pol;
	struct model_crypto cr;
	struct model_error err;
	struct topo_input in;
	struct topo_output *t = NULL;
	const struct intent_lookup lk = { NULL, bench_prefixes, bench_cert,
	    bench_spis, NULL };
	const uint8_t ca[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct intent_params p;
	struct msg_intent *it;
	uint64_t n = 1000, i;
	uint8_t der[BENCH_CERT_LEN], *e1, *e2;
	size_t h0, shared, priv, l1, l2;
	char why[256];

	log_init("intent_mem_bench", true);
	if (argc > 1 && util_parse_u64(argv[1], 2, 2000, &n) == -1)
		fatalx("usage: intent_mem_bench [SITES 2..2000]");
	sites = calloc(n, sizeof(*sites));
	bench_certs = calloc(n + 1, sizeof(*bench_certs));
	it = calloc(n + 1, sizeof(*it));
	if (sites == NULL || bench_certs == NULL || it == NULL)
		fatal("calloc");
	for (i = 0; i < n; i++) {
		struct model_site *s = &sites[i];

		s->id = i + 1;
		snprintf(s->name, sizeof(s->name), "site-%llu",
		    (unsigned long long)s->id);
		s->role = MODEL_ROLE_SPOKE;
		s->asn = 4200000000u + (uint32_t)i;
		s->n_links = 1;
		snprintf(s->links[0].name, sizeof(s->links[0].name), "inet");
		snprintf(s->links[0].address, sizeof(s->links[0].address),
		    "10.%llu.%llu.1", (unsigned long long)(s->id >> 8),
		    (unsigned long long)(s->id & 255));
		memset(der, (int)(s->id & 255), sizeof(der));
		der[0] = 0x30;
		if (msg_blob_set(&bench_certs[s->id], der, sizeof(der)) == -1)
			fatal("blob");
	}
	model_policy_default(&pol);
	pol.topology = MODEL_TOPO_FULL_MESH;
	if (model_prefix_parse("100.64.0.0/10", false, &pol.pool, "pool",
	    &err) == -1)
		fatalx("pool");
	model_crypto_default(&cr);
	in = (struct topo_input){ &pol, &cr, sites, (size_t)n };
	if (topo_compile(&in, NULL, &t, NULL, &err) == -1)
		fatalx("compile: %s", err.message);
	/* Designated: the struct gained a memo and IPv6 pools after this
	 * bench was written, and positional fields broke the build. */
	p = (struct intent_params){ .topo = t, .lookup = &lk, .ca_der = ca,
	    .ca_der_len = sizeof(ca), .keepalive_s = 15,
	    .headless_grace_s = 1800 };

	h0 = bench_heap();
	for (i = 1; i <= n; i++)
		if (intent_build(&p, i, 1, &it[i], why, sizeof(why)) == -1)
			fatalx("build: %s", why);
	shared = bench_heap() - h0;
	e1 = bench_encode(&it[n / 2], &l1);

	/* The reference: each tunnel its own copy of the peer's bytes. */
	for (i = 1; i <= n; i++)
		for (size_t k = 0; k < it[i].n_tunnels; k++) {
			struct msg_blob *b = &it[i].tunnels[k].peer.certificate_der;

			if (msg_blob_set(b, b->data, b->len) == -1)
				fatal("copy");
		}
	priv = bench_heap() - h0;
	e2 = bench_encode(&it[n / 2], &l2);

	printf("%llu-site full mesh, %llu tunnel ends, %d-byte certificates\n",
	    (unsigned long long)n, (unsigned long long)(n * (n - 1)),
	    BENCH_CERT_LEN);
	printf("intents with certificates copied per tunnel (reference): "
	    "%8.1f MiB\n", (double)priv / 1048576);
	printf("intents with certificates shared:                        "
	    "%8.1f MiB  ratio %.2f\n", (double)shared / 1048576,
	    (double)shared / (double)priv);
	printf("snapshot encodings identical: %s (%zu bytes)\n",
	    l1 == l2 && memcmp(e1, e2, l1) == 0 ? "yes" : "NO", l1);
	if (l1 != l2 || memcmp(e1, e2, l1) != 0)
		return 1;
	free(e1);
	free(e2);
	for (i = 1; i <= n; i++) {
		msg_intent_free(&it[i]);
		msg_blob_free(&bench_certs[i]);
	}
	topo_free(t);
	free(it);
	free(bench_certs);
	free(sites);
	return 0;
}
