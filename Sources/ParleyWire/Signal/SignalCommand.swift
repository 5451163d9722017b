/// A client command after login (docs/PROTOCOL.md §3.3): `<verb>|<cseq>|<ts>|<arguments…>`.
public struct SignalCommand: Sendable, Hashable {
    /// The device's command sequence number, strictly increasing across connections.
    public var cseq: UInt64
    /// Client clock, milliseconds since the epoch.
    public var timestamp: UInt64
    public var verb: Verb

    public init(cseq: UInt64, timestamp: UInt64, verb: Verb) {
        self.cseq = cseq
        self.timestamp = timestamp
        self.verb = verb
    }

    public enum Verb: Sendable, Hashable {
        /// Ask for a user's device bundles.
        case keys(user: SignalName)
        /// Start a call.
        case call(call: SignalID, callee: SignalName, offer: SignalBlob)
        /// Caller: stop the call before it is answered.
        case cancel(call: SignalID)
        /// Callee device: hold this answer while ringing.
        case prepare(call: SignalID, answer: SignalBlob)
        /// A connectivity candidate.
        case candidate(call: SignalID, candidate: SignalBlob)
        /// Callee device: take the call, with this answer or the prepared one.
        case accept(call: SignalID, answer: SignalBlob?)
        /// Callee device: decline for every device.
        case reject(call: SignalID)
        /// Callee device: this device is busy.
        case busy(call: SignalID)
        /// Hang up an answered call.
        case end(call: SignalID)
        /// A sealed message: one ciphertext per recipient device.
        case message(id: SignalID, to: SignalName, sealed: [SealedCopy])
        /// Ask for a user's device lists newer than version `since` (docs/PROTOCOL.md §3.8).
        case lists(user: SignalName, since: UInt64)
        /// Store this user's next device list, signed by the user key (wire form).
        case publish(list: SignalBlob)
        /// Fetch a link request of this user by id (answered `<device>|<bundle>`).
        case linkRequest(id: String)

        /// The verb's wire name.
        public var name: String {
            switch self {
            case .keys: "keys"
            case .call: "call"
            case .cancel: "cancel"
            case .prepare: "prepare"
            case .candidate: "cand"
            case .accept: "accept"
            case .reject: "reject"
            case .busy: "busy"
            case .end: "end"
            case .message: "msg"
            case .lists: "lists"
            case .publish: "publish"
            case .linkRequest: "linkget"
            }
        }
    }

    /// One recipient device's ciphertext of a sealed message.
    public struct SealedCopy: Sendable, Hashable {
        public var device: SignalName
        public var ciphertext: SignalBlob
        public init(device: SignalName, ciphertext: SignalBlob) {
            self.device = device
            self.ciphertext = ciphertext
        }
    }

    /// Largest ciphertext per device in a `msg`.
    public static let maxSealedBytes = 64 * 1024
}

/// A queued server event (docs/PROTOCOL.md §3.4): `ev|<sseq>|<ts>|<event>|…`.
public enum SignalEvent: Sendable, Hashable {
    case ring(call: SignalID, caller: SignalName, callerDevice: SignalName, offer: SignalBlob)
    case answer(call: SignalID, device: SignalName, answer: SignalBlob)
    case candidate(call: SignalID, user: SignalName, device: SignalName, candidate: SignalBlob)
    case elsewhere(call: SignalID, device: SignalName)
    case ended(call: SignalID, reason: EndReason)
    case merged(call: SignalID, into: SignalID)
    case message(id: SignalID, from: SignalName, fromDevice: SignalName, sealed: SignalBlob)

    /// Why a call ended.
    public enum EndReason: String, Sendable, Hashable, CaseIterable {
        case cancelled, rejected, busy, timeout, offline, hangup, gone
    }

    public var name: String {
        switch self {
        case .ring: "ring"
        case .answer: "answer"
        case .candidate: "cand"
        case .elsewhere: "elsewhere"
        case .ended: "ended"
        case .merged: "merged"
        case .message: "msg"
        }
    }
}
