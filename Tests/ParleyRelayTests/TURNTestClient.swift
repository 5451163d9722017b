import NIOCore
import ParleyWire
import XCTest

@testable import ParleyRelay

/// The I/O layer's handle for a relay socket, as the TURN tests see it.
struct FakeRelay: Hashable { let id: Int }

/// What one message to the TURN core came to, once ``TURNTestServer`` has played the I/O layer.
struct TURNAnswer {
    enum Kind: Equatable {
        /// `.respond`: an answer was written.
        case respond(STUNServer.Outcome, denial: PeerPolicy.Denial?)
        /// `.respondAndRelease`: an answer was written and these relay sockets are to be closed.
        case release([FakeRelay])
        /// `.drop`: nothing sent.
        case drop(TURNDropReason)
        /// `.send`: a datagram to a peer from a relay socket.
        case send(data: [UInt8], to: STUNAddress, via: FakeRelay)
        /// `.allocate`, answered by the harness with `allocated(...)`.
        case allocated
        /// `.allocate`, answered with `allocationFailed(...)`.
        case allocationFailed
        /// `.allocate`, left pending (the harness holds the request).
        case allocating
        /// `.allocate`, but `allocated(...)` found the allocation gone and wrote nothing.
        case discarded
    }

    let kind: Kind
    /// The decoded answer, if one was written.
    let message: STUNMessage?
    /// The `.allocate` request, if there was one.
    let request: TURNAllocationRequest?

    var errorCode: Int? { message?.errorCode?.code }
    var isSuccess: Bool { message?.type.messageClass == .successResponse }
    var lifetime: UInt32? {
        guard let v = message?.value(of: .lifetime) else { return nil }
        return v.getInteger(at: v.readerIndex, as: UInt32.self)
    }
    /// Every XOR-RELAYED-ADDRESS, in order.
    var relayedAddresses: [STUNAddress] { message.map { Self.addresses(.xorRelayedAddress, in: $0) } ?? [] }
    var bytes: [UInt8] { message.map { Array($0.bytes.readableBytesView) } ?? [] }

    /// Every address attribute of `type` in `message` (XOR encoding), in order.
    static func addresses(_ type: STUNAttributeType, in message: STUNMessage) -> [STUNAddress] {
        var out: [STUNAddress] = []
        message.forEachAttribute { t, offset, length in
            if t == type, let value = message.bytes.getSlice(at: message.bytes.readerIndex + offset + 4, length: length),
                let a = try? STUNAddressCodec.decode(value, xor: true, header: message.header)
            {
                out.append(a)
            }
            return true
        }
        return out
    }
}

/// A ``TURNServer`` with a manual clock and a pretend I/O layer: `.allocate` is answered by "binding" relay
/// sockets at documentation addresses (192.0.2.1 / 2001:db8::1, ports counting up in twos from 50000), or
/// by failing or holding, as ``binding`` says.
final class TURNTestServer {
    var core: TURNServer<FakeRelay>
    let quota: TURNQuota
    /// Unix milliseconds.
    var now: UInt64

    static let relayIPv4 = STUNAddress.v4(0xC000_0201, port: 0)  // 192.0.2.1
    static let relayIPv6 = STUNAddress.v6(0x2001_0DB8_0000_0000, 1, port: 0)  // 2001:db8::1

    enum Binding {
        /// Bind the relays and call `allocated(...)`, passing this token (for EVEN-PORT with R).
        case bind(reservationToken: UInt64?)
        /// Call `allocationFailed(...)` with this code.
        case fail(STUNErrorCode)
        /// Do nothing yet: the request stays pending (see ``complete(_:)``).
        case hold
    }
    var binding = Binding.bind(reservationToken: nil)
    var nextPort: UInt16 = 50000
    private var nextRelay = 1
    /// Every `.allocate` request the core made, in order.
    private(set) var allocationRequests: [TURNAllocationRequest] = []

    init(configuration: TURNConfiguration, now: UInt64) {
        quota = TURNQuota(maxTotal: configuration.maxAllocations, maxPerUser: configuration.maxAllocationsPerUser)
        core = TURNServer(configuration: configuration, quota: quota)
        self.now = now
    }

    func advance(ms: UInt64) { now += ms }
    func advance(seconds: UInt64) { now += seconds * 1000 }

