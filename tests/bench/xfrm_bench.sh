#!/bin/sh
# tests/bench/xfrm_bench.sh — per-SA install time for 1,000 SAs through
# the xfrm backend (overlay/xfrm/, tests/bench/xfrm_bench.c), against two
# references measured in the same run:
#
#   ip -batch   iproute2 adding the same SAs (transport mode,
#               rfc4106(gcm(aes)) 256, ESN, window 1024, espinudp 4500,
#               lifetimes), one request and one ack at a time
#   raw 1       the backend's own NEWSA messages on a plain netlink socket,
#               one to a send, its ack read before the next: one round trip
#               per SA without the backend's bookkeeping or libnl
#   raw 64      the same, 64 to a send, acks read per batch: what the
#               kernel itself costs per SA, the floor for any user space
#   backend     xfrm_ops.sa_add, 1,000 calls (half inbound, half outbound)
#   batch       the same 1,000 SAs in one sa_add_batch call: the backend
#               sends 64 per sendmsg, as the raw 64 reference does
#
# Deletes of the same SAs are measured in the same runs: raw 1 and raw 64
# send XFRM_MSG_DELSA the same way, the backend deletes with one sa_del
# per SA, and the batch run with one sa_del_batch call.
#
# The host kernel has no ESP, so on the host this script boots the kernel
# lab (tests/lab/run) with itself as the scenario; inside the VM
# (LAB_GUEST=1) it measures, five rounds each, every run in a fresh
# network namespace after a warm-up SA (the first SA loads the ESP and
# GCM modules).  It prints SAs/s per round, the best of each, and the
# backend's ratios to the references.  TCG emulation makes everything
# slower than on hardware; the ratios are what carries over.
set -u
top=${MESHWAN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ -z "${LAB_GUEST:-}" ]; then
	exec sh "$top/tests/lab/run" "$top/tests/bench/xfrm_bench.sh"
fi
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
BENCH=$BUILD/tests/bench/xfrm_bench
N=1000
ROUNDS=5
[ -x "$BENCH" ] || { echo "xfrm_bench: $BENCH not built (make bench)"; exit 1; }
tmp=$(mktemp -d)
ns=mwxb$$
cleanup() {
	ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# The same SAs the backend installs (tests/bench/xfrm_bench.c bench_sa).
i=0
while [ $i -lt $N ]; do
	if [ $((i % 2)) = 0 ]; then s=198.51.100.1 d=192.0.2.1; else s=192.0.2.1 d=198.51.100.1; fi
	printf 'xfrm state add src %s dst %s proto esp spi %u reqid %u mode transport replay-window 1024 flag esn aead rfc4106(gcm(aes)) 0x%08x%064x 128 encap espinudp 4500 4500 0.0.0.0 limit time-soft 3000 limit time-hard 3600\n' \
	    "$s" "$d" $((0x10000 + i)) $((0x6d770000 + i + 1)) $i 165
	i=$((i + 1))
done >"$tmp/batch"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# bench_run NAME ARGS...: one xfrm_bench run; its install and delete
# rates go to NAME and NAME.del.
bench_run() {
	_name=$1
	shift
	"$BENCH" "$@" $N >"$tmp/out" || { cat "$tmp/out"; exit 1; }
	cat "$tmp/out"
	sed -n 's/.* installs .*: \([0-9]*\) SAs\/s.*/\1/p' "$tmp/out" >>"$tmp/$_name"
	sed -n 's/.* deletes .*: \([0-9]*\) SAs\/s.*/\1/p' "$tmp/out" >>"$tmp/$_name.del"
}

ip netns add "$ns" || exit 1
ip -n "$ns" xfrm state add src 192.0.2.1 dst 198.51.100.1 proto esp spi 256 \
    mode transport aead 'rfc4106(gcm(aes))' 0x$(printf '%072x' 1) 128 ||
	{ echo "xfrm_bench: this kernel cannot hold ESP SAs"; exit 1; }
ip netns del "$ns"

: >"$tmp/ip" ; : >"$tmp/raw1" ; : >"$tmp/raw" ; : >"$tmp/backend" ; : >"$tmp/batch1k"
for f in raw1 raw backend batch1k; do : >"$tmp/$f.del"; done
r=1
while [ $r -le $ROUNDS ]; do
	ip netns add "$ns" || exit 1
	ip -n "$ns" link set lo up
	t0=$(ms)
	ip -n "$ns" -batch "$tmp/batch" || { echo "xfrm_bench: ip -batch failed"; exit 1; }
	t1=$(ms)
	[ "$(ip -n "$ns" xfrm state | grep -c '^src')" = "$N" ] ||
		{ echo "xfrm_bench: ip -batch did not install $N SAs"; exit 1; }
	ip netns del "$ns"
	echo $((N * 1000 / (t1 - t0 + 1))) >>"$tmp/ip"

	bench_run raw1 -r 1
	bench_run raw -r 64
	bench_run backend
	bench_run batch1k -b
	r=$((r + 1))
done

best() { sort -n "$1" | tail -1; }
line() {
	printf '  %-44s %6s SAs/s  %7.1f us each  (rounds: %s)\n' "$1" "$(best "$2")" \
	    "$(echo "$(best "$2")" | awk '{ print 1e6 / $1 }')" "$(tr '\n' ' ' <"$2")"
}
echo "xfrm SA installs, $N per run, best of $ROUNDS (kernel lab VM):"
line "ip -batch (one acked request per SA)" "$tmp/ip"
line "raw netlink, 1 per send (a round trip per SA)" "$tmp/raw1"
line "raw netlink, 64 per send (kernel floor)" "$tmp/raw"
line "backend sa_add (one call per SA)" "$tmp/backend"
line "backend sa_add_batch (64 per send)" "$tmp/batch1k"
ratios() {
	awk -v name="$1" -v b="$(best "$2")" -v i="$(best "$tmp/ip")" \
	    -v r="$(best "$tmp/raw")" -v r1="$(best "$tmp/raw1")" 'BEGIN {
		printf "  %-13s / ip -batch: %.2f   / raw 1 per send: %.2f   " \
		    "/ raw 64 per send (floor): %.2f\n", name, b / i, b / r1, b / r }'
}
ratios sa_add "$tmp/backend"
ratios sa_add_batch "$tmp/batch1k"
echo "xfrm SA deletes, the same SAs, best of $ROUNDS:"
line "raw netlink, 1 per send (a round trip per SA)" "$tmp/raw1.del"
line "raw netlink, 64 per send (kernel floor)" "$tmp/raw.del"
line "backend sa_del (one call per SA)" "$tmp/backend.del"
line "backend sa_del_batch (64 per send)" "$tmp/batch1k.del"
awk -v a="$(best "$tmp/backend.del")" -v b="$(best "$tmp/batch1k.del")" \
    -v r1="$(best "$tmp/raw1.del")" -v r="$(best "$tmp/raw.del")" 'BEGIN {
	printf "  sa_del        / raw 1 per send: %.2f   / raw 64 per send (floor): %.2f\n", a / r1, a / r
	printf "  sa_del_batch  / raw 1 per send: %.2f   / raw 64 per send (floor): %.2f\n", b / r1, b / r }'
echo "  (the figures are under TCG emulation and the machine's load: the" \
    "ratios carry over, the absolute rates do not; target >= 10,000/s)"
