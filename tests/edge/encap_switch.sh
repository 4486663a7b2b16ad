#!/bin/sh
# encap_switch.sh — the operator switches every tunnel of the running
# three-site mesh (tests/edge/sites_lib.sh) from GRE to VXLAN and back
# through REST (PUT /api/v1/policy encap), with real agents (uesp) and
# FRR:
#
#        LAN a ── site a (inet, mpls) ──┐
#                                       ├── P-inet ── controller (root ns)
#        LAN b ── site b (inet) ────────┤
#        LAN c ── site c ── NAT ────────┘
#
# The switch re-allocates every tunnel (same id, a VNI appears or goes)
# and every edge makes its tunnels anew; the controller must give them SA
# epochs above the ones the edges used (an edge refuses an outbound epoch
# it has used on a tunnel: a GCM key is never installed twice).  Checks,
# after each switch: every agent's `meshwan-edge status --json` shows
# every tunnel with the new encap and the VNI the controller allocated
# (GET /tunnels, 0 for GRE), active outbound SAs above the epochs before
# the switch, every pair of LAN hosts pings again, every edge converged
# with every BGP session Established, and no agent logged a refused SA.
# Then site b's link moves to another local address (PATCH): b's tunnels
# get fresh SAs the same way and its peers send to the new address.
# Prints the time from each REST call to all pings passing.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init encap
EDGE_BIN=${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}
# Generous: the same run took up to 101 s on a loaded machine.
DEADLINE=${ENCAP_DEADLINE:-180}
lab_three_sites
lab_wait_pings 60 || lab_fail "the three sites do not ping after 60 s"
lab_wait 30 lab_converged || lab_fail "three sites not converged"

# status SITE — the agent's status document.
status() {
	"$EDGE_BIN" status -c "$LAB_DIR/$1/edge.conf" --json
}

