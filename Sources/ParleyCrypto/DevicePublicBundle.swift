import Crypto
import Foundation

/// What a device publishes about itself: its Ed25519 identity key, its X25519 key-agreement key, and
/// the identity key's signature over the key-agreement key.
///
/// The signature covers the ASCII bytes `parley-device-v1` followed by the 32 X25519 public key bytes
/// (``signedMessage(agreementKey:)``), so it cannot be replayed as a signature in any other context.
///
/// Printable form (``encoded``): `parley1.` followed by base64url without padding of
/// `ed25519 public (32) || x25519 public (32) || signature (64)`. ``init(encoded:)`` accepts only
/// that exact, canonical form and only with a signature that verifies.
public struct DevicePublicBundle: Sendable, Hashable {
    /// Prefix of the printable form, including the version.
    public static let prefix = "parley1."
    /// Domain separator that starts every signed message.
    public static let signatureDomain = "parley-device-v1"
    /// Length of each raw public key.
    public static let publicKeyLength = 32
    /// Length of an Ed25519 signature.
    public static let signatureLength = 64
    /// Length of the decoded payload of the printable form.
    public static let encodedPayloadLength = 2 * publicKeyLength + signatureLength

    /// Raw Ed25519 identity public key (32 bytes).
    public let signingKey: Data
    /// Raw X25519 key-agreement public key (32 bytes).
    public let agreementKey: Data
    /// Ed25519 signature by ``signingKey`` over ``signedMessage(agreementKey:)`` (64 bytes).
    public let signature: Data

    /// Assembles a bundle from raw parts without checking it; call ``verify()`` before trusting it.
    public init(signingKey: Data, agreementKey: Data, signature: Data) {
        self.signingKey = signingKey
        self.agreementKey = agreementKey
        self.signature = signature
    }

    /// The exact bytes the identity key signs: `"parley-device-v1" || agreementKey`.
    public static func signedMessage(agreementKey: Data) -> Data {
        var message = Data(signatureDomain.utf8)
        message.append(agreementKey)
        return message
    }

    /// True when every part has the right length, both keys parse, and the signature verifies.
    public func verify() -> Bool {
        guard signingKey.count == Self.publicKeyLength,
            agreementKey.count == Self.publicKeyLength,
            signature.count == Self.signatureLength,
            let identity = try? Curve25519.Signing.PublicKey(rawRepresentation: signingKey),
            (try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: agreementKey)) != nil
        else { return false }
        return identity.isValidSignature(signature, for: Self.signedMessage(agreementKey: agreementKey))
    }

    /// The identity key as a swift-crypto key, when it has the right length.
    public var signingPublicKey: Curve25519.Signing.PublicKey? {
        try? Curve25519.Signing.PublicKey(rawRepresentation: signingKey)
    }

    /// The key-agreement key as a swift-crypto key, when it has the right length.
    public var agreementPublicKey: Curve25519.KeyAgreement.PublicKey? {
        try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: agreementKey)
    }

    // MARK: Printable form

    /// `parley1.<base64url-no-padding(signingKey || agreementKey || signature)>`.
    public var encoded: String {
        var payload = Data(capacity: Self.encodedPayloadLength)
        payload.append(signingKey)
        payload.append(agreementKey)
        payload.append(signature)
        return Self.prefix + Base64URL.encode(payload)
    }

    /// Parses and verifies the printable form.
    ///
    /// - Throws: ``KeyFileError`` with code ``KeyFileError/Code/wrongPrefix``,
    ///   ``KeyFileError/Code/badBase64``, ``KeyFileError/Code/wrongLength`` or
    ///   ``KeyFileError/Code/badSignature``, checked in that order.
    public init(encoded: String) throws {
        guard encoded.hasPrefix(Self.prefix) else { throw KeyFileError.wrongPrefix(expected: Self.prefix) }
        let body = encoded.dropFirst(Self.prefix.count)
        guard let payload = Base64URL.decode(body) else { throw KeyFileError.badBase64(what: "device bundle") }
        guard payload.count == Self.encodedPayloadLength else {
            throw KeyFileError.wrongLength(
                what: "device bundle",
                expected: Self.encodedPayloadLength,
                actual: payload.count
            )
        }
        let keyEnd = payload.startIndex + Self.publicKeyLength
        let agreementEnd = keyEnd + Self.publicKeyLength
        self.init(
            signingKey: Data(payload[payload.startIndex..<keyEnd]),
            agreementKey: Data(payload[keyEnd..<agreementEnd]),
            signature: Data(payload[agreementEnd...])
        )
        guard verify() else { throw KeyFileError.badSignature() }
    }

    /// For people comparing devices out of band: the first 16 bytes of SHA-256 of ``encoded``, as
    /// lowercase hex in groups of four digits separated by spaces (`"3f2a 91c0 …"`, 8 groups).
    public var fingerprint: String { Self.fingerprint(of: Data(encoded.utf8)) }

    /// The first 16 bytes of SHA-256 of `data` as lowercase hex in eight space-separated groups of four: the
    /// form every Parley fingerprint (devices, user keys) is shown in.
    static func fingerprint(of data: Data) -> String {
        let hex = SHA256.hash(data: data).prefix(16).map { String(format: "%02x", $0) }.joined()
        return stride(from: 0, to: hex.count, by: 4).map { offset -> String in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: 4)])
        }.joined(separator: " ")
    }
}

extension DevicePublicBundle: CustomStringConvertible {
    /// The printable form; a bundle holds nothing secret.
    public var description: String { encoded }
}

/// Base64url (RFC 4648 §5) without padding, strict on input: only the URL-safe alphabet, no `=`, no
/// whitespace, and only the canonical encoding (unused trailing bits must be zero).
enum Base64URL {
    /// Encodes without padding.
    static func encode(_ data: Data) -> String {
        var text = data.base64EncodedString()
        while text.last == "=" { text.removeLast() }
        return String(text.map { $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }

    /// Decodes canonical unpadded base64url; nil for anything else.
    static func decode(_ text: some StringProtocol) -> Data? {
        let isURLSafe = text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
        guard isURLSafe, text.utf8.count % 4 != 1 else { return nil }
        var standard = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        standard.append(String(repeating: "=", count: (4 - standard.utf8.count % 4) % 4))
        guard let data = Data(base64Encoded: standard) else { return nil }
        // Rejects non-zero unused bits, so each byte string has exactly one accepted spelling.
        guard encode(data) == String(text) else { return nil }
        return data
    }
}
