#!/bin/sh
# group_commit.sh — status reports, hellos and key announcements do not
# cost one fsynced commit each on the session event loop:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client a
#                   (127.0.0.1, free     (hello, epoch key, then 200
#                    ports, temp dir)     status reports in a row)
#
# The loop's commits (meshwan_session_store_commits_total in /metrics)
# grow by far fewer than the messages, the latest status is what
# GET /api/v1/edges/{id} shows within the 100 ms flush interval, and the
# announced key is stored (it survives a restart: peer_keys.sh).
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

N=200

write_config </dev/null
start_controller
a=$(site_create '{"name":"a","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}]}')
b=$(site_create '{"name":"b","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}]}')
for n in a b; do
	eval "id=\$$n"
	make_key "$n"
	enroll "$n" "$(token "$id")" >/dev/null || fail "enroll $n"
	der_to_pem "$n"
done
session b "$b"
wait_for 10 "$T/b.log" '^ack v=' || fail "b got no intent: $(cat "$T/b.log")"

# commits — the loop's commit count from /metrics.
commits() {
	curl -s -H "$H" "$URL/metrics" | sed -n 's/^meshwan_session_store_commits_total \([0-9]*\)$/\1/p'
}
# Settled: b's hello, ack and the compiles are in.
deadline=$(( $(date +%s) + 5 ))
until [ "$(api GET "/api/v1/edges/$b")" = 200 ] && jq -e '.connected and .converged' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "b not converged: $(cat "$T/out")"
	sleep 0.1
done
c0=$(commits)
[ -n "$c0" ] || fail "no meshwan_session_store_commits_total in /metrics"

session a "$a" -k 1 -S "$N"
wait_for 10 "$T/a.log" "^status sent tunnels=1\$" || fail "a sent no status: $(cat "$T/a.log")"
[ "$(grep -c '^status sent' "$T/a.log")" = "$N" ] || fail "a sent $(grep -c '^status sent' "$T/a.log") statuses"
# The latest report is the one shown, within the flush interval.
deadline=$(( $(date +%s) + 10 ))
until [ "$(api GET "/api/v1/edges/$a")" = 200 ] &&
	jq -e --argjson n "$N" '.connected and .status.uptime_seconds == $n' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "latest status not shown: $(cat "$T/out")"
	sleep 0.05
done
# The key was stored, then relayed to b.
wait_for 5 "$T/b.log" "^peer_keys site=$a n=1 epoch=1\$" || fail "key not relayed: $(cat "$T/b.log")"
c1=$(commits)
echo "commits for $N status reports, a hello and a key announcement: $((c1 - c0))"
[ $((c1 - c0)) -le $((N / 4)) ] || fail "$((c1 - c0)) commits for $N status reports"
curl -s -H "$H" "$URL/metrics" | grep -q '^meshwan_session_store_statements_total [1-9]' ||
	fail "no statement counter"

# Shutdown writes what waits: a's disconnection is stored.
stop_controller
GRPC_PORT=$GRPC ENROLL_PORT=$ENROLL HTTP_PORT=$HTTP write_config </dev/null
kill "$PID_a" "$PID_b"; wait "$PID_a" "$PID_b" 2>/dev/null
start_controller
[ "$(api GET "/api/v1/edges/$a")" = 200 ] || fail "GET /edges/$a"
jq -e --argjson n "$N" '(.connected | not) and .status.uptime_seconds == $n' "$T/out" >/dev/null ||
	fail "state after a restart: $(cat "$T/out")"
stop_controller
echo "group_commit: ok"
