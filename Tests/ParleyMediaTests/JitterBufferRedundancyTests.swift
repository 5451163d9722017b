import XCTest

@testable import ParleyMedia

/// Redundant copies of earlier frames (docs/PROTOCOL.md §5.4) in the jitter buffer; times in microseconds.
final class JitterBufferRedundancyTests: XCTestCase {
    private func payload(_ frame: UInt64) -> [UInt8] { [UInt8(truncatingIfNeeded: frame), 0xA5] }

    /// Sends frames `0..<count` with a constant 30 ms transit, dropping `lost`; each packet n carries a copy
    /// of frame n − 2 when `copies` is set. Ticks every 20 ms (phase 5 ms) until every frame has had its turn
    /// (played, recovered or concealed), so the end of the stream is not concealed.
    private func run(count: UInt64, lost: Set<UInt64>, copies: Bool) -> (JitterBuffer, [JitterBuffer.Output]) {
        var buffer = JitterBuffer()
        var outputs: [JitterBuffer.Output] = []
        var next: UInt64 = 0
        var tick: UInt64 = 5_000
        func due(_ s: JitterBuffer.Statistics) -> Int { s.played + s.recoveredByFEC + s.concealed + s.skipped }
        while due(buffer.statistics) < Int(count), outputs.count < 10 * Int(count) {
            while next < count, next * 20_000 + 30_000 <= tick {
                let arrival = next * 20_000 + 30_000
                if !lost.contains(next) {
                    buffer.insert(frame: next, payload: payload(next), arrival: arrival)
                    if copies, next >= 2 {
                        buffer.insertRedundant(frame: next - 2, payload: payload(next - 2), distance: 2, arrival: arrival)
                    }
                }
                next += 1
            }
            outputs.append(buffer.pull(now: tick))
            tick += 20_000
        }
        return (buffer, outputs)
    }

    func testTwoLostInARowAreConcealedWithoutCopiesAndPlayedWithThem() {
        let lost: Set<UInt64> = [20, 21]
        let (plain, _) = run(count: 60, lost: lost, copies: false)
        // Without jitter the target is one frame: each frame is played about when its own packet is due,
        // before the next one arrives, so neither lost frame can be rebuilt from a later packet.
        XCTAssertEqual(plain.statistics.concealed, 2)
        XCTAssertEqual(plain.statistics.played, 58)

        let (red, outputs) = run(count: 60, lost: lost, copies: true)
        XCTAssertEqual(red.statistics.concealed, 0)
        XCTAssertEqual(red.statistics.recoveredByFEC, 0)
        XCTAssertEqual(red.statistics.playedFromRedundancy, 2, "frames 20 and 21 from the copies in 22 and 23")
        XCTAssertEqual(red.statistics.played, 60)
        XCTAssertEqual(red.statistics.received, 58, "copies are not received packets")
        XCTAssertEqual(red.statistics.duplicate, 0, "a copy of a frame already stored is no duplicate")
        // Every frame played exactly once, in order, with its own bytes.
        let played = outputs.compactMap { if case .frame(let p) = $0 { p } else { nil } }
        XCTAssertEqual(played, (0..<60).map { payload($0) })
    }

    func testCopiesMakeRoomForThemselvesAndGiveItBack() {
        var buffer = JitterBuffer()
        // No jitter: the target is the one-frame floor.
        for frame in UInt64(0)..<10 { buffer.insert(frame: frame, payload: payload(frame), arrival: frame * 20_000) }
        XCTAssertEqual(buffer.statistics.targetDelay, 20_000)
        // A copy at distance 2 asks at once for two frames less half a frame more (it comes 40 ms after its
        // frame's own packet would have; playout may run half a frame ahead of the target).
        buffer.insertRedundant(frame: 8, payload: payload(8), distance: 2, arrival: 200_000)
        XCTAssertEqual(buffer.statistics.targetDelay, 50_000)
        XCTAssertEqual(buffer.statistics.redundantReceived, 1)
        // A closer copy meanwhile does not shrink the room.
        buffer.insertRedundant(frame: 9, payload: payload(9), distance: 1, arrival: 210_000)
        XCTAssertEqual(buffer.statistics.targetDelay, 50_000)
        // Once copies stop for longer than redundancyMemory (2 s) the room goes and the target decays.
        var tick: UInt64 = 220_000
        for frame in UInt64(10)..<260 {
            buffer.insert(frame: frame, payload: payload(frame), arrival: frame * 20_000)
            _ = buffer.pull(now: tick)
            tick += 20_000
        }
        XCTAssertEqual(buffer.statistics.targetDelay, 20_000)
    }

