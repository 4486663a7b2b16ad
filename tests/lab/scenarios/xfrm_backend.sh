#!/bin/sh
# xfrm_backend.sh — (lab) the xfrm backend (overlay/xfrm/) on Debian's
# kernel, driven through overlay.h by tests/lab/xfrm_drive, one instance
# per namespace:
#
#   netns A                                      netns B
#   mwgre 10.255.0.0/31, mwvx 10.255.1.0/31      mwgre .0.1, mwvx .1.1
#   va 192.0.2.1/24 ==========veth============ vb 192.0.2.2/24
#
# Proves: tunnel_add + sa_add in/out + sa_switch_out carry pings over GRE
# and over VXLAN; `ip -s xfrm state` shows the SPIs with ESN, window 1024
# and espinudp 4500; a rekey (new outbound SA, switch) under a running
# ping loses no packet and moves no /proc/net/xfrm_stat counter, and keeps traffic going
# on the new SPI; sa_update changes lifetimes with the sequence number
# running on; a crash of the driver, and a clean stop with keep_at_fini
# (what meshwan-edge does at SIGTERM), each followed by a new instance
# adopting its objects, lose no ping and do not reset the sequence
# number; deleting the
# active SA (through the backend, and by hand with ip xfrm) stops the
# traffic with no cleartext GRE/VXLAN on the underlay; fini leaves no SA,
# policy or device behind; with a sequence reservation file, an outbound
# key re-added after a "reboot" (fini removed its SA) starts above the
# file's mark, and a kernel counter past half a step moves the mark at the
# next stats read (no nonce reuse).  Last, the SA-install bench (1,000 SAs).
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"

BUILD=${BUILD:-build}
DRIVE=$BUILD/tests/lab/xfrm_drive
BENCH=$BUILD/tests/bench/xfrm_bench
[ -x "$DRIVE" ] || fail "$DRIVE not built (make)"
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

ns_init
ns_need ip ping dumpcap tshark awk python3
A=$(ns_name xa)
B=$(ns_name xb)
ns_add "$A"
ns_add "$B"
ns_veth "$A" va "$B" vb
ip -n "$A" addr add 192.0.2.1/24 dev va || fail "addr"
ip -n "$B" addr add 192.0.2.2/24 dev vb || fail "addr"

. "$MESHWAN_TOP/tests/lab/drv_lib.sh"
# drv_held NS FD NAME...: in NS, a holder binds UDP 4500 (as systemd
# socket activation would) and runs driver NAME1, then NAME2 once NAME1
# is gone, and so on, each inheriting the socket as fd 3 with
# LISTEN_PID/LISTEN_FDS (a NAME ending in _k runs with XFRM_DRIVE_KEEP).
drv_held() {
	_hn=$1 _hfd=$2
	shift 2
	for _d in "$@"; do drv_fifo "$_d"; done
	ns_bg "$_hn" python3 -c '
import os, socket, subprocess, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4500))
os.dup2(s.fileno(), 3)
drive, tmp = sys.argv[1], sys.argv[2]
for n in sys.argv[3:]:
    env = dict(os.environ)
    if n.endswith("_k"):
        env["XFRM_DRIVE_KEEP"] = "1"
    subprocess.run(["sh", "-c", "LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" <\"$1\" >\"$2\" 2>>\"$3\"",
        drive, tmp + "/" + n + ".in", tmp + "/" + n + ".out", tmp + "/" + n + ".log"], pass_fds=(3,), env=env)
' "$DRIVE" "$NS_TMP" "$@"
	drv_open "$1" "$_hfd"
}

step "two backend instances, a GRE and a VXLAN tunnel each"
drv_held "$A" 3 a a2_k a3
drv_start b "$B" 4
grep -q 'inherited ESP-in-UDP socket' "$NS_TMP/a.log" || fail "a: socket not inherited"
must a tunnel 1 gre 192.0.2.1 192.0.2.2 10.255.0.0 10.255.0.1 mwgre
must b tunnel 1 gre 192.0.2.2 192.0.2.1 10.255.0.1 10.255.0.0 mwgre
must a tunnel 2 vxlan 192.0.2.1 192.0.2.2 10.255.1.0 10.255.1.1 mwvx,42
must b tunnel 2 vxlan 192.0.2.2 192.0.2.1 10.255.1.1 10.255.1.0 mwvx,42

