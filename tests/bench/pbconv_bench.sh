#!/bin/sh
# tests/bench/pbconv_bench.sh — the conversion layer on one edge's intent of
# a 1,000-site full mesh (999 tunnels) and on a 10,000-tunnel hub, with
# protobuf-c's bare unpack and plain SHA-256 as same-run references.
set -eu
BUILD=${BUILD:-build}
bin="$BUILD/tests/bench/pbconv_bench"
[ -x "$bin" ] || { echo "pbconv_bench: $bin not built" >&2; exit 1; }
"$bin" 999 30
"$bin" 10000 5
