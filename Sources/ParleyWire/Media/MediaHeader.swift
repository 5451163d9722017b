/// The 7-byte clear header of every protected media datagram (docs/PROTOCOL.md §5.3).
///
/// ```
///  0                   1                   2 ... 6
///  0 1 2 3 4 5 6 7 8 ...
/// +-+-+-+-+-+-+-+-+-----------------------------+
/// |1 0|ver|K| typ |   sequence number (48 bits) |
/// +-+-+-+-+-+-+-+-+-----------------------------+
/// ```
///
/// - The top two bits are `10`, which puts the first byte in 128–191, the range RFC 7983 leaves to
///   RTP/RTCP: a socket shared with STUN (0–3) and TURN ChannelData (64–79) demultiplexes on it.
/// - `ver`: header version, 1.
/// - `K`: key phase, the low bit of the key generation that sealed the packet.
/// - `typ`: ``MediaPacketType``.
/// - sequence: per direction, starts at 0, rises by one per packet and never repeats under one key; it is
///   the AEAD nonce's counter and the replay window's index.
///
/// The header is the AEAD's associated data, so none of it can be changed without the packet failing to
/// open. Parsing is total: ``init(parsing:)`` returns nil for anything that is not a version-1 header.
public struct MediaHeader: Sendable, Hashable {
    /// Encoded size in bytes.
    public static let size = 7
    /// Highest sequence number representable in 48 bits.
    public static let maxSequence: UInt64 = (1 << 48) - 1
    /// The version this code writes and reads.
    public static let version: UInt8 = 1

    /// What the packet carries.
    public let type: MediaPacketType
    /// The key phase bit (generation & 1).
    public let keyPhase: Bool
    /// The 48-bit sequence number.
    public let sequence: UInt64

    /// A header; `sequence` must fit 48 bits.
    public init(type: MediaPacketType, keyPhase: Bool, sequence: UInt64) {
        precondition(sequence <= Self.maxSequence, "media sequence beyond 48 bits")
        self.type = type
        self.keyPhase = keyPhase
        self.sequence = sequence
    }

    /// Parses the first ``size`` bytes of `datagram`; nil when it is too short, not in the media range,
    /// of another version, or of an unknown type.
    public init?(parsing datagram: some Collection<UInt8>) {
        guard datagram.count >= Self.size else { return nil }
        var index = datagram.startIndex
        let first = datagram[index]
        guard first >> 6 == 0b10, (first >> 4) & 0b11 == Self.version,
            let type = MediaPacketType(rawValue: first & 0b111)
        else { return nil }
        var sequence: UInt64 = 0
        for _ in 0..<6 {
            index = datagram.index(after: index)
            sequence = sequence << 8 | UInt64(datagram[index])
        }
        self.type = type
        self.keyPhase = first & 0b1000 != 0
        self.sequence = sequence
    }

    /// The first byte.
    public var firstByte: UInt8 {
        0b1000_0000 | Self.version << 4 | (keyPhase ? 0b1000 : 0) | type.rawValue
    }

    /// Appends the 7 encoded bytes to `bytes`.
    public func write(into bytes: inout [UInt8]) {
        bytes.append(firstByte)
        for shift in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: sequence >> UInt64(shift))) }
    }

    /// The 7 encoded bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        write(into: &out)
        return out
    }

    /// True when `first` (a datagram's first byte) is in the media range 128–191.
    public static func isMedia(firstByte first: UInt8) -> Bool { first >> 6 == 0b10 }
}

/// The kinds of protected media datagram (3 bits in ``MediaHeader``).
public enum MediaPacketType: UInt8, Sendable, Hashable, CaseIterable {
    /// One Opus frame: `frame index (u32) || Opus packet` (docs/PROTOCOL.md §5.4).
    case audio = 1
    /// Receiver report and RTT probe (docs/PROTOCOL.md §5.5).
    case report = 2
    /// End of the media stream: the sender hung up (authenticated, so nobody else can end a call).
    case bye = 3
    /// One Opus frame plus copies of earlier frames' packets (``AudioPayload``, docs/PROTOCOL.md §5.4),
    /// sent while the peer reports heavy loss.
    case audioRedundant = 4
}
