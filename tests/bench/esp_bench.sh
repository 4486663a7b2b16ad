#!/bin/sh
# esp_bench.sh — ESP seal+open of 1400-byte packets per second on one core
# (tests/bench/esp_bench.c), against the bare AES-256-GCM of
# `openssl speed -evp aes-256-gcm -bytes 1400` run here: the reference
# does one encryption per packet, a seal+open pair costs two, so the
# reference rate of pairs is its bytes/s / 1400 / 2.  Figures only.
# Usage: sh tests/bench/esp_bench.sh [SECONDS]
set -eu
BUILD=${BUILD:-build}
bin="$BUILD/tests/bench/esp_bench"
secs=${1:-3}
make --no-print-directory "$bin" >/dev/null
command -v openssl >/dev/null 2>&1 || { echo "esp_bench: openssl(1) missing" >&2; exit 1; }
ours=$("$bin" "$secs")
echo "$ours"
ref=$(openssl speed -mr -seconds "$secs" -evp aes-256-gcm -bytes 1400 2>/dev/null |
	sed -n 's/^+F:[0-9]*:[^:]*:\([0-9.]*\)$/\1/p')
[ -n "$ref" ] || { echo "esp_bench: cannot read openssl speed output" >&2; exit 1; }
pairs=$(echo "$ours" | sed -n 's/.*: \([0-9]*\) pairs\/s.*/\1/p')
awk -v r="$ref" -v p="$pairs" 'BEGIN {
	ref = r / 1400 / 2
	printf "openssl speed aes-256-gcm 1400 B: %.0f bytes/s = %.0f pairs/s; esp_bench/reference %.2f\n", r, ref, p / ref
}'
