import ParleyWire

/// One logged-in device taking part in calls: a user and one of that user's devices.
///
/// The call machines address every event to a `CallParty` and learn about connections per party;
/// the session layer maps it to the device's acknowledged event queue.
public struct CallParty: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The account.
    public var user: SignalName
    /// The account's device.
    public var device: SignalName

    /// `device` of `user`.
    public init(user: SignalName, device: SignalName) {
        self.user = user
        self.device = device
    }

    /// `user/device`, as in the logs.
    public var description: String { "\(user)/\(device)" }

    /// By user, then device (the order in which a call's devices are told things).
    public static func < (a: CallParty, b: CallParty) -> Bool {
        (a.user, a.device) < (b.user, b.device)
    }
}

/// A call command of docs/PROTOCOL.md §3.3, as the call book takes it from the session layer.
///
/// It mirrors the call verbs of ``SignalCommand/Verb``; `call` additionally carries the callee's
/// devices that are online when the command is processed, because presence is the session's
/// business, not the calls'. Whether the callee is a known user is also the session's to answer
/// (`nak|unknown-user`) before the command reaches the book.
public enum CallCommand: Sendable, Hashable {
    /// Start call `call` to `callee` with `offer`, ringing `onlineDevices` (the callee's devices online now).
    case call(SignalID, callee: SignalName, offer: SignalBlob, onlineDevices: [SignalName])
    /// Caller: stop the call before it is answered (after the answer: the same as `end`).
    case cancel(SignalID)
    /// Callee device: hold this answer while ringing.
    case prepare(SignalID, answer: SignalBlob)
    /// Either party: a connectivity candidate, held until the answer and relayed after it.
    case candidate(SignalID, candidate: SignalBlob)
    /// Callee device: take the call with this answer, or with the prepared one when nil.
    case accept(SignalID, answer: SignalBlob?)
    /// Callee device: decline the call for every device.
    case reject(SignalID)
    /// Callee device: this device is busy.
    case busy(SignalID)
    /// Either party: hang up an answered call.
    case end(SignalID)

    /// The call the command is about.
    public var call: SignalID {
        switch self {
        case .call(let id, _, _, _), .cancel(let id), .prepare(let id, _), .candidate(let id, _),
            .accept(let id, _), .reject(let id), .busy(let id), .end(let id):
            id
        }
    }

    /// The call command for a parsed verb, or nil for verbs that are not about calls (`keys`, `msg`).
    ///
    /// `onlineDevicesOf` is asked only for `call`, with the callee's name.
    public init?(_ verb: SignalCommand.Verb, onlineDevicesOf: (SignalName) -> [SignalName]) {
        switch verb {
        case .keys, .message, .lists, .publish, .linkRequest:
            return nil
        case .call(let id, let callee, let offer):
            self = .call(id, callee: callee, offer: offer, onlineDevices: onlineDevicesOf(callee))
        case .cancel(let id):
            self = .cancel(id)
        case .prepare(let id, let answer):
            self = .prepare(id, answer: answer)
        case .candidate(let id, let candidate):
            self = .candidate(id, candidate: candidate)
        case .accept(let id, let answer):
            self = .accept(id, answer: answer)
        case .reject(let id):
            self = .reject(id)
        case .busy(let id):
            self = .busy(id)
        case .end(let id):
            self = .end(id)
        }
    }
}

/// Everything that can happen to the calls, as fed to ``CallBook/handle(_:now:)``.
public enum CallBookEvent: Sendable, Hashable {
    /// A logged-in device sent a call command; the actions start with its ``CallAction/reply(_:)``.
    case command(CallCommand, from: CallParty)
    /// A device's last connection closed: the disconnect grace starts now for every call it is in.
    case deviceDisconnected(CallParty)
    /// A device logged in again (feed every login; for a device in no call it does nothing).
    case deviceReconnected(CallParty)
    /// The timer armed by ``CallAction/armTimer(at:)`` went off (early or late firing is harmless).
    case timerFired
}
