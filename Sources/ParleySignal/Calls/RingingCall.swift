import ParleyWire

/// A call whose callee devices are ringing (docs/PROTOCOL.md §3.5).
///
/// Each rung device may prepare an answer and send candidates; they are held here, per device, so the
/// moment one device accepts the caller gets everything at once. The caller's candidates are held too.
struct RingingCall: Sendable {
    /// The calling device.
    let caller: CallParty
    /// The called user.
    let callee: SignalName
    /// The caller's offer, relayed in every `ring`.
    let offer: SignalBlob
    /// When the call ends with `timeout` if nobody answered.
    let ringDeadline: UInt64
    /// Set while the caller's device is disconnected: when the call ends with `gone`.
    var callerAwayUntil: UInt64?
    /// The caller's candidates, in arrival order, for the device that accepts.
    var callerCandidates: [SignalBlob] = []
    /// The rung devices still in the call, by device name.
    var devices: [SignalName: RingingDevice]
    /// Rung devices that stopped ringing because they stayed away too long.
    var dropped: Set<SignalName> = []

    init(caller: CallParty, callee: SignalName, offer: SignalBlob, ringDeadline: UInt64, devices: [SignalName]) {
        self.caller = caller
        self.callee = callee
        self.offer = offer
        self.ringDeadline = ringDeadline
        self.devices = Dictionary(devices.map { ($0, RingingDevice()) }, uniquingKeysWith: { first, _ in first })
    }

    /// What a party is to this call, which decides what it may do.
    enum Role {
        /// The calling device.
        case caller
        /// A rung device of the callee still in the call.
        case rungDevice(SignalName)
        /// A rung device of the callee that stopped ringing (it was told `ended|offline`).
        case droppedDevice
        /// Another device of the caller or the callee: the call exists for its user, not for it.
        case bystander
        /// A device of any other user: for it the call does not exist.
        case stranger
    }

    func role(of party: CallParty) -> Role {
        if party == caller { return .caller }
        if party.user == callee {
            if devices[party.device] != nil { return .rungDevice(party.device) }
            return dropped.contains(party.device) ? .droppedDevice : .bystander
        }
        return party.user == caller.user ? .bystander : .stranger
    }

    /// The `ring` event for this call.
    func ring(_ id: SignalID) -> SignalEvent {
        .ring(call: id, caller: caller.user, callerDevice: caller.device, offer: offer)
    }

    /// The caller and every rung device still in the call.
    var parties: [CallParty] {
        [caller] + devices.keys.map { CallParty(user: callee, device: $0) }
    }

    var nextDeadline: UInt64? {
        var next = ringDeadline
        if let away = callerAwayUntil { next = min(next, away) }
        for device in devices.values {
            if case .away(let until) = device.status { next = min(next, until) }
        }
        return next
    }

    /// Ends the call: `ended|<reason>` to the caller, then to each rung device by name, all but `actor`.
    func end(_ reason: SignalEvent.EndReason, id: SignalID, except actor: CallParty?,
             into out: inout CallOutput) -> CallMachine.State {
        let everyone = [caller] + devices.keys.sorted().map { CallParty(user: callee, device: $0) }
        for party in everyone where party != actor {
            out.deliver(.ended(call: id, reason: reason), to: party)
        }
        out.log(.ended(call: id, reason: reason))
        return .ended(EndedCall(caller: caller.user, callee: callee, reason: reason))
    }

    /// When no device rings any more (each said busy or went away for good), the call ends: `busy` if
    /// any device said so, else `offline`.
    func endIfNoneRings(id: SignalID, except actor: CallParty?, into out: inout CallOutput) -> CallMachine.State {
        guard devices.values.allSatisfy(\.isOut) else { return .ringing(self) }
        let anyBusy = devices.values.contains { $0.status == .busy }
        return end(anyBusy ? .busy : .offline, id: id, except: actor, into: &out)
    }

    /// The common answer to a party that may not act on this call at all.
    static func refuse(_ role: Role, into out: inout CallOutput) {
        switch role {
        case .caller, .rungDevice:
            preconditionFailure("the caller and rung devices get a verb-specific answer")
        case .droppedDevice:
            out.refuse(.ended(.offline))
        case .bystander:
            out.refuse(.notPartOfCall)
        case .stranger:
            out.refuse(.unknownCall)
        }
    }
}

/// One rung device of a ringing call: what it holds for the caller and whether it still rings.
struct RingingDevice: Sendable {
    /// Whether the device still keeps the call alive.
    enum Status: Sendable, Equatable {
        /// Ringing and connected.
        case ringing
        /// Ringing but disconnected; it stops ringing at `until` unless it logs in again.
        case away(until: UInt64)
        /// The device said `busy`. It can still accept, but it no longer keeps the call alive.
        case busy
    }

    /// Whether it still rings.
    var status: Status = .ringing
    /// The answer it prepared (the latest `prepare` wins), used by an `accept` without one.
    var preparedAnswer: SignalBlob?
    /// Its candidates, in arrival order, for the caller once this device accepts.
    var heldCandidates: [SignalBlob] = []

    /// True when the device no longer keeps the call alive.
    var isOut: Bool {
        switch status {
        case .ringing, .away: false
        case .busy: true
        }
    }
}
