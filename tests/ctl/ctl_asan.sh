#!/bin/sh
# ctl_asan.sh — meshwan-controller built with AddressSanitizer,
# LeakSanitizer and UBSan (build-san/) runs the edge session, peer keys and
# operator rekey, backpressure, restart, patching, time-based rekey,
# SA key agreement, edge rekey requests, hostile-edge, certificate
# renewal and encapsulation switch scenarios (enrollment, sessions,
# deltas, refusals, revocation, rekeys, key checks, overflowing queues,
# patched intents, restart with clean shutdown, stalled and refused
# streams, rate limits, re-enrollment, expiry, renewal, a lost
# enrollment answer sent again, re-allocated tunnels' fresh SA epochs,
# PostgreSQL store with an outage, two replicas on one PostgreSQL
# database).  Any
# sanitizer report, or a non-zero exit of the controller (LeakSanitizer's
# exit code at shutdown), fails it.
set -eu
. "${MESHWAN_TOP:-.}/tests/lib/san_ctl.sh"
san_ctl_start ctl_asan
export HOSTILE_RSS_CHECK=0
san_ctl_run edge_session peer_keys backpressure restart patch_check rekey_time hostile \
    group_commit revoke sa_keys rekey_request cert_renew enroll_replay \
    pg_store pg_replicas encap_epochs
