#!/usr/bin/env bash
# Media cost on one core (issue "must show": per-packet seal+open cost vs raw swift-crypto, and
# full-duplex calls per core, target >= 50 at Opus complexity 9): builds `MediaBench` (release) and runs
# it once. Everything it measures runs on one thread of one process, in simulated time (no sockets, no
# sleeping):
#   1. raw swift-crypto ChaChaPoly / AES.GCM seal+open of a 100-byte payload (7-byte AAD, per-packet nonce)
#   2. Parley's MediaSealer.seal + MediaOpener.open of the same payload, both suites, and the ratio Parley/raw
#   3. a full-duplex call, both directions per 20 ms tick: source -> Opus encode (32 kb/s, FEC on, DTX off;
#      expected loss 0 % as a call starts on a clean path, and 5 % so FEC data is coded as on a lossy one)
#      -> seal -> open -> jitter buffer -> Opus decode, at complexity 9 and 5, with a pure tone and a
#      synthetic speech-like source; thread CPU µs per call-second and the split encode / decode / crypto /
#      jitter. Calls per core = what one endpoint does per call (its encode + seal, the peer's open +
#      jitter buffer + decode), i.e. 2 × 1e6 / (µs for both ends per call-second).
# Every figure is the median of 5 runs after a warm-up (see Sources/MediaBench/main.swift).
#
#   scripts/bench-media.sh
#
# Environment (all optional):
#   SKIP_BUILD=1         do not run `swift build -c release --product MediaBench` (use the existing binary)
#   MEDIABENCH_BIN=path  run this MediaBench binary instead of .build/release/MediaBench (implies SKIP_BUILD=1)
#   QUICK=1              pass --quick: fewer packets, 4 s calls (a smoke test; figures not for reporting)
#   MEDIABENCH_DTX=1     encode with DTX on, as calls do (frames marked silent are not sent)
#
# Prints machine information (cores, CPU model, libopus version, load average before and after) and
# MediaBench's report, whose last line is `RESULT key=value ...`. The machine may be shared: the load
# averages say how busy it was; the call figures are thread CPU time, so other processes inflate them
# only through shared caches, SMT siblings and frequency, not by taking turns on the core.
# Exit status: 0 when the complexity-9 calls-per-core target is met, 3 when it is missed, 1/2 on errors.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SKIP_BUILD=${SKIP_BUILD:-0}
QUICK=${QUICK:-0}

log() { printf '[bench-media] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

BIN=${MEDIABENCH_BIN:-$ROOT/.build/release/MediaBench}
if [ "$SKIP_BUILD" != 1 ] && [ -z "${MEDIABENCH_BIN:-}" ]; then
  BUILD_LOG=$(mktemp /tmp/bench-media-build.XXXXXX)
  trap 'rm -f "$BUILD_LOG"' EXIT
  log "swift build -c release --product MediaBench (a clean build of the dependencies takes several minutes)"
  (cd "$ROOT" && swift build -c release --product MediaBench) > "$BUILD_LOG" 2>&1 \
    || { tail -30 "$BUILD_LOG" >&2; die "release build failed"; }
fi
[ -x "$BIN" ] || die "$BIN missing (build it or drop SKIP_BUILD)"

ARGS=()
[ "$QUICK" != 1 ] || ARGS+=(--quick)

REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ -n "$(cd "$ROOT" && git status --porcelain -- Sources 2>/dev/null || true)" ]; then
  REV="$REV + uncommitted changes in Sources"
fi
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
OPUS_VERSION=$(dpkg-query -W -f='${Version}' libopus0 2>/dev/null || echo unknown)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

echo "machine: $(nproc) cores (${CPU_MODEL:-unknown CPU}), $(uname -r); libopus $OPUS_VERSION; parley $REV"
echo "load average before: $LOAD_BEFORE"
OUT=$(mktemp /tmp/bench-media-out.XXXXXX)
trap 'rm -f "$OUT" ${BUILD_LOG:+"$BUILD_LOG"}' EXIT
START=$(date +%s)
rc=0
"$BIN" ${ARGS[@]+"${ARGS[@]}"} | tee "$OUT" || rc=$?
[ "$rc" = 0 ] || die "MediaBench exited $rc"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg) (run took $(( $(date +%s) - START )) s)"

MET=$(sed -n 's/^RESULT .*target_met=\([a-z]*\).*/\1/p' "$OUT" | tail -1)
case $MET in
  yes) exit 0 ;;
  no) exit 3 ;;
  *) die "no RESULT line with target_met in MediaBench's output" ;;
esac
