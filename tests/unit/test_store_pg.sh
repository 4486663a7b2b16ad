#!/bin/sh
# test_store_pg.sh — the store's unit tests (test_store) against a real
# PostgreSQL 15: a throwaway cluster in a temp folder (Unix socket only,
# its own port), removed afterwards whatever happens.
set -u
BUILD=${BUILD:-build}
. "${MESHWAN_TOP:-.}/tests/lib/pg.sh"
trap pg_stop EXIT INT TERM
[ -x "$BUILD/tests/unit/test_store" ] || { echo "FAIL: test_store is not built" >&2; exit 1; }
pg_start || { echo "FAIL: no PostgreSQL cluster" >&2; exit 1; }
MESHWAN_TEST_PG=$PG_CONNINFO "$BUILD/tests/unit/test_store"
