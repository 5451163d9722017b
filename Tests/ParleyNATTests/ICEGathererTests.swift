import NIOCore
import ParleyWire
import XCTest

@testable import ParleyNAT

/// Server-reflexive and predicted candidates (docs/PROTOCOL.md §6.1) against a scripted RFC 5780 server
/// behind emulated NATs.
final class ICEGathererTests: XCTestCase {
    let primary = try! SocketAddress(ipAddress: "203.0.113.10", port: 3478)
    let other = try! SocketAddress(ipAddress: "203.0.113.11", port: 3479)

    /// Answers a Binding request the way our server does with RFC 5780 on.
    func answer(_ request: [UInt8], mapped: SocketAddress) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(bytes: request)
        let message = try! STUNDecoder.decode(buffer)
        buffer.clear()
        let writer = STUNMessageWriter(responseTo: message.header, messageClass: .successResponse, into: &buffer)
        writer.append(.xorMappedAddress, address: STUNAddress(mapped)!, xor: true, into: &buffer)
        writer.append(.otherAddress, address: STUNAddress(other)!, xor: false, into: &buffer)
        writer.finish(integrity: nil, fingerprint: true, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Runs a gatherer against the server with `nat` giving the mapped address per destination.
    func gather(nat: (SocketAddress) -> SocketAddress?) -> [ICEGatherer.Action] {
        var gatherer = ICEGatherer(server: primary)
        var out: [ICEGatherer.Action] = []
        var pending = gatherer.start(now: 0)
        var now: UInt64 = 0
        while !gatherer.finished && now < 10_000_000 {
            var next: [ICEGatherer.Action] = []
            for action in pending {
                if case .send(let bytes, let to) = action {
                    if let mapped = nat(to) { next += gatherer.receive(answer(bytes, mapped: mapped), from: to, now: now) }
                } else {
                    out.append(action)
                }
            }
            now += 10_000
            pending = next + gatherer.tick(now: now)
        }
        for action in pending { if case .send = action {} else { out.append(action) } }
        return out
    }

    func testEndpointIndependentMappingGivesOneServerReflexiveCandidate() throws {
        let mapped = try SocketAddress(ipAddress: "198.51.100.7", port: 40000)
        let actions = gather { _ in mapped }
        let candidates = actions.compactMap { if case .candidate(let c) = $0 { c } else { nil } }
        XCTAssertEqual(candidates.map(\.type), [.serverReflexive])
        XCTAssertEqual(candidates.first?.address, mapped)
        XCTAssertTrue(actions.contains(.finished(mapping: "endpoint-independent")))
    }

    func testSequentialSymmetricNATGetsPredictions() throws {
        var nextPort = 50000
        var table: [SocketAddress: Int] = [:]
        let actions = gather { destination in
            if table[destination] == nil {
                table[destination] = nextPort
                nextPort += 2  // a NAT that steps by 2
            }
            return try! SocketAddress(ipAddress: "198.51.100.7", port: table[destination]!)
        }
        let candidates = actions.compactMap { if case .candidate(let c) = $0 { c } else { nil } }
        XCTAssertEqual(candidates.first?.type, .serverReflexive)
        let predicted = candidates.filter { $0.type == .predicted }
        XCTAssertEqual(predicted.map { $0.address.port! }, [50006, 50008, 50010, 50012, 50014, 50016, 50018, 50020])
        XCTAssertTrue(actions.contains(.finished(mapping: "symmetric, sequential step 2")))
        // Predictions rank under server-reflexive, nearest first.
        XCTAssertTrue(predicted.allSatisfy { $0.priority < candidates[0].priority })
        XCTAssertEqual(predicted.map(\.priority), predicted.map(\.priority).sorted(by: >))
    }

    func testRandomPortsPredictNothingAndSilenceEndsTheGathering() throws {
        var ports = [61234, 40001, 52777].makeIterator()
        let actions = gather { _ in try! SocketAddress(ipAddress: "198.51.100.7", port: ports.next() ?? 1) }
        XCTAssertFalse(actions.contains { if case .candidate(let c) = $0 { c.type == .predicted } else { false } })
        XCTAssertTrue(actions.contains(.finished(mapping: "address- or port-dependent, unpredictable")))
        let silent = gather { _ in nil }
        XCTAssertEqual(silent.last, .finished(mapping: "unknown (no answer)"))
    }
}

extension ICEGathererTests {
    /// A cached behaviour skips the RFC 5780 probes: one Binding, then predictions from the cached step.
    func testCachedBehaviourNeedsOneBinding() throws {
        var configuration = ICEGatherer.Configuration()
        configuration.cached = ["198.51.100.7": "symmetric, sequential step 1", "198.51.100.8": "endpoint-independent"]
        var gatherer = ICEGatherer(server: primary, configuration: configuration)
        let first = gatherer.start(now: 0)
        guard case .send(let request, let to) = first.first else { return XCTFail("no request") }
        let mapped = try SocketAddress(ipAddress: "198.51.100.7", port: 20010)
        let actions = gatherer.receive(answer(request, mapped: mapped), from: to, now: 10_000)
        XCTAssertFalse(actions.contains { if case .send = $0 { true } else { false } }, "no further probes")
        let predicted = actions.compactMap { if case .candidate(let c) = $0, c.type == .predicted { c.address.port } else { nil } }
        XCTAssertEqual(predicted, Array(20011...20018))
        XCTAssertEqual(actions.last, .finished(mapping: "symmetric, sequential step 1 (cached)"))
        XCTAssertTrue(gatherer.finished)
    }
}
