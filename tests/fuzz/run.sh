#!/bin/sh
# tests/fuzz/run.sh — runs every libFuzzer target built by `make fuzz`
# (build-fuzz/fuzz_*) for a bounded time each and fails on any crash,
# leak, sanitizer report or timeout.
#
# Each fuzzer starts from a working corpus in build-fuzz/corpus/NAME that
# is seeded from tests/fuzz/corpus/NAME (if present, committed inputs) and
# from seeds the fuzzer writes itself when FUZZ_SEED_DIR is set (e.g.
# packets sealed with a test key).  The corpus grows across runs.
#
# Environment: FUZZ_SECONDS (per fuzzer, default 30), FUZZ_DIR (build-fuzz),
# FUZZ_ONLY (run only fuzzers whose name contains it).
set -u
top=${MESHWAN_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
dir=${FUZZ_DIR:-$top/build-fuzz}
secs=${FUZZ_SECONDS:-30}

set -- "$dir"/fuzz_*
if [ ! -x "$1" ]; then
	echo "fuzz: no fuzzers in $dir (run 'make fuzz' first)" >&2
	exit 1
fi
rc=0
ran=0
for f in "$@"; do
	[ -x "$f" ] || continue
	name=${f##*/fuzz_}
	if [ -n "${FUZZ_ONLY:-}" ]; then
		case "$name" in *"$FUZZ_ONLY"*) ;; *) continue ;; esac
	fi
	corpus="$dir/corpus/$name"
	arts="$dir/artifacts/$name"
	mkdir -p "$corpus" "$arts"
	if [ -d "$top/tests/fuzz/corpus/$name" ]; then
		cp -p "$top/tests/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null
	fi
	echo "fuzz: $name for ${secs}s (corpus $corpus)"
	# -timeout: one input taking longer than 10 s is a hang, a failure.
	FUZZ_SEED_DIR="$corpus" "$f" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$arts/" "$corpus" >"$dir/$name.log" 2>&1
	frc=$?
	tail -n 15 "$dir/$name.log"
	if [ $frc -ne 0 ]; then
		echo "fuzz: $name FAILED (exit $frc); reproducer(s) in $arts:"
		ls -l "$arts"
		rc=1
	else
		echo "fuzz: $name ok"
	fi
	ran=$((ran + 1))
done
if [ $ran -eq 0 ]; then
	echo "fuzz: no fuzzer matched" >&2
	exit 1
fi
exit $rc
