#!/bin/sh
# xfrm_nat.sh — (lab) NAT traversal with the xfrm backend: a site behind
# an nftables NAT whose mapping moves mid-flow, and a peer with a public
# address that follows it from the kernel's XFRM_MSG_MAPPING events
# (overlay/xfrm/README.md, "Events"), driven through overlay.h by
# tests/lab/xfrm_drive, one backend instance per side:
#
#   netns A (site)           netns R (NAT)                 netns B (public)
#   la 192.168.7.2/24 ==== ra 192.168.7.1/24
#                            rb 203.0.113.1/24 ========== lb 203.0.113.2/24
#   mwnat 10.255.7.0/31      snat 192.168.7.2:4500         mwnat 10.255.7.1/31
#                            <-> 203.0.113.1:PORT
#
# Proves: a GRE tunnel under ESP-in-UDP crosses the NAT, B's SAs aimed at
# the mapped port; when the mapping moves (new snat port, conntrack
# flushed), traffic stops (B still sends to the old port), B's backend
# reports the new endpoint from authenticated ESP (tunnel_stats moved_*,
# moved_fd) without following it by itself, and the kernel sends one
# mapping per move, not one per packet (XFRMA_MTIMER_THRESH); after
# tunnel_update B's SAs carry the new port both ways and the pings pass.
# Then, under a running ping, the mapping moves again while the driver
# waits on moved_fd (as meshwan-edge's loop does) and follows at once:
# the longest gap between replies must stay within BOUND_S.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"

BUILD=${BUILD:-build}
DRIVE=$BUILD/tests/lab/xfrm_drive
CT_FLUSH=$BUILD/tests/edge/ct_flush
BOUND_S=${XFRM_NAT_BOUND_S:-3}	# recovery bound: longest gap between replies
[ -x "$DRIVE" ] || fail "$DRIVE not built (make)"
[ -x "$CT_FLUSH" ] || fail "$CT_FLUSH not built (make)"
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

ns_init
ns_need ip ping nft awk
# NAT, conntrack flushing, and the random number generators the first
# SA asks for: one busybox modprobe (a second each under TCG) for all.
modprobe -a nft_chain_nat nft_nat nf_conntrack_netlink drbg ansi_cprng \
    jitterentropy_rng sha512_ssse3 sha3_generic crc32c_intel >/dev/null 2>&1
A=$(ns_name xna)
R=$(ns_name xnr)
B=$(ns_name xnb)
ns_add "$A"
ns_add "$R"
ns_add "$B"
ns_veth "$A" la "$R" ra
ns_veth "$R" rb "$B" lb
ip -n "$A" addr add 192.168.7.2/24 dev la || fail "addr"
ip -n "$R" addr add 192.168.7.1/24 dev ra || fail "addr"
ip -n "$R" addr add 203.0.113.1/24 dev rb || fail "addr"
ip -n "$B" addr add 203.0.113.2/24 dev lb || fail "addr"
ip -n "$A" route add default via 192.168.7.1 || fail "route"
ip netns exec "$R" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward' ||
	fail "forwarding"

# nat_map PORT: R maps A's ESP port 4500 to public PORT, both ways (the
# inbound half keeps a datagram of B's that arrives first from taking the
# port); the table is replaced atomically, existing conntrack entries
# keep their mapping until flushed (ct_flush).
nat_map() {
	ip netns exec "$R" nft -f - <<-EOF || fail "nft in R"
	table ip mwnat
	delete table ip mwnat
	table ip mwnat {
		chain pre {
			type nat hook prerouting priority dstnat; policy accept;
			iifname "rb" udp dport $1 dnat to 192.168.7.2:4500
		}
		chain post {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "rb" ip saddr 192.168.7.2 udp sport 4500 snat to 203.0.113.1:$1
		}
	}
	EOF
}
ct_flush() { ip netns exec "$R" "$CT_FLUSH" || fail "conntrack flush in R"; }

. "$MESHWAN_TOP/tests/lab/drv_lib.sh"
# encap_of NS SRC DST: "espinudp SPORT DPORT" of the SA SRC -> DST
# (iproute2 prints "encap type espinudp sport N dport N addr ...").
encap_of() {
	ip -n "$1" xfrm state | awk -v s="$2" -v d="$3" '
	    $1 == "src" { cur = ($2 == s && $4 == d) }
	    cur && $1 == "encap" {
		for (i = 2; i < NF; i++) {
			if ($i == "type") t = $(i + 1)
			if ($i == "sport") sp = $(i + 1)
			if ($i == "dport") dp = $(i + 1)
		}
		print t, sp, dp
		exit
	    }'
}

step "NAT maps A's 4500 to 203.0.113.1:40000; a tunnel A <-> B through it"
nat_map 40000
drv_start a "$A" 3
drv_start b "$B" 4
must a tunnel 1 gre 192.168.7.2 203.0.113.2 10.255.7.0 10.255.7.1 mwnat
must b tunnel 1 gre 203.0.113.2 203.0.113.1:40000 10.255.7.1 10.255.7.0 mwnat
must a sa out 1 0x7001; must b sa in 1 0x7001
must b sa out 1 0x7002; must a sa in 1 0x7002
must a switch 1 0x7001; must b switch 1 0x7002
ip netns exec "$A" ping -c 3 -w 20 -q 10.255.7.1 >/dev/null ||
	fail "GRE ping through the NAT"
