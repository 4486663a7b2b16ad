# tests/bench/peers/common.sh — namespaces, measurement and the report for
# tests/bench/uesp_peers.sh (sourced; uses its variables).

# Both namespaces and the veth between them.
ns_setup() {
	ip netns add "$NSA" && ip netns add "$NSB" || exit 1
	ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" ||
		exit 1
	ip -n "$NSA" addr add "$UA/24" dev "$VA"
	ip -n "$NSB" addr add "$UB/24" dev "$VB"
	for ns in "$NSA" "$NSB"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NSA" link set "$VA" up
	ip -n "$NSB" link set "$VB" up
	wait_for 5 "veth up" ip netns exec "$NSA" ping -c1 -W1 "$UB" ||
		exit 1
}

# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds or time is up.
wait_for() {
	_deadline=$(( $(date +%s) + $1 ))
	_what=$2
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		if [ "$(date +%s)" -ge "$_deadline" ]; then
			echo "bench: timed out waiting for $_what" >&2
			return 1
		fi
		sleep 0.1
	done
}

# Record a daemon to stop after its measurement.
peer_pid() {
	PEER_PIDS="$PEER_PIDS $1"
}

peers_stop() {
	for _p in $PEER_PIDS; do
		kill "$_p" 2>/dev/null
	done
	for _p in $PEER_PIDS; do
		_n=0
		while kill -0 "$_p" 2>/dev/null && [ $_n -lt 50 ]; do
			sleep 0.1
			_n=$((_n + 1))
		done
		kill -9 "$_p" 2>/dev/null
	done
	PEER_PIDS=""
}

# CPU ticks (utime + stime) of the given pids, summed.
proc_ticks() {
	_t=0
	for _p in "$@"; do
		[ -r "/proc/$_p/stat" ] || continue
		# Fields after the ")" of the command name: utime is 14, stime 15.
		_v=$(sed 's/^.*) //' "/proc/$_p/stat" | awk '{print $12 + $13}')
		_t=$((_t + _v))
	done
	echo "$_t"
}

# Busy ticks of the whole machine (all but idle and iowait).
sys_ticks() {
	awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# measure NAME DST SRC: iperf3 from ns A (bound to SRC) to DST in ns B.
measure() {
	_name=$1
	_dst=$2
	_src=$3
	_json=$WORK/$_name.json
	ip netns exec "$NSB" iperf3 -s -1 -B "$_dst" -p 5201 \
		>"$WORK/$_name.server" 2>&1 &
	_srv=$!
	if ! wait_for 5 "iperf3 server" sh -c \
	    "ip netns exec $NSB ss -Hltn 'sport = :5201' | grep -q LISTEN"; then
		kill "$_srv" 2>/dev/null
		return 1
	fi
	_p0=$(proc_ticks $PEER_PIDS)
	_s0=$(sys_ticks)
	ip netns exec "$NSA" iperf3 -c "$_dst" -B "$_src" -p 5201 -t "$SECS" \
		-J >"$_json" 2>&1
	_rc=$?
	_p1=$(proc_ticks $PEER_PIDS)
	_s1=$(sys_ticks)
	wait "$_srv" 2>/dev/null
	if [ $_rc -ne 0 ] || ! jq -e '.end.sum_received.bits_per_second' \
	    "$_json" >/dev/null 2>&1; then
		echo "bench: $_name: iperf3 failed:"
		jq -r '.error // empty' "$_json" 2>/dev/null || tail -5 "$_json"
		return 1
	fi
	jq -r --arg n "$_name" --argjson pt $((_p1 - _p0)) \
	    --argjson st $((_s1 - _s0)) --argjson hz "$HZ" '
	    .end as $e
	    | ($e.sum_received.bits_per_second / 1e9) as $g
	    | ($e.sum_received.seconds) as $s
	    | (($e.cpu_utilization_percent.host_total
	        + $e.cpu_utilization_percent.remote_total) / 100 * $s) as $ip
	    | ($pt / $hz + $ip) as $pc
	    | ($st / $hz) as $sc
	    | "\($n) \($g) \(if $g > 0 then $pc / ($g * $s) else 0 end) \(if $g > 0 then $sc / ($g * $s) else 0 end) \($e.sum_sent.retransmits // 0)"' \
	    "$_json" >>"$RESULTS"
	tail -n 1 "$RESULTS" | awk '{printf "bench: %-10s %6.2f Gbit/s  cpu %.2f s/Gbit (processes), %.2f s/Gbit (machine), %d retransmits\n", $1, $2, $3, $4, $5}'
}

# The single-core AES-256-GCM ceiling at 1400-byte packets.
openssl_ceiling() {
	_out=$WORK/openssl.out
	if ! openssl speed -evp aes-256-gcm -bytes 1400 -seconds 3 \
	    >"$_out" 2>&1; then
		echo "bench: openssl speed failed"
		tail -5 "$_out"
		return 1
	fi
	# Last line: "AES-256-GCM   123456.78k" (thousands of bytes/s).
	_k=$(awk 'END {v = $NF; sub(/k$/, "", v); print v}' "$_out")
	echo "openssl $(awk -v k="$_k" 'BEGIN {print k * 1000 * 8 / 1e9}') 0 0 0" \
		>>"$RESULTS"
	tail -n 1 "$RESULTS" | awk '{printf "bench: %-10s %6.2f Gbit/s  (AES-256-GCM, one core, 1400-byte buffers)\n", $1, $2}'
}

report() {
	echo
	echo "== single-stream TCP, ${SECS}s each, $(nproc) cores shared by both ends and iperf3 =="
	awk '
	{ g[$1] = $2; pc[$1] = $3; sc[$1] = $4; order[n++] = $1 }
	END {
		best = 0; bn = "";
		for (i = 0; i < n; i++) {
			k = order[i];
			if ((k == "tinc" || k == "nebula" || k == "strongswan") && g[k] > best) {
				best = g[k]; bn = k
			}
		}
		printf "%-11s %9s %14s %14s %9s %9s\n", "path", "Gbit/s", "cpu-s/Gbit", "machine-s/Gbit", "vs best", "vs veth";
		for (i = 0; i < n; i++) {
			k = order[i];
			vb = best > 0 ? sprintf("%.2fx", g[k] / best) : "-";
			vv = ("veth" in g) && g["veth"] > 0 ? sprintf("%.2fx", g[k] / g["veth"]) : "-";
			if (k == "openssl")
				printf "%-11s %9.2f %14s %14s %9s %9s\n", k, g[k], "-", "-", vb, vv;
			else
				printf "%-11s %9.2f %14.2f %14.2f %9s %9s\n", k, g[k], pc[k], sc[k], vb, vv;
		}
		if (bn != "")
			printf "best of the three peers: %s (%.2f Gbit/s)\n", bn, best;
	}' "$RESULTS"
}
