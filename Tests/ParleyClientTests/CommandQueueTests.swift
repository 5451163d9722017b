import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

final class CommandQueueTests: XCTestCase {
    // MARK: Without sockets

    func testResumeDropsProcessedAndKeepsOrder() {
        var queue = CommandQueue(nextCSeq: 5)
        let commands = (0..<4).map { _ in queue.enqueue(.end(call: .random())) }
        XCTAssertEqual(commands.map(\.cseq), [5, 6, 7, 8])
        let (processed, resend) = queue.resume(lastCSeq: 6)
        XCTAssertEqual(processed.map(\.cseq), [5, 6])
        XCTAssertEqual(resend.map(\.cseq), [7, 8])
        XCTAssertEqual(queue.complete(8)?.cseq, 8)
        XCTAssertNil(queue.complete(8))
        XCTAssertEqual(queue.pending.map(\.cseq), [7])
    }

    func testWelcomeMovesNextCSeqPastTheServersLast() {
        // State lost (or never written): numbers the server already used must not be reused, or the server
        // would acknowledge the new commands as duplicates without executing them.
        var queue = CommandQueue()
        _ = queue.resume(lastCSeq: 41)
        XCTAssertEqual(queue.enqueue(.busy(call: .random())).cseq, 42)
    }

    func testSessionResendsWithSameCSeqAndFreshTimestamp() throws {
        var session = ClientSession()
        let credentials = ClientSession.Credentials(identity: .generate(), user: sname("alice"), device: sname("phone"))
        let challenge = SignalBlob(bytes: [UInt8](repeating: 1, count: 32))
        _ = session.login(credentials, state: ClientState(account: "a"), now: 0)
        let (first, queuedOffline) = try session.enqueue(.reject(call: .random()), now: 1_000)
        XCTAssertEqual(queuedOffline, [.persist], "nothing is sent without a connection")
        let (second, _) = try session.enqueue(.busy(call: .random()), now: 1_000)
        session.connectionOpened()
        _ = session.receive(.hello(version: 1, challenge: challenge, serverTime: 5_000), now: 5_000)
        let actions = session.receive(
            .welcome(user: credentials.user, device: credentials.device, lastCSeq: first.cseq, serverTime: 5_000),
            now: 5_000)
        XCTAssertTrue(actions.contains(.finished(first, .processedEarlier)))
        XCTAssertTrue(actions.contains(.send(second.frame(timestamp: 5_000))))
        XCTAssertFalse(actions.contains(.send(first.frame(timestamp: 5_000))))
        XCTAssertEqual(session.persistent?.queue.pending, [second])
    }

    func testStateFileRoundTripsAndIsOwnerOnly() throws {
        let directory = try temporaryDirectory(self)
        let path = directory + "/device.key.state"
        var queue = CommandQueue(nextCSeq: 7)
        _ = queue.enqueue(
            .message(
                id: .random(), to: sname("bob"),
                sealed: [.init(device: sname("laptop"), ciphertext: SignalBlob(bytes: [1, 2, 3]))]))
        _ = queue.enqueue(.accept(call: .random(), answer: nil))
        let state = ClientState(account: "127.0.0.1:7000 alice phone", queue: queue, lastAcknowledgedSSeq: 17)
        try state.write(to: path)
        XCTAssertEqual(try mode(path), 0o600)
        XCTAssertEqual(try ClientState.load(from: path, account: state.account).state, state)
        let other = try ClientState.load(from: path, account: "127.0.0.1:7000 alice laptop")
        XCTAssertTrue(other.discarded)
        XCTAssertEqual(other.state.queue.pending, [])
        XCTAssertThrowsError(try ClientState.parse("parley-client-state v1\nnext-cseq x\n", path: path))
    }

    // MARK: Over a socket

    func testQueuedCommandsSurviveADroppedConnection() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        let first = SignalID.random()
        let second = SignalID.random()
        // The first command is processed but its ack is lost; the second is lost entirely.
        await server.setScript { command in
            switch command.verb {
            case .reject(first): .processSilently
            case .reject(second): .lose
            default: .normal
            }
        }
        let one = Task { try await client.reject(first) }
        await eventually("the first command reaches the server") {
            await server.received.contains { $0.line.hasPrefix("reject|1|") }
        }
        let two = Task { try await client.reject(second) }
        await eventually("the second command reaches the server") {
            await server.received.contains { $0.line.hasPrefix("reject|2|") }
        }
        let processedBeforeDrop = await server.processedCSeq(alice.address)
        XCTAssertEqual(processedBeforeDrop, 1)
        await server.setScript { _ in .normal }
        await server.dropConnections()
        try await one.value
        try await two.value

        let commands = await server.received.compactMap { r -> (Int, SignalCommand)? in
            if case .command(let c)? = r.frame { (r.connection, c) } else { nil }
        }
        XCTAssertEqual(commands.map(\.0), [0, 0, 1], "one resend, on the new connection")
        XCTAssertEqual(commands.map(\.1.cseq), [1, 2, 2], "cseq 1 (≤ last-cseq) is dropped, cseq 2 resent as 2")
        XCTAssertEqual(commands[2].1.verb, .reject(call: second))
        XCTAssertGreaterThanOrEqual(commands[2].1.timestamp, commands[1].1.timestamp)
        let connections = await server.connectionCount
        XCTAssertEqual(connections, 2)
        await client.close()
        await server.stop()
    }

    func testUnansweredCommandsSurviveARestart() async throws {
        let directory = try temporaryDirectory(self)
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let call = SignalID.random()
        await server.setScript { _ in .lose }
        let first = try await loggedInClient(alice, server: server, options: fastOptions(directory: directory))
        let waiting = Task { try await first.end(call) }
        await eventually("the command reaches the server") {
            await server.received.contains { $0.line.hasPrefix("end|") }
        }
        await first.close()
        await assertClientError(.closed) { try await waiting.value }
        let stateFile = directory + "/default.key.state"
        XCTAssertEqual(try mode(stateFile), 0o600)
        XCTAssertTrue(try String(contentsOfFile: stateFile, encoding: .utf8).contains("pending end|1|0|\(call)"))

        // A new process with the same state file sends the command again under the same cseq.
        await server.setScript { _ in .normal }
        let second = try await loggedInClient(alice, server: server, options: fastOptions(directory: directory))
        await eventually("the resent command is processed") { await server.processedCSeq(alice.address) == 1 }
        let ends = await server.received.filter { $0.line.hasPrefix("end|1|") }
        XCTAssertEqual(ends.count, 2)
        XCTAssertNotEqual(ends[0].connection, ends[1].connection)
        await eventually("the ack empties the queue") {
            !((try? String(contentsOfFile: stateFile, encoding: .utf8))?.contains("pending") ?? true)
        }
        // Numbering continues after the restart.
        _ = try await second.keys(alice.user)
        let processed = await server.processedCSeq(alice.address)
        XCTAssertEqual(processed, 2)
        await second.close()
        await server.stop()
    }

    func testNakIsARefusalAndNotResent() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        await server.setScript { _ in .nak(.unknownCall) }
        do {
            try await client.cancel(.random())
            XCTFail("expected a refusal")
        } catch let error as ClientError {
            XCTAssertEqual(error.code, .refused)
            XCTAssertEqual(error.nakCode, .unknownCall)
        }
        await server.setScript { _ in .normal }
        await server.dropConnections()
        await eventually("reconnected") { await server.isLoggedIn(alice.address, onConnection: 1) }
        let cancels = await server.received.filter { $0.line.hasPrefix("cancel|") }
        XCTAssertEqual(cancels.count, 1)
        await client.close()
        await server.stop()
    }
}
