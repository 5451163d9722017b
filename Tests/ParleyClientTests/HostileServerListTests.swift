import Foundation
@testable import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

/// A hostile server against device lists (docs/PROTOCOL.md §3.8): it adds a device to bob, replays an old
/// list, forks the history, signs with its own key, swaps bob's user key, or hides the list. In every case
/// alice is told, and nothing is sealed to, rung or answered by a device bob's key did not certify.
final class HostileServerListTests: XCTestCase {
    var server: FakeSignalServer!
    var alice: TestDevice!
    var bobPhone: TestDevice!
    var bobKey: UserIdentity!
    var lists: [DeviceList] = []
    var client: ParleyClient!

    override func setUp() async throws {
        server = try await FakeSignalServer.start()
        alice = await register("alice", "phone", on: server)
        bobPhone = await register("bob", "phone", on: server)
        bobKey = UserIdentity.generate(user: bobPhone.user)
        let laptop = DeviceIdentity.generate()
        let v1 = try DeviceList.first(by: bobKey, devices: [.init(name: bobPhone.device, bundle: bobPhone.identity.publicBundle)], time: 1)
        let v2 = try v1.next(by: bobKey, adding: [.init(name: sname("laptop"), bundle: laptop.publicBundle)], time: 2)
        lists = [v1, v2]
        await server.addAccount(bobPhone.user, sname("laptop"), laptop.publicBundle)
        await server.setDeviceLists(bobPhone.user, lists)
        client = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
    }

    override func tearDown() async throws {
        await client?.close()
        await server?.stop()
    }

    /// The list is reviewed; certified devices are sealed to; the one the server added is not, and alice is told.
    func testAnInjectedDeviceIsNeverSealedToAndAliceIsTold() async throws {
        let evil = DeviceIdentity.generate()
        await server.addAccount(bobPhone.user, sname("evil"), evil.publicBundle)
        let lookup = try await client.lookUp(bobPhone.user)
        XCTAssertEqual(Set(lookup.devices.keys), [sname("phone"), sname("laptop")])
        XCTAssertEqual(Set(lookup.uncertified.keys), [sname("evil")], "alice is told")
        XCTAssertEqual(lookup.list?.version, 2)
        XCTAssertEqual(lookup.review?.status, .firstContact)
        let sent = try await client.send("hello", to: bobPhone.user)
        XCTAssertEqual(sent.devices, [sname("laptop"), sname("phone")])
        let lines = await server.messageLines
        let line = try XCTUnwrap(lines.last)
        XCTAssertFalse(line.contains("evil="), "nothing sealed to the injected device: \(line)")
        // A device with a name bob's list certifies but another key: not certified either.
        await server.addAccount(bobPhone.user, sname("phone"), evil.publicBundle)
        let again = try await client.lookUp(bobPhone.user)
        XCTAssertNil(again.devices[sname("phone")])
        XCTAssertEqual(again.uncertified[sname("phone")], evil.publicBundle)
    }

    /// A ring signed by the injected device is rejected as uncertified, so it can never be answered.
    func testARingFromAnInjectedDeviceIsRejected() async throws {
        _ = try await client.lookUp(bobPhone.user)
        let evil = DeviceIdentity.generate()
        await server.addAccount(bobPhone.user, sname("evil"), evil.publicBundle)
        var events = client.events.makeAsyncIterator()
        let call = SignalID.random()
        let offer = try SignedBlob.sign(Array("offer".utf8), kind: .offer, call: call, callee: alice.user, by: evil)
        await server.push(
            .ring(call: call, caller: bobPhone.user, callerDevice: sname("evil"), offer: SignalBlob(bytes: offer.bytes)),
            to: .init(user: alice.user, device: alice.device))
        let event = try await nextEvent(&events)
        guard case .rejected(let rejected) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(rejected.reason, .uncertified)
        XCTAssertEqual(rejected.device, sname("evil"))
    }

    /// alice calls bob; the server rings an injected device too and relays its (validly signed) answer: alice
    /// rejects it as uncertified, so the injected device never takes the call; bob's real answer is taken.
    func testAnAnswerFromAnInjectedDeviceIsRejected() async throws {
        _ = try await client.lookUp(bobPhone.user)
        let evil = DeviceIdentity.generate()
        await server.addAccount(bobPhone.user, sname("evil"), evil.publicBundle)
        var events = client.events.makeAsyncIterator()
        let call = try await client.call(bobPhone.user, offer: Array("offer".utf8))
        let forged = try SignedBlob.sign(Array("answer".utf8), kind: .answer, call: call, callee: bobPhone.user, by: evil)
        await server.push(.answer(call: call, device: sname("evil"), answer: SignalBlob(bytes: forged.bytes)),
                          to: .init(user: alice.user, device: alice.device))
        let first = try await nextEvent(&events)
        guard case .rejected(let rejected) = first.kind else { return XCTFail("\(first)") }
        XCTAssertEqual(rejected.reason, .uncertified)
        let real = try SignedBlob.sign(Array("answer".utf8), kind: .answer, call: call, callee: bobPhone.user, by: bobPhone.identity)
        await server.push(.answer(call: call, device: bobPhone.device, answer: SignalBlob(bytes: real.bytes)),
                          to: .init(user: alice.user, device: alice.device))
        let second = try await nextEvent(&events)
        guard case .answer(call, let by, _) = second.kind else { return XCTFail("\(second)") }
        XCTAssertEqual(by.device, bobPhone.device)
    }

