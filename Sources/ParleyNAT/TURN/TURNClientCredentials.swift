import NIOCore
import ParleyWire

/// One TURN client's long-term credentials (RFC 8489 §9.2) and what the server's challenges taught it:
/// realm, nonce, the offered PASSWORD-ALGORITHMS and the algorithm picked from them.
///
/// The password is held only until the first challenge names the realm; then both keys
/// (MD5 and SHA-256 of "username:realm:password", §9.2.2) are derived and the password is dropped. Both
/// are kept because each later challenge may or may not offer password algorithms (the server leaves them
/// out when they do not fit its amplification budget). Nothing here prints a password or key.
struct TURNClientCredentials: Sendable, CustomStringConvertible, CustomReflectable {
    let username: String
    let allowsSHA256: Bool
    private var password: String?
    private(set) var realm: String?
    private var md5Key: STUNIntegrityKey?
    private var sha256Key: STUNIntegrityKey?
    /// The nonce in use.
    private(set) var nonce: String?
    /// PASSWORD-ALGORITHMS exactly as it came with the nonce (echoed byte for byte, §9.2.4), if offered.
    private(set) var offeredAlgorithms: [UInt8]?
    /// The algorithm named in PASSWORD-ALGORITHM; nil when none was offered (MD5, unsaid).
    private(set) var algorithm: STUNPasswordAlgorithm?

    init(username: String, password: String, allowsSHA256: Bool) {
        self.username = username
        self.password = password
        self.allowsSHA256 = allowsSHA256
    }

    /// True once a challenge has supplied realm and nonce: requests can carry credentials.
    var isReady: Bool { nonce != nil && md5Key != nil }

    /// The key for the current algorithm.
    var key: STUNIntegrityKey? { algorithm == .sha256 ? sha256Key : md5Key }

    /// MESSAGE-INTEGRITY-SHA256 rather than MESSAGE-INTEGRITY: when SHA-256 is the key's algorithm (the
    /// server offered it, so it implements RFC 8489).
    var usesSHA256MAC: Bool { algorithm == .sha256 }

    /// Learns realm, nonce and password algorithms from a 401 or 438 (RFC 8489 §9.2.5).
    mutating func learn(from challenge: STUNMessage) -> TURNClientError? {
        guard let realmValue = challenge.value(of: .realm), let nonceValue = challenge.value(of: .nonce) else {
            return .badChallenge("a challenge without REALM or NONCE")
        }
        let newRealm = String(buffer: realmValue)
        if let realm, realm != newRealm { return .realmChanged(from: realm, to: newRealm) }
        if realm == nil {
            guard let password else { return .badChallenge("no password to derive keys from") }
            realm = newRealm
            md5Key = .longTerm(username: username, realm: newRealm, password: password, algorithm: .md5)
            sha256Key = .longTerm(username: username, realm: newRealm, password: password, algorithm: .sha256)
            self.password = nil
        }
        if let offered = challenge.value(of: .passwordAlgorithms) {
            let algorithms = Self.parseAlgorithms(offered)
            if allowsSHA256, algorithms.contains(STUNPasswordAlgorithm.sha256.rawValue) {
                algorithm = .sha256
            } else if algorithms.contains(STUNPasswordAlgorithm.md5.rawValue) {
                algorithm = .md5
            } else {
                return .badChallenge("PASSWORD-ALGORITHMS offers no algorithm we may use")
            }
            offeredAlgorithms = Array(offered.readableBytesView)
        } else {
            offeredAlgorithms = nil
            algorithm = nil
        }
        nonce = String(buffer: nonceValue)
        return nil
    }

    /// Appends USERNAME, REALM, NONCE, PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM when offered, then the
    /// MAC. Returns the key used, to verify the answer with, or nil (nothing appended) before a challenge.
    func appendCredentials(_ w: STUNMessageWriter, into buffer: inout ByteBuffer) -> STUNIntegrityKey? {
        guard let realm, let nonce, let key else { return nil }
        w.append(.username, text: username, into: &buffer)
        w.append(.realm, text: realm, into: &buffer)
        w.append(.nonce, text: nonce, into: &buffer)
        if let offeredAlgorithms, let algorithm {
            w.append(.passwordAlgorithms, offeredAlgorithms, into: &buffer)
            // Algorithm (16 bits), parameters length 0 (RFC 8489 §14.12).
            w.append(.passwordAlgorithm, uint32: UInt32(algorithm.rawValue) << 16, into: &buffer)
        }
        if usesSHA256MAC {
            w.appendMessageIntegritySHA256(key: key, into: &buffer)
        } else {
            w.appendMessageIntegrity(key: key, into: &buffer)
        }
        return key
    }

    /// The algorithm numbers in a PASSWORD-ALGORITHMS value (§14.11: algorithm, parameters length,
    /// parameters padded to four), stopping at the first malformed entry.
    static func parseAlgorithms(_ value: ByteBuffer) -> [UInt16] {
        var v = value
        var out: [UInt16] = []
        while let number = v.readInteger(as: UInt16.self), let length = v.readInteger(as: UInt16.self) {
            out.append(number)
            let padded = (Int(length) + 3) & ~3
            guard v.readableBytes >= padded else { break }
            v.moveReaderIndex(forwardBy: padded)
        }
        return out
    }

    var description: String {
        "TURNClientCredentials(username: \(username), realm: \(realm ?? "?"), password and keys redacted)"
    }

    /// Username and realm only, so `dump(_:)` of a client shows no password or key.
    var customMirror: Mirror {
        Mirror(self, children: ["username": username, "realm": realm as Any, "nonce": nonce as Any])
    }
}
