import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// Where finished log lines go: a ``RotatingLogFile`` and/or stderr, written either by the caller at once
/// (``init(file:stderr:)``, for tools and tests) or by a thread of its own (``background(file:stderr:)``,
/// what `parley serve` uses).
///
/// In the background form a log call only appends the line to a list under a lock; the writer thread
/// takes whatever has accumulated and writes it with one `write(2)` per destination, then rests 2 ms so a
/// burst of lines costs one wake-up. The event loops —
/// the signaling hub's above all, which logs every login and every call — never wait for the disk or
/// for whatever reads stderr. Lines keep their order. The price: lines not yet written when the process
/// is killed (SIGKILL, a crash) are lost — a window of a few milliseconds. A normal
/// shutdown calls ``flushAll()``.
public final class LogOutput: @unchecked Sendable {
    let file: RotatingLogFile?
    let stderr: Bool
    /// 1 while lines wait (the writer's wake-up condition), 0 otherwise. Guards `pending` and `writing`.
    private let lock: ConditionLock<Int>?
    private var pending: [String] = []
    private var writing = false

    private static let all = NIOLockedValueBox<[LogOutput]>([])

    /// Writes on the caller's thread.
    public init(file: RotatingLogFile?, stderr: Bool) {
        self.file = file
        self.stderr = stderr
        self.lock = nil
    }

    private init(file: RotatingLogFile?, stderr: Bool, background: Void) {
        self.file = file
        self.stderr = stderr
        self.lock = ConditionLock(value: 0)
    }

    /// Writes on a thread of its own, started here and never stopped (it sleeps while nothing is logged).
    public static func background(file: RotatingLogFile?, stderr: Bool) -> LogOutput {
        let output = LogOutput(file: file, stderr: stderr, background: ())
        let thread = Thread { output.run() }
        thread.name = "parley-log"
        thread.start()
        all.withLockedValue { $0.append(output) }
        return output
    }

    /// Writes one line (without its newline).
    public func write(_ line: String) {
        guard let lock else { return emit([line]) }
        lock.lock()
        pending.append(line)
        lock.unlock(withValue: 1)
    }

    /// Returns once every line written so far is out (at most `timeout` seconds).
    public func flush(timeout: TimeInterval = 2) {
        guard let lock else { return }
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            lock.lock()
            let done = pending.isEmpty && !writing
            lock.unlock()
            if done { return }
            usleep(500)
        }
    }

    /// ``flush(timeout:)`` on every background output of the process.
    public static func flushAll() {
        for output in all.withLockedValue({ $0 }) { output.flush() }
    }

    private func run() {
        guard let lock else { return }
        var lines: [String] = []
        while true {
            lock.lock(whenValue: 1)
            swap(&lines, &pending)
            writing = true
            lock.unlock(withValue: 0)
            emit(lines)
            lines.removeAll(keepingCapacity: true)
            lock.lock()
            writing = false
            lock.unlock()
            // Let lines gather for a moment: one wake-up and one write per couple of milliseconds at most,
            // however many lines a busy loop logs. While the writer sleeps here a logging thread's unlock
            // finds no waiter, so logging a line costs no system call.
            usleep(2_000)
        }
    }

    private func emit(_ lines: [String]) {
        file?.write(lines: lines)
        if stderr || file == nil {
            var bytes: [UInt8] = []
            for line in lines {
                bytes += line.utf8
                bytes.append(0x0A)
            }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
                if n <= 0 { break }
                offset += n
            }
        }
    }
}
