#!/usr/bin/env bash
# tests/call/ending.sh - ending a call the way people do (issue 13), between two `parley` CLI clients
# through our server on loopback, every check on `--events-json` events and on the recordings.
#
#   tests/call/ending.sh         (PARLEY=/path/to/parley to pick the binary; else it is built)
#
# 1. SIGINT on the caller mid-call, then 2. on the callee: the interrupted side hangs up and exits 130, the
#    other reports the end within 1 s and exits 0; both recordings read by sox, as long as the call's wall
#    time within 100 ms, carrying the tone the other side sent (frequency ±2 Hz, level ±2 dB). SIGTERM on
#    the caller hangs up the same way and exits 143.
# 3. The signaling server killed mid-call, then SIGINT on the caller and a second SIGINT 0.2 s later: the
#    callee hears the end through the media path's authenticated goodbye within 1 s; the second Ctrl-C
#    exits at once (130) instead of waiting for the server.
# 4. kill -9 of the callee mid-call: its recording is still read by sox with the tone in it; the caller's
#    stats say nothing is heard and its recording keeps real time until it hangs up (length = wall time).
# 5. One silent side (no source), between accounts whose keys are given as relative paths from two
#    directories (and a third with `~`): the sender's stats say "silent", the silent side hears the tone
#    with no concealment and MOS >= 4.0; each account's trust (KEY.trust, KEY.contacts) and the NAT cache sit
#    beside its key, and nothing new appears at the filesystem root.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=ending
source "$HERE/common.sh"
enter_private_net "$0" "$@"

ROOT_BEFORE=$(ls -A /)
# Accounts 5 uses, made first: keys by relative path from their own directories, and one with `~`.
mkdir -p "$TMP/A" "$TMP/B" "$TMP/home"
(cd "$TMP/A" && "$PARLEY" keygen --out carol.key >carol.pub 2>/dev/null) || bail "keygen carol.key (relative) failed"
(cd "$TMP/B" && "$PARLEY" keygen --out dave.key >dave.pub 2>/dev/null) || bail "keygen dave.key (relative) failed"
HOME="$TMP/home" "$PARLEY" keygen --out "~/erin.key" >"$TMP/erin.pub" 2>/dev/null || bail "keygen ~/erin.key failed"
{ echo "carol.default = $(cat "$TMP/A/carol.pub")"; echo "dave.default = $(cat "$TMP/B/dave.pub")"
  echo "erin.default = $(cat "$TMP/erin.pub")"; } >"$TMP/accounts.conf"
# In our own namespace (root) STUN can run RFC 5780 on two loopback addresses with fixed ports, so a call's
# behaviour discovery has a result to cache (check 5); elsewhere ports must be ephemeral and there is none.
if [ "$(id -u)" = 0 ]; then
  STUN_FLAGS="--stun-listen 127.0.0.1 --stun-port 3478 --stun-alternate-address 127.0.0.2 --stun-alternate-port 3479"
fi
start_server alice.phone bob.phone

