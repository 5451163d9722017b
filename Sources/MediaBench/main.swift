// MediaBench: per-packet media protection cost and full-duplex call cost per core, driven by
// scripts/bench-media.sh (issue must-show: "per-packet seal+open cost vs raw swift-crypto, and
// full-duplex calls per core — target >= 50 per core at Opus complexity 9").
//
//   MediaBench [--quick]
//
// Everything runs on the main thread. Every figure is the median of REPEATS (5) measurements after a
// warm-up. CPU time is the thread's (CLOCK_THREAD_CPUTIME_ID), wall time is CLOCK_MONOTONIC.
// --quick: fewer packets and 4 s calls (a smoke test, not for reporting).

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import ParleyCrypto
import ParleyMedia

let quick = CommandLine.arguments.contains("--quick")
let repeats = 5
let payloadSize = 100
let pairs = quick ? 20_000 : 200_000
let callFrames = quick ? 200 : 1_000  // per direction: 20 s of call
let callWarmup = 50  // 1 s of call per repetition, not counted
let target = 50.0

var checksum: UInt64 = 0
let payload: [UInt8] = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }

func line(_ text: String = "") { print(text) }

line("MediaBench: Parley media cost on one thread (medians of \(repeats) runs after warm-up)")
line("CPU: hardware AES \(MediaCipherSuite.hasHardwareAES ? "yes" : "no"); local suite preference: "
    + MediaCipherSuite.localPreference.map(\.description).joined(separator: ", "))

// ---------------------------------------------------------------- 1 + 2: seal + open ----
line()
line("1-2. seal+open of one \(payloadSize)-byte payload (7-byte AAD, 96-bit nonce from the sequence number), "
    + "\(pairs) pairs per run,")
line("     raw and parley runs interleaved; parley/raw = median of the per-round CPU ratios")
line("     raw: Crypto ChaChaPoly / AES.GCM seal then open of the SealedBox, AAD and nonce built per packet")
line("     parley: MediaSealer.seal (header, nonce, AEAD, datagram bytes) + MediaOpener.open (parse, key phase,")
line("             replay window, AEAD, window update); datagram = 7 + \(payloadSize) + 16 = \(7 + payloadSize + 16) bytes")
var raw: [MediaCipherSuite: PairFigures] = [:]
var parley: [MediaCipherSuite: PairFigures] = [:]
var overhead: [MediaCipherSuite: Double] = [:]
for suite in [MediaCipherSuite.chaCha20Poly1305, .aes256GCM] {
    var sequence: UInt64 = 0
    let series = try pairSeries(
        repeats: repeats, pairs: pairs, checksum: &checksum,
        raw: { n in
            defer { sequence &+= UInt64(n) }
            return try rawPairs(suite: suite, payload: payload, pairs: n, startSequence: sequence)
        },
        parley: { n in try parleyPairs(suite: suite, payload: payload, pairs: n) })
    raw[suite] = series.raw
    parley[suite] = series.parley
    overhead[suite] = series.ratio
}
line("     " + padRight("suite", 19) + pad("raw ns/pair", 12) + pad("raw pairs/s", 13) + pad("parley ns/pair", 16)
    + pad("parley pairs/s", 16) + pad("parley/raw", 12) + pad("(wall ns raw/parley)", 22))
for suite in [MediaCipherSuite.chaCha20Poly1305, .aes256GCM] {
    let r = raw[suite]!, p = parley[suite]!
    line("     " + padRight(suite.description, 19) + pad(fmt(r.nsPerPair, 0), 12) + pad(fmt(r.pairsPerSecond, 0), 13)
        + pad(fmt(p.nsPerPair, 0), 16) + pad(fmt(p.pairsPerSecond, 0), 16) + pad(fmt(overhead[suite]!, 2) + "x", 12)
        + pad(fmt(r.wallNsPerPair, 0) + " / " + fmt(p.wallNsPerPair, 0), 22))
}
let perCallSecondCrypto = { (suite: MediaCipherSuite) -> Double in parley[suite]!.nsPerPair * 100 / 1_000 }
line("     a call sends 50 packets/s each way, so Parley's protection of both directions costs "
    + fmt(perCallSecondCrypto(.chaCha20Poly1305), 1) + " µs (ChaCha) / " + fmt(perCallSecondCrypto(.aes256GCM), 1)
    + " µs (AES) of CPU per call-second")

