#!/bin/sh
# xfrm_mesh_gre.sh — (lab) three sites whose agents run the kernel backend
# (xfrm), GRE tunnels: controller, meshwan-edge and FRR per site in
# namespaces inside the VM (tests/lab/mesh_lib.sh over
# tests/edge/sites_lib.sh; sites a, b, c, one underlay link each).
#
# Proves:
#  - every LAN host pings every other;
#  - each FRR holds the other LANs by BGP, selected and installed through
#    a tunnel device;
#  - every SPI each agent reports (meshwan-edge status --json) is in
#    `ip -s xfrm state`, each tunnel with an active outbound SA and an
#    inbound one;
#  - the tunnel devices are GRE ones (VXLAN: dstport 4789 and the VNI
#    the controller gave the tunnel) and the XFRM policies select that
#    traffic (proto gre / proto udp dport 4789), nothing of the other kind.
#  - the operator's rekey of tunnel a-b under a ping from a's LAN to b's:
#    a's outbound SPI changes, no ping lost, neither side's
#    /proc/net/xfrm_stat counts anything;
#  - a's agent restarted (SIGTERM; started again as systemd would, with
#    its ESP-in-UDP socket passed) under a ping: no ping lost, the same
#    SAs in the kernel after as before, no outbound sequence number back.
# Fail closed and add/remove cycles are proved by kernel_esp_gre,
# xfrm_backend and xfrm_cycles (backend instances, no agent).  A mesh
# switched from VXLAN to GRE through PUT /policy is xfrm_mesh_switch.
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
LAB_BACKEND=xfrm
LAB_SLOW=4
mesh_init gre
command -v ping >/dev/null || lab_fail "missing tool: ping"

mesh_step "three xfrm sites, GRE: pings, BGP routes, SPIs in the kernel"
mesh_up gre
mesh_check 60
mesh_all_encap gre 30
mesh_step "the operator rekeys tunnel a-b under a ping"
mesh_rekey a b
mesh_step "the agent of a restarts under a ping"
mesh_restart a b
mesh_step "pass"
