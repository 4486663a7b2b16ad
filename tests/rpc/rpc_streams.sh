#!/bin/sh
# rpc_streams — 1,000 concurrent Session streams from one client process
# (a child of the test server, one mTLS connection) to one server; the
# server broadcasts one ControllerMessage and every stream must receive it.
# Prints the server's resident memory per open stream.
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/rpc/rpc_test" streams "$dir" "${RPC_STREAMS:-1000}"
