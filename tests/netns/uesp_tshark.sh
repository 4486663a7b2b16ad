#!/bin/sh
# uesp_tshark.sh — an independent decoder agrees with uesp's wire format.
#
#   netns A                                          netns B
#   +----------------------------+                   +----------------------------+
#   | ug (TUN) 169.254.8.0/31 ---+- tunnel 1: GRE ---+-- ug 169.254.8.1/31        |
#   | ux (TAP) 169.254.9.0/31 ---+- tunnel 2: VXLAN -+-- ux 169.254.9.1/31        |
#   | meshwan-uesp               |   (VNI 4243)      |  meshwan-uesp              |
#   | va 10.99.8.1, 10.99.8.3 ========= veth =========== vb 10.99.8.2, 10.99.8.4  |
#   +----------------------------+                   +----------------------------+
#                                                       tshark captures on vb
#
# Both tunnels carry pings and a short TCP transfer (which goes through
# uesp's TUN/TAP offload path: userspace segmentation, coalescing); tshark,
# given the test's keys in its esp_sa table, decrypts the ESP-in-UDP-4500
# packets itself and must find GRE/IPv4/ICMP+TCP in tunnel 1 and
# UDP/VXLAN/Ethernet/IPv4/ICMP+TCP in tunnel 2, every IP/TCP/UDP checksum
# good, ICVs that verify, no malformed packet or expert error.  The tools
# run with "udp_gso": false so the capture shows datagrams one by one.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"
UESP=$MESHWAN_TOP/${BUILD:-build}/overlay/uesp/meshwan-uesp

ns_init
ns_need jq ping tshark dumpcap od iperf3 ss
[ -x "$UESP" ] || fail "$UESP not built"
A=$(ns_name ta)
B=$(ns_name tb)
ns_add "$A"
ns_add "$B"
for n in "$A" "$B"; do
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
	    net.ipv6.conf.default.disable_ipv6=1 || fail "sysctl"
done
ns_veth "$A" va "$B" vb
ip -n "$A" addr add 10.99.8.1/24 dev va && ip -n "$A" addr add 10.99.8.3/24 dev va &&
ip -n "$B" addr add 10.99.8.2/24 dev vb && ip -n "$B" addr add 10.99.8.4/24 dev vb ||
	fail "addresses"

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
# Four SAs: tunnel 1 (GRE, AES-GCM-256, ESN) and tunnel 2 (VXLAN,
# AES-GCM-128, no ESN), one per direction.  Wireshark 4.0 leaves the ESN
# high bits out of the GCM AAD, so it can verify the ICV of tunnel 2's
# SAs only; it decrypts both.
k1=$(hex 32) s1=$(hex 4) k2=$(hex 32) s2=$(hex 4)
k3=$(hex 16) s3=$(hex 4) k4=$(hex 16) s4=$(hex 4)

# conf FILE L1 R1 L2 R2 IN1 OUT1 IN2 OUT2 (inner sides: a or b)
conf() {
	_side=$1
	if [ "$_side" = a ]; then
		l1=10.99.8.1 r1=10.99.8.2 l2=10.99.8.3 r2=10.99.8.4
		i1=169.254.8.0/31 p1=169.254.8.1 i2=169.254.9.0/31 p2=169.254.9.1
		o1="$k1:$s1:4353" n1="$k2:$s2:4354" o2="$k3:$s3:4355" n2="$k4:$s4:4356"
	else
		l1=10.99.8.2 r1=10.99.8.1 l2=10.99.8.4 r2=10.99.8.3
		i1=169.254.8.1/31 p1=169.254.8.0 i2=169.254.9.1/31 p2=169.254.9.0
		o1="$k2:$s2:4354" n1="$k1:$s1:4353" o2="$k4:$s4:4356" n2="$k3:$s3:4355"
	fi
	sa() {
		IFS=: read -r _k _s _spi <<EOS
$3
EOS
		echo "{\"dir\": \"$1\", \"spi\": $_spi, \"cipher\": \"$2\", \"esn\": $4, \"key\": \"$_k\", \"salt\": \"$_s\"}"
	}
	cat <<EOC
{ "workers": 1, "udp_gso": false, "tunnels": [
  { "id": 1, "device": "ug", "encap": "gre", "local": "$l1", "remote": "$r1",
    "inner": "$i1", "peer": "$p1", "mtu": 1400,
    "sas": [ $(sa out aes-gcm-256 "$o1" true), $(sa in aes-gcm-256 "$n1" true) ] },
  { "id": 2, "device": "ux", "encap": "vxlan", "vni": 4243,
    "local": "$l2", "remote": "$r2",
    "inner": "$i2", "peer": "$p2", "mtu": 1400,
    "sas": [ $(sa out aes-gcm-128 "$o2" false), $(sa in aes-gcm-128 "$n2" false) ] } ] }
EOC
}
conf a >"$NS_TMP/a.json"
conf b >"$NS_TMP/b.json"