    func testACopyNeverReplacesOrResurrectsAFrame() {
        var buffer = JitterBuffer()
        for frame in UInt64(0)..<5 { buffer.insert(frame: frame, payload: payload(frame), arrival: frame * 20_000 + 1_000) }
        // Before playout copies are ignored (the first packets anchor the timeline).
        buffer.insertRedundant(frame: 5, payload: [0xFF], distance: 2, arrival: 90_000)
        XCTAssertEqual(buffer.bufferedFrames, 5)
        var outputs: [JitterBuffer.Output] = []
        var tick: UInt64 = 40_000
        for _ in 0..<3 { outputs.append(buffer.pull(now: tick)); tick += 20_000 }
        XCTAssertTrue(buffer.isPlaying)
        // A copy of a frame already stored leaves the stored bytes; one of a frame already played is dropped.
        buffer.insertRedundant(frame: 4, payload: [0xEE], distance: 2, arrival: tick)
        buffer.insertRedundant(frame: 0, payload: [0xDD], distance: 2, arrival: tick)
        // The own packet of a frame whose copy came first is counted as received, not as a duplicate.
        buffer.insertRedundant(frame: 5, payload: payload(5), distance: 2, arrival: tick)
        buffer.insert(frame: 5, payload: payload(5), arrival: tick + 1_000)
        XCTAssertEqual(buffer.statistics.duplicate, 0)
        XCTAssertEqual(buffer.statistics.received, 6)
        for _ in 0..<6 { outputs.append(buffer.pull(now: tick)); tick += 20_000 }
        let played = outputs.compactMap { if case .frame(let p) = $0 { p } else { nil } }
        XCTAssertEqual(played, (0..<6).map { payload($0) })
        XCTAssertEqual(buffer.statistics.playedFromRedundancy, 0, "frame 5's own packet came in time")
    }

    func testRandomLossConcealsFarLessWithCopies() {
        // 20 % Bernoulli loss, ±30 ms uniform jitter, 3,000 frames: the E-model's Ppl with and without copies.
        func concealed(copies: Bool) -> Double {
            var rng = SeededGenerator(state: 7)
            var buffer = JitterBuffer()
            var packets: [(arrival: UInt64, frame: UInt64)] = []
            for frame in UInt64(0)..<3_000 where Double.random(in: 0..<1, using: &rng) >= 0.2 {
                packets.append((frame * 20_000 + 50_000 + UInt64.random(in: 0...60_000, using: &rng), frame))
            }
            packets.sort { $0.arrival < $1.arrival }
            var next = 0
            var tick: UInt64 = 5_000
            while tick < 3_000 * 20_000 + 500_000 {
                while next < packets.count, packets[next].arrival <= tick {
                    let p = packets[next]
                    buffer.insert(frame: p.frame, payload: payload(p.frame), arrival: p.arrival)
                    if copies, p.frame >= 2 {
                        buffer.insertRedundant(frame: p.frame - 2, payload: payload(p.frame - 2), distance: 2, arrival: p.arrival)
                    }
                    next += 1
                }
                _ = buffer.pull(now: tick)
                tick += 20_000
            }
            return buffer.statistics.concealedPercent
        }
        let without = concealed(copies: false)
        let with = concealed(copies: true)
        print("concealed at 20 % loss, ±30 ms: without copies \(without) %, with \(with) %")
        // FEC alone: ~p² = 4 % (plus late frames); with copies ~p³ = 0.8 %.
        XCTAssertGreaterThan(without, 3)
        XCTAssertLessThan(with, 1.5)
        XCTAssertLessThan(with * 3, without)
    }
}
