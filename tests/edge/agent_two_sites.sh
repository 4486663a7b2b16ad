#!/bin/sh
# agent_two_sites.sh — two sites run by meshwan-edge end to end: a
# controller, two sites registered through REST, each an edge namespace
# with its own FRR and a LAN host behind it (tests/edge/agent_lib.sh).
#
# Checks: both edges enroll with their one-time tokens (key and CSR made
# on the edge), connect, announce signed epoch keys and get keyed SAs;
# the tunnel and the BGP session (with BFD) come up; LAN host 1 pings LAN
# host 2 across the tunnel; GET /api/v1/edges shows both connected and
# converged; site 2, given only the controller's CA pin, learned the CA
# from the handshake (and a wrong pin enrolls nothing); the epoch private keys are 0600 and no key byte (epoch
# private keys, derived SA keys) appears in any log or status document;
# SIGTERM stops each agent cleanly with no sanitizer report.  Prints the
# time from the agents' start to the first LAN ping.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"

ctl_start </dev/null
site_add 1 alpha
site_add 2 beta

t0=$(ms)
agent_start 1
agent_start 2

wait_until 30 test -s "$NS_TMP/e1/state/edge.crt" || { agent_logs; fail "site 1 did not enroll"; }
wait_until 30 test -s "$NS_TMP/e2/state/edge.crt" || { agent_logs; fail "site 2 did not enroll"; }
# Site 2 has ca_pin only: the CA it learned is the controller's.
grep -q '^ca_pin = sha256:' "$NS_TMP/e2/edge.conf" || fail "site 2 is not configured by pin"
cmp -s "$NS_TMP/e2/state/ca.crt" "$CTL/ca/ca.crt" ||
	fail "site 2 did not learn the controller's CA from its pin"
grep -q 'learned the controller CA from 10.99.0.1:7444' "$NS_TMP/e2/agent.log" ||
	fail "no log line for the learned CA"
# A wrong pin: the agent trusts nothing, sends no token, keeps no CA.
mkdir -p "$NS_TMP/bad"
sed -e "s|^ca_pin = .*|ca_pin = sha256:$(printf '%064d' 7)|" \
    -e "s|^state_dir = .*|state_dir = $NS_TMP/bad/state|" \
    "$NS_TMP/e2/edge.conf" >"$NS_TMP/bad/edge.conf"
ns_bg "$E2" env $AGENT_ENV "$AGENT" -d -c "$NS_TMP/bad/edge.conf" >"$NS_TMP/bad/agent.log" 2>&1
bad_pid=$NS_PID
wait_until 15 grep -q 'has the SHA-256 of ca_pin' "$NS_TMP/bad/agent.log" ||
	fail "a wrong pin was not refused: $(cat "$NS_TMP/bad/agent.log")"
kill -TERM "$bad_pid"; wait "$bad_pid" || fail "agent with a wrong pin did not exit cleanly: $(tail -n 20 "$NS_TMP/bad/agent.log")"
[ ! -e "$NS_TMP/bad/state/ca.crt" ] && [ ! -e "$NS_TMP/bad/state/edge.crt" ] ||
	fail "a wrong pin left a CA or a certificate behind"
has_epoch_key() { ls "$NS_TMP/e$1/state/keys"/epoch-*.key >/dev/null 2>&1; }
for n in 1 2; do
	wait_until 10 has_epoch_key "$n" || fail "no epoch key in site $n's state"
	[ "$(stat -c %a "$NS_TMP/e$n/state/edge.key")" = 600 ] || fail "edge.key of $n is not 0600"
	for k in "$NS_TMP/e$n/state/keys"/epoch-*.key; do
		[ -f "$k" ] || fail "no epoch key in site $n's state"
		[ "$(stat -c %a "$k")" = 600 ] || fail "$k is not 0600"
	done
done

# Tunnel up (keyed SAs both ways) on both ends.
up() { status_has "$1" '.tunnels | length == 1 and .[0].state == "up"'; }
wait_until 30 up 1 || { agent_logs; status 1; fail "site 1's tunnel not up"; }
wait_until 30 up 2 || { agent_logs; status 2; fail "site 2's tunnel not up"; }
t_tun=$(( $(ms) - t0 ))

