import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

/// The decisions a client makes about another user's device lists, with the server as the adversary: it can
/// replay, withhold, reorder and splice lists, and sign with keys of its own, but not with the user's key.
final class TrustStoreTests: XCTestCase {
    let bob = SignalName("bob")!
    let phone = SignalName("phone")!
    let laptop = SignalName("laptop")!
    let injected = SignalName("evil")!

    func entry(_ name: SignalName) -> DeviceList.Entry { .init(name: name, bundle: DeviceIdentity.generate().publicBundle) }

    func history() throws -> (UserIdentity, [DeviceList]) {
        let key = UserIdentity.generate(user: bob)
        let v1 = try DeviceList.first(by: key, devices: [entry(phone)], time: 1)
        let v2 = try v1.next(by: key, adding: [entry(laptop)], time: 2)
        let v3 = try v2.next(by: key, removing: [laptop], time: 3)
        return (key, [v1, v2, v3])
    }

    func testFirstContactThenUpdatesChainVersionByVersion() throws {
        let (_, lists) = try history()
        var store = TrustStore()
        XCTAssertEqual(try store.review(bob, chain: [lists[0]]).status, .firstContact)
        XCTAssertEqual(try store.review(bob, chain: [lists[0]]).status, .unchanged)
        let update = try store.review(bob, chain: [lists[1]])
        XCTAssertEqual(update.status, .updated(from: 1))
        XCTAssertEqual(update.added, [laptop])
        // A jump of two needs the version between; with it, it is accepted.
        var other = TrustStore()
        _ = try other.review(bob, chain: [lists[0]])
        XCTAssertEqual(refusal { try other.review(bob, chain: [lists[2]]) }, .missingVersions(user: bob, pinned: 1, presented: 3))
        let jump = try other.review(bob, chain: [lists[1], lists[2]])
        XCTAssertEqual(jump.status, .updated(from: 1))
        XCTAssertEqual(jump.removed, [], "laptop came and went between the two")
        let removal = try store.review(bob, chain: [lists[2]])
        XCTAssertEqual(removal.removed, [laptop])
        XCTAssertNil(store.list(of: bob)?.device(laptop))
    }

    func testRollbackIsRefused() throws {
        let (_, lists) = try history()
        var store = TrustStore()
        _ = try store.review(bob, chain: [lists[0], lists[1], lists[2]])
        XCTAssertEqual(refusal { try store.review(bob, chain: [lists[1]]) }, .rollback(user: bob, pinned: 3, presented: 2))
        XCTAssertEqual(store.list(of: bob)?.version, 3, "nothing changed")
    }

    func testForksAreRefused() throws {
        let (key, lists) = try history()
        var store = TrustStore()
        _ = try store.review(bob, chain: [lists[0], lists[1]])
        // Another version 2 (signed by bob's key, e.g. a leaked key or a second device publishing at once).
        let other2 = try lists[0].next(by: key, adding: [entry(injected)], time: 9)
        XCTAssertEqual(refusal { try store.review(bob, chain: [other2]) }, .fork(user: bob, version: 2))
        // A version 3 that continues the other branch.
        let other3 = try other2.next(by: key, adding: [entry(SignalName("x")!)], time: 10)
        XCTAssertEqual(refusal { try store.review(bob, chain: [other3]) }, .fork(user: bob, version: 3))
        XCTAssertEqual(refusal { try store.review(bob, chain: [other2, other3]) }, .fork(user: bob, version: 2))
        // A chain that does not hold together in itself.
        XCTAssertEqual(refusal { try store.review(bob, chain: [lists[1], other3]) }, .fork(user: bob, version: 3))
        XCTAssertEqual(store.list(of: bob)?.hash, lists[1].hash)
    }

    func testAnotherKeyIsRefusedUntilAccepted() throws {
        let (_, lists) = try history()
        var store = TrustStore()
        _ = try store.review(bob, chain: [lists[0]])
        // The server makes its own "bob" key and a list with its device on it (a swapped user key), or signs
        // the next version with its own key.
        let forged = UserIdentity.generate(user: bob)
        let swapped = try DeviceList.sign(by: forged, version: 5, previous: lists[0].hash, time: 5, devices: [entry(injected)])
        guard case .userKeyChanged(_, let pinned, let presented, false) = refusal({ try store.review(bob, chain: [swapped]) }) else {
            return XCTFail("expected userKeyChanged")
        }
        XCTAssertEqual(pinned, lists[0].userKey)
        XCTAssertEqual(presented, forged.publicKey)
        XCTAssertNil(store.list(of: bob)?.device(injected))
        // Verified contacts say so in the warning.
        store.markVerified(bob)
        XCTAssertTrue(store.users[bob]!.verified)
        guard case .userKeyChanged(_, _, _, true) = refusal({ try store.review(bob, chain: [swapped]) }) else {
            return XCTFail("expected userKeyChanged of a verified contact")
        }
        // Accepted on request (after comparing safety numbers): pinned, no longer verified.
        XCTAssertEqual(try store.review(bob, chain: [swapped], acceptNewUserKey: true).status, .userKeyReplaced)
        XCTAssertFalse(store.users[bob]!.verified)
    }

    func testAListOfAnotherUserIsRefused() throws {
        let carolKey = UserIdentity.generate(user: SignalName("carol")!)
        let carols = try DeviceList.first(by: carolKey, devices: [entry(phone)], time: 1)
        var store = TrustStore()
        XCTAssertEqual(refusal { try store.review(bob, chain: [carols]) }, .wrongUser(user: bob, presented: SignalName("carol")!))
        XCTAssertNil(store.list(of: bob))
    }

    func testFileRoundTripKeepsListsAndMarks() throws {
        let (_, lists) = try history()
        var store = TrustStore()
        _ = try store.review(bob, chain: [lists[0]])
        store.markVerified(bob)
        let again = try TrustStore.parse(store.render(), path: "trust")
        XCTAssertEqual(again, store)
        XCTAssertThrowsError(try TrustStore.parse("parley-trust v1\nbob - parleylist1.AAAA\n", path: "trust"))
        XCTAssertThrowsError(try TrustStore.parse("nope\n", path: "trust"))
    }

    func refusal(_ body: () throws -> ListReview) -> ListRefusal? {
        do {
            _ = try body()
            XCTFail("accepted")
            return nil
        } catch {
            return error as? ListRefusal
        }
    }
}
