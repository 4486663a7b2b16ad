#!/bin/sh
# allowed_prefixes.sh — Peer.allowed_prefixes in the edges' intents, as an
# edge applies them (tests/ctl/edge_client -t):
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client hq, br1
#                   hub-and-spoke: hub hq, spokes br1 and br2,
#                   test_check_patch = 1
#
# A spoke's tunnel to the hub allows the hub's own prefixes plus the other
# spoke's (the hub carries them); the hub's tunnel to a spoke allows only
# that spoke's.  A LAN prefix added to br2 (which has no edge connected)
# reaches both connected edges as deltas and their acks match the
# controller's hash; removing it takes it out again.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config <<CONF
policy = hub-and-spoke
test_check_patch = 1
CONF
start_controller

hq=$(site_create '{"name":"hq","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16","fd00:10::/48"]}')
br1=$(site_create '{"name":"br1","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}],"lan_prefixes":["10.1.0.0/24"]}')
br2=$(site_create '{"name":"br2","role":"spoke","links":[{"name":"inet","address":"192.0.2.3"}],"lan_prefixes":["10.2.0.0/24"]}')

for n in hq br1; do
	eval "id=\$$n"
	tok=$(token "$id"); make_key "$n"
	enroll "$n" "$tok" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
	session "$n" "$id" -t "$T/$n.tunnels"
done

# allowed_is EDGE PEER LIST — poll until EDGE's applied tunnel to PEER
# allows exactly LIST.
allowed_is() {
	_deadline=$(( $(date +%s) + 10 ))
	until grep -Eq "^tunnel [0-9]+ peer $2 .* allowed $3\$" "$T/$1.tunnels" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_deadline" ] ||
			fail "$1's tunnel to site $2 does not allow $3: $(cat "$T/$1.tunnels" 2>/dev/null)"
		sleep 0.05
	done
}

allowed_is br1 "$hq" '10\.0\.0\.0/16,fd00:10::/48,10\.2\.0\.0/24'
allowed_is hq "$br1" '10\.1\.0\.0/24'
allowed_is hq "$br2" '10\.2\.0\.0/24'

# A prefix of br2 changes what the hub carries: a delta to br1 (its
# tunnel to hq) and to hq (its tunnel to br2), both acked.
st=$(api POST "/api/v1/sites/$br2/prefixes" '{"prefix":"10.2.1.0/24"}')
[ "$st" = 201 ] || fail "adding a prefix gave $st: $(cat "$T/out")"
allowed_is br1 "$hq" '10\.0\.0\.0/16,fd00:10::/48,10\.2\.0\.0/24,10\.2\.1\.0/24'
allowed_is hq "$br2" '10\.2\.0\.0/24,10\.2\.1\.0/24'
wait_for 5 "$T/br1.log" '^delta from=[0-9]+ v=[0-9]+ up=1 rm=0$' || fail "no delta to br1: $(cat "$T/br1.log")"
wait_for 5 "$T/hq.log" '^delta from=[0-9]+ v=[0-9]+ up=1 rm=0$' || fail "no delta to hq: $(cat "$T/hq.log")"

st=$(api DELETE "/api/v1/sites/$br2/prefixes?prefix=10.2.0.0/24")
[ "$st" = 200 ] || [ "$st" = 204 ] || fail "removing a prefix gave $st: $(cat "$T/out")"
allowed_is br1 "$hq" '10\.0\.0\.0/16,fd00:10::/48,10\.2\.1\.0/24'
allowed_is hq "$br2" '10\.2\.1\.0/24'

# Every version was acked with the controller's hash, nothing resynced.
for n in hq br1; do
	eval "id=\$$n"
	deadline=$(( $(date +%s) + 5 ))
	until [ "$(api GET "/api/v1/edges/$id")" = 200 ] &&
		jq -e '.connected and .converged and .applied_version == .intent_version' "$T/out" >/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$n not converged: $(cat "$T/out")"
		sleep 0.1
	done
	grep -q 'wrong hash' "$T/$n.log" && fail "$n acked a wrong hash"
	[ "$(grep -c '^snapshot' "$T/$n.log")" = 1 ] || fail "$n needed a resync: $(cat "$T/$n.log")"
done
grep -Eq 'differs|patch check failed|hash mismatch' "$T/ctld.log" && fail "controller: $(grep -E 'differs|patch check failed|hash mismatch' "$T/ctld.log")"
stop_controller
echo "allowed_prefixes: ok"
