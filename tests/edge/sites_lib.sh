# tests/edge/sites_lib.sh — the multi-site lab shared by `make demo` and
# the tests in tests/edge/ (POSIX sh, sourced).  Network namespaces only;
# every namespace, process and root interface it makes is written to a
# manifest in the lab folder, so lab_down removes exactly those, from this
# shell (trap) or from another one (`make demo-down`).
#
#   root ns:  meshwan-controller, REST on 127.0.0.1, sessions and
#             enrollment on the root end of veth "<P>c" (198.19.x.1/30)
#   P-inet:   the underlay "internet" router: one veth per site link,
#             the controller link (masqueraded towards it), cut rules
#   P-SITE:   an edge: zebra+bgpd+bfdd (own vty folder), meshwan-edge
#             (uesp), lan0 10.N.0.1/24
#   P-lan-SITE: the LAN host 10.N.0.10/24 behind it
#             (LAB_DUAL=1: also fd00:10:N::1/64 and ::10, the site's
#             IPv6 LAN prefix fd00:10:N::/64 announced too)
#   P-nat-SITE: for a NAT site, nftables snat/masquerade in front of the
#             edge (edge 10.99.N.2, public 198.18.N.2, ESP mapped to :4501)
#
# Site kinds: plain (one link "inet" 198.18.N.2), twolink ("inet"
# 198.18.N.2 and "mpls" 198.18.(N+10).2, two underlay paths, policy
# routing by source), nat (behind P-nat-SITE).  A site named in
# LAB_V6LINK (before lab_site) gets one more link, "v6" 2001:db8:N::2/64
# (router 2001:db8:N::1): an IPv6 underlay, paired v6-v6 by the policy.
#
# Needs: MESHWAN_TOP, BUILD; root; ip, nft, curl, jq, FRR 8.4.
# Entry points: lab_init DIR PREFIX, lab_underlay, lab_controller,
# lab_site NAME N KIND, lab_register NAME, lab_agent NAME, lab_wait_pings,
# lab_status, lab_down DIR.  Everything lab_* prints goes to stderr except
# what a caller reads.

LAB_FRR=/usr/lib/frr
LAB_SITES=""

lab_fail() {
	echo "FAIL: $*" >&2
	lab_diag
	exit 1
}

