# tests/ctl/hostile_lib.sh — the stage of tests/ctl/hostile.sh and of
# tests/bench/hostile_bench.sh: a controller, a hostile site h with 1,024
# LAN prefixes (so that each snapshot it asks for weighs ~30 KiB), a
# well-behaved site g, and peers p1..p8 of both (full mesh).  Sourced after
# tests/ctl/lib.sh and write_config; sets HOSTILE, h, g, p1.
HOSTILE=${HOSTILE:-$BUILD/tests/ctl/hostile}
[ -x "$HOSTILE" ] || fail "$HOSTILE is not built"

start_controller
prefixes=$(i=0; while [ $i -lt 1024 ]; do
	printf '%s"10.%d.%d.0/24"' "$([ $i -gt 0 ] && echo ,)" $((i / 256)) $((i % 256))
	i=$((i + 1)); done)
h=$(site_create '{"name":"h","role":"hub","links":[{"name":"inet","address":"192.0.2.1"}],"lan_prefixes":['"$prefixes"']}')
g=$(site_create '{"name":"g","role":"hub","links":[{"name":"inet","address":"192.0.2.2"}]}')
for i in 1 2 3 4 5 6 7 8; do
	_id=$(site_create '{"name":"p'$i'","role":"hub","links":[{"name":"inet","address":"192.0.2.'$((i + 10))'"}]}')
	[ $i = 1 ] && p1=$_id
done
for n in h g p1; do
	make_key $n
	eval "_id=\$$n"
	enroll $n "$(token "$_id")" >/dev/null || fail "enroll $n"
	der_to_pem $n
done
deadline=$(( $(date +%s) + 10 ))
until [ "$(api GET "/api/v1/tunnels?site=$h")" = 200 ] && jq -e '.tunnels | length == 9' "$T/out" >/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "no tunnels: $(cat "$T/out")"
	sleep 0.1
done

# hostile NAME SITE MODE [N [M]] — runs the hostile edge in the foreground.
hostile() {
	_n=$1; _s=$2; shift 2
	"$HOSTILE" "127.0.0.1:$GRPC" "$T/ca/ca.crt" "$T/$_n.crt" "$T/$_n.key" "$_s" "$@"
}

# rss_kib — the controller's resident memory now.
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$CTLD_PID/status"; }
# peak_reset / peak_kib — its peak resident memory since the last reset.
peak_reset() { echo 5 >"/proc/$CTLD_PID/clear_refs"; }
peak_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$CTLD_PID/status"; }
