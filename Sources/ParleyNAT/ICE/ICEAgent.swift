import NIOCore
import ParleyWire

/// Short-term credentials of one side of a call's connectivity checks (RFC 8445 §5.3), exchanged in the
/// signed offer and answer.
public struct ICECredentials: Sendable, Hashable {
    /// Username fragment (≥ 4 characters of ICE-chars).
    public let ufrag: String
    /// Password (≥ 22 characters; 128 bits of randomness here).
    public let password: String

    public init(ufrag: String, password: String) {
        self.ufrag = ufrag
        self.password = password
    }

    /// Fresh random credentials: 8 and 24 characters of [A-Za-z0-9+/].
    public static func random() -> ICECredentials {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var generator = SystemRandomNumberGenerator()
        func text(_ count: Int) -> String { String((0..<count).map { _ in alphabet[Int(generator.next() % 64)] }) }
        return ICECredentials(ufrag: text(8), password: text(24))
    }

    /// Extension field type carrying `ufrag (length-prefixed) || password (length-prefixed)`.
    public static let fieldType: UInt8 = 0x12

    /// The field value.
    public var encoded: [UInt8] {
        let u = Array(ufrag.utf8)
        let p = Array(password.utf8)
        return [UInt8(u.count)] + u + [UInt8(p.count)] + p
    }

    /// Parses a field value.
    public init?(decoding value: [UInt8]) {
        guard let ul = value.first.map(Int.init), value.count >= 1 + ul + 1 else { return nil }
        let pl = Int(value[1 + ul])
        guard value.count == 2 + ul + pl, (4...256).contains(ul), (22...256).contains(pl),
            let u = String(validating: value[1..<(1 + ul)], as: UTF8.self),
            let p = String(validating: value[(2 + ul)...], as: UTF8.self)
        else { return nil }
        self.init(ufrag: u, password: p)
    }
}

/// Connectivity checks for one call, sans I/O (RFC 8445, one component, docs/PROTOCOL.md §6).
///
/// Feed it local candidates (with the id of the transport each sends from), remote candidates as they
/// trickle in, received STUN datagrams and the time (µs, monotonic); perform the actions it returns.
/// Choices (PROTOCOL §6.2): every pair starts waiting (no freezing: one component, few pairs); checks are
/// paced every ``Configuration/pacing``; the controlling agent nominates aggressively (USE-CANDIDATE on every
/// check), so the first pair that works carries media at once, and a better pair that works later takes
/// over (the media layer just switches); the selected pair's consent is refreshed every
/// ``Configuration/consentInterval`` and lost after ``Configuration/consentTimeout`` without an answer,
/// which restarts checks on every pair (a dead path or an address change recovers without a new call).
public struct ICEAgent: Sendable {
    public enum Role: Sendable, Hashable { case controlling, controlled }

    public struct Configuration: Sendable, Hashable {
        /// Between two new checks (RFC 8445's Ta), µs.
        public var pacing: UInt64 = 20_000
        /// First retransmission timeout, doubling, µs.
        public var rto: UInt64 = 100_000
        /// Sends per check before the pair fails (RFC 8489's Rc).
        public var maxSends = 7
        /// Consent and keepalive checks on the selected pair, µs.
        public var consentInterval: UInt64 = 500_000
        /// Consent is lost after this long without a successful response, µs (RFC 7675 uses 30 s; calls
        /// need to notice a dead path within a second or two).
        public var consentTimeout: UInt64 = 1_500_000
        public init() {}
    }

    public enum Action: Sendable, Hashable {
        /// Send `bytes` from local transport `base` to `to`.
        case send([UInt8], base: Int, to: SocketAddress)
        /// Media should now use this pair.
        case selected(ICEPair)
        /// The selected pair lost consent; checks restarted.
        case consentLost(ICEPair)
        /// A new remote candidate learned from a check (peer-reflexive).
        case learned(ICECandidate)
    }

    enum PairState: Sendable, Hashable { case waiting, inProgress, succeeded, failed }

    struct PairEntry: Sendable {
        var pair: ICEPair
        var state: PairState = .waiting
        var nominated = false
        var transaction: STUNTransactionID?
        var sends = 0
        var nextSend: UInt64 = 0
        var lastSuccess: UInt64?
    }

