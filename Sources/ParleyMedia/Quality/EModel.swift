#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A reduced ITU-T G.107 E-model: transmission rating R and the MOS it predicts for one direction of a call.
///
/// `R = (Ro − Is) − Id − Ie,eff + A`, where:
///
/// - `Ro − Is` = **93.2**: G.107's R with every parameter at its default value (narrowband scale:
///   SLR 8, RLR 2, Ds 3, Nc −70 dBm0p, Ps = Pr = 35 dB(A), TELR 65 dB, …). The small talker-echo and
///   listener-echo terms those defaults give at zero delay are inside this figure, and we do not grow
///   Idte or Idle with delay: with echo cancellation meeting the default TELR (65 dB) they stay under
///   about half a point, so the model keeps `Id = Idd` only. This is a simplification; say so when quoting.
/// - `Id = Idd(Ta)`, the G.107 (06/2015) §7.3.4 pure-delay impairment with its default mT = 100 ms,
///   sT = 1: `Idd = 0` for `Ta ≤ 100 ms`, otherwise
///   `Idd = 25 · {(1 + X⁶)^(1/6) − 3·(1 + (X/3)⁶)^(1/6) + 2}` with `X = log2(Ta / 100 ms)`.
/// - `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)` (G.107 §7.5), with `Ppl` the percentage of
///   frames the decoder had to conceal after FEC recovery (``JitterBuffer/Statistics/concealedPercent``),
///   not the network loss: FEC-recovered and in-time frames are not impairments.
/// - `A`, the advantage factor, 0 by default (no mobility allowance).
///
/// MOS from R is G.107 Annex B: `MOS = 1` for `R < 0`, `4.5` for `R > 100`, otherwise
/// `1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶`, then clamped to 1...4.5.
///
/// Parley sends Opus wideband, but the narrowband R scale is used (the G.107 wideband model, G.107.1,
/// has Ro = 129); the scores are comparable with other narrowband E-model figures, and a clean Opus call
/// reads 93.2 / 4.41, the ceiling of that scale.
public struct EModel: Sendable, Hashable {
    /// Codec-dependent impairment parameters (ITU-T G.113 style).
    public struct Codec: Sendable, Hashable {
        /// Equipment impairment factor at zero loss, Ie.
        public var ie: Double
        /// Packet-loss robustness factor, Bpl.
        public var bpl: Double

        /// Codec parameters.
        public init(ie: Double, bpl: Double) {
            self.ie = ie
            self.bpl = bpl
        }

        /// Opus, wideband, 24 kb/s or more, with in-band FEC and PLC: **Ie = 0, Bpl = 20**.
        ///
        /// These are assumptions, not ITU-published values (G.113 has no Opus entry in the edition we
        /// follow): Ie = 0 treats Opus wideband at ≥ 24 kb/s as transparent on the narrowband scale it is
        /// judged on here; Bpl = 20 sits between G.113 Appendix I's figures for codecs with loss
        /// concealment (G.729A + VAD: Bpl 19; G.711 with PLC: Bpl 25.1). Lower bitrates deserve a higher
        /// Ie; pass your own ``Codec`` for them.
        public static let opus = Codec(ie: 0, bpl: 20)

        /// G.711 with packet-loss concealment (G.113 Appendix I: Ie 0, Bpl 25.1), for comparison.
        public static let g711WithPLC = Codec(ie: 0, bpl: 25.1)
    }

    /// `Ro − Is` (default 93.2, G.107's default-parameter rating).
    public var baseRating: Double
    /// Advantage factor A (default 0).
    public var advantage: Double
    /// The codec's Ie and Bpl.
    public var codec: Codec

    /// A model with the documented defaults.
    public init(baseRating: Double = 93.2, advantage: Double = 0, codec: Codec = .opus) {
        self.baseRating = baseRating
        self.advantage = advantage
        self.codec = codec
    }

    /// The delay impairment Id for a one-way mouth-to-ear delay `Ta` in milliseconds (here `Id = Idd`).
    public static func delayImpairment(mouthToEarMilliseconds ta: Double) -> Double {
        guard ta > 100 else { return 0 }
        let x = log2(ta / 100)
        let first = pow(1 + pow(x, 6), 1.0 / 6)
        let second = 3 * pow(1 + pow(x / 3, 6), 1.0 / 6)
        return 25 * (first - second + 2)
    }

    /// The effective equipment impairment Ie,eff for `ppl` percent concealed frames and burst ratio `burstR`.
    public func effectiveEquipmentImpairment(concealedPercent ppl: Double, burstRatio burstR: Double = 1) -> Double {
        let loss = max(ppl, 0)
        let ratio = max(burstR, 1e-9)
        let denominator = loss / ratio + codec.bpl
        guard denominator > 0 else { return codec.ie }
        return codec.ie + (95 - codec.ie) * loss / denominator
    }

    /// The rating R for a mouth-to-ear delay (ms), a concealed-frame percentage and a burst ratio.
    public func rating(
        mouthToEarMilliseconds ta: Double,
        concealedPercent ppl: Double,
        burstRatio: Double = 1
    ) -> Double {
        baseRating - Self.delayImpairment(mouthToEarMilliseconds: ta)
            - effectiveEquipmentImpairment(concealedPercent: ppl, burstRatio: burstRatio) + advantage
    }

    /// MOS (conversational quality, estimated) from R, G.107 Annex B, clamped to 1...4.5.
    public static func meanOpinionScore(rating r: Double) -> Double {
        if r <= 0 { return 1 }
        if r >= 100 { return 4.5 }
        let mos = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
        return min(max(mos, 1), 4.5)
    }

    /// MOS for a mouth-to-ear delay (ms), a concealed-frame percentage and a burst ratio.
    public func meanOpinionScore(
        mouthToEarMilliseconds ta: Double,
        concealedPercent ppl: Double,
        burstRatio: Double = 1
    ) -> Double {
        let r = rating(mouthToEarMilliseconds: ta, concealedPercent: ppl, burstRatio: burstRatio)
        return Self.meanOpinionScore(rating: r)
    }
}
