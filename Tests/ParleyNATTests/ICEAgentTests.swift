import NIOCore
import ParleyWire
import XCTest

@testable import ParleyNAT

/// Connectivity checks (docs/PROTOCOL.md §6) between two agents over a simulated network, manual clock.
final class ICEAgentTests: XCTestCase {
    func address(_ ip: String, _ port: Int) -> SocketAddress { try! SocketAddress(ipAddress: ip, port: port) }

    /// Two agents and a network that delivers datagrams between known addresses, with a one-way delay and a
    /// drop rule; time advances in 5 ms steps.
    struct Lab {
        var agents: [ICEAgent]
        /// Where each transport address lives: agent index and base id.
        var endpoints: [SocketAddress: (agent: Int, base: Int)]
        /// The source address a datagram from (agent, base) appears to come from (a NAT's mapping).
        var sourceOf: [Int: [Int: SocketAddress]]
        var drop: (SocketAddress, SocketAddress) -> Bool = { _, _ in false }
        var delay: UInt64 = 10_000
        var inFlight: [(at: UInt64, bytes: [UInt8], from: SocketAddress, to: SocketAddress)] = []
        var now: UInt64 = 0
        var events: [[ICEAgent.Action]] = [[], []]

        mutating func handle(_ actions: [ICEAgent.Action], of agent: Int) {
            for action in actions {
                if case .send(let bytes, let base, let to) = action {
                    guard let from = sourceOf[agent]?[base] else { continue }
                    inFlight.append((now + delay, bytes, from, to))
                } else {
                    events[agent].append(action)
                }
            }
        }

        mutating func run(until end: UInt64) {
            while now <= end {
                for i in agents.indices { handle(agents[i].tick(now: now), of: i) }
                let due = inFlight.filter { $0.at <= now }
                inFlight.removeAll { $0.at <= now }
                for packet in due where !drop(packet.from, packet.to) {
                    guard let (agent, base) = endpoints[packet.to] else { continue }
                    handle(agents[agent].receive(packet.bytes, base: base, from: packet.from, now: now), of: agent)
                }
                now += 5_000
            }
        }

        func selections(_ agent: Int) -> [ICEPair] {
            events[agent].compactMap { if case .selected(let pair) = $0 { pair } else { nil } }
        }
    }

    let credsA = ICECredentials(ufrag: "aaaa", password: "aaaaaaaaaaaaaaaaaaaaaaaa")
    let credsB = ICECredentials(ufrag: "bbbb", password: "bbbbbbbbbbbbbbbbbbbbbbbb")

    func makeLab() -> Lab {
        let a = ICEAgent(role: .controlling, local: credsA, remote: credsB, tieBreaker: 2)
        let b = ICEAgent(role: .controlled, local: credsB, remote: credsA, tieBreaker: 1)
        return Lab(agents: [a, b], endpoints: [:], sourceOf: [:])
    }