    public private(set) var role: Role
    public let configuration: Configuration
    public let local: ICECredentials
    public private(set) var remote: ICECredentials?
    let tieBreaker: UInt64
    var locals: [ICECandidate] = []
    var remotes: [ICECandidate] = []
    var pairs: [PairEntry] = []
    var triggered: [Int] = []
    var nextCheck: UInt64 = 0
    var selectedIndex: Int?
    var nextConsent: UInt64 = 0

    public init(role: Role, local: ICECredentials, remote: ICECredentials? = nil, tieBreaker: UInt64 = .random(in: 0...UInt64.max),
                configuration: Configuration = Configuration())
    {
        self.role = role
        self.local = local
        self.remote = remote
        self.tieBreaker = tieBreaker
        self.configuration = configuration
    }

    /// The pair media uses, if any.
    public var selected: ICEPair? { selectedIndex.map { pairs[$0].pair } }

    /// Every pair and whether it works (tests, stats).
    public var pairStates: [(ICEPair, succeeded: Bool, failed: Bool)] {
        pairs.map { ($0.pair, $0.state == .succeeded, $0.state == .failed) }
    }

    /// This side's NAT allocates ports sequentially (the gatherer predicted ports for it): every new
    /// destination takes the next port, including the ones the peer was told to expect. Then checks from
    /// the socket (base 0) go to the peer's predicted candidates first, in order, and every other check
    /// from the socket waits — until the peer's candidates are complete (``remoteCandidatesComplete``) and
    /// each predicted pair was sent once. Both sides doing this make their k-th new mappings meet
    /// (docs/PROTOCOL.md §6.2). Checks through the relay never wait.
    public var sequentialNAT = false
    /// The peer's candidates are all known (its offer or answer arrived).
    public var remoteCandidatesComplete = false

    func isHeld(_ i: Int) -> Bool {
        guard sequentialNAT, pairs[i].pair.local.base == 0, pairs[i].pair.remote.type != .predicted else { return false }
        guard remoteCandidatesComplete else { return true }
        return pairs.contains { $0.pair.local.base == 0 && $0.pair.remote.type == .predicted && $0.state == .waiting }
    }

    /// When ``tick(now:)`` next has work.
    public var nextDeadline: UInt64? {
        var deadlines = pairs.filter { $0.state == .inProgress }.map(\.nextSend)
        if !triggered.isEmpty || pairs.contains(where: { $0.state == .waiting }) { deadlines.append(nextCheck) }
        if selectedIndex != nil { deadlines.append(nextConsent) }
        return deadlines.min()
    }

    // MARK: Candidates

    /// A local candidate. Only hosts and relays are bases that checks are sent from; server-reflexive and
    /// predicted ones are only advertised (their checks go out of the host base, RFC 8445 §6.1.2.4).
    public mutating func addLocal(_ candidate: ICECandidate) {
        guard !locals.contains(candidate) else { return }
        locals.append(candidate)
        guard candidate.type == .host || candidate.type == .relayed else { return }
        for remote in remotes { addPair(candidate, remote) }
    }

    /// A local candidate was replaced by another on the same base (a TURN allocation made again under a
    /// new relayed address): its pairs now stand for the new one and are checked again, and if the
    /// selected pair was among them the selection starts over, so the peer sees nominated checks from the
    /// new address and selects it too.
    public mutating func replaceLocal(_ old: ICECandidate, with new: ICECandidate, now: UInt64) -> [Action] {
        guard let li = locals.firstIndex(of: old), old.base == new.base else {
            addLocal(new)
            return []
        }
        locals[li] = new
        var touchedSelected = false
        for i in pairs.indices where pairs[i].pair.local == old {
            pairs[i].pair = ICEPair(local: new, remote: pairs[i].pair.remote)
            if i == selectedIndex { touchedSelected = true }
            pairs[i].state = .waiting
            pairs[i].nominated = false
            pairs[i].transaction = nil
            pairs[i].lastSuccess = nil
        }
        sortPairs()
        nextCheck = now
        guard touchedSelected, let s = selectedIndex else { return [] }
        let lost = pairs[s].pair
        selectedIndex = nil
        for i in pairs.indices {
            pairs[i].state = .waiting
            pairs[i].nominated = false
            pairs[i].transaction = nil
        }
        return [.consentLost(lost)]
    }

