import XCTest

@testable import ParleyMedia

/// Frames the sender never sent (Opus DTX) against frames lost on the way: SenderGaps tells them apart
/// from sequence numbers and frame indices, and the jitter buffer counts them as unsent, not concealed.
final class SenderGapsTests: XCTestCase {
    func testAFrameJumpWithoutASequenceGapIsUnsent() {
        var gaps = SenderGaps()
        XCTAssertNil(gaps.audio(frame: 0, sequence: 0))
        XCTAssertNil(gaps.audio(frame: 1, sequence: 1))
        // DTX: frames 2…20 not sent, the next packet is frame 21 with the next sequence number.
        XCTAssertEqual(gaps.audio(frame: 21, sequence: 2), 2..<21)
        // A report in between (sequence 3) keeps the sequence numbers whole.
        gaps.other(sequence: 3)
        XCTAssertEqual(gaps.audio(frame: 41, sequence: 4), 22..<41)
        XCTAssertEqual(gaps.unsentFrames, 19 + 19)
        XCTAssertEqual(gaps.takeSentFrames(), 4)
        XCTAssertEqual(gaps.takeSentFrames(), 0)
    }

    func testLostPacketsAreNotUnsent() {
        var gaps = SenderGaps()
        _ = gaps.audio(frame: 0, sequence: 0)
        // Frames 1 and 2 lost with their packets (sequences 1, 2): loss, not DTX.
        XCTAssertNil(gaps.audio(frame: 3, sequence: 3))
        // A DTX gap whose comfort-noise update (sequence 4) was lost: loss, the conservative side.
        XCTAssertNil(gaps.audio(frame: 30, sequence: 5))
        // A report lost between two back-to-back audio packets: no frame gap, nothing to say.
        XCTAssertNil(gaps.audio(frame: 31, sequence: 7))
        XCTAssertEqual(gaps.unsentFrames, 0)
        // Sent: 4 received, plus 2 + 1 lost in gaps that could hold them (the lost report at 6 is not a frame: the gap is 0).
        XCTAssertEqual(gaps.sentFrames, 4 + 2 + 1)
    }

    func testReorderedAndRepeatedPacketsProveNothing() {
        var gaps = SenderGaps()
        _ = gaps.audio(frame: 10, sequence: 10)
        XCTAssertNil(gaps.audio(frame: 9, sequence: 9), "late packet")
        XCTAssertNil(gaps.audio(frame: 10, sequence: 10), "repeat")
        gaps.other(sequence: 5)  // an old report: ignored
        XCTAssertEqual(gaps.audio(frame: 20, sequence: 11), 11..<20)
    }
}

final class JitterBufferUnsentTests: XCTestCase {
    /// Frames due before the mark (concealed or silent by then) move to unsent; frames still ahead are
    /// counted as unsent when due; neither is "recovered" by FEC.
    func testMarksBehindAndAheadOfThePlayoutPosition() {
        var buffer = JitterBuffer()
        var now: UInt64 = 0
        func tick() -> JitterBuffer.Output {
            defer { now += 20_000 }
            return buffer.pull(now: now)
        }
        // Frames 0…4 in real time, then nothing until frame 30 (sender in DTX), which arrives early enough
        // that frames 28 and 29 are still ahead when it comes.
        for frame in UInt64(0)..<5 {
            buffer.insert(frame: frame, payload: [1], arrival: now)
            _ = tick()
        }
        while buffer.statistics.played < 5 { _ = tick() }
        var outputs: [JitterBuffer.Output] = []
        for _ in 0..<20 { outputs.append(tick()) }
        XCTAssertEqual(buffer.statistics.concealed, 5, "the concealment limit, then silence")
        XCTAssertGreaterThan(buffer.statistics.silence, 0)
        let silenceBefore = buffer.statistics.silence
        buffer.insert(frame: 30, payload: [2], arrival: now)
        buffer.markUnsent(5..<30)
        XCTAssertEqual(buffer.statistics.concealed, 0)
        XCTAssertEqual(buffer.statistics.unsent, 5 + (silenceBefore - buffer.statistics.silence))
        while buffer.statistics.played < 6 { outputs.append(tick()) }
        XCTAssertEqual(buffer.statistics.concealed, 0)
        XCTAssertEqual(buffer.statistics.recoveredByFEC, 0, "frame 29 was never sent: nothing to recover")
        XCTAssertEqual(buffer.statistics.unsent, 25, "\(buffer.statistics)")
        XCTAssertEqual(buffer.statistics.concealedPercent, 0)
    }

    func testUnmarkedGapsStayConcealment() {
        var buffer = JitterBuffer()
        var now: UInt64 = 0
        for frame in UInt64(0)..<40 where !(10..<13).contains(frame) {
            buffer.insert(frame: frame, payload: [1], arrival: now)
            _ = buffer.pull(now: now)
            now += 20_000
        }
        for _ in 0..<3 {
            _ = buffer.pull(now: now)
            now += 20_000
        }
        XCTAssertEqual(buffer.statistics.unsent, 0)
        XCTAssertEqual(buffer.statistics.concealed + buffer.statistics.recoveredByFEC, 3)
        // A mark for frames long gone (beyond the 64-frame memory) or already played changes nothing.
        buffer.markUnsent(0..<10)
        XCTAssertEqual(buffer.statistics.unsent, 0)
        buffer.markUnsent(5..<5)
        XCTAssertEqual(buffer.statistics.unsent, 0)
    }

    /// Whatever a hostile or broken peer's numbers make of the marks, every tick is counted exactly once and
    /// no counter goes negative.
    func testRandomMarksKeepTheTickAccountingWhole() {
        var rng = SeededGenerator(state: 13)
        for round in 0..<50 {
            var buffer = JitterBuffer()
            var gaps = SenderGaps()
            var now: UInt64 = 0
            var sequence: UInt64 = 0
            var frame: UInt64 = 0
            var ticks = 0
            for _ in 0..<400 {
                // Mostly in order with DTX gaps; sometimes loss, reordering, repeats and wild jumps.
                switch UInt64.random(in: 0..<20, using: &rng) {
                case 0: frame &+= UInt64.random(in: 0..<5_000, using: &rng)
                case 1: frame = frame > 3 ? frame - 3 : 0
                case 2...5: frame += UInt64.random(in: 2..<25, using: &rng)
                default: frame += 1
                }
                sequence += UInt64.random(in: 1..<3, using: &rng)
                if UInt64.random(in: 0..<8, using: &rng) == 0 { gaps.other(sequence: sequence &- 1) }
                if let unsent = gaps.audio(frame: frame, sequence: sequence) { buffer.markUnsent(unsent) }
                buffer.insert(frame: frame, payload: [1], arrival: now + UInt64.random(in: 0..<60_000, using: &rng))
                if UInt64.random(in: 0..<30, using: &rng) == 0 {
                    let start = UInt64.random(in: 0..<(frame + 100), using: &rng)
                    buffer.markUnsent(start..<(start + UInt64.random(in: 0..<200, using: &rng)))
                }
                _ = buffer.pull(now: now)
                ticks += 1
                now += 20_000
            }
            let s = buffer.statistics
            XCTAssertEqual(s.played + s.recoveredByFEC + s.concealed + s.unsent + s.silence + s.stretched, ticks, "round \(round): \(s)")
            XCTAssertTrue([s.played, s.recoveredByFEC, s.concealed, s.unsent, s.silence, s.stretched].allSatisfy { $0 >= 0 }, "\(s)")
        }
    }
}
