import Crypto
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import NIOSSL
import ParleyRelay
import ParleySignal
import ParleyStore
import ParleyWire
import Prometheus
import ServiceLifecycle
import UnixSignals

/// One running `parley serve`: STUN (UDP/TCP/TLS), HTTP (/metrics, /healthz), wired by
/// swift-service-lifecycle. ``start(_:)`` returns once every socket is bound, so callers (the CLI,
/// tests) know the real ports when they asked for port 0.
public final class ParleyServerInstance: Sendable {
    public let configuration: ServerConfiguration
    public let logger: Logger
    public let registry: PrometheusCollectorRegistry
    public let stun: STUNService?
    public let signal: SignalService?
    public let httpPort: Int
    private let group: ServiceGroup
    private let runTask: Task<Void, any Error>
    private let eventLoops: MultiThreadedEventLoopGroup

    /// The UDP port STUN actually listens on (primary endpoint).
    public var stunPort: Int? {
        stun?.boundAddresses.first { $0.transport == .udp }?.address.port
    }

    /// The TCP port STUN actually listens on.
    public var stunTCPPort: Int? {
        stun?.boundAddresses.first { $0.transport == .tcp }?.address.port
    }

    /// The TLS port STUN actually listens on.
    public var stunTLSPort: Int? {
        stun?.boundAddresses.first { $0.transport == .tls }?.address.port
    }

