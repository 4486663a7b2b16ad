# tests/edge/agent_lib.sh — sites run by meshwan-edge in namespaces
# (sourced by tests/edge/agent_*.sh; not a test by itself).
#
#           ns W ("wan"): bridge wan0 10.99.0.1/24
#           meshwan-controller (sessions 10.99.0.1:7443, enrollment :7444,
#           REST 127.0.0.1:8080 inside W: curl runs there)
#              |                         |
#   ns E<n>: w0 10.99.0.<n+1>     ns E<m>: ...
#   meshwan-edge (ASan), uesp     (one per site)
#   zebra+bgpd+bfdd (own sockets)
#   l0 10.<n>.0.1/24
#              |
#   ns H<n>: l0 10.<n>.0.2/24, default via 10.<n>.0.1  (the LAN host)
#
# The agent runs from the ASan/UBSan build (build-san); any sanitizer
# report fails the test (agent_check_sanitizers), and so does an agent
# exiting non-zero when stopped.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"
ns_init
ns_need vtysh curl jq openssl ping
FRR=/usr/lib/frr
for d in zebra bgpd bfdd; do
	[ -x "$FRR/$d" ] || fail "missing $FRR/$d"
done
cd "$MESHWAN_TOP" || fail "no $MESHWAN_TOP"
case "${BUILD:-build}" in
build-san*) SAN=$BUILD ;;
*)
	SAN=build-san
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s \
	    SANITIZE=address,undefined BUILD=$SAN \
	    $SAN/edge-agent/meshwan-edge $SAN/tests/edge/agent_keys >/dev/null ||
		fail "could not build the sanitizer build of meshwan-edge"
	;;
esac
AGENT="$MESHWAN_TOP/$SAN/edge-agent/meshwan-edge"
CTLD=${CTLD:-$MESHWAN_TOP/${BUILD:-build}/controller/meshwan-controller}
[ -x "$AGENT" ] || fail "missing $AGENT"
[ -x "$CTLD" ] || fail "missing $CTLD"
SANLOG="$NS_TMP/san"
mkdir -p "$SANLOG"
chmod 711 "$NS_TMP"
AGENT_ENV="ASAN_OPTIONS=detect_leaks=1:exitcode=23:log_path=$SANLOG/asan UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=23:log_path=$SANLOG/ubsan"

ms() { echo $(( $(date +%s%N) / 1000000 )); }

W=$(ns_name agw)
ns_add "$W"
ip -n "$W" link add wan0 type bridge || fail "bridge in $W"
ip -n "$W" link set wan0 up
ip -n "$W" addr add 10.99.0.1/24 dev wan0
CTL="$NS_TMP/ctl"
mkdir -p "$CTL"

# ctl_start [extra config lines on stdin]
ctl_start() {
	{
		echo "grpc_listen = 10.99.0.1:7443"
		echo "enroll_listen = 10.99.0.1:7444"
		echo "http_listen = 127.0.0.1:8080"
		echo "database = $CTL/controller.db"
		echo "ca_dir = $CTL/ca"
		echo "admin_token_file = $CTL/admin.token"
		cat
	} >"$CTL/controller.conf"
	# A restart: the earlier run's log is kept aside.
	[ -s "$CTL/ctld.log" ] && cat "$CTL/ctld.log" >>"$CTL/ctld.log.prev"
	: >"$CTL/ctld.log"
	ns_bg "$W" "$CTLD" -d -f "$CTL/controller.conf" >>"$CTL/ctld.log" 2>&1
	CTLD_PID=$NS_PID
	wait_until 20 grep -q ': ready$' "$CTL/ctld.log" ||
		fail "controller not ready: $(tail -n 20 "$CTL/ctld.log")"
	H="Authorization: Bearer $(cat "$CTL/admin.token")"
}

ctl_stop() {
	ns_stop "$CTLD_PID" || fail "controller did not stop cleanly"
}

