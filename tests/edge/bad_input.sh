#!/bin/sh
# bad_input.sh — issue 9 "Bad input": a malformed intent from a test
# controller, an intent with overlapping prefixes, FRR not running.  Each
# must be answered with a failed ack that carries a reason, reach the
# controller, and leave the site forwarding on its previous state.
#
# Two sites as in agent_two_sites.sh (tests/edge/agent_lib.sh: real FRR,
# the ASan/UBSan agent).  Site 1's agent talks to tests/edge/badctl, a
# test controller that relays the real controller (so keys, SAs and BGP
# work as usual, and the controller gets the edge's acks) and, on a
# command, sends the edge a message of its own:
#   (a) bytes that are not protobuf; a snapshot with a /30 for the
#       tunnel's /31, tunnel id 0, a /33 allowed prefix, an unknown
#       encapsulation; a delta from a version the edge does not hold;
#   (b) snapshots with overlapping prefixes: the tunnel /31 inside the
#       site's LAN, the peer allowed half of the site's own LAN, a second
#       peer allowed a prefix that covers the first peer's, a second
#       tunnel on the same /31.
# For each: a failed ack with the expected reason (seen by badctl), the
# controller logs it and shows it in GET /api/v1/edges/{id} (last_failure:
# that version and reason, still there after the later ok acks), the agent is alive, LAN 1 still pings LAN 2 and the
# tunnel keeps its SPIs.  The controller's resyncs then bring an ok ack.
#   (d) a RekeyOrder the wire checks refuse (SPI 17): a failed ack of that
#       rekey step (tunnel, epoch, step, reason), logged by the
#       controller as a failed step; never a failed intent ack; the SAs
#       and last_failure unchanged.  (Runs after (a) and (b), before (c).)
#   (c) site 1's zebra, bgpd and bfdd stopped, then a LAN prefix added
#       (every intent now needs FRR): failed acks "frr: ..." reach the
#       controller's GET /api/v1/edges/{id} (status.last_ack_error), the
#       tunnel still carries pings with the same SPIs; FRR started again:
#       ok ack, BGP back, LAN pings back, the error cleared.
# A ping across the tunnel's /31 runs through all of it and loses
# nothing (but the one in flight when it is stopped); both agents stop
# cleanly with no sanitizer report.
#   Zebra's view: site 2's vtysh is a wrapper whose first two answers to
# `show interface json` lack the tunnel's addresses, as FRR 8.4's zebra
# does when it drops an address event: the agent must see it, announce
# the addresses again and stop checking once zebra has them.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"

BADCTL="$MESHWAN_TOP/${BUILD:-build}/tests/edge/badctl"
[ -x "$BADCTL" ] || fail "missing $BADCTL"

ctl_start </dev/null
site_add 1 alpha
site_add 2 beta

cat >"$NS_TMP/vtysh-hide" <<EOF
#!/bin/sh
case "\$*" in
*"show interface json"*)
	n=\$(cat "$NS_TMP/hide.n" 2>/dev/null || echo 0)
	if [ "\$n" -lt 2 ]; then
		echo \$((n + 1)) >"$NS_TMP/hide.n"
		/usr/bin/vtysh "\$@" | /usr/bin/jq 'with_entries(if (.key | startswith("mw")) then .value.ipAddresses = [] else . end)'
		exit 0
	fi ;;
esac
exec /usr/bin/vtysh "\$@"
EOF
chmod 755 "$NS_TMP/vtysh-hide"
echo "vtysh = $NS_TMP/vtysh-hide" >>"$NS_TMP/e2/edge.conf"

# badctl's server certificate, from the controller's CA (the agent checks
# the name meshwan-controller, as for the real one).
PX="$NS_TMP/px"
mkdir -p "$PX"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$PX/key.pem" -subj /CN=meshwan-controller -out "$PX/req.pem" \
    2>/dev/null || fail "badctl key"