wait_until 30 lan_ping 1 2 || { agent_logs; status 1; fail "LAN 1 cannot ping LAN 2"; }
t_ping=$(( $(ms) - t0 ))
lan_ping 2 1 || fail "LAN 2 cannot ping LAN 1"
ip netns exec "$H1" ping -c 20 -i 0.05 -W 1 10.2.0.2 >"$NS_TMP/ping" 2>&1 ||
	fail "ping loss: $(tail -n 3 "$NS_TMP/ping")"

bgp_up() { status_has "$1" '.tunnels[0].bgp.state == "established"'; }
wait_until 30 bgp_up 1 || { status 1; fail "BGP not established on site 1"; }
wait_until 30 bgp_up 2 || { status 2; fail "BGP not established on site 2"; }
ip -n "$E1" route show 10.2.0.0/24 | grep -q "proto bgp" ||
	fail "site 1's kernel lacks 10.2.0.0/24 from BGP: $(ip -n "$E1" route)"

# The controller sees both converged.
conv() {
	[ "$(api GET /api/v1/edges)" = 200 ] &&
	jq -e --argjson a "$SITE_1" --argjson b "$SITE_2" \
	    '[.edges[] | select((.site_id == $a or .site_id == $b) and .connected and .converged)] | length == 2' \
	    "$NS_TMP/out" >/dev/null
}
wait_until 20 conv || fail "edges not converged: $(cat "$NS_TMP/out")"
echo "figure: agents started -> tunnel up on both ${t_tun} ms, -> first LAN ping ${t_ping} ms"

# No key bytes anywhere the agent writes text: its logs, its status
# documents, the controller's log and REST replies.
api GET /api/v1/edges >/dev/null; cp "$NS_TMP/out" "$NS_TMP/edges.json"
for n in 1 2; do status "$n" >"$NS_TMP/status$n.json"; done
SAN=$SAN sh "$MESHWAN_TOP/tests/edge/agent_keygrep.sh" "$NS_TMP" \
    "$NS_TMP"/e*/agent.log "$CTL/ctld.log" "$NS_TMP"/status*.json \
    "$NS_TMP/edges.json" || fail "key bytes found"

# The command line: a true --help, -n prints the normal form (never the
# token), a bad file is refused with its line.
"$AGENT" --help | grep -q -- '-c, --config FILE' || fail "--help"
"$AGENT" -n -c "$NS_TMP/e1/edge.conf" >"$NS_TMP/norm" || fail "-n refused a good file"
grep -q '^state_dir = ' "$NS_TMP/norm" || fail "-n printed no normal form"
grep -qF "$(cat "$NS_TMP/e1/token")" "$NS_TMP/norm" && fail "-n printed the token"
printf 'bogus = 1\n' >"$NS_TMP/bad.conf"
"$AGENT" -n -c "$NS_TMP/bad.conf" 2>"$NS_TMP/err" && fail "-n accepted a bad file"
grep -q 'bad.conf:1: bogus' "$NS_TMP/err" || fail "no line in the error: $(cat "$NS_TMP/err")"

# SIGHUP: a broken file is refused and the agent keeps running as it
# was; a good one (debug subsystems changed) is taken.
cp "$NS_TMP/e1/edge.conf" "$NS_TMP/e1/edge.conf.good"
echo "bogus = 1" >>"$NS_TMP/e1/edge.conf"
kill -HUP "$AGENT_PID_1"
wait_until 10 grep -q "reload: .* refused; the running configuration stays" "$NS_TMP/e1/agent.log" ||
	fail "bad reload not refused"
lan_ping 1 2 || fail "no ping after a refused reload"
{ cat "$NS_TMP/e1/edge.conf.good"; echo "debug = keys,session"; } >"$NS_TMP/e1/edge.conf"
kill -HUP "$AGENT_PID_1"
wait_until 10 grep -q "reload: configuration applied" "$NS_TMP/e1/agent.log" ||
	fail "good reload not applied"
lan_ping 1 2 || fail "no ping after a reload"

agent_stop 1
agent_stop 2
agent_check_sanitizers
echo "agent_two_sites: PASS"
