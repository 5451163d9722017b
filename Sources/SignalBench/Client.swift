import NIOCore
import NIOPosix
import ParleyCrypto
import ParleyWire

// Everything in this file lives on one event loop per `Worker`: a worker's connections, its pairs and
// its counters are touched only from `worker.loop`, so none of it needs a lock. Both users of a pair are
// on the same worker, so a whole call setup runs on one client thread.

/// A caller and a callee that set up calls with each other, one at a time.
final class Pair: @unchecked Sendable {
    let a: Conn  // caller
    let b: Conn  // callee
    var busy = false
    /// The current call's id, as text and as the bytes the events carry.
    var callIDText = ""
    var callID: [UInt8] = []
    /// When the call was meant to start (open loop: its slot in the schedule), when `call` was written,
    /// when `ring` reached the callee, when the callee wrote `prepare`+`accept`.
    var tIntended: UInt64 = 0
    var tCallSent: UInt64 = 0
    var tRing: UInt64 = 0
    var tAcceptSent: UInt64 = 0
    /// The caller's cseq of the current `call` (a `nak` for it frees the pair).
    var callCSeq: UInt64 = 0

    init(a: Conn, b: Conn) {
        self.a = a
        self.b = b
    }
}

/// One client connection: a user logging in, then playing caller or callee of a pair.
final class Conn: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State { case idle, connecting, awaitingHello, awaitingWelcome, active, closed }

    let index: Int
    let user: String
    let identity: DeviceIdentity
    unowned let worker: Worker
    var state = State.idle
    var channel: (any Channel)?
    var cseq: UInt64 = 0
    var tConnect: UInt64 = 0
    var lastWrite: UInt64 = 0
    var pair: Pair?
    var isCaller = false
    /// Bytes of an incomplete line.
    private var partial: ByteBuffer?
    /// Lines waiting for `flush()`.
    private var out: ByteBuffer?
    /// The pair whose `call` (or `accept`) is in `out`: its send time is taken at the flush.
    private var pendingCall: Pair?
    private var pendingAccept: Pair?

    init(index: Int, identity: DeviceIdentity, worker: Worker) {
        self.index = index
        self.user = BenchAccounts.user(index)
        self.identity = identity
        self.worker = worker
    }

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        channel = context.channel
        state = .awaitingHello
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let was = state
        state = .closed
        channel = nil
        worker.connectionClosed(self, was: was)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        worker.note("connection \(user): \(error)")
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var p = partial {
            partial = nil
            p.writeBuffer(&buffer)
            buffer = p
        }
        let now = monoNanos()
        while let lf = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = lf - buffer.readerIndex
            buffer.withUnsafeReadableBytes { raw in
                self.line(UnsafeRawBufferPointer(rebasing: raw[0..<length]), now: now)
            }
            buffer.moveReaderIndex(forwardBy: length + 1)
        }
        if buffer.readableBytes > 0 { partial = buffer }
        flush()
    }

    // MARK: Output

    func append(_ text: String) {
        if out == nil { out = channel?.allocator.buffer(capacity: 1024) }
        out?.writeString(text)
    }

    func flush() {
        guard let channel, let buffer = out, buffer.readableBytes > 0 else { return }
        out = nil
        let t = monoNanos()
        if let p = pendingCall { p.tCallSent = t; pendingCall = nil }
        if let p = pendingAccept { p.tAcceptSent = t; pendingAccept = nil }
        lastWrite = t
        channel.writeAndFlush(buffer, promise: nil)
    }

    func sendCall(_ p: Pair) {
        cseq += 1
        p.callCSeq = cseq
        append("call|\(cseq)|\(wallMillis())|\(p.callIDText)|\(p.b.user)|\(worker.offerBlob)\n")
        pendingCall = p
        flush()
    }

    // MARK: Input

    /// One line, without its LF.
    private func line(_ l: UnsafeRawBufferPointer, now: UInt64) {
        guard let first = l.first else { return }  // keepalive
        let f = Fields(l)
        switch first {
        case UInt8(ascii: "e") where f.is(0, "ev"): event(l, f, now: now)
        case UInt8(ascii: "a") where f.is(0, "ack"): worker.acks += 1
        case UInt8(ascii: "n") where f.is(0, "nak"): worker.nak(self, cseq: f.uint(1) ?? 0, text: f.text(0..<l.count))
        case UInt8(ascii: "h") where f.is(0, "hello"): hello(f)
        case UInt8(ascii: "w") where f.is(0, "welcome"): welcome(f, now: now)
        case UInt8(ascii: "e") where f.is(0, "error"): worker.note("\(user): \(f.text(0..<l.count))")
        default: worker.note("\(user): unexpected line '\(f.text(0..<min(l.count, 80)))'")
        }
    }

    private func hello(_ f: Fields) {
        guard state == .awaitingHello, f.count >= 4, let challenge = SignalBlob(f.text(2), maxBytes: 64),
            let u = SignalName(user), let d = SignalName(BenchAccounts.device)
        else { return worker.loginFailed(self, "bad hello") }
        let ts = wallMillis()
        let input = SignalCodec.loginSigningInput(challenge: challenge, user: u, device: d, timestamp: ts)
        guard let signature = try? identity.signingKey.signature(for: input) else { return worker.loginFailed(self, "cannot sign") }
        append("login|\(user)|\(BenchAccounts.device)|\(ts)|\(Base64URL.encode(Array(signature)))\n")
        state = .awaitingWelcome
    }

    private func welcome(_ f: Fields, now: UInt64) {
        guard state == .awaitingWelcome, f.count >= 5, let last = f.uint(3) else { return worker.loginFailed(self, "bad welcome") }
        cseq = last
        state = .active
        lastWrite = now
        worker.loggedIn(self, now: now)
    }

    private func event(_ l: UnsafeRawBufferPointer, _ f: Fields, now: UInt64) {
        guard f.count >= 5, let sseq = f.uint(1) else { return worker.note("\(user): bad event") }
        append("got|\(sseq)\n")
        // `ended|hangup` reaches the callee after the caller's `end`, often after the caller has already
        // started its next call: the normal close of a finished setup, whatever its id.
        if !isCaller, f.is(3, "ended"), f.is(f.count - 1, "hangup") {
            worker.hangups += 1
            return
        }
        guard let p = pair, f.equals(4, p.callID) else {
            worker.stray += 1
            return
        }
        if f.is(3, "ring"), !isCaller {
            p.tRing = now
            let ts = wallMillis()
            cseq += 1
            append("prepare|\(cseq)|\(ts)|\(p.callIDText)|\(worker.answerBlob)\n")
            cseq += 1
            append("accept|\(cseq)|\(ts)|\(p.callIDText)\n")
            pendingAccept = p
        } else if f.is(3, "answer"), isCaller, p.busy {
            worker.answered(p, now: now)
            cseq += 1
            append("end|\(cseq)|\(wallMillis())|\(p.callIDText)\n")
            p.busy = false
            worker.pairIdle(p)  // may start the next call at once (closed loop), in the same write
        } else if f.is(3, "ended") {
            worker.note("\(user): \(f.joined(3..<f.count))")
            worker.failures += 1
            if isCaller, p.busy {
                p.busy = false
                worker.pairIdle(p)
            }
        } else {
            worker.stray += 1
        }
    }
}

