#!/usr/bin/env bash
# STUN Binding throughput on loopback: coturn 4.6.1 (-m 1) vs `parley serve` (release) vs a plain
# recvmmsg/sendmmsg UDP echo server (the machine's loopback ceiling), same stunload load for all three;
# plus, for reading the result, the same echo written on SwiftNIO with parley's socket options
# (Sources/NIOEcho: the floor under any NIO UDP server, i.e. what NIO's datagram path costs).
#
#   scripts/bench-stun.sh
#
# Environment (all optional):
#   RUNS=3               measurements per server, interleaved coturn, parley, echo, coturn, ...
#   LOAD="-s 16 -w 4 -d 5"   stunload arguments (closed loop), identical for the three servers
#   PARLEY_FLAGS="--server-threads 1"   extra `parley serve` flags. One event loop by default: the same
#                        thread budget as coturn's -m 1, and on a 2-core machine the load generator needs
#                        the other core. PARLEY_FLAGS="" runs parley's default (one loop per core).
#   SKIP_BUILD=1         do not run `swift build -c release --product parley` / `--product NIOEcho` (use the
#                        existing binaries; without .build/release/NIOEcho the NIO echo series is left out)
#   PARLEY_BIN=path      run this parley binary instead of .build/release/parley (implies SKIP_BUILD=1)
#   BASELINE_BIN=path    also measure this parley binary (e.g. a saved build of an earlier revision),
#                        as a fourth interleaved series "base", with the same flags: before/after figures
#                        taken under the same conditions
#   KEEP_WORK=1          keep the temporary directory (logs, binaries, raw results)
#   OTHER_MAX=10 RETRIES=3   a measurement during which other processes used more than OTHER_MAX % of
#                        a core is repeated, up to RETRIES times (the machine is shared)
#
# Prints, per server, the median answers/s and CPU µs per answer (utime+stime of the server process
# from /proc/PID/stat over the run, divided by the answers), and the ratios parley/coturn (target
# >= 1.2) and parley/echo (target >= 0.75). Exit status: 0 when both targets are met, 3 when a target
# is missed, 4 when some run stayed disturbed by other processes (verdict unreliable), 1/2 on errors.
# Only 127.0.0.1 is used; every port is chosen free at run time; every process started is stopped on
# exit (trap).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
LOAD=${LOAD:-"-s 16 -w 4 -d 5"}
PARLEY_FLAGS=${PARLEY_FLAGS-"--server-threads 1"}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
STUNLOAD_SRC=${STUNLOAD_SRC:-/work/shared/tools/stunload/stunload.c}
OTHER_MAX=${OTHER_MAX:-10}
RETRIES=${RETRIES:-3}
TARGET_COTURN=1.2
TARGET_ECHO=0.75

