import ParleyCrypto
import ParleyWire

/// One signaling connection, from `hello` to close (docs/PROTOCOL.md §3.1–§3.4), without I/O.
///
/// The transport feeds it inputs — ``connect(now:random:)``, each received line (``receive(_:now:)``),
/// an over-long line (``lineTooLong(now:)``), the timer (``deadlineReached(now:)``), answers of the call
/// layer (``complete(cseq:with:now:)``), a takeover (``supersede(now:)``), a hang-up
/// (``transportClosed(now:)``) — and performs the ``SessionAction``s each returns, in order. After
/// every input it (re)arms one timer for ``deadline``. `now` is the server clock in milliseconds since
/// the epoch; the session never reads a clock.
///
/// States: `idle` → `awaitingLogin(challenge, deadlines)` → `verifying(user, device)` →
/// `admitting(user, device)` → `active(user, device)` → `closed`. Any state may go straight to `closed`;
/// nothing leaves it. `verifying` lasts while the caller checks the login's signature
/// (``SessionAction/verify(_:)``, answered by ``loginVerified(_:now:)``); `admitting` while it looks up
/// the device's last processed cseq after ``SessionAction/authenticated(user:device:)``;
/// ``admit(lastCSeq:now:)`` ends it.
///
/// What outlives the connection is not here: undelivered events are in the device's ``DeviceQueue``,
/// and the device's last processed cseq is in the store.
public struct SessionMachine: Sendable {
    /// The limits this session enforces.
    public let configuration: SessionConfiguration
    private let directory: any AccountDirectory
    var state: State

    enum State: Sendable {
        /// Created; ``connect(now:random:)`` has not been called.
        case idle
        /// `hello` sent; only a keepalive or a `login` is acceptable.
        case awaitingLogin(AwaitingLoginState)
        /// A `login` arrived; its signature is being checked. Still before `welcome`.
        case verifying(VerifyingState)
        /// The login verified; waiting for ``admit(lastCSeq:now:)``. Still before `welcome`.
        case admitting(AdmittingState)
        /// `welcome` sent; commands and `got`s flow.
        case active(ActiveState)
        /// Finished; every input is ignored.
        case closed(SessionCloseReason)
    }

    /// The connection before `welcome`.
    struct AwaitingLoginState: Sendable {
        /// The 32 random bytes of this connection's `hello`; a login must sign exactly these.
        var challenge: SignalBlob
        /// `signal.login_timeout` after connect; not moved by keepalives.
        var loginDeadline: UInt64
        /// `signal.read_timeout` after the last frame.
        var readDeadline: UInt64
        /// An enrolment was asked for on this connection (one per connection; its answer may be pending).
        var enrolled = false
    }

    /// A login whose signature is being checked.
    struct VerifyingState: Sendable {
        var user: SignalName
        var device: SignalName
        /// The login's timestamp, judged against ``receivedAt`` once the signature holds.
        var timestamp: UInt64
        /// Server time when the login arrived.
        var receivedAt: UInt64
        /// `signal.read_timeout` after the last frame.
        var readDeadline: UInt64
    }

    /// A verified login whose `welcome` waits for the device's last cseq.
    struct AdmittingState: Sendable {
        var user: SignalName
        var device: SignalName
        /// `signal.read_timeout` after the last frame.
        var readDeadline: UInt64
    }

    /// A logged-in connection.
    struct ActiveState: Sendable {
        var user: SignalName
        var device: SignalName
        /// Highest cseq processed for the device: the store's value at login, then every cseq this
        /// session executed or refused as stale.
        var lastCSeq: UInt64
        /// Handed out with `execute` and not yet completed.
        var inFlight: Set<UInt64> = []
        /// Recent answers, for duplicates.
        var answers: RememberedAnswers
        /// `signal.read_timeout` after the last frame.
        var readDeadline: UInt64
    }

    /// A session for one new connection; `directory` answers who may log in and with which key.
    public init(configuration: SessionConfiguration = SessionConfiguration(), directory: any AccountDirectory) {
        self.configuration = configuration
        self.directory = directory
        self.state = .idle
    }

    // MARK: Observers

    /// When the transport must call ``deadlineReached(now:)`` (login or read timeout); nil once closed
    /// or before ``connect(now:random:)``. Calling earlier or more often is harmless.
    public var deadline: UInt64? {
        switch state {
        case .idle, .closed: nil
        case .awaitingLogin(let s): min(s.loginDeadline, s.readDeadline)
        case .verifying(let s): s.readDeadline
        case .admitting(let s): s.readDeadline
        case .active(let s): s.readDeadline
        }
    }

