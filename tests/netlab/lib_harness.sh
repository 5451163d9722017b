# tests/netlab/lib_harness.sh - the harness every netlab test script shares (sourced, not run): where the
# lab and the repository are, a private and complete copy of the parley binary, stopping what the script
# started and tearing the lab down on exit, PASS/FAIL counting.
#
# Before sourcing, a script sets NAME (messages, temp-dir names) and NETLAB_PREFIX's default. It gets:
# HERE, ROOT, TOPO, PY, RESULTS (raw output; NETLAB_RESULTS or a new temp dir), SRV1, SRV2, ALLOW,
# bail MESSAGE, PARLEY (the private copy), PIDS / SERVER_PID / CLIENT_PIDS (all stopped on exit),
# stop_pid PID, pass CHECK TEXT, fail CHECK TEXT [FILE] (FILE absolute or relative to RESULTS), the
# counters passed/failed, and secs START (seconds since a `date +%s.%N`).

HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)}
ROOT=${ROOT:-$(cd "$HERE/../.." && pwd)}
_topo_default=/work/shared/netlab/topo.sh
[[ -f "$ROOT/../shared/netlab/topo.sh" ]] && _topo_default="$ROOT/../shared/netlab/topo.sh"
TOPO=${NETLAB_TOPO:-$_topo_default}
export NETLAB_QUIET=1
PY=${PYTHON:-python3}
RESULTS=${NETLAB_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")}
mkdir -p "$RESULTS"
SRV1=203.0.113.10
SRV2=203.0.113.11
ALLOW=198.51.100.0/24,203.0.113.0/24

bail() { echo "$NAME: $*" >&2; echo "0 passed, 1 failed"; exit 2; }
[ "$(id -u)" = 0 ] || bail "must run as root"
[ -x "$TOPO" ] || bail "no netlab at $TOPO"

# A private copy of the binary, so a concurrent `swift build` cannot swap it mid-run; copied only once
# it is complete (unchanged for 2 s, and it runs --version).
BIN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/${NAME}_bin.XXXXXX")
copy_binary() {  # copy_binary SRC
  local src=$1 s1 s2
  for _ in $(seq 1 150); do
    if [ -x "$src" ]; then
      s1=$(stat -c '%s %Y' "$src" 2>/dev/null); sleep 2; s2=$(stat -c '%s %Y' "$src" 2>/dev/null)
      if [ -n "$s1" ] && [ "$s1" = "$s2" ] && cp "$src" "$BIN_DIR/parley" 2>/dev/null \
         && "$BIN_DIR/parley" --version >/dev/null 2>&1; then
        return 0
      fi
    else
      sleep 2
    fi
  done
  return 1
}
if [ -z "${PARLEY:-}" ]; then
  PARLEY="$ROOT/.build/debug/parley"
  [ -x "$PARLEY" ] || (cd "$ROOT" && swift build --product parley >"$RESULTS/build.log" 2>&1)
fi
copy_binary "$PARLEY" || { rm -rf "$BIN_DIR"; bail "no usable parley binary at $PARLEY"; }
PARLEY=$BIN_DIR/parley

SERVER_PID=""
CLIENT_PIDS=()
PIDS=()
stop_pid() {  # stop_pid PID: TERM, then KILL after 3 s
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
}
cleanup() {
  local p
  for p in "${CLIENT_PIDS[@]}" "${PIDS[@]}"; do stop_pid "$p"; done
  [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
  "$TOPO" down >/dev/null 2>&1
  rm -rf "$BIN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1: $2"; }
fail() {
  local where=${3:-$RESULTS}
  [[ "$where" == /* ]] || where=$RESULTS/$where
  failed=$((failed + 1)); echo "FAIL $1: $2 (see $where)"
}
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
