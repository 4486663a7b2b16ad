#!/bin/sh
# scale_bench.sh — one controller process at 10,000 edges (SCALE_BENCH_EDGES),
# hub-and-spoke with 4 hubs (SCALE_BENCH_HUBS) on a /10 pool, driven by
# tests/bench/ctl_load.c:
#  - every site created through REST; the median POST /sites time around
#    1,000, 5,000 and 10,000 sites, as ratios to the one at 1,000 (the
#    reference measured in the same run; flat is the goal);
#  - every edge enrolled and connected (mutual TLS, one connection each),
#    with the controller's RSS per edge;
#  - one hub added: time until every edge acked (median, p99);
#  - one status from every edge: the controller's CPU per status, against
#    an idle window as long.
# Figures only; no assertion about speed.  Bounded: SCALE_BENCH_TIMEOUT
# (default 1800 s) ends the run.  SCALE_BENCH_CONNECT=M enrolls and
# connects only the first M sites (default 500, the hubs first:
# enrollment is sequential, ~20-200 ms each on a loaded machine, so all
# 10,000 take half an hour); SCALE_BENCH_REST_ONLY=1 stops after REST.
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl
LOAD=$BUILD/tests/bench/ctl_load
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${SCALE_BENCH_EDGES:-10000}
HUBS=${SCALE_BENCH_HUBS:-4}
# One descriptor per edge in each process (controller, load generator),
# plus gRPC's own: as many as we may have.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((N + 1000)) ] ||
	fail "$N edges need more than $(ulimit -n) descriptors (ulimit -n)"
mkdir -p "$T/edges"
write_config <<CONF
policy = hub-and-spoke
tunnel_pool = 100.64.0.0/10
enroll_rate = 0
CONF
start_controller
echo "controller: hub-and-spoke, $HUBS hubs, $N simulated edges"
rc=0
export CTL_LOAD_CONNECT="${SCALE_BENCH_CONNECT:-500}"
[ -n "${SCALE_BENCH_REST_ONLY:-}" ] && export CTL_LOAD_REST_ONLY=1
CTL_LOAD_HUBS=$HUBS CTL_LOAD_CTLD_PID=$CTLD_PID \
timeout "${SCALE_BENCH_TIMEOUT:-1800}" "$LOAD" "$URL" "$T/admin.token" \
	"127.0.0.1:$ENROLL" "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/edges" "$N" || rc=$?
echo "controller peak RSS: $(sed -n 's/^VmHWM:[[:space:]]*//p' /proc/$CTLD_PID/status)"
stop_controller
[ "$rc" = 0 ] || fail "load generator failed ($rc)"
