#!/usr/bin/env bash
# tests/netlab/call_tcpfallback.sh - calls from networks that drop UDP (docs/PROTOCOL.md §6.1): the client
# gets no answer from the TURN server over UDP, opens TCP to it after 600 ms, relays over TCP, and the call
# works; then from a network that also drops TCP to port 3478 (only TLS passes): after 1.2 s the client
# reaches the TURN server over TLS on 5349 (the server's certificate, with its IP address, is trusted via
# --turn-ca) and the call works again.
#
#   tests/netlab/call_tcpfallback.sh
#
# Lab `port-restricted none`; in A's namespace `iptables -A OUTPUT -p udp -j DROP` (a UDP-hostile
# network). `parley serve` with signaling, STUN and TURN (UDP and TCP on 3478) in the server namespace.
# alice (A) calls bob (B) with --turn. Checks: audio both ways with the same SAS; alice's trace shows the
# TCP fallback and the allocation over TCP; bob's media went to alice's relay. Then over TLS: the connection
# reset mid-call (`ss -K`), and the connection silently blackholed mid-call: audio recovers both times. Needs root.
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
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$SRV1" \
  -addext "subjectAltName=IP:$SRV1" -keyout "$RESULTS/key.pem" -out "$RESULTS/cert.pem" >"$RESULTS/openssl.txt" 2>&1 \
  || bail "openssl failed"
start_server "$RESULTS" --stun-tls-certificate "$RESULTS/cert.pem" --stun-tls-private-key "$RESULTS/key.pem" \
  --stun-tls-port 5349 || bail "server did not start ($(tail -n 1 "$RESULTS/serve.log"))"
common=(--stun "$SRV1:3478" --turn "$SRV1:3478" --turn-tls-port 5349 --turn-ca "$RESULTS/cert.pem")
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
if grep -q "^media: TURN: no allocation after 600 ms; trying TCP" "$RESULTS/alice.out" && grep -q "^media: TURN: relayed .* over TCP" "$RESULTS/alice.out"; then
  pass "TCP fallback" "$(grep -m1 '^media: TURN: relayed' "$RESULTS/alice.out" | cut -c8-140)"
else
  fail "TCP fallback" "alice's trace: $(grep -m2 '^media: TURN' "$RESULTS/alice.out" | tr '\n' ';')"
fi
if grep -q '^final path: relay' "$RESULTS/bob.out"; then
  pass "relayed" "bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out" | cut -c1-100)"
else
  fail "relayed" "bob's final path: $(sed -n 's/^final path: //p' "$RESULTS/bob.out")"
fi

# The same call when TCP to 3478 is dropped too: only TLS (5349) gets through.
"$TOPO" exec a iptables -A OUTPUT -p tcp --dport 3478 -j DROP >>"$RESULTS/iptables.log" 2>&1 || bail "cannot block TCP 3478 in A"
client b bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
  "${common[@]}" >"$RESULTS/bob-tls.out" 2>"$RESULTS/bob-tls.err" &
bob=$!; PIDS+=($bob)
wait_for_callee "$RESULTS/bob-tls.out"
client a alice.phone call bob --timeout 30 --hold 3 --tone 440 \
  "${common[@]}" >"$RESULTS/alice-tls.out" 2>"$RESULTS/alice-tls.err"
wait "$bob"
pa=$(played "$RESULTS/alice-tls.out"); pb=$(played "$RESULTS/bob-tls.out")
if [ "${pa:-0}" -ge 100 ] && [ "${pb:-0}" -ge 100 ]; then
  pass "call over a TLS relay" "audio both ways (${pa}/${pb} frames); $(grep -m1 '^media: TURN: relayed' "$RESULTS/alice-tls.out" | cut -c8-130)"
else
  fail "call over a TLS relay" "played ${pa:-0}/${pb:-0}; alice's trace: $(grep '^media: TURN' "$RESULTS/alice-tls.out" | tr '\n' ';' | cut -c1-300)"