    private init(configuration: ServerConfiguration, logger: Logger, registry: PrometheusCollectorRegistry,
                 stun: STUNService?, signal: SignalService?, httpPort: Int, group: ServiceGroup, runTask: Task<Void, any Error>,
                 eventLoops: MultiThreadedEventLoopGroup) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
        self.stun = stun
        self.signal = signal
        self.httpPort = httpPort
        self.group = group
        self.runTask = runTask
        self.eventLoops = eventLoops
    }

    /// Builds the logger `parley serve` uses for a configuration.
    public static func makeLogger(_ c: ServerConfiguration, label: String = "parley") throws -> Logger {
        let file = try c.logDirectory.map {
            try RotatingLogFile(directory: $0, maxSize: c.logMaxSize, retention: c.logRetention)
        }
        let level = Logger.Level(rawValue: c.logLevel) ?? .info
        // Lines are written by a thread of their own, so no event loop waits for the disk (LogOutput).
        let output = LogOutput.background(file: file, stderr: c.logStderr)
        return Logger(label: label) { l in PlainLogHandler(label: l, level: level, output: output) }
    }

    /// Binds everything and starts serving. Throws if a socket cannot be bound or a file cannot be read.
    public static func start(_ c: ServerConfiguration, logger: Logger? = nil,
                             signals: [UnixSignal] = []) async throws -> ParleyServerInstance {
        try c.validate()
        let logger = try logger ?? makeLogger(c)
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: c.threads)
        var services: [any Service] = []

        var stun: STUNService?
        if c.stunEnabled {
            let s = STUNService(listen: try stunListen(c), server: STUNServer(configuration: try stunServer(c)),
                                group: loops, logger: logger, metrics: STUNMetrics(factory: factory),
                                now: { UInt64(Date().timeIntervalSince1970) },
                                turn: try turnContext(c, logger: logger, factory: factory))
            try await s.start()
            services.append(s)
            stun = s
        }

        var signal: SignalService?
        if c.signalEnabled {
            let s = try await startSignaling(c, loops: loops, logger: logger)
            services.append(s)
            services.append(SignalMaintenance(hub: s.hub, store: s.hub.store, accountsFile: c.signalAccountsFile,
                                              ttl: .seconds(c.signalMessageTTL), logger: logger))
            signal = s
        }

        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let http = HTTPService.makeApplication(host: c.httpListen, port: c.httpPort, registry: registry, logger: logger,
                                               signal: signal?.hub, maxMessage: c.signalMaxLine,
                                               webRoot: c.httpWebRoot.isEmpty ? nil : c.httpWebRoot) {
            port in portContinuation.yield(port)
        }
        services.append(http)

        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: signals, logger: logger))
        let task = Task { try await group.run() }
        var httpPort = 0
        for await p in portStream {
            httpPort = p
            break
        }
        logger.info("parley ready", metadata: [
            "stun_udp": "\(stun?.boundAddresses.first { $0.transport == .udp }?.address.port ?? 0)",
            "http": "\(httpPort)",
            "signal_tcp": "\(signal?.tcpPort ?? 0)",
        ])
        return ParleyServerInstance(configuration: c, logger: logger, registry: registry, stun: stun, signal: signal,
                                    httpPort: httpPort, group: group, runTask: task, eventLoops: loops)
    }

    /// Waits until the server stops (a signal, or ``shutdown()``).
    public func wait() async throws {
        defer { LogOutput.flushAll() }
        try await runTask.value
        try await eventLoops.shutdownGracefully()
    }

    /// Stops serving and releases every socket and thread.
    public func shutdown() async throws {
        await group.triggerGracefulShutdown()
        try await wait()
    }

    /// Opens the store, merges the accounts, starts the hub and binds the signaling listeners.
    static func startSignaling(_ c: ServerConfiguration, loops: MultiThreadedEventLoopGroup, logger: Logger) async throws
        -> SignalService
    {
        let dir = (c.storePath as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
        let store = try SQLiteSignalStore(path: c.storePath, mailboxQuota: Int64(c.signalMailboxQuota), logger: logger)
        let accounts = try await SignalMaintenance.loadAccounts(store: store, file: c.signalAccountsFile, logger: logger)
        let hubConfiguration = SignalHubConfiguration(
            session: SessionConfiguration(timestampWindow: UInt64(c.signalTimestampWindow) * 1000,
                                          loginTimeout: UInt64(c.signalLoginTimeout) * 1000,
                                          readTimeout: UInt64(c.signalReadTimeout) * 1000),
            calls: CallBookConfiguration(ringTimeout: UInt64(c.signalRingTimeout) * 1000,
                                         disconnectGrace: UInt64(c.signalDisconnectGrace) * 1000),
            messageTTL: .seconds(c.signalMessageTTL),
            registration: SignalHubConfiguration.Registration(rawValue: c.signalRegistration) ?? .invite)
        // One loop holds the hub and the plain TCP connections; the others check login signatures.
        let hubLoop = loops.next()
        let hub = SignalHub(loop: hubLoop, store: store, accounts: accounts, configuration: hubConfiguration, logger: logger,
                            verifiers: Array(loops.makeIterator()))
        hub.load(deviceLists: try await store.newestDeviceLists())
        let tls = try tlsContext(certificate: c.signalTLSCertificate, privateKey: c.signalTLSPrivateKey)
        let service = SignalService(hub: hub, addresses: c.signalListen, port: c.signalPort, tlsPort: c.signalTLSPort, tls: tls,
                                    maxLine: c.signalMaxLine, group: loops, logger: logger)
        try await service.start()
        return service
    }

    /// A server TLS context from PEM files, or nil when either is unset (configuration validation
    /// ensures both or neither).
    static func tlsContext(certificate: String?, privateKey: String?) throws -> NIOSSLContext? {
        guard let certificate, let privateKey else { return nil }
        let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
        return try NIOSSLContext(configuration: .makeServerConfiguration(certificateChain: chain, privateKey: .file(privateKey)))
    }

    static func stunListen(_ c: ServerConfiguration) throws -> STUNListenConfiguration {
        let tls = try tlsContext(certificate: c.stunTLSCertificate, privateKey: c.stunTLSPrivateKey)
        return STUNListenConfiguration(
            addresses: c.stunListen, port: c.stunPort, tlsPort: c.stunTLSPort, tls: tls,
            alternateAddress: c.stunAlternateAddress, alternatePort: c.stunAlternatePort,
            maxStreamFrame: c.stunMaxStreamFrame, streamIdleTimeout: .seconds(Int64(c.stunStreamIdleTimeout)),
            vectorReads: c.stunVectorReads, udp: true, tcp: c.stunTCP)
    }

    /// The TURN relay's shared context, or nil when TURN is off.
    static func turnContext(_ c: ServerConfiguration, logger: Logger, factory: any MetricsFactory) throws -> TURNContext? {
        guard c.turnEnabled else { return nil }
        let secrets = try c.stunAuthSecretFile.map { try SecretFile.read($0) } ?? []
        let users = try c.turnUsersFile.map { try TURNUsersFile.read($0) } ?? []
        let auth = LongTermAuthenticator(realm: c.stunRealm, secrets: secrets, users: users)
        let policy = PeerPolicy(allow: c.turnAllowPeers.compactMap(IPPrefix.init), deny: c.turnDenyPeers.compactMap(IPPrefix.init),
                                allowLoopback: c.turnAllowLoopbackPeers)
        if c.turnAllowLoopbackPeers { logger.warning("turn.allow_loopback_peers is on: relaying to loopback (test only)") }
        let configuration = TURNConfiguration(
            authentication: auth, defaultLifetime: UInt32(c.turnDefaultLifetime), maxLifetime: UInt32(c.turnMaxLifetime),
            relayIPv4: c.turnRelayIPv4 != nil, relayIPv6: c.turnRelayIPv6 != nil,
            externalIPv4: c.turnExternalIPv4.flatMap { STUNAddress(parsing: $0, defaultPort: 0) },
            externalIPv6: c.turnExternalIPv6.flatMap { STUNAddress(parsing: "[\($0)]", defaultPort: 0) },
            maxAllocationsPerUser: c.turnUserQuota, maxAllocations: c.turnTotalQuota,
            maxPermissionsPerAllocation: c.turnMaxPermissions,
            bandwidthLimit: c.turnBandwidthLimit > 0 ? c.turnBandwidthLimit : nil, peerPolicy: policy,
            software: c.stunSoftware, amplificationAllowance: c.stunAmplificationAllowance)
        let sockets = TURNRelaySockets(ipv4: c.turnRelayIPv4, ipv6: c.turnRelayIPv6,
                                       ports: UInt16(c.turnMinPort)...UInt16(c.turnMaxPort), vectorReads: c.turnRelayVectorReads)
        return TURNContext(configuration: configuration, sockets: sockets, metrics: TURNMetrics(factory: factory), logger: logger,
                           localShortcut: c.turnLocalShortcut, now: { UInt64(Date().timeIntervalSince1970 * 1000) })
    }

    static func stunServer(_ c: ServerConfiguration) throws -> STUNServerConfiguration {
        var discovery: BehaviourDiscovery?
        if let alt = c.stunAlternateAddress, let altPort = c.stunAlternatePort,
            let primary = STUNAddress(parsing: c.stunListen[0], defaultPort: UInt16(c.stunPort)),
            let alternate = STUNAddress(parsing: alt, defaultPort: UInt16(altPort))
        {
            discovery = BehaviourDiscovery(primaryIP: primary, alternateIP: alternate, primaryPort: UInt16(c.stunPort),
                                           alternatePort: UInt16(altPort))
        }
        var auth: LongTermAuthenticator?
        if let path = c.stunAuthSecretFile {
            let secrets = try SecretFile.read(path)
            auth = LongTermAuthenticator(realm: c.stunRealm, secrets: secrets)
        }
        return STUNServerConfiguration(
            software: c.stunSoftware, behaviourDiscovery: discovery,
            alternateServer: c.stunAlternateServer.flatMap { STUNAddress(parsing: $0) },
            alternateServerForUnauthenticated: c.stunAlternateServerUnauthenticated,
            amplificationAllowance: c.stunAmplificationAllowance, authentication: auth,
            requireAuthentication: c.stunRequireAuth)
    }
}

