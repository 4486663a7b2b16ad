#!/bin/sh
# edge_session.sh — an edge's life as the controller sees it, end to end:
#
#   curl ──REST──▶ meshwan-controller ◀──Enroll (TLS)───── edge_client
#                   (127.0.0.1, free   ◀──Session (mTLS)──  (proto/rpc +
#                    ports, temp dir)                         pbconv)
#
# enroll with a one-time token, session -> snapshot, a new site through
# REST -> delta, ack -> converged in GET /api/v1/edges; a reused token, an
# expired token and a hello for another site than the certificate's are
# refused; a failed ack is shown as last_failure in GET /api/v1/edges
# and /edges/{id}, and stays after the resync's ok ack; epoch keys reach peers in their intents; a wrong convergence hash in an
# ack brings a full snapshot; revocation closes the revoked edge's stream
# and removes its tunnels (nothing else is rekeyed: tests/ctl/revoke.sh).
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

hq=$(site_create '{"name":"hq","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
br1=$(site_create '{"name":"br1","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}],"lan_prefixes":["10.1.0.0/24"]}')

# Enrollment: the certificate says site-<id>, chained to the CA.
tok=$(token "$br1")
make_key br1
out=$(enroll br1 "$tok") || fail "enroll br1: $out"
echo "$out" | grep -q "^enrolled site=$br1 " || fail "enroll said: $out"
der_to_pem br1
openssl x509 -in "$T/br1.crt" -noout -subject | grep -q "CN *= *site-$br1" || fail "certificate CN"
openssl verify -CAfile "$T/ca/ca.crt" "$T/br1.crt" >/dev/null || fail "certificate does not chain to the CA"
[ "$(stat -c %a "$T/ca/ca.key")" = 600 ] || fail "ca.key is not 0600"

# The token is single-use: another key is refused.  (The same key gets
# the same certificate again, for an edge that lost the answer:
# tests/ctl/enroll_replay.sh.)
make_key br1b
out=$(enroll br1b "$tok"); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=16 msg=token-used' || fail "reused token: rc=$rc $out"
out=$(enroll br1 "mwe_0000000000000000000000000000000000000000000000000000000000000000"); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=16 msg=token-unknown' || fail "unknown token: rc=$rc $out"
# A bad CSR is refused before the token is burnt.
tok2=$(token "$br1")
printf 'not a csr' >"$T/bad.csr"
out=$("$EDGE" enroll "127.0.0.1:$ENROLL" "$T/ca/ca.crt" "$tok2" "$T/bad.csr" "$T/bad.der"); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=3 msg=csr-invalid' || fail "bad CSR: rc=$rc $out"

# Session: hello -> snapshot -> ack.
session br1 "$br1" -k 1 -s -X
wait_for 10 "$T/br1.log" '^snapshot v=[0-9]+ tunnels=1$' || fail "no snapshot: $(cat "$T/br1.log")"
wait_for 5 "$T/br1.log" '^ack v=' || fail "no ack"
grep -q '^delta' "$T/br1.log" && fail "delta before any change"
# Its status report is kept and shown by the API; /metrics counts it.
wait_for 5 "$T/br1.log" '^status sent tunnels=1$' || fail "no status sent"
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$br1")" = 200 ] &&
	jq -e '.status.tunnels[0].state == "up" and .status.tunnels[0].sas[0].direction == "in" and .status.uptime_seconds == 42 and .software_version == "edge_client test" and .last_failure == null' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "status not shown: $(cat "$T/out")"
	sleep 0.1
done
curl -s -H "$H" "$URL/metrics" >"$T/metrics"
grep -q '^meshwan_edges_connected 1$' "$T/metrics" || fail "metrics: $(grep edges_connected "$T/metrics")"
grep -q 'meshwan_rpc_events_total{event="enroll_ok"} 1$' "$T/metrics" || fail "enroll not counted"
grep -q 'meshwan_rpc_events_total{event="enroll_refused"} 3$' "$T/metrics" || fail "refusals not counted: $(grep rpc_events "$T/metrics")"

# Another site through REST -> a delta within the deadline, acked: the
# new tunnel, and the one to hq, a hub that now carries br2's prefix
# (Peer.allowed_prefixes).
start_ms=$(date +%s%3N)
br2=$(site_create '{"name":"br2","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.3"}],"lan_prefixes":["10.2.0.0/24"]}')
wait_for 3 "$T/br1.log" '^delta from=[0-9]+ v=[0-9]+ up=2 rm=0$' || fail "no delta for br2: $(cat "$T/br1.log")"
echo "delta reached the edge $(( $(date +%s%3N) - start_ms )) ms after the REST reply"
v=$(sed -n 's/^delta from=[0-9]* v=\([0-9]*\) .*/\1/p' "$T/br1.log" | tail -n 1)
# br1 (-X) fails that delta: the controller resyncs, the snapshot is acked.
wait_for 3 "$T/br1.log" "^ack v=$v failed\$" || fail "delta not refused: $(cat "$T/br1.log")"
wait_for 3 "$T/br1.log" "^snapshot v=$v tunnels=2\$" || fail "no resync after a failed ack: $(cat "$T/br1.log")"
wait_for 3 "$T/br1.log" "^ack v=$v\$" || fail "delta not acked"

