#!/usr/bin/env bash
# Sets up whatever is missing and runs every test: XCTest suites, the fuzz-corpus replay, the
# interop suite against real third-party STUN clients, the TURN suite against real TURN clients
# (coturn's uclient, aioice, aiortc), and the netlab NAT-type and symmetric-NAT TURN suites (need root).
# Ends with one line "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh --test || { echo "setup failed"; exit 1; }

passed=0
failed=0
count() {  # count NAME PASSED FAILED
    echo "== $1: $2 passed, $3 failed"
    passed=$((passed + $2))
    failed=$((failed + $3))
}

logdir=$(mktemp -d /tmp/parley-test.XXXXXX)
echo "logs in $logdir"

if ! swift build --build-tests 2>&1 | tee "$logdir/build.log" | grep -E "error:|warning: unre|Compiling parley|Build complete" ; then :; fi
if ! grep -q "Build complete" "$logdir/build.log"; then
    echo "build failed (see $logdir/build.log)"
    echo "0 passed, 1 failed"
    exit 1
fi
bin=$(swift build --show-bin-path)

# 1. XCTest (and Swift Testing) suites.
swift test --skip-build 2>&1 | tee "$logdir/swift-test.log" | grep -E "error:|failed \(|Executed .* tests" | tail -40
# "Executed 315 tests, with 1 test skipped and 0 failures (0 unexpected) in …"
summary=$(grep -E "Test Suite 'All tests' (passed|failed)" -A1 "$logdir/swift-test.log" | grep -E "Executed [0-9]+ tests?" | tail -1)
if [[ -n "$summary" ]]; then
    n=$(echo "$summary" | grep -Eo "Executed [0-9]+" | awk '{print $2}')
    f=$(echo "$summary" | grep -Eo "[0-9]+ failures?" | head -1 | awk '{print $1}')
    sk=$(echo "$summary" | grep -Eo "[0-9]+ tests? skipped" | awk '{print $1}')
    sk=${sk:-0}
    [[ $sk -gt 0 ]] && echo "== swift test: $sk skipped (not counted)"
    count "swift test (XCTest)" $((n - f - sk)) "$f"
else
    count "swift test (no summary: crashed?)" 0 1
fi
st=$(grep -Eo "Test run with [0-9]+ tests? .*(passed|failed)" "$logdir/swift-test.log" | tail -1)
if [[ -n "$st" ]]; then
    n=$(echo "$st" | awk '{print $4}')
    if echo "$st" | grep -q failed; then
        nf=$(grep -Eo "with [0-9]+ issues?" <<<"$st" | awk '{print $2}')
        count "swift test (Swift Testing)" 0 "${nf:-1}"
    elif [[ "$n" -gt 0 ]]; then
        count "swift test (Swift Testing)" "$n" 0
    fi
fi