printf 'subjectAltName=DNS:meshwan-controller,IP:10.99.0.1\nextendedKeyUsage=serverAuth\n' >"$PX/ext"
openssl x509 -req -in "$PX/req.pem" -CA "$CTL/ca/ca.crt" -CAkey "$CTL/ca/ca.key" \
    -CAcreateserial -days 1 -extfile "$PX/ext" -out "$PX/cert.pem" 2>/dev/null ||
	fail "badctl certificate"
mkfifo "$PX/cmd"
ns_bg "$W" "$BADCTL" 10.99.0.1:0 10.99.0.1:7443 "$CTL/ca/ca.crt" \
    "$PX/cert.pem" "$PX/key.pem" "$NS_TMP/e1/state/edge.crt" \
    "$NS_TMP/e1/state/edge.key" "$PX/cmd" >"$PX/log" 2>&1
BADCTL_PID=$NS_PID
wait_until 10 grep -q '^badctl: listening [1-9]' "$PX/log" ||
	fail "badctl did not start: $(cat "$PX/log")"
PORT=$(sed -n 's/^badctl: listening //p' "$PX/log")
sed -i "s/^controller = .*/controller = 10.99.0.1:$PORT/" "$NS_TMP/e1/edge.conf"

agent_start 1
agent_start 2
up() { status_has "$1" '.tunnels | length == 1 and .[0].state == "up"'; }
bgp_up() { status_has "$1" '.tunnels[0].bgp.state == "established"'; }
for n in 1 2; do
	wait_until 40 up "$n" || { agent_logs; cat "$PX/log"; fail "site $n's tunnel not up"; }
done
wait_until 30 lan_ping 1 2 || { agent_logs; fail "LAN 1 cannot ping LAN 2"; }
for n in 1 2; do
	wait_until 30 bgp_up "$n" || { agent_logs; fail "BGP not up on site $n"; }
done
grep -q '^upstream open' "$PX/log" || fail "site 1 does not go through badctl"

# Zebra's view, checked after each change: site 2 saw its addresses
# missing (the wrapper) and announced them again, site 1 found them.
zebra_ok() { grep -q "zebra holds every tunnel address" "$NS_TMP/e$1/agent.log"; }
wait_until 30 zebra_ok 1 || { agent_logs; fail "site 1 did not check zebra's view"; }
wait_until 30 zebra_ok 2 || { agent_logs; fail "site 2 did not see zebra's view complete"; }
grep -q "zebra lacks 100\.64\.0\.[0-9]*/31 on mw1; addresses announced again" \
    "$NS_TMP/e2/agent.log" || { agent_logs; fail "site 2 did not announce the missing /31 again"; }
[ "$(cat "$NS_TMP/hide.n")" = 2 ] || fail "the vtysh wrapper was not asked twice"

# The SPIs of site 1's tunnel, and its peer's /31 address.
spis() { status 1 | jq -c '[.tunnels[0].sas[] | .spi] | sort'; }
SPIS=$(spis)
[ -n "$SPIS" ] && [ "$SPIS" != "[]" ] || fail "no SAs in site 1's status: $(status 1)"
DEV=$(status 1 | jq -r '.tunnels[0].device')
LOCAL=$(ip -n "$E1" -4 -j addr show dev "$DEV" | jq -r '.[0].addr_info[0].local')
PEER="${LOCAL%.*}.$(( ${LOCAL##*.} ^ 1 ))"
ip netns exec "$E1" ping -c 1 -W 1 "$PEER" >/dev/null ||
	fail "no ping across the tunnel to $PEER"
# A ping across the tunnel for the whole test (5/s).
ns_bg "$E1" ping -i 0.2 -W 1 "$PEER" >"$NS_TMP/tping" 2>&1
TPING=$NS_PID

