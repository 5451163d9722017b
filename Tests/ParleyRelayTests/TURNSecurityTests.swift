import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import ParleyWire
import XCTest

@testable import ParleyRelay

#if canImport(Glibc)
import Glibc
#endif

/// Security properties of the TURN relay (RFC 8656 §21): credentials and nonces, the peer policy, quotas,
/// floods of unauthenticated requests, malformed input. Mostly through the sans-I/O core with a manual
/// clock (unix milliseconds); ``testRealSockets…`` drives a ``STUNService`` with TURN over loopback.
///
/// RFC conformance (answer contents, lifetimes, channel rules) is TURNConformanceTests' business; these
/// tests ask "can a client or an attacker get something it must not".
final class TURNSecurityTests: XCTestCase {
    typealias Core = TURNServer<Int>

    static let realm = "parley.test"
    static let secret = "turn-rest-secret"
    static let t0: UInt64 = 1_800_000_000_000
    /// Clients (198.51.100.0/24 is fine for a client: the policy only judges peers).
    static let clientA = TURNClientKey(address: .v4(0xC633_6405, port: 40000), transport: .udp)
    static let clientB = TURNClientKey(address: .v4(0xC633_6406, port: 40000), transport: .udp)
    /// Peers the default policy permits.
    static let publicPeer = STUNAddress.v4(0x0808_0808, port: 3478)  // 8.8.8.8
    static let publicPeer6 = STUNAddress(parsing: "[2606:4700:4700::1111]:3478")!

    // MARK: Credentials and messages

    struct Credential {
        var username: String
        var password: String
        var realm = TURNSecurityTests.realm
        var key: STUNIntegrityKey { .longTerm(username: username, realm: realm, password: password) }

        /// A TURN REST credential expiring at `expiry` (unix seconds), signed with `secret`.
        static func rest(expiry: UInt64, name: String = "rtc", secret: String = TURNSecurityTests.secret) -> Credential {
            let username = "\(expiry):\(name)"
            return Credential(username: username, password: LongTermAuthenticator.restPassword(username: username, secret: secret))
        }
    }

    static let alice = Credential(username: "alice", password: "alice-password")
    static let bob = Credential(username: "bob", password: "bob-password")
    static let carol = Credential(username: "carol", password: "carol-password")

    static func authenticator(nonceLifetime: UInt64 = 600) -> LongTermAuthenticator {
        LongTermAuthenticator(
            realm: realm, secrets: [secret, "rotated-secret"],
            users: [alice, bob, carol].map { .init(name: $0.username, realm: realm, password: $0.password) },
            nonceKey: SymmetricKey(size: .bits256), nonceLifetime: nonceLifetime)
    }

    static func makeCore(policy: PeerPolicy = PeerPolicy(), perUser: Int = 32, total: Int = 20_000, quota: TURNQuota? = nil,
                         nonceLifetime: UInt64 = 600, maxPermissions: Int = 256, allowance: Int = 64) -> Core {
        let configuration = TURNConfiguration(
            authentication: authenticator(nonceLifetime: nonceLifetime), relayIPv6: true, maxAllocationsPerUser: perUser,
            maxAllocations: total, maxPermissionsPerAllocation: maxPermissions, peerPolicy: policy,
            amplificationAllowance: allowance)
        return Core(configuration: configuration,
                    quota: quota ?? TURNQuota(maxTotal: configuration.maxAllocations, maxPerUser: configuration.maxAllocationsPerUser))
    }

    /// A TURN message: `body` writes the method's attributes; with a credential and nonce it is signed
    /// (USERNAME, REALM, NONCE, MESSAGE-INTEGRITY).
    static func message(_ method: STUNMethod, _ messageClass: STUNClass = .request, tid: STUNTransactionID = .random(),
                        credential: Credential? = nil, nonce: String? = nil, fingerprint: Bool = true,
                        _ body: (STUNMessageWriter, inout ByteBuffer) -> Void = { _, _ in }) -> ByteBuffer {
        var b = ByteBuffer()
        let w = STUNMessageWriter(type: STUNMessageType(method: method, messageClass: messageClass), transactionID: tid, into: &b)
        body(w, &b)
        if let credential, let nonce {
            w.append(.username, text: credential.username, into: &b)
            w.append(.realm, text: credential.realm, into: &b)
            w.append(.nonce, text: nonce, into: &b)
            w.appendMessageIntegrity(key: credential.key, into: &b)
        }
        if fingerprint { w.appendFingerprint(into: &b) }
        return b
    }

    static func xorPeer(_ peer: STUNAddress, tid: STUNTransactionID) -> [UInt8] {
        var b = ByteBuffer()
        STUNAddressCodec.encode(peer, xor: true, transactionID: tid, into: &b)
        return Array(b.readableBytesView)
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// One answer of the core: what it decided and the decoded answer, if it wrote one.
    struct Reply {
        let action: Core.Action
        let request: ByteBuffer
        let answer: STUNMessage?
        var code: Int? { answer?.errorCode?.code }
        var isSuccess: Bool { answer?.type.messageClass == .successResponse }
        var nonce: String? { answer?.value(of: .nonce).map { String(buffer: $0) } }
        var isProtected: Bool { answer.map { $0.messageIntegrityOffset != nil || $0.messageIntegritySHA256Offset != nil } ?? false }
        var dropReason: TURNDropReason? {
            if case .drop(let r) = action { return r }
            return nil
        }
        var denial: PeerPolicy.Denial? {
            if case .respond(_, let d) = action { return d }
            return nil
        }
    }

    /// A core, its clock, and the client side of the handshake.
    final class Rig {
        var core: Core
        var now: UInt64
        private var nonces: [STUNAddress: String] = [:]
        private var relayPorts: UInt16 = 50000

        init(_ core: Core, now: UInt64 = TURNSecurityTests.t0) {
            self.core = core
            self.now = now
        }

        /// One message through the core, with the invariants every answer obeys.
        func send(_ request: ByteBuffer, from client: TURNClientKey, file: StaticString = #filePath,
                  line: UInt = #line) throws -> Reply {
            let m = try STUNDecoder.decode(request)
            var out = ByteBuffer()
            let action = core.handle(m, from: client, now: now, into: &out)
            guard out.readableBytes > 0 else {
                if case .respond = action { XCTFail("an answer without bytes", file: file, line: line) }
                return Reply(action: action, request: request, answer: nil)
            }
            let answer = try STUNDecoder.decode(out)
            XCTAssertEqual(answer.transactionID, m.transactionID, file: file, line: line)
            XCTAssertEqual(answer.type.method, m.type.method, file: file, line: line)
            let protected = answer.messageIntegrityOffset != nil || answer.messageIntegritySHA256Offset != nil
            if !protected {
                XCTAssertLessThanOrEqual(out.readableBytes, request.readableBytes + core.configuration.amplificationAllowance,
                                         "an unauthenticated answer beyond the amplification bound", file: file, line: line)
            }
            return Reply(action: action, request: request, answer: answer)
        }

        /// A nonce for the client's IP (an unauthenticated Allocate's 401), cached per IP.
        func nonce(for client: TURNClientKey) throws -> String {
            if let n = nonces[client.address.withPort(0)] { return n }
            let r = try send(TURNSecurityTests.message(.allocate), from: client)
            guard r.code == 401, let n = r.nonce else { throw Failure(description: "no 401 with a nonce: \(String(describing: r.code))") }
            nonces[client.address.withPort(0)] = n
            return n
        }

        func forgetNonces() { nonces = [:] }

        /// A signed request from `client` with `credential`.
        func request(_ method: STUNMethod, from client: TURNClientKey, as credential: Credential, tid: STUNTransactionID = .random(),
                     file: StaticString = #filePath, line: UInt = #line,
                     _ body: (STUNMessageWriter, inout ByteBuffer) -> Void = { _, _ in }) throws -> Reply {
            let m = TURNSecurityTests.message(method, tid: tid, credential: credential, nonce: try nonce(for: client), body)
            let r = try send(m, from: client, file: file, line: line)
            if let answer = r.answer, r.isProtected {
                XCTAssertEqual(STUNIntegrity.verify(answer, key: credential.key), .valid, "answer integrity", file: file, line: line)
            }
            return r
        }

        /// The Allocate's answer, or the allocation it made (relay sockets "bound" at once).
        func tryAllocate(from client: TURNClientKey, as credential: Credential, dual: Bool = true,
                         _ extra: (STUNMessageWriter, inout ByteBuffer) -> Void = { _, _ in }) throws -> (Reply, TURNAllocation<Int>?) {
            let r = try request(.allocate, from: client, as: credential) { w, b in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
                if dual { w.append(.additionalAddressFamily, [2, 0, 0, 0], into: &b) }
                extra(w, &b)
            }
            guard case .allocate(let request) = r.action else { return (r, nil) }
            relayPorts += 2
            let relays = request.families.map { family in
                TURNRelayEndpoint(relay: Int(relayPorts), address: family == .ipv4
                    ? STUNAddress.v4(0xC000_0201, port: relayPorts) : STUNAddress.v6(0x2001_0db8_0000_0000, 1, port: relayPorts))
            }
            var out = ByteBuffer()
            guard let allocation = core.allocated(request, relays: relays, now: now, into: &out) else { return (r, nil) }
            let answer = try STUNDecoder.decode(out)
            XCTAssertEqual(answer.type.messageClass, .successResponse)
            XCTAssertEqual(STUNIntegrity.verify(answer, key: credential.key), .valid)
            return (Reply(action: r.action, request: r.request, answer: answer), allocation)
        }

        @discardableResult
        func allocate(from client: TURNClientKey, as credential: Credential, dual: Bool = true,
                      file: StaticString = #filePath, line: UInt = #line) throws -> TURNAllocation<Int> {
            let (r, a) = try tryAllocate(from: client, as: credential, dual: dual)
            guard let a else { throw Failure(description: "Allocate refused: \(String(describing: r.code)) \(r.action)") }
            return a
        }

        func createPermission(from client: TURNClientKey, as credential: Credential, peers: [STUNAddress],
                              file: StaticString = #filePath, line: UInt = #line) throws -> Reply {
            let tid = STUNTransactionID.random()
            return try request(.createPermission, from: client, as: credential, tid: tid, file: file, line: line) { w, b in
                for p in peers { w.append(.xorPeerAddress, TURNSecurityTests.xorPeer(p, tid: tid), into: &b) }
            }
        }

        func channelBind(from client: TURNClientKey, as credential: Credential, number: UInt16, peer: STUNAddress,
                         file: StaticString = #filePath, line: UInt = #line) throws -> Reply {
            let tid = STUNTransactionID.random()
            return try request(.channelBind, from: client, as: credential, tid: tid, file: file, line: line) { w, b in
                w.append(.channelNumber, uint32: UInt32(number) << 16, into: &b)
                w.append(.xorPeerAddress, TURNSecurityTests.xorPeer(peer, tid: tid), into: &b)
            }
        }

        func sendIndication(from client: TURNClientKey, to peer: STUNAddress, data: [UInt8] = [1, 2, 3, 4, 5]) throws -> Reply {
            let tid = STUNTransactionID.random()
            return try send(TURNSecurityTests.message(.send, .indication, tid: tid, fingerprint: false) { w, b in
                w.append(.xorPeerAddress, TURNSecurityTests.xorPeer(peer, tid: tid), into: &b)
                w.append(.data, data, into: &b)
            }, from: client)
        }

        func refresh(from client: TURNClientKey, as credential: Credential, lifetime: UInt32) throws -> Reply {
            try request(.refresh, from: client, as: credential) { w, b in w.append(.lifetime, uint32: lifetime, into: &b) }
        }
    }

    // MARK: 1. Credentials

    func testWrongPasswordIs401AndMakesNoAllocation() throws {
        let rig = Rig(Self.makeCore())
        let wrongStatic = Credential(username: "alice", password: "not-alices-password")
        let rest = Credential.rest(expiry: Self.t0 / 1000 + 3600)
        let wrongREST = Credential(username: rest.username, password: rest.password + "x")
        let unknownUser = Credential(username: "mallory", password: "mallory")
        let wrongRealm = Credential(username: "alice", password: "alice-password", realm: "evil.test")
        for credential in [wrongStatic, wrongREST, unknownUser, wrongRealm] {
            let (r, a) = try rig.tryAllocate(from: Self.clientA, as: credential)
            XCTAssertNil(a, credential.username)
            XCTAssertEqual(r.code, 401, credential.username)
            XCTAssertFalse(r.isProtected, "a 401 carries no MESSAGE-INTEGRITY")
            XCTAssertNotNil(r.nonce)
            XCTAssertEqual(r.answer?.value(of: .realm).map { String(buffer: $0) }, Self.realm)
        }
        XCTAssertEqual(rig.core.allocationCount, 0)
        XCTAssertEqual(rig.core.quota.total, 0)
        // The right passwords do work (so the refusals above are about the password).
        try rig.allocate(from: Self.clientA, as: Self.alice)
        try rig.allocate(from: Self.clientB, as: rest)
        XCTAssertEqual(rig.core.allocationCount, 2)
    }

    func testExpiredRESTCredentialIs401() throws {
        let rig = Rig(Self.makeCore())
        let nowSeconds = Self.t0 / 1000
        for expiry in [nowSeconds - 1, nowSeconds - 86_400, 0] {
            let (r, a) = try rig.tryAllocate(from: Self.clientA, as: .rest(expiry: expiry))
            XCTAssertNil(a)
            XCTAssertEqual(r.code, 401, "expiry \(expiry)")
        }
        XCTAssertEqual(rig.core.allocationCount, 0)
        // A credential valid now stops working once the clock passes its expiry, on any request.
        let short = Credential.rest(expiry: nowSeconds + 10)
        try rig.allocate(from: Self.clientA, as: short)
        rig.now += 11_000
        XCTAssertEqual(try rig.refresh(from: Self.clientA, as: short, lifetime: 600).code, 401)
        XCTAssertEqual(try rig.createPermission(from: Self.clientA, as: short, peers: [Self.publicPeer]).code, 401)
        XCTAssertEqual(rig.core.allocation(for: Self.clientA)?.permissionCount, 0)
    }

    func testRESTCredentialSignedWithUnknownSecretIs401() throws {
        let rig = Rig(Self.makeCore())
        let expiry = Self.t0 / 1000 + 3600
        for credential in [Credential.rest(expiry: expiry, secret: "someone-elses-secret"), .rest(expiry: expiry, secret: ""),
                           // The expiry is inside the signed name: extending it invalidates the password.
                           Credential(username: "\(expiry + 86_400):rtc", password: Credential.rest(expiry: expiry).password)] {
            let (r, a) = try rig.tryAllocate(from: Self.clientA, as: credential)
            XCTAssertNil(a)
            XCTAssertEqual(r.code, 401)
        }
        XCTAssertEqual(rig.core.allocationCount, 0)
        // A second configured secret (rotation) is accepted.
        try rig.allocate(from: Self.clientA, as: .rest(expiry: expiry, secret: "rotated-secret"))
    }

    // MARK: 2. Nonces and replay

    func testNonceIssuedToOneIPIsRefusedFromAnother() throws {
        let rig = Rig(Self.makeCore())
        let nonceForA = try rig.nonce(for: Self.clientA)
        let request = Self.message(.allocate, credential: Self.alice, nonce: nonceForA) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }
        let r = try rig.send(request, from: Self.clientB)
        XCTAssertEqual(r.code, 401)
        XCTAssertNotEqual(r.nonce, nonceForA, "B gets a nonce of its own")
        XCTAssertNil(rig.core.allocation(for: Self.clientB))
        // Same for IPv6 and another transport: the nonce is bound to the IP, whatever else.
        let v6 = TURNClientKey(address: .v6(0x2001_0db8_0000_0000, 0x42, port: 40000), transport: .tcp)
        XCTAssertEqual(try rig.send(request, from: v6).code, 401)
        XCTAssertEqual(rig.core.allocationCount, 0)
        // And A itself is fine.
        XCTAssertNotNil(try rig.tryAllocate(from: Self.clientA, as: Self.alice).1)
    }