# 2. Crash inputs the fuzzer ever found, replayed through the decoder and server (regression).
corpus=(Tests/ParleyWireTests/Corpus/*)
if [[ -x "$bin/FuzzSTUN" ]] && ((${#corpus[@]})); then
    if "$bin/FuzzSTUN" "${corpus[@]}" >"$logdir/fuzz-replay.log" 2>&1; then
        count "fuzz corpus replay (${#corpus[@]} inputs)" 1 0
    else
        count "fuzz corpus replay" 0 1
    fi
fi

signal_corpus=(Tests/ParleyWireTests/SignalCorpus/*)
if [[ -x "$bin/FuzzSignal" ]] && ((${#signal_corpus[@]})); then
    if "$bin/FuzzSignal" "${signal_corpus[@]}" >"$logdir/fuzz-signal-replay.log" 2>&1; then
        count "signaling fuzz corpus replay (${#signal_corpus[@]} inputs)" 1 0
    else
        count "signaling fuzz corpus replay" 0 1
    fi
fi

turn_corpus=(Tests/ParleyWireTests/TURNCorpus/*)
if [[ -x "$bin/FuzzTURN" ]] && ((${#turn_corpus[@]})); then
    if "$bin/FuzzTURN" "${turn_corpus[@]}" >"$logdir/fuzz-turn-replay.log" 2>&1; then
        count "TURN fuzz corpus replay (${#turn_corpus[@]} inputs)" 1 0
    else
        count "TURN fuzz corpus replay" 0 1
    fi
fi

media_corpus=(Tests/ParleyWireTests/MediaCorpus/*)
if [[ -x "$bin/FuzzMedia" ]] && ((${#media_corpus[@]})); then
    if "$bin/FuzzMedia" "${media_corpus[@]}" >"$logdir/fuzz-media-replay.log" 2>&1; then
        count "media fuzz corpus replay (${#media_corpus[@]} inputs)" 1 0
    else
        count "media fuzz corpus replay" 0 1
    fi
fi

# 3 and 4: suites that print their own "N passed, M failed".
run_suite() {  # run_suite NAME SCRIPT
    local name=$1 script=$2 line
    PARLEY="$bin/parley" bash "$script" >"$logdir/$name.log" 2>&1
    local rc=$?
    grep -E "PASS|FAIL" "$logdir/$name.log" | tail -20
    line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$logdir/$name.log" | tail -1)
    if [[ -n "$line" ]]; then
        count "$name" "$(echo "$line" | awk '{print $1}')" "$(echo "$line" | awk '{print $3}')"
        [[ $rc -ne 0 && "$(echo "$line" | awk '{print $3}')" == 0 ]] && count "$name (exit $rc)" 0 1
    else
        count "$name (no summary, exit $rc; see $logdir/$name.log)" 0 1
    fi
}
[[ -f tests/interop/run.sh ]] && run_suite interop tests/interop/run.sh
[[ -f tests/signal/run.sh ]] && run_suite signaling tests/signal/run.sh
[[ -f tests/turn/run.sh ]] && run_suite turn tests/turn/run.sh
[[ -f tests/call/run.sh ]] && run_suite call tests/call/run.sh
[[ -f tests/call/ending.sh ]] && run_suite call-ending tests/call/ending.sh
[[ -f tests/identity/run.sh ]] && run_suite identity tests/identity/run.sh
if [[ -f tests/netlab/nat_types.sh ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        run_suite netlab tests/netlab/nat_types.sh
    else
        echo "== netlab: needs root (network namespaces); run as root to include it"
    fi
fi
if [[ -f tests/netlab/turn_symmetric.sh ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        run_suite netlab-turn tests/netlab/turn_symmetric.sh
    else
        echo "== netlab-turn: needs root (network namespaces); run as root to include it"
    fi
fi

if [[ -f tests/netlab/call_matrix.sh ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        run_suite netlab-nat-calls tests/netlab/call_matrix.sh
    else
        echo "== netlab-nat-calls: needs root (network namespaces); run as root to include it"
    fi
fi
for extra in call_pathchange call_privacy call_turnchoice call_tcpfallback call_setup; do
    if [[ -f tests/netlab/$extra.sh ]]; then
        if [[ $(id -u) -eq 0 ]]; then
            run_suite "netlab-${extra//_/-}" "tests/netlab/$extra.sh"
        else
            echo "== netlab-${extra//_/-}: needs root (network namespaces); run as root to include it"
        fi
    fi
done
# The same rebinding when the call is relayed (both NATs symmetric): A's own allocation dies with its mapping.
if [[ -f tests/netlab/call_pathchange.sh && $(id -u) -eq 0 ]]; then
    NATS="symmetric symmetric" run_suite netlab-pathchange-relayed tests/netlab/call_pathchange.sh
    # …and when the call may only use the relays (--relay-only): A must get a new allocation.
    NATS="symmetric symmetric" CLIENT_FLAGS="--relay-only" run_suite netlab-pathchange-relay-only tests/netlab/call_pathchange.sh
fi
if [[ -f tests/netlab/call_impaired.sh ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        run_suite netlab-calls tests/netlab/call_impaired.sh
    else
        echo "== netlab-calls: needs root (network namespaces); run as root to include it"
    fi
fi

echo "logs in $logdir"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
