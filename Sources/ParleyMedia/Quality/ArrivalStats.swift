/// Receiver-side statistics of one incoming media stream, after RFC 3550 §6.4.1 and Appendix A.
///
/// Sans-I/O: call ``record(sequence:frame:arrival:)`` for every packet that opened successfully.
/// Arrival times are microseconds on the receiver's monotonic clock (any origin); send times are the
/// packets' media frame indices (20 ms per frame), so the interarrival jitter is in media time and is
/// reported in milliseconds.
///
/// Parley's media sequence number is 48 bits, starts at 0 and never wraps within a key (see
/// `MediaHeader` in ParleyWire), so it already *is* RFC 3550's extended sequence number: no cycle counting
/// is needed, and `expected = highest − base + 1` exactly as in Appendix A.3.
///
/// Loss bursts are measured on a loss pattern that is settled once a sequence number is
/// ``reorderWindow`` below the highest seen (a later arrival can no longer fill it). From the settled
/// pattern the two-state Markov model G.107 uses to define BurstR is fitted: `p` = P(received → lost),
/// `q` = P(lost → received), and ``burstRatio`` = `1 / (p + q)` is G.107's BurstR (1 for random loss,
/// above 1 for bursty loss).
public struct ArrivalStats: Sendable {
    /// Sequence numbers are settled this far below the highest seen (default 16 packets, 320 ms).
    public let reorderWindow: UInt64

    /// Interarrival jitter J in microseconds (RFC 3550 §6.4.1: `J += (|D| − J) / 16`).
    public private(set) var jitterMicroseconds: Double = 0
    /// Packets recorded, duplicates included (as RFC 3550 counts them).
    public private(set) var received: UInt64 = 0
    /// First sequence number seen.
    public private(set) var baseSequence: UInt64?
    /// Highest sequence number seen.
    public private(set) var highestSequence: UInt64 = 0

    private var lastTransit: Int64?
    /// The smallest transit seen (`arrival − frame × 20 ms`): the path with no queue at all.
    public private(set) var minimumTransit: Int64?
    private var queuingSum: Int64 = 0
    private var queuingCount: Int64 = 0
    private var expectedPrior: UInt64 = 0
    private var receivedPrior: UInt64 = 0

    // Settled loss pattern.
    private var settledUpTo: UInt64 = 0
    /// Bit i: sequence `settledUpTo + i` received (not yet settled).
    private var pending: UInt64 = 0
    private var previousSettledLost: Bool?
    private var settledReceived: UInt64 = 0
    private var settledLost: UInt64 = 0
    private var bursts: UInt64 = 0
    /// Received packets that were followed by a settled packet (the denominator of p).
    private var receivedTransitions: UInt64 = 0
    /// Lost packets that were followed by a settled packet (the denominator of q).
    private var lostTransitions: UInt64 = 0
    private var lossToReceived: UInt64 = 0
    private var receivedToLoss: UInt64 = 0

    /// Empty statistics; `reorderWindow` is clamped to 1...63.
    public init(reorderWindow: UInt64 = 16) {
        self.reorderWindow = min(max(reorderWindow, 1), 63)
    }

    /// Records one received packet.
    ///
    /// - Parameters:
    ///   - sequence: the sender's packet sequence number (48-bit, no wrap).
    ///   - frame: the packet's media frame index (its send timestamp in 20 ms frames).
    ///   - arrival: receive time, microseconds on the receiver's clock.
    public mutating func record(sequence: UInt64, frame: UInt64, arrival: UInt64) {
        // RFC 3550 A.8: transit = arrival − timestamp (both in one unit), D = transit − previous transit.
        let transit = Int64(bitPattern: arrival) &- Int64(bitPattern: frame &* 20_000)
        if let last = lastTransit {
            let difference = Double(abs(transit &- last))
            jitterMicroseconds += (difference - jitterMicroseconds) / 16
        }
        lastTransit = transit
        minimumTransit = min(minimumTransit ?? transit, transit)
        queuingSum &+= transit &- minimumTransit!
        queuingCount += 1
        record(sequence: sequence)
    }

