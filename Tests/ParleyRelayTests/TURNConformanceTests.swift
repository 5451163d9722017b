import NIOCore
import ParleyWire
import XCTest

@testable import ParleyRelay

/// RFC 8656 (TURN) conformance of the sans-I/O core, with RFC 8489 long-term credentials, driven by an
/// in-memory client (``TURNTestClient``) on a manual clock. The harness plays the I/O layer: it "binds"
/// relay sockets at 192.0.2.1 / 2001:db8::1 (documentation addresses: only the client sees them), while
/// peers are public addresses, since private and documentation ranges are refused by default.
final class TURNConformanceTests: XCTestCase {
    let realm = "parley.test"
    let secrets = ["turn-secret-1", "turn-secret-2", "turn-secret-3"]
    /// Unix milliseconds.
    let t0: UInt64 = 1_800_000_000_000

    let peerA = STUNAddress.v4(0x0808_0808, port: 5000)  // 8.8.8.8
    let peerB = STUNAddress.v4(0x0101_0101, port: 6000)  // 1.1.1.1
    let peerC = STUNAddress.v4(0x0909_0909, port: 7000)  // 9.9.9.9
    let peerV6 = STUNAddress.v6(0x2001_4860_0000_0000, 0x8888, port: 7000)  // 2001:4860::8888
    let privatePeer = STUNAddress.v4(0x0A00_0001, port: 5000)  // 10.0.0.1
    let loopbackPeer = STUNAddress.v4(0x7F00_0001, port: 5000)  // 127.0.0.1

    func makeServer(users: [LongTermAuthenticator.StaticUser] = [],
                    _ configure: (inout TURNConfiguration) -> Void = { _ in }) -> TURNTestServer {
        let auth = LongTermAuthenticator(realm: realm, secrets: secrets, users: users, nonceLifetime: 600)
        var configuration = TURNConfiguration(authentication: auth)
        configure(&configuration)
        return TURNTestServer(configuration: configuration, now: t0)
    }

    /// A client with TURN REST credentials valid for a day, from 198.51.100.7:`port`.
    func restClient(_ server: TURNTestServer, _ name: String = "alice", port: UInt16 = 40000,
                    secret: String? = nil) -> TURNTestClient {
        let user = "\(t0 / 1000 + 86_400):\(name)"
        return TURNTestClient(server: server, address: .v4(0xC633_6407, port: port), username: user,
                              password: LongTermAuthenticator.restPassword(username: user, secret: secret ?? secrets[0]),
                              realm: realm)
    }

    func relay(_ n: Int) -> FakeRelay { FakeRelay(id: n) }
    func relayed(port: UInt16) -> STUNAddress { TURNTestServer.relayIPv4.withPort(port) }
    let success = TURNAnswer.Kind.respond(.success, denial: nil)
    func failure(_ code: STUNErrorCode, denial: PeerPolicy.Denial? = nil) -> TURNAnswer.Kind {
        .respond(.error(code), denial: denial)
    }

    /// An authenticated error answer: `code`, protected with the client's key.
    func assertError(_ answer: TURNAnswer, _ code: STUNErrorCode, denial: PeerPolicy.Denial? = nil, _ client: TURNTestClient,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(answer.kind, failure(code, denial: denial), file: file, line: line)
        XCTAssertEqual(answer.errorCode, Int(code.rawValue), file: file, line: line)
        XCTAssertEqual(answer.message?.type.messageClass, .errorResponse, file: file, line: line)
        XCTAssertTrue(client.verifies(answer.message), "error answer protected with the request's key", file: file, line: line)
    }

    func assertSuccess(_ answer: TURNAnswer, _ client: TURNTestClient, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(answer.kind, success, file: file, line: line)
        XCTAssertEqual(answer.message?.type.messageClass, .successResponse, file: file, line: line)
        XCTAssertTrue(client.verifies(answer.message), file: file, line: line)
    }

    /// Allocates (default attributes), asserting it worked.
    @discardableResult
    func allocated(_ client: TURNTestClient, _ extra: [TURNAttribute] = [], file: StaticString = #filePath,
                   line: UInt = #line) -> TURNAnswer {
        let a = client.allocate(extra, file: file, line: line)
        XCTAssertEqual(a.kind, .allocated, "allocate: \(String(describing: a.errorCode))", file: file, line: line)
        XCTAssertTrue(client.verifies(a.message), file: file, line: line)
        return a
    }

    // MARK: Allocate (RFC 8656 §7.2)

    func testAllocateIsChallengedThenSucceedsWithRelayedLifetimeMappedAndIntegrity() throws {
        let server = makeServer()
        let alice = restClient(server)
        let c = alice.challenge()
        XCTAssertEqual(c.kind, failure(.unauthenticated))
        let challenge = try XCTUnwrap(c.message)
        XCTAssertEqual(challenge.type, STUNMessageType(method: .allocate, messageClass: .errorResponse))
        XCTAssertEqual(challenge.errorCode?.code, 401)
        XCTAssertEqual(challenge.value(of: .realm).map { String(buffer: $0) }, realm)
        XCTAssertNotNil(challenge.value(of: .nonce))
        XCTAssertNil(challenge.messageIntegrityOffset)
        XCTAssertNil(challenge.messageIntegritySHA256Offset)
        XCTAssertNotNil(challenge.fingerprintOffset, "FINGERPRINT answered with FINGERPRINT")
        XCTAssertEqual(server.core.allocationCount, 0)
        XCTAssertTrue(server.allocationRequests.isEmpty)

        let a = alice.allocate()
        XCTAssertEqual(a.kind, .allocated)
        let request = try XCTUnwrap(a.request)
        XCTAssertEqual(request.client, alice.key)
        XCTAssertEqual(request.families, [.ipv4])
        XCTAssertFalse(request.evenPort)
        XCTAssertFalse(request.reserveNext)
        XCTAssertNil(request.reservationToken)
        XCTAssertFalse(request.dontFragment)

        let m = try XCTUnwrap(a.message)
        XCTAssertEqual(m.type, STUNMessageType(method: .allocate, messageClass: .successResponse))
        XCTAssertEqual(a.relayedAddresses, [relayed(port: 50000)])
        XCTAssertEqual(a.lifetime, 600)
        XCTAssertEqual(m.address(of: .xorMappedAddress, xor: true), alice.key.address)
        XCTAssertNil(m.value(of: .reservationToken))
        XCTAssertNil(m.value(of: .addressErrorCode))
        XCTAssertEqual(m.value(of: .software).map { String(buffer: $0) }, "parley")
        XCTAssertNotNil(m.messageIntegrityOffset)
        XCTAssertNil(m.messageIntegritySHA256Offset)
        XCTAssertNotNil(m.fingerprintOffset)
        XCTAssertEqual(STUNIntegrity.verify(m, key: .longTerm(username: alice.username, realm: realm, password: alice.password)),
                       .valid)
        XCTAssertEqual(STUNIntegrity.verify(m, key: .longTerm(username: alice.username, realm: realm, password: "nope")),
                       .invalid)

        let allocation = try XCTUnwrap(server.core.allocation(for: alice.key))
        XCTAssertEqual(allocation.relays.map(\.relay), [relay(1)])
        XCTAssertEqual(allocation.relays.map(\.address), [relayed(port: 50000)])
        XCTAssertEqual(allocation.username, alice.username)
        XCTAssertEqual(allocation.expiry, t0 + 600_000)
        XCTAssertEqual(server.core.allocationCount, 1)
        XCTAssertEqual(server.quota.total, 1)
    }

