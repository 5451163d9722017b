import Crypto
import Foundation
import ParleyWire

/// Long-term credentials (RFC 8489 §9.2) in the TURN REST form: the username is "EXPIRY:NAME" (unix
/// seconds), the password is base64(HMAC-SHA1(secret, username)), so any node that knows a shared
/// secret admits a client without storing a password. Several secrets are accepted at once so they
/// can be rotated.
///
/// Nonces are stateless (no per-source state before a valid credential): the nonce is an expiry time
/// plus a MAC of it and the client's IP under a per-process key. An expired nonce gets 438.
public struct LongTermAuthenticator: Sendable {
    public let realm: String
    let secrets: [[UInt8]]
    let nonceKey: SymmetricKey
    /// How long a nonce is good for, in seconds.
    public var nonceLifetime: UInt64

    public init(realm: String, secrets: [String], nonceKey: SymmetricKey = SymmetricKey(size: .bits256),
                nonceLifetime: UInt64 = 600) {
        self.realm = realm
        self.secrets = secrets.map { Array($0.utf8) }
        self.nonceKey = nonceKey
        self.nonceLifetime = nonceLifetime
    }

    /// The outcome of checking a request's credentials.
    public enum Verdict: Sendable {
        /// Valid: respond, and protect the response with this key and algorithm.
        case authenticated(username: String, key: STUNIntegrityKey, sha256: Bool)
        /// No or bad credentials: 401 with REALM and a fresh NONCE.
        case challenge
        /// The nonce has expired: 438 with a fresh NONCE.
        case staleNonce
        /// Structurally wrong (e.g. USERNAME without REALM/NONCE): 400.
        case badRequest
    }

    /// RFC 8489 §9.2.4, for a request from `source` at unix time `now`.
    public func verify(_ request: STUNMessage, source: STUNAddress, now: UInt64) -> Verdict {
        let hasMI = request.messageIntegrityOffset != nil || request.messageIntegritySHA256Offset != nil
        guard hasMI else { return .challenge }
        guard let realmValue = request.value(of: .realm), let nonceValue = request.value(of: .nonce) else {
            return .badRequest
        }
        let hasUser = request.contains(.username) || request.contains(.userhash)
        guard hasUser else { return .badRequest }
        guard String(buffer: realmValue) == realm else { return .challenge }
        switch checkNonce(String(buffer: nonceValue), source: source, now: now) {
        case .bad: return .challenge
        case .expired: return .staleNonce
        case .good: break
        }
        // USERHASH is understood but cannot name a REST user (the expiry is inside the hash): challenge.
        guard let userValue = request.value(of: .username) else { return .challenge }
        let username = String(buffer: userValue)
        guard let colon = username.firstIndex(of: ":"), let expiry = UInt64(username[..<colon]), expiry >= now else {
            return .challenge
        }
        let sha256 = request.messageIntegritySHA256Offset != nil
        for secret in secrets {
            let password = Data(HMAC<Insecure.SHA1>.authenticationCode(for: Array(username.utf8),
                                                                       using: SymmetricKey(data: secret)))
                .base64EncodedString()
            let key = STUNIntegrityKey.longTerm(username: username, realm: realm, password: password,
                                                algorithm: sha256 ? .sha256 : .md5)
            if STUNIntegrity.verify(request, key: key) == .valid {
                return .authenticated(username: username, key: key, sha256: sha256)
            }
        }
        return .challenge
    }

    /// The REST password for a username, as a client's credential service would hand it out.
    public static func restPassword(username: String, secret: String) -> String {
        Data(HMAC<Insecure.SHA1>.authenticationCode(for: Array(username.utf8), using: SymmetricKey(data: Array(secret.utf8))))
            .base64EncodedString()
    }

    // MARK: Stateless nonces

    enum NonceCheck { case good, expired, bad }

    /// A nonce valid for ``nonceLifetime`` seconds from `now`, bound to the client's IP: base64url (no
    /// padding) of 4 bytes of expiry and 8 bytes of MAC — 16 characters, short enough that a 401 stays
    /// within the amplification allowance.
    public func makeNonce(source: STUNAddress, now: UInt64) -> String {
        let expiry = UInt32(truncatingIfNeeded: min(now + nonceLifetime, UInt64(UInt32.max)))
        return Self.base64url(bytes(UInt64(expiry)).suffix(4) + bytes(mac(expiry: expiry, source: source)))
    }

    func checkNonce(_ nonce: String, source: STUNAddress, now: UInt64) -> NonceCheck {
        guard nonce.utf8.count == 16, let raw = Self.unbase64url(nonce), raw.count == 12 else { return .bad }
        let expiry = raw.prefix(4).reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        let expected = bytes(mac(expiry: expiry, source: source))
        guard STUNIntegrity.constantTimeEqual(Array(raw.suffix(8)), expected) else { return .bad }
        return UInt64(expiry) >= now ? .good : .expired
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func unbase64url(_ text: String) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { Array($0) }
    }

    private func mac(expiry: UInt32, source: STUNAddress) -> UInt64 {
        var input = Array(bytes(UInt64(expiry)).suffix(4))
        switch source.withPort(0) {
        case .v4(let a, _): input += bytes(UInt64(a)).suffix(4)
        case .v6(let h, let l, _): input += bytes(h) + bytes(l)
        }
        let code = Array(HMAC<SHA256>.authenticationCode(for: input, using: nonceKey))
        return code.prefix(8).reduce(0) { ($0 << 8) | UInt64($1) }
    }

    private func bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * $0)) } }
}
