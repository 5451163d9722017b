import Foundation
import ParleyRelay

/// Everything `parley serve` can be told, with its default. Each field is one documented key of
/// `parley.conf` and one `--flag` (the key with `.` and `_` turned into `-`): see ``ConfigKey/all``.
public struct ServerConfiguration: Sendable, Equatable {
    // server
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    // log
    public var logDirectory: String? = nil
    public var logLevel = "info"
    public var logMaxSize = 10 << 20
    public var logRetention = 14
    public var logStderr = false
    // http
    public var httpListen = "0.0.0.0"
    public var httpPort = 8080
    public var httpWebRoot = ""
    // stun
    public var stunEnabled = true
    public var stunListen = ["0.0.0.0", "::"]
    public var stunPort = 3478
    public var stunTCP = true
    public var stunTLSPort = 5349
    public var stunTLSCertificate: String? = nil
    public var stunTLSPrivateKey: String? = nil
    public var stunAlternateAddress: String? = nil
    public var stunAlternatePort: Int? = nil
    public var stunSoftware: String? = "parley"
    public var stunAlternateServer: String? = nil
    public var stunAlternateServerUnauthenticated = false
    public var stunAmplificationAllowance = 64
    public var stunMaxStreamFrame = 2048
    public var stunStreamIdleTimeout = 30
    public var stunVectorReads = 64
    public var stunRealm = "parley"
    public var stunAuthSecretFile: String? = nil
    public var stunRequireAuth = false
    // turn
    public var turnEnabled = false
    public var turnRelayIPv4: String? = nil
    public var turnRelayIPv6: String? = nil
    public var turnExternalIPv4: String? = nil
    public var turnExternalIPv6: String? = nil
    public var turnMinPort = 49152
    public var turnMaxPort = 65535
    public var turnUsersFile: String? = nil
    public var turnDefaultLifetime = 600
    public var turnMaxLifetime = 3600
    public var turnUserQuota = 32
    public var turnTotalQuota = 20000
    public var turnMaxPermissions = 256
    public var turnBandwidthLimit = 0
    public var turnAllowPeers: [String] = []
    public var turnDenyPeers: [String] = []
    public var turnAllowLoopbackPeers = false
    public var turnRelayVectorReads = 1
    public var turnLocalShortcut = true
    // signal
    public var signalEnabled = true
    public var signalListen = ["0.0.0.0", "::"]
    public var signalPort = 7000
    public var signalTLSPort = 7001
    public var signalTLSCertificate: String? = nil
    public var signalTLSPrivateKey: String? = nil
    public var signalMaxLine = 131072
    public var signalReadTimeout = 60
    public var signalLoginTimeout = 10
    public var signalTimestampWindow = 30
    public var signalRingTimeout = 45
    public var signalRegistration = "invite"
    public var signalDisconnectGrace = 10
    public var signalMessageTTL = 30 * 86400
    public var signalMailboxQuota = 64 << 20
    public var signalAccountsFile: String? = nil
    // store
    public var storePath = "/var/lib/parley/parley.sqlite"

    public init() {}

    /// Applies entries (from a file, then flags), refusing unknown keys and bad values with their origin.
    public mutating func apply(_ entries: [ConfigEntry]) throws(ConfigError) {
        for entry in entries {
            guard let key = ConfigKey.byName[entry.key] else {
                throw ConfigError(entry.origin, "unknown key '\(entry.key)'" + ConfigKey.suggestion(for: entry.key))
            }
            try key.apply(&self, entry.value, entry.origin)
        }
        try validate()
    }

