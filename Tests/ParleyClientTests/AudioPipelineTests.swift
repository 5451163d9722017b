import Foundation
import ParleyCrypto
import ParleyMedia
import ParleyWire
import XCTest

@testable import ParleyClient

/// Receiver reports between two audio pipelines (docs/PROTOCOL.md §5.5), with synthetic times.
final class AudioPipelineTests: XCTestCase {
    func pipeline() throws -> AudioPipeline {
        try AudioPipeline(source: .tone(frequency: 440, levelDBFS: -20), sink: nil, settings: AudioSettings())
    }

    func testReportsCarryRTTLossAndJitter() throws {
        let a = try pipeline()
        let b = try pipeline()
        // a → b: frames 0..<50 with every 10th lost, 30 ms one-way.
        for frame in 0..<50 where frame % 10 != 3 {
            guard let (index, opus) = try a.nextFrame() else { continue }
            b.received(frame: index, opus: opus, sequence: UInt64(frame), now: UInt64(frame) * 20_000 + 30_000)
        }
        // Report exchange: a at t=1.0 s, b answers at t=1.2 s (hold), back at a at t=1.26 s → RTT 60 ms.
        b.receivedReport(a.report(now: 1_000_000), sequence: 50, now: 1_030_000)
        let fromB = b.report(now: 1_200_000)
        XCTAssertEqual(fromB.count, 30)
        a.receivedReport(fromB, sequence: 51, now: 1_230_000)
        XCTAssertEqual(a.rtt.latest, 60_000)
        XCTAssertEqual(a.peerLossPercent, 10, accuracy: 0.5)
        XCTAssertNil(a.bandwidthEstimate, "random loss on a flat RTT is not a bandwidth limit")
    }

    /// A 28-byte receiver report (PROTOCOL §5.5) with the given loss, nothing to echo.
    func report(lossPermille: UInt16, time: UInt64) -> [UInt8] {
        var out: [UInt8] = (0..<8).reversed().map { UInt8(truncatingIfNeeded: time >> (8 * UInt64($0))) }
        out += [UInt8](repeating: 0, count: 12)
        out += [UInt8(lossPermille >> 8), UInt8(truncatingIfNeeded: lossPermille), 0, 0, 0, 0, 0, 0]
        return out
    }

    func testHeavyLossSendsACopyOfTheFrameTwoBackAndTheReceiverPlaysIt() throws {
        let a = try pipeline()
        let b = try pipeline()
        var sent: [UInt64: [UInt8]] = [:]
        func send() throws -> (UInt64, [UInt8], [AudioPayload.Redundant]) {
            let (frame, opus) = try XCTUnwrap(try a.nextFrame())
            sent[frame] = opus
            return (frame, opus, a.redundantCopies(for: frame))
        }
        // Light loss: no copies.
        a.receivedReport(report(lossPermille: 20, time: 1), sequence: 0, now: 1_000)
        for _ in 0..<3 { XCTAssertEqual(try send().2, []) }
        // 20 % reported: every packet carries the frame two back, byte for byte.
        a.receivedReport(report(lossPermille: 200, time: 2), sequence: 1, now: 2_000)
        XCTAssertTrue(a.redundancy.enabled)
        var t: UInt64 = 100_000
        b.startPlayout(now: t)
        var lostOwnPackets: Set<UInt64> = []
        for i in 0..<100 {
            let (frame, opus, copies) = try send()
            XCTAssertEqual(copies, [AudioPayload.Redundant(distance: 2, opus: sent[frame - 2]!)])
            // b: frames 40 and 41 lose their own packets; the copies in 42 and 43 stand in for them.
            if frame == 40 || frame == 41 {
                lostOwnPackets.insert(frame)
            } else {
                b.received(frame: frame, opus: opus, sequence: UInt64(i), now: t)
                for copy in copies {
                    b.receivedRedundant(frame: frame - UInt64(copy.distance), opus: copy.opus, distance: UInt64(copy.distance), now: t)
                }
            }
            try b.playout(now: t)
            t += 20_000
        }
        XCTAssertEqual(lostOwnPackets, [40, 41])
        XCTAssertGreaterThan(b.jitter.statistics.played, 90)
        XCTAssertEqual(b.jitter.statistics.playedFromRedundancy, 2)
        XCTAssertEqual(b.jitter.statistics.concealed, 0)
        // The loss goes away: so do the copies (two reports: the policy judges the running average).
        a.receivedReport(report(lossPermille: 10, time: 3), sequence: 2, now: 3_000_000)
        a.receivedReport(report(lossPermille: 10, time: 4), sequence: 3, now: 4_000_000)
        XCTAssertFalse(a.redundancy.enabled)
        XCTAssertEqual(try send().2, [])
    }

