#!/bin/sh
# uesp_gre_asan.sh — uesp_gre.sh's scenario (GRE, TUN and UDP offloads:
# segmentation, coalescing, UDP_SEGMENT/UDP_GRO) with both ends running
# the ASan/UBSan build; any sanitizer report fails.  uesp_gre.sh runs the
# normal build, whose throughput is the meaningful one.
set -u
ENCAP=gre
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"
uesp_use_sanitizers
uesp_scenario
uesp_check_sanitizers
