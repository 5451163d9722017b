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
    public static func decode(_ buffer: ByteBuffer) throws(STUNDecodeError) -> STUNMessage {
        let total = buffer.readableBytes
        let base = buffer.readerIndex
        guard total >= headerLength,
            let typeField = buffer.getInteger(at: base, as: UInt16.self),
            typeField & 0xC000 == 0,
            let lengthField = buffer.getInteger(at: base + 2, as: UInt16.self),
            lengthField & 0x3 == 0,
            Int(lengthField) + headerLength == total,
            let cookie = buffer.getInteger(at: base + 4, as: UInt32.self),
            let tidHigh = buffer.getInteger(at: base + 8, as: UInt64.self),
            let tidLow = buffer.getInteger(at: base + 16, as: UInt32.self)
        else { throw STUNDecodeError(.notSTUN) }

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
            guard offset + 4 <= total else { throw STUNDecodeError(.attributeOverrun) }
            let t = STUNAttributeType(rawValue: buffer.getInteger(at: base + offset, as: UInt16.self)!)
            let l = Int(buffer.getInteger(at: base + offset + 2, as: UInt16.self)!)
            let padded = (l + 3) & ~3
            guard offset + 4 + padded <= total else { throw STUNDecodeError(.attributeOverrun, attribute: t) }
            if fpOffset != nil { throw STUNDecodeError(.attributeAfterFingerprint, attribute: t) }
            count += 1
            guard count <= maxAttributes else { throw STUNDecodeError(.tooManyAttributes) }
            switch t {
            case .messageIntegrity where miOffset == nil && mi256Offset == nil:
                guard l == 20 else { throw STUNDecodeError(.badAttributeValue, attribute: t) }
                miOffset = offset
                significantEnd = min(significantEnd, offset)
            case .messageIntegritySHA256 where mi256Offset == nil:
                // RFC 8489 §14.6: 16 to 32 bytes, a multiple of 4.
                guard l >= 16, l <= 32, l % 4 == 0 else { throw STUNDecodeError(.badAttributeValue, attribute: t) }
                mi256Offset = offset
                significantEnd = min(significantEnd, offset)
            case .fingerprint:
                guard l == 4 else { throw STUNDecodeError(.badAttributeValue, attribute: t) }
                fpOffset = offset
            default:
                break
            }
            offset += 4 + padded
        }

        if let fp = fpOffset {
            let expected = buffer.getInteger(at: base + fp + 4, as: UInt32.self)!
            guard fingerprint(of: buffer, upTo: fp) == expected else { throw STUNDecodeError(.badFingerprint) }
        }

        return STUNMessage(
            header: header, bytes: buffer, attributeCount: count, messageIntegrityOffset: miOffset,
            messageIntegritySHA256Offset: mi256Offset, fingerprintOffset: fpOffset, significantEnd: significantEnd)
    }

    /// CRC-32 of the first `end` bytes of the message XOR 0x5354554e. The header's length field is
    /// taken as it stands, which is right when FINGERPRINT is the last attribute.
    public static func fingerprint(of buffer: ByteBuffer, upTo end: Int) -> UInt32 {
        buffer.withUnsafeReadableBytes { raw in
            let crc = crc32(0, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(end))
            return UInt32(truncatingIfNeeded: crc) ^ fingerprintXOR
        }
    }
}
