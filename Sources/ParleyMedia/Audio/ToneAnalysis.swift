#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Measurements of test tones, to check that audio received in a call matches what was sent.
///
/// Levels and powers are relative to a full-scale sine (AES17), matching ``ToneGenerator``: a sine
/// with peak 32 767 reads 0 dBFS, one with peak 3 277 reads −20 dBFS.
public enum ToneAnalysis {
    /// At most this many samples are used by ``dominantFrequency(of:sampleRate:)`` (2.7 s at 48 kHz).
    public static let maximumAnalysisSamples = 1 << 17

    /// RMS level in dBFS relative to a full-scale sine: `20·log10(rms·√2 / 32767)`.
    /// Returns `-infinity` for silence or no samples.
    public static func levelDBFS(of samples: some Collection<Int16>) -> Double {
        guard !samples.isEmpty else { return -.infinity }
        var sum = 0.0
        for sample in samples { sum += Double(sample) * Double(sample) }
        let rms = (sum / Double(samples.count)).squareRoot()
        guard rms > 0 else { return -.infinity }
        return 20 * log10(rms * 2.0.squareRoot() / 32_767)
    }

    /// Power of the component at `frequency` (Goertzel algorithm, rectangular window), relative to a
    /// full-scale sine: a sine of peak 32 767 at exactly that frequency gives 1.0, one at −20 dBFS
    /// gives 0.01; take `10·log10` for dBFS. Components further than about `sampleRate / count` Hz
    /// away contribute little. Returns 0 for no samples.
    public static func power(
        at frequency: Double, in samples: some Collection<Int16>, sampleRate: Int = AudioFormat.sampleRate
    ) -> Double {
        let signal = samples.map { Double($0) }
        guard !signal.isEmpty, sampleRate > 0 else { return 0 }
        let magnitude = signal.withUnsafeBufferPointer {
            goertzel($0, frequency: frequency, sampleRate: Double(sampleRate), hann: false)
        }
        let amplitude = 2 * magnitude.squareRoot() / Double(signal.count)
        return (amplitude / 32_767) * (amplitude / 32_767)
    }

    /// The frequency in Hz of the strongest sinusoid in `samples`, or 0 if there is none
    /// (fewer than 64 samples, or silence).
    ///
    /// A Welch spectrum (Hann-windowed FFTs of up to 8 192 samples) finds the peak, then a Hann-windowed
    /// Goertzel scan over the whole signal (at most ``maximumAnalysisSamples``) refines it, with
    /// parabolic interpolation between scan points. For one second of a tone the error is well under
    /// 1 Hz, even through a speech codec. The mean (DC) is removed first.
    public static func dominantFrequency(of samples: some Collection<Int16>, sampleRate: Int = AudioFormat.sampleRate)
        -> Double
    {
        guard sampleRate > 0 else { return 0 }
        var signal = samples.prefix(maximumAnalysisSamples).map { Double($0) }
        guard signal.count >= 64 else { return 0 }
        let mean = signal.reduce(0, +) / Double(signal.count)
        for index in signal.indices { signal[index] -= mean }
        guard signal.contains(where: { $0 != 0 }) else { return 0 }
        let rate = Double(sampleRate)

        // Coarse: peak of a Welch spectrum, parabolic interpolation on log power.
        var size = 1
        while size * 2 <= min(8_192, signal.count) { size *= 2 }
        let spectrum = welchSpectrum(signal, size: size)
        var peak = 1
        for bin in 1..<(size / 2) where spectrum[bin] > spectrum[peak] { peak = bin }
        var coarseBin = Double(peak)
        if peak > 1, peak < size / 2 - 1 {
            coarseBin += parabolicOffset(spectrum[peak - 1], spectrum[peak], spectrum[peak + 1])
        }
        let coarse = coarseBin * rate / Double(size)

        // Fine: Hann-windowed Goertzel over the whole signal on a grid of half its resolution.
        let coarseBinWidth = rate / Double(size)
        let step = 0.5 * rate / Double(signal.count)
        let span = max(1, Int((0.75 * coarseBinWidth / step).rounded(.up)))
        let fine: Double = signal.withUnsafeBufferPointer { buffer in
            let frequencies = (-span...span).map { coarse + Double($0) * step }
            let powers = frequencies.map { goertzel(buffer, frequency: $0, sampleRate: rate, hann: true) }
            var best = 0
            for index in powers.indices where powers[index] > powers[best] { best = index }
            guard best > 0, best < powers.count - 1 else { return frequencies[best] }
            return frequencies[best] + step * parabolicOffset(powers[best - 1], powers[best], powers[best + 1])
        }
        return max(0, fine)
    }

