import ParleyWire

/// The answer to one call command (docs/PROTOCOL.md §3.4).
public enum CallReply: Sendable, Hashable {
    /// `ack|<cseq>|ok`: the command was processed.
    case ack
    /// `nak|<cseq>|<code>|<reason>`: the command was processed and refused; the client must not resend it.
    case nak(ServerFrame.NakCode, reason: String)
}

/// Why a call command is refused: every `nak` the call book sends, mapped to its wire code and reason in
/// one place (docs/PROTOCOL.md §3.4).
enum CallRefusal: Sendable, Hashable {
    /// The id names no call this device's user is part of (or none at all: a stranger learns nothing).
    case unknownCall
    /// The call exists for this device's user, but this device is not in it.
    case notPartOfCall
    /// Another device of the callee accepted the call.
    case answeredElsewhere
    /// The call is over, for this reason.
    case ended(SignalEvent.EndReason)
    /// `call` to one's own user.
    case callToSelf
    /// `call` with the id of a live or recently ended call.
    case idInUse
    /// A callee verb (`accept`, `prepare`, `reject`, `busy`) from anyone but a called device.
    case calleeOnly(CalleeVerb)
    /// `cancel` from anyone but the caller.
    case callerOnlyCancels
    /// `end` before the answer: nothing to hang up yet.
    case notAnswered
    /// A callee verb from the device that already accepted.
    case alreadyAccepted
    /// More held candidates than the configured limit.
    case tooManyCandidates(limit: Int)
    /// `accept` with no answer and none prepared.
    case noAnswer

    /// The verbs only a called device may send.
    enum CalleeVerb: String, Sendable, Hashable {
        case accept, prepare, reject, busy
    }

    /// The `nak` for this refusal.
    var reply: CallReply {
        switch self {
        case .unknownCall:
            .nak(.unknownCall, reason: "no such call")
        case .notPartOfCall:
            .nak(.notAllowed, reason: "this device is not part of the call")
        case .answeredElsewhere:
            .nak(.answeredElsewhere, reason: "the call was answered on another device")
        case .ended(let reason):
            .nak(.ended, reason: reason.rawValue)
        case .callToSelf:
            .nak(.notAllowed, reason: "a call to oneself")
        case .idInUse:
            .nak(.notAllowed, reason: "call id already in use")
        case .calleeOnly(let verb):
            .nak(.notAllowed, reason: "only a called device can send \(verb.rawValue)")
        case .callerOnlyCancels:
            .nak(.notAllowed, reason: "only the caller can cancel")
        case .notAnswered:
            .nak(.notAllowed, reason: "the call is not answered yet")
        case .alreadyAccepted:
            .nak(.notAllowed, reason: "this device already accepted the call")
        case .tooManyCandidates(let limit):
            .nak(.tooLarge, reason: "more than \(limit) candidates before the answer")
        case .noAnswer:
            .nak(.badArgument, reason: "accept without an answer and none prepared")
        }
    }
}
