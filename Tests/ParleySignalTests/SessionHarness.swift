import Foundation
import ParleyCrypto
import ParleySignal
import ParleyWire
import XCTest

/// A fixed random source (SessionRandom), so challenges are the same in every run.
struct SessionRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Alice with a phone and a laptop, Bob with a laptop; each device with a real Ed25519 identity.
struct SessionAccounts {
    let keys: [String: DeviceIdentity] = [
        "alice/phone": .generate(), "alice/laptop": .generate(), "bob/laptop": .generate(),
    ]

    var directory: StaticAccountDirectory {
        var users: [SignalName: [SignalName: DevicePublicBundle]] = [:]
        for (path, identity) in keys {
            let parts = path.split(separator: "/")
            users[SignalName(parts[0])!, default: [:]][SignalName(parts[1])!] = identity.publicBundle
        }
        return StaticAccountDirectory(users: users)
    }

    /// `login|user|device|ts|sig` signed by `signer` (default: the device's own key) over `challenge`.
    func loginLine(_ user: String, _ device: String, challenge: SignalBlob, ts: UInt64, signer: String? = nil) -> String
    {
        let identity = keys[signer ?? "\(user)/\(device)"] ?? .generate()
        let input = SignalCodec.loginSigningInput(
            challenge: challenge, user: SignalName(user)!, device: SignalName(device)!, timestamp: ts)
        let signature = try! identity.signingKey.signature(for: input)
        return "login|\(user)|\(device)|\(ts)|\(SignalBlob(bytes: signature).text)"
    }
}

/// An in-memory hub doing what the transport will do with ``SessionAction``s: sessions by connection
/// number, one ``DeviceQueue`` per device, ``Presence``, a cseq ledger standing in for the store, and a
/// record of every frame sent and command executed. The clock is ``now``, moved by the tests.
struct SessionSwitchboard {
    let accounts = SessionAccounts()
    var configuration = SessionConfiguration()
    var now: UInt64 = 1_795_435_200_000
    var random = SessionRandom(state: 7)
    var sessions: [Int: SessionMachine] = [:]
    var sent: [Int: [ServerFrame]] = [:]
    var closed: Set<Int> = []
    var presence = Presence<Int>()
    var queues: [String: DeviceQueue] = [:]
    /// The store's `last-cseq` per "user/device"; updated on every `execute`, as the hub must.
    var ledger: [String: UInt64] = [:]
    var executed: [(connection: Int, command: SignalCommand)] = []
    var acknowledged: [String: [UInt64]] = [:]
    private var nextConnection = 1

    /// A new connection; its `hello` is in ``sent``.
    mutating func connect() -> Int {
        let id = nextConnection
        nextConnection += 1
        var session = SessionMachine(configuration: configuration, directory: accounts.directory)
        let actions = session.connect(now: now, random: &random)
        sessions[id] = session
        perform(actions, on: id)
        return id
    }

    /// The challenge of connection `id`'s `hello`.
    func challenge(_ id: Int) -> SignalBlob {
        guard case .hello(_, let challenge, _) = sent[id]?.first else { fatalError("no hello on \(id)") }
        return challenge
    }

    /// Connects and logs `user/device` in with a fresh timestamp; returns the connection.
    mutating func login(_ user: String, _ device: String) -> Int {
        let id = connect()
        receive(id, accounts.loginLine(user, device, challenge: challenge(id), ts: now))
        return id
    }

    mutating func receive(_ id: Int, _ line: String) { perform(sessions[id]!.receive(line, now: now), on: id) }

    mutating func complete(_ id: Int, _ cseq: UInt64, _ answer: CommandAnswer = .ok) {
        perform(sessions[id]!.complete(cseq: cseq, with: answer, now: now), on: id)
    }

    mutating func hangUp(_ id: Int) {
        closed.insert(id)
        perform(sessions[id]!.transportClosed(now: now), on: id)
    }

    /// Moves the clock and fires every session deadline that has passed.
    mutating func advance(by ms: UInt64) {
        now += ms
        for id in sessions.keys.sorted() where !closed.contains(id) {
            if let deadline = sessions[id]!.deadline, deadline <= now {
                perform(sessions[id]!.deadlineReached(now: now), on: id)
            }
        }
    }

    /// Queues an event for a device and sends it at once if the device is online.
    mutating func deliver(_ event: SignalEvent, to user: String, _ device: String) {
        let key = "\(user)/\(device)"
        var queue = queues[key] ?? DeviceQueue(user: SignalName(user)!, device: SignalName(device)!)
        let result = queue.enqueue(event, now: now)
        queues[key] = queue
        if case .queued(let frame) = result,
            let id = presence.connection(user: SignalName(user)!, device: SignalName(device)!)
        {
            sent[id, default: []].append(frame)
        }
    }

    /// Enrolments the sessions handed out, with their connection.
    var enrolments: [(Int, Enrolment)] = []

    mutating func perform(_ actions: [SessionAction], on id: Int) {
        for action in actions {
            switch action {
            case .send(let frame):
                precondition(!closed.contains(id), "send on closed connection \(id)")
                // Everything the session says must survive the wire.
                let line = SignalCodec.format(frame)
                XCTAssertEqual(try SignalCodec.parseServer(line[...]), frame, line)
                sent[id, default: []].append(frame)
            case .verify(let check):
                perform(sessions[id]!.loginVerified(check.verify(), now: now), on: id)
            case .authenticated(let user, let device):
                perform(sessions[id]!.admit(lastCSeq: ledger["\(user)/\(device)"] ?? 0, now: now), on: id)
            case .online(let user, let device):
                if let old = presence.register(user: user, device: device, connection: id) {
                    perform(sessions[old]!.supersede(now: now), on: old)
                }
                let queue = queues["\(user)/\(device)"] ?? DeviceQueue(user: user, device: device)
                sent[id, default: []] += queue.unacknowledged
            case .execute(let command):
                let who = sessions[id]!.identity!
                ledger["\(who.user)/\(who.device)"] = command.cseq
                executed.append((id, command))
            case .acknowledge(let sseq):
                let who = sessions[id]!.identity!
                let key = "\(who.user)/\(who.device)"
                acknowledged[key, default: []] += queues[key]?.acknowledge(upTo: sseq).map(\.sseq) ?? []
            case .offline(let user, let device):
                presence.remove(user: user, device: device, connection: id)
            case .enrol(let request):
                enrolments.append((id, request))
            case .close:
                closed.insert(id)
            }
        }
    }

    /// Frames sent on `id` from index `from` on.
    func frames(_ id: Int, from: Int = 0) -> [ServerFrame] { Array((sent[id] ?? []).dropFirst(from)) }

    /// The `ev` frames sent on `id`, as (sseq, event kind).
    func events(_ id: Int) -> [UInt64] {
        frames(id).compactMap { if case .event(let sseq, _, _) = $0 { sseq } else { nil } }
    }
}

/// Base of the session and queue tests: short helpers that cannot collide with other suites' globals.
class SessionTestCase: XCTestCase {
    let callID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

    /// A name that is known to be valid.
    func n(_ text: String) -> SignalName { SignalName(text)! }

    /// A command line with the given cseq and timestamp.
    func commandLine(_ verb: String, _ cseq: UInt64, _ ts: UInt64, _ args: String...) -> String {
        ([verb, "\(cseq)", "\(ts)"] + args).joined(separator: "|")
    }

    /// A frame's error code, if it is an `error`.
    func errorCode(_ frame: ServerFrame?) -> ServerFrame.ErrorCode? {
        if case .error(let code, _)? = frame { code } else { nil }
    }
}
