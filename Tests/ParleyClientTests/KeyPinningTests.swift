import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

final class KeyPinningTests: XCTestCase {
    // MARK: Without sockets

    func testTrustOnFirstUseDecisions() throws {
        let bob = sname("bob")
        let (laptop, phone) = (sname("laptop"), sname("phone"))
        let (k1, k2, k3) = (
            DeviceIdentity.generate().publicBundle, DeviceIdentity.generate().publicBundle,
            DeviceIdentity.generate().publicBundle
        )
        var pins = KeyPins()
        XCTAssertEqual(
            try pins.review(bob, presented: [laptop: k1], acceptChanges: false, now: 1).status, [laptop: .firstContact])
        XCTAssertEqual(
            try pins.review(bob, presented: [laptop: k1], acceptChanges: false, now: 2).status, [laptop: .pinned])
        let grown = try pins.review(bob, presented: [laptop: k1, phone: k2], acceptChanges: false, now: 3)
        XCTAssertEqual(grown.status, [laptop: .pinned, phone: .newDevice])
        XCTAssertEqual(grown.newDevices, [phone])

        let before = pins
        XCTAssertThrowsError(try pins.review(bob, presented: [laptop: k3, phone: k2], acceptChanges: false, now: 4)) {
            error in
            let warning = error as! KeyChangeWarning
            XCTAssertEqual(warning.changes.map(\.device), [laptop])
            XCTAssertEqual(warning.changes.first?.pinned, k1)
            XCTAssertEqual(warning.changes.first?.presented, k3)
            XCTAssertTrue(warning.description.contains(k1.fingerprint))
            XCTAssertTrue(warning.description.contains(k3.fingerprint))
        }
        XCTAssertEqual(pins, before, "a refused change pins nothing")
        let accepted = try pins.review(bob, presented: [laptop: k3, phone: k2], acceptChanges: true, now: 5)
        XCTAssertEqual(accepted.status[laptop], .changed(previous: k1))
        XCTAssertEqual(pins.pinned(bob, laptop), k3)

        let text = pins.render()
        XCTAssertEqual(try KeyPins.parse(text, path: "contacts"), pins)
        XCTAssertThrowsError(try KeyPins.parse(text.replacingOccurrences(of: "parley1.", with: "parley1.A"), path: "c"))
    }

    func testKeysAnswerParsing() throws {
        let bundle = DeviceIdentity.generate().publicBundle
        let bob = sname("bob")
        XCTAssertEqual(
            try ParleyClient.parseKeys(["bob", "laptop=\(bundle.encoded)"], user: bob), [sname("laptop"): bundle])
        XCTAssertEqual(try ParleyClient.parseKeys(["bob", ""], user: bob), [:])
        XCTAssertThrowsError(try ParleyClient.parseKeys(["carol", "laptop=\(bundle.encoded)"], user: bob))
        XCTAssertThrowsError(
            try ParleyClient.parseKeys(["bob", "laptop=\(bundle.encoded),laptop=\(bundle.encoded)"], user: bob))
        let forged = DevicePublicBundle(
            signingKey: bundle.signingKey, agreementKey: DeviceIdentity.generate().publicBundle.agreementKey,
            signature: bundle.signature)
        XCTAssertThrowsError(try ParleyClient.parseKeys(["bob", "laptop=\(forged.encoded)"], user: bob)) { error in
            XCTAssertEqual((error as? ClientError)?.code, .invalidBundle)
        }
    }

    // MARK: Over a socket

    func testPinsPersistAndAChangedKeyIsRefusedUntilAccepted() async throws {
        let directory = try temporaryDirectory(self)
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let bob = await register("bob", "laptop", on: server)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: directory))
        let first = try await client.lookUp(bob.user)
        XCTAssertEqual(first.status, [bob.device: .firstContact])
        let contacts = directory + "/contacts-default"
        XCTAssertEqual(try mode(contacts), 0o600)
        XCTAssertTrue(try String(contentsOfFile: contacts, encoding: .utf8).contains(bob.identity.publicBundle.encoded))

        // Bob gets a second device: reported, and pinned.
        let phone = DeviceIdentity.generate()
        await server.addAccount(bob.user, sname("phone"), phone.publicBundle)
        let grown = try await client.lookUp(bob.user)
        XCTAssertEqual(grown.newDevices, [sname("phone")])
        XCTAssertEqual(grown.status[bob.device], .pinned)

        // The server swaps the laptop's key: lookups and sends refuse loudly, and nothing is sent.
        let mallory = DeviceIdentity.generate()
        await server.addAccount(bob.user, bob.device, mallory.publicBundle)
        do {
            _ = try await client.keys(bob.user)
            XCTFail("expected a key change warning")
        } catch let warning as KeyChangeWarning {
            XCTAssertEqual(warning.user, bob.user)
            XCTAssertEqual(warning.changes.map(\.device), [bob.device])
            XCTAssertEqual(warning.changes.first?.presented, mallory.publicBundle)
        }
        do {
            _ = try await client.send("secret", to: bob.user)
            XCTFail("expected a key change warning")
        } catch is KeyChangeWarning {}
        let messages = await server.received.filter { $0.line.hasPrefix("msg|") }
        XCTAssertEqual(messages.count, 0)
        let stillPinned = await client.pinnedKey(bob.user, device: bob.device)
        XCTAssertEqual(stillPinned, bob.identity.publicBundle)
        await client.close()

        // A restarted client remembers the pins, and accepting re-pins.
        let restarted = try await loggedInClient(alice, server: server, options: fastOptions(directory: directory))
        do {
            _ = try await restarted.keys(bob.user)
            XCTFail("the pin survived the restart, so the change is still refused")
        } catch is KeyChangeWarning {}
        let accepted = try await restarted.lookUp(bob.user, acceptNewKeys: true)
        XCTAssertEqual(accepted.status[bob.device], .changed(previous: bob.identity.publicBundle))
        let repinned = await restarted.pinnedKey(bob.user, device: bob.device)
        XCTAssertEqual(repinned, mallory.publicBundle)
        await restarted.close()
        await server.stop()
    }

    func testUnknownUserIsTyped() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        await assertClientError(.unknownUser) { try await client.keys(sname("nobody")) }
        await assertClientError(.unknownUser) { try await client.send("hi", to: sname("nobody")) }
        await client.close()
        await server.stop()
    }
}
