# tests/rpc/certs.sh — sourced by the rpc tests: rpc_certs DIR makes every
# certificate they need with the openssl CLI, fresh for each run (nothing is
# committed).  ECDSA P-256 keys.
#   ca.pem/ca.key          test CA
#   server.pem/.key        CN=controller, SAN IP:127.0.0.1, DNS:localhost
#   client.pem/.key        CN=site-1, SAN DNS:site-1.edge.test (from ca)
#   ca2.pem, other.pem/.key  a second CA and a CN=site-1 cert it signed
#   expired.pem/.key       CN=site-1 from ca, valid only in January 2020

rpc_certs() {
	d=$1
	command -v openssl >/dev/null || { echo "FAIL: openssl missing" >&2; return 1; }
	mkdir -p "$d/db" || return 1
	: >"$d/db/index"
	echo 1000 >"$d/db/serial"
	cat >"$d/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $d/db/index
serial = $d/db/serial
new_certs_dir = $d/db
default_md = sha256
policy = p
unique_subject = no
copy_extensions = copy
[p]
commonName = supplied
CNF
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
	printf 'subjectAltName=DNS:site-1.edge.test\nextendedKeyUsage=clientAuth\n' >"$d/client.ext"
	for k in ca ca2 server client other expired; do
		openssl ecparam -name prime256v1 -genkey -noout -out "$d/$k.key" || return 1
	done
	for c in ca ca2; do
		openssl req -x509 -new -key "$d/$c.key" -subj "/CN=meshwan test $c" \
			-days 2 -out "$d/$c.pem" \
			-addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign || return 1
	done
	sign() { # name CN ca ext
		openssl req -new -key "$d/$1.key" -subj "/CN=$2" -out "$d/$1.csr" &&
		openssl x509 -req -in "$d/$1.csr" -CA "$d/$3.pem" -CAkey "$d/$3.key" \
			-CAcreateserial -days 2 -extfile "$d/$4" -out "$d/$1.pem" 2>/dev/null
	}
	sign server controller ca server.ext || return 1
	sign client site-1 ca client.ext || return 1
	sign other site-1 ca2 client.ext || return 1
	# Expired: `openssl ca` is the CLI that takes explicit dates.
	openssl req -new -key "$d/expired.key" -subj "/CN=site-1" -out "$d/expired.csr" &&
	openssl ca -batch -config "$d/ca.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" \
		-in "$d/expired.csr" -out "$d/expired.pem" -notext \
		-startdate 20200101000000Z -enddate 20200102000000Z \
		-extfile "$d/client.ext" 2>/dev/null || return 1
	openssl verify -CAfile "$d/ca.pem" "$d/client.pem" >/dev/null || return 1
	# The expired certificate's only fault must be its dates.
	openssl verify -no_check_time -CAfile "$d/ca.pem" "$d/expired.pem" >/dev/null || return 1
	if openssl verify -CAfile "$d/ca.pem" "$d/expired.pem" >/dev/null 2>&1; then
		echo "FAIL: expired certificate verifies" >&2; return 1
	fi
	return 0
}
