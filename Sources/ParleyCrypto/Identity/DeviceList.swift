import Crypto
import Foundation
import ParleyWire

/// Why a device list was refused as bytes (before any pin is consulted).
public enum DeviceListError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not the canonical encoding (the reason says where).
    case malformed(String)
    /// Over a limit (``DeviceList/maximumDocumentBytes``, devices, revoked entries).
    case tooLarge(String)
    /// The signature does not verify with the user key the list names.
    case badSignature

    public var description: String {
        switch self {
        case .malformed(let reason): "malformed device list: \(reason)"
        case .tooLarge(let reason): "device list too large: \(reason)"
        case .badSignature: "device list signature does not verify"
        }
    }
}

/// A user's devices as the user's own key certifies them (docs/PROTOCOL.md §3.8): versioned, chained to the
/// previous list by hash, signed with the ``UserIdentity``. The server stores and serves it but cannot make
/// one; a client rings, seals to and answers only devices on a list that verifies and chains from the one it
/// pinned (``DeviceListPins``).
///
/// The signed document, UTF-8 with LF line ends, every line exactly as shown:
/// ```
/// parley-device-list v1
/// user <name>
/// user-key <base64url of the 32-byte Ed25519 public key>
/// version <decimal, from 1>
/// previous <base64url of SHA-256 of the previous version's document, or - for version 1>
/// time <ms since the epoch>
/// device <name> <parley1. bundle> <media kinds, comma-separated>     one per device, names ascending, 1…32
/// revoked <name> <parley1. bundle>                                 one per removed device, ascending, 0…64
/// ```
/// Its first line separates the signature's domain. Wire form (a signaling blob): signature (64) || document;
/// text form: `parleylist1.` + base64url of the wire form. Only the canonical spelling is accepted.
public struct DeviceList: Sendable, Hashable {
    /// A certified device.
    public struct Entry: Sendable, Hashable {
        public let name: SignalName
        public let bundle: DevicePublicBundle
        /// Which media protocols the device speaks (`parley` for Parley's own, `webrtc`); 1…4 words of
        /// `[a-z0-9-]`, ascending. Revoked entries carry none.
        public let media: [String]

        public init(name: SignalName, bundle: DevicePublicBundle, media: [String] = ["parley"]) {
            self.name = name
            self.bundle = bundle
            self.media = media
        }
    }

    public static let header = "parley-device-list v1"
    public static let textPrefix = "parleylist1."
    public static let maximumDocumentBytes = 12 * 1024
    public static let maximumDevices = 32
    public static let maximumRevoked = 64

    public let user: SignalName
    public let userKey: Data
    public let version: UInt64
    /// SHA-256 of the previous version's document; nil for version 1.
    public let previous: Data?
    public let time: UInt64
    public let devices: [Entry]
    public let revoked: [Entry]
    /// The exact signed bytes.
    public let document: [UInt8]
    public internal(set) var signature: Data

    /// SHA-256 of ``document``: what the next version names as `previous`, and what pins remember.
    public var hash: Data { Data(SHA256.hash(data: document)) }

    /// Signature (64) || document: the form carried in signaling.
    public var wire: [UInt8] { Array(signature) + document }

    /// `parleylist1.` + base64url of ``wire``.
    public var text: String { Self.textPrefix + Base64URL.encode(Data(wire)) }

    /// The entry of a certified device.
    public func device(_ name: SignalName) -> Entry? { devices.first { $0.name == name } }

    /// Every certified device's bundle, by device name.
    public var certifiedBundles: [String: DevicePublicBundle] {
        Dictionary(uniqueKeysWithValues: devices.map { ($0.name.text, $0.bundle) })
    }

    /// Whether `bundle` is certified as `name`.
    public func certifies(_ name: SignalName, _ bundle: DevicePublicBundle) -> Bool { device(name)?.bundle == bundle }

    // MARK: Making