    /// Cross-key checks.
    public func validate() throws(ConfigError) {
        if (stunAlternateAddress == nil) != (stunAlternatePort == nil) {
            throw ConfigError(.defaultValue, "stun.alternate_address and stun.alternate_port must be set together")
        }
        if stunAlternateAddress != nil && stunListen.count != 1 {
            throw ConfigError(.defaultValue, "RFC 5780 (stun.alternate_address) needs exactly one stun.listen address, the primary")
        }
        if stunAlternateAddress != nil && (stunPort == 0 || stunAlternatePort == 0) {
            throw ConfigError(.defaultValue, "RFC 5780 needs fixed ports: stun.port and stun.alternate_port cannot be 0")
        }
        if (stunTLSCertificate == nil) != (stunTLSPrivateKey == nil) {
            throw ConfigError(.defaultValue, "stun.tls_certificate and stun.tls_private_key must be set together")
        }
        if (signalTLSCertificate == nil) != (signalTLSPrivateKey == nil) {
            throw ConfigError(.defaultValue, "signal.tls_certificate and signal.tls_private_key must be set together")
        }
        if turnEnabled {
            guard stunEnabled else { throw ConfigError(.defaultValue, "turn.enabled needs stun.enabled (TURN shares the STUN ports)") }
            guard stunAuthSecretFile != nil || turnUsersFile != nil else {
                throw ConfigError(.defaultValue, "turn.enabled needs credentials: stun.auth_secret_file (REST secrets) and/or turn.users_file; an open relay is refused")
            }
            guard turnRelayIPv4 != nil || turnRelayIPv6 != nil else {
                throw ConfigError(.defaultValue, "turn.enabled needs turn.relay_ipv4 and/or turn.relay_ipv6 (the local address relay sockets bind)")
            }
            guard turnMinPort <= turnMaxPort, turnMinPort > 0 else {
                throw ConfigError(.defaultValue, "turn.min_port must be between 1 and turn.max_port")
            }
            guard turnDefaultLifetime <= turnMaxLifetime else {
                throw ConfigError(.defaultValue, "turn.default_lifetime cannot exceed turn.max_lifetime")
            }
        }
        if stunRequireAuth && stunAuthSecretFile == nil {
            throw ConfigError(.defaultValue, "stun.require_auth needs stun.auth_secret_file")
        }
        // With credentials, an unauthenticated request is answered with a 401/438 challenge. If that
        // cannot fit the amplification bound even for the smallest (20-byte) request, such requests
        // would all be dropped and no client could ever log in: refuse the combination instead.
        if stunAuthSecretFile != nil || turnEnabled {
            let needed = LongTermAuthenticator.challengeLength(realm: stunRealm, advertiseAlgorithms: false, fingerprint: false) - 20
            guard stunAmplificationAllowance >= needed else {
                throw ConfigError(.defaultValue, "stun.amplification_allowance \(stunAmplificationAllowance) is too small for stun.realm '\(stunRealm)': a 401/438 challenge (ERROR-CODE, REALM, NONCE) exceeds a 20-byte request by \(needed) bytes; set the allowance to at least \(needed) or shorten the realm")
            }
        }
    }
}

/// One configuration key: name, help, and how to parse it into ``ServerConfiguration``.
public struct ConfigKey: Sendable {
    public let name: String
    public let help: String
    public let defaultText: String
    /// Secret values are never echoed in messages or logs.
    public let secret: Bool
    let apply: @Sendable (inout ServerConfiguration, String, ConfigOrigin) throws(ConfigError) -> Void

    /// The command-line flag for this key.
    public var flag: String { name.replacingOccurrences(of: ".", with: "-").replacingOccurrences(of: "_", with: "-") }

    init(_ name: String, _ defaultText: String, _ help: String, secret: Bool = false,
         _ apply: @escaping @Sendable (inout ServerConfiguration, String, ConfigOrigin) throws(ConfigError) -> Void) {
        self.name = name
        self.defaultText = defaultText
        self.help = help
        self.secret = secret
        self.apply = apply
    }

