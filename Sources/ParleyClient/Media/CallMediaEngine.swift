import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyMedia
import ParleyNAT
import ParleyWire

/// What a call's media engine reports to the application.
public enum CallMediaEvent: Sendable {
    /// Keys agreed with `device`: show the code to the person.
    case keysReady(device: SignalName, sas: ShortAuthenticationString, suite: MediaCipherSuite)
    /// Media flows with `device` at `peer`; the call's playout and recording clock starts now (wall clock,
    /// µs since the epoch).
    case mediaStarted(device: SignalName, peer: SocketAddress, wallMicros: UInt64)
    /// The first audio packet from the peer was decrypted (wall clock, µs since the epoch).
    case firstAudio(wallMicros: UInt64)
    /// Once a second while media flows.
    case quality(CallQuality)
    /// Caller: send this reveal through signaling too (`cand`).
    case revealThroughSignaling([UInt8])
    /// The sample source has been played to its end.
    case sourceFinished
    /// The peer hung up on the media path.
    case peerHungUp
    /// The handshake with `device` failed (tampering or protocol error).
    case failed(device: SignalName, reason: String)
    /// ICE chose (or moved to) this path; `relayed` when it goes through TURN.
    case path(ICEPair, relayed: Bool)
    /// A candidate found after the offer or answer went out: send it with `cand`.
    case trickle(ICECandidate)
    /// A diagnostic line (gathering results, TURN errors).
    case note(String)
}

/// Totals at the end of a call.
public struct CallMediaSummary: Sendable, CustomStringConvertible {
    public let quality: CallQuality
    public let sentPackets: Int
    /// Authenticated audio packets received (receiver reports not counted).
    public let receivedPackets: Int
    public let played: Int
    public let recoveredByFEC: Int
    public let concealed: Int
    public let late: Int
    /// 20 ms frames written to the recording: one per 20 ms from media start to the hang-up.
    public let writtenFrames: Int
    /// From media start to the hang-up, µs (nil when media never started).
    public let mediaDurationMicros: UInt64?
    public let dropped: [String: Int]
    /// Every ICE pair and whether its checks succeeded.
    public let ice: [String]
    /// The path media ended on ("direct …", "predicted …", "relay …"), nil without ICE.
    public let path: String?

