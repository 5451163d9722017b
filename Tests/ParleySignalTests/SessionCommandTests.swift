import ParleySignal
import ParleyWire
import XCTest

/// Commands after login (docs/PROTOCOL.md §3.3): execution and answers, stale timestamps, duplicates
/// within a session and after a reconnect, and the read deadline.
final class SessionCommandTests: SessionTestCase {
    func testCommandIsHandedOutAndAnsweredLater() throws {
        var board = SessionSwitchboard()
        let id = board.login("alice", "phone")
        board.receive(id, commandLine("keys", 1, board.now, "bob"))
        XCTAssertEqual(
            board.executed.map(\.command), [SignalCommand(cseq: 1, timestamp: board.now, verb: .keys(user: n("bob")))])
        XCTAssertEqual(board.frames(id).count, 2, "no answer until the call layer completes")
        board.complete(id, 1, .ack(result: ["bob", "laptop=parley1.X"]))
        XCTAssertEqual(board.frames(id).last, .ack(cseq: 1, result: ["bob", "laptop=parley1.X"]))
        board.receive(id, commandLine("end", 2, board.now, callID))
        board.complete(id, 2, .nak(code: .unknownCall, reason: "no such call"))
        XCTAssertEqual(board.frames(id).last, .nak(cseq: 2, code: .unknownCall, reason: "no such call"))
        // A second answer for the same cseq, or one for a cseq never handed out, is dropped.
        board.complete(id, 2, .ok)
        board.complete(id, 99, .ok)
        XCTAssertEqual(board.frames(id).count, 4)
        XCTAssertEqual(board.ledger["alice/phone"], 2)
    }

    func testStaleCommandsAreNakedNotExecuted() throws {
        var board = SessionSwitchboard()
        let id = board.login("alice", "phone")
        board.receive(id, commandLine("keys", 1, board.now - 30_001, "bob"))
        board.receive(id, commandLine("keys", 2, board.now + 30_001, "bob"))
        board.receive(id, commandLine("keys", 3, board.now + 30_000, "bob"))
        XCTAssertEqual(board.executed.map(\.command.cseq), [3])
        let frames = board.frames(id)
        guard frames.count == 4, case .nak(1, .stale, _) = frames[2], case .nak(2, .stale, _) = frames[3] else {
            return XCTFail("\(frames)")
        }
        // The stale nak is remembered: the duplicate gets it again, still not executed.
        board.receive(id, commandLine("keys", 1, board.now, "bob"))
        guard case .nak(1, .stale, _)? = board.frames(id).last else { return XCTFail("\(board.frames(id))") }
        XCTAssertEqual(board.executed.count, 1)
    }

    func testDuplicateInSessionGetsTheSameAnswer() throws {
        var board = SessionSwitchboard()
        let id = board.login("alice", "phone")
        board.receive(id, commandLine("keys", 5, board.now, "bob"))
        // Resent while still executing: no second execution and no extra answer.
        board.receive(id, commandLine("keys", 5, board.now, "bob"))
        XCTAssertEqual(board.frames(id).count, 2)
        board.complete(id, 5, .ack(result: ["bob"]))
        board.receive(id, commandLine("keys", 5, board.now, "bob"))
        // Lower than the last one but never seen: also a duplicate (§3.3 "≤ the last processed").
        board.receive(id, commandLine("keys", 3, board.now, "bob"))
        XCTAssertEqual(
            board.frames(id, from: 2),
            [
                .ack(cseq: 5, result: ["bob"]), .ack(cseq: 5, result: ["bob"]),
                .ack(cseq: 3, result: []),
            ])
        XCTAssertEqual(board.executed.count, 1)
    }

