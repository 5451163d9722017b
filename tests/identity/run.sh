#!/usr/bin/env bash
# tests/identity/run.sh - accounts the server cannot forge (issue 14, docs/PROTOCOL.md §3.8), over real
# sockets against `parley serve`, with the server's store tampered between steps as a hostile operator would.
#
#   tests/identity/run.sh        (PARLEY=/path/to/parley to pick the binary; else it is built)
#
# 1. alice and bob each make a user key (`parley identity init`); hal, an account with one device made
#    before user keys, upgrades by itself at its first login.
# 2. Safety numbers: equal on both sides; unchanged after alice adds a device.
# 3. alice certifies a second device (`parley device add`); it can log in (the server follows the list), and
#    bob's client seals to both devices with no prompt.
# 4. The operator adds a device to bob (`parley user add`, or a row written into the store + SIGHUP): refused,
#    not served, never sealed to. (A server that presents it anyway: ParleyClientTests/HostileServerListTests.)
# 5. The store is tampered (server stopped): alice's newest list deleted (rollback), then a list signed by the
#    server's own key appended (swapped user key): bob refuses each with its own warning and sends nothing;
#    bob had marked alice verified, so the swap blocks `send` until --accept-new-key.
#    Afterwards the number differs and is no longer marked verified.
# 6. bob certifies a tablet, then removes it: nobody seals to it any more, and it can no longer log in.
# 7. Invitations: carol registers with one; reused, expired, forged and other-name invites refused; the
#    three registration modes (invite, open, closed).
# 8. Linking by code: carol's laptop shows a code, her phone approves it; an altered code is refused.
# 9. The whole flow of a new user: a call that rings both of carol's devices, a message read on both.
# 10. The server loses its store: a pinned list it no longer presents is refused until its owner's device
#     puts it back.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=identity
source "$HERE/../call/common.sh"
enter_private_net "$0" "$@"
start_server alice.phone bob.phone hal.phone -- --stun-enabled no

cli() { # cli ACCOUNT SUBCOMMAND ARGS…
  local acct=$1; shift
  local sub=$1; shift
  timeout -k 5 30 "$PARLEY" $sub "$@" --server "127.0.0.1:$PORT" --key "$TMP/keys/$acct.key" \
    --user "${acct%%.*}" --device "${acct#*.}"
}
number() { grep -A1 '^safety number' "$1" | tail -1 | tr -d ' '; }
restart_server() { kill $SERVER; wait $SERVER 2>/dev/null; "$@"; run_server --stun-enabled no; }

# 1. User keys.
for acct in alice.phone bob.phone; do
  cli $acct "identity init" >"$TMP/init.$acct" 2>&1; rc=$?
  check $rc "1-init-$acct" "$(grep -m1 '^user key' "$TMP/init.$acct") ($TMP/init.$acct)"
done
[ "$(stat -c %a "$TMP/keys/bob.phone.key.user")" = 600 ] && grep -q "^recovery code" "$TMP/init.alice.phone"
check $? 1-user-key-file "KEY.user mode $(stat -c %a "$TMP/keys/bob.phone.key.user"), recovery code printed once"
cli alice.phone "identity init" >"$TMP/init.again" 2>&1; [ $? != 0 ]; check $? 1-init-once "a second init refused: $(tail -1 "$TMP/init.again")"

# The user key comes back from its recovery file and the code printed once (read from stdin).
code=$(sed -n 's/^recovery code (shown once; keep it apart from the file): //p' "$TMP/init.alice.phone")
mv "$TMP/keys/alice.phone.key.user" "$TMP/alice.user.lost"
echo "$code" | cli alice.phone "identity recover" "$TMP/keys/alice.phone.key.user.recovery" >"$TMP/recover.out" 2>&1
cmp -s "$TMP/keys/alice.phone.key.user" "$TMP/alice.user.lost" && [ "$(stat -c %a "$TMP/keys/alice.phone.key.user")" = 600 ]
check $? 1-recover "$(tail -1 "$TMP/recover.out")"
mv "$TMP/keys/alice.phone.key.user" "$TMP/alice.user.again"
echo "AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA" | cli alice.phone "identity recover" "$TMP/keys/alice.phone.key.user.recovery" >"$TMP/recover.bad" 2>&1
rc=$?; mv "$TMP/alice.user.again" "$TMP/keys/alice.phone.key.user"
[ $rc != 0 ] && grep -q "does not open" "$TMP/recover.bad"; check $? 1-recover-wrong-code "exit $rc: $(tail -1 "$TMP/recover.bad")"

