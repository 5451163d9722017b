import Crypto
import NIOCore
import ParleyRelay
import ParleyWire

/// libFuzzer entry point for the TURN relay (RFC 8656): one input through
///
/// (a) the ChannelData codec (``ChannelData/decodeDatagram(_:)``, ``ChannelData/frameLength(_:)``),
/// (b) the TURN core's `handle` for a server holding one allocation (IPv4 + IPv6 relays, a permission,
///     a channel) under permissive credentials: the input as it is, and — so the authenticated paths are
///     reachable — re-signed with a valid USERNAME/REALM/NONCE/MESSAGE-INTEGRITY (an input that is not
///     STUN becomes the attribute list of a TURN message of a method the first byte picks),
/// (c) ``TURNAllocation/fromPeer(_:length:now:)`` and the ChannelData path, for peers derived from the input,
///
/// checking invariants: no crash or trap; every answer decodes as STUN and answers the request's
/// transaction; an unprotected answer stays within the amplification allowance; a protected one
/// verifies with the client's key; nothing is relayed to, or accepted from, a peer the policy refuses;
/// the quota returns to zero when the allocations are gone.
///
/// Built with `-DFUZZING` and `--sanitize=fuzzer` (scripts/fuzz.sh FuzzTURN) libFuzzer supplies `main`;
/// built normally, ``FuzzTURNReplay`` runs files given on the command line through the same function.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    TURNFuzz.channelDataCodec(bytes)
    let rig = TURNFuzz.Rig()
    // (c) first, on the known state: the only permitted peers are the rig's.
    TURNFuzz.peerPath(bytes, rig: rig, strict: true)
    // (b)
    let input = ByteBuffer(bytes: bytes)
    if let message = try? STUNDecoder.decode(input) {
        rig.serve(message, from: TURNFuzz.client, signed: false)
        rig.serve(message, from: TURNFuzz.stranger, signed: false)
        for (client, sha256) in [(TURNFuzz.client, bytes.count & 1 == 1), (TURNFuzz.stranger, false)] {
            if let resigned = TURNFuzz.resign(message, for: client, sha256: sha256, fingerprint: bytes.count & 2 == 2) {
                rig.serve(resigned, from: client, signed: true)
            }
        }
    } else if let first = bytes.first, !ChannelData.looksLikeChannelData(first) {
        for client in [TURNFuzz.client, TURNFuzz.stranger] {
            if let made = TURNFuzz.synthesize(bytes, for: client) { rig.serve(made, from: client, signed: true) }
        }
    }
    // (c) again, after whatever the input installed: still nothing for refused peers.
    TURNFuzz.peerPath(bytes, rig: rig, strict: false)
    rig.finish()
    return 0
}

/// What the fuzz function exercises; fixed keys and clock, so corpus inputs are reproducible.
enum TURNFuzz {
    static let now: UInt64 = 1_700_000_000_000  // unix ms
    static let realm = "fuzz.example"
    static let secret = "fuzz-secret"
    static let nonceKey = SymmetricKey(data: [UInt8](repeating: 0x5A, count: 32))
    static let authentication = LongTermAuthenticator(
        realm: realm, secrets: [secret], users: [.init(name: "fuzz", realm: realm, password: "fuzz-password")],
        nonceKey: nonceKey, nonceLifetime: 600)
    /// A TURN REST credential valid for an hour from ``now``.
    static let username = "\(now / 1000 + 3600):fuzz"
    static let password = LongTermAuthenticator.restPassword(username: username, secret: secret)
    static let key = STUNIntegrityKey.longTerm(username: username, realm: realm, password: password)
    static let keySHA256 = STUNIntegrityKey.longTerm(username: username, realm: realm, password: password, algorithm: .sha256)
    static let staticKeys = [
        STUNIntegrityKey.longTerm(username: "fuzz", realm: realm, password: "fuzz-password"),
        STUNIntegrityKey.longTerm(username: "fuzz", realm: realm, password: "fuzz-password", algorithm: .sha256),
    ]

