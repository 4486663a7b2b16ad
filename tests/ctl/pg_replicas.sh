#!/bin/sh
# pg_replicas.sh — two meshwan-controller replicas on one PostgreSQL
# database, both serving REST and sessions:
#
#   curl ──▶ replica A ──┐                  ┌── replica B ◀── edge br1
#   curl ──▶ replica B ──┴─▶ PostgreSQL ◀───┘   (session on B)
#
# A site created through A reaches the edge connected to B within a
# second (change log + LISTEN/NOTIFY; asserted with room, see below).  Then four writers, two on each
# replica, create sites at once: every request succeeds (no 409/5xx from
# two replicas picking the same site id, ASN or audit id), the stored
# tunnels are the full mesh of the stored sites with unique ids and /31s,
# both replicas list the same tunnels, and the edge on B converges to its
# tunnel to every site.  B (not the leader) follows each change with the
# leader's stored allocations, incrementally: never a whole compile.  A
# failed ack on B shows as last_failure in GET /edges on A as well.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
B_PID=
trap '[ -n "$B_PID" ] && { kill "$B_PID" 2>/dev/null; wait "$B_PID" 2>/dev/null; }; cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"

write_config <<EOF
store = $PG_CONNINFO
EOF
start_controller
URL_A=$URL

# Replica B: the same database and CA, its own ports and token file (the
# admin token was made by A).
cat >"$T/b.conf" <<EOF
grpc_listen = 127.0.0.1:0
enroll_listen = 127.0.0.1:0
http_listen = 127.0.0.1:0
ca_dir = $T/ca
admin_token_file = $T/b-admin.token
database = $T/unused.db
store = $PG_CONNINFO
debug = session
EOF
"$CTLD" -d -f "$T/b.conf" >"$T/b.log" 2>&1 &
B_PID=$!
wait_for 20 "$T/b.log" ': ready$' || { cat "$T/b.log" >&2; fail "replica B not ready"; }
GRPC_B=$(sed -n 's/.*sessions on .* (port \([0-9]*\)), enrollment.*/\1/p' "$T/b.log")
HTTP_B=$(sed -n 's/.*REST API on .* (port \([0-9]*\)).*/\1/p' "$T/b.log")
URL_B="http://127.0.0.1:$HTTP_B"

hq=$(site_create '{"name":"hq","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}]}')
URL=$URL_B
br1=$(site_create '{"name":"br1","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
enroll_site br1 "$br1"
GRPC=$GRPC_B session br1 "$br1" -t "$T/br1.tunnels"
wait_for 10 "$T/br1.log" '^ack v=' || fail "no first intent on B: $(cat "$T/br1.log")"
grep -q "session: site $br1 connected" "$T/b.log" || fail "br1 is not on replica B"

# A change through A reaches the edge on B within a second.
URL=$URL_A
n0=$(grep -c '^ack v=' "$T/br1.log")
t0=$(date +%s%N)
site_create '{"name":"hq2","role":"hub","links":[{"name":"inet","address":"192.0.2.3"}]}' >/dev/null
while [ "$(grep -c '^ack v=' "$T/br1.log")" -le "$n0" ] ||
	! grep -q "peer=3 " "$T/br1.log"; do
	# The target is 1 s (issue 12); 124-820 ms measured here, with two
	# copies of this test at once on a loaded 2-core machine.  The
	# assertion leaves room for a busier machine and says when the
	# target was missed.
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 2000 ] ||
		fail "a site added through A did not reach the edge on B within 2 s: $(cat "$T/br1.log"; tail -n 20 "$T/b.log")"
	sleep 0.01
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "pg_replicas: site through A acked by the edge on B after $ms ms"
[ "$ms" -lt 1000 ] || echo "pg_replicas: WARNING: over the 1 s target"

# Four writers, two per replica, all at once.
writer() {	# NAME URL COUNT NET (the links' 10.NET.0.i)
	i=0
	while [ $i -lt "$3" ]; do
		i=$((i + 1))
		st=$(curl -s -o "$T/w-$1.body" -w '%{http_code}' -X POST -H "$H" \
			-H 'Content-Type: application/json' --data \
			"{\"name\":\"$1-$i\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.$4.0.$i\"}]}" \
			"$2/api/v1/sites")
		echo "$st" >>"$T/w-$1.status"; [ "$st" = 201 ] || cat "$T/w-$1.body" >>"$T/w-bodies"
	done
}
W=12
writer wa1 "$URL_A" $W 1 & p1=$!
writer wa2 "$URL_A" $W 2 & p2=$!
writer wb1 "$URL_B" $W 3 & p3=$!
writer wb2 "$URL_B" $W 4 & p4=$!
wait $p1 $p2 $p3 $p4
bad=$(cat "$T"/w-*.status | grep -vc '^201$')
[ "$bad" = 0 ] || fail "concurrent writes refused: $(sort "$T"/w-*.status | uniq -c) $(sort "$T/w-bodies" | uniq -c | head)"
[ "$(cat "$T"/w-*.status | wc -l)" = $((4 * W)) ] || fail "writers did not finish"
nsites=$(pg_sql 'SELECT COUNT(*) FROM sites')
[ "$nsites" = $((3 + 4 * W)) ] || fail "sites in the database: $nsites"
[ "$(pg_sql 'SELECT COUNT(DISTINCT asn) FROM sites')" = "$nsites" ] || fail "an ASN given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM audit')" -ge "$nsites" ] || fail "audit entries lost"

