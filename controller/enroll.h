/*
 * enroll.h — the Enrollment.Enroll handler: a one-time token and a CSR in,
 * a certificate for the token's site out.  See controller/CONTROLLER.md,
 * "Enrollment".
 */
#ifndef MESHWAN_CONTROLLER_ENROLL_H
#define MESHWAN_CONTROLLER_ENROLL_H

#include <stddef.h>
#include <stdint.h>

struct rpc_unary;
struct rpc_peer;

/*
 * rpc_unary_fn for "/meshwan.v1.Enrollment/Enroll"; arg is the struct
 * sessions.  Refusals are gRPC statuses whose message starts with the
 * EnrollError name ("token-used: ...") so that clients can tell them
 * apart: UNAUTHENTICATED for token problems, PERMISSION_DENIED for a
 * revoked site, INVALID_ARGUMENT for a bad request or CSR.
 */
void enroll_handle(struct rpc_unary *call, const uint8_t *req, size_t len,
    const struct rpc_peer *peer, void *arg);

#endif