    /// The client that holds the allocation, and one that holds none (another family and transport).
    static let client = TURNClientKey(address: .v4(0xC633_6405, port: 40000), transport: .udp)
    static let stranger = TURNClientKey(address: .v6(0x2001_0DB8_0000_0000, 5, port: 40001), transport: .tcp)
    static func nonce(for client: TURNClientKey) -> String {
        client == Self.client ? clientNonce : strangerNonce
    }
    static let clientNonce = authentication.makeNonce(source: client.address, now: now / 1000)
    static let strangerNonce = authentication.makeNonce(source: stranger.address, now: now / 1000)

    /// Peers with a permission (and a channel, 0x4000, for the IPv4 one).
    static let peer = STUNAddress.v4(0x0808_0808, port: 3478)
    static let peer6 = STUNAddress.v6(0x2606_4700_4700_0000, 0x1111, port: 3478)
    static let channel: UInt16 = 0x4000
    static let policy = PeerPolicy(allow: [IPPrefix("10.99.0.0/16")!], deny: [IPPrefix("9.9.9.0/24")!, IPPrefix("10.99.9.0/24")!])
    static let configuration = TURNConfiguration(
        authentication: authentication, relayIPv6: true, maxAllocationsPerUser: 3, maxAllocations: 4, bandwidthLimit: 50_000,
        peerPolicy: policy, software: "fuzz")
    static var relays: [TURNRelayEndpoint<Int>] {
        [TURNRelayEndpoint(relay: 1, address: .v4(0xC000_0201, port: 50000)),
         TURNRelayEndpoint(relay: 2, address: .v6(0x2001_0DB8_0000_0001, 1, port: 50000))]
    }

    // MARK: (a) ChannelData codec

    static func channelDataCodec(_ bytes: [UInt8]) {
        // The same bytes at the start of a buffer and behind a few bytes already read.
        var shifted = ByteBuffer(bytes: [0xA5, 0x5A, 0xFF] + bytes)
        shifted.moveReaderIndex(forwardBy: 3)
        for buffer in [ByteBuffer(bytes: bytes), shifted] {
            let length = bytes.count >= 4 ? Int(bytes[2]) << 8 | Int(bytes[3]) : -1
            let number = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
            switch ChannelData.decodeDatagram(buffer) {
            case .success(let (channel, data)):
                precondition(bytes.count >= 4 && ChannelData.channelRange.contains(channel) && channel == number)
                precondition(data.readableBytes == length && 4 + length <= bytes.count)
                precondition(Array(data.readableBytesView) == Array(bytes[4..<(4 + length)]))
                var out = ByteBuffer()
                ChannelData.write(channel: channel, data: data, pad: false, into: &out)
                precondition(Array(out.readableBytesView) == Array(bytes.prefix(4 + length)))
                out.clear()
                ChannelData.write(channel: channel, data: data, pad: true, into: &out)
                precondition(out.readableBytes % 4 == 0 && out.readableBytes - (4 + length) < 4)
                precondition(out.readableBytes == ChannelData.frameLength(out))
            case .failure(.truncated):
                precondition(bytes.count < 4)
            case .failure(.badChannel):
                precondition(bytes.count >= 4 && !ChannelData.channelRange.contains(number))
            case .failure(.lengthOverrun):
                precondition(bytes.count >= 4 && ChannelData.channelRange.contains(number) && 4 + length > bytes.count)
            }
            if let frame = ChannelData.frameLength(buffer) {
                precondition(bytes.count >= 4 && frame == 4 + (length + 3) / 4 * 4)
            } else {
                precondition(bytes.count < 4)
            }
        }
    }

    // MARK: (b) The core

    /// A core with one allocation made the way a client makes it, per input (allocations are reference
    /// types: no state leaks from one input to the next).
    final class Rig {
        var core: TURNServer<Int>
        let quota = TURNQuota(maxTotal: TURNFuzz.configuration.maxAllocations, maxPerUser: TURNFuzz.configuration.maxAllocationsPerUser)
        let allocation: TURNAllocation<Int>

