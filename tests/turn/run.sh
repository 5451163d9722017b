#!/usr/bin/env bash
# tests/turn/run.sh - TURN clients we did not write, relaying through `parley serve` (RFC 8656), on loopback.
#
#   tests/turn/run.sh            (root; PARLEY=/path/to/parley to pick the binary)
#
# Clients: coturn 4.6.1's turnutils_uclient (UDP/TCP/TLS, channels and Send indications, long-term
# and TURN REST credentials, client-to-client and against turnutils_peer), aioice (relay candidate
# gathering over UDP/TCP/TLS, ICE between two relay-only agents, protocol edges), and aiortc (a
# relay-only WebRTC audio call between two peers; the server's /metrics must show the relayed media).
#
# The server needs the fixed ports 3478 (UDP+TCP) and 5349 (TLS), so the script re-execs itself in a
# private network namespace (`unshare -n`): the ports are free and no packet leaves. Missing tools
# are installed first (apt: coturn gcc openssl; pip: aioice aiortc).
#
# turnutils_uclient picks ChannelBind numbers at random in RFC 5766's range 0x4000-0x7FFF; RFC 8656
# §12 narrowed the range to 0x4000-0x4FFF and Parley answers 400 beyond it (checked below by
# "protocol edges"), so an unmodified uclient fails ~3 channel binds in 4. The uclient runs here
# therefore load a tiny LD_PRELOAD shim (chanshim.c, built with gcc at run time) that clears bits
# 12-13 of the random numbers uclient draws, which keeps its picks inside 0x4000-0x4FFF.
#
# Output: one PASS/FAIL line per check, the directory of raw outputs, then `N passed, M failed`.
# Exit status 1 if any check failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
CLIENT_TIMEOUT=30

note() { echo "turn: $*" >&2; }

source "$ROOT/tests/lib_netns.sh"

install_deps() {
  apt_install_missing turnutils_uclient:coturn turnutils_peer:coturn gcc:gcc openssl:openssl || return 1
  pip_install_missing aioice aiortc
}

# ---------------------------------------------------------------------------------------------
# Outside the namespace: install, find the binary, re-exec under `unshare -n`; inside it from here on.
run_in_private_netns TURN "$@"

OUT=$(mktemp -d /tmp/parley-turn.XXXXXX)
PASS=0; FAIL=0
SERVER_PIDS=()
PEER_PID=""

cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}" $PEER_PID; do kill "$pid" 2>/dev/null; done
  for pid in "${SERVER_PIDS[@]}" $PEER_PID; do wait "$pid" 2>/dev/null; done
  [ -n "${BIN_DIR:-}" ] && rm -rf "$BIN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASS=$((PASS + 1)); echo "PASS $1: $2"; }
fail() {
  FAIL=$((FAIL + 1)); echo "FAIL $1: $2 (see $OUT/$3)"
}
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# A private copy of the binary: a concurrent `swift build` relinking it must not swap it mid-run.
BIN_DIR=$(mktemp -d /tmp/parley-turn-bin.XXXXXX)
cp "$PARLEY" "$BIN_DIR/parley" || { echo "cannot copy $PARLEY"; echo "0 passed, 1 failed"; exit 1; }
PARLEY=$BIN_DIR/parley

# ---- credentials, certificate, the channel-number shim
umask 077
printf 'pass1' | "$PARLEY" turn-user alice --realm parley > "$OUT/users" 2>"$OUT/turn-user.txt"
REST_SECRET=rest-secret-$RANDOM$RANDOM
echo "$REST_SECRET" > "$OUT/secrets"
umask 022
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" >"$OUT/openssl.txt" 2>&1
cp "$HERE/chanshim.c" "$OUT/chanshim.c"
gcc -shared -fPIC -O2 -o "$OUT/chanshim.so" "$OUT/chanshim.c" -ldl >"$OUT/gcc.txt" 2>&1

# ---- the server: STUN/TURN on 127.0.0.1 and ::1 port 3478 (UDP+TCP), TLS on 5349, relays on 127.0.0.1 and ::1
rm -f "$OUT/server.ready"
"$PARLEY" serve --signal-enabled no --http-listen 127.0.0.1 --http-port 0 --ready-file "$OUT/server.ready" \
  --stun-listen 127.0.0.1,::1 --stun-port 3478 \
  --stun-tls-certificate "$OUT/cert.pem" --stun-tls-private-key "$OUT/key.pem" --stun-tls-port 5349 \
  --turn-enabled yes --turn-relay-ipv4 127.0.0.1 --turn-relay-ipv6 ::1 --turn-users-file "$OUT/users" \
  --stun-auth-secret-file "$OUT/secrets" --turn-allow-loopback-peers yes --log-stderr yes \
  >"$OUT/server.log" 2>&1 &
