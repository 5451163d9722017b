import NIOCore
import ParleyNAT
import ParleyWire

/// Where a client finds its STUN and TURN servers, and whether it may reveal its addresses.
public struct TraversalSettings: Sendable {
    /// A STUN server (ours answers RFC 5780, which makes port prediction possible).
    public var stun: SocketAddress?
    /// TURN servers with long-term credentials (a static user or a TURN REST `expiry:user` name); when
    /// several are given, the one that allocates fastest is kept.
    public var turn: [TURNServer] = []
    /// Privacy: only relayed candidates are offered and checked; no address of this machine reaches the peer.
    public var relayOnly = false
    /// How long gathering may take before the call goes ahead with what it has, µs.
    public var gatherTimeout: UInt64 = 2_000_000
    /// Without a UDP allocation after this long, TURN is tried over TCP too (UDP-hostile networks), µs; and
    /// over TLS (to ``TURNServer/tlsPort``) after twice this long (networks that only pass TLS).
    public var streamFallbackDelay: UInt64 = 600_000
    /// How to check TURN servers' TLS certificates (nil: the system's roots).
    public var turnTLS: ClientTLS?
    /// Where to keep what RFC 5780 behaviour discovery found, per network (the host addresses) and STUN
    /// server, for a day: later calls skip the probes (PROTOCOL §6.1). Nil: discover every time.
    public var natCachePath: String?
    /// The cached behaviours for this network by public IP, filled in by the engine from ``natCachePath``.
    var cachedMappings: [String: String] = [:]

    public struct TURNServer: Sendable, Hashable {
        public var address: SocketAddress
        public var username: String
        public var password: String
        /// The server's TURN-over-TLS port (5349 by convention), for the last fallback; nil: no TLS.
        public var tlsPort: Int?
        public init(address: SocketAddress, username: String, password: String, tlsPort: Int? = nil) {
            self.address = address
            self.username = username
            self.password = password
            self.tlsPort = tlsPort
        }
    }

    public init(stun: SocketAddress? = nil, turn: [TURNServer] = [], relayOnly: Bool = false) {
        self.stun = stun
        self.turn = turn
        self.relayOnly = relayOnly
    }
}

/// The NAT traversal of one call's media socket, confined to the socket's event loop (docs/PROTOCOL.md §6):
/// gathering (host, server-reflexive, predicted, relayed), one ICE agent per peer device, the TURN
/// allocation the relayed base sends through, and the routing of media onto the selected pair.
/// Base 0 is the UDP socket itself; base 1 is the TURN allocation reached through it.
struct MediaTraversal {
    enum Output {
        /// Write to the UDP socket.
        case send([UInt8], to: SocketAddress)
        /// Open a TCP (or TLS) connection to a TURN server (the fallback when UDP gets no answer); `index`
        /// names it.
        case connectStream(index: Int, to: SocketAddress, tls: Bool)
        /// Write to the TCP connection `index`.
        case sendStream([UInt8], index: Int)
        /// Close the TCP (or TLS) connection `index`: it stopped carrying anything without closing.
        case closeStream(index: Int)
        /// A datagram for the call (media, hello, reveal), from the peer address it came from.
        case deliver([UInt8], from: SocketAddress)
        /// ICE selected (or switched to) this pair for the peer device with this ufrag.
        case selected(ICEPair, previous: ICEPair?)
        /// The selected pair lost consent.
        case consentLost(ICEPair)
        /// A candidate of ours to advertise.
        case gathered(ICECandidate)
        /// A line for the verbose log.
        case note(String)
        /// Behaviour discovery found this mapping behaviour behind this public IP (for the cache).
        case behaviour(String, publicIP: String)
    }

    let settings: TraversalSettings
    /// Our ICE ufrag; the password is the call's (the caller's, from the offer).
    let ufrag: String
    var password: String?
    var role: ICEAgent.Role = .controlling
    let tieBreaker = UInt64.random(in: 0...UInt64.max)

