import NIOCore
import ParleyWire

/// The TURN server's decisions (RFC 8656, with RFC 6156's address families folded in), free of I/O.
///
/// One value per shard: a UDP listening socket (SO_REUSEPORT keeps each client on one socket, so on one
/// event loop) or a TCP/TLS connection. It owns that shard's allocations and never touches a socket:
/// requests come in as decoded messages, answers are written into a caller-supplied buffer, and what the
/// I/O layer must do (bind a relay socket, send a datagram to a peer, close relay sockets) comes back
/// as an ``Action``. `Relay` is the I/O layer's handle for a relay socket (a NIO `Channel` in the
/// server, a plain value in tests). Time is injected as unix milliseconds.
public struct TURNServer<Relay> {
    public let configuration: TURNConfiguration
    public let quota: TURNQuota
    private let softwareBytes: [UInt8]?
    private(set) var allocations: [TURNClientKey: TURNAllocation<Relay>] = [:]

    public init(configuration: TURNConfiguration, quota: TURNQuota) {
        self.configuration = configuration
        self.quota = quota
        self.softwareBytes = configuration.software.map { Array($0.utf8.prefix(763)) }
    }

    /// What the I/O layer does after ``handle(_:from:now:into:)``.
    public enum Action {
        /// Send the bytes written into the output buffer to the client. `denial` says why a peer got 403.
        case respond(outcome: STUNServer.Outcome, denial: PeerPolicy.Denial? = nil)
        /// Send nothing.
        case drop(TURNDropReason)
        /// Bind relay socket(s) as the request says, then call ``allocated(_:relays:now:into:)`` or
        /// ``allocationFailed(_:code:now:into:)``, which write the answer.
        case allocate(TURNAllocationRequest)
        /// A Send indication: send `data` to `peer` from `relay`.
        case send(data: ByteBuffer, to: SocketAddress, via: Relay)
        /// Send the answer, then close these relay sockets (the allocation was deleted).
        case respondAndRelease([Relay])
    }

    /// The allocation of a client, if any (pending ones included).
    public func allocation(for client: TURNClientKey) -> TURNAllocation<Relay>? { allocations[client] }
    public var allocationCount: Int { allocations.count }

    // MARK: Requests and indications

    /// Handles one TURN message (any method but Binding, which is ``STUNServer``'s).
    public mutating func handle(_ message: STUNMessage, from client: TURNClientKey, now: UInt64,
                                into out: inout ByteBuffer) -> Action {
        let header = message.header
        guard header.hasMagicCookie else { return .drop(.malformed) }
        switch header.type.messageClass {
        case .indication:
            return header.type.method == .send ? sendIndication(message, from: client, now: now) : .drop(.malformed)
        case .request:
            break
        case .successResponse, .errorResponse:
            return .drop(.malformed)
        }
        var ctx = Context(message: message, client: client, now: now,
                          budget: message.length + configuration.amplificationAllowance)
        switch header.type.method {
        case .allocate, .refresh, .createPermission, .channelBind:
            break
        default:
            return error(.badRequest, ctx, into: &out)
        }
        // RFC 8656 §6.2 / RFC 8489 §9.2.4: every TURN request carries long-term credentials.
        switch configuration.authentication.verify(message, source: client.address, now: now / 1000) {
        case .authenticated(let username, let key, let sha256):
            ctx.username = username
            ctx.integrity = (key, sha256)
        case .badRequest:
            return error(.badRequest, ctx, into: &out)
        case .challenge:
            return challenge(.unauthenticated, ctx, into: &out)
        case .staleNonce:
            return challenge(.staleNonce, ctx, into: &out)
        }
        if let unknown = unknownAttributes(message) {
            let w = STUNMessageWriter(responseTo: header, messageClass: .errorResponse, into: &out)
            w.appendErrorCode(.unknownAttribute, reason: "", into: &out)
            w.appendUnknownAttributes(unknown, into: &out)
            finish(w, ctx, into: &out)
            return .respond(outcome: .error(.unknownAttribute))
        }
        switch header.type.method {
        case .allocate: return allocate(ctx, into: &out)
        case .refresh: return refresh(ctx, into: &out)
        case .createPermission: return createPermission(ctx, into: &out)
        default: return channelBind(ctx, into: &out)
        }
    }