        init() {
            core = TURNServer(configuration: TURNFuzz.configuration, quota: quota)
            var out = ByteBuffer()
            let allocate = TURNFuzz.signed(.allocate, for: TURNFuzz.client) { w, b in
                w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
                w.append(.additionalAddressFamily, [2, 0, 0, 0], into: &b)
            }
            guard case .allocate(let request) = core.handle(allocate, from: TURNFuzz.client, now: TURNFuzz.now, into: &out),
                let made = core.allocated(request, relays: TURNFuzz.relays, now: TURNFuzz.now, into: &out)
            else { preconditionFailure("the rig's Allocate failed") }
            allocation = made
            let permission = TURNFuzz.signed(.createPermission, for: TURNFuzz.client) { w, b in
                w.append(.xorPeerAddress, TURNFuzz.xor(TURNFuzz.peer6, w.header.transactionID), into: &b)
            }
            let bind = TURNFuzz.signed(.channelBind, for: TURNFuzz.client) { w, b in
                w.append(.channelNumber, uint32: UInt32(TURNFuzz.channel) << 16, into: &b)
                w.append(.xorPeerAddress, TURNFuzz.xor(TURNFuzz.peer, w.header.transactionID), into: &b)
            }
            for m in [permission, bind] {
                out.clear()
                guard case .respond(.success, nil) = core.handle(m, from: TURNFuzz.client, now: TURNFuzz.now, into: &out) else {
                    preconditionFailure("the rig's \(m.type) failed")
                }
            }
            precondition(made.permissionCount == 2 && made.channelCount == 1)
        }

        /// One message through the core and every invariant its answer obeys.
        func serve(_ message: STUNMessage, from client: TURNClientKey, signed: Bool) {
            var out = ByteBuffer()
            let action = core.handle(message, from: client, now: TURNFuzz.now, into: &out)
            switch action {
            case .drop:
                precondition(out.readableBytes == 0, "a drop wrote \(out.readableBytes) bytes")
            case .respond(let outcome, let denial):
                let answer = check(out, answering: message, signed: signed)
                switch outcome {
                case .success:
                    precondition(answer.type.messageClass == .successResponse && denial == nil)
                case .error(let code):
                    precondition(answer.type.messageClass == .errorResponse && answer.errorCode?.code == Int(code.rawValue))
                    precondition(denial == nil || code == .forbidden)
                }
                if denial != nil { precondition(peers(of: message).contains { TURNFuzz.policy.denial(for: $0) != nil }) }
            case .respondAndRelease(let relays):
                let answer = check(out, answering: message, signed: signed)
                precondition(answer.type.messageClass == .successResponse && message.type.method == .refresh)
                precondition(core.allocation(for: client) == nil && relays.allSatisfy { [1, 2, 10, 11].contains($0) })
            case .send(let data, let to, let via):
                precondition(out.readableBytes == 0)
                precondition(message.type == STUNMessageType(method: .send, messageClass: .indication))
                let peer = STUNAddress(to)!
                precondition(TURNFuzz.policy.denial(for: peer) == nil, "relayed to a refused peer \(peer)")
                precondition(core.allocation(for: client)?.relay(for: peer) == via)
                precondition(data.readableBytes < message.length)
            case .allocate(let request):
                precondition(out.readableBytes == 0 && message.type.method == .allocate && request.client == client)
                precondition(core.allocation(for: client) != nil && !request.families.isEmpty && request.families.count <= 2)
                // Sometimes the relay sockets bind, sometimes not (508).
                var answer = ByteBuffer()
                if message.transactionID.low & 1 == 0 {
                    let relays = request.families.enumerated().map { i, f in
                        TURNRelayEndpoint(relay: 10 + i, address: f == .ipv4 ? TURNFuzz.relays[0].address : TURNFuzz.relays[1].address)
                    }
                    precondition(core.allocated(request, relays: relays, now: TURNFuzz.now, into: &answer) != nil)
                    precondition(check(answer, answering: message, signed: signed).type.messageClass == .successResponse)
                } else {
                    core.allocationFailed(request, now: TURNFuzz.now, into: &answer)
                    precondition(check(answer, answering: message, signed: signed).errorCode?.code == 508)
                    precondition(core.allocation(for: client) == nil)
                }
            }
            // Whatever happened, no refused peer got a permission.
            for peer in peers(of: message) where TURNFuzz.policy.denial(for: peer) != nil {
                if let a = core.allocation(for: client) {
                    let delivery = a.fromPeer(peer, length: 1, now: TURNFuzz.now)
                    precondition(delivery == .drop(.noPermission) || delivery == .drop(.noAllocation), "\(peer): \(delivery)")
                }
            }
        }

