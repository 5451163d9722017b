import NIOCore

/// MAPPED-ADDRESS (RFC 8489 §14.1) and XOR-MAPPED-ADDRESS (§14.2) value encoding, shared by every
/// attribute of the same shape (ALTERNATE-SERVER, RESPONSE-ORIGIN, OTHER-ADDRESS, XOR-PEER-ADDRESS…).
public enum STUNAddressCodec {
    /// Decodes an address value. Throws `badAttributeValue` for a wrong length or unknown family.
    public static func decode(_ value: ByteBuffer, xor: Bool, header: STUNHeader) throws(STUNDecodeError) -> STUNAddress {
        let base = value.readerIndex
        guard value.readableBytes >= 4, let family = value.getInteger(at: base + 1, as: UInt8.self),
            var port = value.getInteger(at: base + 2, as: UInt16.self)
        else { throw STUNDecodeError(.badAttributeValue) }
        if xor { port ^= UInt16(stunMagicCookie >> 16) }
        switch family {
        case 0x01:
            guard value.readableBytes == 8, var a = value.getInteger(at: base + 4, as: UInt32.self) else {
                throw STUNDecodeError(.badAttributeValue)
            }
            if xor { a ^= stunMagicCookie }
            return .v4(a, port: port)
        case 0x02:
            guard value.readableBytes == 20, var h = value.getInteger(at: base + 4, as: UInt64.self),
                var l = value.getInteger(at: base + 12, as: UInt64.self)
            else { throw STUNDecodeError(.badAttributeValue) }
            if xor {
                h ^= (UInt64(stunMagicCookie) << 32) | (header.transactionID.high >> 32)
                l ^= (header.transactionID.high << 32) | UInt64(header.transactionID.low)
            }
            return .v6(h, l, port: port)
        default:
            throw STUNDecodeError(.badAttributeValue)
        }
    }

    /// Writes an address value (without the attribute header).
    public static func encode(_ address: STUNAddress, xor: Bool, transactionID: STUNTransactionID,
                              into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(address.family)
        switch address {
        case .v4(let a, let p):
            buffer.writeInteger(xor ? p ^ UInt16(stunMagicCookie >> 16) : p)
            buffer.writeInteger(xor ? a ^ stunMagicCookie : a)
        case .v6(let h, let l, let p):
            buffer.writeInteger(xor ? p ^ UInt16(stunMagicCookie >> 16) : p)
            if xor {
                buffer.writeInteger(h ^ ((UInt64(stunMagicCookie) << 32) | (transactionID.high >> 32)))
                buffer.writeInteger(l ^ ((transactionID.high << 32) | UInt64(transactionID.low)))
            } else {
                buffer.writeInteger(h)
                buffer.writeInteger(l)
            }
        }
    }
}
