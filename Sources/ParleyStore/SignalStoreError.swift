/// Why a store operation was refused or failed.
///
/// Shaped like `KeyFileError`: a ``code`` to branch on (the server maps `quotaExceeded` to
/// `nak|quota`, the `parley user` command prints ``description``), diagnostics that only feed
/// ``description``, equality by code. Messages name users, devices, paths and sizes, never a bundle or
/// ciphertext.
public struct SignalStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, open to new cases without breaking callers' code.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidName, invalidBundle, userExists, deviceExists, unknownUser, unknownDevice, revoked
            case quotaExceeded, invalidMessage, schemaTooNew, storageFailed
            case inviteUnknown, inviteUsed, inviteExpired, inviteOtherUser
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A user or device name outside `[a-z0-9][a-z0-9._-]{0,31}`.
        public static let invalidName = Code(.invalidName)
        /// A device bundle that `DevicePublicBundle(encoded:)` refuses (format or signature).
        public static let invalidBundle = Code(.invalidBundle)
        /// ``SignalStore/addUser(_:at:)`` for a user that exists.
        public static let userExists = Code(.userExists)
        /// ``SignalStore/addDevice(_:to:bundle:at:)`` for a device the user already has.
        public static let deviceExists = Code(.deviceExists)
        /// A user the store does not know.
        public static let unknownUser = Code(.unknownUser)
        /// A device the store does not know for that user.
        public static let unknownDevice = Code(.unknownDevice)
        /// The user or device is revoked (already, or its name is taken by a revoked one).
        public static let revoked = Code(.revoked)
        /// The recipient's mailbox would exceed its quota (`nak|quota`).
        public static let quotaExceeded = Code(.quotaExceeded)
        /// A message without copies, with one device twice, or a negative sequence number.
        public static let invalidMessage = Code(.invalidMessage)
        /// The database was written by a newer version of parley (unknown migrations).
        public static let schemaTooNew = Code(.schemaTooNew)
        /// SQLite or the file system failed (open, I/O, disk full, locked past the busy timeout…).
        public static let storageFailed = Code(.storageFailed)
        /// No invite has this token (docs/PROTOCOL.md §3.8).
        public static let inviteUnknown = Code(.inviteUnknown)
        /// The invite was used already (invites are single use).
        public static let inviteUsed = Code(.inviteUsed)
        /// The invite's time ran out.
        public static let inviteExpired = Code(.inviteExpired)
        /// The invite is for another user name.
        public static let inviteOtherUser = Code(.inviteOtherUser)

        /// The code's name, e.g. `quotaExceeded`.
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let code: Code
    private let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (a: SignalStoreError, b: SignalStoreError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// A sentence for people, e.g. `user 'alice' already has a device 'phone'`.
    public var description: String { message }

    // MARK: Constructors

    /// `name`, meant as a `kind` ("user", "device"), breaks the name rule.
    public static func invalidName(_ kind: String, _ name: String) -> SignalStoreError {
        SignalStoreError(.invalidName, "invalid \(kind) name '\(name.prefix(40))' (want [a-z0-9][a-z0-9._-]{0,31})")
    }

    /// The bundle for `user`'s `device` was refused; `reason` is the decoder's message.
    public static func invalidBundle(user: String, device: String, reason: String) -> SignalStoreError {
        SignalStoreError(.invalidBundle, "bad key for \(user).\(device): \(reason)")
    }

    /// `user` exists already.
    public static func userExists(_ user: String) -> SignalStoreError {
        SignalStoreError(.userExists, "user '\(user)' already exists")
    }

    /// `user` has a `device` already.
    public static func deviceExists(user: String, device: String) -> SignalStoreError {
        SignalStoreError(.deviceExists, "user '\(user)' already has a device '\(device)'")
    }

    /// `user` is not in the store.
    public static func unknownUser(_ user: String) -> SignalStoreError {
        SignalStoreError(.unknownUser, "no user '\(user)'")
    }

    /// `user` has no `device` in the store.
    public static func unknownDevice(user: String, device: String) -> SignalStoreError {
        SignalStoreError(.unknownDevice, "user '\(user)' has no device '\(device)'")
    }

    /// `what` (e.g. `user 'alice'`) is revoked; `detail` says what that prevents.
    public static func revoked(_ what: String, _ detail: String) -> SignalStoreError {
        SignalStoreError(.revoked, "\(what) is revoked; \(detail)")
    }

    /// `user`'s mailbox holds `used` bytes; adding `adding` would pass `quota`.
    public static func quotaExceeded(user: String, used: Int64, adding: Int64, quota: Int64) -> SignalStoreError {
        SignalStoreError(
            .quotaExceeded,
            "mailbox of '\(user)' is full: \(used) bytes queued + \(adding) new > quota \(quota) bytes"
        )
    }

    /// A message the store cannot take, for `reason`.
    public static func invalidMessage(_ reason: String) -> SignalStoreError {
        SignalStoreError(.invalidMessage, reason)
    }

    /// The database at `path` has migrations this build does not know.
    public static func schemaTooNew(path: String) -> SignalStoreError {
        SignalStoreError(
            .schemaTooNew,
            "\(path): the database was written by a newer parley (unknown schema migrations); refusing to use it"
        )
    }

    /// `operation` failed in SQLite or the file system with `underlying`.
    public static func invite(_ code: Code, _ message: String) -> SignalStoreError { SignalStoreError(code, message) }

    public static func storageFailed(_ operation: String, _ underlying: any Error) -> SignalStoreError {
        SignalStoreError(.storageFailed, "\(operation) failed: \(underlying)")
    }
}
