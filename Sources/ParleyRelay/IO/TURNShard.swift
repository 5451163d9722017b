import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ParleyWire

#if canImport(Glibc)
import Glibc
#endif

/// Where relay sockets are bound, shared by every shard of a server.
public struct TURNRelaySockets: Sendable {
    /// Local IPs relay sockets bind to, per family (nil = that family is not relayed).
    public var ipv4: String?
    public var ipv6: String?
    /// Relay ports are drawn from this range (firewalls open exactly it).
    public var ports: ClosedRange<UInt16>
    /// Datagrams read per recvmmsg on a relay socket; 1 = plain recvmsg. A relay socket carries one
    /// party's media (50 packets/s for Opus at 20 ms), so there is rarely more than one waiting.
    public var vectorReads: Int
    /// The largest datagram relayed, either way. Receive slots are one byte larger: a datagram that
    /// fills its slot was truncated by the kernel and is dropped whole (counted as `oversize`), never
    /// forwarded cut. 4095 is far above what RTP, RTCP, DTLS or ICE send (≤ 1500 on the Internet).
    public var maxDatagram: Int

    public init(ipv4: String? = "127.0.0.1", ipv6: String? = nil, ports: ClosedRange<UInt16> = 49152...65535,
                vectorReads: Int = 1, maxDatagram: Int = 4095) {
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.ports = ports
        self.vectorReads = vectorReads
        self.maxDatagram = maxDatagram
    }

    /// Receive slot of a listening socket that carries ChannelData: header plus the largest datagram,
    /// plus the truncation-detecting byte.
    public var listenerSlot: Int { max(2048, ChannelData.headerLength + maxDatagram + 1) }
}

/// Ports held for RESERVATION-TOKENs (RFC 8656 §7.2 EVEN-PORT R bit), shared by every shard: the
/// Allocate that redeems a token may arrive on another event loop. The held socket keeps the port
/// from anyone else until it is redeemed or expires.
public final class TURNReservations: Sendable {
    struct Held {
        let channel: any Channel
        let port: UInt16
        let family: STUNAddressFamily
        let expiry: UInt64
    }
    private let held = NIOLockedValueBox([UInt64: Held]())

    public init() {}

    func hold(_ channel: any Channel, port: UInt16, family: STUNAddressFamily, expiry: UInt64) -> UInt64 {
        held.withLockedValue { h in
            var token = UInt64.random(in: 1...UInt64.max)
            while h[token] != nil { token = UInt64.random(in: 1...UInt64.max) }
            h[token] = Held(channel: channel, port: port, family: family, expiry: expiry)
            return token
        }
    }

    func redeem(_ token: UInt64) -> Held? { held.withLockedValue { $0.removeValue(forKey: token) } }

    /// Closes reservations that were never redeemed.
    func expire(now: UInt64) {
        let gone = held.withLockedValue { h -> [Held] in
            let expired = h.filter { $0.value.expiry <= now }
            for k in expired.keys { h[k] = nil }
            return Array(expired.values)
        }
        for g in gone { g.channel.close(promise: nil) }
    }

    public var count: Int { held.withLockedValue { $0.count } }
}

/// The relayed addresses this server holds, for the same-server shortcut: when a client sends to a peer
/// address that is another allocation's relayed address on this very server (both parties of a call
/// relayed by us — the common case), the datagram is handed to that allocation in memory instead of
/// leaving through one relay socket and coming back through the other. What the receiving allocation
/// sees is exactly what the kernel would have delivered: the data, from the sender's relayed address;
/// its permission checks, bandwidth cap and counters apply unchanged. Looked up once per relayed
/// datagram (an uncontended lock); changed only when allocations are made or end.
public final class TURNLocalRelays: Sendable {
    struct Target: @unchecked Sendable {
        // The allocation is only touched on its shard's event loop (the lookup just carries it there).
        let shard: TURNShard
        let allocation: TURNAllocation<any Channel>
    }
    private let table = NIOLockedValueBox([STUNAddress: Target]())

    public init() {}

    func register(_ address: STUNAddress, shard: TURNShard, allocation: TURNAllocation<any Channel>) {
        table.withLockedValue { $0[address] = Target(shard: shard, allocation: allocation) }
    }

