#!/bin/sh
# pg_concurrency.sh — 20 REST writers on two replicas for 60 s (issue 12;
# controller/CONTROLLER.md, "Two replicas on PostgreSQL"):
#
#   10 writers ──REST──▶ replica A ──┐
#   10 writers ──REST──▶ replica B ──┴──▶ PostgreSQL   (encap vxlan: VNIs)
#
# Each writer creates sites and deletes its older ones (at most two of
# its own alive), on both replicas at once.  Afterwards, when both
# replicas have compiled what is stored: GET /sites and GET /tunnels (on
# both replicas) agree — every tunnel names two listed sites, every pair
# of listed sites has its tunnel (full mesh), no /31 or VNI twice — and
# the SA epochs hold no SPI twice per receiving address.  No write may
# fail with anything but 503 busy (or go unanswered within 20 s on a
# loaded machine: not acknowledged either), and none acknowledged may be
# lost: every site a writer created and did not delete is listed.  CONCURRENCY_S sets the
# 60 s.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
trap 'touch "$T/stop"; [ -n "${KEEP:-}" ] && cp -r "$T" /tmp/ha-keep; replica_cleanup; cleanup; pg_stop' EXIT INT TERM
need curl jq psql
pg_start || fail "no PostgreSQL cluster"
DUR=${CONCURRENCY_S:-60}

write_config <<EOF2
store = $PG_CONNINFO
encap = vxlan
EOF2
start_controller
URL_A=$URL
replica_start B </dev/null

# writer N URL: create w<N>-<i>, keep at most two of its own alive
# ("id name" lines in w<N>.alive, oldest first).
writer() {
	j=0
	: >"$T/w$1.alive"
	while [ ! -e "$T/stop" ]; do
		j=$((j + 1))
		st=$(curl -s -m 20 -o "$T/w$1.body" -w '%{http_code}' -X POST  -H "$H" \
			-H 'Content-Type: application/json' --data \
			"{\"name\":\"w$1-$j\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.$1.$((j / 250)).$((j % 250 + 1))\"}]}" \
			"$2/api/v1/sites")
		echo "create w$1-$j $st" >>"$T/w$1.log"
		if [ "$st" = 201 ]; then
			echo "$(jq -r .id "$T/w$1.body") w$1-$j" >>"$T/w$1.alive"
		elif [ "$st" != 503 ] && [ "$st" != 000 ]; then
			# 503 busy, or no answer in time (a loaded machine): not
			# acknowledged, so either outcome is fine.
			echo "w$1-$j $st $(cat "$T/w$1.body")" >>"$T/bad"
		fi
		[ "$(wc -l <"$T/w$1.alive")" -gt 2 ] || continue
		read -r id name <"$T/w$1.alive"
		st=$(curl -s -m 20 -o "$T/w$1.body" -w '%{http_code}' -X DELETE -H "$H" "$2/api/v1/sites/$id")
		echo "delete $name $st" >>"$T/w$1.log"
		if [ "$st" = 000 ]; then
			# No answer in time: did it happen?
			st=$(curl -s -m 60 -o /dev/null -w '%{http_code}' -H "$H" "$2/api/v1/sites/$id")
			[ "$st" = 404 ] && st=204
			[ "$st" = 200 ] && st=503
		fi
		case "$st" in
		204) sed -i 1d "$T/w$1.alive" ;;
		503) ;;         # refused: still alive, tried again next round
		*) echo "delete $name $st $(cat "$T/w$1.body")" >>"$T/bad" ;;
		esac
	done
}
pids=
n=1
while [ $n -le 20 ]; do
	if [ $((n % 2)) = 1 ]; then u=$URL_A; else u=$URL_B; fi
	writer $n "$u" & pids="$pids $!"
	n=$((n + 1))
