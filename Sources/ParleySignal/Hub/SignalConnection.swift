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
    /// Who may make an account (`signal.registration`, docs/PROTOCOL.md §3.8).
    public var registration: Registration
    /// How long a link request waits for a device holding the user key, ms.
    public var linkRequestLifetime: UInt64 = 600_000
    /// Link requests waiting at once per user (more are refused `too-many`).
    public var linkRequestsPerUser = 8

    /// `signal.registration`.
    public enum Registration: String, Sendable, Hashable, CaseIterable {
        /// With a valid invite only (the default).
        case invite
        /// Anyone may register a free name (an invite is still honoured, and still used up).
        case open
        /// Nobody: accounts come from the operator's `parley user` only.
        case closed
    }

    public init(session: SessionConfiguration = SessionConfiguration(), calls: CallBookConfiguration = CallBookConfiguration(),
                queueCapacity: Int = 1024, messageTTL: Duration = .seconds(30 * 86400), registration: Registration = .invite) {
        self.session = session
        self.calls = calls
        self.queueCapacity = queueCapacity
        self.messageTTL = messageTTL
        self.registration = registration
    }
}
