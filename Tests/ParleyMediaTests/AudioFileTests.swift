import Foundation
import ParleyMedia
import XCTest

/// WAVFile, WAVWriter and Resampler: round trips of every supported encoding, resampling, and
/// hostile headers.
final class AudioFileTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-wav-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    // MARK: Writing and reading 16-bit mono

    func testWriteReadRoundTripIsExact() throws {
        var tone = ToneGenerator(frequency: 440, levelDBFS: -3)
        let samples = tone.samples(count: 12_345) + [Int16.min, Int16.max, 0, -1]
        let file = path("tone.wav")
        try WAVFile.write(path: file, samples: samples)
        let read = try WAVFile.read(path: file)
        XCTAssertEqual(read.samples48kMono, samples)
        XCTAssertEqual(read.sourceRate, 48_000)
        XCTAssertEqual(read.sourceChannels, 1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), Data(WAVFile.encode(samples: samples)))
    }

    func testWriterAppendsFramesAndFinalizesHeader() throws {
        let file = path("call.wav")
        var tone = ToneGenerator(frequency: 1_000, levelDBFS: -20)
        var all: [Int16] = []
        do {
            let writer = try WAVWriter(path: file)
            for _ in 0..<25 {
                let frame = tone.nextFrame()
                all += frame
                try writer.append(frame)
            }
            XCTAssertEqual(writer.samplesWritten, 25 * 960)
            try writer.close()
            try writer.close()  // idempotent
            XCTAssertThrowsError(try writer.append([1]))
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        XCTAssertEqual(bytes.count, 44 + 25 * 960 * 2)
        XCTAssertEqual(le32(bytes, 4), UInt32(bytes.count - 8))
        XCTAssertEqual(le32(bytes, 40), UInt32(25 * 960 * 2))
        XCTAssertEqual(try WAVFile.read(path: file).samples48kMono, all)

        // A writer dropped without close() still leaves a valid file.
        let dropped = path("dropped.wav")
        do {
            let writer = try WAVWriter(path: dropped)
            try writer.append(all)
        }
        XCTAssertEqual(try WAVFile.read(path: dropped).samples48kMono, all)
    }

    /// While a recording runs, what is on disk is a readable WAV at every moment: the header covers what has
    /// reached the kernel, refreshed at least every `refreshSamples` (a killed process loses at most that).
    func testWriterKeepsTheFileReadableWhileItRuns() throws {
        let file = path("live.wav")
        var tone = ToneGenerator(frequency: 440, levelDBFS: -20)
        let writer = try WAVWriter(path: file)
        XCTAssertEqual(writer.refreshSamples, 48_000)
        // Readable (empty) before anything is appended.
        XCTAssertEqual(try WAVFile.read(path: file).samples48kMono.count, 0)
        var all: [Int16] = []
        for frame in 1...130 {  // 2.6 s of 20 ms frames
            let pcm = tone.nextFrame()
            all += pcm
            try writer.append(pcm)
            // Read by another reader, as a crash would leave it: never more than a second behind, never ahead.
            let onDisk = try WAVFile.read(path: file).samples48kMono
            XCTAssertEqual(onDisk.count, writer.samplesInHeader, "frame \(frame)")
            XCTAssertLessThan(all.count - onDisk.count, 48_000, "frame \(frame)")
            XCTAssertEqual(onDisk, Array(all.prefix(onDisk.count)))
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
            XCTAssertEqual(le32(bytes, 4), UInt32(36 + onDisk.count * 2))
            XCTAssertGreaterThanOrEqual(bytes.count, 44 + onDisk.count * 2)
        }
        XCTAssertEqual(writer.samplesInHeader, 96_000)  // refreshed at 1 s and 2 s
        try writer.refreshHeader()
        XCTAssertEqual(try WAVFile.read(path: file).samples48kMono, all)
        try writer.close()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        XCTAssertEqual(bytes.count, 44 + all.count * 2)
        XCTAssertEqual(le32(bytes, 40), UInt32(all.count * 2))
        XCTAssertThrowsError(try writer.refreshHeader())
        XCTAssertThrowsError(try WAVWriter(path: path("x.wav"), refreshSamples: 0))
    }

    func testWriterRefusesBadPathAndRate() {
        XCTAssertThrowsError(try WAVWriter(path: path("missing-dir/x.wav"))) { error in
            guard case .io = error as? MediaError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try WAVWriter(path: path("x.wav"), sampleRate: 0))
    }

    // MARK: Encodings

    func testEveryIntegerAndFloatEncoding() throws {
        var tone = ToneGenerator(frequency: 440, levelDBFS: -6)
        let reference = tone.samples(count: 4_800)
        let values = reference.map { Double($0) / 32_768 }
        let cases: [(WAVEncoding, Int)] = [
            (.pcm(bits: 8), 256), (.pcm(bits: 16), 0), (.pcm(bits: 24), 1), (.pcm(bits: 32), 1),
            (.float(bits: 32), 1), (.float(bits: 64), 1),
        ]
        for (encoding, tolerance) in cases {
            for extensible in [false, true] {
                let bytes = makeWAV(values, channels: 1, rate: 48_000, encoding: encoding, extensible: extensible)
                let decoded = try WAVFile.decode(bytes)
                XCTAssertEqual(decoded.samples48kMono.count, reference.count, "\(encoding)")
                let worst = zip(decoded.samples48kMono, reference).map { abs(Int($0) - Int($1)) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, tolerance, "\(encoding) extensible=\(extensible)")
            }
        }
    }

    func testFloatOutOfRangeAndNaNAreClipped() throws {
        let values: [Double] = [2, -2, .nan, .infinity, 0.5]
        let decoded = try WAVFile.decode(makeWAV(values, channels: 1, rate: 48_000, encoding: .float(bits: 32)))
        XCTAssertEqual(decoded.samples48kMono, [32_767, -32_768, 0, 0, 16_384])
    }

    func testStereoIsAveraged() throws {
        // Left +x, right −x cancels; left x, right 0 halves.
        let left = (0..<960).map { Double($0 % 100) / 100 - 0.5 }
        var interleaved: [Double] = []
        for value in left { interleaved += [value, -value] }
        let cancelled = try WAVFile.decode(makeWAV(interleaved, channels: 2, rate: 48_000, encoding: .pcm(bits: 16)))
        XCTAssertEqual(cancelled.sourceChannels, 2)
        XCTAssertTrue(cancelled.samples48kMono.allSatisfy { abs(Int($0)) <= 1 })

        var halved: [Double] = []
        for value in left { halved += [value, 0, 0, 0] }
        let four = try WAVFile.decode(makeWAV(halved, channels: 4, rate: 48_000, encoding: .float(bits: 32)))
        XCTAssertEqual(four.sourceChannels, 4)
        for (sample, value) in zip(four.samples48kMono, left) {
            XCTAssertEqual(Double(sample), value * 32_768 / 4, accuracy: 1)
        }
    }

    // MARK: Resampling

    func testStereo44100IsResampledTo48k() throws {
        let rate = 44_100
        var tone = ToneGenerator(frequency: 1_000, levelDBFS: -10, sampleRate: rate)
        let mono = tone.samples(count: rate)  // 1 s
        var interleaved: [Double] = []
        for sample in mono { interleaved += [Double(sample) / 32_768, Double(sample) / 32_768] }
        let file = path("cd.wav")
        try Data(makeWAV(interleaved, channels: 2, rate: rate, encoding: .pcm(bits: 16))).write(
            to: URL(fileURLWithPath: file))

        let read = try WAVFile.read(path: file)
        XCTAssertEqual(read.sourceRate, 44_100)
        XCTAssertEqual(read.sourceChannels, 2)
        XCTAssertEqual(read.samples48kMono.count, 48_000, accuracy: 4)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: read.samples48kMono), 1_000, accuracy: 2)
        let middle = read.samples48kMono[4_800..<43_200]
        XCTAssertEqual(ToneAnalysis.levelDBFS(of: middle), -10, accuracy: 0.2)
    }

    func testLowRatesAreResampled() throws {
        for (rate, encoding) in [
            (8_000, WAVEncoding.pcm(bits: 8)), (16_000, .pcm(bits: 24)), (22_050, .float(bits: 64)),
            (96_000, .pcm(bits: 32)),
        ] {
            var tone = ToneGenerator(frequency: 440, levelDBFS: -10, sampleRate: rate)
            let values = tone.samples(count: rate / 2).map { Double($0) / 32_768 }
            let decoded = try WAVFile.decode(makeWAV(values, channels: 1, rate: rate, encoding: encoding))
            XCTAssertEqual(decoded.samples48kMono.count, 24_000, accuracy: 4, "\(rate)")
            XCTAssertEqual(ToneAnalysis.dominantFrequency(of: decoded.samples48kMono), 440, accuracy: 2, "\(rate)")
        }
    }

    func testStreamingResamplerMatchesLengthAndTone() throws {
        let resampler = try Resampler(inputRate: 32_000, outputRate: 48_000)
        var tone = ToneGenerator(frequency: 600, levelDBFS: -10, sampleRate: 32_000)
        var output: [Int16] = []
        for chunk in [640, 1, 0, 999, 3_000, 27_360] {  // 32 000 input samples in odd chunks
            output += try resampler.process(tone.samples(count: chunk))
        }
        output += try resampler.finishInt16()
        XCTAssertEqual(try resampler.finish(), [])
        XCTAssertThrowsError(try resampler.process([Float(0)]))
        XCTAssertEqual(output.count, 48_000, accuracy: 2)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: output), 600, accuracy: 1)

        let stereo = try Resampler(inputRate: 48_000, outputRate: 16_000, channels: 2)
        XCTAssertThrowsError(try stereo.process([Float](repeating: 0, count: 3)))
        var out = try stereo.process([Float](repeating: 0.25, count: 9_600))
        out += try stereo.finish()
        XCTAssertEqual(out.count, 3_200, accuracy: 2)

        XCTAssertThrowsError(try Resampler(inputRate: 0, outputRate: 48_000))
        XCTAssertThrowsError(try Resampler(inputRate: 8_000, outputRate: 48_000, channels: 0))
    }

    // MARK: Robustness

    func testUnknownChunksAndOddPaddingAreSkipped() throws {
        let values = (0..<100).map { Double($0) / 200 }
        let extra: [(String, [UInt8])] = [("LIST", [1, 2, 3]), ("JUNK", []), ("bext", [9])]
        let bytes = makeWAV(
            values, channels: 1, rate: 48_000, encoding: .pcm(bits: 16), chunksBeforeFmt: extra, chunksAfterData: extra)
        let decoded = try WAVFile.decode(bytes)
        XCTAssertEqual(decoded.samples48kMono.count, 100)
        XCTAssertEqual(decoded.samples48kMono[50], 8_192)
        // A trailing partial frame is dropped.
        // The data chunk holds 1.5 stereo frames.
        let stereo = makeWAV([0.5, 0.5, 0.25], channels: 2, rate: 48_000, encoding: .pcm(bits: 16))
        XCTAssertEqual(try WAVFile.decode(stereo).samples48kMono, [16_384])
    }

    func testHostileHeadersThrow() throws {
        let good = makeWAV(
            (0..<480).map { sin(Double($0) / 10) * 0.5 }, channels: 1, rate: 48_000, encoding: .pcm(bits: 16))
        XCTAssertNoThrow(try WAVFile.decode(good))

        var hostile: [(String, [UInt8])] = []
        hostile.append(("empty", []))
        hostile.append(("RIFF only", Array(good[..<8])))
        for cut in [12, 20, 30, 36, 43] { hostile.append(("truncated at \(cut)", Array(good[..<cut]))) }
        hostile.append(("truncated data", Array(good[..<(good.count - 10)])))
        var huge = good
        put32(&huge, 40, 0xFFFF_FFF0)
        hostile.append(("data claims 4 GB", huge))
        var zeroChannels = good
        put16(&zeroChannels, 22, 0)
        hostile.append(("zero channels", zeroChannels))
        var manyChannels = good
        put16(&manyChannels, 22, 60_000)
        hostile.append(("60000 channels", manyChannels))
        var zeroBits = good
        put16(&zeroBits, 34, 0)
        hostile.append(("0 bits", zeroBits))
        var oddBits = good
        put16(&oddBits, 34, 12)
        hostile.append(("12 bits", oddBits))
        var zeroRate = good
        put32(&zeroRate, 24, 0)
        hostile.append(("rate 0", zeroRate))
        var absurdRate = good
        put32(&absurdRate, 24, 4_000_000_000)
        hostile.append(("rate 4 GHz", absurdRate))
        var badAlign = good
        put16(&badAlign, 32, 7)
        hostile.append(("block align 7", badAlign))
        var alaw = good
        put16(&alaw, 20, 6)
        hostile.append(("A-law", alaw))
        var notWave = good
        notWave.replaceSubrange(8..<12, with: Array("AVI ".utf8))
        hostile.append(("not WAVE", notWave))
        var shortFmt = good
        put32(&shortFmt, 16, 8)
        hostile.append(("fmt of 8 bytes", shortFmt))
        // fmt after data: swap the two chunks.
        let fmtChunk = Array(good[12..<36])
        let dataChunk = Array(good[36...])
        hostile.append(("fmt after data", Array(good[..<12]) + dataChunk + fmtChunk))
        hostile.append(("no data", Array(good[..<36])))
        hostile.append(("two fmt", Array(good[..<36]) + fmtChunk + dataChunk))
        var rf64 = good
        rf64.replaceSubrange(0..<4, with: Array("RF64".utf8))
        hostile.append(("RF64", rf64))

        for (name, bytes) in hostile {
            XCTAssertThrowsError(try WAVFile.decode(bytes), name) { error in
                XCTAssertNotNil(error as? MediaError, name)
                XCTAssertFalse("\(error)".isEmpty)
            }
        }
        XCTAssertThrowsError(try WAVFile.decode(huge)) { error in
            XCTAssertTrue("\(error)".contains("claims 4294967280 bytes"), "\(error)")
        }
        XCTAssertThrowsError(try WAVFile.decode(zeroChannels)) { error in
            XCTAssertTrue("\(error)".contains("channel count 0"), "\(error)")
        }
    }

    func testRandomBytesNeverCrash() throws {
        var random = SplitMix64(seed: 42)
        let good = makeWAV((0..<64).map { Double($0) / 128 }, channels: 1, rate: 48_000, encoding: .pcm(bits: 16))
        for round in 0..<2_000 {
            let bytes: [UInt8]
            if round % 2 == 0 {
                let count = Int(random.next() % 200)
                bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                XCTAssertThrowsError(try WAVFile.decode(bytes))
            } else {
                // Mutate a few bytes of a good header: must either decode or throw MediaError.
                var mutated = good
                for _ in 0..<(1 + random.next() % 4) {
                    let index = Int(random.next() % UInt64(min(mutated.count, 48)))
                    mutated[index] = UInt8(truncatingIfNeeded: random.next())
                }
                // decode throws only MediaError (typed throws); surviving is the test.
                _ = try? WAVFile.decode(mutated)
            }
        }
    }

    func testFileErrors() throws {
        XCTAssertThrowsError(try WAVFile.read(path: path("nope.wav"))) { error in
            guard case .io(let failedPath, let reason) = error as? MediaError else { return XCTFail("\(error)") }
            XCTAssertTrue(failedPath.hasSuffix("nope.wav"))
            XCTAssertTrue(reason.contains("No such file"), reason)
        }
        // A sparse file just over the limit is refused before it is read.
        let big = path("big.wav")
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: Data("RIFF".utf8)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: big))
        try handle.truncate(atOffset: UInt64(WAVFile.maximumFileSize) + 1)
        try handle.close()
        XCTAssertThrowsError(try WAVFile.read(path: big)) { error in
            XCTAssertEqual(
                error as? MediaError, .fileTooLarge(size: WAVFile.maximumFileSize + 1, limit: WAVFile.maximumFileSize))
        }
    }
}

