import ParleyWire

/// The server's greeting on a fresh connection (`hello`, docs/PROTOCOL.md §3.2).
public struct Hello: Sendable, Hashable {
    /// Protocol version; this client speaks 1.
    public let version: UInt64
    /// The server's clock, milliseconds since the epoch.
    public let serverTime: UInt64
}

/// A successful login (`welcome`, docs/PROTOCOL.md §3.2).
public struct Welcome: Sendable, Hashable {
    /// The user logged in.
    public let user: SignalName
    /// The device logged in.
    public let device: SignalName
    /// The highest command sequence number the server had processed for this device.
    public let lastCSeq: UInt64
    /// The server's clock, milliseconds since the epoch.
    public let serverTime: UInt64
}

/// A device whose signature on an event checked out against the key pinned for it.
public struct VerifiedDevice: Sendable, Hashable, CustomStringConvertible {
    /// The user.
    public let user: SignalName
    /// The user's device that signed.
    public let device: SignalName
    /// The pinned key's fingerprint (``ParleyCrypto/DevicePublicBundle/fingerprint``).
    public let fingerprint: String
    /// How the key came to be trusted: ``PinStatus/firstContact`` and ``PinStatus/newDevice`` mean it was
    /// pinned just now, on first sight.
    public let pin: PinStatus

    /// `user/device`.
    public var description: String { "\(user)/\(device)" }
}

/// One server event, decoded and checked: signatures verified against pinned keys, messages decrypted.
/// Events that fail a check arrive as ``Kind/rejected(_:)``, never with their unverified content.
public struct ClientEvent: Sendable, Hashable {
    /// The server's sequence number for this device; each is delivered once.
    public let sseq: UInt64
    /// When the server queued it, milliseconds since the epoch.
    public let timestamp: UInt64
    /// What happened.
    public let kind: Kind

    /// What happened.
    public enum Kind: Sendable, Hashable {
        /// An incoming call; `offer` was signed by `from`.
        case ring(call: SignalID, from: VerifiedDevice, offer: [UInt8])
        /// To the caller: the callee device that took the call, and its signed answer.
        case answer(call: SignalID, by: VerifiedDevice, answer: [UInt8])
        /// A signed connectivity candidate of the other party.
        case candidate(call: SignalID, from: VerifiedDevice, candidate: [UInt8])
        /// To the callee's other devices: the call was answered on `device`.
        case elsewhere(call: SignalID, device: SignalName)
        /// The call is over.
        case ended(call: SignalID, reason: SignalEvent.EndReason)
        /// Counter-call: `call` is dropped; accept `into` (which rings next) at once.
        case merged(call: SignalID, into: SignalID)
        /// A sealed text message, decrypted, from a verified sender device.
        case message(id: SignalID, from: VerifiedDevice, text: String)
        /// An event that failed its check.
        case rejected(RejectedEvent)
    }
}

/// An event that did not pass verification: shown to the application so tampering is loud, without the
/// content that could not be trusted.
public struct RejectedEvent: Sendable, Hashable, CustomStringConvertible {
    /// Why.
    public enum Reason: Sendable, Hashable {
        /// The signature does not verify against the pinned key (tampered, or not from that device).
        case badSignature
        /// The pinned key differs from the one the server presents now, and the event was signed with the new one.
        case keyChanged(KeyChangeWarning)
        /// No key could be found for the claimed device.
        case unknownDevice
        /// An answer or candidate for a call this client neither placed nor received.
        case unknownCall
        /// The signer is not the other party of that call.
        case wrongParty
        /// A sealed message that did not open (see the detail).
        case undecryptable
        /// A message that opened but is not UTF-8 text.
        case notText
        /// The device is not certified by its user's device list (docs/PROTOCOL.md §3.8): the server added
        /// it, or the list could not be accepted (``ListRefusal``).
        case uncertified
    }

    /// The event's wire name (`ring`, `answer`, `cand`, `msg`).
    public let event: String
    /// The call or message id.
    public let id: SignalID
    /// The user the event claims it came from (nil for an answer to an unknown call: the event does not name it).
    public let user: SignalName?
    /// The device the event claims it came from.
    public let device: SignalName
    /// Why it was rejected.
    public let reason: Reason
    /// A sentence for logs.
    public let detail: String

    /// One line for logs and people.
    public var description: String {
        "rejected \(event) \(id) claiming to be from \(user.map(\.text) ?? "?")/\(device): \(detail)"
    }
}
