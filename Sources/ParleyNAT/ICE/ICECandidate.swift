import NIOCore
import ParleyWire

/// Candidate types (RFC 8445 §5.1.1) plus Parley's predicted candidate: a server-reflexive address one port
/// step ahead of the last mapping a symmetric NAT with a constant step allocated.
public enum ICECandidateType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case host = 1
    case serverReflexive = 2
    case peerReflexive = 3
    case relayed = 4
    case predicted = 5

    /// RFC 8445 §5.1.2.2's recommended type preferences; predicted sits just under server-reflexive.
    public var typePreference: UInt32 {
        switch self {
        case .host: 126
        case .peerReflexive: 110
        case .serverReflexive: 100
        case .predicted: 90
        case .relayed: 0
        }
    }

    public var description: String {
        switch self {
        case .host: "host"
        case .serverReflexive: "srflx"
        case .peerReflexive: "prflx"
        case .relayed: "relay"
        case .predicted: "predicted"
        }
    }
}

/// One transport address a side may receive on (docs/PROTOCOL.md §6.1).
///
/// `base` names the local transport a candidate sends from (the I/O layer's socket or relay; meaningless
/// for remote candidates). Wire form, an offer/answer extension field (type 0x11) or a trickled `cand`
/// payload: `type (1) || priority (4) || foundation (4) || family (4 or 6) || address || port (2)`.
public struct ICECandidate: Sendable, Hashable, CustomStringConvertible {
    /// Extension field type of an ICE candidate.
    public static let fieldType: UInt8 = 0x11

    public var type: ICECandidateType
    public var address: SocketAddress
    public var priority: UInt32
    public var foundation: UInt32
    public var base: Int

    public init(type: ICECandidateType, address: SocketAddress, priority: UInt32? = nil, foundation: UInt32 = 0, base: Int = 0) {
        self.type = type
        self.address = address
        self.priority = priority ?? Self.priority(type: type)
        self.foundation = foundation
        self.base = base
    }

    /// RFC 8445 §5.1.2.1: `2^24 × type preference + 2^8 × local preference + (256 − component)`.
    public static func priority(type: ICECandidateType, localPreference: UInt32 = 65_535, component: UInt32 = 1) -> UInt32 {
        (type.typePreference << 24) | (min(localPreference, 65_535) << 8) | (256 - component)
    }

    /// The wire form.
    public var encoded: [UInt8] {
        var out: [UInt8] = [type.rawValue]
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: priority >> UInt32(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: foundation >> UInt32(shift))) }
        guard let stun = STUNAddress(address) else { return out }
        func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
            (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
        }
        switch stun {
        case .v4(let address, let port):
            out += [4] + bigEndian(address) + bigEndian(port)
        case .v6(let high, let low, let port):
            out += [6] + bigEndian(high) + bigEndian(low) + bigEndian(port)
        }
        return out
    }

    /// Parses the wire form; nil when malformed.
    public init?(decoding value: [UInt8]) {
        guard value.count >= 10, let type = ICECandidateType(rawValue: value[0]) else { return nil }
        let priority = value[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let foundation = value[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard let media = MediaCandidate(decoding: Array(value[9...])) else { return nil }
        let stun: STUNAddress
        if media.address.count == 4 {
            stun = .v4(media.address.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, port: media.port)
        } else {
            stun = .v6(
                media.address[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) },
                media.address[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }, port: media.port)
        }
        let address = stun.socketAddress()
        self.init(type: type, address: address, priority: priority, foundation: foundation)
    }

    public var description: String {
        let ip = address.ipAddress ?? "?"
        return "\(type) \(ip.contains(":") ? "[\(ip)]" : ip):\(address.port ?? 0) prio \(priority)"
    }
}

/// A local and a remote candidate checked together (RFC 8445 §6.1.2).
public struct ICEPair: Sendable, Hashable, CustomStringConvertible {
    public let local: ICECandidate
    public let remote: ICECandidate

    /// RFC 8445 §6.1.2.3: `2^32 × min(G, D) + 2 × max(G, D) + (G > D ? 1 : 0)`, G the controlling side's.
    public func priority(controlling: Bool) -> UInt64 {
        let g = UInt64(controlling ? local.priority : remote.priority)
        let d = UInt64(controlling ? remote.priority : local.priority)
        return (min(g, d) << 32) + 2 * max(g, d) + (g > d ? 1 : 0)
    }

    /// Direct unless either end is a relay.
    public var isRelayed: Bool { local.type == .relayed || remote.type == .relayed }

    public var description: String { "\(local) -> \(remote)" }
}
