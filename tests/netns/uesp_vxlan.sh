#!/bin/sh
# uesp_vxlan.sh — two namespaces joined by a VXLAN-in-ESP tunnel of
# meshwan-uesp (TAP devices): ping, 10 s iperf3 with a rekey in the
# middle, no drops.  The topology and steps are drawn in uesp_lib.sh.
# Both ends run the ASan/UBSan build; any sanitizer report fails.
set -u
ENCAP=vxlan
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"
uesp_use_sanitizers
uesp_scenario
uesp_check_sanitizers