    public var description: String {
        "sent \(sentPackets) packets; received \(receivedPackets); played \(played) frames, FEC-recovered \(recoveredByFEC), "
            + "concealed \(concealed), late \(late); \(quality)"
            + (dropped.isEmpty ? "" : "; dropped " + dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}

/// The I/O shell around ``CallMediaCore`` and the audio pipeline: one UDP socket (SwiftNIO), a 20 ms clock
/// on that socket's event loop, all state confined to the loop.
public final class CallMediaEngine: @unchecked Sendable {
    let channel: any Channel
    /// The IPv6 socket beside the IPv4 one (wildcard binding on a machine with IPv6), if any.
    let channel6: (any Channel)?
    let loop: any EventLoop
    /// Where this engine receives media: candidates to put in an offer or answer.
    public let candidates: [MediaCandidate]
    /// Events for the application.
    public let events: AsyncStream<CallMediaEvent>
    let continuation: AsyncStream<CallMediaEvent>.Continuation
    let origin = NIODeadline.now()

    // Loop-confined.
    var core: CallMediaCore?
    var audio: AudioPipeline?
    var tick: UInt64 = 0
    var nextReport: UInt64 = 0
    var reportsSent = 0
    var reportedFinish = false
    var timer: Scheduled<Void>?
    /// The deadline of the tick running now (while ``inTick``) and of the next one.
    var tickDeadline = NIODeadline.now()
    var nextTickDeadline = NIODeadline.now()
    var closed = false
    var inTick = false
    var traversal: MediaTraversal
    /// This network's key in the NAT behaviour cache.
    var natCacheKey = ""
    /// TCP connections to TURN servers (the fallback), by index, and what waits for them to connect.
    var streams: [Int: any Channel] = [:]
    var streamPending: [Int: [[UInt8]]] = [:]
    /// Every ICE pair and how its checks ended, taken at ``finish()``.
    var iceReport: [String] = []
    var finalPath: String?
    /// Candidates advertised so far (the rest trickle).
    var announced = 0
    var announcing = false
    /// Debugging aids, off unless the environment names a file (docs/OPERATIONS.md): the media secrets of
    /// every call (like SSLKEYLOGFILE) and the plaintext Opus packets sent (`<frame> <hex>` per line). The
    /// end-to-end test uses both to prove the wire carries neither. Never enable them in use.
    let keyLog = ProcessInfo.processInfo.environment["PARLEY_KEYLOGFILE"]
    let mediaDump = ProcessInfo.processInfo.environment["PARLEY_MEDIA_DUMP"]

    init(channel: any Channel, channel6: (any Channel)? = nil, candidates: [MediaCandidate], traversal: TraversalSettings) {
        self.channel = channel
        self.channel6 = channel6
        self.loop = channel.eventLoop
        self.candidates = candidates
        self.traversal = MediaTraversal(
            settings: traversal, hostAddresses: candidates.compactMap(CallMediaCore.socketAddress))
        (events, continuation) = AsyncStream.makeStream(of: CallMediaEvent.self)
        if let mediaDump {
            FileHandle.standardError.write(
                Data("parley: WARNING: PARLEY_MEDIA_DUMP is set: writing the plaintext audio sent to \(mediaDump)\n".utf8))
        }
    }

    /// Opens the media socket on `host` (port chosen by the system). With the wildcard address, the
    /// candidates are every non-loopback IPv4 address of the machine (127.0.0.1 when it has none).
    public static func bind(
        host: String = "0.0.0.0", traversal: TraversalSettings = TraversalSettings(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> CallMediaEngine {
        let box = NIOLockedValueBox<CallMediaEngine?>(nil)
        func open(_ host: String, v6Only: Bool) async throws -> any Channel {
            var bootstrap = DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(MediaDatagramHandler(engine: box))
                    }
                }
            if v6Only { bootstrap = bootstrap.channelOption(.socket(SocketOptionLevel(IPPROTO_IPV6), IPV6_V6ONLY), value: 1) }
            return try await bootstrap.bind(host: host, port: 0).get()
        }
        // One socket per family: IPv4 on the given address (the wildcard by default), and with the wildcard an
        // IPv6 socket too (on machines without IPv6 it is simply left out). An IPv6 address binds IPv6 only.
        let wantsV6Only = host.contains(":")
        let channel = try await open(host, v6Only: wantsV6Only)
        var channel6: (any Channel)?
        if host == "0.0.0.0" { channel6 = try? await open("::", v6Only: true) }
        var addresses: [SocketAddress] = []
        func add(_ address: SocketAddress?, port: Int?) {
            guard let address, let port, let text = address.ipAddress,
                let withPort = try? SocketAddress(ipAddress: text, port: port), !addresses.contains(withPort)
            else { return }
            addresses.append(withPort)
        }
        let devices = (try? System.enumerateDevices()) ?? []
        if let local = channel.localAddress, !Self.isWildcard(local) {
            add(local, port: local.port)
        } else if let local = channel.localAddress {
            for device in devices {
                guard let address = device.address, case .v4 = address, Self.bytes(address)?.first != 127 else { continue }
                add(address, port: local.port)
            }
            if addresses.isEmpty { add(try? SocketAddress(ipAddress: "127.0.0.1", port: 0), port: local.port) }
        }
        if let channel6, let local = channel6.localAddress {
            for device in devices {
                guard let address = device.address, case .v6 = address, Self.isGlobalV6(address) else { continue }
                add(address, port: local.port)
            }
        }
        guard !addresses.isEmpty else { throw ClientError.violation("media socket has no address") }
        var traversal = traversal
        let cacheKey = addresses.compactMap(\.ipAddress).sorted().joined(separator: ",") + "@" + (traversal.stun?.description ?? "-")
        if let path = traversal.natCachePath { traversal.cachedMappings = NATCache.read(path, prefix: cacheKey) }
        let engine = CallMediaEngine(
            channel: channel, channel6: channel6,
            candidates: addresses.compactMap { address in
                Self.bytes(address).flatMap { MediaCandidate(address: $0, port: UInt16(address.port ?? 0)) }
            },
            traversal: traversal)
        engine.natCacheKey = cacheKey
        box.withLockedValue { $0 = engine }
        try await engine.loop.submit {
            engine.emit(engine.traversal.start(now: engine.now))
            engine.scheduleTick(at: NIODeadline.now() + .milliseconds(20))
        }.get()
        return engine
    }

    static func isWildcard(_ address: SocketAddress) -> Bool {
        guard let bytes = bytes(address) else { return true }
        return bytes.allSatisfy { $0 == 0 }
    }

    /// A global IPv6 address: not loopback, link-local (fe80::/10) or unspecified.
    static func isGlobalV6(_ address: SocketAddress) -> Bool {
        guard let bytes = bytes(address), bytes.count == 16 else { return false }
        if bytes.dropLast().allSatisfy({ $0 == 0 }) { return false }  // :: and ::1
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return false }
        return true
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out += [digits[Int(b >> 4)], digits[Int(b & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }

    static func append(_ line: String, to path: String) {
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            return FileHandle(forWritingAtPath: path)
        }() else { return }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    }

    /// `PARLEY_KEYLOGFILE` lines: `<call> <suite> caller_to_callee <hex>` and `… callee_to_caller <hex>`.
    static func logKeys(_ keys: CallKeys, call: SignalID?, to path: String) {
        FileHandle.standardError.write(Data("parley: WARNING: PARLEY_KEYLOGFILE is set: writing this call's media secrets to \(path)\n".utf8))
        let id = call?.text ?? "-"
        append(
            "\(id) \(keys.suite.rawValue) caller_to_callee \(hex(keys.callerToCallee.secretBytes))\n"
                + "\(id) \(keys.suite.rawValue) callee_to_caller \(hex(keys.calleeToCaller.secretBytes))\n", to: path)
    }

    static func bytes(_ address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr.s_addr) { Array($0) }
        case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        default: return nil
        }
    }

    /// Candidates as offer/answer extension fields.
    public var candidateFields: [CallField] {
        candidates.map { CallField(type: MediaCandidate.fieldType, value: $0.encoded) }
    }

    /// Microseconds since the engine was made (the core's and the pipeline's clock).
    var now: UInt64 { UInt64(max(0, (NIODeadline.now() - origin).nanoseconds / 1000)) }

    static var wallMicros: UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// Starts the call's media: the core (handshake and protection) and the audio pipeline; ticks every 20 ms.
    public func start(
        _ core: CallMediaCore, source: AudioSource, recordTo path: String?, speaker: SoundPlayback? = nil,
        settings: AudioSettings = AudioSettings()
    ) async throws {
        let sink = try path.map { try WAVWriter(path: $0) }
        let pipeline = try AudioPipeline(source: source, sink: sink, speaker: speaker, settings: settings)
        try await loop.submit {
            self.core = core
            self.audio = pipeline
        }.get()
    }

    /// Waits until gathering finished (or its timeout passed) and returns our ICE fields for an offer or
    /// answer, with the call's password (the caller's, PROTOCOL §6.1) and our role. Later candidates come as ``CallMediaEvent/trickle(_:)``.
    public func localICE(password: String, controlling: Bool) async -> ICEFields {
        while true {
            let ready: ICEFields? = try? await loop.submit {
                guard self.traversal.gatheringDone(now: self.now) else { return nil }
                // From now on checks from the peer's devices are answered, with this password and role.
                self.traversal.password = password
                self.traversal.role = controlling ? .controlling : .controlled
                self.announced = self.traversal.advertised.count
                self.announcing = true
                return ICEFields(
                    credentials: ICECredentials(ufrag: self.traversal.ufrag, password: password),
                    candidates: self.traversal.advertised)
            }.get()
            if let ready { return ready }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Starts checks with a peer device (callee: the caller, from the offer; caller: a device, from its answer).
    public func checkPeer(_ ice: ICEFields, password: String, controlling: Bool) {
        guard let ufrag = ice.credentials?.ufrag else { return }
        loop.execute {
            self.emit(
                self.traversal.peer(
                    ufrag: ufrag, password: password, role: controlling ? .controlling : .controlled,
                    candidates: ice.candidates, complete: true, now: self.now))
            self.channel.flush()
        }
    }

    /// A candidate the peer device with `ufrag` trickled through signaling.
    public func addRemoteCandidate(_ candidate: ICECandidate, ufrag: String) {
        loop.execute {
            guard let password = self.traversal.password else { return }
            self.emit(self.traversal.peer(ufrag: ufrag, password: password, role: self.traversal.role, candidates: [candidate], now: self.now))
            self.channel.flush()
        }
    }

    /// Caller: the server reported that `device` accepted with `answer` (verified).
    public func answered(by device: SignalName, answer: [UInt8]) {
        onLoop { core, now in core.answered(by: device, answer: answer, now: now) }
    }

    /// Callee: the reveal arrived through signaling.
    public func revealedThroughSignaling(_ ephemeral: [UInt8]) {
        onLoop { core, now in core.revealedThroughSignaling(ephemeral, now: now) }
    }

    /// Callee: this device accepted the call.
    public func accept() {
        onLoop { core, now in core.accept(now: now) }
    }

    /// Says goodbye on the media path, stops the clock, closes the recording and the socket; returns totals.
    public func finish() async -> CallMediaSummary? {
        let summary: CallMediaSummary? = try? await loop.submit {
            guard !self.closed else { return nil }
            self.closed = true
            self.timer?.cancel()
            if var core = self.core {
                self.perform(core.hangUp(now: self.now))
                self.core = core
            }
            self.iceReport = self.traversal.pairReport
            self.finalPath = self.traversal.finalPath
            self.emit(self.traversal.close(now: self.now))
            self.channel.flush()
            // The recording runs to the hang-up: the frames due since the last tick first.
            try? self.audio?.playout(now: self.now)
            let summary = self.summary()
            try? self.audio?.close()
            return summary
        }.get()
        let streams = (try? await loop.submit { Array(self.streams.values) }.get()) ?? []
        for stream in streams { try? await stream.close() }
        try? await channel.close()
        try? await channel6?.close()
        continuation.finish()
        return summary
    }

    func summary() -> CallMediaSummary? {
        guard let audio else { return nil }
        let stats = audio.jitter.statistics
        let now = self.now
        return CallMediaSummary(
            quality: audio.callQuality(now: now), sentPackets: audio.sentPackets, receivedPackets: audio.receivedAudio,
            played: stats.played, recoveredByFEC: stats.recoveredByFEC, concealed: stats.concealed, late: stats.late,
            writtenFrames: audio.writtenFrames, mediaDurationMicros: audio.playoutStart.map { now - min($0, now) },
            dropped: core?.dropped ?? [:], ice: iceReport, path: finalPath)
    }

    func onLoop(_ body: @escaping @Sendable (inout CallMediaCore, UInt64) -> [CallMediaCore.Action]) {
        loop.execute {
            guard var core = self.core else { return }
            let actions = body(&core, self.now)
            self.core = core
            self.perform(actions)
            self.channel.flush()
        }
    }

    func scheduleTick(at deadline: NIODeadline) {
        nextTickDeadline = deadline
        timer = loop.scheduleTask(deadline: deadline) { [self] in
            guard !closed else { return }
            tickDeadline = deadline
            runTick()
            // Absolute deadlines: no drift, however long a tick took.
            var next = deadline + .milliseconds(20)
            let now = NIODeadline.now()
            if next < now { next = now }
            scheduleTick(at: next)
        }
    }

    func runTick() {
        inTick = true
        defer { inTick = false }
        emit(traversal.tick(now: now))
        announceLateCandidates()
        guard var core, let audio else {
            channel.flush()
            return
        }
        let now = self.now
        var actions = core.tick(now: now)
        if core.mediaActive {
            do {
                if let (frame, opus) = try audio.nextFrame() {
                    let sent = core.sendAudio(frame: frame, opus: opus, redundant: audio.redundantCopies(for: frame), now: now)
                    if let mediaDump, !sent.isEmpty { Self.append("\(frame) \(Self.hex(opus))\n", to: mediaDump) }
                    actions += sent
                }
                if now >= nextReport {
                    // The first reports come quickly, so the peer's encoder learns the loss (and turns its
                    // in-band FEC on) within a few hundred milliseconds of the first audio rather than after
                    // a second and more; then one a second. (The first, at the first tick, has nothing yet.)
                    nextReport = now + (reportsSent < 3 ? 250_000 : 1_000_000)
                    reportsSent += 1
                    // A fresh clock reading: the report's time stamp is what the peer's RTT is measured from,
                    // so the encoding work of this tick must not count as network time.
                    let stamp = self.now
                    actions += core.sendReport(audio.report(now: stamp), now: stamp)
                    continuation.yield(.quality(audio.quality(now: stamp)))
                }
            } catch {
                continuation.yield(.failed(device: core.callee, reason: "audio: \(error)"))
            }
            if audio.sourceFinished, !reportedFinish {
                reportedFinish = true
                continuation.yield(.sourceFinished)
            }
        }
        try? audio.playout(now: now)
        self.core = core
        perform(actions)
        channel.flush()
    }

    func sendFrameNow() {
        guard var core, let audio, core.mediaActive, let (frame, opus) = try? audio.nextFrame() else { return }
        let actions = core.sendAudio(frame: frame, opus: opus, redundant: audio.redundantCopies(for: frame), now: now)
        if let mediaDump, !actions.isEmpty { Self.append("\(frame) \(Self.hex(opus))\n", to: mediaDump) }
        self.core = core
        perform(actions)
        channel.flush()
    }

    func receive(_ bytes: [UInt8], from source: SocketAddress) {
        emit(traversal.receive(bytes, from: source, now: now))
    }

    /// Writes a datagram on the socket of `to`'s family.
    func write(_ bytes: [UInt8], to: SocketAddress) {
        let socket: any Channel
        if case .v6 = to, let channel6 {
            socket = channel6
        } else {
            socket = channel
        }
        socket.write(AddressedEnvelope(remoteAddress: to, data: socket.allocator.buffer(bytes: bytes)), promise: nil)
        if socket !== channel { socket.flush() }
    }

    /// Carries out the traversal's outputs: socket writes, datagrams for the call, path changes.
    func emit(_ outputs: [MediaTraversal.Output]) {
        for output in outputs {
            switch output {
            case .send(let bytes, let to):
                write(bytes, to: to)
            case .connectStream(let index, let to, let tls):
                streamPending[index] = []
                let engine = self
                let tlsSettings = tls ? (traversal.settings.turnTLS ?? .system) : nil
                let host = to.ipAddress ?? ""
                ClientBootstrap(group: loop)
                    .connectTimeout(.seconds(5))
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let tlsSettings {
                                let context = try tlsSettings.makeContext()
                                try channel.pipeline.syncOperations.addHandler(tlsSettings.makeHandler(context: context, host: host))
                            }
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(TURNStreamFramer()))
                            try channel.pipeline.syncOperations.addHandler(TURNStreamHandler(engine: engine, index: index))
                        }
                    }
                    .connect(to: to)
                    .whenComplete { result in
                        switch result {
                        case .success(let stream):
                            engine.streams[index] = stream
                            for bytes in engine.streamPending[index] ?? [] {
                                stream.write(stream.allocator.buffer(bytes: bytes), promise: nil)
                            }
                            engine.streamPending[index] = nil
                            stream.flush()
                        case .failure(let error):
                            engine.continuation.yield(.note("TURN over TCP to \(to): \(error)"))
                        }
                    }
            case .sendStream(let bytes, let index):
                if let stream = streams[index] {
                    stream.writeAndFlush(stream.allocator.buffer(bytes: bytes), promise: nil)
                } else {
                    streamPending[index, default: []].append(bytes)
                }
            case .closeStream(let index):
                streamPending[index] = nil
                streams.removeValue(forKey: index)?.close(promise: nil)
            case .deliver(let bytes, let from):
                guard var core else { continue }
                let actions = core.receive(bytes, from: from, now: now)
                self.core = core
                perform(actions)
            case .selected(let pair, let previous):
                continuation.yield(.path(pair, relayed: pair.isRelayed))
                guard var core else { continue }
                let actions = core.pathSelected(pair.remote.address, previous: previous?.remote.address, now: now)
                self.core = core
                perform(actions)
            case .consentLost(let pair):
                continuation.yield(.note("path \(pair) lost consent; checking all pairs again"))
            case .gathered:
                announceLateCandidates()
            case .note(let line):
                continuation.yield(.note(line))
            case .behaviour(let mapping, let ip):
                if let path = traversal.settings.natCachePath { NATCache.write(path, key: natCacheKey + "@" + ip, mapping: mapping) }
            }
        }
    }

