#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a 16-bit mono PCM WAV file incrementally, for recording a call frame by frame.
///
/// The file is valid while it is written: at least once per ``refreshSamples`` of audio (one second by
/// default) the buffered samples are flushed to the kernel and the RIFF and data sizes in the header are
/// rewritten to cover them, so a process killed at any moment (`kill -9`, a crash, power kept) leaves a
/// file that sox and Python's `wave` read, short of at most the last second. ``close()`` writes the exact
/// final sizes. If the writer is dropped without ``close()``, `deinit` finalizes the file on a best-effort basis.
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

    /// Samples between two header refreshes (default: one second at ``sampleRate``).
    public let refreshSamples: Int
    /// Samples the header describes now (flushed to the kernel when it was written).
    public private(set) var samplesInHeader = 0

    private var file: UnsafeMutablePointer<FILE>?

    /// Creates (or truncates) the file at `path` and writes a provisional header.
    ///
    /// - Parameter sampleRate: the rate to record in the header; Parley audio is 48 kHz.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` for a rate outside ``WAVFile/sampleRateRange``,
    ///   ``MediaError/io(path:reason:)`` if the file cannot be created.
    /// - Parameter refreshSamples: how often the header's sizes are brought up to date (nil: every second).
    public init(path: String, sampleRate: Int = AudioFormat.sampleRate, refreshSamples: Int? = nil) throws(MediaError) {
        guard WAVFile.sampleRateRange.contains(sampleRate) else {
            throw .invalidArgument(reason: "sample rate \(sampleRate) Hz is outside \(WAVFile.sampleRateRange)")
        }
        if let refreshSamples, refreshSamples < 1 {
            throw .invalidArgument(reason: "refreshSamples must be at least 1, got \(refreshSamples)")
        }
        guard let file = fopen(path, "wb") else { throw .io(path: path, reason: errnoText()) }
        self.path = path
        self.sampleRate = sampleRate
        self.refreshSamples = refreshSamples ?? sampleRate
        self.file = file
        try put(WAVFile.header(dataBytes: 0, sampleRate: sampleRate))
        try refreshHeader()
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
        if samplesWritten - samplesInHeader >= refreshSamples { try refreshHeader() }
    }

    /// Flushes the samples written so far to the kernel and rewrites the header's sizes to cover them (in
    /// place, with `pwrite`, so the stream's position is untouched). ``append(_:)`` calls it every
    /// ``refreshSamples``; call it yourself to make the file complete up to now.
    /// - Throws: ``MediaError/io(path:reason:)`` on a write error or after ``close()``.
    public func refreshHeader() throws(MediaError) {
        guard let file else { throw .io(path: path, reason: "writer is closed") }
        // Data first, then the sizes: a kill between the two leaves a header describing less than the
        // file holds (readers take the header's word), never more.
        guard fflush(file) == 0 else { throw .io(path: path, reason: errnoText()) }
        let header = WAVFile.header(dataBytes: UInt32(samplesWritten * 2), sampleRate: sampleRate)
        let descriptor = fileno(file)
        let written = header.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard written == header.count else { throw .io(path: path, reason: written < 0 ? errnoText() : "short header write") }
        samplesInHeader = samplesWritten
    }

    /// Writes the final sizes into the header and closes the file. Later calls do nothing.
    /// - Throws: ``MediaError/io(path:reason:)`` if the header cannot be rewritten or the file closed.
    public func close() throws(MediaError) {
        guard let file else { return }
        defer { self.file = nil }
        do {
            try refreshHeader()
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
