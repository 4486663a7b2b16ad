# tests/bench/peers/tinc.sh — tinc 1.0 between the bench namespaces
# (sourced by tests/bench/uesp_peers.sh).  Cipher and digest are set to
# tinc 1.0's documented defaults, aes-256-cbc and sha256, explicitly; its
# GCM setting is accepted but makes tinc carry data over its TCP
# connection, which is not the comparison we want.

tinc_node() {
	# tinc_node NAME UNDERLAY OVERLAY IFNAME
	_d=$WORK/tinc-$1
	mkdir -p "$_d/hosts"
	cat >"$_d/tinc.conf" <<EOT
Name = $1
Interface = $4
AddressFamily = ipv4
BindToAddress = $2
EOT
	cat >"$_d/hosts/$1" <<EOT
Address = $2
Subnet = $3/32
Cipher = aes-256-cbc
Digest = sha256
EOT
	cat >"$_d/tinc-up" <<EOT
#!/bin/sh
ip addr add $3/24 dev \$INTERFACE
ip link set \$INTERFACE up
EOT
	chmod +x "$_d/tinc-up"
	tincd -c "$_d" -K 2048 </dev/null >"$_d/keygen.log" 2>&1
}

peer_tinc_start() {
	command -v tincd >/dev/null || { echo "tinc: not measured (tincd missing)"; return 1; }
	tinc_node a "$UA" "$OA" "tnA$id" || return 1
	tinc_node b "$UB" "$OB" "tnB$id" || return 1
	cp "$WORK/tinc-a/hosts/a" "$WORK/tinc-b/hosts/a"
	cp "$WORK/tinc-b/hosts/b" "$WORK/tinc-a/hosts/b"
	echo "ConnectTo = b" >>"$WORK/tinc-a/tinc.conf"
	ip netns exec "$NSB" tincd -c "$WORK/tinc-b" -D \
		--pidfile="$WORK/tinc-b/pid" --logfile="$WORK/tinc-b/log" &
	peer_pid $!
	ip netns exec "$NSA" tincd -c "$WORK/tinc-a" -D \
		--pidfile="$WORK/tinc-a/pid" --logfile="$WORK/tinc-a/log" &
	peer_pid $!
	wait_for 20 "tinc tunnel" ip netns exec "$NSA" ping -c1 -W1 "$OB" || {
		tail -5 "$WORK/tinc-a/log"
		return 1
	}
}
