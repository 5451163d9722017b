/// Why a message could not be accepted, and — the point of the type — what the server answers.
///
/// Shaped like swift-nio-ssh's `NIOSSHError`: a code plus diagnostics, equal by code. The mapping
/// from decode failure to wire answer lives in ``answer``, in one place.
public struct STUNDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// Shorter than a header, top bits set, length not a multiple of 4, or length disagreeing with the
        /// datagram/frame: not STUN at all.
        case notSTUN
        /// FINGERPRINT present but wrong: RFC 8489 §7.3 says such a message is not STUN.
        case badFingerprint
        /// An attribute whose length runs past the end of the message.
        case attributeOverrun
        /// An attribute after FINGERPRINT, which must be last.
        case attributeAfterFingerprint
        /// A known attribute whose value has the wrong length or an invalid field.
        case badAttributeValue
        /// More attributes than ``STUNDecoder/maxAttributes``.
        case tooManyAttributes
    }

    /// What a server does about it.
    public enum Answer: Sendable, Hashable {
        /// Send nothing: it is not STUN, or RFC 8489 says to discard it.
        case drop
        /// 400 Bad Request (only ever sent for requests; indications and responses are dropped).
        case badRequest
    }

    public let code: Code
    /// The attribute concerned, when there is one.
    public let attribute: STUNAttributeType?

    init(_ code: Code, attribute: STUNAttributeType? = nil) {
        self.code = code
        self.attribute = attribute
    }

    public var answer: Answer {
        switch code {
        case .notSTUN, .badFingerprint: .drop
        case .attributeOverrun, .attributeAfterFingerprint, .badAttributeValue, .tooManyAttributes: .badRequest
        }
    }

    public static func == (a: STUNDecodeError, b: STUNDecodeError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    public var description: String {
        if let attribute { return "STUN \(code) (\(attribute))" }
        return "STUN \(code)"
    }
}

/// STUN error codes (RFC 8489 §14.8, RFC 8656 §18).
public struct STUNErrorCode: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let tryAlternate = STUNErrorCode(rawValue: 300)
    public static let badRequest = STUNErrorCode(rawValue: 400)
    public static let unauthenticated = STUNErrorCode(rawValue: 401)
    public static let forbidden = STUNErrorCode(rawValue: 403)
    public static let unknownAttribute = STUNErrorCode(rawValue: 420)
    public static let allocationMismatch = STUNErrorCode(rawValue: 437)  // RFC 8656
    public static let staleNonce = STUNErrorCode(rawValue: 438)
    public static let addressFamilyNotSupported = STUNErrorCode(rawValue: 440)  // RFC 8656
    public static let wrongCredentials = STUNErrorCode(rawValue: 441)  // RFC 8656
    public static let unsupportedTransportProtocol = STUNErrorCode(rawValue: 442)  // RFC 8656
    public static let peerAddressFamilyMismatch = STUNErrorCode(rawValue: 443)  // RFC 8656
    public static let allocationQuotaReached = STUNErrorCode(rawValue: 486)  // RFC 8656
    public static let serverError = STUNErrorCode(rawValue: 500)
    public static let insufficientCapacity = STUNErrorCode(rawValue: 508)  // RFC 8656

    /// The recommended reason phrase.
    public var reason: String {
        switch rawValue {
        case 300: "Try Alternate"
        case 400: "Bad Request"
        case 401: "Unauthenticated"
        case 403: "Forbidden"
        case 420: "Unknown Attribute"
        case 437: "Allocation Mismatch"
        case 438: "Stale Nonce"
        case 440: "Address Family not Supported"
        case 441: "Wrong Credentials"
        case 442: "Unsupported Transport Protocol"
        case 443: "Peer Address Family Mismatch"
        case 486: "Allocation Quota Reached"
        case 500: "Server Error"
        case 508: "Insufficient Capacity"
        default: "Error"
        }
    }
}
