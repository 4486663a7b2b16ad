#!/bin/sh
# api_asan.sh — the REST API unit test (real HTTP server, store, JSON
# handling) built with AddressSanitizer and UBSan; any report fails.
# Builds into build-san/ (only what test_api needs).
set -u
top=${MESHWAN_TOP:-$(pwd)}
log=$(mktemp /tmp/meshwan-api-asan.$$.XXXXXX)
trap 'rm -f "$log"' EXIT INT TERM
# BUILD is exported by tests/run for the normal build: override it.
make -C "$top" -s SANITIZE=address,undefined BUILD=build-san \
	build-san/tests/unit/test_api >"$log" 2>&1 || { cat "$log"; echo "FAIL: sanitizer build"; exit 1; }
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99 \
	"$top/build-san/tests/unit/test_api" >"$log" 2>&1
rc=$?
cat "$log"
if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' "$log"; then
	echo "FAIL: sanitizer report"
	exit 1
fi
[ $rc -eq 0 ] || { echo "FAIL: test_api under ASan exited $rc"; exit 1; }
echo "api_asan: clean"