    /// The request being answered, and what the answer needs.
    struct Context {
        let message: STUNMessage
        let client: TURNClientKey
        let now: UInt64
        let budget: Int
        var username = ""
        var integrity: (key: STUNIntegrityKey, sha256: Bool)?
        var fingerprint: Bool { message.fingerprintOffset != nil }
    }

    // MARK: Allocate (RFC 8656 §7.2)

    private mutating func allocate(_ ctx: Context, into out: inout ByteBuffer) -> Action {
        let m = ctx.message
        if let existing = allocations[ctx.client] {
            // A retransmission of the Allocate that made it gets the same answer; anything else is 437.
            guard existing.transactionID == m.transactionID, existing.username == ctx.username else {
                return error(.allocationMismatch, ctx, into: &out)
            }
            if existing.pending { return .drop(.pending) }
            // RFC 8656 §5: "essentially the same response", ADDRESS-ERROR-CODE and RESERVATION-TOKEN included.
            writeAllocateSuccess(existing, ctx: ctx, additionalRefused: existing.additionalRefused,
                                 reservationToken: existing.reservationToken, into: &out)
            return .respond(outcome: .success)
        }
        guard let transport = m.value(of: .requestedTransport) else { return error(.badRequest, ctx, into: &out) }
        guard transport.readableBytes == 4 else { return error(.badRequest, ctx, into: &out) }
        guard transport.getInteger(at: transport.readerIndex, as: UInt8.self) == 17 else {
            return error(.unsupportedTransportProtocol, ctx, into: &out)
        }
        let dontFragment = m.contains(.dontFragment)
        let token = m.value(of: .reservationToken)
        let even = m.value(of: .evenPort)
        let requested = m.value(of: .requestedAddressFamily)
        let additional = m.value(of: .additionalAddressFamily)
        // A malformed LIFETIME or REQUESTED-ADDRESS-FAMILY is a bad request, not a request for the default
        // lifetime or for a family we lack (which would tell the client to retry with another family).
        if Self.malformedLifetime(m) || requested.map({ $0.readableBytes != 4 }) == true {
            return error(.badRequest, ctx, into: &out)
        }
        var reservationToken: UInt64?
        if let token {
            guard token.readableBytes == 8, even == nil, requested == nil, additional == nil else {
                return error(.badRequest, ctx, into: &out)
            }
            reservationToken = token.getInteger(at: token.readerIndex, as: UInt64.self)
        }
        var reserve = false
        if let even {
            guard even.readableBytes == 1 || even.readableBytes == 4 else { return error(.badRequest, ctx, into: &out) }
            reserve = (even.getInteger(at: even.readerIndex, as: UInt8.self)! & 0x80) != 0
            // RFC 8656 §7.2: a reserved pair is of one family.
            if reserve && additional != nil { return error(.badRequest, ctx, into: &out) }
        }
        var families: [STUNAddressFamily] = [.ipv4]
        var additionalRefused: STUNErrorCode?
        if let requested {
            guard additional == nil else { return error(.badRequest, ctx, into: &out) }
            guard let family = Self.family(requested) else { return error(.addressFamilyNotSupported, ctx, into: &out) }
            families = [family]
        }
        if let additional {
            guard Self.family(additional) == .ipv6 else { return error(.badRequest, ctx, into: &out) }
            if configuration.relayIPv6 { families.append(.ipv6) } else { additionalRefused = .addressFamilyNotSupported }
        }
        if families.contains(where: { !supports($0) }) {
            return error(.addressFamilyNotSupported, ctx, into: &out)
        }
        switch quota.take(ctx.username) {
        case .user?: return error(.allocationQuotaReached, ctx, into: &out)
        case .total?: return error(.insufficientCapacity, ctx, into: &out)
        case nil: break
        }
        let lifetime = grantedLifetime(m, refresh: false)
        let allocation = TURNAllocation<Relay>(
            client: ctx.client, username: ctx.username, expiry: ctx.now + UInt64(lifetime) * 1000,
            transactionID: m.transactionID, dontFragment: dontFragment, bandwidthLimit: configuration.bandwidthLimit,
            now: ctx.now)
        allocations[ctx.client] = allocation
        return .allocate(TURNAllocationRequest(
            client: ctx.client, families: families, evenPort: even != nil, reserveNext: reserve,
            reservationToken: reservationToken, dontFragment: dontFragment,
            answer: PendingAnswer(header: m.header, integrity: ctx.integrity, fingerprint: ctx.fingerprint,
                                  additionalRefused: additionalRefused, username: ctx.username)))
    }

