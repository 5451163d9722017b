import NIOCore
import ParleyNAT
import ParleyRelay
import ParleyWire
import XCTest

/// ``NATDiscovery`` driven end to end in memory: the machine's requests go through a simulated NAT
/// (``SimulatedNAT``) to the real server core (``STUNServer`` with RFC 5780 on, its four transport
/// addresses), the answers come back through the NAT's filter, and a manual millisecond clock moves from
/// event to event. No sockets, no sleeping: every time below is exact.
final class NATDiscoveryTests: XCTestCase {
    static let server1 = addr("203.0.113.10", 3478)
    static let natIP = ipv4("198.51.100.2")
    static let privateClient = addr("10.0.1.2", 40000)
    static let publicClient = addr("198.51.100.66", 40000)

    // MARK: - One case per NAT behaviour

    func testNoNATIsOpenInternet() {
        var lab = Lab(nat: SimulatedNAT(publicIP: nil, mapping: .endpointIndependent, filtering: .endpointIndependent,
                                        allocation: .preserving), local: Self.publicClient)
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .noNAT)
        XCTAssertEqual(b?.filtering, .endpointIndependent)
        XCTAssertEqual(b?.portAllocation, .preserved)
        XCTAssertEqual(b?.mapped, Self.publicClient)
        XCTAssertEqual(b?.mappedPorts, [40000, 40000])
        XCTAssertEqual(b?.classicType, "open internet")
        // Filtering II answered: III skipped; mapping II equal to I: III skipped.
        XCTAssertEqual(lab.sends.map(\.step), [.bindingPrimary, .changeIPAndPort, .bindingAlternateIP])
    }

    func testNoNATBehindAFirewall() {
        var lab = Lab(nat: SimulatedNAT(publicIP: nil, mapping: .endpointIndependent, filtering: .addressAndPortDependent,
                                        allocation: .preserving), local: Self.publicClient)
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .noNAT)
        XCTAssertEqual(b?.filtering, .addressAndPortDependent)
        XCTAssertEqual(b?.classicType, "no NAT, firewalled (address-and-port-dependent filtering)")
    }

    func testEIMWithEndpointIndependentFilteringIsFullCone() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .endpointIndependent, allocation: .preserving))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.local, Self.privateClient)
        XCTAssertEqual(b?.mapped, .v4(Self.natIP, port: 40000))
        XCTAssertEqual(b?.mapping, .endpointIndependent)
        XCTAssertEqual(b?.filtering, .endpointIndependent)
        XCTAssertEqual(b?.portAllocation, .preserved)
        XCTAssertEqual(b?.mappedPorts, [40000, 40000])
        XCTAssertEqual(b?.classicType, "full cone")
        XCTAssertEqual(lab.sends.map(\.step), [.bindingPrimary, .changeIPAndPort, .bindingAlternateIP])
    }

    func testEIMWithAddressDependentFilteringIsRestrictedCone() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressDependent, allocation: .preserving))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .endpointIndependent)
        XCTAssertEqual(b?.filtering, .addressDependent)
        XCTAssertEqual(b?.portAllocation, .preserved)
        XCTAssertEqual(b?.mapped, .v4(Self.natIP, port: 40000))
        XCTAssertEqual(b?.classicType, "restricted cone")
        // Filtering II goes unanswered (4 tries), III is let in at once.
        XCTAssertEqual(lab.sends.map(\.step), [.bindingPrimary] + Array(repeating: .changeIPAndPort, count: 4)
            + [.changePort, .bindingAlternateIP])
    }

    func testEIMWithAddressAndPortDependentFilteringIsPortRestrictedCone() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressAndPortDependent, allocation: .preserving))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .endpointIndependent)
        XCTAssertEqual(b?.filtering, .addressAndPortDependent)
        XCTAssertEqual(b?.portAllocation, .preserved)
        XCTAssertEqual(b?.mappedPorts, [40000, 40000])
        XCTAssertEqual(b?.classicType, "port-restricted cone")
    }

    func testAPDMWithRandomPortsIsSymmetric() {
        var lab = Lab(nat: SimulatedNAT(mapping: .addressAndPortDependent, filtering: .addressAndPortDependent,
                                        allocation: .random(seed: 7)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .addressAndPortDependent)
        XCTAssertEqual(b?.filtering, .addressAndPortDependent)
        XCTAssertEqual(b?.portAllocation, .random)
        XCTAssertEqual(b?.classicType, "symmetric")
        XCTAssertEqual(b?.mappedPorts, lab.nat.allocated)
        XCTAssertEqual(Set(b?.mappedPorts ?? []).count, 3, "three mappings, three different ports")
        XCTAssertEqual(lab.sends.map(\.step).suffix(2), [.bindingAlternateIP, .bindingAlternateIPAndPort])
    }

    func testAPDMWithSequentialPortsIsSymmetricSequential() {
        var lab = Lab(nat: SimulatedNAT(mapping: .addressAndPortDependent, filtering: .addressAndPortDependent,
                                        allocation: .sequential(from: 20000)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .addressAndPortDependent)
        XCTAssertEqual(b?.filtering, .addressAndPortDependent)
        XCTAssertEqual(b?.portAllocation, .sequential)
        XCTAssertEqual(b?.mapped, .v4(Self.natIP, port: 20000))
        XCTAssertEqual(b?.mappedPorts, [20000, 20001, 20002])
        XCTAssertEqual(b?.classicType, "symmetric (sequential ports)")
    }

    func testAPDMWithSequentialPortsInStepsOfTwo() {
        var lab = Lab(nat: SimulatedNAT(mapping: .addressAndPortDependent, filtering: .addressAndPortDependent,
                                        allocation: .sequential(from: 20000, step: 2)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mappedPorts, [20000, 20002, 20004])
        XCTAssertEqual(b?.portAllocation, .sequential)
    }

    func testADMIsSymmetric() {
        var lab = Lab(nat: SimulatedNAT(mapping: .addressDependent, filtering: .addressDependent, allocation: .random(seed: 3)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .addressDependent)
        XCTAssertEqual(b?.filtering, .addressDependent)
        XCTAssertEqual(b?.portAllocation, .random)
        XCTAssertEqual(b?.classicType, "symmetric")
        // Test III reuses test II's mapping (same server address): that is what tells ADM from APDM.
        let ports = b?.mappedPorts ?? []
        XCTAssertEqual(ports.count, 3)
        XCTAssertNotEqual(ports.first, ports.dropFirst().first)
        XCTAssertEqual(ports.dropFirst().first, ports.last)
        XCTAssertEqual(lab.nat.allocated.count, 2)
    }

    /// An address-dependent NAT allocating sequentially creates two mappings (test III reuses test II's):
    /// the repeat is not a step of 0, the allocation is still sequential.
    func testADMWithSequentialPortsIsRecognisedAsSequential() {
        var lab = Lab(nat: SimulatedNAT(mapping: .addressDependent, filtering: .addressAndPortDependent,
                                        allocation: .sequential(from: 30000)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .addressDependent)
        XCTAssertEqual(b?.filtering, .addressAndPortDependent)
        XCTAssertEqual(b?.mappedPorts, [30000, 30001, 30001])
        XCTAssertEqual(b?.portAllocation, .sequential)
        XCTAssertEqual(b?.classicType, "symmetric (sequential ports)")
    }

    /// Endpoint-independent mapping without port preservation: one mapping only, nothing to see a
    /// sequence in.
    func testEIMWithoutPortPreservation() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressAndPortDependent,
                                        allocation: .sequential(from: 50000)))
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.mapping, .endpointIndependent)
        XCTAssertEqual(b?.mappedPorts, [50000, 50000])
        XCTAssertEqual(b?.portAllocation, .random)
        XCTAssertEqual(b?.classicType, "port-restricted cone")
    }

    // MARK: - Servers that cannot do RFC 5780, and no server at all

    func testServerWithoutOtherAddressFails() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .endpointIndependent, allocation: .preserving),
                      server: FakeServer(mode: .withoutBehaviourDiscovery))
        let why = lab.expectFailure()
        XCTAssertTrue(why?.contains("OTHER-ADDRESS") ?? false, why ?? "")
        XCTAssertEqual(lab.sends.count, 1, "nothing is tried after the first answer")
        XCTAssertEqual(lab.endedAt, 10)
    }

    func testServerAnswering420ToChangeRequestFails() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .endpointIndependent, allocation: .preserving),
                      server: FakeServer(mode: .rejectsChangeRequest))
        let why = lab.expectFailure()
        XCTAssertTrue(why?.contains("420") ?? false, why ?? "")
        XCTAssertEqual(lab.sends.map(\.step), [.bindingPrimary, .changeIPAndPort])
        XCTAssertEqual(lab.endedAt, 20)
    }

    func testNoAnswerAtAllFailsAfterSevenTries() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .endpointIndependent, allocation: .preserving),
                      server: FakeServer(mode: .silent))
        let why = lab.expectFailure()
        XCTAssertTrue(why?.contains("no answer") ?? false, why ?? "")
        XCTAssertEqual(lab.sends.map(\.at), [0, 250, 500, 750, 1000, 1250, 1500])
        XCTAssertEqual(Set(lab.sends.map(\.to)), [Self.server1])
        XCTAssertEqual(Set(lab.sends.map(\.transactionID)).count, 1, "retransmissions keep the transaction ID")
        XCTAssertEqual(lab.endedAt, 1750)
    }

    func testAlternateAddressNotAnsweringFails() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressAndPortDependent, allocation: .preserving),
                      server: FakeServer(mode: .alternateIPSilent))
        let why = lab.expectFailure()
        XCTAssertTrue(why?.contains("alternate") ?? false, why ?? "")
        let mappingII = lab.sends.filter { $0.step == .bindingAlternateIP }
        XCTAssertEqual(mappingII.count, 7)
        XCTAssertEqual(lab.endedAt, mappingII[0].at + 7 * 250)
    }

    // MARK: - Retransmission timing

    /// Every send of a port-restricted cone run, to the millisecond (5 ms each way): the filtering tests
    /// are tried 4 times 250 ms apart and concluded 250 ms after the last try; answered tests move on at
    /// once.
    func testRetransmissionScheduleThroughAPortRestrictedCone() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressAndPortDependent, allocation: .preserving))
        _ = lab.expectBehaviour()
        let alt3478 = addr("203.0.113.11", 3478)
        XCTAssertEqual(lab.sends.map { Sent.Brief($0) }, [
            .init(0, .bindingPrimary, Self.server1),
            .init(10, .changeIPAndPort, Self.server1), .init(260, .changeIPAndPort, Self.server1),
            .init(510, .changeIPAndPort, Self.server1), .init(760, .changeIPAndPort, Self.server1),
            .init(1010, .changePort, Self.server1), .init(1260, .changePort, Self.server1),
            .init(1510, .changePort, Self.server1), .init(1760, .changePort, Self.server1),
            .init(2010, .bindingAlternateIP, alt3478),
        ])
        XCTAssertEqual(lab.endedAt, 2020)
        // One transaction per test, retransmissions keep it.
        XCTAssertEqual(Set(lab.sends.map(\.transactionID)).count, 4)
        XCTAssertTrue(lab.sends.allSatisfy(\.hasFingerprint))
    }

    /// A lost request is simply sent again one RTO later; the result does not change.
    func testLostRequestsAreRetransmitted() {
        var lab = Lab(nat: SimulatedNAT(mapping: .endpointIndependent, filtering: .addressDependent, allocation: .preserving))
        lab.loseClientSends = [0, 6]  // the first Binding, and the first try of filtering test III
        let b = lab.expectBehaviour()
        XCTAssertEqual(b?.filtering, .addressDependent)
        XCTAssertEqual(b?.mapping, .endpointIndependent)
        XCTAssertEqual(lab.sends.map(\.at).prefix(2), [0, 250])
        XCTAssertEqual(lab.sends.filter { $0.step == .changePort }.count, 2)
    }

    /// A path slower than the RTO (400 ms round trip): answers to earlier tries of the same test count,
    /// late answers to a test already concluded are ignored, and the result is right.
    func testSlowPathStillClassifiesCorrectly() {
        for (mapping, filtering, expectedFiltering) in [
            (SimulatedNAT.Mapping.endpointIndependent, SimulatedNAT.Filtering.addressDependent, FilteringBehaviour.addressDependent),
            (.addressAndPortDependent, .endpointIndependent, .endpointIndependent),
        ] {
            var lab = Lab(nat: SimulatedNAT(mapping: mapping, filtering: filtering, allocation: .sequential(from: 20000)))
            lab.oneWayDelay = 200
            let b = lab.expectBehaviour()
            XCTAssertEqual(b?.filtering, expectedFiltering)
            XCTAssertEqual(b?.mapping, mapping == .endpointIndependent ? .endpointIndependent : .addressAndPortDependent)
            XCTAssertGreaterThan(lab.ignoredAnswers, 0, "late answers to retransmissions arrived and were ignored")
        }
    }

    /// A wake-up before the deadline (a timer the driver could not cancel in time) sends nothing and
    /// does not use up a try.
    func testEarlyTimerSendsNothingAndSpendsNoTry() {
        var machine = NATDiscovery(server: Self.server1, local: Self.privateClient)
        let first = machine.start(now: 1000)
        XCTAssertEqual(first.count, 2)
        XCTAssertEqual(first.last, .wake(atMillis: 1250))
        for t in [1000, 1100, 1249] as [UInt64] {
            XCTAssertEqual(machine.timerFired(now: t), [.wake(atMillis: 1250)])
        }
        // Still seven real tries, 250 ms apart, then the failure.
        var sendTimes: [UInt64] = [1000]
        var now: UInt64 = 1250
        while true {
            let actions = machine.timerFired(now: now)
            if case .failed = actions.first { break }
            guard case .send = actions.first, case .wake(let next) = actions.last else { return XCTFail("\(actions)") }
            sendTimes.append(now)
            XCTAssertEqual(machine.timerFired(now: now + 1), [.wake(atMillis: next)])
            now = next
        }
        XCTAssertEqual(sendTimes, [1000, 1250, 1500, 1750, 2000, 2250, 2500])
        XCTAssertEqual(now, 2750)
    }

    func testAnswersWithAnotherTransactionIDAreIgnored() {
        var machine = NATDiscovery(server: Self.server1, local: Self.privateClient)
        _ = machine.start(now: 0)
        var out = ByteBuffer()
        let w = STUNMessageWriter(type: .bindingSuccess, transactionID: .random(), into: &out)
        w.append(.xorMappedAddress, address: .v4(Self.natIP, port: 1), xor: true, into: &out)
        XCTAssertEqual(machine.receive(out, from: Self.server1, now: 5), [])
        XCTAssertEqual(machine.receive(ByteBuffer(bytes: [1, 2, 3]), from: Self.server1, now: 6), [])
    }
}

