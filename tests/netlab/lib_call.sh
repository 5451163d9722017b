# tests/netlab/lib_call.sh - what the netlab call tests share (sourced, not run): the harness
# (lib_harness.sh: private binary, cleanup, PASS/FAIL), keys and accounts for alice and bob, a TURN user,
# and `parley serve` in the server namespace with signaling, STUN (RFC 5780) and TURN.
#
# Before sourcing, a script sets NAME (used for temp-dir names and messages) and NETLAB_PREFIX's default.
# It then gets what lib_harness.sh gives, and make_keys, start_server DIR_FOR_LOGS, client SITE ACCOUNT
# SUBCOMMAND ARGS…, wait_for_callee FILE, played FILE.

source "$(dirname "${BASH_SOURCE[0]}")/lib_harness.sh"

# make_keys: alice.phone and bob.phone, each in its own directory (the pinned contacts live beside the key),
# the accounts file, and TURN user `caller` (password in $RESULTS/turn-password, mode 0600).
make_keys() {
  local acct
  umask 077
  for acct in alice.phone bob.phone; do
    mkdir -p "$RESULTS/keys/$acct"
    "$PARLEY" keygen --out "$RESULTS/keys/$acct/device.key" >"$RESULTS/keys/$acct/device.pub" 2>>"$RESULTS/keygen.log" \
      || bail "keygen failed"
  done
  for acct in alice.phone bob.phone; do echo "$acct = $(cat "$RESULTS/keys/$acct/device.pub")"; done >"$RESULTS/accounts.conf"
  printf 'turnpass1' >"$RESULTS/turn-password"
  printf 'turnpass1' | "$PARLEY" turn-user caller --realm parley >"$RESULTS/turn-users" 2>/dev/null
  umask 022
}

# start_server DIR [FLAGS…]: `parley serve` in the srv namespace (signaling 203.0.113.10:7000, STUN with
# RFC 5780 on both addresses, TURN relaying on 203.0.113.10, plus FLAGS); its pid joins PIDS; returns 1
# when it does not come up.
start_server() {
  local dir=$1 pid
  shift
  rm -f "$dir/ready"
  "$TOPO" exec srv "$PARLEY" serve --http-listen 127.0.0.1 --http-port 0 --ready-file "$dir/ready" \
    --signal-listen "$SRV1" --signal-port 7000 --store-path "$dir/parley.sqlite" \
    --signal-accounts-file "$RESULTS/accounts.conf" \
    --stun-listen "$SRV1" --stun-port 3478 --stun-alternate-address "$SRV2" --stun-alternate-port 3479 \
    --turn-enabled yes --turn-relay-ipv4 "$SRV1" --turn-users-file "$RESULTS/turn-users" --turn-allow-peers "$ALLOW" \
    "$@" >"$dir/serve.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  SERVER_PID=$pid
  for _ in $(seq 1 300); do
    grep -q '^signal_tcp=' "$dir/ready" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# client SITE ACCOUNT SUBCOMMAND ARGS…: a parley client in site a or b with the lab's servers and TURN user.
client() {
  local site=$1 acct=$2 sub=$3
  shift 3
  "$TOPO" exec "$site" timeout -k 5 60 stdbuf -oL "$PARLEY" "$sub" "$@" --server "$SRV1:7000" \
    --key "$RESULTS/keys/$acct/device.key" --user "${acct%%.*}" --device "${acct#*.}" \
    --turn-user caller --turn-password-file "$RESULTS/turn-password" --trace-media
}

# wait_for_callee FILE: until bob's transcript says he waits for a call (at most 15 s).
wait_for_callee() {
  for _ in $(seq 1 150); do grep -q '^waiting for a call' "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# played FILE: the frames played, from a transcript's summary line.
played() { sed -n 's/.*played \([0-9]*\) frames.*/\1/p' "$1" | tail -1; }