    /// The logged-in user and device; nil before `welcome` and after close.
    public var identity: (user: SignalName, device: SignalName)? {
        switch state {
        case .idle, .awaitingLogin, .verifying, .admitting, .closed: nil
        case .active(let s): (s.user, s.device)
        }
    }

    /// Why the session ended; nil while it is open.
    public var closeReason: SessionCloseReason? {
        switch state {
        case .idle, .awaitingLogin, .verifying, .admitting, .active: nil
        case .closed(let reason): reason
        }
    }

    // MARK: Inputs

    /// The connection is up: sends `hello|1|<challenge>|<now>` with 32 fresh bytes from `random` and
    /// starts the login and read deadlines.
    public mutating func connect(now: UInt64, random: inout some RandomNumberGenerator) -> [SessionAction] {
        switch state {
        // The only way out of idle.
        case .idle:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(32)
            for _ in 0..<4 {
                let word = random.next()
                for shift in stride(from: 0, to: 64, by: 8) {
                    bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
                }
            }
            let challenge = SignalBlob(bytes: bytes)
            state = .awaitingLogin(
                AwaitingLoginState(
                    challenge: challenge,
                    loginDeadline: now.adding(configuration.loginTimeout),
                    readDeadline: now.adding(configuration.readTimeout)))
            return [.send(.hello(version: 1, challenge: challenge, serverTime: now))]
        // A second connect is a transport bug.
        case .awaitingLogin, .verifying, .admitting, .active, .closed:
            preconditionFailure("SessionMachine.connect called twice")
        }
    }

    /// ``connect(now:random:)`` with the system's secure random source.
    public mutating func connect(now: UInt64) -> [SessionAction] {
        var random = SystemRandomNumberGenerator()
        return connect(now: now, random: &random)
    }

