#!/bin/sh
# ctl_bench.sh — edge sessions at scale: CTL_BENCH_EDGES (default 1000)
# simulated edges (tests/bench/ctl_load.c, null data plane, one mTLS
# connection each, all in one process) connect to meshwan-controller;
# one hub is added through REST and every edge's ack of its new version is
# timed (median, p99, max), with the bytes it took.  Policy
# CTL_BENCH_POLICY (default: hub-and-spoke, where the new hub touches every
# spoke, then full mesh, where the new site touches every site).  Figures
# only; no assertion about speed.
set -u
# Without CTL_BENCH_POLICY: both policies, each in its own run, and the
# full mesh's p99 as a ratio to hub-and-spoke's (same edges, same run).
if [ -z "${CTL_BENCH_POLICY:-}" ]; then
	out=$(mktemp)
	for p in hub-and-spoke full-mesh; do
		rc=0
		CTL_BENCH_POLICY=$p sh "$0" >"$out.$p" 2>&1 || rc=$?
		cat "$out.$p"
		[ "$rc" = 0 ] || { rm -f "$out"*; exit 1; }
	done
	hs=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' "$out.hub-and-spoke")
	fm=$(sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p' "$out.full-mesh")
	rm -f "$out"*
	[ -n "$hs" ] && [ -n "$fm" ] || { echo "FAIL: no p99 in the runs"; exit 1; }
	echo "full mesh / hub-and-spoke, p99 until every edge acked: $fm / $hs ms = $(awk -v a="$fm" -v b="$hs" 'BEGIN { printf "%.2f", a / b }')x"
	exit 0
fi
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq
LOAD=$BUILD/tests/bench/ctl_load
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${CTL_BENCH_EDGES:-1000}
POLICY=${CTL_BENCH_POLICY:-hub-and-spoke}
# One descriptor per connection on both sides, plus gRPC's own.
ulimit -n 65536 2>/dev/null || ulimit -n 8192 || true
mkdir -p "$T/edges"
# A pool big enough for a full mesh of thousands of sites; every edge
# enrolls from this one address (no per-address enrollment limit).
write_config <<CONF
policy = $POLICY
tunnel_pool = 100.64.0.0/10
enroll_rate = 0
CONF
start_controller
echo "controller: policy $POLICY, $N simulated edges"
"$LOAD" "$URL" "$T/admin.token" "127.0.0.1:$ENROLL" "127.0.0.1:$GRPC" \
	"$T/ca/ca.crt" "$T/edges" "$N" || fail "load generator failed"
curl -s -H "$H" "$URL/metrics" | grep -E '^meshwan_(intent_bytes_sent_total|compile)' || true
echo "controller peak RSS: $(sed -n 's/^VmHWM:[[:space:]]*//p' /proc/$CTLD_PID/status)"
stop_controller
