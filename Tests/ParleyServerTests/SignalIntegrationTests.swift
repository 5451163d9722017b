import Foundation
import NIOCore
import ParleyCrypto
import ParleySignal
import ParleyWire
import XCTest

@testable import ParleyServer

/// The signaling server over real TCP sockets: logins, a whole call across devices, sealed mail across
/// a reconnect, and the refusals of docs/PROTOCOL.md §3.2.
final class SignalIntegrationTests: XCTestCase {
    var dir = ""
    let alice = DeviceIdentity.generate()
    let bobLaptop = DeviceIdentity.generate()
    let bobPhone = DeviceIdentity.generate()

    override func setUp() {
        dir = NSTemporaryDirectory() + "parley-signal-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func startServer(_ mutate: (inout ServerConfiguration) -> Void = { _ in }) async throws -> ParleyServerInstance {
        let accounts = """
            # test accounts
            alice.phone = \(alice.publicBundle.encoded)
            bob.laptop = \(bobLaptop.publicBundle.encoded)
            bob.phone = \(bobPhone.publicBundle.encoded)   # inline comment
            """
        return try await TestServer.start(in: dir, accountsFile: accounts, mutate)
    }

    func testWholeCallAcrossTwoCalleeDevices() async throws {
        let server = try await startServer()
        let port = try XCTUnwrap(server.signal?.tcpPort)
        let a = try await SignalLineClient(port: port)
        let bl = try await SignalLineClient(port: port)
        let bp = try await SignalLineClient(port: port)
        guard case .welcome = try await a.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("alice") }
        guard case .welcome = try await bl.login(user: "bob", device: "laptop", identity: bobLaptop) else { return XCTFail("bl") }
        guard case .welcome = try await bp.login(user: "bob", device: "phone", identity: bobPhone) else { return XCTFail("bp") }

        let call = SignalID.random()
        let offer = SignalBlob(bytes: Array("offer".utf8))
        let c1 = try await a.command(.call(call: call, callee: SignalName("bob")!, offer: offer))
        let got1 = try await a.frame()
        XCTAssertEqual(got1, .ack(cseq: c1, result: []))
        let got2 = try await bl.event()
        XCTAssertEqual(got2, .ring(call: call, caller: SignalName("alice")!, callerDevice: SignalName("phone")!, offer: offer))
        let got3 = try await bp.event()
        XCTAssertEqual(got3, .ring(call: call, caller: SignalName("alice")!, callerDevice: SignalName("phone")!, offer: offer))

        let answer = SignalBlob(bytes: Array("answer".utf8))
        let cand = SignalBlob(bytes: Array("cand-laptop".utf8))
        let p1 = try await bl.command(.prepare(call: call, answer: answer))
        let got4 = try await bl.frame()
        XCTAssertEqual(got4, .ack(cseq: p1, result: []))
        let p2 = try await bl.command(.candidate(call: call, candidate: cand))
        let got5 = try await bl.frame()
        XCTAssertEqual(got5, .ack(cseq: p2, result: []))
        let p3 = try await bl.command(.accept(call: call, answer: nil))
        let got6 = try await bl.frame()
        XCTAssertEqual(got6, .ack(cseq: p3, result: []))

        let got7 = try await a.event()
        XCTAssertEqual(got7, .answer(call: call, device: SignalName("laptop")!, answer: answer))
        let got8 = try await a.event()
        XCTAssertEqual(got8, .candidate(call: call, user: SignalName("bob")!, device: SignalName("laptop")!, candidate: cand))
        let got9 = try await bp.event()
        XCTAssertEqual(got9, .elsewhere(call: call, device: SignalName("laptop")!))

        // The other device's late accept is refused.
        let late = try await bp.command(.accept(call: call, answer: answer))
        guard case .nak(late, .answeredElsewhere, _) = try await bp.frame() else { return XCTFail("late accept") }

        let e = try await a.command(.end(call: call))
        let got10 = try await a.frame()
        XCTAssertEqual(got10, .ack(cseq: e, result: []))
        let got11 = try await bl.event()
        XCTAssertEqual(got11, .ended(call: call, reason: .hangup))

