#!/usr/bin/env bash
# Signaling benchmark on loopback (issue "must show" #5): `parley serve` (release) with N generated
# users, and `SignalBench` (NIO client, many connections over a few event loops, pipelined) measuring in
# one run:
#   1. logins/s            connect → hello → login (Ed25519) → welcome, many in flight
#   2. call setups/s       closed loop over pairs: call → ring → prepare+accept → answer at the caller
#                          (then end → ended, and the next call)
#   3. setup latency       p50/p99 at a fixed offered rate (open loop), measured client-side
#   4. memory              server VmRSS before / after logging in N connections, per connection
#
#   scripts/bench-signal.sh
#
# Environment (all optional):
#   USERS=20000          users generated and connections logged in (each user logs in once). Lowered
#                        automatically when RLIMIT_NOFILE cannot be raised far enough (see below).
#   BENCH_ARGS="..."     extra `SignalBench run` options (--pairs, --rate, --closed-seconds, --window,
#                        --threads, --blob-bytes, …; `SignalBench` without arguments lists them)
#   PARLEY_FLAGS="..."   extra `parley serve` flags (e.g. "--server-threads 1", "--log-level warning")
#   SKIP_BUILD=1         do not build (use the existing release binaries)
#   PARLEY_BIN=path      run this parley binary instead of the release build's
#   KEEP_WORK=1          keep the temporary directory (keys, accounts, store, server log, report)
#   QUIET_MAX=0.3 QUIET_WAIT=600   the machine is shared: before measuring, wait (up to QUIET_WAIT s)
#                        until other processes use at most QUIET_MAX cores over 5 s; then run anyway,
#                        saying so. The report shows, per phase, how much CPU other processes took.
#
# The script raises RLIMIT_NOFILE to 65536 for both processes (`ulimit -n`). Where that is refused (a
# container without CAP_SYS_RESOURCE keeps the hard limit), it uses the hard limit and, if USERS
# connections plus the server's own descriptors do not fit under it, logs in as many as fit and says so.
#
# Exit status: 0 when every target is met, 3 when one is missed, 1/2 on errors. Only loopback is used:
# the server listens on 127.0.0.1 (ports chosen at run time), clients connect from 127.0.0.2–127.0.0.9.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
USERS=${USERS:-20000}
BENCH_ARGS=${BENCH_ARGS:-}
PARLEY_FLAGS=${PARLEY_FLAGS:-}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
QUIET_MAX=${QUIET_MAX:-0.3}
QUIET_WAIT=${QUIET_WAIT:-600}

