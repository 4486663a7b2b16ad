#!/bin/sh
# headless.sh — rekeying and headless operation do not fight:
#
#   curl ──REST──▶ meshwan-controller ◀──Session (mTLS)── edge_client a
#                   (rekey_interval 60s, headless_grace unset)
#
# A time rekey is soft and an SA's hard lifetime covers the whole
# headless grace (proto/README.md, "SA lifetimes"), so no rule ties the
# two: the config file and PUT /api/v1/crypto both accept a 60 s rekey
# with a 24 h grace, through the same check; the default grace (24 h)
# reaches the edge in its intent; the soft volume limits are bounded by
# half the SA's hard limit, on both paths.
set -u
. "$MESHWAN_TOP/tests/ctl/lib.sh"
need curl jq openssl
[ -x "$EDGE" ] || fail "$EDGE is not built"

# The file: a 60 s rekey with a 24 h grace passes the check mode.
write_config <<CONF
headless_grace = 24h
rekey_interval = 60s
CONF
"$CTLD" -n -f "$T/controller.conf" >"$T/check.out" 2>&1 || fail "config refused: $(cat "$T/check.out")"
grep -q '^headless_grace = 1d$' "$T/check.out" || fail "grace: $(grep headless "$T/check.out")"
grep -q '^rekey_interval = 1m$' "$T/check.out" || fail "rekey: $(grep rekey "$T/check.out")"

# Running on it, with the grace left at its default.
write_config <<CONF
rekey_interval = 60s
CONF
start_controller
[ "$(api GET /api/v1/crypto)" = 200 ] && jq -e '.rekey_seconds == 60' "$T/out" >/dev/null ||
	fail "crypto seeded from the file: $(cat "$T/out")"
a=$(site_create '{"name":"a","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.1"}]}')
site_create '{"name":"b","role":"spoke","region":"eu","links":[{"name":"inet","address":"192.0.2.2"}]}' >/dev/null
make_key a
enroll a "$(token "$a")" >/dev/null || fail "enroll a"
der_to_pem a
session a "$a"
wait_for 10 "$T/a.log" '^snapshot v=[0-9]+ tunnels=1$' || fail "no snapshot: $(cat "$T/a.log")"
grep -q '^  timers keepalive=15 grace=86400$' "$T/a.log" ||
	fail "the intent's grace is not 24 h: $(cat "$T/a.log")"

# REST: the same rules.  A 60 s rekey is fine; soft volume limits up to
# half the SA's hard limit (2^51 bytes, 2^46 packets), not above.
st=$(api PUT /api/v1/crypto '{"rekey_seconds":60,"rekey_bytes":1125899906842624,"rekey_packets":35184372088832}')
[ "$st" = 200 ] || fail "PUT /crypto at the limits gave $st: $(cat "$T/out")"
st=$(api PUT /api/v1/crypto '{"rekey_bytes":1125899906842625}')
[ "$st" = 400 ] && jq -e '.field == "rekey_bytes"' "$T/out" >/dev/null ||
	fail "rekey_bytes above half the hard limit: $st $(cat "$T/out")"
st=$(api PUT /api/v1/crypto '{"rekey_packets":35184372088833}')
[ "$st" = 400 ] && jq -e '.field == "rekey_packets"' "$T/out" >/dev/null ||
	fail "rekey_packets above half the hard limit: $st $(cat "$T/out")"
st=$(api PUT /api/v1/crypto '{"rekey_seconds":59}')
[ "$st" = 400 ] || fail "a 59 s rekey accepted: $(cat "$T/out")"

stop_controller
echo "headless: ok"
