#!/bin/sh
# rekey_time.sh — the time-based rekey, without waiting an hour:
#
#   meshwan-controller ◀──Session (mTLS)── edge_client a
#   (rekey_interval 2m) ◀──Session (mTLS)── edge_client b
#
# Both edges connected with fresh epochs; a SIGHUP sets the test-only
# test_clock_offset past rekey_interval, so every active epoch looks too
# old: each direction of the tunnel rekeys to epoch 2 with reason "time",
# make-before-break (install, switch, retire, each acked), exactly once.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config <<CONF
headless_grace = 1m
rekey_interval = 2m
CONF
start_controller
[ "$(api GET /api/v1/crypto)" = 200 ] && jq -e '.rekey_seconds == 120' "$T/out" >/dev/null ||
	fail "crypto profile: $(cat "$T/out")"

a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
	session "$n" "$id"
	wait_for 10 "$T/$n.log" '^ack v=' || fail "$n got no intent: $(cat "$T/$n.log")"
done
grep -q '^rekey' "$T/a.log" "$T/b.log" && fail "rekey before the epochs are old"

# Three minutes later, as far as the controller's clock is concerned.
write_config <<CONF
headless_grace = 1m
rekey_interval = 2m
test_clock_offset = 3m
CONF
kill -HUP "$CTLD_PID"
wait_for 5 "$T/ctld.log" 'reload: configuration from .* applied' || fail "reload"
for n in a b; do
	wait_for 10 "$T/$n.log" '^rekey tunnel=[0-9]+ epoch=2 step=install-inbound reason=time$' ||
		fail "$n: no time-based install-inbound: $(cat "$T/$n.log")"
	wait_for 5 "$T/$n.log" '^rekey tunnel=[0-9]+ epoch=2 step=switch-outbound reason=time$' ||
		fail "$n: no switch-outbound: $(cat "$T/$n.log")"
	wait_for 5 "$T/$n.log" '^rekey tunnel=[0-9]+ epoch=2 step=retire reason=time$' ||
		fail "$n: no retire: $(cat "$T/$n.log")"
done
grep -q 'rekey to epoch 2 (time, keys 0/0)' "$T/ctld.log" || fail "time rekey not logged"
# New epochs start at the shifted clock: no rekey storm, one epoch each.
[ "$(grep -c 'step=install-inbound' "$T/a.log")" = 1 ] || fail "a rekeyed more than once: $(cat "$T/a.log")"
[ "$(grep -c 'step=install-inbound' "$T/b.log")" = 1 ] || fail "b rekeyed more than once: $(cat "$T/b.log")"
stop_controller
echo "rekey_time: ok"
