import NIOCore
import ParleyCrypto
import ParleyWire

/// One side of one call's media path, sans I/O (docs/PROTOCOL.md §5): the handshake datagrams while the
/// phone rings, then protected media to and from the peer. The I/O layer feeds it datagrams, signaling
/// events and the time (microseconds on a monotonic clock) and carries out the actions it returns.
///
/// Caller: it waits for hellos from the callee's ringing devices. A hello is an answer signed by a device of
/// the callee. If that device's key was pinned before this call, the caller completes the handshake at once
/// and reveals its key to it (keys ready while ringing). A device seen for the first time gets the reveal only
/// when the server reports that it accepted: otherwise a man in the middle who forged new devices could
/// learn the caller's key from one reveal and search for a matching code with the next answer.
/// Callee device: it sends its hello to the caller's candidates until the reveal comes back (over the path,
/// or through signaling), completes the handshake, and sends media once accepted. The first authenticated
/// audio from a callee device tells the caller which device accepted, before the server's event arrives.
public struct CallMediaCore: Sendable {
    /// Which end of the call this is.
    public enum Role: Sendable, Hashable { case caller, callee }

    /// What the I/O layer must do.
    public enum Action: Sendable {
        /// Send `bytes` to `to` from the media socket.
        case send([UInt8], to: SocketAddress)
        /// Keys agreed with `device`: show the code. (Caller: may come for several ringing devices.)
        case keysReady(device: SignalName, keys: CallKeys)
        /// Media now flows both ways with `device` (callee: after accept; caller: the accepting device).
        case mediaStarted(device: SignalName, peer: SocketAddress)
        /// A decrypted audio payload (frame index, Opus packet) and its sequence number.
        case audio(frame: UInt64, opus: [UInt8], sequence: UInt64)
        /// A copy of an earlier frame carried by the audio packet just delivered (docs/PROTOCOL.md §5.4):
        /// frame `frame` again, sent `distance` frames after its own packet. Follows that packet's ``audio``.
        case redundantAudio(frame: UInt64, opus: [UInt8], distance: UInt64)
        /// A decrypted receiver report and its sequence number.
        case report([UInt8], sequence: UInt64)
        /// Caller: send this reveal to `device` through signaling as well (it accepted, maybe unreachable).
        case revealThroughSignaling([UInt8])
        /// The peer said goodbye (authenticated).
        case peerHungUp
        /// Media to the peer now goes to this address (an authenticated packet came from it).
        case peerMoved(SocketAddress)
        /// The handshake failed for good with the named device (tampering or a protocol error).
        case handshakeFailed(device: SignalName, reason: String)
    }

    /// A callee device as the caller sees it.
    struct Device: Sendable {
        let bundle: DevicePublicBundle
        let pinnedBeforeCall: Bool
        var answer: [UInt8]?
        var keys: CallKeys?
        var opener: MediaOpener?
        var address: SocketAddress?
        var candidates: [SocketAddress] = []
        var failed = false
    }

    /// Drop counts for stats: packets that did not authenticate, replays, garbage.
    public private(set) var dropped: [String: Int] = [:]

    public let role: Role
    public let call: SignalID
    /// The callee user (both roles know it; signatures are bound to it).
    public let callee: SignalName
    let myIdentityKey: [UInt8]

    // Caller state.
    var callerHandshake: CallerHandshake?
    var devices: [SignalName: Device] = [:]
    var chosen: SignalName?

    // Callee state.
    var calleeHandshake: CalleeHandshake?
    let myDevice: SignalName?
    var hello: [UInt8] = []
    var callerBundle: DevicePublicBundle?
    var callerCandidates: [SocketAddress] = []
    var calleeKeys: CallKeys?
    var calleeOpener: MediaOpener?
    var accepted = false
    var helloSent = 0
    var nextHello: UInt64 = 0

    // Both.
    var peer: SocketAddress?
    var sealer: MediaSealer?
    var lastSent: UInt64 = 0
    var started = false
    /// Send a keepalive byte when nothing was sent for this long (µs).
    public var keepaliveInterval: UInt64 = 1_000_000

