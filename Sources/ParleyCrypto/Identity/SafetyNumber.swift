import Crypto
import Foundation
import ParleyWire

/// The number two users compare to know they hold each other's real user keys (docs/PROTOCOL.md §3.8), in
/// the spirit of Signal's safety number: 60 digits, the same on both sides, stable while the two user keys
/// stay (devices come and go without changing it), different as soon as either key changes.
///
/// Each user's half: `h = SHA-512(0x00 0x00 || key || name)`, then 5,200 times `h = SHA-512(h || key)`; the
/// first 30 bytes as six 5-byte big-endian numbers, each mod 100,000 as five digits. The number is the two
/// halves ordered by user name, shown as twelve groups of five.
public enum SafetyNumber {
    public static let iterations = 5_200

    /// One user's 30 digits.
    public static func half(user: SignalName, key: Data) -> String {
        var input = Data([0, 0])
        input.append(key)
        input.append(Data(user.text.utf8))
        var hash = Data(SHA512.hash(data: input))
        for _ in 0..<iterations {
            var next = hash
            next.append(key)
            hash = Data(SHA512.hash(data: next))
        }
        return (0..<6).map { chunk -> String in
            let value = hash[(chunk * 5)..<(chunk * 5 + 5)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 100_000
            let digits = String(value)
            return String(repeating: "0", count: 5 - digits.count) + digits
        }.joined()
    }

    /// The 60 digits for the pair, in twelve groups of five separated by spaces.
    public static func between(_ a: SignalName, key aKey: Data, and b: SignalName, key bKey: Data) -> String {
        let halves = [(a, aKey), (b, bKey)].sorted { $0.0 < $1.0 }.map { half(user: $0.0, key: $0.1) }
        let digits = Array(halves.joined())
        return stride(from: 0, to: 60, by: 5).map { String(digits[$0..<($0 + 5)]) }.joined(separator: " ")
    }
}

/// The one-time code a new device shows to be linked to its user's account (docs/PROTOCOL.md §3.8): 20
/// bytes — an 8-byte request id (which names the request the new device left at the server) and a 12-byte
/// commitment to the new device's name and bundle — as 32 base32 letters in groups of four, or as a
/// `parley-link:` URI for a QR code. The approving device fetches the request by id and accepts it only if
/// the bundle the server hands over matches the commitment, so a server that swaps the bundle (or alters
/// the code it relays) is caught.
public struct LinkCode: Sendable, Hashable {
    public static let domain = "parley-link-v1"
    public let id: [UInt8]
    public let commitment: [UInt8]

    /// A fresh code for `device` of `user` with `bundle`.
    public static func make(user: SignalName, device: SignalName, bundle: DevicePublicBundle) -> LinkCode {
        var rng = SystemRandomNumberGenerator()
        let id = (0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return LinkCode(id: id, commitment: commit(id: id, user: user, device: device, bundle: bundle))
    }

    init(id: [UInt8], commitment: [UInt8]) {
        self.id = id
        self.commitment = commitment
    }

    static func commit(id: [UInt8], user: SignalName, device: SignalName, bundle: DevicePublicBundle) -> [UInt8] {
        var input = Data(domain.utf8)
        input.append(contentsOf: id)
        input.append(Data("\u{0}\(user)\u{0}\(device)\u{0}\(bundle.encoded)".utf8))
        return Array(SHA256.hash(data: input).prefix(12))
    }

    /// Whether the request the server handed over is the one this code was made for (constant time).
    public func matches(user: SignalName, device: SignalName, bundle: DevicePublicBundle) -> Bool {
        let expected = Self.commit(id: id, user: user, device: device, bundle: bundle)
        return zip(expected, commitment).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The request id as 16 hex digits (how signaling names it).
    public var requestID: String { id.map { String(format: "%02x", $0) }.joined() }

    /// `ABCD-EFGH-…`: 32 letters A–Z and 2–7.
    public var text: String { RecoveryFile.encode(id + commitment) }

    /// Reads the text form (case, spaces and dashes do not matter).
    public init?(text: String) {
        guard let bytes = RecoveryFile.decode(text) else { return nil }
        self.init(id: Array(bytes[0..<8]), commitment: Array(bytes[8..<20]))
    }

    /// `parley-link:<user>@<server>/<code letters>` for a QR code.
    public func uri(user: SignalName, server: String) -> String {
        "parley-link:\(user)@\(server)/\(text.filter { $0 != "-" })"
    }

    /// Reads a URI made by ``uri(user:server:)``: the code, and the user and server it names.
    public static func parse(uri: String) -> (code: LinkCode, user: SignalName, server: String)? {
        guard uri.hasPrefix("parley-link:"), let at = uri.firstIndex(of: "@"), let slash = uri.lastIndex(of: "/"),
            at < slash
        else { return nil }
        let userText = uri[uri.index(uri.startIndex, offsetBy: 12)..<at]
        guard let user = SignalName(String(userText)), let code = LinkCode(text: String(uri[uri.index(after: slash)...])) else {
            return nil
        }
        let server = String(uri[uri.index(after: at)..<slash])
        guard !server.isEmpty else { return nil }
        return (code, user, server)
    }
}
