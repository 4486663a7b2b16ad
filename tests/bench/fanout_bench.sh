#!/bin/sh
# fanout_bench.sh — the fan-out of one change to many connected edges,
# quicker than scale_bench.sh: FANOUT_SITES (default 5000) sites,
# hub-and-spoke with FANOUT_HUBS (default 4) hubs on a /10 pool, the first
# FANOUT_EDGES (default 1000) of them enrolled and connected as simulated
# edges (tests/bench/ctl_load.c).  One hub is added with FANOUT_REF
# (default 100) edges connected (the reference), then with all of them:
# the time until every connected edge acked its new version (median,
# p99) and the ratio of the second to the reference; the median POST
# /sites time at 1,000 sites and at FANOUT_SITES, and their ratio.
#
# Every spoke gets a new intent version from a hub added, connected or
# not, so the controller's share of the fan-out grows with the sites,
# its sending with the connected edges.  FANOUT_PERF=FILE records the
# controller with perf(1) (call graphs) during the second change only.
# Figures only; no assertion about speed.
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl
LOAD=$BUILD/tests/bench/ctl_load
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${FANOUT_SITES:-5000}
M=${FANOUT_EDGES:-1000}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((M + 1000)) ] ||
	fail "$M edges need more than $(ulimit -n) descriptors (ulimit -n)"
mkdir -p "$T/edges"
write_config <<CONF
policy = hub-and-spoke
tunnel_pool = 100.64.0.0/10
enroll_rate = 0
CONF
start_controller
echo "controller: hub-and-spoke, ${FANOUT_HUBS:-4} hubs, $N sites, $M connected"
PERF_PID=
if [ -n "${FANOUT_PERF:-}" ]; then
	need perf
	# The second change: from all M edges connected to its figures.
	(
		wait_for 1800 "$T/load.out" "^sessions: $M connected" || exit 0
		perf record -q ${FANOUT_PERF_OPTS:--g} -o "$FANOUT_PERF" \
			-p "$CTLD_PID" 2>/dev/null &
		wait_for 600 "$T/load.out" "^ack latency from the REST call \\($M |^load: done"
		kill -INT $! 2>/dev/null
		wait $!
	) &
	PERF_PID=$!
	BG_PIDS="$BG_PIDS $PERF_PID"
fi
rc=0
CTL_LOAD_HUBS=${FANOUT_HUBS:-4} CTL_LOAD_CONNECT=$M \
CTL_LOAD_REF=${FANOUT_REF:-100} \
timeout "${FANOUT_TIMEOUT:-1200}" "$LOAD" "$URL" "$T/admin.token" \
	"127.0.0.1:$ENROLL" "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/edges" "$N" \
	>"$T/load.out" 2>&1 || rc=$?
echo "load: done" >>"$T/load.out"
[ -z "$PERF_PID" ] || wait "$PERF_PID" 2>/dev/null
cat "$T/load.out"
[ "$rc" = 0 ] || fail "load generator failed ($rc)"
p1=$(sed -n 's/^POST \/sites at 1000 sites: median \([0-9.]*\) ms.*/\1/p' "$T/load.out")
pn=$(sed -n "s/^POST \/sites at $N sites: median \([0-9.]*\) ms.*/\1/p" "$T/load.out")
[ -z "$p1" ] || [ -z "$pn" ] ||
	echo "POST /sites median at $N / at 1000 sites: $pn / $p1 ms = $(awk -v a="$pn" -v b="$p1" 'BEGIN { printf "%.2f", a / b }')x"
stop_controller
