#!/bin/sh
# site_add.sh — a fourth site added through REST to the running
# three-site mesh (tests/edge/sites_lib.sh), then removed (issue 9).
# Checks: after the REST add and the new edge's enrollment every edge
# converges and every pair of LAN hosts (now 12) pings; the tunnels that
# existed before keep their SAs (the same SPIs, as the edges report them
# in GET /edges/{id}); deleting the site removes its tunnels from every
# edge (devices, BGP neighbours, routes to its LAN, reported SAs) while
# the others keep pinging.  Prints the time from the REST add to all
# pings passing.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init siteadd
lab_three_sites
lab_wait_pings 60 || lab_fail "the three sites do not ping after 60 s"
lab_wait 30 lab_converged || lab_fail "three sites not converged"

# tunnel id + SPIs (in and out) of every tunnel, as each edge reports
# them: "site tunnel dir spi" lines, sorted.
spis() {
	for _s in $LAB_SITES; do
		lab_api GET "/api/v1/edges/$(lab_site_id "$_s")" | jq -r --arg s "$_s" '
			.status.tunnels[]? | .tunnel_id as $t | .sas[] | "\($s) \($t) \(.direction) \(.spi)"'
	done | sort
}
# N: how many (site, tunnel) ends report SAs.
ends_reporting() {
	[ "$(spis | awk '{print $1, $2}' | sort -u | wc -l)" = "$1" ]
}
old_tunnels=$(lab_api GET /api/v1/tunnels | jq -r '.tunnels[].id' | sort -n | tr '\n' ' ')
lab_wait 20 ends_reporting 10 || lab_fail "the edges do not report the SAs of 5 tunnels (2 ends each): $(spis)"
before=$(spis)
echo "SAs before:"; echo "$before"

# The new site's namespaces and FRR are plumbing; the clock starts at the
# REST add.
lab_site d 4 plain
lab_frr_ready d
t0=$(lab_ms)
lab_register d
lab_agent d
lab_wait_pings 60 || lab_fail "the four sites do not all ping 60 s after the REST add"
t_ping=$(( $(lab_ms) - t0 ))
lab_wait 30 lab_converged || lab_fail "not every edge converged after the add"
t_conv=$(( $(lab_ms) - t0 ))
echo "figure: REST site add to every pair of 4 LAN hosts pinging: ${t_ping} ms (all edges converged: ${t_conv} ms)"
D=$(lab_site_id d)
new_tunnels=$(lab_api GET "/api/v1/tunnels?site=$D" | jq -r '.tunnels[].id' | tr '\n' ' ')
[ "$(echo $new_tunnels | wc -w)" = 4 ] || lab_fail "site d should have 4 tunnels: $new_tunnels"

# The old tunnels' SAs are untouched: wait for status reports that show
# the new tunnels, then compare the old ones.
lab_wait 20 ends_reporting 18 || lab_fail "the edges do not report the SAs of 9 tunnels: $(spis)"
after=$(spis)
for t in $old_tunnels; do
	b=$(echo "$before" | awk -v t="$t" '$2 == t')
	a=$(echo "$after" | awk -v t="$t" '$2 == t')
	[ "$a" = "$b" ] || lab_fail "tunnel $t's SAs changed with the add: before [$b] after [$a]"
done
echo "the 5 old tunnels kept their SPIs"

# Remove site d: its tunnels go from every edge.
lab_api DELETE "/api/v1/sites/$D" >/dev/null || lab_fail "DELETE site d: $(cat "$LAB_DIR/api.out")"
t0=$(lab_ms)
lab_stop_pid "$(lab_agent_pid d)"
LAB_SITES="a b c"
gone() {
	for _s in a b c; do
		for _t in $new_tunnels; do
			ip -n "$LAB_P-$_s" link show "mw$_t" >/dev/null 2>&1 && return 1
		done
		lab_vtysh "$_s" -c 'show ip route 10.4.0.0/24 json' | jq -e 'length == 0' >/dev/null || return 1
		[ "$(lab_vtysh "$_s" -c 'show bgp summary json' | jq '.ipv4Unicast.peers | length')" = \
		  "$(lab_api GET "/api/v1/tunnels?site=$(lab_site_id "$_s")" | jq '.tunnels | length')" ] || return 1
	done
	return 0
}
lab_wait 30 gone || lab_fail "site d's tunnels, routes or BGP neighbours still on an edge"
lab_wait 30 lab_converged || lab_fail "not converged after the removal"
t_gone=$(( $(lab_ms) - t0 ))
no_d_sas() {
	! spis | awk '{print $2}' | grep -qxE "$(echo $new_tunnels | tr ' ' '|')"
}
lab_wait 20 no_d_sas ||
	lab_fail "an edge still reports SAs of site d's tunnels: $(spis)"
lab_wait_pings 20 || lab_fail "the three sites stopped pinging after the removal"
echo "figure: REST delete to site d gone from every edge: ${t_gone} ms"
echo "site_add: PASS"
