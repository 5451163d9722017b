import Crypto
import Foundation
import NIOCore

/// The key of MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256 (RFC 8489 §9). Key bytes never appear in
/// `description`, so a key cannot leak into a log line by accident.
public struct STUNIntegrityKey: Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Short-term credential (§9.1.1): the OpaqueString-prepared password itself.
    public static func shortTerm(password: String) -> STUNIntegrityKey {
        STUNIntegrityKey(bytes: Array(STUNIntegrity.opaqueString(password).utf8))
    }

    /// Long-term credential (§9.2.2): MD5 or SHA-256 of "username:realm:password" per PASSWORD-ALGORITHM.
    public static func longTerm(username: String, realm: String, password: String,
                                algorithm: STUNPasswordAlgorithm = .md5) -> STUNIntegrityKey {
        let input = Array("\(username):\(STUNIntegrity.opaqueString(realm)):\(STUNIntegrity.opaqueString(password))".utf8)
        switch algorithm {
        case .md5: return STUNIntegrityKey(bytes: Array(Insecure.MD5.hash(data: input)))
        case .sha256: return STUNIntegrityKey(bytes: Array(SHA256.hash(data: input)))
        }
    }

    public var description: String { "STUNIntegrityKey(\(bytes.count) bytes, redacted)" }
}

/// PASSWORD-ALGORITHM values (RFC 8489 §18.5).
public enum STUNPasswordAlgorithm: UInt16, Sendable {
    case md5 = 0x0001
    case sha256 = 0x0002
}

/// MESSAGE-INTEGRITY checks and USERHASH (RFC 8489 §9, §14.4–§14.6).
public enum STUNIntegrity {
    public enum Result: Sendable, Equatable {
        /// No integrity attribute in the message.
        case absent
        /// The MAC verified.
        case valid
        /// The MAC did not verify.
        case invalid
    }

    /// Verifies MESSAGE-INTEGRITY-SHA256 if present, else MESSAGE-INTEGRITY (§9.1.3, §9.2.4: the SHA-256
    /// one wins when both are there), in constant time.
    public static func verify(_ message: STUNMessage, key: STUNIntegrityKey) -> Result {
        let buf = message.bytes
        let base = buf.readerIndex
        if let off = message.messageIntegritySHA256Offset {
            let macLength = Int(buf.getInteger(at: base + off + 2, as: UInt16.self)!)
            let received = buf.getBytes(at: base + off + 4, length: macLength)!
            let mac = hmacSHA256(key: key, buffer: buf, from: base, to: base + off, lengthField: off - 20 + 4 + macLength)
            return constantTimeEqual(Array(mac.prefix(macLength)), received) ? .valid : .invalid
        }
        if let off = message.messageIntegrityOffset {
            let received = buf.getBytes(at: base + off + 4, length: 20)!
            let mac = hmacSHA1(key: key, buffer: buf, from: base, to: base + off, lengthField: off - 20 + 24)
            return constantTimeEqual(mac, received) ? .valid : .invalid
        }
        return .absent
    }

    /// HMAC-SHA1 of `buffer[from..<to]`, optionally with the header's length field replaced.
    static func hmacSHA1(key: STUNIntegrityKey, buffer: ByteBuffer, from: Int, to: Int, lengthField: Int? = nil) -> [UInt8] {
        var h = HMAC<Insecure.SHA1>(key: SymmetricKey(data: key.bytes))
        feed(&h, buffer, from, to, lengthField)
        return Array(h.finalize())
    }

    /// HMAC-SHA256 of `buffer[from..<to]`, optionally with the header's length field replaced.
    static func hmacSHA256(key: STUNIntegrityKey, buffer: ByteBuffer, from: Int, to: Int, lengthField: Int? = nil) -> [UInt8] {
        var h = HMAC<SHA256>(key: SymmetricKey(data: key.bytes))
        feed(&h, buffer, from, to, lengthField)
        return Array(h.finalize())
    }

    private static func feed<H: HashFunction>(_ h: inout HMAC<H>, _ buffer: ByteBuffer, _ from: Int, _ to: Int,
                                              _ lengthField: Int?) {
        buffer.withUnsafeReadableBytes { raw in
            let lo = from - buffer.readerIndex
            let hi = to - buffer.readerIndex
            if let lengthField {
                h.update(data: UnsafeRawBufferPointer(rebasing: raw[lo..<(lo + 2)]))
                let l = [UInt8(truncatingIfNeeded: lengthField >> 8), UInt8(truncatingIfNeeded: lengthField)]
                h.update(data: l)
                h.update(data: UnsafeRawBufferPointer(rebasing: raw[(lo + 4)..<hi]))
            } else {
                h.update(data: UnsafeRawBufferPointer(rebasing: raw[lo..<hi]))
            }
        }
    }

    /// USERHASH (§14.4): SHA-256 of "username:realm" after OpaqueString preparation.
    public static func userhash(username: String, realm: String) -> [UInt8] {
        Array(SHA256.hash(data: Array("\(opaqueString(username)):\(opaqueString(realm))".utf8)))
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// The OpaqueString profile of RFC 8265 as RFC 8489 §9.2.2 uses it: non-ASCII spaces become U+0020
    /// and the result is NFC-normalised. (Prohibited-code-point rejection is left to the credential
    /// source: our credentials are ASCII by construction.)
    public static func opaqueString(_ s: String) -> String {
        if s.utf8.allSatisfy({ $0 < 0x80 }) { return s }
        let spaced = String(String.UnicodeScalarView(s.unicodeScalars.map { scalar in
            scalar.properties.generalCategory == .spaceSeparator ? " " : scalar
        }))
        return spaced.precomposedStringWithCanonicalMapping
    }
}
