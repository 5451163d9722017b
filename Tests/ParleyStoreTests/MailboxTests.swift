import Foundation
import ParleyStore
import XCTest

/// Offline sealed messages (§3.6) and per-device event numbers (§3.4).
final class MailboxTests: StoreTestCase {
    func testEnqueuePendingAcknowledge() async throws {
        let store = try openStore()
        var receipts: [MessageReceipt] = []
        for i in 0..<3 {
            let outgoing = OutgoingMessage(
                id: "00000000-0000-4000-8000-00000000000\(i)", senderUser: "alice", senderDevice: "phone",
                recipient: "bob",
                copies: [
                    SealedCopy(device: "laptop", ciphertext: "L\(i)"), SealedCopy(device: "phone", ciphertext: "P\(i)"),
                ]
            )
            receipts.append(try await store.enqueueMessage(outgoing, at: t0.addingTimeInterval(Double(i))))
        }
        XCTAssertEqual(receipts.map(\.isDuplicate), [false, false, false])
        let expected = [MessageDelivery(device: "laptop", sseq: 3), MessageDelivery(device: "phone", sseq: 3)]
        XCTAssertEqual(receipts[2].deliveries, expected)
        XCTAssertEqual(receipts[1].storedAt, t0.addingTimeInterval(1))

        let laptop = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 100)
        XCTAssertEqual(laptop.map(\.sseq), [1, 2, 3])
        XCTAssertEqual(laptop.map(\.ciphertext), ["L0", "L1", "L2"])
        XCTAssertEqual(laptop[1], PendingMessage(
            sseq: 2, id: "00000000-0000-4000-8000-000000000001", senderUser: "alice", senderDevice: "phone",
            storedAt: t0.addingTimeInterval(1), ciphertext: "L1"
        ))
        let afterOne = try await store.pendingMessages(user: "bob", device: "laptop", after: 1, limit: 1)
        XCTAssertEqual(afterOne.map(\.sseq), [2])

