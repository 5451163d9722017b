import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyWire

/// The connections and pairs of one client event loop, and what they measured. Confined to `loop`.
final class Worker: @unchecked Sendable {
    let id: Int
    let workerCount: Int
    let loop: any EventLoop
    let server: SocketAddress
    let sources: [SocketAddress]
    let offerBlob: String
    let answerBlob: String
    /// Call ids: `<run prefix>-<worker>-4000-8000-<counter>`, unique per run (the server remembers ended
    /// call ids for 60 s).
    let idPrefix: String
    private var callCounter: UInt64 = 0

    var conns: [Conn] = []
    var pairs: [Pair] = []

    // Counters.
    var acks = 0
    var naks = 0
    var stray = 0
    var hangups = 0
    var failures = 0
    var closedUnexpectedly = 0
    var notes: [String] = []
    var noteCount = 0

    init(id: Int, workerCount: Int, loop: any EventLoop, server: SocketAddress, sources: [SocketAddress],
         offerBlob: String, answerBlob: String, idPrefix: String) {
        self.id = id
        self.workerCount = workerCount
        self.loop = loop
        self.server = server
        self.sources = sources
        self.offerBlob = offerBlob
        self.answerBlob = answerBlob
        self.idPrefix = idPrefix
    }

    func note(_ text: String) {
        noteCount += 1
        if notes.count < 20 { notes.append(text) }
    }

    // MARK: Logins

    private var loginNext = 0
    private var loginInFlight = 0
    private var loginWindow = 1
    private var loginPromise: EventLoopPromise<Void>?
    var loginsOK = 0
    var loginsFailed = 0
    var loginLatencies: [UInt32] = []
    var tFirstConnect: UInt64 = 0
    var tLastWelcome: UInt64 = 0

