import CSoxr

/// A streaming sample-rate converter wrapping libsoxr (the SoX resampler) at `SOXR_HQ` quality.
///
/// Feed input in chunks of any size with ``process(_:)``, then call ``finish()`` once to
/// drain the filter's tail. Over the whole stream the output holds about
/// `inputCount × outputRate / inputRate` frames. Samples are interleaved when ``channels`` > 1.
/// Float samples are full scale at ±1.0; Int16 samples are converted to and from that scale,
/// rounding and clipping on the way out. The instance owns the soxr state; it is not `Sendable`.
public final class Resampler {
    /// Accepted sample rates, in Hz.
    public static let rateRange = 1.0...1_536_000.0

    /// Input sample rate in Hz.
    public let inputRate: Double
    /// Output sample rate in Hz.
    public let outputRate: Double
    /// Number of interleaved channels.
    public let channels: Int

    private let state: soxr_t
    private var finished = false

    /// Creates a resampler.
    ///
    /// - Throws: ``MediaError/invalidArgument(reason:)`` for a rate outside ``rateRange`` or a channel
    ///   count outside 1...64, ``MediaError/resampler(reason:)`` if libsoxr refuses the settings.
    public init(inputRate: Double, outputRate: Double, channels: Int = 1) throws(MediaError) {
        guard Self.rateRange.contains(inputRate), Self.rateRange.contains(outputRate) else {
            throw .invalidArgument(reason: "sample rates \(inputRate) → \(outputRate) Hz are outside \(Self.rateRange)")
        }
        guard (1...64).contains(channels) else {
            throw .invalidArgument(reason: "channel count \(channels) is outside 1...64")
        }
        var error: soxr_error_t? = nil
        var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        var quality = soxr_quality_spec(UInt(SOXR_HQ), 0)
        guard let state = soxr_create(inputRate, outputRate, UInt32(channels), &error, &io, &quality, nil),
            error == nil
        else {
            throw .resampler(reason: error.map { String(cString: $0) } ?? "soxr_create failed")
        }
        self.inputRate = inputRate
        self.outputRate = outputRate
        self.channels = channels
        self.state = state
    }

    deinit {
        soxr_delete(state)
    }

    /// Resamples one chunk of interleaved float samples (full scale ±1.0).
    ///
    /// The output lags the input by the filter's delay; ``finish()`` returns the rest.
    /// - Throws: ``MediaError/invalidArgument(reason:)`` if the count is not a multiple of ``channels``
    ///   or the stream was finished, ``MediaError/resampler(reason:)`` if libsoxr fails.
    public func process(_ input: [Float]) throws(MediaError) -> [Float] {
        guard !finished else { throw .invalidArgument(reason: "resampler was already finished") }
        guard input.count % channels == 0 else {
            throw .invalidArgument(reason: "\(input.count) samples is not a multiple of \(channels) channels")
        }
        // An empty chunk must not reach soxr: a nil input pointer there means end of stream.
        guard !input.isEmpty else { return [] }
        return try input.withUnsafeBufferPointer { buffer throws(MediaError) in
            try run(buffer.baseAddress.map { UnsafeRawPointer($0) }, frames: input.count / channels)
        }
    }

    /// Resamples one chunk of interleaved 16-bit samples. See ``process(_:)``.
    public func process(_ input: [Int16]) throws(MediaError) -> [Int16] {
        try Self.int16(try process(Self.float(input)))
    }

    /// Ends the stream and returns the remaining float samples held in the filter.
    /// Later calls return nothing.
    public func finish() throws(MediaError) -> [Float] {
        guard !finished else { return [] }
        finished = true
        return try run(nil, frames: 0)
    }

    /// Ends the stream and returns the remaining samples as 16-bit. See ``finish()``.
    public func finishInt16() throws(MediaError) -> [Int16] {
        try Self.int16(try finish())
    }

    /// Resamples a whole signal in one go (process and finish on a fresh resampler).
    public static func resample(
        _ input: [Float], from inputRate: Double, to outputRate: Double, channels: Int = 1
    ) throws(MediaError) -> [Float] {
        let resampler = try Resampler(inputRate: inputRate, outputRate: outputRate, channels: channels)
        var output = try resampler.process(input)
        output += try resampler.finish()
        return output
    }

    /// Converts 16-bit samples to floats at full scale ±1.0 (−32 768 → −1.0).
    public static func float(_ samples: [Int16]) -> [Float] {
        samples.map { Float($0) / 32_768 }
    }

    /// Converts full-scale ±1.0 floats to 16-bit samples, rounding and clipping; NaN becomes 0.
    public static func int16(_ samples: [Float]) -> [Int16] {
        samples.map { value in
            guard !value.isNaN else { return 0 }
            let scaled = (value * 32_768).rounded()
            return Int16(max(-32_768, min(32_767, scaled)))
        }
    }

    /// Drives soxr_process until the input is consumed (or, for `input == nil`, the tail is drained).
    private func run(_ input: UnsafeRawPointer?, frames: Int) throws(MediaError) -> [Float] {
        let ratio = outputRate / inputRate
        let chunkFrames = max(1_024, Int((Double(frames) * ratio).rounded(.up)) + 64)
        var output: [Float] = []
        output.reserveCapacity(chunkFrames * channels)
        var chunk = [Float](repeating: 0, count: chunkFrames * channels)
        var consumed = 0
        while true {
            var inDone = 0
            var outDone = 0
            let remaining = frames - consumed
            let offsetInput = input.map { $0 + consumed * channels * MemoryLayout<Float>.stride }
            let error = chunk.withUnsafeMutableBufferPointer { out in
                soxr_process(state, offsetInput, remaining, &inDone, out.baseAddress, chunkFrames, &outDone)
            }
            if let error { throw .resampler(reason: String(cString: error)) }
            consumed += inDone
            output += chunk[0..<(outDone * channels)]
            if input == nil {
                if outDone == 0 { break }
            } else if consumed >= frames && outDone < chunkFrames {
                break
            }
        }
        return output
    }
}