    /// One STUN-formatted message from `client`.
    func handle(_ bytes: ByteBuffer, from client: TURNClientKey, file: StaticString = #filePath,
                line: UInt = #line) -> TURNAnswer {
        guard let message = try? STUNDecoder.decode(bytes) else {
            XCTFail("the test client wrote a message that does not decode", file: file, line: line)
            return TURNAnswer(kind: .drop(.malformed), message: nil, request: nil)
        }
        var out = ByteBuffer()
        let action = core.handle(message, from: client, now: now, into: &out)
        switch action {
        case .respond(let outcome, let denial):
            return TURNAnswer(kind: .respond(outcome, denial: denial), message: decode(out, file: file, line: line), request: nil)
        case .respondAndRelease(let relays):
            return TURNAnswer(kind: .release(relays), message: decode(out, file: file, line: line), request: nil)
        case .drop(let reason):
            XCTAssertEqual(out.readableBytes, 0, "a drop writes nothing", file: file, line: line)
            return TURNAnswer(kind: .drop(reason), message: nil, request: nil)
        case .send(let data, let to, let via):
            XCTAssertEqual(out.readableBytes, 0, "a Send indication is not answered", file: file, line: line)
            return TURNAnswer(kind: .send(data: Array(data.readableBytesView), to: STUNAddress(to)!, via: via),
                              message: nil, request: nil)
        case .allocate(let request):
            XCTAssertEqual(out.readableBytes, 0, "nothing is written before the relays are bound", file: file, line: line)
            allocationRequests.append(request)
            switch binding {
            case .bind(let token): return complete(request, reservationToken: token, file: file, line: line)
            case .fail(let code): return fail(request, code: code, file: file, line: line)
            case .hold: return TURNAnswer(kind: .allocating, message: nil, request: request)
            }
        }
    }

    /// Binds relay sockets for `request` and calls `allocated(...)`.
    func complete(_ request: TURNAllocationRequest, reservationToken: UInt64? = nil, file: StaticString = #filePath,
                  line: UInt = #line) -> TURNAnswer {
        var relays: [TURNRelayEndpoint<FakeRelay>] = []
        for family in request.families {
            let ip = family == .ipv4 ? Self.relayIPv4 : Self.relayIPv6
            relays.append(TURNRelayEndpoint(relay: FakeRelay(id: nextRelay), address: ip.withPort(nextPort)))
            nextRelay += 1
            nextPort += 2
        }
        var out = ByteBuffer()
        guard core.allocated(request, relays: relays, reservationToken: reservationToken, now: now, into: &out) != nil else {
            XCTAssertEqual(out.readableBytes, 0, file: file, line: line)
            return TURNAnswer(kind: .discarded, message: nil, request: request)
        }
        return TURNAnswer(kind: .allocated, message: decode(out, file: file, line: line), request: request)
    }

    /// Calls `allocationFailed(...)` for `request`.
    func fail(_ request: TURNAllocationRequest, code: STUNErrorCode, file: StaticString = #filePath,
              line: UInt = #line) -> TURNAnswer {
        var out = ByteBuffer()
        core.allocationFailed(request, code: code, now: now, into: &out)
        return TURNAnswer(kind: .allocationFailed, message: out.readableBytes > 0 ? decode(out, file: file, line: line) : nil,
                          request: request)
    }

    /// A ChannelData datagram from `client`, decoded as the I/O layer does, then given to the core.
    func channelData(_ datagram: ByteBuffer, from client: TURNClientKey) -> (peer: STUNAddress?, drop: TURNDropReason?) {
        switch ChannelData.decodeDatagram(datagram) {
        case .failure: return (nil, .malformed)
        case .success(let d):
            let r = core.channelData(d.channel, length: d.data.readableBytes, from: client, now: now)
            return (r.peer.flatMap(STUNAddress.init), r.drop)
        }
    }

    /// A datagram of `length` bytes from `peer` on the relay socket of `client`'s allocation.
    func fromPeer(_ peer: STUNAddress, to client: TURNClientKey, length: Int = 100) -> TURNAllocation<FakeRelay>.Delivery? {
        core.allocation(for: client)?.fromPeer(peer, length: length, now: now)
    }

    private func decode(_ out: ByteBuffer, file: StaticString, line: UInt) -> STUNMessage? {
        guard out.readableBytes > 0 else {
            XCTFail("no answer was written", file: file, line: line)
            return nil
        }
        guard let m = try? STUNDecoder.decode(out) else {
            XCTFail("the answer does not decode", file: file, line: line)
            return nil
        }
        return m
    }
}

/// Attributes a TURN test request can carry (values as the RFCs lay them out).
enum TURNAttribute {
    case lifetime(UInt32)
    case requestedTransport(UInt8)
    case requestedFamily(UInt8)
    case additionalFamily(UInt8)
    case evenPort(reserve: Bool)
    case reservationToken(UInt64)
    case dontFragment
    case peer(STUNAddress)
    case channel(UInt16)
    case data([UInt8])
    case raw(UInt16, [UInt8])