        /// The answer decodes, answers the request, and is either protected with the client's key or
        /// within the amplification bound.
        @discardableResult
        func check(_ out: ByteBuffer, answering request: STUNMessage, signed: Bool) -> STUNMessage {
            let answer: STUNMessage
            do {
                answer = try STUNDecoder.decode(out)
            } catch {
                preconditionFailure("the core's answer does not decode: \(error)")
            }
            precondition(answer.transactionID == request.transactionID && answer.header.cookie == request.header.cookie)
            precondition(answer.type.method == request.type.method)
            if answer.messageIntegrityOffset != nil || answer.messageIntegritySHA256Offset != nil {
                let keys = [TURNFuzz.key, TURNFuzz.keySHA256] + TURNFuzz.staticKeys
                precondition(keys.contains { STUNIntegrity.verify(answer, key: $0) == .valid }, "a protected answer that does not verify")
            } else {
                let allowed = request.length + TURNFuzz.configuration.amplificationAllowance
                precondition(out.readableBytes <= allowed, "unprotected answer \(out.readableBytes) bytes, allowed \(allowed)")
            }
            return answer
        }

        func peers(of message: STUNMessage) -> [STUNAddress] {
            var peers: [STUNAddress] = []
            message.forEachAttribute { type, offset, length in
                if type == .xorPeerAddress, let v = message.bytes.getSlice(at: message.bytes.readerIndex + offset + 4, length: length),
                    let p = try? STUNAddressCodec.decode(v, xor: true, header: message.header) {
                    peers.append(p)
                }
                return true
            }
            return peers
        }

        /// Everything ends: expiry and removal return every quota slot.
        func finish() {
            _ = core.expire(now: TURNFuzz.now + 86_400_000)
            _ = core.removeAll()
            precondition(core.allocationCount == 0 && quota.total == 0, "quota leaked: \(quota.total)")
        }
    }

    /// A TURN message signed for `client` with the REST credential.
    static func signed(_ method: STUNMethod, _ messageClass: STUNClass = .request, for client: TURNClientKey,
                       _ body: (STUNMessageWriter, inout ByteBuffer) -> Void) -> STUNMessage {
        var b = ByteBuffer()
        let w = STUNMessageWriter(type: STUNMessageType(method: method, messageClass: messageClass), transactionID: .random(), into: &b)
        body(w, &b)
        sign(w, for: client, sha256: false, fingerprint: true, into: &b)
        // A message this harness built and signed itself must decode; if not, the harness is broken.
        guard let message = try? STUNDecoder.decode(b) else { preconditionFailure("FuzzTURN: a signed seed does not decode") }
        return message
    }

    static func sign(_ w: STUNMessageWriter, for client: TURNClientKey, sha256: Bool, fingerprint: Bool, into b: inout ByteBuffer) {
        w.append(.username, text: username, into: &b)
        w.append(.realm, text: realm, into: &b)
        w.append(.nonce, text: nonce(for: client), into: &b)
        if sha256 {
            // The key follows PASSWORD-ALGORITHM (MD5 without one), the MAC is the client's choice.
            w.appendMessageIntegritySHA256(key: key, into: &b)
        } else {
            w.appendMessageIntegrity(key: key, into: &b)
        }
        if fingerprint { w.appendFingerprint(into: &b) }
    }

