#!/bin/sh
# https_web.sh — how the controller serves its REST API and dashboard:
#
#   curl --cacert ca.crt ──HTTPS──▶ meshwan-controller (127.0.0.1, CA-issued
#                                    certificate for http_tls_names)
#   curl (netns, 192.0.2.10) ─────▶ meshwan-controller in a private network
#                                    namespace on a non-loopback address
#
# HTTPS with a certificate from the controller's CA (checked against
# ca.crt) and from files; plain HTTP refused on a non-loopback listener
# unless http_plaintext = yes (and then labelled plaintext in the log);
# the security headers on API replies, errors and static files; static
# files safely resolved under web_root (no "..", no symbolic links, no
# hidden names, GET/HEAD only, a size cap); tokens refused in URLs.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl unshare nsenter ip

# The dashboard folder, a secret beside it and a link pointing to it.
W="$T/web"
mkdir -p "$W/js" "$W/.git"
echo '<!doctype html><title>meshwan</title>' >"$W/index.html"
echo 'console.log(1);' >"$W/js/app.js"
echo 'body{}' >"$W/app.css"
echo 'secret' >"$T/secret.txt"
echo 'hidden' >"$W/.git/config"
ln -s "$T/secret.txt" "$W/link.txt"
ln -s "$T" "$W/up"
head -c $((9 * 1024 * 1024)) /dev/zero >"$W/big.bin"

write_config <<CONF
http_tls_names = localhost, 127.0.0.1
web_root = $W
CONF
start_controller
B="https://127.0.0.1:$HTTP"
C="--cacert $T/ca/ca.crt"
grep -q 'REST API: HTTPS with a certificate from the controller' "$T/ctld.log" || fail "log does not say HTTPS"

# HTTPS, verified against the controller's CA; plain HTTP is not spoken.
curl -sf $C "$B/healthz" >/dev/null || fail "HTTPS /healthz with the CA: $(curl -sv $C "$B/healthz" 2>&1 | tail -n 5)"
curl -sf "$B/healthz" >/dev/null 2>&1 && fail "HTTPS accepted without trusting the CA"
curl -sf -m 3 "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && fail "plain HTTP answered on the HTTPS port"
echo | openssl s_client -connect "127.0.0.1:$HTTP" -CAfile "$T/ca/ca.crt" 2>/dev/null |
	grep -q 'Verify return code: 0 (ok)' || fail "openssl does not verify the certificate"

# Headers on an API reply, an error and a static file.
for p in /healthz /api/v1/sites / /js/app.js /nope; do
	curl -s $C -D "$T/h" -o /dev/null "$B$p"
	grep -qi "^content-security-policy: .*default-src 'self'.*script-src 'self'.*frame-ancestors 'none'" "$T/h" || fail "$p: CSP: $(cat "$T/h")"
	grep -qi "^content-security-policy: .*unsafe-inline" "$T/h" && fail "$p: CSP allows inline"
	grep -qi '^x-content-type-options: nosniff' "$T/h" || fail "$p: nosniff"
	grep -qi '^x-frame-options: deny' "$T/h" || fail "$p: frame denial"
	grep -qi '^referrer-policy: no-referrer' "$T/h" || fail "$p: referrer policy"
	grep -qi '^strict-transport-security: max-age=' "$T/h" || fail "$p: HSTS over HTTPS"
done

# Static files: no token needed, content types, index.html at /.
code() { curl -s $C -o "$T/body" -w '%{http_code} %{content_type}' --path-as-is "$@"; }
[ "$(code "$B/")" = "200 text/html; charset=utf-8" ] || fail "/: $(code "$B/")"
grep -q '<title>meshwan' "$T/body" || fail "/ is not index.html"
[ "$(code "$B/js/app.js")" = "200 text/javascript; charset=utf-8" ] || fail "app.js: $(code "$B/js/app.js")"
[ "$(code "$B/app.css")" = "200 text/css; charset=utf-8" ] || fail "app.css"
[ "$(code -I "$B/app.css" | cut -d' ' -f1)" = 200 ] || fail "HEAD"
# ... never outside the web root, never hidden files, never by link.
for p in /../secret.txt /js/../../secret.txt /%2e%2e/secret.txt /js/%2e%2e/%2e%2e/secret.txt \
    /link.txt /up/secret.txt /.git/config /nope.html '/a%00b' '/js\..\..\secret.txt'; do
	r=$(code "$B$p")
	case "$r" in 400*|404*) ;; *) fail "$p answered $r: $(head -c 100 "$T/body")" ;; esac
	grep -q secret "$T/body" && fail "$p leaked the secret"