log() { printf '[bench-signal] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

WORK=$(mktemp -d /tmp/bench-signal.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$KEEP_WORK" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------------
cd "$ROOT"
if [ "$SKIP_BUILD" != 1 ]; then
  # One product per invocation: given several --product flags, SwiftPM builds only the last one.
  for product in parley SignalBench; do
    log "swift build -c release --product $product"
    swift build -c release --product "$product" >"$WORK/build-$product.log" 2>&1 \
      || { tail -30 "$WORK/build-$product.log" >&2; die "build of $product failed"; }
  done
fi
BIN=$(swift build -c release --show-bin-path)
PARLEY=${PARLEY_BIN:-$BIN/parley}
BENCH=$BIN/SignalBench
[ -x "$PARLEY" ] || die "no $PARLEY"
[ -x "$BENCH" ] || die "no $BENCH"
cd "$WORK"   # nothing below writes into the repository

# --- file descriptors ----------------------------------------------------------------------------
if ulimit -n 65536 2>/dev/null; then
  log "RLIMIT_NOFILE raised to 65536"
else
  ulimit -n "$(ulimit -Hn)"
  log "RLIMIT_NOFILE cannot be raised above the hard limit $(ulimit -Hn) here (no CAP_SYS_RESOURCE); using it"
fi
NOFILE=$(ulimit -n)

# --- users ---------------------------------------------------------------------------------------
log "generating $USERS users"
"$BENCH" accounts --users "$USERS" --out "$WORK"

# --- server --------------------------------------------------------------------------------------
SERVER_CMD=("$PARLEY" serve --stun-enabled no --http-listen 127.0.0.1 --http-port 0
  --signal-listen 127.0.0.1 --signal-port 0 --store-path "$WORK/parley.sqlite"
  --signal-accounts-file "$WORK/accounts.conf" --ready-file "$WORK/ready")
# shellcheck disable=SC2206
[ -n "$PARLEY_FLAGS" ] && SERVER_CMD+=($PARLEY_FLAGS)
log "starting: ${SERVER_CMD[*]}"
"${SERVER_CMD[@]}" 2>"$WORK/server.log" >/dev/null &
SERVER_PID=$!
for _ in $(seq 1 600); do
  [ -s "$WORK/ready" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; die "server exited"; }
  sleep 0.1
done
[ -s "$WORK/ready" ] || die "server not ready after 60 s"
PORT=$(sed -n 's/^signal_tcp=//p' "$WORK/ready")
if [ -z "$PORT" ]; then   # fall back to the "parley ready … signal_tcp=" log line
  PORT=$(grep 'parley ready' "$WORK/server.log" | sed -n 's/.*signal_tcp=\([0-9]*\).*/\1/p' | tail -1)
fi
[ -n "$PORT" ] || die "no signal_tcp port in $WORK/ready or the server log"
SERVER_FDS=$(ls "/proc/$SERVER_PID/fd" | wc -l)
log "server pid $SERVER_PID, signaling on 127.0.0.1:$PORT, $SERVER_FDS descriptors open at idle, RLIMIT_NOFILE $NOFILE"

CONNS=$USERS
ROOM=$((NOFILE - SERVER_FDS - 16))
if [ "$CONNS" -gt "$ROOM" ]; then
  log "WARNING: $USERS connections do not fit under RLIMIT_NOFILE $NOFILE next to the server's $SERVER_FDS descriptors: logging in $ROOM"
  CONNS=$ROOM
fi

# --- wait for a quiet machine --------------------------------------------------------------------
# Busy cores of the whole machine over $1 seconds (/proc/stat: user nice system irq softirq steal).
busy_cores() {
  local a c
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
  sleep "$1"
  c=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat)
  awk -v d=$((c - a)) -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", d / hz / t }'
}
WAITED=0
while :; do
  BUSY=$(busy_cores 5)   # the server is idle now: this is other processes
  if awk -v b="$BUSY" -v m="$QUIET_MAX" 'BEGIN { exit !(b <= m) }'; then
    log "machine quiet enough: $BUSY cores busy over 5 s (QUIET_MAX $QUIET_MAX)"
    break
  fi
  if [ "$WAITED" -ge "$QUIET_WAIT" ]; then
    log "WARNING: other processes still use $BUSY cores after ${WAITED}s of waiting; measuring anyway"
    break
  fi
  log "other processes use $BUSY cores (> QUIET_MAX $QUIET_MAX); waiting"
  sleep 10
  WAITED=$((WAITED + 15))
done

# --- bench ---------------------------------------------------------------------------------------
{
  echo "# scripts/bench-signal.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (+ uncommitted changes)"
  echo "# nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), other processes $BUSY cores just before"
  echo "# server: ${SERVER_CMD[*]}"
  echo "# bench:  SignalBench run --port $PORT --server-pid $SERVER_PID --keys WORK --users $CONNS $BENCH_ARGS"
} | tee "$WORK/report.txt"
set +e
# shellcheck disable=SC2086
"$BENCH" run --port "$PORT" --server-pid "$SERVER_PID" --keys "$WORK" --users "$CONNS" $BENCH_ARGS | tee -a "$WORK/report.txt"
RC=${PIPESTATUS[0]}
set -e
kill -0 "$SERVER_PID" 2>/dev/null || { log "the server died during the run:"; tail -20 "$WORK/server.log" >&2; exit 1; }
log "server log: $(wc -l <"$WORK/server.log") lines, $(grep -c ' warning\| error' "$WORK/server.log" || true) warnings/errors"
grep ' warning\| error' "$WORK/server.log" | head -5 >&2 || true
exit "$RC"
