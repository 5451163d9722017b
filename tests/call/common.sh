# tests/call/common.sh - what the call suites share: the private network namespace (as root), the
# binary, PASS/FAIL counting, keys, a server on loopback and a client wrapper. Sourced, not run.
#   SUITE=name; source "$HERE/common.sh"; enter_private_net "$@"; start_server ACCOUNT... [-- SERVE FLAGS]
# Needs HERE (the suite's directory) set by the caller.
set -uo pipefail

ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
note() { echo "${SUITE:-call}: $*" >&2; }
bail() { note "$*"; echo "0 passed, 1 failed"; exit 1; }

# enter_private_net SCRIPT ARGS: checks the tools, builds the binary if PARLEY is unset, and as root re-runs
# SCRIPT inside its own network namespace (`unshare -n`), so captures and ports hold only this test.
enter_private_net() {
  if [ -z "${PARLEY_CALL_INNER:-}" ]; then
    for tool in tshark sox; do command -v $tool >/dev/null || bail "$tool missing (scripts/setup.sh --test installs it)"; done
    "$PY" -c 'import numpy, cryptography' 2>/dev/null || bail "python3 numpy/cryptography missing (scripts/setup.sh --test)"
    if [ -z "${PARLEY:-}" ]; then
      (cd "$ROOT" && swift build --product parley >/dev/null) || bail "swift build failed"
      PARLEY="$ROOT/.build/debug/parley"
    fi
    export PARLEY PARLEY_CALL_INNER=1
    if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
      exec unshare -n bash "$@"
    fi
    note "not root: running in the host namespace (captures may contain other loopback traffic)"
  fi
  ip link set lo up 2>/dev/null || true
  TMP=$(mktemp -d "/tmp/parley-${SUITE:-call}.XXXXXX")
  PIDS=()
  trap cleanup EXIT
}

cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
PASS=0 FAIL=0
check() { # check OK LABEL DETAIL
  if [ "$1" = 0 ]; then echo "PASS $2: $3"; PASS=$((PASS + 1)); else echo "FAIL $2: $3"; FAIL=$((FAIL + 1)); fi
}
count() { # count the PASS/FAIL lines of a checker's output
  local out; out=$("$@"); echo "$out"
  PASS=$((PASS + $(grep -c '^PASS' <<<"$out"))); FAIL=$((FAIL + $(grep -c '^FAIL' <<<"$out")))
  grep -q '^\(PASS\|FAIL\)' <<<"$out" || FAIL=$((FAIL + 1))
}

# make_keys user.device...: a key per account in $TMP/keys/<acct>.key and its line in $TMP/accounts.conf.
make_keys() {
  mkdir -p "$TMP/keys"
  for acct in "$@"; do
    "$PARLEY" keygen --out "$TMP/keys/$acct.key" >"$TMP/keys/$acct.pub" 2>/dev/null || bail "keygen failed"
    echo "$acct = $(cat "$TMP/keys/$acct.pub")" >>"$TMP/accounts.conf"
  done
}

# run_server [serve flags]: `parley serve` on loopback with the accounts file and the store in $TMP, STUN as
# STUN_FLAGS say (default: 127.0.0.1, an ephemeral port) unless the flags turn it off (signaling port in PORT,
# STUN's UDP port in STUN_PORT; SERVER is its pid). Run it again after killing the server: same accounts,
# same store, same port.
run_server() {
  rm -f "$TMP/ready"
  "$PARLEY" serve --http-listen 127.0.0.1 --http-port 0 --signal-listen 127.0.0.1 --signal-port "${PORT:-0}" \
    ${STUN_FLAGS:---stun-listen 127.0.0.1 --stun-port 0} \
    --store-path "$TMP/parley.sqlite" --signal-accounts-file "$TMP/accounts.conf" --ready-file "$TMP/ready" \
    "$@" >>"$TMP/server.log" 2>&1 &
  SERVER=$!
  PIDS+=($SERVER)
  for _ in $(seq 100); do [ -s "$TMP/ready" ] && grep -q signal_tcp "$TMP/ready" && break; sleep 0.1; done
  PORT=$(sed -n 's/^signal_tcp=//p' "$TMP/ready")
  STUN_PORT=$(sed -n 's/^stun_udp=//p' "$TMP/ready")
  [ -n "$PORT" ] || bail "server did not start ($TMP/server.log)"
}

# start_server user.device... [-- serve flags]: make_keys, then run_server.
start_server() {
  local accts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do accts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  make_keys "${accts[@]}"
  run_server "$@"
}
