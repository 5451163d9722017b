import ParleyWire

/// One call's life (docs/PROTOCOL.md §3.5), keyed by the caller-chosen id.
///
/// Sans-I/O: every input comes with the time, and the machine writes what should happen into a
/// ``CallOutput`` instead of doing it. It knows nothing of other calls; the ``CallBook`` owns the
/// machines, routes commands to them, merges counter-calls and turns their deadlines into one timer.
struct CallMachine: Sendable {
    /// The caller-chosen call id.
    let id: SignalID
    /// The calling and the called user.
    let users: CallUsers
    /// Where the call stands.
    private(set) var state: State

    /// Where a call stands.
    enum State: Sendable {
        /// The callee's devices are ringing; answers and candidates are held per device.
        case ringing(RingingCall)
        /// One device accepted; candidates are relayed between the two parties as they come.
        case answered(AnsweredCall)
        /// Over. The book forgets the machine at the end of the step that brought it here.
        case ended(EndedCall)
    }

    /// What can happen to one call.
    enum Input: Sendable {
        /// `cancel` from this device.
        case cancel(by: CallParty)
        /// `prepare` from this device.
        case prepare(by: CallParty, answer: SignalBlob)
        /// `cand` from this device.
        case candidate(by: CallParty, candidate: SignalBlob)
        /// `accept` from this device, with an answer or relying on the prepared one.
        case accept(by: CallParty, answer: SignalBlob?)
        /// `reject` from this device.
        case reject(by: CallParty)
        /// `busy` from this device.
        case busy(by: CallParty)
        /// `end` from this device.
        case end(by: CallParty)
        /// A device taking part in the call lost its connection.
        case disconnected(CallParty)
        /// A device taking part in the call logged in again.
        case reconnected(CallParty)
        /// Time passed; handle every deadline that is due.
        case timer
    }

    /// Starts a call that rings `devices` (the callee's online devices; not empty).
    init(id: SignalID, caller: CallParty, callee: SignalName, offer: SignalBlob, devices: [SignalName],
         now: UInt64, configuration: CallBookConfiguration, into out: inout CallOutput) {
        precondition(!devices.isEmpty, "a call to an offline callee ends before it starts")
        self.id = id
        self.users = CallUsers(caller: caller.user, callee: callee)
        let call = RingingCall(caller: caller, callee: callee, offer: offer,
                               ringDeadline: now + configuration.ringTimeout, devices: devices)
        self.state = .ringing(call)
        out.ack()
        for device in call.devices.keys.sorted() {
            out.deliver(call.ring(id), to: CallParty(user: callee, device: device))
        }
        out.log(.started(call: id, caller: caller, callee: callee))
        out.log(.rang(call: id, devices: call.devices.count))
    }

