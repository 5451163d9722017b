import ArgumentParser
import Dispatch
import Foundation
import NIOConcurrencyHelpers
import ParleyClient
import ParleyMedia

/// How `parley call` and `parley answer` exit (docs/OPERATIONS.md "Calls from the command line").
enum CallExit {
    /// The call took place and ended (either side hung up, `--hold` ran out, `--play` ended).
    static let completed: Int32 = 0
    /// Ended by SIGINT (Ctrl-C) after hanging up properly: 128 + 2, as a shell reports a signal.
    static let interrupted: Int32 = 130
    /// Ended by SIGTERM after hanging up properly: 128 + 15.
    static let terminated: Int32 = 143

    /// The code for a call ended by `signal`.
    static func code(for signal: Int32) -> Int32 { signal == SIGTERM ? terminated : interrupted }
}

/// SIGINT and SIGTERM during a call: the first is handed to the call, which hangs up (media goodbye,
/// `end` through signaling), closes its recording, prints its summary and exits with
/// ``CallExit/interrupted`` or ``CallExit/terminated``; a second one exits at once with the same code
/// (the recording is then as of its last header refresh, under a second old).
enum Interrupts {
    private static let sources = NIOLockedValueBox<[SignalSource]>([])
    private static let received = NIOLockedValueBox(0)

    /// The signal sources, kept alive for the process's life.
    private struct SignalSource: @unchecked Sendable {
        let source: any DispatchSourceSignal
    }

    /// Takes over SIGINT and SIGTERM; the stream yields the first one.
    static func install() -> AsyncStream<Int32> {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)  // delivered to the dispatch source instead of killing the process
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let count = received.withLockedValue { count -> Int in
                    count += 1
                    return count
                }
                if count > 1 {
                    let line = "parley: second \(number == SIGTERM ? "SIGTERM" : "interrupt"): exiting now\n"
                    _ = line.withCString { write(2, $0, strlen($0)) }
                    _exit(CallExit.code(for: number))
                }
                let line = "parley: \(number == SIGTERM ? "SIGTERM" : "interrupt"): hanging up (again to exit at once)\n"
                _ = line.withCString { write(2, $0, strlen($0)) }
                continuation.yield(number)
            }
            source.resume()
            sources.withLockedValue { $0.append(SignalSource(source: source)) }
        }
        return stream
    }
}

/// `--events-json PATH`: one JSON object per line for each call event, for scripts and tests (the printed
/// lines are for people and may change). Every object has `event` and `wall_us` (µs since the epoch);
/// the fields of each event are listed in docs/OPERATIONS.md.
final class CallEventLog: Sendable {
    private let handle: NIOLockedValueBox<FileHandle?>

    /// A value in an event.
    enum Value: Encodable, Sendable {
        case string(String), int(Int64), double(Double), bool(Bool)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .string(let value): try container.encode(value)
            case .int(let value): try container.encode(value)
            case .double(let value): try container.encode(value.isFinite ? value : 0)
            case .bool(let value): try container.encode(value)
            }
        }
    }

    /// Opens (creates or truncates, mode 0600) `path`; nil writes nothing.
    init(path: String?) throws {
        guard let path else {
            handle = NIOLockedValueBox(nil)
            return
        }
        let absolute = ClientFiles.absolute(path)
        guard FileManager.default.createFile(atPath: absolute, contents: nil, attributes: [.posixPermissions: 0o600]),
            let file = FileHandle(forWritingAtPath: absolute)
        else { throw ClientCLI.failure("cannot write the event log \(absolute)") }
        handle = NIOLockedValueBox(file)
    }

    /// Appends one event line.
    func emit(_ event: String, _ fields: [String: Value] = [:]) {
        var object = fields
        object["event"] = .string(event)
        if object["wall_us"] == nil { object["wall_us"] = .int(Int64(MediaPrinter.wall())) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(object) else { return }
        line.append(0x0A)
        handle.withLockedValue { $0?.write(line) }
    }

    /// The figures of a quality snapshot: concealment, delay and MOS only while the peer sends audio.
    static func fields(_ quality: CallQuality) -> [String: Value] {
        var fields: [String: Value] = [
            "rtt_ms": .double(quality.rttMilliseconds), "jitter_ms": .double(quality.jitterMilliseconds),
            "loss_pct": .double(quality.lossPercent), "peer_audio": .string(quality.peerAudio.rawValue),
        ]
        if quality.peerAudio == .sending {
            fields["concealed_pct"] = .double(quality.concealedPercent)
            fields["mos"] = .double(quality.meanOpinionScore)
            fields["delay_ms"] = .double(quality.mouthToEarMilliseconds)
        }
        return fields
    }
}