    /// Caller side. `devices` are the callee's device bundles as looked up (and pinned) for this call, with
    /// whether each key was already pinned before the lookup.
    public init(
        caller handshake: CallerHandshake, call: SignalID, callee: SignalName, myIdentityKey: [UInt8],
        devices: [SignalName: (bundle: DevicePublicBundle, pinnedBeforeCall: Bool)]
    ) {
        role = .caller
        self.call = call
        self.callee = callee
        self.myIdentityKey = myIdentityKey
        callerHandshake = handshake
        myDevice = nil
        for (name, entry) in devices {
            self.devices[name] = Device(bundle: entry.bundle, pinnedBeforeCall: entry.pinnedBeforeCall)
        }
    }

    /// Callee-device side: `handshake` was built from the verified offer; `signedAnswer` is the answer blob as
    /// signed for the server; `callerCandidates` come from the offer.
    public init(
        callee handshake: CalleeHandshake, call: SignalID, callee: SignalName, device: SignalName, myIdentityKey: [UInt8],
        signedAnswer: [UInt8], callerBundle: DevicePublicBundle, callerCandidates: [SocketAddress]
    ) {
        role = .callee
        self.call = call
        self.callee = callee
        self.myIdentityKey = myIdentityKey
        calleeHandshake = handshake
        myDevice = device
        self.callerBundle = callerBundle
        self.callerCandidates = callerCandidates
        hello = MediaHandshakeDatagram.hello(call: call, device: device, signedAnswer: signedAnswer).bytes
    }

    /// True once audio may be sent.
    public var mediaActive: Bool { sealer != nil && peer != nil && started }

    /// The peer's current address.
    public var peerAddress: SocketAddress? { peer }

    // MARK: Events

    /// Periodic work: the callee's hello retransmissions (every 100 ms for 2 s, then every 500 ms until the
    /// reveal), keepalives.
    public mutating func tick(now: UInt64) -> [Action] {
        var actions: [Action] = []
        if role == .callee, calleeKeys == nil, now >= nextHello {
            for address in callerCandidates { actions.append(.send(hello, to: address)) }
            helloSent += 1
            nextHello = now + (helloSent < 20 ? 100_000 : 500_000)
        }
        if let peer, sealer != nil || calleeKeys != nil || chosen != nil, now - lastSent >= keepaliveInterval,
            !actions.contains(where: { if case .send = $0 { true } else { false } })
        {
            actions.append(.send([0], to: peer))
        }
        if actions.contains(where: { if case .send = $0 { true } else { false } }) { lastSent = now }
        return actions
    }

    /// A datagram arrived on the media socket.
    public mutating func receive(_ bytes: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        guard let first = bytes.first else { return [] }
        if bytes.count == 1 { return [] }  // keepalive
        if first == MediaHandshakeDatagram.helloByte || first == MediaHandshakeDatagram.revealByte {
            guard let datagram = MediaHandshakeDatagram(parsing: bytes) else { return drop("handshake-malformed") }
            switch datagram {
            case .hello(let call, let device, let signed) where call == self.call && role == .caller:
                return receiveHello(device: device, signed: signed, from: source, now: now)
            case .reveal(let call, let ephemeral) where call == self.call && role == .callee:
                return receiveReveal(ephemeral, from: source, now: now)
            default:
                return drop("handshake-unexpected")
            }
        }
        guard MediaHeader.isMedia(firstByte: first) else { return drop("not-media") }
        return role == .caller ? callerMedia(bytes, from: source, now: now) : calleeMedia(bytes, from: source, now: now)
    }

