#!/bin/sh
# kernel_esp_gre.sh — (lab) the design's wire format on Debian's kernel:
# a GRE device protected by transport-mode ESP SAs, rfc4106(gcm(aes)),
# ESN, replay window 1024, ESP-in-UDP on 4500, configured with iproute2.
#
#   netns A                                        netns B
#   gre1 169.254.8.0/31                            gre1 169.254.8.1/31
#   udp_encap on 10.99.8.1:4500                    udp_encap on 10.99.8.2:4500
#   va 10.99.8.1/24 ==========veth============ vb 10.99.8.2/24
#
# Proves: ping passes across the GRE /31 and the SA counters rise; the
# underlay (captured on vb) carries only ESP-in-UDP, never cleartext GRE;
# with A's outbound SA deleted the ping fails and nothing leaks; with A's
# main outbound policy deleted too, the lower-priority block policy still
# keeps GRE off the wire (XfrmOutPolBlock rises).  Last, with every XFRM
# object flushed, cleartext GRE does show in a capture: the check above
# would have seen a leak.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"
. "$MESHWAN_TOP/tests/lab/lib.sh"

ns_init
ns_need ip ping od awk
A=$(ns_name ka)
B=$(ns_name kb)
ns_add "$A"
ns_add "$B"
for n in "$A" "$B"; do
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
	    net.ipv6.conf.default.disable_ipv6=1 || fail "sysctl"
done
ns_veth "$A" va "$B" vb
ip -n "$A" addr add 10.99.8.1/24 dev va || fail "addr"
ip -n "$B" addr add 10.99.8.2/24 dev vb || fail "addr"

lab_step "GRE devices and ESP SAs"
for x in "$A 10.99.8.1 10.99.8.2 169.254.8.0" "$B 10.99.8.2 10.99.8.1 169.254.8.1"; do
	set -- $x
	ip -n "$1" link add gre1 type gre local "$2" remote "$3" ttl 64 ||
		fail "$1: gre (no ip_gre module?)"
	ip -n "$1" addr add "$4/31" dev gre1 || fail "addr"
	ip -n "$1" link set gre1 up || fail "up"
done
kab=$(lab_hex 32) sab=$(lab_hex 4) kba=$(lab_hex 32) sba=$(lab_hex 4)
for n in "$A" "$B"; do
	lab_sa "$n" 10.99.8.1 10.99.8.2 0x1001 "$kab" "$sab"
	lab_sa "$n" 10.99.8.2 10.99.8.1 0x1002 "$kba" "$sba"
done
lab_policies "$A" 10.99.8.1 10.99.8.2 0x1001 0x1002 proto gre
lab_policies "$B" 10.99.8.2 10.99.8.1 0x1002 0x1001 proto gre
ip -n "$A" xfrm state list spi 0x1001 | grep -q 'flag.*esn' || fail "no ESN flag"
ip -n "$A" xfrm state list spi 0x1001 | grep -q 'replay-window 1024' ||
	ip -n "$A" xfrm state list spi 0x1001 | grep -q 'replay_window 1024' ||
	fail "replay window is not 1024: $(ip -n "$A" xfrm state list spi 0x1001)"
ip -n "$A" xfrm state list spi 0x1001 | grep -q 'encap type espinudp sport 4500 dport 4500' ||
	fail "no espinudp encapsulation"
lab_encap_socket "$A" 10.99.8.1
lab_encap_socket "$B" 10.99.8.2

lab_capture_start "$B" vb

lab_step "ping across the GRE /31, ESP-in-UDP on the underlay"
lab_capture_mark "$A" 10.99.8.2 1
wait_until 20 ip netns exec "$A" ping -c 1 -W 1 169.254.8.1 >/dev/null ||
	fail "no ping across the tunnel"
