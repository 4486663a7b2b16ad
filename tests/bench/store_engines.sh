#!/bin/sh
# store_engines.sh — REST POST /api/v1/sites latency with the controller on
# sqlite and on a throwaway PostgreSQL 15 cluster (Unix socket, fsync off
# as in the tests, so this compares the engines' statement paths, not
# disks), one run each, N sites created one after another (default 200):
# p50 / p90 / max in ms and the PG/sqlite ratio of the medians (the
# cross-replica delay is printed by tests/ctl/pg_replicas.sh).  Reports
# only; asserts nothing about speed.
#   sh tests/bench/store_engines.sh [N]
set -u
N=${1:-200}
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
export MESHWAN_TOP
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
trap 'cleanup; pg_stop' EXIT INT TERM
need curl jq psql

# run_engine NAME — creates N sites, writes the latencies (ms) to $T/NAME.ms
run_engine() {
	start_controller
	i=0
	: >"$T/$1.ms"
	while [ $i -lt "$N" ]; do
		i=$((i + 1))
		curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST \
			-H "$H" -H 'Content-Type: application/json' --data \
			"{\"name\":\"s$i\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.$((i / 250)).$((i % 250)).1\"}]}" \
			"$URL/api/v1/sites" >>"$T/$1.raw"
	done
	grep -v '^201 ' "$T/$1.raw" | head -n 3 | grep . && fail "$1: refused creates"
	awk '{ printf "%.2f\n", $2 * 1000 }' "$T/$1.raw" | sort -n >"$T/$1.ms"
	stop_controller
}

stats() {
	awk '{ v[NR] = $1 } END { printf "p50 %.2f ms  p90 %.2f ms  max %.2f ms", v[int(NR * 0.5)], v[int(NR * 0.9)], v[NR] }' "$1"
}

write_config </dev/null
run_engine sqlite
pg_start || fail "no PostgreSQL cluster"
rm -rf "$T/ca" "$T/admin.token"
write_config <<EOF
store = $PG_CONNINFO
EOF
run_engine pg

s50=$(awk '{ v[NR] = $1 } END { print v[int(NR * 0.5)] }' "$T/sqlite.ms")
p50=$(awk '{ v[NR] = $1 } END { print v[int(NR * 0.5)] }' "$T/pg.ms")
echo "POST /api/v1/sites, $N sites one after another (full mesh: the n-th adds n-1 tunnels)"
echo "  sqlite:     $(stats "$T/sqlite.ms")"
echo "  postgresql: $(stats "$T/pg.ms")"
echo "  ratio of medians pg/sqlite: $(awk -v a="$p50" -v b="$s50" 'BEGIN { printf "%.2f", a / b }')"
