#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing RIFF/WAVE files.
///
/// Reading accepts PCM integer (8, 16, 24, 32 bit), IEEE float (32, 64 bit) and
/// `WAVE_FORMAT_EXTENSIBLE` wrapping either, with any channel count up to 64 and any rate from
/// 1 kHz to 768 kHz; the audio is mixed down to mono by averaging and resampled to 48 kHz with
/// libsoxr. The parser is written for hostile input: unknown chunks are skipped (with their pad
/// byte), and truncated, oversized or absurd headers throw ``MediaError`` instead of trapping.
///
/// Parsing (``parse(_:)``, ``decode(_:)``) works on bytes and does no I/O; ``read(path:)`` and
/// ``write(path:samples:sampleRate:)`` add the file access.
public enum WAVFile {
    /// The largest file ``read(path:)`` and ``decode(_:)`` accept: 1 GiB.
    public static let maximumFileSize = 1 << 30

    /// Channel counts the reader accepts.
    public static let channelRange = 1...64

    /// Sample rates the reader accepts, in Hz.
    public static let sampleRateRange = 1_000...768_000

    /// How samples are stored in the data chunk.
    public enum SampleEncoding: Sendable, Equatable {
        /// Unsigned 8-bit integers, silence at 128.
        case unsigned8
        /// Signed little-endian 16-bit integers.
        case signed16
        /// Signed little-endian 24-bit integers.
        case signed24
        /// Signed little-endian 32-bit integers.
        case signed32
        /// IEEE 754 little-endian 32-bit floats, full scale ±1.0.
        case float32
        /// IEEE 754 little-endian 64-bit floats, full scale ±1.0.
        case float64

        /// Bytes one sample of one channel takes.
        public var bytesPerSample: Int {
            switch self {
            case .unsigned8: 1
            case .signed16: 2
            case .signed24: 3
            case .signed32, .float32: 4
            case .float64: 8
            }
        }
    }

    /// The parsed `fmt ` chunk and where the samples are.
    public struct Layout: Sendable, Equatable {
        /// Sample encoding.
        public var encoding: SampleEncoding
        /// Interleaved channels per frame.
        public var channels: Int
        /// Frames per second.
        public var sampleRate: Int
        /// Byte range of the data chunk's body within the file, trimmed to whole frames.
        public var data: Range<Int>

        /// Number of frames (samples per channel) in the data chunk.
        public var frameCount: Int { data.count / (channels * encoding.bytesPerSample) }
    }

    // MARK: Reading

    /// Reads a WAV file and returns its audio as 48 kHz mono 16-bit samples.
    ///
    /// - Returns: the samples, with the file's original sample rate and channel count.
    /// - Throws: ``MediaError/io(path:reason:)`` if the file cannot be read,
    ///   ``MediaError/fileTooLarge(size:limit:)`` above ``maximumFileSize``, and the errors of ``decode(_:)``.
    public static func read(path: String) throws(MediaError) -> (
        samples48kMono: [Int16], sourceRate: Int, sourceChannels: Int
    ) {
        try decode(try readBytes(path: path))
    }

    /// Decodes the bytes of a WAV file to 48 kHz mono 16-bit samples. No I/O.
    ///
    /// - Throws: ``MediaError/invalidWAV(reason:)`` for malformed files,
    ///   ``MediaError/unsupportedWAV(reason:)`` for encodings other than PCM and IEEE float,
    ///   ``MediaError/fileTooLarge(size:limit:)`` above ``maximumFileSize``.
    public static func decode(_ bytes: [UInt8]) throws(MediaError) -> (
        samples48kMono: [Int16], sourceRate: Int, sourceChannels: Int
    ) {
        let layout = try parse(bytes)
        let mono = mixToMono(bytes, layout: layout)
        let resampled: [Float]
        if layout.sampleRate == AudioFormat.sampleRate {
            resampled = mono
        } else {
            resampled = try Resampler.resample(
                mono, from: Double(layout.sampleRate), to: Double(AudioFormat.sampleRate))
        }
        return (Resampler.int16(resampled), layout.sampleRate, layout.channels)
    }