    func testAllocateLifetimeIsTheDefaultOrTheRequestedValueCappedAtTheMaximum() {
        let server = makeServer()
        let cases: [(requested: UInt32?, granted: UInt32)] = [
            (nil, 600), (1200, 1200), (99999, 3600), (3600, 3600), (3601, 3600), (30, 600), (0, 600), (601, 601),
        ]
        for (i, c) in cases.enumerated() {
            let client = restClient(server, port: 41000 + UInt16(i))
            let a = allocated(client, c.requested.map { [TURNAttribute.lifetime($0)] } ?? [])
            XCTAssertEqual(a.lifetime, c.granted, "requested \(String(describing: c.requested))")
            XCTAssertEqual(server.core.allocation(for: client.key)?.expiry, t0 + UInt64(c.granted) * 1000)
        }
    }

    func testRetransmittedAllocateGetsTheSameSuccess() throws {
        let server = makeServer()
        let alice = restClient(server)
        alice.challenge()
        let bytes = alice.build(.allocate, [.requestedTransport(17)])
        let first = alice.send(bytes)
        XCTAssertEqual(first.kind, .allocated)
        let again = alice.send(bytes)
        XCTAssertEqual(again.kind, success)
        XCTAssertEqual(again.bytes, first.bytes, "same transaction, same answer")
        XCTAssertEqual(server.allocationRequests.count, 1, "no second relay socket")
        XCTAssertEqual(server.quota.total, 1)

        // Later, the same answer but for the lifetime left.
        server.advance(seconds: 10)
        let later = alice.send(bytes)
        XCTAssertEqual(later.kind, success)
        XCTAssertEqual(later.relayedAddresses, first.relayedAddresses)
        XCTAssertEqual(later.message?.address(of: .xorMappedAddress, xor: true), alice.key.address)
        XCTAssertEqual(later.lifetime, 590)
        XCTAssertTrue(alice.verifies(later.message))
    }

    /// RFC 8656 §5: a retransmission is answered with "essentially the same response" — ADDRESS-ERROR-CODE
    /// and RESERVATION-TOKEN included.
    func testRetransmittedAllocateRepeatsAddressErrorCodeAndReservationToken() throws {
        let server = makeServer()
        let alice = restClient(server)
        alice.challenge()
        let dual = alice.build(.allocate, [.requestedTransport(17), .additionalFamily(0x02)])
        let first = alice.send(dual)
        XCTAssertEqual(first.kind, .allocated)
        XCTAssertNotNil(first.message?.value(of: .addressErrorCode))
        XCTAssertEqual(alice.send(dual).bytes, first.bytes)

        server.binding = .bind(reservationToken: 0x1122_3344_5566_7788)
        let bob = restClient(server, "bob", port: 40001)
        bob.challenge()
        let even = bob.build(.allocate, [.requestedTransport(17), .evenPort(reserve: true)])
        let second = bob.send(even)
        XCTAssertEqual(second.kind, .allocated)
        XCTAssertNotNil(second.message?.value(of: .reservationToken))
        XCTAssertEqual(bob.send(even).bytes, second.bytes)
        XCTAssertEqual(server.allocationRequests.count, 2)
    }

