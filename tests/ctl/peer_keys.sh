#!/bin/sh
# peer_keys.sh — peers' epoch keys travel in the versioned intent, and an
# operator can order a rekey:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client a
#                   (127.0.0.1, free   ◀──Session (mTLS)── edge_client b
#                    ports, temp dir)
#
# a announces a new epoch key -> b gets a delta whose tunnel to a carries
# a's signed keys (checked against a's certificate), acks, converges; a
# fresh snapshot carries them too, and they survive a restart.  POST /tunnels/{id}/rekey -> the
# make-before-break sequence with reason "operator", run to its end, and
# audited; `meshwanctl site rekey` for all of a site's tunnels.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

a=$(site_create '{"name":"a","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
done

# b first, then a announcing epoch 1.
session b "$b"
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent: $(cat "$T/b.log")"
session a "$a" -k 1
wait_for 10 "$T/a.log" '^announced epoch=1$' || fail "a did not announce: $(cat "$T/a.log")"

# The relay is immediate; the versioned intent follows as a delta.
wait_for 5 "$T/b.log" "^peer_keys site=$a n=1 epoch=1\$" || fail "no PeerKeys relay: $(cat "$T/b.log")"
wait_for 5 "$T/b.log" "^  upsert tunnel=[0-9]+ peer=$a cert=[1-9][0-9]* .* keys=1:[0-9]+\$" ||
	fail "no delta carrying a's key: $(cat "$T/b.log")"
v=$(sed -n 's/^delta from=[0-9]* v=\([0-9]*\) .*/\1/p' "$T/b.log" | tail -n 1)
wait_for 3 "$T/b.log" "^ack v=$v\$" || fail "key delta not acked"
deadline=$(( $(date +%s) + 5 ))
while :; do
	[ "$(api GET "/api/v1/edges/$b")" = 200 ] || fail "GET /edges/$b"
	jq -e --argjson v "$v" '.connected and .converged and .applied_version == $v' \
		"$T/out" >/dev/null && break
	[ "$(date +%s)" -lt "$deadline" ] || fail "b not converged at $v: $(cat "$T/out")"
	sleep 0.1
done

# a comes back with epoch 2: b's tunnel now carries both (current and next).
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 2
wait_for 5 "$T/b.log" "^  upsert tunnel=[0-9]+ peer=$a .* keys=1:[0-9]+,2:[0-9]+\$" ||
	fail "no delta with epochs 1 and 2: $(cat "$T/b.log")"

# The controller's hash of those in-place key updates is the edge's.
grep -q 'convergence hash mismatch' "$T/ctld.log" && fail "hash mismatch after a key delta"
[ "$(grep -c '^snapshot' "$T/b.log")" = 1 ] || fail "b needed a resync: $(cat "$T/b.log")"

# Restart: the keys are persisted, so b's intent rebuilt at its version
# hashes as b acked it, and b (reconnecting with its cached intent) is up
# to date: nothing is sent.
v=$(sed -n 's/^ack v=\([0-9]*\)$/\1/p' "$T/b.log" | tail -n 1)
wait_for 5 "$T/b.log" "^ack v=$v\$" || fail "b did not ack"
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$b")" = 200 ] && jq -e --argjson v "$v" '.applied_version == $v' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "b's ack not stored: $(cat "$T/out")"
	sleep 0.1
done
# (a stays away meanwhile: its reconnect would announce epoch 3 and give
# b a new version before b's hello.)
kill "$PID_a"; wait "$PID_a" 2>/dev/null
stop_controller
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config </dev/null
start_controller
wait_for 15 "$T/ctld.log" "session: site $b connected .*applied $v, current $v, up to date" ||
	fail "b not up to date after a restart: $(grep 'session:' "$T/ctld.log")"
session a "$a" -k 2    # epoch 2 again: not above the stored one, ignored
wait_for 10 "$T/a.log" '^ack v=' || fail "a did not come back: $(cat "$T/a.log")"

# A new session of b without any cached intent: the snapshot has them.
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b"
wait_for 10 "$T/b.log" "^  tunnel tunnel=[0-9]+ peer=$a .* keys=1:[0-9]+,2:[0-9]+\$" ||
	fail "snapshot without a's keys: $(cat "$T/b.log")"
grep -q '^peer_keys' "$T/b.log" && fail "PeerKeys replayed on hello although the intent has them"

wait_for 5 "$T/b.log" '^ack v=' || fail "b did not ack its snapshot"

# Operator rekey of the tunnel: both directions go make-before-break.
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
tid=$(jq -r '.tunnels[0].id' "$T/out")
[ "$(api POST /api/v1/tunnels/999999/rekey)" = 404 ] || fail "unknown tunnel: $(cat "$T/out")"
jq -e '.code == "not_found"' "$T/out" >/dev/null || fail "404 body: $(cat "$T/out")"
st=$(api POST "/api/v1/tunnels/$tid/rekey")
[ "$st" = 202 ] || fail "rekey gave $st: $(cat "$T/out")"
jq -e --argjson t "$tid" '.tunnel_id == $t and .status == "rekey requested"' "$T/out" >/dev/null ||
	fail "rekey reply: $(cat "$T/out")"
for n in a b; do
	# Receiver of one direction, sender of the other: install, switch,
	# retire, each acked by the test edge before the next step comes.
	wait_for 5 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=install-inbound reason=operator\$" ||
		fail "$n: no operator install-inbound: $(cat "$T/$n.log")"
	wait_for 5 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=switch-outbound reason=operator\$" ||
		fail "$n: no switch-outbound: $(cat "$T/$n.log")"
	wait_for 5 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=retire reason=operator\$" ||
		fail "$n: no retire: $(cat "$T/$n.log")"
done
# After the switch both intents carry the new SPIs (a delta each, acked).
wait_for 5 "$T/b.log" "^  upsert tunnel=$tid .*" || fail "b: no delta with the new SPIs"
grep -q "operator rekey of tunnel $tid" "$T/ctld.log" || fail "rekey not logged"
[ "$(api GET '/api/v1/events?limit=100')" = 200 ] || fail "GET /events"
jq -e --argjson t "$tid" '[.events[] | select(.action == "tunnel.rekey")] | length == 1' "$T/out" >/dev/null ||
	fail "no audit entry: $(cat "$T/out")"

# A whole site: every tunnel of a, epoch 3; a revoked or unknown site not.
# (through meshwanctl, as an operator would)
CTL=${CTL:-$BUILD/controller/meshwanctl}
MESHWAN_URL="$URL" MESHWAN_TOKEN="$ADMIN" "$CTL" site rekey a >"$T/ctl.out" 2>&1 ||
	fail "meshwanctl site rekey: $(cat "$T/ctl.out")"
grep -q '^rekey of site a requested' "$T/ctl.out" || fail "meshwanctl said: $(cat "$T/ctl.out")"
wait_for 5 "$T/b.log" "^rekey tunnel=$tid epoch=3 step=install-inbound reason=operator\$" ||
	fail "b: no epoch 3 after the site rekey: $(cat "$T/b.log")"
[ "$(api POST /api/v1/sites/999999/rekey)" = 404 ] || fail "unknown site: $(cat "$T/out")"

stop_controller
echo "peer_keys: ok"