    // MARK: Helpers

    /// Offset (−0.5…0.5) of a peak from the middle of three points, by a parabola through their logs.
    private static func parabolicOffset(_ left: Double, _ middle: Double, _ right: Double) -> Double {
        guard left > 0, middle > 0, right > 0 else { return 0 }
        let a = log(left)
        let b = log(middle)
        let c = log(right)
        let denominator = a - 2 * b + c
        guard denominator < 0 else { return 0 }
        return max(-0.5, min(0.5, 0.5 * (a - c) / denominator))
    }

    /// |X(ω)|² of the (optionally Hann-windowed) signal at one frequency.
    private static func goertzel(_ x: UnsafeBufferPointer<Double>, frequency: Double, sampleRate: Double, hann: Bool)
        -> Double
    {
        let omega = 2 * Double.pi * frequency / sampleRate
        let coefficient = 2 * cos(omega)
        var s1 = 0.0
        var s2 = 0.0
        let n = x.count
        if hann {
            // Window by recurrence: w[i] = 0.5 − 0.5·cos(2πi/(n−1)), cos advanced by rotation.
            let theta = 2 * Double.pi / Double(max(1, n - 1))
            let cosTheta = cos(theta)
            let sinTheta = sin(theta)
            var c = 1.0
            var s = 0.0
            for i in 0..<n {
                let s0 = x[i] * (0.5 - 0.5 * c) + coefficient * s1 - s2
                s2 = s1
                s1 = s0
                let nextC = c * cosTheta - s * sinTheta
                s = s * cosTheta + c * sinTheta
                c = nextC
            }
        } else {
            for i in 0..<n {
                let s0 = x[i] + coefficient * s1 - s2
                s2 = s1
                s1 = s0
            }
        }
        return max(0, s1 * s1 + s2 * s2 - coefficient * s1 * s2)
    }

    /// Average power spectrum of Hann-windowed, half-overlapping segments of `size` (a power of two).
    private static func welchSpectrum(_ signal: [Double], size: Int) -> [Double] {
        let window = (0..<size).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(size - 1)) }
        var spectrum = [Double](repeating: 0, count: size / 2)
        var re = [Double](repeating: 0, count: size)
        var im = [Double](repeating: 0, count: size)
        let hop = size / 2
        let segmentCount = (signal.count - size) / hop + 1
        let stride = max(1, segmentCount / 16)  // at most 16 segments, spread over the signal
        for segment in Swift.stride(from: 0, to: segmentCount, by: stride) {
            let start = segment * hop
            for i in 0..<size {
                re[i] = signal[start + i] * window[i]
                im[i] = 0
            }
            fft(&re, &im)
            for bin in 0..<(size / 2) { spectrum[bin] += re[bin] * re[bin] + im[bin] * im[bin] }
        }
        return spectrum
    }

    /// In-place iterative radix-2 FFT; the count must be a power of two.
    private static func fft(_ real: inout [Double], _ imaginary: inout [Double]) {
        let n = real.count
        guard n > 1 else { return }
        real.withUnsafeMutableBufferPointer { re in
            imaginary.withUnsafeMutableBufferPointer { im in
                var j = 0
                for i in 1..<n {
                    var bit = n >> 1
                    while j & bit != 0 {
                        j ^= bit
                        bit >>= 1
                    }
                    j |= bit
                    if i < j {
                        re.swapAt(i, j)
                        im.swapAt(i, j)
                    }
                }
                var length = 2
                while length <= n {
                    let angle = -2 * Double.pi / Double(length)
                    let stepRe = cos(angle)
                    let stepIm = sin(angle)
                    for start in Swift.stride(from: 0, to: n, by: length) {
                        var wRe = 1.0
                        var wIm = 0.0
                        for k in 0..<(length / 2) {
                            let a = start + k
                            let b = a + length / 2
                            let tRe = re[b] * wRe - im[b] * wIm
                            let tIm = re[b] * wIm + im[b] * wRe
                            re[b] = re[a] - tRe
                            im[b] = im[a] - tIm
                            re[a] += tRe
                            im[a] += tIm
                            let nextRe = wRe * stepRe - wIm * stepIm
                            wIm = wRe * stepIm + wIm * stepRe
                            wRe = nextRe
                        }
                    }
                    length <<= 1
                }
            }
        }
    }
}
