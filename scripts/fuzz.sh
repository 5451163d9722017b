#!/usr/bin/env bash
# Fuzzes the STUN decoder and server core (Sources/FuzzSTUN) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]      default 60
#
# Seeds: Tests/ParleyWireTests/Corpus (valid messages, RFC 5769 vectors, kept crash inputs), read only.
# New coverage-increasing inputs go to fuzz-artifacts/corpus, crash inputs to fuzz-artifacts/. Both are
# scratch: keep a crash by copying it to Tests/ParleyWireTests/Corpus/crash-<name>, where
# CorpusReplayTests and `swift run FuzzSTUN Tests/ParleyWireTests/Corpus` replay it.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
seeds=Tests/ParleyWireTests/Corpus
artifacts=fuzz-artifacts
scratch=.build-fuzz

swift build -c release --sanitize=fuzzer -Xswiftc -DFUZZING --product FuzzSTUN --scratch-path "$scratch"
binary="$(swift build -c release --sanitize=fuzzer -Xswiftc -DFUZZING --product FuzzSTUN --scratch-path "$scratch" \
    --show-bin-path)/FuzzSTUN"

mkdir -p "$artifacts/corpus"
# A libFuzzer dictionary of STUN tokens: the magic cookie, message types, attribute types (RFC 8489 §18.3,
# RFC 5780 §7, RFC 8656 §18) and the lengths the decoder checks for.
dict="$artifacts/stun.dict"
{
    echo 'cookie="\x21\x12\xA4\x42"'
    for t in 0001 0011 0101 0111 0003 0004 0008 0009; do echo "type_$t=\"\\x${t:0:2}\\x${t:2:2}\""; done
    for a in 0001 0002 0003 0004 0005 0006 0008 0009 000A 000C 000D 0012 0013 0014 0015 0016 0017 0018 0019 \
             001A 001C 001D 001E 0020 0022 0026 0027 8000 8001 8002 8003 8004 8022 8023 8028 802B 802C; do
        echo "attr_$a=\"\\x${a:0:2}\\x${a:2:2}\""
    done
    for l in 0000 0004 0008 0014 0018 0020 0024; do echo "len_$l=\"\\x${l:0:2}\\x${l:2:2}\""; done
} > "$dict"
# The first corpus directory receives new inputs; the seed directory is only read.
SWIFT_BACKTRACE=enable=no "$binary" \
    -max_total_time="$seconds" \
    -max_len=2048 \
    -dict="$dict" \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/" \
    "$artifacts/corpus" "$seeds"
