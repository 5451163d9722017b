import Crypto
import Foundation
import ParleyWire

/// A user's own identity: the Ed25519 key that certifies the user's devices by signing their
/// ``DeviceList`` (docs/PROTOCOL.md §3.8). Made by the user's first device and kept by it (``UserKeyFile``,
/// mode 0600; movable to another device through a ``RecoveryFile``). The server never holds it, so it
/// cannot produce a list other clients accept.
public struct UserIdentity: Sendable {
    /// Whose key this is.
    public let user: SignalName
    /// The private key.
    public let signingKey: Curve25519.Signing.PrivateKey

    public init(user: SignalName, signingKey: Curve25519.Signing.PrivateKey) {
        self.user = user
        self.signingKey = signingKey
    }

    /// A fresh user key from the system's random source.
    public static func generate(user: SignalName) -> UserIdentity {
        UserIdentity(user: user, signingKey: Curve25519.Signing.PrivateKey())
    }

    /// The public key (32 bytes) that clients pin.
    public var publicKey: Data { signingKey.publicKey.rawRepresentation }

    /// For people: the first 16 bytes of SHA-256 of the public key as hex in groups of four.
    public var fingerprint: String { UserIdentity.fingerprint(of: publicKey) }

    /// The fingerprint of a user public key (see ``fingerprint``).
    public static func fingerprint(of publicKey: Data) -> String { DevicePublicBundle.fingerprint(of: publicKey) }
}

/// The user key on disk, a text file readable only by its owner:
///
/// ```
/// parley-user-key v1
/// user <name>
/// ed25519 <base64url, no padding, of the 32-byte Ed25519 private key>
/// ```
/// Written and read as ``KeyFile`` writes and reads device keys (atomic, `0600`, refused when group or
/// others may read it).
public enum UserKeyFile {
    public static let header = "parley-user-key v1"

    public static func write(_ identity: UserIdentity, to path: String, force: Bool = false) throws {
        try KeyFile.writeSecret(Array(render(identity).utf8), to: path, force: force)
    }

    public static func read(from path: String) throws -> UserIdentity {
        try parse(KeyFile.readSecret(from: path), path: path)
    }

    static func render(_ identity: UserIdentity) -> String {
        "\(header)\nuser \(identity.user)\ned25519 \(Base64URL.encode(identity.signingKey.rawRepresentation))\n"
    }

    /// Parses the file's bytes (no I/O).
    public static func parse(_ bytes: [UInt8], path: String) throws -> UserIdentity {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 4, lines[3].isEmpty, lines[0] == Substring(header) else {
            throw KeyFileError.malformedKeyFile(path: path, line: nil, "expected '\(header)', a user line and an ed25519 line")
        }
        guard lines[1].hasPrefix("user "), let user = SignalName(String(lines[1].dropFirst(5))) else {
            throw KeyFileError.malformedKeyFile(path: path, line: 2, "expected 'user <name>'")
        }
        guard lines[2].hasPrefix("ed25519 "), let raw = Base64URL.decode(lines[2].dropFirst(8)), raw.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { throw KeyFileError.malformedKeyFile(path: path, line: 3, "expected 'ed25519 <32-byte key>'") }
        return UserIdentity(user: user, signingKey: key)
    }
}

/// The user key encrypted for safe keeping, to move it to another device or recover it. No password: the
/// file is sealed (ChaCha20-Poly1305) under a key derived (HKDF-SHA256) from a random 20-byte *recovery
/// code* printed once when the file is made, 32 base32 letters in groups of four. The file alone, or a
/// server holding it, learns nothing.
///
/// ```
/// parley-user-recovery v1
/// <base64url of nonce (12) || ciphertext || tag (16)>
/// ```
/// Plaintext: the ``UserKeyFile`` text. AAD: the header line.
public enum RecoveryFile {
    public static let header = "parley-user-recovery v1"
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    /// Seals `identity`; returns the file's text and the recovery code to show once.
    public static func seal(_ identity: UserIdentity) throws -> (file: String, code: String) {
        var secret = [UInt8](repeating: 0, count: 20)
        var rng = SystemRandomNumberGenerator()
        for i in secret.indices { secret[i] = UInt8.random(in: 0...255, using: &rng) }
        let code = encode(secret)
        let box = try ChaChaPoly.seal(
            Data(UserKeyFile.render(identity).utf8), using: key(secret), authenticating: Data(header.utf8))
        return ("\(header)\n\(Base64URL.encode(box.combined))\n", code)
    }

    /// Opens a recovery file with its code (spaces, dashes and case do not matter).
    public static func open(_ text: String, code: String) throws -> UserIdentity {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 3, lines[2].isEmpty, lines[0] == Substring(header), let combined = Base64URL.decode(lines[1]) else {
            throw KeyFileError.malformedKeyFile(path: "recovery file", line: nil, "not a '\(header)' file")
        }
        guard let secret = decode(code) else {
            throw KeyFileError.malformedKeyFile(path: "recovery code", line: nil, "a recovery code is 32 letters A-Z and digits 2-7")
        }
        guard let box = try? ChaChaPoly.SealedBox(combined: combined),
            let plain = try? ChaChaPoly.open(box, using: key(secret), authenticating: Data(header.utf8))
        else { throw KeyFileError.malformedKeyFile(path: "recovery file", line: nil, "the code does not open this file") }
        return try UserKeyFile.parse(Array(plain), path: "recovery file")
    }

    static func key(_ secret: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), info: Data("parley user recovery v1".utf8), outputByteCount: 32)
    }

    /// 20 bytes as 32 base32 letters, groups of four joined by dashes.
    static func encode(_ bytes: [UInt8]) -> String {
        var bits = 0
        var value = 0
        var out: [Character] = []
        for byte in bytes {
            value = value << 8 | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(value >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        return stride(from: 0, to: out.count, by: 4).map { String(out[$0..<min($0 + 4, out.count)]) }.joined(separator: "-")
    }

    static func decode(_ code: String) -> [UInt8]? {
        let letters = code.uppercased().filter { $0 != "-" && $0 != " " }
        guard letters.count == 32 else { return nil }
        var bits = 0
        var value = 0
        var out: [UInt8] = []
        for letter in letters {
            guard let index = alphabet.firstIndex(of: letter) else { return nil }
            value = (value << 5 | index) & 0xFFFF
            bits += 5
            if bits >= 8 {
                out.append(UInt8((value >> (bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return out.count == 20 ? out : nil
    }
}
