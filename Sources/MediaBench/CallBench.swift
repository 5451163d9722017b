import Foundation
// Part 3: a full-duplex call, both directions on one thread, in simulated time.
//
// Per 20 ms tick k, for each direction (A→B, then B→A):
//   source frame k → Opus encode → [frame index u32 BE || Opus packet] → MediaSealer.seal
//   → MediaOpener.open → frame index parsed, payload copied out → JitterBuffer.insert(arrival)
//   → JitterBuffer.pull(now) → OpusDecoder decode / decodeFEC / conceal (or nothing for silence).
// Arrival is k×20 ms + 30 ms + a deterministic jitter of 0–6 ms; the playout tick for k is at
// k×20 ms + 40 ms, so every packet is in before its tick and the buffer plays steadily. Nothing sleeps:
// the loop runs as fast as the CPU allows and the cost of 20 s of call is the CPU time of the loop.

import Crypto
import ParleyCrypto
import ParleyMedia
import ParleyWire

/// One benchmark configuration.
struct CallConfig {
    var complexity: Int
    var source: SourceKind
    var suite: MediaCipherSuite
    var bitrate = 32_000
    /// libopus only spends bits on in-band FEC (LBRR) when it expects loss; 5 % makes FEC real work.
    var expectedLossPercent = 0

    /// Row label, e.g. "c9 speech" or "c9 speech fec5%" (FEC coded for 5 % expected loss).
    var label: String {
        "c\(complexity) \(source.rawValue)" + (expectedLossPercent == 0 ? "" : " fec\(expectedLossPercent)%")
    }
}

/// Per-stage wall time (monotonic clock read around each stage), nanoseconds summed over both directions.
struct StageNanos {
    var encode: UInt64 = 0
    var crypto: UInt64 = 0
    var jitter: UInt64 = 0
    var decode: UInt64 = 0
    var total: UInt64 { encode + crypto + jitter + decode }
}

/// What one measured call did.
struct CallRun {
    var elapsed: Elapsed
    var stages: StageNanos
    var frames: Int
    var played = 0
    var recovered = 0
    var concealed = 0
    var silent = 0
    var opusBytes = 0
    var checksum: UInt64 = 0
}

private final class Side {
    let encoder: OpusEncoder
    let decoder: OpusDecoder
    var sealer: MediaSealer  // this side's outgoing direction
    var opener: MediaOpener  // the peer's direction
    var jitter = JitterBuffer()

    init(config: CallConfig, outgoing: MediaTrafficSecret, incoming: MediaTrafficSecret) throws {
        encoder = try OpusEncoder(
            bitrate: config.bitrate, complexity: config.complexity, inbandFEC: true,
            dtx: ProcessInfo.processInfo.environment["MEDIABENCH_DTX"] == "1",
            expectedLossPercent: config.expectedLossPercent)
        if let name = ProcessInfo.processInfo.environment["MEDIABENCH_MAX_BANDWIDTH"],
            let bandwidth = OpusEncoder.Bandwidth.allCases.first(where: { "\($0)" == name })
        {
            try encoder.setMaxBandwidth(bandwidth)
        }
        decoder = try OpusDecoder()
        sealer = MediaSealer(outgoing)
        opener = MediaOpener(incoming)
    }
}

