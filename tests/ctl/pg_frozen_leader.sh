#!/bin/sh
# pg_frozen_leader.sh — the leader of two replicas frozen (SIGSTOP), not
# killed (issue 12; controller/CONTROLLER.md, "Two replicas on
# PostgreSQL"; controller/STORE.md, "The leader lease"):
#
#   edge e0 ──▶ replica A (leader, then SIGSTOP, SIGCONT) ──┐
#                                                            ├─▶ PostgreSQL
#   edge e1 ──▶ replica B ──────────────────────────────────┘   (role ctl,
#   curl ──▶ A, B                                                not superuser)
#
# A frozen process keeps its database session and with it the leader
# lock; only the lease moves the leadership.  Asserted: a site created
# through B while A is frozen reaches the edge on B within the lease
# timeout plus 10 s (B fenced A: "fenced the leader" in its log, and it
# is the leader now); a site created through A, sent while A is still
# frozen so that A handles it the moment it resumes, is stored and
# reaches both edges; A says it is no longer the leader and never takes
# the lease back; exactly one leader (one holder of the lock, the one
# the lease names); nothing allocated twice (the tables), and each edge's
# tunnels are the stored ones.  The replicas connect as a role without
# superuser rights: fencing needs only the same role (CONTROLLER.md).
# LEASE_S (default 3) sets the lease timeout.  Without the lease (main
# before it), the site made during the freeze never reaches the edge.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
PID_A=
trap '[ -n "$PID_A" ] && kill -CONT "$PID_A" 2>/dev/null; [ -n "${KEEP:-}" ] && cp -r "$T" "$KEEP"; replica_cleanup; cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql ss
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"
LEASE=${LEASE_S:-3}
# The lease, up to a second until B looks, B's reload and compile, the
# edge's ack: 3.1-3.7 s measured at load 25, 3.1-11.2 s at load
# averages of 300-2,000 (other jobs beside three CPU burners).
BOUND=$((LEASE + 10))

# A database and a plain role that owns it, as an operator would set up.
pg_sql "CREATE ROLE ctl LOGIN" >/dev/null || fail "cannot create the role"
pg_sql "CREATE DATABASE ha OWNER ctl" >/dev/null || fail "cannot create the database"
PG_CONNINFO="host=$PG_DIR port=$PG_PORT user=ctl dbname=ha"
q() {	# SQL — one statement in the replicas' database, tuples only
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U meshwan -d ha -c "$1"
}

write_config <<EOF
store = $PG_CONNINFO
leader_lease = ${LEASE}s
EOF
start_controller
PID_A=$CTLD_PID
URL_A=$URL
LOG_A=$T/ctld.log
wait_for 10 "$LOG_A" 'replica: this controller is now the leader' || fail "A did not become the leader"
replica_start B <<EOF
leader_lease = ${LEASE}s
EOF
LOG_B=$T/B.log