    /// Parses the RIFF structure and the `fmt ` chunk, and locates the data chunk. No I/O.
    ///
    /// Chunks other than `fmt ` and `data` are skipped; parsing stops at the data chunk, which must
    /// come after `fmt `. A RIFF size larger than the file is tolerated (the chunks are checked
    /// instead); a chunk extending past the end of the file is not.
    /// - Throws: ``MediaError/invalidWAV(reason:)``, ``MediaError/unsupportedWAV(reason:)``,
    ///   ``MediaError/fileTooLarge(size:limit:)``.
    public static func parse(_ bytes: [UInt8]) throws(MediaError) -> Layout {
        guard bytes.count <= maximumFileSize else {
            throw .fileTooLarge(size: bytes.count, limit: maximumFileSize)
        }
        guard bytes.count >= 12 else {
            throw .invalidWAV(reason: "file is \(bytes.count) bytes, too short for a RIFF header (12 bytes)")
        }
        let magic = fourCC(bytes, at: 0)
        guard magic == "RIFF" else {
            if magic == "RF64" || magic == "BW64" { throw .unsupportedWAV(reason: "\(magic) (64-bit RIFF) files") }
            throw .invalidWAV(reason: "file does not start with \"RIFF\"")
        }
        guard fourCC(bytes, at: 8) == "WAVE" else {
            throw .invalidWAV(reason: "RIFF form type is \"\(fourCC(bytes, at: 8))\", not \"WAVE\"")
        }
        let riffSize = Int(u32(bytes, at: 4))
        guard riffSize >= 4 else { throw .invalidWAV(reason: "RIFF size \(riffSize) is too small") }
        let end = min(bytes.count, 8 + riffSize)

        var offset = 12
        var format: (encoding: SampleEncoding, channels: Int, sampleRate: Int)?
        while true {
            guard end - offset >= 8 else {
                if format == nil { throw .invalidWAV(reason: "no fmt chunk before the end of the file") }
                throw .invalidWAV(reason: "no data chunk before the end of the file")
            }
            let id = fourCC(bytes, at: offset)
            let size = Int(u32(bytes, at: offset + 4))
            let body = offset + 8
            guard size <= end - body else {
                throw .invalidWAV(
                    reason: "\"\(id)\" chunk at offset \(offset) claims \(size) bytes but only \(end - body) remain"
                        + " (truncated file?)")
            }
            switch id {
            case "fmt ":
                guard format == nil else { throw .invalidWAV(reason: "more than one fmt chunk") }
                format = try parseFormat(bytes[body..<(body + size)])
            case "data":
                guard let format else { throw .invalidWAV(reason: "data chunk comes before the fmt chunk") }
                let frameBytes = format.channels * format.encoding.bytesPerSample
                let usable = size - size % frameBytes
                return Layout(
                    encoding: format.encoding, channels: format.channels, sampleRate: format.sampleRate,
                    data: body..<(body + usable))
            default:
                break  // LIST, fact, cue, bext, JUNK, …: not needed.
            }
            // Chunks are padded to an even size (the pad byte may be missing at the very end).
            offset = body + size + (size & 1)
        }
    }

    /// Parses a `fmt ` chunk body (WAVEFORMATEX, optionally WAVE_FORMAT_EXTENSIBLE).
    private static func parseFormat(
        _ chunk: ArraySlice<UInt8>
    ) throws(MediaError) -> (encoding: SampleEncoding, channels: Int, sampleRate: Int) {
        guard chunk.count >= 16 else {
            throw .invalidWAV(reason: "fmt chunk is \(chunk.count) bytes, needs at least 16")
        }
        let base = chunk.startIndex
        var tag = u16(chunk, at: base)
        let channels = Int(u16(chunk, at: base + 2))
        let sampleRate = Int(u32(chunk, at: base + 4))
        let blockAlign = Int(u16(chunk, at: base + 12))
        let bits = Int(u16(chunk, at: base + 14))

        if tag == 0xFFFE {  // WAVE_FORMAT_EXTENSIBLE: the real format is in the sub-format GUID.
            guard chunk.count >= 40 else {
                throw .invalidWAV(reason: "extensible fmt chunk is \(chunk.count) bytes, needs 40")
            }
            let validBits = Int(u16(chunk, at: base + 18))
            guard validBits <= bits else {
                throw .invalidWAV(reason: "\(validBits) valid bits do not fit in \(bits)-bit samples")
            }
            let guidTail: [UInt8] = [
                0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]
            guard Array(chunk[(base + 26)..<(base + 40)]) == guidTail else {
                throw .unsupportedWAV(reason: "extensible sub-format is not a standard WAVE format GUID")
            }
            tag = u16(chunk, at: base + 24)
        }
        guard channelRange.contains(channels) else {
            throw .invalidWAV(reason: "channel count \(channels) is outside \(channelRange)")
        }
        guard sampleRateRange.contains(sampleRate) else {
            throw .invalidWAV(reason: "sample rate \(sampleRate) Hz is outside \(sampleRateRange)")
        }
        guard bits > 0 else { throw .invalidWAV(reason: "0 bits per sample") }

        let encoding: SampleEncoding
        switch (tag, bits) {
        case (1, 8): encoding = .unsigned8
        case (1, 16): encoding = .signed16
        case (1, 24): encoding = .signed24
        case (1, 32): encoding = .signed32
        case (3, 32): encoding = .float32
        case (3, 64): encoding = .float64
        case (1, _), (3, _):
            throw .unsupportedWAV(reason: "\(bits) bits per sample for format \(tag == 1 ? "PCM" : "IEEE float")")
        default:
            throw .unsupportedWAV(reason: "format tag 0x\(String(tag, radix: 16)) (only PCM and IEEE float are read)")
        }
        guard blockAlign == channels * encoding.bytesPerSample else {
            throw .invalidWAV(
                reason: "block align \(blockAlign) does not match \(channels) channels of \(bits)-bit samples")
        }
        return (encoding, channels, sampleRate)
    }

