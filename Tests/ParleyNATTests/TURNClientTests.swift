import NIOCore
import ParleyNAT
import ParleyRelay
import ParleyWire
import XCTest

/// The I/O layer's handle for a relay socket, as these tests pretend it.
private struct FakeRelay: Hashable { let id: Int }

/// ``TURNClient`` wired back to back with the real server core (`TURNServer`) in memory: no sockets, no
/// sleeps, one manual clock. The harness plays both I/O layers: every `.send` of the client is handed to
/// the server at once (unless a loss rule drops it), every answer back to the client; `.allocate` is
/// answered by "binding" relay sockets at 192.0.2.1 from port 50000 (as ParleyRelayTests' TURNTestServer
/// does); Send indications and ChannelData that the server relays land in ``atPeers``; a peer's datagram
/// is turned into a Data indication or ChannelData exactly as the server's shard does.
///
/// Clocks: the client counts microseconds from 0; the server sees unix milliseconds `t0 + skew + now/1000`.
private final class Wire {
    var server: TURNServer<FakeRelay>
    var client: TURNClient
    /// Client time, µs.
    var now: UInt64 = 0
    /// The server's unix milliseconds at client time 0.
    let t0: UInt64 = 1_800_000_000_000
    /// Extra milliseconds on the server's clock only (to make nonces go stale).
    var skew: UInt64 = 0
    var serverNow: UInt64 { t0 + skew + now / 1000 }
    /// Where the server hears the client from; a test moves it to play a NAT rebinding.
    var clientKey = TURNClientKey(address: .v4(0xC633_6407, port: 40000), transport: .udp)  // 198.51.100.7
    static let relayIP = STUNAddress.v4(0xC000_0201, port: 0)  // 192.0.2.1

    /// Every datagram the client sent, with its time (lost ones too).
    private(set) var sent: [(at: UInt64, bytes: [UInt8])] = []
    /// Every answer the server wrote, decoded.
    private(set) var answers: [STUNMessage] = []
    /// Everything but `.send` the client returned, with its time.
    private(set) var events: [(at: UInt64, action: TURNClient.Action)] = []
    /// What the relay sent on to peers.
    private(set) var atPeers: [(data: [UInt8], to: STUNAddress)] = []
    /// Why the server dropped a client message, in order.
    private(set) var drops: [TURNDropReason] = []

    /// Client → server loss: true drops the datagram.
    var loseToServer: (STUNMessage?) -> Bool = { _ in false }
    /// Server → client loss.
    var loseToClient: (STUNMessage) -> Bool = { _ in false }
    /// Rewrites an answer on its way to the client.
    var tamper: ((STUNMessage, [UInt8]) -> [UInt8])?
    /// Called with each message before the server handles it.
    var beforeServer: (STUNMessage) -> Void = { _ in }

    private var nextPort: UInt16 = 50000
    private var nextRelay = 1

    init(_ configuration: TURNConfiguration, client: TURNClient.Configuration) {
        let quota = TURNQuota(maxTotal: configuration.maxAllocations, maxPerUser: configuration.maxAllocationsPerUser)
        server = TURNServer(configuration: configuration, quota: quota)
        self.client = TURNClient(configuration: client)
    }

    var actions: [TURNClient.Action] { events.map(\.action) }

    /// Sent messages that decode as STUN, with their times.
    var sentMessages: [(at: UInt64, message: STUNMessage)] {
        sent.compactMap { s in (try? STUNDecoder.decode(ByteBuffer(bytes: s.bytes))).map { (s.at, $0) } }
    }

    /// Times (µs) at which requests of `method` were sent.
    func sendTimes(_ method: STUNMethod) -> [UInt64] {
        sentMessages.filter { $0.message.type == STUNMessageType(method: method, messageClass: .request) }.map(\.at)
    }

    /// Performs the client's actions, and everything they lead to, at the current time.
    func perform(_ actions: [TURNClient.Action]) {
        var queue = actions
        var i = 0
        while i < queue.count {
            let action = queue[i]
            i += 1
            guard case .send(let bytes) = action else {
                events.append((now, action))
                continue
            }
            sent.append((now, bytes))
            let decoded = try? STUNDecoder.decode(ByteBuffer(bytes: bytes))
            if loseToServer(decoded) { continue }
            for reply in serve(bytes) {
                guard let m = try? STUNDecoder.decode(ByteBuffer(bytes: reply)) else { continue }
                if loseToClient(m) { continue }
                queue += client.receive(tamper?(m, reply) ?? reply, now: now)
            }
        }
    }

    func start() { perform(client.start(now: now)) }

    /// Runs the client's timer up to `target` (µs), ticking at each deadline on the way.
    func advance(to target: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var guardCount = 0
        while let d = client.nextDeadline, d <= target {
            now = max(now, d)
            perform(client.tick(now: now))
            guardCount += 1
            if guardCount > 100_000 {
                XCTFail("the deadline does not move", file: file, line: line)
                return
            }
        }
        now = max(now, target)
    }

    func advance(seconds: Double) { advance(to: now + UInt64(seconds * 1_000_000)) }

