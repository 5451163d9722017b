import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

final class EventDeliveryTests: XCTestCase {
    private func gots(_ server: FakeSignalServer) async -> [UInt64] {
        await server.received.compactMap { if case .got(let sseq)? = $0.frame { sseq } else { nil } }
    }

    // MARK: Without sockets

    func testSessionDedupesAndReacknowledgesRepeats() {
        var session = ClientSession()
        let credentials = ClientSession.Credentials(identity: .generate(), user: sname("bob"), device: sname("laptop"))
        _ = session.login(credentials, state: ClientState(account: "a", lastAcknowledgedSSeq: 5), now: 0)
        session.connectionOpened()
        _ = session.receive(
            .hello(version: 1, challenge: SignalBlob(bytes: [UInt8](repeating: 0, count: 32)), serverTime: 0), now: 0)
        _ = session.receive(
            .welcome(user: credentials.user, device: credentials.device, lastCSeq: 0, serverTime: 0), now: 0)
        let ended = SignalEvent.ended(call: .random(), reason: .hangup)
        // Acknowledged in an earlier run (persisted): acknowledge again so the server drops it, do not deliver.
        XCTAssertEqual(session.receive(.event(sseq: 4, timestamp: 0, event: ended), now: 0), [.send(.got(sseq: 5))])
        // New: deliver once.
        XCTAssertEqual(
            session.receive(.event(sseq: 6, timestamp: 9, event: ended), now: 0),
            [.deliver(sseq: 6, timestamp: 9, event: ended)])
        // Delivered but not yet handled by the application: neither delivered again nor acknowledged early.
        XCTAssertEqual(session.receive(.event(sseq: 6, timestamp: 9, event: ended), now: 0), [])
        // The application acknowledges; beyond what was delivered is refused.
        XCTAssertEqual(session.acknowledge(upTo: 7), [])
        XCTAssertEqual(session.acknowledge(upTo: 6), [.persist, .send(.got(sseq: 6))])
        XCTAssertEqual(session.persistent?.lastAcknowledgedSSeq, 6)
        // Handled while disconnected: remembered, and sent right after the next welcome.
        _ = session.receive(.event(sseq: 7, timestamp: 9, event: ended), now: 0)
        session.connectionClosed()
        XCTAssertEqual(session.acknowledge(upTo: 7), [.persist])
        session.connectionOpened()
        _ = session.receive(
            .hello(version: 1, challenge: SignalBlob(bytes: [UInt8](repeating: 0, count: 32)), serverTime: 0), now: 0)
        let welcome = session.receive(
            .welcome(user: credentials.user, device: credentials.device, lastCSeq: 0, serverTime: 0), now: 0)
        XCTAssertTrue(welcome.contains(.send(.got(sseq: 7))), "\(welcome)")
    }

    // MARK: Over a socket

    func testEventsAreDeliveredOnceAndAcknowledgedAfterConsumption() async throws {
        let server = try await FakeSignalServer.start()
        let bob = await register("bob", "laptop", on: server)
        let client = try await loggedInClient(bob, server: server, options: fastOptions(directory: nil))
        let calls = (0..<3).map { _ in SignalID.random() }
        var events = client.events.makeAsyncIterator()
        await server.push(.ended(call: calls[0], reason: .hangup), to: bob.address)
        await server.push(.ended(call: calls[1], reason: .cancelled), to: bob.address)

        let first = try await nextEvent(&events)
        XCTAssertEqual(first.sseq, 1)
        XCTAssertEqual(first.kind, .ended(call: calls[0], reason: .hangup))
        let noGotYet = await gots(server)
        XCTAssertEqual(noGotYet, [], "not acknowledged before the application asks for the next event")

        // The connection drops; the server resends both unacknowledged events on the new one.
        await server.dropConnections()
        await eventually("reconnected") { await server.isLoggedIn(bob.address, onConnection: 1) }
        let second = try await nextEvent(&events)
        XCTAssertEqual(second.sseq, 2)
        XCTAssertEqual(second.kind, .ended(call: calls[1], reason: .cancelled))
        await server.push(.ended(call: calls[2], reason: .busy), to: bob.address)
        let third = try await nextEvent(&events)
        XCTAssertEqual(third.sseq, 3, "the resent 1 and 2 were not delivered again")
        // Cumulative and in order; repeats of acknowledged events may be acknowledged again, never beyond 2.
        await eventually("got|2 arrives") { await self.gots(server).last == 2 }
        let acknowledged = await gots(server)
        XCTAssertEqual(acknowledged.last, 2)
        XCTAssertEqual(acknowledged, acknowledged.sorted())
        await client.acknowledge(upTo: 3)
        await eventually("the server's queue is empty") { await server.queued(bob.address).isEmpty }
        await client.close()
        await server.stop()
    }

