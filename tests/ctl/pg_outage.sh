#!/bin/sh
# pg_outage.sh — the database stopped for 30 s under two replicas
# (issue 12; controller/CONTROLLER.md, "Two replicas on PostgreSQL"):
#
#   edge a ──▶ replica A ──┐
#   edge b ──▶ replica B ──┴──▶ PostgreSQL  (stopped 30 s, started again)
#
# While it is down: both edges keep their sessions (no close), and
# writes through either replica are refused with 503 naming the cause.
# Edge b, restarted, reconnects to replica B and is served from memory
# (its site and certificate are known there); an enrollment, which needs
# a write, is refused with UNAVAILABLE and a reason saying so.
# When it is back, without restarting anything: a write through each
# replica succeeds, reaches both edges, every site made before the
# outage is still there, and both edges' acks are stored (converged).
# PG_OUTAGE_S changes the 30 s.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
trap 'replica_cleanup; cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"
OUT=${PG_OUTAGE_S:-30}

write_config <<EOF2
store = $PG_CONNINFO
EOF2
start_controller
URL_A=$URL
replica_start B </dev/null

a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
enroll_site a "$a"
enroll_site b "$b"
edge a "$a" "127.0.0.1:$GRPC" -t "$T/a.tunnels"
edge b "$b" "127.0.0.1:$GRPC_B" -t "$T/b.tunnels"
wait_for 10 "$T/a.log" '^ack v=' || fail "a got no intent"
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent"
URL=$URL_B
site_create '{"name":"before","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}' >/dev/null
wait_for 10 "$T/a.tunnels" "peer 3 " || fail "a: no tunnel to the site made before"

tok_late=$(token "$(pg_sql "SELECT id FROM sites WHERE name = 'before'")")
make_key late

# (a loaded machine may have failed a first connection: count from here)
closed_a=$(grep -c '^closed' "$T/a.log")
closed_b=$(grep -c '^closed' "$T/b.log")
pg_halt || fail "could not stop PostgreSQL"
t0=$(date +%s)
n503=0
while [ $(( $(date +%s) - t0 )) -lt "$OUT" ]; do
	for u in "$URL_A" "$URL_B"; do
		URL=$u
		st=$(api POST /api/v1/sites '{"name":"during","role":"spoke","links":[{"name":"inet","address":"192.0.2.9"}]}')
		[ "$st" = 503 ] || fail "a write through $u during the outage gave $st: $(cat "$T/out")"
		jq -e '.code == "busy" and (.message | startswith("database unavailable:"))' "$T/out" >/dev/null ||
			fail "503 body: $(cat "$T/out")"
		n503=$((n503 + 1))
	done
	for n in a b; do
		eval "c0=\$closed_$n"
		[ "$(grep -c '^closed' "$T/$n.log")" = "$c0" ] ||
			fail "$n's session closed during the outage: $(grep '^closed' "$T/$n.log" | tail -n 1)"
	done
	kill -0 "$CTLD_PID" && kill -0 "$PID_B" || fail "a replica died during the outage"
	sleep 2
	if [ "$n503" = 2 ]; then
		# A reconnecting edge is served from memory.
		kill "$PID_b"; wait "$PID_b" 2>/dev/null
		edge b "$b" "127.0.0.1:$GRPC_B" -t "$T/b.tunnels"
		closed_b=0
		wait_for 10 "$T/b.log" '^ack v=' ||
			fail "b reconnecting during the outage was not served: $(cat "$T/b.log"; tail -n 5 "$T/B.log")"
		grep -q "site $b: database unavailable: .*; serving version .* from memory" "$T/B.log" ||
			fail "B did not say it served b from memory: $(tail -n 5 "$T/B.log")"
		# An enrollment needs a write: refused UNAVAILABLE (the agent
		# retries), saying why.
		out=$(enroll late "$tok_late" 2>&1)
		echo "$out" | grep -q "the controller's database is unavailable; try again later (code 14)" ||
			fail "enrollment during the outage: $out"
	fi
done
echo "pg_outage: $n503 writes refused with 503 in $OUT s; sessions kept; a reconnecting edge served, an enrollment refused (UNAVAILABLE)"
pg_resume || fail "could not start PostgreSQL again"
t1=$(now_ms)

# Back: writes through each replica succeed (within the reconnect
# backoff, at most 5 s) and reach both edges.
i=4
for u in "$URL_A" "$URL_B"; do
	URL=$u
	deadline=$(( $(date +%s) + 15 ))
	until [ "$(api POST /api/v1/sites "{\"name\":\"after$i\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$i\"}]}")" = 201 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "writes through $u still refused: $(cat "$T/out")"
		sleep 0.2
	done
	i=$((i + 1))
done
echo "pg_outage: writes through both replicas accepted $(( $(now_ms) - t1 )) ms after the database came back"
nsites=$(pg_sql 'SELECT COUNT(*) FROM sites')
[ "$nsites" = 5 ] || fail "$nsites sites stored, want 5: $(pg_sql 'SELECT name FROM sites')"
[ "$(pg_sql "SELECT COUNT(*) FROM sites WHERE name IN ('a', 'b', 'before')")" = 3 ] || fail "a site made before the outage is gone"
deadline=$(( $(date +%s) + 10 ))
for n in a b; do
	until [ "$(grep -c '^tunnel ' "$T/$n.tunnels")" = 4 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$n: $(grep -c '^tunnel ' "$T/$n.tunnels") tunnels, want 4"
		sleep 0.1
	done
	eval "c0=\$closed_$n"
	[ "$(grep -c '^closed' "$T/$n.log")" = "$c0" ] || fail "$n's session closed"
done
URL=$URL_A
until [ "$(api GET /api/v1/edges)" = 200 ] &&
	[ "$(jq '[.edges[] | select(.connected and .converged)] | length' "$T/out")" = 2 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "edges not converged: $(cat "$T/out")"
	sleep 0.1
done
grep -q 'store: database connection restored' "$T/ctld.log" || fail "A did not log the reconnect"
grep -q 'store: database connection restored' "$T/B.log" || fail "B did not log the reconnect"
kill -TERM "$PID_B"; wait "$PID_B"; rc=$?; REPLICAS=
[ "$rc" = 0 ] || fail "replica B exited with $rc"
stop_controller
echo "pg_outage: ok"