    /// The I/O layer bound the relay socket(s): record them and write the success answer. `relays` carry
    /// the bound addresses; the advertised (external) IP replaces the bound one here. Returns nil if
    /// the allocation is gone meanwhile (then the caller closes the sockets and sends nothing).
    public mutating func allocated(_ request: TURNAllocationRequest, relays: [TURNRelayEndpoint<Relay>],
                                   reservationToken: UInt64? = nil, now: UInt64,
                                   into out: inout ByteBuffer) -> TURNAllocation<Relay>? {
        guard let allocation = allocations[request.client], allocation.pending,
            allocation.transactionID == request.answer.header.transactionID
        else { return nil }
        allocation.relays = relays.map { TURNRelayEndpoint(relay: $0.relay, address: advertised($0.address)) }
        allocation.pending = false
        allocation.additionalRefused = request.answer.additionalRefused
        allocation.reservationToken = reservationToken
        let ctx = request.answer
        let w = STUNMessageWriter(responseTo: ctx.header, messageClass: .successResponse, into: &out)
        writeAllocateBody(allocation, w: w, header: ctx.header, now: now, additionalRefused: ctx.additionalRefused,
                          reservationToken: reservationToken, into: &out)
        w.finish(integrity: ctx.integrity, fingerprint: ctx.fingerprint, into: &out)
        return allocation
    }

    /// The relay socket could not be bound (no port, token unknown): forget the allocation and answer
    /// with `code` (508 Insufficient Capacity as a rule).
    public mutating func allocationFailed(_ request: TURNAllocationRequest, code: STUNErrorCode = .insufficientCapacity,
                                          now: UInt64, into out: inout ByteBuffer) {
        guard let allocation = allocations[request.client], allocation.pending,
            allocation.transactionID == request.answer.header.transactionID
        else { return }
        allocations[request.client] = nil
        quota.release(allocation.username)
        let ctx = request.answer
        let w = STUNMessageWriter(responseTo: ctx.header, messageClass: .errorResponse, into: &out)
        w.appendErrorCode(code, into: &out)
        w.finish(integrity: ctx.integrity, fingerprint: ctx.fingerprint, into: &out)
    }

    private func writeAllocateSuccess(_ a: TURNAllocation<Relay>, ctx: Context, additionalRefused: STUNErrorCode?,
                                      reservationToken: UInt64?, into out: inout ByteBuffer) {
        let w = STUNMessageWriter(responseTo: ctx.message.header, messageClass: .successResponse, into: &out)
        writeAllocateBody(a, w: w, header: ctx.message.header, now: ctx.now, additionalRefused: additionalRefused,
                          reservationToken: reservationToken, into: &out)
        finish(w, ctx, into: &out)
    }

