import ParleyWire

/// An IPv4 or IPv6 prefix ("10.0.0.0/8", "fc00::/7").
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    /// The network address (port ignored) and prefix length.
    public let network: STUNAddress
    public let length: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first else { return nil }
        let host = String(first)
        let ipv6Text = host.contains(":")
        guard let parsed = STUNAddress(parsing: ipv6Text ? "[\(host)]" : host, defaultPort: 0) else { return nil }
        var address = parsed
        if ipv6Text, case .v4(let v4, _) = parsed {
            // STUNAddress(parsing:) turns an IPv4-mapped address (::ffff:a.b.c.d) into a.b.c.d; the prefix
            // length still counts IPv6 bits.
            address = .v6(0, 0x0000_FFFF_0000_0000 | UInt64(v4), port: 0)
        }
        let max = address.isIPv4 ? 32 : 128
        let length = parts.count == 2 ? Int(parts[1]) : max
        guard let length, length >= 0, length <= max else { return nil }
        if case .v6(0, let l, _) = address, l >> 32 == 0xFFFF, length >= 96 {
            // Within ::ffff:0:0/96 the policy judges the IPv4 address inside (see ``PeerPolicy``), so the
            // prefix is that IPv4 prefix.
            self.init(.v4(UInt32(truncatingIfNeeded: l), port: 0), length: length - 96)
            return
        }
        self.init(address, length: length)
    }

    public init(_ address: STUNAddress, length: Int) {
        self.network = Self.masked(address.withPort(0), length)
        self.length = length
    }

    public func contains(_ address: STUNAddress) -> Bool {
        guard address.isIPv4 == network.isIPv4 else { return false }
        return Self.masked(address.withPort(0), length) == network
    }

    static func masked(_ a: STUNAddress, _ length: Int) -> STUNAddress {
        switch a {
        case .v4(let v, _):
            let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length)
            return .v4(v & mask, port: 0)
        case .v6(let h, let l, _):
            let mh: UInt64 = length == 0 ? 0 : length >= 64 ? ~0 : ~UInt64(0) << UInt64(64 - length)
            let ml: UInt64 = length <= 64 ? 0 : length == 128 ? ~0 : ~UInt64(0) << UInt64(128 - length)
            return .v6(h & mh, l & ml, port: 0)
        }
    }

    public var description: String {
        let text = network.description
        // STUNAddress prints "a.b.c.d:0" / "[…]:0"; drop the port.
        let host = network.isIPv4 ? String(text.dropLast(2)) : String(text.dropFirst().dropLast(3))
        return "\(host)/\(length)"
    }
}

/// Which peers a relay may talk to (RFC 8656 §21.3: a TURN server must not become a way into the
/// networks behind it). Deny by default for every range that is not the public Internet.
///
/// Order of decision: an address in ``deny`` is refused; else one in ``allow`` is permitted; else one in a
/// default-denied range (``defaultDenied``) is refused; else it is permitted.
///
/// IPv6 addresses that carry an IPv4 address the packet may end up at are judged by that IPv4 address,
/// so they cannot be used to reach a range refused in IPv4: IPv4-mapped (::ffff:0:0/96), NAT64
/// (64:ff9b::/96 and the local-use 64:ff9b:1::/48, the IPv4 in the last 32 bits) and 6to4 (2002::/16,
/// the IPv4 in bits 16–47). ``deny`` matches either form (an operator may refuse 2002::/16 as a whole);
/// ``allow`` and the defaults see the IPv4 address.
public struct PeerPolicy: Sendable {
    public var allow: [IPPrefix]
    public var deny: [IPPrefix]
    /// Test-only: let loopback peers through (127.0.0.0/8, ::1). Never for production.
    public var allowLoopback: Bool

    public init(allow: [IPPrefix] = [], deny: [IPPrefix] = [], allowLoopback: Bool = false) {
        self.allow = allow
        self.deny = deny
        self.allowLoopback = allowLoopback
    }

    /// Why a peer is refused (a metric label: a fixed, small set).
    public enum Denial: String, Sendable, CaseIterable {
        case configured, loopback, privateNetwork = "private", cgnat, linkLocal = "link_local", uniqueLocal = "unique_local"
        case multicast, documentation, reserved, metadata
    }

    /// The ranges refused unless allowed, each with its reason.
    public static let defaultDenied: [(IPPrefix, Denial)] = ([
        ("0.0.0.0/8", .reserved), ("10.0.0.0/8", .privateNetwork), ("100.64.0.0/10", .cgnat),
        ("127.0.0.0/8", .loopback), ("169.254.169.254/32", .metadata), ("169.254.0.0/16", .linkLocal),
        ("172.16.0.0/12", .privateNetwork), ("192.0.0.0/24", .reserved), ("192.0.2.0/24", .documentation),
        ("192.168.0.0/16", .privateNetwork), ("198.18.0.0/15", .reserved), ("198.51.100.0/24", .documentation),
        ("203.0.113.0/24", .documentation), ("224.0.0.0/4", .multicast), ("240.0.0.0/4", .reserved),
        ("::/128", .reserved), ("::1/128", .loopback), ("100::/64", .reserved), ("2001:2::/48", .reserved),
        ("2001:db8::/32", .documentation), ("3fff::/20", .documentation), ("fd00:ec2::254/128", .metadata),
        ("fc00::/7", .uniqueLocal), ("fe80::/10", .linkLocal), ("fec0::/10", .privateNetwork), ("ff00::/8", .multicast),
    ] as [(String, Denial)]).map { (IPPrefix($0.0)!, $0.1) }

    /// Built from values, not text: parsing "::ffff:0:0" yields an IPv4 address.
    static let mappedV4 = IPPrefix(.v6(0, 0x0000_FFFF_0000_0000, port: 0), length: 96)
    static let nat64 = IPPrefix(.v6(0x0064_FF9B_0000_0000, 0, port: 0), length: 96)
    /// RFC 8215 local-use NAT64. Operators may subdivide it at any RFC 6052 length; like 64:ff9b::/96 it
    /// is read as a /96 (IPv4 last). Another layout is best refused with ``deny``.
    static let localNAT64 = IPPrefix(.v6(0x0064_FF9B_0001_0000, 0, port: 0), length: 48)
    /// RFC 3056 6to4: 2002:AABB:CCDD::/48 is the site behind IPv4 AA.BB.CC.DD.
    static let sixToFour = IPPrefix(.v6(0x2002_0000_0000_0000, 0, port: 0), length: 16)

    /// The IPv4 address an IPv6 address stands for (see the type's comment), if any.
    static func embeddedIPv4(_ address: STUNAddress) -> STUNAddress? {
        guard case .v6(let h, let l, _) = address else { return nil }
        if mappedV4.contains(address) || nat64.contains(address) || localNAT64.contains(address) {
            return .v4(UInt32(truncatingIfNeeded: l), port: 0)
        }
        if sixToFour.contains(address) { return .v4(UInt32(truncatingIfNeeded: h >> 16), port: 0) }
        return nil
    }

    /// nil if `peer` may be relayed to, else why not.
    public func denial(for peer: STUNAddress) -> Denial? {
        let original = peer.withPort(0)
        let embedded = Self.embeddedIPv4(original)
        let address = embedded ?? original
        if deny.contains(where: { $0.contains(address) || $0.contains(original) }) { return .configured }
        if allow.contains(where: { $0.contains(address) }) { return nil }
        for (prefix, reason) in Self.defaultDenied where prefix.contains(address) {
            if reason == .loopback && allowLoopback { return nil }
            return reason
        }
        return nil
    }
}
