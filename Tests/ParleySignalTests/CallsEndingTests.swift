@testable import ParleySignal
import ParleyWire
import XCTest

/// Every way a call ends by a command, races between commands, and what comes too late (PROTOCOL.md §3.5).
final class CallsEndingTests: CallsTestCase {
    func testCancelImmediatelyAfterTheCallEndsItForEveryRungDevice() {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.cancel(x, from: alicePhone), [
            ack,
            deliver(bobLaptop, ended(x, .cancelled)),
            deliver(bobPhone, ended(x, .cancelled)),
            log(.ended(call: x, reason: .cancelled)),
            .cancelTimer,
        ])
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.cancel(x, from: alicePhone), [nak(.ended, "cancelled")])
    }

    /// With commands processed in cseq order a cancel cannot overtake its call; if it ever reached the
    /// book first it would be refused as `unknown-call`, and the call that follows rings normally.
    func testCancelBeforeTheCallIsKnownIsUnknownCall() {
        var d = Driver()
        XCTAssertEqual(d.cancel(x, from: alicePhone), [unknownCall])
        XCTAssertEqual(d.call(x, from: alicePhone, to: "bob", online: ["phone"]).first, ack)
        XCTAssertEqual(d.book.count, 1)
    }

    func testCancelRacingAcceptCancelProcessedFirst() {
        var d = Driver()
        d.ringBob(x)
        _ = d.prepare(x, blob("answer"), from: bobPhone)
        XCTAssertEqual(d.cancel(x, from: alicePhone), [
            ack,
            deliver(bobLaptop, ended(x, .cancelled)),
            deliver(bobPhone, ended(x, .cancelled)),
            log(.ended(call: x, reason: .cancelled)),
            .cancelTimer,
        ])
        XCTAssertEqual(d.accept(x, from: bobPhone), [nak(.ended, "cancelled")])
        assertNoLiveCalls(&d.book)
    }

    func testCancelRacingAcceptAcceptProcessedFirst() {
        var d = Driver()
        d.ringBob(x)
        _ = d.prepare(x, blob("answer"), from: bobPhone)
        XCTAssertEqual(d.accept(x, from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: blob("answer"))),
            deliver(bobLaptop, .elsewhere(call: x, device: bobPhone.device)),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
        // The cancel comes after the answer: it is the caller hanging up.
        XCTAssertEqual(d.cancel(x, from: alicePhone), [
            ack,
            deliver(bobPhone, ended(x, .hangup)),
            log(.ended(call: x, reason: .hangup)),
        ])
        assertNoLiveCalls(&d.book)
    }

    func testRejectFromAnyDeviceEndsItForTheCallerAndTheOtherDevices() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone", "tablet"])
        XCTAssertEqual(d.reject(x, from: bobPhone), [
            ack,
            deliver(alicePhone, ended(x, .rejected)),
            deliver(bobLaptop, ended(x, .rejected)),
            deliver(bobTablet, ended(x, .rejected)),
            log(.ended(call: x, reason: .rejected)),
            .cancelTimer,
        ])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobLaptop), [nak(.ended, "rejected")])
        XCTAssertEqual(d.reject(x, from: bobPhone), [nak(.ended, "rejected")])
        assertNoLiveCalls(&d.book)
    }

    func testBusyFromEveryRingingDeviceEndsBusy() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone", "tablet"])
        XCTAssertEqual(d.busy(x, from: bobLaptop), [ack])
        XCTAssertEqual(d.busy(x, from: bobLaptop), [ack])  // saying it twice changes nothing
        XCTAssertEqual(d.busy(x, from: bobTablet), [ack])
        XCTAssertEqual(d.busy(x, from: bobPhone), [
            ack,
            deliver(alicePhone, ended(x, .busy)),
            deliver(bobLaptop, ended(x, .busy)),
            deliver(bobTablet, ended(x, .busy)),
            log(.ended(call: x, reason: .busy)),
            .cancelTimer,
        ])
        assertNoLiveCalls(&d.book)
    }

    func testBusyDevicesDoNotStopAnotherFromAcceptingAndMayAcceptThemselves() {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.busy(x, from: bobLaptop), [ack])
        // The busy device finished its other call and takes this one after all.
        XCTAssertEqual(d.accept(x, blob("late"), from: bobLaptop), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobLaptop.device, answer: blob("late"))),
            deliver(bobPhone, .elsewhere(call: x, device: bobLaptop.device)),
            log(.answered(call: x, device: bobLaptop.device)),
            .cancelTimer,
        ])
    }

    func testEndAfterTheAnswerFromEitherSide() {
        for (hangingUp, other) in [(alicePhone, bobPhone), (bobPhone, alicePhone)] {
            var d = Driver()
            d.ringBob(x)
            _ = d.accept(x, blob("a"), from: bobPhone)
            XCTAssertEqual(d.end(x, from: hangingUp), [
                ack,
                deliver(other, ended(x, .hangup)),
                log(.ended(call: x, reason: .hangup)),
            ])
            XCTAssertEqual(d.end(x, from: other), [nak(.ended, "hangup")])
            XCTAssertEqual(d.cand(x, blob("c"), from: other), [nak(.ended, "hangup")])
            assertNoLiveCalls(&d.book)
        }
    }

    func testWhoMayDoWhatAfterTheAnswer() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone"])
        _ = d.accept(x, blob("a"), from: bobPhone)
        let alreadyAccepted = nak(.notAllowed, "this device already accepted the call")
        // The answering device: only `cand` and `end` make sense now.
        XCTAssertEqual(d.prepare(x, blob("a"), from: bobPhone), [alreadyAccepted])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobPhone), [alreadyAccepted])
        XCTAssertEqual(d.reject(x, from: bobPhone), [alreadyAccepted])
        XCTAssertEqual(d.busy(x, from: bobPhone), [alreadyAccepted])
        XCTAssertEqual(d.cancel(x, from: bobPhone), [nak(.notAllowed, "only the caller can cancel")])
        // The caller: callee verbs stay refused.
        XCTAssertEqual(d.accept(x, blob("a"), from: alicePhone), [calleeOnly("accept")])
        XCTAssertEqual(d.reject(x, from: alicePhone), [calleeOnly("reject")])
        XCTAssertEqual(d.prepare(x, blob("a"), from: alicePhone), [calleeOnly("prepare")])
        XCTAssertEqual(d.busy(x, from: alicePhone), [calleeOnly("busy")])
        // The callee's other devices, rung or not: answered elsewhere, whatever they try.
        for device in [bobLaptop, bobTablet] {
            XCTAssertEqual(d.accept(x, blob("a"), from: device), [answeredElsewhere])
            XCTAssertEqual(d.prepare(x, blob("a"), from: device), [answeredElsewhere])
            XCTAssertEqual(d.reject(x, from: device), [answeredElsewhere])
            XCTAssertEqual(d.busy(x, from: device), [answeredElsewhere])
            XCTAssertEqual(d.cand(x, blob("c"), from: device), [answeredElsewhere])
            XCTAssertEqual(d.end(x, from: device), [answeredElsewhere])
            XCTAssertEqual(d.cancel(x, from: device), [answeredElsewhere])
        }
        // The caller's other devices and other users.
        XCTAssertEqual(d.end(x, from: aliceLaptop), [notPartOfCall])
        XCTAssertEqual(d.cand(x, blob("c"), from: aliceLaptop), [notPartOfCall])
        XCTAssertEqual(d.end(x, from: carolPhone), [unknownCall])
        XCTAssertEqual(d.cand(x, blob("c"), from: carolPhone), [unknownCall])
        XCTAssertEqual(d.book.count, 1)
    }

    func testCommandsOnAnEndedCallGetEndedWithTheReasonButOnlyForItsUsers() {
        var d = Driver()
        d.ringBob(x)
        _ = d.busy(x, from: bobLaptop)
        _ = d.busy(x, from: bobPhone)
        for command in [CallCommand.cancel(x), .prepare(x, answer: blob("a")), .candidate(x, candidate: blob("c")),
                        .accept(x, answer: blob("a")), .reject(x), .busy(x), .end(x)] {
            XCTAssertEqual(d.send(command, from: bobPhone), [nak(.ended, "busy")])
            XCTAssertEqual(d.send(command, from: bobTablet), [nak(.ended, "busy")])
            XCTAssertEqual(d.send(command, from: aliceLaptop), [nak(.ended, "busy")])
            XCTAssertEqual(d.send(command, from: carolPhone), [unknownCall])
        }
        assertNoLiveCalls(&d.book)
    }

    func testCallsAreIndependent() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        d.advance(by: 5)
        XCTAssertEqual(d.call(y, from: carolPhone, to: "bob", offer: blob("carol"), online: ["laptop", "phone"]), [
            ack,
            deliver(bobLaptop, ring(y, from: carolPhone, offer: blob("carol"))),
            deliver(bobPhone, ring(y, from: carolPhone, offer: blob("carol"))),
            log(.started(call: y, caller: carolPhone, callee: bob)),
            log(.rang(call: y, devices: 2)),
        ])
        XCTAssertEqual(d.reject(x, from: bobPhone), [
            ack,
            deliver(alicePhone, ended(x, .rejected)),
            deliver(bobLaptop, ended(x, .rejected)),
            log(.ended(call: x, reason: .rejected)),
            .armTimer(at: start + 5 + 45_000),
        ])
        XCTAssertEqual(d.accept(y, blob("for-carol"), from: bobPhone), [
            ack,
            deliver(carolPhone, .answer(call: y, device: bobPhone.device, answer: blob("for-carol"))),
            deliver(bobLaptop, .elsewhere(call: y, device: bobPhone.device)),
            log(.answered(call: y, device: bobPhone.device)),
            .cancelTimer,
        ])
        XCTAssertEqual(d.book.count, 1)
    }
}
