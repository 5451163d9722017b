import XCTest

@testable import ParleyMedia

/// A deterministic generator (SplitMix64) so "random" network delays repeat run to run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Drives a jitter buffer with synthetic packets and 20 ms ticks; all times in microseconds.
struct PlayoutSimulation {
    struct Packet {
        var frame: UInt64
        var arrival: UInt64
    }

    var buffer: JitterBuffer
    private var packets: [Packet]
    private var nextPacket = 0
    /// Time of the next tick.
    private(set) var tick: UInt64
    /// Every output so far, in tick order.
    private(set) var outputs: [JitterBuffer.Output] = []

    init(buffer: JitterBuffer = JitterBuffer(), packets: [Packet], firstTick: UInt64) {
        self.buffer = buffer
        self.packets = packets.enumerated().sorted { ($0.element.arrival, $0.offset) < ($1.element.arrival, $1.offset) }
            .map(\.element)
        self.tick = firstTick
    }

    /// Runs ticks up to (excluding) `end`, inserting every packet that arrived by each tick first.
    mutating func run(until end: UInt64) {
        while tick < end {
            while nextPacket < packets.count, packets[nextPacket].arrival <= tick {
                let packet = packets[nextPacket]
                buffer.insert(frame: packet.frame, payload: payload(packet.frame), arrival: packet.arrival)
                nextPacket += 1
            }
            outputs.append(buffer.pull(now: tick))
            tick += JitterBuffer.frameDuration
        }
    }

    /// Runs ticks until every packet has been inserted and nothing is left buffered (at most `limit` ticks),
    /// so no concealment is counted for the end of the stream.
    mutating func drain(limit: Int = 100_000) {
        for _ in 0..<limit where nextPacket < packets.count || buffer.bufferedFrames > 0 {
            run(until: tick + 1)
        }
    }

    /// Frame indices of the `.frame` outputs, in order.
    var playedFrames: [UInt64] {
        outputs.compactMap { output in
            if case .frame(let bytes) = output { return frameIndex(bytes) }
            return nil
        }
    }
}

/// The test payload of a frame: its index, little-endian.
func payload(_ frame: UInt64) -> [UInt8] {
    withUnsafeBytes(of: frame.littleEndian, Array.init)
}

func frameIndex(_ payload: [UInt8]) -> UInt64 {
    payload.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
}

/// Packets for `frames`, sent every 20 ms from `origin` (frame `frames.lowerBound` at `origin`), with
/// `delay(frame)` of network delay, or lost when it returns nil.
func packets(
    _ frames: Range<UInt64>,
    origin: UInt64 = 1_000_000,
    delay: (UInt64) -> UInt64?
) -> [PlayoutSimulation.Packet] {
    frames.compactMap { frame in
        guard let delay = delay(frame) else { return nil }
        let sent = origin + (frame - frames.lowerBound) * JitterBuffer.frameDuration
        return PlayoutSimulation.Packet(frame: frame, arrival: sent + delay)
    }
}

final class JitterBufferTests: XCTestCase {
    func testInOrderDeliveryPlaysEveryFrameAtMinimumDelay() {
        var sim = PlayoutSimulation(packets: packets(0..<500) { _ in 30_000 }, firstTick: 1_007_000)
        sim.drain()
        let stats = sim.buffer.statistics
        XCTAssertEqual(sim.playedFrames, Array(0..<500))
        XCTAssertEqual(stats.played, 500)
        XCTAssertEqual(stats.late, 0)
        XCTAssertEqual(stats.concealed, 0)
        XCTAssertEqual(stats.recoveredByFEC, 0)
        XCTAssertEqual(stats.stretched, 0)
        XCTAssertEqual(stats.skipped, 0)
        XCTAssertEqual(stats.targetDelay, 20_000)
        XCTAssertLessThan(stats.currentDelay, 30_000)
        XCTAssertEqual(stats.received, 500)
    }

