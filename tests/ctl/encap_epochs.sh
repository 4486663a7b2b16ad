#!/bin/sh
# encap_epochs.sh — switching the encapsulation re-allocates every tunnel
# (a VNI appears or goes), and the edges make those tunnels anew; their
# SAs must then be new too: SA epochs above every epoch the tunnel had
# and SPIs none of the old ones, the same in the store as in the intents
# (the controller's cache), on sqlite and on PostgreSQL:
#
#   curl ──REST──▶ meshwan-controller ──▶ sqlite file | PostgreSQL 15
#   (PUT policy        ▲   ▲ Session (mTLS)
#    encap)   edge_client a   edge_client b   (real X25519 keys, -k)
#
# Per store: a and b announce keys (the tunnel moves to SA epoch 2 both
# ways), then GRE -> VXLAN -> GRE through PUT /api/v1/policy.  After each
# switch: the tunnel keeps its id, its VNI follows the encap, both edges'
# intents name SAs of an epoch above every earlier one with SPIs never
# seen on the tunnel, both ends derive the same key per direction, and
# the store's sa_epochs rows are exactly what the intents name.  A
# controller restart reads the same epochs back, and a switch after it
# still moves above them.  Last, a's link moves to another local address
# (PATCH .../links/inet): that edge, too, makes the tunnel anew, and the
# tunnel gets fresh SAs the same way, received at the new address.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
trap 'cleanup; pg_stop' EXIT INT TERM
need curl jq openssl sqlite3
[ -x "$EDGE" ] || fail "$EDGE is not built"

# db SQL — one query on the store under test, rows as a|b|c.
db() {
	if [ "$STORE" = pg ]; then
		pg_sql "$1"
	else
		sqlite3 -cmd '.timeout 5000' "$T/controller.db" "$1"
	fi
}

# rows — the tunnel's stored epochs: "sender epoch spi state" lines.
rows() {
	db "SELECT sender_site, epoch, spi, state FROM sa_epochs WHERE tunnel_id = $tid ORDER BY sender_site, epoch" | tr '|' ' '
}

# isa NAME DIR — "epoch spi fp" of the newest intent SA of that direction.
isa() {
	sed -n "s/^intent_sa tunnel=$tid dir=$2 sa_epoch=\([0-9]*\) spi=\([0-9]*\) keys=[0-9/]* fp=\([0-9a-f]*\)\$/\1 \2 \3/p" \
		"$T/$1.log" | tail -n 1
}

# vni_of NAME — the tunnel's VNI in NAME's last applied intent.
vni_of() {
	sed -n "s/^tunnel $tid peer [0-9]* inner [0-9.]* vni \([0-9]*\) .*/\1/p" "$T/$1.tun" 2>/dev/null
}

# settled ABOVE VNI_WANTED — both edges' intents name SAs of both
# directions above epoch ABOVE (keyed), and the tunnel's VNI is nonzero
# ("vxlan") or 0 ("gre").
settled() {
	for n in a b; do
		for d in in out; do
			_s=$(isa "$n" "$d")
			[ -n "$_s" ] || return 1
			[ "${_s%% *}" -gt "$1" ] || return 1
		done
		_v=$(vni_of "$n")
		[ -n "$_v" ] || return 1
		if [ "$2" = vxlan ]; then [ "$_v" != 0 ] || return 1
		else [ "$_v" = 0 ] || return 1; fi
	done
	return 0
}

# agree — every stored active epoch is what both intents name (the
# sender's outbound, the receiver's inbound SA) with one key.
agree() {
	rows | awk '$4 == 3' >"$T/active"
	[ "$(wc -l <"$T/active")" = 2 ] || return 1
	while read -r snd ep spi state; do
		if [ "$snd" = "$a" ]; then out=a; in=b; else out=b; in=a; fi
		o=$(isa "$out" out); i=$(isa "$in" in)
		[ "${o% *}" = "$ep $spi" ] && [ "${i% *}" = "$ep $spi" ] || return 1
		[ "${o##* }" = "${i##* }" ] || return 1
	done <"$T/active"
	return 0
}

# check_fresh ABOVE — after a switch: the store holds exactly one epoch
# per direction, active, above ABOVE, with an SPI not in $seen, equal to
# what both intents name; both ends agree on each direction's key.
check_fresh() {
	rows >"$T/rows"
	[ "$(wc -l <"$T/rows")" = 2 ] || fail "$STORE: want 2 stored epochs of tunnel $tid, got: $(cat "$T/rows")"
	while read -r snd ep spi state; do
		[ "$ep" -gt "$1" ] || fail "$STORE: stored epoch $ep of sender $snd is not above $1: $(cat "$T/rows")"
		[ "$state" = 3 ] || fail "$STORE: stored epoch $ep of sender $snd is in state $state, not active (3)"
		case " $seen " in *" $spi "*)
			fail "$STORE: SPI $spi of epoch $ep was used before on tunnel $tid (seen: $seen)";;
		esac
	done <"$T/rows"
	agree || fail "$STORE: the intents do not name the stored epochs: $(cat "$T/rows"); a: $(isa a in)/$(isa a out) b: $(isa b in)/$(isa b out)"
}

