import ParleyWire

/// Every call on the server (docs/PROTOCOL.md §3.5): one ``CallMachine`` per call id, the indexes that
/// find counter-calls and the calls a device is in, one wake-up timer for all of them, and a short
/// memory of ended calls.
///
/// Sans-I/O: the session layer feeds it ``CallBookEvent``s with the time (ms; never decreasing) and
/// performs the returned ``CallAction``s in order. It keeps no call longer than needed: a ringing call
/// ends by its ring timeout at the latest, an answered one on `end` or when both sides have been away
/// for the disconnect grace, and each is forgotten in the step it ends.
public struct CallBook: Sendable {
    /// Timing and limits.
    public let configuration: CallBookConfiguration

    /// The live calls. (Every machine is small: a handful of devices, each with a few held blobs.)
    private var calls: [SignalID: CallMachine] = [:]
    /// The live calls each device takes part in, for disconnects and reconnects.
    private var callsByParty: [CallParty: Set<SignalID>] = [:]
    /// Ringing calls by (caller, callee), oldest first, for counter-call merges.
    private var ringingByUsers: [CallUsers: [SignalID]] = [:]
    /// Every live call's next deadline, plus stale entries not yet discarded.
    private var deadlines = CallDeadlineQueue()
    /// When the book next needs ``CallBookEvent/timerFired``, if ever: the deadline of the last
    /// ``CallAction/armTimer(at:)``, or nil after ``CallAction/cancelTimer``.
    public private(set) var nextDeadline: UInt64?
    /// Recently ended calls.
    private var ended: EndedCallMemory

    /// An empty book.
    public init(configuration: CallBookConfiguration = CallBookConfiguration()) {
        self.configuration = configuration
        self.ended = EndedCallMemory(retention: configuration.endedRetention, capacity: configuration.endedCapacity)
    }

    /// How many calls are live (ringing or answered).
    public var count: Int { calls.count }

    /// How many ended calls are still remembered for late commands.
    public var rememberedEndedCount: Int { ended.count }

    /// Sizes of the indexes beside the calls, for tests that check nothing is left behind.
    struct IndexSizes: Equatable {
        /// Devices with at least one live call.
        var parties: Int
        /// (caller, callee) pairs with at least one ringing call.
        var ringingPairs: Int
    }

    /// The current index sizes.
    var indexSizes: IndexSizes { IndexSizes(parties: callsByParty.count, ringingPairs: ringingByUsers.count) }

    /// Entries in the deadline queue, stale ones included.
    var queuedDeadlines: Int { deadlines.count }

    /// Handles one event at time `now` and returns what to do, in order.
    public mutating func handle(_ event: CallBookEvent, now: UInt64) -> [CallAction] {
        ended.forgetExpired(now: now)
        var actions: [CallAction]
        switch event {
        case .command(let command, let party):
            actions = handle(command, from: party, now: now)
        case .deviceDisconnected(let party):
            actions = forEachCall(of: party, now: now, .disconnected(party))
        case .deviceReconnected(let party):
            actions = forEachCall(of: party, now: now, .reconnected(party))
        case .timerFired:
            // The session's timer is spent once its time has come.
            if let armed = nextDeadline, armed <= now { nextDeadline = nil }
            actions = fireDueDeadlines(now: now)
        }
        if let timer = timerChange() { actions.append(timer) }
        return actions
    }

    // MARK: Commands

    private mutating func handle(_ command: CallCommand, from party: CallParty, now: UInt64) -> [CallAction] {
        switch command {
        case .call(let id, let callee, let offer, let online):
            return start(id, from: party, to: callee, offer: offer, online: online, now: now)
        case .cancel(let id):
            return step(id, from: party, now: now, .cancel(by: party))
        case .prepare(let id, let answer):
            return step(id, from: party, now: now, .prepare(by: party, answer: answer))
        case .candidate(let id, let candidate):
            return step(id, from: party, now: now, .candidate(by: party, candidate: candidate))
        case .accept(let id, let answer):
            return step(id, from: party, now: now, .accept(by: party, answer: answer))
        case .reject(let id):
            return step(id, from: party, now: now, .reject(by: party))
        case .busy(let id):
            return step(id, from: party, now: now, .busy(by: party))
        case .end(let id):
            return step(id, from: party, now: now, .end(by: party))
        }
    }