# spawn ACCOUNT SUBCOMMAND ARGS… &  — becomes the parley process itself (exec), so $! is its pid and
# signals reach it; only use it in the background.
spawn() {
  local acct=$1; shift
  local sub=$1; shift
  exec "$PARLEY" "$sub" "$@" --server "127.0.0.1:$PORT" --key "$TMP/keys/$acct.key" \
    --user "${acct%%.*}" --device "${acct#*.}" --media-bind 127.0.0.1
}
# wait_event FILE EVENT SECONDS: until FILE holds an event of that name.
wait_event() {
  for _ in $(seq $(($3 * 10))); do grep -q "\"event\":\"$2\"" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
# finish PID SECONDS: its exit code, killing it if it outlives SECONDS.
finish() {
  for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1"
}
# start_call N [callee flags…]: bob answers (1 kHz tone) and alice calls (440 Hz); returns once audio flows
# both ways. Files: $TMP/N-{alice,bob}.{wav,jsonl,out}; pids ALICE, BOB.
start_call() {
  local n=$1; shift
  spawn bob.phone answer --auto --timeout 60 --tone 1000 --record "$TMP/$n-bob.wav" --events-json "$TMP/$n-bob.jsonl" \
    --stats "$@" >"$TMP/$n-bob.out" 2>&1 &
  BOB=$!; PIDS+=($BOB)
  wait_event "$TMP/$n-bob.jsonl" waiting 10 || note "bob not waiting ($TMP/$n-bob.out)"
  spawn alice.phone call bob --tone 440 --record "$TMP/$n-alice.wav" --events-json "$TMP/$n-alice.jsonl" --stats \
    >"$TMP/$n-alice.out" 2>&1 &
  ALICE=$!; PIDS+=($ALICE)
  wait_event "$TMP/$n-alice.jsonl" first-audio 10 && wait_event "$TMP/$n-bob.jsonl" first-audio 10
  check $? "$n-audio-flows" "first audio decrypted on both sides ($TMP/$n-*.out)"
}
checks_of_recordings() { # N: both recordings as long as the call, with the other side's tone
  count "$PY" "$HERE/check_ending.py" length "$1-alice-recording" "$TMP/$1-alice.wav" "$TMP/$1-alice.jsonl"
  count "$PY" "$HERE/check_ending.py" length "$1-bob-recording" "$TMP/$1-bob.wav" "$TMP/$1-bob.jsonl"
  count "$PY" "$HERE/check_call.py" audio "$TMP/$1-alice.wav" 1000 -20
  count "$PY" "$HERE/check_call.py" audio "$TMP/$1-bob.wav" 440 -20
}

# interrupt_call N SIDE: a call whose SIDE (alice or bob) gets Ctrl-C after 3 s of audio; SIDE exits 130,
# the other side is told within 1 s and exits 0; both recordings as long as the call, with the right tone.
interrupt_call() {
  local n=$1 side=$2 victim other_name other rc
  start_call "$n"
  if [ "$side" = alice ]; then victim=$ALICE other=$BOB other_name=bob; else victim=$BOB other=$ALICE other_name=alice; fi
  sleep 3
  kill -INT $victim
  finish $victim 10; rc=$?; check $([ $rc = 130 ]; echo $?) "$n-$side-exit" "$side exited $rc after SIGINT (130 expected)"
  finish $other 10; rc=$?; check $rc "$n-$other_name-exit" "$other_name exited $rc"
  count "$PY" "$HERE/check_ending.py" told "$n" "$TMP/$n-$side.jsonl" "$TMP/$n-$other_name.jsonl"
  checks_of_recordings "$n"
}

# 1. Ctrl-C on the caller, 2. on the callee.
interrupt_call 1 alice
interrupt_call 2 bob
# 2b. SIGTERM (a service manager stopping it) hangs up the same way and exits 143.
start_call 2b
sleep 1
kill -TERM $ALICE
finish $ALICE 10; rc=$?; check $([ $rc = 143 ]; echo $?) 2b-sigterm-exit "alice exited $rc after SIGTERM (143 expected)"
finish $BOB 10; rc=$?; check $rc 2b-callee-exit "bob exited $rc"
grep -q '"reason":"sigterm"' "$TMP/2b-alice.jsonl"; check $? 2b-sigterm-reason "$(grep -m1 '"event":"ended"' "$TMP/2b-alice.jsonl")"
count "$PY" "$HERE/check_ending.py" told 2b "$TMP/2b-alice.jsonl" "$TMP/2b-bob.jsonl"

# 3. Signaling gone: the media path's goodbye carries the end; a second Ctrl-C does not wait for the server.
start_call 3
sleep 2
kill -9 $SERVER; wait $SERVER 2>/dev/null
sleep 0.5
kill -INT $ALICE
sleep 0.2
second=$(date +%s%N)
kill -INT $ALICE
finish $ALICE 10; rc=$?
gone=$(( ($(date +%s%N) - second) / 1000000 ))
check $([ $rc = 130 ] && [ $gone -le 500 ]; echo $?) 3-second-interrupt "alice exited $rc ${gone} ms after the second SIGINT (130 within 500 ms expected)"
grep -q "second interrupt" "$TMP/3-alice.out"; check $? 3-second-interrupt-said "$(grep -m1 'second interrupt' "$TMP/3-alice.out")"
finish $BOB 10; rc=$?; check $rc 3-callee-exit "bob exited $rc"
grep -q '"reason":"peer-hangup"' "$TMP/3-bob.jsonl"; check $? 3-media-goodbye "$(grep -m1 '"event":"ended"' "$TMP/3-bob.jsonl")"
count "$PY" "$HERE/check_ending.py" told 3 "$TMP/3-alice.jsonl" "$TMP/3-bob.jsonl"
count "$PY" "$HERE/check_ending.py" length 3-alice-recording "$TMP/3-alice.wav" "$TMP/3-alice.jsonl"
run_server

# 4. kill -9 of the callee: its recording stays readable; the caller keeps real time.
start_call 4
sleep 3
kill -9 $BOB; wait $BOB 2>/dev/null
sleep 3
kill -INT $ALICE
finish $ALICE 10; rc=$?; check $([ $rc = 130 ]; echo $?) 4-caller-exit "alice exited $rc after SIGINT (130 expected)"
count "$PY" "$HERE/check_ending.py" length 4-killed-recording "$TMP/4-bob.wav" - 2.0
count "$PY" "$HERE/check_call.py" audio "$TMP/4-bob.wav" 440 -20
count "$PY" "$HERE/check_ending.py" length 4-alice-recording "$TMP/4-alice.wav" "$TMP/4-alice.jsonl"
grep -q '"peer_audio":"unheard"' "$TMP/4-alice.jsonl"; check $? 4-peer-unheard "alice's stats: $(grep -c '"peer_audio":"unheard"' "$TMP/4-alice.jsonl") lines 'nothing heard from the peer'"

# 5. A silent side, relative key paths in two directories, and `~`.
(cd "$TMP/A" && exec "$PARLEY" answer --auto --timeout 60 --record rel.wav --events-json carol.jsonl --stats \
  --server "127.0.0.1:$PORT" --key carol.key --user carol --media-bind 127.0.0.1 >carol.out 2>&1) &
CAROL=$!; PIDS+=($CAROL)
wait_event "$TMP/A/carol.jsonl" waiting 10
(cd "$TMP/B" && exec "$PARLEY" call carol --tone 440 --hold 5 --record rel.wav --events-json dave.jsonl --stats \
  --stun "127.0.0.1:$STUN_PORT" --server "127.0.0.1:$PORT" --key dave.key --user dave --media-bind 127.0.0.1 >dave.out 2>&1) &
DAVE=$!; PIDS+=($DAVE)
finish $DAVE 30; rc=$?; check $rc 5-caller-exit "dave exited $rc ($TMP/B/dave.out)"
finish $CAROL 10; rc=$?; check $rc 5-callee-exit "carol exited $rc ($TMP/A/carol.out)"
count "$PY" "$HERE/check_ending.py" silent 5 "$TMP/B/dave.jsonl" "$TMP/A/carol.jsonl"
HOME="$TMP/home" "$PARLEY" keys dave --server "127.0.0.1:$PORT" --key "~/erin.key" --user erin >"$TMP/erin.out" 2>&1
check $? 5-tilde-login "erin (key ~/erin.key) looked up dave ($TMP/erin.out)"
# Each account's trust (user keys and device lists: these accounts upgraded to user keys at their first
# login) sits in its own KEY.trust beside its key.
grep -q '^dave ' "$TMP/A/carol.key.trust" && ! grep -q '^erin ' "$TMP/A/carol.key.trust"
check $? 5-trust-A "carol's trust beside carol.key: $(cut -d' ' -f1 "$TMP/A/carol.key.trust" | tail -n +2 | tr '\n' ' ')"
grep -q '^carol ' "$TMP/B/dave.key.trust" && ! grep -q '^erin ' "$TMP/B/dave.key.trust"
check $? 5-trust-B "dave's trust beside dave.key: $(cut -d' ' -f1 "$TMP/B/dave.key.trust" | tail -n +2 | tr '\n' ' ')"
grep -q '^dave ' "$TMP/home/erin.key.trust"; check $? 5-trust-tilde "erin's trust in ~ ($TMP/home/erin.key.trust)"
[ ! -e "$TMP/A/contacts" ] && [ ! -e "$TMP/B/contacts" ]; check $? 5-contacts-per-account "no shared per-directory contacts file"
[ -f "$TMP/A/carol.key.state" ] && [ -f "$TMP/B/dave.key.state" ] && [ -f "$TMP/home/erin.key.state" ]
check $? 5-state-files "each state file beside its key"
if [ -n "${STUN_FLAGS:-}" ]; then
  [ -s "$TMP/B/nat-cache" ] && [ ! -e "$TMP/A/nat-cache" ]
  check $? 5-nat-cache "dave's NAT cache beside dave.key: $(cat "$TMP/B/nat-cache" 2>/dev/null | cut -f3)"
else
  note "not root: no RFC 5780 server, so no NAT cache to check"
fi
[ -s "$TMP/A/rel.wav" ] && [ -s "$TMP/B/rel.wav" ]; check $? 5-recordings "relative --record lands in the working directory"
[ "$(ls -A /)" = "$ROOT_BEFORE" ] && [ ! -e /contacts ] && [ ! -e /nat-cache ]
check $? 5-root-untouched "nothing new at / ($(comm -13 <(echo "$ROOT_BEFORE") <(ls -A /) | tr '\n' ' '))"

echo "raw logs: $TMP"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