# change ENCAP METHOD PATH BODY — a REST change after which the tunnel
# (in ENCAP) must get fresh SAs on both edges.
change() {
	_enc=$1
	shift
	max=$(rows | awk 'BEGIN {m = 0} $2 > m {m = $2} END {print m}')
	seen="$seen $(rows | awk '{printf "%s ", $3}')"
	_t0=$(date +%s)
	st=$(api "$@")
	[ "$st" = 200 ] || fail "$STORE: $1 $2 $3 gave $st: $(cat "$T/out")"
	_deadline=$(( _t0 + 20 ))
	until settled "$max" "$_enc"; do
		[ "$(date +%s)" -lt "$_deadline" ] || fail "$STORE: no fresh SAs above epoch $max after $1 $2 $3: a: $(isa a in)/$(isa a out) vni $(vni_of a); b: $(isa b in)/$(isa b out) vni $(vni_of b); store: $(rows | tr '\n' ';')"
		sleep 0.1
	done
	check_fresh "$max"
	[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
	jq -e --argjson t "$tid" '.tunnels | length == 1 and .[0].id == $t' "$T/out" >/dev/null ||
		fail "$STORE: the tunnel lost its id: $(cat "$T/out")"
	echo "$STORE: $1 $2 $3 in $(( $(date +%s) - _t0 )) s: $(rows | tr '\n' ';')"
}

# switch ENCAP — PUT the policy and wait for fresh SAs on both edges.
switch() {
	change "$1" PUT /api/v1/policy "{\"encap\":\"$1\"}"
}

store_config() {
	if [ "$STORE" = pg ]; then
		printf 'store = %s\n' "$PG_CONNINFO" | write_config
	else
		write_config </dev/null
	fi
}

scenario() {
	STORE=$1
	rm -rf "$T/ca" "$T/controller.db"* "$T"/*.log "$T"/*.tun
	if [ "$STORE" = pg ]; then
		pg_start || fail "no PostgreSQL cluster"
	fi
	store_config
	start_controller
	a=$(site_create '{"name":"a","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
	b=$(site_create '{"name":"b","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
	for n in a b; do
		eval "id=\$$n"
		make_key "$n"
		enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
		der_to_pem "$n"
		session "$n" "$id" -k 1 -t "$T/$n.tun"
	done
	[ "$(api GET /api/v1/tunnels)" = 200 ] || fail "GET /tunnels"
	tid=$(jq -r '.tunnels[0].id' "$T/out")
	# The key announcements move both directions to epoch 2.
	for n in a b; do
		wait_for 20 "$T/$n.log" "^rekey tunnel=$tid epoch=2 step=retire reason=key\$" ||
			fail "$STORE: $n: no key rekey: $(cat "$T/$n.log")"
	done
	_deadline=$(( $(date +%s) + 10 ))
	until settled 1 gre; do
		[ "$(date +%s)" -lt "$_deadline" ] || fail "$STORE: intents do not name epoch 2"
		sleep 0.1
	done
	seen=
	switch vxlan
	switch gre
	switch vxlan

	# A restart reads the same epochs back: cache and store agree.
	rows >"$T/before"
	stop_controller
	GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP
	store_config
	unset GRPC_PORT ENROLL_PORT HTTP_PORT
	start_controller
	rows >"$T/after"
	cmp -s "$T/before" "$T/after" || fail "$STORE: epochs changed across a restart: $(cat "$T/before") -> $(cat "$T/after")"
	# ... and a switch after it still gets fresh SAs.  The edges come
	# back to the same port and announce their next keys, which rekeys
	# the tunnel once more: that settles first.
	for n in a b; do
		wait_for 20 "$T/$n.log" '^announced epoch=2$' ||
			fail "$STORE: $n did not come back: $(tail -n 5 "$T/$n.log")"
	done
	_deadline=$(( $(date +%s) + 20 ))
	until agree && [ "$(awk '{print $2}' "$T/active" | sort -n | head -n 1)" -gt "$(awk '{print $2}' "$T/before" | sort -n | tail -n 1)" ]; do
		[ "$(date +%s)" -lt "$_deadline" ] || fail "$STORE: the key rekey after the restart did not settle: $(rows | tr '\n' ';')"
		sleep 0.1
	done
	switch gre
	# A link moved to another local address: a's edge makes the tunnel
	# anew, so it needs fresh SAs as well (no re-allocation here).
	change gre PATCH "/api/v1/sites/$a/links/inet" '{"address":"192.0.2.11"}'
	[ "$(db "SELECT DISTINCT recv_address FROM sa_epochs WHERE tunnel_id = $tid AND sender_site = $b")" = 192.0.2.11 ] ||
		fail "$STORE: b's SAs to a are not received at a's new address: $(rows)"
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	BG_PIDS=
	stop_controller
	[ "$STORE" = pg ] && pg_stop
	echo "$STORE: ok"
}

need psql
scenario sqlite
scenario pg
echo "encap_epochs: ok"