    /// One received frame: a line without its LF (and without a CR before it), or one WebSocket text
    /// message. The empty line is a keepalive. Any frame, valid or not, counts as activity for the read
    /// deadline.
    public mutating func receive(_ line: some StringProtocol, now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.receive before connect")
        case .closed: return []
        case .awaitingLogin, .verifying, .admitting, .active: break
        }
        let frame: ClientFrame
        do {
            frame = try SignalCodec.parseClient(Substring(line))
        } catch {
            // §3.1: a frame that breaks the rules closes the connection, before or after login.
            return refuse(.protocolError, error.reason)
        }
        switch (state, frame) {
        // Unreachable: handled above.
        case (.idle, _), (.closed, _):
            return []
        // A keepalive before login moves only the read deadline; the login deadline stands.
        case (.awaitingLogin(var s), .keepalive):
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .awaitingLogin(s)
            return []
        // The login: verified against this connection's challenge.
        case (.awaitingLogin(let s), .login(let user, let device, let timestamp, let signature)):
            return login(
                user: user, device: device, timestamp: timestamp, signature: signature, challenge: s.challenge,
                now: now)
        // §3.8: one enrolment per connection, before login; the hub answers with ``enrolmentAnswered(_:now:)``.
        case (.awaitingLogin(var s), .enrol(let request)):
            guard !s.enrolled else { return refuse(.protocolError, "one enrolment per connection") }
            s.enrolled = true
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .awaitingLogin(s)
            return [.enrol(request)]
        case (.verifying, .enrol), (.admitting, .enrol), (.active, .enrol):
            return refuse(.protocolError, "enrolment is before login only")
        // §3.2: anything else before `welcome`.
        case (.awaitingLogin, .got), (.awaitingLogin, .command):
            return refuse(.notLoggedIn, "log in first")
        // Waiting for the signature check: a keepalive is still activity.
        case (.verifying(var s), .keepalive):
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .verifying(s)
            return []
        // Waiting for the store: a keepalive is still activity.
        case (.admitting(var s), .keepalive):
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .admitting(s)
            return []
        // The connection's challenge has been used.
        case (.verifying, .login), (.admitting, .login):
            return refuse(.replay, "already logged in on this connection")
        // Still before `welcome`: a client must wait for its `last-cseq` before sending commands.
        case (.verifying, .got), (.verifying, .command), (.admitting, .got), (.admitting, .command):
            return refuse(.notLoggedIn, "wait for welcome")
        // Keepalive: only the read deadline moves.
        case (.active(var s), .keepalive):
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .active(s)
            return []
        // §3.2: each challenge is used at most once, so a second login is a replay.
        case (.active, .login):
            return refuse(.replay, "already logged in on this connection")
        // Cumulative event acknowledgement; the device queue decides what it covers.
        case (.active(var s), .got(let sseq)):
            s.readDeadline = now.adding(configuration.readTimeout)
            state = .active(s)
            return [.acknowledge(sseq: sseq)]
        // A command: duplicate, stale, or handed out.
        case (.active(var s), .command(let command)):
            // Out of the enum first, so `s` is the only owner of its collections and changes them in place.
            state = .idle
            s.readDeadline = now.adding(configuration.readTimeout)
            let actions = handle(command, in: &s, now: now)
            state = .active(s)
            return actions
        }
    }

    /// The transport saw a line longer than `signal.max_line`: `error|too-long` and close.
    public mutating func lineTooLong(now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.lineTooLong before connect")
        case .closed: return []
        case .awaitingLogin, .verifying, .admitting, .active: return refuse(.tooLong, "line longer than signal.max_line")
        }
    }

    /// The timer armed for ``deadline`` fired. Before the deadline this does nothing (a stale timer).
    public mutating func deadlineReached(now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.deadlineReached before connect")
        case .closed: return []
        // §3.2 `timeout`: no valid login in time. A silent client before login gets the same answer.
        case .awaitingLogin(let s):
            if now >= s.loginDeadline {
                return refuse(.timeout, "no login within \(configuration.loginTimeout / 1000) s")
            }
            if now >= s.readDeadline {
                return refuse(.timeout, "nothing received for \(configuration.readTimeout / 1000) s")
            }
            return []
        // §3.1 read timeout; the only one left once a login arrived in time (while its signature is checked,
        // while the store is asked, and after `welcome`): ``deadline`` is the read deadline in these states.
        case .verifying, .admitting, .active:
            if let readDeadline = deadline, now >= readDeadline {
                return refuse(.timeout, "nothing received for \(configuration.readTimeout / 1000) s")
            }
            return []
        }
    }

    /// A newer login of the same device took this session's place in ``Presence``: close without an
    /// error frame (§3.2 has no code for it; the old connection is usually dead anyway).
    public mutating func supersede(now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.supersede before connect")
        case .closed: return []
        case .awaitingLogin, .verifying, .admitting:
            state = .closed(.superseded)
            return [.close]
        case .active(let s):
            state = .closed(.superseded)
            return [.offline(user: s.user, device: s.device), .close]
        }
    }

    /// The peer closed the connection or it failed. Nothing more can be sent.
    public mutating func transportClosed(now: UInt64) -> [SessionAction] {
        switch state {
        case .idle, .awaitingLogin, .verifying, .admitting:
            state = .closed(.transportClosed)
            return []
        case .closed: return []
        case .active(let s):
            state = .closed(.transportClosed)
            return [.offline(user: s.user, device: s.device)]
        }
    }

    // MARK: Login

    /// A `login` against this connection's challenge: hands out the signature check. Every login costs
    /// one, whether the device exists or not (``LoginVerification``).
    /// The hub's answer to an ``SessionAction/enrol(_:)``: sent while the connection still awaits its login
    /// (after which it may log in, e.g. as the device it just registered); nothing once it moved on or closed.
    public mutating func enrolmentAnswered(_ answer: ServerFrame, now: UInt64) -> [SessionAction] {
        guard case .awaitingLogin = state else { return [] }
        return [.send(answer)]
    }

    private mutating func login(
        user: SignalName, device: SignalName, timestamp: UInt64, signature: SignalBlob, challenge: SignalBlob,
        now: UInt64
    ) -> [SessionAction] {
        let signed = SignalCodec.loginSigningInput(
            challenge: challenge, user: user, device: device, timestamp: timestamp)
        state = .verifying(
            VerifyingState(
                user: user, device: device, timestamp: timestamp, receivedAt: now,
                readDeadline: now.adding(configuration.readTimeout)))
        return [
            .verify(
                LoginVerification(
                    device: directory.device(user: user, device: device), message: signed, signature: signature.bytes))
        ]
    }

    /// The caller's answer to ``SessionAction/verify(_:)``: whether the signature holds.
    ///
    /// §3.2: one answer, `bad-login`, for an unknown user, an unknown or revoked device and a bad
    /// signature, so a probe learns nothing. The timestamp is judged only for a valid signature (against
    /// the time the login arrived, not the time the check finished), so `stale` tells the key's holder
    /// that its clock is off. Does nothing if the session closed meanwhile.
    public mutating func loginVerified(_ valid: Bool, now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.loginVerified before connect")
        // Closed while the check ran (hang-up, timeout, takeover): the answer has nowhere to go.
        case .closed: return []
        // Only a login under check is answered.
        case .awaitingLogin, .admitting, .active: preconditionFailure("SessionMachine.loginVerified without a login")
        // The one way into admitting.
        case .verifying(let s):
            guard valid else { return refuse(.badLogin, "login refused") }
            guard configuration.isFresh(s.timestamp, now: s.receivedAt) else {
                return refuse(.stale, "timestamp more than \(configuration.timestampWindow / 1000) s from server time")
            }
            state = .admitting(AdmittingState(user: s.user, device: s.device, readDeadline: s.readDeadline))
            return [.authenticated(user: s.user, device: s.device)]
        }
    }

    /// The caller's answer to ``SessionAction/authenticated(user:device:)``: the highest cseq the server
    /// has processed for the device (0 for none). Sends `welcome` and puts the device online. Does nothing
    /// if the session closed meanwhile.
    public mutating func admit(lastCSeq: UInt64, now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.admit before connect")
        // Closed while the caller was looking: the answer has nowhere to go.
        case .closed: return []
        // Only a verified login is admitted.
        case .awaitingLogin, .verifying, .active: preconditionFailure("SessionMachine.admit without a verified login")
        // The one way into active.
        case .admitting(let s):
            state = .active(
                ActiveState(
                    user: s.user, device: s.device, lastCSeq: lastCSeq,
                    answers: RememberedAnswers(capacity: configuration.rememberedAnswers), readDeadline: s.readDeadline)
            )
            return [
                .send(.welcome(user: s.user, device: s.device, lastCSeq: lastCSeq, serverTime: now)),
                .online(user: s.user, device: s.device),
            ]
        }
    }

    // MARK: Refusals

    /// Every fatal answer goes through here: `error|<code>|<reason>`, `offline` if the device was logged
    /// in, then close.
    private mutating func refuse(_ code: ServerFrame.ErrorCode, _ reason: String) -> [SessionAction] {
        var actions: [SessionAction] = [.send(.error(code: code, reason: Self.wireReason(reason)))]
        if case .active(let s) = state { actions.append(.offline(user: s.user, device: s.device)) }
        state = .closed(.refused(code))
        actions.append(.close)
        return actions
    }
}

