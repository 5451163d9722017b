#!/usr/bin/env bash
# tests/signal/run.sh - the signaling server (docs/PROTOCOL.md §3) against clients we did not write.
#
#   tests/signal/run.sh             (PARLEY=/path/to/parley to pick the binary; else it is built)
#
# 1. calls: PyPI `websockets` on ws://127.0.0.1:HTTP/ws (and raw TCP lines for one of Bob's devices in
#    the mixed runs): login, keys, call, ring on both devices, prepare/cand/accept, answer, elsewhere,
#    end -> ended|hangup.
# 2. attacks (each followed by a normal login + keys probe): replayed login, stale timestamp, wrong key,
#    command before login, oversized line, garbage bytes, slowloris, binary/oversized WebSocket
#    messages, and 10,000 connections that never log in (with the server's RSS before/with/after).
# 3. durability: 10,000 pipelined sealed `msg`s, kill -9 of the server after ~3,000 acks, restart on
#    the same store, resend of every unacked command, then delivery to Bob: nothing acked is lost,
#    nothing is delivered twice, order per sender holds.
#
# tests/signal/repro.py holds minimal standalone reproducers of the server bugs check 3 finds.
#
# Every server is started with port 0 on 127.0.0.1; as root the whole run also sits in a private
# network namespace (`unshare -n`) so 10,000 loopback connections disturb nothing else.
# Output: PASS/FAIL lines, the directory of raw logs, then `N passed, M failed` (exit 1 on failure).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}

