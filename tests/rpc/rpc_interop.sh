#!/bin/sh
# rpc_interop — an independent gRPC implementation (Node.js @grpc/grpc-js,
# pinned by tests/js/package-lock.json, installed by `make deps`) calls the
# C server's Enroll (server-auth TLS) and Session (mutual TLS) and checks the
# replies; the server then reports what its handlers saw.
set -eu
BUILD=${BUILD:-build}
command -v node >/dev/null || { echo "FAIL: node missing (make deps)"; exit 1; }
[ -d tests/js/node_modules/@grpc/grpc-js ] || {
	echo "FAIL: tests/js/node_modules missing (make deps runs npm ci)"; exit 1; }
. tests/rpc/certs.sh
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
rpc_certs "$dir"
"$BUILD/tests/rpc/rpc_test" serve "$dir" >"$dir/server.out" 2>"$dir/server.err" &
pid=$!
deadline=$(( $(date +%s) + 15 ))
until grep -q '^PORTS ' "$dir/server.out"; do
	[ "$(date +%s)" -lt "$deadline" ] || { cat "$dir/server.err"; echo "FAIL: server did not start"; exit 1; }
	kill -0 "$pid" || { cat "$dir/server.err"; echo "FAIL: server died"; exit 1; }
	sleep 0.1
done
set -- $(grep '^PORTS ' "$dir/server.out")
node tests/js/rpc_interop.js proto "$dir" "$2" "$3"
kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
pid=
cat "$dir/server.out"
[ "$rc" -eq 0 ] || { cat "$dir/server.err"; echo "FAIL: server exit $rc"; exit 1; }
# What the C handlers saw: 2 Enrolls, 1 accepted Session with its hello and
# ack, the client's verified CN; the certificate-less Session never opened.
grep -q '^COUNTS enroll=2 opens=1 hellos=1 acks=1 closes=1 verified_cn=site-1$' "$dir/server.out" ||
	{ echo "FAIL: unexpected server counts"; exit 1; }
echo "ok: server handlers saw exactly the interop client's calls"