    func testARolledBackListIsRefused() async throws {
        _ = try await client.lookUp(bobPhone.user)
        await server.present(lists[0], for: bobPhone.user)
        await assertRefused { if case .rollback(_, 2, 1) = $0 { true } else { false } }
    }

    func testAForkedListIsRefused() async throws {
        _ = try await client.lookUp(bobPhone.user)
        let fork = try lists[0].next(by: bobKey, adding: [.init(name: sname("evil"), bundle: DeviceIdentity.generate().publicBundle)], time: 9)
        await server.present(fork, for: bobPhone.user)
        await assertRefused { if case .fork(_, 2) = $0 { true } else { false } }
        // A version 3 chaining from the fork, with the fork given as history: refused too.
        let fork3 = try fork.next(by: bobKey, time: 10)
        await server.setDeviceLists(bobPhone.user, [lists[0], fork, fork3])
        await server.present(fork3, for: bobPhone.user)
        await assertRefused { if case .fork(_, 3) = $0 { true } else { false } }
    }

    func testAListSignedByAnotherKeyIsRefused() async throws {
        _ = try await client.lookUp(bobPhone.user)
        // The server's own key signs bob's next document (naming bob's user key): the signature fails.
        let forger = UserIdentity.generate(user: bobPhone.user)
        let next = try lists[1].next(by: bobKey, time: 3)
        let signature = try forger.signingKey.signature(for: Data(next.document))
        let forged = DeviceList(unchecked: next, signature: signature)
        await server.present(forged, for: bobPhone.user)
        await assertRefused { if case .invalid(_, .badSignature) = $0 { true } else { false } }
    }

    func testASwappedUserKeyIsRefusedUntilAccepted() async throws {
        _ = try await client.lookUp(bobPhone.user)
        let forger = UserIdentity.generate(user: bobPhone.user)
        let evil = DeviceIdentity.generate()
        let swapped = try DeviceList.first(by: forger, devices: [.init(name: sname("evil"), bundle: evil.publicBundle)], time: 5)
        await server.addAccount(bobPhone.user, sname("evil"), evil.publicBundle)
        await server.present(swapped, for: bobPhone.user)
        await assertRefused { if case .userKeyChanged(_, _, _, false) = $0 { true } else { false } }
        // Accepted on request (the person compared safety numbers): the new key's devices are used.
        let accepted = try await client.lookUp(bobPhone.user, acceptNewKeys: true)
        XCTAssertEqual(accepted.review?.status, .userKeyReplaced)
        XCTAssertEqual(Set(accepted.devices.keys), [sname("evil")])
    }

    func testAHiddenListIsRefused() async throws {
        _ = try await client.lookUp(bobPhone.user)
        await server.present(nil, for: bobPhone.user)
        await assertRefused { if case .withheld = $0 { true } else { false } }
    }

    /// A jump of versions is accepted only with the history between, which the client asks for.
    func testAJumpFetchesTheVersionsBetween() async throws {
        await server.setDeviceLists(bobPhone.user, [lists[0]])
        _ = try await client.lookUp(bobPhone.user)
        let v3 = try lists[1].next(by: bobKey, removing: [sname("laptop")], time: 3)
        await server.setDeviceLists(bobPhone.user, [lists[0], lists[1], v3])
        let lookup = try await client.lookUp(bobPhone.user)
        XCTAssertEqual(lookup.list?.version, 3)
        XCTAssertEqual(Set(lookup.devices.keys), [sname("phone")])
        XCTAssertEqual(Set(lookup.uncertified.keys), [sname("laptop")], "removed from the list, still listed by the server")
        // Without the history (the server withholds version 2): refused.
        await server.setDeviceLists(bobPhone.user, [lists[0], v3])
        let fresh = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        defer { Task { await fresh.close() } }
        await server.setDeviceLists(bobPhone.user, [lists[0]])
        _ = try await fresh.lookUp(bobPhone.user)
        await server.setDeviceLists(bobPhone.user, [lists[0], v3])
        do {
            _ = try await fresh.lookUp(bobPhone.user)
            XCTFail("accepted a jump without its history")
        } catch let refusal as ListRefusal {
            guard case .missingVersions = refusal else { return XCTFail("\(refusal)") }
        }
    }

    /// Every refusal: `lookUp` and `send` throw it, the pinned list stays, and no `msg` goes out.
    func assertRefused(file: StaticString = #filePath, line: UInt = #line, _ matches: (ListRefusal) -> Bool) async {
        let pinned = await client.trustedList(of: bobPhone.user)
        let before = await server.messageLines.count
        for attempt in 0..<2 {
            do {
                if attempt == 0 { _ = try await client.lookUp(bobPhone.user) } else { _ = try await client.send("x", to: bobPhone.user) }
                XCTFail("accepted", file: file, line: line)
            } catch let refusal as ListRefusal {
                XCTAssertTrue(matches(refusal), "\(refusal)", file: file, line: line)
                XCTAssertFalse(refusal.description.isEmpty)
            } catch {
                XCTFail("\(error)", file: file, line: line)
            }
        }
        let after = await client.trustedList(of: bobPhone.user)
        XCTAssertEqual(after, pinned, "nothing pinned", file: file, line: line)
        let sent = await server.messageLines.count
        XCTAssertEqual(sent, before, "nothing sealed", file: file, line: line)
    }
}
