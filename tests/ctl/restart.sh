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
# reaches it as a delta from that version.
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
session br1 "$br1"
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

# The next change is a delta from the version applied before the restart.
site_create '{"name":"br2","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}' >/dev/null
wait_for 5 "$T/br1.log" "^delta from=$v v=$((v + 1)) up=1 rm=0\$" || fail "no delta after the restart: $(cat "$T/br1.log")"
[ "$(grep -c '^snapshot' "$T/br1.log")" = 1 ] || fail "a snapshot instead of a delta"
stop_controller
echo "restart: ok"