/// The `|`-separated fields of one line (at most 8 split; the last one keeps the rest).
struct Fields {
    let line: UnsafeRawBufferPointer
    private(set) var ranges: [Range<Int>] = []

    init(_ line: UnsafeRawBufferPointer) {
        self.line = line
        ranges.reserveCapacity(8)
        var start = 0
        var i = 0
        while i < line.count {
            if line[i] == UInt8(ascii: "|") {
                ranges.append(start..<i)
                start = i + 1
                if ranges.count == 7 { break }
            }
            i += 1
        }
        ranges.append(start..<line.count)
    }

    var count: Int { ranges.count }

    func `is`(_ i: Int, _ word: StaticString) -> Bool {
        guard i < ranges.count, ranges[i].count == word.utf8CodeUnitCount else { return false }
        let w = word.utf8Start
        var k = 0
        for j in ranges[i] {
            if line[j] != w[k] { return false }
            k += 1
        }
        return true
    }

    func equals(_ i: Int, _ bytes: [UInt8]) -> Bool {
        guard i < ranges.count, ranges[i].count == bytes.count else { return false }
        var k = 0
        for j in ranges[i] {
            if line[j] != bytes[k] { return false }
            k += 1
        }
        return true
    }

    func uint(_ i: Int) -> UInt64? {
        guard i < ranges.count, !ranges[i].isEmpty, ranges[i].count <= 18 else { return nil }
        var v: UInt64 = 0
        for j in ranges[i] {
            let c = line[j]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + UInt64(c - UInt8(ascii: "0"))
        }
        return v
    }

    func text(_ i: Int) -> String { i < ranges.count ? text(ranges[i]) : "" }

    func text(_ r: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: line[r]), as: UTF8.self) }

    /// Fields `r` joined again with `|`.
    func joined(_ r: Range<Int>) -> String {
        guard !r.isEmpty, r.lowerBound < ranges.count else { return "" }
        return text(ranges[r.lowerBound].lowerBound..<ranges[min(r.upperBound, ranges.count) - 1].upperBound)
    }
}
