#!/bin/sh
# failover.sh — multi-link failover (issue 9 item 6): site a has two WAN
# links (inet, mpls) and so two tunnels to site b, each with BGP and BFD.
#
#   lan-a -- a ==inet== internet == b -- lan-b     (the lab of `make demo`:
#              ==mpls==  router  == c (NAT)          tests/edge/sites_lib.sh)
#
# Under a running ping (every 20 ms) from a's LAN host to b's, the
# underlay path that carries the flow is black-holed in the internet
# router (no carrier change: only BFD or the agents' probes can tell).
# Checks: the loss window is at most 1.5 s; the flow then runs over the
# other tunnel (its device's counters move); when the path comes back, its
# BGP sessions are Established again, a reports every tunnel healthy again
# and every LAN pair pings.
#
# The loss window is measured on the pings' own clocks: the time between
# sending the last request answered before the gap and the first one
# answered after it, less one interval (ping -D stamps each reply; its
# send time is the stamp less the RTT).  The count of lost requests times
# the interval is printed too; the two differ when the pinger falls
# behind its 20 ms (a loaded machine), and then only the first is honest.
#
# On failure the lab's logs, the pings and FRR's view of a and b are left
# in $BUILD/test-logs/failover-lab.<pid> (one folder per failed run).
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
INTERVAL_MS=20
BOUND_MS=1500
lab_test_init failover

# fo_fail MSG — what FRR, the kernel and the pings saw, kept, then fail.
fo_fail() {
	_keep="$MESHWAN_TOP/$BUILD/test-logs/failover-lab.$$"
	{
		for _s in a b; do
			echo "=== $_s: bgp summary"; lab_vtysh "$_s" -c 'show bgp summary' 2>&1
			echo "=== $_s: bfd peers"; lab_vtysh "$_s" -c 'show bfd peers brief' 2>&1
			echo "=== $_s: interfaces"; lab_vtysh "$_s" -c 'show interface brief' 2>&1
			echo "=== $_s: routes"; ip -n "$LAB_P-$_s" route 2>&1
		done
		echo "=== router cut rules"; ip netns exec "$LAB_INET" nft list chain inet mwcut cut 2>&1
		[ -n "${A:-}" ] && { echo "=== GET /edges/$A"; lab_api GET "/api/v1/edges/$A" 2>&1; }
	} >"$LAB_DIR/diag.txt" 2>&1
	rm -rf "$_keep"
	mkdir -p "$(dirname "$_keep")" && cp -r "$LAB_DIR" "$_keep" 2>/dev/null &&
		echo "failover: lab logs, pings and FRR state kept in $_keep" >&2
	[ -f "${PING:-/nonexistent}" ] && { echo "--- last pings" >&2; tail -n 5 "$PING" >&2; }
	lab_fail "$@"
}

