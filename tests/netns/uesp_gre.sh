#!/bin/sh
# uesp_gre.sh — two namespaces joined by a GRE-in-ESP tunnel of
# meshwan-uesp: ping, 10 s iperf3 with a rekey in the middle, no drops.
# The topology and steps are drawn in uesp_lib.sh.
set -u
ENCAP=gre
UESP=$MESHWAN_TOP/${BUILD:-build}/overlay/uesp/meshwan-uesp
UESP_ENV=
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"
uesp_scenario
