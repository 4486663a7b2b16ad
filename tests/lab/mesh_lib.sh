# tests/lab/mesh_lib.sh — the three-site mesh of tests/edge/sites_lib.sh
# (controller, meshwan-edge and FRR per site, LAN hosts) inside the lab VM,
# with the kernel's XFRM backend.  Sourced by the mesh scenarios after
# tests/edge/sites_lib.sh.  POSIX sh.
#
#   mesh_up ENCAP [SITES]    underlay, sites (plain; "a b c" by default),
#                            controller with policy encap ENCAP (gre|vxlan),
#                            each site registered; agents started (site a
#                            under mesh_holder, so it can be restarted)
#   mesh_check [SECS]        every LAN pings every other, BGP routes in each
#                            FRR, each agent's SPIs in `ip -s xfrm state`
#   mesh_status NAME         `meshwan-edge status --json` of site NAME
#   mesh_counts NAME         "sas N policies N devices N routes N" of NAME
#   mesh_xfrm_stat NAME      the non-zero lines of NAME's /proc/net/xfrm_stat
#   mesh_encap_is NAME ENC   NAME's two tunnel devices and its policies are
#                            of kind ENC (gre|vxlan), nothing of the other
#   mesh_all_encap ENC SECS  every site's devices and policies of kind ENC
#                            within SECS (x LAB_SLOW), and its counts shown
#   mesh_rekey NAME PEER     REST rekey of the tunnel under a ping: no loss,
#                            xfrm_stat unchanged on both sides
#   mesh_restart NAME PEER   NAME's agent restarted under a ping: no loss,
#                            same SAs, no sequence number back
#
# The backend per site: $LAB_BACKEND_<NAME>, else $LAB_BACKEND (sites_lib).

MESH_EDGE=$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge

mesh_t0=$(date +%s)
mesh_step() {
	echo "== [$(( $(date +%s) - mesh_t0 ))s] $*"
}

# mesh_init BASE — lab_test_init, plus: on exit the lab's logs are copied
# to the results share ($LAB_OUT/mesh-BASE, kept by tests/lab/run KEEP=1).
mesh_init() {
	lab_test_init "$1"
	MESH_BASE=$1
	trap 'mesh_down' EXIT
}

mesh_down() {
	_rc=$?
	if [ -n "${LAB_OUT:-}" ] && [ -d "${LAB_DIR:-}" ]; then
		mkdir -p "$LAB_OUT/mesh-$MESH_BASE"
		(cd "$LAB_DIR" && find . -type f \( -name '*.log' -o -name 'ping.*' -o -name '*.conf' -o -name '*.txt' -o -name '*.json' \) |
		    tar -cf - -T - 2>/dev/null) | tar -xf - -C "$LAB_OUT/mesh-$MESH_BASE" 2>/dev/null
	fi
	# In the lab VM nothing outlives the scenario: the VM powers off.
	# Tearing a mesh down there (agents, FRR, namespaces) took minutes.
	[ -n "${LAB_GUEST:-}" ] || lab_down "$LAB_DIR"
	exit $_rc
}

# mesh_poll SECS CMD... — lab_wait at a slow pace: CMD every 2 s.  The
# checks here run vtysh, jq, ip and ping, each a second or more of CPU
# under TCG; polled every 0.1 s (lab_wait) they take the VM's CPU from
# the agents and FRR they wait for.
mesh_poll() {
	_mp_deadline=$(( $(date +%s) + $1 * ${LAB_SLOW:-1} ))
	shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$_mp_deadline" ] && return 1
		sleep 2
	done
	return 0
}

mesh_ns() {
	echo "$LAB_P-$1"
}

