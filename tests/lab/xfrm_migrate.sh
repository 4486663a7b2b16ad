#!/bin/sh
# The `make test` entry for the lab scenario of the same name in
# tests/lab/scenarios/: boots the lab VM and runs it there (tests/lab/run).
exec sh "$MESHWAN_TOP/tests/lab/run" \
    "$MESHWAN_TOP/tests/lab/scenarios/$(basename "$0")"
