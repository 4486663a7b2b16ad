#!/bin/sh
# pg_follow_bench.sh — cross-replica delay at scale (issue 12): two
# replicas on PostgreSQL, hub-and-spoke, N spokes (default 1,000) created
# through replica A (the leader); hub br1's test edge on replica B (which
# follows the leader's allocations).  Then five spokes are created through
# A, one at a time, and for each the time until br1 on B has acked a new
# version is printed (it gets a tunnel to each new spoke).  Reports only.
#   sh tests/bench/pg_follow_bench.sh [N]
set -u
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
export MESHWAN_TOP BUILD=${BUILD:-build}
. "$MESHWAN_TOP/tests/ctl/lib.sh"
. "$MESHWAN_TOP/tests/lib/pg.sh"
. "$MESHWAN_TOP/tests/ctl/pg_lib.sh"
trap 'replica_cleanup; cleanup; pg_stop' EXIT INT TERM
N=${1:-1000}
pg_start || fail "no PostgreSQL cluster"
write_config <<EOF2
store = $PG_CONNINFO
policy = hub-and-spoke
EOF2
start_controller
URL_A=$URL
replica_start B </dev/null
br1=$(site_create '{"name":"br1","role":"hub","links":[{"name":"inet","address":"10.200.0.1"}]}')
site_create '{"name":"hub2","role":"hub","links":[{"name":"inet","address":"10.200.0.2"}]}' >/dev/null
i=0
while [ $i -lt "$N" ]; do
	i=$((i + 1))
	curl -s -o /dev/null -X POST -H "$H" -H 'Content-Type: application/json' --data \
	  "{\"name\":\"s$i\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.$((i / 250)).$((i % 250)).1\"}]}" "$URL_A/api/v1/sites"
done
enroll_site br1 "$br1"
GRPC=$GRPC_B session br1 "$br1" -t "$T/br1.tunnels"
wait_for 60 "$T/br1.log" '^ack v=' || fail "no first intent on B"
sleep 5
for k in 1 2 3 4 5; do
	n0=$(grep -c '^ack v=' "$T/br1.log")
	t0=$(date +%s%N)
	site_create "{\"name\":\"x$k\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"10.250.0.$k\"}]}" >/dev/null
	while [ "$(grep -c '^ack v=' "$T/br1.log")" -le "$n0" ]; do
		[ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 60000 ] || fail "no ack"
		sleep 0.01
	done
	echo "pg_follow_bench: $N spokes, change $k: acked on B after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	sleep 1
done