# bgp_states — each site's BGP neighbours and states, from FRR and from
# the edge's last report (for a failure message).
bgp_states() {
	for _s in $LAB_SITES; do
		printf '%s: frr %s report %s; ' "$_s" \
			"$(lab_vtysh "$_s" -c 'show bgp summary json' | jq -c '[.ipv4Unicast.peers | to_entries[] | "\(.key)=\(.value.state)"]')" \
			"$(lab_api GET "/api/v1/edges/$(lab_site_id "$_s")" | jq -c '[.status.bgp[]? | "\(.peer_address // "?")=\(.state)"]')"
	done
}

# out_epochs — "site tunnel epoch" of every active outbound SA, as the
# agents report them.
out_epochs() {
	for _s in $LAB_SITES; do
		status "$_s" | jq -r --arg s "$_s" '.tunnels[] | .id as $t
			| .sas[]? | select(.dir == "out" and .active) | "\($s) \($t) \(.sa_epoch)"'
	done | sort
}

# switched ENCAP — every agent shows each of its site's tunnels (as many
# as GET /tunnels?site= lists) in ENCAP with the controller's VNI and an
# active outbound SA above the epoch it had before ($before).
switched() {
	for _s in $LAB_SITES; do
		_id=$(lab_site_id "$_s")
		lab_api GET "/api/v1/tunnels?site=$_id" >"$LAB_DIR/want.json" || return 1
		status "$_s" >"$LAB_DIR/st-$_s.json" || return 1
		jq -e --arg e "$1" --slurpfile w "$LAB_DIR/want.json" '
			($w[0].tunnels | map({key: (.id | tostring), value: (.vni // 0)}) | from_entries) as $vni
			| (.tunnels | length) == ($vni | length)
			and all(.tunnels[]; .encap == $e and .vni == $vni[.id | tostring]
				and (if $e == "vxlan" then .vni > 0 else .vni == 0 end))' \
			"$LAB_DIR/st-$_s.json" >/dev/null || return 1
	done
	_now=$(out_epochs)
	[ "$(echo "$_now" | wc -l)" = "$(echo "$before" | wc -l)" ] || return 1
	echo "$before" | while read -r _s _t _e; do
		_n=$(echo "$_now" | awk -v s="$_s" -v t="$_t" '$1 == s && $2 == t { print $3 }')
		[ -n "$_n" ] && [ "$_n" -gt "$_e" ] || exit 1
	done
}

switch() {
	before=$(out_epochs)
	[ -n "$before" ] || lab_fail "no active outbound SAs reported before the switch"
	t0=$(lab_ms)
	lab_api PUT /api/v1/policy "{\"encap\":\"$1\"}" >/dev/null ||
		lab_fail "PUT /policy encap=$1: $(cat "$LAB_DIR/api.out")"
	lab_wait "$DEADLINE" switched "$1" ||
		lab_fail "encap=$1: the agents do not show every tunnel switched with fresh SAs within $DEADLINE s: before [$before] now [$(out_epochs)]; $(for s in $LAB_SITES; do jq -c '[.tunnels[] | {id, encap, vni, state}]' "$LAB_DIR/st-$s.json"; done)"
	t_sw=$(( $(lab_ms) - t0 ))
	lab_wait_pings "$DEADLINE" ||
		lab_fail "encap=$1: the LAN hosts do not all ping $DEADLINE s after the switch"
	t_ping=$(( $(lab_ms) - t0 ))
	lab_wait 60 lab_converged || lab_fail "encap=$1: not every edge converged: $(lab_api GET /api/v1/edges)"
	lab_wait "$DEADLINE" lab_bgp_reported || lab_fail "encap=$1: the edges' reports do not show every BGP session Established: $(bgp_states)"
	t_bgp=$(( $(lab_ms) - t0 ))
	if grep -l 'is not above epoch\|cannot be restored' "$LAB_DIR"/*-edge.log >/dev/null 2>&1; then
		lab_fail "encap=$1: an agent refused an SA: $(grep -h 'is not above epoch\|cannot be restored' "$LAB_DIR"/*-edge.log | tail -n 5)"
	fi
	echo "figure: encap=$1: every agent switched with fresh SAs after ${t_sw} ms, every pair of LAN hosts pinging after ${t_ping} ms, every BGP session reported Established after ${t_bgp} ms"
	echo "outbound SAs (site tunnel epoch): $(out_epochs | tr '\n' ';')"
}

status a | jq -e 'all(.tunnels[]; .encap == "gre" and .vni == 0)' >/dev/null ||
	lab_fail "site a's tunnels are not GRE with vni 0 at the start: $(status a | jq -c '[.tunnels[] | {id, encap, vni}]')"
switch vxlan
switch gre

# Site b's link moves to another local address (PATCH .../links/inet):
# b makes its tunnels anew (a local address cannot change in place), so
# they need fresh SAs too, though nothing is re-allocated; its peers
# follow the new remote address in place.
ip -n "$LAB_P-b" addr add 198.18.2.3/24 dev inet || lab_fail "second address on b's link"
B=$(lab_site_id b)
moved() {
	_now=$(out_epochs)
	echo "$before" | while read -r _s _t _e; do
		_n=$(echo "$_now" | awk -v s="$_s" -v t="$_t" '$1 == s && $2 == t { print $3 }')
		[ -n "$_n" ] || exit 1
		# Only b's tunnels start over.
		if jq -e --argjson t "$_t" 'any(.tunnels[]; .id == $t)' "$LAB_DIR/st-b.json" >/dev/null; then
			[ "$_n" -gt "$_e" ] || exit 1
		fi
	done || return 1
	for _s in a c; do
		status "$_s" | jq -e --slurpfile b "$LAB_DIR/st-b.json" '
			($b[0].tunnels | map(.id)) as $bt
			| all(.tunnels[] | select(.id as $i | $bt | index($i)); .remote | startswith("198.18.2.3:"))' >/dev/null ||
			return 1
	done
}
before=$(out_epochs)
status b >"$LAB_DIR/st-b.json"
t0=$(lab_ms)
lab_api PATCH "/api/v1/sites/$B/links/inet" '{"address":"198.18.2.3"}' >/dev/null ||
	lab_fail "PATCH b's link: $(cat "$LAB_DIR/api.out")"
lab_wait "$DEADLINE" moved ||
	lab_fail "b's link moved: its tunnels did not get fresh SAs, or its peers do not send to 198.18.2.3, within $DEADLINE s: before [$before] now [$(out_epochs)]"
lab_wait 60 lab_converged || lab_fail "link moved: not every edge converged: $(lab_api GET /api/v1/edges)"
lab_wait_pings "$DEADLINE" || lab_fail "link moved: the LAN hosts do not all ping"
lab_wait "$DEADLINE" lab_bgp_reported || lab_fail "link moved: the edges' reports do not show every BGP session Established: $(bgp_states)"
if grep -l 'is not above epoch\|cannot be restored' "$LAB_DIR"/*-edge.log >/dev/null 2>&1; then
	lab_fail "link moved: an agent refused an SA: $(grep -h 'is not above epoch\|cannot be restored' "$LAB_DIR"/*-edge.log | tail -n 5)"
fi
echo "figure: b's link moved: converged and every pair of LAN hosts pinging after $(( $(lab_ms) - t0 )) ms"
echo "outbound SAs (site tunnel epoch): $(out_epochs | tr '\n' ';')"
echo "encap_switch: PASS"