// MARK: - The simulated network

/// A NAT with one public IPv4 address (or none: the client is public, and the filter is a firewall).
/// Mapping: which (local, destination) pairs share a public port. Filtering: which inbound packets to a
/// public port are let through, from the destinations that port has sent to.
struct SimulatedNAT {
    enum Mapping { case endpointIndependent, addressDependent, addressAndPortDependent }
    enum Filtering { case endpointIndependent, addressDependent, addressAndPortDependent }
    enum Allocation {
        /// The local port if free, else the next free one.
        case preserving
        /// from, from + step, ... per new mapping.
        case sequential(from: UInt16, step: UInt16 = 1)
        /// Deterministic pseudo-random ports in 1024...65535.
        case random(seed: UInt64)
    }

    let publicIP: UInt32?
    let mapping: Mapping
    let filtering: Filtering
    let allocation: Allocation
    /// Public ports in the order they were allocated.
    private(set) var allocated: [UInt16] = []

    private struct Key: Hashable {
        var local: STUNAddress
        var remoteIP: UInt32?
        var remotePort: UInt16?
    }
    private var mappings: [Key: UInt16] = [:]
    private var owner: [UInt16: STUNAddress] = [:]
    private var sentTo: [UInt16: Set<STUNAddress>] = [:]
    private var counter = 0
    private var rng: UInt64 = 0