    static func xor(_ peer: STUNAddress, _ tid: STUNTransactionID) -> [UInt8] {
        var b = ByteBuffer()
        STUNAddressCodec.encode(peer, xor: true, transactionID: tid, into: &b)
        return Array(b.readableBytesView)
    }

    static let credentialAttributes: Set<UInt16> = [
        STUNAttributeType.username, .userhash, .realm, .nonce, .messageIntegrity, .messageIntegritySHA256, .fingerprint,
        .passwordAlgorithm, .passwordAlgorithms,
    ].reduce(into: []) { $0.insert($1.rawValue) }

    /// The message with its own credentials replaced by valid ones for `client`: same header, the other
    /// attributes in order.
    static func resign(_ m: STUNMessage, for client: TURNClientKey, sha256: Bool, fingerprint: Bool) -> STUNMessage? {
        guard m.header.hasMagicCookie else { return nil }
        var b = ByteBuffer()
        let w = STUNMessageWriter(type: m.type, cookie: m.header.cookie, transactionID: m.transactionID, into: &b)
        m.forEachAttribute { type, offset, length in
            if !credentialAttributes.contains(type.rawValue) {
                w.append(type, m.bytes.getSlice(at: m.bytes.readerIndex + offset + 4, length: length)!.readableBytesView, into: &b)
            }
            return true
        }
        sign(w, for: client, sha256: sha256, fingerprint: fingerprint, into: &b)
        return try? STUNDecoder.decode(b)
    }

    /// An input that is not STUN as the attributes of a signed TURN message: the first byte picks the
    /// method (and class), the rest is read as type-length-value records (lengths clipped to the input).
    static func synthesize(_ bytes: [UInt8], for client: TURNClientKey) -> STUNMessage? {
        let kinds: [STUNMessageType] = [
            .init(method: .allocate, messageClass: .request), .init(method: .refresh, messageClass: .request),
            .init(method: .createPermission, messageClass: .request), .init(method: .channelBind, messageClass: .request),
            .init(method: .send, messageClass: .indication),
        ]
        let kind = kinds[Int(bytes[0] & 0x7F) % kinds.count]
        var b = ByteBuffer()
        let w = STUNMessageWriter(type: kind, transactionID: STUNTransactionID(high: 0x0102_0304_0506_0708, low: UInt32(bytes.count)),
                                  into: &b)
        var i = 1
        while i + 4 <= bytes.count {
            let type = STUNAttributeType(rawValue: UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
            let length = min(Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]), bytes.count - i - 4)
            if !credentialAttributes.contains(type.rawValue) { w.append(type, bytes[(i + 4)..<(i + 4 + length)], into: &b) }
            i += 4 + length
        }
        if kind.messageClass == .indication {
            // Indications carry no credentials.
            if bytes[0] & 0x80 != 0 { w.appendFingerprint(into: &b) }
        } else {
            sign(w, for: client, sha256: bytes[0] & 0x80 != 0, fingerprint: bytes.count & 1 == 1, into: &b)
        }
        return try? STUNDecoder.decode(b)
    }

    // MARK: (c) Peer → client, client → peer

    /// A peer address from the input (IPv4 or IPv6 by the first byte), then the data paths for it.
    static func peerPath(_ bytes: [UInt8], rig: Rig, strict: Bool) {
        var candidates = [peer, peer6, peer.withPort(1), peer6.withPort(1)]
        if bytes.count >= 7 {
            let port = UInt16(bytes[5]) << 8 | UInt16(bytes[6])
            if bytes[0] & 1 == 0 || bytes.count < 19 {
                candidates.append(.v4(UInt32(bytes[1]) << 24 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 8 | UInt32(bytes[4]), port: port))
            } else {
                let h = bytes[3..<11].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let l = bytes[11..<19].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                candidates.append(.v6(h, l, port: port))
            }
        }
        let a = rig.allocation
        let length = bytes.count
        for p in candidates {
            let delivery = a.fromPeer(p, length: length, now: now)
            switch delivery {
            case .channel(let n):
                precondition(!strict || (n == channel && p == peer), "\(p) delivered on channel \(n)")
                precondition(policy.denial(for: p) == nil)
            case .indication:
                precondition(!strict || p.withPort(0) == peer.withPort(0) || p.withPort(0) == peer6.withPort(0), "\(p) has a permission")
                precondition(policy.denial(for: p) == nil)
            case .drop:
                break
            }
            // Data from the peer after the allocation expired is never delivered.
            precondition(a.fromPeer(p, length: 1, now: a.expiry) == .drop(.noAllocation))
        }
        // ChannelData from the client on the channel the input names.
        if bytes.count >= 2 {
            let number = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            let r = rig.core.channelData(number, length: length, from: client, now: now)
            if let to = r.peer {
                let p = STUNAddress(to)!
                precondition(r.drop == nil && policy.denial(for: p) == nil)
                precondition(!strict || (number == channel && p == peer))
            }
            if rig.core.allocation(for: stranger) == nil {
                precondition(rig.core.channelData(number, length: 1, from: stranger, now: now).drop == .noAllocation)
            }
        }
    }
}

