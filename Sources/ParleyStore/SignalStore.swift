import Crypto
import Foundation
import ParleyCrypto

/// What signaling needs to keep across restarts (docs/PROTOCOL.md §3): accounts and device keys, each
/// device's last processed command (§3.3), each device's event numbering (§3.4) and the offline mailbox
/// of sealed messages (§3.6).
///
/// ``SQLiteSignalStore`` is the implementation; a PostgreSQL one can follow behind the same protocol.
/// Names are plain strings (`[a-z0-9][a-z0-9._-]{0,31}`, see ``AccountName``); blobs are the base64url
/// text the wire carries, stored and returned unchanged. Every method that changes something has
/// committed it durably when it returns, so the caller may acknowledge it to a client.
///
/// Errors are ``SignalStoreError``; a cancelled task may also see `CancellationError` (nothing was
/// committed then).
public protocol SignalStore: Sendable {
    // MARK: Accounts

    /// Creates a user with no devices. Throws `invalidName`, `userExists` or `revoked` (revoked names are
    /// never given out again).
    func addUser(_ user: String, at now: Date) async throws
    /// Adds a device to an existing, active user after checking its bundle with
    /// `DevicePublicBundle(encoded:)`. Throws `invalidName`, `invalidBundle`, `unknownUser`, `revoked`
    /// or `deviceExists`.
    func addDevice(_ device: String, to user: String, bundle: String, at now: Date) async throws
    /// Every user, revoked ones included, with all their devices; users and devices sorted by name.
    func accounts() async throws -> [UserRecord]
    /// Revokes one device and drops its undelivered mail. Throws `unknownDevice` or `revoked`.
    func revokeDevice(_ device: String, of user: String, at now: Date) async throws
    /// Revokes a user and every device of it and drops its undelivered mail. Throws `unknownUser` or
    /// `revoked`.
    func revokeUser(_ user: String, at now: Date) async throws
    /// The bundle of an active device of an active user, or nil.
    func activeDevice(user: String, device: String) async throws -> DevicePublicBundle?
    /// The active devices of an active user, sorted by name; empty for unknown or revoked users.
    func activeDevices(of user: String) async throws -> [(name: String, bundle: DevicePublicBundle)]

    // MARK: Command sequence (§3.3)

    /// The highest cseq processed for this device, 0 when none (the `last-cseq` of `welcome`).
    /// `user`'s device lists (text form) newer than `version`, ascending, at most `limit`.
    func deviceLists(of user: String, after version: Int64, limit: Int) async throws -> [String]
    /// Every user's newest device list (text form), by user.
    func newestDeviceLists() async throws -> [String: String]
    /// Stores `list` as version `version` of `user`'s device list and, in the same transaction, makes the
    /// account follow it: the user is created if new, every certified device not yet there is added, every
    /// active device the list does not certify is revoked. Throws ``SignalStoreError/Code/deviceExists`` when
    /// that version is already stored (a concurrent publish), ``SignalStoreError/Code/revoked`` for a device
    /// name or user revoked before.
    func publishDeviceList(user: String, version: Int64, list: String, devices: [(name: String, bundle: String)], at now: Date)
        async throws

    /// Records an invitation by the SHA-256 of its token (hex), for `user` or anyone, valid until `expires`.
    func createInvite(tokenHash: String, user: String?, expires: Date, at now: Date) async throws
    /// Makes a new account from its first device list in one transaction: the invite (when given) must exist,
    /// be unused, unexpired and for this user or anyone, and is marked used; the user must not exist.
    /// Throws the `invite…` codes, ``SignalStoreError/Code/userExists`` or ``SignalStoreError/Code/revoked``.
    func register(user: String, list: String, version: Int64, devices: [(name: String, bundle: String)], inviteHash: String?,
                  at now: Date) async throws

