# tests/bench/peers/nebula.sh — nebula (cipher aes, i.e. AES-256-GCM)
# between the bench namespaces, two static hosts and no lighthouse
# (sourced by tests/bench/uesp_peers.sh).

nebula_node() {
	# nebula_node NAME UNDERLAY OVERLAY IFNAME PEER_OVERLAY PEER_UNDERLAY
	_d=$WORK/nebula
	nebula-cert sign -ca-crt "$_d/ca.crt" -ca-key "$_d/ca.key" -name "$1" \
		-ip "$3/24" -out-crt "$_d/$1.crt" -out-key "$_d/$1.key" || return 1
	cat >"$_d/$1.yml" <<EOT
pki:
  ca: $_d/ca.crt
  cert: $_d/$1.crt
  key: $_d/$1.key
static_host_map:
  "$5": ["$6:4242"]
lighthouse:
  am_lighthouse: false
  hosts: []
listen:
  host: $2
  port: 4242
punchy:
  punch: false
cipher: aes
tun:
  dev: $4
  mtu: 1300
logging:
  level: info
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
EOT
}

peer_nebula_start() {
	command -v nebula >/dev/null && command -v nebula-cert >/dev/null ||
		{ echo "nebula: not measured (nebula missing)"; return 1; }
	mkdir -p "$WORK/nebula"
	nebula-cert ca -name "meshwan-bench" -out-crt "$WORK/nebula/ca.crt" \
		-out-key "$WORK/nebula/ca.key" || return 1
	nebula_node a "$UA" "$OA" "nbA$id" "$OB" "$UB" || return 1
	nebula_node b "$UB" "$OB" "nbB$id" "$OA" "$UA" || return 1
	ip netns exec "$NSB" nebula -config "$WORK/nebula/b.yml" \
		>"$WORK/nebula/b.log" 2>&1 &
	peer_pid $!
	ip netns exec "$NSA" nebula -config "$WORK/nebula/a.yml" \
		>"$WORK/nebula/a.log" 2>&1 &
	peer_pid $!
	wait_for 20 "nebula tunnel" ip netns exec "$NSA" ping -c1 -W1 "$OB" || {
		tail -5 "$WORK/nebula/a.log"
		return 1
	}
}
