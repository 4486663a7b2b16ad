#!/bin/sh
# enroll_batch.sh — Enroll calls that wait together share one commit
# (controller/enroll.c, enroll_do_batch), and each keeps its own outcome:
#
#   30 edge_client enrollments at once, each with its own token and key,
#   plus 4 more reusing the first site's token (other keys):
#   - the first site's token is accepted at most once (the others:
#     "token already used"), and all 30 get a certificate for their own
#     site (a call that found no answer in time on a loaded machine is
#     retried with a new token);
#   - the controller logged at least one commit holding several of them
#     (before the group commit, each enrollment was its own fsynced
#     commit, one after another: 25-60 edges/s on this machine);
#   - every certificate opens a Session (mutual TLS) for its site.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"
N=30
write_config <<CONF
policy = hub-and-spoke
enroll_rate = 0
CONF
start_controller
i=0
while [ $i -lt $N ]; do
	role=spoke; [ $i -eq 0 ] && role=hub
	id=$(site_create "{\"name\":\"s$i\",\"role\":\"$role\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$((i + 1))\"}]}")
	echo "$id" >"$T/s$i.id"
	token "$id" >"$T/s$i.tok"
	make_key "s$i"
	i=$((i + 1))
done
for k in 1 2 3 4; do make_key "dup$k"; done
pids=
i=0
while [ $i -lt $N ]; do
	enroll "s$i" "$(cat "$T/s$i.tok")" >"$T/s$i.enroll" 2>&1 &
	pids="$pids $!"
	i=$((i + 1))
done
for k in 1 2 3 4; do
	enroll "dup$k" "$(cat "$T/s0.tok")" >"$T/dup$k.enroll" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
# The first site's token was accepted at most once (single use), among
# s0 and the four duplicates; a refused duplicate names the used token.
won=0
[ -s "$T/s0.der" ] && won=1
for k in 1 2 3 4; do
	if [ -s "$T/dup$k.der" ]; then
		won=$((won + 1))
	elif ! grep -q 'token already used\|TOKEN_USED' "$T/dup$k.enroll" &&
		! grep -qi 'deadline\|unavailable\|timed out' "$T/dup$k.enroll"; then
		fail "dup$k refused for another reason: $(cat "$T/dup$k.enroll")"
	fi
done
[ $won -le 1 ] || fail "the first site's token was accepted $won times"
# Every site has its own certificate.  A call that found no answer in time
# on a loaded machine (not a refusal) is retried with a new token.
i=0
while [ $i -lt $N ]; do
	tries=0
	while [ ! -s "$T/s$i.der" ] && [ $tries -lt 3 ]; do
		grep -q 'token already used\|TOKEN_USED' "$T/s$i.enroll" && [ $i -ne 0 ] &&
			fail "s$i: its own token refused as used"
		token "$(cat "$T/s$i.id")" >"$T/s$i.tok"
		enroll "s$i" "$(cat "$T/s$i.tok")" >"$T/s$i.enroll" 2>&1
		tries=$((tries + 1))
	done
	[ -s "$T/s$i.der" ] || fail "s$i not enrolled: $(cat "$T/s$i.enroll")"
	der_to_pem "s$i"
	cn=$(openssl x509 -in "$T/s$i.crt" -noout -subject | sed -n 's/.*CN *= *//p')
	[ "$cn" = "site-$(cat "$T/s$i.id")" ] || fail "s$i got a certificate for $cn"
	i=$((i + 1))
done
grep -Eq 'enroll: ([2-9]|[1-9][0-9]+) Enroll calls in one commit' "$T/ctld.log" ||
	fail "no commit held several enrollments"
grep 'Enroll calls in one commit' "$T/ctld.log" | sed 's/.*enroll: /  /' | head -n 5
# The certificates work: a session for the last site.
last=$((N - 1))
session "s$last" "$(cat "$T/s$last.id")"
wait_for 10 "$T/s$last.log" '^ack v=' || fail "s$last: no intent with its certificate: $(cat "$T/s$last.log")"
echo "enroll_batch: ok ($N sites; the shared token won $won time(s))"
