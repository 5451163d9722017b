import ParleySignal
import ParleyWire
import XCTest

/// ``DeviceQueue`` on its own (docs/PROTOCOL.md §3.4): numbering, cumulative acknowledgement, replay
/// order, and the full queue.
final class QueueTests: SessionTestCase {
    let call = SignalID("7c9e6679-7425-40de-944b-e07fc1f90ae7")!

    private func queue(last: UInt64 = 0, capacity: Int = 1024) -> DeviceQueue {
        DeviceQueue(user: n("bob"), device: n("laptop"), lastSSeq: last, capacity: capacity)
    }

    private func ended(_ reason: SignalEvent.EndReason = .hangup) -> SignalEvent { .ended(call: call, reason: reason) }

    func testNumbersContinueAPersistedCounter() {
        var q = queue(last: 41)
        XCTAssertEqual(q.enqueue(ended(), now: 1000), .queued(.event(sseq: 42, timestamp: 1000, event: ended())))
        XCTAssertEqual(
            q.enqueue(ended(.busy), now: 1001), .queued(.event(sseq: 43, timestamp: 1001, event: ended(.busy))))
        XCTAssertEqual(q.lastSSeq, 43)
        var fresh = queue()
        XCTAssertEqual(fresh.enqueue(ended(), now: 0), .queued(.event(sseq: 1, timestamp: 0, event: ended())))
    }

    func testCumulativeAcknowledgement() {
        var q = queue()
        for i in 0..<6 { _ = q.enqueue(ended(), now: UInt64(i)) }
        XCTAssertEqual(q.acknowledge(upTo: 4).map(\.sseq), [1, 2, 3, 4])
        XCTAssertEqual(q.acknowledge(upTo: 2).map(\.sseq), [], "an older got acknowledges nothing new")
        XCTAssertEqual(q.acknowledge(upTo: 4).map(\.sseq), [])
        XCTAssertEqual(q.events.map(\.sseq), [5, 6])
        XCTAssertEqual(
            q.unacknowledged,
            [.event(sseq: 5, timestamp: 4, event: ended()), .event(sseq: 6, timestamp: 5, event: ended())])
        // A got beyond anything sent clears what exists, and later events are numbered on regardless.
        XCTAssertEqual(q.acknowledge(upTo: 1_000).map(\.sseq), [5, 6])
        XCTAssertTrue(q.isEmpty)
        XCTAssertEqual(q.enqueue(ended(), now: 9), .queued(.event(sseq: 7, timestamp: 9, event: ended())))
        XCTAssertEqual(q.count, 1)
    }

    func testReplayIsEveryUnacknowledgedEventInOrder() {
        var q = queue()
        let events: [SignalEvent] = [
            .ring(call: call, caller: n("alice"), callerDevice: n("phone"), offer: SignalBlob("b2ZmZXI")!),
            .candidate(call: call, user: n("alice"), device: n("phone"), candidate: SignalBlob("Y2FuZDE")!),
            .elsewhere(call: call, device: n("phone")), ended(),
        ]
        for (i, e) in events.enumerated() { _ = q.enqueue(e, now: 100 + UInt64(i)) }
        q.acknowledge(upTo: 1)
        XCTAssertEqual(
            q.unacknowledged.map(SignalCodec.format),
            [
                "ev|2|101|cand|\(call)|alice|phone|Y2FuZDE", "ev|3|102|elsewhere|\(call)|phone",
                "ev|4|103|ended|\(call)|hangup",
            ])
        // Replay does not consume: a second login gets the same frames.
        XCTAssertEqual(q.unacknowledged.count, 3)
    }

    func testFullQueueRefusesNewEventsWithoutLosingAny() {
        var q = queue(capacity: 3)
        for i in 0..<3 { XCTAssertNotEqual(q.enqueue(ended(), now: UInt64(i)), .full) }
        XCTAssertEqual(q.enqueue(ended(.busy), now: 10), .full)
        XCTAssertEqual(q.lastSSeq, 3, "a refused event uses no number")
        XCTAssertEqual(q.events.map(\.sseq), [1, 2, 3])
        q.acknowledge(upTo: 1)
        XCTAssertEqual(q.enqueue(ended(.busy), now: 11), .queued(.event(sseq: 4, timestamp: 11, event: ended(.busy))))
        XCTAssertEqual(q.enqueue(ended(), now: 12), .full)
    }

    func testNumbersChosenByTheStore() {
        var q = queue(last: 10)
        XCTAssertEqual(q.enqueue(ended(), sseq: 10, now: 0), .outOfOrder)
        XCTAssertEqual(q.enqueue(ended(), sseq: 15, now: 0), .queued(.event(sseq: 15, timestamp: 0, event: ended())))
        XCTAssertEqual(q.enqueue(ended(), sseq: 12, now: 0), .outOfOrder, "numbers never go back")
        XCTAssertEqual(q.enqueue(ended(), now: 1), .queued(.event(sseq: 16, timestamp: 1, event: ended())))
        var exhausted = queue(last: .max)
        XCTAssertEqual(exhausted.enqueue(ended(), now: 0), .outOfOrder)
    }

    /// Many rounds of enqueue and acknowledge (the storage compacts as it goes) keep order and count.
    func testLongRunKeepsOrder() {
        var q = queue(capacity: 100)
        var expected: [UInt64] = []
        var next: UInt64 = 1
        for round in 0..<500 {
            for _ in 0..<(round % 7) {
                if q.enqueue(ended(), now: next) != .full {
                    expected.append(next)
                    next += 1
                }
            }
            let upTo = next > 3 ? next - UInt64(round % 4) : 0
            let acked = q.acknowledge(upTo: upTo).map(\.sseq)
            XCTAssertEqual(acked, expected.filter { $0 <= upTo })
            expected.removeAll { $0 <= upTo }
            XCTAssertEqual(q.events.map(\.sseq), expected)
        }
        XCTAssertEqual(q.count, expected.count)
    }
}
