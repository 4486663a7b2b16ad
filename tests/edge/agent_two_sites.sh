#!/bin/sh
# agent_two_sites.sh — two sites run by meshwan-edge end to end: a
# controller, two sites registered through REST, each an edge namespace
# with its own FRR and a LAN host behind it (tests/edge/agent_lib.sh).
#
# Checks: both edges enroll with their one-time tokens (key and CSR made
# on the edge), connect, announce signed epoch keys and get keyed SAs;
# the tunnel and the BGP session (with BFD) come up; LAN host 1 pings LAN
# host 2 across the tunnel; GET /api/v1/edges shows both connected and
# converged; the epoch private keys are 0600 and no key byte (epoch
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
for n in 1 2; do
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

agent_stop 1
agent_stop 2
agent_check_sanitizers
echo "agent_two_sites: PASS"
