#!/bin/sh
# xfrm_mesh_gre.sh — (lab) three sites whose agents run the kernel backend
# (xfrm), GRE tunnels: controller, meshwan-edge and FRR per site in
# namespaces inside the VM (tests/lab/mesh_lib.sh over
# tests/edge/sites_lib.sh; sites a, b, c, one underlay link each).
#
# Proves, in order:
#  1. every LAN host pings every other, each FRR holds the other LANs by
#     BGP through a tunnel device, and every SPI each agent reports
#     (meshwan-edge status --json) is in `ip -s xfrm state`;
#  2. restart: site a's agent is stopped (SIGTERM) and started again with
#     its ESP-in-UDP socket held across (socket activation): pings from
#     a's LAN to b and c lose nothing, and each outbound SA is the same
#     kernel object afterwards (same SPI and add time, sequence number
#     running on, never reset);
#  3. rekey of tunnel a-b through REST under a running ping flow: both
#     sides move to new outbound SPIs, no packet is lost and no counter
#     of /proc/net/xfrm_stat rises on any site;
#  4. fail closed: a's active outbound SA to b deleted by hand
#     (`ip xfrm state delete`): pings from a's LAN to b fail, the kernel
#     counts them as XfrmOutNoStates, and a capture of b's underlay shows
#     not one cleartext GRE packet (markers on the underlay prove the
#     capture was live).
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
LAB_BACKEND=xfrm
LAB_SLOW=4
mesh_init gre
for t in dumpcap tshark ping; do
	command -v "$t" >/dev/null || lab_fail "missing tool: $t"
done
A=$(mesh_ns a)
B=$(mesh_ns b)

mesh_step "1. three xfrm sites, GRE: pings, BGP routes, SPIs in the kernel"
mesh_up gre
mesh_check 60
mesh_step "mesh up"
for s in a b c; do echo "site $s holds: $(mesh_counts $s)"; done
ip -n "$A" -o link show type gre | grep -q ': mw' || lab_fail "site a has no GRE device"

# out_sas NS LOCAL: "SPI ADDED OSEQ" of each outbound SA (source LOCAL);
# ADDED is the add time of its current lifetime, OSEQ hex.
out_sas() {
	ip -n "$1" -s xfrm state | awk -v me="$2" '
	    function flush() { if (spi != "") print spi, add, seq; spi = "" }
	    /^src / { flush(); out = ($2 == me); next }
	    out && /proto esp spi/ { spi = $4 }
	    out && /add [0-9]/ { add = $2 "_" $3 }
	    out && /oseq/ { for (i = 1; i <= NF; i++) if ($i == "oseq") { seq = $(i + 1); sub(/,/, "", seq) } }
	    END { flush() }'
}

# ping_start NAME FROM TO: ping from FROM's LAN host to TO's, 5/s.
ping_start() {
	ip netns exec "$LAB_P-lan-$2" ping -i 0.2 -W 2 "$(lab_lan_addr "$3")" \
	    >"$LAB_DIR/ping.$1" 2>&1 &
	eval "ping_$1=\$!"
}
# ping_stop NAME: stop it; fails unless it sent some and lost none.
ping_stop() {
	eval "kill -INT \$ping_$1; wait \$ping_$1"
	grep -q ' 0% packet loss' "$LAB_DIR/ping.$1" ||
		lab_fail "ping $1 lost packets: $(tail -n 3 "$LAB_DIR/ping.$1")"
	echo "ping $1: $(grep 'packets transmitted' "$LAB_DIR/ping.$1")"
}

mesh_step "2. restart of site a's agent under a running ping"
before=$(out_sas "$A" 198.18.1.2)
[ -n "$before" ] || lab_fail "no outbound SA on a"
echo "a's outbound SAs before (spi, added, oseq):"
echo "$before"
ping_start ab a b
ping_start ac a c
sleep 2
old=$(mesh_agent_pid a)
kill -TERM "$old"
lab_wait 60 sh -c "[ \"\$(cat '$LAB_DIR/a/agent.pid')\" != $old ]" || lab_fail "the agent of a did not restart"
new=$(mesh_agent_pid a)
# The data plane is adopted at start; the FRR half of the cached
# intent may take longer than vtysh's 15 s under TCG (then retried), so
# the check is the reconnection, the pings and the SAs below.
lab_wait 120 grep -q "meshwan-edge\[$new\]: session: connected" "$LAB_DIR/a-edge.log" ||
	lab_fail "the restarted agent did not reconnect: $(tail -n 20 "$LAB_DIR/a-edge.log")"
