#!/usr/bin/env bash
# tests/netlab/call_matrix.sh - a real `parley call` between client A and client B behind every pair of
# netlab's seven NAT types (docs/PROTOCOL.md §6): does the call connect and carry audio both ways, which
# path did ICE end on (direct, predicted or relay), and how long from accept to first audio.
#
#   tests/netlab/call_matrix.sh                # the CI set (PAIRS below)
#   PAIRS=all tests/netlab/call_matrix.sh      # all 49 ordered pairs (about 8 minutes)
#   PAIRS="port-restricted:symmetric none:none" tests/netlab/call_matrix.sh
#
# For each pair: `topo.sh up NAT_A NAT_B` (a fresh lab), `parley serve` in the server namespace with
# signaling, STUN with RFC 5780 on 203.0.113.10/.11 (so clients can predict sequential symmetric NATs)
# and TURN (a static user) relaying on 203.0.113.10; alice (site A) calls bob (site B) with
# --stun and --turn; bob accepts after 1 s of ringing; both send a tone for 3 s. The keys stay the same
# across pairs, so from the second pair on the two are known contacts (the normal case).
# A pair passes when both sides decrypted audio (>= 100 frames played each way) with the same SAS.
# Paths: "direct" (host/srflx/prflx pairs), "predicted" (a predicted candidate won), "relay" (via TURN).
# The path is the pair ICE had selected on each side at hang-up; setup = first audio decrypted − accepted.
# Needs root. Ends with "N passed, M failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-cm$$}
TYPES=(none full-cone restricted-cone port-restricted symmetric symmetric-sequential masquerade)
PAIRS=${PAIRS:-"none:none full-cone:port-restricted port-restricted:port-restricted port-restricted:symmetric symmetric-sequential:port-restricted symmetric:symmetric"}
if [ "$PAIRS" = all ]; then
  PAIRS=""
  for a in "${TYPES[@]}"; do for b in "${TYPES[@]}"; do PAIRS="$PAIRS $a:$b"; done; done
fi
SIGNAL_PORT=7000

NAME=call_matrix
source "$HERE/lib_call.sh"

# Keys, accounts, TURN user caller/turnpass1 (the same for every pair).
make_keys
KEYS=$RESULTS/keys

echo "# parley calls between NAT types in netlab (prefix $NETLAB_PREFIX, results in $RESULTS)"
printf '| A (caller) \\ B (callee) | result | path (caller) | path (callee) | setup caller ms | setup callee ms |\n|---|---|---|---|---|---|\n' >"$RESULTS/table.md"

for pair in $PAIRS; do
  nat_a=${pair%%:*}; nat_b=${pair#*:}
  dir="$RESULTS/$nat_a--$nat_b"
  mkdir -p "$dir"
  if ! "$TOPO" up "$nat_a" "$nat_b" >"$dir/topo-up.log" 2>&1; then
    fail "$pair" "topo.sh up failed" "$dir/topo-up.log"; continue
  fi
  rm -f "$dir/ready"
  "$TOPO" exec srv "$PARLEY" serve --http-listen 127.0.0.1 --http-port 0 --ready-file "$dir/ready" \
    --signal-listen "$SRV1" --signal-port "$SIGNAL_PORT" --store-path "$dir/parley.sqlite" \
    --signal-accounts-file "$RESULTS/accounts.conf" \
    --stun-listen "$SRV1" --stun-port 3478 --stun-alternate-address "$SRV2" --stun-alternate-port 3479 \
    --turn-enabled yes --turn-relay-ipv4 "$SRV1" --turn-users-file "$RESULTS/turn-users" --turn-allow-peers "$ALLOW" \
    >"$dir/serve.log" 2>&1 &
  server=$!
  PIDS=("$server")
  for _ in $(seq 1 300); do grep -q '^signal_tcp=' "$dir/ready" 2>/dev/null && break; kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  if ! grep -q '^signal_tcp=' "$dir/ready" 2>/dev/null; then
    fail "$pair" "server did not start" "$dir/serve.log"; kill "$server" 2>/dev/null; continue
  fi
  # --no-nat-cache: the lab gives a site the same public address whatever NAT type it builds, so a
  # behaviour cached (by public address) in one pair would be wrong in the next; real networks keep theirs.
  common=(--server "$SRV1:$SIGNAL_PORT" --stun "$SRV1:3478" --turn "$SRV1:3478" --turn-user caller
          --turn-password-file "$RESULTS/turn-password" --trace-media --no-nat-cache)
  "$TOPO" exec b timeout -k 5 60 stdbuf -oL "$PARLEY" answer --auto --ring-for 1 --timeout 40 --tone 1000 \
    --key "$KEYS/bob.phone/device.key" --user bob --device phone "${common[@]}" >"$dir/bob.out" 2>"$dir/bob.err" &
  bob=$!
  PIDS+=("$bob")
  for _ in $(seq 1 100); do grep -q '^waiting for a call' "$dir/bob.out" 2>/dev/null && break; sleep 0.1; done
  "$TOPO" exec a timeout -k 5 60 stdbuf -oL "$PARLEY" call bob --timeout 30 --hold 3 --tone 440 \
    --key "$KEYS/alice.phone/device.key" --user alice --device phone "${common[@]}" >"$dir/alice.out" 2>"$dir/alice.err"
  wait "$bob"
  kill "$server" 2>/dev/null; wait "$server" 2>/dev/null
  PIDS=()
  # The transcript: frames played, SAS, path, setup.
  played() { sed -n 's/.*played \([0-9]*\) frames.*/\1/p' "$1" | tail -1; }
  path() { sed -n 's/^final path: \([a-z]*\) .*/\1/p' "$1" | tail -1; }
  first() { sed -n 's/^first audio decrypted at \([0-9]*\) µs/\1/p' "$1" | head -1; }
  accepted=$(sed -n 's/^accepted at \([0-9]*\) µs/\1/p' "$dir/bob.out" | head -1)
  pa=$(played "$dir/alice.out"); pb=$(played "$dir/bob.out")
  sa=$(grep -m1 'SAS:' "$dir/alice.out"); sb=$(grep -m1 'SAS:' "$dir/bob.out")
  fa=$(first "$dir/alice.out"); fb=$(first "$dir/bob.out")
  setup_a=$([ -n "$fa" ] && [ -n "$accepted" ] && echo $(( (fa - accepted) / 1000 )) || echo "-")
  setup_b=$([ -n "$fb" ] && [ -n "$accepted" ] && echo $(( (fb - accepted) / 1000 )) || echo "-")
  path_a=$(path "$dir/alice.out"); path_b=$(path "$dir/bob.out")
  if [ "${pa:-0}" -ge 100 ] && [ "${pb:-0}" -ge 100 ] && [ -n "$sa" ] && [ "$sa" = "$sb" ]; then
    pass "$pair" "audio both ways ($pa/$pb frames), path ${path_a:-?}/${path_b:-?}, setup ${setup_a}/${setup_b} ms"
    result=OK
  else
    fail "$pair" "played ${pa:-0}/${pb:-0} frames, SAS ${sa:+ok}/${sb:+ok}, path ${path_a:-none}/${path_b:-none}" "$dir"
    result=FAIL
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$nat_a \\ $nat_b" "$result" "${path_a:--}" "${path_b:--}" "$setup_a" "$setup_b" >>"$RESULTS/table.md"
done
"$TOPO" down >/dev/null 2>&1
echo
cat "$RESULTS/table.md"
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
