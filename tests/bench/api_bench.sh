#!/bin/sh
# api_bench.sh — REST change cost on a large network (default 1,000-site
# full mesh with its ~500k tunnels persisted): POST/PATCH of a site over
# HTTP, including validation, the dry-run compile, the audit entry and the
# commit, against a bare full compile measured in the same run.
# The second run forces the dry-run compile (pool between the real need
# and the L(L-1)/2 bound).  Usage: sh tests/bench/api_bench.sh [SITES]
set -eu
BUILD=${BUILD:-build}
bin="$BUILD/tests/bench/api_bench"
if [ ! -x "$bin" ]; then
	make --no-print-directory "$bin" >/dev/null
fi
echo "== api_bench: REST changes on a ${1:-1000}-site full mesh, roomy pool (no compile needed)"
"$bin" "${1:-1000}" 1 100.64.0.0/10
echo "== api_bench: 500 sites x 2 links, tight pool /13 (dry-run compile on every change)"
"$bin" 500 2 100.64.0.0/13
