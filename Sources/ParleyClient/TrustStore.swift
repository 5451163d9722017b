import Foundation
import ParleyCrypto
import ParleyWire

/// Why a user's device list was refused. Each is its own warning; none pins anything, and nothing is sealed
/// to, rung or answered on the strength of a refused list.
public enum ListRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not a list, or its signature does not verify.
    case invalid(user: SignalName, DeviceListError)
    /// A list of another user was presented as this user's.
    case wrongUser(user: SignalName, presented: SignalName)
    /// The list is signed by a user key other than the pinned one: someone may be impersonating the user, or
    /// the user started over. Blocking until accepted after comparing safety numbers.
    case userKeyChanged(user: SignalName, pinned: Data, presented: Data, wasVerified: Bool)
    /// An older version than the one pinned: the server is replaying a list the user has replaced.
    case rollback(user: SignalName, pinned: UInt64, presented: UInt64)
    /// Two different lists with one version, or a list that does not chain from the pinned one: the
    /// history was forked.
    case fork(user: SignalName, version: UInt64)
    /// The versions between the pinned one and the presented one were not all given.
    case missingVersions(user: SignalName, pinned: UInt64, presented: UInt64)
    /// The server presents no device list for a user this account pinned one for (a downgrade to
    /// server-decided devices).
    case withheld(user: SignalName)

    public var user: SignalName {
        switch self {
        case .invalid(let user, _), .wrongUser(let user, _), .userKeyChanged(let user, _, _, _), .rollback(let user, _, _),
            .fork(let user, _), .missingVersions(let user, _, _), .withheld(let user):
            user
        }
    }

    public var description: String {
        switch self {
        case .invalid(let user, let error):
            "REFUSED the device list of \(user): \(error)"
        case .wrongUser(let user, let presented):
            "REFUSED a device list of \(presented) presented as \(user)'s"
        case .userKeyChanged(let user, let pinned, let presented, let verified):
            "WARNING: THE USER KEY OF \(user) CHANGED\(verified ? " (YOU HAD VERIFIED THE OLD ONE)" : "").\n"
                + "  pinned \(UserIdentity.fingerprint(of: pinned))\n  now    \(UserIdentity.fingerprint(of: presented))\n"
                + "Someone may be impersonating \(user), or \(user) started over. Compare the safety number with \(user)\n"
                + "in person or by voice (`parley verify \(user)`) before accepting the new key."
        case .rollback(let user, let pinned, let presented):
            "REFUSED the device list of \(user): version \(presented) is older than the pinned version \(pinned) (a replayed list)"
        case .fork(let user, let version):
            "REFUSED the device list of \(user): version \(version) does not continue the history pinned here (a forked list)"
        case .missingVersions(let user, let pinned, let presented):
            "REFUSED the device list of \(user): versions \(pinned + 1)…\(presented - 1) were not given, so the chain cannot be checked"
        case .withheld(let user):
            "REFUSED the devices of \(user): the server no longer presents the device list pinned here (it would decide \(user)'s devices itself)"
        }
    }
}

/// What accepting a list changed.
public struct ListReview: Sendable, Hashable {
    public enum Status: Sendable, Hashable {
        /// The user was unknown: user key and list pinned now (trust on first use; compare the safety number).
        case firstContact
        /// The pinned list.
        case unchanged
        /// A newer version chaining from the pinned one.
        case updated(from: UInt64)
        /// A new user key accepted on request.
        case userKeyReplaced
    }

    public let user: SignalName
    public let list: DeviceList
    public let status: Status
    /// Devices certified now that were not before, and devices no longer certified.
    public let added: [SignalName]
    public let removed: [SignalName]
}

/// What this account trusts about other users (and itself): each user's pinned user key, the newest device
/// list accepted for them (which certifies their devices), and whether the person verified the safety
/// number. Sans-I/O; kept in the per-account file `KEY.trust` beside the key (``render()``, ``parse(_:path:)``).
public struct TrustStore: Sendable, Hashable {
    public struct Record: Sendable, Hashable {
        public var list: DeviceList
        /// The user key the person verified (safety number compared), if any.
        public var verifiedKey: Data?
        public var userKey: Data { list.userKey }
        public var verified: Bool { verifiedKey == list.userKey }
    }

    public private(set) var users: [SignalName: Record] = [:]

    public init() {}

    /// The accepted list of `user`, if any.
    public func list(of user: SignalName) -> DeviceList? { users[user]?.list }