    private func writeAllocateBody(_ a: TURNAllocation<Relay>, w: STUNMessageWriter, header: STUNHeader, now: UInt64,
                                   additionalRefused: STUNErrorCode?, reservationToken: UInt64?, into out: inout ByteBuffer) {
        for r in a.relays { w.append(.xorRelayedAddress, address: r.address, xor: true, into: &out) }
        if let code = additionalRefused {
            // RFC 8656 §18.13 ADDRESS-ERROR-CODE: family, reserved, class, number, reason.
            var value: [UInt8] = [STUNAddressFamily.ipv6.rawValue, 0, UInt8(code.rawValue / 100), UInt8(code.rawValue % 100)]
            value += Array(code.reason.utf8)
            w.append(.addressErrorCode, value, into: &out)
        }
        w.append(.lifetime, uint32: UInt32(clamping: ((a.expiry > now ? a.expiry - now : 0) + 999) / 1000), into: &out)
        if let reservationToken {
            w.append(.reservationToken, (0..<8).map { UInt8(truncatingIfNeeded: reservationToken >> UInt64(56 - 8 * $0)) },
                     into: &out)
        }
        w.append(.xorMappedAddress, address: a.client.address, xor: true, into: &out)
        if let softwareBytes { w.append(.software, softwareBytes, into: &out) }
    }

    // MARK: Refresh (§7.3)

    private mutating func refresh(_ ctx: Context, into out: inout ByteBuffer) -> Action {
        guard let a = live(ctx) else { return error(.allocationMismatch, ctx, into: &out) }
        guard a.username == ctx.username else { return error(.wrongCredentials, ctx, into: &out) }
        if Self.malformedLifetime(ctx.message) { return error(.badRequest, ctx, into: &out) }
        if let requested = ctx.message.value(of: .requestedAddressFamily) {
            guard requested.readableBytes == 4 else { return error(.badRequest, ctx, into: &out) }
            guard let family = Self.family(requested), a.relays.contains(where: { $0.address.family == family.rawValue }) else {
                return error(.peerAddressFamilyMismatch, ctx, into: &out)
            }
        }
        let lifetime = grantedLifetime(ctx.message, refresh: true)
        let w = STUNMessageWriter(responseTo: ctx.message.header, messageClass: .successResponse, into: &out)
        w.append(.lifetime, uint32: lifetime, into: &out)
        finish(w, ctx, into: &out)
        if lifetime == 0 {
            return .respondAndRelease(remove(ctx.client).map { $0.relays.map(\.relay) } ?? [])
        }
        a.expiry = ctx.now + UInt64(lifetime) * 1000
        return .respond(outcome: .success)
    }

    /// LIFETIME is a 32-bit value (RFC 8656 §18.2); any other length makes the request malformed (400).
    static func malformedLifetime(_ m: STUNMessage) -> Bool {
        m.value(of: .lifetime).map { $0.readableBytes != 4 } ?? false
    }

    /// §7.2/§8.2: min(requested, maximum), but at least the default (for a Refresh too); a Refresh asking
    /// for 0 deletes. The caller has refused a malformed LIFETIME.
    private func grantedLifetime(_ m: STUNMessage, refresh: Bool) -> UInt32 {
        guard let v = m.value(of: .lifetime), v.readableBytes == 4, let requested = v.getInteger(at: v.readerIndex, as: UInt32.self) else {
            return configuration.defaultLifetime
        }
        if refresh && requested == 0 { return 0 }
        return max(min(requested, configuration.maxLifetime), configuration.defaultLifetime)
    }

    /// The client's allocation, made and not expired. One past its lifetime is gone for requests as it is
    /// for data (§5: 437), even before ``expire(now:)`` sweeps it (and closes its relay sockets).
    private func live(_ ctx: Context) -> TURNAllocation<Relay>? {
        guard let a = allocations[ctx.client], !a.pending, a.expiry > ctx.now else { return nil }
        return a
    }

    // MARK: CreatePermission (§9.2)

