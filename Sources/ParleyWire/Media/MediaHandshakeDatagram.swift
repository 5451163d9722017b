/// The two clear datagrams of the call handshake on the media path (docs/PROTOCOL.md §5.3). They run
/// while the phone rings, so that keys and the path are ready when someone accepts.
///
/// ```
/// hello  = 0xB1 || call id (36 ASCII) || device length (1) || device || signed answer blob (65 + n)
/// reveal = 0xB2 || call id (36 ASCII) || caller's ephemeral X25519 public key (32)
/// ```
///
/// Their first bytes (version field 3) are in the media range but never parse as a protected
/// ``MediaHeader``. A hello carries a callee device's answer exactly as it gives it to the server, signed
/// with its identity key; a reveal carries the key the offer committed to, checked against that
/// commitment. Neither needs more protection: the one is signed, the other verifiable, both public.
public enum MediaHandshakeDatagram: Sendable, Hashable {
    /// From a ringing callee device to the caller's candidates.
    case hello(call: SignalID, device: SignalName, signedAnswer: [UInt8])
    /// From the caller to a callee device, in reply to its hello or at answer time.
    case reveal(call: SignalID, ephemeral: [UInt8])

    /// First byte of a hello.
    public static let helloByte: UInt8 = 0xB1
    /// First byte of a reveal.
    public static let revealByte: UInt8 = 0xB2
    /// Largest datagram accepted (a hello's signed answer is at most this minus the fixed part).
    public static let maxSize = 1200

    /// The encoded datagram.
    public var bytes: [UInt8] {
        switch self {
        case .hello(let call, let device, let signedAnswer):
            let name = Array(device.text.utf8)
            return [Self.helloByte] + Array(call.text.utf8) + [UInt8(name.count)] + name + signedAnswer
        case .reveal(let call, let ephemeral):
            return [Self.revealByte] + Array(call.text.utf8) + ephemeral
        }
    }

    /// Parses a datagram; nil for anything else (including oversize ones).
    public init?(parsing bytes: [UInt8]) {
        guard bytes.count >= 37, bytes.count <= Self.maxSize,
            let text = String(validating: bytes[1..<37], as: UTF8.self), let call = SignalID(text)
        else { return nil }
        switch bytes[0] {
        case Self.helloByte:
            guard bytes.count > 38 else { return nil }
            let length = Int(bytes[37])
            guard bytes.count > 38 + length,
                let name = String(validating: bytes[38..<(38 + length)], as: UTF8.self), let device = SignalName(name)
            else { return nil }
            self = .hello(call: call, device: device, signedAnswer: Array(bytes[(38 + length)...]))
        case Self.revealByte:
            guard bytes.count == 37 + 32 else { return nil }
            self = .reveal(call: call, ephemeral: Array(bytes[37...]))
        default:
            return nil
        }
    }
}

/// A transport address a party can receive media on, carried in offer and answer extensions
/// (field type 0x10, docs/PROTOCOL.md §5.1): `family (4 or 6) || address (4 or 16) || port (2)`.
public struct MediaCandidate: Sendable, Hashable, CustomStringConvertible {
    /// The extension field type of a host candidate.
    public static let fieldType: UInt8 = 0x10
    /// IPv4 (4 bytes) or IPv6 (16 bytes) address.
    public let address: [UInt8]
    /// UDP port.
    public let port: UInt16

    /// A candidate; `address` must be 4 or 16 bytes.
    public init?(address: [UInt8], port: UInt16) {
        guard address.count == 4 || address.count == 16, port != 0 else { return nil }
        self.address = address
        self.port = port
    }

    /// The field value.
    public var encoded: [UInt8] {
        [address.count == 4 ? 4 : 6] + address + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }

    /// Parses a field value; nil when malformed.
    public init?(decoding value: [UInt8]) {
        guard let family = value.first else { return nil }
        let length = family == 4 ? 4 : family == 6 ? 16 : -1
        guard length > 0, value.count == 1 + length + 2 else { return nil }
        self.init(address: Array(value[1...length]), port: UInt16(value[length + 1]) << 8 | UInt16(value[length + 2]))
    }

    /// `192.0.2.1:4000` or `[2001:db8::1]:4000`.
    public var description: String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") + ":\(port)" }
        let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(address[$0]) << 8 | UInt16(address[$0 + 1]), radix: 16) }
        return "[\(groups.joined(separator: ":"))]:\(port)"
    }
}
