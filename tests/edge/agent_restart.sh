#!/bin/sh
# agent_restart.sh — headless restart (issue 9 §8): with the controller
# stopped, site 1's agent is stopped and started again.  It must rebuild
# the site from its state folder alone (cached intent, epoch keys,
# certificate) and forward again, and its outbound SA, re-added with the
# same key, must continue above every sequence number it used before
# (uesp's reservation file): no (key, IV) pair repeats, and the peer's
# replay window accepts the new packets.  When the controller returns,
# the agent resumes by version (no snapshot) and is converged.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"

ctl_start </dev/null
site_add 1 alpha
site_add 2 beta
agent_start 1
agent_start 2
up() { status_has "$1" '.tunnels | length == 1 and .[0].state == "up"'; }
wait_until 60 up 1 || { agent_logs; fail "site 1's tunnel not up"; }
wait_until 60 up 2 || { agent_logs; fail "site 2's tunnel not up"; }
wait_until 30 lan_ping 1 2 || { agent_logs; fail "LAN 1 cannot ping LAN 2"; }
ip netns exec "$H1" ping -c 50 -i 0.02 -W 1 10.2.0.2 >/dev/null 2>&1 ||
	fail "ping loss before the restart"
v_before=$(status 1 | jq -r .controller.intent_version)

ctl_stop
lan_ping 1 2 || fail "no ping with the controller stopped"

# The outbound SA's last sequence number, once the status has caught up.
out_sa() { status 1 | jq -r '.tunnels[0].sas[] | select(.dir == "out" and .active) | "\(.spi) \(.seq) \(.packets)"'; }
sleep 1.5   # status.json is rewritten every second (not a synchronisation)
set -- $(out_sa)
spi_before=$1 seq_before=$2
[ -n "$seq_before" ] && [ "$seq_before" -gt 50 ] || fail "no outbound sequence number: $(status 1)"

agent_stop 1
ip -n "$E1" link show mw1 >/dev/null 2>&1 && fail "mw1 still there after the agent stopped"
t0=$(ms)
agent_start 1
wait_until 30 up 1 || { agent_logs; fail "site 1 not rebuilt from its cache"; }
grep -q "site rebuilt from the cached intent version $v_before" "$NS_TMP/e1/agent.log" ||
	fail "no rebuild from the cache in the log"
wait_until 30 lan_ping 1 2 || { agent_logs; fail "no ping after the headless restart"; }
echo "figure: headless restart -> first LAN ping $(( $(ms) - t0 )) ms"
wait_until 5 status_has 1 '.controller.state == "connecting" or .controller.state == "backoff"' ||
	fail "controller state with the controller stopped: $(status 1 | jq -c .controller)"
ip netns exec "$H1" ping -c 20 -i 0.05 -W 1 10.2.0.2 >/dev/null 2>&1 ||
	fail "ping loss after the restart"
sleep 1.5   # status catches up (not a synchronisation)
set -- $(out_sa)
spi_after=$1 seq_after=$2 packets_after=$3
[ "$spi_after" = "$spi_before" ] || fail "outbound SPI changed ($spi_before -> $spi_after): not the cached keys"
first=$((seq_after - packets_after + 1))
echo "outbound SA $spi_before: last sequence number before $seq_before, first after the restart $first"
[ "$first" -gt "$seq_before" ] || fail "sequence numbers reused: first $first <= $seq_before"
status_has 2 '.tunnels[0].drops.replay == 0 and .tunnels[0].drops.auth == 0' ||
	fail "site 2 dropped packets: $(status 2 | jq -c .tunnels[0].drops)"

# The controller returns: the agent resumes by version.
ctl_start </dev/null
wait_until 30 grep -q "site $SITE_1 connected (.*applied $v_before, current $v_before" "$CTL/ctld.log" ||
	{ agent_logs; fail "site 1 did not resume at version $v_before"; }
conv() {
	[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
	jq -e '.connected and .converged' "$NS_TMP/out" >/dev/null
}
wait_until 30 conv || fail "site 1 not converged after the controller came back: $(cat "$NS_TMP/out")"
lan_ping 1 2 || fail "no ping after the controller came back"

SAN=$SAN sh "$MESHWAN_TOP/tests/edge/agent_keygrep.sh" "$NS_TMP" \
    "$NS_TMP"/e*/agent.log "$CTL"/ctld.log* || fail "key bytes found"
agent_stop 1
agent_stop 2
agent_check_sanitizers
echo "agent_restart: PASS"
