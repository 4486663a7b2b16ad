#!/bin/sh
# pg_failover_bench.sh — replica failover time (issue 12): two replicas on
# PostgreSQL, N test edges (default 20) spread over both, each
# configured with both addresses (it moves after 2 s without a stream;
# meshwan-edge waits 30 s); replica A is killed with SIGKILL and the
# time until all of A's edges are reattached to B, and until every edge
# is converged there (GET /edges on B), is measured from the kill.
# RUNS (default 2) runs; no writes meanwhile (tests/ctl/pg_failover.sh
# is the same scenario with writers and its assertions).  Reports only.
#   sh tests/bench/pg_failover_bench.sh [N]
set -u
N=${1:-20}
RUNS=${RUNS:-2}
MESHWAN_TOP=${MESHWAN_TOP:-$(pwd)}
export MESHWAN_TOP BUILD=${BUILD:-build}
r=1
while [ $r -le "$RUNS" ]; do
	out=$(FAILOVER_EDGES=$N FAILOVER_WRITERS=0 FAILOVER_BOUND_S=120 \
	    sh "$MESHWAN_TOP/tests/ctl/pg_failover.sh" 2>&1) ||
		{ echo "$out" | grep -A 3 '^FAIL'; echo "pg_failover_bench: run $r failed"; exit 1; }
	echo "$out" | sed -n "s/^pg_failover: \([0-9]* of [0-9]* edges reattached.*\)/run $r: \1/p"
	r=$((r + 1))
done
