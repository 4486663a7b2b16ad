#!/bin/sh
# agent_rekey.sh — rekeys under a running flow between two sites run by
# meshwan-edge (issue 7 §4): a UDP flow with sequence numbers (iperf3)
# crosses the tunnel while
#  (a) the operator orders a rekey of the tunnel (REST), and then
#  (b) the crypto profile gets a tiny soft byte limit, so the edges
#      themselves ask for rekeys (RekeyRequest) when their outbound SAs
#      pass it.
# Checks: iperf3 counts zero lost datagrams; the tunnels' drop counters
# (no SA, auth, replay) stay 0 during the flow; each direction's SPI
# changed (a) and changed again (b); the edges logged their requests;
# after the drain only one inbound and one outbound SA are left on each
# edge.  Prints the datagrams carried and the number of rekeys.
. "$MESHWAN_TOP/tests/edge/agent_lib.sh"
ns_need iperf3

ctl_start </dev/null
site_add 1 alpha
site_add 2 beta
agent_start 1
agent_start 2
up() { status_has "$1" '.tunnels | length == 1 and .[0].state == "up"'; }
wait_until 60 up 1 || { agent_logs; fail "site 1's tunnel not up"; }
wait_until 60 up 2 || { agent_logs; fail "site 2's tunnel not up"; }
wait_until 30 lan_ping 1 2 || { agent_logs; fail "LAN 1 cannot ping LAN 2"; }
# The keying rekey's old SAs are gone (drain) before the flow starts, so
# every SA seen later belongs to this test.
one_each() { status_has "$1" '[.tunnels[0].sas[] | select(.dir == "in")] | length == 1'; }
wait_until 60 one_each 1 || fail "site 1 still drains its first SAs"
wait_until 60 one_each 2 || fail "site 2 still drains its first SAs"

out_spi() { status "$1" | jq -r '.tunnels[0].sas[] | select(.dir == "out" and .active) | .spi'; }
drops() { status "$1" | jq -r '"\(.tunnels[0].drops) \(.drops)"'; }
tid=$(status 1 | jq -r '.tunnels[0].id')
spi1_0=$(out_spi 1); spi2_0=$(out_spi 2)
drops1_0=$(drops 1); drops2_0=$(drops 2)

# One UDP flow each way (iperf3 numbers its datagrams; the server counts
# the missing ones): 1 Mbit/s of 1000-byte datagrams, 2 MB socket
# buffers (a receiver starved of CPU by a loaded machine must not count
# as a rekey loss; the tunnels' own drop counters are checked too).
ns_bg "$H2" iperf3 -s -1 -B 10.2.0.2 -p 5201 --json >"$NS_TMP/iperf-s12.json" 2>&1
ns_bg "$H1" iperf3 -s -1 -B 10.1.0.2 -p 5202 --json >"$NS_TMP/iperf-s21.json" 2>&1
wait_until 10 sh -c "ip netns exec '$H2' ss -ltn | grep -q ':5201 '" || fail "iperf3 server 2"
wait_until 10 sh -c "ip netns exec '$H1' ss -ltn | grep -q ':5202 '" || fail "iperf3 server 1"
ns_bg "$H1" iperf3 -c 10.2.0.2 -p 5201 -u -b 1M -l 1000 -w 2M -t 30 --json \
    >"$NS_TMP/iperf-c12.json" 2>&1
IPERF12=$NS_PID
ns_bg "$H2" iperf3 -c 10.1.0.2 -p 5202 -u -b 1M -l 1000 -w 2M -t 30 --json \
    >"$NS_TMP/iperf-c21.json" 2>&1
IPERF21=$NS_PID
sleep 2   # let the flow run on the first SAs (not a synchronisation)

# (a) Operator rekey of the tunnel.
st=$(api POST "/api/v1/tunnels/$tid/rekey")
[ "$st" = 202 ] || fail "rekey order gave $st: $(cat "$NS_TMP/out")"
changed() { s=$(out_spi "$1"); [ -n "$s" ] && [ "$s" != "$2" ]; }
wait_until 20 changed 1 "$spi1_0" || { agent_logs; fail "site 1's outbound SPI did not change"; }
wait_until 20 changed 2 "$spi2_0" || { agent_logs; fail "site 2's outbound SPI did not change"; }
spi1_a=$(out_spi 1); spi2_a=$(out_spi 2)
echo "operator rekey: site 1 out $spi1_0 -> $spi1_a, site 2 out $spi2_0 -> $spi2_a"

# (b) A soft byte limit of 400 kB: 1 Mbit/s crosses it every 3 s; each
# edge asks (at most once per SA), the controller rekeys (at most once
# per direction per 10 s).
st=$(api PUT /api/v1/crypto '{"rekey_bytes":400000}')
[ "$st" = 200 ] || fail "crypto change gave $st: $(cat "$NS_TMP/out")"
wait_until 30 changed 1 "$spi1_a" || { agent_logs; fail "site 1 was not rekeyed at its byte limit"; }
wait_until 30 changed 2 "$spi2_a" || { agent_logs; fail "site 2 was not rekeyed at its byte limit"; }
grep -q "soft byte limit; rekey requested" "$NS_TMP/e1/agent.log" || fail "site 1 asked for no rekey"
grep -q "soft byte limit; rekey requested" "$NS_TMP/e2/agent.log" || fail "site 2 asked for no rekey"
echo "byte-limit rekey: site 1 out now $(out_spi 1), site 2 out now $(out_spi 2)"

wait "$IPERF12" 2>/dev/null
wait "$IPERF21" 2>/dev/null
total=0
for d in 12 21; do
	jq -e '.end.sum' "$NS_TMP/iperf-c$d.json" >/dev/null ||
		fail "iperf3 client $d failed: $(cat "$NS_TMP/iperf-c$d.json")"
	wait_until 10 jq -e '.end.sum' "$NS_TMP/iperf-s$d.json" ||
		fail "iperf3 server $d: $(cat "$NS_TMP/iperf-s$d.json")"
	lost=$(jq -r '.end.sum.lost_packets' "$NS_TMP/iperf-s$d.json")
	n=$(jq -r '.end.sum.packets' "$NS_TMP/iperf-s$d.json")
	[ "$n" -gt 3000 ] || fail "flow $d: only $n datagrams carried"
	[ "$lost" = 0 ] || fail "flow $d: $lost of $n datagrams lost during the rekeys"
	total=$((total + n))
done
[ "$(drops 1)" = "$drops1_0" ] || fail "site 1 dropped: before $drops1_0, after $(drops 1)"
[ "$(drops 2)" = "$drops2_0" ] || fail "site 2 dropped: before $drops2_0, after $(drops 2)"

# No more traffic: after the drain one SA each way is left on each edge.
api PUT /api/v1/crypto '{"rekey_bytes":0}' >/dev/null
settled() { status_has "$1" '([.tunnels[0].sas[] | select(.dir == "in")] | length == 1) and ([.tunnels[0].sas[] | select(.dir == "out")] | length == 1)'; }
wait_until 60 settled 1 || { status 1; fail "site 1 kept old SAs after the drain"; }
wait_until 60 settled 2 || { status 2; fail "site 2 kept old SAs after the drain"; }
lan_ping 1 2 || fail "no ping after the rekeys"
n1=$(grep -c "switch-outbound spi" "$NS_TMP/e1/agent.log")
echo "figure: $total datagrams, 0 lost, 0 dropped, across $n1 outbound switches on site 1"

agent_stop 1
agent_stop 2
agent_check_sanitizers
echo "agent_rekey: PASS"
