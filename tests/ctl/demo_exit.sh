#!/bin/sh
# demo_exit.sh — `make demo` works non-interactively: DEMO_EXIT=1 sets up
# the demo controller with its three sites, checks the API, prints how to
# use it, exits 0 and leaves no process behind.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq
# Ports of our own (the demo uses port, port+1, port+2), not the default
# 8080 an operator may be using, and below the kernel's ephemeral range
# (32768 and up), where another process's outgoing connection can hold one.
port=$(( 20000 + ($$ % 4000) * 3 ))
DEMO_EXIT=1 DEMO_PORT=$port DEMO_DIR="$T/demo" sh "$MESHWAN_TOP/tests/demo.sh" >"$T/demo.out" 2>&1 ||
	{ cat "$T/demo.out"; fail "demo exited non-zero"; }
grep -q "REST API *http://127.0.0.1:$port/api/v1/" "$T/demo.out" || fail "no API URL printed"
grep -q "admin token *mwa_" "$T/demo.out" || fail "no admin token printed"
grep -q "hub-and-spoke, 3 tunnels" "$T/demo.out" || fail "unexpected demo topology: $(cat "$T/demo.out")"
grep -q "meshwanctl" "$T/demo.out" || fail "no meshwanctl example"
grep -q "^  mwe_" "$T/demo.out" || fail "no enrollment token printed"
grep -q ': stopped$' "$T/demo/controller.log" || fail "demo controller did not stop cleanly"
curl -s -m 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && fail "demo controller still answering"
echo "demo_exit: ok"