    /// a sends for 5 s over a path with a queue (RTT from 40 ms to 350 ms); b receives every `keep`-th packet.
    func congested(keep: Int) throws -> AudioPipeline {
        let a = try pipeline()
        let b = try pipeline()
        var t: UInt64 = 0
        var sequence: UInt64 = 0
        // Establish a 40 ms minimum RTT (times start at 10 s: a time of 0 means "nothing to echo").
        let start: UInt64 = 10_000_000
        b.receivedReport(a.report(now: start), sequence: sequence, now: start + 20_000)
        a.receivedReport(b.report(now: start + 20_000), sequence: sequence, now: start + 40_000)
        XCTAssertEqual(a.rtt.minimum, 40_000)
        // Then 5 s where b receives a's packets ever later (a queue).
        for second in 1...5 {
            for i in 0..<50 {
                sequence += 1
                t = start + UInt64(second) * 1_000_000 + UInt64(i) * 20_000
                guard let (index, opus) = try a.nextFrame(), i % keep == 0 else { continue }
                b.received(frame: index, opus: opus, sequence: sequence, now: t + 200_000)
            }
            let stamp = start + UInt64(second) * 1_000_000 + 1_000
            b.receivedReport(a.report(now: stamp), sequence: sequence, now: stamp + 150_000)
            a.receivedReport(b.report(now: stamp + 160_000), sequence: sequence, now: stamp + 310_000)
        }
        return a
    }

    func testCongestionLowersTheBitrateToWhatArrived() throws {
        // Half the packets lost behind a queue.
        let a = try congested(keep: 2)
        let estimate = try XCTUnwrap(a.bandwidthEstimate)
        XCTAssertLessThan(estimate, 32_000)
        XCTAssertLessThan(a.encoder.bitrate, 32_000, "the encoder follows the estimate down")
        XCTAssertFalse(a.redundancy.enabled, "no copies of earlier frames on a congested path, whatever the loss")
    }

    func testTheQueuingDelayTheReceiverMeasuresSignalsCongestionAtTheFirstReport() throws {
        let a = try pipeline()
        let b = try pipeline()
        // Jitter alone (0-60 ms, no queue): a mean queuing delay of ~30 ms, no congestion.
        var sequence: UInt64 = 0
        var rng = SystemRandomNumberGenerator()
        for i in UInt64(0)..<50 {
            let (index, opus) = try XCTUnwrap(try a.nextFrame())
            b.received(frame: index, opus: opus, sequence: sequence, now: 1_000_000 + i * 20_000 + UInt64.random(in: 0...60_000, using: &rng))
            sequence += 1
        }
        a.receivedReport(b.report(now: 2_100_000), sequence: 0, now: 2_150_000)
        XCTAssertLessThan(a.peerQueuingMilliseconds, 61)
        XCTAssertNil(a.bandwidthEstimate)
        // Then a queue growing 100 ms per second: within one report the mean excess is ~50 ms more than
        // jitter's, and with the next it is a queue. The RTT has not moved (no RTT sample at all here).
        for second in UInt64(1)...2 {
            for i in UInt64(0)..<50 {
                let (index, opus) = try XCTUnwrap(try a.nextFrame())
                let frameTime = 1_000_000 + (second * 50 + i) * 20_000
                b.received(frame: index, opus: opus, sequence: sequence, now: frameTime + 30_000 + (second - 1) * 100_000 + i * 2_000)
                sequence += 1
            }
            a.receivedReport(b.report(now: 2_100_000 + second * 1_000_000), sequence: second, now: 2_150_000 + second * 1_000_000)
        }
        XCTAssertGreaterThanOrEqual(a.peerQueuingMilliseconds, 80)
        XCTAssertNotNil(a.bandwidthEstimate, "a queue in the peer's measurements is congestion")
        XCTAssertLessThan(a.encoder.bitrate, 32_000)
    }

