#!/usr/bin/env bash
# tests/interop/run.sh - STUN clients we did not write, against `parley serve`, on loopback.
#
#   tests/interop/run.sh            (root; PARLEY=/path/to/parley to pick the binary)
#
# Clients: Debian stun-client 0.97 (`stun`, RFC 3489), coturn's turnutils_stunclient and
# turnutils_natdiscovery (RFC 5780), aioice (Python; UDP, TCP, ICE gathering) and Python's ssl
# as the TLS peer (aioice's stream STUN client over TLS, and the RFC 5769 sample request).
#
# RFC 5780 and stun-client need fixed ports (3478/3479, TLS 5349) on 127.0.0.1 and 127.0.0.2, so
# the script re-execs itself in a private network namespace (`unshare -n`): the ports are free
# and no packet leaves. Missing tools are installed first (apt: coturn stun-client; pip: aioice).
#
# Output: one PASS/FAIL line per check, the directory of raw outputs, then `N passed, M failed`.
# Exit status 1 if any check failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
CLIENT_TIMEOUT=20

note() { echo "interop: $*" >&2; }

source "$ROOT/tests/lib_netns.sh"

install_deps() {
  apt_install_missing stun:stun-client turnutils_stunclient:coturn turnutils_natdiscovery:coturn || return 1
  pip_install_missing aioice || return 1
  command -v openssl >/dev/null 2>&1 || { note "openssl missing"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# Outside the namespace: install, find the binary, re-exec under `unshare -n`; inside it from here on.
run_in_private_netns INTEROP "$@"
# aioice's ICE gathering skips 127.0.0.1 as a host address: give it one of its own on lo.
ip addr add 127.0.0.10/32 dev lo 2>/dev/null || true

OUT=$(mktemp -d /tmp/parley-interop.XXXXXX)
PASS=0; FAIL=0
SERVER_PIDS=()

cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { PASS=$((PASS + 1)); echo "PASS $1: $2"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1: $2 (see $OUT/$3)"; }

# start_server NAME ARGS... : runs `parley serve` with ARGS, waits for its ready file.
start_server() {
  local name=$1; shift
  rm -f "$OUT/$name.ready"
  "$PARLEY" serve --signal-enabled no --http-listen 127.0.0.1 --http-port 0 --ready-file "$OUT/$name.ready" "$@" \
    >"$OUT/$name.log" 2>&1 &
  SERVER_PIDS+=($!)
  local pid=$! i
  for i in $(seq 300); do   # up to 30 s (a debug build on a busy CI machine)
    if grep -q '^stun_udp=' "$OUT/$name.ready" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# run NAME CMD... : a client call with a timeout; stdout+stderr to $OUT/NAME.txt, exit code to RC.
run() {
  local name=$1; shift
  { echo "\$ $*"; timeout "$CLIENT_TIMEOUT" "$@"; echo "exit=$?" >"$OUT/$name.rc"; } >"$OUT/$name.txt" 2>&1
  RC=$(cat "$OUT/$name.rc")
}

# ---- a throwaway certificate for STUN over TLS
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$OUT/key.pem" -out "$OUT/cert.pem" >"$OUT/openssl.txt" 2>&1

# ---- the server: RFC 5780 on 127.0.0.1:3478 / 127.0.0.2:3479, TCP on 3478, TLS on 5349
if start_server server --stun-listen 127.0.0.1 --stun-port 3478 \
     --stun-alternate-address 127.0.0.2 --stun-alternate-port 3479 \
     --stun-tls-certificate "$OUT/cert.pem" --stun-tls-private-key "$OUT/key.pem" --stun-tls-port 5349; then
  bound=$(grep '^stun_' "$OUT/server.ready" | sort | paste -sd ' ')
  if [ "$bound" = "stun_tcp=3478 stun_tls=5349 stun_udp=3478" ]; then
    pass server "parley serve ready: $bound"
  else
    fail server "unexpected ready file: $bound" server.ready
  fi
else
  fail server "parley serve did not become ready; the clients are not run" server.log
  echo "raw outputs: $OUT"
  echo "$PASS passed, $FAIL failed"
  exit 1
fi

# ---- 1. stun-client 0.97 (RFC 3489): mapped address and NAT type via CHANGED-ADDRESS.
# It takes the server as HOST (port 3478) or HOST:PORT; its exit status encodes the NAT type.
run stun-client stun 127.0.0.1 -v
f=$OUT/stun-client.txt
mapped=$(grep -m1 -o 'MappedAddress = [0-9.:]*' "$f" | awk '{print $3}')
changed=$(grep -m1 -o 'ChangedAddress = [0-9.:]*' "$f" | awk '{print $3}')
nat=$(grep -m1 '^Primary:' "$f" | sed 's/^Primary: *//; s/[[:space:]]*$//')
quirk=""
grep -q 'problem parsing' "$f" && quirk=" (client warned: $(grep -m1 -B1 'problem parsing' "$f" | tr '\n' ' ' | sed 's/ *$//'))"
if [[ $mapped == 127.0.0.1:* ]] && [ "$changed" = 127.0.0.2:3479 ] && [ "$nat" = Open ]; then
  pass stun-client "MAPPED-ADDRESS $mapped, CHANGED-ADDRESS $changed, NAT type '$nat'$quirk"
else
  fail stun-client "mapped '${mapped:-none}', changed '${changed:-none}', NAT type '${nat:-none}'" stun-client.txt
fi

# ---- 2. coturn turnutils_stunclient, UDP (it has no TCP or TLS option: only -p -L -f).
run stunclient-udp turnutils_stunclient -p 3478 127.0.0.1
f=$OUT/stunclient-udp.txt
refl=$(grep -m1 -o 'UDP reflexive addr: [0-9.:]*' "$f" | awk '{print $4}')
other=$(grep -m1 -o 'Other addr: : [0-9.:]*' "$f" | awk '{print $4}')
if [ "${RC#exit=}" = 0 ] && [[ $refl == 127.0.0.1:* ]]; then
  pass turnutils_stunclient "UDP reflexive addr $refl, OTHER-ADDRESS ${other:-none}"
else
  fail turnutils_stunclient "reflexive '${refl:-none}', $RC" stunclient-udp.txt
fi

# From another local address (-L): the reflexive address must follow the client's source.
run stunclient-udp-L turnutils_stunclient -L 127.0.0.3 -p 3478 127.0.0.1
refl=$(grep -m1 -o 'UDP reflexive addr: [0-9.:]*' "$OUT/stunclient-udp-L.txt" | awk '{print $4}')
if [ "${RC#exit=}" = 0 ] && [[ $refl == 127.0.0.3:* ]]; then
  pass "turnutils_stunclient -L 127.0.0.3" "UDP reflexive addr $refl"
else
  fail "turnutils_stunclient -L 127.0.0.3" "reflexive '${refl:-none}', $RC" stunclient-udp-L.txt
fi

# ---- 3. coturn turnutils_natdiscovery: RFC 5780 mapping and filtering discovery.
run natdiscovery turnutils_natdiscovery -m -f -p 3478 127.0.0.1
f=$OUT/natdiscovery.txt
mapping=$(grep -m1 -o 'NAT with [A-Za-z ]*Mapping' "$f")
filtering=$(grep -m1 -o 'NAT with [A-Za-z ]*Filtering' "$f")
refl=$(grep -m1 -o 'UDP reflexive addr: [0-9.:]*' "$f" | awk '{print $4}')
if [ "${RC#exit=}" = 0 ] && [ "$mapping" = "NAT with Endpoint Independent Mapping" ] \
   && [ "$filtering" = "NAT with Endpoint Independent Filtering" ]; then
  pass turnutils_natdiscovery "reflexive $refl; '${mapping#NAT with }'; '${filtering#NAT with }'"
else
  fail turnutils_natdiscovery "mapping '${mapping:-none}', filtering '${filtering:-none}', $RC" natdiscovery.txt
fi

# ---- 4. aioice (Python): UDP transaction, ICE gathering, TCP, TLS; the RFC 5769 sample over TLS.
aioice_check() {  # aioice_check NAME MODE ARGS...
  local name=$1 tag log; shift
  tag=$(echo "$name" | tr -cs 'A-Za-z0-9' '-' | sed 's/-$//')
  log="$tag.txt"
  run "$tag" "$PY" "$HERE/aioice_client.py" "$@"
  local line
  line=$(grep -m1 '^RESULT ' "$OUT/$log")
  if [[ $line == "RESULT ok "* ]]; then
    pass "$name" "${line#RESULT ok }"
  else
    fail "$name" "${line#RESULT fail }${line:+ }$RC" "$log"
  fi
}
aioice_check "aioice UDP Binding" udp 127.0.0.1 3478
aioice_check "aioice ICE gathering (srflx)" gather 127.0.0.1 3478
aioice_check "aioice TCP Binding" tcp 127.0.0.1 3478
aioice_check "aioice TLS Binding" tls 127.0.0.1 5349 "$OUT/cert.pem"
aioice_check "RFC 5769 sample over TLS" rfc5769 127.0.0.1 5349 "$OUT/cert.pem"

# ---- regressions: server bugs this suite found (all fixed; kept so they stay fixed).
  # (a) With RFC 5780 off (the default), stun-client's test I carries CHANGE-REQUEST with no flag set;
  #     the server answers 420, so this RFC 3489 client never learns its mapped address.
  if start_server server-no5780 --stun-listen 127.0.0.1 --stun-port 3480 --stun-tcp no; then
    run stun-client-no5780 stun 127.0.0.1:3480 -v
    mapped=$(grep -m1 -o 'MappedAddress = [0-9.:]*' "$OUT/stun-client-no5780.txt" | awk '{print $3}')
    if [[ $mapped == 127.0.0.1:* ]]; then
      pass "regression: stun-client, RFC 5780 off" "MAPPED-ADDRESS $mapped"
    else
      fail "regression: stun-client, RFC 5780 off" "no mapped address ($(grep -c 'ErrorCode = 4 20' "$OUT/stun-client-no5780.txt") answers were 420 Unknown Attribute)" stun-client-no5780.txt
    fi
  else
    fail "regression: stun-client, RFC 5780 off" "second server did not start" server-no5780.log
  fi
  # (b) RESPONSE-ORIGIN over TLS names the UDP/TCP port 3478, not the TLS port the answer came from.
  STRICT_ORIGIN=1 aioice_check "regression: RESPONSE-ORIGIN over TLS" tls 127.0.0.1 5349 "$OUT/cert.pem"
  # (c) RFC 3489 answers carry attributes whose length is not a multiple of 4 (SOFTWARE, and an
  #     UNKNOWN-ATTRIBUTES list of odd count), which stun-client 0.97 fails to parse.
  if grep -q 'problem parsing\|Bad length' "$OUT/stun-client.txt" "$OUT/stun-client-no5780.txt" 2>/dev/null; then
    fail "regression: RFC 3489 attribute lengths" "stun-client: $(grep -h -o 'problem parsing [A-Za-z]*' "$OUT/stun-client.txt" "$OUT/stun-client-no5780.txt" 2>/dev/null | sort -u | paste -sd ',' | sed 's/,/, /g')" stun-client.txt
  else
    pass "regression: RFC 3489 attribute lengths" "stun-client parsed every attribute"
  fi

# ---- the server must still be alive after all of the above
if kill -0 "${SERVER_PIDS[0]}" 2>/dev/null; then
  pass "server alive" "no crash; $(grep -ci 'error\|fatal' "$OUT/server.log") error lines in server.log"
else
  fail "server alive" "parley serve exited" server.log
fi

END=$(date +%s.%N)
echo "raw outputs: $OUT"
awk -v a="$START" -v b="$END" 'BEGIN { printf "time: %.1f s\n", b - a }'
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
