#!/bin/sh
# meshwanctl.sh — the CLI against a running API server: every command, its
# table and --json output, error messages and exit codes.
#
#   meshwanctl ──HTTP──▶ api_test_server (127.0.0.1:<free port>) ──▶ sqlite
set -u
. "$MESHWAN_TOP/tests/api/lib.sh"
need jq
CTL=${CTL:-$BUILD/controller/meshwanctl}
[ -x "$CTL" ] || fail "$CTL is not built"
start_server
export MESHWAN_URL="$URL" MESHWAN_TOKEN_FILE="$ADMIN_TOKEN_FILE"
unset MESHWAN_TOKEN

ok() { "$CTL" "$@" >"$TMP/out" 2>"$TMP/err" || fail "meshwanctl $*: $(cat "$TMP/err")"; }
# expect_fail RC PATTERN ARGS... : exit code RC and PATTERN on stderr
expect_fail() {
	rc=$1; pat=$2; shift 2
	"$CTL" "$@" >"$TMP/out" 2>"$TMP/err"
	got=$?
	[ "$got" = "$rc" ] || fail "meshwanctl $* exited $got, want $rc: $(cat "$TMP/err")"
	grep -q "$pat" "$TMP/err" || fail "meshwanctl $*: no '$pat' in: $(cat "$TMP/err")"
}

"$CTL" --help >"$TMP/help" || fail "--help"
for c in "site list" "site add" "site set" "site del" "link add" "link del" \
	"prefix add" "prefix del" "policy show" "policy set" "crypto show" \
	"crypto set" "token create" "apitoken create" "apitoken list" \
	"apitoken del" "tunnel list" "tunnel rekey" "site rekey" "edge list" "events"; do
	grep -q "$c" "$TMP/help" || fail "--help does not mention '$c'"
	grep -q "$c" "$MESHWAN_TOP/controller/meshwanctl.1" || fail "the man page does not mention '$c'"
done

ok site add hq --role hub --region eu --prefix 10.0.0.0/16 --prefix 10.1.0.0/16
grep -q '^name  *hq$' "$TMP/out" || fail "site add output: $(cat "$TMP/out")"
ok site add branch1 --role spoke --asn 65100
ok link add hq inet --address 192.0.2.1
ok link add branch1 inet --address 192.0.2.2 --public-address 198.51.100.2 --public-port 4600
ok site list
grep -q '^ID' "$TMP/out" && grep -q 'hq' "$TMP/out" && grep -q 'branch1' "$TMP/out" \
	|| fail "site list: $(cat "$TMP/out")"
ok --json site list
[ "$(jq '.sites | length' "$TMP/out")" = 2 ] || fail "--json site list"
ok --json site show branch1
jq -e '.asn == 65100 and .links[0].public_port == 4600' "$TMP/out" >/dev/null || fail "site show"
ok site set branch1 --region us
ok --json site show branch1
[ "$(jq -r .region "$TMP/out")" = us ] || fail "site set"
ok prefix add branch1 10.2.0.0/24
ok prefix list branch1
grep -qx '10.2.0.0/24' "$TMP/out" || fail "prefix list"
ok prefix del branch1 10.2.0.0/24
ok link list branch1
grep -q '198.51.100.2' "$TMP/out" || fail "link list"

ok policy set --mode hub-and-spoke --encap vxlan --vni 100-200 --pair inet:inet
ok --json policy show
jq -e '.mode == "hub-and-spoke" and .encap == "vxlan" and .vni_min == 100 and .pairs == [["inet","inet"]]' \
	"$TMP/out" >/dev/null || fail "policy: $(cat "$TMP/out")"
ok crypto set --cipher aes-gcm-128 --rekey 7200
ok --json crypto show
jq -e '.cipher == "aes-gcm-128" and .rekey_seconds == 7200' "$TMP/out" >/dev/null || fail "crypto"

ok token create branch1
tok=$(cat "$TMP/out")
[ ${#tok} = 68 ] || fail "enrollment token: $tok"
grep -q 'shown only once' "$TMP/err" || fail "token create note"

ok apitoken create viewer --role readonly
ro=$(cat "$TMP/out")
ok apitoken list
grep -q viewer "$TMP/out" || fail "apitoken list"
grep -q "$ro" "$TMP/out" && fail "apitoken list shows a secret"
ok tunnel list
grep -q '^ID' "$TMP/out" || fail "tunnel list header"
ok edge list
grep -q 'branch1' "$TMP/out" || fail "edge list"
ok events --limit 5
grep -q 'site.create' "$TMP/out" || fail "events"
ok --json events --limit 1000
[ "$(jq '[.events[] | select(.actor == "admin")] | length' "$TMP/out")" -ge 8 ] || fail "audit actors"

# Errors: the API's code and message, non-zero exit.
expect_fail 1 'duplicate' site add hq --role hub
expect_fail 1 'overlap' prefix add branch1 10.0.1.0/24
expect_fail 1 'field asn' site add x --role hub --asn 100
expect_fail 1 "no site named 'nope'" site show nope
expect_fail 1 'no tunnel 999999' tunnel rekey 999999
expect_fail 2 'tunnel id must be a number' tunnel rekey x
expect_fail 1 "no site named 'nope'" site rekey nope
expect_fail 1 'forbidden' --token "$ro" site del hq
expect_fail 1 'unauthorized' --token "" site list
"$CTL" --token "$ro" site list >/dev/null || fail "--token"
env -u MESHWAN_TOKEN_FILE MESHWAN_TOKEN="$ro" "$CTL" site list >/dev/null || fail "MESHWAN_TOKEN"
expect_fail 2 'unknown command' frobnicate
expect_fail 2 'missing arguments' site show
expect_fail 2 'does not apply' site list --asn 5
expect_fail 3 'cannot reach' --url http://127.0.0.1:1 site list
ok apitoken del viewer
ok site del branch1
ok --json site list
[ "$(jq '.sites | length' "$TMP/out")" = 1 ] || fail "site del"
stop_server
echo "meshwanctl: ok"
