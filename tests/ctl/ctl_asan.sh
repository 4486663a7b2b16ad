#!/bin/sh
# ctl_asan.sh — meshwan-controller built with AddressSanitizer,
# LeakSanitizer and UBSan (build-san/) runs the edge session, peer keys and
# operator rekey, backpressure, restart, patching, time-based rekey,
# SA key agreement, edge rekey requests, hostile-edge and certificate
# renewal scenarios (enrollment, sessions, deltas, refusals, revocation,
# rekeys, key checks, overflowing queues, patched intents, restart with
# clean shutdown, stalled and refused streams, rate limits,
# re-enrollment, expiry, renewal, PostgreSQL store with an outage, two
# replicas on one PostgreSQL database).  Any
# sanitizer report, or a non-zero exit of the controller (LeakSanitizer's
# exit code at shutdown), fails it.
set -eu
top=$(pwd)
dir=$(mktemp -d /tmp/meshwan-ctl-asan.$$.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
# A nested make: drop the outer make's settings (and BUILD: the sanitizer
# build picks its own folder).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s -C "$top" \
	SANITIZE=address,undefined build-san/controller/meshwan-controller
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$dir/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24:log_path=$dir/ubsan"
export CTLD="$top/build-san/controller/meshwan-controller"
export HOSTILE_RSS_CHECK=0
for t in edge_session peer_keys backpressure restart patch_check rekey_time hostile \
    group_commit revoke sa_keys rekey_request cert_renew pg_store pg_replicas; do
	echo "== $t with the sanitized controller"
	sh "$top/tests/ctl/$t.sh" || { cat "$dir"/*san* 2>/dev/null; echo "FAIL: $t"; exit 1; }
done
if ls "$dir"/asan* "$dir"/ubsan* >/dev/null 2>&1; then
	cat "$dir"/asan* "$dir"/ubsan* 2>/dev/null
	echo "FAIL: sanitizer reports"
	exit 1
fi
echo "ctl_asan: ok"
