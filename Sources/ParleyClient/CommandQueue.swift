import ParleyWire

/// A command sent (or to be sent) and not yet answered with `ack` or `nak`.
struct PendingCommand: Sendable, Hashable {
    /// The command's sequence number; kept across resends and restarts.
    let cseq: UInt64
    /// What the command does.
    let verb: SignalCommand.Verb

    /// The frame to send now: same cseq, the current timestamp (docs/PROTOCOL.md §3.3).
    func frame(timestamp: UInt64) -> ClientFrame {
        .command(SignalCommand(cseq: cseq, timestamp: timestamp, verb: verb))
    }
}

/// The device's outbound command sequence (docs/PROTOCOL.md §3.2–§3.3), without I/O.
///
/// Commands get strictly increasing cseqs and stay queued until answered. After a reconnect the server's
/// `welcome` names the last cseq it processed: queued commands up to it are done (their answers were lost
/// with the old connection) and the rest are sent again, in order, with the same cseq.
struct CommandQueue: Sendable, Hashable {
    /// The cseq the next command gets; at least 1.
    private(set) var nextCSeq: UInt64
    /// Unanswered commands, in ascending cseq order.
    private(set) var pending: [PendingCommand]

    init(nextCSeq: UInt64 = 1, pending: [PendingCommand] = []) {
        self.pending = pending.sorted { $0.cseq < $1.cseq }
        self.nextCSeq = max(nextCSeq, 1, (self.pending.last?.cseq ?? 0) + 1)
    }

    /// Queues `verb` under the next cseq.
    mutating func enqueue(_ verb: SignalCommand.Verb) -> PendingCommand {
        let command = PendingCommand(cseq: nextCSeq, verb: verb)
        nextCSeq += 1
        pending.append(command)
        return command
    }

    /// Applies the server's `last-cseq` from `welcome`: drops the commands it already processed and returns
    /// them, plus the ones to send again. Moves ``nextCSeq`` past `lastCSeq`, so a client whose state was lost
    /// does not reuse numbers the server would treat as duplicates (acknowledged but never executed).
    mutating func resume(lastCSeq: UInt64) -> (processed: [PendingCommand], resend: [PendingCommand]) {
        let split = pending.partitioningIndex { $0.cseq > lastCSeq }
        let processed = Array(pending[..<split])
        pending.removeFirst(split)
        if nextCSeq <= lastCSeq { nextCSeq = lastCSeq + 1 }
        return (processed, pending)
    }

    /// Removes and returns the command `cseq` answered; nil when no such command is queued.
    mutating func complete(_ cseq: UInt64) -> PendingCommand? {
        guard let index = pending.firstIndex(where: { $0.cseq == cseq }) else { return nil }
        return pending.remove(at: index)
    }
}

extension Array {
    /// The first index whose element satisfies `belongsInSecondPartition`, for an array already partitioned by it.
    fileprivate func partitioningIndex(where belongsInSecondPartition: (Element) -> Bool) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if belongsInSecondPartition(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
