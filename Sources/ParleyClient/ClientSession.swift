import ParleyCrypto
import ParleyWire

/// The client side of one device's signaling session (docs/PROTOCOL.md §3.2–§3.4), without I/O: it takes
/// lines and calls and returns what to do. The ``ParleyClient`` actor performs the actions; tests drive the
/// machine directly.
///
/// It spans connections: the command queue, the event dedupe mark and the credentials survive a reconnect,
/// while the login handshake restarts with each ``connectionOpened()``.
struct ClientSession: Sendable {
    /// Who logs in.
    struct Credentials: Sendable {
        var identity: DeviceIdentity
        var user: SignalName
        var device: SignalName
    }

    /// Where the current connection is.
    enum State: Sendable, Equatable {
        /// No connection.
        case disconnected
        /// Connected; the server speaks first.
        case awaitingHello
        /// `hello` arrived on the first connection before the application called `login`.
        case awaitingCredentials(challenge: SignalBlob)
        /// `login` sent.
        case awaitingWelcome
        /// Logged in: commands flow, events arrive.
        case active(Welcome)
    }

    /// How the server answered one command.
    enum CommandOutcome: Sendable, Equatable {
        /// `ack|<cseq>|ok|<result…>`.
        case ack([String])
        /// `nak|<cseq>|<code>|<reason>`.
        case nak(ServerFrame.NakCode, String)
        /// Dropped at `welcome`: the server processed it on an earlier connection; its answer was lost.
        case processedEarlier
    }

    /// What the driver must do.
    enum Action: Sendable, Equatable {
        /// Write this frame.
        case send(ClientFrame)
        /// Report the first connection's `hello` to whoever waits in `connect`.
        case greeted(Hello)
        /// Logged in on this connection.
        case loggedIn(Welcome)
        /// A command is answered (or known processed); hand the outcome to whoever waits for it.
        case finished(PendingCommand, CommandOutcome)
        /// A new event for the application.
        case deliver(sseq: UInt64, timestamp: UInt64, event: SignalEvent)
        /// ``persistent`` changed: write it to disk before anything else leaves the process.
        case persist
        /// Close this connection because of `error`.
        case close(ClientError)
    }

    private(set) var state: State = .disconnected
    private(set) var credentials: Credentials?
    /// What is stored in the state file; nil until ``login(_:state:now:)``.
    private(set) var persistent: ClientState?
    /// The highest sseq handed to the application in this process (it may not have acknowledged it yet).
    private(set) var lastDelivered: UInt64 = 0
    /// An acknowledgement made while disconnected, to send after the next `welcome`.
    private var acknowledgementUnsent = false
    /// Server clock minus local clock, from the latest `hello`; timestamps we send are on the server's clock.
    private(set) var clockOffset: Int64 = 0

    // MARK: Connection lifecycle

    /// A new connection is up; the server will greet.
    mutating func connectionOpened() {
        state = .awaitingHello
    }

    /// The connection is gone.
    mutating func connectionClosed() {
        state = .disconnected
    }

    /// The application's credentials and the loaded state. Logs in at once if `hello` already arrived.
    mutating func login(_ credentials: Credentials, state persisted: ClientState, now: UInt64) -> [Action] {
        self.credentials = credentials
        self.persistent = persisted
        lastDelivered = max(lastDelivered, persisted.lastAcknowledgedSSeq)
        guard case .awaitingCredentials(let challenge) = state else { return [] }
        return sendLogin(challenge: challenge, now: now)
    }

    // MARK: Inbound

    /// One line from the server's framer.
    mutating func receive(_ line: ClientLine, now: UInt64) -> [Action] {
        switch line {
        case .tooLong:
            return [.close(.violation("a line longer than the client's limit"))]
        case .line(let text):
            do {
                return receive(try SignalCodec.parseServer(Substring(text)), now: now)
            } catch {
                return [.close(.violation(error.reason))]
            }
        }
    }

