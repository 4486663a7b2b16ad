#!/bin/sh
# pg_failover.sh — SIGKILL of one of two replicas under a stream of REST
# writes (issue 12; controller/CONTROLLER.md, "Two replicas on
# PostgreSQL"):
#
#   writer ──REST──▶ replica A ✗ (kill -9)   ◀── edges e1..eK (A first)
#   writer ──REST──▶ replica B               ◀── edges eK+1..eN (B first)
#                       both ──▶ PostgreSQL
#
# Every edge is configured with both replicas' addresses (test edge: the
# next one after 2 s without a stream, resuming from its applied intent).
# The writers run until each replica has acknowledged a write, A is
# killed, and B has acknowledged one answered after the kill (waits on
# those events, not fixed sleeps).
# Asserted: A's edges reattach to B within 10 s of the kill and, once the
# writers stop, every edge converges on the full mesh of the stored sites
# (its tunnel list, and GET /edges on B); every write acknowledged with
# 201 is stored; no edge ever saw its intent version go backwards; no id,
# ASN, /31, site pair or SPI was allocated twice (checked in the tables).
# FAILOVER_EDGES (default 6) sets N; FAILOVER_BOUND_S the 10 s;
# FAILOVER_WRITERS=0 runs without the
# writers; the figures are printed (tests/bench/pg_failover_bench.sh
# runs it with more edges and no writes).
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
trap 'touch "$T/stop"; [ -n "${KEEP:-}" ] && cp -r "$T" /tmp/ha-keep; replica_cleanup; cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"
N=${FAILOVER_EDGES:-6}
BOUND=${FAILOVER_BOUND_S:-10}   # reattach bound (issue 12: 10 s)
K=$(( (N + 1) / 2 ))            # edges on A

write_config <<EOF2
store = $PG_CONNINFO
EOF2
start_controller
URL_A=$URL
TG_A="127.0.0.1:$GRPC"
replica_start B </dev/null
TG_B="127.0.0.1:$GRPC_B"

i=1
while [ $i -le "$N" ]; do
	id=$(site_create "{\"name\":\"e$i\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$i\"}]}")
	enroll_site "e$i" "$id"
	eval "SID_$i=$id"
	if [ $i -le $K ]; then tg="$TG_A,$TG_B"; else tg="$TG_B,$TG_A"; fi
	edge "e$i" "$id" "$tg" -F 2000 -t "$T/e$i.tunnels"
	i=$((i + 1))
done
i=1
while [ $i -le "$N" ]; do
	wait_for 20 "$T/e$i.log" '^ack v=' || fail "e$i got no intent: $(cat "$T/e$i.log")"
	i=$((i + 1))
done
# The edges on A (a loaded machine may already have moved one to B).
ON_A=
i=1
while [ $i -le $K ]; do
	grep -q "^target $TG_B" "$T/e$i.log" || ON_A="$ON_A $i"
	i=$((i + 1))
done
[ -n "$ON_A" ] || fail "no edge on A"
K=$(echo $ON_A | wc -w)

# Writers: one per replica, site after site, until told to stop.
writer() {	# NAME URL NET
	j=0
	while [ ! -e "$T/stop" ]; do
		j=$((j + 1))
		st=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "$H" \
			-H 'Content-Type: application/json' --data \
			"{\"name\":\"$1-$j\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.$3.$((j / 250)).$((j % 250 + 1))\"}]}" \
			"$2/api/v1/sites")
		echo "$1-$j $st" >>"$T/writes"
		[ "$st" = 000 ] && sleep 0.2     # A is gone: do not spin
		sleep 0.05
	done
}
WRITERS=${FAILOVER_WRITERS:-1}
: >"$T/writes"
WA=; WB=
# acked_after N WRITER — a write of WRITER's acknowledged after the
# first N lines of $T/writes.
acked_after() {
	tail -n "+$(($1 + 1))" "$T/writes" | grep -q "^$2-.* 201\$"
}
if [ "$WRITERS" = 1 ]; then
	writer wa "$URL_A" 1 & WA=$!
	writer wb "$URL_B" 2 & WB=$!
	BG_PIDS="$BG_PIDS $WA $WB"
	# Both writing when A is killed: each has had a write acknowledged
	# (not a fixed time: on a loaded machine the first may take seconds).
	deadline=$(( $(date +%s) + 60 ))
	until acked_after 0 wa && acked_after 0 wb; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "no write acknowledged by each replica within 60 s: $(tail -n 5 "$T/writes")"
		sleep 0.05
	done
fi

kill -KILL "$CTLD_PID"; wait "$CTLD_PID" 2>/dev/null; CTLD_PID=
t_kill=$(now_ms)
n_kill=$(wc -l <"$T/writes")