    func lastProcessedCSeq(user: String, device: String) async throws -> Int64
    /// Records `cseq` as processed unless it is not above the last one, atomically: of two racing
    /// calls with the same cseq exactly one gets ``CSeqOutcome/recorded``.
    func recordProcessedCSeq(_ cseq: Int64, user: String, device: String) async throws -> CSeqOutcome
    /// Raises many devices' last processed cseqs (never lowers one) in one transaction: `(cseq, user,
    /// device)` each. The hub flushes every device's new value this way every 200 ms.
    func recordProcessedCSeqs(_ items: [(Int64, String, String)]) async throws
    /// What logins need, for every device at once, read when the server starts: each device's last
    /// processed cseq, and the devices that have stored mail. With it a login reads nothing from the
    /// store. Nil when the store cannot answer synchronously (the hub then asks per login).
    func loginState() throws -> (cseqs: [(String, String, Int64)], mail: [(String, String)])?

    // MARK: Events and offline mail (§3.4, §3.6)

    /// Reserves the device's next event number for an event that is not stored (a call event). Shares
    /// the counter with ``enqueueMessage(_:at:)``; the reservation is committed before it returns, so
    /// no number is handed out twice, even after a restart or after the mail that used it is deleted.
    func nextEventSeq(user: String, device: String) async throws -> Int64
    /// Stores a sealed message, one copy per recipient device, in one transaction, and numbers each
    /// copy with its device's next event number. A message id already stored for the same sender
    /// device returns the first receipt again (``MessageReceipt/isDuplicate``) and stores nothing.
    /// Throws `quotaExceeded` when the recipient's mailbox would exceed its quota, `invalidMessage`
    /// for a message without copies or with one device twice.
    func enqueueMessage(_ message: OutgoingMessage, at now: Date) async throws -> MessageReceipt
    /// The device's undelivered copies numbered above `sseq`, in event order, at most `limit`.
    func pendingMessages(user: String, device: String, after sseq: Int64, limit: Int) async throws
        -> [PendingMessage]
    /// Deletes the device's copies numbered up to `sseq` (the client's cumulative `got`); returns how
    /// many were deleted.
    func acknowledge(user: String, device: String, upTo sseq: Int64) async throws -> Int
    /// Deletes exactly these copies of the device (the ones it acknowledged); returns how many were
    /// deleted. The server uses this rather than ``acknowledge(user:device:upTo:)`` because the order in
    /// which it delivers stored copies is not always their store order.
    func acknowledge(user: String, device: String, sseqs: [Int64]) async throws -> Int
    /// Deletes messages stored at or before `now - ttl`, delivered or not; returns how many undelivered
    /// copies went with them.
    func purgeExpired(now: Date, ttl: Duration) async throws -> Int
}

/// A user as stored, with every device it ever had.
public struct UserRecord: Sendable, Hashable {
    /// The user name.
    public var name: String
    /// When the user was added.
    public var addedAt: Date
    /// When the user was revoked; nil while active.
    public var revokedAt: Date?
    /// Every device of the user, revoked ones included, sorted by name.
    public var devices: [DeviceRecord]

    /// Assembles a record.
    public init(name: String, addedAt: Date, revokedAt: Date? = nil, devices: [DeviceRecord] = []) {
        self.name = name
        self.addedAt = addedAt
        self.revokedAt = revokedAt
        self.devices = devices
    }
}

/// A device as stored.
public struct DeviceRecord: Sendable, Hashable {
    /// The device name, unique within its user.
    public var name: String
    /// The device's public bundle, `parley1.…` (verified when it was added).
    public var bundle: String
    /// When the device was added.
    public var addedAt: Date
    /// When the device (or its user) was revoked; nil while active.
    public var revokedAt: Date?

    /// Assembles a record.
    public init(name: String, bundle: String, addedAt: Date, revokedAt: Date? = nil) {
        self.name = name
        self.bundle = bundle
        self.addedAt = addedAt
        self.revokedAt = revokedAt
    }
}

/// What ``SignalStore/recordProcessedCSeq(_:user:device:)`` did.
public enum CSeqOutcome: Sendable, Hashable {
    /// The cseq was above the last one and is now the last processed.
    case recorded
    /// The cseq was not above `last`: a resent command, to be answered `ack` again and not executed.
    case duplicate(last: Int64)
}

