#!/usr/bin/env bash
# tests/netlab/call_tcpfallback.sh - a call from a network that drops all UDP (docs/PROTOCOL.md §6.1): the
# client gets no answer from the TURN server over UDP, opens TCP to it after 600 ms, relays over TCP, and
# the call works.
#
#   tests/netlab/call_tcpfallback.sh
#
# Lab `port-restricted none`; in A's namespace `iptables -A OUTPUT -p udp -j DROP` (a UDP-hostile
# network). `parley serve` with signaling, STUN and TURN (UDP and TCP on 3478) in the server namespace.
# alice (A) calls bob (B) with --turn. Checks: audio both ways with the same SAS; alice's trace shows the
# TCP fallback and the allocation over TCP; bob's media went to alice's relay. Needs root.
set -uo pipefail
NAME=call_tcpfallback
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-tf$$}
source "$HERE/lib_call.sh"
make_keys

echo "# a call from a UDP-hostile network (prefix $NETLAB_PREFIX, results in $RESULTS)"
"$TOPO" up port-restricted none >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
"$TOPO" exec a iptables -A OUTPUT -p udp -j DROP >"$RESULTS/iptables.log" 2>&1 || bail "cannot block UDP in A ($(cat "$RESULTS/iptables.log"))"
"$TOPO" env >"$RESULTS/topo-env.txt" 2>&1
A_IP=$(sed -n 's/^A_IP=//p' "$RESULTS/topo-env.txt")
A_WAN=$(sed -n 's/^A_WAN=//p' "$RESULTS/topo-env.txt")
[ -n "$A_WAN" ] || A_WAN=198.51.100.2
start_server "$RESULTS" || bail "server did not start ($(tail -n 1 "$RESULTS/serve.log"))"
common=(--stun "$SRV1:3478" --turn "$SRV1:3478")
client b bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
  "${common[@]}" >"$RESULTS/bob.out" 2>"$RESULTS/bob.err" &
bob=$!; PIDS+=($bob)
wait_for_callee "$RESULTS/bob.out"
client a alice.phone call bob --timeout 30 --hold 3 --tone 440 \
  "${common[@]}" >"$RESULTS/alice.out" 2>"$RESULTS/alice.err"
wait "$bob"
"$TOPO" exec nat-a conntrack -L >"$RESULTS/conntrack-a.txt" 2>/dev/null

pa=$(played "$RESULTS/alice.out"); pb=$(played "$RESULTS/bob.out")
sa=$(grep -m1 SAS: "$RESULTS/alice.out"); sb=$(grep -m1 SAS: "$RESULTS/bob.out")
if [ "${pa:-0}" -ge 100 ] && [ "${pb:-0}" -ge 100 ] && [ -n "$sa" ] && [ "$sa" = "$sb" ]; then
  pass call "audio both ways (${pa}/${pb} frames), same SAS; alice offered: $(sed -n 's/.*candidates: //p' "$RESULTS/alice.out" | cut -c1-80)"
else
  fail call "played ${pa:-0}/${pb:-0}, SAS ${sa:+ok}/${sb:+ok}"
fi
if grep -q "^media: TURN: no UDP allocation" "$RESULTS/alice.out" && grep -q "^media: TURN: relayed .* over TCP" "$RESULTS/alice.out"; then
  pass "TCP fallback" "$(grep -m1 '^media: TURN: relayed' "$RESULTS/alice.out" | cut -c8-140)"
else
  fail "TCP fallback" "alice's trace: $(grep -m2 '^media: TURN' "$RESULTS/alice.out" | tr '\n' ';')"
fi
if grep -q '^final path: relay' "$RESULTS/bob.out"; then
  pass "relayed" "bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out" | cut -c1-100)"
else
  fail "relayed" "bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out")"
fi
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
