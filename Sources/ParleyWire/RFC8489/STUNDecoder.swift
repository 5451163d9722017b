import CZlib
import NIOCore

/// Turns bytes into a ``STUNMessage``, validating structure as RFC 8489 §6.3 asks, or says precisely why
/// not (``STUNDecodeError``). Allocation-free and total: every input ends in a message or an error.
public enum STUNDecoder {
    public static let headerLength = 20
    /// More attributes than this in one message is refused with 400: no legitimate request comes close.
    public static let maxAttributes = 128
    /// XOR constant of the FINGERPRINT CRC (RFC 8489 §14.7): "STUN".
    public static let fingerprintXOR: UInt32 = 0x5354_554E

    /// For stream transports: the total length of the message starting at the reader index, once its
    /// first 4 bytes are there; `nil` if fewer bytes are available. The caller checks the result
    /// against its frame limit before waiting for the rest.
    public static func frameLength(_ buffer: ByteBuffer) -> Int? {
        guard let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return nil }
        return headerLength + Int(length)
    }

    /// True if the first byte could start a STUN message (top two bits zero, RFC 8489 §5). TURN's
    /// ChannelData starts with 0b01 (RFC 8656 §12), which is how the two are told apart.
    public static func looksLikeSTUN(_ firstByte: UInt8) -> Bool { firstByte & 0xC0 == 0 }

    /// Decodes one whole message: `buffer`'s readable bytes must be exactly the message (a datagram, or
    /// a frame cut by ``frameLength(_:)``).
    ///
    /// The bytes are read through one `withUnsafeReadableBytes`, not a `getInteger` per field: each of
    /// those is a bounds check plus a dynamic exclusivity check on the buffer's storage, and this runs for
    /// every datagram the server receives.
    public static func decode(_ buffer: ByteBuffer) throws(STUNDecodeError) -> STUNMessage {
        try buffer.withUnsafeReadableBytes { raw in decode(raw, buffer: buffer) }.get()
    }

    private static func decode(_ raw: UnsafeRawBufferPointer, buffer: ByteBuffer) -> Result<STUNMessage, STUNDecodeError> {
        @inline(__always) func u16(_ at: Int) -> UInt16 { UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        @inline(__always) func u32(_ at: Int) -> UInt32 { UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        let total = raw.count
        guard total >= headerLength else { return .failure(STUNDecodeError(.notSTUN)) }
        let typeField = u16(0)
        let lengthField = u16(2)
        guard typeField & 0xC000 == 0, lengthField & 0x3 == 0, Int(lengthField) + headerLength == total else {
            return .failure(STUNDecodeError(.notSTUN))
        }
        let cookie = u32(4)
        let tidHigh = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let tidLow = u32(16)

        let header = STUNHeader(
            type: STUNMessageType(rawValue: typeField), length: lengthField, cookie: cookie,
            transactionID: STUNTransactionID(high: tidHigh, low: tidLow))

        var offset = headerLength
        var count = 0
        var miOffset: Int?
        var mi256Offset: Int?
        var fpOffset: Int?
        var significantEnd = total
        while offset < total {
            guard offset + 4 <= total else { return .failure(STUNDecodeError(.attributeOverrun)) }
            let t = STUNAttributeType(rawValue: u16(offset))
            let l = Int(u16(offset + 2))
            let padded = (l + 3) & ~3
            guard offset + 4 + padded <= total else { return .failure(STUNDecodeError(.attributeOverrun, attribute: t)) }
            if fpOffset != nil { return .failure(STUNDecodeError(.attributeAfterFingerprint, attribute: t)) }
            count += 1
            guard count <= maxAttributes else { return .failure(STUNDecodeError(.tooManyAttributes)) }
            switch t {
            case .messageIntegrity where miOffset == nil && mi256Offset == nil:
                guard l == 20 else { return .failure(STUNDecodeError(.badAttributeValue, attribute: t)) }
                miOffset = offset
                significantEnd = min(significantEnd, offset)
            case .messageIntegritySHA256 where mi256Offset == nil:
                // RFC 8489 §14.6: 16 to 32 bytes, a multiple of 4.
                guard l >= 16, l <= 32, l % 4 == 0 else { return .failure(STUNDecodeError(.badAttributeValue, attribute: t)) }
                mi256Offset = offset
                significantEnd = min(significantEnd, offset)
            case .fingerprint:
                guard l == 4 else { return .failure(STUNDecodeError(.badAttributeValue, attribute: t)) }
                fpOffset = offset
            default:
                break
            }
            offset += 4 + padded
        }

        if let fp = fpOffset {
            let expected = u32(fp + 4)
            guard fingerprint(of: raw, upTo: fp) == expected else { return .failure(STUNDecodeError(.badFingerprint)) }
        }

        return .success(STUNMessage(
            header: header, bytes: buffer, attributeCount: count, messageIntegrityOffset: miOffset,
            messageIntegritySHA256Offset: mi256Offset, fingerprintOffset: fpOffset, significantEnd: significantEnd))
    }

    /// CRC-32 of the first `end` bytes of the message XOR 0x5354554e. The header's length field is
    /// taken as it stands, which is right when FINGERPRINT is the last attribute.
    public static func fingerprint(of buffer: ByteBuffer, upTo end: Int) -> UInt32 {
        buffer.withUnsafeReadableBytes { raw in fingerprint(of: raw, upTo: end) }
    }

    static func fingerprint(of raw: UnsafeRawBufferPointer, upTo end: Int) -> UInt32 {
        let crc = crc32(0, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(end))
        return UInt32(truncatingIfNeeded: crc) ^ fingerprintXOR
    }
}
