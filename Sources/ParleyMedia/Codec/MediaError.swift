import COpus

/// Errors of the media layer: the Opus codec, WAV files and the resampler.
///
/// Each case carries what was wrong, so ``description`` reads as a complete sentence in logs.
public enum MediaError: Error, Equatable, Sendable, CustomStringConvertible {
    /// libopus returned an error code from `operation` (for example `opus_encode`).
    case opus(operation: String, code: Int32)
    /// A PCM frame did not hold the number of samples the codec needs.
    case wrongFrameSize(expected: Int, actual: Int)
    /// A packet given to the decoder was unusable before libopus was even called (for example empty).
    case malformedPacket(reason: String)
    /// A setting was outside the range the codec or resampler accepts.
    case invalidArgument(reason: String)
    /// The bytes are not a WAV file Parley can read: bad or truncated header, absurd parameters.
    case invalidWAV(reason: String)
    /// The WAV file is well formed but uses an encoding Parley does not read (for example A-law).
    case unsupportedWAV(reason: String)
    /// A file is larger than the reader accepts.
    case fileTooLarge(size: Int, limit: Int)
    /// A file could not be opened, read or written.
    case io(path: String, reason: String)
    /// libsoxr reported an error.
    case resampler(reason: String)

    /// A readable explanation, with libopus error codes turned into `opus_strerror` text.
    public var description: String {
        switch self {
        case .opus(let operation, let code):
            let text = opus_strerror(code).map { String(cString: $0) } ?? "unknown error"
            return "\(operation) failed: \(text) (opus error \(code))"
        case .wrongFrameSize(let expected, let actual):
            return "PCM frame has \(actual) samples, expected \(expected)"
        case .malformedPacket(let reason):
            return "malformed Opus packet: \(reason)"
        case .invalidArgument(let reason):
            return "invalid argument: \(reason)"
        case .invalidWAV(let reason):
            return "invalid WAV file: \(reason)"
        case .unsupportedWAV(let reason):
            return "unsupported WAV file: \(reason)"
        case .fileTooLarge(let size, let limit):
            return "file is \(size) bytes, larger than the limit of \(limit) bytes"
        case .io(let path, let reason):
            return "\(path): \(reason)"
        case .resampler(let reason):
            return "resampler error: \(reason)"
        }
    }
}