alive() { kill -0 "$AGENT_PID_1" 2>/dev/null || { agent_logs; fail "agent 1 died ($1)"; }; }
same_spis() {
	[ "$(spis)" = "$SPIS" ] || { status 1; fail "SPIs changed after $1: $(spis), were $SPIS"; }
}
lines() { wc -l <"$PX/log"; }

# case NAME REASON_REGEX — inject NAME; a failed ack matching the
# regex must come back, reach the controller, and change nothing.
case_bad() {
	_name=$1 _want=$2
	_from=$(lines)
	_clog=$(wc -l <"$CTL/ctld.log")
	echo "$_name" >"$PX/cmd"
	after() { tail -n "+$((_from + 1))" "$PX/log"; }
	injected() { after | grep -q "^inject $_name version="; }
	wait_until 10 injected || fail "$_name not injected: $(after)"
	failed() { after | grep -q "^ack version=[0-9]* ok=0 reason="; }
	wait_until 10 failed || { agent_logs; fail "$_name: no failed ack: $(after)"; }
	_ack=$(after | grep -m1 "^ack version=[0-9]* ok=0 reason=")
	echo "$_name: $_ack"
	echo "$_ack" | grep -Eq "$_want" || fail "$_name: reason does not match /$_want/: $_ack"
	_v=$(echo "$_ack" | sed 's/^ack version=\([0-9]*\) .*/\1/')
	_r=$(echo "$_ack" | sed 's/^ack version=[0-9]* ok=0 reason=//')
	ctl_saw() {
		tail -n "+$((_clog + 1))" "$CTL/ctld.log" |
		    grep -qF "site $SITE_1 failed to apply version $_v: $_r"
	}
	# The controller logs an edge's first 5 bad acks per 10 s and counts
	# the rest (a hostile edge cannot fill its log): beyond that, the
	# 5th-last bad-ack line of this site must be under 10 s old.
	limited() {
		grep -E "session: site $SITE_1:? (failed to apply|acked version|convergence hash)" \
		    "$CTL/ctld.log" | tail -n 5 >"$NS_TMP/badacks"
		[ "$(wc -l <"$NS_TMP/badacks")" -eq 5 ] || return 1
		_t5=$(head -n 1 "$NS_TMP/badacks" | cut -d' ' -f1)
		[ $(( $(date +%s) - $(date -d "$_t5" +%s) )) -le 12 ]
	}
	logged() { ctl_saw || limited; }
	wait_until 10 logged || fail "$_name: the controller did not log the failed ack: $(tail -n 5 "$CTL/ctld.log")"
	# ... and shows it in REST (last_failure), version and reason.
	rest_saw() {
		[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
		jq -e --argjson v "$_v" --arg r "$_r" \
		    '.last_failure.version == $v and .last_failure.reason == $r and .last_failure.at > 0' \
		    "$NS_TMP/out" >/dev/null
	}
	wait_until 5 rest_saw || fail "$_name: last_failure not in GET /edges/$SITE_1: $(jq -c .last_failure "$NS_TMP/out")"
	LAST_V=$_v LAST_R=$_r
	alive "$_name"
	lan_ping 1 2 || wait_until 3 lan_ping 1 2 || fail "LAN 1 cannot ping LAN 2 after $_name"
	same_spis "$_name"
}

# (a) malformed intents
case_bad garbage 'controller message'
case_bad inner30 'inner_local: length 30, must be 31'
case_bad tunnel0 'tunnels\[0\]\.id: 0 must be > 0'
case_bad prefix33 'allowed_prefixes\[0\]'
case_bad encap9 'encap'
case_bad delta_far 'delta .*from version [0-9]+.*holds'
# (b) overlapping prefixes
case_bad lan31 'overlap'
case_bad peer_own_lan 'overlap'
case_bad two_peers 'overlap'
case_bad same31 'overlap'

# The controller resyncs after failed acks (4 at once, then one per
# 10 s): the edge acks its snapshot and is converged again.
recovered() { after | sed -n '/ok=0 reason=/,$p' | grep -q "^ack version=[0-9]* ok=1"; }
wait_until 30 recovered || fail "no ok ack after the last failed one: $(after)"

conv() {
	[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
	jq -e '.connected and .converged' "$NS_TMP/out" >/dev/null
}
wait_until 30 conv || fail "site 1 not converged after the bad intents: $(cat "$NS_TMP/out")"
# The last failure (same31) is still shown after the ok acks, in both routes.
jq -e --argjson v "$LAST_V" --arg r "$LAST_R" '.last_failure.version == $v and .last_failure.reason == $r' \
    "$NS_TMP/out" >/dev/null || fail "last_failure gone after the ok ack: $(jq -c .last_failure "$NS_TMP/out")"
[ "$(api GET /api/v1/edges)" = 200 ] && jq -e --argjson id "$SITE_1" --argjson v "$LAST_V" \
    '.edges[] | select(.site_id == $id) | .last_failure.version == $v and (.last_failure.reason | test("overlap"))' \
    "$NS_TMP/out" >/dev/null || fail "last_failure not in GET /edges: $(cat "$NS_TMP/out")"
echo "REST after recovery: $(jq -c --argjson id "$SITE_1" '.edges[] | select(.site_id == $id) | .last_failure' "$NS_TMP/out")"

# (d) a malformed rekey order (SPI 17, reserved): refused as that rekey
# step, not as an intent -- a failed rekey ack naming tunnel, epoch and
# step, which the controller logs as a failed step; no failed intent ack,
# no "failed to apply version", last_failure unchanged; the old SAs stay
# and forward.
_from=$(lines)
_clog=$(wc -l <"$CTL/ctld.log")
echo rekey_spi17 >"$PX/cmd"
after() { tail -n "+$((_from + 1))" "$PX/log"; }
rk_injected() { after | grep -q "^inject rekey_spi17 tunnel="; }
wait_until 10 rk_injected || fail "rekey_spi17 not injected: $(after)"
rk_failed() { after | grep -q "^rekey-ack .* ok=0 reason="; }
wait_until 10 rk_failed || { agent_logs; fail "rekey_spi17: no failed rekey ack: $(after)"; }
_rk=$(after | grep -m1 "^rekey-ack .* ok=0 reason=")
echo "rekey_spi17: $_rk"
_inj=$(after | grep -m1 "^inject rekey_spi17 tunnel=")
_t=$(echo "$_inj" | sed 's/.* tunnel=\([0-9]*\) .*/\1/')
_e=$(echo "$_inj" | sed 's/.* epoch=\([0-9]*\).*/\1/')
echo "$_rk" | grep -Eq "^rekey-ack tunnel=$_t epoch=$_e step=install-inbound ok=0 reason=bad rekey order: rekey\.spi: 17" ||
	fail "rekey_spi17: the ack does not name the step and the reason: $_rk"
rk_ctl() {
	tail -n "+$((_clog + 1))" "$CTL/ctld.log" |
	    grep -q "site $SITE_1: rekey install-inbound of tunnel $_t epoch $_e failed: bad rekey order: "
}
wait_until 10 rk_ctl || fail "rekey_spi17: the controller did not log the failed step: $(tail -n 5 "$CTL/ctld.log")"
# Give a wrong intent ack time to show, then check there was none.
lan_ping 1 2 || wait_until 3 lan_ping 1 2 || fail "LAN 1 cannot ping LAN 2 after rekey_spi17"
after | grep "^ack version=[0-9]* ok=0" && fail "rekey_spi17 was acked as a failed intent"
tail -n "+$((_clog + 1))" "$CTL/ctld.log" | grep "failed to apply version" &&
	fail "rekey_spi17: the controller took it for an intent failure"
[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] && jq -e --argjson v "$LAST_V" --arg r "$LAST_R" \
    '.last_failure.version == $v and .last_failure.reason == $r' "$NS_TMP/out" >/dev/null ||
	fail "rekey_spi17 changed last_failure: $(jq -c .last_failure "$NS_TMP/out")"
alive rekey_spi17
same_spis rekey_spi17

# (c) FRR not running.
for d in bfdd bgpd zebra; do
	kill "$(cat "$NS_TMP/e1/frr/$d.pid")" || fail "stopping site 1's $d"
done
frr_gone() {
	for d in bfdd bgpd zebra; do
		kill -0 "$(cat "$NS_TMP/e1/frr/$d.pid")" 2>/dev/null && return 1
	done
	return 0
}
wait_until 10 frr_gone || fail "site 1's FRR did not stop"
rm -f "$NS_TMP/e1/frr/"*.vty "$NS_TMP/e1/frr/zserv.api"
_from=$(lines)
st=$(api POST "/api/v1/sites/$SITE_1/prefixes" '{"prefix":"10.1.1.0/24"}')
[ "$st" = 201 ] || fail "adding a prefix gave $st: $(cat "$NS_TMP/out")"
after() { tail -n "+$((_from + 1))" "$PX/log"; }
frr_failed() { after | grep -q "^ack version=[0-9]* ok=0 reason=frr: "; }
wait_until 20 frr_failed || { agent_logs; fail "no failed ack while FRR is down: $(after)"; }
echo "FRR down: $(after | grep -m1 '^ack version=[0-9]* ok=0 reason=frr: ')"
rest_err() {
	[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
	jq -e '(.status.last_ack_error | test("^frr: ")) and (.last_failure.reason | test("^frr: "))' "$NS_TMP/out" >/dev/null
}
wait_until 25 rest_err || fail "GET /edges/$SITE_1 shows no FRR error: $(cat "$NS_TMP/out")"
echo "REST: $(jq -c .status.last_ack_error "$NS_TMP/out")"
alive "FRR down"
same_spis "FRR down"
ip netns exec "$E1" ping -c 1 -W 1 "$PEER" >/dev/null ||
	fail "no ping across the tunnel while FRR is down"

_from=$(lines)
t_frr=$(ms)
start_frr "$E1" "$NS_TMP/e1/frr"
frr_ok() { after | grep -q "^ack version=[0-9]* ok=1"; }
wait_until 40 frr_ok || { agent_logs; fail "no ok ack after FRR came back: $(after)"; }
t_ack=$(( $(ms) - t_frr ))
wait_until 45 bgp_up 1 || { agent_logs; fail "BGP not back on site 1"; }
wait_until 45 lan_ping 1 2 || fail "LAN 1 cannot ping LAN 2 after FRR came back"
echo "figure: FRR started again -> ok ack ${t_ack} ms, -> LAN ping $(( $(ms) - t_frr )) ms"
rest_clear() {
	[ "$(api GET "/api/v1/edges/$SITE_1")" = 200 ] &&
	jq -e '.converged and .status.last_ack_error == null and (.last_failure.reason | test("^frr: "))' "$NS_TMP/out" >/dev/null
}
wait_until 25 rest_clear || fail "the FRR error did not clear: $(cat "$NS_TMP/out")"
same_spis "FRR back"

kill -INT "$TPING"
wait "$TPING"
tail -n 3 "$NS_TMP/tping"
sent=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$NS_TMP/tping")
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NS_TMP/tping")
echo "figure: ping across the tunnel: $got of $sent answered"
[ -n "$sent" ] && [ "$sent" -gt 50 ] || fail "the tunnel ping did not run"
# The one in flight when ping is stopped may be counted lost.
[ "$got" -ge $((sent - 1)) ] || fail "the tunnel lost pings: $got of $sent"

agent_stop 1
agent_stop 2
ns_stop "$BADCTL_PID" || fail "badctl did not stop"
agent_check_sanitizers
echo "bad_input: PASS"
