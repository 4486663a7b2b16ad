#!/bin/sh
# revoke_site.sh — revoking a site removes it from every peer, and the
# other tunnels are untouched (issue 9), on the three-site lab of
# `make demo` (tests/edge/sites_lib.sh: a two links, b plain, c behind
# NAT).  Site c is revoked through REST (PATCH /sites/{id} revoked).
# Checks, on the edges themselves: a and b drop every tunnel to c (the
# device, the BGP neighbour, the route to c's LAN, the SAs in
# `meshwan-edge status --json`); c's session is closed and refused when
# it comes back (controller log and /metrics, c's own status); the
# tunnels between a and b keep their SAs (same SPIs and epochs at both
# ends) and a<->b pings never stop (polled throughout).  Prints the time
# from the REST call to c gone from both peers.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/edge/scen_lib.sh"
lab_test_init revoke
lab_three_sites
lab_wait_pings 60 || lab_fail "the three sites do not ping after 60 s"
lab_wait 30 lab_converged || lab_fail "three sites not converged"
lab_wait 60 scen_settled a b c || lab_fail "SAs still rekeying or draining: $(scen_sas a; scen_sas b)"
A=$(lab_site_id a) B=$(lab_site_id b) C=$(lab_site_id c)
c_tunnels=$(lab_api GET "/api/v1/tunnels?site=$C" | jq -r '.tunnels[].id' | tr '\n' ' ')
[ "$(echo $c_tunnels | wc -w)" = 3 ] || lab_fail "site c should have 3 tunnels: $c_tunnels"
ab_before="$(scen_out_spis a "$B")
$(scen_out_spis b "$A")"
[ "$(echo "$ab_before" | wc -l)" = 4 ] ||
	lab_fail "a-b: expected 2 tunnels x 2 directions: $ab_before"
echo "a<->b SAs before (tunnel spi epoch):"; echo "$ab_before"

scen_watch_start "a>b b>a"
t0=$(lab_ms)
lab_api PATCH "/api/v1/sites/$C" '{"revoked":true}' >/dev/null ||
	lab_fail "revoking c: $(cat "$LAB_DIR/api.out")"

# a and b: nothing of c left.
c_gone() {
	for _s in a b; do
		for _t in $c_tunnels; do
			ip -n "$LAB_P-$_s" link show "mw$_t" >/dev/null 2>&1 && return 1
		done
		lab_vtysh "$_s" -c 'show ip route 10.3.0.0/24 json' | jq -e 'length == 0' >/dev/null || return 1
		# a and b share two tunnels (a's inet and mpls to b's inet).
		[ "$(lab_vtysh "$_s" -c 'show bgp summary json' | jq '.ipv4Unicast.peers | length')" = 2 ] ||
			return 1
		scen_status "$_s" | jq -e --argjson c "$C" \
			'[.tunnels[]? | select(.peer_site == $c)] | length == 0' >/dev/null || return 1
	done
}
lab_wait 30 c_gone || lab_fail "c's tunnels, routes, BGP neighbours or SAs still on a or b:
$(scen_sas a; scen_sas b; lab_vtysh a -c 'show ip route 10.3.0.0/24')"
t_gone=$(( $(lab_ms) - t0 ))

# c: its stream was closed and its next ones are refused.
lab_wait 20 grep -q "site-$C): site revoked" "$LAB_DIR/controller.log" ||
	lab_fail "the controller did not refuse c's session after the revocation"
refused() {
	lab_api GET /metrics | awk '/^meshwan_rpc_events_total\{event="session_refused"\}/ { exit !($2 > 0) }'
}
lab_wait 10 refused || lab_fail "/metrics counts no refused session"
c_off() { scen_status c | jq -e '.controller.state != "connected"' >/dev/null; }
lab_wait 10 c_off || lab_fail "c's agent still says connected: $(scen_status c | jq .controller)"
lab_api GET /api/v1/edges | jq -e --argjson c "$C" '.edges[] | select(.site_id == $c) | .connected == false' \
	>/dev/null || lab_fail "GET /edges shows c connected"
! lab_ping a c || lab_fail "a still reaches c's LAN"

# a and b keep their tunnels: same SAs as before, and the pings never
# stopped (a few more rounds after the revocation settled).
scen_watch_more 3 || lab_fail "the ping watcher is stuck"
scen_watch_stop 5
ab_after="$(scen_out_spis a "$B")
$(scen_out_spis b "$A")"
[ "$ab_after" = "$ab_before" ] ||
	lab_fail "the a<->b SAs changed with c's revocation: before [$ab_before] after [$ab_after]"
echo "a<->b kept their SPIs and epochs"
echo "figure: REST revoke to site c gone from a and b: ${t_gone} ms"
echo "revoke_site: PASS"