    var host: [ICECandidate] = []
    var advertised: [ICECandidate] = []
    var gatherer: ICEGatherer?
    var turns: [(server: SocketAddress, client: TURNClient, sentAt: UInt64, stream: Bool)] = []
    /// When the TCP fallback starts if no UDP allocation succeeded, µs (nil once started or not wanted).
    var streamFallbackAt: UInt64?
    /// When the TLS fallback starts if nothing allocated by then, µs.
    var tlsFallbackAt: UInt64?
    var streamsOverTLS: Set<Int> = []
    /// Stream connections we closed ourselves because they carried nothing (``streamDead(_:now:)``).
    var deadStreams: Set<Int> = []
    /// The allocation in use (index into `turns`): the first to succeed.
    var chosen: Int?
    /// The index of `turns` whose client is replacing a lost allocation (see ``reallocate(now:)``).
    var reallocating: Int?
    /// When the last replacement started, µs: at most one per ``reallocationInterval``.
    var lastReallocation: UInt64?
    static let reallocationInterval: UInt64 = 5_000_000
    /// When the chosen UDP allocation's server last sent us anything (answers, consent checks, media), µs.
    var heardFromRelay: UInt64 = 0
    /// Silence from the relay after which a call riding on it re-allocates without waiting for ICE's
    /// consent timeout: consent checks (every 500 ms) and audio (every 20 ms, or 400 ms in DTX) both come
    /// through it, so 800 ms of nothing means the path is gone.
    static let relaySilenceLimit: UInt64 = 800_000
    /// A Refresh asking the server whether our allocation is still ours is in flight since then, µs.
    var probingSince: UInt64?
    /// How long that probe may go unanswered before we re-allocate anyway, µs.
    static let probeTimeout: UInt64 = 400_000
    var relay: ICECandidate?
    var permitted: Set<String> = []
    var gatherDeadline: UInt64 = 0
    var agents: [String: ICEAgent] = [:]
    var remoteCandidates: [String: [ICECandidate]] = [:]
    var started = false
    /// Our NAT allocates ports sequentially (from the gatherer): checks are ordered for prediction.
    var sequentialNAT = false
    /// The base each peer address was last heard on: replies to an address with no working pair go back the
    /// way its packets came (through the relay, or from the socket), which is the way its NAT lets them in.
    var arrivedOn: [SocketAddress: Int] = [:]

    init(settings: TraversalSettings, hostAddresses: [SocketAddress]) {
        self.settings = settings
        self.ufrag = ICECredentials.random().ufrag
        for (i, address) in hostAddresses.enumerated() {
            host.append(
                ICECandidate(
                    type: .host, address: address,
                    priority: ICECandidate.priority(type: .host, localPreference: UInt32(65_535 - i)), foundation: 1, base: 0))
        }
        if !settings.relayOnly { advertised = host }
    }

    /// True once every gathering step answered or gave up.
    func gatheringDone(now: UInt64) -> Bool {
        if now >= gatherDeadline { return true }
        let stunDone = gatherer?.finished ?? true
        let turnDone = settings.turn.isEmpty || chosen != nil
            || (streamFallbackAt == nil && tlsFallbackAt == nil && turns.allSatisfy { $0.client.isFinished })
        return stunDone && turnDone
    }

    mutating func start(now: UInt64) -> [Output] {
        gatherDeadline = now + settings.gatherTimeout
        var out: [Output] = advertised.map { .gathered($0) }
        if let stun = settings.stun, !settings.relayOnly {
            var configuration = ICEGatherer.Configuration()
            configuration.cached = settings.cachedMappings
            var g = ICEGatherer(server: stun, configuration: configuration)
            out += translate(g.start(now: now))
            gatherer = g
        }
        for server in settings.turn {
            guard let stunAddress = STUNAddress(server.address) else { continue }
            var client = TURNClient(
                configuration: .init(server: stunAddress, username: server.username, password: server.password))
            let actions = client.start(now: now)
            turns.append((server.address, client, now, false))
            out += actions.compactMap { if case .send(let bytes) = $0 { .send(bytes, to: server.address) } else { nil } }
        }
        if !settings.turn.isEmpty { streamFallbackAt = now + settings.streamFallbackDelay }
        if settings.turn.contains(where: { $0.tlsPort != nil }) { tlsFallbackAt = now + 2 * settings.streamFallbackDelay }
        return out
    }

