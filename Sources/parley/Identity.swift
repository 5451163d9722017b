import ArgumentParser
import Foundation
import ParleyClient
import ParleyCrypto
import ParleyWire

/// `parley identity …`: this user's own key, which certifies the user's devices (docs/PROTOCOL.md §3.8).
struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "This user's identity key and device list.",
        subcommands: [IdentityInit.self, IdentityShow.self, IdentityRecover.self])
}

/// `parley identity init`: the first device of an account (or an account made before user keys) makes the
/// user key and publishes the first device list, certifying itself.
struct IdentityInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make this user's identity key on this device and publish the first device list.",
        discussion: """
            Upgrades an account to user keys: from now on other clients accept only devices this key certifies, \
            so the server can no longer add a device to the account. The key stays on this device (KEY.user, mode \
            0600); a sealed copy is written to KEY.user.recovery and the code that opens it is printed once: keep \
            it somewhere safe, away from the file.
            """)

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let files = options.files
        guard !FileManager.default.fileExists(atPath: files.userKey) else {
            throw ClientCLI.failure("\(files.userKey) exists: this device already holds the user key")
        }
        let identity = try options.identity()
        let (client, welcome) = try await options.logIn(upgrade: false)
        try await ClientCLI.run(client) {
            if let existing = try? await client.lookUp(welcome.user), existing.list != nil {
                throw ClientCLI.failure(
                    "\(welcome.user) already has a user key (version \(existing.list!.version) of its device list); "
                        + "link this device from one that holds it")
            }
            let (user, list, code) = try await UserKeySetup.create(
                welcome.user, device: welcome.device, bundle: identity.publicBundle, files: files
            ) { _ = try await client.publish($0) }
            _ = try await client.lookUp(welcome.user)  // pins our own list in this account's trust store
            print("user key of \(welcome.user): \(user.fingerprint)")
            print("device list version \(list.version): \(welcome.device)")
            print("recovery file: \(files.userKeyRecovery)")
            print("recovery code (shown once; keep it apart from the file): \(code)")
        }
    }

    static var now: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
}

/// `parley identity recover FILE`: puts the user key back on this device from its recovery file.
struct IdentityRecover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Restore the user key on this device from a recovery file (the code is read from stdin).",
        discussion: "The code is never taken on the command line (other users could read it in the process list).")

    @Argument(help: "The recovery file (KEY.user.recovery of the device that made the key).")
    var file: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let files = options.files
        guard !FileManager.default.fileExists(atPath: files.userKey) else { throw ClientCLI.failure("\(files.userKey) exists") }
        guard let text = try? String(contentsOfFile: ClientFiles.absolute(file), encoding: .utf8) else {
            throw ClientCLI.failure("cannot read \(file)")
        }
        FileHandle.standardError.write(Data("recovery code: ".utf8))
        let code = readLine() ?? ""
        let user: UserIdentity
        do {
            user = try RecoveryFile.open(text, code: code)
        } catch {
            throw ClientCLI.failure("\(error)")
        }
        if let account = options.account, account != user.user {
            throw ClientCLI.failure("the recovery file holds the key of \(user.user), not \(account)")
        }
        try UserKeyFile.write(user, to: files.userKey)
        print("restored the user key of \(user.user) (\(user.fingerprint)) to \(files.userKey)")
    }
}

/// `parley identity show`: the user key's fingerprint and the devices it certifies.
struct IdentityShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show this user's key and device list.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (client, welcome) = try await options.logIn()
        try await ClientCLI.run(client) {
            let lookup = try await client.lookUp(welcome.user)
            guard let list = lookup.list else {
                print("\(welcome.user) has no user key yet (devices are trusted one by one): run `parley identity init`")
                return
            }
            print("user key of \(welcome.user): \(UserIdentity.fingerprint(of: list.userKey))")
            print("device list version \(list.version):")
            for entry in list.devices {
                print("  \(entry.name)  \(entry.bundle.fingerprint)  media \(entry.media.joined(separator: ","))")
            }
            for entry in list.revoked { print("  \(entry.name)  removed") }
            for (device, _) in lookup.uncertified.sorted(by: { $0.key < $1.key }) {
                ClientCLI.warn("WARNING: the server lists a device \(device) your key does not certify")
            }
        }
    }
}

/// `parley device add|remove`: change this user's device list (needs the user key on this device).
struct Device: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Certify or remove a device of this user (publishes the next device list).",
        subcommands: [DeviceAdd.self, DeviceRemove.self])

    /// Loads the user key, fetches the current list (reviewed like anyone's), makes the next one with
    /// `change`, publishes it and prints the result.
    static func publishNext(
        _ options: ClientOptions, _ what: String, _ change: @escaping @Sendable (DeviceList, UserIdentity) throws -> DeviceList
    ) async throws {
        try await publishNext(options, what) { _, current, user in try change(current, user) }
    }

    /// ``publishNext(_:_:_:)`` whose change may ask the server (a link request).
    static func publishNext(
        _ options: ClientOptions, _ what: String,
        _ change: @escaping @Sendable (ParleyClient, DeviceList, UserIdentity) async throws -> DeviceList
    ) async throws {
        let files = options.files
        let user: UserIdentity
        do {
            user = try UserKeyFile.read(from: files.userKey)
        } catch {
            throw ClientCLI.failure("this device does not hold the user key (\(files.userKey)): \(error)")
        }
        let (client, welcome) = try await options.logIn()
        try await ClientCLI.run(client) {
            guard user.user == welcome.user else { throw ClientCLI.failure("\(files.userKey) is the key of \(user.user)") }
            guard let current = try await client.lookUp(welcome.user).list else {
                throw ClientCLI.failure("\(welcome.user) has no device list yet: run `parley identity init`")
            }
            guard current.userKey == user.publicKey else {
                throw ClientCLI.failure("the published list is signed by another user key than \(files.userKey)")
            }
            let next = try await change(client, current, user)
            let version = try await client.publish(next)
            _ = try await client.lookUp(welcome.user)
            print("\(what); device list version \(version): \(next.devices.map(\.name.text).joined(separator: ", "))")
        }
    }
}