    func testRetransmissionWhileTheRelayIsBeingBoundIsDroppedThenAnswered() throws {
        let server = makeServer()
        server.binding = .hold
        let alice = restClient(server)
        alice.challenge()
        let bytes = alice.build(.allocate, [.requestedTransport(17)])
        let first = alice.send(bytes)
        XCTAssertEqual(first.kind, .allocating)
        XCTAssertEqual(alice.send(bytes).kind, .drop(.pending))
        // Another Allocate on the 5-tuple meanwhile is a mismatch.
        assertError(alice.allocate(), .allocationMismatch, alice)
        // Nothing is relayed for a pending allocation.
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noAllocation))
        let done = server.complete(try XCTUnwrap(first.request))
        XCTAssertEqual(done.kind, .allocated)
        let again = alice.send(bytes)
        XCTAssertEqual(again.kind, success)
        XCTAssertEqual(again.bytes, done.bytes)
    }

    func testAnotherAllocateOnTheSameFiveTupleIs437() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertError(alice.allocate(), .allocationMismatch, alice)
        // Even with other credentials (Allocate never gets 441).
        let bob = restClient(server, "bob")
        assertError(bob.allocate(), .allocationMismatch, bob)
        XCTAssertEqual(server.core.allocationCount, 1)
        XCTAssertEqual(server.quota.total, 1)
        XCTAssertEqual(server.allocationRequests.count, 1)
    }

    func testRequestedTransportIsRequiredAndMustBeUDP() {
        let server = makeServer()
        let alice = restClient(server)
        assertError(alice.allocate(transport: nil), .badRequest, alice)
        assertError(alice.allocate([.raw(0x0019, [17, 0])], transport: nil), .badRequest, alice)  // malformed
        assertError(alice.allocate(transport: 6), .unsupportedTransportProtocol, alice)  // TCP
        XCTAssertEqual(server.core.allocationCount, 0)
        XCTAssertEqual(server.quota.total, 0)
        XCTAssertTrue(server.allocationRequests.isEmpty)
    }

    func testRequestedAddressFamilyNotSupportedIs440() {
        let server = makeServer()  // IPv4 relaying only
        let alice = restClient(server)
        assertError(alice.allocate([.requestedFamily(0x02)]), .addressFamilyNotSupported, alice)
        assertError(alice.allocate([.requestedFamily(0x03)]), .addressFamilyNotSupported, alice)
        XCTAssertEqual(server.quota.total, 0)
        // IPv4 asked explicitly is fine.
        let a = allocated(alice, [.requestedFamily(0x01)])
        XCTAssertEqual(a.request?.families, [.ipv4])
    }

    func testNoIPv4RelayAndNoRequestedFamilyIs440() {
        let server = makeServer { $0.relayIPv4 = false; $0.relayIPv6 = true }
        let alice = restClient(server)
        assertError(alice.allocate(), .addressFamilyNotSupported, alice)
        let a = allocated(alice, [.requestedFamily(0x02)])
        XCTAssertEqual(a.request?.families, [.ipv6])
        XCTAssertEqual(a.relayedAddresses, [TURNTestServer.relayIPv6.withPort(50000)])
    }

    func testRequestedAndAdditionalAddressFamilyTogetherIs400() {
        let server = makeServer { $0.relayIPv6 = true }
        let alice = restClient(server)
        assertError(alice.allocate([.requestedFamily(0x01), .additionalFamily(0x02)]), .badRequest, alice)
        // ADDITIONAL-ADDRESS-FAMILY may only name IPv6 (§7.2 step 9).
        assertError(alice.allocate([.additionalFamily(0x01)]), .badRequest, alice)
        XCTAssertEqual(server.quota.total, 0)
    }

    func testAdditionalAddressFamilyMakesADualAllocation() throws {
        let server = makeServer { $0.relayIPv6 = true }
        let alice = restClient(server)
        let a = allocated(alice, [.additionalFamily(0x02)])
        XCTAssertEqual(a.request?.families, [.ipv4, .ipv6])
        XCTAssertEqual(a.relayedAddresses, [relayed(port: 50000), TURNTestServer.relayIPv6.withPort(50002)])
        XCTAssertNil(a.message?.value(of: .addressErrorCode))
        XCTAssertEqual(server.quota.total, 1, "one allocation, two relayed addresses")
        // Peers of both families.
        assertSuccess(alice.createPermission([peerA, peerV6]), alice)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [4]).kind, .send(data: [4], to: peerA, via: relay(1)))
        XCTAssertEqual(alice.sendIndication(to: peerV6, data: [6]).kind, .send(data: [6], to: peerV6, via: relay(2)))
        assertSuccess(alice.channelBind(0x4006, to: peerV6), alice)
        XCTAssertEqual(alice.channelData(0x4006, [1]).peer, peerV6)
        // Refresh of either family is fine; deleting closes both relay sockets.
        assertSuccess(alice.refresh(family: 0x02), alice)
        assertSuccess(alice.refresh(family: 0x01), alice)
        let gone = alice.refresh(lifetime: 0)
        XCTAssertEqual(gone.kind, .release([relay(1), relay(2)]))
        XCTAssertEqual(server.quota.total, 0)
    }

    func testAdditionalAddressFamilyWithoutIPv6RelayGivesIPv4AndAddressErrorCode440() throws {
        let server = makeServer()
        let alice = restClient(server)
        let a = allocated(alice, [.additionalFamily(0x02)])
        XCTAssertEqual(a.request?.families, [.ipv4])
        XCTAssertEqual(a.relayedAddresses, [relayed(port: 50000)])
        let value = try XCTUnwrap(a.message?.value(of: .addressErrorCode))
        // RFC 8656 §18.13: family, reserved, class, number, reason.
        XCTAssertEqual(Array(value.readableBytesView.prefix(4)), [0x02, 0x00, 4, 40])
        XCTAssertEqual(String(decoding: value.readableBytesView.dropFirst(4), as: UTF8.self), "Address Family not Supported")
        XCTAssertEqual(a.lifetime, 600)
    }

    func testReservationTokenCombinationsAre400() {
        let server = makeServer { $0.relayIPv6 = true }
        let alice = restClient(server)
        let token = TURNAttribute.reservationToken(0x0102_0304_0506_0708)
        assertError(alice.allocate([.evenPort(reserve: false), token]), .badRequest, alice)
        assertError(alice.allocate([token, .requestedFamily(0x01)]), .badRequest, alice)
        assertError(alice.allocate([token, .additionalFamily(0x02)]), .badRequest, alice)
        assertError(alice.allocate([.raw(0x0022, [1, 2, 3, 4])]), .badRequest, alice)  // token of 4 bytes
        // §7.2 step 8: a reserved pair is of one family.
        assertError(alice.allocate([.evenPort(reserve: true), .additionalFamily(0x02)]), .badRequest, alice)
        XCTAssertTrue(server.allocationRequests.isEmpty)
        XCTAssertEqual(server.quota.total, 0)
    }

    func testEvenPortReservationIsReportedAndItsTokenReturnedAndRedeemable() throws {
        let server = makeServer()
        let token: UInt64 = 0x0102_0304_0506_0708
        server.binding = .bind(reservationToken: token)
        let alice = restClient(server)
        let a = allocated(alice, [.evenPort(reserve: true)])
        let request = try XCTUnwrap(a.request)
        XCTAssertTrue(request.evenPort)
        XCTAssertTrue(request.reserveNext)
        XCTAssertNil(request.reservationToken)
        XCTAssertEqual(a.message?.value(of: .reservationToken).map { Array($0.readableBytesView) }, [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(a.relayedAddresses.first?.port, 50000)

        // Another client redeems the token.
        server.binding = .bind(reservationToken: nil)
        let bob = restClient(server, "bob", port: 40001)
        let b = allocated(bob, [.reservationToken(token)])
        let redeem = try XCTUnwrap(b.request)
        XCTAssertEqual(redeem.reservationToken, token)
        XCTAssertFalse(redeem.evenPort)
        XCTAssertFalse(redeem.reserveNext)
        XCTAssertEqual(redeem.families, [.ipv4])
        XCTAssertNil(b.message?.value(of: .reservationToken))

        // EVEN-PORT without R: an even port, nothing reserved.
        let carol = restClient(server, "carol", port: 40002)
        let c = allocated(carol, [.evenPort(reserve: false)])
        XCTAssertEqual(c.request?.evenPort, true)
        XCTAssertEqual(c.request?.reserveNext, false)
        XCTAssertNil(c.message?.value(of: .reservationToken))
    }

    func testDontFragmentIsReportedInTheRequest() throws {
        let server = makeServer()
        let alice = restClient(server)
        let a = allocated(alice, [.dontFragment])
        XCTAssertEqual(a.request?.dontFragment, true)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.dontFragment, true)
        let bob = restClient(server, "bob", port: 40001)
        let b = allocated(bob)
        XCTAssertEqual(b.request?.dontFragment, false)
        XCTAssertEqual(server.core.allocation(for: bob.key)?.dontFragment, false)
    }

    func testAllocationFailedIs508AndReleasesTheQuota() throws {
        let server = makeServer()
        server.binding = .fail(.insufficientCapacity)
        let alice = restClient(server)
        let a = alice.allocate()
        XCTAssertEqual(a.kind, .allocationFailed)
        XCTAssertEqual(a.errorCode, 508)
        XCTAssertEqual(a.message?.type, STUNMessageType(method: .allocate, messageClass: .errorResponse))
        XCTAssertTrue(alice.verifies(a.message))
        XCTAssertEqual(server.core.allocationCount, 0)
        XCTAssertEqual(server.quota.total, 0)
        // Binding late for the failed request does nothing.
        XCTAssertEqual(server.complete(try XCTUnwrap(a.request)).kind, .discarded)
        // The 5-tuple is free again.
        server.binding = .bind(reservationToken: nil)
        allocated(alice)
        XCTAssertEqual(server.quota.total, 1)
    }

    func testPerUserQuotaIs486() {
        let server = makeServer { $0.maxAllocationsPerUser = 2 }
        let alice1 = restClient(server, port: 40001)
        let alice2 = restClient(server, port: 40002)
        let alice3 = restClient(server, port: 40003)
        allocated(alice1)
        allocated(alice2)
        assertError(alice3.allocate(), .allocationQuotaReached, alice3)
        XCTAssertEqual(server.allocationRequests.count, 2)
        allocated(restClient(server, "bob", port: 40004))
        // Deleting one frees a place.
        XCTAssertEqual(alice1.refresh(lifetime: 0).kind, .release([relay(1)]))
        allocated(alice3)
        XCTAssertEqual(server.quota.total, 3)
    }

    func testTotalQuotaIs508() {
        let server = makeServer { $0.maxAllocations = 2 }
        let alice = restClient(server, port: 40001)
        allocated(alice)
        allocated(restClient(server, "bob", port: 40002))
        let carol = restClient(server, "carol", port: 40003)
        assertError(carol.allocate(), .insufficientCapacity, carol)
        XCTAssertEqual(server.allocationRequests.count, 2)
        XCTAssertEqual(alice.refresh(lifetime: 0).kind, .release([relay(1)]))
        allocated(carol)
    }

    func testUnknownComprehensionRequiredAttributeIs420AfterAuthentication() throws {
        let server = makeServer()
        let alice = restClient(server)
        let unknown = TURNAttribute.raw(0x0031, [0, 0, 0, 0])
        // Unauthenticated: the challenge comes first.
        XCTAssertEqual(alice.challenge(.allocate, [.requestedTransport(17), unknown]).errorCode, 401)
        let a = alice.allocate([unknown, .raw(0x0032, [1]), .raw(0x8055, [1, 2, 3])])
        assertError(a, .unknownAttribute, alice)
        let list = try XCTUnwrap(a.message?.value(of: .unknownAttributes))
        XCTAssertEqual(Array(list.readableBytesView), [0x00, 0x31, 0x00, 0x32])
        XCTAssertTrue(server.allocationRequests.isEmpty)
        XCTAssertEqual(server.quota.total, 0)
        // Comprehension-optional unknowns are ignored.
        allocated(alice, [.raw(0x8055, [1, 2, 3])])
        // The same for the other requests.
        assertError(alice.request(.refresh, [unknown]), .unknownAttribute, alice)
        assertError(alice.request(.createPermission, [.peer(peerA), unknown]), .unknownAttribute, alice)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
    }

    func testOtherMethodsAndClassesAreNotServed() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        // A Data indication from a client, a response, an unknown method.
        XCTAssertEqual(alice.send(alice.build(.data, [.peer(peerA), .data([1])], messageClass: .indication)).kind,
                       .drop(.malformed))
        XCTAssertEqual(alice.send(alice.build(.allocate, [], messageClass: .successResponse)).kind, .drop(.malformed))
        XCTAssertEqual(alice.send(alice.build(STUNMethod(rawValue: 0x00A), [])).kind, failure(.badRequest))
    }

    // MARK: Refresh (§8)

    func testRefreshSetsTheLifetime() throws {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        server.advance(seconds: 100)
        let cases: [(requested: UInt32?, granted: UInt32)] = [
            (1200, 1200), (99999, 3600), (nil, 600), (3600, 3600), (601, 601),
            // §8.2: below the default, the default.
            (30, 600), (1, 600),
        ]
        for c in cases {
            let r = alice.refresh(lifetime: c.requested)
            assertSuccess(r, alice)
            XCTAssertEqual(r.message?.type, STUNMessageType(method: .refresh, messageClass: .successResponse))
            XCTAssertEqual(r.lifetime, c.granted, "requested \(String(describing: c.requested))")
            XCTAssertEqual(server.core.allocation(for: alice.key)?.expiry, server.now + UInt64(c.granted) * 1000)
        }
    }

    func testRefreshKeepsTheAllocationPastItsFirstLifetime() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        alice.createPermission([peerA])
        server.advance(seconds: 500)
        assertSuccess(alice.refresh(lifetime: 600), alice)
        alice.createPermission([peerA])
        server.now = t0 + 1_000_000
        XCTAssertTrue(server.core.expire(now: server.now).isEmpty)
        assertSuccess(alice.createPermission([peerA]), alice)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .send(data: [1], to: peerA, via: relay(1)))
        server.now = t0 + 1_100_000
        XCTAssertEqual(server.core.expire(now: server.now).count, 1)
    }

    func testRefreshWithLifetimeZeroDeletesTheAllocation() throws {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        let r = alice.refresh(lifetime: 0)
        XCTAssertEqual(r.kind, .release([relay(1)]))
        XCTAssertEqual(r.message?.type, STUNMessageType(method: .refresh, messageClass: .successResponse))
        XCTAssertEqual(r.lifetime, 0)
        XCTAssertTrue(alice.verifies(r.message))
        XCTAssertNil(server.core.allocation(for: alice.key))
        XCTAssertEqual(server.quota.total, 0)
        // Gone: a repeated delete or any request is 437, data is dropped; a new Allocate works.
        assertError(alice.refresh(lifetime: 0), .allocationMismatch, alice)
        assertError(alice.createPermission([peerA]), .allocationMismatch, alice)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noAllocation))
        XCTAssertEqual(alice.channelData(0x4000, [1]).drop, .noAllocation)
        let again = allocated(alice)
        XCTAssertEqual(again.relayedAddresses, [relayed(port: 50002)])
    }

    func testRefreshWithoutAllocationIs437() {
        let server = makeServer()
        let alice = restClient(server)
        assertError(alice.refresh(), .allocationMismatch, alice)
        assertError(alice.refresh(lifetime: 0), .allocationMismatch, alice)
    }

    func testRequestsWithAnotherUsernameOnTheFiveTupleAre441() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        let mallory = restClient(server, "mallory")  // same 5-tuple, valid credentials of another user
        assertError(mallory.refresh(), .wrongCredentials, mallory)
        assertError(mallory.refresh(lifetime: 0), .wrongCredentials, mallory)
        assertError(mallory.createPermission([peerA]), .wrongCredentials, mallory)
        assertError(mallory.channelBind(0x4000, to: peerA), .wrongCredentials, mallory)
        XCTAssertNotNil(server.core.allocation(for: alice.key))
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
        assertSuccess(alice.refresh(), alice)
    }

    func testRefreshRequestedAddressFamilyMismatchIs443() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertError(alice.refresh(family: 0x02), .peerAddressFamilyMismatch, alice)
        assertError(alice.refresh(lifetime: 0, family: 0x02), .peerAddressFamilyMismatch, alice)
        XCTAssertNotNil(server.core.allocation(for: alice.key))
        assertSuccess(alice.refresh(family: 0x01), alice)
    }

    // MARK: CreatePermission (§9, §10)

    func testCreatePermissionInstallsAPermissionForThePeerIPWhateverThePort() throws {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noPermission))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noPermission))

        let p = alice.createPermission([peerA])
        assertSuccess(p, alice)
        XCTAssertEqual(p.message?.type, STUNMessageType(method: .createPermission, messageClass: .successResponse))
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 1)
        let otherPort = peerA.withPort(9999)
        XCTAssertEqual(alice.sendIndication(to: otherPort, data: [1, 2, 3]).kind,
                       .send(data: [1, 2, 3], to: otherPort, via: relay(1)))
        XCTAssertEqual(server.fromPeer(peerA.withPort(1234), to: alice.key), .indication)
        XCTAssertEqual(server.fromPeer(peerB, to: alice.key), .drop(.noPermission))
        XCTAssertEqual(alice.sendIndication(to: peerB, data: [1]).kind, .drop(.noPermission))
    }

    func testCreatePermissionWithSeveralPeers() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertSuccess(alice.createPermission([peerA, peerB, peerC]), alice)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 3)
        for peer in [peerA, peerB, peerC] {
            XCTAssertEqual(server.fromPeer(peer, to: alice.key), .indication)
            XCTAssertEqual(alice.sendIndication(to: peer, data: [7]).kind, .send(data: [7], to: peer, via: relay(1)))
        }
    }

    func testCreatePermissionIsAllOrNothing() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertError(alice.createPermission([peerA, privatePeer, peerB]), .forbidden, denial: .privateNetwork, alice)
        assertError(alice.createPermission([peerA, loopbackPeer]), .forbidden, denial: .loopback, alice)
        assertError(alice.createPermission([peerA, .v4(0xC000_0205, port: 1)]), .forbidden, denial: .documentation, alice)
        assertError(alice.createPermission([peerA, peerV6]), .peerAddressFamilyMismatch, alice)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noPermission))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noPermission))
    }

    func testCreatePermissionWithoutPeerIs400AndWithoutAllocation437() {
        let server = makeServer()
        let alice = restClient(server)
        assertError(alice.createPermission([peerA]), .allocationMismatch, alice)
        allocated(alice)
        assertError(alice.createPermission([]), .badRequest, alice)
        assertError(alice.request(.createPermission, [.raw(0x0012, [0, 0x01, 0, 0])]), .badRequest, alice)  // truncated
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
    }

    func testPermissionLastsThreeHundredSeconds() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertSuccess(alice.createPermission([peerA]), alice)
        server.now = t0 + 299_000
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .send(data: [1], to: peerA, via: relay(1)))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .indication)
        server.now = t0 + 300_001
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noPermission))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noPermission))
        // The sweep forgets it.
        XCTAssertTrue(server.core.expire(now: server.now).isEmpty)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
    }

    func testCreatePermissionAgainRefreshesThePermission() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        alice.createPermission([peerA])
        server.now = t0 + 200_000
        assertSuccess(alice.createPermission([peerA.withPort(1)]), alice)  // any port, same IP
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 1)
        server.now = t0 + 499_000
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .send(data: [1], to: peerA, via: relay(1)))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .indication)
        server.now = t0 + 500_001
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noPermission))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noPermission))
    }

    // MARK: ChannelBind (§12)

    func testChannelNumbersFrom0x4000To0x4FFF() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertSuccess(alice.channelBind(0x4000, to: peerA), alice)
        assertSuccess(alice.channelBind(0x4FFF, to: peerB), alice)
        assertError(alice.channelBind(0x3FFF, to: peerC), .badRequest, alice)
        assertError(alice.channelBind(0x5000, to: peerC), .badRequest, alice)
        assertError(alice.channelBind(0x0000, to: peerC), .badRequest, alice)
        assertError(alice.channelBind(0xFFFF, to: peerC), .badRequest, alice)
        XCTAssertEqual(alice.channelData(0x4000, [1]).peer, peerA)
        XCTAssertEqual(alice.channelData(0x4FFF, [1]).peer, peerB)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channelCount, 2)
        XCTAssertEqual(server.fromPeer(peerC, to: alice.key), .drop(.noPermission), "a refused bind installs nothing")
    }

    func testChannelBindNeedsNumberAndPeerAndAPermittedPeerOfTheFamily() {
        let server = makeServer()
        let alice = restClient(server)
        assertError(alice.channelBind(0x4000, to: peerA), .allocationMismatch, alice)
        allocated(alice)
        assertError(alice.request(.channelBind, [.channel(0x4000)]), .badRequest, alice)
        assertError(alice.request(.channelBind, [.peer(peerA)]), .badRequest, alice)
        assertError(alice.request(.channelBind, [.raw(0x000C, [0x40, 0x00]), .peer(peerA)]), .badRequest, alice)
        assertError(alice.channelBind(0x4000, to: privatePeer), .forbidden, denial: .privateNetwork, alice)
        assertError(alice.channelBind(0x4000, to: peerV6), .peerAddressFamilyMismatch, alice)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channelCount, 0)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.permissionCount, 0)
    }

    func testChannelBindInstallsAPermissionAndTheChannel() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        let b = alice.channelBind(0x4000, to: peerA)
        assertSuccess(b, alice)
        XCTAssertEqual(b.message?.type, STUNMessageType(method: .channelBind, messageClass: .successResponse))
        // Peer → client on the channel; the same IP on another port has the permission but no channel.
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4000))
        XCTAssertEqual(server.fromPeer(peerA.withPort(5001), to: alice.key), .indication)
        XCTAssertEqual(server.fromPeer(peerB, to: alice.key), .drop(.noPermission))
        // Client → peer.
        let cd = alice.channelData(0x4000, [9, 9, 9])
        XCTAssertEqual(cd.peer, peerA)
        XCTAssertNil(cd.drop)
        XCTAssertEqual(alice.channelData(0x4000, [9, 9, 9], pad: true).peer, peerA)
        XCTAssertEqual(alice.channelData(0x4001, [1]).drop, .noChannel)
        XCTAssertEqual(alice.sendIndication(to: peerA.withPort(7777), data: [1]).kind,
                       .send(data: [1], to: peerA.withPort(7777), via: relay(1)))
        // A ChannelData datagram that lies about its length is dropped.
        var bad = ByteBuffer()
        bad.writeInteger(UInt16(0x4000))
        bad.writeInteger(UInt16(10))
        bad.writeBytes([1, 2])
        XCTAssertEqual(server.channelData(bad, from: alice.key).drop, .malformed)
    }

    func testRebindingTheSameNumberToTheSamePeerRefreshesIt() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice, [.lifetime(3600)])
        assertSuccess(alice.channelBind(0x4000, to: peerA), alice)
        server.now = t0 + 500_000
        assertSuccess(alice.channelBind(0x4000, to: peerA), alice)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channels[0x4000]?.expiry, t0 + 1_100_000)
        // Past the first binding's 600 s, relaying goes on (and the permission was refreshed too).
        server.now = t0 + 799_999
        XCTAssertEqual(alice.channelData(0x4000, [1]).peer, peerA)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4000))
        server.now = t0 + 800_000
        XCTAssertEqual(alice.channelData(0x4000, [1]).drop, .noPermission)
    }

    func testANumberAndAPeerAreBoundOnlyOnce() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        assertSuccess(alice.channelBind(0x4000, to: peerA), alice)
        // Same number to another peer (another port of the same IP is another peer).
        assertError(alice.channelBind(0x4000, to: peerB), .badRequest, alice)
        assertError(alice.channelBind(0x4000, to: peerA.withPort(5001)), .badRequest, alice)
        // Same peer to another number.
        assertError(alice.channelBind(0x4001, to: peerA), .badRequest, alice)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4000))
        XCTAssertEqual(alice.channelData(0x4001, [1]).drop, .noChannel)
        XCTAssertEqual(server.fromPeer(peerB, to: alice.key), .drop(.noPermission))
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channelCount, 1)
    }

    func testChannelBindingExpiresAfter600SecondsThenCoolsDownFor300() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice, [.lifetime(3600)])
        assertSuccess(alice.channelBind(0x4001, to: peerA), alice)
        // The permission is kept up by CreatePermission; the channel is not refreshed.
        server.now = t0 + 250_000
        assertSuccess(alice.createPermission([peerA]), alice)
        server.now = t0 + 500_000
        assertSuccess(alice.createPermission([peerA]), alice)
        server.now = t0 + 599_999
        XCTAssertEqual(alice.channelData(0x4001, [1]).peer, peerA)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4001))

        server.now = t0 + 600_000
        XCTAssertEqual(alice.channelData(0x4001, [1]).drop, .noChannel)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .indication, "back to Data indications")
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .send(data: [1], to: peerA, via: relay(1)))

        // Cooldown: neither the number nor the peer may go elsewhere (the sweep keeps the binding).
        server.now = t0 + 700_000
        XCTAssertTrue(server.core.expire(now: server.now).isEmpty)
        assertError(alice.channelBind(0x4001, to: peerB), .badRequest, alice)
        assertError(alice.channelBind(0x4002, to: peerA), .badRequest, alice)
        assertSuccess(alice.createPermission([peerA]), alice)
        server.now = t0 + 899_999
        assertError(alice.channelBind(0x4001, to: peerB), .badRequest, alice)
        assertError(alice.channelBind(0x4002, to: peerA), .badRequest, alice)
        XCTAssertEqual(alice.channelData(0x4001, [1]).drop, .noChannel)

        // After it, both are free.
        server.now = t0 + 900_000
        assertSuccess(alice.channelBind(0x4001, to: peerB), alice)
        XCTAssertEqual(alice.channelData(0x4001, [1]).peer, peerB)
        XCTAssertEqual(server.fromPeer(peerB, to: alice.key), .channel(0x4001))
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .indication)
        assertSuccess(alice.channelBind(0x4002, to: peerA), alice)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4002))
        XCTAssertEqual(alice.channelData(0x4002, [1]).peer, peerA)
    }

    func testAnExpiredBindingCanBeRenewedToTheSamePeerDuringItsCooldown() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice, [.lifetime(3600)])
        assertSuccess(alice.channelBind(0x4001, to: peerA), alice)
        server.now = t0 + 700_000
        XCTAssertEqual(alice.channelData(0x4001, [1]).drop, .noChannel)
        assertSuccess(alice.channelBind(0x4001, to: peerA), alice)
        XCTAssertEqual(alice.channelData(0x4001, [1]).peer, peerA)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4001))
    }

    func testTheSweepDropsChannelsAfterTheirCooldown() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice, [.lifetime(3600)])
        alice.channelBind(0x4001, to: peerA)
        XCTAssertTrue(server.core.expire(now: t0 + 899_999).isEmpty)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channelCount, 1)
        XCTAssertTrue(server.core.expire(now: t0 + 900_000).isEmpty)
        XCTAssertEqual(server.core.allocation(for: alice.key)?.channelCount, 0)
        server.now = t0 + 900_000
        assertSuccess(alice.channelBind(0x4001, to: peerB), alice)
        assertSuccess(alice.channelBind(0x4002, to: peerA), alice)
    }

    // MARK: Send indication (§11.2)

    func testSendIndicationIsRelayedOnlyWithAPermission() {
        let server = makeServer()
        let alice = restClient(server)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noAllocation))
        allocated(alice)
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noPermission))
        alice.createPermission([peerA])
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1, 2, 3]).kind, .send(data: [1, 2, 3], to: peerA, via: relay(1)))
        XCTAssertEqual(alice.sendIndication(to: peerA, data: []).kind, .send(data: [], to: peerA, via: relay(1)))
        // Malformed: no DATA, no peer, an unknown comprehension-required attribute.
        XCTAssertEqual(alice.sendIndication(to: peerA, data: nil).kind, .drop(.malformed))
        XCTAssertEqual(alice.sendIndication(to: nil, data: [1]).kind, .drop(.malformed))
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1], extra: [.raw(0x0031, [0, 0, 0, 0])]).kind, .drop(.malformed))
        // Refused peers, whatever the permissions.
        XCTAssertEqual(alice.sendIndication(to: privatePeer, data: [1]).kind, .drop(.deniedPeer))
        XCTAssertEqual(alice.sendIndication(to: loopbackPeer, data: [1]).kind, .drop(.deniedPeer))
        XCTAssertEqual(alice.sendIndication(to: .v6(0xFE80_0000_0000_0000, 1, port: 1), data: [1]).kind, .drop(.deniedPeer))
        // A Send indication from another 5-tuple does not use alice's allocation.
        let other = restClient(server, port: 40001)
        XCTAssertEqual(other.sendIndication(to: peerA, data: [1]).kind, .drop(.noAllocation))
    }

    func testSendIndicationWithDontFragment() {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice)
        alice.createPermission([peerA])
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1], dontFragment: true).kind, .drop(.fragmentation))
        let bob = restClient(server, "bob", port: 40001)
        allocated(bob, [.dontFragment])
        bob.createPermission([peerA])
        XCTAssertEqual(bob.sendIndication(to: peerA, data: [1], dontFragment: true).kind, .send(data: [1], to: peerA, via: relay(2)))
        XCTAssertEqual(bob.sendIndication(to: peerA, data: [1]).kind, .send(data: [1], to: peerA, via: relay(2)))
    }

    // MARK: Peer → client (§11.3, §12.7)

    func testDataFromPeersGoesOnTheChannelOrAsAnIndicationOrNowhere() {
        let server = makeServer()
        let alice = restClient(server)
        XCTAssertNil(server.fromPeer(peerA, to: alice.key))
        allocated(alice)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noPermission))
        alice.createPermission([peerA, peerB])
        alice.channelBind(0x4321, to: peerA)
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .channel(0x4321))
        XCTAssertEqual(server.fromPeer(peerB, to: alice.key), .indication)
        XCTAssertEqual(server.fromPeer(peerC, to: alice.key), .drop(.noPermission))
        XCTAssertEqual(server.fromPeer(peerV6, to: alice.key), .drop(.noPermission))
        // Once the allocation is over, nothing.
        server.now = t0 + 600_000
        XCTAssertEqual(server.fromPeer(peerA, to: alice.key), .drop(.noAllocation))
    }

    // MARK: Allocation expiry

    func testExpireRemovesAnAllocationAtItsLifetimeAndReleasesTheQuota() throws {
        let server = makeServer { $0.maxAllocationsPerUser = 1 }
        let alice = restClient(server)
        allocated(alice)
        let bob = restClient(server, "bob", port: 40001)
        allocated(bob, [.lifetime(1200)])
        alice.createPermission([peerA])
        XCTAssertTrue(server.core.expire(now: t0 + 599_999).isEmpty)
        XCTAssertEqual(server.core.allocationCount, 2)

        server.now = t0 + 600_000
        // Over even before the sweep: no data, and requests find no allocation.
        XCTAssertEqual(alice.sendIndication(to: peerA, data: [1]).kind, .drop(.noAllocation))
        XCTAssertEqual(alice.channelData(0x4000, [1]).drop, .noAllocation)
        assertError(alice.refresh(), .allocationMismatch, alice)
        assertError(alice.createPermission([peerA]), .allocationMismatch, alice)
        assertError(alice.channelBind(0x4000, to: peerA), .allocationMismatch, alice)

        let gone = server.core.expire(now: server.now)
        XCTAssertEqual(gone.map(\.client), [alice.key])
        XCTAssertEqual(gone.first?.relays.map(\.relay), [relay(1)])
        XCTAssertNil(server.core.allocation(for: alice.key))
        XCTAssertNotNil(server.core.allocation(for: bob.key))
        XCTAssertEqual(server.quota.total, 1)
        // alice's quota place is free again.
        allocated(alice, [.lifetime(1800)])
        XCTAssertEqual(server.core.expire(now: t0 + 1_200_000).map(\.client), [bob.key])
    }

    // MARK: Credentials (RFC 8489 §9.2)

    func testRESTUserWithEachOfSeveralSecrets() {
        let server = makeServer()
        for (i, secret) in secrets.enumerated() {
            let client = restClient(server, "user\(i)", port: 41000 + UInt16(i), secret: secret)
            allocated(client)
        }
        let stranger = restClient(server, "eve", port: 42000, secret: "not-a-secret")
        XCTAssertEqual(stranger.allocate().kind, failure(.unauthenticated))
        let expiredName = "\(t0 / 1000 - 1):eve"
        let expired = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 42001), username: expiredName,
                                     password: LongTermAuthenticator.restPassword(username: expiredName, secret: secrets[0]),
                                     realm: realm)
        XCTAssertEqual(expired.allocate().kind, failure(.unauthenticated))
        let wrong = restClient(server, "eve", port: 42002)
        wrong.password = "guess"
        XCTAssertEqual(wrong.allocate().kind, failure(.unauthenticated))
        XCTAssertEqual(server.core.allocationCount, 3)
    }

    func testStaticUserWithMD5() throws {
        let carol = LongTermAuthenticator.StaticUser(name: "carol", realm: realm, password: "carol-pw")
        let server = makeServer(users: [carol])
        let client = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40000), username: "carol",
                                    password: "carol-pw", realm: realm)
        client.passwordAlgorithm = .md5
        let a = allocated(client)
        XCTAssertEqual(client.offeredAlgorithms, LongTermAuthenticator.passwordAlgorithmsValue)
        let m = try XCTUnwrap(a.message)
        XCTAssertNotNil(m.messageIntegrityOffset)
        XCTAssertNil(m.messageIntegritySHA256Offset)
        XCTAssertEqual(STUNIntegrity.verify(m, key: STUNIntegrityKey(bytes: carol.md5Key)), .valid)
        XCTAssertEqual(server.core.allocation(for: client.key)?.username, "carol")
        // A client that ignores the password-algorithms feature (RFC 5389 style): MD5, unsaid.
        let legacy = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40001), username: "carol",
                                    password: "carol-pw", realm: realm)
        legacy.usePasswordAlgorithms = false
        legacy.challenge()
        XCTAssertNotNil(legacy.offeredAlgorithms)
        let request = legacy.build(.allocate, [.requestedTransport(17)])
        XCTAssertNil(try STUNDecoder.decode(request).value(of: .passwordAlgorithm))
        allocated(legacy)
        // A wrong password is challenged again.
        let wrong = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40002), username: "carol",
                                   password: "nope", realm: realm)
        XCTAssertEqual(wrong.allocate().kind, failure(.unauthenticated))
    }

    func testStaticUserWithSHA256PasswordAlgorithm() throws {
        let carol = LongTermAuthenticator.StaticUser(name: "carol", realm: realm, password: "carol-pw")
        let server = makeServer(users: [carol])
        let client = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40000), username: "carol",
                                    password: "carol-pw", realm: realm)
        client.passwordAlgorithm = .sha256
        client.sha256MAC = true
        client.challenge()
        let request = try STUNDecoder.decode(client.build(.allocate, [.requestedTransport(17)]))
        XCTAssertEqual(request.value(of: .passwordAlgorithm).map { Array($0.readableBytesView) }, [0x00, 0x02, 0x00, 0x00])
        XCTAssertEqual(request.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) },
                       LongTermAuthenticator.passwordAlgorithmsValue)
        XCTAssertNotNil(request.messageIntegritySHA256Offset)
        XCTAssertNil(request.messageIntegrityOffset)

        let a = allocated(client)
        let m = try XCTUnwrap(a.message)
        XCTAssertNotNil(m.messageIntegritySHA256Offset, "answered with the MAC the request used")
        XCTAssertNil(m.messageIntegrityOffset)
        XCTAssertEqual(STUNIntegrity.verify(m, key: STUNIntegrityKey(bytes: carol.sha256Key)), .valid)
        XCTAssertEqual(STUNIntegrity.verify(m, key: STUNIntegrityKey(bytes: carol.md5Key)), .invalid)
        // Later requests on the allocation too.
        let r = client.refresh()
        assertSuccess(r, client)
        XCTAssertNotNil(r.message?.messageIntegritySHA256Offset)

        // The SHA-256 key with the SHA-1 MESSAGE-INTEGRITY is the client's choice as well.
        let other = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40001), username: "carol",
                                   password: "carol-pw", realm: realm)
        other.passwordAlgorithm = .sha256
        let b = allocated(other)
        XCTAssertNotNil(b.message?.messageIntegrityOffset)
        XCTAssertEqual(STUNIntegrity.verify(try XCTUnwrap(b.message), key: STUNIntegrityKey(bytes: carol.sha256Key)), .valid)
    }

    func testUserhashForAStaticUser() throws {
        let carol = LongTermAuthenticator.StaticUser(name: "carol", realm: realm, password: "carol-pw")
        let server = makeServer(users: [carol])
        let client = TURNTestClient(server: server, address: .v4(0xC633_6407, port: 40000), username: "carol",
                                    password: "carol-pw", realm: realm)
        client.useUserhash = true
        client.challenge()
        let request = try STUNDecoder.decode(client.build(.allocate, [.requestedTransport(17)]))
        XCTAssertNil(request.value(of: .username), "the name stays off the wire")
        XCTAssertEqual(request.value(of: .userhash).map { Array($0.readableBytesView) },
                       STUNIntegrity.userhash(username: "carol", realm: realm))
        allocated(client)
        XCTAssertEqual(server.core.allocation(for: client.key)?.username, "carol")
        assertSuccess(client.createPermission([peerA]), client)
        // The same user by name on the same 5-tuple is the same user (no 441).
        client.useUserhash = false
        assertSuccess(client.refresh(), client)
        // A REST user cannot be found from its hash.
        let alice = restClient(server, port: 40001)
        alice.useUserhash = true
        XCTAssertEqual(alice.allocate().kind, failure(.unauthenticated))
    }

    func testChallengeAdvertisesPasswordAlgorithmsWithinTheAmplificationBudget() throws {
        let server = makeServer()
        let alice = restClient(server)
        let request = alice.build(.allocate, [.requestedTransport(17)], authenticated: false)
        let c = alice.send(request)
        let m = try XCTUnwrap(c.message)
        XCTAssertEqual(m.errorCode?.code, 401)
        XCTAssertEqual(m.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) }, [0, 2, 0, 0, 0, 1, 0, 0])
        let nonce = try XCTUnwrap(m.value(of: .nonce).map { String(buffer: $0) })
        XCTAssertTrue(nonce.hasPrefix("obMatJos2"), nonce)
        XCTAssertTrue(nonce.hasPrefix("obMatJos2gAAA"), "the password-algorithms feature bit")
        XCTAssertLessThanOrEqual(c.bytes.count, request.readableBytes + 64)

        // A bare 20-byte request: no room for the list, a plain nonce; that nonce works (MD5).
        let bob = restClient(server, "bob", port: 40001)
        bob.fingerprint = false
        let small = bob.build(.allocate, [], authenticated: false)
        XCTAssertEqual(small.readableBytes, 20)
        let d = bob.send(small)
        let n = try XCTUnwrap(d.message)
        XCTAssertEqual(n.errorCode?.code, 401)
        XCTAssertNil(n.value(of: .passwordAlgorithms))
        XCTAssertNil(n.fingerprintOffset)
        let plain = try XCTUnwrap(n.value(of: .nonce).map { String(buffer: $0) })
        XCTAssertFalse(plain.hasPrefix("obMatJos2"))
        XCTAssertLessThanOrEqual(d.bytes.count, 20 + 64)
        XCTAssertNil(bob.offeredAlgorithms)
        allocated(bob)
    }

    func testTamperedPasswordAlgorithmsIs400() {
        let server = makeServer()
        let alice = restClient(server)
        alice.echoedAlgorithms = [0x00, 0x01, 0x00, 0x00]  // "MD5 only": a downgrade
        let a = alice.allocate()
        XCTAssertEqual(a.kind, failure(.badRequest))
        XCTAssertNil(a.message?.messageIntegrityOffset, "not authenticated, so not protected")
        alice.echoedAlgorithms = LongTermAuthenticator.passwordAlgorithmsValue + [0x00, 0x03, 0x00, 0x00]
        XCTAssertEqual(alice.allocate().kind, failure(.badRequest))
        XCTAssertTrue(server.allocationRequests.isEmpty)
        alice.echoedAlgorithms = nil
        allocated(alice)
    }

    func testStaleNonceIs438WithAFreshNonce() throws {
        let server = makeServer()
        let alice = restClient(server)
        allocated(alice, [.lifetime(3600)])
        let old = alice.nonce
        server.now = t0 + 601_000
        let r = alice.refresh()  // 438, then the retry with the new nonce
        assertSuccess(r, alice)
        let stale = try XCTUnwrap(alice.challenges.last)
        XCTAssertEqual(stale.errorCode?.code, 438)
        XCTAssertEqual(stale.type, STUNMessageType(method: .refresh, messageClass: .errorResponse))
        XCTAssertNotNil(stale.value(of: .realm))
        XCTAssertNotEqual(alice.nonce, old)
    }
}
