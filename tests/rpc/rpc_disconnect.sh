#!/bin/sh
# rpc_disconnect — see the "disconnect" mode at the top of tests/rpc/rpc_test.c.
# Certificates are made fresh in a temporary folder; ports are picked by
# the kernel on 127.0.0.1.
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/rpc/rpc_test" disconnect "$dir"
