import NIOCore
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

/// The media path's handshake and protection (docs/PROTOCOL.md §5), two cores wired in memory.
final class CallMediaCoreTests: XCTestCase {
    let call = SignalID("0f4b6c1e-8d2a-4c3b-9e5f-1a2b3c4d5e6f")!
    let bobName = SignalName("bob")!
    let phone = SignalName("phone")!
    let alice = DeviceIdentity.generate()
    let bob = DeviceIdentity.generate()
    let aliceAddress = try! SocketAddress(ipAddress: "192.0.2.1", port: 4000)
    let bobAddress = try! SocketAddress(ipAddress: "198.51.100.2", port: 5000)

    struct Pair {
        var caller: CallMediaCore
        var callee: CallMediaCore
    }

    /// Builds both sides. `callerSees` is the bundle the caller was given for bob/phone (a hostile server may
    /// hand out its own); `calleeIdentity` is who really answers.
    func makePair(
        pinnedBefore: Bool, callerSees: DevicePublicBundle? = nil, calleeIdentity: DeviceIdentity? = nil,
        calleeSeesCaller: DevicePublicBundle? = nil
    ) throws -> Pair {
        let answering = calleeIdentity ?? bob
        let handshake = CallerHandshake(
            callID: call.text, extensions: [CallField(type: MediaCandidate.fieldType, value: MediaCandidate(address: [192, 0, 2, 1], port: 4000)!.encoded)])
        let caller = CallMediaCore(
            caller: handshake, call: call, callee: bobName, myIdentityKey: Array(alice.publicBundle.signingKey),
            devices: [phone: (callerSees ?? bob.publicBundle, pinnedBefore)])
        let calleeHandshake = try CalleeHandshake(
            callID: call.text, offer: handshake.offer,
            extensions: [CallField(type: MediaCandidate.fieldType, value: MediaCandidate(address: [198, 51, 100, 2], port: 5000)!.encoded)])
        let signed = try SignedBlob.sign(calleeHandshake.answer, kind: .answer, call: call, callee: bobName, by: answering)
        let callee = CallMediaCore(
            callee: calleeHandshake, call: call, callee: bobName, device: phone,
            myIdentityKey: Array(answering.publicBundle.signingKey), signedAnswer: signed.bytes,
            callerBundle: calleeSeesCaller ?? alice.publicBundle,
            callerCandidates: CallMediaCore.candidates(inAnswer: handshake.offer))
        return Pair(caller: caller, callee: callee)
    }

    /// Delivers every `.send` among `actions` to the other side (caller ↔ callee); returns all non-send
    /// actions seen, per side, until quiet.
    @discardableResult
    func pump(_ pair: inout Pair, fromCaller: [CallMediaCore.Action], fromCallee: [CallMediaCore.Action], now: UInt64 = 0)
        -> (caller: [CallMediaCore.Action], callee: [CallMediaCore.Action])
    {
        var toCallee = fromCaller
        var toCaller = fromCallee
        var seenCaller: [CallMediaCore.Action] = []
        var seenCallee: [CallMediaCore.Action] = []
        for _ in 0..<10 {
            var nextToCaller: [CallMediaCore.Action] = []
            var nextToCallee: [CallMediaCore.Action] = []
            for action in toCallee {
                if case .send(let bytes, _) = action {
                    nextToCaller += pair.callee.receive(bytes, from: aliceAddress, now: now)
                } else {
                    seenCaller.append(action)
                }
            }
            for action in toCaller {
                if case .send(let bytes, _) = action {
                    nextToCallee += pair.caller.receive(bytes, from: bobAddress, now: now)
                } else {
                    seenCallee.append(action)
                }
            }
            toCaller = nextToCaller
            toCallee = nextToCallee
            if toCaller.isEmpty && toCallee.isEmpty { break }
        }
        return (seenCaller, seenCallee)
    }

    func sas(_ actions: [CallMediaCore.Action]) -> ShortAuthenticationString? {
        for case .keysReady(_, let keys) in actions { return keys.sas }
        return nil
    }

