#!/bin/sh
# rekey_request.sh — an edge asks for a rekey (issue 7 section 4):
#
#   meshwan-controller ◀──Session (mTLS)── edge_client a (hub)
#   (127.0.0.1, free   ◀──Session (mTLS)── edge_client b (spoke)
#    ports, temp dir)   sites a, b, c; tunnels a-b and a-c
#
#  - a asks once for its outbound direction of a-b (soft byte limit): the
#    normal ack-gated rekey runs, install at b, switch at a, retire at b,
#    reason "volume";
#  - b floods 50 requests for its outbound direction of a-b: one rekey,
#    the rest dropped, and the drop logged once, not fifty times;
#  - b asks for the a-c tunnel, which is not its own: refused, logged, no
#    order reaches anyone.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
c=$(site_create '{"name":"c","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
done
# tunnel_of X Y: the id of the tunnel between sites X and Y.
tunnel_of() {
	[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
	jq -r --argjson x "$1" --argjson y "$2" '.tunnels[] |
		select((.site_a == $x and .site_b == $y) or (.site_a == $y and .site_b == $x)) | .id' "$T/out"
}
ab=$(tunnel_of "$a" "$b"); ac=$(tunnel_of "$a" "$c")
[ -n "$ab" ] && [ -n "$ac" ] || fail "tunnels: $(cat "$T/out")"

session b "$b"
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent: $(cat "$T/b.log")"
session a "$a" -q "$ab,1"
wait_for 10 "$T/a.log" "^rekey_request tunnel=$ab dir=out n=1\$" || fail "a sent no request: $(cat "$T/a.log")"
wait_for 10 "$T/b.log" "^rekey tunnel=$ab epoch=2 step=install-inbound reason=volume\$" ||
	fail "b: no install-inbound: $(cat "$T/b.log")"
wait_for 10 "$T/a.log" "^rekey tunnel=$ab epoch=2 step=switch-outbound reason=volume\$" ||
	fail "a: no switch-outbound: $(cat "$T/a.log")"
wait_for 10 "$T/b.log" "^rekey tunnel=$ab epoch=2 step=retire reason=volume\$" ||
	fail "b: no retire: $(cat "$T/b.log")"
grep -q "site $a asked for a rekey of tunnel $ab $a->$b (soft-bytes)" "$T/ctld.log" ||
	fail "request not logged: $(grep 'rekey' "$T/ctld.log")"

# A flood from b: one rekey of b->a, the rest dropped, logged once.
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b" -q "$ab,50"
wait_for 10 "$T/b.log" "^rekey_request tunnel=$ab dir=out n=50\$" || fail "b sent no requests: $(cat "$T/b.log")"
wait_for 10 "$T/b.log" "^rekey tunnel=$ab epoch=2 step=switch-outbound reason=volume\$" ||
	fail "b: no switch-outbound: $(cat "$T/b.log")"
wait_for 10 "$T/a.log" "^rekey tunnel=$ab epoch=2 step=retire reason=volume\$" ||
	fail "a: no retire: $(cat "$T/a.log")"
wait_for 5 "$T/ctld.log" "site $b: rekey requests dropped" || fail "drops not logged: $(grep 'rekey' "$T/ctld.log")"
sleep 1 # let any wrongly accepted request show up as a rekey
[ "$(grep -c "site $b asked for a rekey" "$T/ctld.log")" = 1 ] ||
	fail "more than one request accepted: $(grep 'rekey' "$T/ctld.log")"
[ "$(grep -c "site $b: rekey requests dropped" "$T/ctld.log")" = 1 ] ||
	fail "drops logged more than once: $(grep 'dropped' "$T/ctld.log")"
grep -q "epoch=3" "$T/a.log" "$T/b.log" && fail "the flood started a second rekey"

# A tunnel of other sites: refused.
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b" -q "$ac,1"
wait_for 10 "$T/b.log" "^rekey_request tunnel=$ac dir=out n=1\$" || fail "b sent no request: $(cat "$T/b.log")"
wait_for 5 "$T/ctld.log" "site $b: rekey request for tunnel $ac refused: not its tunnel" ||
	fail "foreign request not refused: $(grep 'rekey' "$T/ctld.log")"
grep -q "^rekey tunnel=$ac " "$T/a.log" && fail "a got an order for the refused request"

stop_controller
echo "rekey_request: ok"
