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