    private mutating func createPermission(_ ctx: Context, into out: inout ByteBuffer) -> Action {
        guard let a = live(ctx) else { return error(.allocationMismatch, ctx, into: &out) }
        guard a.username == ctx.username else { return error(.wrongCredentials, ctx, into: &out) }
        var peers: [STUNAddress] = []
        var malformed = false
        ctx.message.forEachAttribute { type, offset, length in
            guard type == .xorPeerAddress else { return true }
            let value = ctx.message.bytes.getSlice(at: ctx.message.bytes.readerIndex + offset + 4, length: length)!
            guard let peer = try? STUNAddressCodec.decode(value, xor: true, header: ctx.message.header) else {
                malformed = true
                return false
            }
            peers.append(peer)
            return true
        }
        guard !malformed, !peers.isEmpty else { return error(.badRequest, ctx, into: &out) }
        // All or nothing (§9.2: "the server MUST NOT install any of them").
        for peer in peers {
            if let refusal = check(peer, for: a, ctx, into: &out) { return refusal }
        }
        // Each permission costs memory and sweep time: one client must not grow its allocation without bound.
        guard a.hasRoom(for: peers, limit: configuration.maxPermissionsPerAllocation, now: ctx.now) else {
            return error(.insufficientCapacity, ctx, into: &out)
        }
        for peer in peers { a.permit(peer, until: ctx.now + configuration.permissionLifetime) }
        let w = STUNMessageWriter(responseTo: ctx.message.header, messageClass: .successResponse, into: &out)
        finish(w, ctx, into: &out)
        return .respond(outcome: .success)
    }

    /// 443 for a family the allocation has no relayed address of, 403 for a peer the policy refuses.
    private func check(_ peer: STUNAddress, for a: TURNAllocation<Relay>, _ ctx: Context, into out: inout ByteBuffer) -> Action? {
        guard a.relays.contains(where: { $0.address.isIPv4 == peer.isIPv4 }) else {
            return error(.peerAddressFamilyMismatch, ctx, into: &out)
        }
        if let denial = configuration.peerPolicy.denial(for: peer) {
            return error(.forbidden, ctx, denial: denial, into: &out)
        }
        return nil
    }

    // MARK: ChannelBind (§12.2)

    private mutating func channelBind(_ ctx: Context, into out: inout ByteBuffer) -> Action {
        guard let a = live(ctx) else { return error(.allocationMismatch, ctx, into: &out) }
        guard a.username == ctx.username else { return error(.wrongCredentials, ctx, into: &out) }
        let m = ctx.message
        guard let cn = m.value(of: .channelNumber), cn.readableBytes == 4,
            let number = cn.getInteger(at: cn.readerIndex, as: UInt16.self), ChannelData.channelRange.contains(number),
            let peer = m.address(of: .xorPeerAddress, xor: true)
        else { return error(.badRequest, ctx, into: &out) }
        if let refusal = check(peer, for: a, ctx, into: &out) { return refusal }
        let now = ctx.now
        // A number stays with its peer, and a peer with its number, until the binding's cooldown is over.
        if let existing = a.channels[number], existing.peer != peer, existing.cooldownEnd > now {
            return error(.badRequest, ctx, into: &out)
        }
        if let other = a.channelByPeer[peer], other != number, let b = a.channels[other], b.cooldownEnd > now {
            return error(.badRequest, ctx, into: &out)
        }
        // The binding installs the peer's permission, which counts against the cap as CreatePermission's do.
        guard a.hasRoom(for: [peer], limit: configuration.maxPermissionsPerAllocation, now: now) else {
            return error(.insufficientCapacity, ctx, into: &out)
        }
        let expiry = now + configuration.channelLifetime
        a.bind(number, TURNAllocation<Relay>.ChannelBinding(
            peer: peer, peerSocketAddress: peer.socketAddress(), expiry: expiry, cooldownEnd: expiry + configuration.channelCooldown))
        a.permit(peer, until: now + configuration.permissionLifetime)
        let w = STUNMessageWriter(responseTo: m.header, messageClass: .successResponse, into: &out)
        finish(w, ctx, into: &out)
        return .respond(outcome: .success)
    }

    // MARK: Send indication (§11.2)

