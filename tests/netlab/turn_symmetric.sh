#!/usr/bin/env bash
# tests/netlab/turn_symmetric.sh - two clients behind symmetric NATs (the pair that cannot hole-punch)
# reach each other only through `parley serve`'s TURN relay (RFC 8656), in the netlab emulated internet
# (/work/shared/netlab, see its README.md).
#
# `topo.sh up symmetric symmetric` under a private NETLAB_PREFIX; `parley serve` in the srv namespace on
# the lab's public address 203.0.113.10 (STUN/TURN 3478 UDP+TCP, RFC 5780 second address 203.0.113.11:3479
# for punch.py's two-server mapping probe), relay sockets on 203.0.113.10. The lab's public addresses are
# RFC 5737 documentation ranges, which Parley's peer policy refuses by default (403), hence
# --turn-allow-peers 198.51.100.0/24,203.0.113.0/24. Then:
#   1. aioice ICE across the sites, relay-only: A (in nl-a) and B (in nl-b) each allocate, exchange
#      candidates through a file, bind channels (which install permissions) for each other's relayed
#      address and send 50 datagrams each way - once over UDP with long-term credentials, once over
#      TCP with TURN REST credentials. The nominated pair must be relay/relay on 203.0.113.10.
#   2. netlab's tools/turn_check.py: A allocates, permits B's public IP; B sends plain UDP to A's
#      relayed address, A answers with Send indications (TURN permissions are per IP, so B's
#      symmetric mapping does not matter).
#   3. coturn's turnutils_uclient inside each client namespace (client-to-client, UDP channels in A,
#      TCP Send indications in B): TURN through a symmetric NAT, 0 loss required.
#   4. conntrack in both NAT routers: every flow the clients opened went to the server, none to the
#      other site.
#   5. netlab's tools/punch.py (STUN to 203.0.113.10:3478 and 203.0.113.11:3479 on Parley, then 2 s of
#      probes to each other's mapped/predicted address): both see an endpoint-dependent mapping and
#      receive nothing - the direct path is closed; conntrack then shows the direct flows UNREPLIED.
#   6. /metrics: relayed packets in both directions, no peer denied; the server is alive.
#
# Environment:
#   PARLEY           parley binary (default: $(swift build --show-bin-path)/parley in the repo root)
#   NETLAB_RESULTS   directory for raw outputs (default: a new mktemp -d directory)
#   NETLAB_TOPO      topo.sh (default: shared/netlab beside the checkout, else /work/shared/netlab)
#   NETLAB_PREFIX    namespace prefix (default pt<pid>, private to this run)
#
# One PASS/FAIL line per check, ends with "N passed, M failed"; exit 1 on any failure. Needs root.
# The lab is always torn down (trap); only processes this script started are killed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export NETLAB_PREFIX=${NETLAB_PREFIX:-pt$$}
A_WAN=198.51.100.2      # site A router's public address
B_WAN=198.51.100.130    # site B router's public address

NAME=turn_symmetric
source "$HERE/lib_harness.sh"
TOOLS=$(dirname "$TOPO")/tools
for tool in turnutils_uclient conntrack gcc; do
  command -v "$tool" >/dev/null 2>&1 || bail "$tool missing (scripts/setup.sh --test)"
