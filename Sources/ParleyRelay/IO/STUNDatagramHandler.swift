import CoreMetrics
import Logging
import NIOCore
import ParleyWire

/// The UDP socket set of one event loop: the sockets this loop owns, by endpoint, so a CHANGE-REQUEST
/// (RFC 5780) can be answered from another address without leaving the loop.
public final class STUNSocketSet: @unchecked Sendable {
    // Written once per loop before any read is enabled, then only read on that loop.
    var channels: [STUNEndpoint: any Channel] = [:]
    public init() {}
}

/// Answers STUN over one UDP socket: datagrams in, ``STUNServer`` decides, answers out, batched.
///
/// Reads arrive in vectors (recvmmsg, `datagramVectorReadMessageCount`); answers are written without a
/// flush and flushed once in `channelReadComplete`, which NIO turns into one sendmmsg. Answer buffers
/// come from a per-handler pool that is reused once NIO has sent them, so steady-state answering
/// allocates nothing in this handler.
///
/// Per-datagram work is kept to the decision itself: the clock is read once per read burst (it only
/// feeds nonces, which have one-second resolution), and the counters of the common case (a success
/// answer) are tallied in plain integers and added to the shared metric objects once per burst, instead
/// of four dictionary lookups and four atomic increments per datagram. Drops and error answers are
/// rare and are recorded immediately.
public final class STUNDatagramHandler: ChannelInboundHandler {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    public typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let server: STUNServer
    private let endpoint: STUNEndpoint
    private let sockets: STUNSocketSet
    private let metrics: STUNMetrics
    private let now: @Sendable () -> UInt64
    /// The per-datagram mutable state, behind a pointer allocated once: reached through `self`, each of
    /// these stored properties cost a dynamic exclusivity check (`swift_beginAccess`, a thread-local
    /// access set) per datagram, about 1.5 % of the server's CPU per answer.
    private let burst: UnsafeMutablePointer<Burst>
    /// The TURN shard of this socket, when the server relays (RFC 8656 shares the STUN port).
    private let turn: TURNShard?

    // The UDP success counters, looked up once.
    private let requestsCounter: Counter
    private let successesCounter: Counter
    private let bytesInCounter: Counter
    private let bytesOutCounter: Counter

    private struct Burst {
        var pool: [ByteBuffer] = []
        var poolNext = 0
        var empty = ByteBuffer()
        var crossSocketWrites = false
        // Success answers in the current read burst, not yet added to the counters.
        var successes = 0
        var bytesIn = 0
        var bytesOut = 0
        // The clock, read at the first datagram of a burst.
        var now: UInt64 = 0
        var hasNow = false
    }

    public init(server: STUNServer, endpoint: STUNEndpoint, sockets: STUNSocketSet, metrics: STUNMetrics,
                now: @escaping @Sendable () -> UInt64, turn: TURNShard? = nil) {
        self.turn = turn
        self.server = server
        self.endpoint = endpoint
        self.sockets = sockets
        self.metrics = metrics
        self.now = now
        self.requestsCounter = metrics.requests[.udp]!
        self.successesCounter = metrics.successes[.udp]!
        self.bytesInCounter = metrics.bytesIn[.udp]!
        self.bytesOutCounter = metrics.bytesOut[.udp]!
        self.burst = .allocate(capacity: 1)
        self.burst.initialize(to: Burst())
    }

    deinit {
        burst.deinitialize(count: 1)
        burst.deallocate()
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        burst.pointee.pool = (0..<512).map { _ in context.channel.allocator.buffer(capacity: 256) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let source = STUNAddress(envelope.remoteAddress) else { return }
        if let turn, let first = envelope.data.getInteger(at: envelope.data.readerIndex, as: UInt8.self) {
            // RFC 7983 demultiplexing: 0b01 is ChannelData; a STUN message of any method but Binding is
            // TURN's. A TURN message that does not decode falls through to the STUN core's 400 or drop.
            if ChannelData.looksLikeChannelData(first) {
                turn.handleChannelData(envelope.data, from: source)
                return
            }
            if STUNDecoder.looksLikeSTUN(first), let type = envelope.data.getInteger(at: envelope.data.readerIndex, as: UInt16.self),
                STUNMessageType(rawValue: type).method != .binding,
                turn.handleMessage(envelope.data, from: source, remote: envelope.remoteAddress) {
                return
            }
        }
        let b = burst
        var out: ByteBuffer
        let slot = b.pointee.poolNext
        if slot < b.pointee.pool.count {
            // Take the pooled buffer, leaving the shared empty one in its slot, so `out` is uniquely
            // referenced (once NIO has sent it) and clear() reuses its storage.
            out = b.pointee.empty
            swap(&out, &b.pointee.pool[slot])
            out.clear()
        } else {
            out = context.channel.allocator.buffer(capacity: 256)
        }
        if !b.pointee.hasNow {
            b.pointee.now = now()
            b.pointee.hasNow = true
        }
        let action = server.handle(envelope.data, from: source, on: endpoint, transport: .udp, now: b.pointee.now, into: &out)
        if case .respond(_, _, .success) = action {
            b.pointee.successes &+= 1
            b.pointee.bytesIn &+= envelope.data.readableBytes
            b.pointee.bytesOut &+= out.readableBytes
        } else {
            metrics.record(action, transport: .udp, bytesIn: envelope.data.readableBytes, bytesOut: out.readableBytes)
        }
        if slot < b.pointee.pool.count {
            b.pointee.pool[slot] = out
            b.pointee.poolNext = slot + 1
        }
        guard case .respond(let destination, let from, _) = action else { return }
        let remote = destination == source ? envelope.remoteAddress : destination.socketAddress()
        if from == endpoint {
            context.write(wrapOutboundOut(AddressedEnvelope(remoteAddress: remote, data: out)), promise: nil)
        } else if let other = sockets.channels[from] {
            // RFC 5780: answer from another of our addresses. Same event loop, so this is a plain write.
            other.write(AddressedEnvelope(remoteAddress: remote, data: out), promise: nil)
            b.pointee.crossSocketWrites = true
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushCounters()
        burst.pointee.hasNow = false
        context.flush()
        if burst.pointee.crossSocketWrites {
            for (e, c) in sockets.channels where e != endpoint { c.flush() }
            burst.pointee.crossSocketWrites = false
        }
        burst.pointee.poolNext = 0
    }

    public func channelActive(context: ChannelHandlerContext) {
        turn?.start(client: context.channel)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        turn?.stop(reason: "shutdown")
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        flushCounters()
    }

    /// Adds the burst's success tallies to the shared counters (what ``STUNMetrics/record`` does per
    /// success answer: one request, one success, bytes in and out).
    private func flushCounters() {
        let b = burst
        guard b.pointee.successes > 0 else { return }
        requestsCounter.increment(by: Int64(b.pointee.successes))
        successesCounter.increment(by: Int64(b.pointee.successes))
        bytesInCounter.increment(by: Int64(b.pointee.bytesIn))
        bytesOutCounter.increment(by: Int64(b.pointee.bytesOut))
        b.pointee.successes = 0
        b.pointee.bytesIn = 0
        b.pointee.bytesOut = 0
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors surface here as ECONNREFUSED on the next read; a UDP server ignores them.
    }
}