    /// The best pair that works to `remote` (media may arrive from, and be answered to, any working pair).
    public func workingPair(to remote: SocketAddress) -> ICEPair? {
        pairs.first { $0.pair.remote.address == remote && ($0.state == .succeeded || $0.lastSuccess != nil) }?.pair
    }

    /// A remote candidate (from the offer/answer or trickled). One learned as peer-reflexive earlier takes the
    /// signalled type (a relay is a relay, however it was first seen) and keeps the higher priority.
    public mutating func addRemote(_ candidate: ICECandidate) {
        if let i = remotes.firstIndex(where: { $0.address == candidate.address }) {
            guard remotes[i].type == .peerReflexive, candidate.type != .peerReflexive else { return }
            var updated = candidate
            updated.priority = candidate.priority
            remotes[i] = updated
            for j in pairs.indices where pairs[j].pair.remote.address == candidate.address {
                pairs[j].pair = ICEPair(local: pairs[j].pair.local, remote: updated)
            }
            sortPairs()
            return
        }
        remotes.append(candidate)
        for local in locals where local.type == .host || local.type == .relayed { addPair(local, candidate) }
    }

    /// The peer's credentials, if they came after the candidates.
    public mutating func setRemote(_ credentials: ICECredentials) { remote = credentials }

    mutating func addPair(_ local: ICECandidate, _ remote: ICECandidate) {
        guard Self.sameFamily(local.address, remote.address),
            !pairs.contains(where: { $0.pair.local.base == local.base && $0.pair.remote.address == remote.address })
        else { return }
        pairs.append(PairEntry(pair: ICEPair(local: local, remote: remote)))
        sortPairs()
    }

    mutating func sortPairs() {
        let selectedPair = selected
        let controlling = role == .controlling
        let triggeredPairs = triggered.map { pairs[$0].pair }
        pairs.sort { $0.pair.priority(controlling: controlling) > $1.pair.priority(controlling: controlling) }
        selectedIndex = selectedPair.flatMap { p in pairs.firstIndex { $0.pair == p } }
        triggered = triggeredPairs.compactMap { p in pairs.firstIndex { $0.pair == p } }
    }

    static func sameFamily(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
        switch (a, b) {
        case (.v4, .v4), (.v6, .v6): true
        default: false
        }
    }

    // MARK: Time

    /// Retransmissions, the next paced check, consent.
    public mutating func tick(now: UInt64) -> [Action] {
        var actions: [Action] = []
        guard remote != nil else { return actions }
        for i in pairs.indices where pairs[i].state == .inProgress && pairs[i].nextSend <= now {
            if pairs[i].sends >= configuration.maxSends {
                pairs[i].state = .failed
                pairs[i].transaction = nil
                if selectedIndex == i { actions += loseConsent(now: now) }
                continue
            }
            actions += send(i, now: now)
        }
        if now >= nextCheck {
            var next: Int?
            var held: [Int] = []
            while let t = triggered.first, next == nil {
                triggered.removeFirst()
                if isHeld(t) {
                    held.append(t)
                } else if pairs[t].state != .inProgress {
                    next = t
                }
            }
            triggered = held + triggered
            if next == nil { next = pairs.indices.first { pairs[$0].state == .waiting && !isHeld($0) } }
            if let i = next {
                pairs[i].state = .inProgress
                pairs[i].sends = 0
                pairs[i].transaction = .random()
                actions += send(i, now: now)
                nextCheck = now + configuration.pacing
            }
        }
        if let s = selectedIndex {
            if let last = pairs[s].lastSuccess, now > last + configuration.consentTimeout {
                actions += loseConsent(now: now)
            } else if now >= nextConsent, pairs[s].state != .inProgress {
                pairs[s].state = .inProgress
                pairs[s].sends = 0
                pairs[s].transaction = .random()
                actions += send(s, now: now)
                nextConsent = now + configuration.consentInterval
            }
        }
        return actions
    }

