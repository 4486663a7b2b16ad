#!/bin/sh
# status_agent.sh — `meshwan-edge status` and /metrics on running agents:
# two sites as in agent_two_sites.sh (tests/edge/agent_lib.sh: a
# controller, edges with their own FRR on uesp), site 1 with
# metrics_listen = 127.0.0.1:9464 inside its namespace.
#
#   ns W: controller ---- ns E1: meshwan-edge (+ /metrics) ==tunnel== ns E2
#
# Checks: the control socket is 0600 and root's; `meshwan-edge status
# --json` shows the tunnel up with an inbound and an outbound SA (SPIs,
# epochs, counters) and BGP established; the table shows the same SPIs;
# /metrics (curl in the namespace) has the tunnel's packet counters and
# every SA's bytes under its SPI label; a non-root user is refused; no key
# byte appears in any of these outputs; the socket goes with the agent.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"
ns_need setpriv

ctl_start </dev/null
site_add 1 alpha
site_add 2 beta
echo "metrics_listen = 127.0.0.1:9464" >>"$NS_TMP/e1/edge.conf"
agent_start 1
agent_start 2
SOCK="$NS_TMP/e1/state/control.sock"

st() { ip netns exec "$E1" "$AGENT" status -c "$NS_TMP/e1/edge.conf" "$@"; }
ready() {
	st --json >"$NS_TMP/st.json" 2>"$NS_TMP/st.err" &&
	jq -e '.tunnels | length == 1 and .[0].state == "up" and
	    .[0].bgp.state == "established" and .[0].packets_out > 0 and
	    ([.[0].sas[] | select(.dir == "in" and .spi > 0)] | length) >= 1 and
	    ([.[0].sas[] | select(.dir == "out" and .spi > 0 and .active)] | length) == 1' \
	    "$NS_TMP/st.json" >/dev/null
}
wait_until 60 ready || { agent_logs; cat "$NS_TMP/st.json" "$NS_TMP/st.err"; fail "status never showed the tunnel up with SAs and BGP"; }
cat "$NS_TMP/st.json"

[ "$(stat -c '%a %u' "$SOCK")" = "600 0" ] ||
	fail "control socket is $(stat -c '%a %u' "$SOCK"), not 600 root"
jq -e '.site_id > 0 and .site_name == "alpha" and .backend == "uesp" and
    .controller.state == "connected" and .controller.intent_version > 0 and
    .tunnels[0].peer_name == "beta" and .tunnels[0].sas[0].sa_epoch > 0' \
    "$NS_TMP/st.json" >/dev/null || fail "status --json lacks fields"
tid=$(jq -r '.tunnels[0].id' "$NS_TMP/st.json")
pkts=$(jq -r '.tunnels[0].packets_out' "$NS_TMP/st.json")

# The table: the tunnel and every SPI (hex).
st >"$NS_TMP/st.txt" || fail "status (table) failed"
cat "$NS_TMP/st.txt"
grep -q "^controller  10.99.0.1:7443 connected" "$NS_TMP/st.txt" ||
	fail "table lacks the controller line"
grep -Eq "^$tid +2 beta +[a-z0-9]+ +inet +10\.99\.0\.3:[0-9]+ .* up$" "$NS_TMP/st.txt" ||
	fail "table lacks the tunnel row"
for spi in $(jq -r '.tunnels[0].sas[].spi' "$NS_TMP/st.json"); do
	hex=$(printf '0x%08x' "$spi")
	grep -q " $hex " "$NS_TMP/st.txt" || fail "table lacks SPI $hex"
done

# /metrics: the same tunnel and SAs, counters at least what status showed.
ip netns exec "$E1" curl -sf http://127.0.0.1:9464/metrics >"$NS_TMP/metrics.txt" ||
	fail "GET /metrics failed"
lbl="tunnel=\"$tid\",peer=\"beta\""
v=$(grep -F "meshwan_edge_tunnel_packets_total{$lbl,dir=\"out\"} " "$NS_TMP/metrics.txt" | awk '{ print $2 }')
[ -n "$v" ] && [ "$v" -ge "$pkts" ] ||
	fail "metrics: packets out '$v', status showed $pkts"
grep -q "^meshwan_edge_controller_connected 1$" "$NS_TMP/metrics.txt" ||
	fail "metrics: controller not connected"
grep -q "^meshwan_edge_bgp_established{$lbl} 1$" "$NS_TMP/metrics.txt" ||
	fail "metrics: BGP not established"
jq -r '.tunnels[0].sas[] | "\(.dir) \(.spi)"' "$NS_TMP/st.json" |
while read -r dir spi; do
	hex=$(printf '0x%08x' "$spi")
	grep -q "^meshwan_edge_sa_bytes_total{$lbl,dir=\"$dir\",spi=\"$hex\"} [0-9]*$" \
	    "$NS_TMP/metrics.txt" || fail "metrics lack SA $dir $hex"
done || exit 1
echo "metrics: $(grep -c '^meshwan_edge_' "$NS_TMP/metrics.txt") samples"

# Root only: nobody is refused, and sees nothing.
if ip netns exec "$E1" setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$AGENT" status -s "$SOCK" --json >"$NS_TMP/nobody.out" 2>"$NS_TMP/nobody.err"; then
	fail "a non-root user read the status"
fi
[ ! -s "$NS_TMP/nobody.out" ] || fail "a non-root user got output"
grep -q "cannot reach the agent" "$NS_TMP/nobody.err" ||
	fail "refusal not explained: $(cat "$NS_TMP/nobody.err")"

SAN=$SAN sh "$MESHWAN_TOP/tests/edge/agent_keygrep.sh" "$NS_TMP" \
    "$NS_TMP/st.json" "$NS_TMP/st.txt" "$NS_TMP/metrics.txt" ||
	fail "key bytes found in status or metrics"

agent_stop 1
agent_stop 2
[ ! -e "$SOCK" ] || fail "control socket left behind"
agent_check_sanitizers
echo "status_agent: PASS"
