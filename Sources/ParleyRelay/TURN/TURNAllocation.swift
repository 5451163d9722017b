import NIOCore
import ParleyWire

/// A client's side of the 5-tuple (RFC 8656 §2): its address and the transport. The server side is
/// implicit: each shard (UDP socket, TCP connection) keeps its own allocations.
public struct TURNClientKey: Hashable, Sendable, CustomStringConvertible {
    public var address: STUNAddress
    public var transport: STUNTransport

    public init(address: STUNAddress, transport: STUNTransport) {
        self.address = address
        self.transport = transport
    }

    public var description: String { "\(transport.rawValue):\(address)" }
}

/// One relayed transport address and the I/O layer's handle for its socket.
public struct TURNRelayEndpoint<Relay> {
    public let relay: Relay
    /// The address advertised in XOR-RELAYED-ADDRESS (external IP, bound port).
    public let address: STUNAddress

    public init(relay: Relay, address: STUNAddress) {
        self.relay = relay
        self.address = address
    }
}

/// Why a packet was not relayed (a metric label: a fixed, small set).
public enum TURNDropReason: String, Sendable, CaseIterable {
    /// No allocation for this client (or it is still being made).
    case noAllocation = "no_allocation"
    /// No unexpired permission for the peer's IP (RFC 8656 §9).
    case noPermission = "no_permission"
    /// ChannelData on a channel that is not bound (§12.5).
    case noChannel = "no_channel"
    /// Over the allocation's bandwidth cap.
    case bandwidth
    /// A Send indication to a peer the policy refuses.
    case deniedPeer = "denied_peer"
    /// Not a well-formed ChannelData/Send indication, or a STUN message that gets no answer.
    case malformed
    /// A Send indication asking for DONT-FRAGMENT on an allocation that was not made with it.
    case fragmentation
    /// A retransmitted Allocate while the first is still binding its relay socket.
    case pending
    /// A datagram larger than the relay forwards (it would have been truncated).
    case oversize
    /// An unauthenticated request whose smallest possible answer (the 401/438 challenge) would exceed
    /// the amplification budget (request + allowance): silence is the only answer within it.
    case overBudget = "over_budget"
}

/// One allocation (RFC 8656 §2.2): relayed addresses, permissions, channels, lifetime. It belongs to
/// one event loop; the relay socket's handler holds a reference and reads it without a lookup.
public final class TURNAllocation<Relay> {
    public let client: TURNClientKey
    /// The client's address as NIO wants it, converted once.
    public let clientSocketAddress: SocketAddress
    public let username: String
    /// Unix milliseconds after which the allocation is gone.
    public internal(set) var expiry: UInt64
    /// One or two relayed addresses (IPv4 and/or IPv6); empty while the relay socket is being bound.
    public internal(set) var relays: [TURNRelayEndpoint<Relay>] = []
    /// The Allocate's transaction, to recognise its retransmission (§7.2 step 2).
    let transactionID: STUNTransactionID
    public let dontFragment: Bool
    var pending = true
    /// What the Allocate success carried besides addresses and lifetime, to repeat to a retransmission.
    var additionalRefused: STUNErrorCode?
    var reservationToken: UInt64?
    /// Permissions by peer IP (port 0), value = expiry. Written through ``permit(_:until:)`` only, which
    /// keeps ``nextPermissionExpiry``.
    private(set) var permissions: [STUNAddress: UInt64] = [:]
    private(set) var channels: [UInt16: ChannelBinding] = [:]
    private(set) var channelByPeer: [STUNAddress: UInt16] = [:]
    var bucket: TokenBucket?
    /// No permission expires before this, and no channel's cooldown ends before ``nextChannelRelease``
    /// (lower bounds: a refresh may push the real earliest later). The once-a-second sweep looks at the
    /// tables only once one of them has passed, so an allocation with nothing due costs two comparisons.
    private var nextPermissionExpiry = UInt64.max
    private var nextChannelRelease = UInt64.max

    struct ChannelBinding {
        let peer: STUNAddress
        let peerSocketAddress: SocketAddress
        /// Relaying stops at `expiry`; the number and peer stay reserved until `cooldownEnd`.
        var expiry: UInt64
        var cooldownEnd: UInt64
    }

    init(client: TURNClientKey, username: String, expiry: UInt64, transactionID: STUNTransactionID, dontFragment: Bool,
         bandwidthLimit: Int?, now: UInt64) {
        self.client = client
        self.clientSocketAddress = client.address.socketAddress()
        self.username = username
        self.expiry = expiry
        self.transactionID = transactionID
        self.dontFragment = dontFragment
        self.bucket = bandwidthLimit.map { TokenBucket(rate: $0, now: now) }
    }

    /// Number of permissions and channels held (unexpired or not yet swept).
    public var permissionCount: Int { permissions.count }
    public var channelCount: Int { channels.count }

    func hasPermission(_ peer: STUNAddress, now: UInt64) -> Bool {
        guard let expiry = permissions[peer.withPort(0)] else { return false }
        return expiry > now
    }

    /// Installs or refreshes the permission for a peer IP (port ignored) until `expiry`.
    func permit(_ peer: STUNAddress, until expiry: UInt64) {
        permissions[peer.withPort(0)] = expiry
        nextPermissionExpiry = min(nextPermissionExpiry, expiry)
    }

