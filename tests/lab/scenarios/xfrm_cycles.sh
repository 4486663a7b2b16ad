#!/bin/sh
# xfrm_cycles.sh — (lab) 100 add/remove cycles of a tunnel through the
# xfrm backend (overlay/xfrm/), driven through overlay.h by
# tests/lab/xfrm_drive, one instance per namespace:
#
#   netns A  va 192.0.2.11/24 ====veth==== vb 192.0.2.12/24  netns B
#
# Each cycle: tunnel_add (GRE device, policies), an outbound and an
# inbound SA on each side, sa_switch_out, tunnel_del.  The first cycle
# carries a ping (the cycles are not empty ones); after the last, the
# counts of SAs, policies, devices and routes in both namespaces are
# what they were before the first.  Prints the time the cycles took.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"

BUILD=${BUILD:-build}
DRIVE=$BUILD/tests/lab/xfrm_drive
[ -x "$DRIVE" ] || fail "$DRIVE not built (make)"
t0=$(date +%s)
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

ns_init
ns_need ip ping
A=$(ns_name xca)
B=$(ns_name xcb)
ns_add "$A"
ns_add "$B"
ns_veth "$A" va "$B" vb

. "$MESHWAN_TOP/tests/lab/drv_lib.sh"

drv_start a "$A" 3
drv_start b "$B" 4

# counts NS: SAs, policies, devices and routes the kernel holds in NS.
counts() {
	printf 'sas %s policies %s devices %s routes %s' \
	    "$(ip -n "$1" xfrm state | grep -c '^src ')" \
	    "$(ip -n "$1" xfrm policy | grep -c '^src ')" \
	    "$(ip -n "$1" -o link | wc -l)" \
	    "$(ip -n "$1" route show table all | wc -l)"
}
# drv_batch NAME FILE: every command of FILE at once; all must answer ok.
drv_batch() {
	_f=$NS_TMP/$1.out
	_c=$(lines "$_f")
	_n=$(lines "$2")
	eval "cat '$2' >&\$${1}_fd"
	wait_until 400 sh -c "test \$(wc -l <'$_f') -ge $((_c + _n))" ||
		fail "$1: $(( $(lines "$_f") - _c )) of $_n answers"
	_bad=$(tail -n +"$((_c + 1))" "$_f" | grep -vc '^ok')
	[ "$_bad" -eq 0 ] || fail "$1: $_bad commands failed: $(tail -n +"$((_c + 1))" "$_f" | grep -v '^ok' | head -n 3)"
}
CYCLES=${XFRM_CYCLES:-100}
step "$CYCLES add/remove cycles of a tunnel with its SAs on both sides"
tc0=$(date +%s)
ip -n "$A" addr add 192.0.2.11/24 dev va || fail "addr"
ip -n "$B" addr add 192.0.2.12/24 dev vb || fail "addr"
# The veths' IPv6 link-local routes (local table) appear only once their
# duplicate address detection ends, 1-2 s after the link came up: count
# from then, or a quick run takes that route for one left behind.
settled() {
	[ -z "$(ip -n "$A" -6 addr show tentative)" ] &&
	    [ -z "$(ip -n "$B" -6 addr show tentative)" ]
}
wait_until 10 settled || fail "IPv6 addresses still tentative: $(ip -n "$B" -6 addr show tentative)"
ip -n "$A" route show table all >"$NS_TMP/routes.a"
ip -n "$B" route show table all >"$NS_TMP/routes.b"
ca0=$(counts "$A")
cb0=$(counts "$B")
# The first cycle carries a ping, so the cycles are not empty ones.
must a tunnel 3 gre 192.0.2.11 192.0.2.12 10.255.2.0 10.255.2.1 mwcyc
must b tunnel 3 gre 192.0.2.12 192.0.2.11 10.255.2.1 10.255.2.0 mwcyc
must a sa out 3 0x4fff; must b sa in 3 0x4fff
must b sa out 3 0x5fff; must a sa in 3 0x5fff
must a switch 3 0x4fff; must b switch 3 0x5fff
ip netns exec "$A" ping -c 2 -w 10 -q 10.255.2.1 >/dev/null || fail "ping over the cycled tunnel"
must a tdel 3; must b tdel 3
: >"$NS_TMP/cyc.a"
: >"$NS_TMP/cyc.b"
i=1
while [ $i -lt "$CYCLES" ]; do
	so=$((0x5000 + i)) si=$((0x6000 + i))
	cat >>"$NS_TMP/cyc.a" <<-EOC
	tunnel 3 gre 192.0.2.11 192.0.2.12 10.255.2.0 10.255.2.1 mwcyc
	sa out 3 $so
	sa in 3 $si
	switch 3 $so
	tdel 3
	EOC
	cat >>"$NS_TMP/cyc.b" <<-EOC
	tunnel 3 gre 192.0.2.12 192.0.2.11 10.255.2.1 10.255.2.0 mwcyc
	sa out 3 $si
	sa in 3 $so
	switch 3 $si
	tdel 3
	EOC
	i=$((i + 1))
done
drv_batch a "$NS_TMP/cyc.a" &
cyca=$!
drv_batch b "$NS_TMP/cyc.b"
wait "$cyca" || fail "cycles on A"
[ "$(counts "$A")" = "$ca0" ] || fail "A after $CYCLES cycles: $(counts "$A"), before: $ca0; routes: $(ip -n "$A" route show table all | diff "$NS_TMP/routes.a" - | grep '^[<>]')"
[ "$(counts "$B")" = "$cb0" ] || fail "B after $CYCLES cycles: $(counts "$B"), before: $cb0; routes: $(ip -n "$B" route show table all | diff "$NS_TMP/routes.b" - | grep '^[<>]')"
echo "A: $ca0; B: $cb0 (before and after $CYCLES cycles)"
echo "figure: $CYCLES cycles in $(( $(date +%s) - tc0 )) s"

step "fini removes everything of ours"
must a quit
must b quit
for n in "$A" "$B"; do
	[ -z "$(ip -n "$n" xfrm state)" ] || fail "$n: SAs left: $(ip -n "$n" xfrm state)"
	[ -z "$(ip -n "$n" xfrm policy)" ] || fail "$n: policies left"
done
step "pass"
