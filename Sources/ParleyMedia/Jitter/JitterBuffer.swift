/// Orders, times and paces received audio frames for playout. Sans-I/O: the caller hands in packets
/// with ``insert(frame:payload:arrival:)`` and, once per 20 ms playout tick, asks ``pull(now:)`` what the
/// decoder should do next. Nothing here reads a clock, sleeps or decodes.
///
/// ## Time
/// Every instant is a `UInt64` count of **microseconds** on the receiver's monotonic clock, from any fixed
/// origin (call start is natural). Every duration in ``Configuration`` and ``Statistics`` is microseconds
/// too. Media time is the sender's frame index: 48 kHz mono, 20 ms (960-sample) frames, so frame `n`
/// covers media time `n × 20 ms`. The payload is opaque (`[UInt8]`); the buffer never looks inside.
///
/// ## Playout delay
/// For each packet the buffer records its relative transit `arrival − frame × 20 ms` in a sliding window
/// (``Configuration/historySize`` packets). The smallest transit in the window is the reference; the
/// *current delay* is how long after that reference the frame now due is being played. The *target delay*
/// is the ``Configuration/percentile`` (95th by default) of the window's transit deviations plus one frame,
/// clamped to ``Configuration/minDelay``…``Configuration/maxDelay``. It rises at once (and a late packet
/// raises it at once to cover that packet); it falls by at most ``Configuration/targetDecayPerSecond``.
///
/// The current delay is steered to within half a frame of the target:
/// - **Grow** (current < target − ½ frame): output a concealment (or silence) in place of the due frame
///   without advancing, at most once per ``Configuration/stretchSpacing`` ticks.
/// - **Shrink** (current ≥ target + ½ frame): skip missing frames first (nothing is lost by not
///   concealing a frame that is not there); drop a frame that is present at most once per
///   ``Configuration/dropSpacing`` ticks, and only when the frame after it is present.
///
/// ## Silence and DTX
/// After ``Configuration/concealLimit`` consecutive missing frames with nothing at all buffered ahead,
/// the buffer stops asking for concealment and outputs ``Output/silence`` until a frame is played again:
/// the sender is in discontinuous transmission, or the path is down, and either way endless packet-loss
/// concealment would only produce artefacts. The playout position keeps advancing through silence (media
/// time continues during DTX), and silent frames may be skipped freely to shed excess delay. Frames the
/// sender is known not to have sent (``markUnsent(_:)``, from ``SenderGaps``) are output the same way but
/// counted as ``Statistics/unsent``, not as concealment: silence the sender chose is not loss.
///
/// ## Start
/// Playout starts at the first tick at which the lowest buffered frame has waited at least the target
/// delay less half a frame past the reference transit — for in-order arrival, the first packet's arrival
/// plus the target (within half a frame). Until then every tick is ``Output/silence``.
///
/// ## Redundant copies
/// A sender under heavy loss may carry an earlier frame's packet again in a later datagram (docs/PROTOCOL.md
/// §5.4). ``insertRedundant(frame:payload:distance:arrival:)`` stores such a copy only where its frame is
/// still due and missing; it never counts as a received packet and never enters the transit window (it
/// left the sender `distance` frames late on purpose). While copies of distance `d` keep coming (within
/// ``Configuration/redundancyMemory`` of arrival time), the target delay is raised by `d` frames less half
/// a frame, so the copy of a lost frame arrives before its tick rather than just after; a frame played from a copy
/// counts as played and also in ``Statistics/playedFromRedundancy``.
///
/// ## Resync and memory
/// At most ``Configuration/capacity`` frames are stored, at ring positions `frame mod capacity` ahead of
/// the playout position. A packet outside the acceptance window — ahead by capacity or more, or behind by
/// more than capacity (a sender restart, a timeline jump) — is discarded, but counts as evidence: once
/// ``Configuration/resyncPackets`` consecutive such packets, mutually consistent (each within capacity of
/// the previous one) and spanning at least ``Configuration/resyncSpan`` of arrival time, have come with
/// no acceptable packet between them, the buffer forgets its stored frames and starts a new timeline at
/// the latest one. Late packets count as evidence the same way when they are later than
/// ``Configuration/maxDelay`` could explain, so a sender that restarts a little behind is also followed;
/// lateness within that range is answered by growing the delay instead.
public struct JitterBuffer: Sendable {
    /// Duration of one frame in microseconds (20 ms).
    public static let frameDuration: UInt64 = 20_000

    /// Samples per frame at 48 kHz (960).
    public static let samplesPerFrame = 960

