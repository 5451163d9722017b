import ParleySignal
import ParleyWire
import XCTest

/// Login (docs/PROTOCOL.md §3.2) through ``SessionMachine``: hello, verification, the refusal table,
/// and the login deadline. Real Ed25519 keys, a manual clock, a fixed random source.
final class SessionLoginTests: SessionTestCase {
    func testHelloCarriesA32ByteChallengeAndServerTime() throws {
        var board = SessionSwitchboard()
        let a = board.connect()
        let b = board.connect()
        guard case .hello(let version, let challenge, let time)? = board.sent[a]?.first else {
            return XCTFail("no hello")
        }
        XCTAssertEqual(version, 1)
        XCTAssertEqual(challenge.byteCount, 32)
        XCTAssertEqual(time, board.now)
        XCTAssertNotEqual(board.challenge(a), board.challenge(b), "each connection gets its own challenge")
        // The injected source decides the challenge: the same seed gives the same bytes.
        var again = SessionSwitchboard()
        let first = again.connect()
        XCTAssertEqual(again.challenge(first), challenge)
        XCTAssertEqual(board.sessions[a]!.deadline, board.now + 10_000)
    }

    func testLoginSucceeds() throws {
        var board = SessionSwitchboard()
        board.ledger["alice/phone"] = 41
        let id = board.connect()
        let line = board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now + 123)
        board.receive(id, line)
        XCTAssertEqual(
            board.frames(id, from: 1),
            [.welcome(user: n("alice"), device: n("phone"), lastCSeq: 41, serverTime: board.now)])
        XCTAssertEqual(board.sessions[id]!.identity?.user, n("alice"))
        XCTAssertEqual(board.presence.connection(user: n("alice"), device: n("phone")), id)
        XCTAssertEqual(board.sessions[id]!.deadline, board.now + 60_000, "after login only the read deadline is left")
        XCTAssertFalse(board.closed.contains(id))
    }

    func testLoginIsTwoPhaseWhenTheStoreIsSlow() throws {
        let accounts = SessionAccounts()
        var session = SessionMachine(directory: accounts.directory)
        var random = SessionRandom(state: 1)
        guard case .send(.hello(_, let challenge, _)) = session.connect(now: 1000, random: &random).first else {
            return XCTFail("no hello")
        }
        let login = accounts.loginLine("bob", "laptop", challenge: challenge, ts: 1000)
        let check = try XCTUnwrap(Self.check(session.receive(login, now: 1001)))
        XCTAssertTrue(check.verify())
        XCTAssertNil(session.identity, "not online before welcome")
        XCTAssertEqual(session.loginVerified(true, now: 1001), [.authenticated(user: n("bob"), device: n("laptop"))])
        XCTAssertNil(session.identity, "not online before welcome")
        XCTAssertEqual(session.receive("", now: 1002), [])
        XCTAssertEqual(
            session.admit(lastCSeq: 7, now: 1500),
            [
                .send(.welcome(user: n("bob"), device: n("laptop"), lastCSeq: 7, serverTime: 1500)),
                .online(user: n("bob"), device: n("laptop")),
            ])
        // A session that closed while the store was looking ignores the late answer.
        var gone = SessionMachine(directory: accounts.directory)
        guard case .send(.hello(_, let c2, _)) = gone.connect(now: 1000, random: &random).first else {
            return XCTFail()
        }
        _ = gone.receive(accounts.loginLine("bob", "laptop", challenge: c2, ts: 1000), now: 1000)
        _ = gone.loginVerified(true, now: 1000)
        XCTAssertEqual(gone.transportClosed(now: 1001), [])
        XCTAssertEqual(gone.admit(lastCSeq: 7, now: 1002), [])
    }

    /// Between a verified login and `welcome`: a second login is a replay, a command is too early, and
    /// only the read deadline runs.
    func testBeforeWelcomeTheSessionStillRefuses() throws {
        let accounts = SessionAccounts()
        var random = SessionRandom(state: 3)
        for (line, code) in [
            ("login", ServerFrame.ErrorCode.replay), ("got|1", .notLoggedIn),
            (commandLine("keys", 1, 1000, "bob"), .notLoggedIn),
        ] {
            var session = SessionMachine(directory: accounts.directory)
            guard case .send(.hello(_, let challenge, _)) = session.connect(now: 1000, random: &random).first else {
                return XCTFail()
            }
            let login = accounts.loginLine("alice", "phone", challenge: challenge, ts: 1000)
            _ = session.receive(login, now: 1000)
            _ = session.loginVerified(true, now: 1000)
            XCTAssertEqual(session.deadline, 61_000)
            let actions = session.receive(line == "login" ? login : line, now: 1001)
            XCTAssertEqual(actions.count, 2)
            XCTAssertEqual(errorCode(actions.first.flatMap { if case .send(let f) = $0 { f } else { nil } }), code)
            XCTAssertEqual(actions.last, .close)
        }
        var slow = SessionMachine(directory: accounts.directory)
        guard case .send(.hello(_, let challenge, _)) = slow.connect(now: 0, random: &random).first else {
            return XCTFail()
        }
        _ = slow.receive(accounts.loginLine("alice", "phone", challenge: challenge, ts: 0), now: 0)
        _ = slow.loginVerified(true, now: 0)
        XCTAssertEqual(slow.deadlineReached(now: 59_999), [])
        guard case .send(.error(.timeout, _)) = slow.deadlineReached(now: 60_000).first else { return XCTFail() }
    }

    /// The one `verify` action of a login, if that is what the actions are.
    static func check(_ actions: [SessionAction]) -> LoginVerification? {
        guard actions.count == 1, case .verify(let check) = actions[0] else { return nil }
        return check
    }

    /// While the signature check runs (on another thread, in the hub): the login deadline no longer
    /// applies, only the read deadline; keepalives count; a second login is a replay and commands are too
    /// early; a session that closed meanwhile ignores the late result; the timestamp is judged against the
    /// time the login arrived, however long the check took.
    func testSignatureCheckIsHandedOutAndAnsweredLater() throws {
        let accounts = SessionAccounts()
        var random = SessionRandom(state: 11)
        func verifying(at now: UInt64, ts: UInt64? = nil, user: String = "alice", device: String = "phone")
            -> (SessionMachine, LoginVerification)?
        {
            var session = SessionMachine(directory: accounts.directory)
            guard case .send(.hello(_, let challenge, _)) = session.connect(now: now - 9_000, random: &random).first
            else { return nil }
            let line = accounts.loginLine(user, device, challenge: challenge, ts: ts ?? now)
            guard let check = Self.check(session.receive(line, now: now)) else { return nil }
            return (session, check)
        }
        // The login deadline (10 s after connect) passes during the check: only the read deadline counts.
        var (session, check) = try XCTUnwrap(verifying(at: 100_000))
        XCTAssertEqual(session.deadline, 160_000)
        XCTAssertEqual(session.deadlineReached(now: 101_500), [])
        XCTAssertEqual(session.receive("", now: 120_000), [])
        XCTAssertEqual(session.deadline, 180_000, "a keepalive moves the read deadline")
        XCTAssertTrue(check.verify())
        XCTAssertNotNil(check.device)
        XCTAssertEqual(session.loginVerified(true, now: 125_000), [.authenticated(user: n("alice"), device: n("phone"))])

        // Timed out while checking.
        (session, _) = try XCTUnwrap(verifying(at: 100_000))
        guard case .send(.error(.timeout, _))? = session.deadlineReached(now: 160_000).first else { return XCTFail() }
        XCTAssertEqual(session.loginVerified(true, now: 160_001), [], "the late result has nowhere to go")

        // Hung up, or superseded, while checking.
        (session, _) = try XCTUnwrap(verifying(at: 100_000))
        XCTAssertEqual(session.transportClosed(now: 100_001), [])
        XCTAssertEqual(session.loginVerified(true, now: 100_002), [])
        (session, _) = try XCTUnwrap(verifying(at: 100_000))
        XCTAssertEqual(session.supersede(now: 100_001), [.close])
        XCTAssertEqual(session.loginVerified(true, now: 100_002), [])

        // Frames during the check.
        for (line, code) in [("login|x", ServerFrame.ErrorCode.protocolError), ("got|1", .notLoggedIn),
                             (commandLine("keys", 1, 100_000, "bob"), .notLoggedIn)] {
            (session, check) = try XCTUnwrap(verifying(at: 100_000))
            let actions = session.receive(line, now: 100_001)
            XCTAssertEqual(errorCode(actions.first.flatMap { if case .send(let f) = $0 { f } else { nil } }), code, line)
            XCTAssertEqual(actions.last, .close)
            XCTAssertEqual(session.loginVerified(true, now: 100_002), [])
        }
        (session, check) = try XCTUnwrap(verifying(at: 100_000))
        let again = accounts.loginLine("alice", "phone", challenge: SignalBlob(bytes: Array(repeating: 1, count: 32)), ts: 100_000)
        guard case .send(.error(.replay, _))? = session.receive(again, now: 100_001).first else { return XCTFail() }

        // Freshness is judged at arrival: 29 s old when it arrived, 40 s old when the check returned.
        (session, check) = try XCTUnwrap(verifying(at: 100_000, ts: 71_000))
        XCTAssertEqual(session.loginVerified(check.verify(), now: 111_000), [.authenticated(user: n("alice"), device: n("phone"))])
        (session, check) = try XCTUnwrap(verifying(at: 100_000, ts: 69_999))
        guard case .send(.error(.stale, _))? = session.loginVerified(check.verify(), now: 100_000).first else { return XCTFail() }

        // An unknown device is checked too (against a decoy key), and fails.
        (session, check) = try XCTUnwrap(verifying(at: 100_000, user: "alice", device: "tablet"))
        XCTAssertNil(check.device)
        XCTAssertFalse(check.verify())
        guard case .send(.error(.badLogin, _))? = session.loginVerified(false, now: 100_001).first else { return XCTFail() }
        // A bad signature from a known device fails the check.
        var board = SessionSwitchboard()
        let id = board.connect()
        let forged = board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now, signer: "bob/laptop")
        let bad = try XCTUnwrap(Self.check(board.sessions[id]!.receive(forged, now: board.now)))
        XCTAssertNotNil(bad.device)
        XCTAssertFalse(bad.verify())
    }

    /// Unknown user, unknown device and a bad signature get the same answer, word for word.
    func testBadLoginsAreIndistinguishable() throws {
        var board = SessionSwitchboard()
        var answers: [ServerFrame] = []
        let attempts: [(String, String, String?)] = [
            ("carol", "phone", nil),  // unknown user (signed by a fresh key)
            ("alice", "tablet", nil),  // unknown device
            ("alice", "phone", "alice/laptop"),  // signed by another device's key
            ("bob", "laptop", "alice/phone"),  // another user's key
        ]
        for (user, device, signer) in attempts {
            let id = board.connect()
            board.receive(
                id,
                board.accounts.loginLine(user, device, challenge: board.challenge(id), ts: board.now, signer: signer))
            XCTAssertEqual(board.frames(id, from: 1).count, 1)
            answers.append(board.frames(id, from: 1)[0])
            XCTAssertTrue(board.closed.contains(id))
            XCTAssertEqual(board.sessions[id]!.closeReason, .refused(.badLogin))
        }
        XCTAssertEqual(errorCode(answers[0]), .badLogin)
        XCTAssertEqual(Set(answers).count, 1, "\(answers)")
        XCTAssertEqual(board.presence.count, 0)
    }

    func testCorruptedSignatureIsBadLogin() throws {
        var board = SessionSwitchboard()
        let id = board.connect()
        var line = board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now)
        // Change one bit of the signature's first byte (the first character's top bit).
        let sigStart = line.index(line.lastIndex(of: "|")!, offsetBy: 1)
        line.replaceSubrange(sigStart...sigStart, with: line[sigStart] == "A" ? "g" : "A")
        board.receive(id, line)
        XCTAssertEqual(errorCode(board.frames(id).last), .badLogin)
    }

    /// A login line copied from an earlier connection signs that connection's challenge.
    func testLoginReplayedFromAnotherConnectionIsBadLogin() throws {
        var board = SessionSwitchboard()
        let first = board.connect()
        let line = board.accounts.loginLine("alice", "phone", challenge: board.challenge(first), ts: board.now)
        board.receive(first, line)
        XCTAssertEqual(board.sessions[first]!.identity?.device, n("phone"))
        let second = board.connect()
        board.receive(second, line)
        XCTAssertEqual(errorCode(board.frames(second).last), .badLogin)
        XCTAssertEqual(
            board.presence.connection(user: n("alice"), device: n("phone")), first, "the replay changed nothing")
    }

    func testStaleTimestampInBothDirections() throws {
        var board = SessionSwitchboard()
        for offset in [-30_001, 30_001, -3_600_000, 3_600_000] as [Int64] {
            let id = board.connect()
            let ts = UInt64(Int64(board.now) + offset)
            board.receive(id, board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: ts))
            XCTAssertEqual(errorCode(board.frames(id).last), .stale, "offset \(offset)")
            XCTAssertTrue(board.closed.contains(id))
        }
        // The window is inclusive.
        for offset in [-30_000, 30_000] as [Int64] {
            let id = board.connect()
            let ts = UInt64(Int64(board.now) + offset)
            board.receive(id, board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: ts))
            guard case .welcome? = board.frames(id).last else {
                return XCTFail("offset \(offset): \(board.frames(id))")
            }
        }
    }

    func testSecondLoginIsReplay() throws {
        var board = SessionSwitchboard()
        let id = board.connect()
        let line = board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now)
        board.receive(id, line)
        board.receive(id, line)
        XCTAssertEqual(errorCode(board.frames(id).last), .replay)
        XCTAssertTrue(board.closed.contains(id))
        XCTAssertFalse(board.presence.isOnline(user: n("alice"), device: n("phone")), "offline after the close")
    }

    func testCommandsBeforeLoginAreRefused() throws {
        var board = SessionSwitchboard()
        for line in [commandLine("keys", 1, board.now, "bob"), "got|3"] {
            let id = board.connect()
            board.receive(id, "")  // a keepalive is fine
            XCTAssertEqual(board.frames(id).count, 1)
            board.receive(id, line)
            XCTAssertEqual(errorCode(board.frames(id).last), .notLoggedIn)
            XCTAssertTrue(board.closed.contains(id))
        }
        XCTAssertTrue(board.executed.isEmpty)
        // Lines after the close are ignored.
        board.receive(1, "got|1")
        XCTAssertEqual(board.frames(1).count, 2)
    }

    func testLoginTimeout() throws {
        var board = SessionSwitchboard()
        let id = board.connect()
        board.advance(by: 5_000)
        board.receive(id, "")  // keepalives do not extend the login deadline
        XCTAssertEqual(board.sessions[id]!.deadline, board.now + 5_000)
        board.advance(by: 4_999)
        XCTAssertEqual(board.frames(id).count, 1)
        board.advance(by: 1)
        XCTAssertEqual(errorCode(board.frames(id).last), .timeout)
        XCTAssertTrue(board.closed.contains(id))
        XCTAssertNil(board.sessions[id]!.deadline)
        // A login after the close is ignored.
        board.receive(id, board.accounts.loginLine("alice", "phone", challenge: board.challenge(id), ts: board.now))
        XCTAssertEqual(board.frames(id).count, 2)
    }

    func testMalformedLinesAndOverlongLinesClose() throws {
        var board = SessionSwitchboard()
        let before = board.connect()
        board.receive(before, "login|Alice|phone|1|AAAA")
        guard case .error(.protocolError, let reason)? = board.frames(before).last else { return XCTFail() }
        XCTAssertTrue(reason.hasPrefix("login"), reason)
        let after = board.login("alice", "phone")
        board.receive(after, "keys|01|2|bob")
        XCTAssertEqual(errorCode(board.frames(after).last), .protocolError)
        XCTAssertNil(board.presence.connection(user: n("alice"), device: n("phone")))
        let long = board.login("bob", "laptop")
        board.perform(board.sessions[long]!.lineTooLong(now: board.now), on: long)
        XCTAssertEqual(errorCode(board.frames(long).last), .tooLong)
        XCTAssertEqual(board.sessions[long]!.closeReason, .refused(.tooLong))
        XCTAssertTrue(board.closed.contains(long))
    }
}
