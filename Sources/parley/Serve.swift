import ArgumentParser
import Foundation
import Logging
import ParleyServer
import UnixSignals

/// `parley serve`: runs the server until SIGTERM/SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Parley server (signaling, STUN, HTTP /metrics, /healthz and /ws).",
        discussion: """
            Every key of the configuration file is also a flag: the key with '.' and '_' written '-', \
            e.g. stun.alternate_port = 3479 is --stun-alternate-port 3479. Flags override the file.

            Keys:
            \(ConfigKey.all.map { "  --\($0.flag) (\($0.name), default \($0.defaultText))\n      \($0.help)" }.joined(separator: "\n"))
            """
    )

    @Option(name: .shortAndLong, help: "Configuration file (key = value lines).")
    var config: String?

    @Flag(help: "Log to stderr as well as to log.directory.")
    var foreground = false

    @Option(help: "Write the bound ports here as key=value lines once the server is ready (for scripts).")
    var readyFile: String?

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func run() async throws {
        var c = ServerConfiguration()
        do {
            var entries: [ConfigEntry] = []
            if let config { entries += try ConfigFile.load(path: config) }
            entries += try Self.flagEntries(settings)
            try c.apply(entries)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("parley: \(error)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }
        if foreground { c.logStderr = true }
        let server: ParleyServerInstance
        do {
            server = try await ParleyServerInstance.start(c, signals: [.sigterm, .sigint])
        } catch {
            LogOutput.flushAll()  // what the start logged before it failed
            FileHandle.standardError.write(Data("parley: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        if let readyFile {
            var lines = ["http=\(server.httpPort)"]
            if let p = server.stunPort { lines.append("stun_udp=\(p)") }
            if let p = server.stunTCPPort { lines.append("stun_tcp=\(p)") }
            if let p = server.stunTLSPort { lines.append("stun_tls=\(p)") }
            if let p = server.signal?.tcpPort { lines.append("signal_tcp=\(p)") }
            if let p = server.signal?.tlsBoundPort { lines.append("signal_tls=\(p)") }
            try (lines.joined(separator: "\n") + "\n").write(toFile: readyFile, atomically: true, encoding: .utf8)
        }
        try await server.wait()
    }

    /// Turns `--stun-port 3478` / `--stun-port=3478` into entries, refusing unknown flags.
    static func flagEntries(_ args: [String]) throws(ConfigError) -> [ConfigEntry] {
        var entries: [ConfigEntry] = []
        var seen: Set<String> = []
        var i = 0
        while i < args.count {
            let arg = args[i]
            guard arg.hasPrefix("--") else { throw ConfigError(.flag(arg), "unexpected argument '\(arg)'") }
            var name = String(arg.dropFirst(2))
            var value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            } else {
                guard i + 1 < args.count else { throw ConfigError(.flag(name), "missing value") }
                value = args[i + 1]
                i += 1
            }
            guard let key = ConfigKey.byFlag[name] else { throw ConfigError(.flag(name), "unknown flag --\(name)") }
            guard seen.insert(name).inserted else { throw ConfigError(.flag(name), "flag given twice") }
            value = value.trimmingCharacters(in: .whitespaces)
            entries.append(ConfigEntry(key: key.name, value: value, origin: .flag(name)))
            i += 1
        }
        return entries
    }
}
