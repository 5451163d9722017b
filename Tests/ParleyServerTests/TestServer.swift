import Foundation
import ParleyCrypto
import ParleyServer

/// A whole server for the socket tests: loopback only, STUN off, ephemeral ports, its store and accounts file
/// in `directory`, with `accounts` (`user.device = bundle` lines) and whatever `mutate` changes.
enum TestServer {
    static func start(
        in directory: String, accounts: [(account: String, identity: DeviceIdentity)],
        _ mutate: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> ParleyServerInstance {
        try await start(
            in: directory, accountsFile: accounts.map { "\($0.account) = \($0.identity.publicBundle.encoded)" }.joined(separator: "\n"),
            mutate)
    }

    /// The same with the accounts file's text as given (comments and all).
    static func start(
        in directory: String, accountsFile: String, _ mutate: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> ParleyServerInstance {
        try accountsFile.write(toFile: directory + "/accounts.conf", atomically: true, encoding: .utf8)
        var c = ServerConfiguration()
        c.stunEnabled = false
        c.httpListen = "127.0.0.1"
        c.httpPort = 0
        c.threads = 2
        c.signalListen = ["127.0.0.1"]
        c.signalPort = 0
        c.storePath = directory + "/parley.sqlite"
        c.signalAccountsFile = directory + "/accounts.conf"
        mutate(&c)
        return try await ParleyServerInstance.start(c)
    }
}
