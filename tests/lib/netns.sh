# tests/lib/netns.sh — shared helpers for network-namespace tests (POSIX sh).
#
# Source it first thing:   . "$MESHWAN_TOP/tests/lib/netns.sh"
# then call ns_init.  Everything created through these helpers is removed
# by the EXIT trap, whether the test passes, fails or is interrupted.
#
#   ns_init             need root, make $NS_TMP (scratch folder), set the trap
#   ns_need TOOL...     fail loudly when a tool is missing (no silent skip)
#   ns_name BASE        print a name unique to this run: BASE-<pid>
#                       (keep BASE <= 8 chars: interface names max 15)
#   ns_add NS           create namespace NS (registered), bring lo up
#   ns_veth NS1 IF1 NS2 IF2
#                       veth pair IF1 in NS1 <-> IF2 in NS2, both up
#   ns_bg NS CMD...     run CMD in NS in the background; its pid is killed
#                       at cleanup and left in $NS_PID
#   ns_stop PID         SIGTERM PID and wait up to 10 s for it to exit;
#                       returns its exit status (1 if it had to be killed)
#   wait_until SECS CMD...
#                       run CMD every 0.1 s until it succeeds; returns 1
#                       when a try begun SECS or later after the start fails
#                       (use: wait_until 5 cmd || fail)
#   fail MSG            print "FAIL: MSG" and exit 1
#   ns_cleanup          the trap itself; add more with NS_CLEANUP_EXTRA="cmd"
#
# Set KEEP=1 to keep $NS_TMP for debugging.

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ns_need() {
	for _t in "$@"; do
		command -v "$_t" >/dev/null 2>&1 || fail "missing tool: $_t"
	done
}

ns_name() {
	echo "$1-$$"
}

ns_cleanup() {
	_rc=$?
	set +e
	[ -n "${NS_CLEANUP_EXTRA:-}" ] && eval "$NS_CLEANUP_EXTRA"
	for _p in $NS_PIDS; do
		kill "$_p" 2>/dev/null
	done
	for _p in $NS_PIDS; do
		_i=0
		while kill -0 "$_p" 2>/dev/null && [ $_i -lt 50 ]; do
			sleep 0.1
			_i=$((_i + 1))
		done
		kill -9 "$_p" 2>/dev/null
	done
	for _n in $NS_LIST; do
		ip netns del "$_n" 2>/dev/null
	done
	if [ -n "${NS_TMP:-}" ] && [ -z "${KEEP:-}" ]; then
		rm -rf "$NS_TMP"
	fi
	exit $_rc
}

ns_init() {
	[ "$(id -u)" = 0 ] || fail "namespace tests need root"
	ns_need ip
	NS_LIST=""
	NS_PIDS=""
	NS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshwan-ns.XXXXXX") || fail "mktemp"
	trap ns_cleanup EXIT
	trap 'exit 130' INT TERM
}

ns_add() {
	ip netns add "$1" || fail "ip netns add $1"
	NS_LIST="$NS_LIST $1"
	ip -n "$1" link set lo up || fail "lo up in $1"
}

ns_veth() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" ||
		fail "veth $1/$2 <-> $3/$4"
	ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up ||
		fail "veth up"
}

ns_bg() {
	_ns=$1
	shift
	ip netns exec "$_ns" "$@" &
	NS_PID=$!
	NS_PIDS="$NS_PIDS $NS_PID"
}

ns_stop() {
	kill "$1" 2>/dev/null || return 1
	_i=0
	while kill -0 "$1" 2>/dev/null; do
		_i=$((_i + 1))
		if [ $_i -gt 100 ]; then
			kill -9 "$1" 2>/dev/null
			wait "$1" 2>/dev/null
			return 1
		fi
		sleep 0.1
	done
	wait "$1"
}

# The last try starts at or after the deadline: a check that takes seconds
# on a loaded host (tshark, vtysh, an ASan daemon's reply) must not fail
# because its previous try began just before the condition came true.
wait_until() {
	_deadline=$(( $(date +%s) + $1 ))
	shift
	while :; do
		_late=0
		[ "$(date +%s)" -ge "$_deadline" ] && _late=1
		"$@" >/dev/null 2>&1 && return 0
		[ $_late = 1 ] && return 1
		sleep 0.1
	done
}