    /// Candidates found after ``localICE(password:)`` answered go out as trickle events.
    func announceLateCandidates() {
        guard announcing else { return }
        while announced < traversal.advertised.count {
            continuation.yield(.trickle(traversal.advertised[announced]))
            announced += 1
        }
    }

    func perform(_ actions: [CallMediaCore.Action]) {
        for action in actions {
            switch action {
            case .send(let bytes, let address):
                emit(traversal.send(bytes, to: address, now: now))
            case .keysReady(let device, let keys):
                if let keyLog { Self.logKeys(keys, call: core?.call, to: keyLog) }
                continuation.yield(.keysReady(device: device, sas: keys.sas, suite: keys.suite))
            case .mediaStarted(let device, let peer):
                // The playout clock on the tick grid, half a frame before the tick that plays the first frame:
                // each tick then falls in the middle of its frame, so a tick a little late never counts twice
                // and the jitter buffer is asked exactly once per tick (only a real stall catches up).
                let firstTick = inTick ? tickDeadline : nextTickDeadline
                let micros = UInt64(max(0, (firstTick - origin).nanoseconds / 1000))
                audio?.startPlayout(now: micros > 10_000 ? micros - 10_000 : 0)
                continuation.yield(.mediaStarted(device: device, peer: peer, wallMicros: Self.wallMicros))
                // The first frame goes out now, not at the next tick: it is what tells the other side that
                // media started (docs/PROTOCOL.md §5.3), so it sets the call's setup time.
                if !inTick { sendFrameNow() }
            case .audio(let frame, let opus, let sequence):
                guard let audio else { continue }
                let first = audio.firstDecrypted == nil
                audio.received(frame: frame, opus: opus, sequence: sequence, now: now)
                if first { continuation.yield(.firstAudio(wallMicros: Self.wallMicros)) }
            case .redundantAudio(let frame, let opus, let distance):
                audio?.receivedRedundant(frame: frame, opus: opus, distance: distance, now: now)
            case .report(let bytes, let sequence):
                if let audio, let decision = audio.receivedReport(bytes, sequence: sequence, now: now) {
                    let estimate = audio.bandwidthEstimate.map { ", path ~\($0 / 1000) kb/s for Opus" } ?? ""
                    continuation.yield(.note("audio: \(decision.bitrate / 1000) kb/s, FEC for \(decision.expectedLossPercent) % loss (\(decision.reason))\(estimate)"
                        + "; peer saw loss \(audio.peerLossPercent) %, queuing \(Int(audio.peerQueuingMilliseconds)) ms"))
                }
            case .revealThroughSignaling(let bytes):
                continuation.yield(.revealThroughSignaling(bytes))
            case .peerHungUp:
                continuation.yield(.peerHungUp)
            case .peerMoved(let address):
                let route = traversal.pair(to: address).map { "selected pair \($0)" }
                    ?? traversal.agents.values.compactMap { $0.workingPair(to: address) }.first.map { "working pair \($0)" }
                    ?? "the socket"
                continuation.yield(.note("media now to \(address) via \(route)"))
            case .handshakeFailed(let device, let reason):
                continuation.yield(.failed(device: device, reason: reason))
            }
        }
    }
}

