import ParleyWire

extension TURNClient {
    /// The relayed address family an Allocate asks for (RFC 8656 §7.1, REQUESTED-ADDRESS-FAMILY).
    public enum AddressFamily: UInt8, Sendable, Hashable {
        /// IPv4: the default, asked for by leaving REQUESTED-ADDRESS-FAMILY out.
        case ipv4 = 0x01
        /// IPv6: REQUESTED-ADDRESS-FAMILY 0x02 (RFC 6156).
        case ipv6 = 0x02
    }

    /// How the one transport to the server delivers messages (RFC 8489 §6.2).
    public enum Transport: Sendable, Hashable {
        /// Datagrams: requests are retransmitted (RTO, doubling); ChannelData is not padded.
        case udp
        /// TCP or TLS: each request is sent once and times out after 39.5 s (RFC 8489 §6.2.2, Ti);
        /// ChannelData is padded to a multiple of four (RFC 8656 §12.5). The I/O layer frames the stream
        /// and hands ``TURNClient/receive(_:now:)-(ByteBuffer,_)`` one message or ChannelData frame at a time.
        case stream
    }

    /// What a ``TURNClient`` needs to hold one allocation on one TURN server.
    ///
    /// All times are microseconds (the unit of the client's monotonic clock). The password is used once,
    /// when the server's first challenge names its realm, to derive the long-term keys (RFC 8489 §9.2.2);
    /// the client keeps only those keys. This value's `description` and mirror leave the password out.
    public struct Configuration: Sendable, CustomStringConvertible, CustomReflectable {
        /// The TURN server. The client itself sends nothing anywhere but "to the server over the one
        /// transport" (``Action/send(_:)``); the address is here so the I/O layer that owns the socket
        /// and the client agree on it. `STUNAddress` rather than NIO's `SocketAddress`: it is the codec's
        /// value type (hashable, no socket API); ``STUNAddress/socketAddress()`` converts.
        public var server: STUNAddress
        /// The long-term username: a static user's name, or a TURN REST one ("EXPIRY:NAME"), which needs
        /// nothing special on this side.
        public var username: String
        /// The long-term password (for TURN REST: base64(HMAC-SHA1(secret, username)) as the credential
        /// service handed it out).
        public var password: String
        /// LIFETIME asked for in Allocate and Refresh, seconds (RFC 8656 §7.1; the server clamps it).
        public var lifetime: UInt32
        /// Relayed address family to ask for.
        public var addressFamily: AddressFamily
        public var transport: Transport
        /// Initial retransmission timeout (RFC 8489 §6.2.1, RTO), µs. Default 100 ms.
        public var rto: UInt64
        /// Sends of one request before it times out (RFC 8489 Rc). Default 7.
        public var maxTransmissions: Int
        /// After the last send the client waits `rto` times this before giving up (RFC 8489 Rm). Default 16.
        public var lastWaitMultiplier: UInt64
        /// Use SHA-256 for the key and MESSAGE-INTEGRITY-SHA256 when the server offers it in
        /// PASSWORD-ALGORITHMS (RFC 8489 §9.2.4). When false, or not offered: MD5 and MESSAGE-INTEGRITY.
        public var allowsSHA256: Bool
        /// The allocation is refreshed this long before it would expire (at most a fifth of its lifetime
        /// before), µs. Default 60 s.
        public var refreshMargin: UInt64
        /// Permissions last 300 s (RFC 8656 §9); each wanted one is refreshed this often, µs. Default 240 s.
        public var permissionRefreshInterval: UInt64
        /// Channel bindings last 600 s (RFC 8656 §12); each is refreshed this often, µs. Default 540 s.
        public var channelRefreshInterval: UInt64
        /// At most this many XOR-PEER-ADDRESS attributes in one CreatePermission.
        public var maxPeersPerPermissionRequest: Int

        public init(server: STUNAddress, username: String, password: String, lifetime: UInt32 = 600,
                    addressFamily: AddressFamily = .ipv4, transport: Transport = .udp, rto: UInt64 = 100_000,
                    maxTransmissions: Int = 7, lastWaitMultiplier: UInt64 = 16, allowsSHA256: Bool = true,
                    refreshMargin: UInt64 = 60_000_000, permissionRefreshInterval: UInt64 = 240_000_000,
                    channelRefreshInterval: UInt64 = 540_000_000, maxPeersPerPermissionRequest: Int = 32) {
            self.server = server
            self.username = username
            self.password = password
            self.lifetime = lifetime
            self.addressFamily = addressFamily
            self.transport = transport
            self.rto = rto
            self.maxTransmissions = maxTransmissions
            self.lastWaitMultiplier = lastWaitMultiplier
            self.allowsSHA256 = allowsSHA256
            self.refreshMargin = refreshMargin
            self.permissionRefreshInterval = permissionRefreshInterval
            self.channelRefreshInterval = channelRefreshInterval
            self.maxPeersPerPermissionRequest = maxPeersPerPermissionRequest
        }

        public var description: String {
            "TURNClient.Configuration(server: \(server), username: \(username), password: redacted, "
                + "lifetime: \(lifetime))"
        }

        /// Everything but the password, so `dump(_:)` cannot print it either.
        public var customMirror: Mirror {
            Mirror(self, children: [
                "server": server, "username": username, "lifetime": lifetime, "addressFamily": addressFamily,
                "transport": transport, "rto": rto, "maxTransmissions": maxTransmissions,
                "allowsSHA256": allowsSHA256,
            ])
        }
    }
}
