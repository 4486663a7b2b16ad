#!/bin/sh
# hijack.sh — a site announcing another site's LAN prefix is filtered by
# every peer and traffic is not diverted (issue 9), on the three-site lab
# of `make demo` (tests/edge/sites_lib.sh).
#
# Site c's FRR is configured by hand (vtysh), as a compromised or
# misconfigured site would be: it originates b's LAN 10.2.0.0/24 and the
# more specific 10.2.0.0/25 (which would win by longest match) and lets
# them out past its outbound list.
# Checks: both prefixes reach a and b from c (FRR's received-but-filtered
# routes of every tunnel to c) and are dropped there by the inbound
# lists; a's FRR and kernel still route 10.2.0.0/24 through its tunnels
# to b only, and neither a nor b has a route to the /25; a and b report
# the filtered prefixes (agent log and `prefixes_filtered` in
# `meshwan-edge status --json`, /metrics and, per tunnel, the
# controller's GET /api/v1/edges/{id}); pings from a to b's LAN
# host keep working throughout (c has no such host, so a diverted ping
# would be lost).
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
. "$MESHWAN_TOP/tests/edge/scen_lib.sh"
lab_test_init hijack
LAB_EDGE_METRICS=127.0.0.1:9108   # prefixes_filtered is read there too
lab_three_sites
lab_wait_pings 60 || lab_fail "the three sites do not ping after 60 s"
lab_wait 30 lab_converged || lab_fail "three sites not converged"
A=$(lab_site_id a) B=$(lab_site_id b) C=$(lab_site_id c)
# Tunnel devices of a towards b, and each site's BGP neighbours on its
# tunnels to c (their /31 ends, from the edges' own status).
ab_devs=$(scen_status a | jq -r --argjson p "$B" '.tunnels[] | select(.peer_site == $p) | .device' | sort | tr '\n' ' ')
[ "$(echo $ab_devs | wc -w)" = 2 ] || lab_fail "a should have 2 tunnels to b: $ab_devs"
c_nbrs() {
	scen_status "$1" | jq -r --argjson p "$C" '.tunnels[] | select(.peer_site == $p) | .bgp.neighbor // empty'
}
established() {
	for _s in a b c; do
		_want=$(lab_api GET "/api/v1/tunnels?site=$(lab_site_id "$_s")" | jq '.tunnels | length')
		[ "$(lab_vtysh "$_s" -c 'show bgp ipv4 unicast summary json' |
			jq '[.peers[] | select(.state == "Established")] | length')" = "$_want" ] || return 1
	done
}
lab_wait 30 established || lab_fail "not every IPv4 BGP session is Established"
# The agents read FRR's BGP state at most every 3 s (AGENT_BGP_READ_MS),
# so their status may name the neighbours a little after FRR does.
nbrs_known() {
	[ "$(c_nbrs a | wc -l)" = 2 ] && [ "$(c_nbrs b | wc -l)" = 1 ]
}
lab_wait 20 nbrs_known ||
	lab_fail "neighbours towards c: a [$(c_nbrs a)] b [$(c_nbrs b)]"

scen_watch_start "a>b b>a a>c c>a"
scen_watch_more 1 || lab_fail "the ping watcher is stuck"

# --- c hijacks b's LAN.
asn=$(lab_vtysh c -c 'show bgp summary json' | jq '.ipv4Unicast.as')
lab_vtysh c -c 'configure terminal' -c "router bgp $asn" -c 'no bgp network import-check' \
	-c 'address-family ipv4 unicast' -c 'network 10.2.0.0/24' -c 'network 10.2.0.0/25' \
	-c exit -c exit \
	-c 'ip prefix-list MW-OUT-V4 seq 1000 permit 10.2.0.0/24' \
	-c 'ip prefix-list MW-OUT-V4 seq 1001 permit 10.2.0.0/25' -c end \
	-c 'clear bgp ipv4 unicast * soft out' >"$LAB_DIR/vtysh.out" 2>&1 ||
	lab_fail "vtysh on c: $(cat "$LAB_DIR/vtysh.out")"

# Both prefixes reach every peer of c, and every one filters them.
filtered_at() {
	for _n in $(c_nbrs "$1"); do
		lab_vtysh "$1" -c "show bgp ipv4 unicast neighbors $_n filtered-routes json" | jq -e '
			.receivedRoutes | has("10.2.0.0/24") and has("10.2.0.0/25")' >/dev/null || return 1
	done
}
lab_wait 20 filtered_at a || lab_fail "a's FRR did not receive and filter c's announcement"
lab_wait 20 filtered_at b || lab_fail "b's FRR did not receive and filter c's announcement"
echo "a and b received 10.2.0.0/24 and 10.2.0.0/25 from c and filtered them"

