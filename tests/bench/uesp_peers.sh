#!/bin/sh
# tests/bench/uesp_peers.sh — single-stream TCP throughput through the
# userspace ESP backend (uesp) against the userspace tunnels it competes
# with, all measured in one run on the same machine:
#
#   plain veth (reference), tinc 1.0 (aes-256-cbc + sha256), nebula (aes),
#   strongSwan charon + kernel-libipsec (IKEv2 PSK, aes256gcm16),
#   uesp (build/overlay/uesp/meshwan-uesp, static tunnel),
#   and `openssl speed -evp aes-256-gcm -bytes 1400` as the crypto ceiling.
#
#   +---------- ns A ----------+          +---------- ns B ----------+
#   | overlay 10.98.0.1        |          | overlay 10.98.0.2        |
#   |  (tun of the peer under  |          |  (tun of the peer under  |
#   |   test; lo for strongSwan)          |   test; lo for strongSwan)
#   | vA: 10.99.0.1/24  ===========veth=========== vB: 10.99.0.2/24  |
#   +--------------------------+          +--------------------------+
#   iperf3 -c 10.98.0.2 (A)  ------>  iperf3 -s (B), BENCH_SECONDS long
#
# Per peer it prints Gbit/s, CPU seconds per Gbit transferred — of the
# processes involved (tunnel daemons + both iperf3 ends; kernel work done in
# their context included) and of the whole machine (/proc/stat, which also
# counts anything else running) — and ratios to the best of the three peers
# and to veth.  Both tunnel ends and iperf3 share the machine's cores.
#
# Exits non-zero if any measurement failed, including uesp when its tool is
# missing ("uesp: not measured (tool missing)"): a benchmark never pretends.
# Environment: BUILD (build), BENCH_SECONDS (10), BENCH_ONLY (space-separated
# subset of: veth tinc nebula strongswan uesp openssl), BENCH_KEEP (keep the
# work folder with configs and logs).  Runs as root.
set -u
top=${MESHWAN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
SECS=${BENCH_SECONDS:-10}
ONLY=${BENCH_ONLY:-veth tinc nebula strongswan uesp openssl}

id=$$
NSA=mwbA$id
NSB=mwbB$id
VA=vA$id
VB=vB$id
UA=10.99.0.1
UB=10.99.0.2
OA=10.98.0.1
OB=10.98.0.2
WORK=$(mktemp -d /tmp/mw-bench.XXXXXX)
RESULTS=$WORK/results
HZ=$(getconf CLK_TCK)
PEER_PIDS=""
failed=0
: >"$RESULTS"

. "$top/tests/bench/peers/common.sh"
. "$top/tests/bench/peers/tinc.sh"
. "$top/tests/bench/peers/nebula.sh"
. "$top/tests/bench/peers/strongswan.sh"
. "$top/tests/bench/peers/uesp.sh"

cleanup() {
	peers_stop
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	if [ -n "${BENCH_KEEP:-}" ]; then
		echo "bench: logs and configs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "bench: must run as root (namespaces)" >&2; exit 1; }
for t in ip iperf3 jq openssl ping; do
	command -v "$t" >/dev/null || { echo "bench: missing $t" >&2; exit 1; }
done

ns_setup

for p in $ONLY; do
	case "$p" in
	veth)
		measure veth "$UB" "$UA" || failed=1 ;;
	tinc|nebula|strongswan|uesp)
		# A peer may use other overlay addresses (uesp: a /31).
		PEER_DST=$OB
		PEER_SRC=$OA
		if "peer_${p}_start"; then
			measure "$p" "$PEER_DST" "$PEER_SRC" || failed=1
		else
			echo "bench: $p: not measured (set-up failed, see above)"
			failed=1
		fi
		peers_stop ;;
	openssl)
		openssl_ceiling || failed=1 ;;
	*)
		echo "bench: unknown peer $p" >&2; failed=1 ;;
	esac
done

report
exit $failed
