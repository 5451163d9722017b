import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A transport address as STUN carries it: IPv4 or IPv6 plus a port, stored inline.
///
/// This is the codec's own type so that ParleyWire needs no socket API. ``init(_:)`` and
/// ``socketAddress()`` convert to and from NIO's `SocketAddress` without going through strings.
public enum STUNAddress: Sendable, Hashable, CustomStringConvertible {
    /// IPv4 address in host byte order, port.
    case v4(UInt32, port: UInt16)
    /// IPv6 address as two host-order 64-bit halves, port.
    case v6(UInt64, UInt64, port: UInt16)

    public var port: UInt16 {
        switch self {
        case .v4(_, let p), .v6(_, _, let p): p
        }
    }

    /// The same address with another port.
    public func withPort(_ port: UInt16) -> STUNAddress {
        switch self {
        case .v4(let a, _): .v4(a, port: port)
        case .v6(let h, let l, _): .v6(h, l, port: port)
        }
    }

    /// The STUN family byte (RFC 8489 §14.1): 0x01 IPv4, 0x02 IPv6.
    public var family: UInt8 {
        switch self {
        case .v4: 0x01
        case .v6: 0x02
        }
    }

    /// Length of the address attribute's value on the wire.
    public var encodedLength: Int {
        switch self {
        case .v4: 8
        case .v6: 20
        }
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .v4(let a, let p):
            return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF):\(p)"
        case .v6(let h, let l, let p):
            var groups: [String] = []
            for i in 0..<4 { groups.append(String((h >> UInt64(48 - 16 * i)) & 0xFFFF, radix: 16)) }
            for i in 0..<4 { groups.append(String((l >> UInt64(48 - 16 * i)) & 0xFFFF, radix: 16)) }
            return "[\(groups.joined(separator: ":"))]:\(p)"
        }
    }
}

extension STUNAddress {
    /// Converts from NIO's socket address; `nil` for unix-domain addresses.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            let sin = a.address
            self = .v4(UInt32(bigEndian: sin.sin_addr.s_addr), port: UInt16(bigEndian: sin.sin_port))
        case .v6(let a):
            let sin6 = a.address
            var h: UInt64 = 0
            var l: UInt64 = 0
            withUnsafeBytes(of: sin6.sin6_addr) { raw in
                for i in 0..<8 { h = (h << 8) | UInt64(raw[i]) }
                for i in 8..<16 { l = (l << 8) | UInt64(raw[i]) }
            }
            // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) on a dual-stack socket is reported as IPv4.
            if h == 0, l >> 32 == 0xFFFF {
                self = .v4(UInt32(truncatingIfNeeded: l), port: UInt16(bigEndian: sin6.sin6_port))
            } else {
                self = .v6(h, l, port: UInt16(bigEndian: sin6.sin6_port))
            }
        case .unixDomainSocket:
            return nil
        }
    }

    /// Converts to NIO's socket address.
    public func socketAddress() -> SocketAddress {
        switch self {
        case .v4(let a, let p):
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = p.bigEndian
            sin.sin_addr.s_addr = a.bigEndian
            return SocketAddress(sin, host: "")
        case .v6(let h, let l, let p):
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = p.bigEndian
            withUnsafeMutableBytes(of: &sin6.sin6_addr) { raw in
                for i in 0..<8 { raw[i] = UInt8(truncatingIfNeeded: h >> UInt64(56 - 8 * i)) }
                for i in 0..<8 { raw[8 + i] = UInt8(truncatingIfNeeded: l >> UInt64(56 - 8 * i)) }
            }
            return SocketAddress(sin6, host: "")
        }
    }

    /// Parses "1.2.3.4:5", "[::1]:5", or, with `defaultPort`, a bare address.
    public init?(parsing text: String, defaultPort: UInt16? = nil) {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { port = UInt16(rest.dropFirst()) } else if !rest.isEmpty { return nil }
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.lastIndex(of: ":") {
            port = UInt16(host[host.index(after: colon)...])
            host = host[..<colon]
        }
        guard let port else { return nil }
        guard let sa = try? SocketAddress(ipAddress: String(host), port: Int(port)) else { return nil }
        guard let parsed = STUNAddress(sa) else { return nil }
        self = parsed
    }
}
