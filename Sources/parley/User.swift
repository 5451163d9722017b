import ArgumentParser
import Foundation
import Logging
import ParleyCrypto
import ParleyStore

/// `parley user`: accounts and device keys in the server's store (`add`, `list`, `revoke`).
///
/// Works on the store file directly, so it can run next to a running server (SQLite WAL with a busy
/// timeout); the server sees the change when it next reads its accounts.
struct User: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage users and their device keys in the server's store.",
        discussion: """
            The store is the server's SQLite file: --store, else $PARLEY_STORE, else \(StoreOptions.defaultPath). \
            Devices can also be listed in the accounts file (signal.accounts_file); this command does not edit it.
            """,
        subcommands: [Add.self, List.self, Revoke.self]
    )
}

extension User {
    /// `--store PATH`, shared by the subcommands.
    struct StoreOptions: ParsableArguments {
        static let defaultPath = "/var/lib/parley/parley.sqlite"

        @Option(help: ArgumentHelp("Store file (default: $PARLEY_STORE, else \(defaultPath)).", valueName: "path"))
        var store: String?

        /// The file to use: the flag, the environment, or the default.
        var path: String {
            if let store { return store }
            if let fromEnvironment = ProcessInfo.processInfo.environment["PARLEY_STORE"], !fromEnvironment.isEmpty {
                return fromEnvironment
            }
            return Self.defaultPath
        }

        /// Opens the store. Only `add` may create it (and its directory, mode 0700); the others refuse a
        /// missing file rather than leave an empty database behind.
        func open(creating: Bool) throws -> SQLiteSignalStore {
            let path = path
            if !FileManager.default.fileExists(atPath: path) {
                guard creating else { throw User.failure("no store at \(path) (pass --store or set PARLEY_STORE)") }
                let directory = (path as NSString).deletingLastPathComponent
                if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
                    do {
                        try FileManager.default.createDirectory(
                            atPath: directory, withIntermediateDirectories: true,
                            attributes: [.posixPermissions: 0o700])
                    } catch {
                        throw User.failure("cannot create \(directory): \(error.localizedDescription)")
                    }
                }
            }
            var logger = Logger(label: "parley.store")
            logger.logLevel = .warning  // not "schema migrated" on every first use
            do {
                return try SQLiteSignalStore(path: path, logger: logger)
            } catch {
                throw User.failure("\(error)")
            }
        }
    }

    /// Prints `parley: message` to stderr and returns the exit code to throw.
    static func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("parley: \(message)\n".utf8))
        return ExitCode.failure
    }

    /// Runs a store operation, turning its error into a message and a non-zero exit.
    static func perform<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw failure("\(error)")
        }
    }

    /// A time for people, in UTC.
    static func format(_ date: Date) -> String { date.formatted(.iso8601) }
}

// MARK: add

extension User {
    /// `parley user add NAME --key BUNDLE [--device NAME]`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a device (and its user, if new).",
            discussion: "The key is the device's public bundle, the parley1.… line `parley keygen` prints."
        )

        @Argument(help: "User name: [a-z0-9][a-z0-9._-]{0,31}.")
        var name: String

        @Option(help: ArgumentHelp("The device's public bundle (parley1.…).", valueName: "bundle"))
        var key: String

        @Option(help: "Device name.")
        var device = "default"

        @OptionGroup var options: StoreOptions

        func validate() throws {
            guard AccountName.isValid(name) else { throw ValidationError("invalid user name '\(name)'") }
            guard AccountName.isValid(device) else { throw ValidationError("invalid device name '\(device)'") }
            do {
                _ = try DevicePublicBundle(encoded: key)
            } catch {
                throw ValidationError("bad --key: \(error)")
            }
        }

        func run() async throws {
            let store = try options.open(creating: true)
            let now = Date()
            let bundle = try DevicePublicBundle(encoded: key)
            if (try? await store.newestDeviceLists())?[name] != nil {
                // The user's own key decides the user's devices (docs/PROTOCOL.md §3.8): the server would not
                // serve this device, and no client would accept it.
                throw User.failure(
                    "\(name) has a device list signed by their own user key: only they can add a device "
                        + "(`parley link approve` or `parley device add` on a device holding the key)")
            }
            let accounts = try await User.perform {
                let accounts = try await store.accounts()
                if !accounts.contains(where: { $0.name == name }) {
                    try await store.addUser(name, at: now)
                    print("added user \(name)")
                }
                try await store.addDevice(device, to: name, bundle: bundle.encoded, at: now)
                return accounts
            }
            print("added device \(name).\(device) (fingerprint \(bundle.fingerprint)) to \(store.path)")
            // Allowed, but one key file then logs in as several devices: usually a copy-paste slip.
            let sharing = accounts.flatMap { user in
                user.devices.filter { $0.bundle == bundle.encoded && $0.revokedAt == nil && user.revokedAt == nil }
                    .map { "\(user.name).\($0.name)" }
            }
            if !sharing.isEmpty {
                let warning = "parley: warning: the same key is also active for \(sharing.joined(separator: ", "))\n"
                FileHandle.standardError.write(Data(warning.utf8))
            }
        }
    }
}

// MARK: list

extension User {
    /// `parley user list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and devices, revoked ones included.")

        @Flag(help: "Also print each device's public bundle.")
        var keys = false

        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = try options.open(creating: false)
            let users = try await User.perform { try await store.accounts() }
            guard !users.isEmpty else {
                print("no users in \(store.path)")
                return
            }
            for user in users {
                let status = user.revokedAt.map { "revoked \(User.format($0))" } ?? "active"
                print("\(user.name)  \(status), added \(User.format(user.addedAt))")
                if user.devices.isEmpty { print("  (no devices)") }
                let width = user.devices.map(\.name.count).max() ?? 0
                for device in user.devices {
                    let padded = device.name.padding(toLength: width, withPad: " ", startingAt: 0)
                    let state = device.revokedAt.map { "revoked \(User.format($0))" } ?? "active"
                    let fingerprint = (try? DevicePublicBundle(encoded: device.bundle).fingerprint) ?? "(invalid key)"
                    print("  \(padded)  \(state), added \(User.format(device.addedAt)), fingerprint \(fingerprint)")
                    if keys { print("    \(device.bundle)") }
                }
            }
        }
    }
}

// MARK: revoke

extension User {
    /// `parley user revoke NAME [--device NAME]`.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a device, or a user with all its devices.",
            discussion: """
                A revoked device can no longer log in and its undelivered messages are deleted. Revoked names \
                are kept and never given out again.
                """
        )

        @Argument(help: "User name.")
        var name: String

        @Option(help: "Revoke only this device (default: the whole user).")
        var device: String?

        @OptionGroup var options: StoreOptions

        func run() async throws {
            let store = try options.open(creating: false)
            let now = Date()
            if let device {
                try await User.perform { try await store.revokeDevice(device, of: name, at: now) }
                print("revoked device \(name).\(device)")
            } else {
                let devices = try await User.perform {
                    try await store.revokeUser(name, at: now)
                    return try await store.accounts().first { $0.name == name }?.devices.count ?? 0
                }
                print("revoked user \(name) (\(devices) device\(devices == 1 ? "" : "s"))")
            }
        }
    }
}