step "no SA yet: the out policies block"
ip netns exec "$A" ping -c 2 -W 1 -q 10.255.0.1 >/dev/null 2>&1 &&
	fail "GRE passed without any SA"

step "SAs in and out, switched in: GRE and VXLAN pings pass"
must a sa out 1 0x1001; must b sa in 1 0x1001
must b sa out 1 0x2001; must a sa in 1 0x2001
must a sa out 2 0x1101; must b sa in 2 0x1101
must b sa out 2 0x2101; must a sa in 2 0x2101
# An inbound SPI is unique in the instance.
drv a sa in 2 0x2001 && fail "a second inbound SA with SPI 0x2001 was accepted"
for s in "a 1 0x1001" "b 1 0x2001" "a 2 0x1101" "b 2 0x2101"; do
	set -- $s
	must "$1" switch "$2" "$3"
done
ip netns exec "$A" ping -c 3 -w 10 -q 10.255.0.1 >/dev/null || fail "GRE ping"
ip netns exec "$A" ping -c 3 -w 10 -q 10.255.1.1 >/dev/null || fail "VXLAN ping"
st=$(ip -n "$A" -s xfrm state)
for spi in 0x00001001 0x00002001 0x00001101 0x00002101; do
	echo "$st" | grep -q "spi $spi" || fail "SPI $spi not in ip -s xfrm state: $st"
done
echo "$st" | grep -q 'encap type espinudp sport 4500 dport 4500' || fail "no espinudp: $st"
echo "$st" | grep -q 'flag.*esn' || fail "no ESN: $st"
echo "$st" | grep -Eq 'replay[-_]window 1024' || fail "window not 1024: $st"
must a stats out 1 0x1001
[ "$(field packets)" -ge 3 ] && [ "$(field seq)" -ge 3 ] && [ "$(field active)" = 1 ] ||
	fail "A's out SA 0x1001: $REPLY"
must b stats in 1 0x1001
[ "$(field packets)" -ge 3 ] && [ "$(field auth)" = 0 ] && [ "$(field replay)" = 0 ] ||
	fail "B's in SA 0x1001: $REPLY"

step "rekey under a running ping: a new outbound SA, switched in; sa_update keeps the counter"
# No packet lost and no /proc/net/xfrm_stat counter moved on either side.
xstat() { ip netns exec "$1" cat /proc/net/xfrm_stat | awk '$2 != 0'; }
xa=$(xstat "$A")
xb=$(xstat "$B")
ip netns exec "$A" ping -i 0.2 -W 2 10.255.0.1 >"$NS_TMP/ping.rekey" 2>&1 &
pingpid=$!
sleep 1
must b sa in 1 0x1002
must a sa out 1 0x1002
must a switch 1 0x1002
sleep 2
kill -INT "$pingpid"
wait "$pingpid"
grep -q ' 0% packet loss' "$NS_TMP/ping.rekey" ||
	fail "ping lost packets across the rekey: $(tail -n 3 "$NS_TMP/ping.rekey")"
[ "$(xstat "$A")" = "$xa" ] && [ "$(xstat "$B")" = "$xb" ] ||
	fail "xfrm_stat moved during the rekey: A '$xa' -> '$(xstat "$A")', B '$xb' -> '$(xstat "$B")'"
