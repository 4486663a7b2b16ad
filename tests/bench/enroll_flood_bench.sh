#!/bin/sh
# enroll_flood_bench.sh — how much a flood of bad Enroll calls delays a
# connected edge's changes, in the tail.  Runs tests/ctl/enroll_flood.sh
# (which asserts that every change arrives and that the median hardly
# moves) and reports its figures against the speed goal that `make test`
# does not assert: the flood's p95 within max(4 × the baseline p95,
# baseline p95 + 150 ms), both measured in turns in the same run.
# Figures only; no assertion about speed.
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
export MESHWAN_TOP
out=$(sh "$MESHWAN_TOP/tests/ctl/enroll_flood.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^(baseline|flood) '
[ "$rc" = 0 ] || { echo "$out" | tail -20; echo "FAIL: enroll_flood did not pass"; exit 1; }
bp95=$(echo "$out" | sed -n 's/^baseline .*p95=\([0-9.]*\) .*/\1/p')
fp95=$(echo "$out" | sed -n 's/^flood p50.* p95=\([0-9.]*\) .*/\1/p')
[ -n "$bp95" ] && [ -n "$fp95" ] || { echo "FAIL: no p95 figures"; exit 1; }
awk -v b="$bp95" -v f="$fp95" 'BEGIN {
	g = 4 * b; if (b + 150 > g) g = b + 150
	printf "flood p95 %.1f ms, goal <= %.1f ms (baseline p95 %.1f ms): %s (%.2fx of the goal)\n",
	    f, g, b, (f <= g ? "met" : "MISSED"), f / g
}'
