# tests/ctl/pg_lib.sh — more controller replicas on the test's PostgreSQL
# cluster, for the HA tests (pg_*.sh).  Sourced after lib.sh and
# tests/lib/pg.sh, once start_controller has made replica A (it created
# the CA and the admin token).  replica_start NAME starts another on the
# same database and CA with its own ports, log $T/NAME.log, and sets
# PID_NAME, GRPC_NAME, URL_NAME; replica_cleanup (from the EXIT trap)
# stops what is left.

REPLICAS=

replica_start() {	# NAME [extra config lines on stdin]
	_r=$1
	{
		echo "grpc_listen = 127.0.0.1:0"
		echo "enroll_listen = 127.0.0.1:0"
		echo "http_listen = 127.0.0.1:0"
		echo "ca_dir = $T/ca"
		echo "admin_token_file = $T/$_r-admin.token"
		echo "database = $T/unused.db"
		echo "store = $PG_CONNINFO"
		cat
	} >"$T/$_r.conf"
	: >"$T/$_r.log"
	"$CTLD" -d -f "$T/$_r.conf" >>"$T/$_r.log" 2>&1 &
	eval "PID_$_r=$!"
	REPLICAS="$REPLICAS $!"
	wait_for 20 "$T/$_r.log" ': ready$' || { tail -n 30 "$T/$_r.log" >&2; fail "replica $_r not ready"; }
	eval "GRPC_$_r=$(sed -n 's/.*sessions on .* (port \([0-9]*\)), enrollment.*/\1/p' "$T/$_r.log" | tail -n 1)"
	eval "URL_$_r=http://127.0.0.1:$(sed -n 's/.*REST API on .* (port \([0-9]*\)).*/\1/p' "$T/$_r.log" | tail -n 1)"
}

replica_cleanup() {
	for _p in $REPLICAS; do kill "$_p" 2>/dev/null; done
	for _p in $REPLICAS; do wait "$_p" 2>/dev/null; done
	REPLICAS=
}

# edge NAME SITE TARGETS [options] — a test edge on one or more
# controllers' Session ports ("127.0.0.1:P1,127.0.0.1:P2").
edge() {
	_n=$1; _s=$2; _tg=$3; shift 3
	"$EDGE" session "$_tg" "$T/ca/ca.crt" "$T/$_n.crt" "$T/$_n.key" "$_s" "$@" \
		>"$T/$_n.log" 2>&1 &
	BG_PIDS="$BG_PIDS $!"
	eval "PID_$_n=$!"
}

# enroll_site NAME SITE_ID — key, token, enrollment, PEM certificate.
# Set-up, not what the tests check: on a loaded machine an Enroll call
# may time out, so up to three tries, each with a new token.
enroll_site() {
	make_key "$1"
	_try=1
	until enroll "$1" "$(token "$2")" >"$T/$1.enroll" 2>&1; do
		[ $_try -lt 3 ] || fail "enroll $1: $(cat "$T/$1.enroll")"
		_try=$((_try + 1))
	done
	der_to_pem "$1"
}

# now_ms — monotonic enough for test timings.
now_ms() {
	echo $(( $(date +%s%N) / 1000000 ))
}
