#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a device bundle could not be decoded or a key file could not be read or written.
///
/// Shaped like swift-nio-ssh's `NIOSSHError`: a ``code`` to branch on, plus diagnostics that only feed
/// ``description``. Two errors are equal when their codes are. No error ever carries key material: the
/// messages name paths, line numbers, lengths and modes, never the contents of a key line.
public struct KeyFileError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, open to new cases without breaking callers' code.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case wrongPrefix, wrongLength, badBase64, badSignature
            case fileExists, insecurePermissions, malformedKeyFile, systemCallFailed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A device bundle that does not start with `parley1.`.
        public static let wrongPrefix = Code(.wrongPrefix)
        /// A device bundle whose decoded bytes have the wrong length.
        public static let wrongLength = Code(.wrongLength)
        /// A device bundle that is not canonical unpadded base64url.
        public static let badBase64 = Code(.badBase64)
        /// A device bundle whose signature does not verify.
        public static let badSignature = Code(.badSignature)
        /// ``KeyFile/write(_:to:force:)`` found a file already there and `force` was false.
        public static let fileExists = Code(.fileExists)
        /// A key file readable or writable by group or others.
        public static let insecurePermissions = Code(.insecurePermissions)
        /// A key file whose content is not in the expected format (bad header, line, base64 or length).
        public static let malformedKeyFile = Code(.malformedKeyFile)
        /// An operating-system call failed (open, read, fsync, rename, …).
        public static let systemCallFailed = Code(.systemCallFailed)

        /// The code's name, e.g. `fileExists`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// The file concerned, when there is one.
    public let path: String?
    /// The 1-based line of the file concerned, when there is one.
    public let line: Int?
    private let message: String

    private init(_ code: Code, path: String? = nil, line: Int? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.line = line
        self.message = message
    }

    public static func == (a: KeyFileError, b: KeyFileError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// `path:line: message`, `path: message`, or just the message.
    public var description: String {
        switch (path, line) {
        case let (path?, line?): "\(path):\(line): \(message)"
        case let (path?, nil): "\(path): \(message)"
        case (nil, _): message
        }
    }

    // MARK: Constructors

    /// A bundle that does not start with `expected`.
    public static func wrongPrefix(expected: String) -> KeyFileError {
        KeyFileError(.wrongPrefix, "device bundle must start with '\(expected)'")
    }

    /// `what` decoded to `actual` bytes instead of `expected`.
    public static func wrongLength(what: String, expected: Int, actual: Int) -> KeyFileError {
        KeyFileError(.wrongLength, "\(what) must be \(expected) bytes, got \(actual)")
    }

    /// `what` is not canonical unpadded base64url.
    public static func badBase64(what: String) -> KeyFileError {
        KeyFileError(.badBase64, "\(what) is not valid unpadded base64url")
    }

    /// A bundle whose signature does not verify.
    public static func badSignature() -> KeyFileError {
        KeyFileError(.badSignature, "device bundle signature does not verify (corrupted or forged)")
    }

    /// A key file already at `path`.
    public static func fileExists(path: String) -> KeyFileError {
        KeyFileError(
            .fileExists,
            path: path,
            "key file already exists; refusing to overwrite it (pass --force to replace it)"
        )
    }

    /// A key file at `path` whose permission bits `mode` allow group or other access.
    public static func insecurePermissions(path: String, mode: mode_t) -> KeyFileError {
        let octal = String(mode & 0o7777, radix: 8)
        let padded = String(repeating: "0", count: max(0, 4 - octal.count)) + octal
        return KeyFileError(
            .insecurePermissions,
            path: path,
            "permissions \(padded) are too open; a private key file must not be accessible by group or others "
                + "(run: chmod 600 '\(path)')"
        )
    }

    /// Content at `path` (and `line`, when known) that is not a valid key file.
    public static func malformedKeyFile(path: String, line: Int?, _ reason: String) -> KeyFileError {
        KeyFileError(.malformedKeyFile, path: path, line: line, reason)
    }

    /// The system call `call` failed on `path` with `errno`.
    public static func systemCallFailed(_ call: String, path: String, errno: Int32) -> KeyFileError {
        KeyFileError(.systemCallFailed, path: path, "\(call) failed: \(String(cString: strerror(errno)))")
    }
}