    private func sendIndication(_ m: STUNMessage, from client: TURNClientKey, now: UInt64) -> Action {
        guard let a = allocations[client], !a.pending, a.expiry > now else { return .drop(.noAllocation) }
        // Indications are not answered: an unknown comprehension-required attribute means discard.
        guard unknownAttributes(m) == nil, let peer = m.address(of: .xorPeerAddress, xor: true),
            let data = m.value(of: .data)
        else { return .drop(.malformed) }
        if configuration.peerPolicy.denial(for: peer) != nil { return .drop(.deniedPeer) }
        guard a.hasPermission(peer, now: now), let relay = a.relay(for: peer) else { return .drop(.noPermission) }
        // We set DF per allocation (socket option), not per datagram: a DONT-FRAGMENT we cannot honour
        // means discard (§11.2).
        if m.contains(.dontFragment) && !a.dontFragment { return .drop(.fragmentation) }
        if a.bucket != nil, !a.bucket!.take(data.readableBytes, now: now) { return .drop(.bandwidth) }
        return .send(data: data, to: peer.socketAddress(), via: relay)
    }

    // MARK: Data path and lifetime

    /// ChannelData from a client: where it goes (§12.5).
    @inline(__always)
    public func channelData(_ number: UInt16, length: Int, from client: TURNClientKey,
                            now: UInt64) -> (allocation: TURNAllocation<Relay>?, peer: SocketAddress?, peerAddress: STUNAddress?,
                                             drop: TURNDropReason?) {
        guard let a = allocations[client] else { return (nil, nil, nil, .noAllocation) }
        let (peer, peerAddress, drop) = a.fromClient(channel: number, length: length, now: now)
        return (a, peer, peerAddress, drop)
    }

    /// Removes an allocation (its client's connection closed) and releases its quota.
    @discardableResult
    public mutating func remove(_ client: TURNClientKey) -> TURNAllocation<Relay>? {
        guard let a = allocations.removeValue(forKey: client) else { return nil }
        // Anyone still holding the object (a relay handler, the same-server shortcut) sees it as gone.
        a.expiry = 0
        quota.release(a.username)
        return a
    }

    /// Removes allocations whose lifetime is over and sweeps permissions and channels of the rest.
    /// Returns the removed ones, whose relay sockets the caller closes.
    public mutating func expire(now: UInt64) -> [TURNAllocation<Relay>] {
        var gone: [TURNAllocation<Relay>] = []
        for a in allocations.values {
            if a.expiry <= now && !a.pending { gone.append(a) } else { a.sweep(now: now) }
        }
        // Removed after the walk: removing while iterating would copy the whole table.
        for a in gone { remove(a.client) }
        return gone
    }

    /// Removes every allocation (shutdown).
    public mutating func removeAll() -> [TURNAllocation<Relay>] {
        let all = Array(allocations.values)
        for a in all {
            a.expiry = 0
            quota.release(a.username)
        }
        allocations = [:]
        return all
    }

    // MARK: Answers

    private func supports(_ family: STUNAddressFamily) -> Bool {
        family == .ipv4 ? configuration.relayIPv4 : configuration.relayIPv6
    }

    private func advertised(_ bound: STUNAddress) -> STUNAddress {
        if bound.isIPv4, let ext = configuration.externalIPv4 { return ext.withPort(bound.port) }
        if !bound.isIPv4, let ext = configuration.externalIPv6 { return ext.withPort(bound.port) }
        return bound
    }

    static func family(_ value: ByteBuffer) -> STUNAddressFamily? {
        guard value.readableBytes == 4, let f = value.getInteger(at: value.readerIndex, as: UInt8.self) else { return nil }
        return STUNAddressFamily(rawValue: f)
    }

    /// Comprehension-required attributes a TURN request or indication may carry that we understand;
    /// the rest (up to eight) for a 420.
    private func unknownAttributes(_ m: STUNMessage) -> [STUNAttributeType]? {
        var unknown = UnknownList()
        m.forEachAttribute { type, _, _ in
            if type.isComprehensionRequired && !Self.understood.contains(type.rawValue) { unknown.append(type) }
            return true
        }
        return unknown.count > 0 ? unknown.types : nil
    }

    private static var understood: Set<UInt16> {
        [STUNAttributeType.username, .userhash, .messageIntegrity, .messageIntegritySHA256, .realm, .nonce,
         .passwordAlgorithm, .channelNumber, .lifetime, .xorPeerAddress, .data, .requestedAddressFamily, .evenPort,
         .requestedTransport, .dontFragment, .reservationToken].reduce(into: Set<UInt16>()) { $0.insert($1.rawValue) }
    }