#if !FUZZING
import Foundation
import FuzzReplay

/// Regression replay: `FuzzTURN FILE|DIR...` runs each file (each file of each directory) through
/// ``fuzz(_:_:)``, e.g. the seeds and crash inputs kept in Tests/ParleyWireTests/TURNCorpus.
/// `FuzzTURN --write-seeds DIR` (re)writes the seed inputs, signed with the target's fixed key and nonce.
@main
struct FuzzTURNReplay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds", arguments.count == 2 {
            try writeSeeds(to: arguments[1])
            return
        }
        try FuzzReplay.run(arguments, usage: "usage: FuzzTURN FILE|DIR...  (replays inputs through LLVMFuzzerTestOneInput)\n       FuzzTURN --write-seeds DIR") {
            _ = fuzz($0.baseAddress!, $0.count)
        }
    }

    /// Seeds: valid TURN messages of the fuzz client (so the raw input is already authenticated),
    /// ChannelData, and truncated forms.
    static func writeSeeds(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let c = TURNFuzz.client
        func tid(_ n: UInt32) -> STUNTransactionID { STUNTransactionID(high: 0x5455_524E_5345_4544, low: n) }
        func message(_ type: STUNMessageType, _ n: UInt32, sign: Bool = true,
                     _ body: (STUNMessageWriter, inout ByteBuffer) -> Void) -> [UInt8] {
            var b = ByteBuffer()
            let w = STUNMessageWriter(type: type, transactionID: tid(n), into: &b)
            body(w, &b)
            if sign { TURNFuzz.sign(w, for: c, sha256: false, fingerprint: true, into: &b) }
            return Array(b.readableBytesView)
        }
        let request = { (m: STUNMethod) in STUNMessageType(method: m, messageClass: .request) }
        var seeds: [(String, [UInt8])] = []
        let allocate = message(request(.allocate), 1) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
            w.append(.lifetime, uint32: 1200, into: &b)
            w.append(.dontFragment, [], into: &b)
        }
        seeds.append(("allocate-rest-credentials.bin", allocate))
        seeds.append(("allocate-unauthenticated.bin", message(request(.allocate), 2, sign: false) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
        }))
        seeds.append(("allocate-even-port-dual.bin", message(request(.allocate), 3) { w, b in
            w.append(.requestedTransport, [17, 0, 0, 0], into: &b)
            w.append(.evenPort, [0x80], into: &b)
            w.append(.additionalAddressFamily, [2, 0, 0, 0], into: &b)
        }))
        seeds.append(("refresh.bin", message(request(.refresh), 4) { w, b in w.append(.lifetime, uint32: 0, into: &b) }))
        seeds.append(("create-permission.bin", message(request(.createPermission), 5) { w, b in
            w.append(.xorPeerAddress, TURNFuzz.xor(.v4(0x0101_0101, port: 0), tid(5)), into: &b)
            w.append(.xorPeerAddress, TURNFuzz.xor(.v6(0x2606_4700_0000_0000, 0x1001, port: 0), tid(5)), into: &b)
        }))
        let bind = message(request(.channelBind), 6) { w, b in
            w.append(.channelNumber, uint32: 0x4001_0000, into: &b)
            w.append(.xorPeerAddress, TURNFuzz.xor(.v4(0x0101_0101, port: 5000), tid(6)), into: &b)
        }
        seeds.append(("channel-bind.bin", bind))
        seeds.append(("channel-bind-denied-peer.bin", message(request(.channelBind), 7) { w, b in
            w.append(.channelNumber, uint32: 0x4002_0000, into: &b)
            w.append(.xorPeerAddress, TURNFuzz.xor(.v6(0, 0x0000_FFFF_0A00_0001, port: 5000), tid(7)), into: &b)
        }))
        let send = message(STUNMessageType(method: .send, messageClass: .indication), 8, sign: false) { w, b in
            w.append(.xorPeerAddress, TURNFuzz.xor(TURNFuzz.peer, tid(8)), into: &b)
            w.append(.data, Array("hello peer".utf8), into: &b)
        }
        seeds.append(("send-indication.bin", send))
        seeds.append(("send-indication-no-data.bin", message(STUNMessageType(method: .send, messageClass: .indication), 9, sign: false) { w, b in
            w.append(.xorPeerAddress, TURNFuzz.xor(TURNFuzz.peer6, tid(9)), into: &b)
        }))
        // Kept crash input: before the PeerPolicy fix, any IPv6 XOR-PEER-ADDRESS in a Send indication (with
        // DATA, from a client with an allocation) trapped on `PeerPolicy.mappedV4`'s nil prefix.
        seeds.append(("crash-peerpolicy-ipv6-send.bin", message(STUNMessageType(method: .send, messageClass: .indication), 10,
                                                               sign: false) { w, b in
            w.append(.xorPeerAddress, TURNFuzz.xor(.v6(0x2001_4860_4860_0000, 0x8888, port: 53), tid(10)), into: &b)
            w.append(.data, [0x00], into: &b)
        }))
        seeds.append(("channel-data.bin", [0x40, 0x00, 0x00, 0x05] + Array("hello".utf8) + [0, 0, 0]))
        seeds.append(("channel-data-empty.bin", [0x4F, 0xFF, 0x00, 0x00]))
        seeds.append(("channel-data-bad-channel.bin", [0x50, 0x00, 0x00, 0x04, 1, 2, 3, 4]))
        seeds.append(("truncated-channel-data-header.bin", [0x40, 0x00, 0x00]))
        seeds.append(("truncated-channel-data-length.bin", [0x40, 0x00, 0x00, 0x10, 1, 2, 3, 4]))
        seeds.append(("truncated-allocate.bin", Array(allocate.prefix(allocate.count - 10))))
        seeds.append(("truncated-channel-bind.bin", Array(bind.prefix(26))))
        seeds.append(("truncated-send-indication.bin", Array(send.prefix(send.count - 3))))
        // Attribute records without a header: the synthesizer's form (first byte 0x03 = ChannelBind).
        seeds.append(("synthesized-channel-bind.bin", [0x03, 0x00, 0x0C, 0x00, 0x04, 0x40, 0x03, 0x00, 0x00,
                                                       0x00, 0x12, 0x00, 0x08] + TURNFuzz.xor(.v4(0x0101_0102, port: 7), tid(0))))
        for (name, bytes) in seeds {
            try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
            print("wrote \(directory)/\(name) (\(bytes.count) bytes)")
        }
    }
}
#endif
