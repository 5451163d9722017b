#!/usr/bin/env bash
# tests/netlab/call_turnchoice.sh - with several TURN servers configured, a client keeps the one with the
# lowest round-trip time (docs/PROTOCOL.md §6.1): it allocates on all of them at once, keeps the first
# allocation that completes (two round trips: the 401 challenge and the authenticated Allocate) and
# releases the others.
#
#   tests/netlab/call_turnchoice.sh
#
# Lab `none none`: the main `parley serve` (signaling, STUN, TURN) in the server namespace on 203.0.113.10,
# and a second TURN server in site B's namespace on B's public address, whose uplink gets 100 ms of delay.
# alice (site A) is given the slow server first: `--turn B:3478 --turn 203.0.113.10:3478`; she calls bob.
# Checks: the call works; alice kept 203.0.113.10 and released the other (her trace names the allocation
# kept and its time); the slow server holds no allocation afterwards (/metrics), though it made one.
# Needs root. Ends with "N passed, M failed".
set -uo pipefail
NAME=call_turnchoice
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-tc$$}
source "$HERE/lib_call.sh"
make_keys

echo "# choosing the fastest of two TURN servers (prefix $NETLAB_PREFIX, results in $RESULTS)"
"$TOPO" up none none >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
"$TOPO" env >"$RESULTS/topo-env.txt" 2>&1
A_IP=$(sed -n 's/^A_IP=//p' "$RESULTS/topo-env.txt"); B_IP=$(sed -n 's/^B_IP=//p' "$RESULTS/topo-env.txt")
[ -n "$B_IP" ] || bail "no B address"
start_server "$RESULTS" || bail "server did not start ($(tail -n 1 "$RESULTS/serve.log"))"
"$TOPO" exec b "$PARLEY" serve --signal-enabled no --http-listen 127.0.0.1 --http-port 0 --ready-file "$RESULTS/ready-b" \
  --stun-listen "$B_IP" --stun-port 3478 --stun-tcp no \
  --turn-enabled yes --turn-relay-ipv4 "$B_IP" --turn-users-file "$RESULTS/turn-users" --turn-allow-peers "$ALLOW" \
  --log-stderr yes --log-level debug >"$RESULTS/serve-b.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q '^stun_udp=' "$RESULTS/ready-b" 2>/dev/null && break; sleep 0.1; done
grep -q '^stun_udp=' "$RESULTS/ready-b" 2>/dev/null || bail "the second server did not start ($(tail -1 "$RESULTS/serve-b.log"))"
"$TOPO" impair b delay=100ms dir=up >"$RESULTS/impair.log" 2>&1 || bail "impair failed"
client b bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
  --media-bind "$B_IP" --turn "$SRV1:3478" \
  >"$RESULTS/bob.out" 2>"$RESULTS/bob.err" &
bob=$!; PIDS+=($bob)
wait_for_callee "$RESULTS/bob.out"
client a alice.phone call bob --timeout 30 --hold 2 --tone 440 --media-bind "$A_IP" \
  --turn "$B_IP:3478" --turn "$SRV1:3478" \
  >"$RESULTS/alice.out" 2>"$RESULTS/alice.err"
wait "$bob"
sleep 1

pa=$(played "$RESULTS/alice.out"); pb=$(played "$RESULTS/bob.out")
if [ "${pa:-0}" -ge 60 ] && [ "${pb:-0}" -ge 60 ]; then pass call "audio both ways (${pa}/${pb} frames)"; else fail call "played ${pa:-0}/${pb:-0}"; fi
kept=$(sed -n 's/^media: TURN: relayed \(.*\)$/\1/p' "$RESULTS/alice.out" | head -1)
if grep -q "^media: TURN: relayed .* via .*$SRV1.*:3478" "$RESULTS/alice.out"; then
  pass "fastest kept" "alice kept $SRV1 (given second; $B_IP is 200 ms further away): $kept"
else
  fail "fastest kept" "alice kept: ${kept:-nothing}"
fi
HTTP_B=$(sed -n 's/^http=//p' "$RESULTS/ready-b")
"$TOPO" exec b python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$HTTP_B/metrics').read().decode())" \
  >"$RESULTS/metrics-b.txt" 2>&1
metric() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }' "$RESULTS/metrics-b.txt"; }
created=$(metric parley_turn_allocations_created_total); held=$(metric parley_turn_allocations)
if ! grep -q "^media: TURN: relayed .* via .*$B_IP" "$RESULTS/alice.out" && [ "$held" = 0 ]; then
  pass "slow one released" "alice never used $B_IP; that server made $created allocation(s) and holds $held now (released with LIFETIME 0 once it completed)"
else
  fail "slow one released" "alice's trace or the slow server: created $created, held $held"
fi
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
