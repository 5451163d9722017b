#!/usr/bin/env bash
# tests/identity/run.sh - accounts the server cannot forge (issue 14, docs/PROTOCOL.md §3.8), over real
# sockets against `parley serve`, with the server's store tampered between steps as a hostile operator would.
#
#   tests/identity/run.sh        (PARLEY=/path/to/parley to pick the binary; else it is built)
#
# 1. alice and bob each make a user key (`parley identity init`, the upgrade of an existing account).
# 2. Safety numbers: equal on both sides; unchanged after alice adds a device.
# 3. alice certifies a second device (`parley device add`); it can log in (the server follows the list), and
#    bob's client seals to both devices with no prompt.
# 4. The operator adds a device to bob (`parley user add` + SIGHUP): alice is told and never seals to it.
# 5. The store is tampered (server stopped): alice's newest list deleted (rollback), then a list signed by the
#    server's own key appended (swapped user key): bob refuses each with its own warning and sends nothing;
#    bob had marked alice verified, so the swap blocks `send` until --accept-new-key.
#    Afterwards the number differs and is no longer marked verified.
# 6. bob certifies a tablet, then removes it: nobody seals to it any more, and it can no longer log in.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=identity
source "$HERE/../call/common.sh"
enter_private_net "$0" "$@"
start_server alice.phone bob.phone -- --stun-enabled no

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
[ "$(stat -c %a "$TMP/keys/alice.phone.key.user")" = 600 ] && grep -q "^recovery code" "$TMP/init.alice.phone"
check $? 1-user-key-file "KEY.user mode $(stat -c %a "$TMP/keys/alice.phone.key.user"), recovery code printed once"
cli alice.phone "identity init" >"$TMP/init.again" 2>&1; [ $? != 0 ]; check $? 1-init-once "a second init refused: $(tail -1 "$TMP/init.again")"

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

# 4. The operator adds a device to bob: alice is told, nothing is sealed to it.
"$PARLEY" keygen --out "$TMP/keys/bob.evil.key" >"$TMP/keys/bob.evil.pub" 2>/dev/null
"$PARLEY" user add bob --device evil --key "$(cat "$TMP/keys/bob.evil.pub")" --store "$TMP/parley.sqlite" >"$TMP/useradd.out" 2>&1
kill -HUP $SERVER; sleep 0.5
cli alice.phone send bob "who is there" >"$TMP/send2.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "bob/evil" "$TMP/send2.out" && grep -q "does not certify" "$TMP/send2.out" && ! grep -q "evil" <(grep '^sent' "$TMP/send2.out")
check $? 4-injected-not-sealed "$(grep -m1 WARNING "$TMP/send2.out"); $(grep '^sent' "$TMP/send2.out")"

# 5. Tampered store: a rollback of alice's list, then a user key swapped by the server.
restart_server "$PY" "$HERE/forge.py" "$TMP/parley.sqlite" rollback alice >"$TMP/forge1.out"
cli bob.phone send alice "after rollback" >"$TMP/send3.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "older than the pinned version" "$TMP/send3.out" && ! grep -q '^sent' "$TMP/send3.out"
check $? 5-rollback-refused "exit $rc: $(grep -m1 REFUSED "$TMP/send3.out" | sed 's/^!! //')"
restart_server "$PY" "$HERE/forge.py" "$TMP/parley.sqlite" swap alice evil "$(cat "$TMP/keys/bob.evil.pub")" >"$TMP/forge2.out"
cli bob.phone send alice "after swap" >"$TMP/send4.out" 2>&1; rc=$?
[ $rc != 0 ] && grep -q "USER KEY OF alice CHANGED (YOU HAD VERIFIED" "$TMP/send4.out" && ! grep -q '^sent' "$TMP/send4.out"
check $? 5-swap-blocks-verified "exit $rc: $(grep -m1 'USER KEY' "$TMP/send4.out" | sed 's/^!! //')"
cli bob.phone send alice "accepting" --accept-new-key >"$TMP/send5.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "(evil)" "$TMP/send5.out"; check $? 5-swap-accepted "--accept-new-key: $(grep '^sent' "$TMP/send5.out")"
cli bob.phone verify alice >"$TMP/verify.b3" 2>&1
[ "$(number "$TMP/verify.b3")" != "$nb" ] && ! grep -q "(verified)" "$TMP/verify.b3"
check $? 5-safety-changes "a new user key, a new number: $(number "$TMP/verify.b3"), no longer verified"

# 6. bob removes a device: it is not sealed to and cannot log in. (alice's account now belongs to the server's
#    key in bob's eyes, so this step runs on bob's own account: his phone certifies a tablet, then removes it.)
"$PARLEY" keygen --out "$TMP/keys/bob.tablet.key" >"$TMP/keys/bob.tablet.pub" 2>/dev/null
cli bob.phone "device add" tablet "$(cat "$TMP/keys/bob.tablet.pub")" >"$TMP/add2.out" 2>&1
cli alice.laptop send bob "to bob's devices" >"$TMP/send6.out" 2>&1
grep -q "(phone, tablet)" "$TMP/send6.out"; check $? 6-before-removal "$(grep '^sent' "$TMP/send6.out")"
cli bob.phone "device remove" tablet >"$TMP/remove.out" 2>&1; check $? 6-device-remove "$(tail -1 "$TMP/remove.out")"
cli alice.laptop send bob "after removal" >"$TMP/send7.out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q "to bob (phone)" "$TMP/send7.out"; check $? 6-not-sealed-after-removal "$(grep '^sent' "$TMP/send7.out")"
cli bob.tablet keys alice >"$TMP/tablet.keys" 2>&1; rc=$?
[ $rc != 0 ]; check $? 6-removed-cannot-log-in "exit $rc: $(tail -1 "$TMP/tablet.keys")"

echo "raw logs: $TMP"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