    init(publicIP: UInt32? = NATDiscoveryTests.natIP, mapping: Mapping, filtering: Filtering, allocation: Allocation) {
        self.publicIP = publicIP
        self.mapping = mapping
        self.filtering = filtering
        self.allocation = allocation
        if case .random(let seed) = allocation { rng = seed }
    }

    /// The public source address of a packet from `local` to `remote` (creating the mapping if new).
    mutating func outbound(from local: STUNAddress, to remote: STUNAddress) -> STUNAddress {
        let key = Key(local: local,
                      remoteIP: mapping == .endpointIndependent ? nil : ipv4(remote),
                      remotePort: mapping == .addressAndPortDependent ? remote.port : nil)
        let port: UInt16
        if let known = mappings[key] {
            port = known
        } else {
            port = allocate(for: local)
            mappings[key] = port
            owner[port] = local
            allocated.append(port)
        }
        sentTo[port, default: []].insert(remote)
        return publicIP.map { .v4($0, port: port) } ?? local
    }

    /// Where an inbound packet from `remote` to `publicAddress` goes, or `nil` if the NAT drops it.
    func inbound(from remote: STUNAddress, to publicAddress: STUNAddress) -> STUNAddress? {
        guard let local = owner[publicAddress.port], (publicIP.map { .v4($0, port: publicAddress.port) } ?? local) == publicAddress
        else { return nil }
        let sent = sentTo[publicAddress.port] ?? []
        switch filtering {
        case .endpointIndependent: return local
        case .addressDependent: return sent.contains { ipv4($0) == ipv4(remote) } ? local : nil
        case .addressAndPortDependent: return sent.contains(remote) ? local : nil
        }
    }

