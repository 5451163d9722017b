import ArgumentParser
import Foundation

/// `parley`: the one executable. Server: `serve`, `user`. Client: `keygen`, `login`, `call`, `answer`, `send`,
/// `inbox`, `keys`, `nat`. And `version`.
@main
struct Parley: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "End-to-end encrypted calls and messages: server, client and tools.",
        version: version,
        subcommands: [Serve.self, Keygen.self, User.self, ClientLogin.self, ClientCall.self, ClientAnswer.self, Demo.self,
                      ClientSend.self, ClientInbox.self, ClientKeys.self, Identity.self, Device.self, Verify.self, Invite.self, Register.self, Link.self, NAT.self, TURNUser.self,
                      Version.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("parley \(Parley.version)") }
}