# The routes stay with the rightful site.
via_b() {
	lab_vtysh a -c 'show ip route 10.2.0.0/24 json' | jq -e --arg d "$ab_devs" '
		.["10.2.0.0/24"] | length == 1 and all(.[]; .protocol == "bgp" and .selected and
		all(.nexthops[]; (.interfaceName // "") as $i | $d | split(" ") | index($i)))' >/dev/null
}
via_b || lab_fail "a's route to 10.2.0.0/24 is not via its tunnels to b ($ab_devs): $(lab_vtysh a -c 'show ip route 10.2.0.0/24')"
for s in a b; do
	lab_vtysh "$s" -c 'show ip route 10.2.0.0/25 json' | jq -e 'length == 0' >/dev/null ||
		lab_fail "$s has a route to the hijacked 10.2.0.0/25: $(lab_vtysh "$s" -c 'show ip route 10.2.0.0/25')"
	lab_vtysh "$s" -c 'show bgp ipv4 unicast 10.2.0.0/25 json' | jq -e '(.paths // []) | length == 0' >/dev/null ||
		lab_fail "$s's BGP table holds c's 10.2.0.0/25"
done
lab_vtysh b -c 'show ip route 10.2.0.0/24 json' | jq -e '.["10.2.0.0/24"] | all(.[]; .protocol == "connected")' >/dev/null ||
	lab_fail "b's own LAN is routed elsewhere: $(lab_vtysh b -c 'show ip route 10.2.0.0/24')"
dev=$(ip -n "$LAB_P-a" route get 10.2.0.10 | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n 1)
case " $ab_devs " in *" $dev "*) ;; *) lab_fail "a's kernel sends 10.2.0.10 through $dev, not a tunnel to b" ;; esac
lab_ping a b || lab_fail "a no longer reaches b's LAN host"

# a and b report it: status (and /metrics), and the log.
reported() {
	scen_status "$1" | jq -e --argjson p "$C" '[.tunnels[] | select(.peer_site == $p)]
		| length > 0 and all(.[]; (.bgp.prefixes_filtered // 0) >= 2)' >/dev/null
}
lab_wait 20 reported a || lab_fail "a's status does not report c's filtered prefixes: $(scen_status a | jq -c '[.tunnels[].bgp]')"
lab_wait 20 reported b || lab_fail "b's status does not report c's filtered prefixes: $(scen_status b | jq -c '[.tunnels[].bgp]')"
for s in a b; do
	grep -q "announced [0-9]* prefix(es) it may not (10\.2\.0\.0/2[45]" "$LAB_DIR/$s-edge.log" ||
		lab_fail "$s's log does not report the filtered prefixes"
	ip netns exec "$LAB_P-$s" curl -sf http://127.0.0.1:9108/metrics |
		grep -q '^meshwan_edge_bgp_prefixes_filtered{.*} [1-9]' ||
		lab_fail "$s's /metrics does not count the filtered prefixes"
done
# c's own routes to a are untouched, and none of a's or b's other
# neighbours had anything filtered.
for s in a b; do
	scen_status "$s" | jq -e --argjson p "$C" '[.tunnels[] | select(.peer_site != $p)]
		| all(.[]; (.bgp.prefixes_filtered // 0) == 0)' >/dev/null ||
		lab_fail "$s reports filtered prefixes from a site other than c"
done
# ... and to the controller: GET /edges/{id} shows the count per tunnel
# (status.bgp[], prefixes_filtered), on the tunnels to c only.
ctl_reported() {
	_cid=$(lab_site_id "$1")
	_tc=$(lab_api GET "/api/v1/tunnels?site=$_cid" | jq -c --argjson c "$C" \
		'[.tunnels[] | select(.site_a == $c or .site_b == $c) | .id]')
	lab_api GET "/api/v1/edges/$_cid" | jq -e --argjson tc "$_tc" '
		(.status.bgp | length) > 0 and
		all(.status.bgp[]; if (.tunnel_id as $t | $tc | index($t)) != null
			then .prefixes_filtered >= 2 else .prefixes_filtered == 0 end) and
		([.status.bgp[] | select(.tunnel_id as $t | $tc | index($t))] | length) == ($tc | length)' >/dev/null
}
lab_wait 20 ctl_reported a || lab_fail "GET /edges/$A does not show c's filtered prefixes: $(lab_api GET "/api/v1/edges/$A" | jq -c .status.bgp)"
lab_wait 20 ctl_reported b || lab_fail "GET /edges/$B does not show c's filtered prefixes: $(lab_api GET "/api/v1/edges/$B" | jq -c .status.bgp)"
echo "a and b report the filtered prefixes (status, /metrics, log, GET /edges/{id})"
scen_watch_more 2 || lab_fail "the ping watcher is stuck"
scen_watch_stop 3
echo "hijack: PASS"
