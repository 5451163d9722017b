import Foundation
import ParleyCrypto
import ParleyServer
import ParleyWire
import XCTest

/// The server's part in docs/PROTOCOL.md §3.8 over real sockets: it stores lists but checks each continues
/// the last, its account follows the list (a certified device can log in, a removed one cannot), sessions of
/// removed devices close, and enrolment refuses what it must.
final class DeviceListServerTests: XCTestCase {
    var dir = ""
    let alice = DeviceIdentity.generate()
    let bobPhone = DeviceIdentity.generate()
    let bobLaptop = DeviceIdentity.generate()

    override func setUp() {
        dir = NSTemporaryDirectory() + "parley-lists-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A server on loopback with alice/phone and bob's phone and laptop in its accounts file.
    func startServer() async throws -> ParleyServerInstance {
        try await TestServer.start(in: dir, accounts: [("alice.phone", alice), ("bob.laptop", bobLaptop), ("bob.phone", bobPhone)])
    }

    func n(_ s: String) -> SignalName { SignalName(s)! }

    func publish(_ client: SignalLineClient, _ list: DeviceList) async throws -> ServerFrame? {
        let cseq = try await client.command(.publish(list: SignalBlob(bytes: list.wire)))
        while let frame = try await client.frame() {
            switch frame {
            case .ack(cseq, _), .nak(cseq, _, _): return frame
            default: continue
            }
        }
        return nil
    }

    func testPublishChecksTheChainAndTheAccountFollowsTheList() async throws {
        let server = try await startServer()
        let port = try XCTUnwrap(server.signal?.tcpPort)
        let phone = try await SignalLineClient(port: port)
        guard case .welcome = try await phone.login(user: "bob", device: "phone", identity: bobPhone) else { return XCTFail("login") }
        let key = UserIdentity.generate(user: n("bob"))
        // A first list must certify the publishing device with the key it logged in with.
        let wrong = try DeviceList.first(by: key, devices: [.init(name: n("phone"), bundle: DeviceIdentity.generate().publicBundle)], time: 1)
        guard case .nak(_, .notAllowed, _)? = try await publish(phone, wrong) else { return XCTFail("a first list with another key") }
        let other = try DeviceList.first(by: UserIdentity.generate(user: n("alice")), devices: [.init(name: n("phone"), bundle: alice.publicBundle)], time: 1)
        guard case .nak(_, .notAllowed, _)? = try await publish(phone, other) else { return XCTFail("another user's list") }
        let v1 = try DeviceList.first(by: key, devices: [.init(name: n("phone"), bundle: bobPhone.publicBundle)], time: 1)
        guard case .ack(_, ["1"])? = try await publish(phone, v1) else { return XCTFail("v1") }
        // The next must continue it: same key, next version, the previous hash.
        let tablet = DeviceIdentity.generate()
        let v2 = try v1.next(by: key, adding: [.init(name: n("tablet"), bundle: tablet.publicBundle)], time: 2)
        let skipped = try DeviceList.sign(by: key, version: 3, previous: v1.hash, time: 3, devices: v2.devices)
        guard case .nak(_, .notAllowed, _)? = try await publish(phone, skipped) else { return XCTFail("version 3 after 1") }
        let foreign = try DeviceList.sign(by: UserIdentity.generate(user: n("bob")), version: 2, previous: v1.hash, time: 3, devices: v2.devices)
        guard case .nak(_, .notAllowed, _)? = try await publish(phone, foreign) else { return XCTFail("another key") }
        guard case .ack(_, ["2"])? = try await publish(phone, v2) else { return XCTFail("v2") }
        // keys presents it; the tablet can log in now, as the list says.
        let k = try await phone.command(.keys(user: n("bob")))
        guard case .ack(k, let result)? = try await phone.frame(), result.count == 3 else { return XCTFail("keys") }
        XCTAssertEqual(try DeviceList(wire: SignalBlob(result[2])!.bytes), v2)
        XCTAssertFalse(result[1].contains("laptop="), "the laptop of the accounts file is not on bob's list: \(result[1])")
        let tabletClient = try await SignalLineClient(port: port)
        guard case .welcome = try await tabletClient.login(user: "bob", device: "tablet", identity: tablet) else { return XCTFail("tablet") }
        // lists serves the history after a version.
        let l = try await phone.command(.lists(user: n("bob"), since: 0))
        guard case .ack(l, let history)? = try await phone.frame(), history.count == 2 else { return XCTFail("lists") }
        XCTAssertEqual(history[1].split(separator: ",").count, 2)
        // Removing the tablet closes its session and its logins.
        let v3 = try v2.next(by: key, removing: [n("tablet")], time: 4)
        guard case .ack(_, ["3"])? = try await publish(phone, v3) else { return XCTFail("v3") }
        while let _ = try await tabletClient.frame(timeout: .seconds(2)) {}
        XCTAssertTrue(tabletClient.isClosed)
        let again = try await SignalLineClient(port: port)
        guard case .error(.badLogin, _)? = try await again.login(user: "bob", device: "tablet", identity: tablet) else {
            return XCTFail("a removed device logged in")
        }
        for c in [phone, tabletClient, again] { await c.close() }
        try await server.shutdown()

        // After a restart the list is served from the store.
        let restarted = try await startServer()
        let port2 = try XCTUnwrap(restarted.signal?.tcpPort)
        let aliceClient = try await SignalLineClient(port: port2)
        guard case .welcome = try await aliceClient.login(user: "alice", device: "phone", identity: alice) else { return XCTFail("alice") }
        let k2 = try await aliceClient.command(.keys(user: n("bob")))
        guard case .ack(k2, let after)? = try await aliceClient.frame(), after.count == 3 else { return XCTFail("keys after restart") }
        XCTAssertEqual(try DeviceList(wire: SignalBlob(after[2])!.bytes).version, 3)
        await aliceClient.close()
        try await restarted.shutdown()
    }
}
