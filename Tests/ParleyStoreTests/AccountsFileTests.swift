import Foundation
import ParleyCrypto
import ParleyStore
import XCTest

/// The accounts file parser (errors with file:line) and its merge with the store.
final class AccountsFileTests: StoreTestCase {
    func testParsesDevicesCommentsAndBlankLines() throws {
        let phone = newBundle()
        let laptop = newBundle()
        let bob = newBundle()
        let text = """
            # Accounts served in addition to the store.

            alice.phone = \(phone)
              alice.laptop=\(laptop)   # inline comment\r
            #bob.old = parley1.whatever
            bob.default\t=\t\(bob)
            """
        let snapshot = try AccountsFile.parse(text, path: "accounts.conf")
        XCTAssertEqual(snapshot.users.keys.sorted(), ["alice", "bob"])
        XCTAssertEqual(snapshot.users["alice"]?["phone"]?.encoded, phone)
        XCTAssertEqual(snapshot.users["alice"]?["laptop"]?.encoded, laptop)
        XCTAssertEqual(snapshot.users["bob"]?["default"]?.encoded, bob)
        XCTAssertEqual(snapshot.line(user: "alice", device: "laptop"), 4)
        XCTAssertEqual(snapshot.line(user: "bob", device: "default"), 6)
        XCTAssertNil(snapshot.line(user: "bob", device: "old"))
    }

    func testEmptyFile() throws {
        XCTAssertEqual(try AccountsFile.parse("", path: "a").users, [:])
        XCTAssertEqual(try AccountsFile.parse("# nothing\n\n   \n", path: "a").users, [:])
    }

    func testErrorsNameFileAndLine() {
        let good = newBundle()
        let cases: [(text: String, code: AccountsFileError.Code, line: Int, mentions: String)] = [
            ("# ok\nalice.phone \(good)\n", .syntax, 2, "USER.DEVICE = BUNDLE"),
            ("alice = \(good)", .syntax, 1, "USER.DEVICE"),
            ("\n\nj.doe.phone = \(good)", .syntax, 3, "ambiguous"),
            (".phone = \(good)", .invalidName, 1, "user name ''"),
            ("Alice.phone = \(good)", .invalidName, 1, "user name 'Alice'"),
            ("alice.my_phone! = \(good)", .invalidName, 1, "device name 'my_phone!'"),
            ("alice.phone =   # forgot it", .invalidBundle, 1, "missing"),
            ("alice.phone = parley1.!!!", .invalidBundle, 1, "base64url"),
            ("alice.phone = parley2.AAAA", .invalidBundle, 1, "parley1."),
            ("alice.phone = \(forged(good))", .invalidBundle, 1, "signature"),
            ("alice.phone = \(good) trailing", .invalidBundle, 1, "alice.phone"),
            ("alice.phone = \(good)\nbob.phone = \(newBundle())\n# x\nalice.phone = \(newBundle())",
             .duplicate, 4, "first on line 1"),
        ]
        for (text, code, line, mentions) in cases {
            do {
                let snapshot = try AccountsFile.parse(text, path: "/etc/parley/accounts.conf")
                XCTFail("accepted \(text.debugDescription): \(snapshot.users.keys)")
            } catch {
                XCTAssertEqual(error.code, code, "\(error)")
                XCTAssertEqual(error.line, line, "\(error)")
                XCTAssertTrue(error.description.hasPrefix("/etc/parley/accounts.conf:\(line): "), "\(error)")
                XCTAssertTrue(error.description.contains(mentions), "\(error) should mention \(mentions)")
            }
        }
    }

    func testErrorsNeverQuoteAWholeBundle() {
        let bundle = newBundle()
        do {
            _ = try AccountsFile.parse("a.b = \(bundle)\na.b = \(bundle)", path: "f")
            XCTFail("duplicate accepted")
        } catch {
            XCTAssertFalse(error.description.contains(bundle), "\(error)")
        }
    }

    func testLoadMissingFile() {
        let path = directory.appendingPathComponent("missing.conf").path
        XCTAssertThrowsError(try AccountsFile.load(path: path)) { error in
            XCTAssertEqual((error as? AccountsFileError)?.code, .unreadable)
            XCTAssertTrue("\(error)".hasPrefix(path + ": "), "\(error)")
        }
    }

    func testLoadReadsTheFile() throws {
        let path = directory.appendingPathComponent("accounts.conf").path
        let bundle = newBundle()
        try "carol.phone = \(bundle)\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try AccountsFile.load(path: path).users["carol"]?["phone"]?.encoded, bundle)
    }

    // MARK: Merge with the store

    func testMergeIsTheUnionAndAgreeingDuplicatesAreFine() async throws {
        let store = try openStore()
        let shared = newBundle()
        let stored = newBundle()
        try await store.addUser("alice", at: t0)
        try await store.addDevice("phone", to: "alice", bundle: shared, at: t0)
        try await store.addDevice("laptop", to: "alice", bundle: stored, at: t0)
        let fileOnly = newBundle()
        let file = try AccountsFile.parse("alice.phone = \(shared)\nbob.default = \(fileOnly)\n", path: "a.conf")

        let table = try AccountTable.merge(store: try await store.accounts(), file: file)
        XCTAssertEqual(table.users.mapValues { $0.keys.sorted() }, ["alice": ["laptop", "phone"], "bob": ["default"]])
        XCTAssertEqual(table.device(user: "alice", device: "laptop")?.encoded, stored)
        XCTAssertEqual(table.devices(of: "bob").map(\.bundle.encoded), [fileOnly])
        XCTAssertEqual(table.ignored, [])
        let storeOnly = try AccountTable.merge(store: try await store.accounts(), file: nil)
        XCTAssertEqual(storeOnly.users.count, 1)
    }

    func testMergeRefusesADeviceWithTwoDifferentKeys() async throws {
        let store = try openStore()
        try await store.addUser("alice", at: t0)
        try await store.addDevice("phone", to: "alice", bundle: newBundle(), at: t0)
        let file = try AccountsFile.parse("# x\nalice.phone = \(newBundle())\n", path: "a.conf")
        let accounts = try await store.accounts()
        XCTAssertThrowsError(try AccountTable.merge(store: accounts, file: file)) { error in
            XCTAssertEqual((error as? AccountsFileError)?.code, .conflict)
            XCTAssertTrue("\(error)".hasPrefix("a.conf:2: alice.phone has a different key"), "\(error)")
        }
    }

    func testMergeKeepsStoreRevocations() async throws {
        let store = try openStore()
        let phone = newBundle()
        try await store.addUser("alice", at: t0)
        try await store.addDevice("phone", to: "alice", bundle: phone, at: t0)
        try await store.revokeDevice("phone", of: "alice", at: t0)
        try await store.addUser("bob", at: t0)
        try await store.revokeUser("bob", at: t0)
        let laptop = newBundle()
        let file = try AccountsFile.parse(
            "alice.phone = \(phone)\nalice.laptop = \(laptop)\nbob.new = \(newBundle())\n", path: "a.conf")

        let table = try AccountTable.merge(store: try await store.accounts(), file: file)
        XCTAssertEqual(table.users, ["alice": ["laptop": try DevicePublicBundle(encoded: laptop)]])
        XCTAssertEqual(table.ignored, [
            "a.conf:1: device alice.phone is revoked in the store; line ignored",
            "a.conf:3: user bob is revoked in the store; line ignored",
        ])
    }
}
