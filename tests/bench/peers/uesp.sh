# tests/bench/peers/uesp.sh — the hook that runs the same iperf3 through
# uesp, the userspace ESP backend, with its static-tunnel tool
# meshwan-uesp (overlay/uesp/uesp_main.c; file format in uesp_cfg.h).
# Sourced by uesp_peers.sh.  One GRE-in-ESP tunnel, AES-256-GCM, ESN,
# replay window 1024, the same SAs as the data-path tests use.
#
# UESP_TOOL overrides the binary (default $BUILD/overlay/uesp/meshwan-uesp);
# UESP_CSUM=true sends outer UDP checksums over IPv4, which brings back
# UDP segmentation offload (overlay/uesp/ESP.md): the difference is what
# matching the kernel's bytes costs.

UESP_TOOL=${UESP_TOOL:-$BUILD/overlay/uesp/meshwan-uesp}
UESP_A=10.97.0.0	# the tunnel's inner /31
UESP_B=10.97.0.1

# uesp_conf FILE LOCAL REMOTE INNER PEER SPI_IN SPI_OUT KEY_IN SALT_IN KEY_OUT SALT_OUT
uesp_conf() {
	cat >"$1" <<EOT
{
  "udp_checksum": ${UESP_CSUM:-false},
  "tunnels": [ {
    "id": 1, "device": "ue$id", "encap": "gre",
    "local": "$2", "remote": "$3",
    "inner": "$4/31", "peer": "$5", "mtu": 1400,
    "spi_out": $7,
    "sas": [
      {"dir": "in", "spi": $6, "cipher": "aes-gcm-256", "key": "$8",
       "salt": "$9", "esn": true, "replay_window": 1024},
      {"dir": "out", "spi": $7, "cipher": "aes-gcm-256", "key": "${10}",
       "salt": "${11}", "esn": true, "replay_window": 1024}
    ]
  } ]
}
EOT
}

peer_uesp_start() {
	if [ ! -x "$UESP_TOOL" ]; then
		echo "uesp: not measured (tool missing: $UESP_TOOL)"
		return 1
	fi
	_d=$WORK/uesp
	mkdir -p "$_d"
	_k1=$(openssl rand -hex 32) _s1=$(openssl rand -hex 4)
	_k2=$(openssl rand -hex 32) _s2=$(openssl rand -hex 4)
	# A sends on 0x2001 (B's inbound), B sends on 0x1001 (A's inbound).
	uesp_conf "$_d/a.json" "$UA" "$UB" "$UESP_A" "$UESP_B" 4097 8193 \
		"$_k2" "$_s2" "$_k1" "$_s1"
	uesp_conf "$_d/b.json" "$UB" "$UA" "$UESP_B" "$UESP_A" 8193 4097 \
		"$_k1" "$_s1" "$_k2" "$_s2"
	"$UESP_TOOL" -n "$_d/a.json" >"$_d/check.log" 2>&1 ||
		{ echo "uesp: not measured (config refused by the tool):"; cat "$_d/check.log"; return 1; }
	ip netns exec "$NSB" "$UESP_TOOL" -s "$_d/b.stats" "$_d/b.json" \
		>"$_d/b.log" 2>&1 &
	peer_pid $!
	ip netns exec "$NSA" "$UESP_TOOL" -s "$_d/a.stats" "$_d/a.json" \
		>"$_d/a.log" 2>&1 &
	peer_pid $!
	PEER_DST=$UESP_B
	PEER_SRC=$UESP_A
	wait_for 10 "uesp tunnel" ip netns exec "$NSA" ping -c1 -W1 "$UESP_B" || {
		tail -5 "$_d/a.log" "$_d/b.log"
		return 1
	}
}
