#!/bin/sh
# agent_keygrep.sh NS_TMP FILE... — fail (exit 1) when any secret of the
# sites under NS_TMP/e*/state (epoch private keys, derived SA keys; listed
# by agent_keys) appears in FILE..., as hex (either case) or base64.
# Not a test by itself: called by tests/edge/agent_*.sh.
top=$1; shift
tool="$MESHWAN_TOP/${SAN:-build-san}/tests/edge/agent_keys"
[ -x "$tool" ] || { echo "missing $tool" >&2; exit 2; }
n=0
for st in "$top"/e*/state; do
	"$tool" "$st" >>"$top/secrets.txt" || { echo "agent_keys $st failed" >&2; exit 2; }
done
while read -r kind a b c d; do
	case "$kind" in
	own) hex=$a ;;
	sa) hex=$d ;;
	*) continue ;;
	esac
	n=$((n + 1))
	b64=$(printf '%s' "$hex" | xxd -r -p | base64 -w0)
	for f in "$@"; do
		[ -f "$f" ] || continue
		if grep -qiF "$hex" "$f" || grep -qF "$b64" "$f"; then
			echo "secret ($kind) found in $f" >&2
			exit 1
		fi
	done
done <"$top/secrets.txt"
[ "$n" -gt 0 ] || { echo "no secrets listed: nothing was checked" >&2; exit 1; }
echo "checked $n secrets in $# files: none found"
