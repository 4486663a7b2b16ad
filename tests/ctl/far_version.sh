#!/bin/sh
# far_version.sh — an edge that says hello with an applied version far
# beyond the controller's (a database restored from an old backup, or a
# broken edge) costs the controller one store update, not a loop, and
# versions stay monotonic for that edge:
#
#   meshwan-controller ◀──Session (mTLS)── edge_client a  (hello: applied 2^62)
#    (127.0.0.1, free  ◀──Session (mTLS)── edge_client b  (hello: current + 99,999)
#     ports, temp dir)
#
# each gets a snapshot numbered just past what it claimed, promptly and
# with a handful of SQL statements; the next change reaches it as a delta
# numbered after that; the store keeps the new version.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller

a=$(site_create '{"name":"a","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
done
[ "$(api GET "/api/v1/edges/$b")" = 200 ] || fail "GET /edges/$b"
cur=$(jq -r .intent_version "$T/out")
[ "$cur" -gt 0 ] || fail "b has no intent version: $(cat "$T/out")"

# statements — SQL statements the session loop has run (/metrics).
statements() {
	curl -s -H "$H" "$URL/metrics" | sed -n 's/^meshwan_session_store_statements_total \([0-9]*\)$/\1/p'
}
s0=$(statements)
[ -n "$s0" ] || fail "no meshwan_session_store_statements_total in /metrics"

# hello_in NAME SITE VERSION NEXT — sets ms: milliseconds from the hello
# to the snapshot, which must be numbered NEXT (VERSION + 1).
hello_in() {
	session "$1" "$2" -A "$3"
	wait_for 10 "$T/$1.log" "^open applied=$3\$" || fail "$1: no hello: $(cat "$T/$1.log")"
	_t0=$(date +%s%3N)
	wait_for 10 "$T/$1.log" "^snapshot v=$4 tunnels=1\$" ||
		fail "$1: no snapshot past $3: $(cat "$T/$1.log")"
	ms=$(( $(date +%s%3N) - _t0 ))
}

far=4611686018427387904    # 2^62
hello_in a "$a" "$far" 4611686018427387905
echo "hello with applied 2^62 answered in $ms ms"
[ "$ms" -lt 2000 ] || fail "hello with a far-ahead version took $ms ms"
near=$((cur + 99999))
hello_in b "$b" "$near" $((near + 1))
echo "hello with applied current + 99,999 answered in $ms ms"
[ "$ms" -lt 2000 ] || fail "hello with current + 99,999 took $ms ms"
wait_for 5 "$T/a.log" '^ack v=' || fail "a did not ack"

# The next change: a delta past the jump, to each.
site_create '{"name":"c","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.3"}]}' >/dev/null
wait_for 5 "$T/a.log" "^delta from=4611686018427387905 v=4611686018427387906 up=1 rm=0\$" ||
	fail "a: no delta after the jump: $(cat "$T/a.log")"
wait_for 5 "$T/b.log" "^delta from=$((near + 1)) v=$((near + 2)) up=1 rm=0\$" ||
	fail "b: no delta after the jump: $(cat "$T/b.log")"
wait_for 5 "$T/a.log" '^ack v=4611686018427387906$' || fail "a did not ack the delta"
# Two far-ahead hellos and one change: a few hundred statements at most
# (a loop up to the version would be 200,000 for b alone).
s1=$(statements)
echo "statements for both hellos and a change: $((s1 - s0))"
[ $((s1 - s0)) -lt 5000 ] || fail "$((s1 - s0)) statements"
# Stored: the REST view has the exact integers (above 2^53 they are
# decimal strings, API.md "Large integers"; jq would round numbers).
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$a")" = 200 ] &&
	grep -Eq '"intent_version": *"?4611686018427387906"?' "$T/out" &&
	grep -Eq '"applied_version": *"?4611686018427387906"?' "$T/out"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "a's versions not stored: $(cat "$T/out")"
	sleep 0.1
done

stop_controller
echo "far_version: ok"
