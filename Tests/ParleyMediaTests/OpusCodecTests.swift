import Foundation
import ParleyMedia
import XCTest

/// OpusEncoder and OpusDecoder: round trips of test tones, FEC recovery, DTX and hostile packets.
final class OpusCodecTests: XCTestCase {
    /// Frames skipped before measuring, to get past the codec's delay and start-up.
    private let settleFrames = 5

    private func roundTrip(frequency: Double, level: Double, frames: Int = 50) throws -> [Int16] {
        let encoder = try OpusEncoder(bitrate: 32_000)
        let decoder = try OpusDecoder()
        var tone = ToneGenerator(frequency: frequency, levelDBFS: level)
        var decoded: [Int16] = []
        for _ in 0..<frames {
            let packet = try encoder.encode(tone.nextFrame())
            XCTAssertFalse(OpusEncoder.isDTXPacket(packet), "a tone must not be sent as DTX")
            XCTAssertLessThanOrEqual(packet.count, 32_000 / 8 / 50 * 2)
            let pcm = try decoder.decode(packet)
            XCTAssertEqual(pcm.count, AudioFormat.frameSamples)
            decoded += pcm
        }
        return Array(decoded[(settleFrames * AudioFormat.frameSamples)...])
    }

    func testToneRoundTrip440() throws {
        let decoded = try roundTrip(frequency: 440, level: -20)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: decoded), 440, accuracy: 5)
        XCTAssertEqual(ToneAnalysis.levelDBFS(of: decoded), -20, accuracy: 2)
    }

    func testToneRoundTrip1k() throws {
        let decoded = try roundTrip(frequency: 1_000, level: -12)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: decoded), 1_000, accuracy: 5)
        XCTAssertEqual(ToneAnalysis.levelDBFS(of: decoded), -12, accuracy: 2)
    }

    func testEncoderSettings() throws {
        let encoder = try OpusEncoder(
            bitrate: 24_000, complexity: 5, inbandFEC: false, dtx: false, expectedLossPercent: 10)
        XCTAssertEqual(encoder.bitrate, 24_000)
        XCTAssertEqual(encoder.complexity, 5)
        XCTAssertFalse(encoder.inbandFEC)
        XCTAssertFalse(encoder.dtx)
        XCTAssertEqual(encoder.expectedLossPercent, 10)
        try encoder.setBitrate(64_000)
        try encoder.setComplexity(10)
        try encoder.setInbandFEC(true)
        try encoder.setDTX(true)
        try encoder.setExpectedLossPercent(25)
        XCTAssertEqual(encoder.bitrate, 64_000)
        XCTAssertEqual(encoder.complexity, 10)
        XCTAssertTrue(encoder.inbandFEC)
        XCTAssertTrue(encoder.dtx)
        XCTAssertEqual(encoder.expectedLossPercent, 25)

        XCTAssertThrowsError(try encoder.setBitrate(1_000)) { error in
            guard case .invalidArgument = error as? MediaError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try encoder.setComplexity(11))
        XCTAssertThrowsError(try encoder.setExpectedLossPercent(101))
        XCTAssertThrowsError(try OpusEncoder(bitrate: 0))
        XCTAssertEqual(encoder.bitrate, 64_000, "a refused setting leaves the old one")
        try encoder.reset()
    }

    func testWrongFrameSizeThrows() throws {
        let encoder = try OpusEncoder()
        for count in [0, 1, 959, 961, 1_920] {
            XCTAssertThrowsError(try encoder.encode([Int16](repeating: 0, count: count))) { error in
                XCTAssertEqual(error as? MediaError, .wrongFrameSize(expected: 960, actual: count))
            }
        }
    }

    func testDTXSilenceYieldsTinyPackets() throws {
        let encoder = try OpusEncoder(dtx: true)
        let silence = [Int16](repeating: 0, count: AudioFormat.frameSamples)
        var sizes: [Int] = []
        for _ in 0..<100 { sizes.append(try encoder.encode(silence).count) }
        // After a short start-up, nearly every frame is a DTX packet (libopus still sends an update
        // every 400 ms or so).
        let tail = sizes.dropFirst(20)
        let tiny = tail.filter { $0 <= OpusEncoder.dtxPacketMaximumSize }.count
        XCTAssertGreaterThanOrEqual(tiny, tail.count * 8 / 10, "sizes: \(sizes)")
        XCTAssertTrue(encoder.isInDTX)
        XCTAssertTrue(OpusEncoder.isDTXPacket([0x08]))
        XCTAssertFalse(OpusEncoder.isDTXPacket([0x08, 1, 2]))

        // DTX packets still decode (to silence or comfort noise).
        let decoder = try OpusDecoder()
        let pcm = try decoder.decode(try encoder.encode(silence))
        XCTAssertEqual(pcm.count, AudioFormat.frameSamples)

        // Without DTX, silence is sent as ordinary packets.
        let plain = try OpusEncoder(dtx: false)
        var plainSizes: [Int] = []
        for _ in 0..<50 { plainSizes.append(try plain.encode(silence).count) }
        XCTAssertFalse(plain.isInDTX)
        XCTAssertTrue(plainSizes.dropFirst(20).allSatisfy { $0 > OpusEncoder.dtxPacketMaximumSize }, "\(plainSizes)")
    }

    /// Frame k is lost; packet k+1 carries a low-bitrate copy of it. The tone changes frequency at
    /// frame k, so concealment (which extrapolates the old tone) cannot guess it but FEC can.
    func testFECRecoversLostFrame() throws {
        let encoder = try OpusEncoder(bitrate: 32_000, inbandFEC: true, expectedLossPercent: 20)
        let lost = 30
        var before = ToneGenerator(frequency: 440, levelDBFS: -15)
        var after = ToneGenerator(frequency: 700, levelDBFS: -15)
        var packets: [[UInt8]] = []
        for index in 0..<40 {
            packets.append(try encoder.encode(index < lost ? before.nextFrame() : after.nextFrame()))
        }

        // What a decoder that received everything produces for frame k.
        let reference = try OpusDecoder()
        var referenceFrames: [[Int16]] = []
        for packet in packets { referenceFrames.append(try reference.decode(packet)) }
        let truth = referenceFrames[lost]

        // Receiver A recovers frame k from packet k+1; receiver B can only conceal it.
        let withFEC = try OpusDecoder()
        let withPLC = try OpusDecoder()
        for packet in packets[..<lost] {
            _ = try withFEC.decode(packet)
            _ = try withPLC.decode(packet)
        }
        let recovered = withFEC.decodeFEC(from: packets[lost + 1])
        let concealed = withPLC.conceal()
        XCTAssertEqual(recovered.count, AudioFormat.frameSamples)
        XCTAssertEqual(concealed.count, AudioFormat.frameSamples)
        // The stream continues normally after the recovery.
        XCTAssertEqual(try withFEC.decode(packets[lost + 1]).count, AudioFormat.frameSamples)

        let fecError = meanSquareDifference(recovered, truth)
        let plcError = meanSquareDifference(concealed, truth)
        XCTAssertLessThan(fecError, plcError, "FEC should beat concealment: \(fecError) vs \(plcError)")

        // The recovered frame holds the new tone (second half, past the codec's transition).
        let tail = recovered[480...]
        XCTAssertGreaterThan(ToneAnalysis.power(at: 700, in: tail), 4 * ToneAnalysis.power(at: 440, in: tail))
    }

    func testFECWithoutFECDataConceals() throws {
        let encoder = try OpusEncoder(inbandFEC: false)
        let decoder = try OpusDecoder()
        var tone = ToneGenerator(frequency: 440, levelDBFS: -20)
        var packets: [[UInt8]] = []
        for _ in 0..<20 { packets.append(try encoder.encode(tone.nextFrame())) }
        for packet in packets[..<10] { _ = try decoder.decode(packet) }
        XCTAssertEqual(decoder.decodeFEC(from: packets[11]).count, AudioFormat.frameSamples)
        XCTAssertEqual(decoder.decodeFEC(from: []).count, AudioFormat.frameSamples)
        XCTAssertEqual(decoder.decodeFEC(from: [0x01, 0x00]).count, AudioFormat.frameSamples)
        XCTAssertEqual(decoder.conceal().count, AudioFormat.frameSamples)
        try decoder.reset()
        XCTAssertEqual(try decoder.decode(packets[12]).count, AudioFormat.frameSamples)
        XCTAssertEqual(decoder.lastPacketDuration, AudioFormat.frameSamples)
    }

    func testMalformedPacketsThrow() throws {
        let decoder = try OpusDecoder()
        XCTAssertThrowsError(try decoder.decode([])) { error in
            guard case .malformedPacket = error as? MediaError else { return XCTFail("\(error)") }
        }
        // Code 1 (two frames of equal size) with an odd payload; code 3 with a frame count of 0;
        // code 2 with a first-frame length longer than the packet.
        for packet: [UInt8] in [[0x01, 0x00], [0x03, 0x00], [0x02, 0xFB, 0x01]] {
            XCTAssertThrowsError(try decoder.decode(packet), "\(packet)") { error in
                guard case .opus(_, let code) = error as? MediaError else { return XCTFail("\(error)") }
                XCTAssertLessThan(code, 0)
                XCTAssertTrue("\(error)".contains("corrupted stream"), "\(error)")
            }
        }
        // The decoder still works afterwards.
        let encoder = try OpusEncoder()
        var tone = ToneGenerator(frequency: 440)
        XCTAssertEqual(try decoder.decode(try encoder.encode(tone.nextFrame())).count, 960)
    }

    func testRandomPacketsNeverCrash() throws {
        var random = SplitMix64(seed: 0x0BAD_5EED)
        let decoder = try OpusDecoder()
        var rejected = 0
        for round in 0..<3_000 {
            let length = Int(random.next() % 400) + 1
            let packet = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            do {
                let pcm = try decoder.decode(packet)
                XCTAssertLessThanOrEqual(pcm.count, OpusDecoder.maximumPacketSamples)
            } catch {
                rejected += 1
            }
            if round % 10 == 0 { XCTAssertEqual(decoder.decodeFEC(from: packet).count, 960) }
        }
        XCTAssertGreaterThan(rejected, 0, "some random packets must be refused")
        XCTAssertEqual(decoder.conceal().count, 960)
    }

    func testErrorDescriptions() {
        XCTAssertEqual(
            MediaError.opus(operation: "opus_decode", code: -4).description,
            "opus_decode failed: corrupted stream (opus error -4)")
        XCTAssertEqual(
            MediaError.wrongFrameSize(expected: 960, actual: 10).description,
            "PCM frame has 10 samples, expected 960")
    }

    private func meanSquareDifference(_ a: [Int16], _ b: [Int16]) -> Double {
        zip(a, b).reduce(0.0) { sum, pair in
            let d = Double(pair.0) - Double(pair.1)
            return sum + d * d
        } / Double(max(1, min(a.count, b.count)))
    }
}

/// Deterministic pseudo-random numbers (SplitMix64), so failures reproduce.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
