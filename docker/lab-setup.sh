#!/bin/sh
# meshwan-lab-setup — the one-shot job of docker/compose.yaml: what
# `make demo` does through REST (tests/edge/sites_lib.sh lab_register),
# done with meshwanctl: the link pairing, the three sites with their
# links and LAN prefixes, and a one-time enrollment token per site in
# /lab/tokens (shared with the edges), plus the CA certificate they pin.
set -eu
export MESHWAN_URL=${MESHWAN_URL:-http://controller:8080}
export MESHWAN_TOKEN_FILE=/var/lib/meshwan/admin.token
while [ ! -s "$MESHWAN_TOKEN_FILE" ] || ! meshwanctl site list >/dev/null 2>&1; do
	sleep 0.5
done
mkdir -p /lab/tokens
cp /var/lib/meshwan/ca/ca.crt /lab/ca.crt
meshwanctl policy set --pair inet:inet --pair mpls:inet
add() {	# NAME PREFIX LINK...
	name=$1 prefix=$2
	shift 2
	meshwanctl site show "$name" >/dev/null 2>&1 && return 0
	meshwanctl site add "$name" --role spoke --region lab --backend uesp --prefix "$prefix"
	for l in "$@"; do
		# shellcheck disable=SC2086
		meshwanctl link add "$name" $l
	done
	meshwanctl token create "$name" >"/lab/tokens/$name.token.new"
	mv "/lab/tokens/$name.token.new" "/lab/tokens/$name.token"
}
add site-a 10.1.0.0/24 "inet --address 198.18.1.2" "mpls --address 198.18.11.2"
add site-b 10.2.0.0/24 "inet --address 198.18.2.2"
add site-c 10.3.0.0/24 "inet --address 10.99.3.2 --public-address 198.18.3.2 --public-port 4501"
echo "lab registered: site-a, site-b, site-c"
