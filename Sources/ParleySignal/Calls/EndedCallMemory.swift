import ParleyWire

/// A short memory of calls that are over: their ids, users and end reasons, nothing else.
///
/// It lets a late command (a `cancel` racing a timeout, an `accept` after a `reject`) get
/// `nak|ended|<reason>` instead of `unknown-call`, and keeps a just-used id from being reused for a new
/// call. It is bounded twice: by time (``CallBookConfiguration/endedRetention``) and by count
/// (``CallBookConfiguration/endedCapacity``, oldest forgotten first), so it cannot grow without bound
/// whatever the clients do.
struct EndedCallMemory: Sendable {
    /// How long an ended call is remembered, in ms.
    let retention: UInt64
    /// How many ended calls are remembered at most.
    let capacity: Int

    /// The remembered calls by id.
    private var calls: [SignalID: EndedCall] = [:]
    /// Ids in the order they ended, with the time each is forgotten; `order[head...]` is live.
    private var order: [(call: SignalID, forgetAt: UInt64)] = []
    private var head = 0

    init(retention: UInt64, capacity: Int) {
        precondition(capacity > 0, "remember at least one ended call")
        self.retention = retention
        self.capacity = capacity
    }

    /// How many ended calls are remembered.
    var count: Int { calls.count }

    /// The ended call with this id, if it is still remembered.
    subscript(id: SignalID) -> EndedCall? { calls[id] }

    /// Remembers a call that ended at `now` (ids are unique: a live call's id is never remembered).
    mutating func remember(_ id: SignalID, _ call: EndedCall, now: UInt64) {
        calls[id] = call
        order.append((id, now + retention))
        while calls.count > capacity { forgetOldest() }
    }

    /// Forgets every call whose retention ran out by `now`.
    mutating func forgetExpired(now: UInt64) {
        while head < order.count, order[head].forgetAt <= now { forgetOldest() }
    }

    private mutating func forgetOldest() {
        calls[order[head].call] = nil
        head += 1
        // Compact once the dead prefix is at least half of the array, so appends stay amortised O(1).
        if head >= 64 && head * 2 >= order.count {
            order.removeFirst(head)
            head = 0
        }
        if head == order.count {
            order.removeAll(keepingCapacity: order.capacity <= 1024)
            head = 0
        }
    }
}

/// What is left of a call once it is over: enough to answer late commands with `nak|ended|<reason>`.
struct EndedCall: Sendable, Hashable {
    /// The calling user.
    let caller: SignalName
    /// The called user.
    let callee: SignalName
    /// Why it ended.
    let reason: SignalEvent.EndReason
}
