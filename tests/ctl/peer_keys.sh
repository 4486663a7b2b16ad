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
# fresh snapshot carries them too.  POST /tunnels/{id}/rekey -> the
# make-before-break sequence with reason "operator", run to its end.
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

# A new session of b without any cached intent: the snapshot has them.
kill "$PID_b"; wait "$PID_b" 2>/dev/null
session b "$b"
wait_for 10 "$T/b.log" "^  tunnel tunnel=[0-9]+ peer=$a .* keys=1:[0-9]+,2:[0-9]+\$" ||
	fail "snapshot without a's keys: $(cat "$T/b.log")"
grep -q '^peer_keys' "$T/b.log" && fail "PeerKeys replayed on hello although the intent has them"

stop_controller
echo "peer_keys: ok"
