import NIOCore
import ParleyWire

/// The client side of one TURN allocation (RFC 8656, long-term credentials of RFC 8489 §9.2) over one
/// transport to one server, as a sans-I/O state machine.
///
/// The I/O layer owns the socket and one timer. It calls ``start(now:)``, hands every datagram from the
/// server to ``receive(_:now:)-([UInt8],_)``, calls ``tick(now:)`` when ``nextDeadline`` passes, and
/// performs the returned ``Action``s in order: ``Action/send(_:)`` goes to the server; the rest are
/// news for the application. After any call it re-arms its timer to ``nextDeadline``. A tick that comes
/// early does nothing, so a timer that could not be cancelled is harmless.
///
/// Time is a parameter: microseconds on any monotonic clock (e.g. `ContinuousClock` since the process
/// started), never wall time.
///
/// What it does:
/// - Allocate (§7.1): first without credentials, expecting 401 with REALM and NONCE; then with USERNAME,
///   REALM, NONCE, the MAC and FINGERPRINT. When the challenge offers PASSWORD-ALGORITHMS, SHA-256 is
///   chosen if offered (else MD5), the list is echoed and the request carries MESSAGE-INTEGRITY-SHA256;
///   otherwise the key is MD5 and the MAC MESSAGE-INTEGRITY. 438 (Stale Nonce) is retried with the new
///   nonce, up to ``maxStaleNonceRetries`` times per request; a 401 to a request that already carried
///   a nonce from a challenge to it means wrong credentials.
/// - Refresh (§7.3) a margin before expiry (``Configuration/refreshMargin``, at most a fifth of the
///   lifetime), counted from when the granting request was first sent; ``close(now:)`` sends LIFETIME 0.
/// - Permissions (§9) per peer IP, batched, refreshed every 240 s while wanted; channels (§12) numbered
///   from 0x4000, refreshed every 540 s, each also keeping its peer's permission (which a ChannelBind
///   installs for only 300 s).
/// - Data (§11, §12): ChannelData to a peer with a bound channel, a Send indication otherwise; Data
///   indications and ChannelData from the server become ``Action/data(_:from:)``.
/// - Requests are retransmitted over UDP at RTO, 2·RTO, 4·RTO… up to Rc sends, timing out Rm·RTO after
///   the last (RFC 8489 §6.2.1: with the defaults, sends at 0, 100, 300, 700, 1500, 3100, 6300 ms and a
///   timeout at 7900 ms).
/// - Success responses must verify with the request's key (MESSAGE-INTEGRITY or -SHA256), else they are
///   dropped; so are error responses with a MAC that does not verify, and unprotected ones other than
///   400, 401 and 438. Anything that does not parse is ignored.
public struct TURNClient: Sendable {
    /// ``close(now:)`` came while the Allocate was in flight: release the allocation as soon as it exists.
    var releaseWhenAllocated = false
    /// Where the allocation is in its life.
    private enum State: Sendable {
        /// Made; ``start(now:)`` not called yet.
        case idle
        /// The Allocate transaction (challenge leg, then authenticated) is in flight.
        case allocating
        /// The server holds the allocation.
        case allocated(Allocation)
        /// Refresh with LIFETIME 0 is in flight.
        case closing
        /// Closed or failed: every call returns nothing.
        case finished
    }

    /// The live allocation as this side knows it.
    struct Allocation: Sendable {
        let relayed: STUNAddress
        let mapped: STUNAddress?
        /// When the server forgets it, at the latest, µs.
        var expiry: UInt64
        /// When to send the next Refresh.
        var refreshAt: UInt64
        /// The Refresh in flight, if any.
        var refreshing: STUNTransactionID?
    }

    /// A peer IP we want a permission for.
    struct Permission: Sendable {
        /// The server has (had) it installed.
        var installed = false
        /// When to send CreatePermission next; `.max` while only a pending ChannelBind stands for it.
        var refreshAt: UInt64
        /// The CreatePermission in flight, if any.
        var inFlight: STUNTransactionID?
        /// Say ``Action/permissionCreated(_:)`` when installed (asked for by ``permit(_:now:)``).
        var announce: Bool
    }

