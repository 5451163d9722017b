import Foundation
import ParleyCrypto
import ParleyStore
import XCTest

/// Base of the store tests: a fresh temporary directory per test, removed afterwards, and helpers to
/// open stores in it and to make device bundles.
class StoreTestCase: XCTestCase {
    /// This test's directory.
    var directory: URL!
    /// Stores opened with ``openStore(quota:)``, closed in tearDown.
    private var opened: [SQLiteSignalStore] = []

    /// The store file every ``openStore(quota:)`` of this test opens.
    var storePath: String { directory.appendingPathComponent("parley.sqlite").path }

    /// A fixed instant, so stored times are predictable.
    let t0 = Date(timeIntervalSince1970: 1_795_435_200)

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("parley-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        for store in opened { try? store.close() }
        opened = []
        try? FileManager.default.removeItem(at: directory)
    }

    /// Opens (or reopens) the store at ``storePath``.
    func openStore(quota: Int64 = SQLiteSignalStore.defaultMailboxQuota) throws -> SQLiteSignalStore {
        let store = try SQLiteSignalStore(path: storePath, mailboxQuota: quota)
        opened.append(store)
        return store
    }

    /// A fresh, valid device bundle in printable form.
    func newBundle() -> String { DeviceIdentity.generate().publicBundle.encoded }

    /// `bundle` with one character of its signature part changed, so it still decodes but does not verify.
    func forged(_ bundle: String) -> String {
        var chars = Array(bundle)
        let i = chars.count - 10
        chars[i] = chars[i] == "A" ? "B" : "A"
        return String(chars)
    }

    /// Asserts that `body` throws a ``SignalStoreError`` with `code`.
    func assertStoreError(
        _ code: SignalStoreError.Code, file: StaticString = #filePath, line: UInt = #line,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            XCTFail("expected \(code), nothing was thrown", file: file, line: line)
        } catch let error as SignalStoreError {
            XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        } catch {
            XCTFail("expected \(code), got \(error)", file: file, line: line)
        }
    }

    /// A message from alice.phone to bob with one copy per `devices`, each `size` bytes of ciphertext.
    func message(
        _ id: String = UUID().uuidString.lowercased(), to devices: [String] = ["laptop"], size: Int = 10,
        cseq: Int64? = nil
    ) -> OutgoingMessage {
        OutgoingMessage(
            id: id, senderUser: "alice", senderDevice: "phone", recipient: "bob",
            copies: devices.map { SealedCopy(device: $0, ciphertext: String(repeating: "x", count: size)) },
            cseq: cseq
        )
    }
}
