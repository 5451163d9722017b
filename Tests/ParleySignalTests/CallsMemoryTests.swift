@testable import ParleySignal
import ParleyWire
import XCTest

/// Nothing stays behind: ended calls leave the book in the step they end, the memory of ended calls and
/// the deadline queue are bounded; plus the bridge from parsed verbs and what the log may contain.
final class CallsMemoryTests: CallsTestCase {
    /// 10,000 calls, ending every way there is, leave an empty book.
    func testTenThousandEndedCallsLeaveNothing() {
        var d = Driver()
        for n in 0..<10_000 {
            let id = callID(10 + n)
            d.advance(by: 1)
            switch n % 9 {
            case 0:
                d.ringBob(id)
                _ = d.cancel(id, from: alicePhone)
            case 1:
                d.ringBob(id)
                _ = d.accept(id, blob("a"), from: bobPhone)
                _ = d.end(id, from: bobPhone)
            case 2:
                d.ringBob(id)
                _ = d.reject(id, from: bobLaptop)
            case 3:
                d.ringBob(id)
                _ = d.busy(id, from: bobLaptop)
                _ = d.busy(id, from: bobPhone)
            case 4:
                _ = d.call(id, from: alicePhone, to: "bob", online: [])
            case 5:
                d.ringBob(id)
                _ = d.fire(at: d.now + d.ringTimeout)
            case 6:
                d.ringBob(id)
                _ = d.disconnect(bobLaptop)
                _ = d.disconnect(bobPhone)
                _ = d.fire(at: d.now + d.grace)
                _ = d.reconnect(bobLaptop)
                _ = d.reconnect(bobPhone)
            case 7:
                d.ringBob(id)
                _ = d.accept(id, blob("a"), from: bobPhone)
                _ = d.disconnect(alicePhone)
                _ = d.disconnect(bobPhone)
                _ = d.fire(at: d.now + d.grace)
                _ = d.reconnect(alicePhone)
                _ = d.reconnect(bobPhone)
            default:
                d.ringBob(id)
                let counter = callID(1_000_000 + n)
                _ = d.call(counter, from: bobPhone, to: "alice", online: ["phone"])
                _ = d.cancel(id, from: alicePhone)
            }
            XCTAssertEqual(d.book.count, 0, "call \(n) left behind")
        }
        assertNoLiveCalls(&d.book)
        XCTAssertEqual(d.book.queuedDeadlines, 0)
        XCTAssertLessThanOrEqual(d.book.rememberedEndedCount, d.book.configuration.endedCapacity)
        XCTAssertGreaterThan(d.book.rememberedEndedCount, 0)
        // The memory of ended calls runs out with its retention.
        _ = d.fire(at: d.now + d.book.configuration.endedRetention)
        XCTAssertEqual(d.book.rememberedEndedCount, 0)
    }

    func testTheMemoryOfEndedCallsIsBoundedByCount() {
        var d = Driver(CallBookConfiguration(endedCapacity: 3))
        let ids = (1...5).map(callID)
        for id in ids { _ = d.call(id, from: alicePhone, to: "bob", online: []) }
        XCTAssertEqual(d.book.rememberedEndedCount, 3)
        // The two oldest are forgotten: unknown, and their ids are free again.
        XCTAssertEqual(d.cancel(ids[0], from: alicePhone), [unknownCall])
        XCTAssertEqual(d.cancel(ids[1], from: alicePhone), [unknownCall])
        XCTAssertEqual(d.cancel(ids[2], from: alicePhone), [nak(.ended, "offline")])
        XCTAssertEqual(d.call(ids[0], from: alicePhone, to: "bob", online: []).first, ack)
        XCTAssertEqual(d.book.rememberedEndedCount, 3)
    }

    func testEndedCallMemoryForgetsInOrderAcrossCompaction() {
        var memory = EndedCallMemory(retention: 100, capacity: 1_000)
        let call = EndedCall(caller: alice, callee: bob, reason: .hangup)
        for n in 0..<500 { memory.remember(callID(n), call, now: UInt64(n)) }
        memory.forgetExpired(now: 399)
        XCTAssertEqual(memory.count, 200)
        XCTAssertNil(memory[callID(299)])
        XCTAssertEqual(memory[callID(300)], call)
        for n in 500..<700 { memory.remember(callID(n), call, now: UInt64(n)) }
        memory.forgetExpired(now: 699)
        XCTAssertEqual(memory.count, 100)
        XCTAssertEqual(memory[callID(600)], call)
        memory.forgetExpired(now: 10_000)
        XCTAssertEqual(memory.count, 0)
    }