    func testAQueueWithoutLossLowersTheBitrateToo() throws {
        // A deep buffer delays long before it drops: everything arrives, late. Sending what arrived would keep
        // the queue; the whole stream (Opus and per-packet overhead) must go under it.
        let a = try congested(keep: 1)
        XCTAssertEqual(a.peerLossPercent, 0)
        let estimate = try XCTUnwrap(a.bandwidthEstimate, "a standing queue is congestion even without loss")
        XCTAssertLessThan(a.encoder.bitrate, 32_000)
        XCTAssertLessThanOrEqual(a.encoder.bitrate, estimate)
    }
}

/// What a recording and the call statistics show while the peer sends audio, sends only the silence it
/// chose (DTX), or nothing at all; and that playout and recording keep real time (issue 13).
final class AudioPipelinePlayoutTests: XCTestCase {
    /// `seconds` of a's audio to b over a clean 10 ms path, a report from a every second; b plays out at each
    /// 20 ms tick. Sequence numbers as the media core gives them: one per datagram, audio and reports alike.
    func stream(
        _ source: AudioSource, seconds: Int, lose: (UInt64) -> Bool = { _ in false }
    ) throws -> (a: AudioPipeline, b: AudioPipeline, end: UInt64) {
        let a = try AudioPipeline(source: source, sink: nil, settings: AudioSettings())
        let b = try AudioPipeline(source: .silence, sink: nil, settings: AudioSettings())
        var sequence: UInt64 = 0
        let start: UInt64 = 1_000_000
        b.startPlayout(now: start)
        var t = start
        // Until `seconds` have passed and then until the next audio packet: the gap before it is settled
        // (a DTX gap is known for what it is only when the packet after it comes).
        var playedBeforeLast: Int?
        var tick: UInt64 = 0
        while tick < UInt64(seconds * 50) || playedBeforeLast.map({ b.jitter.statistics.played <= $0 }) ?? true {
            t = start + tick * 20_000
            tick += 1
            if let (frame, opus) = try a.nextFrame() {
                if !lose(sequence) { b.received(frame: frame, opus: opus, sequence: sequence, now: t + 10_000) }
                sequence += 1
                if tick >= UInt64(seconds * 50), playedBeforeLast == nil { playedBeforeLast = b.jitter.statistics.played }
            }
            if tick % 50 == 26 {
                if !lose(sequence) { b.receivedReport(a.report(now: t), sequence: sequence, now: t + 10_000) }
                sequence += 1
            }
            try b.playout(now: t + 15_000)
        }
        return (a, b, t + 20_000)
    }

    func testAPeerSendingATonePlaysWithoutConcealmentAndAGoodScore() throws {
        let (_, b, end) = try stream(.tone(frequency: 440, levelDBFS: -20), seconds: 5)
        let stats = b.jitter.statistics
        XCTAssertEqual(stats.concealed, 0)
        XCTAssertEqual(stats.unsent, 0)
        XCTAssertGreaterThan(stats.played, 240)
        let quality = b.quality(now: end)
        XCTAssertEqual(quality.peerAudio, .sending)
        XCTAssertGreaterThanOrEqual(quality.meanOpinionScore, 4.0)
        XCTAssertEqual(b.callQuality(now: end).peerAudio, .sending)
        XCTAssertTrue(quality.description.contains("MOS"), quality.description)
    }

    /// A peer with no source sends DTX: a packet now and then, the frames between never sent. Before, those
    /// frames were counted as concealment (77 % concealed, MOS 1.19 on a perfect link).
    func testASilentPeerIsSilentNotConcealment() throws {
        let (a, b, end) = try stream(.silence, seconds: 10)
        let stats = b.jitter.statistics
        XCTAssertLessThan(a.sentPackets, 50, "DTX: the silent side sends a packet now and then, not 50 a second")
        XCTAssertGreaterThan(b.receivedAudio, 0)
        XCTAssertEqual(stats.concealed, 0, "\(stats)")
        XCTAssertGreaterThan(stats.unsent, 400, "\(stats)")
        XCTAssertGreaterThan(b.gaps.unsentFrames, 400, "the frames between the packets were never sent")
        let quality = b.quality(now: end)
        XCTAssertEqual(quality.peerAudio, .silent)
        XCTAssertEqual(quality.concealedPercent, 0)
        XCTAssertTrue(quality.description.hasSuffix("peer silent"), quality.description)
        XCTAssertFalse(quality.description.contains("MOS"))
        XCTAssertEqual(b.callQuality(now: end).peerAudio, .silent)
    }

