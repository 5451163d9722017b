import Foundation
import ParleyCrypto
import ParleyWire
import XCTest

@testable import ParleyClient

final class CallSignalingTests: XCTestCase {
    // MARK: Signed blobs

    func testSignedBlobBindsCallCalleeKindAndSigner() throws {
        let alice = DeviceIdentity.generate()
        let call = SignalID.random()
        let bob = sname("bob")
        let offer: [UInt8] = Array("v=0 offer".utf8)
        let blob = try SignedBlob.sign(offer, kind: .offer, call: call, callee: bob, by: alice)
        XCTAssertEqual(blob.bytes.count, offer.count + SignedBlob.overhead)
        XCTAssertEqual(
            try SignedBlob.open(blob, kind: .offer, call: call, callee: bob, signer: alice.publicBundle), offer)

        func refused(
            _ blob: SignalBlob, kind: SignedBlob.Kind = .offer, call c: SignalID? = nil, callee: SignalName? = nil,
            signer: DevicePublicBundle? = nil, line: UInt = #line
        ) {
            XCTAssertThrowsError(
                try SignedBlob.open(
                    blob, kind: kind, call: c ?? call, callee: callee ?? bob,
                    signer: signer ?? alice.publicBundle), line: line
            ) { error in
                XCTAssertEqual((error as? ClientError)?.code, .badSignature, line: line)
            }
        }
        refused(flipped(blob))
        refused(blob, kind: .answer)
        refused(blob, call: .random())
        refused(blob, callee: sname("carol"))
        refused(blob, signer: DeviceIdentity.generate().publicBundle)
        refused(SignalBlob(bytes: Array(blob.bytes.prefix(64))))
        refused(SignalBlob(bytes: [2] + blob.bytes.dropFirst()))
        XCTAssertThrowsError(
            try SignedBlob.sign(
                [UInt8](repeating: 0, count: SignedBlob.maxPayload + 1), kind: .candidate,
                call: call, callee: bob, by: alice))
    }

    // MARK: Over a socket

    func testCallAnswerCandidatesAndHangup() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", "phone", on: server)
        let bob = await register("bob", "laptop", on: server)
        let caller = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        let callee = try await loggedInClient(bob, server: server, options: fastOptions(directory: nil))
        var callerEvents = caller.events.makeAsyncIterator()
        var calleeEvents = callee.events.makeAsyncIterator()

        let call = try await caller.call(bob.user, offer: Array("offer".utf8))
        var event = try await nextEvent(&calleeEvents)
        guard case .ring(call, let from, let offer) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(from.description, "alice/phone")
        XCTAssertEqual(offer, Array("offer".utf8))

        try await callee.accept(call, answer: Array("answer".utf8))
        event = try await nextEvent(&callerEvents)
        guard case .answer(call, let by, let answer) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(by.description, "bob/laptop")
        XCTAssertEqual(answer, Array("answer".utf8))

        try await caller.candidate(call, Array("cand-a".utf8))
        try await callee.candidate(call, Array("cand-b".utf8))
        event = try await nextEvent(&calleeEvents)
        guard case .candidate(call, let candidateFrom, let a) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(candidateFrom.description, "alice/phone")
        XCTAssertEqual(candidateFrom.pin, .pinned, "pinned when the ring arrived")
        XCTAssertEqual(a, Array("cand-a".utf8))
        event = try await nextEvent(&callerEvents)
        guard case .candidate(call, let candidateBy, let b) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(candidateBy.description, "bob/laptop")
        XCTAssertEqual(b, Array("cand-b".utf8))

        try await callee.end(call)
        event = try await nextEvent(&callerEvents)
        XCTAssertEqual(event.kind, .ended(call: call, reason: .hangup))
        await caller.close()
        await callee.close()
        await server.stop()
    }

    func testTamperedOfferAnswerAndCandidatesAreRejected() async throws {
        let server = try await FakeSignalServer.start()
        let alice = await register("alice", on: server)
        let bob = await register("bob", on: server)
        let carol = await register("carol", on: server)
        let caller = try await loggedInClient(alice, server: server, options: fastOptions(directory: nil))
        let callee = try await loggedInClient(bob, server: server, options: fastOptions(directory: nil))
        var callerEvents = caller.events.makeAsyncIterator()
        var calleeEvents = callee.events.makeAsyncIterator()

        // A flipped offer: the callee sees a rejected ring, and cannot answer that call.
        await server.setTamper { event in
            guard case .ring(let c, let u, let d, let offer) = event else { return event }
            return .ring(call: c, caller: u, callerDevice: d, offer: flipped(offer))
        }
        let first = try await caller.call(bob.user, offer: Array("offer".utf8))
        var event = try await nextEvent(&calleeEvents)
        guard case .rejected(let ring) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(ring.event, "ring")
        XCTAssertEqual(ring.id, first)
        XCTAssertEqual(ring.reason, .badSignature)
        await assertClientError(.unknownCall) { try await callee.accept(first, answer: [1]) }

        // A genuine offer moved into another call: rejected as well.
        await server.setTamper { event in
            guard case .ring(_, let u, let d, let offer) = event else { return event }
            return .ring(call: .random(), caller: u, callerDevice: d, offer: offer)
        }
        _ = try await caller.call(bob.user, offer: Array("offer".utf8))
        event = try await nextEvent(&calleeEvents)
        guard case .rejected(let moved) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(moved.reason, .badSignature)

        // A flipped answer: the caller sees a rejected answer.
        await server.setTamper { event in
            guard case .answer(let c, let d, let answer) = event else { return event }
            return .answer(call: c, device: d, answer: flipped(answer))
        }
        let third = try await caller.call(bob.user, offer: Array("offer".utf8))
        event = try await nextEvent(&calleeEvents)
        guard case .ring(third, _, _) = event.kind else { return XCTFail("\(event)") }
        try await callee.accept(third, answer: Array("answer".utf8))
        event = try await nextEvent(&callerEvents)
        guard case .rejected(let answer) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(answer.event, "answer")
        XCTAssertEqual(answer.reason, .badSignature)

        // A candidate claiming to come from someone outside the call, and one signed by the wrong device.
        await server.setTamper { $0 }
        let forged = try SignedBlob.sign([9], kind: .candidate, call: third, callee: bob.user, by: carol.identity)
        await server.push(
            .candidate(call: third, user: carol.user, device: carol.device, candidate: forged), to: alice.address)
        event = try await nextEvent(&callerEvents)
        guard case .rejected(let outsider) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(outsider.reason, .wrongParty)
        await server.push(
            .candidate(call: third, user: bob.user, device: bob.device, candidate: forged), to: alice.address)
        event = try await nextEvent(&callerEvents)
        guard case .rejected(let wrongKey) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(wrongKey.reason, .badSignature)

        // An answer for a call Alice never placed.
        await server.push(.answer(call: .random(), device: bob.device, answer: forged), to: alice.address)
        event = try await nextEvent(&callerEvents)
        guard case .rejected(let stray) = event.kind else { return XCTFail("\(event)") }
        XCTAssertEqual(stray.reason, .unknownCall)
        await caller.close()
        await callee.close()
        await server.stop()
    }
}
