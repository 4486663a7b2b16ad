#!/bin/sh
# meshwan-edge-entrypoint — one site of docker/compose.yaml: routes ($EDGE_IP,
# `ip` commands one per line), this site's FRR (zebra, bgpd, bfdd with
# their own vty folder, as tests/edge/sites_lib.sh starts them), then
# meshwan-edge with a configuration made from the environment:
#   SITE        site name (the token is read from /lab/tokens/$SITE.token,
#               which the setup job writes after registering the site)
#   CONTROLLER  session endpoint host:port; ENROLL enrollment endpoint
#   LINKS       link lines of edge-agent/README.md, one per line
#   LAN_PREFIX  the site's LAN prefix
set -eu
: "${SITE:?}" "${CONTROLLER:?}" "${ENROLL:?}" "${LINKS:?}" "${LAN_PREFIX:?}"
sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.default.rp_filter=0
echo "${EDGE_IP:-}" | while read -r cmd; do
	[ -n "$cmd" ] || continue
	# shellcheck disable=SC2086
	ip $cmd
done

FRR=/usr/lib/frr
D=/run/meshwan-frr
mkdir -p "$D"
for c in zebra bgpd bfdd; do : >"$D/$c.conf"; done
chown -R frr:frr "$D"
"$FRR/zebra" -d -u frr -g frr -f "$D/zebra.conf" -i "$D/zebra.pid" \
	-z "$D/zserv.api" --vty_socket "$D" -P 0
while [ ! -S "$D/zserv.api" ]; do sleep 0.1; done
"$FRR/bgpd" -d -S -f "$D/bgpd.conf" -i "$D/bgpd.pid" -z "$D/zserv.api" \
	--vty_socket "$D" -P 0
"$FRR/bfdd" -d -u frr -g frr -f "$D/bfdd.conf" -i "$D/bfdd.pid" \
	-z "$D/zserv.api" --vty_socket "$D" -P 0 --bfdctl "$D/bfdd.sock"

STATE=/var/lib/meshwan-edge
mkdir -p "$STATE"
chmod 700 "$STATE"
TOKEN=/lab/tokens/$SITE.token
if [ -z "$(ls -A "$STATE")" ]; then
	echo "waiting for $TOKEN (the setup job registers the site)"
	while [ ! -s "$TOKEN" ]; do sleep 0.5; done
fi
{
	echo "controller = $CONTROLLER"
	echo "enroll_controller = $ENROLL"
	echo "ca_file = /lab/ca.crt"
	[ -s "$TOKEN" ] && echo "token_file = $TOKEN"
	echo "state_dir = $STATE"
	echo "backend = uesp"
	echo "$LINKS" | sed '/^$/d; s/^/link = /'
	echo "frr_vty_socket = $D"
	echo "lan_prefix = $LAN_PREFIX"
} >/etc/meshwan-edge.conf
exec /usr/sbin/meshwan-edge -f -c /etc/meshwan-edge.conf
