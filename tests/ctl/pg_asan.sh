#!/bin/sh
# pg_asan.sh — the two-replica scenarios with meshwan-controller built
# with AddressSanitizer, LeakSanitizer and UBSan (build-san/): keys,
# renewals and rekeys across replicas (pg_ha_keys), SIGKILL of a replica
# under writes (pg_failover), a database outage (pg_outage, 5 s here).
# Any sanitizer report, or a non-zero exit of a replica stopped with
# SIGTERM (LeakSanitizer's exit code), fails it.  ctl_asan covers the
# single-replica PostgreSQL tests.
set -eu
. "${MESHWAN_TOP:-.}/tests/lib/san_ctl.sh"
san_ctl_start pg_asan
export PG_OUTAGE_S=5 FAILOVER_EDGES=4
san_ctl_run pg_ha_keys pg_failover pg_outage