    mutating func translate(_ actions: [ICEGatherer.Action]) -> [Output] {
        var out: [Output] = []
        for action in actions {
            switch action {
            case .send(let bytes, let to): out.append(.send(bytes, to: to))
            case .candidate(let c):
                guard !settings.relayOnly, !advertised.contains(where: { $0.address == c.address }) else { continue }
                advertised.append(c)
                out.append(.gathered(c))
            case .finished(let mapping):
                sequentialNAT = mapping.hasPrefix("symmetric, sequential")
                for key in agents.keys { agents[key]!.sequentialNAT = sequentialNAT }
                out.append(.note("STUN: mapping \(mapping)"))
                if !mapping.hasSuffix("(cached)"), !mapping.hasPrefix("unknown"), let ip = gatherer?.mappedIP {
                    out.append(.behaviour(mapping, publicIP: ip))
                }
            }
        }
        return out
    }

    // MARK: Agents

    /// Sets up checks with a peer device: its ufrag, the call's password, its candidates so far.
    mutating func peer(
        ufrag remoteUfrag: String, password: String, role: ICEAgent.Role, candidates: [ICECandidate], complete: Bool = false,
        now: UInt64
    ) -> [Output] {
        self.password = password
        self.role = role
        if agents[remoteUfrag] == nil {
            var agent = ICEAgent(
                role: role, local: ICECredentials(ufrag: ufrag, password: password),
                remote: ICECredentials(ufrag: remoteUfrag, password: password), tieBreaker: tieBreaker)
            if !settings.relayOnly { for h in host { agent.addLocal(h) } }
            if let relay { agent.addLocal(relay) }
            agent.sequentialNAT = sequentialNAT
            agents[remoteUfrag] = agent
        }
        for c in candidates { agents[remoteUfrag]!.addRemote(c) }
        if complete { agents[remoteUfrag]!.remoteCandidatesComplete = true }
        let pairs = agents[remoteUfrag]!.pairStates.count
        return [.note("ICE \(remoteUfrag): +\(candidates.count) candidates, \(pairs) pairs")]
            + runAgent(remoteUfrag, now: now) { _ in [] }
    }

    /// The pair media to `remote` should use, if ICE selected one.
    func pair(to remote: SocketAddress) -> ICEPair? {
        agents.values.compactMap(\.selected).first { $0.remote.address == remote }
    }

    /// Every selected pair (one per peer device with a working path).
    var selectedPairs: [ICEPair] { agents.values.compactMap(\.selected) }

    mutating func runAgent(_ key: String, now: UInt64, _ body: (inout ICEAgent) -> [ICEAgent.Action]) -> [Output] {
        guard var agent = agents[key] else { return [] }
        let before = agent.selected
        var actions = body(&agent)
        actions += agent.tick(now: now)
        agents[key] = agent
        var out: [Output] = []
        for action in actions {
            switch action {
            case .send(let bytes, let base, let to): out += sendOnBase(bytes, base: base, to: to, now: now)
            case .selected(let pair):
                out.append(.selected(pair, previous: before))
                if pair.local.base == 1, let peer = STUNAddress(pair.remote.address), let c = chosen {
                    out += turnOutputs(turns[c].client.bindChannel(peer, now: now), now: now)
                }
            case .consentLost(let pair):
                out.append(.consentLost(pair))
                if pair.local.base == 1 { out += probeRelay(now: now) }
            case .learned(let c): out.append(.note("ICE: learned \(c)"))
            }
        }
        return out
    }

