import NIOCore
import ParleyWire

/// The STUN server's decisions (RFC 8489, RFC 5780, RFC 3489 compatibility), free of I/O.
///
/// One call per received message: the core writes the answer (if any) into a caller-supplied buffer and
/// returns what to do with it. It keeps no state between calls, so it can be shared by every socket
/// and event loop, and there is no per-source state before authentication by construction.
public struct STUNServer: Sendable {
    public let configuration: STUNServerConfiguration
    private let softwareBytes: [UInt8]?
    /// Whether the plain success answer is built by the one-pass writer (see
    /// `writePlainSuccess(to:source:budget:fingerprint:into:)`). Tests switch it off to compare that
    /// writer's bytes with the general path's.
    var fastPath = true

    public init(configuration: STUNServerConfiguration) {
        self.configuration = configuration
        self.softwareBytes = configuration.software.map { Array($0.utf8.prefix(763)) }
    }

    /// What the I/O layer does after ``handle(_:from:on:transport:now:into:)``.
    public enum Action: Sendable, Equatable {
        /// Send the bytes written into the output buffer to `destination`, from `endpoint`'s socket.
        case respond(to: STUNAddress, from: STUNEndpoint, outcome: Outcome)
        /// Send nothing.
        case drop(DropReason)
    }

    /// What was answered, for metrics.
    public enum Outcome: Sendable, Equatable {
        case success
        case error(STUNErrorCode)
    }

    /// Why nothing was sent, for metrics.
    public enum DropReason: String, Sendable, Equatable, CaseIterable {
        /// Not a STUN message (garbage), or a FINGERPRINT that does not match.
        case malformed
        /// An indication or a response: nothing to answer.
        case notRequest
        /// An RFC 3489 message other than a Binding request.
        case classicNonBinding
        /// A malformed response/indication, which gets no error answer.
        case malformedNonRequest
        /// An unauthenticated request whose smallest possible answer would exceed the amplification
        /// budget (request + allowance): a 401/438 challenge with a long realm or a small allowance, or
        /// a 300 whose ALTERNATE-SERVER does not fit. Silence is the only answer within the bound.
        case overBudget
    }

