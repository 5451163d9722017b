import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ParleyWire
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Where and how the STUN server listens.
public struct STUNListenConfiguration: Sendable {
    /// Addresses to bind (UDP and TCP on each). With behaviour discovery this must be one address, the
    /// primary, and ``alternateAddress`` the second one.
    public var addresses: [String]
    public var port: Int
    /// TLS port; used only when ``tls`` is set.
    public var tlsPort: Int
    public var tls: NIOSSLContext?
    /// RFC 5780: the second IP address and the second port. Both or neither.
    public var alternateAddress: String?
    public var alternatePort: Int?
    /// Largest STUN message accepted on a stream transport.
    public var maxStreamFrame: Int
    /// Stream connections idle this long are closed.
    public var streamIdleTimeout: TimeAmount
    /// recvmmsg batch size.
    public var vectorReads: Int
    public var udp: Bool
    public var tcp: Bool

    public init(addresses: [String] = ["0.0.0.0", "::"], port: Int = 3478, tlsPort: Int = 5349, tls: NIOSSLContext? = nil,
                alternateAddress: String? = nil, alternatePort: Int? = nil, maxStreamFrame: Int = 2048,
                streamIdleTimeout: TimeAmount = .seconds(30), vectorReads: Int = 64, udp: Bool = true, tcp: Bool = true) {
        self.addresses = addresses
        self.port = port
        self.tlsPort = tlsPort
        self.tls = tls
        self.alternateAddress = alternateAddress
        self.alternatePort = alternatePort
        self.maxStreamFrame = maxStreamFrame
        self.streamIdleTimeout = streamIdleTimeout
        self.vectorReads = vectorReads
        self.udp = udp
        self.tcp = tcp
    }
}

public struct STUNServiceError: Error, CustomStringConvertible {
    public let description: String
}

/// Binds the STUN server's sockets and runs until shutdown: UDP (one SO_REUSEPORT socket per event loop
/// per endpoint), TCP and TLS.
public final class STUNService: Service, Sendable {
    public let listen: STUNListenConfiguration
    public let server: STUNServer
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: STUNMetrics
    let now: @Sendable () -> UInt64
    /// TURN (RFC 8656) on the same sockets, when configured.
    let turn: TURNContext?
    private let bound: NIOLockedValueBox<[(transport: STUNTransport, channel: any Channel)]> = NIOLockedValueBox([])

    public init(listen: STUNListenConfiguration, server: STUNServer, group: any EventLoopGroup, logger: Logger,
                metrics: STUNMetrics, now: @escaping @Sendable () -> UInt64, turn: TURNContext? = nil) {
        self.turn = turn
        self.listen = listen
        self.server = server
        self.group = group
        self.logger = logger
        self.metrics = metrics
        self.now = now
    }

    /// The local addresses actually bound (port 0 resolves to the kernel's choice), by transport.
    public var boundAddresses: [(transport: STUNTransport, address: SocketAddress)] {
        bound.withLockedValue { list in list.compactMap { e in e.channel.localAddress.map { (e.transport, $0) } } }
    }

