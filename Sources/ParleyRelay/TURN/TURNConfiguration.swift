import NIOConcurrencyHelpers
import ParleyWire

/// Everything the TURN core decides with (RFC 8656). Plain values; times are milliseconds.
public struct TURNConfiguration: Sendable {
    /// Long-term credentials; every TURN request must carry valid ones.
    public var authentication: LongTermAuthenticator
    /// Allocation lifetimes in seconds (RFC 8656 §3.2: 10 minutes by default; we cap requests at 1 hour).
    public var defaultLifetime: UInt32
    public var maxLifetime: UInt32
    /// Permission (RFC 8656 §9: 300 s) and channel binding (§12: 600 s) lifetimes, in milliseconds.
    public var permissionLifetime: UInt64
    public var channelLifetime: UInt64
    /// After a channel binding expires, neither its number nor its peer may be bound to anything else
    /// for this long (§12: 5 minutes), so late packets cannot reach the wrong peer.
    public var channelCooldown: UInt64
    /// How long a RESERVATION-TOKEN's port is held (§7.2: "on the order of 30 seconds").
    public var reservationLifetime: UInt64
    /// Families a relayed address can have (a relay IP is configured for them).
    public var relayIPv4: Bool
    public var relayIPv6: Bool
    /// Advertised relay IPs for a server behind NAT: XOR-RELAYED-ADDRESS carries this IP with the
    /// relay socket's port. nil = the bound address.
    public var externalIPv4: STUNAddress?
    public var externalIPv6: STUNAddress?
    /// Quotas: allocations per username (486 beyond) and in total on this server (508 beyond).
    public var maxAllocationsPerUser: Int
    public var maxAllocations: Int
    /// Permissions (peer IPs, ChannelBind's included) one allocation may hold at once; a request that
    /// would install more gets 508 and installs nothing. Without it one authenticated client could grow
    /// its allocation without bound (each permission is memory, and work for the sweep).
    public var maxPermissionsPerAllocation: Int
    /// Per-allocation bandwidth cap in bytes per second, both directions together; nil = none.
    public var bandwidthLimit: Int?
    public var peerPolicy: PeerPolicy
    public var software: String?
    /// An unauthenticated answer (401/438/400) is at most this many bytes longer than the request.
    public var amplificationAllowance: Int

    public init(authentication: LongTermAuthenticator, defaultLifetime: UInt32 = 600, maxLifetime: UInt32 = 3600,
                permissionLifetime: UInt64 = 300_000, channelLifetime: UInt64 = 600_000, channelCooldown: UInt64 = 300_000,
                reservationLifetime: UInt64 = 30_000, relayIPv4: Bool = true, relayIPv6: Bool = false,
                externalIPv4: STUNAddress? = nil, externalIPv6: STUNAddress? = nil, maxAllocationsPerUser: Int = 32,
                maxAllocations: Int = 20_000, maxPermissionsPerAllocation: Int = 256, bandwidthLimit: Int? = nil,
                peerPolicy: PeerPolicy = PeerPolicy(), software: String? = "parley", amplificationAllowance: Int = 64) {
        self.authentication = authentication
        self.defaultLifetime = defaultLifetime
        self.maxLifetime = maxLifetime
        self.permissionLifetime = permissionLifetime
        self.channelLifetime = channelLifetime
        self.channelCooldown = channelCooldown
        self.reservationLifetime = reservationLifetime
        self.relayIPv4 = relayIPv4
        self.relayIPv6 = relayIPv6
        self.externalIPv4 = externalIPv4
        self.externalIPv6 = externalIPv6
        self.maxAllocationsPerUser = maxAllocationsPerUser
        self.maxAllocations = maxAllocations
        self.maxPermissionsPerAllocation = maxPermissionsPerAllocation
        self.bandwidthLimit = bandwidthLimit
        self.peerPolicy = peerPolicy
        self.software = software
        self.amplificationAllowance = amplificationAllowance
    }
}

/// Allocation counts shared by every shard (event loop) of one server, for the quotas. Touched only
/// when an allocation is made or released, never on the data path.
public final class TURNQuota: Sendable {
    private struct State {
        var total = 0
        var perUser: [String: Int] = [:]
    }
    private let state = NIOLockedValueBox(State())
    public let maxTotal: Int
    public let maxPerUser: Int

    public init(maxTotal: Int, maxPerUser: Int) {
        self.maxTotal = maxTotal
        self.maxPerUser = maxPerUser
    }

    public enum Refusal: Sendable, Equatable { case user, total }

    /// Takes one allocation for `user`, or says which quota is full.
    public func take(_ user: String) -> Refusal? {
        state.withLockedValue { s in
            if s.total >= maxTotal { return .total }
            let n = s.perUser[user, default: 0]
            if n >= maxPerUser { return .user }
            s.total += 1
            s.perUser[user] = n + 1
            return nil
        }
    }

    public func release(_ user: String) {
        state.withLockedValue { s in
            guard let n = s.perUser[user] else { return }
            s.total -= 1
            s.perUser[user] = n > 1 ? n - 1 : nil
        }
    }

    public var total: Int { state.withLockedValue { $0.total } }
}
