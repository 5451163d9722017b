@testable import ParleySignal
import ParleyWire
import XCTest

/// Starting a call, refusing bad ones, and everything up to and including the answer (PROTOCOL.md §3.5).
final class CallsRingingTests: CallsTestCase {
    func testCallRingsEveryOnlineDeviceInNameOrder() {
        var d = Driver()
        let start = d.now
        XCTAssertEqual(d.call(x, from: alicePhone, to: "bob", online: ["phone", "laptop"]), [
            ack,
            deliver(bobLaptop, ring(x)),
            deliver(bobPhone, ring(x)),
            log(.started(call: x, caller: alicePhone, callee: bob)),
            log(.rang(call: x, devices: 2)),
            .armTimer(at: start + 45_000),
        ])
        XCTAssertEqual(d.book.count, 1)
        XCTAssertEqual(d.book.nextDeadline, start + 45_000)
    }

    func testCallToOfflineCalleeEndsOfflineAtOnce() {
        var d = Driver()
        XCTAssertEqual(d.call(x, from: alicePhone, to: "bob", online: []), [
            ack,
            deliver(alicePhone, ended(x, .offline)),
            log(.started(call: x, caller: alicePhone, callee: bob)),
            log(.ended(call: x, reason: .offline)),
        ])
        assertNoLiveCalls(&d.book)
        // Cancelling it, or anything else on it, is too late: the reason follows.
        XCTAssertEqual(d.cancel(x, from: alicePhone), [nak(.ended, "offline")])
        XCTAssertEqual(d.accept(x, blob("a"), from: bobPhone), [nak(.ended, "offline")])
        XCTAssertEqual(d.cancel(x, from: carolPhone), [unknownCall])
    }

