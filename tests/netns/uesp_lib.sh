# tests/netns/uesp_lib.sh — the two-site scenario shared by uesp_gre.sh and
# uesp_vxlan.sh (sourced, not a test by itself).
#
#   netns A                                                netns B
#   +------------------------+                        +------------------------+
#   | uesp0 169.254.7.0/31   |                        | uesp0 169.254.7.1/31   |
#   |  (TUN for gre,         |   ESP-in-UDP 4500      |  (TUN for gre,         |
#   |   TAP for vxlan)       |   GRE or UDP/VXLAN     |   TAP for vxlan)       |
#   | meshwan-uesp           |   inside ESP           | meshwan-uesp           |
#   | va 10.99.7.1/24 ===================veth================ vb 10.99.7.2/24  |
#   +------------------------+                        +------------------------+
#
# Steps: start both ends, ping across, then one iperf3 TCP transfer
# A -> B with a make-before-break rekey of both directions in the middle:
# (1) each side adds the new inbound SA, (2) each side adds the new
# outbound SA and switches to it, (3) once traffic arrives on the new SAs,
# the old SAs are removed.  The transfer runs until the rekey is done and
# the new SAs carried a few MB more, then is stopped.  Afterwards every
# drop counter must be 0, the old SAs gone, the new ones carrying the
# traffic, and iperf3's one connection never broke.
#
# Variables: ENCAP (gre|vxlan), UESP (the meshwan-uesp binary),
# UESP_ENV (environment for it, e.g. ASAN_OPTIONS=...); or call
# uesp_use_sanitizers first, and uesp_check_sanitizers at the end.

. "$MESHWAN_TOP/tests/lib/netns.sh"

# Use the AddressSanitizer/UBSan build of meshwan-uesp (built into
# build-san/ unless the suite already runs from a sanitizer build); any
# report, leak included, fails the test in uesp_check_sanitizers or when
# the process exits non-zero.
uesp_use_sanitizers() {
	cd "$MESHWAN_TOP" || fail "no $MESHWAN_TOP"
	case "${BUILD:-build}" in
	build-san*) _san=$BUILD ;;
	*)
		_san=build-san
		make -s SANITIZE=address,undefined BUILD=$_san \
		    $_san/overlay/uesp/meshwan-uesp >/dev/null ||
			fail "could not build the sanitizer build of meshwan-uesp"
		;;
	esac
	UESP=$MESHWAN_TOP/$_san/overlay/uesp/meshwan-uesp
	SANLOG=$(mktemp -d "${TMPDIR:-/tmp}/uesp-san.XXXXXX")
	NS_CLEANUP_EXTRA='rm -rf "$SANLOG"'
	UESP_ENV="ASAN_OPTIONS=detect_leaks=1:exitcode=23:log_path=$SANLOG/asan UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=23:log_path=$SANLOG/ubsan"
}

