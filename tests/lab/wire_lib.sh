# tests/lab/wire_lib.sh — byte-level comparison of what two ESP senders
# put on the wire (sourced inside the lab VM; POSIX sh).  Captured
# ESP-in-UDP datagrams are decrypted by tshark with the SAs' keys, and the
# header values where the RFCs leave the sender a choice are counted per
# sender and encapsulation:
#   outer DF and TTL, outer UDP checksum (0: RFC 3948 §2.1), ESP next
#   header; GRE flags and protocol, or the VXLAN packet's UDP port and
#   checksum (0: RFC 7348) and its VXLAN flags and VNI.
#
#   wire_sa DIR SPI SRC DST KEYSALT     an SA for tshark (hex key + salt),
#                                       one line of the esp_sa table that
#                                       Wireshark 4.0 reads from DIR/home
#   wire_decrypt DIR UESP_SRC SPIMAP PCAP...
#                                       decrypt the captures (one tshark
#                                       run: its start-up is most of the
#                                       cost under TCG) into DIR/wire.txt:
#                                       "COUNT SENDER-ENCAP VALUES...";
#                                       SENDER is uesp for datagrams from
#                                       address UESP_SRC, kernel otherwise;
#                                       SPIMAP "SPI:gre SPI:vxlan ..." (SPI
#                                       in decimal) names each SPI's
#                                       encapsulation
#                                       WIRE_UESP_HOPS (0): routers the
#                                       uesp datagrams crossed before the
#                                       capture point, added back to their
#                                       TTL, so that both senders' TTLs
#                                       compare as sent
#   wire_compare DIR ENCAP MIN          uesp's datagrams all alike, the
#                                       kernel's all alike, at least MIN
#                                       of each, and the two the same; 1
#                                       with the reason on stderr if not
# A datagram tshark cannot decrypt (say a UDP_SEGMENT batch captured
# before segmentation) shows with empty inner fields, so it differs too.
# Only datagrams whose outer IP header carries UDP count: an ICMP error
# quoting an ESP datagram (a peer not yet listening) decodes as ESP too,
# under the ICMP's own header (no DF, another TTL).

wire_sa() {
	mkdir -p "$1/home/.config/wireshark"
	printf '"IPv4","%s","%s","0x%08x","AES-GCM with 16 octet ICV [RFC4106]","0x%s","NULL",""\n' \
	    "$3" "$4" "$2" "$5" >>"$1/home/.config/wireshark/esp_sa"
}

wire_decrypt() {
	_wd=$1 _wu=$2 _wm=$3
	shift 3
	if [ $# -gt 1 ]; then
		mergecap -w "$_wd/wire.pcapng" "$@" || return 1
	else
		cp "$1" "$_wd/wire.pcapng" || return 1
	fi
	HOME=$_wd/home XDG_CONFIG_HOME=$_wd/home/.config \
	    tshark -n -r "$_wd/wire.pcapng" \
	    -o esp.enable_encryption_decode:TRUE -Y 'ip.proto#1 == 17 && udp.port == 4500 && esp' \
	    -T fields -E separator='|' -E aggregator=, -e ip.src \
	    -e ip.flags.df -e ip.ttl -e udp.checksum -e udp.dstport \
	    -e esp.protocol -e gre.flags_and_version -e gre.proto \
	    -e vxlan.flags -e vxlan.vni -e esp.spi 2>"$_wd/wire.err" |
	awk -F'|' -v uesp="$_wu" -v map="$_wm" -v hops="${WIRE_UESP_HOPS:-0}" '
	    BEGIN { n = split(map, m, " ")
		    for (i = 1; i <= n; i++) { split(m[i], kv, ":"); enc[kv[1] + 0] = kv[2] } }
	    function first(s,  a) { split(s, a, ","); return a[1] }
	    function nth(s, n,  a) { split(s, a, ","); return a[n] }
	    function zero(c) { return c == "" ? "-" : (c + 0 == 0 ? "0" : "set") }
	    function num(s,  i, v) {	# tshark prints the SPI in hex
		if (s !~ /^0x/) return s + 0
		for (i = 3; i <= length(s); i++)
		    v = v * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
		return v }
	    { src = first($1) == uesp ? "uesp" : "kernel"
	      e = enc[num($11)]
	      if (e == "") e = "unknown-spi-" $11
	      ttl = first($3) == "" ? "" : first($3) + (src == "uesp" ? hops : 0)
	      printf "%s-%s df=%s ttl=%s udpcsum=%s next=%s", src, e,
		  first($2), ttl, zero(first($4)), $6
	      if (e == "gre")
		  printf " gre=%s/%s", $7, $8
	      else
		  printf " vxlan-udp=%s/csum=%s vxlan=%s/%s", nth($5, 2),
		      zero(nth($4, 2)), $9, $10
	      print "" }' | sort | uniq -c >"$_wd/wire.txt"
	echo "ESP datagrams by sender and header values (count, sender, values):"
	cat "$_wd/wire.txt"
}

wire_compare() {
	_u=$(awk -v k="uesp-$2" '$2 == k' "$1/wire.txt")
	_k=$(awk -v k="kernel-$2" '$2 == k' "$1/wire.txt")
	if [ -z "$_u" ] || [ -z "$_k" ]; then
		echo "$2: no decrypted datagrams from one side" >&2
		return 1
	fi
	if [ "$(echo "$_u" | wc -l)" != 1 ]; then
		echo "$2: uesp's datagrams differ among themselves" >&2
		return 1
	fi
	if [ "$(echo "$_k" | wc -l)" != 1 ]; then
		echo "$2: the kernel's datagrams differ among themselves" >&2
		return 1
	fi
	if [ "$(echo "$_u" | awk '{ print $1 }')" -lt "$3" ] ||
	    [ "$(echo "$_k" | awk '{ print $1 }')" -lt "$3" ]; then
		echo "$2: too few datagrams compared (fewer than $3 from one side)" >&2
		return 1
	fi
	if [ "$(echo "$_u" | awk '{ $1 = $2 = ""; print }')" != \
	    "$(echo "$_k" | awk '{ $1 = $2 = ""; print }')" ]; then
		echo "$2: uesp's headers differ from the kernel's" >&2
		return 1
	fi
	return 0
}
