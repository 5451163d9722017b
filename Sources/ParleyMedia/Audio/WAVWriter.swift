#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a 16-bit mono PCM WAV file incrementally, for recording a call frame by frame.
///
/// The header is written first with zero sizes; ``close()`` fills in the RIFF and data sizes.
/// If the writer is dropped without ``close()``, `deinit` finalizes the file on a best-effort basis.
/// Not `Sendable`: use it from one task or thread at a time.
public final class WAVWriter {
    /// The largest data chunk a WAV file can describe (its size field is 32 bits, less the header).
    public static let maximumDataBytes = Int(UInt32.max) - 36

    /// The file being written.
    public let path: String
    /// Sample rate written in the header, in Hz.
    public let sampleRate: Int
    /// Samples appended so far.
    public private(set) var samplesWritten = 0

    private var file: UnsafeMutablePointer<FILE>?

    /// Creates (or truncates) the file at `path` and writes a provisional header.
    ///
    /// - Parameter sampleRate: the rate to record in the header; Parley audio is 48 kHz.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` for a rate outside ``WAVFile/sampleRateRange``,
    ///   ``MediaError/io(path:reason:)`` if the file cannot be created.
    public init(path: String, sampleRate: Int = AudioFormat.sampleRate) throws(MediaError) {
        guard WAVFile.sampleRateRange.contains(sampleRate) else {
            throw .invalidArgument(reason: "sample rate \(sampleRate) Hz is outside \(WAVFile.sampleRateRange)")
        }
        guard let file = fopen(path, "wb") else { throw .io(path: path, reason: errnoText()) }
        self.path = path
        self.sampleRate = sampleRate
        self.file = file
        try put(WAVFile.header(dataBytes: 0, sampleRate: sampleRate))
    }

    deinit {
        try? close()
    }

    /// Appends samples (any count, typically one 960-sample frame).
    /// - Throws: ``MediaError/io(path:reason:)`` on a write error or after ``close()``,
    ///   ``MediaError/fileTooLarge(size:limit:)`` when the file would exceed what WAV can describe.
    public func append(_ samples: [Int16]) throws(MediaError) {
        let newBytes = (samplesWritten + samples.count) * 2
        guard newBytes <= Self.maximumDataBytes else {
            throw .fileTooLarge(size: newBytes + 44, limit: Self.maximumDataBytes + 44)
        }
        var bytes = [UInt8](repeating: 0, count: samples.count * 2)
        for (index, sample) in samples.enumerated() {
            let bits = UInt16(bitPattern: sample)
            bytes[2 * index] = UInt8(truncatingIfNeeded: bits)
            bytes[2 * index + 1] = UInt8(truncatingIfNeeded: bits >> 8)
        }
        try put(bytes)
        samplesWritten += samples.count
    }

    /// Writes the final sizes into the header and closes the file. Later calls do nothing.
    /// - Throws: ``MediaError/io(path:reason:)`` if the header cannot be rewritten or the file closed.
    public func close() throws(MediaError) {
        guard let file else { return }
        defer { self.file = nil }
        guard fseek(file, 0, SEEK_SET) == 0 else {
            let reason = errnoText()
            fclose(file)
            throw .io(path: path, reason: reason)
        }
        do {
            try put(WAVFile.header(dataBytes: UInt32(samplesWritten * 2), sampleRate: sampleRate))
        } catch {
            fclose(file)
            throw error
        }
        guard fclose(file) == 0 else { throw .io(path: path, reason: errnoText()) }
    }

    private func put(_ bytes: [UInt8]) throws(MediaError) {
        guard let file else { throw .io(path: path, reason: "writer is closed") }
        guard !bytes.isEmpty else { return }
        let written = bytes.withUnsafeBytes { buffer in
            buffer.baseAddress.map { fwrite($0, 1, buffer.count, file) } ?? 0
        }
        guard written == bytes.count else { throw .io(path: path, reason: errnoText()) }
    }
}
