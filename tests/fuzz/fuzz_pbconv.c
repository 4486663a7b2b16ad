/*
 * fuzz_pbconv.c — libFuzzer target for the decoders of proto/pbconv.c,
 * the code every byte from the network passes through.
 *
 * Each input is decoded as every message type.  Whatever a decoder accepts
 * must encode again (the encoders run the same validation, so a refusal
 * would mean decode and validation disagree), and decoding that encoding
 * must give back the same bytes on re-encoding.  An accepted snapshot must
 * also have a convergence hash, and an accepted delta applied to a small
 * intent must leave a valid one (or fail and change nothing).  ASan catches
 * overreads and leaks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"
#include "proto/pbconv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

/* enc(x) must decode and re-encode to the very same bytes. */
#define STABLE(type, x)                                                        \
	do {                                                                   \
		struct msg_##type y_;                                          \
		uint8_t *b1_, *b2_;                                            \
		size_t l1_, l2_;                                               \
		CHECK(pbconv_encode_##type(&(x), &b1_, &l1_) == 0);            \
		CHECK(pbconv_decode_##type(b1_, l1_, &y_, NULL, 0) == 0);      \
		CHECK(pbconv_encode_##type(&y_, &b2_, &l2_) == 0);             \
		CHECK(l1_ == l2_ && memcmp(b1_, b2_, l1_) == 0);               \
		msg_##type##_free(&y_);                                        \
		free(b1_);                                                     \
		free(b2_);                                                     \
	} while (0)

/*
 * A small valid intent at `version`: tunnels 1..3 on link "inet", for
 * applying fuzzed deltas to.
 */
static int
fuzz_base_intent(struct msg_intent *m, uint64_t version)
{
	memset(m, 0, sizeof(*m));
	m->version = version;
	m->site.id = 1;
	strcpy(m->site.name, "a");
	m->site.asn = 65000;
	strcpy(m->site.links[0].name, "inet");
	if (msg_addr_parse("192.0.2.1", &m->site.links[0].address) == -1)
		return -1;
	m->site.n_links = 1;
	if ((m->tunnels = calloc(3, sizeof(*m->tunnels))) == NULL)
		return -1;
	m->n_tunnels = 3;
	for (size_t i = 0; i < 3; i++) {
		struct msg_tunnel *t = &m->tunnels[i];

		t->id = i + 1;
		strcpy(t->local_link, "inet");
		strcpy(t->remote_link, "inet");
		t->encap = MSG_ENCAP_GRE;
		t->crypto.cipher = MSG_CIPHER_AES_GCM_128;
		t->crypto.esn = true;
		t->peer.site_id = 2;
		strcpy(t->peer.name, "b");
		t->bgp.remote_asn = 65001;
		if (msg_addr_parse("198.51.100.1", &t->remote_address) == -1 ||
		    msg_prefix_parse("10.0.0.0/31", false,
		    &t->inner_local) == -1 ||
		    msg_addr_parse("10.0.0.1", &t->inner_remote) == -1)
			return -1;
		t->bgp.address = t->inner_remote;
	}
	return msg_validate_intent(m, NULL, 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg_controller_message c;
	struct msg_edge_message e;
	struct msg_enroll_request rq;
	struct msg_renew_request rn;
	struct msg_enroll_response rs;
	uint8_t hash[MSG_HASH_LEN];
	char err[PBCONV_ERR_LEN];

	if (pbconv_decode_controller_message(data, size, &c, err,
	    sizeof(err)) == 0) {
		STABLE(controller_message, c);
		if (c.kind == MSG_CONTROLLER_SNAPSHOT)
			CHECK(pbconv_intent_hash(&c.u.snapshot, hash) == 0);
		/* An applied delta leaves a valid intent, or nothing changed. */
		if (c.kind == MSG_CONTROLLER_DELTA) {
			struct msg_intent base;

			CHECK(fuzz_base_intent(&base,
			    c.u.delta.from_version) == 0);
			if (msg_intent_apply_delta(&base, &c.u.delta, err,
			    sizeof(err)) == 0)
				CHECK(pbconv_intent_hash(&base, hash) == 0);
			else
				CHECK(base.version == c.u.delta.from_version &&
				    base.n_tunnels == 3);
			msg_intent_free(&base);
		}
		msg_controller_message_free(&c);
	} else {
		CHECK(c.kind == MSG_CONTROLLER_NONE && err[0] != '\0');
	}
	if (pbconv_decode_edge_message(data, size, &e, err, sizeof(err)) == 0) {
		STABLE(edge_message, e);
		msg_edge_message_free(&e);
	} else {
		CHECK(e.kind == MSG_EDGE_NONE && err[0] != '\0');
	}
	if (pbconv_decode_enroll_request(data, size, &rq, err,
	    sizeof(err)) == 0) {
		STABLE(enroll_request, rq);
		msg_enroll_request_free(&rq);
	}
	if (pbconv_decode_enroll_response(data, size, &rs, err,
	    sizeof(err)) == 0) {
		STABLE(enroll_response, rs);
		msg_enroll_response_free(&rs);
	}
	if (pbconv_decode_renew_request(data, size, &rn, err,
	    sizeof(err)) == 0) {
		STABLE(renew_request, rn);
		msg_renew_request_free(&rn);
	}
	return 0;
}
