#!/bin/sh
# pg_store.sh — meshwan-controller on PostgreSQL (store = <conninfo>):
#
#   curl ──REST──▶ meshwan-controller ──libpq──▶ throwaway PostgreSQL 15
#                        ▲ Session (mTLS)          (temp folder, Unix
#                   edge_client                     socket, own port)
#
# Sites created through REST are compiled into tunnels and survive a
# controller restart.  Then the database stops: the edge's session stays
# up, writes are refused with 503 naming the cause, reads answer 503 too
# (not 500); the database comes back and, without restarting the
# controller, writes work again and reach the edge.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
trap 'cleanup; pg_stop' EXIT INT TERM
need curl jq openssl psql
[ -x "$EDGE" ] || fail "$EDGE is not built"
pg_start || fail "no PostgreSQL cluster"

write_config <<EOF
store = $PG_CONNINFO
EOF
start_controller
grep -q 'store: postgresql$' "$T/ctld.log" || fail "the controller does not say it runs on PostgreSQL"
[ ! -e "$T/controller.db" ] || fail "a sqlite file was made"

hq=$(site_create '{"name":"hq","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
br1=$(site_create '{"name":"br1","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
# The session loop compiles (coalescing changes for 50 ms; the deadline
# is for a loaded machine).
deadline=$(( $(date +%s) + 20 ))
until [ "$(api GET /api/v1/tunnels)" = 200 ] &&
	jq -e --argjson a "$hq" --argjson b "$br1" '.tunnels | length == 1 and
	(.[0] | [.site_a, .site_b] | sort == ([$a, $b] | sort))' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "hq-br1 tunnel not compiled: $(cat "$T/out")"
	sleep 0.1
done
[ "$(pg_sql 'SELECT COUNT(*) FROM tunnels')" = 1 ] || fail "tunnel not in PostgreSQL"

# A restart keeps sites and tunnels (same ports: the edge comes back).
api GET /api/v1/sites >/dev/null; jq -S . "$T/out" >"$T/sites.before"
api GET /api/v1/tunnels >/dev/null; jq -S . "$T/out" >"$T/tunnels.before"
stop_controller
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config <<EOF
store = $PG_CONNINFO
EOF
start_controller
grep -q 'new database' "$T/ctld.log" && fail "the restart seeded a new database"
api GET /api/v1/sites >/dev/null; jq -S . "$T/out" >"$T/sites.after"
api GET /api/v1/tunnels >/dev/null; jq -S . "$T/out" >"$T/tunnels.after"
cmp -s "$T/sites.before" "$T/sites.after" || fail "sites changed across the restart"
cmp -s "$T/tunnels.before" "$T/tunnels.after" || fail "tunnels changed across the restart"

# An edge on its session.
tok=$(token "$br1"); make_key br1
enroll br1 "$tok" >/dev/null || fail "enroll"
der_to_pem br1
session br1 "$br1"
wait_for 10 "$T/br1.log" '^ack v=' || fail "no first intent: $(cat "$T/br1.log")"

# The database stops.
pg_halt || fail "could not stop the database"
st=$(api POST /api/v1/sites '{"name":"hq2","role":"hub","links":[{"name":"inet","address":"192.0.2.3"}]}')
[ "$st" = 503 ] || fail "write with the database down gave $st: $(cat "$T/out")"
jq -e '.code == "busy" and (.message | test("database unavailable: .*(connect|server|socket|terminat)"))' "$T/out" >/dev/null ||
	fail "the 503 does not name the cause: $(cat "$T/out")"
st=$(api GET /api/v1/sites)
[ "$st" = 503 ] || fail "read with the database down gave $st: $(cat "$T/out")"
wait_for 5 "$T/ctld.log" 'store: database (connection lost|still unreachable)' ||
	fail "the outage is not logged"
# The connected edge keeps its session through the outage.
sleep 2
grep -q '^closed ' "$T/br1.log" && fail "the edge lost its session: $(cat "$T/br1.log")"
kill -0 "$CTLD_PID" || fail "the controller died"

# The database returns: writes work again without a restart (the
# reconnect backoff is at most 5 s) and reach the edge.
pg_resume || fail "could not restart the database"
deadline=$(( $(date +%s) + 15 ))
while :; do
	st=$(api POST /api/v1/sites '{"name":"hq2","role":"hub","links":[{"name":"inet","address":"192.0.2.3"}]}')
	[ "$st" = 201 ] && break
	[ "$st" = 503 ] || fail "write after the outage gave $st: $(cat "$T/out")"
	[ "$(date +%s)" -lt "$deadline" ] || fail "writes still refused 15 s after the database returned"
	sleep 0.2
done
wait_for 5 "$T/ctld.log" 'store: database connection restored' || fail "the reconnect is not logged"
# A delta, or a snapshot with the new tunnel when the session layer's own
# connection came back after its first compile try (it then reloads all).
wait_for 10 "$T/br1.log" '^(delta .* up=1 |snapshot v=[0-9]+ tunnels=2$)' ||
	fail "the new hub did not reach the edge: $(cat "$T/br1.log")"
grep -q '^closed ' "$T/br1.log" && fail "the edge lost its session: $(cat "$T/br1.log")"
[ "$(pg_sql 'SELECT COUNT(*) FROM sites')" = 3 ] || fail "sites in PostgreSQL: $(pg_sql 'SELECT name FROM sites')"
stop_controller
echo "pg_store: ok"
