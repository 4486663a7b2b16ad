#!/bin/sh
# pg_ha_keys.sh — what edges tell one replica reaches the edges of the
# other (controller/CONTROLLER.md, "Two replicas on PostgreSQL"):
#
#   curl ──▶ replica A ◀── edge a (hub)      replica B ◀── edge b (spoke)
#                 └──────────▶ PostgreSQL ◀──────┘
#
#  1. epoch keys: a announces on A, b announces on B; each gets the
#     other's PeerKeys relay and an intent delta carrying the key;
#  2. an operator rekey of the a–b tunnel ordered through A's REST runs
#     to its end on both edges (install, switch, retire in both
#     directions), although b's steps are sent by B;
#  2b. an edge c on B asks for a rekey of its tunnel to a (RekeyRequest,
#     soft byte limit): a, on A, installs, c switches, a retires;
#  3. b renews its certificate on B: A takes b's new certificate and a
#     gets a delta of its tunnel to b; then a renews on A, the same way
#     back.  The test edges
#     renew when told (SIGUSR1), not at the renewal point: with a lifetime
#     short enough to reach that point in a test, a certificate could
#     expire before a slow (ASan, loaded) controller renewed it, and c's
#     stream would be closed at its expiry.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
trap 'replica_cleanup; cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"

write_config <<EOF2
store = $PG_CONNINFO
EOF2
start_controller
replica_start B </dev/null

a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
enroll_site a "$a"
enroll_site b "$b"
edge b "$b" "127.0.0.1:$GRPC_B" -k 1 -r
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent: $(cat "$T/b.log")"
grep -q "session: site $b connected" "$T/B.log" || fail "b is not on replica B"
edge a "$a" "127.0.0.1:$GRPC" -k 1 -r
wait_for 10 "$T/a.log" '^ack v=' || fail "a got no intent: $(cat "$T/a.log")"

# 1. Keys across replicas, both ways: the relay and the versioned intent.
wait_for 5 "$T/b.log" "^peer_keys site=$a n=1 epoch=1\$" || fail "b: no PeerKeys of a through B: $(cat "$T/b.log")"
wait_for 5 "$T/b.log" "^  (upsert|tunnel) tunnel=[0-9]+ peer=$a .* keys=1:[0-9]+\$" || fail "b: no intent with a's key"
wait_for 5 "$T/a.log" "^  (upsert|tunnel) tunnel=[0-9]+ peer=$b .* keys=1:[0-9]+\$" || fail "a: no intent with b's key: $(cat "$T/a.log")"
echo "pg_ha_keys: epoch keys relayed across replicas"