/// One recipient device's ciphertext of a sealed message.
public struct SealedCopy: Sendable, Hashable {
    /// The recipient device.
    public var device: String
    /// The sealed blob as the wire carries it (base64url text); stored and returned unchanged.
    public var ciphertext: String

    /// Assembles a copy.
    public init(device: String, ciphertext: String) {
        self.device = device
        self.ciphertext = ciphertext
    }
}

/// A `msg` command to store (§3.3, §3.6).
public struct OutgoingMessage: Sendable, Hashable {
    /// The client-chosen message id (a UUID string); unique per sender device.
    public var id: String
    /// The sending user.
    public var senderUser: String
    /// The sending device.
    public var senderDevice: String
    /// The recipient user.
    public var recipient: String
    /// One copy per recipient device.
    public var copies: [SealedCopy]
    /// The cseq of the `msg` command, recorded as processed in the same transaction (so a crash cannot
    /// separate "stored" from "processed"); nil to leave the command sequence alone.
    public var cseq: Int64?

    /// Assembles a message.
    public init(
        id: String, senderUser: String, senderDevice: String, recipient: String, copies: [SealedCopy],
        cseq: Int64? = nil
    ) {
        self.id = id
        self.senderUser = senderUser
        self.senderDevice = senderDevice
        self.recipient = recipient
        self.copies = copies
        self.cseq = cseq
    }
}

/// Where each copy of a stored message went.
public struct MessageReceipt: Sendable, Hashable {
    /// The event number each recipient device's copy was given, in the order of the copies.
    public var deliveries: [MessageDelivery]
    /// True when the message id had already been stored: nothing new was stored or numbered.
    public var isDuplicate: Bool
    /// When the message was first stored.
    public var storedAt: Date

    /// Assembles a receipt.
    public init(deliveries: [MessageDelivery], isDuplicate: Bool, storedAt: Date) {
        self.deliveries = deliveries
        self.isDuplicate = isDuplicate
        self.storedAt = storedAt
    }
}

/// One recipient device's copy of a stored message and the event number it was given.
public struct MessageDelivery: Sendable, Hashable {
    /// The recipient device.
    public var device: String
    /// The copy's event number for that device (`ev|<sseq>|…|msg|…`).
    public var sseq: Int64

    /// Assembles a delivery.
    public init(device: String, sseq: Int64) {
        self.device = device
        self.sseq = sseq
    }
}

/// An undelivered copy of a sealed message, as the `msg` event needs it (§3.4).
public struct PendingMessage: Sendable, Hashable {
    /// The copy's event number for its device.
    public var sseq: Int64
    /// The client-chosen message id.
    public var id: String
    /// The sending user.
    public var senderUser: String
    /// The sending device.
    public var senderDevice: String
    /// When the message was stored.
    public var storedAt: Date
    /// The sealed blob, exactly as received.
    public var ciphertext: String

    /// Assembles a pending message.
    public init(sseq: Int64, id: String, senderUser: String, senderDevice: String, storedAt: Date, ciphertext: String) {
        self.sseq = sseq
        self.id = id
        self.senderUser = senderUser
        self.senderDevice = senderDevice
        self.storedAt = storedAt
        self.ciphertext = ciphertext
    }
}

/// User and device names, the same rule as the wire's *name* field (§3.1), checked here because the
/// store does not depend on the codec.
public enum AccountName {
    /// True for `[a-z0-9][a-z0-9._-]{0,31}`.
    public static func isValid(_ name: some StringProtocol) -> Bool {
        let u = name.utf8
        guard (1...32).contains(u.count), let first = u.first, isAlnum(first) else { return false }
        return u.allSatisfy { c in
            isAlnum(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }
}

/// How an invitation's token is stored and looked up (docs/PROTOCOL.md §3.8): lowercase hex of its SHA-256,
/// so a copy of the store cannot be used to register.
public enum InviteToken {
    public static func hash(_ token: [UInt8]) -> String {
        SHA256.hash(data: token).map { String(format: "%02x", $0) }.joined()
    }
}
