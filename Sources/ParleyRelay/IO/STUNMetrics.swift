import CoreMetrics
import ParleyWire

/// The STUN server's counters, created once (metric objects are looked up at start, never per packet).
/// Labels are bounded: transport × class, error code, drop reason.
public final class STUNMetrics: Sendable {
    let requests: [STUNTransport: Counter]
    let successes: [STUNTransport: Counter]
    let errors: [UInt16: Counter]
    let drops: [STUNServer.DropReason: Counter]
    let bytesIn: [STUNTransport: Counter]
    let bytesOut: [STUNTransport: Counter]
    let tcpConnections: Counter
    let tcpClosed: [String: Counter]

    public static let errorCodes: [UInt16] = [300, 400, 401, 403, 420, 438, 500]
    public static let tcpCloseReasons = ["eof", "idle-timeout", "frame-too-large", "not-stun", "error"]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        func counter(_ label: String, _ dims: [(String, String)]) -> Counter {
            Counter(label: label, dimensions: dims, factory: factory)
        }
        var r: [STUNTransport: Counter] = [:]
        var s: [STUNTransport: Counter] = [:]
        var bi: [STUNTransport: Counter] = [:]
        var bo: [STUNTransport: Counter] = [:]
        for t in STUNTransport.allCases {
            r[t] = counter("parley_stun_requests_total", [("transport", t.rawValue)])
            s[t] = counter("parley_stun_answers_total", [("transport", t.rawValue), ("class", "success")])
            bi[t] = counter("parley_stun_bytes_total", [("transport", t.rawValue), ("direction", "in")])
            bo[t] = counter("parley_stun_bytes_total", [("transport", t.rawValue), ("direction", "out")])
        }
        requests = r
        successes = s
        bytesIn = bi
        bytesOut = bo
        var e: [UInt16: Counter] = [:]
        for c in Self.errorCodes { e[c] = counter("parley_stun_errors_total", [("code", String(c))]) }
        errors = e
        var d: [STUNServer.DropReason: Counter] = [:]
        for reason in STUNServer.DropReason.allCases { d[reason] = counter("parley_stun_dropped_total", [("reason", reason.rawValue)]) }
        drops = d
        tcpConnections = counter("parley_stun_stream_connections_total", [])
        var tc: [String: Counter] = [:]
        for reason in Self.tcpCloseReasons { tc[reason] = counter("parley_stun_stream_closed_total", [("reason", reason)]) }
        tcpClosed = tc
    }

    /// Records one handled message.
    @inline(__always)
    func record(_ action: STUNServer.Action, transport: STUNTransport, bytesIn n: Int, bytesOut m: Int) {
        bytesIn[transport]!.increment(by: Int64(n))
        switch action {
        case .drop(let reason):
            drops[reason]!.increment()
        case .respond(_, _, let outcome):
            requests[transport]!.increment()
            bytesOut[transport]!.increment(by: Int64(m))
            switch outcome {
            case .success: successes[transport]!.increment()
            case .error(let code): errors[code.rawValue]?.increment()
            }
        }
    }
}