extension SessionMachine {
    /// A reason as it will appear on the wire, so the frame in the action is the frame sent: parse errors
    /// quote the peer's bytes, and a reason may not hold `|`, CR or LF (§3.1). Short, too.
    static func wireReason(_ reason: String) -> String {
        String(
            String.UnicodeScalarView(
                reason.unicodeScalars.prefix(120).map {
                    $0 == "|" || $0 == "\r" || $0 == "\n" ? " " : $0
                }))
    }
}

extension UInt64 {
    /// Addition that stops at the maximum instead of trapping (a deadline "never").
    fileprivate func adding(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

/// The limits a signaling session enforces (docs/PROTOCOL.md §3.1–§3.3). All durations are in
/// milliseconds, like every clock value the session machine takes.
public struct SessionConfiguration: Sendable, Hashable {
    /// `signal.timestamp_window`: how far a login or command timestamp may be from the server's clock,
    /// in either direction, before it is `stale`. Default 30 s.
    public var timestampWindow: UInt64
    /// `signal.login_timeout`: time from connect to a valid `login`. Default 10 s.
    public var loginTimeout: UInt64
    /// `signal.read_timeout`: longest silence (not even a keepalive) before the server closes. Default 60 s.
    public var readTimeout: UInt64
    /// How many answered commands a session remembers, so that a duplicate gets its original answer
    /// again. Older duplicates get a bare `ack|<cseq>|ok`. Default 64.
    public var rememberedAnswers: Int

    /// The defaults of docs/PROTOCOL.md §3.1–§3.2.
    public init(
        timestampWindow: UInt64 = 30_000,
        loginTimeout: UInt64 = 10_000,
        readTimeout: UInt64 = 60_000,
        rememberedAnswers: Int = 64
    ) {
        precondition(rememberedAnswers >= 0, "rememberedAnswers must not be negative")
        self.timestampWindow = timestampWindow
        self.loginTimeout = loginTimeout
        self.readTimeout = readTimeout
        self.rememberedAnswers = rememberedAnswers
    }

    /// True when `timestamp` is at most ``timestampWindow`` away from `now`, in either direction.
    func isFresh(_ timestamp: UInt64, now: UInt64) -> Bool {
        (timestamp > now ? timestamp - now : now - timestamp) <= timestampWindow
    }
}