    /// Caller: the server says `device` accepted with `answer` (signature already verified by the client).
    public mutating func answered(by device: SignalName, answer: [UInt8], now: UInt64) -> [Action] {
        guard role == .caller, chosen == nil || chosen == device, var entry = devices[device] else { return [] }
        var actions: [Action] = []
        if entry.keys == nil {
            entry.answer = answer
            devices[device] = entry
            actions += complete(device, now: now)
            guard let done = devices[device], done.keys != nil else { return actions }
            entry = done
        }
        guard let reveal = revealBytes(for: device) else { return actions }
        // The reveal goes to every address we know for the device, and through signaling in case none works.
        var targets = entry.candidates
        if let address = entry.address, !targets.contains(address) { targets.insert(address, at: 0) }
        for address in targets { actions.append(.send(reveal, to: address)) }
        if let ephemeral = revealedKey { actions.append(.revealThroughSignaling(ephemeral)) }
        actions += choose(device, now: now)
        return actions
    }

    /// Callee: the caller's reveal arrived through signaling.
    public mutating func revealedThroughSignaling(_ ephemeral: [UInt8], now: UInt64) -> [Action] {
        guard role == .callee, calleeKeys == nil else { return [] }
        return completeCallee(ephemeral, source: nil, now: now)
    }

    /// Callee: this device accepted; media starts as soon as keys and path are ready.
    public mutating func accept(now: UInt64) -> [Action] {
        guard role == .callee, !accepted else { return [] }
        accepted = true
        return startCalleeIfReady()
    }

    /// ICE selected (or moved to) a path whose remote end is `remote` (docs/PROTOCOL.md §6.2). Callee: the
    /// hello goes there now, and media too. Caller: media to the chosen device moves there (its hello already
    /// came that way, or will).
    public mutating func pathSelected(_ remote: SocketAddress, previous: SocketAddress?, now: UInt64) -> [Action] {
        switch role {
        case .callee:
            if !callerCandidates.contains(remote) { callerCandidates.insert(remote, at: 0) }
            if let previous { callerCandidates.removeAll { $0 == previous } }
            if calleeKeys == nil {
                nextHello = now  // say hello on the new path at once
                helloSent = 0
                return tick(now: now)
            }
            let moved = peer != remote
            peer = remote
            return startCalleeIfReady() + (moved && started ? [.peerMoved(remote)] : [])
        case .caller:
            guard let chosen else {
                // Before the answer: a ringing device on that path keeps it as its address.
                for (name, entry) in devices where entry.address == previous { devices[name]?.address = remote }
                return []
            }
            // ICE's choice wins (a better pair found later takes over from the first one, relay or not); an
            // authenticated packet from elsewhere may still move it again (§5.3).
            devices[chosen]?.address = remote
            let moved = peer != remote
            peer = remote
            return callerStartIfReady() + (moved && started ? [.peerMoved(remote)] : [])
        }
        return []
    }

    /// Seals and sends an audio frame (`frame` index, Opus packet) to the peer, if media is active, with
    /// copies of earlier frames when `redundant` holds some (an `audioRedundant` packet). The frame index
    /// is 32 bits on the wire.
    public mutating func sendAudio(frame: UInt64, opus: [UInt8], redundant: [AudioPayload.Redundant] = [], now: UInt64) -> [Action] {
        let payload = AudioPayload(frame: UInt32(truncatingIfNeeded: frame), opus: opus, redundant: redundant)
        return sendProtected(payload.type, payload.bytes, now: now)
    }

    /// Seals and sends a receiver report, if media is active.
    public mutating func sendReport(_ payload: [UInt8], now: UInt64) -> [Action] {
        sendProtected(.report, payload, now: now)
    }

    /// Says goodbye on the media path (three copies: it is not retransmitted).
    public mutating func hangUp(now: UInt64) -> [Action] {
        var actions: [Action] = []
        for _ in 0..<3 { actions += sendProtected(.bye, [], now: now) }
        return actions
    }

    // MARK: Caller

