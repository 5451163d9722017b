#!/usr/bin/env bash
# Fuzzes a decoder with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]                  FuzzSTUN, default 60 s (as before)
#   scripts/fuzz.sh PRODUCT [SECONDS]          PRODUCT is FuzzSTUN, FuzzSignal, FuzzTURN or FuzzMedia
#   scripts/fuzz.sh PRODUCT replay             replays PRODUCT's seed directory (normal build, no libFuzzer)
#
# FuzzSTUN: the STUN decoder and server core (Sources/FuzzSTUN). Seeds: Tests/ParleyWireTests/Corpus (valid
# messages, RFC 5769 vectors, kept crash inputs), replayed by CorpusReplayTests.
# FuzzSignal: the signaling line codec (Sources/FuzzSignal). Seeds: Tests/ParleyWireTests/SignalCorpus (one
# file per frame kind, the PROTOCOL.md §3.7 transcript, kept crash inputs), replayed by
# SignalCodecTests.testSignalCorpusReplays. That directory is not a package resource; tests read it from the
# source tree.
# FuzzTURN: the TURN relay core and the ChannelData codec (Sources/FuzzTURN). Seeds: Tests/ParleyWireTests/TURNCorpus
# (TURN requests signed with the target's fixed test key and nonce, ChannelData, truncated forms, kept crash
# inputs; `swift run FuzzTURN --write-seeds DIR` rewrites the generated ones), replayed by scripts/test.sh.
#
# FuzzMedia: the call media parsers and state machines (Sources/FuzzMedia). Seeds: Tests/ParleyWireTests/MediaCorpus
# (`swift run FuzzMedia --write-seeds DIR`), replayed by scripts/test.sh.
#
# Seeds are read only. New coverage-increasing inputs go to fuzz-artifacts/corpus[-signal|-turn], crash inputs to
# fuzz-artifacts/. Both are scratch: keep a crash by copying it to the seed directory as crash-<name>, where
# the replay test and `swift run PRODUCT <seed dir>` replay it.
set -euo pipefail

product=FuzzSTUN
if [[ $# -gt 0 && "$1" == Fuzz* ]]; then
    product="$1"
    shift
fi
seconds="${1:-60}"

cd "$(dirname "$0")/.."
artifacts=fuzz-artifacts
scratch=.build-fuzz

case "$product" in
    FuzzSTUN) seeds=Tests/ParleyWireTests/Corpus; corpus="$artifacts/corpus"; dict="$artifacts/stun.dict"; max_len=2048 ;;
    FuzzSignal) seeds=Tests/ParleyWireTests/SignalCorpus; corpus="$artifacts/corpus-signal"; dict="$artifacts/signal.dict"
        max_len=4096 ;;
    FuzzTURN) seeds=Tests/ParleyWireTests/TURNCorpus; corpus="$artifacts/corpus-turn"; dict="$artifacts/turn.dict"; max_len=2048 ;;
    FuzzMedia) seeds=Tests/ParleyWireTests/MediaCorpus; corpus="$artifacts/corpus-media"; dict="$artifacts/media.dict"; max_len=2048 ;;
    *) echo "usage: $0 [FuzzSTUN|FuzzSignal|FuzzTURN|FuzzMedia] [SECONDS|replay]" >&2; exit 2 ;;
esac

if [[ "$seconds" == replay ]]; then
    swift run -c release "$product" "$seeds"
    exit 0
fi
case "$seconds" in
    ''|*[!0-9]*) echo "usage: $0 [FuzzSTUN|FuzzSignal|FuzzTURN|FuzzMedia] [SECONDS|replay]" >&2; exit 2 ;;
esac

swift build -c release --sanitize=fuzzer -Xswiftc -DFUZZING --product "$product" --scratch-path "$scratch"
binary="$(swift build -c release --sanitize=fuzzer -Xswiftc -DFUZZING --product "$product" --scratch-path "$scratch" \
    --show-bin-path)/$product"