grep "meshwan-edge\[$new\]: agent: .*cached intent" "$LAB_DIR/a-edge.log"
sleep 3
ping_stop ab
ping_stop ac
after=$(out_sas "$A" 198.18.1.2)
echo "a's outbound SAs after:"
echo "$after"
echo "$before" | while read -r spi added seq; do
	set -- $(echo "$after" | awk -v s="$spi" '$1 == s')
	[ $# -eq 3 ] && [ "$2" = "$added" ] && [ $(($3)) -gt $((seq)) ] ||
		lab_fail "outbound SA $spi was re-made or its sequence reset: before '$spi $added $seq', after '$*'"
done || exit 1
grep "meshwan-edge\[$new\]: xfrm: .*adopt" "$LAB_DIR/a-edge.log" | head -n 3

mesh_step "3. rekey of tunnel a-b (REST) under a running flow"
tid=$(mesh_status a | jq -r '.tunnels[] | select(.peer_name == "site-b") | .id')
[ -n "$tid" ] || lab_fail "no tunnel a-b in a's status"
spi_out() {
	mesh_status "$1" | jq -r --argjson t "$tid" '.tunnels[] | select(.id == $t)
	    | .sas[] | select(.dir == "out" and .active) | .spi'
}
oa=$(spi_out a)
ob=$(spi_out b)
for s in a b c; do mesh_xfrm_stat "$s" >"$LAB_DIR/xstat.$s"; done
ping_start rk a b
sleep 1
lab_api POST "/api/v1/tunnels/$tid/rekey" >/dev/null || lab_fail "POST rekey: $(cat "$LAB_DIR/api.out")"
rekeyed() {
	_na=$(spi_out a) _nb=$(spi_out b)
	[ -n "$_na" ] && [ -n "$_nb" ] && [ "$_na" != "$oa" ] && [ "$_nb" != "$ob" ]
}
mesh_poll 120 rekeyed || lab_fail "tunnel $tid not rekeyed: a $oa -> $(spi_out a), b $ob -> $(spi_out b)"
sleep 3
ping_stop rk
echo "tunnel $tid: a's outbound SPI $oa -> $(spi_out a), b's $ob -> $(spi_out b)"
for s in a b c; do
	mesh_xfrm_stat "$s" | diff "$LAB_DIR/xstat.$s" - ||
		lab_fail "site $s: /proc/net/xfrm_stat moved during the rekey"
done
mesh_poll 30 mesh_spis_ok a || lab_fail "a's SPIs after the rekey"

mesh_step "4. fail closed: a's active outbound SA to b deleted by hand"
cap=$LAB_DIR/underlay.pcap
lab_bg dumpcap "$B" dumpcap -q -i inet -w "$cap" -f "proto 47 or udp port 4789 or icmp"
cappid=$LAB_PID
lab_wait 30 test -s "$cap" || lab_fail "dumpcap did not start"
spi=$(spi_out a)
nos0=$(ip netns exec "$A" awk '$1 == "XfrmOutNoStates" { print $2 }' /proc/net/xfrm_stat)
ip -n "$A" xfrm state delete src 198.18.1.2 dst 198.18.2.2 proto esp spi "$spi" ||
	lab_fail "ip xfrm state delete spi $spi"
if ip netns exec "$LAB_P-lan-a" ping -c 3 -W 1 -q "$(lab_lan_addr b)" >/dev/null 2>&1; then
	lab_fail "a's LAN reached b with the outbound SA gone"
fi
nos1=$(ip netns exec "$A" awk '$1 == "XfrmOutNoStates" { print $2 }' /proc/net/xfrm_stat)
[ "$nos1" -ge $((nos0 + 3)) ] || lab_fail "XfrmOutNoStates $nos0 -> $nos1"
# Markers: the capture saw the underlay all along.
ip netns exec "$A" ping -c 3 -i 0.2 -q 198.18.2.2 >/dev/null || lab_fail "underlay ping"
sleep 2
lab_stop_pid "$cappid"
marks=$(tshark -r "$cap" -Y 'icmp && ip.dst == 198.18.2.2' 2>/dev/null | wc -l)
leaks=$(tshark -r "$cap" -Y 'gre || vxlan' 2>/dev/null | wc -l)
[ "$marks" -ge 3 ] || lab_fail "the capture missed the underlay markers ($marks)"
[ "$leaks" -eq 0 ] || lab_fail "$leaks cleartext GRE frames on b's underlay"
echo "no cleartext: 0 GRE frames on b's underlay ($marks markers), XfrmOutNoStates $nos0 -> $nos1"
mesh_step "pass"
