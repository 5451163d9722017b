import Crypto
import Foundation
import ParleyWire

/// Long-term credentials (RFC 8489 §9.2), of two kinds that may be configured together:
///
/// - TURN REST ephemeral credentials: the username is "EXPIRY:NAME" (unix seconds), the password is
///   base64(HMAC-SHA1(secret, username)), so any node that knows a shared secret admits a client without
///   storing anything per user. Several secrets are accepted at once so they can be rotated.
/// - Static users (``StaticUser``): a name and the two derived keys MD5/SHA-256("name:realm:password").
///   Only the keys are stored, never the password.
///
/// Nonces are stateless (no per-source state before a valid credential): the nonce is an expiry time
/// plus a MAC of it and the client's IP under a per-process key. An expired nonce gets 438.
///
/// Password algorithms (§9.2.4): a nonce handed out with ``makeNonce(source:now:advertiseAlgorithms:)``
/// advertising algorithms starts with the RFC's "obMatJos2" cookie and the password-algorithms feature
/// bit, and the challenge carries PASSWORD-ALGORITHMS (SHA-256, MD5). The key is then derived with the
/// request's PASSWORD-ALGORITHM (MD5 when it names none); which MAC protects the message
/// (MESSAGE-INTEGRITY or -SHA256) is the client's separate choice, and the answer uses the same one.
public struct LongTermAuthenticator: Sendable {
    public let realm: String
    let secrets: [[UInt8]]
    let nonceKey: SymmetricKey
    /// How long a nonce is good for, in seconds.
    public var nonceLifetime: UInt64
    /// Static users by name.
    let users: [String: StaticUser]
    /// Static users by USERHASH (§14.4), so a client may keep its name off the wire.
    let usersByHash: [[UInt8]: String]

    /// A user with a fixed password, known only by its derived keys.
    public struct StaticUser: Sendable, Hashable {
        public let name: String
        public let md5Key: [UInt8]
        public let sha256Key: [UInt8]

        public init(name: String, md5Key: [UInt8], sha256Key: [UInt8]) {
            self.name = name
            self.md5Key = md5Key
            self.sha256Key = sha256Key
        }

        /// Derives both keys from a password (done once, by `parley turn-user`, never at run time).
        public init(name: String, realm: String, password: String) {
            self.name = name
            self.md5Key = STUNIntegrityKey.longTerm(username: name, realm: realm, password: password, algorithm: .md5).bytes
            self.sha256Key = STUNIntegrityKey.longTerm(username: name, realm: realm, password: password, algorithm: .sha256).bytes
        }

        func key(_ algorithm: STUNPasswordAlgorithm) -> STUNIntegrityKey {
            STUNIntegrityKey(bytes: algorithm == .md5 ? md5Key : sha256Key)
        }
    }

    public init(realm: String, secrets: [String], users: [StaticUser] = [],
                nonceKey: SymmetricKey = SymmetricKey(size: .bits256), nonceLifetime: UInt64 = 600) {
        self.realm = realm
        self.secrets = secrets.map { Array($0.utf8) }
        self.nonceKey = nonceKey
        self.nonceLifetime = nonceLifetime
        var byName: [String: StaticUser] = [:]
        var byHash: [[UInt8]: String] = [:]
        for u in users {
            byName[u.name] = u
            byHash[STUNIntegrity.userhash(username: u.name, realm: realm)] = u.name
        }
        self.users = byName
        self.usersByHash = byHash
    }

    /// The outcome of checking a request's credentials.
    public enum Verdict: Sendable {
        /// Valid: respond, and protect the response with this key; `sha256` says the request used
        /// MESSAGE-INTEGRITY-SHA256 (so must the answer).
        case authenticated(username: String, key: STUNIntegrityKey, sha256: Bool)
        /// No or bad credentials: 401 with REALM and a fresh NONCE.
        case challenge
        /// The nonce has expired: 438 with a fresh NONCE.
        case staleNonce
        /// Structurally wrong (e.g. USERNAME without REALM/NONCE, PASSWORD-ALGORITHMS tampered): 400.
        case badRequest
    }

    /// The PASSWORD-ALGORITHMS value this server advertises: SHA-256 first (preferred), then MD5.
    public static let passwordAlgorithmsValue: [UInt8] = [0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]

