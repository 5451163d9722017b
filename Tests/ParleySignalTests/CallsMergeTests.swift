@testable import ParleySignal
import ParleyWire
import XCTest

/// Counter-calls: two users calling each other at once end up in one call (PROTOCOL.md §3.5).
///
/// The book handles one event at a time, so the later call is always recognised the moment it arrives:
/// it never rings anyone, and the callee's devices are never told about it (no `ended|cancelled` needed).
final class CallsMergeTests: CallsTestCase {
    func testCounterCallMergesIntoTheEarlierCall() {
        var d = Driver()
        d.ringBob(x)
        d.advance(by: 300)
        // Bob calls Alice back before seeing the ring: his call never rings Alice's devices.
        XCTAssertEqual(d.call(y, from: bobPhone, to: "alice", offer: blob("bob-offer"), online: ["laptop", "phone"]), [
            ack,
            deliver(bobPhone, .merged(call: y, into: x)),
            deliver(bobPhone, ring(x)),
            log(.merged(call: y, into: x)),
        ])
        XCTAssertEqual(d.book.count, 1)
        // Bob accepts Alice's call at once, as `merged` tells him to.
        XCTAssertEqual(d.accept(x, blob("bob-answer"), from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: blob("bob-answer"))),
            deliver(bobLaptop, .elsewhere(call: x, device: bobPhone.device)),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
        // The dropped call is over for both users; its id stays taken.
        XCTAssertEqual(d.cancel(y, from: bobPhone), [nak(.ended, "cancelled")])
        XCTAssertEqual(d.accept(y, blob("a"), from: alicePhone), [nak(.ended, "cancelled")])
        XCTAssertEqual(d.cancel(y, from: carolPhone), [unknownCall])
        XCTAssertEqual(d.call(y, from: bobPhone, to: "alice", online: ["phone"]),
                       [nak(.notAllowed, "call id already in use")])
    }

    func testCounterCallFromADeviceThatWasNotRungAddsIt() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone"])
        // The tablet came online after Alice's call started, so it was not rung for it.
        XCTAssertEqual(d.call(y, from: bobTablet, to: "alice", online: ["phone"]), [
            ack,
            deliver(bobTablet, .merged(call: y, into: x)),
            deliver(bobTablet, ring(x)),
            log(.merged(call: y, into: x)),
        ])
        XCTAssertEqual(d.cand(x, blob("t1"), from: bobTablet), [ack])
        XCTAssertEqual(d.accept(x, blob("tablet"), from: bobTablet), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobTablet.device, answer: blob("tablet"))),
            deliver(alicePhone, candidate(x, from: bobTablet, blob("t1"))),
            deliver(bobLaptop, .elsewhere(call: x, device: bobTablet.device)),
            deliver(bobPhone, .elsewhere(call: x, device: bobTablet.device)),
            log(.answered(call: x, device: bobTablet.device)),
            .cancelTimer,
        ])
    }

    func testMergedDeviceIsPartOfTheCallForCancelAndDisconnects() {
        var d = Driver()
        let start = d.now
        d.ringBob(x, devices: ["laptop"])
        _ = d.call(y, from: bobTablet, to: "alice", online: ["phone"])
        XCTAssertEqual(d.disconnect(bobTablet), [.armTimer(at: start + 10_000)])
        XCTAssertEqual(d.cancel(x, from: alicePhone), [
            ack,
            deliver(bobLaptop, ended(x, .cancelled)),
            deliver(bobTablet, ended(x, .cancelled)),
            log(.ended(call: x, reason: .cancelled)),
            .cancelTimer,
        ])
        assertNoLiveCalls(&d.book)
    }

    func testCounterCallToABusyDeviceRingsItAgain() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone"])
        XCTAssertEqual(d.busy(x, from: bobPhone), [ack])
        _ = d.call(y, from: bobPhone, to: "alice", online: ["phone"])
        // The phone rings again, so the laptop's busy no longer ends the call.
        XCTAssertEqual(d.busy(x, from: bobLaptop), [ack])
        XCTAssertEqual(d.book.count, 1)
    }

    func testNoMergeWithAnAnsweredCall() {
        var d = Driver()
        d.ringBob(x)
        _ = d.accept(x, blob("a"), from: bobLaptop)
        XCTAssertEqual(d.call(y, from: bobPhone, to: "alice", offer: blob("bob-offer"), online: ["phone"]), [
            ack,
            deliver(alicePhone, ring(y, from: bobPhone, offer: blob("bob-offer"))),
            log(.started(call: y, caller: bobPhone, callee: alice)),
            log(.rang(call: y, devices: 1)),
            .armTimer(at: d.now + 45_000),
        ])
        XCTAssertEqual(d.book.count, 2)
    }

    func testNoMergeWithCallsOfOtherUsersOrTheSameDirection() {
        var d = Driver()
        d.ringBob(x)
        // Carol calling Alice is not a counter-call of Alice calling Bob.
        XCTAssertEqual(d.call(y, from: carolPhone, to: "alice", online: ["phone"]), [
            ack,
            deliver(alicePhone, ring(y, from: carolPhone)),
            log(.started(call: y, caller: carolPhone, callee: alice)),
            log(.rang(call: y, devices: 1)),
        ])
        // Alice's laptop calling Bob too is a second call in the same direction.
        let z = callID(3)
        XCTAssertEqual(d.call(z, from: aliceLaptop, to: "bob", online: ["tablet"]), [
            ack,
            deliver(bobTablet, ring(z, from: aliceLaptop)),
            log(.started(call: z, caller: aliceLaptop, callee: bob)),
            log(.rang(call: z, devices: 1)),
        ])
        // Bob calling back merges into the oldest of Alice's ringing calls to him.
        let w = callID(4)
        XCTAssertEqual(d.call(w, from: bobPhone, to: "alice", online: ["laptop"]), [
            ack,
            deliver(bobPhone, .merged(call: w, into: x)),
            deliver(bobPhone, ring(x)),
            log(.merged(call: w, into: x)),
        ])
        XCTAssertEqual(d.book.count, 3)
    }

    func testAfterTheEarlierCallEndsACallBackIsANewCall() {
        var d = Driver()
        d.ringBob(x)
        _ = d.cancel(x, from: alicePhone)
        XCTAssertEqual(d.call(y, from: bobPhone, to: "alice", online: ["phone"]), [
            ack,
            deliver(alicePhone, ring(y, from: bobPhone)),
            log(.started(call: y, caller: bobPhone, callee: alice)),
            log(.rang(call: y, devices: 1)),
            .armTimer(at: d.now + 45_000),
        ])
    }
}
