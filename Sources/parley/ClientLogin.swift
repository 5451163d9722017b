import ArgumentParser
import Foundation
import ParleyClient
import ParleyCrypto
import ParleyWire

/// `parley login`: logs in once and prints what the server said.
struct ClientLogin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Log in to a signaling server, print the welcome, and exit.",
        discussion: "Also resends commands a previous run left unanswered (kept in <key>.state).")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (client, welcome) = try await options.logIn()
        try await ClientCLI.run(client) {
            let fingerprint = (try? KeyFile.read(from: options.files.key))?.publicBundle.fingerprint ?? "?"
            let serverTime = Date(timeIntervalSince1970: Double(welcome.serverTime) / 1000)
            print("logged in as \(welcome.user)/\(welcome.device) on \(options.server)")
            print("  device fingerprint: \(fingerprint)")
            print("  server time:        \(serverTime.formatted(.iso8601))")
            print("  last command seen:  \(welcome.lastCSeq)")
        }
    }
}

/// `parley keys USER`: a user's devices, fingerprints and pin status.
struct ClientKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Show a user's devices, key fingerprints and whether they match the pinned keys.",
        discussion: """
            The first time a user's keys are seen they are pinned (trust on first use) in `contacts` next to the \
            key file. A key that differs from its pin is refused with a warning until --accept-new-key; compare \
            fingerprints with the person (in person or by voice) before accepting.
            """)

    @Argument(help: "The user.")
    var name: String

    @Flag(help: "Accept and pin changed keys.")
    var acceptNewKey = false

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        let (client, _) = try await options.logIn()
        try await ClientCLI.run(client) {
            let lookup = try await client.lookUp(SignalName(name)!, acceptNewKeys: acceptNewKey)
            ClientCLI.reportList(lookup)
            print("devices of \(lookup.user)\(lookup.list.map { " (certified by their user key, list version \($0.version))" } ?? ""):")
            for (device, bundle) in lookup.devices.sorted(by: { $0.key < $1.key }) {
                let status: String =
                    switch lookup.status[device] {
                    case .firstContact?: "first contact: pinned now"
                    case .newDevice?: "NEW DEVICE: pinned now"
                    case .pinned?: "matches the pinned key"
                    case .changed(let previous)?: "CHANGED (was \(previous.fingerprint)): new key accepted and pinned"
                    case nil: "?"
                    }
                let column = device.text.padding(toLength: 16, withPad: " ", startingAt: 0)
                print("  \(column) \(bundle.fingerprint)  \(status)")
            }
            if !lookup.newDevices.isEmpty {
                ClientCLI.warn(
                    "note: \(lookup.user) has new devices: \(lookup.newDevices.map(\.text).joined(separator: ", "))")
            }
        }
    }
}
