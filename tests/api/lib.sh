# tests/api/lib.sh — shared by the REST shell tests: start the API test
# server (store + REST API, no gRPC) on a free loopback port and stop it.
# Sourced; sets TMP, URL, ADMIN_TOKEN_FILE, SERVER_PID.  SERVER and CTL
# may point at other builds (tests/api/api_asan.sh passes sanitizer ones).

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || { echo "FAIL: $t is not installed" >&2; exit 1; }
	done
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

BUILD=${BUILD:-build}
SERVER=${SERVER:-$BUILD/tests/api/api_test_server}
[ -x "$SERVER" ] || fail "$SERVER is not built"
TMP=$(mktemp -d "/tmp/meshwan-api.$$.XXXXXX")
SERVER_PID=

cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Starts the server and waits (deadline 10 s) until it answers /healthz.
start_server() {
	"$SERVER" -d "$TMP/db.sqlite" -t "$TMP/admin.token" -p "$TMP/port" ${SERVER_ARGS:-} \
		-k "$TMP/hook.log" 2>"$TMP/server.log" &
	SERVER_PID=$!
	deadline=$(( $(date +%s) + 10 ))
	while [ ! -s "$TMP/port" ]; do
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; fail "server exited"; }
		[ "$(date +%s)" -lt "$deadline" ] || fail "server did not start within 10 s"
		sleep 0.05
	done
	URL="http://127.0.0.1:$(cat "$TMP/port")"
	ADMIN_TOKEN_FILE="$TMP/admin.token"
	curl -sf "$URL/healthz" >/dev/null || fail "server does not answer /healthz"
}

# Stops the server with SIGTERM: it must exit 0 and its log must hold no
# sanitizer report (clean shutdown, no leaks).
stop_server() {
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID"
	rc=$?
	SERVER_PID=
	if [ $rc -ne 0 ] || grep -q -e 'Sanitizer' -e 'runtime error:' "$TMP/server.log"; then
		cat "$TMP/server.log" >&2
		fail "server exited $rc or reported errors"
	fi
}
