import Crypto
import Foundation

/// Why a call handshake step failed. The call must not carry media after any of these.
public enum CallHandshakeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An offer, answer or reveal that does not parse.
    case malformed(String)
    /// The answer is for another offer (its offer hash does not match).
    case wrongOffer
    /// The revealed ephemeral key does not match the offer's commitment.
    case commitmentMismatch
    /// Caller and callee share no cipher suite, or the answer chose one the caller did not offer.
    case noCommonSuite
    /// An ephemeral key that is not a usable X25519 point (low order, wrong length).
    case badKey

    /// A sentence for people and logs (no key material).
    public var description: String {
        switch self {
        case .malformed(let what): "malformed call handshake: \(what)"
        case .wrongOffer: "the answer does not answer this call's offer"
        case .commitmentMismatch: "the caller's revealed key does not match its commitment: possible interception"
        case .noCommonSuite: "no cipher suite in common"
        case .badKey: "an ephemeral key is not a valid X25519 public key"
        }
    }
}

/// What both ends of a call hold once the handshake completed: directional media secrets and the short
/// authentication string. Fresh for every call (ephemeral keys on both sides: forward secrecy).
public struct CallKeys: Sendable {
    /// The negotiated AEAD.
    public let suite: MediaCipherSuite
    /// Secret for the caller → callee direction.
    public let callerToCallee: MediaTrafficSecret
    /// Secret for the callee → caller direction.
    public let calleeToCaller: MediaTrafficSecret
    /// The code the two people compare.
    public let sas: ShortAuthenticationString
    /// SHA-256 of the transcript (tests and debugging; not secret).
    public let transcriptHash: [UInt8]

    /// The secret this side seals with.
    public func sending(asCaller: Bool) -> MediaTrafficSecret { asCaller ? callerToCallee : calleeToCaller }
    /// The secret this side opens with.
    public func receiving(asCaller: Bool) -> MediaTrafficSecret { asCaller ? calleeToCaller : callerToCallee }
}

/// The call key agreement (docs/PROTOCOL.md §5.1), after ZRTP's hash commitment:
///
/// 1. The caller draws an ephemeral X25519 key `a` and puts only `commit = SHA-256("parley-commit-v1" || A)`
///    in its signed offer.
/// 2. Each callee device draws `b` and answers (signed) with `B`, the offer's hash and the chosen suite.
/// 3. The caller then reveals `A`; the callee checks it against the commitment.
///
/// A man in the middle who runs one handshake with each side must fix his key toward the caller before he
/// sees `A` and his commitment toward the callee before he sees `B`, so he cannot search for a pair of
/// handshakes whose short authentication strings match: they differ with probability 1 − 2⁻³⁶.
///
/// Both sides compute, with `I_caller`/`I_callee` the devices' Ed25519 identity keys:
///
/// ```
/// TH  = SHA-256("parley-call-v1" || call id || I_caller || I_callee || len32(offer) || offer
///               || len32(answer) || answer || A)
/// Z   = X25519(a, B) = X25519(b, A)
/// PRK = HKDF-Extract(salt: TH, ikm: Z)
/// S_caller→callee = HKDF-Expand(PRK, "parley media caller to callee", 32)
/// S_callee→caller = HKDF-Expand(PRK, "parley media callee to caller", 32)
/// SAS bytes       = HKDF-Expand(PRK, "parley sas", 5)
/// ```
///
/// Signing the offer and answer (with the device identity keys) is the signaling layer's job (`SignedBlob`);
/// this type handles the key agreement, the commitment and the transcript.
public enum CallHandshake {
    /// Domain of the commitment hash.
    public static let commitDomain = "parley-commit-v1"
    /// Domain of the transcript hash.
    public static let transcriptDomain = "parley-call-v1"

