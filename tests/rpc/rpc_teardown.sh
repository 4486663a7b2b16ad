#!/bin/sh
# rpc_teardown — see the "teardown" mode at the top of tests/rpc/rpc_test.c.
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/rpc/rpc_test" teardown "$dir"