# tshark's ESP SA table (UAT "esp_sa"): protocol, source, destination,
# SPI, encryption, key (RFC 4106: key followed by the 4-byte salt),
# authentication, its key (Wireshark 4.0's eight fields).
mkdir -p "$NS_TMP/home/.config/wireshark"
uat() {
	echo "\"IPv4\",\"$1\",\"$2\",\"$(printf '0x%08x' "$3")\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$4$5\",\"NULL\",\"\""
}
{
	uat 10.99.8.1 10.99.8.2 4353 "$k1" "$s1"
	uat 10.99.8.2 10.99.8.1 4354 "$k2" "$s2"
	uat 10.99.8.3 10.99.8.4 4355 "$k3" "$s3"
	uat 10.99.8.4 10.99.8.3 4356 "$k4" "$s4"
} >"$NS_TMP/home/.config/wireshark/esp_sa"

# dumpcap (tshark's own capture engine) writes the file: tshark itself
# would first load every dissector, seconds of start-up that a loaded host
# stretches past any deadline, and it needs them only to read.  The file
# header is written once the interface is open, so a non-empty file means
# the capture runs.
cap=$NS_TMP/underlay.pcapng
ns_bg "$B" dumpcap -q -i vb -w "$cap"
PT=$NS_PID
wait_until 15 test -s "$cap" || fail "dumpcap did not start capturing"
ns_bg "$A" "$UESP" "$NS_TMP/a.json"
ns_bg "$B" "$UESP" "$NS_TMP/b.json"
ping_ok() { ip netns exec "$A" ping -c 1 -W 1 "$1"; }
wait_until 10 ping_ok 169.254.8.1 || fail "no ping through GRE tunnel"
wait_until 10 ping_ok 169.254.9.1 || fail "no ping through VXLAN tunnel"
ip netns exec "$A" ping -c 3 -i 0.2 169.254.8.1 >/dev/null || fail "GRE ping"
ip netns exec "$A" ping -c 3 -i 0.2 169.254.9.1 >/dev/null || fail "VXLAN ping"
listening() { ip netns exec "$B" ss -Hltn "sport = :$1" | grep -q LISTEN; }
for dst in 169.254.8.1 169.254.9.1; do
	ns_bg "$B" iperf3 -s -1 -B "$dst" -p 5202
	wait_until 10 listening 5202 || fail "iperf3 server"
	ip netns exec "$A" iperf3 -c "$dst" -p 5202 -n 300K >/dev/null ||
		fail "TCP transfer to $dst"
	wait "$NS_PID"
done
# A last ping of a size used nowhere else marks the end: once its reply
# is in the file, so is everything before it (dumpcap lags a little).
ip netns exec "$A" ping -c 1 -s 999 169.254.8.1 >/dev/null || fail "marker ping"
marker() {
	HOME=$NS_TMP/home tshark -r "$cap" -o esp.enable_encryption_decode:TRUE \
	    -Y 'icmp.type == 0 && ip.len == 1027' 2>/dev/null | grep -q .
}
wait_until 15 marker || fail "capture incomplete"
kill -INT "$PT"
wait "$PT"

dec() {
	HOME=$NS_TMP/home XDG_CONFIG_HOME=$NS_TMP/home/.config tshark -r "$cap" \
	    -o esp.enable_encryption_decode:TRUE -o ip.check_checksum:TRUE \
	    -o tcp.check_checksum:TRUE "$@" 2>"$NS_TMP/tshark.err"
}
deca() {
	dec -o esp.enable_authentication_check:TRUE "$@"
}
dec -Y 'esp' -T fields -e frame.number -e esp.spi -e _ws.col.Protocol \
    -e _ws.col.Info >"$NS_TMP/decoded.txt"
