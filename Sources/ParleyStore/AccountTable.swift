import ParleyCrypto

/// The accounts signaling serves: the store's active devices together with the accounts file's, as one
/// immutable value the server rebuilds at start and on SIGHUP and swaps in whole.
///
/// How the two sources combine (``merge(store:file:)``):
///
/// - A device listed by only one source is served.
/// - A device listed by both with the same bundle is served once.
/// - A device listed by both with **different** bundles is refused: the whole merge fails with
///   ``AccountsFileError/Code/conflict`` at the file's line, and a reloading server keeps its previous
///   table. Two authorities disagree about a device's identity key; picking either one silently could
///   keep a key working that the administrator believes replaced. Neither source "wins".
/// - A device, or every device of a user, **revoked in the store** is not served even when the file lists
///   it: revocation takes effect although someone forgot the file, and a revoked name is never brought
///   back (its command and event sequences belong to the revoked device). Each such line is reported
///   in ``ignored`` for the server to log, rather than failing the reload: a failed reload would keep
///   the previous table, in which the revoked device may still be active.
public struct AccountTable: Sendable, Equatable {
    /// Every served device's bundle, by user, then device.
    public private(set) var users: [String: [String: DevicePublicBundle]]
    /// One sentence per file line left out because the store revoked it (`path:line: …`).
    public private(set) var ignored: [String]

    /// A table of exactly these devices.
    public init(users: [String: [String: DevicePublicBundle]] = [:]) {
        self.users = users
        self.ignored = []
    }

    /// Combines the store's accounts (``SignalStore/accounts()``, revoked ones included) with an
    /// accounts file's snapshot, as the type's documentation says.
    public static func merge(store: [UserRecord], file: AccountsSnapshot?) throws(AccountsFileError) -> AccountTable {
        var table = AccountTable()
        var revokedUsers = Set<String>()
        var revokedDevices: [String: Set<String>] = [:]
        for user in store {
            if user.revokedAt != nil { revokedUsers.insert(user.name) }
            for device in user.devices {
                guard device.revokedAt == nil, user.revokedAt == nil else {
                    revokedDevices[user.name, default: []].insert(device.name)
                    continue
                }
                // Verified when it was added; one that no longer decodes is left out rather than trusted.
                guard let bundle = try? DevicePublicBundle(encoded: device.bundle) else { continue }
                table.users[user.name, default: [:]][device.name] = bundle
            }
        }
        guard let file else { return table }

        for (user, devices) in file.users.sorted(by: { $0.key < $1.key }) {
            for (device, bundle) in devices.sorted(by: { $0.key < $1.key }) {
                let line = file.line(user: user, device: device)
                let location = line.map { "\(file.path):\($0)" } ?? file.path
                if revokedUsers.contains(user) || revokedDevices[user]?.contains(device) == true {
                    let what = revokedUsers.contains(user) ? "user \(user)" : "device \(user).\(device)"
                    table.ignored.append("\(location): \(what) is revoked in the store; line ignored")
                    continue
                }
                if let stored = table.users[user]?[device] {
                    guard stored == bundle else {
                        throw .conflict(path: file.path, line: line, key: "\(user).\(device)")
                    }
                    continue
                }
                table.users[user, default: [:]][device] = bundle
            }
        }
        return table
    }

    /// The table with `user`'s devices replaced by `devices` (a device list was published).
    public func replacing(user: String, devices: [String: DevicePublicBundle]) -> AccountTable {
        var table = self
        table.users[user] = devices.isEmpty ? nil : devices
        return table
    }

    /// The bundle of a served device, or nil.
    public func device(user: String, device: String) -> DevicePublicBundle? { users[user]?[device] }

    /// A user's served devices, sorted by name; empty for an unknown user.
    public func devices(of user: String) -> [(name: String, bundle: DevicePublicBundle)] {
        (users[user] ?? [:]).sorted { $0.key < $1.key }.map { (name: $0.key, bundle: $0.value) }
    }
}