# lab_diag — the last lines of the controller's and agents' logs.
lab_diag() {
	[ -n "${LAB_DIR:-}" ] || return 0
	for _f in "$LAB_DIR"/controller.log "$LAB_DIR"/*-edge.log; do
		[ -f "$_f" ] || continue
		echo "--- last lines of $(basename "$_f")" >&2
		tail -n "${LAB_LOG_LINES:-15}" "$_f" >&2
	done
}

# lab_test_init BASE — for a test: a fresh lab folder and unique names,
# and a trap that removes everything whatever happens (KEEP=1 keeps the
# folder's logs and tears the rest down; LAB_KEEP_FAILED=DIR keeps them
# in DIR when the test fails).
lab_test_init() {
	_ti_dir=$(mktemp -d "${TMPDIR:-/tmp}/meshwan-$1.XXXXXX") || lab_fail "mktemp"
	lab_init "$_ti_dir" "mw$$"
	trap 'lab_test_down' EXIT
	trap 'exit 130' INT TERM
}

lab_test_down() {
	_rc=$?
	if [ -n "${KEEP:-}" ]; then
		cp -r "$LAB_DIR" "$LAB_DIR.kept" 2>/dev/null && echo "lab: logs kept in $LAB_DIR.kept" >&2
	elif [ "$_rc" -ne 0 ] && [ -n "${LAB_KEEP_FAILED:-}" ]; then
		rm -rf "$LAB_KEEP_FAILED"
		mkdir -p "$(dirname "$LAB_KEEP_FAILED")" &&
			cp -r "$LAB_DIR" "$LAB_KEEP_FAILED" 2>/dev/null &&
			echo "lab: logs, FRR logs and status kept in $LAB_KEEP_FAILED" >&2
	fi
	lab_down "$LAB_DIR"
	exit $_rc
}

# lab_three_sites [HTTP_PORT] — the demo's mesh: site a with two links
# (inet, mpls), site b plain, site c behind NAT; the controller; each site
# registered through REST and its agent started.  With LAB_EDGE_METRICS
# set (ADDR:PORT), every edge serves /metrics there in its own namespace.
lab_three_sites() {
	lab_underlay
	lab_site a 1 twolink
	lab_site b 2 plain
	lab_site c 3 nat
	lab_controller "${1:-0}"
	for _s3 in a b c; do
		lab_register "$_s3"
		if [ -n "${LAB_EDGE_METRICS:-}" ]; then
			echo "metrics_listen = $LAB_EDGE_METRICS" >>"$LAB_DIR/$_s3/edge.conf"
		fi
	done
	for _s3 in a b c; do lab_agent "$_s3"; done
}

lab_log() {
	echo "lab: $*" >&2
}

lab_ms() {
	echo $(( $(date +%s%N) / 1000000 ))
}

# lab_wait SECS CMD... — poll CMD every 0.1 s; 1 when SECS pass first.
# LAB_SLOW (1) multiplies SECS: emulated machines (the kernel lab's TCG).
# The last try starts at or after the deadline (a vtysh or REST check can
# take seconds on a loaded host), as wait_until in tests/lib/netns.sh.
lab_wait() {
	_lw_deadline=$(( $(date +%s) + $1 * ${LAB_SLOW:-1} ))
	shift
	while :; do
		_lw_late=0
		[ "$(date +%s)" -ge "$_lw_deadline" ] && _lw_late=1
		"$@" >/dev/null 2>&1 && return 0
		[ $_lw_late = 1 ] && return 1
		sleep 0.1
	done
}

lab_record() {
	echo "$*" >>"$LAB_DIR/manifest"
}

# lab_init DIR PREFIX — the lab's folder (made, 0711 so FRR's user can
# reach its sockets) and the prefix of every name (<= 5 characters).
lab_init() {
	LAB_DIR=$1
	LAB_P=$2
	[ "$(id -u)" = 0 ] || lab_fail "the lab needs root (network namespaces)"
	for _t in ip nft curl jq vtysh setsid; do
		command -v "$_t" >/dev/null 2>&1 || lab_fail "missing tool: $_t (make deps)"
	done
	for _d in zebra bgpd bfdd; do
		[ -x "$LAB_FRR/$_d" ] || lab_fail "missing $LAB_FRR/$_d (make deps)"
	done
	mkdir -p "$LAB_DIR" || lab_fail "mkdir $LAB_DIR"
	chmod 711 "$LAB_DIR"
	# zebra and bfdd run as frr: every folder above must let it through.
	if command -v runuser >/dev/null 2>&1; then
		runuser -u frr -- test -x "$LAB_DIR" ||
			lab_fail "user frr cannot reach $LAB_DIR (a parent folder is not searchable by others)"
	fi
	: >>"$LAB_DIR/manifest"
	LAB_INET="$LAB_P-inet"
}

# lab_bg NAME NS CMD... — run CMD (in NS, "-" = root) in its own session,
# output to $LAB_DIR/NAME.log; its pid is recorded and left in LAB_PID.
lab_bg() {
	_lb_name=$1 _lb_ns=$2
	shift 2
	if [ "$_lb_ns" = - ]; then
		setsid "$@" </dev/null >>"$LAB_DIR/$_lb_name.log" 2>&1 &
	else
		setsid ip netns exec "$_lb_ns" "$@" </dev/null >>"$LAB_DIR/$_lb_name.log" 2>&1 &
	fi
	LAB_PID=$!
	# The start time tells a later lab_down whether the pid is still ours.
	_lb_start=$(cut -d' ' -f22 "/proc/$LAB_PID/stat" 2>/dev/null)
	lab_record "pid $LAB_PID ${_lb_start:-0} $_lb_name"
}

lab_ns() {
	ip netns add "$1" || lab_fail "ip netns add $1"
	lab_record "ns $1"
	ip -n "$1" link set lo up
	ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv6.conf.all.forwarding=1 >/dev/null
}

# lab_veth NS1 IF1 NS2 IF2 — a veth pair, both ends up ("-" = root ns).
lab_veth() {
	_a1=""; [ "$1" = - ] || _a1="netns $1"
	_a2=""; [ "$3" = - ] || _a2="netns $3"
	# shellcheck disable=SC2086
	ip link add "$2" $_a1 type veth peer name "$4" $_a2 || lab_fail "veth $1/$2 <-> $3/$4"
	if [ "$1" = - ]; then ip link set "$2" up; else ip -n "$1" link set "$2" up; fi
	if [ "$3" = - ]; then ip link set "$4" up; else ip -n "$3" link set "$4" up; fi
}

# lab_underlay — the internet router and its link to the controller in
# the root namespace.  The root end gets a /30 of 198.19.0.0/16 that no
# other interface of the root namespace holds (parallel labs).
lab_underlay() {
	lab_ns "$LAB_INET"
	_slot=$(( $$ % 16000 ))
	_tries=0
	while :; do
		_o3=$(( _slot / 64 )) _o4=$(( (_slot % 64) * 4 ))
		LAB_CTL_ADDR="198.19.$_o3.$(( _o4 + 1 ))"
		LAB_CTL_PEER="198.19.$_o3.$(( _o4 + 2 ))"
		ip -4 -o addr show | grep -q " 198\.19\.$_o3\.$(( _o4 + 1 ))/" || break
		_slot=$(( (_slot + 1) % 16000 ))
		_tries=$((_tries + 1))
		[ $_tries -lt 100 ] || lab_fail "no free /30 in 198.19.0.0/16"
	done
	LAB_CTL_IF="${LAB_P}c"
	ip link del "$LAB_CTL_IF" 2>/dev/null
	lab_veth - "$LAB_CTL_IF" "$LAB_INET" ctl
	lab_record "if $LAB_CTL_IF"
	ip addr add "$LAB_CTL_ADDR/30" dev "$LAB_CTL_IF" || lab_fail "address on $LAB_CTL_IF"
	ip -n "$LAB_INET" addr add "$LAB_CTL_PEER/30" dev ctl
	# The root namespace knows only its /30: the router masquerades
	# edges' control traffic behind its own end.
	ip netns exec "$LAB_INET" nft -f - <<-EOF || lab_fail "nft in $LAB_INET"
	table ip mwlab {
		chain post {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "ctl" masquerade
		}
	}
	table inet mwcut {
		chain cut {
			type filter hook forward priority filter; policy accept;
		}
	}
	EOF
	echo "ctl_addr $LAB_CTL_ADDR" >>"$LAB_DIR/lab.env"
}

# lab_uplink NS IF N — IF in NS as 198.18.N.2/24, the router end
# "sN-<IF>" in the internet namespace as 198.18.N.1.
lab_uplink() {
	lab_veth "$LAB_INET" "s$3-$2" "$1" "$2"
	ip -n "$LAB_INET" addr add "198.18.$3.1/24" dev "s$3-$2"
	ip -n "$1" addr add "198.18.$3.2/24" dev "$2"
}

# lab_site NAME N KIND — the edge namespace of site NAME (LAN 10.N.0.0/24),
# its LAN host, and its underlay (KIND plain|twolink|nat).
lab_site() {
	_n=$1 _i=$2 _k=$3
	_e="$LAB_P-$_n"
	_h="$LAB_P-lan-$_n"
	lab_ns "$_e"
	lab_ns "$_h"
	mkdir -p "$LAB_DIR/$_n"
	echo "site $_n $_i $_k" >>"$LAB_DIR/lab.env"
	case "$_k" in
	plain)
		lab_uplink "$_e" inet "$_i"
		ip -n "$_e" route add default via "198.18.$_i.1"
		_links="inet 198.18.$_i.2"
		;;
	twolink)
		_j=$((_i + 10))
		lab_veth "$LAB_INET" "s$_i-inet" "$_e" inet
		lab_veth "$LAB_INET" "s$_i-mpls" "$_e" mpls
		ip -n "$LAB_INET" addr add "198.18.$_i.1/24" dev "s$_i-inet"
		ip -n "$LAB_INET" addr add "198.18.$_j.1/24" dev "s$_i-mpls"
		ip -n "$_e" addr add "198.18.$_i.2/24" dev inet
		ip -n "$_e" addr add "198.18.$_j.2/24" dev mpls
		# Each link's traffic leaves by its own path (source routing);
		# the rest (the controller) prefers inet.
		ip -n "$_e" route add default via "198.18.$_i.1" metric 10
		ip -n "$_e" route add default via "198.18.$_j.1" metric 20
		ip -n "$_e" route add default via "198.18.$_i.1" table 101
		ip -n "$_e" route add default via "198.18.$_j.1" table 102
		ip -n "$_e" rule add from "198.18.$_i.2" table 101 pref 101
		ip -n "$_e" rule add from "198.18.$_j.2" table 102 pref 102
		_links="inet 198.18.$_i.2,mpls 198.18.$_j.2"
		;;
	nat)
		_t="$LAB_P-nat-$_n"
		lab_ns "$_t"
		lab_uplink "$_t" pub "$_i"
		ip -n "$_t" route add default via "198.18.$_i.1"
		lab_veth "$_t" priv "$_e" inet
		ip -n "$_t" addr add "10.99.$_i.1/24" dev priv
		ip -n "$_e" addr add "10.99.$_i.2/24" dev inet
		ip -n "$_e" route add default via "10.99.$_i.1"
		lab_nat_map "$_n" 4501
		_links="inet 10.99.$_i.2 public 198.18.$_i.2:4501"
		;;
	*) lab_fail "unknown site kind $_k" ;;
	esac
	case " ${LAB_V6LINK:-} " in
	*" $_n "*)
		lab_veth "$LAB_INET" "s$_i-v6" "$_e" v6
		ip -n "$LAB_INET" addr add "2001:db8:$_i::1/64" dev "s$_i-v6" nodad
		ip -n "$_e" addr add "2001:db8:$_i::2/64" dev v6 nodad
		ip -n "$_e" -6 route add default via "2001:db8:$_i::1"
		_links="$_links,v6 2001:db8:$_i::2"
		;;
	esac
	lab_veth "$_e" lan0 "$_h" eth0
	ip -n "$_e" addr add "10.$_i.0.1/24" dev lan0
	ip -n "$_h" addr add "10.$_i.0.10/24" dev eth0
	ip -n "$_h" route add default via "10.$_i.0.1"
	if [ -n "${LAB_DUAL:-}" ]; then
		# nodad: usable at once (the edge's router advertisements are
		# not needed, the route is static).
		ip -n "$_e" addr add "fd00:10:$_i::1/64" dev lan0 nodad
		ip -n "$_h" addr add "fd00:10:$_i::10/64" dev eth0 nodad
		ip -n "$_h" -6 route add default via "fd00:10:$_i::1"
	fi
	LAB_SITES="$LAB_SITES $_n"
	{
		echo "links $_n $_links"
		echo "lan $_n $_h 10.$_i.0.10"
		[ -z "${LAB_DUAL:-}" ] || echo "lan6 $_n $_h fd00:10:$_i::10"
	} >>"$LAB_DIR/lab.env"
	lab_frr "$_n"
}

# lab_nat_map NAME PORT — the NAT in front of site NAME maps the edge's
# ESP port 4500 to public PORT, both ways (a static mapping, the one
# registered as the link's public_port: without the inbound half, a peer's
# datagram arriving before the edge's first one takes the port in
# conntrack and the edge's own traffic leaves from another); everything
# else is masqueraded.  The table is replaced atomically; existing
# conntrack entries keep their mapping until flushed (lab_ct_flush).
lab_nat_map() {
	_nm_t="$LAB_P-nat-$1"
	_nm_i=$(lab_site_index "$1")
	ip netns exec "$_nm_t" nft -f - <<-EOF || lab_fail "nft in $_nm_t"
	table ip mwnat
	delete table ip mwnat
	table ip mwnat {
		chain pre {
			type nat hook prerouting priority dstnat; policy accept;
			iifname "pub" udp dport $2 dnat to 10.99.$_nm_i.2:4500
		}
		chain post {
			type nat hook postrouting priority srcnat; policy accept;
			oifname "pub" ip saddr 10.99.$_nm_i.2 udp sport 4500 snat to 198.18.$_nm_i.2:$2
			oifname "pub" masquerade
		}
	}
	EOF
}

# lab_ct_flush NAME — forget every NAT mapping in front of site NAME
# (what a NAT box reboot or a conntrack flush does).
lab_ct_flush() {
	ip netns exec "$LAB_P-nat-$1" "$MESHWAN_TOP/$BUILD/tests/edge/ct_flush" ||
		lab_fail "conntrack flush in $LAB_P-nat-$1"
}

lab_site_index() {
	awk -v n="$1" '$1 == "site" && $2 == n { print $3; exit }' "$LAB_DIR/lab.env"
}

# lab_frr NAME — zebra, bgpd and bfdd of site NAME in its namespace, each
# with its own paths under $LAB_DIR/NAME/frr (nothing under /etc/frr).
lab_frr() {
	_e="$LAB_P-$1"
	_d="$LAB_DIR/$1/frr"
	mkdir -p "$_d"
	for _c in zebra bgpd bfdd; do : >"$_d/$_c.conf"; done
	chown -R frr:frr "$_d"
	chmod 711 "$LAB_DIR/$1"
	lab_bg "$1-zebra" "$_e" "$LAB_FRR/zebra" -u frr -g frr -f "$_d/zebra.conf" \
		-i "$_d/zebra.pid" -z "$_d/zserv.api" --vty_socket "$_d" -P 0 \
		--log "file:$_d/zebra.log"
	lab_wait 10 test -S "$_d/zserv.api" || lab_fail "zebra of $1 did not start"
	lab_bg "$1-bgpd" "$_e" "$LAB_FRR/bgpd" -S -f "$_d/bgpd.conf" -i "$_d/bgpd.pid" \
		-z "$_d/zserv.api" --vty_socket "$_d" -P 0 --log "file:$_d/bgpd.log"
	lab_bg "$1-bfdd" "$_e" "$LAB_FRR/bfdd" -u frr -g frr -f "$_d/bfdd.conf" \
		-i "$_d/bfdd.pid" -z "$_d/zserv.api" --vty_socket "$_d" -P 0 \
		--bfdctl "$_d/bfdd.sock" --log "file:$_d/bfdd.log"
}

lab_frr_ready() {
	_d="$LAB_DIR/$1/frr"
	lab_wait 10 test -S "$_d/bgpd.vty" || lab_fail "bgpd of $1 did not start"
	lab_wait 10 test -S "$_d/bfdd.vty" || lab_fail "bfdd of $1 did not start"
}

# lab_vtysh NAME ARGS... — vtysh of site NAME.
lab_vtysh() {
	_n=$1
	shift
	vtysh --vty_socket "$LAB_DIR/$_n/frr" "$@"
}

# lab_controller [HTTP_PORT] — meshwan-controller in the root namespace:
# REST on 127.0.0.1 (port 0: any), sessions and enrollment on the
# controller link.  Sets LAB_URL, LAB_TOKEN, LAB_GRPC, LAB_ENROLL.
lab_controller() {
	_port=${1:-0}
	_cd="$LAB_DIR/controller"
	mkdir -p "$_cd"
	chmod 700 "$_cd"
	cat >"$_cd/controller.conf" <<-EOF
	# meshwan lab controller (tests/edge/sites_lib.sh)
	http_listen = 127.0.0.1:$_port
	grpc_listen = $LAB_CTL_ADDR:0
	enroll_listen = $LAB_CTL_ADDR:0
	database = $_cd/controller.db
	ca_dir = $_cd/ca
	admin_token_file = $_cd/admin.token
	server_names = $LAB_CTL_ADDR
	policy = full-mesh
	web_root = $MESHWAN_TOP/controller/web
	${LAB_CTL_EXTRA:-}
	EOF
	_log="$LAB_DIR/controller.log"
	lab_bg controller - "${LAB_CTLD:-$MESHWAN_TOP/$BUILD/controller/meshwan-controller}" \
		-d -f "$_cd/controller.conf"
	LAB_CTLD_PID=$LAB_PID
	lab_wait 20 grep -q ': ready$' "$_log" || {
		tail -n 20 "$_log" >&2
		lab_fail "the controller is not ready after 20 s (REST port ${_port} busy?)"
	}
	LAB_GRPC=$(sed -n 's/.*sessions on .* (port \([0-9]*\)), enrollment.*/\1/p' "$_log" | tail -n 1)
	LAB_ENROLL=$(sed -n 's/.*enrollment on .* (port \([0-9]*\)).*/\1/p' "$_log" | tail -n 1)
	_http=$(sed -n 's/.*REST API on .* (port \([0-9]*\)).*/\1/p' "$_log" | tail -n 1)
	[ -n "$LAB_GRPC" ] && [ -n "$LAB_ENROLL" ] && [ -n "$_http" ] ||
		lab_fail "controller ports not in its log"
	LAB_URL="http://127.0.0.1:$_http"
	LAB_TOKEN=$(cat "$_cd/admin.token")
	{
		echo "url $LAB_URL"
		echo "grpc $LAB_CTL_ADDR:$LAB_GRPC"
		echo "enroll $LAB_CTL_ADDR:$LAB_ENROLL"
	} >>"$LAB_DIR/lab.env"
	# Every link pairs with every other (site A's mpls reaches B's inet):
	# two underlay paths between A and each other site.
	# The IPv6 links (LAB_V6LINK) pair only with each other.
	_pairs='["inet","inet"],["mpls","inet"]'
	[ -z "${LAB_V6LINK:-}" ] || _pairs="$_pairs"',["v6","v6"]'
	lab_api PUT /api/v1/policy "{\"pairs\":[$_pairs]}" >/dev/null ||
		lab_fail "PUT /policy: $(cat "$LAB_DIR/api.out")"
}