    func write(_ w: STUNMessageWriter, into buf: inout ByteBuffer) {
        switch self {
        case .lifetime(let s): w.append(.lifetime, uint32: s, into: &buf)
        case .requestedTransport(let p): w.append(.requestedTransport, [p, 0, 0, 0], into: &buf)
        case .requestedFamily(let f): w.append(.requestedAddressFamily, [f, 0, 0, 0], into: &buf)
        case .additionalFamily(let f): w.append(.additionalAddressFamily, [f, 0, 0, 0], into: &buf)
        case .evenPort(let reserve): w.append(.evenPort, [reserve ? 0x80 : 0], into: &buf)
        case .reservationToken(let t): w.append(.reservationToken, (0..<8).map { UInt8(truncatingIfNeeded: t >> UInt64(56 - 8 * $0)) }, into: &buf)
        case .dontFragment: w.append(.dontFragment, [UInt8](), into: &buf)
        case .peer(let a): w.append(.xorPeerAddress, address: a, xor: true, into: &buf)
        case .channel(let n): w.append(.channelNumber, [UInt8(n >> 8), UInt8(n & 0xFF), 0, 0], into: &buf)
        case .data(let d): w.append(.data, d, into: &buf)
        case .raw(let t, let v): w.append(STUNAttributeType(rawValue: t), v, into: &buf)
        }
    }
}

/// An in-memory TURN client on one 5-tuple: builds requests with long-term credentials (RFC 8489 §9.2),
/// learns REALM/NONCE (and PASSWORD-ALGORITHMS) from the 401 or 438, and hands everything to a
/// ``TURNTestServer``.
final class TURNTestClient {
    let server: TURNTestServer
    let key: TURNClientKey
    var username: String
    var password: String
    var realm: String
    /// Send USERHASH instead of USERNAME.
    var useUserhash = false
    /// The password algorithm picked when the server offers PASSWORD-ALGORITHMS (else MD5, unsaid).
    var passwordAlgorithm = STUNPasswordAlgorithm.md5
    /// Follow the password-algorithms feature (echo PASSWORD-ALGORITHMS, send PASSWORD-ALGORITHM) when offered.
    var usePasswordAlgorithms = true
    /// Sent instead of the PASSWORD-ALGORITHMS value the server offered (a downgrade attempt).
    var echoedAlgorithms: [UInt8]?
    /// Protect requests with MESSAGE-INTEGRITY-SHA256 rather than MESSAGE-INTEGRITY.
    var sha256MAC = false
    var fingerprint = true
    /// The nonce in use, and the PASSWORD-ALGORITHMS value that came with it.
    var nonce: String?
    private(set) var offeredAlgorithms: [UInt8]?
    /// Every 401/438 answer seen.
    private(set) var challenges: [STUNMessage] = []

    init(server: TURNTestServer, address: STUNAddress, transport: STUNTransport = .udp, username: String,
         password: String, realm: String) {
        self.server = server
        self.key = TURNClientKey(address: address, transport: transport)
        self.username = username
        self.password = password
        self.realm = realm
    }

    /// True when this request will name a password algorithm (the nonce advertised the feature).
    private var namesAlgorithm: Bool { usePasswordAlgorithms && offeredAlgorithms != nil }

    /// The key of this client's MESSAGE-INTEGRITY(-SHA256), per the algorithm it names (MD5 if none).
    var integrityKey: STUNIntegrityKey {
        .longTerm(username: username, realm: realm, password: password, algorithm: namesAlgorithm ? passwordAlgorithm : .md5)
    }

    /// True if `message` is protected with this client's key.
    func verifies(_ message: STUNMessage?) -> Bool {
        guard let message else { return false }
        return STUNIntegrity.verify(message, key: integrityKey) == .valid
    }

    // MARK: Building

