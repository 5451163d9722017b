import Foundation
import GRDB
import ParleyCrypto

// MARK: Accounts

extension SQLiteSignalStore {
    public func addUser(_ user: String, at now: Date) async throws {
        guard AccountName.isValid(user) else { throw SignalStoreError.invalidName("user", user) }
        let addedAt = Self.millis(now)
        try await write("adding user \(user)") { db in
            if let existing = try Row.fetchOne(
                db, sql: "SELECT revoked_at FROM account_user WHERE name = ?", arguments: [user]
            ) {
                if (existing["revoked_at"] as Int64?) != nil {
                    throw SignalStoreError.revoked("user '\(user)'", "a revoked name is not given out again")
                }
                throw SignalStoreError.userExists(user)
            }
            try db.execute(
                sql: "INSERT INTO account_user (name, added_at) VALUES (?, ?)", arguments: [user, addedAt])
        }
    }

    public func addDevice(_ device: String, to user: String, bundle: String, at now: Date) async throws {
        guard AccountName.isValid(user) else { throw SignalStoreError.invalidName("user", user) }
        guard AccountName.isValid(device) else { throw SignalStoreError.invalidName("device", device) }
        let canonical: String
        do {
            canonical = try DevicePublicBundle(encoded: bundle).encoded
        } catch {
            throw SignalStoreError.invalidBundle(user: user, device: device, reason: "\(error)")
        }
        let addedAt = Self.millis(now)
        try await write("adding device \(user).\(device)") { db in
            try Self.requireActiveUser(user, db)
            if let existing = try Row.fetchOne(
                db, sql: "SELECT revoked_at FROM account_device WHERE user = ? AND name = ?", arguments: [user, device]
            ) {
                if (existing["revoked_at"] as Int64?) != nil {
                    throw SignalStoreError.revoked(
                        "device '\(device)' of '\(user)'", "a revoked name is not given out again; pick another")
                }
                throw SignalStoreError.deviceExists(user: user, device: device)
            }
            try db.execute(
                sql: "INSERT INTO account_device (user, name, bundle, added_at) VALUES (?, ?, ?, ?)",
                arguments: [user, device, canonical, addedAt]
            )
        }
    }

    public func accounts() async throws -> [UserRecord] {
        try await read("listing accounts") { db in
            var devices: [String: [DeviceRecord]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT user, name, bundle, added_at, revoked_at FROM account_device ORDER BY user, name"
            ) {
                let record = DeviceRecord(
                    name: row["name"], bundle: row["bundle"], addedAt: Self.date(row["added_at"]),
                    revokedAt: (row["revoked_at"] as Int64?).map(Self.date)
                )
                devices[row["user"], default: []].append(record)
            }
            return try Row.fetchAll(db, sql: "SELECT name, added_at, revoked_at FROM account_user ORDER BY name")
                .map { row in
                    let name: String = row["name"]
                    return UserRecord(
                        name: name, addedAt: Self.date(row["added_at"]),
                        revokedAt: (row["revoked_at"] as Int64?).map(Self.date), devices: devices[name] ?? []
                    )
                }
        }
    }

    public func revokeDevice(_ device: String, of user: String, at now: Date) async throws {
        let revokedAt = Self.millis(now)
        try await write("revoking device \(user).\(device)") { db in
            try Self.requireActiveUser(user, db)
            guard let existing = try Row.fetchOne(
                db, sql: "SELECT revoked_at FROM account_device WHERE user = ? AND name = ?", arguments: [user, device]
            ) else { throw SignalStoreError.unknownDevice(user: user, device: device) }
            guard (existing["revoked_at"] as Int64?) == nil else {
                throw SignalStoreError.revoked("device '\(device)' of '\(user)'", "nothing to do")
            }
            try db.execute(
                sql: "UPDATE account_device SET revoked_at = ? WHERE user = ? AND name = ?",
                arguments: [revokedAt, user, device]
            )
            // It can no longer log in to fetch its mail; free the recipient's quota now.
            try db.execute(
                sql: "DELETE FROM message_copy WHERE recipient_user = ? AND recipient_device = ?",
                arguments: [user, device]
            )
        }
    }

    public func revokeUser(_ user: String, at now: Date) async throws {
        let revokedAt = Self.millis(now)
        try await write("revoking user \(user)") { db in
            try Self.requireActiveUser(user, db)
            try db.execute(sql: "UPDATE account_user SET revoked_at = ? WHERE name = ?", arguments: [revokedAt, user])
            try db.execute(
                sql: "UPDATE account_device SET revoked_at = ? WHERE user = ? AND revoked_at IS NULL",
                arguments: [revokedAt, user]
            )
            try db.execute(sql: "DELETE FROM message_copy WHERE recipient_user = ?", arguments: [user])
        }
    }

    public func activeDevice(user: String, device: String) async throws -> DevicePublicBundle? {
        try await activeDevices(of: user, only: device).first?.bundle
    }

    public func activeDevices(of user: String) async throws -> [(name: String, bundle: DevicePublicBundle)] {
        try await activeDevices(of: user, only: nil)
    }

    /// Active devices of an active user, sorted by name; only `device` when given.
    private func activeDevices(of user: String, only device: String?) async throws
        -> [(name: String, bundle: DevicePublicBundle)]
    {
        let rows = try await read("looking up devices of \(user)") { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT d.name, d.bundle FROM account_device d JOIN account_user u ON u.name = d.user
                    WHERE d.user = ? AND (? IS NULL OR d.name = ?)
                      AND d.revoked_at IS NULL AND u.revoked_at IS NULL
                    ORDER BY d.name
                    """,
                arguments: [user, device, device]
            ).map { (name: $0["name"] as String, bundle: $0["bundle"] as String) }
        }
        return rows.compactMap { row in
            // Verified on insert; a row that no longer decodes was altered behind our back.
            guard let bundle = try? DevicePublicBundle(encoded: row.bundle) else {
                logger.error("stored device bundle does not verify; ignoring it", metadata: [
                    "user": "\(user)", "device": "\(row.name)",
                ])
                return nil
            }
            return (name: row.name, bundle: bundle)
        }
    }

    /// Throws unless `user` exists and is not revoked.
    private static func requireActiveUser(_ user: String, _ db: Database) throws {
        guard let row = try Row.fetchOne(
            db, sql: "SELECT revoked_at FROM account_user WHERE name = ?", arguments: [user]
        ) else { throw SignalStoreError.unknownUser(user) }
        if (row["revoked_at"] as Int64?) != nil {
            throw SignalStoreError.revoked("user '\(user)'", "its devices cannot change")
        }
    }
}