    /// Tunables. All durations in microseconds, all spacings in playout ticks.
    public struct Configuration: Sendable, Hashable {
        /// Lowest target delay (default 20 ms).
        public var minDelay: UInt64
        /// Highest target delay (default 400 ms).
        public var maxDelay: UInt64
        /// Target delay before any jitter has been measured (default: ``minDelay``).
        public var initialDelay: UInt64
        /// Most frames stored at once (default 50, one second). Must exceed `maxDelay` in frames.
        public var capacity: Int
        /// Packets in the transit-time window (default 200, four seconds of audio).
        public var historySize: Int
        /// Percentile of transit deviations the target covers (default 0.95).
        public var percentile: Double
        /// Fastest fall of the target delay, in microseconds per second of playout (default 20 ms/s).
        public var targetDecayPerSecond: UInt64
        /// Fewest ticks between two inserted concealments when growing (default 2).
        public var stretchSpacing: Int
        /// Fewest ticks between two dropped (present) frames when shrinking (default 25, half a second).
        public var dropSpacing: Int
        /// Consecutive missing frames concealed before switching to silence when nothing is buffered
        /// (default 5, 100 ms).
        public var concealLimit: Int
        /// Consecutive out-of-window packets needed to resync (default 3).
        public var resyncPackets: Int
        /// Arrival-time span those packets must cover (default 100 ms), so a burst of stale packets
        /// released after a network stall does not trigger a resync.
        public var resyncSpan: UInt64
        /// How long after the last redundant copy the target keeps the room for copies (default 2 s).
        public var redundancyMemory: UInt64

        /// Defaults as documented on each property; `initialDelay` defaults to `minDelay`.
        public init(
            minDelay: UInt64 = 20_000,
            maxDelay: UInt64 = 400_000,
            initialDelay: UInt64? = nil,
            capacity: Int = 50,
            historySize: Int = 200,
            percentile: Double = 0.95,
            targetDecayPerSecond: UInt64 = 20_000,
            stretchSpacing: Int = 2,
            dropSpacing: Int = 25,
            concealLimit: Int = 5,
            resyncPackets: Int = 3,
            resyncSpan: UInt64 = 100_000,
            redundancyMemory: UInt64 = 2_000_000
        ) {
            precondition(minDelay <= maxDelay, "minDelay above maxDelay")
            precondition(capacity >= 2, "capacity below two frames")
            precondition(maxDelay / JitterBuffer.frameDuration < UInt64(capacity), "maxDelay does not fit the capacity")
            self.minDelay = minDelay
            self.maxDelay = maxDelay
            self.initialDelay = min(max(initialDelay ?? minDelay, minDelay), maxDelay)
            self.capacity = capacity
            self.historySize = max(historySize, 1)
            self.percentile = percentile
            self.targetDecayPerSecond = targetDecayPerSecond
            self.stretchSpacing = max(stretchSpacing, 1)
            self.dropSpacing = max(dropSpacing, 1)
            self.concealLimit = max(concealLimit, 0)
            self.resyncPackets = max(resyncPackets, 1)
            self.resyncSpan = resyncSpan
            self.redundancyMemory = redundancyMemory
        }
    }

    /// What the decoder should produce for one playout tick (20 ms of audio).
    public enum Output: Sendable, Hashable {
        /// The due frame is here: decode it.
        case frame([UInt8])
        /// The due frame is missing but the next one is here: decode this payload's in-band FEC
        /// (Opus LBRR) to rebuild the missing frame. The payload stays buffered and is returned again as
        /// ``frame(_:)`` on the next tick.
        case recover(fromNext: [UInt8])
        /// The due frame is missing (or a frame is being inserted to grow the delay): run the decoder's
        /// packet-loss concealment.
        case conceal
        /// Play silence (or comfort noise): nothing has started yet, or the sender is in DTX.
        case silence
    }

