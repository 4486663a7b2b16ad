#!/bin/sh
# dash_asan.sh — the dashboard's server side (HTTPS, static files, the
# event stream with streams parked and resumed, health history) with
# meshwan-controller built with AddressSanitizer, LeakSanitizer and
# UBSan (build-san/): any sanitizer report or a non-zero exit at shutdown
# fails it.  The same pattern as tests/ctl/ctl_asan.sh.
set -eu
top=$(pwd)
dir=$(mktemp -d /tmp/meshwan-dash-asan.$$.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s -C "$top" \
	SANITIZE=address,undefined build-san/controller/meshwan-controller
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$dir/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24:log_path=$dir/ubsan"
export CTLD="$top/build-san/controller/meshwan-controller"
for t in https_web events_stream; do
	echo "== $t with the sanitized controller"
	sh "$top/tests/ctl/$t.sh" || { cat "$dir"/*san* 2>/dev/null; echo "FAIL: $t"; exit 1; }
done
if ls "$dir"/asan* "$dir"/ubsan* >/dev/null 2>&1; then
	cat "$dir"/asan* "$dir"/ubsan* 2>/dev/null
	echo "FAIL: sanitizer reports"
	exit 1
fi
echo "dash_asan: ok"