SERVER_PIDS+=($!)
for _ in $(seq 300); do   # up to 30 s (a debug build on a busy CI machine)
  grep -q '^stun_tls=' "$OUT/server.ready" 2>/dev/null && break
  kill -0 "${SERVER_PIDS[0]}" 2>/dev/null || break
  sleep 0.1
done
bound=$(grep '^stun_' "$OUT/server.ready" 2>/dev/null | sort | paste -sd ' ')
HTTP=$(sed -n 's/^http=//p' "$OUT/server.ready" 2>/dev/null)
if [ "$bound" = "stun_tcp=3478 stun_tls=5349 stun_udp=3478" ] && [ -n "$HTTP" ] \
   && grep -q 'parley ready http=' "$OUT/server.log"; then
  pass server "parley serve ready with TURN: $bound http=$HTTP"
else
  fail server "parley serve did not become ready ($bound); the clients are not run" server.log
  echo "raw outputs: $OUT"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi
[ -s "$OUT/chanshim.so" ] || note "chanshim.so was not built (see $OUT/gcc.txt): uclient channel runs will hit 400s"

# metric NAME [LABELS]: a counter/gauge value from /metrics (0 when absent)
metric() {
  "$PY" - "$HTTP" "$1" "${2:-}" <<'EOF'
import sys, urllib.request
port, name, labels = sys.argv[1], sys.argv[2], sys.argv[3]
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
want = name + (("{" + labels + "}") if labels else "")
for line in text.splitlines():
    if line.startswith(want + " "):
        print(int(float(line.split()[-1])))
        break
else:
    print(0)
EOF
}

# ---- 1. coturn turnutils_uclient
turnutils_peer -L 127.0.0.1 -p 3480 >"$OUT/turnutils_peer.txt" 2>&1 &
PEER_PID=$!

N=10; M=2   # messages per client session, client sessions: every run must relay N*M messages
UC_NAMES=(); UC_ARGS=()
uc() { UC_NAMES+=("$1"); shift; UC_ARGS+=("$*"); }
LT="-u alice -w pass1"
REST="-W $REST_SECRET -u bob"        # bob is not in the users file: only the REST secret admits him
C2C="-e 127.0.0.1 -y"                # two uclient sessions relay to each other's relayed address
TOPEER="-e 127.0.0.1 -r 3480"        # sessions relay to turnutils_peer (an echo) on 127.0.0.1:3480
uc "UDP, channels, long-term, client-to-client"        "$LT $C2C -c"
uc "UDP, Send indications, long-term, client-to-client" "$LT $C2C -c -s"
uc "TCP, channels, long-term, client-to-client"        "-t $LT $C2C -c"
uc "TCP, Send indications, long-term, client-to-client" "-t $LT $C2C -c -s"
uc "UDP, channels, REST, client-to-client"             "$REST $C2C -c"
uc "UDP, Send indications, REST, client-to-client"     "$REST $C2C -c -s"
uc "TCP, channels, REST, client-to-client"             "-t $REST $C2C -c"
uc "TCP, Send indications, REST, client-to-client"     "-t $REST $C2C -c -s"
uc "UDP, channels, long-term, turnutils_peer"          "$LT $TOPEER -c"
uc "UDP, Send indications, REST, turnutils_peer"       "$REST $TOPEER -c -s"
uc "TCP, channels, REST, turnutils_peer"               "-t $REST $TOPEER -c"
uc "TCP, Send indications, long-term, turnutils_peer"  "-t $LT $TOPEER -c -s"
uc "UDP, RTP+RTCP pairs (EVEN-PORT, RESERVATION-TOKEN), client-to-client" "$LT $C2C"
uc "TLS, channels, long-term, client-to-client"        "-S -t $LT $C2C -c"
uc "TLS, Send indications, REST, turnutils_peer"       "-S -t $REST $TOPEER -c -s"
# IPv6 relayed addresses (RFC 6156 REQUESTED-ADDRESS-FAMILY, uclient -x): over IPv6 to the server's ::1
# (the first positional argument is the server; GNU getopt lets the appended 127.0.0.1 trail), and over
# IPv4 asking for an IPv6 relay.
uc "UDP over IPv6, IPv6 relay, channels, client-to-client" "$LT -y -c -x ::1"
uc "UDP over IPv4, IPv6 relay, channels, client-to-client" "$LT -y -c -x"