    /// Handles one input at time `now`.
    mutating func handle(_ input: Input, now: UInt64, configuration: CallBookConfiguration,
                         into out: inout CallOutput) {
        switch (state, input) {
        // Ringing: the caller stops the call; every rung device hears `cancelled`.
        case (.ringing(let call), .cancel(let party)):
            state = call.cancel(by: party, id: id, into: &out)
        // Ringing: a rung device holds its answer until it accepts.
        case (.ringing(var call), .prepare(let party, let answer)):
            state = call.prepare(answer, by: party, into: &out)
        // Ringing: candidates are held per device (and for the caller) until the answer.
        case (.ringing(var call), .candidate(let party, let candidate)):
            state = call.hold(candidate, from: party, configuration: configuration, into: &out)
        // Ringing: the first accept wins and moves the call to answered.
        case (.ringing(let call), .accept(let party, let answer)):
            state = call.accept(by: party, answer: answer, id: id, into: &out)
        // Ringing: one device's reject ends the call for everyone.
        case (.ringing(let call), .reject(let party)):
            state = call.reject(by: party, id: id, into: &out)
        // Ringing: a busy device stops ringing; when none rings any more the call ends.
        case (.ringing(var call), .busy(let party)):
            state = call.busy(by: party, id: id, into: &out)
        // Ringing: nothing to hang up yet; the caller cancels, devices reject.
        case (.ringing(let call), .end(let party)):
            state = call.refuseEnd(by: party, into: &out)
        // Ringing: a party that disconnects keeps its place for the grace period.
        case (.ringing(var call), .disconnected(let party)):
            state = call.disconnected(party, now: now, configuration: configuration)
        // Ringing: a party back within the grace period is as if it never left.
        case (.ringing(var call), .reconnected(let party)):
            state = call.reconnected(party)
        // Ringing: ring timeout, the caller's grace or a device's grace ran out.
        case (.ringing(var call), .timer):
            state = call.timerFired(now: now, id: id, into: &out)

        // Answered: `cancel` after the answer is `end` (a caller hanging up).
        case (.answered(let call), .cancel(let party)):
            state = call.cancel(by: party, id: id, into: &out)
        // Answered: `end` from either party; the other hears `hangup`.
        case (.answered(let call), .end(let party)):
            state = call.end(by: party, id: id, into: &out)
        // Answered: candidates go straight to the other party.
        case (.answered(let call), .candidate(let party, let candidate)):
            state = call.relay(candidate, from: party, id: id, into: &out)
        // Answered: the callee-side verbs are too late now.
        case (.answered(let call), .prepare(let party, _)):
            state = call.refuseLate(.prepare, by: party, into: &out)
        case (.answered(let call), .accept(let party, _)):
            state = call.refuseLate(.accept, by: party, into: &out)
        case (.answered(let call), .reject(let party)):
            state = call.refuseLate(.reject, by: party, into: &out)
        case (.answered(let call), .busy(let party)):
            state = call.refuseLate(.busy, by: party, into: &out)
        // Answered: one side away is normal (media flows without us); both away starts the clock.
        case (.answered(var call), .disconnected(let party)):
            state = call.disconnected(party, now: now, configuration: configuration)
        case (.answered(var call), .reconnected(let party)):
            state = call.reconnected(party)
        // Answered: both sides stayed away for the grace period: the call is forgotten.
        case (.answered(let call), .timer):
            state = call.timerFired(now: now, id: id, into: &out)

        // Ended: every command is too late; the reason follows in the nak.
        case (.ended(let ended), .cancel), (.ended(let ended), .prepare), (.ended(let ended), .candidate),
            (.ended(let ended), .accept), (.ended(let ended), .reject), (.ended(let ended), .busy),
            (.ended(let ended), .end):
            out.refuse(.ended(ended.reason))
        // Ended: connections and time no longer matter.
        case (.ended, .disconnected), (.ended, .reconnected), (.ended, .timer):
            break
        }
    }

    /// Counter-call merge: `party`, a device of the callee who just called the caller back, is told
    /// to take this call instead and rings for it from now on. Only for ringing calls.
    mutating func ringCounterCaller(_ party: CallParty, into out: inout CallOutput) {
        guard case .ringing(var call) = state else {
            preconditionFailure("counter-calls merge only into ringing calls")
        }
        call.ringAlso(party, id: id, into: &out)
        state = .ringing(call)
    }

    /// True while the callee's devices ring (the only time a counter-call can merge into this one).
    var isRinging: Bool {
        switch state {
        case .ringing: true
        case .answered, .ended: false
        }
    }

    /// The ended call, once the machine has reached its end.
    var ended: EndedCall? {
        switch state {
        case .ended(let ended): ended
        case .ringing, .answered: nil
        }
    }

    /// The devices whose connection matters to this call (for the book's disconnect index).
    var parties: [CallParty] {
        switch state {
        case .ringing(let call): call.parties
        case .answered(let call): [call.caller, call.answerer]
        case .ended: []
        }
    }

    /// The earliest time at which ``Input/timer`` would change something, if any.
    var nextDeadline: UInt64? {
        switch state {
        case .ringing(let call): call.nextDeadline
        case .answered(let call): call.nextDeadline
        case .ended: nil
        }
    }
}

/// What one step of the call machines decided, collected in the order the book reports it.
struct CallOutput: Sendable {
    /// The answer to the command being handled, if the step handles a command.
    private(set) var reply: CallReply?
    /// Events to queue, in order.
    private(set) var deliveries: [CallAction] = []
    /// Log lines, in order.
    private(set) var logs: [CallLogEvent] = []

    mutating func ack() { reply = .ack }
    mutating func refuse(_ refusal: CallRefusal) { reply = refusal.reply }
    mutating func deliver(_ event: SignalEvent, to party: CallParty) {
        deliveries.append(.deliver(to: party, event: event))
    }
    mutating func log(_ event: CallLogEvent) { logs.append(event) }

    /// Reply, deliveries, log lines.
    var actions: [CallAction] {
        (reply.map { [CallAction.reply($0)] } ?? []) + deliveries + logs.map(CallAction.log)
    }
}