    private mutating func allocate(for local: STUNAddress) -> UInt16 {
        guard publicIP != nil else { return local.port }
        switch allocation {
        case .preserving:
            var p = local.port
            while owner[p] != nil { p &+= 1 }
            return p
        case .sequential(let from, let step):
            defer { counter += 1 }
            return from &+ UInt16(counter) &* step
        case .random:
            while true {
                rng = rng &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                let p = UInt16(1024 + (rng >> 33) % 64512)
                if owner[p] == nil { return p }
            }
        }
    }
}

/// The server: ParleyRelay's ``STUNServer`` core on four transport addresses (203.0.113.10/.11 ×
/// 3478/3479), or one that cannot do RFC 5780, or none.
struct FakeServer {
    enum Mode {
        case rfc5780
        /// A plain RFC 8489 server: no OTHER-ADDRESS.
        case withoutBehaviourDiscovery
        /// Sends OTHER-ADDRESS but answers CHANGE-REQUEST with 420 (what our server does with RFC 5780 off).
        case rejectsChangeRequest
        /// Nothing answers.
        case silent
        /// The alternate IP's sockets are dead.
        case alternateIPSilent
    }

    static let behaviour = BehaviourDiscovery(primaryIP: addr("203.0.113.10", 0), alternateIP: addr("203.0.113.11", 0),
                                              primaryPort: 3478, alternatePort: 3479)
    let mode: Mode
    let discovery = STUNServer(configuration: STUNServerConfiguration(behaviourDiscovery: FakeServer.behaviour))
    let plain = STUNServer(configuration: STUNServerConfiguration())