uc_check() {  # uc_check INDEX: judge one finished uclient run
  local name=${UC_NAMES[$1]} f="$OUT/uclient-$1.txt" rc sent recv lost tls="" why="" want=$((N * M))
  [[ " ${UC_ARGS[$1]} " == *" -c "* ]] || want=$((2 * N * M))   # without -c each session also sends RTCP
  rc=$(cat "$OUT/uclient-$1.rc" 2>/dev/null || echo none)
  sent=$(grep -o 'tot_send_msgs=[0-9]*, tot_recv_msgs=[0-9]*' "$f" | tail -1)
  recv=${sent##*=}; sent=${sent%%,*}; sent=${sent#*=}
  lost=$(grep -o 'Total lost packets [0-9]*' "$f" | tail -1 | awk '{print $4}')
  [ "$rc" = 0 ] || why="$why exit $rc;"
  [ "${sent:-0}" = "$want" ] || why="$why sent ${sent:-none} (want $want);"
  [ -n "$recv" ] && [ "$recv" = "$sent" ] || why="$why received ${recv:-none};"
  [ "$lost" = 0 ] || why="$why lost ${lost:-none};"
  if [[ ${UC_ARGS[$1]} == *-S* ]]; then
    tls=$(grep -o 'client session connected with cipher [^,]*, method=[A-Za-z0-9.]*' "$f" | tail -1)
    [ -n "$tls" ] || why="$why no TLS session;"
    tls=" (${tls#client session connected with })"
  fi
  local errs
  errs=$(grep -o 'error [0-9][0-9][0-9] ([^)]*)' "$f" | sort | uniq -c | awk '{c=$1; $1=""; printf "%s%s x%d", (n++ ? ", " : ""), substr($0, 2), c}')
  if [ -z "$why" ]; then
    pass "uclient $name" "sent $sent, received $recv, lost $lost$tls${errs:+; uclient saw $errs}"
  else
    why=${why# }
    fail "uclient $name" "${why%;}${errs:+; errors: $errs}" "uclient-$1.txt"
  fi
}

t_uc=$(date +%s.%N)
# Two batches run side by side (each run sleeps most of its ~4 s); a shared echo peer is fine.
batch=8
for ((start = 0; start < ${#UC_NAMES[@]}; start += batch)); do
  pids=()
  for ((i = start; i < start + batch && i < ${#UC_NAMES[@]}; i++)); do
    # shellcheck disable=SC2086
    { echo "\$ turnutils_uclient ${UC_ARGS[$i]} -n $N -m $M -l 170 127.0.0.1"
      LD_PRELOAD=$OUT/chanshim.so timeout "$CLIENT_TIMEOUT" turnutils_uclient ${UC_ARGS[$i]} -n $N -m $M -l 170 127.0.0.1
      echo $? >"$OUT/uclient-$i.rc"; } >"$OUT/uclient-$i.txt" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
done
for i in "${!UC_NAMES[@]}"; do uc_check "$i"; done
echo "# uclient: ${#UC_NAMES[@]} runs in $(secs "$t_uc") s"

# result_text LINE FILE: what a failed helper said (its RESULT line, else its last output line)
result_text() {
  if [ -n "$1" ]; then echo "${1#RESULT fail }"; else echo "no result: $(tail -n 2 "$2" | head -n 1)"; fi
}

# ---- 2. aioice: relay candidates over UDP/TCP/TLS, ICE between two relay-only agents, edges
aioice_check() {  # aioice_check NAME ARGS...
  local name=$1 tag line; shift
  tag=aioice-$(echo "$name" | tr -cs 'A-Za-z0-9' '-' | sed 's/-$//')
  { echo "\$ aioice_turn.py $*"; SSL_CERT_FILE=$OUT/cert.pem timeout "$CLIENT_TIMEOUT" "$PY" "$HERE/aioice_turn.py" "$@"; echo "exit=$?"; } \
    >"$OUT/$tag.txt" 2>&1
  while read -r verdict rest; do   # per-check lines of the probe mode
    if [ "$verdict" = ok ]; then pass "aioice $name, ${rest%%:*}" "${rest#*: }"; else fail "aioice $name, ${rest%%:*}" "${rest#*: }" "$tag.txt"; fi
  done < <(sed -n 's/^CHECK //p' "$OUT/$tag.txt")
  line=$(grep -m1 '^RESULT ' "$OUT/$tag.txt")
  if grep -q '^CHECK ' "$OUT/$tag.txt" && [ -n "$line" ]; then
    :   # judged check by check above
  elif [[ $line == "RESULT ok "* ]]; then
    pass "aioice $name" "${line#RESULT ok }"
  else
    fail "aioice $name" "$(result_text "$line" "$OUT/$tag.txt")" "$tag.txt"
  fi
}
t_ai=$(date +%s.%N)
aioice_check "relay candidate over UDP" gather 127.0.0.1 3478 udp alice pass1 127.0.0.1
aioice_check "relay candidate over TCP, REST" gather 127.0.0.1 3478 tcp "rest:$REST_SECRET:carol" - 127.0.0.1
aioice_check "relay candidate over TLS" gather 127.0.0.1 3478 tls alice pass1 127.0.0.1
aioice_check "ICE relay-relay, UDP+UDP" pair 127.0.0.1 3478 udp udp alice pass1 127.0.0.1
aioice_check "ICE relay-relay, TCP+TLS, REST" pair 127.0.0.1 3478 tcp tls "rest:$REST_SECRET:carol" - 127.0.0.1
aioice_check "protocol edges" probe 127.0.0.1 3478 alice pass1 "$REST_SECRET"
aioice_check "peer policy: private peer refused" deny 127.0.0.1 3478 alice pass1 10.1.2.3
# Datagram sizes around the relay's limit (4095 bytes, docs/PROTOCOL.md §4.3): whole up to it, dropped
# whole above it, never cut (a 2048-byte receive slot once truncated them silently).
aioice_check "large datagrams, TURN over UDP" large 127.0.0.1 3478 udp alice pass1 127.0.0.1
aioice_check "large datagrams, TURN over TCP" large 127.0.0.1 3478 tcp alice pass1 127.0.0.1
echo "# aioice: $(secs "$t_ai") s"

# ---- 3. aiortc: relay-only audio calls; /metrics must show the media relayed both ways
aiortc_check() {  # aiortc_check NAME URL_A URL_B USER PASS
  local name=$1 tag line to_peer0 to_client0 to_peer1 to_client1 frames; shift
  tag=aiortc-$(echo "$name" | tr -cs 'A-Za-z0-9' '-' | sed 's/-$//')
  to_peer0=$(metric parley_turn_relayed_packets_total 'direction="to_peer"')
  to_client0=$(metric parley_turn_relayed_packets_total 'direction="to_client"')
  { echo "\$ aiortc_call.py $*"; SSL_CERT_FILE=$OUT/cert.pem timeout 60 "$PY" "$HERE/aiortc_call.py" "$@" 127.0.0.1 3 50; echo "exit=$?"; } \
    >"$OUT/$tag.txt" 2>&1
  to_peer1=$(metric parley_turn_relayed_packets_total 'direction="to_peer"')
  to_client1=$(metric parley_turn_relayed_packets_total 'direction="to_client"')
  line=$(grep -m1 '^RESULT ' "$OUT/$tag.txt")
  if [[ $line == "RESULT ok "* ]]; then
    pass "aiortc call, $name" "${line#RESULT ok }"
  else
    fail "aiortc call, $name" "$(result_text "$line" "$OUT/$tag.txt")" "$tag.txt"
  fi
  # Each side sent ~50 RTP packets/s for 3 s plus ICE/DTLS/RTCP: both counters must grow by >= 2 x 100.
  local dp=$((to_peer1 - to_peer0)) dc=$((to_client1 - to_client0))
  if [ "$dp" -ge 200 ] && [ "$dc" -ge 200 ]; then
    pass "metrics after call, $name" "parley_turn_relayed_packets_total grew to_peer +$dp, to_client +$dc"
  else
    fail "metrics after call, $name" "parley_turn_relayed_packets_total grew to_peer +$dp, to_client +$dc (want >= 200 each)" "$tag.txt"
  fi
}
t_rtc=$(date +%s.%N)
aiortc_check "UDP both sides" turn:127.0.0.1:3478 turn:127.0.0.1:3478 alice pass1
aiortc_check "TCP and TLS, REST" 'turn:127.0.0.1:3478?transport=tcp' 'turns:127.0.0.1:5349?transport=tcp' "rest:$REST_SECRET:dave" -
echo "# aiortc: $(secs "$t_rtc") s"

# ---- the server must still be alive, and must not have logged errors
if kill -0 "${SERVER_PIDS[0]}" 2>/dev/null; then
  errs=$(grep -ci ' error \| critical \|fatal' "$OUT/server.log")
  if [ "$errs" = 0 ]; then
    pass "server alive" "no crash, no error lines in server.log; $(metric parley_turn_allocations_created_total) allocations, $(metric parley_turn_channels_bound_total) channel binds, dropped: no_permission $(metric parley_turn_dropped_total 'reason="no_permission"'), malformed $(metric parley_turn_dropped_total 'reason="malformed"')"
  else
    fail "server alive" "$errs error lines in server.log" server.log
  fi
else
  fail "server alive" "parley serve exited" server.log
fi
"$PY" -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics', timeout=5).read().decode())" \
  >"$OUT/metrics.txt" 2>&1

echo "raw outputs: $OUT"
echo "time: $(secs "$START") s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
