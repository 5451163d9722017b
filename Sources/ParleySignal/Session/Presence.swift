import ParleyWire

/// Which devices are online, and on which connection (docs/PROTOCOL.md §3.5 rings "every online device
/// of the callee").
///
/// A user may be online on several devices at once. A device is online on **at most one connection**:
/// a new login of the same device replaces the old session, which the hub then closes with
/// ``SessionMachine/supersede(now:)``. One connection per device keeps event delivery simple (a device's
/// ``DeviceQueue`` is sent on exactly one connection) and matches what a reconnect looks like when the
/// old TCP connection is half-open and the server has not noticed yet. Removal names the connection, so
/// the late `offline` of a replaced session cannot take its successor offline.
///
/// `Connection` is whatever the hub uses to find a connection (a channel id, an `ObjectIdentifier`).
public struct Presence<Connection: Hashable & Sendable>: Sendable {
    /// Online devices per user, each with its connection.
    private var online: [SignalName: [SignalName: Connection]] = [:]

    /// An empty registry.
    public init() {}

    /// Puts `device` of `user` online on `connection` (after its `welcome`). Returns the connection it
    /// was online on before, which the hub must close; nil if it was offline (or already on
    /// `connection`).
    public mutating func register(user: SignalName, device: SignalName, connection: Connection) -> Connection? {
        let previous = online[user, default: [:]].updateValue(connection, forKey: device)
        return previous == connection ? nil : previous
    }

    /// Takes `device` offline if it is online on `connection`; returns whether it was. A connection that
    /// has already been replaced changes nothing.
    @discardableResult
    public mutating func remove(user: SignalName, device: SignalName, connection: Connection) -> Bool {
        guard online[user]?[device] == connection else { return false }
        online[user]?[device] = nil
        if online[user]?.isEmpty == true { online[user] = nil }
        return true
    }

    /// The connection `device` of `user` is online on, if any.
    public func connection(user: SignalName, device: SignalName) -> Connection? { online[user]?[device] }

    /// The online devices of `user` with their connections, sorted by device name; empty when offline.
    public func devices(of user: SignalName) -> [(device: SignalName, connection: Connection)] {
        (online[user] ?? [:]).sorted { $0.key < $1.key }.map { (device: $0.key, connection: $0.value) }
    }

    /// True when at least one device of `user` is online.
    public func isOnline(_ user: SignalName) -> Bool { online[user] != nil }

    /// True when `device` of `user` is online (on any connection).
    public func isOnline(user: SignalName, device: SignalName) -> Bool { online[user]?[device] != nil }

    /// Number of online devices over all users.
    public var count: Int { online.values.reduce(0) { $0 + $1.count } }

    /// Number of users with at least one online device.
    public var userCount: Int { online.count }

    /// Every registered connection with its user and device, sorted by user then device (shutdown:
    /// close them all; metrics; debugging).
    public var entries: [(user: SignalName, device: SignalName, connection: Connection)] {
        online.sorted { $0.key < $1.key }.flatMap { user, devices in
            devices.sorted { $0.key < $1.key }.map { (user: user, device: $0.key, connection: $0.value) }
        }
    }
}