    /// Binds everything. Separate from ``run()`` so tests and the CLI can learn the bound ports first.
    public func start() async throws {
        var endpoints: [(STUNEndpoint, SocketAddress)] = []
        if let alt = listen.alternateAddress, let altPort = listen.alternatePort {
            guard listen.addresses.count == 1 else {
                throw STUNServiceError(description: "behaviour discovery needs exactly one primary listen address")
            }
            let p = listen.addresses[0]
            endpoints = [
                (.primary, try SocketAddress(ipAddress: p, port: listen.port)),
                (STUNEndpoint(alternateIP: false, alternatePort: true), try SocketAddress(ipAddress: p, port: altPort)),
                (STUNEndpoint(alternateIP: true, alternatePort: false), try SocketAddress(ipAddress: alt, port: listen.port)),
                (STUNEndpoint(alternateIP: true, alternatePort: true), try SocketAddress(ipAddress: alt, port: altPort)),
            ]
        } else {
            for a in listen.addresses { endpoints.append((.primary, try SocketAddress(ipAddress: a, port: listen.port))) }
        }

        if listen.udp {
            // With behaviour discovery all four endpoints form one socket set per loop; otherwise each
            // address is its own set with just `.primary`.
            let groups: [[(STUNEndpoint, SocketAddress)]] =
                listen.alternateAddress != nil ? [endpoints] : endpoints.map { [$0] }
            for loop in group.makeIterator() {
                for set in groups {
                    let sockets = STUNSocketSet()
                    for (endpoint, address) in set {
                        let channel = try await bindUDP(address, endpoint: endpoint, sockets: sockets, on: loop)
                        try await loop.submit { sockets.channels[endpoint] = channel }.get()
                    }
                }
            }
        }
        if listen.tcp {
            for (endpoint, address) in endpoints where endpoint == .primary {
                _ = try await bindStream(address, transport: .tcp)
                if listen.tls != nil {
                    _ = try await bindStream(try SocketAddress(ipAddress: address.ipAddress!, port: listen.tlsPort), transport: .tls)
                }
            }
        }
        for (t, a) in boundAddresses { logger.info("STUN listening", metadata: ["transport": "\(t.rawValue)", "address": "\(a)"]) }
    }

    private func bindUDP(_ address: SocketAddress, endpoint: STUNEndpoint, sockets: STUNSocketSet,
                         on loop: any EventLoop) async throws -> any Channel {
        let server = self.server
        let metrics = self.metrics
        let now = self.now
        let turn = endpoint == .primary ? self.turn : nil
        // With TURN the slot must hold the largest ChannelData the relay forwards.
        let slot = turn?.sockets.listenerSlot ?? 2048
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.datagramVectorReadMessageCount, value: listen.vectorReads)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: slot * listen.vectorReads))
            .channelOption(.maxMessagesPerRead, value: 4)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        STUNDatagramHandler(server: server, endpoint: endpoint, sockets: sockets, metrics: metrics, now: now,
                                            turn: turn.map { TURNShard(context: $0, transport: .udp, loop: channel.eventLoop) }))
                }
            }
        if address.protocol == .inet6 {
            bootstrap = bootstrap.channelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        // With port 0 every loop must share the first loop's port: rebind to what the kernel chose.
        let target = resolvedPort(for: address, datagram: true) ?? address
        let channel = try await bootstrap.bind(to: target).get()
        bound.withLockedValue { $0.append((.udp, channel)) }
        return channel
    }

    private func bindStream(_ address: SocketAddress, transport: STUNTransport) async throws -> any Channel {
        let server = self.server
        let metrics = self.metrics
        let now = self.now
        let maxFrame = listen.maxStreamFrame
        let idle = listen.streamIdleTimeout
        let tls = transport == .tls ? listen.tls : nil
        let turn = self.turn
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    if let tls { try ops.addHandler(NIOSSLServerHandler(context: tls)) }
                    try ops.addHandler(IdleStateHandler(readTimeout: idle))
                    try ops.addHandler(STUNStreamHandler(server: server, transport: transport, maxFrame: maxFrame,
                                                         metrics: metrics, now: now, turn: turn))
                }
            }
        if address.protocol == .inet6 {
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        let channel = try await bootstrap.bind(to: address).get()
        bound.withLockedValue { $0.append((transport, channel)) }
        return channel
    }

    /// For port 0: the port a previous UDP bind to the same IP got, so every loop's socket shares it.
    private func resolvedPort(for address: SocketAddress, datagram: Bool) -> SocketAddress? {
        guard address.port == 0 else { return nil }
        return bound.withLockedValue { channels in
            for c in channels where c.transport == .udp {
                if let l = c.channel.localAddress, l.ipAddress == address.ipAddress, let port = l.port, port != 0 {
                    return try? SocketAddress(ipAddress: address.ipAddress!, port: port)
                }
            }
            return nil
        }
    }

    public func run() async throws {
        if bound.withLockedValue({ $0.isEmpty }) { try await start() }
        try await gracefulShutdown()
        await stop()
    }

    /// Closes every socket.
    public func stop() async {
        let channels = bound.withLockedValue { c in
            defer { c = [] }
            return c
        }
        for c in channels { try? await c.channel.close() }
    }
}

