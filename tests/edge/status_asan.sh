#!/bin/sh
# status_asan.sh — test_edge_status built with AddressSanitizer and UBSan:
# the control socket's thread, the metrics server and the client with
# every bound exercised.  Any report (leaks at exit included) fails.
# Builds into build-san/ only what it needs.
set -u
top=${MESHWAN_TOP:-$(pwd)}
log=$(mktemp /tmp/meshwan-status-asan.$$.XXXXXX)
trap 'rm -f "$log"' EXIT INT TERM
san=build-san
make -C "$top" -s SANITIZE=address,undefined BUILD=$san \
	$san/tests/unit/test_edge_status >"$log" 2>&1 ||
	{ cat "$log"; echo "FAIL: sanitizer build"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99
"$top/$san/tests/unit/test_edge_status" >"$log" 2>&1
rc=$?
cat "$log"
if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
    -e 'runtime error:' "$log"; then
	echo "FAIL: sanitizer report in test_edge_status"
	exit 1
fi
[ $rc -eq 0 ] || { echo "FAIL: test_edge_status under ASan exited $rc"; exit 1; }
echo "status_asan: clean"