    public static let byName: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
    public static let byFlag: [String: ConfigKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.flag, $0) })

    static func suggestion(for key: String) -> String {
        let close = all.map(\.name).filter { $0.hasPrefix(key.split(separator: ".").first.map(String.init) ?? "") }
        return close.isEmpty ? "" : " (known keys in that section: \(close.joined(separator: ", ")))"
    }

    public static let all: [ConfigKey] = [
        ConfigKey("server.threads", "number of cores", "Event-loop threads.") { c, v, o throws(ConfigError) in
            c.threads = try Parse.int(v, o, 1...256)
        },
        ConfigKey("log.directory", "(none: stderr)", "Directory for plain-text log files; empty logs to stderr.") { c, v, _ in
            c.logDirectory = v.isEmpty ? nil : v
        },
        ConfigKey("log.level", "info", "trace, debug, info, notice, warning, error or critical.") { c, v, o throws(ConfigError) in
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) else {
                throw ConfigError(o, "log.level must be one of trace, debug, info, notice, warning, error, critical; got '\(v)'")
            }
            c.logLevel = v
        },
        ConfigKey("log.max_size", "10M", "Rotate the log file when it reaches this size (bytes; K, M, G suffixes).") { c, v, o throws(ConfigError) in
            c.logMaxSize = try Parse.size(v, o)
        },
        ConfigKey("log.retention", "14", "Rotated log files to keep.") { c, v, o throws(ConfigError) in
            c.logRetention = try Parse.int(v, o, 1...10000)
        },
        ConfigKey("log.stderr", "no", "Also log to stderr when logging to files (the --foreground flag sets it).") { c, v, o throws(ConfigError) in
            c.logStderr = try Parse.bool(v, o)
        },
        ConfigKey("http.listen", "0.0.0.0", "Address of the HTTP listener (/metrics, /healthz).") { c, v, o throws(ConfigError) in
            c.httpListen = try Parse.address(v, o)
        },
        ConfigKey("http.port", "8080", "HTTP port; 0 picks a free one.") { c, v, o throws(ConfigError) in
            c.httpPort = try Parse.port(v, o)
        },
        ConfigKey("http.web_root", "", "Directory of the browser client's files, served at / with strict headers; empty: not served.") { c, v, o throws(ConfigError) in
            c.httpWebRoot = v
        },
        ConfigKey("stun.enabled", "yes", "Run the STUN server.") { c, v, o throws(ConfigError) in
            c.stunEnabled = try Parse.bool(v, o)
        },
        ConfigKey("stun.listen", "0.0.0.0, ::", "Comma-separated addresses for STUN over UDP and TCP.") { c, v, o throws(ConfigError) in
            c.stunListen = try Parse.addressList(v, o, key: "stun.listen")
        },
        ConfigKey("stun.port", "3478", "STUN port (UDP and TCP); 0 picks a free one.") { c, v, o throws(ConfigError) in
            c.stunPort = try Parse.port(v, o)
        },
        ConfigKey("stun.tcp", "yes", "Serve STUN over TCP as well as UDP.") { c, v, o throws(ConfigError) in
            c.stunTCP = try Parse.bool(v, o)
        },
        ConfigKey("stun.tls_port", "5349", "STUN over TLS port, used when a certificate is configured.") { c, v, o throws(ConfigError) in
            c.stunTLSPort = try Parse.port(v, o)
        },
        ConfigKey("stun.tls_certificate", "(none)", "PEM certificate chain for STUN over TLS.") { c, v, o throws(ConfigError) in
            c.stunTLSCertificate = try Parse.readableFile(v, o)
        },
        ConfigKey("stun.tls_private_key", "(none)", "PEM private key for STUN over TLS.") { c, v, o throws(ConfigError) in
            c.stunTLSPrivateKey = try Parse.readableFile(v, o)
        },
        ConfigKey("stun.alternate_address", "(none: RFC 5780 off)", "Second IP address for RFC 5780 NAT behaviour discovery.") { c, v, o throws(ConfigError) in
            c.stunAlternateAddress = v.isEmpty ? nil : try Parse.address(v, o)
        },
        ConfigKey("stun.alternate_port", "(none: RFC 5780 off)", "Second port for RFC 5780 NAT behaviour discovery.") { c, v, o throws(ConfigError) in
            c.stunAlternatePort = v.isEmpty ? nil : try Parse.port(v, o)
        },
        ConfigKey("stun.software", "parley", "SOFTWARE attribute text; 'off' sends none.") { c, v, o throws(ConfigError) in
            guard v.utf8.count <= 128 else { throw ConfigError(o, "stun.software is limited to 128 bytes") }
            c.stunSoftware = (v == "off" || v.isEmpty) ? nil : v
        },
        ConfigKey("stun.alternate_server", "(none)", "ADDRESS:PORT to redirect clients to with 300 Try Alternate.") { c, v, o throws(ConfigError) in
            c.stunAlternateServer = v.isEmpty ? nil : try Parse.hostPort(v, o)
        },
        ConfigKey("stun.alternate_server_unauthenticated", "no", "Redirect unauthenticated requests too (RFC 8489 §10).") { c, v, o throws(ConfigError) in
            c.stunAlternateServerUnauthenticated = try Parse.bool(v, o)
        },
        ConfigKey("stun.amplification_allowance", "64", "An unauthenticated answer is at most this many bytes longer than its request.") { c, v, o throws(ConfigError) in
            c.stunAmplificationAllowance = try Parse.int(v, o, 24...512)
        },
        ConfigKey("stun.max_stream_frame", "2048", "Largest STUN message accepted over TCP/TLS; bigger closes the connection.") { c, v, o throws(ConfigError) in
            c.stunMaxStreamFrame = try Parse.int(v, o, 20...65555)
        },
        ConfigKey("stun.stream_idle_timeout", "30", "Seconds of silence after which a TCP/TLS connection is closed.") { c, v, o throws(ConfigError) in
            c.stunStreamIdleTimeout = try Parse.int(v, o, 1...86400)
        },
        ConfigKey("stun.vector_reads", "64", "Datagrams read per recvmmsg call.") { c, v, o throws(ConfigError) in
            c.stunVectorReads = try Parse.int(v, o, 1...1024)
        },
        ConfigKey("stun.realm", "parley", "REALM for long-term credentials.") { c, v, o throws(ConfigError) in
            // 32 bytes keeps a 401 challenge (ERROR-CODE, REALM, 16-byte NONCE) within the default
            // amplification allowance; validate() checks a smaller allowance against the realm.
            guard !v.isEmpty, v.utf8.count <= 32 else { throw ConfigError(o, "stun.realm must be 1 to 32 bytes") }
            c.stunRealm = v
        },
        ConfigKey("stun.auth_secret_file", "(none)", "File (mode 0600) of TURN REST shared secrets, one per line, for long-term credentials.",
                  secret: false) { c, v, o throws(ConfigError) in
            c.stunAuthSecretFile = v.isEmpty ? nil : try Parse.readableFile(v, o)
        },
        ConfigKey("stun.require_auth", "no", "Answer only requests with valid credentials (401 otherwise).") { c, v, o throws(ConfigError) in
            c.stunRequireAuth = try Parse.bool(v, o)
        },
        ConfigKey("turn.enabled", "no", "Run the TURN relay (RFC 8656) on the STUN ports; needs credentials and a relay address.") { c, v, o throws(ConfigError) in
            c.turnEnabled = try Parse.bool(v, o)
        },
        ConfigKey("turn.relay_ipv4", "(none)", "Local IPv4 address relay sockets bind to; enables IPv4 relayed addresses.") { c, v, o throws(ConfigError) in
            c.turnRelayIPv4 = v.isEmpty ? nil : try Parse.address(v, o, family: AF_INET)
        },
        ConfigKey("turn.relay_ipv6", "(none)", "Local IPv6 address relay sockets bind to; enables IPv6 relayed addresses (RFC 6156).") { c, v, o throws(ConfigError) in
            c.turnRelayIPv6 = v.isEmpty ? nil : try Parse.address(v, o, family: AF_INET6)
        },
        ConfigKey("turn.external_ipv4", "(none: the relay address)", "IPv4 address advertised in XOR-RELAYED-ADDRESS, for a server behind NAT.") { c, v, o throws(ConfigError) in
            c.turnExternalIPv4 = v.isEmpty ? nil : try Parse.address(v, o, family: AF_INET)
        },
        ConfigKey("turn.external_ipv6", "(none: the relay address)", "IPv6 address advertised in XOR-RELAYED-ADDRESS.") { c, v, o throws(ConfigError) in
            c.turnExternalIPv6 = v.isEmpty ? nil : try Parse.address(v, o, family: AF_INET6)
        },
        ConfigKey("turn.min_port", "49152", "Lowest relay port.") { c, v, o throws(ConfigError) in
            c.turnMinPort = try Parse.int(v, o, 1...65535)
        },
        ConfigKey("turn.max_port", "65535", "Highest relay port.") { c, v, o throws(ConfigError) in
            c.turnMaxPort = try Parse.int(v, o, 1...65535)
        },
        ConfigKey("turn.users_file", "(none)", "File (mode 0600) of static long-term users, 'name:md5key:sha256key' lines from `parley turn-user`.") { c, v, o throws(ConfigError) in
            c.turnUsersFile = try Parse.readableFile(v, o)
        },
        ConfigKey("turn.default_lifetime", "600", "Seconds an allocation lives unless refreshed (RFC 8656 default 600).") { c, v, o throws(ConfigError) in
            c.turnDefaultLifetime = try Parse.int(v, o, 60...86400)
        },
        ConfigKey("turn.max_lifetime", "3600", "Longest allocation lifetime a client may ask for, in seconds.") { c, v, o throws(ConfigError) in
            c.turnMaxLifetime = try Parse.int(v, o, 60...86400)
        },
        ConfigKey("turn.user_quota", "32", "Allocations one username may hold at once (486 beyond).") { c, v, o throws(ConfigError) in
            c.turnUserQuota = try Parse.int(v, o, 1...100_000)
        },
        ConfigKey("turn.total_quota", "20000", "Allocations the server holds at once (508 beyond).") { c, v, o throws(ConfigError) in
            c.turnTotalQuota = try Parse.int(v, o, 1...1_000_000)
        },
        ConfigKey("turn.max_permissions", "256", "Permissions (peer IPs) one allocation may hold at once; CreatePermission or ChannelBind beyond gets 508.") { c, v, o throws(ConfigError) in
            c.turnMaxPermissions = try Parse.int(v, o, 1...65536)
        },
        ConfigKey("turn.bandwidth_limit", "0", "Bytes per second one allocation may relay (both directions); 0 = no cap.") { c, v, o throws(ConfigError) in
            c.turnBandwidthLimit = try Parse.int(v, o, 0...(1 << 34))
        },
        ConfigKey("turn.allow_peers", "(none)", "Comma-separated prefixes (10.1.0.0/16, fd00::/8) relayed to even if in a default-denied range.") { c, v, o throws(ConfigError) in
            c.turnAllowPeers = try Parse.prefixList(v, o)
        },
        ConfigKey("turn.deny_peers", "(none)", "Comma-separated prefixes never relayed to (checked first).") { c, v, o throws(ConfigError) in
            c.turnDenyPeers = try Parse.prefixList(v, o)
        },
        ConfigKey("turn.allow_loopback_peers", "no", "TEST ONLY: relay to 127.0.0.0/8 and ::1.") { c, v, o throws(ConfigError) in
            c.turnAllowLoopbackPeers = try Parse.bool(v, o)
        },
        ConfigKey("turn.relay_vector_reads", "1", "Datagrams read per recvmmsg call on a relay socket; 1 = recvmsg (a relay socket rarely has more than one waiting).") { c, v, o throws(ConfigError) in
            c.turnRelayVectorReads = try Parse.int(v, o, 1...256)
        },
        ConfigKey("turn.local_shortcut", "yes", "Hand datagrams between two allocations of this server over in memory instead of through the kernel twice.") { c, v, o throws(ConfigError) in
            c.turnLocalShortcut = try Parse.bool(v, o)
        },
        ConfigKey("signal.enabled", "yes", "Run the signaling server (TCP, TLS, and WebSocket at /ws on the HTTP port).") { c, v, o throws(ConfigError) in
            c.signalEnabled = try Parse.bool(v, o)
        },
        ConfigKey("signal.listen", "0.0.0.0, ::", "Comma-separated addresses for signaling over TCP/TLS.") { c, v, o throws(ConfigError) in
            c.signalListen = try Parse.addressList(v, o, key: "signal.listen")
        },
        ConfigKey("signal.port", "7000", "Signaling TCP port; 0 picks a free one.") { c, v, o throws(ConfigError) in
            c.signalPort = try Parse.port(v, o)
        },
        ConfigKey("signal.tls_port", "7001", "Signaling over TLS port, used when a certificate is configured.") { c, v, o throws(ConfigError) in
            c.signalTLSPort = try Parse.port(v, o)
        },
        ConfigKey("signal.tls_certificate", "(none)", "PEM certificate chain for signaling over TLS.") { c, v, o throws(ConfigError) in
            c.signalTLSCertificate = try Parse.readableFile(v, o)
        },
        ConfigKey("signal.tls_private_key", "(none)", "PEM private key for signaling over TLS.") { c, v, o throws(ConfigError) in
            c.signalTLSPrivateKey = try Parse.readableFile(v, o)
        },
        ConfigKey("signal.max_line", "131072", "Longest signaling line or WebSocket message in bytes; longer closes the connection.") { c, v, o throws(ConfigError) in
            c.signalMaxLine = try Parse.int(v, o, 1024...(1 << 20))
        },
        ConfigKey("signal.read_timeout", "60", "Seconds without any frame (keepalives count) before a connection is closed.") { c, v, o throws(ConfigError) in
            c.signalReadTimeout = try Parse.int(v, o, 5...3600)
        },
        ConfigKey("signal.login_timeout", "10", "Seconds a new connection has to log in.") { c, v, o throws(ConfigError) in
            c.signalLoginTimeout = try Parse.int(v, o, 1...300)
        },
        ConfigKey("signal.timestamp_window", "30", "Largest accepted difference in seconds between a client timestamp and the server clock.") { c, v, o throws(ConfigError) in
            c.signalTimestampWindow = try Parse.int(v, o, 1...3600)
        },
        ConfigKey("signal.registration", "invite", "Who may make an account: invite (a valid invite), open (anyone) or closed (operator only).") { c, v, o throws(ConfigError) in
            guard ["invite", "open", "closed"].contains(v) else {
                throw ConfigError(o, "signal.registration must be invite, open or closed; got '\(v)'")
            }
            c.signalRegistration = v
        },
        ConfigKey("signal.ring_timeout", "45", "Seconds a call rings before it ends with 'timeout'.") { c, v, o throws(ConfigError) in
            c.signalRingTimeout = try Parse.int(v, o, 5...600)
        },
        ConfigKey("signal.disconnect_grace", "10", "Seconds a disconnected device has to come back before its calls treat it as gone.") { c, v, o throws(ConfigError) in
            c.signalDisconnectGrace = try Parse.int(v, o, 0...600)
        },
        ConfigKey("signal.message_ttl", "2592000", "Seconds an undelivered sealed message is kept (30 days).") { c, v, o throws(ConfigError) in
            c.signalMessageTTL = try Parse.int(v, o, 60...(365 * 86400))
        },
        ConfigKey("signal.mailbox_quota", "64M", "Bytes of undelivered messages a user may hold (K, M, G suffixes).") { c, v, o throws(ConfigError) in
            c.signalMailboxQuota = try Parse.size(v, o)
        },
        ConfigKey("signal.accounts_file", "(none)", "Accounts conf file (user.device = parley1.… lines), reloaded on SIGHUP.") { c, v, o throws(ConfigError) in
            c.signalAccountsFile = try Parse.readableFile(v, o)
        },
        ConfigKey("store.path", "/var/lib/parley/parley.sqlite", "SQLite database file (created mode 0600).") { c, v, o throws(ConfigError) in
            guard !v.isEmpty else { throw ConfigError(o, "store.path cannot be empty") }
            c.storePath = v
        },
    ]
}

