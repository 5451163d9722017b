import ParleyWire

/// The events waiting for one device (docs/PROTOCOL.md §3.4): each gets the next sseq, stays until the
/// device acknowledges it with a cumulative `got|<sseq>`, and is sent again, in order, every time the
/// device logs in. The client thus sees each event at least once and, deduplicating by sseq, exactly once.
///
/// A queue belongs to a user and device, not to a connection: the hub keeps it across reconnects. It is
/// a value without I/O; who stores what (the store keeps sealed messages and the sseq counter) is the
/// caller's business. Numbers continue a persisted counter: create the queue with the last sseq the
/// device was given.
///
/// **When full** (``capacity`` unacknowledged events), ``enqueue(_:now:)`` refuses the new event and
/// returns ``Enqueued/full``; nothing queued is dropped and no sseq is used up. The device has fallen
/// that far behind, so the caller treats it as unreachable for that event: the call layer as if the
/// device were offline (it does not ring), the message layer leaves the sealed copy in the store's
/// mailbox for a later login.
public struct DeviceQueue: Sendable {
    /// The user the device belongs to.
    public let user: SignalName
    /// The device.
    public let device: SignalName
    /// The most unacknowledged events held at once.
    public let capacity: Int
    /// The highest sseq handed out so far (0 before the first event).
    public private(set) var lastSSeq: UInt64
    /// Unacknowledged events, oldest first; sseqs strictly increase.
    private var pending: [QueuedEvent] = []
    /// Index in ``pending`` of the oldest unacknowledged event (acknowledged ones are dropped lazily).
    private var head = 0

    /// One unacknowledged event with its number and enqueue time.
    public struct QueuedEvent: Sendable, Hashable {
        /// The event's sequence number for this device.
        public let sseq: UInt64
        /// Server time when it was queued, sent as the `ev` frame's timestamp.
        public let timestamp: UInt64
        /// The event.
        public let event: SignalEvent

        /// `ev|<sseq>|<ts>|<event>|…`.
        public var frame: ServerFrame { .event(sseq: sseq, timestamp: timestamp, event: event) }
    }

    /// What ``enqueue(_:now:)`` did.
    public enum Enqueued: Sendable, Hashable {
        /// Queued; send `frame` now if the device is online (it will be sent again on every login until
        /// acknowledged).
        case queued(ServerFrame)
        /// Refused: the queue holds ``capacity`` unacknowledged events. Nothing changed.
        case full
        /// Refused (only ``enqueue(_:sseq:now:)``): the sseq is not above ``lastSSeq``. Nothing changed.
        case outOfOrder
    }

    /// An empty queue whose first event gets `lastSSeq + 1`.
    public init(user: SignalName, device: SignalName, lastSSeq: UInt64 = 0, capacity: Int = 1024) {
        precondition(capacity > 0, "a DeviceQueue needs room for at least one event")
        self.user = user
        self.device = device
        self.lastSSeq = lastSSeq
        self.capacity = capacity
    }

    /// Number of unacknowledged events.
    public var count: Int { pending.count - head }

    /// True when nothing waits for acknowledgement.
    public var isEmpty: Bool { count == 0 }

    /// Every unacknowledged event, oldest first.
    public var events: [QueuedEvent] { Array(pending[head...]) }

    /// The frames to send after `welcome` on a new connection: every unacknowledged event, in order.
    public var unacknowledged: [ServerFrame] { pending[head...].map(\.frame) }

    /// Queues `event` under the next sseq, stamped `now`.
    public mutating func enqueue(_ event: SignalEvent, now: UInt64) -> Enqueued {
        guard lastSSeq < UInt64.max else { return .outOfOrder }
        return enqueue(event, sseq: lastSSeq + 1, now: now)
    }

    /// Queues `event` under an sseq chosen elsewhere (e.g. reserved in the store, which numbers sealed
    /// messages as it commits them). Numbers may skip but never go back: `sseq` must exceed ``lastSSeq``.
    public mutating func enqueue(_ event: SignalEvent, sseq: UInt64, now: UInt64) -> Enqueued {
        guard sseq > lastSSeq else { return .outOfOrder }
        guard count < capacity else { return .full }
        let queued = QueuedEvent(sseq: sseq, timestamp: now, event: event)
        pending.append(queued)
        lastSSeq = sseq
        return .queued(queued.frame)
    }

    /// The device's `got|<sseq>`: drops every event numbered `sseq` or less (cumulative) and returns them,
    /// oldest first (the message layer deletes their mailbox rows). A `got` for a number already
    /// acknowledged, or beyond anything sent, acknowledges exactly the events that exist up to it; later
    /// events still get higher numbers and are not affected.
    @discardableResult
    public mutating func acknowledge(upTo sseq: UInt64) -> [QueuedEvent] {
        var end = head
        while end < pending.count, pending[end].sseq <= sseq { end += 1 }
        let acknowledged = Array(pending[head..<end])
        head = end
        // Compact once the acknowledged prefix outweighs what is left, so memory follows ``count``.
        if head > 32, head * 2 >= pending.count {
            pending.removeFirst(head)
            head = 0
        }
        return acknowledged
    }
}
