/// The plaintext of an audio media packet (docs/PROTOCOL.md §5.4): a frame index, that frame's Opus
/// packet, and — in an `audioRedundant` packet — copies of earlier frames' Opus packets (RFC 2198's idea,
/// in our own framing), so a frame whose own packet was lost can still be played whole from a later one.
///
/// ```
/// audio (type 1):          frame index (4) || Opus packet
/// audioRedundant (type 4): frame index (4) || r (1) || r × (distance (1) || length (2))
///                          || the r redundant Opus packets, in header order || Opus packet (the rest)
/// ```
///
/// A redundant copy at distance `d` is frame `index − d`. Parsing refuses (nil): a payload too short, an
/// empty primary packet, `r` of 0 or above ``maxRedundant``, a distance of 0 or beyond the frame index,
/// the same distance twice, and lengths of 0 or overrunning the payload.
public struct AudioPayload: Sendable, Hashable {
    /// An earlier frame's Opus packet, carried again.
    public struct Redundant: Sendable, Hashable {
        /// How many frames before the packet's own frame (1...255).
        public var distance: UInt8
        /// The Opus packet that frame was sent with.
        public var opus: [UInt8]

        /// A copy of frame `index − distance`.
        public init(distance: UInt8, opus: [UInt8]) {
            self.distance = distance
            self.opus = opus
        }
    }

    /// Most redundant copies one packet may carry.
    public static let maxRedundant = 3

    /// The sender's frame index (media time in 20 ms frames), 32 bits on the wire.
    public var frame: UInt32
    /// This frame's Opus packet (never empty).
    public var opus: [UInt8]
    /// Earlier frames carried again (empty: a plain `audio` packet).
    public var redundant: [Redundant]

    /// A payload; `redundant` must hold at most ``maxRedundant`` copies with distinct distances, each
    /// 1...`frame`, and non-empty packets (``bytes`` traps otherwise: the sender builds these).
    public init(frame: UInt32, opus: [UInt8], redundant: [Redundant] = []) {
        self.frame = frame
        self.opus = opus
        self.redundant = redundant
    }

    /// The packet type this payload is sent as.
    public var type: MediaPacketType { redundant.isEmpty ? .audio : .audioRedundant }

    /// The plaintext for ``type``.
    public var bytes: [UInt8] {
        precondition(!opus.isEmpty && redundant.count <= Self.maxRedundant, "audio payload out of range")
        var out: [UInt8] = []
        out.reserveCapacity(5 + 3 * redundant.count + redundant.reduce(opus.count) { $0 + $1.opus.count })
        out += [UInt8(truncatingIfNeeded: frame >> 24), UInt8(truncatingIfNeeded: frame >> 16),
                UInt8(truncatingIfNeeded: frame >> 8), UInt8(truncatingIfNeeded: frame)]
        if !redundant.isEmpty {
            out.append(UInt8(redundant.count))
            for copy in redundant {
                precondition(copy.distance > 0 && UInt32(copy.distance) <= frame && !copy.opus.isEmpty
                             && copy.opus.count <= Int(UInt16.max), "redundant copy out of range")
                out += [copy.distance, UInt8(truncatingIfNeeded: copy.opus.count >> 8), UInt8(truncatingIfNeeded: copy.opus.count)]
            }
            for copy in redundant { out += copy.opus }
        }
        out += opus
        return out
    }

    /// Parses the plaintext of an `audio` or `audioRedundant` packet; nil for anything malformed or for
    /// another packet type.
    public init?(parsing plaintext: [UInt8], type: MediaPacketType) {
        guard plaintext.count > 4 else { return nil }
        let frame = plaintext[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        switch type {
        case .audio:
            self.init(frame: frame, opus: Array(plaintext[4...]))
        case .audioRedundant:
            let count = Int(plaintext[4])
            guard count >= 1, count <= Self.maxRedundant, plaintext.count >= 5 + 3 * count else { return nil }
            var offset = 5 + 3 * count
            var copies: [Redundant] = []
            copies.reserveCapacity(count)
            for i in 0..<count {
                let entry = 5 + 3 * i
                let distance = plaintext[entry]
                let length = Int(plaintext[entry + 1]) << 8 | Int(plaintext[entry + 2])
                guard distance > 0, UInt32(distance) <= frame, length > 0, plaintext.count - offset >= length,
                    !copies.contains(where: { $0.distance == distance })
                else { return nil }
                copies.append(Redundant(distance: distance, opus: Array(plaintext[offset..<(offset + length)])))
                offset += length
            }
            guard offset < plaintext.count else { return nil }
            self.init(frame: frame, opus: Array(plaintext[offset...]), redundant: copies)
        case .report, .bye:
            return nil
        }
    }
}
