#!/bin/sh
# meshwan-lab-node — a plumbing container of docker/compose.yaml: runs the
# `ip` commands in $NODE_IP (one per line), loads $NODE_NFT (an nftables
# ruleset) if given, then waits.  The same roles as the namespaces of
# tests/edge/sites_lib.sh: underlay router, NAT, LAN host.
set -eu
sysctl -qw net.ipv4.ip_forward="${NODE_FORWARD:-0}" 2>/dev/null || true
echo "${NODE_IP:-}" | while read -r cmd; do
	[ -n "$cmd" ] || continue
	# shellcheck disable=SC2086
	ip $cmd
done
if [ -n "${NODE_NFT:-}" ]; then
	echo "$NODE_NFT" | nft -f -
fi
echo "lab node ready"
exec sleep infinity