fi
grep -q "^media: TURN: relayed .* over TLS" "$RESULTS/alice-tls.out" \
  && pass "TLS fallback" "after UDP and TCP got nothing: $(grep -m1 '^media: TURN: no allocation after 1200' "$RESULTS/alice-tls.out" | cut -c8-100)" \
  || fail "TLS fallback" "no allocation over TLS in alice's trace"

# An 8 s call relayed over TLS; 3 s into the audio the connection carrying the allocation is disrupted by
# "$2..." (run in this shell). Checks: alice's trace shows NOTE, a replacement allocation, and at most 2 s of
# audio missing each way (8 s is 400 frames; >= 290 played, start-up included).
disrupted_call() { # tag check-name note disruption...
  local tag=$1 check=$2 note=$3 pa pb
  shift 3
  client b bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 \
    "${common[@]}" >"$RESULTS/bob-$tag.out" 2>"$RESULTS/bob-$tag.err" &
  bob=$!; PIDS+=($bob)
  wait_for_callee "$RESULTS/bob-$tag.out"
  client a alice.phone call bob --timeout 30 --hold 8 --tone 440 \
    "${common[@]}" >"$RESULTS/alice-$tag.out" 2>"$RESULTS/alice-$tag.err" &
  alice=$!; PIDS+=($alice)
  for _ in $(seq 1 200); do grep -q '^first audio decrypted' "$RESULTS/alice-$tag.out" 2>/dev/null && break; sleep 0.05; done
  sleep 3
  "$@"
  wait "$alice"; wait "$bob"
  pa=$(played "$RESULTS/alice-$tag.out"); pb=$(played "$RESULTS/bob-$tag.out")
  if grep -q "$note" "$RESULTS/alice-$tag.out" && grep -q "^media: TURN: relayed .* (replacing " "$RESULTS/alice-$tag.out" \
     && [ "${pa:-0}" -ge 290 ] && [ "${pb:-0}" -ge 290 ]; then
    pass "$check" "audio both ways (${pa}/${pb} of ~400 frames); $(grep -m1 '(replacing ' "$RESULTS/alice-$tag.out" | cut -c8-140)"
  else
    fail "$check" "played ${pa:-0}/${pb:-0} (want >= 290 each); alice's trace: $(grep '^media: TURN' "$RESULTS/alice-$tag.out" | tr '\n' ';' | cut -c1-500)"
  fi
}

# Torn down (`ss -K` in A, as a middlebox reset would): the client connects again, allocates again and
# trickles the new relayed address; B follows.
reset_tls() { "$TOPO" exec a ss -K dst "$SRV1" dport = 5349 >"$RESULTS/ss-kill.txt" 2>&1; }
disrupted_call reset "TLS connection reset mid-call" "carrying our allocation closed; connecting again" reset_tls

# Silent without closing (a NAT or firewall on the way forgot it: A's namespace drops both directions of that
# one connection). TCP alone would notice only after minutes; the client notices the relay's silence, gets no
# answer to its Refresh probe, closes the connection itself and connects again (a new source port, which the
# rules do not match).
blackhole_tls() {
  local lport
  lport=$("$TOPO" exec a ss -Htn state established dst "$SRV1" dport = 5349 2>/dev/null | awk '{ n = split($3, a, ":"); print a[n]; exit }')
  echo "blackholed local port ${lport:-none}" >>"$RESULTS/iptables.log"
  [ -n "$lport" ] || return 0
  "$TOPO" exec a iptables -A OUTPUT -p tcp -d "$SRV1" --dport 5349 --sport "$lport" -j DROP >>"$RESULTS/iptables.log" 2>&1
  "$TOPO" exec a iptables -A INPUT -p tcp -s "$SRV1" --sport 5349 --dport "$lport" -j DROP >>"$RESULTS/iptables.log" 2>&1
}
disrupted_call silent "TLS connection silent mid-call" "carries nothing; closing it" blackhole_tls
echo "raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
