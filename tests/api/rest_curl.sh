#!/bin/sh
# rest_curl.sh — the REST API end to end with curl and jq, as an operator
# scripting against it would: bootstrap token, create, read, refuse, audit.
#
#   curl/jq ──HTTP──▶ api_test_server (127.0.0.1:<free port>) ──▶ sqlite
set -u
. "$MESHWAN_TOP/tests/api/lib.sh"
need curl jq
start_server

# The bootstrap token file is private.
[ "$(stat -c %a "$ADMIN_TOKEN_FILE")" = 600 ] || fail "admin token file is not 0600"
ADMIN=$(cat "$ADMIN_TOKEN_FILE")
H="Authorization: Bearer $ADMIN"

# call METHOD PATH [BODY] -> body in $TMP/out, status echoed
call() {
	if [ $# -ge 3 ]; then
		curl -s -o "$TMP/out" -w '%{http_code}' -X "$1" -H "$H" \
			-H 'Content-Type: application/json' --data "$3" "$URL$2"
	else
		curl -s -o "$TMP/out" -w '%{http_code}' -X "$1" -H "$H" "$URL$2"
	fi
}

[ "$(curl -s "$URL/healthz" | jq -r .status)" = ok ] || fail "/healthz"
curl -s "$URL/api/v1/openapi.json" | jq -e '.openapi | startswith("3.")' >/dev/null \
	|| fail "openapi.json is not an OpenAPI 3 document"

# No token: 401 with the JSON error shape.
st=$(curl -s -o "$TMP/out" -w '%{http_code}' "$URL/api/v1/sites")
[ "$st" = 401 ] || fail "no token gave $st"
jq -e '.code == "unauthorized" and (.message|type) == "string" and .field == null' \
	"$TMP/out" >/dev/null || fail "401 body: $(cat "$TMP/out")"

st=$(call POST /api/v1/sites '{"name":"hq","role":"hub","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":["10.0.0.0/16"]}')
[ "$st" = 201 ] || fail "create hq gave $st: $(cat "$TMP/out")"
id=$(jq -r .id "$TMP/out")
st=$(call POST /api/v1/sites '{"name":"branch1","role":"spoke","links":[{"name":"inet","address":"192.0.2.2"}]}')
[ "$st" = 201 ] || fail "create branch1 gave $st"
[ "$(call GET /api/v1/sites)" = 200 ] || fail "list"
[ "$(jq '.sites | length' "$TMP/out")" = 2 ] || fail "expected 2 sites"
[ "$(call GET "/api/v1/sites/$id")" = 200 ] || fail "get"
jq -e '.name == "hq" and .lan_prefixes == ["10.0.0.0/16"] and .asn >= 64512' \
	"$TMP/out" >/dev/null || fail "site body: $(cat "$TMP/out")"

# A refused change: code, field, and nothing changed.
call GET /api/v1/sites >/dev/null; cp "$TMP/out" "$TMP/before"
st=$(call POST /api/v1/sites '{"name":"hq","role":"hub"}')
[ "$st" = 409 ] || fail "duplicate gave $st"
jq -e '.code == "duplicate" and .field == "name"' "$TMP/out" >/dev/null || fail "duplicate body"
st=$(call POST /api/v1/sites '{"name":"x","role":"hub","lan_prefixes":["10.0.5.0/24"]}')
[ "$st" = 409 ] && jq -e '.code == "overlap"' "$TMP/out" >/dev/null || fail "overlap gave $st"
call GET /api/v1/sites >/dev/null
cmp -s "$TMP/before" "$TMP/out" || fail "a refused request changed the sites"

# Enrollment token: shown once, never in the audit log.
[ "$(call POST "/api/v1/sites/$id/token")" = 201 ] || fail "token"
tok=$(jq -r .token "$TMP/out")
[ ${#tok} = 68 ] || fail "token length ${#tok}"
call GET '/api/v1/events?limit=1000' >/dev/null
grep -q "$tok" "$TMP/out" && fail "token leaked into the audit log"
jq -e '[.events[] | select(.action == "site.create" and .actor == "admin")] | length == 2' \
	"$TMP/out" >/dev/null || fail "audit entries missing"

# The daemon hook heard about both sites.
[ "$(grep -c topology_changed "$TMP/hook.log")" = 2 ] || fail "hook calls: $(cat "$TMP/hook.log")"

# /metrics with a read-only token.
[ "$(call POST /api/v1/tokens '{"name":"prom","role":"readonly"}')" = 201 ] || fail "readonly token"
ro=$(jq -r .token "$TMP/out")
curl -sf -H "Authorization: Bearer $ro" "$URL/metrics" >"$TMP/metrics" || fail "/metrics"
grep -q '^meshwan_edges_connected 0$' "$TMP/metrics" || fail "metrics: $(cat "$TMP/metrics")"
grep -q '^meshwan_http_requests_total{code="409"} 2$' "$TMP/metrics" || fail "409 count"

# Oversized body.
head -c 100000 /dev/zero | tr '\0' 'a' >"$TMP/big"
st=$(curl -s -o "$TMP/out" -w '%{http_code}' -X POST -H "$H" --data-binary @"$TMP/big" "$URL/api/v1/sites")
[ "$st" = 413 ] && jq -e '.code == "body_too_large"' "$TMP/out" >/dev/null || fail "oversized gave $st"
stop_server
echo "rest_curl: ok"
