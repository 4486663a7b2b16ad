#!/bin/sh
# dual_stack.sh — the three-site lab of `make demo` (tests/edge/sites_lib.sh)
# in dual stack (issue 9): every LAN also has an IPv6 prefix, and sites a
# and b have one more WAN link, "v6", whose underlay is IPv6 only.
#
#    lan-a ── a ═══ inet (198.18.1.2), mpls (198.18.11.2) ══╗
#   10.1.0.10  │ ╲                                       P-inet ══ c (NAT) ── lan-c
#   fd00:10:1::10 ─ v6 2001:db8:1::2 ════ 2001:db8:2::2 ══╝  ║    10.3.0.10
#              │                                          ║    fd00:10:3::10
#    lan-b ── b ═══ inet (198.18.2.2) ═════════════════════╝
#   10.2.0.10, fd00:10:2::10
#
# Policy pairs inet-inet, mpls-inet and v6-v6: six tunnels, one of them
# (a:v6 - b:v6) ESP-in-UDP over IPv6.  Checks what a user would:
#   - every pair of LAN hosts pings over IPv4 and over IPv6;
#   - each FRR holds the other sites' IPv6 LAN prefixes, learnt by BGP and
#     installed through a meshwan tunnel device (show bgp ipv6 unicast
#     json, show ipv6 route json);
#   - the IPv6-underlay tunnel has its in and out SAs; with a's IPv4
#     links cut, a and b still ping (both families) through it, its SA
#     counters rise and its datagrams cross the IPv6 link;
#   - a's uesp drops an IPv6 packet from b whose source is site c's
#     prefix (the tunnel's allowed sources), counts it as a source drop,
#     and a's LAN host never sees it;
#   - site c announcing a more-specific of a's IPv6 LAN by hand: a and b
#     receive it and their IPv6 inbound prefix lists drop it (not in BGP,
#     not in the kernel); b still sends a's traffic to a.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init dual
LAB_DUAL=1
LAB_V6LINK="a b"
t0=$(lab_ms)
lab_three_sites
lab_wait_pings 90 || lab_fail "LAN hosts do not all ping over IPv4 after 90 s"
lab_wait_pings 60 6 || lab_fail "LAN hosts do not all ping over IPv6"
echo "figure: from nothing to every pair of LAN hosts pinging over IPv4 and IPv6: $(( $(lab_ms) - t0 )) ms"

[ "$(lab_api GET /api/v1/tunnels | jq '.tunnels | length')" = 6 ] ||
	lab_fail "expected 6 tunnels (a: inet, mpls, v6 x b; a: inet, mpls x c; b-c): $(cat "$LAB_DIR/api.out")"
ida=$(lab_site_id a)
tid6=$(lab_api GET "/api/v1/tunnels?site=$ida" | jq -r '.tunnels[] | select(.link_a == "v6" and .link_b == "v6") | .id')
[ -n "$tid6" ] || lab_fail "no v6-v6 tunnel: $(cat "$LAB_DIR/api.out")"

