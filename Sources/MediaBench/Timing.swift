// Clocks and small statistics for MediaBench.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Monotonic wall clock, nanoseconds (vDSO on Linux: cheap enough to read around each pipeline stage).
@inline(__always)
func wallNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CPU time consumed by the calling thread, nanoseconds (a system call on Linux: read it around whole
/// measurements only, never per packet).
@inline(__always)
func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CPU and wall time of one measured block.
struct Elapsed {
    var cpuNanos: UInt64
    var wallNanos: UInt64
}

/// Runs `body` and returns its thread CPU and wall time.
@inline(__always)
func measure(_ body: () throws -> Void) rethrows -> Elapsed {
    let c0 = threadCPUNanos()
    let w0 = wallNanos()
    try body()
    let w1 = wallNanos()
    let c1 = threadCPUNanos()
    return Elapsed(cpuNanos: c1 &- c0, wallNanos: w1 &- w0)
}

/// Median of a non-empty list (mean of the middle two for an even count).
func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty, "median of nothing")
    let sorted = values.sorted()
    let mid = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/// Fixed-point formatting without Foundation's locale machinery.
func fmt(_ value: Double, _ decimals: Int = 1) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = UInt64(rounded / scale)
    var text = String(whole)
    if decimals > 0 {
        let fraction = UInt64(rounded - Double(whole) * scale)
        var digits = String(fraction)
        while digits.count < decimals { digits = "0" + digits }
        text += "." + digits
    }
    return (value < 0 && rounded != 0 ? "-" : "") + text
}

/// Right-aligns `text` in `width` columns.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

/// Left-aligns `text` in `width` columns.
func padRight(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

/// A small deterministic PRNG (SplitMix64): the same source audio and jitter on every run.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }
}