    /// Signs a new list. Entries are sorted by name; names must be unique across devices and revoked.
    public static func sign(
        by identity: UserIdentity, version: UInt64, previous: Data?, time: UInt64, devices: [Entry], revoked: [Entry] = []
    ) throws(DeviceListError) -> DeviceList {
        let document = try render(
            user: identity.user, userKey: identity.publicKey, version: version, previous: previous, time: time,
            devices: devices.sorted { $0.name < $1.name }, revoked: revoked.sorted { $0.name < $1.name })
        let signature: Data
        do {
            signature = try identity.signingKey.signature(for: Data(document))
        } catch {
            throw .badSignature
        }
        return try DeviceList(wire: Array(signature) + document)
    }

    /// The first list of a new account (or of an account upgraded to user keys).
    public static func first(by identity: UserIdentity, devices: [Entry], time: UInt64) throws(DeviceListError) -> DeviceList {
        try sign(by: identity, version: 1, previous: nil, time: time, devices: devices)
    }

    /// The next version: `adding` new or replaced devices (a removed device's name cannot come back),
    /// `removing` devices (they move to revoked).
    public func next(
        by identity: UserIdentity, adding: [Entry] = [], removing: [SignalName] = [], time: UInt64
    ) throws(DeviceListError) -> DeviceList {
        var current = Dictionary(uniqueKeysWithValues: devices.map { ($0.name, $0) })
        var gone = Dictionary(uniqueKeysWithValues: revoked.map { ($0.name, $0) })
        for entry in adding {
            // A removed name stays removed (its sequences belong to the removed device; servers refuse it too).
            guard gone[entry.name] == nil else { throw .malformed("the name \(entry.name) belonged to a removed device; pick another") }
            current[entry.name] = entry
        }
        for name in removing {
            if let entry = current.removeValue(forKey: name) { gone[name] = Entry(name: name, bundle: entry.bundle, media: []) }
        }
        return try Self.sign(
            by: identity, version: version + 1, previous: hash, time: max(time, self.time), devices: Array(current.values),
            revoked: Array(gone.values))
    }

    /// `list` with another signature and no check (for tests that play a server forging one).
    init(unchecked list: DeviceList, signature: Data) {
        self = list
        self.signature = signature
    }

    // MARK: Reading

    /// Parses the text form and verifies the signature with the user key the list names.
    public init(text: String) throws(DeviceListError) {
        guard text.hasPrefix(Self.textPrefix), let wire = Base64URL.decode(text.dropFirst(Self.textPrefix.count)) else {
            throw .malformed("not \(Self.textPrefix)<base64url>")
        }
        try self.init(wire: Array(wire))
    }

