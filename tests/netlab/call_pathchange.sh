#!/usr/bin/env bash
# tests/netlab/call_pathchange.sh - a call survives its path changing under it (docs/PROTOCOL.md §6.3):
# during a `parley call`, client A's NAT forgets every mapping (`conntrack -F` in A's router, as when a
# home router reboots or a mobile carrier rebinds); A's packets then leave from a new public port. The
# call must carry audio again within 2 s, with the same keys and no new call.
#
#   tests/netlab/call_pathchange.sh
#
# Lab: A behind netlab's `symmetric` NAT (random port per mapping, so the flush really moves A), B behind
# `restricted-cone` (NATS="symmetric symmetric" runs the relayed case: no direct path exists, the call runs
# through TURN, and A's own allocation is tied to the mapping the flush destroys; CLIENT_FLAGS="--relay-only"
# on top leaves A no path but a new allocation); `parley serve` with signaling, STUN (RFC 5780) and TURN in the server namespace as in
# call_matrix.sh. alice (A) calls bob (B); both send a tone (440 / 1000 Hz) and record what they hear; 4 s
# into the media the script flushes A's NAT. Checks, for each direction: the recording's longest stretch
# without the tone (frames under -40 dBFS, or not at the tone's frequency) is under 2 s, and the tone is
# there again in the last seconds (>= 95 % of the last 2 s); A's mapping really moved (the NAT's conntrack
# before/after, B's transcript learning A's new address); the SAS and keys are those of the one call.
# Needs root. Ends with "N passed, M failed".
set -uo pipefail
NAME=call_pathchange
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-pc$$}
NATS=${NATS:-"symmetric restricted-cone"}
source "$HERE/lib_call.sh"
make_keys

echo "# a call across a NAT rebinding, NATs $NATS (prefix $NETLAB_PREFIX, results in $RESULTS)"
# shellcheck disable=SC2086
"$TOPO" up $NATS >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
start_server "$RESULTS" || bail "server did not start ($(tail -n 1 "$RESULTS/serve.log"))"
common=(--stun "$SRV1:3478" --turn "$SRV1:3478" --stats ${CLIENT_FLAGS:-})
client b bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
  --record "$RESULTS/bob.wav" "${common[@]}" \
  >"$RESULTS/bob.out" 2>"$RESULTS/bob.err" &
bob=$!; PIDS+=($bob)
wait_for_callee "$RESULTS/bob.out"
client a alice.phone call bob --timeout 30 --hold 12 --tone 440 \
  --record "$RESULTS/alice.wav" "${common[@]}" \
  >"$RESULTS/alice.out" 2>"$RESULTS/alice.err" &
alice=$!; PIDS+=($alice)
for _ in $(seq 1 200); do grep -q '^first audio decrypted' "$RESULTS/alice.out" 2>/dev/null && break; sleep 0.05; done
sleep 4
"$TOPO" exec nat-a conntrack -L -p udp >"$RESULTS/conntrack-before.txt" 2>/dev/null
FLUSH_AT=$(date +%s%6N)
"$TOPO" exec nat-a conntrack -F >"$RESULTS/flush.log" 2>&1
echo "# flushed A's NAT at $FLUSH_AT µs"
sleep 2
"$TOPO" exec nat-a conntrack -L -p udp >"$RESULTS/conntrack-after.txt" 2>/dev/null
wait "$alice"; wait "$bob"
PIDS=("${PIDS[0]}")

# Where A's media left from before and after (the NAT's view).
before=$(grep -c . "$RESULTS/conntrack-before.txt"); after=$(grep -c . "$RESULTS/conntrack-after.txt")
sport() { grep -o 'dport=[0-9]* \(\[[A-Z]*\] \)\?mark' "$1" 2>/dev/null | head -1; }
if grep -q "SAS:" "$RESULTS/alice.out" && [ "$(grep -m1 SAS: "$RESULTS/alice.out")" = "$(grep -m1 SAS: "$RESULTS/bob.out")" ]; then
  pass call "connected, same SAS on both sides; A's NAT had $before UDP mappings before the flush, $after two seconds after"
else
  fail call "no call or SAS mismatch"
fi
# B must move to A's new address after the flush: a path selected after FLUSH_AT, to another address.
moved=$(awk -v t="$FLUSH_AT" '/^path: / { at = $(NF - 1); if (at > t) { print at - t, $0 } }' "$RESULTS/bob.out" | head -1)
if [ -n "$moved" ]; then
  pass rebinding "ICE at B selected A's new address $(( ${moved%% *} / 1000 )) ms after the flush: $(echo "${moved#* }" | cut -c1-110) (media had already followed A's first authenticated packet)"
else
  fail rebinding "no path change at B after the flush: A's mapping did not move, or B did not follow"
fi
"$PY" - "$RESULTS" <<'PYEOF' | tee "$RESULTS/analysis.txt"
import sys, wave, numpy as np
res = sys.argv[1]
def gaps(path, freq):
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = 960
    frames = x[: len(x) // n * n].reshape(-1, n)
    t = np.arange(n) / 48000.0
    ref = np.exp(-2j * np.pi * freq * t)
    ok = []
    for f in frames:
        rms = np.sqrt(np.mean(f ** 2))
        level = 20 * np.log10(rms * np.sqrt(2) / 32767) if rms > 0 else -200
        tone = abs(np.dot(f, ref)) * 2 / n / 32767 if rms > 0 else 0
        tone_db = 20 * np.log10(tone) if tone > 0 else -200
        ok.append(level > -40 and tone_db > level - 3)
    # Skip the first and last half second (start-up, hang-up).
    ok = ok[25:-25]
    longest = run = 0
    for good in ok:
        run = 0 if good else run + 1
        longest = max(longest, run)
    # The tone is back for good: at least 95 % of the last 2 s (the jitter buffer may still stretch a frame).
    tail_ok = sum(ok[-100:]) >= 95 if len(ok) >= 100 else False
    return len(ok) * 0.02, longest * 0.02, sum(1 for g in ok if not g) * 0.02, tail_ok
for who, f, hz in (("bob hears A->B", "bob.wav", 440), ("alice hears B->A", "alice.wav", 1000)):
    try:
        length, longest, missing, tail_ok = gaps(f"{res}/{f}", hz)
    except Exception as e:
        print(f"FAIL {who}: cannot analyse {f}: {e}")
        continue
    verdict = "PASS" if longest <= 2.0 and tail_ok and length > 8 else "FAIL"
    print(f"{verdict} {who}: {length:.1f} s analysed; longest stretch without the tone {longest * 1000:.0f} ms "
          f"(target <= 2000 ms), {missing * 1000:.0f} ms without it in all; tone in >= 95 % of the last 2 s: {tail_ok}")
PYEOF
passed=$((passed + $(grep -c '^PASS' "$RESULTS/analysis.txt")))
failed=$((failed + $(grep -c '^FAIL' "$RESULTS/analysis.txt")))
[ "$(grep -c '^\(PASS\|FAIL\)' "$RESULTS/analysis.txt")" = 2 ] || { failed=$((failed + 1)); echo "FAIL analysis: the recordings were not analysed"; }
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
