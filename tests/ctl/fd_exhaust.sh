#!/bin/sh
# fd_exhaust.sh — the controller runs out of descriptors during a
# reconnect storm and still takes every edge back (issue 12 §3).
#
#   ctl_load (FD_EXHAUST_EDGES simulated edges, 200) ──mTLS──▶ controller
#   crowd (python, below) ──TCP, never a TLS hello──▶ gRPC port
#                         ──TCP, never a request────▶ REST port
#
# gRPC 1.51 stops accepting on a port for good after one accept4() that
# fails with EMFILE (grpc/grpc#20418); proto/rpc.c guards its listeners
# (proto/RPC.md, "Descriptors").  Here the edges connect and converge,
# then the controller is restarted under `prlimit --nofile` with a limit
# only FD_EXHAUST_SPARE (130) above the edge count, while a crowd keeps
# hundreds of silent connections open on the session and REST ports for
# FD_EXHAUST_HOLD (8) seconds.  The controller must log the fd limit it
# runs with and the shortage ("short of descriptors"), close the crowd's
# connections after handshake_timeout (2 s), keep accepting ("descriptors
# free again"), never log gRPC's "Failed accept4", and have all edges
# connected and converged within FD_EXHAUST_LIMIT (90 s; ~37 s here) of the restart.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl python3 prlimit
LOAD=${CTL_LOAD:-$BUILD/tests/bench/ctl_load}
[ -x "$LOAD" ] || fail "$LOAD is not built"
N=${FD_EXHAUST_EDGES:-200}
LIMIT=$((N + ${FD_EXHAUST_SPARE:-130}))
HOLD=${FD_EXHAUST_HOLD:-8}
mkdir -p "$T/edges"
conf() {
	write_config <<CONF
policy = hub-and-spoke
enroll_rate = 0
handshake_timeout = 2s
http_timeout = 2s
http_max_connections_per_address = 2048
CONF
}
conf
start_controller
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP conf

# The crowd: waits for the restart, then for HOLD seconds keeps up to 300
# connections open to each port, opening new ones as the controller
# closes or refuses them; then closes everything.
python3 - "$T/restarting" "$HOLD" "$GRPC" "$HTTP" >"$T/crowd.log" 2>&1 <<'PY' &
import os, socket, sys, time
flag, hold, ports = sys.argv[1], float(sys.argv[2]), [int(p) for p in sys.argv[3:]]
while not os.path.exists(flag):
    time.sleep(0.05)
end = time.monotonic() + hold
conns = {p: [] for p in ports}
opened = closed = 0
while time.monotonic() < end:
    for p in ports:
        alive = []
        for s in conns[p]:
            try:
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    s.close(); closed += 1; continue
            except BlockingIOError:
                pass
            except OSError:
                s.close(); closed += 1; continue
            alive.append(s)
        conns[p] = alive
        while len(conns[p]) < 300:
            s = socket.socket()
            s.settimeout(0.2)
            try:
                s.connect(("127.0.0.1", p))
            except OSError:
                s.close(); break
            conns[p].append(s); opened += 1
    time.sleep(0.1)
print("crowd: %d connections opened, %d closed by the controller" % (opened, closed))
PY
BG_PIDS="$BG_PIDS $!"

rc=0
CTL_LOAD_HUBS=2 CTL_LOAD_BATCH=$N CTL_LOAD_CTLD_PID=$CTLD_PID \
CTL_LOAD_RESTART_LIMIT=${FD_EXHAUST_LIMIT:-90} \
CTL_LOAD_RESTART="touch $T/restarting; exec prlimit --nofile=$LIMIT:$LIMIT $CTLD -d -f $T/controller.conf >>$T/ctld2.log 2>&1" \
timeout 300 "$LOAD" "$URL" "$T/admin.token" "127.0.0.1:$ENROLL" \
	"127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/edges" "$N" >"$T/load.out" 2>"$T/load.err" || rc=$?
kill -TERM "$CTLD_PID" 2>/dev/null
wait "$CTLD_PID" 2>/dev/null
CTLD_PID=
for p in $BG_PIDS; do wait "$p" 2>/dev/null; done
BG_PIDS=
grep -E '^(sessions|restart)' "$T/load.out"
cat "$T/crowd.log"
grep -E 'fd limit|short of descriptors|descriptors free|accept4' "$T/ctld2.log" | tail -n 6
showlog() { echo "--- restarted controller's log" >&2; tail -n 30 "$T/ctld2.log" >&2; }
[ "$rc" = 0 ] || { tail -n 20 "$T/load.err" >&2; showlog; fail "load generator failed ($rc)"; }
grep -q "sessions: $N connected with their first intent" "$T/load.out" ||
	fail "not every edge got its intent before the restart"
grep -q "fd limit $LIMIT\b" "$T/ctld2.log" || { showlog; fail "no 'fd limit $LIMIT' at start"; }
grep -q 'short of descriptors' "$T/ctld2.log" ||
	{ showlog; fail "the controller never ran short of descriptors: the crowd did not bite"; }
grep -q 'descriptors free again: accepting' "$T/ctld2.log" ||
	{ showlog; fail "no 'descriptors free again' after the shortage"; }
! grep -q 'Failed accept4' "$T/ctld2.log" ||
	{ showlog; fail "gRPC's listener failed an accept4 (its accept loop stops there)"; }
grep -q "restart: .*all $N edges connected and converged" "$T/load.out" ||
	{ showlog; fail "edges did not all come back after the restart"; }
echo "fd_exhaust: ok"