        let deleted = try await store.acknowledge(user: "bob", device: "laptop", upTo: 2)
        XCTAssertEqual(deleted, 2)
        let left = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 100)
        XCTAssertEqual(left.map(\.sseq), [3])
        // The other device's copies are its own.
        let phone = try await store.pendingMessages(user: "bob", device: "phone", after: 0, limit: 100)
        XCTAssertEqual(phone.map(\.ciphertext), ["P0", "P1", "P2"])
        let again = try await store.acknowledge(user: "bob", device: "laptop", upTo: 2)
        XCTAssertEqual(again, 0)
    }

    func testEventNumbersAreSharedByCallEventsAndMail() async throws {
        let store = try openStore()
        let first = try await store.nextEventSeq(user: "bob", device: "laptop")
        let second = try await store.nextEventSeq(user: "bob", device: "laptop")
        let mail = try await store.enqueueMessage(message(to: ["laptop", "phone"]), at: t0)
        let third = try await store.nextEventSeq(user: "bob", device: "laptop")
        let otherUser = try await store.nextEventSeq(user: "carol", device: "laptop")
        XCTAssertEqual([first, second], [1, 2])
        XCTAssertEqual(mail.deliveries.map(\.sseq), [3, 1])
        XCTAssertEqual(third, 4)
        XCTAssertEqual(otherUser, 1)
    }

    func testEventNumbersSurviveDeletionAndReopen() async throws {
        do {
            let store = try openStore()
            for _ in 0..<3 { _ = try await store.enqueueMessage(message(), at: t0) }
            let deleted = try await store.acknowledge(user: "bob", device: "laptop", upTo: 3)
            XCTAssertEqual(deleted, 3)
            let reserved = try await store.nextEventSeq(user: "bob", device: "laptop")
            XCTAssertEqual(reserved, 4, "numbers of deleted mail are not reused")
            try store.close()
        }
        let reopened = try openStore()
        let receipt = try await reopened.enqueueMessage(message(), at: t0)
        XCTAssertEqual(receipt.deliveries.map(\.sseq), [5])
        let next = try await reopened.nextEventSeq(user: "bob", device: "laptop")
        XCTAssertEqual(next, 6)
    }

    func testResentMessageIdIsStoredOnce() async throws {
        let store = try openStore()
        let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        let first = try await store.enqueueMessage(message(id, to: ["laptop", "phone"]), at: t0)
        _ = try await store.acknowledge(user: "bob", device: "laptop", upTo: 1)

        // Resent after a reconnect, later, even with other content: the first receipt, nothing stored.
        let resent = try await store.enqueueMessage(message(id, to: ["tablet"], size: 99), at: t0 + 60)
        XCTAssertTrue(resent.isDuplicate)
        XCTAssertFalse(first.isDuplicate)
        XCTAssertEqual(resent.deliveries, first.deliveries)
        XCTAssertEqual(resent.storedAt, t0)
        let laptop = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 10)
        let phone = try await store.pendingMessages(user: "bob", device: "phone", after: 0, limit: 10)
        let tablet = try await store.pendingMessages(user: "bob", device: "tablet", after: 0, limit: 10)
        XCTAssertEqual([laptop.count, phone.count, tablet.count], [0, 1, 0])
        let next = try await store.nextEventSeq(user: "bob", device: "laptop")
        XCTAssertEqual(next, 2, "a duplicate takes no event number")

        // The same id from another sender device is another message.
        var fromLaptop = message(id)
        fromLaptop.senderDevice = "laptop"
        let other = try await store.enqueueMessage(fromLaptop, at: t0)
        XCTAssertFalse(other.isDuplicate)
    }

    func testMailboxQuota() async throws {
        let store = try openStore(quota: 100)
        _ = try await store.enqueueMessage(message(to: ["laptop", "phone"], size: 40), at: t0)  // 80 bytes
        await assertStoreError(.quotaExceeded) {
            _ = try await store.enqueueMessage(self.message(to: ["laptop"], size: 21, cseq: 9), at: self.t0)
        }
        // The refused message left no trace: no copy, no event number, no cseq.
        let pending = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 10)
        XCTAssertEqual(pending.count, 1)
        let cseq = try await store.lastProcessedCSeq(user: "alice", device: "phone")
        XCTAssertEqual(cseq, 0)
        let usage = try await store.mailboxUsage(of: "bob")
        XCTAssertEqual(usage, 80)

        _ = try await store.enqueueMessage(message(to: ["laptop"], size: 20), at: t0)  // exactly full
        var toCarol = message(size: 100)
        toCarol.recipient = "carol"
        _ = try await store.enqueueMessage(toCarol, at: t0)  // another user's mailbox
        _ = try await store.acknowledge(user: "bob", device: "phone", upTo: 1)
        let receipt = try await store.enqueueMessage(message(to: ["laptop"], size: 40), at: t0)
        XCTAssertEqual(receipt.deliveries.map(\.sseq), [3])
    }

    func testInvalidMessages() async throws {
        let store = try openStore()
        await assertStoreError(.invalidMessage) {
            _ = try await store.enqueueMessage(self.message(to: []), at: self.t0)
        }
        await assertStoreError(.invalidMessage) {
            _ = try await store.purgeExpired(now: self.t0, ttl: .seconds(-1))
        }
        await assertStoreError(.invalidMessage) {
            _ = try await store.enqueueMessage(self.message(to: ["laptop", "laptop"]), at: self.t0)
        }
        let none = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 0)
        XCTAssertTrue(none.isEmpty)
    }

    func testPurgeExpired() async throws {
        let store = try openStore()
        let day: TimeInterval = 86_400
        let oldMessage = message("00000000-0000-4000-8000-000000000001", to: ["laptop", "phone"])
        let old = try await store.enqueueMessage(oldMessage, at: t0)
        _ = try await store.enqueueMessage(message("00000000-0000-4000-8000-000000000002"), at: t0 + 10 * day)
        _ = try await store.acknowledge(user: "bob", device: "phone", upTo: 1)

        let early = try await store.purgeExpired(now: t0 + 30 * day - 1, ttl: .seconds(30 * 86_400))
        XCTAssertEqual(early, 0)
        let purged = try await store.purgeExpired(now: t0 + 30 * day, ttl: .seconds(30 * 86_400))
        XCTAssertEqual(purged, 1, "one undelivered copy (laptop) of the old message")
        let laptop = try await store.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 10)
        XCTAssertEqual(laptop.map(\.id), ["00000000-0000-4000-8000-000000000002"])

        // Once forgotten, the id is new again, with fresh numbers.
        let again = try await store.enqueueMessage(message("00000000-0000-4000-8000-000000000001"), at: t0 + 31 * day)
        XCTAssertFalse(again.isDuplicate)
        XCTAssertNotEqual(again.deliveries, old.deliveries)
    }

    func testCSeqRecordedWithTheMessage() async throws {
        let store = try openStore()
        _ = try await store.enqueueMessage(message(cseq: 7), at: t0)
        let last = try await store.lastProcessedCSeq(user: "alice", device: "phone")
        XCTAssertEqual(last, 7)
        let outcome = try await store.recordProcessedCSeq(7, user: "alice", device: "phone")
        XCTAssertEqual(outcome, .duplicate(last: 7))
    }
}