echo "rekey under ping: $(grep 'packets transmitted' "$NS_TMP/ping.rekey"), xfrm_stat unchanged"
ip netns exec "$A" ping -c 3 -w 10 -q 10.255.0.1 >/dev/null || fail "GRE ping after rekey"
must a stats out 1 0x1002
[ "$(field packets)" -ge 3 ] || fail "new SA unused: $REPLY"
seq1=$(field seq)
drv a sa out 1 0x1002 && fail "the same outbound key was accepted twice"
must a life out 1 0x1002 1000000
ip netns exec "$A" ping -c 2 -w 10 -q 10.255.0.1 >/dev/null || fail "GRE ping after sa_update"
must a stats out 1 0x1002
[ "$(field seq)" -gt "$seq1" ] || fail "sequence did not keep running: $seq1 -> $REPLY"

step "restart: A's driver crashes, a new instance adopts; no ping lost"
ip netns exec "$A" ping -c 25 -i 0.2 -w 20 10.255.0.1 >"$NS_TMP/ping.restart" 2>&1 &
pingpid=$!
sleep 1
must a crash
exec 3>&-
drv_open a2_k 3
must a2_k tunnel 1 gre 192.0.2.1 192.0.2.2 10.255.0.0 10.255.0.1 mwgre
must a2_k tunnel 2 vxlan 192.0.2.1 192.0.2.2 10.255.1.0 10.255.1.1 mwvx,42
for s in "out 1 0x1001" "out 1 0x1002" "in 1 0x2001" "out 2 0x1101" "in 2 0x2101"; do
	must a2_k sa $s
done
grep -q 'SA 4098 adopted' "$NS_TMP/a2_k.log" || fail "SA 0x1002 not adopted: $(cat "$NS_TMP/a2_k.log")"
wait "$pingpid"
grep -q ' 0% packet loss' "$NS_TMP/ping.restart" ||
	fail "ping lost packets across the restart: $(tail -n 3 "$NS_TMP/ping.restart")"
must a2_k stats out 1 0x1002
[ "$(field active)" = 1 ] || fail "0x1002 not active after adoption: $REPLY"
[ "$(field seq)" -gt "$seq1" ] || fail "sequence reset by the restart: $seq1 -> $REPLY"

step "stop with keep_at_fini: A's driver quits, a new instance adopts; no ping lost"
ip netns exec "$A" ping -c 25 -i 0.2 -w 20 10.255.0.1 >"$NS_TMP/ping.stop" 2>&1 &
pingpid=$!
sleep 1
must a2_k stats out 1 0x1002
seq2=$(field seq)
must a2_k quit
exec 3>&-
ip -n "$A" -o link show mwgre >/dev/null 2>&1 || fail "fini with keep removed the GRE device"
drv_open a3 3
must a3 tunnel 1 gre 192.0.2.1 192.0.2.2 10.255.0.0 10.255.0.1 mwgre
must a3 tunnel 2 vxlan 192.0.2.1 192.0.2.2 10.255.1.0 10.255.1.1 mwvx,42
for s in "out 1 0x1001" "out 1 0x1002" "in 1 0x2001" "out 2 0x1101" "in 2 0x2101"; do
	must a3 sa $s
done
grep -q 'SA 4098 adopted' "$NS_TMP/a3.log" || fail "SA 0x1002 not adopted after the stop: $(cat "$NS_TMP/a3.log")"
wait "$pingpid"
grep -q ' 0% packet loss' "$NS_TMP/ping.stop" ||
	fail "ping lost packets across the stop: $(tail -n 3 "$NS_TMP/ping.stop")"
must a3 stats out 1 0x1002
[ "$(field active)" = 1 ] || fail "0x1002 not active after the stop: $REPLY"
[ "$(field seq)" -gt "$seq2" ] || fail "sequence reset by the stop: $seq2 -> $REPLY"

step "fail closed: active SAs deleted (backend and by hand), no cleartext"
cap=$NS_TMP/underlay.pcap
ns_bg "$B" dumpcap -q -i vb -w "$cap" -f "proto 47 or udp port 4789 or icmp"
cappid=$NS_PID
wait_until 30 test -s "$cap" || fail "dumpcap did not start"
must a3 del out 1 0x1002
ip -n "$A" xfrm state delete src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1101 ||
	fail "ip xfrm state delete"
