/// STUN attribute types: the one table of codepoints this codebase knows (RFC 8489 §18.3, RFC 5780 §7,
/// RFC 8656 §18, RFC 3489 §11.2 for the classic ones).
///
/// Types 0x0000–0x7FFF are comprehension-required: a request carrying one we do not understand gets
/// 420 (Unknown Attribute). Types 0x8000–0xFFFF are comprehension-optional and are skipped.
public struct STUNAttributeType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // RFC 8489, comprehension-required
    public static let mappedAddress = STUNAttributeType(rawValue: 0x0001)
    public static let responseAddress = STUNAttributeType(rawValue: 0x0002)  // RFC 3489, deprecated
    public static let changeRequest = STUNAttributeType(rawValue: 0x0003)  // RFC 5780
    public static let sourceAddress = STUNAttributeType(rawValue: 0x0004)  // RFC 3489
    public static let changedAddress = STUNAttributeType(rawValue: 0x0005)  // RFC 3489
    public static let username = STUNAttributeType(rawValue: 0x0006)
    public static let messageIntegrity = STUNAttributeType(rawValue: 0x0008)
    public static let errorCode = STUNAttributeType(rawValue: 0x0009)
    public static let unknownAttributes = STUNAttributeType(rawValue: 0x000A)
    public static let channelNumber = STUNAttributeType(rawValue: 0x000C)  // RFC 8656
    public static let lifetime = STUNAttributeType(rawValue: 0x000D)  // RFC 8656
    public static let xorPeerAddress = STUNAttributeType(rawValue: 0x0012)  // RFC 8656
    public static let data = STUNAttributeType(rawValue: 0x0013)  // RFC 8656
    public static let realm = STUNAttributeType(rawValue: 0x0014)
    public static let nonce = STUNAttributeType(rawValue: 0x0015)
    public static let xorRelayedAddress = STUNAttributeType(rawValue: 0x0016)  // RFC 8656
    public static let requestedAddressFamily = STUNAttributeType(rawValue: 0x0017)  // RFC 8656
    public static let evenPort = STUNAttributeType(rawValue: 0x0018)  // RFC 8656
    public static let requestedTransport = STUNAttributeType(rawValue: 0x0019)  // RFC 8656
    public static let dontFragment = STUNAttributeType(rawValue: 0x001A)  // RFC 8656
    public static let messageIntegritySHA256 = STUNAttributeType(rawValue: 0x001C)
    public static let passwordAlgorithm = STUNAttributeType(rawValue: 0x001D)
    public static let userhash = STUNAttributeType(rawValue: 0x001E)
    public static let xorMappedAddress = STUNAttributeType(rawValue: 0x0020)
    public static let reservationToken = STUNAttributeType(rawValue: 0x0022)  // RFC 8656
    public static let padding = STUNAttributeType(rawValue: 0x0026)  // RFC 5780
    public static let responsePort = STUNAttributeType(rawValue: 0x0027)  // RFC 5780

    // comprehension-optional
    public static let additionalAddressFamily = STUNAttributeType(rawValue: 0x8000)  // RFC 8656
    public static let addressErrorCode = STUNAttributeType(rawValue: 0x8001)  // RFC 8656
    public static let passwordAlgorithms = STUNAttributeType(rawValue: 0x8002)
    public static let alternateDomain = STUNAttributeType(rawValue: 0x8003)
    public static let icmp = STUNAttributeType(rawValue: 0x8004)  // RFC 8656
    public static let software = STUNAttributeType(rawValue: 0x8022)
    public static let alternateServer = STUNAttributeType(rawValue: 0x8023)
    public static let fingerprint = STUNAttributeType(rawValue: 0x8028)
    public static let responseOrigin = STUNAttributeType(rawValue: 0x802B)  // RFC 5780
    public static let otherAddress = STUNAttributeType(rawValue: 0x802C)  // RFC 5780

    /// RFC 8489 §14: 0x0000–0x7FFF must be understood by the receiver.
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    public var description: String {
        switch self {
        case .mappedAddress: "MAPPED-ADDRESS"
        case .responseAddress: "RESPONSE-ADDRESS"
        case .changeRequest: "CHANGE-REQUEST"
        case .sourceAddress: "SOURCE-ADDRESS"
        case .changedAddress: "CHANGED-ADDRESS"
        case .username: "USERNAME"
        case .messageIntegrity: "MESSAGE-INTEGRITY"
        case .errorCode: "ERROR-CODE"
        case .unknownAttributes: "UNKNOWN-ATTRIBUTES"
        case .channelNumber: "CHANNEL-NUMBER"
        case .lifetime: "LIFETIME"
        case .xorPeerAddress: "XOR-PEER-ADDRESS"
        case .data: "DATA"
        case .xorRelayedAddress: "XOR-RELAYED-ADDRESS"
        case .requestedAddressFamily: "REQUESTED-ADDRESS-FAMILY"
        case .evenPort: "EVEN-PORT"
        case .requestedTransport: "REQUESTED-TRANSPORT"
        case .dontFragment: "DONT-FRAGMENT"
        case .reservationToken: "RESERVATION-TOKEN"
        case .additionalAddressFamily: "ADDITIONAL-ADDRESS-FAMILY"
        case .addressErrorCode: "ADDRESS-ERROR-CODE"
        case .icmp: "ICMP"
        case .realm: "REALM"
        case .nonce: "NONCE"
        case .messageIntegritySHA256: "MESSAGE-INTEGRITY-SHA256"
        case .passwordAlgorithm: "PASSWORD-ALGORITHM"
        case .userhash: "USERHASH"
        case .xorMappedAddress: "XOR-MAPPED-ADDRESS"
        case .padding: "PADDING"
        case .responsePort: "RESPONSE-PORT"
        case .passwordAlgorithms: "PASSWORD-ALGORITHMS"
        case .alternateDomain: "ALTERNATE-DOMAIN"
        case .software: "SOFTWARE"
        case .alternateServer: "ALTERNATE-SERVER"
        case .fingerprint: "FINGERPRINT"
        case .responseOrigin: "RESPONSE-ORIGIN"
        case .otherAddress: "OTHER-ADDRESS"
        default: "0x" + String(rawValue, radix: 16)
        }
    }
}