// ---------------------------------------------------------------- 3: calls ----
let callSuite = MediaCipherSuite.localPreference[0]
var clockCost = 0.0
do {
    let n = 200_000
    let t0 = threadCPUNanos()
    var acc: UInt64 = 0
    for _ in 0..<n { acc &+= wallNanos() }
    clockCost = Double(threadCPUNanos() - t0) / Double(n)
    checksum &+= acc & 1
}

var sources: [SourceKind: [[[Int16]]]] = [:]
for kind in SourceKind.allCases {
    sources[kind] = (0..<2).map { sourceFrames(kind, count: callWarmup + callFrames, side: $0) }
}
let speechLevel = sourceLevel(sources[.speech]![0] + sources[.speech]![1])

line()
line("3. full-duplex call on one thread, both directions per 20 ms tick: source frame -> Opus encode (32 kb/s,")
line("   FEC on, DTX off, VOIP/voice) -> [u32 frame index || Opus] -> seal -> open -> jitter")
line("   buffer insert (arrival +30 ms, 0-6 ms jitter) -> pull -> Opus decode; suite \(callSuite).")
line("   Rows without a suffix are Parley's default: FEC on, expected loss 0 % until the peer reports loss, so")
line("   libopus codes no FEC data on a clean path. \"fec5%\": expected loss 5 %, FEC data coded (a lossy path).")
line("   \(callFrames) frames each way = \(fmt(Double(callFrames) * 0.02, 0)) s of call per run, after \(callWarmup) warm-up frames.")
line("   sources: tone = ToneGenerator 440 Hz (A) / 1 kHz (B) at -20 dBFS;")
line("            speech = synthetic speech-like signal: voiced syllables (harmonics of f0 120 Hz (A) / 205 Hz (B),")
line("            gliding +-15 % with vibrato, three moving formants, 120-320 ms syllable envelopes), one in four")
line("            syllables an unvoiced noise burst, 150-500 ms pauses between words, -62 dBFS noise floor")
line("            (level \(fmt(speechLevel.rmsDBFS, 1)) dBFS RMS overall, \(fmt(speechLevel.activeShare * 100, 0)) % of frames above -45 dBFS).")
line("   CPU = thread CPU time of the whole loop; split = monotonic clock around each stage (a clock read costs")
line("   \(fmt(clockCost, 0)) ns; 10 reads per tick), both directions, µs per second of call.")

var figures: [CallFigures] = []
for complexity in [9, 5] {
    for kind in [SourceKind.speech, .tone] {
        let config = CallConfig(complexity: complexity, source: kind, suite: callSuite)
        // Warm-up call (code, caches, allocator), not counted.
        _ = try runCall(config: config, sources: sources[kind]!, warmup: callWarmup, frames: min(200, callFrames))
        figures.append(
            try callSeries(
                config: config, sources: sources[kind]!, warmup: callWarmup, frames: callFrames, repeats: repeats,
                checksum: &checksum))
    }
}
// Lossy-path rows: complexity 9 with FEC data coded for 5 % expected loss (what a call costs once the
// peer reports loss). Printed beside the verdict.
for kind in [SourceKind.speech, .tone] {
    let config = CallConfig(complexity: 9, source: kind, suite: callSuite, expectedLossPercent: 5)
    _ = try runCall(config: config, sources: sources[kind]!, warmup: callWarmup, frames: min(200, callFrames))
    figures.append(
        try callSeries(
            config: config, sources: sources[kind]!, warmup: callWarmup, frames: callFrames, repeats: repeats,
            checksum: &checksum))
}

line()
line("   " + padRight("complexity/source", 19) + pad("CPU µs/call-s", 14) + pad("wall µs/call-s", 15)
    + pad("calls/core", 11) + pad("encode", 9) + pad("decode", 9) + pad("crypto", 9) + pad("jitter", 9)
    + pad("opus B/pkt", 11) + "  playout (played/FEC/conceal/silence per direction pair)")