done
"$PY" -c 'import aioice' 2>/dev/null || bail "aioice missing (scripts/setup.sh --test)"
stop_server() { [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"; SERVER_PID=""; }
start_all=$(date +%s.%N)
echo "# TURN between two symmetric NATs through parley serve in netlab (prefix $NETLAB_PREFIX, results in $RESULTS)"

# ---- credentials and the uclient channel-number shim (see tests/turn/run.sh)
umask 077
printf 'pass1' | "$PARLEY" turn-user alice --realm parley >"$RESULTS/users" 2>"$RESULTS/turn-user.txt"
REST_SECRET=rest-secret-$RANDOM$RANDOM
echo "$REST_SECRET" >"$RESULTS/secrets"
umask 022
# uclient needs the same preloaded shim as tests/turn/run.sh (channel numbers, never-reused ports).
cp "$ROOT/tests/turn/chanshim.c" "$RESULTS/chanshim.c"
gcc -shared -fPIC -O2 -o "$RESULTS/chanshim.so" "$RESULTS/chanshim.c" -ldl >"$RESULTS/gcc.txt" 2>&1

# ---- the lab and the server
t0=$(date +%s.%N)
if ! "$TOPO" up symmetric symmetric >"$RESULTS/topo-up.log" 2>&1; then
  fail lab "topo.sh up symmetric symmetric failed ($(tail -n 1 "$RESULTS/topo-up.log"))" topo-up.log
  echo "$passed passed, $failed failed"; exit 1
fi
"$TOPO" env >"$RESULTS/topo-env.txt" 2>&1
rm -f "$RESULTS/ready"
# topo.sh exec ends in `exec ip netns exec`, which execs parley: $! is the server's own pid
"$TOPO" exec srv "$PARLEY" serve --signal-enabled no --http-listen 127.0.0.1 --http-port 0 \
  --ready-file "$RESULTS/ready" --stun-listen "$SRV1" --stun-port 3478 \
  --stun-alternate-address "$SRV2" --stun-alternate-port 3479 \
  --turn-enabled yes --turn-relay-ipv4 "$SRV1" --turn-users-file "$RESULTS/users" \
  --stun-auth-secret-file "$RESULTS/secrets" --turn-allow-peers "$ALLOW" --log-stderr yes \
  >"$RESULTS/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q '^stun_tcp=' "$RESULTS/ready" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
HTTP=$(sed -n 's/^http=//p' "$RESULTS/ready" 2>/dev/null)
nat_a=$(sed -n 's/^NAT_A=//p' "$RESULTS/topo-env.txt"); nat_b=$(sed -n 's/^NAT_B=//p' "$RESULTS/topo-env.txt")
if [ -n "$HTTP" ] && [ "$nat_a/$nat_b" = symmetric/symmetric ]; then
  pass lab "sites A and B behind '$nat_a' NATs ($A_WAN, $B_WAN); parley serve on $SRV1 ($(grep '^stun_' "$RESULTS/ready" | paste -sd ' '), relay $SRV1) [$(secs "$t0") s]"
else
  fail lab "lab '$nat_a/$nat_b' or server not ready ($(tail -n 1 "$RESULTS/serve.log"))" serve.log
  echo "$passed passed, $failed failed"; exit 1
fi

metric() {  # metric NAME [LABELS]: a value from the server's /metrics (scraped inside the srv namespace)
  "$TOPO" exec srv "$PY" - "$HTTP" "$1" "${2:-}" <<'EOF'
import sys, urllib.request
port, name, labels = sys.argv[1], sys.argv[2], sys.argv[3]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
want = name + (("{" + labels + "}") if labels else "")
print(next((int(float(l.split()[-1])) for l in text.splitlines() if l.startswith(want + " ")), 0))
EOF
}

# ---- 1. aioice ICE between the sites, relay-only
ice_pair() {  # ice_pair NAME TRANSPORT USER PASS
  local name=$1 transport=$2 user=$3 password=$4 dir tag line_a line_b t
  tag=ice-$transport; dir="$RESULTS/$tag"; mkdir -p "$dir"
  t=$(date +%s.%N)
  "$TOPO" exec a timeout 40 "$PY" "$ROOT/tests/turn/aioice_turn.py" side a b "$dir" "$SRV1" 3478 "$transport" "$user" "$password" "$SRV1" \
    >"$RESULTS/$tag-a.txt" 2>&1 &
  local pa=$!
  "$TOPO" exec b timeout 40 "$PY" "$ROOT/tests/turn/aioice_turn.py" side b a "$dir" "$SRV1" 3478 "$transport" "$user" "$password" "$SRV1" \
    >"$RESULTS/$tag-b.txt" 2>&1
  wait "$pa"
  line_a=$(grep -m1 '^RESULT ' "$RESULTS/$tag-a.txt"); line_b=$(grep -m1 '^RESULT ' "$RESULTS/$tag-b.txt")
  if [[ $line_a == "RESULT ok "* && $line_b == "RESULT ok "* ]]; then
    pass "aioice ICE A<->B, $name" "A: ${line_a#RESULT ok }; B: ${line_b#RESULT ok } [$(secs "$t") s]"
  else
    fail "aioice ICE A<->B, $name" "A: ${line_a:-no result ($(tail -n 1 "$RESULTS/$tag-a.txt"))}; B: ${line_b:-no result ($(tail -n 1 "$RESULTS/$tag-b.txt"))}" "$tag-a.txt"
  fi
}
ice_pair "TURN over UDP, long-term credentials" udp alice pass1
ice_pair "TURN over TCP, REST credentials" tcp "rest:$REST_SECRET:bob" -

# ---- 2. netlab's turn_check.py: A allocates, B (plain UDP, symmetric NAT) talks to A's relayed address
t=$(date +%s.%N)
mkdir -p "$RESULTS/turn_check"
"$TOPO" exec a timeout 30 "$PY" "$TOOLS/turn_check.py" alloc --dir "$RESULTS/turn_check" --server "$SRV1:3478" \
  --user alice --password pass1 --duration 2 >"$RESULTS/turn_check-a.txt" 2>&1 &
pa=$!
"$TOPO" exec b timeout 30 "$PY" "$TOOLS/turn_check.py" peer --dir "$RESULTS/turn_check" --stun "$SRV1:3478" \
  --duration 2 >"$RESULTS/turn_check-b.txt" 2>&1
wait "$pa"
tc=$("$PY" - "$RESULTS/turn_check" <<'EOF'
import json, os, sys
d = sys.argv[1]
try:
    a = json.load(open(os.path.join(d, "alloc.turn.json")))
    b = json.load(open(os.path.join(d, "peer.turn.json")))
except Exception as exc:
    print(f"fail no result files ({exc})"); sys.exit()
ok = (a.get("permission_ok") and b.get("sent", 0) > 0 and b.get("replies") == b.get("sent")
      and a.get("data_indications") == b.get("sent")
      and all(k.startswith("198.51.100.130:") for k in a.get("peer_addrs_seen_by_relay", {})))
print(("ok " if ok else "fail ") + f"relayed {a.get('relayed')}, permission {a.get('permission_ok')}, "
      f"Data indications at A {a.get('data_indications')}, replies at B {b.get('replies')}/{b.get('sent')}, "
      f"B seen by the relay as {list(a.get('peer_addrs_seen_by_relay', {}))}{', error ' + a['error'] if 'error' in a else ''}")
EOF
)
if [[ $tc == "ok "* ]]; then pass "turn_check.py A allocates, B via A's relay" "${tc#ok } [$(secs "$t") s]"
else fail "turn_check.py A allocates, B via A's relay" "${tc#fail }" turn_check-a.txt; fi

# ---- 3. coturn turnutils_uclient inside each client namespace (client-to-client through one NAT)
t=$(date +%s.%N)
uc_site() {  # uc_site SITE ARGS...
  local site=$1; shift
  { echo "\$ turnutils_uclient $*"
    "$TOPO" exec "$site" env LD_PRELOAD="$RESULTS/chanshim.so" timeout 30 turnutils_uclient "$@"
    echo "exit=$?"; } >"$RESULTS/uclient-$site.txt" 2>&1
}
uc_site a -u alice -w pass1 -e "$SRV1" -y -c -n 10 -m 2 -l 170 "$SRV1" &
pa=$!
uc_site b -t -s -W "$REST_SECRET" -u bob -e "$SRV1" -y -c -n 10 -m 2 -l 170 "$SRV1"
wait "$pa"
for site in a b; do
  f="$RESULTS/uclient-$site.txt"
  counts=$(grep -o 'tot_send_msgs=[0-9]*, tot_recv_msgs=[0-9]*' "$f" | tail -1)
  lost=$(grep -o 'Total lost packets [0-9]*' "$f" | tail -1 | awk '{print $4}')
  sent=${counts%%,*}; sent=${sent#*=}; recv=${counts##*=}
  what=$([ $site = a ] && echo "UDP, channels, long-term" || echo "TCP, Send indications, REST")
  if grep -q '^exit=0$' "$f" && [ "${sent:-0}" = 20 ] && [ "$recv" = "$sent" ] && [ "$lost" = 0 ]; then
    pass "uclient in site ${site^^} ($what)" "sent $sent, received $recv, lost $lost [$(secs "$t") s]"
  else
    fail "uclient in site ${site^^} ($what)" "sent ${sent:-none}, received ${recv:-none}, lost ${lost:-none}, $(grep '^exit=' "$f")" "uclient-$site.txt"
  fi
done

# ---- 4. conntrack in the NAT routers: so far every flow went to the server
flows() {  # flows SITE: "proto dst [UNREPLIED]" of each conntrack entry the site's router holds
  "$TOPO" exec "nat-$1" conntrack -L 2>/dev/null | awk '{
    d = ""; for (i = 1; i <= NF; i++) if ($i ~ /^dst=/) { d = substr($i, 5); break }
    print $1, d, ($0 ~ /UNREPLIED/ ? "UNREPLIED" : "replied") }' | sort | uniq -c | awk '{$1 = $1; print}'
}
for site in a b; do
  flows "$site" >"$RESULTS/conntrack-$site-relay.txt"
  other=$([ $site = a ] && echo "$B_WAN" || echo "$A_WAN")
  if [ -s "$RESULTS/conntrack-$site-relay.txt" ] && ! grep -qv " $SRV1 \| $SRV2 " "$RESULTS/conntrack-$site-relay.txt"; then
    pass "NAT ${site^^} flows while relaying" "all to the server: $(paste -sd ',' "$RESULTS/conntrack-$site-relay.txt" | sed 's/,/, /g'); none to $other"
  else
    fail "NAT ${site^^} flows while relaying" "$(paste -sd ',' "$RESULTS/conntrack-$site-relay.txt" | sed 's/,/, /g')" "conntrack-$site-relay.txt"
  fi
done

# ---- 5. the direct path: netlab's punch.py (STUN on Parley, then probes to each other) must fail
t=$(date +%s.%N)
mkdir -p "$RESULTS/punch"
"$TOPO" exec a timeout 30 "$PY" "$TOOLS/punch.py" --name a --peer b --dir "$RESULTS/punch" --stun "$SRV1:3478" \
  --stun2 "$SRV2:3479" --duration 2 >"$RESULTS/punch-a.txt" 2>&1 &
pa=$!
"$TOPO" exec b timeout 30 "$PY" "$TOOLS/punch.py" --name b --peer a --dir "$RESULTS/punch" --stun "$SRV1:3478" \
  --stun2 "$SRV2:3479" --duration 2 >"$RESULTS/punch-b.txt" 2>&1
wait "$pa"
punch=$("$PY" - "$RESULTS/punch" <<'EOF'
import json, os, sys
d, out, ok = sys.argv[1], [], True
for me in "ab":
    try:
        r = json.load(open(os.path.join(d, f"{me}.result.json")))
    except Exception as exc:
        print(f"fail {me}: no result ({exc})"); sys.exit()
    sent = sum(r.get("sent_to", {}).values())
    ok = ok and "error" not in r and r["behaviour"].startswith("endpoint-dependent") and r["rx"] == 0 and sent > 0
    out.append(f"{me.upper()} mapped {r['m1'][0]}:{r['m1'][1]} / :{r['m2'][1]} ({r['behaviour']}), "
               f"sent {sent} to {r.get('peer_cand')}, received {r['rx']}")
print(("ok " if ok else "fail ") + "; ".join(out))
EOF
)
if [[ $punch == "ok "* ]]; then pass "direct path between the NAT-mapped addresses is closed" "${punch#ok } [$(secs "$t") s]"
else fail "direct path between the NAT-mapped addresses is closed" "${punch#fail }" punch-a.txt; fi
# ... and the routers saw those direct flows leave, with nothing ever coming back
direct=""; direct_ok=1
for site in a b; do
  flows "$site" >"$RESULTS/conntrack-$site-punch.txt"
  other=$([ $site = a ] && echo "$B_WAN" || echo "$A_WAN")
  to_other=$(grep " $other " "$RESULTS/conntrack-$site-punch.txt")
  # at least one direct flow, and every one of them unreplied
  [ -n "$to_other" ] && ! grep -q " replied$" <<<"$to_other" || direct_ok=0
  direct="$direct ${site^^}: $(paste -sd ',' <<<"${to_other:-none}" | sed 's/,/, /g');"
done
if [ $direct_ok = 1 ]; then
  pass "NAT flows of the direct attempt" "conntrack (count proto dst state):${direct%;}"
else
  fail "NAT flows of the direct attempt" "conntrack (count proto dst state):${direct%;}" conntrack-a-punch.txt
fi

# ---- 6. the server's view
to_peer=$(metric parley_turn_relayed_packets_total 'direction="to_peer"')
to_client=$(metric parley_turn_relayed_packets_total 'direction="to_client"')
denied=$("$TOPO" exec srv "$PY" -c "
import urllib.request
t = urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics', timeout=5).read().decode()
open('$RESULTS/metrics.txt', 'w').write(t)
print(sum(int(float(l.split()[-1])) for l in t.splitlines() if l.startswith('parley_turn_peer_denied_total{')))" 2>&1)
# Every datagram relay-to-relay counts once each way (to_peer at the sender's relay, to_client at the
# receiver's): aioice 2 runs x 100, turn_check 100 (probes in as to_client, replies out as to_peer),
# uclient 2 runs x 20, plus ICE checks.
want=$((2 * 100 + 100 + 2 * 20))
if [ "${to_peer:-0}" -ge $want ] && [ "${to_client:-0}" -ge $want ] && [ "$denied" = 0 ]; then
  pass "server metrics" "parley_turn_relayed_packets_total to_peer $to_peer, to_client $to_client; peers denied $denied"
else
  fail "server metrics" "to_peer ${to_peer:-?}, to_client ${to_client:-?} (want >= $want each), peers denied ${denied:-?}" metrics.txt
fi
if kill -0 "$SERVER_PID" 2>/dev/null; then
  errs=$(grep -ci ' error \| critical \|fatal' "$RESULTS/serve.log")
  if [ "$errs" = 0 ]; then pass "server alive" "no crash, no error lines in serve.log"
  else fail "server alive" "$errs error lines in serve.log" serve.log; fi
else
  fail "server alive" "parley serve exited" serve.log
fi

stop_server
echo "# total $(secs "$start_all") s; raw output in $RESULTS"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
