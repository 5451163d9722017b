import Crypto
import NIOCore
import ParleyWire
import XCTest

@testable import ParleyRelay

/// Long-term credentials (RFC 8489 §9.2) in the TURN REST form, with stateless nonces, driven through
/// the sans-I/O server with an injected clock.
final class AuthenticationTests: XCTestCase {
    let secret = "s3cret-one"
    let source = STUNAddress.v4(0xC000_0207, port: 40000)  // 192.0.2.7
    var t0: UInt64 = 1_800_000_000

    func makeServer(require: Bool = true, alternate: STUNAddress? = nil, secrets: [String]? = nil) -> STUNServer {
        let auth = LongTermAuthenticator(realm: "parley.test", secrets: secrets ?? [secret, "s3cret-two"],
                                         nonceKey: SymmetricKey(size: .bits256), nonceLifetime: 600)
        return STUNServer(configuration: STUNServerConfiguration(
            software: nil, alternateServer: alternate, authentication: auth, requireAuthentication: require))
    }

    struct Answer {
        let action: STUNServer.Action
        let message: STUNMessage?
    }

    func send(_ server: STUNServer, _ request: ByteBuffer, now: UInt64, from: STUNAddress? = nil) -> Answer {
        var out = ByteBufferAllocator().buffer(capacity: 256)
        let action = server.handle(request, from: from ?? source, on: .primary, transport: .udp, now: now, into: &out)
        return Answer(action: action, message: out.readableBytes > 0 ? try? STUNDecoder.decode(out) : nil)
    }

