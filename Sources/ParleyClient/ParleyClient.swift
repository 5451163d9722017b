import Foundation
import Logging
import NIOCore
import ParleyCrypto
import ParleyWire

/// A device's connection to a Parley signaling server (docs/PROTOCOL.md §3): login, a durable command queue,
/// acknowledged events, pinned contact keys, signed call signaling and sealed messages.
///
/// ```swift
/// let client = ParleyClient(options: .init(statePath: keyPath + ".state", contactsPath: contacts))
/// _ = try await client.connect(host: "example.org", port: 7000, tls: .system)
/// _ = try await client.login(identity: identity, user: alice, device: phone)
/// try await client.send("hello", to: bob)
/// for await event in client.events { … }   // each event is acknowledged when the loop asks for the next
/// await client.close()
/// ```
///
/// After the first login the client keeps the session: it reconnects with backoff when the connection
/// drops, logs in again, resends unanswered commands with their original cseq and deduplicates events.
/// Commands wait in the queue while disconnected; cancelling the waiting task stops the wait, not the command.
public actor ParleyClient {
    /// Settings that rarely change.
    public struct Options: Sendable {
        /// The client state file (command queue, last acknowledged event); nil keeps it in memory only.
        public var statePath: String?
        /// The contacts file with pinned device keys; nil keeps the pins in memory only.
        public var contactsPath: String?
        /// A contacts file to read the pins from while ``contactsPath`` does not exist yet (the per-directory
        /// file of earlier versions); never written.
        public var legacyContactsPath: String?
        /// This account's trust store (``TrustStore``: user keys, device lists, verification marks),
        /// `KEY.trust` beside the key; nil keeps it in memory only.
        public var trustPath: String?
        /// How often to send a keepalive (§3.1: at most 25 s).
        public var keepaliveInterval: Duration = .seconds(25)
        /// How long `hello` plus `welcome` may take on a connection.
        public var loginTimeout: Duration = .seconds(10)
        /// How long a TCP connect may take.
        public var connectTimeout: Duration = .seconds(10)
        /// The first reconnect delay; it doubles per failed attempt, with jitter.
        public var initialReconnectDelay: Duration = .milliseconds(500)
        /// The longest reconnect delay.
        public var maximumReconnectDelay: Duration = .seconds(30)
        /// Longest line accepted from the server, counting the LF.
        public var maxInboundLine = 128 * 1024
        /// Longest line the server accepts from us, counting the LF (its `signal.max_line`).
        public var maxOutboundLine = 65536

        /// Options with the given files and default timings.
        public init(statePath: String? = nil, contactsPath: String? = nil) {
            self.statePath = statePath
            self.contactsPath = contactsPath
        }
    }

    /// Where to connect.
    struct Target: Sendable {
        var host: String
        var port: Int
        var tls: ClientTLS?
    }

    /// One live connection's way out.
    struct Link {
        var epoch: UInt64
        var outbox: AsyncStream<ClientFrame>.Continuation
        var closeReason: ClientError?
    }

    /// A call this client placed or received: who calls whom, for signing and checking blobs.
    struct CallRecord: Sendable {
        var caller: SignalName
        var callee: SignalName
    }

    let options: Options
    let logger: Logger
    let now: @Sendable () -> UInt64

    var session = ClientSession()
    var pins = KeyPins()
    /// The pins as last read from or written to the contacts file (what a save merges against).
    var pinsOnDisk = KeyPins()
    /// User keys and device lists of the users this account knows (docs/PROTOCOL.md §3.8).
    public internal(set) var trust = TrustStore()
    var calls: [SignalID: CallRecord] = [:]
    var target: Target?
    var link: Link?
    var epoch: UInt64 = 0
    var everLoggedIn = false
    var loggedInEpoch: UInt64?
    var stopped: ClientError?
    var lockDescriptor: Int32?
    var connectionTask: Task<Void, Never>?
    var processorTask: Task<Void, Never>?
    var helloWaiter: CheckedContinuation<Hello, any Error>?
    var welcomeWaiter: CheckedContinuation<Welcome, any Error>?
    var commandWaiters: [UInt64: CheckedContinuation<ClientSession.CommandOutcome, any Error>] = [:]

    let eventStream: AsyncStream<ClientEvent>
    let eventOutput: AsyncStream<ClientEvent>.Continuation
    let rawEvents: AsyncStream<(UInt64, UInt64, SignalEvent)>
    let rawEventInput: AsyncStream<(UInt64, UInt64, SignalEvent)>.Continuation

    /// The decoded, verified events, in server order. One consumer; each event is acknowledged to the server
    /// (`got`) when the consumer asks for the next one, or earlier with ``acknowledge(upTo:)``.
    public nonisolated var events: ClientEvents { ClientEvents(stream: eventStream, client: self) }

    /// A client that has not connected yet. `now` is the wall clock in milliseconds (a parameter for tests).
    public init(
        options: Options = Options(),
        logger: Logger = Logger(label: "parley.client"),
        now: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }
    ) {
        self.options = options
        self.logger = logger
        self.now = now
        (self.eventStream, self.eventOutput) = AsyncStream<ClientEvent>.makeStream()
        (self.rawEvents, self.rawEventInput) = AsyncStream<(UInt64, UInt64, SignalEvent)>.makeStream()
    }

    // MARK: Connecting and logging in

    /// Connects (TCP, then TLS when `tls` is given) and waits for the server's `hello`.
    ///
    /// - Throws: ``ClientError`` ``ClientError/Code/connectionFailed``, ``ClientError/Code/disconnected``,
    ///   ``ClientError/Code/serverViolation`` or a server error; the client is then closed.
    public func connect(host: String, port: Int, tls: ClientTLS? = nil) async throws -> Hello {
        if let stopped { throw stopped }
        guard target == nil else { throw ClientError.notReady("connect may be called once") }
        target = Target(host: host, port: port, tls: tls)
        return try await withCheckedThrowingContinuation { continuation in
            helloWaiter = continuation
            connectionTask = Task { await self.runConnections() }
        }
    }

    /// Logs in on the connection opened by ``connect(host:port:tls:)`` (§3.2) and starts the session: from
    /// now on the client reconnects and logs in again by itself.
    ///
    /// Loads the state file (locking it against a second process) and the contacts file first.
    /// - Throws: ``ClientError`` — ``ClientError/Code/loginRefused`` for `error|bad-login`, the other login
    ///   codes for the other server errors, ``ClientError/Code/deviceInUse`` or
    ///   ``ClientError/Code/stateFile``; the client is then closed.
    public func login(identity: DeviceIdentity, user: SignalName, device: SignalName) async throws -> Welcome {
        if let stopped { throw stopped }
        guard let target, session.credentials == nil else {
            throw ClientError.notReady("connect first, and log in once")
        }
        let state: ClientState
        do {
            state = try loadFiles(account: "\(target.host):\(target.port) \(user) \(device)")
        } catch {
            stop(error)
            throw error
        }
        let credentials = ClientSession.Credentials(identity: identity, user: user, device: device)
        return try await withCheckedThrowingContinuation { continuation in
            welcomeWaiter = continuation
            perform(session.login(credentials, state: state, now: now()))
            processorTask = Task { await self.processEvents() }
        }
    }

    /// Closes the connection after writing what is queued for it, stops reconnecting, and ends ``events``.
    /// Commands still waiting fail with ``ClientError/Code/closed`` but stay in the state file.
    public func close() async {
        let task = connectionTask
        stop(.closed())
        // Give the writer a moment to flush (a final `got`), then cancel whatever is left.
        let flush = Task {
            try? await Task.sleep(for: .seconds(2))
            task?.cancel()
        }
        await task?.value
        flush.cancel()
    }

    /// Stops for good: fails every waiter with `error`, ends the connection and the event streams, unlocks.
    func stop(_ error: ClientError) {
        guard stopped == nil else { return }
        stopped = error
        fail(all: error)
        if let link {
            link.outbox.finish()  // the writer drains it, then the connection closes
        } else {
            connectionTask?.cancel()  // between connections: cut a backoff sleep or a connect attempt short
        }
        processorTask?.cancel()
        rawEventInput.finish()
        eventOutput.finish()
        if let fd = lockDescriptor {
            PrivateFile.unlock(fd)
            lockDescriptor = nil
        }
    }

    /// The identity and names logged in with; nil before ``login(identity:user:device:)``.
    var credentials: ClientSession.Credentials? { session.credentials }

    private func loadFiles(account: String) throws(ClientError) -> ClientState {
        if let path = options.contactsPath {
            pins = try KeyPins.load(from: path)
            if pins == KeyPins(), let legacy = options.legacyContactsPath, FileManager.default.fileExists(atPath: legacy) {
                pins = (try? KeyPins.load(from: legacy)) ?? KeyPins()
            }
            pinsOnDisk = pins
        }
        if let path = options.trustPath, let bytes = try PrivateFile.read(path) {
            trust = try TrustStore.parse(String(decoding: bytes, as: UTF8.self), path: path)
        }
        guard let path = options.statePath else { return ClientState(account: account) }
        lockDescriptor = try PrivateFile.lock(path + ".lock")
        let (state, discarded) = try ClientState.load(from: path, account: account)
        if discarded {
            logger.warning("state file was written for another account; starting afresh", metadata: ["path": "\(path)"])
        }
        return state
    }

    // MARK: Commands

    /// Queues `verb` and waits for the server's answer.
    func perform(_ verb: SignalCommand.Verb) async throws -> ClientSession.CommandOutcome {
        if let stopped { throw stopped }
        // Checked before queueing: a line the server would refuse must never enter the durable queue.
        let probe = SignalCommand(cseq: 999_999_999_999_999_999, timestamp: session.serverTime(now()), verb: verb)
        let length = SignalCodec.format(.command(probe)).utf8.count + 1
        guard length <= options.maxOutboundLine else {
            throw ClientError.tooLarge("a \(verb.name) line of \(length) bytes exceeds \(options.maxOutboundLine)")
        }
        let (command, actions) = try session.enqueue(verb, now: now())
        let cseq = command.cseq
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                commandWaiters[cseq] = continuation
                perform(actions)
            }
        } onCancel: {
            Task { await self.stopWaiting(for: cseq) }
        }
    }

    /// Queues `verb` and returns the `ack`'s result fields; a `nak` throws ``ClientError/Code/refused``.
    func acknowledged(_ verb: SignalCommand.Verb) async throws -> [String] {
        switch try await perform(verb) {
        case .ack(let result): return result
        case .processedEarlier: return []
        case .nak(let code, let reason): throw ClientError.refused(code, reason: reason, verb: verb.name)
        }
    }

    private func stopWaiting(for cseq: UInt64) {
        commandWaiters.removeValue(forKey: cseq)?.resume(throwing: CancellationError())
    }

    /// Marks every event up to `sseq` as handled and tells the server (`got`). ``events`` does this by itself.
    public func acknowledge(upTo sseq: UInt64) {
        perform(session.acknowledge(upTo: sseq))
    }

    // MARK: Performing actions

    /// Carries out what the session machine decided, in order.
    func perform(_ actions: [ClientSession.Action]) {
        for action in actions {
            switch action {
            case .send(let frame):
                link?.outbox.yield(frame)
            case .greeted(let hello):
                helloWaiter?.resume(returning: hello)
                helloWaiter = nil
            case .loggedIn(let welcome):
                everLoggedIn = true
                loggedInEpoch = link?.epoch
                logger.info(
                    "logged in",
                    metadata: [
                        "user": "\(welcome.user)", "device": "\(welcome.device)",
                        "last-cseq": "\(welcome.lastCSeq)",
                    ])
                welcomeWaiter?.resume(returning: welcome)
                welcomeWaiter = nil
            case .finished(let command, let outcome):
                commandWaiters.removeValue(forKey: command.cseq)?.resume(returning: outcome)
            case .deliver(let sseq, let timestamp, let event):
                rawEventInput.yield((sseq, timestamp, event))
            case .persist:
                persist()
            case .close(let error):
                if link?.closeReason == nil { link?.closeReason = error }
                link?.outbox.finish()
            }
        }
    }

    private func persist() {
        guard let path = options.statePath, let state = session.persistent else { return }
        do {
            try state.write(to: path)
        } catch {
            logger.error("could not save the client state", metadata: ["error": "\(error)"])
        }
    }

    /// Writes the trust store (one account's file, under the account's state lock).
    func saveTrust() {
        guard let path = options.trustPath else { return }
        do {
            try PrivateFile.write(Array(trust.render().utf8), to: path)
        } catch {
            logger.error("could not save the trust store", metadata: ["error": "\(error)"])
        }
    }

    func savePins() {
        guard let path = options.contactsPath else { return }
        do {
            // Read, merge, write under a lock: other processes (other accounts in the same key directory)
            // may have pinned keys since we loaded the file.
            let lock = try PrivateFile.waitForLock(path + ".lock")
            defer { PrivateFile.unlock(lock) }
            let disk = (try? KeyPins.load(from: path)) ?? pinsOnDisk
            let merged = pins.merged(onto: disk, since: pinsOnDisk)
            try PrivateFile.write(Array(merged.render().utf8), to: path)
            pins = merged
            pinsOnDisk = merged
        } catch {
            logger.error("could not save the contacts file", metadata: ["error": "\(error)"])
        }
    }

    /// Fails everyone waiting: connect, login and commands.
    func fail(all error: ClientError) {
        helloWaiter?.resume(throwing: error)
        helloWaiter = nil
        welcomeWaiter?.resume(throwing: error)
        welcomeWaiter = nil
        for waiter in commandWaiters.values { waiter.resume(throwing: error) }
        commandWaiters = [:]
    }
}
