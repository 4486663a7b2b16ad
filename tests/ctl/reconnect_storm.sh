#!/bin/sh
# reconnect_storm.sh — a crowd of edges at once, then a controller restart
# (tests/bench/ctl_load.c: 300 simulated edges running edge-agent's
# session library, so the product's reconnect schedule, lib/backoff.h):
#
#  - the 300 open their sessions together, each needing a snapshot, with
#    session_admit_bytes at its minimum (4 KiB): the controller serves
#    snapshots only while its outbound queues hold less, tells the others
#    to come back (Backoff, 1-10 s; logged and counted as backoff_sent),
#    and every edge still gets its intent and acks a change;
#  - the controller is stopped (SIGTERM) and started again on the same
#    ports and database: every edge reconnects with its full-jitter
#    backoff and all 300 are connected and converged within
#    RECONNECT_STORM_LIMIT (60 s; they are up to date, so no snapshot).
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl
LOAD=${CTL_LOAD:-$BUILD/tests/bench/ctl_load}
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${RECONNECT_STORM_EDGES:-300}
mkdir -p "$T/edges"
write_config <<CONF
policy = hub-and-spoke
enroll_rate = 0
session_admit_bytes = 4096
CONF
start_controller
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config <<CONF
policy = hub-and-spoke
enroll_rate = 0
session_admit_bytes = 4096
CONF
rc=0
CTL_LOAD_HUBS=2 CTL_LOAD_BATCH=$N CTL_LOAD_CTLD_PID=$CTLD_PID \
CTL_LOAD_RESTART_LIMIT=${RECONNECT_STORM_LIMIT:-60} \
CTL_LOAD_RESTART="exec $CTLD -d -f $T/controller.conf >>$T/ctld2.log 2>&1" \
timeout 300 "$LOAD" "$URL" "$T/admin.token" "127.0.0.1:$ENROLL" \
	"127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/edges" "$N" >"$T/load.out" 2>"$T/load.err" || rc=$?
kill -TERM "$CTLD_PID" 2>/dev/null
wait "$CTLD_PID" 2>/dev/null
CTLD_PID=
grep -E '^(enrolled|sessions|change|restart)' "$T/load.out"
[ "$rc" = 0 ] || { tail -n 20 "$T/load.err" >&2; fail "load generator failed ($rc)"; }
# The bound acted: snapshots were refused with a Backoff while the
# queues were full (the first process' log).
grep -q 'hello(s) needing a snapshot told to come back in 1-10 s' "$T/ctld.log" ||
	fail "no hello was told to come back: the admission bound did not act"
grep -q "sessions: $N connected with their first intent" "$T/load.out" ||
	fail "not every edge got its intent"
grep -q "restart: .*all $N edges connected and converged" "$T/load.out" ||
	fail "edges did not all come back after the restart"
echo "reconnect_storm: ok"
