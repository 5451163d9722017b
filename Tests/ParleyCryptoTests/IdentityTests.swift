import Crypto
import Foundation
import ParleyWire
import XCTest

@testable import ParleyCrypto

/// User keys, device lists, safety numbers, link codes and recovery files (docs/PROTOCOL.md §3.8).
final class DeviceListTests: XCTestCase {
    let alice = SignalName("alice")!
    let phone = SignalName("phone")!
    let laptop = SignalName("laptop")!

    func entry(_ name: SignalName, _ device: DeviceIdentity = .generate(), media: [String] = ["parley"]) -> DeviceList.Entry {
        DeviceList.Entry(name: name, bundle: device.publicBundle, media: media)
    }

    func testSignParseRoundTripAndChain() throws {
        let user = UserIdentity.generate(user: alice)
        let first = try DeviceList.first(by: user, devices: [entry(phone)], time: 1_000)
        XCTAssertEqual(first.version, 1)
        XCTAssertNil(first.previous)
        XCTAssertEqual(try DeviceList(text: first.text), first)
        XCTAssertEqual(try DeviceList(wire: first.wire), first)
        XCTAssertTrue(first.text.hasPrefix("parleylist1."))
        let second = try first.next(by: user, adding: [entry(laptop, media: ["parley", "webrtc"])], time: 2_000)
        XCTAssertEqual(second.version, 2)
        XCTAssertEqual(second.previous, first.hash)
        XCTAssertEqual(second.devices.map(\.name), [laptop, phone], "name order")
        XCTAssertEqual(second.device(laptop)?.media, ["parley", "webrtc"])
        let third = try second.next(by: user, removing: [phone], time: 3_000)
        XCTAssertEqual(third.devices.map(\.name), [laptop])
        XCTAssertEqual(third.revoked.map(\.name), [phone])
        XCTAssertTrue(third.certifies(laptop, second.device(laptop)!.bundle))
        XCTAssertFalse(third.certifies(phone, second.device(phone)!.bundle))
        let document = String(decoding: third.document, as: UTF8.self)
        XCTAssertTrue(document.hasPrefix("parley-device-list v1\nuser alice\nuser-key "), document)
        XCTAssertTrue(document.contains("\nversion 3\n"))
    }

    func testEveryAlterationIsRefused() throws {
        let user = UserIdentity.generate(user: alice)
        let list = try DeviceList.first(by: user, devices: [entry(phone)], time: 1_000)
        // Any byte of the document changed: the signature (or the format) refuses it.
        for index in stride(from: 0, to: list.document.count, by: 7) {
            var wire = list.wire
            wire[64 + index] ^= 0x01
            XCTAssertThrowsError(try DeviceList(wire: wire), "byte \(index)")
        }
        // Signed by another key while naming the user's: bad signature.
        let other = UserIdentity.generate(user: alice)
        let signature = try other.signingKey.signature(for: Data(list.document))
        XCTAssertEqual(XCTAssertThrowsErrorValue(try DeviceList(wire: Array(signature) + list.document)), .badSignature)
        // Non-canonical but validly signed: refused for its spelling.
        let reordered = String(decoding: list.document, as: UTF8.self).replacingOccurrences(of: "time 1000", with: "time 01000")
        let signed = try user.signingKey.signature(for: Data(reordered.utf8))
        XCTAssertThrowsError(try DeviceList(wire: Array(signed) + Array(reordered.utf8)))
        XCTAssertThrowsError(try DeviceList(text: "parleylist1.AAAA"))
        XCTAssertThrowsError(try DeviceList(wire: []))
        XCTAssertThrowsError(try DeviceList.first(by: user, devices: [], time: 1), "a list needs a device")
        XCTAssertThrowsError(try DeviceList.first(by: user, devices: [entry(phone), entry(phone)], time: 1), "unique names")
        XCTAssertThrowsError(try DeviceList.first(by: user, devices: [entry(phone, media: ["webrtc", "parley"])], time: 1))
    }