    /// A DTX gap whose packets were partly lost is loss (which frames they carried cannot be known).
    func testAGapThatLostPacketsStaysConcealment() throws {
        var lost: Set<UInt64> = []
        let (_, b, _) = try stream(.silence, seconds: 10) { sequence in
            if sequence == 6 || sequence == 7 { lost.insert(sequence); return true }
            return false
        }
        XCTAssertEqual(lost, [6, 7])
        XCTAssertGreaterThan(b.jitter.statistics.concealed, 0)
        XCTAssertGreaterThan(b.jitter.statistics.unsent, 300)
    }

    func testNothingHeardIsUnheard() throws {
        let (_, b, end) = try stream(.tone(frequency: 440, levelDBFS: -20), seconds: 2)
        XCTAssertEqual(b.quality(now: end).peerAudio, .sending)
        XCTAssertEqual(b.quality(now: end + 2_000_000).peerAudio, .unheard)
        XCTAssertTrue(b.quality(now: end + 3_000_000).description.hasSuffix("nothing heard from the peer"))
    }

    /// One frame per 20 ms of real time from media start, whatever arrives and however the ticks come: a
    /// stalled loop catches up, a long stall is filled with silence, and nothing is ever ahead of the clock.
    func testPlayoutAndRecordingFollowRealTime() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-playout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("rec.wav").path
        let b = try AudioPipeline(source: .silence, sink: try WAVWriter(path: path), settings: AudioSettings())
        try b.playout(now: 500_000)
        XCTAssertEqual(b.writtenFrames, 0, "nothing before media starts")
        let start: UInt64 = 1_000_000
        b.startPlayout(now: start)
        // Regular ticks, a tick twice at one time, a 300 ms stall, a 7 s stall, ticks early in their frame.
        for offset: UInt64 in [0, 5_000, 20_000, 20_000, 40_000, 340_000, 360_000, 7_360_000, 7_371_000, 7_390_000] {
            try b.playout(now: start + offset)
            XCTAssertEqual(UInt64(b.writtenFrames), offset / 20_000 + 1, "at +\(offset) µs")
            XCTAssertEqual(b.playoutTicks, offset / 20_000 + 1)
        }
        try b.close()
        let recorded = try WAVFile.read(path: path).samples48kMono
        XCTAssertEqual(recorded.count, (7_390_000 / 20_000 + 1) * 960)
        XCTAssertTrue(recorded.allSatisfy { $0 == 0 })
    }
}

/// Two processes sharing a contacts file (two accounts in one key directory) keep each other's pins.
final class KeyPinsMergeTests: XCTestCase {
    func testSavingMergesWithWhatAnotherProcessWrote() throws {
        let alice = SignalName("alice")!
        let bob = SignalName("bob")!
        let carol = SignalName("carol")!
        let phone = SignalName("phone")!
        var first = KeyPins()
        var second = KeyPins()
        let baseline = KeyPins()
        _ = try first.review(bob, presented: [phone: DeviceIdentity.generate().publicBundle], acceptChanges: false, now: 1)
        _ = try second.review(alice, presented: [phone: DeviceIdentity.generate().publicBundle], acceptChanges: false, now: 2)
        // The first process saved; the second saves later, merging onto the file.
        let onDisk = first.merged(onto: KeyPins(), since: baseline)
        let merged = second.merged(onto: onDisk, since: baseline)
        XCTAssertNotNil(merged.pinned(bob, phone))
        XCTAssertNotNil(merged.pinned(alice, phone))
        // A pin changed by this process wins over the file's older one; untouched pins come from the file.
        var third = merged
        _ = try third.review(carol, presented: [phone: DeviceIdentity.generate().publicBundle], acceptChanges: false, now: 3)
        let again = third.merged(onto: merged, since: merged)
        XCTAssertEqual(again.pinned(bob, phone), merged.pinned(bob, phone))
        XCTAssertNotNil(again.pinned(carol, phone))
    }
}
