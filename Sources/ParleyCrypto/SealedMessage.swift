import Crypto
import Foundation

/// A message sealed by one device to another device's X25519 key and signed by the sender's identity key,
/// so the server that stores it learns neither the content nor can alter or re-attribute it undetected.
///
/// Byte layout, 113 bytes of overhead:
///
/// ```
/// offset  length  field
/// 0       1       version: 0x01 = ChaCha20-Poly1305, 0x02 = AES-256-GCM (the suite WebCrypto has)
/// 1       32      E: the sender's fresh ephemeral X25519 public key
/// 33      64      S: Ed25519 signature by the sender's identity key over the signing input below
/// 97      n + 16  C: the AEAD ciphertext of the n plaintext bytes, then the 16-byte tag
/// ```
///
/// The two versions differ only in the AEAD; the version byte `v` is bound into the key derivation, the
/// associated data and the signature, so a message cannot be relabelled from one suite to the other.
///
/// With R the recipient's X25519 public key (from its ``DevicePublicBundle``), I the sender's Ed25519
/// public key, X the optional caller-chosen context (authenticated, never transmitted — e.g. message id and
/// the sending and receiving user/device names, so the server cannot relabel a sealed message), and
/// `len(X)` its length as a 4-byte big-endian integer:
///
/// - shared secret `Z = X25519(e, R)`, refused when all zero (a low-order point: swift-crypto does not
///   check this itself, RFC 7748 §6.1 asks for it);
/// - `HKDF-SHA256(ikm: Z, salt: "parley-seal-v1", info: "parley-seal-v1" || v || E || R || I || len(X) || X)`
///   yields 44 bytes: the 32-byte key, then the 12-byte nonce (the key is single-use, so is the nonce);
/// - AEAD associated data: `v || E || R`;
/// - signing input: `"parley-seal-v1" || v || E || R || len(X) || X || C`.
///
/// Binding I into the key means a third party who strips S and signs C with its own key produces a message
/// that no longer decrypts: it cannot claim authorship of a message it could not read. ``open(as:from:context:)``
/// checks the signature first (against the recipient's own R, so a message sealed for another device fails
/// there too), then decrypts; every failure is a ``SealedMessageError`` and no plaintext.
public struct SealedMessage: Sendable, Hashable {
    /// The AEAD of a sealed message, named by its version byte.
    public enum Suite: UInt8, Sendable, Hashable, CaseIterable {
        /// Version 1: ChaCha20-Poly1305 (RFC 8439), what native clients write.
        case chacha20Poly1305 = 1
        /// Version 2: AES-256-GCM, for recipients that have no ChaCha20-Poly1305 (WebCrypto in browsers).
        case aes256GCM = 2
    }

    /// The version native clients write by default (``Suite/chacha20Poly1305``).
    public static let version: UInt8 = Suite.chacha20Poly1305.rawValue
    /// Domain separator for the signature and the key derivation.
    public static let domain = "parley-seal-v1"
    /// Bytes a sealed message adds to its plaintext: version, ephemeral key, signature, tag.
    public static let overhead = 1 + 32 + 64 + 16

    /// Which AEAD sealed it (its version byte).
    public let suite: Suite
    /// The sender's ephemeral X25519 public key (32 bytes).
    public let ephemeralKey: Data
    /// The sender's Ed25519 signature (64 bytes).
    public let signature: Data
    /// Ciphertext followed by the Poly1305 tag.
    public let ciphertext: Data

    /// Splits `bytes` into its fields; checks only the version and the lengths.
    ///
    /// - Throws: ``SealedMessageError`` with code ``SealedMessageError/Code/truncated`` or
    ///   ``SealedMessageError/Code/unsupportedVersion``.
    public init(bytes: some DataProtocol) throws(SealedMessageError) {
        let data = Data(bytes)
        guard data.count >= Self.overhead else { throw .truncated(count: data.count) }
        guard let suite = Suite(rawValue: data[data.startIndex]) else { throw .unsupportedVersion(data[data.startIndex]) }
        self.suite = suite
        let start = data.startIndex + 1
        self.ephemeralKey = Data(data[start..<start + 32])
        self.signature = Data(data[start + 32..<start + 96])
        self.ciphertext = Data(data[(start + 96)...])
    }

