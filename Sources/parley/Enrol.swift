import ArgumentParser
import Foundation
import ParleyClient
import ParleyCrypto
import ParleyStore
import ParleyWire

/// `parley invite` (operator): a one-time invitation to make an account (docs/PROTOCOL.md §3.8).
struct Invite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a one-time invitation to register an account (stored hashed in the server's store).",
        discussion: "The token is printed once; the store keeps only its SHA-256. Used up by the first registration.")

    @Option(help: ArgumentHelp("Only this user name may register with it.", valueName: "name"))
    var user: String?

    @Option(help: ArgumentHelp("How long it is valid: 90m, 24h, 7d.", valueName: "time"))
    var expires = "24h"

    @Option(help: ArgumentHelp("The signaling server's address, for the printed command and URL.", valueName: "host:port"))
    var server = "HOST:7000"

    @OptionGroup var store: User.StoreOptions

    func validate() throws {
        if let user { guard SignalName(user) != nil else { throw ValidationError("invalid user name '\(user)'") } }
        guard Self.seconds(expires) != nil else { throw ValidationError("--expires is a number and m, h or d (e.g. 24h)") }
    }

    static func seconds(_ text: String) -> Double? {
        guard let unit = text.last, let number = Double(text.dropLast()), number > 0 else { return nil }
        switch unit {
        case "m": return number * 60
        case "h": return number * 3600
        case "d": return number * 86_400
        default: return nil
        }
    }

    func run() async throws {
        var token = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in token.indices { token[i] = UInt8.random(in: 0...255, using: &rng) }
        let text = SignalBlob(bytes: token).text
        let hash = InviteToken.hash(token)
        let expiry = Date().addingTimeInterval(Self.seconds(expires)!)
        let opened = try store.open(creating: true)
        try await User.perform { try await opened.createInvite(tokenHash: hash, user: user, expires: expiry, at: Date()) }
        print("invite: \(text)")
        print("valid until \(User.format(expiry))\(user.map { " for the user name \($0)" } ?? "")")
        print("url: parley-invite:\(server)/\(text)")
        print("register with: parley register \(user ?? "NAME") --invite=\(text) --server \(server)")
    }
}

/// `parley register USER --invite TOKEN`: a new account with its own user key and this device as the first.
struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make an account: a new user key, and this device (its key file, made if missing) as the first device.",
        discussion: "Needs an invite unless the server's signal.registration is open. The user key stays on this device (KEY.user).")

    @Argument(help: "The user name to register.")
    var name: String

    @Option(help: ArgumentHelp("The invite token (or a parley-invite: URL).", valueName: "token"))
    var invite: String?

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        let files = options.files
        guard !FileManager.default.fileExists(atPath: files.userKey) else {
            throw ClientCLI.failure("\(files.userKey) exists: this device already holds a user key")
        }
        var token: [UInt8]?
        if let invite {
            let text = invite.hasPrefix("parley-invite:") ? String(invite.split(separator: "/").last ?? "") : invite
            guard let blob = SignalBlob(text, maxBytes: 16), blob.byteCount == 16 else {
                throw ClientCLI.failure("the invite is not a token this server made (16 bytes of base64url)")
            }
            token = blob.bytes
        }
        let identity = try Enrol.deviceKey(files)
        let (host, port) = options.hostAndPort!
        let user = SignalName(name)!
        let (key, list, code): (UserIdentity, DeviceList, String)
        do {
            (key, list, code) = try await UserKeySetup.create(
                user, device: SignalName(options.device)!, bundle: identity.publicBundle, files: files
            ) { list in
                try await EnrolmentClient.register(list, invite: token, host: host, port: port, tls: options.tlsSettings)
            }
        } catch let error as EnrolmentError {
            throw ClientCLI.failure("registration \(error)")
        }
        var login = options
        login.user = name
        let (client, _) = try await login.logIn(upgrade: false)
        try await ClientCLI.run(client) { _ = try await client.lookUp(user) }
        print("registered \(user) with device \(options.device) (device list version \(list.version))")
        print("user key: \(key.fingerprint)")
        print("recovery file: \(files.userKeyRecovery)")
        print("recovery code (shown once; keep it apart from the file): \(code)")
    }
}

