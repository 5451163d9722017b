import ParleyWire

/// The calls' deadlines in time order (a binary min-heap), so the book finds the next wake-up and the
/// calls that are due without looking at every call.
///
/// Entries are never removed from the middle: when a call's deadline moves or the call ends, its old
/// entry stays until it reaches the top, where the book discards it as stale (its call no longer has
/// that deadline). An entry is stale at the latest when its time has passed, so the queue holds at most
/// the deadlines set within the last ring timeout.
struct CallDeadlineQueue: Sendable {
    /// One call's deadline. Ordered by time, then by call id, so equal times pop in a stable order.
    struct Entry: Sendable, Comparable {
        /// When, in ms.
        let deadline: UInt64
        /// Whose.
        let call: SignalID

        static func < (a: Entry, b: Entry) -> Bool {
            (a.deadline, a.call) < (b.deadline, b.call)
        }
    }

    private var heap: [Entry] = []

    /// The earliest entry, stale or not.
    var first: Entry? { heap.first }

    /// How many entries are queued, stale ones included.
    var count: Int { heap.count }

    /// The earliest entry for which `isCurrent` holds, after discarding the stale ones above it.
    mutating func earliest(isCurrent: (Entry) -> Bool) -> Entry? {
        while let entry = heap.first, !isCurrent(entry) { removeFirst() }
        return heap.first
    }

    /// Removes and returns the earliest current entry if it is due at `now` (stale ones go on the way).
    mutating func removeDue(now: UInt64, isCurrent: (Entry) -> Bool) -> Entry? {
        guard let entry = earliest(isCurrent: isCurrent), entry.deadline <= now else { return nil }
        return removeFirst()
    }

    mutating func insert(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry.
    @discardableResult
    mutating func removeFirst() -> Entry? {
        guard !heap.isEmpty else { return nil }
        let first = heap[0]
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left] < heap[smallest] { smallest = left }
            if right < heap.count && heap[right] < heap[smallest] { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
