import NIOCore
import ParleyWire

/// STUN over a byte stream (TCP, or TLS after NIOSSL's handler), RFC 8489 §6.2.2: messages are
/// self-delimiting by their length field. A frame longer than the limit, or bytes that cannot start a
/// STUN message, close the connection (a stream cannot resynchronise). Idle connections are closed by
/// an `IdleStateHandler` in front of this one.
public final class STUNStreamHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let server: STUNServer
    private let transport: STUNTransport
    private let maxFrame: Int
    private let metrics: STUNMetrics
    private let now: @Sendable () -> UInt64
    private var pending: ByteBuffer?
    private var source: STUNAddress?
    private var closing = false
    /// TURN over this connection (RFC 8656 §3.1: the connection is the 5-tuple), when the server relays.
    private let turnContext: TURNContext?
    private var turn: TURNShard?

    public init(server: STUNServer, transport: STUNTransport, maxFrame: Int, metrics: STUNMetrics,
                now: @escaping @Sendable () -> UInt64, turn: TURNContext? = nil) {
        self.turnContext = turn
        self.server = server
        self.transport = transport
        self.maxFrame = maxFrame
        self.metrics = metrics
        self.now = now
    }

    public func channelActive(context: ChannelHandlerContext) {
        source = context.channel.remoteAddress.flatMap(STUNAddress.init)
        metrics.tcpConnections.increment()
        if let turnContext {
            let shard = TURNShard(context: turnContext, transport: transport, loop: context.eventLoop, poolSize: 16)
            shard.start(client: context.channel)
            turn = shard
        }
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var incoming = unwrapInboundIn(data)
        if pending == nil {
            pending = incoming
        } else {
            pending!.writeBuffer(&incoming)
        }
        var wrote = false
        while let buffer = pending, buffer.readableBytes >= 4 {
            let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!
            // RFC 8656 §12.4: on a stream, ChannelData frames are padded to a multiple of four.
            let channelData = turn != nil && ChannelData.looksLikeChannelData(first)
            guard channelData || STUNDecoder.looksLikeSTUN(first) else {
                return close(context, reason: "not-stun")
            }
            let length = channelData ? ChannelData.frameLength(buffer)! : STUNDecoder.frameLength(buffer)!
            // ChannelData may be as large as the relay forwards, whatever the STUN frame limit.
            let limit = channelData ? ChannelData.headerLength + (turnContext!.sockets.maxDatagram + 3) & ~3 : maxFrame
            guard length <= limit else { return close(context, reason: "frame-too-large") }
            guard buffer.readableBytes >= length else { break }
            let frame = pending!.readSlice(length: length)!
            guard let source else { return close(context, reason: "error") }
            if let turn, let remote = context.channel.remoteAddress {
                if channelData {
                    turn.handleChannelData(frame, from: source)
                    continue
                }
                if let type = frame.getInteger(at: frame.readerIndex, as: UInt16.self), STUNMessageType(rawValue: type).method != .binding,
                    turn.handleMessage(frame, from: source, remote: remote) {
                    continue
                }
            }
            var out = context.channel.allocator.buffer(capacity: 256)
            let action = server.handle(frame, from: source, on: .primary, transport: transport, now: now(), into: &out)
            metrics.record(action, transport: transport, bytesIn: length, bytesOut: out.readableBytes)
            if case .respond = action {
                context.write(wrapOutboundOut(out), promise: nil)
                wrote = true
            }
        }
        if pending?.readableBytes == 0 { pending = nil } else { pending?.discardReadBytes() }
        if wrote { context.flush() }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // A TURN client with an allocation may only receive (peer → client) for minutes; its
            // allocation's lifetime, not the read timeout, decides when the connection is done.
            if let turn, turn.allocationCount > 0 { return }
            close(context, reason: "idle-timeout")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !closing { metrics.tcpClosed["eof"]?.increment() }
        closing = true
        turn?.stop(reason: "connection_closed")
        turn = nil
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context, reason: "error")
    }

    private func close(_ context: ChannelHandlerContext, reason: String) {
        guard !closing else { return }
        closing = true
        pending = nil
        metrics.tcpClosed[reason]?.increment()
        // Answers already written for earlier frames of the same read go out before the close.
        context.flush()
        context.close(promise: nil)
    }
}
