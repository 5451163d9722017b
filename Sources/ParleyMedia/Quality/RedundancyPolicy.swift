/// When the sender carries copies of earlier frames in later packets (docs/PROTOCOL.md §5.4). Sans-I/O:
/// feed it each receiver report.
///
/// Opus's in-band FEC rebuilds a lost frame from the next packet, so a frame is concealed when two packets
/// in a row are lost — about p² of the time at random loss p, ~4 % at 20 %, which is where the E-model
/// score falls under 3.5. A full copy of frame n−2 in packet n adds a third chance: the frame is concealed
/// only when three packets are lost (p³, 0.8 % at 20 %), for about twice the audio bits.
///
/// The loss judged is the reports' running average (each new report weighs half), so one unlucky second
/// on a 5 % path (5 of 50 packets lost happens in one report of ten) does not double the bitrate:
///
/// - **On** when that loss reaches ``onLoss`` (10 %) on a path that is not congested.
/// - **Off** when it falls under ``offLoss`` (4 %), or at once when the path shows congestion (a queue
///   standing on it, see `AudioPipeline`): more bits would only deepen the queue.
/// - Between the two thresholds it stays as it is.
public struct RedundancyPolicy: Sendable, Hashable {
    /// Reported loss at which copies start (default 0.10).
    public var onLoss: Double
    /// Reported loss under which copies stop (default 0.04).
    public var offLoss: Double
    /// How many frames back the copy is (default 2: the next packet's FEC already covers distance 1).
    public var distance: UInt8
    /// Whether copies are being sent.
    public private(set) var enabled = false
    /// The running average of the reported loss (nil before the first report).
    public private(set) var averageLoss: Double?

    /// A policy with the documented defaults.
    public init(onLoss: Double = 0.10, offLoss: Double = 0.04, distance: UInt8 = 2) {
        precondition(offLoss <= onLoss && distance > 0, "redundancy thresholds out of order")
        self.onLoss = onLoss
        self.offLoss = offLoss
        self.distance = distance
    }

    /// Takes one report (loss fraction 0...1, whether the path is congested); returns ``enabled``.
    @discardableResult
    public mutating func update(lossFraction: Double, congested: Bool) -> Bool {
        let reported = lossFraction.isFinite ? min(max(lossFraction, 0), 1) : 0
        let loss = averageLoss.map { ($0 + reported) / 2 } ?? reported
        averageLoss = loss
        if congested || loss < offLoss {
            enabled = false
        } else if loss >= onLoss {
            enabled = true
        }
        return enabled
    }
}