/// A file of shared secrets, one per line (`#` comments allowed), which must not be readable by
/// group or others.
public enum SecretFile {
    public static func read(_ path: String) throws -> [String] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ConfigError(.flag("stun-auth-secret-file"), "cannot stat '\(path)'") }
        guard st.st_mode & 0o077 == 0 else {
            throw ConfigError(.file(path: path, line: 0),
                              "secret file is accessible by group/others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let secrets = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !secrets.isEmpty else { throw ConfigError(.file(path: path, line: 0), "no secrets in file") }
        return secrets
    }
}

/// Static TURN users: `name:md5key:sha256key` lines (hex keys from `parley turn-user`), `#` comments.
/// Like the secret file, it must not be readable by group or others.
public enum TURNUsersFile {
    public static func read(_ path: String) throws -> [LongTermAuthenticator.StaticUser] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw ConfigError(.flag("turn-users-file"), "cannot stat '\(path)'") }
        guard st.st_mode & 0o077 == 0 else {
            throw ConfigError(.file(path: path, line: 0),
                              "users file is accessible by group/others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var users: [LongTermAuthenticator.StaticUser] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, !parts[0].isEmpty, let md5 = hex(parts[1]), md5.count == 16, let sha = hex(parts[2]), sha.count == 32 else {
                throw ConfigError(.file(path: path, line: i + 1), "expected name:md5key:sha256key (hex, from `parley turn-user`)")
            }
            users.append(.init(name: parts[0], md5Key: md5, sha256Key: sha))
        }
        return users
    }

    /// The line `parley turn-user` prints for a user.
    public static func line(for user: LongTermAuthenticator.StaticUser) -> String {
        "\(user.name):\(user.md5Key.map { String(format: "%02x", $0) }.joined()):\(user.sha256Key.map { String(format: "%02x", $0) }.joined())"
    }

    static func hex(_ s: String) -> [UInt8]? {
        guard s.utf8.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var it = s.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let hi = UInt8(String(UnicodeScalar(a)), radix: 16), let lo = UInt8(String(UnicodeScalar(b)), radix: 16) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}