    init(mode: Mode = .rfc5780) { self.mode = mode }

    /// The answer to `bytes` sent from `source` to `destination`: its bytes, source and destination.
    func handle(_ bytes: ByteBuffer, from source: STUNAddress, to destination: STUNAddress, now: UInt64)
        -> (bytes: ByteBuffer, from: STUNAddress, to: STUNAddress)?
    {
        guard mode != .silent else { return nil }
        let endpoints = [false, true].flatMap { ip in [false, true].map { STUNEndpoint(alternateIP: ip, alternatePort: $0) } }
        guard let endpoint = endpoints.first(where: { Self.behaviour.address($0) == destination }) else { return nil }
        if mode == .alternateIPSilent && endpoint.alternateIP { return nil }
        let changes = (try? STUNDecoder.decode(bytes))?.contains(.changeRequest) ?? false
        let core = mode == .withoutBehaviourDiscovery || (mode == .rejectsChangeRequest && changes) ? plain : discovery
        var out = ByteBuffer()
        switch core.handle(bytes, from: source, on: endpoint, transport: .udp, now: now, into: &out) {
        case .respond(let to, let from, _):
            let origin = Self.behaviour.address(from)
            if mode == .alternateIPSilent && from.alternateIP { return nil }
            return (out, origin, to)
        case .drop:
            return nil
        }
    }
}

/// What the client sent, decoded.
struct Sent {
    enum Step: Equatable { case bindingPrimary, changeIPAndPort, changePort, bindingAlternateIP, bindingAlternateIPAndPort, other }
    var at: UInt64
    var to: STUNAddress
    var transactionID: STUNTransactionID
    var step: Step
    var hasFingerprint: Bool

    struct Brief: Equatable, CustomStringConvertible {
        var at: UInt64
        var step: Step
        var to: STUNAddress
        init(_ at: UInt64, _ step: Step, _ to: STUNAddress) { (self.at, self.step, self.to) = (at, step, to) }
        init(_ s: Sent) { self.init(s.at, s.step, s.to) }
        var description: String { "\(at) \(step) \(to)" }
    }
}

/// Client ⇄ NAT ⇄ server, with a manual clock. Runs the machine to its end.
struct Lab {
    var nat: SimulatedNAT
    var server = FakeServer()
    var local = NATDiscoveryTests.privateClient
    var oneWayDelay: UInt64 = 5
    /// Indexes (0-based, in send order) of client datagrams lost before reaching the NAT.
    var loseClientSends: Set<Int> = []

    private(set) var sends: [Sent] = []
    private(set) var endedAt: UInt64?
    private(set) var ignoredAnswers = 0