    func testHostPairConnectsAndBothSidesSelectIt() {
        var lab = makeLab()
        let a = address("198.51.100.1", 4000)
        let b = address("198.51.100.2", 5000)
        lab.endpoints = [a: (0, 0), b: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: b]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: a, base: 0))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: b, base: 0))
        lab.agents[0].addRemote(ICECandidate(type: .host, address: b))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: a))
        lab.run(until: 200_000)
        XCTAssertEqual(lab.agents[0].selected?.remote.address, b)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, a)
        // Selected within one round trip of the first check (10 ms each way).
        XCTAssertEqual(lab.selections(0).count, 1)
    }

    /// The callee knows the caller's candidates (from the offer), the caller none of the callee's yet: the
    /// callee's check teaches the caller a peer-reflexive candidate and a triggered check answers it.
    func testPeerReflexiveAndTriggeredCheck() {
        var lab = makeLab()
        let a = address("198.51.100.1", 4000)
        let bHost = address("10.0.0.2", 5000)
        let bMapped = address("203.0.113.7", 61000)  // B behind a NAT
        lab.endpoints = [a: (0, 0), bMapped: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: bMapped]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: a, base: 0))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: bHost, base: 0))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: a))
        lab.run(until: 300_000)
        XCTAssertTrue(lab.events[0].contains { if case .learned(let c) = $0 { c.address == bMapped && c.type == .peerReflexive } else { false } })
        XCTAssertEqual(lab.agents[0].selected?.remote.address, bMapped)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, a)
    }

    func testWrongPasswordNeverSucceeds() {
        var lab = makeLab()
        // Neither knows the other's real password (credentials from a tampered offer/answer).
        lab.agents[0] = ICEAgent(role: .controlling, local: credsA, remote: ICECredentials(ufrag: "bbbb", password: "wrongwrongwrongwrongwron"), tieBreaker: 2)
        lab.agents[1] = ICEAgent(role: .controlled, local: credsB, remote: ICECredentials(ufrag: "aaaa", password: "wrongwrongwrongwrongwron"), tieBreaker: 1)
        let a = address("198.51.100.1", 4000)
        let b = address("198.51.100.2", 5000)
        lab.endpoints = [a: (0, 0), b: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: b]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: a, base: 0))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: b, base: 0))
        lab.agents[0].addRemote(ICECandidate(type: .host, address: b))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: a))
        lab.run(until: 10_000_000)
        XCTAssertNil(lab.agents[0].selected)
        XCTAssertNil(lab.agents[1].selected)
    }

    /// Relay first, direct later: media starts on the relay pair, then moves to the direct one when it
    /// works, without the relay ever being dropped before that.
    func testRelayIsSelectedAtOnceAndDirectTakesOverLater() {
        var lab = makeLab()
        let aHost = address("198.51.100.1", 4000)
        let aRelay = address("192.0.2.10", 50000)  // A's allocation on a TURN server
        let b = address("198.51.100.2", 5000)
        lab.endpoints = [aHost: (0, 0), aRelay: (0, 1), b: (1, 0)]
        lab.sourceOf = [0: [0: aHost, 1: aRelay], 1: [0: b]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: aHost, base: 0))
        lab.agents[0].addLocal(ICECandidate(type: .relayed, address: aRelay, base: 1))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: b, base: 0))
        lab.agents[0].addRemote(ICECandidate(type: .host, address: b))
        lab.agents[1].addRemote(ICECandidate(type: .relayed, address: aRelay))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: aHost))
        // The direct path is blocked for the first 250 ms (the peer's NAT has no mapping yet), the relay works.
        lab.drop = { [unowned box = Clock.shared] from, to in box.now < 250_000 && (from == aHost || to == aHost) }
        Clock.shared.now = 0
        while lab.now <= 3_000_000 {
            Clock.shared.now = lab.now
            lab.run(until: lab.now)
        }
        let first = lab.selections(0).first
        XCTAssertEqual(first?.local.type, .relayed, "media started on the relay at once")
        XCTAssertEqual(lab.agents[0].selected?.local.type, .host, "and moved to the direct pair once it worked")
        XCTAssertEqual(lab.agents[0].selected?.remote.address, b)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, aHost)
        XCTAssertEqual(lab.selections(0).count, 2)
    }

    /// The lab's clock as the drop rule sees it.
    final class Clock: @unchecked Sendable {
        static let shared = Clock()
        var now: UInt64 = 0
    }

    func testConsentLossRestartsChecksAndFollowsANewAddress() {
        var lab = makeLab()
        let a = address("198.51.100.1", 4000)
        let bOld = address("203.0.113.7", 61000)
        let bNew = address("203.0.113.7", 61500)  // B's NAT mapping after a flush
        lab.endpoints = [a: (0, 0), bOld: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: bOld]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: a, base: 0))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: address("10.0.0.2", 5000), base: 0))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: a))
        lab.run(until: 500_000)
        XCTAssertEqual(lab.agents[0].selected?.remote.address, bOld)
        // The mapping changes: B's packets now come from bNew, and bOld no longer reaches B.
        lab.endpoints = [a: (0, 0), bNew: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: bNew]]
        let changedAt = lab.now
        lab.run(until: changedAt + 4_000_000)
        XCTAssertEqual(lab.agents[0].selected?.remote.address, bNew)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, a)
        let lostA = lab.events[0].contains { if case .consentLost = $0 { true } else { false } }
        let lostB = lab.events[1].contains { if case .consentLost = $0 { true } else { false } }
        XCTAssertTrue(lostA || lostB, "someone noticed the old path died")
    }

    /// A's relayed candidate is replaced (its allocation was made again under a new address, the old one
    /// gone): the pairs on that base are checked again from the new address, the selection starts over at
    /// once (without waiting for consent to lapse), and B ends up selecting A's new relayed address.
    func testReplacedRelayIsCheckedAgainAndTheSelectionMoves() {
        var lab = makeLab()
        let aOldRelay = address("192.0.2.10", 50000)
        let aNewRelay = address("192.0.2.10", 50002)
        let b = address("198.51.100.2", 5000)
        lab.endpoints = [aOldRelay: (0, 1), b: (1, 0)]
        lab.sourceOf = [0: [1: aOldRelay], 1: [0: b]]
        let old = ICECandidate(type: .relayed, address: aOldRelay, base: 1)
        lab.agents[0].addLocal(old)
        lab.agents[1].addLocal(ICECandidate(type: .host, address: b, base: 0))
        lab.agents[0].addRemote(ICECandidate(type: .host, address: b))
        lab.agents[1].addRemote(ICECandidate(type: .relayed, address: aOldRelay))
        lab.run(until: 500_000)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, aOldRelay)

        // The old allocation is gone; the base now sends from the new relayed address.
        lab.endpoints = [aNewRelay: (0, 1), b: (1, 0)]
        lab.sourceOf = [0: [1: aNewRelay], 1: [0: b]]
        let new = ICECandidate(type: .relayed, address: aNewRelay, base: 1)
        let actions = lab.agents[0].replaceLocal(old, with: new, now: lab.now)
        XCTAssertTrue(actions.contains { if case .consentLost = $0 { true } else { false } }, "the selection starts over at once")
        XCTAssertNil(lab.agents[0].selected)
        let replacedAt = lab.now
        lab.run(until: replacedAt + 500_000)
        XCTAssertEqual(lab.agents[0].selected?.local.address, aNewRelay)
        XCTAssertEqual(lab.agents[0].selected?.remote.address, b)
        XCTAssertEqual(lab.agents[1].selected?.remote.address, aNewRelay, "B follows A's new address (peer-reflexive until trickled)")
        // Replacing a candidate the agent does not have just adds the new one.
        var lone = ICEAgent(role: .controlling, local: credsA, remote: credsB, tieBreaker: 3)
        lone.addRemote(ICECandidate(type: .host, address: b))
        XCTAssertEqual(lone.replaceLocal(old, with: new, now: 0), [])
        XCTAssertEqual(lone.pairStates.count, 1)
    }

    func testRoleConflictResolves() {
        var lab = makeLab()
        lab.agents[1] = ICEAgent(role: .controlling, local: credsB, remote: credsA, tieBreaker: 1)
        let a = address("198.51.100.1", 4000)
        let b = address("198.51.100.2", 5000)
        lab.endpoints = [a: (0, 0), b: (1, 0)]
        lab.sourceOf = [0: [0: a], 1: [0: b]]
        lab.agents[0].addLocal(ICECandidate(type: .host, address: a, base: 0))
        lab.agents[1].addLocal(ICECandidate(type: .host, address: b, base: 0))
        lab.agents[0].addRemote(ICECandidate(type: .host, address: b))
        lab.agents[1].addRemote(ICECandidate(type: .host, address: a))
        lab.run(until: 1_000_000)
        XCTAssertNotEqual(lab.agents[0].role, lab.agents[1].role)
        XCTAssertEqual(lab.agents[0].role, .controlling, "the larger tie-breaker keeps control")
        XCTAssertNotNil(lab.agents[0].selected)
        XCTAssertNotNil(lab.agents[1].selected)
    }

    func testRetransmissionScheduleThenFailure() {
        var agent = ICEAgent(role: .controlling, local: credsA, remote: credsB, tieBreaker: 1)
        agent.addLocal(ICECandidate(type: .host, address: address("198.51.100.1", 4000), base: 0))
        agent.addRemote(ICECandidate(type: .host, address: address("198.51.100.2", 5000)))
        var sends: [UInt64] = []
        var t: UInt64 = 0
        while t <= 10_000_000 {
            for action in agent.tick(now: t) { if case .send = action { sends.append(t) } }
            t += 1_000
        }
        XCTAssertEqual(sends, [0, 100_000, 300_000, 700_000, 1_500_000, 3_100_000, 4_700_000])
        XCTAssertEqual(agent.pairStates.first?.failed, true)
    }

    func testCandidateWireFormRoundTrips() {
        for c in [
            ICECandidate(type: .serverReflexive, address: address("203.0.113.7", 61000), foundation: 7),
            ICECandidate(type: .relayed, address: address("2001:db8::1", 3478), foundation: 1),
        ] {
            let decoded = ICECandidate(decoding: c.encoded)
            XCTAssertEqual(decoded?.address, c.address)
            XCTAssertEqual(decoded?.priority, c.priority)
            XCTAssertEqual(decoded?.type, c.type)
        }
        XCTAssertNil(ICECandidate(decoding: [9, 0, 0]))
        let creds = ICECredentials.random()
        XCTAssertEqual(ICECredentials(decoding: creds.encoded), creds)
        XCTAssertNil(ICECredentials(decoding: [2, 65, 65, 1, 65]))
    }

    func testGarbageIsIgnored() {
        var agent = ICEAgent(role: .controlled, local: credsB, remote: credsA)
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 19, 20, 28, 100] {
            for _ in 0..<200 {
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if length >= 8 { bytes[0] = 0; bytes[4] = 0x21; bytes[5] = 0x12; bytes[6] = 0xA4; bytes[7] = 0x42 }
                XCTAssertTrue(agent.receive(bytes, base: 0, from: address("198.51.100.9", 9), now: 0).isEmpty)
            }
        }
    }
}

