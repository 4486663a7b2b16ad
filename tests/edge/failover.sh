#!/bin/sh
# failover.sh — multi-link failover (issue 9 item 6): site a has two WAN
# links (inet, mpls) and so two tunnels to site b, each with BGP and BFD.
# Under a running ping (every 20 ms) from a's LAN host to b's, the
# underlay path that carries the flow is black-holed in the internet
# router (no carrier change: only BFD or the agents' probes can tell).
# Checks: the loss window (longest run of lost pings x interval) is at
# most 1.5 s; the flow then runs over the other tunnel; when the path
# comes back, its BGP session is Established again and pings pass.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
INTERVAL_MS=20
BOUND_MS=1500
lab_test_init failover
lab_three_sites
lab_wait_pings 60 || lab_fail "LAN hosts do not all ping after 60 s"
A=$(lab_site_id a)
B=$(lab_site_id b)
# a's two tunnels to b: "id link" lines.
tun=$(lab_api GET "/api/v1/tunnels?site=$A" | jq -r --argjson a "$A" --argjson b "$B" '
	.tunnels[] | select((.site_a == $a and .site_b == $b) or (.site_a == $b and .site_b == $a))
	| "\(.id) \(if .site_a == $a then .link_a else .link_b end)"')
[ "$(echo "$tun" | wc -l)" = 2 ] || lab_fail "site a should have 2 tunnels to b: $tun"
established() {
	[ "$(lab_vtysh "$1" -c 'show bgp summary json' | jq '[.ipv4Unicast.peers[] | select(.state == "Established")] | length')" = "$2" ]
}
lab_wait 30 established a 4 || lab_fail "site a's 4 BGP sessions not Established"
bfd_up() {
	[ "$(lab_vtysh a -c 'show bfd peers json' | jq '[.[] | select(.status == "up")] | length')" -ge 4 ]
}
lab_wait 30 bfd_up || lab_fail "site a's BFD sessions not up: $(lab_vtysh a -c 'show bfd peers brief')"

tx() { ip netns exec "$LAB_P-a" cat "/sys/class/net/mw$1/statistics/tx_packets"; }

PING="$LAB_DIR/ping.out"
ip netns exec "$LAB_P-lan-a" ping -D -n -i 0.$(printf '%03d' $INTERVAL_MS) -W 1 "$(lab_lan_addr b)" >"$PING" 2>&1 &
PING_PID=$!
# Which tunnel carries the flow: the one whose device sends the pings.
set -- $tun
t1=$1 l1=$2 t2=$3 l2=$4
c1=$(tx "$t1"); c2=$(tx "$t2")
sleep 1
d1=$(( $(tx "$t1") - c1 )); d2=$(( $(tx "$t2") - c2 ))
if [ "$d1" -ge "$d2" ]; then used=$l1 other=$l2; else used=$l2 other=$l1; fi
echo "flow on a's $used link (tunnel packets in 1 s: $l1 $d1, $l2 $d2); cutting it"
lab_cut a "$used"
cut_at=$(lab_ms)
sleep 4
echo "restoring a's $used link"
lab_restore a "$used"
lab_wait 30 established a 4 || lab_fail "BGP over a's $used link not back after the restore"
sleep 1
kill -INT "$PING_PID" 2>/dev/null
wait "$PING_PID" 2>/dev/null
# Longest run of missing sequence numbers among the replies.
win=$(awk -v iv=$INTERVAL_MS '/icmp_seq=/ {
	match($0, /icmp_seq=[0-9]+/); s = substr($0, RSTART + 9, RLENGTH - 9) + 0
	if (n++ && s - prev - 1 > gap) gap = s - prev - 1
	prev = s
} END { print gap * iv }' "$PING")
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$PING")
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$PING")
echo "figure: failover loss window ${win} ms (longest gap; $sent sent, $got received, interval ${INTERVAL_MS} ms)"
[ -n "$win" ] && [ "$win" -le $BOUND_MS ] || lab_fail "loss window ${win} ms above ${BOUND_MS} ms"
lab_wait_pings 20 || lab_fail "pings do not all pass after the restore"
echo "failover: PASS"
