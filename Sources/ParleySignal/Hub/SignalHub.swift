import Foundation
import Logging
import NIOCore
import ParleyCrypto
import ParleyStore
import ParleyWire

/// Wires the sans-I/O machines to connections and the store: one ``SessionMachine`` per connection,
/// one ``CallBook``, one ``DeviceQueue`` per device, ``Presence``. Every piece of state lives on one
/// event loop (`loop`). Connections on that loop (the TCP listener puts its connections there) call in
/// directly; others (TLS, WebSocket) call from their own threads and the hub hops. Store calls run off
/// the loop and hop back with their results; login signatures are checked on the `verifiers` loops and
/// hop back likewise, so the loop is left with the bookkeeping.
///
/// Event sequence numbers are per device and never go backwards, across restarts too: a new one is
/// `max(last + 1, now_ms × 1000)`, so after a restart every sseq is above anything issued before
/// without persisting a counter per event. Call events live only in memory (calls end with the
/// process); sealed messages live in the store until their device acknowledges them, and are queued
/// again (with fresh sseqs) when the device logs in after a restart — the client deduplicates them by
/// message id.
public final class SignalHub: @unchecked Sendable {
    public let loop: any EventLoop
    public let store: any SignalStore
    let logger: Logger
    let configuration: SignalHubConfiguration
    let clock: @Sendable () -> UInt64
    /// Loops that check login signatures (never `loop`); empty: checked on `loop`.
    let verifiers: [any EventLoop]
    var nextVerifier = 0

    // Loop-confined state.
    var directory: AccountTableDirectory
    /// Each user's newest device list (docs/PROTOCOL.md §3.8), as stored.
    var deviceLists: [SignalName: DeviceList] = [:]
    /// Link requests waiting for a device of their user that holds the user key, by request id. In memory:
    /// a restart drops them and the new device asks again.
    var linkRequests: [String: LinkRequest] = [:]

    struct LinkRequest: Sendable {
        var user: SignalName
        var device: SignalName
        var bundle: DevicePublicBundle
        var expires: UInt64
    }
    var connections: [ObjectIdentifier: ConnectionState] = [:]
    var presence = Presence<ObjectIdentifier>()
    var calls: CallBook
    var callTimer: Scheduled<Void>?
    var queues: [CallParty: DeviceQueue] = [:]
    /// For each device, the queued message events: queue sseq → the message's store sseq.
    var messageRefs: [CallParty: [UInt64: Int64]] = [:]
    /// For each device, the highest store sseq moved from the store into its queue in this process:
    /// stored mail enters the queue only through ``pumpStoredMessages(for:)``, in store order, after it.
    var storeCursor: [CallParty: Int64] = [:]
    /// Devices with a store read in flight, and those that need another once it lands.
    var pumping: Set<CallParty> = []
    var pumpAgain: Set<CallParty> = []
    /// The highest cseq processed per device in this process, and the devices whose value is waiting to
    /// be written: call commands' cseqs reach the store at most every ``cseqFlushInterval`` per device
    /// instead of one synchronous commit per command (a `msg` records its own in its transaction).
    var processedCSeq: [CallParty: UInt64] = [:]
    /// Devices whose processed cseq changed since the last write; all of them go in one transaction.
    var cseqDirty: Set<CallParty> = []
    var cseqFlushPending = false
    /// Devices that may have stored mail (loaded at start, added to as mail is committed): a login of any
    /// other device reads nothing from the store.
    var mayHaveMail: Set<CallParty> = []
    /// True when the processed cseqs and `mayHaveMail` were loaded at start (the SQLite store), so a
    /// login needs no store read at all.
    var loginStateLoaded = false
    /// Devices whose pump stopped at a full queue: an acknowledgement pumps again.
    var pumpBlocked: Set<CallParty> = []
    let cseqFlushInterval: TimeAmount = .milliseconds(200)

    /// Only touched on `loop`; a reference travels through the verifier loops and back solely to tell
    /// whether the connection that asked is still there.
    final class ConnectionState: @unchecked Sendable {
        let connection: any SignalConnection
        var session: SessionMachine
        var timer: Scheduled<Void>?
        var timerDeadline: UInt64 = 0
        /// Commands of this connection waiting for the one in flight: a device's commands run one at a
        /// time in cseq order, so a `msg` is committed before anything after it counts as processed.
        var waiting: [SignalCommand] = []
        var executing = false
        init(connection: any SignalConnection, session: SessionMachine) {
            self.connection = connection
            self.session = session
        }
    }