    /// Handles one message. `out` receives the answer's bytes (appended at its writer index).
    public func handle(_ bytes: ByteBuffer, from source: STUNAddress, on endpoint: STUNEndpoint,
                       transport: STUNTransport, now: UInt64, into out: inout ByteBuffer) -> Action {
        let message: STUNMessage
        do {
            message = try STUNDecoder.decode(bytes)
        } catch {
            return answerDecodeError(error, bytes: bytes, source: source, endpoint: endpoint, into: &out)
        }
        let header = message.header
        guard header.type.messageClass == .request else { return .drop(.notRequest) }
        if !header.hasMagicCookie && header.type.method != .binding { return .drop(.classicNonBinding) }
        let budget = message.length + configuration.amplificationAllowance
        let fingerprint = message.fingerprintOffset != nil

        guard header.type.method == .binding else {
            return error(.badRequest, to: message, source: source, endpoint: endpoint, budget: budget, into: &out)
        }

        // Credentials (RFC 8489 §9.2.4), when configured and offered or required.
        var integrity: (key: STUNIntegrityKey, sha256: Bool)?
        let offered = message.messageIntegrityOffset != nil || message.messageIntegritySHA256Offset != nil
        if let auth = configuration.authentication, offered || configuration.requireAuthentication {
            let verdict = auth.verify(message, source: source, now: now)
            switch verdict {
            case .authenticated(_, let key, let sha256):
                integrity = (key, sha256)
            case .badRequest:
                return error(.badRequest, to: message, source: source, endpoint: endpoint, budget: budget, into: &out)
            case .challenge, .staleNonce:
                guard LongTermAuthenticator.challengeLength(realm: auth.realm, advertiseAlgorithms: false,
                                                            fingerprint: fingerprint) <= budget
                else { return .drop(.overBudget) }
                let code: STUNErrorCode = if case .staleNonce = verdict { .staleNonce } else { .unauthenticated }
                let w = STUNMessageWriter(responseTo: header, messageClass: .errorResponse, into: &out)
                w.appendErrorCode(code, reason: "", into: &out)
                w.append(.realm, text: auth.realm, into: &out)
                w.append(.nonce, text: auth.makeNonce(source: source, now: now), into: &out)
                if fingerprint { w.appendFingerprint(into: &out) }
                return .respond(to: source, from: endpoint, outcome: .error(code))
            }
        }
        // RFC 8489 §6.3.1.1, after authentication (RFC 5389 §7.3.1 order): comprehension-required
        // attributes we do not understand → 420, protected when the request was.
        var unknown = UnknownList()
        // The decoder counted the attributes: when FINGERPRINT (comprehension-optional) is the only one, or
        // there are none, as in most Binding requests, there is nothing to look for.
        if message.attributeCount > (fingerprint ? 1 : 0) {
            message.forEachAttribute { type, offset, length in
                if type.isComprehensionRequired && !understands(type, in: message, offset: offset, length: length) {
                    unknown.append(type)
                }
                return true
            }
        }
        if unknown.count > 0 {
            let w = STUNMessageWriter(responseTo: header, messageClass: .errorResponse, into: &out)
            w.appendErrorCode(.unknownAttribute, reason: "", into: &out)
            var types = unknown.types
            // RFC 3489 §11.2.11: an odd count repeats one entry so the length stays a multiple of 4.
            if !header.hasMagicCookie && types.count % 2 == 1 { types.append(types[types.count - 1]) }
            w.appendUnknownAttributes(types, into: &out)
            w.finish(integrity: integrity, fingerprint: fingerprint, into: &out)
            return .respond(to: source, from: endpoint, outcome: .error(.unknownAttribute))
        }

        // With no credentials configured, integrity the client offers cannot be checked: the answer goes
        // out unprotected (a public STUN server has no users to know).

        // RFC 8489 §10: redirect.
        if let alternate = configuration.alternateServer, integrity != nil || configuration.alternateServerForUnauthenticated {
            // Unauthenticated, the 300 is held to the budget like any answer: the reason phrase goes
            // first, and without room for ALTERNATE-SERVER there is no answer at all.
            var reason = STUNErrorCode.tryAlternate.reason
            if integrity == nil {
                let bare = 20 + 8 + 4 + alternate.encodedLength + (fingerprint ? 8 : 0)
                guard bare <= budget else { return .drop(.overBudget) }
                if bare + ((reason.utf8.count + 3) & ~3) > budget { reason = "" }
            }
            let w = STUNMessageWriter(responseTo: header, messageClass: .errorResponse, into: &out)
            w.appendErrorCode(.tryAlternate, reason: reason, into: &out)
            w.append(.alternateServer, address: alternate, xor: false, into: &out)
            w.finish(integrity: integrity, fingerprint: fingerprint, into: &out)
            return .respond(to: source, from: endpoint, outcome: .error(.tryAlternate))
        }

        // RFC 5780 §6.1: CHANGE-REQUEST and RESPONSE-PORT.
        var from = endpoint
        var destination = source
        if configuration.behaviourDiscovery != nil {
            if let change = message.value(of: .changeRequest) {
                guard change.readableBytes == 4, let flags = change.getInteger(at: change.readerIndex, as: UInt32.self) else {
                    return error(.badRequest, to: message, source: source, endpoint: endpoint, budget: budget, into: &out)
                }
                let ip = flags & 0x4 != 0
                let port = flags & 0x2 != 0
                if (ip || port) && transport != .udp {
                    // A connection cannot be answered from another address.
                    return error(.badRequest, to: message, source: source, endpoint: endpoint, budget: budget, into: &out)
                }
                from = endpoint.changed(ip: ip, port: port)
            }
            if let rp = message.value(of: .responsePort) {
                guard rp.readableBytes == 4 || rp.readableBytes == 2, let port = rp.getInteger(at: rp.readerIndex, as: UInt16.self),
                    transport == .udp, header.hasMagicCookie
                else {
                    return error(.badRequest, to: message, source: source, endpoint: endpoint, budget: budget, into: &out)
                }
                destination = source.withPort(port)
            }
        }

        // The common case, written in one pass. Without integrity the general path below caps at `budget`,
        // adds no MESSAGE-INTEGRITY and no PADDING; without RFC 5780 it adds no OTHER-ADDRESS/RESPONSE-ORIGIN
        // and `from`/`destination` are still the receiving endpoint and the source. What is left is the
        // mapped address(es), SOFTWARE and FINGERPRINT, which `writePlainSuccess` decides identically.
        if fastPath && integrity == nil && configuration.behaviourDiscovery == nil {
            writePlainSuccess(to: header, source: source, budget: budget, fingerprint: fingerprint, into: &out)
            return .respond(to: destination, from: from, outcome: .success)
        }

        // The success response, optional attributes in priority order within the amplification budget.
        let w = STUNMessageWriter(responseTo: header, messageClass: .successResponse, into: &out)
        let cap = integrity == nil ? budget : Int.max
        let tail = (fingerprint ? 8 : 0) + (integrity.map { $0.sha256 ? 36 : 24 } ?? 0)
        @inline(__always) func fits(_ n: Int, _ out: ByteBuffer) -> Bool { w.length(of: out) + n + tail <= cap }
        let addressSize = 4 + source.encodedLength
        if header.hasMagicCookie {
            w.append(.xorMappedAddress, address: source, xor: true, into: &out)
        } else {
            w.append(.mappedAddress, address: source, xor: false, into: &out)
        }
        // OTHER-ADDRESS and RESPONSE-ORIGIN describe the four UDP sockets; a stream was accepted on a
        // socket that has no such counterparts, so they are sent over UDP only.
        if let discovery = configuration.behaviourDiscovery, transport == .udp {
            let origin = discovery.address(from)
            let other = discovery.address(endpoint.other)
            let originType: STUNAttributeType = header.hasMagicCookie ? .responseOrigin : .sourceAddress
            let otherType: STUNAttributeType = header.hasMagicCookie ? .otherAddress : .changedAddress
            if fits(4 + other.encodedLength, out) { w.append(otherType, address: other, xor: false, into: &out) }
            if fits(4 + origin.encodedLength, out) { w.append(originType, address: origin, xor: false, into: &out) }
        }
        if header.hasMagicCookie && fits(addressSize, out) {
            w.append(.mappedAddress, address: source, xor: false, into: &out)
        }
        // RFC 3489 parsers require attribute lengths in multiples of 4; SOFTWARE (their SERVER) is
        // left out for them rather than sent with a length they reject.
        if let softwareBytes, header.hasMagicCookie, fits(4 + ((softwareBytes.count + 3) & ~3), out) {
            w.append(.software, softwareBytes, into: &out)
        }
        // RFC 5780 §7.6: PADDING is honoured only for authenticated requests (it is an amplifier).
        if integrity != nil, let padding = message.value(of: .padding) {
            let n = min(padding.readableBytes, 1200)
            w.append(.padding, repeatElement(UInt8(0), count: n), into: &out)
        }
        w.finish(integrity: integrity, fingerprint: fingerprint, into: &out)
        return .respond(to: destination, from: from, outcome: .success)
    }

