#!/bin/sh
# three_sites.sh — the demo's mesh end to end (issue 9): a controller and
# three sites in namespaces (tests/edge/sites_lib.sh: site a with two WAN
# links, b plain, c behind NAT), each with meshwan-edge (uesp) and its own
# FRR, registered through REST and enrolled with one-time tokens.
# Checks what a user would: every LAN host pings every other; each site's
# FRR holds every other site's LAN prefix, learnt by BGP and installed
# through a meshwan tunnel device (vtysh JSON); GET /edges shows every
# edge connected and converged; the status table lists the BGP sessions.
# No key bytes anywhere a user can read (issue 9): the controller's and
# agents' logs, each site's `meshwan-edge status --json`, each edge's and
# the controller's /metrics, and the REST replies (sites, tunnels, edges
# with their status reports, events) are searched for every site's epoch
# private keys and derived SA keys (tests/edge/agent_keygrep.sh).
# Prints the time from the first namespace to all pings passing.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init three
t0=$(lab_ms)
# Each edge's /metrics on (its own namespace's loopback) for the key search.
LAB_EDGE_METRICS=127.0.0.1:9108
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

# Everything a user can read, collected into out/, then searched for the
# secrets of every site's state folder (linked as e<site>/state, the
# layout agent_keygrep.sh reads).
out="$LAB_DIR/out"
mkdir -p "$out"
edge_bin=${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}
for s in $LAB_SITES; do
	"$edge_bin" status -c "$LAB_DIR/$s/edge.conf" --json >"$out/$s-status.json" ||
		lab_fail "meshwan-edge status --json of $s"
	"$edge_bin" status -c "$LAB_DIR/$s/edge.conf" >"$out/$s-status.txt" ||
		lab_fail "meshwan-edge status of $s"
	ip netns exec "$LAB_P-$s" curl -sf http://127.0.0.1:9108/metrics >"$out/$s-metrics.txt" ||
		lab_fail "the /metrics of $s's edge"
	grep -q '^meshwan_edge_' "$out/$s-metrics.txt" || lab_fail "$s's /metrics: no meshwan_edge_ series"
	jq -e '.tunnels | length > 0' "$out/$s-status.json" >/dev/null ||
		lab_fail "$s's status --json lists no tunnel"
	mkdir -p "$out/keys/e$s"
	ln -s "$LAB_DIR/$s/state" "$out/keys/e$s/state"
done
for p in /api/v1/sites /api/v1/tunnels /api/v1/edges /api/v1/events?limit=1000 \
    /api/v1/crypto /api/v1/policy /metrics; do
	f="$out/rest$(echo "$p" | tr '/?=' '___').txt"
	lab_api GET "$p" >"$f" || lab_fail "GET $p: $(cat "$LAB_DIR/api.out")"
done
for s in $LAB_SITES; do
	lab_api GET "/api/v1/edges/$(lab_site_id "$s")" >"$out/rest-edge-$s.json" ||
		lab_fail "GET /edges of $s"
done
grep -q 'meshwan_rpc_events_total' "$out/rest_metrics.txt" || lab_fail "controller /metrics: no rpc events"
files=$(ls "$out"/*.txt "$out"/*.json "$LAB_DIR"/*.log "$LAB_DIR"/*/frr/*.log)
# One file to search (two greps per secret, not two per secret and
# file); on a find, the files one by one say which.
cat $files >"$out/all.collected"
echo "searching $(echo $files | wc -w) files ($(wc -c <"$out/all.collected") bytes) for key bytes"
SAN=$BUILD sh "$MESHWAN_TOP/tests/edge/agent_keygrep.sh" "$out/keys" "$out/all.collected" || {
	SAN=$BUILD sh "$MESHWAN_TOP/tests/edge/agent_keygrep.sh" "$out/keys" $files
	lab_fail "key bytes in a log, status, /metrics or REST reply"
}
echo "three_sites: PASS"
