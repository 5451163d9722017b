import ParleyWire

/// Everything the STUN server core decides with. Plain values: the core has no I/O and no clock.
public struct STUNServerConfiguration: Sendable {
    /// SOFTWARE attribute text; `nil` sends none.
    public var software: String?
    /// RFC 5780 NAT behaviour discovery: the server's two IP addresses and two ports. `nil` = off, in
    /// which case CHANGE-REQUEST, RESPONSE-PORT and PADDING are unknown attributes (420).
    public var behaviourDiscovery: BehaviourDiscovery?
    /// Answer requests with 300 Try Alternate pointing here (RFC 8489 §10).
    public var alternateServer: STUNAddress?
    /// Redirect unauthenticated requests too. RFC 8489 §10 allows it ("MAY be authenticated"); off by
    /// default because an unauthenticated 300 can be forged by anyone on the path.
    public var alternateServerForUnauthenticated: Bool
    /// An unauthenticated answer is at most this many bytes longer than its request (amplification cap).
    public var amplificationAllowance: Int
    /// Long-term credential checks; `nil` = no credentials configured.
    public var authentication: LongTermAuthenticator?
    /// Refuse (401) requests without valid credentials. Needs ``authentication``.
    public var requireAuthentication: Bool

    public init(software: String? = "parley", behaviourDiscovery: BehaviourDiscovery? = nil,
                alternateServer: STUNAddress? = nil, alternateServerForUnauthenticated: Bool = false,
                amplificationAllowance: Int = 64, authentication: LongTermAuthenticator? = nil,
                requireAuthentication: Bool = false) {
        self.software = software
        self.behaviourDiscovery = behaviourDiscovery
        self.alternateServer = alternateServer
        self.alternateServerForUnauthenticated = alternateServerForUnauthenticated
        self.amplificationAllowance = amplificationAllowance
        self.authentication = authentication
        self.requireAuthentication = requireAuthentication
    }
}

/// The four transport addresses of an RFC 5780 server: two IPs × two ports (RFC 5780 §4.1).
public struct BehaviourDiscovery: Sendable, Hashable {
    public var primaryIP: STUNAddress
    public var alternateIP: STUNAddress
    public var primaryPort: UInt16
    public var alternatePort: UInt16

    public init(primaryIP: STUNAddress, alternateIP: STUNAddress, primaryPort: UInt16, alternatePort: UInt16) {
        self.primaryIP = primaryIP.withPort(0)
        self.alternateIP = alternateIP.withPort(0)
        self.primaryPort = primaryPort
        self.alternatePort = alternatePort
    }

    /// The address of endpoint (ip, port).
    public func address(_ endpoint: STUNEndpoint) -> STUNAddress {
        (endpoint.alternateIP ? alternateIP : primaryIP).withPort(endpoint.alternatePort ? alternatePort : primaryPort)
    }
}

/// Which of the server's sockets: primary or alternate IP × primary or alternate port. A server
/// without behaviour discovery has only `.primary`.
public struct STUNEndpoint: Sendable, Hashable {
    public var alternateIP: Bool
    public var alternatePort: Bool

    public init(alternateIP: Bool, alternatePort: Bool) {
        self.alternateIP = alternateIP
        self.alternatePort = alternatePort
    }

    public static let primary = STUNEndpoint(alternateIP: false, alternatePort: false)

    /// The endpoint across the diagonal: RFC 5780's OTHER-ADDRESS.
    public var other: STUNEndpoint { STUNEndpoint(alternateIP: !alternateIP, alternatePort: !alternatePort) }

    /// The endpoint a CHANGE-REQUEST with these flags asks to answer from.
    public func changed(ip: Bool, port: Bool) -> STUNEndpoint {
        STUNEndpoint(alternateIP: alternateIP != ip, alternatePort: alternatePort != port)
    }
}

/// The transport a request came over, which decides what RFC 5780 features are possible.
public enum STUNTransport: String, Sendable, Hashable, CaseIterable {
    case udp, tcp, tls
}
