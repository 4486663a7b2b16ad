#!/bin/sh
# dashboard.sh — the web dashboard end to end, in headless Chromium:
#
#   chromium ──HTTPS (controller CA)──▶ meshwan-controller ◀──gRPC mTLS── edge_client
#   (playwright-core,                    static controller/web,
#    tests/web/dashboard.mjs)            REST, SSE /api/v1/events/stream
#
# A controller on free loopback ports serves the dashboard over HTTPS with
# a certificate from its own CA; dashboard.mjs signs in, adds a site in the
# UI and enrolls a test edge with the token the UI showed, watches it turn
# converged without a reload, drops the event stream and checks nothing
# was missed, renders 50+ sites, signs in read-only and forges a write.
# Screenshots of every view: $BUILD/tests/web/*.png.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl node
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is not installed (make deps)"
[ -x "$EDGE" ] || fail "$EDGE is not built"
[ -d "$MESHWAN_TOP/tests/web/node_modules/playwright-core" ] ||
	fail "tests/web/node_modules is missing (make deps runs npm ci)"

write_config <<CONF
http_tls_names = localhost, 127.0.0.1
web_root = ${WEB_ROOT:-$MESHWAN_TOP/controller/web}
CONF
start_controller
URL="https://127.0.0.1:$HTTP"
export CURL_CA_BUNDLE="$T/ca/ca.crt"
# The REST API answers over HTTPS only, and the certificate chains to the CA.
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ] ||
	fail "GET /healthz over HTTPS with the controller CA"
curl -s -o /dev/null "http://127.0.0.1:$HTTP/healthz" && fail "plain HTTP answered on the HTTPS port"

st=$(api POST /api/v1/tokens '{"name":"viewer","role":"readonly"}')
[ "$st" = 201 ] || fail "readonly token: $st $(cat "$T/out")"
RO=$(jq -r .token "$T/out")
hq=$(site_create '{"name":"hq","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
make_key br9

case "$BUILD" in
/*) OUT="$BUILD/tests/web" ;;
*) OUT="$MESHWAN_TOP/$BUILD/tests/web" ;;
esac
mkdir -p "$OUT"
BASE="$URL/" ADMIN="$ADMIN" RO="$RO" CA="$T/ca/ca.crt" EDGE="$EDGE" \
	ENROLL="127.0.0.1:$ENROLL" GRPC="127.0.0.1:$GRPC" KEYS="$T" OUT="$OUT" \
	CHROMIUM="$CHROMIUM" HQ="$hq" AGENT="$BUILD/edge-agent/meshwan-edge" \
	node "$MESHWAN_TOP/tests/web/dashboard.mjs" || fail "dashboard.mjs failed"

# The README's picture of the topology view, on request.
if [ "${UPDATE_SCREENSHOTS:-0}" = 1 ]; then
	mkdir -p "$MESHWAN_TOP/docs"
	cp "$OUT/topology.png" "$MESHWAN_TOP/docs/dashboard-topology.png"
fi

# No connection was turned away: the browser and this script share one
# address, and the per-address limit must not be what a page waits on.
grep -q 'reached connection limit' "$T/ctld.log" &&
	fail "the controller refused connections (per-address limit)"
# The controller's log holds no token (the UI sent them as headers only).
grep -q 'mwa_\|mwe_' "$T/ctld.log" && fail "a token is in the controller log"
stop_controller
echo "PASS"
