#!/bin/sh
# nat.sh — NAT traversal (issue 9 item 7): site c sits behind an nftables
# NAT in its own namespace (ESP port 4500 mapped to public port 4501,
# the rest masqueraded; tests/edge/sites_lib.sh lab_nat_map).
# Checks: c reaches every site and every site reaches c; then, under a
# running ping in each direction (every 50 ms), the NAT forgets every
# mapping mid-flow (conntrack flushed, as a NAT reboot does) and traffic
# resumes within RECOVER_BOUND_MS (3 s: before BGP's 3 s hold timer could
# take the routes down).  Prints the recovery time and the longest gaps.
#
# NAT_PORT_CHANGE=1 adds the harder case: the NAT maps c's ESP to a new
# public port (4502) and flushes, so the peers must follow c's new
# address from authenticated ESP.  Off in `make test` until meshwan-edge
# follows a moved mapping (/work/coord/demo-findings.md, finding 3).
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
RECOVER_BOUND_MS=${RECOVER_BOUND_MS:-3000}
lab_test_init nat
[ -x "$MESHWAN_TOP/$BUILD/tests/edge/ct_flush" ] || lab_fail "$BUILD/tests/edge/ct_flush not built"
lab_three_sites
lab_wait_pings 60 || lab_fail "LAN hosts do not all ping after 60 s"
for o in a b; do
	lab_ping c "$o" || lab_fail "c does not reach $o"
	lab_ping "$o" c || lab_fail "$o does not reach c"
done
# The peers reach c only through the NAT's public address and port.
ip netns exec "$LAB_P-nat-c" nft list ruleset | grep -q 'snat to 198.18.3.2:4501' || lab_fail "NAT rule"
ip netns exec "$LAB_P-nat-c" cat /proc/net/nf_conntrack | grep -q 'udp .*dport=4501' ||
	lab_fail "no ESP flow through the NAT's port 4501"

c_pings() {
	lab_ping c a && lab_ping a c && lab_ping c b && lab_ping b c
}
gap() {
	awk '/icmp_seq=/ { match($0, /icmp_seq=[0-9]+/); s = substr($0, RSTART + 9, RLENGTH - 9) + 0
		if (n++ && s - prev - 1 > g) g = s - prev - 1; prev = s } END { print g * 50 }' "$1"
}
# change WHAT CMD... — under pings c->a and b->c, run CMD; wait until
# c's pings pass again; print the figures; fail above the bound.
change() {
	_what=$1
	shift
	ip netns exec "$LAB_P-lan-c" ping -D -n -i 0.05 -W 1 "$(lab_lan_addr a)" >"$LAB_DIR/ping_ca.out" 2>&1 &
	_p1=$!
	ip netns exec "$LAB_P-lan-b" ping -D -n -i 0.05 -W 1 "$(lab_lan_addr c)" >"$LAB_DIR/ping_bc.out" 2>&1 &
	_p2=$!
	sleep 1
	echo "NAT in front of c: $_what"
	_t0=$(lab_ms)
	"$@"
	lab_wait 30 c_pings || lab_fail "c's traffic does not resume within 30 s of: $_what"
	_rec=$(( $(lab_ms) - _t0 ))
	sleep 1
	kill -INT "$_p1" "$_p2" 2>/dev/null
	wait "$_p1" "$_p2" 2>/dev/null
	echo "figure: NAT $_what -> every c ping passing again: ${_rec} ms; longest gap c->a $(gap "$LAB_DIR/ping_ca.out") ms, b->c $(gap "$LAB_DIR/ping_bc.out") ms (pings every 50 ms)"
	[ "$_rec" -le "$RECOVER_BOUND_MS" ] || lab_fail "recovery took ${_rec} ms, above ${RECOVER_BOUND_MS} ms"
}

change "mappings flushed (conntrack)" lab_ct_flush c
lab_wait_pings 20 || lab_fail "not every pair pings after the flush"

if [ "${NAT_PORT_CHANGE:-0}" = 1 ]; then
	remap() { lab_nat_map c 4502 && lab_ct_flush c; }
	change "ESP now mapped to port 4502, conntrack flushed" remap
	ip netns exec "$LAB_P-nat-c" cat /proc/net/nf_conntrack | grep -q 'udp .*dport=4502' ||
		lab_fail "the peers do not send to c's new port 4502"
	lab_wait_pings 20 || lab_fail "not every pair pings after the port change"
fi
echo "nat: PASS"