    /// Parses the wire form (signature || document) and verifies the signature.
    public init(wire: [UInt8]) throws(DeviceListError) {
        guard wire.count > 64 else { throw .malformed("shorter than a signature") }
        guard wire.count - 64 <= Self.maximumDocumentBytes else { throw .tooLarge("\(wire.count - 64) bytes") }
        let signature = Data(wire[0..<64])
        let document = Array(wire[64...])
        guard let text = String(validating: document, as: UTF8.self) else { throw .malformed("not UTF-8") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.last == "" else { throw .malformed("no final line end") }
        lines.removeLast()
        guard lines.count >= 7, lines[0] == Substring(Self.header) else { throw .malformed("expected '\(Self.header)' and six fields") }
        func field(_ index: Int, _ name: String) throws(DeviceListError) -> Substring {
            let prefix = name + " "
            guard lines[index].hasPrefix(prefix) else { throw .malformed("line \(index + 1): expected '\(name) …'") }
            return lines[index].dropFirst(prefix.count)
        }
        guard let user = SignalName(String(try field(1, "user"))) else { throw .malformed("line 2: bad user name") }
        guard let userKey = Base64URL.decode(try field(2, "user-key")), userKey.count == 32,
            let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: userKey)
        else { throw .malformed("line 3: bad user key") }
        guard let version = Self.decimal(try field(3, "version")), version >= 1 else { throw .malformed("line 4: bad version") }
        let previousText = try field(4, "previous")
        let previous: Data?
        if previousText == "-" {
            previous = nil
        } else {
            guard let hash = Base64URL.decode(previousText), hash.count == 32 else { throw .malformed("line 5: bad previous hash") }
            previous = hash
        }
        guard (version == 1) == (previous == nil) else { throw .malformed("line 5: version 1 has no previous list, later ones have one") }
        guard let time = Self.decimal(try field(5, "time")) else { throw .malformed("line 6: bad time") }
        var devices: [Entry] = []
        var revoked: [Entry] = []
        for (index, line) in lines.enumerated().dropFirst(6) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            if parts.first == "device", parts.count == 4, revoked.isEmpty, let name = SignalName(String(parts[1])),
                let bundle = try? DevicePublicBundle(encoded: String(parts[2])), let media = Self.mediaKinds(parts[3])
            {
                devices.append(Entry(name: name, bundle: bundle, media: media))
            } else if parts.first == "revoked", parts.count == 3, let name = SignalName(String(parts[1])),
                let bundle = try? DevicePublicBundle(encoded: String(parts[2]))
            {
                revoked.append(Entry(name: name, bundle: bundle, media: []))
            } else {
                throw .malformed("line \(index + 1): expected 'device <name> <bundle> <media>' or 'revoked <name> <bundle>'")
            }
        }
        guard !devices.isEmpty else { throw .malformed("no device") }
        guard devices.count <= Self.maximumDevices, revoked.count <= Self.maximumRevoked else {
            throw .tooLarge("\(devices.count) devices, \(revoked.count) revoked")
        }
        let canonical = try Self.render(
            user: user, userKey: userKey, version: version, previous: previous, time: time, devices: devices, revoked: revoked)
        guard canonical == document else { throw .malformed("not in canonical form (order, duplicates or spelling)") }
        guard publicKey.isValidSignature(signature, for: Data(document)) else { throw .badSignature }
        self.user = user
        self.userKey = userKey
        self.version = version
        self.previous = previous
        self.time = time
        self.devices = devices
        self.revoked = revoked
        self.document = document
        self.signature = signature
    }

    static func render(
        user: SignalName, userKey: Data, version: UInt64, previous: Data?, time: UInt64, devices: [Entry], revoked: [Entry]
    ) throws(DeviceListError) -> [UInt8] {
        guard !devices.isEmpty else { throw .malformed("no device") }
        let names = devices.map(\.name) + revoked.map(\.name)
        guard Set(names).count == names.count else { throw .malformed("a device name appears twice") }
        guard zip(devices, devices.dropFirst()).allSatisfy({ $0.name < $1.name }),
            zip(revoked, revoked.dropFirst()).allSatisfy({ $0.name < $1.name })
        else { throw .malformed("entries not in name order") }
        guard devices.allSatisfy({ mediaKinds(Substring($0.media.joined(separator: ","))) == $0.media }) else {
            throw .malformed("media kinds must be 1-4 ascending words of [a-z0-9-]")
        }
        var lines = [
            header, "user \(user)", "user-key \(Base64URL.encode(userKey))", "version \(version)",
            "previous \(previous.map { Base64URL.encode($0) } ?? "-")", "time \(time)",
        ]
        lines += devices.map { "device \($0.name) \($0.bundle.encoded) \($0.media.joined(separator: ","))" }
        lines += revoked.map { "revoked \($0.name) \($0.bundle.encoded)" }
        let document = Array((lines.joined(separator: "\n") + "\n").utf8)
        guard document.count <= maximumDocumentBytes else { throw .tooLarge("\(document.count) bytes") }
        return document
    }

    /// A decimal without sign or leading zeros, at most 18 digits.
    static func decimal(_ text: Substring) -> UInt64? {
        guard !text.isEmpty, text.count <= 18, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber),
            text == "0" || !text.hasPrefix("0")
        else { return nil }
        return UInt64(text)
    }

    /// `parley`, `parley,webrtc`…: 1–4 distinct ascending words of `[a-z0-9-]` (1–16 characters).
    static func mediaKinds(_ text: Substring) -> [String]? {
        let words = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard (1...4).contains(words.count), zip(words, words.dropFirst()).allSatisfy({ $0 < $1 }),
            words.allSatisfy({ word in
                (1...16).contains(word.utf8.count)
                    && word.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 }
            })
        else { return nil }
        return words
    }
}