/// Hands datagrams to the engine on its loop; flushes after each read burst.
final class MediaDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let engine: NIOLockedValueBox<CallMediaEngine?>
    var cached: CallMediaEngine?

    init(engine: NIOLockedValueBox<CallMediaEngine?>) { self.engine = engine }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        if cached == nil { cached = engine.withLockedValue { $0 } }
        guard let cached, envelope.data.readableBytes <= 2048 else { return }
        cached.receive(Array(envelope.data.readableBytesView), from: envelope.remoteAddress)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// The NAT behaviour cache (PROTOCOL §6.1): `hosts@stun server@public IP<TAB>unix seconds<TAB>mapping` per line,
/// mode 0600; entries older than a day are ignored (networks change), at most 64 kept.
enum NATCache {
    static let maxAge: Double = 86_400

    /// Every fresh entry whose key is `prefix@<public IP>`, by public IP.
    static func read(_ path: String, prefix: String, now: Double = Date().timeIntervalSince1970) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var found: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            guard parts.count == 3, parts[0].hasPrefix(prefix + "@"), let at = Double(parts[1]), now - at < maxAge else { continue }
            found[String(parts[0].dropFirst(prefix.count + 1))] = parts[2]
        }
        return found
    }

    static func write(_ path: String, key: String, mapping: String, now: Double = Date().timeIntervalSince1970) {
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var lines = old.split(separator: "\n").map(String.init).filter { !$0.hasPrefix(key + "\t") }
        lines.append("\(key)\t\(Int(now))\t\(mapping)")
        let text = lines.suffix(64).joined(separator: "\n") + "\n"
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
    }
}
