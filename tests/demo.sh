#!/bin/sh
# tests/demo.sh — what `make demo` runs: a meshwan controller on its
# embedded sqlite store in a state folder, three example sites (a hub and
# two spokes, hub-and-spoke policy) created through the REST API, and the
# commands to look at them.  It stays in the foreground until Ctrl-C and
# cleans up on exit.
#
# Environment: BUILD (build folder), DEMO_DIR (state folder; default a new
# temporary one, removed on exit), DEMO_PORT (REST port, default 8080;
# gRPC uses DEMO_PORT+1 and +2), DEMO_EXIT=1 (set up, check that the API
# answers, print, and exit 0: for scripts and the test).
set -u
BUILD=${BUILD:-build}
CTLD="$BUILD/controller/meshwan-controller"
CTL="$BUILD/controller/meshwanctl"
PORT=${DEMO_PORT:-8080}
for t in curl jq; do
	command -v "$t" >/dev/null 2>&1 || { echo "demo: $t is not installed (make deps)" >&2; exit 1; }
done
[ -x "$CTLD" ] || { echo "demo: $CTLD is not built (run make)" >&2; exit 1; }

if [ -n "${DEMO_DIR:-}" ]; then
	DIR=$DEMO_DIR; KEEP=1; mkdir -p "$DIR"
else
	DIR=$(mktemp -d /tmp/meshwan-demo.XXXXXX); KEEP=0
fi
PID=
cleanup() {
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	[ "$KEEP" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

die() {
	echo "demo: $*" >&2
	[ -f "$DIR/controller.log" ] && tail -n 20 "$DIR/controller.log" >&2
	exit 1
}

cat >"$DIR/controller.conf" <<CONF
# meshwan demo controller (see controller/CONTROLLER.md)
http_listen = 127.0.0.1:$PORT
grpc_listen = 127.0.0.1:$((PORT + 1))
enroll_listen = 127.0.0.1:$((PORT + 2))
database = $DIR/controller.db
ca_dir = $DIR/ca
admin_token_file = $DIR/admin.token
policy = hub-and-spoke
CONF
"$CTLD" -d -f "$DIR/controller.conf" >"$DIR/controller.log" 2>&1 &
PID=$!
deadline=$(( $(date +%s) + 20 ))
until grep -q ': ready$' "$DIR/controller.log"; do
	kill -0 "$PID" 2>/dev/null || die "the controller did not start (port $PORT busy? set DEMO_PORT)"
	[ "$(date +%s)" -lt "$deadline" ] || die "the controller is not ready after 20 s"
	sleep 0.1
done
URL="http://127.0.0.1:$PORT"
TOKEN=$(cat "$DIR/admin.token")

# post PATH JSON — creates something; fails loudly.
post() {
	out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data "$2" "$URL$1")
	code=$(echo "$out" | tail -n 1)
	body=$(echo "$out" | sed '$d')
	case "$code" in
	200|201) ;;
	*) die "POST $1 gave $code: $body" ;;
	esac
}

if ! curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites" | jq -e '.sites | length > 0' >/dev/null; then
	post /api/v1/sites '{"name":"hub-fra","role":"hub","region":"eu","links":[{"name":"inet","address":"203.0.113.1"},{"name":"mpls","address":"198.51.100.1"}],"lan_prefixes":["10.0.0.0/16"]}'
	post /api/v1/sites '{"name":"branch-lyon","role":"spoke","region":"eu","links":[{"name":"inet","address":"203.0.113.20","public_address":"192.0.2.20","public_port":4501}],"lan_prefixes":["10.1.0.0/24"]}'
	post /api/v1/sites '{"name":"branch-graz","role":"spoke","region":"eu","links":[{"name":"inet","address":"203.0.113.30"},{"name":"mpls","address":"198.51.100.30"}],"lan_prefixes":["10.2.0.0/24","10.2.1.0/24"]}'
fi
GRAZ=$(curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites" | jq -r '.sites[] | select(.name == "branch-graz") | .id')
ENROLL_TOKEN=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" "$URL/api/v1/sites/$GRAZ/token" | jq -r .token)
case "$ENROLL_TOKEN" in mwe_*) ;; *) die "no enrollment token for branch-graz" ;; esac

# The API must answer with the computed tunnels (hub <-> each spoke).
tunnels=$(curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/tunnels" | jq '.tunnels | length')
[ "${tunnels:-0}" -ge 2 ] || die "expected tunnels between the hub and the spokes, got '$tunnels'"
curl -s "$URL/healthz" | jq -e '.status == "ok"' >/dev/null || die "/healthz does not answer ok"

cat <<TXT

meshwan demo controller is running (pid $PID)
  state folder   $DIR
  REST API       $URL/api/v1/   (OpenAPI: $URL/api/v1/openapi.json)
  gRPC sessions  127.0.0.1:$((PORT + 1)) (mutual TLS), enrollment 127.0.0.1:$((PORT + 2))
  CA certificate $DIR/ca/ca.crt
  admin token    $TOKEN
  log            $DIR/controller.log

3 sites (hub-fra, branch-lyon, branch-graz), hub-and-spoke, $tunnels tunnels.

Try:
  curl -s -H 'Authorization: Bearer $TOKEN' $URL/api/v1/sites | jq
  curl -s -H 'Authorization: Bearer $TOKEN' $URL/api/v1/tunnels | jq
  curl -s -H 'Authorization: Bearer $TOKEN' $URL/api/v1/edges | jq
  curl -s -H 'Authorization: Bearer $TOKEN' $URL/metrics
  $CTL --url $URL --token-file $DIR/admin.token site list
  $CTL --url $URL --token-file $DIR/admin.token tunnel list
  $CTL --url $URL --token-file $DIR/admin.token site add branch-wien --role spoke --prefix 10.3.0.0/24
  $CTL --url $URL --token-file $DIR/admin.token link add branch-wien inet --address 203.0.113.40
  $CTL --url $URL --token-file $DIR/admin.token edge list

An edge for branch-graz enrolls with this one-time token (valid 1 h):
  $ENROLL_TOKEN
TXT

if [ "${DEMO_EXIT:-0}" = 1 ]; then
	echo "DEMO_EXIT=1: the API answered; stopping."
	exit 0
fi
echo "Press Ctrl-C to stop (the state folder is removed unless DEMO_DIR was set)."
wait "$PID"
rc=$?
PID=
# Ctrl-C reaches the controller too: a clean stop is the normal end.
if grep -q ': stopped$' "$DIR/controller.log"; then
	echo "demo: stopped"
	exit 0
fi
die "the controller exited (status $rc)"