    private func finish(_ w: STUNMessageWriter, _ ctx: Context, into out: inout ByteBuffer) {
        w.finish(integrity: ctx.integrity, fingerprint: ctx.fingerprint, into: &out)
    }


    /// An error answer: protected when the request was authenticated; otherwise a reason phrase only
    /// within the amplification budget.
    private func error(_ code: STUNErrorCode, _ ctx: Context, denial: PeerPolicy.Denial? = nil,
                       into out: inout ByteBuffer) -> Action {
        let w = STUNMessageWriter(responseTo: ctx.message.header, messageClass: .errorResponse, into: &out)
        let full = 20 + 8 + ((code.reason.utf8.count + 3) & ~3) + (ctx.fingerprint ? 8 : 0)
        w.appendErrorCode(code, reason: ctx.integrity != nil || full <= ctx.budget ? code.reason : "", into: &out)
        finish(w, ctx, into: &out)
        return .respond(outcome: .error(code), denial: denial)
    }

    /// 401 or 438 with REALM and a fresh NONCE; PASSWORD-ALGORITHMS (and the nonce's feature cookie)
    /// when that still fits the amplification budget. When not even the bare challenge fits (a small
    /// allowance, a long realm), nothing is sent: an unauthenticated answer never exceeds the budget.
    private func challenge(_ code: STUNErrorCode, _ ctx: Context, into out: inout ByteBuffer) -> Action {
        let auth = configuration.authentication
        guard LongTermAuthenticator.challengeLength(realm: auth.realm, advertiseAlgorithms: false,
                                                    fingerprint: ctx.fingerprint) <= ctx.budget
        else { return .drop(.overBudget) }
        let advertise = LongTermAuthenticator.challengeLength(realm: auth.realm, advertiseAlgorithms: true,
                                                              fingerprint: ctx.fingerprint) <= ctx.budget
        let w = STUNMessageWriter(responseTo: ctx.message.header, messageClass: .errorResponse, into: &out)
        w.appendErrorCode(code, reason: "", into: &out)
        w.append(.realm, text: auth.realm, into: &out)
        w.append(.nonce, text: auth.makeNonce(source: ctx.client.address, now: ctx.now / 1000, advertiseAlgorithms: advertise),
                 into: &out)
        if advertise { w.append(.passwordAlgorithms, LongTermAuthenticator.passwordAlgorithmsValue, into: &out) }
        if ctx.fingerprint { w.appendFingerprint(into: &out) }
        return .respond(outcome: .error(code))
    }
}

/// What the I/O layer must bind for an Allocate, and what the core needs back to answer it.
public struct TURNAllocationRequest: Sendable {
    public let client: TURNClientKey
    /// One family, or IPv4 then IPv6 for a dual allocation (RFC 8656 ADDITIONAL-ADDRESS-FAMILY).
    public let families: [STUNAddressFamily]
    /// EVEN-PORT: the relayed port must be even; with `reserveNext` the port above it is kept for a
    /// later Allocate carrying the RESERVATION-TOKEN the answer will hold.
    public let evenPort: Bool
    public let reserveNext: Bool
    /// RESERVATION-TOKEN from the request: use the port reserved under it.
    public let reservationToken: UInt64?
    /// DONT-FRAGMENT: set DF on the relay socket.
    public let dontFragment: Bool
    let answer: PendingAnswer
}

struct PendingAnswer: Sendable {
    let header: STUNHeader
    let integrity: (key: STUNIntegrityKey, sha256: Bool)?
    let fingerprint: Bool
    let additionalRefused: STUNErrorCode?
    let username: String
}

/// The address family codepoints of REQUESTED-ADDRESS-FAMILY and the address attributes.
public enum STUNAddressFamily: UInt8, Sendable, Hashable {
    case ipv4 = 0x01
    case ipv6 = 0x02
}
