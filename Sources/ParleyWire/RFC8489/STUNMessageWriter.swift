import NIOCore

/// Builds a STUN message directly into a `ByteBuffer`, keeping the header's length field current after
/// every attribute so that MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT can be computed
/// in the same pass (RFC 8489 §14.5–§14.7). Writing allocates nothing when the buffer has capacity.
public struct STUNMessageWriter: Sendable {
    /// Writer index at which this message's header starts.
    public let start: Int
    public let header: STUNHeader

    /// Writes the header (length 0 for now).
    public init(type: STUNMessageType, cookie: UInt32 = stunMagicCookie, transactionID: STUNTransactionID,
                into buffer: inout ByteBuffer) {
        self.start = buffer.writerIndex
        self.header = STUNHeader(type: type, cookie: cookie, transactionID: transactionID)
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(cookie)
        buffer.writeInteger(transactionID.high)
        buffer.writeInteger(transactionID.low)
    }

    /// Starts the response to `request`: same transaction ID and cookie, given class.
    public init(responseTo request: STUNHeader, messageClass: STUNClass, into buffer: inout ByteBuffer) {
        self.init(type: STUNMessageType(method: request.type.method, messageClass: messageClass),
                  cookie: request.cookie, transactionID: request.transactionID, into: &buffer)
    }

    /// Current message length including the header.
    public func length(of buffer: ByteBuffer) -> Int { buffer.writerIndex - start }

    private func patchLength(_ buffer: inout ByteBuffer, adding extra: Int = 0) {
        buffer.setInteger(UInt16(buffer.writerIndex - start - STUNDecoder.headerLength + extra), at: start + 2)
    }

    /// Appends an attribute with an opaque value, zero-padded to 4 bytes.
    public func append<Bytes: Collection>(_ type: STUNAttributeType, _ value: Bytes, into buffer: inout ByteBuffer)
    where Bytes.Element == UInt8 {
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(value.count))
        buffer.writeBytes(value)
        pad(value.count, &buffer)
        patchLength(&buffer)
    }

    /// Appends an attribute whose value is UTF-8 text (USERNAME, REALM, NONCE, SOFTWARE…).
    public func append(_ type: STUNAttributeType, text: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        let lengthAt = buffer.writerIndex
        buffer.writeInteger(UInt16(0))
        let n = buffer.writeString(text)
        buffer.setInteger(UInt16(n), at: lengthAt)
        pad(n, &buffer)
        patchLength(&buffer)
    }

    /// Appends a 32-bit attribute (CHANGE-REQUEST, LIFETIME, RESPONSE-PORT's first half…).
    public func append(_ type: STUNAttributeType, uint32 value: UInt32, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(4))
        buffer.writeInteger(value)
        patchLength(&buffer)
    }

    /// Appends an address attribute; `xor` selects the XOR-… encoding.
    public func append(_ type: STUNAttributeType, address: STUNAddress, xor: Bool, into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(UInt16(address.encodedLength))
        STUNAddressCodec.encode(address, xor: xor, transactionID: header.transactionID, into: &buffer)
        patchLength(&buffer)
    }

    /// Appends ERROR-CODE (RFC 8489 §14.8) with the standard reason phrase unless one is given.
    public func appendErrorCode(_ code: STUNErrorCode, reason: String? = nil, into buffer: inout ByteBuffer) {
        buffer.writeInteger(STUNAttributeType.errorCode.rawValue)
        let lengthAt = buffer.writerIndex
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt8(code.rawValue / 100))
        buffer.writeInteger(UInt8(code.rawValue % 100))
        let n = buffer.writeString(reason ?? code.reason)
        buffer.setInteger(UInt16(4 + n), at: lengthAt)
        pad(4 + n, &buffer)
        patchLength(&buffer)
    }

    /// Appends UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    public func appendUnknownAttributes(_ types: some Collection<STUNAttributeType>, into buffer: inout ByteBuffer) {
        buffer.writeInteger(STUNAttributeType.unknownAttributes.rawValue)
        buffer.writeInteger(UInt16(types.count * 2))
        for t in types { buffer.writeInteger(t.rawValue) }
        pad(types.count * 2, &buffer)
        patchLength(&buffer)
    }

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 over the message so far, with the length field already
    /// counting this attribute (RFC 8489 §14.5).
    public func appendMessageIntegrity(key: STUNIntegrityKey, into buffer: inout ByteBuffer) {
        patchLength(&buffer, adding: 24)
        let mac = STUNIntegrity.hmacSHA1(key: key, buffer: buffer, from: start, to: buffer.writerIndex)
        buffer.writeInteger(STUNAttributeType.messageIntegrity.rawValue)
        buffer.writeInteger(UInt16(20))
        buffer.writeBytes(mac)
        patchLength(&buffer)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6), full 32 bytes.
    public func appendMessageIntegritySHA256(key: STUNIntegrityKey, into buffer: inout ByteBuffer) {
        patchLength(&buffer, adding: 36)
        let mac = STUNIntegrity.hmacSHA256(key: key, buffer: buffer, from: start, to: buffer.writerIndex)
        buffer.writeInteger(STUNAttributeType.messageIntegritySHA256.rawValue)
        buffer.writeInteger(UInt16(32))
        buffer.writeBytes(mac)
        patchLength(&buffer)
    }

    /// Appends FINGERPRINT, which must be the last attribute (RFC 8489 §14.7).
    public func appendFingerprint(into buffer: inout ByteBuffer) {
        patchLength(&buffer, adding: 8)
        let view = buffer.getSlice(at: start, length: buffer.writerIndex - start)!
        let crc = STUNDecoder.fingerprint(of: view, upTo: view.readableBytes)
        buffer.writeInteger(STUNAttributeType.fingerprint.rawValue)
        buffer.writeInteger(UInt16(4))
        buffer.writeInteger(crc)
    }

    private func pad(_ n: Int, _ buffer: inout ByteBuffer) {
        let p = (4 - n & 3) & 3
        if p > 0 { buffer.writeRepeatingByte(0, count: p) }
    }
}
