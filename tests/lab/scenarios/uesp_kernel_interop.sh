#!/bin/sh
# uesp_kernel_interop.sh — (lab) the userspace ESP tool and Debian's
# kernel put the same bytes on the wire: meshwan-uesp in one namespace,
# the kernel's XFRM (configured with iproute2) and its own GRE or VXLAN
# device in the other, same keys and SPIs, ESP-in-UDP on 4500.
#
#   netns A (uesp)                               netns B (kernel)
#   uesp0 169.254.7.0/31 (TUN gre / TAP vxlan)   gre1 | vx1 169.254.7.1/31
#   meshwan-uesp on 10.99.7.1:4500               udp_encap + XFRM on 10.99.7.2
#   va 10.99.7.1/24 ==========veth============ vb 10.99.7.2/24
#
# For GRE, then VXLAN (VNI 4242, policies on udp dport 4789): ping both
# ways, an iperf3 TCP flow of 1.5 MB each way, and afterwards zero drops on both
# sides: every uesp drop counter, the kernel SAs' replay and integrity
# failures, and every /proc/net/xfrm_stat counter in B.
#
# B's devices are set up the way the kernel backend (overlay/xfrm/xfrm.c,
# xfrm_dev_add) makes them: GRE with the default pmtudisc and ttl 64,
# VXLAN with noudpcsum and ttl 64.  Byte-level comparison: a capture of
# pings and a short TCP transfer each way, decrypted by tshark with the
# test's keys; every ESP datagram of each side must carry the same
# headers where the RFCs leave a choice -- outer DF and TTL, outer UDP
# checksum zero (RFC 3948), ESP next header, GRE flags and protocol, or the
# VXLAN packet's UDP port and zero checksum (RFC 7348), VXLAN flags and
# VNI -- one set of values per side, equal across the sides, whether uesp
# sent a datagram alone or in a UDP_SEGMENT batch.
set -u
UESP=$MESHWAN_TOP/${BUILD:-build}/overlay/uesp/meshwan-uesp
case "${BUILD:-build}" in /*) UESP=$BUILD/overlay/uesp/meshwan-uesp ;; esac
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"
. "$MESHWAN_TOP/tests/lab/lib.sh"
. "$MESHWAN_TOP/tests/lab/wire_lib.sh"

ns_init
ns_need ip ping jq iperf3 ss od awk
[ -x "$UESP" ] || fail "$UESP not built"

# Ready (stats file written) or gone: no waiting on a dead process.
uesp_started() {
	kill -0 "$1" 2>/dev/null || fail "meshwan-uesp exited"
	test -s "$2"
}

# interop ENCAP SPI_AB: one pair of namespaces, one encapsulation; SPIs
# SPI_AB (A -> B) and SPI_AB + 1, distinct per encapsulation so that one
# tshark table decrypts both captures (tests/lab/wire_lib.sh).
interop() {
	ENCAP=$1 SAB=$2 SBA=$(($2 + 1))
	A=$(ns_name "u$ENCAP")
	B=$(ns_name "k$ENCAP")
	ns_add "$A"
	ns_add "$B"
	for n in "$A" "$B"; do
		ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		    net.ipv6.conf.default.disable_ipv6=1 || fail "sysctl"
	done
	ns_veth "$A" va "$B" vb
	ip -n "$A" addr add 10.99.7.1/24 dev va || fail "addr"
	ip -n "$B" addr add 10.99.7.2/24 dev vb || fail "addr"

	lab_step "$ENCAP: kernel side (XFRM, device) in B"
	kab=$(lab_hex 32) sab=$(lab_hex 4) kba=$(lab_hex 32) sba=$(lab_hex 4)
	lab_sa "$B" 10.99.7.1 10.99.7.2 "$SAB" "$kab" "$sab"
	lab_sa "$B" 10.99.7.2 10.99.7.1 "$SBA" "$kba" "$sba"
	wire_sa "$NS_TMP" "$SAB" 10.99.7.1 10.99.7.2 "$kab$sab"
	wire_sa "$NS_TMP" "$SBA" 10.99.7.2 10.99.7.1 "$kba$sba"
	SPIMAP="${SPIMAP:-} $SAB:$ENCAP $SBA:$ENCAP"
	if [ "$ENCAP" = gre ]; then
		dev=gre1
		ip -n "$B" link add gre1 type gre local 10.99.7.2 remote 10.99.7.1 \
		    ttl 64 || fail "gre"
		lab_policies "$B" 10.99.7.2 10.99.7.1 "$SBA" "$SAB" proto gre
	else
		dev=vx1
		ip -n "$B" link add vx1 type vxlan id 4242 local 10.99.7.2 \
		    remote 10.99.7.1 dstport 4789 dev vb ttl 64 noudpcsum ||
			fail "vxlan"
		lab_policies "$B" 10.99.7.2 10.99.7.1 "$SBA" "$SAB" proto udp dport 4789
	fi
	ip -n "$B" link set "$dev" mtu 1400 up || fail "$dev up"
	ip -n "$B" addr add 169.254.7.1/31 dev "$dev" || fail "addr"
	lab_encap_socket "$B" 10.99.7.2

	lab_step "$ENCAP: meshwan-uesp in A"
	CA=$NS_TMP/a-$ENCAP.json SA=$NS_TMP/a-$ENCAP.stats
	uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 "$SAB" \
	    out:$SAB:$kab:$sab in:$SBA:$kba:$sba
	ns_bg "$A" "$UESP" -s "$SA" "$CA"
	PA=$NS_PID
	wait_until 60 uesp_started "$PA" "$SA" || fail "meshwan-uesp did not start"

	lab_step "$ENCAP: ping both ways (captured on B's side)"
	lab_capture_start "$B" vb
	wait_until 20 ip netns exec "$A" ping -c 1 -W 1 169.254.7.1 >/dev/null ||
		fail "$ENCAP: no ping uesp -> kernel"
	ip netns exec "$A" ping -c 5 -i 0.2 -W 1 169.254.7.1 || fail "ping A -> B lost packets"
	ip netns exec "$B" ping -c 5 -i 0.2 -W 1 169.254.7.0 || fail "ping B -> A lost packets"

	ns_bg "$B" sh -c "exec iperf3 -s -B 169.254.7.1 >$NS_TMP/iperf-server-$ENCAP.log 2>&1"
	wait_until 20 uesp_listening "$B" || fail "iperf3 server not listening"

	lab_step "$ENCAP: 64 KB each way over TCP, captured too"
	for dir in "" -R; do
		ip netns exec "$A" iperf3 -c 169.254.7.1 -n 64K $dir >/dev/null ||
			fail "short iperf3 $dir"
	done
	lab_capture_stop "$B" 10.99.7.1
	mv "$LAB_CAP" "$NS_TMP/cap-$ENCAP.pcapng" || fail "capture file"

	lab_step "$ENCAP: iperf3 uesp -> kernel, then kernel -> uesp"
	for dir in "" -R; do
		ip netns exec "$A" iperf3 -c 169.254.7.1 -n 1500K $dir -J \
		    >"$NS_TMP/iperf$dir.json" || fail "iperf3 $dir: $(cat "$NS_TMP/iperf$dir.json")"
		bps=$(jq -r '.end.sum_received.bits_per_second' "$NS_TMP/iperf$dir.json")
		bytes=$(jq -r '.end.sum_received.bytes' "$NS_TMP/iperf$dir.json")
		echo "iperf3 $ENCAP ${dir:-(A->B)}: $(echo "$bps" | awk '{printf "%.1f", $1/1e6}') Mbit/s, $bytes bytes"
		[ "${bytes:-0}" -gt 1000000 ] || fail "iperf3 $dir moved too little"
	done

	lab_step "$ENCAP: no drops on either side"
	uesp_dump "$PA" "$SA"
	cat "$SA"
	uesp_no_drops "$SA"
	[ "$(uesp_q "$SA" '.tunnels[0].rx_packets')" -gt 1000 ] || fail "uesp received too little"
	[ "$(uesp_q "$SA" '.tunnels[0].tx_packets')" -gt 1000 ] || fail "uesp sent too little"
	ip -s -n "$B" xfrm state | grep -v '^	aead'   # no keys in logs
	for spi in $SAB $SBA; do
		p=$(lab_sa_field "$B" $spi packets)
		[ "${p:-0}" -gt 1000 ] || fail "kernel SA $spi counted ${p:-nothing}"
		for f in replay failed; do
			[ "$(lab_sa_field "$B" $spi $f)" = 0 ] ||
				fail "kernel SA $spi: $f $(lab_sa_field "$B" $spi $f)"
		done
	done
	st=$(lab_xfrm_stat "$B")
	[ -z "$st" ] || fail "kernel xfrm_stat: $st"
	ns_stop "$PA" || fail "meshwan-uesp did not exit cleanly"
	lab_step "$ENCAP: PASS"
}

SPI_GRE=4097
interop gre $SPI_GRE
interop vxlan 4099
lab_step "same headers from both sides (decrypt both captures, compare)"
wire_decrypt "$NS_TMP" 10.99.7.1 "$SPIMAP" "$NS_TMP"/cap-*.pcapng || fail "tshark"
wire_compare "$NS_TMP" gre 20 || fail "GRE headers (see above)"
wire_compare "$NS_TMP" vxlan 20 || fail "VXLAN headers (see above)"
lab_step "PASS uesp/kernel interop, GRE and VXLAN, same bytes"