hq=$(site_create '{"name":"hq","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
e0=$(site_create '{"name":"e0","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
e1=$(site_create '{"name":"e1","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}')
enroll_site e0 "$e0"
enroll_site e1 "$e1"
edge e0 "$e0" "127.0.0.1:$GRPC" -t "$T/e0.tunnels"
edge e1 "$e1" "127.0.0.1:$GRPC_B" -t "$T/e1.tunnels"
for e in e0 e1; do
	deadline=$(( $(date +%s) + 20 ))
	until [ "$(grep -c '^tunnel ' "$T/$e.tunnels" 2>/dev/null)" = 2 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$e has no tunnels to the other two sites: $(tail -n 5 "$T/$e.log")"
		sleep 0.05
	done
done
grep -q 'replica: this controller is now the leader' "$LOG_B" && fail "B is the leader before A froze"

# A frozen: its sockets stay open, its lease lapses.
kill -STOP "$PID_A"
t_stop=$(now_ms)
URL=$URL_B
n1=$(site_create '{"name":"n1","role":"spoke","links":[{"name":"inet","address":"192.0.2.4"}]}')
until grep -q "^tunnel [0-9]* peer $n1 " "$T/e1.tunnels" 2>/dev/null; do
	[ $(( $(now_ms) - t_stop )) -lt $((BOUND * 1000)) ] ||
		fail "a site made through B while A is frozen did not reach the edge on B within $BOUND s: $(tail -n 3 "$T/e1.log"; tail -n 15 "$LOG_B")"
	sleep 0.05
done
t_served=$(now_ms)
grep -q 'replica: this controller is now the leader' "$LOG_B" || fail "B served the new site without being the leader"
grep -q 'leader lease: fenced the leader' "$LOG_B" || fail "B did not say it fenced A: $(tail -n 15 "$LOG_B")"

# A write through A, accepted by the kernel while A is frozen: A handles
# it the moment it resumes, before or after it hears it was fenced.
( curl -s -m 30 -o "$T/n2.out" -w '%{http_code}' -X POST -H "$H" \
	-H 'Content-Type: application/json' \
	--data '{"name":"n2","role":"spoke","links":[{"name":"inet","address":"192.0.2.5"}]}' \
	"$URL_A/api/v1/sites" >"$T/n2.status" ) &
CURL=$!
# Resumed only once the request is in A's socket (the kernel accepted
# the connection for the frozen A; its Recv-Q holds the bytes), not after
# a fixed time that a loaded machine may not give curl.
port_a=${URL_A##*:}
deadline=$(( $(date +%s) + 20 ))
until ss -Htn state established "( sport = :$port_a )" | awk '$1 > 0 { f = 1 } END { exit !f }'; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "the request through A did not reach its socket: $(ss -tn "( sport = :$port_a )")"
	sleep 0.05
done
kill -CONT "$PID_A"
t_cont=$(now_ms)
until grep -q 'replica: this controller is no longer the leader' "$LOG_A"; do
	[ $(( $(now_ms) - t_cont )) -lt 10000 ] || fail "A did not step down after it resumed: $(tail -n 15 "$LOG_A")"
	sleep 0.01
done
t_down=$(( $(now_ms) - t_cont ))
wait "$CURL"
[ "$(cat "$T/n2.status")" = 201 ] || fail "the write through A after it resumed gave $(cat "$T/n2.status"): $(cat "$T/n2.out")"
n2=$(jq -r .id "$T/n2.out")

# Both edges get both new sites, with the leader's (B's) allocations.
for e in e0 e1; do
	deadline=$(( $(date +%s) + 10 ))
	until grep -q "^tunnel [0-9]* peer $n1 " "$T/$e.tunnels" 2>/dev/null &&
		grep -q "^tunnel [0-9]* peer $n2 " "$T/$e.tunnels" 2>/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$e lacks a tunnel to n1 or n2: $(cat "$T/$e.tunnels"; tail -n 10 "$LOG_A")"
		sleep 0.05
	done
done

# Exactly one leader: one holder of the lock, the backend the lease
# names, B's; A never took it back.
sleep 1         # a second of A's tries for the lease (it must not win one)
locks=$(q "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = x'6d657368776e4c31'::bigint")
[ "$locks" = 1 ] || fail "$locks holders of the leader lock"
[ "$(q "SELECT COUNT(*) FROM meshwan_leader l JOIN pg_locks k ON k.pid = l.pid AND k.locktype = 'advisory' AND k.granted AND ((k.classid::bigint << 32) | k.objid::bigint) = x'6d657368776e4c31'::bigint")" = 1 ] ||
	fail "the lease does not name the lock holder: $(q 'SELECT * FROM meshwan_leader')"
[ "$(grep -c 'replica: this controller is now the leader' "$LOG_A")" = 1 ] || fail "A became the leader again: $(grep 'replica:' "$LOG_A")"
[ "$(grep -c 'replica: this controller is now the leader' "$LOG_B")" = 1 ] || fail "B's leadership moved: $(grep 'replica:' "$LOG_B")"
grep 'replica: this controller' "$LOG_B" | tail -n 1 | grep -q 'is now the leader' || fail "B is not the leader at the end"

# Nothing allocated twice; each edge's tunnels are the stored ones.
nsites=$(q 'SELECT COUNT(*) FROM sites')
[ "$nsites" = 5 ] || fail "$nsites sites stored"
want=$(( nsites * (nsites - 1) / 2 ))
[ "$(q 'SELECT COUNT(*) FROM tunnels')" = "$want" ] || fail "$(q 'SELECT COUNT(*) FROM tunnels') tunnels stored, want $want"
[ "$(q 'SELECT COUNT(DISTINCT inner_addr) FROM tunnels')" = "$want" ] || fail "a /31 given twice"
[ "$(q 'SELECT COUNT(*) FROM (SELECT vni FROM tunnels WHERE vni <> 0 GROUP BY vni HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "a VNI given twice"
[ "$(q 'SELECT COUNT(*) FROM (SELECT DISTINCT site_a, site_b FROM tunnels) p')" = "$want" ] || fail "a site pair twice"
[ "$(q "SELECT COUNT(*) FROM tunnels WHERE id >= (SELECT value::bigint FROM meta WHERE key = 'next_tunnel_id')")" = 0 ] ||
	fail "a tunnel id at or past the stored counter"
[ "$(q 'SELECT COUNT(*) FROM (SELECT recv_address, spi FROM sa_epochs GROUP BY recv_address, spi HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "an SPI given twice"
[ "$(q 'SELECT COUNT(*) FROM (SELECT tunnel_id, sender_site FROM sa_epochs WHERE state = 3 GROUP BY tunnel_id, sender_site HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "two active epochs in one direction"
for e in e0 e1; do
	eval "sid=\$$e"
	# The edge's file: "tunnel ID peer P inner A.B.C.D ..."; the store's
	# inner_addr is the /31's first address as a number.
	awk '/^tunnel /{ split($6, o, "."); print $2, $4, ((o[1]*256 + o[2])*256 + o[3])*256 + o[4] }' "$T/$e.tunnels" | sort >"$T/$e.mine"
	q "SELECT id, CASE WHEN site_a = $sid THEN site_b ELSE site_a END, inner_addr FROM tunnels WHERE $sid IN (site_a, site_b)" |
		tr '|' ' ' | sort >"$T/$e.stored"
	# Either end of the /31 may be the edge's.
	awk 'NR == FNR { s[$1] = $2 " " $3; next } { split(s[$1], v, " "); if (!($1 in s) || v[1] != $2 || ($3 != v[2] && $3 != v[2] + 1)) { print "tunnel " $1 " differs"; bad = 1 } } END { exit bad }' \
		"$T/$e.stored" "$T/$e.mine" || fail "$e's tunnels are not the stored ones: $(cat "$T/$e.mine") / $(cat "$T/$e.stored")"
	[ "$(wc -l <"$T/$e.mine")" = "$(wc -l <"$T/$e.stored")" ] || fail "$e has $(wc -l <"$T/$e.mine") tunnels, the store $(wc -l <"$T/$e.stored")"
done

served=$((t_served - t_stop))
echo "pg_frozen_leader: site made through B acked by the edge on B $served ms after SIGSTOP of the leader A (lease ${LEASE} s); A stepped down $t_down ms after SIGCONT; A $(grep -q 'not storing allocations' "$LOG_A" && echo 'refused its own allocation as a fenced leader' || echo 'followed at once')"
# Both stop cleanly.
kill -TERM "$PID_B"; wait "$PID_B"; rc=$?; REPLICAS=
[ "$rc" = 0 ] || fail "replica B exited with $rc: $(tail -n 20 "$LOG_B")"
PID_A=
stop_controller
echo "pg_frozen_leader: ok"
