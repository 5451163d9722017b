#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A sine-wave test tone in Parley's media format, produced frame by frame with continuous phase.
///
/// Levels are in dBFS relative to a full-scale sine (AES17): a tone at 0 dBFS has a peak of 32 767
/// and ``ToneAnalysis/levelDBFS(_:)`` reads it back as 0 dB.
public struct ToneGenerator: Sendable {
    /// Tone frequency in Hz.
    public let frequency: Double
    /// Tone level in dBFS (0 = full-scale sine).
    public let levelDBFS: Double
    /// Sample rate in Hz.
    public let sampleRate: Int

    /// Peak amplitude in sample units.
    public var amplitude: Double { 32_767 * pow10(levelDBFS / 20) }

    private var phase: Double = 0
    private let phaseStep: Double

    /// Creates a tone generator.
    ///
    /// - Parameters:
    ///   - frequency: in Hz; values outside 0...sampleRate/2 alias as a sampled sine would.
    ///   - levelDBFS: level relative to a full-scale sine; above 0 dBFS the samples clip.
    ///   - sampleRate: defaults to Parley's 48 kHz.
    ///   - phase: starting phase in radians.
    public init(frequency: Double, levelDBFS: Double = -20, sampleRate: Int = AudioFormat.sampleRate, phase: Double = 0)
    {
        self.frequency = frequency
        self.levelDBFS = levelDBFS
        self.sampleRate = max(1, sampleRate)
        self.phaseStep = 2 * Double.pi * frequency / Double(max(1, sampleRate))
        self.phase = phase.remainder(dividingBy: 2 * Double.pi)
    }

    /// The next ``AudioFormat/frameSamples`` (960) samples; the phase continues across calls.
    public mutating func nextFrame() -> [Int16] {
        samples(count: AudioFormat.frameSamples)
    }

    /// The next `count` samples; the phase continues across calls.
    public mutating func samples(count: Int) -> [Int16] {
        let amplitude = self.amplitude
        var output = [Int16](repeating: 0, count: max(0, count))
        for index in output.indices {
            let value = (amplitude * sin(phase)).rounded()
            output[index] = Int16(max(-32_768, min(32_767, value)))
            phase = (phase + phaseStep).remainder(dividingBy: 2 * Double.pi)
        }
        return output
    }
}

/// 10^x.
private func pow10(_ x: Double) -> Double { exp(x * M_LN10) }
