/// The 96-bit transaction ID of RFC 8489 §5, stored inline (no allocation).
///
/// RFC 3489 clients have no magic cookie and a 128-bit transaction ID; the first 32 bits of theirs
/// live in ``STUNHeader/cookie`` and are echoed back unchanged.
public struct STUNTransactionID: Sendable, Hashable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt32

    public init(high: UInt64, low: UInt32) {
        self.high = high
        self.low = low
    }

    /// A fresh random transaction ID, as a client needs for each new transaction.
    public static func random() -> STUNTransactionID {
        var g = SystemRandomNumberGenerator()
        return STUNTransactionID(high: g.next(), low: g.next())
    }

    /// The 12 bytes in wire order.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(12)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: low >> UInt32(shift))) }
        return out
    }

    public var description: String {
        bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
    }
}
