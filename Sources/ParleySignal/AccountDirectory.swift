import ParleyCrypto
import ParleyWire

/// What the signaling machines need to know about accounts: which devices a user has and their public
/// bundles. Implemented over the store and the accounts file; the machines take it as a value so tests
/// can hand them a fixed table.
public protocol AccountDirectory: Sendable {
    /// The active (not revoked) device's public bundle, or nil if the user or device is unknown.
    func device(user: SignalName, device: SignalName) -> DevicePublicBundle?
    /// Every active device of a user, sorted by name; empty if the user is unknown.
    func devices(of user: SignalName) -> [(name: SignalName, bundle: DevicePublicBundle)]
}

/// A fixed in-memory directory (tests, and the accounts-file snapshot the server swaps in on SIGHUP).
public struct StaticAccountDirectory: AccountDirectory {
    public var users: [SignalName: [SignalName: DevicePublicBundle]]

    public init(users: [SignalName: [SignalName: DevicePublicBundle]] = [:]) {
        self.users = users
    }

    public func device(user: SignalName, device: SignalName) -> DevicePublicBundle? { users[user]?[device] }

    public func devices(of user: SignalName) -> [(name: SignalName, bundle: DevicePublicBundle)] {
        (users[user] ?? [:]).sorted { $0.key < $1.key }.map { (name: $0.key, bundle: $0.value) }
    }
}
