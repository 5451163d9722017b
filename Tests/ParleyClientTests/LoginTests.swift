import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

final class LoginTests: XCTestCase {
    func testLoginWithSignedChallengeGetsWelcome() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", "phone", on: server)
        await server.setLastCSeq(41, for: alice.address)
        let client = ParleyClient(options: fastOptions(directory: nil))
        let hello = try await client.connect(host: "127.0.0.1", port: server.port)
        XCTAssertEqual(hello.version, 1)
        let welcome = try await client.login(identity: alice.identity, user: alice.user, device: alice.device)
        XCTAssertEqual(welcome.user, alice.user)
        XCTAssertEqual(welcome.device, alice.device)
        XCTAssertEqual(welcome.lastCSeq, 41)

        // The login line is the §3.2 shape, its signature verified by the fake server; the next command is 42.
        let login = await server.received.first { if case .login? = $0.frame { true } else { false } }
        XCTAssertEqual(login?.line.split(separator: "|").count, 5)
        _ = try await client.keys(alice.user)
        let command = await server.received.last { if case .command? = $0.frame { true } else { false } }
        guard case .command(let keys)? = command?.frame else { return XCTFail("no command") }
        XCTAssertEqual(keys.cseq, 42)
        await client.close()
        await server.stop()
    }

    func testBadLoginIsTypedAndNotRetried() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let client = ParleyClient(options: fastOptions(directory: nil))
        _ = try await client.connect(host: "127.0.0.1", port: server.port)
        // A key the server does not know: the fake server verifies the signature and refuses.
        await assertClientError(.loginRefused) {
            try await client.login(identity: DeviceIdentity.generate(), user: alice.user, device: alice.device)
        }
        try await Task.sleep(for: .milliseconds(50))
        let connections = await server.connectionCount
        XCTAssertEqual(connections, 1, "a refused login must not be retried")
        await assertClientError(.loginRefused) { try await client.keys(alice.user) }
        await server.stop()
    }

    func testServerErrorCodesMapToClientErrors() async throws {
        let cases: [(ServerFrame.ErrorCode, ClientError.Code)] = [
            (.badLogin, .loginRefused), (.stale, .loginStale), (.replay, .loginReplayed), (.timeout, .loginTimeout),
            (.notLoggedIn, .notLoggedIn), (.tooLong, .lineTooLong), (.protocolError, .protocolError),
        ]
        XCTAssertEqual(cases.count, ServerFrame.ErrorCode.allCases.count)
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        for (wire, expected) in cases {
            XCTAssertEqual(ClientError.server(wire, reason: "x").code, expected)
            await server.setLoginError(wire)
            let client = ParleyClient(options: fastOptions(directory: nil))
            _ = try await client.connect(host: "127.0.0.1", port: server.port)
            await assertClientError(expected) {
                try await client.login(identity: alice.identity, user: alice.user, device: alice.device)
            }
        }
        await server.stop()
    }

    func testSilentServerHitsTheLoginTimeout() async throws {
        let server = try await FakeSignalServer.start()
        await server.setSilent(true)
        var options = fastOptions(directory: nil)
        options.loginTimeout = .milliseconds(50)
        let client = ParleyClient(options: options)
        await assertClientError(.loginTimeout) { try await client.connect(host: "127.0.0.1", port: server.port) }
        await server.stop()
    }

    func testConnectionRefusedIsConnectionFailed() async throws {
        let server = try await FakeSignalServer.start()
        let port = server.port
        await server.stop()
        let client = ParleyClient(options: fastOptions(directory: nil))
        await assertClientError(.connectionFailed) { try await client.connect(host: "127.0.0.1", port: port) }
    }

    func testMalformedServerFrameIsAViolation() async throws {
        var session = ClientSession()
        session.connectionOpened()
        let actions = session.receive(.line("hello|2|AAAA|1"), now: 0)
        guard case .close(let error)? = actions.first else { return XCTFail("\(actions)") }
        XCTAssertEqual(error.code, .serverViolation)
        var fresh = ClientSession()
        XCTAssertEqual(fresh.receive(.tooLong, now: 0).count, 1)
    }

    func testLoginUsesTheServerClockAndTheSpecSigningInput() throws {
        let identity = DeviceIdentity.generate()
        let challenge = SignalBlob(bytes: [UInt8](repeating: 7, count: 32))
        var session = ClientSession()
        session.connectionOpened()
        // The server clock is 100 s ahead of ours; the login timestamp follows the server.
        let greeted = session.receive(.hello(version: 1, challenge: challenge, serverTime: 200_000), now: 100_000)
        XCTAssertEqual(greeted, [.greeted(Hello(version: 1, serverTime: 200_000))])
        let credentials = ClientSession.Credentials(identity: identity, user: sname("alice"), device: sname("phone"))
        let actions = session.login(credentials, state: ClientState(account: "x"), now: 100_010)
        guard case .send(.login(let user, let device, let ts, let signature))? = actions.first else {
            return XCTFail("\(actions)")
        }
        XCTAssertEqual(ts, 200_010)
        let input = SignalCodec.loginSigningInput(challenge: challenge, user: user, device: device, timestamp: ts)
        XCTAssertTrue(identity.signingKey.publicKey.isValidSignature(Data(signature.bytes), for: Data(input)))
        XCTAssertEqual(session.state, .awaitingWelcome)
        // A welcome for someone else is refused.
        let wrong = session.receive(.welcome(user: sname("bob"), device: device, lastCSeq: 0, serverTime: 0), now: 0)
        guard case .close(let refusal)? = wrong.first else { return XCTFail("\(wrong)") }
        XCTAssertEqual(refusal.code, .serverViolation)
    }

    func testSecondProcessOnTheSameStateIsRefused() async throws {
        let directory = try temporaryDirectory(self)
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let first = try await loggedInClient(alice, server: server, options: fastOptions(directory: directory))
        let second = ParleyClient(options: fastOptions(directory: directory))
        _ = try await second.connect(host: "127.0.0.1", port: server.port)
        await assertClientError(.deviceInUse) {
            try await second.login(identity: alice.identity, user: alice.user, device: alice.device)
        }
        await first.close()
        await server.stop()
    }
}
