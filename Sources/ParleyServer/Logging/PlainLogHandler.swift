import Foundation
import Logging

/// A swift-log handler writing one plain-text line per record to a rotating file and/or stderr:
/// `2026-11-23T12:00:00.123Z info [stun] message key=value`.
///
/// Metadata values under keys that name secrets (see ``redactedKeys``) are replaced by `<redacted>`,
/// a last line of defence: call sites must not log secrets in the first place.
public struct PlainLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let output: LogOutput

    public static let redactedKeys: Set<String> = ["password", "secret", "key", "private_key", "signature", "nonce",
                                                   "offer", "answer", "body", "integrity"]

    /// Writes each line at once, on the thread that logs.
    public init(label: String, level: Logger.Level, file: RotatingLogFile?, stderr: Bool) {
        self.init(label: label, level: level, output: LogOutput(file: file, stderr: stderr))
    }

    public init(label: String, level: Logger.Level, output: LogOutput) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = Self.timestamp() + " " + event.level.rawValue + " [" + label + "] " + event.message.description
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() {
            let value = Self.redactedKeys.contains(key) ? "<redacted>" : "\(all[key]!)"
            line += " \(key)=\(value)"
        }
        output.write(line)
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = time_t(ts.tv_sec)
        var tm = tm()
        gmtime_r(&t, &tm)
        let ms = Int(ts.tv_nsec) / 1_000_000
        func p(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return "\(p(tm.tm_year + 1900, 4))-\(p(tm.tm_mon + 1, 2))-\(p(tm.tm_mday, 2))T\(p(tm.tm_hour, 2)):\(p(tm.tm_min, 2)):\(p(tm.tm_sec, 2)).\(p(Int32(ms), 3))Z"
    }
}
