#!/bin/sh
# xfrm_mesh_mixed.sh — (lab) a VXLAN mesh of four sites: a, b and c with
# the kernel backend (xfrm), d with the userspace one (uesp); controller,
# meshwan-edge and FRR per site in namespaces inside the VM
# (tests/lab/mesh_lib.sh over tests/edge/sites_lib.sh).
#
# Proves:
#  1. VXLAN with three xfrm edges: every LAN host pings every other, each
#     FRR holds the other LANs by BGP through a tunnel device, and every
#     SPI each xfrm agent reports (status --json) is in `ip -s xfrm state`;
#  2. mixed mesh: d (uesp) and the xfrm sites carry pings and an iperf3
#     TCP flow each way between d's LAN and a's and b's, with zero
#     authentication or replay drops on either side: every uesp drop
#     counter d reports, the kernel SAs' replay/failed counters, and the
#     auth/replay counters of /proc/net/xfrm_stat.
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
LAB_BACKEND=xfrm
LAB_BACKEND_d=uesp
LAB_SLOW=4
mesh_init mixed
command -v iperf3 >/dev/null || lab_fail "missing tool: iperf3"

mesh_step "1. sites a, b, c (xfrm) and d (uesp), VXLAN"
mesh_up vxlan "a b c d"
mesh_check 75
for s in a b c; do
	ip -n "$(mesh_ns $s)" -o link show type vxlan | grep -q ': mw' ||
		lab_fail "site $s has no VXLAN device"
	echo "site $s holds: $(mesh_counts $s)"
done

# drops_ok: no auth/replay drop anywhere.
drops_ok() {
	for s in a b c; do
		mesh_xfrm_stat "$s" | grep -E 'XfrmInStateProtoError|XfrmInStateSeqError|XfrmInStateInvalid' &&
			lab_fail "site $s: /proc/net/xfrm_stat counts drops"
		ip -n "$(mesh_ns $s)" -s xfrm state | grep -E 'replay-window [0-9]+ replay [0-9]+ failed' |
		    grep -vE 'replay [0]+ failed [0]+$' && lab_fail "site $s: an SA counts replay/integrity failures"
	done
	mesh_status d | jq -e 'all(.tunnels[]; .drops.auth == 0 and .drops.replay == 0)' >/dev/null ||
		lab_fail "site d (uesp) counts drops: $(mesh_status d | jq -c '[.tunnels[] | {id, drops}]')"
}

mesh_step "2. mixed: iperf3 between d (uesp) and a, b (xfrm), both ways"
for s in a b; do
	lab_bg "iperf-$s" "$LAB_P-lan-$s" iperf3 -s -p 5201
done
for s in a b; do
	lab_wait 20 ip netns exec "$LAB_P-lan-$s" sh -c 'ss -ltn | grep -q :5201' ||
		lab_fail "iperf3 server of $s"
	for dir in "" -R; do
		ip netns exec "$LAB_P-lan-d" iperf3 -c "$(lab_lan_addr "$s")" -t 3 $dir -J \
		    >"$LAB_DIR/iperf.$s$dir.json" 2>&1 ||
			lab_fail "iperf3 d<->$s $dir: $(tail -n 5 "$LAB_DIR/iperf.$s$dir.json")"
		echo "iperf3 d $( [ -z "$dir" ] && echo '->' || echo '<-') $s: $(jq -r '.end.sum_received | "\(.bytes) bytes, \(.bits_per_second / 1e6 | floor) Mbit/s"' "$LAB_DIR/iperf.$s$dir.json")"
	done
done
mesh_poll 30 lab_all_ping || lab_wait_pings 1 || lab_fail "pings after the flows"
drops_ok
echo "zero auth/replay drops: xfrm_stat, kernel SAs, uesp"
mesh_status d | jq -c '[.tunnels[] | {peer: .peer_name, in: .packets_in, out: .packets_out, drops}]'
mesh_step "pass"
