import ArgumentParser
import Foundation
import NIOCore
import ParleyClient
import ParleyCrypto
import ParleyMedia
import ParleyNAT
import ParleyWire

/// Audio options shared by `call` and `answer`.
struct MediaOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Send this WAV file (any rate and channels; resampled to 48 kHz mono).", valueName: "path"))
    var play: String?

    @Option(help: ArgumentHelp("Send a test tone of this frequency instead (Hz).", valueName: "hz"))
    var tone: Double?

    @Option(help: ArgumentHelp("Level of the test tone, dBFS.", valueName: "db"))
    var toneLevel: Double = -20

    @Option(help: ArgumentHelp("Write what the peer sends to this WAV file (48 kHz mono, 16-bit).", valueName: "path"))
    var record: String?

    @Option(help: ArgumentHelp("Send from this ALSA capture device (e.g. default, hw:0) instead of a file or tone.", valueName: "device"))
    var mic: String?

    @Option(help: ArgumentHelp("Play what the peer sends on this ALSA playback device (e.g. default).", valueName: "device"))
    var speaker: String?

    @Option(help: ArgumentHelp("Address for the media socket (candidates: this address, or every IPv4 address for 0.0.0.0).", valueName: "ip"))
    var mediaBind = "0.0.0.0"

    @Option(help: ArgumentHelp("Opus bitrate to start with, bits/s.", valueName: "bps"))
    var bitrate = 32_000

    @Option(help: ArgumentHelp("Opus encoder complexity, 0-10.", valueName: "n"))
    var complexity = 9

    @Flag(help: "Print a live statistics line every second.")
    var stats = false

    @Option(help: ArgumentHelp("Write the call's events to this file, one JSON object per line (docs/OPERATIONS.md).", valueName: "path"))
    var eventsJson: String?

    @Option(help: ArgumentHelp("STUN server for server-reflexive and predicted candidates.", valueName: "host:port"))
    var stun: String?

    @Option(help: ArgumentHelp("TURN server for relayed candidates (repeat for several: the fastest is kept).", valueName: "host:port"))
    var turn: [String] = []

    @Option(help: ArgumentHelp("TURN user name (a static user, or a TURN REST expiry:user name).", valueName: "name"))
    var turnUser: String?

    @Option(help: ArgumentHelp("File holding the TURN password (mode 0600; kept out of the command line).", valueName: "path"))
    var turnPasswordFile: String?

    @Option(help: ArgumentHelp("The TURN servers' TLS port, for the last fallback on networks that pass only TLS.", valueName: "port"))
    var turnTLSPort: Int?

    @Option(help: ArgumentHelp("Trust only these PEM certificates for TURN over TLS (default: the system's roots).", valueName: "path"))
    var turnCA: String?

    @Flag(help: "Privacy: offer and use only relayed candidates, so the peer never learns this machine's addresses.")
    var relayOnly = false

    @Flag(help: "Print gathering and path details.")
    var traceMedia = false

    @Flag(help: "Run NAT behaviour discovery on every call instead of using the day-old cache beside the key.")
    var noNATCache = false

    func source() throws -> AudioSource {
        if let play {
            do {
                return .samples(try WAVFile.read(path: ClientFiles.absolute(play)).samples48kMono)
            } catch {
                throw ClientCLI.failure("cannot read \(play): \(error)")
            }
        }
        if let tone { return .tone(frequency: tone, levelDBFS: toneLevel) }
        if let mic {
            do {
                return .capture(try SoundCapture(device: mic))
            } catch {
                throw ClientCLI.failure("cannot open the microphone: \(error)")
            }
        }
        return .silence
    }

    /// The STUN/TURN settings from the options.
    func traversal(natCache: String?) throws -> TraversalSettings {
        func address(_ text: String, _ what: String) throws -> SocketAddress {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                let parsed = try? SocketAddress.makeAddressResolvingHost(
                    String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
            else { throw ClientCLI.failure("\(what) must be HOST:PORT, got '\(text)'") }
            return parsed
        }
        var settings = TraversalSettings(relayOnly: relayOnly)
        if !noNATCache { settings.natCachePath = natCache }
        if let stun { settings.stun = try address(stun, "--stun") }
        if !turn.isEmpty {
            guard let turnUser, let turnPasswordFile else { throw ClientCLI.failure("--turn needs --turn-user and --turn-password-file") }
            guard let raw = FileManager.default.contents(atPath: turnPasswordFile),
                let password = String(data: raw, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !password.isEmpty
            else { throw ClientCLI.failure("cannot read the TURN password from \(turnPasswordFile)") }
            settings.turn = try turn.map {
                TraversalSettings.TURNServer(
                    address: try address($0, "--turn"), username: turnUser, password: password, tlsPort: turnTLSPort)
            }
            if let turnCA { settings.turnTLS = .trusting(pemFile: turnCA) }
        }
        if relayOnly && settings.turn.isEmpty { throw ClientCLI.failure("--relay-only needs a --turn server") }
        return settings
    }

    /// The recording's path, absolute (relative to the working directory, `~` expanded), when --record names one.
    var recordPath: String? { record.map { ClientFiles.absolute($0) } }

    /// The playback device, when --speaker names one.
    func playback() throws -> SoundPlayback? {
        guard let speaker else { return nil }
        do {
            return try SoundPlayback(device: speaker)
        } catch {
            throw ClientCLI.failure("cannot open the speaker: \(error)")
        }
    }

    var settings: AudioSettings {
        var settings = AudioSettings()
        settings.bitrate = bitrate
        settings.complexity = complexity
        return settings
    }

    func validate() throws {
        guard [play != nil, tone != nil, mic != nil].filter({ $0 }).count <= 1 else {
            throw ValidationError("give one of --play, --tone and --mic")
        }
        guard (0...10).contains(complexity) else { throw ValidationError("--complexity is 0-10") }
        guard (6_000...510_000).contains(bitrate) else { throw ValidationError("--bitrate is 6000-510000") }
    }
}

/// Whether the followed call was answered.
actor CallProgress {
    private(set) var answered = false
    func answer() { answered = true }
}

extension Task where Success == Never, Failure == Never {
    /// Suspends until cancelled.
    static func never<T: Sendable>() async throws -> T {
        while true { try await Task<Never, Never>.sleep(for: .seconds(3600)) }
    }
}

/// Why a call (or the wait for one) ended, as `call` and `answer` report it.
enum CallEnd: Sendable {
    /// The server said the call ended (the peer hung up, cancelled, rejected, was busy, offline or gone).
    case ended(SignalEvent.EndReason)
    /// The peer said goodbye on the media path.
    case peerHungUp
    /// `--play` came to its end.
    case sourceFinished
    /// `--hold` ran out.
    case holdOver
    /// SIGINT or SIGTERM.
    case interrupted(Int32)
    /// Nobody answered within `--timeout`.
    case noAnswer(Double)
    /// No call rang within `--timeout` (answer).
    case noCall(Double)
    /// Another device of ours took the call (answer).
    case answeredElsewhere(SignalName)
    /// This device declined (answer without --auto).
    case rejected
    case signalingClosed
    case mediaClosed

    /// The line printed for people.
    var text: String {
        switch self {
        case .ended(let reason): "call ended: \(reason.rawValue)"
        case .peerHungUp: "peer hung up"
        case .sourceFinished: "source finished"
        case .holdOver: "hold over"
        case .interrupted(let signal): signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted (Ctrl-C)"
        case .noAnswer(let seconds): "no answer within \(seconds) s"
        case .noCall(let seconds): "no call within \(seconds) s"
        case .answeredElsewhere(let device): "answered on our other device \(device)"
        case .rejected: "rejected"
        case .signalingClosed: "signaling closed"
        case .mediaClosed: "media closed"
        }
    }

    /// The `reason` of the `ended` event in `--events-json`.
    var reason: String {
        switch self {
        case .ended(let reason): "server:\(reason.rawValue)"
        case .peerHungUp: "peer-hangup"
        case .sourceFinished: "source-finished"
        case .holdOver: "hold-over"
        case .interrupted(let signal): signal == SIGTERM ? "sigterm" : "sigint"
        case .noAnswer: "no-answer"
        case .noCall: "no-call"
        case .answeredElsewhere: "answered-elsewhere"
        case .rejected: "rejected"
        case .signalingClosed: "signaling-closed"
        case .mediaClosed: "media-closed"
        }
    }

    /// Whether the server already knows the call is over (nothing to send it).
    var serverKnows: Bool {
        if case .ended = self { return true }
        if case .answeredElsewhere = self { return true }
        return false
    }

    /// The process's exit code once the call is hung up (docs/OPERATIONS.md).
    var exitCode: Int32 {
        switch self {
        case .interrupted(let signal): CallExit.code(for: signal)
        case .noCall: 1
        default: CallExit.completed
        }
    }
}

/// Prints the media engine's events (and logs them with `--events-json`); returns when the call should
/// end, with why.
enum MediaPrinter {
    static func wall() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    /// Consumes engine events until the peer hangs up or the source ends (when `endWithSource`).
    static func follow(
        _ engine: CallMediaEngine, stats: Bool, endWithSource: Bool, trace: Bool = false, log: CallEventLog,
        onReveal: @escaping @Sendable ([UInt8]) async -> Void,
        onTrickle: @escaping @Sendable (ICECandidate) async -> Void = { _ in }
    ) async -> CallEnd {
        for await event in engine.events {
            switch event {
            case .keysReady(let device, let sas, let suite):
                print("keys agreed with \(device) (\(suite)); compare the code with the other person:")
                print("  SAS: \(sas)")
                log.emit("keys", ["device": .string(device.description), "sas": .string("\(sas)"), "suite": .string("\(suite)")])
            case .mediaStarted(let device, let peer, let wall):
                print("media with \(device) at \(peer)")
                log.emit("media-started", ["device": .string(device.description), "peer": .string("\(peer)"), "wall_us": .int(Int64(wall))])
            case .firstAudio(let wall):
                print("first audio decrypted at \(wall) µs")
                log.emit("first-audio", ["wall_us": .int(Int64(wall))])
            case .quality(let quality):
                if stats { print("stats: \(quality)") }
                log.emit("stats", CallEventLog.fields(quality))
            case .revealThroughSignaling(let reveal):
                await onReveal(reveal)
            case .sourceFinished:
                if endWithSource { return .sourceFinished }
            case .peerHungUp:
                return .peerHungUp
            case .failed(let device, let reason):
                ClientCLI.warn("WARNING: media with \(device) failed: \(reason)")
                log.emit("media-failed", ["device": .string(device.description), "reason": .string(reason)])
            case .path(let pair, let relayed):
                let kind = relayed ? "relay" : pair.remote.type == .predicted || pair.local.type == .predicted ? "predicted" : "direct"
                print("path: \(kind) \(pair) at \(wall()) µs")
                log.emit("path", ["kind": .string(kind), "pair": .string("\(pair)")])
            case .trickle(let candidate):
                await onTrickle(candidate)
            case .note(let line):
                if trace { print("media: \(line)") }
            }
        }
        return .mediaClosed
    }

    /// Hangs up the media (goodbye on the media path, recording closed) and prints the totals.
    static func summary(_ engine: CallMediaEngine, trace: Bool = false, log: CallEventLog) async {
        guard let summary = await engine.finish() else { return }
        print("summary: \(summary)")
        if let path = summary.path { print("final path: \(path)") }
        if trace { for line in summary.ice { print("media: \(line)") } }
        var fields = CallEventLog.fields(summary.quality)
        fields["sent_packets"] = .int(Int64(summary.sentPackets))
        fields["received_packets"] = .int(Int64(summary.receivedPackets))
        fields["played"] = .int(Int64(summary.played))
        fields["concealed"] = .int(Int64(summary.concealed))
        fields["recorded_frames"] = .int(Int64(summary.writtenFrames))
        if let duration = summary.mediaDurationMicros { fields["media_us"] = .int(Int64(duration)) }
        if let path = summary.path { fields["path"] = .string(path) }
        log.emit("summary", fields)
    }

    /// Tells the server, within `limit`: with signaling gone the peer has the media goodbye already, and the
    /// command stays queued in the state file (a later login sends it).
    static func tellServer(_ limit: Duration = .milliseconds(1500), _ send: @escaping @Sendable () async throws -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await send() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }

    /// The last lines: `hung up`, the `hung-up` event; throws the exit code when it is not 0.
    static func hungUp(_ end: CallEnd, log: CallEventLog) throws {
        print("hung up")
        log.emit("hung-up", ["reason": .string(end.reason), "exit": .int(Int64(end.exitCode))])
        if end.exitCode != 0 { throw ExitCode(end.exitCode) }
    }
}

/// `parley call USER`: an end-to-end encrypted call.
struct ClientCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a user: end-to-end encrypted Opus audio over UDP, with a short authentication string.",
        discussion: """
            Looks up the callee's devices (pinning keys on first contact; a changed key stops the call unless \
            --accept-new-key), sends an offer that commits to a fresh key, and completes the key agreement with \
            the device that answers. Prints the short authentication string (SAS): read it to the other person; \
            if it differs, someone is in the middle. Hangs up when --play ends (unless --hold), after --hold \
            seconds, or when the other side hangs up.
            """)

    @Argument(help: "The user to call.")
    var name: String

    @Option(help: ArgumentHelp("Seconds to wait for an answer.", valueName: "s"))
    var timeout: Double = 45

    @Option(help: ArgumentHelp("Seconds to stay in the answered call (default: until --play ends or the peer hangs up).", valueName: "s"))
    var hold: Double?

    @Flag(help: "Accept a changed key of the callee (after checking its fingerprint).")
    var acceptNewKey = false

    @OptionGroup var media: MediaOptions
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        ClientCLI.lineBufferedOutput()  // live lines even into a pipe (parley demo, scripts)
        let identity = try options.identity()
        let log = try CallEventLog(path: media.eventsJson)
        let (client, _) = try await options.logIn()
        // From here on Ctrl-C (and SIGTERM) hangs up properly; before it there is nothing to hang up.
        let interrupts = Interrupts.install()
        let media = media
        let timeout = timeout
        let hold = hold
        try await ClientCLI.run(client) {
            let callee = SignalName(name)!
            let lookup = try await client.lookUp(callee, acceptNewKeys: acceptNewKey)
            ClientCLI.reportList(lookup)
            for (device, status) in lookup.status.sorted(by: { $0.key < $1.key }) {
                switch status {
                case .firstContact, .newDevice:
                    print("\(callee)/\(device): key pinned now (first contact): compare the SAS to be sure")
                case .changed: print("\(callee)/\(device): CHANGED key accepted on request")
                case .pinned: break
                }
            }
            let engine = try await CallMediaEngine.bind(host: media.mediaBind, traversal: try media.traversal(natCache: options.natCachePath))
            let call = SignalID.random()
            let password = ICECredentials.random().password
            let ice = await engine.localICE(password: password, controlling: true)
            let handshake = CallerHandshake(callID: call.text, extensions: ice.fields)
            var devices: [SignalName: (bundle: DevicePublicBundle, pinnedBeforeCall: Bool)] = [:]
            for (device, bundle) in lookup.devices { devices[device] = (bundle, lookup.status[device] == .pinned) }
            let core = CallMediaCore(
                caller: handshake, call: call, callee: callee, myIdentityKey: Array(identity.publicBundle.signingKey),
                devices: devices)
            try await engine.start(
                core, source: try media.source(), recordTo: media.recordPath, speaker: try media.playback(), settings: media.settings)
            _ = try await client.call(callee, offer: handshake.offer, id: call)
            print("calling \(callee) (call \(call)); candidates: \(ice.candidates.map(\.description).joined(separator: ", "))")
            log.emit("calling", ["call": .string(call.text), "callee": .string(callee.description)])
            let progress = CallProgress()
            let ufrags = DeviceUfrags()
            let outcome: CallEnd = try await withThrowingTaskGroup(of: CallEnd.self) { group in
                group.addTask {
                    for await event in client.events {
                        await client.acknowledge(upTo: event.sseq)
                        switch event.kind {
                        case .answer(call, let by, let answer):
                            await progress.answer()
                            print("answered by \(ClientCLI.describe(by)) at \(MediaPrinter.wall()) µs")
                            log.emit("answered", ["by": .string(by.description)])
                            engine.answered(by: by.device, answer: answer)
                            let theirs = ICEFields(payload: answer)
                            await ufrags.set(by.device, theirs.credentials?.ufrag)
                            engine.checkPeer(theirs, password: password, controlling: true)
                        case .ended(call, let reason):
                            return .ended(reason)
                        case .candidate(call, let from, let payload):
                            if case .ice(let candidate) = CallCandidatePayload(decoding: payload),
                                let ufrag = await ufrags.get(from.device)
                            {
                                engine.addRemoteCandidate(candidate, ufrag: ufrag)
                            }
                        default:
                            ClientCLI.printOther(event)
                        }
                    }
                    return .signalingClosed
                }
                group.addTask {
                    await MediaPrinter.follow(
                        engine, stats: media.stats, endWithSource: hold == nil, trace: media.traceMedia, log: log,
                        onReveal: { reveal in try? await client.candidate(call, CallCandidatePayload.reveal(reveal).encoded) },
                        onTrickle: { candidate in try? await client.candidate(call, CallCandidatePayload.ice(candidate).encoded) })
                }
                group.addTask {
                    for await signal in interrupts { return .interrupted(signal) }
                    return try await Task.never()
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                    return await progress.answered ? try await Task.never() : .noAnswer(timeout)
                }
                if let hold {
                    group.addTask {
                        while await !progress.answered { try await Task.sleep(for: .milliseconds(20)) }
                        try await Task.sleep(for: .milliseconds(Int(hold * 1000)))
                        return .holdOver
                    }
                }
                let first = try await group.next() ?? .mediaClosed
                group.cancelAll()
                return first
            }
            print(outcome.text)
            log.emit("ended", ["reason": .string(outcome.reason)])
            // The media goodbye goes first (it needs no server), with the recording closed and the totals.
            await MediaPrinter.summary(engine, trace: media.traceMedia, log: log)
            if !outcome.serverKnows {
                let answered = await progress.answered
                await MediaPrinter.tellServer {
                    if answered { try await client.end(call) } else { try await client.cancel(call) }
                }
            }
            try MediaPrinter.hungUp(outcome, log: log)
        }
    }
}

