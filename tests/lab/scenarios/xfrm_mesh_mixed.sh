#!/bin/sh
# xfrm_mesh_mixed.sh — (lab) a mixed VXLAN mesh: sites a and b with the
# kernel backend (xfrm), site c with the userspace one (uesp); controller,
# meshwan-edge and FRR per site in namespaces inside the VM
# (tests/lab/mesh_lib.sh over tests/edge/sites_lib.sh).
#
# Proves:
#  1. every LAN host pings every other, each FRR holds the other LANs by
#     BGP through a tunnel device, and every SPI each xfrm agent reports
#     (status --json) is in `ip -s xfrm state`;
#  2. the two backends put the same bytes on the wire: pings and a short
#     TCP transfer each way between c's LAN and a's, captured on a's
#     underlay and decrypted by tshark with the SAs' keys (read from a's
#     kernel): every datagram uesp sent and every one the kernel sent
#     carry the same outer DF and TTL (as sent: c's cross the underlay
#     router first), outer UDP checksum 0, ESP next
#     header, VXLAN UDP port and checksum, flags and VNI
#     (tests/lab/wire_lib.sh, as uesp_kernel_interop does with a
#     hand-made kernel peer);
#  3. an iperf3 TCP flow (1.5 MB) each way between c's LAN and a's and b's, pings
#     after, and zero authentication or replay drops on either side:
#     c's uesp drop counters (auth, replay), the kernel SAs' replay and
#     integrity-failure counters, and /proc/net/xfrm_stat's
#     XfrmInStateProtoError / XfrmInStateSeqError / XfrmInStateInvalid.
set -u
BUILD=${BUILD:-build}
# sites_lib.sh takes BUILD relative to the tree.
BUILD=${BUILD#"$MESHWAN_TOP"/}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/lab/mesh_lib.sh"
. "$MESHWAN_TOP/tests/lab/wire_lib.sh"
LAB_BACKEND=xfrm
LAB_BACKEND_c=uesp
LAB_SLOW=4
mesh_init mixed
for t in iperf3 dumpcap tshark mergecap ping; do
	command -v "$t" >/dev/null || lab_fail "missing tool: $t"
done
A=$(mesh_ns a)
AADDR=198.18.1.2
CADDR=198.18.3.2

mesh_step "1. sites a, b (xfrm) and c (uesp), VXLAN"
mesh_up vxlan
mesh_check 60
for s in a b; do
	ip -n "$(mesh_ns $s)" -o link show type vxlan | grep -q ': mw' ||
		lab_fail "site $s has no VXLAN device"
	echo "site $s holds: $(mesh_counts $s)"
done

mesh_step "2. same bytes from both backends (a's underlay, decrypted)"
cap=$LAB_DIR/wire-ac.pcapng
lab_bg dumpcap "$A" dumpcap -q -i inet -w "$cap" \
    -f "(udp port 4500 and host $CADDR) or (icmp and host $CADDR)"
cappid=$LAB_PID
mesh_poll 30 test -s "$cap" || lab_fail "dumpcap did not start"
ip netns exec "$LAB_P-lan-c" ping -c 10 -i 0.2 -W 2 -q "$(lab_lan_addr a)" ||
	lab_fail "ping c -> a lost packets"
ip netns exec "$LAB_P-lan-a" ping -c 10 -i 0.2 -W 2 -q "$(lab_lan_addr c)" ||
	lab_fail "ping a -> c lost packets"
lab_bg "iperf-a" "$LAB_P-lan-a" iperf3 -s -p 5201
mesh_poll 20 ip netns exec "$LAB_P-lan-a" sh -c 'ss -ltn | grep -q :5201' ||
	lab_fail "iperf3 server of a"
for dir in "" -R; do
	ip netns exec "$LAB_P-lan-c" iperf3 -c "$(lab_lan_addr a)" -n 64K $dir \
	    >"$LAB_DIR/iperf-short$dir.txt" 2>&1 ||
		lab_fail "short iperf3 c-a $dir: $(tail -n 5 "$LAB_DIR/iperf-short$dir.txt")"
done
# The end marker on the underlay; stop once it is in the file (dumpcap
# writes about every half second).
ip netns exec "$A" ping -c 3 -i 0.5 -s 1111 -q "$CADDR" >/dev/null || lab_fail "underlay marker"
mark_in() {
	tshark -n -r "$cap" -Y 'icmp.type == 8 && frame.len == 1153' 2>/dev/null | grep -q .
}
mesh_poll 30 mark_in || lab_fail "the capture misses its end marker"
lab_stop_pid "$cappid"
# The keys of both directions are in a's kernel (its SAs with c).
wd=$LAB_DIR/wire
mkdir -p "$wd"
spimap=""
for dir in "$AADDR $CADDR" "$CADDR $AADDR"; do
	set -- $dir
	sa=$(ip -n "$A" xfrm state list src "$1" dst "$2" proto esp)
	# Every SA of that direction (an old one may still carry packets).
	echo "$sa" | awk '/proto esp spi/ { spi = $4 } /aead rfc4106/ { print spi, $3 }' >"$wd/sas"
	[ -s "$wd/sas" ] || lab_fail "no SA $1 -> $2 on a"
	while read -r spi key; do
		wire_sa "$wd" $((spi)) "$1" "$2" "${key#0x}"
		spimap="$spimap $((spi)):vxlan"
	done <"$wd/sas"
done
rm -f "$wd/sas"
# c's datagrams crossed the underlay router (P-inet) before a's interface:
# their TTL there is one less than sent.
WIRE_UESP_HOPS=1 wire_decrypt "$wd" "$CADDR" "$spimap" "$cap" || lab_fail "tshark"
wire_compare "$wd" vxlan 20 || lab_fail "header comparison (see above)"
echo "the same header values from uesp and the kernel"

mesh_step "3. iperf3 between c (uesp) and a, b (xfrm), both ways"
lab_bg "iperf-b" "$LAB_P-lan-b" iperf3 -s -p 5201
mesh_poll 20 ip netns exec "$LAB_P-lan-b" sh -c 'ss -ltn | grep -q :5201' ||
	lab_fail "iperf3 server of b"
for s in a b; do
	for dir in "" -R; do
		# 1.5 MB (1536000 bytes) sent and acknowledged: iperf3 exits 0
		# only then.  The receiver's total stops when the sender ends,
		# so it counts less (979032 in one run at load): checked > 0.
		ip netns exec "$LAB_P-lan-c" iperf3 -c "$(lab_lan_addr "$s")" -n 1500K $dir -J \
		    >"$LAB_DIR/iperf.$s$dir.json" 2>&1 ||
			lab_fail "iperf3 c<->$s $dir: $(tail -n 5 "$LAB_DIR/iperf.$s$dir.json")"
		sent=$(jq -r '.end.sum_sent.bytes' "$LAB_DIR/iperf.$s$dir.json")
		got=$(jq -r '.end.sum_received.bytes' "$LAB_DIR/iperf.$s$dir.json")
		[ "${sent:-0}" -ge 1536000 ] && [ "${got:-0}" -gt 0 ] ||
			lab_fail "iperf3 c<->$s $dir: sent ${sent:-nothing}, received ${got:-nothing}"
		echo "iperf3 c $( [ -z "$dir" ] && echo '->' || echo '<-') $s: $(jq -r '.end.sum_received | "\(.bytes) bytes, \(.bits_per_second / 1e6 | . * 10 | floor / 10) Mbit/s"' "$LAB_DIR/iperf.$s$dir.json")"
	done
done
mesh_poll 30 lab_all_ping || lab_wait_pings 1 || lab_fail "pings after the flows"

for s in a b; do
	ns=$(mesh_ns "$s")
	bad=$(mesh_xfrm_stat "$s" | grep -E 'XfrmInStateProtoError|XfrmInStateSeqError|XfrmInStateInvalid')
	[ -z "$bad" ] || lab_fail "site $s: /proc/net/xfrm_stat counts drops: $bad"
	st=$(ip -n "$ns" -s xfrm state | grep -E 'replay-window [0-9]+ replay [0-9]+ failed [0-9]+')
	[ -n "$st" ] || lab_fail "site $s: no SA statistics in ip -s xfrm state"
	echo "$st" | grep -vqE 'replay 0 failed 0$' &&
		lab_fail "site $s: an SA counts replay/integrity failures: $st"
	echo "site $s: xfrm_stat: $(mesh_xfrm_stat "$s" | tr '\n' ' ')"
done
mesh_status c | jq -e '(.tunnels | length) == 2 and
    all(.tunnels[]; .drops.auth == 0 and .drops.replay == 0)' >/dev/null ||
	lab_fail "site c (uesp) counts drops: $(mesh_status c | jq -c '[.tunnels[] | {id, drops}]')"
echo "zero auth/replay drops: xfrm_stat and kernel SAs on a and b, uesp on c"
mesh_status c | jq -c '[.tunnels[] | {peer: .peer_name, in: .packets_in, out: .packets_out, drops}]'
mesh_step "pass"
