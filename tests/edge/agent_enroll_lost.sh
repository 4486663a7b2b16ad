#!/bin/sh
# agent_enroll_lost.sh — the answer to a real agent's enrollment is lost
# after the controller committed it, and the agent still comes up with
# the same token:
#
#   ns W: meshwan-controller (test_enroll_lose = 1: the first successful
#         Enroll answer is withheld after its commit, as if the
#         connection had dropped)
#     |
#   ns E1: meshwan-edge (ASan), uesp, FRR; enroll_timeout_ms = 2000
#
# The agent's first call gets no answer within its deadline (the token
# is used up by then), the retry presents the same token with a CSR of
# the same key pair, the controller sends the same certificate again
# (logged as a replay; it is issued once), and the site's Session comes
# up (GET /edges: connected; the agent's status: connected).  Before,
# the agent made a new key on every attempt and the controller refused
# every repeated token: the site stayed down until an operator made a
# new token.  Nothing here depends on timing: the answer is withheld
# until the agent has given up, whenever that is.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"

ctl_start <<EOF
test_enroll_lose = 1
EOF
site_add 1 alpha
d="$NS_TMP/e1"
echo "enroll_timeout_ms = 2000" >>"$d/edge.conf"
agent_start 1

wait_until 60 grep -q "test_enroll_lose: the answer to .* (site $SITE_1) is withheld" "$CTL/ctld.log" ||
	{ agent_logs; fail "no enrollment answer was withheld"; }
wait_until 60 grep -q "enroll replay for site $SITE_1 from .*same key, certificate re-sent" "$CTL/ctld.log" ||
	{ agent_logs; fail "the agent's retry was not served as a replay"; }
wait_until 30 grep -q "enroll: enrolled as site $SITE_1 " "$d/agent.log" ||
	{ agent_logs; fail "the agent did not enroll"; }
connected() {
	[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
	jq -e '.connected == true' "$NS_TMP/out" >/dev/null 2>&1
}
wait_until 60 connected || { agent_logs; fail "site $SITE_1 never connected: $(cat "$NS_TMP/out")"; }
wait_until 30 status_has 1 '.controller.state == "connected"' ||
	{ agent_logs; fail "the agent's status is not connected: $(status 1 | jq -c .controller)"; }

# The first attempt went unanswered (not refused), and the certificate
# was issued once: the retry got it again, not a new one.
grep -q 'enroll: .*no answer\|enroll: .* unavailable:' "$d/agent.log" ||
	fail "the agent logged no unanswered attempt"
grep -q 'refused:' "$d/agent.log" && fail "the agent was refused: $(grep 'refused:' "$d/agent.log")"
n=$(grep -c "enroll: site $SITE_1 (alpha) enrolled from" "$CTL/ctld.log")
[ "$n" = 1 ] || fail "the certificate was issued $n times"
# The certificate is the key's, and the key is the agent's alone.
[ "$(stat -c %a "$d/state/edge.key")" = 600 ] ||
	fail "edge.key has mode $(stat -c %a "$d/state/edge.key")"
kp=$(openssl pkey -in "$d/state/edge.key" -pubout 2>/dev/null)
cp=$(openssl x509 -in "$d/state/edge.crt" -noout -pubkey 2>/dev/null)
[ -n "$kp" ] && [ "$kp" = "$cp" ] || fail "the certificate does not carry the agent's key"

grep -h 'enroll' "$d/agent.log" "$CTL/ctld.log" | grep -v 'api:' | sed 's/^[^ ]* /  /'
agent_stop 1
ctl_stop
agent_check_sanitizers
echo "agent_enroll_lost: PASS (answer withheld, retry served as a replay, site connected)"
