#!/usr/bin/env bash
# tests/netlab/call_privacy.sh - the privacy switch (docs/PROTOCOL.md §6.4): with `--relay-only`, no
# address of the caller's machine or network reaches the callee, and the call still works.
#
#   tests/netlab/call_privacy.sh
#
# Lab: A (alice, caller, --relay-only) behind `port-restricted`, B (bob) with a public address (`none`), so
# a direct path would be easy — and must not be used. `parley serve` with signaling, STUN and TURN in the
# server namespace as in call_matrix.sh. Checks: audio both ways with the same SAS; bob's whole transcript
# (with --trace-media: every candidate learned, every path, every address media went to) never names A's
# private address or A's NAT's public address; A's NAT (conntrack) only ever carried flows to the server's
# addresses, none to B; bob's final path ends at the relay. Needs root. Ends with "N passed, M failed".
set -uo pipefail
NAME=call_privacy
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-pv$$}
source "$HERE/lib_call.sh"
make_keys

echo "# relay-only call (prefix $NETLAB_PREFIX, results in $RESULTS)"
"$TOPO" up port-restricted none >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
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
client a alice.phone call bob --timeout 30 --hold 3 --tone 440 --relay-only \
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
leaks=$(grep -c -F -e "$A_WAN" -e "${A_IP:-10.0.1.2}" "$RESULTS/bob.out")
if [ "$leaks" = 0 ]; then
  pass "bob never sees alice's addresses" "neither $A_IP nor $A_WAN in bob's $(grep -c . "$RESULTS/bob.out")-line transcript; bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out" | cut -c1-90)"
else
  fail "bob never sees alice's addresses" "$leaks lines of bob's transcript name $A_IP or $A_WAN: $(grep -F -e "$A_WAN" -e "$A_IP" "$RESULTS/bob.out" | head -2 | tr '\n' ';')"
fi
peers=$(grep -o 'dst=[0-9.]*' "$RESULTS/conntrack-a.txt" | sort -u | grep -v -e "dst=$SRV1\$" -e "dst=$SRV2\$" -e "dst=$A_WAN\$" -e "dst=${A_IP}\$" | tr '\n' ' ')
if [ -s "$RESULTS/conntrack-a.txt" ] && [ -z "$peers" ]; then
  pass "A's NAT only talked to the server" "$(grep -c . "$RESULTS/conntrack-a.txt") flows, all to $SRV1/$SRV2"
else
  fail "A's NAT only talked to the server" "other destinations: ${peers:-none recorded}"
fi
if grep -q '^final path: relay' "$RESULTS/bob.out"; then
  pass "relayed" "bob's media went to alice's relay"
else
  fail "relayed" "bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out")"
fi
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