    mutating func loseConsent(now: UInt64) -> [Action] {
        guard let s = selectedIndex else { return [] }
        let lost = pairs[s].pair
        pairs[s].state = .failed
        selectedIndex = nil
        // Start over on every pair: the path that died may come back under another address.
        for i in pairs.indices where i != s {
            pairs[i].state = .waiting
            pairs[i].nominated = false
            pairs[i].transaction = nil
        }
        nextCheck = now
        return [.consentLost(lost)]
    }

    mutating func send(_ i: Int, now: UInt64) -> [Action] {
        guard let remote, let transaction = pairs[i].transaction else { return [] }
        let entry = pairs[i]
        var buffer = ByteBufferAllocator().buffer(capacity: 128)
        let writer = STUNMessageWriter(type: .bindingRequest, transactionID: transaction, into: &buffer)
        writer.append(.username, text: "\(remote.ufrag):\(local.ufrag)", into: &buffer)
        writer.append(
            .priority, uint32: ICECandidate.priority(type: .peerReflexive, localPreference: entry.pair.local.priority >> 8 & 0xFFFF),
            into: &buffer)
        var tie = ByteBufferAllocator().buffer(capacity: 8)
        tie.writeInteger(tieBreaker)
        writer.append(role == .controlling ? .iceControlling : .iceControlled, tie.readableBytesView, into: &buffer)
        if role == .controlling { writer.append(.useCandidate, [UInt8](), into: &buffer) }
        writer.finish(integrity: (STUNIntegrityKey.shortTerm(password: remote.password), false), fingerprint: true, into: &buffer)
        pairs[i].sends += 1
        pairs[i].nextSend = now + configuration.rto << UInt64(min(pairs[i].sends - 1, 4))
        return [.send(Array(buffer.readableBytesView), base: entry.pair.local.base, to: entry.pair.remote.address)]
    }

    // MARK: Datagrams

    /// True when `bytes` is a STUN message this agent should see (the media layer's demultiplexing).
    public static func isSTUN(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 20 && bytes[0] & 0xC0 == 0 && bytes[4...7].elementsEqual([0x21, 0x12, 0xA4, 0x42])
    }

    /// A STUN datagram received on local transport `base` from `source`.
    public mutating func receive(_ bytes: [UInt8], base: Int, from source: SocketAddress, now: UInt64) -> [Action] {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        guard let message = try? STUNDecoder.decode(buffer), message.fingerprintOffset != nil else { return [] }
        switch message.type {
        case .bindingRequest: return receiveRequest(message, base: base, from: source, now: now)
        case .bindingSuccess, .bindingError: return receiveResponse(message, from: source, now: now)
        default: return []
        }
    }

    mutating func receiveRequest(_ message: STUNMessage, base: Int, from source: SocketAddress, now: UInt64) -> [Action] {
        guard let user = message.value(of: .username).flatMap({ $0.getString(at: $0.readerIndex, length: $0.readableBytes) }),
            user.hasPrefix(local.ufrag + ":"),
            STUNIntegrity.verify(message, key: .shortTerm(password: local.password)) == .valid
        else { return [] }
        // Role conflict (RFC 8445 §7.3.1.1).
        let theirControlling = message.value(of: .iceControlling).flatMap { $0.getInteger(at: $0.readerIndex, as: UInt64.self) }
        let theirControlled = message.value(of: .iceControlled).flatMap { $0.getInteger(at: $0.readerIndex, as: UInt64.self) }
        if role == .controlling, let theirs = theirControlling {
            if tieBreaker >= theirs { return [respondConflict(message, base: base, to: source)] }
            role = .controlled
            sortPairs()
        } else if role == .controlled, let theirs = theirControlled {
            if tieBreaker >= theirs {
                role = .controlling
                sortPairs()
            } else {
                return [respondConflict(message, base: base, to: source)]
            }
        }
        var actions: [Action] = [respondSuccess(message, base: base, to: source)]
        // A source we did not know: a peer-reflexive candidate (RFC 8445 §7.3.1.3).
        var remote = remotes.first { $0.address == source }
        if remote == nil {
            let priority = message.value(of: .priority).flatMap { $0.getInteger(at: $0.readerIndex, as: UInt32.self) }
            let learned = ICECandidate(type: .peerReflexive, address: source, priority: priority ?? 0)
            addRemote(learned)
            remote = learned
            actions.append(.learned(learned))
        }
        guard let localBase = locals.first(where: { $0.base == base && ($0.type == .host || $0.type == .relayed) }),
            let remote
        else { return actions }
        if !pairs.contains(where: { $0.pair.local.base == base && $0.pair.remote.address == source }) {
            addPair(localBase, remote)
        }
        guard let i = pairs.firstIndex(where: { $0.pair.local.base == base && $0.pair.remote.address == source }) else {
            return actions
        }
        if message.contains(.useCandidate), role == .controlled { pairs[i].nominated = true }
        switch pairs[i].state {
        case .succeeded:
            pairs[i].lastSuccess = max(pairs[i].lastSuccess ?? 0, now)
            actions += considerSelecting(i)
        case .waiting, .failed:
            // Triggered check (RFC 8445 §7.3.1.4): answer the peer's check with one of ours at once.
            pairs[i].state = .waiting
            if !triggered.contains(i) { triggered.insert(i, at: 0) }
            nextCheck = min(nextCheck, now)
        case .inProgress:
            break
        }
        return actions
    }

