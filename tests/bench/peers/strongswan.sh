# tests/bench/peers/strongswan.sh — strongSwan's userspace ESP: charon with
# the kernel-libipsec plugin (ESP in charon, packets through a TUN device),
# IKEv2 with a pre-shared key, ESP aes256gcm16 in UDP (encap forced, as
# uesp always does).  Sourced by tests/bench/uesp_peers.sh.
#
# charon's pid file path is fixed (/run/charon.pid), so each charon runs
# under `unshare -m` with a private tmpfs on /run; its configuration comes
# from STRONGSWAN_CONF / SWANCTL_DIR and its vici socket lives in $WORK.

CHARON=/usr/lib/ipsec/charon

swan_node() {
	# swan_node NAME UNDERLAY OVERLAY PEER_NAME PEER_UNDERLAY PEER_OVERLAY
	_d=$WORK/swan-$1
	mkdir -p "$_d/swanctl"
	cat >"$_d/strongswan.conf" <<EOT
charon {
	load_modular = no
	load = random nonce openssl pem pkcs1 pubkey x509 gcm aes sha1 sha2 hmac kdf kernel-libipsec kernel-netlink socket-default vici
	port = 500
	port_nat_t = 4500
	install_routes = yes
	plugins {
		vici {
			socket = unix://$_d/charon.vici
		}
	}
	filelog {
		log {
			path = $_d/charon.log
			default = 1
		}
	}
}
swanctl {
	load = random nonce openssl pem pkcs1 pubkey x509 vici
}
EOT
	cat >"$_d/swanctl/swanctl.conf" <<EOT
connections {
	bench {
		version = 2
		local_addrs = $2
		remote_addrs = $5
		encap = yes
		proposals = aes256gcm16-prfsha256-ecp256
		local {
			auth = psk
			id = $1
		}
		remote {
			auth = psk
			id = $4
		}
		children {
			bench {
				mode = tunnel
				local_ts = $3/32
				remote_ts = $6/32
				esp_proposals = aes256gcm16
			}
		}
	}
}
secrets {
	ike-bench {
		id-a = $1
		id-b = $4
		secret = 0x$(openssl rand -hex 32)
	}
}
EOT
}

swan_start() {
	# swan_start NAME NS OVERLAY
	_d=$WORK/swan-$1
	ip -n "$2" addr add "$3/32" dev lo
	ip netns exec "$2" env STRONGSWAN_CONF="$_d/strongswan.conf" \
		unshare -m sh -c "mount -t tmpfs none /run && exec $CHARON" \
		>"$_d/stdout" 2>&1 &
	peer_pid $!
	wait_for 10 "charon $1" test -S "$_d/charon.vici" || return 1
	STRONGSWAN_CONF="$_d/strongswan.conf" SWANCTL_DIR="$_d/swanctl" \
		swanctl --load-all --uri "unix://$_d/charon.vici" \
		>"$_d/load.log" 2>&1 || { cat "$_d/load.log"; return 1; }
}

peer_strongswan_start() {
	[ -x "$CHARON" ] && command -v swanctl >/dev/null ||
		{ echo "strongswan: not measured (charon/swanctl missing)"; return 1; }
	swan_node a "$UA" "$OA" b "$UB" "$OB"
	swan_node b "$UB" "$OB" a "$UA" "$OA"
	# The same PSK on both ends.
	sed -n '/secret =/p' "$WORK/swan-a/swanctl/swanctl.conf" >"$WORK/psk"
	sed -i "s|^.*secret =.*\$|$(cat "$WORK/psk")|" \
		"$WORK/swan-b/swanctl/swanctl.conf"
	swan_start b "$NSB" "$OB" || return 1
	swan_start a "$NSA" "$OA" || return 1
	STRONGSWAN_CONF="$WORK/swan-a/strongswan.conf" swanctl --initiate \
		--child bench --timeout 10 --uri "unix://$WORK/swan-a/charon.vici" \
		>"$WORK/swan-a/initiate.log" 2>&1 ||
		{ tail -20 "$WORK/swan-a/initiate.log"; return 1; }
	wait_for 10 "strongSwan tunnel" ip netns exec "$NSA" \
		ping -c1 -W1 -I "$OA" "$OB" || {
		tail -20 "$WORK/swan-a/charon.log"
		return 1
	}
}