# mesh_holder NAME — meshwan-edge of site NAME under a holder of its
# ESP-in-UDP socket (UDP 4500 in the site's namespace), handed to each
# agent run as fd 3 with LISTEN_PID/LISTEN_FDS, as a systemd .socket unit
# with ListenDatagram=4500 does.  When the agent exits the holder starts
# it again (Restart=always); SIGTERM to the holder stops both.  The
# current agent's pid is in $LAB_DIR/NAME/agent.pid.
mesh_holder() {
	lab_frr_ready "$1"
	rm -f "$LAB_DIR/$1/agent.pid"
	lab_bg "$1-edge" "$(mesh_ns "$1")" python3 -c '
import os, signal, socket, subprocess, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4500))
os.dup2(s.fileno(), 3)
edge, conf, pidf = sys.argv[1:4]
stop = False
child = None
def term(sig, frm):
    global stop
    stop = True
    if child is not None:
        child.terminate()
signal.signal(signal.SIGTERM, term)
while not stop:
    child = subprocess.Popen(["sh", "-c", "LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" -f -c \"$1\"",
        edge, conf], pass_fds=(3,))
    with open(pidf + ".tmp", "w") as f:
        f.write("%d\n" % child.pid)
    os.rename(pidf + ".tmp", pidf)
    child.wait()
    time.sleep(0.05)
' "$MESH_EDGE" "$LAB_DIR/$1/edge.conf" "$LAB_DIR/$1/agent.pid"
	lab_wait 10 test -s "$LAB_DIR/$1/agent.pid" || lab_fail "no agent under the holder of $1"
}

mesh_agent_pid() {
	cat "$LAB_DIR/$1/agent.pid"
}

mesh_up() {
	_enc=$1
	MESH_SITES=${2:-a b c}
	lab_underlay
	_i=1
	for _s in $MESH_SITES; do
		lab_site "$_s" "$_i" plain
		_i=$((_i + 1))
	done
	mesh_step "sites made: $MESH_SITES"
	lab_controller 0
	mesh_step "controller ready"
	# No BFD: under TCG a VM this busy misses its 600 ms detection time
	# (FRR_DEFAULT_BFD_MS x 3) and BFD takes BGP down with it, again and
	# again.  BGP's own timers are what the scenarios rely on.
	case "$_enc" in
	vxlan) _pol='{"encap":"vxlan","vni_min":1000,"vni_max":1999,"bgp_bfd":false}' ;;
	*) _pol='{"encap":"gre","bgp_bfd":false}' ;;
	esac
	lab_api PUT /api/v1/policy "$_pol" >/dev/null ||
		lab_fail "PUT /policy $_pol: $(cat "$LAB_DIR/api.out")"
	for _s in $MESH_SITES; do
		lab_register "$_s"
		# vtysh alone takes seconds to start under TCG, and an apply
		# of the first intent runs several: 15 s (the default) was
		# passed, killing the apply again and again.
		echo "frr_timeout_ms = ${MESH_FRR_TIMEOUT_MS:-90000}" >>"$LAB_DIR/$_s/edge.conf"
	done
	mesh_step "sites registered"
	# One after the other, each once it applied its first intent (FRR
	# included): an enrollment beside another agent's first FRR apply
	# (a minute of vtysh under TCG on a loaded host) overran the agent's
	# 10 s enrollment deadline after the controller had taken the
	# one-time token, and the retry was refused (token already used).
	for _s in $MESH_SITES; do
		if [ "$_s" = a ]; then mesh_holder a; else lab_agent "$_s"; fi
		mesh_poll 60 grep -q 'enroll: enrolled as site' "$LAB_DIR/$_s-edge.log" ||
			lab_fail "the agent of $_s did not enroll"
		mesh_poll 60 grep -q 'agent: intent version [0-9]* applied' "$LAB_DIR/$_s-edge.log" ||
			lab_fail "the agent of $_s applied no intent"
		mesh_step "agent of $_s enrolled and applied its first intent"
	done
	mesh_step "agents started"
}

mesh_status() {
	"$MESH_EDGE" status -c "$LAB_DIR/$1/edge.conf" --json
}

mesh_backend() {
	eval "echo \${LAB_BACKEND_$1:-\${LAB_BACKEND:-uesp}}"
}

