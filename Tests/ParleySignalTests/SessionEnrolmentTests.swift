import ParleySignal
import ParleyWire
import XCTest

/// Enrolment before login (docs/PROTOCOL.md §3.8) through ``SessionMachine``: one request per connection,
/// answered while the connection still awaits its login, refused after login.
final class SessionEnrolmentTests: SessionTestCase {
    let list = SignalBlob(bytes: [UInt8](repeating: 7, count: 200))

    func testOneEnrolmentBeforeLoginThenLogin() throws {
        var board = SessionSwitchboard()
        let id = board.connect()
        board.receive(id, "register|-|\(list.text)")
        XCTAssertEqual(board.enrolments.count, 1)
        guard case .register(nil, let given)? = board.enrolments.first?.1 else { return XCTFail("\(board.enrolments)") }
        XCTAssertEqual(given, list)
        // The hub's answer goes out; the connection still awaits its login and may log in now.
        board.perform(board.sessions[id]!.enrolmentAnswered(.enrolled(kind: .registered, detail: "alice"), now: board.now), on: id)
        XCTAssertEqual(board.frames(id).last, .enrolled(kind: .registered, detail: "alice"))
        XCTAssertEqual(board.sessions[id]!.deadline, board.now + 10_000, "the login deadline still stands")
        board.receive(id, board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now))
        XCTAssertEqual(board.sessions[id]!.identity?.user, n("alice"))
        // An answer arriving after login is not sent.
        XCTAssertEqual(board.sessions[id]!.enrolmentAnswered(.refused(code: .unavailable, reason: "late"), now: board.now), [])
    }

    func testASecondEnrolmentOrOneAfterLoginCloses() throws {
        var board = SessionSwitchboard()
        let a = board.connect()
        let bundle = SignalBlob(bytes: [UInt8](repeating: 1, count: 128))
        board.receive(a, "link|0123456789abcdef|alice|laptop|\(bundle.text)")
        board.receive(a, "link|0123456789abcdef|alice|laptop|\(bundle.text)")
        XCTAssertEqual(board.enrolments.count, 1)
        XCTAssertTrue(board.closed.contains(a))
        guard case .error(.protocolError, _)? = board.frames(a).last else { return XCTFail("\(board.frames(a))") }

        let b = board.login("alice", "phone")
        board.receive(b, "register|-|\(list.text)")
        XCTAssertTrue(board.closed.contains(b))
        XCTAssertEqual(board.enrolments.count, 1)
    }

    func testMalformedEnrolmentsAreProtocolErrors() throws {
        for line in [
            "register", "register|-", "register|short|\(list.text)", "link|0123456789ABCDEF|alice|laptop|AAAA",
            "link|0123456789abcdef|alice|laptop|AAAA", "link|0123|alice|laptop|\(SignalBlob(bytes: [UInt8](repeating: 1, count: 128)).text)",
        ] {
            var board = SessionSwitchboard()
            let id = board.connect()
            board.receive(id, line)
            XCTAssertTrue(board.closed.contains(id), line)
            XCTAssertTrue(board.enrolments.isEmpty, line)
        }
    }
}
