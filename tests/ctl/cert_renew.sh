#!/bin/sh
# cert_renew.sh — a Session is bound to the exact certificate the
# controller last issued for its site, and edges renew it themselves
# (issue 7 §3, and §5's "token before any signature work"):
#
#   edge_client ──Enroll (TLS)────────▶ meshwan-controller
#   edge_client ──Session (mTLS)──────▶   certs table: ACTIVE / NEXT
#   edge_client ──Renew (mTLS, old)───▶   per site, by SHA-256
#
#  1. re-enrolling a site retires its old certificate at once: the open
#     stream with it is closed, and a new Session with it is refused;
#  2. a certificate that expires under an open stream ends that stream
#     (cert_lifetime = 6s);
#  3. renewal end to end with cert_lifetime = 8s: the edge renews at the
#     renewal point over its mTLS channel (new key), switches to the new
#     certificate, keeps its intent, and stays connected across several
#     lifetimes.  With a long lifetime, step by step: the old certificate
#     stays good until the first Session with the new one, then its stream
#     is cut and it is refused; a renewal with the old key, or from a
#     retired certificate, is refused;
#  4. an unknown token with a broken CSR is answered about the token: the
#     controller looked at the token before doing any CSR work.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

# renew NAME NEWNAME — one renewal with NAME's certificate; NEWNAME.key/.crt.
renew() {
	"$EDGE" renew "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/$1.crt" "$T/$1.key" \
		"$T/$2.key" "$T/$2.crt"
}

write_config </dev/null
start_controller
s1=$(site_create '{"name":"s1","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}]}')
s2=$(site_create '{"name":"s2","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}]}')

# --- 4. The token first.
printf 'not a csr' >"$T/bad.csr"
out=$("$EDGE" enroll "127.0.0.1:$ENROLL" "$T/ca/ca.crt" \
	"mwe_0000000000000000000000000000000000000000000000000000000000000000" \
	"$T/bad.csr" "$T/bad.der"); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=16 msg=token-unknown' ||
	fail "unknown token with a bad CSR: rc=$rc $out (CSR work before the token check?)"

# --- 1. Re-enrollment retires the old certificate.
make_key old
out=$(enroll old "$(token "$s1")") || fail "enroll s1: $out"
der_to_pem old
session old "$s1" -o
wait_for 10 "$T/old.log" '^ack v=' || fail "no intent with the first certificate: $(cat "$T/old.log")"
make_key new
out=$(enroll new "$(token "$s1")") || fail "re-enroll s1: $out"
der_to_pem new
wait_for 5 "$T/old.log" '^closed code=16 .*certificate (retired|replaced)' ||
	fail "the stream of the retired certificate stays open: $(cat "$T/old.log")"
"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/old.crt" "$T/old.key" "$s1" -o >"$T/old2.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
wait_for 10 "$T/old2.log" '^closed code=7 ' || fail "a retired certificate opened a Session: $(cat "$T/old2.log")"
grep -q '^snapshot' "$T/old2.log" && fail "a retired certificate got an intent"
# ... and cannot renew itself back to life.
out=$(renew old zombie); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=7 ' || fail "renewal from a retired certificate: rc=$rc $out"
session new "$s1" -o
wait_for 10 "$T/new.log" '^ack v=' || fail "the new certificate got no intent: $(cat "$T/new.log")"
# A renewal must bring a new key pair.
cp "$T/new.key" "$T/samekey.key"
out=$("$EDGE" renew "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/new.crt" "$T/new.key" \
	"$T/samekey.key" "$T/samekey.crt" -k); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=3 msg=csr-invalid: a renewal needs a new key pair' ||
	fail "renewal with the old key: rc=$rc $out"
# A renewal: the old certificate stays good until the edge uses the new one.
out=$(renew new newer) || fail "renewal: $out"
echo "$out" | grep -q "^renewed site=$s1 serial=" || fail "renewal said: $out"
grep -q '^closed' "$T/new.log" && fail "renewal alone cut the running stream: $(cat "$T/new.log")"
session newer "$s1" -o
wait_for 10 "$T/newer.log" '^(ack v=|open applied)' || fail "renewed certificate refused: $(cat "$T/newer.log")"
wait_for 5 "$T/new.log" '^closed code=16 .*certificate (retired|replaced)' ||
	fail "the stream of the replaced certificate stays open: $(cat "$T/new.log")"