# api METHOD PATH [BODY] — HTTP status printed, body in $NS_TMP/out.
api() {
	if [ $# -ge 3 ]; then
		ip netns exec "$W" curl -s -o "$NS_TMP/out" -w '%{http_code}' \
		    -X "$1" -H "$H" -H 'Content-Type: application/json' \
		    --data "$3" "http://127.0.0.1:8080$2"
	else
		ip netns exec "$W" curl -s -o "$NS_TMP/out" -w '%{http_code}' \
		    -X "$1" -H "$H" "http://127.0.0.1:8080$2"
	fi
}

start_frr() {
	_ns=$1 _d=$2
	mkdir -p "$_d"
	for _c in zebra bgpd bfdd; do : >"$_d/$_c.conf"; done
	chown -R frr:frr "$_d"
	ns_bg "$_ns" "$FRR/zebra" -u frr -g frr -f "$_d/zebra.conf" \
		-i "$_d/zebra.pid" -z "$_d/zserv.api" --vty_socket "$_d" -P 0 \
		--log "file:$_d/zebra.log" </dev/null >/dev/null 2>&1
	wait_until 30 test -S "$_d/zserv.api" || fail "zebra in $_ns did not start"
	ns_bg "$_ns" "$FRR/bgpd" -S -f "$_d/bgpd.conf" -i "$_d/bgpd.pid" \
		-z "$_d/zserv.api" --vty_socket "$_d" -P 0 \
		--log "file:$_d/bgpd.log" </dev/null >/dev/null 2>&1
	ns_bg "$_ns" "$FRR/bfdd" -u frr -g frr -f "$_d/bfdd.conf" \
		-i "$_d/bfdd.pid" -z "$_d/zserv.api" --vty_socket "$_d" -P 0 \
		--bfdctl "$_d/bfdd.sock" --log "file:$_d/bfdd.log" \
		</dev/null >/dev/null 2>&1
	wait_until 30 test -S "$_d/bgpd.vty" || fail "bgpd in $_ns did not start"
	wait_until 30 test -S "$_d/bfdd.vty" || fail "bfdd in $_ns did not start"
}

# site_add N NAME — a site: REST registration, namespaces, FRR, LAN host,
# configuration with a fresh token.  Sets SITE_<N> (id), E<N>, H<N>.
site_add() {
	_n=$1 _name=$2
	_e=$(ns_name "ag$_n")
	_h=$(ns_name "ah$_n")
	_wan="10.99.0.$((_n + 1))"
	ns_add "$_e"
	ns_add "$_h"
	ip link add "w$_n-$$" netns "$_e" type veth peer name "p$_n-$$" netns "$W" ||
		fail "veth wan $_n"
	ip -n "$_e" link set "w$_n-$$" name w0
	ip -n "$_e" link set w0 up
	ip -n "$W" link set "p$_n-$$" master wan0 up
	ip -n "$_e" addr add "$_wan/24" dev w0
	ip link add "l$_n-$$" netns "$_e" type veth peer name "h$_n-$$" netns "$_h" ||
		fail "veth lan $_n"
	ip -n "$_e" link set "l$_n-$$" name l0
	ip -n "$_h" link set "h$_n-$$" name l0
	ip -n "$_e" link set l0 up
	ip -n "$_h" link set l0 up
	ip -n "$_e" addr add "10.$_n.0.1/24" dev l0
	ip -n "$_h" addr add "10.$_n.0.2/24" dev l0
	ip -n "$_h" route add default via "10.$_n.0.1"
	ip netns exec "$_e" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$_e" sysctl -qw net.ipv4.conf.all.rp_filter=0
	_st=$(api POST /api/v1/sites "{\"name\":\"$_name\",\"role\":\"spoke\",\"links\":[{\"name\":\"inet\",\"address\":\"$_wan\"}],\"lan_prefixes\":[\"10.$_n.0.0/24\"]}")
	[ "$_st" = 201 ] || fail "creating site $_name gave $_st: $(cat "$NS_TMP/out")"
	_id=$(jq -r .id "$NS_TMP/out")
	_st=$(api POST "/api/v1/sites/$_id/token")
	[ "$_st" = 201 ] || fail "token for $_name gave $_st"
	_tok=$(jq -r .token "$NS_TMP/out")
	# Site 2 trusts the controller by its CA pin (from the token's
	# edge_config), the others by the CA file.
	if [ "$_n" = 2 ]; then
		_trust="ca_pin = $(jq -r .edge_config.ca_pin "$NS_TMP/out")"
	else
		_trust="ca_file = $CTL/ca/ca.crt"
	fi
	_sd="$NS_TMP/e$_n"
	mkdir -p "$_sd"
	start_frr "$_e" "$_sd/frr"
	printf '%s\n' "$_tok" >"$_sd/token"
	chmod 600 "$_sd/token"
	cat >"$_sd/edge.conf" <<EOF
controller = 10.99.0.1:7443
enroll_controller = 10.99.0.1:7444
$_trust
token_file = $_sd/token
state_dir = $_sd/state
backend = uesp
link = inet $_wan
frr_vty_socket = $_sd/frr
lan_prefix = 10.$_n.0.0/24
EOF
	eval "SITE_$_n=$_id E$_n=$_e H$_n=$_h"
}

# agent_start N — the site's agent (ASan build) in its namespace.
agent_start() {
	_d="$NS_TMP/e$1"
	eval "_e=\$E$1"
	: >>"$_d/agent.log"
	rm -f "$_d/state/status.json"   # a stale one would satisfy waits
	ns_bg "$_e" env $AGENT_ENV "$AGENT" -d -c "$_d/edge.conf" \
	    >>"$_d/agent.log" 2>&1
	eval "AGENT_PID_$1=$NS_PID"
}

# agent_stop N — SIGTERM; it must exit 0 (ASan's leak check included).
agent_stop() {
	eval "_p=\$AGENT_PID_$1"
	ns_stop "$_p" || fail "agent $1 did not stop cleanly (exit $?): $(tail -n 20 "$NS_TMP/e$1/agent.log")"
}

# status N — the agent's status document (state_dir/status.json).
status() {
	cat "$NS_TMP/e$1/state/status.json" 2>/dev/null
}

# status_has N FILTER — FILTER (jq) holds on site N's status document
# (false while there is none: jq -e alone accepts empty input).
status_has() {
	[ -s "$NS_TMP/e$1/state/status.json" ] &&
	jq -e "$2" "$NS_TMP/e$1/state/status.json" >/dev/null 2>&1
}

# lan_ping FROM TO — one ping from LAN host FROM to LAN host TO.
lan_ping() {
	eval "_h=\$H$1"
	ip netns exec "$_h" ping -c 1 -W 1 "10.$2.0.2" >/dev/null 2>&1
}

agent_check_sanitizers() {
	if ls "$SANLOG"/* >/dev/null 2>&1; then
		cat "$SANLOG"/*
		fail "sanitizer reports"
	fi
	echo "no sanitizer reports"
}

agent_logs() {
	for _f in "$NS_TMP"/e*/agent.log; do
		echo "--- $_f"
		tail -n "${LOG_LINES:-30}" "$_f"
	done
	echo "--- controller"
	tail -n "${LOG_LINES:-30}" "$CTL/ctld.log"
}