    /// A channel number reserved for one peer transport address.
    struct Channel: Sendable {
        let peer: STUNAddress
        /// A ChannelBind has succeeded: data to the peer goes as ChannelData.
        var bound = false
        var refreshAt: UInt64
        var inFlight: STUNTransactionID?
    }

    /// 438 retries per request before giving up.
    public static let maxStaleNonceRetries = 3

    /// The server, as configured.
    public let server: STUNAddress
    public let username: String
    let settings: Settings
    var credentials: TURNClientCredentials
    private var state = State.idle
    var transactions: [STUNTransactionID: TURNClientTransaction] = [:]
    /// By peer IP (port 0).
    var permissions: [STUNAddress: Permission] = [:]
    var channels: [UInt16: Channel] = [:]
    var channelByPeer: [STUNAddress: UInt16] = [:]
    private var nextChannel: UInt16 = ChannelData.channelRange.lowerBound

    /// The configuration without the password (which only ``credentials`` holds, until it is turned into keys).
    struct Settings: Sendable {
        let lifetime: UInt32
        let addressFamily: AddressFamily
        let transport: Transport
        let retransmission: TURNClientTransaction.Retransmission
        let refreshMargin: UInt64
        let permissionRefreshInterval: UInt64
        let channelRefreshInterval: UInt64
        let maxPeersPerPermissionRequest: Int
    }

    public init(configuration c: Configuration) {
        server = c.server
        username = c.username
        credentials = TURNClientCredentials(username: c.username, password: c.password, allowsSHA256: c.allowsSHA256)
        settings = Settings(
            lifetime: c.lifetime, addressFamily: c.addressFamily, transport: c.transport,
            retransmission: .init(rto: c.rto, maxTransmissions: max(1, c.maxTransmissions),
                                  lastWaitMultiplier: c.lastWaitMultiplier, reliable: c.transport == .stream),
            refreshMargin: c.refreshMargin, permissionRefreshInterval: c.permissionRefreshInterval,
            channelRefreshInterval: c.channelRefreshInterval,
            maxPeersPerPermissionRequest: max(1, c.maxPeersPerPermissionRequest))
    }

    // MARK: Reading the state

    /// The relayed transport address while the allocation is live.
    public var relayedAddress: STUNAddress? {
        if case .allocated(let a) = state { return a.relayed }
        return nil
    }

    /// The server-reflexive address (XOR-MAPPED-ADDRESS of the Allocate answer) while the allocation is live.
    public var mappedAddress: STUNAddress? {
        if case .allocated(let a) = state { return a.mapped }
        return nil
    }

    /// When the allocation expires unless refreshed, µs (live allocations only).
    public var expiry: UInt64? {
        if case .allocated(let a) = state { return a.expiry }
        return nil
    }

    /// True after ``Action/failed(_:)`` or ``Action/closed``.
    public var isFinished: Bool {
        if case .finished = state { return true }
        return false
    }

    /// The channel bound to `peer`, if a ChannelBind for it has succeeded.
    public func channel(for peer: STUNAddress) -> UInt16? {
        guard let n = channelByPeer[peer], channels[n]?.bound == true else { return nil }
        return n
    }

    /// True if the permission for `peer`'s IP is installed (as far as this side knows).
    public func hasPermission(for peer: STUNAddress) -> Bool {
        permissions[peer.withPort(0)]?.installed == true
    }

    /// When ``tick(now:)`` next has something to do, µs; nil when nothing is scheduled. The I/O layer
    /// arms its one timer for this after every call.
    public var nextDeadline: UInt64? {
        var next = transactions.values.map(\.deadline).min()
        func consider(_ t: UInt64) { next = min(next ?? t, t) }
        guard case .allocated(let a) = state else { return next }
        consider(a.expiry)
        if a.refreshing == nil { consider(a.refreshAt) }
        for p in permissions.values where p.inFlight == nil { consider(p.refreshAt) }
        for c in channels.values where c.inFlight == nil { consider(c.refreshAt) }
        return next
    }

