#!/bin/sh
# xfrm_unit.sh — (lab) tests/unit/test_overlay_xfrm on Debian's kernel,
# which has ESP and GCM: the branches the host cannot reach.  On the host
# every SA install is refused by the kernel; here they are installed, so
# this proves sa_add_batch's per-SA outcome for real: a batch with SAs
# refused in the middle (unknown tunnel, an SPI and a key repeated inside
# the batch, an SPI a foreign SA holds) installs every other SA, and
# `ip xfrm state` and the backend's record hold exactly those.  The unit
# test makes its own network namespace (unshare) and cleans up.
set -u
. "$MESHWAN_TOP/tests/lib/netns.sh"

BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$MESHWAN_TOP/$BUILD" ;; esac
T=$BUILD/tests/unit/test_overlay_xfrm
[ -x "$T" ] || fail "$T not built (make)"
ns_init
out=$NS_TMP/unit.out
"$T" >"$out" 2>&1
rc=$?
grep -v '^20[0-9][0-9]-' "$out"
[ "$rc" = 0 ] || fail "test_overlay_xfrm exit $rc"
grep -q 'sa_add_batch: the kernel has ESP' "$out" ||
	fail "the batch test did not take the ESP branch (no ESP in this kernel?)"
echo "PASS: test_overlay_xfrm on $(uname -r), installs checked"
