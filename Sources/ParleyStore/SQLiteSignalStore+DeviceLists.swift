import Foundation
import GRDB
import ParleyCrypto

// MARK: Device lists (docs/PROTOCOL.md §3.8)

extension SQLiteSignalStore {
    public func deviceLists(of user: String, after version: Int64, limit: Int) async throws -> [String] {
        try await read("reading device lists of \(user)") { db in
            try String.fetchAll(
                db, sql: "SELECT list FROM device_list WHERE user = ? AND version > ? ORDER BY version LIMIT ?",
                arguments: [user, version, limit])
        }
    }

    public func newestDeviceLists() async throws -> [String: String] {
        try await read("reading the newest device lists") { db in
            var newest: [String: String] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT user, list FROM device_list AS d
                    WHERE version = (SELECT MAX(version) FROM device_list WHERE user = d.user)
                    """)
            {
                newest[row["user"]] = row["list"]
            }
            return newest
        }
    }

    public func publishDeviceList(
        user: String, version: Int64, list: String, devices: [(name: String, bundle: String)], at now: Date
    ) async throws {
        guard AccountName.isValid(user) else { throw SignalStoreError.invalidName("user", user) }
        for device in devices where !AccountName.isValid(device.name) { throw SignalStoreError.invalidName("device", device.name) }
        let at = Self.millis(now)
        try await write("publishing device list \(version) of \(user)") { db in
            if let row = try Row.fetchOne(db, sql: "SELECT revoked_at FROM account_user WHERE name = ?", arguments: [user]) {
                if (row["revoked_at"] as Int64?) != nil { throw SignalStoreError.revoked("user '\(user)'", "revoked by the operator") }
            } else {
                try db.execute(sql: "INSERT INTO account_user (name, added_at) VALUES (?, ?)", arguments: [user, at])
            }
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM device_list WHERE user = ? AND version = ?", arguments: [user, version]) == true
            {
                throw SignalStoreError.deviceExists(user: user, device: "list version \(version)")
            }
            var existing: [String: (bundle: String, revoked: Bool)] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT name, bundle, revoked_at FROM account_device WHERE user = ?", arguments: [user])
            {
                existing[row["name"]] = (row["bundle"], (row["revoked_at"] as Int64?) != nil)
            }
            let certified = Dictionary(devices.map { ($0.name, $0.bundle) }, uniquingKeysWith: { first, _ in first })
            for (name, bundle) in certified.sorted(by: { $0.key < $1.key }) {
                switch existing[name] {
                case nil:
                    try db.execute(
                        sql: "INSERT INTO account_device (user, name, bundle, added_at) VALUES (?, ?, ?, ?)",
                        arguments: [user, name, bundle, at])
                case let device? where device.revoked:
                    throw SignalStoreError.revoked("device '\(name)' of '\(user)'", "a revoked name is not given out again")
                case let device? where device.bundle != bundle:
                    // The same name with a new key (a reinstalled device the user key certified again): the
                    // stored key follows the list.
                    try db.execute(
                        sql: "UPDATE account_device SET bundle = ?, added_at = ? WHERE user = ? AND name = ?",
                        arguments: [bundle, at, user, name])
                default:
                    break
                }
            }
            for (name, device) in existing where !device.revoked && certified[name] == nil {
                try db.execute(
                    sql: "UPDATE account_device SET revoked_at = ? WHERE user = ? AND name = ?", arguments: [at, user, name])
            }
            try db.execute(
                sql: "INSERT INTO device_list (user, version, list, published_at) VALUES (?, ?, ?, ?)",
                arguments: [user, version, list, at])
        }
    }

    public func createInvite(tokenHash: String, user: String?, expires: Date, at now: Date) async throws {
        if let user, !AccountName.isValid(user) { throw SignalStoreError.invalidName("user", user) }
        try await write("creating an invite") { db in
            try db.execute(
                sql: "INSERT INTO invite (token_hash, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [tokenHash, user, Self.millis(now), Self.millis(expires)])
        }
    }

    public func register(
        user: String, list: String, version: Int64, devices: [(name: String, bundle: String)], inviteHash: String?, at now: Date
    ) async throws {
        guard AccountName.isValid(user) else { throw SignalStoreError.invalidName("user", user) }
        let at = Self.millis(now)
        try await write("registering \(user)") { db in
            if let inviteHash {
                guard let row = try Row.fetchOne(
                    db, sql: "SELECT user, expires_at, used_at FROM invite WHERE token_hash = ?", arguments: [inviteHash])
                else { throw SignalStoreError.invite(.inviteUnknown, "no such invite") }
                if (row["used_at"] as Int64?) != nil { throw SignalStoreError.invite(.inviteUsed, "the invite was used already") }
                if (row["expires_at"] as Int64) <= at { throw SignalStoreError.invite(.inviteExpired, "the invite expired") }
                if let only = row["user"] as String?, only != user {
                    throw SignalStoreError.invite(.inviteOtherUser, "the invite is for another user name")
                }
            }
            if let row = try Row.fetchOne(db, sql: "SELECT revoked_at FROM account_user WHERE name = ?", arguments: [user]) {
                if (row["revoked_at"] as Int64?) != nil { throw SignalStoreError.revoked("user '\(user)'", "a revoked name is not given out again") }
                throw SignalStoreError.userExists(user)
            }
            try db.execute(sql: "INSERT INTO account_user (name, added_at) VALUES (?, ?)", arguments: [user, at])
            for device in devices {
                try db.execute(
                    sql: "INSERT INTO account_device (user, name, bundle, added_at) VALUES (?, ?, ?, ?)",
                    arguments: [user, device.name, device.bundle, at])
            }
            try db.execute(
                sql: "INSERT INTO device_list (user, version, list, published_at) VALUES (?, ?, ?, ?)",
                arguments: [user, version, list, at])
            if let inviteHash {
                try db.execute(sql: "UPDATE invite SET used_at = ?, used_by = ? WHERE token_hash = ?", arguments: [at, user, inviteHash])
            }
        }
    }
}
