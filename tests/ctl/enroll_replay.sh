#!/bin/sh
# enroll_replay.sh — an Enroll whose answer was lost can be retried:
#
#   edge_client ──Enroll(token, CSR)──▶ meshwan-controller (sqlite)
#
#   site a: enrolled with key a; the same token again with another CSR of
#     key a gets the same certificate, byte for byte, and the controller
#     logs the replay; nothing is re-issued (the certificate still opens
#     a Session, a's stream is not closed as retired); the same token
#     with key x is refused "token already used";
#   site b: enrolled, then revoked: the same token and key are refused;
#   site c: token_lifetime = 3s; enrolled, and once the token has
#     expired the same token and key are refused.
# Before, every repeated token was refused, so an edge that lost the
# answer after the commit could not come up without a new token.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl cmp
[ -x "$EDGE" ] || fail "$EDGE is not built"

# csr_again KEYNAME NAME — another CSR (new signature) of KEYNAME's key.
csr_again() {
	openssl req -new -key "$T/$1.key" -subj "/CN=$2" -outform DER \
		-out "$T/$2.csr" 2>/dev/null || fail "openssl: CSR $2"
}

# refused NAME TOKEN WHY — the enrollment must be refused as a used token.
refused() {
	out=$(enroll "$1" "$2"); rc=$?
	[ $rc = 3 ] && echo "$out" | grep -q 'code=16 msg=token-used: token already used' ||
		fail "$3: rc=$rc $out"
	[ -s "$T/$1.der" ] && fail "$3: a certificate was written"
	return 0
}

write_config </dev/null
start_controller
a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')

# --- site a: the same key gets the same certificate again.
ta=$(token "$a")
make_key a
out=$(enroll a "$ta") || fail "enroll a: $out"
der_to_pem a
session a "$a"
wait_for 10 "$T/a.log" '^ack v=' || fail "no intent for a: $(cat "$T/a.log")"
csr_again a a2
cmp -s "$T/a.csr" "$T/a2.csr" && fail "the second CSR is the same bytes (the test proves nothing)"
out=$(enroll a2 "$ta") || fail "replay with the same key refused: $out"
echo "$out" | grep -q "^enrolled site=$a " || fail "replay answered for another site: $out"
cmp -s "$T/a.der" "$T/a2.der" || fail "the replay sent another certificate"
wait_for 5 "$T/ctld.log" "enroll replay for site $a from .*same key, certificate re-sent" ||
	fail "the replay is not logged"
# Nothing re-issued: the certificate still opens a Session, and a's open
# stream ends only because that newer session of its site replaces it
# (a new certificate would have closed it as retired).
cp "$T/a.key" "$T/a2.key"
der_to_pem a2
session a2 "$a" -o
wait_for 10 "$T/a2.log" '^ack v=' || fail "the re-sent certificate opens no Session: $(cat "$T/a2.log")"
wait_for 10 "$T/a.log" '^closed' || fail "a's stream not replaced: $(cat "$T/a.log")"
grep -q '^closed .*replaced by a newer session' "$T/a.log" ||
	fail "a's stream closed for another reason: $(grep '^closed' "$T/a.log")"
# Another key: refused as before, also after the replay.
make_key x
refused x "$ta" "the same token with another key"
csr_again a a3
out=$(enroll a3 "$ta") || fail "second replay refused: $out"
cmp -s "$T/a.der" "$T/a3.der" || fail "the second replay sent another certificate"

# --- site b: revoked, the same token and key are refused.
tb=$(token "$b")
make_key b
out=$(enroll b "$tb") || fail "enroll b: $out"
st=$(api PATCH "/api/v1/sites/$b" '{"revoked":true}')
[ "$st" = 200 ] || fail "revoking b gave $st: $(cat "$T/out")"
csr_again b b2
refused b2 "$tb" "a revoked site's token with its key"

# --- site c: once the token has expired, refused.
stop_controller
write_config <<CONF
token_lifetime = 3s
CONF
start_controller
c=$(site_create '{"name":"c","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}]}')
make_key c
tries=0
while :; do
	tc=$(token "$c")
	made=$(date +%s)
	out=$(enroll c "$tc") && break
	# Only a token that expired before its first use (a slow machine)
	# is tried again; anything else fails.
	echo "$out" | grep -q 'token-expired' || fail "enroll c: $out"
	tries=$((tries + 1))
	[ $tries -lt 3 ] || fail "enroll c: three tokens expired before use"
done
csr_again c c2
# The token was made at or before $made: it expires by $made + 3 s.
while [ "$(date +%s)" -le $((made + 3)) ]; do sleep 0.2; done
refused c2 "$tc" "an expired token with the same key"

echo "enroll_replay: PASS (same key: same certificate twice, logged; other key, revoked site, expired token: refused)"
