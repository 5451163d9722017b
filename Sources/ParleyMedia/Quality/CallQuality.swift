/// A snapshot of one call direction's quality, for a live status line, logs and reports.
///
/// Build it with ``init(rtt:arrivals:playout:model:deviceAllowanceMilliseconds:)`` from the three
/// estimators, or field by field. The mouth-to-ear estimate is
/// `rtt/2` (one-way network) `+ playout delay` (jitter buffer) `+ 20 ms` (one frame of packetisation)
/// `+ deviceAllowance` (capture and playback buffers plus codec look-ahead; default 40 ms, an assumption
/// to be replaced by measured device latency when there is one). The MOS is ``EModel``'s for that delay,
/// the concealed percentage and the burst ratio.
public struct CallQuality: Sendable, Hashable, CustomStringConvertible {
    /// Default device and codec allowance in the mouth-to-ear estimate, milliseconds.
    public static let defaultDeviceAllowanceMilliseconds = 40.0

    /// Smoothed round-trip time, ms (0 before the first sample).
    public var rttMilliseconds: Double
    /// RFC 3550 interarrival jitter, ms.
    public var jitterMilliseconds: Double
    /// Network loss, percent of packets expected.
    public var lossPercent: Double
    /// Frames concealed by the decoder, percent of frames due (the E-model's Ppl).
    public var concealedPercent: Double
    /// Frames rebuilt from in-band FEC.
    public var fecRecovered: Int
    /// Jitter-buffer playout delay, ms.
    public var playoutDelayMilliseconds: Double
    /// Estimated one-way mouth-to-ear delay, ms.
    public var mouthToEarMilliseconds: Double
    /// Burst ratio used for the MOS (G.107 BurstR).
    public var burstRatio: Double
    /// Estimated MOS (G.107 Annex B, narrowband scale), over the frames the peer sent.
    public var meanOpinionScore: Double
    /// Whether the peer is sending audio at all: a MOS says nothing about a direction that carries only
    /// the silence its sender chose (DTX) or nothing.
    public var peerAudio = PeerAudio.sending

    /// How much the peer sends, which decides what the figures mean.
    public enum PeerAudio: String, Sendable, Hashable {
        /// Audio frames arrive (speech, music, a tone): the MOS applies.
        case sending
        /// The peer is in discontinuous transmission (no source, a muted or quiet microphone): packets
        /// arrive, audio frames almost never. Loss and RTT still apply; concealment and MOS do not.
        case silent
        /// Nothing authenticated arrived from the peer lately: it is gone or the path is down.
        case unheard
    }

    /// A snapshot from explicit values; `mouthToEarMilliseconds` and `meanOpinionScore` are derived.
    public init(
        rttMilliseconds: Double,
        jitterMilliseconds: Double,
        lossPercent: Double,
        concealedPercent: Double,
        fecRecovered: Int,
        playoutDelayMilliseconds: Double,
        burstRatio: Double = 1,
        model: EModel = EModel(),
        deviceAllowanceMilliseconds: Double = CallQuality.defaultDeviceAllowanceMilliseconds
    ) {
        self.rttMilliseconds = rttMilliseconds
        self.jitterMilliseconds = jitterMilliseconds
        self.lossPercent = lossPercent
        self.concealedPercent = concealedPercent
        self.fecRecovered = fecRecovered
        self.playoutDelayMilliseconds = playoutDelayMilliseconds
        self.burstRatio = burstRatio
        let frameMilliseconds = Double(JitterBuffer.frameDuration) / 1000
        self.mouthToEarMilliseconds = rttMilliseconds / 2 + playoutDelayMilliseconds + frameMilliseconds
            + deviceAllowanceMilliseconds
        self.meanOpinionScore = model.meanOpinionScore(
            mouthToEarMilliseconds: mouthToEarMilliseconds,
            concealedPercent: concealedPercent,
            burstRatio: burstRatio
        )
    }

    /// A snapshot from the live estimators.
    public init(
        rtt: RTTEstimator,
        arrivals: ArrivalStats,
        playout: JitterBuffer.Statistics,
        model: EModel = EModel(),
        deviceAllowanceMilliseconds: Double = CallQuality.defaultDeviceAllowanceMilliseconds
    ) {
        self.init(
            rttMilliseconds: rtt.smoothedMilliseconds ?? 0,
            jitterMilliseconds: arrivals.jitterMilliseconds,
            lossPercent: arrivals.lossFraction * 100,
            concealedPercent: playout.concealedPercent,
            fecRecovered: playout.recoveredByFEC,
            playoutDelayMilliseconds: Double(playout.currentDelay) / 1000,
            burstRatio: arrivals.burstRatio,
            model: model,
            deviceAllowanceMilliseconds: deviceAllowanceMilliseconds
        )
    }

    /// One status line, e.g. `rtt 102 ms  jitter 8.1 ms  loss 5.0%  concealed 0.4%  delay 160 ms  MOS 4.21`;
    /// "delay" is the estimated mouth-to-ear delay. While the peer sends no audio the line ends in
    /// `peer silent` (or `nothing heard from the peer`) instead of concealment, delay and MOS.
    public var description: String {
        let network = "rtt \(Self.fixed(rttMilliseconds, 0)) ms  jitter \(Self.fixed(jitterMilliseconds, 1)) ms"
            + "  loss \(Self.fixed(lossPercent, 1))%"
        switch peerAudio {
        case .sending:
            return network + "  concealed \(Self.fixed(concealedPercent, 1))%"
                + "  delay \(Self.fixed(mouthToEarMilliseconds, 0)) ms  MOS \(Self.fixed(meanOpinionScore, 2))"
        case .silent: return network + "  peer silent"
        case .unheard: return network + "  nothing heard from the peer"
        }
    }

    /// `value` rounded to `decimals` places, without Foundation.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let sign = value < 0 && scaled != 0 ? "-" : ""
        let whole = scaled / Int64(scale)
        guard decimals > 0 else { return "\(sign)\(whole)" }
        var fraction = String(scaled % Int64(scale))
        while fraction.count < decimals { fraction = "0" + fraction }
        return "\(sign)\(whole).\(fraction)"
    }
}
