import Foundation
import ParleyCrypto

/// The accounts file: a second, hand-edited source of devices next to the store, read at start and
/// again on SIGHUP.
///
/// The unix conf format of `parley.conf`, one device per line:
///
/// ```
/// # Alice's devices
/// alice.phone  = parley1.3q2-…      # added 2025-03-01
/// alice.laptop = parley1.Zx9_…
/// ```
///
/// The key is `USER.DEVICE` and the value the device's public bundle as `parley keygen` prints it. `#`
/// starts a comment, on its own line or after a value (no bundle or name contains `#`); blank lines and
/// spaces around `=` are ignored. Names follow `[a-z0-9][a-z0-9._-]{0,31}` but, because `.` separates
/// them here, a key with more than one `.` is refused rather than guessed at: accounts whose names
/// contain `.` are added with `parley user add` instead. A line that is not `KEY = VALUE`, a bad name,
/// a bundle that does not decode or whose signature does not verify, and a device listed twice are
/// errors naming `file:line`; the whole file is then refused (the server keeps its previous view).
/// Removing a line takes the device away at the next reload.
public enum AccountsFile {
    /// Parses the file's text; `path` only names it in errors. Pure: no I/O.
    public static func parse(_ text: String, path: String) throws(AccountsFileError) -> AccountsSnapshot {
        var snapshot = AccountsSnapshot(path: path)
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so it must be named as a separator of its own.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let content = rawLine.prefix { $0 != "#" }.trimmingCharacters(in: Self.blank)
            if content.isEmpty { continue }
            let line = lineNumber
            guard let equals = content.firstIndex(of: "=") else {
                throw .syntax(path: path, line: line, "expected 'USER.DEVICE = BUNDLE', got '\(content.prefix(40))'")
            }
            let key = content[..<equals].trimmingCharacters(in: .whitespaces)
            let value = content[content.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                let reason = parts.count < 2
                    ? "expected 'USER.DEVICE' before '=', got '\(key.prefix(40))'"
                    : "'\(key.prefix(70))' is ambiguous: names in this file cannot contain '.' "
                        + "(add such accounts with `parley user add`)"
                throw .syntax(path: path, line: line, reason)
            }
            let user = String(parts[0])
            let device = String(parts[1])
            guard AccountName.isValid(user) else { throw .invalidName(path: path, line: line, kind: "user", user) }
            guard AccountName.isValid(device) else {
                throw .invalidName(path: path, line: line, kind: "device", device)
            }
            guard !value.isEmpty else {
                throw .invalidBundle(path: path, line: line, key: key, "the bundle is missing")
            }
            let bundle: DevicePublicBundle
            do {
                bundle = try DevicePublicBundle(encoded: value)
            } catch {
                throw .invalidBundle(path: path, line: line, key: key, "\(error)")
            }
            if let first = snapshot.line(user: user, device: device) {
                throw .duplicate(path: path, line: line, key: key, firstLine: first)
            }
            snapshot.insert(user: user, device: device, bundle: bundle, line: line)
        }
        return snapshot
    }

    /// Spaces, tabs and the CR of a CRLF line end.
    private static let blank = CharacterSet.whitespaces.union(CharacterSet(charactersIn: "\r"))

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(AccountsFileError) -> AccountsSnapshot {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, error.localizedDescription)
        }
        return try parse(text, path: path)
    }
}

/// The devices an accounts file lists, as of one read of it.
public struct AccountsSnapshot: Sendable, Equatable {
    /// The file the snapshot was read from.
    public let path: String
    /// Every listed device's bundle, by user, then device.
    public private(set) var users: [String: [String: DevicePublicBundle]] = [:]
    private var lines: [String: [String: Int]] = [:]

    /// An empty snapshot (no file, or a file with no devices).
    public init(path: String) {
        self.path = path
    }

    /// The 1-based line that lists `user`.`device`, or nil.
    public func line(user: String, device: String) -> Int? { lines[user]?[device] }

    mutating func insert(user: String, device: String, bundle: DevicePublicBundle, line: Int) {
        users[user, default: [:]][device] = bundle
        lines[user, default: [:]][device] = line
    }
}
