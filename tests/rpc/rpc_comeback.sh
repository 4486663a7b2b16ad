#!/bin/sh
# rpc_comeback — see the "comeback" mode at the top of tests/rpc/rpc_test.c:
# streams that waited out their backoff while the server was away reopen
# as soon as their channel is connected again.
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/rpc/rpc_test" comeback "$dir"