    /// The success answer when there is no integrity to add and no RFC 5780 attribute to send, the answer
    /// to nearly every request: the same bytes as the general path in ``handle(_:from:on:transport:now:into:)``
    /// (which `FastPathTests` checks byte for byte), written by
    /// ``STUNMessageWriter/writeBindingSuccess(responseTo:address:xorMappedAddress:mappedAddress:software:fingerprint:into:)``
    /// in one pass instead of some twenty small buffer writes.
    ///
    /// The amplification budget is applied as the general path's `fits` does: XOR-MAPPED-ADDRESS (MAPPED-ADDRESS
    /// for RFC 3489) always goes; then MAPPED-ADDRESS, then SOFTWARE, each only if the message so far plus
    /// it plus FINGERPRINT stays within `budget`.
    private func writePlainSuccess(to header: STUNHeader, source: STUNAddress, budget: Int, fingerprint: Bool,
                                   into out: inout ByteBuffer) {
        let tail = fingerprint ? 8 : 0
        let addressSize = 4 + source.encodedLength
        var length = STUNDecoder.headerLength + addressSize
        var mapped = false
        var software: [UInt8]?
        if header.hasMagicCookie {
            if length + addressSize + tail <= budget {
                mapped = true
                length += addressSize
            }
            // RFC 3489 clients get no SOFTWARE (see the general path).
            if let softwareBytes, length + 4 + ((softwareBytes.count + 3) & ~3) + tail <= budget {
                software = softwareBytes
            }
        }
        STUNMessageWriter.writeBindingSuccess(
            responseTo: header, address: source, xorMappedAddress: header.hasMagicCookie,
            mappedAddress: mapped || !header.hasMagicCookie, software: software, fingerprint: fingerprint, into: &out)
    }