    func testReorderingWithinTargetIsAbsorbed() {
        // Odd frames overtake the even frame before them by 5 ms.
        let list = packets(0..<400) { $0 % 2 == 0 ? 50_000 : 25_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.drain()
        let stats = sim.buffer.statistics
        XCTAssertEqual(sim.playedFrames, Array(0..<400))
        XCTAssertEqual(stats.late, 0)
        XCTAssertEqual(stats.concealed, 0)
        XCTAssertEqual(stats.targetDelay, 45_000)
    }

    func testMissingFrameWithNextPresentIsRecoveredFromFEC() {
        let buffer = JitterBuffer(configuration: .init(minDelay: 60_000))
        let list = packets(0..<200) { $0 == 100 ? nil : 30_000 }
        var sim = PlayoutSimulation(buffer: buffer, packets: list, firstTick: 1_007_000)
        sim.drain()
        let index = sim.outputs.firstIndex(of: .recover(fromNext: payload(101)))
        XCTAssertNotNil(index)
        if let index { XCTAssertEqual(sim.outputs[index + 1], .frame(payload(101))) }
        XCTAssertEqual(sim.buffer.statistics.recoveredByFEC, 1)
        XCTAssertEqual(sim.buffer.statistics.concealed, 0)
        XCTAssertEqual(sim.buffer.statistics.played, 199)
    }

    func testMissingFrameWithNothingBehindItIsConcealed() {
        var sim = PlayoutSimulation(packets: packets(0..<200) { $0 == 100 ? nil : 30_000 }, firstTick: 1_007_000)
        sim.drain()
        let index = sim.outputs.firstIndex(of: .frame(payload(99)))
        XCTAssertNotNil(index)
        if let index {
            XCTAssertEqual(sim.outputs[index + 1], .conceal)
            XCTAssertEqual(sim.outputs[index + 2], .frame(payload(101)))
        }
        XCTAssertEqual(sim.buffer.statistics.concealed, 1)
        XCTAssertEqual(sim.buffer.statistics.recoveredByFEC, 0)
        XCTAssertEqual(sim.buffer.statistics.concealedPercent, 0.5, accuracy: 1e-9)  // 1 of 200 due
    }

    func testDuplicatesAndLatePacketsAreDroppedAndCounted() {
        var buffer = JitterBuffer()
        XCTAssertEqual(buffer.pull(now: 0), .silence)
        buffer.insert(frame: 10, payload: payload(10), arrival: 1_000)
        buffer.insert(frame: 10, payload: payload(10), arrival: 1_500)
        XCTAssertEqual(buffer.statistics.duplicate, 1)
        XCTAssertEqual(buffer.pull(now: 11_000), .frame(payload(10)))
        // Frame 10 again, after it played: a duplicate, not late.
        buffer.insert(frame: 10, payload: payload(10), arrival: 12_000)
        XCTAssertEqual(buffer.statistics.duplicate, 2)
        XCTAssertEqual(buffer.pull(now: 31_000), .conceal)  // frame 11 missing
        // Frame 11 turns up after its tick: late, dropped, and a second copy is a duplicate.
        buffer.insert(frame: 11, payload: payload(11), arrival: 35_000)
        buffer.insert(frame: 11, payload: payload(11), arrival: 36_000)
        let stats = buffer.statistics
        XCTAssertEqual(stats.late, 1)
        XCTAssertEqual(stats.duplicate, 3)
        XCTAssertEqual(stats.received, 5)
        XCTAssertEqual(stats.played, 1)
        XCTAssertEqual(stats.concealed, 1)
        XCTAssertEqual(buffer.bufferedFrames, 0)
        // The late packet (due at media time 20 ms, in at 35 ms: 14 ms over the reference transit) raised
        // the target at once to cover it: 14 ms + one frame.
        XCTAssertEqual(stats.targetDelay, 34_000)
    }

    /// ±30 ms of uniformly random network delay (seeded): the target settles to cover it and, after a
    /// few seconds of adaptation, fewer than 1 % of packets are late. Then the jitter stops and the
    /// target and the delay come back down.
    func testTargetFollowsJitterAndShrinksAfterward() {
        var random = SeededGenerator(state: 42)
        let jitterFrames: UInt64 = 1500  // 30 s of ±30 ms
        let totalFrames: UInt64 = 2500  // then 20 s of steady 50 ms
        let list = packets(0..<totalFrames) { frame in
            frame < jitterFrames ? 50_000 + UInt64.random(in: 0...60_000, using: &random) - 30_000 : 50_000
        }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_003_000)

        sim.run(until: 1_000_000 + 250 * 20_000)  // five seconds to adapt
        let adapted = sim.buffer.statistics
        sim.run(until: 1_000_000 + jitterFrames * 20_000)
        let jittery = sim.buffer.statistics
        let lateAfterAdaptation = Double(jittery.late - adapted.late) / Double(jittery.received - adapted.received)
        XCTAssertLessThan(lateAfterAdaptation, 0.01)
        XCTAssertGreaterThanOrEqual(jittery.targetDelay, 40_000)
        XCTAssertLessThanOrEqual(jittery.targetDelay, 120_000)
        XCTAssertGreaterThanOrEqual(jittery.currentDelay, 40_000)
        XCTAssertLessThan(jittery.concealedPercent, 1)

        sim.run(until: 1_000_000 + (totalFrames + 20) * 20_000)
        let calm = sim.buffer.statistics
        XCTAssertEqual(calm.targetDelay, 20_000)
        XCTAssertLessThan(calm.currentDelay, 30_000)
        XCTAssertGreaterThan(calm.skipped, 0)
        XCTAssertEqual(calm.late, jittery.late, "no late packets once the jitter has stopped")
        let played = sim.playedFrames
        XCTAssertEqual(played, played.sorted(), "frames never play out of order")
        XCTAssertEqual(Set(played).count, played.count, "no frame plays twice")
        XCTAssertEqual(played.last, totalFrames - 1)
    }

