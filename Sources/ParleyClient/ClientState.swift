import ParleyWire

/// What a client must remember across restarts for one device on one server: the command queue and the last
/// event it acknowledged. Stored with ``write(to:)`` in a small text file (mode `0600`), by default next to
/// the device's key file (`<key file>.state`):
///
/// ```
/// parley-client-state v1
/// account <server host:port> <user> <device>
/// next-cseq <int>
/// last-sseq <int>
/// pending <command frame with ts 0, e.g. msg|42|0|<id>|bob|laptop=…>
/// …one pending line per unanswered command, in cseq order
/// ```
///
/// The file is replaced atomically after every change (a command queued or answered, an event
/// acknowledged). A file written for another account (server, user or device) is ignored: its commands
/// were meant for someone else, and the server's `welcome` corrects the cseq anyway.
struct ClientState: Sendable, Hashable {
    /// The first line of every state file.
    static let header = "parley-client-state v1"

    /// `host:port user device`, the account this state belongs to.
    var account: String
    /// Outbound commands.
    var queue: CommandQueue
    /// The highest event sseq acknowledged with `got`.
    var lastAcknowledgedSSeq: UInt64

    init(account: String, queue: CommandQueue = CommandQueue(), lastAcknowledgedSSeq: UInt64 = 0) {
        self.account = account
        self.queue = queue
        self.lastAcknowledgedSSeq = lastAcknowledgedSSeq
    }

    /// The file's text.
    func render() -> String {
        var lines = [
            Self.header, "account \(account)", "next-cseq \(queue.nextCSeq)", "last-sseq \(lastAcknowledgedSSeq)",
        ]
        for command in queue.pending {
            lines.append("pending " + SignalCodec.format(command.frame(timestamp: 0)))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Parses a state file's text; errors name the line, never echo it.
    static func parse(_ text: String, path: String) throws(ClientError) -> ClientState {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard lines.first == Substring(header) else { throw .stateFile(path, "line 1: expected '\(header)'") }
        var account: String?
        var nextCSeq: UInt64?
        var lastSSeq: UInt64?
        var pending: [PendingCommand] = []
        for (index, line) in lines.enumerated().dropFirst() {
            let bad = ClientError.stateFile(path, "line \(index + 1): malformed")
            guard let space = line.firstIndex(of: " ") else { throw bad }
            let value = line[line.index(after: space)...]
            switch line[..<space] {
            case "account":
                account = String(value)
            case "next-cseq":
                guard let n = UInt64(value) else { throw bad }
                nextCSeq = n
            case "last-sseq":
                guard let n = UInt64(value) else { throw bad }
                lastSSeq = n
            case "pending":
                guard case .command(let command)? = try? SignalCodec.parseClient(value) else { throw bad }
                guard pending.last.map({ $0.cseq < command.cseq }) ?? true else { throw bad }
                pending.append(PendingCommand(cseq: command.cseq, verb: command.verb))
            default:
                throw bad
            }
        }
        guard let account, let nextCSeq, let lastSSeq else {
            throw .stateFile(path, "missing account, next-cseq or last-sseq")
        }
        return ClientState(
            account: account, queue: CommandQueue(nextCSeq: nextCSeq, pending: pending), lastAcknowledgedSSeq: lastSSeq)
    }

    /// Loads the state at `path` for `account`: fresh when the file is missing or belongs to another account.
    static func load(from path: String, account: String) throws(ClientError) -> (state: ClientState, discarded: Bool) {
        guard let bytes = try PrivateFile.read(path, limit: 64 << 20) else {
            return (ClientState(account: account), false)
        }
        let state = try parse(String(decoding: bytes, as: UTF8.self), path: path)
        guard state.account == account else { return (ClientState(account: account), true) }
        return (state, false)
    }

    /// Replaces the file at `path` with this state.
    func write(to path: String) throws(ClientError) {
        try PrivateFile.write(Array(render().utf8), to: path)
    }
}
