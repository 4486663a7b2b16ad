#!/bin/sh
# xfrm_mesh_switch.sh — (lab) xfrm_mesh_vxlan, then the whole mesh switched
# to GRE through PUT /policy (tests/lab/README.md, "Encapsulation switch";
# KEEP=1 keeps the sites' logs).  Three sites whose agents run the kernel
# backend (xfrm), VXLAN tunnels: controller, meshwan-edge and FRR per site in
# namespaces inside the VM (tests/lab/mesh_lib.sh over
# tests/edge/sites_lib.sh; sites a, b, c, one underlay link each).
#
# Proves:
#  - every LAN host pings every other over VXLAN (BGP routes and SPIs of
#    that mesh: xfrm_mesh_vxlan);
#  - the tunnel devices are VXLAN ones (VXLAN: dstport 4789 and the VNI
#    the controller gave the tunnel) and the XFRM policies select that
#    traffic (proto gre / proto udp dport 4789), nothing of the other kind.
#  - then the operator switches the mesh to GRE (PUT /policy): every
#    agent rebuilds its tunnels as GRE devices with GRE policies, on new
#    outbound SAs (none of the old SPIs), no agent refuses an SA, every
#    LAN host pings every other, each FRR holds the other LANs by BGP,
#    selected and installed through a tunnel device, and every SPI each
#    agent reports (meshwan-edge status --json) is in `ip -s xfrm state`,
#    each tunnel with an active outbound SA and an inbound one.
# Rekey under a flow and agent restart are proved by xfrm_mesh_gre; fail
# closed and add/remove cycles by kernel_esp_gre, xfrm_backend and
# xfrm_cycles.
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
LAB_BACKEND=xfrm
LAB_SLOW=4
mesh_init switch
command -v ping >/dev/null || lab_fail "missing tool: ping"

mesh_step "three xfrm sites, VXLAN: pings"
mesh_up vxlan
# Only what the switch starts from: xfrm_mesh_vxlan proves the VXLAN
# mesh's BGP routes and SPIs, and skipping them here keeps this scenario
# inside its time limit on a loaded host.
mesh_poll 60 lab_all_ping || lab_wait_pings 1 || lab_fail "LAN hosts do not all ping"
mesh_step "every LAN pings every other (VXLAN)"
mesh_all_encap vxlan 30

mesh_step "the operator switches the mesh to GRE"
outs() {
	mesh_status "$1" | jq -r '.tunnels[].sas[] | select(.dir == "out") | .spi'
}
for s in a b c; do
	outs "$s" >"$LAB_DIR/out0.$s" || lab_fail "site $s: no status"
done
lab_api PUT /api/v1/policy '{"encap":"gre"}' >/dev/null ||
	lab_fail "PUT /policy encap=gre: $(cat "$LAB_DIR/api.out")"
# What each side holds when a site does not follow: the controller's
# view of the edges, each agent's own status (it answers from its event
# loop: a timeout says the loop is stuck) and its threads' kernel stacks;
# mesh_all_encap runs it before it fails.
mesh_diag() {
	echo "--- GET /edges"
	lab_api GET /api/v1/edges | head -c 6000; echo
	for _s in a b c; do
		echo "--- site $_s"
		timeout 20 "$MESH_EDGE" status -c "$LAB_DIR/$_s/edge.conf" 2>&1 | head -n 30
		_p=$(mesh_agent_pid "$_s" 2>/dev/null || pgrep -f "$LAB_DIR/$_s/edge.conf" | head -n 1)
		for _t in /proc/"$_p"/task/*; do
			echo "thread $_t: $(cat "$_t/comm") $(cat "$_t/wchan")"
			head -n 8 "$_t/stack" 2>/dev/null
		done
		tail -n 15 "$LAB_DIR/$_s-edge.log"
	done
}
mesh_all_encap gre 60 "after the switch"
mesh_check 120
for s in a b c; do
	for spi in $(outs "$s"); do
		! grep -qx "$spi" "$LAB_DIR/out0.$s" ||
			lab_fail "site $s: outbound SPI $spi used before the switch too"
	done
	! grep -E 'is not above|must not be installed again' "$LAB_DIR/$s-edge.log" ||
		lab_fail "site $s: the agent refused an SA"
done
mesh_step "pass"
