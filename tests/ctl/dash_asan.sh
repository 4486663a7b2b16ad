#!/bin/sh
# dash_asan.sh — the dashboard's server side (HTTPS, static files, the
# event stream with streams parked and resumed, health history) with
# meshwan-controller built with AddressSanitizer, LeakSanitizer and
# UBSan (build-san/): any sanitizer report or a non-zero exit at shutdown
# fails it (tests/lib/san_ctl.sh).
set -eu
. "${MESHWAN_TOP:-.}/tests/lib/san_ctl.sh"
san_ctl_start dash_asan
san_ctl_run https_web events_stream
