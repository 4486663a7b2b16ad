#!/bin/sh
# events_stream.sh — the dashboard's live feed, GET /api/v1/events/stream
# (server-sent events), and the tunnel health history:
#
#   curl -N ──SSE──▶ meshwan-controller ◀──Session (mTLS)── edge_client
#   curl ──REST───▶  (127.0.0.1, free ports)                  (-s -H: status
#                                                              with health)
#
# A REST change shows up as `audit` and `site` events; an edge connecting
# shows up as an `edge` event within 2 s; a stream resumed with
# Last-Event-ID gets every event it missed, in order, without a gap; an id
# no longer held gets `reset`; no token, a token in the URL and too many
# streams are refused; the edge's health reports fill
# GET /api/v1/tunnels/{id}/health.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

write_config </dev/null
start_controller
S="$URL/api/v1/events/stream"

# stream NAME [curl args] — background SSE reader, output in $T/NAME.sse
stream() {
	_n=$1; shift
	curl -sN -H "$H" "$@" "$S" >"$T/$_n.sse" 2>"$T/$_n.err" &
	BG_PIDS="$BG_PIDS $!"
	eval "SPID_$_n=$!"
}
# events FILE — "id type" per event, in order
events() {
	awk '/^id: /{id=$2} /^event: /{print id, $2}' "$1"
}
# data FILE TYPE — the data lines of events of TYPE
data() {
	awk -v t="$2" '/^event: /{e=$2} /^data: /{ if (e==t) print substr($0, 7) }' "$1"
}

# Refusals: no token, a token in the URL, a bad Last-Event-ID.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S")" = 401 ] || fail "stream without a token"
[ "$(curl -s -o "$T/out" -w '%{http_code}' "$S?token=$ADMIN")" = 400 ] || fail "token in the URL accepted"
jq -e '.code == "token_in_url"' "$T/out" >/dev/null || fail "token in URL: $(cat "$T/out")"
grep -q "$ADMIN" "$T/ctld.log" && fail "the token reached the log"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "$H" -H 'Last-Event-ID: x1' "$S")" = 400 ] || fail "bad Last-Event-ID"

stream a
wait_for 5 "$T/a.sse" '^event: ready' || fail "no ready event: $(cat "$T/a.sse" "$T/a.err")"
grep -q '^retry: ' "$T/a.sse" || fail "no retry hint"