    init(nat: SimulatedNAT, server: FakeServer = FakeServer(), local: STUNAddress = NATDiscoveryTests.privateClient) {
        self.nat = nat
        self.server = server
        self.local = local
    }

    enum End { case finished(NATBehaviour), failed(String) }

    mutating func run(file: StaticString = #filePath, line: UInt = #line) -> End? {
        var machine = NATDiscovery(server: NATDiscoveryTests.server1, local: local)
        var now: UInt64 = 0
        var timer: UInt64?
        var arriving: [(at: UInt64, bytes: ByteBuffer, from: STUNAddress)] = []
        var actions = machine.start(now: now)
        while now < 120_000 {
            for action in actions {
                switch action {
                case .send(let bytes, let to):
                    record(bytes, to: to, at: now)
                    guard !loseClientSends.contains(sends.count - 1) else { continue }
                    let source = nat.outbound(from: local, to: to)
                    guard let answer = server.handle(bytes, from: source, to: to, now: now + oneWayDelay) else { continue }
                    XCTAssertEqual(answer.to, source, "answers go back to the source", file: file, line: line)
                    if let inside = nat.inbound(from: answer.from, to: answer.to) {
                        XCTAssertEqual(inside, local, file: file, line: line)
                        arriving.append((now + 2 * oneWayDelay, answer.bytes, answer.from))
                    }
                case .wake(let at):
                    XCTAssertGreaterThan(at, now, "a wake-up in the future", file: file, line: line)
                    timer = at
                case .finished(let behaviour):
                    endedAt = now
                    return .finished(behaviour)
                case .failed(let why):
                    endedAt = now
                    return .failed(why)
                }
            }
            // The next event: the earliest arriving datagram, or the timer (datagrams first on a tie).
            if let i = arriving.indices.min(by: { arriving[$0].at < arriving[$1].at }), timer.map({ arriving[i].at <= $0 }) ?? true {
                let d = arriving.remove(at: i)
                now = d.at
                actions = machine.receive(d.bytes, from: d.from, now: now)
                if actions.isEmpty { ignoredAnswers += 1 }
            } else if let t = timer {
                timer = nil
                now = t
                actions = machine.timerFired(now: now)
            } else {
                XCTFail("the machine stalled: nothing to send, no timer", file: file, line: line)
                return nil
            }
        }
        XCTFail("no result after 120 s", file: file, line: line)
        return nil
    }

    mutating func expectBehaviour(file: StaticString = #filePath, line: UInt = #line) -> NATBehaviour? {
        switch run(file: file, line: line) {
        case .finished(let b): return b
        case .failed(let why): XCTFail("failed: \(why)", file: file, line: line)
        case nil: break
        }
        return nil
    }

    mutating func expectFailure(file: StaticString = #filePath, line: UInt = #line) -> String? {
        switch run(file: file, line: line) {
        case .failed(let why): return why
        case .finished(let b): XCTFail("unexpected result \(b)", file: file, line: line)
        case nil: break
        }
        return nil
    }

    private mutating func record(_ bytes: ByteBuffer, to: STUNAddress, at: UInt64) {
        guard let m = try? STUNDecoder.decode(bytes) else {
            XCTFail("the machine sent something that is not STUN")
            return
        }
        let change = m.value(of: .changeRequest).flatMap { $0.getInteger(at: $0.readerIndex, as: UInt32.self) }
        let server2 = FakeServer.behaviour.alternateIP
        let step: Sent.Step
        switch (change, to) {
        case (nil, NATDiscoveryTests.server1): step = .bindingPrimary
        case (.some(0x6), NATDiscoveryTests.server1): step = .changeIPAndPort
        case (.some(0x2), NATDiscoveryTests.server1): step = .changePort
        case (nil, server2.withPort(3478)): step = .bindingAlternateIP
        case (nil, server2.withPort(3479)): step = .bindingAlternateIPAndPort
        default: step = .other
        }
        XCTAssertEqual(m.type, .bindingRequest)
        sends.append(Sent(at: at, to: to, transactionID: m.transactionID, step: step, hasFingerprint: m.fingerprintOffset != nil))
    }
}

func addr(_ ip: String, _ port: UInt16) -> STUNAddress { STUNAddress(parsing: "\(ip):\(port)")! }
func ipv4(_ ip: String) -> UInt32 { if case .v4(let a, _) = addr(ip, 0) { return a } else { fatalError(ip) } }
func ipv4(_ a: STUNAddress) -> UInt32? { if case .v4(let ip, _) = a { return ip } else { return nil } }
