#!/bin/sh
# The `make test-lab-mesh` entry for the mesh scenario of the same name in
# tests/lab/mesh/: boots the lab VM and runs it there (tests/lab/run).
# A mesh of sites under TCG is slow: the VM gets 585 s, inside tests/run's
# 600 s per test.
LAB_TIMEOUT=${LAB_TIMEOUT:-585} exec sh "$MESHWAN_TOP/tests/lab/run" \
    "$MESHWAN_TOP/tests/lab/mesh/$(basename "$0")"
