import ArgumentParser
import Foundation
import ParleyClient
import ParleyWire

/// What happened to the call a command is following.
private actor CallProgress {
    var call: SignalID?
    var answered = false
    var endReason: SignalEvent.EndReason?

    func follow(_ call: SignalID) { self.call = call }
    func answer() { answered = true }
    func end(_ reason: SignalEvent.EndReason) { endReason = reason }
}

/// `parley call USER`: places a call (signaling only) with a signed placeholder offer.
struct ClientCall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a user (signaling only) and print events until the call is answered or ends.",
        discussion: """
            The offer is a placeholder, signed with this device's key like a real one. On answer the call is \
            hung up after --hold seconds; without an answer within --timeout it is cancelled. A counter-call \
            (the callee calling back at the same time) is accepted automatically, as the protocol asks.
            """)

    @Argument(help: "The user to call.")
    var name: String

    @Option(help: ArgumentHelp("Seconds to wait for an answer.", valueName: "s"))
    var timeout: Double = 45

    @Option(help: ArgumentHelp("Seconds to stay in the answered call before hanging up.", valueName: "s"))
    var hold: Double = 0

    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard SignalName(name) != nil else { throw ValidationError("invalid user name '\(name)'") }
    }

    func run() async throws {
        let (client, _) = try await options.logIn()
        try await ClientCLI.run(client) {
            let callee = SignalName(name)!
            let progress = CallProgress()
            let call = try await client.call(callee, offer: ClientCLI.placeholder("offer"))
            await progress.follow(call)
            print("calling \(callee) (call \(call))…")
            let finished = try await ClientCLI.consume(client, timeout: .milliseconds(Int(timeout * 1000))) { event in
                let current = await progress.call
                switch event.kind {
                case .answer(current, let by, let answer):
                    print("answered by \(ClientCLI.describe(by)); signed answer of \(answer.count) bytes verified")
                    await progress.answer()
                    return true
                case .ended(current, let reason):
                    print("call ended: \(reason.rawValue)")
                    await progress.end(reason)
                    return true
                case .candidate(current, let from, let candidate):
                    print("candidate from \(from): \(candidate.count) bytes, signature verified")
                case .merged(current, let into):
                    print("\(callee) called us at the same time; merged into their call \(into), accepting it")
                    await progress.follow(into)
                case .ring(current, let from, _):
                    try await client.accept(current!, answer: ClientCLI.placeholder("answer"))
                    print("accepted the merged call from \(ClientCLI.describe(from))")
                    await progress.answer()
                    return true
                default:
                    ClientCLI.printOther(event)
                }
                return false
            }
            let followed = await progress.call ?? call
            guard finished, await progress.answered else {
                if !finished {
                    try? await client.cancel(followed)
                    throw ClientCLI.failure("no answer within \(timeout) s; call cancelled")
                }
                throw ExitCode(1)
            }
            if hold > 0 { try await Task.sleep(for: .milliseconds(Int(hold * 1000))) }
            try await client.end(followed)
            print("hung up")
        }
    }
}

/// `parley answer`: waits for a call and accepts it with a signed placeholder answer.
struct ClientAnswer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "answer",
        abstract: "Wait for a call, accept it (signaling only), and print events until it ends.",
        discussion: """
            Without --auto, asks before accepting. Rings whose offer does not verify against the caller's \
            pinned key are shown as warnings and never accepted. Further calls while in one are answered busy.
            """)

    @Flag(help: "Accept the first call without asking.")
    var auto = false

    @Option(help: ArgumentHelp("Seconds to wait, for the ring and then for the call to end.", valueName: "s"))
    var timeout: Double = 120

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let (client, _) = try await options.logIn()
        let auto = auto
        try await ClientCLI.run(client) {
            let progress = CallProgress()
            print("waiting for a call…")
            let finished = try await ClientCLI.consume(client, timeout: .milliseconds(Int(timeout * 1000))) { event in
                let current = await progress.call
                switch event.kind {
                case .ring(let call, let from, let offer) where current == nil:
                    print("ring from \(ClientCLI.describe(from)) (call \(call))")
                    print("  signed offer of \(offer.count) bytes verified")
                    guard auto || Self.confirm("accept? [y/N] ") else {
                        try await client.reject(call)
                        print("rejected")
                        return true
                    }
                    try await client.accept(call, answer: ClientCLI.placeholder("answer"))
                    await progress.follow(call)
                    await progress.answer()
                    print("accepted")
                case .ring(let call, let from, _):
                    try await client.busy(call)
                    print("busy: declined another call from \(from)")
                case .candidate(current, let from, let candidate):
                    print("candidate from \(from): \(candidate.count) bytes, signature verified")
                case .elsewhere(current, let device):
                    print("answered on our other device \(device)")
                    return true
                case .ended(current, let reason):
                    print("call ended: \(reason.rawValue)")
                    await progress.end(reason)
                    return true
                default:
                    ClientCLI.printOther(event)
                }
                return false
            }
            guard finished else {
                if let call = await progress.call { try? await client.end(call) }
                throw ClientCLI.failure(
                    await progress.call == nil ? "no call within \(timeout) s" : "timed out; hung up")
            }
        }
    }

    /// Asks on the terminal; anything but y/yes declines.
    static func confirm(_ prompt: String) -> Bool {
        FileHandle.standardOutput.write(Data(prompt.utf8))
        return ["y", "yes"].contains(readLine()?.lowercased() ?? "")
    }
}
