# tests/lib/san_ctl.sh — the sanitized controller that tests/ctl/*_asan.sh
# run other controller tests against (sourced, under `set -eu`, from the
# top of the tree).  meshwan-controller is built with AddressSanitizer,
# LeakSanitizer and UBSan into build-san/; any sanitizer report, or a
# non-zero exit of the controller (LeakSanitizer's exit code at
# shutdown), fails the caller.
#
#   san_ctl_start NAME   build it, make SAN_DIR (reports; removed at exit),
#                        export CTLD, ASAN_OPTIONS and UBSAN_OPTIONS
#   san_ctl_run TEST...  sh tests/ctl/TEST.sh for each, stop at the first
#                        failure, then fail on any report; "NAME: ok"

san_ctl_start() {
	SAN_NAME=$1
	SAN_TOP=$(pwd)
	SAN_DIR=$(mktemp -d "/tmp/meshwan-$SAN_NAME.$$.XXXXXX")
	trap 'rm -rf "$SAN_DIR"' EXIT INT TERM
	# A nested make: drop the outer make's settings (and BUILD: the
	# sanitizer build picks its own folder).
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD make -s -C "$SAN_TOP" \
		SANITIZE=address,undefined build-san/controller/meshwan-controller
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23:log_path=$SAN_DIR/asan"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=24:log_path=$SAN_DIR/ubsan"
	export CTLD="$SAN_TOP/build-san/controller/meshwan-controller"
}

san_ctl_run() {
	for _t in "$@"; do
		echo "== $_t with the sanitized controller"
		sh "$SAN_TOP/tests/ctl/$_t.sh" || {
			cat "$SAN_DIR"/*san* 2>/dev/null
			echo "FAIL: $_t"
			exit 1
		}
	done
	if ls "$SAN_DIR"/asan* "$SAN_DIR"/ubsan* >/dev/null 2>&1; then
		cat "$SAN_DIR"/asan* "$SAN_DIR"/ubsan* 2>/dev/null
		echo "FAIL: sanitizer reports"
		exit 1
	fi
	echo "$SAN_NAME: ok"
}