    /// `call`: refuse a call to oneself or a used id; merge a counter-call; end at once when no device of
    /// the callee is online; else ring them all.
    private mutating func start(_ id: SignalID, from caller: CallParty, to callee: SignalName, offer: SignalBlob,
                                online: [SignalName], now: UInt64) -> [CallAction] {
        var out = CallOutput()
        if callee == caller.user {
            out.refuse(.callToSelf)
            return out.actions
        }
        if calls[id] != nil || ended[id] != nil {
            out.refuse(.idInUse)
            return out.actions
        }
        // Counter-call: the callee is ringing the caller already. The earlier call survives and this one
        // never rings anyone; its caller is told so and rings for the earlier call instead.
        if let earlier = ringingByUsers[CallUsers(caller: callee, callee: caller.user)]?.first {
            out.ack()
            out.deliver(.merged(call: id, into: earlier), to: caller)
            var merged = out.actions
            merged += change(earlier, now: now) { machine, _, out in
                machine.ringCounterCaller(caller, into: &out)
            }
            merged.append(.log(.merged(call: id, into: earlier)))
            ended.remember(id, EndedCall(caller: caller.user, callee: callee, reason: .cancelled), now: now)
            return merged
        }
        guard !online.isEmpty else {
            out.ack()
            out.deliver(.ended(call: id, reason: .offline), to: caller)
            out.log(.started(call: id, caller: caller, callee: callee))
            out.log(.ended(call: id, reason: .offline))
            ended.remember(id, EndedCall(caller: caller.user, callee: callee, reason: .offline), now: now)
            return out.actions
        }
        let machine = CallMachine(id: id, caller: caller, callee: callee, offer: offer, devices: online, now: now,
                                  configuration: configuration, into: &out)
        calls[id] = machine
        ringingByUsers[CallUsers(caller: caller.user, callee: callee), default: []].append(id)
        for party in machine.parties { callsByParty[party, default: []].insert(id) }
        if let deadline = machine.nextDeadline { deadlines.insert(.init(deadline: deadline, call: id)) }
        return out.actions
    }

    /// A command about an existing call: to its machine, or answered from the memory of ended calls.
    private mutating func step(_ id: SignalID, from party: CallParty, now: UInt64,
                               _ input: CallMachine.Input) -> [CallAction] {
        if calls[id] != nil {
            return change(id, now: now) { machine, configuration, out in
                machine.handle(input, now: now, configuration: configuration, into: &out)
            }
        }
        var out = CallOutput()
        if let call = ended[id], party.user == call.caller || party.user == call.callee {
            out.refuse(.ended(call.reason))
        } else {
            out.refuse(.unknownCall)
        }
        return out.actions
    }

    // MARK: Connections and time

    /// Feeds a connection change to every call the device is in, in id order.
    private mutating func forEachCall(of party: CallParty, now: UInt64, _ input: CallMachine.Input) -> [CallAction] {
        var actions: [CallAction] = []
        for id in (callsByParty[party] ?? []).sorted() {
            actions += change(id, now: now) { machine, configuration, out in
                machine.handle(input, now: now, configuration: configuration, into: &out)
            }
        }
        return actions
    }

    /// Wakes every call with a deadline at or before `now`, earliest first.
    private mutating func fireDueDeadlines(now: UInt64) -> [CallAction] {
        var actions: [CallAction] = []
        while let entry = deadlines.removeDue(now: now, isCurrent: Self.isCurrent(in: calls)) {
            actions += change(entry.call, now: now, timerFired: true) { machine, configuration, out in
                machine.handle(.timer, now: now, configuration: configuration, into: &out)
            }
        }
        return actions
    }

    /// Runs `body` on the live call `id`, then brings the indexes, the deadline queue and the memory of
    /// ended calls in line with what it did. Returns the call's actions.
    private mutating func change(_ id: SignalID, now: UInt64, timerFired: Bool = false,
                                 _ body: CallChange) -> [CallAction] {
        guard let before = calls[id] else { preconditionFailure("no live call \(id)") }
        let (partiesBefore, wasRinging, deadlineBefore) = (before.parties, before.isRinging, before.nextDeadline)
        var out = CallOutput()
        body(&calls[id]!, configuration, &out)
        let after = calls[id]!

        // Most steps leave the parties as they were (a prepare, a candidate): no index work then.
        if after.parties != partiesBefore {
            let partiesAfter = Set(after.parties)
            for party in Set(partiesBefore).subtracting(partiesAfter) {
                callsByParty[party]?.remove(id)
                if callsByParty[party]?.isEmpty == true { callsByParty[party] = nil }
            }
            for party in partiesAfter.subtracting(partiesBefore) { callsByParty[party, default: []].insert(id) }
        }

        if wasRinging && !after.isRinging {
            ringingByUsers[after.users]?.removeAll { $0 == id }
            if ringingByUsers[after.users]?.isEmpty == true { ringingByUsers[after.users] = nil }
        }
        // A fired entry is gone from the queue, so the call's next deadline goes in even if unchanged.
        if let deadline = after.nextDeadline, deadline != deadlineBefore || timerFired {
            deadlines.insert(.init(deadline: deadline, call: id))
        }
        if let over = after.ended {
            calls[id] = nil
            ended.remember(id, over, now: now)
        }
        return out.actions
    }

    /// What ``change(_:now:timerFired:_:)`` does to a machine.
    private typealias CallChange = (inout CallMachine, CallBookConfiguration, inout CallOutput) -> Void

    /// Whether a queued deadline is still its call's next one (else the entry is stale).
    private static func isCurrent(in calls: [SignalID: CallMachine]) -> (CallDeadlineQueue.Entry) -> Bool {
        { calls[$0.call]?.nextDeadline == $0.deadline }
    }

    /// The timer action that makes the session's one timer match the earliest live deadline, if it differs.
    private mutating func timerChange() -> CallAction? {
        let earliest = deadlines.earliest(isCurrent: Self.isCurrent(in: calls))?.deadline
        guard earliest != nextDeadline else { return nil }
        nextDeadline = earliest
        return earliest.map(CallAction.armTimer(at:)) ?? .cancelTimer
    }
}

/// A caller and a callee, as users: the key that finds a counter-call.
struct CallUsers: Sendable, Hashable {
    let caller: SignalName
    let callee: SignalName
}
