# tests/bench/peers/uesp.sh — the hook that runs the same iperf3 through
# uesp, the userspace ESP backend, with its static-tunnel tool
# ($BUILD/overlay/uesp/meshwan-uesp).  Sourced by uesp_peers.sh.

UESP_TOOL=$BUILD/overlay/uesp/meshwan-uesp

peer_uesp_start() {
	if [ ! -x "$UESP_TOOL" ]; then
		echo "uesp: not measured (tool missing: $UESP_TOOL)"
		return 1
	fi
	echo "uesp: not measured (static tunnel set-up for this tool not written yet)"
	return 1
}
