import Crypto
import Foundation
import ParleyWire

/// The secret behind one direction of a call's media, from which every packet key is derived
/// (docs/PROTOCOL.md §5.2).
///
/// Generation g of the direction uses `key_g = HKDF-Expand(S_g, "parley media key", 32)` and
/// `iv_g = HKDF-Expand(S_g, "parley media iv", 12)`; the next generation's secret is
/// `S_{g+1} = HKDF-Expand(S_g, "parley media next", 32)` (a one-way ratchet: a later key does not reveal an
/// earlier one). Sequence number n is sealed under generation `n / rekeyInterval`, with the nonce
/// `iv_g XOR n` (n as a 96-bit big-endian integer), so a (key, nonce) pair never repeats.
public struct MediaTrafficSecret: Sendable {
    /// The AEAD.
    public let suite: MediaCipherSuite
    /// Packets per key generation.
    public let rekeyInterval: UInt64
    let secret: SymmetricKey

    /// Default packets per generation: 2^24 (93 hours of 20 ms audio), far below the AEADs' limits.
    public static let defaultRekeyInterval: UInt64 = 1 << 24

    /// Wraps a 32-byte direction secret. `rekeyInterval` must be at least 2 (tests use small ones).
    public init(suite: MediaCipherSuite, secret: SymmetricKey, rekeyInterval: UInt64 = defaultRekeyInterval) {
        precondition(secret.bitCount == 256, "media secrets are 256 bits")
        precondition(rekeyInterval >= 2, "rekey interval below 2")
        self.suite = suite
        self.secret = secret
        self.rekeyInterval = rekeyInterval
    }

    /// Same secret, another interval (tests).
    public func with(rekeyInterval: UInt64) -> MediaTrafficSecret {
        MediaTrafficSecret(suite: suite, secret: secret, rekeyInterval: rekeyInterval)
    }

    /// The raw secret, for a debugging key log only (`PARLEY_KEYLOGFILE`, docs/OPERATIONS.md).
    public var secretBytes: [UInt8] { secret.withUnsafeBytes { Array($0) } }

    /// A fingerprint of the secret, for tests that compare keys without exposing them: the first 8 bytes of
    /// HKDF-Expand(S, "parley media fingerprint").
    public var fingerprint: [UInt8] {
        Array(HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Data("parley media fingerprint".utf8), outputByteCount: 8)
            .withUnsafeBytes { Array($0) })
    }
}

/// One key generation's AEAD key and IV.
struct MediaGenerationKey: Sendable {
    let generation: UInt64
    let secret: SymmetricKey
    let key: SymmetricKey
    let iv: [UInt8]

    init(generation: UInt64, secret: SymmetricKey) {
        self.generation = generation
        self.secret = secret
        self.key = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Data("parley media key".utf8), outputByteCount: 32)
        self.iv = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Data("parley media iv".utf8), outputByteCount: 12)
            .withUnsafeBytes { Array($0) }
    }

    func next() -> MediaGenerationKey {
        MediaGenerationKey(
            generation: generation + 1,
            secret: HKDF<SHA256>.expand(pseudoRandomKey: secret, info: Data("parley media next".utf8), outputByteCount: 32))
    }

    func nonce(_ sequence: UInt64) -> [UInt8] {
        var nonce = iv
        for i in 0..<8 { nonce[4 + i] ^= UInt8(truncatingIfNeeded: sequence >> UInt64(56 - 8 * i)) }
        return nonce
    }

    func seal(_ plaintext: some DataProtocol, header: [UInt8], suite: MediaCipherSuite, sequence: UInt64) throws -> [UInt8] {
        var out = header
        out.reserveCapacity(header.count + plaintext.count + 16)
        switch suite {
        case .chaCha20Poly1305:
            let box = try ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonce(sequence)), authenticating: header)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
        case .aes256GCM:
            let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce(sequence)), authenticating: header)
            out.append(contentsOf: box.ciphertext)
            out.append(contentsOf: box.tag)
        }
        return out
    }

    func open(_ datagram: [UInt8], suite: MediaCipherSuite, sequence: UInt64) throws -> [UInt8] {
        let header = datagram[0..<MediaHeader.size]
        let body = datagram[MediaHeader.size..<(datagram.count - 16)]
        let tag = datagram[(datagram.count - 16)...]
        switch suite {
        case .chaCha20Poly1305:
            let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce(sequence)), ciphertext: body, tag: tag)
            return Array(try ChaChaPoly.open(box, using: key, authenticating: header))
        case .aes256GCM:
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce(sequence)), ciphertext: body, tag: tag)
            return Array(try AES.GCM.open(box, using: key, authenticating: header))
        }
    }
}