    /// Whether permissions for all of `peers` fit within `limit` per allocation. A peer IP already held
    /// costs nothing (refreshing is always allowed); a peer named twice counts once. Expired permissions
    /// the sweep has not reached yet are dropped first rather than counted against the client.
    func hasRoom(for peers: [STUNAddress], limit: Int, now: UInt64) -> Bool {
        func added() -> Int {
            var new = Set<STUNAddress>()
            for p in peers where permissions[p.withPort(0)] == nil { new.insert(p.withPort(0)) }
            return new.count
        }
        if permissions.count + added() <= limit { return true }
        guard nextPermissionExpiry <= now else { return false }
        sweepPermissions(now: now)
        return permissions.count + added() <= limit
    }

    /// Binds `number` to `binding.peer`, releasing the number's previous peer (the caller checked that
    /// neither is still reserved for something else).
    func bind(_ number: UInt16, _ binding: ChannelBinding) {
        if let stale = channels[number], stale.peer != binding.peer, channelByPeer[stale.peer] == number {
            channelByPeer[stale.peer] = nil
        }
        channels[number] = binding
        channelByPeer[binding.peer] = number
        nextChannelRelease = min(nextChannelRelease, binding.cooldownEnd)
    }

    /// How data from `peer` reaches the client (RFC 8656 §11.3, §12.6).
    public enum Delivery: Equatable {
        /// As ChannelData on this channel.
        case channel(UInt16)
        /// As a Data indication.
        case indication
        case drop(TURNDropReason)
    }

    /// Data of `length` bytes arrived on a relay socket from `peer`.
    public func fromPeer(_ peer: STUNAddress, length: Int, now: UInt64) -> Delivery {
        guard !pending, expiry > now else { return .drop(.noAllocation) }
        guard hasPermission(peer, now: now) else { return .drop(.noPermission) }
        if bucket != nil, !bucket!.take(length, now: now) { return .drop(.bandwidth) }
        if let number = channelByPeer[peer], let binding = channels[number], binding.expiry > now {
            return .channel(number)
        }
        return .indication
    }

    /// ChannelData from the client on `number`: the peer to send it to (as NIO and as STUN spell it, both
    /// kept by the binding), or why not (§12.5).
    public func fromClient(channel number: UInt16, length: Int,
                           now: UInt64) -> (peer: SocketAddress?, peerAddress: STUNAddress?, drop: TURNDropReason?) {
        guard !pending, expiry > now else { return (nil, nil, .noAllocation) }
        guard let binding = channels[number], binding.expiry > now else { return (nil, nil, .noChannel) }
        guard hasPermission(binding.peer, now: now) else { return (nil, nil, .noPermission) }
        if bucket != nil, !bucket!.take(length, now: now) { return (nil, nil, .bandwidth) }
        return (binding.peerSocketAddress, binding.peer, nil)
    }

    /// The relay socket for a peer's family.
    public func relay(for peer: STUNAddress) -> Relay? {
        endpoint(for: peer)?.relay
    }

    /// The relayed address (and its socket) that talks to a peer of this family.
    public func endpoint(for peer: STUNAddress) -> TURNRelayEndpoint<Relay>? {
        relays.first { $0.address.isIPv4 == peer.isIPv4 }
    }

    /// Drops expired permissions and channels whose cooldown is over; nothing is looked at until the
    /// earliest of them is due.
    func sweep(now: UInt64) {
        sweepPermissions(now: now)
        guard nextChannelRelease <= now else { return }
        // Collected first, then removed: removing while iterating would copy the table.
        var released: [(UInt16, STUNAddress)] = []
        var next = UInt64.max
        for (number, binding) in channels {
            if binding.cooldownEnd <= now { released.append((number, binding.peer)) } else { next = min(next, binding.cooldownEnd) }
        }
        for (number, peer) in released {
            channels[number] = nil
            if channelByPeer[peer] == number { channelByPeer[peer] = nil }
        }
        nextChannelRelease = next
    }

    /// How many times the sweep walked the permission table (tests check it walks only when one is due).
    private(set) var permissionWalks = 0

    private func sweepPermissions(now: UInt64) {
        guard nextPermissionExpiry <= now else { return }
        permissionWalks += 1
        var expired: [STUNAddress] = []
        var next = UInt64.max
        for (peer, expiry) in permissions {
            if expiry <= now { expired.append(peer) } else { next = min(next, expiry) }
        }
        for peer in expired { permissions[peer] = nil }
        nextPermissionExpiry = next
    }
}

/// A token bucket in bytes, refilled per millisecond, holding at most one second's worth.
struct TokenBucket {
    let rate: Int
    var tokens: Int
    var last: UInt64

    init(rate: Int, now: UInt64) {
        self.rate = rate
        self.tokens = rate
        self.last = now
    }

    mutating func take(_ n: Int, now: UInt64) -> Bool {
        if now > last {
            tokens = min(rate, tokens + Int(min(now - last, 1000)) * rate / 1000)
            last = now
        }
        guard tokens >= n else { return false }
        tokens -= n
        return true
    }
}
