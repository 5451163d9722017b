import CoreMetrics
import ParleyWire

/// The TURN relay's metrics, created once. Labels are bounded sets (method, code, reason, direction):
/// nothing is labelled by user or address, so thousands of users cannot explode the series count.
public final class TURNMetrics: Sendable {
    let requests: [UInt16: Counter]
    let errors: [UInt16: Counter]
    let allocationsMade: Counter
    let allocationsEnded: [String: Counter]
    let allocations: Gauge
    let permissions: Counter
    let channels: Counter
    let packetsToPeer: Counter
    let bytesToPeer: Counter
    let packetsToClient: Counter
    let bytesToClient: Counter
    let drops: [TURNDropReason: Counter]
    let denials: [PeerPolicy.Denial: Counter]

    public static let methods: [STUNMethod] = [.allocate, .refresh, .createPermission, .channelBind]
    public static let errorCodes: [UInt16] = [400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 486, 500, 508]
    public static let endReasons = ["expired", "refreshed_to_zero", "connection_closed", "shutdown"]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        func counter(_ label: String, _ dims: [(String, String)] = []) -> Counter {
            Counter(label: label, dimensions: dims, factory: factory)
        }
        var r: [UInt16: Counter] = [:]
        for m in Self.methods { r[m.rawValue] = counter("parley_turn_requests_total", [("method", m.description)]) }
        requests = r
        var e: [UInt16: Counter] = [:]
        for c in Self.errorCodes { e[c] = counter("parley_turn_errors_total", [("code", String(c))]) }
        errors = e
        allocationsMade = counter("parley_turn_allocations_created_total")
        var ended: [String: Counter] = [:]
        for reason in Self.endReasons { ended[reason] = counter("parley_turn_allocations_ended_total", [("reason", reason)]) }
        allocationsEnded = ended
        allocations = Gauge(label: "parley_turn_allocations", dimensions: [], factory: factory)
        permissions = counter("parley_turn_permissions_installed_total")
        channels = counter("parley_turn_channels_bound_total")
        packetsToPeer = counter("parley_turn_relayed_packets_total", [("direction", "to_peer")])
        bytesToPeer = counter("parley_turn_relayed_bytes_total", [("direction", "to_peer")])
        packetsToClient = counter("parley_turn_relayed_packets_total", [("direction", "to_client")])
        bytesToClient = counter("parley_turn_relayed_bytes_total", [("direction", "to_client")])
        var d: [TURNDropReason: Counter] = [:]
        for reason in TURNDropReason.allCases { d[reason] = counter("parley_turn_dropped_total", [("reason", reason.rawValue)]) }
        drops = d
        var p: [PeerPolicy.Denial: Counter] = [:]
        for reason in PeerPolicy.Denial.allCases { p[reason] = counter("parley_turn_peer_denied_total", [("range", reason.rawValue)]) }
        denials = p
    }
}