# Full mesh: every pair of sites, once, with unique ids and /31s; both
# replicas list exactly what is stored; the edge on B has a tunnel to
# every other site.
want=$(( nsites * (nsites - 1) / 2 ))
# One replica (the leader) stores the mesh: ~2,500 SA epochs, a few
# round trips each; seconds on an idle machine, far more on a loaded one.
t_conv=$(date +%s)
deadline=$(( $(date +%s) + 90 ))
until [ "$(pg_sql 'SELECT COUNT(*) FROM tunnels')" = "$want" ] &&
	[ "$(grep -c "^tunnel " "$T/br1.tunnels" 2>/dev/null)" = $((nsites - 1)) ]; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		cat "$T/br1.tunnels" >&2
		fail "not converged: $(pg_sql 'SELECT COUNT(*) FROM tunnels') tunnels stored (want $want), edge has $(wc -l <"$T/br1.tunnels"); A alive: $(kill -0 "$CTLD_PID" && echo yes), B alive: $(kill -0 "$B_PID" && echo yes)"
	fi
	sleep 0.2
done
[ "$(pg_sql 'SELECT COUNT(DISTINCT inner_addr) FROM tunnels')" = "$want" ] || fail "a /31 given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT DISTINCT site_a, site_b FROM tunnels) p')" = "$want" ] || fail "a site pair twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM tunnels t WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.id = t.site_a) OR NOT EXISTS (SELECT 1 FROM sites s WHERE s.id = t.site_b)')" = 0 ] ||
	fail "a tunnel names a missing site"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT recv_address, spi FROM sa_epochs GROUP BY recv_address, spi HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "an SPI given twice"
pg_sql 'SELECT id, site_a, site_b, inner_addr FROM tunnels ORDER BY id' >"$T/tunnels.db"
for u in "$URL_A" "$URL_B"; do
	URL=$u
	[ "$(api GET '/api/v1/tunnels')" = 200 ] || fail "GET /tunnels on $u"
	n=$(jq '.tunnels | length' "$T/out")
	[ "$n" = "$want" ] || fail "$u lists $n tunnels, the database $want"
done
kill -0 "$B_PID" || fail "replica B died"
# B, not the leader, followed every change with the leader's stored
# allocations, site by site (topo_site_follow), never by compiling the
# whole network: that would be a reload, or a fallback after a clash.
grep -q "replica: this controller is now the leader" "$T/b.log" && fail "B became the leader"
nfollow=$(grep -c "followed the leader's allocations for" "$T/b.log")
[ "$nfollow" -gt 0 ] || fail "B never followed a change incrementally: $(grep 'session:' "$T/b.log" | tail -n 20)"
! grep -E "reading the leader's allocations|allocations clash|reloading the topology" "$T/b.log" ||
	fail "B compiled the whole network to follow the leader"
# A failed ack is seen by both replicas: br1, restarted on B to refuse
# its first delta (-X), fails one; GET /edges on A shows it too
# (last_failure, stored by B's group commit).
kill "$PID_br1"; wait "$PID_br1" 2>/dev/null
GRPC=$GRPC_B session br1 "$br1" -t "$T/br1.tunnels" -X
wait_for 10 "$T/br1.log" '^ack v=' || fail "br1 again: no intent on B: $(cat "$T/br1.log")"
URL=$URL_A
site_create '{"name":"late","role":"spoke","links":[{"name":"inet","address":"192.0.2.99"}]}' >/dev/null
wait_for 10 "$T/br1.log" '^ack v=[0-9]* failed' || fail "br1 did not refuse a delta: $(tail -n 5 "$T/br1.log")"
v=$(sed -n 's/^ack v=\([0-9]*\) failed.*/\1/p' "$T/br1.log" | head -n 1)
for u in "$URL_A" "$URL_B"; do
	URL=$u
	deadline=$(( $(date +%s) + 10 ))
	until [ "$(api GET /api/v1/edges)" = 200 ] &&
		jq -e --argjson s "$br1" --argjson v "$v" '.edges[] | select(.site_id == $s) |
		.last_failure.version == $v and .last_failure.reason == "test: refused on purpose"' "$T/out" >/dev/null; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$u: no last_failure (version $v) for br1: $(jq -c --argjson s "$br1" '.edges[] | select(.site_id == $s)' "$T/out")"
		sleep 0.1
	done
done
[ "$(pg_sql "SELECT failure_version FROM edges WHERE site_id = $br1")" = "$v" ] || fail "the failure is not stored"
# Both stop cleanly (exit 0: also LeakSanitizer's verdict in ctl_asan).
kill -TERM "$B_PID"; wait "$B_PID"; rc=$?; B_PID=
[ "$rc" = 0 ] || fail "replica B exited with $rc: $(tail -n 20 "$T/b.log")"
stop_controller
echo "pg_replicas: ok ($nsites sites, $want tunnels, stored and on the edge $(( $(date +%s) - t_conv )) s after the writes; B followed $nfollow batches incrementally, held $(grep -c "waiting for the leader.s allocations of" "$T/b.log") back for the leader)"