lab_three_sites
lab_wait_pings 60 || fo_fail "LAN hosts do not all ping after 60 s"
A=$(lab_site_id a)
B=$(lab_site_id b)
# a's two tunnels to b: "id link" lines.
tun=$(lab_api GET "/api/v1/tunnels?site=$A" | jq -r --argjson a "$A" --argjson b "$B" '
	.tunnels[] | select((.site_a == $a and .site_b == $b) or (.site_a == $b and .site_b == $a))
	| "\(.id) \(if .site_a == $a then .link_a else .link_b end)"')
[ "$(echo "$tun" | wc -l)" = 2 ] || fo_fail "site a should have 2 tunnels to b: $tun"
established() {
	[ "$(lab_vtysh "$1" -c 'show bgp summary json' | jq '[.ipv4Unicast.peers[] | select(.state == "Established")] | length')" = "$2" ]
}
lab_wait 30 established a 4 || fo_fail "site a's 4 BGP sessions not Established"
bfd_up() {
	[ "$(lab_vtysh a -c 'show bfd peers json' | jq '[.[] | select(.status == "up")] | length')" -ge 4 ]
}
lab_wait 30 bfd_up || fo_fail "site a's BFD sessions not up"
# a's own view: every tunnel up, answering its probes.
a_healthy() {
	lab_api GET "/api/v1/edges/$A" | jq -e '.status.health | length == 4 and
		all(.[]; .up and .rtt_us > 0)' >/dev/null
}
lab_wait 30 a_healthy || fo_fail "a does not report its 4 tunnels healthy"

tx() { ip netns exec "$LAB_P-a" cat "/sys/class/net/mw$1/statistics/tx_packets"; }

PING="$LAB_DIR/ping.out"
# The pinger is the measuring instrument: it gets the CPU before the rest
# of a loaded machine, so its own lateness does not count as loss.
ip netns exec "$LAB_P-lan-a" nice -n -10 ping -D -n -i 0.$(printf '%03d' $INTERVAL_MS) -W 1 \
	"$(lab_lan_addr b)" >"$PING" 2>&1 &
PING_PID=$!
# Which tunnel carries the flow: the one whose device sends the pings.
set -- $tun
t1=$1 l1=$2 t2=$3 l2=$4
c1=$(tx "$t1"); c2=$(tx "$t2")
sleep 1
d1=$(( $(tx "$t1") - c1 )); d2=$(( $(tx "$t2") - c2 ))
if [ "$d1" -ge "$d2" ]; then
	used=$l1 other=$l2 ot=$t2 before=$d2
else
	used=$l2 other=$l1 ot=$t1 before=$d1
fi
echo "flow on a's $used link (tunnel packets in 1 s: $l1 $d1, $l2 $d2); cutting it"
lab_cut a "$used"
sleep 2
# By now the flow runs over the other tunnel.
c_o=$(tx "$ot")
sleep 1
moved=$(( $(tx "$ot") - c_o ))
sleep 1
echo "restoring a's $used link (tunnel over $other sent $moved packets in 1 s during the cut)"
lab_restore a "$used"
lab_wait 30 established a 4 || fo_fail "BGP over a's $used link not back after the restore"
lab_wait 30 a_healthy || fo_fail "a does not report its tunnels healthy after the restore"
sleep 1
kill -INT "$PING_PID" 2>/dev/null
wait "$PING_PID" 2>/dev/null
# The longest gap among the replies: lost requests, and the time between
# the requests answered on either side of it (send = stamp - RTT).
set -- $(awk -v iv=$INTERVAL_MS '/icmp_seq=.*time=/ {
	match($0, /icmp_seq=[0-9]+/); s = substr($0, RSTART + 9, RLENGTH - 9) + 0
	match($0, /^\[[0-9.]+\]/); ts = substr($0, 2, RLENGTH - 2) * 1000
	match($0, /time=[0-9.]+/); sent = ts - substr($0, RSTART + 5, RLENGTH - 5)
	if (n++) {
		if (s - prev - 1 > gap) gap = s - prev - 1
		if (sent - psent - iv > win) win = sent - psent - iv
	}
	prev = s; psent = sent
} END { printf "%d %d\n", win, gap }' "$PING")
win=${1:-}
lost=${2:-}
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$PING")
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$PING")
echo "figure: failover loss window ${win} ms (longest gap between answered pings; $lost in a row lost = $((lost * INTERVAL_MS)) ms at ${INTERVAL_MS} ms; $sent sent, $got received)"
[ -n "$win" ] || fo_fail "no pings answered"
[ "$win" -le $BOUND_MS ] || fo_fail "loss window ${win} ms above ${BOUND_MS} ms"
# BFD and BGP alone send some 15 packets a second on a tunnel.
[ "$moved" -ge $((before + 20)) ] ||
	fo_fail "the flow did not move to a's $other tunnel ($before packets in 1 s before the cut, $moved during it)"
lab_wait_pings 20 || fo_fail "pings do not all pass after the restore"
echo "failover: PASS"
