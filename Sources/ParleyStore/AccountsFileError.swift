/// Why the accounts file was refused, always naming the file and, when there is one, the line.
///
/// Same shape as ``SignalStoreError``: a ``code`` to branch on, a message for people, equality by
/// code. Messages quote names and keys, never a whole bundle.
public struct AccountsFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, open to new cases without breaking callers' code.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case unreadable, syntax, invalidName, invalidBundle, duplicate, conflict
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The file could not be read.
        public static let unreadable = Code(.unreadable)
        /// A line that is not `USER.DEVICE = BUNDLE` (or a key with more than one `.`).
        public static let syntax = Code(.syntax)
        /// A user or device name outside `[a-z0-9][a-z0-9._-]{0,31}`.
        public static let invalidName = Code(.invalidName)
        /// A bundle that is missing, malformed, or whose signature does not verify.
        public static let invalidBundle = Code(.invalidBundle)
        /// The same `USER.DEVICE` on two lines.
        public static let duplicate = Code(.duplicate)
        /// A device the store has with a different bundle (see ``AccountTable``).
        public static let conflict = Code(.conflict)

        /// The code's name, e.g. `duplicate`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The accounts file.
    public let path: String
    /// The 1-based line, when the problem is on one.
    public let line: Int?
    private let message: String

    private init(_ code: Code, path: String, line: Int?, _ message: String) {
        self.code = code
        self.path = path
        self.line = line
        self.message = message
    }

    public static func == (a: AccountsFileError, b: AccountsFileError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// `path:line: message`, or `path: message`.
    public var description: String {
        if let line { "\(path):\(line): \(message)" } else { "\(path): \(message)" }
    }

    // MARK: Constructors

    /// The file at `path` could not be read, for `reason`.
    public static func unreadable(path: String, _ reason: String) -> AccountsFileError {
        AccountsFileError(.unreadable, path: path, line: nil, "cannot read accounts file: \(reason)")
    }

    /// The line is not in the file's syntax.
    public static func syntax(path: String, line: Int, _ reason: String) -> AccountsFileError {
        AccountsFileError(.syntax, path: path, line: line, reason)
    }

    /// A `kind` ("user", "device") `name` that breaks the name rule.
    public static func invalidName(path: String, line: Int, kind: String, _ name: String) -> AccountsFileError {
        AccountsFileError(
            .invalidName, path: path, line: line,
            "invalid \(kind) name '\(name.prefix(40))' (want [a-z0-9][a-z0-9._-]{0,31})"
        )
    }

    /// The bundle of `key` (`user.device`) was refused for `reason`.
    public static func invalidBundle(path: String, line: Int, key: String, _ reason: String) -> AccountsFileError {
        AccountsFileError(.invalidBundle, path: path, line: line, "bad key for \(key): \(reason)")
    }

    /// `key` is listed again; first on `firstLine`.
    public static func duplicate(path: String, line: Int, key: String, firstLine: Int) -> AccountsFileError {
        AccountsFileError(.duplicate, path: path, line: line, "\(key) is listed twice (first on line \(firstLine))")
    }

    /// `key` has a different bundle in the store.
    public static func conflict(path: String, line: Int?, key: String) -> AccountsFileError {
        AccountsFileError(
            .conflict, path: path, line: line,
            "\(key) has a different key in the store (`parley user list`); remove it from one of the two"
        )
    }
}
