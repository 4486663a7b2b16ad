#!/bin/sh
# sa_keys.sh — both ends of a tunnel derive the same SA key for each
# direction, from what the contract names alone, and the controller
# relays only keys an edge may use:
#
#   meshwan-controller ◀──Session (mTLS)── edge_client a (hub)
#   (127.0.0.1, free   ◀──Session (mTLS)── edge_client b (spoke)
#    ports, temp dir)
#
# The test edges make real X25519 epoch keys, sign them with
# proto/epochsig and derive every SA they are told about with
# proto/sakey, printing a keyed fingerprint (never the key):
#  - b announces, then a: a's key rekeys the tunnel both ways (reason
#    "key"); the receiver's fingerprint of each new SA equals the
#    sender's, the two directions differ, and the intents that follow
#    name the same SAs (an edge restarting from its intent derives the
#    same keys);
#  - a key with not_after in the past, and the all-zero (small-order)
#    point, validly signed, are refused and never reach b;
#  - after a re-enrolls (new certificate), an epoch not above the
#    highest it ever announced is refused; a higher one is relayed and
#    rekeys the tunnel onto it;
#  - keys whose not_after passes after they were accepted leave the
#    peers' intents, and nothing is rekeyed onto them;
#  - a key announced while a rekey runs is used once that rekey is done.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
done

# fp LOG DIR EPOCH: the fingerprint an edge printed for a rekey order's SA.
fp() {
	sed -n "s/^sa tunnel=$tid dir=$2 sa_epoch=$3 .* fp=\([0-9a-f]*\)\$/\1/p" "$T/$1.log" | tail -n 1
}
# ifp LOG DIR EPOCH: the same, for the SA its intent names.
ifp() {
	sed -n "s/^intent_sa tunnel=$tid dir=$2 sa_epoch=$3 .* fp=\([0-9a-f]*\)\$/\1/p" "$T/$1.log" | tail -n 1
}

session b "$b" -k 1
wait_for 10 "$T/b.log" '^announced epoch=1$' || fail "b did not announce: $(cat "$T/b.log")"
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent: $(cat "$T/b.log")"
session a "$a" -k 1
wait_for 10 "$T/a.log" '^announced epoch=1$' || fail "a did not announce: $(cat "$T/a.log")"
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
tid=$(jq -r '.tunnels[0].id' "$T/out")

# Both directions rekeyed onto the two keys, make-before-break.
for n in a b; do
	wait_for 10 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=retire reason=key\$" ||
		fail "$n: no key rekey: $(cat "$T/$n.log")"
done
a_out=$(fp a out 2); b_in=$(fp b in 2); b_out=$(fp b out 2); a_in=$(fp a in 2)
echo "a->b: a $a_out b $b_in; b->a: b $b_out a $a_in"
[ -n "$a_out" ] && [ "$a_out" = "$b_in" ] || fail "a->b keys differ: $(grep '^sa ' "$T/a.log" "$T/b.log")"
[ -n "$b_out" ] && [ "$b_out" = "$a_in" ] || fail "b->a keys differ: $(grep '^sa ' "$T/a.log" "$T/b.log")"
[ "$a_out" != "$b_out" ] || fail "both directions have the same key"
grep -q "^sa tunnel=$tid dir=out sa_epoch=2 spi=[0-9]* keys=1/1 " "$T/a.log" ||
	fail "a's order does not name both key epochs: $(grep '^sa ' "$T/a.log")"

# The intents after the switch name the same SAs: same fingerprints.
wait_for 10 "$T/a.log" "^intent_sa tunnel=$tid dir=out sa_epoch=2 " || fail "a's intent lacks the new SA: $(cat "$T/a.log")"
wait_for 10 "$T/a.log" "^intent_sa tunnel=$tid dir=in sa_epoch=2 " || fail "a's intent lacks the new inbound SA"
wait_for 10 "$T/b.log" "^intent_sa tunnel=$tid dir=in sa_epoch=2 " || fail "b's intent lacks the new SA: $(cat "$T/b.log")"
[ "$(ifp a out 2)" = "$a_out" ] && [ "$(ifp a in 2)" = "$a_in" ] &&
	[ "$(ifp b in 2)" = "$b_in" ] || fail "intent SAs differ from the ordered ones: $(grep 'sa ' "$T/a.log" "$T/b.log")"
grep -q 'derive failed' "$T/a.log" "$T/b.log" && fail "a derivation failed: $(grep 'derive failed' "$T/a.log" "$T/b.log")"

# An expired key and a small-order point, validly signed: refused, not relayed.
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 2 -E
wait_for 10 "$T/ctld.log" "site $a: key epoch 2 refused: epoch 2 expired" ||
	fail "expired key not refused: $(grep "site $a" "$T/ctld.log")"
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 3 -Z
wait_for 10 "$T/ctld.log" "site $a: key epoch 3 refused: .*small order" ||
	fail "small-order key not refused: $(grep "site $a" "$T/ctld.log")"
