import Foundation
import XCTest

@testable import ParleyStore

#if canImport(Glibc)
import Glibc
#endif

/// What must survive: the command sequence across reopen, acknowledged mail across an unclean end
/// (a store never closed, and a real kill -9), the file's mode and the SQLite settings behind that.
final class DurabilityTests: StoreTestCase {
    func testCSeqPersistsAcrossReopen() async throws {
        do {
            let store = try openStore()
            let fresh = try await store.lastProcessedCSeq(user: "alice", device: "phone")
            XCTAssertEqual(fresh, 0)
            for cseq: Int64 in [1, 2, 5] {
                let outcome = try await store.recordProcessedCSeq(cseq, user: "alice", device: "phone")
                XCTAssertEqual(outcome, .recorded)
            }
            let resent = try await store.recordProcessedCSeq(3, user: "alice", device: "phone")
            XCTAssertEqual(resent, .duplicate(last: 5))
            try store.close()
        }
        let reopened = try openStore()
        let last = try await reopened.lastProcessedCSeq(user: "alice", device: "phone")
        XCTAssertEqual(last, 5)
        let again = try await reopened.recordProcessedCSeq(5, user: "alice", device: "phone")
        XCTAssertEqual(again, .duplicate(last: 5))
        let other = try await reopened.lastProcessedCSeq(user: "alice", device: "laptop")
        XCTAssertEqual(other, 0)
    }

    func testConcurrentRecordsOfOneCSeqRecordItOnce() async throws {
        let store = try openStore()
        let outcomes = try await withThrowingTaskGroup(of: CSeqOutcome.self) { group in
            for _ in 0..<8 { group.addTask { try await store.recordProcessedCSeq(1, user: "a", device: "b") } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(outcomes.filter { $0 == .recorded }.count, 1)
    }

    func testFileModeJournalAndSynchronous() async throws {
        let store = try openStore()
        _ = try await store.enqueueMessage(message(), at: t0)
        for suffix in ["", "-wal", "-shm"] {
            var info = stat()
            XCTAssertEqual(stat(storePath + suffix, &info), 0, "\(suffix) exists")
            XCTAssertEqual(info.st_mode & 0o777, 0o600, "mode of parley.sqlite\(suffix)")
        }
        let settings = try await store.write("test") { db in
            (
                journal: try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                synchronous: try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                foreignKeys: try Int.fetchOne(db, sql: "PRAGMA foreign_keys")
            )
        }
        XCTAssertEqual(settings.journal, "wal")
        XCTAssertEqual(settings.synchronous, 2, "FULL")
        XCTAssertEqual(settings.foreignKeys, 1)
    }

    func testRefusesASchemaFromTheFuture() async throws {
        let store = try openStore()
        try await store.write("test") { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')")
        }
        try store.close()
        XCTAssertThrowsError(try openStore()) { error in
            XCTAssertEqual((error as? SignalStoreError)?.code, .schemaTooNew, "\(error)")
        }
    }

    func testUnopenableFileIsAStorageError() {
        XCTAssertThrowsError(try SQLiteSignalStore(path: directory.path + "/no/such/dir/x.sqlite")) { error in
            XCTAssertEqual((error as? SignalStoreError)?.code, .storageFailed, "\(error)")
        }
    }

    /// The unclean end simulated in-process: the first store is never closed, a second one opens the
    /// same file as a restarted server would and finds every message the first acknowledged.
    func testAcknowledgedMailIsVisibleToAFreshStoreWithoutClosing() async throws {
        let first = try openStore()
        var acknowledged: [String: Int64] = [:]
        for _ in 0..<50 {
            let outgoing = message()
            acknowledged[outgoing.id] = try await first.enqueueMessage(outgoing, at: t0).deliveries[0].sseq
        }
        let second = try openStore()
        let pending = try await second.pendingMessages(user: "bob", device: "laptop", after: 0, limit: 1000)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: pending.map { ($0.id, $0.sseq) }), acknowledged)
        let next = try await second.nextEventSeq(user: "bob", device: "laptop")
        XCTAssertEqual(next, 51)
    }
}