done
[ "$(code "$B/big.bin" | cut -d' ' -f1)" = 413 ] || fail "a file over the size cap"
[ "$(code -X POST "$B/index.html" | cut -d' ' -f1)" = 405 ] || fail "POST to a static file"
[ "$(code -X DELETE "$B/" | cut -d' ' -f1)" = 405 ] || fail "DELETE /"
# The API stays protected; a token in the URL is refused even for files.
[ "$(code "$B/api/v1/sites" | cut -d' ' -f1)" = 401 ] || fail "API without a token"
[ "$(code -H "$H" "$B/api/v1/sites" | cut -d' ' -f1)" = 200 ] || fail "API with a token"
[ "$(code "$B/index.html?token=$ADMIN" | cut -d' ' -f1)" = 400 ] || fail "token in a URL"
[ "$(code "$B/api/v1/sites?access_token=$ADMIN" | cut -d' ' -f1)" = 400 ] || fail "access_token in a URL"
grep -q "$ADMIN" "$T/ctld.log" && fail "the token reached the log"
# The event stream over HTTPS: a change arrives on a parked TLS stream.
curl -sN -m 5 $C -H "$H" "$B/api/v1/events/stream" >"$T/tls.sse" 2>/dev/null &
BG_PIDS="$BG_PIDS $!"
wait_for 3 "$T/tls.sse" '^event: ready' || fail "no ready event over HTTPS"
[ "$(code -H "$H" -H 'Content-Type: application/json' --data '{"name":"x","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.9"}],"lan_prefixes":["10.9.0.0/24"]}' "$B/api/v1/sites" | cut -d' ' -f1)" = 201 ] || fail "site over HTTPS"
wait_for 3 "$T/tls.sse" '^event: site' || fail "no site event over HTTPS"
stop_controller

# Certificate and key from files (a self-signed pair here).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/http.key" -out "$T/http.crt" 2>/dev/null || fail "openssl req"
chmod 644 "$T/http.key"
write_config <<CONF
http_tls_cert = $T/http.crt
http_tls_key = $T/http.key
CONF
"$CTLD" -d -f "$T/controller.conf" >"$T/bad.log" 2>&1 && fail "a world-readable key was accepted"
grep -q 'readable by group or others' "$T/bad.log" || fail "key mode: $(tail -n 3 "$T/bad.log")"
chmod 600 "$T/http.key"
start_controller
curl -sf --cacert "$T/http.crt" "https://127.0.0.1:$HTTP/healthz" >/dev/null || fail "HTTPS from files"
stop_controller

# Contradictions are configuration errors.
printf 'http_tls_cert = %s\n' "$T/http.crt" | write_config
"$CTLD" -n -f "$T/controller.conf" >/dev/null 2>&1 && fail "cert without key accepted"
printf 'http_plaintext = yes\nhttp_tls_names = localhost\n' | write_config
"$CTLD" -n -f "$T/controller.conf" >/dev/null 2>&1 && fail "plaintext with TLS names accepted"

# A listener others can reach: HTTPS unless http_plaintext = yes.  In a
# private network namespace, on 192.0.2.10.
nsrun() {
	# nsrun CONF_EXTRA — start the controller in a fresh netns; NSPID.
	write_config <<CONF
$1
CONF
	sed -i 's/^http_listen = .*/http_listen = 192.0.2.10:0/' "$T/controller.conf"
	: >"$T/ctld.log"
	unshare -n sh -c 'ip link set lo up && ip addr add 192.0.2.10/32 dev lo &&
		exec "$0" -d -f "$1"' "$CTLD" "$T/controller.conf" >>"$T/ctld.log" 2>&1 &
	NSPID=$!
	BG_PIDS="$BG_PIDS $NSPID"
	wait_for 20 "$T/ctld.log" ': ready$' || fail "controller in the namespace not ready"
	NHTTP=$(sed -n 's/.*REST API on .* (port \([0-9]*\)).*/\1/p' "$T/ctld.log" | tail -n 1)
}
nsstop() {
	kill -TERM "$NSPID"; wait "$NSPID"; rc=$?
	[ "$rc" = 0 ] || fail "namespaced controller exited $rc"
}
nsrun ""
grep -q 'REST API: HTTPS with the controller' "$T/ctld.log" || fail "non-loopback without TLS config: $(grep 'REST API' "$T/ctld.log")"
nsenter -t "$NSPID" -n curl -sf -m 3 "http://192.0.2.10:$NHTTP/healthz" >/dev/null 2>&1 &&
	fail "plain HTTP served on a non-loopback address"
nsenter -t "$NSPID" -n curl -sf -m 3 --cacert "$T/ca/ca.crt" --resolve "meshwan-controller:$NHTTP:192.0.2.10" \
	"https://meshwan-controller:$NHTTP/healthz" >/dev/null || fail "HTTPS on the non-loopback address"
nsstop
nsrun "http_plaintext = yes"
grep -q 'REST API: plaintext HTTP on 192.0.2.10:0 (http_plaintext = yes)' "$T/ctld.log" || fail "plaintext not labelled"
nsenter -t "$NSPID" -n curl -sf -m 3 "http://192.0.2.10:$NHTTP/healthz" >/dev/null || fail "http_plaintext = yes not served"
nsstop
echo "https_web: ok"