    /// The server's side of one client datagram; returns its answers.
    private func serve(_ bytes: [UInt8]) -> [[UInt8]] {
        let buffer = ByteBuffer(bytes: bytes)
        if let first = bytes.first, ChannelData.looksLikeChannelData(first) {
            guard case .success(let d) = ChannelData.decodeDatagram(buffer) else {
                XCTFail("the client wrote malformed ChannelData")
                return []
            }
            let r = server.channelData(d.channel, length: d.data.readableBytes, from: clientKey, now: serverNow)
            if let peer = r.peerAddress {
                atPeers.append((Array(d.data.readableBytesView), peer))
            } else if let drop = r.drop {
                drops.append(drop)
            }
            return []
        }
        guard let m = try? STUNDecoder.decode(buffer) else {
            XCTFail("the client wrote a message that does not decode")
            return []
        }
        beforeServer(m)
        var out = ByteBuffer()
        switch server.handle(m, from: clientKey, now: serverNow, into: &out) {
        case .respond, .respondAndRelease:
            break
        case .drop(let reason):
            drops.append(reason)
            return []
        case .send(let data, let to, _):
            atPeers.append((Array(data.readableBytesView), STUNAddress(to)!))
            return []
        case .allocate(let request):
            let relays = request.families.map { _ -> TURNRelayEndpoint<FakeRelay> in
                defer { nextPort += 2; nextRelay += 1 }
                return TURNRelayEndpoint(relay: FakeRelay(id: nextRelay), address: Self.relayIP.withPort(nextPort))
            }
            _ = server.allocated(request, relays: relays, reservationToken: nil, now: serverNow, into: &out)
        }
        guard out.readableBytes > 0, let answer = try? STUNDecoder.decode(out) else { return [] }
        answers.append(answer)
        return [Array(out.readableBytesView)]
    }

    /// A datagram from `peer` arriving on the relay: delivered to the client as the server's shard would.
    @discardableResult
    func peerSends(_ data: [UInt8], from peer: STUNAddress) -> TURNAllocation<FakeRelay>.Delivery? {
        guard let allocation = server.allocation(for: clientKey) else { return nil }
        let delivery = allocation.fromPeer(peer, length: data.count, now: serverNow)
        var out = ByteBuffer()
        switch delivery {
        case .drop:
            return delivery
        case .channel(let number):
            ChannelData.write(channel: number, data: ByteBuffer(bytes: data), pad: false, into: &out)
        case .indication:
            let w = STUNMessageWriter(type: STUNMessageType(method: .data, messageClass: .indication),
                                      transactionID: .random(), into: &out)
            w.append(.xorPeerAddress, address: peer, xor: true, into: &out)
            w.append(.data, data, into: &out)
        }
        perform(client.receive(Array(out.readableBytesView), now: now))
        return delivery
    }
}

final class TURNClientTests: XCTestCase {
    let realm = "parley.test"
    let secret = "turn-secret-1"
    let serverAddress = STUNAddress.v4(0xCB00_7101, port: 3478)  // 203.0.113.1
    let peerA = STUNAddress.v4(0x0808_0808, port: 5000)  // 8.8.8.8
    let peerB = STUNAddress.v4(0x0101_0101, port: 6000)  // 1.1.1.1
    let second: UInt64 = 1_000_000
    let ms: UInt64 = 1000

    /// A TURN REST username valid for two days from the harness's t0.
    var restUser: String { "\(1_800_000_000 + 2 * 86_400):alice" }

    private func makeWire(users: [LongTermAuthenticator.StaticUser] = [], username: String? = nil,
                          password: String? = nil,
                          server configure: (inout TURNConfiguration) -> Void = { _ in },
                          client adjust: (inout TURNClient.Configuration) -> Void = { _ in }) -> Wire {
        let auth = LongTermAuthenticator(realm: realm, secrets: [secret], users: users, nonceLifetime: 600)
        var configuration = TURNConfiguration(authentication: auth)
        configure(&configuration)
        let user = username ?? restUser
        var c = TURNClient.Configuration(
            server: serverAddress, username: user,
            password: password ?? LongTermAuthenticator.restPassword(username: user, secret: secret))
        adjust(&c)
        return Wire(configuration, client: c)
    }

    /// A wire whose client holds an allocation (asserted).
    private func allocatedWire(file: StaticString = #filePath, line: UInt = #line,
                               server configure: (inout TURNConfiguration) -> Void = { _ in },
                               client adjust: (inout TURNClient.Configuration) -> Void = { _ in }) -> Wire {
        let wire = makeWire(server: configure, client: adjust)
        wire.start()
        XCTAssertEqual(wire.actions.first, .allocated(relayed: Wire.relayIP.withPort(50000), mapped: wire.clientKey.address,
                                                      lifetime: 600), file: file, line: line)
        return wire
    }

    private func lifetime(_ m: STUNMessage) -> UInt32? {
        m.value(of: .lifetime).flatMap { $0.getInteger(at: $0.readerIndex, as: UInt32.self) }
    }

    private func failureCode(_ action: TURNClient.Action?) -> TURNClientError.Code? {
        if case .failed(let e) = action { return e.code }
        return nil
    }

    // MARK: Allocate