/// Why a media packet was not sealed or opened. Every one is a silent drop on the wire; the counts are stats.
public enum MediaProtectionError: Error, Sendable, Hashable {
    /// Shorter than a header and a tag, or not a version-1 media header.
    case malformed
    /// The key phase bit does not match the generation the sequence number implies.
    case wrongKeyPhase
    /// Sealed under a generation this side no longer (or not yet) holds.
    case keyUnavailable
    /// The AEAD tag did not verify (forged, corrupted, or another call's or direction's key).
    case authenticationFailed
    /// Accepted before (replay window).
    case replayed
    /// Behind the replay window.
    case tooOld
    /// The sender used up the 48-bit sequence space; the call must end (never reached in practice).
    case sequenceExhausted
}

/// Seals one direction's media packets: header, AEAD, sequence numbers, key generations.
public struct MediaSealer: Sendable {
    /// The direction's secret.
    public let traffic: MediaTrafficSecret
    /// The sequence number the next packet gets.
    public private(set) var nextSequence: UInt64 = 0
    private var current: MediaGenerationKey

    /// A sealer starting at sequence 0, generation 0.
    public init(_ traffic: MediaTrafficSecret) {
        self.traffic = traffic
        self.current = MediaGenerationKey(generation: 0, secret: traffic.secret)
    }

    /// The key generation in use.
    public var generation: UInt64 { current.generation }

    /// Seals `plaintext` as a packet of `type`: `header || ciphertext || tag`. Moves to the next key
    /// generation (and flips the key phase) every ``MediaTrafficSecret/rekeyInterval`` packets, forgetting the
    /// old key.
    public mutating func seal(_ type: MediaPacketType, _ plaintext: some DataProtocol) throws(MediaProtectionError) -> [UInt8] {
        guard nextSequence <= MediaHeader.maxSequence else { throw .sequenceExhausted }
        let sequence = nextSequence
        let generation = sequence / traffic.rekeyInterval
        while current.generation < generation { current = current.next() }
        let header = MediaHeader(type: type, keyPhase: generation & 1 == 1, sequence: sequence).bytes
        do {
            let packet = try current.seal(plaintext, header: header, suite: traffic.suite, sequence: sequence)
            nextSequence += 1
            return packet
        } catch {
            throw .malformed
        }
    }
}

/// Opens the other direction's media packets: checks the header, the key phase, the replay window and the
/// AEAD tag, in that order, and records the sequence number only after the tag verified.
public struct MediaOpener: Sendable {
    /// The direction's secret.
    public let traffic: MediaTrafficSecret
    /// Which sequence numbers were accepted.
    public private(set) var window = ReplayWindow()
    /// The previous, current and next generations' keys (reordering across a key change, and the peer
    /// moving on first). Older ones are erased.
    private var keys: [MediaGenerationKey]

    /// An opener expecting generation 0 first.
    public init(_ traffic: MediaTrafficSecret) {
        self.traffic = traffic
        let first = MediaGenerationKey(generation: 0, secret: traffic.secret)
        self.keys = [first, first.next()]
    }

    /// What an opened packet says.
    public struct Opened: Sendable, Hashable {
        /// The packet type.
        public let type: MediaPacketType
        /// Its sequence number.
        public let sequence: UInt64
        /// The decrypted payload.
        public let plaintext: [UInt8]
    }

    /// Opens `datagram`, or throws why it must be dropped. Never throws for a packet it accepted before
    /// the same packet again: that is ``MediaProtectionError/replayed``.
    public mutating func open(_ datagram: [UInt8]) throws(MediaProtectionError) -> Opened {
        guard datagram.count >= MediaHeader.size + 16, let header = MediaHeader(parsing: datagram) else { throw .malformed }
        let generation = header.sequence / traffic.rekeyInterval
        guard header.keyPhase == (generation & 1 == 1) else { throw .wrongKeyPhase }
        switch window.check(header.sequence) {
        case .duplicate: throw .replayed
        case .tooOld: throw .tooOld
        case .fresh: break
        }
        guard let key = keys.first(where: { $0.generation == generation }) else { throw .keyUnavailable }
        let plaintext: [UInt8]
        do {
            plaintext = try key.open(datagram, suite: traffic.suite, sequence: header.sequence)
        } catch {
            throw .authenticationFailed
        }
        window.accept(header.sequence)
        // An authenticated packet of a newer generation moves the key set forward: keep one behind for
        // reordered packets and one ahead for the peer's next change.
        if let newest = keys.last, generation == newest.generation {
            keys = keys.filter { $0.generation + 1 >= generation } + [newest.next()]
        }
        return Opened(type: header.type, sequence: header.sequence, plaintext: plaintext)
    }

    /// The generations whose keys are held (tests: old keys are forgotten).
    public var heldGenerations: [UInt64] { keys.map(\.generation) }
}
