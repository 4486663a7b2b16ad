#!/bin/sh
# api_asan.sh — the REST API and the CLI built with AddressSanitizer and
# UBSan: the unit test (real HTTP server, store, JSON handling), then the
# curl, meshwanctl and slow-client end-to-end tests against a
# sanitizer-built server with a sanitizer-built CLI.  Any report (including leaks at exit) fails.
# Builds into build-san/ only what these need.
set -u
top=${MESHWAN_TOP:-$(pwd)}
log=$(mktemp /tmp/meshwan-api-asan.$$.XXXXXX)
trap 'rm -f "$log"' EXIT INT TERM
san=build-san
# BUILD is exported by tests/run for the normal build: override it.
make -C "$top" -s SANITIZE=address,undefined BUILD=$san \
	$san/tests/unit/test_api $san/tests/api/api_test_server \
	$san/controller/meshwanctl $san/tests/api/slowloris >"$log" 2>&1 || { cat "$log"; echo "FAIL: sanitizer build"; exit 1; }
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99
"$top/$san/tests/unit/test_api" >"$log" 2>&1
rc=$?
cat "$log"
if grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error:' "$log"; then
	echo "FAIL: sanitizer report in test_api"
	exit 1
fi
[ $rc -eq 0 ] || { echo "FAIL: test_api under ASan exited $rc"; exit 1; }
for t in rest_curl meshwanctl slowloris; do
	BUILD=$san SERVER=$top/$san/tests/api/api_test_server \
	CTL=$top/$san/controller/meshwanctl sh "$top/tests/api/$t.sh" || {
		echo "FAIL: $t with sanitizer builds"; exit 1; }
done
echo "api_asan: clean"
