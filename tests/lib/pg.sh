# tests/lib/pg.sh — a throwaway PostgreSQL 15 cluster for one test.
# Sourced.  pg_start makes a cluster in a private temp folder owned by the
# postgres user (initdb and pg_ctl refuse root), listening only on a Unix
# socket in that folder (no TCP: nothing else can reach it, and the port
# only names the socket), and sets PG_DIR, PG_PORT and PG_CONNINFO.
# pg_stop stops and removes it; pg_halt / pg_resume stop and start the
# same cluster (a database outage).  The caller's EXIT trap must call
# pg_stop (pg_trap installs one that also runs the caller's cleanup).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
PG_PORT=
PG_CONNINFO=

pg_available() {
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && id postgres >/dev/null 2>&1
}

# pg_as CMD... — run as the postgres user, from a folder it may read.
pg_as() {
	(cd / && runuser -u postgres -- "$@")
}

pg_start() {
	pg_available || { echo "pg.sh: PostgreSQL 15 is not installed (make deps)" >&2; return 1; }
	PG_DIR=$(mktemp -d /tmp/meshwan-pg.$$.XXXXXX) || return 1
	chmod 700 "$PG_DIR"
	chown postgres:postgres "$PG_DIR"
	# A port the kernel says is free on loopback, although only the
	# socket's file name uses it.
	PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U meshwan \
		--no-sync >"$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log" >&2; return 1; }
	PG_CONNINFO="host=$PG_DIR port=$PG_PORT user=meshwan dbname=postgres"
	pg_resume
}

pg_resume() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
		-o "-k $PG_DIR -p $PG_PORT -c listen_addresses= -c fsync=off -c max_connections=200" \
		start >/dev/null 2>&1 ||
		{ echo "pg.sh: the cluster did not start:" >&2; tail -n 20 "$PG_DIR/log" >&2; return 1; }
}

pg_halt() {
	pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1
}

pg_stop() {
	[ -n "$PG_DIR" ] || return 0
	if [ -f "$PG_DIR/data/postmaster.pid" ]; then
		pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
	fi
	rm -rf "$PG_DIR"
	PG_DIR=
}

# pg_sql SQL — one statement through psql, tuples only.
pg_sql() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U meshwan -d postgres -c "$1"
}
