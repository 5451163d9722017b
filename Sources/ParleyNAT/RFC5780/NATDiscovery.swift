import NIOCore
import ParleyWire

/// RFC 5780 NAT behaviour discovery as a sans-I/O state machine: feed it ``start(now:)``, every
/// datagram (``receive(_:from:now:)``) and timer expiry (``timerFired(now:)``); it returns what to send
/// and when to wake it, and finally the result.
///
/// One local socket is used throughout, in this order so that no test's answer is let in by a pinhole an
/// earlier test opened (RFC 5780 §4.4 runs filtering tests before anything is sent to the alternate
/// address):
///   1. Binding to the primary address: mapped address, OTHER-ADDRESS.
///   2. Filtering II: CHANGE-REQUEST(ip, port). An answer means endpoint-independent filtering.
///   3. Filtering III: CHANGE-REQUEST(port). An answer means address-dependent filtering (else
///      address-and-port-dependent).
///   4. Mapping II: Binding to (alternate IP, primary port); same mapped address → endpoint-independent.
///   5. Mapping III: Binding to (alternate IP, alternate port); same as II → address-dependent, else
///      address-and-port-dependent.
/// Times are in milliseconds on any monotonic clock.
///
/// Retransmission: every request is sent every ``rto`` ms until answered: at most ``attempts`` times for
/// tests whose answer is expected (the step fails ``rto`` after the last try), ``filteringAttempts``
/// times for the filtering tests, where silence is an answer (the step concludes ``rto`` after the last
/// try). A wake-up before the current deadline (a stale timer the driver could not cancel in time) sends
/// nothing and only repeats the deadline, so it cannot use up tries.
public struct NATDiscovery: Sendable {
    public enum Action: Sendable, Equatable {
        case send(ByteBuffer, to: STUNAddress)
        case wake(atMillis: UInt64)
        case finished(NATBehaviour)
        case failed(String)
    }

    enum Step: Int, Sendable {
        case primary, filteringII, filteringIII, mappingII, mappingIII, done
    }

    public let server: STUNAddress
    public let local: STUNAddress
    /// Retransmission interval and count for tests whose answer is expected.
    public var rto: UInt64 = 250
    public var attempts = 7
    /// Filtering tests expect silence as a possible answer: fewer, quicker tries.
    public var filteringAttempts = 4

    private var step = Step.primary
    private var transaction = STUNTransactionID.random()
    private var sent = 0
    /// When the current try times out.
    private var deadline: UInt64 = 0
    private var mapped1: STUNAddress?
    private var other: STUNAddress?
    private var mapped2: STUNAddress?
    private var filtering: FilteringBehaviour?
    private var allocator = ByteBufferAllocator()

    public init(server: STUNAddress, local: STUNAddress) {
        self.server = server
        self.local = local
    }

    public mutating func start(now: UInt64) -> [Action] { transmit(now: now) }

    public mutating func timerFired(now: UInt64) -> [Action] {
        guard step != .done else { return [] }
        if now < deadline { return [.wake(atMillis: deadline)] }
        if sent < (isFilteringStep ? filteringAttempts : attempts) { return transmit(now: now) }
        switch step {
        case .primary:
            return [.failed("no answer from \(server)")]
        case .filteringII:
            return advance(to: .filteringIII, now: now)
        case .filteringIII:
            filtering = .addressAndPortDependent
            return advance(to: .mappingII, now: now)
        case .mappingII, .mappingIII:
            return [.failed("no answer from the alternate address \(other.map { "\($0)" } ?? "?") (step \(step))")]
        case .done:
            return []
        }
    }

    public mutating func receive(_ datagram: ByteBuffer, from: STUNAddress, now: UInt64) -> [Action] {
        guard let m = try? STUNDecoder.decode(datagram), m.transactionID == transaction,
            m.type == .bindingSuccess || m.type == .bindingError
        else { return [] }
        if m.type == .bindingError {
            let code = m.errorCode?.code ?? 0
            return [.failed(code == 420 ? "the server does not support RFC 5780 (420 for CHANGE-REQUEST)" : "error \(code) from \(from)")]
        }
        guard let xma = m.address(of: .xorMappedAddress, xor: true) ?? m.address(of: .mappedAddress, xor: false) else {
            return [.failed("answer without a mapped address")]
        }
        switch step {
        case .primary:
            guard let oa = m.address(of: .otherAddress, xor: false) else {
                return [.failed("the server did not send OTHER-ADDRESS: RFC 5780 is not enabled there")]
            }
            mapped1 = xma
            other = oa
            return advance(to: .filteringII, now: now)
        case .filteringII:
            filtering = .endpointIndependent
            return advance(to: .mappingII, now: now)
        case .filteringIII:
            filtering = .addressDependent
            return advance(to: .mappingII, now: now)
        case .mappingII:
            mapped2 = xma
            if xma == mapped1 { return finish(.endpointIndependent, mapped3: xma) }
            return advance(to: .mappingIII, now: now)
        case .mappingIII:
            return finish(xma == mapped2 ? .addressDependent : .addressAndPortDependent, mapped3: xma)
        case .done:
            return []
        }
    }

    private var isFilteringStep: Bool { step == .filteringII || step == .filteringIII }

    private mutating func advance(to next: Step, now: UInt64) -> [Action] {
        step = next
        sent = 0
        transaction = .random()
        return transmit(now: now)
    }

    private mutating func finish(_ mapping: MappingBehaviour, mapped3: STUNAddress) -> [Action] {
        step = .done
        let m1 = mapped1!
        let ports = [m1.port, mapped2?.port, mapped2 == mapped3 && mapping == .endpointIndependent ? nil : mapped3.port]
            .compactMap { $0 }
        let finalMapping: MappingBehaviour = m1 == local ? .noNAT : mapping
        // Only mappings the NAT newly created say how it allocates: test II's when it differs from test
        // I's, test III's when it differs from test II's. (An address-dependent NAT reuses test II's
        // mapping for test III; counting that repeat as a step of 0 hid sequential allocation.)
        var fresh = [m1.port]
        if let m2 = mapped2, m2 != m1 {
            fresh.append(m2.port)
            if mapping != .endpointIndependent, mapped3 != m2 { fresh.append(mapped3.port) }
        }
        let allocation: PortAllocation
        if fresh.count >= 2, zip(fresh, fresh.dropFirst()).allSatisfy({ (1...16).contains(Int($1) - Int($0)) }) {
            allocation = .sequential
        } else if m1.port == local.port {
            allocation = .preserved
        } else {
            allocation = .random
        }
        return [.finished(NATBehaviour(local: local, mapped: m1, mapping: finalMapping, filtering: filtering ?? .addressAndPortDependent,
                                       portAllocation: allocation, mappedPorts: ports))]
    }

    private mutating func transmit(now: UInt64) -> [Action] {
        sent += 1
        var buf = allocator.buffer(capacity: 64)
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: transaction, into: &buf)
        let destination: STUNAddress
        switch step {
        case .primary:
            destination = server
        case .filteringII:
            w.append(.changeRequest, uint32: 0x6, into: &buf)
            destination = server
        case .filteringIII:
            w.append(.changeRequest, uint32: 0x2, into: &buf)
            destination = server
        case .mappingII:
            destination = other!.withPort(server.port)
        case .mappingIII:
            destination = other!
        case .done:
            return []
        }
        w.appendFingerprint(into: &buf)
        deadline = now + rto
        return [.send(buf, to: destination), .wake(atMillis: deadline)]
    }
}
