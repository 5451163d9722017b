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
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
_topo_default=/work/shared/netlab/topo.sh
[[ -f "$ROOT/../shared/netlab/topo.sh" ]] && _topo_default="$ROOT/../shared/netlab/topo.sh"
TOPO=${NETLAB_TOPO:-$_topo_default}
export NETLAB_PREFIX=${NETLAB_PREFIX:-tf$$}
export NETLAB_QUIET=1
RESULTS=${NETLAB_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/call_tcpfallback.XXXXXX")}
mkdir -p "$RESULTS"
SRV1=203.0.113.10
SRV2=203.0.113.11
ALLOW=198.51.100.0/24,203.0.113.0/24
bail() { echo "call_tcpfallback.sh: $*" >&2; echo "0 passed, 1 failed"; exit 2; }
[ "$(id -u)" = 0 ] || bail "must run as root"
[ -x "$TOPO" ] || bail "no netlab at $TOPO"
BIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/call_tcpfallback_bin.XXXXXX")
if [ -z "${PARLEY:-}" ]; then
  PARLEY="$ROOT/.build/debug/parley"
  [ -x "$PARLEY" ] || (cd "$ROOT" && swift build --product parley >"$RESULTS/build.log" 2>&1)
fi
cp "$PARLEY" "$BIN_DIR/parley" || bail "no parley binary at $PARLEY"
PARLEY=$BIN_DIR/parley
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; "$TOPO" down >/dev/null 2>&1; rm -rf "$BIN_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1: $2"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2 (see $RESULTS)"; }

umask 077
for acct in alice.phone bob.phone; do
  mkdir -p "$RESULTS/keys/$acct"
  "$PARLEY" keygen --out "$RESULTS/keys/$acct/device.key" >"$RESULTS/keys/$acct/device.pub" 2>/dev/null || bail "keygen failed"
done
for acct in alice.phone bob.phone; do echo "$acct = $(cat "$RESULTS/keys/$acct/device.pub")"; done >"$RESULTS/accounts.conf"
printf 'turnpass1' >"$RESULTS/turn-password"
printf 'turnpass1' | "$PARLEY" turn-user caller --realm parley >"$RESULTS/turn-users" 2>/dev/null
umask 022

echo "# a call from a UDP-hostile network (prefix $NETLAB_PREFIX, results in $RESULTS)"
"$TOPO" up port-restricted none >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
"$TOPO" exec a iptables -A OUTPUT -p udp -j DROP >"$RESULTS/iptables.log" 2>&1 || bail "cannot block UDP in A ($(cat "$RESULTS/iptables.log"))"
"$TOPO" env >"$RESULTS/topo-env.txt" 2>&1
A_IP=$(sed -n 's/^A_IP=//p' "$RESULTS/topo-env.txt")
A_WAN=$(sed -n 's/^A_WAN=//p' "$RESULTS/topo-env.txt")
[ -n "$A_WAN" ] || A_WAN=198.51.100.2
"$TOPO" exec srv "$PARLEY" serve --http-listen 127.0.0.1 --http-port 0 --ready-file "$RESULTS/ready" \
  --signal-listen "$SRV1" --signal-port 7000 --store-path "$RESULTS/parley.sqlite" --signal-accounts-file "$RESULTS/accounts.conf" \
  --stun-listen "$SRV1" --stun-port 3478 --stun-alternate-address "$SRV2" --stun-alternate-port 3479 \
  --turn-enabled yes --turn-relay-ipv4 "$SRV1" --turn-users-file "$RESULTS/turn-users" --turn-allow-peers "$ALLOW" \
  >"$RESULTS/serve.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do grep -q '^signal_tcp=' "$RESULTS/ready" 2>/dev/null && break; sleep 0.1; done
grep -q '^signal_tcp=' "$RESULTS/ready" 2>/dev/null || bail "server did not start"
common=(--server "$SRV1:7000" --stun "$SRV1:3478" --turn "$SRV1:3478" --turn-user caller
        --turn-password-file "$RESULTS/turn-password" --trace-media)
"$TOPO" exec b timeout -k 5 60 stdbuf -oL "$PARLEY" answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
  --key "$RESULTS/keys/bob.phone/device.key" --user bob --device phone "${common[@]}" >"$RESULTS/bob.out" 2>"$RESULTS/bob.err" &
bob=$!; PIDS+=($bob)
for _ in $(seq 1 100); do grep -q '^waiting for a call' "$RESULTS/bob.out" 2>/dev/null && break; sleep 0.1; done
"$TOPO" exec a timeout -k 5 60 stdbuf -oL "$PARLEY" call bob --timeout 30 --hold 3 --tone 440 \
  --key "$RESULTS/keys/alice.phone/device.key" --user alice --device phone "${common[@]}" >"$RESULTS/alice.out" 2>"$RESULTS/alice.err"
wait "$bob"
"$TOPO" exec nat-a conntrack -L >"$RESULTS/conntrack-a.txt" 2>/dev/null

played() { sed -n 's/.*played \([0-9]*\) frames.*/\1/p' "$1" | tail -1; }
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