    func request(username: String? = nil, password: String? = nil, realm: String? = "parley.test", nonce: String? = nil,
                 sha256: Bool = false, userhash: [UInt8]? = nil) -> ByteBuffer {
        var buf = ByteBufferAllocator().buffer(capacity: 256)
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: .random(), into: &buf)
        if let username { w.append(.username, text: username, into: &buf) }
        if let userhash { w.append(.userhash, userhash, into: &buf) }
        if let realm, nonce != nil { w.append(.realm, text: realm, into: &buf) }
        if let nonce { w.append(.nonce, text: nonce, into: &buf) }
        // RFC 8489 §9.2.4: the key's algorithm is PASSWORD-ALGORITHM's (MD5 when absent), whichever MAC
        // protects the message; this client derives a SHA-256 key whenever it uses MI-SHA256.
        if sha256 { w.append(.passwordAlgorithm, uint32: 0x0002_0000, into: &buf) }
        if let password, let username {
            let key = STUNIntegrityKey.longTerm(username: username, realm: realm ?? "", password: password,
                                                algorithm: sha256 ? .sha256 : .md5)
            if sha256 { w.appendMessageIntegritySHA256(key: key, into: &buf) } else { w.appendMessageIntegrity(key: key, into: &buf) }
        }
        w.appendFingerprint(into: &buf)
        return buf
    }

    /// First round trip: no credentials → 401 with REALM and NONCE.
    func challenge(_ server: STUNServer, now: UInt64) throws -> String {
        let a = send(server, request(), now: now)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
        let m = try XCTUnwrap(a.message)
        XCTAssertEqual(m.type, .bindingError)
        XCTAssertEqual(m.errorCode?.code, 401)
        XCTAssertEqual(m.value(of: .realm).map { String(buffer: $0) }, "parley.test")
        return try XCTUnwrap(m.value(of: .nonce).map { String(buffer: $0) })
    }

    func testChallengeThenValidCredentialsSucceedWithProtectedAnswer() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 3600):alice"
        let password = LongTermAuthenticator.restPassword(username: user, secret: secret)
        let a = send(server, request(username: user, password: password, nonce: nonce), now: t0 + 1)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .success))
        let m = try XCTUnwrap(a.message)
        XCTAssertEqual(m.address(of: .xorMappedAddress, xor: true), source)
        // The answer is protected with the same key (RFC 8489 §9.2.4).
        let key = STUNIntegrityKey.longTerm(username: user, realm: "parley.test", password: password)
        XCTAssertEqual(STUNIntegrity.verify(m, key: key), .valid)
        XCTAssertEqual(STUNIntegrity.verify(m, key: STUNIntegrityKey(bytes: [1, 2, 3])), .invalid)
    }

    func testSecondSecretIsAcceptedForRotation() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 60):bob"
        let a = send(server, request(username: user, password: LongTermAuthenticator.restPassword(username: user, secret: "s3cret-two"),
                                     nonce: nonce), now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .success))
    }

    func testMessageIntegritySHA256() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 60):carol"
        let password = LongTermAuthenticator.restPassword(username: user, secret: secret)
        let a = send(server, request(username: user, password: password, nonce: nonce, sha256: true), now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .success))
        let m = try XCTUnwrap(a.message)
        XCTAssertNotNil(m.messageIntegritySHA256Offset, "answer protected with the algorithm the client used")
        XCTAssertNil(m.messageIntegrityOffset)
        let key = STUNIntegrityKey.longTerm(username: user, realm: "parley.test", password: password, algorithm: .sha256)
        XCTAssertEqual(STUNIntegrity.verify(m, key: key), .valid)
    }

    func testWrongPasswordIsChallenged() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 60):alice"
        let a = send(server, request(username: user, password: "not-the-password", nonce: nonce), now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
        XCTAssertNotNil(a.message?.value(of: .nonce))
    }

    func testExpiredRESTUsernameIsChallenged() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 - 1):alice"
        let a = send(server, request(username: user, password: LongTermAuthenticator.restPassword(username: user, secret: secret),
                                     nonce: nonce), now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
    }

    func testExpiredNonceGets438WithAFreshNonceThatWorks() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 7200):alice"
        let password = LongTermAuthenticator.restPassword(username: user, secret: secret)
        let later = t0 + 601
        let a = send(server, request(username: user, password: password, nonce: nonce), now: later)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.staleNonce)))
        let fresh = try XCTUnwrap(a.message?.value(of: .nonce).map { String(buffer: $0) })
        XCTAssertNotEqual(fresh, nonce)
        let b = send(server, request(username: user, password: password, nonce: fresh), now: later)
        XCTAssertEqual(b.action, .respond(to: source, from: .primary, outcome: .success))
    }

    func testNonceIsBoundToTheClientAddressAndCannotBeForged() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        let user = "\(t0 + 60):alice"
        let password = LongTermAuthenticator.restPassword(username: user, secret: secret)
        let elsewhere = STUNAddress.v4(0xC000_0208, port: 40000)
        let a = send(server, request(username: user, password: password, nonce: nonce), now: t0, from: elsewhere)
        XCTAssertEqual(a.action, .respond(to: elsewhere, from: .primary, outcome: .error(.unauthenticated)))
        // A nonce with a far-future expiry but a made-up MAC is refused too.
        var forgedBytes = (0..<4).map { UInt8(truncatingIfNeeded: (t0 + 100_000) >> UInt64(24 - 8 * $0)) }
        forgedBytes += Array(repeating: 0x5A, count: 8)
        let forged = LongTermAuthenticator.base64url(forgedBytes)
        XCTAssertEqual(forged.utf8.count, 16)
        let b = send(server, request(username: user, password: password, nonce: forged), now: t0)
        XCTAssertEqual(b.action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
    }

    func testIntegrityWithoutRealmOrNonceIsBadRequest() throws {
        let server = makeServer()
        var buf = ByteBufferAllocator().buffer(capacity: 128)
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: .random(), into: &buf)
        w.append(.username, text: "1:x", into: &buf)
        w.appendMessageIntegrity(key: .shortTerm(password: "x"), into: &buf)
        let a = send(server, buf, now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.badRequest)))
    }

    func testUserhashOnlyIsUnderstoodButChallenged() throws {
        let server = makeServer()
        let nonce = try challenge(server, now: t0)
        var buf = ByteBufferAllocator().buffer(capacity: 128)
        let w = STUNMessageWriter(type: .bindingRequest, transactionID: .random(), into: &buf)
        w.append(.userhash, STUNIntegrity.userhash(username: "\(t0 + 60):alice", realm: "parley.test"), into: &buf)
        w.append(.realm, text: "parley.test", into: &buf)
        w.append(.nonce, text: nonce, into: &buf)
        w.appendMessageIntegrity(key: STUNIntegrityKey(bytes: Array(repeating: 7, count: 16)), into: &buf)
        let a = send(server, buf, now: t0)
        // Not 420: USERHASH is a known attribute. 401: a REST user cannot be found from its hash.
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
    }

    func testOptionalAuthAnswersAnonymousRequestsButChecksOfferedCredentials() throws {
        let server = makeServer(require: false)
        XCTAssertEqual(send(server, request(), now: t0).action, .respond(to: source, from: .primary, outcome: .success))
        let user = "\(t0 + 60):alice"
        let bad = request(username: user, password: "wrong", nonce: "AAAAAAAAAAAAAAAA")
        XCTAssertEqual(send(server, bad, now: t0).action, .respond(to: source, from: .primary, outcome: .error(.unauthenticated)))
    }

    /// Every reason the STUN core drops a message has its counter: the I/O layer counts a drop with
    /// `drops[reason]!`, so a reason without one would trap.
    func testEveryDropReasonHasACounter() {
        let metrics = STUNMetrics()
        for reason in STUNServer.DropReason.allCases {
            XCTAssertNotNil(metrics.drops[reason], reason.rawValue)
            metrics.record(.drop(reason), transport: .udp, bytesIn: 20, bytesOut: 0)
        }
        XCTAssertTrue(STUNServer.DropReason.allCases.contains(.overBudget))
    }

    func testAlternateServerRedirectsOnlyAuthenticatedRequestsByDefault() throws {
        let alternate = STUNAddress.v4(0xC633_6401, port: 3478)  // 198.51.100.1
        let server = makeServer(require: false, alternate: alternate)
        XCTAssertEqual(send(server, request(), now: t0).action, .respond(to: source, from: .primary, outcome: .success))
        // This server's own nonce, from a failed attempt (each server has its own nonce key).
        let user = "\(t0 + 60):alice"
        let password = LongTermAuthenticator.restPassword(username: user, secret: secret)
        let first = send(server, request(username: user, password: "wrong", nonce: "0"), now: t0)
        let ownNonce = try XCTUnwrap(first.message?.value(of: .nonce).map { String(buffer: $0) })
        let a = send(server, request(username: user, password: password, nonce: ownNonce), now: t0)
        XCTAssertEqual(a.action, .respond(to: source, from: .primary, outcome: .error(.tryAlternate)))
        let m = try XCTUnwrap(a.message)
        XCTAssertEqual(m.address(of: .alternateServer, xor: false), alternate)
        XCTAssertEqual(STUNIntegrity.verify(m, key: .longTerm(username: user, realm: "parley.test", password: password)), .valid)
    }
}
