/// A sliding window of relative transit times, the jitter buffer's view of network delay variation.
///
/// Each sample is `arrival − media time` in microseconds on an arbitrary common origin, so only
/// differences between samples mean anything. The window keeps the last ``capacity`` samples; the buffer
/// asks it for the smallest transit (the "fastest path" reference) and for a high percentile of the
/// deviations above that reference.
struct TransitHistory: Sendable {
    /// Most samples kept.
    let capacity: Int
    private var samples: [Int64]
    private var nextIndex = 0

    init(capacity: Int) {
        precondition(capacity > 0, "transit history needs room for at least one sample")
        self.capacity = capacity
        self.samples = []
        self.samples.reserveCapacity(capacity)
    }

    /// True before the first sample.
    var isEmpty: Bool { samples.isEmpty }

    /// Number of samples held.
    var count: Int { samples.count }

    /// Adds one transit sample, evicting the oldest once full.
    mutating func record(_ transit: Int64) {
        if samples.count < capacity {
            samples.append(transit)
        } else {
            samples[nextIndex] = transit
        }
        nextIndex = (nextIndex + 1) % capacity
    }

    /// Forgets every sample (a new sender timeline).
    mutating func removeAll() {
        samples.removeAll(keepingCapacity: true)
        nextIndex = 0
    }

    /// The smallest transit in the window, nil when empty.
    var minimum: Int64? { samples.min() }

    /// The `fraction` percentile (0...1, nearest-rank) of `transit − minimum` over the window, in
    /// microseconds; 0 when empty.
    func deviation(percentile fraction: Double) -> Int64 {
        guard let floor = minimum else { return 0 }
        let sorted = samples.sorted()
        let clamped = min(max(fraction, 0), 1)
        let rank = Int((clamped * Double(sorted.count)).rounded(.up))
        let index = min(max(rank - 1, 0), sorted.count - 1)
        return sorted[index] - floor
    }
}