    /// Random bytes and mutations of a real list: each is refused or parses to a list that re-encodes to itself.
    func testRandomInputsNeverCrash() throws {
        let user = UserIdentity.generate(user: alice)
        let list = try DeviceList.first(by: user, devices: [entry(phone), entry(laptop)], time: 7)
        var rng = SystemRandomNumberGenerator()
        for round in 0..<3_000 {
            var wire = list.wire
            if round % 3 == 0 {
                wire = (0..<Int.random(in: 0..<400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    wire[Int.random(in: 0..<wire.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                if round % 5 == 0 { wire = Array(wire.prefix(Int.random(in: 0...wire.count, using: &rng))) }
            }
            if let parsed = try? DeviceList(wire: wire) { XCTAssertEqual(parsed.wire, wire) }
        }
    }

    func XCTAssertThrowsErrorValue(_ body: @autoclosure () throws(DeviceListError) -> DeviceList) -> DeviceListError? {
        do {
            _ = try body()
            XCTFail("no error")
            return nil
        } catch {
            return error
        }
    }
}

final class SafetyNumberTests: XCTestCase {
    func testEqualOnBothSidesStableAndKeyBound() {
        let alice = SignalName("alice")!
        let bob = SignalName("bob")!
        let a = UserIdentity.generate(user: alice).publicKey
        let b = UserIdentity.generate(user: bob).publicKey
        let fromAlice = SafetyNumber.between(alice, key: a, and: bob, key: b)
        let fromBob = SafetyNumber.between(bob, key: b, and: alice, key: a)
        XCTAssertEqual(fromAlice, fromBob)
        XCTAssertEqual(fromAlice.filter(\.isNumber).count, 60)
        XCTAssertEqual(fromAlice.split(separator: " ").count, 12)
        XCTAssertEqual(SafetyNumber.between(alice, key: a, and: bob, key: b), fromAlice, "deterministic")
        let newB = UserIdentity.generate(user: bob).publicKey
        XCTAssertNotEqual(SafetyNumber.between(alice, key: a, and: bob, key: newB), fromAlice)
        // Alice's half stays when only bob's key changes: the halves are per user.
        XCTAssertEqual(
            SafetyNumber.between(alice, key: a, and: bob, key: newB).prefix(35), fromAlice.prefix(35))
    }

    /// A fixed vector an outside implementation can check (PROTOCOL §3.8); checked independently with
    /// Python's hashlib (`h = sha512(b"\0\0" + key + b"alice")`, 5,200 × `h = sha512(h + key)`).
    func testVector() {
        let key = Data((0..<32).map { UInt8($0) })
        XCTAssertEqual(SafetyNumber.half(user: SignalName("alice")!, key: key), "312853211110151013083951080530")
    }
}

final class LinkCodeTests: XCTestCase {
    let alice = SignalName("alice")!
    let laptop = SignalName("laptop")!

    func testCodeBindsTheBundleAndRoundTrips() throws {
        let device = DeviceIdentity.generate().publicBundle
        let code = LinkCode.make(user: alice, device: laptop, bundle: device)
        XCTAssertEqual(code.text.filter { $0 != "-" }.count, 32)
        XCTAssertEqual(LinkCode(text: code.text), code)
        XCTAssertEqual(LinkCode(text: code.text.lowercased().replacingOccurrences(of: "-", with: " ")), code)
        XCTAssertTrue(code.matches(user: alice, device: laptop, bundle: device))
        // The server hands over another bundle, another device name or another user: refused.
        XCTAssertFalse(code.matches(user: alice, device: laptop, bundle: DeviceIdentity.generate().publicBundle))
        XCTAssertFalse(code.matches(user: alice, device: SignalName("phone")!, bundle: device))
        XCTAssertFalse(code.matches(user: SignalName("mallory")!, device: laptop, bundle: device))
        // A code altered in transit (any letter) no longer matches.
        var letters = Array(code.text)
        letters[3] = letters[3] == "A" ? "B" : "A"
        if let altered = LinkCode(text: String(letters)) {
            XCTAssertFalse(altered.matches(user: alice, device: laptop, bundle: device) && altered.id == code.id)
        }
        let uri = code.uri(user: alice, server: "chat.example:7000")
        XCTAssertTrue(uri.hasPrefix("parley-link:alice@chat.example:7000/"))
        let parsed = try XCTUnwrap(LinkCode.parse(uri: uri))
        XCTAssertEqual(parsed.code, code)
        XCTAssertEqual(parsed.user, alice)
        XCTAssertEqual(parsed.server, "chat.example:7000")
        for bad in ["", "parley-link:", "parley-link:alice@/X", "http://x", "parley-link:ALICE@h/" + code.text, "parley-link:alice@h/SHORT"] {
            XCTAssertNil(LinkCode.parse(uri: bad), bad)
        }
        XCTAssertNil(LinkCode(text: "0000"))
        XCTAssertNil(LinkCode(text: String(repeating: "1", count: 32)))
    }
}

final class UserKeyFileTests: XCTestCase {
    func testFileAndRecoveryRoundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parley-userkey-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("alice.key.user").path
        let identity = UserIdentity.generate(user: SignalName("alice")!)
        try UserKeyFile.write(identity, to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        XCTAssertEqual(try UserKeyFile.read(from: path).publicKey, identity.publicKey)
        XCTAssertThrowsError(try UserKeyFile.write(identity, to: path), "no clobbering")
        chmod(path, 0o644)
        XCTAssertThrowsError(try UserKeyFile.read(from: path), "group/other readable is refused")

        let (file, code) = try RecoveryFile.seal(identity)
        XCTAssertFalse(file.contains(Base64URL.encode(identity.signingKey.rawRepresentation)))
        XCTAssertEqual(code.count, 39)
        XCTAssertEqual(try RecoveryFile.open(file, code: code).publicKey, identity.publicKey)
        XCTAssertEqual(try RecoveryFile.open(file, code: code.lowercased().replacingOccurrences(of: "-", with: " ")).publicKey, identity.publicKey)
        let (_, otherCode) = try RecoveryFile.seal(identity)
        XCTAssertThrowsError(try RecoveryFile.open(file, code: otherCode), "another code does not open it")
        XCTAssertThrowsError(try RecoveryFile.open(file, code: "short"))
        XCTAssertThrowsError(try RecoveryFile.open("garbage", code: code))
    }
}

/// Vectors written by tests/identity/make_vectors.py, an implementation of PROTOCOL §3.8 in Python (its
/// `cryptography` package) that shares no code with this one.
final class IdentityVectorTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("ParleyWireTests/SignalCorpus")

    func testListsWrittenByAnotherImplementationParseAndChain() throws {
        let lines = try String(contentsOf: Self.corpus.appendingPathComponent("identity-list.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        let v2 = try DeviceList(text: lines[0])
        let v1 = try DeviceList(text: lines[1])
        XCTAssertEqual(v2.user, SignalName("alice"))
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(v2.previous, v1.hash)
        XCTAssertEqual(v2.userKey, v1.userKey)
        XCTAssertEqual(v2.devices.map(\.name.text), ["laptop", "phone"])
        XCTAssertEqual(v2.device(SignalName("laptop")!)?.media, ["parley", "webrtc"])
        XCTAssertEqual(v2.text, lines[0], "the Swift encoder spells it the same")
        let wire = try Data(contentsOf: Self.corpus.appendingPathComponent("identity-list-wire.bin"))
        XCTAssertEqual(try DeviceList(wire: Array(wire)), v2)

        let uri = try String(contentsOf: Self.corpus.appendingPathComponent("identity-link-uri.txt"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let link = try XCTUnwrap(LinkCode.parse(uri: uri))
        XCTAssertEqual(link.server, "chat.example:7000")
        XCTAssertEqual(link.code.id, Array(0..<8))
        let laptop = try XCTUnwrap(v2.device(SignalName("laptop")!))
        XCTAssertTrue(link.code.matches(user: link.user, device: laptop.name, bundle: laptop.bundle))
        XCTAssertFalse(link.code.matches(user: link.user, device: laptop.name, bundle: v2.device(SignalName("phone")!)!.bundle))
    }
}
