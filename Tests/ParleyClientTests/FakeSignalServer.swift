import Crypto
import Foundation
import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyWire

@testable import ParleyClient

/// A scripted signaling server on 127.0.0.1 (port 0) that speaks docs/PROTOCOL.md §3 through `SignalCodec`:
/// hello with a fresh challenge, login signatures verified against registered bundles, welcome with the
/// device's last processed cseq, duplicate commands acknowledged without executing, per-device event queues
/// resent until `got`, and a small router (calls, candidates, messages). Tests script failures on top.
actor FakeSignalServer {
    /// What to do with one command.
    enum Script: Sendable {
        /// Process and acknowledge (or nak) as the protocol says.
        case normal
        /// Refuse with `nak`.
        case nak(ServerFrame.NakCode)
        /// Process it (advance last-cseq, execute) but never answer, as if the ack were lost.
        case processSilently
        /// Neither process nor answer, as if the line were lost.
        case lose
    }

    /// A line a client sent, with the connection it came on (0-based, in accept order).
    struct Received: Sendable {
        var connection: Int
        var line: String
        var frame: ClientFrame?
    }

    struct Device: Hashable, Sendable {
        var user: SignalName
        var device: SignalName
    }

    private struct Connection {
        var outbox: AsyncStream<ServerFrame>.Continuation
        var channel: any Channel
        var device: Device?
        var challenge: SignalBlob
    }

    nonisolated let port: Int
    private let serverChannel: any Channel

    private(set) var accounts: [SignalName: [SignalName: DevicePublicBundle]] = [:]
    /// Each user's device lists as published (history, ascending): a hostile test rewrites them freely.
    private(set) var deviceLists: [SignalName: [DeviceList]] = [:]
    /// What `keys` presents as a user's newest list instead of the last published (`.some(nil)`: none).
    private var presentedList: [SignalName: DeviceList?] = [:]
    private(set) var received: [Received] = []
    private(set) var connectionCount = 0
    private var connections: [Int: Connection] = [:]
    private var lastCSeq: [Device: UInt64] = [:]
    private var queues: [Device: [(sseq: UInt64, event: SignalEvent)]] = [:]
    private var nextSSeq: [Device: UInt64] = [:]
    private var calls: [SignalID: (caller: Device, callee: SignalName)] = [:]

    /// Drop acknowledged events on `got` (false: keep resending them, as a server that lost the `got` would).
    var honourGot = true
    /// Never send `hello` (a server that accepts and stays silent).
    var silent = false
    /// Refuse every login with this error code.
    var loginError: ServerFrame.ErrorCode?
    /// Decides per command; `.normal` by default.
    var script: @Sendable (SignalCommand) -> Script = { _ in .normal }
    /// Rewrites each event before it is queued (to tamper with relayed blobs).
    var tamper: @Sendable (SignalEvent) -> SignalEvent = { $0 }
    /// The server clock.
    var now: @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }

    private init(port: Int, serverChannel: any Channel) {
        self.port = port
        self.serverChannel = serverChannel
    }

    static func start() async throws -> FakeSignalServer {
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(ClientLineFramer(maxLine: 1 << 20)))
                    return try NIOAsyncChannel<ClientLine, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let server = FakeSignalServer(port: listener.channel.localAddress!.port!, serverChannel: listener.channel)
        Task {
            try? await listener.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in inbound {
                        group.addTask { await server.serve(connection) }
                    }
                }
            }
        }
        return server
    }

    func stop() async {
        for connection in connections.values { connection.channel.close(promise: nil) }
        try? await serverChannel.close()
    }

    // MARK: Test controls

    func addAccount(_ user: SignalName, _ device: SignalName, _ bundle: DevicePublicBundle) {
        accounts[user, default: [:]][device] = bundle
    }

    /// Replaces a user's list history (what `lists` serves, and `keys` unless ``present(_:for:)`` says otherwise).
    func setDeviceLists(_ user: SignalName, _ lists: [DeviceList]) { deviceLists[user] = lists }
    /// Makes `keys` present `list` (nil: no list at all) as `user`'s newest.
    func present(_ list: DeviceList?, for user: SignalName) { presentedList[user] = .some(list) }
    /// The `msg` lines clients sent so far.
    var messageLines: [String] { received.map(\.line).filter { $0.hasPrefix("msg|") } }

    func setSilent(_ value: Bool) { silent = value }
    func setHonourGot(_ value: Bool) { honourGot = value }
    func setLoginError(_ code: ServerFrame.ErrorCode?) { loginError = code }
    func setScript(_ script: @escaping @Sendable (SignalCommand) -> Script) { self.script = script }
    func setTamper(_ tamper: @escaping @Sendable (SignalEvent) -> SignalEvent) { self.tamper = tamper }
    func setLastCSeq(_ cseq: UInt64, for device: Device) { lastCSeq[device] = cseq }
    func processedCSeq(_ device: Device) -> UInt64 { lastCSeq[device] ?? 0 }
    func queued(_ device: Device) -> [UInt64] { queues[device, default: []].map(\.sseq) }
    var onlineDevices: [Device] { connections.values.compactMap(\.device) }
    /// Whether `device` is logged in on a connection numbered at least `connection` (0-based).
    func isLoggedIn(_ device: Device, onConnection connection: Int) -> Bool {
        connections.contains { $0.key >= connection && $0.value.device == device }
    }

    /// Closes every client connection, as a network failure would.
    func dropConnections() {
        for connection in connections.values { connection.channel.close(promise: nil) }
    }

    /// Sends a raw line on every connection (for malformed-frame tests).
    func sendRaw(_ line: String) {
        for connection in connections.values {
            connection.channel.writeAndFlush(ByteBuffer(string: line + "\n"), promise: nil)
        }
    }

    /// Queues `event` for `device` and sends it when the device is online.
    func push(_ event: SignalEvent, to device: Device) {
        let sseq = nextSSeq[device, default: 1]
        nextSSeq[device] = sseq + 1
        let event = tamper(event)
        queues[device, default: []].append((sseq, event))
        for connection in connections.values where connection.device == device {
            connection.outbox.yield(.event(sseq: sseq, timestamp: now(), event: event))
        }
    }

    // MARK: Connections

    private func serve(_ channel: NIOAsyncChannel<ClientLine, ByteBuffer>) async {
        let id = connectionCount
        connectionCount += 1
        let (outbox, outboxInput) = AsyncStream<ServerFrame>.makeStream()
        let challenge = SignalBlob(bytes: (0..<32).map { _ in UInt8.random(in: 0...255) })
        connections[id] = Connection(outbox: outboxInput, channel: channel.channel, device: nil, challenge: challenge)
        if !silent { outboxInput.yield(.hello(version: 1, challenge: challenge, serverTime: now())) }
        try? await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await frame in outbox {
                        try await outbound.write(ByteBuffer(string: SignalCodec.format(frame) + "\n"))
                        if case .error = frame { return }
                    }
                }
                group.addTask {
                    for try await line in inbound {
                        guard case .line(let text) = line else { return }
                        await self.handle(text, connection: id)
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
        connections[id] = nil
    }

    private func handle(_ line: String, connection id: Int) {
        let frame = try? SignalCodec.parseClient(Substring(line))
        received.append(Received(connection: id, line: line, frame: frame))
        guard let connection = connections[id] else { return }
        let outbox = connection.outbox
        func send(_ frame: ServerFrame) { outbox.yield(frame) }
        switch frame {
        case nil:
            send(.error(code: .protocolError, reason: "unparsable"))
        case .keepalive?:
            break
        case .enrol?:
            send(.refused(code: .registrationClosed, reason: "the fake server does not enrol"))
        case .login(let user, let device, let ts, let signature)?:
            guard connection.device == nil else { return send(.error(code: .replay, reason: "second login")) }
            if let loginError { return send(.error(code: loginError, reason: "scripted")) }
            let input = SignalCodec.loginSigningInput(
                challenge: connection.challenge, user: user, device: device, timestamp: ts)
            guard let key = accounts[user]?[device]?.signingPublicKey,
                key.isValidSignature(Data(signature.bytes), for: Data(input))
            else { return send(.error(code: .badLogin, reason: "login refused")) }
            let who = Device(user: user, device: device)
            connections[id]?.device = who
            send(.welcome(user: user, device: device, lastCSeq: lastCSeq[who] ?? 0, serverTime: now()))
            for (sseq, event) in queues[who, default: []] {
                send(.event(sseq: sseq, timestamp: now(), event: event))
            }
        case .got(let sseq)?:
            guard let who = connection.device, honourGot else { return }
            queues[who]?.removeAll { $0.sseq <= sseq }
        case .command(let command)?:
            guard let who = connection.device else {
                return send(.error(code: .notLoggedIn, reason: "log in first"))
            }
            let script = script(command)
            if case .lose = script { return }
            if command.cseq <= lastCSeq[who] ?? 0 { return send(.ack(cseq: command.cseq, result: [])) }
            lastCSeq[who] = command.cseq
            if case .nak(let code) = script { return send(.nak(cseq: command.cseq, code: code, reason: "scripted")) }
            let answer = execute(command.verb, from: who, cseq: command.cseq)
            if case .processSilently = script { return }
            send(answer)
        }
    }

    /// The router: just enough of §3.5–§3.6 for the client's tests.
    private func execute(_ verb: SignalCommand.Verb, from who: Device, cseq: UInt64) -> ServerFrame {
        let ok = ServerFrame.ack(cseq: cseq, result: [])
        switch verb {
        case .keys(let user):
            guard let devices = accounts[user], !devices.isEmpty else {
                return .nak(cseq: cseq, code: .unknownUser, reason: "no such user")
            }
            let list = devices.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.encoded)" }.joined(separator: ",")
            let newest = presentedList[user] ?? deviceLists[user]?.last
            if let newest { return .ack(cseq: cseq, result: [user.text, list, SignalBlob(bytes: newest.wire).text]) }
            return .ack(cseq: cseq, result: [user.text, list])
        case .lists(let user, let since):
            let lists = (deviceLists[user] ?? []).filter { $0.version > since }.prefix(6)
            return .ack(cseq: cseq, result: [user.text, lists.map { SignalBlob(bytes: $0.wire).text }.joined(separator: ",")])
        case .publish(let blob):
            guard let list = try? DeviceList(wire: blob.bytes), list.user == who.user else {
                return .nak(cseq: cseq, code: .badArgument, reason: "not a list of this user")
            }
            deviceLists[list.user, default: []].append(list)
            for entry in list.devices { accounts[list.user, default: [:]][entry.name] = entry.bundle }
            return .ack(cseq: cseq, result: ["\(list.version)"])
        case .linkRequest:
            return .nak(cseq: cseq, code: .badArgument, reason: "no such link request")
        case .call(let call, let callee, let offer):
            calls[call] = (who, callee)
            for device in accounts[callee, default: [:]].keys.sorted() {
                push(
                    .ring(call: call, caller: who.user, callerDevice: who.device, offer: offer),
                    to: Device(user: callee, device: device))
            }
            return ok
        case .accept(let call, let answer):
            guard let (caller, _) = calls[call] else { return .nak(cseq: cseq, code: .unknownCall, reason: "") }
            if let answer { push(.answer(call: call, device: who.device, answer: answer), to: caller) }
            return ok
        case .candidate(let call, let candidate):
            guard let (caller, callee) = calls[call] else { return .nak(cseq: cseq, code: .unknownCall, reason: "") }
            let event = SignalEvent.candidate(call: call, user: who.user, device: who.device, candidate: candidate)
            if who == caller {
                for device in accounts[callee, default: [:]].keys.sorted() {
                    push(event, to: Device(user: callee, device: device))
                }
            } else {
                push(event, to: caller)
            }
            return ok
        case .cancel(let call), .reject(let call), .busy(let call), .end(let call):
            guard let (caller, callee) = calls.removeValue(forKey: call) else { return ok }
            let reason: SignalEvent.EndReason =
                switch verb {
                case .cancel: .cancelled
                case .reject: .rejected
                case .busy: .busy
                default: .hangup
                }
            if who == caller {
                for device in accounts[callee, default: [:]].keys.sorted() {
                    push(.ended(call: call, reason: reason), to: Device(user: callee, device: device))
                }
            } else {
                push(.ended(call: call, reason: reason), to: caller)
            }
            return ok
        case .prepare:
            return ok
        case .message(let id, let to, let sealed):
            for copy in sealed {
                push(
                    .message(id: id, from: who.user, fromDevice: who.device, sealed: copy.ciphertext),
                    to: Device(user: to, device: copy.device))
            }
            return ok
        }
    }
}