    mutating func sendOnBase(_ bytes: [UInt8], base: Int, to: SocketAddress, now: UInt64) -> [Output] {
        guard base == 1 else { return settings.relayOnly ? [] : [.send(bytes, to: to)] }
        guard let c = chosen, let peer = STUNAddress(to) else { return [] }
        var actions: [TURNClient.Action] = []
        let ip = to.ipAddress ?? ""
        if !permitted.contains(ip) {
            permitted.insert(ip)
            actions += turns[c].client.permit(peer, now: now)
        }
        actions += turns[c].client.send(bytes, to: peer, now: now)
        return turnOutputs(actions, now: now)
    }

    /// The relay went quiet or a pair through it lost consent: either our allocation is gone for us (our
    /// NAT moved, see ``reallocate(now:)``; over TCP/TLS, the connection died without closing — a NAT or
    /// firewall on the way forgot it) or the peer's side broke. One Refresh tells which: 437 (or no answer
    /// within ``probeTimeout``) replaces the allocation — over UDP by ``reallocate(now:)``, over a stream by
    /// ``streamDead(_:now:)``; a success leaves the allocation alone (the peer's recovery will bring its new
    /// candidates). Nothing happens while a probe or a re-allocation runs.
    mutating func probeRelay(now: UInt64) -> [Output] {
        guard let c = chosen, probingSince == nil, reallocating == nil else { return [] }
        if turns[c].client.isFinished { return replaceChosen(now: now) }
        let actions = turns[c].client.refreshNow(now: now)
        guard !actions.isEmpty else { return [] }
        probingSince = now
        return [.note("TURN: the relayed path went quiet; asking the server whether the allocation is still ours")]
            + turnOutputs(actions, now: now)
    }

    /// What the probe's Refresh (or any failure of the chosen allocation) says.
    mutating func relayVerdict(_ action: TURNClient.Action, now: UInt64) -> [Output] {
        switch action {
        case .refreshed where probingSince != nil:
            probingSince = nil
            heardFromRelay = now
            return [.note("TURN: the allocation is still ours; the silence is on the peer's side")]
        case .failed(let error):
            // The allocation in use is gone (437 to the probe, an expiry, a failed replacement): replace it.
            if reallocating == chosen { reallocating = nil }
            probingSince = nil
            return [.note("TURN: \(error)")] + replaceChosen(now: now)
        default:
            return []
        }
    }

    /// Replaces the allocation in use. The usual cause is our own NAT: it forgot the mapping (a
    /// router reboot, a mobile carrier's rebinding) and the server now hears us from a port that has no
    /// allocation, so the allocation — tied to the old 5-tuple (RFC 8656 §2.2) — is gone for us. A direct
    /// path, where there is one, recovers by itself; with only the relay (relay-only calls, or peers that
    /// cannot be reached otherwise) the call needs a new allocation: ask the same server for one from the
    /// socket's current mapping, advertise its relayed address as a new candidate (trickled to the peer)
    /// and let ICE pick it. The old allocation is released (a harmless 437 if it is already gone for us).
    /// UDP allocations only: a TCP/TLS allocation dies with its connection (``streamDead(_:now:)``,
    /// ``streamClosed(_:now:)``). At most one per
    /// ``reallocationInterval``, so a peer that vanished does not make us churn allocations.
    mutating func reallocate(now: UInt64) -> [Output] {
        guard let c = chosen, !turns[c].stream, reallocating == nil,
            lastReallocation.map({ now >= $0 + Self.reallocationInterval }) ?? true,
            let server = settings.turn.first(where: { $0.address == turns[c].server }),
            let stunAddress = STUNAddress(server.address)
        else { return [] }
        lastReallocation = now
        var out: [Output] = [.note("TURN: our allocation is gone; asking \(server.address) for a new one")]
        out += turns[c].client.close(now: now).compactMap { if case .send(let b) = $0 { toServer(c, b) } else { nil } }
        var client = TURNClient(configuration: .init(server: stunAddress, username: server.username, password: server.password))
        let actions = client.start(now: now)
        turns[c] = (server.address, client, now, false)
        reallocating = c
        out += actions.compactMap { if case .send(let b) = $0 { toServer(c, b) } else { nil } }
        return out
    }

