#!/bin/sh
# topo_bench.sh — intent compiler at scale: full compile of a 1,000-site
# full mesh (time, peak RSS) and one-site add/change/remove recompute
# times, with ratios against the issue 3 targets and in-run references.
# Runs standalone from the top of the tree (builds the program if needed)
# or from `make bench`.  Usage: sh tests/bench/topo_bench.sh [SITES]
set -eu
BUILD=${BUILD:-build}
bin="$BUILD/tests/bench/topo_bench"
if [ ! -x "$bin" ]; then
	make --no-print-directory "$bin" >/dev/null
fi
echo "== topo_bench: intent compiler, ${1:-1000}-site full mesh"
"$bin" "${1:-1000}"