    // MARK: Events

    /// Begins: sends the Allocate (without credentials: the server's 401 supplies realm and nonce).
    public mutating func start(now: UInt64) -> [Action] {
        switch state {
        // The only way out of idle.
        case .idle:
            state = .allocating
            return [begin(.allocate, now: now)]
        // Started already.
        case .allocating, .allocated, .closing, .finished:
            return []
        }
    }

    /// Deletes the allocation (Refresh with LIFETIME 0) and ends with ``Action/closed``. Before the
    /// allocation exists there is nothing to delete: the client just stops.
    public mutating func close(now: UInt64) -> [Action] {
        switch state {
        // Nothing on the server yet.
        case .idle:
            finish()
            return [.closed]
        // An Allocate in flight may still make one: let it finish, then release it at once (Refresh
        // LIFETIME 0), so a client that gave up on a slower server leaves nothing behind there.
        case .allocating:
            releaseWhenAllocated = true
            return []
        // Everything else stops; the one Refresh LIFETIME 0 is all that is left.
        case .allocated:
            transactions = [:]
            permissions = [:]
            channels = [:]
            channelByPeer = [:]
            state = .closing
            return [begin(.refresh(lifetime: 0), now: now)]
        // Closing or closed already.
        case .closing, .finished:
            return []
        }
    }

    /// Asks for a permission for `peer`'s IP (the port does not matter, RFC 8656 §9) and keeps it alive
    /// until ``revokePermission(for:)``. Before the allocation exists the request waits for it.
    public mutating func permit(_ peer: STUNAddress, now: UInt64) -> [Action] {
        permit([peer], now: now)
    }

    /// Asks for several permissions at once (one CreatePermission for all that are new).
    public mutating func permit(_ peers: [STUNAddress], now: UInt64) -> [Action] {
        switch state {
        case .idle, .allocating, .allocated:
            break
        case .closing, .finished:
            return []
        }
        var out: [Action] = []
        for peer in peers {
            let ip = peer.withPort(0)
            if var p = permissions[ip] {
                // Already there (perhaps for a channel): announce it now or when it is installed.
                if p.installed, p.announce == false, !out.contains(.permissionCreated(ip)) {
                    out.append(.permissionCreated(ip))
                } else if !p.installed {
                    p.announce = true
                    if p.inFlight == nil { p.refreshAt = min(p.refreshAt, now) }
                    permissions[ip] = p
                }
            } else {
                permissions[ip] = Permission(refreshAt: now, announce: true)
            }
        }
        return out + maintain(now: now)
    }

    /// Stops refreshing the permission for `peer`'s IP; the server drops it within 300 s. A channel to a
    /// peer at that IP keeps refreshing it regardless.
    public mutating func revokePermission(for peer: STUNAddress) {
        let ip = peer.withPort(0)
        guard !channelByPeer.keys.contains(where: { $0.withPort(0) == ip }) else { return }
        permissions[ip] = nil
    }

    /// Binds a channel (the next free number from 0x4000) to `peer`'s transport address, keeps it and the
    /// peer's permission alive; says ``Action/channelBound(_:channel:)`` when done. Until then data to the
    /// peer goes by Send indication, which needs a permission (``permit(_:now:)``) to get through.
    public mutating func bindChannel(_ peer: STUNAddress, now: UInt64) -> [Action] {
        switch state {
        case .idle, .allocating, .allocated:
            break
        case .closing, .finished:
            return []
        }
        if let n = channelByPeer[peer] {
            return channels[n]?.bound == true ? [.channelBound(peer, channel: n)] : []
        }
        guard let number = freeChannelNumber() else {
            return [.channelFailed(peer, .errorResponse(.channelBind, code: 508, reason: "no free channel number"))]
        }
        channels[number] = Channel(peer: peer, refreshAt: now)
        channelByPeer[peer] = number
        // Numbers are not reused at once: the server keeps a released one for its peer a while (§12).
        nextChannel = number == ChannelData.channelRange.upperBound ? ChannelData.channelRange.lowerBound : number + 1
        let ip = peer.withPort(0)
        if permissions[ip] == nil {
            // The ChannelBind installs it; CreatePermission takes over from 240 s after that.
            permissions[ip] = Permission(refreshAt: .max, announce: false)
        }
        return maintain(now: now)
    }

