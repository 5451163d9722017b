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
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
_topo_default=/work/shared/netlab/topo.sh
[[ -f "$ROOT/../shared/netlab/topo.sh" ]] && _topo_default="$ROOT/../shared/netlab/topo.sh"
TOPO=${NETLAB_TOPO:-$_topo_default}
export NETLAB_PREFIX=${NETLAB_PREFIX:-pv$$}
export NETLAB_QUIET=1
RESULTS=${NETLAB_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/call_privacy.XXXXXX")}
mkdir -p "$RESULTS"
SRV1=203.0.113.10
SRV2=203.0.113.11
ALLOW=198.51.100.0/24,203.0.113.0/24
bail() { echo "call_privacy.sh: $*" >&2; echo "0 passed, 1 failed"; exit 2; }
[ "$(id -u)" = 0 ] || bail "must run as root"
[ -x "$TOPO" ] || bail "no netlab at $TOPO"
BIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/call_privacy_bin.XXXXXX")
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

echo "# relay-only call (prefix $NETLAB_PREFIX, results in $RESULTS)"
"$TOPO" up port-restricted none >"$RESULTS/topo-up.log" 2>&1 || bail "topo.sh up failed"
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
"$TOPO" exec a timeout -k 5 60 stdbuf -oL "$PARLEY" call bob --timeout 30 --hold 3 --tone 440 --relay-only \
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
