#!/bin/sh
# patch_check.sh — a change to one site patches the intents of the edges
# it touches (only their tunnels to that site, and new or removed ones)
# instead of rebuilding them; every patched intent must equal a whole
# rebuild, and connected edges must follow by deltas alone:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client a, b, c
#                   full mesh of 6 sites, test_check_patch = 1
#
# Changes: enrollment (a new certificate in peers' tunnels), a site added,
# a link readdressed, a prefix added, an operator rekey, a site deleted, a
# site revoked.  After each the controller compares every patched intent
# with a whole rebuild (it logs "differs" otherwise); the edges' acks
# carry their own convergence hashes, which must match the controller's.
# A batch reads from the store only the sites the change log names.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config <<CONF
policy = full-mesh
test_check_patch = 1
debug = session
CONF
start_controller

# compiles — how many recompiles the controller has logged.
compiles() { grep -c 'recompiled [0-9]* site' "$T/ctld.log"; }

# after_compile N — wait for a recompile beyond the N-th.
after_compile() {
	_deadline=$(( $(date +%s) + 10 ))
	while [ "$(compiles)" -le "$1" ]; do
		[ "$(date +%s)" -lt "$_deadline" ] || fail "no recompile after change $2"
		sleep 0.05
	done
}

# converged SITE... — every named edge connected and converged at its
# controller's current version.
converged() {
	_deadline=$(( $(date +%s) + 10 ))
	for _s in "$@"; do
		while :; do
			[ "$(api GET "/api/v1/edges/$_s")" = 200 ] || fail "GET /edges/$_s"
			jq -e '.connected and .converged' "$T/out" >/dev/null && break
			[ "$(date +%s)" -lt "$_deadline" ] || fail "edge $_s not converged: $(cat "$T/out")"
			sleep 0.1
		done
	done
}

i=0
for n in a b c d e; do
	i=$((i + 1))
	eval "$n=\$(site_create '{\"name\":\"$n\",\"role\":\"hub\",\"region\":\"eu\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$i\"}],\"lan_prefixes\":[\"10.$i.0.0/24\"]}')"
done
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"

# Enrollment: each new certificate goes into the peers' tunnels.
for n in a b c; do
	eval "id=\$$n"
	make_key "$n"
	k=$(compiles)
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
	after_compile "$k" "enroll $n"
	session "$n" "$id"
done
converged "$a" "$b" "$c"

step() { # step NAME METHOD PATH [BODY] — a change and its recompile
	_name=$1; shift
	k=$(compiles)
	st=$(api "$@")
	case $st in 2*) ;; *) fail "$_name: $* gave $st: $(cat "$T/out")" ;; esac
	after_compile "$k" "$_name"
	converged "$a" "$b" "$c"
}

k=$(compiles)
f=$(site_create '{"name":"f","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.6"}]}')
after_compile "$k" "add f"
converged "$a" "$b" "$c"
step "readdress c" PATCH "/api/v1/sites/$c/links/inet" '{"address":"198.51.100.3"}'
# The batch read only the site the change log named, not all six.
grep 'recompiled [0-9]* site' "$T/ctld.log" | tail -n 1 |
	grep -q '1 of 6 site(s) read from the store' ||
	fail "a one-site change read more than that site: $(grep 'recompiled' "$T/ctld.log" | tail -n 1)"
step "prefix on d" POST "/api/v1/sites/$d/prefixes" '{"prefix":"10.44.0.0/16"}'
# An operator rekey of the a-b tunnel, run to its end by the edges: its
# new SPIs reach both intents by a patch of that one tunnel.
[ "$(api GET "/api/v1/tunnels?site=$a")" = 200 ] || fail "GET /tunnels?site=a"
tid=$(jq -r --argjson b "$b" '[.tunnels[] | select(.site_a == $b or .site_b == $b)][0].id' "$T/out")
[ -n "$tid" ] && [ "$tid" != null ] || fail "no a-b tunnel: $(cat "$T/out")"
k=$(compiles)
r=$(grep -c "rebuilt 1 tunnel(s) in 2 edge(s)" "$T/ctld.log")
st=$(api POST "/api/v1/tunnels/$tid/rekey")
[ "$st" = 202 ] || fail "rekey gave $st: $(cat "$T/out")"
for n in a b; do
	wait_for 10 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=retire " ||
		fail "$n: rekey of tunnel $tid did not finish: $(grep "tunnel=$tid" "$T/$n.log")"
done
# (the two directions may go active in one flush or in two)
wait_for 10 "$T/ctld.log" "rebuilt 1 tunnel\\(s\\) in 2 edge\\(s\\)" || fail "the rekeyed tunnel was not rebuilt"
[ "$(grep -c "rebuilt 1 tunnel(s) in 2 edge(s)" "$T/ctld.log")" -gt "$r" ] || fail "no tunnel rebuild for the rekey"
[ "$(compiles)" = "$k" ] || fail "a rekey recompiled sites instead of rebuilding one tunnel"
converged "$a" "$b" "$c"
wait_for 5 "$T/b.log" "^  upsert tunnel=$tid " || fail "b: no delta with the new SPIs"
step "delete e" DELETE "/api/v1/sites/$e"
step "revoke f" PATCH "/api/v1/sites/$f" '{"revoked":true}'

grep -E 'differs from a whole rebuild|digests differ|patch check failed' "$T/ctld.log" &&
	fail "a patched intent is not what a rebuild gives"
grep -q 'convergence hash mismatch' "$T/ctld.log" && fail "an edge's hash disagreed with the controller's"
patched=$(sed -n 's/.*affected (\([0-9]*\) patched).*/\1/p' "$T/ctld.log" | awk '{s += $1} END {print s + 0}')
[ "$patched" -ge 10 ] || fail "only $patched patched intents: the test did not exercise patching"
for n in a b c; do
	[ "$(grep -c '^snapshot' "$T/$n.log")" = 1 ] || fail "$n needed a resync: $(grep -E '^(snapshot|delta)' "$T/$n.log")"
done
echo "ok: $patched patched intents equal whole rebuilds; edges followed by deltas only"
# The tunnel gauge counts what GET /tunnels lists (15 - 5 of e - 4 of f).
[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
nt=$(jq '.tunnels | length' "$T/out")
[ "$nt" = 6 ] || fail "$nt tunnels left, expected 6: $(cat "$T/out")"
curl -s -H "$H" "$URL/metrics" | grep -qx "meshwan_tunnels $nt" || fail "meshwan_tunnels is not $nt"
stop_controller
echo "PASS: patch_check"
