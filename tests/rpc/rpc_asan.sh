#!/bin/sh
# rpc_asan — the rpc round-trip, refusal, disconnect (SIGKILL/SIGSTOP of
# sanitized children), shutdown-with-streams-open and teardown (close and
# first-message deadlines) scenarios again, built with AddressSanitizer,
# LeakSanitizer and UBSan (build-san/).  Any sanitizer report fails the
# test.
set -eu
top=$(pwd)
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
# A nested make: drop the outer make's settings (and BUILD: the
# sanitizer build picks its own folder).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s -C "$top" SANITIZE=address,undefined \
	build-san/tests/rpc/rpc_test
bin=build-san/tests/rpc/rpc_test
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24"
# No LeakSanitizer suppression is needed: gRPC frees everything once
# rpc_*_free has called grpc_shutdown_blocking().
for mode in roundtrip mtls disconnect teardown comeback; do
	echo "== $mode under ASan/LSan/UBSan"
	rc=0
	"$bin" "$mode" "$dir" >"$dir/$mode.log" 2>&1 || rc=$?
	grep -v 'listening on' "$dir/$mode.log" | grep -v '^E.*ssl_transport_security' || true
	if [ "$rc" -ne 0 ] || grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$dir/$mode.log"; then
		echo "FAIL: $mode under sanitizers (exit $rc)"
		exit 1
	fi
done
echo "ok: no sanitizer report"