    /// `SHA-256("parley-commit-v1" || A)`.
    public static func commitment(to ephemeral: [UInt8]) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Data(commitDomain.utf8))
        hash.update(data: ephemeral)
        return Array(hash.finalize())
    }

    /// SHA-256 of an offer payload (what the answer names).
    public static func offerHash(_ offer: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: offer)) }

    /// X25519 with a low-order public key yields the all-zero secret (RFC 7748 §6.1 says to check for it;
    /// swift-crypto does not refuse it). Checked without an early exit.
    static func isAllZero(_ shared: SharedSecret) -> Bool {
        shared.withUnsafeBytes { bytes in bytes.reduce(UInt8(0)) { $0 | $1 } == 0 }
    }

    static func transcriptHash(
        callID: String, callerIdentity: [UInt8], calleeIdentity: [UInt8], offer: [UInt8], answer: [UInt8],
        callerEphemeral: [UInt8]
    ) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: Data(transcriptDomain.utf8))
        hash.update(data: Data(callID.utf8))
        hash.update(data: callerIdentity)
        hash.update(data: calleeIdentity)
        for part in [offer, answer] {
            hash.update(data: withUnsafeBytes(of: UInt32(part.count).bigEndian) { Array($0) })
            hash.update(data: part)
        }
        hash.update(data: callerEphemeral)
        return Array(hash.finalize())
    }

    static func keys(
        shared: SharedSecret, transcript: [UInt8], suite: MediaCipherSuite, rekeyInterval: UInt64
    ) -> CallKeys {
        let prk = shared.withUnsafeBytes { HKDF<SHA256>.extract(inputKeyMaterial: SymmetricKey(data: $0), salt: transcript) }
        func expand(_ label: String, _ count: Int) -> SymmetricKey {
            HKDF<SHA256>.expand(pseudoRandomKey: prk, info: Data(label.utf8), outputByteCount: count)
        }
        let sasBytes = expand("parley sas", 5).withUnsafeBytes { Array($0) }
        return CallKeys(
            suite: suite,
            callerToCallee: MediaTrafficSecret(
                suite: suite, secret: expand("parley media caller to callee", 32), rekeyInterval: rekeyInterval),
            calleeToCaller: MediaTrafficSecret(
                suite: suite, secret: expand("parley media callee to caller", 32), rekeyInterval: rekeyInterval),
            sas: ShortAuthenticationString(bytes: sasBytes),
            transcriptHash: transcript)
    }
}

/// The caller's side of ``CallHandshake``.
public struct CallerHandshake: Sendable {
    /// The call id (its canonical text), bound into the transcript.
    public let callID: String
    /// The offer payload to sign and send.
    public let offer: [UInt8]
    /// The parsed offer.
    public let parsedOffer: CallOffer
    /// Packets per key generation for the media keys.
    public let rekeyInterval: UInt64
    private let ephemeral: Curve25519.KeyAgreement.PrivateKey

    /// Draws a fresh ephemeral key and builds the offer.
    public init(
        callID: String, suites: [MediaCipherSuite] = MediaCipherSuite.localPreference, extensions: [CallField] = [],
        rekeyInterval: UInt64 = MediaTrafficSecret.defaultRekeyInterval,
        ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()
    ) {
        precondition(!suites.isEmpty, "a caller must offer a cipher suite")
        precondition(extensions.allSatisfy { $0.type >= CallField.firstExtension }, "extension field types start at 0x10")
        self.callID = callID
        self.ephemeral = ephemeral
        self.rekeyInterval = rekeyInterval
        self.parsedOffer = CallOffer(
            commitment: CallHandshake.commitment(to: Array(ephemeral.publicKey.rawRepresentation)),
            suites: suites, extensions: extensions)
        self.offer = parsedOffer.encoded
    }

