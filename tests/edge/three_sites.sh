#!/bin/sh
# three_sites.sh — the demo's mesh end to end (issue 9): a controller and
# three sites in namespaces (tests/edge/sites_lib.sh: site a with two WAN
# links, b plain, c behind NAT), each with meshwan-edge (uesp) and its own
# FRR, registered through REST and enrolled with one-time tokens.
# Checks what a user would: every LAN host pings every other; each site's
# FRR holds every other site's LAN prefix, learnt by BGP and installed
# through a meshwan tunnel device (vtysh JSON); GET /edges shows every
# edge connected and converged; the status table lists the BGP sessions.
# Prints the time from the first namespace to all pings passing.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init three
t0=$(lab_ms)
lab_three_sites
lab_wait_pings 60 || lab_fail "LAN hosts do not all ping after 60 s"
t_ping=$(( $(lab_ms) - t0 ))
echo "figure: from nothing to every pair of LAN hosts pinging: ${t_ping} ms"

# Each FRR: the other sites' LAN prefixes, selected and installed, via
# BGP over a tunnel device (mw...).
for s in $LAB_SITES; do
	for o in $LAB_SITES; do
		[ "$s" = "$o" ] && continue
		p="10.$(lab_site_index "$o").0.0/24"
		lab_wait 20 sh -c "vtysh --vty_socket '$LAB_DIR/$s/frr' -c 'show ip route $p json' |
			jq -e '.[\"$p\"] | any(.protocol == \"bgp\" and .selected == true and .installed == true
				and (.nexthops | length > 0) and all(.nexthops[]; (.interfaceName // \"\") | startswith(\"mw\")))'" ||
			lab_fail "site $s's FRR has no BGP route to $p over a tunnel: $(lab_vtysh "$s" -c "show ip route $p json")"
	done
	# Every BGP neighbour (one per tunnel) Established.
	want=$(lab_api GET "/api/v1/tunnels?site=$(lab_site_id "$s")" | jq '.tunnels | length')
	est() {
		n=$(lab_vtysh "$s" -c 'show bgp summary json' | jq '[.ipv4Unicast.peers[] | select(.state == "Established")] | length')
		[ "$n" = "$want" ]
	}
	lab_wait 30 est || lab_fail "site $s: $n BGP sessions Established, $want tunnels"
	echo "site $s: $n BGP sessions Established over $want tunnels, routes to every other LAN"
done
[ "$(lab_api GET /api/v1/tunnels | jq '.tunnels | length')" = 5 ] ||
	lab_fail "expected 5 tunnels (a: 2 links x b, c; b-c)"

lab_wait 30 lab_converged || lab_fail "GET /edges: not every edge connected and converged: $(lab_api GET /api/v1/edges)"
lab_wait 30 lab_bgp_reported || lab_fail "the edges' reports (GET /edges/{id}) do not show every BGP session Established"
lab_status
echo "three_sites: PASS"
