#!/bin/sh
# hostile_bench.sh — what each attack of one enrolled edge costs the
# controller: its peak RSS during the attack and the hello→snapshot time
# of a well-behaved edge (g) probing every 200 ms meanwhile (a stalled
# event loop shows there).  Not part of `make test`; run
#   MESHWAN_TOP=$PWD sh tests/bench/hostile_bench.sh
# (CTLD=... measures another controller build with the same client.)
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
write_config </dev/null
. "$MESHWAN_TOP/tests/ctl/hostile_lib.sh"

# attack LABEL MODE [N [M]] — one attack with the probe alongside.
attack() {
	_label=$1; shift
	sleep 1
	peak_reset
	_r0=$(rss_kib)
	hostile g "$g" probe 12 >"$T/probe.out" 2>/dev/null &
	_pp=$!
	sleep 1
	_t0=$(date +%s.%N)
	hostile h "$h" "$@" >"$T/attack.out" 2>&1
	_t1=$(date +%s.%N)
	wait $_pp
	printf '%-12s rss %6d -> peak %7d KiB (+%d)  %s  [%s] %.1fs\n' "$_label" "$_r0" \
		"$(peak_kib)" $(( $(peak_kib) - _r0 )) "$(cat "$T/probe.out")" \
		"$(tr '\n' ' ' <"$T/attack.out" | cut -c1-90)" "$(awk "BEGIN { print $_t1 - $_t0 }")"
}

attack idle       probe 1
attack stall      stall 6 500
attack nohello    nohello 200
attack bigstatus  bigstatus 13312
attack ackflood   ackflood 2000
attack hashflood  hashflood 2000
attack keyflood   keyflood 200
attack statusfl   statusflood 2000
echo "final rss $(rss_kib) KiB"
stop_controller
