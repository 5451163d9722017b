import ParleyWire

/// NAT mapping behaviour (RFC 4787 §4.1, discovered as in RFC 5780 §4.3).
public enum MappingBehaviour: String, Sendable, Equatable {
    /// The client's address is its mapped address: no NAT.
    case noNAT = "none (no NAT)"
    case endpointIndependent = "endpoint-independent"
    case addressDependent = "address-dependent"
    case addressAndPortDependent = "address-and-port-dependent"
}

/// NAT filtering behaviour (RFC 4787 §5, discovered as in RFC 5780 §4.4).
public enum FilteringBehaviour: String, Sendable, Equatable {
    case endpointIndependent = "endpoint-independent"
    case addressDependent = "address-dependent"
    case addressAndPortDependent = "address-and-port-dependent"
}

/// How the NAT picks public ports for new mappings, from the mapped ports seen across the tests.
public enum PortAllocation: String, Sendable, Equatable {
    /// Mapped port equals the local port.
    case preserved
    /// Each new mapping takes the next port (or a small step): predictable (port prediction works).
    case sequential
    /// No visible pattern.
    case random
}

/// Everything RFC 5780 discovery learned.
public struct NATBehaviour: Sendable, Equatable {
    public var local: STUNAddress
    public var mapped: STUNAddress
    public var mapping: MappingBehaviour
    public var filtering: FilteringBehaviour
    public var portAllocation: PortAllocation
    /// The mapped addresses of mapping tests I, II and III, in order.
    public var mappedPorts: [UInt16]

    /// The classic (RFC 3489) name of this combination.
    public var classicType: String {
        switch (mapping, filtering) {
        case (.noNAT, .endpointIndependent): return "open internet"
        case (.noNAT, _): return "no NAT, firewalled (\(filtering.rawValue) filtering)"
        case (.endpointIndependent, .endpointIndependent): return "full cone"
        case (.endpointIndependent, .addressDependent): return "restricted cone"
        case (.endpointIndependent, .addressAndPortDependent): return "port-restricted cone"
        case (_, _):
            return portAllocation == .sequential ? "symmetric (sequential ports)" : "symmetric"
        }
    }

    public var report: String {
        """
        local address:   \(local)
        mapped address:  \(mapped)
        mapping:         \(mapping.rawValue)
        filtering:       \(filtering.rawValue)
        port allocation: \(portAllocation.rawValue) (mapped ports \(mappedPorts.map(String.init).joined(separator: " ")))
        nat type:        \(classicType)
        """
    }
}
