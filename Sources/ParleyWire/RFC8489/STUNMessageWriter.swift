import CZlib
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

    /// Ends a message the way an answer to a request ends: MESSAGE-INTEGRITY-SHA256 or MESSAGE-INTEGRITY
    /// with `integrity`'s key when the request was authenticated (the MAC it used), then FINGERPRINT when
    /// the request carried one.
    public func finish(integrity: (key: STUNIntegrityKey, sha256: Bool)?, fingerprint: Bool, into buffer: inout ByteBuffer) {
        if let integrity {
            if integrity.sha256 {
                appendMessageIntegritySHA256(key: integrity.key, into: &buffer)
            } else {
                appendMessageIntegrity(key: integrity.key, into: &buffer)
            }
        }
        if fingerprint { appendFingerprint(into: &buffer) }
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

extension STUNMessageWriter {
    /// Byte length of the message ``writeBindingSuccess(responseTo:address:xorMappedAddress:mappedAddress:software:fingerprint:into:)``
    /// writes with the same arguments, header included.
    public static func bindingSuccessLength(address: STUNAddress, xorMappedAddress: Bool, mappedAddress: Bool,
                                            software: [UInt8]?, fingerprint: Bool) -> Int {
        let addressAttribute = 4 + address.encodedLength
        return STUNDecoder.headerLength + (xorMappedAddress ? addressAttribute : 0) + (mappedAddress ? addressAttribute : 0)
            + (software.map { 4 + (($0.count + 3) & ~3) } ?? 0) + (fingerprint ? 8 : 0)
    }

    /// Writes a whole success response to `request` in one pass: XOR-MAPPED-ADDRESS and/or MAPPED-ADDRESS
    /// of `address` (in that order), then SOFTWARE with `software` as its value if given, then FINGERPRINT
    /// if asked. The bytes are exactly those the incremental writer produces for the same attributes
    /// (`init(responseTo:messageClass:into:)`, `append(_:address:xor:into:)`, `append(_:_:into:)`,
    /// ``appendFingerprint(into:)``).
    ///
    /// Why it exists: this is the answer to nearly every Binding request, and the incremental writer spends
    /// about twenty small `ByteBuffer` writes on it (each with its own capacity and uniqueness checks) plus
    /// a length patch per attribute. Here the final size is known up front, so capacity is reserved once,
    /// header and attributes are stored straight into the buffer's memory, the length field is written once
    /// with its final value, and the FINGERPRINT CRC (the same zlib crc32 as ``STUNDecoder/fingerprint(of:upTo:)``)
    /// is taken over those bytes before the writer index moves, once.
    public static func writeBindingSuccess(responseTo request: STUNHeader, address: STUNAddress,
                                           xorMappedAddress: Bool, mappedAddress: Bool, software: [UInt8]?,
                                           fingerprint: Bool, into buffer: inout ByteBuffer) {
        let total = bindingSuccessLength(address: address, xorMappedAddress: xorMappedAddress,
                                         mappedAddress: mappedAddress, software: software, fingerprint: fingerprint)
        let type = STUNMessageType(method: request.type.method, messageClass: .successResponse)
        let tid = request.transactionID
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
            // Unaligned big-endian stores (allowed for trivial types since Swift 5.7).
            let p = raw.baseAddress!
            func store<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
                p.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
            }
            store(type.rawValue, 0)
            store(UInt16(total - STUNDecoder.headerLength), 2)
            store(request.cookie, 4)
            store(tid.high, 8)
            store(tid.low, 16)
            var at = STUNDecoder.headerLength

            // The value layout of STUNAddressCodec.encode, with the same XOR masks.
            func storeAddress(_ attribute: STUNAttributeType, xor: Bool) {
                store(attribute.rawValue, at)
                store(UInt16(address.encodedLength), at + 2)
                store(UInt8(0), at + 4)
                store(address.family, at + 5)
                switch address {
                case .v4(let a, let port):
                    store(xor ? port ^ UInt16(stunMagicCookie >> 16) : port, at + 6)
                    store(xor ? a ^ stunMagicCookie : a, at + 8)
                case .v6(let h, let l, let port):
                    store(xor ? port ^ UInt16(stunMagicCookie >> 16) : port, at + 6)
                    store(xor ? h ^ ((UInt64(stunMagicCookie) << 32) | (tid.high >> 32)) : h, at + 8)
                    store(xor ? l ^ ((tid.high << 32) | UInt64(tid.low)) : l, at + 16)
                }
                at += 4 + address.encodedLength
            }
            if xorMappedAddress { storeAddress(.xorMappedAddress, xor: true) }
            if mappedAddress { storeAddress(.mappedAddress, xor: false) }

            if let software {
                store(STUNAttributeType.software.rawValue, at)
                store(UInt16(software.count), at + 2)
                let padded = (software.count + 3) & ~3
                // Zero the last word first so the 1–3 padding bytes after the copied value are zero.
                if padded > 0 { store(UInt32(0), at + 4 + padded - 4) }
                software.withUnsafeBytes { value in
                    if let base = value.baseAddress { (p + at + 4).copyMemory(from: base, byteCount: value.count) }
                }
                at += 4 + padded
            }

            if fingerprint {
                // The length field already counts FINGERPRINT, as RFC 8489 §14.7 requires.
                let crc = crc32(0, p.assumingMemoryBound(to: UInt8.self), UInt32(at))
                store(STUNAttributeType.fingerprint.rawValue, at)
                store(UInt16(4), at + 2)
                store(UInt32(truncatingIfNeeded: crc) ^ STUNDecoder.fingerprintXOR, at + 4)
                at += 8
            }
            assert(at == total)
            return total
        }
    }
}
