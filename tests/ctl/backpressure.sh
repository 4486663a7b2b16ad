#!/bin/sh
# backpressure.sh — a full send queue costs one snapshot, not a backlog:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client h
#                  (test_send_queue = 2: two messages per stream)
#                   sites h, p1..p5 (full mesh; only h connects)
#
# While h is away an operator rekeys it, so its next hello is answered by
# a snapshot plus one install-inbound order per tunnel, more than its
# queue holds: the controller drops, waits for the queue to drain, sends
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
for i in 1 2 3 4 5; do
	site_create '{"name":"p'$i'","role":"hub","links":[{"name":"inet","address":"192.0.2.'$((i + 1))'"}]}' >/dev/null
done
make_key h
enroll h "$(token "$h")" >/dev/null || fail "enroll h"
der_to_pem h

# Tunnels exist once the loop has compiled the new sites.
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/tunnels?site=$h")" = 200 ] && jq -e '.tunnels | length == 5' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no tunnels: $(cat "$T/out")"
	sleep 0.1
done
st=$(api POST "/api/v1/sites/$h/rekey")
[ "$st" = 202 ] || fail "site rekey gave $st: $(cat "$T/out")"
wait_for 5 "$T/ctld.log" "operator rekey of site $h" || fail "rekey not started"

session h "$h"
wait_for 10 "$T/ctld.log" "site $h: send queue full" || fail "no overflow: $(cat "$T/h.log")"
wait_for 10 "$T/ctld.log" "site $h: queue drained, full resync" || fail "no resync after the drain"
for t in $(jq -r '.tunnels[].id' "$T/out"); do
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
# One snapshot for the hello plus one per drain, never a delta backlog.
drains=$(grep -c "site $h: queue drained, full resync" "$T/ctld.log")
snaps=$(grep -c '^snapshot v=' "$T/h.log")
echo "$drains drain(s), $snaps snapshot(s)"
[ "$snaps" = $((drains + 1)) ] || fail "$snaps snapshots for $drains drains: $(cat "$T/h.log")"
grep -q '^delta' "$T/h.log" && fail "deltas sent although a snapshot was due"
stop_controller
echo "backpressure: ok"
