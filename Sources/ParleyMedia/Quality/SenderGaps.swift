/// Tells the frames a sender chose not to send (Opus discontinuous transmission) from frames lost on the
/// way, and how much of the time the sender was sending at all. Sans-I/O; one per incoming stream.
///
/// Every protected packet carries a sequence number (one per datagram, whatever its type) and an audio
/// packet also its frame index (media time, 20 ms per frame). A sender in DTX leaves frames out without
/// spending sequence numbers on them, so when an audio packet arrives whose frame index jumps past the
/// previous audio packet's while every sequence number between them arrived (as receiver reports), the
/// frames between were never sent: silence the sender chose, not loss. This is RTP's rule (a timestamp
/// jump with no sequence gap) in Parley's numbering. A gap that also lost packets is left as loss: which
/// frames those packets carried cannot be known, and counting it as loss is the conservative side.
public struct SenderGaps: Sendable, Hashable {
    /// The newest audio packet seen: its frame index and sequence number.
    private var last: Packet?
    private struct Packet: Sendable, Hashable {
        var frame: UInt64
        var sequence: UInt64
    }
    /// Sequence numbers of non-audio packets (reports) received above the newest audio packet's.
    private var others: [UInt64] = []
    /// Frames found unsent so far.
    public private(set) var unsentFrames: UInt64 = 0
    /// Frames the sender sent (audio packets received, plus packets lost between audio packets) since
    /// the last ``takeSentFrames()``.
    private var sentSinceTaken: UInt64 = 0
    /// The same, since creation.
    public private(set) var sentFrames: UInt64 = 0

    public init() {}

    /// An authenticated audio packet arrived. Returns the frames before it that the sender did not send,
    /// if the packet shows a DTX gap, for ``JitterBuffer/markUnsent(_:)``.
    public mutating func audio(frame: UInt64, sequence: UInt64) -> Range<UInt64>? {
        guard let previous = last else {
            last = Packet(frame: frame, sequence: sequence)
            count(sent: 1)
            return nil
        }
        // A reordered or repeated packet proves nothing about the gap; it still was sent.
        guard sequence > previous.sequence, frame > previous.frame else {
            count(sent: 1)
            return nil
        }
        let between = sequence - previous.sequence - 1
        let heard = UInt64(others.lazy.filter { $0 < sequence }.count)
        others.removeAll { $0 < sequence }
        last = Packet(frame: frame, sequence: sequence)
        let lost = between - min(between, heard)
        let gap = frame - previous.frame - 1
        // Lost packets were (at most) frames the sender sent, up to the gap's size.
        count(sent: 1 + min(lost, gap))
        guard gap > 0, lost == 0 else { return nil }
        unsentFrames += gap
        return (previous.frame + 1)..<frame
    }

    /// An authenticated packet that carries no audio (a receiver report) arrived.
    public mutating func other(sequence: UInt64) {
        guard sequence > (last?.sequence ?? 0) else { return }
        others.append(sequence)
        if others.count > 64 { others.removeFirst(others.count - 64) }
    }

    /// Frames the sender sent since the previous call (received, or lost in a gap): with the time that
    /// passed, how much of it the sender was sending.
    public mutating func takeSentFrames() -> UInt64 {
        defer { sentSinceTaken = 0 }
        return sentSinceTaken
    }

    private mutating func count(sent: UInt64) {
        sentSinceTaken += sent
        sentFrames += sent
    }
}
