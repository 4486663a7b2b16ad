#!/bin/sh
# pg_asan.sh — the two-replica scenarios with meshwan-controller built
# with AddressSanitizer, LeakSanitizer and UBSan (build-san/): keys,
# renewals and rekeys across replicas (pg_ha_keys), SIGKILL of a replica
# under writes (pg_failover), a database outage (pg_outage, 5 s here).
# Any sanitizer report, or a non-zero exit of a replica stopped with
# SIGTERM (LeakSanitizer's exit code), fails it.  ctl_asan covers the
# single-replica PostgreSQL tests.
set -eu
top=$(pwd)
dir=$(mktemp -d /tmp/meshwan-pg-asan.$$.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s -C "$top" \
	SANITIZE=address,undefined build-san/controller/meshwan-controller
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$dir/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24:log_path=$dir/ubsan"
export CTLD="$top/build-san/controller/meshwan-controller"
export PG_OUTAGE_S=5 FAILOVER_EDGES=4
for t in pg_ha_keys pg_failover pg_outage; do
	echo "== $t with the sanitized controller"
	sh "$top/tests/ctl/$t.sh" || { cat "$dir"/*san* 2>/dev/null; echo "FAIL: $t"; exit 1; }
done
if ls "$dir"/asan* "$dir"/ubsan* >/dev/null 2>&1; then
	cat "$dir"/asan* "$dir"/ubsan* 2>/dev/null
	echo "FAIL: sanitizer reports"
	exit 1
fi
echo "pg_asan: ok"