    /// Attributes a Binding request may carry that this server understands.
    private func understands(_ type: STUNAttributeType, in message: STUNMessage, offset: Int, length: Int) -> Bool {
        switch type {
        case .username, .userhash, .messageIntegrity, .messageIntegritySHA256, .realm, .nonce, .passwordAlgorithm:
            return true
        case .changeRequest where configuration.behaviourDiscovery == nil:
            // RFC 3489 clients send CHANGE-REQUEST with no flags in every test; that asks for nothing
            // we cannot do. Only a request for an actual change is unknown without RFC 5780.
            guard length == 4 else { return false }
            let flags = message.bytes.getInteger(at: message.bytes.readerIndex + offset + 4, as: UInt32.self) ?? 0
            return flags & 0x6 == 0
        case .changeRequest, .responsePort, .padding:
            return configuration.behaviourDiscovery != nil
        default:
            return false
        }
    }


    /// An error response with a reason phrase only if the amplification budget allows it.
    private func error(_ code: STUNErrorCode, to message: STUNMessage, source: STUNAddress, endpoint: STUNEndpoint,
                       budget: Int, into out: inout ByteBuffer) -> Action {
        writeError(code, header: message.header, fingerprint: message.fingerprintOffset != nil, budget: budget, into: &out)
        return .respond(to: source, from: endpoint, outcome: .error(code))
    }

    private func writeError(_ code: STUNErrorCode, header: STUNHeader, fingerprint: Bool, budget: Int,
                            into out: inout ByteBuffer) {
        let w = STUNMessageWriter(responseTo: header, messageClass: .errorResponse, into: &out)
        let reason = code.reason
        let full = 20 + 8 + ((reason.utf8.count + 3) & ~3) + (fingerprint ? 8 : 0)
        w.appendErrorCode(code, reason: full <= budget ? reason : "", into: &out)
        if fingerprint { w.appendFingerprint(into: &out) }
    }

    /// RFC 8489 §6.3: garbage is dropped; a request whose header parsed but whose attributes did not gets
    /// 400 when the decode error says so; indications and responses never get an answer.
    private func answerDecodeError(_ error: STUNDecodeError, bytes: ByteBuffer, source: STUNAddress,
                                   endpoint: STUNEndpoint, into out: inout ByteBuffer) -> Action {
        switch error.answer {
        case .drop:
            return .drop(.malformed)
        case .badRequest:
            // The header is sound (the decoder got past it), so type and transaction ID are readable.
            let base = bytes.readerIndex
            let header = STUNHeader(
                type: STUNMessageType(rawValue: bytes.getInteger(at: base, as: UInt16.self)!),
                cookie: bytes.getInteger(at: base + 4, as: UInt32.self)!,
                transactionID: STUNTransactionID(high: bytes.getInteger(at: base + 8, as: UInt64.self)!,
                                                 low: bytes.getInteger(at: base + 16, as: UInt32.self)!))
            guard header.type.messageClass == .request else { return .drop(.malformedNonRequest) }
            guard header.hasMagicCookie || header.type.method == .binding else { return .drop(.classicNonBinding) }
            writeError(.badRequest, header: header, fingerprint: false,
                       budget: bytes.readableBytes + configuration.amplificationAllowance, into: &out)
            return .respond(to: source, from: endpoint, outcome: .error(.badRequest))
        }
    }
}

/// Up to eight unknown attribute types, inline (no allocation); more are not listed (they would only
/// make the 420 a better amplifier).
struct UnknownList {
    private var storage: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
    private(set) var count = 0

    mutating func append(_ t: STUNAttributeType) {
        guard count < 8 else { return }
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: t.rawValue, toByteOffset: count * 2, as: UInt16.self) }
        count += 1
    }

    var types: [STUNAttributeType] {
        withUnsafeBytes(of: storage) { raw in
            (0..<count).map { STUNAttributeType(rawValue: raw.load(fromByteOffset: $0 * 2, as: UInt16.self)) }
        }
    }
}
