#!/bin/sh
# health.sh — per-tunnel health end to end (issue 9 items 5, 6, 9): the
# agents' probes and FRR's BFD turned into HealthStatus, from the edge's
# `meshwan-edge status` and /metrics to the controller's REST API.
#
#   lan-a -- a ==inet== internet == b -- lan-b     (the lab of `make demo`:
#              ==mpls==  router  == c (NAT) -- lan-c   tests/edge/sites_lib.sh)
#
# Checks: every tunnel of every site reaches GET /edges/{id} up with an
# RTT above 0 and no loss, and GET /tunnels/{id}/health holds samples with
# that RTT; a's `status --json`, its table and /metrics show the same.
# Then a's mpls path is black-holed in the router (no carrier change;
# mpls, since a reaches the controller over inet): a's two mpls tunnels
# turn down with loss and BFD down in `status --json` and in REST, while
# its inet tunnels stay up; after the restore they are up again.
set -u
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"
lab_test_init health
lab_underlay
lab_site a 1 twolink
lab_site b 2 plain
lab_site c 3 nat
lab_controller
for s in a b c; do lab_register "$s"; done
echo "metrics_listen = 127.0.0.1:9464" >>"$LAB_DIR/a/edge.conf"
for s in a b c; do lab_agent "$s"; done
lab_wait_pings 60 || lab_fail "LAN hosts do not all ping after 60 s"

# Every tunnel of every site reported up, RTT > 0, loss 0.
rest_healthy() {
	for _s in a b c; do
		_id=$(lab_site_id "$_s")
		_n=$(lab_api GET "/api/v1/tunnels?site=$_id" | jq '.tunnels | length') || return 1
		[ "$_n" -gt 0 ] || return 1
		lab_api GET "/api/v1/edges/$_id" | jq -e --argjson n "$_n" '
			[.status.health[]? | select(.up and .rtt_us > 0 and .loss_permille == 0)]
			| length == $n' >/dev/null || return 1
	done
}
lab_wait 45 rest_healthy || {
	for s in a b c; do lab_api GET "/api/v1/edges/$(lab_site_id "$s")" | jq -c '.status.health'; done
	lab_fail "GET /edges/{id} never showed every tunnel up with RTT > 0 and no loss"
}
A=$(lab_site_id a)
lab_api GET "/api/v1/edges/$A" | jq -c '.status.health[]'

# The history the dashboard charts: samples of a's end with that RTT.
T1=$(lab_api GET "/api/v1/tunnels?site=$A" | jq -r '.tunnels[0].id')
lab_api GET "/api/v1/tunnels/$T1/health" >"$LAB_DIR/hist.json" ||
	lab_fail "GET /tunnels/$T1/health: $(cat "$LAB_DIR/api.out")"
jq -e --argjson a "$A" '.tunnel_id > 0 and
	([.series[] | select(.site_id == $a)][0] | (.rtt_us | length) > 0 and
	 .rtt_us[-1] > 0 and .loss_permille[-1] == 0 and .up[-1] == true)' \
	"$LAB_DIR/hist.json" >/dev/null || lab_fail "health history: $(cat "$LAB_DIR/hist.json")"

# The edge's own view: status --json, the table, /metrics.
st() {
	ip netns exec "$LAB_P-a" "$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge" \
		status -c "$LAB_DIR/a/edge.conf" "$@"
}
local_healthy() {
	st --json >"$LAB_DIR/st.json" &&
	jq -e '(.tunnels | length) == 4 and all(.tunnels[];
		.health.up and .health.rtt_us > 0 and .health.loss_permille == 0 and
		.bfd.state == "up")' "$LAB_DIR/st.json" >/dev/null
}
lab_wait 20 local_healthy ||
	lab_fail "status --json: $(jq -c '[.tunnels[] | {id, local_link, bfd, health}]' "$LAB_DIR/st.json")"
table_healthy() {
	st >"$LAB_DIR/st.txt" &&
	[ "$(grep -Ec '^[0-9]+ .* up +up +[0-9]+\.[0-9]{3}ms +0\.0% +[0-9]+\.[0-9]{3}ms$' "$LAB_DIR/st.txt")" = 4 ]
}
lab_wait 20 table_healthy || lab_fail "status table lacks BFD/health columns: $(cat "$LAB_DIR/st.txt")"
metrics_healthy() {
	ip netns exec "$LAB_P-a" curl -sf http://127.0.0.1:9464/metrics >"$LAB_DIR/metrics.txt" &&
	[ "$(grep -c '^meshwan_edge_health_up{.*} 1$' "$LAB_DIR/metrics.txt")" = 4 ] &&
	[ "$(grep -c '^meshwan_edge_bfd_up{.*} 1$' "$LAB_DIR/metrics.txt")" = 4 ] &&
	[ "$(grep -Ec '^meshwan_edge_health_rtt_seconds\{.*\} 0\.0*[1-9]' "$LAB_DIR/metrics.txt")" = 4 ]
}
lab_wait 20 metrics_healthy || lab_fail "/metrics lacks health: $(grep 'health\|bfd' "$LAB_DIR/metrics.txt")"

# Cut a's mpls path: its mpls tunnels go down (loss, BFD), inet stays up.
lab_cut a mpls
cut_at=$(lab_ms)
local_down() {
	st --json >"$LAB_DIR/st.json" 2>/dev/null &&
	jq -e '([.tunnels[] | select(.local_link == "mpls")] | length) == 2 and
		all(.tunnels[] | select(.local_link == "mpls");
		    (.health.up | not) and .health.loss_permille > 0 and
		    .bfd.state == "down") and
		all(.tunnels[] | select(.local_link == "inet"); .health.up)' \
		"$LAB_DIR/st.json" >/dev/null
}
lab_wait 20 local_down ||
	lab_fail "status after the cut: $(jq -c '[.tunnels[] | {id, local_link, bfd, health}]' "$LAB_DIR/st.json")"
echo "figure: cut to down in meshwan-edge status: $(( $(lab_ms) - cut_at )) ms"
cut_ids=$(jq -c '[.tunnels[] | select(.local_link == "mpls") | .id]' "$LAB_DIR/st.json")
rest_down() {
	lab_api GET "/api/v1/edges/$A" | jq -e --argjson ids "$cut_ids" '
		[.status.health[] | select(.tunnel_id as $t | $ids | index($t))
		 | select((.up | not) and .loss_permille > 0)] | length == 2' >/dev/null
}
lab_wait 20 rest_down || lab_fail "REST never showed a's mpls tunnels down: $(lab_api GET "/api/v1/edges/$A" | jq -c '.status.health')"
echo "figure: cut to down in GET /edges/{id}: $(( $(lab_ms) - cut_at )) ms"

lab_restore a mpls
local_up() {
	st --json >"$LAB_DIR/st.json" 2>/dev/null &&
	jq -e 'all(.tunnels[]; .health.up and .bfd.state == "up")' "$LAB_DIR/st.json" >/dev/null
}
lab_wait 30 local_up ||
	lab_fail "status after the restore: $(jq -c '[.tunnels[] | {id, local_link, bfd, health}]' "$LAB_DIR/st.json")"
rest_up() {
	lab_api GET "/api/v1/edges/$A" | jq -e '.status.health | length == 4 and all(.[]; .up)' >/dev/null
}
lab_wait 20 rest_up || lab_fail "REST never showed a's tunnels up again"
echo "health: PASS"