ip netns exec "$A" ping -c 3 -W 1 -q 10.255.0.1 >/dev/null 2>&1 && fail "GRE passed with no SA"
ip netns exec "$A" ping -c 3 -W 1 -q 10.255.1.1 >/dev/null 2>&1 && fail "VXLAN passed with no SA"
# Markers on the underlay: the capture was live all along.
ip netns exec "$A" ping -c 3 -i 0.2 -q 192.0.2.2 >/dev/null || fail "underlay ping"
sleep 1
ns_stop "$cappid"
leaks=$(tshark -r "$cap" -Y 'gre || vxlan || udp.dstport == 4789' 2>/dev/null | wc -l)
marks=$(tshark -r "$cap" -Y 'icmp && ip.dst == 192.0.2.2' 2>/dev/null | wc -l)
[ "$marks" -ge 3 ] || fail "capture missed the markers ($marks)"
[ "$leaks" -eq 0 ] || fail "$leaks cleartext GRE/VXLAN frames on the underlay"
must a3 stats out 2 0x1101
[ "$(field hard)" = 1 ] || fail "SA deleted by hand not reported gone: $REPLY"

step "fini removes everything of ours"
must a3 quit
must b quit
for n in "$A" "$B"; do
	[ -z "$(ip -n "$n" xfrm state)" ] || fail "$n: SAs left: $(ip -n "$n" xfrm state)"
	[ -z "$(ip -n "$n" xfrm policy)" ] || fail "$n: policies left: $(ip -n "$n" xfrm policy)"
	ip -n "$n" -o link show | grep -q 'mw' && fail "$n: devices left"
done

step "reboot: a seq file keeps a re-added outbound key above its mark"
# The file's one record: digest (16 bytes) then the mark, big-endian.
seqf=$NS_TMP/a.seq
mark() { od -An -tu8 --endian=big -j48 -N8 "$seqf" | tr -d ' '; }
export XFRM_DRIVE_SEQ="$seqf"
drv_start c "$A" 5
must c tunnel 1 gre 192.0.2.1 192.0.2.2 10.255.0.0 10.255.0.1 mwgre
must c sa out 1 0x3001
[ "$(mark)" = $((1 << 30)) ] || fail "first mark: $(mark)"
# The kernel counter past half a step: the next stats read moves the mark.
must c aeset 192.0.2.2 0x3001 $(((1 << 29) + 16))
must c stats out 1 0x3001
[ "$(field seq)" = $(((1 << 29) + 16)) ] || fail "aeset: $REPLY"
wait_until 10 sh -c "[ \"\$(od -An -tu8 --endian=big -j48 -N8 '$seqf' | tr -d ' ')\" = $((1 << 31)) ]" ||
	fail "the mark did not follow the kernel counter: $(mark)"
# fini without keep: the SA is gone from the kernel, as after a reboot.
must c quit
[ -z "$(ip -n "$A" xfrm state)" ] || fail "SA left: $(ip -n "$A" xfrm state)"
drv_start d "$A" 6
must d tunnel 1 gre 192.0.2.1 192.0.2.2 10.255.0.0 10.255.0.1 mwgre
must d sa out 1 0x3001
must d stats out 1 0x3001
[ "$(field seq)" -ge $((1 << 31)) ] ||
	fail "the same key re-added below its mark (nonce reuse): $REPLY"
oseq=$(ip -n "$A" -s xfrm state | sed -n 's/.*oseq \(0x[0-9a-f]*\).*/\1/p')
echo "kernel oseq after the reboot: $oseq (mark was $((1 << 31)))"
[ "$(mark)" = $((3 << 30)) ] || fail "second instance's mark: $(mark)"
must d quit
unset XFRM_DRIVE_SEQ

step "bench: 1,000 SA installs through sa_add"
[ -x "$BENCH" ] || fail "$BENCH not built (make bench)"
"$BENCH" 1000 || fail "bench"
step "pass"