# 2. An operator rekey through A of a tunnel whose end b is on B.
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
tid=$(jq -r '.tunnels[0].id' "$T/out")
# A rekey already running (the keys' own, reason key) answers an
# operator's request: order it when none runs, again if one slipped in.
try=0
until grep -Eq "tunnel $tid [0-9]+->[0-9]+: rekey to epoch [0-9]+ \\(operator" "$T/ctld.log"; do
	try=$((try + 1))
	[ $try -le 3 ] || fail "A did not start the rekey"
	deadline=$(( $(date +%s) + 20 ))
	until [ "$(pg_sql "SELECT COUNT(*) FROM sa_epochs WHERE tunnel_id = $tid AND state IN (1, 2)")" = 0 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "rekeys of tunnel $tid never finish"
		sleep 0.2
	done
	st=$(api POST "/api/v1/tunnels/$tid/rekey")
	[ "$st" = 202 ] || fail "rekey gave $st: $(cat "$T/out")"
	wait_for 5 "$T/ctld.log" "tunnel $tid [0-9]+->[0-9]+: rekey to epoch [0-9]+ \\(operator" || :
done
ep=$(sed -n "s/.*tunnel $tid [0-9]*->[0-9]*: rekey to epoch \([0-9]*\) (operator.*/\1/p" "$T/ctld.log" | head -n 1)
for n in a b; do
	for step in install-inbound switch-outbound retire; do
		wait_for 10 "$T/$n.log" "^rekey tunnel=$tid epoch=[0-9]+ step=$step reason=operator\$" ||
			fail "$n: no $step (operator, epoch $ep or so): $(grep rekey "$T/$n.log"; tail -n 20 "$T/B.log")"
	done
done
[ "$(pg_sql "SELECT COUNT(DISTINCT sender_site) FROM sa_epochs WHERE tunnel_id = $tid AND state = 3")" = 2 ] ||
	fail "epoch $ep not active in both directions: $(pg_sql "SELECT sender_site, epoch, state FROM sa_epochs WHERE tunnel_id = $tid")"
# One of the two is the leader (either log; not 10 s on A's, then 1 s
# on B's).
deadline=$(( $(date +%s) + 10 ))
until grep -q 'replica: this controller is now the leader' "$T/ctld.log" "$T/B.log"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no leader"
	sleep 0.05
done
echo "pg_ha_keys: a rekey ordered through A ran on the edge held by B"

# 2b. c (on B) asks for a rekey of its direction towards a (on A).
c=$(site_create '{"name":"c","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}')
enroll_site c "$c"
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
tac=$(jq -r --argjson a "$a" --argjson c "$c" '.tunnels[] | select((.site_a == $a and .site_b == $c) or (.site_a == $c and .site_b == $a)) | .id' "$T/out")
[ -n "$tac" ] || fail "no a-c tunnel: $(cat "$T/out")"
edge c "$c" "127.0.0.1:$GRPC_B" -q "$tac,1"
wait_for 10 "$T/c.log" "^rekey_request tunnel=$tac" || fail "c did not ask: $(cat "$T/c.log")"
wait_for 10 "$T/a.log" "^rekey tunnel=$tac epoch=[0-9]+ step=install-inbound reason=volume\$" ||
	fail "a (on A): no install for c's request: $(grep rekey "$T/a.log"; tail -n 20 "$T/B.log")"
wait_for 10 "$T/c.log" "^rekey tunnel=$tac epoch=[0-9]+ step=switch-outbound reason=volume\$" ||
	fail "c (on B): no switch: $(grep rekey "$T/c.log")"
wait_for 10 "$T/a.log" "^rekey tunnel=$tac epoch=[0-9]+ step=retire reason=volume\$" ||
	fail "a: no retire: $(grep rekey "$T/a.log")"
echo "pg_ha_keys: an edge's rekey request on B ran with its peer on A"

# 3. b renews on B; A relays the new certificate to a.
n0=$(grep -c "^  upsert tunnel=$tid peer=$b" "$T/a.log")
grep -q '^renewed' "$T/a.log" "$T/b.log" && fail "a renewal before it was asked for"
kill -USR1 "$PID_b"
wait_for 30 "$T/b.log" '^renewed serial=' || fail "b did not renew: $(cat "$T/b.log")"
wait_for 10 "$T/ctld.log" "site $b: new certificate from another controller" ||
	fail "A did not take b's renewed certificate: $(tail -n 20 "$T/ctld.log")"
deadline=$(( $(date +%s) + 10 ))
until [ "$(grep -c "^  upsert tunnel=$tid peer=$b" "$T/a.log")" -gt "$n0" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "a: no delta with b's new certificate: $(tail -n 20 "$T/a.log")"
	sleep 0.1
done
# ... and a renews on A: B takes it, b gets a delta of its tunnel to a.
m0=$(grep -c "site $a: new certificate from another controller" "$T/B.log")
n0=$(grep -c "^  upsert tunnel=$tid peer=$a" "$T/b.log")
kill -USR1 "$PID_a"
wait_for 30 "$T/a.log" '^renewed serial=' || fail "a did not renew: $(cat "$T/a.log")"
deadline=$(( $(date +%s) + 10 ))
until [ "$(grep -c "site $a: new certificate from another controller" "$T/B.log")" -gt "$m0" ] &&
	[ "$(grep -c "^  upsert tunnel=$tid peer=$a" "$T/b.log")" -gt "$n0" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "a's renewed certificate did not reach b through B: $(tail -n 20 "$T/B.log")"
	sleep 0.1
done
grep -q 'convergence hash mismatch' "$T/ctld.log" "$T/B.log" && fail "hash mismatch"
kill -TERM "$PID_B"; wait "$PID_B"; rc=$?; REPLICAS=
[ "$rc" = 0 ] || fail "replica B exited with $rc"
stop_controller
echo "pg_ha_keys: ok"