/// Check ordering behind a sequential NAT (docs/PROTOCOL.md §6.2).
final class ICESequentialNATTests: XCTestCase {
    func testPredictedPairsGoFirstAndOtherSocketChecksWait() throws {
        let creds = ICECredentials(ufrag: "aaaa", password: "aaaaaaaaaaaaaaaaaaaaaaaa")
        var agent = ICEAgent(role: .controlled, local: creds, remote: creds, tieBreaker: 1)
        agent.sequentialNAT = true
        agent.addLocal(ICECandidate(type: .host, address: try SocketAddress(ipAddress: "10.0.1.2", port: 4000), base: 0))
        agent.addLocal(ICECandidate(type: .relayed, address: try SocketAddress(ipAddress: "203.0.113.10", port: 50000), base: 1))
        agent.addRemote(ICECandidate(type: .host, address: try SocketAddress(ipAddress: "10.0.2.2", port: 5000)))
        agent.addRemote(ICECandidate(type: .serverReflexive, address: try SocketAddress(ipAddress: "198.51.100.9", port: 20002)))
        for k in 1...3 {
            agent.addRemote(
                ICECandidate(
                    type: .predicted, address: try SocketAddress(ipAddress: "198.51.100.9", port: 20002 + k),
                    priority: ICECandidate.priority(type: .predicted, localPreference: UInt32(65_535 - k))))
        }
        func firstSends(_ n: Int, from start: UInt64) -> [(Int, Int)] {
            var out: [(Int, Int)] = []
            var t = start
            while out.count < n && t < start + 10_000_000 {
                for case .send(_, let base, let to) in agent.tick(now: t) where out.count < n { out.append((base, to.port!)) }
                t += 20_000
            }
            return out
        }
        // Until the peer's candidates are complete, the socket sends only to its predicted ports, in order
        // (the relay's checks are free: they add no mapping).
        let early = firstSends(8, from: 0)
        XCTAssertEqual(early.filter { $0.0 == 0 }.map(\.1).prefix(3), [20003, 20004, 20005], "\(early)")
        XCTAssertFalse(early.contains { $0.0 == 0 && ($0.1 == 5000 || $0.1 == 20002) }, "\(early)")
        // Once complete (and every predicted pair was sent), the socket's other checks follow.
        agent.remoteCandidatesComplete = true
        let later = firstSends(12, from: 1_000_000).filter { $0.0 == 0 }.map(\.1)
        XCTAssertTrue(later.contains(5000) && later.contains(20002), "\(later)")
    }
}