    func testKnownContactAgreesKeysWhileRingingAndMediaFlowsAfterAccept() throws {
        var pair = try makePair(pinnedBefore: true)
        // Ringing: the callee's hello goes to the caller's candidate; the reveal comes back.
        let hello = pair.callee.tick(now: 0)
        XCTAssertTrue(hello.contains { if case .send(let b, let to) = $0 { b.first == 0xB1 && to == aliceAddress } else { false } })
        let seen = pump(&pair, fromCaller: [], fromCallee: hello)
        let callerSAS = try XCTUnwrap(sas(seen.caller + seen.callee).map { $0 })
        XCTAssertNotNil(pair.caller.devices[phone]?.keys)
        XCTAssertNotNil(pair.callee.calleeKeys)
        XCTAssertEqual(pair.callee.calleeKeys?.sas, callerSAS)
        XCTAssertFalse(pair.callee.mediaActive, "no media before the person accepts")
        XCTAssertTrue(pair.callee.sendAudio(frame: 0, opus: [1, 2, 3], now: 1).isEmpty)
        // Accept: the callee's first audio tells the caller which device took the call.
        let started = pair.callee.accept(now: 10)
        XCTAssertTrue(started.contains { if case .mediaStarted(phone, aliceAddress) = $0 { true } else { false } })
        let audio = pair.callee.sendAudio(frame: 7, opus: [9, 9, 9], now: 11)
        let atCaller = pump(&pair, fromCaller: [], fromCallee: audio)
        XCTAssertTrue(atCaller.caller.contains { if case .mediaStarted(phone, _) = $0 { true } else { false } })
        XCTAssertTrue(atCaller.caller.contains { if case .audio(7, [9, 9, 9], 0) = $0 { true } else { false } })
        // And back.
        let back = pair.caller.sendAudio(frame: 3, opus: [4, 4], now: 12)
        let atCallee = pump(&pair, fromCaller: back, fromCallee: [])
        XCTAssertTrue(atCallee.callee.contains { if case .audio(3, [4, 4], _) = $0 { true } else { false } })
    }

    func testFirstContactDeviceGetsTheRevealOnlyWhenItAccepted() throws {
        var pair = try makePair(pinnedBefore: false)
        let seen = pump(&pair, fromCaller: [], fromCallee: pair.callee.tick(now: 0))
        XCTAssertNil(sas(seen.caller + seen.callee))
        XCTAssertNil(pair.callee.calleeKeys, "no reveal to a device first seen in this call before it accepts")
        XCTAssertNotNil(pair.caller.devices[phone]?.answer, "its hello was verified and kept")
        // The server reports the accept: reveal by path and through signaling.
        let answer = try XCTUnwrap(pair.caller.devices[phone]?.answer)
        let actions = pair.caller.answered(by: phone, answer: answer, now: 5)
        XCTAssertTrue(actions.contains { if case .revealThroughSignaling = $0 { true } else { false } })
        _ = pair.callee.accept(now: 5)
        pump(&pair, fromCaller: actions, fromCallee: [])
        XCTAssertEqual(pair.callee.calleeKeys?.sas, pair.caller.devices[phone]?.keys?.sas)
        XCTAssertTrue(pair.callee.mediaActive)
        XCTAssertTrue(pair.caller.mediaActive)
    }

    /// The server hands alice a bundle of its own for bob/phone (first contact, so alice pins it) and relays
    /// bob's real hello: bob's signature does not verify against the swapped key, so nothing is agreed.
    func testHostileServerSwappingKeysCannotCompleteUnnoticed() throws {
        let mallory = DeviceIdentity.generate()
        var pair = try makePair(pinnedBefore: true, callerSees: mallory.publicBundle)
        let seen = pump(&pair, fromCaller: [], fromCallee: pair.callee.tick(now: 0))
        XCTAssertNil(sas(seen.caller + seen.callee))
        XCTAssertEqual(pair.caller.dropped["hello-bad-signature"], 1)
        XCTAssertNil(pair.callee.calleeKeys)

        // A full man in the middle: mallory answers alice as "bob/phone" (alice pinned mallory's key) and calls
        // bob as "alice" (bob pinned mallory's key too). Both handshakes complete, but the codes differ.
        let toAlice = try makePair(pinnedBefore: true, callerSees: mallory.publicBundle, calleeIdentity: mallory)
        var leftPair = toAlice
        pump(&leftPair, fromCaller: [], fromCallee: leftPair.callee.tick(now: 0))
        let toBob = try makePair(pinnedBefore: true, calleeSeesCaller: mallory.publicBundle)
        var rightPair = CallMediaCoreTests.Pair(
            caller: CallMediaCore(
                caller: CallerHandshake(callID: call.text), call: call, callee: bobName,
                myIdentityKey: Array(mallory.publicBundle.signingKey), devices: [phone: (bob.publicBundle, true)]),
            callee: toBob.callee)
        // Bob's core was built for an offer mallory did not make; rebuild it against mallory's own offer.
        let malloryOffer = rightPair.caller.callerHandshake!.offer
        let bobHandshake = try CalleeHandshake(callID: call.text, offer: malloryOffer)
        let bobSigned = try SignedBlob.sign(bobHandshake.answer, kind: .answer, call: call, callee: bobName, by: bob)
        rightPair.callee = CallMediaCore(
            callee: bobHandshake, call: call, callee: bobName, device: phone, myIdentityKey: Array(bob.publicBundle.signingKey),
            signedAnswer: bobSigned.bytes, callerBundle: mallory.publicBundle, callerCandidates: [aliceAddress])
        pump(&rightPair, fromCaller: [], fromCallee: rightPair.callee.tick(now: 0))
        let aliceSAS = try XCTUnwrap(leftPair.caller.devices[phone]?.keys?.sas)
        let bobSAS = try XCTUnwrap(rightPair.callee.calleeKeys?.sas)
        XCTAssertNotEqual(aliceSAS, bobSAS, "two people comparing codes see the interception")
    }