ip netns exec "$A" ping -c 10 -i 0.2 -W 1 169.254.8.1 || fail "ping lost packets"
ip netns exec "$B" ping -c 5 -i 0.2 -W 1 169.254.8.0 || fail "ping B -> A lost packets"
for n in "$A" "$B"; do
	for spi in 0x1001 0x1002; do
		p=$(lab_sa_field "$n" $spi packets)
		echo "$n SA $spi: $p packets"
		[ "${p:-0}" -ge 15 ] || fail "$n SA $spi counted ${p:-nothing}"
		for f in replay failed; do
			[ "$(lab_sa_field "$n" $spi $f)" = 0 ] ||
				fail "$n SA $spi: $f $(lab_sa_field "$n" $spi $f)"
		done
	done
	[ -z "$(lab_xfrm_stat "$n")" ] || fail "$n xfrm_stat: $(lab_xfrm_stat "$n")"
done

lab_step "outbound SA of A deleted: no traffic, no cleartext"
ip -n "$A" xfrm state delete src 10.99.8.1 dst 10.99.8.2 proto esp spi 0x1001 ||
	fail "delete SA"
nostates=$(lab_xfrm_stat_value "$A" XfrmOutNoStates)
lab_capture_mark "$A" 10.99.8.2 2
ip netns exec "$A" ping -c 5 -i 0.2 -W 1 169.254.8.1 && fail "ping passed without an SA"
ip netns exec "$B" ping -c 3 -i 0.2 -W 1 169.254.8.0 && fail "ping B -> A passed without A's SA"
[ "$(lab_xfrm_stat_value "$A" XfrmOutNoStates)" -gt "${nostates:-0}" ] ||
	fail "XfrmOutNoStates did not rise: $(lab_xfrm_stat "$A")"

lab_step "main outbound policy of A deleted too: the block policy holds"
ip -n "$A" xfrm policy delete src 10.99.8.1/32 dst 10.99.8.2/32 proto gre dir out ||
	fail "delete policy"
ip -n "$A" xfrm policy list dir out | grep -q 'action block' || fail "no block policy left"
blocked=$(lab_xfrm_stat_value "$A" XfrmOutPolBlock)
lab_capture_mark "$A" 10.99.8.2 3
ip netns exec "$A" ping -c 5 -i 0.2 -W 1 169.254.8.1 && fail "ping passed past the block policy"
[ "$(lab_xfrm_stat_value "$A" XfrmOutPolBlock)" -gt "${blocked:-0}" ] ||
	fail "XfrmOutPolBlock did not rise: $(lab_xfrm_stat "$A")"

lab_step "control: without any XFRM state the capture does see cleartext GRE"
for n in "$A" "$B"; do
	ip -n "$n" xfrm policy flush
	ip -n "$n" xfrm state flush
done
lab_capture_mark "$A" 10.99.8.2 4
wait_until 10 ip netns exec "$A" ping -c 1 -W 1 169.254.8.1 >/dev/null ||
	fail "no cleartext ping"
lab_capture_stop "$A" 10.99.8.2

lab_step "the underlay capture, phase by phase"
lab_capture_phases | sort | uniq -c
esp=$(lab_capture_count 1 - ':udp:udpencap:esp$')
[ "$esp" -ge 30 ] || fail "only $esp ESP-in-UDP frames on the underlay"
for p in 1 2 3; do
	n=$(lab_capture_count $p - ':gre')
	[ "$n" = 0 ] || fail "phase $p: $n cleartext GRE frames on the underlay"
done
n=$(lab_capture_count 2 10.99.8.1 '.')
[ "$n" = 0 ] || fail "A sent $n frames without its SA"
n=$(lab_capture_count 3 10.99.8.1 '.')
[ "$n" = 0 ] || fail "A sent $n frames past the block policy"
n=$(lab_capture_count 4 - ':gre:ip:icmp')
[ "$n" -ge 2 ] || fail "the capture shows no cleartext GRE ($n): the leak check is blind"
lab_step "PASS kernel ESP/GRE"
