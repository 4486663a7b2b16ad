# drv_lib.sh — talking to tests/lab/xfrm_drive from a lab scenario (after
# tests/lib/netns.sh: ns_bg, wait_until, fail, NS_TMP).  One driver is a
# backend instance in one namespace, fed one command per line on a fifo
# (NS_TMP/NAME.in); it answers one line per command (NS_TMP/NAME.out,
# "ok ..." or an error) and logs to NS_TMP/NAME.log.
# Needs DRIVE (the driver binary).

drv_fifo() {
	rm -f "$NS_TMP/$1.in"
	mkfifo "$NS_TMP/$1.in" || fail "mkfifo"
	: >"$NS_TMP/$1.out"
}
# drv_open NAME FD: talk to driver NAME on fd FD once it is ready.
drv_open() {
	eval "exec $2>'$NS_TMP/$1.in'"
	eval "${1}_fd=$2"
	wait_until 30 grep -q '^ok ready' "$NS_TMP/$1.out" ||
		fail "$1: driver did not start: $(cat "$NS_TMP/$1.log")"
}
# drv_start NAME NS FD: a driver in NS reading NS_TMP/NAME.in on fd FD.
drv_start() {
	drv_fifo "$1"
	ns_bg "$2" sh -c "exec '$DRIVE' <'$NS_TMP/$1.in' >'$NS_TMP/$1.out' 2>>'$NS_TMP/$1.log'"
	drv_open "$1" "$3"
}
lines() { wc -l <"$1" | tr -d ' '; }
# drv NAME COMMAND...: send one command, set REPLY to its answer line;
# 0 when it starts with "ok".
drv() {
	_n=$1
	shift
	_f=$NS_TMP/$_n.out
	_c=$(lines "$_f")
	eval "echo \"\$*\" >&\$${_n}_fd"
	wait_until 60 sh -c "test \$(wc -l <'$_f') -gt $_c" ||
		fail "$_n: no answer to '$*': $(tail -n 5 "$NS_TMP/$_n.log")
$(ps -eo pid,stat,wchan:30,args | grep -v ' \[')"
	REPLY=$(sed -n "$((_c + 1))p" "$_f")
	case "$REPLY" in ok*) return 0 ;; esac
	return 1
}
must() { drv "$@" || fail "$1: '$*' answered '$REPLY': $(tail -n 3 "$NS_TMP/$1.log")"; }
# field KEY: the value of KEY=... in REPLY.
field() { echo "$REPLY" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