    /// Reviews `chain` — the lists the server gave for `user`, ascending by version, newest last — against
    /// what is pinned, and accepts the newest when it verifies, names this user, is signed by the pinned
    /// user key (or any key at first contact, or a new one with `acceptNewUserKey`) and continues the pinned
    /// history version by version. Refusals throw and change nothing.
    public mutating func review(
        _ user: SignalName, chain: [DeviceList], acceptNewUserKey: Bool = false
    ) throws(ListRefusal) -> ListReview {
        guard let newest = chain.last else { throw .missingVersions(user: user, pinned: users[user]?.list.version ?? 0, presented: 0) }
        for list in chain where list.user != user { throw .wrongUser(user: user, presented: list.user) }
        // The chain as given must hold together: one key, consecutive versions, each naming the one before.
        for (older, newer) in zip(chain, chain.dropFirst()) {
            guard newer.userKey == older.userKey else { throw .fork(user: user, version: newer.version) }
            guard newer.version == older.version + 1, newer.previous == older.hash else {
                throw .fork(user: user, version: newer.version)
            }
        }
        guard let pinned = users[user] else {
            users[user] = Record(list: newest, verifiedKey: nil)
            return ListReview(user: user, list: newest, status: .firstContact, added: newest.devices.map(\.name), removed: [])
        }
        if newest.userKey != pinned.userKey {
            guard acceptNewUserKey else {
                throw .userKeyChanged(user: user, pinned: pinned.userKey, presented: newest.userKey, wasVerified: pinned.verified)
            }
            users[user] = Record(list: newest, verifiedKey: nil)
            return review(of: user, from: pinned.list, to: newest, status: .userKeyReplaced)
        }
        let current = pinned.list
        if newest.version < current.version { throw .rollback(user: user, pinned: current.version, presented: newest.version) }
        if newest.version == current.version {
            guard newest.hash == current.hash else { throw .fork(user: user, version: newest.version) }
            return ListReview(user: user, list: current, status: .unchanged, added: [], removed: [])
        }
        // Newer: the chain must reach back to the pinned version, and the list after it must name it.
        guard let next = chain.first(where: { $0.version == current.version + 1 }) else {
            throw .missingVersions(user: user, pinned: current.version, presented: newest.version)
        }
        if let same = chain.first(where: { $0.version == current.version }), same.hash != current.hash {
            throw .fork(user: user, version: same.version)
        }
        guard next.previous == current.hash else { throw .fork(user: user, version: next.version) }
        users[user]!.list = newest
        return review(of: user, from: current, to: newest, status: .updated(from: current.version))
    }

    private func review(of user: SignalName, from old: DeviceList, to new: DeviceList, status: ListReview.Status) -> ListReview {
        let before = Set(old.devices.map { "\($0.name) \($0.bundle.encoded)" })
        let after = Set(new.devices.map { "\($0.name) \($0.bundle.encoded)" })
        let added = new.devices.filter { !before.contains("\($0.name) \($0.bundle.encoded)") }.map(\.name)
        let removed = old.devices.filter { !after.contains("\($0.name) \($0.bundle.encoded)") && new.device($0.name) == nil }.map(\.name)
        return ListReview(user: user, list: new, status: status, added: added, removed: removed)
    }

    /// Marks the pinned user key of `user` as verified (safety number compared); false when none is pinned.
    @discardableResult
    public mutating func markVerified(_ user: SignalName) -> Bool {
        guard let record = users[user] else { return false }
        users[user]!.verifiedKey = record.userKey
        return true
    }

    // MARK: File

    static let header = "parley-trust v1"

    /// `parley-trust v1`, then per user: `<user> <verified user key or -> <parleylist1. list>`, sorted.
    public func render() -> String {
        var lines = [Self.header]
        for user in users.keys.sorted() {
            let record = users[user]!
            lines.append("\(user) \(record.verifiedKey.map { Base64URL.encode(Array($0)) } ?? "-") \(record.list.text)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    public static func parse(_ text: String, path: String) throws(ClientError) -> TrustStore {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard lines.first == Substring(header) else { throw .stateFile(path, "line 1: expected '\(header)'") }
        var store = TrustStore()
        for (index, line) in lines.enumerated().dropFirst() {
            let f = line.split(separator: " ", omittingEmptySubsequences: false)
            guard f.count == 3, let user = SignalName(f[0]), let list = try? DeviceList(text: String(f[2])), list.user == user,
                store.users[user] == nil
            else { throw .stateFile(path, "line \(index + 1): expected '<user> <verified key or -> <device list>'") }
            let verified: Data?
            if f[1] == "-" {
                verified = nil
            } else {
                guard let key = SignalBlob(f[1], maxBytes: 32), key.byteCount == 32 else {
                    throw .stateFile(path, "line \(index + 1): bad verified key")
                }
                verified = Data(key.bytes)
            }
            store.users[user] = Record(list: list, verifiedKey: verified)
        }
        return store
    }
}