        await a.close(); await bl.close(); await bp.close()
        try await server.shutdown()
    }

    func testSealedMessageWaitsForAnOfflineDeviceAndSurvivesARestart() async throws {
        var server = try await startServer()
        var port = try XCTUnwrap(server.signal?.tcpPort)
        let a = try await SignalLineClient(port: port)
        guard case .welcome = try await a.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("login") }
        let msg = SignalID.random()
        let ct = SignalBlob(bytes: Array("sealed-for-laptop".utf8))
        let c = try await a.command(.message(id: msg, to: SignalName("bob")!, sealed: [.init(device: SignalName("laptop")!, ciphertext: ct)]))
        let got12 = try await a.frame()
        XCTAssertEqual(got12, .ack(cseq: c, result: []), "acked only once committed")
        await a.close()
        try await server.shutdown()

        server = try await startServer()
        port = try XCTUnwrap(server.signal?.tcpPort)
        let b = try await SignalLineClient(port: port)
        guard case .welcome = try await b.login(user: "bob", device: "laptop", identity: bobLaptop) else { return XCTFail("login") }
        let got13 = try await b.event()
        XCTAssertEqual(got13, .message(id: msg, from: SignalName("alice")!, fromDevice: SignalName("phone")!, sealed: ct))
        await b.close()
        // Acknowledged: a new login gets nothing more.
        try await Task.sleep(for: .milliseconds(200))
        let b2 = try await SignalLineClient(port: port)
        guard case .welcome = try await b2.login(user: "bob", device: "laptop", identity: bobLaptop) else { return XCTFail("login") }
        let got14 = try await b2.event(timeout: .milliseconds(500))
        XCTAssertNil(got14)
        await b2.close()
        try await server.shutdown()
    }

    func testLoginRefusals() async throws {
        let server = try await startServer()
        let port = try XCTUnwrap(server.signal?.tcpPort)

        let wrongKey = try await SignalLineClient(port: port)
        guard case .error(.badLogin, _) = try await wrongKey.login(user: "alice", device: "phone", identity: bobPhone) else {
            return XCTFail("wrong key must be bad-login")
        }
        let got15 = try await wrongKey.next(timeout: .seconds(2))
        XCTAssertNil(got15, "closed after the error")

        let unknown = try await SignalLineClient(port: port)
        guard case .error(.badLogin, _) = try await unknown.login(user: "mallory", device: "phone", identity: alice) else {
            return XCTFail("unknown user must be bad-login")
        }

        let stale = try await SignalLineClient(port: port)
        guard case .error(.stale, _) = try await stale.login(user: "alice", device: "phone", identity: alice, clockSkew: -120_000)
        else { return XCTFail("stale timestamp") }

        let early = try await SignalLineClient(port: port)
        _ = try await early.frame()  // hello
        try await early.send("keys|1|1|bob")
        guard case .error(.notLoggedIn, _) = try await early.frame() else { return XCTFail("command before login") }

        let garbage = try await SignalLineClient(port: port)
        _ = try await garbage.frame()
        try await garbage.sendRaw([0xFF, 0xFE, 0x00, 0x7C, 0x0A])
        guard case .error = try await garbage.frame() else { return XCTFail("garbage") }

        // A login line captured from one connection does not work on another (its challenge differs).
        let first = try await SignalLineClient(port: port)
        guard case .hello(_, let challenge, _) = try await first.frame() else { return XCTFail("hello") }
        let ts = UInt64(Date().timeIntervalSince1970 * 1000)
        let sig = try alice.signingKey.signature(
            for: SignalCodec.loginSigningInput(challenge: challenge, user: SignalName("alice")!, device: SignalName("phone")!, timestamp: ts))
        let line = "login|alice|phone|\(ts)|\(SignalBlob(bytes: sig).text)"
        try await first.send(line)
        guard case .welcome = try await first.frame() else { return XCTFail("the genuine login works") }
        try await first.send(line)
        guard case .error(.replay, _) = try await first.frame() else { return XCTFail("second login on a connection") }
        let replayed = try await SignalLineClient(port: port)
        _ = try await replayed.frame()
        try await replayed.send(line)
        guard case .error(.badLogin, _) = try await replayed.frame() else { return XCTFail("replayed login") }

        // Everyone else is still served.
        let ok = try await SignalLineClient(port: port)
        guard case .welcome = try await ok.login(user: "bob", device: "phone", identity: bobPhone) else { return XCTFail("bob") }
        for c in [wrongKey, unknown, stale, early, garbage, first, replayed, ok] { await c.close() }
        try await server.shutdown()
    }
}

