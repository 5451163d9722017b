import ParleyStore
import ParleyWire
import ParleyCrypto

/// One client connection as the hub sees it, whatever carries it (a TCP line stream, TLS, or a
/// WebSocket): something to write frames to and to close. Both may be called from any thread.
public protocol SignalConnection: AnyObject, Sendable {
    /// Writes one frame (a line on TCP; a text message on WebSocket). No terminator is included.
    func send(_ frame: String)
    /// Closes the connection after the frames already sent.
    func close()
    /// The peer, for logs (an address, never an identity).
    var peer: String { get }
}

/// The merged accounts (store ∪ accounts file) as the session machines read them.
public struct AccountTableDirectory: AccountDirectory {
    public let table: AccountTable

    public init(table: AccountTable) {
        self.table = table
    }

    public func device(user: SignalName, device: SignalName) -> DevicePublicBundle? {
        table.device(user: user.text, device: device.text)
    }

    public func devices(of user: SignalName) -> [(name: SignalName, bundle: DevicePublicBundle)] {
        table.devices(of: user.text).compactMap { d in SignalName(d.name).map { (name: $0, bundle: d.bundle) } }
    }
}

/// Tunables of the hub, in milliseconds where they are times.
public struct SignalHubConfiguration: Sendable {
    public var session: SessionConfiguration
    public var calls: CallBookConfiguration
    /// Events a device may have unacknowledged before new ones are refused for it.
    public var queueCapacity: Int
    /// Undelivered messages expire after this long.
    public var messageTTL: Duration

    public init(session: SessionConfiguration = SessionConfiguration(), calls: CallBookConfiguration = CallBookConfiguration(),
                queueCapacity: Int = 1024, messageTTL: Duration = .seconds(30 * 86400)) {
        self.session = session
        self.calls = calls
        self.queueCapacity = queueCapacity
        self.messageTTL = messageTTL
    }
}
