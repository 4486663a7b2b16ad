# tests/lab/lib.sh — helpers for the lab scenarios (sourced inside the VM,
# after tests/lib/netns.sh).  The scenarios configure the kernel's XFRM by
# hand with iproute2, the way the design's wire format says:
# transport-mode ESP, rfc4106(gcm(aes)) with a 256-bit key, ESN with a
# 1024-packet replay window, ESP-in-UDP on port 4500.

[ -n "${LAB_GUEST:-}" ] || fail "a lab scenario runs inside the VM: tests/lab/run $0"
UDP_ENCAP=$MESHWAN_TOP/${BUILD:-build}/tests/lab/udp_encap
case "${BUILD:-build}" in /*) UDP_ENCAP=$BUILD/tests/lab/udp_encap ;; esac

lab_t0=$(date +%s)
lab_step() {
	echo "== [$(( $(date +%s) - lab_t0 ))s] $*"
}

lab_hex() {
	od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}

# lab_sa NS SRC DST SPI KEYHEX SALTHEX: one transport-mode ESP SA.
lab_sa() {
	ip -n "$1" xfrm state add src "$2" dst "$3" proto esp spi "$4" \
	    reqid "$4" mode transport replay-window 1024 flag esn \
	    aead 'rfc4106(gcm(aes))' "0x$5$6" 128 \
	    encap espinudp 4500 4500 0.0.0.0 ||
		fail "$1: xfrm state add spi $4"
}

# lab_policies NS LOCAL REMOTE SPI_OUT SPI_IN SELECTOR...: the in and out
# policies for the tunnel's traffic (SELECTOR: proto gre | proto udp dport
# 4789, the in policy mirrors it), plus the lower-priority out block
# policy that keeps the tunnel closed when its main policy goes.  The
# kernel keys a policy by selector and direction, not priority (a second
# policy with the same selector is EEXIST), so the block policy has a
# wider selector: the same traffic to the peer from any source.
lab_policies() {
	_ns=$1 _l=$2 _r=$3 _so=$4 _si=$5
	shift 5
	ip -n "$_ns" xfrm policy add src "$_l/32" dst "$_r/32" "$@" dir out \
	    priority 100 tmpl src "$_l" dst "$_r" proto esp reqid "$_so" \
	    mode transport || fail "$_ns: out policy"
	ip -n "$_ns" xfrm policy add src "$_r/32" dst "$_l/32" "$@" dir in \
	    priority 100 tmpl src "$_r" dst "$_l" proto esp reqid "$_si" \
	    mode transport || fail "$_ns: in policy"
	ip -n "$_ns" xfrm policy add src 0.0.0.0/0 dst "$_r/32" "$@" dir out \
	    priority 200 action block || fail "$_ns: block policy"
}

# lab_encap_socket NS ADDR: hold the UDP_ENCAP_ESPINUDP socket on 4500.
lab_encap_socket() {
	[ -x "$UDP_ENCAP" ] || fail "$UDP_ENCAP not built"
	ns_bg "$1" sh -c "exec $UDP_ENCAP -a $2 4500 >$NS_TMP/encap-$1"
	wait_until 10 grep -q ready "$NS_TMP/encap-$1" || fail "$1: no encap socket"
}

# lab_sa_field NS SPI FIELD: packets|bytes of the SA's current lifetime,
# or replay|failed|replay-window from its stats line (ip -s xfrm state).
lab_sa_field() {
	ip -s -n "$1" xfrm state list spi "$2" | awk -v f="$3" '
	    /lifetime current:/ { cur = 1; next }
	    cur && /\(bytes\)/ {
		gsub(/[(),]/, " "); if (f == "bytes") print $1; if (f == "packets") print $3; cur = 0 }
	    /^[ \t]*stats:/ { st = 1; next }
	    st && /replay-window/ {
		for (i = 1; i < NF; i++) if ($i == f) print $(i + 1); st = 0 }'
}

# lab_xfrm_stat NS: the non-zero lines of /proc/net/xfrm_stat in NS.
lab_xfrm_stat() {
	ip netns exec "$1" cat /proc/net/xfrm_stat | awk '$2 != 0'
}

lab_xfrm_stat_value() {
	ip netns exec "$1" cat /proc/net/xfrm_stat | awk -v k="$2" '$1 == k { print $2 }'
}

# One capture of the underlay for a whole scenario, cut into phases by
# marker pings on the underlay itself (ICMP, which no policy covers):
#   lab_capture_start NS IF          dumpcap on NS/IF into $LAB_CAP
#   lab_capture_mark NS DST N        phase N starts here (N = 1..99)
#   lab_capture_stop NS DST          last marker; stop once it is written
#   lab_capture_phases               one line per frame: PHASE SRC PROTOCOLS
# A marker is an echo request of 1000 + N data bytes.  dumpcap hands
# packets to its file in capture order about every half second, so once
# the file has grown twice after the last marker was sent, everything
# before the marker is in it; lab_capture_phases checks that the last
# marker is there (otherwise the capture would be blind to a late leak).
lab_capture_start() {
	ns_need dumpcap tshark
	LAB_CAP=$NS_TMP/underlay.pcapng
	ns_bg "$1" dumpcap -q -i "$2" -w "$LAB_CAP"
	LAB_CAP_PID=$NS_PID
	# dumpcap writes the file header once its socket is capturing.
	wait_until 30 test -s "$LAB_CAP" || fail "dumpcap did not start on $1/$2"
}

lab_capture_mark() {
	ip netns exec "$1" ping -c 1 -W 1 -s $((1000 + $3)) "$2" >/dev/null ||
		fail "underlay marker $3 lost"
}

lab_capture_grew() {
	ip netns exec "$1" ping -c 1 -W 1 -s 1100 "$2" >/dev/null
	[ "$(stat -c %s "$LAB_CAP")" -gt "$3" ]
}

lab_capture_stop() {
	lab_capture_mark "$1" "$2" 100
	for _i in 1 2; do
		_s=$(stat -c %s "$LAB_CAP")
		wait_until 10 lab_capture_grew "$1" "$2" "$_s" ||
			fail "the capture file stopped growing"
	done
	ns_stop "$LAB_CAP_PID" >/dev/null
}

lab_capture_phases() {
	tshark -n -r "$LAB_CAP" -T fields -E separator=, -E occurrence=f -e frame.len \
	    -e icmp.type -e ip.src -e frame.protocols 2>/dev/null >"$LAB_CAP.txt" ||
		fail "tshark cannot read $LAB_CAP"
	awk -F, '
	    $2 == 8 && $1 > 1042 && $1 <= 1142 { phase = $1 - 1042; next }
	    { print phase + 0, ($3 == "" ? "-" : $3), $4 }
	    END { if (phase != 100) exit 1 }' "$LAB_CAP.txt" >"$LAB_CAP.phases" ||
		fail "the capture misses its last marker"
	cat "$LAB_CAP.phases"
}

# lab_capture_count PHASE SRC|- REGEX: frames of PHASE (from SRC) whose
# protocol stack matches REGEX (from lab_capture_phases' output).
lab_capture_count() {
	awk -v p="$1" -v s="$2" -v re="$3" '
	    $1 == p && (s == "-" || $2 == s) && $3 ~ re { n++ }
	    END { print n + 0 }' "$LAB_CAP.phases"
}
