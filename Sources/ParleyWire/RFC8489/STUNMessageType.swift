/// The STUN message class (RFC 8489 §5): the two class bits C1 C0 spread over the message type.
public enum STUNClass: UInt8, Sendable, Hashable {
    /// A request: expects a success or error response.
    case request = 0b00
    /// An indication: no response.
    case indication = 0b01
    /// A success response.
    case successResponse = 0b10
    /// An error response.
    case errorResponse = 0b11
}

/// A STUN method (12 bits). Binding is RFC 8489; the TURN methods are RFC 8656.
public struct STUNMethod: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x0FFF }

    public static let binding = STUNMethod(rawValue: 0x001)
    public static let allocate = STUNMethod(rawValue: 0x003)
    public static let refresh = STUNMethod(rawValue: 0x004)
    public static let send = STUNMethod(rawValue: 0x006)
    public static let data = STUNMethod(rawValue: 0x007)
    public static let createPermission = STUNMethod(rawValue: 0x008)
    public static let channelBind = STUNMethod(rawValue: 0x009)

    public var description: String {
        switch self {
        case .binding: "Binding"
        case .allocate: "Allocate"
        case .refresh: "Refresh"
        case .send: "Send"
        case .data: "Data"
        case .createPermission: "CreatePermission"
        case .channelBind: "ChannelBind"
        default: "Method(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The 14-bit STUN message type: method bits M11..M0 interleaved with class bits C1 C0 (RFC 8489 §5).
///
///     0                 1
///     2  3  4 5 6 7 8 9 0 1 2 3 4 5
///    +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
///    |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
///    |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
///    +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
public struct STUNMessageType: Sendable, Hashable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    /// Decodes the 16-bit type field. The top two bits must already be known to be zero.
    public init(rawValue: UInt16) {
        let m = (rawValue & 0x000F) | ((rawValue & 0x00E0) >> 1) | ((rawValue & 0x3E00) >> 2)
        let c = ((rawValue & 0x0010) >> 4) | ((rawValue & 0x0100) >> 7)
        self.method = STUNMethod(rawValue: m)
        self.messageClass = STUNClass(rawValue: UInt8(c))!
    }

    public var rawValue: UInt16 {
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
    }

    public static let bindingRequest = STUNMessageType(method: .binding, messageClass: .request)
    public static let bindingSuccess = STUNMessageType(method: .binding, messageClass: .successResponse)
    public static let bindingError = STUNMessageType(method: .binding, messageClass: .errorResponse)

    public var description: String {
        let cls: String
        switch messageClass {
        case .request: cls = "Request"
        case .indication: cls = "Indication"
        case .successResponse: cls = "Success"
        case .errorResponse: cls = "Error"
        }
        return "\(method) \(cls)"
    }
}