echo "--- tshark view of the underlay"
head -n 40 "$NS_TMP/decoded.txt"
esp=$(wc -l <"$NS_TMP/decoded.txt")
gre=$(dec -Y 'udp.port == 4500 && esp && gre && ip.proto == 1 && icmp.type == 8 && ip.dst == 169.254.8.1' | wc -l)
grer=$(dec -Y 'udp.port == 4500 && esp && gre && icmp.type == 0 && ip.src == 169.254.8.1' | wc -l)
vx=$(dec -Y 'udp.port == 4500 && esp && vxlan.vni == 4243 && eth && icmp.type == 8 && ip.dst == 169.254.9.1' | wc -l)
vxr=$(dec -Y 'udp.port == 4500 && esp && vxlan.vni == 4243 && eth && icmp.type == 0 && ip.src == 169.254.9.1' | wc -l)
arp=$(dec -Y 'esp && vxlan && arp' | wc -l)
tgre=$(dec -Y 'esp && gre && tcp.len > 0 && tcp.checksum.status == 1 && ip.len#2 <= 1400' | wc -l)
tvx=$(dec -Y 'esp && vxlan && tcp.len > 0 && tcp.checksum.status == 1 && ip.len#2 <= 1400' | wc -l)
big=$(dec -Y 'esp && ip.len#2 > 1400' | wc -l)
# 0x800000 is Wireshark's PI_ERROR (bad checksums are errors; TCP
# analysis notes such as window updates are only warnings or less).
# The outer UDP checksum is not checked: on veth the kernel leaves it to
# "hardware", so a capture shows it unfinished.
badf='_ws.malformed || _ws.expert.severity >= 0x800000 || esp.icv_bad == 1 ||
    ip.checksum.status == 0 || tcp.checksum.status == 0'
bad=$(dec -Y "$badf" | wc -l)
nodec=$(dec -Y 'esp && !gre && !vxlan' | wc -l)
# The outer headers as the kernel's ESP-in-UDP sends them (overlay/uesp/
# ESP.md): UDP checksum 0 over IPv4, DF as a kernel GRE (set) or VXLAN
# (clear) device sets it.  Only datagrams whose outer IP header carries
# UDP: an ICMP error that quotes an ESP datagram (port unreachable when a
# ping reaches B before B's uesp has bound port 4500, as happens under
# load) decodes as ESP and GRE too, under the ICMP's own header, which
# the kernel sends without DF.
outer='ip.proto#1 == 17 && esp'
csum=$(dec -Y "$outer && udp.port == 4500 && udp.checksum#1 != 0" | wc -l)
dfgre=$(dec -Y "$outer && gre && ip.flags.df#1 == 0" | wc -l)
dfvx=$(dec -Y "$outer && vxlan && ip.flags.df#1 == 1" | wc -l)
icmperr=$(dec -Y 'ip.proto#1 == 1 && esp' | wc -l)
icv_good=$(deca -Y 'esp.spi == 4355 || esp.spi == 4356' -T fields -e esp.icv_good | grep -c 1)
icv_all=$(deca -Y 'esp.spi == 4355 || esp.spi == 4356' | wc -l)
echo "outer UDP checksum set: $csum; GRE without DF: $dfgre; VXLAN with DF: $dfvx; ICMP errors quoting ESP: $icmperr"
echo "ESP packets $esp; GRE echo $gre/$grer; VXLAN echo $vx/$vxr; ARP in VXLAN $arp; TCP data segments GRE $tgre VXLAN $tvx; inner packets over the MTU $big; bad $bad; undecoded $nodec; ICV verified by tshark $icv_good/$icv_all"
[ -s "$NS_TMP/tshark.err" ] && { cat "$NS_TMP/tshark.err"; }
[ "$gre" -ge 4 ] && [ "$grer" -ge 4 ] || fail "tshark did not decode GRE/IPv4/ICMP"
[ "$vx" -ge 4 ] && [ "$vxr" -ge 4 ] || fail "tshark did not decode VXLAN/Ethernet/IPv4/ICMP"
[ "$arp" -ge 1 ] || fail "no ARP seen inside VXLAN"
[ "$tgre" -ge 50 ] || fail "too few good TCP segments in GRE"
[ "$tvx" -ge 50 ] || fail "too few good TCP segments in VXLAN"
[ "$big" = 0 ] || fail "inner packets larger than the tunnel MTU on the wire"
[ "$csum" = 0 ] || fail "$csum ESP datagrams with an outer UDP checksum (RFC 3948: 0)"
[ "$dfgre" = 0 ] && [ "$dfvx" = 0 ] || {
	dec -Y "$outer && ((gre && ip.flags.df#1 == 0) || (vxlan && ip.flags.df#1 == 1))" -V | head -60
	fail "DF unlike the kernel's: $dfgre GRE datagrams without, $dfvx VXLAN datagrams with"
}
[ "$bad" = 0 ] || { dec -Y "$badf" -V | head -80; fail "malformed or expert warnings"; }
[ "$nodec" = 0 ] || fail "ESP packets tshark could not decrypt"
[ "$icv_all" -ge 8 ] && [ "$icv_good" = "$icv_all" ] ||
	fail "tshark did not verify every ICV of the non-ESN SAs"
echo "PASS uesp_tshark"