log() { printf '[bench-stun] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

WORK=$(mktemp -d /tmp/bench-stun.XXXXXX)
cd "$WORK"   # nothing this script runs writes into the repository
PIDS=()
MADE_RCD=0
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$p" 2>/dev/null || true
    fi
  done
  [ "$MADE_RCD" = 0 ] || rm -f /usr/sbin/policy-rc.d
  if [ "$KEEP_WORK" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- prerequisites ----
command -v gcc >/dev/null || die "gcc is needed"
command -v python3 >/dev/null || die "python3 is needed (free-port test)"
[ -r "$STUNLOAD_SRC" ] || die "stunload source not found at $STUNLOAD_SRC"

if ! command -v turnserver >/dev/null; then
  [ "$(id -u)" = 0 ] || die "coturn is not installed and this is not root"
  log "installing coturn (services kept from starting by a temporary policy-rc.d)"
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; MADE_RCD=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends coturn >/dev/null || die "apt-get install coturn failed"
  if [ "$MADE_RCD" = 1 ]; then rm -f /usr/sbin/policy-rc.d; MADE_RCD=0; fi
fi
COTURN_VERSION=$(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo unknown)

mkdir -p "$WORK/bin"
gcc -O2 -Wall -o "$WORK/bin/stunload" "$STUNLOAD_SRC"
gcc -O2 -Wall -o "$WORK/bin/udpecho" "$ROOT/benchmarks/udpecho.c"
STUNLOAD=$WORK/bin/stunload

PARLEY=${PARLEY_BIN:-$ROOT/.build/release/parley}
if [ "$SKIP_BUILD" != 1 ] && [ -z "${PARLEY_BIN:-}" ]; then
  log "swift build -c release --product parley (a clean build of the dependencies takes ~9 min)"
  (cd "$ROOT" && swift build -c release --product parley && swift build -c release --product NIOEcho) > "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
fi
NIOECHO=$ROOT/.build/release/NIOEcho
[ -x "$NIOECHO" ] || { log "no $NIOECHO: the NIO echo series is left out"; NIOECHO=""; }
[ -x "$PARLEY" ] || die "$PARLEY missing (build it or drop SKIP_BUILD)"

# ---------------------------------------------------------------- helpers ----
HZ=$(getconf CLK_TCK)

# utime+stime (clock ticks) of a whole process (all threads). Field 2 (comm) may hold spaces.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# busy ticks of the whole machine (user nice system irq softirq steal), for the "other load" column
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# A port free for UDP and TCP on 127.0.0.1, below the ephemeral range (still racy: callers verify).
free_port() {
  python3 - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(20000, 32000)
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", p))
            s.close()
        print(p)
        break
    except OSError:
        pass
else:
    raise SystemExit("no free port found")
EOF
}

# Does a STUN (or echo) server answer on 127.0.0.1:PORT?
probe() { # mode port
  "$STUNLOAD" -M "$1" -s 1 -w 1 -n 20 -d 0.5 -D 200 -q 127.0.0.1 "$2" 2>/dev/null | grep -q ' answered=[1-9]'
}

wait_probe() { # mode port pid
  local i
  for i in $(seq 1 50); do
    kill -0 "$3" 2>/dev/null || return 1
    probe "$1" "$2" && return 0
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------- servers ----
start_coturn() {
  local attempt port pid
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    # -n: never read /etc/turnserver.conf; --db keeps coturn's SQLite file in the temp dir too.
    turnserver -n --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 --listening-port="$port" --lt-cred-mech \
      --user=alice:secret --realm=lab --no-cli --no-tls --no-dtls --log-file=stdout --simple-log \
      --pidfile="$WORK/coturn.pid" --db="$WORK/turndb" -m 1 > "$WORK/coturn.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if wait_probe stun "$port" "$pid"; then COTURN_PID=$pid; COTURN_PORT=$port; return 0; fi
    log "coturn did not come up on port $port (attempt $attempt), retrying"
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  done
  tail -20 "$WORK/coturn.log" >&2
  die "coturn would not start"
}

start_parley() { # binary name -> sets STARTED_PID, STARTED_PORT
  local bin=$1 name=$2 pid port i extra=""
  rm -f "$WORK/$name.ready"
  # STUN only: signaling off where the binary has it (builds from before signaling do not know the flag).
  case $("$bin" serve --help 2>/dev/null || true) in *--signal-enabled*) extra="--signal-enabled no" ;; esac
  # shellcheck disable=SC2086
  "$bin" serve $extra --stun-listen 127.0.0.1 --stun-port 0 --stun-tcp no --http-listen 127.0.0.1 --http-port 0 \
    --ready-file "$WORK/$name.ready" $PARLEY_FLAGS > "$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for i in $(seq 1 100); do
    [ -s "$WORK/$name.ready" ] && break
    kill -0 "$pid" 2>/dev/null || { tail -20 "$WORK/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  port=$(sed -n 's/^stun_udp=//p' "$WORK/$name.ready")
  [ -n "$port" ] || die "$name wrote no stun_udp port"
  wait_probe stun "$port" "$pid" || die "$name does not answer on $port"
  STARTED_PID=$pid; STARTED_PORT=$port
}

start_echo() { # binary name -> sets STARTED_PID, STARTED_PORT
  local pid i port=""
  "$1" > "$WORK/$2.out" 2> "$WORK/$2.log" &
  pid=$!
  PIDS+=("$pid")
  for i in $(seq 1 50); do
    port=$(sed -n 's/^port=//p' "$WORK/$2.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || die "$2 did not start"
  wait_probe echo "$port" "$pid" || die "$2 does not answer"
  STARTED_PID=$pid; STARTED_PORT=$port
}

# ---------------------------------------------------------------- measurement ----
RESULTS=$WORK/results.txt
: > "$RESULTS"

# One measurement; prints its result line (see the awk printf for the columns).
measure_once() { # name mode pid port run
  local name=$1 mode=$2 pid=$3 port=$4 run=$5 c0 c1 b0 b1 out rc=0
  b0=$(machine_busy); c0=$(cpu_ticks "$pid")
  # shellcheck disable=SC2086
  out=$("$STUNLOAD" -M "$mode" $LOAD -n 20000000 -q 127.0.0.1 "$port") || rc=$?
  c1=$(cpu_ticks "$pid"); b1=$(machine_busy)
  local load1; load1=$(cut -d' ' -f1 /proc/loadavg)
  [ "$rc" = 0 ] || log "stunload exited $rc against $name: $out"
  echo "$out" | awk -v name="$name" -v run="$run" -v c="$((c1 - c0))" -v busy="$((b1 - b0))" -v hz="$HZ" -v la="$load1" '
    /^RESULT / {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      srv = c / hz
      cpu_us = v["answered"] > 0 ? srv * 1e6 / v["answered"] : 0
      other = busy / hz - srv - v["gen_cpu_s"]          # CPU seconds used by anything else
      if (other < 0) other = 0
      printf "%s %d %.0f %d %.2f %.4f %.2f %.2f %s %.0f %d\n", name, run, v["resp_rate"], v["answered"], cpu_us,
        v["loss_pct"], srv, other / v["wall_s"] * 100, la, v["gen_rqwait_ms"], v["xma_bad"] + v["xma_missing"]
    }'
}

# A measurement during which other processes took more than OTHER_MAX % of a core is repeated (up
# to RETRIES times, after a pause); if it stays disturbed, the last attempt is kept and counted.
measure() { # name mode pid port run
  local attempt line disturbed note f
  for attempt in $(seq 0 "$RETRIES"); do
    line=$(measure_once "$@")
    [ -n "$line" ] || die "no RESULT from stunload against $1"
    read -r -a f <<<"$line"
    disturbed=$(awk -v o="${f[7]}" -v m="$OTHER_MAX" 'BEGIN { print (o > m) ? 1 : 0 }')
    note=""
    if [ "$disturbed" = 1 ]; then
      if [ "$attempt" -lt "$RETRIES" ]; then note="  DISTURBED, repeating"; else note="  DISTURBED, kept"; fi
    fi
    printf '  run %d %-7s %8s answers/s  %6s µs CPU/answer  loss %s%%  server CPU %ss  other load %s%% of a core  load1 %s  generator waited %s ms%s\n' \
      "${f[1]}" "${f[0]}" "${f[2]}" "${f[4]}" "${f[5]}" "${f[6]}" "${f[7]}" "${f[8]}" "${f[9]}" "$note" >&2
    [ "${f[10]}" = 0 ] || log "WARNING: $1 gave ${f[10]} answers without a correct XOR-MAPPED-ADDRESS"
    if [ "$disturbed" = 1 ] && [ "$attempt" -lt "$RETRIES" ]; then sleep 5; continue; fi
    echo "$line $disturbed" >> "$RESULTS"
    return 0
  done
}

# Median of a column over a server's runs, leaving out disturbed runs when there are undisturbed ones.
median() { # name column
  awk -v n="$1" -v col="$2" '
    $1 == n { all[++na] = $col; if ($12 == 0) clean[++nc] = $col }
    END { if (nc > 0) for (i = 1; i <= nc; i++) print clean[i]; else for (i = 1; i <= na; i++) print all[i] }' "$RESULTS" |
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- run ----
NPROC=$(nproc)
log "machine: $NPROC cores, $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${PARLEY_BIN:-}" ]; then PARLEY_DESC=$PARLEY_BIN; else
  PARLEY_DESC=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
  if [ -n "$(cd "$ROOT" && git status --porcelain -- Sources 2>/dev/null || true)" ]; then
    PARLEY_DESC="$PARLEY_DESC + uncommitted changes in Sources"
  fi
fi
log "coturn $COTURN_VERSION; parley $PARLEY_DESC, flags: ${PARLEY_FLAGS:-none}"
case $COTURN_VERSION in 4.6.1*) ;; *) log "WARNING: coturn $COTURN_VERSION is not the 4.6.1 the reference figures are for" ;; esac
log "stunload $LOAD (closed loop), $RUNS interleaved runs per server"

start_coturn
start_parley "$PARLEY" parley; PARLEY_PID=$STARTED_PID; PARLEY_PORT=$STARTED_PORT
if [ -n "${BASELINE_BIN:-}" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN $BASELINE_BIN is not executable"
  start_parley "$BASELINE_BIN" base; BASE_PID=$STARTED_PID; BASE_PORT=$STARTED_PORT
  log "baseline parley $BASELINE_BIN: pid $BASE_PID port $BASE_PORT"
fi
start_echo "$WORK/bin/udpecho" echo; ECHO_PID=$STARTED_PID; ECHO_PORT=$STARTED_PORT
if [ -n "$NIOECHO" ]; then start_echo "$NIOECHO" nioecho; NIOECHO_PID=$STARTED_PID; NIOECHO_PORT=$STARTED_PORT; fi
log "coturn pid $COTURN_PID port $COTURN_PORT; parley pid $PARLEY_PID port $PARLEY_PORT; echo pid $ECHO_PID port $ECHO_PORT${NIOECHO:+; nio echo pid $NIOECHO_PID port $NIOECHO_PORT}"

# Warm-up (page faults, buffer pools, caches): one second each, not counted.
"$STUNLOAD" -M stun -s 16 -w 4 -d 1 -q 127.0.0.1 "$COTURN_PORT" > /dev/null || true
"$STUNLOAD" -M stun -s 16 -w 4 -d 1 -q 127.0.0.1 "$PARLEY_PORT" > /dev/null || true
[ -z "${BASELINE_BIN:-}" ] || "$STUNLOAD" -M stun -s 16 -w 4 -d 1 -q 127.0.0.1 "$BASE_PORT" > /dev/null || true
"$STUNLOAD" -M echo -s 16 -w 4 -d 1 -q 127.0.0.1 "$ECHO_PORT" > /dev/null || true
[ -z "$NIOECHO" ] || "$STUNLOAD" -M echo -s 16 -w 4 -d 1 -q 127.0.0.1 "$NIOECHO_PORT" > /dev/null || true

for run in $(seq 1 "$RUNS"); do
  measure coturn stun "$COTURN_PID" "$COTURN_PORT" "$run"
  measure parley stun "$PARLEY_PID" "$PARLEY_PORT" "$run"
  [ -z "${BASELINE_BIN:-}" ] || measure base stun "$BASE_PID" "$BASE_PORT" "$run"
  measure echo echo "$ECHO_PID" "$ECHO_PORT" "$run"
  [ -z "$NIOECHO" ] || measure nioecho echo "$NIOECHO_PID" "$NIOECHO_PORT" "$run"
done

C_RATE=$(median coturn 3); P_RATE=$(median parley 3); E_RATE=$(median echo 3)
C_CPU=$(median coturn 5); P_CPU=$(median parley 5); E_CPU=$(median echo 5)
C_LOSS=$(median coturn 6); P_LOSS=$(median parley 6); E_LOSS=$(median echo 6)
DISTURBED=$(awk '$12 == 1' "$RESULTS" | wc -l)
OTHER=$(awk '$12 == 0 { print $8 }' "$RESULTS" | sort -g | tail -1)
LOADS=$(awk '{ print $9 }' "$RESULTS" | sort -g | sed -n '1p;$p' | paste -sd- -)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
R_COTURN=$(ratio "$P_RATE" "$C_RATE")
R_ECHO=$(ratio "$P_RATE" "$E_RATE")
OK_C=$(awk -v r="$R_COTURN" -v t="$TARGET_COTURN" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')
OK_E=$(awk -v r="$R_ECHO" -v t="$TARGET_ECHO" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')

echo
echo "STUN Binding, stunload $LOAD (closed loop), 127.0.0.1, medians of $RUNS interleaved runs"
echo "machine: $NPROC cores; load average (1 min) during the runs: $LOADS; other processes used up to ${OTHER:-?}% of a core in the runs used"
if [ "$DISTURBED" -gt 0 ]; then
  echo "WARNING: $DISTURBED run(s) stayed disturbed (other processes > ${OTHER_MAX}% of a core) after $RETRIES repeats;"
  echo "         medians leave them out where a server has undisturbed runs. Rerun on a quieter machine."
fi
printf '%-22s %12s %16s %8s\n' "server" "answers/s" "CPU µs/answer" "loss %"
printf '%-22s %12.0f %16.2f %8.3f\n' "coturn $COTURN_VERSION -m 1" "$C_RATE" "$C_CPU" "$C_LOSS"
printf '%-22s %12.0f %16.2f %8.3f\n' "parley serve" "$P_RATE" "$P_CPU" "$P_LOSS"
if [ -n "${BASELINE_BIN:-}" ]; then
  printf '%-22s %12.0f %16.2f %8.3f\n' "parley baseline" "$(median base 3)" "$(median base 5)" "$(median base 6)"
fi
printf '%-22s %12.0f %16.2f %8.3f\n' "udp echo (ceiling)" "$E_RATE" "$E_CPU" "$E_LOSS"
if [ -n "$NIOECHO" ]; then
  N_RATE=$(median nioecho 3)
  printf '%-22s %12.0f %16.2f %8.3f\n' "NIO udp echo" "$N_RATE" "$(median nioecho 5)" "$(median nioecho 6)"
fi
echo "parley/coturn = $R_COTURN (target >= $TARGET_COTURN: $OK_C)"
echo "parley/echo   = $R_ECHO (target >= $TARGET_ECHO: $OK_E)"
if [ -n "$NIOECHO" ]; then
  echo "NIO echo/echo = $(ratio "$N_RATE" "$E_RATE") (SwiftNIO's datagram path alone, no work per datagram); parley/NIO echo = $(ratio "$P_RATE" "$N_RATE")"
fi
if [ -n "${BASELINE_BIN:-}" ]; then
  echo "baseline: base/coturn = $(ratio "$(median base 3)" "$C_RATE"), base/echo = $(ratio "$(median base 3)" "$E_RATE"), parley/base = $(ratio "$P_RATE" "$(median base 3)")"
fi
echo "RESULT coturn_rate=$C_RATE parley_rate=$P_RATE echo_rate=$E_RATE coturn_cpu_us=$C_CPU parley_cpu_us=$P_CPU echo_cpu_us=$E_CPU parley_coturn=$R_COTURN parley_echo=$R_ECHO${NIOECHO:+ nioecho_rate=$N_RATE nioecho_cpu_us=$(median nioecho 5) nioecho_echo=$(ratio "$N_RATE" "$E_RATE")} disturbed=$DISTURBED"

if [ "$DISTURBED" -gt 0 ]; then
  echo "UNRELIABLE: medians include disturbed runs; the target verdicts above are not to be trusted"
  exit 4
fi
[ "$OK_C" = met ] && [ "$OK_E" = met ] || exit 3