grep -q "^peer_keys site=$a n=[0-9]* epoch=[23]\$" "$T/b.log" && fail "a refused key reached b: $(cat "$T/b.log")"
grep -q "^  upsert tunnel=$tid peer=$a .*keys=.*[23]:" "$T/b.log" && fail "a refused key is in b's intent"

# Re-enrollment: new certificate, old keys void, numbering must go on.
kill "$PID_a"; wait "$PID_a" 2>/dev/null
make_key a
enroll a "$(token "$a")" >/dev/null || fail "re-enroll a"
der_to_pem a
session a "$a" -k 1
wait_for 10 "$T/ctld.log" "site $a: key epoch 1 not above 1" ||
	fail "a reused epoch 1 after re-enrolling: $(grep "site $a" "$T/ctld.log")"
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 4
wait_for 10 "$T/b.log" "^peer_keys site=$a n=1 epoch=4\$" || fail "a's epoch 4 not relayed: $(cat "$T/b.log")"
for n in a b; do
	wait_for 10 "$T/$n.log" "^rekey tunnel=$tid epoch=3 step=retire reason=key\$" ||
		fail "$n: no rekey onto a's new key: $(cat "$T/$n.log")"
done
a_out=$(fp a out 3); b_in=$(fp b in 3); b_out=$(fp b out 3); a_in=$(fp a in 3)
[ -n "$a_out" ] && [ "$a_out" = "$b_in" ] && [ -n "$b_out" ] && [ "$b_out" = "$a_in" ] ||
	fail "keys differ after re-enrollment: $(grep '^sa ' "$T/a.log" "$T/b.log")"
grep -q "^sa tunnel=$tid dir=out sa_epoch=3 spi=[0-9]* keys=4/1 " "$T/a.log" ||
	fail "epoch 3 does not use a's key 4: $(grep '^sa ' "$T/a.log")"

# Keys that expire once accepted are dropped and never relayed again:
# three hours later by the controller's (test) clock, the 2-hour keys are
# gone from b's intent, and no direction is rekeyed onto a missing key.
write_config <<CONF
test_clock_offset = 3h
CONF
kill -HUP "$CTLD_PID"
wait_for 10 "$T/ctld.log" "site $a: 1 epoch key\\(s\\) expired; no longer relayed" ||
	fail "a's expired key kept: $(grep "site $a" "$T/ctld.log")"
wait_for 10 "$T/b.log" "^  upsert tunnel=$tid peer=$a cert=[0-9]+ .* keys=\$" ||
	fail "b's intent still carries a's expired key: $(tail -n 20 "$T/b.log")"
# (The scan that dropped the keys ran the time rekeys in the same tick,
# before that delta: an order onto a missing key would be here by now.)
grep -q "epoch=4 " "$T/a.log" "$T/b.log" && fail "rekeyed onto an expired key"

# A key that arrives while a rekey runs (one at a time per direction):
# that direction moves on to it as soon as the running rekey switched.
write_config </dev/null
kill -HUP "$CTLD_PID"
deadline=$(( $(date +%s) + 10 ))
until [ "$(grep -c 'reload: configuration from .* applied' "$T/ctld.log")" -ge 2 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "second reload"
	sleep 0.1
done
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b" -n -k 2     # never acks: its rekeys stay running
wait_for 10 "$T/b.log" '^announced epoch=2$' || fail "b did not announce 2"
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 5
wait_for 10 "$T/b.log" "^rekey tunnel=$tid epoch=4 step=switch-outbound reason=key\$" ||
	fail "b: no running rekey: $(cat "$T/b.log")"
kill "$PID_a"; wait "$PID_a" 2>/dev/null
session a "$a" -k 6
wait_for 10 "$T/b.log" "^peer_keys site=$a n=2 epoch=6\$" || fail "a's key 6 not relayed: $(cat "$T/b.log")"
grep -q "rekey to epoch 5" "$T/ctld.log" && fail "a second rekey started while one ran"
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b"             # acks the repeated steps now
wait_for 10 "$T/ctld.log" "tunnel $tid $a->$b: rekey to epoch 5 \\(key, keys 6/2\\)" ||
	fail "a->b did not move on to key 6: $(grep 'rekey to' "$T/ctld.log")"
wait_for 10 "$T/ctld.log" "tunnel $tid $b->$a: rekey to epoch 5 \\(key, keys 2/6\\)" ||
	fail "b->a did not move on to key 6: $(grep 'rekey to' "$T/ctld.log")"

stop_controller
echo "sa_keys: ok"