# A REST change: audit and site events, the audit one as GET /events shows it.
hq=$(site_create '{"name":"hq","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
wait_for 2 "$T/a.sse" '^event: site' || fail "no site event within 2 s: $(cat "$T/a.sse")"
wait_for 2 "$T/a.sse" '^event: audit' || fail "no audit event"
api GET "/api/v1/events" >/dev/null
data "$T/a.sse" audit | head -n 1 | jq -S . >"$T/ev1"
jq -S '.events[-1]' "$T/out" >"$T/ev2"
cmp -s "$T/ev1" "$T/ev2" || fail "audit event differs from GET /events: $(cat "$T/ev1") vs $(cat "$T/ev2")"
data "$T/a.sse" site | tail -n 1 | jq -e ".id == $hq and .name == \"hq\"" >/dev/null || fail "site event: $(data "$T/a.sse" site)"

# An edge connects: an edge event within 2 s, with the same JSON as GET.
br=$(site_create '{"name":"br1","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}],"lan_prefixes":["10.1.0.0/24"]}')
tok=$(token "$br")
make_key br1
enroll br1 "$tok" >/dev/null || fail "enroll"
der_to_pem br1
session br1 "$br" -s -S 3 -H
wait_for 10 "$T/br1.log" '^open' || fail "edge did not open: $(cat "$T/br1.log")"
t0=$(date +%s%N)
until data "$T/a.sse" edge | jq -s -e "any(.[]; .site_id == $br and .connected == true)" >/dev/null 2>&1; do
	[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 2000 ] || fail "no edge event within 2 s: $(events "$T/a.sse")"
	sleep 0.05
done
echo "edge event $(( ($(date +%s%N) - t0) / 1000000 )) ms after the edge's stream opened"
# Acked: converged shows up without asking.
wait_for 10 "$T/br1.log" '^ack v=' || fail "no ack"
deadline=$(( $(date +%s) + 3 ))
until data "$T/a.sse" edge | jq -s -e "any(.[]; .site_id == $br and .converged == true and .status != null)" >/dev/null 2>&1; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no converged edge event: $(data "$T/a.sse" edge | tail -n 2)"
	sleep 0.05
done
wait_for 3 "$T/a.sse" '^event: tunnel' || fail "no tunnel event"
last=$(data "$T/a.sse" edge | tail -n 1)
api GET "/api/v1/edges/$br" >/dev/null
[ "$(echo "$last" | jq -S 'del(.status)')" = "$(jq -S 'del(.status, .last_failure)' "$T/out")" ] ||
	fail "edge event differs from GET /edges/$br: $last vs $(cat "$T/out")"

# Ids are increasing by one.
events "$T/a.sse" | awk 'NR>1 && $1 != p+1 { bad=1 } { p=$1 } END { exit bad }' ||
	fail "ids not consecutive: $(events "$T/a.sse")"

# Resume: drop the stream, change things, come back with Last-Event-ID.
kill "$SPID_a"; wait "$SPID_a" 2>/dev/null
lid=$(events "$T/a.sse" | tail -n 1 | cut -d' ' -f1)
site_create '{"name":"br2","role":"spoke","region":"us","links":[{"name":"inet","address":"192.0.2.3"}],"lan_prefixes":["10.2.0.0/24"]}' >/dev/null
[ "$(api PATCH "/api/v1/sites/$hq" '{"region":"us"}')" = 200 ] || fail "PATCH: $(cat "$T/out")"
# Wait until the controller has published them: a fresh stream's ready id moves.
deadline=$(( $(date +%s) + 3 ))
while :; do
	curl -sN -m 0.5 -H "$H" "$S" >"$T/probe.sse" 2>/dev/null
	now=$(events "$T/probe.sse" | head -n 1 | cut -d' ' -f1)
	[ -n "$now" ] && [ "$now" -ge $((lid + 4)) ] && break
	[ "$(date +%s)" -lt "$deadline" ] || fail "changes not published: $now vs $lid"
done
curl -sN -m 2 -H "$H" -H "Last-Event-ID: $lid" "$S" >"$T/b.sse"
events "$T/b.sse" >"$T/b.ids"
head -n 1 "$T/b.ids" | grep -q " ready$" || fail "resume did not start with ready: $(cat "$T/b.ids")"
awk -v l="$lid" 'NR==1 { if ($1 != l) exit 1; p=$1; next } $1 != p+1 { exit 1 } { p=$1 }' "$T/b.ids" ||
	fail "resumed stream has a gap after $lid: $(cat "$T/b.ids")"
[ "$(tail -n 1 "$T/b.ids" | cut -d' ' -f1)" -ge "$now" ] || fail "resume stopped early: $(cat "$T/b.ids")"
data "$T/b.sse" site | jq -s -e 'any(.[]; .name == "br2")' >/dev/null || fail "missed site br2"
data "$T/b.sse" site | jq -s -e "any(.[]; .id == $hq and .region == \"us\")" >/dev/null || { cat "$T/b.sse" >&2; fail "missed the PATCH"; }
# The same with the query argument (for clients that cannot set headers).
curl -sN -m 1 -H "$H" "$S?last_event_id=$lid" >"$T/c.sse"
[ "$(events "$T/c.sse")" = "$(cat "$T/b.ids")" ] || fail "?last_event_id= differs from Last-Event-ID"

# Too old (or never given out): reset.
curl -sN -m 1 -H "$H" -H "Last-Event-ID: 1" "$S" >"$T/r.sse"
events "$T/r.sse" | head -n 1 | grep -q ' reset$' || fail "no reset for an old id: $(cat "$T/r.sse")"
curl -sN -m 1 -H "$H" -H "Last-Event-ID: $((now + 1000000))" "$S" >"$T/r2.sse"
events "$T/r2.sse" | head -n 1 | grep -q ' reset$' || fail "no reset for a future id"

grep -q 'REST API: plaintext HTTP on loopback' "$T/ctld.log" || fail "log does not say plaintext"

# Health history from the edge's status reports (uptime 1..3, then 42:
# the latest report of a 10 s slot wins).
tun=$(api GET "/api/v1/tunnels?site=$br" >/dev/null; jq -r '.tunnels[0].id' "$T/out")
[ "$(api GET "/api/v1/tunnels/$tun/health")" = 200 ] || fail "health: $(cat "$T/out")"
jq -e --argjson s "$br" '.interval_seconds == 10 and .window_seconds == 3600 and
	(.series | length) == 1 and .series[0].site_id == $s and
	(.series[0].at | length) >= 1 and (.series[0].at | length) <= 2 and
	(.series[0].rtt_us | length) == (.series[0].at | length) and
	(.series[0].rtt_us[-1] >= 1001) and .series[0].up[-1] == true' "$T/out" >/dev/null ||
	fail "health history: $(cat "$T/out")"
# Another enrolled edge reporting health for br1's tunnel (it is not one
# of its ends) is not kept: the history still has br1's series alone.
b3=$(site_create '{"name":"br3","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.4"}],"lan_prefixes":["10.3.0.0/24"]}')
tok=$(token "$b3")
make_key br3
enroll br3 "$tok" >/dev/null || fail "enroll br3"
der_to_pem br3
session br3 "$b3" -s -S 2 -H -Y "$tun"
wait_for 10 "$T/br3.log" '^status sent' || fail "br3 sent no status: $(cat "$T/br3.log")"
deadline=$(( $(date +%s) + 3 ))
until [ "$(api GET "/api/v1/edges/$b3")" = 200 ] && jq -e --argjson t "$tun" 'any(.status.health[]; .tunnel_id == $t)' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "br3's forged report not stored: $(cat "$T/out")"
	sleep 0.1
done
sleep 1	# the event watcher looks every 250 ms
[ "$(api GET "/api/v1/tunnels/$tun/health")" = 200 ] || fail "health: $(cat "$T/out")"
jq -e --argjson s "$br" '(.series | length) == 1 and .series[0].site_id == $s' "$T/out" >/dev/null ||
	fail "a site not on tunnel $tun wrote its health history: $(cat "$T/out")"
kill "$PID_br3" 2>/dev/null
[ "$(api GET "/api/v1/tunnels/99999/health")" = 404 ] || fail "health of an unknown tunnel"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/tunnels/$tun/health")" = 401 ] || fail "health without a token"

# Limits (after a restart with small ones): 2 per token and address,
# 3 in all; a closed stream's place is free again within a second.
stop_controller
write_config <<'CONF'
sse_max_streams = 3
sse_max_streams_per_client = 2
CONF
start_controller
S="$URL/api/v1/events/stream"
stream l1; stream l2
wait_for 5 "$T/l1.sse" '^event: ready' && wait_for 5 "$T/l2.sse" '^event: ready' || fail "streams l1/l2"
st=$(curl -s -m 2 -o "$T/out" -w '%{http_code}' -H "$H" "$S")
[ "$st" = 429 ] || fail "third stream of one token: $st"
jq -e '.code == "too_many_streams" and (.message | test("token"))' "$T/out" >/dev/null || fail "limit: $(cat "$T/out")"
kill "$SPID_l2"; wait "$SPID_l2" 2>/dev/null
deadline=$(( $(date +%s) + 3 ))
until [ "$(curl -s -m 0.5 -o /dev/null -w '%{http_code}' -H "$H" "$S")" = 200 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "a closed stream's place was not freed"
	sleep 0.2
done
stop_controller
echo "events_stream: ok"
