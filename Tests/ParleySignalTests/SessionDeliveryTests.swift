import ParleySignal
import ParleyWire
import XCTest

/// Sessions, device queues and presence together, as the hub wires them (docs/PROTOCOL.md §3.4): events
/// resent after a reconnect, cumulative `got`, several devices per user, one connection per device.
final class SessionDeliveryTests: SessionTestCase {
    var call: SignalID { SignalID(callID)! }

    func testReconnectResendsExactlyTheUnacknowledgedEventsInOrder() throws {
        var board = SessionSwitchboard()
        let first = board.login("bob", "laptop")
        for _ in 1...5 { board.deliver(.elsewhere(call: call, device: n("phone")), to: "bob", "laptop") }
        XCTAssertEqual(board.events(first), [1, 2, 3, 4, 5], "sent live while online")
        board.receive(first, "got|3")
        board.hangUp(first)
        XCTAssertFalse(board.presence.isOnline(n("bob")))
        // Queued while offline: not sent anywhere yet.
        board.deliver(.ended(call: call, reason: .hangup), to: "bob", "laptop")
        board.deliver(.merged(call: call, into: call), to: "bob", "laptop")
        board.advance(by: 5_000)
        let second = board.login("bob", "laptop")
        guard case .welcome? = board.frames(second).dropFirst().first else { return XCTFail("welcome first") }
        XCTAssertEqual(board.events(second), [4, 5, 6, 7])
        // Events keep their original timestamps and contents.
        guard case .event(6, let ts, .ended(_, .hangup))? = board.frames(second).dropLast().last else {
            return XCTFail()
        }
        XCTAssertEqual(ts, board.now - 5_000)
    }

    func testCumulativeGotAndNothingResentOnceAcknowledged() throws {
        var board = SessionSwitchboard()
        let first = board.login("alice", "phone")
        for _ in 1...4 { board.deliver(.elsewhere(call: call, device: n("laptop")), to: "alice", "phone") }
        board.receive(first, "got|4")  // one got covers all four
        board.receive(first, "got|2")  // an older got changes nothing
        XCTAssertEqual(board.acknowledged["alice/phone"], [1, 2, 3, 4])
        board.hangUp(first)
        let second = board.login("alice", "phone")
        XCTAssertEqual(board.events(second), [])
        board.deliver(.ended(call: call, reason: .gone), to: "alice", "phone")
        XCTAssertEqual(board.events(second), [5], "numbering continues across connections")
    }

    func testTwoDevicesOfOneUserAreOnlineTogether() throws {
        var board = SessionSwitchboard()
        let phone = board.login("alice", "phone")
        let laptop = board.login("alice", "laptop")
        let bob = board.login("bob", "laptop")
        XCTAssertEqual(board.presence.devices(of: n("alice")).map(\.device), [n("laptop"), n("phone")])
        XCTAssertEqual(board.presence.devices(of: n("alice")).map(\.connection), [laptop, phone])
        XCTAssertEqual(board.presence.count, 3)
        // Each device has its own queue and numbering.
        board.deliver(
            .ring(call: call, caller: n("bob"), callerDevice: n("laptop"), offer: SignalBlob("b2ZmZXI")!),
            to: "alice", "phone")
        board.deliver(
            .ring(call: call, caller: n("bob"), callerDevice: n("laptop"), offer: SignalBlob("b2ZmZXI")!),
            to: "alice", "laptop")
        board.deliver(.elsewhere(call: call, device: n("laptop")), to: "alice", "phone")
        XCTAssertEqual(board.events(phone), [1, 2])
        XCTAssertEqual(board.events(laptop), [1])
        XCTAssertEqual(board.events(bob), [])
        board.hangUp(phone)
        XCTAssertEqual(board.presence.devices(of: n("alice")).map(\.device), [n("laptop")])
        XCTAssertTrue(board.presence.isOnline(n("alice")))
    }

    func testNewLoginOfTheSameDeviceReplacesTheOldSession() throws {
        var board = SessionSwitchboard()
        let old = board.login("alice", "phone")
        let other = board.login("alice", "laptop")
        board.deliver(.elsewhere(call: call, device: n("laptop")), to: "alice", "phone")
        let new = board.login("alice", "phone")
        // The old connection is closed without an error frame; the other device is untouched.
        XCTAssertTrue(board.closed.contains(old))
        XCTAssertEqual(board.sessions[old]!.closeReason, .superseded)
        XCTAssertEqual(board.frames(old).count, 3, "hello, welcome, ev 1: nothing more")
        XCTAssertFalse(board.closed.contains(other))
        XCTAssertEqual(board.presence.connection(user: n("alice"), device: n("phone")), new)
        // The unacknowledged event moved to the new connection, and new events go there.
        XCTAssertEqual(board.events(new), [1])
        board.deliver(.ended(call: call, reason: .hangup), to: "alice", "phone")
        XCTAssertEqual(board.events(new), [1, 2])
        XCTAssertEqual(board.events(old), [1])
        // The old transport's late hang-up does not take the new session offline.
        board.hangUp(old)
        XCTAssertEqual(board.presence.connection(user: n("alice"), device: n("phone")), new)
        // Nor does an answer for a command of the old session reach anyone.
        XCTAssertEqual(board.sessions[old]!.complete(cseq: 1, with: .ok, now: board.now), [])
    }

    func testPresenceRegistry() {
        var presence = Presence<String>()
        XCTAssertNil(presence.register(user: n("alice"), device: n("phone"), connection: "c1"))
        XCTAssertNil(presence.register(user: n("alice"), device: n("phone"), connection: "c1"), "same connection again")
        XCTAssertEqual(presence.register(user: n("alice"), device: n("phone"), connection: "c2"), "c1")
        XCTAssertFalse(presence.remove(user: n("alice"), device: n("phone"), connection: "c1"), "replaced one")
        XCTAssertTrue(presence.isOnline(user: n("alice"), device: n("phone")))
        XCTAssertTrue(presence.remove(user: n("alice"), device: n("phone"), connection: "c2"))
        XCTAssertFalse(presence.isOnline(n("alice")))
        XCTAssertEqual(presence.devices(of: n("alice")).count, 0)
        XCTAssertEqual(presence.count, 0)
        XCTAssertNil(presence.register(user: n("bob"), device: n("phone"), connection: "c3"))
        XCTAssertNil(presence.register(user: n("alice"), device: n("phone"), connection: "c4"))
        XCTAssertNil(presence.register(user: n("alice"), device: n("laptop"), connection: "c5"))
        XCTAssertEqual(presence.entries.map(\.connection), ["c5", "c4", "c3"])
        XCTAssertEqual(presence.userCount, 2)
        XCTAssertEqual(presence.count, 3)
    }
}