for f in figures {
    func share(_ v: Double) -> String { fmt(v, 0) + "|" + fmt(v / f.stageSum * 100, 0) + "%" }
    line("   " + padRight(f.config.label, 19) + pad(fmt(f.cpuMicrosPerCallSecond, 0), 14)
        + pad(fmt(f.wallMicrosPerCallSecond, 0), 15) + pad(fmt(f.callsPerCore, 1), 11)
        + pad(fmt(f.encode, 0), 9) + pad(fmt(f.decode, 0), 9) + pad(fmt(f.crypto, 0), 9) + pad(fmt(f.jitter, 0), 9)
        + pad(fmt(f.meanOpusBytes, 1), 11) + "  \(f.played)/\(f.recovered)/\(f.concealed)/\(f.silent)")
}
line("   (encode/decode/crypto/jitter: µs of wall time per call-second, both directions; crypto includes")
line("    packetizing the frame index and copying the payload out)")
for f in figures {
    let s = f.stageSum
    line("   split \(f.config.label): encode \(fmt(f.encode / s * 100, 1)) %, decode \(fmt(f.decode / s * 100, 1)) %, "
        + "crypto \(fmt(f.crypto / s * 100, 2)) %, jitter \(fmt(f.jitter / s * 100, 2)) %")
}

// Verdict. One full-duplex call costs each endpoint one encode + seal (what it says) and one open + jitter
// buffer + decode (what it hears): the list in the target. The loop above runs both endpoints of a call, so
// one endpoint's share is half: calls per core = 2 × the pairs figure. The worse source counts.
let standard = figures.filter { $0.config.expectedLossPercent == 0 }
let lossy = figures.filter { $0.config.expectedLossPercent == 5 }
func worst(_ set: [CallFigures], _ complexity: Int) -> CallFigures {
    set.filter { $0.config.complexity == complexity }.max { $0.cpuMicrosPerCallSecond < $1.cpuMicrosPerCallSecond }!
}
let c9 = worst(standard, 9)
let c5 = worst(standard, 5)
let c9fec = worst(lossy, 9)
let perCore9 = 2 * c9.callsPerCore
let perCore5 = 2 * c5.callsPerCore
let perCore9fec = 2 * c9fec.callsPerCore
let met = perCore9 >= target
line()
line("   calls/core above counts both endpoints of a call on one core; one endpoint does half of it")
line("calls per core at complexity 9 (one endpoint: encode + seal + open + jitter buffer + decode): \(fmt(perCore9, 1))"
    + " (target >= \(fmt(target, 0)): \(met ? "met" : "MISSED")) [worse source: \(c9.config.source.rawValue)]")
line("calls per core at complexity 9 with FEC data coded (lossy path): \(fmt(perCore9fec, 1))"
    + " (\(perCore9fec >= target ? "also meets" : "below") the target) [worse source: \(c9fec.config.source.rawValue)]")
line("calls per core at complexity 5: \(fmt(perCore5, 1)) [\(c5.config.source.rawValue)]")
line("checksum \(checksum & 0xFFFF)")

func key(_ f: CallFigures) -> String {
    "c\(f.config.complexity)_\(f.config.source.rawValue)" + (f.config.expectedLossPercent == 0 ? "" : "_fec\(f.config.expectedLossPercent)")
}
var result = "RESULT payload=\(payloadSize)"
result += " raw_chacha_ns=\(fmt(raw[.chaCha20Poly1305]!.nsPerPair, 0)) raw_aes_ns=\(fmt(raw[.aes256GCM]!.nsPerPair, 0))"
result += " parley_chacha_ns=\(fmt(parley[.chaCha20Poly1305]!.nsPerPair, 0)) parley_aes_ns=\(fmt(parley[.aes256GCM]!.nsPerPair, 0))"
result += " overhead_chacha=\(fmt(overhead[.chaCha20Poly1305]!, 2))"
result += " overhead_aes=\(fmt(overhead[.aes256GCM]!, 2))"
result += " call_suite=\(callSuite == .aes256GCM ? "aes" : "chacha")"
for f in figures {
    result += " \(key(f))_cpu_us=\(fmt(f.cpuMicrosPerCallSecond, 0)) \(key(f))_calls=\(fmt(f.callsPerCore, 1))"
}
for f in standard where f.config.source == .speech {
    result += " \(key(f))_encode_us=\(fmt(f.encode, 0)) \(key(f))_decode_us=\(fmt(f.decode, 0))"
    result += " \(key(f))_crypto_us=\(fmt(f.crypto, 0)) \(key(f))_jitter_us=\(fmt(f.jitter, 0))"
}
result += " calls_per_core_c9=\(fmt(perCore9, 1)) calls_per_core_c9_fec5=\(fmt(perCore9fec, 1)) calls_per_core_c5=\(fmt(perCore5, 1))"
result += " target=\(fmt(target, 0)) target_met=\(met ? "yes" : "no")"
line(result)
