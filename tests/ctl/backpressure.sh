#!/bin/sh
# backpressure.sh — a full send queue costs one snapshot, not a backlog:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client h
#                  (test_send_queue = 2: two messages per stream)
#                   sites h, p1..p15 (full mesh; only h connects)
#
# While h is away an operator rekeys it, so its next hello is answered by
# a snapshot plus one install-inbound order per tunnel (16 messages in a
# burst, so the overflow does not depend on timing), more than its queue
# holds: the controller drops, waits for the queue to drain, sends
# one snapshot per drain and the rekey orders it dropped, until h has
# every order and is converged.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config <<CONF
test_send_queue = 2
CONF
start_controller

h=$(site_create '{"name":"h","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
for i in $(seq 1 15); do
	site_create '{"name":"p'$i'","role":"hub","links":[{"name":"inet","address":"192.0.2.'$((i + 1))'"}]}' >/dev/null
done
make_key h
enroll h "$(token "$h")" >/dev/null || fail "enroll h"
der_to_pem h

# Tunnels exist once the loop has compiled the new sites.
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/tunnels?site=$h")" = 200 ] && jq -e '.tunnels | length == 15' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no tunnels: $(cat "$T/out")"
	sleep 0.1
done
tunnels=$(jq -r '.tunnels[].id' "$T/out")
st=$(api POST "/api/v1/sites/$h/rekey")
[ "$st" = 202 ] || fail "site rekey gave $st: $(cat "$T/out")"
wait_for 5 "$T/ctld.log" "operator rekey of site $h" || fail "rekey not started"

# h never acks the orders (-n), so each hello repeats all 15 of them; how
# fast gRPC empties the queue varies, so reconnect until one overflows.
try=0
while :; do
	try=$((try + 1))
	session h "$h" -n
	wait_for 10 "$T/h.log" '^ack v=' || fail "h got no intent: $(cat "$T/h.log")"
	wait_for 3 "$T/ctld.log" "site $h: send queue full" && break
	[ $try -lt 5 ] || fail "no overflow in 5 hellos of 16 messages: $(cat "$T/h.log")"
	kill "$PID_h"; wait "$PID_h" 2>/dev/null
done
wait_for 10 "$T/ctld.log" "site $h: queue drained, full resync" || fail "no resync after the drain"
for t in $tunnels; do
	wait_for 10 "$T/h.log" "^rekey tunnel=$t epoch=2 step=install-inbound " ||
		fail "the order for tunnel $t was lost: $(cat "$T/h.log")"
done
# Converged on the current version.
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$h")" = 200 ] &&
	jq -e '.connected and .converged' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "h not converged: $(cat "$T/out")"
	sleep 0.1
done
# At most one snapshot per drain (plus the hello's), never a delta
# backlog, and at least one resync snapshot after the overflow.  (A
# drain whose snapshot meets a queue refilled in between gives no
# snapshot of its own: the next drain's covers it.)
wait_for 5 "$T/h.log" '^snapshot v=' || fail "no snapshot"
deadline=$(( $(date +%s) + 5 ))
until [ "$(grep -c '^snapshot v=' "$T/h.log")" -ge 2 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no resync snapshot after the drain: $(cat "$T/h.log")"
	sleep 0.1
done
drains=$(grep -c "site $h: queue drained, full resync" "$T/ctld.log")
snaps=$(grep -c '^snapshot v=' "$T/h.log")
echo "$drains drain(s), $snaps snapshot(s)"
[ "$snaps" -le $((drains + 1)) ] || fail "$snaps snapshots for $drains drains: $(cat "$T/h.log")"
grep -q '^delta' "$T/h.log" && fail "deltas sent although a snapshot was due"
stop_controller
echo "backpressure: ok"