    /// Mean queuing delay of the media packets since the previous call, microseconds: how much later than
    /// the fastest packet so far (``minimumTransit``) they arrived, on average. Jitter alone keeps it
    /// around half the jitter's spread; a queue building on the path raises it packet by packet, so a
    /// report carries it a second after it starts, where the RTT (one sample per report, smoothed) lags
    /// by several. Zero when no media packet arrived. (Clock drift between the ends adds a few ms per
    /// minute at most.)
    public mutating func takeIntervalQueuingDelay() -> UInt64 {
        defer { queuingSum = 0; queuingCount = 0 }
        guard queuingCount > 0 else { return 0 }
        return UInt64(max(queuingSum / queuingCount, 0))
    }

    /// Records a packet of the same sequence space that carries no media time (a receiver report): it
    /// counts for loss, not for jitter.
    public mutating func record(sequence: UInt64) {
        received += 1

        guard let base = baseSequence else {
            baseSequence = sequence
            highestSequence = sequence
            settledUpTo = sequence
            pending = 1
            return
        }
        guard sequence >= base else { return }
        highestSequence = max(highestSequence, sequence)
        markReceived(sequence)
    }

    /// Interarrival jitter in milliseconds.
    public var jitterMilliseconds: Double { jitterMicroseconds / 1000 }

    /// Packets expected: `highest − base + 1` (RFC 3550 A.3); 0 before the first packet.
    public var expected: UInt64 {
        guard let base = baseSequence else { return 0 }
        return highestSequence - base + 1
    }

    /// Cumulative packets lost, `expected − received`; negative when duplicates outnumber losses.
    public var cumulativeLost: Int64 { Int64(expected) - Int64(received) }

    /// Cumulative loss fraction, 0...1 (negative loss reads as 0).
    public var lossFraction: Double {
        let expected = self.expected
        guard expected > 0 else { return 0 }
        return min(max(Double(cumulativeLost) / Double(expected), 0), 1)
    }

    /// Loss fraction since the previous call (RFC 3550 A.3 "fraction lost"), 0...1, for receiver reports.
    public mutating func takeIntervalLossFraction() -> Double {
        let expectedInterval = expected - expectedPrior
        let receivedInterval = received - receivedPrior
        expectedPrior = expected
        receivedPrior = received
        guard expectedInterval > 0, receivedInterval < expectedInterval else { return 0 }
        return Double(expectedInterval - receivedInterval) / Double(expectedInterval)
    }

    /// Mean length, in packets, of the settled loss bursts; 0 when nothing has been lost.
    public var meanBurstLength: Double {
        bursts == 0 ? 0 : Double(settledLost) / Double(bursts)
    }

    /// G.107's BurstR = 1 / (p + q) from the settled loss pattern; 1 without loss (random by definition).
    public var burstRatio: Double {
        guard settledLost > 0, receivedTransitions > 0, lostTransitions > 0 else { return 1 }
        let p = Double(receivedToLoss) / Double(receivedTransitions)
        let q = Double(lossToReceived) / Double(lostTransitions)
        guard p + q > 0 else { return 1 }
        return max(1 / (p + q), 0)
    }

    // MARK: Loss pattern

    private mutating func markReceived(_ sequence: UInt64) {
        guard sequence >= settledUpTo else { return }
        // Keep `sequence` within the 64-bit pending window, and settle what is below the reorder window.
        while sequence - settledUpTo >= 64 { settleOne() }
        pending |= 1 << (sequence - settledUpTo)
        while highestSequence - settledUpTo >= reorderWindow { settleOne() }
    }

    private mutating func settleOne() {
        let lost = pending & 1 == 0
        if let previous = previousSettledLost {
            if previous {
                lostTransitions += 1
                if !lost { lossToReceived += 1 }
            } else {
                receivedTransitions += 1
                if lost { receivedToLoss += 1 }
            }
        }
        if lost {
            settledLost += 1
            if previousSettledLost != true { bursts += 1 }
        } else {
            settledReceived += 1
        }
        previousSettledLost = lost
        pending >>= 1
        settledUpTo += 1
    }
}
