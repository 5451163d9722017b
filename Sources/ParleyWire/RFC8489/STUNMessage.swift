import NIOCore

/// The fixed magic cookie of RFC 8489 §5. A message without it is an RFC 3489 ("classic") message.
public let stunMagicCookie: UInt32 = 0x2112_A442

/// The 20-byte STUN header (RFC 8489 §5).
public struct STUNHeader: Sendable, Hashable {
    public var type: STUNMessageType
    /// Length of the attributes in bytes (the message is 20 + length bytes long).
    public var length: UInt16
    /// The magic cookie, or for an RFC 3489 client the first 32 bits of its 128-bit transaction ID.
    public var cookie: UInt32
    public var transactionID: STUNTransactionID

    public init(type: STUNMessageType, length: UInt16 = 0, cookie: UInt32 = stunMagicCookie,
                transactionID: STUNTransactionID) {
        self.type = type
        self.length = length
        self.cookie = cookie
        self.transactionID = transactionID
    }

    /// True for RFC 5389/8489 messages; false for RFC 3489 ones.
    public var hasMagicCookie: Bool { cookie == stunMagicCookie }
}

/// A decoded, structurally valid STUN message. It keeps the message's bytes (a slice, no copy) and
/// reads attributes out of them on demand, so decoding allocates nothing.
public struct STUNMessage: Sendable {
    public let header: STUNHeader
    /// Exactly the message's bytes, reader index at the first header byte.
    public let bytes: ByteBuffer
    /// Number of attributes in the message.
    public let attributeCount: Int
    /// Offset (from the message start) of MESSAGE-INTEGRITY's header, if present.
    public let messageIntegrityOffset: Int?
    /// Offset of MESSAGE-INTEGRITY-SHA256's header, if present.
    public let messageIntegritySHA256Offset: Int?
    /// Offset of FINGERPRINT's header, if present (it has been verified).
    public let fingerprintOffset: Int?
    /// Offset at which attributes stop counting: RFC 8489 §14.5/§14.6 say everything after a
    /// MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) is ignored.
    let significantEnd: Int

    public var type: STUNMessageType { header.type }
    public var transactionID: STUNTransactionID { header.transactionID }
    public var length: Int { bytes.readableBytes }

    /// The value of the first attribute of this type that counts, as a slice of ``bytes``.
    public func value(of type: STUNAttributeType) -> ByteBuffer? {
        var found: ByteBuffer?
        forEachAttribute { t, offset, length in
            if t == type {
                found = bytes.getSlice(at: bytes.readerIndex + offset + 4, length: length)
                return false
            }
            return true
        }
        return found
    }

    /// True if an attribute of this type counts in this message.
    public func contains(_ type: STUNAttributeType) -> Bool {
        var seen = false
        forEachAttribute { t, _, _ in
            if t == type { seen = true; return false }
            return true
        }
        return seen
    }

    /// Walks the attributes that count (see ``significantEnd``), in order: type, offset of the
    /// attribute header from the message start, value length. Return false to stop.
    public func forEachAttribute(_ body: (STUNAttributeType, Int, Int) -> Bool) {
        var offset = STUNDecoder.headerLength
        let base = bytes.readerIndex
        while offset + 4 <= length {
            let t = bytes.getInteger(at: base + offset, as: UInt16.self)!
            let l = Int(bytes.getInteger(at: base + offset + 2, as: UInt16.self)!)
            let integrityTail = t == STUNAttributeType.messageIntegrity.rawValue
                || t == STUNAttributeType.messageIntegritySHA256.rawValue
                || t == STUNAttributeType.fingerprint.rawValue
            if offset < significantEnd || integrityTail {
                if !body(STUNAttributeType(rawValue: t), offset, l) { return }
            }
            offset += 4 + ((l + 3) & ~3)
        }
    }

    /// Decodes an address attribute (MAPPED-ADDRESS family, or the XOR family when `xor`).
    public func address(of type: STUNAttributeType, xor: Bool) -> STUNAddress? {
        guard let v = value(of: type) else { return nil }
        return try? STUNAddressCodec.decode(v, xor: xor, header: header)
    }

    /// The ERROR-CODE attribute's code and reason.
    public var errorCode: (code: Int, reason: String)? {
        guard var v = value(of: .errorCode), v.readableBytes >= 4 else { return nil }
        let word = v.readInteger(as: UInt32.self)!
        let code = Int((word >> 8) & 0x7) * 100 + Int(word & 0xFF)
        return (code, v.readString(length: v.readableBytes) ?? "")
    }
}