uesp_check_sanitizers() {
	if ls "$SANLOG"/* >/dev/null 2>&1; then
		cat "$SANLOG"/*
		fail "sanitizer reports"
	fi
	echo "no sanitizer reports"
}

# The transfer the rekey must happen inside lasts until the rekey is done
# and UESP_AFTER_BYTES more arrived on B's new SA; it is stopped then, not
# after a fixed time: each rekey step is a reload and a stats dump on both
# ends, and on a 2-core machine at load 30 the three steps took 17-18 s
# (11 s at lower load; over 100 s with the test niced below two busy
# loops), so any fixed transfer length failed now and then.  A hung step
# fails on its own 10 s deadline; UESP_XFER_MAX_S only bounds the whole.
UESP_AFTER_BYTES=5000000
UESP_XFER_MAX_S=300

uesp_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# uesp_conf FILE LOCAL REMOTE INNER PEER SPI_OUT SA...   SA = dir:spi:key:salt
uesp_conf() {
	_f=$1 _local=$2 _remote=$3 _inner=$4 _peer=$5 _out=$6
	shift 6
	_vni=""
	[ "$ENCAP" = vxlan ] && _vni='"vni": 4242,'
	_sas=""
	for _s in "$@"; do
		IFS=: read -r _d _spi _k _salt <<EOS
$_s
EOS
		[ -n "$_sas" ] && _sas="$_sas,"
		_sas="$_sas
      {\"dir\": \"$_d\", \"spi\": $_spi, \"cipher\": \"aes-gcm-256\",
       \"key\": \"$_k\", \"salt\": \"$_salt\", \"esn\": true,
       \"replay_window\": 1024}"
	done
	cat >"$_f.tmp" <<EOC
{
  "workers": 2,
  "tunnels": [ {
    "id": 7, "device": "uesp0", "encap": "$ENCAP", $_vni
    "local": "$_local", "remote": "$_remote",
    "inner": "$_inner", "peer": "$_peer", "mtu": 1400,
    "spi_out": $_out,
    "sas": [ $_sas ]
  } ]
}
EOC
	mv "$_f.tmp" "$_f"
}

# uesp_dump PID FILE: ask for a stats dump and wait until it is written.
uesp_dump() {
	_prev=$(jq -r '.dumps' "$2" 2>/dev/null || echo 0)
	kill -USR1 "$1" || fail "meshwan-uesp $1 is gone"
	wait_until 10 uesp_dumped "$2" "$_prev" || fail "no stats dump in $2"
}

uesp_dumped() {
	[ "$(jq -r '.dumps' "$1" 2>/dev/null || echo 0)" -gt "$2" ]
}

# uesp_q FILE JQ: one value from a stats file.
uesp_q() {
	jq -r "$2" "$1"
}

# uesp_reload PID FILE GEN: SIGHUP, then wait until generation GEN applied.
uesp_reload() {
	kill -HUP "$1" || fail "meshwan-uesp $1 is gone"
	_d=$(( $(date +%s) + 10 ))
	while :; do
		uesp_dump "$1" "$2"
		[ "$(uesp_q "$2" .reload_errors)" = 0 ] || fail "reload refused ($2)"
		[ "$(uesp_q "$2" .generation)" -ge "$3" ] && return 0
		[ "$(date +%s)" -ge $_d ] && fail "generation $3 not reached ($2)"
		sleep 0.1
	done
}

uesp_ping() {
	ip netns exec "$1" ping -c 1 -W 1 "$2"
}

uesp_ended() {
	! kill -0 "$1" 2>/dev/null
}

uesp_listening() {
	ip netns exec "$1" ss -Hltn 'sport = :5201' | grep -q LISTEN
}

# Drops (tunnel and global) must all be zero.
uesp_no_drops() {
	_f=$1
	_bad=$(jq -r '[.global_drops, (.tunnels[].drops)] | map(to_entries[]
	    | select(.value != 0) | "\(.key)=\(.value)") | join(" ")' "$_f")
	[ -z "$_bad" ] || fail "drops in $_f: $_bad"
}

uesp_scenario() {
	ns_init
	ns_need jq iperf3 ping ss od
	[ -x "$UESP" ] || fail "$UESP not built"
	A=$(ns_name ua)
	B=$(ns_name ub)
	ns_add "$A"
	ns_add "$B"
	# IPv4-only inner link: without IPv6 the devices send nothing of their
	# own before the SAs are in, so every drop counter can be asserted 0.
	for n in "$A" "$B"; do
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		    net.ipv6.conf.default.disable_ipv6=1 || fail "sysctl"
	done
	ns_veth "$A" va "$B" vb
	ip -n "$A" addr add 10.99.7.1/24 dev va || fail "addr"
	ip -n "$B" addr add 10.99.7.2/24 dev vb || fail "addr"

	kab1=$(uesp_hex 32) sab1=$(uesp_hex 4) kab2=$(uesp_hex 32) sab2=$(uesp_hex 4)
	kba1=$(uesp_hex 32) sba1=$(uesp_hex 4) kba2=$(uesp_hex 32) sba2=$(uesp_hex 4)
	CA=$NS_TMP/a.json CB=$NS_TMP/b.json
	SA=$NS_TMP/a.stats SB=$NS_TMP/b.stats
	uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 4097 \
	    out:4097:$kab1:$sab1 in:4098:$kba1:$sba1
	uesp_conf "$CB" 10.99.7.2 10.99.7.1 169.254.7.1/31 169.254.7.0 4098 \
	    out:4098:$kba1:$sba1 in:4097:$kab1:$sab1

	"$UESP" -n "$CA" >"$NS_TMP/a.norm" || fail "-n refused $CA"
	grep -q "$kab1" "$NS_TMP/a.norm" && fail "-n printed a key"
	[ "$(jq -r '.tunnels[0].sas[0].key' "$NS_TMP/a.norm")" = "(redacted)" ] ||
		fail "-n did not redact the key"

	# Address events on A: the device must get its /31 in one RTM_NEWADDR.
	# A transient /32 replaced by the /31 (the ioctl way) made FRR's zebra
	# miss the /31 at random, so BGP on that tunnel never came up.
	ns_bg "$A" ip -o monitor address >"$NS_TMP/addr.mon"
	PM=$NS_PID
	# It listens once it reports a marker address of its own.
	_mark=0
	until grep -q 10.99.8.1 "$NS_TMP/addr.mon"; do
		[ $_mark -ge 50 ] && fail "ip monitor did not start"
		ip -n "$A" addr replace 10.99.8.1/32 dev lo || fail "addr"
		_mark=$((_mark + 1))
		sleep 0.1
	done
	ns_bg "$A" env $UESP_ENV "$UESP" -s "$SA" "$CA"
	PA=$NS_PID
	ns_bg "$B" env $UESP_ENV "$UESP" -s "$SB" "$CB"
	PB=$NS_PID
	# The first dump is written once the first apply is done (SAs in
	# place: nothing is sent while a tunnel fails closed) and signals are
	# handled; no signal may be sent before.
	wait_until 30 test -s "$SA" || fail "A did not start"
	wait_until 30 test -s "$SB" || fail "B did not start"
	[ "$(uesp_q "$SA" '.tunnels[0].spi_out')" = 4097 ] || fail "A not ready"
	[ "$(uesp_q "$SB" '.tunnels[0].spi_out')" = 4098 ] || fail "B not ready"
	wait_until 10 uesp_ping "$A" 169.254.7.1 || fail "no ping across the tunnel"
	ip netns exec "$A" ping -c 5 -i 0.2 -W 1 169.254.7.1 ||
		fail "ping lost packets"
	ns_stop "$PM"
	_ev=$(grep uesp0 "$NS_TMP/addr.mon")
	echo "address events on uesp0: $_ev"
	echo "$_ev" | grep -q 'inet 169.254.7.0/31' ||
		fail "no RTM_NEWADDR for 169.254.7.0/31 seen on uesp0"
	echo "$_ev" | grep -Eq 'Deleted|/32' &&
		fail "uesp0 was addressed in steps (a /32 or a deletion seen)"

	ns_bg "$B" iperf3 -s -1 -J -B 169.254.7.1 >"$NS_TMP/iperf_s.json"
	PI=$NS_PID
	wait_until 10 uesp_listening "$B" || fail "iperf3 server not listening"
	start=$(date +%s)
	ip netns exec "$A" iperf3 -c 169.254.7.1 -t "$UESP_XFER_MAX_S" -J \
	    >"$NS_TMP/iperf.json" &
	PC=$!
	NS_PIDS="$NS_PIDS $PC"

	# Rekey once the transfer runs (B has received a few MB).
	uesp_dump "$PB" "$SB"
	_d=$(( $(date +%s) + 10 ))
	while [ "$(uesp_q "$SB" '.tunnels[0].rx_bytes')" -lt 5000000 ]; do
		[ "$(date +%s)" -ge $_d ] && fail "transfer did not start"
		sleep 0.2
		uesp_dump "$PB" "$SB"
	done
	echo "rekey step 1: new inbound SAs"
	uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 4097 \
	    out:4097:$kab1:$sab1 in:4098:$kba1:$sba1 in:4100:$kba2:$sba2
	uesp_conf "$CB" 10.99.7.2 10.99.7.1 169.254.7.1/31 169.254.7.0 4098 \
	    out:4098:$kba1:$sba1 in:4097:$kab1:$sab1 in:4099:$kab2:$sab2
	uesp_reload "$PA" "$SA" 2
	uesp_reload "$PB" "$SB" 2
	echo "rekey step 2: senders switch"
	uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 4099 \
	    out:4097:$kab1:$sab1 out:4099:$kab2:$sab2 \
	    in:4098:$kba1:$sba1 in:4100:$kba2:$sba2
	uesp_conf "$CB" 10.99.7.2 10.99.7.1 169.254.7.1/31 169.254.7.0 4100 \
	    out:4098:$kba1:$sba1 out:4100:$kba2:$sba2 \
	    in:4097:$kab1:$sab1 in:4099:$kab2:$sab2
	uesp_reload "$PA" "$SA" 3
	uesp_reload "$PB" "$SB" 3
	# Drain: both receivers see traffic on the new SAs.
	_d=$(( $(date +%s) + 10 ))
	while :; do
		uesp_dump "$PB" "$SB"
		uesp_dump "$PA" "$SA"
		nb=$(uesp_q "$SB" '.tunnels[0].sas[] | select(.dir=="in" and .spi==4099) | .packets')
		na=$(uesp_q "$SA" '.tunnels[0].sas[] | select(.dir=="in" and .spi==4100) | .packets')
		[ "$nb" -gt 0 ] && [ "$na" -gt 0 ] && break
		[ "$(date +%s)" -ge $_d ] && fail "no traffic on the new SAs"
		sleep 0.1
	done
	echo "rekey step 3: old SAs removed"
	uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 4099 \
	    out:4099:$kab2:$sab2 in:4100:$kba2:$sba2
	uesp_conf "$CB" 10.99.7.2 10.99.7.1 169.254.7.1/31 169.254.7.0 4100 \
	    out:4100:$kba2:$sba2 in:4099:$kab2:$sab2
	uesp_reload "$PA" "$SA" 4
	uesp_reload "$PB" "$SB" 4
	echo "rekey finished $(( $(date +%s) - start ))s into the transfer"
	# The same connection goes on over the new SAs alone.
	uesp_dump "$PB" "$SB"
	_b0=$(uesp_q "$SB" '.tunnels[0].sas[] | select(.dir=="in" and .spi==4099) | .bytes')
	_d=$(( $(date +%s) + 60 ))
	while :; do
		kill -0 "$PC" 2>/dev/null ||
			fail "iperf3 ended before the rekey was over: $(cat "$NS_TMP/iperf.json")"
		_b=$(uesp_q "$SB" '.tunnels[0].sas[] | select(.dir=="in" and .spi==4099) | .bytes')
		[ "$_b" -ge $((_b0 + UESP_AFTER_BYTES)) ] && break
		[ "$(date +%s)" -ge $_d ] &&
			fail "the transfer stalled once the old SAs were removed"
		sleep 0.2
		uesp_dump "$PB" "$SB"
	done
	# Stopped by us: its only error may be our interrupt (a reset or a
	# timeout would show here instead; none at all if it ended on its own
	# just now), and the server saw the end.
	kill -INT "$PC"
	wait "$PC"
	case "$(jq -r '.error // "none"' "$NS_TMP/iperf.json")" in
	none | "interrupt - the client has terminated") ;;
	*) fail "iperf3 client failed: $(cat "$NS_TMP/iperf.json")" ;;
	esac
	wait_until 10 uesp_ended "$PI" || fail "iperf3 server did not end"
	bps=$(jq -r '.end.sum_received.bits_per_second' "$NS_TMP/iperf_s.json")
	retr=$(jq -r '.end.sum_sent.retransmits' "$NS_TMP/iperf.json")
	[ "$bps" != null ] || fail "iperf3 gave no result: $(cat "$NS_TMP/iperf_s.json")"
	echo "iperf3 $ENCAP over uesp: $(echo "$bps" | awk '{printf "%.2f", $1/1e9}') Gbit/s, $retr retransmits"

	uesp_dump "$PA" "$SA"
	uesp_dump "$PB" "$SB"
	echo "--- stats A"; cat "$SA"; echo "--- stats B"; cat "$SB"
	uesp_no_drops "$SA"
	uesp_no_drops "$SB"
	for f in "$SA" "$SB"; do
		[ "$(uesp_q "$f" '.tunnels[0].sas | length')" = 2 ] ||
			fail "$f: old SAs still there"
		[ "$(uesp_q "$f" '.tunnels[0].encap')" = "$ENCAP" ] || fail "$f: encap"
		[ "$(uesp_q "$f" '.tunnels[0].tx_packets')" -gt 1000 ] ||
			fail "$f: too few packets sent"
		[ "$(uesp_q "$f" '[.tunnels[0].sas[] | select(.dir=="out")][0].active')" = true ] ||
			fail "$f: the new outbound SA is not active"
	done
	[ "$(uesp_q "$SA" '.tunnels[0].spi_out')" = 4099 ] || fail "A spi_out"
	[ "$(uesp_q "$SB" '.tunnels[0].spi_out')" = 4100 ] || fail "B spi_out"
	[ "$(uesp_q "$SB" '.tunnels[0].rx_bytes')" -gt 10000000 ] || fail "B rx_bytes"

	ns_stop "$PA" || fail "meshwan-uesp A did not exit cleanly"
	ns_stop "$PB" || fail "meshwan-uesp B did not exit cleanly"
	echo "PASS uesp $ENCAP"
}
