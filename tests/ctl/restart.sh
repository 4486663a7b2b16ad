#!/bin/sh
# restart.sh — state and edge versions survive a controller restart:
#
#   curl ──REST──▶ meshwan-controller (stopped with SIGTERM, started again
#                   on the same ports and database)
#                        ▲ Session (mTLS, reconnecting)
#                   edge_client
#
# After the restart the edge reconnects with its applied version and hash
# and gets nothing (it is up to date), not a snapshot; the next change
# reaches it as a delta from that version.  Then the edge falls behind
# (leaves without applying a delta, three changes happen, it comes back
# with its old version): one delta composed over the versions it missed.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller
hq=$(site_create '{"name":"hq","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
br1=$(site_create '{"name":"br1","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
tok=$(token "$br1"); make_key br1
enroll br1 "$tok" >/dev/null || fail "enroll"
der_to_pem br1
session br1 "$br1" -R 60
wait_for 10 "$T/br1.log" '^ack v=' || fail "no first intent: $(cat "$T/br1.log")"
v=$(sed -n 's/^ack v=\([0-9]*\)$/\1/p' "$T/br1.log" | tail -n 1)

deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET /api/v1/edges)" = 200 ] &&
	jq -e --argjson id "$br1" '.edges[] | select(.site_id == $id) | .converged' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "not converged before the restart"
	sleep 0.1
done
api GET /api/v1/sites >/dev/null; jq -S . "$T/out" >"$T/sites.before"

# Same ports again, so the edge's reconnection finds the new process.
stop_controller
cp "$T/controller.db" "$T/backup.db"
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config </dev/null
wait_for 10 "$T/br1.log" '^closed ' || fail "the edge did not see the controller go"
start_controller

wait_for 20 "$T/br1.log" "^open applied=$v\$" || fail "edge did not reconnect with version $v: $(cat "$T/br1.log")"
wait_for 10 "$T/ctld.log" "session: site $br1 connected .*applied $v, current $v, up to date" ||
	fail "controller did not find the edge up to date: $(grep 'session:' "$T/ctld.log")"
[ "$(grep -c '^snapshot' "$T/br1.log")" = 1 ] || fail "a snapshot after the restart: $(cat "$T/br1.log")"

api GET /api/v1/sites >/dev/null; jq -S . "$T/out" >"$T/sites.after"
cmp -s "$T/sites.before" "$T/sites.after" || fail "sites changed across the restart"
[ "$(api GET /api/v1/edges)" = 200 ] || fail "GET /edges"
jq -e --argjson id "$br1" --argjson v "$v" '.edges[] | select(.site_id == $id) |
	.intent_version == $v and .applied_version == $v and .converged' "$T/out" >/dev/null ||
	fail "edge versions lost: $(cat "$T/out")"

# The next change reaches the edge, which leaves without applying it ...
site_create '{"name":"br2","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}' >/dev/null
wait_for 5 "$T/br1.log" "^rewind: dropped delta v=$((v + 1)), back in 60 s\$" || fail "no delta after the restart: $(cat "$T/br1.log")"
# ... two more changes while it is away ...
site_create '{"name":"br3","role":"spoke","links":[{"name":"inet","address":"192.0.2.4"}]}' >/dev/null
site_create '{"name":"br4","role":"spoke","links":[{"name":"inet","address":"192.0.2.5"}],"lan_prefixes":["10.4.0.0/24"]}' >/dev/null
# ... and is told to come back once both are in (a fixed absence of 3 s
# was too short for two changes under ASan at load 50).
kill -USR2 "$PID_br1"
# ... and it comes back with version v: one delta over the versions it
# missed (two or three: the last two changes may be coalesced), with the
# three new tunnels and the one to hq, which now carries br4's prefix.
wait_for 10 "$T/br1.log" "^delta from=$v v=[0-9]+ up=4 rm=0\$" || fail "no composed delta: $(cat "$T/br1.log")"
nv=$(sed -n "s/^delta from=$v v=\([0-9]*\) up=4 rm=0\$/\1/p" "$T/br1.log")
[ "$nv" -ge $((v + 2)) ] || fail "the delta should span the versions the edge missed: $(cat "$T/br1.log")"
wait_for 5 "$T/br1.log" "^ack v=$nv\$" || fail "composed delta not acked"
[ "$(grep -c '^snapshot' "$T/br1.log")" = 1 ] || fail "a snapshot instead of a delta: $(cat "$T/br1.log")"

# The database restored from the older backup: the edge is ahead of the
# controller and must get a snapshot with a newer version than it runs.
stop_controller
rm -f "$T/controller.db-wal" "$T/controller.db-shm"
cp "$T/backup.db" "$T/controller.db"
start_controller
wait_for 20 "$T/br1.log" "^open applied=$nv\$" || fail "edge did not come back: $(cat "$T/br1.log")"
deadline=$(( $(date +%s) + 10 ))
until [ "$(grep -c '^snapshot' "$T/br1.log")" -ge 2 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no snapshot from the restored controller: $(cat "$T/br1.log")"
	sleep 0.05
done
sv=$(sed -n 's/^snapshot v=\([0-9]*\) tunnels=1$/\1/p' "$T/br1.log" | tail -n 1)
[ "$sv" -gt "$nv" ] || fail "snapshot version $sv is not above the edge's $nv"
grep -q "runs version $nv, beyond the controller's" "$T/ctld.log" || fail "the restored database was not noticed"
stop_controller
echo "restart: ok"