// MARK: - Building test files

private enum WAVEncoding: CustomStringConvertible {
    case pcm(bits: Int)
    case float(bits: Int)

    var description: String {
        switch self {
        case .pcm(let bits): "PCM\(bits)"
        case .float(let bits): "float\(bits)"
        }
    }
}

/// A WAV file of `values` (full scale ±1.0, interleaved) in the given encoding.
private func makeWAV(
    _ values: [Double], channels: Int, rate: Int, encoding: WAVEncoding, extensible: Bool = false,
    chunksBeforeFmt: [(String, [UInt8])] = [], chunksAfterData: [(String, [UInt8])] = []
) -> [UInt8] {
    var data: [UInt8] = []
    let bits: Int
    let tag: Int
    switch encoding {
    case .pcm(let b):
        bits = b
        tag = 1
        for value in values {
            let clipped = max(-1, min(1, value))
            switch b {
            case 8:
                data.append(UInt8(max(0, min(255, (clipped * 128).rounded() + 128))))
            default:
                // Signed little-endian integer of b bits, full scale 2^(b-1).
                let scale = Double(Int64(1) << (b - 1))
                let integer = Int64(max(-scale, min(scale - 1, (clipped * scale).rounded())))
                appendLE(&data, UInt64(bitPattern: integer), b / 8)
            }
        }
    case .float(let b):
        bits = b
        tag = 3
        for value in values {
            if b == 32 {
                appendLE(&data, UInt64(Float(value).bitPattern), 4)
            } else {
                appendLE(&data, value.bitPattern, 8)
            }
        }
    }
    let blockAlign = channels * bits / 8
    var fmt: [UInt8] = []
    appendLE(&fmt, UInt64(extensible ? 0xFFFE : tag), 2)
    appendLE(&fmt, UInt64(channels), 2)
    appendLE(&fmt, UInt64(rate), 4)
    appendLE(&fmt, UInt64(rate * blockAlign), 4)
    appendLE(&fmt, UInt64(blockAlign), 2)
    appendLE(&fmt, UInt64(bits), 2)
    if extensible {
        appendLE(&fmt, 22, 2)
        appendLE(&fmt, UInt64(bits), 2)
        appendLE(&fmt, 0, 4)
        appendLE(&fmt, UInt64(tag), 2)
        fmt += [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71]
    }
    var body = Array("WAVE".utf8)
    for (id, content) in chunksBeforeFmt { body += chunk(id, content) }
    body += chunk("fmt ", fmt)
    body += chunk("data", data)
    for (id, content) in chunksAfterData { body += chunk(id, content) }
    var file = Array("RIFF".utf8)
    appendLE(&file, UInt64(body.count), 4)
    return file + body
}

private func chunk(_ id: String, _ content: [UInt8]) -> [UInt8] {
    var bytes = Array(id.utf8)
    appendLE(&bytes, UInt64(content.count), 4)
    bytes += content
    if content.count % 2 == 1 { bytes.append(0) }
    return bytes
}

private func appendLE(_ bytes: inout [UInt8], _ value: UInt64, _ count: Int) {
    for index in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
}

private func put16(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(truncatingIfNeeded: value)
    bytes[offset + 1] = UInt8(value >> 8)
}

private func put32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
    for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
}

private func le32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
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
