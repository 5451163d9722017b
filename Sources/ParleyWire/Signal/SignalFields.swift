/// Field kinds of the signaling protocol (docs/PROTOCOL.md §3.1), each a validated value type so that a
/// frame that parsed cannot carry a field that breaks the rules.

/// A user or device name: `[a-z0-9][a-z0-9._-]{0,31}`.
public struct SignalName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    public init?(_ text: some StringProtocol) {
        let u = text.utf8
        guard (1...32).contains(u.count), let first = u.first, Self.isAlnum(first),
            u.allSatisfy({ Self.isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else { return nil }
        self.text = String(text)
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }

    public var description: String { text }
    public static func < (a: SignalName, b: SignalName) -> Bool { a.text < b.text }
}

/// A call or message id: a UUID in lowercase 8-4-4-4-12 hex form, chosen by the client.
public struct SignalID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    public init?(_ text: some StringProtocol) {
        let u = text.utf8
        guard u.count == 36 else { return nil }
        for (i, c) in u.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
            } else {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(c)
                else { return nil }
            }
        }
        self.text = String(text)
    }

    /// A fresh random id (version 4 UUID).
    public static func random() -> SignalID {
        var g = SystemRandomNumberGenerator()
        var b = (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
        b[6] = (b[6] & 0x0F) | 0x40
        b[8] = (b[8] & 0x3F) | 0x80
        let hex = b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4),
                     hex.dropFirst(20)]
        return SignalID(parts.joined(separator: "-"))!
    }

    public var description: String { text }
    public static func < (a: SignalID, b: SignalID) -> Bool { a.text < b.text }
}

/// Binary data as base64url without padding (RFC 4648 §5), validated but kept as text: the server
/// relays offers, answers and candidates without ever decoding them.
public struct SignalBlob: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// Accepts valid unpadded base64url of at most `maxBytes` decoded bytes.
    public init?(_ text: some StringProtocol, maxBytes: Int = 16 * 1024) {
        let u = text.utf8
        guard u.count % 4 != 1, u.count <= (maxBytes * 4 + 2) / 3 else { return nil }
        guard Base64URL.isAlphabet(u) else { return nil }
        // The last character must not carry bits beyond the data (one spelling per byte string).
        if !u.isEmpty {
            let last = u[u.index(u.startIndex, offsetBy: u.count - 1)]
            let v = Base64URL.value(of: last)!
            switch u.count % 4 {
            case 2: guard v & 0x0F == 0 else { return nil }
            case 3: guard v & 0x03 == 0 else { return nil }
            default: break
            }
        }
        self.text = String(text)
    }

    public init(bytes: some Sequence<UInt8>) {
        self.text = Base64URL.encode(Array(bytes))
    }

    /// The decoded bytes.
    public var bytes: [UInt8] { Base64URL.decode(text)! }
    public var byteCount: Int { text.utf8.count * 3 / 4 }

    /// Blobs can be long; the description shows only their size, so they never end up in a log line.
    public var description: String { "<\(byteCount) bytes>" }
}

/// base64url without padding.
public enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// 0–63 for the alphabet's characters, 0xFF for every other byte.
    private static let values: [UInt8] = (0...255).map { value(of: UInt8($0)) ?? 0xFF }

    /// True when every byte is one of the alphabet's 64 characters. Blobs of several hundred characters
    /// come with every offer and answer: a table over contiguous bytes, not a switch per generic element.
    static func isAlphabet<U: Sequence<UInt8>>(_ bytes: U) -> Bool {
        let fast = bytes.withContiguousStorageIfAvailable { buffer in
            values.withUnsafeBufferPointer { table in
                var bad: UInt8 = 0
                for c in buffer { bad |= table[Int(c)] & 0x80 }
                return bad == 0
            }
        }
        if let fast { return fast }
        return bytes.allSatisfy { value(of: $0) != nil }
    }

    static func value(of c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)]]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes unpadded base64url; nil for any other character or an impossible length.
    public static func decode(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(u.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in u {
            guard let v = value(of: c) else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}

/// Non-negative decimal integers without sign or leading zeros, at most 18 digits.
enum SignalInt {
    static func parse(_ s: Substring) -> UInt64? {
        let u = s.utf8
        guard (1...18).contains(u.count), u.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        if u.count > 1 && u.first == UInt8(ascii: "0") { return nil }
        return UInt64(s)
    }
}
