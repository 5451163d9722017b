import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// A plain-text log file that rotates every `interval` and when it reaches `maxSize`, keeping
/// `retention` rotated files (`parley.log.YYYYMMDD-HHMMSS`). Thread-safe; the clock is injected so
/// rotation can be tested without waiting a day.
public final class RotatingLogFile: Sendable {
    public let directory: String
    public let baseName: String
    public let maxSize: Int
    public let retention: Int
    public let interval: TimeInterval
    private let now: @Sendable () -> Date
    private let state: NIOLockedValueBox<State>

    struct State {
        var fd: CInt = -1
        var size = 0
        var openedAt = Date.distantPast
    }

    public init(directory: String, baseName: String = "parley.log", maxSize: Int, retention: Int,
                interval: TimeInterval = 86400, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.directory = directory
        self.baseName = baseName
        self.maxSize = maxSize
        self.retention = retention
        self.interval = interval
        self.now = now
        self.state = NIOLockedValueBox(State())
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        try state.withLockedValue { s in try open(&s) }
    }

    deinit {
        state.withLockedValue { s in if s.fd >= 0 { close(s.fd) } }
    }

    public var path: String { directory + "/" + baseName }

    /// Appends one line (a newline is added).
    public func write(_ line: String) {
        write(lines: [line])
    }

    /// Appends lines (a newline is added to each) with as few `write(2)`s as rotation allows: one, unless
    /// the file must rotate part-way.
    public func write(lines: [String]) {
        state.withLockedValue { s in
            let t = now()
            var batch: [UInt8] = []
            for line in lines {
                let length = line.utf8.count + 1
                if s.fd < 0 || s.size + batch.count + length > maxSize || t.timeIntervalSince(s.openedAt) >= interval {
                    append(&batch, to: &s)
                    rotate(&s, at: t)
                }
                batch += line.utf8
                batch.append(0x0A)
            }
            append(&batch, to: &s)
        }
    }

    private func append(_ batch: inout [UInt8], to s: inout State) {
        defer { batch.removeAll(keepingCapacity: true) }
        guard s.fd >= 0, !batch.isEmpty else { return }
        var offset = 0
        while offset < batch.count {
            let n = batch.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
            s.size += n
        }
    }

    private func open(_ s: inout State) throws {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var st = stat()
        fstat(fd, &st)
        s.fd = fd
        s.size = Int(st.st_size)
        // A file carried over from an earlier run rotates a day after it was last started, not after
        // this process started: use its modification time if it already has content.
        s.openedAt = s.size > 0 ? Date(timeIntervalSince1970: TimeInterval(st.st_mtim.tv_sec)) : now()
        if s.size == 0 { s.openedAt = now() }
    }

    private func rotate(_ s: inout State, at t: Date) {
        if s.fd >= 0 {
            close(s.fd)
            s.fd = -1
            if s.size > 0 {
                let f = DateFormatter()
                f.locale = Locale(identifier: "en_US_POSIX")
                f.timeZone = TimeZone(identifier: "UTC")
                f.dateFormat = "yyyyMMdd-HHmmss"
                var target = path + "." + f.string(from: t)
                var n = 1
                while FileManager.default.fileExists(atPath: target) {
                    target = path + "." + f.string(from: t) + "-\(n)"
                    n += 1
                }
                rename(path, target)
            }
        }
        prune()
        try? open(&s)
        s.openedAt = t
    }

    /// Deletes the oldest rotated files beyond `retention`.
    private func prune() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        let rotated = names.filter { $0.hasPrefix(baseName + ".") }.sorted()
        for name in rotated.dropLast(retention) { unlink(directory + "/" + name) }
    }
}
