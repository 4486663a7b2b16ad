#!/bin/sh
# scale_bench.sh — one controller process at 10,000 edges (SCALE_BENCH_EDGES),
# hub-and-spoke with 4 hubs (SCALE_BENCH_HUBS) on a /10 pool, driven by
# tests/bench/ctl_load.c (edges in worker processes of 2,000 each):
#  - every site created through REST; the median POST /sites time around
#    1,000, 5,000 and 10,000 sites, as ratios to the one at 1,000 (the
#    reference measured in the same run; flat is the goal);
#  - the first SCALE_BENCH_CONNECT sites (default 2,000, the hubs first)
#    enrolled and connected (mutual TLS, one connection each), in two
#    steps: SCALE_BENCH_REF (default 500, the reference), then all;
#  - at each of the two: one hub added, time until every connected edge
#    acked (median, p99), and the ratios of the second to the reference;
#    the controller's RSS per connected edge;
#  - one status from every edge: the controller's CPU per status, against
#    an idle window as long;
#  - the controller restarted (SIGTERM, same ports and database): time
#    until every edge reconnected and all are connected and converged
#    again (SCALE_BENCH_RESTART=0 leaves it out).  The simulated edges run
#    edge-agent's session library over proto/rpc.c, so they reconnect on
#    the product's schedule (lib/backoff.h, full jitter) and honour the
#    controller's Backoff (session_admit_bytes) as an agent does.
# Figures only; no assertion about speed.  Bounded: SCALE_BENCH_TIMEOUT
# (default 2400 s) ends the run.  SCALE_BENCH_CONNECT=10000 connects all
# 10,000; the enrollment line gives the rate and the time per step (token
# POST, key and CSR, Enroll call) per edge.  SCALE_BENCH_REST_ONLY=1
# stops after REST.  SCALE_BENCH_LOGS=DIR keeps the controllers' logs.
# The edges live in ctl_load's worker processes (2,000 each): a process'
# 20,000 descriptors do not hold 10,000 edges.
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl
LOAD=$BUILD/tests/bench/ctl_load
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${SCALE_BENCH_EDGES:-10000}
HUBS=${SCALE_BENCH_HUBS:-4}
# One descriptor per edge in the controller, two per edge in each of the
# load generator's workers, plus gRPC's own: as many as we may have.
# As root this raises the hard limit too; the controller takes its soft
# limit up to the hard one itself and logs it ("fd limit N").
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
# The restart reuses these ports: the edges keep their target.
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config <<CONF
policy = hub-and-spoke
tunnel_pool = 100.64.0.0/10
enroll_rate = 0
CONF
echo "controller: hub-and-spoke, $HUBS hubs, $N simulated edges"

# CPU groups.  On one machine the simulated edges share the controller's
# two cores, and the kernel shares CPU by thread: the load generator's
# 10,000 client connections (gRPC's timer and executor threads, in five
# processes) took ~95 % of both cores during the restart storm, and the
# controller being measured got the rest.  Edges are other machines in a
# real network.  So, as root (SCALE_BENCH_CPU_GROUPS=0 leaves it out),
# the controller and the load generator each run in a CPU cgroup of equal
# weight: when both are busy each gets one core's worth, and either may
# use all that the other leaves.  Both weigh four times a process' default
# (cgroup v1 counts each process outside a group as one such unit): other
# jobs on the machine shift the figures less.  The controller's own CPU
# time is printed with the restart figure.
CG_ROOT= CG_FILE= CG_W=
cg_setup() {
	if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then       # cgroup v1
		CG_ROOT=/sys/fs/cgroup/cpu CG_FILE=cpu.shares CG_W=4096
	elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
		CG_ROOT=/sys/fs/cgroup CG_FILE=cpu.weight CG_W=400
		echo +cpu >"$CG_ROOT/cgroup.subtree_control" 2>/dev/null
	else
		return 1
	fi
	for g in ctld load; do
		mkdir -p "$CG_ROOT/meshwan-bench-$$-$g" &&
			echo "$CG_W" >"$CG_ROOT/meshwan-bench-$$-$g/$CG_FILE" ||
			return 1
	done
}
cg_move() {  # cg_move GROUP PID
	echo "$2" >"$CG_ROOT/meshwan-bench-$$-$1/cgroup.procs"
}
cg_cleanup() {
	cleanup
	[ -n "$CG_ROOT" ] || return 0
	for g in ctld load; do
		d=$CG_ROOT/meshwan-bench-$$-$g
		[ -d "$d" ] || continue
		for p in $(cat "$d/cgroup.procs" 2>/dev/null); do
			echo "$p" >"$CG_ROOT/cgroup.procs" 2>/dev/null
		done
		rmdir "$d" 2>/dev/null
	done
}
trap cg_cleanup EXIT INT TERM
CG_RESTART=
if [ "${SCALE_BENCH_CPU_GROUPS:-1}" != 0 ] && [ "$(id -u)" = 0 ] && cg_setup &&
	cg_move ctld "$CTLD_PID" && cg_move load $$; then
	echo "CPU: controller and load generator in cgroups of equal weight ($CG_ROOT, $CG_FILE $CG_W each)"
	CG_RESTART="echo \$\$ >$CG_ROOT/meshwan-bench-$$-ctld/cgroup.procs; "
else
	CG_ROOT=
	echo "CPU: no cgroups (not root, or SCALE_BENCH_CPU_GROUPS=0): the load generator's threads compete with the controller's"
fi
rc=0
export CTL_LOAD_CONNECT="${SCALE_BENCH_CONNECT:-2000}"
export CTL_LOAD_REF="${SCALE_BENCH_REF:-500}"
[ "${SCALE_BENCH_RESTART:-1}" = 0 ] ||
	export CTL_LOAD_RESTART="${CG_RESTART}exec $CTLD -d -f $T/controller.conf >>$T/ctld2.log 2>&1"
[ -n "${SCALE_BENCH_REST_ONLY:-}" ] && export CTL_LOAD_REST_ONLY=1
CTL_LOAD_HUBS=$HUBS CTL_LOAD_CTLD_PID=$CTLD_PID \
timeout "${SCALE_BENCH_TIMEOUT:-2400}" "$LOAD" "$URL" "$T/admin.token" \
	"127.0.0.1:$ENROLL" "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/edges" "$N" || rc=$?
# ctl_load stopped this controller for the restart (and stopped the one
# it started): reap it; otherwise stop it.
hwm=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$CTLD_PID/status" 2>/dev/null)
[ -z "$hwm" ] || echo "controller peak RSS: $hwm"
kill -TERM "$CTLD_PID" 2>/dev/null
wait "$CTLD_PID"
CTLD_PID=
# The restarted controller's descriptor limit and refusals, if any
# (proto/RPC.md, "Descriptors").
[ ! -f "$T/ctld2.log" ] || grep -E 'fd limit|short of descriptors|descriptors free|Failed accept4' \
	"$T/ctld2.log" | tail -n 4 | sed 's/^[^ ]* [^ ]* /restarted controller: /'
[ -z "${SCALE_BENCH_LOGS:-}" ] || cp "$T"/ctld*.log "$SCALE_BENCH_LOGS/" 2>/dev/null
[ "$rc" = 0 ] || fail "load generator failed ($rc)"
