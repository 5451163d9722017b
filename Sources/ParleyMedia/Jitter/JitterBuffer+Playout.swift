extension JitterBuffer {
    // MARK: Playout

    /// Decides what to play for one 20 ms tick. Call exactly once per playout tick.
    ///
    /// - Parameter now: the tick's time, microseconds on the same clock as the arrivals.
    /// - Returns: the decoder's instruction for this tick (see ``Output``).
    public mutating func pull(now: UInt64) -> Output {
        switch phase {
        // Nothing received yet.
        case .idle:
            statistics.silence += 1
            return .silence
        // Waiting out the initial delay; the first due tick starts playout.
        case .buffering:
            guard currentDelay(now: now) >= Int64(target) - Int64(Self.frameDuration / 2) else {
                statistics.silence += 1
                return .silence
            }
            phase = .playing
        // Steady state.
        case .playing:
            break
        }
        if let redundancy, now >= redundancy.lastArrival, now - redundancy.lastArrival > configuration.redundancyMemory {
            // The copies stopped: give the room back (the target then decays at the usual rate).
            self.redundancy = nil
            refreshTarget()
        }
        decayTarget()
        ticksSinceStretch &+= 1
        ticksSinceDrop &+= 1

        let frame = Int64(Self.frameDuration)
        let lower = Int64(target) - frame / 2
        var delay = currentDelay(now: now)

        // Shrink over missing frames first: not concealing a frame that is not there loses nothing.
        while slots[slotIndex(nextFrame)]?.frame != nextFrame, delay - frame >= lower {
            advance(received: false)
            missingRun += 1
            statistics.skipped += 1
            delay -= frame
        }
        record(delay: delay)
        let due = slots[slotIndex(nextFrame)].flatMap { $0.frame == nextFrame ? $0 : nil }
        let grow = delay < lower && ticksSinceStretch >= configuration.stretchSpacing

        guard let due else {
            return missing(grow: grow)
        }
        // Grow: hold the due frame one more tick behind an inserted concealment.
        if grow {
            ticksSinceStretch = 0
            statistics.stretched += 1
            return .conceal
        }
        // Shrink by dropping a present frame, rarely, and only into a frame that is also present.
        if delay - frame >= lower, ticksSinceDrop >= configuration.dropSpacing, let following = take(nextFrame &+ 1) {
            _ = take(nextFrame)
            advance(received: !due.redundant)
            statistics.skipped += 1
            ticksSinceDrop = 0
            return play(following)
        }
        _ = take(nextFrame)
        return play(due)
    }

    /// The due frame is missing: stretch, rebuild from FEC, conceal, or fall silent. A frame the sender
    /// never sent (``markUnsent(_:)``) gets the same concealment or silence, counted as ``Statistics/unsent``,
    /// and is never "recovered" from the next frame's FEC (there was nothing to recover).
    private mutating func missing(grow: Bool) -> Output {
        // Grow: hold the position; the frame may still arrive in time.
        if grow {
            ticksSinceStretch = 0
            statistics.stretched += 1
            return isSilent ? .silence : .conceal
        }
        missingRun += 1
        if !isSilent, missingRun > configuration.concealLimit, bufferedFrames == 0 {
            isSilent = true
        }
        let unsent = takeUnsent(nextFrame)
        if isSilent {
            passed(unsent ? .unsent : .silence)
            return .silence
        }
        if !unsent, let next = slots[slotIndex(nextFrame &+ 1)], next.frame == nextFrame &+ 1 {
            advance(received: false)
            missingRun = 0
            statistics.recoveredByFEC += 1
            return .recover(fromNext: next.payload)
        }
        passed(unsent ? .unsent : .concealed)
        return .conceal
    }

    /// Counts the due frame, which is missing, as `outcome`, remembers how (for a later ``markUnsent(_:)``)
    /// and moves on.
    private mutating func passed(_ outcome: Outcome) {
        switch outcome {
        case .concealed: statistics.concealed += 1
        case .silence: statistics.silence += 1
        case .unsent: statistics.unsent += 1
        case .other: break
        }
        outcomes[Int(nextFrame % UInt64(Self.outcomeMemory))] = (nextFrame, outcome)
        advance(received: false)
    }

    /// Whether `frame` lies in a range marked unsent; ranges wholly behind it are forgotten.
    private mutating func takeUnsent(_ frame: UInt64) -> Bool {
        while let first = unsentAhead.first, first.upperBound <= frame { unsentAhead.removeFirst() }
        return unsentAhead.first?.contains(frame) ?? false
    }

    /// The sender did not send `frames` (it was in discontinuous transmission): they are not loss. Frames
    /// still ahead of the playout position are counted as ``Statistics/unsent`` when their tick comes (the
    /// output is what a missing frame gets: the decoder's concealment, which in DTX is its comfort noise,
    /// or silence); frames already passed as concealed or silent within the last 64 are moved to
    /// ``Statistics/unsent``. Played, recovered, stretched or skipped frames are left as they were.
    /// Call it when a packet shows the gap before it was not lost (its sequence number follows the
    /// previous packet's while its frame index jumps; ``SenderGaps`` tells).
    public mutating func markUnsent(_ frames: Range<UInt64>) {
        guard !frames.isEmpty else { return }
        let behindEnd = min(frames.upperBound, nextFrame)
        if frames.lowerBound < behindEnd {
            let memory = UInt64(Self.outcomeMemory)
            let start = max(frames.lowerBound, behindEnd > memory ? behindEnd - memory : 0)
            for frame in start..<behindEnd {
                let index = Int(frame % memory)
                guard outcomes[index].frame == frame else { continue }
                switch outcomes[index].outcome {
                case .concealed: statistics.concealed -= 1
                case .silence: statistics.silence -= 1
                case .unsent, .other: continue
                }
                statistics.unsent += 1
                outcomes[index].outcome = .unsent
            }
        }
        let ahead = max(frames.lowerBound, nextFrame)..<max(frames.upperBound, nextFrame)
        guard !ahead.isEmpty else { return }
        // Kept sorted and merged (marks normally come in order; a reordered packet may bring an earlier one).
        var merged: [Range<UInt64>] = []
        for range in (unsentAhead + [ahead]).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, last.upperBound >= range.lowerBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        unsentAhead = Array(merged.suffix(16))
    }

    /// Plays a frame already removed from its slot (the position has not advanced past it yet). A frame
    /// played from a redundant copy is not marked received: its own packet, if it still comes, is late and
    /// is counted and measured as such.
    private mutating func play(_ slot: Slot) -> Output {
        advance(received: !slot.redundant)
        missingRun = 0
        isSilent = false
        statistics.played += 1
        if slot.redundant { statistics.playedFromRedundancy += 1 }
        return .frame(slot.payload)
    }

    /// Removes and returns the stored slot of `frame`, if stored.
    private mutating func take(_ frame: UInt64) -> Slot? {
        let index = slotIndex(frame)
        guard let slot = slots[index], slot.frame == frame else { return nil }
        slots[index] = nil
        bufferedFrames -= 1
        return slot
    }

    /// Moves the playout position one frame on, remembering whether the passed frame was received.
    private mutating func advance(received: Bool) {
        receivedBehind = receivedBehind << 1 | (received ? 1 : 0)
        nextFrame &+= 1
    }

    /// How long after the fastest-path reference the due frame is being played, microseconds.
    private func currentDelay(now: UInt64) -> Int64 {
        guard let floor = history.minimum else { return Int64(target) }
        let mediaTime = Int64(bitPattern: nextFrame &- referenceFrame) &* Int64(Self.frameDuration)
        return Int64(bitPattern: now) &- mediaTime &- floor
    }

    private mutating func record(delay: Int64) {
        statistics.currentDelay = UInt64(max(delay, 0))
        statistics.targetDelay = target
    }

    /// Lets the target fall toward what the window asks for, at the configured rate.
    private mutating func decayTarget() {
        guard windowTarget < target else { return }
        let step = configuration.targetDecayPerSecond * Self.frameDuration / 1_000_000
        target = max(windowTarget, target > step ? target - step : 0)
    }
}
