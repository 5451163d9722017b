/// Parley's media format: 48 kHz, mono, signed 16-bit samples, 20 ms frames.
///
/// Every component of the media path (Opus encoder and decoder, jitter buffer, WAV input after
/// resampling, test tones) works in this format, so frames can be passed between them unchanged.
public enum AudioFormat {
    /// Samples per second: 48 kHz, Opus's native rate.
    public static let sampleRate = 48_000

    /// Channels per frame: Parley sends mono audio.
    public static let channels = 1

    /// Samples in one frame: 20 ms at 48 kHz.
    public static let frameSamples = 960

    /// Duration of one frame.
    public static let frameDuration: Duration = .milliseconds(20)
}