    mutating func receiveHello(device: SignalName, signed: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        guard var entry = devices[device], !entry.failed else { return drop("hello-unknown-device") }
        let payload: [UInt8]
        do {
            payload = try SignedBlob.open(SignalBlob(bytes: signed), kind: .answer, call: call, callee: callee, signer: entry.bundle)
        } catch {
            return drop("hello-bad-signature")
        }
        if let known = entry.answer, known != payload { return drop("hello-changed-answer") }
        entry.answer = payload
        entry.address = entry.address ?? source
        if entry.candidates.isEmpty { entry.candidates = Self.candidates(inAnswer: payload) }
        devices[device] = entry
        var actions: [Action] = []
        if entry.keys == nil {
            guard entry.pinnedBeforeCall || chosen == device else { return [] }  // first contact: reveal at accept
            actions += complete(device, now: now)
        }
        if devices[device]?.keys != nil, let reveal = revealBytes(for: device) {
            actions.append(.send(reveal, to: source))
            lastSent = now
        }
        if chosen == device { actions += callerStartIfReady() }
        return actions
    }

    mutating func complete(_ device: SignalName, now: UInt64) -> [Action] {
        guard var entry = devices[device], let answer = entry.answer, let handshake = callerHandshake else { return [] }
        do {
            let (keys, reveal) = try handshake.complete(
                answer: answer, callerIdentity: myIdentityKey, calleeIdentity: Array(entry.bundle.signingKey))
            revealedKey = reveal
            entry.keys = keys
            entry.opener = MediaOpener(keys.receiving(asCaller: true))
            if entry.candidates.isEmpty { entry.candidates = Self.candidates(inAnswer: answer) }
            devices[device] = entry
            return [.keysReady(device: device, keys: keys)]
        } catch {
            entry.failed = true
            devices[device] = entry
            return [.handshakeFailed(device: device, reason: "\(error)")]
        }
    }

    /// The caller's ephemeral public key, once a handshake completed (what a reveal carries).
    var revealedKey: [UInt8]?

    func revealBytes(for device: SignalName) -> [UInt8]? {
        revealedKey.map { MediaHandshakeDatagram.reveal(call: call, ephemeral: $0).bytes }
    }

    mutating func choose(_ device: SignalName, now: UInt64) -> [Action] {
        guard chosen == nil || chosen == device, let entry = devices[device], let keys = entry.keys else { return [] }
        chosen = device
        if sealer == nil { sealer = MediaSealer(keys.sending(asCaller: true)) }
        if peer == nil { peer = entry.address ?? entry.candidates.first }
        return callerStartIfReady()
    }

    /// Caller: media starts once the device that took the call has keys and a known path (its hello's source,
    /// its first authenticated packet, or the pair ICE selected — whichever comes first).
    mutating func callerStartIfReady() -> [Action] {
        guard role == .caller, !started, let chosen, sealer != nil else { return [] }
        if peer == nil { peer = devices[chosen]?.address }
        guard let peer else { return [] }
        started = true
        return [.mediaStarted(device: chosen, peer: peer)]
    }

    mutating func callerMedia(_ bytes: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        // Before a device is chosen, the first device whose key opens audio is the one that accepted.
        let order = chosen.map { [$0] } ?? devices.keys.sorted()
        for name in order {
            guard var entry = devices[name], var opener = entry.opener else { continue }
            let opened: MediaOpener.Opened
            do {
                opened = try opener.open(bytes)
            } catch MediaProtectionError.authenticationFailed where chosen == nil {
                continue
            } catch {
                return drop("media-\(error)")
            }
            entry.opener = opener
            devices[name] = entry
            var actions: [Action] = []
            if chosen == nil { actions += choose(name, now: now) }
            // An authenticated packet from a new address moves the path there (the peer's address changed).
            if chosen == name, opened.sequence >= (devices[name]?.opener?.window.highest ?? 0), peer != source {
                peer = source
                devices[name]?.address = source
                actions.append(.peerMoved(source))
            }
            actions += callerStartIfReady()
            return actions + deliver(opened)
        }
        return drop("media-unauthenticated")
    }

    // MARK: Callee

    mutating func receiveReveal(_ ephemeral: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        if calleeKeys != nil {
            // A repeated reveal (our hello crossed it): the path is the same; nothing to do.
            return []
        }
        return completeCallee(ephemeral, source: source, now: now)
    }

