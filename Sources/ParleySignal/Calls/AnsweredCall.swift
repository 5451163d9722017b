import ParleyWire

/// A call one of the callee's devices accepted (docs/PROTOCOL.md §3.5).
///
/// Only two devices are left in it. Candidates are relayed between them as they come; either side may
/// hang up. The media flows end to end, so one side losing its signaling connection changes nothing;
/// when both sides stay away for the grace period the call is forgotten without a word to either.
struct AnsweredCall: Sendable {
    /// The calling device.
    let caller: CallParty
    /// The callee's device that accepted.
    let answerer: CallParty
    /// Set while the caller's device is disconnected: the end of its grace period.
    var callerAwayUntil: UInt64?
    /// Set while the answering device is disconnected: the end of its grace period.
    var answererAwayUntil: UInt64?

    /// What a party is to this call, which decides what it may do.
    enum Role {
        /// The calling device.
        case caller
        /// The callee's device that accepted.
        case answerer
        /// Another device of the callee: it was told `elsewhere`.
        case elsewhereDevice
        /// Another device of the caller.
        case bystander
        /// A device of any other user: for it the call does not exist.
        case stranger
    }

    func role(of party: CallParty) -> Role {
        if party == caller { return .caller }
        if party == answerer { return .answerer }
        if party.user == answerer.user { return .elsewhereDevice }
        return party.user == caller.user ? .bystander : .stranger
    }

    /// Both sides away: the later grace period's end. One side away: nothing is due.
    var nextDeadline: UInt64? {
        guard let callerAway = callerAwayUntil, let answererAway = answererAwayUntil else { return nil }
        return max(callerAway, answererAway)
    }

    /// The common answer to a party that is not one of the two sides.
    static func refuse(_ role: Role, into out: inout CallOutput) {
        switch role {
        case .caller, .answerer:
            preconditionFailure("the two sides get a verb-specific answer")
        case .elsewhereDevice:
            out.refuse(.answeredElsewhere)
        case .bystander:
            out.refuse(.notPartOfCall)
        case .stranger:
            out.refuse(.unknownCall)
        }
    }

    /// `cancel` after the answer is the caller hanging up; the answering device must use `end`.
    func cancel(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller:
            return hangUp(by: party, id: id, into: &out)
        case .answerer:
            out.refuse(.callerOnlyCancels)
        case .elsewhereDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .answered(self)
    }

    /// `end` from either side.
    func end(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller, .answerer:
            return hangUp(by: party, id: id, into: &out)
        case .elsewhereDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .answered(self)
    }

    /// One side hangs up: the other gets `ended|hangup`.
    private func hangUp(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        out.ack()
        out.deliver(.ended(call: id, reason: .hangup), to: party == caller ? answerer : caller)
        out.log(.ended(call: id, reason: .hangup))
        return .ended(EndedCall(caller: caller.user, callee: answerer.user, reason: .hangup))
    }

    /// `cand` after the answer: straight to the other side.
    func relay(_ candidate: SignalBlob, from party: CallParty, id: SignalID,
               into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller, .answerer:
            let other = who == .caller ? answerer : caller
            out.ack()
            out.deliver(.candidate(call: id, user: party.user, device: party.device, candidate: candidate), to: other)
        case .elsewhereDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .answered(self)
    }

    /// `prepare`, `accept`, `reject` or `busy` after the answer: too late for anyone.
    func refuseLate(_ verb: CallRefusal.CalleeVerb, by party: CallParty,
                    into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller:
            out.refuse(.calleeOnly(verb))
        case .answerer:
            out.refuse(.alreadyAccepted)
        case .elsewhereDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .answered(self)
    }

    /// One side lost its connection: its grace period starts (a second report does not extend it).
    mutating func disconnected(_ party: CallParty, now: UInt64,
                               configuration: CallBookConfiguration) -> CallMachine.State {
        let until = now + configuration.disconnectGrace
        switch role(of: party) {
        case .caller: callerAwayUntil = callerAwayUntil ?? until
        case .answerer: answererAwayUntil = answererAwayUntil ?? until
        case .elsewhereDevice, .bystander, .stranger: break
        }
        return .answered(self)
    }

    /// One side is back.
    mutating func reconnected(_ party: CallParty) -> CallMachine.State {
        switch role(of: party) {
        case .caller: callerAwayUntil = nil
        case .answerer: answererAwayUntil = nil
        case .elsewhereDevice, .bystander, .stranger: break
        }
        return .answered(self)
    }

    /// Both sides stayed away for the grace period: the call ends with `gone`, told to no one (each side
    /// finds out when it comes back and its next command gets `nak|ended|gone`).
    func timerFired(now: UInt64, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        guard let deadline = nextDeadline, deadline <= now else { return .answered(self) }
        out.log(.ended(call: id, reason: .gone))
        return .ended(EndedCall(caller: caller.user, callee: answerer.user, reason: .gone))
    }
}
