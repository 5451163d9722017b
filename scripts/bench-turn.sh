#!/usr/bin/env bash
# TURN relay load on loopback: coturn 4.6.1 vs `parley serve` (release), the same client for both:
# coturn's own turnutils_uclient in client-to-client mode (-y: both parties of every call allocate,
# each sends to the other's relayed address), no RTCP allocations (-c), 170-byte packets (an Opus
# frame) every 20 ms (-z 20), channels (uclient's default). Steps the number of calls (-m).
#
#   scripts/bench-turn.sh                      # CALLS="250 500 750 1000 1250", SECONDS_PER_STEP=10
#   CALLS="500 1000" scripts/bench-turn.sh
#
# Environment (all optional):
#   CALLS="250 500 750 1000 1250"   steps (uclient -m)
#   SECONDS_PER_STEP=10             packets per party = 50 × this (uclient -n)
#   SERVERS="coturn parley parley-kernel"   which servers, in this order at every step; parley-kernel is
#                                   parley with turn.local_shortcut = no (every datagram through the kernel
#                                   twice, as coturn does)
#   SKIP_BUILD=1                    do not build parley in release mode first
#   PARLEY_FLAGS=""                 extra `parley serve` flags (default: one event loop per core, as
#                                   coturn's default of one relay thread per core)
#   KEEP_WORK=1                     keep the work directory (server logs, raw uclient output)
#
# Per step and server it prints: calls, packets sent and received by uclient, loss %, the server's CPU
# seconds over the run (utime+stime from /proc/PID/stat) and CPU µs per relayed packet (one packet
# = one 170-byte datagram delivered from one party to the other: in, relay out, relay in, out).
# Runs in its own network namespace (unshare -n), so the fixed port 3478 is free and all traffic is
# on that namespace's loopback. uclient runs with tests/turn/chanshim.c preloaded (see below). Needs root (unshare) and coturn (scripts/setup.sh --test installs it).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${BENCH_TURN_INNER:-0}" != 1 ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && swift build -c release --product parley >&2)
  fi
  command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null || "$ROOT/scripts/setup.sh" --test >&2
  export BENCH_TURN_INNER=1
  exec unshare -n "$0" "$@"
fi

CALLS=${CALLS:-"250 500 750 1000 1250"}
SECONDS_PER_STEP=${SECONDS_PER_STEP:-10}
SERVERS=${SERVERS:-"coturn parley parley-kernel"}
PARLEY_FLAGS=${PARLEY_FLAGS:-}
PARLEY=${PARLEY_BIN:-$ROOT/.build/release/parley}
PACKETS=$((SECONDS_PER_STEP * 50))

ip link set lo up
WORK=$(mktemp -d /tmp/bench-turn.XXXXXX)
cd "$WORK"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "[bench-turn] kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# uclient 4.6.1 draws channel numbers from RFC 5766's 0x4000-0x7FFF; RFC 8656 allows 0x4000-0x4FFF and
# Parley answers 400 outside it. The shim keeps uclient's draws inside, for both servers alike.
gcc -shared -fPIC -O2 -o chanshim.so "$ROOT/tests/turn/chanshim.c" -ldl
printf 'pass1' | "$PARLEY" turn-user alice --realm parley > users
chmod 600 users
echo unused-rest-secret > secrets
chmod 600 secrets

# Relay ports: both servers use the same range, wide enough for 2 × 1250 allocations.
start_server() {  # start_server NAME
  case $1 in
    coturn)
      turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 --listening-port 3478 \
        --min-port 49152 --max-port 65535 --allow-loopback-peers --lt-cred-mech --user alice:pass1 \
        --realm parley --no-tls --no-dtls --no-cli --pidfile "$WORK/turnserver.pid" \
        --total-quota 0 --user-quota 0 --max-allocate-lifetime 3600 --log-file "$WORK/coturn.log" --no-stdout-log \
        >/dev/null 2>&1 &
      ;;
    parley|parley-kernel)
      local shortcut=yes
      [ "$1" = parley-kernel ] && shortcut=no
      # shellcheck disable=SC2086
      "$PARLEY" serve --signal-enabled no --http-listen 127.0.0.1 --http-port 0 --stun-listen 127.0.0.1 --stun-tcp no \
        --turn-enabled yes --turn-relay-ipv4 127.0.0.1 --turn-users-file users --turn-allow-loopback-peers yes \
        --turn-user-quota 100000 --turn-total-quota 100000 --turn-local-shortcut $shortcut --log-level warning $PARLEY_FLAGS >"$WORK/parley.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  # (turnutils_stunclient cannot probe readiness: against a closed port it takes its caller down.)
  for _ in $(seq 1 100); do
    if ss -Hlun 'sport = :3478' | grep -q 3478; then sleep 0.3; return 0; fi
    sleep 0.1
  done
  echo "[bench-turn] $1 did not start" >&2
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf '%-13s %6s %9s %9s %8s %8s %10s\n' server calls sent received loss% cpu_s cpu_us/pkt
for calls in $CALLS; do
  for server in $SERVERS; do
    start_server "$server"
    t0=$(cpu_ticks "$SERVER_PID")
    out="$WORK/uclient-$server-$calls.txt"
    # uclient sets its calls up one after another (~0.1 s each at 1,000 calls), then sends.
    LD_PRELOAD=$WORK/chanshim.so timeout $((SECONDS_PER_STEP * 6 + calls / 3 + 60)) turnutils_uclient -y -c -l 170 -z 20 -n "$PACKETS" -m "$calls" \
      -u alice -w pass1 -e 127.0.0.1 127.0.0.1 >"$out" 2>&1 || true
    t1=$(cpu_ticks "$SERVER_PID")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    sent=$(grep -Eo 'tot_send_msgs=[0-9]+' "$out" | tail -1 | cut -d= -f2 || true)
    recv=$(grep -Eo 'tot_recv_msgs=[0-9]+' "$out" | tail -1 | cut -d= -f2 || true)
    loss=$(grep -Eo 'Total lost packets [0-9]+ \([0-9.]+%\)' "$out" | tail -1 | grep -Eo '[0-9.]+%' | tr -d % || true)
    sent=${sent:-0}; recv=${recv:-0}; loss=${loss:-100}
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}')
    per=$(awk -v c="$cpu" -v r="$recv" 'BEGIN{ if (r > 0) printf "%.2f", c*1e6/r; else print "-" }')
    printf '%-13s %6d %9d %9d %8s %8s %10s\n' "$server" "$calls" "$sent" "$recv" "$loss" "$cpu" "$per" | tee -a "$WORK/results"
  done
done

# Verdict: the most calls each server relayed with 0 loss (every packet received), and per step the
# ratio of Parley's CPU per relayed packet to coturn's (< 1 = Parley cheaper).
echo
awk '
  { server=$1; calls=$2; sent=$3; recv=$4; per[server, calls]=$7; steps[calls]=1; servers[server]=1
    if (sent > 0 && recv == sent && calls > best[server]) best[server]=calls }
  END {
    for (s in servers) printf "%-13s most calls with 0 loss: %s\n", s, (best[s] ? best[s] : "none")
    for (c in steps) for (s in servers) if (s != "coturn" && per["coturn", c] > 0 && per[s, c] != "-")
      printf "%-13s at %5d calls: CPU per packet %.2f x coturn\n", s, c, per[s, c] / per["coturn", c]
  }' "$WORK/results" | sort
