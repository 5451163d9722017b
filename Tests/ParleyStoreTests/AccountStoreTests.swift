import Foundation
import ParleyCrypto
import ParleyStore
import XCTest

/// Accounts in the SQLite store: adding, listing, lookups, revocation, refusals.
final class AccountStoreTests: StoreTestCase {
    func testAddListAndLookUp() async throws {
        let store = try openStore()
        let phone = newBundle()
        let laptop = newBundle()
        try await store.addUser("alice", at: t0)
        try await store.addDevice("phone", to: "alice", bundle: phone, at: t0)
        try await store.addDevice("laptop", to: "alice", bundle: laptop, at: t0.addingTimeInterval(1))
        try await store.addUser("bob", at: t0)

        let accounts = try await store.accounts()
        XCTAssertEqual(accounts.map(\.name), ["alice", "bob"])
        XCTAssertEqual(accounts[0].devices.map(\.name), ["laptop", "phone"])
        XCTAssertEqual(accounts[0].devices[1].bundle, phone)
        XCTAssertEqual(accounts[0].devices[0].addedAt, t0.addingTimeInterval(1))
        XCTAssertNil(accounts[0].revokedAt)
        XCTAssertEqual(accounts[1].devices, [])

        let found = try await store.activeDevice(user: "alice", device: "phone")
        XCTAssertEqual(found?.encoded, phone)
        let missing = try await store.activeDevice(user: "alice", device: "tablet")
        XCTAssertNil(missing)
        let devices = try await store.activeDevices(of: "alice")
        XCTAssertEqual(devices.map(\.name), ["laptop", "phone"])
        XCTAssertEqual(devices.map(\.bundle.encoded), [laptop, phone])
        let none = try await store.activeDevices(of: "nobody")
        XCTAssertTrue(none.isEmpty)
    }

    func testRefusals() async throws {
        let store = try openStore()
        try await store.addUser("alice", at: t0)
        let bundle = newBundle()
        try await store.addDevice("phone", to: "alice", bundle: bundle, at: t0)

        await assertStoreError(.invalidName) { try await store.addUser("Alice", at: self.t0) }
        await assertStoreError(.invalidName) { try await store.addUser("", at: self.t0) }
        await assertStoreError(.invalidName) { try await store.addUser(".alice", at: self.t0) }
        await assertStoreError(.invalidName) { try await store.addUser(String(repeating: "a", count: 33), at: self.t0) }
        await assertStoreError(.invalidName) {
            try await store.addDevice("my phone", to: "alice", bundle: self.newBundle(), at: self.t0)
        }
        await assertStoreError(.userExists) { try await store.addUser("alice", at: self.t0) }
        await assertStoreError(.deviceExists) {
            try await store.addDevice("phone", to: "alice", bundle: self.newBundle(), at: self.t0)
        }
        await assertStoreError(.unknownUser) {
            try await store.addDevice("phone", to: "carol", bundle: self.newBundle(), at: self.t0)
        }
        await assertStoreError(.invalidBundle) {
            try await store.addDevice("laptop", to: "alice", bundle: "parley1.nope", at: self.t0)
        }
        await assertStoreError(.invalidBundle) {
            try await store.addDevice("laptop", to: "alice", bundle: self.forged(self.newBundle()), at: self.t0)
        }
        await assertStoreError(.unknownDevice) { try await store.revokeDevice("tablet", of: "alice", at: self.t0) }
        await assertStoreError(.unknownUser) { try await store.revokeUser("carol", at: self.t0) }
        // Nothing of the refused calls was stored.
        let accounts = try await store.accounts()
        XCTAssertEqual(accounts.map(\.name), ["alice"])
        XCTAssertEqual(accounts[0].devices.map(\.name), ["phone"])
        XCTAssertEqual(accounts[0].devices[0].bundle, bundle)
    }

    func testRevokeDevice() async throws {
        let store = try openStore()
        try await store.addUser("bob", at: t0)
        try await store.addDevice("laptop", to: "bob", bundle: newBundle(), at: t0)
        try await store.addDevice("phone", to: "bob", bundle: newBundle(), at: t0)
        _ = try await store.enqueueMessage(message(to: ["laptop", "phone"], size: 100), at: t0)

        try await store.revokeDevice("phone", of: "bob", at: t0.addingTimeInterval(60))

        let phone = try await store.activeDevice(user: "bob", device: "phone")
        XCTAssertNil(phone)
        let active = try await store.activeDevices(of: "bob")
        XCTAssertEqual(active.map(\.name), ["laptop"])
        let record = try await store.accounts()[0].devices.first { $0.name == "phone" }
        XCTAssertEqual(record?.revokedAt, t0.addingTimeInterval(60))
        // Its mail went with it and no longer counts against the quota.
        let pending = try await store.pendingMessages(user: "bob", device: "phone", after: 0, limit: 10)
        XCTAssertTrue(pending.isEmpty)
        let usage = try await store.mailboxUsage(of: "bob")
        XCTAssertEqual(usage, 100)

        await assertStoreError(.revoked) { try await store.revokeDevice("phone", of: "bob", at: self.t0) }
        await assertStoreError(.revoked) {
            try await store.addDevice("phone", to: "bob", bundle: self.newBundle(), at: self.t0)
        }
    }

    func testRevokeUser() async throws {
        let store = try openStore()
        try await store.addUser("bob", at: t0)
        try await store.addDevice("laptop", to: "bob", bundle: newBundle(), at: t0)
        try await store.addDevice("phone", to: "bob", bundle: newBundle(), at: t0)
        try await store.revokeDevice("phone", of: "bob", at: t0.addingTimeInterval(1))
        _ = try await store.enqueueMessage(message(to: ["laptop"]), at: t0)

        try await store.revokeUser("bob", at: t0.addingTimeInterval(2))

        let active = try await store.activeDevices(of: "bob")
        XCTAssertTrue(active.isEmpty)
        let bob = try await store.accounts()[0]
        XCTAssertEqual(bob.revokedAt, t0.addingTimeInterval(2))
        // The device revoked earlier keeps its own revocation time.
        XCTAssertEqual(bob.devices.map(\.revokedAt), [t0.addingTimeInterval(2), t0.addingTimeInterval(1)])
        let usage = try await store.mailboxUsage(of: "bob")
        XCTAssertEqual(usage, 0)

        await assertStoreError(.revoked) { try await store.revokeUser("bob", at: self.t0) }
        await assertStoreError(.revoked) { try await store.addUser("bob", at: self.t0) }
        await assertStoreError(.revoked) {
            try await store.addDevice("tablet", to: "bob", bundle: self.newBundle(), at: self.t0)
        }
    }

    func testAccountsSurviveReopen() async throws {
        let bundle = newBundle()
        do {
            let store = try openStore()
            try await store.addUser("alice", at: t0)
            try await store.addDevice("default", to: "alice", bundle: bundle, at: t0)
            try store.close()
        }
        let reopened = try openStore()
        let found = try await reopened.activeDevice(user: "alice", device: "default")
        XCTAssertEqual(found?.encoded, bundle)
    }
}