    /// Replaces the allocation in use, whichever transport carries it.
    mutating func replaceChosen(now: UInt64) -> [Output] {
        guard let c = chosen else { return [] }
        return turns[c].stream ? streamDead(c, now: now) : reallocate(now: now)
    }

    /// The TCP or TLS connection `index` carries nothing any more but has not closed (no answer to the
    /// probe: a NAT or firewall between us and the server dropped its state, or the path is gone). Waiting
    /// for TCP to give up takes minutes; close it ourselves and connect again (``streamClosed(_:now:)``).
    /// Also the way out when the allocation on a still-open connection failed (a 437 to the probe): the
    /// client is finished then, and only a new connection can allocate again.
    /// Said once per connection; while a new one may not be opened yet (``reallocationInterval``) the
    /// next probe tries again, quietly.
    mutating func streamDead(_ index: Int, now: UInt64) -> [Output] {
        guard turns.indices.contains(index), turns[index].stream else { return [] }
        var out: [Output] = []
        if deadStreams.insert(index).inserted {
            if !turns[index].client.isFinished { _ = turns[index].client.close(now: now) }
            out = [.note("TURN: the connection to \(turns[index].server) carries nothing; closing it"), .closeStream(index: index)]
        }
        guard lastReallocation.map({ now >= $0 + Self.reallocationInterval }) ?? true else { return out }
        return out + reconnect(index, now: now)
    }

    /// The TCP or TLS connection `index` to a TURN server closed (reset, the network dropped it). If it
    /// carried the allocation in use, that allocation is gone with it (RFC 8656 §3.1: a stream allocation
    /// lives as long as its connection): open a new connection of the same kind to the same server and
    /// allocate again; the new relayed address goes out as a trickled candidate, as in ``reallocate(now:)``.
    /// A connection that was not in use (a fallback that lost the race) is just forgotten.
    mutating func streamClosed(_ index: Int, now: UInt64) -> [Output] {
        guard turns.indices.contains(index), turns[index].stream, !turns[index].client.isFinished else { return [] }
        // The allocation went with the connection: stop its client (what close would send has nowhere to go).
        _ = turns[index].client.close(now: now)
        return reconnect(index, now: now)
    }

    /// Connection `index` and its allocation are gone: if they were the ones in use (or replacing them),
    /// open a new connection of the same kind to the same server and allocate again, at most once per
    /// ``reallocationInterval``.
    mutating func reconnect(_ index: Int, now: UInt64) -> [Output] {
        guard index == chosen || index == reallocating else { return [] }
        if reallocating == index { reallocating = nil }
        let address = turns[index].server
        guard lastReallocation.map({ now >= $0 + Self.reallocationInterval }) ?? true,
            let server = settings.turn.first(where: { STUNAddress($0.address) == turns[index].client.server })
        else { return [.note("TURN: the connection to \(address) closed")] }
        lastReallocation = now
        let note = Output.note("TURN: the connection to \(address) carrying our allocation closed; connecting again")
        guard let (fresh, out) = openStream(to: address, server, tls: streamsOverTLS.contains(index), now: now) else { return [] }
        reallocating = fresh
        return [note] + out
    }