mkdir -p "$corpus"
case "$product" in
    FuzzSTUN)
        # STUN tokens: the magic cookie, message types, attribute types (RFC 8489 §18.3, RFC 5780 §7,
        # RFC 8656 §18) and the lengths the decoder checks for.
        {
            echo 'cookie="\x21\x12\xA4\x42"'
            for t in 0001 0011 0101 0111 0003 0004 0008 0009; do echo "type_$t=\"\\x${t:0:2}\\x${t:2:2}\""; done
            for a in 0001 0002 0003 0004 0005 0006 0008 0009 000A 000C 000D 0012 0013 0014 0015 0016 0017 0018 0019 \
                     001A 001C 001D 001E 0020 0022 0026 0027 8000 8001 8002 8003 8004 8022 8023 8028 802B 802C; do
                echo "attr_$a=\"\\x${a:0:2}\\x${a:2:2}\""
            done
            for l in 0000 0004 0008 0014 0018 0020 0024; do echo "len_$l=\"\\x${l:0:2}\\x${l:2:2}\""; done
        } > "$dict"
        ;;
    FuzzTURN)
        # TURN tokens: the cookie, the TURN message types (RFC 8656 §17), the attribute types the core reads,
        # the values it checks (transport 17, families, the EVEN-PORT R bit), channel numbers and ChannelData
        # lengths.
        {
            echo 'cookie="\x21\x12\xA4\x42"'
            for t in 0003 0013 0113 0004 0104 0008 0108 0009 0109 0016 0017 0001; do echo "type_$t=\"\\x${t:0:2}\\x${t:2:2}\""; done
            for a in 0006 0008 000C 000D 0012 0013 0014 0015 0017 0018 0019 001A 001C 001D 001E 0022 8000 8002 8028; do
                echo "attr_$a=\"\\x${a:0:2}\\x${a:2:2}\""
            done
            echo 'udp="\x11\x00\x00\x00"'; echo 'tcp="\x06\x00\x00\x00"'
            echo 'fam_v4="\x01\x00\x00\x00"'; echo 'fam_v6="\x02\x00\x00\x00"'; echo 'even_r="\x80"'
            for c in 4000 4001 4FFF 3FFF 5000 7FFF; do echo "chan_$c=\"\\x${c:0:2}\\x${c:2:2}\""; done
            for l in 0000 0001 0002 0004 0008 0014; do echo "len_$l=\"\\x${l:0:2}\\x${l:2:2}\""; done
        } > "$dict"
        ;;
    FuzzSignal)
        # Signaling tokens (PROTOCOL.md §3): verbs, frame and event kinds, codes, separators, a UUID.
        {
            for w in login got keys call cancel prepare cand accept reject busy end msg hello welcome ack nak ev \
                     error ok ring answer elsewhere ended merged stale unknown-user unknown-call not-allowed \
                     answered-elsewhere quota too-large bad-argument bad-login replay timeout not-logged-in \
                     too-long protocol cancelled rejected offline hangup gone; do
                echo "w_${w//-/_}=\"$w\""
            done
            echo 'sep="|"'; echo 'eq="="'; echo 'comma=","'; echo 'lf="\x0a"'; echo 'crlf="\x0d\x0a"'
            echo 'uuid="7c9e6679-7425-40de-944b-e07fc1f90ae7"'
            echo 'ts="1795435200123"'; echo 'int18="999999999999999999"'; echo 'sig86="'"$(printf 'A%.0s' {1..86})"'"'
        } > "$dict"
        ;;
    FuzzMedia)
        # Media tokens (PROTOCOL.md §5–6): header first bytes, handshake datagram bytes, a call id, field types.
        {
            for b in 91 92 93 99 B1 B2 01 10 11 12; do echo "b_$b=\"\\x$b\""; done
            echo 'uuid="0f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f"'
            echo 'cookie="\x21\x12\xA4\x42"'; echo 'riff="RIFF"'; echo 'wave="WAVE"'; echo 'fmt="fmt "'; echo 'data="data"'
        } > "$dict"
        ;;
esac
# The first corpus directory receives new inputs; the seed directory is only read.
SWIFT_BACKTRACE=enable=no "$binary" \
    -max_total_time="$seconds" \
    -max_len="$max_len" \
    -dict="$dict" \
    -print_final_stats=1 \
    -artifact_prefix="$artifacts/" \
    "$corpus" "$seeds"
