#!/bin/sh
# xfrm_migrate.sh — (lab) a peer address move with the xfrm backend: a
# site behind an nftables NAT whose public *address* changes mid-flow (a
# branch's broadband/LTE address), and a peer that follows it from the
# kernel's XFRM_MSG_MAPPING with tunnel_update, which moves its SAs with
# XFRM_MSG_MIGRATE (overlay/xfrm/README.md, "Peer address moves"), driven
# through overlay.h by tests/lab/xfrm_drive, one instance per side:
#
#   netns A (site)           netns R (NAT)                 netns B (public)
#   la 192.168.7.2/24 ==== ra 192.168.7.1/24
#                            rb 203.0.113.1/24 ========== lb 203.0.113.2/24
#                               203.0.113.3/24
#   mwmig 10.255.7.0/31      snat 192.168.7.2:4500         mwmig 10.255.7.1/31
#                            <-> 203.0.113.1:40000, then 203.0.113.3:40001
#
# Proves: under a running ping, the site's public address and port move
# (rules replaced, conntrack flushed); B's backend reports the new
# endpoint and the driver follows at once (moved_fd, tunnel_update, as
# meshwan-edge does); then B's SAs, policies and GRE device name the new
# address and port and none the old, the ping resumes within BOUND_S, the
# outbound SA kept its SPI and its sequence number did not restart (the
# kernel's oseq after the move is above the one before, by the backend's
# skip of 65536), and A's inbound SA took everything with no replay or
# integrity failure.  The old backend answered the follow with
# EOPNOTSUPP: this scenario fails there.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"

BUILD=${BUILD:-build}
DRIVE=$BUILD/tests/lab/xfrm_drive
CT_FLUSH=$BUILD/tests/edge/ct_flush
BOUND_S=${XFRM_MIGRATE_BOUND_S:-3}	# longest gap between replies
SKIP=65536				# XFRM_MIGRATE_SEQ_GAP in xfrm.c
[ -x "$DRIVE" ] || fail "$DRIVE not built (make)"
[ -x "$CT_FLUSH" ] || fail "$CT_FLUSH not built (make)"
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

ns_init
ns_need ip ping nft awk
modprobe -a nft_chain_nat nft_nat nf_conntrack_netlink drbg ansi_cprng \
    jitterentropy_rng sha512_ssse3 sha3_generic crc32c_intel >/dev/null 2>&1
A=$(ns_name xma)
R=$(ns_name xmr)
B=$(ns_name xmb)
ns_add "$A"
ns_add "$R"
ns_add "$B"
ns_veth "$A" la "$R" ra
ns_veth "$R" rb "$B" lb
ip -n "$A" addr add 192.168.7.2/24 dev la || fail "addr"
ip -n "$R" addr add 192.168.7.1/24 dev ra || fail "addr"
ip -n "$R" addr add 203.0.113.1/24 dev rb || fail "addr"
ip -n "$R" addr add 203.0.113.3/24 dev rb || fail "addr"
ip -n "$B" addr add 203.0.113.2/24 dev lb || fail "addr"
ip -n "$A" route add default via 192.168.7.1 || fail "route"
ip netns exec "$R" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward' ||
	fail "forwarding"

# nat_map ADDR PORT: R maps A's ESP port 4500 to public ADDR:PORT, both
# ways; the table is replaced atomically.
nat_map() {
	ip netns exec "$R" nft -f - <<-EOF2 || fail "nft in R"
	table ip mwmig
	delete table ip mwmig
	table ip mwmig {
		chain pre {
			type nat hook prerouting priority dstnat; policy accept;
			iifname "rb" ip daddr $1 udp dport $2 dnat to 192.168.7.2:4500
		}
		chain post {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "rb" ip saddr 192.168.7.2 udp sport 4500 snat to $1:$2
		}
	}
	EOF2
}
ct_flush() { ip netns exec "$R" "$CT_FLUSH" || fail "conntrack flush in R"; }

. "$MESHWAN_TOP/tests/lab/drv_lib.sh"
# diag: what B's backend and kernel hold, for a failure message.
diag() {
	echo "--- b.log:"; tail -n 8 "$NS_TMP/b.log"
	echo "--- B's SAs:"; ip -s -n "$B" xfrm state
	echo "--- B's policies:"; ip -n "$B" xfrm policy
	echo "--- B's device:"; ip -n "$B" -d link show mwmig
	echo "--- xfrm_stat B:"; ip netns exec "$B" grep -v ' 0$' /proc/net/xfrm_stat
	echo "--- xfrm_stat A:"; ip netns exec "$A" grep -v ' 0$' /proc/net/xfrm_stat
	echo "--- A's SAs:"; ip -s -n "$A" xfrm state
}
# sa_line NS SPI: the SA's `ip -s xfrm state` entry on one line.
sa_line() {
	ip -s -n "$1" xfrm state list spi "$2" | tr '\n' ' '
}
# oseq_of NS SPI: the SA's output sequence number, decimal.
oseq_of() {
	_o=$(sa_line "$1" "$2" | sed -n 's/.*oseq-hi \(0x[0-9a-f]*\), oseq \(0x[0-9a-f]*\).*/\1 \2/p')
	[ -n "$_o" ] || fail "$1: no oseq for SA $2: $(sa_line "$1" "$2")"
	set -- $_o
	echo $(( ($1 << 32) + $2 ))
}