    /// Converts the data chunk to float (full scale ±1.0) and averages the channels.
    private static func mixToMono(_ bytes: [UInt8], layout: Layout) -> [Float] {
        let channels = layout.channels
        let width = layout.encoding.bytesPerSample
        let frames = layout.frameCount
        var mono = [Float](repeating: 0, count: frames)
        bytes.withUnsafeBufferPointer { raw in
            var position = layout.data.lowerBound
            for frame in 0..<frames {
                var sum: Float = 0
                for _ in 0..<channels {
                    sum += sample(raw, at: position, encoding: layout.encoding)
                    position += width
                }
                mono[frame] = channels == 1 ? sum : sum / Float(channels)
            }
        }
        return mono
    }

    /// One sample as a float at full scale ±1.0. Non-finite floats become 0, others are clipped.
    @inline(__always)
    private static func sample(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int, encoding: SampleEncoding) -> Float {
        switch encoding {
        case .unsigned8:
            return (Float(bytes[i]) - 128) / 128
        case .signed16:
            return Float(Int16(bitPattern: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8)) / 32_768
        case .signed24:
            let raw = UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 24
            return Float(Int32(bitPattern: raw) >> 8) / 8_388_608
        case .signed32:
            return Float(Int32(bitPattern: u32(bytes, at: i))) / 2_147_483_648
        case .float32:
            return clip(Float(bitPattern: u32(bytes, at: i)))
        case .float64:
            let raw = UInt64(u32(bytes, at: i)) | UInt64(u32(bytes, at: i + 4)) << 32
            return clip(Float(Double(bitPattern: raw)))
        }
    }

    private static func clip(_ value: Float) -> Float {
        value.isFinite ? max(-1, min(1, value)) : 0
    }

    // MARK: Writing

    /// Encodes 16-bit mono samples as a complete WAV file. No I/O.
    public static func encode(samples: [Int16], sampleRate: Int = AudioFormat.sampleRate) -> [UInt8] {
        var bytes = header(dataBytes: UInt32(clamping: samples.count * 2), sampleRate: sampleRate)
        bytes.reserveCapacity(bytes.count + samples.count * 2)
        for sample in samples {
            let bits = UInt16(bitPattern: sample)
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        }
        return bytes
    }

    /// Writes 16-bit mono samples to a WAV file, replacing any existing file.
    /// - Throws: ``MediaError/io(path:reason:)`` if the file cannot be written.
    public static func write(path: String, samples: [Int16], sampleRate: Int = AudioFormat.sampleRate)
        throws(MediaError)
    {
        let writer = try WAVWriter(path: path, sampleRate: sampleRate)
        try writer.append(samples)
        try writer.close()
    }

    /// The 44-byte header of a 16-bit mono PCM file with `dataBytes` bytes of samples.
    static func header(dataBytes: UInt32, sampleRate: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(44)
        func put32(_ value: UInt32) {
            for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> shift)) }
        }
        func put16(_ value: UInt16) {
            bytes.append(UInt8(truncatingIfNeeded: value))
            bytes.append(UInt8(value >> 8))
        }
        let rate = UInt32(clamping: sampleRate)
        bytes += Array("RIFF".utf8)
        put32(dataBytes &+ 36)
        bytes += Array("WAVEfmt ".utf8)
        put32(16)
        put16(1)  // PCM
        put16(1)  // mono
        put32(rate)
        put32(rate &* 2)  // byte rate
        put16(2)  // block align
        put16(16)  // bits per sample
        bytes += Array("data".utf8)
        put32(dataBytes)
        return bytes
    }

    // MARK: Byte helpers

    private static func fourCC(_ bytes: [UInt8], at i: Int) -> String {
        String(decoding: bytes[i..<(i + 4)].map { (0x20...0x7E).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }

    private static func u16<C: RandomAccessCollection>(_ bytes: C, at i: C.Index) -> UInt16
    where C.Element == UInt8, C.Index == Int {
        UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
    }

    private static func u32<C: RandomAccessCollection>(_ bytes: C, at i: C.Index) -> UInt32
    where C.Element == UInt8, C.Index == Int {
        UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
    }

    // MARK: File access

    /// Reads a whole file, refusing files above ``maximumFileSize``.
    private static func readBytes(path: String) throws(MediaError) -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw .io(path: path, reason: errnoText()) }
        defer { fclose(file) }
        guard fseeko(file, 0, SEEK_END) == 0 else { throw .io(path: path, reason: errnoText()) }
        let size = Int(ftello(file))
        guard size >= 0, fseeko(file, 0, SEEK_SET) == 0 else { throw .io(path: path, reason: errnoText()) }
        guard size <= maximumFileSize else { throw .fileTooLarge(size: size, limit: maximumFileSize) }
        var bytes = [UInt8](repeating: 0, count: size)
        let read = bytes.withUnsafeMutableBytes { buffer in
            buffer.baseAddress.map { fread($0, 1, size, file) } ?? 0
        }
        guard read == size else {
            throw .io(path: path, reason: ferror(file) != 0 ? errnoText() : "file shrank while being read")
        }
        return bytes
    }
}

/// The text for the current `errno`.
func errnoText() -> String {
    strerror(errno).map { String(cString: $0) } ?? "error \(errno)"
}
