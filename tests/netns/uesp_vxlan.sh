#!/bin/sh
# uesp_vxlan.sh — two namespaces joined by a VXLAN-in-ESP tunnel of
# meshwan-uesp (TAP devices): ping, 10 s iperf3 with a rekey in the
# middle, no drops.  The topology and steps are drawn in uesp_lib.sh.
#
# Both ends run the AddressSanitizer/UBSan build of meshwan-uesp (built
# here into build-san/ unless the suite already runs from it); any
# sanitizer report or leak fails the test.
set -u
ENCAP=vxlan
. "$MESHWAN_TOP/tests/lib/netns.sh"
cd "$MESHWAN_TOP" || fail "no $MESHWAN_TOP"
case "${BUILD:-build}" in
build-san*) SAN=${BUILD} ;;
*)
	SAN=build-san
	make -s SANITIZE=address,undefined BUILD=$SAN \
	    $SAN/overlay/uesp/meshwan-uesp >/dev/null ||
		fail "could not build the sanitizer build of meshwan-uesp"
	;;
esac
UESP=$MESHWAN_TOP/$SAN/overlay/uesp/meshwan-uesp
SANLOG=$(mktemp -d "${TMPDIR:-/tmp}/uesp-san.XXXXXX")
NS_CLEANUP_EXTRA='rm -rf "$SANLOG"'
UESP_ENV="ASAN_OPTIONS=detect_leaks=1:exitcode=23:log_path=$SANLOG/asan UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=23:log_path=$SANLOG/ubsan"
. "$MESHWAN_TOP/tests/netns/uesp_lib.sh"

check_sanitizers() {
	if ls "$SANLOG"/* >/dev/null 2>&1; then
		cat "$SANLOG"/*
		fail "sanitizer reports"
	fi
}
uesp_scenario
check_sanitizers
echo "no sanitizer reports"