[ "$(encap_of "$B" 203.0.113.2 203.0.113.1)" = "espinudp 4500 40000" ] ||
	fail "B's outbound SA: $(encap_of "$B" 203.0.113.2 203.0.113.1)"
must b moved 1
[ "$(field addr)" = "-" ] || fail "a move reported with no NAT change: $REPLY"

step "the mapping moves to port 40001: reported, not followed by itself"
nat_map 40001
ct_flush
# A's requests leave from the new port and reach B; B's answers still go
# to 40000, where nothing maps any more.
ip netns exec "$A" ping -c 8 -i 0.2 -w 4 -q 10.255.7.1 >/dev/null 2>&1 &&
	fail "pings passed while B still sends to the old port (test blind)"
must b moved 1
[ "$(field addr)" = 203.0.113.1 ] && [ "$(field port)" = 40001 ] ||
	fail "B reports '$REPLY', want 203.0.113.1 port 40001"
rx=$(field rx)
# One XFRM_MSG_MAPPING per move (XFRMA_MTIMER_THRESH), not one for each
# of the 8 packets; 2 if the pings took longer than its 5 s.
[ "$rx" -ge 1 ] && [ "$rx" -le 2 ] || fail "B saw $rx mappings for 8 packets"
[ "$(encap_of "$B" 203.0.113.2 203.0.113.1)" = "espinudp 4500 40000" ] ||
	fail "the backend followed by itself: $(encap_of "$B" 203.0.113.2 203.0.113.1)"
echo "B reports the move: $REPLY"
must b follow 1 10000
[ "$(encap_of "$B" 203.0.113.2 203.0.113.1)" = "espinudp 4500 40001" ] ||
	fail "B's outbound SA after follow: $(encap_of "$B" 203.0.113.2 203.0.113.1)"
[ "$(encap_of "$B" 203.0.113.1 203.0.113.2)" = "espinudp 40001 4500" ] ||
	fail "B's inbound SA after follow: $(encap_of "$B" 203.0.113.1 203.0.113.2)"
ip netns exec "$A" ping -c 3 -w 20 -q 10.255.7.1 >/dev/null ||
	fail "no ping after following the move"
must b moved 1
[ "$(field addr)" = "-" ] || fail "the move is still reported after following: $REPLY"

step "under a running ping the mapping moves to 40002; B follows at once"
ip netns exec "$A" ping -D -i 0.2 -W 1 10.255.7.1 >"$NS_TMP/ping.log" 2>&1 &
ping_pid=$!
NS_PIDS="$NS_PIDS $ping_pid"
replies() { grep -c 'bytes from' "$NS_TMP/ping.log"; }
wait_until 20 sh -c "[ \$(grep -c 'bytes from' '$NS_TMP/ping.log') -ge 5 ]" ||
	fail "the running ping got no replies: $(tail -n 3 "$NS_TMP/ping.log")"
# The driver waits for the move before the NAT changes, as an agent
# always does (its poll loop holds moved_fd).
bc=$(lines "$NS_TMP/b.out")
echo "follow 1 40000" >&4
tc=$(date +%s.%N)
nat_map 40002
ct_flush
wait_until 60 sh -c "test \$(wc -l <'$NS_TMP/b.out') -gt $bc" ||
	fail "b: no answer to follow: $(tail -n 5 "$NS_TMP/b.log")"
REPLY=$(sed -n "$((bc + 1))p" "$NS_TMP/b.out")
case "$REPLY" in ok*) ;; *) fail "b: follow answered '$REPLY'" ;; esac
echo "B followed: $REPLY"
[ "$(field port)" = 40002 ] || fail "B followed to '$REPLY', want port 40002"
n0=$(replies)
wait_until 30 sh -c "[ \$(grep -c 'bytes from' '$NS_TMP/ping.log') -ge $((n0 + 10)) ]" ||
	fail "the ping did not resume: $(tail -n 3 "$NS_TMP/ping.log")"
kill "$ping_pid" 2>/dev/null
wait "$ping_pid" 2>/dev/null
# The longest gap between two replies from a second before the change.
gap=$(awk -v tc="$tc" '/bytes from/ {
	t = substr($1, 2, length($1) - 2) + 0
	if (t < tc - 1) next
	if (prev != "" && t - prev > max) max = t - prev
	prev = t
    } END { printf "%.2f", max }' "$NS_TMP/ping.log")
echo "figure: NAT rebinding recovery $gap s (longest gap between replies at 0.2 s intervals; bound $BOUND_S s)"
awk -v g="$gap" -v b="$BOUND_S" 'BEGIN { exit !(g > 0 && g <= b) }' ||
	fail "recovery took $gap s, bound $BOUND_S s"
[ "$(encap_of "$B" 203.0.113.2 203.0.113.1)" = "espinudp 4500 40002" ] ||
	fail "B's outbound SA: $(encap_of "$B" 203.0.113.2 203.0.113.1)"

step "fini removes everything of ours"
must a quit
must b quit
for n in "$A" "$B"; do
	[ -z "$(ip -n "$n" xfrm state)" ] || fail "$n: SAs left"
	[ -z "$(ip -n "$n" xfrm policy)" ] || fail "$n: policies left"
done
step "pass"
