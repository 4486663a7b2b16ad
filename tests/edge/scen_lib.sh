# tests/edge/scen_lib.sh — what the failure-scenario tests of the
# three-site lab share (controller_away.sh, revoke_site.sh, hijack.sh):
# each site's own view (`meshwan-edge status --json`) and a ping watcher
# that keeps pinging pairs of LAN hosts while a test breaks something.
# Sourced after tests/edge/sites_lib.sh; not a test by itself.

SCEN_EDGE=${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}

# scen_status NAME — `meshwan-edge status --json` of site NAME's agent.
scen_status() {
	"$SCEN_EDGE" status -c "$LAB_DIR/$1/edge.conf" --json
}

# scen_sas NAME — "tunnel peer_site dir spi epoch active" of every SA
# site NAME's agent holds, sorted.
scen_sas() {
	scen_status "$1" | jq -r '.tunnels[]? | .id as $t | .peer_site as $p
		| .sas[] | "\($t) \($p) \(.dir) \(.spi) \(.sa_epoch) \(.active)"' | sort
}

# scen_out_spis NAME [PEER_ID] — "tunnel spi epoch" of the outbound SA
# in use on each of NAME's tunnels (to PEER_ID only, when given).  With
# both ends' lists, every direction of those tunnels is covered.
scen_out_spis() {
	scen_status "$1" | jq -r --arg p "${2:-}" '.tunnels[]?
		| select($p == "" or (.peer_site | tostring) == $p) | .id as $t
		| .sas[] | select(.dir == "out" and .active)
		| "\($t) \(.spi) \(.sa_epoch)"' | sort
}

# scen_drops NAME — "tunnel no_sa auth unknown_spi" of each of site
# NAME's tunnels, sorted: the drops a make-before-break gap would raise
# (a sender using an SA its peer has not installed yet or removed
# already, or keys that do not match).
scen_drops() {
	scen_status "$1" | jq -r '.tunnels[]? | "\(.id) \(.drops.no_sa // 0) \(.drops.auth // 0) \(.drops.unknown_spi // 0)"' | sort
}

# scen_bgp_downs — every BGP session FRR took down in the lab so far, and
# why (a BFD timeout shows as "Cease/BFD Down"), one line each.
scen_bgp_downs() {
	for _bd in "$LAB_DIR"/*/frr/bgpd.log; do
		[ -f "$_bd" ] || continue
		_bs=$(basename "$(dirname "$(dirname "$_bd")")")
		grep -E 'NOTIFICATION.*(sent to|received from)|ADJCHANGE.*Down' "$_bd" |
			sed "s/^/$_bs: /"
	done
}

# scen_settled NAME... — each site's agent holds exactly one inbound and
# one outbound SA per tunnel (no rekey in flight, no SA draining).
scen_settled() {
	for _ss in "$@"; do
		scen_status "$_ss" | jq -e '(.tunnels | length > 0) and all(.tunnels[];
			([.sas[] | select(.dir == "in")] | length) == 1 and
			([.sas[] | select(.dir == "out" and .active)] | length) == 1 and
			(.sas | length) == 2)' >/dev/null || return 1
	done
}

# scen_watch_start "A>B C>D ..." — ping those pairs of LAN hosts in rounds
# until scen_watch_stop, all pairs of a round at once.  A pair fails a
# round when none of 3 pings (0.2 s apart, 1 s wait) is answered; one
# lost packet on a loaded machine is not an outage.  Failures go to
# $LAB_DIR/watch.fail ("ms pair"), rounds to $LAB_DIR/watch.rounds.
scen_watch_start() {
	: >"$LAB_DIR/watch.fail"
	: >"$LAB_DIR/watch.rounds"
	rm -f "$LAB_DIR/watch.stop"
	(
		# Ends with the lab too (its folder is removed), whatever
		# happens to the test.
		while [ -d "$LAB_DIR" ] && [ ! -f "$LAB_DIR/watch.stop" ]; do
			_wp=""
			for _pair in $1; do
				_wf=${_pair%%>*} _wt=${_pair#*>}
				(
					ip netns exec "$LAB_P-lan-$_wf" ping -c 3 -i 0.2 -W 1 -q \
						"$(lab_lan_addr "$_wt")" >/dev/null 2>&1 ||
						echo "$(lab_ms) $_pair" >>"$LAB_DIR/watch.fail"
				) &
				_wp="$_wp $!"
			done
			for _p in $_wp; do wait "$_p"; done
			echo "$(lab_ms)" >>"$LAB_DIR/watch.rounds" 2>/dev/null
		done
	) &
	SCEN_WATCH=$!
}

# scen_watch_more N — wait (30 s at most) until the watcher has run N
# more rounds.
scen_watch_more() {
	_want=$(( $(wc -l <"$LAB_DIR/watch.rounds") + $1 ))
	lab_wait 30 sh -c "[ \$(wc -l <'$LAB_DIR/watch.rounds') -ge $_want ]"
}

# scen_watch_stop — ends the watcher after its current round; fails the
# test when a pair lost a whole round or when fewer than MIN rounds ran.
scen_watch_stop() {
	: >"$LAB_DIR/watch.stop"
	wait "$SCEN_WATCH"
	_rounds=$(wc -l <"$LAB_DIR/watch.rounds")
	if [ -s "$LAB_DIR/watch.fail" ]; then
		echo "--- BGP sessions taken down (FRR)" >&2
		scen_bgp_downs >&2
		lab_fail "pings failed during the test ($_rounds rounds): $(cat "$LAB_DIR/watch.fail" | tr '\n' ' ')"
	fi
	[ "$_rounds" -ge "${1:-1}" ] || lab_fail "the ping watcher ran only $_rounds rounds"
	echo "pings: $_rounds rounds, every pair answered in each"
}