note() { echo "signal: $*" >&2; }
bail() { note "$*"; echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Outside the namespace: dependencies, the binary, then re-exec.
if [ -z "${PARLEY_SIGNAL_INNER:-}" ]; then
  if ! "$PY" -c 'from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey' >/dev/null 2>&1; then
    note "installing cryptography (pip)"
    "$PY" -m pip install -q --disable-pip-version-check cryptography >/dev/null 2>&1 \
      || bail "pip install cryptography failed"
  fi
  if ! "$PY" -c 'import websockets.asyncio.client' >/dev/null 2>&1; then
    note "installing websockets (pip)"
    "$PY" -m pip install -q --disable-pip-version-check 'websockets>=13' >/dev/null 2>&1 \
      || bail "pip install websockets failed"
  fi
  if [ -z "${PARLEY:-}" ]; then
    # Other people may be editing Sources: retry a failed build a few times (SwiftPM also waits by
    # itself while another instance holds .build).
    ok=0
    for attempt in 1 2 3 4 5; do
      if (cd "$ROOT" && swift build --product parley >/tmp/parley-signal-build.log 2>&1); then ok=1; break; fi
      note "build attempt $attempt failed (tail of /tmp/parley-signal-build.log below); retrying in 30 s"
      tail -5 /tmp/parley-signal-build.log >&2
      sleep 30
    done
    [ $ok = 1 ] || bail "swift build --product parley failed"
    PARLEY="$(cd "$ROOT" && swift build --show-bin-path)/parley"
  fi
  [ -x "$PARLEY" ] || bail "no parley binary at $PARLEY"
  export PARLEY PARLEY_SIGNAL_INNER=1
  if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n -- bash "${BASH_SOURCE[0]}" "$@"
  elif unshare -r -n true 2>/dev/null; then
    exec unshare -r -n -- bash "${BASH_SOURCE[0]}" "$@"
  fi
  note "no private network namespace available: using the host's loopback (ports are still 0)"
  export PARLEY_SIGNAL_INNER=host
fi

# ---------------------------------------------------------------------------------------------
# Inside (or on the host's loopback as a fallback).
[ "${PARLEY_SIGNAL_INNER}" = host ] || ip link set lo up 2>/dev/null || true
START=$(date +%s.%N)
TMP=$(mktemp -d /tmp/parley-signal.XXXXXX)
mkdir -p "$TMP/keys" "$TMP/pids" "$TMP/bin"
# A private copy of the binary: a concurrent `swift build` may replace the original mid-run.
cp "$PARLEY" "$TMP/bin/parley" || bail "cannot copy $PARLEY"
BIN="$TMP/bin/parley"
# The 10,000-connection check needs descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cleanup() {
  local f pid
  for f in "$TMP"/pids/*; do
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null) || continue
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export SIG_KEYDIR="$TMP/keys" SIG_LOGDIR="$TMP" SIG_PIDDIR="$TMP/pids" PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"

# Keys and accounts. mallory has a key but no account (the wrong-key attack uses it).
for acct in alice.phone bob.laptop bob.phone carol.desk mallory.phone; do
  timeout 30 "$BIN" keygen --out "$TMP/keys/$acct.key" >"$TMP/keys/$acct.pub" 2>>"$TMP/keygen.log" \
    || bail "parley keygen failed (see $TMP/keygen.log)"
done
{
  echo "# tests/signal accounts"
  for acct in alice.phone bob.laptop bob.phone carol.desk; do
    echo "$acct = $(cat "$TMP/keys/$acct.pub")"
  done
} >"$TMP/accounts.conf"

# start_server NAME [--flag value …]: state in $TMP/srv-NAME (argv, pid, ready, log.1).
start_server() {
  local name=$1; shift
  local dir="$TMP/srv-$name"
  mkdir -p "$dir"
  local argv=("$BIN" serve --stun-enabled no --http-listen 127.0.0.1 --http-port 0
              --signal-listen 127.0.0.1 --signal-port 0 --store-path "$dir/parley.sqlite"
              --signal-accounts-file "$TMP/accounts.conf" --ready-file "$dir/ready" "$@")
  printf '%s\n' "${argv[@]}" >"$dir/argv"
  "${argv[@]}" </dev/null >"$dir/log.1" 2>&1 &
  local pid=$!
  disown $pid 2>/dev/null || true
  echo $pid >"$dir/pid"
  echo $pid >"$TMP/pids/$name-1"
  local i
  for i in $(seq 1 300); do
    [ -s "$dir/ready" ] && break
    kill -0 $pid 2>/dev/null || { note "server $name exited; log:"; tail -20 "$dir/log.1" >&2; return 1; }
    sleep 0.1
  done
  [ -s "$dir/ready" ] || { note "server $name not ready in 30 s"; return 1; }
  sleep 0.1
  export "SIG_SERVER_$(echo "$name" | tr '[:lower:]' '[:upper:]')=$dir"
  note "server $name pid $pid: $(tr '\n' ' ' <"$dir/ready")"
}

OUT="$TMP/results.txt"
: >"$OUT"
CRASHED=0

# run_check LABEL TIMEOUT script.py args…: PASS/FAIL lines go to the terminal and $OUT.
run_check() {
  local label=$1 limit=$2; shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  echo "== $label"
  timeout -k 5 "$limit" "$PY" -u "$HERE/$1" "${@:2}" 2>"$TMP/$label.stderr" | tee -a "$OUT" | grep -v '^RESULT '
  rc=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  if [ "$rc" != 0 ] || ! grep -q '^RESULT ' <(tail -1 "$OUT"); then
    echo "FAIL $label: script exited $rc without finishing (stderr: $TMP/$label.stderr; $(tail -1 "$TMP/$label.stderr" | cut -c1-200))" | tee -a "$OUT"
  fi
  printf '   (%s took %.1f s)\n' "$label" "$(echo "$t1 - $t0" | bc)"
}

command -v bc >/dev/null 2>&1 || bc() { "$PY" -c "import sys; print(eval(sys.stdin.read()))"; }

ONLY=${SIGNAL_ONLY:-calls,attacks,durability}

if [[ ,$ONLY, == *,calls,* || ,$ONLY, == *,attacks,* ]]; then
  start_server main --signal-login-timeout 3 --signal-max-line 4096 \
    || { echo "FAIL server-start: parley serve (main) did not start; see $TMP/srv-main/log.1" >>"$OUT"; }
fi
if [[ ,$ONLY, == *,calls,* ]] && [ -n "${SIG_SERVER_MAIN:-}" ]; then
  run_check calls 120 check_calls.py main
fi
if [[ ,$ONLY, == *,attacks,* ]] && [ -n "${SIG_SERVER_MAIN:-}" ]; then
  # A second server for the flood, with a login timeout long enough to hold all 10,000 at once.
  start_server flood --signal-login-timeout "${FLOOD_LOGIN_TIMEOUT:-20}" \
    || { echo "FAIL server-start: parley serve (flood) did not start; see $TMP/srv-flood/log.1" >>"$OUT"; }
  run_check attacks 400 check_attacks.py main flood
fi
if [[ ,$ONLY, == *,durability,* ]]; then
  if start_server durable; then
    run_check durability 900 check_durability.py durable
  else
    echo "FAIL server-start: parley serve (durable) did not start; see $TMP/srv-durable/log.1" | tee -a "$OUT"
  fi
fi

END=$(date +%s.%N)
printf 'total %.1f s; raw logs, keys, stores and per-check stderr in %s\n' "$(echo "$END - $START" | bc)" "$TMP"
PASSED=$(grep -c '^PASS ' "$OUT")
FAILED=$(grep -c '^FAIL ' "$OUT")
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
