/// A sliding anti-replay window over 48-bit sequence numbers (the RFC 6479 bitmap, 1024 packets wide).
///
/// ``check(_:)`` says whether a sequence number may still be accepted; ``accept(_:)`` records it and must be
/// called only after the packet authenticated, so forged packets cannot move the window. Numbers more than
/// ``width`` − 1 behind the highest accepted one are refused as too old; each number inside the window is
/// accepted once.
public struct ReplayWindow: Sendable, Hashable {
    /// How many sequence numbers the window remembers.
    public static let width: UInt64 = 1024
    // One word more than the window: the word holding the highest number is shared with the oldest block
    // (RFC 6479 §2), so a window of `width` needs width/64 + 1 words.
    private static let words = Int(width / 64) + 1

    /// Highest sequence number accepted so far (meaningless while ``isEmpty``).
    public private(set) var highest: UInt64 = 0
    /// True until the first ``accept(_:)``.
    public private(set) var isEmpty = true
    private var bitmap = [UInt64](repeating: 0, count: words)

    /// An empty window.
    public init() {}

    /// Why a sequence number is refused.
    public enum Verdict: Sendable, Hashable {
        /// New: may be accepted.
        case fresh
        /// Seen before.
        case duplicate
        /// Older than the window.
        case tooOld
    }

    /// Whether `sequence` may be accepted, without recording it.
    public func check(_ sequence: UInt64) -> Verdict {
        guard !isEmpty, sequence <= highest else { return .fresh }
        guard highest - sequence < Self.width else { return .tooOld }
        let (word, bit) = Self.position(sequence)
        return bitmap[word] & (1 << bit) != 0 ? .duplicate : .fresh
    }

    /// Records `sequence` (which ``check(_:)`` called fresh) and slides the window forward if it is the newest.
    public mutating func accept(_ sequence: UInt64) {
        if isEmpty {
            isEmpty = false
            highest = sequence
        } else if sequence > highest {
            // Clear the words the window slides over (all of them after a jump of a whole width).
            let currentWord = Int((highest / 64) % UInt64(Self.words))
            let steps = min(Int(sequence / 64 - highest / 64), Self.words)
            for step in 0..<steps { bitmap[(currentWord + 1 + step) % Self.words] = 0 }
            highest = sequence
        } else if highest - sequence >= Self.width {
            return
        }
        let (word, bit) = Self.position(sequence)
        bitmap[word] |= 1 << bit
    }

    private static func position(_ sequence: UInt64) -> (Int, UInt64) {
        (Int((sequence / 64) % UInt64(words)), sequence % 64)
    }
}