    func unregister(_ address: STUNAddress) {
        _ = table.withLockedValue { $0.removeValue(forKey: address) }
    }

    func lookup(_ address: STUNAddress) -> Target? { table.withLockedValue { $0[address] } }

    public var count: Int { table.withLockedValue { $0.count } }
}

/// Everything a shard needs that is the same for the whole server.
public struct TURNContext: Sendable {
    public let configuration: TURNConfiguration
    public let quota: TURNQuota
    public let sockets: TURNRelaySockets
    public let reservations: TURNReservations
    /// nil = the shortcut is off (`turn.local_shortcut = no`): every datagram goes through the kernel.
    public let localRelays: TURNLocalRelays?
    public let metrics: TURNMetrics
    public let logger: Logger
    /// Unix milliseconds.
    public let now: @Sendable () -> UInt64

    public init(configuration: TURNConfiguration, sockets: TURNRelaySockets, metrics: TURNMetrics, logger: Logger,
                localShortcut: Bool = true, now: @escaping @Sendable () -> UInt64) {
        self.localRelays = localShortcut ? TURNLocalRelays() : nil
        self.configuration = configuration
        self.quota = TURNQuota(maxTotal: configuration.maxAllocations, maxPerUser: configuration.maxAllocationsPerUser)
        self.sockets = sockets
        self.reservations = TURNReservations()
        self.metrics = metrics
        self.logger = logger
        self.now = now
    }
}

/// The I/O half of one TURN shard: a UDP listening socket's allocations, or one TCP/TLS connection's.
/// It runs the sans-I/O ``TURNServer`` and does what it asks: binds relay sockets, moves datagrams
/// between clients and peers, closes sockets of expired allocations.
///
/// Confined to one event loop (the listening socket's or the connection's; relay sockets are bound on
/// the same loop), so the data path takes no lock. Writes are batched: the shard flushes the client
/// socket and the relay sockets it wrote to once per event-loop tick, after every ready socket has been
/// read, so a burst of datagrams leaves in one sendmmsg per socket. Buffers come from a ring reused once
/// NIO has sent them: relaying a datagram allocates nothing in this code.
public final class TURNShard: @unchecked Sendable {
    typealias Core = TURNServer<any Channel>
    private var core: Core
    private let context: TURNContext
    let loop: any EventLoop
    let transport: STUNTransport
    /// The socket clients talk to: the UDP listening socket or the TCP/TLS connection.
    private weak var client: (any Channel)?
    private var timer: RepeatedTask?
    private var pool: [ByteBuffer]
    private var poolNext = 0
    private var emptyBuffer = ByteBuffer()
    private var flushScheduled = false
    private var clientDirty = false
    private var dirtyRelays: [any Channel] = []
    private var closed = false
    /// Same-server shortcut: datagrams for allocations on other event loops, handed over once per tick.
    private var outbox: [ObjectIdentifier: Handoff] = [:]
    /// Relayed addresses this shard registered for the shortcut, by relay socket.
    private var registered: [ObjectIdentifier: STUNAddress] = [:]

    /// Everything for one other event loop from one tick: the datagrams packed back to back in one
    /// buffer (one allocation per tick and target loop, not per datagram) and where each goes.
    struct Handoff: @unchecked Sendable {
        let loop: any EventLoop
        var bytes: ByteBuffer
        var items: [(target: TURNLocalRelays.Target, source: STUNAddress, length: Int)] = []
    }

    // Relay tallies, added to the shared counters once per tick.
    private var toPeerPackets = 0
    private var toPeerBytes = 0
    private var toClientPackets = 0
    private var toClientBytes = 0

    public init(context: TURNContext, transport: STUNTransport, loop: any EventLoop, poolSize: Int = 256) {
        self.context = context
        self.core = Core(configuration: context.configuration, quota: context.quota)
        self.loop = loop
        self.transport = transport
        self.pool = (0..<poolSize).map { _ in ByteBufferAllocator().buffer(capacity: 512) }
    }

