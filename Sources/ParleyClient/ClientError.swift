import ParleyWire

/// Why a client operation failed. Shaped like swift-nio-ssh's `NIOSSHError`: a ``code`` to branch on, the
/// server's own code where there is one, and a message for people. Two errors are equal when their codes are.
public struct ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, open to new cases.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        // Fatal server answers (`error|<code>|…`, docs/PROTOCOL.md §3.2), one code each.
        /// `error|bad-login`: unknown user or device, revoked device, or a signature that does not verify.
        public static let loginRefused = Code("loginRefused")
        /// `error|stale`: the login timestamp is outside the server's window (check the clock).
        public static let loginStale = Code("loginStale")
        /// `error|replay`: a second login on one connection (a client bug).
        public static let loginReplayed = Code("loginReplayed")
        /// `error|timeout`: no login within the server's deadline.
        public static let loginTimeout = Code("loginTimeout")
        /// `error|not-logged-in`: a command before `welcome` (a client bug).
        public static let notLoggedIn = Code("notLoggedIn")
        /// `error|too-long`: the server refused a line of ours as too long.
        public static let lineTooLong = Code("lineTooLong")
        /// `error|protocol`: the server refused a frame of ours as malformed.
        public static let protocolError = Code("protocolError")

        // Answers to one command.
        /// `nak|<cseq>|<code>|…`: the server processed the command and refused it; see ``ClientError/nakCode``.
        public static let refused = Code("refused")

        // Local conditions.
        /// TCP or TLS could not be established.
        public static let connectionFailed = Code("connectionFailed")
        /// The connection closed before the operation finished.
        public static let disconnected = Code("disconnected")
        /// The client was closed, or stopped after a fatal error.
        public static let closed = Code("closed")
        /// An operation that needs a logged-in session (or a connection) came first.
        public static let notReady = Code("notReady")
        /// The server sent something the protocol does not allow (a malformed or unexpected frame).
        public static let serverViolation = Code("serverViolation")
        /// The server has no devices for this user.
        public static let unknownUser = Code("unknownUser")
        /// A device bundle from the server does not verify.
        public static let invalidBundle = Code("invalidBundle")
        /// A call id this client does not know (it did not place or receive that call).
        public static let unknownCall = Code("unknownCall")
        /// A payload, message or line larger than the protocol allows.
        public static let tooLarge = Code("tooLarge")
        /// The client state file or contacts file could not be read or written.
        public static let stateFile = Code("stateFile")
        /// Another process holds this device's client state.
        public static let deviceInUse = Code("deviceInUse")
        /// A signed offer, answer or candidate did not verify against the pinned key.
        public static let badSignature = Code("badSignature")

        /// The code's name.
        public var description: String { name }
    }

    /// What went wrong.
    public let code: Code
    /// The server's `nak` code, for ``Code/refused``.
    public let nakCode: ServerFrame.NakCode?
    private let message: String

    init(_ code: Code, nakCode: ServerFrame.NakCode? = nil, _ message: String) {
        self.code = code
        self.nakCode = nakCode
        self.message = message
    }

    /// Equal by code (and `nak` code); the message is not compared.
    public static func == (a: ClientError, b: ClientError) -> Bool { a.code == b.code && a.nakCode == b.nakCode }
    /// Hashes what ``==`` compares.
    public func hash(into h: inout Hasher) {
        h.combine(code)
        h.combine(nakCode)
    }

    /// A sentence for logs and people.
    public var description: String { message }

    /// Whether reconnecting could help: false for errors that will recur on every attempt.
    var isRetryable: Bool {
        code != .loginRefused && code != .loginReplayed && code != .notLoggedIn && code != .closed
            && code != .deviceInUse && code != .stateFile
    }

    // MARK: Constructors

    /// The one mapping from the server's fatal `error|<code>|<reason>` to a client error.
    static func server(_ code: ServerFrame.ErrorCode, reason: String) -> ClientError {
        let mapped: Code =
            switch code {
            case .badLogin: .loginRefused
            case .stale: .loginStale
            case .replay: .loginReplayed
            case .timeout: .loginTimeout
            case .notLoggedIn: .notLoggedIn
            case .tooLong: .lineTooLong
            case .protocolError: .protocolError
            }
        return ClientError(mapped, "server error \(code.rawValue): \(reason)")
    }

    /// The server's `nak` for one command.
    static func refused(_ nak: ServerFrame.NakCode, reason: String, verb: String) -> ClientError {
        ClientError(.refused, nakCode: nak, "\(verb) refused: \(nak.rawValue)\(reason.isEmpty ? "" : ": \(reason)")")
    }

    static func violation(_ what: String) -> ClientError {
        ClientError(.serverViolation, "server violated the protocol: \(what)")
    }
    static func disconnected(_ what: String = "connection closed") -> ClientError { ClientError(.disconnected, what) }
    static func closed() -> ClientError { ClientError(.closed, "client closed") }
    static func notReady(_ what: String) -> ClientError { ClientError(.notReady, what) }
    static func connectionFailed(_ what: String) -> ClientError { ClientError(.connectionFailed, what) }
    static func unknownUser(_ user: SignalName) -> ClientError {
        ClientError(.unknownUser, "no devices for user \(user)")
    }
    static func invalidBundle(_ user: SignalName, _ device: String) -> ClientError {
        ClientError(.invalidBundle, "the server's bundle for \(user)/\(device) does not verify")
    }
    static func unknownCall(_ call: SignalID) -> ClientError { ClientError(.unknownCall, "unknown call \(call)") }
    static func tooLarge(_ what: String) -> ClientError { ClientError(.tooLarge, what) }
    static func stateFile(_ path: String, _ what: String) -> ClientError { ClientError(.stateFile, "\(path): \(what)") }
    static func deviceInUse(_ path: String) -> ClientError {
        ClientError(.deviceInUse, "another parley client is using this device (lock \(path) is held)")
    }
    static func badSignature(_ what: String) -> ClientError { ClientError(.badSignature, what) }
}
