/// Chooses the sender's Opus bitrate and in-band FEC setting from the receiver's reports. Sans-I/O: feed
/// it each report with ``update(lossFraction:bandwidthEstimate:now:)``; apply the returned ``Decision``
/// to the encoder when ``Decision/changed`` is true. Times are microseconds on the local monotonic clock.
///
/// Rules, in order of precedence for the bitrate:
/// 1. **Bandwidth**: a bandwidth estimate below the current bitrate cuts it to
///    ``Configuration/bandwidthHeadroom`` (85 %) of the estimate.
/// 2. **Heavy loss** (above ``Configuration/highLossThreshold``, 10 %): step down by
///    ``Configuration/lossStepDown`` toward ``Configuration/highLossBitrate`` (16 kb/s) — FEC copies cost
///    bits, and a lower rate leaves room for them.
/// 3. **Recovery** (loss below ``Configuration/recoveryLossThreshold``): climb by
///    ``Configuration/recoveryStepUp`` toward ``Configuration/preferredBitrate``, never above 85 % of the
///    latest bandwidth estimate.
///
/// The result is clamped to ``Configuration/minBitrate``…``Configuration/maxBitrate`` (8–64 kb/s).
/// The FEC expected-loss percentage (Opus `OPUS_SET_PACKET_LOSS_PERC`) follows the measured loss rounded
/// up, capped at ``Configuration/maxExpectedLossPercent`` (40); it rises at once but falls only when the
/// measurement is ``Configuration/expectedLossHysteresis`` points lower.
///
/// Hysteresis: bitrate moves under ``Configuration/minimumBitrateStep`` are ignored (except landing exactly
/// on the preferred bitrate, the floor or the ceiling), the gap between the
/// loss thresholds keeps the rate from flapping, and at most one change is made per
/// ``Configuration/minimumInterval`` (one second).
public struct RateController: Sendable {
    /// Tunables; bitrates in bits per second, loss as fractions 0...1, times in microseconds.
    public struct Configuration: Sendable, Hashable {
        /// Bitrate at the start and the one recovery climbs back to (default 32 kb/s).
        public var preferredBitrate: Int
        /// Floor (default 8 kb/s).
        public var minBitrate: Int
        /// Ceiling (default 64 kb/s).
        public var maxBitrate: Int
        /// Where heavy loss pushes the bitrate (default 16 kb/s).
        public var highLossBitrate: Int
        /// Loss above which the bitrate steps down (default 0.10).
        public var highLossThreshold: Double
        /// Loss below which the bitrate may climb back (default 0.05).
        public var recoveryLossThreshold: Double
        /// Multiplier per heavy-loss step (default 0.75).
        public var lossStepDown: Double
        /// Multiplier per recovery step (default 1.15).
        public var recoveryStepUp: Double
        /// Share of a bandwidth estimate the bitrate may use (default 0.85).
        public var bandwidthHeadroom: Double
        /// Cap on the FEC expected-loss percentage (default 40).
        public var maxExpectedLossPercent: Int
        /// Points the measured loss must fall below the current setting before it is lowered (default 2).
        public var expectedLossHysteresis: Int
        /// Smallest bitrate change worth making (default 1 kb/s).
        public var minimumBitrateStep: Int
        /// Fewest microseconds between two changes (default one second).
        public var minimumInterval: UInt64

        /// Defaults as documented on each property.
        public init(
            preferredBitrate: Int = 32_000,
            minBitrate: Int = 8_000,
            maxBitrate: Int = 64_000,
            highLossBitrate: Int = 16_000,
            highLossThreshold: Double = 0.10,
            recoveryLossThreshold: Double = 0.05,
            lossStepDown: Double = 0.75,
            recoveryStepUp: Double = 1.15,
            bandwidthHeadroom: Double = 0.85,
            maxExpectedLossPercent: Int = 40,
            expectedLossHysteresis: Int = 2,
            minimumBitrateStep: Int = 1_000,
            minimumInterval: UInt64 = 1_000_000
        ) {
            precondition(minBitrate <= maxBitrate, "minBitrate above maxBitrate")
            self.preferredBitrate = min(max(preferredBitrate, minBitrate), maxBitrate)
            self.minBitrate = minBitrate
            self.maxBitrate = maxBitrate
            self.highLossBitrate = min(max(highLossBitrate, minBitrate), maxBitrate)
            self.highLossThreshold = highLossThreshold
            self.recoveryLossThreshold = min(recoveryLossThreshold, highLossThreshold)
            self.lossStepDown = lossStepDown
            self.recoveryStepUp = recoveryStepUp
            self.bandwidthHeadroom = bandwidthHeadroom
            self.maxExpectedLossPercent = maxExpectedLossPercent
            self.expectedLossHysteresis = max(expectedLossHysteresis, 0)
            self.minimumBitrateStep = max(minimumBitrateStep, 1)
            self.minimumInterval = minimumInterval
        }
    }