    func testDuplicateAfterReconnectIsAckedNotExecuted() throws {
        var board = SessionSwitchboard()
        let first = board.login("alice", "phone")
        board.receive(first, commandLine("call", 1, board.now, callID, "bob", "b2ZmZXI"))
        board.receive(first, commandLine("cand", 2, board.now, callID, "Y2FuZDE"))
        board.complete(first, 1)
        // The connection drops before cseq 2 is answered (its answer is lost with it).
        board.hangUp(first)
        board.complete(first, 2)
        XCTAssertEqual(board.frames(first).count, 3)
        board.advance(by: 45_000)
        let second = board.login("alice", "phone")
        XCTAssertEqual(
            board.frames(second).last,
            .welcome(user: n("alice"), device: n("phone"), lastCSeq: 2, serverTime: board.now))
        // The client resends cseq 2 anyway (its timestamp is now 45 s old): ack, not executed, not stale.
        board.receive(second, commandLine("cand", 2, board.now - 45_000, callID, "Y2FuZDE"))
        XCTAssertEqual(board.frames(second).last, .ack(cseq: 2, result: []))
        board.receive(second, commandLine("end", 3, board.now, callID))
        XCTAssertEqual(board.executed.map(\.command.cseq), [1, 2, 3])
        XCTAssertEqual(board.executed.map(\.connection), [first, first, second])
    }

    func testRememberedAnswersAreBounded() throws {
        var board = SessionSwitchboard()
        board.configuration = SessionConfiguration(rememberedAnswers: 2)
        let id = board.login("alice", "phone")
        for cseq: UInt64 in 1...3 {
            board.receive(id, commandLine("end", cseq, board.now, callID))
            board.complete(id, cseq, .nak(code: .unknownCall, reason: "no"))
        }
        board.receive(id, commandLine("end", 1, board.now, callID))
        board.receive(id, commandLine("end", 3, board.now, callID))
        XCTAssertEqual(
            board.frames(id).suffix(2), [.ack(cseq: 1, result: []), .nak(cseq: 3, code: .unknownCall, reason: "no")])
    }

    func testReadTimeoutAndKeepalives() throws {
        var board = SessionSwitchboard()
        let id = board.login("alice", "phone")
        let start = board.now
        XCTAssertEqual(board.sessions[id]!.deadline, start + 60_000)
        board.advance(by: 50_000)
        board.receive(id, "")
        XCTAssertEqual(board.sessions[id]!.deadline, start + 110_000)
        board.advance(by: 25_000)
        board.receive(id, "got|0")  // any frame counts
        board.advance(by: 59_999)
        XCTAssertFalse(board.closed.contains(id))
        // A timer that fires early changes nothing.
        XCTAssertEqual(board.sessions[id]!.deadlineReached(now: board.now), [])
        board.advance(by: 1)
        XCTAssertEqual(errorCode(board.frames(id).last), .timeout)
        XCTAssertTrue(board.closed.contains(id))
        XCTAssertFalse(board.presence.isOnline(n("alice")))
    }

    func testReadTimeoutBeforeLoginWhenShorterThanLoginTimeout() throws {
        var board = SessionSwitchboard()
        board.configuration = SessionConfiguration(loginTimeout: 10_000, readTimeout: 4_000)
        let id = board.connect()
        board.advance(by: 3_000)
        board.receive(id, "")
        XCTAssertEqual(board.sessions[id]!.deadline, board.now + 4_000)
        board.advance(by: 4_000)
        guard case .error(.timeout, let reason)? = board.frames(id).last else { return XCTFail() }
        XCTAssertTrue(reason.contains("nothing received"), reason)
    }

    func testGotIsPassedOnAsAcknowledgement() throws {
        var board = SessionSwitchboard()
        let id = board.login("bob", "laptop")
        for _ in 1...3 { board.deliver(.elsewhere(call: SignalID(callID)!, device: n("phone")), to: "bob", "laptop") }
        board.receive(id, "got|2")
        XCTAssertEqual(board.acknowledged["bob/laptop"], [1, 2])
        XCTAssertEqual(board.queues["bob/laptop"]!.events.map(\.sseq), [3])
    }
}