    mutating func completeCallee(_ ephemeral: [UInt8], source: SocketAddress?, now: UInt64) -> [Action] {
        guard let handshake = calleeHandshake, let callerBundle, let myDevice else { return [] }
        do {
            let keys = try handshake.complete(
                reveal: ephemeral, callerIdentity: Array(callerBundle.signingKey), calleeIdentity: myIdentityKey)
            calleeKeys = keys
            calleeOpener = MediaOpener(keys.receiving(asCaller: false))
            sealer = MediaSealer(keys.sending(asCaller: false))
            if let source { peer = source } else if peer == nil { peer = callerCandidates.first }
            return [.keysReady(device: myDevice, keys: keys)] + startCalleeIfReady()
        } catch {
            return drop("reveal-\(error)") + [.handshakeFailed(device: myDevice, reason: "\(error)")]
        }
    }

    mutating func startCalleeIfReady() -> [Action] {
        guard accepted, !started, calleeKeys != nil, let peer, let myDevice else { return [] }
        started = true
        return [.mediaStarted(device: myDevice, peer: peer)]
    }

    mutating func calleeMedia(_ bytes: [UInt8], from source: SocketAddress, now: UInt64) -> [Action] {
        guard var opener = calleeOpener else { return drop("media-before-keys") }
        do {
            let opened = try opener.open(bytes)
            calleeOpener = opener
            var moved: [Action] = []
            if peer != source, opened.sequence >= opener.window.highest {
                peer = source
                moved.append(.peerMoved(source))
            }
            // Keys through signaling and no checked path yet (heavy loss): the caller's first authenticated
            // packet is the path, and media starts on it.
            return moved + startCalleeIfReady() + deliver(opened)
        } catch {
            calleeOpener = opener
            return drop("media-\(error)")
        }
    }

    // MARK: Both

    mutating func sendProtected(_ type: MediaPacketType, _ payload: [UInt8], now: UInt64) -> [Action] {
        guard started, let peer, var sealer else { return [] }
        do {
            let packet = try sealer.seal(type, payload)
            self.sealer = sealer
            lastSent = now
            return [.send(packet, to: peer)]
        } catch {
            return []
        }
    }

    func deliver(_ opened: MediaOpener.Opened) -> [Action] {
        switch opened.type {
        case .audio, .audioRedundant:
            guard let audio = AudioPayload(parsing: opened.plaintext, type: opened.type) else { return [] }
            let frame = UInt64(audio.frame)
            return [.audio(frame: frame, opus: audio.opus, sequence: opened.sequence)]
                + audio.redundant.map { .redundantAudio(frame: frame - UInt64($0.distance), opus: $0.opus, distance: UInt64($0.distance)) }
        case .report:
            return [.report(opened.plaintext, sequence: opened.sequence)]
        case .bye:
            return [.peerHungUp]
        }
    }

    mutating func drop(_ reason: String) -> [Action] {
        dropped[reason, default: 0] += 1
        return []
    }

    /// Host candidates listed in an offer or answer payload.
    public static func candidates(inAnswer payload: [UInt8]) -> [SocketAddress] {
        let fields: [CallField]
        if let answer = try? CallAnswer(decoding: payload) {
            fields = answer.extensions
        } else if let offer = try? CallOffer(decoding: payload) {
            fields = offer.extensions
        } else {
            return []
        }
        return fields.filter { $0.type == MediaCandidate.fieldType }.compactMap { MediaCandidate(decoding: $0.value) }
            .compactMap(Self.socketAddress)
    }

    /// The NIO address of a candidate.
    public static func socketAddress(_ candidate: MediaCandidate) -> SocketAddress? {
        if candidate.address.count == 4 {
            return try? SocketAddress(ipAddress: candidate.address.map(String.init).joined(separator: "."), port: Int(candidate.port))
        }
        let groups = stride(from: 0, to: 16, by: 2).map {
            String(UInt16(candidate.address[$0]) << 8 | UInt16(candidate.address[$0 + 1]), radix: 16)
        }
        return try? SocketAddress(ipAddress: groups.joined(separator: ":"), port: Int(candidate.port))
    }
}
