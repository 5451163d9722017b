import NIOCore
import ParleyWire

extension TURNClient {
    // MARK: Building messages

    /// Starts a request transaction for `purpose` (with credentials once a challenge has supplied them)
    /// and returns its first send. Its ID is left in ``lastBegun``.
    mutating func begin(_ purpose: TURNClientTransaction.Purpose, now: UInt64, staleNonces: Int = 0,
                        freshNonce: Bool = false) -> Action {
        let id = STUNTransactionID.random()
        var buf = ByteBuffer()
        let w = STUNMessageWriter(type: STUNMessageType(method: purpose.method, messageClass: .request),
                                  transactionID: id, into: &buf)
        switch purpose {
        case .allocate:
            // REQUESTED-TRANSPORT: UDP (17) and three RFFU bytes (RFC 8656 §18.7).
            w.append(.requestedTransport, [17, 0, 0, 0], into: &buf)
            w.append(.lifetime, uint32: settings.lifetime, into: &buf)
            if settings.addressFamily != .ipv4 {
                w.append(.requestedAddressFamily, [settings.addressFamily.rawValue, 0, 0, 0], into: &buf)
            }
        case .refresh(let lifetime):
            w.append(.lifetime, uint32: lifetime, into: &buf)
        case .createPermission(let peers):
            for peer in peers { w.append(.xorPeerAddress, address: peer, xor: true, into: &buf) }
        case .channelBind(let number, let peer):
            w.append(.channelNumber, [UInt8(number >> 8), UInt8(number & 0xFF), 0, 0], into: &buf)
            w.append(.xorPeerAddress, address: peer, xor: true, into: &buf)
        }
        let key = credentials.appendCredentials(w, into: &buf)
        w.appendFingerprint(into: &buf)
        let t = TURNClientTransaction(purpose: purpose, bytes: Array(buf.readableBytesView), key: key, now: now,
                                      retransmission: settings.retransmission, staleNonces: staleNonces,
                                      freshNonce: freshNonce)
        transactions[id] = t
        lastBegun = id
        return .send(t.bytes)
    }

    /// A Send indication (RFC 8656 §11.1). Indications carry no credentials and get no answer.
    func sendIndication(_ payload: [UInt8], to peer: STUNAddress) -> [UInt8] {
        var buf = ByteBuffer()
        buf.reserveCapacity(20 + 4 + peer.encodedLength + 4 + payload.count + 3)
        let w = STUNMessageWriter(type: STUNMessageType(method: .send, messageClass: .indication),
                                  transactionID: .random(), into: &buf)
        w.append(.xorPeerAddress, address: peer, xor: true, into: &buf)
        w.append(.data, payload, into: &buf)
        return Array(buf.readableBytesView)
    }

    /// A ChannelData message (RFC 8656 §12.4), padded on streams.
    func channelData(_ number: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let pad = settings.transport == .stream ? (4 - payload.count & 3) & 3 : 0
        var out = [UInt8]()
        out.reserveCapacity(4 + payload.count + pad)
        out += [UInt8(number >> 8), UInt8(number & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF)]
        out += payload
        out += repeatElement(0, count: pad)
        return out
    }

    // MARK: Responses

    /// A success or error response: matched to its transaction by ID (unknown IDs are late duplicates
    /// or forgeries, and ignored), checked, then acted on.
    mutating func response(_ m: STUNMessage, now: UInt64) -> [Action] {
        let id = m.transactionID
        guard let t = transactions[id], m.type.method == t.purpose.method else { return [] }
        if m.type.messageClass == .successResponse {
            // RFC 8489 §9.2.5: a success must carry a MAC that verifies with the request's key.
            guard let key = t.key, STUNIntegrity.verify(m, key: key) == .valid else { return [] }
            transactions[id] = nil
            return succeeded(t, id: id, m, now: now)
        }
        let (code, reason) = m.errorCode ?? (0, "")
        switch code {
        case 401:
            // Unprotected by nature. First leg of the long-term mechanism, or a nonce the server forgot
            // (it restarted): learn and retry once. With a nonce fresh from a challenge: wrong credentials.
            transactions[id] = nil
            guard t.key == nil || !t.freshNonce else {
                return failed(t, id: id, .unauthenticated(t.purpose.method), now: now)
            }
            return retry(t, id: id, challenge: m, staleNonces: t.staleNonces, now: now)
        case 438:
            transactions[id] = nil
            guard t.staleNonces < Self.maxStaleNonceRetries else {
                return failed(t, id: id, .staleNonce(t.purpose.method), now: now)
            }
            return retry(t, id: id, challenge: m, staleNonces: t.staleNonces + 1, now: now)
        default:
            // Errors after authentication are protected with our key; an unprotected one can only be an
            // answer given before the credentials were checked.
            switch (t.key.map { STUNIntegrity.verify(m, key: $0) } ?? .absent) {
            case .valid: break
            case .invalid: return []
            case .absent: guard code == 400 || t.key == nil else { return [] }
            }
            transactions[id] = nil
            return failed(t, id: id, .errorResponse(t.purpose.method, code: code, reason: reason), now: now)
        }
    }