    /// Connects and logs in every connection, `window` at a time.
    func startLogins(window: Int) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        loginPromise = promise
        loginWindow = max(1, window)
        loginLatencies.reserveCapacity(conns.count)
        tFirstConnect = monoNanos()
        fillLogins()
        return promise.futureResult
    }

    private func fillLogins() {
        while loginInFlight < loginWindow, loginNext < conns.count {
            connect(conns[loginNext])
            loginNext += 1
            loginInFlight += 1
        }
        if loginInFlight == 0, loginNext == conns.count, let p = loginPromise {
            loginPromise = nil
            p.succeed(())
        }
    }

    private func connect(_ c: Conn) {
        c.tConnect = monoNanos()
        c.state = .connecting
        var bootstrap = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(c) }
            }
        if !sources.isEmpty { bootstrap = bootstrap.bind(to: sources[c.index % sources.count]) }
        bootstrap.connect(to: server).whenFailure { error in
            self.loginFailed(c, "connect: \(error)")
        }
    }

    func loggedIn(_ c: Conn, now: UInt64) {
        loginsOK += 1
        loginLatencies.append(UInt32(clamping: (now - c.tConnect) / 1000))
        tLastWelcome = max(tLastWelcome, now)
        loginInFlight -= 1
        fillLogins()
    }

    func loginFailed(_ c: Conn, _ why: String) {
        guard c.state != .active, c.state != .idle else { return }
        note("login \(c.user): \(why)")
        c.state = .idle
        loginsFailed += 1
        loginInFlight -= 1
        c.channel?.close(promise: nil)
        fillLogins()
    }

    func connectionClosed(_ c: Conn, was: Conn.State) {
        switch was {
        case .connecting, .awaitingHello, .awaitingWelcome:
            c.state = was
            loginFailed(c, "closed before welcome")
            c.state = .closed
        case .active:
            closedUnexpectedly += 1
            note("\(c.user): server closed the connection")
        case .idle, .closed:
            break
        }
    }

    // MARK: Keepalives

    private var keepaliveTick = 0
    var keepalivesSent = 0

    /// Every 50 ms, a 1/500 slice of the connections (each one visited every 25 s) sends an empty line if
    /// it has written nothing for 20 s (docs/PROTOCOL.md §3.1: a keepalive at least every 25 s; the
    /// server's read timeout is 60 s). Small slices keep keepalives spread out as real clients' are, rather
    /// than arriving at the server in bursts.
    func startKeepalives() {
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { _ in
            self.keepaliveTick += 1
            let now = monoNanos()
            var i = self.keepaliveTick % 500
            while i < self.conns.count {
                let c = self.conns[i]
                if c.state == .active, now &- c.lastWrite > 20_000_000_000 {
                    c.append("\n")
                    c.flush()
                    self.keepalivesSent += 1
                }
                i += 500
            }
        }
    }

    // MARK: Calls

    enum Mode { case idle, closed, open }
    private(set) var mode = Mode.idle
    private var closedPairs = 0
    /// Samples are kept for calls meant to start at or after this time.
    private var recordAfter: UInt64 = .max
    var setups = 0
    /// Per completed setup (µs): from `call` written to `answer` read (caller side), from the schedule slot
    /// (open loop), the call leg (`call` written → `ring` read), the callee's turnaround, the answer leg
    /// (`prepare`+`accept` written → `answer` read), and the generator's lag (slot → `call` written).
    var samples = Samples()
    private var drainPromise: EventLoopPromise<Int>?

    struct Samples: Sendable {
        var total: [UInt32] = []
        var fromSlot: [UInt32] = []
        var callLeg: [UInt32] = []
        var turnaround: [UInt32] = []
        var answerLeg: [UInt32] = []
        var lag: [UInt32] = []
        /// When each measured call was meant to start (ns, monotonic), for --samples-out.
        var slot: [UInt64] = []

        mutating func merge(_ o: Samples) {
            total += o.total
            fromSlot += o.fromSlot
            callLeg += o.callLeg
            turnaround += o.turnaround
            answerLeg += o.answerLeg
            lag += o.lag
            slot += o.slot
        }
    }

    private func nextCallID() -> String {
        callCounter += 1
        return "\(idPrefix)-\(hex(UInt64(id), 4))-4000-8000-\(hex(callCounter, 12))"
    }

    private func startCall(_ p: Pair, intended: UInt64) {
        p.busy = true
        p.callIDText = nextCallID()
        p.callID = Array(p.callIDText.utf8)
        p.tIntended = intended
        p.a.sendCall(p)
    }

    func answered(_ p: Pair, now: UInt64) {
        setups += 1
        guard p.tIntended >= recordAfter else { return }
        func us(_ a: UInt64, _ b: UInt64) -> UInt32 { UInt32(clamping: (a &- b) / 1000) }
        samples.total.append(us(now, p.tCallSent))
        samples.fromSlot.append(us(now, p.tIntended))
        samples.callLeg.append(us(p.tRing, p.tCallSent))
        samples.turnaround.append(us(p.tAcceptSent, p.tRing))
        samples.answerLeg.append(us(now, p.tAcceptSent))
        samples.lag.append(us(p.tCallSent, p.tIntended))
        samples.slot.append(p.tIntended)
    }

    func pairIdle(_ p: Pair) {
        switch mode {
        case .closed:
            startCall(p, intended: monoNanos())
        case .open:
            freePairs.append(p)
        case .idle:
            checkDrained()
        }
    }

    func nak(_ c: Conn, cseq: UInt64, text: String) {
        naks += 1
        note("\(c.user): \(text)")
        if c.isCaller, let p = c.pair, p.busy, p.callCSeq == cseq {
            failures += 1
            p.busy = false
            pairIdle(p)
        }
    }

    /// Closed loop: every pair sets up a call, hangs up as soon as the answer arrives and calls again.
    func startClosed(recordAfter: UInt64) {
        mode = .closed
        self.recordAfter = recordAfter
        samples = Samples()
        setups = 0
        for p in pairs where !p.busy { startCall(p, intended: monoNanos()) }
    }

    // Open loop.
    private var freePairs: [Pair] = []
    private var openT0: UInt64 = 0
    private var openInterval = 0.0
    private var openIssued = 0
    private var openTotal = 0
    var openSkipped = 0
    private var openTimer: Scheduled<Void>?

    /// Open loop: calls start on a fixed schedule of `rate` per second over all workers (this worker
    /// takes every `workerCount`-th slot), whatever happened to earlier calls. A slot with no idle pair is
    /// counted as skipped.
    func startOpen(t0: UInt64, rate: Double, seconds: Double, recordAfter: UInt64) {
        mode = .open
        self.recordAfter = recordAfter
        samples = Samples()
        setups = 0
        freePairs = pairs.filter { !$0.busy }.reversed()
        openT0 = t0
        openInterval = 1e9 / rate
        openIssued = 0
        let slots = Int(rate * seconds)
        openTotal = slots / workerCount + (id < slots % workerCount ? 1 : 0)
        openSkipped = 0
        scheduleNextSlot()
    }

    private func slotTime(_ k: Int) -> UInt64 { openT0 + UInt64(Double(k * workerCount + id) * openInterval) }

    private func scheduleNextSlot() {
        guard mode == .open, openIssued < openTotal else { return }
        openTimer = loop.scheduleTask(deadline: .uptimeNanoseconds(slotTime(openIssued))) { self.fireSlots() }
    }

    private func fireSlots() {
        let now = monoNanos()
        while mode == .open, openIssued < openTotal {
            let slot = slotTime(openIssued)
            if slot > now { break }
            if let p = freePairs.popLast() { startCall(p, intended: slot) } else { openSkipped += 1 }
            openIssued += 1
        }
        scheduleNextSlot()
    }

    /// Stops starting calls; the future gives the number of pairs still busy when every call finished or
    /// `timeout` passed.
    func stop(timeout: TimeAmount) -> EventLoopFuture<Int> {
        mode = .idle
        openTimer?.cancel()
        openTimer = nil
        let promise = loop.makePromise(of: Int.self)
        drainPromise = promise
        loop.scheduleTask(in: timeout) {
            if let p = self.drainPromise {
                self.drainPromise = nil
                p.succeed(self.pairs.filter(\.busy).count)
            }
        }
        checkDrained()
        return promise.futureResult
    }

    private func checkDrained() {
        guard mode == .idle, let p = drainPromise, !pairs.contains(where: \.busy) else { return }
        drainPromise = nil
        p.succeed(0)
    }
}

func hex(_ v: UInt64, _ width: Int) -> String {
    let s = String(v, radix: 16)
    return s.count >= width ? String(s.suffix(width)) : String(repeating: "0", count: width - s.count) + s
}