    /// Counters since creation. Every tick produces exactly one output, counted in exactly one of
    /// ``played``, ``recoveredByFEC``, ``concealed``, ``unsent``, ``silence`` and ``stretched``.
    public struct Statistics: Sendable, Hashable {
        /// Packets handed to ``JitterBuffer/insert(frame:payload:arrival:)``.
        public var received = 0
        /// Packets that came after their frame's tick had passed (dropped).
        public var late = 0
        /// Packets whose frame was already stored or already received (dropped).
        public var duplicate = 0
        /// Ticks that played a received frame (``Output/frame(_:)``), its own packet or a redundant copy.
        public var played = 0
        /// Of ``played``, frames whose own packet never came in time and that a later packet's redundant
        /// copy supplied.
        public var playedFromRedundancy = 0
        /// Redundant copies handed to ``JitterBuffer/insertRedundant(frame:payload:distance:arrival:)``.
        public var redundantReceived = 0
        /// Ticks that rebuilt a missing frame from the next frame's FEC (``Output/recover(fromNext:)``).
        public var recoveredByFEC = 0
        /// Ticks that concealed a missing frame (``Output/conceal`` standing in for a lost or late frame).
        public var concealed = 0
        /// Ticks whose frame the sender never sent (discontinuous transmission, ``JitterBuffer/markUnsent(_:)``):
        /// a concealment (the decoder's comfort noise) or silence, but not loss. Frames concealed or silent
        /// before the mark came are moved here from ``concealed`` and ``silence``.
        public var unsent = 0
        /// Ticks that played silence, before playout started or in DTX (``Output/silence``).
        public var silence = 0
        /// Ticks that inserted a concealment or silence to grow the delay (no frame was missing for it).
        public var stretched = 0
        /// Frames skipped to shrink the delay (missing frames passed over, or present frames dropped).
        public var skipped = 0
        /// Packets thrown away for lack of room or by a resync.
        public var discarded = 0
        /// Times the buffer abandoned its timeline and followed a new one.
        public var resyncs = 0
        /// Current playout delay in microseconds, as measured at the last tick.
        public var currentDelay: UInt64 = 0
        /// Target playout delay in microseconds.
        public var targetDelay: UInt64 = 0

        /// Concealed frames as a percentage of frames due (played + recovered + concealed): the E-model's
        /// Ppl, over what the sender sent. Silence, frames the sender left out (``unsent``) and stretching
        /// are not loss and are excluded.
        public var concealedPercent: Double {
            let due = played + recoveredByFEC + concealed
            return due == 0 ? 0 : Double(concealed) * 100 / Double(due)
        }

        /// Late packets as a percentage of packets received.
        public var latePercent: Double {
            received == 0 ? 0 : Double(late) * 100 / Double(received)
        }
    }

    enum Phase: Sendable {
        /// No packet yet.
        case idle
        /// Packets are arriving; playout begins at the first tick whose delay reaches the target band.
        case buffering
        /// Playing one frame per tick.
        case playing
    }

    struct Slot: Sendable {
        var frame: UInt64
        var payload: [UInt8]
        /// Stored from a redundant copy (the frame's own packet did not come first).
        var redundant = false
    }

    /// Consecutive out-of-window packets seen so far.
    struct ResyncEvidence: Sendable {
        var count: Int
        var firstArrival: UInt64
        var lastFrame: UInt64
    }

    /// The tunables in force.
    public let configuration: Configuration
    /// Counters and delays.
    public internal(set) var statistics = Statistics()

    var phase = Phase.idle
    var slots: [Slot?]
    /// Frames currently stored.
    public internal(set) var bufferedFrames = 0
    /// The frame due at the next tick (while playing), or the lowest stored frame (while buffering).
    var nextFrame: UInt64 = 0
    /// Frame index the transit times are measured from (the first frame of the timeline).
    var referenceFrame: UInt64 = 0
    var history: TransitHistory
    /// Target delay the window alone asks for (before decay).
    var windowTarget: UInt64
    var target: UInt64
    /// Bit i set: frame `nextFrame − 1 − i` was received (duplicate detection behind the playout point).
    var receivedBehind: UInt64 = 0
    var missingRun = 0
    var isSilent = false
    var ticksSinceStretch = Int.max / 2
    var ticksSinceDrop = Int.max / 2
    var evidence: ResyncEvidence?
    /// The largest distance of the redundant copies arriving, and when the last one came.
    var redundancy: (distance: UInt64, lastArrival: UInt64)?
    /// Frames ahead of the playout position the sender is known not to have sent (ascending, disjoint).
    var unsentAhead: [Range<UInt64>] = []
    /// How the last ``outcomeMemory`` frames behind the playout position were counted, at `frame % outcomeMemory`.
    var outcomes: [(frame: UInt64, outcome: Outcome)]
    static let outcomeMemory = 64

    /// What a passed frame was counted as, for ``markUnsent(_:)``.
    enum Outcome: Sendable {
        case other, concealed, silence, unsent
    }

