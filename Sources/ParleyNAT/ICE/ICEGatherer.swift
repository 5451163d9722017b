import NIOCore
import ParleyWire

/// Server-reflexive and predicted candidates for one socket, sans I/O (docs/PROTOCOL.md §6.1).
///
/// It sends a STUN Binding to the server, then — when the answer names an OTHER-ADDRESS (RFC 5780) — to the
/// server's other port and to its other address and port, one after the other, from the same socket. The
/// mapped addresses say how the NAT maps: one address for all three means endpoint-independent mapping (the
/// server-reflexive candidate is good for any peer); ports that step by a constant `d` mean a symmetric NAT
/// that allocates sequentially, and the next mappings are predicted as `last + k·d` for `k = 1…count`
/// (candidates of type ``ICECandidateType/predicted``). Anything else predicts nothing.
public struct ICEGatherer: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Predicted candidates to offer for a sequential symmetric NAT.
        public var predictions = 8
        /// What earlier gatherings found, by the public IP address the NAT mapped to (`.finished`'s mapping
        /// text): when the first Binding shows a public address with a cached behaviour, the RFC 5780 probes
        /// are skipped and, for a cached sequential step, the predictions follow from that one mapping
        /// (behaviour discovery done once, PROTOCOL §6.1).
        public var cached: [String: String] = [:]
        /// First retransmission timeout (µs), doubling; sends per request.
        public var rto: UInt64 = 100_000
        public var maxSends = 5
        public init() {}
    }

    public enum Action: Sendable, Hashable {
        /// Send from the gathering socket.
        case send([UInt8], to: SocketAddress)
        /// A candidate found.
        case candidate(ICECandidate)
        /// Nothing more will come.
        case finished(mapping: String)
    }

    public let configuration: Configuration
    let server: SocketAddress
    let base: Int
    var targets: [SocketAddress] = []
    var mapped: [SocketAddress] = []
    var transaction: STUNTransactionID?
    var sends = 0
    var nextSend: UInt64 = 0
    public private(set) var finished = false

    /// Gathers for the socket whose transport id is `base`, asking `server`.
    public init(server: SocketAddress, base: Int = 0, configuration: Configuration = Configuration()) {
        self.server = server
        self.base = base
        self.configuration = configuration
    }

    /// When ``tick(now:)`` next has work.
    public var nextDeadline: UInt64? { finished ? nil : nextSend }

    public mutating func start(now: UInt64) -> [Action] {
        targets = [server]
        return request(now: now)
    }

    mutating func request(now: UInt64) -> [Action] {
        guard let target = targets.dropFirst(mapped.count).first else { return finish() }
        transaction = .random()
        sends = 0
        return send(to: target, now: now)
    }

    mutating func send(to target: SocketAddress, now: UInt64) -> [Action] {
        guard let transaction else { return [] }
        var buffer = ByteBufferAllocator().buffer(capacity: 28)
        let writer = STUNMessageWriter(type: .bindingRequest, transactionID: transaction, into: &buffer)
        writer.finish(integrity: nil, fingerprint: true, into: &buffer)
        sends += 1
        nextSend = now + configuration.rto << UInt64(sends - 1)
        return [.send(Array(buffer.readableBytesView), to: target)]
    }

    public mutating func tick(now: UInt64) -> [Action] {
        guard !finished, transaction != nil, now >= nextSend else { return [] }
        guard sends < configuration.maxSends else { return finish() }
        guard let target = targets.dropFirst(mapped.count).first else { return finish() }
        return send(to: target, now: now)
    }

    /// A datagram from the gathering socket; returns nothing for datagrams that are not its answers.
    public mutating func receive(_ bytes: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        guard !finished, let transaction else { return [] }
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        guard let message = try? STUNDecoder.decode(buffer), message.type == .bindingSuccess,
            message.transactionID == transaction,
            let address = message.address(of: .xorMappedAddress, xor: true) ?? message.address(of: .mappedAddress, xor: false)
        else { return [] }
        self.transaction = nil
        let reflexive = address.socketAddress()
        mapped.append(reflexive)
        var actions: [Action] = []
        if mapped.count == 1 {
            actions.append(.candidate(ICECandidate(type: .serverReflexive, address: reflexive, base: base)))
            if let ip = reflexive.ipAddress, let cached = configuration.cached[ip] {
                return actions + finish(cached: cached)
            }
            // RFC 5780: the other port, then the other address and port, if the server has them.
            if let other = message.address(of: .otherAddress, xor: false),
                let serverAddress = STUNAddress(server)
            {
                targets.append(serverAddress.withPort(other.port).socketAddress())
                targets.append(other.socketAddress())
            }
        }
        return actions + request(now: now)
    }

    /// Ends with a cached behaviour: predictions from the one mapping just learned and the cached step.
    mutating func finish(cached: String) -> [Action] {
        finished = true
        transaction = nil
        var actions: [Action] = []
        let prefix = "symmetric, sequential step "
        if cached.hasPrefix(prefix), let step = Int(cached.dropFirst(prefix.count)), let last = mapped.last, let port = last.port {
            actions += predictions(from: last, port: port, step: step)
        }
        return actions + [.finished(mapping: cached + " (cached)")]
    }

    func predictions(from last: SocketAddress, port: Int, step: Int) -> [Action] {
        (1...max(1, configuration.predictions)).compactMap { k in
            let predicted = port + k * step
            guard (1...65535).contains(predicted), let address = try? SocketAddress(ipAddress: last.ipAddress ?? "", port: predicted)
            else { return nil }
            return .candidate(
                ICECandidate(
                    type: .predicted, address: address,
                    priority: ICECandidate.priority(type: .predicted, localPreference: UInt32(65_535 - k)), base: base))
        }
    }

    mutating func finish() -> [Action] {
        guard !finished else { return [] }
        finished = true
        transaction = nil
        var actions: [Action] = []
        let ports = mapped.compactMap(\.port)
        let mapping: String
        if mapped.count < 2 {
            mapping = mapped.isEmpty ? "unknown (no answer)" : "unknown (no RFC 5780 server)"
        } else if Set(mapped).count == 1 {
            mapping = "endpoint-independent"
        } else if ports.count >= 3, Set(mapped.map { $0.ipAddress ?? "" }).count == 1,
            ports[1] - ports[0] == ports[2] - ports[1], ports[1] != ports[0]
        {
            let step = ports[1] - ports[0]
            mapping = "symmetric, sequential step \(step)"
            if let last = mapped.last { actions += predictions(from: last, port: ports[2], step: step) }
        } else {
            mapping = "address- or port-dependent, unpredictable"
        }
        return actions + [.finished(mapping: mapping)]
    }

    /// The public IP address the first Binding showed (the key of the behaviour cache).
    public var mappedIP: String? { mapped.first?.ipAddress }
}
