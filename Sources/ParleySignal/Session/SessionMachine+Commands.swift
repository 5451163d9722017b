import ParleyWire

// MARK: Commands (docs/PROTOCOL.md §3.3)

extension SessionMachine {
    /// The call or message layer answered a command handed out with ``SessionAction/execute(_:)``: sends
    /// the `ack` or `nak` and remembers it for duplicates. An answer for a session that has closed, or for
    /// a cseq this session did not hand out (or already answered), is dropped: the command was processed
    /// and the device learns its cseq from the next `welcome`.
    public mutating func complete(cseq: UInt64, with answer: CommandAnswer, now: UInt64) -> [SessionAction] {
        switch state {
        case .idle: preconditionFailure("SessionMachine.complete before connect")
        case .awaitingLogin, .verifying, .admitting, .closed: return []
        case .active(var s):
            guard s.inFlight.contains(cseq) else { return [] }
            // Out of the enum first, so the set and the answers below have one owner and change in place.
            state = .idle
            s.inFlight.remove(cseq)
            s.answers.remember(answer, for: cseq)
            state = .active(s)
            return [.send(answer.frame(cseq: cseq))]
        }
    }

    /// One parsed command on an active session, in the order §3.3 implies: a duplicate is answered again
    /// whatever its timestamp (a command resent after a reconnect is old by then); a new one must be
    /// fresh, else `nak|stale`; a fresh one is handed out.
    func handle(_ command: SignalCommand, in s: inout ActiveState, now: UInt64) -> [SessionAction] {
        let cseq = command.cseq
        if cseq <= s.lastCSeq {
            // Still executing: its one answer comes with `complete`.
            if s.inFlight.contains(cseq) { return [] }
            // Answered in this session: the same answer again. Older or from an earlier connection: `ack`.
            return [.send((s.answers.answer(for: cseq) ?? .ok).frame(cseq: cseq))]
        }
        s.lastCSeq = cseq
        guard configuration.isFresh(command.timestamp, now: now) else {
            let answer = CommandAnswer.nak(
                code: .stale, reason: "timestamp more than \(configuration.timestampWindow / 1000) s from server time")
            s.answers.remember(answer, for: cseq)
            return [.send(answer.frame(cseq: cseq))]
        }
        s.inFlight.insert(cseq)
        return [.execute(command)]
    }
}

/// The answers of the last few commands of one session, by cseq, oldest dropped first.
struct RememberedAnswers: Sendable {
    /// Most answers kept.
    let capacity: Int
    private var answers: [UInt64: CommandAnswer] = [:]
    /// Cseqs in the order remembered; a ring of `capacity` slots once full.
    private var order: [UInt64] = []
    /// The slot of `order` to overwrite next once full.
    private var oldest = 0

    init(capacity: Int) {
        self.capacity = capacity
        order.reserveCapacity(capacity)
    }

    /// The remembered answer for `cseq`, if it is among the last ``capacity``.
    func answer(for cseq: UInt64) -> CommandAnswer? { answers[cseq] }

    /// Remembers `answer`, forgetting the oldest when full. Each cseq is answered once, so it is never
    /// already present.
    mutating func remember(_ answer: CommandAnswer, for cseq: UInt64) {
        guard capacity > 0 else { return }
        if order.count < capacity {
            order.append(cseq)
        } else {
            answers[order[oldest]] = nil
            order[oldest] = cseq
            oldest = (oldest + 1) % capacity
        }
        answers[cseq] = answer
    }

    /// How many answers are kept now.
    var count: Int { answers.count }
}