struct DeviceAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Certify a new device of this user by its public bundle (as `parley keygen` printed it on that device).",
        discussion: "Compare the fingerprint printed here with the one the new device showed before you trust it.")

    @Argument(help: "The new device's name.")
    var name: String

    @Argument(help: "Its public bundle (parley1.…).")
    var bundle: String

    @Option(help: ArgumentHelp("Media the device speaks (parley, webrtc).", valueName: "kinds"))
    var media = "parley"

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid device name '\(name)'") }
        guard (try? DevicePublicBundle(encoded: bundle)) != nil else { throw ValidationError("not a valid parley1. bundle") }
    }

    func run() async throws {
        let device = SignalName(name)!
        let bundle = try DevicePublicBundle(encoded: bundle)
        let media = media.split(separator: ",").map(String.init).sorted()
        print("certifying \(device) with fingerprint \(bundle.fingerprint)")
        try await Device.publishNext(options, "added \(device)") { current, user in
            try current.next(by: user, adding: [.init(name: device, bundle: bundle, media: media)], time: IdentityInit.now)
        }
    }
}

struct DeviceRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove a device of this user: it is no longer sealed to, rung or answered.")

    @Argument(help: "The device to remove.")
    var name: String

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid device name '\(name)'") }
    }

    func run() async throws {
        let device = SignalName(name)!
        try await Device.publishNext(options, "removed \(device)") { current, user in
            guard current.device(device) != nil else { throw ClientCLI.failure("the device list has no device \(device)") }
            return try current.next(by: user, removing: [device], time: IdentityInit.now)
        }
    }
}

/// `parley verify USER`: the safety number of this user and USER, and marking it compared.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the safety number shared with a user; --mark once you compared it with them.",
        discussion: """
            The number depends only on the two user keys: it is the same on both sides and stays while devices come \
            and go. Compare it in person or by voice. Once marked verified, a change of their key stops `call` and \
            `send` until you accept it (--accept-new-key) after comparing again.
            """)

    @Argument(help: "The other user.")
    var name: String

    @Flag(help: "Record that you compared the number and it matched.")
    var mark = false

    @Flag(help: "Accept a changed user key of the other user (after comparing the new number).")
    var acceptNewKey = false

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        let (client, welcome) = try await options.logIn()
        let other = SignalName(name)!
        let mark = mark
        let acceptNewKey = acceptNewKey
        try await ClientCLI.run(client) {
            guard let mine = try await client.lookUp(welcome.user).list else {
                throw ClientCLI.failure("\(welcome.user) has no user key yet: run `parley identity init`")
            }
            guard let theirs = try await client.lookUp(other, acceptNewKeys: acceptNewKey).list else {
                throw ClientCLI.failure("\(other) has no user key yet: there is no safety number to compare")
            }
            print("safety number of \(welcome.user) and \(other):")
            print("  \(SafetyNumber.between(welcome.user, key: mine.userKey, and: other, key: theirs.userKey))")
            print("their user key: \(UserIdentity.fingerprint(of: theirs.userKey))")
            if mark {
                _ = await client.markVerified(other)
                print("marked \(other) as verified")
            } else if await client.trust.users[other]?.verified == true {
                print("(verified)")
            }
        }
    }
}

/// Making a user's key (docs/PROTOCOL.md §3.8), the one way `identity init`, `register` and the automatic
/// upgrade all do it.
enum UserKeySetup {
    /// Makes a user key and the first device list certifying `device` with `bundle`, keeps the key on this
    /// device (`KEY.user`, and `KEY.user.recovery` sealed under a code returned to show once) and hands the
    /// list to `publish`. The key is on disk before the list exists anywhere, so a published list always has
    /// its key; when publishing fails, both files are removed again (nothing was published).
    static func create(
        _ user: SignalName, device: SignalName, bundle: DevicePublicBundle, files: ClientFiles,
        publish: (DeviceList) async throws -> Void
    ) async throws -> (key: UserIdentity, list: DeviceList, code: String) {
        let key = UserIdentity.generate(user: user)
        let list = try DeviceList.first(by: key, devices: [.init(name: device, bundle: bundle)], time: IdentityInit.now)
        let (recovery, code) = try RecoveryFile.seal(key)
        try UserKeyFile.write(key, to: files.userKey)
        do {
            try KeyFileWriter.write(recovery, to: files.userKeyRecovery)
            try await publish(list)
        } catch {
            unlink(files.userKey)
            unlink(files.userKeyRecovery)
            throw error
        }
        return (key, list, code)
    }
}

/// Writes a private file (mode 0600 from its creation, atomic), never over an existing one.
enum KeyFileWriter {
    static func write(_ text: String, to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { throw ClientCLI.failure("\(path) exists") }
        try PrivateFile.write(Array(text.utf8), to: path)
    }
}