    /// A buffer with the given tunables.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.slots = Array(repeating: nil, count: configuration.capacity)
        self.history = TransitHistory(capacity: configuration.historySize)
        self.windowTarget = configuration.minDelay
        self.target = configuration.initialDelay
        self.statistics.targetDelay = configuration.initialDelay
        self.outcomes = Array(repeating: (UInt64.max, .other), count: Self.outcomeMemory)
    }

    /// True once playout has started (the first frame has been due).
    public var isPlaying: Bool {
        if case .playing = phase { return true }
        return false
    }

    /// The target playout delay in milliseconds.
    public var targetDelayMilliseconds: Double { Double(target) / 1000 }

    // MARK: Inserting

    /// Accepts one received packet.
    ///
    /// - Parameters:
    ///   - frame: the sender's media frame index (media time in 20 ms frames).
    ///   - payload: the encoded frame, opaque to the buffer.
    ///   - arrival: receive time, microseconds on the receiver's clock.
    ///
    /// Duplicates and frames whose tick has passed are dropped and counted; a packet far outside the
    /// window is dropped but may, with others like it, trigger a resync (see the type's documentation).
    public mutating func insert(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        statistics.received += 1
        switch phase {
        // The first packet of a timeline anchors it; playout waits for the target delay.
        case .idle:
            startTimeline(frame: frame, payload: payload, arrival: arrival)
        // Before playout the window may still slide down to take reordered earlier frames.
        case .buffering:
            if frame >= nextFrame, frame - nextFrame < UInt64(configuration.capacity) {
                accept(frame: frame, payload: payload, arrival: arrival)
            } else if frame < nextFrame, highestStored() - frame < UInt64(configuration.capacity) {
                nextFrame = frame
                accept(frame: frame, payload: payload, arrival: arrival)
            } else {
                reject(frame: frame, payload: payload, arrival: arrival, behind: frame < nextFrame)
            }
        // While playing, the window is [nextFrame, nextFrame + capacity); just behind it is late.
        case .playing:
            let capacity = UInt64(configuration.capacity)
            if frame >= nextFrame, frame - nextFrame < capacity {
                accept(frame: frame, payload: payload, arrival: arrival)
            } else if frame < nextFrame, nextFrame - frame <= capacity {
                lateArrival(frame: frame, payload: payload, arrival: arrival)
            } else {
                reject(frame: frame, payload: payload, arrival: arrival, behind: frame < nextFrame)
            }
        }
    }

    /// Accepts a redundant copy of `frame` that arrived `distance` frames late, inside a later packet.
    ///
    /// The copy fills the frame's slot when the frame is still ahead of the playout position, inside the
    /// window, and not stored; otherwise it is dropped without a count (its frame was received, played,
    /// passed or is out of range: a copy is never evidence of anything). Before playout starts, copies are
    /// ignored: the first packets anchor the timeline.
    public mutating func insertRedundant(frame: UInt64, payload: [UInt8], distance: UInt64, arrival: UInt64) {
        statistics.redundantReceived += 1
        // The room follows the largest distance among the copies still coming.
        if let current = redundancy, arrival >= current.lastArrival,
            arrival - current.lastArrival <= configuration.redundancyMemory, current.distance > distance {
            redundancy = (current.distance, arrival)
        } else {
            redundancy = (max(distance, 1), arrival)
            refreshTarget()
        }
        guard case .playing = phase, frame >= nextFrame, frame - nextFrame < UInt64(configuration.capacity) else { return }
        let index = slotIndex(frame)
        guard slots[index]?.frame != frame else { return }
        // In the playing phase every stored frame is inside the window, so the slot is free.
        slots[index] = Slot(frame: frame, payload: payload, redundant: true)
        bufferedFrames += 1
    }

    /// Delay added for redundant copies of distance `d`: `d` frames less half a frame. A copy arrives `d`
    /// frames after its frame's own packet would have; the steering plays a frame up to half a frame
    /// before the target, so the target must be `d × 20 − 10` ms above what the own packets need.
    var redundancyRoom: UInt64 {
        guard let redundancy else { return 0 }
        return redundancy.distance &* Self.frameDuration &- Self.frameDuration / 2
    }

    /// Recomputes the window's target after the room for redundant copies changed (a larger room raises
    /// the target at once; a smaller one lets it decay).
    mutating func refreshTarget() {
        windowTarget = clampTarget(history.deviation(percentile: configuration.percentile))
        if windowTarget > target { target = windowTarget }
        statistics.targetDelay = target
    }

    /// Starts a timeline at this packet: the buffer is empty, the transit window is fresh.
    mutating func startTimeline(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        referenceFrame = frame
        nextFrame = frame
        receivedBehind = 0
        missingRun = 0
        isSilent = false
        evidence = nil
        history.removeAll()
        phase = .buffering
        accept(frame: frame, payload: payload, arrival: arrival)
    }

    /// Stores an in-window frame, or counts it as a duplicate.
    mutating func accept(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        let index = slotIndex(frame)
        if slots[index]?.frame == frame {
            if slots[index]!.redundant {
                // Its copy came first: keep the copy (the same bytes), count the packet as received.
                slots[index]!.redundant = false
                evidence = nil
                recordTransit(frame: frame, arrival: arrival, late: false)
            } else {
                statistics.duplicate += 1
            }
            return
        }
        if slots[index] != nil {
            // Only reachable while buffering, after the window slid down: the old frame is out of range.
            statistics.discarded += 1
            bufferedFrames -= 1
        }
        slots[index] = Slot(frame: frame, payload: payload)
        bufferedFrames += 1
        evidence = nil
        recordTransit(frame: frame, arrival: arrival, late: false)
    }

    /// A frame just behind the playout position: a duplicate of one received, or late.
    mutating func lateArrival(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        let distance = nextFrame - frame
        if distance <= 64 {
            let bit: UInt64 = 1 << (distance - 1)
            if receivedBehind & bit != 0 {
                statistics.duplicate += 1
                return
            }
            receivedBehind |= bit
        }
        statistics.late += 1
        recordTransit(frame: frame, arrival: arrival, late: true)
        // Lateness a delay within range could explain is handled by growing; beyond that it may be a restart.
        if distance * Self.frameDuration > configuration.maxDelay {
            gatherEvidence(frame: frame, payload: payload, arrival: arrival)
        }
    }

    /// A frame outside the window: dropped, but possibly the start of a new timeline.
    mutating func reject(frame: UInt64, payload: [UInt8], arrival: UInt64, behind: Bool) {
        if behind {
            statistics.late += 1
        } else {
            statistics.discarded += 1
        }
        gatherEvidence(frame: frame, payload: payload, arrival: arrival)
    }

    /// Counts an unacceptable packet toward a resync, and resyncs once the evidence suffices.
    mutating func gatherEvidence(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        let capacity = UInt64(configuration.capacity)
        if var current = evidence, max(frame, current.lastFrame) - min(frame, current.lastFrame) < capacity {
            current.count += 1
            current.lastFrame = frame
            evidence = current
        } else {
            evidence = ResyncEvidence(count: 1, firstArrival: arrival, lastFrame: frame)
        }
        guard let current = evidence, current.count >= configuration.resyncPackets,
            arrival >= current.firstArrival, arrival - current.firstArrival >= configuration.resyncSpan
        else { return }
        // Undo the drop count of the packet we are about to keep.
        if frame >= nextFrame { statistics.discarded -= 1 } else { statistics.late -= 1 }
        resync(frame: frame, payload: payload, arrival: arrival)
    }

    /// Forgets the stored frames and follows the timeline `frame` belongs to.
    mutating func resync(frame: UInt64, payload: [UInt8], arrival: UInt64) {
        statistics.resyncs += 1
        statistics.discarded += bufferedFrames
        for index in slots.indices { slots[index] = nil }
        bufferedFrames = 0
        phase = .idle
        startTimeline(frame: frame, payload: payload, arrival: arrival)
    }

    /// Records a packet's transit and raises the target if the window (or a late packet) asks for it.
    mutating func recordTransit(frame: UInt64, arrival: UInt64, late: Bool) {
        let transit = self.transit(frame: frame, arrival: arrival)
        history.record(transit)
        let deviation = history.deviation(percentile: configuration.percentile)
        windowTarget = clampTarget(deviation)
        if windowTarget > target { target = windowTarget }
        if late, let floor = history.minimum {
            // Grow at once to cover the packet that just missed its tick.
            target = max(target, clampTarget(transit - floor))
        }
        statistics.targetDelay = target
    }

    /// Deviation plus one frame (the tick phase) plus the room for redundant copies, clamped to the
    /// configured range.
    func clampTarget(_ deviation: Int64) -> UInt64 {
        let wanted = UInt64(max(deviation, 0)) &+ Self.frameDuration &+ redundancyRoom
        return min(max(wanted, configuration.minDelay), configuration.maxDelay)
    }

    /// `arrival − media time`, microseconds, relative to the timeline's reference frame.
    func transit(frame: UInt64, arrival: UInt64) -> Int64 {
        let frames = Int64(bitPattern: frame &- referenceFrame)
        return Int64(bitPattern: arrival) &- frames &* Int64(Self.frameDuration)
    }

    func slotIndex(_ frame: UInt64) -> Int {
        Int(frame % UInt64(configuration.capacity))
    }

    /// Highest stored frame (only meaningful while something is stored).
    func highestStored() -> UInt64 {
        slots.reduce(nextFrame) { highest, slot in max(highest, slot?.frame ?? highest) }
    }
}
