import ParleyWire

// MARK: Commands while ringing

extension RingingCall {
    /// `cancel`: only the caller; every rung device gets `ended|cancelled`.
    func cancel(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller:
            out.ack()
            return end(.cancelled, id: id, except: party, into: &out)
        case .rungDevice:
            out.refuse(.callerOnlyCancels)
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `prepare`: a rung device's answer, held until it accepts (a later one replaces it).
    mutating func prepare(_ answer: SignalBlob, by party: CallParty, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .rungDevice(let device):
            devices[device]!.preparedAnswer = answer
            out.ack()
        case .caller:
            out.refuse(.calleeOnly(.prepare))
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `cand` before the answer: held in order, for the caller and per rung device, up to the limit.
    mutating func hold(_ candidate: SignalBlob, from party: CallParty, configuration: CallBookConfiguration,
                       into out: inout CallOutput) -> CallMachine.State {
        let limit = configuration.maxHeldCandidates
        let who = role(of: party)
        switch who {
        case .caller:
            guard callerCandidates.count < limit else {
                out.refuse(.tooManyCandidates(limit: limit))
                break
            }
            callerCandidates.append(candidate)
            out.ack()
        case .rungDevice(let device):
            guard devices[device]!.heldCandidates.count < limit else {
                out.refuse(.tooManyCandidates(limit: limit))
                break
            }
            devices[device]!.heldCandidates.append(candidate)
            out.ack()
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `accept`: the first one wins. The caller gets `answer` and then the device's held candidates, the
    /// device gets the caller's held candidates, and every other rung device gets `elsewhere`.
    func accept(by party: CallParty, answer: SignalBlob?, id: SignalID,
                into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .rungDevice(let device):
            let held = devices[device]!
            guard let answer = answer ?? held.preparedAnswer else {
                out.refuse(.noAnswer)
                return .ringing(self)
            }
            out.ack()
            out.deliver(.answer(call: id, device: device, answer: answer), to: caller)
            for candidate in held.heldCandidates {
                out.deliver(.candidate(call: id, user: callee, device: device, candidate: candidate), to: caller)
            }
            for candidate in callerCandidates {
                out.deliver(.candidate(call: id, user: caller.user, device: caller.device, candidate: candidate),
                            to: party)
            }
            for other in devices.keys.sorted() where other != device {
                out.deliver(.elsewhere(call: id, device: device), to: CallParty(user: callee, device: other))
            }
            out.log(.answered(call: id, device: device))
            var answererAwayUntil: UInt64?
            if case .away(let until) = held.status { answererAwayUntil = until }
            return .answered(AnsweredCall(caller: caller, answerer: party, callerAwayUntil: callerAwayUntil,
                                          answererAwayUntil: answererAwayUntil))
        case .caller:
            out.refuse(.calleeOnly(.accept))
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `reject`: from any rung device; the caller and the other rung devices get `ended|rejected`.
    func reject(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .rungDevice:
            out.ack()
            return end(.rejected, id: id, except: party, into: &out)
        case .caller:
            out.refuse(.calleeOnly(.reject))
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `busy`: the device stops keeping the call alive; when every device is busy (or gone), the call
    /// ends with `busy` for the caller and the other busy devices.
    mutating func busy(by party: CallParty, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .rungDevice(let device):
            devices[device]!.status = .busy
            out.ack()
            return endIfNoneRings(id: id, except: party, into: &out)
        case .caller:
            out.refuse(.calleeOnly(.busy))
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// `end` before the answer: there is nothing to hang up yet.
    func refuseEnd(by party: CallParty, into out: inout CallOutput) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller:
            out.refuse(.notAnswered)
        case .rungDevice:
            out.refuse(.notAnswered)
        case .droppedDevice, .bystander, .stranger:
            Self.refuse(who, into: &out)
        }
        return .ringing(self)
    }

    /// Counter-call: the callee's device that called back rings for this call (again, or for the first
    /// time if it was not online when the call started); what it already holds is kept.
    mutating func ringAlso(_ party: CallParty, id: SignalID, into out: inout CallOutput) {
        precondition(party.user == callee, "only the callee calls back")
        dropped.remove(party.device)
        devices[party.device, default: RingingDevice()].status = .ringing
        out.deliver(ring(id), to: party)
    }
}

// MARK: Connections and time while ringing

extension RingingCall {
    /// The caller or a ringing device lost its connection: it keeps its place for the grace period (a
    /// second report does not extend it). A busy device is out already and needs no clock.
    mutating func disconnected(_ party: CallParty, now: UInt64,
                               configuration: CallBookConfiguration) -> CallMachine.State {
        let until = now + configuration.disconnectGrace
        let who = role(of: party)
        switch who {
        case .caller:
            callerAwayUntil = callerAwayUntil ?? until
        case .rungDevice(let device):
            if devices[device]!.status == .ringing { devices[device]!.status = .away(until: until) }
        case .droppedDevice, .bystander, .stranger:
            break
        }
        return .ringing(self)
    }

    /// Back within the grace period: nothing happened.
    mutating func reconnected(_ party: CallParty) -> CallMachine.State {
        let who = role(of: party)
        switch who {
        case .caller:
            callerAwayUntil = nil
        case .rungDevice(let device):
            if case .away = devices[device]!.status { devices[device]!.status = .ringing }
        case .droppedDevice, .bystander, .stranger:
            break
        }
        return .ringing(self)
    }

    /// Something that can be due.
    private enum Due: Comparable {
        /// Nobody answered in time (checked first at equal times).
        case ringTimeout
        /// The caller stayed away for the grace period.
        case callerGone
        /// This device stayed away for the grace period.
        case deviceGone(SignalName)
    }

    /// Handles everything due at `now`, earliest first.
    mutating func timerFired(now: UInt64, id: SignalID, into out: inout CallOutput) -> CallMachine.State {
        while true {
            var due: (at: UInt64, what: Due)? = ringDeadline <= now ? (ringDeadline, .ringTimeout) : nil
            func consider(_ at: UInt64, _ what: Due) {
                guard at <= now else { return }
                if let current = due, (current.at, current.what) <= (at, what) { return }
                due = (at, what)
            }
            if let away = callerAwayUntil { consider(away, .callerGone) }
            for (name, device) in devices {
                if case .away(let until) = device.status { consider(until, .deviceGone(name)) }
            }
            guard let (_, what) = due else { return .ringing(self) }
            switch what {
            case .ringTimeout:
                return end(.timeout, id: id, except: nil, into: &out)
            case .callerGone:
                return end(.gone, id: id, except: nil, into: &out)
            case .deviceGone(let name):
                devices[name] = nil
                dropped.insert(name)
                out.deliver(.ended(call: id, reason: .offline), to: CallParty(user: callee, device: name))
                out.log(.stoppedRinging(call: id, device: name))
                if case .ended(let ended) = endIfNoneRings(id: id, except: nil, into: &out) {
                    return .ended(ended)
                }
            }
        }
    }
}