    func testAllocateAnswersTheChallengeWithSHA256WhenTheServerOffersIt() throws {
        let wire = makeWire()
        wire.start()
        XCTAssertEqual(wire.actions, [.allocated(relayed: Wire.relayIP.withPort(50000), mapped: wire.clientKey.address,
                                                 lifetime: 600)])
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        XCTAssertEqual(wire.client.mappedAddress, wire.clientKey.address)
        XCTAssertEqual(wire.client.expiry, 600 * second)

        let requests = wire.sentMessages.map(\.message)
        XCTAssertEqual(requests.count, 2, "one challenge leg, one authenticated Allocate")
        let bare = requests[0]
        XCTAssertEqual(bare.type, STUNMessageType(method: .allocate, messageClass: .request))
        XCTAssertNil(bare.value(of: .username))
        XCTAssertNil(bare.messageIntegrityOffset)
        XCTAssertNil(bare.messageIntegritySHA256Offset)
        XCTAssertEqual(wire.answers[0].errorCode?.code, 401)
        XCTAssertNotNil(wire.answers[0].value(of: .passwordAlgorithms), "the server offered algorithms")

        let authed = requests[1]
        XCTAssertNotEqual(authed.transactionID, bare.transactionID)
        XCTAssertEqual(authed.value(of: .username).map { String(buffer: $0) }, restUser)
        XCTAssertEqual(authed.value(of: .realm).map { String(buffer: $0) }, realm)
        XCTAssertEqual(authed.value(of: .nonce).map { String(buffer: $0) },
                       wire.answers[0].value(of: .nonce).map { String(buffer: $0) })
        XCTAssertEqual(authed.value(of: .requestedTransport).map { Array($0.readableBytesView) }, [17, 0, 0, 0])
        XCTAssertEqual(lifetime(authed), 600)
        XCTAssertEqual(authed.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) },
                       LongTermAuthenticator.passwordAlgorithmsValue, "echoed byte for byte")
        XCTAssertEqual(authed.value(of: .passwordAlgorithm).map { Array($0.readableBytesView) }, [0, 2, 0, 0], "SHA-256")
        XCTAssertNotNil(authed.messageIntegritySHA256Offset)
        XCTAssertNil(authed.messageIntegrityOffset)
        XCTAssertNotNil(authed.fingerprintOffset)
        let sha256Key = STUNIntegrityKey.longTerm(
            username: restUser, realm: realm, password: LongTermAuthenticator.restPassword(username: restUser, secret: secret),
            algorithm: .sha256)
        XCTAssertEqual(STUNIntegrity.verify(authed, key: sha256Key), .valid)

        let success = try XCTUnwrap(wire.answers.last)
        XCTAssertEqual(success.type, STUNMessageType(method: .allocate, messageClass: .successResponse))
        XCTAssertNotNil(success.messageIntegritySHA256Offset, "answered with the request's MAC")
        XCTAssertEqual(wire.server.allocation(for: wire.clientKey)?.username, restUser)
        XCTAssertEqual(wire.client.nextDeadline, 540 * second, "the refresh, a minute before expiry")
    }

    func testAllocateUsesMD5AndMessageIntegrityWhenNoAlgorithmsAreOffered() throws {
        // An allowance this small leaves no room for PASSWORD-ALGORITHMS in the 401.
        let wire = makeWire(server: { $0.amplificationAllowance = 40 })
        wire.start()
        XCTAssertEqual(wire.actions.count, 1)
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        XCTAssertNil(wire.answers[0].value(of: .passwordAlgorithms))
        let authed = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertNil(authed.value(of: .passwordAlgorithm))
        XCTAssertNil(authed.value(of: .passwordAlgorithms))
        XCTAssertNotNil(authed.messageIntegrityOffset)
        XCTAssertNil(authed.messageIntegritySHA256Offset)
        XCTAssertNotNil(wire.answers.last?.messageIntegrityOffset)
    }

    func testAllocateNamesMD5WhenSHA256IsNotAllowed() throws {
        let wire = makeWire(client: { $0.allowsSHA256 = false })
        wire.start()
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        let authed = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(authed.value(of: .passwordAlgorithm).map { Array($0.readableBytesView) }, [0, 1, 0, 0], "MD5")
        XCTAssertEqual(authed.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) },
                       LongTermAuthenticator.passwordAlgorithmsValue)
        XCTAssertNotNil(authed.messageIntegrityOffset)
        XCTAssertNil(authed.messageIntegritySHA256Offset)
    }

    func testStaticUserAllocates() {
        let bob = LongTermAuthenticator.StaticUser(name: "bob", realm: realm, password: "correct horse")
        let wire = makeWire(users: [bob], username: "bob", password: "correct horse")
        wire.start()
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        XCTAssertEqual(wire.server.allocation(for: wire.clientKey)?.username, "bob")
    }

    func testWrongPasswordFails() {
        let wire = makeWire(password: "not the password")
        wire.start()
        XCTAssertEqual(wire.events.count, 1)
        XCTAssertEqual(failureCode(wire.actions.first), .unauthenticated)
        XCTAssertEqual(wire.sent.count, 2, "no third try with the same wrong key")
        XCTAssertEqual(wire.answers.map { $0.errorCode?.code }, [401, 401])
        XCTAssertTrue(wire.client.isFinished)
        XCTAssertNil(wire.client.nextDeadline)
        XCTAssertNil(wire.server.allocation(for: wire.clientKey))
        wire.advance(seconds: 60)
        XCTAssertEqual(wire.sent.count, 2, "finished means silent")
    }

    func testExpiredRESTUsernameFails() {
        let expired = "\(1_800_000_000 - 1):alice"
        let wire = makeWire(username: expired)
        wire.start()
        XCTAssertEqual(failureCode(wire.actions.first), .unauthenticated)
    }

    func testOtherAllocateErrorsFail() {
        // IPv6 asked for from a server that relays IPv4 only: 440.
        let wire = makeWire(client: { $0.addressFamily = .ipv6 })
        wire.start()
        XCTAssertEqual(failureCode(wire.actions.first), .errorResponse(440))
        XCTAssertTrue(wire.client.isFinished)
    }

    func testStaleNonceOnAllocateIsRetriedWithTheNewNonce() throws {
        let wire = makeWire()
        // The server's clock jumps 11 minutes between the challenge and the authenticated Allocate, so the
        // nonce it just handed out is stale (nonce lifetime 600 s).
        var jumped = false
        wire.beforeServer = { m in
            if m.value(of: .username) != nil, !jumped {
                jumped = true
                wire.skew = 660_000
            }
        }
        wire.start()
        XCTAssertEqual(wire.answers.map { $0.errorCode?.code }, [401, 438, nil])
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        let requests = wire.sentMessages.map(\.message)
        XCTAssertEqual(requests.count, 3)
        let nonces = requests.compactMap { $0.value(of: .nonce).map { String(buffer: $0) } }
        XCTAssertEqual(nonces.count, 2)
        XCTAssertNotEqual(nonces[0], nonces[1], "retried with the 438's nonce")
        XCTAssertEqual(nonces[1], wire.answers[1].value(of: .nonce).map { String(buffer: $0) })
    }

    // MARK: Retransmission

    func testLostDatagramsAreRetransmittedAndTheAllocationSucceeds() {
        let wire = makeWire()
        // The first two copies of the authenticated Allocate are lost, then the first answer to it.
        var lostRequests = 0
        var lostAnswers = 0
        wire.loseToServer = { m in
            guard m?.value(of: .username) != nil, lostRequests < 2 else { return false }
            lostRequests += 1
            return true
        }
        wire.loseToClient = { m in
            guard m.type.messageClass == .successResponse, lostAnswers < 1 else { return false }
            lostAnswers += 1
            return true
        }
        wire.start()
        XCTAssertTrue(wire.events.isEmpty)
        wire.advance(to: 1 * second)
        XCTAssertEqual(wire.sendTimes(.allocate), [0, 0, 100 * ms, 300 * ms, 700 * ms])
        XCTAssertEqual(wire.events.map(\.at), [700 * ms])
        XCTAssertEqual(wire.client.relayedAddress, Wire.relayIP.withPort(50000))
        XCTAssertEqual(wire.sentMessages.map(\.message.transactionID).dropFirst().count, 4)
        XCTAssertEqual(Set(wire.sentMessages.map(\.message.transactionID).dropFirst()).count, 1,
                       "retransmissions repeat the transaction")
        XCTAssertEqual(wire.server.allocationCount, 1, "the server saw a retransmission, not a second Allocate")
    }

    func testEverythingLostFailsAfterSevenSendsOnTheRFCSchedule() {
        let wire = makeWire()
        wire.loseToServer = { _ in true }
        wire.start()
        wire.advance(to: 7_899_999)
        XCTAssertTrue(wire.events.isEmpty)
        XCTAssertEqual(wire.client.nextDeadline, 7900 * ms)
        wire.advance(to: 20 * second)
        XCTAssertEqual(wire.sent.map(\.at), [0, 100, 300, 700, 1500, 3100, 6300].map { $0 * ms })
        XCTAssertEqual(Set(wire.sent.map(\.bytes)).count, 1, "each copy is the same request")
        XCTAssertEqual(wire.events.count, 1)
        XCTAssertEqual(wire.events.first?.at, 7900 * ms)
        XCTAssertEqual(failureCode(wire.events.first?.action), .timeout)
        XCTAssertNil(wire.client.nextDeadline)
    }

    func testRetransmissionTimeoutIsConfigurable() {
        let wire = makeWire(client: { $0.rto = 250 * 1000; $0.maxTransmissions = 3; $0.lastWaitMultiplier = 4 })
        wire.loseToServer = { _ in true }
        wire.start()
        wire.advance(to: 10 * second)
        XCTAssertEqual(wire.sent.map(\.at), [0, 250 * ms, 750 * ms])
        XCTAssertEqual(wire.events.map(\.at), [1750 * ms])
    }

    func testAnEarlyTickDoesNothing() {
        let wire = makeWire()
        wire.loseToServer = { _ in true }
        wire.start()
        wire.now = 50 * ms
        wire.perform(wire.client.tick(now: wire.now))
        XCTAssertEqual(wire.sent.count, 1)
        XCTAssertEqual(wire.client.nextDeadline, 100 * ms)
    }

    // MARK: Refresh and close

    func testRefreshHappensBeforeExpiryAndKeepsTheAllocation() throws {
        let wire = allocatedWire()
        wire.advance(to: 540 * second - 1)
        XCTAssertTrue(wire.sendTimes(.refresh).isEmpty)
        wire.advance(to: 540 * second)
        XCTAssertEqual(wire.sendTimes(.refresh), [540 * second])
        let refresh = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(lifetime(refresh), 600)
        XCTAssertEqual(wire.actions.last, .refreshed(lifetime: 600))
        XCTAssertEqual(wire.client.expiry, 1140 * second)
        XCTAssertEqual(wire.server.allocation(for: wire.clientKey)?.expiry, wire.t0 + 1140_000)

        // An hour on: still allocated on both sides, refreshed every 540 s; the nonce went stale on the way
        // (600 s) and each 438 was answered with a retry.
        wire.advance(to: 3600 * second)
        XCTAssertEqual(Set(wire.sendTimes(.refresh)), Set((1...6).map { UInt64($0) * 540 * second }))
        XCTAssertTrue(wire.answers.contains { $0.errorCode?.code == 438 })
        XCTAssertFalse(wire.actions.contains { failureCode($0) != nil })
        _ = wire.server.expire(now: wire.serverNow)
        XCTAssertNotNil(wire.server.allocation(for: wire.clientKey))
        XCTAssertEqual(wire.client.expiry, (6 * 540 + 600) * second)
    }

    /// `refreshNow`, what a call asks when its relay goes quiet: a live allocation answers at once; once the
    /// client's NAT has moved (the server hears it from another port, a 5-tuple without an allocation) the
    /// answer is 437 and the client fails — the call's cue to allocate again. A second `refreshNow` while
    /// one is in flight sends nothing.
    func testRefreshNowTellsWhetherTheAllocationIsStillOurs() throws {
        let wire = allocatedWire()
        wire.advance(seconds: 30)
        let before = wire.sendTimes(.refresh).count
        wire.perform(wire.client.refreshNow(now: wire.now))
        XCTAssertEqual(wire.sendTimes(.refresh).count, before + 1)
        XCTAssertEqual(wire.actions.last, .refreshed(lifetime: 600))
        XCTAssertEqual(wire.client.expiry, wire.now + 600 * second, "the probe renews the allocation like any Refresh")

        wire.loseToServer = { _ in true }
        let inFlight = wire.client.refreshNow(now: wire.now)
        XCTAssertEqual(inFlight.count, 1)
        XCTAssertEqual(wire.client.refreshNow(now: wire.now), [], "one probe at a time")
        wire.loseToServer = { _ in false }
        wire.advance(seconds: 5)

        wire.clientKey = TURNClientKey(address: .v4(0xC633_6407, port: 40001), transport: .udp)
        wire.perform(wire.client.refreshNow(now: wire.now))
        XCTAssertEqual(failureCode(wire.actions.last), .errorResponse(437))
        XCTAssertTrue(wire.answers.contains { $0.errorCode?.code == 437 })
        XCTAssertTrue(wire.client.isFinished)
        XCTAssertEqual(wire.client.refreshNow(now: wire.now), [], "a failed client has nothing to refresh")
    }

    func testRefreshThatNeverGetsThroughEndsInExpiry() {
        let wire = allocatedWire()
        wire.loseToServer = { _ in true }
        wire.advance(to: 700 * second)
        XCTAssertEqual(wire.sendTimes(.refresh).first, 540 * second)
        XCTAssertGreaterThan(Set(wire.sendTimes(.refresh)).count, 1, "a timed-out Refresh is tried again")
        XCTAssertEqual(failureCode(wire.actions.last), .expired)
        XCTAssertEqual(wire.events.last?.at, 600 * second)
        XCTAssertTrue(wire.client.isFinished)
    }

    func testCloseSendsRefreshWithLifetimeZero() throws {
        let wire = allocatedWire()
        _ = wire.client.permit(peerA, now: wire.now)
        wire.perform(wire.client.close(now: wire.now))
        let last = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(last.type, STUNMessageType(method: .refresh, messageClass: .request))
        XCTAssertEqual(lifetime(last), 0)
        XCTAssertEqual(wire.actions.last, .closed)
        XCTAssertNil(wire.server.allocation(for: wire.clientKey))
        XCTAssertTrue(wire.client.isFinished)
        XCTAssertNil(wire.client.nextDeadline)
        XCTAssertEqual(wire.client.send([1], to: peerA, now: wire.now), [])
        XCTAssertEqual(wire.client.close(now: wire.now), [])
    }

    func testCloseWithoutAnAnswerStillCloses() {
        let wire = allocatedWire()
        wire.loseToServer = { _ in true }
        wire.perform(wire.client.close(now: wire.now))
        XCTAssertNotEqual(wire.actions.last, .closed)
        wire.advance(seconds: 10)
        XCTAssertEqual(wire.actions.last, .closed)
        XCTAssertEqual(wire.events.last?.at, 7900 * ms)
    }

    func testCloseBeforeStartJustStops() {
        var client = TURNClient(configuration: .init(server: serverAddress, username: restUser, password: "x"))
        XCTAssertEqual(client.close(now: 0), [.closed])
        XCTAssertNil(client.nextDeadline)
    }

    /// Closing while the Allocate is in flight (a client that chose a faster server) must not leave an
    /// allocation behind: it is released with Refresh LIFETIME 0 the moment it exists.
    func testCloseWhileAllocatingReleasesTheAllocationWhenItArrives() throws {
        let wire = makeWire()
        var held = true
        wire.loseToClient = { _ in held }  // the server's answers are late
        wire.start()
        XCTAssertEqual(wire.client.close(now: wire.now), [])
        held = false
        wire.advance(seconds: 10)
        XCTAssertFalse(wire.actions.contains { if case .allocated = $0 { true } else { false } }, "never offered for use")
        XCTAssertEqual(wire.actions.last, .closed)
        let refreshes = wire.sentMessages.filter { $0.message.type == STUNMessageType(method: .refresh, messageClass: .request) }
        let lifetime = try XCTUnwrap(refreshes.last?.message.value(of: .lifetime))
        XCTAssertEqual(lifetime.getInteger(at: lifetime.readerIndex, as: UInt32.self), 0)
        XCTAssertEqual(wire.server.allocationCount, 0)
    }

    func testCloseWhileAllocatingWithNoAnswerEndsWhenTheAllocateTimesOut() {
        let wire = makeWire()
        wire.loseToServer = { _ in true }
        wire.start()
        XCTAssertEqual(wire.client.close(now: 0), [])
        wire.advance(seconds: 10)
        XCTAssertTrue(wire.client.isFinished)
    }

    // MARK: Permissions and data

    func testPermissionThenSendIndicationReachesThePeerAndItsReplyArrivesAsData() throws {
        let wire = allocatedWire()
        wire.perform(wire.client.permit(peerA, now: wire.now))
        XCTAssertEqual(wire.actions.last, .permissionCreated(peerA.withPort(0)))
        XCTAssertTrue(wire.client.hasPermission(for: peerA))
        let request = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(request.type, STUNMessageType(method: .createPermission, messageClass: .request))

        wire.perform(wire.client.send([1, 2, 3, 4, 5], to: peerA, now: wire.now))
        let indication = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(indication.type, STUNMessageType(method: .send, messageClass: .indication))
        XCTAssertEqual(wire.atPeers.count, 1)
        XCTAssertEqual(wire.atPeers.first?.data, [1, 2, 3, 4, 5])
        XCTAssertEqual(wire.atPeers.first?.to, peerA)

        XCTAssertEqual(wire.peerSends([9, 8, 7], from: peerA), .indication)
        XCTAssertEqual(wire.actions.last, .data([9, 8, 7], from: peerA))

        // Another port at the same IP is covered by the same permission (RFC 8656 §9).
        XCTAssertEqual(wire.peerSends([6], from: peerA.withPort(5001)), .indication)
        XCTAssertEqual(wire.actions.last, .data([6], from: peerA.withPort(5001)))
        // A peer without a permission gets nothing through.
        XCTAssertEqual(wire.peerSends([1], from: peerB), .drop(.noPermission))
    }

    func testPermissionsAskedForBeforeTheAllocationAreBatchedAndSentOnceItExists() throws {
        let wire = makeWire()
        wire.perform(wire.client.permit([peerA, peerB], now: 0))
        XCTAssertTrue(wire.sent.isEmpty, "nothing before start")
        wire.start()
        XCTAssertEqual(wire.actions.first.map { if case .allocated = $0 { true } else { false } }, true)
        XCTAssertEqual(Set(wire.actions.dropFirst()), [.permissionCreated(peerA.withPort(0)), .permissionCreated(peerB.withPort(0))])
        let permissionRequests = wire.sentMessages.filter { $0.message.type.method == .createPermission }
        XCTAssertEqual(permissionRequests.count, 1, "one CreatePermission for both")
        var peers: [STUNAddress] = []
        permissionRequests[0].message.forEachAttribute { type, offset, length in
            if type == .xorPeerAddress {
                let m = permissionRequests[0].message
                let v = m.bytes.getSlice(at: m.bytes.readerIndex + offset + 4, length: length)!
                peers.append(try! STUNAddressCodec.decode(v, xor: true, header: m.header))
            }
            return true
        }
        XCTAssertEqual(Set(peers), [peerA.withPort(0), peerB.withPort(0)])
    }

    func testRefusedPermissionIsReported() {
        let wire = allocatedWire()
        let privatePeer = STUNAddress.v4(0x0A00_0001, port: 5000)  // 10.0.0.1: refused by the default policy
        wire.perform(wire.client.permit(privatePeer, now: wire.now))
        guard case .permissionFailed(let peer, let error) = wire.actions.last else {
            return XCTFail("expected permissionFailed, got \(String(describing: wire.actions.last))")
        }
        XCTAssertEqual(peer, privatePeer.withPort(0))
        XCTAssertEqual(error.code, .errorResponse(403))
        XCTAssertFalse(wire.client.hasPermission(for: privatePeer))
        XCTAssertFalse(wire.client.isFinished, "a refused permission does not end the allocation")
    }

    func testStaleNonceOnCreatePermissionIsRetried() {
        let wire = allocatedWire()
        wire.advance(to: 700 * second)  // past the 600 s nonce (the refresh at 540 s still used it in time)
        let before = wire.answers.count
        wire.perform(wire.client.permit(peerA, now: wire.now))
        XCTAssertEqual(wire.answers.dropFirst(before).map { $0.errorCode?.code }, [438, nil])
        XCTAssertEqual(wire.actions.last, .permissionCreated(peerA.withPort(0)))
    }

    func testChannelBindThenChannelDataBothWays() throws {
        let wire = allocatedWire()
        wire.perform(wire.client.bindChannel(peerB, now: wire.now))
        XCTAssertEqual(wire.actions.last, .channelBound(peerB, channel: 0x4000))
        XCTAssertEqual(wire.client.channel(for: peerB), 0x4000)
        let bind = try XCTUnwrap(wire.sentMessages.last?.message)
        XCTAssertEqual(bind.type, STUNMessageType(method: .channelBind, messageClass: .request))
        XCTAssertEqual(bind.value(of: .channelNumber).map { Array($0.readableBytesView) }, [0x40, 0x00, 0, 0])
        XCTAssertEqual(bind.address(of: .xorPeerAddress, xor: true), peerB)

        wire.perform(wire.client.send([10, 20, 30], to: peerB, now: wire.now))
        XCTAssertEqual(wire.sent.last?.bytes, [0x40, 0x00, 0x00, 0x03, 10, 20, 30], "ChannelData, unpadded over UDP")
        XCTAssertEqual(wire.atPeers.last?.data, [10, 20, 30])
        XCTAssertEqual(wire.atPeers.last?.to, peerB)

        XCTAssertEqual(wire.peerSends([40, 50], from: peerB), .channel(0x4000))
        XCTAssertEqual(wire.actions.last, .data([40, 50], from: peerB))

        // A second channel gets the next number; data to a peer without one still goes by Send indication.
        wire.perform(wire.client.bindChannel(peerA, now: wire.now))
        XCTAssertEqual(wire.actions.last, .channelBound(peerA, channel: 0x4001))
        wire.perform(wire.client.send([1], to: peerA.withPort(9), now: wire.now))
        XCTAssertEqual(try STUNDecoder.decode(ByteBuffer(bytes: wire.sent.last!.bytes)).type.method, .send)
    }

    func testChannelDataIsPaddedOnStreams() {
        let wire = allocatedWire(client: { $0.transport = .stream })
        wire.perform(wire.client.bindChannel(peerB, now: wire.now))
        let actions = wire.client.send([1, 2, 3, 4, 5], to: peerB, now: wire.now)
        XCTAssertEqual(actions, [.send([0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0])])
    }

    func testPermissionAndChannelRefreshTiming() {
        let wire = allocatedWire()
        wire.perform(wire.client.permit(peerA, now: wire.now))
        wire.perform(wire.client.bindChannel(peerB, now: wire.now))
        wire.advance(to: 1250 * second)
        let s = second
        XCTAssertEqual(Set(wire.sendTimes(.createPermission)), [0, 240 * s, 480 * s, 720 * s, 960 * s, 1200 * s])
        XCTAssertEqual(Set(wire.sendTimes(.channelBind)), [0, 540 * s, 1080 * s])
        XCTAssertEqual(Set(wire.sendTimes(.refresh)), [540 * s, 1080 * s])
        // From 240 s the channel peer's permission rides along in the same CreatePermission.
        let at240 = wire.sentMessages.filter { $0.at == 240 * s && $0.message.type.method == .createPermission }
        XCTAssertEqual(at240.count, 1)
        var peers = 0
        at240[0].message.forEachAttribute { t, _, _ in
            if t == .xorPeerAddress { peers += 1 }
            return true
        }
        XCTAssertEqual(peers, 2)
        XCTAssertFalse(wire.actions.contains { if case .permissionFailed = $0 { true } else { false } })
        XCTAssertFalse(wire.actions.contains { if case .channelFailed = $0 { true } else { false } })
        XCTAssertEqual(wire.actions.filter { if case .channelBound = $0 { true } else { false } }.count, 1,
                       "refreshes are silent")
        // Both still work on the server at the end: the channel both ways, the permission for peer A.
        let before = wire.atPeers.count
        wire.perform(wire.client.send([7], to: peerB, now: wire.now))
        XCTAssertEqual(wire.atPeers.count, before + 1)
        XCTAssertEqual(wire.sent.last?.bytes.first, 0x40)
        XCTAssertEqual(wire.peerSends([8], from: peerB), .channel(0x4000))
        XCTAssertEqual(wire.peerSends([9], from: peerA), .indication)
        XCTAssertEqual(wire.actions.suffix(2), [.data([8], from: peerB), .data([9], from: peerA)])
    }

    func testRevokedPermissionIsNoLongerRefreshed() {
        let wire = allocatedWire()
        wire.perform(wire.client.permit(peerA, now: wire.now))
        wire.client.revokePermission(for: peerA)
        wire.advance(to: 400 * second)
        XCTAssertEqual(wire.sendTimes(.createPermission), [0])
        XCTAssertEqual(wire.peerSends([1], from: peerA), .drop(.noPermission), "gone after 300 s")
    }

    // MARK: Hostile input

    func testSuccessWithBadMessageIntegrityIsIgnored() throws {
        let wire = makeWire()
        // The first Allocate success has its relayed address changed in flight (FINGERPRINT recomputed, so
        // only MESSAGE-INTEGRITY-SHA256 can tell).
        var tampered = 0
        wire.tamper = { m, bytes in
            guard m.type.messageClass == .successResponse, tampered == 0 else { return bytes }
            tampered += 1
            var out = bytes
            var offset: Int?
            m.forEachAttribute { t, o, _ in
                if t == .xorRelayedAddress { offset = o }
                return offset == nil
            }
            out[offset! + 4 + 7] ^= 0x01
            var buffer = ByteBuffer(bytes: out)
            buffer.setInteger(STUNDecoder.fingerprint(of: buffer, upTo: out.count - 8), at: out.count - 4)
            XCTAssertNotNil(try? STUNDecoder.decode(buffer), "still a well-formed message")
            return Array(buffer.readableBytesView)
        }
        wire.start()
        XCTAssertEqual(tampered, 1)
        XCTAssertTrue(wire.events.isEmpty, "the forged success is dropped")
        XCTAssertEqual(wire.client.nextDeadline, 100 * ms, "still waiting for a real answer")
        wire.advance(to: 100 * ms)
        XCTAssertEqual(wire.actions, [.allocated(relayed: Wire.relayIP.withPort(50000), mapped: wire.clientKey.address,
                                                 lifetime: 600)])
    }

    func testSuccessUnderAnotherKeyOrWithoutIntegrityIsIgnored() throws {
        let wire = makeWire()
        wire.loseToServer = { m in m?.value(of: .username) != nil }  // the real answer never comes
        wire.start()
        let request = try XCTUnwrap(wire.sentMessages.last?.message)
        for key in [STUNIntegrityKey.longTerm(username: restUser, realm: realm, password: "guess", algorithm: .sha256), nil] {
            var out = ByteBuffer()
            let w = STUNMessageWriter(responseTo: request.header, messageClass: .successResponse, into: &out)
            w.append(.xorRelayedAddress, address: .v4(0x0102_0304, port: 9), xor: true, into: &out)
            w.append(.lifetime, uint32: 600, into: &out)
            if let key { w.appendMessageIntegritySHA256(key: key, into: &out) }
            w.appendFingerprint(into: &out)
            XCTAssertEqual(wire.client.receive(Array(out.readableBytesView), now: 0), [])
        }
        // Nor may an error response under a wrong key end the allocation attempt.
        var out = ByteBuffer()
        let w = STUNMessageWriter(responseTo: request.header, messageClass: .errorResponse, into: &out)
        w.appendErrorCode(.insufficientCapacity, into: &out)
        w.appendMessageIntegritySHA256(key: .longTerm(username: restUser, realm: realm, password: "guess"), into: &out)
        XCTAssertEqual(wire.client.receive(Array(out.readableBytesView), now: 0), [])
        XCTAssertFalse(wire.client.isFinished)
    }

    func testGarbageDatagramsAreIgnored() {
        let wire = makeWire()
        var rng = SplitMix64(seed: 0x7475_726e)
        func garbage() -> [[UInt8]] {
            var out: [[UInt8]] = [[], [0x00], [0x40], [0x40, 0x00, 0xFF, 0xFF, 1], [0x01, 0x01, 0x00, 0x00]]
            for _ in 0..<2000 {
                let n = Int(rng.next() % 200)
                var d = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                switch rng.next() % 4 {
                case 0 where n >= 20:
                    // A STUN header with our cookie and a plausible length.
                    d[0] = UInt8(rng.next() % 4)
                    d[2] = 0
                    d[3] = UInt8((n - 20) & ~3)
                    d[4] = 0x21; d[5] = 0x12; d[6] = 0xA4; d[7] = 0x42
                case 1 where n >= 4:
                    d[0] = 0x40 | UInt8(rng.next() % 16)  // ChannelData-looking
                default:
                    break
                }
                out.append(d)
            }
            return out
        }
        wire.loseToServer = { m in m?.value(of: .username) != nil }
        wire.start()  // allocating: the authenticated Allocate is in flight
        for d in garbage() { XCTAssertEqual(wire.client.receive(d, now: 0), []) }
        // Truncations of a real answer.
        for n in 0..<wire.answers[0].bytes.readableBytes {
            XCTAssertEqual(wire.client.receive(Array(wire.answers[0].bytes.readableBytesView.prefix(n)), now: 0), [])
        }
        wire.loseToServer = { _ in false }
        wire.advance(to: 100 * ms)
        XCTAssertNotNil(wire.client.relayedAddress, "still works")
        wire.perform(wire.client.bindChannel(peerA, now: wire.now))
        for d in garbage() where !(d.count >= 4 && d[0] == 0x40 && d[1] == 0x00) {
            XCTAssertEqual(wire.client.receive(d, now: wire.now), [])
        }
        XCTAssertFalse(wire.client.isFinished)
    }

    // MARK: Secrets

    func testThePasswordIsNeverShown() {
        let password = "s3cr3t-Pa55word"
        let bob = LongTermAuthenticator.StaticUser(name: "bob", realm: realm, password: password)
        let wire = makeWire(users: [bob], username: "bob", password: password)
        let configuration = TURNClient.Configuration(server: serverAddress, username: "bob", password: password)
        var text = ""
        dump(configuration, to: &text)
        dump(wire.client, to: &text)
        text += String(describing: configuration) + String(reflecting: configuration) + String(describing: wire.client)
        wire.start()
        dump(wire.client, to: &text)
        text += String(describing: wire.client) + wire.actions.map { String(describing: $0) }.joined()
        XCTAssertFalse(text.contains(password))
        XCTAssertNotNil(wire.client.relayedAddress)
    }
}

/// A small seeded generator, so the garbage is the same every run.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