/// `parley link request|approve`: joining a new device to an account by a one-time code.
struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Link a new device to an account with a one-time code.",
        subcommands: [LinkRequest.self, LinkApprove.self])
}

struct LinkRequest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "On the new device: show a link code, then wait until a device of the account approves it.",
        discussion: "Type the code on a device that holds the user key: `parley link approve CODE`.")

    @Option(help: ArgumentHelp("Seconds to wait for the approval.", valueName: "s"))
    var timeout: Double = 600

    @OptionGroup var options: ClientOptions

    func run() async throws {
        ClientCLI.lineBufferedOutput()  // the code must reach a pipe before the wait
        let files = options.files
        let identity = try Enrol.deviceKey(files)
        let (host, port) = options.hostAndPort!
        guard let user = options.account else { throw ClientCLI.failure("give --user NAME: the account to join") }
        let code: LinkCode
        do {
            code = try await EnrolmentClient.requestLink(
                user: user, device: SignalName(options.device)!, identity: identity, host: host, port: port,
                tls: options.tlsSettings)
        } catch let error as EnrolmentError {
            throw ClientCLI.failure("link request \(error)")
        }
        print("link code: \(code.text)")
        print("uri: \(code.uri(user: user, server: options.server))")
        print("this device's fingerprint: \(identity.publicBundle.fingerprint)")
        print("waiting for approval…")
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let (client, welcome) = try? await options.logIn(quiet: true, upgrade: false) {
                try await ClientCLI.run(client) { _ = try await client.lookUp(welcome.user) }
                print("linked: logged in as \(welcome.user)/\(welcome.device)")
                return
            }
            try await Task.sleep(for: .seconds(1))
        }
        throw ClientCLI.failure("not approved within \(timeout) s")
    }
}

struct LinkApprove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "On a device holding the user key: approve a new device by the code it shows.",
        discussion: """
            Fetches the request the code names and checks it against the code (a request or code altered by \
            the server or on the way is refused), shows the new device's fingerprint, and publishes the next \
            device list with it.
            """)

    @Argument(help: "The code (or the parley-link: URI) the new device shows.")
    var code: String

    @Flag(help: "Do not ask; approve if the code matches.")
    var yes = false

    @OptionGroup var options: ClientOptions

    func run() async throws {
        guard let code = LinkCode.parse(uri: code)?.code ?? LinkCode(text: code) else {
            throw ClientCLI.failure("not a link code (32 letters A-Z and 2-7) or parley-link: URI")
        }
        let yes = yes
        try await Device.publishNext(options, "linked") { client, current, user in
            let entry: DeviceList.Entry
            do {
                entry = try await client.linkRequest(code)
            } catch let mismatch as LinkMismatch {
                ClientCLI.warn(ClientCLI.banner(mismatch.description))
                throw ClientCLI.failure("link refused")
            }
            print("new device \(entry.name), fingerprint \(entry.bundle.fingerprint)")
            if !yes, !ClientAnswer.confirm("compare it with the new device's screen; certify it? [y/N] ") {
                throw ClientCLI.failure("not approved")
            }
            return try current.next(by: user, adding: [entry], time: IdentityInit.now)
        }
    }
}

enum Enrol {
    /// The device key at `files.key`, made (mode 0600, its directory 0700) when there is none.
    static func deviceKey(_ files: ClientFiles) throws -> DeviceIdentity {
        if FileManager.default.fileExists(atPath: files.key) {
            do {
                return try KeyFile.read(from: files.key)
            } catch {
                throw ClientCLI.failure("cannot read the key file: \(error)")
            }
        }
        try FileManager.default.createDirectory(
            atPath: files.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let identity = DeviceIdentity.generate()
        try KeyFile.write(identity, to: files.key, force: false)
        ClientCLI.warn("wrote \(files.key) (mode 0600): this device's key, fingerprint \(identity.publicBundle.fingerprint)")
        return identity
    }
}