    /// A request (or indication) of `method` with `attributes`, then credentials unless `authenticated`
    /// is false or there is no nonce yet, then FINGERPRINT.
    func build(_ method: STUNMethod, _ attributes: [TURNAttribute], messageClass: STUNClass = .request,
               transactionID: STUNTransactionID = .random(), authenticated: Bool = true) -> ByteBuffer {
        var buf = ByteBuffer()
        let w = STUNMessageWriter(type: STUNMessageType(method: method, messageClass: messageClass),
                                  transactionID: transactionID, into: &buf)
        for a in attributes { a.write(w, into: &buf) }
        if authenticated, messageClass == .request, let nonce {
            if useUserhash {
                w.append(.userhash, STUNIntegrity.userhash(username: username, realm: realm), into: &buf)
            } else {
                w.append(.username, text: username, into: &buf)
            }
            w.append(.realm, text: realm, into: &buf)
            w.append(.nonce, text: nonce, into: &buf)
            if namesAlgorithm, let offered = offeredAlgorithms {
                w.append(.passwordAlgorithms, echoedAlgorithms ?? offered, into: &buf)
                w.append(.passwordAlgorithm, uint32: UInt32(passwordAlgorithm.rawValue) << 16, into: &buf)
            }
            if sha256MAC {
                w.appendMessageIntegritySHA256(key: integrityKey, into: &buf)
            } else {
                w.appendMessageIntegrity(key: integrityKey, into: &buf)
            }
        }
        if fingerprint { w.appendFingerprint(into: &buf) }
        return buf
    }

    // MARK: Sending

    /// Sends bytes as they are; learns the nonce from a 401/438.
    @discardableResult
    func send(_ bytes: ByteBuffer, file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        let a = server.handle(bytes, from: key, file: file, line: line)
        if let m = a.message, let code = a.errorCode, code == 401 || code == 438 {
            challenges.append(m)
            if let n = m.value(of: .nonce) { nonce = String(buffer: n) }
            offeredAlgorithms = m.value(of: .passwordAlgorithms).map { Array($0.readableBytesView) }
        }
        return a
    }

    /// The first leg of the long-term mechanism: the request without credentials, answered by 401.
    @discardableResult
    func challenge(_ method: STUNMethod = .allocate, _ attributes: [TURNAttribute] = [.requestedTransport(17)],
                   file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        send(build(method, attributes, authenticated: false), file: file, line: line)
    }

    /// A whole transaction: the 401 round trip first if there is no nonce yet, one retry with the fresh
    /// nonce after a 438.
    @discardableResult
    func request(_ method: STUNMethod, _ attributes: [TURNAttribute], file: StaticString = #filePath,
                 line: UInt = #line) -> TURNAnswer {
        if nonce == nil {
            let c = challenge(method, attributes, file: file, line: line)
            XCTAssertEqual(c.errorCode, 401, "an unauthenticated request is challenged", file: file, line: line)
        }
        let a = send(build(method, attributes), file: file, line: line)
        if a.errorCode == 438 { return send(build(method, attributes), file: file, line: line) }
        return a
    }

    @discardableResult
    func allocate(_ extra: [TURNAttribute] = [], transport: UInt8? = 17, file: StaticString = #filePath,
                  line: UInt = #line) -> TURNAnswer {
        request(.allocate, (transport.map { [.requestedTransport($0)] } ?? []) + extra, file: file, line: line)
    }

    @discardableResult
    func refresh(lifetime: UInt32? = nil, family: UInt8? = nil, file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        var attributes: [TURNAttribute] = []
        if let lifetime { attributes.append(.lifetime(lifetime)) }
        if let family { attributes.append(.requestedFamily(family)) }
        return request(.refresh, attributes, file: file, line: line)
    }

    @discardableResult
    func createPermission(_ peers: [STUNAddress], file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        request(.createPermission, peers.map { .peer($0) }, file: file, line: line)
    }

    @discardableResult
    func channelBind(_ number: UInt16, to peer: STUNAddress, file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        request(.channelBind, [.channel(number), .peer(peer)], file: file, line: line)
    }

    /// A Send indication (never authenticated).
    func sendIndication(to peer: STUNAddress?, data: [UInt8]?, dontFragment: Bool = false, extra: [TURNAttribute] = [],
                        file: StaticString = #filePath, line: UInt = #line) -> TURNAnswer {
        var attributes: [TURNAttribute] = []
        if let peer { attributes.append(.peer(peer)) }
        if let data { attributes.append(.data(data)) }
        if dontFragment { attributes.append(.dontFragment) }
        return send(build(.send, attributes + extra, messageClass: .indication), file: file, line: line)
    }

    /// A ChannelData message on `number` (padded as on a stream when `pad`).
    func channelData(_ number: UInt16, _ data: [UInt8], pad: Bool = false) -> (peer: STUNAddress?, drop: TURNDropReason?) {
        var payload = ByteBuffer()
        payload.writeBytes(data)
        var datagram = ByteBuffer()
        ChannelData.write(channel: number, data: payload, pad: pad, into: &datagram)
        return server.channelData(datagram, from: key)
    }
}