# A's edges reattach to B within 10 s (B takes their hello).
for i in $ON_A; do
	eval "sid=\$SID_$i"
	while ! grep -q "session: site $sid connected" "$T/B.log"; do
		[ $(( $(now_ms) - t_kill )) -lt $((BOUND * 1000)) ] ||
			fail "e$i did not reattach to B within $BOUND s: $(tail -n 8 "$T/e$i.log"; echo "--- B"; tail -n 30 "$T/B.log")"
		sleep 0.05
	done
done
t_attached=$(now_ms)
[ $((t_attached - t_kill)) -le $((BOUND * 1000)) ] ||
	fail "A's edges reattached $((t_attached - t_kill)) ms after the kill, over $BOUND s"
if [ "$WRITERS" = 1 ]; then
	# B takes writes after the failover too: one acknowledged, answered
	# after the kill (rather than a fixed second of writing).
	deadline=$(( $(date +%s) + 60 ))
	until acked_after "$n_kill" wb; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "no write through B acknowledged within 60 s of the kill: $(tail -n 5 "$T/writes")"
		sleep 0.05
	done
	touch "$T/stop"
	wait $WA $WB 2>/dev/null
fi

# Converged: each edge's tunnels = every other stored site; GET /edges.
# B, now the only compiler, stores the full mesh of what was written
# (~40 s for ~120 sites at load 15 here): a deadline for a loaded
# machine, not a target.
URL=$URL_B
nsites=$(pg_sql 'SELECT COUNT(*) FROM sites')
deadline=$(( $(date +%s) + 180 ))
i=1
while [ $i -le "$N" ]; do
	until [ "$(grep -c '^tunnel ' "$T/e$i.tunnels" 2>/dev/null)" = $((nsites - 1)) ]; do
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "e$i has $(grep -c '^tunnel ' "$T/e$i.tunnels") tunnels, want $((nsites - 1)): $(tail -n 5 "$T/e$i.log"; tail -n 20 "$T/B.log")"
		sleep 0.1
	done
	i=$((i + 1))
done
until [ "$(api GET /api/v1/edges)" = 200 ] &&
	[ "$(jq '[.edges[] | select(.connected and .converged)] | length' "$T/out")" = "$N" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "not all edges converged on B: $(jq -c '.edges[] | [.site_id, .connected, .intent_version, .applied_version]' "$T/out")"
	sleep 0.1
done
t_conv=$(now_ms)

# Every acknowledged write is stored.
acked=$(grep -c ' 201$' "$T/writes")
[ "$WRITERS" = 0 ] || [ "$acked" -gt 0 ] || fail "no write acknowledged"
grep ' 201$' "$T/writes" | cut -d' ' -f1 | sort >"$T/acked"
pg_sql 'SELECT name FROM sites' | sort >"$T/stored"
missing=$(comm -23 "$T/acked" "$T/stored")
[ -z "$missing" ] || fail "acknowledged but not stored: $missing"
[ "$WRITERS" = 0 ] || grep -q '^wb-.* 201$' "$T/writes" || fail "no write through B was acknowledged"

# No edge saw its version go backwards.
i=1
while [ $i -le "$N" ]; do
	sed -n 's/^snapshot v=\([0-9]*\) .*/\1/p; s/^delta from=[0-9]* v=\([0-9]*\) .*/\1/p' "$T/e$i.log" |
		awk -v e="e$i" '$1 < last { print e ": version " $1 " after " last; bad = 1 } { last = $1 } END { exit bad }' ||
		fail "an intent version went backwards"
	i=$((i + 1))
done

# Nothing allocated twice.
want=$(( nsites * (nsites - 1) / 2 ))
[ "$(pg_sql 'SELECT COUNT(*) FROM tunnels')" = "$want" ] || fail "$(pg_sql 'SELECT COUNT(*) FROM tunnels') tunnels stored, want $want"
[ "$(pg_sql 'SELECT COUNT(DISTINCT inner_addr) FROM tunnels')" = "$want" ] || fail "a /31 given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT DISTINCT site_a, site_b FROM tunnels) p')" = "$want" ] || fail "a site pair twice"
[ "$(pg_sql 'SELECT COUNT(DISTINCT asn) FROM sites')" = "$nsites" ] || fail "an ASN given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT recv_address, spi FROM sa_epochs GROUP BY recv_address, spi HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "an SPI given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT tunnel_id, sender_site FROM sa_epochs WHERE state = 3 GROUP BY tunnel_id, sender_site HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "two active epochs in one direction"
kill -0 "$PID_B" || fail "replica B died"
echo "pg_failover: $K of $N edges reattached to B $((t_attached - t_kill)) ms after the kill; all $N converged $((t_conv - t_kill)) ms after it ($acked writes acknowledged, $nsites sites)"
kill -TERM "$PID_B"; wait "$PID_B"; rc=$?; REPLICAS=
[ "$rc" = 0 ] || fail "replica B exited with $rc: $(tail -n 20 "$T/B.log")"
echo "pg_failover: ok"