    public init(loop: any EventLoop, store: any SignalStore, accounts: AccountTable, configuration: SignalHubConfiguration,
                logger: Logger, verifiers: [any EventLoop] = [],
                clock: @escaping @Sendable () -> UInt64 = { UInt64(Date().timeIntervalSince1970 * 1000) }) {
        self.loop = loop
        self.verifiers = verifiers.filter { $0 !== loop }
        self.store = store
        self.directory = AccountTableDirectory(table: accounts)
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.calls = CallBook(configuration: configuration.calls)
        if let st = try? store.loginState() {
            for (u, d, c) in st.cseqs { if let u = SignalName(u), let d = SignalName(d) { processedCSeq[CallParty(user: u, device: d)] = UInt64(max(0, c)) } }
            for (u, d) in st.mail { if let u = SignalName(u), let d = SignalName(d) { mayHaveMail.insert(CallParty(user: u, device: d)) } }
            loginStateLoaded = true
        }
    }

    // MARK: Entry points (any thread)

    /// Runs `body` on the hub's loop: at once when called there, else as a task.
    @inline(__always)
    func onLoop(_ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    /// A new connection: the session greets it with `hello`.
    public func connected(_ connection: any SignalConnection) {
        onLoop {
            let id = ObjectIdentifier(connection)
            let state = ConnectionState(connection: connection,
                                        session: SessionMachine(configuration: self.configuration.session, directory: self.directory))
            self.connections[id] = state
            self.logger.debug("signal connection", metadata: ["peer": "\(connection.peer)"])
            self.perform(state.session.connect(now: self.clock()), on: id)
        }
    }

    /// One frame from a connection (a line without its terminator, or a WebSocket text message).
    public func received(_ frame: String, from connection: any SignalConnection) {
        onLoop {
            let id = ObjectIdentifier(connection)
            guard let state = self.connections[id] else { return }
            self.perform(state.session.receive(frame, now: self.clock()), on: id)
        }
    }

    /// The transport saw a frame longer than the limit.
    public func tooLong(from connection: any SignalConnection) {
        onLoop {
            let id = ObjectIdentifier(connection)
            guard let state = self.connections[id] else { return }
            self.perform(state.session.lineTooLong(now: self.clock()), on: id)
        }
    }

    /// The transport closed (either side).
    public func closed(_ connection: any SignalConnection) {
        onLoop {
            let id = ObjectIdentifier(connection)
            guard let state = self.connections[id] else { return }
            self.perform(state.session.transportClosed(now: self.clock()), on: id)
            state.timer?.cancel()
            self.connections[id] = nil
        }
    }

    /// The newest device lists from the store (text forms by user), at start; unreadable ones are logged
    /// and left out (their users are then served as if they had none: clients that pinned one refuse that).
    public func load(deviceLists: [String: String]) {
        loop.execute {
            for (user, text) in deviceLists {
                guard let name = SignalName(user), let list = try? DeviceList(text: text), list.user == name else {
                    self.logger.error("unreadable device list in the store", metadata: ["user": "\(user)"])
                    continue
                }
                self.deviceLists[name] = list
            }
        }
    }

    /// Swaps in new accounts (SIGHUP). Sessions already logged in keep going.
    public func reload(accounts: AccountTable) {
        loop.execute { self.directory = AccountTableDirectory(table: accounts) }
    }

    /// Counts for tests and metrics, read on the loop.
    public func snapshot() -> EventLoopFuture<(connections: Int, online: Int, calls: Int, queuedEvents: Int)> {
        loop.submit {
            (self.connections.count, self.presence.count, self.calls.count, self.queues.values.reduce(0) { $0 + $1.count })
        }
    }

    // MARK: Session actions

    func perform(_ actions: [SessionAction], on id: ObjectIdentifier) {
        guard let state = connections[id] else { return }
        for action in actions {
            switch action {
            case .send(let frame):
                state.connection.send(SignalCodec.format(frame))
            case .verify(let check):
                verify(check, for: state, id: id)
            case .enrol(let request):
                enrol(request, id: id)
            case .authenticated(let user, let device):
                logger.info("signal login", metadata: ["user": "\(user)", "device": "\(device)", "peer": "\(state.connection.peer)"])
                if loginStateLoaded {
                    let last = processedCSeq[CallParty(user: user, device: device)] ?? 0
                    perform(state.session.admit(lastCSeq: last, now: clock()), on: id)
                    continue
                }
                let store = self.store
                Task {
                    let last = (try? await store.lastProcessedCSeq(user: user.text, device: device.text)) ?? 0
                    self.loop.execute {
                        // The same connection, not a later one that got the same identifier.
                        guard let current = self.connections[id], current === state else { return }
                        let inMemory = self.processedCSeq[CallParty(user: user, device: device)] ?? 0
                        self.perform(state.session.admit(lastCSeq: max(UInt64(max(0, last)), inMemory), now: self.clock()), on: id)
                    }
                }
            case .online(let user, let device):
                online(CallParty(user: user, device: device), id: id)
            case .execute(let command):
                state.waiting.append(command)
                runNextCommand(id)
            case .acknowledge(let sseq):
                guard let identity = state.session.identity else { continue }
                acknowledge(CallParty(user: identity.user, device: identity.device), upTo: sseq)
            case .offline(let user, let device):
                let party = CallParty(user: user, device: device)
                if presence.remove(user: user, device: device, connection: id) {
                    logger.info("signal offline", metadata: ["user": "\(user)", "device": "\(device)"])
                    performCalls(calls.handle(.deviceDisconnected(party), now: clock()))
                    // An empty queue of an offline device holds nothing worth keeping: drop it, so memory
                    // follows the devices online, not every device ever seen. (Its sseq floor is the clock.)
                    // The store cursor stays: it keeps mail whose deletion is in flight from coming back.
                    if queues[party]?.isEmpty == true {
                        queues[party] = nil
                        messageRefs[party] = nil
                    }
                }
            case .close:
                state.connection.close()
            }
        }
        rearmSessionTimer(id)
    }

    func rearmSessionTimer(_ id: ObjectIdentifier) {
        guard let state = connections[id] else { return }
        guard let deadline = state.session.deadline else {
            state.timer?.cancel()
            state.timer = nil
            return
        }
        // A timer armed at or before the deadline stays armed: read deadlines only move later, so most
        // frames change nothing here (NIO cancels a scheduled task by a linear search of its heap, which
        // per frame cost more than the call itself at 20,000 connections); an early firing is a no-op
        // and re-arms.
        if state.timer != nil, state.timerDeadline <= deadline { return }
        state.timer?.cancel()
        state.timerDeadline = deadline
        let delay = Int64(deadline) - Int64(clock())
        state.timer = loop.scheduleTask(in: .milliseconds(max(0, delay))) { [weak self] in
            guard let self, let state = self.connections[id] else { return }
            state.timer = nil
            self.perform(state.session.deadlineReached(now: self.clock()), on: id)
        }
    }

    func online(_ party: CallParty, id: ObjectIdentifier) {
        if let old = presence.register(user: party.user, device: party.device, connection: id), old != id,
            let oldState = connections[old]
        {
            perform(oldState.session.supersede(now: clock()), on: old)
        }
        performCalls(calls.handle(.deviceReconnected(party), now: clock()))
        let queue = queues[party] ?? DeviceQueue(user: party.user, device: party.device, capacity: configuration.queueCapacity)
        queues[party] = queue
        for frame in queue.unacknowledged { connections[id]?.connection.send(SignalCodec.format(frame)) }
        if !loginStateLoaded || mayHaveMail.contains(party) { pumpStoredMessages(for: party) }
    }

    /// Runs a login's signature check on the next verifier loop (or here, without any) and hands the
    /// result to the session, if the connection is still the one that asked.
    func verify(_ check: LoginVerification, for state: ConnectionState, id: ObjectIdentifier) {
        guard !verifiers.isEmpty else {
            perform(state.session.loginVerified(check.verify(), now: clock()), on: id)
            return
        }
        let verifier = verifiers[nextVerifier % verifiers.count]
        nextVerifier &+= 1
        verifier.execute {
            let valid = check.verify()
            self.loop.execute {
                guard let current = self.connections[id], current === state else { return }
                self.perform(state.session.loginVerified(valid, now: self.clock()), on: id)
            }
        }
    }

    /// Starts the connection's next waiting command unless one is in flight.
    func runNextCommand(_ id: ObjectIdentifier) {
        guard let state = connections[id], !state.executing, !state.waiting.isEmpty,
            let identity = state.session.identity
        else { return }
        state.executing = true
        let command = state.waiting.removeFirst()
        execute(command, from: CallParty(user: identity.user, device: identity.device), id: id)
    }
}
