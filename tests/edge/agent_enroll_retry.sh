#!/bin/sh
# agent_enroll_retry.sh — an enrollment controller that does not answer
# (nothing listens, so gRPC reports UNAVAILABLE) is retried with backoff;
# the agent keeps running.  Only the controller's refusal (a used or
# unknown token) stops it.  Before, UNAVAILABLE and DEADLINE_EXCEEDED
# counted as refusals and the agent exited at the first try, which an
# edge that boots before its controller (or a slow TLS handshake) hit.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"
ns_init
ns_need openssl
AGENT=$MESHWAN_TOP/${BUILD:-build}/edge-agent/meshwan-edge
E=$(ns_name enr)
ns_add "$E"
d=$NS_TMP/e
mkdir -p "$d/state"
chmod 700 "$d/state"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d/ca.key" -out "$d/ca.crt" -subj /CN=test-ca -days 1 2>/dev/null ||
	fail "openssl"
printf 'tok\n' >"$d/token"
chmod 600 "$d/token"
cat >"$d/edge.conf" <<EOC
controller = 127.0.0.1:7443
enroll_controller = 127.0.0.1:7444
ca_file = $d/ca.crt
token_file = $d/token
state_dir = $d/state
backend = null
link = inet 127.0.0.1
EOC
ns_bg "$E" "$AGENT" -f -c "$d/edge.conf" >"$d/agent.log" 2>&1
pid=$NS_PID
wait_until 20 sh -c "[ \$(grep -c 'no answer' '$d/agent.log') -ge 2 ]" ||
	fail "no second enrollment attempt: $(cat "$d/agent.log")"
kill -0 "$pid" 2>/dev/null || fail "the agent stopped: $(cat "$d/agent.log")"
grep -q '7444 refused:' "$d/agent.log" && fail "an unreachable controller was taken as a refusal: $(cat "$d/agent.log")"
echo "agent_enroll_retry: PASS ($(grep -c 'no answer' "$d/agent.log") attempts logged, still running)"