# Each FRR: the other sites' IPv6 LAN prefixes in BGP and installed over
# a tunnel device (mw...).
for s in $LAB_SITES; do
	for o in $LAB_SITES; do
		[ "$s" = "$o" ] && continue
		p="fd00:10:$(lab_site_index "$o")::/64"
		lab_wait 20 sh -c "vtysh --vty_socket '$LAB_DIR/$s/frr' -c 'show ipv6 route $p json' |
			jq -e '.[\"$p\"] | any(.protocol == \"bgp\" and .selected == true and .installed == true
				and (.nexthops | length > 0) and all(.nexthops[]; (.interfaceName // \"\") | startswith(\"mw\")))'" ||
			lab_fail "site $s's FRR has no BGP route to $p over a tunnel: $(lab_vtysh "$s" -c "show ipv6 route $p json")"
		lab_vtysh "$s" -c 'show bgp ipv6 unicast json' | jq -e --arg p "$p" '.routes[$p] | length > 0' >/dev/null ||
			lab_fail "site $s: $p not in show bgp ipv6 unicast"
	done
	# Every tunnel's IPv6 session (over its /127) Established.
	want=$(lab_api GET "/api/v1/tunnels?site=$(lab_site_id "$s")" | jq '.tunnels | length')
	est6() {
		n=$(lab_vtysh "$s" -c 'show bgp ipv6 unicast summary json' |
			jq '[.peers[] | select(.state == "Established")] | length')
		[ "$n" = "$want" ]
	}
	lab_wait 30 est6 || lab_fail "site $s: $n IPv6 BGP sessions Established, $want tunnels: $(lab_vtysh "$s" -c 'show bgp ipv6 unicast summary')"
	echo "site $s: $n IPv6 BGP sessions Established, routes to the other sites' IPv6 LANs over tunnels"
done

# st NAME — meshwan-edge status --json of site NAME.
st() {
	ip netns exec "$LAB_P-$1" "${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}" \
		status -c "$LAB_DIR/$1/edge.conf" --json
}
# tun NAME ID FILTER — FILTER (jq) holds on tunnel ID in NAME's status.
tun() {
	st "$1" | jq -e --argjson id "$2" ".tunnels[] | select(.id == \$id) | $3" >/dev/null
}
sas_up='.state == "up" and ([.sas[] | select(.dir == "in" and .spi > 0)] | length) >= 1
	and ([.sas[] | select(.dir == "out" and .spi > 0 and .active)] | length) == 1'
for s in a b; do
	lab_wait 30 tun "$s" "$tid6" "$sas_up" ||
		lab_fail "site $s: tunnel $tid6 (IPv6 underlay) has no SAs: $(st "$s")"
	st "$s" | jq -e --argjson id "$tid6" '.tunnels[] | select(.id == $id) | .remote | startswith("[2001:db8:")' >/dev/null ||
		lab_fail "site $s: tunnel $tid6's peer is not an IPv6 address: $(st "$s")"
done
echo "tunnel $tid6 runs over IPv6: $(st a | jq -c --argjson id "$tid6" '.tunnels[] | select(.id == $id) | {local_link, remote, sas: [.sas[] | {dir, spi, sa_epoch}]}')"

# With a's IPv4 links cut, a and b reach each other only through the
# IPv6 underlay.
outpk() { st a | jq --argjson id "$tid6" '[.tunnels[] | select(.id == $id) | .sas[] | select(.dir == "out") | .packets] | add // 0'; }
# Bytes: UDP GSO may send several datagrams as one packet on the veth.
v6tx() { ip -n "$LAB_P-a" -s -j link show v6 | jq '.[0].stats64.tx.bytes'; }
# Only BFD notices the cut in time (BGP's hold timer is FRR's 180 s), and
# bgpd starts a session's BFD once BGP is up (edge-agent/README.md): wait
# until every BFD session of a's is up.
bfd_up() { lab_vtysh a -c 'show bfd peers json' | jq -e 'length > 0 and all(.[]; .status == "up")'; }
lab_wait 30 bfd_up || lab_fail "a's BFD sessions not all up: $(lab_vtysh a -c 'show bfd peers brief')"
lab_cut a inet
lab_cut a mpls
t1=$(lab_ms)
ab_ping() { lab_ping a b && lab_ping b a && lab_ping a b 6 && lab_ping b a 6; }
lab_wait 30 ab_ping || lab_fail "a and b do not ping with a's IPv4 links cut"
echo "figure: a<->b pinging (IPv4 and IPv6) over the IPv6 underlay $(( $(lab_ms) - t1 )) ms after the IPv4 links were cut"
sa0=$(outpk) tx0=$(v6tx)
ip netns exec "$LAB_P-lan-a" ping -6 -c 20 -i 0.05 -W 1 -q "$(lab_lan_addr6 b)" >/dev/null ||
	lab_fail "IPv6 pings a->b lost with a's IPv4 links cut"
ip netns exec "$LAB_P-lan-a" ping -c 20 -i 0.05 -W 1 -q "$(lab_lan_addr b)" >/dev/null ||
	lab_fail "IPv4 pings a->b lost with a's IPv4 links cut"
sa1=$(outpk) tx1=$(v6tx)
# 40 echo requests of 84-104 bytes, each in a datagram of 150 or more.
[ $((sa1 - sa0)) -ge 40 ] && [ $((tx1 - tx0)) -ge 6000 ] ||
	lab_fail "40 pings: the v6 tunnel's out SA counted $((sa1 - sa0)) packets, the v6 link sent $((tx1 - tx0)) bytes"
echo "40 pings a->b with IPv4 cut: out SA +$((sa1 - sa0)) packets, v6 link +$((tx1 - tx0)) bytes"
lab_restore a inet
lab_restore a mpls
lab_wait 30 lab_ping a c || lab_fail "a does not reach c again after the restore"

# Spoofed IPv6 source: b's LAN host sends from site c's prefix towards
# a's LAN host.  b routes it into a tunnel to a; a's uesp must drop it.
lan_a="$LAB_P-lan-a"
ip netns exec "$lan_a" nft -f - <<-EOF || lab_fail "nft in $lan_a"
table ip6 spoof {
	chain in {
		type filter hook input priority filter; policy accept;
		ip6 saddr fd00:10:3::99 counter
		ip6 saddr fd00:10:2::10 counter
	}
}
EOF
# from ADDR — packets a's LAN host received from ADDR (its nft counter).
from() {
	ip netns exec "$lan_a" nft -j list chain ip6 spoof in | jq --arg a "$1" '
		[.nftables[].rule? // empty | select(any(.expr[]; .match?.right == $a))
		 | .expr[] | .counter? // empty | .packets] | add // 0'
}
srcdrops() { st a | jq '[.tunnels[] | select(.peer_name == "site-b") | .drops.source] | add // 0'; }
d0=$(srcdrops)
ip -n "$LAB_P-lan-b" addr add fd00:10:3::99/128 dev eth0 nodad
ip netns exec "$LAB_P-lan-b" ping -6 -c 10 -i 0.1 -W 1 -q -I fd00:10:3::99 "$(lab_lan_addr6 a)" >/dev/null 2>&1
# All 10 should be counted; 5 leave room for a datagram lost on a busy host.
dropped() { [ $(( $(srcdrops) - d0 )) -ge 5 ]; }
lab_wait 10 dropped || lab_fail "a's tunnels from b counted $(( $(srcdrops) - d0 )) source drops for 10 spoofed packets"
[ "$(from fd00:10:3::99)" = 0 ] || lab_fail "a's LAN host received $(from fd00:10:3::99) packets from the spoofed source"
# The spoofed address would win source selection for a (longer common
# prefix): remove it before the real source's check.
ip -n "$LAB_P-lan-b" addr del fd00:10:3::99/128 dev eth0
lab_ping b a 6 || lab_fail "b's real IPv6 source no longer reaches a"
[ "$(from fd00:10:2::10)" -ge 1 ] || lab_fail "a's LAN host counted no packet from b's real address (the counters do not count)"
echo "10 packets from b with site c's IPv6 source: $(( $(srcdrops) - d0 )) source drops at a, none delivered"

# IPv6 prefix lists: site c announces a more-specific of a's LAN,
# fd00:10:1::/80, configured by hand; the inbound lists of its peers
# (from the topology: c's own LAN only) drop it, and b keeps sending a's
# LAN host's traffic to a.
hijack=fd00:10:1::/80
asn_c=$(lab_vtysh c -c 'show bgp ipv6 unicast summary json' | jq -r '.as')
ip -n "$LAB_P-c" addr add fd00:10:1::1:1/80 dev lan0 nodad
lab_vtysh c -c 'configure terminal' \
	-c "ipv6 prefix-list MW-OUT-V6 seq 100 permit $hijack" \
	-c "router bgp $asn_c" -c 'address-family ipv6 unicast' \
	-c "network $hijack" -c 'end' \
	-c 'clear bgp ipv6 unicast * soft out' >/dev/null || lab_fail "hand config on c"
for s in a b; do
	peer=$(lab_vtysh "$s" -c 'show bgp ipv6 unicast summary json' |
		jq -r --argjson asn "$asn_c" '[.peers | to_entries[] | select(.value.remoteAs == $asn) | .key][0]')
	announced() {
		lab_vtysh "$s" -c "show bgp ipv6 unicast neighbors $peer received-routes json" |
			jq -e --arg p "$hijack" '.receivedRoutes[$p] != null' >/dev/null
	}
	lab_wait 20 announced || lab_fail "site $s never received c's announcement of $hijack from $peer"
	lab_vtysh "$s" -c 'show bgp ipv6 unicast json' | jq -e --arg p "$hijack" '.routes[$p] == null' >/dev/null ||
		lab_fail "site $s accepted $hijack from c: $(lab_vtysh "$s" -c "show bgp ipv6 unicast $hijack")"
	ip -n "$LAB_P-$s" -6 route show "$hijack" | grep -q . &&
		lab_fail "site $s's kernel has a route to $hijack: $(ip -n "$LAB_P-$s" -6 route show "$hijack")"
done
dev=$(ip -n "$LAB_P-b" -6 -j route get "$(lab_lan_addr6 a)" | jq -r '.[0].dev')
st b | jq -e --arg d "$dev" '.tunnels[] | select(.device == $d) | .peer_name == "site-a"' >/dev/null ||
	lab_fail "b sends a's LAN host's traffic through $dev, not a tunnel to a"
echo "site c announcing $hijack (inside a's LAN): received and dropped by a and b; b still sends to a via $dev"
ip -n "$LAB_P-c" addr del fd00:10:1::1:1/80 dev lan0

lab_wait 30 lab_converged || lab_fail "GET /edges: not every edge connected and converged"
lab_wait_pings 30 6 || lab_fail "IPv6 pings do not all pass at the end"
echo "dual_stack: PASS"