    func testCallToOneselfIsNotAllowed() {
        var d = Driver()
        XCTAssertEqual(d.call(x, from: alicePhone, to: "alice", online: ["laptop", "phone"]),
                       [nak(.notAllowed, "a call to oneself")])
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.book.rememberedEndedCount, 0)
    }

    func testDuplicateCallIdIsNotAllowedWhileLiveOrRemembered() {
        var d = Driver()
        d.ringBob(x)
        let inUse = nak(.notAllowed, "call id already in use")
        XCTAssertEqual(d.call(x, from: alicePhone, to: "bob", online: ["laptop"]), [inUse])
        XCTAssertEqual(d.call(x, from: carolPhone, to: "bob", online: ["laptop"]), [inUse])
        XCTAssertEqual(d.book.count, 1)

        _ = d.cancel(x, from: alicePhone)
        d.advance(by: d.book.configuration.endedRetention - 1)
        XCTAssertEqual(d.call(x, from: carolPhone, to: "bob", online: ["laptop"]), [inUse])
        // Once the ended call is forgotten, the id is free again.
        d.advance(by: 1)
        XCTAssertEqual(d.call(x, from: carolPhone, to: "bob", offer: blob("o"), online: ["laptop"]), [
            ack,
            deliver(bobLaptop, ring(x, from: carolPhone, offer: blob("o"))),
            log(.started(call: x, caller: carolPhone, callee: bob)),
            log(.rang(call: x, devices: 1)),
            .armTimer(at: d.now + 45_000),
        ])
    }

    func testEveryVerbOnAnUnknownIdIsUnknownCall() {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.cancel(y, from: alicePhone), [unknownCall])
        XCTAssertEqual(d.prepare(y, blob("a"), from: bobPhone), [unknownCall])
        XCTAssertEqual(d.cand(y, blob("c"), from: bobPhone), [unknownCall])
        XCTAssertEqual(d.accept(y, blob("a"), from: bobPhone), [unknownCall])
        XCTAssertEqual(d.reject(y, from: bobPhone), [unknownCall])
        XCTAssertEqual(d.busy(y, from: bobPhone), [unknownCall])
        XCTAssertEqual(d.end(y, from: alicePhone), [unknownCall])
        XCTAssertEqual(d.book.count, 1)
    }

    /// The whole call of PROTOCOL.md §3.7, event for event.
    func testWholeCallOfTheSpecExample() {
        var d = Driver()
        let (c1, answer, c2) = (blob("cand1"), blob("answer"), blob("cand2"))
        d.ringBob(x)
        XCTAssertEqual(d.cand(x, c1, from: alicePhone), [ack])
        XCTAssertEqual(d.prepare(x, answer, from: bobLaptop), [ack])
        XCTAssertEqual(d.cand(x, c2, from: bobLaptop), [ack])
        XCTAssertEqual(d.accept(x, from: bobLaptop), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobLaptop.device, answer: answer)),
            deliver(alicePhone, candidate(x, from: bobLaptop, c2)),
            deliver(bobLaptop, candidate(x, from: alicePhone, c1)),
            deliver(bobPhone, .elsewhere(call: x, device: bobLaptop.device)),
            log(.answered(call: x, device: bobLaptop.device)),
            .cancelTimer,
        ])
        XCTAssertEqual(d.end(x, from: alicePhone), [
            ack,
            deliver(bobLaptop, ended(x, .hangup)),
            log(.ended(call: x, reason: .hangup)),
        ])
        assertNoLiveCalls(&d.book)
    }

    func testEveryDevicePreparesAndHoldsCandidatesTheAcceptingDevicesGoInOrder() {
        var d = Driver()
        d.ringBob(x, devices: ["laptop", "phone", "tablet"])
        let laptop = (answer: blob("laptop-answer"), cands: [blob("l1"), blob("l2")])
        let phone = (answer: blob("phone-answer"), cands: [blob("p1"), blob("p2"), blob("p3")])
        let callerCands = [blob("a1"), blob("a2"), blob("a3")]
        XCTAssertEqual(d.cand(x, callerCands[0], from: alicePhone), [ack])
        XCTAssertEqual(d.prepare(x, laptop.answer, from: bobLaptop), [ack])
        XCTAssertEqual(d.cand(x, phone.cands[0], from: bobPhone), [ack])
        XCTAssertEqual(d.cand(x, laptop.cands[0], from: bobLaptop), [ack])
        XCTAssertEqual(d.cand(x, callerCands[1], from: alicePhone), [ack])
        XCTAssertEqual(d.prepare(x, blob("stale-phone-answer"), from: bobPhone), [ack])
        XCTAssertEqual(d.cand(x, phone.cands[1], from: bobPhone), [ack])
        XCTAssertEqual(d.prepare(x, phone.answer, from: bobPhone), [ack])  // the later prepare replaces it
        XCTAssertEqual(d.cand(x, laptop.cands[1], from: bobLaptop), [ack])
        XCTAssertEqual(d.cand(x, phone.cands[2], from: bobPhone), [ack])
        XCTAssertEqual(d.cand(x, callerCands[2], from: alicePhone), [ack])

        XCTAssertEqual(d.accept(x, from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: phone.answer)),
            deliver(alicePhone, candidate(x, from: bobPhone, phone.cands[0])),
            deliver(alicePhone, candidate(x, from: bobPhone, phone.cands[1])),
            deliver(alicePhone, candidate(x, from: bobPhone, phone.cands[2])),
            deliver(bobPhone, candidate(x, from: alicePhone, callerCands[0])),
            deliver(bobPhone, candidate(x, from: alicePhone, callerCands[1])),
            deliver(bobPhone, candidate(x, from: alicePhone, callerCands[2])),
            deliver(bobLaptop, .elsewhere(call: x, device: bobPhone.device)),
            deliver(bobTablet, .elsewhere(call: x, device: bobPhone.device)),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
        // After the answer candidates are relayed as they come, both ways.
        XCTAssertEqual(d.cand(x, blob("p4"), from: bobPhone),
                       [ack, deliver(alicePhone, candidate(x, from: bobPhone, blob("p4")))])
        XCTAssertEqual(d.cand(x, blob("a4"), from: alicePhone),
                       [ack, deliver(bobPhone, candidate(x, from: alicePhone, blob("a4")))])
        // The laptop's held answer and candidates went nowhere, and it is out of the call now.
        XCTAssertEqual(d.cand(x, blob("l3"), from: bobLaptop), [answeredElsewhere])
    }

    func testAcceptWithAnAnswerOverridesThePreparedOne() {
        var d = Driver()
        d.ringBob(x, devices: ["phone"])
        XCTAssertEqual(d.prepare(x, blob("prepared"), from: bobPhone), [ack])
        XCTAssertEqual(d.accept(x, blob("given"), from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: blob("given"))),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
    }

    func testAcceptWithoutAnyAnswerIsBadArgumentAndTheCallKeepsRinging() {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.accept(x, from: bobPhone), [nak(.badArgument, "accept without an answer and none prepared")])
        // Another device's prepared answer is not this device's.
        XCTAssertEqual(d.prepare(x, blob("laptop"), from: bobLaptop), [ack])
        XCTAssertEqual(d.accept(x, from: bobPhone), [nak(.badArgument, "accept without an answer and none prepared")])
        XCTAssertEqual(d.accept(x, blob("phone"), from: bobPhone), [
            ack,
            deliver(alicePhone, .answer(call: x, device: bobPhone.device, answer: blob("phone"))),
            deliver(bobLaptop, .elsewhere(call: x, device: bobPhone.device)),
            log(.answered(call: x, device: bobPhone.device)),
            .cancelTimer,
        ])
    }

    func testTwoDevicesAcceptingAtOnceLaptopFirst() {
        assertFirstAcceptWins(first: bobLaptop, second: bobPhone)
    }

    func testTwoDevicesAcceptingAtOncePhoneFirst() {
        assertFirstAcceptWins(first: bobPhone, second: bobLaptop)
    }

    private func assertFirstAcceptWins(first: CallParty, second: CallParty, line: UInt = #line) {
        var d = Driver()
        d.ringBob(x)
        XCTAssertEqual(d.prepare(x, blob("answer-\(first.device)"), from: first), [ack], line: line)
        XCTAssertEqual(d.prepare(x, blob("answer-\(second.device)"), from: second), [ack], line: line)
        XCTAssertEqual(d.accept(x, from: first), [
            ack,
            deliver(alicePhone, .answer(call: x, device: first.device, answer: blob("answer-\(first.device)"))),
            deliver(second, .elsewhere(call: x, device: first.device)),
            log(.answered(call: x, device: first.device)),
            .cancelTimer,
        ], line: line)
        XCTAssertEqual(d.accept(x, from: second), [answeredElsewhere], line: line)
        XCTAssertEqual(d.accept(x, blob("again"), from: first),
                       [nak(.notAllowed, "this device already accepted the call")], line: line)
        XCTAssertEqual(d.book.count, 1, line: line)
    }

    func testWhoMayDoWhatWhileRinging() {
        var d = Driver()
        d.ringBob(x)
        // The caller cannot act as the callee, nor hang up what is not answered.
        XCTAssertEqual(d.accept(x, blob("a"), from: alicePhone), [calleeOnly("accept")])
        XCTAssertEqual(d.prepare(x, blob("a"), from: alicePhone), [calleeOnly("prepare")])
        XCTAssertEqual(d.reject(x, from: alicePhone), [calleeOnly("reject")])
        XCTAssertEqual(d.busy(x, from: alicePhone), [calleeOnly("busy")])
        XCTAssertEqual(d.end(x, from: alicePhone), [nak(.notAllowed, "the call is not answered yet")])
        // A rung device cannot cancel or end.
        XCTAssertEqual(d.cancel(x, from: bobPhone), [nak(.notAllowed, "only the caller can cancel")])
        XCTAssertEqual(d.end(x, from: bobPhone), [nak(.notAllowed, "the call is not answered yet")])
        // Devices that were not rung: the call exists for their user, not for them.
        for verb in [d.accept(x, blob("a"), from: bobTablet), d.cand(x, blob("c"), from: bobTablet),
                     d.cancel(x, from: aliceLaptop), d.cand(x, blob("c"), from: aliceLaptop)] {
            XCTAssertEqual(verb, [notPartOfCall])
        }
        // Any other user does not learn that the call exists.
        for verb in [d.accept(x, blob("a"), from: carolPhone), d.cancel(x, from: carolPhone),
                     d.reject(x, from: carolPhone), d.cand(x, blob("c"), from: carolPhone)] {
            XCTAssertEqual(verb, [unknownCall])
        }
        // None of it changed the call: it still rings on both devices.
        XCTAssertEqual(d.book.count, 1)
        XCTAssertEqual(d.reject(x, from: bobPhone), [
            ack,
            deliver(alicePhone, ended(x, .rejected)),
            deliver(bobLaptop, ended(x, .rejected)),
            log(.ended(call: x, reason: .rejected)),
            .cancelTimer,
        ])
    }

    func testHeldCandidatesAreLimitedPerDevice() {
        var d = Driver(CallBookConfiguration(maxHeldCandidates: 2))
        d.ringBob(x)
        let tooMany = nak(.tooLarge, "more than 2 candidates before the answer")
        XCTAssertEqual(d.cand(x, blob("1"), from: alicePhone), [ack])
        XCTAssertEqual(d.cand(x, blob("2"), from: alicePhone), [ack])
        XCTAssertEqual(d.cand(x, blob("3"), from: alicePhone), [tooMany])
        XCTAssertEqual(d.cand(x, blob("1"), from: bobPhone), [ack])
        XCTAssertEqual(d.cand(x, blob("2"), from: bobPhone), [ack])
        XCTAssertEqual(d.cand(x, blob("3"), from: bobPhone), [tooMany])
        XCTAssertEqual(d.cand(x, blob("1"), from: bobLaptop), [ack])
        // After the answer there is nothing to hold, so no limit.
        _ = d.accept(x, blob("a"), from: bobPhone)
        for n in 0..<5 {
            XCTAssertEqual(d.cand(x, blob("\(n)"), from: alicePhone),
                           [ack, deliver(bobPhone, candidate(x, from: alicePhone, blob("\(n)")))])
        }
    }
}