extension SignalIntegrationTests {
    /// PROTOCOL/OPERATIONS: logs carry connections, logins and call events — never signatures, offers,
    /// answers, candidates or message bodies. A full call and a message at trace level, then grep.
    func testLogOfAFullCallHoldsNoSecretsOrPayloads() async throws {
        let server = try await startServer {
            $0.logDirectory = self.dir + "/logs"
            $0.logLevel = "trace"
        }
        let port = try XCTUnwrap(server.signal?.tcpPort)
        let a = try await SignalLineClient(port: port)
        let b = try await SignalLineClient(port: port)
        _ = try await a.login(user: "alice", device: "phone", identity: alice)
        _ = try await b.login(user: "bob", device: "laptop", identity: bobLaptop)
        let call = SignalID.random()
        let offer = SignalBlob(bytes: Array("OFFER-SECRET-0123456789".utf8))
        let answer = SignalBlob(bytes: Array("ANSWER-SECRET-0123456789".utf8))
        let cand = SignalBlob(bytes: Array("CANDIDATE-SECRET-0123456789".utf8))
        let body = SignalBlob(bytes: Array("MESSAGE-BODY-SECRET-0123456789".utf8))
        try await a.command(.call(call: call, callee: SignalName("bob")!, offer: offer))
        _ = try await b.event()
        try await a.command(.candidate(call: call, candidate: cand))
        try await b.command(.accept(call: call, answer: answer))
        _ = try await a.event()
        try await a.command(.end(call: call))
        _ = try await b.event()
        try await a.command(.message(id: .random(), to: SignalName("bob")!, sealed: [.init(device: SignalName("laptop")!, ciphertext: body)]))
        _ = try await b.event()
        await a.close()
        await b.close()
        try await server.shutdown()

        let log = try String(contentsOfFile: dir + "/logs/parley.log", encoding: .utf8)
        XCTAssertTrue(log.contains("signal login"), "positive control: logins are logged")
        XCTAssertTrue(log.contains("call \(call) answered on laptop"), "positive control: call events are logged")
        for secret in [offer.text, answer.text, cand.text, body.text, "SECRET"] {
            XCTAssertFalse(log.contains(secret), "the log contains \(secret)")
        }
        // No login signature either: every 86-character base64url run would be one.
        XCTAssertNil(log.range(of: "[A-Za-z0-9_-]{86}", options: .regularExpression), "a signature-sized blob is in the log")
    }
}

extension SignalIntegrationTests {
    /// SIGHUP's effect: the hub swaps in a new account table; a device added to the file can log in,
    /// one removed cannot, and sessions already open are not disturbed.
    func testAccountsReloadAddsAndRemovesDevices() async throws {
        let server = try await startServer()
        let port = try XCTUnwrap(server.signal?.tcpPort)
        let carol = DeviceIdentity.generate()
        let before = try await SignalLineClient(port: port)
        guard case .error(.badLogin, _) = try await before.login(user: "carol", device: "tablet", identity: carol) else {
            return XCTFail("carol is not an account yet")
        }
        let bob = try await SignalLineClient(port: port)
        guard case .welcome = try await bob.login(user: "bob", device: "phone", identity: bobPhone) else { return XCTFail("bob") }

        try """
            alice.phone = \(alice.publicBundle.encoded)
            carol.tablet = \(carol.publicBundle.encoded)
            """.write(toFile: dir + "/accounts.conf", atomically: true, encoding: .utf8)
        let hub = try XCTUnwrap(server.signal?.hub)
        hub.reload(accounts: try await SignalMaintenance.loadAccounts(store: hub.store, file: dir + "/accounts.conf", logger: server.logger))

        let after = try await SignalLineClient(port: port)
        guard case .welcome = try await after.login(user: "carol", device: "tablet", identity: carol) else { return XCTFail("carol") }
        let gone = try await SignalLineClient(port: port)
        guard case .error(.badLogin, _) = try await gone.login(user: "bob", device: "laptop", identity: bobLaptop) else {
            return XCTFail("bob's laptop was removed from the file")
        }
        // Bob's phone session predates the reload and keeps working.
        let k = try await bob.command(.keys(user: SignalName("alice")!))
        guard case .ack(k, let result) = try await bob.frame() else { return XCTFail("keys") }
        XCTAssertEqual(result.first, "alice")
        for c in [before, bob, after, gone] { await c.close() }
        try await server.shutdown()
    }
}