    /// The replacement allocation answered: its relayed address becomes our relayed candidate.
    mutating func reallocated(_ i: Int, relayed: STUNAddress, mapped: STUNAddress?, now: UInt64) -> [Output] {
        reallocating = nil
        chosen = i
        heardFromRelay = now
        var out: [Output] = [.note("TURN: relayed \(relayed) via \(turns[i].server) (replacing \(relay?.address.description ?? "-"))")]
        let candidate = ICECandidate(type: .relayed, address: relayed.socketAddress(), foundation: 3 + UInt32(i), base: 1)
        let previous = relay
        relay = candidate
        advertised.append(candidate)
        out.append(.gathered(candidate))
        // Permissions belong to an allocation: the new one starts with none but our own relay's.
        permitted = [relayed.socketAddress().ipAddress ?? ""]
        out += turnOutputs(turns[i].client.permit(relayed.withPort(0), now: now), now: now)
        if let mapped, !settings.relayOnly, !advertised.contains(where: { $0.address == mapped.socketAddress() }) {
            let srflx = ICECandidate(type: .serverReflexive, address: mapped.socketAddress(), foundation: 2, base: 0)
            advertised.append(srflx)
            out.append(.gathered(srflx))
        }
        // The relayed base's pairs now stand for the new address and are checked (and nominated) again.
        for key in agents.keys {
            out += runAgent(key, now: now) { agent in
                guard let previous else {
                    agent.addLocal(candidate)
                    return []
                }
                return agent.replaceLocal(previous, with: candidate, now: now)
            }
        }
        return out
    }

    /// A datagram for TURN server `i`, over its transport.
    func toServer(_ i: Int, _ bytes: [UInt8]) -> Output {
        turns[i].stream ? .sendStream(bytes, index: i) : .send(bytes, to: turns[i].server)
    }

    /// UDP got no allocation in time: try every TURN server over TCP as well (networks that block UDP), or,
    /// later, over TLS to its TLS port (networks that pass only TLS).
    mutating func startStreamFallback(tls: Bool, now: UInt64) -> [Output] {
        if tls { tlsFallbackAt = nil } else { streamFallbackAt = nil }
        guard chosen == nil else { return [] }
        let waited = (tls ? 2 : 1) * settings.streamFallbackDelay / 1000
        var out: [Output] = [.note("TURN: no allocation after \(waited) ms; trying \(tls ? "TLS" : "TCP")")]
        for server in settings.turn {
            var address = server.address
            if tls {
                guard let port = server.tlsPort, let withPort = try? SocketAddress(ipAddress: server.address.ipAddress ?? "", port: port)
                else { continue }
                address = withPort
            }
            out += openStream(to: address, server, tls: tls, now: now)?.out ?? []
        }
        return out
    }

    /// A new TCP (or TLS) connection to `address` with a TURN client allocating through it; its index in
    /// `turns`, and what to do (connect, then the Allocate, held until connected).
    mutating func openStream(to address: SocketAddress, _ server: TraversalSettings.TURNServer, tls: Bool,
                             now: UInt64) -> (index: Int, out: [Output])? {
        guard let stunAddress = STUNAddress(server.address) else { return nil }
        var client = TURNClient(
            configuration: .init(server: stunAddress, username: server.username, password: server.password, transport: .stream))
        let actions = client.start(now: now)
        let index = turns.count
        turns.append((address, client, now, true))
        if tls { streamsOverTLS.insert(index) }
        var out: [Output] = [.connectStream(index: index, to: address, tls: tls)]
        out += actions.compactMap { if case .send(let bytes) = $0 { toServer(index, bytes) } else { nil } }
        return (index, out)
    }

    mutating func turnOutputs(_ actions: [TURNClient.Action], now: UInt64) -> [Output] {
        guard let c = chosen else { return [] }
        var out: [Output] = []
        for action in actions {
            switch action {
            case .send(let bytes): out.append(toServer(c, bytes))
            case .data(let payload, let from): out += receive(payload, from: from.socketAddress(), base: 1, now: now)
            case .refreshed, .failed: out += relayVerdict(action, now: now)
            default: break
            }
        }
        return out
    }

    // MARK: Datagrams and time

