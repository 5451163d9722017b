import ParleyWire

/// What the connection (and the hub behind it) must do after an input to a ``SessionMachine``.
/// Actions come in order and are carried out in that order: a ``send(_:)`` before ``close`` is written
/// before the connection closes.
///
/// The session never touches the device queue, the presence registry or the call layer itself; it names
/// the step and the hub performs it against ``DeviceQueue`` and ``Presence``. A typical hub:
///
/// ```swift
/// for action in session.receive(line, now: now) {
///     switch action {
///     case .send(let frame): connection.write(SignalCodec.format(frame))
///     case .verify(let check): perform(session.loginVerified(check.verify(), now: clock.now))
///     case .authenticated(let user, let device):
///         let last = try await store.lastProcessedCSeq(user: user.text, device: device.text)
///         perform(session.admit(lastCSeq: UInt64(last), now: clock.now))
///     case .online(let user, let device):
///         if let old = presence.register(user: user, device: device, connection: id) {
///             perform(sessions[old]!.supersede(now: now), on: old)
///         }
///         for frame in queues[user, device].unacknowledged { connection.write(SignalCodec.format(frame)) }
///     case .execute(let command): calls.execute(command, from: user, device)  // later: session.complete(…)
///     case .acknowledge(let sseq): queues[user, device].acknowledge(upTo: sseq)
///     case .offline(let user, let device): presence.remove(user: user, device: device, connection: id)
///     case .close: connection.close()
///     }
/// }
/// timer.arm(at: session.deadline)
/// ```
public enum SessionAction: Sendable, Hashable {
    /// Write this frame: one line on TCP (`SignalCodec.format(_:)` plus LF), one text
    /// message on WebSocket.
    case send(ServerFrame)
    /// A `login` arrived: run the signature check (``LoginVerification/verify()``, anywhere) and answer
    /// with ``SessionMachine/loginVerified(_:now:)``.
    case verify(LoginVerification)
    /// The `login` verified (signature, timestamp). Look up the highest cseq processed for the device
    /// (0 for none) and call ``SessionMachine/admit(lastCSeq:now:)``; the `welcome` carries it.
    case authenticated(user: SignalName, device: SignalName)
    /// The device has logged in on this connection; the `welcome` is the frame just before. Register
    /// the connection in ``Presence`` (closing, with ``SessionMachine/supersede(now:)``, the session it
    /// replaces), then send every unacknowledged event of the device's ``DeviceQueue``, in order.
    case online(user: SignalName, device: SignalName)
    /// Give this command to the call or message layer. Its cseq now counts as processed: record it in the
    /// store (the next `welcome`'s `last-cseq` must cover it). Answer it later with
    /// ``SessionMachine/complete(cseq:with:now:)``.
    case execute(SignalCommand)
    /// The device acknowledged every event up to and including `sseq` (`got|<sseq>`): pass it to
    /// ``DeviceQueue/acknowledge(upTo:)``.
    case acknowledge(sseq: UInt64)
    /// The device is no longer logged in on this connection: remove it from ``Presence`` (a no-op if a
    /// newer connection of the device already holds its place) and tell the call layer, whose disconnect
    /// grace starts now.
    case offline(user: SignalName, device: SignalName)
    /// Before login: a `register` or `link` request (docs/PROTOCOL.md §3.8). Carry it out against the store
    /// and answer with ``SessionMachine/enrolmentAnswered(_:now:)`` (`enrolled` or `refused`).
    case enrol(Enrolment)
    /// Close the connection once the frames before this action are written. Nothing follows it.
    case close
}

/// Why a session ended, for logs and metrics. ``SessionMachine/closeReason`` is nil while it is open.
public enum SessionCloseReason: Sendable, Hashable {
    /// The server refused the connection with `error|<code>|…` (login failure, protocol error, timeouts).
    case refused(ServerFrame.ErrorCode)
    /// A newer login of the same device took over.
    case superseded
    /// The peer closed the connection or it failed.
    case transportClosed
}

/// How the call or message layer answered an executed command (docs/PROTOCOL.md §3.4). Handed back to
/// the session with ``SessionMachine/complete(cseq:with:now:)``.
public enum CommandAnswer: Sendable, Hashable {
    /// `ack|<cseq>|ok[|<result fields>]`: processed (durably, for `msg`).
    case ack(result: [String])
    /// `nak|<cseq>|<code>|<reason>`: processed and refused; the client must not resend it.
    case nak(code: ServerFrame.NakCode, reason: String)

    /// A plain `ack|<cseq>|ok`.
    public static let ok = CommandAnswer.ack(result: [])

    /// The frame that carries this answer for `cseq`.
    public func frame(cseq: UInt64) -> ServerFrame {
        switch self {
        case .ack(let result): .ack(cseq: cseq, result: result)
        case .nak(let code, let reason): .nak(cseq: cseq, code: code, reason: reason)
        }
    }
}
