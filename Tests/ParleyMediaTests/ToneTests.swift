import Foundation
import ParleyMedia
import XCTest

/// ToneGenerator and ToneAnalysis: the yardsticks the codec and end-to-end call tests rely on.
final class ToneTests: XCTestCase {
    func testFramesAreContinuous() {
        var framed = ToneGenerator(frequency: 440, levelDBFS: -6)
        var whole = ToneGenerator(frequency: 440, levelDBFS: -6)
        var joined: [Int16] = []
        for _ in 0..<10 {
            let frame = framed.nextFrame()
            XCTAssertEqual(frame.count, AudioFormat.frameSamples)
            joined += frame
        }
        let reference = whole.samples(count: 9_600)
        XCTAssertEqual(joined.count, reference.count)
        // Same samples whether produced frame by frame or in one go (allow rounding of the phase wrap).
        for (a, b) in zip(joined, reference) { XCTAssertLessThanOrEqual(abs(Int(a) - Int(b)), 1) }
        // No jump at frame boundaries larger than the sine's largest step.
        let amplitude = 32_767 * pow(10, -6.0 / 20)
        let maxStep = amplitude * 2 * Double.pi * 440 / 48_000 + 2
        for index in 1..<joined.count {
            XCTAssertLessThanOrEqual(Double(abs(Int(joined[index]) - Int(joined[index - 1]))), maxStep)
        }
    }

    func testFormatConstants() {
        XCTAssertEqual(AudioFormat.sampleRate, 48_000)
        XCTAssertEqual(AudioFormat.frameSamples, 960)
        XCTAssertEqual(AudioFormat.frameDuration, .milliseconds(20))
        XCTAssertEqual(AudioFormat.frameSamples * 1_000 / AudioFormat.sampleRate, 20)
    }

    func testGeneratorLevelAndPeak() {
        for level in [0.0, -6, -20, -40] {
            var generator = ToneGenerator(frequency: 1_000, levelDBFS: level)
            let samples = generator.samples(count: 48_000)
            XCTAssertEqual(ToneAnalysis.levelDBFS(of: samples), level, accuracy: 0.05, "level \(level)")
            let peak = samples.map { abs(Int($0)) }.max() ?? 0
            XCTAssertEqual(Double(peak), 32_767 * pow(10, level / 20), accuracy: 2)
        }
    }

    func testSilence() {
        let silence = [Int16](repeating: 0, count: 4_800)
        XCTAssertEqual(ToneAnalysis.levelDBFS(of: silence), -.infinity)
        XCTAssertEqual(ToneAnalysis.levelDBFS(of: [Int16]()), -.infinity)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: silence), 0)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: [Int16](repeating: 0, count: 10)), 0)
        XCTAssertEqual(ToneAnalysis.power(at: 1_000, in: silence), 0)
    }

    func testDominantFrequencyAccuracy() {
        for frequency in [60.0, 440, 997.3, 1_000, 3_150.7, 7_999.9, 15_000] {
            var generator = ToneGenerator(frequency: frequency, levelDBFS: -20)
            let samples = generator.samples(count: 48_000)
            XCTAssertEqual(ToneAnalysis.dominantFrequency(of: samples), frequency, accuracy: 0.5, "\(frequency) Hz")
        }
    }

    func testDominantFrequencyOfShortAndNoisyTone() {
        // 100 ms is enough for a few Hz.
        var short = ToneGenerator(frequency: 1_234, levelDBFS: -10)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: short.samples(count: 4_800)), 1_234, accuracy: 2)

        // A tone 10 dB above white noise, with a DC offset, over 1 s.
        var random = SplitMix64(seed: 7)
        var tone = ToneGenerator(frequency: 440, levelDBFS: -20)
        let noisy = tone.samples(count: 48_000).map { sample -> Int16 in
            let noise = Double(random.next() % 2_001) - 1_000  // uniform ±1000: about −33 dBFS
            return Int16(clamping: Int(Double(sample) + noise * 1.5 + 500))
        }
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: noisy), 440, accuracy: 2)

        // The stronger of two tones wins.
        var strong = ToneGenerator(frequency: 700, levelDBFS: -10)
        var weak = ToneGenerator(frequency: 1_900, levelDBFS: -20)
        let mixed = zip(strong.samples(count: 48_000), weak.samples(count: 48_000)).map { $0 &+ $1 }
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: mixed), 700, accuracy: 1)
    }

    func testDominantFrequencyAtOtherRates() {
        var generator = ToneGenerator(frequency: 1_000, levelDBFS: -20, sampleRate: 8_000)
        XCTAssertEqual(generator.sampleRate, 8_000)
        let samples = generator.samples(count: 8_000)
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: samples, sampleRate: 8_000), 1_000, accuracy: 0.5)
        // Works on slices too.
        XCTAssertEqual(ToneAnalysis.dominantFrequency(of: samples[1_000...], sampleRate: 8_000), 1_000, accuracy: 0.5)
    }

    func testPowerAtFrequency() {
        var generator = ToneGenerator(frequency: 1_000, levelDBFS: -20)
        let samples = generator.samples(count: 48_000)
        let onTone = ToneAnalysis.power(at: 1_000, in: samples)
        XCTAssertEqual(10 * log10(onTone), -20, accuracy: 0.1)
        let offTone = ToneAnalysis.power(at: 2_000, in: samples)
        XCTAssertLessThan(10 * log10(max(offTone, 1e-30)), -80)
        var fullScale = ToneGenerator(frequency: 440, levelDBFS: 0)
        XCTAssertEqual(ToneAnalysis.power(at: 440, in: fullScale.samples(count: 48_000)), 1, accuracy: 0.01)
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
