/// One field of an offer or answer payload: `type (1) || length (2, big endian) || value`.
///
/// Types below ``firstExtension`` belong to the handshake and are interpreted here; a payload with an
/// unknown or repeated one is refused. Types from ``firstExtension`` on are extensions (media candidates,
/// later ICE credentials) that the handshake carries, signs and hashes into the transcript but leaves to
/// the layer above; they may repeat (docs/PROTOCOL.md §5.1).
public struct CallField: Sendable, Hashable {
    /// The first type that is an extension.
    public static let firstExtension: UInt8 = 0x10
    /// The field type.
    public let type: UInt8
    /// The value, at most 65,535 bytes.
    public let value: [UInt8]

    /// A field; `value` must fit 16 bits of length.
    public init(type: UInt8, value: [UInt8]) {
        precondition(value.count <= Int(UInt16.max), "call field longer than 65535 bytes")
        self.type = type
        self.value = value
    }

    /// Encodes `version || fields…`.
    public static func encode(version: UInt8, _ fields: [CallField]) -> [UInt8] {
        var out: [UInt8] = [version]
        for field in fields {
            out.append(field.type)
            out.append(UInt8(field.value.count >> 8))
            out.append(UInt8(field.value.count & 0xFF))
            out.append(contentsOf: field.value)
        }
        return out
    }

    /// Decodes `version || fields…`: nil for a wrong version, a truncated field or trailing bytes.
    public static func decode(_ bytes: [UInt8], version: UInt8) -> [CallField]? {
        guard bytes.first == version else { return nil }
        var fields: [CallField] = []
        var i = 1
        while i < bytes.count {
            guard bytes.count - i >= 3 else { return nil }
            let length = Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            guard bytes.count - i - 3 >= length else { return nil }
            fields.append(CallField(type: bytes[i], value: Array(bytes[(i + 3)..<(i + 3 + length)])))
            i += 3 + length
        }
        return fields
    }
}

/// The handshake part of a caller's offer (docs/PROTOCOL.md §5.1).
public struct CallOffer: Sendable, Hashable {
    /// Payload version.
    public static let version: UInt8 = 1
    /// Field types.
    enum Field: UInt8 { case commitment = 0x01, suites = 0x02 }

    /// `SHA-256("parley-commit-v1" || caller ephemeral public key)`.
    public let commitment: [UInt8]
    /// Cipher suites the caller accepts, preferred first.
    public let suites: [MediaCipherSuite]
    /// Extension fields, in order.
    public let extensions: [CallField]

    /// The encoded payload (what the caller signs).
    public var encoded: [UInt8] {
        CallField.encode(
            version: Self.version,
            [
                CallField(type: Field.commitment.rawValue, value: commitment),
                CallField(type: Field.suites.rawValue, value: suites.map(\.rawValue)),
            ] + extensions)
    }

    init(commitment: [UInt8], suites: [MediaCipherSuite], extensions: [CallField]) {
        self.commitment = commitment
        self.suites = suites
        self.extensions = extensions
    }

    /// Parses a payload; throws ``CallHandshakeError/malformed(_:)`` for anything but a well-formed offer.
    public init(decoding bytes: [UInt8]) throws(CallHandshakeError) {
        guard let fields = CallField.decode(bytes, version: Self.version) else { throw .malformed("offer encoding") }
        var commitment: [UInt8]?
        var suites: [MediaCipherSuite]?
        var extensions: [CallField] = []
        for field in fields {
            if field.type >= CallField.firstExtension {
                extensions.append(field)
                continue
            }
            switch Field(rawValue: field.type) {
            case .commitment where commitment == nil && field.value.count == 32: commitment = field.value
            case .suites where suites == nil && !field.value.isEmpty:
                // Unknown suite numbers are skipped: a newer caller may offer more.
                suites = field.value.compactMap(MediaCipherSuite.init(rawValue:))
            default: throw .malformed("offer field \(field.type) unknown, repeated or of the wrong size")
            }
        }
        guard let commitment, let suites else { throw .malformed("offer lacks the commitment or the suites") }
        self.init(commitment: commitment, suites: suites, extensions: extensions)
    }
}

/// The handshake part of a callee device's answer (docs/PROTOCOL.md §5.1).
public struct CallAnswer: Sendable, Hashable {
    /// Payload version.
    public static let version: UInt8 = 1
    enum Field: UInt8 { case offerHash = 0x01, ephemeral = 0x02, suite = 0x03 }

    /// SHA-256 of the offer payload this answers.
    public let offerHash: [UInt8]
    /// The callee device's ephemeral X25519 public key.
    public let ephemeral: [UInt8]
    /// The suite chosen from the offer.
    public let suite: MediaCipherSuite
    /// Extension fields, in order.
    public let extensions: [CallField]

    /// The encoded payload (what the callee device signs).
    public var encoded: [UInt8] {
        CallField.encode(
            version: Self.version,
            [
                CallField(type: Field.offerHash.rawValue, value: offerHash),
                CallField(type: Field.ephemeral.rawValue, value: ephemeral),
                CallField(type: Field.suite.rawValue, value: [suite.rawValue]),
            ] + extensions)
    }

    init(offerHash: [UInt8], ephemeral: [UInt8], suite: MediaCipherSuite, extensions: [CallField]) {
        self.offerHash = offerHash
        self.ephemeral = ephemeral
        self.suite = suite
        self.extensions = extensions
    }

    /// Parses a payload; throws ``CallHandshakeError/malformed(_:)`` for anything but a well-formed answer.
    public init(decoding bytes: [UInt8]) throws(CallHandshakeError) {
        guard let fields = CallField.decode(bytes, version: Self.version) else { throw .malformed("answer encoding") }
        var offerHash: [UInt8]?
        var ephemeral: [UInt8]?
        var suite: MediaCipherSuite?
        var extensions: [CallField] = []
        for field in fields {
            if field.type >= CallField.firstExtension {
                extensions.append(field)
                continue
            }
            switch Field(rawValue: field.type) {
            case .offerHash where offerHash == nil && field.value.count == 32: offerHash = field.value
            case .ephemeral where ephemeral == nil && field.value.count == 32: ephemeral = field.value
            case .suite where suite == nil && field.value.count == 1:
                guard let chosen = MediaCipherSuite(rawValue: field.value[0]) else { throw .noCommonSuite }
                suite = chosen
            default: throw .malformed("answer field \(field.type) unknown, repeated or of the wrong size")
            }
        }
        guard let offerHash, let ephemeral, let suite else { throw .malformed("answer lacks a required field") }
        self.init(offerHash: offerHash, ephemeral: ephemeral, suite: suite, extensions: extensions)
    }
}