    /// Why the bitrate is what it is after an update.
    public enum Reason: Sendable, Hashable {
        /// Nothing to change (or a change was held back by the one-per-interval rule).
        case steady
        /// Cut to fit the bandwidth estimate.
        case bandwidth
        /// Stepped down for heavy loss.
        case loss
        /// Climbed back toward the preferred bitrate.
        case recovery
        /// Only the FEC expected-loss setting moved.
        case fec
    }

    /// The encoder settings to use.
    public struct Decision: Sendable, Hashable {
        /// Opus target bitrate, bits per second.
        public var bitrate: Int
        /// Opus expected packet loss, percent (0 disables FEC's benefit; Opus codes LBRR when > 0).
        public var expectedLossPercent: Int
        /// True when these settings differ from the previous decision.
        public var changed: Bool
        /// What drove the decision.
        public var reason: Reason

        /// A decision with the given settings.
        public init(bitrate: Int, expectedLossPercent: Int, changed: Bool, reason: Reason) {
            self.bitrate = bitrate
            self.expectedLossPercent = expectedLossPercent
            self.changed = changed
            self.reason = reason
        }

        /// True when in-band FEC should be enabled.
        public var fecEnabled: Bool { expectedLossPercent > 0 }
    }

    /// The tunables in force.
    public let configuration: Configuration
    /// Current bitrate, bits per second.
    public private(set) var bitrate: Int
    /// Current FEC expected-loss percentage.
    public private(set) var expectedLossPercent = 0
    private var lastChange: UInt64?

    /// A controller starting at the preferred bitrate with FEC off.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.bitrate = configuration.preferredBitrate
    }

    /// The settings in force, unchanged.
    public var current: Decision {
        Decision(bitrate: bitrate, expectedLossPercent: expectedLossPercent, changed: false, reason: .steady)
    }

    /// Takes one receiver report and decides.
    ///
    /// - Parameters:
    ///   - lossFraction: measured packet loss over the report interval, 0...1.
    ///   - bandwidthEstimate: the path's available bitrate in bits per second, if known.
    ///   - now: local time, microseconds.
    public mutating func update(lossFraction: Double, bandwidthEstimate: Int?, now: UInt64) -> Decision {
        let loss = lossFraction.isFinite ? min(max(lossFraction, 0), 1) : 0
        let config = configuration
        var wanted = bitrate
        var reason = Reason.steady
        if let bandwidth = bandwidthEstimate, bandwidth < bitrate {
            // The path cannot carry the current rate.
            wanted = scaled(bandwidth, by: config.bandwidthHeadroom)
            reason = .bandwidth
        } else if loss > config.highLossThreshold, bitrate > config.highLossBitrate {
            // Heavy loss: make room for FEC.
            wanted = max(config.highLossBitrate, scaled(bitrate, by: config.lossStepDown))
            reason = .loss
        } else if loss < config.recoveryLossThreshold, bitrate < config.preferredBitrate {
            // Healthy again: climb back, within the bandwidth estimate.
            wanted = min(config.preferredBitrate, scaled(bitrate, by: config.recoveryStepUp))
            if let bandwidth = bandwidthEstimate {
                wanted = min(wanted, scaled(bandwidth, by: config.bandwidthHeadroom))
            }
            reason = .recovery
        }
        wanted = min(max(wanted, config.minBitrate), config.maxBitrate)
        let landmark = wanted == config.preferredBitrate || wanted == config.minBitrate || wanted == config.maxBitrate
        if abs(wanted - bitrate) < config.minimumBitrateStep, !landmark {
            wanted = bitrate
            reason = .steady
        }

        // Rounded up, less a hair so 0.07 × 100 = 7.000000000000001 reads as 7.
        let measured = min(config.maxExpectedLossPercent, Int((loss * 100 - 1e-9).rounded(.up)))
        var expected = expectedLossPercent
        if measured > expectedLossPercent || expectedLossPercent - measured >= config.expectedLossHysteresis {
            expected = measured
        }
        if wanted == bitrate, expected != expectedLossPercent { reason = .fec }

        guard wanted != bitrate || expected != expectedLossPercent else { return current }
        if let last = lastChange, now >= last, now - last < config.minimumInterval {
            return current
        }
        bitrate = wanted
        expectedLossPercent = expected
        lastChange = now
        return Decision(bitrate: bitrate, expectedLossPercent: expectedLossPercent, changed: true, reason: reason)
    }

    private func scaled(_ value: Int, by factor: Double) -> Int {
        Int((Double(value) * factor).rounded())
    }
}