# An account made before user keys, with one device, upgrades at its first login with this client.
cli hal.phone keys alice >"$TMP/hal1.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "note: upgraded hal to a user key" "$TMP/hal1.out" && [ "$(stat -c %a "$TMP/keys/hal.phone.key.user" 2>/dev/null)" = 600 ]
check $? 1-upgrade-at-first-login "$(grep -m1 'upgraded' "$TMP/hal1.out" | cut -c1-80)"
cli hal.phone keys hal >"$TMP/hal2.out" 2>&1
! grep -q "upgraded" "$TMP/hal2.out" && grep -q "certified by their user key, list version 1" "$TMP/hal2.out"
check $? 1-upgrade-once "$(grep -m1 'devices of' "$TMP/hal2.out")"

# 2. Safety numbers.
cli alice.phone verify bob >"$TMP/verify.a" 2>&1; cli bob.phone verify alice --mark >"$TMP/verify.b" 2>&1
na=$(number "$TMP/verify.a"); nb=$(number "$TMP/verify.b")
[ ${#na} = 60 ] && [ "$na" = "$nb" ]; check $? 2-safety-equal "alice sees $na, bob sees $nb"
grep -q "marked alice as verified" "$TMP/verify.b"; check $? 2-marked "$(tail -1 "$TMP/verify.b")"

# 3. A second device for alice, certified by her key.
"$PARLEY" keygen --out "$TMP/keys/alice.laptop.key" >"$TMP/keys/alice.laptop.pub" 2>/dev/null
cli alice.phone "device add" laptop "$(cat "$TMP/keys/alice.laptop.pub")" >"$TMP/add.out" 2>&1
check $? 3-device-add "$(tail -1 "$TMP/add.out")"
cli alice.laptop keys bob >"$TMP/laptop.keys" 2>&1; check $? 3-linked-logs-in "alice/laptop logs in once certified ($TMP/laptop.keys)"
cli bob.phone send alice "hello both" >"$TMP/send1.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "(laptop, phone)" "$TMP/send1.out"; check $? 3-seal-both "$(grep '^sent' "$TMP/send1.out")"
cli bob.phone verify alice >"$TMP/verify.b2" 2>&1
[ "$(number "$TMP/verify.b2")" = "$nb" ]; check $? 2-safety-stable "after alice's new device: $(number "$TMP/verify.b2")"

# 4. The operator tries to add a device to bob: `parley user add` refuses (bob's own key decides his
#    devices), and a row written into the store behind its back (then SIGHUP) is not served either: the
#    server follows the list, and alice seals to bob's phone only.
"$PARLEY" keygen --out "$TMP/keys/bob.evil.key" >"$TMP/keys/bob.evil.pub" 2>/dev/null
"$PARLEY" user add bob --device evil --key "$(cat "$TMP/keys/bob.evil.pub")" --store "$TMP/parley.sqlite" >"$TMP/useradd.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "only they can add a device" "$TMP/useradd.out"; check $? 4-user-add-refused "exit $rc: $(tail -1 "$TMP/useradd.out")"
"$PY" -c "import sqlite3,sys,time; db=sqlite3.connect(sys.argv[1]); db.execute('INSERT INTO account_device (user, name, bundle, added_at) VALUES (?,?,?,?)', ('bob','evil',sys.argv[2],int(time.time()*1000))); db.commit()" \
  "$TMP/parley.sqlite" "$(cat "$TMP/keys/bob.evil.pub")"
kill -HUP $SERVER; sleep 0.5
cli alice.phone send bob "who is there" >"$TMP/send2.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "to bob (phone)" "$TMP/send2.out"; check $? 4-injected-not-sealed "$(grep '^sent' "$TMP/send2.out")"
cli bob.evil keys alice >"$TMP/evil.keys" 2>&1; rc=$?
[ $rc != 0 ]; check $? 4-injected-cannot-log-in "exit $rc: $(tail -1 "$TMP/evil.keys")"

# 6. (Before the tampering of 5.) bob's phone certifies a tablet, then removes it: not sealed to, cannot log in.
"$PARLEY" keygen --out "$TMP/keys/bob.tablet.key" >"$TMP/keys/bob.tablet.pub" 2>/dev/null
cli bob.phone "device add" tablet "$(cat "$TMP/keys/bob.tablet.pub")" >"$TMP/add2.out" 2>&1
cli alice.laptop send bob "to bob's devices" >"$TMP/send6.out" 2>&1
grep -q "(phone, tablet)" "$TMP/send6.out"; check $? 6-before-removal "$(grep '^sent' "$TMP/send6.out")"
cli bob.phone "device remove" tablet >"$TMP/remove.out" 2>&1; check $? 6-device-remove "$(tail -1 "$TMP/remove.out")"
cli alice.laptop send bob "after removal" >"$TMP/send7.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "to bob (phone)" "$TMP/send7.out"; check $? 6-not-sealed-after-removal "$(grep '^sent' "$TMP/send7.out")"
cli bob.tablet keys alice >"$TMP/tablet.keys" 2>&1; rc=$?
[ $rc != 0 ]; check $? 6-removed-cannot-log-in "exit $rc: $(tail -1 "$TMP/tablet.keys")"

# 5. Tampered store: a rollback of alice's list, then a user key swapped by the server.
restart_server "$PY" "$HERE/forge.py" "$TMP/parley.sqlite" rollback alice >"$TMP/forge1.out"
cli bob.phone send alice "after rollback" >"$TMP/send3.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "older than the pinned version" "$TMP/send3.out" && ! grep -q '^sent' "$TMP/send3.out"
check $? 5-rollback-refused "exit $rc: $(grep -m1 REFUSED "$TMP/send3.out" | sed 's/^!! //')"
restart_server "$PY" "$HERE/forge.py" "$TMP/parley.sqlite" swap alice evil "$(cat "$TMP/keys/bob.evil.pub")" >"$TMP/forge2.out"
cli bob.phone send alice "after swap" >"$TMP/send4.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "USER KEY OF alice CHANGED (YOU HAD VERIFIED" "$TMP/send4.out" && ! grep -q '^sent' "$TMP/send4.out"
check $? 5-swap-blocks-verified "exit $rc: $(grep -m1 'USER KEY' "$TMP/send4.out" | sed 's/^!! //')"
cli bob.phone call alice --tone 440 --hold 1 --timeout 5 >"$TMP/call4.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "USER KEY OF alice CHANGED (YOU HAD VERIFIED" "$TMP/call4.out" && ! grep -q '^calling' "$TMP/call4.out"
check $? 5-swap-blocks-call "exit $rc: parley call refuses too"
cli bob.phone send alice "accepting" --accept-new-key >"$TMP/send5.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "(evil)" "$TMP/send5.out"; check $? 5-swap-accepted "--accept-new-key: $(grep '^sent' "$TMP/send5.out")"
cli bob.phone verify alice >"$TMP/verify.b3" 2>&1
[ "$(number "$TMP/verify.b3")" != "$nb" ] && ! grep -q "(verified)" "$TMP/verify.b3"
check $? 5-safety-changes "a new user key, a new number: $(number "$TMP/verify.b3"), no longer verified"

# 7. Invitations: carol registers with one (and says hello); reused, expired, forged and other-name invites
#    are refused with their own codes; the three registration modes.
inv() { "$PARLEY" invite --store "$TMP/parley.sqlite" --server "127.0.0.1:$PORT" "$@" | sed -n 's/^invite: //p'; }
reg() { # reg ACCOUNT [register args…]: a new account, its key made by register itself
  local acct=$1; shift
  timeout -k 5 30 "$PARLEY" register "${acct%%.*}" "$@" --server "127.0.0.1:$PORT" --key "$TMP/keys/$acct.key" --device "${acct#*.}"
}
refused() { grep -q "refused ($1)" "$2"; }
token=$(inv --user carol)
reg carol.phone --invite="$token" >"$TMP/reg.carol" 2>&1; check $? 7-register "$(grep -m1 '^registered' "$TMP/reg.carol")"
cli carol.phone send bob "hello from a new account" >"$TMP/reg.send" 2>&1; check $? 7-first-message "$(grep '^sent' "$TMP/reg.send")"
reg carol.phone2 --invite="$token" >"$TMP/reg.taken" 2>&1; refused user-exists "$TMP/reg.taken"; check $? 7-name-taken "$(tail -1 "$TMP/reg.taken")"
anyone=$(inv)
reg fay.phone --invite="$anyone" >"$TMP/reg.fay" 2>&1; check $? 7-register-any-name "$(grep -m1 '^registered' "$TMP/reg.fay")"
reg gus.phone --invite="$anyone" >"$TMP/reg.reuse" 2>&1; refused invite-used "$TMP/reg.reuse"; check $? 7-invite-reused "$(tail -1 "$TMP/reg.reuse")"
short=$(inv --expires 0.01m); sleep 1
reg dan.phone --invite="$short" >"$TMP/reg.expired" 2>&1; refused invite-expired "$TMP/reg.expired"; check $? 7-invite-expired "$(tail -1 "$TMP/reg.expired")"
reg dan.phone --invite AAAAAAAAAAAAAAAAAAAAAA >"$TMP/reg.forged" 2>&1; refused invite-unknown "$TMP/reg.forged"; check $? 7-invite-forged "$(tail -1 "$TMP/reg.forged")"
reg dan.phone --invite="$(inv --user erin)" >"$TMP/reg.other" 2>&1; refused invite-other-user "$TMP/reg.other"; check $? 7-invite-other-user "$(tail -1 "$TMP/reg.other")"
reg dan.phone >"$TMP/reg.none" 2>&1; refused invite-needed "$TMP/reg.none"; check $? 7-mode-invite "no invite: $(tail -1 "$TMP/reg.none")"
"$PY" -c "import sqlite3,sys; rows=sqlite3.connect(sys.argv[1]).execute('SELECT token_hash FROM invite').fetchall(); sys.exit(0 if rows and all(len(r[0])==64 for r in rows) and not any(sys.argv[2] in r[0] for r in rows) else 1)" "$TMP/parley.sqlite" "$token"
check $? 7-invites-hashed "the store holds SHA-256 hashes, not tokens"
kill $SERVER; wait $SERVER 2>/dev/null; run_server --stun-enabled no --signal-registration open
reg dan.phone >"$TMP/reg.open" 2>&1; check $? 7-mode-open "$(grep -m1 '^registered' "$TMP/reg.open")"
kill $SERVER; wait $SERVER 2>/dev/null; run_server --stun-enabled no --signal-registration closed
reg erin.phone --invite="$(inv)" >"$TMP/reg.closed" 2>&1; refused registration-closed "$TMP/reg.closed"; check $? 7-mode-closed "$(tail -1 "$TMP/reg.closed")"
kill $SERVER; wait $SERVER 2>/dev/null; run_server --stun-enabled no

# 8. Linking by code: carol's laptop asks, her phone approves; a code altered on its way is refused.
link_request() { # link_request ACCOUNT OUT: in the background; LINKER is its pid
  timeout -k 5 60 "$PARLEY" link request --timeout 40 --server "127.0.0.1:$PORT" --key "$TMP/keys/$1.key"     --user "${1%%.*}" --device "${1#*.}" >"$2" 2>&1 &
  LINKER=$!; PIDS+=($LINKER)
  for _ in $(seq 100); do grep -q '^link code' "$2" && break; sleep 0.1; done
}
link_request carol.laptop "$TMP/link.out"
code=$(sed -n 's/^link code: //p' "$TMP/link.out")
altered="${code%?}$( [ "${code: -1}" = A ] && echo B || echo A)"
cli carol.phone "link approve" "$altered" --yes >"$TMP/approve.bad" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "does not match the code" "$TMP/approve.bad"; check $? 8-altered-code-refused "exit $rc: $(grep -m1 REFUSED "$TMP/approve.bad" | sed 's/^!! //')"
cli carol.phone "link approve" "$code" --yes >"$TMP/approve.out" 2>&1; check $? 8-approve "$(tail -1 "$TMP/approve.out")"
wait $LINKER; rc=$?
[ $rc = 0 ] && grep -q "^linked: logged in as carol/laptop" "$TMP/link.out"; check $? 8-linked "$(tail -1 "$TMP/link.out")"

# 9. The whole flow: a call from bob (whose list the tampering left alone) rings both of carol's devices (the phone takes it, the laptop hears
#    "answered elsewhere"), and a message reaches and is read on both.
cli_bg() { local acct=$1 out=$2; shift 2; timeout -k 5 40 "$PARLEY" "$@" --server "127.0.0.1:$PORT" --key "$TMP/keys/$acct.key"   --user "${acct%%.*}" --device "${acct#*.}" --media-bind 127.0.0.1 >"$out" 2>&1 & }
cli_bg carol.laptop "$TMP/ring.laptop" answer --auto --ring-for 20 --timeout 30; L=$!
cli_bg carol.phone "$TMP/ring.phone" answer --auto --ring-for 0.5 --timeout 30 --tone 1000; P=$!
sleep 1
timeout -k 5 40 "$PARLEY" call carol --tone 440 --hold 2 --server "127.0.0.1:$PORT" --key "$TMP/keys/bob.phone.key"   --user bob --device phone --media-bind 127.0.0.1 >"$TMP/ring.bob" 2>&1; rc=$?
wait $P; wait $L
grep -q "^ring from bob/phone" "$TMP/ring.phone" && grep -q "^ring from bob/phone" "$TMP/ring.laptop"
check $? 9-call-rings-both "phone: $(grep -c '^ring from' "$TMP/ring.phone") ring, laptop: $(grep -c '^ring from' "$TMP/ring.laptop") ring"
[ $rc = 0 ] && grep -q "^first audio decrypted" "$TMP/ring.bob" && grep -q "answered on our other device phone" "$TMP/ring.laptop"
check $? 9-call-answered "bob: $(grep -m1 '^answered by' "$TMP/ring.bob" | cut -c1-40); laptop: $(grep -m1 'answered on' "$TMP/ring.laptop")"
cli bob.phone send carol "read me on both" >"$TMP/both.send" 2>&1
grep -q "(laptop, phone)" "$TMP/both.send"; check $? 9-message-to-both "$(grep '^sent' "$TMP/both.send")"
cli carol.phone inbox >"$TMP/inbox.phone" 2>&1; cli carol.laptop inbox >"$TMP/inbox.laptop" 2>&1
grep -q "read me on both" "$TMP/inbox.phone" && grep -q "read me on both" "$TMP/inbox.laptop"
check $? 9-message-read-on-both "phone and laptop inboxes"

# 10. The server loses its store: bob, who pinned hal's list, refuses the server that no longer presents it
#     (it could be deciding hal's devices); hal's device, holding the user key, puts the list back at its next
#     login, and bob accepts it again.
cli bob.phone keys hal >"$TMP/lost0.out" 2>&1; check $? 10-pinned-before "$(grep -m1 'devices of' "$TMP/lost0.out")"
kill $SERVER; wait $SERVER 2>/dev/null; rm -f "$TMP"/parley.sqlite*; run_server --stun-enabled no
cli bob.phone keys hal >"$TMP/lost1.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "no longer presents the device list" "$TMP/lost1.out"; check $? 10-withheld-refused "exit $rc: $(grep -m1 REFUSED "$TMP/lost1.out" | sed 's/^!! //')"
cli hal.phone keys alice >"$TMP/lost2.out" 2>&1
grep -q "published version 1 again" "$TMP/lost2.out"; check $? 10-owner-restores "$(grep -m1 'note: the server' "$TMP/lost2.out")"
cli bob.phone keys hal >"$TMP/lost3.out" 2>&1; check $? 10-accepted-again "$(grep -m1 'devices of' "$TMP/lost3.out")"

echo "raw logs: $TMP"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
