import ArgumentParser
import Foundation
import ParleyCrypto
import ParleyMedia
import ParleyServer

/// `parley demo`: a whole encrypted call on this machine, end to end, on the embedded defaults.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a whole local encrypted call: a server, two users with fresh keys, audio in and out.",
        discussion: """
            Starts a server on 127.0.0.1 (SQLite store in the directory), makes keys for alice and bob, and runs \
            `parley answer` (bob) and `parley call` (alice) as two processes of this program, so the demo takes \
            exactly the path a real call takes. alice sends --play (or a 440 Hz tone), bob a 660 Hz tone; each \
            records what it hears. Prints both sides' short authentication strings, live stats and summaries, then \
            measures the recordings.
            """)

    @Option(help: ArgumentHelp("WAV file alice sends (default: a 440 Hz tone for --seconds).", valueName: "path"))
    var play: String?

    @Option(help: ArgumentHelp("Call length with the tone.", valueName: "s"))
    var seconds: Double = 5

    @Option(help: ArgumentHelp("Working directory (default: a new one under /tmp). Keys, store, logs, recordings.", valueName: "dir"))
    var dir: String?

    func run() async throws {
        ClientCLI.lineBufferedOutput()
        let work = dir ?? (NSTemporaryDirectory() + "parley-demo-" + String(UInt32.random(in: 0...UInt32.max), radix: 16))
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        print("demo directory: \(work)")
        // Keys and accounts.
        var accounts = "# parley demo accounts\n"
        for user in ["alice", "bob"] {
            let identity = DeviceIdentity.generate()
            try KeyFile.write(identity, to: "\(work)/\(user).key", force: true)
            accounts += "\(user).phone = \(identity.publicBundle.encoded)\n"
        }
        try accounts.write(toFile: "\(work)/accounts.conf", atomically: true, encoding: .utf8)
        // The server, in this process.
        var configuration = ServerConfiguration()
        try configuration.apply(
            Serve.flagEntries([
                "--stun-enabled", "no", "--http-listen", "127.0.0.1", "--http-port", "0", "--signal-listen", "127.0.0.1",
                "--signal-port", "0", "--store-path", "\(work)/parley.sqlite", "--signal-accounts-file",
                "\(work)/accounts.conf", "--log-directory", "\(work)/logs",
            ]))
        let server = try await ParleyServerInstance.start(configuration)
        guard let port = server.signal?.tcpPort else { throw ClientCLI.failure("the demo server has no signaling port") }
        print("server on 127.0.0.1:\(port) (signaling), logs in \(work)/logs")
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        func common(_ user: String) -> [String] {
            ["--server", "127.0.0.1:\(port)", "--key", "\(work)/\(user).key", "--user", user, "--device", "phone",
             "--media-bind", "127.0.0.1", "--stats"]
        }
        let bob = try Self.spawn(
            me, ["answer", "--auto", "--ring-for", "1", "--timeout", "120", "--tone", "660", "--record", "\(work)/bob-heard.wav"]
                + common("bob"), prefix: "bob   | ")
        try await Task.sleep(for: .milliseconds(700))
        var callArgs = ["call", "bob", "--record", "\(work)/alice-heard.wav"]
        callArgs += play.map { ["--play", $0] } ?? ["--tone", "440", "--hold", String(seconds)]
        let alice = try Self.spawn(me, callArgs + common("alice"), prefix: "alice | ")
        alice.waitUntilExit()
        bob.waitUntilExit()
        try await server.shutdown()
        print("")
        for (who, file, expected) in [("bob", "bob-heard.wav", play == nil ? "440 Hz" : "alice's WAV"), ("alice", "alice-heard.wav", "660 Hz")] {
            guard let heard = try? WAVFile.read(path: "\(work)/\(file)").samples48kMono, heard.count > 48_000 else {
                print("\(who) heard nothing usable (\(file))")
                continue
            }
            let middle = heard[(heard.count / 4)..<(3 * heard.count / 4)]
            let frequency = ToneAnalysis.dominantFrequency(of: middle)
            let level = ToneAnalysis.levelDBFS(of: middle)
            print("\(who) heard \(String(format: "%.1f", Double(heard.count) / 48_000)) s: dominant \(String(format: "%.1f", frequency)) Hz at \(String(format: "%.1f", level)) dBFS (sent: \(expected)) -> \(work)/\(file)")
        }
        guard alice.terminationStatus == 0, bob.terminationStatus == 0 else {
            throw ClientCLI.failure("a side failed (alice exit \(alice.terminationStatus), bob exit \(bob.terminationStatus))")
        }
    }

    /// Starts `path args` with its output printed line by line behind `prefix`.
    static func spawn(_ path: String, _ args: [String], prefix: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let buffer = LineBuffer(prefix: prefix)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            buffer.feed(data)
        }
        try process.run()
        return process
    }
}

/// Prints complete lines behind a prefix.
final class LineBuffer: @unchecked Sendable {
    let prefix: String
    let lock = NSLock()
    var pending = Data()
    init(prefix: String) { self.prefix = prefix }

    func feed(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        if data.isEmpty {
            if !pending.isEmpty { emit(pending) }
            pending = Data()
            return
        }
        pending.append(data)
        while let newline = pending.firstIndex(of: 0x0A) {
            emit(pending[pending.startIndex..<newline])
            pending = Data(pending[(newline + 1)...])
        }
    }

    private func emit(_ line: Data) {
        FileHandle.standardOutput.write(Data(prefix.utf8) + line + Data("\n".utf8))
    }
}
