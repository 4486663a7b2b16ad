#!/bin/sh
# enroll_flood_bench.sh — how much a flood of bad Enroll calls delays a
# connected edge's changes.  Runs tests/ctl/enroll_flood.sh (which
# asserts that every change arrives and the rate limit answers) and
# reports its figures against the speed goals that `make test` does not
# assert: the flood's median within the baseline median + 100 ms, its p95
# within max(4 × the baseline p95, baseline p95 + 150 ms), baseline and
# flood measured in turns in the same run.  Figures only; no assertion
# about speed.
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
export MESHWAN_TOP
out=$(sh "$MESHWAN_TOP/tests/ctl/enroll_flood.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^(baseline|flood) '
[ "$rc" = 0 ] || { echo "$out" | tail -20; echo "FAIL: enroll_flood did not pass"; exit 1; }
bp50=$(echo "$out" | sed -n 's/^baseline p50=\([0-9.]*\) .*/\1/p')
fp50=$(echo "$out" | sed -n 's/^flood p50=\([0-9.]*\) .*/\1/p')
bp95=$(echo "$out" | sed -n 's/^baseline .*p95=\([0-9.]*\) .*/\1/p')
fp95=$(echo "$out" | sed -n 's/^flood p50.* p95=\([0-9.]*\) .*/\1/p')
[ -n "$bp50" ] && [ -n "$fp50" ] && [ -n "$bp95" ] && [ -n "$fp95" ] ||
	{ echo "FAIL: no figures"; exit 1; }
awk -v b="$bp50" -v f="$fp50" 'BEGIN {
	g = b + 100
	printf "flood p50 %.1f ms, goal <= %.1f ms (baseline p50 %.1f ms): %s\n",
	    f, g, b, (f <= g ? "met" : "MISSED")
}'
awk -v b="$bp95" -v f="$fp95" 'BEGIN {
	g = 4 * b; if (b + 150 > g) g = b + 150
	printf "flood p95 %.1f ms, goal <= %.1f ms (baseline p95 %.1f ms): %s (%.2fx of the goal)\n",
	    f, g, b, (f <= g ? "met" : "MISSED"), f / g
}'
