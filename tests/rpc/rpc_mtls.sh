#!/bin/sh
# rpc_mtls — see the "mtls" mode at the top of tests/rpc/rpc_test.c: no
# client certificate, a certificate from another CA, an expired one and
# plaintext are refused on the mutual-TLS port, and the handlers never run.
# The server's log must also show that the TLS handshake itself refused
# each (not some later failure).
set -eu
BUILD=${BUILD:-build}
. tests/rpc/certs.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
rpc_certs "$dir"
rc=0
"$BUILD/tests/rpc/rpc_test" mtls "$dir" >"$dir/log" 2>&1 || rc=$?
cat "$dir/log"
[ "$rc" -eq 0 ] || { echo "FAIL: rpc_test mtls exit $rc"; exit 1; }
expect() {
	n=$(grep -c "grpc: Handshake failed.*$1" "$dir/log" || true)
	[ "$n" -ge "$2" ] || { echo "FAIL: expected $2 handshake failure(s) '$1', saw $n"; exit 1; }
	echo "ok: server log: $n handshake failure(s): $1"
}
expect 'peer did not return a certificate' 1
expect 'certificate verify failed' 3   # other CA, expired, client distrusts server
expect 'wrong version number' 1        # plaintext