    private init(suite: Suite, ephemeralKey: Data, signature: Data, ciphertext: Data) {
        self.suite = suite
        self.ephemeralKey = ephemeralKey
        self.signature = signature
        self.ciphertext = ciphertext
    }

    /// The wire form described in the type's documentation.
    public var bytes: Data {
        var out = Data(capacity: 1 + 32 + 64 + ciphertext.count)
        out.append(suite.rawValue)
        out.append(ephemeralKey)
        out.append(signature)
        out.append(ciphertext)
        return out
    }

    // MARK: Sealing

    /// Seals `plaintext` for `recipient`, signed by `sender`.
    ///
    /// - Parameters:
    ///   - context: authenticated data the recipient must present again to open; not transmitted.
    ///   - suite: the AEAD (the recipient must be able to open it).
    /// - Throws: ``SealedMessageError`` with code ``SealedMessageError/Code/invalidBundle`` when `recipient`
    ///   does not verify, or ``SealedMessageError/Code/cryptoFailure`` when a primitive refuses its input.
    public static func seal(
        _ plaintext: some DataProtocol,
        to recipient: DevicePublicBundle,
        from sender: DeviceIdentity,
        context: some DataProtocol = Data(),
        suite: Suite = .chacha20Poly1305
    ) throws(SealedMessageError) -> SealedMessage {
        guard recipient.verify(), let recipientKey = recipient.agreementPublicKey else {
            throw .invalidBundle("recipient")
        }
        let ephemeral = Curve25519.KeyAgreement.PrivateKey()
        let ephemeralPublic = ephemeral.publicKey.rawRepresentation
        let context = Data(context)
        do {
            let shared = try ephemeral.sharedSecretFromKeyAgreement(with: recipientKey)
            guard !CallHandshake.isAllZero(shared) else { throw SealedMessageError.cryptoFailure("X25519 with a low-order recipient key") }
            let (key, nonce) = derive(
                shared, suite: suite, ephemeral: ephemeralPublic, recipient: recipient.agreementKey,
                sender: sender.publicBundle.signingKey, context: context)
            let aad = header(suite: suite, ephemeral: ephemeralPublic, recipient: recipient.agreementKey)
            let ciphertext: Data
            switch suite {
            case .chacha20Poly1305:
                let box = try ChaChaPoly.seal(Data(plaintext), using: key, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: aad)
                ciphertext = box.ciphertext + box.tag
            case .aes256GCM:
                let box = try AES.GCM.seal(Data(plaintext), using: key, nonce: AES.GCM.Nonce(data: nonce), authenticating: aad)
                ciphertext = box.ciphertext + box.tag
            }
            let signature = try sender.signingKey.signature(
                for: signingInput(
                    suite: suite, ephemeral: ephemeralPublic, recipient: recipient.agreementKey, context: context,
                    ciphertext: ciphertext))
            return SealedMessage(suite: suite, ephemeralKey: ephemeralPublic, signature: signature, ciphertext: ciphertext)
        } catch {
            throw .cryptoFailure("seal")
        }
    }

    // MARK: Opening