    /// Learns from a 401/438 and sends the same request again as a new transaction, which takes over the
    /// old one's place in the allocation, permission or channel that waits on it.
    private mutating func retry(_ t: TURNClientTransaction, id: STUNTransactionID, challenge: STUNMessage,
                                staleNonces: Int, now: UInt64) -> [Action] {
        if let error = credentials.learn(from: challenge) { return failed(t, id: id, error, now: now) }
        let send = begin(t.purpose, now: now, staleNonces: staleNonces, freshNonce: true)
        let new = lastBegun
        switch t.purpose {
        case .allocate:
            break
        case .refresh:
            reassignRefresh(from: id, to: new)
        case .createPermission(let peers):
            for ip in peers where permissions[ip]?.inFlight == id { permissions[ip]?.inFlight = new }
        case .channelBind(let number, _):
            if channels[number]?.inFlight == id { channels[number]?.inFlight = new }
        }
        return [send]
    }

    /// A verified success response.
    private mutating func succeeded(_ t: TURNClientTransaction, id: STUNTransactionID, _ m: STUNMessage,
                                    now: UInt64) -> [Action] {
        switch t.purpose {
        case .allocate:
            guard let relayed = m.address(of: .xorRelayedAddress, xor: true) else {
                return fail(.malformedResponse(.allocate, "no XOR-RELAYED-ADDRESS"))
            }
            let lifetime = Self.lifetime(m) ?? settings.lifetime
            return becomeAllocated(relayed: relayed, mapped: m.address(of: .xorMappedAddress, xor: true),
                                   lifetime: lifetime, since: t.started, now: now)
        case .refresh(let requested):
            if requested == 0 { return closeEnded() }
            guard isRefresh(id) else { return [] }
            return refreshEnded(lifetime: Self.lifetime(m) ?? requested, since: t.started, now: now)
        case .createPermission(let peers):
            var out: [Action] = []
            for ip in peers {
                guard var p = permissions[ip], p.inFlight == id else { continue }
                p.inFlight = nil
                p.installed = true
                p.refreshAt = t.started + settings.permissionRefreshInterval
                if p.announce {
                    p.announce = false
                    out.append(.permissionCreated(ip))
                }
                permissions[ip] = p
            }
            return out
        case .channelBind(let number, let peer):
            guard var c = channels[number], c.inFlight == id else { return [] }
            c.inFlight = nil
            c.refreshAt = t.started + settings.channelRefreshInterval
            let first = !c.bound
            c.bound = true
            channels[number] = c
            // The binding installed the peer's permission for 300 s; CreatePermission keeps it from here.
            let ip = peer.withPort(0)
            if var p = permissions[ip], !p.installed, p.inFlight == nil {
                p.installed = true
                p.refreshAt = t.started + settings.permissionRefreshInterval
                if p.announce {
                    p.announce = false
                    permissions[ip] = p
                    return [.channelBound(peer, channel: number), .permissionCreated(ip)]
                }
                permissions[ip] = p
            }
            return first ? [.channelBound(peer, channel: number)] : []
        }
    }

    /// A request that got a final error (or a failed challenge). `id` is already out of ``transactions``.
    private mutating func failed(_ t: TURNClientTransaction, id: STUNTransactionID, _ error: TURNClientError,
                                 now: UInt64) -> [Action] {
        switch t.purpose {
        case .allocate:
            return isAllocating ? fail(error) : []
        case .refresh(let requested):
            if requested == 0 { return closeEnded() }
            // 437 and friends: the allocation is gone (or no longer ours).
            return isRefresh(id) ? fail(error) : []
        case .createPermission(let peers):
            var out: [Action] = []
            for ip in peers where permissions[ip]?.inFlight == id {
                permissions[ip] = nil
                out.append(.permissionFailed(ip, error))
            }
            return out
        case .channelBind(let number, let peer):
            guard channels[number]?.inFlight == id else { return [] }
            channels[number] = nil
            channelByPeer[peer] = nil
            // A permission that only this channel stood for goes too.
            let ip = peer.withPort(0)
            if let p = permissions[ip], !p.installed, p.inFlight == nil, p.refreshAt == .max { permissions[ip] = nil }
            return [.channelFailed(peer, error)]
        }
    }

    /// A request with no answer after every retransmission. `id` is already out of ``transactions``.
    mutating func timedOut(_ t: TURNClientTransaction, id: STUNTransactionID, now: UInt64) -> [Action] {
        switch t.purpose {
        case .refresh(let requested) where requested > 0:
            // Keep trying while the allocation lasts; ``maintain(now:)`` reports it expired otherwise.
            return isRefresh(id) ? refreshEnded(lifetime: nil, since: t.started, now: now) : []
        case .allocate, .refresh, .createPermission, .channelBind:
            return failed(t, id: id, .timeout(t.purpose.method), now: now)
        }
    }

    /// LIFETIME's value, if present and well-formed.
    static func lifetime(_ m: STUNMessage) -> UInt32? {
        guard let v = m.value(of: .lifetime), v.readableBytes == 4 else { return nil }
        return v.getInteger(at: v.readerIndex, as: UInt32.self)
    }
}