    /// Attaches the client-facing socket and starts the once-a-second expiry sweep.
    public func start(client: any Channel) {
        loop.preconditionInEventLoop()
        self.client = client
        timer = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            self?.sweep()
        }
    }

    /// Closes every relay socket (the client socket closed, or shutdown).
    public func stop(reason: String) {
        loop.preconditionInEventLoop()
        guard !closed else { return }
        closed = true
        timer?.cancel()
        for a in core.removeAll() { end(a, reason: reason) }
    }

    var allocationCount: Int { core.allocationCount }

    // MARK: Client → server

    /// A STUN message of a TURN method from a client. Returns false if it did not decode (the caller
    /// lets the STUN core give its 400 or drop).
    public func handleMessage(_ bytes: ByteBuffer, from source: STUNAddress, remote: SocketAddress) -> Bool {
        guard let message = try? STUNDecoder.decode(bytes) else { return false }
        let key = TURNClientKey(address: source, transport: transport)
        let now = context.now()
        var out = takeBuffer()
        let action = core.handle(message, from: key, now: now, into: &out)
        if message.type.messageClass == .request, let c = context.metrics.requests[message.type.method.rawValue] { c.increment() }
        switch action {
        case .respond(let outcome, let denial):
            record(outcome, method: message.type.method)
            if let denial { context.metrics.denials[denial]?.increment() }
            sendToClient(out, remote: remote)
        case .respondAndRelease(let relays):
            sendToClient(out, remote: remote)
            for r in relays { release(r) }
            context.metrics.allocationsEnded["refreshed_to_zero"]?.increment()
            context.metrics.allocations.record(context.quota.total)
        case .drop(let reason):
            context.metrics.drops[reason]?.increment()
        case .send(let data, let peer, let relay):
            if let peerAddress = STUNAddress(peer),
                let endpoint = core.allocation(for: key)?.relays.first(where: { $0.relay === relay }) {
                relayToPeer(data, to: peer, peerAddress: peerAddress, from: endpoint)
            }
        case .allocate(let request):
            bindRelays(for: request, remote: remote)
        }
        returnBuffer(out)
        return true
    }

    /// A ChannelData message from a client (already known to start with 0b01).
    public func handleChannelData(_ bytes: ByteBuffer, from source: STUNAddress) {
        // Over UDP a datagram that filled the receive slot was cut by the kernel: drop it whole.
        if transport == .udp && bytes.readableBytes >= context.sockets.listenerSlot {
            context.metrics.drops[.oversize]?.increment()
            return
        }
        let decoded: (channel: UInt16, data: ByteBuffer)
        switch ChannelData.decodeDatagram(bytes) {
        case .success(let d): decoded = d
        case .failure: context.metrics.drops[.malformed]?.increment(); return
        }
        guard decoded.data.readableBytes <= context.sockets.maxDatagram else {
            context.metrics.drops[.oversize]?.increment()
            return
        }
        let key = TURNClientKey(address: source, transport: transport)
        let r = core.channelData(decoded.channel, length: decoded.data.readableBytes, from: key, now: context.now())
        guard let allocation = r.allocation, let peer = r.peer, let peerAddress = r.peerAddress else {
            context.metrics.drops[r.drop ?? .noAllocation]?.increment()
            return
        }
        guard let endpoint = allocation.endpoint(for: peerAddress) else {
            context.metrics.drops[.noPermission]?.increment()
            return
        }
        relayToPeer(decoded.data, to: peer, peerAddress: peerAddress, from: endpoint)
    }

    private func relayToPeer(_ data: ByteBuffer, to peer: SocketAddress, peerAddress: STUNAddress,
                             from endpoint: TURNRelayEndpoint<any Channel>) {
        if let local = context.localRelays, let target = local.lookup(peerAddress) {
            toPeerPackets &+= 1
            toPeerBytes &+= data.readableBytes
            if target.shard.loop.inEventLoop {
                target.shard.fromPeer(data, peer: endpoint.address, allocation: target.allocation)
            } else {
                let key = ObjectIdentifier(target.shard.loop)
                var data = data
                let length = data.readableBytes
                if outbox[key] == nil {
                    outbox[key] = Handoff(loop: target.shard.loop, bytes: ByteBufferAllocator().buffer(capacity: 64 * 256))
                }
                outbox[key]!.bytes.writeBuffer(&data)
                outbox[key]!.items.append((target, endpoint.address, length))
                scheduleFlush()
            }
            return
        }
        let relay = endpoint.relay
        var copy = takeBuffer()
        var data = data
        copy.writeBuffer(&data)
        toPeerPackets &+= 1
        toPeerBytes &+= copy.readableBytes
        relay.write(AddressedEnvelope(remoteAddress: peer, data: copy), promise: nil)
        returnBuffer(copy)
        dirtyRelays.append(relay)
        scheduleFlush()
    }

    // MARK: Peer → client

    /// A datagram from `peer` on one of `allocation`'s relay sockets (§11.3, §12.6).
    func fromPeer(_ data: ByteBuffer, peer peerAddress: STUNAddress, allocation: TURNAllocation<any Channel>) {
        guard data.readableBytes <= context.sockets.maxDatagram else {
            context.metrics.drops[.oversize]?.increment()
            return
        }
        let delivery = allocation.fromPeer(peerAddress, length: data.readableBytes, now: context.now())
        var out = takeBuffer()
        switch delivery {
        case .drop(let reason):
            context.metrics.drops[reason]?.increment()
            returnBuffer(out)
            return
        case .channel(let number):
            ChannelData.write(channel: number, data: data, pad: transport != .udp, into: &out)
        case .indication:
            let w = STUNMessageWriter(type: STUNMessageType(method: .data, messageClass: .indication),
                                      transactionID: .random(), into: &out)
            w.append(.xorPeerAddress, address: peerAddress, xor: true, into: &out)
            w.append(.data, data.readableBytesView, into: &out)
        }
        toClientPackets &+= 1
        toClientBytes &+= data.readableBytes
        sendToClient(out, remote: allocation.clientSocketAddress)
        returnBuffer(out)
    }

    // MARK: Writes

    private func sendToClient(_ bytes: ByteBuffer, remote: SocketAddress) {
        guard let client, bytes.readableBytes > 0 else { return }
        if transport == .udp {
            client.write(AddressedEnvelope(remoteAddress: remote, data: bytes), promise: nil)
        } else {
            client.write(bytes, promise: nil)
        }
        clientDirty = true
        scheduleFlush()
    }

    /// One flush per socket per tick: `execute` runs after the loop has read every ready socket.
    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        loop.execute { self.flushAll() }
    }

    private func flushAll() {
        flushScheduled = false
        if !outbox.isEmpty {
            // One task per target loop per tick carries every datagram for it.
            for (_, handoff) in outbox {
                handoff.loop.execute {
                    var bytes = handoff.bytes
                    for item in handoff.items {
                        let data = bytes.readSlice(length: item.length)!
                        item.target.shard.fromPeer(data, peer: item.source, allocation: item.target.allocation)
                    }
                }
            }
            outbox.removeAll(keepingCapacity: true)
        }
        if clientDirty {
            client?.flush()
            clientDirty = false
        }
        for r in dirtyRelays { r.flush() }
        dirtyRelays.removeAll(keepingCapacity: true)
        poolNext = 0
        let m = context.metrics
        if toPeerPackets > 0 {
            m.packetsToPeer.increment(by: Int64(toPeerPackets))
            m.bytesToPeer.increment(by: Int64(toPeerBytes))
            toPeerPackets = 0
            toPeerBytes = 0
        }
        if toClientPackets > 0 {
            m.packetsToClient.increment(by: Int64(toClientPackets))
            m.bytesToClient.increment(by: Int64(toClientBytes))
            toClientPackets = 0
            toClientBytes = 0
        }
    }

    /// A buffer from the ring: the ring's slot is emptied first so the buffer is uniquely referenced once
    /// NIO has sent it, and `clear()` reuses its storage.
    private func takeBuffer() -> ByteBuffer {
        guard poolNext < pool.count else { return ByteBufferAllocator().buffer(capacity: 512) }
        var b = emptyBuffer
        swap(&b, &pool[poolNext])
        b.clear()
        return b
    }

    private func returnBuffer(_ b: ByteBuffer) {
        guard poolNext < pool.count else { return }
        pool[poolNext] = b
        poolNext += 1
    }

    private func record(_ outcome: STUNServer.Outcome, method: STUNMethod) {
        switch outcome {
        case .success:
            if method == .createPermission { context.metrics.permissions.increment() }
            if method == .channelBind { context.metrics.channels.increment() }
        case .error(let code):
            context.metrics.errors[code.rawValue]?.increment()
        }
    }

    // MARK: Relay sockets

    private func bindRelays(for request: TURNAllocationRequest, remote: SocketAddress) {
        var futures: [EventLoopFuture<(any Channel, STUNAddress)>] = []
        // Set on this loop when an even pair's upper port is held, read on this loop when answering.
        let token = NIOLoopBoundBox<UInt64?>(nil, eventLoop: loop)
        let reservations = context.reservations
        if let t = request.reservationToken {
            guard let held = reservations.redeem(t) else { return fail(request, remote: remote) }
            // The reserved socket may live on another loop: close it there and bind its port here.
            futures.append(held.channel.close().flatMap { _ in
                self.bindRelay(family: held.family, port: held.port, dontFragment: request.dontFragment)
            }.hop(to: loop))
        } else if request.reserveNext {
            let family = request.families[0]
            futures.append(bindEvenPair(family: family, dontFragment: request.dontFragment).map { relay, held in
                token.value = reservations.hold(held, port: UInt16(held.localAddress?.port ?? 0), family: family,
                                          expiry: self.context.now() + self.context.configuration.reservationLifetime)
                return relay
            })
        } else {
            for (i, family) in request.families.enumerated() {
                futures.append(bindRandom(family: family, even: i == 0 && request.evenPort, dontFragment: request.dontFragment))
            }
        }
        let expected = futures.count
        EventLoopFuture.whenAllComplete(futures, on: loop).whenComplete { result in
            let outcomes = (try? result.get()) ?? []
            let bound = outcomes.compactMap { try? $0.get() }
            var out = ByteBufferAllocator().buffer(capacity: 256)
            guard bound.count == expected, !self.closed else {
                for (c, _) in bound { c.close(promise: nil) }
                if !self.closed { self.fail(request, remote: remote) }
                return
            }
            let relays = bound.map { TURNRelayEndpoint<any Channel>(relay: $0.0, address: $0.1) }
            guard let allocation = self.core.allocated(request, relays: relays, reservationToken: token.value,
                                                       now: self.context.now(), into: &out)
            else {
                for (c, _) in bound { c.close(promise: nil) }
                return
            }
            for (c, _) in bound {
                if let h = try? c.pipeline.syncOperations.handler(type: TURNRelayHandler.self) {
                    h.attach(allocation, shard: self)
                }
            }
            if let local = self.context.localRelays {
                for endpoint in allocation.relays {
                    local.register(endpoint.address, shard: self, allocation: allocation)
                    self.registered[ObjectIdentifier(endpoint.relay)] = endpoint.address
                }
            }
            self.context.metrics.allocationsMade.increment()
            self.context.metrics.allocations.record(self.context.quota.total)
            self.sendToClient(out, remote: remote)
        }
    }

    private func fail(_ request: TURNAllocationRequest, remote: SocketAddress) {
        var out = ByteBufferAllocator().buffer(capacity: 128)
        core.allocationFailed(request, now: context.now(), into: &out)
        context.metrics.errors[508]?.increment()
        sendToClient(out, remote: remote)
    }

    /// A relay socket on a random free port of the range (even if asked), up to 32 tries.
    private func bindRandom(family: STUNAddressFamily, even: Bool, dontFragment: Bool,
                            attempt: Int = 0) -> EventLoopFuture<(any Channel, STUNAddress)> {
        let range = context.sockets.ports
        var port = UInt16.random(in: range)
        if even { port &= ~1; if port < range.lowerBound { port += 2 } }
        return bindRelay(family: family, port: port, dontFragment: dontFragment).flatMapError { error in
            guard attempt < 32, Self.isAddressInUse(error) else { return self.loop.makeFailedFuture(error) }
            return self.bindRandom(family: family, even: even, dontFragment: dontFragment, attempt: attempt + 1)
        }
    }

    /// An even port and the odd one above it: the first relays, the second is held for the token.
    private func bindEvenPair(family: STUNAddressFamily, dontFragment: Bool,
                              attempt: Int = 0) -> EventLoopFuture<((any Channel, STUNAddress), any Channel)> {
        bindRandom(family: family, even: true, dontFragment: dontFragment).flatMap { first in
            self.bindRelay(family: family, port: first.1.port &+ 1, dontFragment: dontFragment, handler: false)
                .map { second in (first, second.0) }
                .flatMapError { error in
                    first.0.close(promise: nil)
                    guard attempt < 32 else { return self.loop.makeFailedFuture(error) }
                    return self.bindEvenPair(family: family, dontFragment: dontFragment, attempt: attempt + 1)
                }
        }
    }

    private func bindRelay(family: STUNAddressFamily, port: UInt16, dontFragment: Bool,
                           handler: Bool = true) -> EventLoopFuture<(any Channel, STUNAddress)> {
        guard let ip = family == .ipv4 ? context.sockets.ipv4 : context.sockets.ipv6,
            let address = try? SocketAddress(ipAddress: ip, port: Int(port))
        else { return loop.makeFailedFuture(TURNBindError.familyNotConfigured) }
        let vector = context.sockets.vectorReads
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.datagramVectorReadMessageCount, value: vector)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: (context.sockets.maxDatagram + 1) * vector))
            // One read per readiness event: a second would almost always be an EAGAIN syscall, and epoll
            // (level-triggered) reports the socket again if more is waiting.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if handler { try channel.pipeline.syncOperations.addHandler(TURNRelayHandler()) }
                }
            }
        if family == .ipv4 {
            bootstrap = bootstrap.channelOption(ChannelOptions.Types.SocketOption(level: .ip, name: .init(rawValue: IP_MTU_DISCOVER)),
                                                value: Int(dontFragment ? IP_PMTUDISC_DO : IP_PMTUDISC_DONT))
        } else {
            bootstrap = bootstrap
                .channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
                .channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .init(rawValue: IPV6_DONTFRAG)),
                               value: dontFragment ? 1 : 0)
        }
        return bootstrap.bind(to: address).flatMapThrowing { channel in
            guard let local = channel.localAddress.flatMap(STUNAddress.init) else {
                channel.close(promise: nil)
                throw TURNBindError.familyNotConfigured
            }
            return (channel, local)
        }
    }

    static func isAddressInUse(_ error: any Error) -> Bool {
        if let io = error as? IOError { return io.errnoCode == EADDRINUSE || io.errnoCode == EACCES }
        return false
    }

    // MARK: Expiry

    private func sweep() {
        let now = context.now()
        for a in core.expire(now: now) { end(a, reason: "expired") }
        context.reservations.expire(now: now)
    }

    /// Closes a relay socket and takes its address out of the shortcut table.
    private func release(_ relay: any Channel) {
        if let address = registered.removeValue(forKey: ObjectIdentifier(relay)) { context.localRelays?.unregister(address) }
        relay.close(promise: nil)
    }

    private func end(_ a: TURNAllocation<any Channel>, reason: String) {
        for r in a.relays { release(r.relay) }
        context.metrics.allocationsEnded[reason]?.increment()
        context.metrics.allocations.record(context.quota.total)
    }
}

enum TURNBindError: Error { case familyNotConfigured }

/// Reads one relay socket: datagrams from peers go to the allocation's client through the shard.
final class TURNRelayHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private var allocation: TURNAllocation<any Channel>?
    private weak var shard: TURNShard?

    func attach(_ allocation: TURNAllocation<any Channel>, shard: TURNShard) {
        self.allocation = allocation
        self.shard = shard
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let allocation, let shard else { return }
        let envelope = unwrapInboundIn(data)
        guard let peer = STUNAddress(envelope.remoteAddress) else { return }
        shard.fromPeer(envelope.data, peer: peer, allocation: allocation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        allocation = nil
        shard = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port-unreachable from a peer surfaces as ECONNREFUSED on the next read; nothing to do.
    }
}