    func testStorageIsCapped() {
        var buffer = JitterBuffer()
        for frame in UInt64(0)..<200 {
            buffer.insert(frame: frame, payload: payload(frame), arrival: 1_000)
            XCTAssertLessThanOrEqual(buffer.bufferedFrames, 50)
        }
        XCTAssertEqual(buffer.bufferedFrames, 50)
        XCTAssertEqual(buffer.statistics.discarded, 150)
        // Spread out in time, far-ahead packets resync instead, but storage stays capped.
        for frame in UInt64(200)..<2000 {
            buffer.insert(frame: frame, payload: payload(frame), arrival: 1_000 + frame * 20_000)
            XCTAssertLessThanOrEqual(buffer.bufferedFrames, 50)
        }
    }

    func testHugeForwardJumpResyncs() {
        var list = packets(0..<100) { _ in 30_000 }
        list += packets(1_000_000..<1_000_200, origin: 1_000_000 + 100 * 20_000) { _ in 30_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.run(until: 1_000_000 + 320 * 20_000)
        let stats = sim.buffer.statistics
        XCTAssertEqual(stats.resyncs, 1)
        let played = sim.playedFrames
        XCTAssertEqual(Array(played.prefix(100)), Array(0..<100))
        XCTAssertEqual(played.last, 1_000_199)
        // A handful of frames are sacrificed as evidence; the rest of the new timeline plays.
        XCTAssertGreaterThan(played.filter { $0 >= 1_000_000 }.count, 190)
    }

    func testSenderRestartBackwardsResyncs() {
        var list = packets(5_000..<5_200) { _ in 30_000 }
        list += packets(0..<200, origin: 1_000_000 + 200 * 20_000) { _ in 30_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.run(until: 1_000_000 + 420 * 20_000)
        XCTAssertEqual(sim.buffer.statistics.resyncs, 1)
        let played = sim.playedFrames
        XCTAssertEqual(played.last, 199)
        XCTAssertGreaterThan(played.filter { $0 < 200 }.count, 190)
    }

    func testRestartSlightlyBehindAlsoResyncs() {
        // A sender restarting 30 frames back: every new packet looks late until the evidence suffices.
        var list = packets(100..<300) { _ in 30_000 }
        list += packets(270..<470, origin: 1_000_000 + 200 * 20_000) { _ in 30_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.run(until: 1_000_000 + 420 * 20_000)
        XCTAssertEqual(sim.buffer.statistics.resyncs, 1)
        XCTAssertEqual(sim.playedFrames.last, 469)
    }

    func testDTXGapGivesSilenceNotEndlessConcealment() {
        // Talk for 2 s, DTX for 2 s (media time runs on, nothing is sent), talk for 2 s.
        var list = packets(0..<100) { _ in 30_000 }
        list += packets(200..<300, origin: 1_000_000 + 200 * 20_000) { _ in 30_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.run(until: 1_000_000 + 320 * 20_000)
        let stats = sim.buffer.statistics
        // concealLimit concealments after each talkspurt (the second ends with the run), then silence.
        XCTAssertEqual(stats.concealed, 2 * sim.buffer.configuration.concealLimit)
        XCTAssertGreaterThan(stats.silence, 80)
        XCTAssertEqual(stats.resyncs, 0)
        XCTAssertEqual(stats.late, 0)
        XCTAssertEqual(sim.playedFrames, Array(0..<100) + Array(200..<300))
        // After the concealments, silence right up to the first frame of the new talkspurt.
        let resume = sim.outputs.firstIndex(of: .frame(payload(200)))!
        let lastConceal = sim.outputs[..<resume].lastIndex(of: .conceal)!
        XCTAssertTrue(sim.outputs[(lastConceal + 1)..<resume].allSatisfy { $0 == .silence })
    }

    func testNothingReceivedIsSilence() {
        var buffer = JitterBuffer()
        for tick in 0..<10 { XCTAssertEqual(buffer.pull(now: UInt64(tick) * 20_000), .silence) }
        XCTAssertFalse(buffer.isPlaying)
        XCTAssertEqual(buffer.statistics.silence, 10)
    }

    func testDelayStepIsFollowedByGrowingTheBuffer() {
        // The path delay rises from 30 ms to 110 ms at frame 200 and stays there.
        let list = packets(0..<600) { $0 < 200 ? 30_000 : 110_000 }
        var sim = PlayoutSimulation(packets: list, firstTick: 1_007_000)
        sim.drain()
        let stats = sim.buffer.statistics
        XCTAssertEqual(sim.playedFrames.last, 599)
        XCTAssertGreaterThan(stats.stretched, 0)
        XCTAssertEqual(stats.resyncs, 0)
        XCTAssertLessThan(stats.concealed, 10)
    }
}


