#!/bin/sh
# config.sh — meshwan-controller's configuration as an operator meets it:
# -n prints the normal form (golden), the shipped example parses, bad
# lines are refused naming file, line and key with a non-zero exit, and
# SIGHUP with a bad file keeps the running configuration while a good one
# is applied.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq

out=$("$CTLD" -n -f "$MESHWAN_TOP/tests/ctl/config.in") || fail "-n refused config.in"
echo "$out" | diff -u "$MESHWAN_TOP/tests/ctl/config.golden" - || fail "-n output differs from config.golden"
"$CTLD" -n -f "$MESHWAN_TOP/controller/meshwan-controller.conf.example" >/dev/null ||
	fail "the shipped example is refused"
# -n output is itself a valid configuration that prints the same.
echo "$out" >"$T/normal.conf"
"$CTLD" -n -f "$T/normal.conf" | diff -u "$MESHWAN_TOP/tests/ctl/config.golden" - || fail "normal form is not stable"

# bad LINE-TEXT EXPECTED-MESSAGE
bad() {
	printf '# ok\nkeepalive = 10s\n%s\n' "$1" >"$T/bad.conf"
	if "$CTLD" -n -f "$T/bad.conf" >"$T/bad.out" 2>&1; then
		fail "accepted: $1"
	fi
	grep -qF "$T/bad.conf:3: $2" "$T/bad.out" || fail "for '$1' expected '$2', got: $(cat "$T/bad.out")"
}
bad 'grpc_listen = 127.0.0.1' 'grpc_listen: expected host:port'
bad 'coalesce = 9s' 'coalesce: out of range'
bad 'policy = ring' 'policy: expected full-mesh'
bad 'colour = blue' 'colour: unknown key'
bad 'keepalive = 20s' 'keepalive: given more than once'
bad 'tunnel_pool = 100.64.0.1/16' 'tunnel_pool: expected an IPv4 network'
bad 'just words' 'expected `key = value`'
bad 'store = /var/lib/db' 'store: expected postgresql://'
bad 'store = host=db password=secret' 'store: no password here'
bad 'store = postgresql://u:secret@db/meshwan' 'store: no password here'
bad 'store = postgresql://db/meshwan?sslmode=require&password=x' 'store: no password here'
"$CTLD" -n -f "$T/missing.conf" >/dev/null 2>&1 && fail "a missing file was accepted"
"$CTLD" -h | grep -q -- '-n ' || fail "--help does not describe -n"

# SIGHUP: bad file -> old configuration kept; good file -> applied.
write_config </dev/null
start_controller
cp "$T/controller.conf" "$T/good.conf"
echo "coalesce = forever" >>"$T/controller.conf"
kill -HUP "$CTLD_PID"
wait_for 5 "$T/ctld.log" 'reload: .* refused; keeping the running configuration' || fail "bad reload not refused"
grep -q "controller.conf:.*: coalesce: expected a duration" "$T/ctld.log" || fail "reload error does not name line and key"
kill -0 "$CTLD_PID" || fail "controller died on a bad reload"
[ "$(curl -s "$URL/healthz" | jq -r .status)" = ok ] || fail "API down after a bad reload"
{ cat "$T/good.conf"; echo "debug = session"; } >"$T/controller.conf"
kill -HUP "$CTLD_PID"
wait_for 5 "$T/ctld.log" 'reload: configuration from .* applied' || fail "good reload not applied"
# debug = session now shows session debug lines.
site_create '{"name":"x1","role":"hub","links":[{"name":"inet","address":"192.0.2.9"}]}' >/dev/null
wait_for 5 "$T/ctld.log" 'session: recompiled 1 site' || fail "debug switch not applied by the reload"
stop_controller
grep -q 'stopped$' "$T/ctld.log" || fail "no clean stop"
echo "config: ok"
