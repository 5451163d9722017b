import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

/// The same blob with its last byte changed (still canonical base64url).
func flipped(_ blob: SignalBlob) -> SignalBlob {
    var bytes = blob.bytes
    bytes[bytes.count - 1] ^= 0x01
    return SignalBlob(bytes: bytes)
}

final class MessageTests: XCTestCase {
    func testSealedTextRoundTripToEveryDevice() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", "phone", on: server)
        let laptop = await register("bob", "laptop", on: server)
        let phone = DeviceIdentity.generate()
        await server.addAccount(laptop.user, sname("phone"), phone.publicBundle)
        let sender = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        let receiver = try await loggedInClient(laptop, server: server, options: fastOptions(directory: nil))
        var events = receiver.events.makeAsyncIterator()

        let sent = try await sender.send("lunch at one? 🍜", to: laptop.user)
        XCTAssertEqual(sent.devices, [sname("laptop"), sname("phone")])
        XCTAssertEqual(sent.keys.status[sname("laptop")], .firstContact)
        // One msg command with one ciphertext per device; the server never sees the text.
        let line = await server.received.first { $0.line.hasPrefix("msg|") }?.line ?? ""
        XCTAssertTrue(line.contains("|laptop=") && line.contains(",phone="), line)
        XCTAssertFalse(line.contains("lunch"))
        let phoneQueue = await server.queued(.init(user: laptop.user, device: sname("phone")))
        XCTAssertEqual(phoneQueue.count, 1, "the offline device's copy waits in its queue")

        let event = try await nextEvent(&events)
        guard case .message(let id, let from, let text) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(id, sent.id)
        XCTAssertEqual(text, "lunch at one? 🍜")
        XCTAssertEqual(from.user, alice.user)
        XCTAssertEqual(from.device, alice.device)
        XCTAssertEqual(from.pin, .firstContact)
        XCTAssertEqual(from.fingerprint, alice.identity.publicBundle.fingerprint)
        await sender.close()
        await receiver.close()
        await server.stop()
    }

    func testTamperedRelabelledOrReplayedMessagesAreRejected() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let carol = await register("carol", on: server)
        let bob = await register("bob", on: server)
        let sender = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        let receiver = try await loggedInClient(bob, server: server, options: fastOptions(directory: nil))
        var events = receiver.events.makeAsyncIterator()

        // Server flips a ciphertext bit.
        await server.setTamper { event in
            guard case .message(let id, let from, let device, let sealed) = event else { return event }
            return .message(id: id, from: from, fromDevice: device, sealed: flipped(sealed))
        }
        _ = try await sender.send("one", to: bob.user)
        var event = try await nextEvent(&events)
        guard case .rejected(let tampered) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(tampered.reason, .badSignature)
        XCTAssertEqual(tampered.event, "msg")

        // Server claims Carol sent Alice's message.
        await server.setTamper { event in
            guard case .message(let id, _, let device, let sealed) = event else { return event }
            return .message(id: id, from: carol.user, fromDevice: device, sealed: sealed)
        }
        _ = try await sender.send("two", to: bob.user)
        event = try await nextEvent(&events)
        guard case .rejected(let relabelled) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(relabelled.reason, .badSignature)
        XCTAssertEqual(relabelled.user, carol.user)

        // Server replays Alice's genuine ciphertext under a new message id.
        await server.setTamper { event in
            guard case .message(_, let from, let device, let sealed) = event else { return event }
            return .message(id: .random(), from: from, fromDevice: device, sealed: sealed)
        }
        _ = try await sender.send("three", to: bob.user)
        event = try await nextEvent(&events)
        guard case .rejected(let replayed) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(replayed.reason, .badSignature)

        // Untouched again: accepted.
        await server.setTamper { $0 }
        _ = try await sender.send("four", to: bob.user)
        event = try await nextEvent(&events)
        guard case .message(_, _, let text) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(text, "four")
        await sender.close()
        await receiver.close()
        await server.stop()
    }

    func testMessageFromAChangedKeyIsFlaggedAsKeyChange() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let bob = await register("bob", on: server)
        let receiver = try await loggedInClient(bob, server: server, options: fastOptions(directory: nil))
        _ = try await receiver.lookUp(alice.user)  // Bob pins Alice's key

        // Alice's device is replaced (or impersonated) with a new key the server now serves.
        let impostor = TestDevice(identity: .generate(), user: alice.user, device: alice.device)
        await server.addAccount(alice.user, alice.device, impostor.identity.publicBundle)
        let sender = try await loggedInClient(impostor, server: server, options: fastOptions(directory: nil))
        _ = try await sender.send("it's me, really", to: bob.user)
        var events = receiver.events.makeAsyncIterator()
        let event = try await nextEvent(&events)
        guard case .rejected(let rejected) = event.kind, case .keyChanged(let warning) = rejected.reason else {
            return XCTFail("\(event)")
        }
        XCTAssertEqual(warning.changes.first?.pinned, alice.identity.publicBundle)
        XCTAssertEqual(warning.changes.first?.presented, impostor.identity.publicBundle)
        await sender.close()
        await receiver.close()
        await server.stop()
    }

    func testOversizedMessagesAreRefusedBeforeQueueing() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let bob = await register("bob", on: server)
        await server.addAccount(bob.user, sname("phone"), DeviceIdentity.generate().publicBundle)
        let client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        await assertClientError(.tooLarge) {
            try await client.send(String(repeating: "x", count: 70_000), to: bob.user)
        }
        // Two 30 KB copies fit the per-device limit but not the server's 64 KiB line.
        await assertClientError(.tooLarge) {
            try await client.send(String(repeating: "x", count: 30_000), to: bob.user)
        }
        let messages = await server.received.filter { $0.line.hasPrefix("msg|") }
        XCTAssertEqual(messages.count, 0)
        _ = try await client.send("small", to: bob.user)
        await client.close()
        await server.stop()
    }
}