    func testDeadlineQueuePopsInTimeThenIdOrder() {
        var queue = CallDeadlineQueue()
        var expected: [CallDeadlineQueue.Entry] = []
        var generator = SystemRandomNumberGenerator()
        for n in 0..<300 {
            let entry = CallDeadlineQueue.Entry(deadline: UInt64.random(in: 0..<50, using: &generator), call: callID(n))
            queue.insert(entry)
            expected.append(entry)
        }
        var popped: [CallDeadlineQueue.Entry] = []
        while let entry = queue.removeFirst() { popped.append(entry) }
        XCTAssertEqual(popped, expected.sorted())
    }

    func testCallCommandsFromParsedVerbs() {
        let online = { (callee: SignalName) in callee == self.bob ? [SignalName("phone")!] : [] }
        XCTAssertEqual(CallCommand(.call(call: x, callee: bob, offer: offer), onlineDevicesOf: online),
                       .call(x, callee: bob, offer: offer, onlineDevices: [SignalName("phone")!]))
        XCTAssertEqual(CallCommand(.call(call: x, callee: alice, offer: offer), onlineDevicesOf: online),
                       .call(x, callee: alice, offer: offer, onlineDevices: []))
        XCTAssertEqual(CallCommand(.cancel(call: x), onlineDevicesOf: online), .cancel(x))
        XCTAssertEqual(CallCommand(.prepare(call: x, answer: offer), onlineDevicesOf: online),
                       .prepare(x, answer: offer))
        XCTAssertEqual(CallCommand(.candidate(call: x, candidate: offer), onlineDevicesOf: online),
                       .candidate(x, candidate: offer))
        XCTAssertEqual(CallCommand(.accept(call: x, answer: nil), onlineDevicesOf: online), .accept(x, answer: nil))
        XCTAssertEqual(CallCommand(.reject(call: x), onlineDevicesOf: online), .reject(x))
        XCTAssertEqual(CallCommand(.busy(call: x), onlineDevicesOf: online), .busy(x))
        XCTAssertEqual(CallCommand(.end(call: x), onlineDevicesOf: online), .end(x))
        XCTAssertNil(CallCommand(.keys(user: bob), onlineDevicesOf: online))
        XCTAssertNil(CallCommand(.message(id: y, to: bob, sealed: []), onlineDevicesOf: online))
        XCTAssertEqual(CallCommand.end(y).call, y)
    }

    /// Log lines name calls, users and devices, never offers, answers or candidates.
    func testLogLinesCarryNoOffersAnswersOrCandidates() {
        var d = Driver()
        var actions = d.call(x, from: alicePhone, to: "bob", offer: blob("SECRET-OFFER"), online: ["laptop", "phone"])
        actions += d.cand(x, blob("SECRET-CAND-A"), from: alicePhone)
        actions += d.prepare(x, blob("SECRET-ANSWER"), from: bobLaptop)
        actions += d.cand(x, blob("SECRET-CAND-B"), from: bobLaptop)
        actions += d.call(y, from: bobPhone, to: "alice", offer: blob("SECRET-OFFER-2"), online: ["phone"])
        actions += d.accept(x, from: bobLaptop)
        actions += d.cand(x, blob("SECRET-CAND-C"), from: alicePhone)
        actions += d.end(x, from: bobLaptop)
        let lines = actions.compactMap { if case .log(let event) = $0 { event.description } else { nil } }
        XCTAssertEqual(lines, [
            "call 00000000-0000-4000-8000-000000000001 started alice/phone -> bob",
            "call 00000000-0000-4000-8000-000000000001 rang 2 devices",
            "call 00000000-0000-4000-8000-000000000002 merged into 00000000-0000-4000-8000-000000000001",
            "call 00000000-0000-4000-8000-000000000001 answered on laptop",
            "call 00000000-0000-4000-8000-000000000001 ended hangup",
        ])
        let secrets = ["SECRET", blob("SECRET-OFFER").text, blob("SECRET-ANSWER").text, blob("SECRET-CAND-A").text]
        for line in lines {
            for secret in secrets { XCTAssertFalse(line.contains(secret), line) }
        }
    }
}