    /// Completes the handshake with one callee device's answer (already signature-checked by the caller of
    /// this method against `calleeIdentity`). Returns the keys and the reveal to send to that device.
    ///
    /// Revealing is the caller's commitment being opened: send it only to a device whose answer you will
    /// use (docs/PROTOCOL.md §5.1 says when).
    public func complete(
        answer: [UInt8], callerIdentity: [UInt8], calleeIdentity: [UInt8]
    ) throws(CallHandshakeError) -> (keys: CallKeys, reveal: [UInt8]) {
        let parsed = try CallAnswer(decoding: answer)
        guard parsed.offerHash == CallHandshake.offerHash(offer) else { throw .wrongOffer }
        guard parsedOffer.suites.contains(parsed.suite) else { throw .noCommonSuite }
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: parsed.ephemeral),
            let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: peer), !CallHandshake.isAllZero(shared)
        else { throw .badKey }
        let reveal = Array(ephemeral.publicKey.rawRepresentation)
        let transcript = CallHandshake.transcriptHash(
            callID: callID, callerIdentity: callerIdentity, calleeIdentity: calleeIdentity, offer: offer, answer: answer,
            callerEphemeral: reveal)
        return (CallHandshake.keys(shared: shared, transcript: transcript, suite: parsed.suite, rekeyInterval: rekeyInterval), reveal)
    }
}

/// A callee device's side of ``CallHandshake``.
public struct CalleeHandshake: Sendable {
    /// The call id (its canonical text).
    public let callID: String
    /// The caller's offer payload as received (signature already checked).
    public let offer: [UInt8]
    /// The parsed offer.
    public let parsedOffer: CallOffer
    /// The answer payload to sign and send (and hand to the server to hold while ringing).
    public let answer: [UInt8]
    /// The chosen suite.
    public let suite: MediaCipherSuite
    /// Packets per key generation for the media keys.
    public let rekeyInterval: UInt64
    private let ephemeral: Curve25519.KeyAgreement.PrivateKey

    /// Parses the offer, chooses a suite and draws a fresh ephemeral key.
    public init(
        callID: String, offer: [UInt8], supported: [MediaCipherSuite] = MediaCipherSuite.allCases,
        extensions: [CallField] = [], rekeyInterval: UInt64 = MediaTrafficSecret.defaultRekeyInterval,
        ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()
    ) throws(CallHandshakeError) {
        precondition(extensions.allSatisfy { $0.type >= CallField.firstExtension }, "extension field types start at 0x10")
        let parsed = try CallOffer(decoding: offer)
        guard let suite = MediaCipherSuite.choose(offered: parsed.suites, supported: supported) else { throw .noCommonSuite }
        self.callID = callID
        self.offer = offer
        self.parsedOffer = parsed
        self.suite = suite
        self.ephemeral = ephemeral
        self.rekeyInterval = rekeyInterval
        self.answer = CallAnswer(
            offerHash: CallHandshake.offerHash(offer), ephemeral: Array(ephemeral.publicKey.rawRepresentation),
            suite: suite, extensions: extensions
        ).encoded
    }

    /// Completes the handshake with the caller's reveal: checks it against the commitment, then derives keys.
    public func complete(
        reveal: [UInt8], callerIdentity: [UInt8], calleeIdentity: [UInt8]
    ) throws(CallHandshakeError) -> CallKeys {
        guard reveal.count == 32 else { throw .malformed("reveal of \(reveal.count) bytes") }
        // Constant-time comparison: the commitment is public, but there is no reason to leak where it differs.
        let expected = CallHandshake.commitment(to: reveal)
        var difference: UInt8 = 0
        for (x, y) in zip(expected, parsedOffer.commitment) { difference |= x ^ y }
        guard difference == 0 else { throw .commitmentMismatch }
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: reveal),
            let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: peer), !CallHandshake.isAllZero(shared)
        else { throw .badKey }
        let transcript = CallHandshake.transcriptHash(
            callID: callID, callerIdentity: callerIdentity, calleeIdentity: calleeIdentity, offer: offer, answer: answer,
            callerEphemeral: reveal)
        return CallHandshake.keys(shared: shared, transcript: transcript, suite: suite, rekeyInterval: rekeyInterval)
    }
}