done
BG_PIDS="$BG_PIDS $pids"
sleep "$DUR"
touch "$T/stop"
wait $pids
[ ! -s "$T/bad" ] || fail "writes refused: $(head -n 5 "$T/bad")"
creates=$(cat "$T"/w*.log | grep -c '^create .* 201$')
deletes=$(cat "$T"/w*.log | grep -c '^delete .* 204$')
busy=$(cat "$T"/w*.log | grep -c ' 503$')
late=$(cat "$T"/w*.log | grep -c ' 000$')
echo "pg_concurrency: $creates sites created, $deletes deleted, $busy writes answered 503 busy, $late unanswered within 20 s, by 20 writers in $DUR s"
[ "$creates" -ge 20 ] || fail "only $creates creates in $DUR s"

# Quiescence: both replicas list the full mesh of the listed sites.
check() {	# URL: 0 when its lists agree and are complete
	URL=$1
	[ "$(api GET /api/v1/sites)" = 200 ] || return 1
	jq '[.sites[].id] | sort' "$T/out" >"$T/ids"
	[ "$(api GET /api/v1/tunnels)" = 200 ] || return 1
	jq -e --slurpfile ids "$T/ids" '
		($ids[0]) as $s | ($s | length) as $n |
		(.tunnels | length) == ($n * ($n - 1) / 2) and
		all(.tunnels[]; (.site_a as $a | $s | index($a)) != null and
			(.site_b as $b | $s | index($b)) != null) and
		([.tunnels[] | [.site_a, .site_b]] | unique | length) == (.tunnels | length) and
		([.tunnels[].inner] | unique | length) == (.tunnels | length) and
		([.tunnels[].vni] | unique | length) == (.tunnels | length) and
		all(.tunnels[]; .vni != null)' "$T/out" >/dev/null
}
deadline=$(( $(date +%s) + 90 ))
until check "$URL_A" && cp "$T/out" "$T/tunnels.A" && check "$URL_B" &&
	[ "$(jq -c '[.tunnels[] | [.id, .inner, .vni]] | sort' "$T/out")" = "$(jq -c '[.tunnels[] | [.id, .inner, .vni]] | sort' "$T/tunnels.A")" ]; do
	[ "$(date +%s)" -lt "$deadline" ] ||
		fail "GET /sites and GET /tunnels disagree on $URL: $(jq -c '.tunnels | length' "$T/out") tunnels for $(jq length "$T/ids") sites"
	sleep 0.5
done
nsites=$(jq length "$T/ids")
# Nothing acknowledged is lost: every site a writer still had is listed.
URL=$URL_A
api GET /api/v1/sites >/dev/null
jq -r '.sites[].name' "$T/out" | sort >"$T/listed"
cat "$T"/w*.alive | cut -d" " -f2 | sort >"$T/kept"
missing=$(comm -23 "$T/kept" "$T/listed")
[ -z "$missing" ] || fail "created, not deleted, but not listed: $missing"
[ "$(pg_sql 'SELECT COUNT(*) FROM (SELECT recv_address, spi FROM sa_epochs GROUP BY recv_address, spi HAVING COUNT(*) > 1) d')" = 0 ] ||
	fail "an SPI given twice"
[ "$(pg_sql 'SELECT COUNT(*) FROM sa_epochs e WHERE NOT EXISTS (SELECT 1 FROM tunnels t WHERE t.id = e.tunnel_id)')" = 0 ] ||
	fail "an SA epoch of a deleted tunnel"
echo "pg_concurrency: both replicas agree: $nsites sites, $(jq '.tunnels | length' "$T/tunnels.A") tunnels, unique /31s, VNIs and SPIs; reloads: A $(grep -c 'reloading the topology' "$T/ctld.log"), B $(grep -c 'reloading the topology' "$T/B.log")"
kill -TERM "$PID_B"; wait "$PID_B"; rc=$?; REPLICAS=
[ "$rc" = 0 ] || fail "replica B exited with $rc: $(tail -n 20 "$T/B.log")"
stop_controller
echo "pg_concurrency: ok"