    /// Verifies that `sender` sealed this message for `recipient` with `context`, then decrypts it.
    ///
    /// - Throws: ``SealedMessageError`` with code ``SealedMessageError/Code/invalidBundle`` (the pinned
    ///   sender bundle does not verify), ``SealedMessageError/Code/badSignature`` (not signed by `sender`
    ///   for this recipient and context: tampering, a wrong sender, or another device's message), or
    ///   ``SealedMessageError/Code/decryptionFailed``.
    public func open(
        as recipient: DeviceIdentity,
        from sender: DevicePublicBundle,
        context: some DataProtocol = Data()
    ) throws(SealedMessageError) -> Data {
        guard sender.verify(), let senderKey = sender.signingPublicKey else { throw .invalidBundle("sender") }
        let context = Data(context)
        let recipientPublic = recipient.publicBundle.agreementKey
        let input = Self.signingInput(
            suite: suite, ephemeral: ephemeralKey, recipient: recipientPublic, context: context, ciphertext: ciphertext)
        guard senderKey.isValidSignature(signature, for: input) else { throw .badSignature() }
        do {
            let ephemeralPublic = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: ephemeralKey)
            let shared = try recipient.agreementKey.sharedSecretFromKeyAgreement(with: ephemeralPublic)
            guard !CallHandshake.isAllZero(shared) else { throw SealedMessageError.decryptionFailed() }
            let (key, nonce) = Self.derive(
                shared, suite: suite, ephemeral: ephemeralKey, recipient: recipientPublic, sender: sender.signingKey,
                context: context)
            let aad = Self.header(suite: suite, ephemeral: ephemeralKey, recipient: recipientPublic)
            switch suite {
            case .chacha20Poly1305:
                let box = try ChaChaPoly.SealedBox(
                    nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
                return try ChaChaPoly.open(box, using: key, authenticating: aad)
            case .aes256GCM:
                let box = try AES.GCM.SealedBox(
                    nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
                return try AES.GCM.open(box, using: key, authenticating: aad)
            }
        } catch {
            throw .decryptionFailed()
        }
    }

    // MARK: Construction details

    static func header(suite: Suite, ephemeral: Data, recipient: Data) -> Data {
        Data([suite.rawValue]) + ephemeral + recipient
    }

    static func signingInput(suite: Suite, ephemeral: Data, recipient: Data, context: Data, ciphertext: Data) -> Data {
        Data(domain.utf8) + header(suite: suite, ephemeral: ephemeral, recipient: recipient) + lengthPrefixed(context)
            + ciphertext
    }

    static func lengthPrefixed(_ data: Data) -> Data {
        let n = UInt32(truncatingIfNeeded: data.count)
        return Data([UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]) + data
    }

    /// The single-use key and the 12-byte nonce.
    static func derive(
        _ shared: SharedSecret, suite: Suite, ephemeral: Data, recipient: Data, sender: Data, context: Data
    ) -> (SymmetricKey, Data) {
        let info =
            Data(domain.utf8) + header(suite: suite, ephemeral: ephemeral, recipient: recipient) + sender
            + lengthPrefixed(context)
        let okm = shared.hkdfDerivedSymmetricKey(
            using: SHA256.self, salt: Data(domain.utf8), sharedInfo: info, outputByteCount: 44)
        let bytes = okm.withUnsafeBytes { Data($0) }
        return (SymmetricKey(data: bytes.prefix(32)), Data(bytes.suffix(12)))
    }
}

/// Why a ``SealedMessage`` could not be parsed, sealed or opened. Equal by ``code``; never carries plaintext
/// or key material.
public struct SealedMessageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// Shorter than the fixed overhead.
        public static let truncated = Code("truncated")
        /// A version byte this code does not know.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// A device bundle (recipient when sealing, pinned sender when opening) that does not verify.
        public static let invalidBundle = Code("invalidBundle")
        /// The signature does not verify for this sender, recipient and context.
        public static let badSignature = Code("badSignature")
        /// Signed correctly but the AEAD refused it (a sender that sealed garbage).
        public static let decryptionFailed = Code("decryptionFailed")
        /// A primitive refused its input while sealing (e.g. a low-order recipient key).
        public static let cryptoFailure = Code("cryptoFailure")

        /// The code's name.
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    private let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Equal by code.
    public static func == (a: SealedMessageError, b: SealedMessageError) -> Bool { a.code == b.code }
    /// Hashes the code.
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// A sentence for logs and people.
    public var description: String { "sealed message: \(message)" }

    /// Fewer bytes than the fixed overhead.
    public static func truncated(count: Int) -> SealedMessageError {
        SealedMessageError(.truncated, "\(count) bytes is shorter than the \(SealedMessage.overhead)-byte minimum")
    }

    /// An unknown version byte.
    public static func unsupportedVersion(_ version: UInt8) -> SealedMessageError {
        SealedMessageError(.unsupportedVersion, "unsupported version \(version)")
    }

    /// The `role` (recipient or sender) bundle does not verify.
    public static func invalidBundle(_ role: String) -> SealedMessageError {
        SealedMessageError(.invalidBundle, "the \(role) device bundle does not verify")
    }

    /// The signature check failed.
    public static func badSignature() -> SealedMessageError {
        SealedMessageError(
            .badSignature, "not signed by the expected sender for this device (tampered or misattributed)")
    }

    /// The AEAD refused the ciphertext.
    public static func decryptionFailed() -> SealedMessageError {
        SealedMessageError(.decryptionFailed, "signed but does not decrypt")
    }

    /// A primitive failed while sealing.
    public static func cryptoFailure(_ step: String) -> SealedMessageError {
        SealedMessageError(.cryptoFailure, "\(step): the crypto library refused the input")
    }
}
