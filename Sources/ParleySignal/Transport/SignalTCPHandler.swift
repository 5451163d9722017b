import NIOCore

/// A signaling connection over TCP (or TLS, with NIOSSL's handler in front): lines out, lines in.
///
/// Frames are written at once but flushed once per pass of the event loop: everything the hub sends to
/// this connection while the loop handles one batch of readable sockets (several commands pipelined in
/// one segment, events caused by other connections) leaves in one `write(2)`. The flush runs as a task
/// queued behind that batch; a close flushes first, so an `error` frame still goes out before it.
final class SignalTCPConnection: SignalConnection, @unchecked Sendable {
    let channel: any Channel
    let peer: String
    /// A flush task is queued. Only touched on the channel's loop.
    private var flushQueued = false

    init(channel: any Channel) {
        self.channel = channel
        self.peer = channel.remoteAddress.map { "\($0)" } ?? "?"
    }

    func send(_ frame: String) {
        if channel.eventLoop.inEventLoop {
            write(frame)
        } else {
            channel.eventLoop.execute { self.write(frame) }
        }
    }

    func close() {
        if channel.eventLoop.inEventLoop {
            channel.flush()
            channel.close(promise: nil)
        } else {
            channel.eventLoop.execute {
                self.channel.flush()
                self.channel.close(promise: nil)
            }
        }
    }

    private func write(_ frame: String) {
        var buffer = channel.allocator.buffer(capacity: frame.utf8.count + 1)
        buffer.writeString(frame)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.write(buffer, promise: nil)
        guard !flushQueued else { return }
        flushQueued = true
        channel.eventLoop.execute {
            self.flushQueued = false
            self.channel.flush()
        }
    }
}

/// Feeds framed lines of one TCP connection to the hub.
final class SignalTCPHandler: ChannelInboundHandler {
    typealias InboundIn = SignalLine

    private let hub: SignalHub
    private var connection: SignalTCPConnection?

    init(hub: SignalHub) {
        self.hub = hub
    }

    func channelActive(context: ChannelHandlerContext) {
        let c = SignalTCPConnection(channel: context.channel)
        connection = c
        hub.connected(c)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else { return }
        switch unwrapInboundIn(data) {
        case .line(let text): hub.received(text, from: connection)
        case .tooLong: hub.tooLong(from: connection)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection { hub.closed(connection) }
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