    /// A datagram on the UDP socket.
    mutating func receive(_ bytes: [UInt8], from source: SocketAddress, now: UInt64) -> [Output] {
        // The STUN server may be the TURN server too (same address): the gatherer's answers first.
        if ICEAgent.isSTUN(bytes), var g = gatherer, !g.finished {
            let out = translate(g.receive(bytes, from: source, now: now))
            gatherer = g
            if !out.isEmpty { return out }
        }
        if let i = turns.firstIndex(where: { $0.server == source && !$0.stream }) {
            if i == chosen { heardFromRelay = now }
            return receiveFromTURN(i, bytes, now: now)
        }
        return receive(bytes, from: source, base: 0, now: now)
    }

    mutating func receiveFromTURN(_ i: Int, _ bytes: [UInt8], now: UInt64) -> [Output] {
        let actions = turns[i].client.receive(bytes, now: now)
        let server = turns[i].server
        var out: [Output] = []
        for action in actions {
            switch action {
            case .allocated(let relayed, let mapped, _) where reallocating == i:
                out += reallocated(i, relayed: relayed, mapped: mapped, now: now)
            case .allocated(let relayed, let mapped, _):
                // The first allocation wins (the lowest RTT among several servers); the others are closed.
                guard chosen == nil else { continue }
                chosen = i
                heardFromRelay = now
                let rtt = (now - turns[i].sentAt) / 1000
                let transport = !turns[i].stream ? "" : streamsOverTLS.contains(i) ? " over TLS" : " over TCP"
                out.append(.note("TURN: relayed \(relayed) via \(server)\(transport) (allocation took \(rtt) ms)"))
                let candidate = ICECandidate(type: .relayed, address: relayed.socketAddress(), foundation: 3 + UInt32(i), base: 1)
                relay = candidate
                advertised.append(candidate)
                out.append(.gathered(candidate))
                // Relay to relay through one server: let any allocation on it reach ours.
                permitted.insert(relayed.socketAddress().ipAddress ?? "")
                out += turnOutputs(turns[i].client.permit(relayed.withPort(0), now: now), now: now)
                // XOR-MAPPED-ADDRESS is a server-reflexive UDP candidate only when the allocation is over UDP.
                if let mapped, !turns[i].stream, !settings.relayOnly,
                    !advertised.contains(where: { $0.address == mapped.socketAddress() })
                {
                    let srflx = ICECandidate(type: .serverReflexive, address: mapped.socketAddress(), foundation: 2, base: 0)
                    advertised.append(srflx)
                    out.append(.gathered(srflx))
                }
                for key in agents.keys { agents[key]!.addLocal(candidate) }
                for j in turns.indices where j != i {
                    let closing = turns[j].client.close(now: now)
                    out += closing.compactMap { if case .send(let b) = $0 { toServer(j, b) } else { nil } }
                }
            case .send(let b): out.append(toServer(i, b))
            case .data(let payload, let from):
                if chosen == i { out += receive(payload, from: from.socketAddress(), base: 1, now: now) }
            case .refreshed where chosen == i, .failed where chosen == i:
                out += relayVerdict(action, now: now)
            case .failed(let error):
                out.append(.note("TURN \(server): \(error)"))
            default: break
            }
        }
        return out
    }

    /// A STUN message or ChannelData frame from TCP connection `index`.
    mutating func receiveStream(_ bytes: [UInt8], index: Int, now: UInt64) -> [Output] {
        guard turns.indices.contains(index), turns[index].stream else { return [] }
        if index == chosen { heardFromRelay = now }
        return receiveFromTURN(index, bytes, now: now)
    }

