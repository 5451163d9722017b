@testable import ParleySignal
import ParleyWire
import XCTest

/// Ring timeout, disconnect grace for callee devices, callers and answered calls, and the one timer
/// (PROTOCOL.md §3.5). The clock is manual: a 45 s ring timeout takes no time at all.
final class CallsTimingTests: CallsTestCase {
    func testRingTimeoutEndsTheCallForEveryone() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        _ = d.busy(x, from: bobLaptop)
        // A timer firing early does nothing and does not re-arm.
        XCTAssertEqual(d.fire(at: start + 44_999), [])
        XCTAssertEqual(d.fire(at: start + 45_000), [
            deliver(alicePhone, ended(x, .timeout)),
            deliver(bobLaptop, ended(x, .timeout)),
            deliver(bobPhone, ended(x, .timeout)),
            log(.ended(call: x, reason: .timeout)),
        ])
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.accept(x, blob("a"), from: bobPhone), [nak(.ended, "timeout")])
    }

    func testRingTimeoutIsConfigurableAndALateTimerStillFires() {
        var d = Driver(CallBookConfiguration(ringTimeout: 30_000))
        let start = d.now
        XCTAssertEqual(d.call(x, from: alicePhone, to: "bob", online: ["phone"]).last, .armTimer(at: start + 30_000))
        XCTAssertEqual(d.fire(at: start + 31_234), [
            deliver(alicePhone, ended(x, .timeout)),
            deliver(bobPhone, ended(x, .timeout)),
            log(.ended(call: x, reason: .timeout)),
        ])
        assertNoLiveCalls(&d.book)
    }

    func testRingingDeviceAwayPastTheGraceStopsRingingAndTheLastOneEndsTheCallOffline() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        d.advance(by: 1_000)
        XCTAssertEqual(d.disconnect(bobPhone), [.armTimer(at: start + 11_000)])
        XCTAssertEqual(d.fire(at: start + 11_000), [
            deliver(bobPhone, ended(x, .offline)),
            log(.stoppedRinging(call: x, device: bobPhone.device)),
            .armTimer(at: start + 45_000),
        ])
        // The dropped device is out: it is told the call is over for it.
        XCTAssertEqual(d.reconnect(bobPhone), [])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobPhone), [nak(.ended, "offline")])
        d.advance(by: 9_000)
        XCTAssertEqual(d.disconnect(bobLaptop), [.armTimer(at: start + 30_000)])
        XCTAssertEqual(d.fire(at: start + 30_000), [
            deliver(bobLaptop, ended(x, .offline)),
            deliver(alicePhone, ended(x, .offline)),
            log(.stoppedRinging(call: x, device: bobLaptop.device)),
            log(.ended(call: x, reason: .offline)),
        ])
        assertNoLiveCalls(&d.book)
    }

    func testRingingDeviceBackWithinTheGraceKeepsRinging() {
        var d = Driver()
        let start = d.now
        d.ringBob(x, devices: ["phone"])
        XCTAssertEqual(d.disconnect(bobPhone), [.armTimer(at: start + 10_000)])
        d.advance(by: 9_999)
        XCTAssertEqual(d.reconnect(bobPhone), [.armTimer(at: start + 45_000)])
        XCTAssertEqual(d.fire(at: start + 10_000), [])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: blob("a"))),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
    }

    func testASecondDisconnectReportDoesNotExtendTheGrace() {
        var d = Driver()
        let start = d.now
        d.ringBob(x, devices: ["phone"])
        XCTAssertEqual(d.disconnect(bobPhone), [.armTimer(at: start + 10_000)])
        d.advance(by: 5_000)
        XCTAssertEqual(d.disconnect(bobPhone), [])
        XCTAssertEqual(d.fire(at: start + 10_000), [
            deliver(bobPhone, ended(x, .offline)),
            deliver(alicePhone, ended(x, .offline)),
            log(.stoppedRinging(call: x, device: bobPhone.device)),
            log(.ended(call: x, reason: .offline)),
        ])
    }

    func testBusyDevicesAndADroppedOneEndBusy() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        XCTAssertEqual(d.busy(x, from: bobLaptop), [ack])
        XCTAssertEqual(d.disconnect(bobPhone), [.armTimer(at: start + 10_000)])
        XCTAssertEqual(d.fire(at: start + 10_000), [
            deliver(bobPhone, ended(x, .offline)),
            deliver(alicePhone, ended(x, .busy)),
            deliver(bobLaptop, ended(x, .busy)),
            log(.stoppedRinging(call: x, device: bobPhone.device)),
            log(.ended(call: x, reason: .busy)),
        ])
        assertNoLiveCalls(&d.book)
    }

    func testCallerAwayPastTheGraceEndsTheCallGone() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        d.advance(by: 2_000)
        XCTAssertEqual(d.disconnect(alicePhone), [.armTimer(at: start + 12_000)])
        XCTAssertEqual(d.fire(at: start + 12_000), [
            deliver(alicePhone, ended(x, .gone)),
            deliver(bobLaptop, ended(x, .gone)),
            deliver(bobPhone, ended(x, .gone)),
            log(.ended(call: x, reason: .gone)),
        ])
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.cancel(x, from: alicePhone), [nak(.ended, "gone")])
    }

    func testCallerBackWithinTheGraceKeepsTheCall() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        XCTAssertEqual(d.disconnect(alicePhone), [.armTimer(at: start + 10_000)])
        d.advance(by: 10_000 - 1)
        XCTAssertEqual(d.reconnect(alicePhone), [.armTimer(at: start + 45_000)])
        XCTAssertEqual(d.fire(at: start + 10_000), [])
        XCTAssertEqual(d.book.count, 1)
        // A caller away when the answer comes gets it queued; the call goes on.
        XCTAssertEqual(d.disconnect(alicePhone), [.armTimer(at: start + 20_000)])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobLaptop), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobLaptop.device, answer: blob("a"))),
            deliver(bobPhone, .elsewhere(call: x, device: bobLaptop.device)),
            log(.answered(call: x, device: bobLaptop.device)),
            .cancelTimer,
        ])
        XCTAssertEqual(d.fire(at: start + 20_000), [])
        XCTAssertEqual(d.book.count, 1)
    }

    func testAnsweredCallIsForgottenOnlyWhenBothSidesStayAway() {
        var d = Driver()
        d.ringBob(x)
        _ = d.accept(x, blob("a"), from: bobPhone)
        let t = d.now
        // One side away is normal: media does not need us.
        XCTAssertEqual(d.disconnect(alicePhone), [])
        d.advance(by: 60_000)
        XCTAssertEqual(d.handle(.timerFired), [])
        XCTAssertEqual(d.book.count, 1)
        // Both away: the clock runs from the later one; a return stops it.
        XCTAssertEqual(d.disconnect(bobPhone), [.armTimer(at: t + 70_000)])
        d.advance(by: 5_000)
        XCTAssertEqual(d.reconnect(alicePhone), [.cancelTimer])
        XCTAssertEqual(d.disconnect(alicePhone), [.armTimer(at: t + 75_000)])
        XCTAssertEqual(d.fire(at: t + 74_999), [])
        XCTAssertEqual(d.fire(at: t + 75_000), [log(.ended(call: x, reason: .gone))])
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.end(x, from: alicePhone), [nak(.ended, "gone")])
        XCTAssertEqual(d.cand(x, blob("c"), from: bobPhone), [nak(.ended, "gone")])
    }

    func testDevicesOutsideTheCallDoNotMatter() {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.disconnect(bobTablet), [])
        XCTAssertEqual(d.disconnect(aliceLaptop), [])
        XCTAssertEqual(d.disconnect(carolPhone), [])
        XCTAssertEqual(d.reconnect(carolPhone), [])
        // After the answer the other devices of the callee are out of the call too.
        _ = d.accept(x, blob("a"), from: bobPhone)
        XCTAssertEqual(d.disconnect(bobLaptop), [])
        XCTAssertEqual(d.book.indexSizes, CallBook.IndexSizes(parties: 2, ringingPairs: 0))
    }

    func testTheOneTimerFollowsTheEarliestDeadlineAcrossCalls() {
        var d = Driver()
        let start = d.now
        d.ringBob(x)
        d.advance(by: 1_000)
        XCTAssertEqual(d.call(y, from: carolPhone, to: "bob", online: ["tablet"]).last, log(.rang(call: y, devices: 1)))
        d.advance(by: 1_000)
        XCTAssertEqual(d.disconnect(bobTablet), [.armTimer(at: start + 12_000)])
        // Ending the call with the earlier ring timeout leaves the armed deadline alone: it is still the earliest.
        XCTAssertEqual(d.cancel(x, from: alicePhone), [
            ack,
            deliver(bobLaptop, ended(x, .cancelled)),
            deliver(bobPhone, ended(x, .cancelled)),
            log(.ended(call: x, reason: .cancelled)),
        ])
        XCTAssertEqual(d.fire(at: start + 12_000), [
            deliver(bobTablet, ended(y, .offline)),
            deliver(carolPhone, ended(y, .offline)),
            log(.stoppedRinging(call: y, device: bobTablet.device)),
            log(.ended(call: y, reason: .offline)),
        ])
        XCTAssertEqual(d.handle(.timerFired), [])
        assertNoLiveCalls(&d.book)
    }

    func testManyCallsTimingOutAtOnceEndInIdOrder() {
        var d = Driver()
        let start = d.now
        let ids = (1...100).map(callID)
        for id in ids.reversed() { _ = d.call(id, from: carolPhone, to: "bob", online: ["phone"]) }
        XCTAssertEqual(d.book.count, 100)
        let fired = d.fire(at: start + 45_000)
        XCTAssertEqual(fired.count, 300)
        XCTAssertEqual(fired.compactMap { if case .log(.ended(let id, .timeout)) = $0 { id } else { nil } }, ids)
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.book.queuedDeadlines, 0)
    }
}
