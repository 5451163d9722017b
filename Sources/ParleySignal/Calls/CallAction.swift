import ParleyWire

/// What the session layer does after the call book has handled an event, in the order given.
///
/// The order is always: the command's reply, then for each call touched its deliveries and then its log
/// lines, and last the timer change. Deliveries to one device must be queued in the order they appear (an
/// `answer` and the candidates after it, a `merged` and the `ring` after it).
public enum CallAction: Sendable, Hashable {
    /// Answer the command being handled: `ack|<cseq>|ok` or `nak|<cseq>|<code>|<reason>`.
    case reply(CallReply)
    /// Queue this event for the device (whether or not it is connected right now).
    case deliver(to: CallParty, event: SignalEvent)
    /// Write this line to the call log. Log events never carry offers, answers or candidates.
    case log(CallLogEvent)
    /// Set the book's single wake-up timer to this absolute time (ms), replacing any earlier one; when it
    /// goes off, feed ``CallBookEvent/timerFired``.
    case armTimer(at: UInt64)
    /// Nothing is waiting on time any more: drop the wake-up timer.
    case cancelTimer
}

/// One line of the call log: what happened to a call, never what was said in it.
///
/// By construction there is no case that can hold an offer, an answer or a candidate.
public enum CallLogEvent: Sendable, Hashable, CustomStringConvertible {
    /// `caller` started `call` to `callee`.
    case started(call: SignalID, caller: CallParty, callee: SignalName)
    /// `call` rang this many of the callee's devices.
    case rang(call: SignalID, devices: Int)
    /// Counter-call: `call` was dropped in favour of the earlier `into`, which now also rings its caller.
    case merged(call: SignalID, into: SignalID)
    /// `device` of the callee stopped ringing: it was away longer than the disconnect grace.
    case stoppedRinging(call: SignalID, device: SignalName)
    /// `call` was answered on the callee's `device`.
    case answered(call: SignalID, device: SignalName)
    /// `call` is over, for this reason; the book has forgotten it.
    case ended(call: SignalID, reason: SignalEvent.EndReason)

    /// The call the line is about.
    public var call: SignalID {
        switch self {
        case .started(let id, _, _), .rang(let id, _), .merged(let id, _), .stoppedRinging(let id, _),
            .answered(let id, _), .ended(let id, _):
            id
        }
    }

    public var description: String {
        switch self {
        case .started(let id, let caller, let callee): "call \(id) started \(caller) -> \(callee)"
        case .rang(let id, let devices): "call \(id) rang \(devices) device\(devices == 1 ? "" : "s")"
        case .merged(let id, let into): "call \(id) merged into \(into)"
        case .stoppedRinging(let id, let device): "call \(id) stopped ringing on \(device) (away)"
        case .answered(let id, let device): "call \(id) answered on \(device)"
        case .ended(let id, let reason): "call \(id) ended \(reason.rawValue)"
        }
    }
}

/// The call book's timing and limits.
public struct CallBookConfiguration: Sendable, Hashable {
    /// `signal.ring_timeout`: how long a call may ring unanswered, in ms (default 45 s).
    public var ringTimeout: UInt64
    /// `signal.disconnect_grace`: how long a disconnected device keeps its place in a call, in ms (default 10 s).
    public var disconnectGrace: UInt64
    /// How long an ended call's id is remembered, so late commands get `nak|ended` and the id cannot be
    /// reused, in ms (default 60 s).
    public var endedRetention: UInt64
    /// At most this many ended calls are remembered (the oldest are forgotten first).
    public var endedCapacity: Int
    /// Candidates held per device while ringing; more get `nak|too-large`.
    public var maxHeldCandidates: Int

    /// The defaults are those of docs/PROTOCOL.md §3.5 and docs/OPERATIONS.md.
    public init(
        ringTimeout: UInt64 = 45_000, disconnectGrace: UInt64 = 10_000, endedRetention: UInt64 = 60_000,
        endedCapacity: Int = 65_536, maxHeldCandidates: Int = 64
    ) {
        self.ringTimeout = ringTimeout
        self.disconnectGrace = disconnectGrace
        self.endedRetention = endedRetention
        self.endedCapacity = endedCapacity
        self.maxHeldCandidates = maxHeldCandidates
    }
}