# mesh_routes_ok NAME — NAME's FRR holds every other site's LAN, by BGP,
# selected and installed through a tunnel device (mw...).
mesh_routes_ok() {
	for _o in $LAB_SITES; do
		[ "$_o" = "$1" ] && continue
		_p="10.$(lab_site_index "$_o").0.0/24"
		lab_vtysh "$1" -c "show ip route $_p json" | jq -e --arg p "$_p" '
			.[$p] | any(.protocol == "bgp" and .selected == true and .installed == true
			and (.nexthops | length > 0)
			and all(.nexthops[]; (.interfaceName // "") | startswith("mw")))' >/dev/null ||
			return 1
	done
}

# mesh_spis_ok NAME — every SA the agent of NAME reports is in the
# kernel (ip -s xfrm state) with that SPI, and each tunnel has an active
# outbound SA and an inbound one.
mesh_spis_ok() {
	_st=$(mesh_status "$1") || return 1
	_k=$(ip -n "$(mesh_ns "$1")" -s xfrm state) || return 1
	_nt=$(echo "$_st" | jq '.tunnels | length')
	[ "$_nt" -ge 1 ] || return 1
	echo "$_st" | jq -e 'all(.tunnels[]; any(.sas[]; .dir == "out" and .active)
		and any(.sas[]; .dir == "in"))' >/dev/null || return 1
	for _spi in $(echo "$_st" | jq -r '.tunnels[].sas[].spi'); do
		# iproute2 prints "spi 0x0a198910(169445648)".
		echo "$_k" | grep -q "spi $(printf '0x%08x' "$_spi")[ (]" || return 1
	done
}

mesh_check() {
	mesh_poll "${1:-120}" lab_all_ping || lab_wait_pings 1 || lab_fail "LAN hosts do not all ping"
	mesh_step "every LAN pings every other"
	for _s in $LAB_SITES; do
		mesh_poll 60 mesh_routes_ok "$_s" ||
			lab_fail "site $_s: no BGP route over a tunnel to every other LAN: $(lab_vtysh "$_s" -c 'show ip route json')"
		[ "$(mesh_backend "$_s")" = xfrm ] || continue
		mesh_poll 30 mesh_spis_ok "$_s" ||
			lab_fail "site $_s: the agent's SPIs are not all in the kernel: $(mesh_status "$_s"; ip -n "$(mesh_ns "$_s")" -s xfrm state)"
		echo "site $_s: $(mesh_status "$_s" | jq -c '[.tunnels[] | {dev: .device, spis: [.sas[] | "\(.dir):\(.spi)"]}]')"
	done
}

# mesh_counts NAME — what the backend holds in NAME's namespace.
mesh_counts() {
	_ns=$(mesh_ns "$1")
	printf 'sas %s policies %s devices %s routes %s\n' \
	    "$(ip -n "$_ns" xfrm state | grep -c '^src ')" \
	    "$(ip -n "$_ns" xfrm policy | grep -c '^src ')" \
	    "$(ip -n "$_ns" -o link show | grep -c ': mw')" \
	    "$(ip -n "$_ns" route show table all | grep -c ' dev mw')"
}

mesh_xfrm_stat() {
	ip netns exec "$(mesh_ns "$1")" cat /proc/net/xfrm_stat | awk '$2 != 0'
}

# mesh_encap_is NAME gre|vxlan: NAME's tunnel devices all of that kind (and
# each VXLAN one on port 4789 with its tunnel's VNI), its policies
# select that traffic, none of the other kind is left.
mesh_encap_is() {
	_ns=$(mesh_ns "$1")
	_links=$(ip -n "$_ns" -d -o link show) || return 1
	_n=$(echo "$_links" | grep -c ': mw[0-9]*[:@]')
	[ "$_n" -eq 2 ] || return 1
	_pol=$(ip -n "$_ns" xfrm policy) || return 1
	if [ "$2" = gre ]; then
		[ "$(echo "$_links" | grep ': mw[0-9]*@' | grep -c ' gre remote ')" -eq 2 ] || return 1
		echo "$_pol" | grep -q 'proto gre' || return 1
		echo "$_pol" | grep -q 'dport 4789' && return 1
	else
		[ "$(echo "$_links" | grep ': mw[0-9]*:' | grep -c ' vxlan id [0-9]* .*dstport 4789')" -eq 2 ] ||
			return 1
		echo "$_pol" | grep -q 'proto gre' && return 1
		echo "$_pol" | grep -q 'proto udp .*dport 4789' || return 1
		# The VNIs are the controller's.
		_vnis=$(lab_api GET "/api/v1/tunnels?site=$(lab_site_id "$1")" |
		    jq -r '.tunnels[] | .vni') || return 1
		[ "$(echo "$_vnis" | grep -c '^1[0-9][0-9][0-9]$')" -eq 2 ] || return 1
		for _t in $_vnis; do
			echo "$_links" | grep -q " vxlan id $_t " || return 1
		done
	fi
	return 0
}

# mesh_sa_seqs NAME — "SPI OSEQ" per SA in NAME's kernel, by SPI (OSEQ
# decimal, the ESN's high half included; 0 for inbound SAs).
mesh_sa_seqs() {
	ip -s -n "$(mesh_ns "$1")" xfrm state | awk '
		function out() { if (spi != "") print spi, (hi == "" ? "0x0" : hi), (lo == "" ? "0x0" : lo) }
		/^src / { out(); spi = hi = lo = "" }
		{ for (i = 1; i < NF; i++) {
			v = $(i + 1); sub(/,$/, "", v)
			if ($i == "spi" && $(i - 1) == "esp") spi = v
			else if ($i == "oseq-hi") hi = v
			else if ($i == "oseq") lo = v
		} }
		END { out() }' |
	    while read -r _spi _hi _lo; do
		echo "$_spi $(( (_hi << 32) + _lo ))"
	    done | sort
}

# mesh_ping_start NAME PEER TAG — pings from NAME's LAN host to PEER's,
# 5 a second, in the background (stop with mesh_ping_stop TAG: every
# ping answered, or the scenario fails).  -w: a late answer still counts.
mesh_ping_start() {
	ip netns exec "$LAB_P-lan-$1" ping -i 0.2 -w 300 "$(lab_lan_addr "$2")" \
	    >"$LAB_DIR/ping.$3.txt" 2>&1 &
	echo $! >"$LAB_DIR/ping.$3.pid"
	mesh_poll 30 grep -q 'bytes from' "$LAB_DIR/ping.$3.txt" ||
		lab_fail "$3: no ping answered before the step: $(cat "$LAB_DIR/ping.$3.txt")"
}

mesh_ping_stop() {
	# A few more after the step, then SIGINT: ping prints its summary.
	sleep 2
	kill -INT "$(cat "$LAB_DIR/ping.$1.pid")"
	wait "$(cat "$LAB_DIR/ping.$1.pid")" 2>/dev/null
	_sum=$(grep 'packets transmitted' "$LAB_DIR/ping.$1.txt")
	echo "$1: $_sum"
	set -- "$1" $(echo "$_sum" | sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p')
	[ $# -eq 3 ] && [ "$2" -ge 10 ] || lab_fail "$1: no ping summary: $(tail -n 5 "$LAB_DIR/ping.$1.txt")"
	# The last one sent may be in flight at the SIGINT.
	[ "$3" -ge $(( $2 - 1 )) ] || lab_fail "$1: $(( $2 - $3 )) of $2 pings lost"
}

# mesh_restart NAME PEER — NAME's agent (under mesh_holder) stopped with
# SIGTERM and started again while NAME's LAN pings PEER's: no ping lost,
# the kernel holds the same SAs after as before (no SA made again), no
# outbound SA's sequence number went back, and the new agent applied its
# intent.
mesh_restart() {
	_applied() { grep -c 'agent: intent version [0-9]* applied' "$LAB_DIR/$1-edge.log"; }
	_n0=$(_applied "$1")
	_pid0=$(mesh_agent_pid "$1")
	mesh_ping_start "$1" "$2" restart
	_seq0=$(mesh_sa_seqs "$1")
	[ -n "$_seq0" ] || lab_fail "site $1: no SA in the kernel before the restart"
	kill -TERM "$_pid0"
	mesh_poll 30 sh -c "[ \"\$(cat '$LAB_DIR/$1/agent.pid')\" != $_pid0 ]" ||
		lab_fail "site $1: the agent was not started again"
	mesh_poll 60 sh -c "[ \$(grep -c 'agent: intent version [0-9]* applied' '$LAB_DIR/$1-edge.log') -gt $_n0 ]" ||
		lab_fail "site $1: the restarted agent applied no intent: $(tail -n 20 "$LAB_DIR/$1-edge.log")"
	mesh_ping_stop restart
	_seq1=$(mesh_sa_seqs "$1")
	[ "$(echo "$_seq0" | cut -d' ' -f1)" = "$(echo "$_seq1" | cut -d' ' -f1)" ] ||
		lab_fail "site $1: SAs changed across the restart: before $(echo $_seq0), after $(echo $_seq1)"
	echo "$_seq0" | while read -r _spi _o; do
		_n=$(echo "$_seq1" | awk -v s="$_spi" '$1 == s { print $2 }')
		[ "$_n" -ge "$_o" ] || { echo "SA $_spi: oseq $_o -> $_n"; exit 1; }
	done || lab_fail "site $1: an outbound sequence number went back across the restart"
	echo "site $1: SAs (spi oseq) before $(echo $_seq0); after $(echo $_seq1)"
}

# mesh_rekey NAME PEER — the operator rekeys the tunnel NAME-PEER (POST
# /tunnels/ID/rekey) while NAME's LAN pings PEER's: NAME's active
# outbound SPI on it changes, no ping is lost, and neither side's
# /proc/net/xfrm_stat counts anything new.
mesh_rekey() {
	_pa=$(lab_site_id "$2")
	_tid=$(mesh_status "$1" | jq -r --argjson p "$_pa" '.tunnels[] | select(.peer_site == $p) | .id')
	[ -n "$_tid" ] || lab_fail "site $1: no tunnel to $2 in its status: $(mesh_status "$1")"
	_out() {
		mesh_status "$1" | jq -r --argjson t "$_tid" \
		    '.tunnels[] | select(.id == $t) | .sas[] | select(.dir == "out" and .active) | .spi'
	}
	_spi0=$(_out "$1")
	_st1=$(mesh_xfrm_stat "$1")
	_st2=$(mesh_xfrm_stat "$2")
	mesh_ping_start "$1" "$2" rekey
	lab_api POST "/api/v1/tunnels/$_tid/rekey" >/dev/null ||
		lab_fail "rekey of tunnel $_tid: $(cat "$LAB_DIR/api.out")"
	_deadline=$(( $(date +%s) + 60 * ${LAB_SLOW:-1} ))
	while _spi1=$(_out "$1"); [ -z "$_spi1" ] || [ "$_spi1" = "$_spi0" ]; do
		[ "$(date +%s)" -lt "$_deadline" ] || lab_fail "tunnel $_tid: outbound SPI still $_spi0"
		sleep 2
	done
	mesh_ping_stop rekey
	[ "$(mesh_xfrm_stat "$1")" = "$_st1" ] || lab_fail "site $1: xfrm_stat rose: $(mesh_xfrm_stat "$1"), was: $_st1"
	[ "$(mesh_xfrm_stat "$2")" = "$_st2" ] || lab_fail "site $2: xfrm_stat rose: $(mesh_xfrm_stat "$2"), was: $_st2"
	echo "tunnel $_tid ($1-$2): outbound SPI $_spi0 -> $(_out "$1"), xfrm_stat unchanged"
}

# mesh_all_encap ENC SECS [WHEN] — mesh_encap_is ENC on every site of the
# mesh, each polled for SECS; then prints what each holds ("site a holds
# WHEN: sas ...").  Fails the scenario naming the first site that is not.
mesh_all_encap() {
	for _s in ${MESH_SITES:-a b c}; do
		mesh_poll "$2" mesh_encap_is "$_s" "$1" || {
			command -v mesh_diag >/dev/null && mesh_diag
			lab_fail "site $_s: not $1: $(ip -n "$(mesh_ns $_s)" -d -o link show; ip -n "$(mesh_ns $_s)" xfrm policy)"
		}
		echo "site $_s holds${3:+ $3}: $(mesh_counts $_s)"
	done
}