/// Value parsers shared by the keys; each error names the origin and what was expected.
enum Parse {
    static func bool(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> Bool {
        switch v.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw ConfigError(o, "expected yes or no, got '\(v)'")
        }
    }

    static func int(_ v: String, _ o: ConfigOrigin, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let n = Int(v), range.contains(n) else {
            throw ConfigError(o, "expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(v)'")
        }
        return n
    }

    static func port(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> Int { try int(v, o, 0...65535) }

    static func size(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> Int {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        var digits = v
        var mult = 1
        if let last = v.last?.uppercased().first, let u = units[last] {
            mult = u
            digits = String(v.dropLast())
        }
        guard let n = Int(digits), n > 0, n <= (1 << 40) / mult else { throw ConfigError(o, "expected a size like 10M, got '\(v)'") }
        return n * mult
    }

    static func address(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> String {
        var a = in_addr()
        var a6 = in6_addr()
        guard inet_pton(AF_INET, v, &a) == 1 || inet_pton(AF_INET6, v, &a6) == 1 else {
            throw ConfigError(o, "expected an IPv4 or IPv6 address, got '\(v)'")
        }
        return v
    }

    static func address(_ v: String, _ o: ConfigOrigin, family: Int32) throws(ConfigError) -> String {
        var a = in_addr()
        var a6 = in6_addr()
        let ok = family == AF_INET ? inet_pton(AF_INET, v, &a) == 1 : inet_pton(AF_INET6, v, &a6) == 1
        guard ok else { throw ConfigError(o, "expected an \(family == AF_INET ? "IPv4" : "IPv6") address, got '\(v)'") }
        return v
    }

    /// A comma-separated list of address prefixes ("192.0.2.0/24"); empty is allowed.
    static func prefixList(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> [String] {
        let list = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for p in list {
            let parts = p.split(separator: "/", maxSplits: 1)
            guard parts.count == 2, let n = Int(parts[1]) else { throw ConfigError(o, "expected ADDRESS/LENGTH, got '\(p)'") }
            let host = try address(String(parts[0]), o)
            guard n >= 0, n <= (host.contains(":") ? 128 : 32) else { throw ConfigError(o, "prefix length out of range in '\(p)'") }
        }
        return list
    }

    /// A comma-separated, non-empty list of addresses.
    static func addressList(_ v: String, _ o: ConfigOrigin, key: String) throws(ConfigError) -> [String] {
        let list = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw ConfigError(o, "\(key) needs at least one address") }
        return try list.map { a throws(ConfigError) in try address(a, o) }
    }

    static func hostPort(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> String {
        guard let colon = v.lastIndex(of: ":"), let port = Int(v[v.index(after: colon)...]), (1...65535).contains(port) else {
            throw ConfigError(o, "expected ADDRESS:PORT, got '\(v)'")
        }
        var host = String(v[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        _ = try address(host, o)
        return v
    }

    static func readableFile(_ v: String, _ o: ConfigOrigin) throws(ConfigError) -> String? {
        if v.isEmpty { return nil }
        guard FileManager.default.isReadableFile(atPath: v) else { throw ConfigError(o, "cannot read file '\(v)'") }
        return v
    }
}
