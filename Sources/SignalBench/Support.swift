import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Command line

/// `--key value` / `--key=value` options; every option is optional and has a default.
struct Options {
    private var values: [String: String] = [:]
    private(set) var used: Set<String> = []

    init(_ args: ArraySlice<String>) throws {
        var i = args.startIndex
        while i < args.endIndex {
            let arg = args[i]
            guard arg.hasPrefix("--") else { throw BenchError("unexpected argument '\(arg)'") }
            var name = String(arg.dropFirst(2))
            if let eq = name.firstIndex(of: "=") {
                values[String(name[..<eq])] = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else {
                guard i + 1 < args.endIndex else { throw BenchError("--\(name) needs a value") }
                values[name] = args[i + 1]
                i += 1
            }
            i += 1
        }
    }

    mutating func string(_ name: String, _ fallback: String) -> String {
        used.insert(name)
        return values[name] ?? fallback
    }

    mutating func int(_ name: String, _ fallback: Int) throws -> Int {
        used.insert(name)
        guard let text = values[name] else { return fallback }
        guard let v = Int(text) else { throw BenchError("--\(name) must be an integer, got '\(text)'") }
        return v
    }

    mutating func double(_ name: String, _ fallback: Double) throws -> Double {
        used.insert(name)
        guard let text = values[name] else { return fallback }
        guard let v = Double(text) else { throw BenchError("--\(name) must be a number, got '\(text)'") }
        return v
    }

    /// Refuses options nobody asked for (typos).
    func checkAllUsed() throws {
        let unknown = Set(values.keys).subtracting(used)
        if !unknown.isEmpty { throw BenchError("unknown option(s): \(unknown.sorted().map { "--\($0)" }.joined(separator: ", "))") }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ text: String) { description = text }
}

// MARK: Clocks

/// Monotonic nanoseconds, on the same clock as NIO's deadlines (`NIODeadline.uptimeNanoseconds`).
@inline(__always)
func monoNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Wall clock in milliseconds since the epoch (protocol timestamps).
@inline(__always)
func wallMillis() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) &* 1000 &+ UInt64(ts.tv_nsec) / 1_000_000
}

// MARK: /proc

/// CPU and memory of a process, from /proc (Linux).
enum Proc {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of the whole process, in seconds.
    static func cpuSeconds(pid: Int32) -> Double {
        guard let ticks = statTicks(path: "/proc/\(pid)/stat") else { return .nan }
        return Double(ticks) / ticksPerSecond
    }

    /// utime + stime from a stat file (fields 14 and 15; the comm field may contain spaces).
    static func statTicks(path: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ")
        // rest[0] is field 3 (state); utime is field 14 → rest[11], stime rest[12].
        guard rest.count > 13, let u = UInt64(rest[11]), let s = UInt64(rest[12]) else { return nil }
        return u + s
    }

    /// Per-thread CPU ticks and names.
    static func threads(pid: Int32) -> [Int: (name: String, ticks: UInt64)] {
        var out: [Int: (name: String, ticks: UInt64)] = [:]
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return out }
        for t in tids {
            guard let tid = Int(t), let ticks = statTicks(path: "/proc/\(pid)/task/\(t)/stat") else { continue }
            let name = (try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            out[tid] = (name, ticks)
        }
        return out
    }

    /// A line of /proc/PID/status, in kB (VmRSS, VmHWM, RssAnon, …).
    static func statusKB(pid: Int32, _ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// Busy and total jiffies of the whole machine (/proc/stat "cpu" line).
    static func machineTicks() -> (busy: UInt64, total: UInt64) {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return (0, 0) }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard v.count >= 5 else { return (0, 0) }
        let total = v.prefix(8).reduce(0, +)
        let idle = v[3] + v[4]
        return (total - idle, total)
    }
}

/// Snapshot of server, client and machine CPU, to report what a phase cost.
struct CPUSnapshot {
    let at: UInt64
    let server: Double
    let client: Double
    let serverThreads: [Int: (name: String, ticks: UInt64)]
    let machine: (busy: UInt64, total: UInt64)

    init(serverPID: Int32) {
        at = monoNanos()
        server = Proc.cpuSeconds(pid: serverPID)
        client = Proc.cpuSeconds(pid: getpid())
        serverThreads = Proc.threads(pid: serverPID)
        machine = Proc.machineTicks()
    }

    /// What happened between `self` and `later`.
    func delta(to later: CPUSnapshot) -> CPUUse {
        let seconds = Double(later.at - at) / 1e9
        var threads: [(name: String, tid: Int, cores: Double)] = []
        for (tid, t) in later.serverThreads {
            let before = serverThreads[tid]?.ticks ?? 0
            let used = Double(t.ticks &- before) / Proc.ticksPerSecond / seconds
            if used >= 0.02 { threads.append((t.name, tid, used)) }
        }
        threads.sort { $0.cores > $1.cores }
        let busy = Double(later.machine.busy &- machine.busy) / Proc.ticksPerSecond / seconds
        let serverCores = (later.server - server) / seconds
        let clientCores = (later.client - client) / seconds
        return CPUUse(seconds: seconds, serverCores: serverCores, clientCores: clientCores,
                      otherCores: max(0, busy - serverCores - clientCores), serverThreads: threads)
    }
}

struct CPUUse {
    let seconds: Double
    let serverCores: Double
    let clientCores: Double
    let otherCores: Double
    let serverThreads: [(name: String, tid: Int, cores: Double)]

    var summary: String {
        let top = serverThreads.prefix(4).map { "\($0.name)[\($0.tid)] \(fmt($0.cores, 2))" }.joined(separator: ", ")
        return "server \(fmt(serverCores, 2)) cores (\(top)); bench \(fmt(clientCores, 2)); other processes \(fmt(otherCores, 2))"
    }
}

// MARK: Statistics and formatting

/// Percentile (nearest rank) of unsorted samples in microseconds.
func percentile(_ sorted: [UInt32], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return Double(sorted[min(max(rank, 0), sorted.count - 1)])
}

func fmt(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

func grouped(_ v: Double) -> String {
    guard v.isFinite else { return "n/a" }
    let n = Int(v.rounded())
    let s = String(abs(n))
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

func log(_ text: String) {
    FileHandle.standardError.write(Data("[SignalBench] \(text)\n".utf8))
}

/// A report line on stdout, written at once (unbuffered, so a pipe or file sees it as it is made).
func say(_ text: String = "") {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