/// Runs one call: `warmup` uncounted frames each way, then `frames` measured frames each way.
/// `sources[s]` must hold at least warmup + frames frames.
func runCall(config: CallConfig, sources: [[[Int16]]], warmup: Int, frames: Int) throws -> CallRun {
    let secretAB = MediaTrafficSecret(suite: config.suite, secret: SymmetricKey(size: .bits256))
    let secretBA = MediaTrafficSecret(suite: config.suite, secret: SymmetricKey(size: .bits256))
    let sides = [
        try Side(config: config, outgoing: secretAB, incoming: secretBA),
        try Side(config: config, outgoing: secretBA, incoming: secretAB),
    ]
    var rng = SplitMix64(seed: 0x717E_5EED)
    var run = CallRun(elapsed: Elapsed(cpuNanos: 0, wallNanos: 0), stages: StageNanos(), frames: frames)

    func tick(_ k: Int, counting: Bool) throws {
        for s in 0..<2 {
            let sender = sides[s]
            let receiver = sides[1 - s]
            let t0 = wallNanos()
            let opus = try sender.encoder.encode(sources[s][k])
            let t1 = wallNanos()
            // DTX (MEDIABENCH_DTX=1, Parley's default in calls): a frame the encoder marks as silence is not
            // sent; the receiver's buffer then plays silence or conceals.
            if OpusEncoder.isDTXPacket(opus) {
                let output = receiver.jitter.pull(now: UInt64(k) * JitterBuffer.frameDuration + 40_000)
                let t3 = wallNanos()
                switch output {
                case .frame(let packet): _ = try receiver.decoder.decode(packet)
                case .recover(let next): _ = receiver.decoder.decodeFEC(from: next)
                case .conceal: _ = receiver.decoder.conceal()
                case .silence: break
                }
                let t4 = wallNanos()
                if counting {
                    run.stages.encode &+= t1 &- t0
                    run.stages.jitter &+= t3 &- t1
                    run.stages.decode &+= t4 &- t3
                }
                continue
            }
            // Packetize, seal, "send", open, unpacketize.
            var plaintext = [UInt8]()
            plaintext.reserveCapacity(4 + opus.count)
            let index = UInt32(truncatingIfNeeded: k)
            plaintext.append(UInt8(truncatingIfNeeded: index >> 24))
            plaintext.append(UInt8(truncatingIfNeeded: index >> 16))
            plaintext.append(UInt8(truncatingIfNeeded: index >> 8))
            plaintext.append(UInt8(truncatingIfNeeded: index))
            plaintext.append(contentsOf: opus)
            let datagram = try sender.sealer.seal(.audio, plaintext)
            let opened = try receiver.opener.open(datagram)
            let body = opened.plaintext
            let frame = UInt64(body[0]) << 24 | UInt64(body[1]) << 16 | UInt64(body[2]) << 8 | UInt64(body[3])
            let payload = Array(body[4...])
            let t2 = wallNanos()
            let sendTime = UInt64(k) * JitterBuffer.frameDuration
            receiver.jitter.insert(frame: frame, payload: payload, arrival: sendTime + 30_000 + rng.next() % 6_000)
            let output = receiver.jitter.pull(now: sendTime + 40_000)
            let t3 = wallNanos()
            var pcm: [Int16] = []
            switch output {
            case .frame(let packet): pcm = try receiver.decoder.decode(packet)
            case .recover(let next): pcm = receiver.decoder.decodeFEC(from: next)
            case .conceal: pcm = receiver.decoder.conceal()
            case .silence: break
            }
            let t4 = wallNanos()
            guard counting else { continue }
            run.stages.encode &+= t1 &- t0
            run.stages.crypto &+= t2 &- t1
            run.stages.jitter &+= t3 &- t2
            run.stages.decode &+= t4 &- t3
            run.opusBytes += opus.count
            switch output {
            case .frame: run.played += 1
            case .recover: run.recovered += 1
            case .conceal: run.concealed += 1
            case .silence: run.silent += 1
            }
            if let first = pcm.first { run.checksum &+= UInt64(UInt16(bitPattern: first)) &+ UInt64(pcm.count) }
        }
    }

    for k in 0..<warmup { try tick(k, counting: false) }
    run.elapsed = try measure {
        for k in warmup..<(warmup + frames) { try tick(k, counting: true) }
    }
    return run
}

/// Medians over repeated calls of one configuration, per second of call time.
struct CallFigures {
    var config: CallConfig
    var cpuMicrosPerCallSecond: Double
    var wallMicrosPerCallSecond: Double
    var encode: Double  // µs per call-second (wall, both directions), median
    var crypto: Double
    var jitter: Double
    var decode: Double
    var stageSum: Double
    var callsPerCore: Double { 1e6 / cpuMicrosPerCallSecond }
    var played: Int
    var recovered: Int
    var concealed: Int
    var silent: Int
    var meanOpusBytes: Double
}

func callSeries(config: CallConfig, sources: [[[Int16]]], warmup: Int, frames: Int, repeats: Int, checksum: inout UInt64)
    throws -> CallFigures
{
    let callSeconds = Double(frames) * 0.02
    func perCallSecond(_ nanos: UInt64) -> Double { Double(nanos) / 1_000 / callSeconds }
    var runs: [CallRun] = []
    for _ in 0..<repeats {
        let run = try runCall(config: config, sources: sources, warmup: warmup, frames: frames)
        checksum &+= run.checksum
        runs.append(run)
    }
    let last = runs[runs.count - 1]
    return CallFigures(
        config: config,
        cpuMicrosPerCallSecond: median(runs.map { perCallSecond($0.elapsed.cpuNanos) }),
        wallMicrosPerCallSecond: median(runs.map { perCallSecond($0.elapsed.wallNanos) }),
        encode: median(runs.map { perCallSecond($0.stages.encode) }),
        crypto: median(runs.map { perCallSecond($0.stages.crypto) }),
        jitter: median(runs.map { perCallSecond($0.stages.jitter) }),
        decode: median(runs.map { perCallSecond($0.stages.decode) }),
        stageSum: median(runs.map { perCallSecond($0.stages.total) }),
        played: last.played, recovered: last.recovered, concealed: last.concealed, silent: last.silent,
        meanOpusBytes: Double(last.opusBytes) / Double(2 * frames))
}
