#!/bin/sh
# demo_updown.sh — `make demo` and `make demo-down` as a user runs them
# (tests/demo.sh; the lab is tests/edge/sites_lib.sh): `up` brings the
# three sites up, prints the status table, one `lan SITE NETNS ADDRESS`
# line per LAN host, the API URL and the admin token, and returns with
# everything running (a LAN host pings another afterwards); `up` again
# replaces the running demo; `down` removes every namespace, process and
# file it made.  Names, port and folder are this run's own.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq
# A REST port below the kernel's ephemeral range (32768 and up), where
# another process's outgoing connection can hold one.
port=$(( 20000 + ($$ % 4000) * 3 ))
P="mdx$$"
# FRR runs as frr: it must reach the demo folder inside ours.
chmod 711 "$T"
export DEMO_PORT=$port DEMO_DIR="$T/demo" DEMO_PREFIX=$P DEMO_TIMEOUT=90
down() { sh "$MESHWAN_TOP/tests/demo.sh" down >/dev/null 2>&1; }
trap 'down; cleanup' EXIT
trap 'exit 130' INT TERM

leftovers() {
	ip netns list | grep "^$P-" && return 0
	ip link show "${P}c" >/dev/null 2>&1 && { echo "root veth ${P}c"; return 0; }
	ps -eo pid,args | grep -v grep | grep "$T/demo" && return 0
	[ -e "$T/demo" ] && { echo "$T/demo"; return 0; }
	return 1
}

for run in 1 2; do
	sh "$MESHWAN_TOP/tests/demo.sh" up >"$T/demo$run.out" 2>&1 ||
		{ cat "$T/demo$run.out"; fail "demo up (run $run) exited non-zero"; }
	out="$T/demo$run.out"
	grep -q "REST API *http://127.0.0.1:$port/api/v1/" "$out" || fail "no API URL printed: $(cat "$out")"
	grep -q "admin token *mwa_" "$out" || fail "no admin token printed"
	for s in a b c; do
		grep -q "^lan site-$s $P-lan-$s 10\.[0-9]*\.0\.10$" "$out" || fail "no lan line for site-$s: $(cat "$out")"
	done
	grep -q "^site-a .* true  *true .* 4/4 " "$out" || fail "status table: site-a not converged with 4 BGP sessions: $(cat "$out")"
	[ "$(grep -c '^[0-9]  *site-' "$out")" = 5 ] || fail "status table: expected 5 tunnels: $(cat "$out")"
	grep -q "every pair of LAN hosts pings: [0-9.]* s" "$out" || fail "no time printed"
	grep "every pair of LAN hosts pings" "$out"
	[ "$run" = 2 ] && { grep -q "removing the previous demo" "$out" || fail "run 2 did not replace run 1"; }
	# Still running after the script returned.
	addr=$(sed -n "s/^lan site-c $P-lan-c //p" "$out")
	ip netns exec "$P-lan-a" ping -c 1 -W 2 "$addr" >/dev/null || fail "lan a cannot ping lan c after demo returned"
	curl -s -m 2 "http://127.0.0.1:$port/healthz" | jq -e '.status == "ok"' >/dev/null || fail "controller not answering"
done
sh "$MESHWAN_TOP/tests/demo.sh" down || fail "demo down"
l=$(leftovers) && fail "left behind after demo down: $l"
curl -s -m 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && fail "demo controller still answering"
sh "$MESHWAN_TOP/tests/demo.sh" down | grep -q "nothing to remove" || fail "a second down is not a no-op"
echo "demo_updown: ok"
