#!/bin/sh
# consistency.sh — concurrent REST writers never make the controller's
# stored tunnels, its in-memory topology and its edges' intents disagree:
#
#   churn load (8 client threads) ──REST──▶ meshwan-controller ──▶ controller.db
#     random creates, patches, deletes,        ▲ Session (mTLS)       │
#     revocations, link and prefix edits,      │                      │ read
#     policy switches, rekeys for ~20 s    edge_client e1 e2 e3   churn check
#
# After the writers stop and the controller is quiet:
#   - the stored tunnels are what a fresh compile of the stored sites and
#     policy gives (the stored allocations are a fixpoint: nothing added,
#     removed or moved), no tunnel names a missing or revoked site, no /31,
#     VNI or (address, SPI) is used twice, every tunnel has SA epochs both
#     ways (churn check);
#   - each live edge is converged (hash equal) and the intent it applied
#     holds exactly its stored tunnels (memory == store);
#   - a restart on the same database rebuilds every edge's intent from the
#     store and finds it equal to what the edge acked (version kept);
#   - a change of the stored allocations by another writer (as a second
#     controller on the same database would make) is noticed at the next
#     recompile, which reloads from the store: consistent again.
#
# CONSISTENCY_SEED (default: from the clock; printed), CONSISTENCY_CLIENTS
# (8) and CONSISTENCY_SECONDS (20) change the run; a failure prints the
# seed to replay it.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
CHURN=${CHURN:-$BUILD/tests/ctl/churn}
[ -x "$EDGE" ] || fail "$EDGE is not built"
[ -x "$CHURN" ] || fail "$CHURN is not built"
SEED=${CONSISTENCY_SEED:-$(( $(date +%s) % 100000 ))}
CLIENTS=${CONSISTENCY_CLIENTS:-8}
SECS=${CONSISTENCY_SECONDS:-20}
echo "consistency: seed $SEED, $CLIENTS clients, $SECS s (CONSISTENCY_SEED=$SEED replays it)"
LOG_LINES=20
# Keep the controller's whole log next to the test's when it fails.
fail_kept() {
	cp "$T/ctld.log" "$BUILD/test-logs/ctl_consistency.ctld.log" 2>/dev/null
	fail "$@"
}

write_config <<CONF
policy = full-mesh
test_check_patch = 1
CONF
start_controller

# Three sites with live edges; the workload never deletes or revokes them.
keep=
files=
for n in e1 e2 e3; do
	i=${n#e}
	id=$(site_create "{\"name\":\"$n\",\"role\":\"hub\",\"region\":\"eu\",\"links\":[{\"name\":\"inet\",\"address\":\"192.0.2.$i\"}],\"lan_prefixes\":[\"10.$i.0.0/24\"]}")
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
	session "$n" "$id" -t "$T/$n.tunnels"
	keep="$keep $id"
	files="$files $id:$T/$n.tunnels"
done

# converged — every kept edge connected and at its newest version.
converged() {
	[ "$(api GET /api/v1/edges)" = 200 ] || return 1
	for _s in $keep; do
		jq -e --argjson id "$_s" '.edges[] | select(.site_id == $id) |
			.connected and .converged' "$T/out" >/dev/null || return 1
	done
}

# quiet SECONDS — poll until the edges converged and the store and the
# edges' intents pass the check; the last check's output is in $T/check.
quiet() {
	_deadline=$(( $(date +%s) + $1 ))
	while :; do
		if converged && "$CHURN" check "$T/controller.db" $files >"$T/check" 2>&1; then
			return 0
		fi
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.2
	done
}

quiet 20 || fail "not consistent before the load (seed $SEED): $(cat "$T/check")"

"$CHURN" load "$URL" "$ADMIN" "$SEED" "$CLIENTS" "$SECS" $keep >"$T/churn" 2>&1 ||
	fail_kept "the load saw server errors (seed $SEED): $(tail -n 5 "$T/churn")"
cat "$T/churn"

if ! quiet 30; then
	echo "--- check (seed $SEED)"
	cat "$T/check"
	echo "--- controller warnings"
	grep -E 'session: .*(storing|compile|differ|reload)' "$T/ctld.log" |
		sed 's/^[^ ]* [^ ]* //; s/[0-9][0-9]*/N/g' | sort | uniq -c | sort -rn | head
	fail_kept "stored tunnels, memory and edges disagree at quiescence (seed $SEED)"
fi
cat "$T/check"
grep -E 'differ from the store|patch check failed' "$T/ctld.log" &&
	fail_kept "the controller's own checks found a difference (seed $SEED)"
echo "controller warnings during the load: $(grep -c 'session: storing' "$T/ctld.log") store step(s) failed, $(grep -c 'reloading the topology' "$T/ctld.log") reload(s)"
# (a reload is correct but should be rare: say what caused each)
grep -B4 'reloading the topology' "$T/ctld.log" | grep -v ' api: \|rekey to epoch' || :

# A restart rebuilds each edge's intent from the store alone: it must
# equal what the edge acked from memory, so every edge keeps its version.
stop_controller
cp "$T/ctld.log" "$T/ctld.load.log"
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config <<CONF
policy = full-mesh
test_check_patch = 1
CONF
start_controller
for s in $keep; do
	wait_for 20 "$T/ctld.log" "session: site $s connected .*, up to date" ||
		fail_kept "after a restart edge $s's intent from the store is not what it held (seed $SEED): $(grep "site $s " "$T/ctld.log")"
done
quiet 10 || fail_kept "not consistent after the restart (seed $SEED): $(cat "$T/check")"

# Another writer (as a second controller on this database would) changes
# the allocations: the next recompile must notice and reload from the
# store rather than compile on top of what it remembers.
"$CHURN" steal "$T/controller.db" || fail_kept "could not change the tunnels"
for s in $keep; do
	st=$(api PATCH "/api/v1/sites/$s" '{"region":"us"}')
	[ "$st" = 200 ] || fail_kept "PATCH site $s gave $st: $(cat "$T/out")"
done
wait_for 10 "$T/ctld.log" 'stored tunnels changed under this controller' ||
	fail_kept "the controller did not notice another writer's allocations"
wait_for 10 "$T/ctld.log" 'reloading the topology' || fail_kept "no reload"
quiet 10 || fail_kept "not consistent after another writer's change: $(cat "$T/check")"
echo "another writer's change: noticed, reloaded, consistent"
stop_controller
echo "PASS: consistency (seed $SEED)"
