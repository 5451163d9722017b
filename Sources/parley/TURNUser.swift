import ArgumentParser
import Foundation
import ParleyRelay
import ParleyServer

/// `parley turn-user NAME`: the line for turn.users_file. The password is read from stdin and only
/// its two derived keys (RFC 8489 §9.2.2, MD5 and SHA-256 of "name:realm:password") are printed, so
/// the users file never holds a password.
struct TURNUser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turn-user",
        abstract: "Print a turn.users_file line for a static TURN user (password read from stdin).",
        discussion: "Example: printf '%s' \"$PASSWORD\" | parley turn-user alice --realm parley >> turn-users (then chmod 600).")

    @Argument(help: "The TURN username.")
    var name: String

    @Option(help: "The realm (must match stun.realm; the keys depend on it).")
    var realm = "parley"

    func run() throws {
        guard !name.isEmpty, !name.contains(":"), !name.contains("\n") else {
            throw ValidationError("the name must be non-empty and contain no ':'")
        }
        let input = FileHandle.standardInput.readDataToEndOfFile()
        var password = String(decoding: input, as: UTF8.self)
        while password.hasSuffix("\n") || password.hasSuffix("\r") { password.removeLast() }
        guard !password.isEmpty else { throw ValidationError("no password on stdin") }
        print(TURNUsersFile.line(for: .init(name: name, realm: realm, password: password)))
    }
}
