import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// Binds the signaling TCP (and TLS) listeners in front of a ``SignalHub``.
public final class SignalService: Sendable {
    public let hub: SignalHub
    let addresses: [String]
    let port: Int
    let tlsPort: Int
    let tls: NIOSSLContext?
    let maxLine: Int
    let group: any EventLoopGroup
    let logger: Logger
    private let bound = NIOLockedValueBox<[(tls: Bool, channel: any Channel)]>([])

    public init(hub: SignalHub, addresses: [String], port: Int, tlsPort: Int, tls: NIOSSLContext?, maxLine: Int,
                group: any EventLoopGroup, logger: Logger) {
        self.hub = hub
        self.addresses = addresses
        self.port = port
        self.tlsPort = tlsPort
        self.tls = tls
        self.maxLine = maxLine
        self.group = group
        self.logger = logger
    }

    /// The bound TCP port (the first address), and the TLS one if any.
    public var tcpPort: Int? { bound.withLockedValue { $0.first { !$0.tls }?.channel.localAddress?.port } }
    public var tlsBoundPort: Int? { bound.withLockedValue { $0.first { $0.tls }?.channel.localAddress?.port } }

    public func start() async throws {
        for address in addresses {
            try await bind(address, port: port, tls: nil)
            if let tls { try await bind(address, port: tlsPort, tls: tls) }
        }
    }

    private func bind(_ host: String, port: Int, tls: NIOSSLContext?) async throws {
        let hub = self.hub
        let maxLine = self.maxLine
        let address = try SocketAddress(ipAddress: host, port: port)
        // Plain TCP connections live on the hub's loop, so a frame is read, handled and answered on one
        // thread with no hop in between; TLS connections spread over the group, which does their record
        // crypto, and hop to the hub (docs/ARCHITECTURE.md, "Signaling threads").
        var bootstrap = ServerBootstrap(group: group, childGroup: tls == nil ? hub.loop : group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 4096)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    if let tls { try ops.addHandler(NIOSSLServerHandler(context: tls)) }
                    try ops.addHandler(ByteToMessageHandler(SignalLineFramer(maxLine: maxLine)))
                    try ops.addHandler(SignalTCPHandler(hub: hub))
                }
            }
        if address.protocol == .inet6 {
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        let channel = try await bootstrap.bind(to: address).get()
        bound.withLockedValue { $0.append((tls != nil, channel)) }
        logger.info("signaling listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                                                      "transport": "\(tls == nil ? "tcp" : "tls")"])
    }

    public func stop() async {
        let channels = bound.withLockedValue { b in
            defer { b = [] }
            return b.map(\.channel)
        }
        for c in channels { try? await c.close() }
    }
}

extension SignalService: Service {
    public func run() async throws {
        try await gracefulShutdown()
        await stop()
    }
}
