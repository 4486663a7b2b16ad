#!/bin/sh
# uesp_restart.sh — meshwan-uesp restarted on the same file never reuses a
# sequence number (= AES-GCM nonce) of its outbound key.
#
#   netns A                                          netns B
#   +--------------------------+                +--------------------------+
#   | uesp0 169.254.7.0/31     |  ESP-in-UDP    | uesp0 169.254.7.1/31     |
#   | meshwan-uesp a.json      |  (GRE inside)  | meshwan-uesp b.json      |
#   |   a.json.seq (default)   |                |   (keeps running)        |
#   | va 10.99.7.1/24 ==========veth=========== vb 10.99.7.2/24          |
#   +--------------------------+                +--------------------------+
#
# Steps: ping across; kill A with SIGKILL (a crash) and start it again on
# the same file; ping across again; stop A cleanly and start it a third
# time.  B never restarts, so its replay window remembers every number A
# sent: had A started again at 1 (as it did before the reservation file),
# B would drop A's packets as replays and the pings would fail.  Checked:
# every ping answered, B counts no replay, A's first number after each
# start is above the previous reservation (2^20 numbers per step).
set -u
ENCAP=gre
UESP=$MESHWAN_TOP/${BUILD:-build}/overlay/uesp/meshwan-uesp
UESP_ENV=
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"

STEP=1048576

ns_init
ns_need jq ping od
[ -x "$UESP" ] || fail "$UESP not built"
A=$(ns_name ra)
B=$(ns_name rb)
ns_add "$A"
ns_add "$B"
for n in "$A" "$B"; do
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
	    net.ipv6.conf.default.disable_ipv6=1 || fail "sysctl"
done
ns_veth "$A" va "$B" vb
ip -n "$A" addr add 10.99.7.1/24 dev va || fail "addr"
ip -n "$B" addr add 10.99.7.2/24 dev vb || fail "addr"

kab=$(uesp_hex 32) sab=$(uesp_hex 4) kba=$(uesp_hex 32) sba=$(uesp_hex 4)
CA=$NS_TMP/a.json CB=$NS_TMP/b.json
SA=$NS_TMP/a.stats SB=$NS_TMP/b.stats
uesp_conf "$CA" 10.99.7.1 10.99.7.2 169.254.7.0/31 169.254.7.1 4097 \
    out:4097:$kab:$sab in:4098:$kba:$sba
uesp_conf "$CB" 10.99.7.2 10.99.7.1 169.254.7.1/31 169.254.7.0 4098 \
    out:4098:$kba:$sba in:4097:$kab:$sab

start_a() {
	rm -f "$SA"
	ns_bg "$A" env $UESP_ENV "$UESP" -s "$SA" "$CA"
	PA=$NS_PID
	wait_until 30 test -s "$SA" || fail "A did not start"
}

# The highest sequence number of A's outbound SA, and B's inbound one.
a_seq() {
	uesp_dump "$PA" "$SA"
	uesp_q "$SA" '.tunnels[0].sas[] | select(.dir=="out") | .seq'
}
b_seq() {
	uesp_dump "$PB" "$SB"
	uesp_q "$SB" '.tunnels[0].sas[] | select(.dir=="in") | .seq'
}

start_a
ns_bg "$B" env $UESP_ENV "$UESP" -s "$SB" "$CB"
PB=$NS_PID
wait_until 30 test -s "$SB" || fail "B did not start"
wait_until 10 uesp_ping "$A" 169.254.7.1 || fail "no ping across the tunnel"
ip netns exec "$A" ping -c 3 -i 0.2 -W 1 169.254.7.1 || fail "ping lost packets"
[ -s "$CA.seq" ] || fail "no reservation file next to $CA"
s0=$(a_seq)
echo "before the crash: A sent up to $s0"

# 1. A crash: no chance to write anything on the way out.
kill -9 "$PA"
wait "$PA" 2>/dev/null
start_a
ip netns exec "$A" ping -c 3 -i 0.2 -W 1 169.254.7.1 ||
	fail "ping after the restart lost packets (replays at B?)"
s1=$(a_seq)
echo "after the crash: A sent up to $s1"
[ "$s1" -gt "$STEP" ] || fail "A restarted at $s1, not above its reservation"

# 2. A clean stop and start: above the second reservation.
ns_stop "$PA" || fail "A did not exit cleanly"
start_a
ip netns exec "$A" ping -c 3 -i 0.2 -W 1 169.254.7.1 ||
	fail "ping after the second restart lost packets"
s2=$(a_seq)
echo "after the stop: A sent up to $s2"
[ "$s2" -gt $((2 * STEP)) ] || fail "A restarted at $s2, not above its mark"

[ "$(b_seq)" -ge "$s2" ] || fail "B did not see A's new numbers"
uesp_no_drops "$SB"
uesp_no_drops "$SA"
ns_stop "$PA" || fail "meshwan-uesp A did not exit cleanly"
ns_stop "$PB" || fail "meshwan-uesp B did not exit cleanly"
echo "PASS uesp restart"