    func testAcknowledgedEventsAreNotRedeliveredAfterARestart() async throws {
        let directory = try temporaryDirectory(self)
        let server = try await FakeSignalServer.start()
        await server.setHonourGot(false)  // a server that keeps resending: only the client's memory dedupes
        let bob = await register("bob", on: server)
        let first = try await loggedInClient(bob, server: server, options: fastOptions(directory: directory))
        let call = SignalID.random()
        await server.push(.ended(call: call, reason: .timeout), to: bob.address)
        var events = first.events.makeAsyncIterator()
        _ = try await nextEvent(&events)
        await first.acknowledge(upTo: 1)
        await first.close()
        XCTAssertTrue(
            try String(contentsOfFile: directory + "/default.key.state", encoding: .utf8).contains("last-sseq 1"))

        let second = try await loggedInClient(bob, server: server, options: fastOptions(directory: directory))
        var fresh = second.events.makeAsyncIterator()
        await server.push(.merged(call: call, into: .random()), to: bob.address)
        let next = try await nextEvent(&fresh)
        XCTAssertEqual(next.sseq, 2, "event 1 was acknowledged in the first run")
        // The repeat of event 1 was answered with got|1 on the second connection.
        await eventually("got|1 for the repeat") {
            await server.received.contains { $0.connection == 1 && $0.line == "got|1" }
        }
        await second.close()
        await server.stop()
    }

    func testKeepalivesAreBlankLines() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        var options = fastOptions(directory: nil)
        options.keepaliveInterval = .milliseconds(20)
        let client = try await loggedInClient(alice, server: server, options: options)
        await eventually("two keepalives") {
            await server.received.filter { $0.frame == .keepalive && $0.line.isEmpty }.count >= 2
        }
        await client.close()
        await server.stop()
    }

    func testReconnectsAfterRepeatedFailuresWithBackoff() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        for _ in 0..<3 { await server.dropConnections() }
        await eventually("logged in again") { await server.isLoggedIn(alice.address, onConnection: 1) }
        // Delays grow and stay within the bounds.
        let delays = await (1...8).asyncMap { await client.reconnectDelay(after: $0) }
        XCTAssertTrue(delays.allSatisfy { $0 <= .milliseconds(40) && $0 >= .microseconds(2500) }, "\(delays)")
        _ = try await client.keys(alice.user)
        await client.close()
        await server.stop()
    }
}

extension EventDeliveryTests {
    func testCloseWhileReconnectingReturnsPromptly() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        var options = fastOptions(directory: nil)
        options.initialReconnectDelay = .seconds(30)
        options.maximumReconnectDelay = .seconds(30)
        let client = try await loggedInClient(alice, server: server, options: options)
        await server.stop()
        let waiting = Task { try await client.keys(alice.user) }  // queued while the client waits to reconnect
        try await Task.sleep(for: .milliseconds(20))
        let started = ContinuousClock.now
        await client.close()
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
        await assertClientError(.closed) { try await waiting.value }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var out: [T] = []
        for element in self { out.append(await transform(element)) }
        return out
    }
}
