#!/bin/sh
# xfrm_mesh_vxlan.sh — (lab) three sites whose agents run the kernel backend
# (xfrm), VXLAN tunnels: controller, meshwan-edge and FRR per site in
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
#  - the tunnel devices are VXLAN ones (VXLAN: dstport 4789 and the VNI
#    the controller gave the tunnel) and the XFRM policies select that
#    traffic (proto gre / proto udp dport 4789), nothing of the other kind.
# Rekey under a flow, agent restart, fail closed and add/remove cycles are
# proved by xfrm_backend, xfrm_cycles and kernel_esp_gre.  A mesh
# switched from VXLAN to GRE through PUT /policy is xfrm_mesh_switch.
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
LAB_BACKEND=xfrm
LAB_SLOW=4
mesh_init vxlan
command -v ping >/dev/null || lab_fail "missing tool: ping"

mesh_step "three xfrm sites, VXLAN: pings, BGP routes, SPIs in the kernel"
mesh_up vxlan
mesh_check 60
mesh_all_encap vxlan 30
mesh_step "pass"
