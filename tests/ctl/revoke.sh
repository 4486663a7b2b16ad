#!/bin/sh
# revoke.sh — revoking a site removes its tunnels everywhere and refuses
# its certificate, and rekeys nothing else:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client a, b, c, d
#                   (127.0.0.1, free ports, temp dir; full mesh of 4 sites)
#
# d is revoked -> its stream closes, a, b and c each get one delta that
# removes their tunnel to d, and no rekey order: their tunnels among
# themselves keep their SPIs (and so their SA epochs), as a fresh
# snapshot shows.  d's certificate is refused.  (The revoked site could
# only ever derive the keys of its own tunnels: CONTROLLER.md,
# "Revocation".)
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

i=1
for n in a b c d; do
	id=$(site_create "{\"name\":\"$n\",\"role\":\"spoke\",\"region\":\"eu\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$i\"}]}")
	eval "$n=$id"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
	i=$((i + 1))
done
for n in a b c d; do
	eval "session $n \$$n"
done
for n in a b c d; do
	wait_for 10 "$T/$n.log" '^snapshot v=[0-9]+ tunnels=3$' || fail "$n: no snapshot: $(cat "$T/$n.log")"
	wait_for 5 "$T/$n.log" '^ack v=' || fail "$n: no ack"
done
# a's tunnels to b and c as its first snapshot had them (SPIs included).
grep -E "^  tunnel tunnel=[0-9]+ peer=($b|$c) " "$T/a.log" >"$T/a.before"
[ "$(wc -l <"$T/a.before")" = 2 ] || fail "a's tunnels: $(cat "$T/a.log")"

st=$(api PATCH "/api/v1/sites/$d" '{"revoked":true}')
[ "$st" = 200 ] || fail "revoking d gave $st: $(cat "$T/out")"
wait_for 5 "$T/d.log" '^closed code=7 ' || fail "revoked stream not closed: $(cat "$T/d.log")"
for n in a b c; do
	wait_for 5 "$T/$n.log" '^delta from=[0-9]+ v=[0-9]+ up=0 rm=1$' ||
		fail "$n: d's tunnel not removed: $(cat "$T/$n.log")"
done
# A later change reaches every edge after anything the revocation sent
# (one stream, in order): then no rekey order can still be on its way.
e=$(site_create '{"name":"e","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.9"}]}')
for n in a b c; do
	wait_for 5 "$T/$n.log" '^delta from=[0-9]+ v=[0-9]+ up=1 rm=0$' ||
		fail "$n: no delta for e: $(cat "$T/$n.log")"
	grep -q '^rekey' "$T/$n.log" && fail "$n got rekey orders: $(grep '^rekey' "$T/$n.log")"
done
grep -q 'rekey to epoch' "$T/ctld.log" && fail "the controller rekeyed: $(grep 'rekey to epoch' "$T/ctld.log")"

# d's tunnels are gone from the compiled topology.
[ "$(api GET "/api/v1/tunnels?site=$d")" = 200 ] || fail "GET /tunnels?site=d"
jq -e '.tunnels | length == 0' "$T/out" >/dev/null || fail "d still has tunnels: $(cat "$T/out")"

# A fresh snapshot of a: its tunnels to b and c unchanged (same SPIs),
# none to d.
kill "$PID_a"; wait "$PID_a" 2>/dev/null
mv "$T/a.log" "$T/a.first.log"
session a "$a"
wait_for 10 "$T/a.log" '^snapshot v=[0-9]+ tunnels=3$' || fail "a: no snapshot: $(cat "$T/a.log")"
grep -E "^  tunnel tunnel=[0-9]+ peer=$d " "$T/a.log" && fail "a still has a tunnel to d"
grep -E "^  tunnel tunnel=[0-9]+ peer=($b|$c) " "$T/a.log" >"$T/a.after"
cmp -s "$T/a.before" "$T/a.after" ||
	fail "a's tunnels to b and c changed: $(cat "$T/a.before") / $(cat "$T/a.after")"

# d's certificate is refused at stream open.
"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/d.crt" "$T/d.key" "$d" -o >"$T/d2.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
wait_for 10 "$T/d2.log" '^closed code=7 ' || fail "revoked certificate accepted: $(cat "$T/d2.log")"
grep -q '^snapshot' "$T/d2.log" && fail "the revoked site got an intent"
: "$e"

stop_controller
echo "revoke: ok"
