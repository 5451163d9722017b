import ArgumentParser
import Foundation
import ParleyClient
import ParleyWire

/// `parley send USER TEXT`: an end-to-end sealed message to every device of a user.
struct ClientSend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send an end-to-end sealed text message to every device of a user.",
        discussion: "The server stores only ciphertext until each device fetches it (`parley inbox`).")

    @Argument(help: "The recipient.")
    var name: String

    @Argument(help: "The message.")
    var text: String

    @Flag(help: "Accept and pin the recipient's changed keys (check fingerprints first: `parley keys USER`).")
    var acceptNewKey = false

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        let (client, _) = try await options.logIn()
        try await ClientCLI.run(client) {
            let sent = try await client.send(text, to: SignalName(name)!, acceptNewKeys: acceptNewKey)
            ClientCLI.reportList(sent.keys)
            for (device, status) in sent.keys.status.sorted(by: { $0.key < $1.key }) {
                let fingerprint = sent.keys.devices[device]!.fingerprint
                switch status {
                case .firstContact:
                    ClientCLI.warn("note: first contact with \(name)/\(device): pinned key \(fingerprint)")
                case .newDevice:
                    ClientCLI.warn("note: NEW DEVICE \(name)/\(device) (key \(fingerprint)) can read this")
                case .changed: ClientCLI.warn("note: the changed key of \(name)/\(device) was accepted")
                case .pinned: break
                }
            }
            print("sent \(sent.id) to \(name) (\(sent.devices.map(\.text).joined(separator: ", ")))")
        }
    }
}

/// `parley inbox`: prints waiting messages, checking each sender's signature, and acknowledges them.
struct ClientInbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "Print and acknowledge waiting messages, verifying each sender.",
        discussion: """
            Exits when no event arrived for --wait seconds. Messages that fail verification are shown as \
            warnings, not as text. Other events waiting for this device (call signaling) are printed and \
            acknowledged too.
            """)

    @Option(help: ArgumentHelp("Seconds to wait for (more) messages.", valueName: "s"))
    var wait: Double = 2

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (client, _) = try await options.logIn()
        try await ClientCLI.run(client) {
            let counter = Counter()
            _ = try await ClientCLI.consume(client, timeout: nil, idle: .milliseconds(Int(wait * 1000))) { event in
                let time = Date(timeIntervalSince1970: Double(event.timestamp) / 1000).formatted(.iso8601)
                if case .message(_, let from, let text) = event.kind {
                    print("[\(time)] \(ClientCLI.describe(from)):\n  \(text)")
                    await counter.add()
                } else {
                    ClientCLI.printOther(event)
                }
                return false
            }
            let count = await counter.value
            print(count == 0 ? "no messages" : "\(count) message\(count == 1 ? "" : "s")")
        }
    }

    private actor Counter {
        var value = 0
        func add() { value += 1 }
    }
}