    func testTamperedHelloAndForgedMediaAreDroppedAndDoNotMoveThePath() throws {
        var pair = try makePair(pinnedBefore: true)
        var hello = pair.callee.tick(now: 0)
        guard case .send(var bytes, let to) = hello[0] else { return XCTFail("no hello") }
        bytes[bytes.count - 10] ^= 1  // inside the signed answer (its ephemeral key or suite)
        hello[0] = .send(bytes, to: to)
        pump(&pair, fromCaller: [], fromCallee: hello)
        XCTAssertEqual(pair.caller.dropped["hello-bad-signature"], 1)
        XCTAssertNil(pair.caller.devices[phone]?.keys)
        // The genuine hello still works.
        pump(&pair, fromCaller: [], fromCallee: pair.callee.tick(now: 200_000))
        XCTAssertNotNil(pair.callee.calleeKeys)
        _ = pair.callee.accept(now: 1)
        let audio = pair.callee.sendAudio(frame: 0, opus: [1, 1], now: 2)
        pump(&pair, fromCaller: [], fromCallee: audio)
        XCTAssertEqual(pair.caller.peerAddress, bobAddress)
        // Garbage and a replay from another address: dropped, the path stays.
        let elsewhere = try SocketAddress(ipAddress: "203.0.113.9", port: 9)
        guard case .send(let packet, _) = audio[0] else { return XCTFail() }
        XCTAssertTrue(pair.caller.receive(packet, from: elsewhere, now: 3).isEmpty)
        var forged = packet
        forged[forged.count - 1] ^= 1
        forged[6] = 9
        XCTAssertTrue(pair.caller.receive(forged, from: elsewhere, now: 3).isEmpty)
        XCTAssertEqual(pair.caller.peerAddress, bobAddress)
        // A genuine newer packet from a new address (the callee's NAT rebinding) moves the path.
        let next = pair.callee.sendAudio(frame: 1, opus: [2, 2], now: 4)
        guard case .send(let moved, _) = next[0] else { return XCTFail() }
        XCTAssertFalse(pair.caller.receive(moved, from: elsewhere, now: 5).isEmpty)
        XCTAssertEqual(pair.caller.peerAddress, elsewhere)
        XCTAssertGreaterThanOrEqual(pair.caller.dropped.values.reduce(0, +), 3)
    }

    func testPeerByeAndKeepalive() throws {
        var pair = try makePair(pinnedBefore: true)
        pump(&pair, fromCaller: [], fromCallee: pair.callee.tick(now: 0))
        _ = pair.callee.accept(now: 0)
        pump(&pair, fromCaller: [], fromCallee: pair.callee.sendAudio(frame: 0, opus: [1, 1], now: 0))
        // Nothing sent for a second: a one-byte keepalive, which the other side ignores.
        let idle = pair.caller.tick(now: 2_000_000)
        XCTAssertTrue(idle.contains { if case .send([0], bobAddress) = $0 { true } else { false } })
        XCTAssertTrue(pair.callee.receive([0], from: aliceAddress, now: 2_000_000).isEmpty)
        let bye = pair.caller.hangUp(now: 3)
        XCTAssertEqual(bye.count, 3)
        let seen = pump(&pair, fromCaller: bye, fromCallee: [])
        XCTAssertTrue(seen.callee.contains { if case .peerHungUp = $0 { true } else { false } })
    }

    /// Heavy loss: the callee got the reveal through signaling and ICE has not picked a path; the caller's
    /// first authenticated audio is the path, and the callee's media starts on it.
    func testCalleeStartsOnTheCallersFirstPacketWhenKeysCameThroughSignaling() throws {
        var pair = try makePair(pinnedBefore: false)
        pair.callee.callerCandidates = []  // no path known on the callee's side
        _ = pair.callee.tick(now: 0)
        // The caller learns of the accept from the server, completes, and reveals through signaling.
        pair.caller.devices[phone]?.answer = pair.callee.calleeHandshake?.answer
        let actions = pair.caller.answered(by: phone, answer: try XCTUnwrap(pair.callee.calleeHandshake?.answer), now: 1)
        guard let reveal = actions.compactMap({ if case .revealThroughSignaling(let r) = $0 { r } else { nil } }).first else {
            return XCTFail("no reveal for signaling")
        }
        _ = pair.callee.accept(now: 2)
        _ = pair.callee.revealedThroughSignaling(reveal, now: 3)
        XCTAssertFalse(pair.callee.mediaActive, "no path yet")
        pair.caller.devices[phone]?.address = bobAddress
        _ = pair.caller.pathSelected(bobAddress, previous: nil, now: 4)
        let audio = pair.caller.sendAudio(frame: 0, opus: [1, 2], now: 5)
        guard case .send(let packet, _) = try XCTUnwrap(audio.first) else { return XCTFail("caller sent nothing") }
        let atCallee = pair.callee.receive(packet, from: aliceAddress, now: 6)
        XCTAssertTrue(atCallee.contains { if case .mediaStarted(phone, aliceAddress) = $0 { true } else { false } })
        XCTAssertTrue(pair.callee.mediaActive)
    }
}