    /// One parsed frame from the server.
    mutating func receive(_ frame: ServerFrame, now: UInt64) -> [Action] {
        switch (state, frame) {
        // Keepalives are ignored everywhere (§3.1).
        case (_, .keepalive):
            return []
        // A fatal error ends this connection whatever the state (§3.2, §3.4).
        case (_, .error(let code, let reason)):
            return [.close(.server(code, reason: reason))]
        // Nothing should arrive without a connection; a late line from a closed one is dropped.
        case (.disconnected, _):
            return []
        // This session never enrols (``Enrolment`` runs on a connection of its own): an answer to one is a lie.
        case (_, .enrolled), (_, .refused):
            return [.close(.violation("an enrolment answer on a session that did not enrol"))]
        // The greeting: remember the server clock, then log in (or wait for credentials on the first connection).
        case (.awaitingHello, .hello(let version, let challenge, let serverTime)):
            guard version == 1 else { return [.close(.violation("unsupported protocol version \(version)"))] }
            guard challenge.byteCount == 32 else { return [.close(.violation("hello challenge is not 32 bytes"))] }
            clockOffset = Int64(bitPattern: serverTime) &- Int64(bitPattern: now)
            guard credentials != nil else {
                state = .awaitingCredentials(challenge: challenge)
                return [.greeted(Hello(version: version, serverTime: serverTime))]
            }
            return sendLogin(challenge: challenge, now: now)
        case (.awaitingHello, .welcome), (.awaitingHello, .ack), (.awaitingHello, .nak), (.awaitingHello, .event):
            return [.close(.violation("expected hello"))]
        // Before the application logs in, the server has nothing to say but errors.
        case (.awaitingCredentials, .hello), (.awaitingCredentials, .welcome), (.awaitingCredentials, .ack),
            (.awaitingCredentials, .nak), (.awaitingCredentials, .event):
            return [.close(.violation("frame before login"))]
        // Logged in: drop what the server already processed, resend the rest with fresh timestamps.
        case (.awaitingWelcome, .welcome(let user, let device, let lastCSeq, let serverTime)):
            return welcome(user: user, device: device, lastCSeq: lastCSeq, serverTime: serverTime, now: now)
        case (.awaitingWelcome, .hello), (.awaitingWelcome, .ack), (.awaitingWelcome, .nak), (.awaitingWelcome, .event):
            return [.close(.violation("expected welcome"))]
        // Answers: match by cseq. An answer to nothing we sent (a server resending answers) is ignored.
        case (.active, .ack(let cseq, let result)):
            return finish(cseq, .ack(result))
        case (.active, .nak(let cseq, let code, let reason)):
            return finish(cseq, .nak(code, reason))
        // Events: new ones go to the application; repeats of acknowledged ones are acknowledged again so the
        // server can drop them; repeats the application has not acknowledged yet wait for it.
        case (.active, .event(let sseq, let timestamp, let event)):
            guard sseq > lastDelivered else {
                let acknowledged = persistent?.lastAcknowledgedSSeq ?? 0
                return sseq <= acknowledged ? [.send(.got(sseq: acknowledged))] : []
            }
            lastDelivered = sseq
            return [.deliver(sseq: sseq, timestamp: timestamp, event: event)]
        case (.active, .hello), (.active, .welcome):
            return [.close(.violation("handshake frame after login"))]
        }
    }

    // MARK: Outbound

    /// Queues a command; sends it at once when logged in. Throws before ``login(_:state:now:)``.
    mutating func enqueue(_ verb: SignalCommand.Verb, now: UInt64) throws(ClientError) -> (PendingCommand, [Action]) {
        guard var persistent else { throw .notReady("log in before sending commands") }
        let command = persistent.queue.enqueue(verb)
        self.persistent = persistent
        guard case .active = state else { return (command, [.persist]) }
        return (command, [.persist, .send(command.frame(timestamp: serverTime(now)))])
    }

    /// The application is done with every event up to `sseq`: acknowledge cumulatively.
    mutating func acknowledge(upTo sseq: UInt64) -> [Action] {
        guard var persistent, sseq > persistent.lastAcknowledgedSSeq, sseq <= lastDelivered else { return [] }
        persistent.lastAcknowledgedSSeq = sseq
        self.persistent = persistent
        guard case .active = state else {
            acknowledgementUnsent = true
            return [.persist]
        }
        return [.persist, .send(.got(sseq: sseq))]
    }

    /// `now` (local milliseconds) on the server's clock.
    func serverTime(_ now: UInt64) -> UInt64 {
        UInt64(bitPattern: max(0, Int64(bitPattern: now) &+ clockOffset))
    }

    // MARK: Steps

    private mutating func sendLogin(challenge: SignalBlob, now: UInt64) -> [Action] {
        guard let credentials else { preconditionFailure("sendLogin without credentials") }
        let ts = serverTime(now)
        let input = SignalCodec.loginSigningInput(
            challenge: challenge, user: credentials.user, device: credentials.device, timestamp: ts)
        guard let signature = try? credentials.identity.signingKey.signature(for: input) else {
            return [.close(.closed())]
        }
        state = .awaitingWelcome
        return [
            .send(
                .login(
                    user: credentials.user, device: credentials.device, timestamp: ts,
                    signature: SignalBlob(bytes: signature)))
        ]
    }

    private mutating func welcome(
        user: SignalName, device: SignalName, lastCSeq: UInt64, serverTime: UInt64, now: UInt64
    ) -> [Action] {
        guard let credentials, var persistent, user == credentials.user, device == credentials.device else {
            return [.close(.violation("welcome for another user or device"))]
        }
        clockOffset = Int64(bitPattern: serverTime) &- Int64(bitPattern: now)
        let welcome = Welcome(user: user, device: device, lastCSeq: lastCSeq, serverTime: serverTime)
        state = .active(welcome)
        let (processed, resend) = persistent.queue.resume(lastCSeq: lastCSeq)
        self.persistent = persistent
        let ts = self.serverTime(now)
        var actions: [Action] = [.persist, .loggedIn(welcome)]
        if acknowledgementUnsent {
            acknowledgementUnsent = false
            actions.append(.send(.got(sseq: persistent.lastAcknowledgedSSeq)))
        }
        return actions + processed.map { .finished($0, .processedEarlier) }
            + resend.map { .send($0.frame(timestamp: ts)) }
    }

    private mutating func finish(_ cseq: UInt64, _ outcome: CommandOutcome) -> [Action] {
        guard var persistent, let command = persistent.queue.complete(cseq) else { return [] }
        self.persistent = persistent
        return [.persist, .finished(command, outcome)]
    }
}