grep -q "site $s1: now on its renewed certificate" "$T/ctld.log" || fail "the switch is not logged"
"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/new.crt" "$T/new.key" "$s1" -o >"$T/new2.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
wait_for 10 "$T/new2.log" '^closed code=7 ' || fail "the replaced certificate opened a Session: $(cat "$T/new2.log")"
grep -q '^snapshot' "$T/new2.log" && fail "the replaced certificate got an intent"

# --- 2 and 3 need short lifetimes.
stop_controller
write_config <<CONF
cert_lifetime = 6s
CONF
start_controller

# 2. Expiry on a live stream.
make_key short
out=$(enroll short "$(token "$s2")") || fail "enroll s2: $out"
der_to_pem short
session short "$s2" -o
wait_for 10 "$T/short.log" '^ack v=' || fail "no intent: $(cat "$T/short.log")"
na=$(date -d "$(openssl x509 -in "$T/short.crt" -noout -enddate | cut -d= -f2)" +%s)
wait_for 15 "$T/short.log" '^closed code=16 .*certificate expired' ||
	fail "an expired certificate keeps its stream: $(cat "$T/short.log")"
closed=$(date +%s)
[ "$closed" -ge "$na" ] && [ "$closed" -le $((na + 3)) ] ||
	fail "stream closed at $closed, certificate notAfter $na"
echo "expired certificate's stream closed $((closed - na)) s after notAfter"

# 3. Renewal end to end.
stop_controller
write_config <<CONF
cert_lifetime = 8s
CONF
start_controller
make_key r
out=$(enroll r "$(token "$s2")") || fail "enroll s2 again: $out"
der_to_pem r
cp "$T/r.crt" "$T/first.crt"
session r "$s2" -r
started=$(date +%s)
wait_for 10 "$T/r.log" '^ack v=' || fail "no intent: $(cat "$T/r.log")"
wait_for 12 "$T/r.log" '^renewed serial=' || fail "no renewal: $(cat "$T/r.log")"
# Three lifetimes later the edge is still connected and converged, it has
# renewed each time, and no stream ended for an expired certificate.
deadline=$(( $(date +%s) + 25 ))
while [ "$(grep -c '^renewed serial=' "$T/r.log")" -lt 3 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "fewer than 3 renewals: $(cat "$T/r.log")"
	sleep 0.2
done
grep -q 'certificate expired' "$T/r.log" && fail "a renewing edge lost its stream to expiry: $(cat "$T/r.log")"
grep -q '^renew failed' "$T/r.log" && fail "a renewal failed: $(cat "$T/r.log")"
# At the renewal point (a third of 8 s + 1 s left: every ~6 s), not
# continuously.
took=$(( $(date +%s) - started ))
[ "$took" -ge 12 ] || fail "3 renewals in $took s: renewing too often: $(cat "$T/r.log")"
echo "3 renewals in $took s with cert_lifetime = 8s"
# (Each switch leaves the edge disconnected for the moment between its
# old stream and its new one's hello.)
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$s2")" = 200 ] &&
	jq -e '.connected and .converged' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "renewing edge not connected and converged: $(cat "$T/out")"
	sleep 0.1
done
# After a renewal the edge resumed from its version: no second snapshot.
[ "$(grep -c '^snapshot' "$T/r.log")" = 1 ] || fail "renewal cost a full snapshot: $(cat "$T/r.log")"
openssl verify -CAfile "$T/ca/ca.crt" "$T/r.crt" >/dev/null || fail "renewed certificate does not chain"
openssl x509 -in "$T/r.crt" -noout -subject | grep -q "CN *= *site-$s2" || fail "renewed certificate CN"
[ "$(openssl x509 -in "$T/r.crt" -noout -pubkey)" != "$(openssl x509 -in "$T/first.crt" -noout -pubkey)" ] ||
	fail "renewal kept the old key"
stop_controller
echo "cert_renew: ok"