step "NAT maps A's 4500 to 203.0.113.1:40000; a tunnel A <-> B through it"
nat_map 203.0.113.1 40000
drv_start a "$A" 3
drv_start b "$B" 4
must a tunnel 1 gre 192.168.7.2 203.0.113.2 10.255.7.0 10.255.7.1 mwmig
must b tunnel 1 gre 203.0.113.2 203.0.113.1:40000 10.255.7.1 10.255.7.0 mwmig
must a sa out 1 0x7001; must b sa in 1 0x7001
must b sa out 1 0x7002; must a sa in 1 0x7002
must a switch 1 0x7001; must b switch 1 0x7002
ip netns exec "$A" ping -c 3 -w 20 -q 10.255.7.1 >/dev/null ||
	fail "GRE ping through the NAT"

step "under a running ping the site's public address moves to 203.0.113.3:40001"
ip netns exec "$A" ping -D -i 0.2 -W 1 10.255.7.1 >"$NS_TMP/ping.log" 2>&1 &
ping_pid=$!
NS_PIDS="$NS_PIDS $ping_pid"
wait_until 20 sh -c "[ \$(grep -c 'bytes from' '$NS_TMP/ping.log') -ge 5 ]" ||
	fail "the running ping got no replies: $(tail -n 3 "$NS_TMP/ping.log")"
before=$(oseq_of "$B" 0x7002)
[ "$before" -ge 8 ] || fail "B's outbound SA sent nothing: oseq $before"
# The driver waits for the move before the NAT changes, as an agent
# always does (its poll loop holds moved_fd).
bc=$(lines "$NS_TMP/b.out")
echo "follow 1 30000" >&4
tc=$(date +%s.%N)
nat_map 203.0.113.3 40001
ct_flush
wait_until 45 sh -c "test \$(wc -l <'$NS_TMP/b.out') -gt $bc" ||
	fail "b: no answer to follow: $(tail -n 5 "$NS_TMP/b.log")"
REPLY=$(sed -n "$((bc + 1))p" "$NS_TMP/b.out")
case "$REPLY" in ok*) ;; *) fail "b: follow answered '$REPLY': $(tail -n 3 "$NS_TMP/b.log")" ;; esac
echo "B followed: $REPLY"
[ "$(field addr)" = 203.0.113.3 ] && [ "$(field port)" = 40001 ] ||
	fail "B followed to '$REPLY', want 203.0.113.3 port 40001"
n0=$(grep -c 'bytes from' "$NS_TMP/ping.log")
wait_until 30 sh -c "[ \$(grep -c 'bytes from' '$NS_TMP/ping.log') -ge $((n0 + 10)) ]" ||
	fail "the ping did not resume: $(tail -n 3 "$NS_TMP/ping.log")
$(diag)"
kill "$ping_pid" 2>/dev/null
wait "$ping_pid" 2>/dev/null
gap=$(awk -v tc="$tc" '/bytes from/ {
	t = substr($1, 2, length($1) - 2) + 0
	if (t < tc - 1) next
	if (prev != "" && t - prev > max) max = t - prev
	prev = t
    } END { printf "%.2f", max }' "$NS_TMP/ping.log")
echo "figure: peer address move recovery $gap s (longest gap between replies at 0.2 s intervals; bound $BOUND_S s)"
awk -v g="$gap" -v b="$BOUND_S" 'BEGIN { exit !(g > 0 && g <= b) }' ||
	fail "recovery took $gap s, bound $BOUND_S s"

step "B's SAs, policies and device name the new endpoint; no sequence reset"
out=$(sa_line "$B" 0x7002)
in=$(sa_line "$B" 0x7001)
echo "$out" | grep -q 'src 203.0.113.2 dst 203.0.113.3 ' ||
	fail "B's outbound SA: $out"
echo "$out" | grep -q 'sport 4500 dport 40001 ' || fail "B's outbound encap: $out"
echo "$in" | grep -q 'src 203.0.113.3 dst 203.0.113.2 ' ||
	fail "B's inbound SA: $in"
echo "$in" | grep -q 'sport 40001 dport 4500 ' || fail "B's inbound encap: $in"
[ "$(ip -n "$B" xfrm state | grep -c '^src')" = 2 ] ||
	fail "B holds other SAs: $(ip -n "$B" xfrm state)"
ip -n "$B" xfrm state | grep -q 203.0.113.1 && fail "an SA names the old address"
ip -n "$B" xfrm policy | grep -q 203.0.113.1 && fail "a policy names the old address"
[ "$(ip -n "$B" xfrm policy | grep -c '203.0.113.3/32')" = 4 ] ||
	fail "B's policies: $(ip -n "$B" xfrm policy)"
ip -n "$B" -d link show mwmig | grep -q 'remote 203.0.113.3 ' ||
	fail "B's device: $(ip -n "$B" -d link show mwmig)"
after=$(oseq_of "$B" 0x7002)
echo "figure: B's outbound SA 0x7002 oseq $before before the move, $after after it and the resumed ping"
[ "$after" -gt $((before + SKIP)) ] ||
	fail "oseq $after after the move, $before before: the sequence restarted (or skipped less than $SKIP)"
must a stats in 1 0x7002
echo "A's inbound SA: $REPLY"
[ "$(field replay)" = 0 ] && [ "$(field auth)" = 0 ] ||
	fail "A's inbound SA counted failures: $REPLY"
[ "$(field seq)" -gt $((before + SKIP)) ] ||
	fail "A's inbound SA's highest number $(field seq): not past the skip"

step "fini removes everything of ours"
must a quit
must b quit
for n in "$A" "$B"; do
	[ -z "$(ip -n "$n" xfrm state)" ] || fail "$n: SAs left"
	[ -z "$(ip -n "$n" xfrm policy)" ] || fail "$n: policies left"
done
step "pass"