/// The caller's view of which ICE ufrag each answering device uses.
actor DeviceUfrags {
    private var map: [SignalName: String] = [:]
    func set(_ device: SignalName, _ ufrag: String?) { map[device] = ufrag }
    func get(_ device: SignalName) -> String? { map[device] }
}

/// The callee's progress: the call ringing, the pending accept.
actor CalleeState {
    private(set) var call: SignalID?
    private(set) var callerUfrag: String?
    func setCallerUfrag(_ ufrag: String?) { callerUfrag = ufrag }
    private(set) var rejected = false
    private var accept: Task<Bool, any Error>?
    private(set) var acceptedFlag = false

    func ring(_ id: SignalID) { call = id }
    func accepting(_ task: Task<Bool, any Error>) {
        accept = task
        Task { if (try? await task.value) == true { self.markAccepted() } }
    }
    func markAccepted() { acceptedFlag = true }
    var accepted: Bool { acceptedFlag }
    func declined() { rejected = true }
    func cancelAccept() { accept?.cancel() }
}

/// `parley answer`: waits for a call and takes it with encrypted media.
struct ClientAnswer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "answer",
        abstract: "Wait for a call and take it: end-to-end encrypted Opus audio, SAS, live stats.",
        discussion: """
            While the phone rings the key agreement and the path check already run, so audio starts at once on \
            accept. Without --auto, asks before accepting. Rings whose offer does not verify against the caller's \
            pinned key are shown as warnings and never accepted. Further calls while in one are answered busy.
            """)

    @Flag(help: "Accept the first call without asking.")
    var auto = false

    @Option(help: ArgumentHelp("With --auto: let it ring this long before accepting.", valueName: "s"))
    var ringFor: Double = 0

    @Option(help: ArgumentHelp("Seconds to wait, for the ring and then for the call to end.", valueName: "s"))
    var timeout: Double = 120

    @Option(help: ArgumentHelp("Hang up after this many seconds in the call (default: when the caller does).", valueName: "s"))
    var hold: Double?

    @OptionGroup var media: MediaOptions
    @OptionGroup var options: ClientOptions

    func run() async throws {
        ClientCLI.lineBufferedOutput()  // live lines even into a pipe (parley demo, scripts)
        let identity = try options.identity()
        let log = try CallEventLog(path: media.eventsJson)
        let (client, welcome) = try await options.logIn()
        let interrupts = Interrupts.install()
        let auto = auto
        let media = media
        let ringFor = ringFor
        let hold = hold
        let timeout = timeout
        try await ClientCLI.run(client) {
            print("waiting for a call…")
            log.emit("waiting")
            let engine = try await CallMediaEngine.bind(host: media.mediaBind, traversal: try media.traversal(natCache: options.natCachePath))
            let state = CalleeState()
            let outcome: CallEnd = try await withThrowingTaskGroup(of: CallEnd.self) { group in
                group.addTask {
                    for await event in client.events {
                        await client.acknowledge(upTo: event.sseq)
                        let current = await state.call
                        switch event.kind {
                        case .ring(let id, let from, let offer) where current == nil:
                            print("ring from \(ClientCLI.describe(from)) (call \(id))")
                            log.emit("ring", ["call": .string(id.text), "from": .string(from.description)])
                            guard let callerBundle = await client.pinnedKey(from.user, device: from.device) else {
                                ClientCLI.warn("WARNING: no pinned key for the caller; rejecting")
                                try await client.reject(id)
                                continue
                            }
                            let theirs = ICEFields(payload: offer)
                            guard let password = theirs.credentials?.password else {
                                ClientCLI.warn("WARNING: the offer carries no ICE credentials; rejecting")
                                try await client.reject(id)
                                continue
                            }
                            let ours = await engine.localICE(password: password, controlling: false)
                            await state.setCallerUfrag(theirs.credentials?.ufrag)
                            let handshake: CalleeHandshake
                            do {
                                handshake = try CalleeHandshake(callID: id.text, offer: offer, extensions: ours.fields)
                            } catch {
                                ClientCLI.warn("WARNING: the offer is not an encrypted-call offer (\(error)); rejecting")
                                try await client.reject(id)
                                continue
                            }
                            let signed = try SignedBlob.sign(
                                handshake.answer, kind: .answer, call: id, callee: welcome.user, by: identity)
                            let core = CallMediaCore(
                                callee: handshake, call: id, callee: welcome.user, device: welcome.device,
                                myIdentityKey: Array(identity.publicBundle.signingKey), signedAnswer: signed.bytes,
                                callerBundle: callerBundle, callerCandidates: CallMediaCore.candidates(inAnswer: offer))
                            try await engine.start(
                core, source: try media.source(), recordTo: media.recordPath, speaker: try media.playback(), settings: media.settings)
                            engine.checkPeer(theirs, password: password, controlling: false)
                            try await client.prepare(id, answer: handshake.answer)
                            await state.ring(id)
                            // Accept after the ring delay (or the person's yes), unless the call goes away first.
                            let accept = Task {
                                if auto {
                                    if ringFor > 0 { try await Task.sleep(for: .milliseconds(Int(ringFor * 1000))) }
                                } else if !ClientAnswer.confirm("accept? [y/N] ") {
                                    try await client.reject(id)
                                    return false
                                }
                                try Task.checkCancellation()
                                print("accepted at \(MediaPrinter.wall()) µs")
                                log.emit("accepted", ["call": .string(id.text)])
                                engine.accept()
                                try await client.accept(id, answer: nil)
                                return true
                            }
                            await state.accepting(accept)
                            Task {
                                if (try? await accept.value) == false { await state.declined() }
                            }
                        case .ring(let other, let from, _):
                            try? await client.busy(other)
                            print("busy: declined another call from \(from)")
                        case .candidate(current, _, let payload):
                            switch CallCandidatePayload(decoding: payload) {
                            case .reveal(let reveal): engine.revealedThroughSignaling(reveal)
                            case .ice(let candidate):
                                if let ufrag = await state.callerUfrag { engine.addRemoteCandidate(candidate, ufrag: ufrag) }
                            case nil: break
                            }
                        case .elsewhere(current, let device):
                            await state.cancelAccept()
                            return .answeredElsewhere(device)
                        case .ended(current, let reason):
                            await state.cancelAccept()
                            return .ended(reason)
                        default:
                            ClientCLI.printOther(event)
                        }
                        if await state.rejected { return .rejected }
                    }
                    return .signalingClosed
                }
                group.addTask {
                    await MediaPrinter.follow(
                        engine, stats: media.stats, endWithSource: false, trace: media.traceMedia, log: log, onReveal: { _ in },
                        onTrickle: { candidate in
                            if let call = await state.call { try? await client.candidate(call, CallCandidatePayload.ice(candidate).encoded) }
                        })
                }
                group.addTask {
                    for await signal in interrupts { return .interrupted(signal) }
                    return try await Task.never()
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                    return await state.call == nil ? .noCall(timeout) : try await Task.never()
                }
                if let hold {
                    group.addTask {
                        while await !state.accepted { try await Task.sleep(for: .milliseconds(20)) }
                        try await Task.sleep(for: .milliseconds(Int(hold * 1000)))
                        return .holdOver
                    }
                }
                let first = try await group.next() ?? .mediaClosed
                group.cancelAll()
                return first
            }
            let call = await state.call
            print(outcome.text)
            log.emit("ended", ["reason": .string(outcome.reason)])
            await state.cancelAccept()
            // The media goodbye first (it needs no server), with the recording closed and the totals.
            await MediaPrinter.summary(engine, trace: media.traceMedia, log: log)
            if let call, !outcome.serverKnows {
                let accepted = await state.accepted
                let rejected = await state.rejected
                // In the call: hang up. Still ringing (Ctrl-C before accepting): decline it.
                if accepted || !rejected {
                    await MediaPrinter.tellServer { if accepted { try await client.end(call) } else { try await client.reject(call) } }
                }
            }
            if case .noCall = outcome { ClientCLI.warn("parley: \(outcome.text)") }
            try MediaPrinter.hungUp(outcome, log: log)
        }
    }

    /// Asks on the terminal; anything but y/yes declines.
    static func confirm(_ prompt: String) -> Bool {
        FileHandle.standardOutput.write(Data(prompt.utf8))
        return ["y", "yes"].contains(readLine()?.lowercased() ?? "")
    }
}
