#!/bin/sh
# The `make test` entry for the lab scenario of the same name in
# tests/lab/scenarios/: boots the lab VM and runs it there (tests/lab/run).
# xfrm_mesh_vxlan's mesh (pings only) switched to GRE: 282-444 s in the VM
# at host load 13-25, 421-523 s beside two busy loops at load ~20, over
# 585 s at load ~100 (2026-12-04);
# it gets 585 s, inside tests/run's 600 s per test.
LAB_TIMEOUT=${LAB_TIMEOUT:-585} exec sh "$MESHWAN_TOP/tests/lab/run" \
    "$MESHWAN_TOP/tests/lab/scenarios/$(basename "$0")"
