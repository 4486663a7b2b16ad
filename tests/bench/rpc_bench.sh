#!/bin/sh
# rpc_bench — unary calls/s, streamed messages/s and memory per idle mTLS
# stream through proto/rpc, each next to a reference measured in the same
# run (raw loopback TCP).  See tests/bench/rpc_bench.c.
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/bench/rpc_bench" "$dir"
