#!/bin/sh
# intent_mem_bench.sh — memory of every edge's kept intent in a full mesh
# (default 1,000 sites) with peer certificates shared, against the same
# intents with a copy per tunnel (measured in the same run).
# Usage: sh tests/bench/intent_mem_bench.sh [SITES]
set -eu
BUILD=${BUILD:-build}
bin="$BUILD/tests/bench/intent_mem_bench"
if [ ! -x "$bin" ]; then
	make --no-print-directory "$bin" >/dev/null
fi
echo "== intent_mem_bench: kept intents of a ${1:-1000}-site full mesh"
"$bin" "${1:-1000}"
