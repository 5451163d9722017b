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
        XCTAssertEqual(fromB.count, 28)
        a.receivedReport(fromB, sequence: 51, now: 1_230_000)
        XCTAssertEqual(a.rtt.latest, 60_000)
        XCTAssertEqual(a.peerLossPercent, 10, accuracy: 0.5)
        XCTAssertNil(a.bandwidthEstimate, "random loss on a flat RTT is not a bandwidth limit")
    }

    func testCongestionLowersTheBitrateToWhatArrived() throws {
        let a = try pipeline()
        let b = try pipeline()
        var t: UInt64 = 0
        var sequence: UInt64 = 0
        // Establish a 40 ms minimum RTT (times start at 10 s: a time of 0 means "nothing to echo").
        let start: UInt64 = 10_000_000
        b.receivedReport(a.report(now: start), sequence: sequence, now: start + 20_000)
        a.receivedReport(b.report(now: start + 20_000), sequence: sequence, now: start + 40_000)
        XCTAssertEqual(a.rtt.minimum, 40_000)
        // Then 5 s where b receives only half of a's packets, arriving ever later (a queue).
        for second in 1...5 {
            for i in 0..<50 {
                sequence += 1
                t = start + UInt64(second) * 1_000_000 + UInt64(i) * 20_000
                guard let (index, opus) = try a.nextFrame(), i % 2 == 0 else { continue }
                b.received(frame: index, opus: opus, sequence: sequence, now: t + 200_000)
            }
            let stamp = start + UInt64(second) * 1_000_000 + 1_000
            b.receivedReport(a.report(now: stamp), sequence: sequence, now: stamp + 150_000)
            a.receivedReport(b.report(now: stamp + 160_000), sequence: sequence, now: stamp + 310_000)
        }
        let estimate = try XCTUnwrap(a.bandwidthEstimate)
        XCTAssertLessThan(estimate, 32_000)
        XCTAssertLessThan(a.encoder.bitrate, 32_000, "the encoder follows the estimate down")
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