    /// Bytes of a 401/438 challenge: the 20-byte header, ERROR-CODE with an empty reason (8), REALM,
    /// NONCE (``makeNonce(source:now:advertiseAlgorithms:)``: 16 characters, or 29 with the feature
    /// cookie), PASSWORD-ALGORITHMS when advertised, FINGERPRINT when the request had one. Both cores
    /// weigh it against the amplification budget before writing, and the configuration refuses an
    /// allowance too small for the bare challenge to the smallest request, so the two cannot disagree.
    public static func challengeLength(realm: String, advertiseAlgorithms: Bool, fingerprint: Bool) -> Int {
        func padded(_ n: Int) -> Int { (n + 3) & ~3 }
        let nonce = advertiseAlgorithms ? featureCookie.utf8.count + passwordAlgorithmsFeature.utf8.count + 16 : 16
        return 20 + 8 + (4 + padded(realm.utf8.count)) + (4 + padded(nonce))
            + (advertiseAlgorithms ? 4 + passwordAlgorithmsValue.count : 0) + (fingerprint ? 8 : 0)
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
        let advertised: Bool
        switch checkNonce(String(buffer: nonceValue), source: source, now: now) {
        case .bad: return .challenge
        case .expired: return .staleNonce
        case .good(let features): advertised = features
        }
        // Password algorithm (§9.2.4 steps on PASSWORD-ALGORITHMS / PASSWORD-ALGORITHM).
        let algorithms = request.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) }
        let chosen = request.value(of: .passwordAlgorithm)
        var algorithm = STUNPasswordAlgorithm.md5
        if algorithms != nil || chosen != nil {
            guard let chosen, chosen.readableBytes >= 4, let raw = chosen.getInteger(at: chosen.readerIndex, as: UInt16.self),
                let value = STUNPasswordAlgorithm(rawValue: raw)
            else { return .badRequest }
            // With the feature bit set, the client must echo our list unchanged (a downgrade check).
            if advertised || algorithms != nil {
                guard let algorithms, algorithms == Self.passwordAlgorithmsValue else { return .badRequest }
            }
            algorithm = value
        }
        let sha256 = request.messageIntegritySHA256Offset != nil
        // USERHASH names a static user (a REST name cannot be hashed: its expiry is inside).
        if request.value(of: .username) == nil, let hash = request.value(of: .userhash) {
            guard let name = usersByHash[Array(hash.readableBytesView)], let user = users[name] else { return .challenge }
            let key = user.key(algorithm)
            return STUNIntegrity.verify(request, key: key) == .valid ? .authenticated(username: name, key: key, sha256: sha256) : .challenge
        }
        guard let userValue = request.value(of: .username) else { return .challenge }
        let username = String(buffer: userValue)
        if let user = users[username] {
            let key = user.key(algorithm)
            return STUNIntegrity.verify(request, key: key) == .valid ? .authenticated(username: username, key: key, sha256: sha256) : .challenge
        }
        guard let colon = username.firstIndex(of: ":"), let expiry = UInt64(username[..<colon]), expiry >= now else {
            return .challenge
        }
        for secret in secrets {
            let password = Data(HMAC<Insecure.SHA1>.authenticationCode(for: Array(username.utf8),
                                                                       using: SymmetricKey(data: secret)))
                .base64EncodedString()
            let key = STUNIntegrityKey.longTerm(username: username, realm: realm, password: password, algorithm: algorithm)
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

    enum NonceCheck: Equatable { case good(advertised: Bool), expired, bad }

    /// RFC 8489 §9.2: the nonce cookie that announces security features, and the 24 feature bits
    /// (base64, 4 characters) with only "password algorithms" (the most significant bit) set.
    static let featureCookie = "obMatJos2"
    static let passwordAlgorithmsFeature = "gAAA"

    /// A nonce valid for ``nonceLifetime`` seconds from `now`, bound to the client's IP: base64url (no
    /// padding) of 4 bytes of expiry and 8 bytes of MAC — 16 characters, short enough that a 401 stays
    /// within the amplification allowance. With `advertiseAlgorithms` it is prefixed by the feature
    /// cookie and bits (29 characters); the MAC covers that choice, so it cannot be stripped.
    public func makeNonce(source: STUNAddress, now: UInt64, advertiseAlgorithms: Bool = false) -> String {
        let expiry = UInt32(truncatingIfNeeded: min(now + nonceLifetime, UInt64(UInt32.max)))
        let body = Self.base64url(bytes(UInt64(expiry)).suffix(4) + bytes(mac(expiry: expiry, source: source, features: advertiseAlgorithms)))
        return advertiseAlgorithms ? Self.featureCookie + Self.passwordAlgorithmsFeature + body : body
    }

    func checkNonce(_ nonce: String, source: STUNAddress, now: UInt64) -> NonceCheck {
        var body = Substring(nonce)
        let features = nonce.hasPrefix(Self.featureCookie + Self.passwordAlgorithmsFeature)
        if features { body = body.dropFirst(Self.featureCookie.utf8.count + 4) }
        guard body.utf8.count == 16, let raw = Self.unbase64url(String(body)), raw.count == 12 else { return .bad }
        let expiry = raw.prefix(4).reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        let expected = bytes(mac(expiry: expiry, source: source, features: features))
        guard STUNIntegrity.constantTimeEqual(Array(raw.suffix(8)), expected) else { return .bad }
        return UInt64(expiry) >= now ? .good(advertised: features) : .expired
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

    private func mac(expiry: UInt32, source: STUNAddress, features: Bool) -> UInt64 {
        var input = Array(bytes(UInt64(expiry)).suffix(4))
        switch source.withPort(0) {
        case .v4(let a, _): input += bytes(UInt64(a)).suffix(4)
        case .v6(let h, let l, _): input += bytes(h) + bytes(l)
        }
        if features { input.append(1) }
        let code = Array(HMAC<SHA256>.authenticationCode(for: input, using: nonceKey))
        return code.prefix(8).reduce(0) { ($0 << 8) | UInt64($1) }
    }

    private func bytes(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> UInt64(56 - 8 * $0)) } }
}
