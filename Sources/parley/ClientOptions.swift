import ArgumentParser
import Foundation
import Logging
import ParleyClient
import ParleyCrypto
import ParleyWire

/// Options every client subcommand shares: where the server is, which key and account to log in with.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Signaling server.", valueName: "host:port"))
    var server = "127.0.0.1:7000"

    @Option(help: ArgumentHelp("This device's key file (from `parley keygen`).", valueName: "path"))
    var key = FileManager.default.homeDirectoryForCurrentUser.path + "/.parley/device.key"

    @Option(help: ArgumentHelp("User name (default: $PARLEY_USER).", valueName: "name"))
    var user: String?

    @Option(help: ArgumentHelp("Device name.", valueName: "name"))
    var device = "default"

    @Flag(help: "Use TLS, verifying the server's certificate against the system roots (or --ca-file).")
    var tls = false

    @Option(help: ArgumentHelp("Trust only the PEM certificates in this file (implies --tls).", valueName: "path"))
    var caFile: String?

    @Flag(help: "Use TLS without checking the certificate. For tests only: anyone in the middle goes unnoticed.")
    var insecure = false

    @Flag(name: .shortAndLong, help: "Log connection details to stderr.")
    var verbose = false

    func validate() throws {
        if let user = user ?? ProcessInfo.processInfo.environment["PARLEY_USER"], SignalName(user) == nil {
            throw ValidationError("invalid user name '\(user)': [a-z0-9][a-z0-9._-]{0,31}")
        }
        guard SignalName(device) != nil else { throw ValidationError("invalid device name '\(device)'") }
        guard hostAndPort != nil else { throw ValidationError("--server must be HOST:PORT, got '\(server)'") }
    }

    /// The user to log in as.
    var account: SignalName? {
        (user ?? ProcessInfo.processInfo.environment["PARLEY_USER"]).flatMap { SignalName($0) }
    }

    /// `--server` split; IPv6 as `[addr]:port`.
    var hostAndPort: (host: String, port: Int)? {
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(server[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// The key and every client file beside it, as absolute paths (a relative `--key` is relative to the
    /// working directory, `~` is expanded): the state file, `contacts`, `nat-cache` (docs/OPERATIONS.md).
    var files: ClientFiles { ClientFiles(key: key) }

    /// The client state file: next to the key file.
    var statePath: String { files.state }

    /// The pinned contact keys: `contacts` in the key file's directory.
    var contactsPath: String { files.contacts }

    /// The NAT behaviour cache beside the key (docs/PROTOCOL.md §6.1).
    var natCachePath: String { files.natCache }

    /// Reads the key, connects and logs in. Errors are printed; the thrown value is the exit code.
    /// The device identity from the key file.
    func identity() throws -> DeviceIdentity {
        do {
            return try KeyFile.read(from: files.key)
        } catch {
            throw ClientCLI.failure("cannot read the key file: \(error) (create one with `parley keygen`)")
        }
    }

    /// TLS settings from --tls, --ca-file, --insecure; nil for plain TCP.
    var tlsSettings: ClientTLS? {
        if insecure { .insecure } else if let caFile { .trusting(pemFile: caFile) } else if tls { .system } else { nil }
    }

    /// Connects and logs in; then, once per device, upgrades an account made before user keys (see
    /// ``upgradeIfAlone(_:_:identity:)``) unless `upgrade` is false.
    func logIn(quiet: Bool = false, upgrade: Bool = true) async throws -> (ParleyClient, Welcome) {
        let identity = try self.identity()
        var logger = Logger(label: "parley.client") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = verbose ? .debug : .warning
        var clientOptions = ParleyClient.Options(statePath: statePath, contactsPath: contactsPath)
        clientOptions.legacyContactsPath = files.sharedContacts
        clientOptions.trustPath = files.trust
        let client = ParleyClient(options: clientOptions, logger: logger)
        let (host, port) = hostAndPort!
        guard let account else {
            await client.close()
            throw ClientCLI.failure("give --user NAME (or set PARLEY_USER): [a-z0-9][a-z0-9._-]{0,31}")
        }
        do {
            _ = try await client.connect(host: host, port: port, tls: tlsSettings)
            let welcome = try await client.login(identity: identity, user: account, device: SignalName(device)!)
            if upgrade { await upgradeIfAlone(client, welcome, identity: identity) }
            return (client, welcome)
        } catch {
            await client.close()
            if quiet { throw error }
            throw ClientCLI.failure("\(error)")
        }
    }
}

extension ClientOptions {
    /// The upgrade of an account made before user keys (docs/OPERATIONS.md "Identity"): at the first login
    /// with this client, a device that is its account's only device makes the user key (KEY.user and its
    /// recovery file, the code printed once on stderr) and publishes the first device list, certifying
    /// itself. An account with several devices is left as it is, with a note: which devices are really its
    /// own only the person can say (`parley identity init` on one, then link the others). Checked once per
    /// device: afterwards the trust store holds the account's own list. Failures leave the account as it was.
    func upgradeIfAlone(_ client: ParleyClient, _ welcome: Welcome, identity: DeviceIdentity) async {
        if FileManager.default.fileExists(atPath: files.userKey) { return await restoreIfLost(client, welcome) }
        guard await client.trustedList(of: welcome.user) == nil,
            let own = try? await client.lookUp(welcome.user), own.list == nil
        else { return }
        guard own.devices.count == 1, own.devices[welcome.device] == identity.publicBundle else {
            ClientCLI.warn(
                "note: \(welcome.user) has \(own.devices.count) devices and no user key yet: run `parley identity init` "
                    + "on one of them and link the others, so the server can no longer add devices to the account")
            return
        }
        do {
            let (user, _, code) = try await UserKeySetup.create(
                welcome.user, device: welcome.device, bundle: identity.publicBundle, files: files
            ) { _ = try await client.publish($0) }
            _ = try? await client.lookUp(welcome.user)
            ClientCLI.warn(
                "note: upgraded \(welcome.user) to a user key (\(user.fingerprint)), kept in \(files.userKey); "
                    + "recovery file \(files.userKeyRecovery), recovery code (shown once): \(code)")
        } catch {
            ClientCLI.warn("note: could not upgrade \(welcome.user) to a user key now: \(error)")
        }
    }
}

extension ClientOptions {
    /// On the device holding the user key: a server that has no device list for us (its store was lost or
    /// replaced) gets the list we pinned published again, so contacts who pinned it do not see a withheld
    /// list. (They would refuse a server that withholds it; only the key's holder can put it back.)
    func restoreIfLost(_ client: ParleyClient, _ welcome: Welcome) async {
        guard let mine = await client.trustedList(of: welcome.user), let key = try? UserKeyFile.read(from: files.userKey),
            key.publicKey == mine.userKey
        else { return }
        do {
            _ = try await client.lookUp(welcome.user)
        } catch ListRefusal.withheld {
            do {
                _ = try await client.publish(mine)
                ClientCLI.warn("note: the server had no device list for \(welcome.user); published version \(mine.version) again")
            } catch {
                ClientCLI.warn("note: the server has no device list for \(welcome.user) and refused it again: \(error)")
            }
        } catch {
            return
        }
    }
}

/// Helpers shared by the client subcommands.
enum ClientCLI {
    /// Prints `parley: message` to stderr and returns the exit code to throw.
    static func failure(_ message: String, code: Int32 = 1) -> ExitCode {
        FileHandle.standardError.write(Data("parley: \(message)\n".utf8))
        return ExitCode(code)
    }

    /// Prints to stderr.
    static func warn(_ message: String) {
        FileHandle.standardError.write(Data(message.hasSuffix("\n") ? message.utf8 : (message + "\n").utf8))
    }

    /// Runs `body` with the client, closing it afterwards, and turns errors into messages and exit codes. A key
    /// change is printed in full, with how to accept it.
    static func run(_ client: ParleyClient, _ body: () async throws -> Void) async throws {
        do {
            try await body()
            await client.close()
        } catch let exit as ExitCode {
            await client.close()
            throw exit
        } catch let warning as KeyChangeWarning {
            await client.close()
            warn(banner(warning.description))
            throw failure(
                "refusing to use the changed key; after checking the fingerprints, re-run with --accept-new-key")
        } catch let refusal as ListRefusal {
            await client.close()
            warn(banner(refusal.description))
            if case .userKeyChanged = refusal {
                throw failure(
                    "refusing to use \(refusal.user)'s new user key; compare the safety number (`parley verify \(refusal.user)`), then re-run with --accept-new-key")
            }
            throw failure("refusing \(refusal.user)'s devices: the server presented a device list this account cannot accept")
        } catch {
            await client.close()
            throw failure("\(error)")
        }
    }

    /// Says what a lookup found about the user's device list: a list first seen, and every device the server
    /// listed that the user's own key does not certify (never used).
    static func reportList(_ lookup: KeyLookup) {
        if let review = lookup.review, review.status == .firstContact {
            warn("note: \(lookup.user)'s user key pinned now (first contact): \(UserIdentity.fingerprint(of: review.list.userKey)); "
                + "compare the safety number (`parley verify \(lookup.user)`)")
        } else if let review = lookup.review, review.status == .userKeyReplaced {
            warn("note: \(lookup.user)'s NEW user key accepted on request")
        }
        for (device, bundle) in lookup.uncertified.sorted(by: { $0.key < $1.key }) {
            warn("WARNING: the server lists a device \(lookup.user)/\(device) (\(bundle.fingerprint)) that \(lookup.user)'s key does not certify: ignored")
        }
    }

    /// A message framed so it cannot be missed.
    static func banner(_ text: String) -> String {
        let rule = String(repeating: "!", count: 78)
        return ([rule] + text.split(separator: "\n").map { "!! " + $0 } + [rule]).joined(separator: "\n")
    }

    /// Placeholder session descriptions: the CLI does signaling only, but still signs what it sends.
    static func placeholder(_ kind: String) -> [UInt8] {
        Array("parley-cli \(kind) placeholder \(Date().timeIntervalSince1970)".utf8)
    }

    /// Passes events to `handle` until it returns true (that event is then acknowledged too), the client
    /// closes, `timeout` passes, or no event arrived for `idle`. Returns whether `handle` finished it.
    static func consume(
        _ client: ParleyClient, timeout: Duration?, idle: Duration? = nil,
        _ handle: @escaping @Sendable (ClientEvent) async throws -> Bool
    ) async throws -> Bool {
        let activity = Activity()
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await event in client.events {
                    await activity.touch()
                    if try await handle(event) {
                        await client.acknowledge(upTo: event.sseq)
                        return true
                    }
                }
                return false
            }
            if let timeout {
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return false
                }
            }
            if let idle {
                group.addTask {
                    while await !activity.idle(for: idle) { try await Task.sleep(for: .milliseconds(50)) }
                    return false
                }
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            return finished
        }
    }

    /// When the last event arrived.
    private actor Activity {
        var last = ContinuousClock.now
        func touch() { last = .now }
        func idle(for duration: Duration) -> Bool { ContinuousClock.now - last >= duration }
    }

    /// A line for a verified sender: `alice/phone (fingerprint …)`, noting keys pinned just now.
    static func describe(_ device: VerifiedDevice) -> String {
        let note: String =
            switch device.pin {
            case .firstContact: ", first contact: key pinned now"
            case .newDevice: ", NEW DEVICE of \(device.user): key pinned now"
            case .pinned, .changed: ""
            }
        return "\(device) (fingerprint \(device.fingerprint)\(note))"
    }

    /// Prints events every command shows the same way: messages (so they are not lost unread), rejections
    /// (loudly), and anything else as a short line.
    static func printOther(_ event: ClientEvent) {
        switch event.kind {
        case .message(let id, let from, let text):
            print("message \(id) from \(describe(from)):\n  \(text)")
        case .rejected(let rejected):
            if case .keyChanged(let warning) = rejected.reason { warn(banner(warning.description)) }
            warn("WARNING: \(rejected)")
        case .ring(let call, let from, _):
            print("ring \(call) from \(describe(from)) (not handled here)")
        case .answer(let call, let by, _):
            print("answer \(call) by \(by)")
        case .candidate(let call, let from, let candidate):
            print("candidate \(call) from \(from): \(candidate.count) bytes")
        case .elsewhere(let call, let device):
            print("call \(call) answered on \(device)")
        case .ended(let call, let reason):
            print("call \(call) ended: \(reason.rawValue)")
        case .merged(let call, let into):
            print("call \(call) merged into \(into)")
        }
    }
}