    /// A datagram that arrived on `base` from a peer.
    mutating func receive(_ bytes: [UInt8], from source: SocketAddress, base: Int, now: UInt64) -> [Output] {
        guard ICEAgent.isSTUN(bytes) else {
            if settings.relayOnly && base == 0 { return [] }
            if arrivedOn.count > 64 { arrivedOn.removeAll() }
            arrivedOn[source] = base
            return [.deliver(bytes, from: source)]
        }
        if settings.relayOnly && base == 0 { return [] }
        // Requests name the agent in USERNAME ("ourUfrag:theirUfrag"); responses find theirs by transaction.
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        guard let message = try? STUNDecoder.decode(buffer) else { return [] }
        if message.type == .bindingRequest {
            guard let user = message.value(of: .username).flatMap({ $0.getString(at: $0.readerIndex, length: $0.readableBytes) }),
                let colon = user.firstIndex(of: ":"), user[..<colon] == ufrag, let password
            else { return [] }
            let theirs = String(user[user.index(after: colon)...])
            var out: [Output] = []
            if agents[theirs] == nil {
                // A device we have no answer from yet (still ringing): its checks start the agent.
                guard agents.count < 16 else { return [] }
                out += peer(ufrag: theirs, password: password, role: role, candidates: [], now: now)
            }
            return out + runAgent(theirs, now: now) { $0.receive(bytes, base: base, from: source, now: now) }
        }
        var out: [Output] = []
        for key in agents.keys { out += runAgent(key, now: now) { $0.receive(bytes, base: base, from: source, now: now) } }
        return out
    }

    /// Media from the call core to `remote`: over the selected pair's base, else any pair that works to it
    /// (the two sides may each have selected a different working pair), else the base its packets last
    /// arrived on, else the socket.
    mutating func send(_ bytes: [UInt8], to remote: SocketAddress, now: UInt64) -> [Output] {
        let working = agents.values.compactMap { $0.workingPair(to: remote) }.first
        let base = pair(to: remote)?.local.base ?? working?.local.base ?? arrivedOn[remote] ?? (settings.relayOnly ? 1 : 0)
        return sendOnBase(bytes, base: base, to: remote, now: now)
    }

    mutating func tick(now: UInt64) -> [Output] {
        var out: [Output] = []
        if var g = gatherer, !g.finished {
            out += translate(g.tick(now: now))
            gatherer = g
        }
        if let at = streamFallbackAt, now >= at { out += startStreamFallback(tls: false, now: now) }
        if let at = tlsFallbackAt, now >= at { out += startStreamFallback(tls: true, now: now) }
        for i in turns.indices {
            let actions = turns[i].client.tick(now: now)
            if chosen == i {
                out += turnOutputs(actions, now: now)
            } else {
                out += actions.compactMap { if case .send(let b) = $0 { toServer(i, b) } else { nil } }
            }
        }
        for key in agents.keys { out += runAgent(key, now: now) { _ in [] } }
        // Media rides on our relay and the relay went silent: ask the server whether the allocation is still
        // ours (probeRelay(now:)); an unanswered probe means re-allocating anyway.
        if let c = chosen, reallocating == nil, now > heardFromRelay + Self.relaySilenceLimit,
            selectedPairs.contains(where: { $0.local.base == 1 })
        {
            out += probeRelay(now: now)
        }
        if let since = probingSince, now > since + Self.probeTimeout {
            probingSince = nil
            out.append(.note("TURN: no answer to the probe within \(Self.probeTimeout / 1000) ms"))
            out += replaceChosen(now: now)
        }
        return out
    }

    /// The path media ended on, as "direct", "predicted" or "relay" plus the pair (nil without ICE).
    var finalPath: String? {
        guard let pair = agents.values.compactMap(\.selected).first else { return nil }
        let kind = pair.isRelayed ? "relay" : (pair.remote.type == .predicted || pair.local.type == .predicted) ? "predicted" : "direct"
        return "\(kind) \(pair)"
    }

    /// Every agent's pairs, for the trace at hang-up.
    var pairReport: [String] {
        agents.flatMap { key, agent in
            agent.pairStates.map { "ICE \(key): \($0.0) \($0.succeeded ? "succeeded" : $0.failed ? "failed" : "pending")" }
        }
    }

    /// Releases the TURN allocation.
    mutating func close(now: UInt64) -> [Output] {
        guard let c = chosen else { return [] }
        return turns[c].client.close(now: now).compactMap { if case .send(let b) = $0 { toServer(c, b) } else { nil } }
    }
}
