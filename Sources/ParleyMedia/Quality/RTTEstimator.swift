/// Round-trip time from echoed timestamps, smoothed as RFC 6298 §2 smooths TCP's RTT.
///
/// The local side stamps a packet with its own time `t1`; the peer echoes `t1` together with how long it
/// held the stamp before echoing (`hold`). When the echo comes back at `now`,
/// `RTT = now − t1 − hold`. All times are microseconds on the **local** clock (the peer's clock never
/// enters: `hold` is a duration). Sans-I/O: the caller supplies `now`.
///
/// Smoothing (RFC 6298, α = 1/8, β = 1/4 by default): the first sample R sets `SRTT = R`,
/// `RTTVAR = R/2`; later samples R′ update `RTTVAR = (1 − β)·RTTVAR + β·|SRTT − R′|`, then
/// `SRTT = (1 − α)·SRTT + α·R′`.
public struct RTTEstimator: Sendable {
    /// Gain of the smoothed RTT (RFC 6298 α).
    public let alpha: Double
    /// Gain of the RTT variation (RFC 6298 β).
    public let beta: Double

    /// The most recent sample, microseconds.
    public private(set) var latest: UInt64?
    /// The smallest sample seen, microseconds.
    public private(set) var minimum: UInt64?
    /// Smoothed RTT (SRTT), microseconds.
    public private(set) var smoothed: Double?
    /// RTT variation (RTTVAR), microseconds.
    public private(set) var variation: Double?
    /// Samples accepted.
    public private(set) var samples = 0
    /// Echoes rejected because they would give a negative RTT (bad hold time or clock misuse).
    public private(set) var rejected = 0

    /// An estimator with RFC 6298's gains unless told otherwise.
    public init(alpha: Double = 1.0 / 8, beta: Double = 1.0 / 4) {
        self.alpha = alpha
        self.beta = beta
    }

    /// Feeds one echo; returns the RTT sample in microseconds, or nil if the echo was inconsistent.
    ///
    /// - Parameters:
    ///   - echoedTime: the local time `t1` the peer echoed back.
    ///   - holdTime: how long the peer held it before echoing, microseconds.
    ///   - now: when the echo arrived, local microseconds.
    @discardableResult
    public mutating func record(echoedTime: UInt64, holdTime: UInt64, now: UInt64) -> UInt64? {
        let (elapsed, underflow) = now.subtractingReportingOverflow(echoedTime)
        guard !underflow, elapsed >= holdTime else {
            rejected += 1
            return nil
        }
        let sample = elapsed - holdTime
        record(sample: sample)
        return sample
    }

    /// Feeds one RTT sample measured some other way, microseconds.
    public mutating func record(sample: UInt64) {
        samples += 1
        latest = sample
        minimum = min(minimum ?? sample, sample)
        let value = Double(sample)
        if let srtt = smoothed, let rttvar = variation {
            variation = (1 - beta) * rttvar + beta * abs(srtt - value)
            smoothed = (1 - alpha) * srtt + alpha * value
        } else {
            smoothed = value
            variation = value / 2
        }
    }

    /// Smoothed RTT in milliseconds, nil before the first sample.
    public var smoothedMilliseconds: Double? { smoothed.map { $0 / 1000 } }

    /// A conservative RTT bound, `SRTT + 4·RTTVAR` (RFC 6298's RTO before clamping), microseconds.
    public var upperBound: Double? {
        guard let srtt = smoothed, let rttvar = variation else { return nil }
        return srtt + 4 * rttvar
    }
}
