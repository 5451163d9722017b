// Source audio for the call benchmark: a pure tone (ParleyMedia.ToneGenerator) and a deterministic
// speech-like synthetic signal. Both are generated before any timing starts (a real endpoint gets its
// frames from the microphone, so producing them is not part of a call's cost).

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
import ParleyMedia

/// Which source a call direction encodes.
enum SourceKind: String, CaseIterable {
    /// 440 Hz (A side) / 1 kHz (B side) sine at -20 dBFS (ParleyMedia.ToneGenerator).
    case tone
    /// See ``speechLikeFrames(count:seed:basePitch:)``.
    case speech
}

/// `count` 20 ms frames (48 kHz mono) of `kind` for one side of a call.
func sourceFrames(_ kind: SourceKind, count: Int, side: Int) -> [[Int16]] {
    switch kind {
    case .tone:
        var tone = ToneGenerator(frequency: side == 0 ? 440 : 1_000, levelDBFS: -20)
        return (0..<count).map { _ in tone.nextFrame() }
    case .speech:
        return speechLikeFrames(count: count, seed: side == 0 ? 0x5EED_A : 0x5EED_B, basePitch: side == 0 ? 120 : 205)
    }
}

/// A speech-like signal, deterministic for a given seed:
/// - **voiced syllables**: a harmonic series (all harmonics of f0 below 3.8 kHz, amplitude 1/h) with f0
///   gliding ±15 % around `basePitch` (slow intonation plus 5 Hz vibrato), shaped by three formant
///   resonances (F1 300–800 Hz, F2 900–2300 Hz, F3 2400–3000 Hz) drawn anew for each syllable, under a
///   raised-sine syllable envelope of 120–320 ms;
/// - **unvoiced syllables** (one in four): high-passed white noise bursts of 60–150 ms (fricatives);
/// - **pauses** between words (every 2–5 syllables) of 150–500 ms;
/// - a -62 dBFS noise floor throughout, so pauses are not digital silence.
/// Syllable peaks are drawn between -16 and -8 dBFS; the active speech level is about -22 dBFS.
func speechLikeFrames(count: Int, seed: UInt64, basePitch: Double) -> [[Int16]] {
    let rate = Double(AudioFormat.sampleRate)
    let total = count * AudioFormat.frameSamples
    var out = [Double](repeating: 0, count: total)
    var rng = SplitMix64(seed: seed)

    var position = 0
    var syllablesLeftInWord = 2 + Int(rng.next() % 4)
    var pitchPhase = 0.0
    while position < total {
        if syllablesLeftInWord == 0 {
            position += Int(rng.uniform(0.15, 0.5) * rate)  // pause
            syllablesLeftInWord = 2 + Int(rng.next() % 4)
            continue
        }
        syllablesLeftInWord -= 1
        let peak = 32_767 * pow(10, rng.uniform(-16, -8) / 20)
        if rng.next() % 4 == 0 {
            // Fricative: first difference of white noise (a high-pass), raised-sine envelope.
            let length = Int(rng.uniform(0.06, 0.15) * rate)
            var previous = 0.0
            for i in 0..<length where position + i < total {
                let white = rng.uniform(-1, 1)
                let env = sin(Double.pi * Double(i) / Double(length))
                out[position + i] += 0.5 * peak * env * (white - previous)
                previous = white
            }
            position += length
        } else {
            let length = Int(rng.uniform(0.12, 0.32) * rate)
            let f1 = rng.uniform(300, 800), f2 = rng.uniform(900, 2_300), f3 = rng.uniform(2_400, 3_000)
            let glide = rng.uniform(-0.15, 0.15)
            for i in 0..<length where position + i < total {
                let t = Double(position + i) / rate
                let progress = Double(i) / Double(length)
                let f0 = basePitch * (1 + glide * (progress - 0.5) * 2 + 0.02 * sin(2 * Double.pi * 5 * t))
                pitchPhase += 2 * Double.pi * f0 / rate
                if pitchPhase > 2 * Double.pi { pitchPhase -= 2 * Double.pi }
                var sample = 0.0
                var h = 1.0
                while h * f0 < 3_800 {
                    let f = h * f0
                    // Formant gain: three resonance bumps (bandwidths ~80, 120, 200 Hz) over a floor.
                    let g =
                        0.15 + 1.0 / (1 + pow((f - f1) / 80, 2)) + 0.7 / (1 + pow((f - f2) / 120, 2))
                        + 0.35 / (1 + pow((f - f3) / 200, 2))
                    sample += g / h * sin(h * pitchPhase)
                    h += 1
                }
                let env = pow(sin(Double.pi * progress), 0.7)
                out[position + i] += 0.45 * peak * env * sample
            }
            position += length
        }
    }
    // Noise floor, conversion with clipping, split into frames.
    let floor = 32_767 * pow(10, -62.0 / 20)
    var frames: [[Int16]] = []
    frames.reserveCapacity(count)
    for f in 0..<count {
        var frame = [Int16](repeating: 0, count: AudioFormat.frameSamples)
        for i in 0..<AudioFormat.frameSamples {
            let v = (out[f * AudioFormat.frameSamples + i] + floor * rng.uniform(-1, 1)).rounded()
            frame[i] = Int16(max(-32_768, min(32_767, v)))
        }
        frames.append(frame)
    }
    return frames
}

/// RMS level of a set of frames in dBFS (full-scale sine = 0 dB, as ToneGenerator) and the share of
/// frames louder than -45 dBFS (the "active" share), for the report.
func sourceLevel(_ frames: [[Int16]]) -> (rmsDBFS: Double, activeShare: Double) {
    var sum = 0.0
    var n = 0
    var active = 0
    for frame in frames {
        var frameSum = 0.0
        for s in frame { frameSum += Double(s) * Double(s) }
        sum += frameSum
        n += frame.count
        let frameRMS = (frameSum / Double(frame.count)).squareRoot()
        if 20 * log10(max(frameRMS, 1e-9) * 2.0.squareRoot() / 32_767) > -45 { active += 1 }
    }
    let rms = (sum / Double(max(n, 1))).squareRoot()
    return (20 * log10(max(rms, 1e-9) * 2.0.squareRoot() / 32_767), Double(active) / Double(max(frames.count, 1)))
}
