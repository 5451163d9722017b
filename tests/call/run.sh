#!/usr/bin/env bash
# tests/call/run.sh - end-to-end encrypted calls (docs/PROTOCOL.md §5) between two `parley` CLI clients
# through our server on loopback, with a packet capture taken where the server sits.
#
#   tests/call/run.sh            (PARLEY=/path/to/parley to pick the binary; else it is built)
#
# Call 1: alice calls bob, who is logged in on two devices; bob/phone accepts after 0.5 s of ringing,
#   bob/laptop is told "answered elsewhere". alice sends a 440 Hz tone, bob a 1 kHz tone, both at -20 dBFS;
#   each records what it receives. Call 2: alice plays a 44.1 kHz stereo WAV (700 Hz, -14 dBFS, made by sox).
# Then `parley demo` (its own server, fresh keys, a tone each way) must run and measure the right tones.
# Call 3 runs the media over IPv6 (both sides bind ::1).
# Checks: both sides show the same SAS; the recordings carry the sent tone (frequency ±2 Hz, level ±2 dB,
#   numpy FFT); the capture of everything on loopback (tshark) contains none of the media secrets or the
#   keys/IVs derived from them (PARLEY_KEYLOGFILE, a debugging key log like SSLKEYLOGFILE) and none of the
#   Opus packets sent (PARLEY_MEDIA_DUMP), while the audio datagrams it does contain open with the logged keys
#   to exactly those packets (so the capture saw the media, encrypted).
# As root the run sits in its own network namespace (`unshare -n`): the capture holds only this test.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=call
source "$HERE/common.sh"
enter_private_net "$0" "$@"
start_server alice.phone bob.phone bob.laptop -- --stun-enabled no

tshark -q -i lo -w "$TMP/capture.pcapng" >"$TMP/tshark.log" 2>&1 &
TSHARK=$!
PIDS+=($TSHARK)
for _ in $(seq 50); do grep -q "Capturing on" "$TMP/tshark.log" && break; sleep 0.1; done
sleep 0.5

client() { # client ACCOUNT SUBCOMMAND ARGS…
  local acct=$1; shift
  local sub=$1; shift
  PARLEY_KEYLOGFILE="$TMP/keylog" PARLEY_MEDIA_DUMP="$TMP/dump.$acct" \
    timeout -k 5 60 "$PARLEY" "$sub" "$@" --server "127.0.0.1:$PORT" --key "$TMP/keys/$acct.key" \
    --user "${acct%%.*}" --device "${acct#*.}" --media-bind "${MEDIA_BIND:-127.0.0.1}"
}

# Call 1: tones both ways, two callee devices.
client bob.laptop answer --auto --ring-for 30 --timeout 40 >"$TMP/laptop.out" 2>&1 &
LAPTOP=$!
client bob.phone answer --auto --ring-for 0.5 --timeout 40 --tone 1000 --record "$TMP/bob1.wav" >"$TMP/bob1.out" 2>&1 &
BOB=$!
sleep 1
client alice.phone call bob --tone 440 --hold 4 --record "$TMP/alice1.wav" --stats >"$TMP/alice1.out" 2>&1
check $? call1-caller "parley call exited $? ($TMP/alice1.out)"
wait $BOB; check $? call1-callee "parley answer exited ($TMP/bob1.out)"
wait $LAPTOP
grep -q "answered on our other device phone" "$TMP/laptop.out"; check $? call1-elsewhere "bob/laptop: $(grep -m1 -E 'answered|ended|error' "$TMP/laptop.out")"
sas_a=$(grep -m1 'SAS:' "$TMP/alice1.out"); sas_b=$(grep -m1 'SAS:' "$TMP/bob1.out")
[ -n "$sas_a" ] && [ "$sas_a" = "$sas_b" ]; check $? call1-sas "alice${sas_a#*SAS:} / bob${sas_b#*SAS:}"
count "$PY" "$HERE/check_call.py" audio "$TMP/bob1.wav" 440 -20
count "$PY" "$HERE/check_call.py" audio "$TMP/alice1.wav" 1000 -20

# Call 2: a WAV file at 44.1 kHz stereo, resampled by the sender.
sox -n -r 44100 -c 2 -b 16 "$TMP/in.wav" synth 3 sine 700 gain -17 2>/dev/null || bail "sox failed"
client bob.phone answer --auto --timeout 40 --record "$TMP/bob2.wav" >"$TMP/bob2.out" 2>&1 &
BOB=$!
sleep 1
client alice.phone call bob --play "$TMP/in.wav" >"$TMP/alice2.out" 2>&1
check $? call2-caller "parley call --play exited ($TMP/alice2.out)"
wait $BOB; check $? call2-callee "parley answer exited ($TMP/bob2.out)"
sas_a=$(grep -m1 'SAS:' "$TMP/alice2.out"); sas_b=$(grep -m1 'SAS:' "$TMP/bob2.out")
[ -n "$sas_a" ] && [ "$sas_a" = "$sas_b" ]; check $? call2-sas "alice${sas_a#*SAS:} / bob${sas_b#*SAS:}"
# sox's gain -17 on a full-scale sine: -17 dBFS.
count "$PY" "$HERE/check_call.py" audio "$TMP/bob2.wav" 700 -17

# Call 3: media over IPv6 (both sides bind ::1; the ICE candidates are IPv6).
MEDIA_BIND=::1 client bob.phone answer --auto --timeout 40 --tone 1000 --record "$TMP/bob3.wav" >"$TMP/bob3.out" 2>&1 &
BOB=$!
sleep 1
MEDIA_BIND=::1 client alice.phone call bob --tone 440 --hold 3 --record "$TMP/alice3.wav" >"$TMP/alice3.out" 2>&1
check $? call3-ipv6-caller "parley call over IPv6 exited ($TMP/alice3.out)"
wait $BOB; check $? call3-ipv6-callee "parley answer over IPv6 exited ($TMP/bob3.out)"
grep -q '^final path: direct host \[::1\]:[0-9]* .* -> host \[::1\]:' "$TMP/alice3.out"
check $? call3-ipv6-path "$(grep -m1 '^final path' "$TMP/alice3.out")"
count "$PY" "$HERE/check_call.py" audio "$TMP/bob3.wav" 440 -20

sleep 0.5
kill -INT $TSHARK; wait $TSHARK 2>/dev/null
count "$PY" "$HERE/check_call.py" capture "$TMP/capture.pcapng" "$TMP/keylog" "$TMP"/dump.*

# parley demo: the whole thing in one command (its own server on 127.0.0.1, fresh keys), after the
# capture stopped (its media is not in the key log).
timeout -k 5 60 "$PARLEY" demo --seconds 2 --dir "$TMP/demo" >"$TMP/demo.out" 2>&1
check $? demo-exit "parley demo exited ($TMP/demo.out)"
awk '/^bob heard/ {for (i = 1; i <= NF; i++) if ($i == "dominant") b = $(i + 1)}
     /^alice heard/ {for (i = 1; i <= NF; i++) if ($i == "dominant") a = $(i + 1)}
     END {exit !(b > 438 && b < 442 && a > 658 && a < 662)}' "$TMP/demo.out"
check $? demo-audio "$(grep -E '^(bob|alice) heard' "$TMP/demo.out" | sed 's/ -> .*//' | tr '\n' ';')"

echo "raw logs: $TMP"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