# lab_api METHOD PATH [BODY] — REST call; the body to stdout, fails (1)
# on a status outside 2xx (body left in $LAB_DIR/api.out).
lab_api() {
	if [ $# -ge 3 ]; then
		_code=$(curl -s -o "$LAB_DIR/api.out" -w '%{http_code}' -X "$1" \
			-H "Authorization: Bearer $LAB_TOKEN" \
			-H 'Content-Type: application/json' --data "$3" "$LAB_URL$2")
	else
		_code=$(curl -s -o "$LAB_DIR/api.out" -w '%{http_code}' -X "$1" \
			-H "Authorization: Bearer $LAB_TOKEN" "$LAB_URL$2")
	fi
	case "$_code" in
	2??) cat "$LAB_DIR/api.out" ;;
	*) return 1 ;;
	esac
}

lab_links() {
	sed -n "s/^links $1 //p" "$LAB_DIR/lab.env"
}

# lab_register NAME — creates site NAME through the REST API with its
# links, public address and LAN prefix, takes a one-time enrollment token
# and writes the agent's configuration.  Prints nothing; LAB_SITE_ID.
# The site's backend: $LAB_BACKEND_<NAME>, else $LAB_BACKEND, else uesp.
lab_register() {
	_n=$1
	_i=$(lab_site_index "$_n")
	eval "_be=\${LAB_BACKEND_$_n:-\${LAB_BACKEND:-uesp}}"
	_links_json=$(lab_links "$_n" | tr ',' '\n' | awk '
		{ s = "{\"name\":\"" $1 "\",\"address\":\"" $2 "\""
		  if ($3 == "public") { split($4, a, ":"); s = s ",\"public_address\":\"" a[1] "\",\"public_port\":" a[2] }
		  printf "%s%s}", sep, s; sep = "," }')
	_lans="\"10.$_i.0.0/24\""
	[ -z "${LAB_DUAL:-}" ] || _lans="$_lans,\"fd00:10:$_i::/64\""
	_body="{\"name\":\"site-$_n\",\"role\":\"spoke\",\"region\":\"lab\",\"backend\":\"$_be\",\"links\":[$_links_json],\"lan_prefixes\":[$_lans]}"
	LAB_SITE_ID=$(lab_api POST /api/v1/sites "$_body" | jq -r .id) ||
		lab_fail "POST /sites for $_n: $(cat "$LAB_DIR/api.out")"
	echo "siteid $_n $LAB_SITE_ID" >>"$LAB_DIR/lab.env"
	_tok=$(lab_api POST "/api/v1/sites/$LAB_SITE_ID/token" | jq -r .token) ||
		lab_fail "enrollment token for $_n: $(cat "$LAB_DIR/api.out")"
	_sd="$LAB_DIR/$_n"
	(umask 077 && printf '%s\n' "$_tok" >"$_sd/enroll.token")
	mkdir -p "$_sd/state"
	chmod 700 "$_sd/state"
	{
		echo "# meshwan-edge of site-$_n (tests/edge/sites_lib.sh)"
		echo "controller = $LAB_CTL_ADDR:$LAB_GRPC"
		echo "enroll_controller = $LAB_CTL_ADDR:$LAB_ENROLL"
		echo "ca_file = $LAB_DIR/controller/ca/ca.crt"
		echo "token_file = $_sd/enroll.token"
		echo "state_dir = $_sd/state"
		echo "backend = $_be"
		lab_links "$_n" | tr ',' '\n' | sed 's/^/link = /'
		echo "frr_vty_socket = $_sd/frr"
		echo "lan_prefix = 10.$_i.0.0/24"
		[ -z "${LAB_DUAL:-}" ] || echo "lan_prefix = fd00:10:$_i::/64"
		echo "log_level = ${LAB_AGENT_LOG:-info}"
	} >"$_sd/edge.conf"
}

lab_site_id() {
	awk -v n="$1" '$1 == "siteid" && $2 == n { print $3 }' "$LAB_DIR/lab.env" | tail -n 1
}

# lab_agent NAME — meshwan-edge of site NAME in its namespace.
lab_agent() {
	lab_frr_ready "$1"
	lab_bg "$1-edge" "$LAB_P-$1" "${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}" \
		-f -c "$LAB_DIR/$1/edge.conf"
	echo "agentpid $1 $LAB_PID" >>"$LAB_DIR/lab.env"
}

lab_agent_pid() {
	awk -v n="$1" '$1 == "agentpid" && $2 == n { print $3 }' "$LAB_DIR/lab.env" | tail -n 1
}

lab_lan_addr() {
	echo "10.$(lab_site_index "$1").0.10"
}

# lab_lan_addr6 NAME — the IPv6 address of NAME's LAN host (LAB_DUAL).
lab_lan_addr6() {
	echo "fd00:10:$(lab_site_index "$1")::10"
}

# lab_ping FROM TO [6] — one ping from FROM's LAN host to TO's (1 s
# wait), over IPv6 with 6.
lab_ping() {
	if [ "${3:-4}" = 6 ]; then
		ip netns exec "$LAB_P-lan-$1" ping -6 -c 1 -W 1 -q "$(lab_lan_addr6 "$2")" >/dev/null 2>&1
	else
		ip netns exec "$LAB_P-lan-$1" ping -c 1 -W 1 -q "$(lab_lan_addr "$2")" >/dev/null 2>&1
	fi
}

# lab_all_ping [6] — every ordered pair of LAN hosts pings (each once,
# all pairs at once, 1 s wait; over IPv6 with 6); prints the pairs that
# fail.
lab_all_ping() {
	_pd="$LAB_DIR/pings"
	rm -rf "$_pd"
	mkdir -p "$_pd"
	_pp=""
	for _a in $LAB_SITES; do
		for _b in $LAB_SITES; do
			[ "$_a" = "$_b" ] && continue
			( lab_ping "$_a" "$_b" "${1:-4}" || : >"$_pd/$_a>$_b" ) &
			_pp="$_pp $!"
		done
	done
	# Only these: the shell's other children are the lab's daemons.
	for _p in $_pp; do wait "$_p"; done
	_bad=$(ls "$_pd")
	[ -z "$_bad" ] && return 0
	echo " "$_bad
	return 1
}

# lab_wait_pings SECS [6] — until every pair pings (over IPv6 with 6);
# 1 when SECS pass first (the pairs still failing are printed).
lab_wait_pings() {
	_deadline=$(( $(date +%s) + $1 ))
	while :; do
		_out=$(lab_all_ping "${2:-4}") && return 0
		if [ "$(date +%s)" -ge "$_deadline" ]; then
			echo "lab: pairs not pinging${2:+ over IPv$2}:$_out" >&2
			return 1
		fi
		sleep 0.2
	done
}

# lab_converged — GET /edges: every site of the lab connected and
# converged.
lab_converged() {
	_ids=""
	for _s in $LAB_SITES; do _ids="$_ids $(lab_site_id "$_s")"; done
	lab_api GET /api/v1/edges | jq -e --arg ids "$_ids" '
		($ids | split(" ") | map(select(. != "") | tonumber)) as $want
		| [.edges[] | select(.site_id as $i | $want | index($i))]
		| length == ($want | length) and all(.connected and .converged)' >/dev/null
}

# lab_bgp_reported — each lab edge reports (GET /edges/{id}) one
# Established BGP session per tunnel of its site.
lab_bgp_reported() {
	for _s in $LAB_SITES; do
		_id=$(lab_site_id "$_s")
		_nt=$(lab_api GET "/api/v1/tunnels?site=$_id" | jq '.tunnels | length') || return 1
		lab_api GET "/api/v1/edges/$_id" | jq -e --argjson n "$_nt" \
			'[.status.bgp[]? | select(.state == "established")] | length == $n' >/dev/null || return 1
	done
}

# lab_status — the table: sites, tunnels, BGP sessions, SA epochs, from
# GET /sites, /tunnels, /edges and each /edges/{id} (the edge's report).
lab_status() {
	_all="$LAB_DIR/status.json"
	{
		echo '{"sites":'; lab_api GET /api/v1/sites || return 1
		echo ',"tunnels":'; lab_api GET /api/v1/tunnels || return 1
		echo ',"edges":['
		_sep=""
		for _id in $(lab_api GET /api/v1/edges | jq -r '.edges[].site_id'); do
			printf '%s' "$_sep"; lab_api GET "/api/v1/edges/$_id" || echo '{}'
			_sep=","
		done
		echo ']}'
	} >"$_all"
	jq -r '
		def name($id): [.sites.sites[] | select(.id == $id) | .name][0] // "?";
		# The active outbound SA of site $s on tunnel $t: "epoch spi".
		def out($s; $t): [.edges[] | select(.site_id == $s) | .status.tunnels[]?
			| select(.tunnel_id == $t) | .sas[]? | select(.direction == "out" and .active)][0]
			// {} | [(.epoch // "-" | tostring), (.spi // "-" | tostring)];
		. as $d
		| "SITE        ID  CONNECTED  CONVERGED  VERSION  BGP-ESTABLISHED  TUNNELS",
		  (.edges[] | . as $e | ($e.status.bgp // []) as $b
		   | "\($e.site_name)\t\($e.site_id)\t\($e.connected)\t\($e.converged)\t\($e.applied_version // 0)\t\([$b[] | select(.state == "established")] | length)/\($b | length)\t\([$d.tunnels.tunnels[] | select(.site_a == $e.site_id or .site_b == $e.site_id)] | length)"),
		  "",
		  "TUNNEL  SITE-A:LINK        SITE-B:LINK        INNER            SA-EPOCH(A>B,B>A)  SPI(A>B,B>A)",
		  (.tunnels.tunnels[] | . as $t | $d | out($t.site_a; $t.id) as $ab | out($t.site_b; $t.id) as $ba
		   | "\($t.id)\t\(name($t.site_a)):\($t.link_a)\t\(name($t.site_b)):\($t.link_b)\t\($t.inner)\t\($ab[0]),\($ba[0])\t\($ab[1]),\($ba[1])")
	' "$_all" | awk -F'\t' '
		NF == 7 { printf "%-11s %3s  %-9s  %-9s  %7s  %-15s  %s\n", $1, $2, $3, $4, $5, $6, $7; next }
		NF == 6 { printf "%-6s  %-17s  %-17s  %-15s  %-17s  %s\n", $1, $2, $3, $4, $5, $6; next }
		{ print }'
}

# lab_cut NAME LINK / lab_restore NAME LINK — black-hole one underlay
# path of a site in the internet router (no carrier change: only BFD or
# the agents' probes can notice).
lab_cut() {
	_i=$(lab_site_index "$1")
	ip netns exec "$LAB_INET" nft add rule inet mwcut cut iifname "s$_i-$2" drop comment "\"cut-$1-$2\""
	ip netns exec "$LAB_INET" nft add rule inet mwcut cut oifname "s$_i-$2" drop comment "\"cut-$1-$2\""
}

lab_restore() {
	for _h in $(ip netns exec "$LAB_INET" nft -a list chain inet mwcut cut |
		sed -n "s/.*comment \"cut-$1-$2\" # handle \([0-9]*\)/\1/p"); do
		ip netns exec "$LAB_INET" nft delete rule inet mwcut cut handle "$_h"
	done
}

# lab_remove_site NAME — the site's processes and namespaces, now (the
# manifest keeps the lines; lab_down skips what is gone).
lab_stop_pid() {
	kill "$1" 2>/dev/null || return 0
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 50 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -9 "$1" 2>/dev/null
	return 0
}

# lab_down DIR — stop every process and remove every namespace and root
# interface in DIR's manifest, then DIR.  Safe to run twice, and on a
# half-made lab.
lab_down() {
	_dir=$1
	[ -f "$_dir/manifest" ] || { rm -rf "$_dir"; return 0; }
	# Agents first (they remove their tunnels), then the rest.
	_pids=$(awk '$1 == "pid" { print $2 ":" $3 ":" $4 }' "$_dir/manifest")
	for _pass in edge other; do
		_mine=""
		for _e in $_pids; do
			_p=${_e%%:*}
			_rest=${_e#*:}
			_st=${_rest%%:*}
			_nm=${_rest#*:}
			case "$_pass:$_nm" in
			edge:*-edge) ;;
			edge:*) continue ;;
			other:*-edge) continue ;;
			esac
			# A pid reused by another process since is not ours.
			[ -r "/proc/$_p/stat" ] || continue
			[ "$(cut -d' ' -f22 "/proc/$_p/stat")" = "$_st" ] || continue
			kill "$_p" 2>/dev/null && _mine="$_mine $_p"
		done
		for _p in $_mine; do
			_i=0
			while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
				sleep 0.1
				_i=$((_i + 1))
			done
			kill -9 "$_p" 2>/dev/null
		done
	done
	for _n in $(awk '$1 == "ns" { print $2 }' "$_dir/manifest"); do
		ip netns del "$_n" 2>/dev/null
	done
	for _l in $(awk '$1 == "if" { print $2 }' "$_dir/manifest"); do
		ip link del "$_l" 2>/dev/null
	done
	rm -rf "$_dir"
}