    mutating func receiveResponse(_ message: STUNMessage, from source: SocketAddress, now: UInt64) -> [Action] {
        guard let remote, let i = pairs.firstIndex(where: { $0.transaction == message.transactionID }),
            STUNIntegrity.verify(message, key: .shortTerm(password: remote.password)) == .valid
        else { return [] }
        pairs[i].transaction = nil
        if message.type == .bindingError {
            if message.errorCode?.code == 487 {
                role = role == .controlling ? .controlled : .controlling
                sortPairs()
                if let j = pairs.firstIndex(where: { $0.pair == pairs[i].pair }) {
                    pairs[j].state = .waiting
                    triggered.insert(j, at: 0)
                }
                return []
            }
            pairs[i].state = .failed
            return []
        }
        // Non-symmetric answer: the pair does not work as such (RFC 8445 §7.2.5.2.1).
        guard source == pairs[i].pair.remote.address else {
            pairs[i].state = .failed
            return []
        }
        pairs[i].state = .succeeded
        pairs[i].lastSuccess = now
        if role == .controlling { pairs[i].nominated = true }
        return considerSelecting(i)
    }

    /// Selects pair `i` if it is nominated, works, and beats the current selection.
    mutating func considerSelecting(_ i: Int) -> [Action] {
        guard pairs[i].nominated, pairs[i].state == .succeeded || pairs[i].lastSuccess != nil else { return [] }
        if let s = selectedIndex {
            let controlling = role == .controlling
            guard s != i, pairs[i].pair.priority(controlling: controlling) > pairs[s].pair.priority(controlling: controlling)
            else { return [] }
        }
        selectedIndex = i
        return [.selected(pairs[i].pair)]
    }

    func respondSuccess(_ request: STUNMessage, base: Int, to source: SocketAddress) -> Action {
        var buffer = ByteBufferAllocator().buffer(capacity: 80)
        let writer = STUNMessageWriter(responseTo: request.header, messageClass: .successResponse, into: &buffer)
        if let address = STUNAddress(source) { writer.append(.xorMappedAddress, address: address, xor: true, into: &buffer) }
        writer.finish(integrity: (STUNIntegrityKey.shortTerm(password: local.password), false), fingerprint: true, into: &buffer)
        return .send(Array(buffer.readableBytesView), base: base, to: source)
    }

    func respondConflict(_ request: STUNMessage, base: Int, to source: SocketAddress) -> Action {
        var buffer = ByteBufferAllocator().buffer(capacity: 80)
        let writer = STUNMessageWriter(responseTo: request.header, messageClass: .errorResponse, into: &buffer)
        writer.appendErrorCode(STUNErrorCode(rawValue: 487), reason: "Role Conflict", into: &buffer)
        writer.finish(integrity: (STUNIntegrityKey.shortTerm(password: local.password), false), fingerprint: true, into: &buffer)
        return .send(Array(buffer.readableBytesView), base: base, to: source)
    }
}
