#!/bin/sh
# tests/demo.sh — what `make demo` and `make demo-down` run: a meshwan
# controller and three sites in network namespaces on this machine, each
# site an edge agent (meshwan-edge, userspace ESP) with its own FRR and a
# LAN host behind it.  Site a has two WAN links (inet, mpls: two underlay
# paths), site b one, site c sits behind NAT.  The sites are registered
# through the REST API, the edges enroll with one-time tokens, and the
# demo waits until every pair of LAN hosts pings.  Then it prints the
# status, the LAN hosts and the API URL and token, and returns, leaving
# everything running until `make demo-down`.
#
#   sh tests/demo.sh [up]    bring it up (a previous demo is removed first)
#   sh tests/demo.sh down    remove every namespace, process and file
#
# Environment: BUILD (build folder), DEMO_DIR (state folder, default
# /tmp/meshwan-demo), DEMO_PORT (REST port on 127.0.0.1, default 8080),
# DEMO_PREFIX (namespace name prefix, default mwd), DEMO_TIMEOUT (seconds
# to wait for the pings, default 120), DEMO_EXIT=1 (bring up, check,
# print, tear down, exit 0: for scripts and the test), DEMO_DUAL=1 (dual
# stack: IPv6 LAN prefixes too, and sites a and b get an IPv6-only WAN
# link "v6" with a tunnel over it; the pings are checked over both).
# The topology and its addresses: tests/edge/sites_lib.sh.
set -u
BUILD=${BUILD:-build}
MESHWAN_TOP=${MESHWAN_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
DIR=${DEMO_DIR:-/tmp/meshwan-demo}
PREFIX=${DEMO_PREFIX:-mwd}
PORT=${DEMO_PORT:-8080}
. "$MESHWAN_TOP/tests/edge/sites_lib.sh"

case "${1:-up}" in
down)
	if [ -f "$DIR/manifest" ]; then
		lab_down "$DIR"
		echo "demo: removed (namespaces, processes and $DIR)"
	else
		echo "demo: nothing to remove in $DIR"
	fi
	exit 0
	;;
up) ;;
*)
	echo "usage: $0 [up|down]" >&2
	exit 2
	;;
esac

for b in controller/meshwan-controller controller/meshwanctl; do
	[ -x "$MESHWAN_TOP/$BUILD/$b" ] || { echo "demo: $BUILD/$b is not built (run make)" >&2; exit 1; }
done
[ -x "${LAB_EDGE:-$MESHWAN_TOP/$BUILD/edge-agent/meshwan-edge}" ] ||
	{ echo "demo: $BUILD/edge-agent/meshwan-edge is not built (run make)" >&2; exit 1; }
if [ -f "$DIR/manifest" ]; then
	echo "demo: removing the previous demo in $DIR"
	lab_down "$DIR"
fi

t0=$(lab_ms)
lab_init "$DIR" "$PREFIX"
# Until the mesh is up, a failure or Ctrl-C removes everything made.
trap 'rc=$?; [ "${UP:-0}" = 1 ] || { lab_down "$DIR"; echo "demo: failed, removed what it made" >&2; }; exit $rc' EXIT
trap 'exit 130' INT TERM

if [ "${DEMO_DUAL:-0}" = 1 ]; then
	LAB_DUAL=1
	LAB_V6LINK="a b"
	echo "demo: dual stack (IPv6 LANs fd00:10:N::/64; sites a and b also on an IPv6 underlay)"
fi
echo "demo: namespaces, underlay (two paths for site a, NAT for site c), FRR"
lab_underlay
lab_site a 1 twolink
lab_site b 2 plain
lab_site c 3 nat
echo "demo: controller, REST API on 127.0.0.1:$PORT"
lab_controller "$PORT"
for s in a b c; do
	lab_register "$s"
	echo "demo: site-$s registered through REST (site $LAB_SITE_ID) with a one-time enrollment token"
done
for s in a b c; do
	lab_agent "$s"
done
echo "demo: edges started; they enroll, connect and build the mesh"
TIMEOUT=${DEMO_TIMEOUT:-120}
echo "demo: waiting (up to ${TIMEOUT} s) until every pair of LAN hosts pings"
lab_wait_pings "$TIMEOUT" || lab_fail "the LAN hosts do not all ping after ${TIMEOUT} s"
if [ -n "${LAB_DUAL:-}" ]; then
	lab_wait_pings "$TIMEOUT" 6 || lab_fail "the LAN hosts do not all ping over IPv6 after ${TIMEOUT} s"
fi
t_ping=$(( $(lab_ms) - t0 ))
lab_wait 30 lab_converged || lab_fail "GET /edges: not every edge connected and converged"
# The edges report BGP every few seconds: give the table a moment to be whole.
lab_wait 20 lab_bgp_reported || echo "demo: not every BGP session reported Established yet" >&2
UP=1

echo
lab_status
echo
for s in $LAB_SITES; do
	echo "lan site-$s $PREFIX-lan-$s $(lab_lan_addr "$s")"
done
if [ -n "${LAB_DUAL:-}" ]; then
	for s in $LAB_SITES; do
		echo "lan6 site-$s $PREFIX-lan-$s $(lab_lan_addr6 "$s")"
	done
fi
TOKEN=$LAB_TOKEN
CTL="$MESHWAN_TOP/$BUILD/controller/meshwanctl"
TF="$DIR/controller/admin.token"
TRY6=""
[ -z "${LAB_DUAL:-}" ] || TRY6="
  ip netns exec $PREFIX-lan-a ping $(lab_lan_addr6 c)"
cat <<TXT

every pair of LAN hosts pings: $(( t_ping / 1000 )).$(( t_ping % 1000 / 100 )) s after the start

  dashboard      $LAB_URL/   (sign in with the admin token below)
  REST API       $LAB_URL/api/v1/   (OpenAPI: $LAB_URL/api/v1/openapi.json)
  admin token    $TOKEN
  sessions       $(sed -n 's/^grpc //p' "$DIR/lab.env") (mutual TLS), enrollment $(sed -n 's/^enroll //p' "$DIR/lab.env")
  state folder   $DIR (logs: *.log, FRR: SITE/frr, agent: SITE/edge.conf)

Try:
  ip netns exec $PREFIX-lan-a ping $(lab_lan_addr c)$TRY6
  curl -s -H 'Authorization: Bearer $TOKEN' $LAB_URL/api/v1/edges | jq
  $CTL --url $LAB_URL --token-file $TF tunnel list
  $CTL --url $LAB_URL --token-file $TF edge list
  vtysh --vty_socket $DIR/a/frr -c 'show bgp summary'
  make demo-down
TXT

if [ "${DEMO_EXIT:-0}" = 1 ]; then
	echo "DEMO_EXIT=1: checked; removing the demo."
	lab_down "$DIR"
	exit 0
fi
echo "The demo keeps running; 'make demo-down' removes it."
exit 0