# Converged in GET /api/v1/edges (acks reach the store within 100 ms).
deadline=$(( $(date +%s) + 5 ))
while :; do
	[ "$(api GET /api/v1/edges)" = 200 ] || fail "GET /edges"
	jq -e --argjson id "$br1" --argjson v "$v" '.edges[] | select(.site_id == $id) |
		.connected and .converged and .applied_version == $v and .intent_version == $v' \
		"$T/out" >/dev/null && break
	[ "$(date +%s)" -lt "$deadline" ] || fail "edge not converged: $(cat "$T/out")"
	sleep 0.1
done
# ... and the failure is still shown after that ok ack, in both routes.
now=$(date +%s)
jq -e --argjson id "$br1" --argjson v "$v" --argjson now "$now" '.edges[] | select(.site_id == $id) |
	.last_failure.version == $v and .last_failure.reason == "test: refused on purpose" and
	(.last_failure.at | . <= $now and . > $now - 60)' "$T/out" >/dev/null ||
	fail "last_failure not in GET /edges: $(cat "$T/out")"
[ "$(api GET "/api/v1/edges/$br1")" = 200 ] || fail "GET /edges/$br1"
jq -e --argjson v "$v" '.converged and .last_failure.version == $v and (.last_failure.reason | test("^test: refused"))' "$T/out" >/dev/null ||
	fail "last_failure not in GET /edges/{id}: $(cat "$T/out")"
grep -q "site $br1 failed to apply version $v: test: refused" "$T/ctld.log" || fail "failed ack not logged"

# A second enrolled edge gets br1's signed epoch key relayed.
tok=$(token "$hq"); make_key hq
enroll hq "$tok" >/dev/null || fail "enroll hq"
der_to_pem hq
session hq "$hq" -x
wait_for 10 "$T/hq.log" '^snapshot v=[0-9]+ tunnels=2$' || fail "hq snapshot: $(cat "$T/hq.log")"
# br1 announced its key before hq enrolled: hq's snapshot carries it in
# the tunnel to br1, and its signature checks against br1's certificate.
wait_for 5 "$T/hq.log" "^  tunnel tunnel=[0-9]+ peer=$br1 cert=[1-9][0-9]* .* keys=1:[0-9]+\$" || fail "br1's key not in hq's intent: $(cat "$T/hq.log")"
# br1's intent now carries hq's certificate: one more delta.
wait_for 5 "$T/br1.log" '^delta from=[0-9]+ v=[0-9]+ up=1 rm=0$' || fail "no delta after hq enrolled"

# A certificate of br1 saying hello as hq is refused on Session.
"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/br1.crt" "$T/br1.key" "$hq" -o >"$T/liar.log" 2>&1 &
liar=$!; BG_PIDS="$BG_PIDS $liar"
wait_for 10 "$T/liar.log" '^closed code=7 ' || fail "hello for another site not refused: $(cat "$T/liar.log")"
grep -q '^snapshot' "$T/liar.log" && fail "the liar got an intent"

# Revocation: br2 enrolls, connects, is revoked -> its stream closes, its
# next Session is refused, peers lose its tunnel.
tok=$(token "$br2"); make_key br2
enroll br2 "$tok" >/dev/null || fail "enroll br2"
der_to_pem br2
session br2 "$br2" -o
wait_for 10 "$T/br2.log" '^ack v=' || fail "br2 no intent: $(cat "$T/br2.log")"
: >"$T/br1.log.mark"; lines=$(wc -l <"$T/br1.log")
st=$(api PATCH "/api/v1/sites/$br2" '{"revoked":true}')
[ "$st" = 200 ] || fail "revoking br2 gave $st: $(cat "$T/out")"
wait_for 5 "$T/br2.log" '^closed code=7 ' || fail "revoked stream not closed: $(cat "$T/br2.log")"
# (and hq no longer carries br2's prefix: its tunnel is upserted)
wait_for 5 "$T/br1.log" '^delta from=[0-9]+ v=[0-9]+ up=1 rm=1$' || fail "br2's tunnel not removed from br1: $(cat "$T/br1.log")"
# hq acked its first delta (br2's certificate) with a wrong convergence
# hash: the controller answers with a full snapshot of that version.
wait_for 5 "$T/hq.log" '^ack v=[0-9]+ with a wrong hash$' || fail "hq got no delta: $(cat "$T/hq.log")"
bad=$(sed -n 's/^ack v=\([0-9]*\) with a wrong hash$/\1/p' "$T/hq.log")
wait_for 5 "$T/hq.log" "^snapshot v=$bad tunnels=" || fail "no resync after a hash mismatch: $(cat "$T/hq.log")"
grep -q "convergence hash mismatch" "$T/ctld.log" || fail "mismatch not logged"
"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/br2.crt" "$T/br2.key" "$br2" -o >"$T/br2b.log" 2>&1 &
BG_PIDS="$BG_PIDS $!"
wait_for 10 "$T/br2b.log" '^closed code=7 ' || fail "revoked site's certificate accepted: $(cat "$T/br2b.log")"

# Expired tokens: a controller with a 1 s token lifetime.
stop_controller
write_config <<CONF
token_lifetime = 1s
CONF
start_controller
tok=$(token "$br1")
sleep 2   # let the token expire (time must pass; not a synchronisation)
out=$(enroll br1 "$tok"); rc=$?
[ $rc = 3 ] && echo "$out" | grep -q 'code=16 msg=token-expired' || fail "expired token: rc=$rc $out"
stop_controller
echo "edge_session: ok"
