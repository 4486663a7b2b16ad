# tests/ctl/lib.sh — shared by the controller's shell tests: a private
# state folder, a controller on free loopback ports (port 0: the kernel
# picks, the controller logs what it bound), REST helpers and polling
# waits.  Sourced; sets T (temp folder), URL, ENROLL, GRPC, ADMIN, H.
#
# CTLD may name another controller binary (the ASan build).

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || fail "$t is not installed"
	done
}

fail() {
	echo "FAIL: $*" >&2
	[ -n "${T:-}" ] && [ -f "$T/ctld.log" ] && { echo "--- controller log" >&2; tail -n "${LOG_LINES:-40}" "$T/ctld.log" >&2; }
	exit 1
}

BUILD=${BUILD:-build}
CTLD=${CTLD:-$BUILD/controller/meshwan-controller}
EDGE=${EDGE:-$BUILD/tests/ctl/edge_client}
[ -x "$CTLD" ] || fail "$CTLD is not built"
T=$(mktemp -d "/tmp/meshwan-ctl.$$.XXXXXX")
CTLD_PID=
BG_PIDS=

cleanup() {
	for p in $BG_PIDS; do kill "$p" 2>/dev/null; done
	for p in $BG_PIDS; do wait "$p" 2>/dev/null; done
	if [ -n "$CTLD_PID" ]; then
		kill "$CTLD_PID" 2>/dev/null
		wait "$CTLD_PID" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

# write_config [extra key = value lines on stdin]; GRPC_PORT, ENROLL_PORT
# and HTTP_PORT fix the ports (default 0: any free one).
write_config() {
	{
		echo "grpc_listen = 127.0.0.1:${GRPC_PORT:-0}"
		echo "enroll_listen = 127.0.0.1:${ENROLL_PORT:-0}"
		echo "http_listen = 127.0.0.1:${HTTP_PORT:-0}"
		echo "database = $T/controller.db"
		echo "ca_dir = $T/ca"
		echo "admin_token_file = $T/admin.token"
		cat
	} >"$T/controller.conf"
}

# wait_for SECONDS FILE PATTERN — poll until grep -E finds PATTERN.
wait_for() {
	_deadline=$(( $(date +%s) + $1 ))
	while ! grep -Eq "$3" "$2" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.05
	done
	return 0
}

# start_controller — runs it in the foreground mode, waits for "ready".
start_controller() {
	: >"$T/ctld.log"
	"$CTLD" -d -f "$T/controller.conf" >>"$T/ctld.log" 2>&1 &
	CTLD_PID=$!
	_deadline=$(( $(date +%s) + 20 ))
	while ! grep -q ': ready$' "$T/ctld.log"; do
		kill -0 "$CTLD_PID" 2>/dev/null || fail "controller exited during start-up"
		[ "$(date +%s)" -lt "$_deadline" ] || fail "controller not ready within 20 s"
		sleep 0.05
	done
	GRPC=$(sed -n 's/.*sessions on .* (port \([0-9]*\)), enrollment.*/\1/p' "$T/ctld.log" | tail -n 1)
	ENROLL=$(sed -n 's/.*enrollment on .* (port \([0-9]*\)).*/\1/p' "$T/ctld.log" | tail -n 1)
	HTTP=$(sed -n 's/.*REST API on .* (port \([0-9]*\)).*/\1/p' "$T/ctld.log" | tail -n 1)
	[ -n "$GRPC" ] && [ -n "$ENROLL" ] && [ -n "$HTTP" ] || fail "ports not found in the log"
	URL="http://127.0.0.1:$HTTP"
	ADMIN=$(cat "$T/admin.token")
	H="Authorization: Bearer $ADMIN"
}

# stop_controller — SIGTERM, and it must exit 0 within 10 s.
stop_controller() {
	kill -TERM "$CTLD_PID"
	_deadline=$(( $(date +%s) + 10 ))
	while kill -0 "$CTLD_PID" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_deadline" ] || fail "controller did not stop within 10 s"
		sleep 0.05
	done
	wait "$CTLD_PID"
	_rc=$?
	CTLD_PID=
	[ "$_rc" = 0 ] || fail "controller exited with $_rc"
}

# api METHOD PATH [BODY] — body in $T/out, HTTP status printed.
api() {
	if [ $# -ge 3 ]; then
		curl -s -o "$T/out" -w '%{http_code}' -X "$1" -H "$H" \
			-H 'Content-Type: application/json' --data "$3" "$URL$2"
	else
		curl -s -o "$T/out" -w '%{http_code}' -X "$1" -H "$H" "$URL$2"
	fi
}

# site_create JSON — prints the new site's id.
site_create() {
	_st=$(api POST /api/v1/sites "$1")
	[ "$_st" = 201 ] || fail "creating site $1 gave $_st: $(cat "$T/out")"
	jq -r .id "$T/out"
}

# token SITE_ID — prints a fresh enrollment token.
token() {
	_st=$(api POST "/api/v1/sites/$1/token")
	[ "$_st" = 201 ] || fail "token for site $1 gave $_st: $(cat "$T/out")"
	jq -r .token "$T/out"
}

# make_key NAME — EC P-256 key NAME.key and a DER CSR NAME.csr in $T.
make_key() {
	openssl ecparam -name prime256v1 -genkey -noout -out "$T/$1.key" 2>/dev/null &&
	openssl req -new -key "$T/$1.key" -subj "/CN=$1" -outform DER \
		-out "$T/$1.csr" 2>/dev/null || fail "openssl could not make a key/CSR"
}

# enroll NAME TOKEN — enrolls, leaves NAME.crt (PEM); prints the client's line.
enroll() {
	"$EDGE" enroll "127.0.0.1:$ENROLL" "$T/ca/ca.crt" "$2" "$T/$1.csr" "$T/$1.der"
}

der_to_pem() {
	openssl x509 -inform DER -in "$T/$1.der" -out "$T/$1.crt" || fail "certificate of $1 is not DER X.509"
}

# session NAME SITE [options] — background edge; log in $T/NAME.log
session() {
	_n=$1; _s=$2; shift 2
	"$EDGE" session "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/$_n.crt" "$T/$_n.key" "$_s" "$@" \
		>"$T/$_n.log" 2>&1 &
	BG_PIDS="$BG_PIDS $!"
	eval "PID_$_n=$!"
}