    /// Sends `payload` to `peer` through the relay: ChannelData if a channel is bound to it, else a Send
    /// indication (XOR-PEER-ADDRESS, DATA). Nothing before the allocation exists or after it ends.
    public mutating func send(_ payload: [UInt8], to peer: STUNAddress, now: UInt64) -> [Action] {
        guard case .allocated = state else { return [] }
        if let n = channelByPeer[peer], channels[n]?.bound == true {
            return [.send(channelData(n, payload))]
        }
        return [.send(sendIndication(payload, to: peer))]
    }

    /// A datagram (or one framed message) from the server.
    public mutating func receive(_ datagram: [UInt8], now: UInt64) -> [Action] {
        receive(ByteBuffer(bytes: datagram), now: now)
    }

    /// A datagram (or one framed message) from the server: a response to one of our requests, a Data
    /// indication or ChannelData. Anything else, or anything malformed, is ignored.
    public mutating func receive(_ datagram: ByteBuffer, now: UInt64) -> [Action] {
        guard let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self) else { return [] }
        switch state {
        case .allocating, .allocated, .closing:
            break
        case .idle, .finished:
            return []
        }
        if ChannelData.looksLikeChannelData(first) {
            guard case .allocated = state, case .success(let d) = ChannelData.decodeDatagram(datagram),
                let channel = channels[d.channel]
            else { return [] }
            return [.data(Array(d.data.readableBytesView), from: channel.peer)]
        }
        guard STUNDecoder.looksLikeSTUN(first), let m = try? STUNDecoder.decode(datagram), m.header.hasMagicCookie
        else { return [] }
        switch m.type.messageClass {
        case .indication:
            guard case .allocated = state, m.type.method == .data, let peer = m.address(of: .xorPeerAddress, xor: true),
                let data = m.value(of: .data)
            else { return [] }
            return [.data(Array(data.readableBytesView), from: peer)]
        case .successResponse, .errorResponse:
            return response(m, now: now)
        case .request:
            return []
        }
    }

    /// The timer: retransmissions and timeouts due by `now`, then refreshes (allocation, permissions,
    /// channels) due by `now`.
    public mutating func tick(now: UInt64) -> [Action] {
        var out: [Action] = []
        let due = transactions.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }
        for (id, _) in due {
            guard var t = transactions[id] else { continue }  // ended by an earlier failure in this loop
            if t.fire(now: now, settings.retransmission) {
                transactions[id] = t
                out.append(.send(t.bytes))
            } else {
                transactions[id] = nil
                out += timedOut(t, id: id, now: now)
            }
        }
        return out + maintain(now: now)
    }

    /// Sends a Refresh now (unless one is in flight), to learn whether the allocation is still ours: a
    /// client whose NAT mapping changed reaches the server from a 5-tuple without an allocation and gets
    /// 437 (``Action/failed(_:)``); a live allocation answers ``Action/refreshed(lifetime:)``.
    public mutating func refreshNow(now: UInt64) -> [Action] {
        guard case .allocated(var a) = state, a.refreshing == nil else { return [] }
        a.refreshAt = now
        state = .allocated(a)
        return maintain(now: now)
    }

    // MARK: Internals shared with the extensions

    /// Sends what is due while the allocation is live: expiry, the Refresh, CreatePermissions (batched),
    /// ChannelBinds.
    mutating func maintain(now: UInt64) -> [Action] {
        guard case .allocated(var a) = state else { return [] }
        if now >= a.expiry { return fail(.expired) }
        var out: [Action] = []
        if a.refreshing == nil, a.refreshAt <= now {
            let action = begin(.refresh(lifetime: settings.lifetime), now: now)
            a.refreshing = lastBegun
            state = .allocated(a)
            out.append(action)
        }
        let duePermissions = permissions.filter { $0.value.inFlight == nil && $0.value.refreshAt <= now }
            .keys.sorted { $0.description < $1.description }
        var start = 0
        while start < duePermissions.count {
            let end = min(start + settings.maxPeersPerPermissionRequest, duePermissions.count)
            let batch = Array(duePermissions[start..<end])
            start += batch.count
            out.append(begin(.createPermission(batch), now: now))
            for ip in batch { permissions[ip]?.inFlight = lastBegun }
        }
        for n in channels.keys.sorted() where channels[n]!.inFlight == nil && channels[n]!.refreshAt <= now {
            out.append(begin(.channelBind(n, peer: channels[n]!.peer), now: now))
            channels[n]!.inFlight = lastBegun
        }
        return out
    }

    /// Ends everything, reporting `error`.
    mutating func fail(_ error: TURNClientError) -> [Action] {
        finish()
        return [.failed(error)]
    }

    /// Ends everything.
    mutating func finish() {
        state = .finished
        transactions = [:]
        permissions = [:]
        channels = [:]
        channelByPeer = [:]
    }

    /// The transaction ID of the request ``begin(_:now:staleNonces:freshNonce:)`` made last.
    var lastBegun = STUNTransactionID(high: 0, low: 0)

    private func freeChannelNumber() -> UInt16? {
        var n = nextChannel
        for _ in ChannelData.channelRange {
            if channels[n] == nil { return n }
            n = n == ChannelData.channelRange.upperBound ? ChannelData.channelRange.lowerBound : n + 1
        }
        return nil
    }

    // MARK: State transitions for the response handlers

    /// Allocate succeeded.
    mutating func becomeAllocated(relayed: STUNAddress, mapped: STUNAddress?, lifetime: UInt32, since: UInt64,
                                  now: UInt64) -> [Action] {
        guard case .allocating = state else { return [] }
        let expiry = since + UInt64(lifetime) * 1_000_000
        state = .allocated(Allocation(relayed: relayed, mapped: mapped, expiry: expiry,
                                      refreshAt: refreshTime(expiry: expiry, lifetime: lifetime)))
        if releaseWhenAllocated { return close(now: now) }
        return [.allocated(relayed: relayed, mapped: mapped, lifetime: lifetime)] + maintain(now: now)
    }

    /// A Refresh with a non-zero lifetime ended: granted `lifetime` counting from `since`, or (nil) failed
    /// without an answer, so try again at once while the allocation lasts.
    mutating func refreshEnded(lifetime: UInt32?, since: UInt64, now: UInt64) -> [Action] {
        guard case .allocated(var a) = state else { return [] }
        a.refreshing = nil
        guard let lifetime else {
            a.refreshAt = now
            state = .allocated(a)
            return []
        }
        a.expiry = since + UInt64(lifetime) * 1_000_000
        a.refreshAt = refreshTime(expiry: a.expiry, lifetime: lifetime)
        state = .allocated(a)
        return [.refreshed(lifetime: lifetime)]
    }

    /// The Refresh with LIFETIME 0 ended, answered or not.
    mutating func closeEnded() -> [Action] {
        guard case .closing = state else { return [] }
        finish()
        return [.closed]
    }

    /// True if `id` is the allocation's Refresh in flight.
    func isRefresh(_ id: STUNTransactionID) -> Bool {
        if case .allocated(let a) = state { return a.refreshing == id }
        return false
    }

    /// A 438/401 retry took over the Refresh `old`.
    mutating func reassignRefresh(from old: STUNTransactionID, to new: STUNTransactionID) {
        guard case .allocated(var a) = state, a.refreshing == old else { return }
        a.refreshing = new
        state = .allocated(a)
    }

    /// True while the Allocate is in flight.
    var isAllocating: Bool {
        if case .allocating = state { return true }
        return false
    }

    /// The refresh time: `margin` before expiry, but never more than a fifth of the lifetime before it.
    private func refreshTime(expiry: UInt64, lifetime: UInt32) -> UInt64 {
        let margin = min(settings.refreshMargin, UInt64(lifetime) * 1_000_000 / 5)
        return expiry - margin
    }
}