    func testExpiredNonceIs438WithAFreshNonce() throws {
        let rig = Rig(Self.makeCore(nonceLifetime: 600))
        let old = try rig.nonce(for: Self.clientA)
        rig.now += 601_000
        let request = Self.message(.allocate, credential: Self.alice, nonce: old) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }
        let r = try rig.send(request, from: Self.clientA)
        XCTAssertEqual(r.code, 438)
        XCTAssertFalse(r.isProtected)
        let fresh = try XCTUnwrap(r.nonce)
        XCTAssertNotEqual(fresh, old)
        XCTAssertNil(rig.core.allocation(for: Self.clientA))
        // The stale nonce from another IP is not even "stale": it is not this IP's nonce (401).
        XCTAssertEqual(try rig.send(request, from: Self.clientB).code, 401)
        // With the fresh nonce the same request goes through.
        let retry = Self.message(.allocate, credential: Self.alice, nonce: fresh) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }
        guard case .allocate = try rig.send(retry, from: Self.clientA).action else { return XCTFail("not allocated") }
        // An expired nonce on a request of an existing allocation is 438 as well (not served).
        let a = try XCTUnwrap(rig.core.allocation(for: Self.clientA))
        rig.now += 601_000
        let refresh = Self.message(.refresh, credential: Self.alice, nonce: fresh) { w, b in w.append(.lifetime, uint32: 0, into: &b) }
        XCTAssertEqual(try rig.send(refresh, from: Self.clientA).code, 438)
        XCTAssertTrue(rig.core.allocation(for: Self.clientA) === a, "a stale Refresh 0 deletes nothing")
    }

    func testReplayedAllocateFromAnotherAddressIs401() throws {
        let rig = Rig(Self.makeCore())
        let nonce = try rig.nonce(for: Self.clientA)
        let captured = Self.message(.allocate, credential: .rest(expiry: Self.t0 / 1000 + 3600), nonce: nonce) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }
        // Replayed before the victim's own copy arrives, and after.
        for attacker in [Self.clientB, TURNClientKey(address: .v4(0x0102_0304, port: 40000), transport: .tcp)] {
            let r = try rig.send(captured, from: attacker)
            XCTAssertEqual(r.code, 401)
            XCTAssertNil(rig.core.allocation(for: attacker))
        }
        guard case .allocate = try rig.send(captured, from: Self.clientA).action else { return XCTFail("victim not allocated") }
        for attacker in [Self.clientB, TURNClientKey(address: .v4(0x0102_0305, port: 3478), transport: .udp)] {
            XCTAssertEqual(try rig.send(captured, from: attacker).code, 401)
            XCTAssertNil(rig.core.allocation(for: attacker))
        }
        XCTAssertEqual(rig.core.allocationCount, 1)
        XCTAssertEqual(rig.core.quota.total, 1)
        // A captured CreatePermission replayed from elsewhere installs nothing either.
        let tid = STUNTransactionID.random()
        let permission = Self.message(.createPermission, tid: tid, credential: .rest(expiry: Self.t0 / 1000 + 3600), nonce: nonce) { w, b in
            w.append(.xorPeerAddress, Self.xorPeer(Self.publicPeer, tid: tid), into: &b)
        }
        XCTAssertEqual(try rig.send(permission, from: Self.clientB).code, 401)
    }

    // MARK: 3. Peer policy

    /// Every default-denied range, by a few addresses in it (first, inside, last), and the reason.
    static let deniedSamples: [(range: String, addresses: [String], reason: PeerPolicy.Denial)] = [
        ("0.0.0.0/8", ["0.0.0.0", "0.1.2.3", "0.255.255.255"], .reserved),
        ("10.0.0.0/8", ["10.0.0.0", "10.0.0.1", "10.255.255.255"], .privateNetwork),
        ("100.64.0.0/10", ["100.64.0.0", "100.100.100.100", "100.127.255.255"], .cgnat),
        ("127.0.0.0/8", ["127.0.0.1", "127.1.2.3", "127.255.255.255"], .loopback),
        ("169.254.0.0/16", ["169.254.0.1", "169.254.255.255"], .linkLocal),
        ("169.254.169.254/32", ["169.254.169.254"], .metadata),
        ("172.16.0.0/12", ["172.16.0.0", "172.20.1.1", "172.31.255.255"], .privateNetwork),
        ("192.0.0.0/24", ["192.0.0.0", "192.0.0.170", "192.0.0.255"], .reserved),
        ("192.0.2.0/24", ["192.0.2.0", "192.0.2.255"], .documentation),
        ("192.168.0.0/16", ["192.168.0.0", "192.168.1.1", "192.168.255.255"], .privateNetwork),
        ("198.18.0.0/15", ["198.18.0.0", "198.19.255.255"], .reserved),
        ("198.51.100.0/24", ["198.51.100.0", "198.51.100.255"], .documentation),
        ("203.0.113.0/24", ["203.0.113.0", "203.0.113.255"], .documentation),
        ("224.0.0.0/4", ["224.0.0.1", "239.255.255.250", "239.255.255.255"], .multicast),
        ("240.0.0.0/4", ["240.0.0.0", "250.1.2.3", "255.255.255.255"], .reserved),
        ("::/128", ["::"], .reserved),
        ("::1/128", ["::1"], .loopback),
        ("100::/64", ["100::", "100::1", "100::ffff:ffff:ffff:ffff"], .reserved),
        ("2001:2::/48", ["2001:2::", "2001:2::1", "2001:2:0:ffff:ffff:ffff:ffff:ffff"], .reserved),  // benchmarking
        ("2001:db8::/32", ["2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"], .documentation),
        ("3fff::/20", ["3fff::", "3fff:abc::1", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"], .documentation),  // RFC 9637
        ("fd00:ec2::254/128", ["fd00:ec2::254"], .metadata),
        ("fc00::/7", ["fc00::", "fc00::1", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], .uniqueLocal),
        ("fe80::/10", ["fe80::", "fe80::1", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], .linkLocal),
        ("fec0::/10", ["fec0::", "fec0::1", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], .privateNetwork),  // site-local
        ("ff00::/8", ["ff00::", "ff02::1", "ff0e::101", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"], .multicast),
    ]

    /// IPv4 inside IPv6, judged by the IPv4 address: IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96),
    /// local-use NAT64 (64:ff9b:1::/48, IPv4 last), 6to4 (2002::/16, IPv4 in bits 16–47), at both ends
    /// of the IPv6 ranges.
    static let embeddedSamples: [(address: STUNAddress, text: String, reason: PeerPolicy.Denial)] = [
        (.v6(0, 0x0000_FFFF_0A00_0001, port: 3478), "::ffff:10.0.0.1", .privateNetwork),
        (.v6(0, 0x0000_FFFF_7F00_0001, port: 3478), "::ffff:127.0.0.1", .loopback),
        (.v6(0, 0x0000_FFFF_A9FE_A9FE, port: 3478), "::ffff:169.254.169.254", .metadata),
        (.v6(0, 0x0000_FFFF_C0A8_0101, port: 3478), "::ffff:192.168.1.1", .privateNetwork),
        (.v6(0x0064_FF9B_0000_0000, 0x0000_0000_0A00_0001, port: 3478), "64:ff9b::a00:1", .privateNetwork),
        (.v6(0x0064_FF9B_0000_0000, 0x0000_0000_7F00_0001, port: 3478), "64:ff9b::7f00:1", .loopback),
        (.v6(0x0064_FF9B_0000_0000, 0x0000_0000_A9FE_A9FE, port: 3478), "64:ff9b::a9fe:a9fe", .metadata),
        (.v6(0x0064_FF9B_0000_0000, 0x0000_0000_AC10_0001, port: 3478), "64:ff9b::ac10:1", .privateNetwork),
        (.v6(0x0064_FF9B_0001_0000, 0x0000_0000_0A00_0001, port: 3478), "64:ff9b:1::a00:1", .privateNetwork),
        (.v6(0x0064_FF9B_0001_FFFF, 0xFFFF_FFFF_7F00_0001, port: 3478), "64:ff9b:1:ffff:ffff:ffff:7f00:1", .loopback),
        (.v6(0x0064_FF9B_0001_0000, 0x0000_0000_A9FE_A9FE, port: 3478), "64:ff9b:1::a9fe:a9fe", .metadata),
        (.v6(0x0064_FF9B_0001_1234, 0x0000_0000_6440_0001, port: 3478), "64:ff9b:1:1234::6440:1", .cgnat),
        (.v6(0x2002_0A00_0001_0000, 0, port: 3478), "2002:a00:1::", .privateNetwork),
        (.v6(0x2002_0A00_0001_FFFF, 0xFFFF_FFFF_FFFF_FFFF, port: 3478), "2002:a00:1:ffff:ffff:ffff:ffff:ffff", .privateNetwork),
        (.v6(0x2002_7F00_0001_0000, 1, port: 3478), "2002:7f00:1::1", .loopback),
        (.v6(0x2002_A9FE_A9FE_0000, 1, port: 3478), "2002:a9fe:a9fe::1", .metadata),
        (.v6(0x2002_C0A8_0101_0000, 1, port: 3478), "2002:c0a8:101::1", .privateNetwork),
        (.v6(0x2002_0000_0000_0000, 0, port: 3478), "2002::", .reserved),  // 0.0.0.0
        (.v6(0x2002_E000_0001_0000, 1, port: 3478), "2002:e000:1::1", .multicast),
    ]

    /// Just outside the denied ranges, and ordinary public addresses: permitted.
    static let permittedSamples: [String] = [
        "1.1.1.1", "8.8.8.8", "11.0.0.0", "9.255.255.255", "100.63.255.255", "100.128.0.0", "126.255.255.255", "128.0.0.0",
        "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "191.255.255.255", "192.0.1.0", "192.0.3.0",
        "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255",
        "203.0.114.0", "223.255.255.255", "2606:4700:4700::1111", "2001:db9::1", "2001:db7:ffff::1", "::2", "100:0:0:1::",
        "fbff:ffff::1", "ff::1",
        // Around 2001:2::/48, 3fff::/20, 2002::/16 and 64:ff9b:1::/48.
        "2001:1:ffff:ffff:ffff:ffff:ffff:ffff", "2001:2:1::", "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "3fff:1000::",
        "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2003::a00:1", "64:ff9b:2::a00:1", "64:ff9b:0:ffff::a00:1",
        // 6to4 and local-use NAT64 of public IPv4 addresses are judged as those addresses.
        "2002:808:808::1", "2002:101:101:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::808:808", "64:ff9b:1:ffff:ffff:ffff:101:101",
    ]

    static func parse(_ text: String) -> STUNAddress {
        // Not STUNAddress(parsing:): it turns ::ffff:a.b.c.d into a.b.c.d.
        guard let sa = try? SocketAddress(ipAddress: text, port: 3478) else { fatalError("bad test address \(text)") }
        if case .v6(let a) = sa {
            var h: UInt64 = 0
            var l: UInt64 = 0
            withUnsafeBytes(of: a.address.sin6_addr) { raw in
                for i in 0..<8 { h = (h << 8) | UInt64(raw[i]) }
                for i in 8..<16 { l = (l << 8) | UInt64(raw[i]) }
            }
            return .v6(h, l, port: 3478)
        }
        return STUNAddress(sa)!
    }

    func testPolicyRefusesEveryDefaultDeniedRange() {
        let policy = PeerPolicy()
        for sample in Self.deniedSamples {
            XCTAssertNotNil(IPPrefix(sample.range), sample.range)
            for text in sample.addresses {
                XCTAssertEqual(policy.denial(for: Self.parse(text)), sample.reason, "\(text) in \(sample.range)")
            }
        }
        for sample in Self.embeddedSamples {
            XCTAssertEqual(policy.denial(for: sample.address), sample.reason, sample.text)
        }
        for text in Self.permittedSamples {
            XCTAssertNil(policy.denial(for: Self.parse(text)), text)
        }
        XCTAssertNil(policy.denial(for: .v6(0, 0x0000_FFFF_0808_0808, port: 1)), "::ffff:8.8.8.8")
        XCTAssertNil(policy.denial(for: .v6(0x0064_FF9B_0000_0000, 0x0808_0808, port: 1)), "64:ff9b::808:808")
        // The ranges cover themselves: every default-denied prefix's own network address is refused.
        for (prefix, reason) in PeerPolicy.defaultDenied {
            XCTAssertEqual(policy.denial(for: prefix.network), reason, prefix.description)
        }
    }

    func testCreatePermissionAndChannelBindToEveryDeniedRangeIs403() throws {
        let rig = Rig(Self.makeCore())
        let allocation = try rig.allocate(from: Self.clientA, as: Self.alice, dual: true)
        XCTAssertEqual(allocation.relays.count, 2, "IPv4 and IPv6 relays, so IPv6 peers reach the policy")
        var peers = Self.deniedSamples.flatMap { s in s.addresses.map { (Self.parse($0), $0, s.reason) } }
        peers += Self.embeddedSamples.map { ($0.address, $0.text, $0.reason) }
        var channel: UInt16 = 0x4000
        for (peer, text, reason) in peers {
            let p = try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [peer])
            XCTAssertEqual(p.code, 403, text)
            XCTAssertEqual(p.denial, reason, text)
            XCTAssertTrue(p.isProtected, "an authenticated 403 is protected")
            let c = try rig.channelBind(from: Self.clientA, as: Self.alice, number: channel, peer: peer)
            XCTAssertEqual(c.code, 403, text)
            XCTAssertEqual(c.denial, reason, text)
            XCTAssertFalse(allocation.hasPermission(peer, now: rig.now), text)
            XCTAssertEqual(allocation.fromPeer(peer, length: 10, now: rig.now), .drop(.noPermission), text)
            XCTAssertEqual(rig.core.channelData(channel, length: 4, from: Self.clientA, now: rig.now).drop, .noChannel)
            channel += 1
        }
        XCTAssertEqual(allocation.permissionCount, 0)
        XCTAssertEqual(allocation.channelCount, 0)
        // All or nothing: a permitted peer next to a denied one is not installed.
        let mixed = try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.publicPeer, Self.parse("10.1.2.3")])
        XCTAssertEqual(mixed.code, 403)
        XCTAssertEqual(allocation.permissionCount, 0)
        // Public peers of both families are fine (the refusals above are about the ranges).
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.publicPeer, Self.publicPeer6]).isSuccess)
        XCTAssertTrue(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4FFF, peer: Self.publicPeer6).isSuccess)
        XCTAssertEqual(allocation.permissionCount, 2)
    }

    /// Regression: `PeerPolicy.mappedV4` was `IPPrefix("::ffff:0:0/96")!`, which is nil (the text parses as
    /// IPv4 0.0.0.0, and 96 > 32), so the first IPv6 peer trapped the process. Any client with an
    /// allocation — even an IPv4-only one — reached it with a Send indication to an IPv6 peer.
    func testIPv6PeerInSendIndicationDoesNotTrap() throws {
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice, dual: false)
        XCTAssertEqual(a.relays.count, 1)
        XCTAssertEqual(try rig.sendIndication(from: Self.clientA, to: Self.publicPeer6).dropReason, .noPermission)
        XCTAssertEqual(try rig.sendIndication(from: Self.clientA, to: Self.parse("fe80::1")).dropReason, .deniedPeer)
        XCTAssertEqual(try rig.sendIndication(from: Self.clientA, to: .v6(0, 0x0000_FFFF_0A00_0001, port: 1)).dropReason, .deniedPeer)
        XCTAssertEqual(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.publicPeer6]).code, 443)
    }

    func testIPv4MappedPrefixesParse() {
        // An IPv4-mapped prefix names the IPv4 addresses inside it, as the policy judges mapped peers.
        XCTAssertEqual(IPPrefix("::ffff:10.0.0.0/104"), IPPrefix("10.0.0.0/8"))
        XCTAssertEqual(IPPrefix("::ffff:0:0/96"), IPPrefix("0.0.0.0/0"))
        XCTAssertEqual(IPPrefix("::ffff:192.0.2.1"), IPPrefix("192.0.2.1/32"))
        XCTAssertEqual(IPPrefix("::ffff:0:0/80")?.network.isIPv4, false, "shorter than /96 stays IPv6")
        XCTAssertNil(IPPrefix("10.0.0.0/33"))
        XCTAssertNil(IPPrefix("::/129"))
        XCTAssertNil(IPPrefix("10.0.0.0/-1"))
        let policy = PeerPolicy(deny: [IPPrefix("::ffff:8.8.8.0/120")!])
        XCTAssertEqual(policy.denial(for: Self.parse("8.8.8.8")), .configured)
        XCTAssertEqual(policy.denial(for: .v6(0, 0x0000_FFFF_0808_0808, port: 1)), .configured)
        XCTAssertNil(policy.denial(for: Self.parse("8.8.4.4")))
    }

    func testAllowListOverridesAndDenyListWins() throws {
        let policy = PeerPolicy(allow: [IPPrefix("10.1.0.0/16")!, IPPrefix("fd00:1::/32")!],
                                deny: [IPPrefix("10.1.2.0/24")!, IPPrefix("8.8.8.0/24")!, IPPrefix("2606:4700::/32")!])
        XCTAssertNil(policy.denial(for: Self.parse("10.1.3.4")), "allow overrides the default")
        XCTAssertNil(policy.denial(for: Self.parse("fd00:1::5")))
        XCTAssertEqual(policy.denial(for: Self.parse("10.2.0.1")), .privateNetwork, "outside the allow list: default")
        XCTAssertEqual(policy.denial(for: Self.parse("10.1.2.3")), .configured, "deny wins over allow")
        XCTAssertEqual(policy.denial(for: Self.parse("8.8.8.8")), .configured, "deny refuses public addresses too")
        XCTAssertEqual(policy.denial(for: Self.parse("2606:4700:4700::1111")), .configured)
        XCTAssertEqual(policy.denial(for: .v6(0, 0x0000_FFFF_0A01_0203, port: 1)), .configured, "mapped form of a denied address")
        XCTAssertNil(policy.denial(for: .v6(0x0064_FF9B_0000_0000, 0x0A01_0304, port: 1)), "NAT64 form of an allowed address")
        XCTAssertNil(policy.denial(for: Self.parse("1.1.1.1")))
        // The same through the core.
        let rig = Rig(Self.makeCore(policy: policy))
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.parse("10.1.3.4")]).isSuccess)
        let denied = try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.parse("10.1.2.3")])
        XCTAssertEqual(denied.code, 403)
        XCTAssertEqual(denied.denial, .configured)
        XCTAssertEqual(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4000, peer: Self.publicPeer).code, 403)
        XCTAssertEqual(a.permissionCount, 1)
        XCTAssertTrue(a.hasPermission(Self.parse("10.1.3.4"), now: rig.now))
    }

    /// 6to4 and local-use NAT64 wrap an IPv4 address the relayed packet may reach: judged as that address
    /// by the allow list and the defaults, while a deny entry matches either form.
    func testWrappedIPv4IsJudgedAsIPv4AndDenyMatchesEitherForm() {
        let sixToFourOf10 = Self.parse("2002:a01:203::1")  // 10.1.2.3
        let sixToFourOf8 = Self.parse("2002:808:808::1")  // 8.8.8.8
        let localNAT64Of10 = Self.parse("64:ff9b:1::a01:203")
        XCTAssertEqual(PeerPolicy().denial(for: sixToFourOf10), .privateNetwork)
        XCTAssertEqual(PeerPolicy().denial(for: localNAT64Of10), .privateNetwork)
        XCTAssertNil(PeerPolicy().denial(for: sixToFourOf8))
        // Refusing 6to4 (or a local NAT64 prefix) as a whole, by its IPv6 prefix.
        let noSixToFour = PeerPolicy(deny: [IPPrefix("2002::/16")!, IPPrefix("64:ff9b:1::/48")!])
        XCTAssertEqual(noSixToFour.denial(for: sixToFourOf8), .configured)
        XCTAssertEqual(noSixToFour.denial(for: Self.parse("64:ff9b:1::808:808")), .configured)
        XCTAssertNil(noSixToFour.denial(for: Self.parse("8.8.8.8")))
        // Or by the IPv4 prefix inside, which refuses every wrapping of it.
        let no8 = PeerPolicy(deny: [IPPrefix("8.8.8.0/24")!])
        XCTAssertEqual(no8.denial(for: sixToFourOf8), .configured)
        XCTAssertEqual(no8.denial(for: Self.parse("64:ff9b:1::808:808")), .configured)
        // Allowing an IPv4 prefix opens its wrappings; allowing the IPv6 wrapper does not open private IPv4 inside.
        XCTAssertNil(PeerPolicy(allow: [IPPrefix("10.1.0.0/16")!]).denial(for: sixToFourOf10))
        XCTAssertEqual(PeerPolicy(allow: [IPPrefix("2002::/16")!]).denial(for: sixToFourOf10), .privateNetwork)
    }

    func testLoopbackSwitchOpensOnlyLoopback() throws {
        let policy = PeerPolicy(allowLoopback: true)
        for text in ["127.0.0.1", "127.255.255.254", "::1"] {
            XCTAssertNil(policy.denial(for: Self.parse(text)), text)
        }
        XCTAssertNil(policy.denial(for: .v6(0, 0x0000_FFFF_7F00_0001, port: 1)), "::ffff:127.0.0.1")
        for sample in Self.deniedSamples where sample.reason != .loopback {
            for text in sample.addresses {
                XCTAssertEqual(policy.denial(for: Self.parse(text)), sample.reason, "\(text) still denied with loopback allowed")
            }
        }
        for sample in Self.embeddedSamples where sample.reason != .loopback {
            XCTAssertEqual(policy.denial(for: sample.address), sample.reason, sample.text)
        }
        // A deny entry beats the loopback switch.
        XCTAssertEqual(PeerPolicy(deny: [IPPrefix("127.0.0.53/32")!], allowLoopback: true).denial(for: Self.parse("127.0.0.53")),
                       .configured)
        let rig = Rig(Self.makeCore(policy: policy))
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.parse("127.0.0.1")]).isSuccess)
        XCTAssertEqual(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.parse("169.254.169.254")]).code, 403)
        XCTAssertEqual(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.parse("0.0.0.0")]).code, 403)
        XCTAssertEqual(a.permissionCount, 1)
    }

    func testSendIndicationToDeniedPeerIsDropped() throws {
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [Self.publicPeer]).isSuccess)
        if case .send(_, let to, let via) = try rig.sendIndication(from: Self.clientA, to: Self.publicPeer).action {
            XCTAssertEqual(STUNAddress(to), Self.publicPeer)
            XCTAssertEqual(via, a.relays[0].relay)
        } else {
            XCTFail("a Send indication to a permitted peer is relayed")
        }
        var peers = Self.deniedSamples.flatMap { $0.addresses.map(Self.parse) }
        peers += Self.embeddedSamples.map(\.address)
        for peer in peers {
            let r = try rig.sendIndication(from: Self.clientA, to: peer)
            XCTAssertEqual(r.dropReason, .deniedPeer, "\(peer)")
            XCTAssertNil(r.answer)
        }
        // Denied even when a permission exists for the same IPv4 address through an "allow" that was
        // later removed: the policy is checked on every Send, not only at CreatePermission time.
        a.permit(Self.parse("10.0.0.1"), until: rig.now + 300_000)
        XCTAssertEqual(try rig.sendIndication(from: Self.clientA, to: Self.parse("10.0.0.1")).dropReason, .deniedPeer)
    }

    // MARK: 4. Quotas

    func testPerUserQuotaIs486AndReleasingFreesTheSlot() throws {
        let rig = Rig(Self.makeCore(perUser: 2, total: 100))
        let clients = (0..<4).map { TURNClientKey(address: .v4(0xC633_6410, port: 40000 + UInt16($0)), transport: .udp) }
        try rig.allocate(from: clients[0], as: Self.alice)
        try rig.allocate(from: clients[1], as: Self.alice)
        let (over, none) = try rig.tryAllocate(from: clients[2], as: Self.alice)
        XCTAssertNil(none)
        XCTAssertEqual(over.code, 486)
        XCTAssertTrue(over.isProtected)
        XCTAssertNil(rig.core.allocation(for: clients[2]))
        // Another user is not affected.
        try rig.allocate(from: clients[3], as: Self.bob)
        XCTAssertEqual(rig.core.quota.total, 3)
        // Refresh with LIFETIME 0 releases alice's slot.
        let release = try rig.refresh(from: clients[0], as: Self.alice, lifetime: 0)
        guard case .respondAndRelease(let relays) = release.action else { return XCTFail("Refresh 0 did not release") }
        XCTAssertEqual(relays.count, 2)
        XCTAssertEqual(rig.core.quota.total, 2)
        try rig.allocate(from: clients[2], as: Self.alice)
        XCTAssertEqual(try rig.tryAllocate(from: clients[0], as: Self.alice).0.code, 486)
        // Expiry releases too.
        rig.now += 601_000
        XCTAssertEqual(rig.core.expire(now: rig.now).count, 3)
        XCTAssertEqual(rig.core.quota.total, 0)
        XCTAssertEqual(rig.core.allocationCount, 0)
        rig.forgetNonces()
        try rig.allocate(from: clients[0], as: Self.alice)
        try rig.allocate(from: clients[1], as: Self.alice)
    }

    func testTotalQuotaIs508AcrossShardsAndReleasingFreesTheSlot() throws {
        let quota = TURNQuota(maxTotal: 3, maxPerUser: 10)
        let shard1 = Rig(Self.makeCore(total: 3, quota: quota))
        let shard2 = Rig(Self.makeCore(total: 3, quota: quota))
        try shard1.allocate(from: Self.clientA, as: Self.alice)
        try shard1.allocate(from: Self.clientB, as: Self.bob)
        let tcpA = TURNClientKey(address: Self.clientA.address, transport: .tcp)
        try shard2.allocate(from: tcpA, as: Self.carol)
        for (rig, client, user) in [(shard1, TURNClientKey(address: .v4(0x0102_0304, port: 1), transport: .udp), Self.carol),
                                    (shard2, Self.clientB, Self.alice)] {
            let (r, a) = try rig.tryAllocate(from: client, as: user)
            XCTAssertNil(a)
            XCTAssertEqual(r.code, 508)
            XCTAssertNil(rig.core.allocation(for: client))
        }
        XCTAssertEqual(quota.total, 3)
        // A relay that cannot be bound gives its slot back.
        shard2.core.remove(tcpA)
        XCTAssertEqual(quota.total, 2)
        let r = try shard2.request(.allocate, from: Self.clientB, as: Self.alice) { w, b in w.append(.requestedTransport, [17, 0, 0, 0], into: &b) }
        guard case .allocate(let request) = r.action else { return XCTFail("no allocate") }
        XCTAssertEqual(quota.total, 3)
        var out = ByteBuffer()
        shard2.core.allocationFailed(request, now: shard2.now, into: &out)
        XCTAssertEqual(try STUNDecoder.decode(out).errorCode?.code, 508)
        XCTAssertEqual(quota.total, 2)
        XCTAssertNil(shard2.core.allocation(for: Self.clientB))
        // Refresh 0 on one shard frees a slot for the other.
        try shard2.allocate(from: Self.clientB, as: Self.alice)
        XCTAssertEqual(try shard1.tryAllocate(from: TURNClientKey(address: .v4(0x0102_0304, port: 1), transport: .udp), as: Self.carol).0.code, 508)
        guard case .respondAndRelease = try shard1.refresh(from: Self.clientB, as: Self.bob, lifetime: 0).action else {
            return XCTFail("Refresh 0 did not release")
        }
        try shard1.allocate(from: TURNClientKey(address: .v4(0x0102_0304, port: 1), transport: .udp), as: Self.carol)
        // Expiry frees every slot; shutdown (removeAll) too.
        shard1.now += 3_601_000
        XCTAssertEqual(shard1.core.expire(now: shard1.now).count, 2)
        XCTAssertEqual(quota.total, 1)
        XCTAssertEqual(shard2.core.removeAll().count, 1)
        XCTAssertEqual(quota.total, 0)
    }

    // MARK: 4b. Permissions per allocation

    /// Distinct public peers 11.0.0.1, 11.0.0.2, … (one permission each).
    static func peers(_ range: Range<Int>) -> [STUNAddress] { range.map { .v4(0x0B00_0000 + UInt32($0) + 1, port: 3478) } }

    /// One user could otherwise grow one allocation without bound (200,000 permissions ≈ +17 MB): past
    /// `maxPermissionsPerAllocation` a CreatePermission or ChannelBind that adds a peer gets 508 and
    /// installs nothing; refreshing a permission the allocation holds is always allowed.
    func testPermissionCapIs508AndInstallsNothing() throws {
        XCTAssertEqual(TURNConfiguration(authentication: Self.authenticator()).maxPermissionsPerAllocation, 256)
        let rig = Rig(Self.makeCore(maxPermissions: 4))
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        let p = Self.peers(0..<8)
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Array(p[0..<3])).isSuccess)
        // The same IP twice (another port) is one permission: 3 + 1 fits.
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [p[0], p[3], p[3].withPort(9)]).isSuccess)
        XCTAssertEqual(a.permissionCount, 4)
        rig.now += 10_000
        let held = a.permissions
        // One new peer beyond the cap, alone or among held ones: 508, protected, nothing installed or refreshed.
        for peers in [[p[4]], [p[0], p[1], p[4]], [p[4], p[5]]] {
            let r = try rig.createPermission(from: Self.clientA, as: Self.alice, peers: peers)
            XCTAssertEqual(r.code, 508, "\(peers)")
            XCTAssertTrue(r.isProtected)
            XCTAssertEqual(a.permissions, held, "all or nothing")
        }
        XCTAssertFalse(a.hasPermission(p[4], now: rig.now))
        // ChannelBind installs a permission too: to a new peer it is refused, and binds no channel.
        let bind = try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4000, peer: p[5])
        XCTAssertEqual(bind.code, 508)
        XCTAssertEqual(a.channelCount, 0)
        XCTAssertEqual(a.permissions, held)
        // At the cap, held peers are refreshed (CreatePermission and ChannelBind alike).
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Array(p[0..<4])).isSuccess)
        XCTAssertTrue(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4001, peer: p[2]).isSuccess)
        XCTAssertEqual(a.permissions[p[0].withPort(0)], rig.now + 300_000)
        XCTAssertEqual(a.permissionCount, 4)
        // The cap is per allocation: another allocation of the same user has its own.
        let b = try rig.allocate(from: Self.clientB, as: Self.alice)
        XCTAssertTrue(try rig.createPermission(from: Self.clientB, as: Self.alice, peers: Array(p[4..<8])).isSuccess)
        XCTAssertEqual(b.permissionCount, 4)
        // Expired permissions make room even before the sweep has removed them.
        rig.now += 300_001
        XCTAssertEqual(a.permissionCount, 4, "not swept yet")
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Array(p[4..<8])).isSuccess)
        XCTAssertEqual(a.permissionCount, 4)
        XCTAssertTrue(a.hasPermission(p[7], now: rig.now))
    }

    /// With the default cap, installing thousands of permissions stops at 256 per allocation.
    func testDefaultCapBoundsPermissionsOfOneAllocation() throws {
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        var refused = 0
        for batch in 0..<40 {
            let r = try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Self.peers(batch * 50..<(batch + 1) * 50))
            if r.code == 508 { refused += 1 } else { XCTAssertTrue(r.isSuccess) }
        }
        XCTAssertEqual(a.permissionCount, 250, "five batches of 50 fit, the sixth would pass 256")
        XCTAssertEqual(refused, 35)
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Self.peers(250..<256)).isSuccess)
        XCTAssertEqual(a.permissionCount, 256)
        XCTAssertEqual(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: Self.peers(256..<257)).code, 508)
    }

    /// The sweep skips an allocation's tables until something in them is due, and then drops exactly
    /// what is: a permission refreshed after the earliest expiry was noted is kept.
    func testSweepDropsExactlyWhatIsDue() throws {
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        let p = Self.peers(0..<3)
        let t0 = rig.now
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [p[0]]).isSuccess)
        XCTAssertTrue(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4000, peer: p[2]).isSuccess)
        for second in 1...5 { XCTAssertTrue(rig.core.expire(now: t0 + UInt64(second) * 1000).isEmpty) }
        XCTAssertEqual(a.permissionCount, 2)
        // At t0 + 200 s p[0] is refreshed and p[1] added (both until t0 + 500 s). When t0 + 300 s passes,
        // only the channel's permission for p[2] (installed at t0) is due; the refreshed p[0] stays.
        rig.now = t0 + 200_000
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [p[0], p[1]]).isSuccess)
        XCTAssertTrue(try rig.refresh(from: Self.clientA, as: Self.alice, lifetime: 3600).isSuccess)  // outlives the channel
        XCTAssertTrue(rig.core.expire(now: t0 + 301_000).isEmpty)
        XCTAssertEqual(Set(a.permissions.keys), [p[0].withPort(0), p[1].withPort(0)])
        XCTAssertTrue(rig.core.expire(now: t0 + 499_999).isEmpty)
        XCTAssertEqual(a.permissionCount, 2, "due at t0 + 500 s, not before")
        XCTAssertTrue(rig.core.expire(now: t0 + 500_000).isEmpty)
        XCTAssertEqual(a.permissionCount, 0)
        // The channel (600 s) stays reserved through its cooldown (300 s more), then is released.
        XCTAssertTrue(rig.core.expire(now: t0 + 899_000).isEmpty)
        XCTAssertEqual(a.channelCount, 1)
        XCTAssertTrue(rig.core.expire(now: t0 + 900_001).isEmpty)
        XCTAssertEqual(a.channelCount, 0)
    }

    /// The sweep runs every second over every allocation: with nothing due it must not walk the
    /// permission tables (it used to filter each one, every second: 20,000 allocations × 256 permissions
    /// is five million entries a second for nothing). One allocation with 65,536 permissions, 200 sweeps:
    /// walking them takes hundreds of milliseconds even on a fast machine, skipping them well under one.
    func testSweepWithNothingDueDoesNotWalkThePermissions() throws {
        let rig = Rig(Self.makeCore(maxPermissions: 65_536))
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        XCTAssertTrue(try rig.refresh(from: Self.clientA, as: Self.alice, lifetime: 3600).isSuccess)
        for i in 0..<65_536 { a.permit(.v4(0x0B00_0000 + UInt32(i), port: 0), until: rig.now + 300_000) }
        let start = rig.now
        for second in 1...200 { _ = rig.core.expire(now: start + UInt64(second) * 1000) }
        XCTAssertEqual(a.permissionCount, 65_536)
        XCTAssertEqual(a.permissionWalks, 0, "200 sweeps with nothing due walked the permission table")
        // When they are due, one sweep walks the table once and drops them all.
        XCTAssertTrue(rig.core.expire(now: start + 300_000).isEmpty)
        XCTAssertEqual(a.permissionCount, 0)
        XCTAssertEqual(a.permissionWalks, 1)
    }

    // MARK: 4c. Amplification of the challenge

    /// The 401/438 challenge is unauthenticated, so it obeys the amplification bound like any answer. When
    /// not even the bare challenge (ERROR-CODE, REALM, NONCE) fits, the request gets no answer at all.
    func testChallengeBeyondTheAmplificationBudgetIsDropped() throws {
        // Realm "parley.test" (12 bytes padded): the bare challenge to a bare 20-byte Allocate is 64 bytes.
        let bare = LongTermAuthenticator.challengeLength(realm: Self.realm, advertiseAlgorithms: false, fingerprint: false)
        XCTAssertEqual(bare, 64)
        for allowance in [24, 43] {
            let rig = Rig(Self.makeCore(allowance: allowance))
            for (what, fingerprint, transport) in [("bare", false, false), ("FINGERPRINT", true, false),
                                                   ("REQUESTED-TRANSPORT", false, true), ("both", true, true)] {
                let request = Self.message(.allocate, fingerprint: fingerprint) { w, b in
                    if transport { w.append(.requestedTransport, [17, 0, 0, 0], into: &b) }
                }
                let challenge = LongTermAuthenticator.challengeLength(realm: Self.realm, advertiseAlgorithms: false,
                                                                      fingerprint: fingerprint)
                let r = try rig.send(request, from: Self.clientA)
                if challenge <= request.readableBytes + allowance {
                    XCTAssertEqual(r.code, 401, "allowance \(allowance), \(what)")
                } else {
                    XCTAssertEqual(r.dropReason, .overBudget, "allowance \(allowance), \(what)")
                    XCTAssertNil(r.answer)
                }
            }
            XCTAssertEqual(rig.core.allocationCount, 0)
        }
        // At exactly the bound the bare challenge goes out, with nothing optional (PASSWORD-ALGORITHMS).
        let rig = Rig(Self.makeCore(allowance: 44))
        let r = try rig.send(Self.message(.allocate, fingerprint: false), from: Self.clientA)
        XCTAssertEqual(r.code, 401)
        XCTAssertEqual(r.answer?.length, 64)
        XCTAssertNil(r.answer?.value(of: .passwordAlgorithms))
        // With the default allowance and a usual Allocate (REQUESTED-TRANSPORT, FINGERPRINT: 36 bytes) it
        // carries PASSWORD-ALGORITHMS and the feature cookie, and is exactly as long as challengeLength
        // says (so the budget arithmetic matches what is written).
        let usual = Self.message(.allocate) { w, b in w.append(.requestedTransport, [17, 0, 0, 0], into: &b) }
        let full = try Rig(Self.makeCore()).send(usual, from: Self.clientA)
        XCTAssertNotNil(full.answer?.value(of: .passwordAlgorithms))
        XCTAssertEqual(full.answer?.length,
                       LongTermAuthenticator.challengeLength(realm: Self.realm, advertiseAlgorithms: true, fingerprint: true))
    }

    /// A 438 (stale nonce) is a challenge too; here it fits, since a request that carries a nonce is long.
    func testStaleNonceChallengeWithSmallAllowance() throws {
        let rig = Rig(Self.makeCore(nonceLifetime: 600, allowance: 44))
        let nonce = try rig.nonce(for: Self.clientA)
        rig.now += 601_000
        let r = try rig.send(Self.message(.allocate, credential: Self.alice, nonce: nonce) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }, from: Self.clientA)
        XCTAssertEqual(r.code, 438)
    }

    /// Every reason a TURN message or datagram is dropped has its metric series (the shard looks them up,
    /// never creates them per packet).
    func testEveryDropReasonAndDenialHasAMetric() {
        let metrics = TURNMetrics()
        for reason in TURNDropReason.allCases { XCTAssertNotNil(metrics.drops[reason], reason.rawValue) }
        for denial in PeerPolicy.Denial.allCases { XCTAssertNotNil(metrics.denials[denial], denial.rawValue) }
        XCTAssertEqual(TURNDropReason.overBudget.rawValue, "over_budget")
    }

    // MARK: 5. Flood of unauthenticated Allocates from spoofed sources

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testFloodOfSpoofedUnauthenticatedAllocatesLeavesNoState() throws {
        var core = Self.makeCore()
        let allowance = core.configuration.amplificationAllowance
        var rng = SystemRandomNumberGenerator()
        var out = ByteBufferAllocator().buffer(capacity: 512)
        var request = ByteBufferAllocator().buffer(capacity: 512)
        let otherNonce = core.configuration.authentication.makeNonce(source: Self.clientA.address, now: Self.t0 / 1000)
        let rest = Credential.rest(expiry: Self.t0 / 1000 + 3600)
        var worst = Int.min
        var counts = [Int: Int]()

        func one(_ i: Int) throws {
            let source: STUNAddress = i % 4 == 3
                ? .v6(UInt64.random(in: 0x2000_0000_0000_0000...0x3FFF_FFFF_FFFF_FFFF, using: &rng), rng.next(), port: UInt16.random(in: 1...65535, using: &rng))
                : .v4(UInt32.random(in: 0x0100_0000...0xDFFF_FFFF, using: &rng), port: UInt16.random(in: 1...65535, using: &rng))
            let client = TURNClientKey(address: source, transport: i % 7 == 0 ? .tcp : .udp)
            request.clear()
            let w = STUNMessageWriter(type: STUNMessageType(method: .allocate, messageClass: .request), transactionID: .random(),
                                      into: &request)
            switch i % 5 {
            case 0:
                break  // the bare 20-byte Allocate: the worst case for amplification
            case 1:
                w.append(.requestedTransport, [17, 0, 0, 0], into: &request)
                w.appendFingerprint(into: &request)
            case 2:
                // Forged credentials: a random nonce and MESSAGE-INTEGRITY.
                w.append(.requestedTransport, [17, 0, 0, 0], into: &request)
                w.append(.username, text: rest.username, into: &request)
                w.append(.realm, text: Self.realm, into: &request)
                w.append(.nonce, text: String((0..<16).map { _ in "ABCDEFGHabcdefgh0123456789-_".randomElement(using: &rng)! }),
                         into: &request)
                w.append(.messageIntegrity, (0..<20).map { _ in UInt8.random(in: 0...255, using: &rng) }, into: &request)
            case 3:
                // A real nonce, of someone else's IP, and the right password: still 401.
                w.append(.requestedTransport, [17, 0, 0, 0], into: &request)
                w.append(.username, text: rest.username, into: &request)
                w.append(.realm, text: Self.realm, into: &request)
                w.append(.nonce, text: otherNonce, into: &request)
                w.appendMessageIntegrity(key: rest.key, into: &request)
                w.appendFingerprint(into: &request)
            default:
                // Unknown comprehension-required attributes: authentication comes first, so 401, not 420.
                w.append(STUNAttributeType(rawValue: 0x7F01), [1, 2, 3, 4, 5, 6, 7, 8], into: &request)
                w.append(STUNAttributeType(rawValue: 0x7F02), [], into: &request)
            }
            let m = try STUNDecoder.decode(request)
            out.clear()
            let action = core.handle(m, from: client, now: Self.t0 + UInt64(i / 1000), into: &out)
            guard case .respond(.error(let code), nil) = action else { throw Failure(description: "input \(i): \(action)") }
            counts[Int(code.rawValue), default: 0] += 1
            worst = max(worst, out.readableBytes - request.readableBytes)
            if out.readableBytes > request.readableBytes + allowance {
                throw Failure(description: "input \(i): \(out.readableBytes) bytes for \(request.readableBytes)")
            }
            let answer = try STUNDecoder.decode(out)
            guard answer.errorCode?.code == 401, answer.value(of: .nonce) != nil, answer.messageIntegrityOffset == nil else {
                throw Failure(description: "input \(i): not a plain 401")
            }
        }

        for i in 0..<2_000 { try one(i) }  // warm up: lazily created globals, buffer growth
        let before = Self.residentBytes()
        for i in 0..<100_000 { try one(i) }
        let after = Self.residentBytes()
        XCTAssertEqual(counts[401], 102_000)
        XCTAssertEqual(counts.count, 1)
        XCTAssertEqual(core.allocationCount, 0)
        XCTAssertEqual(core.quota.total, 0)
        XCTAssertLessThanOrEqual(worst, allowance)
        XCTAssertGreaterThan(before, 0, "/proc/self/statm readable")
        XCTAssertLessThan(after - before, 16 << 20, "resident memory grew by \((after - before) >> 10) KiB")
        print("flood: 100000 spoofed Allocates → 401; worst answer − request = \(worst) bytes; resident \(before >> 10) → \(after >> 10) KiB")
    }

    // MARK: 6. Malformed ChannelData and attributes

    static func buffer(_ bytes: [UInt8], offset: Int = 0) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeBytes([UInt8](repeating: 0xEE, count: offset) + bytes)
        b.moveReaderIndex(forwardBy: offset)
        return b
    }

    func testMalformedChannelDataIsRefusedNeverCrashes() throws {
        for offset in [0, 3] {  // also from a slice that does not start at index 0
            func decode(_ bytes: [UInt8]) -> Result<(channel: UInt16, data: ByteBuffer), ChannelData.DecodeError> {
                ChannelData.decodeDatagram(Self.buffer(bytes, offset: offset))
            }
            func failure(_ bytes: [UInt8]) -> ChannelData.DecodeError? {
                if case .failure(let e) = decode(bytes) { return e }
                return nil
            }
            XCTAssertEqual(failure([]), .truncated)
            XCTAssertEqual(failure([0x40]), .truncated)
            XCTAssertEqual(failure([0x40, 0x00, 0x00]), .truncated)
            XCTAssertEqual(failure([0x3F, 0xFF, 0x00, 0x00]), .badChannel)
            XCTAssertEqual(failure([0x3F, 0xFF, 0x00, 0x04, 1, 2, 3, 4]), .badChannel)
            XCTAssertEqual(failure([0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4]), .badChannel)
            XCTAssertEqual(failure([0x7F, 0xFF, 0x00, 0x00]), .badChannel)
            XCTAssertEqual(failure([0xFF, 0xFF, 0x00, 0x00]), .badChannel)
            XCTAssertEqual(failure([0x00, 0x00, 0x00, 0x00]), .badChannel)
            XCTAssertEqual(failure([0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4]), .lengthOverrun)
            XCTAssertEqual(failure([0x40, 0x00, 0xFF, 0xFF]), .lengthOverrun)
            XCTAssertEqual(failure([0x4F, 0xFF, 0x00, 0x01]), .lengthOverrun)
            guard case .success(let ok) = decode([0x4F, 0xFF, 0x00, 0x03, 9, 8, 7, 0, 0xAA]) else { return XCTFail("valid") }
            XCTAssertEqual(ok.channel, 0x4FFF)
            XCTAssertEqual(Array(ok.data.readableBytesView), [9, 8, 7], "padding and trailing bytes are not data")
            guard case .success(let empty) = decode([0x40, 0x00, 0x00, 0x00]) else { return XCTFail("empty data is valid") }
            XCTAssertEqual(empty.data.readableBytes, 0)
            // Stream framing.
            XCTAssertNil(ChannelData.frameLength(Self.buffer([0x40, 0x00, 0x00], offset: offset)))
            XCTAssertEqual(ChannelData.frameLength(Self.buffer([0x40, 0x00, 0x00, 0x01], offset: offset)), 8)
            XCTAssertEqual(ChannelData.frameLength(Self.buffer([0x40, 0x00, 0x00, 0x04], offset: offset)), 8)
            XCTAssertEqual(ChannelData.frameLength(Self.buffer([0x40, 0x00, 0xFF, 0xFF], offset: offset)), 4 + 65536)
        }
        // Unbound channels, and channels of someone else's allocation, relay nothing.
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        XCTAssertTrue(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4000, peer: Self.publicPeer).isSuccess)
        XCTAssertEqual(rig.core.channelData(0x4001, length: 4, from: Self.clientA, now: rig.now).drop, .noChannel)
        XCTAssertEqual(rig.core.channelData(0x4000, length: 4, from: Self.clientB, now: rig.now).drop, .noAllocation)
        let otherPort = TURNClientKey(address: Self.clientA.address.withPort(40001), transport: .udp)
        XCTAssertEqual(rig.core.channelData(0x4000, length: 4, from: otherPort, now: rig.now).drop, .noAllocation)
        let tcpA = TURNClientKey(address: Self.clientA.address, transport: .tcp)
        XCTAssertEqual(rig.core.channelData(0x4000, length: 4, from: tcpA, now: rig.now).drop, .noAllocation)
        let good = rig.core.channelData(0x4000, length: 4, from: Self.clientA, now: rig.now)
        XCTAssertNil(good.drop)
        XCTAssertEqual(good.peer.flatMap { STUNAddress($0) }, Self.publicPeer)
        XCTAssertEqual(a.fromPeer(Self.publicPeer, length: 4, now: rig.now), .channel(0x4000))
        // Data from the peer's IP but another port is not on the channel: a Data indication.
        XCTAssertEqual(a.fromPeer(Self.publicPeer.withPort(9), length: 4, now: rig.now), .indication)
        XCTAssertEqual(a.fromPeer(Self.parse("8.8.4.4"), length: 4, now: rig.now), .drop(.noPermission))
    }

    /// An authenticated request with one malformed attribute is 400 (protected), installs nothing, and
    /// the same client is served normally afterwards.
    func testMalformedTURNAttributesAre400AndTheServerKeepsRelaying() throws {
        let rig = Rig(Self.makeCore())
        let a = try rig.allocate(from: Self.clientA, as: Self.alice)
        let peer = Self.publicPeer

        func expect400(_ method: STUNMethod, from client: TURNClientKey = Self.clientA, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line,
                       _ body: @escaping (STUNTransactionID, STUNMessageWriter, inout ByteBuffer) -> Void) throws {
            let tid = STUNTransactionID.random()
            let r = try rig.request(method, from: client, as: Self.alice, tid: tid, file: file, line: line) { w, b in body(tid, w, &b) }
            XCTAssertEqual(r.code, 400, what, file: file, line: line)
            XCTAssertTrue(r.isProtected, "\(what): an authenticated 400 is protected", file: file, line: line)
        }

        // XOR-PEER-ADDRESS: bad family, bad lengths, none.
        let badPeers: [(String, (STUNTransactionID) -> [UInt8])] = [
            ("family 3", { tid in var v = Self.xorPeer(peer, tid: tid); v[1] = 3; return v }),
            ("family 0", { tid in var v = Self.xorPeer(peer, tid: tid); v[1] = 0; return v }),
            ("IPv4 in 7 bytes", { tid in Array(Self.xorPeer(peer, tid: tid).prefix(7)) }),
            ("IPv4 in 12 bytes", { tid in Self.xorPeer(peer, tid: tid) + [0, 0, 0, 0] }),
            ("IPv4 family, IPv6 length", { tid in var v = Self.xorPeer(Self.publicPeer6, tid: tid); v[1] = 1; return v }),
            ("IPv6 family, IPv4 length", { tid in var v = Self.xorPeer(peer, tid: tid); v[1] = 2; return v }),
            ("3 bytes", { _ in [0, 1, 0] }),
            ("empty", { _ in [] }),
        ]
        for (what, value) in badPeers {
            try expect400(.createPermission, "CreatePermission, XOR-PEER-ADDRESS \(what)") { tid, w, b in
                w.append(.xorPeerAddress, value(tid), into: &b)
            }
            try expect400(.createPermission, "CreatePermission, good and bad XOR-PEER-ADDRESS \(what)") { tid, w, b in
                w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
                w.append(.xorPeerAddress, value(tid), into: &b)
            }
            try expect400(.channelBind, "ChannelBind, XOR-PEER-ADDRESS \(what)") { tid, w, b in
                w.append(.channelNumber, uint32: 0x4000_0000, into: &b)
                w.append(.xorPeerAddress, value(tid), into: &b)
            }
        }
        try expect400(.createPermission, "CreatePermission without XOR-PEER-ADDRESS") { _, _, _ in }
        try expect400(.channelBind, "ChannelBind without XOR-PEER-ADDRESS") { _, w, b in
            w.append(.channelNumber, uint32: 0x4000_0000, into: &b)
        }
        // CHANNEL-NUMBER: wrong lengths, numbers out of range, none.
        for value: [UInt8] in [[], [0x40], [0x40, 0x00], [0x40, 0x00, 0x00], [0x40, 0, 0, 0, 0, 0, 0, 0],
                               [0x3F, 0xFF, 0, 0], [0x50, 0x00, 0, 0], [0x00, 0x00, 0, 0], [0xFF, 0xFF, 0, 0], [0x7F, 0xFF, 0, 0]] {
            try expect400(.channelBind, "CHANNEL-NUMBER \(value)") { tid, w, b in
                w.append(.channelNumber, value, into: &b)
                w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
            }
        }
        try expect400(.channelBind, "ChannelBind without CHANNEL-NUMBER") { tid, w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
        }
        XCTAssertEqual(a.permissionCount, 0, "nothing installed by malformed requests")
        XCTAssertEqual(a.channelCount, 0)

        // Allocate (from a client without an allocation): REQUESTED-TRANSPORT, EVEN-PORT, RESERVATION-TOKEN.
        let b = Self.clientB
        for value: [UInt8] in [[], [17], [17, 0], [17, 0, 0], [17, 0, 0, 0, 0, 0, 0, 0]] {
            try expect400(.allocate, from: b, "REQUESTED-TRANSPORT \(value)") { _, w, b in w.append(.requestedTransport, value, into: &b) }
        }
        try expect400(.allocate, from: b, "Allocate without REQUESTED-TRANSPORT") { _, _, _ in }
        for value: [UInt8] in [[], [0x80, 0], [0x80, 0, 0], [0x80, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]] {
            try expect400(.allocate, from: b, "EVEN-PORT \(value)") { _, w, b in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
                w.append(.evenPort, value, into: &b)
            }
        }
        for value: [UInt8] in [[], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9], [UInt8](repeating: 1, count: 16)] {
            try expect400(.allocate, from: b, "RESERVATION-TOKEN \(value.count) bytes") { _, w, b in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
                w.append(.reservationToken, value, into: &b)
            }
        }
        for value: [UInt8] in [[], [2], [2, 0], [2, 0, 0, 0, 0, 0, 0, 0]] {
            try expect400(.allocate, from: b, "ADDITIONAL-ADDRESS-FAMILY \(value)") { _, w, b in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
                w.append(.additionalAddressFamily, value, into: &b)
            }
        }
        XCTAssertNil(rig.core.allocation(for: b))
        XCTAssertEqual(rig.core.quota.total, 1)

        // LIFETIME of the wrong length (RFC 8656 §18.2: 32 bits) is malformed: 400, not silently the default
        // lifetime, and never read as something else — in particular a Refresh's bad LIFETIME changes nothing.
        for value: [UInt8] in [[], [0, 0], [0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0],
                               [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]] {
            try expect400(.allocate, from: b, "Allocate LIFETIME \(value)") { _, w, buf in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &buf)
                w.append(.lifetime, value, into: &buf)
            }
            XCTAssertNil(rig.core.allocation(for: b), "Allocate LIFETIME \(value)")
            let expiry = a.expiry
            try expect400(.refresh, "Refresh LIFETIME \(value)") { _, w, buf in w.append(.lifetime, value, into: &buf) }
            XCTAssertTrue(rig.core.allocation(for: Self.clientA) === a, "Refresh LIFETIME \(value) kept the allocation")
            XCTAssertEqual(a.expiry, expiry, "Refresh LIFETIME \(value) changed nothing")
        }
        // REQUESTED-ADDRESS-FAMILY of the wrong length (4 bytes: family, 3 reserved) is malformed too: 400,
        // not 440 (family not supported) or 443 (family mismatch), whatever its first byte.
        for value: [UInt8] in [[], [1], [2], [1, 0], [1, 0, 0], [2, 0, 0], [1, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0]] {
            try expect400(.allocate, from: b, "Allocate REQUESTED-ADDRESS-FAMILY \(value)") { _, w, buf in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &buf)
                w.append(.requestedAddressFamily, value, into: &buf)
            }
            XCTAssertNil(rig.core.allocation(for: b), "Allocate REQUESTED-ADDRESS-FAMILY \(value)")
            let expiry = a.expiry
            try expect400(.refresh, "Refresh REQUESTED-ADDRESS-FAMILY \(value)") { _, w, buf in
                w.append(.requestedAddressFamily, value, into: &buf)
                w.append(.lifetime, uint32: 0, into: &buf)
            }
            XCTAssertTrue(rig.core.allocation(for: Self.clientA) === a, "Refresh REQUESTED-ADDRESS-FAMILY \(value) deleted nothing")
            XCTAssertEqual(a.expiry, expiry)
        }
        XCTAssertEqual(rig.core.quota.total, 1)
        // Well-formed, they still work (the refusals above are about the length).
        rig.now += 1000
        let refreshed = try rig.request(.refresh, from: Self.clientA, as: Self.alice) { w, buf in
            w.append(.requestedAddressFamily, [1, 0, 0, 0], into: &buf)
            w.append(.lifetime, uint32: 900, into: &buf)
        }
        XCTAssertTrue(refreshed.isSuccess)
        XCTAssertEqual(a.expiry, rig.now + 900_000)

        // Send indications: malformed ones are dropped silently.
        XCTAssertTrue(try rig.createPermission(from: Self.clientA, as: Self.alice, peers: [peer]).isSuccess)
        func sendDrop(_ what: String, from client: TURNClientKey = Self.clientA, _ expected: TURNDropReason = .malformed,
                      type: STUNMessageType = STUNMessageType(method: .send, messageClass: .indication), cookie: UInt32 = stunMagicCookie,
                      _ body: (STUNTransactionID, STUNMessageWriter, inout ByteBuffer) -> Void) throws {
            let tid = STUNTransactionID.random()
            var buf = ByteBuffer()
            let w = STUNMessageWriter(type: type, cookie: cookie, transactionID: tid, into: &buf)
            body(tid, w, &buf)
            let r = try rig.send(buf, from: client)
            XCTAssertEqual(r.dropReason, expected, what)
            XCTAssertNil(r.answer, what)
        }
        try sendDrop("Send without DATA") { tid, w, b in w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b) }
        try sendDrop("Send without XOR-PEER-ADDRESS") { _, w, b in w.append(.data, [1, 2, 3], into: &b) }
        for (what, value) in badPeers {
            try sendDrop("Send, XOR-PEER-ADDRESS \(what)") { tid, w, b in
                w.append(.xorPeerAddress, value(tid), into: &b)
                w.append(.data, [1, 2, 3], into: &b)
            }
        }
        try sendDrop("Send with an unknown comprehension-required attribute") { tid, w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
            w.append(.data, [1, 2, 3], into: &b)
            w.append(STUNAttributeType(rawValue: 0x7ABC), [0], into: &b)
        }
        try sendDrop("Send from a client without allocation", from: Self.clientB, .noAllocation) { tid, w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
            w.append(.data, [1, 2, 3], into: &b)
        }
        try sendDrop("Send without the magic cookie", cookie: 0x1234_5678) { tid, w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
            w.append(.data, [1, 2, 3], into: &b)
        }
        for type in [STUNMessageType(method: .data, messageClass: .indication), STUNMessageType(method: .allocate, messageClass: .indication),
                     STUNMessageType(method: .send, messageClass: .successResponse),
                     STUNMessageType(method: .allocate, messageClass: .errorResponse)] {
            try sendDrop("\(type)", type: type) { tid, w, b in
                w.append(.xorPeerAddress, Self.xorPeer(peer, tid: tid), into: &b)
                w.append(.data, [1, 2, 3], into: &b)
            }
        }
        // An unknown method as a request: 400 before authentication, within the amplification bound.
        XCTAssertEqual(try rig.send(Self.message(STUNMethod(rawValue: 0x00A)), from: Self.clientB).code, 400)

        // The good client is still served: ChannelBind, Send, ChannelData, data from the peer.
        XCTAssertTrue(try rig.channelBind(from: Self.clientA, as: Self.alice, number: 0x4000, peer: peer).isSuccess)
        guard case .send(let data, let to, _) = try rig.sendIndication(from: Self.clientA, to: peer, data: [7, 7, 7]).action else {
            return XCTFail("Send not relayed")
        }
        XCTAssertEqual(Array(data.readableBytesView), [7, 7, 7])
        XCTAssertEqual(STUNAddress(to), peer)
        XCTAssertEqual(rig.core.channelData(0x4000, length: 3, from: Self.clientA, now: rig.now).peer.flatMap { STUNAddress($0) }, peer)
        XCTAssertEqual(a.fromPeer(peer, length: 3, now: rig.now), .channel(0x4000))
        XCTAssertEqual(a.permissionCount, 1)
        XCTAssertEqual(a.channelCount, 1)
    }

    // MARK: 6b. The same over real sockets

    /// A client socket with blocking reads that time out (plain BSD sockets: the test is the client).
    final class Socket {
        let fd: Int32

        init(tcp: Bool) throws {
            fd = socket(AF_INET, Int32(tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
            setTimeout(milliseconds: 3000)
        }

        deinit { close(fd) }

        func setTimeout(milliseconds: Int) {
            var tv = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }

        static func loopback(_ port: Int) -> sockaddr_in {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = UInt16(port).bigEndian
            sin.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            return sin
        }

        /// Binds to 127.0.0.1:0 and returns the port.
        func bindLoopback() throws -> Int {
            var sin = Self.loopback(0)
            let rc = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { throw Failure(description: "bind: \(errno)") }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            return Int(UInt16(bigEndian: sin.sin_port))
        }

        func connect(port: Int) throws {
            var sin = Self.loopback(port)
            let rc = withUnsafePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw Failure(description: "connect: \(errno)") }
        }

        func send(_ bytes: [UInt8], to port: Int) {
            var sin = Self.loopback(port)
            _ = bytes.withUnsafeBytes { raw in
                withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }

        func send(_ bytes: [UInt8]) {
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                sent += n
            }
        }

        /// One datagram (nil on timeout), with the sender's port.
        func receiveDatagram() -> (bytes: [UInt8], port: Int)? {
            var buf = [UInt8](repeating: 0, count: 4096)
            var from = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buf.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &len) }
                }
            }
            guard n >= 0 else { return nil }
            return (Array(buf.prefix(n)), Int(UInt16(bigEndian: from.sin_port)))
        }

        /// Exactly `count` bytes from the stream; nil on timeout, [] on end of stream.
        func receive(count: Int) -> [UInt8]? {
            var buf = [UInt8](repeating: 0, count: count)
            var got = 0
            while got < count {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
                if n == 0 { return [] }
                if n < 0 { return nil }
                got += n
            }
            return buf
        }

        /// One STUN message from the stream.
        func receiveSTUN() throws -> STUNMessage {
            guard let header = receive(count: 20), header.count == 20 else { throw Failure(description: "no STUN header on the stream") }
            let length = Int(header[2]) << 8 | Int(header[3])
            guard let body = receive(count: length), body.count == length else { throw Failure(description: "short STUN body") }
            return try STUNDecoder.decode(ByteBuffer(bytes: header + body))
        }

        /// True once the peer has closed the connection (read returns 0, or the connection was reset).
        func isClosedByPeer() -> Bool {
            var buf = [UInt8](repeating: 0, count: 64)
            for _ in 0..<50 {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
                if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
                if n < 0 { return false }
            }
            return false
        }
    }

    static func bytes(_ b: ByteBuffer) -> [UInt8] { Array(b.readableBytesView) }

    func testRealSocketsSurviveMalformedInputAndStillAllocate() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let auth = LongTermAuthenticator(realm: Self.realm, secrets: [Self.secret])
        let turnConfiguration = TURNConfiguration(authentication: auth, peerPolicy: PeerPolicy(allowLoopback: true))
        let logger = Logger(label: "turn-security-test")
        let turn = TURNContext(configuration: turnConfiguration, sockets: TURNRelaySockets(ipv4: "127.0.0.1"), metrics: TURNMetrics(),
                               logger: logger, now: { UInt64(Date().timeIntervalSince1970 * 1000) })
        let service = STUNService(
            listen: STUNListenConfiguration(addresses: ["127.0.0.1"], port: 0, vectorReads: 4),
            server: STUNServer(configuration: STUNServerConfiguration()), group: group, logger: logger, metrics: STUNMetrics(),
            now: { UInt64(Date().timeIntervalSince1970) }, turn: turn)
        try await service.start()
        do {
            let udpPort = try XCTUnwrap(service.boundAddresses.first { $0.transport == .udp }?.address.port)
            let tcpPort = try XCTUnwrap(service.boundAddresses.first { $0.transport == .tcp }?.address.port)
            try runUDP(port: udpPort)
            try runTCP(port: tcpPort)
        } catch {
            await service.stop()
            try await group.shutdownGracefully()
            throw error
        }
        await service.stop()
        try await group.shutdownGracefully()
    }

    private func restCredential() -> Credential {
        .rest(expiry: UInt64(Date().timeIntervalSince1970) + 3600, name: "socket-test")
    }

    /// Garbage and malformed TURN over UDP, then a good client allocates and relays to a loopback peer.
    private func runUDP(port: Int) throws {
        let client = try Socket(tcp: false)
        let garbage: [[UInt8]] = [
            [0xFF] + (0..<99).map { UInt8($0) },  // neither STUN nor ChannelData
            [0x40], [0x40, 0x00, 0x00],  // truncated ChannelData
            [0x3F, 0xFF, 0x00, 0x04, 1, 2, 3, 4],  // "channel" 0x3FFF: STUN range, not a message
            [0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4],  // channel 0x5000
            [0x7F, 0xFF, 0xFF, 0xFF],
            [0x40, 0x00, 0x00, 0x10, 1, 2, 3, 4],  // length past the end
            [0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4],  // unbound channel
            // A Send indication and a Data indication without allocation, with bad attributes.
            Self.bytes(Self.message(.send, .indication, fingerprint: false) { w, b in w.append(.xorPeerAddress, [0, 9, 0], into: &b) }),
            Self.bytes(Self.message(.data, .indication)),
            // TURN messages whose header length disagrees with the datagram.
            Array(Self.bytes(Self.message(.allocate)).dropLast(4)),
            Self.bytes(Self.message(.channelBind)) + [0, 0, 0, 0],
            // A response from a "client".
            Self.bytes(Self.message(.allocate, .successResponse)),
        ]
        for g in garbage { client.send(g, to: port) }

        // Then requests that merit an answer; the first datagram back must answer the first of them
        // (nothing was sent for the garbage).
        // An Allocate whose attribute runs past the end: 400 from the decoder, in the bound.
        let overrun = RawSTUN(.allocate, .request).with(raw: STUNAttributeType.requestedTransport.rawValue, length: 64, [17, 0, 0, 0])
        client.send(overrun.bytes, to: port)
        let first = try XCTUnwrap(client.receiveDatagram(), "no answer to the overrun Allocate")
        let firstAnswer = try STUNDecoder.decode(ByteBuffer(bytes: first.bytes))
        XCTAssertEqual(firstAnswer.transactionID, overrun.transactionID, "answered something that is not a request")
        XCTAssertEqual(firstAnswer.errorCode?.code, 400)
        XCTAssertLessThanOrEqual(first.bytes.count, overrun.bytes.count + 64)

        // Unauthenticated CreatePermission with a malformed XOR-PEER-ADDRESS: 401 (credentials first).
        let badPermission = Self.message(.createPermission) { w, b in w.append(.xorPeerAddress, [0, 7, 1], into: &b) }
        client.send(Self.bytes(badPermission), to: port)
        let p = try XCTUnwrap(client.receiveDatagram())
        XCTAssertEqual(try STUNDecoder.decode(ByteBuffer(bytes: p.bytes)).errorCode?.code, 401)
        XCTAssertLessThanOrEqual(p.bytes.count, badPermission.readableBytes + 64)

        // The good client: 401, then the REST credential allocates.
        let credential = restCredential()
        let (relay, nonce) = try allocate(credential) { bytes in
            client.send(bytes, to: port)
            return try STUNDecoder.decode(ByteBuffer(bytes: try XCTUnwrap(client.receiveDatagram()).bytes))
        }

        // Malformed requests from the allocated client: 400, protected.
        for (what, body) in [("CHANNEL-NUMBER of 2 bytes", { (w: STUNMessageWriter, b: inout ByteBuffer) in
                                 w.append(.channelNumber, [0x40, 0x00], into: &b)
                                 w.append(.xorPeerAddress, [0, 1, 0, 0, 0, 0, 0, 0], into: &b)
                             }),
                             ("XOR-PEER-ADDRESS family 9", { (w: STUNMessageWriter, b: inout ByteBuffer) in
                                 w.append(.xorPeerAddress, [0, 9, 0, 0, 1, 2, 3, 4], into: &b)
                             })] {
            let request = Self.message(what.hasPrefix("CHANNEL") ? .channelBind : .createPermission, credential: credential,
                                       nonce: nonce, body)
            client.send(Self.bytes(request), to: port)
            let answer = try STUNDecoder.decode(ByteBuffer(bytes: try XCTUnwrap(client.receiveDatagram(), what).bytes))
            XCTAssertEqual(answer.errorCode?.code, 400, what)
            XCTAssertEqual(STUNIntegrity.verify(answer, key: credential.key), .valid, what)
        }
        // More garbage after the allocation, including ChannelData on the unbound channel.
        for g in garbage { client.send(g, to: port) }

        // Relaying works: permission for a loopback peer, a Send indication reaches it, and its answer
        // comes back as a Data indication.
        let peer = try Socket(tcp: false)
        let peerPort = try peer.bindLoopback()
        let peerAddress = STUNAddress.v4(0x7F00_0001, port: UInt16(peerPort))
        let tid = STUNTransactionID.random()
        let permission = Self.message(.createPermission, tid: tid, credential: credential, nonce: nonce) { w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peerAddress, tid: tid), into: &b)
        }
        client.send(Self.bytes(permission), to: port)
        let granted = try STUNDecoder.decode(ByteBuffer(bytes: try XCTUnwrap(client.receiveDatagram()).bytes))
        XCTAssertEqual(granted.type.messageClass, .successResponse, "CreatePermission: \(String(describing: granted.errorCode))")
        let sendTID = STUNTransactionID.random()
        client.send(Self.bytes(Self.message(.send, .indication, tid: sendTID, fingerprint: false) { w, b in
            w.append(.xorPeerAddress, Self.xorPeer(peerAddress, tid: sendTID), into: &b)
            w.append(.data, Array("hello peer".utf8), into: &b)
        }), to: port)
        let atPeer = try XCTUnwrap(peer.receiveDatagram(), "the Send indication was not relayed")
        XCTAssertEqual(atPeer.bytes, Array("hello peer".utf8))
        XCTAssertEqual(UInt16(atPeer.port), relay.port)
        peer.send(Array("hello client".utf8), to: atPeer.port)
        let data = try STUNDecoder.decode(ByteBuffer(bytes: try XCTUnwrap(client.receiveDatagram(), "no Data indication").bytes))
        XCTAssertEqual(data.type, STUNMessageType(method: .data, messageClass: .indication))
        XCTAssertEqual(data.value(of: .data).map { Array($0.readableBytesView) }, Array("hello client".utf8))

        // Release the allocation.
        client.send(Self.bytes(Self.message(.refresh, credential: credential, nonce: nonce) { w, b in w.append(.lifetime, uint32: 0, into: &b) }),
                    to: port)
        let released = try STUNDecoder.decode(ByteBuffer(bytes: try XCTUnwrap(client.receiveDatagram()).bytes))
        XCTAssertEqual(released.type.messageClass, .successResponse)
    }

    /// Unauthenticated Allocate (401 with a nonce), then the authenticated one: the relayed address and nonce.
    private func allocate(_ credential: Credential, exchange: ([UInt8]) throws -> STUNMessage) throws -> (STUNAddress, String) {
        let bare = Self.message(.allocate) { w, b in w.append(.requestedTransport, [17, 0, 0, 0], into: &b) }
        let challenge = try exchange(Self.bytes(bare))
        XCTAssertEqual(challenge.transactionID, try STUNDecoder.decode(bare).transactionID)
        XCTAssertEqual(challenge.errorCode?.code, 401)
        let nonce = try XCTUnwrap(challenge.value(of: .nonce).map { String(buffer: $0) })
        let request = Self.message(.allocate, credential: credential, nonce: nonce) { w, b in w.append(.requestedTransport, [17, 0, 0, 0], into: &b) }
        let success = try exchange(Self.bytes(request))
        XCTAssertEqual(success.type, STUNMessageType(method: .allocate, messageClass: .successResponse),
                       "Allocate: \(String(describing: success.errorCode))")
        XCTAssertEqual(STUNIntegrity.verify(success, key: credential.key), .valid)
        let relay = try XCTUnwrap(success.address(of: .xorRelayedAddress, xor: true))
        XCTAssertEqual(relay.withPort(0), .v4(0x7F00_0001, port: 0))
        return (relay, nonce)
    }

    /// Malformed ChannelData and TURN over TCP on one connection, then a good Allocate on it; garbage
    /// that breaks framing closes only its own connection.
    private func runTCP(port: Int) throws {
        let conn = try Socket(tcp: true)
        try conn.connect(port: port)
        var frames: [[UInt8]] = [
            [0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4],  // channel 0x5000
            [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0],  // unbound channel, padded
            [0x4F, 0xFF, 0x00, 0x00],  // empty ChannelData on an unbound channel
            Self.bytes(Self.message(.send, .indication) { w, b in w.append(.data, [1], into: &b) }),  // no allocation
            Self.bytes(Self.message(.data, .indication)),
        ]
        // An Allocate whose attribute runs past the end → the STUN core's 400.
        let overrun = RawSTUN(.allocate, .request).with(raw: STUNAttributeType.requestedTransport.rawValue, length: 64, [17, 0, 0, 0])
        frames.append(overrun.bytes)
        for f in frames { conn.send(f) }
        let first = try conn.receiveSTUN()
        XCTAssertEqual(first.transactionID, overrun.transactionID)
        XCTAssertEqual(first.errorCode?.code, 400)
        let credential = restCredential()
        let (relay, nonce) = try allocate(credential) { bytes in
            conn.send(bytes)
            return try conn.receiveSTUN()
        }
        XCTAssertNotEqual(relay.port, 0)
        // A malformed authenticated ChannelBind on the allocated connection: 400, and the connection lives on.
        conn.send(Self.bytes(Self.message(.channelBind, credential: credential, nonce: nonce) { w, b in
            w.append(.channelNumber, [0x50, 0x00, 0, 0], into: &b)
            w.append(.xorPeerAddress, [0, 1, 0, 0, 0, 0, 0, 0], into: &b)
        }))
        XCTAssertEqual(try conn.receiveSTUN().errorCode?.code, 400)
        conn.send(Self.bytes(Self.message(.refresh, credential: credential, nonce: nonce) { w, b in w.append(.lifetime, uint32: 600, into: &b) }))
        XCTAssertEqual(try conn.receiveSTUN().type.messageClass, .successResponse)

        // Garbage that cannot start a frame, and a ChannelData frame over the size limit: closed.
        for bad: [UInt8] in [[UInt8](repeating: 0xFF, count: 32), [0x40, 0x00, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 60)] {
            let c = try Socket(tcp: true)
            try c.connect(port: port)
            c.send(bad)
            XCTAssertTrue(c.isClosedByPeer(), "connection with \(bad.prefix(4)) not closed")
        }
        // The first connection is unaffected, and a fresh one still gets 401 then success.
        conn.send(Self.bytes(Self.message(.refresh, credential: credential, nonce: nonce) { w, b in w.append(.lifetime, uint32: 0, into: &b) }))
        XCTAssertEqual(try conn.receiveSTUN().type.messageClass, .successResponse)
        let fresh = try Socket(tcp: true)
        try fresh.connect(port: port)
        _ = try allocate(credential) { bytes in
            fresh.send(bytes)
            return try fresh.receiveSTUN()
        }
    }
}
